/* AWS Signature Version 4 verification for the daemon's TCP listener
 * (header-based auth only: `Authorization: AWS4-HMAC-SHA256 Credential=…,
 * SignedHeaders=…, Signature=…`; presigned query-string auth is not
 * accepted).
 *
 * The canonical form follows the public AWS SigV4 test suite for non-S3
 * services, i.e. what botocore, the AWS CLI and the other SDKs sign:
 *  - URI: the path as received, dot segments removed and repeated slashes
 *    collapsed (botocore's remove_dot_segments), then every byte outside
 *    A-Za-z0-9-_.~ percent-encoded — once more on top of the client's own
 *    encoding, which is the "double encoding" of non-S3 services;
 *  - query: each name and value percent-decoded and re-encoded with that
 *    unreserved set (uppercase hex), sorted by name, then value;
 *  - headers: the SignedHeaders, lowercased names, values trimmed with runs
 *    of whitespace collapsed to one space, repeated headers joined by ',';
 *  - payload: hex SHA-256 of the body bytes.
 *
 * Checks run in the order AWS's front end runs them (as recorded against
 * the live service by dynalite and scratchstack-aws-signature), so a client
 * sees the same first complaint it would see from AWS.  Berth adds two
 * rules of its own: X-Amz-Date (or Date) and, when the request carries it,
 * X-Amz-Target must be among the signed headers. */
#ifndef BERTH_DAEMON_SIGV4_H
#define BERTH_DAEMON_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "common/err.h"
#include "daemon/server/credentials.h"

/* ± clock skew AWS allows between X-Amz-Date and the server's clock. */
#define API_SIGV4_MAX_SKEW 300

/* Bounds on what is parsed before the key is looked up, so that an
 * unauthenticated request costs the daemon a small constant: the
 * Authorization header's length, and the entries of its SignedHeaders
 * (botocore signs 4 to 6; AWS's own front end caps the list too). */
#define API_SIGV4_AUTHORIZATION_MAX 8192
#define API_SIGV4_SIGNED_HEADERS_MAX 64

/* Error types, as the API returns them in `__type`. */
#define API_SIGV4_MISSING_TOKEN "MissingAuthenticationTokenException"
#define API_SIGV4_INCOMPLETE    "IncompleteSignatureException"
#define API_SIGV4_INVALID       "InvalidSignatureException"
#define API_SIGV4_UNRECOGNIZED  "UnrecognizedClientException"

struct api_http_header {
	const char *name;   /* any case */
	size_t name_len;
	const char *value;  /* as received, not yet trimmed */
	size_t value_len;
};

struct api_sigv4_request {
	const char *method;                     /* "POST" */
	const char *target;                     /* raw request target: path[?query] */
	const struct api_http_header *headers;  /* in arrival order; repeats allowed */
	size_t n_headers;
	const void *body;
	size_t body_len;
};

struct api_sigv4_result {
	bool ok;
	const char *error_type;   /* one of API_SIGV4_*, NULL when ok */
	int http_status;          /* 403 when denied, 0 when ok */
	char message[1024];       /* AWS's text for error_type */
	char access_key_id[129];  /* from the Credential scope, once parsed */
	const struct api_credential *credential; /* the matched key when ok */
	/* What the signature was checked against, for debug logs when a client
	 * and the daemon disagree (AWS used to return these in the message).
	 * Owned by the result; api_sigv4_result_done() frees them. */
	char *canonical_request;
	char *string_to_sign;
};

/* Verifies REQ for REGION and SERVICE ("ecs") at time NOW against CREDS.
 * Returns 0 when a verdict was reached — res->ok, or a denial described by
 * error_type/message — and a negative errno with *err only when the check
 * itself could not run (out of memory, libcrypto failure), which the API
 * answers with a 500.  Call api_sigv4_result_done(res) afterwards either
 * way. */
int api_sigv4_verify(const struct api_sigv4_request *req, const struct api_credentials *creds,
		     const char *region, const char *service, time_t now,
		     struct api_sigv4_result *res, struct berth_err *err);

void api_sigv4_result_done(struct api_sigv4_result *res);

/* The building blocks, exposed for the test vectors and for a signing
 * client.  Each *ret is malloc'd and the caller's. */

/* Canonical request for REQ with SIGNED_HEADERS (the `;` list exactly as
 * in the Authorization header).  PAYLOAD_HASH is 64 hex digits, or NULL to
 * hash the body.  -ENOENT when a signed header is absent from REQ. */
int api_sigv4_canonical_request(const struct api_sigv4_request *req, const char *signed_headers,
				const char *payload_hash, char **ret, struct berth_err *err);

/* "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256(canonical_request)>" */
int api_sigv4_string_to_sign(const char *amz_date, const char *scope,
			     const char *canonical_request, char **ret, struct berth_err *err);

/* hex(HMAC(kSigning, string_to_sign)) where kSigning derives from SECRET
 * through DATE8 (YYYYMMDD), REGION, SERVICE and "aws4_request". */
int api_sigv4_signature(const char *secret, const char *date8, const char *region,
			const char *service, const char *string_to_sign, char ret[65],
			struct berth_err *err);

/* Signs REQ as a client would and returns the Authorization header value.
 * REQ must already carry Host and X-Amz-Date (AMZ_DATE, YYYYMMDDTHHMMSSZ)
 * and every header in SIGNED_HEADERS. */
int api_sigv4_authorization(const struct api_sigv4_request *req, const char *access_key_id,
			    const char *secret, const char *region, const char *service,
			    const char *amz_date, const char *signed_headers, char **ret,
			    struct berth_err *err);

/* Lowercase hex SHA-256 of LEN bytes at P into out (65 bytes with NUL). */
int api_sigv4_sha256_hex(const void *p, size_t len, char out[65], struct berth_err *err);

#endif
