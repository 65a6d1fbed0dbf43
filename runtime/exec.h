/* Running a further process inside a running container: health-check
 * probes and `berth exec` (docs/runtime.md, "Health checks" and "Exec").
 *
 * rt_exec_in() joins the target's mount, pid, uts, ipc, net and cgroup
 * namespaces with one setns() on the container's pidfd (Linux >= 5.8),
 * joins the container's cgroup, and applies the same user, groups,
 * ulimits, capabilities, no_new_privs and seccomp profile as rt_start()
 * computes for the container (runtime/security.h), so a probe can do
 * nothing the container itself could not.
 *
 * setns(CLONE_NEWPID) only places a process's future children in the
 * namespace, so it takes two steps: a helper child joins the container's
 * cgroup (cgroup2: it is cloned into it; v1: it writes itself to the
 * self_join_fds), sets up stdio, closes every other fd but the socket and
 * target_pidfd, joins the namespaces and clone3()s the real process with
 * CLONE_PARENT (our child, so rt_wait() reaps it) and CLONE_PIDFD, hands
 * the pidfd back over the socketpair and exits.  The real process is
 * visible in the container from its first instruction, where a process
 * with SYS_PTRACE could take its fds (pidfd_getfd): it never holds one of
 * the caller's directories.  The process then waits for the go-ahead (cgroup
 * v1 attach and the caller's hook run in between, as for rt_start()),
 * sets itself up with raw syscalls only and execs; a failure comes back as
 * a struct berth_err, e.g.
 *   exec in container: exec: "x": executable file not found in $PATH
 * It stays non-dumpable until execve: the container's own processes can
 * see it in their pid namespace and must not ptrace it or open its
 * /proc files while it still holds the shim's fds. */
#ifndef BERTH_RT_EXEC_H
#define BERTH_RT_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"
#include "runtime/container.h"

struct rt_exec_spec {
	int target_pidfd;             /* a pidfd of the container's pid 1 (rt_proc.pidfd) */
	const char *const *argv;      /* NULL-terminated; argv[0] searched in env's PATH */
	const char *const *env;       /* NULL-terminated "K=V"; NULL: empty (PATH default) */
	const char *cwd;              /* absolute, inside the container; NULL: "/" */
	/* As the container's rt_spec: */
	uid_t uid;
	gid_t gid;
	const gid_t *groups;
	size_t n_groups;
	const struct rt_ulimit *ulimits;
	size_t n_ulimits;
	const char *const *cap_add;
	size_t n_cap_add;
	const char *const *cap_drop;
	size_t n_cap_drop;
	/* The container's cgroup directory fd, or -1 (stay in ours).  cgroup2:
	 * the helper is created in it (CLONE_INTO_CGROUP), and the process
	 * with it; otherwise the process's pid is written to its cgroup.procs
	 * before the process goes on.  before_start runs in
	 * the same window, e.g. for the other v1 hierarchies. */
	int cgroup_fd;
	rt_before_start_fn before_start;  /* optional; pid and pidfd of the new process */
	void *before_start_data;
	const int *self_join_fds;     /* as in struct rt_spec */
	size_t n_self_join_fds;
	int stdio[3];                 /* dup2'd to 0, 1, 2; -1: inherit ours */
	/* stdio[0] is a terminal (a pty slave) to become the process's
	 * controlling terminal: it starts a session of its own (setsid) and
	 * takes the terminal with TIOCSCTTY, so the line discipline's ^C
	 * reaches it as SIGINT (`berth exec -t`). */
	bool ctty;
	int seccomp_cache_dirfd;      /* see rt_security_prepare(); -1: none */
};

/* Zeroes *spec and sets every fd to -1. */
void rt_exec_spec_init(struct rt_exec_spec *spec);

/* How long rt_exec_in() waits for the new process to exec: it runs in
 * the container, whose processes can stop it (ETIMEDOUT then, and it is
 * killed). */
#define RT_EXEC_START_MS 10000

/* Starts spec->argv in the container; on success it has exec'd and *ret
 * holds its pid (in our pid namespace) and pidfd: rt_wait / rt_kill /
 * rt_proc_release as for a container.  On failure nothing is left
 * running and the error reads "exec in container: …". */
int rt_exec_in(const struct rt_exec_spec *spec, struct rt_proc *ret, struct berth_err *err);

#endif
