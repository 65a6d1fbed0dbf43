/* daemon/taskplan: what RunTask refuses (taskplan_check) and the berth-shim
 * plan built from a task definition, RunTask overrides and the images'
 * configs (taskplan_build) — merged as Docker and the ECS agent merge them,
 * and accepted by the shim's own parser (plan_parse). */
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
#include "common/json.h"
#include "daemon/sched/taskplan.h"
#include "runtime/plan.h"

/* A task definition as the store holds it: TASK is more task-level
 * members (each starting with ','), CTRS the container definitions. */
#define TASKDEF(task, ctrs) "{\"family\":\"f\"" task ",\"containerDefinitions\":[" ctrs "]}"
#define CD(name, extra) "{\"name\":\"" name "\",\"image\":\"img\"" extra "}"
/* One container, "web". */
#define TD(extra) TASKDEF("", CD("web", extra))
/* Two containers, the second ("side") carrying SIDE. */
#define TD2(task, side) TASKDEF(task, CD("web", "") "," CD("side", side))
/* RunTask overrides for "web". */
#define OV(co) "{\"containerOverrides\":[{\"name\":\"web\"" co "}]}"
/* An image config blob with the given "config" members. */
#define IMG(cfg) "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{" cfg "}}"

#define EP_CMD IMG("\"Entrypoint\":[\"/ep\"],\"Cmd\":[\"c1\",\"c2\"]")
#define CMD_ONLY IMG("\"Cmd\":[\"c1\"]")

static const struct taskplan_env ENV = {
	.task_id = "t-1", .task_dir = "/srv/berth/tasks/t-1", .run_dir = "/run/berth-test",
	.log_dir = "/logs/t-1", .cgroup_name = "berth-test",
	.bridge = "br-test", .subnet = "10.200.0.0/24", .ipam_dir = "/srv/ipam",
	.nft_table = "berth_test", .security_groups = "sg-1,default:c1",
};

static cJSON *parse(const char *text)
{
	cJSON *v = cJSON_Parse(text);
	if (!v)
		fail_msg("test JSON does not parse: %s", text);
	return v;
}

/* Fails unless V and the JSON text WANT are equal (NULL: V is absent). */
static void assert_json(const cJSON *v, const char *want, const char *what)
{
	_cleanup_(cJSON_Deletep) cJSON *w = want ? parse(want) : NULL;
	if (!w && !v)
		return;
	_cleanup_free_ char *got = v ? cJSON_PrintUnformatted(v) : strdup("(absent)");
	if (!w || !v || !cJSON_Compare(v, w, true))
		fail_msg("%s: got %s, want %s", what, got, want ? want : "(absent)");
}

/* Every member of the JSON object WANT is in OBJ with that value; a null
 * in WANT means OBJ must not have the member. */
static void assert_members(const cJSON *obj, const char *want, size_t row)
{
	_cleanup_(cJSON_Deletep) cJSON *w = parse(want);
	const cJSON *m;
	cJSON_ArrayForEach(m, w) {
		char what[96];
		snprintf(what, sizeof(what), "row %zu, %s", row, m->string);
		_cleanup_free_ char *text = cJSON_IsNull(m) ? NULL : cJSON_PrintUnformatted(m);
		assert_json(cJSON_GetObjectItemCaseSensitive(obj, m->string), text, what);
	}
}

/* taskplan_check() then taskplan_build() of TD and OV (NULL: none), with
 * IMGS[i] the image config of container i.  Container i's layers are
 * /l/i/0 … /l/i/i, so that every container's are told apart. */
static int build(const char *td, const char *ov, const char *const *imgs, cJSON **plan,
		 struct berth_err *err)
{
	static const char *const layers[][3] = {
		{ "/l/0/0" }, { "/l/1/0", "/l/1/1" }, { "/l/2/0", "/l/2/1", "/l/2/2" },
	};
	_cleanup_(cJSON_Deletep) cJSON *t = parse(td);
	_cleanup_(cJSON_Deletep) cJSON *o = ov ? parse(ov) : NULL;
	struct taskplan_image im[ARRAY_SIZE(layers)];
	size_t n = (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(t, "containerDefinitions"));
	assert_true(n <= ARRAY_SIZE(im));
	for (size_t i = 0; i < n; i++)
		im[i] = (struct taskplan_image){ imgs[i], layers[i], i + 1 };
	if (taskplan_check(t, o, err) < 0)
		fail_msg("taskplan_check refused %s: %s", td, err->msg);
	*plan = NULL;
	int r = taskplan_build(t, o, im, &ENV, plan, err);
	if (r < 0)
		assert_null(*plan);
	return r;
}

static cJSON *build_ok(const char *td, const char *ov, const char *const *imgs)
{
	struct berth_err err = { 0 };
	cJSON *plan;
	if (build(td, ov, imgs, &plan, &err) < 0)
		fail_msg("taskplan_build refused %s: %s", td, err.msg);
	return plan;
}

static const cJSON *container(const cJSON *plan, int i)
{
	const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(plan, "containers"), i);
	assert_non_null(c);
	return c;
}

/* One single-container build: WANT holds members of the plan's container
 * (see assert_members). */
struct build_case {
	const char *td, *ov, *img, *want;
};

static void run_build_cases(const struct build_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		_cleanup_(cJSON_Deletep) cJSON *plan = build_ok(c[i].td, c[i].ov, &c[i].img);
		assert_members(container(plan, 0), c[i].want, i);
	}
}

/* ---- entryPoint / command ----------------------------------------------- */

