/* daemon/ecs/protection: UpdateTaskProtection, GetTaskProtection — a
 * service's task protected from scale-in and deployments until a time
 * (the service engine skips it, docs/services.md). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/ecs/ecs.h"
#include "daemon/svc/svc.h"

#define TASKS_MAX 10
#define EXPIRES_DEFAULT 120        /* minutes, ECS's default */
#define EXPIRES_MAX 2880           /* 48 hours */

/* The task REF of CLUSTER, or NULL after a failure entry in FAILURES
 * (*ret_r 0) or an error (*ret_r -1). */
static struct store_task *task_of(struct api_call *c, const char *cluster, const cJSON *ref,
				  cJSON *failures, int *ret_r)
{
	*ret_r = -1;
	if (!cJSON_IsString(ref)) {
		api_error(c, 0, API_E_INVALID, "tasks: expected a list of strings");
		return NULL;
	}
	struct store_task *t = NULL;
	struct berth_err err = { 0 };
	int r = store_task_get(c->store, ref->valuestring, &t, &err);
	if (r == 0 && strcmp(t->cluster, cluster) != 0) {
		store_task_free(t);
		t = NULL;
		r = -ENOENT;
	}
	if (r == -ENOENT) {
		*ret_r = api_add_missing(c, failures, "task", cluster, ref->valuestring);
		return NULL;
	}
	if (r < 0)
		api_store_error(c, r, &err);
	return t;
}

static int add_protected(struct api_call *c, cJSON *arr, const char *arn, int64_t expires_at)
{
	cJSON *o = json_add_object(arr);
	if (!o || !json_add_string(o, "taskArn", arn) ||
	    !cJSON_AddBoolToObject(o, "protectionEnabled", expires_at > c->now_ms) ||
	    (expires_at > c->now_ms &&
	     !json_add_number(o, "expirationDate", (double)expires_at / 1000.0)))
		return api_oom(c);
	return 0;
}

static int protection_op(struct api_call *c, bool update)
{
	char cluster[API_NAME_MAX + 1];
	const cJSON *refs, *ref;
	bool enable = false, have;
	int64_t minutes = EXPIRES_DEFAULT;
	if (api_get_cluster(c, false, cluster) < 0 ||
	    api_get_array(c, c->in, "", "tasks", update, TASKS_MAX, &refs) < 0 ||
	    (update && (api_get_bool(c, c->in, "", "protectionEnabled", &have, &enable) < 0 ||
			api_get_int(c, c->in, "", "expiresInMinutes", false, 1, EXPIRES_MAX, &have,
				    &minutes) < 0)))
		return -1;
	if (update && !have)
		minutes = EXPIRES_DEFAULT;
	if (update && !cJSON_GetArraySize(refs))
		return api_error(c, 0, API_E_INVALID, "Tasks cannot be empty.");
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *prot = out ? json_add_array(out, "protectedTasks") : NULL;
	cJSON *failures = out ? json_add_array(out, "failures") : NULL;
	if (!prot || !failures)
		return api_oom(c);
	cJSON_ArrayForEach(ref, refs) {
		int r;
		_cleanup_(store_task_freep) struct store_task *t = task_of(c, cluster, ref, failures, &r);
		if (!t) {
			if (r < 0)
				return -1;
			continue;
		}
		int64_t until = 0;
		struct berth_err err = { 0 };
		if (update && (!t->service_name || t->last_status == STORE_TASK_STOPPED)) {
			cJSON *f = json_add_object(failures);
			if (!f || !json_add_string(f, "arn", t->arn) ||
			    !json_add_string(f, "reason", "TASK_NOT_VALID") ||
			    !json_add_string(f, "detail", t->service_name
					     ? "The task is stopped." :
					     "The task is not part of a service."))
				return api_oom(c);
			continue;
		}
		if (update) {
			until = enable ? c->now_ms + minutes * 60000 : 0;
			r = store_task_protection_set(c->store, t->arn, until, &err);
			/* An unprotected task may be the one scale-in waits for. */
			if (r == 0)
				svc_poke(c->svc, cluster, t->service_name);
		} else {
			r = store_task_protection_get(c->store, t->arn, &until, &err);
		}
		if (r < 0)
			return api_store_error(c, r, &err);
		if (add_protected(c, prot, t->arn, until) < 0)
			return -1;
	}
	c->out = TAKE_PTR(out);
	return 0;
}

int api_op_update_task_protection(struct api_call *c)
{
	return protection_op(c, true);
}

int api_op_get_task_protection(struct api_call *c)
{
	return protection_op(c, false);
}
