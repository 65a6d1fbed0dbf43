/* daemon/sched/tasksecrets and daemon/store/store_secrets: valueFrom as ECS
 * writes it, the values a task's containers get, and the host key. */
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

#include "common/fsutil.h"
#include "daemon/sched/tasksecrets.h"
#include "daemon/store/store_secrets.h"

#define ARN_SM "arn:aws:secretsmanager:us-east-1:000000000000:secret:"

static void parse_forms(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		enum tasksecret_kind kind;
		const char *id, *key, *stage, *version;
	} ok[] = {
		{ "/app/db", TASKSECRET_NAME, "/app/db", NULL, NULL, NULL },
		{ "arn:aws:ssm:us-east-1:000000000000:parameter/app/db", TASKSECRET_SSM, "/app/db",
		  NULL, NULL, NULL },
		{ ARN_SM "n-AbCdEf", TASKSECRET_SM, ARN_SM "n-AbCdEf", NULL, NULL, NULL },
		{ ARN_SM "n:k::", TASKSECRET_SM, ARN_SM "n", "k", NULL, NULL },
		{ ARN_SM "n::AWSPREVIOUS:", TASKSECRET_SM, ARN_SM "n", NULL, "AWSPREVIOUS", NULL },
		{ ARN_SM "n:k:S:v1", TASKSECRET_SM, ARN_SM "n", "k", "S", "v1" },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct tasksecret_ref r;
		struct berth_err err = { 0 };
		assert_int_equal(tasksecret_parse(ok[i].in, &r, &err), 0);
		assert_int_equal(r.kind, ok[i].kind);
		assert_string_equal(r.id, ok[i].id);
		assert_true(ok[i].key ? r.json_key && !strcmp(r.json_key, ok[i].key) : !r.json_key);
		assert_true(ok[i].stage ? r.stage && !strcmp(r.stage, ok[i].stage) : !r.stage);
		assert_true(ok[i].version ? r.version_id && !strcmp(r.version_id, ok[i].version)
					  : !r.version_id);
		tasksecret_ref_done(&r);
	}
	static const char *const bad[] = {
		"", "arn:aws:ssm", "arn:aws:s3:::bucket/key", "arn:aws:ssm:r:a:document/x",
		"arn:aws:ssm:r:a:parameter/", ARN_SM, ARN_SM "n:k:s:v:extra",
		"arn:aws:secretsmanager:r:a:other:n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tasksecret_ref r;
		struct berth_err err = { 0 };
		assert_int_equal(tasksecret_parse(bad[i], &r, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "valueFrom"));
		assert_null(r.id);
	}
}

