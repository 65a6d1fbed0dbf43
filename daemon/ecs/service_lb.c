/* daemon/ecs/service_lb: CreateService's loadBalancers.  Each entry names
 * a target group of the ELBv2 API (daemon/elb) and a container port of
 * the service's task definition; daemon/elb registers every RUNNING task
 * of the service there — an awsvpc task as an ip target (its address and
 * that port), a bridge-mode one as an instance target (the host port the
 * port is published on) — and drains it before the task stops. */
#include <errno.h>
#include <string.h>

#include "daemon/ecs/ecs.h"
#include "daemon/store/store_elb.h"

#define LOAD_BALANCERS_MAX 5

/* Whether container NAME of the definition BODY maps container PORT. */
static int container_port(struct api_call *c, const cJSON *body, const char *name, int64_t port)
{
	const cJSON *ctr, *pm;
	cJSON_ArrayForEach(ctr, cJSON_GetObjectItemCaseSensitive(body, "containerDefinitions")) {
		if (!json_str(ctr, "name") || strcmp(json_str(ctr, "name"), name) != 0)
			continue;
		cJSON_ArrayForEach(pm, cJSON_GetObjectItemCaseSensitive(ctr, "portMappings"))
			if (json_int(pm, "containerPort", -1) == port)
				return 0;
		return api_error(c, 0, API_E_INVALID,
				 "The container %s did not have a container port"
				 " %lld defined.",
				 name, (long long)port);
	}
	return api_error(c, 0, API_E_INVALID,
			 "The container %s does not exist in the task"
			 " definition.",
			 name);
}

/* The target group must be the ELBv2 API's, of the target type the task
 * definition's network mode takes, as in ECS: ip for awsvpc tasks,
 * instance for bridge-mode ones (their host ports). */
static int target_group(struct api_call *c, const char *arn, const char *mode)
{
	_cleanup_(store_elb_res_freep) struct store_elb_res *r = NULL;
	struct berth_err err = { 0 };
	int res = store_elb_res_get(c->store, arn, &r, &err);
	if (res == -ENOENT || (res == 0 && strcmp(r->kind, "targetgroup") != 0))
		return api_error(c, 0, API_E_INVALID,
				 "The target group with targetGroupArn %.300s"
				 " does not exist.",
				 arn);
	if (res < 0)
		return api_store_error(c, res, &err);
	_cleanup_(cJSON_Deletep) cJSON *doc = cJSON_Parse(r->doc_json);
	const char *type = json_str(doc, "TargetType");
	const char *want = strcmp(mode, "bridge") == 0 ? "instance"
			   : strcmp(mode, "awsvpc") == 0 ? "ip" : NULL;
	if (!type || !want || strcmp(type, want) != 0)
		return api_error(c, 0, API_E_INVALID,
				 "The provided target group %s has target type"
				 " %s, which is incompatible with the %s network mode "
				 "specified in"
				 " the task definition.",
				 arn, type ? type : "?", mode);
	return 0;
}

int api_check_load_balancers(struct api_call *c, const char *td_arn)
{
	const cJSON *lbs = cJSON_GetObjectItemCaseSensitive(c->in, "loadBalancers");
	if (!lbs || (cJSON_IsArray(lbs) && !cJSON_GetArraySize(lbs)))
		return 0;
	if (!cJSON_IsArray(lbs) || cJSON_GetArraySize(lbs) > LOAD_BALANCERS_MAX)
		return api_error(c, 0, API_E_INVALID,
				 "loadBalancers: a list of at most %d load"
				 " balancers",
				 LOAD_BALANCERS_MAX);
	_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
	struct berth_err err = { 0 };
	int r = store_task_definition_get(c->store, td_arn, &td, &err);
	if (r < 0)
		return api_store_error(c, r, &err);
	_cleanup_(cJSON_Deletep) cJSON *body = cJSON_Parse(td->body_json);
	const char *mode = json_str(body, "networkMode") ? json_str(body, "networkMode") : "awsvpc";
	const cJSON *lb;
	cJSON_ArrayForEach(lb, lbs) {
		const char *tg, *name;
		bool have;
		int64_t port;
		if (cJSON_GetObjectItemCaseSensitive(lb, "loadBalancerName"))
			return api_error(c, 0, API_E_UNSUPPORTED,
					 "loadBalancers.loadBalancerName: Berth"
					 " has no Classic Load Balancers; name a targetGroupArn");
		if (api_get_string(c, lb, "loadBalancers.", "targetGroupArn", true, &tg) < 0 ||
		    api_get_string(c, lb, "loadBalancers.", "containerName", true, &name) < 0 ||
		    api_get_int(c, lb, "loadBalancers.", "containerPort", true, 1, 65535, &have,
				&port) < 0)
			return -1;
		if (target_group(c, tg, mode) < 0 || container_port(c, body, name, port) < 0)
			return -1;
	}
	return 0;
}
