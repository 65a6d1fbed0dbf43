/* runtime/plan: parsing and validation of the shim's task plan — defaults,
 * every refusal with the field it names, and dependsOn cycles. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <cmocka.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "runtime/plan.h"

#define HEAD "{\"taskId\":\"t1\",\"taskDir\":\"/var/lib/berth/tasks/t1\","
#define LAYERS "\"layers\":[\"/l/base\",\"/l/top\"]"
#define CTR(name, extra) "{\"name\":\"" name "\"," LAYERS ",\"command\":[\"/bin/true\"]" extra "}"
/* A task with the given containers. */
#define TASK(ctrs) HEAD "\"containers\":[" ctrs "]}"

static struct plan *parse_ok(const char *json)
{
	struct berth_err err = { 0 };
	struct plan *p = NULL;
	int r = plan_parse(json, strlen(json), &p, &err);
	if (r < 0)
		fail_msg("plan refused: %s\n%s", err.msg, json);
	return p;
}

/* The plan is refused with EINVAL and a message containing want. */
static void refused(const char *json, const char *want)
{
	struct berth_err err = { 0 };
	struct plan *p = NULL;
	int r = plan_parse(json, strlen(json), &p, &err);
	if (r >= 0) {
		plan_free(p);
		fail_msg("plan accepted, wanted \"%s\":\n%s", want, json);
	}
	assert_null(p);
	if (!strstr(err.msg, want))
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
}

static void test_defaults(void **state)
{
	(void)state;
	_cleanup_(plan_freep) struct plan *p = parse_ok(TASK(CTR("web", "")));
	assert_string_equal(p->task_id, "t1");
	assert_int_equal(p->cpu, 0);
	assert_int_equal(p->memory_mib, 0);
	assert_int_equal(p->pids_max, 4096);
	assert_string_equal(p->run_dir, "/run/berth");
	assert_string_equal(p->log_dir, "/var/log/berth/t1");
	assert_string_equal(p->cgroup_name, "berth");
	assert_string_equal(p->network.bridge, "berth0");
	assert_string_equal(p->network.subnet, "10.89.0.0/16");
	assert_string_equal(p->network.ipam_dir, "/var/lib/berth/ipam");
	assert_null(p->network.hostname);
	assert_int_equal(p->n_containers, 1);
	const struct plan_container *c = &p->containers[0];
	assert_string_equal(c->name, "web");
	assert_true(c->essential);
	assert_int_equal(c->stop_timeout, 30);
	assert_int_equal(c->layers.n, 2);
	assert_string_equal(c->layers.v[0], "/l/base");
	assert_null(c->layers.v[2]);
	assert_int_equal(c->argv.n, 1);
	assert_null(c->argv.v[1]);
	assert_int_equal(c->env.n, 0);
	assert_null(c->user);
	assert_false(c->health.present);
	assert_false(c->readonly_rootfs);
	assert_false(c->init_process);
	assert_int_equal(c->log_opts.max_size, RT_LOG_DEFAULT_MAX_SIZE);
	assert_int_equal(c->log_opts.max_files, RT_LOG_DEFAULT_MAX_FILES);
}

