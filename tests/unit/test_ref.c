/* Image references (Docker's normalisation rules) and content digests:
 * a table of references, valid and invalid, each checked field by field,
 * formatted, re-parsed, and asked for its registry host and loopbackness;
 * then img_digest_valid / img_digest_check / img_chain_id against vectors
 * computed with sha256sum. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "images/digest.h"
#include "images/ref.h"

/* printf 'layer-a' | sha256sum, and so on. */
#define HEX_A "589f0d58b9053a4ff7329b8fdb4f9dd120e29354c086ad0b3b10733f6cfd6de3"
#define DIG_A "sha256:" HEX_A
#define DIG_B "sha256:55fea2a37a9fc5963f1beccd0d162b856e6bd05ca07cdd3726847846ab740f0d"
#define DIG_C "sha256:e6c65c655ca8172ab7a2b634dab3220a45472dd6571b6efd956ccc05e229a201"
/* printf '%s' "$DIG_A $DIG_B" | sha256sum */
#define CHAIN_AB "sha256:267c5fd16af60e52927fabf0a36a31f3b5a2069347f7f00c7bd7f93f6ebc01f4"
/* printf '%s' "$CHAIN_AB $DIG_C" | sha256sum */
#define CHAIN_ABC "sha256:82c0ed5f6c15be9b9180a8c04b9f2c676d74af6db13c711f5bb47a0fa43b56df"
#define HEX_A_UPPER "589F0D58B9053A4FF7329B8FDB4F9DD120E29354C086AD0B3B10733F6CFD6DE3"

#define T16 "abcdefghijklmnop"
#define T128 T16 T16 T16 T16 T16 T16 T16 T16

#define HUB "registry-1.docker.io"

struct ref_case {
	const char *in;
	/* Valid references: the parsed fields and what derives from them. */
	const char *domain, *path, *tag, *digest;
	const char *text; /* img_ref_format() */
	const char *host; /* img_ref_registry_host() */
	bool loopback;
	/* Invalid references: a substring of the error message. */
	const char *error;
};

#define OK(in, dom, path, tag, dig, text, host, lo) { in, dom, path, tag, dig, text, host, lo, NULL }
#define BAD(in, error) { in, NULL, NULL, NULL, NULL, NULL, NULL, false, error }

