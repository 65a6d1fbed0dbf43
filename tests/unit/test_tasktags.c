/* daemon/sched/tasktags: the tags a new task starts with (RunTask's and a
 * service's alike), as ECS gives them — and the container instance's
 * DRAINING status they sit beside in the store, kept across a reopen. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "daemon/sched/tasktags.h"
#include "daemon/store/store.h"

/* Tags go on any resource the store has: two clusters stand in for the
 * task and for the service whose tags it copies. */
#define TASK "arn:aws:ecs:us-east-1:123456789012:cluster/task"
#define SERVICE "arn:aws:ecs:us-east-1:123456789012:cluster/service"

struct fixture {
	char dir[64];
	char path[96];
	struct store *s;
};

#define OK(call)                                                  \
	do {                                                      \
		struct berth_err e_ = { 0 };                      \
		int r_ = (call);                                  \
		if (r_ < 0)                                       \
			fail_msg("%s: %d %s", #call, r_, e_.msg); \
	} while (0)

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	strcpy(f->dir, "/tmp/berth-test-tasktags-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/berth.db", f->dir);
	OK(store_open(f->path, &f->s, &e_));
	const char *names[] = { "task", "service" }, *arns[] = { TASK, SERVICE };
	for (size_t i = 0; i < 2; i++) {
		struct store_cluster in = { .name = (char *)names[i], .arn = (char *)arns[i] };
		_cleanup_(store_cluster_freep) struct store_cluster *cl = NULL;
		OK(store_cluster_create(f->s, &in, 1, &cl, NULL, &e_));
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	store_close(f->s);
	struct berth_err err = { 0 };
	berth_rm_rf_at(AT_FDCWD, f->dir, &err);
	free(f);
	return 0;
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

static void test_service_task_gets_service_then_managed_then_own_tags(void **state)
{
	struct fixture *f = *state;
	struct store_tag svc[] = { { "team", "svc" }, { "tier", "web" } };
	OK(store_tags_put(f->s, SERVICE, svc, 2, &e_));
	struct store_tag own[] = { { "tier", "mine" } };
	struct tasktags t = { .propagate_from = SERVICE, .managed = true, .cluster = "default",
			      .service_name = "web", .extra = own, .n_extra = 1 };
	assert_true(tasktags_any(&t));
	OK(tasktags_put(f->s, TASK, &t, &e_));
	char got[512];
	tags_text(f, TASK, got, sizeof(got));
	assert_string_equal(got, "aws:ecs:clusterName=default,aws:ecs:serviceName=web,"
				 "team=svc,tier=mine");
}

static void test_standalone_task_gets_no_service_name(void **state)
{
	struct fixture *f = *state;
	struct tasktags t = { .managed = true, .cluster = "c1" };
	OK(tasktags_put(f->s, TASK, &t, &e_));
	char got[512];
	tags_text(f, TASK, got, sizeof(got));
	assert_string_equal(got, "aws:ecs:clusterName=c1");
	struct tasktags none = { .cluster = "c1", .service_name = "web" };
	assert_false(tasktags_any(&none));
}

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
		cmocka_unit_test_setup_teardown(test_service_task_gets_service_then_managed_then_own_tags,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_standalone_task_gets_no_service_name, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_draining_is_kept_per_cluster_across_a_reopen,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