static void test_full(void **state)
{
	(void)state;
	const char *json = HEAD
		"\"cpu\":256,\"memory\":512,\"pidsMax\":100,\"runDir\":\"/run/x\","
		"\"logDir\":\"/log/t1\",\"cgroupName\":\"berth-dev\","
		"\"network\":{\"mode\":\"awsvpc\",\"bridge\":\"b0\",\"subnet\":\"10.1.0.0/24\","
		"\"ipamDir\":\"/ipam\",\"hostname\":\"h1\"},"
		"\"containers\":[" CTR("init", ",\"essential\":false")
		",{\"name\":\"web\"," LAYERS ",\"entryPoint\":[\"/bin/httpd\"],"
		"\"command\":[\"-f\",\"-p\",\"8080\"],"
		"\"environment\":[{\"name\":\"PATH\",\"value\":\"/bin\"},{\"name\":\"EMPTY\"}],"
		"\"user\":\"app\",\"workingDirectory\":\"/srv\",\"essential\":true,\"stopTimeout\":2,"
		"\"dependsOn\":[{\"containerName\":\"init\",\"condition\":\"SUCCESS\"}],"
		"\"healthCheck\":{\"command\":[\"CMD-SHELL\",\"wget -q -O- localhost:8080\"],"
		"\"interval\":5,\"timeout\":2,\"retries\":1,\"startPeriod\":10},"
		"\"ulimits\":[{\"name\":\"nofile\",\"softLimit\":1024,\"hardLimit\":4096}],"
		"\"readonlyRootFilesystem\":true,"
		"\"linuxParameters\":{\"capabilities\":{\"add\":[\"SYS_PTRACE\"],\"drop\":[\"NET_RAW\"]},"
		"\"initProcessEnabled\":true},"
		"\"memory\":256,\"memoryReservation\":128,\"cpu\":128,"
		"\"logConfiguration\":{\"logDriver\":\"awslogs\",\"options\":{\"max-size\":\"1m\","
		"\"max-file\":\"2\",\"awslogs-group\":\"g\"}}}]}";
	_cleanup_(plan_freep) struct plan *p = parse_ok(json);
	assert_int_equal(p->cpu, 256);
	assert_int_equal(p->memory_mib, 512);
	assert_int_equal(p->pids_max, 100);
	assert_string_equal(p->network.hostname, "h1");
	const struct plan_container *c = &p->containers[1];
	assert_int_equal(c->argv.n, 4);
	assert_string_equal(c->argv.v[0], "/bin/httpd");
	assert_string_equal(c->argv.v[3], "8080");
	assert_int_equal(c->env.n, 2);
	assert_string_equal(c->env.v[0], "PATH=/bin");
	assert_string_equal(c->env.v[1], "EMPTY=");
	assert_string_equal(c->user, "app");
	assert_string_equal(c->working_dir, "/srv");
	assert_int_equal(c->stop_timeout, 2);
	assert_int_equal(c->n_deps, 1);
	assert_int_equal(c->deps[0].index, 0);
	assert_int_equal(c->deps[0].condition, PLAN_DEP_SUCCESS);
	assert_true(c->health.present);
	assert_string_equal(c->health.cfg.argv[0], "/bin/sh");
	assert_string_equal(c->health.cfg.argv[1], "-c");
	assert_string_equal(c->health.cfg.argv[2], "wget -q -O- localhost:8080");
	assert_int_equal(c->health.cfg.interval_s, 5);
	assert_int_equal(c->health.cfg.retries, 1);
	assert_int_equal(c->health.cfg.start_period_s, 10);
	assert_int_equal(c->n_ulimits, 1);
	assert_int_equal(c->ulimits[0].resource, RLIMIT_NOFILE);
	assert_int_equal(c->ulimits[0].soft, 1024);
	assert_int_equal(c->ulimits[0].hard, 4096);
	assert_true(c->readonly_rootfs);
	assert_true(c->init_process);
	assert_string_equal(c->cap_add.v[0], "SYS_PTRACE");
	assert_string_equal(c->cap_drop.v[0], "NET_RAW");
	assert_int_equal(c->memory_mib, 256);
	assert_int_equal(c->memory_reservation_mib, 128);
	assert_int_equal(c->cpu, 128);
	assert_int_equal(c->log_opts.max_size, 1000000);
	assert_int_equal(c->log_opts.max_files, 2);
	assert_int_equal(plan_container_index(p, "web"), 1);
	assert_int_equal(plan_container_index(p, "nope"), -1);
}

