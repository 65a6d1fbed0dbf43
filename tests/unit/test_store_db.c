/* daemon/store: the daemon's SQLite state — schema and migrations, clusters,
 * task definitions, tasks, tags, paging, and what survives a crash. */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "daemon/sched/instance.h"
#include "daemon/sched/tasktags.h"
#include "daemon/store/store.h"
#include "daemon/store/store_internal.h"
#include "tests/unit/store_fixture.h"

#define ARN_BASE "arn:aws:ecs:us-east-1:123456789012"
#define TD_BODY "{\"containerDefinitions\":[{\"name\":\"web\",\"image\":\"busybox\"}]}"

struct fixture {
	char dir[64];
	char path[96];
	struct store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->s = unit_store_open("store-db", f->dir, f->path);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	unit_store_close(f->s, f->dir);
	free(f);
	return 0;
}

/* The call fails with -ERRNO; the message must contain WANT. */
#define FAILS(call, errno_, want)                                                 \
	do {                                                                      \
		struct berth_err e_ = { 0 };                                      \
		int r_ = (call);                                                  \
		if (r_ != -(errno_))                                              \
			fail_msg("%s: got %d (%s), want %d", #call, r_, e_.msg, -(errno_)); \
		if (!strstr(e_.msg, want))                                        \
			fail_msg("%s: message \"%s\" lacks \"%s\"", #call, e_.msg, want); \
	} while (0)

static int64_t raw_int(const char *path, const char *sql)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(db);
}

static char *slurp(const char *path, size_t *len)
{
	char *buf = NULL;
	struct berth_err err = { 0 };
	assert_int_equal(berth_read_file_at(AT_FDCWD, path, 64 << 20, &buf, len, &err), 0);
	return buf;
}

static void make_cluster(struct store *s, const char *name)
{
	char arn[256];
	snprintf(arn, sizeof(arn), ARN_BASE ":cluster/%s", name);
	struct store_cluster in = { .name = (char *)name, .arn = arn };
	_cleanup_(store_cluster_freep) struct store_cluster *c = NULL;
	OK(store_cluster_create(s, &in, 1000, &c, NULL, &e_));
}

static char *make_td(struct store *s, const char *family)
{
	_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
	OK(store_task_definition_register(s, ARN_BASE, family, TD_BODY, 2000, &td, &e_));
	return TAKE_PTR(td->arn);
}

/* Task N: id "0000…N" in hex, two containers. */
struct task_buf {
	struct store_task t;
	struct store_container c[2];
	char arn[256], carn[2][256];
};

static void task_init(struct task_buf *b, unsigned n, const char *cluster, const char *td_arn)
{
	*b = (struct task_buf){ 0 };
	snprintf(b->t.id, sizeof(b->t.id), "%032x", n);
	snprintf(b->arn, sizeof(b->arn), ARN_BASE ":task/%s/%032x", cluster, n);
	for (int i = 0; i < 2; i++) {
		snprintf(b->carn[i], sizeof(b->carn[i]), ARN_BASE ":container/%s/%032x/c%d", cluster,
			 n, i);
		b->c[i] = (struct store_container){
			.name = i ? "sidecar" : "web",
			.arn = b->carn[i],
			.image = "busybox",
			.last_status = STORE_TASK_PENDING,
		};
	}
	b->t.arn = b->arn;
	b->t.cluster = (char *)cluster;
	b->t.task_definition_arn = (char *)td_arn;
	b->t.group = "family:web";
	b->t.launch_type = "FARGATE";
	b->t.cpu = "256";
	b->t.memory = "512";
	b->t.desired_status = STORE_TASK_RUNNING;
	b->t.last_status = STORE_TASK_PROVISIONING;
	b->t.created_at = 3000 + n;
	b->t.n_containers = 2;
	b->t.containers = b->c;
}

/* Every page of a list, concatenated; each page at most max items. */
typedef int (*lister)(struct store *s, const void *arg, const struct store_page *p,
		      struct store_list *ret, struct berth_err *err);

static size_t collect(struct store *s, lister fn, const void *arg, int max, char ***ret)
{
	char **all = NULL;
	size_t n = 0;
	_cleanup_free_ char *token = NULL;
	for (int pages = 0;; pages++) {
		assert_true(pages < 1000);
		struct store_page p = { .max_results = max, .next_token = token };
		struct store_list l = { 0 };
		OK(fn(s, arg, &p, &l, &e_));
		assert_true(l.n <= (size_t)max);
		all = realloc(all, (n + l.n + 1) * sizeof(*all));
		for (size_t i = 0; i < l.n; i++)
			all[n++] = strdup(l.items[i]);
		free(token);
		token = l.next_token ? strdup(l.next_token) : NULL;
		if (l.next_token)
			assert_true(l.n == (size_t)max);  /* no short page before the end */
		store_list_clear(&l);
		if (!token)
			break;
	}
	*ret = all;
	return n;
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int list_td(struct store *s, const void *arg, const struct store_page *p,
		   struct store_list *ret, struct berth_err *err)
{
	return store_task_definition_list(s, arg, p, ret, err);
}

static int list_tasks(struct store *s, const void *arg, const struct store_page *p,
		      struct store_list *ret, struct berth_err *err)
{
	return store_task_list(s, arg, p, ret, err);
}

static int list_clusters(struct store *s, const void *arg, const struct store_page *p,
			 struct store_list *ret, struct berth_err *err)
{
	(void)arg;
	return store_cluster_list(s, p, ret, err);
}

static int list_families_all(struct store *s, const void *arg, const struct store_page *p,
			     struct store_list *ret, struct berth_err *err)
{
	return store_task_definition_families(s, arg, STORE_FAMILY_ALL, p, ret, err);
}

/* ---- open, schema ---- */

static void test_open_reopen(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), store_schema_version());
	assert_true(store_schema_version() >= 1);

	make_cluster(f->s, "default");
	_cleanup_free_ char *td = make_td(f->s, "web");
	store_close(f->s);
	f->s = NULL;
	OK(store_open(f->path, &f->s, &e_));
	/* Reopening an up-to-date file migrates nothing and keeps the data. */
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), store_schema_version());
	_cleanup_(store_cluster_freep) struct store_cluster *c = NULL;
	OK(store_cluster_get(f->s, "default", &c, &e_));
	assert_string_equal(c->arn, ARN_BASE ":cluster/default");
	_cleanup_(store_task_definition_freep) struct store_task_definition *d = NULL;
	OK(store_task_definition_get(f->s, "web", &d, &e_));
	assert_string_equal(d->arn, td);
	assert_string_equal(d->body_json, TD_BODY);
	/* WAL mode is a property of the file: another reader sees it. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
	sqlite3_finalize(q);
	sqlite3_close(db);
}

static void test_newer_version_refused(void **state)
{
	struct fixture *f = *state;
	make_cluster(f->s, "default");
	store_close(f->s);
	f->s = NULL;
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", store_schema_version() + 1);
	raw_exec(f->path, sql);
	size_t len0, len1;
	_cleanup_free_ char *before = slurp(f->path, &len0);
	struct store *s = NULL;
	FAILS(store_open(f->path, &s, &e_), ENOTSUP, "downgrade not supported");
	assert_null(s);
	_cleanup_free_ char *after = slurp(f->path, &len1);
	assert_int_equal(len0, len1);
	assert_memory_equal(before, after, len0);
}

static void assert_refused_untouched(const char *path, int errno_, const char *want)
{
	size_t len0, len1;
	_cleanup_free_ char *before = slurp(path, &len0);
	struct stat st0, st1;
	assert_int_equal(stat(path, &st0), 0);
	struct store *s = NULL;
	FAILS(store_open(path, &s, &e_), errno_, want);
	assert_null(s);
	_cleanup_free_ char *after = slurp(path, &len1);
	assert_int_equal(stat(path, &st1), 0);
	assert_int_equal(len0, len1);
	assert_memory_equal(before, after, len0);
	assert_int_equal(st0.st_mtim.tv_sec, st1.st_mtim.tv_sec);
	assert_int_equal(st0.st_mtim.tv_nsec, st1.st_mtim.tv_nsec);
}

static void test_corrupt_refused(void **state)
{
	struct fixture *f = *state;
	char path[128];

	/* Not SQLite at all. */
	snprintf(path, sizeof(path), "%s/garbage.db", f->dir);
	char junk[8192];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7 + 3);
	int jfd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(jfd >= 0);
	assert_int_equal(write(jfd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(jfd);
	assert_refused_untouched(path, EBADMSG, "not an SQLite database");

	/* A berth database with a damaged page: the header is fine, a
	 * b-tree page is not. */
	make_cluster(f->s, "default");
	for (int i = 0; i < 20; i++) {
		char name[32];
		snprintf(name, sizeof(name), "family-%d", i);
		free(make_td(f->s, name));
	}
	store_close(f->s);
	f->s = NULL;
	assert_true(access(f->path, F_OK) == 0);
	int fd = open(f->path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	char bad[4096];
	memset(bad, 0xA5, sizeof(bad));
	assert_int_equal(pwrite(fd, bad, 512, 4096 + 8), 512);  /* page 2 */
	close(fd);
	assert_refused_untouched(f->path, EBADMSG, "corrupt");

	/* Another program's SQLite database. */
	snprintf(path, sizeof(path), "%s/other.db", f->dir);
	raw_exec(path, "CREATE TABLE clusters (x); INSERT INTO clusters VALUES (1)");
	assert_refused_untouched(path, EBADMSG, "not a berth database");
}

/* ---- task definitions ---- */

static void test_revisions(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	for (int want = 1; want <= 3; want++) {
		_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
		OK(store_task_definition_register(s, ARN_BASE, "web", TD_BODY, 100 + want, &td, &e_));
		assert_int_equal(td->revision, want);
		assert_int_equal(td->status, STORE_TD_ACTIVE);
		assert_int_equal(td->registered_at, 100 + want);
		char arn[128];
		snprintf(arn, sizeof(arn), ARN_BASE ":task-definition/web:%d", want);
		assert_string_equal(td->arn, arn);
	}
	_cleanup_free_ char *api = make_td(s, "api");
	assert_string_equal(api, ARN_BASE ":task-definition/api:1");

	struct store_task_definition *td = NULL;
	OK(store_task_definition_get(s, "web", &td, &e_));
	assert_int_equal(td->revision, 3);
	store_task_definition_free(td);
	OK(store_task_definition_get(s, ARN_BASE ":task-definition/web:2", &td, &e_));
	assert_int_equal(td->revision, 2);
	store_task_definition_free(td);

	/* Deregistered: still describable by revision, no longer "latest". */
	OK(store_task_definition_deregister(s, "web:3", 500, &td, &e_));
	assert_int_equal(td->status, STORE_TD_INACTIVE);
	assert_int_equal(td->deregistered_at, 500);
	store_task_definition_free(td);
	OK(store_task_definition_deregister(s, "web:3", 999, &td, &e_));  /* idempotent */
	assert_int_equal(td->deregistered_at, 500);
	store_task_definition_free(td);
	OK(store_task_definition_get(s, "web", &td, &e_));
	assert_int_equal(td->revision, 2);
	store_task_definition_free(td);
	OK(store_task_definition_get(s, "web:3", &td, &e_));
	assert_int_equal(td->status, STORE_TD_INACTIVE);
	store_task_definition_free(td);

	FAILS(store_task_definition_deregister(s, "web", 1, &td, &e_), EINVAL, "revision is required");
	FAILS(store_task_definition_delete(s, "web:2", &td, &e_), EINVAL, "is ACTIVE, not INACTIVE");
	FAILS(store_task_definition_get(s, "web:9", &td, &e_), ENOENT, "web:9: not found");
	FAILS(store_task_definition_get(s, "web:x", &td, &e_), EINVAL, "bad revision");
	FAILS(store_task_definition_get(s, "nope", &td, &e_), ENOENT, "no ACTIVE revision");

	OK(store_task_definition_delete(s, "web:3", &td, &e_));
	assert_int_equal(td->status, STORE_TD_DELETE_IN_PROGRESS);
	store_task_definition_free(td);
	size_t purged = 0;
	OK(store_task_definition_purge(s, &purged, &e_));
	assert_int_equal(purged, 1);
	FAILS(store_task_definition_get(s, "web:3", &td, &e_), ENOENT, "not found");

	/* The number 3 is gone for good. */
	OK(store_task_definition_register(s, ARN_BASE, "web", TD_BODY, 600, &td, &e_));
	assert_int_equal(td->revision, 4);
	store_task_definition_free(td);

	/* Every revision gone still leaves the counter. */
	for (int rev = 1; rev <= 4; rev++) {
		char ref[32];
		if (rev == 3)
			continue;
		snprintf(ref, sizeof(ref), "web:%d", rev);
		OK(store_task_definition_deregister(s, ref, 700, &td, &e_));
		store_task_definition_free(td);
		OK(store_task_definition_delete(s, ref, &td, &e_));
		store_task_definition_free(td);
	}
	OK(store_task_definition_purge(s, &purged, &e_));
	assert_int_equal(purged, 3);
	store_close(f->s);
	OK(store_open(f->path, &f->s, &e_));
	OK(store_task_definition_register(f->s, ARN_BASE, "web", TD_BODY, 800, &td, &e_));
	assert_int_equal(td->revision, 5);
	store_task_definition_free(td);
}

static void test_td_in_use_not_purged(void **state)
{
	struct fixture *f = *state;
	make_cluster(f->s, "default");
	_cleanup_free_ char *arn = make_td(f->s, "web");
	struct task_buf b;
	task_init(&b, 1, "default", arn);
	OK(store_task_insert(f->s, &b.t, &e_));
	struct store_task_definition *td = NULL;
	OK(store_task_definition_deregister(f->s, "web:1", 1, &td, &e_));
	store_task_definition_free(td);
	OK(store_task_definition_delete(f->s, "web:1", &td, &e_));
	store_task_definition_free(td);
	size_t n = 9;
	OK(store_task_definition_purge(f->s, &n, &e_));
	assert_int_equal(n, 0);  /* a task still uses it */
	OK(store_task_definition_get(f->s, arn, &td, &e_));
	store_task_definition_free(td);
}

static void test_td_list_paging(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	static const char *const fams[] = { "delta", "alpha", "echo", "charlie", "bravo" };
	/* alpha:1..3 bravo:1..3 … in sorted order is the expected ASC list. */
	for (int rev = 1; rev <= 3; rev++)
		for (size_t i = 0; i < ARRAY_SIZE(fams); i++)
			free(make_td(s, fams[i]));
	struct store_task_definition *td = NULL;
	OK(store_task_definition_deregister(s, "bravo:2", 1, &td, &e_));
	store_task_definition_free(td);
	for (int rev = 1; rev <= 3; rev++) {  /* charlie: no ACTIVE revision */
		char ref[32];
		snprintf(ref, sizeof(ref), "charlie:%d", rev);
		OK(store_task_definition_deregister(s, ref, 1, &td, &e_));
		store_task_definition_free(td);
	}

	static const char *const sorted[] = { "alpha", "bravo", "charlie", "delta", "echo" };
	char want[15][128];
	for (size_t i = 0; i < 5; i++)
		for (int rev = 1; rev <= 3; rev++)
			snprintf(want[i * 3 + (size_t)rev - 1], 128, ARN_BASE ":task-definition/%s:%d",
				 sorted[i], rev);

	for (int max = 1; max <= 16; max += 3) {
		char **got;
		struct store_td_filter all = { 0 };
		size_t n = collect(s, list_td, &all, max, &got);
		assert_int_equal(n, 15);
		for (size_t i = 0; i < n; i++)
			assert_string_equal(got[i], want[i]);
		free_strv(got, n);

		struct store_td_filter desc = { .descending = true };
		n = collect(s, list_td, &desc, max, &got);
		assert_int_equal(n, 15);
		for (size_t i = 0; i < n; i++)
			assert_string_equal(got[i], want[14 - i]);
		free_strv(got, n);
	}

	char **got;
	struct store_td_filter active = { .has_status = true, .status = STORE_TD_ACTIVE };
	size_t n = collect(s, list_td, &active, 2, &got);
	assert_int_equal(n, 11);  /* 15 − bravo:2 − charlie:1..3 */
	for (size_t i = 0; i < n; i++) {
		assert_null(strstr(got[i], "bravo:2"));
		assert_null(strstr(got[i], "charlie"));
	}
	free_strv(got, n);
	struct store_td_filter fam = { .family = "bravo", .descending = true };
	n = collect(s, list_td, &fam, 2, &got);
	assert_int_equal(n, 3);
	assert_string_equal(got[0], ARN_BASE ":task-definition/bravo:3");
	assert_string_equal(got[2], ARN_BASE ":task-definition/bravo:1");
	free_strv(got, n);
	struct store_td_filter fam_inactive = { .family = "bravo", .has_status = true,
						.status = STORE_TD_INACTIVE };
	n = collect(s, list_td, &fam_inactive, 5, &got);
	assert_int_equal(n, 1);
	free_strv(got, n);

	/* Families. */
	n = collect(s, list_families_all, NULL, 2, &got);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(got[i], sorted[i]);
	free_strv(got, n);
	free(make_td(s, "alphabet"));
	n = collect(s, list_families_all, "alpha", 1, &got);
	assert_int_equal(n, 2);
	assert_string_equal(got[0], "alpha");
	assert_string_equal(got[1], "alphabet");
	free_strv(got, n);
	struct store_list l = { 0 };
	OK(store_task_definition_families(s, NULL, STORE_FAMILY_INACTIVE, NULL, &l, &e_));
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0], "charlie");
	store_list_clear(&l);
	OK(store_task_definition_families(s, NULL, STORE_FAMILY_ACTIVE, NULL, &l, &e_));
	assert_int_equal(l.n, 5);
	assert_null(l.next_token);
	store_list_clear(&l);

	/* Bad paging input. */
	struct store_page p = { .max_results = 101 };
	FAILS(store_task_definition_list(s, NULL, &p, &l, &e_), EINVAL, "maxResults 101");
	p = (struct store_page){ .max_results = -1 };
	FAILS(store_task_definition_list(s, NULL, &p, &l, &e_), EINVAL, "maxResults");
	p = (struct store_page){ .next_token = "not-a-token!" };
	FAILS(store_task_definition_list(s, NULL, &p, &l, &e_), EINVAL, "nextToken");
	/* A cluster-list token is no task-definition token. */
	make_cluster(s, "a");
	make_cluster(s, "b");
	p = (struct store_page){ .max_results = 1 };
	OK(store_cluster_list(s, &p, &l, &e_));
	assert_non_null(l.next_token);
	p.next_token = l.next_token;
	struct store_list l2 = { 0 };
	FAILS(store_task_definition_list(s, NULL, &p, &l2, &e_), EINVAL, "not a token for this list");
	store_list_clear(&l);
}

