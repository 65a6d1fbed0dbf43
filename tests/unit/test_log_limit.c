/* daemon/log_limit: the daemon's log cannot be made to write faster than
 * its bucket allows, drops whole lines only, and says how many it dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/server/log_limit.h"

static int64_t fake_now;

static int64_t fake_clock(void)
{
	return fake_now;
}

static size_t lines(const char *s)
{
	size_t n = 0;
	for (; (s = strchr(s, '\n')); s++)
		n++;
	return n;
}

static void test_burst_then_rate(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	assert_non_null(out);
	struct log_limit l;
	fake_now = 1000;
	FILE *log = log_limit_open(&l, out, 20, 100, fake_clock);
	assert_non_null(log);

	/* A flood: only the burst passes, each line whole, written in pieces. */
	for (int i = 0; i < 100000; i++) {
		fputs("berth daemon: ", log);
		fprintf(log, "line %d", i);
		fputc('\n', log);
		fflush(log);
	}
	fflush(out);
	assert_int_equal(lines(text), 100);
	assert_non_null(strstr(text, "berth daemon: line 99\n"));
	assert_null(strstr(text, "line 100\n"));

	/* A second later, 20 more tokens: the first line that passes says
	 * how many were dropped. */
	fake_now += 1000;
	fputs("after\n", log);
	fflush(log);
	fflush(out);
	assert_non_null(strstr(text, "line 99\nberth daemon: 99900 log lines suppressed (more than 20 a second)\nafter\n"));
	fclose(log);
	fclose(out);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_rate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