static void test_bridge_publish(void **state)
{
	(void)state;
	_cleanup_(plan_freep) struct plan *p = parse_ok(
		HEAD "\"network\":{\"mode\":\"bridge\",\"publish\":[\"tcp:49153:80\","
		"\"udp:5353:53\"]},\"containers\":[" CTR("web", "") "]}");
	assert_int_equal(p->network.mode, PLAN_NET_BRIDGE);
	assert_int_equal(p->network.n_publish, 2);
	assert_string_equal(p->network.publish[1], "udp:5353:53");
	struct net_publish pub;
	assert_int_equal(net_publish_parse(p->network.publish[0], &pub), 0);
	assert_int_equal(pub.proto, IPPROTO_TCP);
	assert_int_equal(pub.host_port, 49153);
	assert_int_equal(pub.container_port, 80);
	static const char *const modes[] = { "none", "host" };
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		char text[512];
		snprintf(text, sizeof(text), HEAD "\"network\":{\"mode\":\"%s\"},"
			 "\"containers\":[" CTR("web", "") "]}", modes[i]);
		_cleanup_(plan_freep) struct plan *q = parse_ok(text);
		assert_int_equal(q->network.mode, i ? PLAN_NET_HOST : PLAN_NET_NONE);
		snprintf(text, sizeof(text), HEAD "\"network\":{\"mode\":\"%s\",\"publish\":"
			 "[\"tcp:80:80\"]},\"containers\":[" CTR("web", "") "]}", modes[i]);
		refused(text, "network.publish: only in bridge mode");
	}
	/* 65 ports: one more than berth-netpolicy takes. */
	char json[4096] = HEAD "\"network\":{\"mode\":\"bridge\",\"publish\":[";
	for (int i = 0; i <= NET_PUBLISH_MAX; i++)
		snprintf(json + strlen(json), sizeof(json) - strlen(json), "%s\"tcp:%d:80\"",
			 i ? "," : "", 1000 + i);
	snprintf(json + strlen(json), sizeof(json) - strlen(json),
		 "]},\"containers\":[" CTR("web", "") "]}");
	refused(json, "network.publish: 65 ports, at most 64");
}

static void test_health_defaults_and_none(void **state)
{
	(void)state;
	_cleanup_(plan_freep) struct plan *p = parse_ok(TASK(
		CTR("a", ",\"healthCheck\":{\"command\":[\"CMD\",\"/bin/check\",\"x\"]}") ","
		CTR("b", ",\"healthCheck\":{\"command\":[\"NONE\"]}")));
	const struct plan_health *h = &p->containers[0].health;
	assert_true(h->present);
	assert_string_equal(h->cfg.argv[0], "/bin/check");
	assert_string_equal(h->cfg.argv[1], "x");
	assert_null(h->cfg.argv[2]);
	assert_int_equal(h->cfg.interval_s, 30);
	assert_int_equal(h->cfg.timeout_s, 5);
	assert_int_equal(h->cfg.retries, 3);
	assert_int_equal(h->cfg.start_period_s, 0);
	assert_false(p->containers[1].health.present);
}

