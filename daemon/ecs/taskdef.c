/* daemon/ecs/taskdef: RegisterTaskDefinition validation and normalisation. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/json.h"
#include "daemon/sched/policy.h"
#include "daemon/sched/tasksecrets.h"
#include "daemon/ecs/taskdef.h"
#include "images/ref.h"
#include "netns/net.h"

/* ---- member tables ---- */

enum kind {
	K_STR,
	K_INT,
	K_BOOL,
	K_ENUM,
	K_OBJ,       /* an object; SUB checks its members (NULL: any object) */
	K_STRLIST,
	K_ENUMLIST,
	K_OBJLIST,   /* a list of objects, each checked against SUB */
	K_STRMAP,    /* an object of strings (dockerLabels, options) */
	K_ANY,       /* stored as given */
};

struct member {
	const char *name;
	enum kind kind;
	bool required;
	int64_t min, max;              /* K_INT */
	const char *const *words;      /* K_ENUM, K_ENUMLIST */
	const struct member *sub;      /* K_OBJ, K_OBJLIST */
};

#define STR(n) { n, K_STR, false, 0, 0, NULL, NULL }
#define STR_REQ(n) { n, K_STR, true, 0, 0, NULL, NULL }
#define INT(n, lo, hi) { n, K_INT, false, lo, hi, NULL, NULL }
#define INT_REQ(n, lo, hi) { n, K_INT, true, lo, hi, NULL, NULL }
#define BOOL(n) { n, K_BOOL, false, 0, 0, NULL, NULL }
#define ENUM(n, w) { n, K_ENUM, false, 0, 0, w, NULL }
#define ENUM_REQ(n, w) { n, K_ENUM, true, 0, 0, w, NULL }
#define OBJ(n, s) { n, K_OBJ, false, 0, 0, NULL, s }
#define STRLIST(n) { n, K_STRLIST, false, 0, 0, NULL, NULL }
#define STRLIST_REQ(n) { n, K_STRLIST, true, 0, 0, NULL, NULL }
#define ENUMLIST(n, w) { n, K_ENUMLIST, false, 0, 0, w, NULL }
#define OBJLIST(n, s) { n, K_OBJLIST, false, 0, 0, NULL, s }
#define STRMAP(n) { n, K_STRMAP, false, 0, 0, NULL, NULL }
#define ANY(n) { n, K_ANY, false, 0, 0, NULL, NULL }
#define END { NULL, K_ANY, false, 0, 0, NULL, NULL }

static const char *const network_modes[] = { "bridge", "host", "awsvpc", "none", NULL };
static const char *const compatibilities[] = { "EC2", "FARGATE", "EXTERNAL", NULL };
static const char *const pid_modes[] = { "host", "task", NULL };
static const char *const ipc_modes[] = { "host", "task", "none", NULL };
static const char *const protocols[] = { "tcp", "udp", NULL };
static const char *const app_protocols[] = { "http", "http2", "grpc", NULL };
static const char *const conditions[] = { "START", "COMPLETE", "SUCCESS", "HEALTHY", NULL };
static const char *const env_file_types[] = { "s3", NULL };
static const char *const resource_types[] = { "GPU", "InferenceAccelerator", NULL };
static const char *const constraint_types[] = { "memberOf", NULL };
static const char *const architectures[] = { "X86_64", "ARM64", NULL };

static const struct member key_value[] = { STR("name"), STR("value"), END };
static const struct member port_mapping[] = {
	INT("containerPort", 0, 65535), INT("hostPort", 0, 65535), ENUM("protocol", protocols),
	STR("name"), ENUM("appProtocol", app_protocols), STR("containerPortRange"), END,
};
static const struct member mount_point[] = {
	STR("sourceVolume"), STR("containerPath"), BOOL("readOnly"), END,
};
static const struct member volume_from[] = { STR("sourceContainer"), BOOL("readOnly"), END };
static const struct member ulimit[] = {
	STR_REQ("name"), INT_REQ("softLimit", INT32_MIN, INT32_MAX),
	INT_REQ("hardLimit", INT32_MIN, INT32_MAX), END,
};
static const struct member secret[] = { STR_REQ("name"), STR_REQ("valueFrom"), END };
static const struct member env_file[] = {
	STR_REQ("value"), ENUM_REQ("type", env_file_types), END,
};
static const struct member dependency[] = {
	STR_REQ("containerName"), ENUM_REQ("condition", conditions), END,
};
static const struct member host_entry[] = { STR_REQ("hostname"), STR_REQ("ipAddress"), END };
static const struct member resource_req[] = {
	STR_REQ("value"), ENUM_REQ("type", resource_types), END,
};
static const struct member log_config[] = {
	STR_REQ("logDriver"), STRMAP("options"), OBJLIST("secretOptions", secret), END,
};
static const struct member health_check[] = {
	STRLIST_REQ("command"), INT("interval", 5, 300), INT("timeout", 2, 60),
	INT("retries", 1, 10), INT("startPeriod", 0, 300), END,
};
static const struct member repo_creds[] = { STR_REQ("credentialsParameter"), END };
/* Types only: check_restart_policy() holds ECS's rules. */
static const struct member restart_policy[] = {
	BOOL("enabled"), ANY("ignoredExitCodes"), INT("restartAttemptPeriod", INT32_MIN, INT32_MAX),
	END,
};
static const struct member capabilities[] = { STRLIST("add"), STRLIST("drop"), END };
static const struct member tmpfs[] = {
	STR_REQ("containerPath"), INT_REQ("size", 1, INT32_MAX), STRLIST("mountOptions"), END,
};
static const struct member linux_params[] = {
	OBJ("capabilities", capabilities), BOOL("initProcessEnabled"),
	INT("sharedMemorySize", 0, INT32_MAX), OBJLIST("tmpfs", tmpfs), INT("maxSwap", 0, INT32_MAX),
	INT("swappiness", 0, 100), ANY("devices"), END,
};

