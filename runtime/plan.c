#include "runtime/plan.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/json.h"
#include "netns/net.h"
#include "runtime/security.h"

/* Field paths in messages: "containers[1].dependsOn[0]". */
#define WHERE_MAX 96

static const char *const condition_names[] = {
	[PLAN_DEP_START] = "START",
	[PLAN_DEP_COMPLETE] = "COMPLETE",
	[PLAN_DEP_SUCCESS] = "SUCCESS",
	[PLAN_DEP_HEALTHY] = "HEALTHY",
};

const char *plan_condition_name(enum plan_condition c)
{
	return (size_t)c < ARRAY_SIZE(condition_names) ? condition_names[c] : "?";
}

/* ---- typed getters: JSON null and absent are the same ------------------- */

static const cJSON *member(const cJSON *obj, const char *key)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsNull(m) ? NULL : m;
}

static int opt_str(const cJSON *obj, const char *where, const char *key, char **ret,
		   struct berth_err *err)
{
	const cJSON *m = member(obj, key);
	if (!m)
		return 0;
	if (!cJSON_IsString(m))
		return berth_errf(err, EINVAL, "%s%s: not a string", where, key);
	char *s = strdup(m->valuestring);
	if (!s)
		return berth_errf(err, ENOMEM, "%s%s: out of memory", where, key);
	free(*ret);
	*ret = s;
	return 0;
}

static int req_str(const cJSON *obj, const char *where, const char *key, char **ret,
		   struct berth_err *err)
{
	if (!member(obj, key))
		return berth_errf(err, EINVAL, "%s%s: missing", where, key);
	return opt_str(obj, where, key, ret, err);
}

/* A default applied when the member is absent (def is copied). */
static int str_or(const cJSON *obj, const char *where, const char *key, const char *def,
		  char **ret, struct berth_err *err)
{
	if (member(obj, key))
		return opt_str(obj, where, key, ret, err);
	if (!(*ret = strdup(def)))
		return berth_errf(err, ENOMEM, "%s%s: out of memory", where, key);
	return 0;
}

static int opt_uint(const cJSON *obj, const char *where, const char *key, uint64_t min,
		    uint64_t max, uint64_t *ret, struct berth_err *err)
{
	const cJSON *m = member(obj, key);
	if (!m)
		return 0;
	if (!cJSON_IsNumber(m))
		return berth_errf(err, EINVAL, "%s%s: not a number", where, key);
	double v = m->valuedouble;
	if (v != floor(v) || v < (double)min || v > (double)max)
		return berth_errf(err, EINVAL, "%s%s: %g is not an integer in %llu..%llu", where,
				  key, v, (unsigned long long)min, (unsigned long long)max);
	*ret = (uint64_t)v;
	return 0;
}

/* opt_uint for the narrower fields. */
static int opt_unsigned(const cJSON *obj, const char *where, const char *key, unsigned min,
			unsigned max, unsigned *ret, struct berth_err *err)
{
	uint64_t v = *ret;
	int r = opt_uint(obj, where, key, min, max, &v, err);
	if (r >= 0)
		*ret = (unsigned)v;
	return r;
}

static int opt_bool(const cJSON *obj, const char *where, const char *key, bool *ret,
		    struct berth_err *err)
{
	const cJSON *m = member(obj, key);
	if (!m)
		return 0;
	if (!cJSON_IsBool(m))
		return berth_errf(err, EINVAL, "%s%s: not true or false", where, key);
	*ret = cJSON_IsTrue(m);
	return 0;
}

static void strv_free(struct plan_strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	*s = (struct plan_strv){ 0 };
}

/* Appends a copy of str (the vector stays NULL-terminated). */
static int strv_push(struct plan_strv *s, const char *str)
{
	char **v = realloc(s->v, (s->n + 2) * sizeof(char *));
	if (!v)
		return -ENOMEM;
	s->v = v;
	if (!(v[s->n] = strdup(str)))
		return -ENOMEM;
	v[++s->n] = NULL;
	return 0;
}

static int opt_strv(const cJSON *obj, const char *where, const char *key, struct plan_strv *ret,
		    struct berth_err *err)
{
	const cJSON *m = member(obj, key);
	if (!m)
		return 0;
	if (!cJSON_IsArray(m))
		return berth_errf(err, EINVAL, "%s%s: not an array of strings", where, key);
	size_t i = 0;
	for (const cJSON *e = m->child; e; e = e->next, i++) {
		if (!cJSON_IsString(e))
			return berth_errf(err, EINVAL, "%s%s[%zu]: not a string", where, key, i);
		if (strv_push(ret, e->valuestring) < 0)
			return berth_errf(err, ENOMEM, "%s%s: out of memory", where, key);
	}
	return 0;
}

static int opt_object(const cJSON *obj, const char *where, const char *key, const cJSON **ret,
		      struct berth_err *err)
{
	const cJSON *m = member(obj, key);
	if (m && !cJSON_IsObject(m))
		return berth_errf(err, EINVAL, "%s%s: not an object", where, key);
	*ret = m;
	return 0;
}

