#include "runtime/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "runtime/internal.h"
#include "runtime/security.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* The cgroup namespace is joined separately, by the process itself (see
 * grandchild_run). */
#define JOIN_NS (CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET)

/* The helper's one message: the new process's pid (and its pidfd as
 * SCM_RIGHTS), or why there is none. */
struct helper_msg {
	int ok;
	pid_t pid;
	struct berth_err err;
};

struct exec_child {
	const struct rt_exec_spec *spec;
	const struct rt_security *sec;
	char *const *env;
	const char *path;
	int sock;
	bool into_cgroup;
};

/* ---- child side: the process itself ------------------------------------- */

static int grandchild_run(struct exec_child *c, struct berth_err *err)
{
	const struct rt_exec_spec *s = c->spec;
	static const int inherit[3] = { -1, -1, -1 };  /* the helper set them */
	int r = rt_child_wait_go(c->sock, err);
	/* Born in the container's cgroup (the helper's, or moved there by
	 * the caller before the go-ahead), so in the container's cgroup
	 * namespace its own cgroup reads "/", as the container's do. */
	if (r >= 0 && setns(s->target_pidfd, CLONE_NEWCGROUP) < 0)
		r = rt_cerrnof(err, errno, "join the container's cgroup namespace");
	/* A new session whose controlling terminal is the pty on fd 0: the
	 * terminal's foreground process group is ours from here on. */
	if (r >= 0 && s->ctty && setsid() < 0)
		r = rt_cerrnof(err, errno, "setsid");
	if (r >= 0 && s->ctty && ioctl(0, TIOCSCTTY, 0) < 0)
		r = rt_cerrnof(err, errno, "take the terminal as controlling terminal");
	const struct rt_child_profile prof = {
		.stdio = inherit, .ulimits = s->ulimits, .n_ulimits = s->n_ulimits, .sec = c->sec,
		.uid = s->uid, .gid = s->gid, .groups = s->groups, .n_groups = s->n_groups,
		.cwd = s->cwd,
	};
	if (r >= 0)
		r = rt_child_lock_down(&prof, &c->sock, err);
	return r < 0 ? r : rt_child_exec((char *const *)s->argv, c->env, c->path, err);
}

static _Noreturn void grandchild_main(struct exec_child *c)
{
	struct berth_err err = { 0 };
	grandchild_run(c, &err);
	send(c->sock, &err, sizeof(err), MSG_NOSIGNAL);
	_exit(127);
}

/* ---- child side: the helper --------------------------------------------- */

static int send_pid(int sock, pid_t pid, int pidfd)
{
	struct helper_msg m = { .ok = 1, .pid = pid };
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &pidfd, sizeof(int));
	return sendmsg(sock, &msg, MSG_NOSIGNAL) == (ssize_t)sizeof(m) ? 0 : -errno;
}

static int helper_run(struct exec_child *c, struct berth_err *err)
{
	const struct rt_exec_spec *s = c->spec;
	/* Non-dumpable before we enter: the child inherits it, and the
	 * container's processes will see that child in their /proc. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return rt_cerrnof(err, errno, "set non-dumpable");
	rt_child_reset_signals();
	/* v1: into the container's cgroups now, so the process is born
	 * there (v2: the caller cloned us into it). */
	int r = rt_child_self_join(s->self_join_fds, s->n_self_join_fds, err);
	if (r >= 0)
		r = rt_child_stdio(s->stdio, err);
	/* The process appears in the container's pid namespace at clone3,
	 * and one there with SYS_PTRACE could take any fd it holds with
	 * pidfd_getfd() (non-dumpable does not stop CAP_SYS_PTRACE): it
	 * inherits only its stdio, the socket and the container's pidfd,
	 * never the shim's task, log or cgroup directories. */
	const int keep[] = { c->sock, s->target_pidfd };
	if (r >= 0)
		r = rt_child_close_all_but(keep, ARRAY_SIZE(keep), err);
	if (r < 0)
		return r;
	/* Also moves our root and cwd to the container's root. */
	if (setns(s->target_pidfd, JOIN_NS) < 0)
		return rt_cerrnof(err, errno, "join the container's namespaces");
	int pidfd = -1;
	/* CLONE_PARENT: the caller's child, reaped by its rt_wait(). */
	struct clone_args args = {
		.flags = CLONE_PARENT | CLONE_PIDFD,
		.pidfd = (uint64_t)(uintptr_t)&pidfd,
	};
	long pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0)
		return rt_cerrnof(err, errno, "clone3");
	if (pid == 0)
		grandchild_main(c);
	r = send_pid(c->sock, (pid_t)pid, pidfd);
	if (r < 0) {
		/* Nobody to hand it to: do not leave it waiting forever. */
		syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		return rt_cerrnof(err, -r, "hand over pid %ld", pid);
	}
	return 0;
}

