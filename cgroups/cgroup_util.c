/* cgroupfs file access, subtree walks and the SIGKILL loop shared by both
 * backends.  cgroupfs is kernel-provided, so plain openat() on it is fine;
 * what needs care is that its files report st_size 0 (read to EOF) and that
 * control files take one value per write(2). */
#include "cgroups/cgroup_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/time.h"

/* cgroup.procs of a group under pids.max 4096 is < 32 KiB; leave room. */
#define CG_READ_MAX (1u << 20)
/* pidfds held at once while waiting for killed processes. */
#define CG_KILL_CHUNK 128
/* Kill rounds before giving up on a subtree that keeps refilling. */
#define CG_KILL_ROUNDS 64

int cg_ms_left(int64_t deadline)
{
	int64_t left = deadline - berth_mono_ms();
	return left < 0 ? 0 : (int)left;
}

bool cg_has_token(const char *s, const char *tok, char sep)
{
	size_t len = strlen(tok);
	for (const char *p = s; p;) {
		const char *end = strchr(p, sep);
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == len && !strncmp(p, tok, len))
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

int cg_hier_of(const struct cg_driver *d, unsigned ctl)
{
	for (unsigned i = 0; i < d->nhier; i++)
		if (d->hier[i].ctls & ctl)
			return (int)i;
	return -1;
}

int cg_read_at(int dirfd, const char *dir, const char *name, size_t max, char **ret,
	       struct berth_err *err)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return berth_errnof(err, errno, "cgroup %s: read %s", dir, name);
	size_t cap = 4096, len = 0;
	_cleanup_free_ char *buf = malloc(cap);
	if (!buf)
		return berth_errf(err, ENOMEM, "cgroup %s: read %s: out of memory", dir, name);
	for (;;) {
		if (len + 1 == cap) {
			if (cap >= max)
				return berth_errf(err, EFBIG, "cgroup %s: %s is over %zu bytes",
						  dir, name, max);
			char *bigger = realloc(buf, cap * 2);
			if (!bigger)
				return berth_errf(err, ENOMEM, "cgroup %s: read %s: out of memory",
						  dir, name);
			buf = bigger;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return berth_errnof(err, errno, "cgroup %s: read %s", dir, name);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	return 0;
}

static int parse_u64(const char *s, uint64_t *ret)
{
	if (!strncmp(s, "max", 3) && (s[3] == '\0' || s[3] == '\n')) {
		*ret = UINT64_MAX;
		return 0;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || (*end != '\0' && *end != '\n' && *end != ' '))
		return -EINVAL;
	*ret = v;
	return 0;
}

int cg_read_u64_at(int dirfd, const char *dir, const char *name, uint64_t *ret,
		   struct berth_err *err)
{
	_cleanup_free_ char *buf = NULL;
	int r = cg_read_at(dirfd, dir, name, CG_READ_MAX, &buf, err);
	if (r < 0)
		return r;
	if (parse_u64(buf, ret) < 0)
		return berth_errf(err, EINVAL, "cgroup %s: %s: not a number: \"%.32s\"", dir, name, buf);
	return 0;
}

int cg_read_key_at(int dirfd, const char *dir, const char *name, const char *key,
		   uint64_t *ret, struct berth_err *err)
{
	_cleanup_free_ char *buf = NULL;
	int r = cg_read_at(dirfd, dir, name, CG_READ_MAX, &buf, err);
	if (r < 0)
		return r;
	size_t klen = strlen(key);
	for (char *line = buf; *line;) {
		if (!strncmp(line, key, klen) && line[klen] == ' ') {
			if (parse_u64(line + klen + 1, ret) < 0)
				return berth_errf(err, EINVAL, "cgroup %s: %s: bad value for %s",
						  dir, name, key);
			return 0;
		}
		char *nl = strchr(line, '\n');
		if (!nl)
			break;
		line = nl + 1;
	}
	return berth_errf(err, ENOENT, "cgroup %s: %s has no \"%s\"", dir, name, key);
}

int cg_write_at(int dirfd, const char *dir, const char *name, const char *value,
		struct berth_err *err)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return berth_errnof(err, errno, "cgroup %s: open %s", dir, name);
	size_t len = strlen(value);
	ssize_t n;
	do
		n = write(fd, value, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return berth_errnof(err, errno, "cgroup %s: write \"%s\" to %s", dir, value, name);
	if ((size_t)n != len)
		return berth_errf(err, EIO, "cgroup %s: short write to %s", dir, name);
	return 0;
}

int cg_write_u64_at(int dirfd, const char *dir, const char *name, uint64_t value,
		    struct berth_err *err)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRIu64, value);
	return cg_write_at(dirfd, dir, name, buf, err);
}

/* Calls fn on dirfd and then on every cgroup below it, parents first. */
int cg_walk(int dirfd, const char *dir, cg_walk_fn fn, void *arg, struct berth_err *err)
{
	int r = fn(dirfd, dir, arg, err);
	if (r < 0)
		return r;
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return berth_errnof(err, errno, "cgroup %s: open", dir);
	_cleanup_closedir_ DIR *dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return berth_errnof(err, errno, "cgroup %s: list", dir);
	}
	struct dirent *de;
	while ((errno = 0, de = readdir(dp))) {
		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		_cleanup_close_ int child = openat(dirfd, de->d_name,
						   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (child < 0 && errno == ENOENT)
			continue; /* removed meanwhile */
		if (child < 0)
			return berth_errnof(err, errno, "cgroup %s/%s: open", dir, de->d_name);
		_cleanup_free_ char *sub = NULL;
		if (asprintf(&sub, "%s/%s", dir, de->d_name) < 0)
			return berth_errf(err, ENOMEM, "cgroup %s: out of memory", dir);
		r = cg_walk(child, sub, fn, arg, err);
		if (r < 0)
			return r;
	}
	if (errno)
		return berth_errnof(err, errno, "cgroup %s: list", dir);
	return 0;
}