static const struct member container[] = {
	/* name and image: required, but checked by check_containers() in
	 * ECS's words rather than as a missing member. */
	STR("name"), STR("image"), OBJ("repositoryCredentials", repo_creds),
	INT("cpu", 0, TASKDEF_EC2_CPU_MAX), INT("memory", 1, INT32_MAX),
	INT("memoryReservation", 1, INT32_MAX), STRLIST("links"),
	OBJLIST("portMappings", port_mapping), BOOL("essential"),
	OBJ("restartPolicy", restart_policy), STRLIST("entryPoint"), STRLIST("command"),
	OBJLIST("environment", key_value), OBJLIST("environmentFiles", env_file),
	OBJLIST("mountPoints", mount_point), OBJLIST("volumesFrom", volume_from),
	OBJ("linuxParameters", linux_params), OBJLIST("secrets", secret),
	OBJLIST("dependsOn", dependency), INT("startTimeout", 0, INT32_MAX),
	INT("stopTimeout", 0, INT32_MAX), STR("versionConsistency"), STR("hostname"), STR("user"),
	STR("workingDirectory"), BOOL("disableNetworking"), BOOL("privileged"),
	BOOL("readonlyRootFilesystem"), STRLIST("dnsServers"), STRLIST("dnsSearchDomains"),
	OBJLIST("extraHosts", host_entry), STRLIST("dockerSecurityOptions"), BOOL("interactive"),
	BOOL("pseudoTerminal"), STRMAP("dockerLabels"), OBJLIST("ulimits", ulimit),
	OBJ("logConfiguration", log_config), OBJ("healthCheck", health_check),
	OBJLIST("systemControls", key_value), OBJLIST("resourceRequirements", resource_req),
	OBJ("firelensConfiguration", NULL), STRLIST("credentialSpecs"), END,
};

static const struct member host_volume[] = { STR("sourcePath"), END };
static const struct member efs_volume[] = {
	STR_REQ("fileSystemId"), STR("rootDirectory"), ANY("transitEncryption"),
	INT("transitEncryptionPort", 0, 65535), OBJ("authorizationConfig", NULL), END,
};
static const struct member volume[] = {
	STR("name"), OBJ("host", host_volume), OBJ("dockerVolumeConfiguration", NULL),
	OBJ("efsVolumeConfiguration", efs_volume), ANY("fsxWindowsFileServerVolumeConfiguration"),
	BOOL("configuredAtLaunch"), END,
};
static const struct member constraint[] = {
	ENUM("type", constraint_types), STR("expression"), END,
};
static const struct member ephemeral[] = { INT_REQ("sizeInGiB", 21, 200), END };
static const struct member platform[] = {
	ENUM("cpuArchitecture", architectures), STR("operatingSystemFamily"), END,
};

/* RegisterTaskDefinitionRequest (botocore 1.29 and 1.43).  containerDefinitions
 * and tags are checked on their own; a member not listed is not stored. */
static const struct member request[] = {
	STR("taskRoleArn"), STR("executionRoleArn"), ENUM("networkMode", network_modes),
	OBJLIST("volumes", volume), OBJLIST("placementConstraints", constraint),
	ENUMLIST("requiresCompatibilities", compatibilities), STR("cpu"), STR("memory"),
	ENUM("pidMode", pid_modes), ENUM("ipcMode", ipc_modes), OBJ("proxyConfiguration", NULL),
	ANY("inferenceAccelerators"), OBJ("ephemeralStorage", ephemeral),
	OBJ("runtimePlatform", platform), BOOL("enableFaultInjection"), END,
};