static const struct ref_case cases[] = {
	/* Docker Hub normalisation. */
	OK("busybox", "docker.io", "library/busybox", "latest", "",
	   "docker.io/library/busybox:latest", HUB, false),
	OK("busybox:1.36", "docker.io", "library/busybox", "1.36", "",
	   "docker.io/library/busybox:1.36", HUB, false),
	OK("docker.io/busybox", "docker.io", "library/busybox", "latest", "",
	   "docker.io/library/busybox:latest", HUB, false),
	OK("docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", "",
	   "docker.io/library/busybox:latest", HUB, false),
	OK("index.docker.io/library/x", "docker.io", "library/x", "latest", "",
	   "docker.io/library/x:latest", HUB, false),
	OK("index.docker.io/x:1", "docker.io", "library/x", "1", "",
	   "docker.io/library/x:1", HUB, false),
	OK("user/app", "docker.io", "user/app", "latest", "",
	   "docker.io/user/app:latest", HUB, false),
	OK("localhostx/app", "docker.io", "localhostx/app", "latest", "",
	   "docker.io/localhostx/app:latest", HUB, false),
	/* Without a '/', "localhost:5000" is the image localhost, tag 5000. */
	OK("localhost:5000", "docker.io", "library/localhost", "5000", "",
	   "docker.io/library/localhost:5000", HUB, false),
	/* Registries, loopback or not. */
	OK("localhost/app", "localhost", "app", "latest", "",
	   "localhost/app:latest", "localhost", true),
	OK("localhost:5000/app:v1", "localhost:5000", "app", "v1", "",
	   "localhost:5000/app:v1", "localhost:5000", true),
	OK("127.0.0.1:5000/app", "127.0.0.1:5000", "app", "latest", "",
	   "127.0.0.1:5000/app:latest", "127.0.0.1:5000", true),
	OK("127.1.2.3/app", "127.1.2.3", "app", "latest", "",
	   "127.1.2.3/app:latest", "127.1.2.3", true),
	OK("10.0.0.1/app", "10.0.0.1", "app", "latest", "",
	   "10.0.0.1/app:latest", "10.0.0.1", false),
	OK("127.0.0.1.nip.io/app", "127.0.0.1.nip.io", "app", "latest", "",
	   "127.0.0.1.nip.io/app:latest", "127.0.0.1.nip.io", false),
	OK("[::1]:5000/app:1", "[::1]:5000", "app", "1", "",
	   "[::1]:5000/app:1", "[::1]:5000", true),
	OK("[::1]/app", "[::1]", "app", "latest", "", "[::1]/app:latest", "[::1]", true),
	OK("[2001:db8::1]:5000/app", "[2001:db8::1]:5000", "app", "latest", "",
	   "[2001:db8::1]:5000/app:latest", "[2001:db8::1]:5000", false),
	OK("Registry.Example.COM:443/app", "Registry.Example.COM:443", "app", "latest", "",
	   "Registry.Example.COM:443/app:latest", "Registry.Example.COM:443", false),
	OK("my-registry.local:5000/team/app:1.0", "my-registry.local:5000", "team/app", "1.0", "",
	   "my-registry.local:5000/team/app:1.0", "my-registry.local:5000", false),
	/* Paths and tags. */
	OK("ghcr.io/a/b/c/d:tag", "ghcr.io", "a/b/c/d", "tag", "",
	   "ghcr.io/a/b/c/d:tag", "ghcr.io", false),
	OK("quay.io/a.b/c__d/e-f/g--h_i", "quay.io", "a.b/c__d/e-f/g--h_i", "latest", "",
	   "quay.io/a.b/c__d/e-f/g--h_i:latest", "quay.io", false),
	OK("app:B_9.-x", "docker.io", "library/app", "B_9.-x", "",
	   "docker.io/library/app:B_9.-x", HUB, false),
	OK("app:_tag", "docker.io", "library/app", "_tag", "",
	   "docker.io/library/app:_tag", HUB, false),
	/* 65 characters of hex are a name, 64 an image id (below). */
	OK("a" HEX_A, "docker.io", "library/a" HEX_A, "latest", "",
	   "docker.io/library/a" HEX_A ":latest", HUB, false),
	OK("busybox:" T128, "docker.io", "library/busybox", T128, "",
	   "docker.io/library/busybox:" T128, HUB, false),
	/* Digests: the tag is "" when only a digest is given. */
	OK("host.io/app@" DIG_A, "host.io", "app", "", DIG_A,
	   "host.io/app@" DIG_A, "host.io", false),
	OK("host.io/app:tag@" DIG_A, "host.io", "app", "tag", DIG_A,
	   "host.io/app:tag@" DIG_A, "host.io", false),
	OK("busybox@" DIG_A, "docker.io", "library/busybox", "", DIG_A,
	   "docker.io/library/busybox@" DIG_A, HUB, false),
	OK("127.0.0.1:5000/app:latest@" DIG_B, "127.0.0.1:5000", "app", "latest", DIG_B,
	   "127.0.0.1:5000/app:latest@" DIG_B, "127.0.0.1:5000", true),

	/* Invalid: names. */
	BAD("", "repository name must have at least one component"),
	BAD("@", "repository name must have at least one component"),
	BAD(":tag", "repository name must have at least one component"),
	BAD("@" DIG_A, "repository name must have at least one component"),
	BAD("Busybox", "repository name must be lowercase"),
	BAD("user/App:1", "repository name must be lowercase"),
	BAD("localhost:5000/App", "repository name must be lowercase"),
	BAD("a//b", "empty repository path component"),
	BAD("/a", "empty repository path component"),
	BAD("a/", "empty repository path component"),
	BAD("docker.io/", "repository name must have at least one component"),
	BAD("localhost:5000/", "repository name must have at least one component"),
	BAD("a..b", "invalid repository path component \"a..b\""),
	BAD("a___b", "invalid repository path component"),
	BAD("-a", "invalid repository path component \"-a\""),
	BAD("a-", "invalid repository path component"),
	BAD("_a", "invalid repository path component"),
	BAD("a/b./c", "invalid repository path component \"b.\""),
	BAD(" busybox", "invalid repository path component \" busybox\""),
	BAD("busybox ", "invalid repository path component"),
	BAD("busy box", "invalid repository path component"),
	BAD("a:b:c", "invalid repository path component \"a:b\""),
	BAD(HEX_A, "cannot specify 64-byte hexadecimal strings"),
	/* Invalid: registries. */
	BAD(":5000/app", "invalid registry host \":5000\""),
	BAD("ex_ample.com/app", "invalid registry host \"ex_ample.com\""),
	BAD("-host.com/app", "invalid registry host"),
	BAD("host..com/app", "invalid registry host"),
	BAD("localhost:abc/app", "invalid registry host \"localhost:abc\""),
	BAD("host:/app", "invalid registry host \"host:\""),
	BAD("[]:5000/app", "invalid registry host \"[]:5000\""),
	BAD("[::1/app", "invalid registry host"),
	BAD("[::g]/app", "invalid registry host"),
	BAD("[::1]x/app", "invalid registry host"),
	BAD("[::1]:5000", "invalid repository path component \"[::1]\""),
	/* Invalid: tags. */
	BAD("busybox:", "empty tag"),
	BAD("localhost:5000/app:", "empty tag"),
	BAD("busybox:" T128 "a", "tag must not be more than 128 characters"),
	BAD("busybox:-tag", "invalid tag \"-tag\""),
	BAD("busybox:.tag", "invalid tag"),
	BAD("busybox:la test", "invalid tag \"la test\""),
	/* The ':' before the last '/' makes "busybox:tag" a host[:port]. */
	BAD("busybox:tag/x", "invalid registry host \"busybox:tag\""),
	/* Invalid: digests. */
	BAD("busybox@", "empty digest"),
	BAD("busybox:1@", "empty digest"),
	BAD("busybox@sha256:abc", "invalid digest: want sha256:<64 lowercase hex>"),
	BAD("busybox@sha256:" HEX_A "0", "invalid digest"),
	BAD("busybox@sha256:" HEX_A_UPPER, "invalid digest"),
	BAD("busybox@sha512:" HEX_A HEX_A, "unsupported digest algorithm \"sha512\""),
	BAD("busybox@" HEX_A, "invalid digest"),
	BAD("busybox@" DIG_A "@x", "invalid digest"),
	BAD("a@b@c", "invalid digest"),
	BAD("busybox@ " DIG_A, "invalid digest"),
};

