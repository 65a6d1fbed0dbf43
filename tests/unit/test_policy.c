/* daemon/policy: the operator's flags and the check RunTask makes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "daemon/sched/instance.h"
#include "daemon/sched/policy.h"

/* The definition {containerDefinitions: [{name: web, <MEMBERS>}]}. */
static int check(const struct berth_policy *p, const char *members, struct berth_err *err)
{
	char text[1024];
	snprintf(text, sizeof(text),
		 "{\"containerDefinitions\":[{\"name\":\"side\"},"
		 "{\"name\":\"web\",%s}]}",
		 members);
	_cleanup_(cJSON_Deletep) cJSON *td = cJSON_Parse(text);
	assert_non_null(td);
	return policy_check(p, td, err);
}

#define CAPS(list) "\"linuxParameters\":{\"capabilities\":{\"add\":[" list "]}}"
#define NOFILE(soft, hard) \
	"\"ulimits\":[{\"name\":\"nofile\",\"softLimit\":" #soft ",\"hardLimit\":" #hard "}]"

static void default_allows_only_sys_ptrace(void **state)
{
	(void)state;
	struct berth_policy p = { 0 };
	struct berth_err err = { 0 };
	assert_int_equal(check(&p, CAPS("\"SYS_PTRACE\""), &err), 0);
	assert_int_equal(check(&p, "\"linuxParameters\":{\"capabilities\":{\"drop\":[\"ALL\"]}}",
			       &err),
			 0);
	static const char *const refused[] = {
		"\"SYS_ADMIN\"",
		"\"NET_ADMIN\"",
		"\"ALL\"",
		"\"SYS_MODULE\"",
		"\"SYS_PTRACE\",\"MKNOD\"",
		"\"sys_ptrace\"",
	};
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
		char m[256];
		snprintf(m, sizeof(m), CAPS("%s"), refused[i]);
		assert_int_equal(check(&p, m, &err), -EPERM);
		assert_non_null(strstr(err.msg, "containerDefinitions[1] (web): "
						"linuxParameters.capabilities.add: "));
		assert_non_null(strstr(err.msg, "a task may add only SYS_PTRACE "));
		assert_non_null(strstr(err.msg, "--allow-capabilities"));
	}
	assert_int_equal(check(&p, CAPS("\"SYS_ADMIN\""), &err), -EPERM);
	assert_non_null(strstr(err.msg, ": SYS_ADMIN is not allowed"));
}

static void host_network_only_by_opt_in(void **state)
{
	(void)state;
	struct berth_policy p = { 0 };
	struct berth_err err = { 0 };
	static const char *const modes[] = { "awsvpc", "bridge", "none", "host" };
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		char text[256];
		snprintf(text, sizeof(text),
			 "{\"networkMode\":\"%s\",\"containerDefinitions\":[{\"name\":\"web\"}]}",
			 modes[i]);
		_cleanup_(cJSON_Deletep) cJSON *td = cJSON_Parse(text);
		bool host = strcmp(modes[i], "host") == 0;
		p.allow_host_network = false;
		assert_int_equal(policy_check(&p, td, &err), host ? -EPERM : 0);
		if (host)
			assert_non_null(strstr(err.msg, "networkMode host: the task would share the "
							"host's network stack; this daemon allows it "
							"only when started with --allow-host-network"));
		p.allow_host_network = true;
		assert_int_equal(policy_check(&p, td, &err), 0);
	}
}

