/* Registry client: WWW-Authenticate parsing, docker config.json lookup,
 * auth file handling in img_registry_open, and the unreachable error.
 * The HTTP flows are exercised against real registries by the
 * integration tests. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "images/registry.h"

/* ---- challenges ----------------------------------------------------- */

static void parse_ok(const char *h, const char *scheme, const char *realm, const char *service,
		     const char *scope)
{
	struct img_challenge c = { 0 };
	struct berth_err e = { 0 };
	int r = img_challenge_parse(h, &c, &e);
	if (r != 0)
		fail_msg("\"%s\": %s", h, e.msg);
	assert_string_equal(c.scheme, scheme);
	if (realm)
		assert_string_equal(c.realm, realm);
	else
		assert_null(c.realm);
	if (service)
		assert_string_equal(c.service, service);
	else
		assert_null(c.service);
	if (scope)
		assert_string_equal(c.scope, scope);
	else
		assert_null(c.scope);
	img_challenge_done(&c);
}

static void test_challenge_docker_hub(void **state)
{
	(void)state;
	parse_ok("Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
		 "scope=\"repository:library/busybox:pull\"",
		 "Bearer", "https://auth.docker.io/token", "registry.docker.io",
		 "repository:library/busybox:pull");
	/* The /v2/ ping challenge carries no scope. */
	parse_ok("Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\"",
		 "Bearer", "https://auth.docker.io/token", "registry.docker.io", NULL);
}

static void test_challenge_ghcr(void **state)
{
	(void)state;
	parse_ok("Bearer realm=\"https://ghcr.io/token\",service=\"ghcr.io\","
		 "scope=\"repository:user/image:pull\"",
		 "Bearer", "https://ghcr.io/token", "ghcr.io", "repository:user/image:pull");
}

static void test_challenge_ecr_basic(void **state)
{
	(void)state;
	parse_ok("Basic realm=\"https://123456789012.dkr.ecr.us-east-1.amazonaws.com/\","
		 "service=\"ecr.amazonaws.com\"",
		 "Basic", "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/", "ecr.amazonaws.com",
		 NULL);
	/* distribution's htpasswd: realm only. */
	parse_ok("Basic realm=\"Registry Realm\"", "Basic", "Registry Realm", NULL, NULL);
	parse_ok("Basic", "Basic", NULL, NULL, NULL);
}

static void test_challenge_quoted_comma_and_escapes(void **state)
{
	(void)state;
	parse_ok("Bearer realm=\"https://a/token\",scope=\"repository:a/b:pull,push\",service=\"s\"",
		 "Bearer", "https://a/token", "s", "repository:a/b:pull,push");
	parse_ok("Bearer realm=\"https://a/t?x=\\\"q\\\"\",service=\"back\\\\slash\"", "Bearer",
		 "https://a/t?x=\"q\"", "back\\slash", NULL);
	parse_ok("Bearer realm=\"\\h\\t\\t\\p://x\"", "Bearer", "http://x", NULL, NULL);
}

static void test_challenge_case_insensitive(void **state)
{
	(void)state;
	parse_ok("bearer Realm=\"https://a/token\",SERVICE=\"reg\",Scope=\"x\"", "Bearer",
		 "https://a/token", "reg", "x");
	parse_ok("BASIC REALM=\"r\"", "Basic", "r", NULL, NULL);
	parse_ok("bAsIc realm=r", "Basic", "r", NULL, NULL);
}

static void test_challenge_missing_params(void **state)
{
	(void)state;
	parse_ok("Bearer realm=\"https://a/token\"", "Bearer", "https://a/token", NULL, NULL);
	parse_ok("Bearer service=\"s\",realm=\"https://a/token\"", "Bearer", "https://a/token", "s",
		 NULL);
}

static void test_challenge_whitespace_and_bare_values(void **state)
{
	(void)state;
	parse_ok("  Bearer   realm = \"https://a/token\" ,\tservice= \"s\" , scope =\"x\"  ",
		 "Bearer", "https://a/token", "s", "x");
	parse_ok("Bearer realm=https://a/token,service=reg", "Bearer", "https://a/token", "reg",
		 NULL);
	parse_ok("Bearer realm=\"\",service=s,realm=\"https://last/wins\"", "Bearer",
		 "https://last/wins", "s", NULL);
}

