/* daemon/ecs/services: CreateService, UpdateService, DeleteService,
 * DescribeServices, ListServices.  The API validates and records; the
 * service scheduler (daemon/svc.h) acts on the record. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/ecs/ecs.h"
#include "daemon/sched/sched.h"
#include "daemon/svc/svc.h"
#include "daemon/svc/svc_internal.h"
#include "daemon/sched/taskplan.h"

#define DESIRED_MAX 10000
#define GRACE_MAX 2147483647
#define SERVICE_TOKEN_MAX 36   /* CreateService clientToken, as ECS */

static const char *const launch_types[] = { "EC2", "FARGATE", "EXTERNAL", NULL };
static const char *const strategies[] = { "REPLICA", "DAEMON", NULL };
static const char *const propagate[] = { "TASK_DEFINITION", "SERVICE", "NONE", NULL };
static const char *const public_ip[] = { "ENABLED", "DISABLED", NULL };

/* Members of the request echoed in the Service as given. */
/* The members each operation answers for (docs/api.md "Member policy");
 * anything else a request asks for is refused. */
static const char *const create_members[] = {
	"cluster", "serviceName", "taskDefinition", "desiredCount", "clientToken", "launchType",
	"deploymentConfiguration", "networkConfiguration", "healthCheckGracePeriodSeconds",
	"schedulingStrategy", "deploymentController", "tags", "platformVersion",
	"placementStrategy", "propagateTags", "enableECSManagedTags", "enableExecuteCommand",
	"loadBalancers", "capacityProviderStrategy", NULL,
};
static const char *const update_members[] = {
	"cluster", "service", "taskDefinition", "desiredCount", "forceNewDeployment",
	"deploymentConfiguration", "networkConfiguration", "healthCheckGracePeriodSeconds",
	"platformVersion", "placementStrategy", "propagateTags", "enableECSManagedTags",
	"enableExecuteCommand", "loadBalancers", "capacityProviderStrategy", NULL,
};
static const char *const deployment_members[] = {
	"maximumPercent", "minimumHealthyPercent", "deploymentCircuitBreaker", NULL,
};

static const char *const echoed[] = {
	"launchType", "networkConfiguration", "deploymentConfiguration", "schedulingStrategy",
	"healthCheckGracePeriodSeconds", "placementConstraints", "placementStrategy",
	"propagateTags", "enableECSManagedTags", "enableExecuteCommand", "platformVersion",
	"loadBalancers", "capacityProviderStrategy",
};

/* ---- encoding ---- */

struct counts {
	int64_t running, pending;
};

static struct counts counts_of(const struct svc_view *w, const char *deployment)
{
	struct counts n = { 0 };
	for (size_t i = 0; i < w->n; i++) {
		const struct store_task *t = w->tasks[i];
		if (deployment && (!t->started_by || strcmp(t->started_by, deployment) != 0))
			continue;
		n.running += t->last_status == STORE_TASK_RUNNING;
		n.pending += t->last_status < STORE_TASK_RUNNING;
	}
	return n;
}

static bool copy_member(cJSON *dst, const cJSON *src, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(src, name);
	cJSON *d = v ? cJSON_Duplicate(v, true) : NULL;
	if (!v)
		return true;
	if (!d || !cJSON_AddItemToObject(dst, name, d)) {
		cJSON_Delete(d);
		return false;
	}
	return true;
}

/* The view is dropped after its answer is built: its configuration's
 * members move into the answer instead of being copied, under NAME (a
 * literal: not copied either). */
static bool move_member(cJSON *dst, cJSON *src, const char *name)
{
	cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(src, name);
	return !v || cJSON_AddItemToObjectCS(dst, name, v) || (cJSON_Delete(v), false);
}

/* The events as stored (svc_view_encode's cJSON output of the same
 * members, written in one transaction) go out unparsed: what is not even
 * shaped as a list is refused. */
