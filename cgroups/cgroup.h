/* cgroups: task and container resource control (docs/cgroups.md).
 *
 * One interface, two backends chosen at start-up by cg_driver_open():
 *   v2  cgroup2 mounted at /sys/fs/cgroup and cpu, memory, pids listed in
 *       cgroup.controllers of our own cgroup (the primary backend);
 *   v1  cpu, cpuacct, memory and pids mounted as v1 hierarchies under
 *       /sys/fs/cgroup (hybrid hosts such as the build machines, whose
 *       unified tree has no controllers).
 * Berth's tree lives under the cgroup this process already belongs to
 * (/proc/self/cgroup, per hierarchy): <own>/<name>/task-<id>/<container>.
 *
 * ECS -> cgroup mapping (struct cg_limits field in brackets):
 *
 *   ECS field                     v2 file                 v1 file
 *   ----------------------------  ----------------------  ---------------------------------
 *   task cpu units [cpu_quota]    cpu.max "Q 100000"      cpu.cfs_period_us 100000,
 *     Q = units * 100000 / 1024                           cpu.cfs_quota_us Q
 *   task memory MiB [memory_max]  memory.max,             memory.limit_in_bytes,
 *     and no swap                 memory.swap.max 0 (*)   memory.memsw.limit_in_bytes = same (*)
 *   container memory [memory_max] (as above, on the container child)
 *   memoryReservation [memory_low] memory.low             memory.soft_limit_in_bytes
 *   container cpu [cpu_shares]    cpu.weight =            cpu.shares = units
 *                                 1 + (units-2)*9999/262142   (clamped to 2..262144)
 *   (Berth default) [pids_max]    pids.max                pids.max
 *                                 (CG_TASK_PIDS_DEFAULT = 4096 for task groups)
 *   (*) only when the kernel accounts swap (the file exists); without swap
 *       accounting there is nothing to turn off.
 *
 * Reading back:
 *   OOM kills      memory.events oom_kill (hierarchical)  sum of memory.oom_control oom_kill
 *                                                          over the group's subtree
 *   OOM fd         inotify on memory.events                eventfd via cgroup.event_control
 *   memory         memory.current / memory.peak            memory.usage_in_bytes /
 *                                                          memory.max_usage_in_bytes
 *   cpu            cpu.stat usage_usec, nr_throttled,      cpuacct.usage / 1000, cpu.stat
 *                  throttled_usec                          nr_throttled, throttled_time / 1000
 *   pids           pids.current                            pids.current
 *   kill all       cgroup.kill                             SIGKILL loop over cgroup.procs of
 *                                                          the subtree, waiting on pidfds
 *
 * v2 delegation.  Controllers must be enabled in cgroup.subtree_control of
 * <own> and of every group that has children, and a cgroup with enabled
 * controllers may not hold processes ("no internal processes").  The driver
 * enables cpu, memory and pids in <own> and <own>/<name> when it opens.  If
 * <own> is not the root cgroup and still holds processes (a systemd service
 * with Delegate=yes starts that way), the kernel refuses with EBUSY; the
 * driver then moves every process of <own> into the leaf <own>/<name>/agent
 * (systemd.io/CGROUP_DELEGATION: the supervisor moves itself into a leaf)
 * and retries.  That move is one-way for the life of the process; a
 * process already in that leaf (or its children, e.g. a shim the daemon
 * starts) opens the same tree again rather than one nested in the leaf.  Below
 * <name>, processes only go into leaves: a task group gets controllers
 * enabled for its children when its first child is created, so a group that
 * will have container children must not be given processes itself.  The
 * name "agent" is therefore reserved at the top level.
 *
 * Threading: a driver and its groups are used from one thread at a time. */
#ifndef BERTH_CGROUP_H
#define BERTH_CGROUP_H

#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

#define CG_TASK_PIDS_DEFAULT 4096
#define CG_CPU_PERIOD_USEC 100000

/* ECS container reason for a container whose cgroup saw an OOM kill. */
#define CG_OOM_REASON "OutOfMemoryError: Container killed due to memory usage"

enum cg_version {
	CG_VERSION_AUTO = 0, /* cg_driver_open: v2 when usable, else v1 */
	CG_VERSION_1 = 1,
	CG_VERSION_2 = 2,
};

/* Every field 0 means "no limit at this level" (the parent's still apply). */
struct cg_limits {
	uint32_t cpu_quota;   /* ECS cpu units: a hard cap of units/1024 CPUs */
	uint32_t cpu_shares;  /* ECS cpu units as a relative weight among siblings */
	uint64_t memory_max;  /* bytes; hard limit, swap disabled */
	uint64_t memory_low;  /* bytes; protected / soft-limit reservation */
	uint64_t pids_max;    /* max tasks (threads included) */
};