static void test_refuse_syntax_and_task(void **state)
{
	(void)state;
	refused("{", "not valid JSON");
	refused("[]", "not a JSON object");
	refused("{\"taskDir\":\"/t\",\"containers\":[" CTR("a", "") "]}", "taskId: missing");
	refused("{\"taskId\":7,\"taskDir\":\"/t\"}", "taskId: not a string");
	refused("{\"taskId\":\"a/b\",\"taskDir\":\"/t\"}", "taskId \"a/b\": must be");
	refused("{\"taskId\":\".x\",\"taskDir\":\"/t\"}", "taskId \".x\"");
	refused("{\"taskId\":\"t\"}", "taskDir: missing");
	refused("{\"taskId\":\"t\",\"taskDir\":\"rel\"}", "taskDir \"rel\": not an absolute path");
	refused(HEAD "\"runDir\":\"x\"}", "runDir \"x\": not an absolute path");
	refused(HEAD "\"logDir\":\"x\"}", "logDir \"x\": not an absolute path");
	refused(HEAD "\"cpu\":-1}", "cpu: -1 is not an integer");
	refused(HEAD "\"cpu\":1.5}", "cpu: 1.5 is not an integer");
	refused(HEAD "\"memory\":\"512\"}", "memory: not a number");
	refused(HEAD "\"pidsMax\":0}", "pidsMax: 0 is not an integer in 1..");
	refused(HEAD "\"cgroupName\":\"a/b\"}", "cgroupName \"a/b\"");
	refused(HEAD "\"cgroupName\":\"agent\"}", "cgroupName \"agent\"");
	refused(HEAD "\"network\":[]}", "network: not an object");
	refused(HEAD "\"network\":{\"mode\":\"nat\"}}", "network.mode \"nat\": ");
	refused(HEAD "\"network\":{\"publish\":[\"tcp:80:80\"]}}",
		"network.publish: only in bridge mode");
	refused(HEAD "\"network\":{\"mode\":\"bridge\",\"publish\":[\"sctp:80:80\"]}}",
		"network.publish[0]: not \"tcp|udp:HOSTPORT:PORT\"");
	refused(HEAD "\"network\":{\"mode\":\"bridge\",\"publish\":[\"tcp:0:80\"]}}",
		"network.publish[0]: ");
	refused(HEAD "\"network\":{\"mode\":\"bridge\",\"publish\":[\"tcp:80:65536\"]}}",
		"network.publish[0]: ");
	refused(HEAD "\"network\":{\"mode\":\"bridge\",\"publish\":[\"tcp:80:80x\"]}}",
		"network.publish[0]: ");
	refused(HEAD "\"network\":{\"ipamDir\":\"x\"}}", "network.ipamDir \"x\"");
	refused(HEAD "\"network\":{\"securityGroups\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\"]}}",
		"network.securityGroups: 6 groups, at most 5");
	refused(HEAD "\"network\":{\"securityGroups\":[\"\"]}}",
		"network.securityGroups[0]: 1 to 255 characters");
	refused(HEAD "\"containers\":[]}", "containers: missing or empty");
	refused(HEAD "\"containers\":{}}", "containers: not an array");
	refused(TASK("1"), "containers[0]: not an object");
	refused(TASK(CTR("a", ",\"essential\":false")), "containers: no essential container");
}