static void check_case(const struct ref_case *c)
{
	struct img_ref r, again;
	struct berth_err e = { 0 };
	char text[IMG_REF_STR_MAX];

	memset(&r, 0x5a, sizeof(r));
	int ret = img_ref_parse(c->in, &r, &e);
	if (c->error) {
		if (ret != -EINVAL)
			fail_msg("\"%s\": parsed (%d), want error \"%s\"", c->in, ret, c->error);
		if (!strstr(e.msg, c->error))
			fail_msg("\"%s\": error \"%s\", want \"%s\"", c->in, e.msg, c->error);
		assert_int_equal(e.code, EINVAL);
		assert_non_null(strstr(e.msg, "invalid reference \""));
		/* Output is written only on success. */
		for (size_t i = 0; i < sizeof(r); i++)
			assert_int_equal(((unsigned char *)&r)[i], 0x5a);
		return;
	}
	if (ret != 0)
		fail_msg("\"%s\": %s", c->in, e.msg);
	assert_string_equal(r.domain, c->domain);
	assert_string_equal(r.path, c->path);
	assert_string_equal(r.tag, c->tag);
	assert_string_equal(r.digest, c->digest);
	img_ref_format(&r, text);
	assert_string_equal(text, c->text);
	assert_string_equal(img_ref_registry_host(&r), c->host);
	if (img_ref_is_loopback(&r) != c->loopback)
		fail_msg("\"%s\": loopback %d, want %d", c->in, !c->loopback, c->loopback);
	assert_string_equal(img_ref_reference(&r), c->digest[0] ? c->digest : c->tag);

	/* Canonical text parses back to the same reference. */
	if (img_ref_parse(text, &again, &e) != 0)
		fail_msg("\"%s\" (from \"%s\"): %s", text, c->in, e.msg);
	assert_string_equal(again.domain, r.domain);
	assert_string_equal(again.path, r.path);
	assert_string_equal(again.tag, r.tag);
	assert_string_equal(again.digest, r.digest);
}

static void test_ref_table(void **state)
{
	(void)state;
	size_t valid = 0;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		check_case(&cases[i]);
		valid += !cases[i].error;
	}
	/* The table keeps both halves well stocked. */
	assert_true(valid >= 20);
	assert_true(ARRAY_SIZE(cases) - valid >= 30);
}

