/* The task agent: one struct shim runs one task plan (docs/runtime.md).
 *
 *   shim_new()    takes the validated plan; touches nothing
 *   shim_setup()  control socket, task cgroups, network, per-container
 *                 dirs and log files; on failure everything it did is undone
 *   shim_run()    the event loop: starts containers as their dependsOn
 *                 conditions allow, watches exits, OOM kills, logs, clients
 *                 and signals, stops the task, tears it down, writes
 *                 <taskDir>/exit.json and returns once the last client is told
 *   shim_cleanup()  after a shim died (kill -9): removes what it left
 *
 * One epoll loop, no threads of its own and no process-global state
 * besides the signal mask (SIGTERM, SIGINT, SIGCHLD and SIGPIPE are blocked
 * by shim_setup(); the first two arrive through a signalfd).  The library
 * never prints: problems that do not stop the task (a log write failing, a
 * client misbehaving) go to the diag callback. */
#ifndef BERTH_RT_SHIM_H
#define BERTH_RT_SHIM_H

#include "common/cleanup.h"
#include "common/err.h"
#include "runtime/plan.h"

struct shim;

typedef void (*shim_diag_fn)(void *data, const char *msg);

/* Takes ownership of plan (also on failure).  diag may be NULL. */
int shim_new(struct plan *plan, shim_diag_fn diag, void *diag_data, struct shim **ret,
	     struct berth_err *err);

/* Refuses (-EADDRINUSE) when another shim answers on the task's socket. */
int shim_setup(struct shim *s, struct berth_err *err);

/* Returns 0 once the task has stopped and its exit record is written. */
int shim_run(struct shim *s, struct berth_err *err);

/* Frees memory and closes fds; whatever shim_run() did not tear down (after
 * a failure) stays.  Accepts NULL. */
void shim_free(struct shim *s);
DEFINE_CLEANUP_FUNC(struct shim, shim_free)

/* Removes what the task of PLAN left on the host when its shim died
 * without tearing it down (kill -9): kills every process left in the task
 * cgroup and removes the cgroups, tears down the task network (veth, netns
 * file, IPAM address), deletes <taskDir>/containers and the control
 * socket.  Logs and the exit record are left alone.  Idempotent: safe when
 * nothing (or only part) is left; the first error is returned after every
 * step was tried.  Refuses (-EBUSY) while a shim still answers on the
 * task's socket.  The caller must not start a shim for the task while this
 * runs, and must run in the cgroup the shim was started from (the tree is
 * found under the caller's own cgroup, as the shim found it).  Reaping
 * the killed processes is up to whoever they were reparented to. */
int shim_cleanup(const struct plan *p, struct berth_err *err);

#endif