static void argv_merge(void **state)
{
	(void)state;
	static const struct build_case cases[] = {
		/* Nothing in the definition: the image's, both. */
		{ TD(""), NULL, EP_CMD, "{\"entryPoint\":[\"/ep\"],\"command\":[\"c1\",\"c2\"]}" },
		/* The definition's entryPoint drops the image's Cmd too. */
		{ TD(",\"entryPoint\":[\"/d\"]"), NULL, EP_CMD,
		  "{\"entryPoint\":[\"/d\"],\"command\":null}" },
		{ TD(",\"entryPoint\":[\"/d\"],\"command\":[\"a\"]"), NULL, EP_CMD,
		  "{\"entryPoint\":[\"/d\"],\"command\":[\"a\"]}" },
		/* A command alone keeps the image's Entrypoint. */
		{ TD(",\"command\":[\"a\"]"), NULL, EP_CMD,
		  "{\"entryPoint\":[\"/ep\"],\"command\":[\"a\"]}" },
		/* The override's command beats the definition's and the image's. */
		{ TD(",\"command\":[\"a\"]"), OV(",\"command\":[\"o\",\"p\"]"), EP_CMD,
		  "{\"entryPoint\":[\"/ep\"],\"command\":[\"o\",\"p\"]}" },
		{ TD(",\"entryPoint\":[\"/d\"]"), OV(",\"command\":[\"o\"]"), EP_CMD,
		  "{\"entryPoint\":[\"/d\"],\"command\":[\"o\"]}" },
		/* An override without a command, or a null one, changes nothing. */
		{ TD(",\"command\":[\"a\"]"), OV(",\"command\":null"), EP_CMD,
		  "{\"entryPoint\":[\"/ep\"],\"command\":[\"a\"]}" },
		{ TD(""), OV(",\"cpu\":1"), CMD_ONLY, "{\"entryPoint\":null,\"command\":[\"c1\"]}" },
		/* Images built FROM scratch carry "Entrypoint": null. */
		{ TD(""), NULL, IMG("\"Entrypoint\":null,\"Cmd\":[\"c1\"]"),
		  "{\"entryPoint\":null,\"command\":[\"c1\"]}" },
		/* Docker's merge (moby daemon/commit.go) asks len(Entrypoint) == 0
		 * and len(Cmd) == 0: an empty list is as good as none for taking
		 * the image's Cmd; only an empty entryPoint still replaces the
		 * image's Entrypoint. */
		{ TD(",\"command\":[]"), NULL, EP_CMD,
		  "{\"entryPoint\":[\"/ep\"],\"command\":[\"c1\",\"c2\"]}" },
		{ TD(",\"entryPoint\":[]"), NULL, EP_CMD,
		  "{\"entryPoint\":[],\"command\":[\"c1\",\"c2\"]}" },
		{ TD(",\"entryPoint\":[],\"command\":[\"a\"]"), NULL, EP_CMD,
		  "{\"entryPoint\":[],\"command\":[\"a\"]}" },
		{ TD(",\"command\":[\"a\"]"), OV(",\"command\":[]"), EP_CMD,
		  "{\"entryPoint\":[\"/ep\"],\"command\":[\"c1\",\"c2\"]}" },
		/* A non-empty entryPoint keeps the (empty) command it is given. */
		{ TD(",\"entryPoint\":[\"/d\"],\"command\":[]"), NULL, EP_CMD,
		  "{\"entryPoint\":[\"/d\"],\"command\":[]}" },
	};
	run_build_cases(cases, ARRAY_SIZE(cases));
}

