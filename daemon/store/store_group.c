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
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/time.h"
#include "daemon/store/store_internal.h"

/* The WAL's fsync apart from the loop (store_group_sync_apart()): the
 * loop COMMITs (synchronous=NORMAL: no fsync in it) and queues the
 * group's callbacks under a generation number; the thread fdatasyncs the
 * WAL for the newest generation asked and tells the loop through an
 * eventfd, which calls the callbacks of every generation now on disk.
 * One fsync covers every commit made before it began. */
struct synced_hooks {
	uint64_t gen;
	struct store_hook *h;
	size_t n;
};

struct store_syncer {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int wal_fd, efd;
	uint64_t want, done;         /* guarded by lock */
	int sync_errno;              /* guarded: the last sync's, 0 when it worked */
	bool stop;                   /* guarded */
	pid_t tid;                   /* guarded: the thread's, once it runs */
	struct event *ev;
	struct synced_hooks *q;      /* the loop's only: oldest first */
	size_t nq, capq;
};

static void *sync_thread(void *arg)
{
	struct store_syncer *y = arg;
	pthread_mutex_lock(&y->lock);
	y->tid = gettid();
	pthread_cond_broadcast(&y->cond);
	for (;;) {
		while (!y->stop && y->done == y->want)
			pthread_cond_wait(&y->cond, &y->lock);
		if (y->done == y->want)
			break;
		uint64_t gen = y->want;
		pthread_mutex_unlock(&y->lock);
		int e = fdatasync(y->wal_fd) < 0 ? errno : 0;
		pthread_mutex_lock(&y->lock);
		y->done = gen;
		y->sync_errno = e;
		uint64_t one = 1;
		if (write(y->efd, &one, sizeof(one)) < 0)
			abort();  /* an eventfd of ours far from its limit: cannot fail */
	}
	pthread_mutex_unlock(&y->lock);
	return NULL;
}

static void hooks_call(struct store *s, struct store_hook *h, size_t n, int r,
		       const struct berth_err *err);

/* The callbacks of the generations up to UPTO, now on disk (E = 0) or
 * not (the fsync's errno). */
static void synced_run(struct store *s, uint64_t upto, int e)
{
	struct store_syncer *y = s->syncer;
	struct berth_err err = { 0 };
	if (e)
		berth_errnof(&err, e, "store: %s: fdatasync of its log", s->path);
	/* One at a time off the queue's head before it is called: a callback
	 * may commit again, and so queue (or run) the next ones itself. */
	while (y->nq && y->q[0].gen <= upto) {
		struct synced_hooks one = y->q[0];
		memmove(y->q, y->q + 1, (y->nq - 1) * sizeof(*y->q));
		y->nq--;
		hooks_call(s, one.h, one.n, e ? -e : 0, e ? &err : NULL);
	}
}

static void on_synced(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct store *s = arg;
	struct store_syncer *y = s->syncer;
	uint64_t v;
	if (read(fd, &v, sizeof(v)) < 0)
		return;
	pthread_mutex_lock(&y->lock);
	uint64_t done = y->done;
	int e = y->sync_errno;
	pthread_mutex_unlock(&y->lock);
	synced_run(s, done, e);
}

/* The open group's callbacks wait for the thread's next fsync; -ENOMEM
 * when they cannot be queued (the caller syncs now). */
