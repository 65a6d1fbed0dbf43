/* daemon/sched/taskplan: what Berth refuses to run, and the plan of what it runs. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "daemon/sched/units.h"
#include "daemon/sched/taskmeta.h"
#include "daemon/sched/taskplan.h"
#include "daemon/sched/volumes.h"
#include "runtime/log.h"

static const cJSON *member(const cJSON *o, const char *name)
{
	return o ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;
}

static bool nonempty_array(const cJSON *v)
{
	return cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0;
}

/* ---- what Berth refuses ------------------------------------------------- */

/* Container members whose presence changes what runs and that Berth does
 * not implement.  A non-empty array, a true boolean or any object/string
 * counts as "set". */
static const struct refusal {
	const char *member;
	const char *why;
} container_refusals[] = {
	{ "privileged", "Berth does not run privileged containers" },
	{ "environmentFiles", "environment files are read from S3, which Berth does not have; "
			      "give the variables in environment, or secrets" },
	{ "repositoryCredentials", "per-container registry credentials are not supported; "
				   "give the daemon --registry-auth instead" },
	{ "links", "links are not supported; the containers of a task share localhost" },
	{ "disableNetworking", "every container shares the task's network namespace" },
	{ "hostname", "awsvpc tasks take their hostname from the task address" },
	{ "dnsServers", "awsvpc tasks use the host's resolvers" },
	{ "dnsSearchDomains", "awsvpc tasks use the host's resolvers" },
	{ "extraHosts", "awsvpc tasks do not take extraHosts" },
	{ "dockerSecurityOptions", "Docker security options are not supported" },
	{ "systemControls", "namespaced sysctls are not supported yet" },
	{ "interactive", "containers have no stdin" },
	{ "pseudoTerminal", "containers have no terminal" },
	{ "firelensConfiguration", "FireLens log routing is not supported" },
	{ "resourceRequirements", "GPUs and inference accelerators are not supported" },
	{ "credentialSpecs", "credential specs (gMSA) are not supported" },
};

static const struct refusal linux_refusals[] = {
	{ "devices", "host devices are not supported" },
	{ "tmpfs", "tmpfs mounts are not supported yet" },
	{ "sharedMemorySize", "a custom /dev/shm size is not supported yet" },
	{ "maxSwap", "swap is always off for tasks" },
	{ "swappiness", "swap is always off for tasks" },
};

static bool is_set(const cJSON *v)
{
	if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v))
		return false;
	if (cJSON_IsArray(v))
		return cJSON_GetArraySize(v) > 0;
	return true;
}

static int check_refusals(const cJSON *o, const struct refusal *r, size_t n, const char *where,
			  struct berth_err *err)
{
	for (size_t i = 0; i < n; i++)
		if (is_set(member(o, r[i].member)))
			return berth_errf(err, ENOTSUP, "%s%s: %s", where, r[i].member, r[i].why);
	return 0;
}

static int check_container(const cJSON *cd, int i, struct berth_err *err)
{
	char where[320];
	snprintf(where, sizeof(where), "containerDefinitions[%d] (%s): ", i,
		 json_str(cd, "name") ? json_str(cd, "name") : "?");
	int r = check_refusals(cd, container_refusals, ARRAY_SIZE(container_refusals), where, err);
	if (r < 0)
		return r;
	size_t n = strlen(where);
	snprintf(where + n, sizeof(where) - n, "linuxParameters.");
	return check_refusals(member(cd, "linuxParameters"), linux_refusals,
			      ARRAY_SIZE(linux_refusals), where, err);
}

/* ---- network modes (docs/networking.md "Network modes") ---------------- */

/* awsvpc (also when unset) and bridge: the task's own namespace on the
 * bridge, bridge publishing its port mappings on the host; none: a
 * namespace with only lo; host: the host's (policy_check() decides
 * whether the operator allows it).  RegisterTaskDefinition allows no
 * other value. */
static const char *network_mode(const cJSON *td)
{
	const char *nm = json_str(td, "networkMode");
	return nm ? nm : "awsvpc";
}

/* network.mode and, in bridge mode, network.publish: the host ports
 * placement gave the task (E->publish, "tcp:HOSTPORT:PORT" strings). */
