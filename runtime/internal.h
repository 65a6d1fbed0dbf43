/* What container.c lends exec.c, the other launcher; not part of the
 * public API.  The child-side steps themselves and their error helpers
 * are runtime/child.h's, with its rules for code that runs between
 * clone3() and execve(). */
#ifndef BERTH_RT_INTERNAL_H
#define BERTH_RT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"
#include "runtime/child.h"

/* ---- child side (container.c) ------------------------------------------- */

/* What a container's process and a process exec'd into it become, in
 * order: stdio, ulimits, no inherited fds, the user, the working
 * directory (checked with the user's rights), capabilities, umask 022,
 * no_new_privs and seccomp. */
struct rt_child_profile {
	const int *stdio;                /* [3] */
	const struct rt_ulimit *ulimits;
	size_t n_ulimits;
	const struct rt_security *sec;
	uid_t uid;
	gid_t gid;
	const gid_t *groups;
	size_t n_groups;
	const char *cwd;                 /* NULL: "/" */
};
int rt_child_lock_down(const struct rt_child_profile *p, int *sock, struct berth_err *err);

/* ---- parent side (container.c) ------------------------------------------ */

/* PATH= from env, or RT_DEFAULT_PATH. */
const char *rt_env_path(const char *const *env);

bool rt_is_cgroup2(int fd);

/* Writes pid to cgfd's cgroup.procs. */
int rt_cgroup_procs_write(int cgfd, pid_t pid, struct berth_err *err);

/* Reads the child's verdict from sock: 0 on EOF (its execve closed the
 * CLOEXEC socket), else the struct berth_err it sent. */
int rt_child_result(int sock, struct berth_err *err);

/* SIGKILLs and reaps the process behind pidfd. */
void rt_kill_reap(int pidfd);

#endif