static int wrong(struct api_call *c, const char *path, const char *name, const char *what)
{
	return api_error(c, 0, API_E_INVALID, "%s%s: expected %s", path, name, what);
}

static int words_error(struct api_call *c, const char *path, const char *name, const char *s,
		       const char *const *words)
{
	char list[256] = "";
	size_t off = 0;
	for (size_t i = 0; words[i] && off < sizeof(list); i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "", words[i]);
	return api_error(c, 0, API_E_INVALID, "%s%s: '%.128s' is not one of %s", path, name, s, list);
}

static bool is_word(const char *s, const char *const *words)
{
	for (size_t i = 0; words[i]; i++)
		if (strcmp(s, words[i]) == 0)
			return true;
	return false;
}

static int check_object(struct api_call *c, const cJSON *obj, const char *path,
			const struct member *members);

static int check_member(struct api_call *c, const cJSON *obj, const char *path,
			const struct member *m)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, m->name), *it;
	bool have, b;
	int64_t n;
	const char *s;
	char sub[128];
	int i = 0;
	if (!v || cJSON_IsNull(v)) {
		if (m->required)
			return api_error(c, 0, API_E_INVALID, "%s%s: a value is required", path, m->name);
		return 0;
	}
	switch (m->kind) {
	case K_STR:
		return api_get_string(c, obj, path, m->name, m->required, &s);
	case K_INT:
		return api_get_int(c, obj, path, m->name, m->required, m->min, m->max, &have, &n);
	case K_BOOL:
		return api_get_bool(c, obj, path, m->name, &have, &b);
	case K_ENUM:
		return api_get_enum(c, obj, path, m->name, m->required, m->words, &s);
	case K_OBJ:
		if (!cJSON_IsObject(v))
			return wrong(c, path, m->name, "an object");
		snprintf(sub, sizeof(sub), "%s%s.", path, m->name);
		return m->sub ? check_object(c, v, sub, m->sub) : 0;
	case K_STRMAP:
		if (!cJSON_IsObject(v))
			return wrong(c, path, m->name, "an object");
		cJSON_ArrayForEach(it, v)
			if (!cJSON_IsString(it)) {
				snprintf(sub, sizeof(sub), "%s%s.", path, m->name);
				return wrong(c, sub, it->string, "a string");
			}
		return 0;
	case K_STRLIST:
	case K_ENUMLIST:
	case K_OBJLIST:
		if (!cJSON_IsArray(v))
			return wrong(c, path, m->name, "a list");
		cJSON_ArrayForEach(it, v) {
			snprintf(sub, sizeof(sub), "%s[%d]", m->name, i++);
			if (m->kind == K_OBJLIST) {
				if (!cJSON_IsObject(it))
					return wrong(c, path, sub, "an object");
				char p[256];
				snprintf(p, sizeof(p), "%s%s.", path, sub);
				if (check_object(c, it, p, m->sub) < 0)
					return -1;
			} else if (!cJSON_IsString(it)) {
				return wrong(c, path, sub, "a string");
			} else if (m->kind == K_ENUMLIST && !is_word(it->valuestring, m->words)) {
				return words_error(c, path, sub, it->valuestring, m->words);
			}
		}
		if (m->required && cJSON_GetArraySize(v) == 0)
			return api_error(c, 0, API_E_INVALID, "%s%s: must not be empty", path, m->name);
		return 0;
	case K_ANY:
		return 0;
	}
	return 0;
}

static int check_object(struct api_call *c, const cJSON *obj, const char *path,
			const struct member *members)
{
	for (const struct member *m = members; m->name; m++)
		if (check_member(c, obj, path, m) < 0)
			return -1;
	return 0;
}

/* ---- building the stored definition ---- */

/* Removes JSON nulls from every object under V: botocore never sends one,
 * ECS treats one as absent, and echoing it would break clients' models. */
static void drop_nulls(cJSON *v)
{
	cJSON *it = v->child;
	while (it) {
		cJSON *next = it->next;
		if (cJSON_IsObject(v) && cJSON_IsNull(it))
			cJSON_Delete(cJSON_DetachItemViaPointer(v, it));
		else if (cJSON_IsObject(it) || cJSON_IsArray(it))
			drop_nulls(it);
		it = next;
	}
}

static bool known_member(const char *name)
{
	if (strcmp(name, "family") == 0 || strcmp(name, "containerDefinitions") == 0)
		return true;
	for (const struct member *m = request; m->name; m++)
		if (strcmp(name, m->name) == 0)
			return true;
	return false;
}