static bool add_network_mode(cJSON *net, const cJSON *td, const struct taskplan_env *e)
{
	bool bridge = strcmp(network_mode(td), "bridge") == 0;
	if (!cJSON_AddStringToObject(net, "mode", network_mode(td)))
		return false;
	if (!bridge || !e->publish)
		return true;
	cJSON *copy = cJSON_Duplicate(e->publish, true);
	if (copy && cJSON_AddItemToObject(net, "publish", copy))
		return true;
	cJSON_Delete(copy);
	return false;
}

static int check_task(const cJSON *td, struct berth_err *err)
{
	static const char *const shared_ns[] = { "pidMode", "ipcMode" };
	for (size_t i = 0; i < ARRAY_SIZE(shared_ns); i++)
		if (json_str(td, shared_ns[i]))
			return berth_errf(err, ENOTSUP, "%s %s: containers always get their own "
					  "namespace", shared_ns[i], json_str(td, shared_ns[i]));
	if (is_set(member(td, "proxyConfiguration")))
		return berth_errf(err, ENOTSUP, "proxyConfiguration: App Mesh proxies are not "
				  "supported");
	if (is_set(member(td, "inferenceAccelerators")))
		return berth_errf(err, ENOTSUP, "inferenceAccelerators: not supported");
	return 0;
}

static const cJSON *find_container(const cJSON *td, const char *name)
{
	const cJSON *cd;
	cJSON_ArrayForEach(cd, member(td, "containerDefinitions")) {
		const char *n = json_str(cd, "name");
		if (n && strcmp(n, name) == 0)
			return cd;
	}
	return NULL;
}

static int check_overrides(const cJSON *td, const cJSON *ov, struct berth_err *err)
{
	const cJSON *co;
	int i = 0;
	cJSON_ArrayForEach(co, member(ov, "containerOverrides")) {
		const char *n = json_str(co, "name");
		if (n && !find_container(td, n))
			return berth_errf(err, EINVAL, "Override for container named %s is not a "
					  "container in the TaskDefinition.", n);
		if (is_set(member(co, "environmentFiles")))
			return berth_errf(err, ENOTSUP, "overrides.containerOverrides[%d]."
					  "environmentFiles: environment files are read from S3, "
					  "which Berth does not have; give the variables in "
					  "environment", i);
		i++;
	}
	int64_t v;
	const char *cpu = json_str(ov, "cpu"), *mem = json_str(ov, "memory");
	if (cpu && units_parse_cpu(cpu, &v) < 0)
		return berth_errf(err, EINVAL, "overrides.cpu %s: expected CPU units such as 256 "
				  "or \"1 vcpu\"", cpu);
	if (mem && units_parse_memory(mem, &v) < 0)
		return berth_errf(err, EINVAL, "overrides.memory %s: expected MiB such as 512 or "
				  "\"1GB\"", mem);
	return 0;
}

int taskplan_check(const cJSON *td, const cJSON *overrides, struct berth_err *err)
{
	int r = check_task(td, err);
	if (r == 0)
		r = volumes_check(td, err);
	if (r < 0)
		return r;
	const cJSON *cd;
	int i = 0;
	cJSON_ArrayForEach(cd, member(td, "containerDefinitions"))
		if ((r = check_container(cd, i++, err)) < 0)
			return r;
	return check_overrides(td, overrides, err);
}

/* ---- the plan ----------------------------------------------------------- */

static long long sized(const cJSON *td, const cJSON *ov, const char *name,
		       int (*parse)(const char *, int64_t *))
{
	const char *s = json_str(ov, name);
	if (!s)
		s = json_str(td, name);
	int64_t v = 0;
	if (!s || parse(s, &v) < 0)
		return 0;
	return v;
}

static const cJSON *override_for(const cJSON *ov, const char *name)
{
	const cJSON *co;
	cJSON_ArrayForEach(co, member(ov, "containerOverrides")) {
		const char *n = json_str(co, "name");
		if (n && strcmp(n, name) == 0)
			return co;
	}
	return NULL;
}

/* The first of V1, V2 that is present (an override, then the definition). */
static const cJSON *first(const cJSON *v1, const cJSON *v2)
{
	return v1 && !cJSON_IsNull(v1) ? v1 : v2;
}

