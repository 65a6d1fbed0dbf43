/* daemon/server/metadata: the task endpoint — ECS's task metadata
 * (v4 and v3 paths) and the task role's credentials, served to tasks on
 * the address --task-endpoint names (169.254.170.2:80 by default, put on
 * the task bridge; docs/task-environment.md).
 *
 *   /v4/<id>, /v4/<id>/task, /v4/<id>/taskWithTags, /v4/<id>/stats,
 *   /v4/<id>/task/stats (and /v3/…)    the container's own task only
 *   /v2/credentials/<uuid>              the task role's keys
 *
 * A caller is a task only by its source address: the id (taskmeta.h)
 * must be one of the task whose address sent the request, else the
 * answer is 404 as for an id that does not exist — another task's id, an
 * id sent from the host, a guessed one.  The stats come from the task's
 * shim (its cgroups) and its veth, asked for without blocking the loop. */
#ifndef BERTH_DAEMON_METADATA_H
#define BERTH_DAEMON_METADATA_H

#include <stdio.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "daemon/sched/sched.h"
#include "daemon/sched/taskmeta.h"
#include "daemon/store/store.h"

struct event_base;

struct metadata_config {
	const struct taskmeta *meta;
	struct sched *sched;
	/* Role ARN → keys: an AWS shared-credentials file whose sections are
	 * role ARNs, read at every request; NULL: no role has keys. */
	const char *role_credentials;
	const char *region, *account_id;
	const char *subnet;         /* the task subnet, CIDR */
	FILE *log;
};

struct metadata;

/* Serves FD (endpoint_bind()'s; taken).  CFG's strings must outlive M. */
int metadata_new(struct event_base *base, struct store *store, int fd,
		 const struct metadata_config *cfg, struct metadata **ret, struct berth_err *err);
/* Answers nothing more; stats still being gathered are dropped. */
void metadata_free(struct metadata *m);
DEFINE_CLEANUP_FUNC(struct metadata, metadata_free)

#endif
