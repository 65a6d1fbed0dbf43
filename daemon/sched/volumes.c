/* daemon/sched/volumes: volumes, mountPoints and volumesFrom (volumes.h). */
#include "daemon/sched/volumes.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "daemon/sched/sched_internal.h"

static const cJSON *member(const cJSON *o, const char *name)
{
	const cJSON *m = o ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;
	return cJSON_IsNull(m) ? NULL : m;
}

enum kind { VOL_TASK, VOL_SHARED, VOL_HOST };

static enum kind volume_kind(const cJSON *v)
{
	const cJSON *dvc = member(v, "dockerVolumeConfiguration");
	const char *scope = json_str(dvc, "scope");
	if (dvc && scope && strcmp(scope, "shared") == 0)
		return VOL_SHARED;
	return json_str(member(v, "host"), "sourcePath") ? VOL_HOST : VOL_TASK;
}

/* ---- what Berth refuses ------------------------------------------------- */

static int check_docker(const cJSON *dvc, const char *where, struct berth_err *err)
{
	const char *driver = json_str(dvc, "driver"), *scope = json_str(dvc, "scope");
	const cJSON *opts = member(dvc, "driverOpts");
	if (driver && strcmp(driver, "local") != 0)
		return berth_errf(err, ENOTSUP, "%sdockerVolumeConfiguration.driver %s: only the "
				  "local driver is supported", where, driver);
	if (cJSON_GetArraySize(opts) > 0)
		return berth_errf(err, ENOTSUP, "%sdockerVolumeConfiguration.driverOpts: the local "
				  "driver's mount options are not supported", where);
	if (scope && strcmp(scope, "task") != 0 && strcmp(scope, "shared") != 0)
		return berth_errf(err, ENOTSUP, "%sdockerVolumeConfiguration.scope %s: expected "
				  "task or shared", where, scope);
	if (cJSON_IsTrue(member(dvc, "autoprovision")) && (!scope || strcmp(scope, "shared")))
		return berth_errf(err, ENOTSUP, "%sdockerVolumeConfiguration.autoprovision: only "
				  "for scope shared", where);
	return 0;
}