static int stored_events(struct api_call *c, const struct svc_view *w, cJSON **ret)
{
	const char *json = w->row->events_json;
	size_t n = json ? strlen(json) : 0;
	if (n < 2 || json[0] != '[' || json[n - 1] != ']')
		return api_error(c, 0, API_E_SERVER, "service %s: the stored events do not parse",
				 w->row->name);
	return (*ret = cJSON_CreateRaw(json)) ? 0 : api_oom(c);
}

static int deployments_json(struct api_call *c, const struct svc_view *w, cJSON *o)
{
	cJSON *arr = json_add_array(o, "deployments");
	if (!arr)
		return api_oom(c);
	for (size_t i = 0; i < w->n_deps; i++) {
		/* A shown view's stored deployments, in the same order, are
		 * what svc_deployment_json() would build again. */
		cJSON *x = w->shown_deps ? cJSON_DetachItemFromArray(w->shown_deps, 0)
					 : svc_deployment_json(&w->deps[i]);
		struct counts n = counts_of(w, w->deps[i].id);
		if (!x || !cJSON_AddItemToArray(arr, x)) {
			cJSON_Delete(x);
			return api_oom(c);
		}
		if (!json_add_number(x, "desiredCount", i == 0 ? (double)w->row->desired_count : 0) ||
		    !json_add_number(x, "runningCount", (double)n.running) ||
		    !json_add_number(x, "pendingCount", (double)n.pending))
			return api_oom(c);
	}
	return 0;
}

static int service_json(struct api_call *c, struct svc_view *w, bool tags, cJSON **ret)
{
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	_cleanup_free_ char *cluster_arn = api_arn(c, "cluster", w->row->cluster);
	struct counts n = counts_of(w, NULL);
	cJSON *events = NULL;
	if (stored_events(c, w, &events) < 0)
		return -1;
	if (!o || !cluster_arn || !json_add_string(o, "serviceArn", w->row->arn) ||
	    !json_add_string(o, "serviceName", w->row->name) ||
	    !json_add_string(o, "clusterArn", cluster_arn) ||
	    !json_add_string(o, "status", store_service_status_name(w->row->status)) ||
	    !json_add_number(o, "desiredCount", (double)w->row->desired_count) ||
	    !json_add_number(o, "runningCount", (double)n.running) ||
	    !json_add_number(o, "pendingCount", (double)n.pending) ||
	    !json_add_string(o, "taskDefinition", w->n_deps ? w->deps[0].task_definition : NULL) ||
	    !json_add_number(o, "createdAt", (double)w->row->created_at / 1000.0) ||
	    !move_member(o, w->cfg, "createdBy") ||
	    (!cJSON_HasObjectItem(w->cfg, "loadBalancers") && !json_add_array(o, "loadBalancers")) ||
	    !json_add_array(o, "serviceRegistries") ||
	    !cJSON_AddItemToObject(o, "events", events)) {
		cJSON_Delete(events);   /* added to O on no failure path */
		return api_oom(c);
	}
	for (size_t i = 0; i < ARRAY_SIZE(echoed); i++)
		if (!move_member(o, w->cfg, echoed[i]))
			return api_oom(c);
	if (deployments_json(c, w, o) < 0)
		return -1;
	if (tags && api_add_tags(c, o, w->row->arn) < 0)
		return -1;
	*ret = TAKE_PTR(o);
	return 0;
}

static int reply_service(struct api_call *c, const char *cluster, const char *name, bool tags)
{
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	struct berth_err err = { 0 };
	int r = svc_view_load_shown(c->store, cluster, name, &w, &err);
	if (r < 0)
		return api_store_error(c, r, &err);
	cJSON *s, *out = cJSON_CreateObject();
	if (!out || service_json(c, &w, tags, &s) < 0) {
		cJSON_Delete(out);
		return out ? -1 : api_oom(c);
	}
	cJSON_AddItemToObject(out, "service", s);
	c->out = out;
	return 0;
}

