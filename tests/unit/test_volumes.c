/* daemon/sched/volumes: what RunTask refuses of a definition's volumes, the
 * operator's host-path policy, the plan's volumes and mountPoints (with
 * volumesFrom expanded), and the shim's parser of them (runtime/plan.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/json.h"
#include "daemon/sched/volumes.h"
#include "runtime/plan.h"

static cJSON *parse(const char *text)
{
	cJSON *v = cJSON_Parse(text);
	if (!v)
		fail_msg("test JSON does not parse: %s", text);
	return v;
}

static void assert_json(const cJSON *v, const char *want, const char *what)
{
	_cleanup_(cJSON_Deletep) cJSON *w = parse(want);
	_cleanup_free_ char *got = v ? cJSON_PrintUnformatted(v) : strdup("(absent)");
	if (!v || !cJSON_Compare(v, w, true))
		fail_msg("%s: got %s, want %s", what, got, want);
}

static const char *const PREFIXES[] = { "/srv/data", "/opt/shared" };
static const struct taskplan_env ENV = {
	.task_id = "t-1", .task_dir = "/var/lib/berth/tasks/t-1",
	.volumes_dir = "/var/lib/berth/volumes", .host_paths = PREFIXES, .n_host_paths = 2,
};

#define TD "{\"volumes\":[{\"name\":\"scratch\"}," \
	"{\"name\":\"empty-host\",\"host\":{}}," \
	"{\"name\":\"cache\",\"dockerVolumeConfiguration\":{\"scope\":\"shared\"," \
	"\"autoprovision\":true,\"driver\":\"local\",\"labels\":{\"a\":\"b\"}}}," \
	"{\"name\":\"pre\",\"dockerVolumeConfiguration\":{\"scope\":\"shared\"}}," \
	"{\"name\":\"logs\",\"host\":{\"sourcePath\":\"/srv/data/app/logs\"}}," \
	"{\"name\":\"whole\",\"host\":{\"sourcePath\":\"/opt/shared\"}}]," \
	"\"containerDefinitions\":[" \
	"{\"name\":\"a\",\"mountPoints\":[{\"sourceVolume\":\"scratch\",\"containerPath\":\"/s\"}," \
	"{\"sourceVolume\":\"logs\",\"containerPath\":\"/l\",\"readOnly\":true}]}," \
	"{\"name\":\"b\",\"mountPoints\":[{\"sourceVolume\":\"cache\",\"containerPath\":\"/s\"}]," \
	"\"volumesFrom\":[{\"sourceContainer\":\"a\"}]}," \
	"{\"name\":\"c\",\"volumesFrom\":[{\"sourceContainer\":\"b\",\"readOnly\":true}]}," \
	"{\"name\":\"d\"}]}"

static void plan_volumes(void **state)
{
	(void)state;
	_cleanup_(cJSON_Deletep) cJSON *td = parse(TD), *plan = parse("{}");
	struct berth_err err = { 0 };
	assert_int_equal(volumes_check(td, &err), 0);
	assert_int_equal(volumes_plan(td, &ENV, plan, &err), 0);
	assert_json(cJSON_GetObjectItem(plan, "volumes"),
		    "[{\"name\":\"scratch\",\"root\":\"/var/lib/berth/tasks/t-1/volumes\","
		    "\"path\":\"scratch\",\"create\":true,\"shared\":false},"
		    "{\"name\":\"empty-host\",\"root\":\"/var/lib/berth/tasks/t-1/volumes\","
		    "\"path\":\"empty-host\",\"create\":true,\"shared\":false},"
		    "{\"name\":\"cache\",\"root\":\"/var/lib/berth/volumes\",\"path\":\"cache\","
		    "\"create\":true,\"shared\":true},"
		    "{\"name\":\"pre\",\"root\":\"/var/lib/berth/volumes\",\"path\":\"pre\","
		    "\"create\":false,\"shared\":true},"
		    "{\"name\":\"logs\",\"root\":\"/srv/data\",\"path\":\"app/logs\","
		    "\"create\":false,\"shared\":false},"
		    "{\"name\":\"whole\",\"root\":\"/opt/shared\",\"path\":\"\","
		    "\"create\":false,\"shared\":false}]", "volumes");
	static const char *const want[] = {
		"[{\"sourceVolume\":\"scratch\",\"containerPath\":\"/s\",\"readOnly\":false},"
		"{\"sourceVolume\":\"logs\",\"containerPath\":\"/l\",\"readOnly\":true}]",
		/* Its own /s wins over a's; a's /l comes along. */
		"[{\"sourceVolume\":\"cache\",\"containerPath\":\"/s\",\"readOnly\":false},"
		"{\"sourceVolume\":\"logs\",\"containerPath\":\"/l\",\"readOnly\":true}]",
		/* Through b, transitively, and read-only. */
		"[{\"sourceVolume\":\"cache\",\"containerPath\":\"/s\",\"readOnly\":true},"
		"{\"sourceVolume\":\"logs\",\"containerPath\":\"/l\",\"readOnly\":true}]",
		NULL,
	};
	cJSON *ctrs = cJSON_AddArrayToObject(plan, "containers");
	const cJSON *cd;
	int i = 0;
	cJSON_ArrayForEach(cd, cJSON_GetObjectItem(td, "containerDefinitions")) {
		cJSON *pc = cJSON_CreateObject();
		cJSON_AddItemToArray(ctrs, pc);
		assert_int_equal(volumes_container_plan(td, cd, NULL, pc, &err), 0);
		if (want[i])
			assert_json(cJSON_GetObjectItem(pc, "mountPoints"), want[i], "mountPoints");
		else
			assert_null(cJSON_GetObjectItem(pc, "mountPoints"));
		cJSON_AddStringToObject(pc, "name", cJSON_GetObjectItem(cd, "name")->valuestring);
		cJSON *layers = cJSON_AddArrayToObject(pc, "layers");
		cJSON_AddItemToArray(layers, cJSON_CreateString("/l/0"));
		cJSON *cmd = cJSON_AddArrayToObject(pc, "command");
		cJSON_AddItemToArray(cmd, cJSON_CreateString("true"));
		i++;
	}
	/* The shim takes it as it is. */
	cJSON_AddStringToObject(plan, "taskId", "t-1");
	cJSON_AddStringToObject(plan, "taskDir", ENV.task_dir);
	_cleanup_free_ char *text = cJSON_PrintUnformatted(plan);
	_cleanup_(plan_freep) struct plan *p = NULL;
	if (plan_parse(text, strlen(text), &p, &err) < 0)
		fail_msg("plan_parse: %s", err.msg);
	assert_int_equal(p->n_volumes, 6);
	assert_true(p->volumes[2].shared && p->volumes[2].create);
	assert_int_equal(p->containers[2].n_mounts, 2);
	assert_int_equal(p->containers[2].mounts[0].volume, 2);
	assert_true(p->containers[2].mounts[0].readonly);
	assert_string_equal(p->containers[2].mounts[1].container_path, "/l");
}