/* ---- clusters ---- */

static void test_clusters(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	struct store_cluster in = { .name = "prod", .arn = ARN_BASE ":cluster/prod",
				    .settings_json = "[{\"name\":\"containerInsights\",\"value\":\"enabled\"}]" };
	struct store_cluster *c = NULL;
	bool created = false;
	OK(store_cluster_create(s, &in, 42, &c, &created, &e_));
	assert_true(created);
	assert_int_equal(c->status, STORE_CLUSTER_ACTIVE);
	assert_int_equal(c->created_at, 42);
	assert_string_equal(c->settings_json, in.settings_json);
	store_cluster_free(c);
	in.settings_json = NULL;
	OK(store_cluster_create(s, &in, 43, &c, &created, &e_));
	assert_false(created);           /* idempotent: the first one stands */
	assert_int_equal(c->created_at, 42);
	assert_non_null(c->settings_json);
	store_cluster_free(c);
	OK(store_cluster_get(s, ARN_BASE ":cluster/prod", &c, &e_));
	store_cluster_free(c);
	FAILS(store_cluster_get(s, "nope", &c, &e_), ENOENT, "cluster nope: not found");

	for (int i = 0; i < 7; i++) {
		char name[16];
		snprintf(name, sizeof(name), "c%d", 6 - i);
		make_cluster(s, name);
	}
	char **got;
	size_t n = collect(s, list_clusters, NULL, 3, &got);
	assert_int_equal(n, 8);
	assert_string_equal(got[0], ARN_BASE ":cluster/c0");
	assert_string_equal(got[6], ARN_BASE ":cluster/c6");
	assert_string_equal(got[7], ARN_BASE ":cluster/prod");
	free_strv(got, n);

	/* Counters come from the tasks. */
	_cleanup_free_ char *td = make_td(s, "web");
	struct task_buf b;
	task_init(&b, 1, "prod", td);
	OK(store_task_insert(s, &b.t, &e_));
	task_init(&b, 2, "prod", td);
	b.t.last_status = STORE_TASK_RUNNING;
	OK(store_task_insert(s, &b.t, &e_));
	OK(store_cluster_get(s, "prod", &c, &e_));
	assert_int_equal(c->running_tasks_count, 1);
	assert_int_equal(c->pending_tasks_count, 1);
	store_cluster_free(c);

	FAILS(store_cluster_delete(s, "prod", &c, &e_), EBUSY, "cluster prod: still has 2 active tasks");
	OK(store_cluster_delete(s, "c3", &c, &e_));
	assert_int_equal(c->status, STORE_CLUSTER_INACTIVE);
	store_cluster_free(c);
	/* Deleted (INACTIVE) clusters stay listed, as ECS keeps them. */
	n = collect(s, list_clusters, NULL, 100, &got);
	assert_int_equal(n, 8);
	free_strv(got, n);
	OK(store_cluster_get(s, "c3", &c, &e_));  /* INACTIVE stays describable */
	assert_int_equal(c->status, STORE_CLUSTER_INACTIVE);
	store_cluster_free(c);
	task_init(&b, 3, "c3", td);
	FAILS(store_task_insert(s, &b.t, &e_), EINVAL, "cluster c3: is INACTIVE");
	/* Re-created: ACTIVE again, old tags dropped. */
	struct store_tag tag = { .key = "k", .value = "v" };
	OK(store_tags_put(s, ARN_BASE ":cluster/c3", &tag, 1, &e_));
	in = (struct store_cluster){ .name = "c3", .arn = ARN_BASE ":cluster/c3" };
	OK(store_cluster_create(s, &in, 77, &c, &created, &e_));
	assert_true(created);
	assert_int_equal(c->status, STORE_CLUSTER_ACTIVE);
	assert_int_equal(c->created_at, 77);
	store_cluster_free(c);
	struct store_tag *tags = NULL;
	size_t nt = 9;
	OK(store_tags_list(s, ARN_BASE ":cluster/c3", &tags, &nt, &e_));
	assert_int_equal(nt, 0);
	store_tags_free(tags, nt);
}

