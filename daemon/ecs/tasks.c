/* daemon/ecs/tasks: RunTask, StopTask, DescribeTasks, ListTasks.
 *
 * The API validates; the scheduler (daemon/sched/sched.h) creates and stops.
 * RunTask validates the whole request and decides whether Berth can run
 * the definition (taskplan_check) before anything is written, then
 * sched_run_task() places, inserts (with the clientToken record and tags,
 * in one transaction) and launches the tasks; it answers at once, as ECS
 * does, with the tasks PENDING.  StopTask is sched_stop_task(). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/ecs/ecs.h"
#include "daemon/sched/sched.h"
#include "daemon/ecs/taskdef.h"
#include "daemon/sched/taskplan.h"
#include "daemon/sched/tasktags.h"

#define DEFAULT_CLUSTER "default"
#define RUN_COUNT_MAX SCHED_RUN_MAX
#define STARTED_BY_MAX 128
#define GROUP_MAX 255
#define CLIENT_TOKEN_MAX 64   /* RunTask's; CreateService's is 36 */
#define REASON_MAX 1024
#define OVERRIDES_MAX 8192          /* characters, as ECS */
#define DEFAULT_STOP_REASON "Task stopped by user"

static const char *const launch_types[] = { "EC2", "FARGATE", "EXTERNAL", NULL };
static const char *const desired_statuses[] = { "RUNNING", "PENDING", "STOPPED", NULL };
static const char *const public_ip[] = { "ENABLED", "DISABLED", NULL };
/* What RunTask answers for (docs/api.md "Member policy"); anything else a
 * request asks for is refused.  placementStrategy is a no-op as on any
 * one-instance cluster: every strategy picks the same instance. */
static const char *const run_members[] = {
	"cluster", "count", "group", "launchType", "networkConfiguration", "overrides",
	"startedBy", "tags", "taskDefinition", "clientToken", "platformVersion",
	"placementStrategy", "capacityProviderStrategy", "propagateTags", "enableECSManagedTags",
	"enableExecuteCommand", "placementConstraints", NULL,
};
static const char *const start_members[] = {
	"cluster", "containerInstances", "group", "networkConfiguration", "overrides", "startedBy",
	"tags", "taskDefinition", "propagateTags", "enableECSManagedTags", "enableExecuteCommand",
	NULL,
};
static const char *const propagate_values[] = { "TASK_DEFINITION", "SERVICE", "NONE", NULL };
static const char *const override_members[] = {
	"containerOverrides", "cpu", "memory", "taskRoleArn", NULL,
};
static const char *const container_override_members[] = {
	"name", "command", "environment", "cpu", "memory", "memoryReservation", NULL,
};

/* ---- encoding ---- */

/* Members named by a literal: the item points at the name instead of
 * copying it, an allocation less for each of the ~500 members of a
 * DescribeTasks of ten tasks. */
static bool put_item(cJSON *o, const char *name, cJSON *v)
{
	if (v && cJSON_AddItemToObjectCS(o, name, v))
		return true;
	cJSON_Delete(v);
	return false;
}

static bool put_str(cJSON *o, const char *name, const char *v)
{
	return put_item(o, name, cJSON_CreateString(v ? v : ""));
}

static bool put_num(cJSON *o, const char *name, double v)
{
	return put_item(o, name, cJSON_CreateNumber(v));
}

static bool add_ms(cJSON *o, const char *name, int64_t ms)
{
	return !ms || put_num(o, name, (double)ms / 1000.0);
}

static bool add_opt(cJSON *o, const char *name, const char *v)
{
	return !v || put_str(o, name, v);
}

/* JSON this daemon stored (cJSON's own output, written in one transaction
 * to a database checked at open) goes out as it is, unparsed; what is not
 * even shaped as an object or a list is refused. */
static int add_json(struct api_call *c, cJSON *o, const char *name, const char *json)
{
	if (!json)
		return 0;
	size_t n = strlen(json);
	bool shaped = n >= 2 && ((json[0] == '{' && json[n - 1] == '}') ||
				 (json[0] == '[' && json[n - 1] == ']'));
	if (!shaped)
		return api_error(c, 0, API_E_SERVER, "%s: the stored JSON does not parse", name);
	if (!put_item(o, name, cJSON_CreateRaw(json)))
		return api_oom(c);
	return 0;
}

static int container_json(struct api_call *c, const struct store_task *t,
			  const struct store_container *k, cJSON *arr)
{
	cJSON *o = json_add_object(arr);
	if (!o || !put_str(o, "containerArn", k->arn) ||
	    !put_str(o, "taskArn", t->arn) || !put_str(o, "name", k->name) ||
	    !put_str(o, "image", k->image) || !add_opt(o, "imageDigest", k->image_digest) ||
	    !add_opt(o, "runtimeId", k->runtime_id) ||
	    !put_str(o, "lastStatus", store_task_status_name(k->last_status)) ||
	    (k->has_exit_code && !put_num(o, "exitCode", k->exit_code)) ||
	    !add_opt(o, "reason", k->reason) ||
	    !put_str(o, "healthStatus", store_health_name(k->health_status)))
		return api_oom(c);
	_cleanup_(cJSON_Deletep) cJSON *net = k->network_json ? cJSON_Parse(k->network_json) : NULL;
	const char *keys[] = { "networkInterfaces", "networkBindings" };
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(net, keys[i]);
		if (!v)
			v = cJSON_CreateArray();
		if (!put_item(o, keys[i], v))
			return api_oom(c);
	}
	return 0;
}