/* Only a container's own mounts at its image's VOLUME paths are seeded
 * from the image; inherited ones are their own container's business. */
static void image_volumes_marked(void **state)
{
	(void)state;
	_cleanup_(cJSON_Deletep) cJSON *td = parse(TD), *img = parse(
		"{\"Volumes\":{\"/s\":{},\"/elsewhere\":{}}}");
	const cJSON *defs = cJSON_GetObjectItem(td, "containerDefinitions");
	struct berth_err err = { 0 };
	_cleanup_(cJSON_Deletep) cJSON *a = cJSON_CreateObject(), *c = cJSON_CreateObject();
	assert_int_equal(volumes_container_plan(td, cJSON_GetArrayItem(defs, 0), img, a, &err), 0);
	assert_int_equal(volumes_container_plan(td, cJSON_GetArrayItem(defs, 2), img, c, &err), 0);
	assert_json(cJSON_GetObjectItem(a, "mountPoints"),
		    "[{\"sourceVolume\":\"scratch\",\"containerPath\":\"/s\",\"readOnly\":false,"
		    "\"imageVolume\":true},"
		    "{\"sourceVolume\":\"logs\",\"containerPath\":\"/l\",\"readOnly\":true}]", "a");
	const cJSON *m;
	cJSON_ArrayForEach(m, cJSON_GetObjectItem(c, "mountPoints"))
		assert_null(cJSON_GetObjectItem(m, "imageVolume"));
}