/* ---- tasks ---- */

static void test_task_version(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	make_cluster(s, "default");
	_cleanup_free_ char *td = make_td(s, "web");
	struct task_buf b;
	task_init(&b, 0xabc, "default", td);
	b.t.overrides_json = "{\"containerOverrides\":[]}";
	b.t.version = 77;  /* ignored: a new task is version 1 */
	OK(store_task_insert(s, &b.t, &e_));
	assert_int_equal(b.t.version, 1);
	FAILS(store_task_insert(s, &b.t, &e_), EEXIST, "already exists");

	_cleanup_(store_task_freep) struct store_task *t = NULL;
	OK(store_task_get(s, b.t.id, &t, &e_));
	assert_int_equal(t->version, 1);
	assert_string_equal(t->arn, b.arn);
	assert_string_equal(t->overrides_json, b.t.overrides_json);
	assert_int_equal(t->last_status, STORE_TASK_PROVISIONING);
	assert_int_equal(t->created_at, 3000 + 0xabc);
	assert_int_equal(t->started_at, 0);
	assert_null(t->service_name);
	assert_int_equal(t->n_containers, 2);
	assert_string_equal(t->containers[0].name, "web");
	assert_string_equal(t->containers[1].name, "sidecar");
	assert_false(t->containers[0].has_exit_code);

	/* Each whole-row write is one more version. */
	enum store_task_status path[] = { STORE_TASK_PENDING, STORE_TASK_ACTIVATING, STORE_TASK_RUNNING };
	for (size_t i = 0; i < ARRAY_SIZE(path); i++) {
		t->last_status = path[i];
		OK(store_task_update(s, t, &e_));
		assert_int_equal(t->version, (int64_t)i + 2);
	}
	free(t->containers[1].reason);
	t->containers[1].reason = strdup("Essential container in task exited");
	t->containers[1].has_exit_code = true;
	t->containers[1].exit_code = 137;
	t->containers[1].last_status = STORE_TASK_STOPPED;
	t->containers[0].health_status = STORE_HEALTH_HEALTHY;
	t->containers[0].restart_count = 3;
	t->started_at = 5000;
	t->shim_pid = 4321;
	free(t->attachments_json);
	t->attachments_json = strdup("[{\"type\":\"ElasticNetworkInterface\"}]");
	OK(store_task_update(s, t, &e_));
	assert_int_equal(t->version, 5);

	/* A copy from before that write is stale and changes nothing. */
	b.t.version = 4;
	b.t.last_status = STORE_TASK_STOPPED;
	FAILS(store_task_update(s, &b.t, &e_), ESTALE, "stored version is 5");

	_cleanup_(store_task_freep) struct store_task *t2 = NULL;
	OK(store_task_get(s, b.arn, &t2, &e_));
	assert_string_equal(t2->id, b.t.id);
	assert_int_equal(t2->version, 5);
	assert_int_equal(t2->last_status, STORE_TASK_RUNNING);
	assert_int_equal(t2->started_at, 5000);
	assert_int_equal(t2->shim_pid, 4321);
	assert_string_equal(t2->attachments_json, t->attachments_json);
	assert_true(t2->containers[1].has_exit_code);
	assert_int_equal(t2->containers[1].exit_code, 137);
	assert_int_equal(t2->containers[1].last_status, STORE_TASK_STOPPED);
	assert_string_equal(t2->containers[1].reason, "Essential container in task exited");
	assert_int_equal(t2->containers[0].health_status, STORE_HEALTH_HEALTHY);
	assert_int_equal(t2->containers[0].restart_count, 3);
	assert_int_equal(t2->containers[1].restart_count, 0);

	/* Bad input and dangling references. */
	struct task_buf bad;
	task_init(&bad, 2, "nosuch", td);
	FAILS(store_task_insert(s, &bad.t, &e_), ENOENT, "cluster nosuch: not found");
	task_init(&bad, 2, "default", ARN_BASE ":task-definition/nope:1");
	FAILS(store_task_insert(s, &bad.t, &e_), ENOENT, "nope:1: not found");
	task_init(&bad, 2, "default", td);
	bad.t.id[0] = 'X';
	FAILS(store_task_insert(s, &bad.t, &e_), EINVAL, "lowercase hex");
	task_init(&bad, 2, "default", td);
	bad.t.desired_status = STORE_TASK_ACTIVATING;
	FAILS(store_task_insert(s, &bad.t, &e_), EINVAL, "desired status ACTIVATING");
	task_init(&bad, 99, "default", td);
	FAILS(store_task_update(s, &bad.t, &e_), ENOENT, "not found");
	FAILS(store_task_get(s, "ffffffffffffffffffffffffffffffff", &t2, &e_), ENOENT, "not found");

	char id[STORE_TASK_ID_LEN + 1], id2[STORE_TASK_ID_LEN + 1];
	OK(store_task_new_id(id, &e_));
	OK(store_task_new_id(id2, &e_));
	assert_int_equal(strlen(id), 32);
	assert_int_equal(strspn(id, "0123456789abcdef"), 32);
	assert_string_not_equal(id, id2);
}

