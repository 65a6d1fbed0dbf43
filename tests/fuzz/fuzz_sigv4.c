/* libFuzzer target for the SigV4 check of a TCP request
 * (api_sigv4_verify), which runs before the caller is known: any
 * Authorization header, X-Amz-Date, request target and body must get a
 * verdict (never an error but out of memory), a denial must name its type
 * and say why, and nothing may take time beyond a small multiple of the
 * input's size.
 *
 * Input: up to four fields separated by '\n' — the Authorization value,
 * the X-Amz-Date value, the request target, the body (the rest). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/server/credentials.h"
#include "daemon/server/sigv4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 2026-12-01T17:26:04Z, the date of the seeds' signatures. */
#define NOW ((time_t)1796145964)

static const char CREDS[] =
	"[default]\naws_access_key_id = AKIDBERTHFUZZ\naws_secret_access_key = fuzz/secret\n"
	"[temp]\naws_access_key_id = ASIABERTHFUZZ\naws_secret_access_key = temp\n"
	"aws_session_token = TOKEN\n";

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_sigv4: %s\n", what);
		abort();
	}
}

/* The next '\n'-terminated field of [*p, end), as a NUL-terminated copy. */
static char *field(const char **p, const char *end)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	const char *e = nl ? nl : end;
	char *s = strndup(*p, (size_t)(e - *p));
	*p = nl ? nl + 1 : end;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct api_credentials *creds;
	struct berth_err err = { 0 };
	if (!creds && api_credentials_parse("fuzz", CREDS, strlen(CREDS), &creds, &err) < 0)
		abort();
	const char *p = (const char *)data, *end = p + size;
	char *authz = field(&p, end), *date = field(&p, end), *target = field(&p, end);
	if (!authz || !date || !target)
		abort();
	const struct api_http_header hs[] = {
		{ "Host", 4, "127.0.0.1:8080", 14 },
		{ "Content-Type", 12, "application/x-amz-json-1.1", 26 },
		{ "X-Amz-Target", 12, "AmazonEC2ContainerServiceV20141113.ListClusters", 47 },
		{ "X-Amz-Date", 10, date, strlen(date) },
		{ "Authorization", 13, authz, strlen(authz) },
	};
	struct api_sigv4_request req = {
		.method = "POST", .target = target, .headers = hs,
		.n_headers = sizeof(hs) / sizeof(hs[0]), .body = p, .body_len = (size_t)(end - p),
	};
	struct api_sigv4_result res;
	int r = api_sigv4_verify(&req, creds, "us-east-1", "ecs", NOW, &res, &err);
	check(r == 0, err.msg);
	if (res.ok) {
		check(res.credential != NULL && res.error_type == NULL, "ok without a key");
	} else {
		check(res.error_type != NULL && res.message[0] != '\0', "a denial without a reason");
		check(res.http_status == 403, "a denial that is not a 403");
		check(strlen(res.message) < sizeof(res.message), "message not terminated");
	}
	api_sigv4_result_done(&res);
	free(authz);
	free(date);
	free(target);
	return 0;
}
