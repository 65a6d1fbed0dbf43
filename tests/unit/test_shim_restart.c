/* runtime/shim_restart: the restart policy's decision, with the clock in
 * the test's hands (ECS's rules: enabled, not stopping, exit code not
 * ignored, ran at least restartAttemptPeriod since the latest start). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "runtime/shim_internal.h"

static void test_off_and_stopping(void **state)
{
	(void)state;
	struct plan_restart rp = { .enabled = false, .attempt_period = 60 };
	assert_int_equal(shim_restart_decide(&rp, 1, 3600 * 1000, false), SHIM_RESTART_OFF);
	rp.enabled = true;
	/* A container stopped with its task is never brought back. */
	assert_int_equal(shim_restart_decide(&rp, 143, 3600 * 1000, true), SHIM_RESTART_STOPPING);
}

static void test_ignored_exit_codes(void **state)
{
	(void)state;
	struct plan_restart rp = { .enabled = true, .ignored = { 0, 42 }, .n_ignored = 2,
				   .attempt_period = 60 };
	assert_int_equal(shim_restart_decide(&rp, 0, 61000, false), SHIM_RESTART_IGNORED);
	assert_int_equal(shim_restart_decide(&rp, 42, 61000, false), SHIM_RESTART_IGNORED);
	assert_int_equal(shim_restart_decide(&rp, 1, 61000, false), SHIM_RESTART_YES);
	assert_int_equal(shim_restart_decide(&rp, 137, 61000, false), SHIM_RESTART_YES);
}

/* The period, at its edges: a crash loop (any run shorter than it) is
 * never restarted, so restarts come at most once per period. */
static void test_attempt_period(void **state)
{
	(void)state;
	struct plan_restart rp = { .enabled = true, .attempt_period = 300 };
	assert_int_equal(shim_restart_decide(&rp, 1, 0, false), SHIM_RESTART_TOO_SOON);
	assert_int_equal(shim_restart_decide(&rp, 1, 299999, false), SHIM_RESTART_TOO_SOON);
	assert_int_equal(shim_restart_decide(&rp, 1, 300000, false), SHIM_RESTART_YES);
	rp.attempt_period = 1800;
	assert_int_equal(shim_restart_decide(&rp, 1, 1799999, false), SHIM_RESTART_TOO_SOON);
	assert_int_equal(shim_restart_decide(&rp, 1, 1800000, false), SHIM_RESTART_YES);
	/* A clock that went backwards is not a long run. */
	assert_int_equal(shim_restart_decide(&rp, 1, -5, false), SHIM_RESTART_TOO_SOON);
	assert_string_equal(shim_restart_verdict_text(SHIM_RESTART_TOO_SOON),
			    "it ran for less than restartAttemptPeriod");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_off_and_stopping),
		cmocka_unit_test(test_ignored_exit_codes),
		cmocka_unit_test(test_attempt_period),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