/* store_task_modify()'s FN: sets lastStatus to *ARG's status and a reason,
 * or fails after changing T (nothing may be written), or changes nothing. */
struct modify_arg {
	enum store_task_status status;
	int result;                 /* what FN returns */
	int calls;
	struct store *tag_in;       /* FN also tags the task, inside the transaction */
};

static int modify_fn(struct store_task *t, void *arg, struct berth_err *err)
{
	struct modify_arg *a = arg;
	a->calls++;
	t->last_status = a->status;
	free(t->stopped_reason);
	t->stopped_reason = strdup("changed by fn");
	if (a->tag_in) {
		struct store_tag tag = { .key = "k", .value = "v" };
		int r = store_tags_put(a->tag_in, t->arn, &tag, 1, err);
		if (r < 0)
			return r;
	}
	if (a->result < 0)
		return berth_errf(err, -a->result, "task %s: fn refused", t->id);
	return a->result;
}

static void test_task_modify(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	make_cluster(s, "default");
	_cleanup_free_ char *td = make_td(s, "web");
	struct task_buf b;
	task_init(&b, 0x77, "default", td);
	OK(store_task_insert(s, &b.t, &e_));

	/* FN's change is written, as one new version, and handed back. */
	struct modify_arg a = { .status = STORE_TASK_PENDING };
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	OK(store_task_modify(s, b.t.id, modify_fn, &a, &t, &e_));
	assert_int_equal(a.calls, 1);
	assert_int_equal(t->version, 2);
	assert_int_equal(t->last_status, STORE_TASK_PENDING);
	store_task_free(TAKE_PTR(t));
	OK(store_task_get(s, b.arn, &t, &e_));  /* by ARN too */
	assert_int_equal(t->version, 2);
	assert_int_equal(t->last_status, STORE_TASK_PENDING);
	assert_string_equal(t->stopped_reason, "changed by fn");
	store_task_free(TAKE_PTR(t));

	/* FN reads the newest state: a change another connection wrote after
	 * our caller last looked is kept, not overwritten (no -ESTALE). */
	_cleanup_(store_closep) struct store *other = NULL;
	OK(store_open(f->path, &other, &e_));
	OK(store_task_get(other, b.t.id, &t, &e_));
	t->health_status = STORE_HEALTH_HEALTHY;
	OK(store_task_update(other, t, &e_));
	store_task_free(TAKE_PTR(t));
	a.status = STORE_TASK_ACTIVATING;
	OK(store_task_modify(s, b.t.id, modify_fn, &a, NULL, &e_));
	OK(store_task_get(other, b.t.id, &t, &e_));
	assert_int_equal(t->version, 4);
	assert_int_equal(t->last_status, STORE_TASK_ACTIVATING);
	assert_int_equal(t->health_status, STORE_HEALTH_HEALTHY);
	store_task_free(TAKE_PTR(t));

	/* FN failing writes nothing: neither its change to the task nor
	 * what it wrote through the store meanwhile (the tag). */
	a = (struct modify_arg){ .status = STORE_TASK_RUNNING, .result = -EINVAL, .tag_in = s };
	FAILS(store_task_modify(s, b.t.id, modify_fn, &a, &t, &e_), EINVAL, "fn refused");
	assert_null(t);
	OK(store_task_get(s, b.t.id, &t, &e_));
	assert_int_equal(t->version, 4);
	assert_int_equal(t->last_status, STORE_TASK_ACTIVATING);
	store_task_free(TAKE_PTR(t));
	struct store_tag *tags = NULL;
	size_t nt = 9;
	OK(store_tags_list(s, b.arn, &tags, &nt, &e_));
	assert_int_equal(nt, 0);

	/* FN saying it changed nothing: no write, no new version. */
	a = (struct modify_arg){ .status = STORE_TASK_ACTIVATING, .result = STORE_TASK_UNCHANGED };
	struct berth_err err = { 0 };
	assert_int_equal(store_task_modify(s, b.t.id, modify_fn, &a, &t, &err),
			 STORE_TASK_UNCHANGED);
	assert_int_equal(t->version, 4);
	store_task_free(TAKE_PTR(t));
	OK(store_task_get(s, b.t.id, &t, &e_));
	assert_int_equal(t->version, 4);

	/* No such task: -ENOENT, FN never called. */
	a = (struct modify_arg){ .status = STORE_TASK_RUNNING };
	FAILS(store_task_modify(s, "ffffffffffffffffffffffffffffffff", modify_fn, &a, NULL, &e_),
	      ENOENT, "not found");
	assert_int_equal(a.calls, 0);

	/* The store works on after each of those (no transaction left open). */
	task_init(&b, 0x78, "default", td);
	OK(store_task_insert(s, &b.t, &e_));
}