/* ---- validation ---- */

static int check_deployment_config(struct api_call *c, const cJSON *dc)
{
	const char *p = "deploymentConfiguration.";
	const cJSON *cb;
	bool have, b;
	int64_t n;
	/* alarms, bake time, lifecycle hooks and the BLUE_GREEN, LINEAR and
	 * CANARY strategies are refused: only a rolling update runs here. */
	if (api_refuse_members(c, dc, p, deployment_members) < 0 ||
	    api_get_int(c, dc, p, "maximumPercent", false, 0, 2000, &have, &n) < 0 ||
	    api_get_int(c, dc, p, "minimumHealthyPercent", false, 0, 100, &have, &n) < 0 ||
	    api_get_object(c, dc, p, "deploymentCircuitBreaker", false, &cb) < 0)
		return -1;
	if (cb && (api_get_bool(c, cb, "deploymentConfiguration.deploymentCircuitBreaker.",
				"enable", &have, &b) < 0 || !have))
		return have ? -1 : api_error(c, 0, API_E_INVALID, "deploymentConfiguration."
					     "deploymentCircuitBreaker.enable: required");
	if (cb && (api_get_bool(c, cb, "deploymentConfiguration.deploymentCircuitBreaker.",
				"rollback", &have, &b) < 0 || !have))
		return have ? -1 : api_error(c, 0, API_E_INVALID, "deploymentConfiguration."
					     "deploymentCircuitBreaker.rollback: required");
	return 0;
}

static int check_network(struct api_call *c, const cJSON *nc)
{
	const cJSON *vpc, *subnets = NULL, *groups;
	const char *ip, *p = "networkConfiguration.awsvpcConfiguration.";
	if (api_get_object(c, nc, "networkConfiguration.", "awsvpcConfiguration", false, &vpc) < 0 ||
	    (vpc && (api_get_array(c, vpc, p, "subnets", true, 16, &subnets) < 0 ||
		     api_get_enum(c, vpc, p, "assignPublicIp", false, public_ip, &ip) < 0 ||
		     api_check_security_groups(c, vpc, p, &groups) < 0)))
		return -1;
	const cJSON *s;
	cJSON_ArrayForEach(s, subnets)
		if (!cJSON_IsString(s))
			return api_error(c, 0, API_E_INVALID, "%ssubnets: expected strings", p);
	if (vpc && !cJSON_GetArraySize(subnets))
		return api_error(c, 0, API_E_INVALID, "subnets can not be empty.");
	return 0;
}

/* The request's members Berth reads, type-checked; refusals of what it
 * cannot do. */
static int check_members(struct api_call *c, const char *const *handled)
{
	const char *s;
	const cJSON *o, *a;
	bool have, b;
	int64_t n;
	if (api_get_enum(c, c->in, "", "launchType", false, launch_types, &s) < 0 ||
	    api_get_enum(c, c->in, "", "schedulingStrategy", false, strategies, &s) < 0 ||
	    api_get_enum(c, c->in, "", "propagateTags", false, propagate, &s) < 0 ||
	    api_get_int(c, c->in, "", "healthCheckGracePeriodSeconds", false, 0, GRACE_MAX, &have,
			&n) < 0 ||
	    api_get_bool(c, c->in, "", "enableECSManagedTags", &have, &b) < 0 ||
	    api_get_bool(c, c->in, "", "enableExecuteCommand", &have, &b) < 0 ||
	    api_get_object(c, c->in, "", "deploymentConfiguration", false, &o) < 0 ||
	    (o && check_deployment_config(c, o) < 0) ||
	    api_get_object(c, c->in, "", "networkConfiguration", false, &o) < 0 ||
	    (o && check_network(c, o) < 0) || api_check_platform(c) < 0)
		return -1;
	static const char *const refused[] = { "serviceRegistries", "serviceConnectConfiguration",
					       "volumeConfigurations" };
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
		a = cJSON_GetObjectItemCaseSensitive(c->in, refused[i]);
		if ((cJSON_IsArray(a) && cJSON_GetArraySize(a)) || cJSON_IsObject(a))
			return api_error(c, 0, API_E_UNSUPPORTED, "%s: Berth does not support "
					 "service discovery or Service Connect",
					 refused[i]);
	}
	const char *lt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c->in, "launchType"));
	const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c->in,
										"schedulingStrategy"));
	if (lt && st && strcmp(lt, "FARGATE") == 0 && strcmp(st, "DAEMON") == 0)
		return api_error(c, 0, API_E_INVALID, "The DAEMON scheduling strategy is not "
				 "supported with the FARGATE launch type.");
	o = cJSON_GetObjectItemCaseSensitive(c->in, "deploymentController");
	s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "type"));
	if (s && strcmp(s, "ECS") != 0)
		return api_error(c, 0, API_E_UNSUPPORTED, "deploymentController.type %s: only the "
				 "ECS (rolling update) deployment controller is supported", s);
	return api_refuse_members(c, c->in, "", handled);
}

