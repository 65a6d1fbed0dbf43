/* runtime/: container launch, user resolution, env merge.  Runs as root:
 * every test starts real containers from a busybox rootfs and probes them
 * from inside, as the OCI runtime-tools checker does. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "runtime/container.h"
#include "runtime/exec.h"
#include "runtime/security.h"
#include "runtime/user.h"

#define BUSYBOX "/bin/busybox"

static const char *const applets[] = {
	"sh", "cat", "id", "grep", "mount", "unshare", "ls", "sleep", "true", "false",
	"echo", "touch", "hostname", "wc", "pwd", "head",
};

struct fixture {
	char dir[64];        /* mkdtemp */
	char layer[128];
	int layerfd;
	unsigned runs;       /* fresh upper/work per container */
	char upper[128], work[128];
};

static struct fixture *fx;

static char *read_all_fd(int fd)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len + 4096 > cap) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n >= 0);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	return buf;
}

static char *read_path(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	return read_all_fd(fd);
}

static void write_at(int dirfd, const char *name, const char *text, mode_t mode)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
}

/* Overwrites dirfd/name (mode kept) with len zero bytes. */
static int write_at_len(int dirfd, const char *name, size_t len)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_TRUNC | O_CLOEXEC);
	char zero[64] = { 0 };
	return fd >= 0 && write(fd, zero, len) == (ssize_t)len ? 0 : -1;
}