static void test_ref_error_text(void **state)
{
	(void)state;
	struct img_ref r;
	struct berth_err e = { 0 };

	assert_int_equal(img_ref_parse("Foo", &r, &e), -EINVAL);
	assert_string_equal(e.msg, "invalid reference \"Foo\": repository name must be lowercase");

	/* Control bytes are not copied into the message. */
	assert_int_equal(img_ref_parse("busy\nbox\x1b[2J", &r, &e), -EINVAL);
	assert_null(strchr(e.msg, '\n'));
	assert_null(strchr(e.msg, '\x1b'));
	assert_non_null(strstr(e.msg, "\"busy?box?[2J\""));

	/* A huge reference is quoted only in part. */
	size_t n = 100000;
	_cleanup_free_ char *huge = malloc(n + 1);
	assert_non_null(huge);
	memset(huge, 'A', n);
	huge[n] = '\0';
	assert_int_equal(img_ref_parse(huge, &r, &e), -EINVAL);
	assert_true(strlen(e.msg) < 400);
	assert_non_null(strstr(e.msg, "AAA...\""));

	/* A NULL err is allowed (cli/images.c probes with one), as is NULL s. */
	assert_int_equal(img_ref_parse("Foo", &r, NULL), -EINVAL);
	assert_int_equal(img_ref_parse(NULL, &r, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "at least one component"));
}

static void test_ref_name_length(void **state)
{
	(void)state;
	struct img_ref r;
	struct berth_err e = { 0 };
	char buf[600], text[IMG_REF_STR_MAX];

	/* "x.io/" + 250 = 255 characters: the longest name. */
	snprintf(buf, sizeof(buf), "x.io/%0250d", 0);
	assert_int_equal(img_ref_parse(buf, &r, &e), 0);
	assert_int_equal(strlen(r.path), 250);
	snprintf(buf, sizeof(buf), "x.io/%0251d", 0);
	assert_int_equal(img_ref_parse(buf, &r, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "repository name must not be more than 255 characters"));

	/* The limit applies to the normalised name: docker.io/library/ + 237. */
	snprintf(buf, sizeof(buf), "%0237d", 0);
	assert_int_equal(img_ref_parse(buf, &r, &e), 0);
	assert_string_equal(r.domain, "docker.io");
	snprintf(buf, sizeof(buf), "%0238d", 0);
	assert_int_equal(img_ref_parse(buf, &r, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "255 characters"));

	/* A long domain, many components, the longest tag and a digest all
	 * fit the formatting buffer. */
	snprintf(buf, sizeof(buf), "%0200d.io:65535/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v:"
		 T128 "@" DIG_A, 0);
	assert_int_equal(img_ref_parse(buf, &r, &e), 0);
	img_ref_format(&r, text);
	assert_string_equal(text, buf);

	/* Long domains are refused, not truncated. */
	snprintf(buf, sizeof(buf), "%0300d.io/app", 0);
	assert_int_equal(img_ref_parse(buf, &r, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "255 characters"));
}