/* capacityProviderStrategy (CreateService, UpdateService): FARGATE and
 * FARGATE_SPOT, as for RunTask; a DAEMON service runs EC2 tasks, which no
 * Fargate provider runs.  1 when one was given. */
static int capacity_strategy(struct api_call *c, const char *cluster, bool daemon)
{
	bool given;
	const char *lt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c->in,
										"launchType"));
	if (api_check_capacity_strategy(c, cluster, lt, &given) < 0)
		return -1;
	if (given && daemon)
		return api_error(c, 0, API_E_INVALID, "capacityProviderStrategy: the DAEMON "
				 "scheduling strategy is not supported with the FARGATE and "
				 "FARGATE_SPOT capacity providers.");
	return given;
}

/* REF resolved to a definition a task can run now: its ARN into RET.
 * FARGATE: a capacity provider strategy was given (else the request's
 * launchType counts). */
static int runnable_td(struct api_call *c, const char *ref, const cJSON *netcfg, bool fargate,
		       char **ret)
{
	_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
	_cleanup_(cJSON_Deletep) cJSON *body = NULL;
	const char *launch_type = fargate ? "FARGATE" : cJSON_GetStringValue(
		cJSON_GetObjectItemCaseSensitive(c->in, "launchType"));
	if (api_runnable_definition(c, ref, NULL, netcfg != NULL, launch_type, &td, &body) < 0)
		return -1;
	*ret = strdup(td->arn);
	return *ret ? 0 : api_oom(c);
}

/* ---- CreateService ---- */

