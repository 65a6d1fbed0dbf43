/* daemon/ecs/ecs: the ECS resources' layer.  What the operation modules
 * (one file per resource: clusters.c, taskdefs.c, tasks.c, services.c,
 * tags.c, instances.c) share with the server's dispatcher: the
 * per-request call, the error helpers (call.c) and the JSON member readers
 * that turn a malformed member into an InvalidParameterException naming
 * it.  Included by daemon/ecs and daemon/server only. */
#ifndef BERTH_DAEMON_API_INTERNAL_H
#define BERTH_DAEMON_API_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/json.h"
#include "daemon/store/store.h"

struct sched;
struct store_key;
struct svc;

/* ECS error types used by more than one operation. */
#define API_E_CLIENT        "ClientException"
#define API_E_CONFLICT      "ConflictException"
#define API_E_INVALID       "InvalidParameterException"
#define API_E_SERVER        "ServerException"
#define API_E_CLUSTER_NF    "ClusterNotFoundException"
#define API_E_UNSUPPORTED   "UnsupportedFeatureException"

#define API_NAME_MAX 255     /* cluster, family, container, service names */
#define API_DESCRIBE_MAX 100 /* DescribeClusters/DescribeTasks batch */

/* One request being served.  An operation reads `in` (always a JSON
 * object), and either sets `out` (an object it allocated; the dispatcher
 * sends and frees it) and returns 0, or returns api_error()'s -1. */
struct api_call {
	struct store *store;
	struct sched *sched;         /* runs the tasks the API records */
	struct svc *svc;             /* keeps the services' tasks running */
	const char *region;
	const char *account_id;
	const struct store_key *secrets_key;  /* seals SSM and Secrets Manager values */
	const cJSON *in;
	cJSON *out;
	int64_t now_ms;              /* one instant per request */
	/* The error, when the operation failed. */
	int status;
	const char *type;
	char message[BERTH_ERR_MAX];
	cJSON *error_members;        /* more members of the error body, or NULL */
};

/* Records an error for the response and returns -1.  STATUS 0 means 400
 * (500 for ServerException). */
