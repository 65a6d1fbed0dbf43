/* cgroup v1 backend (kernel Documentation/admin-guide/cgroup-v1/): cpu,
 * cpuacct, memory, pids and devices, each a hierarchy of its own or
 * co-mounted.
 * A group is one directory per hierarchy; g->fd[i] follows d->hier[i]. */
#include "cgroups/cgroup_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/cleanup.h"

/* The group's fd and path in the hierarchy serving ctl (probe guarantees
 * one exists for each of the five). */
#define V1_AT(g, ctl) (g)->fd[cg_hier_of((g)->drv, (ctl))], (g)->path[cg_hier_of((g)->drv, (ctl))]

static int v1_set_cpu(struct cg_group *g, const struct cg_limits *l, struct berth_err *err)
{
	int r = 0;
	if (l->cpu_quota) {
		r = cg_write_u64_at(V1_AT(g, CG_CTL_CPU), "cpu.cfs_period_us", CG_CPU_PERIOD_USEC, err);
		if (r == 0)
			r = cg_write_u64_at(V1_AT(g, CG_CTL_CPU), "cpu.cfs_quota_us",
					    cg_cpu_quota_usec(l->cpu_quota), err);
	}
	if (r == 0 && l->cpu_shares)
		r = cg_write_u64_at(V1_AT(g, CG_CTL_CPU), "cpu.shares", cg_cpu_shares(l->cpu_shares), err);
	return r;
}

static int v1_set_limits(struct cg_group *g, const struct cg_limits *l, struct berth_err *err)
{
	int r = v1_set_cpu(g, l, err);
	int mfd = g->fd[cg_hier_of(g->drv, CG_CTL_MEMORY)];
	if (r == 0 && l->memory_max) {
		/* memsw (memory + swap) may never be below the memory limit, so the
		 * memory limit goes first; equal values leave no room for swap.
		 * memsw exists only with swap accounting. */
		r = cg_write_u64_at(V1_AT(g, CG_CTL_MEMORY), "memory.limit_in_bytes", l->memory_max, err);
		if (r == 0 && faccessat(mfd, "memory.memsw.limit_in_bytes", F_OK, 0) == 0)
			r = cg_write_u64_at(V1_AT(g, CG_CTL_MEMORY), "memory.memsw.limit_in_bytes",
					    l->memory_max, err);
		/* Without swap accounting, swappiness 0 keeps limit reclaim
		 * from swapping the group's anonymous memory out. */
		else if (r == 0 && faccessat(mfd, "memory.swappiness", F_OK, 0) == 0)
			r = cg_write_at(V1_AT(g, CG_CTL_MEMORY), "memory.swappiness", "0", err);
	}
	if (r == 0 && l->memory_low)
		r = cg_write_u64_at(V1_AT(g, CG_CTL_MEMORY), "memory.soft_limit_in_bytes",
				    l->memory_low, err);
	if (r == 0 && l->pids_max)
		r = cg_write_u64_at(V1_AT(g, CG_CTL_PIDS), "pids.max", l->pids_max, err);
	if (r == 0 && l->device_allowlist)
		r = cg_devices_v1_apply(V1_AT(g, CG_CTL_DEVICES), err);
	return r;
}