static void test_task_filters(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	make_cluster(s, "default");
	make_cluster(s, "other");
	_cleanup_free_ char *web = make_td(s, "web");
	_cleanup_free_ char *api = make_td(s, "api");
	/* 40 tasks: i%2 family, i%3 service, i%5 startedBy, i%4==0 STOPPED,
	 * i%10==9 in the other cluster; inserted in reverse id order. */
	for (int i = 39; i >= 0; i--) {
		struct task_buf b;
		task_init(&b, (unsigned)i, i % 10 == 9 ? "other" : "default", i % 2 ? api : web);
		b.t.service_name = i % 3 == 0 ? "svc" : NULL;
		b.t.started_by = i % 5 == 0 ? "ecs-svc/1234567890123456789" : "me";
		if (i % 4 == 0) {
			b.t.desired_status = STORE_TASK_STOPPED;
			b.t.last_status = STORE_TASK_STOPPED;
		}
		OK(store_task_insert(s, &b.t, &e_));
	}
	const struct store_task_filter cases[] = {
		{ .cluster = "default" },
		{ 0 },
		{ .cluster = "default", .family = "api" },
		{ .cluster = "default", .service_name = "svc" },
		{ .cluster = "default", .started_by = "ecs-svc/1234567890123456789" },
		{ .cluster = "default", .has_desired_status = true, .desired_status = STORE_TASK_RUNNING },
		{ .cluster = "default", .has_desired_status = true, .desired_status = STORE_TASK_PENDING },
		{ .not_stopped = true, .family = "web" },
		{ .service_name = "svc" },      /* in any cluster */
		{ .cluster = "other", .service_name = "svc", .not_stopped = true },
	};
	for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
		const struct store_task_filter *fl = &cases[c];
		char want[40][256];
		size_t nwant = 0;
		for (int i = 0; i < 40; i++) {
			const char *cl = i % 10 == 9 ? "other" : "default";
			bool stopped = i % 4 == 0;
			if (fl->cluster && strcmp(fl->cluster, cl) != 0)
				continue;
			if (fl->family && strcmp(fl->family, i % 2 ? "api" : "web") != 0)
				continue;
			if (fl->service_name && i % 3 != 0)
				continue;
			if (fl->started_by && i % 5 != 0)
				continue;
			if (fl->has_desired_status &&
			    fl->desired_status != (stopped ? STORE_TASK_STOPPED : STORE_TASK_RUNNING))
				continue;
			if (fl->not_stopped && stopped)
				continue;
			snprintf(want[nwant++], 256, ARN_BASE ":task/%s/%032x", cl, (unsigned)i);
		}
		for (int max = 1; max <= 41; max += 8) {
			char **got;
			size_t n = collect(s, list_tasks, fl, max, &got);
			if (n != nwant)
				fail_msg("case %zu max %d: %zu tasks, want %zu", c, max, n, nwant);
			for (size_t i = 0; i < n; i++)
				assert_string_equal(got[i], want[i]);
			free_strv(got, n);
		}
	}
}

static int count_group(void *arg, const struct store_task_group *g, struct berth_err *err)
{
	(void)err;
	int64_t *n = arg;
	n[0]++;
	n[1] += g->count;
	return 0;
}

/* Placement's usage from grouped rows: alike tasks count once a group,
 * times how many share it; STOPPED ones hold nothing; the counts are the
 * asked cluster's, the reservations every cluster's. */
static void test_task_groups_usage(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	make_cluster(s, "default");
	make_cluster(s, "other");
	_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
	OK(store_task_definition_register(
		s, ARN_BASE, "res",
		"{\"containerDefinitions\":[{\"name\":\"web\",\"image\":\"busybox\","
		"\"memoryReservation\":64,\"cpu\":100}]}", 2000, &td, &e_));
	/* 0-4 PROVISIONING, 5-7 RUNNING with cpu 10, 8-9 RUNNING in other,
	 * 10-13 STOPPED. */
	for (unsigned i = 0; i < 14; i++) {
		struct task_buf b;
		task_init(&b, i, i >= 8 && i < 10 ? "other" : "default", td->arn);
		if (i >= 5 && i < 8)
			b.t.overrides_json = "{\"containerOverrides\":[{\"name\":\"web\",\"cpu\":10}]}";
		if (i >= 5)
			b.t.last_status = STORE_TASK_RUNNING;
		if (i >= 10)
			b.t.last_status = b.t.desired_status = STORE_TASK_STOPPED;
		OK(store_task_insert(s, &b.t, &e_));
	}
	int64_t n[2] = { 0 };
	OK(store_task_groups(s, count_group, n, &e_));
	assert_int_equal(n[0], 3);
	assert_int_equal(n[1], 10);
	struct instance_usage u;
	OK(instance_usage(s, "default", &u, &e_));
	assert_int_equal(u.cpu, 5 * 100 + 3 * 10 + 2 * 100);
	assert_int_equal(u.memory, 10 * 64);
	assert_int_equal(u.running, 3);
	assert_int_equal(u.pending, 5);
	OK(instance_usage(s, "other", &u, &e_));
	assert_int_equal(u.cpu, 730);
	assert_int_equal(u.running, 2);
	assert_int_equal(u.pending, 0);
}

