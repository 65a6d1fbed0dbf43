/* daemon/sched/taskmeta: the task endpoint's host key and ids, and the
 * variables taskplan_build() sets from them. */
#include <errno.h>
#include <regex.h>
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
#include "common/json.h"
#include "daemon/sched/taskmeta.h"
#include "daemon/sched/taskplan.h"

#define TID "0123456789abcdef0123456789abcdef"
#define ROLE "arn:aws:iam::000000000000:role/app"

static struct taskmeta meta(unsigned char fill)
{
	struct taskmeta m = { .base = "http://10.9.0.1:8080" };
	memset(m.key, fill, sizeof(m.key));
	return m;
}

static bool matches(const char *s, const char *re)
{
	regex_t r;
	assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
	bool ok = regexec(&r, s, 0, NULL, 0) == 0;
	regfree(&r);
	return ok;
}

static void ids(void **state)
{
	(void)state;
	struct taskmeta a = meta(1), b = meta(2);
	char x[TASKMETA_ID_LEN + 1], y[TASKMETA_ID_LEN + 1], u[TASKMETA_UUID_LEN + 1],
	     v[TASKMETA_UUID_LEN + 1];
	taskmeta_container_id(&a, TID, "web", x);
	assert_true(matches(x, "^" TID "-[0-9a-f]{20}$"));
	taskmeta_container_id(&a, TID, "web", y);
	assert_string_equal(x, y);                       /* the same after a restart */
	taskmeta_container_id(&a, TID, "side", y);
	assert_string_not_equal(x, y);                   /* per container */
	taskmeta_container_id(&b, TID, "web", y);
	assert_string_not_equal(x, y);                   /* per key */
	taskmeta_credentials_id(&a, TID, ROLE, u);
	assert_true(matches(u, "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"));
	taskmeta_credentials_id(&a, TID, ROLE "2", v);
	assert_string_not_equal(u, v);
	/* The task id and the name are separate inputs: no "ab"+"c" = "a"+"bc". */
	taskmeta_container_id(&a, TID, "1web", x);
	taskmeta_container_id(&a, "0123456789abcdef0123456789abcdef1", "web", y);
	assert_string_not_equal(x + STORE_TASK_ID_LEN, y + STORE_TASK_ID_LEN);
}

static void key_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/berth-taskmeta-XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, TASKMETA_KEY_FILE);
	unsigned char k1[TASKMETA_KEY_LEN], k2[TASKMETA_KEY_LEN];
	struct berth_err err = { 0 };
	assert_int_equal(taskmeta_key_load(dir, k1, &err), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, TASKMETA_KEY_LEN);
	assert_int_equal(taskmeta_key_load(dir, k2, &err), 0);
	assert_memory_equal(k1, k2, sizeof(k1));         /* kept, not remade */
	chmod(path, 0644);
	assert_int_equal(taskmeta_key_load(dir, k2, &err), -EPERM);
	assert_non_null(strstr(err.msg, "readable by others"));
	chmod(path, 0600);
	truncate(path, 5);
	assert_int_equal(taskmeta_key_load(dir, k2, &err), -EINVAL);
	unlink(path);
	symlink("/etc/hostname", path);
	assert_true(taskmeta_key_load(dir, k2, &err) < 0);  /* never followed */
	unlink(path);
	rmdir(dir);
}

static const char *env_of(const cJSON *plan, int ctr, const char *name)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(plan,
		"containers"), ctr), "environment"))
		if (!strcmp(json_str(e, "name"), name))
			return json_str(e, "value");
	return NULL;
}

static cJSON *plan_of(const char *td_text, const char *ov_text, const struct taskmeta *m)
{
	static const char *const img = "{\"config\":{\"Cmd\":[\"c\"]}}";
	const struct taskplan_image im[2] = { { img, NULL, 0 }, { img, NULL, 0 } };
	struct taskplan_env env = {
		.task_id = TID, .task_dir = "/t", .run_dir = "/r", .log_dir = "/l",
		.cgroup_name = "c", .bridge = "b", .subnet = "10.9.0.0/24", .ipam_dir = "/i",
		.nft_table = "n", .meta = m,
	};
	_cleanup_(cJSON_Deletep) cJSON *td = cJSON_Parse(td_text);
	_cleanup_(cJSON_Deletep) cJSON *ov = ov_text ? cJSON_Parse(ov_text) : NULL;
	struct berth_err err = { 0 };
	cJSON *plan = NULL;
	assert_int_equal(taskplan_build(td, ov, im, &env, &plan, &err), 0);
	return plan;
}

#define TWO(task) "{\"family\":\"f\"" task ",\"containerDefinitions\":[" \
	"{\"name\":\"web\",\"image\":\"i\",\"environment\":[{\"name\":" \
	"\"ECS_CONTAINER_METADATA_URI_V4\",\"value\":\"http://evil/\"}]}," \
	"{\"name\":\"side\",\"image\":\"i\"}]}"

static void plan_variables(void **state)
{
	(void)state;
	struct taskmeta m = meta(7);
	char id[TASKMETA_ID_LEN + 1], want[128], uuid[TASKMETA_UUID_LEN + 1];
	_cleanup_(cJSON_Deletep) cJSON *p = plan_of(TWO(""), NULL, &m);
	for (int i = 0; i < 2; i++) {
		taskmeta_container_id(&m, TID, i ? "side" : "web", id);
		snprintf(want, sizeof(want), "http://10.9.0.1:8080/v4/%s", id);
		/* Set last: the definition's own value does not stand. */
		assert_string_equal(env_of(p, i, "ECS_CONTAINER_METADATA_URI_V4"), want);
		snprintf(want, sizeof(want), "http://10.9.0.1:8080/v3/%s", id);
		assert_string_equal(env_of(p, i, "ECS_CONTAINER_METADATA_URI"), want);
		assert_null(env_of(p, i, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"));
	}
	/* A role in the definition, then one in the overrides instead. */
	_cleanup_(cJSON_Deletep) cJSON *r = plan_of(TWO(",\"taskRoleArn\":\"" ROLE "\""), NULL, &m);
	taskmeta_credentials_id(&m, TID, ROLE, uuid);
	snprintf(want, sizeof(want), "/v2/credentials/%s", uuid);
	assert_string_equal(env_of(r, 1, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), want);
	_cleanup_(cJSON_Deletep) cJSON *o = plan_of(TWO(",\"taskRoleArn\":\"" ROLE "\""),
						    "{\"taskRoleArn\":\"" ROLE "2\"}", &m);
	taskmeta_credentials_id(&m, TID, ROLE "2", uuid);
	snprintf(want, sizeof(want), "/v2/credentials/%s", uuid);
	assert_string_equal(env_of(o, 0, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), want);
	/* No endpoint: no variables, the definition's value as it was. */
	_cleanup_(cJSON_Deletep) cJSON *n = plan_of(TWO(""), NULL, NULL);
	assert_string_equal(env_of(n, 0, "ECS_CONTAINER_METADATA_URI_V4"), "http://evil/");
	assert_null(env_of(n, 1, "ECS_CONTAINER_METADATA_URI"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ids),
		cmocka_unit_test(key_file),
		cmocka_unit_test(plan_variables),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
