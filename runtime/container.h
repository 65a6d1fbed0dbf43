/* Launching one container: the part of berth-shim that turns a validated
 * launch spec into a running process (docs/runtime.md).
 *
 * rt_start() clone3()s a child with CLONE_PIDFD into new mount, pid, uts,
 * ipc and cgroup namespaces.  The child joins the task's network namespace,
 * builds its root filesystem (runtime/mounts.h), sets hostname, ulimits,
 * user and capabilities, no_new_privs and seccomp (runtime/security.h),
 * closes every inherited fd but 0-2, checks the working directory and
 * execs argv[0] searched in the container's PATH.  It stays non-dumpable
 * until execve, so nothing can ptrace it or open its /proc files while it
 * still holds host fds (CVE-2016-9962).
 *
 * The parent and child talk over a CLOEXEC socketpair: the child waits for
 * the parent's go-ahead (the parent joins the cgroup and runs the caller's
 * hook in between), and a start failure comes back as a struct berth_err
 * with the child exiting 127; a successful execve closes the socket, so
 * EOF means the container runs.  Errors read
 *   CannotStartContainerError: exec: "nope": executable file not found in $PATH
 * which is the ECS container reason as it is. */
#ifndef BERTH_RT_CONTAINER_H
#define BERTH_RT_CONTAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "runtime/mounts.h"

#define RT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct rt_ulimit {
	int resource;    /* RLIMIT_*, see rt_ulimit_resource() */
	uint64_t soft, hard;
};

/* Runs in the parent after the child exists and before it does anything
 * (it waits): e.g. attach it to several v1 cgroup hierarchies.  A failure
 * kills the child and fails rt_start() with this error. */
typedef int (*rt_before_start_fn)(pid_t pid, int pidfd, void *data, struct berth_err *err);

struct rt_spec {
	struct rt_rootfs rootfs;
	const char *hostname;         /* NULL: the uts namespace keeps ours */
	const char *netns_path;       /* netns file to setns() into; NULL: stay in ours */
	const char *const *argv;      /* NULL-terminated; argv[0] searched in env's PATH */
	const char *const *env;       /* NULL-terminated "K=V" (see rt_env_merge) */
	const char *cwd;              /* absolute; NULL: "/" */
	uid_t uid;
	gid_t gid;
	const gid_t *groups;          /* supplementary; none: just gid */
	size_t n_groups;
	const struct rt_ulimit *ulimits;
	size_t n_ulimits;
	const char *const *cap_add;   /* on top of Docker's defaults */
	size_t n_cap_add;
	const char *const *cap_drop;
	size_t n_cap_drop;
	const struct rt_bind *binds;  /* read-only host files, e.g. /etc/hosts */
	size_t n_binds;
	/* A cgroup directory fd, or -1.  cgroup2: the child is created in it
	 * (CLONE_INTO_CGROUP, no window in our cgroup); otherwise its pid is
	 * written to the directory's cgroup.procs before the child goes on.
	 * Either way the cgroup namespace is rooted at the joined cgroup. */
	int cgroup_fd;
	rt_before_start_fn before_start;  /* optional */
	void *before_start_data;
	/* cgroup v1: `tasks` files the child writes "0" to first thing, so it
	 * moves itself (cg_group_open_self_join(), which says why). */
	const int *self_join_fds;
	size_t n_self_join_fds;
	int stdio[3];                 /* dup2'd to 0, 1, 2; -1: inherit ours */
	int seccomp_cache_dirfd;      /* see rt_security_prepare(); -1: none */
	/* initProcessEnabled: pid 1 is a minimal init that forwards signals
	 * to argv's process and reaps zombies (runtime/init.h); rt_wait()
	 * still yields argv's exit status. */
	bool init;
};

/* Zeroes *spec and sets the fds to -1 (a zeroed spec would mean fd 0). */
void rt_spec_init(struct rt_spec *spec);

struct rt_proc {
	pid_t pid;   /* in our pid namespace */
	int pidfd;   /* CLOEXEC; owned, close with rt_proc_release */
};

/* Starts the container; on success it has exec'd argv and *ret holds its
 * pid and pidfd.  On failure nothing is left running. */
int rt_start(const struct rt_spec *spec, struct rt_proc *ret, struct berth_err *err);

/* Blocks until the process exits (waitid P_PIDFD) and reaps it.
 * *ret_status: the exit code, or 128 + signal as a shell reports it. */
int rt_wait(const struct rt_proc *p, int *ret_status, struct berth_err *err);

/* pidfd_send_signal(): safe against pid reuse. */
int rt_kill(const struct rt_proc *p, int sig, struct berth_err *err);

void rt_proc_release(struct rt_proc *p);

/* The container's environment: image env, then the definition's, which
 * wins per name (in the image's position); PATH defaults to
 * RT_DEFAULT_PATH.  Entries without '=' are refused.  *ret is a
 * NULL-terminated heap array, free with rt_strv_free. */
int rt_env_merge(const char *const *image_env, const char *const *def_env, char ***ret,
		 struct berth_err *err);
void rt_strv_free(char **v);

/* ECS/Docker ulimit names ("nofile", "nproc", "core", …) → RLIMIT_*. */
int rt_ulimit_resource(const char *name, int *ret, struct berth_err *err);

#endif