static int opt_array(const cJSON *obj, const char *where, const char *key, const cJSON **ret,
		     struct berth_err *err)
{
	const cJSON *m = member(obj, key);
	if (m && !cJSON_IsArray(m))
		return berth_errf(err, EINVAL, "%s%s: not an array", where, key);
	*ret = m;
	return 0;
}

/* ---- value checks ------------------------------------------------------- */

static bool name_ok(const char *s, size_t max, const char *extra)
{
	size_t n = strlen(s);
	const char *ok = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	size_t span = 0;
	while (span < n && (strchr(ok, s[span]) || strchr(extra, s[span])))
		span++;
	return n >= 1 && n <= max && span == n;
}

static int check_abs(const char *where, const char *key, const char *path, struct berth_err *err)
{
	if (path[0] != '/')
		return berth_errf(err, EINVAL, "%s%s \"%s\": not an absolute path", where, key, path);
	return 0;
}

/* ---- task level --------------------------------------------------------- */

static int parse_volume(const cJSON *e, const char *vw, struct plan_volume *v,
			struct berth_err *err)
{
	if (!cJSON_IsObject(e))
		return berth_errf(err, EINVAL, "%.*s: not an object", (int)strlen(vw) - 1, vw);
	int r;
	if ((r = req_str(e, vw, "name", &v->name, err)) < 0 ||
	    (r = req_str(e, vw, "root", &v->root, err)) < 0 ||
	    (r = str_or(e, vw, "path", "", &v->path, err)) < 0 ||
	    (r = opt_bool(e, vw, "create", &v->create, err)) < 0 ||
	    (r = opt_bool(e, vw, "shared", &v->shared, err)) < 0)
		return r;
	if (!name_ok(v->name, PLAN_NAME_MAX, "_-"))
		return berth_errf(err, EINVAL, "%sname \"%s\": must be 1-%d letters, digits, '_' "
				  "or '-'", vw, v->name, PLAN_NAME_MAX);
	if (strcmp(v->root, "/") && !berth_path_clean(v->root))
		return berth_errf(err, EINVAL, "%sroot \"%s\": not a clean absolute path", vw,
				  v->root);
	if (v->create ? !name_ok(v->path, PLAN_NAME_MAX, "_.-") || v->path[0] == '.'
		      : v->path[0] == '/')
		return berth_errf(err, EINVAL, "%spath \"%s\": %s", vw, v->path, v->create
				  ? "a volume to create is one name" : "not relative to root");
	return 0;
}

static int parse_volumes(const cJSON *root, struct plan *p, struct berth_err *err)
{
	const cJSON *a = NULL;
	int r = opt_array(root, "", "volumes", &a, err);
	size_t n = (size_t)cJSON_GetArraySize(a);
	if (r < 0 || n == 0)
		return r;
	if (!(p->volumes = calloc(n, sizeof(*p->volumes))))
		return berth_errf(err, ENOMEM, "volumes: out of memory");
	for (const cJSON *e = a->child; e; e = e->next) {
		size_t i = p->n_volumes++;
		char vw[WHERE_MAX];
		snprintf(vw, sizeof(vw), "volumes[%zu].", i);
		if ((r = parse_volume(e, vw, &p->volumes[i], err)) < 0)
			return r;
		for (size_t k = 0; k < i; k++)
			if (!strcmp(p->volumes[k].name, p->volumes[i].name))
				return berth_errf(err, EINVAL, "%sname \"%s\": used twice", vw,
						  p->volumes[i].name);
	}
	return 0;
}

/* network.publish: bridge mode's ports, each "tcp:HOSTPORT:PORT". */
static int parse_publish(const cJSON *o, struct plan_network *n, struct berth_err *err)
{
	const cJSON *arr = NULL, *e;
	int r = opt_array(o, "network.", "publish", &arr, err);
	if (r < 0 || !arr)
		return r;
	if (n->mode != PLAN_NET_BRIDGE && cJSON_GetArraySize(arr) > 0)
		return berth_errf(err, EINVAL, "network.publish: only in bridge mode");
	if (cJSON_GetArraySize(arr) > NET_PUBLISH_MAX)
		return berth_errf(err, EINVAL, "network.publish: %d ports, at most %d",
				  cJSON_GetArraySize(arr), NET_PUBLISH_MAX);
	cJSON_ArrayForEach(e, arr) {
		struct net_publish pub;
		const char *v = cJSON_GetStringValue(e);
		if (!v || strlen(v) >= sizeof(n->publish[0]) || net_publish_parse(v, &pub) < 0)
			return berth_errf(err, EINVAL, "network.publish[%zu]: not \"tcp|udp:HOSTPORT:"
					  "PORT\" with ports 1-65535", n->n_publish);
		snprintf(n->publish[n->n_publish++], sizeof(n->publish[0]), "%s", v);
	}
	return 0;
}

