/* Pull limit options (images/limits.h): the forms each takes, the values
 * refused with a message naming the option, the defaults, and the argv
 * berthd hands its pull helpers reproducing the limits it was given. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "images/limits.h"

static void test_forms(void **state)
{
	(void)state;
	static const struct { const char *name, *arg; int64_t want; } ok[] = {
		{ "pull-timeout", "500ms", 500 },
		{ "pull-timeout", "2h", 7200000 },
		{ "layer-timeout", "1.5s", 1500 },
		{ "layer-timeout", "10m", 600000 },
		{ "pull-timeout", "1d", 86400000 },
		{ "max-layer-size", "512", 512 },
		{ "max-layer-size", "1KiB", 1024 },
		{ "max-layer-size", "10GiB", 10LL << 30 },
		{ "max-layer-size", "2g", 2LL << 30 },
		{ "max-layer-ratio", "100", 100 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		struct img_pull_limits l = { 0 };
		struct berth_err err = { 0 };
		assert_int_equal(img_limits_set(&l, ok[i].name, ok[i].arg, &err), 0);
		int64_t got = !strcmp(ok[i].name, "pull-timeout") ? l.pull_timeout_ms
			      : !strcmp(ok[i].name, "layer-timeout") ? l.layer_timeout_ms
			      : !strcmp(ok[i].name, "max-layer-size") ? l.max_layer_size
			      : l.max_layer_ratio;
		assert_int_equal(got, ok[i].want);
	}
}

static void test_refused(void **state)
{
	(void)state;
	static const struct { const char *name, *arg, *words; } bad[] = {
		{ "pull-timeout", "0s", "--pull-timeout 0s: expected a duration" },
		{ "pull-timeout", "10", "expected a duration" },
		{ "layer-timeout", "-1m", "expected a duration" },
		{ "layer-timeout", "0.1ms", "expected a duration" },
		{ "max-layer-size", "1.5", "--max-layer-size 1.5: expected a size" },
		{ "max-layer-size", "10GB", "expected a size" },
		{ "max-layer-size", "nan", "expected a size" },
		{ "max-layer-size", "99999999T", "expected a size" },
		{ "max-layer-ratio", "0", "--max-layer-ratio 0: expected a whole number" },
		{ "max-layer-ratio", "2x", "expected a whole number" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct img_pull_limits l = { 0 };
		struct berth_err err = { 0 };
		assert_int_equal(img_limits_set(&l, bad[i].name, bad[i].arg, &err), -EINVAL);
		if (!strstr(err.msg, bad[i].words))
			fail_msg("%s %s: %s", bad[i].name, bad[i].arg, err.msg);
		assert_memory_equal(&l, &(struct img_pull_limits){ 0 }, sizeof(l));
	}
	struct img_pull_limits l = { 0 };
	assert_int_equal(img_limits_set(&l, "root", "/x", NULL), 1);
}

static void test_defaults_and_argv(void **state)
{
	(void)state;
	struct img_pull_limits none = { 0 };
	struct img_pull_limits d = img_limits_resolve(&none);
	assert_int_equal(d.pull_timeout_ms, IMG_DEFAULT_PULL_TIMEOUT_MS);
	assert_int_equal(d.layer_timeout_ms, IMG_DEFAULT_LAYER_TIMEOUT_MS);
	assert_int_equal(d.max_layer_size, IMG_DEFAULT_MAX_LAYER_SIZE);
	assert_int_equal(d.max_layer_ratio, IMG_DEFAULT_MAX_LAYER_RATIO);

	char *argv[8], bufs[4][32];
	size_t n = 0;
	img_limits_argv(&none, argv, &n, bufs);
	assert_int_equal(n, 0);  /* the defaults are the helper's own */

	struct img_pull_limits l = { .layer_timeout_ms = 3000, .max_layer_ratio = 7 };
	img_limits_argv(&l, argv, &n, bufs);
	assert_int_equal(n, 4);
	assert_string_equal(argv[0], "--layer-timeout");
	assert_string_equal(argv[1], "3000ms");
	assert_string_equal(argv[2], "--max-layer-ratio");
	assert_string_equal(argv[3], "7");
	struct img_pull_limits back = { 0 };
	for (size_t i = 0; i < n; i += 2)
		assert_int_equal(img_limits_set(&back, argv[i] + 2, argv[i + 1], NULL), 0);
	assert_memory_equal(&back, &l, sizeof(l));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_defaults_and_argv),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