static int config_of(struct api_call *c, cJSON **ret)
{
	_cleanup_(cJSON_Deletep) cJSON *cfg = cJSON_CreateObject();
	if (!cfg)
		return api_oom(c);
	for (size_t i = 0; i < ARRAY_SIZE(echoed); i++)
		if (!copy_member(cfg, c->in, echoed[i]))
			return api_oom(c);
	char by[64];
	snprintf(by, sizeof(by), "arn:aws:iam::%s:root", c->account_id);
	cJSON *dc = cJSON_GetObjectItemCaseSensitive(cfg, "deploymentConfiguration");
	if (!dc)
		dc = cJSON_AddObjectToObject(cfg, "deploymentConfiguration");
	if (!dc || !cJSON_AddStringToObject(cfg, "createdBy", by) ||
	    (!cJSON_GetObjectItemCaseSensitive(dc, "maximumPercent") &&
	     !cJSON_AddNumberToObject(dc, "maximumPercent", 200)) ||
	    (!cJSON_GetObjectItemCaseSensitive(dc, "minimumHealthyPercent") &&
	     !cJSON_AddNumberToObject(dc, "minimumHealthyPercent", 100)) ||
	    (!cJSON_GetObjectItemCaseSensitive(cfg, "schedulingStrategy") &&
	     !cJSON_AddStringToObject(cfg, "schedulingStrategy", "REPLICA")) ||
	    /* ECS's defaults, shown by DescribeServices; the service's tasks
	     * get tags as these say (daemon/sched/tasktags.h). */
	    (!cJSON_GetObjectItemCaseSensitive(cfg, "propagateTags") &&
	     !cJSON_AddStringToObject(cfg, "propagateTags", "NONE")) ||
	    (!cJSON_GetObjectItemCaseSensitive(cfg, "enableECSManagedTags") &&
	     !cJSON_AddBoolToObject(cfg, "enableECSManagedTags", 0)))
		return api_oom(c);
	/* No launch type: FARGATE, but EC2 for a DAEMON service (Fargate
	 * runs no daemons); none with a capacity provider strategy, as ECS
	 * shows it (its tasks are FARGATE's: svc.c's launch_one). */
	const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cfg,
										"schedulingStrategy"));
	if (!cJSON_GetObjectItemCaseSensitive(cfg, "launchType") &&
	    !cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cfg, "capacityProviderStrategy")) &&
	    !cJSON_AddStringToObject(cfg, "launchType", strcmp(st, "DAEMON") == 0 ? "EC2"
										 : "FARGATE"))
		return api_oom(c);
	*ret = TAKE_PTR(cfg);
	return 0;
}

/* CreateService under a clientToken that made this very service: the same
 * request again (a retry) answers with the service (1) and changes
 * nothing.  0: go on (and a name taken otherwise is "not idempotent"). */
static int create_retry(struct api_call *c, const char *cluster, const char *name,
			const char *token)
{
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	struct berth_err err = { 0 };
	int r = svc_view_load(c->svc, cluster, name, &w, &err);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return api_store_error(c, r, &err);
	const char *was = w.state.client_token;
	return w.row->status == STORE_SERVICE_ACTIVE && was && strcmp(was, token) == 0 &&
	       cJSON_Compare(w.state.create_request, c->in, true);
}

/* The new service's row, its JSON still empty. */
static struct store_service *new_row(struct api_call *c, const char *cluster, const char *name,
				     int64_t desired, const cJSON *cfg)
{
	char path[2 * API_NAME_MAX + 2];
	snprintf(path, sizeof(path), "%s/%s", cluster, name);
	_cleanup_(store_service_freep) struct store_service *row = calloc(1, sizeof(*row));
	if (!row || !(row->arn = api_arn(c, "service", path)) || !(row->cluster = strdup(cluster)) ||
	    !(row->name = strdup(name)) || !(row->config_json = cJSON_PrintUnformatted(cfg)) ||
	    !(row->deployments_json = strdup("[]")) || !(row->events_json = strdup("[]")) ||
	    !(row->state_json = strdup("{}")))
		return NULL;
	row->created_at = c->now_ms;
	row->desired_count = desired;
	return TAKE_PTR(row);
}

static int insert_service(struct api_call *c, const char *cluster, const char *name,
			  int64_t desired, const char *td_arn, const cJSON *cfg, const char *token)
{
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	struct berth_err err = { 0 };
	struct store_service *row = new_row(c, cluster, name, desired, cfg);
	if (!row)
		return api_oom(c);
	int r = svc_view_parse(&w, row, &err);
	if (r == 0 && (r = svc_deploy(&w, td_arn, c->now_ms)) < 0)
		r = berth_errf(&err, ENOMEM, "service %s: out of memory", name);
	/* What a retry under the token is compared with (create_retry). */
	if (r == 0 && token &&
	    (!(w.state.client_token = strdup(token)) ||
	     !(w.state.create_request = cJSON_Duplicate(c->in, true))))
		r = berth_errf(&err, ENOMEM, "service %s: out of memory", name);
	if (r == 0)
		r = svc_view_encode(&w, &err);
	if (r == 0 && (r = store_service_create(c->store, w.row, &err)) == -EEXIST)
		return api_error(c, 0, API_E_INVALID, "Creation of service was not idempotent.");
	return r < 0 ? api_store_error(c, r, &err) : 0;
}