/* taskplan_build refuses: -EINVAL and a message naming the container. */
static void build_errors(void **state)
{
	(void)state;
	static const struct {
		const char *td, *img, *want;
	} cases[] = {
		{ TD(""), IMG(""), "container web: no command: neither the definition nor the "
				   "image gives an entryPoint or command" },
		{ TD(""), IMG("\"Entrypoint\":[],\"Cmd\":[]"), "container web: no command" },
		/* An empty entryPoint takes the image's away, and it has no Cmd. */
		{ TD(",\"entryPoint\":[]"), IMG("\"Entrypoint\":[\"/ep\"]"), "container web: no command" },
		{ TD(""), IMG("\"Entrypoint\":\"/bin/sh -c\""),
		  "container web: the image config's Entrypoint is not a list" },
		{ TD(""), IMG("\"Cmd\":[\"a\",1]"), "container web: the image config's Cmd holds a "
						   "non-string" },
		{ TD(""), "[]", "container web: the image config is not a JSON object" },
		{ TD(""), "{\"config\":", "container web: the image config is not a JSON object" },
		{ TD(",\"command\":[\"a\"]"), IMG("\"Env\":[\"A=1\",\"NOEQUALS\"]"),
		  "container web: the image config's Env holds a member that is not NAME=value" },
		{ TD(",\"command\":[\"a\"]"), IMG("\"Env\":[7]"), "container web: the image config's Env" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct berth_err err = { 0 };
		cJSON *plan;
		assert_int_equal(build(cases[i].td, NULL, &cases[i].img, &plan, &err), -EINVAL);
		if (!strstr(err.msg, cases[i].want))
			fail_msg("row %zu: \"%s\" lacks \"%s\"", i, err.msg, cases[i].want);
	}
}

/* ---- environment, user, workingDirectory --------------------------------- */

#define KV(n, v) "{\"name\":\"" n "\",\"value\":\"" v "\"}"

static void environment_merge(void **state)
{
	(void)state;
	static const struct build_case cases[] = {
		/* Image, then definition, then override; a later name replaces an
		 * earlier one where it stood; '=' in values is kept. */
		{ TD(",\"environment\":[" KV("A", "def") "," KV("C", "c=d=e") "]"),
		  OV(",\"environment\":[" KV("C", "ov") "," KV("B", "q=r") ",{\"name\":\"D\"}]"),
		  IMG("\"Cmd\":[\"c\"],\"Env\":[\"PATH=/usr/bin\",\"A=img\",\"B=x=y\"]"),
		  "{\"environment\":[" KV("PATH", "/usr/bin") "," KV("A", "def") "," KV("B", "q=r")
		  "," KV("C", "ov") "," KV("D", "") "]}" },
		{ TD(""), NULL, IMG("\"Cmd\":[\"c\"],\"Env\":[\"X=a=b\",\"EMPTY=\",\"X=again\"]"),
		  "{\"environment\":[" KV("X", "again") "," KV("EMPTY", "") "]}" },
		{ TD(",\"environment\":[" KV("A", "1") "," KV("B", "2") "," KV("A", "3") "]"), NULL,
		  CMD_ONLY, "{\"environment\":[" KV("A", "3") "," KV("B", "2") "]}" },
		{ TD(""), NULL, CMD_ONLY, "{\"environment\":[]}" },
	};
	run_build_cases(cases, ARRAY_SIZE(cases));
}

static void user_workdir(void **state)
{
	(void)state;
	static const struct build_case cases[] = {
		{ TD(",\"user\":\"app\",\"workingDirectory\":\"/app\""), NULL,
		  IMG("\"Cmd\":[\"c\"],\"User\":\"root\",\"WorkingDir\":\"/srv\""),
		  "{\"user\":\"app\",\"workingDirectory\":\"/app\"}" },
		{ TD(""), NULL, IMG("\"Cmd\":[\"c\"],\"User\":\"1000:1000\",\"WorkingDir\":\"/srv\""),
		  "{\"user\":\"1000:1000\",\"workingDirectory\":\"/srv\"}" },
		/* Empty strings are unset, in the definition and in the image. */
		{ TD(",\"user\":\"\",\"workingDirectory\":\"\""), NULL,
		  IMG("\"Cmd\":[\"c\"],\"User\":\"nobody\",\"WorkingDir\":\"/w\""),
		  "{\"user\":\"nobody\",\"workingDirectory\":\"/w\"}" },
		{ TD(",\"user\":\"\""), NULL, IMG("\"Cmd\":[\"c\"],\"User\":\"\",\"WorkingDir\":\"\""),
		  "{\"user\":null,\"workingDirectory\":null}" },
		{ TD(",\"user\":\"app\""), NULL, CMD_ONLY, "{\"user\":\"app\",\"workingDirectory\":null}" },
	};
	run_build_cases(cases, ARRAY_SIZE(cases));
}

/* ---- resources ---------------------------------------------------------- */

#define RES ",\"cpu\":128,\"memory\":256,\"memoryReservation\":64"

static void container_resources(void **state)
{
	(void)state;
	static const struct build_case cases[] = {
		{ TD(RES), NULL, CMD_ONLY, "{\"cpu\":128,\"memory\":256,\"memoryReservation\":64}" },
		{ TD(RES), OV(",\"memory\":512"), CMD_ONLY,
		  "{\"cpu\":128,\"memory\":512,\"memoryReservation\":64}" },
		{ TD(RES), OV(",\"cpu\":512,\"memoryReservation\":32"), CMD_ONLY,
		  "{\"cpu\":512,\"memory\":256,\"memoryReservation\":32}" },
		{ TD(",\"memoryReservation\":64"), OV(",\"memory\":300"), CMD_ONLY,
		  "{\"cpu\":null,\"memory\":300,\"memoryReservation\":64}" },
		/* Another container's override is not this one's. */
		{ TD(RES), "{\"containerOverrides\":[{\"memory\":999}]}", CMD_ONLY,
		  "{\"memory\":256}" },
		/* stopTimeout is clamped to the shim's 2..120. */
		{ TD(",\"stopTimeout\":0"), NULL, CMD_ONLY, "{\"stopTimeout\":2}" },
		{ TD(",\"stopTimeout\":1"), NULL, CMD_ONLY, "{\"stopTimeout\":2}" },
		{ TD(",\"stopTimeout\":2"), NULL, CMD_ONLY, "{\"stopTimeout\":2}" },
		{ TD(",\"stopTimeout\":45"), NULL, CMD_ONLY, "{\"stopTimeout\":45}" },
		{ TD(",\"stopTimeout\":120"), NULL, CMD_ONLY, "{\"stopTimeout\":120}" },
		{ TD(",\"stopTimeout\":121"), NULL, CMD_ONLY, "{\"stopTimeout\":120}" },
		{ TD(",\"stopTimeout\":600"), NULL, CMD_ONLY, "{\"stopTimeout\":120}" },
		{ TD(""), NULL, CMD_ONLY, "{\"stopTimeout\":null,\"linuxParameters\":null,"
					  "\"logConfiguration\":null,\"essential\":null,"
					  "\"startTimeout\":null,\"restartPolicy\":null}" },
		/* startTimeout too, to Fargate's 2..120. */
		{ TD(",\"startTimeout\":1"), NULL, CMD_ONLY, "{\"startTimeout\":2}" },
		{ TD(",\"startTimeout\":30"), NULL, CMD_ONLY, "{\"startTimeout\":30}" },
		{ TD(",\"startTimeout\":500"), NULL, CMD_ONLY, "{\"startTimeout\":120}" },
		/* An enabled restartPolicy goes to the shim as it is; a disabled
		 * one is no policy. */
		{ TD(",\"restartPolicy\":{\"enabled\":true,\"ignoredExitCodes\":[0,2],"
		     "\"restartAttemptPeriod\":90}"), NULL, CMD_ONLY,
		  "{\"restartPolicy\":{\"enabled\":true,\"ignoredExitCodes\":[0,2],"
		  "\"restartAttemptPeriod\":90}}" },
		{ TD(",\"restartPolicy\":{\"enabled\":true}"), NULL, CMD_ONLY,
		  "{\"restartPolicy\":{\"enabled\":true}}" },
		{ TD(",\"restartPolicy\":{\"enabled\":false,\"restartAttemptPeriod\":90}"), NULL,
		  CMD_ONLY, "{\"restartPolicy\":null}" },
	};
	run_build_cases(cases, ARRAY_SIZE(cases));
}

static void task_size(void **state)
{
	(void)state;
	static const struct {
		const char *task, *ov;
		long long cpu, memory;
	} cases[] = {
		{ "", NULL, 0, 0 },
		{ ",\"cpu\":\"256\",\"memory\":\"512\"", NULL, 256, 512 },
		{ ",\"cpu\":\"1 vcpu\",\"memory\":\"1GB\"", NULL, 1024, 1024 },
		{ ",\"cpu\":\"256\",\"memory\":\"512\"", "{\"cpu\":\"1 vcpu\",\"memory\":\"1GB\"}", 1024,
		  1024 },
		{ ",\"cpu\":\"256\",\"memory\":\"512\"", "{\"memory\":\"2048\"}", 256, 2048 },
		{ "", "{\"cpu\":\"512\",\"containerOverrides\":[]}", 512, 0 },
		{ ",\"cpu\":\"2 vCPU\",\"memory\":\"0.5 GiB\"", "{}", 2048, 512 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char td[256];
		snprintf(td, sizeof(td), "{\"family\":\"f\"%s,\"containerDefinitions\":[]}",
			 cases[i].task);
		_cleanup_(cJSON_Deletep) cJSON *t = parse(td);
		_cleanup_(cJSON_Deletep) cJSON *o = cases[i].ov ? parse(cases[i].ov) : NULL;
		assert_int_equal(taskplan_task_cpu(t, o), cases[i].cpu);
		assert_int_equal(taskplan_task_memory(t, o), cases[i].memory);
	}
}

/* ---- the whole plan ----------------------------------------------------- */

#define HEALTH "{\"command\":[\"CMD-SHELL\",\"curl -f localhost\"],\"interval\":10," \
	       "\"timeout\":5,\"retries\":3,\"startPeriod\":0}"
#define ULIMITS "[{\"name\":\"nofile\",\"softLimit\":1024,\"hardLimit\":4096}]"
#define CAPS "{\"add\":[\"NET_ADMIN\"],\"drop\":[\"MKNOD\"]}"
#define LOG_OPTS "{\"max-size\":\"1m\",\"max-file\":\"3\",\"awslogs-group\":\"g\"}"
#define DEPS "[{\"containerName\":\"init\",\"condition\":\"SUCCESS\"}]"

static const char FULL_TD[] = TASKDEF(
	",\"cpu\":\"1 vcpu\",\"memory\":\"2GB\",\"networkMode\":\"awsvpc\"",
	CD("web", ",\"essential\":true,\"portMappings\":[{\"containerPort\":80}],"
	   "\"environment\":[" KV("MODE", "prod") "],\"cpu\":256,\"memory\":512,"
	   "\"memoryReservation\":128,\"stopTimeout\":45,"
	   "\"logConfiguration\":{\"logDriver\":\"awslogs\",\"options\":" LOG_OPTS "},"
	   "\"linuxParameters\":{\"capabilities\":" CAPS ",\"initProcessEnabled\":true,"
	   "\"devices\":[],\"tmpfs\":[]},\"dependsOn\":" DEPS ",\"healthCheck\":" HEALTH ","
	   "\"ulimits\":" ULIMITS ",\"readonlyRootFilesystem\":true,\"dockerLabels\":{\"a\":\"b\"},"
	   "\"privileged\":false,\"mountPoints\":[]") ","
	CD("init", ",\"essential\":false,\"command\":[\"true\"],\"memory\":64"));
static const char FULL_OV[] = "{\"memory\":\"3GB\",\"containerOverrides\":[{\"name\":\"web\","
			      "\"memory\":1024}]}";
static const char *const FULL_IMGS[] = {
	IMG("\"Entrypoint\":[\"/docker-entrypoint.sh\"],\"Cmd\":[\"nginx\",\"-g\",\"daemon off;\"],"
	    "\"Env\":[\"PATH=/usr/bin\"],\"WorkingDir\":\"/srv\",\"ExposedPorts\":{\"80/tcp\":{}}"),
	IMG("\"Cmd\":[\"sh\"],\"User\":\"nobody\""),
};

static struct plan *shim_parse(const cJSON *plan)
{
	_cleanup_free_ char *text = cJSON_Print(plan);
	struct berth_err err = { 0 };
	struct plan *p = NULL;
	if (plan_parse(text, strlen(text), &p, &err) < 0)
		fail_msg("plan_parse refused the plan: %s\n%s", err.msg, text);
	return p;
}

/* The NULL-terminated V holds exactly the strings in WANT; its length. */
static size_t assert_argv(char *const *v, const char *const *want)
{
	size_t n = 0;
	for (; want[n]; n++) {
		assert_non_null(v);
		assert_non_null(v[n]);
		assert_string_equal(v[n], want[n]);
	}
	assert_null(v ? v[n] : NULL);
	return n;
}
#define ASSERT_ARGV(v, ...) assert_argv(v, (const char *const[]){ __VA_ARGS__, NULL })
#define ASSERT_STRV(s, ...) assert_int_equal(ASSERT_ARGV((s)->v, __VA_ARGS__), (s)->n)

/* What a task reserves (ECS's count) and the limits a definition without
 * task cpu/memory runs under (the daemon's defaults, raised to what its
 * containers reserve together). */
static void default_limits_and_reserved(void **state)
{
	(void)state;
	static const struct {
		const char *task, *ctrs, *ov;
		long long res_cpu, res_mem, plan_cpu, plan_mem;
	} cases[] = {
		/* Reservation only: the unlimited task. */
		{ "", CD("a", ",\"memoryReservation\":64"), NULL, 0, 64, 1024, 512 },
		{ "", CD("a", ",\"memory\":300,\"cpu\":700") "," CD("b", ",\"memoryReservation\""
		  ":400,\"memory\":500,\"cpu\":600"), NULL, 1300, 800, 1300, 800 },
		{ "", CD("a", ",\"memory\":100") "," CD("b", ",\"memoryReservation\":50"), NULL, 0,
		  150, 1024, 512 },
		{ "", CD("a", ",\"memory\":100"), "{\"containerOverrides\":[{\"name\":\"a\","
		  "\"memory\":900,\"cpu\":2048}]}", 2048, 900, 2048, 900 },
		{ ",\"cpu\":\"256\",\"memory\":\"128\"", CD("a", ",\"memory\":100"), NULL, 256,
		  128, 256, 128 },
		{ ",\"cpu\":\"256\"", CD("a", ",\"memoryReservation\":64"), "{\"memory\":\"96\"}",
		  256, 96, 256, 96 },
	};
	struct taskplan_env env = ENV;
	env.default_cpu = 1024;
	env.default_memory = 512;
	static const char *const imgs[] = { CMD_ONLY, CMD_ONLY };
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char td[512];
		snprintf(td, sizeof(td), TASKDEF("%s", "%s"), cases[i].task, cases[i].ctrs);
		_cleanup_(cJSON_Deletep) cJSON *t = parse(td);
		_cleanup_(cJSON_Deletep) cJSON *o = cases[i].ov ? parse(cases[i].ov) : NULL;
		assert_int_equal(taskplan_reserved_cpu(t, o), cases[i].res_cpu);
		assert_int_equal(taskplan_reserved_memory(t, o), cases[i].res_mem);
		static const char *const layer[] = { "/l/0" };
		struct taskplan_image im[] = { { imgs[0], layer, 1 }, { imgs[1], layer, 1 } };
		struct berth_err err = { 0 };
		_cleanup_(cJSON_Deletep) cJSON *plan = NULL;
		assert_int_equal(taskplan_build(t, o, im, &env, &plan, &err), 0);
		assert_int_equal(cJSON_GetObjectItem(plan, "cpu")->valuedouble, cases[i].plan_cpu);
		assert_int_equal(cJSON_GetObjectItem(plan, "memory")->valuedouble, cases[i].plan_mem);
		_cleanup_(plan_freep) struct plan *p = shim_parse(plan);
		assert_int_equal(p->memory_mib, cases[i].plan_mem);
	}
}

/* logConfiguration max-size/max-file within the operator's maxima: the
 * definition's when below, the maximum above, the shim's defaults
 * (10m × 5) clamped too; other options and unparsable values pass. */
static void log_options_clamped(void **state)
{
	(void)state;
	static const struct {
		const char *ctr, *want;
	} cases[] = {
		{ "", "{\"max-size\":\"1000000\",\"max-file\":\"3\"}" },
		{ ",\"logConfiguration\":{\"logDriver\":\"json-file\",\"options\":{\"max-size\":"
		  "\"500k\",\"max-file\":\"2\",\"mode\":\"non-blocking\"}}",
		  "{\"max-size\":\"500000\",\"max-file\":\"2\",\"mode\":\"non-blocking\"}" },
		{ ",\"logConfiguration\":{\"logDriver\":\"json-file\",\"options\":{\"max-size\":"
		  "\"1g\",\"max-file\":\"1000\"}}", "{\"max-size\":\"1000000\",\"max-file\":\"3\"}" },
		{ ",\"logConfiguration\":{\"logDriver\":\"json-file\",\"options\":{\"max-size\":"
		  "\"lots\"}}", "{\"max-size\":\"lots\",\"max-file\":\"3\"}" },
	};
	struct taskplan_env env = ENV;
	env.log_max_size = 1000000;
	env.log_max_files = 3;
	static const char *const layer[] = { "/l/0" };
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char td[512];
		snprintf(td, sizeof(td), TD("%s"), cases[i].ctr);
		_cleanup_(cJSON_Deletep) cJSON *t = parse(td);
		struct taskplan_image im[] = { { CMD_ONLY, layer, 1 } };
		struct berth_err err = { 0 };
		_cleanup_(cJSON_Deletep) cJSON *plan = NULL;
		assert_int_equal(taskplan_build(t, NULL, im, &env, &plan, &err), 0);
		const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(plan, "containers"), 0);
		assert_json(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "logConfiguration"), "options"),
			    cases[i].want, td);
	}
	/* What the shim makes of the clamped defaults. */
	_cleanup_(cJSON_Deletep) cJSON *t = parse(TD(""));
	struct taskplan_image im[] = { { CMD_ONLY, layer, 1 } };
	struct berth_err err = { 0 };
	_cleanup_(cJSON_Deletep) cJSON *plan = NULL;
	assert_int_equal(taskplan_build(t, NULL, im, &env, &plan, &err), 0);
	_cleanup_(plan_freep) struct plan *p = shim_parse(plan);
	assert_int_equal(p->containers[0].log_opts.max_size, 1000000);
	assert_int_equal(p->containers[0].log_opts.max_files, 3);
}