/* NAME in O with V unless O has it already (ECS's defaults). */
static bool add_default(cJSON *o, const char *name, cJSON *v)
{
	if (!v)
		return false;
	if (cJSON_GetObjectItemCaseSensitive(o, name)) {
		cJSON_Delete(v);
		return true;
	}
	if (!cJSON_AddItemToObject(o, name, v)) {
		cJSON_Delete(v);
		return false;
	}
	return true;
}

static bool set_string(cJSON *o, const char *name, const char *v)
{
	cJSON *s = cJSON_CreateString(v);
	if (!s)
		return false;
	if (cJSON_GetObjectItemCaseSensitive(o, name))
		return cJSON_ReplaceItemInObjectCaseSensitive(o, name, s);
	if (!cJSON_AddItemToObject(o, name, s)) {
		cJSON_Delete(s);
		return false;
	}
	return true;
}

/* Capability names (add and drop) and ulimits of container CT (NAME):
 * ECS refuses a name it does not know at registration, and so does a
 * soft limit above the hard one. */
static int check_linux_names(struct api_call *c, const cJSON *ct, const char *name)
{
	const cJSON *lp = cJSON_GetObjectItemCaseSensitive(ct, "linuxParameters");
	const cJSON *caps = cJSON_GetObjectItemCaseSensitive(lp, "capabilities"), *it;
	static const char *const lists[] = { "add", "drop" };
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(caps, lists[i]))
			if (!policy_capability_known(it->valuestring))
				return api_error(c, 0, API_E_CLIENT, "Invalid setting for container "
						 "'%s'. linuxParameters.capabilities.%s: '%.64s' is "
						 "not a Linux capability ECS knows (ALL, "
						 "AUDIT_CONTROL, …, WAKE_ALARM).", name, lists[i],
						 it->valuestring);
	int k = 0;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(ct, "ulimits")) {
		const char *u = cJSON_GetObjectItemCaseSensitive(it, "name")->valuestring;
		int64_t soft = json_int(it, "softLimit", 0), hard = json_int(it, "hardLimit", 0);
		if (!policy_ulimit_known(u))
			return api_error(c, 0, API_E_CLIENT, "Invalid setting for container '%s'. "
					 "ulimits[%d].name: '%.64s' is not one of core, cpu, data, "
					 "fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, "
					 "rtprio, rttime, sigpending, stack.", name, k, u);
		if (soft > hard)
			return api_error(c, 0, API_E_CLIENT, "Invalid setting for container '%s'. "
					 "ulimits[%d] (%s): softLimit %" PRId64 " is greater than "
					 "hardLimit %" PRId64 ".", name, k, u, soft, hard);
		k++;
	}
	return 0;
}

/* ECS's words for a bad family or container name (ClientException, as
 * seen in the answers ECS users quote: "Family contains invalid
 * characters.", "Container.name should not be null or empty."). */
static int name_error(struct api_call *c, const char *what, const char *name)
{
	if (!*name)
		return api_error(c, 0, API_E_CLIENT, "%s should not be null or empty.", what);
	if (strlen(name) > API_NAME_MAX)
		return api_error(c, 0, API_E_CLIENT, "%s is longer than %d characters.", what,
				 API_NAME_MAX);
	if (!api_name_valid(name))
		return api_error(c, 0, API_E_CLIENT, "%s contains invalid characters.", what);
	return 0;
}

/* ECS refuses at registration an image longer than 255 characters or
 * one that is not a reference; checking it here keeps a typo from
 * surfacing only at RunTask as a failed pull. */
static int check_image(struct api_call *c, const char *name, const char *image)
{
	if (!*image)
		return api_error(c, 0, API_E_CLIENT, "Container.image should not be null or empty.");
	if (strlen(image) > TASKDEF_IMAGE_MAX)
		return api_error(c, 0, API_E_CLIENT, "Invalid setting for container '%s'. 'image' "
				 "is %zu characters long; the limit is %d.", name, strlen(image),
				 TASKDEF_IMAGE_MAX);
	struct img_ref ref;
	struct berth_err err = { 0 };
	if (img_ref_parse(image, &ref, &err) < 0)
		return api_error(c, 0, API_E_CLIENT, "Invalid setting for container '%s'. 'image': "
				 "%s", name, err.msg);
	return 0;
}

/* The container checks ECS makes beyond types, on the stored copy (nulls
 * gone).  TASK_MEMORY is 0 when the task sets none. */
/* secrets[]: each name an environment variable's (not empty, no '=') and
 * each valueFrom one Berth can read (daemon/sched/tasksecrets.h). */
