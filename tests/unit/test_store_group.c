/* daemon/store: group commit — the writes of one turn of the loop in one
 * transaction, each writer's failure its own, and nothing reported done
 * before it is on disk. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <event2/event.h>
#include <sqlite3.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "daemon/store/store.h"
#include "daemon/store/store_internal.h"
#include "tests/unit/store_fixture.h"

#define ARN_BASE "arn:aws:ecs:us-east-1:123456789012"

struct fixture {
	char dir[64];
	char path[96];
	struct event_base *base;
	struct store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->s = unit_store_open("store-group", f->dir, f->path);
	f->base = event_base_new();
	assert_non_null(f->base);
	OK(store_group_attach(f->s, f->base, &e_));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	unit_store_close(f->s, f->dir);
	event_base_free(f->base);
	free(f);
	return 0;
}


/* What another process sees: only committed rows. */
static int64_t clusters_named(const char *path, const char *name)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM clusters WHERE name = ?1",
					    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static int create_cluster(struct store *s, const char *name, struct berth_err *err)
{
	char arn[256];
	snprintf(arn, sizeof(arn), ARN_BASE ":cluster/%s", name);
	struct store_cluster in = { .name = (char *)name, .arn = arn };
	_cleanup_(store_cluster_freep) struct store_cluster *c = NULL;
	return store_cluster_create(s, &in, 1000, &c, NULL, err);
}

/* What one store_after_commit() callback was told. */
struct answer {
	int calls;
	int r;
	char msg[BERTH_ERR_MAX];
};

static void on_answer(void *arg, int r, const struct berth_err *err)
{
	struct answer *a = arg;
	a->calls++;
	a->r = r;
	snprintf(a->msg, sizeof(a->msg), "%s", err ? err->msg : "");
}

/* A writer as the API runs one: a unit, its writes, its answer queued for
 * the commit.  FAIL_AFTER: it writes, then fails and undoes its unit. */
static void writer(struct store *s, const char *name, bool fail_after, struct answer *a)
{
	store_group_bound(s);
	struct store_tx unit _cleanup_tx_ = { 0 };
	OK(store_tx_begin(s, &unit, &e_));
	OK(create_cluster(s, name, &e_));
	OK(store_after_commit(s, on_answer, a, &e_));
	if (fail_after)
		store_tx_rollback(&unit);
	else
		OK(store_tx_commit(&unit, &e_));
}

/* Two writers in one turn: one fsync for both, the one that failed undone
 * alone, and no answer before the commit. */
static void test_two_writers_one_fails(void **state)
{
	struct fixture *f = *state;
	struct answer a = { 0 }, b = { 0 };
	writer(f->s, "alpha", false, &a);
	writer(f->s, "beta", true, &b);
	/* Nothing is on disk yet, so nothing was answered. */
	assert_int_equal(a.calls + b.calls, 0);
	assert_int_equal(clusters_named(f->path, "alpha"), 0);

	/* The end of the turn commits. */
	assert_int_equal(event_base_loop(f->base, EVLOOP_ONCE), 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.r, 0);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.r, -ECANCELED);
	assert_non_null(strstr(b.msg, "rolled back"));
	assert_int_equal(clusters_named(f->path, "alpha"), 1);
	assert_int_equal(clusters_named(f->path, "beta"), 0);
}

/* The commit itself fails (a deferred foreign key that only COMMIT
 * checks): every writer of the group hears it, and none of it is on disk. */
static void test_commit_failure_answers_all(void **state)
{
	struct fixture *f = *state;
	struct answer a = { 0 }, b = { 0 };
	writer(f->s, "alpha", false, &a);
	writer(f->s, "beta", false, &b);
	OK(store_exec(f->s, "PRAGMA defer_foreign_keys = ON;"
		      "INSERT INTO services VALUES ('no-such-cluster', 'web', 'arn:web', 'ACTIVE',"
		      " 1, 0, '{}', '[]', '[]', '{}')", &e_));
	struct berth_err err = { 0 };
	assert_int_equal(store_group_commit(f->s, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "FOREIGN KEY"));
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_int_equal(a.r, -ENOENT);
	assert_int_equal(b.r, -ENOENT);
	assert_non_null(strstr(a.msg, "FOREIGN KEY"));
	assert_int_equal(clusters_named(f->path, "alpha"), 0);
	assert_int_equal(clusters_named(f->path, "beta"), 0);

	/* The store carries on: the next turn's writes commit. */
	struct answer c = { 0 };
	writer(f->s, "gamma", false, &c);
	assert_int_equal(event_base_loop(f->base, EVLOOP_ONCE), 0);
	assert_int_equal(c.r, 0);
	assert_int_equal(c.calls, 1);
	assert_int_equal(clusters_named(f->path, "gamma"), 1);
}