static void full_plan(void **state)
{
	(void)state;
	_cleanup_(cJSON_Deletep) cJSON *plan = build_ok(FULL_TD, FULL_OV, FULL_IMGS);
	/* Only what the shim reads: no image, portMappings, dockerLabels,
	 * logDriver, devices. */
	assert_json(plan, "{\"taskId\":\"t-1\",\"cpu\":1024,\"memory\":3072,\"pidsMax\":4096,"
		    "\"taskDir\":\"/srv/berth/tasks/t-1\",\"runDir\":\"/run/berth-test\","
		    "\"logDir\":\"/logs/t-1\",\"cgroupName\":\"berth-test\","
		    "\"network\":{\"mode\":\"awsvpc\",\"bridge\":\"br-test\","
		    "\"subnet\":\"10.200.0.0/24\",\"ipamDir\":\"/srv/ipam\","
		    "\"nftTable\":\"berth_test\",\"securityGroups\":[\"sg-1\",\"default:c1\"]},"
		    "\"containers\":[{\"name\":\"web\",\"layers\":[\"/l/0/0\"],"
		    "\"entryPoint\":[\"/docker-entrypoint.sh\"],"
		    "\"command\":[\"nginx\",\"-g\",\"daemon off;\"],"
		    "\"environment\":[" KV("PATH", "/usr/bin") "," KV("MODE", "prod") "],"
		    "\"workingDirectory\":\"/srv\",\"cpu\":256,\"memory\":1024,"
		    "\"memoryReservation\":128,\"stopTimeout\":45,"
		    "\"logConfiguration\":{\"options\":" LOG_OPTS "},"
		    "\"linuxParameters\":{\"capabilities\":" CAPS ",\"initProcessEnabled\":true},"
		    "\"essential\":true,\"dependsOn\":" DEPS ",\"healthCheck\":" HEALTH ","
		    "\"ulimits\":" ULIMITS ",\"readonlyRootFilesystem\":true},"
		    "{\"name\":\"init\",\"layers\":[\"/l/1/0\",\"/l/1/1\"],\"command\":[\"true\"],"
		    "\"environment\":[],\"user\":\"nobody\",\"memory\":64,\"essential\":false}]}",
		    "plan");

	_cleanup_(plan_freep) struct plan *p = shim_parse(plan);
	assert_string_equal(p->task_id, "t-1");
	assert_string_equal(p->network.nft_table, "berth_test");
	ASSERT_STRV(&p->network.security_groups, "sg-1", "default:c1");
	assert_int_equal(p->cpu, 1024);
	assert_int_equal(p->memory_mib, 3072);
	assert_int_equal(p->pids_max, TASKPLAN_PIDS_MAX);
	assert_string_equal(p->cgroup_name, "berth-test");
	assert_string_equal(p->task_dir, ENV.task_dir);
	assert_string_equal(p->run_dir, ENV.run_dir);
	assert_string_equal(p->log_dir, ENV.log_dir);
	assert_string_equal(p->network.bridge, ENV.bridge);
	assert_string_equal(p->network.subnet, ENV.subnet);
	assert_string_equal(p->network.ipam_dir, ENV.ipam_dir);
	assert_int_equal(p->n_containers, 2);
	const struct plan_container *web = &p->containers[0], *init = &p->containers[1];
	ASSERT_STRV(&web->argv, "/docker-entrypoint.sh", "nginx", "-g", "daemon off;");
	ASSERT_STRV(&web->env, "PATH=/usr/bin", "MODE=prod");
	ASSERT_STRV(&web->layers, "/l/0/0");
	ASSERT_STRV(&web->cap_add, "NET_ADMIN");
	ASSERT_STRV(&web->cap_drop, "MKNOD");
	assert_null(web->user);
	assert_string_equal(web->working_dir, "/srv");
	assert_true(web->essential);
	assert_true(web->init_process);
	assert_true(web->readonly_rootfs);
	assert_int_equal(web->stop_timeout, 45);
	assert_int_equal(web->memory_mib, 1024);
	assert_int_equal(web->memory_reservation_mib, 128);
	assert_int_equal(web->cpu, 256);
	assert_int_equal(web->log_opts.max_size, 1000000);
	assert_int_equal(web->log_opts.max_files, 3);
	assert_true(web->health.present);
	assert_int_equal(web->health.cfg.interval_s, 10);
	assert_int_equal(web->n_ulimits, 1);
	assert_int_equal(web->ulimits[0].resource, RLIMIT_NOFILE);
	assert_int_equal(web->n_deps, 1);
	assert_int_equal(web->deps[0].index, 1);
	assert_int_equal(web->deps[0].condition, PLAN_DEP_SUCCESS);
	ASSERT_STRV(&init->argv, "true");
	ASSERT_STRV(&init->layers, "/l/1/0", "/l/1/1");
	assert_int_equal(init->env.n, 0);
	assert_string_equal(init->user, "nobody");
	assert_false(init->essential);
	assert_false(init->health.present);
	assert_int_equal(init->stop_timeout, PLAN_STOP_TIMEOUT_DEFAULT);
}