int volumes_check(const cJSON *td, struct berth_err *err)
{
	static const struct { const char *member, *why; } refused[] = {
		{ "efsVolumeConfiguration", "Amazon EFS is not available on Berth" },
		{ "fsxWindowsFileServerVolumeConfiguration",
		  "FSx for Windows File Server is not available on Berth" },
		{ "configuredAtLaunch", "volumes configured at launch (Amazon EBS) are not "
					"supported" },
	};
	const cJSON *v;
	int i = 0;
	cJSON_ArrayForEach(v, member(td, "volumes")) {
		char where[320];
		snprintf(where, sizeof(where), "volumes[%d] (%s): ", i++,
			 json_str(v, "name") ? json_str(v, "name") : "?");
		for (size_t k = 0; k < ARRAY_SIZE(refused); k++) {
			const cJSON *m = member(v, refused[k].member);
			if (m && !cJSON_IsFalse(m))
				return berth_errf(err, ENOTSUP, "%s%s: %s", where, refused[k].member,
						  refused[k].why);
		}
		const cJSON *dvc = member(v, "dockerVolumeConfiguration");
		int r = dvc ? check_docker(dvc, where, err) : 0;
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- host paths ---------------------------------------------------------- */

/* PATH is PREFIX or beneath it; *ret_rest: what follows ("" or "a/b"). */
static bool beneath(const char *path, const char *prefix, const char **ret_rest)
{
	size_t n = strcmp(prefix, "/") ? strlen(prefix) : 0;
	if (strncmp(path, prefix, n) != 0 || (path[n] && path[n] != '/'))
		return false;
	*ret_rest = path[n] ? path + n + 1 : "";
	return true;
}

static const char *allowed_prefix(const char *const *prefixes, size_t n, const char *path,
				  const char **ret_rest)
{
	for (size_t i = 0; i < n; i++)
		if (beneath(path, prefixes[i], ret_rest))
			return prefixes[i];
	return NULL;
}

int volumes_check_host(const struct berth_policy *p, const cJSON *td, struct berth_err *err)
{
	const cJSON *v;
	int i = 0;
	cJSON_ArrayForEach(v, member(td, "volumes")) {
		const char *src = json_str(member(v, "host"), "sourcePath"), *name = json_str(v, "name");
		const char *rest;
		i++;
		if (volume_kind(v) != VOL_HOST)
			continue;
		if (!p->n_host_paths)
			return berth_errf(err, EPERM, "volumes[%d] (%s): host.sourcePath %s: host paths "
					  "are not allowed on this host; the operator allows "
					  "prefixes with berth daemon --allow-host-path", i - 1,
					  name ? name : "?", src);
		if (!berth_path_clean(src))
			return berth_errf(err, EPERM, "volumes[%d] (%s): host.sourcePath %s: not an "
					  "absolute path other than / without '.', '..' or '//'",
					  i - 1, name ? name : "?", src);
		if (!allowed_prefix(p->host_paths, p->n_host_paths, src, &rest))
			return berth_errf(err, EPERM, "volumes[%d] (%s): host.sourcePath %s: not "
					  "beneath a prefix allowed with --allow-host-path", i - 1,
					  name ? name : "?", src);
	}
	return 0;
}

int volumes_allow_host_path(struct berth_policy *p, const char *prefix, struct berth_err *err)
{
	char real[PATH_MAX];
	if (p->n_host_paths == POLICY_HOST_PATHS_MAX)
		return berth_errf(err, EINVAL, "--allow-host-path %s: at most %d prefixes", prefix,
				  POLICY_HOST_PATHS_MAX);
	if (!realpath(prefix, real))
		return berth_errnof(err, errno, "--allow-host-path %s", prefix);
	if (strcmp(real, "/") == 0)
		return berth_errf(err, EINVAL, "--allow-host-path %s: never the whole host", prefix);
	if (strcmp(real, prefix) != 0)
		return berth_errf(err, EINVAL, "--allow-host-path %s: give the canonical path %s",
				  prefix, real);
	p->host_paths[p->n_host_paths++] = prefix;
	return 0;
}

int volumes_check_prefixes(const struct berth_policy *p, const char *const *dirs, size_t n,
			   struct berth_err *err)
{
	for (size_t i = 0; i < n; i++) {
		char real[PATH_MAX];
		const char *d = realpath(dirs[i], real) ? real : dirs[i], *rest;
		for (size_t k = 0; k < p->n_host_paths; k++)
			if (beneath(d, p->host_paths[k], &rest) || beneath(p->host_paths[k], d, &rest))
				return berth_errf(err, EINVAL, "--allow-host-path %s: would expose "
						  "Berth's own directory %s", p->host_paths[k], d);
	}
	return 0;
}

/* ---- the plan ------------------------------------------------------------ */

/* Volume V as the plan's {name, root, path, create, shared}, into ARR. */
static int plan_volume(const cJSON *v, const struct taskplan_env *e, cJSON *arr,
		       struct berth_err *err)
{
	const char *name = json_str(v, "name"), *rest = "", *root = NULL;
	char task_root[PATH_MAX];
	enum kind k = volume_kind(v);
	snprintf(task_root, sizeof(task_root), "%s/" VOLUMES_DIR, e->task_dir);
	if (k == VOL_HOST) {
		const char *src = json_str(member(v, "host"), "sourcePath");
		root = berth_path_clean(src) ? allowed_prefix(e->host_paths, e->n_host_paths, src, &rest)
				       : NULL;
		if (!root)
			return berth_errf(err, EPERM, "volume %s: host.sourcePath %s is not allowed "
					  "on this host", name, src);
	}
	bool create = k == VOL_TASK ||
		      cJSON_IsTrue(member(member(v, "dockerVolumeConfiguration"), "autoprovision"));
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddItemToArray(arr, o)) {
		cJSON_Delete(o);
		return berth_errf(err, ENOMEM, "out of memory");
	}
	if (!cJSON_AddStringToObject(o, "name", name) ||
	    !cJSON_AddStringToObject(o, "root", k == VOL_HOST ? root : k == VOL_SHARED
					       ? e->volumes_dir : task_root) ||
	    !cJSON_AddStringToObject(o, "path", k == VOL_HOST ? rest : name) ||
	    !cJSON_AddBoolToObject(o, "create", create) ||
	    !cJSON_AddBoolToObject(o, "shared", k == VOL_SHARED))
		return berth_errf(err, ENOMEM, "out of memory");
	return 0;
}

int volumes_plan(const cJSON *td, const struct taskplan_env *e, cJSON *plan,
		 struct berth_err *err)
{
	const cJSON *v;
	if (!cJSON_GetArraySize(member(td, "volumes")))
		return 0;
	cJSON *arr = cJSON_AddArrayToObject(plan, "volumes");
	if (!arr)
		return berth_errf(err, ENOMEM, "out of memory");
	cJSON_ArrayForEach(v, member(td, "volumes")) {
		int r = plan_volume(v, e, arr, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static const cJSON *container_named(const cJSON *td, const char *name)
{
	const cJSON *cd;
	cJSON_ArrayForEach(cd, member(td, "containerDefinitions"))
		if (name && json_str(cd, "name") && strcmp(json_str(cd, "name"), name) == 0)
			return cd;
	return NULL;
}

static bool has_path(const cJSON *mounts, const char *path)
{
	const cJSON *m;
	cJSON_ArrayForEach(m, mounts)
		if (strcmp(json_str(m, "containerPath"), path) == 0)
			return true;
	return false;
}

static bool add_mount(cJSON *out, const char *vol, const char *path, bool ro, bool image_volume)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddItemToArray(out, o)) {
		cJSON_Delete(o);
		return false;
	}
	return cJSON_AddStringToObject(o, "sourceVolume", vol) &&
	       cJSON_AddStringToObject(o, "containerPath", path) &&
	       cJSON_AddBoolToObject(o, "readOnly", ro) &&
	       (!image_volume || cJSON_AddTrueToObject(o, "imageVolume"));
}

/* CD's own mountPoints, then (DEPTH levels deep at most: registration
 * refuses cycles) those of the containers it takes volumesFrom, read-only
 * when either says so.  A path already there keeps its first mount, so a
 * container's own mount wins over an inherited one, as under Docker.
 * IMG_VOLUMES: CD's image's config Volumes ({"/path": {}}), whose paths
 * are seeded from the image (ECS's VOLUME rule); NULL for an inherited
 * mount, which its own container seeds. */
static bool add_mounts(const cJSON *td, const cJSON *cd, const cJSON *img_volumes, bool ro,
		       int depth, cJSON *out)
{
	const cJSON *m, *vf;
	cJSON_ArrayForEach(m, member(cd, "mountPoints")) {
		const char *vol = json_str(m, "sourceVolume"), *path = json_str(m, "containerPath");
		if (!vol || !path || has_path(out, path))
			continue;
		bool seed = cJSON_GetObjectItemCaseSensitive(img_volumes, path) != NULL;
		if (!add_mount(out, vol, path, ro || cJSON_IsTrue(member(m, "readOnly")), seed))
			return false;
	}
	cJSON_ArrayForEach(vf, member(cd, "volumesFrom")) {
		const cJSON *src = container_named(td, json_str(vf, "sourceContainer"));
		if (src && depth > 0 &&
		    !add_mounts(td, src, NULL, ro || cJSON_IsTrue(member(vf, "readOnly")), depth - 1,
				out))
			return false;
	}
	return true;
}

int volumes_container_plan(const cJSON *td, const cJSON *cd, const cJSON *img, cJSON *pc,
			   struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *arr = cJSON_CreateArray();
	int depth = cJSON_GetArraySize(member(td, "containerDefinitions"));
	const cJSON *iv = member(img, "Volumes");
	if (!arr || !add_mounts(td, cd, cJSON_IsObject(iv) ? iv : NULL, false, depth, arr))
		return berth_errf(err, ENOMEM, "out of memory");
	if (cJSON_GetArraySize(arr) && !cJSON_AddItemToObject(pc, "mountPoints", TAKE_PTR(arr)))
		return berth_errf(err, ENOMEM, "out of memory");
	return 0;
}

/* ---- named volumes ------------------------------------------------------- */

static bool volume_name_ok(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= 255 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					       "0123456789_-") == n;
}

static int push_name(char ***names, size_t *n, const char *name)
{
	char **grown = realloc(*names, (*n + 1) * sizeof(**names));
	if (!grown)
		return -ENOMEM;
	*names = grown;
	if (!(grown[*n] = strdup(name)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void named_dir(const struct sched *s, char *buf, size_t n)
{
	snprintf(buf, n, "%s/" VOLUMES_DIR, s->cfg.root);
}

/* The volume names in DIR (none when it does not exist yet), sorted. */
static int read_names(const char *dir, char ***names, size_t *n, struct berth_err *err)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	if (!d && errno != ENOENT)
		return berth_errnof(err, errno, "named volumes %s", dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		struct stat st;
		if (!volume_name_ok(de->d_name) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (push_name(names, n, de->d_name) < 0)
			return berth_errf(err, ENOMEM, "out of memory");
	}
	if (*n)
		qsort(*names, *n, sizeof(**names), by_name);
	return 0;
}

static bool add_volume(cJSON *arr, const char *name)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddItemToArray(arr, o)) {
		cJSON_Delete(o);
		return false;
	}
	return cJSON_AddStringToObject(o, "name", name) &&
	       cJSON_AddStringToObject(o, "driver", "local");
}

int volumes_list(const struct sched *s, cJSON **ret, struct berth_err *err)
{
	char dir[PATH_MAX];
	named_dir(s, dir, sizeof(dir));
	_cleanup_(cJSON_Deletep) cJSON *arr = cJSON_CreateArray();
	char **names = NULL;
	size_t n = 0;
	int r = arr ? read_names(dir, &names, &n, err) : berth_errf(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if (r == 0 && !add_volume(arr, names[i]))
			r = berth_errf(err, ENOMEM, "out of memory");
		free(names[i]);
	}
	free(names);
	if (r == 0)
		*ret = TAKE_PTR(arr);
	return r;
}

int volumes_remove(const struct sched *s, const char *name, struct berth_err *err)
{
	char dir[PATH_MAX];
	named_dir(s, dir, sizeof(dir));
	if (!volume_name_ok(name))
		return berth_errf(err, EINVAL, "volume %.255s: not a volume name (1 to 255 letters, "
				  "numbers, underscores and hyphens)", name);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_close_ int vfd = dfd < 0 ? -1 : openat(dfd, name, O_RDONLY | O_DIRECTORY |
							 O_NOFOLLOW | O_CLOEXEC);
	if (vfd < 0 && (errno == ENOENT || errno == ENOTDIR))
		return berth_errf(err, ENOENT, "volume %s: no such volume", name);
	if (vfd < 0)
		return berth_errnof(err, errno, "volume %s", name);
	/* Every task mounting it holds a shared lock (runtime/shim_volumes.c). */
	if (flock(vfd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK
			? berth_errf(err, EBUSY, "volume %s: in use by a running task", name)
			: berth_errnof(err, errno, "volume %s: lock", name);
	int r = berth_rm_rf_at(dfd, name, err);
	return r < 0 ? berth_err_wrap(err, "volume %s", name) : 0;
}