struct refusal {
	const char *volume, *want;
};

static void refused_members(void **state)
{
	(void)state;
	static const struct refusal cases[] = {
		{ "{\"name\":\"v\",\"efsVolumeConfiguration\":{\"fileSystemId\":\"fs-1\"}}",
		  "volumes[0] (v): efsVolumeConfiguration: " },
		{ "{\"name\":\"v\",\"fsxWindowsFileServerVolumeConfiguration\":{}}",
		  "volumes[0] (v): fsxWindowsFileServerVolumeConfiguration: " },
		{ "{\"name\":\"v\",\"configuredAtLaunch\":true}", "volumes[0] (v): configuredAtLaunch: " },
		{ "{\"name\":\"v\",\"dockerVolumeConfiguration\":{\"driver\":\"rexray\"}}",
		  "volumes[0] (v): dockerVolumeConfiguration.driver rexray: " },
		{ "{\"name\":\"v\",\"dockerVolumeConfiguration\":{\"driverOpts\":{\"type\":\"nfs\"}}}",
		  "volumes[0] (v): dockerVolumeConfiguration.driverOpts: " },
		{ "{\"name\":\"v\",\"dockerVolumeConfiguration\":{\"scope\":\"global\"}}",
		  "volumes[0] (v): dockerVolumeConfiguration.scope global: " },
		{ "{\"name\":\"v\",\"dockerVolumeConfiguration\":{\"autoprovision\":true}}",
		  "volumes[0] (v): dockerVolumeConfiguration.autoprovision: " },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[512];
		snprintf(text, sizeof(text), "{\"volumes\":[%s]}", cases[i].volume);
		_cleanup_(cJSON_Deletep) cJSON *td = parse(text);
		struct berth_err err = { 0 };
		assert_int_equal(volumes_check(td, &err), -ENOTSUP);
		if (strncmp(err.msg, cases[i].want, strlen(cases[i].want)))
			fail_msg("%s: got \"%s\"", text, err.msg);
	}
	_cleanup_(cJSON_Deletep) cJSON *ok = parse("{\"volumes\":[{\"name\":\"v\","
						   "\"configuredAtLaunch\":false}]}");
	struct berth_err err = { 0 };
	assert_int_equal(volumes_check(ok, &err), 0);
}

static void host_policy(void **state)
{
	(void)state;
	struct berth_policy none = { 0 }, some = { .host_paths = { "/srv/data" }, .n_host_paths = 1 };
	static const struct { const char *src; const char *want; } cases[] = {
		{ "/srv/data", NULL },
		{ "/srv/data/x/y", NULL },
		{ "/srv/database", "not beneath a prefix" },
		{ "/srv", "not beneath a prefix" },
		{ "/srv/data/../../etc", "without '.', '..'" },
		{ "/srv/data//x", "without '.', '..'" },
		{ "/srv/data/", "without '.', '..'" },
		{ "/", "without '.', '..'" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text), "{\"volumes\":[{\"name\":\"h\",\"host\":{\"sourcePath\":"
			 "\"%s\"}}]}", cases[i].src);
		_cleanup_(cJSON_Deletep) cJSON *td = parse(text);
		struct berth_err err = { 0 };
		assert_int_equal(volumes_check_host(&none, td, &err), -EPERM);
		assert_non_null(strstr(err.msg, "--allow-host-path"));
		int r = volumes_check_host(&some, td, &err);
		if (!cases[i].want)
			assert_int_equal(r, 0);
		else if (r != -EPERM || !strstr(err.msg, cases[i].want))
			fail_msg("%s: got %d \"%s\"", cases[i].src, r, err.msg);
	}
}