/* Container CD's NAME (cpu, memory, memoryReservation) after OV; 0 unset. */
static long long container_size(const cJSON *cd, const cJSON *ov, const char *name)
{
	const cJSON *v = first(member(override_for(ov, json_str(cd, "name")), name),
			       member(cd, name));
	return cJSON_IsNumber(v) && v->valuedouble > 0 ? (long long)v->valuedouble : 0;
}

long long taskplan_container_size(const cJSON *td, const cJSON *overrides, const char *cname,
				  const char *field)
{
	const cJSON *cd = find_container(td, cname);
	return cd ? container_size(cd, overrides, field) : 0;
}

/* The sum over the containers of NAME, or of FALLBACK where NAME is unset. */
static long long containers_sum(const cJSON *td, const cJSON *ov, const char *name,
				const char *fallback)
{
	long long sum = 0;
	const cJSON *cd;
	cJSON_ArrayForEach(cd, member(td, "containerDefinitions")) {
		long long v = container_size(cd, ov, name);
		sum += v || !fallback ? v : container_size(cd, ov, fallback);
	}
	return sum;
}

long long taskplan_reserved_cpu(const cJSON *td, const cJSON *overrides)
{
	long long v = taskplan_task_cpu(td, overrides);
	return v ? v : containers_sum(td, overrides, "cpu", NULL);
}

long long taskplan_reserved_memory(const cJSON *td, const cJSON *overrides)
{
	long long v = taskplan_task_memory(td, overrides);
	return v ? v : containers_sum(td, overrides, "memory", "memoryReservation");
}

/* A task limit: the task's own, else the default raised to what the
 * containers reserve together (each container's limit must fit under
 * the task's); 0 when neither. */
static long long task_limit(long long own, long long dflt, long long reserved)
{
	if (own || !dflt)
		return own;
	return reserved > dflt ? reserved : dflt;
}

long long taskplan_task_cpu(const cJSON *td, const cJSON *overrides)
{
	return sized(td, overrides, "cpu", units_parse_cpu);
}

long long taskplan_task_memory(const cJSON *td, const cJSON *overrides)
{
	return sized(td, overrides, "memory", units_parse_memory);
}


static bool copy_to(cJSON *dst, const char *name, const cJSON *v)
{
	if (!v || cJSON_IsNull(v))
		return true;
	cJSON *c = cJSON_Duplicate(v, true);
	if (!c || !cJSON_AddItemToObject(dst, name, c)) {
		cJSON_Delete(c);
		return false;
	}
	return true;
}

static bool strv_add(cJSON *arr, const char *s)
{
	cJSON *v = cJSON_CreateString(s);
	if (!v || !cJSON_AddItemToArray(arr, v)) {
		cJSON_Delete(v);
		return false;
	}
	return true;
}

/* Sets NAME=VALUE in the plan's environment list, replacing an earlier one. */
static bool env_set(cJSON *env, const char *name, size_t name_len, const char *value)
{
	cJSON *e;
	cJSON_ArrayForEach(e, env) {
		const char *n = json_str(e, "name");
		if (strlen(n) == name_len && strncmp(n, name, name_len) == 0)
			return cJSON_ReplaceItemInObjectCaseSensitive(e, "value",
								      cJSON_CreateString(value));
	}
	_cleanup_free_ char *dup = strndup(name, name_len);
	cJSON *o = cJSON_CreateObject();
	if (!dup || !o || !cJSON_AddItemToArray(env, o)) {
		cJSON_Delete(o);
		return false;
	}
	return cJSON_AddStringToObject(o, "name", dup) && cJSON_AddStringToObject(o, "value", value);
}

static bool env_merge_list(cJSON *env, const cJSON *list)
{
	const cJSON *kv;
	cJSON_ArrayForEach(kv, list) {
		const char *n = json_str(kv, "name"), *v = json_str(kv, "value");
		if (n && !env_set(env, n, strlen(n), v ? v : ""))
			return false;
	}
	return true;
}

static int image_env(cJSON *env, const cJSON *img_cfg, const char *cname, struct berth_err *err)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, member(img_cfg, "Env")) {
		const char *eq = cJSON_IsString(e) ? strchr(e->valuestring, '=') : NULL;
		if (!eq)
			return berth_errf(err, EINVAL, "container %s: the image config's Env holds "
					  "a member that is not NAME=value", cname);
		if (!env_set(env, e->valuestring, (size_t)(eq - e->valuestring), eq + 1))
			return berth_errf(err, ENOMEM, "out of memory");
	}
	return 0;
}

