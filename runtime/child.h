/* The child side of a launch: what runs between clone3() and execve().
 *
 * Owns the child-side error helpers (rt_cerr*) and the steps every
 * launched process takes on its own (signals, cgroup self-join, stdio,
 * ulimits, fds, working directory, exec).  It sits at the bottom of the
 * runtime's launcher: container.c and exec.c compose these steps, and
 * mounts.c, security.c and init.c report their child-side errors through
 * rt_cerr*; child.c itself calls no other runtime/ file, so the launcher's
 * files call each other downwards only (container.c → mounts.c,
 * security.c, init.c → child.c), never in a loop.
 *
 * Between clone3() and execve() the process is a copy of a possibly
 * multi-threaded parent, made by a raw syscall: glibc's fork handlers did
 * not run, so a lock held by another parent thread (malloc, stdio,
 * gettext, the setxid broadcast) stays held forever in the child.  Code on
 * that path ("child side" in the headers) therefore uses syscalls, stack
 * buffers and the functions below only: no malloc, no stdio, no strerror
 * (which may translate through gettext).  Not a public API. */
#ifndef BERTH_RT_CHILD_H
#define BERTH_RT_CHILD_H

#include <stddef.h>

#include "common/err.h"

struct rt_ulimit;

/* berth_errf() for the child side. */
int rt_cerrf(struct berth_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* berth_errnof() for the child side: appends ": <strerrordesc_np(code)>". */
int rt_cerrnof(struct berth_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

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

/* execve argv[0], searched in path when it has no '/'; returns only on
 * failure, with Docker's wording ("exec: \"x\": executable file not found
 * in $PATH"). */
int rt_child_exec(char *const *argv, char *const *env, const char *path, struct berth_err *err);

#endif