static void allowed_prefixes(void **state)
{
	(void)state;
	struct berth_policy p = { 0 };
	struct berth_err err = { 0 };
	assert_int_equal(volumes_allow_host_path(&p, "/", &err), -EINVAL);
	assert_int_equal(volumes_allow_host_path(&p, "/tmp/", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "give the canonical path /tmp"));
	assert_int_equal(volumes_allow_host_path(&p, "/nonexistent-berth-dir", &err), -ENOENT);
	assert_int_equal(volumes_allow_host_path(&p, "/tmp", &err), 0);
	const char *inside[] = { "/tmp/berth-root" }, *above[] = { "/" }, *beside[] = { "/var" };
	assert_int_equal(volumes_check_prefixes(&p, inside, 1, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "would expose Berth's own directory"));
	assert_int_equal(volumes_check_prefixes(&p, above, 1, &err), -EINVAL);
	assert_int_equal(volumes_check_prefixes(&p, beside, 1, &err), 0);
}

/* What the shim's parser refuses in the volume members. */
static void shim_refuses(void **state)
{
	(void)state;
	static const struct { const char *vols, *mounts, *want; } cases[] = {
		{ "[{\"name\":\"v\",\"root\":\"rel\"}]", "[]", "volumes[0].root \"rel\"" },
		{ "[{\"name\":\"v\",\"root\":\"/r\",\"path\":\"a/b\",\"create\":true}]", "[]",
		  "volumes[0].path \"a/b\"" },
		{ "[{\"name\":\"v\",\"root\":\"/r\",\"path\":\"/abs\"}]", "[]", "volumes[0].path" },
		{ "[{\"name\":\"v\",\"root\":\"/r\"},{\"name\":\"v\",\"root\":\"/r\"}]", "[]",
		  "volumes[1].name \"v\": used twice" },
		{ "[{\"name\":\"v\",\"root\":\"/r\"}]",
		  "[{\"sourceVolume\":\"w\",\"containerPath\":\"/x\"}]",
		  "containers[0].mountPoints[0].sourceVolume \"w\"" },
		{ "[{\"name\":\"v\",\"root\":\"/r\"}]",
		  "[{\"sourceVolume\":\"v\",\"containerPath\":\"/x/../etc\"}]",
		  "containers[0].mountPoints[0].containerPath" },
		{ "[{\"name\":\"v\",\"root\":\"/r\"}]",
		  "[{\"sourceVolume\":\"v\",\"containerPath\":\"/\"}]",
		  "containers[0].mountPoints[0].containerPath" },
		{ "[{\"name\":\"v\",\"root\":\"/r\"}]",
		  "[{\"sourceVolume\":\"v\",\"containerPath\":\"/x\"},"
		  "{\"sourceVolume\":\"v\",\"containerPath\":\"/x\"}]",
		  "containers[0].mountPoints[1].containerPath \"/x\": used twice" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[1024];
		snprintf(text, sizeof(text), "{\"taskId\":\"t\",\"taskDir\":\"/t\",\"volumes\":%s,"
			 "\"containers\":[{\"name\":\"c\",\"layers\":[\"/l\"],\"command\":[\"x\"],"
			 "\"mountPoints\":%s}]}", cases[i].vols, cases[i].mounts);
		struct plan *p = NULL;
		struct berth_err err = { 0 };
		assert_int_equal(plan_parse(text, strlen(text), &p, &err), -EINVAL);
		if (!strstr(err.msg, cases[i].want))
			fail_msg("%s: got \"%s\"", text, err.msg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plan_volumes),
		cmocka_unit_test(image_volumes_marked),
		cmocka_unit_test(refused_members),
		cmocka_unit_test(host_policy),
		cmocka_unit_test(allowed_prefixes),
		cmocka_unit_test(shim_refuses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