static void test_challenge_unknown_params_and_multiple(void **state)
{
	(void)state;
	parse_ok("Bearer realm=\"https://a/token\",service=\"s\",scope=\"repository:x:pull\","
		 "error=\"insufficient_scope\",error_description=\"need, more\"",
		 "Bearer", "https://a/token", "s", "repository:x:pull");
	/* Two challenges in one header: the first is used. */
	parse_ok("Bearer realm=\"https://a/token\",service=\"s\", Basic realm=\"b\"", "Bearer",
		 "https://a/token", "s", NULL);
	parse_ok("Basic realm=\"b\", Bearer realm=\"https://a/token\"", "Basic", "b", NULL, NULL);
}

static void parse_bad(const char *h, const char *msg_part)
{
	struct img_challenge c = { 0 };
	struct berth_err e = { 0 };
	int r = img_challenge_parse(h, &c, &e);
	if (r != -EPROTO)
		fail_msg("\"%s\": expected -EPROTO, got %d (%s)", h, r, e.msg);
	assert_null(c.realm);
	assert_null(c.service);
	if (!strstr(e.msg, msg_part))
		fail_msg("\"%s\": message \"%s\" lacks \"%s\"", h, e.msg, msg_part);
	assert_non_null(strstr(e.msg, "WWW-Authenticate"));
}

static void test_challenge_garbage(void **state)
{
	(void)state;
	parse_bad("", "no authentication scheme");
	parse_bad("   ", "no authentication scheme");
	parse_bad("=====", "no authentication scheme");
	parse_bad("\"Bearer\" realm=x", "no authentication scheme");
	parse_bad("Negotiate abc", "unsupported authentication scheme \"Negotiate\"");
	parse_bad("Bearerrealm=\"x\"", "unsupported authentication scheme");
	parse_bad("Bearer,realm=\"x\"", "after the scheme");
	parse_bad("Bearer realm=\"https://a/token", "unterminated");
	parse_bad("Bearer realm=\"https://a/token\\", "unterminated");
	parse_bad("Bearer realm=\"a\" service=\"b\"", "expected ','");
	parse_bad("Bearer realm", "has no value");
	parse_bad("Bearer realm=", "empty parameter value");
	parse_bad("Bearer realm=,service=s", "empty parameter value");
	parse_bad("Bearer realm=\"a\x01\"", "control character");
	parse_bad("Bearer realm=\"https://a\",,", "expected a parameter name");
	parse_bad("Bearer service=\"s\"", "without realm");
	parse_bad("Bearer realm=\"\"", "without realm");
	parse_bad("Bearer", "without realm");
}

static void test_challenge_long_value(void **state)
{
	(void)state;
	size_t n = 10000;
	_cleanup_free_ char *h = malloc(n + 32);
	assert_non_null(h);
	strcpy(h, "Bearer realm=\"");
	memset(h + strlen(h), 'a', n);
	strcpy(h + 14 + n, "\"");
	parse_bad(h, "too long");
}

/* ---- config.json lookup -------------------------------------------- */

static void lookup_ok(const char *json, const char *host, const char *user, const char *pass)
{
	char *u = (char *)1, *p = (char *)1;
	struct berth_err e = { 0 };
	int r = img_auth_lookup(json, host, &u, &p, &e);
	if (r != 0)
		fail_msg("%s in %s: %s", host, json, e.msg);
	if (user) {
		assert_non_null(u);
		assert_string_equal(u, user);
		assert_string_equal(p, pass);
	} else {
		assert_null(u);
		assert_null(p);
	}
	free(u);
	free(p);
}

static void lookup_bad(const char *json, const char *host, const char *msg_part)
{
	char *u = NULL, *p = NULL;
	struct berth_err e = { 0 };
	int r = img_auth_lookup(json, host, &u, &p, &e);
	if (r != -EINVAL)
		fail_msg("%s in %s: expected -EINVAL, got %d", host, json, r);
	assert_null(u);
	assert_null(p);
	if (!strstr(e.msg, msg_part))
		fail_msg("message \"%s\" lacks \"%s\"", e.msg, msg_part);
}

