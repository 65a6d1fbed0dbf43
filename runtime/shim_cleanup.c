/* berth-shim: removing what a task left on the host when its shim died
 * without tearing it down (runtime/shim.h shim_cleanup(), docs/runtime.md
 * "After a shim died").  Everything is found from the plan alone, by the
 * names set-up gives things (shim_task.c, shim_ctl.c). */
#include "runtime/shim_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "common/fsutil.h"

DEFINE_CLEANUP_FUNC(struct cg_driver, cg_driver_free)

/* A live shim owns its task: nothing of it may be pulled away. */
static int refuse_if_served(const struct plan *p, struct berth_err *err)
{
	struct sockaddr_un sa;
	enum ctl_sock st;
	int r = shim_ctl_sock_addr(p, &sa, err);
	if (r >= 0)
		r = shim_ctl_sock_probe(&sa, &st, err);
	if (r < 0)
		return r;
	if (st == CTL_SOCK_SERVED)
		return berth_errf(err, EBUSY, "a shim still answers on %s", sa.sun_path);
	return 0;
}

/* The task group's whole subtree: its processes are killed (and waited
 * for) before anything else goes, so none of them still uses the network
 * or an upper dir. */
static int remove_cgroups(const struct plan *p, struct berth_err *err)
{
	_cleanup_(cg_driver_freep) struct cg_driver *d = NULL;
	char rel[PLAN_TASK_ID_MAX + 8];
	snprintf(rel, sizeof(rel), "task-%s", p->task_id);
	int r = cg_driver_open(p->cgroup_name, CG_VERSION_AUTO, &d, err);
	if (r >= 0)
		r = cg_group_remove(d, rel, err);
	return r;
}

/* The veth, the netns bind mount and the address IPAM holds for the task
 * (looked up: the shim that knew it is gone). */
static int remove_net(const struct plan *p, struct berth_err *err)
{
	struct net_config cfg;
	shim_task_net_config(p, &cfg);
	_cleanup_(net_closep) struct net *net = NULL;
	struct in_addr any = { .s_addr = htonl(INADDR_ANY) };
	int r = shim_policy_run(p, "remove", any, err);
	if (r >= 0)
		r = net_open(&cfg, &net, err);
	if (r >= 0)
		r = net_task_teardown(net, p->task_id, any, err);
	return r;
}

/* The per-container upper and work dirs (the task volumes follow). */
static int remove_containers(const struct plan *p, struct berth_err *err)
{
	_cleanup_free_ char *dir = NULL;
	if (asprintf(&dir, "%s/containers", p->task_dir) < 0) {
		dir = NULL;
		return berth_errf(err, ENOMEM, "out of memory");
	}
	return berth_rm_rf_at(AT_FDCWD, dir, err);
}

static int remove_socket(const struct plan *p, struct berth_err *err)
{
	struct sockaddr_un sa;
	int r = shim_ctl_sock_addr(p, &sa, err);
	if (r >= 0 && unlink(sa.sun_path) < 0 && errno != ENOENT)
		r = berth_errnof(err, errno, "remove %s", sa.sun_path);
	return r;
}

/* Processes first, the socket last.  names_task: the step's errors
 * already say "task <id>: …". */
static const struct {
	int (*fn)(const struct plan *p, struct berth_err *err);
	bool names_task;
} cleanup_steps[] = {
	{ remove_cgroups, false },
	{ remove_net, true },
	{ remove_containers, false },
	{ shim_volumes_remove, false },
	{ remove_socket, false },
};

int shim_cleanup(const struct plan *p, struct berth_err *err)
{
	int r = refuse_if_served(p, err);
	if (r < 0)
		return berth_err_wrap(err, "task %s: cleanup", p->task_id);
	bool named = false;
	for (size_t i = 0; i < ARRAY_SIZE(cleanup_steps); i++) {
		/* Past a failure every step still runs; the first error is kept. */
		struct berth_err later = { 0 };
		int sr = cleanup_steps[i].fn(p, r < 0 ? &later : err);
		if (r >= 0 && sr < 0) {
			r = sr;
			named = cleanup_steps[i].names_task;
		}
	}
	if (r < 0 && !named)
		return berth_err_wrap(err, "task %s: cleanup", p->task_id);
	return r;
}
