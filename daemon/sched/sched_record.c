/* daemon/sched/sched_record: a new task record (RunTask's and the service scheduler's). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
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

int sched_task_record(const struct sched *s, const struct sched_task_req *q, struct store_task *t,
		      struct berth_err *err)
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
	t->created_at = q->now_ms;
	t->overrides_json = q->overrides ? cJSON_PrintUnformatted(q->overrides)
					 : strdup("{\"containerOverrides\":[]}");
	_cleanup_free_ char *groups = groups_of(q);
	t->attachments_json = groups ? sched_eni_json(s, t->id, att, q->subnet, groups,
						      "PRECREATED", NULL) : NULL;
	if (!t->arn || !t->group || !t->overrides_json || !t->attachments_json ||
	    add_containers(s, q, t) < 0)
		return berth_errf(err, ENOMEM, "task %s: out of memory", t->id);
	return 0;
}
