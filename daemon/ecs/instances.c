/* daemon/ecs/instances: ListContainerInstances, DescribeContainerInstances,
 * UpdateContainerInstancesState — the host as the one container instance
 * of every ACTIVE cluster (daemon/instance.h), with its registered and
 * remaining CPU and memory, its task counts in that cluster, what the ECS
 * agent reports (agentConnected, versionInfo, attributes), and its status:
 * ACTIVE, or DRAINING, stored per cluster, under which RunTask and
 * StartTask place nothing and the service scheduler (daemon/svc) drains
 * the services' tasks. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/ecs/ecs.h"
#include "daemon/sched/instance.h"
#include "daemon/sched/sched.h"
#include "daemon/svc/svc.h"

#define AGENT_VERSION "1.0.0"

static const char *const statuses[] = {
	"ACTIVE", "DRAINING", "REGISTERING", "DEREGISTERING", "REGISTRATION_FAILED", NULL,
};

char *api_instance_arn(const struct api_call *c, const char *cluster)
{
	char path[API_NAME_MAX + INSTANCE_ID_LEN + 2];
	snprintf(path, sizeof(path), "%s/%s", cluster, sched_instance_id(c->sched));
	return api_arn(c, "container-instance", path);
}

/* One Resource as ECS shapes it: every value member present, the one
 * its type names set. */
static bool add_resource(cJSON *arr, const char *name, int64_t v)
{
	cJSON *o = json_add_object(arr);
	bool set = name[0] != 'P'; /* CPU, MEMORY: INTEGER; PORTS*: STRINGSET */
	return o && json_add_string(o, "name", name) &&
	       json_add_string(o, "type", set ? "INTEGER" : "STRINGSET") &&
	       json_add_number(o, "doubleValue", 0) && json_add_number(o, "longValue", 0) &&
	       json_add_number(o, "integerValue", set ? (double)v : 0) &&
	       (set || json_add_array(o, "stringSetValue"));
}

/* CPU, MEMORY; PORTS and PORTS_UDP empty: awsvpc tasks take no host port. */
static bool add_resources(cJSON *o, const char *name, int64_t cpu, int64_t memory)
{
	cJSON *arr = json_add_array(o, name);
	return arr && add_resource(arr, "CPU", cpu) && add_resource(arr, "MEMORY", memory) &&
	       add_resource(arr, "PORTS", 0) && add_resource(arr, "PORTS_UDP", 0);
}

int api_instance_draining(struct api_call *c, const char *cluster, bool *ret)
{
	struct berth_err err = { 0 };
	int r = store_instance_draining_get(c->store, cluster, ret, &err);
	return r < 0 ? api_store_error(c, r, &err) : 0;
}

static int instance_json(struct api_call *c, const char *cluster, bool tags, cJSON *arr)
{
	struct instance_usage u;
	struct berth_err err = { 0 };
	bool draining;
	if (api_instance_draining(c, cluster, &draining) < 0)
		return -1;
	int r = instance_usage(c->store, cluster, &u, &err);
	if (r < 0)
		return api_store_error(c, r, &err);
	const struct berth_policy *p = sched_policy(c->sched);
	_cleanup_free_ char *arn = api_instance_arn(c, cluster);
	cJSON *o = json_add_object(arr), *vi = o ? cJSON_AddObjectToObject(o, "versionInfo") : NULL;
	int64_t remaining_cpu = p->instance_cpu - u.cpu,
		remaining_mem = p->instance_memory - u.memory;
	if (!arn || !vi || !json_add_string(o, "containerInstanceArn", arn) ||
	    !json_add_number(o, "version", 1) || !json_add_string(vi, "agentVersion", AGENT_VERSION) ||
	    !json_add_string(vi, "agentHash", "berth") ||
	    !json_add_string(vi, "dockerVersion", "DockerVersion: none (berth-shim)") ||
	    !add_resources(o, "remainingResources", remaining_cpu > 0 ? remaining_cpu : 0,
			   remaining_mem > 0 ? remaining_mem : 0) ||
	    !add_resources(o, "registeredResources", p->instance_cpu, p->instance_memory) ||
	    !json_add_string(o, "status", draining ? "DRAINING" : "ACTIVE") ||
	    !cJSON_AddBoolToObject(o, "agentConnected", 1) ||
	    !json_add_number(o, "runningTasksCount", (double)u.running) ||
	    !json_add_number(o, "pendingTasksCount", (double)u.pending) ||
	    !json_add_number(o, "registeredAt",
			    (double)sched_instance_registered_at(c->sched) / 1000.0) ||
	    !json_add_array(o, "attachments") || (tags && !json_add_array(o, "tags")))
		return api_oom(c);
	cJSON *attrs;
	if (api_instance_attributes(c, cluster, &attrs) < 0)
		return -1;
	if (!cJSON_AddItemToObject(o, "attributes", attrs)) {
		cJSON_Delete(attrs);
		return api_oom(c);
	}
	return 0;
}

/* The request's cluster as a name; *ret_active false when it is INACTIVE
 * (it has no container instance then). */
static int instance_cluster(struct api_call *c, char *ret, bool *ret_active)
{
	if (api_get_cluster(c, false, ret) < 0)
		return -1;
	_cleanup_(store_cluster_freep) struct store_cluster *cl = NULL;
	struct berth_err err = { 0 };
	int r = store_cluster_find(c->store, ret, &cl, &err);
	if (r < 0)
		return api_store_error(c, r, &err);
	*ret_active = cl->status == STORE_CLUSTER_ACTIVE;
	return 0;
}