static int task_json(struct api_call *c, const struct store_task *t, bool tags, cJSON **ret)
{
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	_cleanup_free_ char *cluster_arn = api_arn(c, "cluster", t->cluster);
	char az[64];
	snprintf(az, sizeof(az), "%sa", c->region);
	bool fargate = t->launch_type && strcmp(t->launch_type, "FARGATE") == 0;
	/* An EC2 task names its container instance (the host), as on ECS;
	 * a Fargate one has none. */
	_cleanup_free_ char *instance = fargate ? NULL : api_instance_arn(c, t->cluster);
	if (!o || !cluster_arn || (!fargate && !instance) || !put_str(o, "taskArn", t->arn) ||
	    (instance && !put_str(o, "containerInstanceArn", instance)) ||
	    !put_str(o, "clusterArn", cluster_arn) ||
	    !put_str(o, "taskDefinitionArn", t->task_definition_arn) ||
	    !add_opt(o, "group", t->group) || !add_opt(o, "startedBy", t->started_by) ||
	    !add_opt(o, "launchType", t->launch_type) ||
	    (fargate && !put_str(o, "platformVersion", "1.4.0")) ||
	    (fargate && !put_str(o, "platformFamily", "Linux")) ||
	    !put_str(o, "availabilityZone", az) || !add_opt(o, "cpu", t->cpu) ||
	    !add_opt(o, "memory", t->memory) ||
	    !put_str(o, "lastStatus", store_task_status_name(t->last_status)) ||
	    !put_str(o, "desiredStatus", store_task_status_name(t->desired_status)) ||
	    !put_str(o, "healthStatus", store_health_name(t->health_status)) ||
	    !add_opt(o, "stopCode", t->stop_code) || !add_opt(o, "stoppedReason", t->stopped_reason) ||
	    !put_num(o, "version", (double)t->version) ||
	    !add_ms(o, "createdAt", t->created_at) || !add_ms(o, "pullStartedAt", t->pull_started_at) ||
	    !add_ms(o, "pullStoppedAt", t->pull_stopped_at) ||
	    !add_ms(o, "startedAt", t->started_at) || !add_ms(o, "stoppingAt", t->stopping_at) ||
	    !add_ms(o, "executionStoppedAt", t->execution_stopped_at) ||
	    !add_ms(o, "stoppedAt", t->stopped_at) ||
	    !put_item(o, "enableExecuteCommand", cJSON_CreateBool(t->enable_execute_command)))
		return api_oom(c);
	if (t->last_status == STORE_TASK_RUNNING &&
	    (!put_str(o, "connectivity", "CONNECTED") ||
	     !add_ms(o, "connectivityAt", t->started_at)))
		return api_oom(c);
	if (add_json(c, o, "overrides", t->overrides_json) < 0 ||
	    add_json(c, o, "attachments", t->attachments_json) < 0)
		return -1;
	cJSON *ctrs = json_add_array(o, "containers");
	for (size_t i = 0; ctrs && i < t->n_containers; i++)
		if (container_json(c, t, &t->containers[i], ctrs) < 0)
			return -1;
	if (!ctrs)
		return api_oom(c);
	if (tags && api_add_tags(c, o, t->arn) < 0)
		return -1;
	*ret = TAKE_PTR(o);
	return 0;
}

static int add_task(struct api_call *c, cJSON *arr, const char *id, bool tags)
{
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	struct berth_err err = { 0 };
	int r = store_task_get(c->store, id, &t, &err);
	if (r < 0)
		return api_store_error(c, r, &err);
	cJSON *o;
	if (task_json(c, t, tags, &o) < 0)
		return -1;
	if (!cJSON_AddItemToArray(arr, o)) {
		cJSON_Delete(o);
		return api_oom(c);
	}
	return 0;
}

/* ---- the cluster member ---- */

int api_get_cluster(struct api_call *c, bool create_default, char *ret)
{
	const char *ref;
	if (api_get_string(c, c->in, "", "cluster", false, &ref) < 0)
		return -1;
	_cleanup_(store_cluster_freep) struct store_cluster *cl = NULL;
	struct berth_err err = { 0 };
	int r;
	if (create_default && (!ref || strcmp(ref, DEFAULT_CLUSTER) == 0)) {
		_cleanup_free_ char *arn = api_arn(c, "cluster", DEFAULT_CLUSTER);
		struct store_cluster in = { .name = DEFAULT_CLUSTER, .arn = arn };
		r = arn ? store_cluster_create(c->store, &in, c->now_ms, &cl, NULL, &err) : -ENOMEM;
	} else {
		r = store_cluster_find(c->store, ref ? ref : DEFAULT_CLUSTER, &cl, &err);
	}
	if (r == -ENOENT || (r == 0 && cl->status != STORE_CLUSTER_ACTIVE && create_default))
		return api_error(c, 0, API_E_CLUSTER_NF, "Cluster not found.");
	if (r < 0)
		return api_store_error(c, r, &err);
	snprintf(ret, API_NAME_MAX + 1, "%s", cl->name);
	return 0;
}

