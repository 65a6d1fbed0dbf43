/* Shared between cgroup.c and the two backends; not part of the public API.
 * The backend vtable follows crun's libcrun_cgroup_manager: common code
 * validates, allocates and owns the object lifecycle, a backend only knows
 * its files. */
#ifndef BERTH_CGROUP_INTERNAL_H
#define BERTH_CGROUP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cgroups/cgroup.h"

/* v1 needs cpu, cpuacct, memory, pids, devices: at most five separate
 * hierarchies. */
#define CG_MAX_HIER 5

/* Controller bits, in the order of cg_ctl_names[]. */
enum {
	CG_CTL_CPU = 1u << 0,
	CG_CTL_CPUACCT = 1u << 1,
	CG_CTL_MEMORY = 1u << 2,
	CG_CTL_PIDS = 1u << 3,
	CG_CTL_DEVICES = 1u << 4,  /* v1 only; v2 attaches a BPF program */
};

/* Bounded waits: a kill or an emptying cgroup that takes longer than this
 * means a process stuck in the kernel, which the caller must hear about. */
#define CG_WAIT_MS 10000

/* One mounted hierarchy (v2: the unified one) with Berth's root in it. */
struct cg_hier {
	unsigned ctls;  /* CG_CTL_* served by this hierarchy */
	char *root;     /* absolute: <mount>/<own cgroup>/<name> */
	int fd;         /* O_DIRECTORY fd of root */
};

struct cg_ops;

struct cg_driver {
	const struct cg_ops *ops;
	enum cg_version version;
	unsigned nhier;
	struct cg_hier hier[CG_MAX_HIER];
};

struct cg_group {
	struct cg_driver *drv;
	char *rel;                 /* relative to each hierarchy's root */
	char *path[CG_MAX_HIER];   /* absolute, per hierarchy */
	int fd[CG_MAX_HIER];       /* O_DIRECTORY, per hierarchy */
	int oom_fd;                /* -1 until cg_group_oom_fd() */
};

struct cg_ops {
	/* Optional.  Sets up the hierarchies once d->hier[*] are filled and
	 * open (v2: enables controllers). */
	int (*driver_init)(struct cg_driver *d, struct berth_err *err);
	/* Optional.  Called before mkdir of a group whose parent is parent_fd
	 * (v2: enables controllers for the parent's children). */
	int (*prepare_parent)(struct cg_driver *d, int parent_fd, const char *parent_path,
			      struct berth_err *err);
	int (*set_limits)(struct cg_group *g, const struct cg_limits *l, struct berth_err *err);
	int (*attach)(struct cg_group *g, pid_t pid, struct berth_err *err);
	int (*oom_arm)(struct cg_group *g, struct berth_err *err);
	int (*oom_kills)(struct cg_group *g, uint64_t *ret, struct berth_err *err);
	int (*stats)(struct cg_group *g, struct cg_stats *ret, struct berth_err *err);
	/* Returns once every process of the subtree has exited. */
	int (*kill_all)(struct cg_group *g, struct berth_err *err);
	/* Name reserved at the top of the tree, or NULL. */
	const char *reserved;
};

extern const struct cg_ops cg_v1_ops;
extern const struct cg_ops cg_v2_ops;

/* Is s a list of tokens separated by sep that holds tok exactly? */
bool cg_has_token(const char *s, const char *tok, char sep);

/* ECS cpu units -> CFS quota per CG_CPU_PERIOD_USEC, at least the kernel's
 * 1 ms minimum. */
static inline uint64_t cg_cpu_quota_usec(uint32_t units)
{
	uint64_t q = (uint64_t)units * CG_CPU_PERIOD_USEC / 1024;
	return q < 1000 ? 1000 : q;
}

/* ECS cpu units -> v1 cpu.shares, clamped to the kernel's 2..262144. */
static inline uint64_t cg_cpu_shares(uint32_t units)
{
	return units < 2 ? 2 : units > 262144 ? 262144 : units;
}

/* cgroup_devices.c: deny every device but Berth's allow-list in the group
 * at fd (path names it in errors).  v1: only while it has no children. */
int cg_devices_v1_apply(int fd, const char *path, struct berth_err *err);
int cg_devices_v2_apply(int fd, const char *path, struct berth_err *err);

/* Index of the hierarchy serving controller ctl, or -1. */
int cg_hier_of(const struct cg_driver *d, unsigned ctl);

/* Reads a cgroup pseudo-file (st_size is 0, so read to EOF) into a
 * NUL-terminated heap buffer; max bounds it.  *ret is the caller's. */
int cg_read_at(int dirfd, const char *dir, const char *name, size_t max, char **ret,
	       struct berth_err *err);

/* Reads a file holding one unsigned number ("max" reads as UINT64_MAX). */
int cg_read_u64_at(int dirfd, const char *dir, const char *name, uint64_t *ret,
		   struct berth_err *err);

/* Reads "key value" lines (memory.events, cpu.stat, memory.oom_control) and
 * returns the value of key; -ENOENT if the key is absent. */
int cg_read_key_at(int dirfd, const char *dir, const char *name, const char *key,
		   uint64_t *ret, struct berth_err *err);

/* Writes value with one write(2), as control files require.  dir names the
 * cgroup in the error message. */
int cg_write_at(int dirfd, const char *dir, const char *name, const char *value,
		struct berth_err *err);

int cg_write_u64_at(int dirfd, const char *dir, const char *name, uint64_t value,
		    struct berth_err *err);

typedef int (*cg_walk_fn)(int dirfd, const char *dir, void *arg, struct berth_err *err);

/* Calls fn on dirfd (named dir) and then on every cgroup below it, parents
 * first; stops at the first error. */
int cg_walk(int dirfd, const char *dir, cg_walk_fn fn, void *arg, struct berth_err *err);

/* Removes the cgroup parentfd/name and everything below it, deepest first
 * (path names it in errors).  A missing cgroup is fine. */
int cg_rmdir_tree(int parentfd, const char *name, const char *path, struct berth_err *err);

/* SIGKILLs every process in the subtree at dirfd (re-reading cgroup.procs
 * until it stays empty, because processes fork while being killed) and waits
 * on pidfds for each to exit. */
int cg_kill_tree(int dirfd, const char *dir, struct berth_err *err);

/* Milliseconds left until deadline (CLOCK_MONOTONIC ms), at least 0. */
int cg_ms_left(int64_t deadline);

#endif