static void test_prune(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	make_cluster(s, "default");
	_cleanup_free_ char *td = make_td(s, "web");
	for (unsigned i = 0; i < 6; i++) {
		struct task_buf b;
		task_init(&b, i, "default", td);
		if (i < 4) {  /* 0..3 stopped at 1000, 2000, 3000, 4000 */
			b.t.last_status = STORE_TASK_STOPPED;
			b.t.desired_status = STORE_TASK_STOPPED;
			b.t.stopped_at = 1000 * (i + 1);
		}
		OK(store_task_insert(s, &b.t, &e_));
		struct store_tag tag = { .key = "n", .value = "v" };
		OK(store_tags_put(s, b.arn, &tag, 1, &e_));
	}
	struct store_list ids = { 0 };
	OK(store_task_prune(s, 3000, &ids, &e_));  /* strictly before */
	assert_int_equal(ids.n, 2);
	assert_string_equal(ids.items[0], "00000000000000000000000000000000");
	assert_string_equal(ids.items[1], "00000000000000000000000000000001");
	store_list_clear(&ids);
	struct store_list l = { 0 };
	OK(store_task_list(s, NULL, NULL, &l, &e_));
	assert_int_equal(l.n, 4);
	store_list_clear(&l);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM task_containers"), 8);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tags"), 4 + 0);
	OK(store_task_prune(s, INT64_MAX, NULL, &e_));
	OK(store_task_list(s, NULL, NULL, &l, &e_));
	assert_int_equal(l.n, 2);  /* the running ones stay */
	store_list_clear(&l);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tags"), 2);
}

/* A RunTask request under a token: its tasks in the order made, per
 * cluster; forgotten once prune has taken the last of its tasks. */
static void test_client_tokens(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	make_cluster(s, "default");
	make_cluster(s, "other");
	_cleanup_free_ char *td = make_td(s, "web");
	struct berth_err err = { 0 };
	OK(store_run_request_put(s, "default", "tok", "{\"count\":2}", &e_));
	for (unsigned i = 0; i < 3; i++) {
		struct task_buf b;
		task_init(&b, 9 - i, "default", td);  /* rowid order, not id order */
		b.t.client_token = i < 2 ? "tok" : NULL;
		b.t.last_status = b.t.desired_status = STORE_TASK_STOPPED;
		b.t.stopped_at = 1000 * (i + 1);
		OK(store_task_insert(s, &b.t, &e_));
	}
	char *req = NULL;
	struct store_list arns = { 0 };
	OK(store_run_request_get(s, "default", "tok", &req, &arns, &e_));
	assert_string_equal(req, "{\"count\":2}");
	assert_int_equal(arns.n, 2);
	assert_non_null(strstr(arns.items[0], "/00000000000000000000000000000009"));
	assert_non_null(strstr(arns.items[1], "/00000000000000000000000000000008"));
	free(req);
	store_list_clear(&arns);
	assert_int_equal(store_run_request_get(s, "other", "tok", &req, &arns, &err), -ENOENT);
	assert_int_equal(store_run_request_get(s, "default", "TOK", &req, &arns, &err), -ENOENT);

	OK(store_task_prune(s, 1500, NULL, &e_));  /* one of its two tasks */
	OK(store_run_request_get(s, "default", "tok", &req, &arns, &e_));
	assert_int_equal(arns.n, 1);
	free(req);
	store_list_clear(&arns);
	OK(store_task_prune(s, 2500, NULL, &e_));  /* the last: the token goes too */
	assert_int_equal(store_run_request_get(s, "default", "tok", &req, &arns, &err), -ENOENT);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM run_requests"), 0);
	/* A new request may take the token again. */
	OK(store_run_request_put(s, "default", "tok", "{}", &e_));
}

/* ---- tags ---- */

static void test_tags(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	make_cluster(s, "default");
	const char *arn = ARN_BASE ":cluster/default";
	struct store_tag t1[] = { { "team", "a" }, { "env", "prod" } };
	OK(store_tags_put(s, arn, t1, 2, &e_));
	struct store_tag t2[] = { { "team", "b" }, { "cost", "" } };
	OK(store_tags_put(s, arn, t2, 2, &e_));
	struct store_tag *tags;
	size_t n;
	OK(store_tags_list(s, arn, &tags, &n, &e_));
	assert_int_equal(n, 3);  /* replaced, not duplicated; sorted by key */
	assert_string_equal(tags[0].key, "cost");
	assert_string_equal(tags[0].value, "");
	assert_string_equal(tags[1].key, "env");
	assert_string_equal(tags[2].key, "team");
	assert_string_equal(tags[2].value, "b");
	store_tags_free(tags, n);

	const char *rm[] = { "env", "absent" };
	OK(store_tags_remove(s, arn, rm, 2, &e_));
	OK(store_tags_list(s, arn, &tags, &n, &e_));
	assert_int_equal(n, 2);
	store_tags_free(tags, n);

	/* Limits: key 1..128 and value 0..256 characters, 50 per resource. */
	char key[200], val[600];
	memset(key, 'k', 128);
	key[128] = '\0';
	memset(val, 'v', 256);
	val[256] = '\0';
	struct store_tag edge = { key, val };
	OK(store_tags_put(s, arn, &edge, 1, &e_));
	key[128] = 'k';
	key[129] = '\0';
	FAILS(store_tags_put(s, arn, &edge, 1, &e_), EINVAL, "longer than 128");
	key[128] = '\0';
	val[256] = 'v';
	val[257] = '\0';
	FAILS(store_tags_put(s, arn, &edge, 1, &e_), EINVAL, "longer than 256");
	/* Characters, not bytes: 256 × "é" is 512 bytes and fits. */
	for (int i = 0; i < 256; i++)
		memcpy(val + 2 * i, "\xc3\xa9", 2);
	val[512] = '\0';
	OK(store_tags_put(s, arn, &edge, 1, &e_));
	struct store_tag empty = { "", "x" };
	FAILS(store_tags_put(s, arn, &empty, 1, &e_), EINVAL, "empty");
	struct store_tag reserved = { "AWS:foo", "x" };
	FAILS(store_tags_put(s, arn, &reserved, 1, &e_), EINVAL, "reserved");
	const char *rmres[] = { "aws:cloudformation:stack-name" };
	FAILS(store_tags_remove(s, arn, rmres, 1, &e_), EINVAL, "reserved");
	FAILS(store_tags_put(s, ARN_BASE ":cluster/nope", t1, 1, &e_), ENOENT, "not found");

	/* 3 tags now; 47 more fit, 48 do not, and a refused put changes
	 * nothing. */
	struct store_tag many[48];
	char names[48][16];
	for (int i = 0; i < 48; i++) {
		snprintf(names[i], sizeof(names[i]), "key%02d", i);
		many[i] = (struct store_tag){ names[i], "x" };
	}
	FAILS(store_tags_put(s, arn, many, 48, &e_), EINVAL, "51 tags: more than 50");
	OK(store_tags_list(s, arn, &tags, &n, &e_));
	assert_int_equal(n, 3);
	store_tags_free(tags, n);
	OK(store_tags_put(s, arn, many, 47, &e_));
	OK(store_tags_put(s, arn, many, 47, &e_));  /* replacing is not adding */
	OK(store_tags_list(s, arn, &tags, &n, &e_));
	assert_int_equal(n, 50);
	store_tags_free(tags, n);

	/* Task definitions and tasks take tags too. */
	_cleanup_free_ char *td = make_td(s, "web");
	OK(store_tags_put(s, td, t1, 2, &e_));
	OK(store_resource_exists(s, td, &e_));
	FAILS(store_resource_exists(s, ARN_BASE ":task/default/0", &e_), ENOENT, "not found");
}

/* ---- transactions ---- */

struct batch {
	const char *td;
	unsigned first, count;
	bool fail_at_end;
	int notify_fd;     /* writes a byte after half, then waits to be killed */
};