int api_op_create_service(struct api_call *c)
{
	const char *name, *ref, *strategy, *token;
	char cluster[API_NAME_MAX + 1];
	bool have;
	int64_t desired = 0;
	_cleanup_(api_tags_in_done) struct api_tags_in tags = { 0 };
	if (api_get_string(c, c->in, "", "serviceName", true, &name) < 0 ||
	    api_get_string(c, c->in, "", "taskDefinition", true, &ref) < 0 ||
	    api_get_int(c, c->in, "", "desiredCount", false, 0, DESIRED_MAX, &have, &desired) < 0 ||
	    api_get_client_token(c, SERVICE_TOKEN_MAX, &token) < 0 ||
	    check_members(c, create_members) < 0 || api_parse_tags(c, &tags) < 0 ||
	    api_get_cluster(c, true, cluster) < 0)
		return -1;
	if (!api_name_valid(name))
		return api_error(c, 0, API_E_INVALID, "serviceName: '%.255s' is not 1 to %d letters, "
				 "numbers, underscores and hyphens", name, API_NAME_MAX);
	int retry = token ? create_retry(c, cluster, name, token) : 0;
	if (retry != 0)
		return retry < 0 ? -1 : reply_service(c, cluster, name, tags.n > 0);
	api_get_enum(c, c->in, "", "schedulingStrategy", false, strategies, &strategy);
	bool daemon = strategy && strcmp(strategy, "DAEMON") == 0;
	int given = capacity_strategy(c, cluster, daemon);
	if (given < 0)
		return -1;
	if (daemon)
		desired = 1;  /* one host: exactly one task */
	_cleanup_free_ char *td_arn = NULL;
	_cleanup_(cJSON_Deletep) cJSON *cfg = NULL;
	if (runnable_td(c, ref, cJSON_GetObjectItemCaseSensitive(c->in, "networkConfiguration"),
			given, &td_arn) < 0 || api_check_load_balancers(c, td_arn) < 0 ||
	    config_of(c, &cfg) < 0 || insert_service(c, cluster, name, desired, td_arn, cfg, token) < 0)
		return -1;
	struct berth_err err = { 0 };
	if (tags.n) {
		_cleanup_(store_service_freep) struct store_service *row = NULL;
		int r = store_service_get(c->store, cluster, name, &row, &err);
		if (r == 0)
			r = store_tags_put(c->store, row->arn, tags.v, tags.n, &err);
		if (r < 0)
			return api_store_error(c, r, &err);
	}
	svc_poke(c->svc, cluster, name);
	return reply_service(c, cluster, name, tags.n > 0);
}

/* ---- UpdateService ---- */

static int service_ref(struct api_call *c, char *cluster, struct svc_view *w)
{
	const char *ref;
	if (api_get_string(c, c->in, "", "service", true, &ref) < 0 || api_get_cluster(c, false, cluster) < 0)
		return -1;
	struct berth_err err = { 0 };
	int r = svc_view_load(c->svc, cluster, ref, w, &err);
	if (r == 0 && strcmp(w->row->cluster, cluster) != 0)
		r = -ENOENT;
	if (r == -ENOENT || (r == 0 && w->row->status == STORE_SERVICE_INACTIVE))
		return api_error(c, 0, "ServiceNotFoundException", "Service not found.");
	if (r < 0)
		return api_store_error(c, r, &err);
	if (w->row->status != STORE_SERVICE_ACTIVE)
		return api_error(c, 0, "ServiceNotActiveException", "Service was not ACTIVE.");
	return 0;
}

