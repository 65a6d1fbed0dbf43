/* runtime/health: the healthCheck parser and the state machines, with a
 * fake clock (plain integers of milliseconds). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "runtime/health.h"

#define S 1000  /* ms per second */

static void expect_argv(char **got, const char *const *want)
{
	size_t i = 0;
	for (; want[i]; i++) {
		assert_non_null(got[i]);
		assert_string_equal(got[i], want[i]);
	}
	assert_null(got[i]);
}

static void test_parse_cmd(void **state)
{
	(void)state;
	struct berth_err err = { 0 };
	struct rt_health_config c;
	const char *cmd[] = { "CMD", "wget", "-q", "localhost" };
	assert_int_equal(rt_health_config_from(cmd, 4, -1, -1, -1, -1, &c, &err), 0);
	expect_argv(c.argv, (const char *[]){ "wget", "-q", "localhost", NULL });
	assert_int_equal(c.interval_s, 30);
	assert_int_equal(c.timeout_s, 5);
	assert_int_equal(c.retries, 3);
	assert_int_equal(c.start_period_s, 0);
	rt_health_config_free(&c);
	assert_null(c.argv);
	rt_health_config_free(&c);  /* idempotent */
}

static void test_parse_cmd_shell(void **state)
{
	(void)state;
	struct berth_err err = { 0 };
	struct rt_health_config c;
	const char *cmd[] = { "CMD-SHELL", "curl -f http://localhost/ || exit 1" };
	assert_int_equal(rt_health_config_from(cmd, 2, 5, 2, 1, 300, &c, &err), 0);
	expect_argv(c.argv, (const char *[]){ "/bin/sh", "-c",
		    "curl -f http://localhost/ || exit 1", NULL });
	assert_int_equal(c.interval_s, 5);
	assert_int_equal(c.timeout_s, 2);
	assert_int_equal(c.retries, 1);
	assert_int_equal(c.start_period_s, 300);
	rt_health_config_free(&c);
	/* As Docker: extra strings are the script's $0, $1, not joined. */
	const char *more[] = { "CMD-SHELL", "exit $1", "name", "7" };
	assert_int_equal(rt_health_config_from(more, 4, 300, 60, 10, 0, &c, &err), 0);
	expect_argv(c.argv, (const char *[]){ "/bin/sh", "-c", "exit $1", "name", "7", NULL });
	rt_health_config_free(&c);
}

static void test_parse_none(void **state)
{
	(void)state;
	struct berth_err err = { 0 };
	struct rt_health_config c;
	const char *cmd[] = { "NONE" };
	assert_int_equal(rt_health_config_from(cmd, 1, -1, -1, -1, -1, &c, &err), 0);
	assert_null(c.argv);
	rt_health_config_free(&c);
}

