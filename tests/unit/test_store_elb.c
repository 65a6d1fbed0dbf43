/* daemon/store/store_elb: the ELBv2 API's resources (names unique per
 * kind, a delete taking children, grandchildren and tags along) and
 * targets (re-registration ends a drain, purge at the deadline). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "daemon/store/store.h"
#include "daemon/store/store_elb.h"
#include "tests/unit/store_fixture.h"

#define ARN "arn:aws:elasticloadbalancing:us-east-1:000000000000:"
#define LB ARN "loadbalancer/app/web/0000000000000001"
#define TG ARN "targetgroup/web/0000000000000002"
#define LISTENER ARN "listener/app/web/0000000000000001/0000000000000003"
#define RULE ARN "listener-rule/app/web/0000000000000001/0000000000000003/0000000000000004"

struct fixture {
	char dir[64];
	struct store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	char path[96];
	f->s = unit_store_open("store-elb", f->dir, path);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	unit_store_close(f->s, f->dir);
	free(f);
	return 0;
}

static int insert(struct store *s, const char *arn, const char *kind, const char *name,
		  const char *parent, int64_t at)
{
	struct store_elb_res r = { .arn = (char *)arn,
				   .kind = (char *)kind,
				   .name = (char *)name,
				   .parent_arn = (char *)parent,
				   .created_at = at,
				   .doc_json = "{}" };
	struct berth_err err = { 0 };
	return store_elb_res_insert(s, &r, &err);
}

static size_t count(struct store *s, const char *kind, const char *parent)
{
	struct store_elb_res *rs = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	assert_int_equal(store_elb_res_list(s, kind, parent, &rs, &n, &err), 0);
	store_elb_res_array_free(rs, n);
	return n;
}

static void test_resources(void **state)
{
	struct store *s = ((struct fixture *)*state)->s;
	struct berth_err err = { 0 };
	assert_int_equal(insert(s, LB, "loadbalancer", "web", NULL, 1), 0);
	assert_int_equal(insert(s, TG, "targetgroup", "web", NULL, 2), 0); /* another kind */
	assert_int_equal(insert(s, ARN "loadbalancer/app/web/9", "loadbalancer", "web", NULL, 3),
			 -EEXIST);
	assert_int_equal(insert(s, LISTENER, "listener", NULL, LB, 4), 0);
	assert_int_equal(insert(s, RULE, "rule", NULL, LISTENER, 5), 0);
	assert_int_equal(insert(s, RULE "x", "rule", NULL, ARN "listener/none", 6), -ENOENT);
	struct store_tag tag = { "k", "v" };
	assert_int_equal(store_tags_put(s, RULE, &tag, 1, &err), 0);
	assert_int_equal(store_elb_res_update(s, LISTENER, "{\"Port\":80}", &err), 0);
	_cleanup_(store_elb_res_freep) struct store_elb_res *got = NULL;
	assert_int_equal(store_elb_res_get(s, LISTENER, &got, &err), 0);
	assert_string_equal(got->doc_json, "{\"Port\":80}");
	assert_string_equal(got->parent_arn, LB);
	assert_int_equal(count(s, "rule", LISTENER), 1);

	/* The load balancer goes with its listener, its rule and the rule's tags. */
	assert_int_equal(store_elb_res_delete(s, LB, &err), 0);
	assert_int_equal(count(s, "listener", NULL) + count(s, "rule", NULL), 0);
	struct store_tag *tags = NULL;
	size_t n = 0;
	assert_int_equal(store_tags_list(s, RULE, &tags, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_elb_res_delete(s, LB, &err), -ENOENT);
	assert_int_equal(count(s, "targetgroup", NULL), 1);
}

static void test_targets(void **state)
{
	struct store *s = ((struct fixture *)*state)->s;
	struct berth_err err = { 0 };
	assert_int_equal(insert(s, TG, "targetgroup", "web", NULL, 1), 0);
	assert_int_equal(store_elb_target_put(s, TG, "10.0.0.1", 80, 100, &err), 0);
	assert_int_equal(store_elb_target_put(s, TG, "10.0.0.2", 80, 100, &err), 0);
	assert_int_equal(store_elb_target_drain(s, TG, "10.0.0.1", 80, 500, &err), 0);
	assert_int_equal(store_elb_target_drain(s, TG, "10.0.0.1", 80, 600, &err), -ENOENT);
	assert_int_equal(store_elb_target_drain(s, TG, "10.0.0.3", 80, 500, &err), -ENOENT);
	size_t purged;
	assert_int_equal(store_elb_target_purge(s, 499, &purged, &err), 0);
	assert_int_equal(purged, 0);
	/* Registered again while draining: a registration anew. */
	assert_int_equal(store_elb_target_put(s, TG, "10.0.0.1", 80, 300, &err), 0);
	struct store_elb_target *ts = NULL;
	size_t n = 0;
	assert_int_equal(store_elb_target_list(s, TG, &ts, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ts[0].drain_until, 0);
	assert_int_equal(ts[0].registered_at, 300);
	store_elb_targets_free(ts, n);
	assert_int_equal(store_elb_target_drain(s, TG, "10.0.0.2", 80, 500, &err), 0);
	assert_int_equal(store_elb_target_purge(s, 500, &purged, &err), 0);
	assert_int_equal(purged, 1);
	/* A target group's targets go with it. */
	assert_int_equal(store_elb_res_delete(s, TG, &err), 0);
	assert_int_equal(store_elb_target_list(s, NULL, &ts, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_elb_target_put(s, TG, "10.0.0.1", 80, 1, &err), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_resources, setup, teardown),
		cmocka_unit_test_setup_teardown(test_targets, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
