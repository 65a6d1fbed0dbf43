#include "runtime/container.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "runtime/child.h"
#include "runtime/init.h"
#include "runtime/internal.h"
#include "runtime/security.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC)

/* ---- environment and ulimits -------------------------------------------- */

void rt_strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

static size_t strv_len(const char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

/* Sets entry "K=V" in out[0..*n), replacing an entry with the same K. */
static int env_set(char **out, size_t *n, const char *entry, struct berth_err *err)
{
	const char *eq = strchr(entry, '=');
	if (!eq || eq == entry)
		return berth_errf(err, EINVAL, "environment entry \"%s\": not NAME=value", entry);
	size_t klen = (size_t)(eq - entry) + 1;
	char *copy = strdup(entry);
	if (!copy)
		return berth_errnof(err, ENOMEM, "environment");
	for (size_t i = 0; i < *n; i++)
		if (!strncmp(out[i], entry, klen)) {
			free(out[i]);
			out[i] = copy;
			return 0;
		}
	out[(*n)++] = copy;
	return 0;
}

int rt_env_merge(const char *const *image_env, const char *const *def_env, char ***ret,
		 struct berth_err *err)
{
	size_t n = 0, cap = strv_len(image_env) + strv_len(def_env) + 2;
	char **out = calloc(cap, sizeof(char *));
	if (!out)
		return berth_errnof(err, ENOMEM, "environment");
	int r = 0;
	for (size_t i = 0; r >= 0 && image_env && image_env[i]; i++)
		r = env_set(out, &n, image_env[i], err);
	for (size_t i = 0; r >= 0 && def_env && def_env[i]; i++)
		r = env_set(out, &n, def_env[i], err);
	bool has_path = false;
	for (size_t i = 0; i < n; i++)
		has_path |= !strncmp(out[i], "PATH=", 5);
	if (r >= 0 && !has_path)
		r = env_set(out, &n, "PATH=" RT_DEFAULT_PATH, err);
	if (r < 0) {
		rt_strv_free(out);
		return r;
	}
	*ret = out;
	return 0;
}

static const struct { const char *name; int resource; } ulimit_names[] = {
	{ "core", RLIMIT_CORE }, { "cpu", RLIMIT_CPU }, { "data", RLIMIT_DATA },
	{ "fsize", RLIMIT_FSIZE }, { "locks", RLIMIT_LOCKS }, { "memlock", RLIMIT_MEMLOCK },
	{ "msgqueue", RLIMIT_MSGQUEUE }, { "nice", RLIMIT_NICE }, { "nofile", RLIMIT_NOFILE },
	{ "nproc", RLIMIT_NPROC }, { "rss", RLIMIT_RSS }, { "rtprio", RLIMIT_RTPRIO },
	{ "rttime", RLIMIT_RTTIME }, { "sigpending", RLIMIT_SIGPENDING },
	{ "stack", RLIMIT_STACK },
};

int rt_ulimit_resource(const char *name, int *ret, struct berth_err *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(ulimit_names); i++)
		if (!strcmp(ulimit_names[i].name, name)) {
			*ret = ulimit_names[i].resource;
			return 0;
		}
	return berth_errf(err, EINVAL, "ulimit %s: unknown", name);
}

void rt_spec_init(struct rt_spec *spec)
{
	*spec = (struct rt_spec){ .cgroup_fd = -1, .seccomp_cache_dirfd = -1,
				  .stdio = { -1, -1, -1 } };
}

/* ---- child side --------------------------------------------------------- */

struct child {
	const struct rt_spec *spec;
	const struct rt_mounts *mounts;
	const struct rt_security *sec;
	char *const *env;
	const char *path;       /* PATH from env */
	int sock;               /* our end of the socketpair */
	int netns_fd;           /* -1: stay in the parent's */
	bool unshare_cgroupns;  /* not created in the cgroup: enter it after */
};

static int join_namespaces(const struct child *c, struct berth_err *err)
{
	if (c->unshare_cgroupns && unshare(CLONE_NEWCGROUP) < 0)
		return rt_cerrnof(err, errno, "cgroup namespace");
	if (c->netns_fd >= 0 && setns(c->netns_fd, CLONE_NEWNET) < 0)
		return rt_cerrnof(err, errno, "join network namespace %s", c->spec->netns_path);
	return 0;
}

int rt_child_lock_down(const struct rt_child_profile *p, int *sock, struct berth_err *err)
{
	int r = rt_child_stdio(p->stdio, err);
	if (r >= 0)
		r = rt_child_rlimits(p->ulimits, p->n_ulimits, err);
	if (r >= 0)
		r = rt_child_close_fds(sock, err);
	if (r >= 0)
		r = rt_security_set_user(p->sec, p->uid, p->gid, p->groups, p->n_groups, err);
	if (r >= 0)
		r = rt_child_cwd(p->cwd ? p->cwd : "/", err);
	if (r >= 0)
		r = rt_security_set_caps(p->sec, err);
	if (r < 0)
		return r;
	umask(022);
	return rt_security_lock(p->sec, err);
}

