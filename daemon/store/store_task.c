/* daemon/store/store_task: tasks, their containers, and tags. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "daemon/store/store_internal.h"

/* ---- tasks ---- */

static void container_clear(struct store_container *c)
{
	free(c->name);
	free(c->arn);
	free(c->image);
	free(c->image_digest);
	free(c->runtime_id);
	free(c->reason);
	free(c->network_json);
}

void store_task_free(struct store_task *t)
{
	if (!t)
		return;
	free(t->arn);
	free(t->cluster);
	free(t->task_definition_arn);
	free(t->group);
	free(t->started_by);
	free(t->service_name);
	free(t->client_token);
	free(t->launch_type);
	free(t->cpu);
	free(t->memory);
	free(t->stop_code);
	free(t->stopped_reason);
	free(t->connectivity);
	free(t->overrides_json);
	free(t->attachments_json);
	for (size_t i = 0; i < t->n_containers; i++)
		container_clear(&t->containers[i]);
	free(t->containers);
	free(t);
}

int store_task_new_id(char ret[STORE_TASK_ID_LEN + 1], struct berth_err *err)
{
	unsigned char rnd[STORE_TASK_ID_LEN / 2];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return berth_errnof(err, errno, "store: new task id: getrandom");
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(ret + 2 * i, 3, "%02x", rnd[i]);
	return 0;
}

/* Column order shared by SELECT, INSERT and UPDATE: parameter ?N is
 * column N-1, so one binder serves both writes. */
#define TASK_COLUMNS                                                                   \
	"id, arn, cluster, task_definition_arn, group_name, started_by, service_name,"  \
	" client_token, launch_type, cpu, memory, desired_status, last_status, version," \
	" health_status, stop_code, stopped_reason, connectivity, connectivity_at,"      \
	" created_at, pull_started_at, pull_stopped_at, started_at, stopping_at,"        \
	" execution_stopped_at, stopped_at, overrides_json, attachments_json, shim_pid,"  \
	" enable_execute_command"
enum { TASK_NCOLS = 30, COL_VERSION = 13 };

static void task_bind(sqlite3_stmt *st, const struct store_task *t)
{
	store_bind_text(st, 1, t->id);
	store_bind_text(st, 2, t->arn);
	store_bind_text(st, 3, t->cluster);
	store_bind_text(st, 4, t->task_definition_arn);
	store_bind_text(st, 5, t->group);
	store_bind_text(st, 6, t->started_by);
	store_bind_text(st, 7, t->service_name);
	store_bind_text(st, 8, t->client_token);
	store_bind_text(st, 9, t->launch_type);
	store_bind_text(st, 10, t->cpu);
	store_bind_text(st, 11, t->memory);
	store_bind_text(st, 12, store_task_status_name(t->desired_status));
	store_bind_text(st, 13, store_task_status_name(t->last_status));
	sqlite3_bind_int64(st, 14, t->version);
	store_bind_text(st, 15, store_health_name(t->health_status));
	store_bind_text(st, 16, t->stop_code);
	store_bind_text(st, 17, t->stopped_reason);
	store_bind_text(st, 18, t->connectivity);
	store_bind_ms(st, 19, t->connectivity_at);
	store_bind_ms(st, 20, t->created_at);
	store_bind_ms(st, 21, t->pull_started_at);
	store_bind_ms(st, 22, t->pull_stopped_at);
	store_bind_ms(st, 23, t->started_at);
	store_bind_ms(st, 24, t->stopping_at);
	store_bind_ms(st, 25, t->execution_stopped_at);
	store_bind_ms(st, 26, t->stopped_at);
	store_bind_text(st, 27, t->overrides_json);
	store_bind_text(st, 28, t->attachments_json);
	store_bind_ms(st, 29, t->shim_pid);
	sqlite3_bind_int(st, 30, t->enable_execute_command);
}

