/* daemon/sched/sched_record: creating tasks (RunTask's and the service
 * scheduler's): placement on the host, the new record, its insert, the
 * launch. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "daemon/sched/instance.h"
#include "daemon/sched/ports.h"
#include "daemon/sched/sched_internal.h"
#include "daemon/sched/taskplan.h"

#define ARN_MAX 600

static char *size_string(long long v)
{
	char *s;
	return v && asprintf(&s, "%lld", v) >= 0 ? s : NULL;
}

static char *arn_of(const struct sched *s, const char *kind, const char *path)
{
	char *a;
	return asprintf(&a, "arn:aws:ecs:%s:%s:%s/%s", s->cfg.region, s->cfg.account_id, kind,
			path) < 0 ? NULL : a;
}

void sched_task_record_clear(struct store_task *t)
{
	for (size_t i = 0; i < t->n_containers; i++) {
		free(t->containers[i].arn);
		free(t->containers[i].runtime_id);
		free(t->containers[i].network_json);
	}
	free(t->containers);
	free(t->arn);
	free(t->group);
	free(t->cpu);
	free(t->memory);
	free(t->overrides_json);
	free(t->attachments_json);
}

static int add_containers(const struct sched *s, const struct sched_task_req *q,
			  struct store_task *t)
{
	const cJSON *cds = cJSON_GetObjectItemCaseSensitive(q->body, "containerDefinitions"), *cd;
	t->containers = calloc((size_t)cJSON_GetArraySize(cds) + 1, sizeof(*t->containers));
	if (!t->containers)
		return -ENOMEM;
	cJSON_ArrayForEach(cd, cds) {
		struct store_container *k = &t->containers[t->n_containers++];
		char uuid[37], path[ARN_MAX];
		json_uuid(uuid);
		snprintf(path, sizeof(path), "%s/%s/%s", q->cluster, t->id, uuid);
		k->name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cd, "name"));
		k->image = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cd, "image"));
		k->arn = arn_of(s, "container", path);
		if (t->n_containers <= q->n_pins)
			k->image_digest = (char *)q->pins[t->n_containers - 1];
		k->last_status = STORE_TASK_PENDING;
		if (asprintf(&k->runtime_id, "%s-%s", t->id, k->name) < 0)
			k->runtime_id = NULL;
		if (!k->arn || !k->runtime_id)
			return -ENOMEM;
	}
	return 0;
}

/* The task's security groups joined by ',' (the API refuses commas in a
 * name), or the cluster's default group; malloc'd, NULL on OOM. */
static char *groups_of(const struct sched_task_req *q)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	if (!f)
		return NULL;
	const cJSON *g;
	cJSON_ArrayForEach(g, q->security_groups)
		fprintf(f, "%s%s", ftell(f) ? "," : "", cJSON_GetStringValue(g));
	if (ftell(f) == 0)
		fprintf(f, "default:%s", q->cluster);
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* Container i's network_json starts as its published ports (BINDINGS[i],
 * ports.h), which the shim's reports keep. */
static int add_bindings(struct store_task *t, const cJSON *bindings)
{
	for (size_t i = 0; bindings && i < t->n_containers; i++) {
		_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
		cJSON *b = cJSON_Duplicate(cJSON_GetArrayItem(bindings, (int)i), true);
		if (!o || !b || !cJSON_AddItemToObject(o, "networkBindings", b)) {
			cJSON_Delete(b);
			return -ENOMEM;
		}
		if (!(t->containers[i].network_json = cJSON_PrintUnformatted(o)))
			return -ENOMEM;
	}
	return 0;
}

int sched_task_record(const struct sched *s, const struct sched_task_req *q, struct store_task *t,
		      const cJSON *bindings, struct berth_err *err)
{
	int r = store_task_new_id(t->id, err);
	if (r < 0)
		return r;
	char path[ARN_MAX], att[37];
	snprintf(path, sizeof(path), "%s/%s", q->cluster, t->id);
	json_uuid(att);
	t->arn = arn_of(s, "task", path);
	t->cluster = (char *)q->cluster;
	t->task_definition_arn = q->td->arn;
	if (q->group)
		t->group = strdup(q->group);
	else if (asprintf(&t->group, "family:%s", q->td->family) < 0)
		t->group = NULL;
	t->started_by = (char *)q->started_by;
	t->client_token = (char *)q->client_token;
	t->service_name = (char *)q->service_name;
	t->launch_type = (char *)(q->launch_type ? q->launch_type : "FARGATE");
	t->cpu = size_string(taskplan_task_cpu(q->body, q->overrides));
	t->memory = size_string(taskplan_task_memory(q->body, q->overrides));
	t->desired_status = STORE_TASK_RUNNING;
	t->last_status = STORE_TASK_PROVISIONING;
	t->enable_execute_command = q->enable_execute_command;
	t->created_at = q->now_ms;
	t->overrides_json = q->overrides ? cJSON_PrintUnformatted(q->overrides)
					 : strdup("{\"containerOverrides\":[]}");
	_cleanup_free_ char *groups = groups_of(q);
	/* none and host mode: no interface of the task's own to show. */
	const char *nm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q->body,
									       "networkMode"));
	if (nm && (strcmp(nm, "none") == 0 || strcmp(nm, "host") == 0))
		t->attachments_json = strdup("[]");
	else if (groups)
		t->attachments_json = sched_eni_json(s, t->id, att, q->subnet, groups,
						     "PRECREATED", NULL);
	if (!t->arn || !t->group || !t->overrides_json || !t->attachments_json ||
	    add_containers(s, q, t) < 0 || add_bindings(t, bindings) < 0)
		return berth_errf(err, ENOMEM, "task %s: out of memory", t->id);
	return 0;
}

