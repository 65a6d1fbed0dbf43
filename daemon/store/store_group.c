/* daemon/store/store_group: group commit — the writes of one turn of the
 * event loop in one transaction, so one fsync for all of them.
 *
 * With synchronous=FULL each commit waits for an fsync (~7 ms on a small
 * VM's disk), on the loop: one transaction per write capped the daemon at
 * ~140 writes a second, and 1,000 tasks starting kept the API waiting for
 * half a minute.  Grouped, the fsync is shared by everything written while
 * the loop was busy: the busier, the larger the group.
 *
 * The group is the outermost transaction (BEGIN IMMEDIATE), begun by the
 * turn's first write; every unit of work (a store call, an API request, a
 * batch of the scheduler's) is a savepoint in it, so one that fails rolls
 * back only itself.  A zero-delay timer commits it once the loop has run
 * what is ready; a group that grew past STORE_GROUP_UNITS units or
 * STORE_GROUP_MS commits when the next top-level caller (an API request,
 * the task engine's batch) asks (store_group_bound()), so a long turn
 * does not keep every answer waiting.  Only there: the hooks the commit
 * runs may change the caller's own structures, which a store call deep in
 * the scheduler must not see change under it.  What waited (store_after_commit) is
 * called after the COMMIT returned: then the writes are on disk. */
#include <errno.h>
#include <stdlib.h>

#include <event2/event.h>

#include "common/time.h"
#include "daemon/store/store_internal.h"

static void on_commit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct berth_err err = { 0 };
	/* A failure reached every waiting hook, with its cause. */
	store_group_commit(arg, &err);
}

int store_group_attach(struct store *s, struct event_base *base, struct berth_err *err)
{
	if (s->commit_ev)
		return 0;
	s->commit_ev = evtimer_new(base, on_commit, s);
	if (!s->commit_ev)
		return berth_errf(err, ENOMEM, "store: %s: cannot create the commit timer", s->path);
	s->group_max_units = STORE_GROUP_UNITS;
	s->group_max_ms = STORE_GROUP_MS;
	return 0;
}

/* Begins the group, and arms its commit for the end of this turn.  A
 * timer that cannot be armed leaves the store as unattached: the caller's
 * transaction is then its own, committed by itself. */
static int group_open(struct store *s, struct berth_err *err)
{
	static const struct timeval now = { 0, 0 };
	if (evtimer_add(s->commit_ev, &now) < 0)
		return 0;
	int r = store_run(s, "BEGIN IMMEDIATE", err);
	if (r < 0) {
		evtimer_del(s->commit_ev);
		return r;
	}
	s->depth = 1;
	s->group = true;
	s->group_since_ms = berth_mono_ms();
	s->group_units = 0;
	return 0;
}

int store_group_prepare(struct store *s, struct berth_err *err)
{
	return s->commit_ev && s->depth == 0 ? group_open(s, err) : 0;
}

void store_group_bound(struct store *s)
{
	if (!s->group || s->depth != 1 ||
	    (s->group_units < s->group_max_units &&
	     berth_mono_ms() - s->group_since_ms < s->group_max_ms))
		return;
	struct berth_err ignored = { 0 };
	/* Its failure goes to its own hooks; the caller starts afresh. */
	store_group_commit(s, &ignored);
}

int store_group_commit(struct store *s, struct berth_err *err)
{
	if (!s->group)
		return 0;
	if (s->depth != 1)
		return berth_errf(err, EBUSY, "store: %s: cannot commit inside a unit of writes",
				  s->path);
	evtimer_del(s->commit_ev);
	int r = store_run(s, "COMMIT", err);
	if (r < 0) {
		struct berth_err ignored = { 0 };
		/* Nothing half-written: a group that cannot commit is undone
		 * whole (SQLite may have done so already). */
		store_run(s, "ROLLBACK", &ignored);
	}
	s->depth = 0;
	s->group = false;
	store_hooks_run(s, r, err);
	return r;
}

int store_after_commit(struct store *s, store_commit_fn fn, void *arg, struct berth_err *err)
{
	if (s->depth == 0 || s->reading) {
		fn(arg, 0, NULL);
		return 0;
	}
	if (s->n_hooks == s->cap_hooks) {
		size_t cap = s->cap_hooks ? 2 * s->cap_hooks : 64;
		struct store_hook *h = realloc(s->hooks, cap * sizeof(*h));
		if (!h)
			return berth_errf(err, ENOMEM, "store: %s: out of memory", s->path);
		s->hooks = h;
		s->cap_hooks = cap;
	}
	s->hooks[s->n_hooks++] = (struct store_hook){ fn, arg, 0 };
	return 0;
}

void store_hooks_cancel(struct store *s, size_t mark)
{
	for (size_t i = mark; i < s->n_hooks; i++)
		if (s->hooks[i].r == 0)
			s->hooks[i].r = -ECANCELED;
}

void store_hooks_run(struct store *s, int r, const struct berth_err *err)
{
	/* Taken whole: a hook that writes queues its own hooks on the next
	 * transaction. */
	struct store_hook *h = s->hooks;
	size_t n = s->n_hooks;
	s->hooks = NULL;
	s->n_hooks = s->cap_hooks = 0;
	struct berth_err cancelled = { 0 };
	for (size_t i = 0; i < n; i++) {
		if (h[i].r < 0 && !cancelled.code)
			berth_errf(&cancelled, ECANCELED, "store: %s: the write was rolled back",
				   s->path);
		h[i].fn(h[i].arg, h[i].r < 0 ? h[i].r : r, h[i].r < 0 ? &cancelled : err);
	}
	free(h);
}

void store_group_detach(struct store *s)
{
	struct berth_err why = { 0 };
	store_group_commit(s, &why);
	/* Only with a unit left open (a caller's bug): never leave a hook
	 * uncalled. */
	if (s->n_hooks)
		store_hooks_run(s, berth_errf(&why, ECANCELED, "store: %s: closed with writes "
					      "uncommitted", s->path), &why);
	if (s->commit_ev)
		event_free(s->commit_ev);
	s->commit_ev = NULL;
}
