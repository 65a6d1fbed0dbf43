/* cgroup v2 backend (kernel Documentation/admin-guide/cgroup-v2.rst).
 * One hierarchy: d->hier[0], g->fd[0], g->path[0]. */
#include "cgroups/cgroup_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/time.h"

#define V2_AGENT_LEAF "agent"
/* Rounds of moving processes out of <own>: it may fork meanwhile. */
#define V2_EVACUATE_ROUNDS 16

/* Enables cpu, memory and pids for the children of the cgroup at fd.
 * Writing is skipped when they already are: a no-op write would still
 * fail with EBUSY on a cgroup that holds processes. */
static int enable_ctls(int fd, const char *path, struct berth_err *err)
{
	_cleanup_free_ char *cur = NULL;
	int r = cg_read_at(fd, path, "cgroup.subtree_control", 4096, &cur, err);
	if (r < 0)
		return r;
	cur[strcspn(cur, "\n")] = '\0';
	if (cg_has_token(cur, "cpu", ' ') && cg_has_token(cur, "memory", ' ') &&
	    cg_has_token(cur, "pids", ' '))
		return 0;
	return cg_write_at(fd, path, "cgroup.subtree_control", "+cpu +memory +pids", err);
}

/* Moves every process of <own> into <own>/<name>/agent so that <own> may
 * enable controllers for its children (the "no internal processes" rule). */
static int evacuate(struct cg_driver *d, int ownfd, const char *own, struct berth_err *err)
{
	struct cg_hier *h = &d->hier[0];
	if (mkdirat(h->fd, V2_AGENT_LEAF, 0755) < 0 && errno != EEXIST)
		return berth_errnof(err, errno, "cgroup %s/" V2_AGENT_LEAF ": mkdir", h->root);
	_cleanup_close_ int agent = openat(h->fd, V2_AGENT_LEAF, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (agent < 0)
		return berth_errnof(err, errno, "cgroup %s/" V2_AGENT_LEAF ": open", h->root);
	_cleanup_free_ char *agent_path = NULL;
	if (asprintf(&agent_path, "%s/" V2_AGENT_LEAF, h->root) < 0)
		return berth_errf(err, ENOMEM, "cgroup %s: out of memory", h->root);
	for (int round = 0; round < V2_EVACUATE_ROUNDS; round++) {
		_cleanup_free_ char *procs = NULL;
		int r = cg_read_at(ownfd, own, "cgroup.procs", 1u << 20, &procs, err);
		if (r < 0)
			return r;
		if (!*procs)
			return 0;
		for (char *s = procs, *end; *s; s = end) {
			long pid = strtol(s, &end, 10);
			if (end == s)
				break;
			char buf[24];
			snprintf(buf, sizeof(buf), "%ld", pid);
			r = cg_write_at(agent, agent_path, "cgroup.procs", buf, err);
			if (r < 0 && r != -ESRCH)
				return berth_err_wrap(err, "move %s out of the way", own);
		}
	}
	return berth_errf(err, EBUSY, "cgroup %s: processes keep appearing while moving them to "
			  "%s/" V2_AGENT_LEAF, own, h->root);
}

static int v2_driver_init(struct cg_driver *d, struct berth_err *err)
{
	struct cg_hier *h = &d->hier[0];
	_cleanup_free_ char *own = strdup(h->root);
	if (!own)
		return berth_errf(err, ENOMEM, "cgroup %s: out of memory", h->root);
	*strrchr(own, '/') = '\0';
	_cleanup_close_ int ownfd = openat(h->fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ownfd < 0)
		return berth_errnof(err, errno, "cgroup %s: open", own);
	int r = enable_ctls(ownfd, own, err);
	if (r == -EBUSY) {
		r = evacuate(d, ownfd, own, err);
		if (r == 0)
			r = enable_ctls(ownfd, own, err);
	}
	if (r == 0)
		r = enable_ctls(h->fd, h->root, err);
	return r;
}

static int v2_prepare_parent(struct cg_driver *d, int parent_fd, const char *parent_path,
			     struct berth_err *err)
{
	(void)d;
	int r = enable_ctls(parent_fd, parent_path, err);
	if (r == -EBUSY)
		return berth_err_wrap(err, "a group with processes cannot have child groups");
	return r;
}

static int v2_set_limits(struct cg_group *g, const struct cg_limits *l, struct berth_err *err)
{
	int fd = g->fd[0], r = 0;
	const char *p = g->path[0];
	char buf[64];
	if (l->cpu_quota) {
		snprintf(buf, sizeof(buf), "%" PRIu64 " %u", cg_cpu_quota_usec(l->cpu_quota),
			 CG_CPU_PERIOD_USEC);
		r = cg_write_at(fd, p, "cpu.max", buf, err);
	}
	if (r == 0 && l->cpu_shares) /* runc's linear shares -> weight map */
		r = cg_write_u64_at(fd, p, "cpu.weight",
				    1 + (cg_cpu_shares(l->cpu_shares) - 2) * 9999 / 262142, err);
	if (r == 0 && l->memory_max) {
		r = cg_write_u64_at(fd, p, "memory.max", l->memory_max, err);
		/* Absent without swap accounting, where there is none to limit. */
		if (r == 0 && faccessat(fd, "memory.swap.max", F_OK, 0) == 0)
			r = cg_write_at(fd, p, "memory.swap.max", "0", err);
	}
	if (r == 0 && l->memory_low)
		r = cg_write_u64_at(fd, p, "memory.low", l->memory_low, err);
	if (r == 0 && l->pids_max)
		r = cg_write_u64_at(fd, p, "pids.max", l->pids_max, err);
	if (r == 0 && l->device_allowlist)
		r = cg_devices_v2_apply(fd, p, err);
	return r;
}

static int v2_attach(struct cg_group *g, pid_t pid, struct berth_err *err)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%d", (int)pid);
	int r = cg_write_at(g->fd[0], g->path[0], "cgroup.procs", buf, err);
	if (r == -EBUSY)
		return berth_err_wrap(err, "processes go into leaf groups only");
	return r;
}