/* ---- RunTask ---- */

struct run_req {
	char cluster[API_NAME_MAX + 1];
	const char *td_ref, *launch_type, *started_by, *group, *client_token;
	int64_t count;
	const cJSON *overrides;
	const char *subnet;         /* awsvpcConfiguration.subnets[0] */
	const cJSON *security_groups; /* awsvpcConfiguration.securityGroups */
	struct api_tags_in tags;
	bool propagate_td;          /* propagateTags TASK_DEFINITION */
	bool managed_tags;          /* enableECSManagedTags */
	bool enable_execute_command;
	/* What placementConstraints leave: count of the asked, the others
	 * failing for UNPLACED. */
	int64_t asked;
	const char *unplaced;
};

static bool charset(const char *s, const char *set)
{
	return strspn(s, set) == strlen(s);
}

#define ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

static int parse_strings(struct api_call *c, const cJSON *o, const char *path, const char *name,
			 const cJSON **ret)
{
	if (api_get_array(c, o, path, name, false, 1000, ret) < 0)
		return -1;
	const cJSON *v;
	int i = 0;
	cJSON_ArrayForEach(v, *ret)
		if (!cJSON_IsString(v))
			return api_error(c, 0, API_E_INVALID, "%s%s[%d]: expected a string", path,
					 name, i);
		else
			i++;
	return 0;
}

static int parse_container_override(struct api_call *c, const cJSON *co, int i)
{
	char path[48];
	snprintf(path, sizeof(path), "overrides.containerOverrides[%d].", i);
	const char *s;
	const cJSON *arr, *kv;
	bool have;
	int64_t n;
	if (!cJSON_IsObject(co))
		return api_error(c, 0, API_E_INVALID, "%.*s: expected an object",
				 (int)strlen(path) - 1, path);
	if (api_refuse_members(c, co, path, container_override_members) < 0 ||
	    api_get_string(c, co, path, "name", false, &s) < 0 ||
	    parse_strings(c, co, path, "command", &arr) < 0 ||
	    api_get_array(c, co, path, "environment", false, 1000, &arr) < 0)
		return -1;
	int k = 0;
	cJSON_ArrayForEach(kv, arr) {
		char p2[96];
		snprintf(p2, sizeof(p2), "%senvironment[%d].", path, k++);
		if (!cJSON_IsObject(kv))
			return api_error(c, 0, API_E_INVALID, "%.*s: expected an object",
					 (int)strlen(p2) - 1, p2);
		if (api_get_string(c, kv, p2, "name", false, &s) < 0 ||
		    api_get_string(c, kv, p2, "value", false, &s) < 0)
			return -1;
	}
	static const char *const ints[] = { "cpu", "memory", "memoryReservation" };
	for (size_t j = 0; j < ARRAY_SIZE(ints); j++)
		if (api_get_int(c, co, path, ints[j], false, 0, INT32_MAX, &have, &n) < 0)
			return -1;
	return 0;
}

static int parse_overrides(struct api_call *c, struct run_req *q)
{
	if (api_get_object(c, c->in, "", "overrides", false, &q->overrides) < 0)
		return -1;
	if (!q->overrides)
		return 0;
	_cleanup_free_ char *text = cJSON_PrintUnformatted(q->overrides);
	if (!text)
		return api_oom(c);
	if (api_utf8_chars(text) > OVERRIDES_MAX)
		return api_error(c, 0, API_E_INVALID, "overrides: Container Overrides length must be "
				 "at most %d", OVERRIDES_MAX);
	const cJSON *arr, *co;
	const char *s;
	if (api_refuse_members(c, q->overrides, "overrides.", override_members) < 0 ||
	    api_get_array(c, q->overrides, "overrides.", "containerOverrides", false, 100, &arr) < 0 ||
	    api_get_string(c, q->overrides, "overrides.", "cpu", false, &s) < 0 ||
	    api_get_string(c, q->overrides, "overrides.", "memory", false, &s) < 0)
		return -1;
	int i = 0;
	cJSON_ArrayForEach(co, arr)
		if (parse_container_override(c, co, i++) < 0)
			return -1;
	return 0;
}

int api_check_security_groups(struct api_call *c, const cJSON *vpc, const char *path,
			      const cJSON **ret)
{
	if (api_get_array(c, vpc, path, "securityGroups", false, API_SECURITY_GROUPS_MAX, ret) < 0)
		return -1;
	const cJSON *v;
	int i = 0;
	cJSON_ArrayForEach(v, *ret) {
		const char *g = cJSON_GetStringValue(v);
		/* Joined by ',' in the task's attachment (sched_eni_json). */
		if (!g || !*g || strlen(g) > 255 || strpbrk(g, ", \t\n"))
			return api_error(c, 0, API_E_INVALID, "%ssecurityGroups[%d]: expected 1 to "
					 "255 characters without commas or spaces", path, i);
		i++;
	}
	return 0;
}

