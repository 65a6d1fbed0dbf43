/* daemon/store/store_defs: clusters and task definitions. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/store/store_internal.h"

static bool is_arn(const char *ref)
{
	return strncmp(ref, "arn:", 4) == 0;
}

/* ---- clusters ---- */

void store_cluster_free(struct store_cluster *c)
{
	if (!c)
		return;
	free(c->name);
	free(c->arn);
	free(c->settings_json);
	free(c->configuration_json);
	free(c->capacity_json);
	free(c);
}

#define CLUSTER_COLUMNS \
	"c.name, c.arn, c.status, c.created_at, c.settings_json, c.configuration_json," \
	" (SELECT count(*) FROM tasks t WHERE t.cluster = c.name AND t.last_status = 'RUNNING')," \
	" (SELECT count(*) FROM tasks t WHERE t.cluster = c.name" \
	"    AND t.last_status IN ('PROVISIONING','PENDING','ACTIVATING')),"   \
	" (SELECT count(*) FROM services v WHERE v.cluster = c.name AND v.status = 'ACTIVE'),"   \
	" c.capacity_json"

/* The same columns, the counts 0: counting reads every task of the cluster. */
#define CLUSTER_COLUMNS_NO_COUNTS \
	"c.name, c.arn, c.status, c.created_at, c.settings_json, c.configuration_json, 0, 0, 0," \
	" c.capacity_json"

static int cluster_read(struct store *s, const char *name_or_arn, bool counts,
			struct store_cluster **ret, struct berth_err *err)
{
	static const char *const sql[2][2] = {
		{ "SELECT " CLUSTER_COLUMNS_NO_COUNTS " FROM clusters c WHERE c.name = ?1",
		  "SELECT " CLUSTER_COLUMNS_NO_COUNTS " FROM clusters c WHERE c.arn = ?1" },
		{ "SELECT " CLUSTER_COLUMNS " FROM clusters c WHERE c.name = ?1",
		  "SELECT " CLUSTER_COLUMNS " FROM clusters c WHERE c.arn = ?1" },
	};
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_select_row(s, sql[counts][is_arn(name_or_arn)], "cluster", name_or_arn, &st,
				 err);
	if (r < 0)
		return r;

	_cleanup_(store_cluster_freep) struct store_cluster *c = calloc(1, sizeof(*c));
	if (!c)
		return berth_errf(err, ENOMEM, "store: cluster %s: out of memory", name_or_arn);
	bool oom = false;
	c->name = store_col_dup(st, 0, &oom);
	c->arn = store_col_dup(st, 1, &oom);
	if (store_cluster_status_parse((const char *)sqlite3_column_text(st, 2), &c->status) < 0)
		return berth_errf(err, EBADMSG, "store: cluster %s: bad status", name_or_arn);
	c->created_at = sqlite3_column_int64(st, 3);
	c->settings_json = store_col_dup(st, 4, &oom);
	c->configuration_json = store_col_dup(st, 5, &oom);
	c->running_tasks_count = sqlite3_column_int64(st, 6);
	c->pending_tasks_count = sqlite3_column_int64(st, 7);
	c->active_services_count = sqlite3_column_int64(st, 8);
	c->capacity_json = store_col_dup(st, 9, &oom);
	if (oom)
		return berth_errf(err, ENOMEM, "store: cluster %s: out of memory", name_or_arn);
	*ret = TAKE_PTR(c);
	return 0;
}

int store_cluster_update(struct store *s, const char *name, const char *settings_json,
			 const char *configuration_json, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "UPDATE clusters SET"
			      " settings_json = coalesce(?2, settings_json),"
			      " configuration_json = coalesce(?3, configuration_json)"
			      " WHERE name = ?1 AND status = 'ACTIVE'", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, name);
	store_bind_text(st, 2, settings_json);
	store_bind_text(st, 3, configuration_json);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: cluster %s: update", name);
	if (!sqlite3_changes(s->db))
		return berth_errf(err, ENOENT, "store: cluster %s: no such ACTIVE cluster", name);
	return 0;
}

