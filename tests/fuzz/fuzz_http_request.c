/* libFuzzer target for the HTTP request path before evhttp: api_guard,
 * which sees every byte a client sends.  Properties:
 *  - the verdict does not depend on how the bytes are split into reads
 *    (the input is fed whole, byte by byte, and in pieces whose sizes the
 *    input's first byte picks: the three must agree);
 *  - a refusal is a 4xx with an error type and a message, and is final;
 *  - what the guard keeps stays within its bounds (the head counter never
 *    passes API_GUARD_HEAD_MAX).
 * The first request that passes has its body decoded as an operation's
 * input would be (api_decode_body, the bit 0x80 of the first byte saying
 * whether the operation has required members): a refusal is a
 * SerializationException or an InvalidParameterException with a message,
 * and what is accepted is a JSON object that prints and parses back the
 * same.  Between the two, evhttp parses the head; that it never answers
 * with an HTML page is the integration tests' (test_api_hostile.py). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/server/api_decode.h"
#include "daemon/server/api_guard.h"

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

/* Where the body of the first complete request is, fed byte by byte. */
static bool first_body(const char *p, size_t n, size_t *start, size_t *end)
{
	struct api_guard g;
	api_guard_init(&g);
	*start = 0;
	for (size_t i = 0; i < n; i++) {
		enum api_guard_state before = g.state;
		if (api_guard_feed(&g, p + i, 1) >= API_GUARD_DISCARD)
			return false;
		if (before == API_GUARD_HEAD && g.state == API_GUARD_BODY)
			*start = i + 1;
		if (g.completed) {
			*start = *start ? *start : i + 1;
			*end = i + 1;
			return true;
		}
	}
	return false;
}

static void decode(const char *body, size_t n, bool required)
{
	cJSON *in = NULL;
	struct api_decode_error e;
	int r = api_decode_body("ListClusters", required, body, n, &in, &e);
	if (r == -ENOMEM)
		return;
	if (r < 0) {
		check(r == -EINVAL && e.message[0], "a refusal without a message");
		check(!strcmp(e.type, "SerializationException") ||
		      !strcmp(e.type, "InvalidParameterException"), "a refusal of an unexpected type");
		check(in == NULL, "a refusal with a result");
		return;
	}
	check(cJSON_IsObject(in), "accepted, but not an object");
	char *text = cJSON_PrintUnformatted(in);
	cJSON *again = text ? cJSON_Parse(text) : NULL;
	check(!text || (again && cJSON_Compare(in, again, true)), "the input does not print back");
	cJSON_Delete(again);
	free(text);
	cJSON_Delete(in);
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
	size_t start, end;
	if (first_body(p, n, &start, &end))
		decode(p + start, end - start, data[0] & 0x80);
	return 0;
}
