/* libFuzzer target for the HTTP request path before evhttp: api_guard,
 * which sees every byte a client sends.  Properties:
 *  - the verdict does not depend on how the bytes are split into reads
 *    (the input is fed whole, byte by byte, and in pieces whose sizes the
 *    input's first byte picks: the three must agree);
 *  - a refusal is a 4xx with an error type and a message, and is final;
 *  - what the guard keeps stays within its bounds (the head counter never
 *    passes API_GUARD_HEAD_MAX).
 * A passed request is then checked by evhttp; that it never answers one
 * with an HTML page is the integration tests' (test_api_hostile.py). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/api_guard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_http_request: %s\n", what);
		abort();
	}
}

static void run(struct api_guard *g, const char *p, size_t n, size_t piece)
{
	api_guard_init(g);
	enum api_guard_state last = API_GUARD_HEAD;
	uint64_t completed = 0;
	for (size_t i = 0; i < n; i += piece) {
		size_t k = n - i < piece ? n - i : piece;
		enum api_guard_state s = api_guard_feed(g, p + i, k);
		check(last != API_GUARD_CLOSED || s == API_GUARD_CLOSED, "a closed connection reopened");
		check(g->completed >= completed, "the request count went back");
		check(g->head_bytes <= API_GUARD_HEAD_MAX, "the head grew past its limit");
		last = s;
		completed = g->completed;
	}
	if (g->state >= API_GUARD_DISCARD) {
		check(g->status >= 400 && g->status < 500, "a refusal that is not a 4xx");
		check(g->type && g->message[0], "a refusal without a type or message");
	}
}

static void same(const struct api_guard *a, const struct api_guard *b)
{
	check(a->state == b->state && a->completed == b->completed && a->status == b->status &&
	      a->in_request == b->in_request && a->body_left == b->body_left,
	      "the verdict depends on how the bytes were split");
	check(a->state < API_GUARD_DISCARD || strcmp(a->message, b->message) == 0,
	      "the refusal depends on how the bytes were split");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t piece = (size_t)data[0] % 17 + 1;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	static struct api_guard whole, bytes, pieces;
	run(&whole, p, n, n ? n : 1);
	run(&bytes, p, n, 1);
	run(&pieces, p, n, piece);
	same(&whole, &bytes);
	same(&whole, &pieces);
	return 0;
}