/* nginx as Terraform writes it (an empty command list) with the port
 * changed at RunTask: the image's Entrypoint and Cmd still run. */
static void shim_accepts_nginx(void **state)
{
	(void)state;
	static const char td[] = TASKDEF(",\"cpu\":\"256\",\"memory\":\"512\"",
		CD("nginx", ",\"command\":[],\"environment\":["
		   KV("NGINX_PORT", "8080") "],\"healthCheck\":{\"command\":[\"CMD\",\"curl\","
		   "\"-f\",\"http://localhost/\"]}"));
	static const char ov[] = "{\"containerOverrides\":[{\"name\":\"nginx\",\"environment\":["
				 KV("NGINX_PORT", "9090") "]}]}";
	static const char *const img[] = {
		IMG("\"Entrypoint\":[\"/docker-entrypoint.sh\"],\"Cmd\":[\"nginx\",\"-g\","
		    "\"daemon off;\"],\"Env\":[\"PATH=/usr/local/sbin:/usr/bin\","
		    "\"NGINX_VERSION=1.25.3\"],\"StopSignal\":\"SIGQUIT\",\"User\":\"\"")
	};
	_cleanup_(cJSON_Deletep) cJSON *plan = build_ok(td, ov, img);
	_cleanup_(plan_freep) struct plan *p = shim_parse(plan);
	assert_int_equal(p->cpu, 256);
	assert_int_equal(p->memory_mib, 512);
	const struct plan_container *c = &p->containers[0];
	ASSERT_STRV(&c->argv, "/docker-entrypoint.sh", "nginx", "-g", "daemon off;");
	ASSERT_STRV(&c->env, "PATH=/usr/local/sbin:/usr/bin", "NGINX_VERSION=1.25.3",
		    "NGINX_PORT=9090");
	assert_null(c->user);
	assert_null(c->working_dir);
	assert_true(c->essential);
	ASSERT_ARGV(c->health.cfg.argv, "curl", "-f", "http://localhost/");
}

