/* daemon/store/store_service: services. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/store/store_internal.h"

static const char *const service_statuses[] = { "ACTIVE", "DRAINING", "INACTIVE" };

const char *store_service_status_name(enum store_service_status v)
{
	return (unsigned)v < ARRAY_SIZE(service_statuses) ? service_statuses[v] : "INACTIVE";
}

void store_service_free(struct store_service *v)
{
	if (!v)
		return;
	free(v->cluster);
	free(v->name);
	free(v->arn);
	free(v->config_json);
	free(v->deployments_json);
	free(v->events_json);
	free(v->state_json);
	free(v);
}

#define SERVICE_COLUMNS \
	"cluster, name, arn, status, created_at, desired_count, config_json, deployments_json," \
	" events_json, state_json"

static int service_validate(const struct store_service *v, struct berth_err *err)
{
	if (!v->cluster || !v->name || !v->arn || !v->config_json || !v->deployments_json ||
	    !v->events_json || !v->state_json || v->desired_count < 0)
		return berth_errf(err, EINVAL, "store: service %s: incomplete",
				  v->name ? v->name : "?");
	return 0;
}

static void service_bind(sqlite3_stmt *st, const struct store_service *v)
{
	store_bind_text(st, 1, v->cluster);
	store_bind_text(st, 2, v->name);
	store_bind_text(st, 3, v->arn);
	store_bind_text(st, 4, store_service_status_name(v->status));
	sqlite3_bind_int64(st, 5, v->created_at);
	sqlite3_bind_int64(st, 6, v->desired_count);
	store_bind_text(st, 7, v->config_json);
	store_bind_text(st, 8, v->deployments_json);
	store_bind_text(st, 9, v->events_json);
	store_bind_text(st, 10, v->state_json);
}

static int step_done(struct store *s, sqlite3_stmt *st, const char *name, struct berth_err *err)
{
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: service %s", name);
	return 0;
}

/* The cluster must be ACTIVE; an INACTIVE service of the name goes. */
static int create_check(struct store *s, const struct store_service *in, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_select_row(s, "SELECT status FROM clusters WHERE name = ?1", "cluster",
				 in->cluster, &st, err);
	if (r < 0)
		return r;
	if (strcmp((const char *)sqlite3_column_text(st, 0), "ACTIVE") != 0)
		return berth_errf(err, EINVAL, "store: service %s: cluster %s is INACTIVE", in->name,
				  in->cluster);
	store_stmt_release(TAKE_PTR(st));
	if ((r = store_prepare(s, "SELECT status, arn FROM services WHERE cluster = ?1 AND name = ?2",
			       &st, err)) < 0)
		return r;
	store_bind_text(st, 1, in->cluster);
	store_bind_text(st, 2, in->name);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_sqlerr(s, rc, err, "store: service %s", in->name);
	if (strcmp((const char *)sqlite3_column_text(st, 0), "INACTIVE") != 0)
		return berth_errf(err, EEXIST, "store: service %s: exists in cluster %s", in->name,
				  in->cluster);
	_cleanup_free_ char *old_arn = strdup((const char *)sqlite3_column_text(st, 1));
	store_stmt_release(TAKE_PTR(st));
	if (!old_arn)
		return berth_errf(err, ENOMEM, "store: service %s: out of memory", in->name);
	if ((r = store_prepare(s, "DELETE FROM tags WHERE resource_arn = ?1", &st, err)) < 0)
		return r;
	store_bind_text(st, 1, old_arn);
	if ((r = step_done(s, st, in->name, err)) < 0)
		return r;
	store_stmt_release(TAKE_PTR(st));
	if ((r = store_prepare(s, "DELETE FROM services WHERE cluster = ?1 AND name = ?2", &st,
			       err)) < 0)
		return r;
	store_bind_text(st, 1, in->cluster);
	store_bind_text(st, 2, in->name);
	return step_done(s, st, in->name, err);
}

int store_service_create(struct store *s, const struct store_service *in, struct berth_err *err)
{
	int r = service_validate(in, err);
	if (r < 0)
		return r;
	struct store_tx tx _cleanup_tx_ = { 0 };
	if ((r = store_tx_begin(s, &tx, err)) < 0 || (r = create_check(s, in, err)) < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = store_prepare(s, "INSERT INTO services (" SERVICE_COLUMNS ") VALUES"
			       " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)", &st, err)) < 0)
		return r;
	service_bind(st, in);
	if ((r = step_done(s, st, in->name, err)) < 0)
		return r;
	return store_tx_commit(&tx, err);
}

