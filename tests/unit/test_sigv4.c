/* daemon/sigv4 and daemon/credentials.
 *
 * Vectors: the public AWS SigV4 test suite (aws-sig-v4-test-suite, as
 * shipped in awslabs/aws-c-auth tests/aws-signing-test-suite/v4/<case>/
 * header-signed-request.txt: the request and AWS's published
 * Authorization).  The canonical requests and strings to sign are the
 * suite's; each was checked offline with Python's hashlib/hmac to produce
 * exactly the published signature, so a byte of difference would show.
 * Credentials AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY,
 * 20150830T123600Z, us-east-1, service "service".
 *
 * Verification cases use requests signed by Debian's python3-botocore
 * 1.29.27 (botocore.auth.SigV4Auth, clock pinned to 20261201T172604Z),
 * so they check the daemon against the real client, not against itself. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "daemon/server/credentials.h"
#include "daemon/server/sigv4.h"

#define MAX_HDRS 12

struct hdr {
	const char *name, *value;
};

struct vector {
	const char *name, *method, *target;
	struct hdr headers[MAX_HDRS];
	const char *body, *authorization, *creq, *sts;
};

#include "tests/unit/sigv4/vectors.h"

/* A request built from a table of headers plus an optional Authorization. */
struct req {
	struct api_http_header h[MAX_HDRS + 2];
	struct api_sigv4_request r;
};

static void req_init(struct req *q, const char *method, const char *target, const struct hdr *hs,
		     const char *body, const char *authorization)
{
	memset(q, 0, sizeof(*q));
	size_t n = 0;
	for (size_t i = 0; i < MAX_HDRS && hs[i].name; i++)
		q->h[n++] = (struct api_http_header) { hs[i].name, strlen(hs[i].name), hs[i].value, strlen(hs[i].value) };
	if (authorization)
		q->h[n++] = (struct api_http_header) { "Authorization", 13, authorization, strlen(authorization) };
	q->r = (struct api_sigv4_request) {
		.method = method, .target = target, .headers = q->h, .n_headers = n,
		.body = body, .body_len = strlen(body),
	};
}

static struct api_credentials *creds_of(const char *text)
{
	struct api_credentials *c = NULL;
	struct berth_err err = { 0 };
	int r = api_credentials_parse("test", text, strlen(text), &c, &err);
	if (r < 0)
		fail_msg("credentials: %s", err.msg);
	return c;
}

static const char EXAMPLE_CREDS[] =
	"[default]\n"
	"aws_access_key_id = AKIDEXAMPLE\n"
	"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n";
static const char EXAMPLE_TOKEN_CREDS[] =
	"[default]\n"
	"aws_access_key_id = AKIDEXAMPLE\n"
	"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n"
	"aws_session_token = 6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267\n";
#define VECTOR_NOW 1440938160 /* 20150830T123600Z */

static void test_vectors(void **state)
{
	(void)state;
	_cleanup_(api_credentials_freep) struct api_credentials *plain = creds_of(EXAMPLE_CREDS);
	_cleanup_(api_credentials_freep) struct api_credentials *tok = creds_of(EXAMPLE_TOKEN_CREDS);
	for (size_t i = 0; i < ARRAY_SIZE(vectors); i++) {
		const struct vector *v = &vectors[i];
		struct berth_err err = { 0 };
		struct req q;
		req_init(&q, v->method, v->target, v->headers, v->body, NULL);
		const char *sh = strstr(v->authorization, "SignedHeaders=") + 14;
		_cleanup_free_ char *shl = strndup(sh, (size_t)(strchr(sh, ',') - sh));

		_cleanup_free_ char *creq = NULL, *sts = NULL, *authz = NULL;
		assert_int_equal(api_sigv4_canonical_request(&q.r, shl, NULL, &creq, &err), 0);
		if (strcmp(creq, v->creq) != 0)
			fail_msg("%s: canonical request\n--- got\n%s\n--- want\n%s", v->name, creq, v->creq);
		assert_int_equal(api_sigv4_string_to_sign("20150830T123600Z", "20150830/us-east-1/service/aws4_request",
							  creq, &sts, &err), 0);
		if (strcmp(sts, v->sts) != 0)
			fail_msg("%s: string to sign\n--- got\n%s\n--- want\n%s", v->name, sts, v->sts);
		assert_int_equal(api_sigv4_authorization(&q.r, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
							 "us-east-1", "service", "20150830T123600Z", shl, &authz, &err), 0);
		if (strcmp(authz, v->authorization) != 0)
			fail_msg("%s: authorization\n--- got\n%s\n--- want\n%s", v->name, authz, v->authorization);

		/* And the verifier accepts the published request as-is. */
		req_init(&q, v->method, v->target, v->headers, v->body, v->authorization);
		struct api_sigv4_result res;
		bool has_token = strstr(shl, "x-amz-security-token") != NULL;
		assert_int_equal(api_sigv4_verify(&q.r, has_token ? tok : plain, "us-east-1", "service",
						  VECTOR_NOW, &res, &err), 0);
		if (!res.ok)
			fail_msg("%s: verify: %s: %s", v->name, res.error_type, res.message);
		assert_string_equal(res.access_key_id, "AKIDEXAMPLE");
		assert_string_equal(res.canonical_request, v->creq);
		assert_string_equal(res.string_to_sign, v->sts);
		api_sigv4_result_done(&res);
	}
}