static void test_ref_format_built(void **state)
{
	(void)state;
	/* A struct built by hand, as the registry tests do. */
	struct img_ref r = { 0 };
	char text[IMG_REF_STR_MAX];
	strcpy(r.domain, "127.0.0.1:5000");
	strcpy(r.path, "app");
	strcpy(r.tag, "1");
	img_ref_format(&r, text);
	assert_string_equal(text, "127.0.0.1:5000/app:1");
	assert_string_equal(img_ref_reference(&r), "1");
	strcpy(r.digest, DIG_A);
	assert_string_equal(img_ref_reference(&r), DIG_A);
	r.tag[0] = '\0';
	img_ref_format(&r, text);
	assert_string_equal(text, "127.0.0.1:5000/app@" DIG_A);

	/* Loopback is decided on the host, whatever the port or case. */
	const struct { const char *domain; bool loopback; } hosts[] = {
		{ "localhost", true },       { "LOCALHOST:5000", true },
		{ "127.0.0.1", true },       { "127.255.255.254:1", true },
		{ "[::1]", true },           { "[::1]:5000", true },
		{ "[0:0:0:0:0:0:0:1]", true }, { "[::ffff:127.0.0.1]:80", true },
		{ "128.0.0.1", false },      { "[::2]", false },
		{ "127.0.0", false },        { "localhost.example.com", false },
		{ "docker.io", false },      { "[::1", false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(hosts); i++) {
		strcpy(r.domain, hosts[i].domain);
		if (img_ref_is_loopback(&r) != hosts[i].loopback)
			fail_msg("%s: loopback %d", hosts[i].domain, !hosts[i].loopback);
	}
}

/* ---- digests ---------------------------------------------------------- */

static void test_digest_valid(void **state)
{
	(void)state;
	assert_true(img_digest_valid(DIG_A));
	assert_false(img_digest_valid(NULL));
	assert_false(img_digest_valid(""));
	assert_false(img_digest_valid("sha256:"));
	assert_false(img_digest_valid(HEX_A));
	assert_false(img_digest_valid("sha256:" HEX_A_UPPER));
	assert_false(img_digest_valid(DIG_A "0"));
	assert_false(img_digest_valid("sha512:" HEX_A HEX_A));
	assert_false(img_digest_valid("SHA256:" HEX_A));
	assert_false(img_digest_valid("sha256:../../../../etc/passwd"));
	/* One short. */
	char d[SHA256_DIGEST_STRLEN];
	snprintf(d, sizeof(d), "%s", DIG_A);
	d[SHA256_DIGEST_STRLEN - 2] = '\0';
	assert_false(img_digest_valid(d));
}

static void test_digest_check(void **state)
{
	(void)state;
	struct berth_err e = { 0 };
	assert_int_equal(img_digest_check(DIG_A, "blob", &e), 0);
	assert_int_equal(img_digest_check("sha256:AB", "blob", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "invalid blob \"sha256:AB\""));
	assert_non_null(strstr(e.msg, "sha256:<64 lowercase hex>"));
	assert_int_equal(img_digest_check(NULL, "layer", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "invalid layer \"\""));
	assert_int_equal(img_digest_check("x", "layer", NULL), -EINVAL);

	/* A huge value is quoted only in part. */
	char big[4096];
	memset(big, 'f', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(img_digest_check(big, "blob", &e), -EINVAL);
	assert_true(strlen(e.msg) < 200);
}

static void test_chain_id(void **state)
{
	(void)state;
	char a[SHA256_DIGEST_STRLEN], ab[SHA256_DIGEST_STRLEN], abc[SHA256_DIGEST_STRLEN];

	/* The bottom layer's chain id is its diff id. */
	assert_int_equal(img_chain_id(NULL, DIG_A, a), 0);
	assert_string_equal(a, DIG_A);
	/* sha256("<a> <b>"), as sha256sum computes it. */
	assert_int_equal(img_chain_id(a, DIG_B, ab), 0);
	assert_string_equal(ab, CHAIN_AB);
	assert_int_equal(img_chain_id(ab, DIG_C, abc), 0);
	assert_string_equal(abc, CHAIN_ABC);
	assert_true(img_digest_valid(abc));

	/* In place, as a running chain id is computed. */
	char run[SHA256_DIGEST_STRLEN];
	assert_int_equal(img_chain_id(NULL, DIG_A, run), 0);
	assert_int_equal(img_chain_id(run, DIG_B, run), 0);
	assert_int_equal(img_chain_id(run, DIG_C, run), 0);
	assert_string_equal(run, CHAIN_ABC);

	/* Order matters. */
	assert_int_equal(img_chain_id(DIG_B, DIG_A, ab), 0);
	assert_string_not_equal(ab, CHAIN_AB);

	/* Short or overlong input is never read or written out of bounds. */
	assert_int_equal(img_chain_id(NULL, "sha256:ab", a), 0);
	assert_string_equal(a, "sha256:ab");
	char longer[300];
	memset(longer, 'a', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	assert_int_equal(img_chain_id(NULL, longer, a), 0);
	assert_int_equal(strlen(a), SHA256_DIGEST_STRLEN - 1);
	assert_int_equal(img_chain_id(longer, longer, a), 0);
	assert_true(img_digest_valid(a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ref_table),
		cmocka_unit_test(test_ref_error_text),
		cmocka_unit_test(test_ref_name_length),
		cmocka_unit_test(test_ref_format_built),
		cmocka_unit_test(test_digest_valid),
		cmocka_unit_test(test_digest_check),
		cmocka_unit_test(test_chain_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