static int check_secrets(struct api_call *c, const cJSON *ct, int i)
{
	const cJSON *sec;
	int j = 0;
	cJSON_ArrayForEach(sec, cJSON_GetObjectItemCaseSensitive(ct, "secrets")) {
		const char *name = json_str(sec, "name"), *vf = json_str(sec, "valueFrom");
		if (!*name || strchr(name, '='))
			return api_error(c, 0, API_E_CLIENT, "containerDefinitions[%d].secrets[%d].name: "
					 "'%.255s' is not an environment variable name", i, j, name);
		struct tasksecret_ref ref;
		struct berth_err err = { 0 };
		int r = tasksecret_parse(vf, &ref, &err);
		if (r == -ENOMEM)
			return api_oom(c);
		if (r < 0)
			return api_error(c, 0, API_E_CLIENT, "containerDefinitions[%d].secrets[%d]: %s",
					 i, j, err.msg);
		tasksecret_ref_done(&ref);
		j++;
	}
	return 0;
}

/* restartPolicy, as the ECS API reference states it (ContainerRestartPolicy:
 * enabled required, at most 50 ignoredExitCodes, restartAttemptPeriod
 * 60-1800 s, default 300; allowed on essential and non-essential
 * containers alike, developer guide "container-restart-policy").  ECS's
 * exact wording for these is not public: the messages are Berth's, in the
 * form of its other container checks. */
#define TASKDEF_RESTART_CODES_MAX 50
#define TASKDEF_RESTART_PERIOD_MIN 60
#define TASKDEF_RESTART_PERIOD_MAX 1800

static int check_restart_policy(struct api_call *c, const cJSON *ct, const char *name)
{
	const cJSON *rp = cJSON_GetObjectItemCaseSensitive(ct, "restartPolicy"), *e;
	if (!rp)
		return 0;
	if (!cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(rp, "enabled")))
		return api_error(c, 0, API_E_CLIENT, "Invalid setting for container '%s'. "
				 "'restartPolicy.enabled' must be specified.", name);
	const cJSON *codes = cJSON_GetObjectItemCaseSensitive(rp, "ignoredExitCodes");
	if (codes && !cJSON_IsArray(codes))
		return api_error(c, 0, API_E_CLIENT, "Invalid setting for container '%s'. "
				 "'restartPolicy.ignoredExitCodes' must be a list of integers.", name);
	cJSON_ArrayForEach(e, codes)
		if (!cJSON_IsNumber(e) || e->valuedouble != (double)(int32_t)e->valuedouble)
			return api_error(c, 0, API_E_CLIENT, "Invalid setting for container '%s'. "
					 "'restartPolicy.ignoredExitCodes' must be a list of "
					 "integers.", name);
	if (cJSON_GetArraySize(codes) > TASKDEF_RESTART_CODES_MAX)
		return api_error(c, 0, API_E_CLIENT, "Invalid setting for container '%s'. "
				 "'restartPolicy.ignoredExitCodes' can have at most %d exit codes.",
				 name, TASKDEF_RESTART_CODES_MAX);
	int64_t period = json_int(rp, "restartAttemptPeriod", TASKDEF_RESTART_PERIOD_MIN);
	if (period < TASKDEF_RESTART_PERIOD_MIN || period > TASKDEF_RESTART_PERIOD_MAX)
		return api_error(c, 0, API_E_CLIENT, "Invalid setting for container '%s'. "
				 "'restartPolicy.restartAttemptPeriod' must be between %d and %d "
				 "seconds.", name, TASKDEF_RESTART_PERIOD_MIN,
				 TASKDEF_RESTART_PERIOD_MAX);
	return 0;
}

