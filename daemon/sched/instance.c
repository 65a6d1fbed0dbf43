/* daemon/sched/instance: the host's container instance and what its tasks reserve. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/hash.h"
#include "common/json.h"
#include "daemon/sched/instance.h"
#include "daemon/sched/taskplan.h"

#define DEFS_CACHED 16

void instance_id(const char *root, char ret[INSTANCE_ID_LEN + 1])
{
	char machine[64] = "";
	_cleanup_close_ int fd = open("/etc/machine-id", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, machine, sizeof(machine) - 1) : -1;
	machine[n > 0 ? n : 0] = '\0';
	/* Two 64-bit hashes of the same bytes, seeded apart: 32 hex digits. */
	uint64_t h[2] = { BERTH_FNV1A64_INIT, BERTH_FNV1A64_INIT ^ UINT64_C(0x9e3779b97f4a7c15) };
	for (size_t i = 0; i < 2; i++) {
		h[i] = berth_fnv1a64(h[i], machine, strlen(machine));
		h[i] = berth_fnv1a64(h[i], "\n", 1);
		h[i] = berth_fnv1a64(h[i], root, strlen(root));
	}
	snprintf(ret, INSTANCE_ID_LEN + 1, "%016llx%016llx", (unsigned long long)h[0],
		 (unsigned long long)h[1]);
}

/* Definitions looked up while summing (tasks mostly share a few). */
struct defs {
	char *arn[DEFS_CACHED];
	cJSON *body[DEFS_CACHED];
	size_t n, next;
};

static void defs_done(struct defs *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->arn[i]);
		cJSON_Delete(d->body[i]);
	}
}

static int def_body(struct store *s, struct defs *d, const char *arn, const cJSON **ret,
		    struct berth_err *err)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->arn[i], arn) == 0) {
			*ret = d->body[i];
			return 0;
		}
	_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
	int r = store_task_definition_get(s, arn, &td, err);
	if (r < 0)
		return r;
	cJSON *body = cJSON_Parse(td->body_json);
	char *copy = strdup(arn);
	if (!body || !copy) {
		cJSON_Delete(body);
		free(copy);
		return berth_errf(err, ENOMEM,
				  "%s: out of memory, or the stored body does not parse", arn);
	}
	size_t slot;
	if (d->n < DEFS_CACHED) {
		slot = d->n++;
	} else { /* full: the oldest goes */
		slot = d->next++ % DEFS_CACHED;
		free(d->arn[slot]);
		cJSON_Delete(d->body[slot]);
	}
	d->arn[slot] = copy;
	d->body[slot] = body;
	*ret = body;
	return 0;
}

struct usage_walk {
	struct store *s;
	struct defs d;
	const char *cluster;
	struct instance_usage u;
};

/* G's COUNT alike tasks: what each reserves, times COUNT. */
static int add_group(void *arg, const struct store_task_group *g, struct berth_err *err)
{
	struct usage_walk *w = arg;
	const cJSON *body = NULL;
	int r = def_body(w->s, &w->d, g->task_definition_arn, &body, err);
	if (r < 0)
		return r;
	_cleanup_(cJSON_Deletep) cJSON *ov = g->overrides_json ? cJSON_Parse(g->overrides_json)
							       : NULL;
	w->u.cpu += g->count * taskplan_reserved_cpu(body, ov);
	w->u.memory += g->count * taskplan_reserved_memory(body, ov);
	if (strcmp(g->cluster, w->cluster) != 0)
		return 0;
	if (g->last_status == STORE_TASK_RUNNING)
		w->u.running += g->count;
	if (g->last_status == STORE_TASK_PROVISIONING || g->last_status == STORE_TASK_PENDING ||
	    g->last_status == STORE_TASK_ACTIVATING)
		w->u.pending += g->count;
	return 0;
}

int instance_usage(struct store *s, const char *cluster, struct instance_usage *ret,
		   struct berth_err *err)
{
	struct usage_walk w = { .s = s, .cluster = cluster };
	int r = store_task_groups(s, add_group, &w, err);
	defs_done(&w.d);
	if (r < 0)
		return r;
	*ret = w.u;
	return 0;
}

const char *instance_place(const struct berth_policy *p, struct instance_usage *u, const cJSON *td,
			   const cJSON *overrides)
{
	long long cpu = taskplan_reserved_cpu(td, overrides);
	long long mem = taskplan_reserved_memory(td, overrides);
	if (u->memory + mem > p->instance_memory)
		return INSTANCE_NO_MEMORY;
	if (u->cpu + cpu > p->instance_cpu)
		return INSTANCE_NO_CPU;
	u->cpu += cpu;
	u->memory += mem;
	return NULL;
}