static int v1_attach(struct cg_group *g, pid_t pid, struct berth_err *err)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%d", (int)pid);
	for (unsigned i = 0; i < g->drv->nhier; i++) {
		int r = cg_write_at(g->fd[i], g->path[i], "cgroup.procs", buf, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* memory.oom_control notification: an eventfd registered through
 * cgroup.event_control as "<eventfd> <fd of memory.oom_control>".  The
 * kernel keeps its own reference, so the oom_control fd is closed here. */
static int v1_oom_arm(struct cg_group *g, struct berth_err *err)
{
	int mh = cg_hier_of(g->drv, CG_CTL_MEMORY);
	_cleanup_close_ int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0)
		return berth_errnof(err, errno, "cgroup %s: eventfd", g->path[mh]);
	_cleanup_close_ int ofd = openat(g->fd[mh], "memory.oom_control", O_RDONLY | O_CLOEXEC);
	if (ofd < 0)
		return berth_errnof(err, errno, "cgroup %s: open memory.oom_control", g->path[mh]);
	char buf[32];
	snprintf(buf, sizeof(buf), "%d %d", efd, ofd);
	int r = cg_write_at(g->fd[mh], g->path[mh], "cgroup.event_control", buf, err);
	if (r < 0)
		return r;
	g->oom_fd = TAKE_FD(efd);
	return 0;
}

static int add_oom_kills(int dirfd, const char *dir, void *arg, struct berth_err *err)
{
	uint64_t n, *sum = arg;
	int r = cg_read_key_at(dirfd, dir, "memory.oom_control", "oom_kill", &n, err);
	if (r == -ENOENT)
		return berth_errf(err, EOPNOTSUPP, "cgroup %s: memory.oom_control has no oom_kill "
				  "counter (Linux < 4.13); OOM kills cannot be told apart", dir);
	if (r == 0)
		*sum += n;
	return r;
}

/* v1 counts a kill only in the victim's own memcg: sum the subtree so a
 * task group reports its containers' kills too, as v2 does. */
static int v1_oom_kills(struct cg_group *g, uint64_t *ret, struct berth_err *err)
{
	uint64_t sum = 0;
	int r = cg_walk(V1_AT(g, CG_CTL_MEMORY), add_oom_kills, &sum, err);
	if (r < 0)
		return r;
	*ret = sum;
	return 0;
}

static int v1_stats(struct cg_group *g, struct cg_stats *st, struct berth_err *err)
{
	uint64_t ns = 0, throttled_ns = 0;
	int r = cg_read_u64_at(V1_AT(g, CG_CTL_MEMORY), "memory.usage_in_bytes", &st->memory_current, err);
	if (r == 0)
		r = cg_read_u64_at(V1_AT(g, CG_CTL_MEMORY), "memory.max_usage_in_bytes",
				   &st->memory_peak, err);
	if (r == 0)
		r = cg_read_u64_at(V1_AT(g, CG_CTL_CPUACCT), "cpuacct.usage", &ns, err);
	if (r == 0)
		r = cg_read_key_at(V1_AT(g, CG_CTL_CPU), "cpu.stat", "nr_throttled", &st->nr_throttled, err);
	if (r == 0)
		r = cg_read_key_at(V1_AT(g, CG_CTL_CPU), "cpu.stat", "throttled_time", &throttled_ns, err);
	if (r == 0)
		r = cg_read_u64_at(V1_AT(g, CG_CTL_PIDS), "pids.current", &st->pids_current, err);
	st->cpu_usage_usec = ns / 1000;
	st->throttled_usec = throttled_ns / 1000;
	return r;
}

/* v1 has no cgroup.kill: every hierarchy gets the SIGKILL loop (a process
 * could have been moved in one hierarchy only). */
static int v1_kill_all(struct cg_group *g, struct berth_err *err)
{
	for (unsigned i = 0; i < g->drv->nhier; i++) {
		if (g->fd[i] < 0)
			continue;
		int r = cg_kill_tree(g->fd[i], g->path[i], err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Before Linux 5.16 a v1 memcg with memory.use_hierarchy 0 does not charge
 * its children: a task's memory limit would not cover its containers.  The
 * flag can still be turned on in Berth's fresh root (no children yet). */
static int v1_driver_init(struct cg_driver *d, struct berth_err *err)
{
	struct cg_hier *h = &d->hier[cg_hier_of(d, CG_CTL_MEMORY)];
	if (faccessat(h->fd, "memory.use_hierarchy", F_OK, 0) < 0)
		return 0;
	uint64_t on = 0;
	int r = cg_read_u64_at(h->fd, h->root, "memory.use_hierarchy", &on, err);
	if (r < 0 || on)
		return r;
	r = cg_write_at(h->fd, h->root, "memory.use_hierarchy", "1", err);
	if (r < 0)
		return berth_err_wrap(err, "hierarchical memory accounting is off, so task memory "
				      "limits would not cover containers");
	return 0;
}

const struct cg_ops cg_v1_ops = {
	.driver_init = v1_driver_init,
	.set_limits = v1_set_limits,
	.attach = v1_attach,
	.oom_arm = v1_oom_arm,
	.oom_kills = v1_oom_kills,
	.stats = v1_stats,
	.kill_all = v1_kill_all,
};