static int task_validate(const struct store_task *t, struct berth_err *err)
{
	size_t n = strnlen(t->id, sizeof(t->id));
	if (n != STORE_TASK_ID_LEN || strspn(t->id, "0123456789abcdef") != n)
		return berth_errf(err, EINVAL, "store: task \"%.*s\": id is not %d lowercase hex digits",
				  (int)n, t->id, STORE_TASK_ID_LEN);
	if (!t->arn || !t->cluster || !t->task_definition_arn)
		return berth_errf(err, EINVAL, "store: task %s: arn, cluster and task definition are required",
				  t->id);
	if (t->desired_status != STORE_TASK_PENDING && t->desired_status != STORE_TASK_RUNNING &&
	    t->desired_status != STORE_TASK_STOPPED)
		return berth_errf(err, EINVAL, "store: task %s: desired status %s: not PENDING, RUNNING or STOPPED",
				  t->id, store_task_status_name(t->desired_status));
	if (t->last_status > STORE_TASK_DELETED || t->health_status > STORE_HEALTH_UNHEALTHY)
		return berth_errf(err, EINVAL, "store: task %s: bad status", t->id);
	for (size_t i = 0; i < t->n_containers; i++) {
		const struct store_container *c = &t->containers[i];
		if (!c->name || !*c->name || !c->arn)
			return berth_errf(err, EINVAL, "store: task %s: container %zu: name and arn are required",
					  t->id, i);
		if (c->last_status > STORE_TASK_DELETED || c->health_status > STORE_HEALTH_UNHEALTHY)
			return berth_errf(err, EINVAL, "store: task %s: container %s: bad status", t->id,
					  c->name);
	}
	return 0;
}

static int containers_write(struct store *s, const struct store_task *t, bool replace,
			    struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;
	if (replace) {
		r = store_prepare(s, "DELETE FROM task_containers WHERE task_id = ?1", &st, err);
		if (r < 0)
			return r;
		store_bind_text(st, 1, t->id);
		rc = sqlite3_step(st);
		if (rc != SQLITE_DONE)
			return store_sqlerr(s, rc, err, "store: task %s: containers", t->id);
		store_stmt_release(TAKE_PTR(st));
	}
	r = store_prepare(s,
			  "INSERT INTO task_containers (task_id, position, name, arn, image, image_digest,"
			  " runtime_id, last_status, exit_code, reason, health_status, network_json,"
			  " restart_count)"
			  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
			  &st, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < t->n_containers; i++) {
		const struct store_container *c = &t->containers[i];
		sqlite3_reset(st);
		store_bind_text(st, 1, t->id);
		sqlite3_bind_int64(st, 2, (int64_t)i);
		store_bind_text(st, 3, c->name);
		store_bind_text(st, 4, c->arn);
		store_bind_text(st, 5, c->image);
		store_bind_text(st, 6, c->image_digest);
		store_bind_text(st, 7, c->runtime_id);
		store_bind_text(st, 8, store_task_status_name(c->last_status));
		if (c->has_exit_code)
			sqlite3_bind_int(st, 9, c->exit_code);
		else
			sqlite3_bind_null(st, 9);
		store_bind_text(st, 10, c->reason);
		store_bind_text(st, 11, store_health_name(c->health_status));
		store_bind_text(st, 12, c->network_json);
		sqlite3_bind_int(st, 13, c->restart_count);
		rc = sqlite3_step(st);
		if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
			return berth_errf(err, EEXIST, "store: task %s: container %s: duplicate name or ARN",
					  t->id, c->name);
		if (rc != SQLITE_DONE)
			return store_sqlerr(s, rc, err, "store: task %s: container %s", t->id, c->name);
	}
	return 0;
}