int store_service_update(struct store *s, const struct store_service *v, struct berth_err *err)
{
	int r = service_validate(v, err);
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = store_prepare(s, "UPDATE services SET status = ?4, desired_count = ?6,"
			       " config_json = ?7, deployments_json = ?8, events_json = ?9,"
			       " state_json = ?10 WHERE cluster = ?1 AND name = ?2 AND arn = ?3"
			       " AND created_at = ?5", &st, err)) < 0)
		return r;
	service_bind(st, v);
	if ((r = step_done(s, st, v->name, err)) < 0)
		return r;
	if (sqlite3_changes(s->db) != 1)
		return berth_errf(err, ENOENT, "store: service %s: not found", v->name);
	return 0;
}

int store_service_get(struct store *s, const char *cluster, const char *name_or_arn,
		      struct store_service **ret, struct berth_err *err)
{
	bool arn = strncmp(name_or_arn, "arn:", 4) == 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, arn ? "SELECT " SERVICE_COLUMNS " FROM services WHERE arn = ?1"
				     : "SELECT " SERVICE_COLUMNS " FROM services"
				       " WHERE name = ?1 AND cluster = ?2", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, name_or_arn);
	if (!arn)
		store_bind_text(st, 2, cluster);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return berth_errf(err, ENOENT, "store: service %s: not found", name_or_arn);
	if (rc != SQLITE_ROW)
		return store_sqlerr(s, rc, err, "store: service %s", name_or_arn);
	_cleanup_(store_service_freep) struct store_service *v = calloc(1, sizeof(*v));
	if (!v)
		return berth_errf(err, ENOMEM, "store: service %s: out of memory", name_or_arn);
	bool oom = false;
	v->cluster = store_col_dup(st, 0, &oom);
	v->name = store_col_dup(st, 1, &oom);
	v->arn = store_col_dup(st, 2, &oom);
	const char *status = (const char *)sqlite3_column_text(st, 3);
	for (size_t i = 0; i < ARRAY_SIZE(service_statuses); i++)
		if (strcmp(status, service_statuses[i]) == 0)
			v->status = (enum store_service_status)i;
	v->created_at = sqlite3_column_int64(st, 4);
	v->desired_count = sqlite3_column_int64(st, 5);
	v->config_json = store_col_dup(st, 6, &oom);
	v->deployments_json = store_col_dup(st, 7, &oom);
	v->events_json = store_col_dup(st, 8, &oom);
	v->state_json = store_col_dup(st, 9, &oom);
	if (oom)
		return berth_errf(err, ENOMEM, "store: service %s: out of memory", name_or_arn);
	*ret = TAKE_PTR(v);
	return 0;
}

int store_service_list(struct store *s, const struct store_service_filter *f,
		       const struct store_page *page, struct store_list *ret,
		       struct berth_err *err)
{
	int limit;
	_cleanup_free_ char *after = NULL;
	int r = store_page_begin(page, "sv", &limit, &after, err);
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = store_prepare(s, "SELECT arn, cluster || '/' || name FROM services"
			       " WHERE (?1 IS NULL OR cluster = ?1)"
			       " AND (status = 'ACTIVE' OR (?2 AND status = 'DRAINING'))"
			       " AND (?3 IS NULL OR cluster || '/' || name > ?3)"
			       " AND (?5 IS NULL OR json_extract(config_json, '$.launchType') = ?5)"
			       " AND (?6 IS NULL OR"
			       "      json_extract(config_json, '$.schedulingStrategy') = ?6)"
			       " ORDER BY cluster || '/' || name LIMIT ?4", &st, err)) < 0)
		return r;
	store_bind_text(st, 1, f->cluster);
	sqlite3_bind_int(st, 2, f->with_draining);
	store_bind_text(st, 5, f->launch_type);
	store_bind_text(st, 6, f->scheduling_strategy);
	store_bind_text(st, 3, after);
	sqlite3_bind_int(st, 4, limit + 1);
	return store_page_collect(s, st, "sv", limit, 1, 0, "services", ret, err);
}
