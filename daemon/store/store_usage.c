/* daemon/store/store_usage: what the tasks not STOPPED hold, grouped, so
 * that placing a task (daemon/sched/instance.c) reads a few rows, one per
 * kind of task, instead of every task record: RunTask with 1,000 tasks
 * running read 1,000 records, each in its own read transaction. */
#include <errno.h>

#include "daemon/store/store_internal.h"

int store_task_groups(struct store *s, store_task_group_fn fn, void *arg, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s,
			      "SELECT task_definition_arn, overrides_json, cluster, last_status,"
			      "       count(*) FROM tasks WHERE last_status <> 'STOPPED'"
			      " GROUP BY task_definition_arn, overrides_json, cluster, last_status",
			      &st, err);
	if (r < 0)
		return r;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_task_group g = {
			.task_definition_arn = (const char *)sqlite3_column_text(st, 0),
			.overrides_json = (const char *)sqlite3_column_text(st, 1),
			.cluster = (const char *)sqlite3_column_text(st, 2),
			.count = sqlite3_column_int64(st, 4),
		};
		if (store_task_status_parse((const char *)sqlite3_column_text(st, 3),
					    &g.last_status) < 0)
			return berth_errf(err, EBADMSG, "store: tasks: a lastStatus it cannot read");
		if ((r = fn(arg, &g, err)) < 0)
			return r;
	}
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: tasks: usage");
	return 0;
}
