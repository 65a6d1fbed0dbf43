#include "runtime/mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "runtime/child.h"

/* fsconfig() copies string values with strndup_user(value, 256). */
#define FSCONFIG_STR_MAX 256
#define ATTR_NOSUID_NODEV_NOEXEC (MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)

/* Docker's masked and read-only paths (moby daemon/pkg/oci/defaults.go). */
static const char *const masked_paths[] = {
	"proc/asound", "proc/acpi", "proc/interrupts", "proc/kcore", "proc/keys",
	"proc/latency_stats", "proc/timer_list", "proc/timer_stats", "proc/sched_debug",
	"proc/scsi", "sys/firmware", "sys/devices/virtual/powercap",
};
static const char *const readonly_paths[] = {
	"proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger",
};

static const struct { const char *name; unsigned major, minor; } dev_nodes[] = {
	{ "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 },
	{ "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
};
static const struct { const char *name, *target; } dev_links[] = {
	{ "ptmx", "pts/ptmx" }, { "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" },
	{ "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" },
};

/* The kernel explains most fsconfig() failures only in the fs context's
 * log ("e overlay: failed to resolve 'x': -2"); keep the last message. */
static void fs_log(int fsfd, char *buf, size_t n)
{
	char line[512];
	ssize_t len;
	buf[0] = '\0';
	while ((len = read(fsfd, line, sizeof(line) - 1)) > 0) {
		line[len] = '\0';
		snprintf(buf, n, "%s", len > 2 ? line + 2 : line);
	}
}

static int fs_err(struct berth_err *err, int fsfd, int code, const char *what)
{
	char log[512];
	fs_log(fsfd, log, sizeof(log));
	if (log[0])
		return rt_cerrf(err, code, "%s: %s", what, log);
	return rt_cerrnof(err, code, "%s", what);
}

/* New detached mount of fstype with comma-separated opts ("k=v" or a
 * flag).  Child side: no allocation, opts are copied to the stack. */
static int new_fs(const char *fstype, const char *opts, unsigned attr, int *ret,
		  struct berth_err *err)
{
	_cleanup_close_ int fsfd = fsopen(fstype, FSOPEN_CLOEXEC);
	if (fsfd < 0)
		return rt_cerrnof(err, errno, "mount %s: fsopen", fstype);
	/* The source names the mount in /proc/mounts, as mount(8) would. */
	if (fsconfig(fsfd, FSCONFIG_SET_STRING, "source", fstype, 0) < 0)
		return fs_err(err, fsfd, errno, fstype);
	char buf[256], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", opts ? opts : "");
	for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *val = strchr(kv, '=');
		if (val)
			*val++ = '\0';
		int r = val ? fsconfig(fsfd, FSCONFIG_SET_STRING, kv, val, 0)
			    : fsconfig(fsfd, FSCONFIG_SET_FLAG, kv, NULL, 0);
		if (r < 0)
			return fs_err(err, fsfd, errno, fstype);
	}
	if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return fs_err(err, fsfd, errno, fstype);
	int mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, attr);
	if (mfd < 0)
		return rt_cerrnof(err, errno, "mount %s: fsmount", fstype);
	*ret = mfd;
	return 0;
}

static int set_attr(int mfd, unsigned attr, bool recursive, const char *what,
		    struct berth_err *err)
{
	struct mount_attr a = { .attr_set = attr };
	unsigned flags = AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
	if (mount_setattr(mfd, "", flags, &a, sizeof(a)) < 0)
		return rt_cerrnof(err, errno, "%s: mount_setattr", what);
	return 0;
}

/* ---- parent: the overlay ------------------------------------------------ */

/* An overlay fs context with LOWERDIRS (top first) in *ret_fsfd.  Returns
 * 1 when the kernel lacks what this path needs (fsopen, or overlayfs's
 * "lowerdir+", new in 6.8). */