static int strv_member(const cJSON *v, const char *what, const char *cname, struct berth_err *err)
{
	const cJSON *s;
	if (v && !cJSON_IsNull(v) && !cJSON_IsArray(v))
		return berth_errf(err, EINVAL, "container %s: the image config's %s is not a list",
				  cname, what);
	cJSON_ArrayForEach(s, v)
		if (!cJSON_IsString(s))
			return berth_errf(err, EINVAL, "container %s: the image config's %s holds a "
					  "non-string", cname, what);
	return 0;
}

/* entryPoint/command, the Docker way (see the header). */
static int argv_merge(cJSON *pc, const cJSON *cd, const cJSON *co, const cJSON *img,
		      const char *cname, struct berth_err *err)
{
	const cJSON *ep = member(cd, "entryPoint");
	const cJSON *cmd = first(member(co, "command"), member(cd, "command"));
	const cJSON *iep = member(img, "Entrypoint"), *icmd = member(img, "Cmd");
	int r = strv_member(iep, "Entrypoint", cname, err);
	if (r == 0)
		r = strv_member(icmd, "Cmd", cname, err);
	if (r < 0)
		return r;
	/* moby's merge(): only a non-empty entryPoint keeps the image's Cmd
	 * out, an empty command takes it, an absent entryPoint the image's. */
	if (!nonempty_array(ep)) {
		if (!nonempty_array(cmd))
			cmd = icmd;
		if (!ep)
			ep = iep;
	}
	if (!copy_to(pc, "entryPoint", ep) || !copy_to(pc, "command", cmd))
		return berth_errf(err, ENOMEM, "out of memory");
	if (!nonempty_array(ep) && !nonempty_array(cmd))
		return berth_errf(err, EINVAL, "container %s: no command: neither the definition "
				  "nor the image gives an entryPoint or command", cname);
	return 0;
}

static bool add_image_string(cJSON *pc, const char *name, const cJSON *cd, const char *def_name,
			     const cJSON *img, const char *img_name)
{
	const char *v = json_str(cd, def_name);
	if (!v || !*v)
		v = json_str(img, img_name);
	return !v || !*v || cJSON_AddStringToObject(pc, name, v);
}

static const char *const passed_through[] = {
	"essential", "dependsOn", "healthCheck", "ulimits", "readonlyRootFilesystem",
};

static bool add_linux(cJSON *pc, const cJSON *cd)
{
	const cJSON *lp = member(cd, "linuxParameters");
	if (!lp)
		return true;
	cJSON *o = cJSON_AddObjectToObject(pc, "linuxParameters");
	return o && copy_to(o, "capabilities", member(lp, "capabilities")) &&
	       copy_to(o, "initProcessEnabled", member(lp, "initProcessEnabled"));
}

/* stopTimeout and startTimeout within Fargate's 2..120 s. */
static bool add_clamped(cJSON *pc, const cJSON *cd, const char *name)
{
	const cJSON *v = member(cd, name);
	if (!cJSON_IsNumber(v))
		return true;
	double t = v->valuedouble;
	t = t < 2 ? 2 : t > TASKPLAN_STOP_TIMEOUT_MAX ? TASKPLAN_STOP_TIMEOUT_MAX : t;
	return cJSON_AddNumberToObject(pc, name, t) != NULL;
}

static bool add_resources(cJSON *pc, const cJSON *cd, const cJSON *co)
{
	static const char *const names[] = { "cpu", "memory", "memoryReservation" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!copy_to(pc, names[i], first(member(co, names[i]), member(cd, names[i]))))
			return false;
	return add_clamped(pc, cd, "stopTimeout") && add_clamped(pc, cd, "startTimeout");
}

/* An enabled restartPolicy, written out whole (the shim wants enabled and
 * takes the period's default from ECS too); RegisterTaskDefinition has
 * checked ECS's ranges. */
static bool add_restart(cJSON *pc, const cJSON *cd)
{
	const cJSON *rp = member(cd, "restartPolicy");
	if (!cJSON_IsTrue(member(rp, "enabled")))
		return true;
	cJSON *o = cJSON_AddObjectToObject(pc, "restartPolicy");
	return o && cJSON_AddTrueToObject(o, "enabled") &&
	       copy_to(o, "ignoredExitCodes", member(rp, "ignoredExitCodes")) &&
	       copy_to(o, "restartAttemptPeriod", member(rp, "restartAttemptPeriod"));
}

