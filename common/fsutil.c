#include "common/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

int berth_mkdir_p(const char *path, mode_t mode, struct berth_err *err)
{
	_cleanup_free_ char *p = strdup(path);
	if (!p)
		return berth_errf(err, ENOMEM, "mkdir %s: out of memory", path);
	for (char *s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return berth_errnof(err, errno, "mkdir %s", p);
		*s = c;
		if (c == '\0')
			break;
	}
	struct stat st;
	if (stat(path, &st) < 0)
		return berth_errnof(err, errno, "mkdir %s", path);
	if (!S_ISDIR(st.st_mode))
		return berth_errf(err, ENOTDIR, "mkdir %s: exists and is not a directory", path);
	return 0;
}

int berth_fsync_dir_at(int dirfd, const char *name, struct berth_err *err)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return berth_errnof(err, errno, "fsync directory %s", name);
	return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int berth_open_dir_p(const char *path, mode_t mode, int *ret, struct berth_err *err)
{
	int r = berth_mkdir_p(path, mode, err);
	if (r < 0)
		return r;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return berth_errnof(err, errno, "open %s", path);
	*ret = fd;
	return 0;
}

int berth_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

int berth_write_atomic_at(int dirfd, const char *name, const void *buf, size_t len,
			  mode_t mode, struct berth_err *err)
{
	char tmp[4096];
	/* pid + tid: concurrent writers of one name never share a temp file. */
	if (snprintf(tmp, sizeof(tmp), ".%s.tmp.%d.%d", name, (int)getpid(), (int)gettid()) >= (int)sizeof(tmp))
		return berth_errf(err, ENAMETOOLONG, "write %s: name too long", name);
	_cleanup_close_ int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return berth_errnof(err, errno, "write %s: create temp file", name);
	int r = write_all(fd, buf, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		return berth_errnof(err, -r, "write %s", name);
	}
	return berth_fsync_dir_at(dirfd, ".", err);
}

int berth_write_file_at(int dirfd, const char *name, const void *buf, size_t len, mode_t mode,
			struct berth_err *err)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
					mode);
	if (fd < 0)
		return berth_errnof(err, errno, "write %s", name);
	int r = fchmod(fd, mode) < 0 ? -errno : write_all(fd, buf, len);
	return r < 0 ? berth_errnof(err, -r, "write %s", name) : 0;
}

int berth_read_file_at(int dirfd, const char *name, size_t max, char **ret,
		       size_t *ret_len, struct berth_err *err)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return berth_errnof(err, errno, "read %s", name);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return berth_errnof(err, errno, "read %s", name);
	if ((size_t)st.st_size > max)
		return berth_errf(err, EFBIG, "read %s: %lld bytes is over the %zu byte limit",
				  name, (long long)st.st_size, max);
	_cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return berth_errf(err, ENOMEM, "read %s: out of memory", name);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return berth_errnof(err, errno, "read %s", name);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*ret = TAKE_PTR(buf);
	if (ret_len)
		*ret_len = got;
	return 0;
}

int berth_rm_rf_at(int dfd, const char *name, struct berth_err *err)
{
	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return berth_errnof(err, errno, "remove %s", name);
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return berth_errnof(err, errno, "remove %s", name);
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return berth_errnof(err, errno, "remove %s", name);
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		int r = berth_rm_rf_at(dirfd(d), de->d_name, err);
		if (r < 0)
			return berth_err_wrap(err, "remove %s", name);
	}
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return berth_errnof(err, errno, "remove %s", name);
	return 0;
}

int berth_exe_sibling(const char *name, char *buf, size_t n, struct berth_err *err)
{
	ssize_t len = readlink("/proc/self/exe", buf, n - 1);
	if (len < 0)
		return berth_errnof(err, errno, "readlink /proc/self/exe");
	buf[len] = '\0';
	char *slash = strrchr(buf, '/');
	size_t dir = slash ? (size_t)(slash - buf) : 0;
	if (dir + 1 + strlen(name) + 1 > n)
		return berth_errf(err, ENAMETOOLONG, "the path of %s is too long", name);
	snprintf(buf + dir, n - dir, "/%s", name);
	return 0;
}

bool berth_path_clean(const char *s)
{
	if (s[0] != '/' || !s[1] || strlen(s) >= PATH_MAX)
		return false;
	for (const char *c = s + 1;;) {
		size_t n = strcspn(c, "/");
		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && !strncmp(c, "..", 2)))
			return false;
		if (!c[n])
			return true;
		c += n + 1;
	}
}