static void test_refuse_container_fields(void **state)
{
	(void)state;
	refused(TASK("{\"layers\":[\"/l\"],\"command\":[\"x\"]}"), "containers[0].name: missing");
	refused(TASK(CTR("a b", "")), "containers[0].name \"a b\": must be 1-255");
	refused(TASK(CTR("", "")), "containers[0].name \"\"");
	char long_name[300];
	memset(long_name, 'x', 256);
	long_name[256] = '\0';
	char json[1024];
	snprintf(json, sizeof(json), TASK("{\"name\":\"%s\"," LAYERS ",\"command\":[\"x\"]}"),
		 long_name);
	refused(json, "must be 1-255");
	long_name[255] = '\0';
	snprintf(json, sizeof(json), TASK("{\"name\":\"%s\"," LAYERS ",\"command\":[\"x\"]}"),
		 long_name);
	plan_free(parse_ok(json));
	refused(TASK(CTR("a", "") "," CTR("a", "")), "containers[1].name \"a\": used twice");
	refused(TASK("{\"name\":\"a\",\"command\":[\"x\"]}"), "containers[0].layers: missing");
	refused(TASK("{\"name\":\"a\",\"layers\":[],\"command\":[\"x\"]}"), "layers: empty");
	refused(TASK("{\"name\":\"a\",\"layers\":[\"rel\"],\"command\":[\"x\"]}"),
		"containers[0].layers[0] \"rel\": not an absolute path");
	refused(TASK("{\"name\":\"a\",\"layers\":[1],\"command\":[\"x\"]}"),
		"containers[0].layers[0]: not a string");
	refused(TASK("{\"name\":\"a\"," LAYERS "}"), "entryPoint, command: no command to run");
	refused(TASK("{\"name\":\"a\"," LAYERS ",\"command\":\"x\"}"),
		"containers[0].command: not an array of strings");
	refused(TASK(CTR("a", ",\"stopTimeout\":1")), "containers[0].stopTimeout: 1 is not an "
		"integer in 2..120");
	refused(TASK(CTR("a", ",\"stopTimeout\":121")), "stopTimeout: 121");
	refused(TASK(CTR("a", ",\"essential\":\"yes\"")), "essential: not true or false");
	refused(TASK(CTR("a", ",\"memory\":-5")), "containers[0].memory: -5");
	refused(TASK(CTR("a", ",\"cpu\":2.5")), "containers[0].cpu: 2.5");
	refused(TASK(CTR("a", ",\"memory\":10,\"memoryReservation\":20")),
		"memoryReservation 20: above memory 10");
	refused(HEAD "\"memory\":64,\"containers\":[" CTR("a", ",\"memory\":128") "]}",
		"containers[0].memory 128: above the task's memory 64");
	refused(TASK(CTR("a", ",\"workingDirectory\":\"srv\"")), "workingDirectory \"srv\"");
	refused(TASK(CTR("a", ",\"user\":0")), "containers[0].user: not a string");
	refused(TASK(CTR("a", ",\"environment\":[{\"value\":\"x\"}]")),
		"containers[0].environment[0].name: missing");
	refused(TASK(CTR("a", ",\"environment\":[{\"name\":\"A=B\"}]")), "contains '='");
	refused(TASK(CTR("a", ",\"environment\":[\"A=B\"]")), "environment[0]: not an object");
	refused(TASK(CTR("a", ",\"ulimits\":[{\"name\":\"bogus\",\"softLimit\":1,\"hardLimit\":1}]")),
		"containers[0].ulimits[0].name: ulimit bogus: unknown");
	refused(TASK(CTR("a", ",\"ulimits\":[{\"name\":\"nofile\",\"softLimit\":9,\"hardLimit\":1}]")),
		"softLimit 9 above hardLimit 1");
	refused(TASK(CTR("a", ",\"ulimits\":[{\"name\":\"nofile\"}]")), "softLimit and hardLimit");
	refused(TASK(CTR("a", ",\"linuxParameters\":{\"capabilities\":{\"add\":[\"NOPE\"]}}")),
		"containers[0].linuxParameters.capabilities");
	refused(TASK(CTR("a", ",\"linuxParameters\":{\"initProcessEnabled\":1}")),
		"linuxParameters.initProcessEnabled: not true or false");
	refused(TASK(CTR("a", ",\"logConfiguration\":{\"options\":{\"max-size\":\"lots\"}}")),
		"containers[0].logConfiguration.options: log option max-size");
	refused(TASK(CTR("a", ",\"logConfiguration\":{\"options\":{\"max-file\":3}}")),
		"options.max-file: not a string");
}

static void test_refuse_health(void **state)
{
	(void)state;
	refused(TASK(CTR("a", ",\"healthCheck\":{}")), "containers[0].healthCheck.command: missing");
	refused(TASK(CTR("a", ",\"healthCheck\":{\"command\":[\"sh\",\"x\"]}")),
		"containers[0]: healthCheck.command: \"sh\": must start with CMD, CMD-SHELL or NONE");
	refused(TASK(CTR("a", ",\"healthCheck\":{\"command\":[\"CMD\"]}")), "CMD without a command");
	refused(TASK(CTR("a", ",\"healthCheck\":{\"command\":[\"CMD\",\"x\"],\"interval\":4}")),
		"healthCheck.interval 4: must be between 5 and 300");
	refused(TASK(CTR("a", ",\"healthCheck\":{\"command\":[\"CMD\",\"x\"],\"timeout\":61}")),
		"healthCheck.timeout 61");
	refused(TASK(CTR("a", ",\"healthCheck\":{\"command\":[\"CMD\",\"x\"],\"retries\":11}")),
		"healthCheck.retries 11");
	refused(TASK(CTR("a", ",\"healthCheck\":{\"command\":[\"CMD\",\"x\"],\"startPeriod\":301}")),
		"healthCheck.startPeriod 301");
	refused(TASK(CTR("a", ",\"healthCheck\":{\"command\":[\"CMD\",\"x\"],\"interval\":\"5\"}")),
		"containers[0].healthCheck.interval: not a number");
	refused(TASK(CTR("a", ",\"healthCheck\":[\"CMD\"]")), "containers[0].healthCheck: not an object");
}