static void copy_busybox(int dirfd)
{
	_cleanup_close_ int in = open(BUSYBOX, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int out = openat(dirfd, "bin/busybox", O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
	assert_true(in >= 0 && out >= 0);
	ssize_t n;
	while ((n = copy_file_range(in, NULL, out, NULL, 1 << 20, 0)) > 0)
		;
	/* Across filesystems (a tmpfs /tmp, the VM lane's 9p root) the
	 * kernel may refuse; copy by hand then. */
	if (n < 0 && (errno == EXDEV || errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL)) {
		char buf[1 << 16];
		while ((n = read(in, buf, sizeof(buf))) > 0)
			assert_int_equal(write(out, buf, (size_t)n), n);
	}
	assert_int_equal(n, 0);
}

static void build_layer(int fd)
{
	const char *dirs[] = { "bin", "etc", "mnt", "root", "home", "home/app", "tmp" };
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		assert_int_equal(mkdirat(fd, dirs[i], 0755), 0);
	assert_int_equal(fchmodat(fd, "root", 0700, 0), 0);
	assert_int_equal(fchownat(fd, "home/app", 1000, 1000, 0), 0);
	copy_busybox(fd);
	for (size_t i = 0; i < ARRAY_SIZE(applets); i++) {
		char name[64];
		snprintf(name, sizeof(name), "bin/%s", applets[i]);
		assert_int_equal(symlinkat("busybox", fd, name), 0);
	}
	write_at(fd, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
		 "app:x:1000:1000:app:/home/app:/bin/sh\n", 0644);
	write_at(fd, "etc/group", "root:x:0:\napp:x:1000:\nextra:x:2000:other,app\n"
		 "tty:x:5:\n", 0644);
}

static int setup(void **state)
{
	(void)state;
	if (geteuid() != 0 || access(BUSYBOX, X_OK) != 0) {
		print_message("skip: needs root and %s\n", BUSYBOX);
		return -1;
	}
	fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/berth-rt-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->layer, sizeof(fx->layer), "%s/layer", fx->dir);
	assert_int_equal(mkdir(fx->layer, 0755), 0);
	fx->layerfd = open(fx->layer, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(fx->layerfd >= 0);
	_cleanup_close_ int wfd = open(fx->layer, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	build_layer(wfd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	struct berth_err err = { 0 };
	close(fx->layerfd);
	/* Nothing the containers mounted may show in our mount namespace.
	 * Only our own directory is looked at: other processes (tasks of
	 * tests running meanwhile) mount and unmount elsewhere. */
	char *mounts = read_path("/proc/self/mountinfo");
	bool leaked = strstr(mounts, fx->dir) != NULL;
	free(mounts);
	assert_false(leaked);
	assert_int_equal(berth_rm_rf_at(AT_FDCWD, fx->dir, &err), 0);
	assert_int_equal(access(fx->dir, F_OK), -1);
	free(fx);
	return 0;
}

static const char *const base_env[] = { "PATH=/bin", "HOME=/root", NULL };

static void base_spec(struct rt_spec *s, const char *const *argv)
{
	static const char *lower[1];
	lower[0] = fx->layer;
	fx->runs++;
	snprintf(fx->upper, sizeof(fx->upper), "%s/upper%u", fx->dir, fx->runs);
	snprintf(fx->work, sizeof(fx->work), "%s/work%u", fx->dir, fx->runs);
	assert_int_equal(mkdir(fx->upper, 0755), 0);
	assert_int_equal(mkdir(fx->work, 0700), 0);
	rt_spec_init(s);
	s->rootfs = (struct rt_rootfs){ .lowerdirs = lower, .n_lowerdirs = 1,
					.upperdir = fx->upper, .workdir = fx->work };
	s->hostname = "berth-test";
	s->argv = argv;
	s->env = base_env;
}

/* After rt_start() or rt_exec_in() (r) with stdout+stderr on the pipe p:
 * *out is everything the process wrote, *status its exit. */
static int collect(int r, int p[2], struct rt_proc *proc, char **out, int *status,
		   struct berth_err *err)
{
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		return r;
	}
	*out = read_all_fd(p[0]);
	close(p[0]);
	assert_int_equal(rt_wait(proc, status, err), 0);
	rt_proc_release(proc);
	return 0;
}

/* Starts s with stdout+stderr into a pipe; *out is everything it wrote. */
static int run_spec(struct rt_spec *s, char **out, int *status, struct berth_err *err)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	s->stdio[1] = s->stdio[2] = p[1];
	struct rt_proc proc;
	return collect(rt_start(s, &proc, err), p, &proc, out, status, err);
}

/* Runs argv as root in a fresh container, asserting it started. */
static char *run(const char *const *argv, int *status)
{
	struct rt_spec s;
	struct berth_err err = { 0 };
	char *out = NULL;
	base_spec(&s, argv);
	int r = run_spec(&s, &out, status, &err);
	if (r < 0)
		fail_msg("rt_start: %s", err.msg);
	return out;
}

static void expect_status_line(const char *status, const char *key, const char *want)
{
	const char *p = strstr(status, key);
	assert_non_null(p);
	p += strlen(key);
	p += strspn(p, "\t ");
	size_t n = strcspn(p, "\n");
	char got[64];
	snprintf(got, sizeof(got), "%.*s", (int)n, p);
	assert_string_equal(got, want);
}

/* ---- the in-container probe ---------------------------------------------- */

static void test_status_hardening(void **state)
{
	(void)state;
	int st;
	_cleanup_free_ char *out = run((const char *[]){ "cat", "/proc/self/status", NULL }, &st);
	assert_int_equal(st, 0);
	expect_status_line(out, "CapEff:", "00000000a80425fb");
	expect_status_line(out, "CapPrm:", "00000000a80425fb");
	expect_status_line(out, "CapBnd:", "00000000a80425fb");
	expect_status_line(out, "CapInh:", "0000000000000000");
	expect_status_line(out, "CapAmb:", "0000000000000000");
	expect_status_line(out, "NoNewPrivs:", "1");
	expect_status_line(out, "Seccomp:", "2");
}

static void test_user_app(void **state)
{
	(void)state;
	struct berth_err err = { 0 };
	struct rt_user u;
	assert_int_equal(rt_resolve_user(fx->layerfd, "app", &u, &err), 0);
	struct rt_spec s;
	base_spec(&s, (const char *[]){ "sh", "-c", "id; grep CapEff /proc/self/status", NULL });
	s.uid = u.uid;
	s.gid = u.gid;
	s.groups = u.groups;
	s.n_groups = u.n_groups;
	s.cwd = "/home/app";
	char *out = NULL;
	int st;
	assert_int_equal(run_spec(&s, &out, &st, &err), 0);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)\n"));
	/* Non-root after execve: the kernel clears the sets, as in Docker. */
	assert_non_null(strstr(out, "CapEff:\t0000000000000000"));
	free(out);
	rt_user_release(&u);
}

static void test_hostname(void **state)
{
	(void)state;
	int st;
	_cleanup_free_ char *out = run((const char *[]){ "hostname", NULL }, &st);
	assert_string_equal(out, "berth-test\n");
}

static void test_mount_and_unshare_denied(void **state)
{
	(void)state;
	int st;
	free(run((const char *[]){ "mount", "-t", "tmpfs", "x", "/mnt", NULL }, &st));
	assert_int_not_equal(st, 0);
	free(run((const char *[]){ "unshare", "-U", "true", NULL }, &st));
	assert_int_not_equal(st, 0);
	free(run((const char *[]){ "unshare", "-m", "true", NULL }, &st));
	assert_int_not_equal(st, 0);
}

static void test_masked_and_readonly_proc(void **state)
{
	(void)state;
	int st;
	/* kcore may not exist on this kernel; either way nothing is readable.
	 * timer_list and keys exist and are not empty on the host. */
	_cleanup_free_ char *masked = run((const char *[]){ "sh", "-c",
		"cat /proc/kcore 2>/dev/null | wc -c; cat /proc/timer_list /proc/keys | wc -c; "
		"ls -A /proc/acpi | wc -l", NULL }, &st);
	assert_int_equal(st, 0);
	assert_string_equal(masked, "0\n0\n0\n");
	_cleanup_free_ char *host = read_path("/proc/timer_list");
	assert_true(strlen(host) > 0);
	/* Only opens with O_TRUNC, writes nothing: harmless even if it worked. */
	free(run((const char *[]){ "sh", "-c", ": > /proc/sysrq-trigger", NULL }, &st));
	assert_int_not_equal(st, 0);
	free(run((const char *[]){ "sh", "-c", ": > /proc/sys/kernel/hostname", NULL }, &st));
	assert_int_not_equal(st, 0);
	_cleanup_free_ char *mounts = run((const char *[]){ "cat", "/proc/mounts", NULL }, &st);
	if (!strstr(mounts, "sysfs /sys sysfs ro,")) fail_msg("%s", mounts);
	assert_non_null(strstr(mounts, "proc /proc proc rw,nosuid,nodev,noexec"));
	assert_non_null(strstr(mounts, "/dev/pts devpts rw,nosuid,noexec"));
	assert_non_null(strstr(mounts, "/dev/shm tmpfs rw,nosuid,nodev,noexec"));
	assert_non_null(strstr(mounts, "/dev/mqueue mqueue rw,nosuid,nodev,noexec"));
	assert_non_null(strstr(mounts, "/sys/firmware tmpfs ro,"));
}

static void test_pid_namespace(void **state)
{
	(void)state;
	int st;
	_cleanup_free_ char *out = run((const char *[]){ "ls", "/proc", NULL }, &st);
	assert_int_equal(st, 0);
	size_t pids = 0;
	char *save = NULL;
	for (char *w = strtok_r(out, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
		if (w[strspn(w, "0123456789")] == '\0') {
			assert_string_equal(w, "1");
			pids++;
		}
	assert_int_equal(pids, 1);
}

static void test_host_invisible(void **state)
{
	(void)state;
	int st;
	assert_int_equal(access("/work", F_OK), 0);
	free(run((const char *[]){ "ls", "-d", "/work", NULL }, &st));
	assert_int_not_equal(st, 0);
	free(run((const char *[]){ "ls", "-d", "/run/berth", NULL }, &st));
	assert_int_not_equal(st, 0);
	/* Exactly our layer, not the host's root: */
	_cleanup_free_ char *out = run((const char *[]){ "ls", "/", NULL }, &st);
	assert_null(strstr(out, "usr"));
}

static void test_dev(void **state)
{
	(void)state;
	int st;
	_cleanup_free_ char *out = run((const char *[]){ "sh", "-c",
		"ls /dev; echo x > /dev/null && head -c 4 /dev/zero | wc -c", NULL }, &st);
	assert_int_equal(st, 0);
	const char *want[] = { "null", "zero", "full", "random", "urandom", "tty", "ptmx",
			       "pts", "shm", "mqueue", "fd", "stdout" };
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		char w[32];
		snprintf(w, sizeof(w), "%s\n", want[i]);
		if (!strstr(out, w))
			fail_msg("/dev/%s missing in:\n%s", want[i], out);
	}
	assert_non_null(strstr(out, "\n4\n"));
}

static void test_rootfs_writes(void **state)
{
	(void)state;
	struct berth_err err = { 0 };
	struct rt_spec s;
	char *out = NULL;
	int st;
	base_spec(&s, (const char *[]){ "touch", "/x", NULL });
	assert_int_equal(run_spec(&s, &out, &st, &err), 0);
	free(out);
	assert_int_equal(st, 0);
	char path[256];
	snprintf(path, sizeof(path), "%s/x", fx->upper);
	assert_int_equal(access(path, F_OK), 0);

	base_spec(&s, (const char *[]){ "touch", "/x", NULL });
	s.rootfs.readonly = true;
	assert_int_equal(run_spec(&s, &out, &st, &err), 0);
	assert_non_null(strstr(out, "Read-only file system"));
	free(out);
	assert_int_not_equal(st, 0);
	snprintf(path, sizeof(path), "%s/x", fx->upper);
	assert_int_equal(access(path, F_OK), -1);
}

static void test_exec_not_found(void **state)
{
	(void)state;
	struct berth_err err = { 0 };
	struct rt_spec s;
	char *out = NULL;
	int st;
	base_spec(&s, (const char *[]){ "nope", NULL });
	assert_int_equal(run_spec(&s, &out, &st, &err), -ENOENT);
	assert_string_equal(err.msg, "CannotStartContainerError: exec: \"nope\": "
			    "executable file not found in $PATH");
	base_spec(&s, (const char *[]){ "/bin/nope", NULL });
	assert_int_equal(run_spec(&s, &out, &st, &err), -ENOENT);
	assert_string_equal(err.msg, "CannotStartContainerError: exec: \"/bin/nope\": "
			    "No such file or directory");
}

static void test_working_directory(void **state)
{
	(void)state;
	struct berth_err err = { 0 };
	struct rt_spec s;
	char *out = NULL;
	int st;
	base_spec(&s, (const char *[]){ "true", NULL });
	s.cwd = "/nonexistent";
	assert_int_equal(run_spec(&s, &out, &st, &err), -ENOENT);
	assert_string_equal(err.msg, "CannotStartContainerError: working directory "
			    "\"/nonexistent\": No such file or directory");
	/* Checked after setuid: app may not enter /root (0700). */
	base_spec(&s, (const char *[]){ "true", NULL });
	s.cwd = "/root";
	s.uid = s.gid = 1000;
	assert_int_equal(run_spec(&s, &out, &st, &err), -EACCES);
	assert_non_null(strstr(err.msg, "working directory \"/root\""));
	base_spec(&s, (const char *[]){ "pwd", NULL });
	s.cwd = "/etc";
	assert_int_equal(run_spec(&s, &out, &st, &err), 0);
	assert_string_equal(out, "/etc\n");
	free(out);
}

static void test_exit_status_and_kill(void **state)
{
	(void)state;
	int st;
	free(run((const char *[]){ "sh", "-c", "exit 7", NULL }, &st));
	assert_int_equal(st, 7);
	struct berth_err err = { 0 };
	struct rt_spec s;
	base_spec(&s, (const char *[]){ "sleep", "100", NULL });
	struct rt_proc p;
	assert_int_equal(rt_start(&s, &p, &err), 0);
	assert_int_equal(rt_kill(&p, SIGKILL, &err), 0);
	assert_int_equal(rt_wait(&p, &st, &err), 0);
	assert_int_equal(st, 128 + SIGKILL);
	rt_proc_release(&p);
}

static void test_bind_and_ulimits(void **state)
{
	(void)state;
	char src[128];
	snprintf(src, sizeof(src), "%s/resolv.conf", fx->dir);
	write_at(AT_FDCWD, src, "nameserver 10.89.0.1\n", 0644);
	struct rt_bind b[] = { { .source = src, .dest = "/etc/resolv.conf" },
			       { .source = src, .dest = "/new/dir/hosts" } };
	struct rt_ulimit ul[] = { { RLIMIT_NOFILE, 100, 200 } };
	struct rt_spec s;
	base_spec(&s, (const char *[]){ "sh", "-c", "cat /etc/resolv.conf /new/dir/hosts; "
		"ulimit -n; ulimit -Hn; echo x >> /etc/resolv.conf || echo denied", NULL });
	s.binds = b;
	s.n_binds = ARRAY_SIZE(b);
	s.ulimits = ul;
	s.n_ulimits = 1;
	struct berth_err err = { 0 };
	char *out = NULL;
	int st;
	assert_int_equal(run_spec(&s, &out, &st, &err), 0);
	assert_non_null(strstr(out, "nameserver 10.89.0.1\nnameserver 10.89.0.1\n100\n200\n"));
	assert_non_null(strstr(out, "denied"));
	free(out);
	_cleanup_free_ char *host = read_path(src);
	assert_string_equal(host, "nameserver 10.89.0.1\n");
}

static void test_cap_add_sys_admin(void **state)
{
	(void)state;
	struct rt_spec s;
	base_spec(&s, (const char *[]){ "sh", "-c",
		"grep CapEff /proc/self/status; mount -t tmpfs x /mnt && echo mounted", NULL });
	const char *add[] = { "SYS_ADMIN" }, *drop[] = { "NET_RAW" };
	s.cap_add = add;
	s.n_cap_add = 1;
	s.cap_drop = drop;
	s.n_cap_drop = 1;
	struct berth_err err = { 0 };
	char *out = NULL;
	int st;
	assert_int_equal(run_spec(&s, &out, &st, &err), 0);
	/* a80425fb - NET_RAW(13) + SYS_ADMIN(21) */
	assert_non_null(strstr(out, "CapEff:\t00000000a82405fb"));
	assert_non_null(strstr(out, "mounted"));
	free(out);
}

/* A v1 (or v2) cgroup below ours: the container is in it before exec. */
static int check_in_cgroup(pid_t pid, int pidfd, void *data, struct berth_err *err)
{
	(void)pidfd;
	const char *dir = data;
	char path[256], want[32];
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	snprintf(want, sizeof(want), "%d\n", (int)pid);
	_cleanup_free_ char *procs = read_path(path);
	if (!strstr(procs, want))
		return berth_errf(err, ESRCH, "pid %d not in %s", (int)pid, dir);
	return 0;
}

/* The hierarchy a cgroup test makes its group in: v1's pids one where it
 * is mounted (the build hosts), else cgroup2 (the v2 lane), so the test
 * runs on both; *want is the line /proc/self/cgroup shows inside the
 * container's cgroup namespace.  No hierarchy at all fails the test: a
 * join test that passes without joining anything proves nothing. */
static void cgroup_test_dir(const char *tag, char *dir, size_t size, const char **want)
{
	const char *root = "";
	if (access("/sys/fs/cgroup/pids/tasks", F_OK) == 0) {
		root = "/sys/fs/cgroup/pids";
		*want = ":pids:/\n";
	} else if (access("/sys/fs/cgroup/cgroup.procs", F_OK) == 0) {
		root = "/sys/fs/cgroup";
		*want = "0::/\n";
	} else {
		fail_msg("%s: neither a v1 pids hierarchy nor cgroup2 at /sys/fs/cgroup", tag);
	}
	snprintf(dir, size, "%s/berth-%s-%d", root, tag, (int)getpid());
	if (mkdir(dir, 0755) < 0)
		fail_msg("%s: mkdir %s: %s", tag, dir, strerror(errno));
}

static void test_cgroup_join(void **state)
{
	(void)state;
	char dir[128];
	const char *want = NULL;
	cgroup_test_dir("rt-test", dir, sizeof(dir), &want);
	_cleanup_close_ int cgfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(cgfd >= 0);
	struct rt_spec s;
	base_spec(&s, (const char *[]){ "cat", "/proc/self/cgroup", NULL });
	s.cgroup_fd = cgfd;
	s.before_start = check_in_cgroup;
	s.before_start_data = dir;
	struct berth_err err = { 0 };
	char *out = NULL;
	int st;
	int r = run_spec(&s, &out, &st, &err);
	/* Removed first, so a failure leaves nothing behind. */
	assert_int_equal(rmdir(dir), 0);
	if (r < 0)
		fail_msg("%s", err.msg);
	/* The cgroup namespace is rooted at the joined cgroup. */
	if (!strstr(out, want))
		fail_msg("no %s in:\n%s", want, out);
	free(out);
}

/* v1: the child moves itself by writing "0" to the group's `tasks` file
 * (no pid write by the parent, no hook) and is in it before exec. */
static void test_cgroup_self_join(void **state)
{
	(void)state;
	char dir[128], tasks[160];
	snprintf(dir, sizeof(dir), "/sys/fs/cgroup/pids/berth-rt-self-%d", (int)getpid());
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(tasks, sizeof(tasks), "%s/tasks", dir);
	int fd = open(tasks, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct rt_spec s;
	base_spec(&s, (const char *[]){ "grep", "pids", "/proc/self/cgroup", NULL });
	s.self_join_fds = &fd;
	s.n_self_join_fds = 1;
	struct berth_err err = { 0 };
	char *out = NULL;
	int st;
	int r = run_spec(&s, &out, &st, &err);
	close(fd);
	_cleanup_free_ char *left = read_path(tasks);
	assert_int_equal(rmdir(dir), 0);
	if (r < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(st, 0);
	/* Rooted at the joined cgroup, so it reads as "/". */
	assert_non_null(strstr(out, ":pids:/\n"));
	assert_string_equal(left, "");
	free(out);
}

static int failing_hook(pid_t pid, int pidfd, void *data, struct berth_err *err)
{
	(void)pidfd;
	*(pid_t *)data = pid;
	return berth_errf(err, EPERM, "hook says no");
}

static void test_hook_failure_kills_child(void **state)
{
	(void)state;
	struct rt_spec s;
	pid_t pid = 0;
	base_spec(&s, (const char *[]){ "true", NULL });
	s.before_start = failing_hook;
	s.before_start_data = &pid;
	struct berth_err err = { 0 };
	struct rt_proc p;
	assert_int_equal(rt_start(&s, &p, &err), -EPERM);
	assert_string_equal(err.msg, "CannotStartContainerError: hook says no");
	assert_true(pid > 0);
	assert_int_equal(kill(pid, 0), -1);  /* reaped */
	assert_int_equal(errno, ESRCH);
}

static void test_netns_join(void **state)
{
	(void)state;
	int ready[2];
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	pid_t holder = fork();
	assert_true(holder >= 0);
	if (holder == 0) {
		if (unshare(CLONE_NEWNET) < 0)
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(ready[1]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	char ns[64];
	snprintf(ns, sizeof(ns), "/proc/%d/ns/net", (int)holder);
	struct rt_spec s;
	base_spec(&s, (const char *[]){ "ls", "/sys/class/net", NULL });
	s.netns_path = ns;
	struct berth_err err = { 0 };
	char *out = NULL;
	int st;
	int r = run_spec(&s, &out, &st, &err);
	kill(holder, SIGKILL);
	waitpid(holder, NULL, 0);
	if (r < 0)
		fail_msg("%s", err.msg);
	assert_string_equal(out, "lo\n");
	free(out);
}

static void test_bad_spec(void **state)
{
	(void)state;
	struct rt_spec s;
	struct rt_proc p;
	struct berth_err err = { 0 };
	base_spec(&s, (const char *[]){ NULL });
	assert_int_equal(rt_start(&s, &p, &err), -EINVAL);
	base_spec(&s, (const char *[]){ "true", NULL });
	const char *bad[] = { "relative/layer" };
	s.rootfs.lowerdirs = bad;
	assert_int_equal(rt_start(&s, &p, &err), -EINVAL);
	base_spec(&s, (const char *[]){ "true", NULL });
	const char *caps[] = { "NOT_A_CAP" };
	s.cap_add = caps;
	s.n_cap_add = 1;
	assert_int_equal(rt_start(&s, &p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "capability NOT_A_CAP: unknown"));
	base_spec(&s, (const char *[]){ "true", NULL });
	s.netns_path = "/nonexistent/netns";
	assert_int_equal(rt_start(&s, &p, &err), -ENOENT);
}

/* ---- rt_exec_in: a process inside a running container -------------------- */

/* A container that marks /tmp, then sleeps; *ret runs it. */
static void start_sleeper(struct rt_spec *s, struct rt_proc *ret)
{
	base_spec(s, (const char *[]){ "sh", "-c",
		"echo from-container > /tmp/marker && exec sleep 30", NULL });
	struct berth_err err = { 0 };
	if (rt_start(s, ret, &err) < 0)
		fail_msg("rt_start: %s", err.msg);
}

static void exec_spec(struct rt_exec_spec *e, const struct rt_proc *target,
		      const char *const *argv)
{
	rt_exec_spec_init(e);
	e->target_pidfd = target->pidfd;
	e->argv = argv;
	e->env = base_env;
}

/* Runs e with stdout+stderr into a pipe: its output and exit status. */
static int exec_run(struct rt_exec_spec *e, char **out, int *status, struct berth_err *err)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	e->stdio[1] = e->stdio[2] = p[1];
	struct rt_proc proc;
	return collect(rt_exec_in(e, &proc, err), p, &proc, out, status, err);
}

static char *exec_ok(const struct rt_proc *target, const char *const *argv, int *status)
{
	struct rt_exec_spec e;
	struct berth_err err = { 0 };
	char *out = NULL;
	exec_spec(&e, target, argv);
	if (exec_run(&e, &out, status, &err) < 0)
		fail_msg("rt_exec_in: %s", err.msg);
	return out;
}

static void stop_container(struct rt_proc *p)
{
	struct berth_err err = { 0 };
	int st;
	assert_int_equal(rt_kill(p, SIGKILL, &err), 0);
	assert_int_equal(rt_wait(p, &st, &err), 0);
	rt_proc_release(p);
}

/* Until the container's shell has written /tmp/marker and exec'd sleep.
 * The redirection creates the file empty before echo writes it, so an
 * empty read is "not yet", as is a pid 1 still named sh. */
static void wait_marker(const struct rt_proc *c)
{
	_cleanup_free_ char *out = NULL;
	for (int i = 0; i < 500; i++) {
		int st;
		free(out);
		out = exec_ok(c, (const char *[]){ "sh", "-c", "cat /tmp/marker; cat /proc/1/comm",
						NULL }, &st);
		if (strcmp(out, "from-container\nsleep\n") == 0)
			return;
		usleep(10000);
	}
	fail_msg("the container never wrote /tmp/marker and exec'd sleep: %s", out);
}

static void status_line(const char *status, const char *key, char *buf, size_t len)
{
	const char *p = strstr(status, key);
	assert_non_null(p);
	snprintf(buf, len, "%.*s", (int)strcspn(p, "\n"), p);
}

static void test_exec_in(void **state)
{
	(void)state;
	struct rt_spec s;
	struct rt_proc c;
	start_sleeper(&s, &c);
	wait_marker(&c);
	int st;
	/* Same profile as the container's pid 1 (sh exec'd sleep). */
	_cleanup_free_ char *out = exec_ok(&c, (const char *[]){ "sh", "-c",
		"cat /proc/self/status; echo ---; cat /proc/1/status", NULL }, &st);
	assert_int_equal(st, 0);
	char *sep = strstr(out, "---\n");
	assert_non_null(sep);
	*sep = '\0';
	const char *keys[] = { "CapEff:", "CapPrm:", "CapBnd:", "CapInh:", "CapAmb:",
			       "NoNewPrivs:", "Seccomp:", "Uid:", "Gid:", "Groups:" };
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		char mine[128], init[128];
		status_line(out, keys[i], mine, sizeof(mine));
		status_line(sep + 4, keys[i], init, sizeof(init));
		assert_string_equal(mine, init);
	}
	expect_status_line(out, "CapEff:", "00000000a80425fb");
	expect_status_line(out, "NoNewPrivs:", "1");
	expect_status_line(out, "Seccomp:", "2");

	_cleanup_free_ char *host = exec_ok(&c, (const char *[]){ "hostname", NULL }, &st);
	assert_string_equal(host, "berth-test\n");

	/* The container's pid namespace: its pid 1 and us. */
	_cleanup_free_ char *ps = exec_ok(&c, (const char *[]){ "sh", "-c",
		"cat /proc/1/comm; echo $$; ls /proc", NULL }, &st);
	assert_int_equal(st, 0);
	assert_memory_equal(ps, "sleep\n", 6);
	size_t pids = 0;
	char *save = NULL;
	bool one = false;
	for (char *w = strtok_r(ps + 6, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
		if (w[strspn(w, "0123456789")] == '\0') {
			one |= !strcmp(w, "1");
			pids++;
		}
	assert_true(one);
	assert_true(pids >= 2 && pids <= 4);  /* 1, our sh, its ls (echo $$ counted once) */

	/* The exit status comes back through rt_wait. */
	free(exec_ok(&c, (const char *[]){ "sh", "-c", "exit 5", NULL }, &st));
	assert_int_equal(st, 5);
	stop_container(&c);
}

static void test_exec_in_user_cwd_caps(void **state)
{
	(void)state;
	struct rt_spec s;
	struct rt_proc c;
	start_sleeper(&s, &c);
	struct rt_exec_spec e;
	const char *drop[] = { "NET_RAW" };
	exec_spec(&e, &c, (const char *[]){ "sh", "-c",
		"id; pwd; grep CapBnd /proc/self/status", NULL });
	e.uid = 1000;
	e.gid = 1000;
	e.cwd = "/home/app";
	e.cap_drop = drop;
	e.n_cap_drop = 1;
	struct berth_err err = { 0 };
	char *out = NULL;
	int st;
	if (exec_run(&e, &out, &st, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "uid=1000(app) gid=1000(app)"));
	assert_non_null(strstr(out, "\n/home/app\n"));
	assert_non_null(strstr(out, "CapBnd:\t00000000a80405fb"));
	free(out);
	stop_container(&c);
}

static void test_exec_in_errors(void **state)
{
	(void)state;
	struct rt_spec s;
	struct rt_proc c;
	start_sleeper(&s, &c);
	struct rt_exec_spec e;
	struct berth_err err = { 0 };
	char *out = NULL;
	int st;
	exec_spec(&e, &c, (const char *[]){ "nope", NULL });
	assert_int_equal(exec_run(&e, &out, &st, &err), -ENOENT);
	assert_string_equal(err.msg, "exec in container: exec: \"nope\": "
			    "executable file not found in $PATH");
	exec_spec(&e, &c, (const char *[]){ "true", NULL });
	e.cwd = "/nonexistent";
	assert_int_equal(exec_run(&e, &out, &st, &err), -ENOENT);
	assert_string_equal(err.msg, "exec in container: working directory "
			    "\"/nonexistent\": No such file or directory");
	exec_spec(&e, &c, (const char *[]){ NULL });
	assert_int_equal(exec_run(&e, &out, &st, &err), -EINVAL);
	/* The failed attempts left nothing behind in the container. */
	_cleanup_free_ char *ps = exec_ok(&c, (const char *[]){ "ls", "/proc", NULL }, &st);
	size_t pids = 0;
	char *save = NULL;
	for (char *w = strtok_r(ps, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
		pids += w[strspn(w, "0123456789")] == '\0';
	assert_int_equal(pids, 2);  /* pid 1 and ls */
	/* A container that is gone. */
	stop_container(&c);
	struct rt_proc dead;
	start_sleeper(&s, &dead);
	int dead_fd = dup(dead.pidfd);
	stop_container(&dead);
	dead.pidfd = dead_fd;
	exec_spec(&e, &dead, (const char *[]){ "true", NULL });
	assert_int_equal(exec_run(&e, &out, &st, &err), -ESRCH);
	assert_non_null(strstr(err.msg, "exec in container: join the container's namespaces"));
	close(dead_fd);
}

/* The probe lands in the container's cgroup, in both hierarchy kinds this
 * host may have: a v1 controller (cgroup.procs written before go) and the
 * v2 hierarchy (CLONE_INTO_CGROUP).  root must be there: a missing one
 * fails rather than skips. */
static void exec_in_cgroup(const char *root, const char *want_line)
{
	char dir[160];
	snprintf(dir, sizeof(dir), "%s/berth-exec-test-%d", root, (int)getpid());
	if (mkdir(dir, 0755) < 0)
		fail_msg("mkdir %s: %s", dir, strerror(errno));
	_cleanup_close_ int cgfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(cgfd >= 0);
	struct rt_spec s;
	base_spec(&s, (const char *[]){ "sleep", "30", NULL });
	s.cgroup_fd = cgfd;
	struct berth_err err = { 0 };
	struct rt_proc c;
	int r = rt_start(&s, &c, &err);
	if (r < 0) {
		rmdir(dir);
		fail_msg("rt_start: %s", err.msg);
	}
	struct rt_exec_spec e;
	exec_spec(&e, &c, (const char *[]){ "sh", "-c", "cat /proc/self/cgroup; sleep 0.2", NULL });
	e.cgroup_fd = cgfd;
	e.before_start = check_in_cgroup;
	e.before_start_data = dir;
	char *out = NULL;
	int st = -1;
	r = exec_run(&e, &out, &st, &err);
	stop_container(&c);
	assert_int_equal(rmdir(dir), 0);
	if (r < 0)
		fail_msg("rt_exec_in: %s", err.msg);
	assert_int_equal(st, 0);
	if (!strstr(out, want_line))
		fail_msg("no %s in:\n%s", want_line, out);
	free(out);
}

static void test_exec_in_cgroup(void **state)
{
	(void)state;
	int ran = 0;
	if (access("/sys/fs/cgroup/pids/tasks", F_OK) == 0) {
		exec_in_cgroup("/sys/fs/cgroup/pids", ":pids:/\n");
		ran++;
	}
	if (access("/sys/fs/cgroup/unified/cgroup.procs", F_OK) == 0) {
		exec_in_cgroup("/sys/fs/cgroup/unified", "0::/\n");
		ran++;
	} else if (access("/sys/fs/cgroup/cgroup.procs", F_OK) == 0) {
		exec_in_cgroup("/sys/fs/cgroup", "0::/\n");
		ran++;
	}
	if (!ran)
		fail_msg("no cgroup hierarchy to exec into: neither a v1 pids hierarchy nor cgroup2");
}

/* ---- initProcessEnabled -------------------------------------------------- */

/* The container's processes, seen from an exec'd probe: *zombies in state
 * Z, *sleeps running sleep (alive or not). */
static void count_procs(const struct rt_proc *c, int *zombies, int *sleeps)
{
	int st;
	_cleanup_free_ char *out = exec_ok(c, (const char *[]){ "sh", "-c",
		"cat /proc/[0-9]*/stat", NULL }, &st);
	*zombies = *sleeps = 0;
	for (const char *p = out; (p = strstr(p, ") Z ")); p++)
		(*zombies)++;
	for (const char *p = out; (p = strstr(p, "(sleep) ")); p++)
		(*sleeps)++;
}

/* The main process (sleep, after sh's exec) never waits; the orphaned
 * `sleep 0.1` is reparented to pid 1 and exits.  Without init it stays a
 * zombie: up to 2 s to see it.  With init it may show as one for an
 * instant, between its exit and init's wait (long under qemu TCG): up to
 * 3 s for it to be gone, the main sleep alone left. */
static int orphan_zombies(bool init)
{
	struct rt_spec s;
	base_spec(&s, (const char *[]){ "sh", "-c",
		"sh -c 'sleep 0.1 &'; exec sleep 30", NULL });
	s.init = init;
	struct berth_err err = { 0 };
	struct rt_proc c;
	if (rt_start(&s, &c, &err) < 0)
		fail_msg("rt_start: %s", err.msg);
	int z = 0, sleeps = 0;
	for (int i = 0; i < (init ? 60 : 40); i++) {
		count_procs(&c, &z, &sleeps);
		if (init ? z == 0 && sleeps == 1 : z > 0)
			break;
		usleep(50000);
	}
	stop_container(&c);
	return z;
}

static void test_init_reaps_zombies(void **state)
{
	(void)state;
	/* Without init the test would see one: it can tell. */
	assert_int_equal(orphan_zombies(false), 1);
	assert_int_equal(orphan_zombies(true), 0);
}

static void test_init_is_pid1(void **state)
{
	(void)state;
	struct rt_spec s;
	base_spec(&s, (const char *[]){ "sh", "-c",
		"cat /proc/1/comm; echo $$; grep -E 'NoNewPrivs|Seccomp:|CapEff' /proc/1/status", NULL });
	s.init = true;
	struct berth_err err = { 0 };
	char *out = NULL;
	int st;
	assert_int_equal(run_spec(&s, &out, &st, &err), 0);
	assert_int_equal(st, 0);
	/* Pid 1 carries the container's restrictions too. */
	assert_string_equal(out, "berth-init\n2\nCapEff:\t00000000a80425fb\n"
			    "NoNewPrivs:\t1\nSeccomp:\t2\n");
	free(out);
	/* As a non-root user pid 1 keeps no capabilities. */
	base_spec(&s, (const char *[]){ "grep", "CapEff", "/proc/1/status", NULL });
	s.init = true;
	s.uid = s.gid = 1000;
	assert_int_equal(run_spec(&s, &out, &st, &err), 0);
	assert_string_equal(out, "CapEff:\t0000000000000000\n");
	free(out);
}

static void test_init_forwards_sigterm(void **state)
{
	(void)state;
	struct rt_spec s;
	base_spec(&s, (const char *[]){ "sh", "-c",
		"trap 'exit 3' TERM; echo ready; while :; do sleep 0.05; done", NULL });
	s.init = true;
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	s.stdio[1] = p[1];
	struct berth_err err = { 0 };
	struct rt_proc c;
	int r = rt_start(&s, &c, &err);
	close(p[1]);
	if (r < 0)
		fail_msg("rt_start: %s", err.msg);
	char buf[6] = "";
	assert_int_equal(read(p[0], buf, 6), 6);
	assert_memory_equal(buf, "ready\n", 6);
	close(p[0]);
	assert_int_equal(rt_kill(&c, SIGTERM, &err), 0);
	int st;
	assert_int_equal(rt_wait(&c, &st, &err), 0);
	assert_int_equal(st, 3);
	rt_proc_release(&c);
}

static void test_init_exit_status(void **state)
{
	(void)state;
	struct rt_spec s;
	struct berth_err err = { 0 };
	char *out = NULL;
	int st;
	base_spec(&s, (const char *[]){ "sh", "-c", "exit 7", NULL });
	s.init = true;
	assert_int_equal(run_spec(&s, &out, &st, &err), 0);
	free(out);
	assert_int_equal(st, 7);
	base_spec(&s, (const char *[]){ "sh", "-c", "kill -USR2 $$; sleep 1", NULL });
	s.init = true;
	assert_int_equal(run_spec(&s, &out, &st, &err), 0);
	free(out);
	assert_int_equal(st, 128 + SIGUSR2);
	/* The command's exec failure still reaches us, and nothing runs. */
	base_spec(&s, (const char *[]){ "nope", NULL });
	s.init = true;
	assert_int_equal(run_spec(&s, &out, &st, &err), -ENOENT);
	assert_string_equal(err.msg, "CannotStartContainerError: exec: \"nope\": "
			    "executable file not found in $PATH");
}

/* ---- user resolution, env, capabilities (no containers) ----------------- */

static void expect_user(const char *spec, uid_t uid, gid_t gid, const char *groups)
{
	struct berth_err err = { 0 };
	struct rt_user u;
	if (rt_resolve_user(fx->layerfd, spec, &u, &err) < 0)
		fail_msg("%s: %s", spec, err.msg);
	assert_int_equal(u.uid, uid);
	assert_int_equal(u.gid, gid);
	char got[128] = "";
	for (size_t i = 0; i < u.n_groups; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%u", i ? "," : "",
			 (unsigned)u.groups[i]);
	assert_string_equal(got, groups);
	rt_user_release(&u);
}

static void test_resolve_user(void **state)
{
	(void)state;
	expect_user(NULL, 0, 0, "0");
	expect_user("root", 0, 0, "0");
	expect_user("app", 1000, 1000, "1000,2000");
	expect_user("1000", 1000, 1000, "1000,2000");
	expect_user("1000:2000", 1000, 2000, "2000");
	expect_user("app:extra", 1000, 2000, "2000");
	expect_user("app:tty", 1000, 5, "5");
	expect_user("4242", 4242, 0, "0");
	expect_user("4242:4343", 4242, 4343, "4343");
	struct berth_err err = { 0 };
	struct rt_user u;
	assert_int_equal(rt_resolve_user(fx->layerfd, "nobody", &u, &err), -ENOENT);
	assert_string_equal(err.msg, "user \"nobody\": unable to find user nobody: "
			    "no matching entries in passwd file");
	assert_int_equal(rt_resolve_user(fx->layerfd, "app:nogroup", &u, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "unable to find group nogroup"));
	assert_int_equal(rt_resolve_user(fx->layerfd, "app:", &u, &err), -EINVAL);
	assert_int_equal(rt_resolve_user(fx->layerfd, "99999999999", &u, &err), -ENOENT);
}

static void test_resolve_user_stays_in_root(void **state)
{
	(void)state;
	/* An image whose /etc is a symlink to the host's /etc must still
	 * resolve inside the image (where /etc then does not exist). */
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/evil", fx->dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	_cleanup_close_ int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(symlinkat("/etc", fd, "etc"), 0);
	struct berth_err err = { 0 };
	struct rt_user u;
	/* The host has root in /etc/passwd; in the image "/etc" is the
	 * symlink itself, so the lookup loops instead of leaving it. */
	assert_int_equal(rt_resolve_user(fd, "root", &u, &err), -ELOOP);
	expect_user("0", 0, 0, "0");
}

static void test_env_merge(void **state)
{
	(void)state;
	struct berth_err err = { 0 };
	char **env = NULL;
	const char *img[] = { "A=1", "B=2", NULL }, *def[] = { "B=3", "C=4", NULL };
	assert_int_equal(rt_env_merge(img, def, &env, &err), 0);
	const char *want[] = { "A=1", "B=3", "C=4", "PATH=" RT_DEFAULT_PATH, NULL };
	for (size_t i = 0; want[i]; i++)
		assert_string_equal(env[i], want[i]);
	assert_null(env[4]);
	rt_strv_free(env);
	const char *withpath[] = { "PATH=/x", NULL };
	assert_int_equal(rt_env_merge(withpath, NULL, &env, &err), 0);
	assert_string_equal(env[0], "PATH=/x");
	assert_null(env[1]);
	rt_strv_free(env);
	const char *bad[] = { "NOEQUALS", NULL };
	assert_int_equal(rt_env_merge(NULL, bad, &env, &err), -EINVAL);
	int res;
	assert_int_equal(rt_ulimit_resource("nofile", &res, &err), 0);
	assert_int_equal(res, RLIMIT_NOFILE);
	assert_int_equal(rt_ulimit_resource("bogus", &res, &err), -EINVAL);
}

static void test_caps_compute(void **state)
{
	(void)state;
	struct berth_err err = { 0 };
	uint64_t caps;
	assert_int_equal(rt_caps_compute(NULL, 0, NULL, 0, &caps, &err), 0);
	assert_int_equal(caps, RT_CAPS_DOCKER_DEFAULT);
	const char *all[] = { "ALL" }, *chown[] = { "cap_chown" };
	assert_int_equal(rt_caps_compute(chown, 1, all, 1, &caps, &err), 0);
	assert_int_equal(caps, 1);
	assert_int_equal(rt_caps_compute(all, 1, chown, 1, &caps, &err), 0);
	assert_true(caps & (UINT64_C(1) << 21));
	assert_false(caps & 1);
}

/* The cache hands back exactly what a compile makes, keys on the
 * capability set, and ignores a program others could have written. */
static void test_seccomp_cache(void **state)
{
	(void)state;
	struct berth_err err = { 0 };
	char dir[] = "/tmp/berth-seccomp-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	struct rt_security plain, first, cached, other;
	assert_int_equal(rt_security_prepare(NULL, 0, NULL, 0, -1, &plain, &err), 0);
	assert_int_equal(rt_security_prepare(NULL, 0, NULL, 0, dfd, &first, &err), 0);
	_cleanup_closedir_ DIR *d = fdopendir(dup(dfd));
	char name[256] = "";
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_name[0] != '.')
			snprintf(name, sizeof(name), "%s", e->d_name);
	assert_non_null(strstr(name, "a80425fb"));
	assert_int_equal(rt_security_prepare(NULL, 0, NULL, 0, dfd, &cached, &err), 0);
	assert_int_equal(cached.bpf_len, plain.bpf_len);
	assert_memory_equal(cached.bpf, plain.bpf, plain.bpf_len * sizeof(*plain.bpf));
	const char *admin[] = { "SYS_ADMIN" };
	assert_int_equal(rt_security_prepare(admin, 1, NULL, 0, dfd, &other, &err), 0);
	assert_true(other.bpf_len != plain.bpf_len ||
		    memcmp(other.bpf, plain.bpf, plain.bpf_len * sizeof(*plain.bpf)));
	rt_security_release(&other);
	/* Group-writable: not trusted, compiled again (and replaced). */
	assert_int_equal(fchmodat(dfd, name, 0620, 0), 0);
	assert_int_equal(write_at_len(dfd, name, 8), 0);
	assert_int_equal(rt_security_prepare(NULL, 0, NULL, 0, dfd, &other, &err), 0);
	assert_int_equal(other.bpf_len, plain.bpf_len);
	assert_memory_equal(other.bpf, plain.bpf, plain.bpf_len * sizeof(*plain.bpf));
	rt_security_release(&other);
	rt_security_release(&cached);
	rt_security_release(&first);
	rt_security_release(&plain);
	assert_int_equal(berth_rm_rf_at(AT_FDCWD, dir, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_hardening),
		cmocka_unit_test(test_user_app),
		cmocka_unit_test(test_hostname),
		cmocka_unit_test(test_mount_and_unshare_denied),
		cmocka_unit_test(test_masked_and_readonly_proc),
		cmocka_unit_test(test_pid_namespace),
		cmocka_unit_test(test_host_invisible),
		cmocka_unit_test(test_dev),
		cmocka_unit_test(test_rootfs_writes),
		cmocka_unit_test(test_exec_not_found),
		cmocka_unit_test(test_working_directory),
		cmocka_unit_test(test_exit_status_and_kill),
		cmocka_unit_test(test_bind_and_ulimits),
		cmocka_unit_test(test_cap_add_sys_admin),
		cmocka_unit_test(test_cgroup_join),
		cmocka_unit_test(test_hook_failure_kills_child),
		cmocka_unit_test(test_netns_join),
		cmocka_unit_test(test_bad_spec),
		cmocka_unit_test(test_exec_in),
		cmocka_unit_test(test_exec_in_user_cwd_caps),
		cmocka_unit_test(test_exec_in_errors),
		cmocka_unit_test(test_exec_in_cgroup),
		cmocka_unit_test(test_init_reaps_zombies),
		cmocka_unit_test(test_init_is_pid1),
		cmocka_unit_test(test_init_forwards_sigterm),
		cmocka_unit_test(test_init_exit_status),
		cmocka_unit_test(test_resolve_user),
		cmocka_unit_test(test_resolve_user_stays_in_root),
		cmocka_unit_test(test_env_merge),
		cmocka_unit_test(test_caps_compute),
		cmocka_unit_test(test_seccomp_cache),
		/* Last: cgroup v1 only (the v2 lane's kernel has no pids
		 * hierarchy; v2 clones into the group instead). */
		cmocka_unit_test(test_cgroup_self_join),
	};
	size_t n = ARRAY_SIZE(tests) - (access("/sys/fs/cgroup/pids/tasks", F_OK) != 0);
	return _cmocka_run_group_tests("test_container", tests, n, setup, teardown);
}
