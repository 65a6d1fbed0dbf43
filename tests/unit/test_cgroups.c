/* cgroups/: runs against the real kernel as root.  Test names start with
 * the backend that ran ("v1_…" on the hybrid build hosts, "v2_…" in the VM
 * lane).  Everything lives under <own>/berth-test-<pid>; main() runs the
 * tests in a child process and removes that tree afterwards whatever
 * happened to the child, then checks nothing is left. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sched.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "cgroups/cgroup.h"
#include "common/cleanup.h"

#define MiB (1024ull * 1024)

static char test_root[64];

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct cg_group *mkgroup(struct cg_driver *d, const char *rel, const struct cg_limits *l)
{
	struct berth_err err = { 0 };
	struct cg_group *g = NULL;
	if (cg_group_create(d, rel, l, &g, &err) < 0)
		fail_msg("create %s: %s", rel, err.msg);
	return g;
}

static void destroy_and_check_gone(struct cg_group *g)
{
	char paths[8][512];
	unsigned n = 0;
	for (const char *p; n < 8 && (p = cg_group_path(g, n)); n++)
		snprintf(paths[n], sizeof(paths[n]), "%s", p);
	struct berth_err err = { 0 };
	if (cg_group_destroy(g, &err) < 0)
		fail_msg("destroy: %s", err.msg);
	for (unsigned i = 0; i < n; i++) {
		struct stat st;
		assert_int_equal(stat(paths[i], &st), -1);
		assert_int_equal(errno, ENOENT);
	}
}

/* Reads file from whichever of the group's hierarchies has it. */
static void read_ctl(const struct cg_group *g, const char *file, char *buf, size_t size)
{
	const char *p;
	for (unsigned i = 0; (p = cg_group_path(g, i)); i++) {
		char path[768];
		snprintf(path, sizeof(path), "%s/%s", p, file);
		_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, size - 1);
		assert_true(n >= 0);
		buf[n] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		return;
	}
	fail_msg("no %s in any hierarchy of the group", file);
}

/* Whether any of the group's hierarchies has file. */
static bool has_ctl(const struct cg_group *g, const char *file)
{
	const char *p;
	for (unsigned i = 0; (p = cg_group_path(g, i)); i++) {
		char path[768];
		snprintf(path, sizeof(path), "%s/%s", p, file);
		if (access(path, F_OK) == 0)
			return true;
	}
	return false;
}

typedef int (*child_fn)(void *arg);

/* Forks a child that runs fn only once it is in g. */
static pid_t spawn_in(struct cg_group *g, child_fn fn, void *arg)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;
		close(p[1]);
		_exit(read(p[0], &c, 1) == 1 ? fn(arg) : 100);
	}
	close(p[0]);
	struct berth_err err = { 0 };
	if (cg_group_attach(g, pid, &err) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fail_msg("attach: %s", err.msg);
	}
	assert_int_equal(write(p[1], "x", 1), 1);
	close(p[1]);
	return pid;
}