/* base64("user:pass") */
#define B64_USER_PASS "dXNlcjpwYXNz"

static void test_auth_host_port(void **state)
{
	(void)state;
	const char *j = "{\"auths\":{\"127.0.0.1:5000\":{\"auth\":\"" B64_USER_PASS "\"},"
			"\"127.0.0.1:5001\":{\"auth\":\"b3RoZXI6c2VjcmV0\"}}}";
	lookup_ok(j, "127.0.0.1:5000", "user", "pass");
	lookup_ok(j, "127.0.0.1:5001", "other", "secret");
	/* The port is part of the identity. */
	lookup_ok(j, "127.0.0.1:5002", NULL, NULL);
	lookup_ok(j, "127.0.0.1", NULL, NULL);
	/* Passwords may contain ':' (base64 of "u:p:w:d"). */
	lookup_ok("{\"auths\":{\"h:1\":{\"auth\":\"dTpwOnc6ZA==\"}}}", "h:1", "u", "p:w:d");
	/* Empty password ("u:"). */
	lookup_ok("{\"auths\":{\"h:1\":{\"auth\":\"dTo=\"}}}", "h:1", "u", "");
}

static void test_auth_scheme_keys(void **state)
{
	(void)state;
	lookup_ok("{\"auths\":{\"http://127.0.0.1:5000\":{\"auth\":\"" B64_USER_PASS "\"}}}",
		  "127.0.0.1:5000", "user", "pass");
	lookup_ok("{\"auths\":{\"https://Registry.Example.com/v2/\":{\"auth\":\"" B64_USER_PASS
		  "\"}}}", "registry.example.com", "user", "pass");
	/* An exact key beats a normalised one, wherever it is. */
	lookup_ok("{\"auths\":{\"https://h:5000\":{\"auth\":\"b3RoZXI6c2VjcmV0\"},"
		  "\"h:5000\":{\"auth\":\"" B64_USER_PASS "\"}}}", "h:5000", "user", "pass");
}

static void test_auth_docker_io_aliases(void **state)
{
	(void)state;
	static const char *const keys[] = { "https://index.docker.io/v1/", "index.docker.io",
					     "registry-1.docker.io", "docker.io",
					     "https://registry-1.docker.io" };
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		char j[256];
		snprintf(j, sizeof(j), "{\"auths\":{\"%s\":{\"auth\":\"" B64_USER_PASS "\"}}}", keys[i]);
		lookup_ok(j, "docker.io", "user", "pass");
		lookup_ok(j, "registry-1.docker.io", "user", "pass");
		lookup_ok(j, "quay.io", NULL, NULL);
	}
}

static void test_auth_username_password(void **state)
{
	(void)state;
	lookup_ok("{\"auths\":{\"h:1\":{\"username\":\"alice\",\"password\":\"s3:cr3t\"}}}", "h:1",
		  "alice", "s3:cr3t");
	/* An empty "auth" falls back to the fields. */
	lookup_ok("{\"auths\":{\"h:1\":{\"auth\":\"\",\"username\":\"bob\",\"password\":\"x\"}}}",
		  "h:1", "bob", "x");
	/* Half a pair, or only an identity token: no credentials. */
	lookup_ok("{\"auths\":{\"h:1\":{\"username\":\"alice\"}}}", "h:1", NULL, NULL);
	lookup_ok("{\"auths\":{\"h:1\":{\"identitytoken\":\"tok\"}}}", "h:1", NULL, NULL);
}

static void test_auth_malformed_base64(void **state)
{
	(void)state;
	lookup_bad("{\"auths\":{\"h:1\":{\"auth\":\"!!!!\"}}}", "h:1", "not valid base64");
	lookup_bad("{\"auths\":{\"h:1\":{\"auth\":\"dXNlcjpwYXN\"}}}", "h:1", "not valid base64");
	lookup_bad("{\"auths\":{\"h:1\":{\"auth\":\"dXNl cjpw\"}}}", "h:1", "not valid base64");
	lookup_bad("{\"auths\":{\"h:1\":{\"auth\":\"dX=lcjpw\"}}}", "h:1", "not valid base64");
	lookup_bad("{\"auths\":{\"h:1\":{\"auth\":\"====\"}}}", "h:1", "not valid base64");
	/* "userpass": no colon. */
	lookup_bad("{\"auths\":{\"h:1\":{\"auth\":\"dXNlcnBhc3M=\"}}}", "h:1", "user:password");
	/* "u\0:p": an embedded NUL. */
	lookup_bad("{\"auths\":{\"h:1\":{\"auth\":\"dQA6cA==\"}}}", "h:1", "user:password");
	lookup_bad("{\"auths\":{\"h:1\":{\"auth\":42}}}", "h:1", "not a string");
	/* The error names the entry. */
	lookup_bad("{\"auths\":{\"http://h:1\":{\"auth\":\"!!!!\"}}}", "h:1", "auths \"http://h:1\"");
}