static int overlay_open(const char *const *lowerdirs, size_t n, int *ret_fsfd,
			struct berth_err *err)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(lowerdirs[i]) >= FSCONFIG_STR_MAX)
			return 1;
	_cleanup_close_ int fsfd = fsopen("overlay", FSOPEN_CLOEXEC);
	if (fsfd < 0 && errno == ENOSYS)
		return 1;
	if (fsfd < 0)
		return berth_errnof(err, errno, "overlay: fsopen");
	if (fsconfig(fsfd, FSCONFIG_SET_STRING, "source", "overlay", 0) < 0)
		return fs_err(err, fsfd, errno, "overlay");
	for (size_t i = 0; i < n; i++) {
		if (fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir+", lowerdirs[i], 0) == 0)
			continue;
		if (i == 0 && errno == EINVAL)
			return 1;
		return fs_err(err, fsfd, errno, "overlay: lowerdir");
	}
	*ret_fsfd = TAKE_FD(fsfd);
	return 0;
}

int rt_mounts_image_view(const char *const *lowerdirs, size_t n, int *ret,
			 struct berth_err *err)
{
	/* overlayfs wants two layers at least when it has no upper dir. */
	if (n == 1) {
		if ((*ret = open(lowerdirs[0], O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
			return berth_errnof(err, errno, "layer %s", lowerdirs[0]);
		return 0;
	}
	_cleanup_close_ int fsfd = -1;
	int r = overlay_open(lowerdirs, n, &fsfd, err);
	if (r > 0)
		return berth_errf(err, EOPNOTSUPP, "the image's view: needs overlayfs's "
				  "lowerdir+ (Linux 6.8) and layer paths under %d bytes",
				  FSCONFIG_STR_MAX);
	if (r < 0)
		return r;
	if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return fs_err(err, fsfd, errno, "overlay");
	int mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | ATTR_NOSUID_NODEV_NOEXEC);
	if (mfd < 0)
		return berth_errnof(err, errno, "overlay: fsmount");
	*ret = mfd;
	return 0;
}

/* Returns 1 when the kernel lacks what this path needs (overlay_open) so
 * the caller uses mount(2). */
static int overlay_fsmount(const struct rt_rootfs *r, int *ret, struct berth_err *err)
{
	_cleanup_close_ int fsfd = -1;
	int o = overlay_open(r->lowerdirs, r->n_lowerdirs, &fsfd, err);
	if (o != 0)
		return o;
	if (fsconfig(fsfd, FSCONFIG_SET_STRING, "upperdir", r->upperdir, 0) < 0 ||
	    fsconfig(fsfd, FSCONFIG_SET_STRING, "workdir", r->workdir, 0) < 0)
		return fs_err(err, fsfd, errno, "overlay");
	/* Before 6.5 overlayfs sits on the legacy fs_context, which takes any
	 * key and only refuses "lowerdir+" here, with EINVAL and an empty
	 * log.  Let mount(2) have a go: a genuine problem fails there too,
	 * with its own message. */
	if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return errno == EINVAL ? 1 : fs_err(err, fsfd, errno, "overlay");
	/* nodev: a device node from a layer (or made with mknod) stays
	 * what the image says but cannot be opened. */
	int mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV);
	if (mfd < 0)
		return berth_errnof(err, errno, "overlay: fsmount");
	*ret = mfd;
	return 0;
}

/* "lowerdir=a:b,upperdir=u,workdir=w" with the layers relative to
 * their parent when rel is set.  Returns memory the caller frees. */
static char *legacy_string(const struct rt_rootfs *r, bool rel)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fputs("lowerdir=", f);
	for (size_t i = 0; i < r->n_lowerdirs; i++) {
		const char *l = r->lowerdirs[i];
		fprintf(f, "%s%s", i ? ":" : "", rel ? strrchr(l, '/') + 1 : l);
	}
	fprintf(f, ",upperdir=%s,workdir=%s", r->upperdir, r->workdir);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static bool same_parent(const char *a, const char *b)
{
	size_t la = (size_t)(strrchr(a, '/') - a), lb = (size_t)(strrchr(b, '/') - b);
	return la == lb && !strncmp(a, b, la);
}

static int overlay_legacy(const struct rt_rootfs *r, struct rt_mounts *m, struct berth_err *err)
{
	/* mount(2) options split on ',' and ':' (and '\' escapes them). */
	for (size_t i = 0; i < r->n_lowerdirs; i++)
		if (strpbrk(r->lowerdirs[i], ",:\\"))
			return berth_errf(err, EINVAL, "overlay: layer %s: ',', ':' or '\\' in path",
					  r->lowerdirs[i]);
	if (strpbrk(r->upperdir, ",:\\") || strpbrk(r->workdir, ",:\\"))
		return berth_errf(err, EINVAL, "overlay: ',', ':' or '\\' in upper/workdir");
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	m->legacy_opts = legacy_string(r, false);
	if (!m->legacy_opts)
		return berth_errnof(err, ENOMEM, "overlay options");
	m->legacy_target = r->upperdir;
	if (strlen(m->legacy_opts) < page)
		return 0;
	for (size_t i = 1; i < r->n_lowerdirs; i++)
		if (!same_parent(r->lowerdirs[0], r->lowerdirs[i]))
			return berth_errf(err, E2BIG, "overlay: %zu layers: options exceed a page "
					  "and the layers have different parents", r->n_lowerdirs);
	free(m->legacy_opts);
	m->legacy_opts = legacy_string(r, true);
	if (!m->legacy_opts)
		return berth_errnof(err, ENOMEM, "overlay options");
	if (strlen(m->legacy_opts) >= page)
		return berth_errf(err, E2BIG, "overlay: %zu layers: options exceed a page",
				  r->n_lowerdirs);
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%.*s",
		 (int)(strrchr(r->lowerdirs[0], '/') - r->lowerdirs[0]), r->lowerdirs[0]);
	m->legacy_dirfd = open(parent[0] ? parent : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (m->legacy_dirfd < 0)
		return berth_errnof(err, errno, "overlay: layers dir %s", parent);
	return 0;
}

static bool abs_clean(const char *p)
{
	return p && p[0] == '/' && !strstr(p, "/../") &&
	       strcmp(p + strlen(p) - (strlen(p) >= 3 ? 3 : 0), "/..");
}

static int validate(const struct rt_rootfs *r, const struct rt_bind *binds, size_t n,
		    struct berth_err *err)
{
	if (r->n_lowerdirs == 0)
		return berth_errf(err, EINVAL, "rootfs: no layers");
	for (size_t i = 0; i < r->n_lowerdirs; i++)
		if (!abs_clean(r->lowerdirs[i]))
			return berth_errf(err, EINVAL, "rootfs: layer %zu: not an absolute path", i);
	if (!abs_clean(r->upperdir) || !abs_clean(r->workdir))
		return berth_errf(err, EINVAL, "rootfs: upperdir and workdir must be absolute paths");
	for (size_t i = 0; i < n; i++)
		if ((binds[i].source && !abs_clean(binds[i].source)) ||
		    (!binds[i].source && binds[i].source_fd < 0) || !abs_clean(binds[i].dest) ||
		    !strcmp(binds[i].dest, "/"))
			return berth_errf(err, EINVAL, "bind %s: source and dest must be absolute "
					  "paths without '..'", binds[i].dest ? binds[i].dest : "?");
	return 0;
}

/* A nosuid, nodev clone of the host path (recursive, as Docker's rbind),
 * read-only unless a writable volume.  open_tree() pins the source now,
 * in the host mount namespace, so a later change of the host path cannot
 * redirect it; a volume's source is the fd its owner opened safely. */
static int clone_bind(const struct rt_bind *b, int *ret, struct berth_err *err)
{
	unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE;
	_cleanup_close_ int fd = b->source ? open_tree(AT_FDCWD, b->source, flags)
					   : open_tree(b->source_fd, "", flags | AT_EMPTY_PATH);
	if (fd < 0)
		return berth_errnof(err, errno, "bind %s: source %s", b->dest,
				    b->source ? b->source : "(volume)");
	unsigned attr = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (b->writable ? 0 : MOUNT_ATTR_RDONLY);
	int r = set_attr(fd, attr, true, b->dest, err);
	if (r < 0)
		return r;
	*ret = TAKE_FD(fd);
	return 0;
}

int rt_mounts_prepare(const struct rt_rootfs *rootfs, const struct rt_bind *binds,
		      size_t n_binds, struct rt_mounts *ret, struct berth_err *err)
{
	*ret = (struct rt_mounts){ .overlay_fd = -1, .legacy_dirfd = -1,
				   .readonly = rootfs->readonly };
	int r = validate(rootfs, binds, n_binds, err);
	if (r < 0)
		return r;
	r = overlay_fsmount(rootfs, &ret->overlay_fd, err);
	if (r > 0)
		r = overlay_legacy(rootfs, ret, err);
	if (r < 0)
		return berth_err_wrap(err, "rootfs");
	if (n_binds == 0)
		return 0;
	ret->bind_fds = malloc(n_binds * sizeof(int));
	const char **dests = calloc(n_binds, sizeof(char *));
	ret->bind_dests = dests;
	ret->bind_volume = calloc(n_binds, sizeof(bool));
	if (!ret->bind_fds || !dests || !ret->bind_volume)
		return berth_errnof(err, ENOMEM, "binds");
	for (size_t i = 0; i < n_binds; i++) {
		r = clone_bind(&binds[i], &ret->bind_fds[i], err);
		if (r < 0)
			return r;
		dests[i] = binds[i].dest;
		ret->bind_volume[i] = !binds[i].source;
		ret->n_binds++;
	}
	return 0;
}

void rt_mounts_release(struct rt_mounts *m)
{
	if (m->overlay_fd >= 0)
		close(m->overlay_fd);
	if (m->legacy_dirfd >= 0)
		close(m->legacy_dirfd);
	for (size_t i = 0; i < m->n_binds; i++)
		close(m->bind_fds[i]);
	free(m->bind_fds);
	free((void *)m->bind_dests);
	free(m->bind_volume);
	free(m->legacy_opts);
	*m = (struct rt_mounts){ .overlay_fd = -1, .legacy_dirfd = -1 };
}

/* ---- child side: rootfs and pivot_root ---------------------------------- */

static int attach_overlay(const struct rt_mounts *m, struct berth_err *err)
{
	if (m->overlay_fd >= 0) {
		/* Enter the detached mount, then stack it on "/": no host
		 * directory is needed as a mount point, and the cwd is the new
		 * root for pivot_root(".", "."). */
		if (fchdir(m->overlay_fd) < 0)
			return rt_cerrnof(err, errno, "rootfs: enter overlay");
		if (move_mount(m->overlay_fd, "", AT_FDCWD, "/", MOVE_MOUNT_F_EMPTY_PATH) < 0)
			return rt_cerrnof(err, errno, "rootfs: attach overlay");
		return 0;
	}
	/* mount(2) needs a directory: the upperdir will do, since in this
	 * private namespace nobody else looks there and overlayfs holds its
	 * own references to its layers.  Relative layer names resolve from
	 * the cwd. */
	if (m->legacy_dirfd >= 0 && fchdir(m->legacy_dirfd) < 0)
		return rt_cerrnof(err, errno, "rootfs: enter layers dir");
	if (mount("overlay", m->legacy_target, "overlay", MS_NODEV, m->legacy_opts) < 0)
		return rt_cerrnof(err, errno, "rootfs: mount overlay");
	if (chdir(m->legacy_target) < 0)
		return rt_cerrnof(err, errno, "rootfs: enter overlay");
	return 0;
}

/* pivot_root(".", ".") stacks the old root on top of the new one; the
 * detach then drops it, without needing a put_old directory inside the
 * container (runc and crun do the same). */
static int enter_rootfs(const struct rt_mounts *m, struct berth_err *err)
{
	int r = attach_overlay(m, err);
	if (r < 0)
		return r;
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return rt_cerrnof(err, errno, "rootfs: pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		return rt_cerrnof(err, errno, "rootfs: detach old root");
	if (chdir("/") < 0)
		return rt_cerrnof(err, errno, "rootfs: chdir /");
	return 0;
}

/* sysfs must be made before pivot_root: when the kernel refuses a new
 * instance (a network namespace we do not own), the fallback is a
 * read-only recursive bind of the host's /sys. */
static int prepare_sysfs(int *ret, struct berth_err *err)
{
	unsigned attr = MOUNT_ATTR_RDONLY | ATTR_NOSUID_NODEV_NOEXEC;
	int r = new_fs("sysfs", NULL, attr, ret, err);
	if (r != -EPERM)
		return r;
	_cleanup_close_ int fd = open_tree(AT_FDCWD, "/sys",
					   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (fd < 0)
		return rt_cerrnof(err, errno, "bind /sys");
	r = set_attr(fd, attr, true, "/sys", err);
	if (r < 0)
		return r;
	*ret = TAKE_FD(fd);
	return 0;
}

/* ---- child side: inside the new root ------------------------------------ */

/* dirfd/name as an O_PATH directory, created if missing; a symlink is
 * refused so an image cannot move where /proc or /dev lands. */
static int mountpoint_dir(int dirfd, const char *name, int *ret, struct berth_err *err)
{
	if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
		return rt_cerrnof(err, errno, "create /%s", name);
	int fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return rt_cerrnof(err, errno, "mount point /%s", name);
	*ret = fd;
	return 0;
}

static int attach_at(int mfd, int targetfd, const char *what, struct berth_err *err)
{
	if (move_mount(mfd, "", targetfd, "",
		       MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return rt_cerrnof(err, errno, "mount %s", what);
	return 0;
}

/* Mounts a new fstype instance on dirfd/name; *ret_mfd (if not NULL) gets
 * the mount's root, through which the caller populates it. */
static int mount_fs_at(int dirfd, const char *name, const char *fstype, unsigned attr,
		       const char *opts, int *ret_mfd, struct berth_err *err)
{
	_cleanup_close_ int target = -1, mfd = -1;
	int r = mountpoint_dir(dirfd, name, &target, err);
	if (r >= 0)
		r = new_fs(fstype, opts, attr, &mfd, err);
	if (r >= 0)
		r = attach_at(mfd, target, name, err);
	if (r < 0)
		return r;
	if (ret_mfd)
		*ret_mfd = TAKE_FD(mfd);
	return 0;
}

static int populate_dev(int devfd, struct berth_err *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(dev_nodes); i++)
		if (mknodat(devfd, dev_nodes[i].name, S_IFCHR | 0666,
			    makedev(dev_nodes[i].major, dev_nodes[i].minor)) < 0)
			return rt_cerrnof(err, errno, "mknod /dev/%s", dev_nodes[i].name);
	for (size_t i = 0; i < ARRAY_SIZE(dev_links); i++)
		if (symlinkat(dev_links[i].target, devfd, dev_links[i].name) < 0)
			return rt_cerrnof(err, errno, "symlink /dev/%s", dev_links[i].name);
	int r = mount_fs_at(devfd, "pts", "devpts", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
			    "newinstance,ptmxmode=0666,mode=0620,gid=5", NULL, err);
	if (r >= 0)
		r = mount_fs_at(devfd, "shm", "tmpfs", ATTR_NOSUID_NODEV_NOEXEC,
				"mode=1777,size=65536k", NULL, err);
	if (r >= 0)
		r = mount_fs_at(devfd, "mqueue", "mqueue", ATTR_NOSUID_NODEV_NOEXEC, NULL, NULL, err);
	return r;
}

/* The only mounts without nodev: this tmpfs, whose nodes mount_dev()
 * makes itself, and its devpts (the pty nodes).  What else a process
 * with CAP_MKNOD creates here is still refused by the task cgroup's
 * device allow-list. */
static int mount_dev(int rootfd, struct berth_err *err)
{
	_cleanup_close_ int devfd = -1;
	int r = mount_fs_at(rootfd, "dev", "tmpfs", MOUNT_ATTR_NOSUID | MOUNT_ATTR_STRICTATIME,
			    "mode=755,size=65536k", &devfd, err);
	if (r < 0)
		return r;
	return populate_dev(devfd, err);
}

/* Masks with a clone of our own /dev/null, checked to be char 1:3 so a
 * swapped node can never be what lands on /proc/kcore (CVE-2025-31133). */
static int mask_file(int rootfd, int targetfd, const char *path, struct berth_err *err)
{
	_cleanup_close_ int nfd = open_tree(rootfd, "dev/null", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	struct stat st;
	if (nfd < 0 || fstat(nfd, &st) < 0)
		return rt_cerrnof(err, errno, "mask /%s: /dev/null", path);
	if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
		return rt_cerrf(err, EPERM, "mask /%s: /dev/null is not char 1:3", path);
	return attach_at(nfd, targetfd, path, err);
}

static int mask_path(int rootfd, const char *path, struct berth_err *err)
{
	_cleanup_close_ int target = openat(rootfd, path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (target < 0 && errno == ENOENT)
		return 0;
	struct stat st;
	if (target < 0 || fstat(target, &st) < 0)
		return rt_cerrnof(err, errno, "mask /%s", path);
	if (!S_ISDIR(st.st_mode))
		return mask_file(rootfd, target, path, err);
	_cleanup_close_ int mfd = -1;
	int r = new_fs("tmpfs", "size=4k", MOUNT_ATTR_RDONLY | ATTR_NOSUID_NODEV_NOEXEC, &mfd, err);
	return r < 0 ? r : attach_at(mfd, target, path, err);
}

static int readonly_path(int rootfd, const char *path, struct berth_err *err)
{
	_cleanup_close_ int target = openat(rootfd, path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (target < 0 && errno == ENOENT)
		return 0;
	if (target < 0)
		return rt_cerrnof(err, errno, "read-only /%s", path);
	_cleanup_close_ int fd = open_tree(target, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
					   AT_RECURSIVE | AT_EMPTY_PATH);
	if (fd < 0)
		return rt_cerrnof(err, errno, "read-only /%s: clone", path);
	int r = set_attr(fd, MOUNT_ATTR_RDONLY | ATTR_NOSUID_NODEV_NOEXEC, true, path, err);
	return r < 0 ? r : attach_at(fd, target, path, err);
}

/* Opens (creating) the parent directories of rel below rootfd, one
 * component at a time and never through a symlink. */
static int open_parent(int rootfd, char *rel, char **ret_name, int *ret, struct berth_err *err)
{
	int cur = openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	char *save = NULL, *comp = strtok_r(rel, "/", &save), *next;
	for (; comp && (next = strtok_r(NULL, "/", &save)); comp = next) {
		if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST) {
			close(cur);
			return rt_cerrnof(err, errno, "create %s", comp);
		}
		int fd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(cur);
		if (fd < 0)
			return rt_cerrnof(err, errno, "directory %s", comp);
		cur = fd;
	}
	if (cur < 0 || !comp)
		return rt_cerrf(err, EINVAL, "bad path");
	*ret_name = comp;
	*ret = cur;
	return 0;
}

/* The bind's mount point: an existing entry is used as it is; a
 * missing one becomes an empty file or directory like the source. */
static int bind_target(int rootfd, const char *dest, bool dir, int *ret, struct berth_err *err)
{
	char rel[4096], *name = NULL;
	snprintf(rel, sizeof(rel), "%s", dest + 1);
	_cleanup_close_ int parent = -1;
	int r = open_parent(rootfd, rel, &name, &parent, err);
	if (r < 0)
		return r;
	int fd = openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		if (dir ? mkdirat(parent, name, 0755) :
			  mknodat(parent, name, S_IFREG | 0644, 0))
			return rt_cerrnof(err, errno, "create");
		fd = openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return rt_cerrnof(err, errno, "open");
	*ret = fd;
	return 0;
}

/* rel (relative to the container's root) opened as the container would
 * resolve it: symlinks inside the rootfs, never a /proc magic link.
 * -errno. */
static int open_in_root(int rootfd, const char *rel, int flags)
{
	struct open_how how = { .flags = (uint64_t)(flags | O_PATH | O_CLOEXEC),
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	int fd;
	/* EAGAIN: a rename somewhere raced the lookup; try again. */
	while ((fd = (int)syscall(SYS_openat2, rootfd, rel[0] ? rel : ".", &how, sizeof(how))) < 0 &&
	       errno == EAGAIN)
		;
	return fd < 0 ? -errno : fd;
}

/* rel[0..end) (a prefix ending at a component) opened in the root; a
 * missing last component is created first, as a directory unless FILE.
 * -errno. */
static int open_or_create(int rootfd, char *rel, size_t end, bool file)
{
	char save = rel[end];
	rel[end] = '\0';
	int fd = open_in_root(rootfd, rel, 0);
	if (fd == -ENOENT) {
		char *slash = strrchr(rel, '/');
		if (slash)
			*slash = '\0';
		int parent = open_in_root(rootfd, slash ? rel : "", O_DIRECTORY);
		if (slash)
			*slash = '/';
		const char *name = slash ? slash + 1 : rel;
		if (parent >= 0) {
			int r = file ? mknodat(parent, name, S_IFREG | 0644, 0) : mkdirat(parent, name, 0755);
			fd = r < 0 && errno != EEXIST ? -errno : open_in_root(rootfd, rel, 0);
			close(parent);
		} else {
			fd = parent;
		}
	}
	rel[end] = save;
	return fd;
}

/* A volume's mount point: each component of dest resolved anew from the
 * container's root (so a symlink anywhere on the way stays inside it),
 * missing ones created.  Not /, /proc or /sys, wherever symlinks lead. */
static int volume_target(int rootfd, const char *dest, bool dir, int *ret, struct berth_err *err)
{
	char rel[PATH_MAX];
	if (snprintf(rel, sizeof(rel), "%s", dest + 1) >= (int)sizeof(rel))
		return rt_cerrf(err, ENAMETOOLONG, "path too long");
	size_t len = strlen(rel);
	int fd = -1;
	for (size_t i = 0; i <= len; i++) {
		if (rel[i] != '/' && rel[i] != '\0')
			continue;
		if (fd >= 0)
			close(fd);
		fd = open_or_create(rootfd, rel, i, i == len && !dir);
		if (fd == -ELOOP)
			return rt_cerrf(err, ELOOP, "mount point: a symlink on the way is a /proc "
					"magic link or loops");
		if (fd < 0)
			return rt_cerrnof(err, -fd, "mount point");
	}
	_cleanup_close_ int target = fd;
	struct stat st, root;
	struct statfs sfs;
	if (fstat(target, &st) < 0 || fstat(rootfd, &root) < 0 || fstatfs(target, &sfs) < 0)
		return rt_cerrnof(err, errno, "mount point");
	if (st.st_dev == root.st_dev && st.st_ino == root.st_ino)
		return rt_cerrf(err, EPERM, "mount point resolves to the container's /");
	if (sfs.f_type == PROC_SUPER_MAGIC || sfs.f_type == SYSFS_MAGIC)
		return rt_cerrf(err, EPERM, "mount point resolves into /proc or /sys");
	*ret = TAKE_FD(target);
	return 0;
}

static int mount_binds(int rootfd, const struct rt_mounts *m, struct berth_err *err)
{
	for (size_t i = 0; i < m->n_binds; i++) {
		struct stat st = { 0 };
		_cleanup_close_ int target = -1;
		int r = fstat(m->bind_fds[i], &st) < 0 ? rt_cerrnof(err, errno, "stat") : 0;
		bool dir = S_ISDIR(st.st_mode);
		if (r >= 0)
			r = m->bind_volume[i] ? volume_target(rootfd, m->bind_dests[i], dir, &target, err)
					      : bind_target(rootfd, m->bind_dests[i], dir, &target, err);
		if (r >= 0)
			r = attach_at(m->bind_fds[i], target, "bind", err);
		if (r < 0)
			return berth_err_wrap(err, "bind %s", m->bind_dests[i]);
	}
	return 0;
}

static int mount_kernel_fs(int rootfd, int sysfd, struct berth_err *err)
{
	int r = mount_fs_at(rootfd, "proc", "proc", ATTR_NOSUID_NODEV_NOEXEC, NULL, NULL, err);
	if (r >= 0)
		r = mount_dev(rootfd, err);
	_cleanup_close_ int target = -1;
	if (r >= 0)
		r = mountpoint_dir(rootfd, "sys", &target, err);
	if (r >= 0)
		r = attach_at(sysfd, target, "/sys", err);
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(masked_paths); i++)
		r = mask_path(rootfd, masked_paths[i], err);
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(readonly_paths); i++)
		r = readonly_path(rootfd, readonly_paths[i], err);
	return r;
}

static int setup(const struct rt_mounts *m, struct berth_err *err)
{
	_cleanup_close_ int sysfd = -1, rootfd = -1;
	/* Nothing below may propagate back to the host's mounts. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return rt_cerrnof(err, errno, "make / private");
	int r = prepare_sysfs(&sysfd, err);
	if (r >= 0)
		r = enter_rootfs(m, err);
	if (r < 0)
		return r;
	rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return rt_cerrnof(err, errno, "open new root");
	r = mount_kernel_fs(rootfd, sysfd, err);
	if (r >= 0)
		r = mount_binds(rootfd, m, err);
	if (r >= 0 && m->readonly)
		r = set_attr(rootfd, MOUNT_ATTR_RDONLY, false, "read-only rootfs", err);
	return r;
}

int rt_mounts_setup(const struct rt_mounts *m, struct berth_err *err)
{
	/* Modes below are meant literally (0666 nodes, 0755 dirs). */
	mode_t old_umask = umask(0);
	int r = setup(m, err);
	umask(old_umask);
	return r;
}