#define DEP(name, cond) "{\"containerName\":\"" name "\",\"condition\":\"" cond "\"}"

static void test_depends_on(void **state)
{
	(void)state;
	refused(TASK(CTR("a", ",\"dependsOn\":[" DEP("zz", "START") "]")),
		"containers[0].dependsOn[0].containerName \"zz\": no such container");
	refused(TASK(CTR("a", "") "," CTR("b", ",\"dependsOn\":[" DEP("a", "RUNNING") "]")),
		"containers[1].dependsOn[0].condition \"RUNNING\": not START");
	refused(TASK(CTR("a", "") "," CTR("b", ",\"dependsOn\":[{\"condition\":\"START\"}]")),
		"dependsOn[0].containerName: missing");
	refused(TASK(CTR("a", "") "," CTR("b", ",\"dependsOn\":[" DEP("a", "SUCCESS") "]")),
		"condition SUCCESS: container a is essential");
	refused(TASK(CTR("a", "") "," CTR("b", ",\"dependsOn\":[" DEP("a", "COMPLETE") "]")),
		"condition COMPLETE: container a is essential");
	refused(TASK(CTR("a", "") "," CTR("b", ",\"dependsOn\":[" DEP("a", "HEALTHY") "]")),
		"condition HEALTHY: container a has no healthCheck");
	_cleanup_(plan_freep) struct plan *p = parse_ok(TASK(
		CTR("init", ",\"essential\":false") ","
		CTR("db", ",\"healthCheck\":{\"command\":[\"CMD\",\"x\"]},\"dependsOn\":["
		    DEP("init", "COMPLETE") "]") ","
		CTR("web", ",\"dependsOn\":[" DEP("db", "HEALTHY") "," DEP("init", "SUCCESS") "]") ","
		CTR("side", ",\"dependsOn\":[" DEP("web", "START") "]")));
	assert_int_equal(p->containers[2].n_deps, 2);
	assert_int_equal(p->containers[2].deps[0].index, 1);
	assert_int_equal(p->containers[2].deps[0].condition, PLAN_DEP_HEALTHY);
	assert_int_equal(p->containers[2].deps[1].condition, PLAN_DEP_SUCCESS);
	assert_int_equal(p->containers[3].deps[0].condition, PLAN_DEP_START);
	assert_string_equal(plan_condition_name(PLAN_DEP_COMPLETE), "COMPLETE");
}