static int check_containers(struct api_call *c, const cJSON *defs, int64_t task_memory)
{
	const cJSON *it, *other;
	int i = 0;
	bool essential = false;
	cJSON_ArrayForEach(it, defs) {
		const cJSON *jn = cJSON_GetObjectItemCaseSensitive(it, "name");
		const cJSON *ji = cJSON_GetObjectItemCaseSensitive(it, "image");
		const char *name = jn ? jn->valuestring : "";
		const char *image = ji ? ji->valuestring : "";
		if (name_error(c, "Container.name", name) < 0)
			return -1;
		if (check_image(c, name, image) < 0)
			return -1;
		for (other = defs->child; other != it; other = other->next)
			if (strcmp(cJSON_GetObjectItemCaseSensitive(other, "name")->valuestring, name) == 0)
				return api_error(c, 0, API_E_CLIENT, "containerDefinitions[%d].name: "
						 "container name '%s' is used twice; container names "
						 "must be unique.", i, name);
		int64_t mem = json_int(it, "memory", 0), res = json_int(it, "memoryReservation", 0);
		if (!task_memory && !mem && !res)
			return api_error(c, 0, API_E_CLIENT, "Invalid setting for container '%s'. At "
					 "least one of 'memory' or 'memoryReservation' must be "
					 "specified.", name);
		if (mem && res > mem)
			return api_error(c, 0, API_E_CLIENT, "Invalid setting for container '%s'. "
					 "'memoryReservation' (%" PRId64 ") must not be greater than "
					 "'memory' (%" PRId64 ").", name, res, mem);
		if (task_memory && (mem > task_memory || res > task_memory))
			return api_error(c, 0, API_E_CLIENT, "The '%s' setting for container '%s' is "
					 "greater than for the task.", mem > task_memory ? "memory"
					 : "memoryReservation", name);
		if (check_linux_names(c, it, name) < 0 || check_secrets(c, it, i) < 0 ||
		    check_restart_policy(c, it, name) < 0)
			return -1;
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(it, "essential");
		essential |= !e || cJSON_IsTrue(e);
		i++;
	}
	if (!essential)
		return api_error(c, 0, API_E_CLIENT, "containerDefinitions: a task definition must "
				 "have at least one essential container.");
	return 0;
}

/* ---- port mappings against the network mode (docs/networking.md) ---- */

static int mapping_port(const cJSON *pm, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(pm, name);
	return cJSON_IsNumber(v) ? (int)v->valuedouble : 0;
}

static const char *mapping_proto(const cJSON *pm)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(pm, "protocol");
	return cJSON_IsString(v) ? v->valuestring : "tcp";
}

/* Whether a mapping before PM in LIST has PM's protocol and PORT as its
 * NAME port; *REACHED when PM is in LIST. */
static bool clash_in(const cJSON *list, const cJSON *pm, const char *name, int port,
		     bool *reached)
{
	const cJSON *o;
	cJSON_ArrayForEach(o, list) {
		if (o == pm) {
			*reached = true;
			return false;
		}
		if (mapping_port(o, name) == port && strcmp(mapping_proto(o), mapping_proto(pm)) == 0)
			return true;
	}
	return false;
}

/* Whether an earlier mapping of any container of DEFS has PM's protocol
 * and NAME port; port 0 never clashes. */
static bool port_clash(const cJSON *defs, const cJSON *pm, const char *name)
{
	int port = mapping_port(pm, name);
	bool reached = false;
	const cJSON *cd;
	cJSON_ArrayForEach(cd, defs) {
		if (port && clash_in(cJSON_GetObjectItemCaseSensitive(cd, "portMappings"), pm, name,
				     port, &reached))
			return true;
		if (reached)
			break;
	}
	return false;
}

/* One container's mappings: a containerPort each, awsvpc's and host's
 * host ports equal to it, no container port twice, none in mode none. */
static int check_mappings(struct api_call *c, const cJSON *defs, const cJSON *cd,
			  const char *mode, size_t *total)
{
	const char *name = cJSON_GetObjectItemCaseSensitive(cd, "name")->valuestring;
	bool same_port = strcmp(mode, "awsvpc") == 0 || strcmp(mode, "host") == 0;
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(cd, "portMappings"), *pm;
	cJSON_ArrayForEach(pm, list) {
		bool reached = false;
		int cport = mapping_port(pm, "containerPort"), hport = mapping_port(pm, "hostPort");
		if (strcmp(mode, "none") == 0)
			return api_error(c, 0, API_E_CLIENT, "Container '%s': port mappings are not "
					 "allowed when networkMode=none.", name);
		if (cport < 1)
			return api_error(c, 0, API_E_CLIENT, "Invalid 'containerPort' setting for "
					 "container '%s'.", name);
		if (same_port && hport && hport != cport)
			return api_error(c, 0, API_E_CLIENT, "When networkMode=%s, the host ports and "
					 "container ports in port mappings must match.", mode);
		if (clash_in(list, pm, "containerPort", cport, &reached))
			return api_error(c, 0, API_E_CLIENT, "Container '%s': containerPort %d/%s is "
					 "mapped twice.", name, cport, mapping_proto(pm));
		if (port_clash(defs, pm, "hostPort"))
			return api_error(c, 0, API_E_CLIENT, "%s host port '%d' is mapped multiple "
					 "times in task.", strcmp(mapping_proto(pm), "udp") ? "TCP"
					 : "UDP", hport);
		if (++*total > NET_PUBLISH_MAX)
			return api_error(c, 0, API_E_CLIENT, "Too many port mappings: Berth publishes "
					 "at most %d per task definition.", NET_PUBLISH_MAX);
	}
	return 0;
}

