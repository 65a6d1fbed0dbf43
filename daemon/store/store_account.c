/* daemon/store/store_account: ECS account settings (PutAccountSetting and
 * its kin), one row per principal and setting name; the container
 * instance's custom attributes; task scale-in protection. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/store/store_internal.h"

int store_account_setting_put(struct store *s, const char *principal, const char *name,
			      const char *value, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "INSERT INTO account_settings (principal, name, value)"
			      " VALUES (?1, ?2, ?3) ON CONFLICT (principal, name)"
			      " DO UPDATE SET value = excluded.value", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, principal);
	store_bind_text(st, 2, name);
	store_bind_text(st, 3, value);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: account setting %s of %s", name, principal);
	return 0;
}

int store_account_setting_delete(struct store *s, const char *principal, const char *name,
				 struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "DELETE FROM account_settings WHERE principal = ?1 AND name = ?2",
			      &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, principal);
	store_bind_text(st, 2, name);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: account setting %s of %s", name, principal);
	if (!sqlite3_changes(s->db))
		return berth_errf(err, ENOENT, "store: account setting %s of %s: not set", name,
				  principal);
	return 0;
}

void store_account_settings_free(struct store_account_setting *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].principal);
		free(v[i].name);
		free(v[i].value);
	}
	free(v);
}

int store_account_settings_list(struct store *s, struct store_account_setting **ret,
				size_t *ret_n, struct berth_err *err)
{
	*ret = NULL;
	*ret_n = 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "SELECT principal, name, value FROM account_settings"
			      " ORDER BY name, principal", &st, err);
	if (r < 0)
		return r;
	struct store_account_setting *v = NULL;
	size_t n = 0;
	int rc;
	bool oom = false;
	while (!oom && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_account_setting *nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv) {
			oom = true;
			break;
		}
		v = nv;
		v[n].principal = store_col_dup(st, 0, &oom);
		v[n].name = store_col_dup(st, 1, &oom);
		v[n].value = store_col_dup(st, 2, &oom);
		n++;
	}
	if (oom || (rc != SQLITE_DONE && rc != SQLITE_ROW)) {
		store_account_settings_free(v, n);
		return oom ? berth_errf(err, ENOMEM, "store: account settings: out of memory")
			   : store_sqlerr(s, rc, err, "store: account settings");
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* ---- custom container instance attributes (PutAttributes), per cluster:
 * the host is each cluster's one container instance. */

int store_attribute_put(struct store *s, const char *cluster, const char *name,
			const char *value, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "INSERT INTO instance_attributes (cluster, name, value)"
			      " VALUES (?1, ?2, ?3) ON CONFLICT (cluster, name)"
			      " DO UPDATE SET value = excluded.value", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, cluster);
	store_bind_text(st, 2, name);
	store_bind_text(st, 3, value);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: cluster %s: attribute %s", cluster, name);
	return 0;
}

int store_attribute_delete(struct store *s, const char *cluster, const char *name,
			   struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "DELETE FROM instance_attributes WHERE cluster = ?1 AND name = ?2",
			      &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, cluster);
	store_bind_text(st, 2, name);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: cluster %s: attribute %s", cluster, name);
	return 0;
}

int store_attributes_list(struct store *s, const char *cluster, struct store_tag **ret,
			  size_t *ret_n, struct berth_err *err)
{
	*ret = NULL;
	*ret_n = 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "SELECT name, value FROM instance_attributes WHERE cluster = ?1"
			      " ORDER BY name", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, cluster);
	struct store_tag *v = NULL;
	size_t n = 0;
	int rc;
	bool oom = false;
	while (!oom && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_tag *nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv) {
			oom = true;
			break;
		}
		v = nv;
		v[n].key = store_col_dup(st, 0, &oom);
		v[n].value = store_col_dup(st, 1, &oom);
		n++;
	}
	if (oom || (rc != SQLITE_DONE && rc != SQLITE_ROW)) {
		store_tags_free(v, n);
		return oom ? berth_errf(err, ENOMEM, "store: attributes: out of memory")
			   : store_sqlerr(s, rc, err, "store: cluster %s: attributes", cluster);
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* ---- task protection ---- */

int store_task_protection_set(struct store *s, const char *arn, int64_t expires_at,
			      struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, expires_at
			      ? "INSERT INTO task_protection (task_arn, expires_at) VALUES (?1, ?2)"
				" ON CONFLICT (task_arn) DO UPDATE SET expires_at = excluded.expires_at"
			      : "DELETE FROM task_protection WHERE task_arn = ?1", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, arn);
	if (expires_at)
		sqlite3_bind_int64(st, 2, expires_at);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: task %s: protection", arn);
	return 0;
}

int store_task_protection_get(struct store *s, const char *arn, int64_t *ret,
			      struct berth_err *err)
{
	*ret = 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "SELECT expires_at FROM task_protection WHERE task_arn = ?1",
			      &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, arn);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: task %s: protection", arn);
	return 0;
}

/* ---- the container instance's status, per cluster ---- */

int store_instance_draining_set(struct store *s, const char *cluster, bool draining,
				struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, draining ? "INSERT OR IGNORE INTO instance_states (cluster, status)"
					    " VALUES (?1, 'DRAINING')"
					  : "DELETE FROM instance_states WHERE cluster = ?1", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, cluster);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: cluster %s: container instance status",
				    cluster);
	return 0;
}

int store_instance_draining_get(struct store *s, const char *cluster, bool *ret,
				struct berth_err *err)
{
	*ret = false;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "SELECT 1 FROM instance_states WHERE cluster = ?1", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, cluster);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = true;
	else if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: cluster %s: container instance status",
				    cluster);
	return 0;
}