static void operator_widens_capabilities(void **state)
{
	(void)state;
	struct berth_policy p = { 0 };
	struct berth_err err = { 0 };
	assert_int_equal(policy_allow_capabilities(&p, "NET_ADMIN,sys_time", &err), 0);
	assert_int_equal(check(&p, CAPS("\"NET_ADMIN\",\"SYS_TIME\",\"SYS_PTRACE\""), &err), 0);
	assert_int_equal(check(&p, CAPS("\"ALL\""), &err), -EPERM);
	assert_non_null(strstr(err.msg, "only SYS_PTRACE, NET_ADMIN, SYS_TIME ("));
	assert_int_equal(check(&p, CAPS("\"SYS_ADMIN\""), &err), -EPERM);

	assert_int_equal(policy_allow_capabilities(&p, "ALL", &err), 0);
	assert_int_equal(check(&p, CAPS("\"ALL\",\"SYS_ADMIN\""), &err), 0);

	struct berth_policy q = { 0 };
	assert_int_equal(policy_allow_capabilities(&q, "NET_ADMIN,BOGUS_CAP", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'BOGUS_CAP' is not one of ECS's names"));
	assert_int_equal(policy_allow_capabilities(&q, "", &err), 0);
	assert_int_equal(q.caps, 0);
}

static void ulimits_nofile_only_by_default(void **state)
{
	(void)state;
	struct berth_policy p = { 0 };
	struct berth_err err = { 0 };
	assert_int_equal(check(&p, NOFILE(1024, 1048576), &err), 0);
	assert_int_equal(check(&p, NOFILE(1024, 1048577), &err), -EPERM);
	assert_non_null(strstr(err.msg, "(web): ulimits[0]: nofile hardLimit 1048577 is above "
					"1048576"));
	assert_int_equal(check(&p, NOFILE(4096, 1024), &err), -EPERM);
	assert_non_null(strstr(err.msg, "softLimit 4096"));
	const char *rtprio = "\"ulimits\":[{\"name\":\"rtprio\",\"softLimit\":1,\"hardLimit\":1}]";
	assert_int_equal(check(&p, rtprio, &err), -EPERM);
	assert_non_null(strstr(err.msg, "(web): ulimits[0]: rtprio is not allowed on this host: "
					"a task may set only nofile (the operator allows more with "
					"berth daemon --allow-ulimits)"));

	assert_int_equal(policy_allow_ulimits(&p, "rtprio,memlock", &err), 0);
	assert_int_equal(check(&p, rtprio, &err), 0);
	assert_int_equal(policy_allow_ulimits(&p, "nofiles", &err), -EINVAL);
	assert_int_equal(policy_allow_ulimits(&p, "ALL", &err), -EINVAL);
}

static void known_names(void **state)
{
	(void)state;
	assert_true(policy_capability_known("SYS_PTRACE"));
	assert_true(policy_capability_known("ALL"));
	assert_true(policy_capability_known("WAKE_ALARM"));
	assert_false(policy_capability_known("BOGUS_CAP"));
	assert_false(policy_capability_known("CAP_SYS_ADMIN"));
	assert_false(policy_capability_known("sys_admin"));
	assert_true(policy_ulimit_known("nofile"));
	assert_true(policy_ulimit_known("stack"));
	assert_false(policy_ulimit_known("NOFILE"));
	assert_false(policy_ulimit_known("bogus"));
}

static void defaults_and_host_resources(void **state)
{
	(void)state;
	struct berth_policy p = { 0 };
	struct berth_err err = { 0 };
	assert_int_equal(policy_task_memory(&p), POLICY_DEFAULT_TASK_MEMORY);
	assert_int_equal(policy_task_cpu(&p), POLICY_DEFAULT_TASK_CPU);
	assert_int_equal(policy_log_max_size(&p), POLICY_DEFAULT_LOG_MAX_SIZE);
	assert_int_equal(policy_log_max_files(&p), POLICY_DEFAULT_LOG_MAX_FILES);
	assert_int_equal(policy_ephemeral_storage(&p), 20480);
	assert_int_equal(policy_disk_check_ms(&p), POLICY_DEFAULT_DISK_CHECK_MS);
	assert_int_equal(policy_disk_reserve(&p), 1024);
	struct berth_policy none = { .disk_reserve = -1, .ephemeral_storage = 20 };
	assert_int_equal(policy_disk_reserve(&none), 0);
	assert_int_equal(policy_ephemeral_storage(&none), 20);
	assert_int_equal(policy_host_resources(&p, &err), 0);
	assert_true(p.instance_cpu >= 1024 && p.instance_cpu % 1024 == 0);
	assert_true(p.instance_memory > 0);

	struct berth_policy q = { .instance_cpu = 2048, .instance_memory = 300 };
	assert_int_equal(policy_host_resources(&q, &err), 0);
	assert_int_equal(q.instance_cpu, 2048);
	assert_int_equal(q.instance_memory, 300);

	struct berth_policy r = { .reserved_memory = INT32_MAX };
	assert_int_equal(policy_host_resources(&r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--reserved-memory"));
}

/* Placement on the registered instance: memory first, then CPU; a task
 * that fits is added to the usage. */
static void instance_placement(void **state)
{
	(void)state;
	struct berth_policy p = { .instance_cpu = 1024, .instance_memory = 1000 };
	struct instance_usage u = { 0 };
	_cleanup_(cJSON_Deletep) cJSON *td =
		cJSON_Parse("{\"cpu\":\"256\",\"memory\":\"400\",\"containerDefinitions\":[]}");
	_cleanup_(cJSON_Deletep) cJSON *res =
		cJSON_Parse("{\"containerDefinitions\":[{\"name\":\"a\",\"memoryReservation\":64,"
			    "\"cpu\":600}]}");
	assert_null(instance_place(&p, &u, td, NULL));
	assert_null(instance_place(&p, &u, td, NULL));
	assert_int_equal(u.memory, 800);
	assert_int_equal(u.cpu, 512);
	assert_string_equal(instance_place(&p, &u, td, NULL), INSTANCE_NO_MEMORY);
	assert_int_equal(u.memory, 800);
	assert_string_equal(instance_place(&p, &u, res, NULL), INSTANCE_NO_CPU);
	_cleanup_(cJSON_Deletep)
		cJSON *ov = cJSON_Parse("{\"containerOverrides\":[{\"name\":\"a\",\"cpu\":100}]}");
	assert_null(instance_place(&p, &u, res, ov));
	assert_int_equal(u.memory, 864);
	assert_int_equal(u.cpu, 612);

	char a[INSTANCE_ID_LEN + 1], b[INSTANCE_ID_LEN + 1], c[INSTANCE_ID_LEN + 1];
	instance_id("/var/lib/berth", a);
	instance_id("/var/lib/berth", b);
	instance_id("/srv/berth", c);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_int_equal(strspn(a, "0123456789abcdef"), INSTANCE_ID_LEN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(default_allows_only_sys_ptrace),
		cmocka_unit_test(host_network_only_by_opt_in),
		cmocka_unit_test(operator_widens_capabilities),
		cmocka_unit_test(ulimits_nofile_only_by_default),
		cmocka_unit_test(known_names),
		cmocka_unit_test(defaults_and_host_resources),
		cmocka_unit_test(instance_placement),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