static int batch_insert(struct store *s, void *arg, struct berth_err *err)
{
	struct batch *b = arg;
	for (unsigned i = 0; i < b->count; i++) {
		struct task_buf tb;
		task_init(&tb, b->first + i, "default", b->td);
		int r = store_task_insert(s, &tb.t, err);
		if (r < 0)
			return r;
		if (b->notify_fd >= 0 && i == b->count / 2) {
			if (write(b->notify_fd, "x", 1) != 1)
				_exit(3);
			for (;;)
				pause();
		}
	}
	if (b->fail_at_end)
		return berth_errf(err, ECANCELED, "batch: giving up");
	return 0;
}

static int64_t count_tasks(struct store *s)
{
	struct store_list l = { 0 };
	int64_t n = 0;
	_cleanup_free_ char *token = NULL;
	do {
		struct store_page p = { .next_token = token };
		OK(store_task_list(s, NULL, &p, &l, &e_));
		n += (int64_t)l.n;
		free(token);
		token = l.next_token ? strdup(l.next_token) : NULL;
		store_list_clear(&l);
	} while (token);
	return n;
}

static int dup_then_more(struct store *s, void *arg, struct berth_err *err)
{
	struct batch *b = arg;
	struct task_buf tb;
	task_init(&tb, 1, "default", b->td);
	struct berth_err inner = { 0 };
	/* The duplicate fails and undoes only itself. */
	if (store_task_insert(s, &tb.t, &inner) != -EEXIST)
		return berth_errf(err, EIO, "duplicate insert did not fail: %s", inner.msg);
	task_init(&tb, 500, "default", b->td);
	return store_task_insert(s, &tb.t, err);
}

static void test_txn(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	make_cluster(s, "default");
	_cleanup_free_ char *td = make_td(s, "web");
	struct batch b = { .td = td, .first = 0, .count = 10, .notify_fd = -1 };
	OK(store_txn(s, batch_insert, &b, &e_));
	assert_int_equal(count_tasks(s), 10);
	b = (struct batch){ .td = td, .first = 100, .count = 10, .fail_at_end = true, .notify_fd = -1 };
	FAILS(store_txn(s, batch_insert, &b, &e_), ECANCELED, "giving up");
	assert_int_equal(count_tasks(s), 10);  /* all ten rolled back */
	b = (struct batch){ .td = td };
	OK(store_txn(s, dup_then_more, &b, &e_));
	assert_int_equal(count_tasks(s), 11);
}

/* ---- the statement cache ---- */

static void test_statement_cache(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	make_cluster(s, "default");
	_cleanup_free_ char *td = make_td(s, "web");
	struct batch b = { .td = td, .first = 0, .count = 3, .notify_fd = -1 };
	OK(store_txn(s, batch_insert, &b, &e_));

	/* Reads and writes again and again prepare nothing new. */
	assert_int_equal(count_tasks(s), 3);
	size_t n = s->n_stmts;
	for (int i = 0; i < 50; i++)
		assert_int_equal(count_tasks(s), 3);
	assert_int_equal(s->n_stmts, n);
	OK(store_txn(s, batch_insert, &(struct batch){ .td = td, .first = 3, .count = 1,
						       .notify_fd = -1 }, &e_));
	n = s->n_stmts;
	OK(store_txn(s, batch_insert, &(struct batch){ .td = td, .first = 4, .count = 1,
						       .notify_fd = -1 }, &e_));
	assert_int_equal(s->n_stmts, n);

	/* A statement still stepping is not handed out twice: the nested
	 * use gets its own, and both read their own rows. */
	const char *sql = "SELECT id FROM tasks ORDER BY id";
	sqlite3_stmt *outer, *inner;
	OK(store_prepare(s, sql, &outer, &e_));
	assert_int_equal(sqlite3_step(outer), SQLITE_ROW);
	OK(store_prepare(s, sql, &inner, &e_));
	assert_ptr_not_equal(inner, outer);
	assert_int_equal(sqlite3_step(inner), SQLITE_ROW);
	assert_int_equal(sqlite3_step(inner), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(outer, 0),
			    "00000000000000000000000000000000");
	store_stmt_release(inner);
	store_stmt_release(outer);
	sqlite3_stmt *again;
	OK(store_prepare(s, sql, &again, &e_));
	assert_true(again == outer || again == inner);
	store_stmt_release(again);

	/* The table grows past its first size and keeps every statement. */
	sqlite3_stmt *first[200];
	for (int i = 0; i < 200; i++) {
		char q[32];
		snprintf(q, sizeof(q), "SELECT %d", i);
		OK(store_prepare(s, q, &first[i], &e_));
		store_stmt_release(first[i]);
	}
	for (int i = 0; i < 200; i++) {
		char q[32];
		snprintf(q, sizeof(q), "SELECT %d", i);
		sqlite3_stmt *st;
		OK(store_prepare(s, q, &st, &e_));
		assert_ptr_equal(st, first[i]);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(st, 0), i);
		store_stmt_release(st);
	}

	/* SQL that does not prepare names the store and the cause, and
	 * leaves nothing in the cache. */
	n = s->n_stmts;
	sqlite3_stmt *bad = NULL;
	FAILS(store_prepare(s, "SELECT nope FROM nowhere", &bad, &e_), EIO, "no such table: nowhere");
	FAILS(store_prepare(s, "SELECT nope FROM nowhere", &bad, &e_), EIO, f->path);
	assert_int_equal(s->n_stmts, n);
}

/* A cluster found for a request that only names it: what
 * store_cluster_get() says, without counting its tasks. */
static void test_cluster_find(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	make_cluster(s, "default");
	_cleanup_free_ char *td = make_td(s, "web");
	struct batch b = { .td = td, .first = 0, .count = 3, .notify_fd = -1 };
	OK(store_txn(s, batch_insert, &b, &e_));
	_cleanup_(store_cluster_freep) struct store_cluster *full = NULL, *brief = NULL,
							   *by_arn = NULL;
	OK(store_cluster_get(s, "default", &full, &e_));
	assert_int_equal(full->pending_tasks_count, 3);
	OK(store_cluster_find(s, "default", &brief, &e_));
	assert_string_equal(brief->name, full->name);
	assert_string_equal(brief->arn, full->arn);
	assert_int_equal(brief->status, full->status);
	assert_int_equal(brief->created_at, full->created_at);
	assert_int_equal(brief->pending_tasks_count + brief->running_tasks_count, 0);
	OK(store_cluster_find(s, full->arn, &by_arn, &e_));
	assert_string_equal(by_arn->name, "default");
	struct store_cluster *none = NULL;
	FAILS(store_cluster_find(s, "nope", &none, &e_), ENOENT, "cluster nope: not found");
}

static int read_inside(struct store *s, void *arg, struct berth_err *err)
{
	(void)arg;
	int r = store_read_begin(s, err);
	if (r < 0)
		return r;
	store_read_end(s);
	struct task_buf tb;
	task_init(&tb, 4, "default", NULL);
	_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
	r = store_task_definition_get(s, "web", &td, err);
	if (r < 0)
		return r;
	tb.t.task_definition_arn = td->arn;
	return store_task_insert(s, &tb.t, err);
}

/* A read snapshot sees one state: a write from another connection lands
 * after it ends; it does nothing inside a transaction. */
static void test_read_snapshot(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	make_cluster(s, "default");
	_cleanup_free_ char *td = make_td(s, "web");
	struct batch b = { .td = td, .first = 0, .count = 3, .notify_fd = -1 };
	OK(store_txn(s, batch_insert, &b, &e_));
	_cleanup_(store_closep) struct store *other = NULL;
	OK(store_open(f->path, &other, &e_));

	OK(store_read_begin(s, &e_));
	assert_int_equal(count_tasks(s), 3);
	b = (struct batch){ .td = td, .first = 3, .count = 1, .notify_fd = -1 };
	OK(store_txn(other, batch_insert, &b, &e_));
	assert_int_equal(count_tasks(s), 3);
	store_read_end(s);
	assert_int_equal(count_tasks(s), 4);
	store_read_end(s);          /* none open: nothing to end */

	/* Inside a transaction it neither begins nor ends one. */
	OK(store_txn(s, read_inside, NULL, &e_));
	assert_int_equal(count_tasks(s), 5);
}