/* An UpdateService deploymentConfiguration changes the members it names;
 * the rest (the circuit breaker, the other percentage) stay. */
static int merge_deployment_config(struct api_call *c, struct svc_view *w, const cJSON *v)
{
	cJSON *dc = cJSON_GetObjectItemCaseSensitive(w->cfg, "deploymentConfiguration");
	const cJSON *m;
	if (!dc && !(dc = cJSON_AddObjectToObject(w->cfg, "deploymentConfiguration")))
		return api_oom(c);
	cJSON_ArrayForEach(m, v) {
		cJSON *d = cJSON_Duplicate(m, true);
		cJSON_DeleteItemFromObjectCaseSensitive(dc, m->string);
		if (!d || !cJSON_AddItemToObject(dc, m->string, d)) {
			cJSON_Delete(d);
			return api_oom(c);
		}
	}
	return 0;
}

static int merge_config(struct api_call *c, struct svc_view *w)
{
	for (size_t i = 0; i < ARRAY_SIZE(echoed); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->in, echoed[i]);
		if (!v || cJSON_IsNull(v))
			continue;
		if (strcmp(echoed[i], "deploymentConfiguration") == 0) {
			if (merge_deployment_config(c, w, v) < 0)
				return -1;
			continue;
		}
		cJSON *d = cJSON_Duplicate(v, true);
		cJSON_DeleteItemFromObjectCaseSensitive(w->cfg, echoed[i]);
		if (!d || !cJSON_AddItemToObject(w->cfg, echoed[i], d)) {
			cJSON_Delete(d);
			return api_oom(c);
		}
	}
	struct berth_err err = { 0 };
	return svc_view_set_config(w, &err) < 0 ? api_oom(c) : 0;
}

int api_op_update_service(struct api_call *c)
{
	char cluster[API_NAME_MAX + 1];
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	const char *ref;
	bool have_count, have_force, force = false;
	int64_t desired;
	if (api_get_string(c, c->in, "", "taskDefinition", false, &ref) < 0 ||
	    api_get_int(c, c->in, "", "desiredCount", false, 0, DESIRED_MAX, &have_count,
			&desired) < 0 ||
	    api_get_bool(c, c->in, "", "forceNewDeployment", &have_force, &force) < 0 ||
	    check_members(c, update_members) < 0 || service_ref(c, cluster, &w) < 0)
		return -1;
	int given = capacity_strategy(c, cluster, w.spec.strategy == SVC_DAEMON);
	if (given < 0)
		return -1;
	/* A strategy takes the launch type's place, as on ECS. */
	if (given)
		cJSON_DeleteItemFromObjectCaseSensitive(w.cfg, "launchType");
	if (merge_config(c, &w) < 0)
		return -1;
	if (have_count && w.spec.strategy != SVC_DAEMON)
		w.row->desired_count = desired;
	_cleanup_free_ char *td_arn = NULL;
	if (ref && runnable_td(c, ref, w.spec.network, given, &td_arn) < 0)
		return -1;
	const char *current = w.n_deps ? w.deps[0].task_definition : NULL;
	if ((td_arn || current) && api_check_load_balancers(c, td_arn ? td_arn : current) < 0)
		return -1;
	if (!td_arn && force)
		td_arn = current ? strdup(current) : NULL;
	struct berth_err err = { 0 };
	if (td_arn && (force || !current || strcmp(td_arn, current) != 0) &&
	    svc_deploy(&w, td_arn, c->now_ms) < 0)
		return api_oom(c);
	if (svc_view_save(c->svc, &w, &err) < 0)
		return api_store_error(c, -EIO, &err);
	svc_poke(c->svc, cluster, w.row->name);
	return reply_service(c, cluster, w.row->name, false);
}

/* ---- DeleteService ---- */

