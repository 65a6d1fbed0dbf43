/* daemon/sched/sched_batch: the task engine's own store writes, deferred to
 * the next turn of the loop and made there in one transaction.
 *
 * A task's start writes four times (PENDING, ACTIVATING, the shim's first
 * STATUS, RUNNING).  Deferred, the writes that arrived while the loop was
 * busy are applied together, as one unit of the store's group commit
 * (store.h): they share its fsync with the turn's API writes, and a write
 * is read-modify-write of the record as it is then, not as it was.
 *
 * What waits is only ever the record of something that already happened
 * (a shim reported it, or will report it again to a restarted daemon),
 * never an answer to a client: RunTask and StopTask write before they
 * answer.  The writes keep their order: a write that cannot wait
 * (sched_stop_unstarted(), a shim gone) first applies what is queued. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "daemon/sched/sched_internal.h"

struct sched_write {
	char id[STORE_TASK_ID_LEN + 1];
	sched_write_fn apply;
	void *arg;
	void (*free_arg)(void *arg);
	struct sched_write *next;
};

static void write_free(struct sched_write *w)
{
	if (w->free_arg)
		w->free_arg(w->arg);
	free(w);
}

static int apply_all(struct store *store, void *arg, struct berth_err *err)
{
	(void)store, (void)err;
	struct sched *s = arg;
	/* The list is taken whole: what an apply queues waits for the next. */
	struct sched_write *w = s->writes;
	s->writes = NULL;
	s->writes_tail = &s->writes;
	while (w) {
		struct sched_write *next = w->next;
		w->apply(s, w->id, w->arg);
		write_free(w);
		w = next;
	}
	return 0;  /* each write reports its own failure: the others stand */
}

void sched_flush(struct sched *s)
{
	if (!s->writes)
		return;
	struct berth_err err = { 0 };
	if (store_txn(s->store, apply_all, s, &err) < 0)
		sched_say(s, "task records: %s", err.msg);
	/* The transaction could not begin: each is applied on its own. */
	apply_all(s->store, s, &err);
}

void sched_flush_for(struct sched *s, const char *id)
{
	for (struct sched_write *w = s->writes; w; w = w->next)
		if (strcmp(w->id, id) == 0) {
			sched_flush(s);
			return;
		}
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct sched *s = arg;
	store_group_bound(s->store);  /* the top of the stack: a full group commits here */
	sched_flush(s);
}

void sched_write_later(struct sched *s, const char *id, sched_write_fn apply, void *arg,
		       void (*free_arg)(void *arg))
{
	static const struct timeval now = { 0, 0 };
	struct sched_write *w = calloc(1, sizeof(*w));
	if (!w || (!s->flush_ev && !(s->flush_ev = evtimer_new(s->base, on_flush, s))) ||
	    evtimer_add(s->flush_ev, &now) < 0) {
		/* No room to wait: in order, now. */
		free(w);
		sched_flush(s);
		apply(s, id, arg);
		if (free_arg)
			free_arg(arg);
		return;
	}
	snprintf(w->id, sizeof(w->id), "%s", id);
	w->apply = apply;
	w->arg = arg;
	w->free_arg = free_arg;
	*s->writes_tail = w;
	s->writes_tail = &w->next;
}

void sched_batch_free(struct sched *s)
{
	sched_flush(s);
	struct berth_err err = { 0 };
	/* On disk before the store is closed, by the one who knows whom to
	 * tell if it is not. */
	if (store_group_commit(s->store, &err) < 0)
		sched_say(s, "task records: %s", err.msg);
	if (s->flush_ev)
		event_free(s->flush_ev);
	s->flush_ev = NULL;
}
