/* daemon/server/api_decode: a request body as an operation's input — the JSON
 * text a client sent, checked and parsed into the object the operation
 * reads (api_internal.h).  Apart from the dispatcher so that it can be
 * fuzzed on its own (tests/fuzz/fuzz_http_request.c). */
#ifndef BERTH_DAEMON_API_DECODE_H
#define BERTH_DAEMON_API_DECODE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

struct api_decode_error {
	const char *type;           /* the AWS error type */
	char message[192];
};

/* BODY (LEN bytes, not NUL-terminated) as the input of operation OP:
 * strict UTF-8, no NUL in any string (cJSON would cut the string there:
 * "zz\u0000../x" would read as "zz"), one JSON object and nothing after
 * it.  An empty body is {} unless REQUIRED (OP's request has required
 * members).  0 with *ret, the caller's; -EINVAL with *e a
 * SerializationException or InvalidParameterException; -ENOMEM with *e a
 * ServerException. */
int api_decode_body(const char *op, bool required, const char *body, size_t len, cJSON **ret,
		    struct api_decode_error *e);

#endif