static int parse_network(struct api_call *c, struct run_req *q)
{
	const cJSON *nc, *vpc, *subnets;
	const char *ip;
	if (api_get_object(c, c->in, "", "networkConfiguration", false, &nc) < 0)
		return -1;
	if (!nc)
		return 0;
	const char *p = "networkConfiguration.awsvpcConfiguration.";
	if (api_get_object(c, nc, "networkConfiguration.", "awsvpcConfiguration", false, &vpc) < 0 ||
	    (vpc && (parse_strings(c, vpc, p, "subnets", &subnets) < 0 ||
		     api_check_security_groups(c, vpc, p, &q->security_groups) < 0 ||
		     api_get_enum(c, vpc, p, "assignPublicIp", false, public_ip, &ip) < 0)))
		return -1;
	if (vpc && !subnets)
		return api_error(c, 0, API_E_INVALID, "%ssubnets: required", p);
	if (vpc && !cJSON_GetArraySize(subnets))
		return api_error(c, 0, API_E_INVALID, "subnets can not be empty.");
	if (vpc && cJSON_GetArraySize(subnets) > 16)
		return api_error(c, 0, API_E_INVALID, "%ssubnets: at most 16", p);
	if (vpc && cJSON_GetArraySize(subnets))
		q->subnet = cJSON_GetArrayItem(subnets, 0)->valuestring;
	return 0;
}

int api_check_capacity_strategy(struct api_call *c, const char *cluster,
				const char *launch_type, bool *ret_given)
{
	const cJSON *arr, *it;
	*ret_given = false;
	if (api_get_array(c, c->in, "", "capacityProviderStrategy", false, 6, &arr) < 0)
		return -1;
	if (!cJSON_GetArraySize(arr))
		return 0;
	if (launch_type)
		return api_error(c, 0, API_E_INVALID, "Specifying both a launch type and capacity "
				 "provider strategy is not supported. Remove one and try again.");
	/* The default cluster may not exist yet: then it has no providers. */
	_cleanup_(store_cluster_freep) struct store_cluster *cl = NULL;
	struct berth_err err = { 0 };
	int r = store_cluster_find(c->store, cluster[0] ? cluster : DEFAULT_CLUSTER, &cl, &err);
	if (r < 0 && r != -ENOENT)
		return api_store_error(c, r, &err);
	_cleanup_(cJSON_Deletep) cJSON *cap = cl && cl->capacity_json
						      ? cJSON_Parse(cl->capacity_json) : NULL;
	const cJSON *have_list = cJSON_GetObjectItemCaseSensitive(cap, "capacityProviders");
	int i = 0;
	cJSON_ArrayForEach(it, arr) {
		char path[40];
		const char *name;
		bool have;
		int64_t n;
		snprintf(path, sizeof(path), "capacityProviderStrategy[%d].", i++);
		if (!cJSON_IsObject(it))
			return api_error(c, 0, API_E_INVALID, "%.*s: expected an object",
					 (int)strlen(path) - 1, path);
		if (api_get_string(c, it, path, "capacityProvider", true, &name) < 0 ||
		    api_get_int(c, it, path, "weight", false, 0, 1000, &have, &n) < 0 ||
		    api_get_int(c, it, path, "base", false, 0, 100000, &have, &n) < 0)
			return -1;
		bool associated = false;
		const cJSON *p;
		cJSON_ArrayForEach(p, have_list)
			associated |= cJSON_IsString(p) && strcmp(p->valuestring, name) == 0;
		if (!associated)
			return api_error(c, 0, API_E_INVALID, "The specified capacity provider strategy "
					 "cannot contain a capacity provider that is not associated "
					 "with the cluster. Associate the capacity provider with the "
					 "cluster or specify a valid capacity provider and try again.");
	}
	*ret_given = true;
	return 0;
}

/* RunTask's capacityProviderStrategy: its tasks run as FARGATE ones. */
static int parse_capacity_strategy(struct api_call *c, struct run_req *q)
{
	bool given;
	if (api_check_capacity_strategy(c, q->cluster, q->launch_type, &given) < 0)
		return -1;
	if (given)
		q->launch_type = "FARGATE";
	return 0;
}

/* propagateTags TASK_DEFINITION copies the definition's tags to each task;
 * enableECSManagedTags adds aws:ecs:clusterName, as ECS does. */
static int parse_tag_options(struct api_call *c, struct run_req *q)
{
	const char *p;
	bool have;
	if (api_get_enum(c, c->in, "", "propagateTags", false, propagate_values, &p) < 0 ||
	    api_get_bool(c, c->in, "", "enableECSManagedTags", &have, &q->managed_tags) < 0)
		return -1;
	if (p && strcmp(p, "SERVICE") == 0)
		return api_error(c, 0, API_E_INVALID, "propagateTags SERVICE: a task RunTask "
				 "starts belongs to no service; use TASK_DEFINITION or NONE.");
	q->propagate_td = p && strcmp(p, "TASK_DEFINITION") == 0;
	return 0;
}

