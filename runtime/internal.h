/* Helpers shared by the runtime/ sources; not part of the public API.
 *
 * Between clone3() and execve() the container's first process is a copy of
 * a possibly multi-threaded parent, made by a raw syscall: glibc's fork
 * handlers did not run, so a lock held by another parent thread (malloc,
 * stdio, gettext, the setxid broadcast) stays held forever in the child.
 * Code on that path ("child side" in the headers) therefore uses syscalls,
 * stack buffers and the rt_cerr*() functions below only: no malloc, no
 * stdio, no strerror (which may translate through gettext). */
#ifndef BERTH_RT_INTERNAL_H
#define BERTH_RT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"

struct rt_ulimit;

/* berth_errf() for the child side. */
int rt_cerrf(struct berth_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* berth_errnof() for the child side: appends ": <strerrordesc_np(code)>". */
int rt_cerrnof(struct berth_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- child side (container.c) ------------------------------------------- */

/* Empty signal mask, default dispositions: a caller's blocked signals and
 * ignored dispositions would survive execve. */
void rt_child_reset_signals(void);

/* Writes "0" to each fd (a cgroup v1 `tasks` file): the calling
 * thread moves itself, without the kernel's global threadgroup lock. */
int rt_child_self_join(const int *fds, size_t n, struct berth_err *err);

/* Blocks until the parent sends its go-ahead byte on sock. */
int rt_child_wait_go(int sock, struct berth_err *err);

/* dup2s stdio[i] (>= 0) onto fd i, sources that are 0-2 included. */
int rt_child_stdio(const int stdio[3], struct berth_err *err);

int rt_child_rlimits(const struct rt_ulimit *ul, size_t n, struct berth_err *err);

/* Moves *sock to fd 3 (CLOEXEC) and closes every fd from 4 up. */
int rt_child_close_fds(int *sock, struct berth_err *err);

/* Closes every fd from 3 up except the n in keep (at most
 * RT_KEEP_FDS_MAX): what a process must not carry into a container. */
#define RT_KEEP_FDS_MAX 8
int rt_child_close_all_but(const int *keep, size_t n, struct berth_err *err);

/* chdir, refusing a directory outside our root. */
int rt_child_cwd(const char *cwd, struct berth_err *err);

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

/* execve argv[0], searched in path when it has no '/'; returns only on
 * failure, with Docker's wording ("exec: \"x\": executable file not found
 * in $PATH"). */
int rt_child_exec(char *const *argv, char *const *env, const char *path, struct berth_err *err);

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