/* The host ports of the next task, when its definition publishes any:
 * NULL (placed, BINDINGS[i] its networkBindings per container), or why
 * not. */
static const char *place_ports(struct sched *s, const struct sched_run_req *q,
			       struct ports_used **u, cJSON **bindings,
			       struct sched_run_result *ret, struct berth_err *err, int *r)
{
	if (!ports_needed(q->task.body))
		return NULL;
	if (!*u && (!(*u = calloc(1, sizeof(**u))) ||
		    (*r = ports_load(s->store, *u, err)) < 0)) {
		if (!*u)
			*r = berth_errf(err, ENOMEM, "out of memory");
		return INSTANCE_NO_PORTS;
	}
	(*u)->cursor = s->port_cursor;
	const char *why = ports_assign(&s->cfg.policy, *u, q->task.body, bindings, ret->detail,
				       sizeof(ret->detail));
	s->port_cursor = (*u)->cursor;
	if (!why && !*bindings)
		*r = berth_errf(err, ENOMEM, "out of memory");
	return why;
}

/* How many of Q's tasks fit on the host's container instance, placed in
 * turn as ECS does; RET->unplaced (and detail) say why the next did not.
 * BINDINGS[i]: the host ports of task i, or NULL (ports.h). */
static int place(struct sched *s, const struct sched_run_req *q, struct sched_run_result *ret,
		 cJSON **bindings, size_t *ret_n, struct berth_err *err)
{
	struct berth_err disk = { 0 };
	*ret_n = 0;
	if (sched_disk_room(s, &disk) == -ENOSPC) {
		ret->unplaced = INSTANCE_NO_DISK;
		snprintf(ret->detail, sizeof(ret->detail), "%s", disk.msg);
		return 0;
	}
	struct instance_usage u;
	int r = instance_usage(s->store, q->task.cluster, &u, err);
	if (r < 0)
		return r;
	_cleanup_free_ struct ports_used *ports = NULL;
	while (*ret_n < q->count) {
		ret->unplaced = instance_place(&s->cfg.policy, &u, q->task.body, q->task.overrides);
		if (!ret->unplaced)
			ret->unplaced = place_ports(s, q, &ports, &bindings[*ret_n], ret, err, &r);
		if (r < 0 || ret->unplaced)
			return r;
		(*ret_n)++;
	}
	return 0;
}

struct run_insert {
	const struct sched_run_req *q;
	struct store_task *tasks;
	size_t n;
};

static int insert_fn(struct store *st, void *arg, struct berth_err *err)
{
	const struct run_insert *ri = arg;
	for (size_t i = 0; i < ri->n; i++) {
		int r = store_task_insert(st, &ri->tasks[i], err);
		if (r < 0)
			return r;
	}
	return ri->q->in_txn ? ri->q->in_txn(st, ri->q->arg, ri->tasks, ri->n, err) : 0;
}

/* Launches the N recorded TASKS; one that cannot be is recorded STOPPED
 * (as a task the daemon could not launch at start), the first error is
 * returned. */
static int launch_all(struct sched *s, const struct sched_run_req *q, const struct store_task *tasks,
		      size_t n, struct berth_err *err)
{
	int first = 0;
	/* Without it (out of memory) each task resolves its tags itself. */
	struct sched_resolved *res = n > 1 ? sched_resolved_new() : NULL;
	for (size_t i = 0; i < n; i++) {
		struct berth_err e = { 0 };
		if (sched_launch(s, &tasks[i], q->task.td->body_json, res, &e) == 0)
			continue;
		char reason[BERTH_ERR_MAX + 64];
		snprintf(reason, sizeof(reason), "ResourceInitializationError: %s", e.msg);
		sched_stop_unstarted(s, tasks[i].id, "TaskFailedToStart", reason, NULL, 0);
		if (!first)
			first = berth_errf(err, e.code, "task %s: %s", tasks[i].id, e.msg);
	}
	sched_resolved_put(res);
	return first;
}

int sched_run_task(struct sched *s, const struct sched_run_req *q, struct sched_run_result *ret,
		   struct berth_err *err)
{
	*ret = (struct sched_run_result){ 0 };
	if (q->count < 1 || q->count > SCHED_RUN_MAX)
		return berth_errf(err, EINVAL, "run %zu tasks: 1 to %d at a time", q->count,
				  SCHED_RUN_MAX);
	size_t n;
	cJSON *bindings[SCHED_RUN_MAX] = { 0 };
	int r = place(s, q, ret, bindings, &n, err);
	struct store_task tasks[SCHED_RUN_MAX] = { 0 };
	if (r == 0 && n == 0)
		r = berth_errf(err, ENOSPC, "%s", ret->unplaced);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = sched_task_record(s, &q->task, &tasks[i], bindings[i], err);
	struct run_insert ri = { q, tasks, n };
	if (r == 0)
		r = store_txn(s->store, insert_fn, &ri, err);
	if (r == 0) {
		for (size_t i = 0; i < n; i++)
			memcpy(ret->ids[i], tasks[i].id, sizeof(ret->ids[i]));
		ret->n = n;
		r = launch_all(s, q, tasks, n, err);
	}
	for (size_t i = 0; i < SCHED_RUN_MAX; i++) {
		sched_task_record_clear(&tasks[i]);
		cJSON_Delete(bindings[i]);
	}
	return r;
}