static void test_signing_key_chain(void **state)
{
	(void)state;
	/* AWS's documented example (IAM guide, "derive a signing key"):
	 * the get-vanilla string to sign through the whole key chain. */
	char sig[65];
	struct berth_err err = { 0 };
	assert_int_equal(api_sigv4_signature("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1",
					     "service", vectors[0].sts, sig, &err), 0);
	assert_string_equal(sig, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
	char h[65];
	assert_int_equal(api_sigv4_sha256_hex("", 0, h, &err), 0);
	assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* ---- verification against botocore-signed requests ---- */

#define NOW 1796145964 /* 20261201T172604Z, botocore's pinned clock */

static const char BOTO_CREDS[] =
	"# berth test keys\n"
	"[default]\n"
	"aws_access_key_id = AKIDBERTHTEST0000001\n"
	"aws_secret_access_key = berth/secret+key/0123456789abcdefghijABCD\n"
	"\n"
	"[temp]\n"
	"aws_access_key_id = ASIABERTHTEMP0000002\n"
	"aws_secret_access_key = temp/secret/key\n"
	"aws_session_token = FQoGZXIvYXdzEBERTHSESSIONTOKEN==\n";

#define CT { "Content-Type", "application/x-amz-json-1.1" }
#define LIST { "X-Amz-Target", "AmazonEC2ContainerServiceV20141113.ListClusters" }
#define DATE { "X-Amz-Date", "20261201T172604Z" }
#define HOST { "Host", "127.0.0.1:8080" }
#define LEN2 { "Content-Length", "2" }

static const char LIST_AUTHZ[] =
	"AWS4-HMAC-SHA256 Credential=AKIDBERTHTEST0000001/20261201/us-east-1/ecs/aws4_request, "
	"SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
	"Signature=694a205e20ffe000d73e43a243fc8e1c10698263d86fdac0366175f8e7cb574d";
static const struct hdr LIST_HDRS[] = { HOST, CT, LIST, DATE, LEN2, { 0 } };

struct outcome {
	int rc;
	struct api_sigv4_result res;
};

static struct outcome verify_with(const char *creds_text, const char *target, const struct hdr *hs,
				  const char *body, const char *authz, const char *region,
				  const char *service, time_t now)
{
	_cleanup_(api_credentials_freep) struct api_credentials *c = creds_of(creds_text);
	struct req q;
	req_init(&q, "POST", target, hs, body, authz);
	struct outcome o;
	struct berth_err err = { 0 };
	o.rc = api_sigv4_verify(&q.r, c, region, service, now, &o.res, &err);
	o.res.credential = NULL; /* dangles once c is freed */
	api_sigv4_result_done(&o.res);
	return o;
}

static struct outcome verify_list(const struct hdr *hs, const char *body, const char *authz, time_t now)
{
	return verify_with(BOTO_CREDS, "/", hs, body, authz, "us-east-1", "ecs", now);
}

#define assert_denied(o, type, msg) do { \
		assert_int_equal((o).rc, 0); \
		assert_false((o).res.ok); \
		assert_string_equal((o).res.error_type, (type)); \
		assert_string_equal((o).res.message, (msg)); \
		assert_int_equal((o).res.http_status, 403); \
	} while (0)

static const char MISMATCH[] =
	"The request signature we calculated does not match the signature you provided. "
	"Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
static const char BAD_TOKEN[] = "The security token included in the request is invalid.";

static void test_botocore_requests_verify(void **state)
{
	(void)state;
	_cleanup_(api_credentials_freep) struct api_credentials *c = creds_of(BOTO_CREDS);
	struct berth_err err = { 0 };
	struct api_sigv4_result res;
	struct req q;

	req_init(&q, "POST", "/", LIST_HDRS, "{}", LIST_AUTHZ);
	assert_int_equal(api_sigv4_verify(&q.r, c, "us-east-1", "ecs", NOW, &res, &err), 0);
	assert_true(res.ok);
	assert_null(res.error_type);
	assert_string_equal(res.access_key_id, "AKIDBERTHTEST0000001");
	assert_non_null(res.credential);
	assert_string_equal(res.credential->profile, "default");
	api_sigv4_result_done(&res);

	static const struct hdr run[] = {
		HOST, CT, { "X-Amz-Target", "AmazonEC2ContainerServiceV20141113.RunTask" }, DATE,
		{ "Content-Length", "61" }, { 0 },
	};
	req_init(&q, "POST", "/", run, "{\"cluster\": \"default\", \"taskDefinition\": \"web:1\", \"count\": 2}",
		 "AWS4-HMAC-SHA256 Credential=AKIDBERTHTEST0000001/20261201/us-east-1/ecs/aws4_request, "
		 "SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
		 "Signature=3e9cbdc4e7df8690940187530a345502b45da794640c60bbba85442fbe2b1c6b");
	assert_int_equal(api_sigv4_verify(&q.r, c, "us-east-1", "ecs", NOW, &res, &err), 0);
	assert_true(res.ok);
	api_sigv4_result_done(&res);

	static const struct hdr tok[] = {
		HOST, CT, LIST, DATE, { "X-Amz-Security-Token", "FQoGZXIvYXdzEBERTHSESSIONTOKEN==" }, LEN2, { 0 },
	};
	req_init(&q, "POST", "/", tok, "{}",
		 "AWS4-HMAC-SHA256 Credential=ASIABERTHTEMP0000002/20261201/us-east-1/ecs/aws4_request, "
		 "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, "
		 "Signature=4f90c74e40ed308fc4602cbc51187ce79427ed6242e030968fbd69c5275945fc");
	assert_int_equal(api_sigv4_verify(&q.r, c, "us-east-1", "ecs", NOW, &res, &err), 0);
	assert_true(res.ok);
	assert_string_equal(res.credential->profile, "temp");
	api_sigv4_result_done(&res);

	/* A path and query: botocore encodes the path once more ("%20" is
	 * signed as "%2520"), removes dot segments and empty segments, and
	 * sorts the query by name, then value. */
	static const struct hdr pq[] = { { "Host", "localhost:8080" }, CT, LIST, DATE, LEN2, { 0 } };
	req_init(&q, "POST", "/a%20b/./c//d/?b=2&a=x%20y&a=1", pq, "{}",
		 "AWS4-HMAC-SHA256 Credential=AKIDBERTHTEST0000001/20261201/us-east-1/ecs/aws4_request, "
		 "SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
		 "Signature=dcecc2c276c35e40e34a658fe52b3ae8efb20f0668285d43e57d499f039d1e84");
	assert_int_equal(api_sigv4_verify(&q.r, c, "us-east-1", "ecs", NOW, &res, &err), 0);
	assert_true(res.ok);
	assert_string_equal(res.canonical_request,
			    "POST\n/a%2520b/c/d/\na=1&a=x%20y&b=2\n"
			    "content-type:application/x-amz-json-1.1\nhost:localhost:8080\n"
			    "x-amz-date:20261201T172604Z\n"
			    "x-amz-target:AmazonEC2ContainerServiceV20141113.ListClusters\n\n"
			    "content-type;host;x-amz-date;x-amz-target\n"
			    "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
	api_sigv4_result_done(&res);

	/* Headers outside SignedHeaders may change: proxies rewrite them. */
	static const struct hdr extra[] = { HOST, CT, LIST, DATE, { "Content-Length", "999" },
					    { "User-Agent", "aws-cli/2" }, { 0 } };
	req_init(&q, "POST", "/", extra, "{}", LIST_AUTHZ);
	assert_int_equal(api_sigv4_verify(&q.r, c, "us-east-1", "ecs", NOW, &res, &err), 0);
	assert_true(res.ok);
	api_sigv4_result_done(&res);
}

static void test_wrong_secret_and_unknown_key(void **state)
{
	(void)state;
	struct outcome o = verify_with("[default]\naws_access_key_id = AKIDBERTHTEST0000001\n"
				       "aws_secret_access_key = not-the-secret\n",
				       "/", LIST_HDRS, "{}", LIST_AUTHZ, "us-east-1", "ecs", NOW);
	assert_denied(o, API_SIGV4_INVALID, MISMATCH);
	assert_string_equal(o.res.access_key_id, "AKIDBERTHTEST0000001");

	o = verify_with("[default]\naws_access_key_id = AKIDSOMEONEELSE\naws_secret_access_key = x\n",
			"/", LIST_HDRS, "{}", LIST_AUTHZ, "us-east-1", "ecs", NOW);
	assert_denied(o, API_SIGV4_UNRECOGNIZED, BAD_TOKEN);
}

static void test_clock_window(void **state)
{
	(void)state;
	assert_true(verify_list(LIST_HDRS, "{}", LIST_AUTHZ, NOW + 300).res.ok);
	assert_true(verify_list(LIST_HDRS, "{}", LIST_AUTHZ, NOW - 300).res.ok);
	struct outcome o = verify_list(LIST_HDRS, "{}", LIST_AUTHZ, NOW + 360);
	assert_denied(o, API_SIGV4_INVALID,
		      "Signature expired: 20261201T172604Z is now earlier than 20261201T172704Z "
		      "(20261201T173204Z - 5 min.)");
	o = verify_list(LIST_HDRS, "{}", LIST_AUTHZ, NOW - 360);
	assert_denied(o, API_SIGV4_INVALID,
		      "Signature not yet current: 20261201T172604Z is still later than 20261201T172504Z "
		      "(20261201T172004Z + 5 min.)");
}

static void test_wrong_scope(void **state)
{
	(void)state;
	struct outcome o = verify_with(BOTO_CREDS, "/", LIST_HDRS, "{}", LIST_AUTHZ, "eu-west-1", "ecs", NOW);
	assert_denied(o, API_SIGV4_INVALID, "Credential should be scoped to a valid region, not 'us-east-1'.");

	/* Signed for another service (the same key, as a confused client would). */
	struct req q;
	req_init(&q, "POST", "/", LIST_HDRS, "{}", NULL);
	_cleanup_free_ char *authz = NULL;
	struct berth_err err = { 0 };
	assert_int_equal(api_sigv4_authorization(&q.r, "AKIDBERTHTEST0000001", "berth/secret+key/0123456789abcdefghijABCD",
						 "us-east-1", "ecr", "20261201T172604Z",
						 "content-type;host;x-amz-date;x-amz-target", &authz, &err), 0);
	o = verify_list(LIST_HDRS, "{}", authz, NOW);
	assert_denied(o, API_SIGV4_INVALID, "Credential should be scoped to correct service: 'ecs'.");

	/* Every scope problem at once, in AWS's order. */
	o = verify_list(LIST_HDRS, "{}",
			"AWS4-HMAC-SHA256 Credential=AKIDBERTHTEST0000001/20261130/mars-1/s3/aws5_request, "
			"SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=00", NOW);
	assert_denied(o, API_SIGV4_INVALID,
		      "Credential should be scoped to a valid region, not 'mars-1'. "
		      "Credential should be scoped to correct service: 'ecs'. "
		      "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'. "
		      "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
		      "'20261130' != '20261201', from '20261201T172604Z'.");
}

static void test_tampering(void **state)
{
	(void)state;
	struct outcome o = verify_list(LIST_HDRS, "{ }", LIST_AUTHZ, NOW);
	assert_denied(o, API_SIGV4_INVALID, MISMATCH);

	static const struct hdr other_op[] = {
		HOST, CT, { "X-Amz-Target", "AmazonEC2ContainerServiceV20141113.DeleteCluster" }, DATE, LEN2, { 0 },
	};
	o = verify_list(other_op, "{}", LIST_AUTHZ, NOW);
	assert_denied(o, API_SIGV4_INVALID, MISMATCH);

	static const struct hdr other_host[] = { { "Host", "evil.example:8080" }, CT, LIST, DATE, LEN2, { 0 } };
	o = verify_list(other_host, "{}", LIST_AUTHZ, NOW);
	assert_denied(o, API_SIGV4_INVALID, MISMATCH);

	/* A signed header that the request does not carry. */
	static const struct hdr no_target[] = { HOST, CT, DATE, LEN2, { 0 } };
	o = verify_list(no_target, "{}", LIST_AUTHZ, NOW);
	assert_denied(o, API_SIGV4_INVALID, "Signed header 'x-amz-target' is not present in the request.");

	/* The signature's hex is compared exactly. */
	_cleanup_free_ char *upper = strdup(LIST_AUTHZ);
	for (char *p = strstr(upper, "Signature=") + 10; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 32);
	o = verify_list(LIST_HDRS, "{}", upper, NOW);
	assert_denied(o, API_SIGV4_INVALID, MISMATCH);

	/* A body hash header must be the body's hash. */
	static const struct hdr unsigned_payload[] = { HOST, CT, LIST, DATE, LEN2,
						       { "X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD" }, { 0 } };
	o = verify_list(unsigned_payload, "{}", LIST_AUTHZ, NOW);
	assert_denied(o, API_SIGV4_INVALID,
		      "The provided 'x-amz-content-sha256' header does not match what was computed.");
}

static void test_session_token(void **state)
{
	(void)state;
	/* The temp key signed correctly but without its token. */
	static const struct hdr h[] = { HOST, CT, LIST, DATE, { 0 } };
	struct req q;
	req_init(&q, "POST", "/", h, "{}", NULL);
	_cleanup_free_ char *authz = NULL;
	struct berth_err err = { 0 };
	assert_int_equal(api_sigv4_authorization(&q.r, "ASIABERTHTEMP0000002", "temp/secret/key", "us-east-1", "ecs",
						 "20261201T172604Z", "content-type;host;x-amz-date;x-amz-target",
						 &authz, &err), 0);
	struct outcome o = verify_list(h, "{}", authz, NOW);
	assert_denied(o, API_SIGV4_UNRECOGNIZED, BAD_TOKEN);

	/* A long-term key sent with a token it was never issued. */
	static const struct hdr ht[] = { HOST, CT, LIST, DATE, { "X-Amz-Security-Token", "forged" }, { 0 } };
	req_init(&q, "POST", "/", ht, "{}", NULL);
	free(authz);
	authz = NULL;
	assert_int_equal(api_sigv4_authorization(&q.r, "AKIDBERTHTEST0000001", "berth/secret+key/0123456789abcdefghijABCD",
						 "us-east-1", "ecs", "20261201T172604Z",
						 "content-type;host;x-amz-date;x-amz-security-token;x-amz-target",
						 &authz, &err), 0);
	o = verify_list(ht, "{}", authz, NOW);
	assert_denied(o, API_SIGV4_UNRECOGNIZED, BAD_TOKEN);
}

#define SCOPE "Credential=AKIDBERTHTEST0000001/20261201/us-east-1/ecs/aws4_request"
#define SIGNED "SignedHeaders=content-type;host;x-amz-date;x-amz-target"
#define SIG "Signature=694a205e20ffe000d73e43a243fc8e1c10698263d86fdac0366175f8e7cb574d"

static void test_malformed_authorization(void **state)
{
	(void)state;
	struct outcome o = verify_list(LIST_HDRS, "{}", NULL, NOW);
	assert_denied(o, API_SIGV4_MISSING_TOKEN, "Request is missing Authentication Token");
	o = verify_list(LIST_HDRS, "{}", "Bearer abc", NOW);
	assert_denied(o, API_SIGV4_MISSING_TOKEN, "Request is missing Authentication Token");
	o = verify_list(LIST_HDRS, "{}", "AWS4", NOW);
	assert_denied(o, API_SIGV4_MISSING_TOKEN, "Request is missing Authentication Token");

	o = verify_list(LIST_HDRS, "{}", "AWS4-", NOW);
	assert_denied(o, API_SIGV4_INCOMPLETE,
		      "Authorization header requires 'Credential' parameter. "
		      "Authorization header requires 'Signature' parameter. "
		      "Authorization header requires 'SignedHeaders' parameter. Authorization=AWS4-");

	o = verify_list(LIST_HDRS, "{}", "AWS4-HMAC-SHA256 " SIGNED ", " SIG, NOW);
	assert_denied(o, API_SIGV4_INCOMPLETE,
		      "Authorization header requires 'Credential' parameter. "
		      "Authorization=AWS4-HMAC-SHA256 " SIGNED ", " SIG);

	o = verify_list(LIST_HDRS, "{}", "AWS4-HMAC-SHA256 " SCOPE ", " SIGNED ", Signature=", NOW);
	assert_denied(o, API_SIGV4_INCOMPLETE,
		      "Authorization header requires 'Signature' parameter. "
		      "Authorization=AWS4-HMAC-SHA256 " SCOPE ", " SIGNED ", Signature=");

	o = verify_list(LIST_HDRS, "{}", "AWS4-HMAC-SHA512 " SCOPE ", " SIGNED ", " SIG, NOW);
	assert_denied(o, API_SIGV4_INCOMPLETE,
		      "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512' (only AWS4-HMAC-SHA256 for now).");

	o = verify_list(LIST_HDRS, "{}", "AWS4-HMAC-SHA256 " SCOPE ", " SIGNED ", Signature", NOW);
	assert_denied(o, API_SIGV4_INCOMPLETE,
		      "'Signature' not a valid key=value pair (missing equal-sign) in Authorization header: "
		      "'AWS4-HMAC-SHA256 " SCOPE ", " SIGNED ", Signature'");

	o = verify_list(LIST_HDRS, "{}",
			"AWS4-HMAC-SHA256 Credential=AKIDBERTHTEST0000001/20261201/us-east-1/ecs, " SIGNED ", " SIG, NOW);
	assert_denied(o, API_SIGV4_INCOMPLETE,
		      "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
		      "got 'AKIDBERTHTEST0000001/20261201/us-east-1/ecs'");
	/* Trailing slashes are ignored, as on AWS. */
	o = verify_list(LIST_HDRS, "{}", "AWS4-HMAC-SHA256 " SCOPE "//, " SIGNED ", " SIG, NOW);
	assert_true(o.res.ok);

	o = verify_list(LIST_HDRS, "{}",
			"AWS4-HMAC-SHA256 " SCOPE ", SignedHeaders=content-type;host;host;x-amz-date;x-amz-target, " SIG,
			NOW);
	assert_denied(o, API_SIGV4_INCOMPLETE, "SignedHeaders lists 'host' more than once.");

	o = verify_list(LIST_HDRS, "{}",
			"AWS4-HMAC-SHA256 " SCOPE ", SignedHeaders=content-type;x-amz-date;x-amz-target, " SIG, NOW);
	assert_denied(o, API_SIGV4_INVALID,
		      "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");

	o = verify_list(LIST_HDRS, "{}",
			"AWS4-HMAC-SHA256 " SCOPE ", SignedHeaders=content-type;host;x-amz-target, " SIG, NOW);
	assert_denied(o, API_SIGV4_INVALID, "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.");
}

/* What is parsed before the key lookup is bounded: a huge SignedHeaders
 * list is refused after 64 entries (it used to cost seconds: a quadratic
 * duplicate check), and so is an Authorization header over 8 KiB. */
static void test_pre_auth_bounds(void **state)
{
	(void)state;
	struct buf_s { char *p; size_t n; } b = { 0 };
	FILE *f = open_memstream(&b.p, &b.n);
	assert_non_null(f);
	fputs("AWS4-HMAC-SHA256 " SCOPE ", SignedHeaders=content-type;host;x-amz-date;x-amz-target", f);
	for (int i = 0; i < 100000; i++)
		fprintf(f, ";x-h%d", i);
	fputs(", " SIG, f);
	fclose(f);
	struct outcome o = verify_list(LIST_HDRS, "{}", b.p, NOW);
	assert_denied(o, API_SIGV4_INCOMPLETE, "The Authorization header is longer than 8192 bytes.");
	free(b.p);

	/* 65 entries fit in 8 KiB but not in the list's cap; 64 are fine up
	 * to the signature (the extra names are absent from the request). */
	char authz[4096];
	int n = snprintf(authz, sizeof(authz), "AWS4-HMAC-SHA256 " SCOPE ", SignedHeaders=content-type;host;x-amz-date;x-amz-target");
	for (int i = 0; i < 60; i++)
		n += snprintf(authz + n, sizeof(authz) - (size_t)n, ";x-%02d", i);
	snprintf(authz + n, sizeof(authz) - (size_t)n, ", " SIG);
	o = verify_list(LIST_HDRS, "{}", authz, NOW);
	assert_denied(o, API_SIGV4_INVALID, "Signed header 'x-00' is not present in the request.");
	n += snprintf(authz + n, sizeof(authz) - (size_t)n, ";x-99, " SIG);
	o = verify_list(LIST_HDRS, "{}", authz, NOW);
	assert_denied(o, API_SIGV4_INCOMPLETE, "SignedHeaders lists more than 64 headers.");

	/* Duplicates are found whatever their distance and case. */
	o = verify_list(LIST_HDRS, "{}",
			"AWS4-HMAC-SHA256 " SCOPE ", SignedHeaders=X-Amz-Target;content-type;host;x-amz-date;x-amz-target, " SIG,
			NOW);
	assert_denied(o, API_SIGV4_INCOMPLETE, "SignedHeaders lists 'x-amz-target' more than once.");
}

/* A request that names its operation must sign it: otherwise a captured
 * ListClusters could be replayed as DeleteCluster. */
static void test_target_must_be_signed(void **state)
{
	(void)state;
	struct req q;
	req_init(&q, "POST", "/", LIST_HDRS, "{}", NULL);
	_cleanup_free_ char *authz = NULL;
	struct berth_err err = { 0 };
	assert_int_equal(api_sigv4_authorization(&q.r, "AKIDBERTHTEST0000001", "berth/secret+key/0123456789abcdefghijABCD",
						 "us-east-1", "ecs", "20261201T172604Z",
						 "content-type;host;x-amz-date", &authz, &err), 0);
	struct outcome o = verify_list(LIST_HDRS, "{}", authz, NOW);
	assert_denied(o, API_SIGV4_INVALID, "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization.");
}

static void test_date_header(void **state)
{
	(void)state;
	static const struct hdr none[] = { HOST, CT, LIST, LEN2, { 0 } };
	struct outcome o = verify_list(none, "{}", LIST_AUTHZ, NOW);
	assert_denied(o, API_SIGV4_INCOMPLETE,
		      "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
		      "Authorization=" "AWS4-HMAC-SHA256 " SCOPE ", " SIGNED ", " SIG);

	static const struct hdr iso_ext[] = { HOST, CT, LIST, { "X-Amz-Date", "2026-12-01T17:26:04Z" }, { 0 } };
	o = verify_list(iso_ext, "{}", LIST_AUTHZ, NOW);
	assert_denied(o, API_SIGV4_INCOMPLETE,
		      "Date must be in ISO-8601 'basic format'. Got '2026-12-01T17:26:04Z'. "
		      "See http://en.wikipedia.org/wiki/ISO_8601");

	static const struct hdr feb30[] = { HOST, CT, LIST, { "X-Amz-Date", "20260230T172604Z" }, { 0 } };
	o = verify_list(feb30, "{}", LIST_AUTHZ, NOW);
	assert_string_equal(o.res.error_type, API_SIGV4_INCOMPLETE);

	/* "Date" stands in for X-Amz-Date when that is absent. */
	static const struct hdr d[] = { HOST, CT, LIST, { "Date", "20261201T172604Z" }, { 0 } };
	struct req q;
	req_init(&q, "POST", "/", d, "{}", NULL);
	_cleanup_free_ char *authz = NULL;
	struct berth_err err = { 0 };
	assert_int_equal(api_sigv4_authorization(&q.r, "AKIDBERTHTEST0000001", "berth/secret+key/0123456789abcdefghijABCD",
						 "us-east-1", "ecs", "20261201T172604Z",
						 "content-type;date;host;x-amz-target", &authz, &err), 0);
	o = verify_list(d, "{}", authz, NOW);
	assert_true(o.res.ok);
}

static void test_canonical_details(void **state)
{
	(void)state;
	static const struct hdr h[] = { { "Host", "h" }, { "X-Amz-Date", "20150830T123600Z" },
					{ "X-A", "\t a \t\r\n b  " }, { "x-a", "" }, { 0 } };
	struct req q;
	/* Query escapes are normalised (%7e ~ %7E), '+' and a lone '%' are
	 * literal, names without '=' get an empty value, empty pairs vanish. */
	req_init(&q, "GET", "/%7e/..?z&%7e=1&a=%2b+&&b=%zz", h, "", NULL);
	_cleanup_free_ char *creq = NULL;
	struct berth_err err = { 0 };
	assert_int_equal(api_sigv4_canonical_request(&q.r, "host;x-a;x-amz-date", NULL, &creq, &err), 0);
	assert_string_equal(creq,
			    "GET\n/\na=%2B%2B&b=%25zz&z=&~=1\n"
			    "host:h\nx-a:a b,\nx-amz-date:20150830T123600Z\n\n"
			    "host;x-a;x-amz-date\n"
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	free(creq);
	creq = NULL;
	req_init(&q, "GET", "", h, "", NULL);
	assert_int_equal(api_sigv4_canonical_request(&q.r, "host", "UNSIGNED-PAYLOAD", &creq, &err), 0);
	assert_string_equal(creq, "GET\n/\n\nhost:h\n\nhost\nUNSIGNED-PAYLOAD");
	free(creq);
	creq = NULL;
	assert_int_equal(api_sigv4_canonical_request(&q.r, "host;nope", NULL, &creq, &err), -ENOENT);
	assert_null(creq);
	assert_string_equal(err.msg, "Signed header 'nope' is not present in the request.");
}

/* ---- credentials ---- */

static int parse_err(const char *text, struct berth_err *err)
{
	struct api_credentials *c = NULL;
	int r = api_credentials_parse("creds", text, strlen(text), &c, err);
	api_credentials_free(c);
	return r;
}

static void test_credentials_profiles(void **state)
{
	(void)state;
	static const char text[] =
		"\xef\xbb\xbf# written by aws configure\r\n"
		"[default]\r\n"
		"aws_access_key_id=AKIDDEFAULT\r\n"
		"aws_secret_access_key   =   s3cr3t/default+key  \r\n"
		"; a comment\r\n"
		"\r\n"
		"[ prod ]\n"
		"region = eu-west-1\n"
		"s3 =\n"
		"    max_concurrent_requests = 20\n"
		"AWS_ACCESS_KEY_ID: AKIDPROD\n"
		"aws_secret_access_key = prodsecret\n"
		"aws_session_token = tok==\n"
		"[profile ci]\n"
		"aws_access_key_id = AKIDCI\n"
		"aws_secret_access_key = cisecret\n"
		"[region-only]\n"
		"region = us-east-1";
	_cleanup_(api_credentials_freep) struct api_credentials *c = NULL;
	struct berth_err err = { 0 };
	assert_int_equal(api_credentials_parse("creds", text, strlen(text), &c, &err), 0);
	assert_int_equal(api_credentials_count(c), 3);
	const struct api_credential *d = api_credentials_find(c, "AKIDDEFAULT", 11);
	assert_non_null(d);
	assert_string_equal(d->profile, "default");
	assert_string_equal(d->secret_access_key, "s3cr3t/default+key");
	assert_null(d->session_token);
	assert_int_equal(d->line, 2);
	const struct api_credential *p = api_credentials_find(c, "AKIDPROD", 8);
	assert_string_equal(p->profile, "prod");
	assert_string_equal(p->secret_access_key, "prodsecret");
	assert_string_equal(p->session_token, "tok==");
	assert_string_equal(api_credentials_find(c, "AKIDCI", 6)->profile, "ci");
	assert_null(api_credentials_find(c, "AKIDC", 5));
	assert_null(api_credentials_find(c, "AKIDCIX", 7));
	assert_ptr_equal(api_credentials_get(c, 0), d);
	assert_null(api_credentials_get(c, 3));
}

static void test_credentials_errors(void **state)
{
	(void)state;
	static const struct {
		const char *text, *msg;
	} cases[] = {
		{ "[default]\naws_access_key_id = AKID1\n\n[other]\n",
		  "credentials creds: line 2: profile 'default': aws_access_key_id AKID1 has no aws_secret_access_key" },
		{ "[a]\n# c\naws_secret_access_key = x\n",
		  "credentials creds: line 3: profile 'a' has aws_secret_access_key but no aws_access_key_id" },
		{ "aws_access_key_id = AKID1\n",
		  "credentials creds: line 1: setting outside of a [profile] section" },
		{ "[a]\r\naws_access_key_id AKID1\r\n",
		  "credentials creds: line 2: expected 'name = value', '[profile]' or a comment" },
		{ "[a]\naws_access_key_id = A\naws_secret_access_key = x\n[b]\n[a]\n",
		  "credentials creds: line 5: profile 'a' is already defined at line 1" },
		{ "[a]\naws_access_key_id = A\naws_access_key_id = B\n",
		  "credentials creds: line 3: profile 'a': aws_access_key_id is already set at line 2" },
		{ "[a]\naws_access_key_id = A\naws_secret_access_key = x\n[b]\naws_access_key_id = A\naws_secret_access_key = y\n",
		  "credentials creds: line 5: profile 'b': access key id A is already defined by profile 'a' (line 1)" },
		{ "[a]\naws_access_key_id =\n",
		  "credentials creds: line 2: profile 'a': aws_access_key_id is empty" },
		{ "[a]\naws_secret_access_key = two words\n",
		  "credentials creds: line 2: profile 'a': aws_secret_access_key contains whitespace or a control character" },
		{ "[a\n", "credentials creds: line 1: section header without ']'" },
		{ "[]\n", "credentials creds: line 1: empty section name" },
		{ "# nothing\n[a]\nregion = x\n",
		  "credentials creds: no profile with aws_access_key_id and aws_secret_access_key" },
		{ "[a]\naws_access_key_id = A\n  aws_secret_access_key = x\n",
		  "credentials creds: line 3: indented line continues the previous setting; remove the leading whitespace" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct berth_err err = { 0 };
		assert_true(parse_err(cases[i].text, &err) < 0);
		if (strcmp(err.msg, cases[i].msg) != 0)
			fail_msg("case %zu:\n got  %s\n want %s", i, err.msg, cases[i].msg);
	}
	struct berth_err err = { 0 };
	struct api_credentials *c = NULL;
	assert_int_equal(api_credentials_parse("creds", "[a]\0x", 5, &c, &err), -EINVAL);
	assert_string_equal(err.msg, "credentials creds: contains a NUL byte; not a text file");
	assert_null(c);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_credentials_file_checks(void **state)
{
	(void)state;
	char dir[] = "/tmp/berth-sigv4-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64], want[256];
	snprintf(path, sizeof(path), "%s/credentials", dir);
	struct berth_err err = { 0 };
	struct api_credentials *c = NULL;

	write_file(path, BOTO_CREDS, 0600);
	assert_int_equal(api_credentials_load(path, &c, &err), 0);
	assert_int_equal(api_credentials_count(c), 2);
	api_credentials_free(c);
	c = NULL;
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(api_credentials_load(path, &c, &err), 0);
	api_credentials_free(c);
	c = NULL;

	static const struct {
		mode_t mode;
		const char *what;
	} bad[] = { { 0644, "0644 is readable by others" }, { 0640, "0640 is readable by others" },
		    { 0604, "0604 is readable by others" }, { 0620, "0620 is writable by others" },
		    { 0602, "0602 is writable by others" } };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(chmod(path, bad[i].mode), 0);
		assert_int_equal(api_credentials_load(path, &c, &err), -EPERM);
		snprintf(want, sizeof(want), "credentials %s: mode %s; chmod 600 %s", path, bad[i].what, path);
		assert_string_equal(err.msg, want);
		assert_null(c);
	}

	if (geteuid() == 0) {
		assert_int_equal(chmod(path, 0600), 0);
		assert_int_equal(chown(path, 4242, 0), 0);
		assert_int_equal(api_credentials_load(path, &c, &err), -EPERM);
		snprintf(want, sizeof(want), "credentials %s: owned by uid 4242, not by root or uid 0; chown it", path);
		assert_string_equal(err.msg, want);
	}

	write_file(path, "[a]\naws_access_key_id = A\n", 0600);
	assert_int_equal(api_credentials_load(path, &c, &err), -EINVAL);
	snprintf(want, sizeof(want),
		 "credentials %s: line 2: profile 'a': aws_access_key_id A has no aws_secret_access_key", path);
	assert_string_equal(err.msg, want);

	assert_int_equal(api_credentials_load(dir, &c, &err), -EINVAL);
	snprintf(want, sizeof(want), "credentials %s: not a regular file", dir);
	assert_string_equal(err.msg, want);

	unlink(path);
	assert_int_equal(api_credentials_load(path, &c, &err), -ENOENT);
	snprintf(want, sizeof(want), "credentials %s: No such file or directory", path);
	assert_string_equal(err.msg, want);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_signing_key_chain),
		cmocka_unit_test(test_canonical_details),
		cmocka_unit_test(test_botocore_requests_verify),
		cmocka_unit_test(test_wrong_secret_and_unknown_key),
		cmocka_unit_test(test_clock_window),
		cmocka_unit_test(test_wrong_scope),
		cmocka_unit_test(test_tampering),
		cmocka_unit_test(test_session_token),
		cmocka_unit_test(test_malformed_authorization),
		cmocka_unit_test(test_date_header),
		cmocka_unit_test(test_pre_auth_bounds),
		cmocka_unit_test(test_target_must_be_signed),
		cmocka_unit_test(test_credentials_profiles),
		cmocka_unit_test(test_credentials_errors),
		cmocka_unit_test(test_credentials_file_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
