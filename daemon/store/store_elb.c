/* daemon/store/store_elb: the ELBv2 API's resources and targets. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/store/store_elb.h"
#include "daemon/store/store_internal.h"

void store_elb_res_free(struct store_elb_res *r)
{
	if (!r)
		return;
	store_elb_res_array_free(r, 1);
}

/* Frees the members of N resources and the array. */
void store_elb_res_array_free(struct store_elb_res *rs, size_t n)
{
	for (size_t i = 0; rs && i < n; i++) {
		free(rs[i].arn);
		free(rs[i].kind);
		free(rs[i].name);
		free(rs[i].parent_arn);
		free(rs[i].doc_json);
	}
	free(rs);
}

void store_elb_targets_free(struct store_elb_target *ts, size_t n)
{
	for (size_t i = 0; ts && i < n; i++) {
		free(ts[i].target_group_arn);
		free(ts[i].id);
	}
	free(ts);
}

static int step_done(struct store *s, sqlite3_stmt *st, const char *what, const char *key,
		     struct berth_err *err)
{
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: %s %s", what, key);
	return 0;
}

int store_elb_res_insert(struct store *s, const struct store_elb_res *r, struct berth_err *err)
{
	if (!r->arn || !r->kind || !r->doc_json)
		return berth_errf(err, EINVAL, "store: ELB resource %s: incomplete",
				  r->arn ? r->arn : "?");
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int res =
		store_prepare(s,
			      "INSERT INTO elb_resources (arn, kind, name, parent_arn, created_at,"
			      " doc_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			      &st, err);
	if (res < 0)
		return res;
	store_bind_text(st, 1, r->arn);
	store_bind_text(st, 2, r->kind);
	store_bind_text(st, 3, r->name);
	store_bind_text(st, 4, r->parent_arn);
	sqlite3_bind_int64(st, 5, r->created_at);
	store_bind_text(st, 6, r->doc_json);
	return step_done(s, st, r->kind, r->name ? r->name : r->arn, err);
}

int store_elb_res_update(struct store *s, const char *arn, const char *doc_json,
			 struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "UPDATE elb_resources SET doc_json = ?2 WHERE arn = ?1", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, arn);
	store_bind_text(st, 2, doc_json);
	r = step_done(s, st, "ELB resource", arn, err);
	if (r == 0 && sqlite3_changes(s->db) == 0)
		return berth_errf(err, ENOENT, "store: ELB resource %s: not found", arn);
	return r;
}

#define RES_COLUMNS "arn, kind, name, parent_arn, created_at, doc_json"

static int res_read(sqlite3_stmt *st, struct store_elb_res *r, struct berth_err *err)
{
	bool oom = false;
	r->arn = store_col_dup(st, 0, &oom);
	r->kind = store_col_dup(st, 1, &oom);
	r->name = store_col_dup(st, 2, &oom);
	r->parent_arn = store_col_dup(st, 3, &oom);
	r->created_at = sqlite3_column_int64(st, 4);
	r->doc_json = store_col_dup(st, 5, &oom);
	return oom ? berth_errf(err, ENOMEM, "store: ELB resource: out of memory") : 0;
}

int store_elb_res_get(struct store *s, const char *arn, struct store_elb_res **ret,
		      struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_select_row(s, "SELECT " RES_COLUMNS " FROM elb_resources WHERE arn = ?1",
				 "ELB resource", arn, &st, err);
	if (r < 0)
		return r;
	_cleanup_(store_elb_res_freep) struct store_elb_res *res = calloc(1, sizeof(*res));
	if (!res)
		return berth_errf(err, ENOMEM, "store: ELB resource %s: out of memory", arn);
	r = res_read(st, res, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(res);
	return 0;
}

int store_elb_res_list(struct store *s, const char *kind, const char *parent_arn,
		       struct store_elb_res **ret, size_t *ret_n, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s,
			      "SELECT " RES_COLUMNS " FROM elb_resources WHERE kind = ?1"
			      " AND (?2 IS NULL OR parent_arn = ?2) ORDER BY created_at, arn",
			      &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, kind);
	store_bind_text(st, 2, parent_arn);
	struct store_elb_res *rs = NULL;
	size_t n = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_elb_res *grown = realloc(rs, (n + 1) * sizeof(*rs));
		if (!grown) {
			store_elb_res_array_free(rs, n);
			return berth_errf(err, ENOMEM, "store: %s list: out of memory", kind);
		}
		rs = grown;
		memset(&rs[n], 0, sizeof(*rs));
		r = res_read(st, &rs[n++], err);
		if (r < 0) {
			store_elb_res_array_free(rs, n);
			return r;
		}
	}
	if (rc != SQLITE_DONE) {
		store_elb_res_array_free(rs, n);
		return store_sqlerr(s, rc, err, "store: %s list", kind);
	}
	*ret = rs;
	*ret_n = n;
	return 0;
}