static int parse_run(struct api_call *c, struct run_req *q, const char *const *members)
{
	bool have, have_exec;
	if (api_get_string(c, c->in, "", "taskDefinition", true, &q->td_ref) < 0 ||
	    api_get_int(c, c->in, "", "count", false, 1, RUN_COUNT_MAX, &have, &q->count) < 0 ||
	    api_get_enum(c, c->in, "", "launchType", false, launch_types, &q->launch_type) < 0 ||
	    api_get_string(c, c->in, "", "startedBy", false, &q->started_by) < 0 ||
	    api_get_string(c, c->in, "", "group", false, &q->group) < 0 ||
	    api_get_client_token(c, CLIENT_TOKEN_MAX, &q->client_token) < 0 ||
	    api_get_bool(c, c->in, "", "enableExecuteCommand", &have_exec,
			 &q->enable_execute_command) < 0 ||
	    parse_overrides(c, q) < 0 || parse_network(c, q) < 0 || api_parse_tags(c, &q->tags) < 0 ||
	    api_check_platform(c) < 0 || parse_tag_options(c, q) < 0 ||
	    api_refuse_members(c, c->in, "", members) < 0)
		return -1;
	if (!have)
		q->count = 1;
	if (q->started_by && (strlen(q->started_by) > STARTED_BY_MAX ||
			      !charset(q->started_by, ALNUM "-_/")))
		return api_error(c, 0, API_E_INVALID, "startedBy: up to %d letters, numbers, "
				 "hyphens, underscores and slashes", STARTED_BY_MAX);
	if (q->group && (!*q->group || strlen(q->group) > GROUP_MAX))
		return api_error(c, 0, API_E_INVALID, "group: 1 to %d characters", GROUP_MAX);
	return 0;
}

/* Is FARGATE among the definition's computed compatibilities? */
static bool fargate_compatible(const cJSON *body)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(body, "compatibilities"))
		if (cJSON_IsString(it) && strcmp(it->valuestring, "FARGATE") == 0)
			return true;
	return false;
}

int api_runnable_definition(struct api_call *c, const char *ref, const cJSON *overrides,
			    bool has_netcfg, const char *launch_type,
			    struct store_task_definition **ret, cJSON **ret_body)
{
	struct berth_err err = { 0 };
	int r = store_task_definition_get(c->store, ref, ret, &err);
	if (r == -ENOENT || r == -EINVAL)
		return api_error(c, 0, API_E_CLIENT, "Unable to describe task definition %.255s.", ref);
	if (r < 0)
		return api_store_error(c, r, &err);
	if ((*ret)->status != STORE_TD_ACTIVE)
		return api_error(c, 0, API_E_CLIENT, "TaskDefinition is inactive: %s", (*ret)->arn);
	*ret_body = cJSON_Parse((*ret)->body_json);
	if (!*ret_body)
		return api_error(c, 0, API_E_SERVER, "%s: the stored definition does not parse",
				 (*ret)->arn);
	const char *nm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(*ret_body,
									       "networkMode"));
	if (nm && strcmp(nm, "awsvpc") == 0 && !has_netcfg)
		return api_error(c, 0, API_E_INVALID, "Network Configuration must be provided when "
				 "networkMode 'awsvpc' is specified.");
	/* ECS's too: bridge, host and none tasks have no interface to configure. */
	if (nm && strcmp(nm, "awsvpc") != 0 && has_netcfg)
		return api_error(c, 0, API_E_INVALID, "Network Configuration is not valid for the "
				 "given networkMode of this task definition.");
	/* ECS's rule: every Fargate task has a hard memory limit and a CPU
	 * quota, its task cpu and memory. */
	if (launch_type && strcmp(launch_type, "FARGATE") == 0 && !fargate_compatible(*ret_body))
		return api_error(c, 0, API_E_INVALID, "Task definition does not support launch_type "
				 "FARGATE.");
	r = taskplan_check(*ret_body, overrides, &err);
	if (r == 0)
		r = policy_check(sched_policy(c->sched), *ret_body, &err);
	if (r == -EINVAL)
		return api_error(c, 0, API_E_INVALID, "%s", err.msg);
	if (r < 0)
		return api_error(c, 0, API_E_CLIENT, "%s: %s", (*ret)->arn, err.msg);
	return 0;
}

/* RunTask's writes that go in one transaction with its tasks (Q's
 * clientToken record, its tags on each task). */
struct run_extra {
	const struct run_req *q;
	const char *request_json;   /* the request, recorded under its clientToken */
	const char *td_arn;
};

/* A new task's tags (daemon/sched/tasktags.h). */
static int tag_task(struct store *s, const struct run_extra *x, const char *arn,
		    struct berth_err *err)
{
	const struct run_req *q = x->q;
	struct tasktags t = { .propagate_from = q->propagate_td ? x->td_arn : NULL,
			      .managed = q->managed_tags, .cluster = q->cluster,
			      .extra = q->tags.v, .n_extra = q->tags.n };
	return tasktags_put(s, arn, &t, err);
}