int api_op_delete_service(struct api_call *c)
{
	char cluster[API_NAME_MAX + 1];
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	bool have, force = false;
	if (api_get_bool(c, c->in, "", "force", &have, &force) < 0 ||
	    service_ref(c, cluster, &w) < 0)
		return -1;
	if (w.row->desired_count > 0 && !force && w.spec.strategy != SVC_DAEMON)
		return api_error(c, 0, API_E_INVALID, "The service cannot be stopped while it is "
				 "scaled above 0.");
	w.row->status = STORE_SERVICE_DRAINING;
	w.row->desired_count = 0;
	struct berth_err err = { 0 };
	if (svc_view_save(c->svc, &w, &err) < 0)
		return api_store_error(c, -EIO, &err);
	svc_poke(c->svc, cluster, w.row->name);
	return reply_service(c, cluster, w.row->name, false);
}

/* ---- DescribeServices / ListServices ---- */

static int describe_one(struct api_call *c, const char *cluster, const cJSON *ref, bool tags,
			cJSON *services, cJSON *failures)
{
	if (!cJSON_IsString(ref))
		return api_error(c, 0, API_E_INVALID, "services: expected a list of strings");
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	struct berth_err err = { 0 };
	int r = svc_view_load_shown(c->store, cluster, ref->valuestring, &w, &err);
	if (r == 0 && strcmp(w.row->cluster, cluster) != 0)
		r = -ENOENT;
	if (r == -ENOENT)
		return api_add_missing(c, failures, "service", cluster, ref->valuestring);
	cJSON *o;
	if (r < 0)
		return api_store_error(c, r, &err);
	if (service_json(c, &w, tags, &o) < 0)
		return -1;
	if (!cJSON_AddItemToArray(services, o)) {
		cJSON_Delete(o);
		return api_oom(c);
	}
	return 0;
}

int api_op_describe_services(struct api_call *c)
{
	const cJSON *refs, *ref;
	char cluster[API_NAME_MAX + 1];
	bool tags;
	if (api_get_array(c, c->in, "", "services", true, 10, &refs) < 0 ||
	    api_get_include_tags(c, &tags) < 0 || api_get_cluster(c, false, cluster) < 0)
		return -1;
	if (!cJSON_GetArraySize(refs))
		return api_error(c, 0, API_E_INVALID, "Services cannot be empty.");
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *services = out ? json_add_array(out, "services") : NULL;
	cJSON *failures = out ? json_add_array(out, "failures") : NULL;
	if (!services || !failures)
		return api_oom(c);
	cJSON_ArrayForEach(ref, refs)
		if (describe_one(c, cluster, ref, tags, services, failures) < 0)
			return -1;
	c->out = TAKE_PTR(out);
	return 0;
}

int api_op_list_services(struct api_call *c)
{
	char cluster[API_NAME_MAX + 1];
	const char *lt, *strategy;
	struct store_page page;
	if (api_get_cluster(c, false, cluster) < 0 ||
	    api_get_enum(c, c->in, "", "launchType", false, launch_types, &lt) < 0 ||
	    api_get_enum(c, c->in, "", "schedulingStrategy", false, strategies, &strategy) < 0 ||
	    api_get_page(c, &page) < 0)
		return -1;
	struct store_list l = { 0 };
	struct berth_err err = { 0 };
	struct store_service_filter f = { .cluster = cluster, .launch_type = lt,
					  .scheduling_strategy = strategy };
	int r = store_service_list(c->store, &f, &page, &l, &err);
	if (r < 0)
		return api_store_error(c, r, &err);
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *arns = out ? json_add_array(out, "serviceArns") : NULL;
	for (size_t i = 0; arns && i < l.n; i++)
		if (!cJSON_AddItemToArray(arns, cJSON_CreateString(l.items[i])))
			arns = NULL;
	if (arns && l.next_token && !json_add_string(out, "nextToken", l.next_token))
		arns = NULL;
	store_list_clear(&l);
	if (!arns)
		return api_oom(c);
	c->out = TAKE_PTR(out);
	return 0;
}