int api_op_list_container_instances(struct api_call *c)
{
	char cluster[API_NAME_MAX + 1];
	const char *filter, *status;
	struct store_page page;
	bool active;
	if (api_get_string(c, c->in, "", "filter", false, &filter) < 0 ||
	    api_get_enum(c, c->in, "", "status", false, statuses, &status) < 0 ||
	    api_get_page(c, &page) < 0 || instance_cluster(c, cluster, &active) < 0)
		return -1;
	if (filter && *filter)
		return api_error(c, 0, API_E_INVALID,
				 "filter: the cluster query language is not "
				 "supported: a Berth cluster has one container instance, the host");
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *arns = out ? json_add_array(out, "containerInstanceArns") : NULL;
	if (!arns)
		return api_oom(c);
	/* One instance, on the first page, in its status. */
	bool draining = false;
	if (active && api_instance_draining(c, cluster, &draining) < 0)
		return -1;
	if (active && !page.next_token &&
	    (!status || strcmp(status, draining ? "DRAINING" : "ACTIVE") == 0)) {
		_cleanup_free_ char *arn = api_instance_arn(c, cluster);
		cJSON *a = arn ? cJSON_CreateString(arn) : NULL;
		if (!a || !cJSON_AddItemToArray(arns, a)) {
			cJSON_Delete(a);
			return api_oom(c);
		}
	}
	c->out = TAKE_PTR(out);
	return 0;
}

bool api_is_instance(const struct api_call *c, const char *cluster, const char *ref)
{
	_cleanup_free_ char *arn = api_instance_arn(c, cluster);
	return strcmp(ref, sched_instance_id(c->sched)) == 0 || (arn && strcmp(ref, arn) == 0);
}

/* {containerInstances: the host once if REFS name it, failures: MISSING for
 * every other reference}: DescribeContainerInstances' and
 * UpdateContainerInstancesState's answer. */
static int reply_instances(struct api_call *c, const char *cluster, bool active,
			   const cJSON *refs, bool tags)
{
	const cJSON *ref;
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *list = out ? json_add_array(out, "containerInstances") : NULL;
	cJSON *failures = out ? json_add_array(out, "failures") : NULL;
	if (!list || !failures)
		return api_oom(c);
	bool done = false;
	cJSON_ArrayForEach(ref, refs) {
		if (!active || !api_is_instance(c, cluster, ref->valuestring)) {
			if (api_add_missing(c, failures, "container-instance", cluster, ref->valuestring) < 0)
				return -1;
		} else if (!done) { /* named twice: described once */
			if (instance_json(c, cluster, tags, list) < 0)
				return -1;
			done = true;
		}
	}
	c->out = TAKE_PTR(out);
	return 0;
}

/* CONTAINER_INSTANCES (required, at most MAX) as a list of strings. */
static int get_refs(struct api_call *c, size_t max, const cJSON **ret)
{
	const cJSON *ref;
	if (api_get_array(c, c->in, "", "containerInstances", true, max, ret) < 0)
		return -1;
	cJSON_ArrayForEach(ref, *ret)
		if (!cJSON_IsString(ref))
			return api_error(c, 0, API_E_INVALID, "containerInstances: expected a list "
					 "of strings");
	return 0;
}

int api_op_describe_container_instances(struct api_call *c)
{
	char cluster[API_NAME_MAX + 1];
	const cJSON *refs;
	bool tags, active;
	if (get_refs(c, API_DESCRIBE_MAX, &refs) < 0 ||
	    api_get_include_tags(c, &tags) < 0 || instance_cluster(c, cluster, &active) < 0)
		return -1;
	return reply_instances(c, cluster, active, refs, tags);
}

/* ECS's rules (API reference, UpdateContainerInstancesState; developer
 * guide, "Draining Amazon ECS container instances"): DRAINING places no
 * new task on the instance and has the service scheduler stop the
 * services' tasks on it (PENDING ones at once, RUNNING ones within the
 * deployment configuration's minimumHealthyPercent), replacing them
 * elsewhere: here there is no elsewhere.  Standalone tasks are left
 * running.  ACTIVE again lets the services scale back up.  Every task
 * Berth runs in the cluster runs on this instance, Fargate's too. */
int api_op_update_container_instances_state(struct api_call *c)
{
	char cluster[API_NAME_MAX + 1];
	const cJSON *refs, *ref;
	const char *status;
	bool active;
	/* Up to 10, as ECS's API reference says for this operation. */
	if (get_refs(c, 10, &refs) < 0 ||
	    api_get_enum(c, c->in, "", "status", true, statuses, &status) < 0 ||
	    instance_cluster(c, cluster, &active) < 0)
		return -1;
	if (!cJSON_GetArraySize(refs))
		return api_error(c, 0, API_E_INVALID, "containerInstances can not be empty.");
	if (strcmp(status, "ACTIVE") != 0 && strcmp(status, "DRAINING") != 0)
		return api_error(c, 0, API_E_INVALID, "status: a container instance's status can "
				 "only be updated to ACTIVE or DRAINING, not %s", status);
	bool named = false;
	cJSON_ArrayForEach(ref, refs)
		named |= active && api_is_instance(c, cluster, ref->valuestring);
	if (named) {
		struct berth_err err = { 0 };
		int r = store_instance_draining_set(c->store, cluster,
						    strcmp(status, "DRAINING") == 0, &err);
		if (r < 0)
			return api_store_error(c, r, &err);
		svc_poke_cluster(c->svc, cluster);
	}
	return reply_instances(c, cluster, active, refs, false);
}