static int run_extra_fn(struct store *s, void *arg, const struct store_task *tasks, size_t n,
			struct berth_err *err)
{
	const struct run_extra *x = arg;
	const struct run_req *q = x->q;
	int r = q->client_token ? store_run_request_put(s, q->cluster, q->client_token,
							x->request_json, err) : 0;
	for (size_t i = 0; r == 0 && i < n; i++)
		r = tag_task(s, x, tasks[i].arn, err);
	return r;
}

static void run_req_done(struct run_req *q)
{
	api_tags_in_done(&q->tags);
}

/* Tasks RunTask could not place: N_FAILED × {arn: the container
 * instance, reason: WHY[, detail: DETAIL]}, as ECS reports them. */
struct run_failures {
	int64_t n_failed;
	const char *why, *detail;
	const char *cluster;
};

/* RunTask's answer: {"tasks": the tasks REFS[0..N) (ids or ARNs) as they
 * are now, "failures": F's}. */
static int reply_run(struct api_call *c, const char *const *refs, size_t n, bool tags,
		     const struct run_failures *f)
{
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *arr = out ? json_add_array(out, "tasks") : NULL;
	cJSON *failures = arr ? json_add_array(out, "failures") : NULL;
	if (!failures)
		return api_oom(c);
	for (size_t i = 0; i < n; i++)
		if (add_task(c, arr, refs[i], tags) < 0)
			return -1;
	_cleanup_free_ char *arn = f && f->n_failed ? api_instance_arn(c, f->cluster) : NULL;
	for (int64_t i = 0; f && i < f->n_failed; i++) {
		cJSON *o = json_add_object(failures);
		if (!arn || !o || !json_add_string(o, "arn", arn) ||
		    !json_add_string(o, "reason", f->why) ||
		    (f->detail && !json_add_string(o, "detail", f->detail)))
			return api_oom(c);
	}
	c->out = TAKE_PTR(out);
	return 0;
}

/* A RunTask whose clientToken was seen: the same request again answers with
 * the tasks it made (1), as ECS does for a retry; another request under that
 * token is a ConflictException naming them.  0: a new token. */
static int run_retry(struct api_call *c, const struct run_req *q)
{
	_cleanup_free_ char *request = NULL;
	_cleanup_(store_list_clear) struct store_list arns = { 0 };
	struct berth_err err = { 0 };
	int r = store_run_request_get(c->store, q->cluster, q->client_token, &request, &arns, &err);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return api_store_error(c, r, &err);
	_cleanup_(cJSON_Deletep) cJSON *first = cJSON_Parse(request);
	if (!first)
		return api_error(c, 0, API_E_SERVER, "client token %s: the stored request does not "
				 "parse", q->client_token);
	if (!cJSON_Compare(first, c->in, true)) {
		c->error_members = cJSON_CreateObject();
		cJSON *ids = c->error_members ? json_add_array(c->error_members, "resourceIds") : NULL;
		for (size_t i = 0; ids && i < arns.n; i++)
			if (!cJSON_AddItemToArray(ids, cJSON_CreateString(arns.items[i])))
				ids = NULL;
		if (!ids)
			return api_oom(c);
		return api_error(c, 0, API_E_CONFLICT, "The clientToken %s is already in use with a "
				 "different RunTask request (tasks in resourceIds).", q->client_token);
	}
	return reply_run(c, (const char *const *)arns.items, arns.n, q->tags.n > 0, NULL) < 0 ? -1
											       : 1;
}

static int run_tasks(struct api_call *c, struct run_req *qp,
		     const struct store_task_definition *td, const cJSON *body);

/* placementConstraints against the one container instance: how many of
 * the count may run. */
static int place(struct api_call *c, struct run_req *q)
{
	const cJSON *pc;
	int64_t placed;
	q->asked = q->count;
	if (api_get_array(c, c->in, "", "placementConstraints", false, 10, &pc) < 0 ||
	    api_check_placement(c, q->cluster, pc, q->count, &q->unplaced, &placed) < 0)
		return -1;
	q->count = placed;
	return 0;
}

int api_op_run_task(struct api_call *c)
{
	_cleanup_(run_req_done) struct run_req q = { 0 };
	_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
	_cleanup_(cJSON_Deletep) cJSON *body = NULL;
	/* A named cluster must exist first; the default one is made only
	 * once the request is valid: ECS creates none for a RunTask it
	 * refuses. */
	const char *ref = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c->in, "cluster"));
	bool dflt = !ref || strcmp(ref, DEFAULT_CLUSTER) == 0;
	if (parse_run(c, &q, run_members) < 0 || (!dflt && api_get_cluster(c, true, q.cluster) < 0) ||
	    parse_capacity_strategy(c, &q) < 0 ||
	    api_runnable_definition(c, q.td_ref, q.overrides,
				    cJSON_GetObjectItemCaseSensitive(c->in, "networkConfiguration") != NULL,
				    q.launch_type, &td, &body) < 0 ||
	    (dflt && api_get_cluster(c, true, q.cluster) < 0) || place(c, &q) < 0)
		return -1;
	int retry = q.client_token ? run_retry(c, &q) : 0;
	if (retry != 0)
		return retry < 0 ? -1 : 0;
	return run_tasks(c, &q, td, body);
}

