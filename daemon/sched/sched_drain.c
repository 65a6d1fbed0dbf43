/* daemon/sched/sched_drain: a task the layer above still has in load
 * balancers is not told to stop at once.  As in ECS, it stays up,
 * lastStatus DEACTIVATING with desiredStatus STOPPED, while its targets
 * drain (the deregister hook, sched.h, gives the deadline), and gets its
 * stop signal when the drain ends (ECS Developer Guide, "task
 * lifecycle": a service's load balancer deregistration happens in
 * DEACTIVATING, before STOPPING).  The deadline is not kept here: the
 * layer above keeps it in the store, and a restarted daemon asks again
 * for every DEACTIVATING task it follows (sched_drain_resume()). */
#include <stdio.h>

#include <event2/event.h>

#include "common/time.h"
#include "daemon/sched/sched_internal.h"

#define DRAINED_REASON "Task stopped after its load balancer drain"

static void on_drained(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct sched_task *t = arg;
	struct sched *s = t->s;
	_cleanup_(store_task_freep) struct store_task *st = NULL;
	struct berth_err err = { 0 };
	if (store_task_get(s->store, t->id, &st, &err) < 0) {
		sched_say(s, "task %s: ending its drain: %s", t->id, err.msg);
		return;
	}
	sched_stop(s, st->id, st->stopped_reason ? st->stopped_reason : DRAINED_REASON);
}

static int deactivating_fn(struct store_task *t, void *arg, struct berth_err *err)
{
	(void)arg, (void)err;
	if (t->desired_status != STORE_TASK_STOPPED || t->last_status != STORE_TASK_RUNNING)
		return STORE_TASK_UNCHANGED;
	t->last_status = STORE_TASK_DEACTIVATING;
	return 0;
}

/* Asks the hook about ST (desired STOPPED): true when the task drains
 * first (its timer armed, DEACTIVATING recorded), false when it is to be
 * told to stop now. */
static bool drain(struct sched *s, struct sched_task *t, const struct store_task *st)
{
	if (!s->cfg.hooks.deregister || t->launching)
		return false;
	int64_t now = berth_real_ms();
	int64_t until = s->cfg.hooks.deregister(s->cfg.hooks.arg, st, now);
	if (until <= now)
		return false;
	if (!t->drain_ev && !(t->drain_ev = evtimer_new(s->base, on_drained, t)))
		return false;  /* out of memory: stopped now rather than never */
	int64_t wait = until - now;
	struct timeval tv = { wait / 1000, (wait % 1000) * 1000 };
	if (evtimer_add(t->drain_ev, &tv) < 0)
		return false;
	if (st->last_status != STORE_TASK_RUNNING)
		return true;  /* DEACTIVATING already (a restarted daemon) */
	struct berth_err err = { 0 };
	_cleanup_(store_task_freep) struct store_task *now_st = NULL;
	int r = store_task_modify(s->store, st->id, deactivating_fn, NULL, &now_st, &err);
	if (r < 0)
		sched_say(s, "task %s: %s", st->id, err.msg);
	else if (r == 0 && s->cfg.hooks.task_changed)
		s->cfg.hooks.task_changed(s->cfg.hooks.arg, now_st);
	return true;
}

bool sched_drain(struct sched *s, const struct store_task *st)
{
	struct sched_task *t = sched_task_find(s, st->id);
	return t && st->last_status == STORE_TASK_RUNNING && drain(s, t, st);
}

void sched_drain_resume(struct sched *s, const struct store_task *st)
{
	struct sched_task *t = sched_task_find(s, st->id);
	if (!t || t->stop_reason || (t->drain_ev && evtimer_pending(t->drain_ev, NULL)))
		return;  /* told to stop already, or draining */
	if (!drain(s, t, st))
		sched_stop(s, st->id, st->stopped_reason ? st->stopped_reason : DRAINED_REASON);
}
