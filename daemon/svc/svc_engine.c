/* daemon/svc/svc_engine: the service scheduler's way into the task engine
 * (struct svc_engine, svc.h) as the daemon wires it, and the real clock.
 * The only file of daemon/svc that starts or stops a task itself. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/time.h"
#include "daemon/sched/sched.h"
#include "daemon/svc/svc.h"

static int64_t real_now(void *arg)
{
	(void)arg;
	return berth_real_ms();
}

const struct svc_clock svc_real_clock = { real_now, NULL };

/* The task's tags, in the transaction that records it. */
static int tag_task(struct store *st, void *arg, const struct store_task *tasks, size_t n,
		    struct berth_err *err)
{
	int r = 0;
	for (size_t i = 0; r == 0 && i < n; i++)
		r = tasktags_put(st, tasks[i].arn, arg, err);
	return r;
}

/* RunTask's path, one task: placement, the record (with its tags), the
 * launch. */
static int launch(void *arg, const struct svc_launch *l, char id[STORE_TASK_ID_LEN + 1],
		  struct berth_err *err)
{
	struct svc_sched *s = arg;
	char group[300];
	snprintf(group, sizeof(group), "service:%s", l->service_name);
	struct sched_run_req q = {
		.task = {
			.cluster = l->cluster, .td = l->td, .body = l->body, .group = group,
			.started_by = l->deployment_id, .launch_type = l->launch_type,
			.subnet = l->subnet, .service_name = l->service_name, .now_ms = l->now_ms,
			.security_groups = l->security_groups, .pins = l->pins, .n_pins = l->n_pins,
			.enable_execute_command = l->enable_execute_command,
		},
		.count = 1, .in_txn = tasktags_any(&l->tags) ? tag_task : NULL,
		.arg = (void *)&l->tags,
	};
	struct sched_run_result res;
	int r = sched_run_task(s->sched, &q, &res, err);
	if (r == 0)
		memcpy(id, res.ids[0], sizeof(res.ids[0]));
	return r;
}

/* StopTask's path; T then holds what was written. */
static int stop(void *arg, struct store_task *t, const char *reason, int64_t now_ms,
		struct berth_err *err)
{
	struct svc_sched *s = arg;
	struct sched_stop_req q = { .task = t->id, .stop_code = SCHED_STOP_SERVICE,
				    .reason = reason, .now_ms = now_ms };
	_cleanup_(store_task_freep) struct store_task *now = NULL;
	int r = sched_stop_task(s->sched, &q, &now, err);
	if (r < 0)
		return r;
	char *code = t->stop_code, *why = t->stopped_reason;
	t->desired_status = now->desired_status;
	t->stopping_at = now->stopping_at;
	t->stop_code = TAKE_PTR(now->stop_code);
	t->stopped_reason = TAKE_PTR(now->stopped_reason);
	now->stop_code = code;       /* freed with NOW */
	now->stopped_reason = why;
	return 0;
}

void svc_engine_sched(struct svc_sched *arg, struct svc_engine *ret)
{
	*ret = (struct svc_engine){ .launch = launch, .stop = stop, .arg = arg,
				    .instance_id = sched_instance_id(arg->sched) };
}