int api_error(struct api_call *c, int status, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A store failure: -EINVAL → InvalidParameterException, -ENOMEM and the
 * rest → ServerException, with the store's message.  Callers map -ENOENT
 * and -EBUSY themselves (which resource, which exception) first. */
int api_store_error(struct api_call *c, int r, const struct berth_err *err);
/* Out of memory while building a response. */
int api_oom(struct api_call *c);

/* Member readers.  NAME is the member as the client spelled it, PATH the
 * prefix for messages ("" at top level, "settings[2]." deeper).  Each
 * returns 0 with the value (*ret NULL / *ret_present false when absent and
 * not required), or -1 after api_error(InvalidParameterException) for a
 * wrong type, a missing required member or a bad value.  Strings stay
 * owned by the JSON. */
int api_get_string(struct api_call *c, const cJSON *obj, const char *path, const char *name,
		   bool required, const char **ret);
int api_get_object(struct api_call *c, const cJSON *obj, const char *path, const char *name,
		   bool required, const cJSON **ret);
/* awsvpcConfiguration.securityGroups of VPC: at most
 * API_SECURITY_GROUPS_MAX names of 1-255 characters, no comma or space. */
#define API_SECURITY_GROUPS_MAX 5
int api_check_security_groups(struct api_call *c, const cJSON *vpc, const char *path,
			      const cJSON **ret);
/* An array; each element is checked by the caller. */
int api_get_array(struct api_call *c, const cJSON *obj, const char *path, const char *name,
		  bool required, size_t max, const cJSON **ret);
/* An integer within [min, max]; a JSON number with a fraction is wrong. */
int api_get_int(struct api_call *c, const cJSON *obj, const char *path, const char *name,
		bool required, int64_t min, int64_t max, bool *ret_present, int64_t *ret);
int api_get_bool(struct api_call *c, const cJSON *obj, const char *path, const char *name,
		 bool *ret_present, bool *ret);
/* A string that must be one of WORDS (NULL-terminated). */
int api_get_enum(struct api_call *c, const cJSON *obj, const char *path, const char *name,
		 bool required, const char *const *words, const char **ret);

/* The request's `clientToken` (NULL when absent): 1 to MAX characters, each
 * in the range 33-126, as ECS checks it. */
int api_get_client_token(struct api_call *c, size_t max, const char **ret);

/* Names: 1–255 of [A-Za-z0-9_-] (clusters, families, containers). */
bool api_name_valid(const char *s);

/* "arn:aws:ecs:<region>:<account>:<kind>/<name>", malloc'd; NULL on OOM. */
char *api_arn(const struct api_call *c, const char *kind, const char *name);

/* The request's `cluster` (name or ARN; default "default") as a name in
 * RET (at least API_NAME_MAX + 1 bytes), or ClusterNotFoundException for
 * one that is missing or INACTIVE.  CREATE_DEFAULT makes the default
 * cluster when the request names none (or names `default`) and it does
 * not exist yet, as ECS does on first use (RunTask, CreateService). */
int api_get_cluster(struct api_call *c, bool create_default, char *ret);

/* REF (family, family:rev, ARN) as a definition a task can run now:
 * ACTIVE, given a networkConfiguration when it is awsvpc (HAS_NETCFG),
 * nothing in it (or in OVERRIDES, may be NULL) that Berth refuses
 * (taskplan_check) and nothing the operator's policy does not allow
 * (policy_check: a ClientException naming the container); with
 * LAUNCH_TYPE FARGATE (as the request asked; NULL: none), a definition
 * Fargate can run (task cpu and memory of Fargate's sizes, awsvpc), else
 * ECS's InvalidParameterException.  *ret and *ret_body (its parsed body) are the
 * caller's, also after a failure; -1 after api_error(). */
int api_runnable_definition(struct api_call *c, const char *ref, const cJSON *overrides,
			    bool has_netcfg, const char *launch_type,
			    struct store_task_definition **ret, cJSON **ret_body);

/* CreateService's loadBalancers (service_lb.c): each names an ip target
 * group of the ELBv2 API and a containerPort of a container of the
 * definition TD_ARN; -1 after api_error(). */
int api_check_load_balancers(struct api_call *c, const char *td_arn);


/* The request's capacityProviderStrategy (RunTask, CreateService,
 * UpdateService): FARGATE and FARGATE_SPOT run alike on this host (nothing
 * is reclaimed), as FARGATE tasks.  ECS's rules: not with a LAUNCH_TYPE
 * (the request's, or NULL), at most 6 entries, and only providers CLUSTER
 * (a name; "" for a default cluster not made yet) has.  *ret_given: a
 * strategy was given (not absent or empty). */
int api_check_capacity_strategy(struct api_call *c, const char *cluster,
				const char *launch_type, bool *ret_given);

/* The Describe* `include` member when TAGS is all it may hold: *ret_tags
 * tells whether it was asked for. */
int api_get_include_tags(struct api_call *c, bool *ret_tags);
/* RunTask's, CreateService's and UpdateService's platformVersion (Fargate's
 * one version here, 1.4.0, which LATEST names; anything else is ECS's "The
 * specified platform does not exist.") and placementStrategy (well formed,
 * then nothing to do: every strategy picks the one instance). */
int api_check_platform(struct api_call *c);
/* Every member of OBJ that asks for something (not null, [], {} or false)
 * must be in HANDLED (NULL-terminated): one Berth honours or accepts as a
 * no-op, as docs/api.md's "Member policy" lists them.  Any other is an
 * UnsupportedFeatureException naming PATH and the member, so nothing a
 * request asks for is dropped in silence. */
int api_refuse_members(struct api_call *c, const cJSON *obj, const char *path,
		       const char *const *handled);
/* {"arn": ..., "reason": "MISSING"} appended to FAILURES: REF when it is
 * an ARN, else the ARN ECS prints for it, "arn:aws:ecs:<region>:<account>:
 * KIND/CLUSTER/REF" (KIND "service", "task", "container-instance"). */
int api_add_missing(struct api_call *c, cJSON *failures, const char *kind, const char *cluster,
		    const char *ref);

/* The paging members nextToken/maxResults of C->in as a store page. */
int api_get_page(struct api_call *c, struct store_page *ret);

/* The request's `tags` member (ECS's limits checked: 50 per resource, key
 * 1–128 characters without the aws: prefix, value up to 256); the
 * strings are the request's, only the array is freed. */
struct api_tags_in {
	struct store_tag *v;
	size_t n;
};
int api_parse_tags(struct api_call *c, struct api_tags_in *ret);
void api_tags_in_done(struct api_tags_in *t);
/* ARN's stored tags added to O as "tags" (an empty list when none). */
int api_add_tags(struct api_call *c, cJSON *o, const char *arn);
/* Characters (code points) in a UTF-8 string: ECS's tag limits count
 * characters, not bytes.  Request bodies are checked to be valid UTF-8. */
size_t api_utf8_chars(const char *s);

/* ---- operations (one module per resource) ---- */

int api_op_create_cluster(struct api_call *c);
int api_op_describe_clusters(struct api_call *c);
int api_op_list_clusters(struct api_call *c);
int api_op_delete_cluster(struct api_call *c);
int api_op_update_task_protection(struct api_call *c);
int api_op_get_task_protection(struct api_call *c);
int api_op_put_attributes(struct api_call *c);
int api_op_list_attributes(struct api_call *c);
int api_op_delete_attributes(struct api_call *c);
/* CLUSTER's container instance's attributes, the agent's then the
 * operator's (PutAttributes), as [{name, value}]. */
int api_instance_attributes(struct api_call *c, const char *cluster, cJSON **ret);
/* placementConstraints (an array, or NULL) of a request for COUNT tasks on
 * CLUSTER's one container instance: *ret_placed of them may run, the
 * others fail for *ret_unplaced (ECS's reason).  memberOf evaluates the
 * instance's attributes ("attribute:NAME == VALUE", "!=", "exists",
 * "!exists"); distinctInstance leaves one. */
int api_check_placement(struct api_call *c, const char *cluster, const cJSON *constraints,
			int64_t count, const char **ret_unplaced, int64_t *ret_placed);
int api_op_put_account_setting(struct api_call *c);
int api_op_put_account_setting_default(struct api_call *c);
int api_op_list_account_settings(struct api_call *c);
int api_op_delete_account_setting(struct api_call *c);
/* The account's default (the root's effective value) of setting NAME,
 * one account.c knows, into *ret (freed by the caller). */
int api_account_default(struct api_call *c, const char *name, char **ret);
int api_op_put_cluster_capacity_providers(struct api_call *c);
int api_op_update_cluster(struct api_call *c);
int api_op_update_cluster_settings(struct api_call *c);

/* The host's container instance in CLUSTER (a name):
 * "arn:aws:ecs:<region>:<account>:container-instance/<cluster>/<id>",
 * malloc'd; NULL on OOM.  Does REF (an id or an ARN) name it? */
char *api_instance_arn(const struct api_call *c, const char *cluster);
bool api_is_instance(const struct api_call *c, const char *cluster, const char *ref);

/* Is CLUSTER's container instance DRAINING (UpdateContainerInstancesState)? */
int api_instance_draining(struct api_call *c, const char *cluster, bool *ret);

int api_op_list_container_instances(struct api_call *c);
int api_op_describe_container_instances(struct api_call *c);
int api_op_update_container_instances_state(struct api_call *c);

int api_op_register_task_definition(struct api_call *c);
int api_op_describe_task_definition(struct api_call *c);
int api_op_list_task_definitions(struct api_call *c);
int api_op_list_task_definition_families(struct api_call *c);
int api_op_deregister_task_definition(struct api_call *c);
int api_op_delete_task_definitions(struct api_call *c);

int api_op_start_task(struct api_call *c);
int api_op_run_task(struct api_call *c);
int api_op_stop_task(struct api_call *c);
int api_op_describe_tasks(struct api_call *c);
int api_op_list_tasks(struct api_call *c);

int api_op_create_service(struct api_call *c);
int api_op_update_service(struct api_call *c);
int api_op_delete_service(struct api_call *c);
int api_op_describe_services(struct api_call *c);
int api_op_list_services(struct api_call *c);

int api_op_tag_resource(struct api_call *c);
int api_op_untag_resource(struct api_call *c);
int api_op_list_tags_for_resource(struct api_call *c);

#endif