/* restartPolicy and startTimeout: ECS's shapes, the plan's ranges. */
static void test_restart_policy_and_start_timeout(void **state)
{
	(void)state;
	_cleanup_(plan_freep) struct plan *p = parse_ok(TASK(
		CTR("a", "") ","
		CTR("b", ",\"startTimeout\":9,\"restartPolicy\":{\"enabled\":true,"
		    "\"ignoredExitCodes\":[0,-1,137],\"restartAttemptPeriod\":60}")));
	assert_false(p->containers[0].restart.enabled);
	assert_int_equal(p->containers[0].restart.attempt_period, PLAN_RESTART_PERIOD_DEFAULT);
	assert_int_equal(p->containers[0].start_timeout, 0);
	const struct plan_restart *rp = &p->containers[1].restart;
	assert_true(rp->enabled);
	assert_int_equal(rp->n_ignored, 3);
	assert_int_equal(rp->ignored[1], -1);
	assert_int_equal(rp->ignored[2], 137);
	assert_int_equal(rp->attempt_period, 60);
	assert_int_equal(p->containers[1].start_timeout, 9);
	refused(TASK(CTR("a", ",\"restartPolicy\":{}")), "containers[0].restartPolicy.enabled: missing");
	refused(TASK(CTR("a", ",\"restartPolicy\":{\"enabled\":true,\"restartAttemptPeriod\":0}")),
		"restartPolicy.restartAttemptPeriod: 0 is not an integer in 1..1800");
	refused(TASK(CTR("a", ",\"restartPolicy\":{\"enabled\":true,\"ignoredExitCodes\":[1.5]}")),
		"restartPolicy.ignoredExitCodes[0]: not an integer");
	refused(TASK(CTR("a", ",\"restartPolicy\":{\"enabled\":true,\"ignoredExitCodes\":[\"1\"]}")),
		"restartPolicy.ignoredExitCodes[0]: not an integer");
	refused(TASK(CTR("a", ",\"startTimeout\":1")), "startTimeout: 1 is not an integer in 2..120");
	char codes[512] = "";
	for (int i = 0; i <= PLAN_RESTART_IGNORED_MAX; i++)
		snprintf(codes + strlen(codes), sizeof(codes) - strlen(codes), "%s%d", i ? "," : "", i);
	char json[1024];
	snprintf(json, sizeof(json), TASK(CTR("a", ",\"restartPolicy\":{\"enabled\":true,"
					    "\"ignoredExitCodes\":[%s]}")), codes);
	refused(json, "restartPolicy.ignoredExitCodes: more than 50");
}

static void test_depends_on_cycles(void **state)
{
	(void)state;
	refused(TASK(CTR("a", ",\"dependsOn\":[" DEP("a", "START") "]")),
		"containers[0].dependsOn: cycle a -> a");
	refused(TASK(CTR("a", ",\"dependsOn\":[" DEP("b", "START") "]") ","
		     CTR("b", ",\"dependsOn\":[" DEP("a", "START") "]")),
		"cycle a -> b -> a");
	/* The cycle is reported from where the search met it, not from x. */
	refused(TASK(CTR("x", ",\"dependsOn\":[" DEP("a", "START") "]") ","
		     CTR("a", ",\"dependsOn\":[" DEP("b", "START") "]") ","
		     CTR("b", ",\"dependsOn\":[" DEP("c", "START") "]") ","
		     CTR("c", ",\"dependsOn\":[" DEP("a", "START") "]")),
		"cycle a -> b -> c -> a");
	/* A diamond is not a cycle. */
	plan_free(parse_ok(TASK(CTR("top", ",\"dependsOn\":[" DEP("l", "START") "," DEP("r", "START") "]") ","
				CTR("l", ",\"dependsOn\":[" DEP("base", "START") "]") ","
				CTR("r", ",\"dependsOn\":[" DEP("base", "START") "]") ","
				CTR("base", ""))));
}

static void test_load_missing_file(void **state)
{
	(void)state;
	struct berth_err err = { 0 };
	struct plan *p = NULL;
	assert_int_equal(plan_load("/nonexistent/plan.json", &p, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/plan.json"));
	assert_null(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_bridge_publish),
		cmocka_unit_test(test_health_defaults_and_none),
		cmocka_unit_test(test_refuse_syntax_and_task),
		cmocka_unit_test(test_refuse_container_fields),
		cmocka_unit_test(test_refuse_health),
		cmocka_unit_test(test_depends_on),
		cmocka_unit_test(test_depends_on_cycles),
		cmocka_unit_test(test_restart_policy_and_start_timeout),
		cmocka_unit_test(test_load_missing_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