static int parse_network(const cJSON *root, struct plan_network *n, struct berth_err *err)
{
	const cJSON *o = NULL;
	const char *w = "network.";
	int r = opt_object(root, "", "network", &o, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *mode = NULL;
	if ((r = str_or(o, w, "mode", "awsvpc", &mode, err)) < 0)
		return r;
	static const char *const modes[] = {
		[PLAN_NET_AWSVPC] = "awsvpc", [PLAN_NET_BRIDGE] = "bridge",
		[PLAN_NET_NONE] = "none", [PLAN_NET_HOST] = "host",
	};
	size_t m = 0;
	while (m < ARRAY_SIZE(modes) && strcmp(mode, modes[m]) != 0)
		m++;
	if (m == ARRAY_SIZE(modes))
		return berth_errf(err, EINVAL, "network.mode \"%s\": awsvpc, bridge, none or host",
				  mode);
	n->mode = (enum plan_net_mode)m;
	if ((r = parse_publish(o, n, err)) < 0)
		return r;
	if ((r = str_or(o, w, "bridge", "berth0", &n->bridge, err)) < 0 ||
	    (r = str_or(o, w, "subnet", "10.89.0.0/16", &n->subnet, err)) < 0 ||
	    (r = str_or(o, w, "ipamDir", "/var/lib/berth/ipam", &n->ipam_dir, err)) < 0 ||
	    (r = str_or(o, w, "nftTable", "berth", &n->nft_table, err)) < 0 ||
	    (r = opt_strv(o, w, "securityGroups", &n->security_groups, err)) < 0 ||
	    (r = opt_str(o, w, "hostname", &n->hostname, err)) < 0)
		return r;
	/* The netns module checks bridge, subnet and table itself (net_open
	 * runs before anything is created); only the path is ours. */
	if (n->security_groups.n > NET_GROUPS_MAX)
		return berth_errf(err, EINVAL, "%ssecurityGroups: %zu groups, at most %d", w,
				  n->security_groups.n, NET_GROUPS_MAX);
	for (size_t i = 0; i < n->security_groups.n; i++)
		if (!*n->security_groups.v[i] || strlen(n->security_groups.v[i]) > 255)
			return berth_errf(err, EINVAL, "%ssecurityGroups[%zu]: 1 to 255 characters",
					  w, i);
	return check_abs(w, "ipamDir", n->ipam_dir, err);
}

static int parse_task(const cJSON *root, struct plan *p, struct berth_err *err)
{
	int r = req_str(root, "", "taskId", &p->task_id, err);
	if (r < 0)
		return r;
	if (!name_ok(p->task_id, PLAN_TASK_ID_MAX, "_.-") || p->task_id[0] == '.')
		return berth_errf(err, EINVAL, "taskId \"%s\": must be 1-%d letters, digits, '_', "
				  "'.' or '-', not starting with '.'", p->task_id, PLAN_TASK_ID_MAX);
	uint64_t cpu = 0;
	p->pids_max = 4096;
	if ((r = opt_uint(root, "", "cpu", 0, UINT32_MAX, &cpu, err)) < 0 ||
	    (r = opt_uint(root, "", "memory", 0, UINT64_MAX >> 21, &p->memory_mib, err)) < 0 ||
	    (r = opt_uint(root, "", "pidsMax", 1, UINT32_MAX, &p->pids_max, err)) < 0)
		return r;
	p->cpu = (uint32_t)cpu;
	char logdef[128];
	snprintf(logdef, sizeof(logdef), "/var/log/berth/%s", p->task_id);
	if ((r = req_str(root, "", "taskDir", &p->task_dir, err)) < 0 ||
	    (r = str_or(root, "", "runDir", "/run/berth", &p->run_dir, err)) < 0 ||
	    (r = str_or(root, "", "logDir", logdef, &p->log_dir, err)) < 0 ||
	    (r = str_or(root, "", "cgroupName", "berth", &p->cgroup_name, err)) < 0)
		return r;
	if ((r = check_abs("", "taskDir", p->task_dir, err)) < 0 ||
	    (r = check_abs("", "runDir", p->run_dir, err)) < 0 ||
	    (r = check_abs("", "logDir", p->log_dir, err)) < 0)
		return r;
	if (!name_ok(p->cgroup_name, 255, "_.-") || p->cgroup_name[0] == '.' ||
	    !strcmp(p->cgroup_name, "agent"))
		return berth_errf(err, EINVAL, "cgroupName \"%s\": must be one path component of "
				  "letters, digits, '_', '.' or '-' (and not \"agent\")", p->cgroup_name);
	return parse_network(root, &p->network, err);
}

/* ---- one container ------------------------------------------------------ */

static int parse_env(const cJSON *o, const char *w, struct plan_container *c,
		     struct berth_err *err)
{
	const cJSON *a = NULL;
	int r = opt_array(o, w, "environment", &a, err);
	size_t i = 0;
	for (const cJSON *e = a ? a->child : NULL; r >= 0 && e; e = e->next, i++) {
		char ew[WHERE_MAX + 32];
		snprintf(ew, sizeof(ew), "%senvironment[%zu].", w, i);
		_cleanup_free_ char *name = NULL, *value = NULL;
		if (!cJSON_IsObject(e))
			return berth_errf(err, EINVAL, "%senvironment[%zu]: not an object", w, i);
		if ((r = req_str(e, ew, "name", &name, err)) < 0 ||
		    (r = str_or(e, ew, "value", "", &value, err)) < 0)
			return r;
		if (!name[0] || strchr(name, '='))
			return berth_errf(err, EINVAL, "%sname \"%s\": empty or contains '='", ew, name);
		_cleanup_free_ char *kv = NULL;
		if (asprintf(&kv, "%s=%s", name, value) < 0 || strv_push(&c->env, kv) < 0)
			return berth_errf(err, ENOMEM, "%s: out of memory", ew);
	}
	return r;
}

static int parse_ulimits(const cJSON *o, const char *w, struct plan_container *c,
			 struct berth_err *err)
{
	const cJSON *a = NULL;
	int r = opt_array(o, w, "ulimits", &a, err);
	size_t n = (size_t)cJSON_GetArraySize(a);
	if (r < 0 || n == 0)
		return r;
	if (!(c->ulimits = calloc(n, sizeof(*c->ulimits))))
		return berth_errf(err, ENOMEM, "%sulimits: out of memory", w);
	for (const cJSON *e = a->child; e; e = e->next, c->n_ulimits++) {
		char uw[WHERE_MAX + 32];
		snprintf(uw, sizeof(uw), "%sulimits[%zu].", w, c->n_ulimits);
		struct rt_ulimit *u = &c->ulimits[c->n_ulimits];
		_cleanup_free_ char *name = NULL;
		if (!cJSON_IsObject(e))
			return berth_errf(err, EINVAL, "%sulimits[%zu]: not an object", w, c->n_ulimits);
		if ((r = req_str(e, uw, "name", &name, err)) < 0)
			return r;
		if ((r = rt_ulimit_resource(name, &u->resource, err)) < 0)
			return berth_err_wrap(err, "%sname", uw);
		if (!member(e, "softLimit") || !member(e, "hardLimit"))
			return berth_errf(err, EINVAL, "%s: softLimit and hardLimit are required", uw);
		if ((r = opt_uint(e, uw, "softLimit", 0, UINT64_MAX >> 11, &u->soft, err)) < 0 ||
		    (r = opt_uint(e, uw, "hardLimit", 0, UINT64_MAX >> 11, &u->hard, err)) < 0)
			return r;
		if (u->soft > u->hard)
			return berth_errf(err, EINVAL, "%s: softLimit %llu above hardLimit %llu", uw,
					  (unsigned long long)u->soft, (unsigned long long)u->hard);
	}
	return 0;
}

static int parse_linux(const cJSON *o, const char *w, struct plan_container *c,
		       struct berth_err *err)
{
	const cJSON *lp = NULL, *caps = NULL;
	char lw[WHERE_MAX + 32], cw[WHERE_MAX + 64];
	snprintf(lw, sizeof(lw), "%slinuxParameters.", w);
	snprintf(cw, sizeof(cw), "%scapabilities.", lw);
	int r = opt_object(o, w, "linuxParameters", &lp, err);
	if (r >= 0)
		r = opt_object(lp, lw, "capabilities", &caps, err);
	if (r >= 0)
		r = opt_bool(lp, lw, "initProcessEnabled", &c->init_process, err);
	if (r >= 0)
		r = opt_strv(caps, cw, "add", &c->cap_add, err);
	if (r >= 0)
		r = opt_strv(caps, cw, "drop", &c->cap_drop, err);
	if (r < 0)
		return r;
	uint64_t mask;
	r = rt_caps_compute((const char *const *)c->cap_add.v, c->cap_add.n,
			    (const char *const *)c->cap_drop.v, c->cap_drop.n, &mask, err);
	return r < 0 ? berth_err_wrap(err, "%scapabilities", lw) : 0;
}

static int parse_log(const cJSON *o, const char *w, struct plan_container *c,
		     struct berth_err *err)
{
	const cJSON *lc = NULL, *opts = NULL;
	char lw[WHERE_MAX + 32];
	snprintf(lw, sizeof(lw), "%slogConfiguration.", w);
	rt_log_opts_init(&c->log_opts);
	int r = opt_object(o, w, "logConfiguration", &lc, err);
	if (r >= 0)
		r = opt_object(lc, lw, "options", &opts, err);
	for (const cJSON *e = opts ? opts->child : NULL; r >= 0 && e; e = e->next) {
		if (!cJSON_IsString(e))
			return berth_errf(err, EINVAL, "%soptions.%s: not a string", lw, e->string);
		r = rt_log_opts_set(&c->log_opts, e->string, e->valuestring, err);
		/* Options of other log drivers (awslogs-group, …) mean nothing
		 * to a log file. */
		if (r == -ENOTSUP)
			r = 0;
		else if (r < 0)
			return berth_err_wrap(err, "%soptions", lw);
	}
	return r;
}

/* -1 for an absent number, as rt_health_config_from() wants it. */
static int health_number(const cJSON *hc, const char *hw, const char *key, int *ret,
			 struct berth_err *err)
{
	uint64_t v = UINT64_MAX;
	int r = opt_uint(hc, hw, key, 0, INT32_MAX, &v, err);
	*ret = v == UINT64_MAX ? -1 : (int)v;
	return r;
}

static int parse_health(const cJSON *o, const char *w, struct plan_health *h,
			struct berth_err *err)
{
	const cJSON *hc = NULL;
	char hw[WHERE_MAX + 32];
	snprintf(hw, sizeof(hw), "%shealthCheck.", w);
	int r = opt_object(o, w, "healthCheck", &hc, err);
	if (r < 0 || !hc)
		return r;
	struct plan_strv cmd = { 0 };
	int interval, timeout, retries, start;
	if (!member(hc, "command"))
		return berth_errf(err, EINVAL, "%scommand: missing", hw);
	if ((r = opt_strv(hc, hw, "command", &cmd, err)) >= 0 &&
	    (r = health_number(hc, hw, "interval", &interval, err)) >= 0 &&
	    (r = health_number(hc, hw, "timeout", &timeout, err)) >= 0 &&
	    (r = health_number(hc, hw, "retries", &retries, err)) >= 0 &&
	    (r = health_number(hc, hw, "startPeriod", &start, err)) >= 0) {
		r = rt_health_config_from((const char *const *)cmd.v, cmd.n, interval, timeout,
					  retries, start, &h->cfg, err);
		if (r < 0)
			berth_err_wrap(err, "%.*s", (int)strlen(w) - 1, w);
	}
	strv_free(&cmd);
	h->present = r >= 0 && h->cfg.argv;
	return r;
}

static int parse_argv_env(const cJSON *o, const char *w, struct plan_container *c,
			  struct berth_err *err)
{
	int r = opt_strv(o, w, "entryPoint", &c->argv, err);
	if (r >= 0)
		r = opt_strv(o, w, "command", &c->argv, err);
	if (r < 0)
		return r;
	if (c->argv.n == 0 || !c->argv.v[0][0])
		return berth_errf(err, EINVAL, "%sentryPoint, command: no command to run", w);
	if ((r = parse_env(o, w, c, err)) < 0 || (r = opt_str(o, w, "user", &c->user, err)) < 0 ||
	    (r = opt_str(o, w, "workingDirectory", &c->working_dir, err)) < 0)
		return r;
	if (c->working_dir && c->working_dir[0] && c->working_dir[0] != '/')
		return berth_errf(err, EINVAL, "%sworkingDirectory \"%s\": not an absolute path", w,
				  c->working_dir);
	return 0;
}

/* restartPolicy: the exit codes are what wait(2) can report (a signal's
 * death is 128 + its number), but any integer is accepted, as ECS does. */
static int parse_restart(const cJSON *o, const char *w, struct plan_restart *rp,
			 struct berth_err *err)
{
	const cJSON *pol = NULL, *codes = NULL;
	char rw[WHERE_MAX + 16];
	snprintf(rw, sizeof(rw), "%srestartPolicy.", w);
	rp->attempt_period = PLAN_RESTART_PERIOD_DEFAULT;
	int r = opt_object(o, w, "restartPolicy", &pol, err);
	if (r < 0 || !pol)
		return r;
	if (!member(pol, "enabled"))
		return berth_errf(err, EINVAL, "%senabled: missing", rw);
	if ((r = opt_bool(pol, rw, "enabled", &rp->enabled, err)) < 0 ||
	    (r = opt_unsigned(pol, rw, "restartAttemptPeriod", PLAN_RESTART_PERIOD_MIN,
			      PLAN_RESTART_PERIOD_MAX, &rp->attempt_period, err)) < 0 ||
	    (r = opt_array(pol, rw, "ignoredExitCodes", &codes, err)) < 0)
		return r;
	const cJSON *e;
	cJSON_ArrayForEach(e, codes) {
		if (rp->n_ignored == PLAN_RESTART_IGNORED_MAX)
			return berth_errf(err, EINVAL, "%signoredExitCodes: more than %d", rw,
					  PLAN_RESTART_IGNORED_MAX);
		double v = cJSON_IsNumber(e) ? e->valuedouble : 0.5;
		if (v != floor(v) || v < INT32_MIN || v > INT32_MAX)
			return berth_errf(err, EINVAL, "%signoredExitCodes[%zu]: not an integer", rw,
					  rp->n_ignored);
		rp->ignored[rp->n_ignored++] = (int)v;
	}
	return 0;
}

static int parse_resources(const cJSON *o, const char *w, struct plan_container *c,
			   struct berth_err *err)
{
	uint64_t cpu = 0;
	c->essential = true;
	c->stop_timeout = PLAN_STOP_TIMEOUT_DEFAULT;
	int r;
	if ((r = opt_bool(o, w, "essential", &c->essential, err)) < 0 ||
	    (r = opt_unsigned(o, w, "stopTimeout", PLAN_STOP_TIMEOUT_MIN, PLAN_STOP_TIMEOUT_MAX,
			      &c->stop_timeout, err)) < 0 ||
	    (r = opt_unsigned(o, w, "startTimeout", PLAN_START_TIMEOUT_MIN,
			      PLAN_START_TIMEOUT_MAX, &c->start_timeout, err)) < 0 ||
	    (r = parse_restart(o, w, &c->restart, err)) < 0 ||
	    (r = opt_bool(o, w, "readonlyRootFilesystem", &c->readonly_rootfs, err)) < 0 ||
	    (r = opt_uint(o, w, "memory", 0, UINT64_MAX >> 21, &c->memory_mib, err)) < 0 ||
	    (r = opt_uint(o, w, "memoryReservation", 0, UINT64_MAX >> 21,
			  &c->memory_reservation_mib, err)) < 0 ||
	    (r = opt_uint(o, w, "cpu", 0, UINT32_MAX, &cpu, err)) < 0)
		return r;
	c->cpu = (uint32_t)cpu;
	if (c->memory_mib && c->memory_reservation_mib > c->memory_mib)
		return berth_errf(err, EINVAL, "%smemoryReservation %llu: above memory %llu", w,
				  (unsigned long long)c->memory_reservation_mib,
				  (unsigned long long)c->memory_mib);
	return 0;
}

static int parse_layers(const cJSON *o, const char *w, struct plan_container *c,
			struct berth_err *err)
{
	if (!member(o, "layers"))
		return berth_errf(err, EINVAL, "%slayers: missing", w);
	int r = opt_strv(o, w, "layers", &c->layers, err);
	if (r < 0)
		return r;
	if (c->layers.n == 0)
		return berth_errf(err, EINVAL, "%slayers: empty", w);
	for (size_t i = 0; i < c->layers.n; i++)
		if (c->layers.v[i][0] != '/')
			return berth_errf(err, EINVAL, "%slayers[%zu] \"%s\": not an absolute path", w,
					  i, c->layers.v[i]);
	return 0;
}

/* Everything but dependsOn, which needs every name first. */
static int parse_container(const cJSON *o, size_t i, struct plan_container *c,
			   struct berth_err *err)
{
	char w[WHERE_MAX];
	snprintf(w, sizeof(w), "containers[%zu].", i);
	if (!cJSON_IsObject(o))
		return berth_errf(err, EINVAL, "containers[%zu]: not an object", i);
	int r = req_str(o, w, "name", &c->name, err);
	if (r < 0)
		return r;
	if (!name_ok(c->name, PLAN_NAME_MAX, "_-"))
		return berth_errf(err, EINVAL, "%sname \"%s\": must be 1-%d letters, digits, '_' "
				  "or '-'", w, c->name, PLAN_NAME_MAX);
	if ((r = parse_layers(o, w, c, err)) < 0 || (r = parse_argv_env(o, w, c, err)) < 0 ||
	    (r = parse_resources(o, w, c, err)) < 0 || (r = parse_ulimits(o, w, c, err)) < 0 ||
	    (r = parse_linux(o, w, c, err)) < 0 || (r = parse_log(o, w, c, err)) < 0)
		return r;
	return parse_health(o, w, &c->health, err);
}

/* ---- mountPoints (after the task's volumes) ------------------------------ */

static int parse_mount(const struct plan *p, const cJSON *e, const char *mw,
		       struct plan_mount *m, struct berth_err *err)
{
	_cleanup_free_ char *vol = NULL;
	if (!cJSON_IsObject(e))
		return berth_errf(err, EINVAL, "%.*s: not an object", (int)strlen(mw) - 1, mw);
	int r;
	if ((r = req_str(e, mw, "sourceVolume", &vol, err)) < 0 ||
	    (r = req_str(e, mw, "containerPath", &m->container_path, err)) < 0 ||
	    (r = opt_bool(e, mw, "readOnly", &m->readonly, err)) < 0 ||
	    (r = opt_bool(e, mw, "imageVolume", &m->image_volume, err)) < 0)
		return r;
	for (m->volume = 0; m->volume < p->n_volumes; m->volume++)
		if (!strcmp(p->volumes[m->volume].name, vol))
			break;
	if (m->volume == p->n_volumes)
		return berth_errf(err, EINVAL, "%ssourceVolume \"%s\": no such volume in the task",
				  mw, vol);
	if (!berth_path_clean(m->container_path))
		return berth_errf(err, EINVAL, "%scontainerPath \"%s\": not an absolute path "
				  "other than / without '.' or '..'", mw, m->container_path);
	return 0;
}

static int parse_mounts(struct plan *p, const cJSON *o, size_t i, struct berth_err *err)
{
	struct plan_container *c = &p->containers[i];
	char w[WHERE_MAX];
	snprintf(w, sizeof(w), "containers[%zu].", i);
	const cJSON *a = NULL;
	int r = opt_array(o, w, "mountPoints", &a, err);
	size_t n = (size_t)cJSON_GetArraySize(a);
	if (r < 0 || n == 0)
		return r;
	if (!(c->mounts = calloc(n, sizeof(*c->mounts))))
		return berth_errf(err, ENOMEM, "%smountPoints: out of memory", w);
	for (const cJSON *e = a->child; e; e = e->next) {
		size_t k = c->n_mounts++;
		char mw[WHERE_MAX + 32];
		snprintf(mw, sizeof(mw), "%smountPoints[%zu].", w, k);
		if ((r = parse_mount(p, e, mw, &c->mounts[k], err)) < 0)
			return r;
		for (size_t j = 0; j < k; j++)
			if (!strcmp(c->mounts[j].container_path, c->mounts[k].container_path))
				return berth_errf(err, EINVAL, "%scontainerPath \"%s\": used twice",
						  mw, c->mounts[k].container_path);
	}
	return 0;
}

/* ---- dependsOn ---------------------------------------------------------- */

static int parse_condition(const char *s, enum plan_condition *ret)
{
	for (size_t i = 0; i < ARRAY_SIZE(condition_names); i++)
		if (!strcmp(s, condition_names[i])) {
			*ret = (enum plan_condition)i;
			return 0;
		}
	return -EINVAL;
}

static int check_dep(const struct plan *p, const char *dw, const char *name, size_t target,
		     enum plan_condition cond, struct berth_err *err)
{
	const struct plan_container *t = &p->containers[target];
	/* ECS: an essential container exiting stops the task, so nothing
	 * could ever start after it. */
	if ((cond == PLAN_DEP_COMPLETE || cond == PLAN_DEP_SUCCESS) && t->essential)
		return berth_errf(err, EINVAL, "%scondition %s: container %s is essential", dw,
				  plan_condition_name(cond), name);
	if (cond == PLAN_DEP_HEALTHY && !t->health.present)
		return berth_errf(err, EINVAL, "%scondition HEALTHY: container %s has no healthCheck",
				  dw, name);
	return 0;
}

static int parse_dep(const struct plan *p, const cJSON *e, const char *dw, struct plan_dep *d,
		     struct berth_err *err)
{
	_cleanup_free_ char *name = NULL, *cond = NULL;
	if (!cJSON_IsObject(e))
		return berth_errf(err, EINVAL, "%s not an object", dw);
	int r = req_str(e, dw, "containerName", &name, err);
	if (r >= 0)
		r = req_str(e, dw, "condition", &cond, err);
	if (r < 0)
		return r;
	int idx = plan_container_index(p, name);
	if (idx < 0)
		return berth_errf(err, EINVAL, "%scontainerName \"%s\": no such container in the task",
				  dw, name);
	if (parse_condition(cond, &d->condition) < 0)
		return berth_errf(err, EINVAL, "%scondition \"%s\": not START, COMPLETE, SUCCESS or "
				  "HEALTHY", dw, cond);
	d->index = (size_t)idx;
	return check_dep(p, dw, name, d->index, d->condition, err);
}

static int parse_deps(struct plan *p, const cJSON *o, size_t i, struct berth_err *err)
{
	struct plan_container *c = &p->containers[i];
	char w[WHERE_MAX];
	snprintf(w, sizeof(w), "containers[%zu].", i);
	const cJSON *a = NULL;
	int r = opt_array(o, w, "dependsOn", &a, err);
	size_t n = (size_t)cJSON_GetArraySize(a);
	if (r < 0 || n == 0)
		return r;
	if (!(c->deps = calloc(n, sizeof(*c->deps))))
		return berth_errf(err, ENOMEM, "%sdependsOn: out of memory", w);
	for (const cJSON *e = a->child; e; e = e->next, c->n_deps++) {
		char dw[WHERE_MAX + 32];
		snprintf(dw, sizeof(dw), "%sdependsOn[%zu].", w, c->n_deps);
		if ((r = parse_dep(p, e, dw, &c->deps[c->n_deps], err)) < 0)
			return r;
	}
	return 0;
}

enum { WHITE, GREY, BLACK };

/* Depth-first search; a grey node reached again closes a cycle, which is
 * reported as the path "a -> b -> a". */
static int visit(const struct plan *p, size_t i, unsigned char *color, size_t *stack,
		 size_t depth, struct berth_err *err)
{
	color[i] = GREY;
	stack[depth] = i;
	for (size_t d = 0; d < p->containers[i].n_deps; d++) {
		size_t t = p->containers[i].deps[d].index;
		if (color[t] == GREY) {
			char path[1024] = "";
			size_t start = 0;
			while (stack[start] != t)
				start++;
			for (size_t k = start; k <= depth; k++) {
				size_t len = strlen(path);
				snprintf(path + len, sizeof(path) - len, "%s -> ",
					 p->containers[stack[k]].name);
			}
			size_t len = strlen(path);
			snprintf(path + len, sizeof(path) - len, "%s", p->containers[t].name);
			return berth_errf(err, EINVAL, "containers[%zu].dependsOn: cycle %s", i, path);
		}
		if (color[t] == WHITE) {
			int r = visit(p, t, color, stack, depth + 1, err);
			if (r < 0)
				return r;
		}
	}
	color[i] = BLACK;
	return 0;
}

static int check_cycles(const struct plan *p, struct berth_err *err)
{
	_cleanup_free_ unsigned char *color = calloc(p->n_containers, 1);
	_cleanup_free_ size_t *stack = calloc(p->n_containers, sizeof(size_t));
	if (!color || !stack)
		return berth_errf(err, ENOMEM, "dependsOn: out of memory");
	for (size_t i = 0; i < p->n_containers; i++)
		if (color[i] == WHITE) {
			int r = visit(p, i, color, stack, 0, err);
			if (r < 0)
				return r;
		}
	return 0;
}

/* ---- the whole plan ----------------------------------------------------- */

static int check_containers(const struct plan *p, struct berth_err *err)
{
	bool any_essential = false;
	for (size_t i = 0; i < p->n_containers; i++) {
		const struct plan_container *c = &p->containers[i];
		any_essential |= c->essential;
		if (plan_container_index(p, c->name) != (int)i)
			return berth_errf(err, EINVAL, "containers[%zu].name \"%s\": used twice", i,
					  c->name);
		if (p->memory_mib && c->memory_mib > p->memory_mib)
			return berth_errf(err, EINVAL, "containers[%zu].memory %llu: above the task's "
					  "memory %llu", i, (unsigned long long)c->memory_mib,
					  (unsigned long long)p->memory_mib);
	}
	if (!any_essential)
		return berth_errf(err, EINVAL, "containers: no essential container");
	return 0;
}

static int parse_containers(const cJSON *root, struct plan *p, struct berth_err *err)
{
	const cJSON *a = NULL;
	int r = opt_array(root, "", "containers", &a, err);
	size_t n = (size_t)cJSON_GetArraySize(a);
	if (r < 0)
		return r;
	if (n == 0)
		return berth_errf(err, EINVAL, "containers: missing or empty");
	if (!(p->containers = calloc(n, sizeof(*p->containers))))
		return berth_errf(err, ENOMEM, "containers: out of memory");
	for (const cJSON *e = a->child; e; e = e->next) {
		/* Counted first, so plan_free() frees a half-parsed one too. */
		size_t i = p->n_containers++;
		if ((r = parse_container(e, i, &p->containers[i], err)) < 0)
			return r;
	}
	if ((r = check_containers(p, err)) < 0)
		return r;
	size_t i = 0;
	for (const cJSON *e = a->child; e; e = e->next, i++)
		if ((r = parse_deps(p, e, i, err)) < 0 || (r = parse_mounts(p, e, i, err)) < 0)
			return r;
	return check_cycles(p, err);
}

int plan_parse(const char *text, size_t len, struct plan **ret, struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *root = cJSON_ParseWithLength(text, len);
	if (!root)
		return berth_errf(err, EINVAL, "not valid JSON near byte %zu",
				  (size_t)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - text : 0));
	if (!cJSON_IsObject(root))
		return berth_errf(err, EINVAL, "not a JSON object");
	_cleanup_(plan_freep) struct plan *p = calloc(1, sizeof(*p));
	if (!p)
		return berth_errf(err, ENOMEM, "plan: out of memory");
	int r = parse_task(root, p, err);
	if (r >= 0)
		r = parse_volumes(root, p, err);
	if (r >= 0)
		r = parse_containers(root, p, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(p);
	return 0;
}

int plan_load(const char *path, struct plan **ret, struct berth_err *err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r = berth_read_file_at(AT_FDCWD, path, PLAN_MAX_BYTES, &text, &len, err);
	if (r < 0)
		return r;
	if ((r = plan_parse(text, len, ret, err)) < 0)
		return berth_err_wrap(err, "plan %s", path);
	return 0;
}

int plan_container_index(const struct plan *p, const char *name)
{
	for (size_t i = 0; i < p->n_containers; i++)
		if (p->containers[i].name && !strcmp(p->containers[i].name, name))
			return (int)i;
	return -1;
}

static void container_free(struct plan_container *c)
{
	free(c->name);
	strv_free(&c->layers);
	strv_free(&c->argv);
	strv_free(&c->env);
	free(c->user);
	free(c->working_dir);
	free(c->deps);
	rt_health_config_free(&c->health.cfg);
	free(c->ulimits);
	strv_free(&c->cap_add);
	strv_free(&c->cap_drop);
	for (size_t i = 0; i < c->n_mounts; i++)
		free(c->mounts[i].container_path);
	free(c->mounts);
}

void plan_free(struct plan *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_containers; i++)
		container_free(&p->containers[i]);
	free(p->containers);
	for (size_t i = 0; i < p->n_volumes; i++) {
		free(p->volumes[i].name);
		free(p->volumes[i].root);
		free(p->volumes[i].path);
	}
	free(p->volumes);
	free(p->task_id);
	free(p->task_dir);
	free(p->run_dir);
	free(p->log_dir);
	free(p->cgroup_name);
	free(p->network.bridge);
	free(p->network.nft_table);
	strv_free(&p->network.security_groups);
	free(p->network.subnet);
	free(p->network.ipam_dir);
	free(p->network.hostname);
	free(p);
}