struct cg_stats {
	uint64_t memory_current;  /* bytes charged now */
	uint64_t memory_peak;     /* bytes, high-water mark; 0 if the kernel has none */
	uint64_t cpu_usage_usec;  /* user + system CPU time of the subtree */
	uint64_t nr_throttled;    /* periods in which the cpu quota was exhausted */
	uint64_t throttled_usec;
	uint64_t pids_current;
};

struct cg_driver;
struct cg_group;

/* Detects the backend (or forces one with want), finds this process's own
 * cgroups and creates <own>/<name> in each hierarchy (existing is fine).
 * name is one path component.  *ret is owned by the caller (cg_driver_free). */
int cg_driver_open(const char *name, enum cg_version want, struct cg_driver **ret,
		   struct berth_err *err);

enum cg_version cg_driver_version(const struct cg_driver *d);

/* Frees the handle only: groups and the tree stay (a shim keeps running its
 * task while another process holds a new driver).  Accepts NULL. */
void cg_driver_free(struct cg_driver *d);

/* Kills every process under <own>/<name> (except in the v2 "agent" leaf),
 * removes all groups and then <own>/<name>.  -EBUSY if the agent leaf still
 * holds processes, e.g. the caller itself after a delegation move. */
int cg_driver_remove(struct cg_driver *d, struct berth_err *err);

/* Creates the group at rel ("task-<id>" or "task-<id>/<container>"; the
 * parent must exist; components are [A-Za-z0-9._-]) with limits applied.
 * -EEXIST if it already exists.  *ret is freed by cg_group_destroy() or
 * cg_group_free().  On failure nothing is left behind. */
int cg_group_create(struct cg_driver *d, const char *rel, const struct cg_limits *limits,
		    struct cg_group **ret, struct berth_err *err);

/* Opens an existing group (e.g. to clean up after a crashed shim). */
int cg_group_open(struct cg_driver *d, const char *rel, struct cg_group **ret,
		  struct berth_err *err);

/* Kills every process left in the group at rel and removes its subtree, in
 * whichever hierarchies hold it: the leftovers of a shim that died, whole
 * or half-made.  A group that exists nowhere is fine (0), so a repeated
 * call is harmless. */
int cg_group_remove(struct cg_driver *d, const char *rel, struct berth_err *err);

/* Moves process pid (all its threads) into the group. */
int cg_group_attach(struct cg_group *g, pid_t pid, struct berth_err *err);

/* v2: the group's directory fd (owned by the group) for clone3()
 * CLONE_INTO_CGROUP, which starts a child inside the group with no window in
 * the parent's cgroup.  v1: -EOPNOTSUPP (attach the child instead). */
int cg_group_dirfd(const struct cg_group *g);

/* v1: opens each hierarchy's `tasks` file of the group (O_WRONLY,
 * O_CLOEXEC) into fds[0..*ret_n), for a new process to join by writing
 * "0" to each itself.  A thread moving itself skips the kernel's global
 * threadgroup lock, whose RCU wait makes writing a pid to cgroup.procs
 * cost 10-30 ms.  The caller closes the fds.  v2: -EOPNOTSUPP (use
 * cg_group_dirfd() with CLONE_INTO_CGROUP). */
int cg_group_open_self_join(const struct cg_group *g, int *fds, size_t max, size_t *ret_n,
			    struct berth_err *err);

/* Absolute directory of the group in hierarchy i (0-based); NULL past the
 * last.  v2 has one; v1 one per mounted hierarchy.  For logs and tests. */
const char *cg_group_path(const struct cg_group *g, unsigned i);

/* Returns in *ret_fd an fd (owned by the group, O_NONBLOCK, valid until the
 * group is freed) that polls readable (POLLIN) when the group's OOM state may
 * have changed.  The first call arms it.  The fd is a wake-up only: call
 * cg_group_oom_kills(), which also drains it, and compare with the last count.
 * v1 caveat: the kernel signals the cgroup that hit its limit and that
 * cgroup's descendants, so watch container groups, not only the task group;
 * v1 also signals the fd when the cgroup is removed. */
int cg_group_oom_fd(struct cg_group *g, int *ret_fd, struct berth_err *err);

/* Number of processes the OOM killer killed in the group's subtree so far.
 * Exit code 137 alone is not proof of an OOM kill; this counter is. */
int cg_group_oom_kills(struct cg_group *g, uint64_t *ret, struct berth_err *err);

int cg_group_stats(struct cg_group *g, struct cg_stats *ret, struct berth_err *err);

/* SIGKILLs every process in the subtree and returns once they have exited
 * (zombies waiting for their parent count as exited). */
int cg_group_kill_all(struct cg_group *g, struct berth_err *err);

/* Kills everything left, removes the group's subtree and frees g, also on
 * failure (the error says what stayed behind).  Accepts NULL. */
int cg_group_destroy(struct cg_group *g, struct berth_err *err);

/* Frees the handle only; the cgroup stays.  Accepts NULL. */
void cg_group_free(struct cg_group *g);

#endif