static int check_port_mappings(struct api_call *c, const cJSON *defs, const char *network_mode)
{
	const cJSON *cd;
	size_t total = 0;
	/* RegisterTaskDefinition's default mode is bridge on EC2; Berth's,
	 * when the member is absent, is awsvpc (docs/networking.md). */
	const char *mode = network_mode ? network_mode : "awsvpc";
	cJSON_ArrayForEach(cd, defs)
		if (check_mappings(c, defs, cd, mode, &total) < 0)
			return -1;
	return 0;
}

/* Each container with ECS's defaults; host ports of awsvpc/host mappings
 * are the container ports, as ECS fills them. */
static bool container_defaults(cJSON *ct, const char *network_mode)
{
	bool same_port = network_mode && (strcmp(network_mode, "awsvpc") == 0 ||
					  strcmp(network_mode, "host") == 0);
	cJSON *pm;
	cJSON_ArrayForEach(pm, cJSON_GetObjectItemCaseSensitive(ct, "portMappings")) {
		const cJSON *port = cJSON_GetObjectItemCaseSensitive(pm, "containerPort");
		if (!add_default(pm, "protocol", cJSON_CreateString("tcp")) ||
		    (same_port && port && !add_default(pm, "hostPort",
						       cJSON_CreateNumber(port->valuedouble))))
			return false;
	}
	return add_default(ct, "cpu", cJSON_CreateNumber(0)) &&
	       add_default(ct, "essential", cJSON_CreateTrue()) &&
	       add_default(ct, "portMappings", cJSON_CreateArray()) &&
	       add_default(ct, "environment", cJSON_CreateArray()) &&
	       add_default(ct, "mountPoints", cJSON_CreateArray()) &&
	       add_default(ct, "volumesFrom", cJSON_CreateArray());
}

static bool requires(const cJSON *list, const char *word)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, list)
		if (strcmp(it->valuestring, word) == 0)
			return true;
	return false;
}

/* Task cpu and memory, normalised in BODY to units and MiB ("1 vcpu" →
 * "1024"); 0 when absent. */
static int task_size(struct api_call *c, cJSON *body, int64_t *ret_cpu, int64_t *ret_mem)
{
	const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(body, "cpu");
	const cJSON *mem = cJSON_GetObjectItemCaseSensitive(body, "memory");
	char buf[32];
	*ret_cpu = *ret_mem = 0;
	if (cpu) {
		if (units_parse_cpu(cpu->valuestring, ret_cpu) < 0)
			return api_error(c, 0, API_E_CLIENT, "Invalid 'cpu' setting for task: "
					 "'%.64s' is neither CPU units (\"256\") nor vCPUs (\"1 vcpu\").",
					 cpu->valuestring);
		snprintf(buf, sizeof(buf), "%" PRId64, *ret_cpu);
		if (!set_string(body, "cpu", buf))
			return api_oom(c);
	}
	if (mem) {
		if (units_parse_memory(mem->valuestring, ret_mem) < 0)
			return api_error(c, 0, API_E_CLIENT, "Invalid 'memory' setting for task: "
					 "'%.64s' is neither MiB (\"512\") nor GB (\"1GB\").",
					 mem->valuestring);
		snprintf(buf, sizeof(buf), "%" PRId64, *ret_mem);
		if (!set_string(body, "memory", buf))
			return api_oom(c);
	}
	return 0;
}

/* What Fargate's task isolation rules out: the host's PID namespace and any
 * IPC namespace setting (Fargate supports pidMode "task" only, and no
 * ipcMode). */
static const char *fargate_conflict(const cJSON *body)
{
	const char *pid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "pidMode"));
	if (pid && strcmp(pid, "host") == 0)
		return "Fargate does not support pidMode 'host'.";
	if (cJSON_GetObjectItemCaseSensitive(body, "ipcMode"))
		return "Fargate does not support ipcMode.";
	return NULL;
}

static int check_fargate(struct api_call *c, const cJSON *body, const char *network_mode,
			 int64_t cpu, int64_t mem)
{
	const char *conflict = fargate_conflict(body);
	if (conflict)
		return api_error(c, 0, API_E_CLIENT, "%s", conflict);
	if (!cpu)
		return api_error(c, 0, API_E_CLIENT, "Fargate requires that 'cpu' be defined at the "
				 "task level.");
	if (!mem)
		return api_error(c, 0, API_E_CLIENT, "Fargate requires that 'memory' be defined at "
				 "the task level.");
	if (!network_mode || strcmp(network_mode, "awsvpc") != 0)
		return api_error(c, 0, API_E_CLIENT, "Fargate only supports network mode 'awsvpc'.");
	if (!units_fargate_fits(cpu, mem))
		return api_error(c, 0, API_E_CLIENT, "No Fargate configuration exists for given "
				 "values: %" PRId64 " CPU, %" PRId64 " memory. See the Amazon ECS "
				 "documentation for the valid values.", cpu, mem);
	return 0;
}