static int child_run(struct child *c, struct berth_err *err)
{
	const struct rt_spec *s = c->spec;
	/* Non-dumpable: no ptrace and root-owned /proc/<pid> while we hold
	 * host fds; execve makes us dumpable again. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return rt_cerrnof(err, errno, "set non-dumpable");
	rt_child_reset_signals();
	/* First: what the child does from here on is charged to its cgroup. */
	int r = rt_child_self_join(s->self_join_fds, s->n_self_join_fds, err);
	if (r >= 0)
		r = rt_child_wait_go(c->sock, err);
	if (r >= 0)
		r = join_namespaces(c, err);
	if (r >= 0)
		r = rt_mounts_setup(c->mounts, err);
	if (r >= 0 && s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0)
		r = rt_cerrnof(err, errno, "hostname %s", s->hostname);
	const struct rt_child_profile prof = {
		.stdio = s->stdio, .ulimits = s->ulimits, .n_ulimits = s->n_ulimits, .sec = c->sec,
		.uid = s->uid, .gid = s->gid, .groups = s->groups, .n_groups = s->n_groups,
		.cwd = s->cwd,
	};
	if (r >= 0)
		r = rt_child_lock_down(&prof, &c->sock, err);
	/* Last, so init and the command share every restriction. */
	if (r >= 0 && s->init)
		r = rt_init_fork(c->sock, s->uid != 0, err);
	return r < 0 ? r : rt_child_exec((char *const *)s->argv, c->env, c->path, err);
}

static _Noreturn void child_main(struct child *c)
{
	struct berth_err err = { 0 };
	child_run(c, &err);
	send(c->sock, &err, sizeof(err), MSG_NOSIGNAL);
	_exit(127);
}

/* ---- parent side -------------------------------------------------------- */

/* Everything prepared before clone3(), released by the parent after it. */
struct launch {
	struct rt_mounts mounts;
	struct rt_security sec;
	int netns_fd;
	const char *const *env;
	const char *path;
	bool into_cgroup;
};

static int validate(const struct rt_spec *s, struct berth_err *err)
{
	if (!s->argv || !s->argv[0] || !s->argv[0][0])
		return berth_errf(err, EINVAL, "no command");
	if (s->cwd && s->cwd[0] != '/')
		return berth_errf(err, EINVAL, "working directory \"%s\": not absolute", s->cwd);
	if (s->hostname && strlen(s->hostname) > HOST_NAME_MAX)
		return berth_errf(err, EINVAL, "hostname %s: longer than %d", s->hostname,
				  HOST_NAME_MAX);
	if (s->n_groups > 65536)
		return berth_errf(err, EINVAL, "%zu supplementary groups: too many", s->n_groups);
	for (size_t i = 0; i < s->n_ulimits; i++)
		if (s->ulimits[i].soft > s->ulimits[i].hard)
			return berth_errf(err, EINVAL, "ulimit %d: soft limit above hard limit",
					  s->ulimits[i].resource);
	return 0;
}