/* StartTask: RunTask's path, with a task on each container instance named;
 * the host is the only one, and the tasks are EC2's. */
int api_op_start_task(struct api_call *c)
{
	_cleanup_(run_req_done) struct run_req q = { 0 };
	_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
	_cleanup_(cJSON_Deletep) cJSON *body = NULL;
	const cJSON *insts, *it;
	const char *ref = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c->in, "cluster"));
	bool dflt = !ref || strcmp(ref, DEFAULT_CLUSTER) == 0;
	if (api_get_array(c, c->in, "", "containerInstances", true, 10, &insts) < 0 ||
	    parse_run(c, &q, start_members) < 0 || api_get_cluster(c, !dflt, q.cluster) < 0)
		return -1;
	if (!cJSON_GetArraySize(insts))
		return api_error(c, 0, API_E_INVALID, "containerInstances can not be empty.");
	int i = 0;
	cJSON_ArrayForEach(it, insts) {
		if (!cJSON_IsString(it) || !api_is_instance(c, q.cluster, it->valuestring))
			return api_error(c, 0, API_E_INVALID, "containerInstances[%d]: not a container "
					 "instance of cluster %s (the host is its only one)", i, q.cluster);
		i++;
	}
	q.count = q.asked = i;
	q.launch_type = "EC2";
	if (api_runnable_definition(c, q.td_ref, q.overrides,
				    cJSON_GetObjectItemCaseSensitive(c->in, "networkConfiguration") != NULL,
				    q.launch_type, &td, &body) < 0)
		return -1;
	return run_tasks(c, &q, td, body);
}

/* The tasks Q asks for, recorded and launched; the answer RunTask and
 * StartTask give. */
static int run_tasks(struct api_call *c, struct run_req *qp,
		     const struct store_task_definition *td, const cJSON *body)
{
	const struct run_req q = *qp;
	bool draining;
	if (api_instance_draining(c, q.cluster, &draining) < 0)
		return -1;
	/* A DRAINING instance takes no new task (UpdateContainerInstancesState);
	 * ECS's list of failure reasons has none for it: the reason is the
	 * instance's status. */
	if (!q.count || draining) {   /* or placementConstraints left none to run */
		struct run_failures none = { .n_failed = q.asked,
					     .why = draining ? "DRAINING" : q.unplaced,
					     .cluster = q.cluster };
		return reply_run(c, NULL, 0, false, &none) < 0 ? -1 : 0;
	}
	_cleanup_free_ char *request = q.client_token ? cJSON_PrintUnformatted(c->in) : NULL;
	if (q.client_token && !request)
		return api_oom(c);
	struct run_extra x = { qp, request, td->arn };
	struct sched_run_req rq = {
		.task = { .cluster = q.cluster, .td = td, .body = body, .overrides = q.overrides,
			  .group = q.group, .started_by = q.started_by,
			  .client_token = q.client_token, .launch_type = q.launch_type,
			  .subnet = q.subnet, .security_groups = q.security_groups,
			  .now_ms = c->now_ms, .enable_execute_command = q.enable_execute_command },
		.count = (size_t)q.count, .in_txn = run_extra_fn, .arg = &x,
	};
	struct sched_run_result res;
	struct berth_err err = { 0 };
	int r = sched_run_task(c->sched, &rq, &res, &err);
	if (r < 0 && res.n)  /* recorded, but not launched (and recorded STOPPED) */
		return api_error(c, 0, API_E_SERVER, "%s", err.msg);
	if (r < 0 && !(r == -ENOSPC && res.unplaced))
		return api_store_error(c, r, &err);
	/* The tasks that did not fit fail as ECS reports them. */
	struct run_failures f = { .n_failed = q.asked - (int64_t)res.n,
				  .why = res.unplaced ? res.unplaced : q.unplaced,
				  .detail = res.detail[0] ? res.detail : NULL, .cluster = q.cluster };
	const char *ids[SCHED_RUN_MAX];
	for (size_t i = 0; i < res.n; i++)
		ids[i] = res.ids[i];
	return reply_run(c, ids, res.n, q.tags.n > 0 || q.propagate_td || q.managed_tags, &f) < 0 ? -1 : 0;
}

/* ---- StopTask / DescribeTasks ---- */

/* The task ID_OR_ARN of CLUSTER, or -ENOENT. */
static int task_in_cluster(struct api_call *c, const char *cluster, const char *ref,
			   struct store_task **ret)
{
	struct berth_err err = { 0 };
	int r = store_task_get(c->store, ref, ret, &err);
	if (r == 0 && strcmp((*ret)->cluster, cluster) != 0) {
		store_task_free(TAKE_PTR(*ret));
		r = -ENOENT;
	}
	if (r < 0 && r != -ENOENT)
		return api_store_error(c, r, &err);
	return r;
}