/* A one-off job: the image's user and directory, the command given at
 * RunTask, and an entryPoint [] that clears the image's. */
static void shim_accepts_job(void **state)
{
	(void)state;
	static const char td[] = TASKDEF("", CD("job", ",\"entryPoint\":[],\"command\":[\"sleep\","
		"\"1\"],\"user\":\"\",\"memoryReservation\":32,\"stopTimeout\":1,\"environment\":["
		KV("A", "def") "],\"ulimits\":[{\"name\":\"nproc\",\"softLimit\":64,"
		"\"hardLimit\":128}],\"logConfiguration\":{\"logDriver\":\"json-file\"}"));
	static const char ov[] = "{\"containerOverrides\":[{\"name\":\"job\",\"command\":[\"sh\","
				 "\"-c\",\"echo $A\"],\"environment\":[" KV("A", "1=2") "]}]}";
	static const char *const img[] = {
		IMG("\"Entrypoint\":[\"/bin/tini\",\"--\"],\"Cmd\":[\"serve\"],\"User\":\"1000:1000\","
		    "\"WorkingDir\":\"/home/app\",\"Env\":[\"PATH=/bin\",\"A=img\"]")
	};
	_cleanup_(cJSON_Deletep) cJSON *plan = build_ok(td, ov, img);
	_cleanup_(plan_freep) struct plan *p = shim_parse(plan);
	assert_int_equal(p->cpu, 0);
	assert_int_equal(p->memory_mib, 0);
	const struct plan_container *c = &p->containers[0];
	ASSERT_STRV(&c->argv, "sh", "-c", "echo $A");
	ASSERT_STRV(&c->env, "PATH=/bin", "A=1=2");
	assert_string_equal(c->user, "1000:1000");
	assert_string_equal(c->working_dir, "/home/app");
	assert_int_equal(c->stop_timeout, 2);
	assert_int_equal(c->memory_reservation_mib, 32);
	assert_int_equal(c->memory_mib, 0);
	assert_int_equal(c->n_ulimits, 1);
	assert_int_equal(c->ulimits[0].resource, RLIMIT_NPROC);
	assert_int_equal(c->ulimits[0].hard, 128);
	assert_int_equal(c->log_opts.max_files, RT_LOG_DEFAULT_MAX_FILES);
	assert_false(c->init_process);
	assert_int_equal(c->cap_add.n, 0);
}