static _Noreturn void helper_main(struct exec_child *c)
{
	struct helper_msg m = { 0 };
	if (helper_run(c, &m.err) >= 0)
		_exit(0);
	send(c->sock, &m, sizeof(m), MSG_NOSIGNAL);
	_exit(127);
}

/* ---- parent side -------------------------------------------------------- */

void rt_exec_spec_init(struct rt_exec_spec *spec)
{
	*spec = (struct rt_exec_spec){ .target_pidfd = -1, .cgroup_fd = -1,
				       .seccomp_cache_dirfd = -1, .stdio = { -1, -1, -1 } };
}

static int validate(const struct rt_exec_spec *s, struct berth_err *err)
{
	if (s->target_pidfd < 0)
		return berth_errf(err, EBADF, "no container pidfd");
	if (!s->argv || !s->argv[0] || !s->argv[0][0])
		return berth_errf(err, EINVAL, "no command");
	if (s->cwd && s->cwd[0] != '/')
		return berth_errf(err, EINVAL, "working directory \"%s\": not absolute", s->cwd);
	if (s->n_groups > 65536)
		return berth_errf(err, EINVAL, "%zu supplementary groups: too many", s->n_groups);
	for (size_t i = 0; i < s->n_ulimits; i++)
		if (s->ulimits[i].soft > s->ulimits[i].hard)
			return berth_errf(err, EINVAL, "ulimit %d: soft limit above hard limit",
					  s->ulimits[i].resource);
	return 0;
}

/* The helper has exited (so its message, if any, is queued): its pid and
 * pidfd, or its error. */
static int helper_result(int sock, int helper_pidfd, pid_t *ret_pid, int *ret_pidfd,
			 struct berth_err *err)
{
	siginfo_t si = { 0 };
	while (waitid(P_PIDFD, (id_t)helper_pidfd, &si, WEXITED) < 0)
		if (errno != EINTR)
			return berth_errnof(err, errno, "wait for exec helper");
	struct helper_msg m;
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	ssize_t n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	int fd = -1;
	struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	if (n != (ssize_t)sizeof(m)) {
		if (fd >= 0)
			close(fd);
		return berth_errf(err, EPROTO, "exec helper exited (%s %d) without a word",
				  si.si_code == CLD_EXITED ? "status" : "signal", si.si_status);
	}
	if (!m.ok) {
		m.err.msg[sizeof(m.err.msg) - 1] = '\0';
		return berth_errf(err, m.err.code > 0 && m.err.code < 4096 ? m.err.code : EIO,
				  "%s", m.err.msg);
	}
	if (fd < 0)
		return berth_errf(err, EPROTO, "exec helper sent no pidfd");
	*ret_pid = m.pid;
	*ret_pidfd = fd;
	return 0;
}

static int release(const struct rt_exec_spec *s, bool into_cgroup, pid_t pid, int pidfd,
		   int sock, struct berth_err *err)
{
	int r = 0;
	if (s->cgroup_fd >= 0 && !into_cgroup)
		r = rt_cgroup_procs_write(s->cgroup_fd, pid, err);
	if (r >= 0 && s->before_start)
		r = s->before_start(pid, pidfd, s->before_start_data, err);
	if (r >= 0 && send(sock, "g", 1, MSG_NOSIGNAL) != 1)
		r = berth_errnof(err, errno, "release process");
	return r;
}