int api_op_stop_task(struct api_call *c)
{
	const char *ref, *reason;
	char cluster[API_NAME_MAX + 1];
	if (api_get_string(c, c->in, "", "task", true, &ref) < 0 ||
	    api_get_string(c, c->in, "", "reason", false, &reason) < 0 ||
	    api_get_cluster(c, false, cluster) < 0)
		return -1;
	if (reason && strlen(reason) > REASON_MAX)
		return api_error(c, 0, API_E_INVALID, "reason: at most %d characters", REASON_MAX);
	if (!reason || !*reason)
		reason = DEFAULT_STOP_REASON;
	struct sched_stop_req sq = { .task = ref, .cluster = cluster, .stop_code = SCHED_STOP_USER,
				     .reason = reason, .now_ms = c->now_ms };
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	struct berth_err err = { 0 };
	int r = sched_stop_task(c->sched, &sq, &t, &err);
	if (r == -ENOENT)
		return api_error(c, 0, API_E_INVALID, "The referenced task was not found.");
	if (r < 0)
		return api_store_error(c, r, &err);
	/* T is current: the scheduler writes what the shim answers later, on
	 * the loop. */
	cJSON *o;
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	if (!out)
		return api_oom(c);
	if (task_json(c, t, false, &o) < 0)
		return -1;
	cJSON_AddItemToObject(out, "task", o);
	c->out = TAKE_PTR(out);
	return 0;
}

static int describe_one(struct api_call *c, const char *cluster, const cJSON *ref, bool tags,
			cJSON *tasks, cJSON *failures)
{
	if (!cJSON_IsString(ref))
		return api_error(c, 0, API_E_INVALID, "tasks: expected a list of strings");
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	int r = task_in_cluster(c, cluster, ref->valuestring, &t);
	if (r == -ENOENT)
		return api_add_missing(c, failures, "task", cluster, ref->valuestring);
	cJSON *o;
	if (r < 0 || task_json(c, t, tags, &o) < 0)
		return -1;
	if (!cJSON_AddItemToArray(tasks, o)) {
		cJSON_Delete(o);
		return api_oom(c);
	}
	return 0;
}

int api_op_describe_tasks(struct api_call *c)
{
	const cJSON *refs, *ref;
	char cluster[API_NAME_MAX + 1];
	bool tags;
	if (api_get_array(c, c->in, "", "tasks", true, API_DESCRIBE_MAX, &refs) < 0 ||
	    api_get_include_tags(c, &tags) < 0 || api_get_cluster(c, false, cluster) < 0)
		return -1;
	if (!cJSON_GetArraySize(refs))
		return api_error(c, 0, API_E_INVALID, "Tasks cannot be empty.");
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *tasks = out ? json_add_array(out, "tasks") : NULL;
	cJSON *failures = out ? json_add_array(out, "failures") : NULL;
	if (!tasks || !failures)
		return api_oom(c);
	cJSON_ArrayForEach(ref, refs)
		if (describe_one(c, cluster, ref, tags, tasks, failures) < 0)
			return -1;
	c->out = TAKE_PTR(out);
	return 0;
}

/* ---- ListTasks ---- */

int api_op_list_tasks(struct api_call *c)
{
	char cluster[API_NAME_MAX + 1];
	const char *family, *service, *started_by, *desired, *launch, *instance;
	struct store_page page;
	if (api_get_cluster(c, false, cluster) < 0 ||
	    api_get_string(c, c->in, "", "family", false, &family) < 0 ||
	    api_get_string(c, c->in, "", "serviceName", false, &service) < 0 ||
	    api_get_string(c, c->in, "", "startedBy", false, &started_by) < 0 ||
	    api_get_string(c, c->in, "", "containerInstance", false, &instance) < 0 ||
	    api_get_enum(c, c->in, "", "desiredStatus", false, desired_statuses, &desired) < 0 ||
	    api_get_enum(c, c->in, "", "launchType", false, launch_types, &launch) < 0 ||
	    api_get_page(c, &page) < 0)
		return -1;
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *arns = out ? json_add_array(out, "taskArns") : NULL;
	if (!arns)
		return api_oom(c);
	/* ECS: PENDING never matches a desired status (tasks are only ever
	 * desired RUNNING or STOPPED); every task runs on the one container
	 * instance. */
	if ((desired && strcmp(desired, "PENDING") == 0) ||
	    (instance && !api_is_instance(c, cluster, instance))) {
		c->out = TAKE_PTR(out);
		return 0;
	}
	struct store_task_filter f = {
		.cluster = cluster, .family = family, .service_name = service,
		.started_by = started_by, .has_desired_status = true, .launch_type = launch,
		.desired_status = desired && strcmp(desired, "STOPPED") == 0 ? STORE_TASK_STOPPED
									     : STORE_TASK_RUNNING,
	};
	struct store_list l = { 0 };
	struct berth_err err = { 0 };
	int r = store_task_list(c->store, &f, &page, &l, &err);
	if (r < 0)
		return api_store_error(c, r, &err);
	for (size_t i = 0; i < l.n && r == 0; i++)
		if (!cJSON_AddItemToArray(arns, cJSON_CreateString(l.items[i])))
			r = api_oom(c);
	if (r == 0 && l.next_token && !json_add_string(out, "nextToken", l.next_token))
		r = api_oom(c);
	store_list_clear(&l);
	if (r < 0)
		return -1;
	c->out = TAKE_PTR(out);
	return 0;
}