/* ---- taskplan_check ----------------------------------------------------- */

struct check_case {
	const char *td, *ov;
	int code;           /* 0: accepted */
	const char *want;   /* in the message */
};

static void run_check_cases(const struct check_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		_cleanup_(cJSON_Deletep) cJSON *td = parse(c[i].td);
		_cleanup_(cJSON_Deletep) cJSON *ov = c[i].ov ? parse(c[i].ov) : NULL;
		struct berth_err err = { 0 };
		int r = taskplan_check(td, ov, &err);
		if (r != -c[i].code)
			fail_msg("row %zu: %d (%s), want %d: %s", i, r, err.msg, -c[i].code, c[i].td);
		if (c[i].want && !strstr(err.msg, c[i].want))
			fail_msg("row %zu: \"%s\" lacks \"%s\"", i, err.msg, c[i].want);
	}
}

/* Refused with SET on the second container, accepted with UNSET. */
#define REFUSED(path, set, unset)                                                      \
	{ TD2("", "," set), NULL, ENOTSUP, "containerDefinitions[1] (side): " path ": " }, \
	{ TD2("", "," unset), NULL, 0, NULL }
#define LINUX(m, set, unset) \
	REFUSED("linuxParameters." m, "\"linuxParameters\":{\"" m "\":" set "}", \
		"\"linuxParameters\":{\"" m "\":" unset "}")
#define MEMBER(m, set, unset) REFUSED(m, "\"" m "\":" set, "\"" m "\":" unset)