static void test_auth_malformed_json(void **state)
{
	(void)state;
	lookup_bad("", "h:1", "invalid JSON");
	lookup_bad("{", "h:1", "invalid JSON");
	lookup_bad("[]", "h:1", "invalid JSON");
	lookup_bad("{\"auths\":[]}", "h:1", "\"auths\" is not an object");
	lookup_bad("{\"auths\":{\"h:1\":\"x\"}}", "h:1", "not an object");
}

static void test_auth_missing(void **state)
{
	(void)state;
	lookup_ok("{}", "h:1", NULL, NULL);
	lookup_ok("{\"credsStore\":\"desktop\"}", "h:1", NULL, NULL);
	lookup_ok("{\"auths\":{}}", "h:1", NULL, NULL);
	lookup_ok("{\"auths\":{\"h:1\":{}}}", "h:1", NULL, NULL);
	/* A malformed entry for another host does not matter. */
	lookup_ok("{\"auths\":{\"other:1\":{\"auth\":\"!!!!\"}}}", "h:1", NULL, NULL);
}

/* ---- img_registry_open ---------------------------------------------- */

struct tmpdir {
	char path[64];
};

static int tmp_setup(void **state)
{
	struct tmpdir *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	strcpy(t->path, "/tmp/test_registry.XXXXXX");
	if (!mkdtemp(t->path)) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int tmp_teardown(void **state)
{
	struct tmpdir *t = *state;
	berth_rm_rf_at(AT_FDCWD, t->path, NULL);
	free(t);
	unsetenv("DOCKER_CONFIG");
	return 0;
}

static void write_file(const char *dir, const char *name, const char *content)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(berth_write_atomic_at(fd, name, content, strlen(content), 0600, NULL), 0);
	close(fd);
}

static struct img_ref local_ref(const char *domain)
{
	struct img_ref ref = { 0 };
	snprintf(ref.domain, sizeof(ref.domain), "%s", domain);
	strcpy(ref.path, "app");
	strcpy(ref.tag, "1");
	return ref;
}

/* Loopback registries are used only when named as insecure. */
static const char *const local5000[] = { "127.0.0.1:5000" };
static const char *const local1[] = { "127.0.0.1:1" };

static void test_open_auth_file(void **state)
{
	struct tmpdir *t = *state;
	char file[128];
	snprintf(file, sizeof(file), "%s/auth.json", t->path);
	struct img_ref ref = local_ref("127.0.0.1:5000");
	struct img_registry *r = NULL;
	struct berth_err e = { 0 };

	write_file(t->path, "auth.json", "{\"auths\":{\"127.0.0.1:5000\":{\"auth\":\"" B64_USER_PASS "\"}}}");
	struct img_registry_opts opts = { .auth_file = file, .insecure = local5000, .n_insecure = 1 };
	assert_int_equal(img_registry_open(&ref, &opts, &r, &e), 0);
	img_registry_free(r);

	/* A malformed file is an error that names it. */
	write_file(t->path, "auth.json", "{\"auths\": ");
	r = NULL;
	assert_int_equal(img_registry_open(&ref, &opts, &r, &e), -EINVAL);
	assert_null(r);
	assert_non_null(strstr(e.msg, file));
	assert_non_null(strstr(e.msg, "invalid JSON"));

	/* So is a named file that does not exist. */
	snprintf(file, sizeof(file), "%s/missing.json", t->path);
	assert_int_equal(img_registry_open(&ref, &opts, &r, &e), -ENOENT);
	assert_non_null(strstr(e.msg, file));
	img_registry_free(NULL);
}

