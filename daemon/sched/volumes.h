/* daemon/sched/volumes: a task definition's `volumes`, its containers'
 * `mountPoints` and `volumesFrom` → the plan's volumes (runtime/plan.h),
 * the operator's host-path policy, and the named volumes under
 * <root>/volumes (docs/task-environment.md "Volumes").
 *
 *   no host, host without sourcePath, dockerVolumeConfiguration scope task
 *       a task volume: an empty directory in the task's directory, gone
 *       with the task
 *   dockerVolumeConfiguration scope shared (driver local)
 *       a named volume <root>/volumes/<name>, made on first use when
 *       autoprovision is true, kept until `berth volume rm`
 *   host.sourcePath
 *       only beneath a prefix the operator allows (--allow-host-path),
 *       opened by the shim with RESOLVE_BENEATH from that prefix
 *   efsVolumeConfiguration, fsxWindowsFileServerVolumeConfiguration,
 *   configuredAtLaunch, other drivers, driverOpts
 *       refused at RunTask, naming the member */
#ifndef BERTH_DAEMON_VOLUMES_H
#define BERTH_DAEMON_VOLUMES_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "common/err.h"
#include "daemon/sched/policy.h"
#include "daemon/sched/taskplan.h"

#define VOLUMES_DIR "volumes"      /* under the daemon's --root */

/* taskplan_check()'s part: -ENOTSUP naming what Berth does not run. */
int volumes_check(const cJSON *td, struct berth_err *err);

/* policy_check()'s part: -EPERM for a host.sourcePath outside every
 * allowed prefix (or when the operator allows none). */
int volumes_check_host(const struct berth_policy *p, const cJSON *td, struct berth_err *err);

/* --allow-host-path PREFIX (kept as given: argv outlives the daemon);
 * -EINVAL for "/", a relative or non-canonical path, or too many. */
int volumes_allow_host_path(struct berth_policy *p, const char *prefix, struct berth_err *err);

/* At start: no allowed prefix may hold or lie under one of Berth's own
 * directories DIRS (root, run root, log root). */
int volumes_check_prefixes(const struct berth_policy *p, const char *const *dirs, size_t n,
			   struct berth_err *err);

/* The plan's task-level "volumes" (into PLAN) and container CD's
 * "mountPoints" with its volumesFrom expanded (into PC); IMG is CD's image
 * config's "config" (or NULL): a mount at one of its Volumes paths is
 * marked "imageVolume", for the shim to seed an empty volume with what the
 * image has there, as ECS does for a Dockerfile's VOLUME. */
int volumes_plan(const cJSON *td, const struct taskplan_env *e, cJSON *plan,
		 struct berth_err *err);
int volumes_container_plan(const cJSON *td, const cJSON *cd, const cJSON *img, cJSON *pc,
			   struct berth_err *err);

struct sched;

/* The daemon's named volumes (<root>/volumes): *ret is a cJSON array of
 * {"name", "driver"} sorted by name.  Remove: -ENOENT, -EBUSY while a
 * running task holds it, -EINVAL for a name that is not a volume name. */
int volumes_list(const struct sched *s, cJSON **ret, struct berth_err *err);
int volumes_remove(const struct sched *s, const char *name, struct berth_err *err);

#endif
