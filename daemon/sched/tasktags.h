/* daemon/sched/tasktags: the tags a new task starts with, as ECS gives
 * them (RunTask, StartTask and a service's tasks alike): the definition's
 * or the service's (propagateTags TASK_DEFINITION / SERVICE), ECS's
 * managed ones (enableECSManagedTags: aws:ecs:clusterName, and
 * aws:ecs:serviceName for a service's task), then the request's; a later
 * one wins on a key. */
#ifndef BERTH_DAEMON_TASKTAGS_H
#define BERTH_DAEMON_TASKTAGS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "daemon/store/store.h"

struct tasktags {
	const char *propagate_from;   /* the ARN whose tags are copied, or NULL */
	bool managed;                 /* enableECSManagedTags */
	const char *cluster;          /* a name */
	const char *service_name;     /* NULL: a standalone task */
	const struct store_tag *extra; /* the request's own */
	size_t n_extra;
};

/* T's tags on the task TASK_ARN (inside the caller's transaction). */
int tasktags_put(struct store *s, const char *task_arn, const struct tasktags *t,
		 struct berth_err *err);

/* Does T put any tag at all (the answer then shows the task's tags)? */
bool tasktags_any(const struct tasktags *t);

#endif