static void test_open_docker_config_env(void **state)
{
	struct tmpdir *t = *state;
	struct img_ref ref = local_ref("127.0.0.1:5000");
	struct img_registry *r = NULL;
	struct berth_err e = { 0 };

	struct img_registry_opts opts = { .insecure = local5000, .n_insecure = 1 };

	/* DOCKER_CONFIG without a config.json: no credentials, no error. */
	setenv("DOCKER_CONFIG", t->path, 1);
	assert_int_equal(img_registry_open(&ref, &opts, &r, &e), 0);
	img_registry_free(r);

	write_file(t->path, "config.json", "{\"auths\":{\"127.0.0.1:5000\":{\"auth\":\"@@@@\"}}}");
	assert_int_equal(img_registry_open(&ref, &opts, &r, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "config.json"));
	assert_non_null(strstr(e.msg, "base64"));
}

static void test_unreachable(void **state)
{
	(void)state;
	struct img_ref ref = local_ref("127.0.0.1:1");
	struct img_registry *r = NULL;
	struct berth_err e = { 0 };
	struct img_registry_opts opts = { .insecure = local1, .n_insecure = 1 };
	assert_int_equal(img_registry_open(&ref, &opts, &r, &e), 0);
	char *body = NULL, *ct = NULL, *dg = NULL;
	size_t len = 0;
	assert_int_equal(img_registry_get_manifest(r, "1", &body, &len, &ct, &dg, &e), -EHOSTUNREACH);
	assert_non_null(strstr(e.msg, "registry 127.0.0.1:1 unreachable: "));
	assert_null(body);
	/* Invalid digests and tags never reach a URL. */
	assert_int_equal(img_registry_get_manifest(r, "sha256:../../x", &body, &len, &ct, &dg, &e),
			 -EINVAL);
	assert_int_equal(img_registry_get_manifest(r, "a/../b", &body, &len, &ct, &dg, &e), -EINVAL);
	assert_int_equal(img_registry_get_blob(r, "sha256:AB", 0, 0, NULL, NULL, NULL, &e), -EINVAL);
	img_registry_free(r);
}

static void test_unnamed_loopback_refused(void **state)
{
	(void)state;
	static const char *const other[] = { "127.0.0.1:5000" };
	struct img_registry_opts opts = { .insecure = other, .n_insecure = 1 };
	const char *hosts[] = { "127.0.0.1:22", "localhost:5000", "127.9.9.9:5000", "[::1]:5000" };
	for (size_t i = 0; i < ARRAY_SIZE(hosts); i++) {
		struct img_ref ref = local_ref(hosts[i]);
		struct img_registry *r = NULL;
		struct berth_err e = { 0 };
		assert_int_equal(img_registry_open(&ref, &opts, &r, &e), -EPERM);
		assert_null(r);
		assert_non_null(strstr(e.msg, "--insecure-registry"));
		assert_non_null(strstr(e.msg, hosts[i]));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unnamed_loopback_refused),
		cmocka_unit_test(test_challenge_docker_hub),
		cmocka_unit_test(test_challenge_ghcr),
		cmocka_unit_test(test_challenge_ecr_basic),
		cmocka_unit_test(test_challenge_quoted_comma_and_escapes),
		cmocka_unit_test(test_challenge_case_insensitive),
		cmocka_unit_test(test_challenge_missing_params),
		cmocka_unit_test(test_challenge_whitespace_and_bare_values),
		cmocka_unit_test(test_challenge_unknown_params_and_multiple),
		cmocka_unit_test(test_challenge_garbage),
		cmocka_unit_test(test_challenge_long_value),
		cmocka_unit_test(test_auth_host_port),
		cmocka_unit_test(test_auth_scheme_keys),
		cmocka_unit_test(test_auth_docker_io_aliases),
		cmocka_unit_test(test_auth_username_password),
		cmocka_unit_test(test_auth_malformed_base64),
		cmocka_unit_test(test_auth_malformed_json),
		cmocka_unit_test(test_auth_missing),
		cmocka_unit_test_setup_teardown(test_open_auth_file, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_open_docker_config_env, tmp_setup, tmp_teardown),
		cmocka_unit_test(test_unreachable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
