/* daemon/server/api_encode: an answer's text is exactly what cJSON prints,
 * timestamps included, however many numbers and answers there are. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/server/api_encode.h"

/* cJSON's own text of the number D. */
static char *cjson_text(double d)
{
	cJSON *n = cJSON_CreateNumber(d);
	assert_non_null(n);
	char *s = cJSON_PrintUnformatted(n);
	assert_non_null(s);
	cJSON_Delete(n);
	return s;
}

static void same_as_cjson(long long ms)
{
	double d = (double)ms / 1000.0;
	char text[24];
	size_t n = api_ms_text(d, text);
	assert_true(n > 0);
	assert_int_equal(n, strlen(text));
	char *want = cjson_text(d);
	if (strcmp(text, want) != 0)
		fail_msg("%lld ms: \"%s\", cJSON prints \"%s\"", ms, text, want);
	free(want);
}

static void test_ms_text(void **state)
{
	(void)state;
	static const long long fixed[] = {
		1, 10, 100, 120, 123, 500, 999, 1001, 1010, 1100, 1234, -1, -500, -1234,
		1733610000000LL, 1733610000001LL, 1733610000010LL, 1733610000100LL,
		1733610000123LL, 1733610000120LL, 999999999999999LL, -999999999999999LL,
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		same_as_cjson(fixed[i]);
	srand(12);
	for (int i = 0; i < 200000; i++) {
		long long ms = ((long long)rand() << 20 ^ rand()) % 1000000000000000LL;
		same_as_cjson(i % 2 ? ms : -ms);
		same_as_cjson(1700000000000LL + rand() % 100000000);
	}
	/* Not a whole number of thousandths, or too large: cJSON's way. */
	char text[24];
	assert_int_equal(api_ms_text(0.0001, text), 0);
	assert_int_equal(api_ms_text(1.0 / 3.0, text), 0);
	assert_int_equal(api_ms_text(1e12, text), 0);
	assert_int_equal(api_ms_text(-1e12, text), 0);
	assert_int_equal(api_ms_text(0.0 / 0.0, text), 0);
	assert_int_equal(api_ms_text(1.0 / 0.0, text), 0);
}

/* An answer with more timestamps and counts than one chunk holds (-0
 * among them), under a constant key and in nested lists, printed twice by
 * one encoder. */
static void test_encode_answers(void **state)
{
	(void)state;
	struct api_encoder e = { 0 };
	for (int round = 0; round < 3; round++) {
		cJSON *o = cJSON_CreateObject();
		cJSON *tasks = cJSON_AddArrayToObject(o, "tasks");
		for (int i = 0; i < 400; i++) {
			cJSON *t = cJSON_CreateObject();
			cJSON_AddItemToArray(tasks, t);
			cJSON_AddItemToObjectCS(t, "createdAt",
						cJSON_CreateNumber(1733610000.123 + i + round));
			cJSON_AddNumberToObject(t, "version", i);
			cJSON_AddNumberToObject(t, "ratio", 1.0 / (i + 3));
			cJSON_AddNumberToObject(t, "big", 5e9 + i);
			cJSON_AddNumberToObject(t, "count", i - 200);
			cJSON_AddNumberToObject(t, "zero", 0.0);
			cJSON_AddNumberToObject(t, "negativeZero", -0.0);
			cJSON_AddNumberToObject(t, "whole", 1e12 - 1 - i);
			cJSON_AddStringToObject(t, "name", "x");
		}
		char *want = cJSON_PrintUnformatted(o);
		char *got = api_encode(&e, o);
		assert_non_null(want);
		assert_non_null(got);
		assert_string_equal(got, want);
		cJSON_Delete(o);        /* the constant key and the texts stay */
		free(want);
		free(got);
	}
	api_encoder_done(&e);
	api_encoder_done(&e);           /* twice: nothing left to free */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ms_text),
		cmocka_unit_test(test_encode_answers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