static int wait_status(pid_t pid)
{
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static int child_pause(void *arg)
{
	(void)arg;
	pause();
	return 0;
}

static void test_create_destroy_leaves_nothing(void **state)
{
	struct cg_driver *d = *state;
	struct cg_limits task = { .cpu_quota = 512, .memory_max = 64 * MiB,
				  .pids_max = CG_TASK_PIDS_DEFAULT };
	struct cg_limits web = { .cpu_shares = 256, .memory_max = 32 * MiB, .memory_low = 16 * MiB };
	struct cg_group *t = mkgroup(d, "task-a", &task);
	struct cg_group *c = mkgroup(d, "task-a/web", &web);
	char buf[128];
	if (cg_driver_version(d) == CG_VERSION_1) {
		read_ctl(t, "cpu.cfs_quota_us", buf, sizeof(buf));
		assert_string_equal(buf, "50000");
		read_ctl(t, "memory.limit_in_bytes", buf, sizeof(buf));
		assert_string_equal(buf, "67108864");
		/* Swap off: memory+swap capped at the memory limit, or, without
		 * swap accounting, no swapping under limit reclaim. */
		if (has_ctl(t, "memory.memsw.limit_in_bytes")) {
			read_ctl(t, "memory.memsw.limit_in_bytes", buf, sizeof(buf));
			assert_string_equal(buf, "67108864");
		} else {
			read_ctl(t, "memory.swappiness", buf, sizeof(buf));
			assert_string_equal(buf, "0");
		}
		read_ctl(c, "cpu.shares", buf, sizeof(buf));
		assert_string_equal(buf, "256");
		read_ctl(c, "memory.soft_limit_in_bytes", buf, sizeof(buf));
		assert_string_equal(buf, "16777216");
	} else {
		read_ctl(t, "cpu.max", buf, sizeof(buf));
		assert_string_equal(buf, "50000 100000");
		read_ctl(t, "memory.max", buf, sizeof(buf));
		assert_string_equal(buf, "67108864");
		if (has_ctl(t, "memory.swap.max")) {
			read_ctl(t, "memory.swap.max", buf, sizeof(buf));
			assert_string_equal(buf, "0");
		}
		read_ctl(c, "cpu.weight", buf, sizeof(buf));
		assert_string_equal(buf, "10");  /* 1 + 254 * 9999 / 262142 */
		read_ctl(c, "memory.low", buf, sizeof(buf));
		assert_string_equal(buf, "16777216");
	}
	read_ctl(t, "pids.max", buf, sizeof(buf));
	assert_string_equal(buf, "4096");

	struct berth_err err = { 0 };
	struct cg_group *dup = NULL;
	assert_int_equal(cg_group_create(d, "task-a", &task, &dup, &err), -EEXIST);
	assert_int_equal(cg_group_create(d, "task-a/../x", &task, &dup, &err), -EINVAL);
	assert_int_equal(cg_group_create(d, "task-a//x", &task, &dup, &err), -EINVAL);
	assert_int_equal(cg_group_create(d, "", &task, &dup, &err), -EINVAL);
	assert_int_equal(cg_group_create(d, "nope/x", &task, &dup, &err), -ENOENT);

	pid_t pid = spawn_in(c, child_pause, NULL);
	cg_group_free(c);
	destroy_and_check_gone(t);  /* kills the container's process too */
	int status = wait_status(pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* Opens each node of the directory arg in turn; bit i of the exit status
 * is set when node i opened, and the status is 0x80 | i when node i failed
 * with anything but EPERM (the device cgroup's answer). */
static const struct { const char *name; mode_t type; unsigned major, minor; } dev_probe[] = {
	{ "null", S_IFCHR, 1, 3 }, { "urandom", S_IFCHR, 1, 9 }, { "tty", S_IFCHR, 5, 0 },
	{ "pts9", S_IFCHR, 136, 9 }, { "mem", S_IFCHR, 1, 1 }, { "loop0", S_IFBLK, 7, 0 },
};

static int child_open_nodes(void *arg)
{
	int dirfd = open(arg, O_PATH | O_DIRECTORY | O_CLOEXEC), opened = 0;
	for (unsigned i = 0; i < ARRAY_SIZE(dev_probe); i++) {
		int fd = openat(dirfd, dev_probe[i].name, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0)
			opened |= 1 << i;
		else if (errno != EPERM && errno != ENXIO && errno != EIO && errno != ENODEV)
			return 0x80 | (int)i;
		/* ENXIO and the like: the cgroup let the open through to a
		 * driver that has no such device, which counts as allowed. */
		else if (errno != EPERM)
			opened |= 1 << i;
		if (fd >= 0)
			close(fd);
	}
	return opened;
}

static void test_device_allowlist(void **state)
{
	struct cg_driver *d = *state;
	struct cg_limits task = { .device_allowlist = true }, none = { 0 };
	char dir[] = "/tmp/berth-test-devXXXXXX";
	assert_non_null(mkdtemp(dir));
	int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(dirfd >= 0);
	for (unsigned i = 0; i < ARRAY_SIZE(dev_probe); i++)
		assert_int_equal(mknodat(dirfd, dev_probe[i].name, dev_probe[i].type | 0600,
					 makedev(dev_probe[i].major, dev_probe[i].minor)), 0);
	struct cg_group *t = mkgroup(d, "task-dev", &task);
	struct cg_group *c = mkgroup(d, "task-dev/web", &none);
	struct cg_group *free_task = mkgroup(d, "task-free", &none);
	if (cg_driver_version(d) == CG_VERSION_1) {
		char buf[128];
		read_ctl(c, "devices.list", buf, sizeof(buf));
		assert_string_equal(buf, "c *:* m");  /* the first line: inherited */
	}
	/* In the container's group: null, urandom, tty and pts open; mem and
	 * the loop device do not.  mknod itself is allowed. */
	int status = wait_status(spawn_in(c, child_open_nodes, dir));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0x0f);
	/* A group without the list: everything reaches its driver. */
	status = wait_status(spawn_in(free_task, child_open_nodes, dir));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0x3f);
	cg_group_free(c);
	destroy_and_check_gone(t);
	destroy_and_check_gone(free_task);
	for (unsigned i = 0; i < ARRAY_SIZE(dev_probe); i++)
		unlinkat(dirfd, dev_probe[i].name, 0);
	close(dirfd);
	assert_int_equal(rmdir(dir), 0);
}

static int child_touch_200mib(void *arg)
{
	(void)arg;
	size_t len = 200 * MiB;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 2;
	for (size_t i = 0; i < len; i += 4096)
		p[i] = 1;
	return 0;  /* not reached under a 64 MiB limit */
}

static void test_oom_kill_detected(void **state)
{
	struct cg_driver *d = *state;
	struct cg_limits task = { .memory_max = 64 * MiB, .pids_max = CG_TASK_PIDS_DEFAULT };
	struct cg_limits none = { 0 };
	struct cg_group *t = mkgroup(d, "task-oom", &task);
	struct cg_group *c = mkgroup(d, "task-oom/app", &none);
	struct berth_err err = { 0 };
	int tfd, cfd;
	uint64_t kills = 1;
	assert_int_equal(cg_group_oom_fd(t, &tfd, &err), 0);
	assert_int_equal(cg_group_oom_fd(c, &cfd, &err), 0);
	assert_int_equal(cg_group_oom_kills(c, &kills, &err), 0);
	assert_int_equal(kills, 0);

	int status = wait_status(spawn_in(c, child_touch_200mib, NULL));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	struct pollfd p[2] = { { .fd = tfd, .events = POLLIN }, { .fd = cfd, .events = POLLIN } };
	assert_int_equal(poll(&p[0], 1, 2000), 1);
	assert_int_equal(poll(&p[1], 1, 2000), 1);
	assert_int_equal(cg_group_oom_kills(c, &kills, &err), 0);
	assert_true(kills >= 1);
	assert_int_equal(cg_group_oom_kills(t, &kills, &err), 0);
	assert_true(kills >= 1);  /* the task sees its container's kill */
	assert_int_equal(poll(&p[1], 1, 0), 0);  /* reading the count drained it */
	cg_group_free(c);
	destroy_and_check_gone(t);
}

static int child_busy_3s(void *arg)
{
	(void)arg;
	int64_t end = mono_ms() + 3000;
	volatile uint64_t x = 0;
	while (mono_ms() < end)
		x++;
	return 0;
}

/* One 3 s busy loop in t: the CPUs it got, from the cgroup's usage. */
static double busy_share(struct cg_group *t, uint64_t *ret_throttled)
{
	struct berth_err err = { 0 };
	struct cg_stats before, after;
	assert_int_equal(cg_group_stats(t, &before, &err), 0);
	int64_t start = mono_ms();
	int status = wait_status(spawn_in(t, child_busy_3s, NULL));
	int64_t wall_ms = mono_ms() - start;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(cg_group_stats(t, &after, &err), 0);
	double cpus = (double)(after.cpu_usage_usec - before.cpu_usage_usec) / 1000.0 / (double)wall_ms;
	*ret_throttled = after.nr_throttled - before.nr_throttled;
	print_message("cpu 256 units: %.3f CPUs over %" PRId64 " ms, throttled %" PRIu64 " times\n",
		      cpus, wall_ms, *ret_throttled);
	return cpus;
}

/* The quota is a cap: going over it fails at once.  Getting less than
 * 0.2 CPU means other load on the (shared, 2-core) host starved the loop,
 * not that the limit is wrong, so that measurement is repeated (3 tries). */
static void test_cpu_quota_quarter(void **state)
{
	struct cg_driver *d = *state;
	struct cg_limits task = { .cpu_quota = 256, .pids_max = CG_TASK_PIDS_DEFAULT };
	struct cg_group *t = mkgroup(d, "task-cpu", &task);
	double cpus = 0;
	uint64_t throttled = 0;
	for (int attempt = 0; attempt < 3; attempt++) {
		cpus = busy_share(t, &throttled);
		assert_true(cpus <= 0.25 * 1.2);
		if (cpus >= 0.25 * 0.8)
			break;
	}
	assert_true(cpus >= 0.25 * 0.8);
	assert_true(throttled > 0);
	destroy_and_check_gone(t);
}

struct bomb_pipes {
	int result[2];  /* child -> test: number of forks that succeeded */
	int go[2];      /* test -> child: let everything exit */
	int hold[2];    /* bomb processes block on hold[0] until the child closes hold[1] */
};

static int child_fork_bomb(void *arg)
{
	struct bomb_pipes *bp = arg;
	int n = 0;
	for (;;) {
		pid_t pid = fork();
		if (pid < 0)
			break;
		if (pid == 0) {
			char c;
			close(bp->hold[1]);
			_exit(read(bp->hold[0], &c, 1) == 0 ? 0 : 1);
		}
		n++;
	}
	int fork_errno = errno;
	char c;
	if (write(bp->result[1], &n, sizeof(n)) != sizeof(n) || read(bp->go[0], &c, 1) != 1)
		return 3;
	close(bp->hold[1]);
	while (wait(NULL) > 0)
		;
	return fork_errno == EAGAIN ? 0 : 4;
}

static void test_fork_bomb_held(void **state)
{
	struct cg_driver *d = *state;
	struct cg_limits task = { .pids_max = 64 };
	struct cg_group *t = mkgroup(d, "task-bomb", &task);
	struct bomb_pipes bp;
	assert_int_equal(pipe2(bp.result, O_CLOEXEC), 0);
	assert_int_equal(pipe2(bp.go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(bp.hold, O_CLOEXEC), 0);
	pid_t pid = spawn_in(t, child_fork_bomb, &bp);
	close(bp.hold[0]);
	close(bp.hold[1]);
	int n = 0;
	assert_int_equal(read(bp.result[0], &n, sizeof(n)), sizeof(n));
	struct cg_stats st;
	struct berth_err err = { 0 };
	assert_int_equal(cg_group_stats(t, &st, &err), 0);
	print_message("fork bomb: %d forks, pids.current %" PRIu64 "\n", n, st.pids_current);
	assert_int_equal(st.pids_current, 64);
	assert_int_equal(n, 63);
	assert_int_equal(write(bp.go[1], "x", 1), 1);
	int status = wait_status(pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* The host is fine: this process still forks. */
	pid_t probe = fork();
	if (probe == 0)
		_exit(0);
	assert_true(probe > 0);
	wait_status(probe);
	for (int i = 0; i < 2; i++) {
		close(bp.result[i]);
		close(bp.go[i]);
	}
	destroy_and_check_gone(t);
}

/* Forks 3 children with one grandchild each, all pausing; writes one byte
 * to *arg (a pipe fd) per process once it runs. */
static int child_tree(void *arg)
{
	int ready = *(int *)arg;
	for (int i = 0; i < 3; i++) {
		if (fork() == 0) {
			if (fork() == 0) {
				(void)!write(ready, "g", 1);
				pause();
				_exit(0);
			}
			(void)!write(ready, "c", 1);
			pause();
			_exit(0);
		}
	}
	(void)!write(ready, "r", 1);
	pause();
	return 0;
}

static void test_kill_all_kills_tree(void **state)
{
	struct cg_driver *d = *state;
	struct cg_limits none = { 0 };
	struct cg_group *t = mkgroup(d, "task-tree", &none);
	struct cg_group *c = mkgroup(d, "task-tree/app", &none);
	int ready[2];
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	/* Orphaned grandchildren come back to this process to be counted. */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	spawn_in(c, child_tree, &ready[1]);
	close(ready[1]);
	char buf[7];
	for (size_t got = 0; got < sizeof(buf);) {
		ssize_t k = read(ready[0], buf + got, sizeof(buf) - got);
		assert_true(k > 0);
		got += (size_t)k;
	}
	close(ready[0]);
	struct berth_err err = { 0 };
	if (cg_group_kill_all(t, &err) < 0)
		fail_msg("kill_all: %s", err.msg);
	int killed = 0, status;
	while (waitpid(-1, &status, 0) > 0)
		killed += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
	assert_int_equal(killed, 7);
	struct cg_stats st;
	assert_int_equal(cg_group_stats(t, &st, &err), 0);
	assert_int_equal(st.pids_current, 0);
	cg_group_free(c);
	destroy_and_check_gone(t);
}

struct stats_pipes {
	int ready[2];
	int go[2];
};

static int child_use_16mib_and_cpu(void *arg)
{
	struct stats_pipes *sp = arg;
	size_t len = 16 * MiB;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 2;
	memset(p, 1, len);
	struct timespec ts;
	do
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	while (ts.tv_sec == 0 && ts.tv_nsec < 200000000);
	char c;
	if (write(sp->ready[1], "r", 1) != 1 || read(sp->go[0], &c, 1) != 1)
		return 3;
	return 0;
}

static void test_stats_readable(void **state)
{
	struct cg_driver *d = *state;
	struct cg_limits task = { .memory_max = 128 * MiB, .pids_max = CG_TASK_PIDS_DEFAULT };
	struct cg_group *t = mkgroup(d, "task-stats", &task);
	struct stats_pipes sp;
	assert_int_equal(pipe2(sp.ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(sp.go, O_CLOEXEC), 0);
	pid_t pid = spawn_in(t, child_use_16mib_and_cpu, &sp);
	char c;
	assert_int_equal(read(sp.ready[0], &c, 1), 1);
	struct cg_stats st;
	struct berth_err err = { 0 };
	assert_int_equal(cg_group_stats(t, &st, &err), 0);
	print_message("stats: memory %" PRIu64 " peak %" PRIu64 " cpu %" PRIu64 " us pids %" PRIu64 "\n",
		      st.memory_current, st.memory_peak, st.cpu_usage_usec, st.pids_current);
	assert_true(st.memory_current >= 16 * MiB);
	assert_true(st.memory_peak >= st.memory_current);
	assert_true(st.cpu_usage_usec >= 150000);
	assert_int_equal(st.pids_current, 1);
	assert_int_equal(write(sp.go[1], "g", 1), 1);
	int status = wait_status(pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (int i = 0; i < 2; i++) {
		close(sp.ready[i]);
		close(sp.go[i]);
	}
	destroy_and_check_gone(t);
}

/* A second tree with live processes, a stale handle reopened, and the
 * whole tree removed by cg_driver_remove. */
static void test_reopen_and_driver_remove(void **state)
{
	(void)state;
	char name[80];
	snprintf(name, sizeof(name), "%s-rm", test_root);
	struct cg_driver *d = NULL;
	struct berth_err err = { 0 };
	if (cg_driver_open(name, CG_VERSION_AUTO, &d, &err) < 0)
		fail_msg("open %s: %s", name, err.msg);
	struct cg_limits none = { 0 };
	struct cg_group *t = mkgroup(d, "task-x", &none);
	cg_group_free(mkgroup(d, "task-x/c", &none));
	char root[512];
	snprintf(root, sizeof(root), "%s", cg_group_path(t, 0));
	*strrchr(root, '/') = '\0';
	cg_group_free(t);
	struct cg_group *c = NULL;
	assert_int_equal(cg_group_open(d, "task-x/c", &c, &err), 0);
	pid_t pid = spawn_in(c, child_pause, NULL);
	cg_group_free(c);
	if (cg_driver_remove(d, &err) < 0)
		fail_msg("remove: %s", err.msg);
	int status = wait_status(pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	struct stat st;
	assert_int_equal(stat(root, &st), -1);
	assert_int_equal(errno, ENOENT);
	cg_driver_free(d);
}

static void assert_gone(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(errno, ENOENT);
}

/* What a shim killed with SIGKILL leaves: its task group with processes in
 * it (the killed one stays a zombie until we reap it), or a half-made group
 * in some hierarchies only, or nothing; cg_group_remove() takes each. */
static void test_remove_leftover_group(void **state)
{
	struct cg_driver *d = *state;
	struct cg_limits none = { 0 };
	struct berth_err err = { 0 };
	struct cg_group *t = mkgroup(d, "task-left", &none);
	struct cg_group *c = mkgroup(d, "task-left/c", &none);
	pid_t pid = spawn_in(c, child_pause, NULL);
	char paths[8][512];
	unsigned n = 0;
	for (const char *p; n < 4 && (p = cg_group_path(t, n)); n++)
		snprintf(paths[n], sizeof(paths[n]), "%s", p);
	cg_group_free(c);
	cg_group_free(t);
	if (cg_group_remove(d, "task-left", &err) < 0)
		fail_msg("remove: %s", err.msg);
	int status = wait_status(pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	for (unsigned i = 0; i < n; i++)
		assert_gone(paths[i]);
	/* Half-made: in the last hierarchy only (v2 has just the one). */
	t = mkgroup(d, "task-left", &none);
	for (unsigned i = 0; i + 1 < n; i++)
		assert_int_equal(rmdir(paths[i]), 0);
	cg_group_free(t);
	if (cg_group_remove(d, "task-left", &err) < 0)
		fail_msg("remove half-made: %s", err.msg);
	assert_gone(paths[n - 1]);
	if (cg_group_remove(d, "task-left", &err) < 0)
		fail_msg("remove nothing: %s", err.msg);
}

static void test_clone_into_cgroup(void **state)
{
	struct cg_driver *d = *state;
	struct cg_limits none = { 0 };
	struct cg_group *t = mkgroup(d, "task-clone", &none);
	if (cg_driver_version(d) == CG_VERSION_1) {
		/* v1 has no directory fd to clone into: the caller must fall
		 * back to writing cgroup.procs, so the driver must say so. */
		assert_int_equal(cg_group_dirfd(t), -EOPNOTSUPP);
		destroy_and_check_gone(t);
		return;
	}
	struct clone_args ca = { .flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD,
				 .cgroup = (uint64_t)cg_group_dirfd(t) };
	long pid = syscall(SYS_clone3, &ca, sizeof(ca));
	assert_true(pid >= 0);
	if (pid == 0) {
		pause();
		_exit(0);
	}
	char buf[64], want[32];
	read_ctl(t, "cgroup.procs", buf, sizeof(buf));
	snprintf(want, sizeof(want), "%ld", pid);
	assert_string_equal(buf, want);
	destroy_and_check_gone(t);
	int status = wait_status((pid_t)pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* Runs in a child (no cmocka asserts here): already moved into the
 * cgroup at own, it opens a driver, which must move it into <own>/berth/agent
 * to enable controllers; a grandchild (like a shim) must find the same tree. */
static int delegated_child(const char *own)
{
	struct cg_driver *d = NULL;
	struct berth_err err = { 0 };
	if (cg_driver_open("berth", CG_VERSION_2, &d, &err) < 0) {
		fprintf(stderr, "delegated open: %s\n", err.msg);
		return 10;
	}
	char want[640], got[640] = "";
	snprintf(want, sizeof(want), "0::%s/berth/agent\n", own + strlen("/sys/fs/cgroup"));
	_cleanup_close_ int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, got, sizeof(got) - 1) < 0 || strcmp(got, want))
		return 11;
	pid_t shim = fork();
	if (shim == 0) {
		struct cg_driver *d2 = NULL;
		struct cg_group *g = NULL;
		struct cg_limits l = { .pids_max = 16 };
		char path[640];
		snprintf(path, sizeof(path), "%s/berth/task-1", own);
		int ok = cg_driver_open("berth", CG_VERSION_2, &d2, &err) == 0 &&
			 cg_group_create(d2, "task-1", &l, &g, &err) == 0 &&
			 !strcmp(cg_group_path(g, 0), path) && cg_group_destroy(g, &err) == 0;
		cg_driver_free(d2);
		_exit(ok ? 0 : 12);
	}
	int status = 1;
	waitpid(shim, &status, 0);
	/* This process is in the agent leaf: the tree cannot go away. */
	int r = cg_driver_remove(d, &err);
	cg_driver_free(d);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return 13;
	return r == -EBUSY ? 0 : 14;
}

static void test_delegation_moves_into_agent_leaf(void **state)
{
	struct cg_driver *d = *state;
	struct cg_limits none = { 0 };
	struct cg_group *g = mkgroup(d, "probe-own", &none);
	char probe[512], own[600];
	snprintf(probe, sizeof(probe), "%s", cg_group_path(g, 0));
	destroy_and_check_gone(g);
	*strrchr(probe, '/') = '\0';
	*strrchr(probe, '/') = '\0';
	/* A cgroup like a systemd service with Delegate=yes: processes in it,
	 * controllers available, none enabled for children. */
	snprintf(own, sizeof(own), "%s/%s-deleg", probe, test_root);
	assert_int_equal(mkdir(own, 0755), 0);
	pid_t pid = fork();
	if (pid == 0) {
		char procs[640];
		snprintf(procs, sizeof(procs), "%s/cgroup.procs", own);
		int fd = open(procs, O_WRONLY | O_CLOEXEC);
		_exit(fd >= 0 && dprintf(fd, "%d", (int)getpid()) > 0 ? delegated_child(own) : 9);
	}
	int status = wait_status(pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	const char *leftovers[] = { "/berth/agent", "/berth", "" };
	for (size_t i = 0; i < ARRAY_SIZE(leftovers); i++) {
		char path[640];
		snprintf(path, sizeof(path), "%s%s", own, leftovers[i]);
		assert_int_equal(rmdir(path), 0);
	}
}

static int run_all(struct cg_driver *d)
{
	struct CMUnitTest tests[] = {
		cmocka_unit_test_prestate(test_create_destroy_leaves_nothing, d),
		cmocka_unit_test_prestate(test_oom_kill_detected, d),
		cmocka_unit_test_prestate(test_cpu_quota_quarter, d),
		cmocka_unit_test_prestate(test_fork_bomb_held, d),
		cmocka_unit_test_prestate(test_kill_all_kills_tree, d),
		cmocka_unit_test_prestate(test_stats_readable, d),
		cmocka_unit_test_prestate(test_reopen_and_driver_remove, d),
		cmocka_unit_test_prestate(test_remove_leftover_group, d),
		cmocka_unit_test_prestate(test_clone_into_cgroup, d),
		cmocka_unit_test_prestate(test_device_allowlist, d),
		/* v2 only: v1 has no delegation model (the tests/vm lane runs it). */
		cmocka_unit_test_prestate(test_delegation_moves_into_agent_leaf, d),
	};
	size_t n = ARRAY_SIZE(tests) - (cg_driver_version(d) == CG_VERSION_1);
	const char *v = cg_driver_version(d) == CG_VERSION_2 ? "v2" : "v1";
	char names[ARRAY_SIZE(tests)][96];
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "%s_%s", v, tests[i].name + strlen("test_"));
		tests[i].name = names[i];
	}
	char group[32];
	snprintf(group, sizeof(group), "cgroups-%s", v);
	return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
}

/* The driver roots, found through a throwaway group, for the final check. */
static unsigned root_paths(struct cg_driver *d, char roots[8][512])
{
	struct cg_limits none = { 0 };
	struct cg_group *g = NULL;
	struct berth_err err = { 0 };
	if (cg_group_create(d, "probe", &none, &g, &err) < 0) {
		fprintf(stderr, "test_cgroups: %s\n", err.msg);
		return 0;
	}
	unsigned n = 0;
	for (const char *p; n < 8 && (p = cg_group_path(g, n)); n++) {
		snprintf(roots[n], 512, "%s", p);
		*strrchr(roots[n], '/') = '\0';
	}
	cg_group_destroy(g, &err);
	return n;
}

/* Removes the test tree d (name NULL) or a sibling tree a test made. */
static int cleanup_tree(struct cg_driver *d, const char *name)
{
	struct berth_err err = { 0 };
	struct cg_driver *other = NULL;
	int r = name ? cg_driver_open(name, cg_driver_version(d), &other, &err) : 0;
	if (r == 0)
		r = cg_driver_remove(other ? other : d, &err);
	if (r < 0)
		fprintf(stderr, "test_cgroups: cleanup: %s\n", err.msg);
	cg_driver_free(other);
	return r;
}

int main(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "test_cgroups: needs root (real cgroups); skipped\n");
		return 77;
	}
	snprintf(test_root, sizeof(test_root), "berth-test-%d", (int)getpid());
	struct cg_driver *d = NULL;
	struct berth_err err = { 0 };
	if (cg_driver_open(test_root, CG_VERSION_AUTO, &d, &err) < 0) {
		fprintf(stderr, "test_cgroups: %s\n", err.msg);
		return 1;
	}
	char roots[8][512];
	unsigned nroots = root_paths(d, roots);
	/* Orphans of a test that died half-way come back here to be reaped. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		int failed = run_all(d);
		cg_driver_free(d);
		return failed ? 1 : 0;
	}
	int status = 1;
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		status = 1;
	int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
	char rm_name[80];
	snprintf(rm_name, sizeof(rm_name), "%s-rm", test_root);
	char deleg_name[80];
	snprintf(deleg_name, sizeof(deleg_name), "%s-deleg", test_root);
	if (cleanup_tree(d, rm_name) < 0 || cleanup_tree(d, deleg_name) < 0 ||
	    cleanup_tree(d, NULL) < 0)
		rc = 1;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;  /* cleanup killed them: only zombies are left */
	for (unsigned i = 0; i < nroots; i++) {
		struct stat st;
		if (stat(roots[i], &st) == 0 || errno != ENOENT) {
			fprintf(stderr, "test_cgroups: %s is still there\n", roots[i]);
			rc = 1;
		}
	}
	if (nroots == 0)
		rc = 1;
	cg_driver_free(d);
	return rc;
}
