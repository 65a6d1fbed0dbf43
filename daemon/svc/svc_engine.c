/* daemon/svc/svc_engine: the service scheduler's way into the task engine
 * (struct svc_engine, svc.h) as the daemon wires it, and the real clock.
 * The only file of daemon/svc that starts or stops a task itself. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/time.h"
#include "daemon/sched/instance.h"
#include "daemon/sched/sched.h"
#include "daemon/svc/svc.h"

static int64_t real_now(void *arg)
{
	(void)arg;
	return berth_real_ms();
}

const struct svc_clock svc_real_clock = { real_now, NULL };

/* Placement as RunTask's (the host's registered CPU and memory, the disk
 * reserve), then the record, inserted PROVISIONING, and the launch. */
static int launch(void *arg, const struct svc_launch *l, char id[STORE_TASK_ID_LEN + 1],
		  struct berth_err *err)
{
	struct svc_sched *s = arg;
	struct instance_usage u;
	int r = instance_usage(s->store, l->cluster, &u, err);
	if (r < 0)
		return r;
	const char *why = sched_disk_room(s->sched, err) == -ENOSPC ? INSTANCE_NO_DISK
			  : instance_place(sched_policy(s->sched), &u, l->body, NULL);
	if (why)
		return berth_errf(err, ENOSPC, "%s", why);
	char group[300];
	snprintf(group, sizeof(group), "service:%s", l->service_name);
	struct sched_task_req q = {
		.cluster = l->cluster, .td = l->td, .body = l->body, .group = group,
		.started_by = l->deployment_id, .launch_type = l->launch_type,
		.subnet = l->subnet, .service_name = l->service_name, .now_ms = l->now_ms,
		.security_groups = l->security_groups, .pins = l->pins, .n_pins = l->n_pins,
	};
	struct store_task t = { 0 };
	r = sched_task_record(s->sched, &q, &t, err);
	if (r == 0)
		r = store_task_insert(s->store, &t, err);
	if (r == 0)
		r = sched_launch(s->sched, &t, l->td->body_json, err);
	if (r == 0)
		memcpy(id, t.id, sizeof(t.id));
	sched_task_record_clear(&t);
	return r;
}

static int stop(void *arg, struct store_task *t, const char *reason, int64_t now_ms,
		struct berth_err *err)
{
	struct svc_sched *s = arg;
	char *code = strdup("ServiceSchedulerInitiated"), *why = strdup(reason);
	if (!code || !why) {
		free(code);
		free(why);
		return berth_errf(err, ENOMEM, "task %s: out of memory", t->id);
	}
	t->desired_status = STORE_TASK_STOPPED;
	free(t->stop_code);
	free(t->stopped_reason);
	t->stop_code = code;
	t->stopped_reason = why;
	if (!t->stopping_at)
		t->stopping_at = now_ms;
	int r = store_task_update(s->store, t, err);
	if (r == 0)
		sched_stop(s->sched, t->id, reason);
	return r;
}

void svc_engine_sched(struct svc_sched *arg, struct svc_engine *ret)
{
	*ret = (struct svc_engine){ .launch = launch, .stop = stop, .arg = arg,
				    .instance_id = sched_instance_id(arg->sched) };
}