struct fixture {
	char dir[64], db[96], key[96];
	struct store *s;
	struct store_key *k;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	strcpy(f->dir, "/tmp/berth-test-secrets-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/berth.db", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/%s", f->dir, STORE_KEY_FILE);
	struct berth_err err = { 0 };
	assert_int_equal(store_open(f->db, &f->s, &err), 0);
	assert_int_equal(store_key_open(f->s, f->key, &f->k, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	store_key_free(f->k);
	store_close(f->s);
	struct berth_err err = { 0 };
	berth_rm_rf_at(AT_FDCWD, f->dir, &err);
	free(f);
	return 0;
}

static const char *env_of(const cJSON *all, int ctr, const char *name)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetArrayItem(all, ctr))
		if (!strcmp(cJSON_GetObjectItem(e, "name")->valuestring, name))
			return cJSON_GetObjectItem(e, "value")->valuestring;
	return NULL;
}

static cJSON *resolve(struct fixture *f, const char *td_json, int want, struct berth_err *err)
{
	cJSON *td = cJSON_Parse(td_json);
	assert_non_null(td);
	cJSON *out = NULL;
	assert_int_equal(tasksecrets_resolve(f->s, f->k, "us-east-1", "000000000000", 1000, td, &out,
					     err), want);
	cJSON_Delete(td);
	return out;
}

static void resolve_values(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	int64_t v;
	struct store_param_put p = { .name = "/db", .value = "pw1", .type = "SecureString",
				     .now_ms = 1 };
	assert_int_equal(store_param_put(f->s, f->k, &p, &v, &err), 0);
	p.value = "pw2";
	p.overwrite = true;
	assert_int_equal(store_param_put(f->s, f->k, &p, &v, &err), 0);
	assert_int_equal(v, 2);
	const char *json = "{\"k\":\"inner\",\"n\":5}";
	struct store_secret_create sc = {
		.name = "s", .arn = ARN_SM "s-AbCdEf", .version_id = "v1", .data =
		(const unsigned char *)json, .len = strlen(json), .now_ms = 1,
	};
	assert_int_equal(store_secret_create(f->s, f->k, &sc, &err), 0);

	cJSON *out = resolve(f, "{\"containerDefinitions\":[{\"name\":\"a\"},{\"name\":\"b\","
			     "\"secrets\":[{\"name\":\"P\",\"valueFrom\":\"/db\"},"
			     "{\"name\":\"K\",\"valueFrom\":\"" ARN_SM "s:k::\"},"
			     "{\"name\":\"N\",\"valueFrom\":\"" ARN_SM "s-AbCdEf:n::\"},"
			     "{\"name\":\"W\",\"valueFrom\":\"s\"}]}]}", 0, &err);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(out, 0)), 0);
	assert_string_equal(env_of(out, 1, "P"), "pw2");
	assert_string_equal(env_of(out, 1, "K"), "inner");
	assert_string_equal(env_of(out, 1, "N"), "5");
	assert_string_equal(env_of(out, 1, "W"), json);
	tasksecrets_free(out);

	/* Other region's ARN, a missing key: ECS's reasons. */
	assert_null(resolve(f, "{\"containerDefinitions\":[{\"secrets\":[{\"name\":\"P\","
			    "\"valueFrom\":\"arn:aws:ssm:eu-west-1:000000000000:parameter/db\"}]}]}",
			    -ENOENT, &err));
	assert_non_null(strstr(err.msg, "unable to retrieve secrets from ssm: invalid parameters"));
	assert_null(resolve(f, "{\"containerDefinitions\":[{\"secrets\":[{\"name\":\"P\","
			    "\"valueFrom\":\"" ARN_SM "s:nokey::\"}]}]}", -ENOENT, &err));
	assert_non_null(strstr(err.msg, "did not contain json key nokey"));
	/* No secrets at all: nothing resolved, no key needed. */
	assert_null(resolve(f, "{\"containerDefinitions\":[{\"name\":\"a\"}]}", 0, &err));
}

static void key_refusals(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	int64_t v;
	struct store_param_put p = { .name = "x", .value = "v", .type = "String", .now_ms = 1 };
	assert_int_equal(store_param_put(f->s, f->k, &p, &v, &err), 0);
	struct store_key *k2 = NULL;
	/* The same file opens again. */
	assert_int_equal(store_key_open(f->s, f->key, &k2, &err), 0);
	store_key_free(k2);
	k2 = NULL;
	assert_int_equal(chmod(f->key, 0640), 0);
	assert_int_equal(store_key_open(f->s, f->key, &k2, &err), -EPERM);
	assert_non_null(strstr(err.msg, "mode 0640"));
	assert_int_equal(unlink(f->key), 0);
	assert_int_equal(store_key_open(f->s, f->key, &k2, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "restore the key file"));
	/* A symlink to a good key is refused, not followed. */
	assert_int_equal(symlink("/dev/null", f->key), 0);
	assert_int_equal(store_key_open(f->s, f->key, &k2, &err), -ELOOP);
	assert_null(k2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_forms),
		cmocka_unit_test_setup_teardown(resolve_values, setup, teardown),
		cmocka_unit_test_setup_teardown(key_refusals, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
