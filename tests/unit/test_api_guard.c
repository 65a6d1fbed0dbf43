/* daemon/api_guard: the HTTP limits on the raw bytes of a connection —
 * what passes (and where each request ends), what is refused and how. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/server/api_guard.h"

#define H "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: T.ListClusters\r\n"

static enum api_guard_state feed(struct api_guard *g, const char *s)
{
	return api_guard_feed(g, s, strlen(s));
}

static void refused(const char *input, int status, const char *type, const char *msg)
{
	struct api_guard g;
	api_guard_init(&g);
	enum api_guard_state s = feed(&g, input);
	if (s < API_GUARD_DISCARD)
		fail_msg("not refused: %s", input);
	assert_int_equal(g.status, status);
	assert_string_equal(g.type, type);
	assert_string_equal(g.message, msg);
}

static void test_requests_pass_and_end(void **state)
{
	(void)state;
	struct api_guard g;
	api_guard_init(&g);
	assert_int_equal(feed(&g, H "Content-Length: 2\r\n\r\n{"), API_GUARD_BODY);
	assert_true(g.in_request);
	assert_int_equal(feed(&g, "}"), API_GUARD_HEAD);
	assert_false(g.in_request);
	assert_int_equal(g.completed, 1);
	/* Pipelined, bare LF line ends, no body, a repeated equal length. */
	assert_int_equal(feed(&g, "GET /x HTTP/1.0\n\n" H "Content-Length: 0\r\ncontent-length: 0\r\n"
			      "Expect: 100-Continue\r\n\r\nPOS"), API_GUARD_HEAD);
	assert_int_equal(g.completed, 3);
	assert_true(g.in_request);
}

static void test_sizes(void **state)
{
	(void)state;
	refused(H "Content-Length: 9223372036854775808\r\n\r\n", 413, "ClientException",
		"Request body of 9223372036854775808 bytes exceeds the limit of 1048576 bytes.");
	struct api_guard g;
	api_guard_init(&g);
	/* A 413 drops what the client still sends, up to a bound, then closes. */
	assert_int_equal(feed(&g, H "Content-Length: 1048577\r\n"), API_GUARD_DISCARD);
	char *big = calloc(1, API_GUARD_DISCARD_MAX);
	assert_non_null(big);
	memset(big, 'x', API_GUARD_DISCARD_MAX - 1);
	assert_int_equal(api_guard_feed(&g, big, API_GUARD_DISCARD_MAX - 1), API_GUARD_DISCARD);
	assert_int_equal(api_guard_feed(&g, "xx", 2), API_GUARD_CLOSED);

	/* The head: 64 KiB in all, 100 header lines, a 1 KiB request line. */
	api_guard_init(&g);
	memset(big, 'a', API_GUARD_HEAD_MAX + 1);
	memcpy(big, "POST / HTTP/1.1\r\nX: ", 20);
	assert_int_equal(api_guard_feed(&g, big, API_GUARD_HEAD_MAX), API_GUARD_HEAD);
	assert_int_equal(api_guard_feed(&g, big, 1), API_GUARD_CLOSED);
	assert_int_equal(g.status, 431);
	free(big);

	char many[4096] = "POST / HTTP/1.1\r\n";
	for (int i = 0; i < 101; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "X-%d: v\r\n", i);
	refused(many, 431, "ClientException", "The request has more than 100 header lines.");
	char line[1200] = "POST /";
	memset(line + 6, 'a', 1100);
	strcat(line, " HTTP/1.1\r\n");
	refused(line, 414, "ClientException", "The request line is longer than 1023 bytes.");
}

static void test_framing(void **state)
{
	(void)state;
	const char *bad = "SerializationException";
	refused(H "Content-Length: 2\r\nContent-Length: 3\r\n\r\n", 400, bad,
		"The request has two different Content-Length headers.");
	refused(H "Content-Length: +2\r\n\r\n", 400, bad, "Content-Length is not a decimal number of bytes.");
	refused(H "Content-Length:\r\n\r\n", 400, bad, "Content-Length is not a decimal number of bytes.");
	refused(H "Transfer-Encoding: chunked\r\n\r\n", 400, bad,
		"Transfer-Encoding is not accepted: send the body with a Content-Length.");
	refused(H "Expect: 200-ok\r\n\r\n", 417, "ClientException", "Only 'Expect: 100-continue' is understood.");
	refused(H " folded\r\n\r\n", 400, bad, "Header lines may not be folded.");
	refused(H "no colon\r\n\r\n", 400, bad, "A header line is not NAME: VALUE.");
	refused(H "X: a\rb\r\n", 400, bad, "A CR in the request head is not followed by LF.");
	refused(H "X: a\001\r\n", 400, bad, "The request head contains a control character.");
	refused("\r\n", 400, bad, "The request line is not METHOD TARGET HTTP-VERSION.");
	refused("POST /\r\n", 400, bad, "The request line is not METHOD TARGET HTTP-VERSION.");
	refused("POST / x HTTP/1.1\r\n", 400, bad, "The request line is not METHOD TARGET HTTP-VERSION.");
	refused("POST / HTTP/2.0\r\n", 400, bad, "Only HTTP/1.0 and HTTP/1.1 are served.");
	refused("POST http://[x HTTP/1.1\r\n", 400, bad, "The request target is not a valid URI.");
	refused("FOO / HTTP/1.1\r\n", 405, "UnknownOperationException", "The ECS API accepts POST requests only.");
	refused("CONNECT h:22 HTTP/1.1\r\n", 405, "UnknownOperationException",
		"The ECS API accepts POST requests only.");
	/* TRACE and the other methods evhttp knows reach the API (405 there). */
	struct api_guard g;
	api_guard_init(&g);
	assert_int_equal(feed(&g, "TRACE / HTTP/1.1\r\n\r\n"), API_GUARD_HEAD);
	assert_int_equal(g.completed, 1);
}

static void test_refusal_is_final(void **state)
{
	(void)state;
	struct api_guard g;
	api_guard_init(&g);
	assert_int_equal(feed(&g, "FOO / HTTP/1.1\r\n"), API_GUARD_CLOSED);
	assert_int_equal(feed(&g, H "\r\n"), API_GUARD_CLOSED);
	assert_int_equal(g.completed, 0);
	api_guard_init(&g);
	feed(&g, "POST / HTTP/1.1\r\n");
	api_guard_refuse(&g, 408, "ClientException", "late");
	assert_int_equal(feed(&g, "\r\n"), API_GUARD_CLOSED);
	assert_string_equal(g.message, "late");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests_pass_and_end),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_framing),
		cmocka_unit_test(test_refusal_is_final),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