/* logConfiguration.options, with max-size and max-file (the definition's,
 * else the shim's defaults) within the operator's maxima in E, written
 * out so the shim rotates at no more.  A value that does not parse is left
 * for the shim to refuse, naming it. */
static bool add_log(cJSON *pc, const cJSON *cd, const struct taskplan_env *e)
{
	const cJSON *opts = member(member(cd, "logConfiguration"), "options");
	if (!opts && !e->log_max_size)
		return true;
	cJSON *lc = cJSON_AddObjectToObject(pc, "logConfiguration");
	cJSON *o = lc ? cJSON_AddObjectToObject(lc, "options") : NULL;
	const cJSON *it;
	cJSON_ArrayForEach(it, opts)
		if (!o || !copy_to(o, it->string, it))
			return false;
	if (!o || !e->log_max_size)
		return o != NULL;
	uint64_t size = RT_LOG_DEFAULT_MAX_SIZE;
	unsigned files = RT_LOG_DEFAULT_MAX_FILES;
	const char *ms = json_str(o, "max-size"), *mf = json_str(o, "max-file");
	struct berth_err err = { 0 };
	char buf[32];
	if (!ms || rt_log_parse_size(ms, &size, &err) == 0) {
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)(size < e->log_max_size
									 ? size : e->log_max_size));
		if (!json_set_str(o, "max-size", buf))
			return false;
	}
	if (!mf || rt_log_parse_max_file(mf, &files, &err) == 0) {
		snprintf(buf, sizeof(buf), "%u", files < e->log_max_files ? files : e->log_max_files);
		if (!json_set_str(o, "max-file", buf))
			return false;
	}
	return true;
}

static int container_plan(const cJSON *td, const cJSON *cd, const cJSON *ov,
			  const struct taskplan_image *im, const struct taskplan_env *e, cJSON *pc,
			  struct berth_err *err)
{
	const char *cname = json_str(cd, "name");
	const cJSON *co = override_for(ov, cname);
	_cleanup_(cJSON_Deletep) cJSON *cfg_doc = cJSON_Parse(im->config_json);
	if (!cfg_doc || !cJSON_IsObject(cfg_doc))
		return berth_errf(err, EINVAL, "container %s: the image config is not a JSON object",
				  cname);
	const cJSON *img = member(cfg_doc, "config");
	if (!cJSON_AddStringToObject(pc, "name", cname))
		return berth_errf(err, ENOMEM, "out of memory");
	cJSON *layers = cJSON_AddArrayToObject(pc, "layers");
	for (size_t i = 0; layers && i < im->n_layers; i++)
		if (!strv_add(layers, im->layers[i]))
			layers = NULL;
	if (!layers)
		return berth_errf(err, ENOMEM, "out of memory");
	int r = argv_merge(pc, cd, co, img, cname, err);
	if (r < 0)
		return r;
	cJSON *env = cJSON_AddArrayToObject(pc, "environment");
	if (!env)
		return berth_errf(err, ENOMEM, "out of memory");
	if ((r = image_env(env, img, cname, err)) < 0)
		return r;
	if (!env_merge_list(env, member(cd, "environment")) ||
	    !env_merge_list(env, member(co, "environment")) ||
	    !add_image_string(pc, "user", cd, "user", img, "User") ||
	    !add_image_string(pc, "workingDirectory", cd, "workingDirectory", img, "WorkingDir") ||
	    !add_linux(pc, cd) || !add_resources(pc, cd, co) || !add_restart(pc, cd) ||
	    !add_log(pc, cd, e))
		return berth_errf(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < ARRAY_SIZE(passed_through); i++)
		if (!copy_to(pc, passed_through[i], member(cd, passed_through[i])))
			return berth_errf(err, ENOMEM, "out of memory");
	return volumes_container_plan(td, cd, img, pc, err);
}

static bool endpoint_env_set(cJSON *env, const char *name, const char *value)
{
	return env_set(env, name, strlen(name), value);
}

/* The task endpoint's variables, set after the definition's and the
 * overrides' so that neither can point a container elsewhere. */