/* Waits until the process has exec'd or failed (sock readable: end of
 * file or its error), at most RT_EXEC_START_MS.  A process in the
 * container can stop the new one, or keep a copy of the socket it took
 * with pidfd_getfd(), and the caller must not wait for that forever. */
static int wait_started(int sock, struct berth_err *err)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left = RT_EXEC_START_MS - ((t.tv_sec - t0.tv_sec) * 1000 +
						(t.tv_nsec - t0.tv_nsec) / 1000000);
		struct pollfd p = { .fd = sock, .events = POLLIN };
		int n = left > 0 ? poll(&p, 1, (int)left) : 0;
		if (n > 0)
			return 0;
		if (n == 0)
			return berth_errf(err, ETIMEDOUT, "the process did not start within %d ms "
					  "(stopped from inside the container?)", RT_EXEC_START_MS);
		if (errno != EINTR)
			return berth_errnof(err, errno, "wait for the process to start");
	}
}

static int spawn(const struct rt_exec_spec *s, struct exec_child *c, struct rt_proc *ret,
		 struct berth_err *err)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return berth_errnof(err, errno, "socketpair");
	_cleanup_close_ int sock = sv[0], child_sock = sv[1];
	_cleanup_close_ int helper_pidfd = -1;
	/* No new namespaces: the helper only needs to be single-threaded
	 * (setns into a mount namespace refuses threaded callers) and
	 * disposable.  cgroup2: it starts in the container's group, and so
	 * does the process it clones, which then needs no cgroup fd. */
	struct clone_args args = {
		.flags = CLONE_PIDFD | (c->into_cgroup ? CLONE_INTO_CGROUP : 0),
		.pidfd = (uint64_t)(uintptr_t)&helper_pidfd,
		.exit_signal = SIGCHLD,
		.cgroup = c->into_cgroup ? (uint64_t)s->cgroup_fd : 0,
	};
	long hpid = syscall(SYS_clone3, &args, sizeof(args));
	if (hpid < 0)
		return berth_errnof(err, errno, "clone3");
	if (hpid == 0) {
		c->sock = child_sock;
		helper_main(c);
	}
	close(TAKE_FD(child_sock));
	pid_t pid;
	int pidfd;
	int r = helper_result(sock, helper_pidfd, &pid, &pidfd, err);
	if (r < 0)
		return r;
	r = release(s, c->into_cgroup, pid, pidfd, sock, err);
	if (r >= 0)
		r = wait_started(sock, err);
	if (r >= 0)
		r = rt_child_result(sock, err);
	if (r < 0) {
		rt_kill_reap(pidfd);
		close(pidfd);
		return r;
	}
	*ret = (struct rt_proc){ .pid = pid, .pidfd = pidfd };
	return 0;
}

int rt_exec_in(const struct rt_exec_spec *spec, struct rt_proc *ret, struct berth_err *err)
{
	static const char *const no_env[] = { NULL };
	struct rt_security sec = { 0 };
	int r = validate(spec, err);
	if (r >= 0)
		r = rt_security_prepare(spec->cap_add, spec->n_cap_add, spec->cap_drop,
					spec->n_cap_drop, spec->seccomp_cache_dirfd, &sec, err);
	if (r >= 0) {
		const char *const *env = spec->env ? spec->env : no_env;
		struct exec_child c = {
			.spec = spec, .sec = &sec, .env = (char *const *)env,
			.path = rt_env_path(env), .sock = -1,
			.into_cgroup = spec->cgroup_fd >= 0 && rt_is_cgroup2(spec->cgroup_fd),
		};
		r = spawn(spec, &c, ret, err);
	}
	rt_security_release(&sec);
	if (r < 0)
		return berth_err_wrap(err, "exec in container");
	return 0;
}