int taskdef_build(struct api_call *c, cJSON **ret)
{
	const char *family;
	const cJSON *defs, *it;
	if (api_get_string(c, c->in, "", "family", true, &family) < 0)
		return -1;
	if (name_error(c, "Family", family) < 0)
		return -1;
	if (api_get_array(c, c->in, "", "containerDefinitions", true, TASKDEF_CONTAINERS_MAX,
			  &defs) < 0 ||
	    check_object(c, c->in, "", request) < 0)
		return -1;
	if (!cJSON_GetArraySize(defs))
		return api_error(c, 0, API_E_INVALID, "containerDefinitions: at least one container "
				 "definition is required");
	int i = 0;
	cJSON_ArrayForEach(it, defs) {
		char path[48];
		snprintf(path, sizeof(path), "containerDefinitions[%d].", i++);
		if (!cJSON_IsObject(it))
			return api_error(c, 0, API_E_INVALID, "%.*s: expected an object",
					 (int)strlen(path) - 1, path);
		if (check_object(c, it, path, container) < 0)
			return -1;
	}

	_cleanup_(cJSON_Deletep) cJSON *body = cJSON_CreateObject();
	if (!body)
		return api_oom(c);
	cJSON_ArrayForEach(it, c->in) {
		if (cJSON_IsNull(it) || !known_member(it->string))
			continue;
		cJSON *copy = cJSON_Duplicate(it, true);
		if (!copy || !cJSON_AddItemToObject(body, it->string, copy)) {
			cJSON_Delete(copy);
			return api_oom(c);
		}
	}
	drop_nulls(body);

	int64_t cpu, mem;
	if (task_size(c, body, &cpu, &mem) < 0)
		return -1;
	cJSON *cdefs = cJSON_GetObjectItemCaseSensitive(body, "containerDefinitions");
	if (check_containers(c, cdefs, mem) < 0)
		return -1;
	const cJSON *nm = cJSON_GetObjectItemCaseSensitive(body, "networkMode");
	const char *network_mode = nm ? nm->valuestring : NULL;
	if (check_port_mappings(c, cdefs, network_mode) < 0)
		return -1;
	const cJSON *req = cJSON_GetObjectItemCaseSensitive(body, "requiresCompatibilities");
	if (requires(req, "FARGATE") && check_fargate(c, body, network_mode, cpu, mem) < 0)
		return -1;
	if (taskdef_check_volumes(c, body, requires(req, "FARGATE")) < 0)
		return -1;
	if (!requires(req, "FARGATE") && cpu &&
	    (cpu < TASKDEF_EC2_CPU_MIN || cpu > TASKDEF_EC2_CPU_MAX))
		return api_error(c, 0, API_E_CLIENT, "Invalid 'cpu' setting for task: %" PRId64
				 " units is outside %d to %d.", cpu, TASKDEF_EC2_CPU_MIN,
				 TASKDEF_EC2_CPU_MAX);

	cJSON *ct;
	cJSON_ArrayForEach(ct, cdefs)
		if (!container_defaults(ct, network_mode))
			return api_oom(c);
	/* ECS's computed members: every definition runs on EC2; one that
	 * fits Fargate's sizes with awsvpc runs there too, whether or not it
	 * asked; EXTERNAL when asked for. */
	cJSON *compat = cJSON_CreateArray();
	if (!add_default(body, "volumes", cJSON_CreateArray()) ||
	    !add_default(body, "placementConstraints", cJSON_CreateArray()) ||
	    !add_default(body, "requiresAttributes", cJSON_CreateArray()) ||
	    !add_default(body, "compatibilities", compat) ||
	    !cJSON_AddItemToArray(compat, cJSON_CreateString("EC2")))
		return api_oom(c);
	if (network_mode && strcmp(network_mode, "awsvpc") == 0 && units_fargate_fits(cpu, mem) &&
	    !fargate_conflict(body) && !cJSON_AddItemToArray(compat, cJSON_CreateString("FARGATE")))
		return api_oom(c);
	if (requires(req, "EXTERNAL") && !cJSON_AddItemToArray(compat, cJSON_CreateString("EXTERNAL")))
		return api_oom(c);
	char by[64];
	snprintf(by, sizeof(by), "arn:aws:iam::%s:root", c->account_id);
	if (!set_string(body, "registeredBy", by))
		return api_oom(c);
	*ret = TAKE_PTR(body);
	return 0;
}