bool rt_is_cgroup2(int fd)
{
	struct statfs sfs;
	return fstatfs(fd, &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC;
}

const char *rt_env_path(const char *const *env)
{
	for (size_t i = 0; env && env[i]; i++)
		if (!strncmp(env[i], "PATH=", 5))
			return env[i] + 5;
	return RT_DEFAULT_PATH;
}

static int prepare(const struct rt_spec *s, struct launch *l, struct berth_err *err)
{
	static const char *const no_env[] = { NULL };
	int r = validate(s, err);
	if (r >= 0)
		r = rt_security_prepare(s->cap_add, s->n_cap_add, s->cap_drop, s->n_cap_drop,
					s->seccomp_cache_dirfd, &l->sec, err);
	if (r >= 0)
		r = rt_mounts_prepare(&s->rootfs, s->binds, s->n_binds, &l->mounts, err);
	if (r < 0)
		return r;
	if (s->netns_path) {
		l->netns_fd = open(s->netns_path, O_RDONLY | O_CLOEXEC);
		if (l->netns_fd < 0)
			return berth_errnof(err, errno, "network namespace %s", s->netns_path);
	}
	l->env = s->env ? s->env : no_env;
	l->path = rt_env_path(l->env);
	l->into_cgroup = s->cgroup_fd >= 0 && rt_is_cgroup2(s->cgroup_fd);
	return 0;
}

static void launch_release(struct launch *l)
{
	rt_mounts_release(&l->mounts);
	rt_security_release(&l->sec);
	if (l->netns_fd >= 0)
		close(l->netns_fd);
}

int rt_cgroup_procs_write(int cgfd, pid_t pid, struct berth_err *err)
{
	_cleanup_close_ int fd = openat(cgfd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "%d\n", (int)pid);
	if (fd < 0 || write(fd, buf, (size_t)len) != len)
		return berth_errnof(err, errno ? errno : EIO, "join cgroup");
	return 0;
}

/* The window where the child waits: cgroup, the caller's hook, go. */
static int release_child(const struct rt_spec *s, const struct launch *l, pid_t pid, int pidfd,
			 int sock, struct berth_err *err)
{
	int r = 0;
	if (s->cgroup_fd >= 0 && !l->into_cgroup)
		r = rt_cgroup_procs_write(s->cgroup_fd, pid, err);
	if (r >= 0 && s->before_start)
		r = s->before_start(pid, pidfd, s->before_start_data, err);
	if (r >= 0 && send(sock, "g", 1, MSG_NOSIGNAL) != 1)
		r = berth_errnof(err, errno, "release child");
	return r;
}

/* EOF: execve succeeded and closed the child's end.  A message: the
 * child's error, and it is exiting 127. */
int rt_child_result(int sock, struct berth_err *err)
{
	struct berth_err e;
	ssize_t n;
	while ((n = recv(sock, &e, sizeof(e), 0)) < 0 && errno == EINTR)
		;
	if (n == 0)
		return 0;
	if (n != (ssize_t)sizeof(e))
		return berth_errnof(err, n < 0 ? errno : EPROTO, "read child status");
	e.msg[sizeof(e.msg) - 1] = '\0';
	return berth_errf(err, e.code > 0 && e.code < 4096 ? e.code : EIO, "%s", e.msg);
}

void rt_kill_reap(int pidfd)
{
	siginfo_t si;
	syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
	while (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0 && errno == EINTR)
		;
}

static int spawn(const struct rt_spec *s, struct launch *l, struct rt_proc *ret,
		 struct berth_err *err)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return berth_errnof(err, errno, "socketpair");
	_cleanup_close_ int sock = sv[0], child_sock = sv[1];
	int pidfd = -1;
	/* Created inside the cgroup, the child may have its cgroup namespace
	 * at once; otherwise it unshares one after it was moved. */
	struct clone_args args = {
		.flags = NS_FLAGS | CLONE_PIDFD |
			 (l->into_cgroup ? CLONE_INTO_CGROUP | CLONE_NEWCGROUP : 0),
		.pidfd = (uint64_t)(uintptr_t)&pidfd,
		.exit_signal = SIGCHLD,
		.cgroup = l->into_cgroup ? (uint64_t)s->cgroup_fd : 0,
	};
	long pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0)
		return berth_errnof(err, errno, "clone3");
	if (pid == 0) {
		struct child c = {
			.spec = s, .mounts = &l->mounts, .sec = &l->sec,
			.env = (char *const *)l->env, .path = l->path, .sock = child_sock,
			.netns_fd = l->netns_fd, .unshare_cgroupns = !l->into_cgroup,
		};
		child_main(&c);
	}
	close(TAKE_FD(child_sock));
	int r = release_child(s, l, (pid_t)pid, pidfd, sock, err);
	if (r >= 0)
		r = rt_child_result(sock, err);
	if (r < 0) {
		rt_kill_reap(pidfd);
		close(pidfd);
		return r;
	}
	*ret = (struct rt_proc){ .pid = (pid_t)pid, .pidfd = pidfd };
	return 0;
}

int rt_start(const struct rt_spec *spec, struct rt_proc *ret, struct berth_err *err)
{
	struct launch l = { .netns_fd = -1, .mounts = { .overlay_fd = -1, .legacy_dirfd = -1 } };
	int r = prepare(spec, &l, err);
	if (r >= 0)
		r = spawn(spec, &l, ret, err);
	launch_release(&l);
	if (r < 0)
		return berth_err_wrap(err, "CannotStartContainerError");
	return 0;
}

int rt_wait(const struct rt_proc *p, int *ret_status, struct berth_err *err)
{
	siginfo_t si = { 0 };
	while (waitid(P_PIDFD, (id_t)p->pidfd, &si, WEXITED) < 0)
		if (errno != EINTR)
			return berth_errnof(err, errno, "wait for pid %d", (int)p->pid);
	*ret_status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
	return 0;
}

int rt_kill(const struct rt_proc *p, int sig, struct berth_err *err)
{
	if (syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) < 0)
		return berth_errnof(err, errno, "signal %d to pid %d", sig, (int)p->pid);
	return 0;
}

void rt_proc_release(struct rt_proc *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
}