static int add_endpoint_env(const cJSON *td, const cJSON *ov, const struct taskplan_env *e,
			    cJSON *pc, struct berth_err *err)
{
	if (!e->meta)
		return 0;
	cJSON *env = cJSON_GetObjectItemCaseSensitive(pc, "environment");
	if (!taskmeta_env(e->meta, e->task_id, json_str(pc, "name"), taskmeta_role_arn(td, ov),
			  endpoint_env_set, env))
		return berth_errf(err, ENOMEM, "out of memory");
	return 0;
}

/* "a,b" → network.securityGroups ["a", "b"]. */
static bool add_groups(cJSON *net, const char *groups)
{
	cJSON *arr = groups ? cJSON_AddArrayToObject(net, "securityGroups") : NULL;
	for (const char *p = groups; p && *p;) {
		size_t n = strcspn(p, ",");
		char *g = strndup(p, n);
		cJSON *v = g ? cJSON_CreateString(g) : NULL;
		free(g);
		if (!v || !cJSON_AddItemToArray(arr, v)) {
			cJSON_Delete(v);
			return false;
		}
		p += n + (p[n] == ',');
	}
	return !groups || arr;
}

static cJSON *task_plan(const cJSON *td, const cJSON *ov, const struct taskplan_env *e)
{
	cJSON *p = cJSON_CreateObject();
	cJSON *net = p ? cJSON_AddObjectToObject(p, "network") : NULL;
	if (!net || !cJSON_AddStringToObject(p, "taskId", e->task_id) ||
	    !cJSON_AddNumberToObject(p, "cpu", (double)task_limit(taskplan_task_cpu(td, ov),
				     e->default_cpu, taskplan_reserved_cpu(td, ov))) ||
	    !cJSON_AddNumberToObject(p, "memory", (double)task_limit(taskplan_task_memory(td, ov),
				     e->default_memory, containers_sum(td, ov, "memory",
								       "memoryReservation"))) ||
	    !cJSON_AddNumberToObject(p, "pidsMax", TASKPLAN_PIDS_MAX) ||
	    !cJSON_AddStringToObject(p, "taskDir", e->task_dir) ||
	    !cJSON_AddStringToObject(p, "runDir", e->run_dir) ||
	    !cJSON_AddStringToObject(p, "logDir", e->log_dir) ||
	    !cJSON_AddStringToObject(p, "cgroupName", e->cgroup_name) ||
	    !add_network_mode(net, td, e) ||
	    !cJSON_AddStringToObject(net, "bridge", e->bridge) ||
	    !cJSON_AddStringToObject(net, "subnet", e->subnet) ||
	    !cJSON_AddStringToObject(net, "ipamDir", e->ipam_dir) ||
	    !cJSON_AddStringToObject(net, "nftTable", e->nft_table) ||
	    !add_groups(net, e->security_groups)) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

/* The container's resolved secrets (tasksecrets.h) last: they win over
 * every other source of the same name. */
static bool add_secrets(cJSON *pc, const cJSON *secrets, int i)
{
	return !secrets || env_merge_list(cJSON_GetObjectItemCaseSensitive(pc, "environment"),
					  cJSON_GetArrayItem(secrets, i));
}

int taskplan_build(const cJSON *td, const cJSON *overrides, const struct taskplan_image *images,
		   const struct taskplan_env *env, cJSON **ret, struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *p = task_plan(td, overrides, env);
	cJSON *ctrs = p ? cJSON_AddArrayToObject(p, "containers") : NULL;
	if (!ctrs)
		return berth_errf(err, ENOMEM, "out of memory");
	int vr = volumes_plan(td, env, p, err);
	if (vr < 0)
		return vr;
	const cJSON *cd;
	size_t i = 0;
	cJSON_ArrayForEach(cd, member(td, "containerDefinitions")) {
		cJSON *pc = cJSON_CreateObject();
		if (!pc || !cJSON_AddItemToArray(ctrs, pc)) {
			cJSON_Delete(pc);
			return berth_errf(err, ENOMEM, "out of memory");
		}
		int r = container_plan(td, cd, overrides, &images[i], env, pc, err);
		if (r < 0 || (r = add_endpoint_env(td, overrides, env, pc, err)) < 0)
			return r;
		if (!add_secrets(pc, env->secrets, (int)i++))
			return berth_errf(err, ENOMEM, "out of memory");
	}
	*ret = TAKE_PTR(p);
	return 0;
}