int store_task_insert(struct store *s, struct store_task *t, struct berth_err *err)
{
	int r = task_validate(t, err);
	if (r < 0)
		return r;
	struct store_tx tx _cleanup_tx_ = { 0 };
	r = store_tx_begin(s, &tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: task %s", t->id);

	/* Checked here, not left to the foreign keys, for errors that say
	 * which reference is wrong. */
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	r = store_prepare(s,
			  "SELECT (SELECT status FROM clusters WHERE name = ?1),"
			  " EXISTS (SELECT 1 FROM task_definitions WHERE arn = ?2)",
			  &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, t->cluster);
	store_bind_text(st, 2, t->task_definition_arn);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return store_sqlerr(s, rc, err, "store: task %s", t->id);
	const char *cstatus = (const char *)sqlite3_column_text(st, 0);
	if (!cstatus)
		return berth_errf(err, ENOENT, "store: task %s: cluster %s: not found", t->id, t->cluster);
	if (strcmp(cstatus, "ACTIVE") != 0)
		return berth_errf(err, EINVAL, "store: task %s: cluster %s: is %s", t->id, t->cluster,
				  cstatus);
	if (!sqlite3_column_int(st, 1))
		return berth_errf(err, ENOENT, "store: task %s: task definition %s: not found", t->id,
				  t->task_definition_arn);
	store_stmt_release(TAKE_PTR(st));

	r = store_prepare(s,
			  "INSERT INTO tasks (" TASK_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
			  " ?9, ?10, ?11, ?12, ?13, 1, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24,"
			  " ?25, ?26, ?27, ?28, ?29, ?30)",
			  &st, err);
	if (r < 0)
		return r;
	task_bind(st, t);
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
		return berth_errf(err, EEXIST, "store: task %s: already exists", t->id);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: task %s: insert", t->id);
	r = containers_write(s, t, false, err);
	if (r < 0)
		return r;
	r = store_tx_commit(&tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: task %s", t->id);
	t->version = 1;
	return 0;
}

int store_task_update(struct store *s, struct store_task *t, struct berth_err *err)
{
	int r = task_validate(t, err);
	if (r < 0)
		return r;
	struct store_tx tx _cleanup_tx_ = { 0 };
	r = store_tx_begin(s, &tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: task %s", t->id);
	/* Identity (id, arn, cluster, definition, createdAt) never changes;
	 * the version check makes this a compare-and-swap. */
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	r = store_prepare(s,
			  "UPDATE tasks SET group_name = ?5, started_by = ?6, service_name = ?7,"
			  " client_token = ?8, launch_type = ?9, cpu = ?10, memory = ?11,"
			  " desired_status = ?12, last_status = ?13, version = version + 1,"
			  " health_status = ?15, stop_code = ?16, stopped_reason = ?17,"
			  " connectivity = ?18, connectivity_at = ?19, pull_started_at = ?21,"
			  " pull_stopped_at = ?22, started_at = ?23, stopping_at = ?24,"
			  " execution_stopped_at = ?25, stopped_at = ?26, overrides_json = ?27,"
			  " attachments_json = ?28, shim_pid = ?29, enable_execute_command = ?30"
			  " WHERE id = ?1 AND version = ?14 RETURNING version",
			  &st, err);
	if (r < 0)
		return r;
	task_bind(st, t);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		store_stmt_release(TAKE_PTR(st));
		r = store_select_row(s, "SELECT version FROM tasks WHERE id = ?1", "task", t->id, &st,
				     err);
		if (r < 0)
			return r;
		return berth_errf(err, ESTALE, "store: task %s: update from version %" PRId64
				  " but the stored version is %" PRId64, t->id, t->version,
				  (int64_t)sqlite3_column_int64(st, 0));
	}
	if (rc != SQLITE_ROW)
		return store_sqlerr(s, rc, err, "store: task %s: update", t->id);
	int64_t version = sqlite3_column_int64(st, 0);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: task %s: update", t->id);
	r = containers_write(s, t, true, err);
	if (r < 0)
		return r;
	r = store_tx_commit(&tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: task %s", t->id);
	t->version = version;
	return 0;
}

static int parse_status(sqlite3_stmt *st, int col, enum store_task_status *ret)
{
	return store_task_status_parse((const char *)sqlite3_column_text(st, col), ret);
}

static int parse_health(sqlite3_stmt *st, int col, enum store_health *ret)
{
	return store_health_parse((const char *)sqlite3_column_text(st, col), ret);
}

static int containers_read(struct store *s, struct store_task *t, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s,
			      "SELECT name, arn, image, image_digest, runtime_id, last_status, exit_code,"
			      " reason, health_status, network_json, restart_count FROM task_containers"
			      " WHERE task_id = ?1 ORDER BY position",
			      &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, t->id);
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (t->n_containers == cap) {
			cap = cap ? 2 * cap : 4;
			struct store_container *cs = realloc(t->containers, cap * sizeof(*cs));
			if (!cs)
				return berth_errf(err, ENOMEM, "store: task %s: out of memory", t->id);
			t->containers = cs;
		}
		struct store_container *c = &t->containers[t->n_containers++];
		*c = (struct store_container){ 0 };
		bool oom = false;
		c->name = store_col_dup(st, 0, &oom);
		c->arn = store_col_dup(st, 1, &oom);
		c->image = store_col_dup(st, 2, &oom);
		c->image_digest = store_col_dup(st, 3, &oom);
		c->runtime_id = store_col_dup(st, 4, &oom);
		if (parse_status(st, 5, &c->last_status) < 0 || parse_health(st, 8, &c->health_status) < 0)
			return berth_errf(err, EBADMSG, "store: task %s: container %s: bad status", t->id,
					  c->name ? c->name : "?");
		c->has_exit_code = sqlite3_column_type(st, 6) != SQLITE_NULL;
		c->exit_code = sqlite3_column_int(st, 6);
		c->reason = store_col_dup(st, 7, &oom);
		c->network_json = store_col_dup(st, 9, &oom);
		c->restart_count = sqlite3_column_int(st, 10);
		if (oom)
			return berth_errf(err, ENOMEM, "store: task %s: out of memory", t->id);
	}
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: task %s: containers", t->id);
	return 0;
}

static int task_read(struct store *s, const char *id_or_arn, struct store_task **ret,
		     struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_select_row(s, strncmp(id_or_arn, "arn:", 4) == 0
				    ? "SELECT " TASK_COLUMNS " FROM tasks WHERE arn = ?1"
				    : "SELECT " TASK_COLUMNS " FROM tasks WHERE id = ?1",
				 "task", id_or_arn, &st, err);
	if (r < 0)
		return r;

	_cleanup_(store_task_freep) struct store_task *t = calloc(1, sizeof(*t));
	if (!t)
		return berth_errf(err, ENOMEM, "store: task %s: out of memory", id_or_arn);
	bool oom = false;
	snprintf(t->id, sizeof(t->id), "%s", (const char *)sqlite3_column_text(st, 0));
	t->arn = store_col_dup(st, 1, &oom);
	t->cluster = store_col_dup(st, 2, &oom);
	t->task_definition_arn = store_col_dup(st, 3, &oom);
	t->group = store_col_dup(st, 4, &oom);
	t->started_by = store_col_dup(st, 5, &oom);
	t->service_name = store_col_dup(st, 6, &oom);
	t->client_token = store_col_dup(st, 7, &oom);
	t->launch_type = store_col_dup(st, 8, &oom);
	t->cpu = store_col_dup(st, 9, &oom);
	t->memory = store_col_dup(st, 10, &oom);
	if (parse_status(st, 11, &t->desired_status) < 0 || parse_status(st, 12, &t->last_status) < 0 ||
	    parse_health(st, 14, &t->health_status) < 0)
		return berth_errf(err, EBADMSG, "store: task %s: bad status", id_or_arn);
	t->version = sqlite3_column_int64(st, COL_VERSION);
	t->stop_code = store_col_dup(st, 15, &oom);
	t->stopped_reason = store_col_dup(st, 16, &oom);
	t->connectivity = store_col_dup(st, 17, &oom);
	t->connectivity_at = store_col_ms(st, 18);
	t->created_at = store_col_ms(st, 19);
	t->pull_started_at = store_col_ms(st, 20);
	t->pull_stopped_at = store_col_ms(st, 21);
	t->started_at = store_col_ms(st, 22);
	t->stopping_at = store_col_ms(st, 23);
	t->execution_stopped_at = store_col_ms(st, 24);
	t->stopped_at = store_col_ms(st, 25);
	t->overrides_json = store_col_dup(st, 26, &oom);
	t->attachments_json = store_col_dup(st, 27, &oom);
	t->shim_pid = (int)store_col_ms(st, 28);
	t->enable_execute_command = sqlite3_column_int(st, 29) != 0;
	if (oom)
		return berth_errf(err, ENOMEM, "store: task %s: out of memory", id_or_arn);
	r = containers_read(s, t, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(t);
	return 0;
}

int store_task_get(struct store *s, const char *id_or_arn, struct store_task **ret,
		   struct berth_err *err)
{
	/* Two SELECTs (task, containers): a read transaction makes them one
	 * snapshot even while another process writes. */
	if (s->depth == 0) {
		int r = store_run(s, "BEGIN", err);
		if (r < 0)
			return r;
		r = task_read(s, id_or_arn, ret, err);
		struct berth_err ignored = { 0 };
		store_run(s, "COMMIT", &ignored);   /* a read: nothing to lose */
		return r;
	}
	return task_read(s, id_or_arn, ret, err);
}

int store_task_modify(struct store *s, const char *id_or_arn, store_task_modify_fn fn, void *arg,
		      struct store_task **ret, struct berth_err *err)
{
	struct store_tx tx _cleanup_tx_ = { 0 };
	int r = store_tx_begin(s, &tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: task %s", id_or_arn);
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	if ((r = task_read(s, id_or_arn, &t, err)) < 0)
		return r;
	int how = fn(t, arg, err);
	if (how < 0)
		return how;
	if (how != STORE_TASK_UNCHANGED && (r = store_task_update(s, t, err)) < 0)
		return r;
	if ((r = store_tx_commit(&tx, err)) < 0)
		return berth_err_wrap(err, "store: task %s", t->id);
	if (ret)
		*ret = TAKE_PTR(t);
	return how == STORE_TASK_UNCHANGED ? STORE_TASK_UNCHANGED : 0;
}

int store_task_list(struct store *s, const struct store_task_filter *f,
		    const struct store_page *page, struct store_list *ret, struct berth_err *err)
{
	static const struct store_task_filter none = { 0 };
	if (!f)
		f = &none;
	int limit;
	_cleanup_free_ char *after = NULL;
	int r = store_page_begin(page, "tk", &limit, &after, err);
	if (r < 0)
		return r;

	/* "?1 IS NULL OR cluster = ?1" reads every task: a cluster, and a
	 * service in it, are asked for with "=" so that SQLite walks
	 * tasks_by_cluster or tasks_by_service instead (the service engine
	 * lists each service's tasks on every pass). */
#define TASK_LIST_FILTERS                                                   \
	"   AND (?2 IS NULL OR task_definition_arn IN"                    \
	"        (SELECT arn FROM task_definitions WHERE family = ?2))"   \
	"   AND (?4 IS NULL OR started_by = ?4)"                          \
	"   AND (?5 IS NULL OR desired_status = ?5)"                      \
	"   AND (?6 = 0 OR last_status <> 'STOPPED')"                     \
	"   AND (?7 IS NULL OR id > ?7)"                                  \
	"   AND (?9 IS NULL OR launch_type = ?9)"                         \
	" ORDER BY id LIMIT ?8"
	const char *sql =
		f->cluster && f->service_name
			? "SELECT id, arn FROM tasks WHERE cluster = ?1 AND service_name = ?3"
			  TASK_LIST_FILTERS
		: f->cluster
			? "SELECT id, arn FROM tasks WHERE cluster = ?1"
			  " AND (?3 IS NULL OR service_name = ?3)" TASK_LIST_FILTERS
			: "SELECT id, arn FROM tasks WHERE (?1 IS NULL OR cluster = ?1)"
			  " AND (?3 IS NULL OR service_name = ?3)" TASK_LIST_FILTERS;
#undef TASK_LIST_FILTERS
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	r = store_prepare(s, sql, &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, f->cluster);
	store_bind_text(st, 2, f->family);
	store_bind_text(st, 3, f->service_name);
	store_bind_text(st, 4, f->started_by);
	store_bind_text(st, 5, f->has_desired_status ? store_task_status_name(f->desired_status) : NULL);
	sqlite3_bind_int(st, 6, f->not_stopped);
	store_bind_text(st, 7, after);
	sqlite3_bind_int(st, 8, limit + 1);
	store_bind_text(st, 9, f->launch_type);
	return store_page_collect(s, st, "tk", limit, 0, 1, "tasks", ret, err);
}

int store_task_prune(struct store *s, int64_t stopped_before_ms, struct store_list *ret_ids,
		     struct berth_err *err)
{
	struct store_tx tx _cleanup_tx_ = { 0 };
	int r = store_tx_begin(s, &tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: tasks: prune");
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	r = store_prepare(s,
			  "DELETE FROM tags WHERE resource_arn IN (SELECT arn FROM tasks"
			  " WHERE last_status = 'STOPPED' AND stopped_at < ?1)",
			  &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, stopped_before_ms);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: tasks: prune tags");
	store_stmt_release(TAKE_PTR(st));

	/* Containers go with their task (ON DELETE CASCADE). */
	r = store_prepare(s,
			  "DELETE FROM tasks WHERE last_status = 'STOPPED' AND stopped_at < ?1 RETURNING id",
			  &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, stopped_before_ms);
	_cleanup_(store_list_clear) struct store_list l = { 0 };
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (store_list_push(&l, (const char *)sqlite3_column_text(st, 0)) < 0)
			return berth_errf(err, ENOMEM, "store: tasks: prune: out of memory");
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: tasks: prune");
	store_stmt_release(TAKE_PTR(st));
	r = store_run(s, "DELETE FROM run_requests WHERE NOT EXISTS (SELECT 1 FROM tasks t"
		      " WHERE t.cluster = run_requests.cluster"
		      " AND t.client_token = run_requests.client_token)", err);
	if (r < 0)
		return berth_err_wrap(err, "store: tasks: prune client tokens");
	r = store_tx_commit(&tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: tasks: prune");
	if (ret_ids) {
		*ret_ids = l;
		l = (struct store_list){ 0 };
	}
	return 0;
}

/* ---- RunTask client tokens ---- */

int store_run_request_put(struct store *s, const char *cluster, const char *token,
			  const char *request_json, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "INSERT OR REPLACE INTO run_requests (cluster, client_token, request_json)"
			      " VALUES (?1, ?2, ?3)", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, cluster);
	store_bind_text(st, 2, token);
	store_bind_text(st, 3, request_json);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: cluster %s: client token %s", cluster, token);
	return 0;
}

int store_run_request_get(struct store *s, const char *cluster, const char *token,
			  char **ret_request_json, struct store_list *ret_arns,
			  struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "SELECT r.request_json, t.arn FROM run_requests r"
			      " JOIN tasks t ON t.cluster = r.cluster AND t.client_token = r.client_token"
			      " WHERE r.cluster = ?1 AND r.client_token = ?2 ORDER BY t.rowid",
			      &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, cluster);
	store_bind_text(st, 2, token);
	_cleanup_(store_list_clear) struct store_list l = { 0 };
	_cleanup_free_ char *request = NULL;
	bool oom = false;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!request)
			request = store_col_dup(st, 0, &oom);
		if (oom || store_list_push(&l, (const char *)sqlite3_column_text(st, 1)) < 0)
			return berth_errf(err, ENOMEM, "store: client token %s: out of memory", token);
	}
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: cluster %s: client token %s", cluster, token);
	if (!request)
		return -ENOENT;
	*ret_request_json = TAKE_PTR(request);
	*ret_arns = l;
	l = (struct store_list){ 0 };
	return 0;
}

/* ---- tags ---- */

void store_tags_free(struct store_tag *tags, size_t n)
{
	for (size_t i = 0; tags && i < n; i++) {
		free(tags[i].key);
		free(tags[i].value);
	}
	free(tags);
}

/* Characters, not bytes, as ECS counts them (and as SQLite's length()
 * does in the CHECK constraints). */
static size_t utf8_len(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

static int tag_key_check(const char *arn, const char *key, struct berth_err *err)
{
	if (!key || !*key)
		return berth_errf(err, EINVAL, "store: %s: tag key: empty", arn);
	if (utf8_len(key) > STORE_TAG_KEY_MAX)
		return berth_errf(err, EINVAL, "store: %s: tag key %.32s…: longer than %d characters",
				  arn, key, STORE_TAG_KEY_MAX);
	/* ECS reserves the aws: prefix for its own tags: users may neither
	 * set nor remove them (the API refuses them); the store takes only
	 * the managed tags ECS itself adds (enableECSManagedTags). */
	if (strncasecmp(key, "aws:", 4) == 0 && strcmp(key, "aws:ecs:clusterName") != 0 &&
	    strcmp(key, "aws:ecs:serviceName") != 0)
		return berth_errf(err, EINVAL, "store: %s: tag key %s: the aws: prefix is reserved", arn,
				  key);
	return 0;
}

int store_resource_exists(struct store *s, const char *arn, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	/* Every table whose rows can carry tags. */
	int r = store_prepare(s,
			      "SELECT EXISTS (SELECT 1 FROM clusters WHERE arn = ?1)"
			      " OR EXISTS (SELECT 1 FROM task_definitions WHERE arn = ?1)"
			      " OR EXISTS (SELECT 1 FROM tasks WHERE arn = ?1)"
			      " OR EXISTS (SELECT 1 FROM services WHERE arn = ?1)"
			      " OR EXISTS (SELECT 1 FROM elb_resources WHERE arn = ?1)",
			      &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, arn);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return store_sqlerr(s, rc, err, "store: resource %s", arn);
	if (!sqlite3_column_int(st, 0))
		return berth_errf(err, ENOENT, "store: resource %s: not found", arn);
	return 0;
}

int store_tags_put(struct store *s, const char *arn, const struct store_tag *tags, size_t n,
		   struct berth_err *err)
{
	for (size_t i = 0; i < n; i++) {
		int r = tag_key_check(arn, tags[i].key, err);
		if (r < 0)
			return r;
		const char *v = tags[i].value ? tags[i].value : "";
		if (utf8_len(v) > STORE_TAG_VALUE_MAX)
			return berth_errf(err, EINVAL,
					  "store: %s: tag %s: value longer than %d characters", arn,
					  tags[i].key, STORE_TAG_VALUE_MAX);
	}
	struct store_tx tx _cleanup_tx_ = { 0 };
	int r = store_tx_begin(s, &tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: %s: tags", arn);
	r = store_resource_exists(s, arn, err);
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	r = store_prepare(s,
			  "INSERT INTO tags (resource_arn, key, value) VALUES (?1, ?2, ?3)"
			  " ON CONFLICT (resource_arn, key) DO UPDATE SET value = excluded.value",
			  &st, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		store_bind_text(st, 1, arn);
		store_bind_text(st, 2, tags[i].key);
		store_bind_text(st, 3, tags[i].value ? tags[i].value : "");
		int rc = sqlite3_step(st);
		if (rc != SQLITE_DONE)
			return store_sqlerr(s, rc, err, "store: %s: tag %s", arn, tags[i].key);
	}
	store_stmt_release(TAKE_PTR(st));
	/* The limit is on the result, so it is checked after the merge:
	 * replacing values of existing keys never counts twice. */
	r = store_prepare(s, "SELECT count(*) FROM tags WHERE resource_arn = ?1", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, arn);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return store_sqlerr(s, rc, err, "store: %s: tags", arn);
	int64_t total = sqlite3_column_int64(st, 0);
	if (total > STORE_TAGS_MAX)
		return berth_errf(err, EINVAL, "store: %s: %" PRId64 " tags: more than %d per resource",
				  arn, total, STORE_TAGS_MAX);
	store_stmt_release(TAKE_PTR(st));
	r = store_tx_commit(&tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: %s: tags", arn);
	return 0;
}

int store_tags_remove(struct store *s, const char *arn, const char *const *keys, size_t n,
		      struct berth_err *err)
{
	for (size_t i = 0; i < n; i++) {
		int r = tag_key_check(arn, keys[i], err);
		if (r < 0)
			return r;
	}
	struct store_tx tx _cleanup_tx_ = { 0 };
	int r = store_tx_begin(s, &tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: %s: tags", arn);
	r = store_resource_exists(s, arn, err);
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	r = store_prepare(s, "DELETE FROM tags WHERE resource_arn = ?1 AND key = ?2", &st, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		store_bind_text(st, 1, arn);
		store_bind_text(st, 2, keys[i]);
		int rc = sqlite3_step(st);
		if (rc != SQLITE_DONE)
			return store_sqlerr(s, rc, err, "store: %s: untag %s", arn, keys[i]);
	}
	store_stmt_release(TAKE_PTR(st));
	r = store_tx_commit(&tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: %s: tags", arn);
	return 0;
}

int store_tags_list(struct store *s, const char *arn, struct store_tag **ret, size_t *ret_n,
		    struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "SELECT key, value FROM tags WHERE resource_arn = ?1 ORDER BY key",
			      &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, arn);
	struct store_tag *tags = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			struct store_tag *t2 = realloc(tags, cap * sizeof(*t2));
			if (!t2) {
				store_tags_free(tags, n);
				return berth_errf(err, ENOMEM, "store: %s: tags: out of memory", arn);
			}
			tags = t2;
		}
		bool oom = false;
		tags[n].key = store_col_dup(st, 0, &oom);
		tags[n].value = store_col_dup(st, 1, &oom);
		n++;
		if (oom) {
			store_tags_free(tags, n);
			return berth_errf(err, ENOMEM, "store: %s: tags: out of memory", arn);
		}
	}
	if (rc != SQLITE_DONE) {
		store_tags_free(tags, n);
		return store_sqlerr(s, rc, err, "store: %s: tags", arn);
	}
	*ret = tags;
	*ret_n = n;
	return 0;
}