static void check_container_members(void **state)
{
	(void)state;
	static const struct check_case cases[] = {
		{ TD2("", ",\"privileged\":true"), NULL, ENOTSUP, "containerDefinitions[1] (side): "
		  "privileged: Berth does not run privileged containers" },
		MEMBER("privileged", "true", "false"),
		MEMBER("environmentFiles", "[{\"value\":\"arn:aws:s3:::b/e\",\"type\":\"s3\"}]", "[]"),
		MEMBER("repositoryCredentials", "{\"credentialsParameter\":\"arn:x\"}", "null"),
		MEMBER("links", "[\"web\"]", "[]"),
		MEMBER("disableNetworking", "true", "false"),
		MEMBER("hostname", "\"h\"", "null"),
		MEMBER("dnsServers", "[\"1.1.1.1\"]", "[]"),
		MEMBER("dnsSearchDomains", "[\"corp.local\"]", "[]"),
		MEMBER("extraHosts", "[{\"hostname\":\"a\",\"ipAddress\":\"10.0.0.1\"}]", "[]"),
		MEMBER("dockerSecurityOptions", "[\"no-new-privileges\"]", "[]"),
		MEMBER("systemControls", "[{\"namespace\":\"net.core.somaxconn\",\"value\":\"1\"}]",
		       "[]"),
		MEMBER("interactive", "true", "false"),
		MEMBER("pseudoTerminal", "true", "false"),
		MEMBER("firelensConfiguration", "{\"type\":\"fluentbit\"}", "null"),
		MEMBER("resourceRequirements", "[{\"type\":\"GPU\",\"value\":\"1\"}]", "[]"),
		MEMBER("credentialSpecs", "[\"credentialspec:arn:x\"]", "[]"),
		LINUX("devices", "[{\"hostPath\":\"/dev/fuse\"}]", "[]"),
		LINUX("tmpfs", "[{\"containerPath\":\"/t\",\"size\":64}]", "[]"),
		LINUX("sharedMemorySize", "64", "null"),
		LINUX("maxSwap", "1024", "null"),
		LINUX("swappiness", "60", "null"),
		/* What linuxParameters Berth honours. */
		{ TD2("", ",\"linuxParameters\":{\"capabilities\":{\"add\":[\"NET_ADMIN\"]},"
			  "\"initProcessEnabled\":true}"), NULL, 0, NULL },
		/* The first container is named too. */
		{ TASKDEF("", CD("db", ",\"links\":[\"x\"]")), NULL, ENOTSUP,
		  "containerDefinitions[0] (db): links: links are not supported" },
	};
	run_check_cases(cases, ARRAY_SIZE(cases));
}

static void check_task_members(void **state)
{
	(void)state;
	static const struct check_case cases[] = {
		{ TD2(",\"networkMode\":\"bridge\"", ""), NULL, 0, NULL },
		{ TD2(",\"networkMode\":\"host\"", ""), NULL, 0, NULL },
		{ TD2(",\"networkMode\":\"none\"", ""), NULL, 0, NULL },
		{ TD2(",\"networkMode\":\"awsvpc\"", ""), NULL, 0, NULL },
		{ TD2("", ""), NULL, 0, NULL },
		{ TD2(",\"pidMode\":\"host\"", ""), NULL, ENOTSUP,
		  "pidMode host: containers always get their own namespace" },
		{ TD2(",\"pidMode\":\"task\"", ""), NULL, ENOTSUP, "pidMode task: " },
		{ TD2(",\"ipcMode\":\"host\"", ""), NULL, ENOTSUP, "ipcMode host: " },
		{ TD2(",\"ipcMode\":\"none\"", ""), NULL, ENOTSUP, "ipcMode none: " },
		{ TD2(",\"proxyConfiguration\":{\"type\":\"APPMESH\",\"containerName\":\"web\"}", ""),
		  NULL, ENOTSUP, "proxyConfiguration: App Mesh proxies are not supported" },
		{ TD2(",\"inferenceAccelerators\":[{\"deviceName\":\"d\",\"deviceType\":\"eia2\"}]",
		      ""), NULL, ENOTSUP, "inferenceAccelerators: not supported" },
		{ TD2(",\"inferenceAccelerators\":[]", ""), NULL, 0, NULL },
	};
	run_check_cases(cases, ARRAY_SIZE(cases));
}

static void check_overrides(void **state)
{
	(void)state;
	static const struct check_case cases[] = {
		{ TD2("", ""), "{\"containerOverrides\":[{\"name\":\"nope\"}]}", EINVAL,
		  "Override for container named nope is not a container in the TaskDefinition." },
		{ TD2("", ""), "{\"containerOverrides\":[{\"name\":\"side\",\"command\":[\"x\"]},"
			       "{\"name\":\"ghost\"}]}", EINVAL, "container named ghost is not" },
		{ TD2("", ""), "{\"containerOverrides\":[{\"name\":\"web\"},{\"name\":\"side\"},"
			       "{\"memory\":5}]}", 0, NULL },
		{ TD2("", ""), "{\"cpu\":\"lots\"}", EINVAL,
		  "overrides.cpu lots: expected CPU units such as 256 or \"1 vcpu\"" },
		{ TD2("", ""), "{\"cpu\":\"0\"}", EINVAL, "overrides.cpu 0: " },
		{ TD2("", ""), "{\"memory\":\"1TB\"}", EINVAL,
		  "overrides.memory 1TB: expected MiB such as 512 or \"1GB\"" },
		{ TD2("", ""), "{\"cpu\":\"1 vcpu\",\"memory\":\"2GB\"}", 0, NULL },
		{ TD2("", ""), "{}", 0, NULL },
		/* What Berth cannot run is said before what the overrides get wrong. */
		{ TD2("", ",\"privileged\":true"), "{\"cpu\":\"lots\"}", ENOTSUP, "privileged" },
	};
	run_check_cases(cases, ARRAY_SIZE(cases));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(argv_merge),
		cmocka_unit_test(build_errors),
		cmocka_unit_test(environment_merge),
		cmocka_unit_test(user_workdir),
		cmocka_unit_test(container_resources),
		cmocka_unit_test(task_size),
		cmocka_unit_test(default_limits_and_reserved),
		cmocka_unit_test(log_options_clamped),
		cmocka_unit_test(full_plan),
		cmocka_unit_test(shim_accepts_nginx),
		cmocka_unit_test(shim_accepts_job),
		cmocka_unit_test(check_container_members),
		cmocka_unit_test(check_task_members),
		cmocka_unit_test(check_overrides),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