/* ---- several processes ---- */

static void test_concurrent_wal(void **state)
{
	struct fixture *f = *state;
	make_cluster(f->s, "default");
	_cleanup_free_ char *td = make_td(f->s, "web");
	enum { N = 200 };
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* A connection never crosses fork(): the child opens its own. */
		struct store *cs = NULL;
		struct berth_err err = { 0 };
		if (store_open(f->path, &cs, &err) < 0)
			_exit(10);
		for (unsigned i = 0; i < N; i++) {
			struct task_buf b;
			task_init(&b, 1000 + i, "default", td);
			if (store_task_insert(cs, &b.t, &err) < 0)
				_exit(11);
			b.t.last_status = STORE_TASK_RUNNING;
			if (store_task_update(cs, &b.t, &err) < 0)
				_exit(12);
		}
		store_close(cs);
		_exit(0);
	}
	/* The parent reads (lists, gets) and writes (tags) all along. */
	int status = 0, rounds = 0;
	int64_t seen = 0;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		assert_true(w >= 0);
		struct store_list l = { 0 };
		OK(store_task_list(f->s, NULL, NULL, &l, &e_));
		assert_true((int64_t)l.n >= seen);  /* never goes backwards */
		seen = (int64_t)l.n;
		if (l.n > 0) {
			_cleanup_(store_task_freep) struct store_task *t = NULL;
			OK(store_task_get(f->s, l.items[l.n - 1], &t, &e_));
			assert_int_equal(t->n_containers, 2);
		}
		store_list_clear(&l);
		struct store_tag tag = { "round", "x" };
		OK(store_tags_put(f->s, ARN_BASE ":cluster/default", &tag, 1, &e_));
		rounds++;
		if (w == pid)
			break;
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(count_tasks(f->s), N);
	assert_true(rounds > 1);
}

static void test_kill9_mid_transaction(void **state)
{
	struct fixture *f = *state;
	make_cluster(f->s, "default");
	_cleanup_free_ char *td = make_td(f->s, "web");
	struct batch before = { .td = td, .first = 0, .count = 3, .notify_fd = -1 };
	OK(store_txn(f->s, batch_insert, &before, &e_));
	int64_t rows0 = raw_int(f->path, "SELECT count(*) FROM task_containers");

	int pfd[2];
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		struct store *cs = NULL;
		struct berth_err err = { 0 };
		if (store_open(f->path, &cs, &err) < 0)
			_exit(10);
		/* Big enough that SQLite spills uncommitted pages into the
		 * WAL before we are killed. */
		struct batch b = { .td = td, .first = 100, .count = 6000, .notify_fd = pfd[1] };
		store_txn(cs, batch_insert, &b, &err);
		_exit(11);
	}
	close(pfd[1]);
	char c;
	assert_int_equal(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	/* The premise: uncommitted pages already sit in the WAL, so the
	 * recovery below must actually ignore them. */
	char wal[128];
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	struct stat wst;
	assert_int_equal(stat(wal, &wst), 0);
	assert_true(wst.st_size > (1 << 20));
	/* While the child holds its transaction open, a reader sees the
	 * committed state only. */
	assert_int_equal(count_tasks(f->s), 3);
	assert_int_equal(kill(pid, SIGKILL), 0);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));

	store_close(f->s);
	f->s = NULL;
	OK(store_open(f->path, &f->s, &e_));
	assert_int_equal(count_tasks(f->s), 3);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM task_containers"), rows0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM pragma_integrity_check"
					  " WHERE integrity_check <> 'ok'"), 0);
	/* And the store writes on. */
	struct batch after = { .td = td, .first = 50, .count = 2, .notify_fd = -1 };
	OK(store_txn(f->s, batch_insert, &after, &e_));
	assert_int_equal(count_tasks(f->s), 5);
}

/* ARN's tags as "k=v,k=v" (by key). */
static void tags_text(struct fixture *f, const char *arn, char *buf, size_t n)
{
	struct store_tag *v = NULL;
	size_t count = 0;
	OK(store_tags_list(f->s, arn, &v, &count, &e_));
	buf[0] = '\0';
	for (size_t i = 0; i < count; i++) {
		size_t len = strlen(buf);
		snprintf(buf + len, n - len, "%s%s=%s", i ? "," : "", v[i].key, v[i].value);
	}
	store_tags_free(v, count);
}

/* daemon/sched/tasktags: what a new task's tags are (RunTask's and a
 * service's alike).  Tags go on any resource the store has: two clusters
 * stand in for the task and for the service whose tags it copies. */
#define TT_TASK ARN_BASE ":cluster/task"
#define TT_SERVICE ARN_BASE ":cluster/service"

static void test_service_task_gets_service_then_managed_then_own_tags(void **state)
{
	struct fixture *f = *state;
	make_cluster(f->s, "task");
	make_cluster(f->s, "service");
	struct store_tag svc[] = { { "team", "svc" }, { "tier", "web" } };
	OK(store_tags_put(f->s, TT_SERVICE, svc, 2, &e_));
	struct store_tag own[] = { { "tier", "mine" } };
	struct tasktags t = { .propagate_from = TT_SERVICE, .managed = true, .cluster = "default",
			      .service_name = "web", .extra = own, .n_extra = 1 };
	assert_true(tasktags_any(&t));
	OK(tasktags_put(f->s, TT_TASK, &t, &e_));
	char got[512];
	tags_text(f, TT_TASK, got, sizeof(got));
	assert_string_equal(got, "aws:ecs:clusterName=default,aws:ecs:serviceName=web,"
				 "team=svc,tier=mine");
}

static void test_standalone_task_gets_no_service_name(void **state)
{
	struct fixture *f = *state;
	make_cluster(f->s, "task");
	struct tasktags t = { .managed = true, .cluster = "c1" };
	OK(tasktags_put(f->s, TT_TASK, &t, &e_));
	char got[512];
	tags_text(f, TT_TASK, got, sizeof(got));
	assert_string_equal(got, "aws:ecs:clusterName=c1");
	struct tasktags none = { .cluster = "c1", .service_name = "web" };
	assert_false(tasktags_any(&none));
}

/* UpdateContainerInstancesState's DRAINING, per cluster. */
static void test_draining_is_kept_per_cluster_across_a_reopen(void **state)
{
	struct fixture *f = *state;
	bool draining = true;
	OK(store_instance_draining_get(f->s, "a", &draining, &e_));
	assert_false(draining);
	OK(store_instance_draining_set(f->s, "a", true, &e_));
	OK(store_instance_draining_set(f->s, "a", true, &e_));   /* twice: still one state */
	store_close(f->s);
	OK(store_open(f->path, &f->s, &e_));
	OK(store_instance_draining_get(f->s, "a", &draining, &e_));
	assert_true(draining);
	OK(store_instance_draining_get(f->s, "b", &draining, &e_));
	assert_false(draining);
	OK(store_instance_draining_set(f->s, "a", false, &e_));
	OK(store_instance_draining_get(f->s, "a", &draining, &e_));
	assert_false(draining);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_version_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revisions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_td_in_use_not_purged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_td_list_paging, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clusters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_task_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_task_modify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_task_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_task_groups_usage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_txn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_statement_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cluster_find, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_wal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill9_mid_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_task_gets_service_then_managed_then_own_tags,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_standalone_task_gets_no_service_name, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_draining_is_kept_per_cluster_across_a_reopen,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