int cg_rmdir_tree(int parentfd, const char *name, const char *path, struct berth_err *err)
{
	int fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		return berth_errnof(err, errno, "cgroup %s: open", path);
	_cleanup_closedir_ DIR *dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return berth_errnof(err, errno, "cgroup %s: list", path);
	}
	struct dirent *de;
	while ((errno = 0, de = readdir(dp))) {
		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		_cleanup_free_ char *sub = NULL;
		if (asprintf(&sub, "%s/%s", path, de->d_name) < 0)
			return berth_errf(err, ENOMEM, "cgroup %s: out of memory", path);
		int r = cg_rmdir_tree(dirfd(dp), de->d_name, sub, err);
		if (r < 0)
			return r;
	}
	if (errno)
		return berth_errnof(err, errno, "cgroup %s: list", path);
	/* A cgroup directory is removable with its control files in it. */
	if (unlinkat(parentfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return berth_errnof(err, errno, "cgroup %s: rmdir", path);
	return 0;
}

struct pidvec {
	pid_t *v;
	size_t n, cap;
};

static int collect_procs(int dirfd, const char *dir, void *arg, struct berth_err *err)
{
	struct pidvec *pv = arg;
	_cleanup_free_ char *buf = NULL;
	int r = cg_read_at(dirfd, dir, "cgroup.procs", CG_READ_MAX, &buf, err);
	if (r < 0)
		return r;
	for (char *s = buf, *end; *s; s = end) {
		long pid = strtol(s, &end, 10);
		if (end == s)
			break;
		if (pv->n == pv->cap) {
			size_t cap = pv->cap ? pv->cap * 2 : 64;
			pid_t *v = realloc(pv->v, cap * sizeof(*v));
			if (!v)
				return berth_errf(err, ENOMEM, "cgroup %s: out of memory", dir);
			pv->v = v;
			pv->cap = cap;
		}
		/* Killing the caller would never return an answer. */
		if (pid == getpid())
			return berth_errf(err, EDEADLK, "cgroup %s: holds the calling process %ld",
					  dir, pid);
		pv->v[pv->n++] = (pid_t)pid;
	}
	return 0;
}

/* Waits until every pidfd in p[0..n) polls readable (the process exited). */
static int wait_pidfds(struct pollfd *p, size_t n, int64_t deadline, const char *dir,
		       struct berth_err *err)
{
	size_t left = 0;
	for (size_t i = 0; i < n; i++)
		left += p[i].fd >= 0;
	while (left > 0) {
		int k = poll(p, n, cg_ms_left(deadline));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return berth_errnof(err, errno, "cgroup %s: wait for killed processes", dir);
		if (k == 0)
			return berth_errf(err, ETIMEDOUT, "cgroup %s: %zu killed processes did not exit "
					  "within %d ms", dir, left, CG_WAIT_MS);
		for (size_t i = 0; i < n; i++) {
			if (p[i].fd >= 0 && p[i].revents) {
				close(p[i].fd);
				p[i].fd = -1;
				left--;
			}
		}
	}
	return 0;
}

/* Kills pids[0..n) through pidfds (no pid-reuse race between open and
 * signal) and waits for them to exit. */
static int kill_chunk(const pid_t *pids, size_t n, int64_t deadline, const char *dir,
		      struct berth_err *err)
{
	struct pollfd p[CG_KILL_CHUNK];
	size_t np = 0;
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		int fd = pidfd_open(pids[i], 0);
		if (fd < 0) {
			if (errno != ESRCH)
				r = berth_errnof(err, errno, "cgroup %s: pidfd_open %d", dir, (int)pids[i]);
			continue;
		}
		p[np++] = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (pidfd_send_signal(fd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
			r = berth_errnof(err, errno, "cgroup %s: kill %d", dir, (int)pids[i]);
	}
	if (r == 0)
		r = wait_pidfds(p, np, deadline, dir, err);
	for (size_t i = 0; i < np; i++)
		if (p[i].fd >= 0)
			close(p[i].fd);
	return r;
}

int cg_kill_tree(int dirfd, const char *dir, struct berth_err *err)
{
	int64_t deadline = berth_mono_ms() + CG_WAIT_MS;
	for (int round = 0; round < CG_KILL_ROUNDS; round++) {
		struct pidvec pv = { 0 };
		int r = cg_walk(dirfd, dir, collect_procs, &pv, err);
		for (size_t i = 0; r == 0 && i < pv.n; i += CG_KILL_CHUNK) {
			size_t n = pv.n - i < CG_KILL_CHUNK ? pv.n - i : CG_KILL_CHUNK;
			r = kill_chunk(pv.v + i, n, deadline, dir, err);
		}
		free(pv.v);
		if (r < 0 || pv.n == 0)
			return r;
	}
	return berth_errf(err, EBUSY, "cgroup %s: processes still appearing after %d kill rounds",
			  dir, CG_KILL_ROUNDS);
}