/* A group that reached its size, or its age, commits before the next
 * unit, so a long turn does not keep every answer waiting. */
static void test_bounds(void **state)
{
	struct fixture *f = *state;
	f->s->group_max_units = 3;
	f->s->group_max_ms = 1000000;
	struct answer a[4] = { 0 };
	char name[32];
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		writer(f->s, name, false, &a[i]);
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(a[i].calls, 1);
	assert_int_equal(a[3].calls, 0);
	assert_int_equal(clusters_named(f->path, "c2"), 1);
	assert_int_equal(clusters_named(f->path, "c3"), 0);
	assert_int_equal(event_base_loop(f->base, EVLOOP_ONCE), 0);
	assert_int_equal(a[3].calls, 1);

	/* Age: a group older than the bound commits before the next unit. */
	f->s->group_max_units = 1000;
	f->s->group_max_ms = 0;
	struct answer b[2] = { 0 };
	writer(f->s, "old", false, &b[0]);
	writer(f->s, "new", false, &b[1]);
	assert_int_equal(b[0].calls, 1);
	assert_int_equal(b[1].calls, 0);
	assert_int_equal(event_base_loop(f->base, EVLOOP_ONCE), 0);
	assert_int_equal(b[1].calls, 1);
}

/* A callback that writes: its write begins the next group. */
struct hook_writer {
	struct store *s;
	struct answer h[2];         /* the hook's, its write's */
};

static void write_from_hook(void *arg, int r, const struct berth_err *err)
{
	(void)err;
	struct hook_writer *w = arg;
	w->h[0].calls++;
	w->h[0].r = r;
	writer(w->s, "from-hook", false, &w->h[1]);
}

/* A read in an open group sees the group's writes; with nothing open an
 * answer goes at once; a callback may write, which begins the next group. */
static void test_reads_and_writing_callbacks(void **state)
{
	struct fixture *f = *state;
	struct answer now = { 0 };
	OK(store_after_commit(f->s, on_answer, &now, &e_));
	assert_int_equal(now.calls, 1);

	struct answer a = { 0 };
	writer(f->s, "alpha", false, &a);
	OK(store_read_begin(f->s, &e_));
	_cleanup_(store_cluster_freep) struct store_cluster *c = NULL;
	OK(store_cluster_get(f->s, "alpha", &c, &e_));
	store_read_end(f->s);
	assert_int_equal(a.calls, 0);
	assert_int_equal(event_base_loop(f->base, EVLOOP_ONCE), 0);
	assert_int_equal(a.calls, 1);

	struct hook_writer w = { .s = f->s };
	struct answer *h = w.h;
	writer(f->s, "beta", false, &a);
	OK(store_after_commit(f->s, write_from_hook, &w, &e_));
	assert_int_equal(event_base_loop(f->base, EVLOOP_ONCE), 0);
	assert_int_equal(h[0].calls, 1);
	assert_int_equal(h[1].calls, 0);  /* its write waits for its own group */
	assert_int_equal(clusters_named(f->path, "from-hook"), 0);
	assert_int_equal(event_base_loop(f->base, EVLOOP_ONCE), 0);
	assert_int_equal(h[1].calls, 1);
	assert_int_equal(clusters_named(f->path, "from-hook"), 1);
}

/* The reader sees committed state only: never the open group's writes,
 * so its answers need not wait; and it cannot write. */
static void test_reader(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_closep) struct store *r = NULL;
	OK(store_open_reader(f->s, &r, &e_));
	struct answer a = { 0 };
	writer(f->s, "alpha", false, &a);
	struct store_cluster *c = NULL;
	struct berth_err err = { 0 };
	OK(store_read_begin(r, &e_));
	assert_int_equal(store_cluster_get(r, "alpha", &c, &err), -ENOENT);
	store_read_end(r);
	struct answer now = { 0 };
	OK(store_after_commit(r, on_answer, &now, &e_));
	assert_int_equal(now.calls, 1);       /* nothing of the reader's to wait for */
	assert_int_equal(event_base_loop(f->base, EVLOOP_ONCE), 0);
	assert_int_equal(a.calls, 1);
	OK(store_read_begin(r, &e_));
	OK(store_cluster_get(r, "alpha", &c, &e_));
	store_read_end(r);
	store_cluster_free(c);
	assert_int_equal(create_cluster(r, "beta", &err), -EROFS);
}

