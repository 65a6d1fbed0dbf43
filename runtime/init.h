/* initProcessEnabled: the container's pid 1 as a minimal init, like tini or
 * catatonit but without exec'ing a separate binary (docs/runtime.md).
 *
 * After the container's set-up is complete (rootfs, user, capabilities,
 * no_new_privs and seccomp all applied, so both processes carry them),
 * rt_init_fork() forks: the child returns and goes on to exec the
 * container's command; pid 1 never returns.  Pid 1 blocks every signal but
 * the synchronous faults, forwards SIGTERM, SIGINT, SIGHUP, SIGUSR1,
 * SIGUSR2, SIGQUIT and SIGWINCH to the child, reaps every process that
 * ends up its child (orphans of the whole pid namespace), and exits with
 * the child's status, 128 + signal if it was killed.  Everything else that
 * is left in the namespace dies with pid 1 (the kernel kills it).
 *
 * Pid 1 never execs, so it stays non-dumpable with the shim's memory
 * image: nothing in the container can ptrace it or read its /proc files.
 * It closes the start-error socket at once, so the child's successful
 * execve is still the parent's EOF, and the child's exec failure still
 * reaches the parent over the same socket. */
#ifndef BERTH_RT_INIT_H
#define BERTH_RT_INIT_H

#include <stdbool.h>

#include "common/err.h"

/* Child side (raw syscalls, runtime/child.h).  sock: the start-error
 * socket, which pid 1 closes.  drop_caps: clear the capability sets first
 * (a non-root user's execve would, and pid 1 never execs).  Returns 0
 * in the child, or an error before anything was forked. */
int rt_init_fork(int sock, bool drop_caps, struct berth_err *err);

#endif