/* The resource and its descendants (two levels: listeners, rules). */
#define FAMILY \
	"SELECT arn FROM elb_resources WHERE arn = ?1 OR parent_arn = ?1 OR parent_arn IN" \
	" (SELECT arn FROM elb_resources WHERE parent_arn = ?1)"

int store_elb_res_delete(struct store *s, const char *arn, struct berth_err *err)
{
	static const char *const sqls[] = {
		"DELETE FROM tags WHERE resource_arn IN (" FAMILY ")",
		/* Children first: their parent_arn references the parent. */
		"DELETE FROM elb_resources WHERE arn IN (" FAMILY ") AND kind = 'rule'",
		"DELETE FROM elb_resources WHERE arn IN (" FAMILY ") AND kind = 'listener'",
		"DELETE FROM elb_resources WHERE arn = ?1",
	};
	struct store_tx tx _cleanup_tx_ = { 0 };
	int r = store_tx_begin(s, &tx, err);
	if (r < 0)
		return r;
	int deleted = 0;
	for (size_t i = 0; i < ARRAY_SIZE(sqls); i++) {
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		r = store_prepare(s, sqls[i], &st, err);
		if (r < 0)
			return r;
		store_bind_text(st, 1, arn);
		r = step_done(s, st, "ELB resource", arn, err);
		if (r < 0)
			return r;
		if (i > 0)
			deleted += sqlite3_changes(s->db);
	}
	if (deleted == 0)
		return berth_errf(err, ENOENT, "store: ELB resource %s: not found", arn);
	return store_tx_commit(&tx, err);
}

/* ---- targets ---- */

int store_elb_target_put(struct store *s, const char *tg_arn, const char *id, int port, int64_t now,
			 struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s,
			      "INSERT INTO elb_targets (target_group_arn, id, port, registered_at)"
			      " VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO UPDATE SET drain_until = "
			      "NULL,"
			      " registered_at = CASE WHEN drain_until IS NULL THEN registered_at"
			      " ELSE excluded.registered_at END",
			      &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, tg_arn);
	store_bind_text(st, 2, id);
	sqlite3_bind_int(st, 3, port);
	sqlite3_bind_int64(st, 4, now);
	return step_done(s, st, "target", id, err);
}

int store_elb_target_drain(struct store *s, const char *tg_arn, const char *id, int port,
			   int64_t until, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s,
			      "UPDATE elb_targets SET drain_until = ?4 WHERE target_group_arn = ?1"
			      " AND id = ?2 AND port = ?3 AND drain_until IS NULL",
			      &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, tg_arn);
	store_bind_text(st, 2, id);
	sqlite3_bind_int(st, 3, port);
	sqlite3_bind_int64(st, 4, until);
	r = step_done(s, st, "target", id, err);
	if (r == 0 && sqlite3_changes(s->db) == 0)
		return berth_errf(err, ENOENT, "store: target %s:%d: not registered", id, port);
	return r;
}

int store_elb_target_list(struct store *s, const char *tg_arn, struct store_elb_target **ret,
			  size_t *ret_n, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s,
			      "SELECT target_group_arn, id, port, registered_at, drain_until"
			      " FROM elb_targets WHERE ?1 IS NULL OR target_group_arn = ?1"
			      " ORDER BY target_group_arn, id, port",
			      &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, tg_arn);
	struct store_elb_target *ts = NULL;
	size_t n = 0;
	int rc;
	bool oom = false;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_elb_target *grown = realloc(ts, (n + 1) * sizeof(*ts));
		if (!grown) {
			oom = true;
			break;
		}
		ts = grown;
		struct store_elb_target *t = &ts[n++];
		t->target_group_arn = store_col_dup(st, 0, &oom);
		t->id = store_col_dup(st, 1, &oom);
		t->port = sqlite3_column_int(st, 2);
		t->registered_at = sqlite3_column_int64(st, 3);
		t->drain_until = store_col_ms(st, 4);
	}
	if (oom || rc != SQLITE_DONE) {
		store_elb_targets_free(ts, n);
		return oom ? berth_errf(err, ENOMEM, "store: targets: out of memory")
			   : store_sqlerr(s, rc, err, "store: targets");
	}
	*ret = ts;
	*ret_n = n;
	return 0;
}

int store_elb_target_purge(struct store *s, int64_t now, size_t *ret_n, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s,
			      "DELETE FROM elb_targets WHERE drain_until IS NOT NULL"
			      " AND drain_until <= ?1",
			      &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, now);
	r = step_done(s, st, "targets", "drained", err);
	if (r == 0)
		*ret_n = (size_t)sqlite3_changes(s->db);
	return r;
}