static int synced_later(struct store *s)
{
	struct store_syncer *y = s->syncer;
	if (y->nq == y->capq) {
		size_t cap = y->capq ? 2 * y->capq : 16;
		struct synced_hooks *q = realloc(y->q, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		y->q = q;
		y->capq = cap;
	}
	pthread_mutex_lock(&y->lock);
	uint64_t gen = ++y->want;
	pthread_cond_signal(&y->cond);
	pthread_mutex_unlock(&y->lock);
	y->q[y->nq++] = (struct synced_hooks){ gen, s->hooks, s->n_hooks };
	s->hooks = NULL;
	s->n_hooks = s->cap_hooks = 0;
	return 0;
}

pid_t store_group_sync_tid(const struct store *s)
{
	return s->syncer ? s->syncer->tid : 0;
}

int store_group_synced(struct store *s, struct berth_err *err)
{
	struct store_syncer *y = s->syncer;
	if (!y)
		return 0;
	int r = fdatasync(y->wal_fd) < 0 ? berth_errnof(err, errno, "store: %s: fdatasync of its "
							"log", s->path) : 0;
	synced_run(s, UINT64_MAX, r < 0 ? -r : 0);
	return r;
}

static void syncer_free(struct store *s)
{
	struct store_syncer *y = s->syncer;
	if (!y)
		return;
	pthread_mutex_lock(&y->lock);
	y->stop = true;
	pthread_cond_signal(&y->cond);
	pthread_mutex_unlock(&y->lock);
	pthread_join(y->thread, NULL);
	struct berth_err ignored = { 0 };
	store_group_synced(s, &ignored);  /* none is left: its last commit synced */
	s->syncer = NULL;
	store_exec(s, "PRAGMA synchronous = FULL", &ignored);
	if (y->ev)
		event_free(y->ev);
	close(y->efd);
	close(y->wal_fd);
	pthread_cond_destroy(&y->cond);
	pthread_mutex_destroy(&y->lock);
	free(y->q);
	free(y);
}

int store_group_sync_apart(struct store *s, struct berth_err *err)
{
	if (!s->commit_ev || s->syncer || s->depth)
		return s->syncer ? 0 : berth_errf(err, EINVAL, "store: %s: not attached to a loop, "
						  "or a transaction is open", s->path);
	char wal[4200];
	snprintf(wal, sizeof(wal), "%s-wal", s->path);
	struct store_syncer *y = calloc(1, sizeof(*y));
	if (!y)
		return berth_errf(err, ENOMEM, "store: %s: out of memory", s->path);
	y->wal_fd = open(wal, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	y->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&y->lock, NULL);
	pthread_cond_init(&y->cond, NULL);
	int r = 0;
	if (y->wal_fd < 0 || y->efd < 0)
		r = berth_errnof(err, errno, "store: %s: its log", wal);
	else if (!(y->ev = event_new(event_get_base(s->commit_ev), y->efd, EV_READ | EV_PERSIST,
				       on_synced, s)) || event_add(y->ev, NULL) < 0)
		r = berth_errf(err, ENOMEM, "store: %s: cannot watch its log's fsync", s->path);
	else if ((r = -pthread_create(&y->thread, NULL, sync_thread, y)) < 0)
		berth_errnof(err, -r, "store: %s: cannot start its fsync thread", s->path);
	if (r < 0) {
		if (y->ev)
			event_free(y->ev);
		if (y->efd >= 0)
			close(y->efd);
		if (y->wal_fd >= 0)
			close(y->wal_fd);
		pthread_cond_destroy(&y->cond);
		pthread_mutex_destroy(&y->lock);
		free(y);
		return r;
	}
	pthread_mutex_lock(&y->lock);
	while (!y->tid)
		pthread_cond_wait(&y->cond, &y->lock);
	pthread_mutex_unlock(&y->lock);
	s->syncer = y;
	/* From now on a COMMIT leaves the fsync to the thread. */
	r = store_exec(s, "PRAGMA synchronous = NORMAL", err);
	if (r < 0)
		syncer_free(s);
	return r;
}

static int group_commit(struct store *s, bool apart, struct berth_err *err);

static void on_commit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct berth_err err = { 0 };
	/* A failure reached every waiting hook, with its cause. */
	group_commit(arg, true, &err);
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
	group_commit(s, true, &ignored);
}

/* APART: the fsync is left to the syncer's thread, when there is one. */
static int group_commit(struct store *s, bool apart, struct berth_err *err)
{
	if (!s->group)  /* only what earlier commits left waiting */
		return s->syncer && s->syncer->nq ? store_group_synced(s, err) : 0;
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
	if (r == 0 && s->syncer) {
		if (apart && synced_later(s) == 0)
			return 0;
		r = store_group_synced(s, err);  /* the earlier commits' hooks first */
	}
	store_hooks_run(s, r, err);
	return r;
}

int store_group_commit(struct store *s, struct berth_err *err)
{
	return group_commit(s, false, err);
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
	hooks_call(s, h, n, r, err);
}

/* Calls the N hooks of H (then frees H), with R unless cancelled. */
static void hooks_call(struct store *s, struct store_hook *h, size_t n, int r,
		       const struct berth_err *err)
{
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
	syncer_free(s);
	/* Only with a unit left open (a caller's bug): never leave a hook
	 * uncalled. */
	if (s->n_hooks)
		store_hooks_run(s, berth_errf(&why, ECANCELED, "store: %s: closed with writes "
					      "uncommitted", s->path), &why);
	if (s->commit_ev)
		event_free(s->commit_ev);
	s->commit_ev = NULL;
}
