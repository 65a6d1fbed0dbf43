/* daemon/sched/tasktags: see tasktags.h. */
#include "daemon/sched/tasktags.h"

int tasktags_put(struct store *s, const char *task_arn, const struct tasktags *t,
		 struct berth_err *err)
{
	int r = 0;
	if (t->propagate_from) {
		struct store_tag *tags = NULL;
		size_t n = 0;
		r = store_tags_list(s, t->propagate_from, &tags, &n, err);
		if (r == 0 && n)
			r = store_tags_put(s, task_arn, tags, n, err);
		store_tags_free(tags, n);
	}
	if (r == 0 && t->managed) {
		struct store_tag managed[] = {
			{ .key = (char *)"aws:ecs:clusterName", .value = (char *)t->cluster },
			{ .key = (char *)"aws:ecs:serviceName", .value = (char *)t->service_name },
		};
		r = store_tags_put(s, task_arn, managed, t->service_name ? 2 : 1, err);
	}
	if (r == 0 && t->n_extra)
		r = store_tags_put(s, task_arn, t->extra, t->n_extra, err);
	return r;
}

bool tasktags_any(const struct tasktags *t)
{
	return t->propagate_from || t->managed || t->n_extra;
}