int store_cluster_set_capacity(struct store *s, const char *name, const char *capacity_json,
			       struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "UPDATE clusters SET capacity_json = ?2"
			      " WHERE name = ?1 AND status = 'ACTIVE'", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, name);
	store_bind_text(st, 2, capacity_json);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: cluster %s: capacity providers", name);
	if (!sqlite3_changes(s->db))
		return berth_errf(err, ENOENT, "store: cluster %s: no such ACTIVE cluster", name);
	return 0;
}

int store_cluster_get(struct store *s, const char *name_or_arn, struct store_cluster **ret,
		      struct berth_err *err)
{
	return cluster_read(s, name_or_arn, true, ret, err);
}

int store_cluster_find(struct store *s, const char *name_or_arn, struct store_cluster **ret,
		       struct berth_err *err)
{
	return cluster_read(s, name_or_arn, false, ret, err);
}

int store_cluster_create(struct store *s, const struct store_cluster *in, int64_t now_ms,
			 struct store_cluster **ret, bool *ret_created, struct berth_err *err)
{
	if (!in->name || !*in->name || !in->arn || !*in->arn)
		return berth_errf(err, EINVAL, "store: cluster: a name and an ARN are required");
	struct store_tx tx _cleanup_tx_ = { 0 };
	int r = store_tx_begin(s, &tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: cluster %s", in->name);

	bool created = false;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	r = store_prepare(s, "SELECT status FROM clusters WHERE name = ?1", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, in->name);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: cluster %s", in->name);
	bool exists = rc == SQLITE_ROW;
	bool active = exists && strcmp((const char *)sqlite3_column_text(st, 0), "ACTIVE") == 0;
	store_stmt_release(TAKE_PTR(st));

	if (!active) {
		/* An INACTIVE cluster comes back as a new cluster under the
		 * same name and ARN, as ECS does: fresh settings, no old tags. */
		r = store_prepare(s,
				  "INSERT INTO clusters (name, arn, status, created_at, settings_json,"
				  " configuration_json, capacity_json)"
				  " VALUES (?1, ?2, 'ACTIVE', ?3, ?4, ?5, ?6)"
				  " ON CONFLICT (name) DO UPDATE SET arn = excluded.arn, status = 'ACTIVE',"
				  " created_at = excluded.created_at, settings_json = excluded.settings_json,"
				  " configuration_json = excluded.configuration_json,"
				  " capacity_json = excluded.capacity_json",
				  &st, err);
		if (r < 0)
			return r;
		store_bind_text(st, 1, in->name);
		store_bind_text(st, 2, in->arn);
		sqlite3_bind_int64(st, 3, now_ms);
		store_bind_text(st, 4, in->settings_json);
		store_bind_text(st, 5, in->configuration_json);
		store_bind_text(st, 6, in->capacity_json);
		rc = sqlite3_step(st);
		if (rc != SQLITE_DONE)
			return store_sqlerr(s, rc, err, "store: cluster %s: create", in->name);
		store_stmt_release(TAKE_PTR(st));
		if (exists) {
			r = store_prepare(s, "DELETE FROM tags WHERE resource_arn = ?1", &st, err);
			if (r < 0)
				return r;
			store_bind_text(st, 1, in->arn);
			rc = sqlite3_step(st);
			if (rc != SQLITE_DONE)
				return store_sqlerr(s, rc, err, "store: cluster %s: old tags", in->name);
		}
		created = true;
	}
	_cleanup_(store_cluster_freep) struct store_cluster *c = NULL;
	r = cluster_read(s, in->name, true, &c, err);
	if (r < 0)
		return r;
	r = store_tx_commit(&tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: cluster %s", in->name);
	*ret = TAKE_PTR(c);
	if (ret_created)
		*ret_created = created;
	return 0;
}

int store_cluster_list(struct store *s, const struct store_page *page,
		       struct store_list *ret, struct berth_err *err)
{
	int limit;
	_cleanup_free_ char *after = NULL;
	int r = store_page_begin(page, "cl", &limit, &after, err);
	if (r < 0)
		return r;

	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	r = store_prepare(s,
			  "SELECT name, arn FROM clusters"
			  " WHERE (?1 IS NULL OR name > ?1)"
			  " ORDER BY name LIMIT ?2",
			  &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, after);
	sqlite3_bind_int(st, 2, limit + 1);
	return store_page_collect(s, st, "cl", limit, 0, 1, "clusters", ret, err);
}

int store_cluster_delete(struct store *s, const char *name_or_arn, struct store_cluster **ret,
			 struct berth_err *err)
{
	struct store_tx tx _cleanup_tx_ = { 0 };
	int r = store_tx_begin(s, &tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: cluster %s", name_or_arn);
	_cleanup_(store_cluster_freep) struct store_cluster *c = NULL;
	r = cluster_read(s, name_or_arn, true, &c, err);
	if (r < 0)
		return r;
	if (c->status == STORE_CLUSTER_ACTIVE && c->active_services_count > 0)
		return berth_errf(err, ENOTEMPTY, "store: cluster %s: still has %" PRId64
				  " active services", c->name, c->active_services_count);
	if (c->status == STORE_CLUSTER_ACTIVE) {
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		r = store_prepare(s,
				  "SELECT count(*) FROM tasks WHERE cluster = ?1 AND last_status <> 'STOPPED'",
				  &st, err);
		if (r < 0)
			return r;
		store_bind_text(st, 1, c->name);
		int rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			return store_sqlerr(s, rc, err, "store: cluster %s", c->name);
		int64_t n = sqlite3_column_int64(st, 0);
		if (n > 0)
			return berth_errf(err, EBUSY, "store: cluster %s: still has %" PRId64 " active tasks",
					  c->name, n);
		store_stmt_release(TAKE_PTR(st));
		r = store_prepare(s, "UPDATE clusters SET status = 'INACTIVE' WHERE name = ?1", &st, err);
		if (r < 0)
			return r;
		store_bind_text(st, 1, c->name);
		rc = sqlite3_step(st);
		if (rc != SQLITE_DONE)
			return store_sqlerr(s, rc, err, "store: cluster %s: delete", c->name);
		c->status = STORE_CLUSTER_INACTIVE;
	}
	r = store_tx_commit(&tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: cluster %s", name_or_arn);
	*ret = TAKE_PTR(c);
	return 0;
}

/* ---- task definitions ---- */

void store_task_definition_free(struct store_task_definition *td)
{
	if (!td)
		return;
	free(td->family);
	free(td->arn);
	free(td->body_json);
	free(td);
}

#define TD_COLUMNS "family, revision, arn, status, registered_at, deregistered_at, body_json"

static int td_from_row(sqlite3_stmt *st, const char *what, struct store_task_definition **ret,
		       struct berth_err *err)
{
	_cleanup_(store_task_definition_freep) struct store_task_definition *td =
		calloc(1, sizeof(*td));
	if (!td)
		return berth_errf(err, ENOMEM, "store: task definition %s: out of memory", what);
	bool oom = false;
	td->family = store_col_dup(st, 0, &oom);
	td->revision = sqlite3_column_int64(st, 1);
	td->arn = store_col_dup(st, 2, &oom);
	if (store_td_status_parse((const char *)sqlite3_column_text(st, 3), &td->status) < 0)
		return berth_errf(err, EBADMSG, "store: task definition %s: bad status", what);
	td->registered_at = sqlite3_column_int64(st, 4);
	td->deregistered_at = store_col_ms(st, 5);
	td->body_json = store_col_dup(st, 6, &oom);
	if (oom)
		return berth_errf(err, ENOMEM, "store: task definition %s: out of memory", what);
	*ret = TAKE_PTR(td);
	return 0;
}

/* Splits "family:rev"; *ret_rev is 0 for a bare family.  -EINVAL when the
 * part after ':' is not a positive number. */
static int split_ref(const char *ref, char **ret_family, int64_t *ret_rev, struct berth_err *err)
{
	const char *colon = strrchr(ref, ':');
	int64_t rev = 0;
	size_t flen = strlen(ref);
	if (colon) {
		char *end;
		errno = 0;
		long long v = strtoll(colon + 1, &end, 10);
		if (colon[1] == '\0' || *end != '\0' || errno || v < 1 || colon[1] == '+' ||
		    colon[1] == '-' || colon[1] == ' ')
			return berth_errf(err, EINVAL, "store: task definition %s: bad revision", ref);
		rev = v;
		flen = (size_t)(colon - ref);
	}
	if (flen == 0)
		return berth_errf(err, EINVAL, "store: task definition %s: empty family", ref);
	char *family = strndup(ref, flen);
	if (!family)
		return berth_errf(err, ENOMEM, "store: task definition %s: out of memory", ref);
	*ret_family = family;
	*ret_rev = rev;
	return 0;
}

static int td_read(struct store *s, const char *ref, bool need_revision,
		   struct store_task_definition **ret, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *family = NULL;
	int64_t rev = 0;
	int r;
	if (is_arn(ref)) {
		r = store_prepare(s, "SELECT " TD_COLUMNS " FROM task_definitions WHERE arn = ?1", &st,
				  err);
		if (r < 0)
			return r;
		store_bind_text(st, 1, ref);
	} else {
		r = split_ref(ref, &family, &rev, err);
		if (r < 0)
			return r;
		if (rev == 0 && need_revision)
			return berth_errf(err, EINVAL,
					  "store: task definition %s: a revision is required (family:revision)",
					  ref);
		/* A bare family means its newest ACTIVE revision. */
		r = store_prepare(s, rev
				 ? "SELECT " TD_COLUMNS " FROM task_definitions"
				   " WHERE family = ?1 AND revision = ?2"
				 : "SELECT " TD_COLUMNS " FROM task_definitions"
				   " WHERE family = ?1 AND status = 'ACTIVE' ORDER BY revision DESC LIMIT 1",
				  &st, err);
		if (r < 0)
			return r;
		store_bind_text(st, 1, family);
		if (rev)
			sqlite3_bind_int64(st, 2, rev);
	}
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return berth_errf(err, ENOENT, rev || is_arn(ref)
				  ? "store: task definition %s: not found"
				  : "store: task definition %s: no ACTIVE revision", ref);
	if (rc != SQLITE_ROW)
		return store_sqlerr(s, rc, err, "store: task definition %s", ref);
	return td_from_row(st, ref, ret, err);
}

int store_task_definition_get(struct store *s, const char *ref,
			      struct store_task_definition **ret, struct berth_err *err)
{
	return td_read(s, ref, false, ret, err);
}

int store_task_definition_register(struct store *s, const char *arn_base, const char *family,
				   const char *body_json, int64_t now_ms,
				   struct store_task_definition **ret, struct berth_err *err)
{
	if (!family || !*family || strchr(family, ':') || strchr(family, '/'))
		return berth_errf(err, EINVAL, "store: task definition family \"%s\": invalid",
				  family ? family : "");
	if (!body_json)
		return berth_errf(err, EINVAL, "store: task definition %s: no body", family);
	struct store_tx tx _cleanup_tx_ = { 0 };
	int r = store_tx_begin(s, &tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: task definition %s", family);

	/* The counter bump and the insert share the transaction (and its
	 * write lock), so two registrations can never get the same number. */
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	r = store_prepare(s,
			  "INSERT INTO task_definition_families (family, last_revision) VALUES (?1, 1)"
			  " ON CONFLICT (family) DO UPDATE SET last_revision = last_revision + 1"
			  " RETURNING last_revision",
			  &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, family);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return store_sqlerr(s, rc, err, "store: task definition %s: next revision", family);
	int64_t rev = sqlite3_column_int64(st, 0);
	store_stmt_release(TAKE_PTR(st));

	_cleanup_free_ char *arn = NULL;
	if (asprintf(&arn, "%s:task-definition/%s:%" PRId64, arn_base, family, rev) < 0)
		return berth_errf(err, ENOMEM, "store: task definition %s: out of memory", family);
	r = store_prepare(s,
			  "INSERT INTO task_definitions (" TD_COLUMNS ")"
			  " VALUES (?1, ?2, ?3, 'ACTIVE', ?4, NULL, ?5)",
			  &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, family);
	sqlite3_bind_int64(st, 2, rev);
	store_bind_text(st, 3, arn);
	sqlite3_bind_int64(st, 4, now_ms);
	store_bind_text(st, 5, body_json);
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		return berth_errf(err, EEXIST, "store: task definition %s:%" PRId64 ": already exists",
				  family, rev);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: task definition %s:%" PRId64, family, rev);
	store_stmt_release(TAKE_PTR(st));

	_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
	r = td_read(s, arn, false, &td, err);
	if (r < 0)
		return r;
	r = store_tx_commit(&tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: task definition %s:%" PRId64, family, rev);
	*ret = TAKE_PTR(td);
	return 0;
}

int store_task_definition_list(struct store *s, const struct store_td_filter *f,
			       const struct store_page *page, struct store_list *ret,
			       struct berth_err *err)
{
	static const struct store_td_filter none = { 0 };
	if (!f)
		f = &none;
	int limit;
	int r = store_page_limit(page, &limit, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *cursor = NULL;
	_cleanup_free_ char *after_family = NULL;
	int64_t after_rev = 0;
	if (page && page->next_token) {
		r = store_token_decode("td", page->next_token, &cursor, err);
		if (r < 0)
			return r;
		/* The cursor is "family:revision": the last row returned. */
		r = split_ref(cursor, &after_family, &after_rev, err);
		if (r < 0 || after_rev == 0)
			return berth_errf(err, EINVAL, "store: nextToken: not a token for this list");
	}

	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	r = store_prepare(s, f->descending
			  ? "SELECT family, revision, arn FROM task_definitions"
			    " WHERE (?1 IS NULL OR family = ?1) AND (?2 IS NULL OR status = ?2)"
			    "   AND (?3 IS NULL OR (family, revision) < (?3, ?4))"
			    " ORDER BY family DESC, revision DESC LIMIT ?5"
			  : "SELECT family, revision, arn FROM task_definitions"
			    " WHERE (?1 IS NULL OR family = ?1) AND (?2 IS NULL OR status = ?2)"
			    "   AND (?3 IS NULL OR (family, revision) > (?3, ?4))"
			    " ORDER BY family, revision LIMIT ?5",
			  &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, f->family);
	store_bind_text(st, 2, f->has_status ? store_td_status_name(f->status) : NULL);
	store_bind_text(st, 3, after_family);
	sqlite3_bind_int64(st, 4, after_rev);
	sqlite3_bind_int(st, 5, limit + 1);

	_cleanup_(store_list_clear) struct store_list l = { 0 };
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (l.n == (size_t)limit)
			break;
		if (store_list_push(&l, (const char *)sqlite3_column_text(st, 2)) < 0)
			return berth_errf(err, ENOMEM, "store: task definitions: out of memory");
		free(cursor);
		cursor = NULL;
		if (asprintf(&cursor, "%s:%" PRId64, (const char *)sqlite3_column_text(st, 0),
			     (int64_t)sqlite3_column_int64(st, 1)) < 0) {
			cursor = NULL;
			return berth_errf(err, ENOMEM, "store: task definitions: out of memory");
		}
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: task definitions: list");
	if (rc == SQLITE_ROW && store_token_encode("td", cursor, &l.next_token) < 0)
		return berth_errf(err, ENOMEM, "store: task definitions: out of memory");
	*ret = l;
	l = (struct store_list){ 0 };
	return 0;
}

int store_task_definition_families(struct store *s, const char *family_prefix,
				   enum store_family_status status, const struct store_page *page,
				   struct store_list *ret, struct berth_err *err)
{
	int limit;
	_cleanup_free_ char *after = NULL;
	int r = store_page_begin(page, "tf", &limit, &after, err);
	if (r < 0)
		return r;

	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	/* substr() rather than LIKE/GLOB: the prefix is matched literally,
	 * whatever characters it holds. */
	r = store_prepare(s,
			  "SELECT f.family FROM task_definition_families f"
			  " WHERE (?1 IS NULL OR substr(f.family, 1, length(?1)) = ?1)"
			  "   AND (?2 IS NULL OR f.family > ?2)"
			  "   AND (?3 = 0 OR (?3 = 1) = EXISTS (SELECT 1 FROM task_definitions d"
			  "        WHERE d.family = f.family AND d.status = 'ACTIVE'))"
			  " ORDER BY f.family LIMIT ?4",
			  &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, family_prefix);
	store_bind_text(st, 2, after);
	sqlite3_bind_int(st, 3, status == STORE_FAMILY_ACTIVE ? 1 : status == STORE_FAMILY_INACTIVE ? 2 : 0);
	sqlite3_bind_int(st, 4, limit + 1);
	return store_page_collect(s, st, "tf", limit, 0, 0, "task definition families", ret,
				  err);
}

/* Moves REF from status FROM to TO; a revision already in TO is returned
 * unchanged, any other status is refused. */
static int td_transition(struct store *s, const char *ref, enum store_td_status from,
			 enum store_td_status to, int64_t now_ms, struct store_task_definition **ret,
			 struct berth_err *err)
{
	struct store_tx tx _cleanup_tx_ = { 0 };
	int r = store_tx_begin(s, &tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: task definition %s", ref);
	_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
	r = td_read(s, ref, true, &td, err);
	if (r < 0)
		return r;
	if (td->status != to) {
		if (td->status != from)
			return berth_errf(err, EINVAL, "store: task definition %s:%" PRId64 ": is %s, not %s",
					  td->family, td->revision, store_td_status_name(td->status),
					  store_td_status_name(from));
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		r = store_prepare(s, to == STORE_TD_INACTIVE
				 ? "UPDATE task_definitions SET status = ?3, deregistered_at = ?4"
				   " WHERE family = ?1 AND revision = ?2"
				 : "UPDATE task_definitions SET status = ?3"
				   " WHERE family = ?1 AND revision = ?2",
				  &st, err);
		if (r < 0)
			return r;
		store_bind_text(st, 1, td->family);
		sqlite3_bind_int64(st, 2, td->revision);
		store_bind_text(st, 3, store_td_status_name(to));
		if (to == STORE_TD_INACTIVE)
			sqlite3_bind_int64(st, 4, now_ms);
		int rc = sqlite3_step(st);
		if (rc != SQLITE_DONE)
			return store_sqlerr(s, rc, err, "store: task definition %s:%" PRId64, td->family,
					    td->revision);
		td->status = to;
		if (to == STORE_TD_INACTIVE)
			td->deregistered_at = now_ms;
	}
	r = store_tx_commit(&tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: task definition %s", ref);
	*ret = TAKE_PTR(td);
	return 0;
}

int store_task_definition_deregister(struct store *s, const char *ref, int64_t now_ms,
				     struct store_task_definition **ret, struct berth_err *err)
{
	return td_transition(s, ref, STORE_TD_ACTIVE, STORE_TD_INACTIVE, now_ms, ret, err);
}

int store_task_definition_delete(struct store *s, const char *ref,
				 struct store_task_definition **ret, struct berth_err *err)
{
	return td_transition(s, ref, STORE_TD_INACTIVE, STORE_TD_DELETE_IN_PROGRESS, 0, ret, err);
}

int store_task_definition_purge(struct store *s, size_t *ret_n, struct berth_err *err)
{
	struct store_tx tx _cleanup_tx_ = { 0 };
	int r = store_tx_begin(s, &tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: task definitions: purge");
	/* Tags first: they are found through the rows about to go. */
	r = store_run(s,
		      "DELETE FROM tags WHERE resource_arn IN (SELECT d.arn FROM task_definitions d"
		      "  WHERE d.status = 'DELETE_IN_PROGRESS'"
		      "    AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.task_definition_arn = d.arn))",
		      err);
	if (r >= 0)
		r = store_run(s,
			      "DELETE FROM task_definitions WHERE status = 'DELETE_IN_PROGRESS' AND NOT EXISTS"
			      " (SELECT 1 FROM tasks t WHERE t.task_definition_arn = task_definitions.arn)",
			      err);
	if (r < 0)
		return berth_err_wrap(err, "store: task definitions: purge");
	size_t n = (size_t)sqlite3_changes(s->db);
	r = store_tx_commit(&tx, err);
	if (r < 0)
		return berth_err_wrap(err, "store: task definitions: purge");
	if (ret_n)
		*ret_n = n;
	return 0;
}