static int v2_oom_arm(struct cg_group *g, struct berth_err *err)
{
	_cleanup_close_ int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (fd < 0)
		return berth_errnof(err, errno, "cgroup %s: inotify_init1", g->path[0]);
	_cleanup_free_ char *events = NULL;
	if (asprintf(&events, "%s/memory.events", g->path[0]) < 0)
		return berth_errf(err, ENOMEM, "cgroup %s: out of memory", g->path[0]);
	/* The kernel notifies memory.events (cgroup_file_notify) on each change. */
	if (inotify_add_watch(fd, events, IN_MODIFY) < 0)
		return berth_errnof(err, errno, "cgroup %s: watch memory.events", g->path[0]);
	g->oom_fd = TAKE_FD(fd);
	return 0;
}

static int v2_oom_kills(struct cg_group *g, uint64_t *ret, struct berth_err *err)
{
	/* Hierarchical unless the mount has memory_localevents. */
	return cg_read_key_at(g->fd[0], g->path[0], "memory.events", "oom_kill", ret, err);
}

static int v2_stats(struct cg_group *g, struct cg_stats *st, struct berth_err *err)
{
	int fd = g->fd[0];
	const char *p = g->path[0];
	int r = cg_read_u64_at(fd, p, "memory.current", &st->memory_current, err);
	/* memory.peak exists from Linux 5.19. */
	if (r == 0 && faccessat(fd, "memory.peak", F_OK, 0) == 0)
		r = cg_read_u64_at(fd, p, "memory.peak", &st->memory_peak, err);
	if (r == 0)
		r = cg_read_key_at(fd, p, "cpu.stat", "usage_usec", &st->cpu_usage_usec, err);
	if (r == 0)
		r = cg_read_key_at(fd, p, "cpu.stat", "nr_throttled", &st->nr_throttled, err);
	if (r == 0)
		r = cg_read_key_at(fd, p, "cpu.stat", "throttled_usec", &st->throttled_usec, err);
	if (r == 0)
		r = cg_read_u64_at(fd, p, "pids.current", &st->pids_current, err);
	return r;
}

/* Waits for "populated 0" in cgroup.events, which the kernel signals to
 * inotify; the watch is set before the first read so no change is missed. */
static int wait_unpopulated(struct cg_group *g, struct berth_err *err)
{
	_cleanup_close_ int ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (ifd < 0)
		return berth_errnof(err, errno, "cgroup %s: inotify_init1", g->path[0]);
	_cleanup_free_ char *events = NULL;
	if (asprintf(&events, "%s/cgroup.events", g->path[0]) < 0)
		return berth_errf(err, ENOMEM, "cgroup %s: out of memory", g->path[0]);
	if (inotify_add_watch(ifd, events, IN_MODIFY) < 0)
		return berth_errnof(err, errno, "cgroup %s: watch cgroup.events", g->path[0]);
	int64_t deadline = berth_mono_ms() + CG_WAIT_MS;
	for (;;) {
		uint64_t populated;
		int r = cg_read_key_at(g->fd[0], g->path[0], "cgroup.events", "populated",
				       &populated, err);
		if (r < 0 || populated == 0)
			return r;
		struct pollfd p = { .fd = ifd, .events = POLLIN };
		int k = poll(&p, 1, cg_ms_left(deadline));
		if (k < 0 && errno != EINTR)
			return berth_errnof(err, errno, "cgroup %s: wait for empty", g->path[0]);
		if (k == 0)
			return berth_errf(err, ETIMEDOUT, "cgroup %s: still populated after %d ms",
					  g->path[0], CG_WAIT_MS);
		char buf[4096];
		while (read(ifd, buf, sizeof(buf)) > 0)
			;
	}
}

static int v2_kill_all(struct cg_group *g, struct berth_err *err)
{
	if (g->fd[0] < 0)
		return 0;
	/* cgroup.kill (Linux 5.14) kills the subtree with no fork race. */
	int r = cg_write_at(g->fd[0], g->path[0], "cgroup.kill", "1", err);
	if (r == -ENOENT)
		r = cg_kill_tree(g->fd[0], g->path[0], err);
	if (r < 0)
		return r;
	return wait_unpopulated(g, err);
}

const struct cg_ops cg_v2_ops = {
	.driver_init = v2_driver_init,
	.prepare_parent = v2_prepare_parent,
	.set_limits = v2_set_limits,
	.attach = v2_attach,
	.oom_arm = v2_oom_arm,
	.oom_kills = v2_oom_kills,
	.stats = v2_stats,
	.kill_all = v2_kill_all,
	.reserved = V2_AGENT_LEAF,
};