static void test_parse_bad(void **state)
{
	(void)state;
	static const struct {
		const char *cmd[4];
		size_t n;
		int interval, timeout, retries, start;
		const char *msg;
	} bad[] = {
		{ { NULL }, 0, -1, -1, -1, -1, "healthCheck.command: empty" },
		{ { "CMD" }, 1, -1, -1, -1, -1, "healthCheck.command: CMD without a command" },
		{ { "CMD", "" }, 2, -1, -1, -1, -1, "healthCheck.command: CMD without a command" },
		{ { "CMD-SHELL" }, 1, -1, -1, -1, -1,
		  "healthCheck.command: CMD-SHELL without a command" },
		{ { "NONE", "x" }, 2, -1, -1, -1, -1,
		  "healthCheck.command: NONE takes no arguments" },
		{ { "curl", "-f" }, 2, -1, -1, -1, -1, "healthCheck.command: \"curl\": must start "
		  "with CMD, CMD-SHELL or NONE" },
		{ { "cmd", "true" }, 2, -1, -1, -1, -1, "healthCheck.command: \"cmd\": must start "
		  "with CMD, CMD-SHELL or NONE" },
		{ { "CMD", "true" }, 2, 4, -1, -1, -1,
		  "healthCheck.interval 4: must be between 5 and 300" },
		{ { "CMD", "true" }, 2, 301, -1, -1, -1,
		  "healthCheck.interval 301: must be between 5 and 300" },
		{ { "CMD", "true" }, 2, -1, 1, -1, -1,
		  "healthCheck.timeout 1: must be between 2 and 60" },
		{ { "CMD", "true" }, 2, -1, 61, -1, -1,
		  "healthCheck.timeout 61: must be between 2 and 60" },
		{ { "CMD", "true" }, 2, -1, -1, 0, -1,
		  "healthCheck.retries 0: must be between 1 and 10" },
		{ { "CMD", "true" }, 2, -1, -1, 11, -1,
		  "healthCheck.retries 11: must be between 1 and 10" },
		{ { "CMD", "true" }, 2, -1, -1, -1, -2,
		  "healthCheck.startPeriod -2: must be between 0 and 300" },
		{ { "CMD", "true" }, 2, -1, -1, -1, 301,
		  "healthCheck.startPeriod 301: must be between 0 and 300" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct berth_err err = { 0 };
		struct rt_health_config c = { .interval_s = 42 };
		int r = rt_health_config_from(bad[i].cmd, bad[i].n, bad[i].interval,
					      bad[i].timeout, bad[i].retries, bad[i].start,
					      &c, &err);
		assert_int_equal(r, -EINVAL);
		assert_string_equal(err.msg, bad[i].msg);
		assert_int_equal(c.interval_s, 42);  /* untouched */
		assert_null(c.argv);
	}
}

static void test_status_names(void **state)
{
	(void)state;
	assert_string_equal(rt_health_status_name(RT_HEALTH_UNKNOWN), "UNKNOWN");
	assert_string_equal(rt_health_status_name(RT_HEALTH_HEALTHY), "HEALTHY");
	assert_string_equal(rt_health_status_name(RT_HEALTH_UNHEALTHY), "UNHEALTHY");
	assert_string_equal(rt_health_status_name((enum rt_health_status)99), "UNKNOWN");
}

static struct rt_health_config cfg(int interval, int retries, int start)
{
	return (struct rt_health_config){ .interval_s = interval, .timeout_s = 5,
					  .retries = retries, .start_period_s = start };
}

static void test_schedule(void **state)
{
	(void)state;
	struct rt_health h;
	struct rt_health_config c = cfg(30, 3, 0);
	rt_health_start(&h, &c, 1000 * S);
	assert_int_equal(h.status, RT_HEALTH_UNKNOWN);
	assert_int_equal(rt_health_next_due(&h), 1030 * S);
	/* The next one counts from when the probe finished. */
	rt_health_record(&h, true, 1032 * S);
	assert_int_equal(rt_health_next_due(&h), 1062 * S);
}

static void test_pass_then_retries(void **state)
{
	(void)state;
	struct rt_health h;
	struct rt_health_config c = cfg(10, 3, 0);
	rt_health_start(&h, &c, 0);
	assert_true(rt_health_record(&h, true, 10 * S));
	assert_int_equal(h.status, RT_HEALTH_HEALTHY);
	assert_false(rt_health_record(&h, true, 20 * S));
	/* HEALTHY → UNHEALTHY only after the third failure in a row. */
	assert_false(rt_health_record(&h, false, 30 * S));
	assert_false(rt_health_record(&h, false, 40 * S));
	assert_int_equal(h.status, RT_HEALTH_HEALTHY);
	assert_true(rt_health_record(&h, false, 50 * S));
	assert_int_equal(h.status, RT_HEALTH_UNHEALTHY);
	assert_false(rt_health_record(&h, false, 60 * S));
	assert_int_equal(h.failures, 4);
	/* Recovery: one pass. */
	assert_true(rt_health_record(&h, true, 70 * S));
	assert_int_equal(h.status, RT_HEALTH_HEALTHY);
	assert_int_equal(h.failures, 0);
	/* A pass in between resets the count. */
	assert_false(rt_health_record(&h, false, 80 * S));
	assert_false(rt_health_record(&h, false, 90 * S));
	assert_false(rt_health_record(&h, true, 100 * S));
	assert_false(rt_health_record(&h, false, 110 * S));
	assert_false(rt_health_record(&h, false, 120 * S));
	assert_int_equal(h.status, RT_HEALTH_HEALTHY);
}

static void test_unknown_to_unhealthy(void **state)
{
	(void)state;
	struct rt_health h;
	struct rt_health_config c = cfg(5, 1, 0);
	rt_health_start(&h, &c, 0);
	assert_true(rt_health_record(&h, false, 5 * S));
	assert_int_equal(h.status, RT_HEALTH_UNHEALTHY);
}

static void test_start_period(void **state)
{
	(void)state;
	struct rt_health h;
	struct rt_health_config c = cfg(5, 2, 20);
	rt_health_start(&h, &c, 100 * S);
	/* Failures within 20 s of the start do not count. */
	for (int t = 105; t < 120; t += 5)
		assert_false(rt_health_record(&h, false, t * S));
	assert_int_equal(h.status, RT_HEALTH_UNKNOWN);
	assert_int_equal(h.counted, 0);
	assert_int_equal(h.failures, 3);
	/* At the boundary the period is over: 2 counted failures. */
	assert_false(rt_health_record(&h, false, 120 * S));
	assert_true(rt_health_record(&h, false, 125 * S));
	assert_int_equal(h.status, RT_HEALTH_UNHEALTHY);
}

static void test_pass_ends_start_period(void **state)
{
	(void)state;
	struct rt_health h;
	struct rt_health_config c = cfg(5, 2, 60);
	rt_health_start(&h, &c, 0);
	assert_false(rt_health_record(&h, false, 5 * S));
	assert_true(rt_health_record(&h, true, 10 * S));   /* a pass counts at once */
	assert_int_equal(h.status, RT_HEALTH_HEALTHY);
	/* From now on failures count, though still within 60 s. */
	assert_false(rt_health_record(&h, false, 15 * S));
	assert_true(rt_health_record(&h, false, 20 * S));
	assert_int_equal(h.status, RT_HEALTH_UNHEALTHY);
}

static void test_task(void **state)
{
	(void)state;
#define U RT_HEALTH_UNKNOWN
#define H RT_HEALTH_HEALTHY
#define X RT_HEALTH_UNHEALTHY
	static const struct {
		struct rt_health_member m[3];
		size_t n;
		enum rt_health_status want;
	} cases[] = {
		{ { { 0 } }, 0, U },
		/* No essential container with a check: UNKNOWN. */
		{ { { true, false, U }, { false, true, H } }, 2, U },
		{ { { true, true, H } }, 1, H },
		{ { { true, true, H }, { true, true, U } }, 2, U },
		{ { { true, true, H }, { true, true, H }, { true, false, U } }, 3, H },
		{ { { true, true, H }, { true, true, X } }, 2, X },
		{ { { true, true, U }, { true, true, X } }, 2, X },
		/* A non-essential container's health does not matter. */
		{ { { true, true, H }, { false, true, X } }, 2, H },
		{ { { true, true, H }, { false, true, U } }, 2, H },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (rt_health_task(cases[i].m, cases[i].n) != cases[i].want)
			fail_msg("case %zu: got %s", i,
				 rt_health_status_name(rt_health_task(cases[i].m, cases[i].n)));
#undef U
#undef H
#undef X
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_cmd),
		cmocka_unit_test(test_parse_cmd_shell),
		cmocka_unit_test(test_parse_none),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_schedule),
		cmocka_unit_test(test_pass_then_retries),
		cmocka_unit_test(test_unknown_to_unhealthy),
		cmocka_unit_test(test_start_period),
		cmocka_unit_test(test_pass_ends_start_period),
		cmocka_unit_test(test_task),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