/* The order callbacks were called in, across writers. */
static int order_next;

static void on_ordered(void *arg, int r, const struct berth_err *err)
{
	on_answer(arg, r, err);
	((struct answer *)arg)->calls = ++order_next;
}

/* writer(), its callback on_ordered(). */
static void ordered_writer(struct store *s, const char *name, struct answer *a)
{
	store_group_bound(s);
	struct store_tx unit _cleanup_tx_ = { 0 };
	OK(store_tx_begin(s, &unit, &e_));
	OK(create_cluster(s, name, &e_));
	OK(store_after_commit(s, on_ordered, a, &e_));
	OK(store_tx_commit(&unit, &e_));
}

/* With the fsync on a thread of its own: an answer still waits until its
 * group is on disk, then comes a turn of the loop later; a commit the
 * caller waits for (shutdown) answers the earlier groups first. */
static void test_sync_apart(void **state)
{
	struct fixture *f = *state;
	OK(store_group_sync_apart(f->s, &e_));
	assert_true(store_group_sync_tid(f->s) > 0);
	struct answer a = { 0 };
	writer(f->s, "alpha", false, &a);
	for (int i = 0; i < 1000 && !a.calls; i++)
		assert_int_equal(event_base_loop(f->base, EVLOOP_ONCE), 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.r, 0);
	assert_int_equal(clusters_named(f->path, "alpha"), 1);

	order_next = 0;
	struct answer b[2] = { 0 };
	ordered_writer(f->s, "beta", &b[0]);
	/* Its group commits before the next unit, its fsync left to the thread. */
	f->s->group_max_ms = 0;
	ordered_writer(f->s, "gamma", &b[1]);
	OK(store_group_commit(f->s, &e_));
	assert_int_equal(b[0].calls, 1);
	assert_int_equal(b[1].calls, 2);
	assert_int_equal(b[0].r, 0);
	assert_int_equal(b[1].r, 0);
	assert_int_equal(clusters_named(f->path, "gamma"), 1);
}

/* kill -9 right after the answer: what was answered is on disk. */
static void test_answered_survives_kill9(void **state)
{
	struct fixture *f = *state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		struct store *s = NULL;
		struct event_base *base = event_base_new();
		struct berth_err err = { 0 };
		if (!base || store_open(f->path, &s, &err) < 0 || store_group_attach(s, base, &err) < 0)
			_exit(1);
		struct answer a = { 0 };
		char name[32];
		for (int i = 0; i < 20; i++) {
			snprintf(name, sizeof(name), "k%d", i);
			struct store_tx unit = { 0 };
			if (store_tx_begin(s, &unit, &err) < 0 || create_cluster(s, name, &err) < 0 ||
			    store_tx_commit(&unit, &err) < 0)
				_exit(1);
		}
		if (store_after_commit(s, on_answer, &a, &err) < 0 ||
		    event_base_loop(base, EVLOOP_ONCE) < 0 || a.calls != 1 || a.r != 0)
			_exit(1);
		/* "Answered": the parent kills us without a close. */
		if (write(p[1], "y", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(p[1]);
	char c;
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	kill(pid, SIGKILL);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	for (int i = 0; i < 20; i++) {
		char name[32];
		snprintf(name, sizeof(name), "k%d", i);
		assert_int_equal(clusters_named(f->path, name), 1);
	}
}

/* Without a loop every write is its own transaction, answered at once. */
static void test_unattached(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	OK(store_open(f->path, &s, &e_));
	struct answer a = { 0 };
	writer(s, "solo", false, &a);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.r, 0);
	assert_int_equal(clusters_named(f->path, "solo"), 1);
	struct answer b = { 0 };
	writer(s, "undone", true, &b);
	assert_int_equal(b.r, -ECANCELED);
	assert_int_equal(clusters_named(f->path, "undone"), 0);
	store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_two_writers_one_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_failure_answers_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reads_and_writing_callbacks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_answered_survives_kill9, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_apart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unattached, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
