/* images/unpack: safe, in-process layer extraction
 * (docs/images.md, "Unpacking safely").
 *
 * Two libarchive readers form a pipeline, with no external program:
 *
 *   blob fd -> [raw: filter gzip | zstd | none, format "raw"]
 *           -> uncompressed tar bytes -> sha256
 *           -> [tar: format tar (ustar, pax, GNU), fed by stream_read()]
 *
 * Every uncompressed byte passes through stream_read() exactly once on its
 * way to the tar reader and is hashed there.  The tar reader stops at the
 * end-of-archive marker; whatever follows (record padding up to the
 * blocking factor, trailing data) is then drained from the raw reader into
 * the hash too, so the digest covers the whole uncompressed stream — the
 * OCI diff id.
 *
 * Nothing is written with archive_write_disk: each entry is placed by the
 * *at() calls below.  Every parent directory is opened with openat2()
 * confined to the destination (RESOLVE_IN_ROOT), the final component is
 * never followed, and entries the rules do not cover are refused. */
#include "images/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/sha256.h"

#define READ_CHUNK (64u << 10)
#define RESOLVE_LAYER (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)
#define WH_PREFIX ".wh."
#define WH_META_PREFIX ".wh..wh."
#define WH_OPAQUE ".wh..wh..opq"
#define OPAQUE_XATTR "trusted.overlay.opaque"

/* A directory whose mtime is set once every entry is in place (creating
 * children changes it).  dev/ino make sure it is still the same one. */
struct dir_time {
	char *path;
	dev_t dev;
	ino_t ino;
	struct timespec ts[2];
};

struct unpacker {
	int rootfd;
	struct archive *raw;    /* decompressor: yields the uncompressed tar */
	struct archive *tar;    /* tar reader, fed from raw by stream_read() */
	struct sha256_ctx hash; /* over the uncompressed stream */
	bool raw_failed;        /* the last tar error came from raw */
	int64_t max, total;     /* cap on uncompressed bytes (0: none), bytes so far */
	struct dir_time *dirs;
	size_t ndirs, capdirs;
	struct berth_err *err;
	char buf[READ_CHUNK];
};

/* What an entry says about its node, checked once. */
struct meta {
	uid_t uid;
	gid_t gid;
	mode_t mode; /* permission bits incl. setuid, setgid, sticky */
	struct timespec ts[2]; /* atime, mtime */
};

/* ---- names -------------------------------------------------------------- */

int img_tar_name_normalize(const char *in, char *out, size_t outsz, struct berth_err *err)
{
	if (!*in)
		return berth_errf(err, EINVAL, "layer entry \"\": empty name");
	if (outsz == 0)
		return berth_errf(err, EINVAL, "layer entry \"%.200s\": name too long", in);
	size_t len = 0;
	for (const char *p = in; *p;) {
		while (*p == '/')
			p++;
		const char *c = p;
		while (*p && *p != '/')
			p++;
		size_t n = (size_t)(p - c);
		if (n == 0 || (n == 1 && c[0] == '.'))
			continue;
		if (n == 2 && c[0] == '.' && c[1] == '.')
			return berth_errf(err, EINVAL,
					  "layer entry \"%.200s\": \"..\" component is not allowed", in);
		if (len + (len ? 1 : 0) + n >= outsz)
			return berth_errf(err, EINVAL, "layer entry \"%.200s\": name too long", in);
		if (len)
			out[len++] = '/';
		memcpy(out + len, c, n);
		len += n;
	}
	out[len] = '\0';
	return 0;
}

/* Splits path in place into its parent ("." for the root) and last name. */
static void split_path(char *path, const char **ret_parent, const char **ret_base)
{
	char *slash = strrchr(path, '/');
	if (!slash) {
		*ret_parent = ".";
		*ret_base = path;
		return;
	}
	*slash = '\0';
	*ret_parent = path;
	*ret_base = slash + 1;
}

/* ---- confined lookups ---------------------------------------------------- */

/* openat2(rootfd, path, O_DIRECTORY | flags) confined by resolve; returns
 * the fd or a negative errno. */
static int open_dir_in_root(int rootfd, const char *path, int flags, uint64_t resolve)
{
	struct open_how how = {
		.flags = (uint64_t)(O_RDONLY | O_DIRECTORY | O_CLOEXEC | flags),
		.resolve = resolve,
	};
	/* EAGAIN: a concurrent rename raced the lookup; nothing renames in
	 * a fresh layer, so a few tries suffice. */
	for (int i = 0; i < 16; i++) {
		long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
	return -EAGAIN;
}

/* Opens the directory path, creating missing components one by one, each
 * with mkdirat() in its confined parent and then looked up confined again. */
static int create_dirs(int rootfd, char *path, uint64_t resolve, int *ret, struct berth_err *err)
{
	_cleanup_close_ int fd = open_dir_in_root(rootfd, ".", 0, resolve);
	if (fd < 0)
		return berth_errnof(err, -fd, "open layer root");
	for (char *s = path;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		int sub = open_dir_in_root(rootfd, path, 0, resolve);
		if (sub == -ENOENT) {
			const char *name = strrchr(path, '/');
			name = name ? name + 1 : path;
			if (mkdirat(fd, name, 0755) < 0 && errno != EEXIST)
				sub = -errno;
			else
				sub = open_dir_in_root(rootfd, path, 0, resolve);
		}
		if (sub < 0) {
			berth_errnof(err, -sub, "parent directory \"%s\"", path);
			*s = c;
			return sub;
		}
		*s = c;
		closep(&fd);
		fd = sub;
		if (c == '\0')
			break;
	}
	*ret = TAKE_FD(fd);
	return 0;
}

/* Opens (creating if missing) the parent directory of an entry. */
static int open_parent(int rootfd, const char *parent, uint64_t resolve, int *ret,
		       struct berth_err *err)
{
	int fd = open_dir_in_root(rootfd, parent, 0, resolve);
	if (fd >= 0) {
		*ret = fd;
		return 0;
	}
	if (fd != -ENOENT)
		return berth_errnof(err, -fd, "parent directory \"%s\"", parent);
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s", parent);
	return create_dirs(rootfd, path, resolve, ret, err);
}

/* ---- metadata ------------------------------------------------------------ */

static int entry_meta(struct archive_entry *e, struct meta *m, struct berth_err *err)
{
	la_int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
	/* (uid_t)-1 means "unchanged" to chown: refused with the rest. */
	if (uid < 0 || uid >= (la_int64_t)UINT32_MAX || gid < 0 || gid >= (la_int64_t)UINT32_MAX)
		return berth_errf(err, EINVAL, "owner %lld:%lld out of range",
				  (long long)uid, (long long)gid);
	m->uid = (uid_t)uid;
	m->gid = (gid_t)gid;
	m->mode = archive_entry_mode(e) & 07777;
	m->ts[1] = (struct timespec){ archive_entry_mtime(e), archive_entry_mtime_nsec(e) };
	if (archive_entry_atime_is_set(e))
		m->ts[0] = (struct timespec){ archive_entry_atime(e), archive_entry_atime_nsec(e) };
	else
		m->ts[0] = m->ts[1];
	return 0;
}

/* user.* and security.capability are kept; trusted.* (a forged
 * trusted.overlay.* could redirect overlayfs) and the rest are dropped. */
static bool xattr_kept(const char *name)
{
	return !strncmp(name, "user.", 5) || !strcmp(name, "security.capability");
}

static int set_xattrs(int fd, struct archive_entry *e, struct berth_err *err)
{
	const char *name;
	const void *value;
	size_t size;
	archive_entry_xattr_reset(e);
	while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
		if (!name || !xattr_kept(name))
			continue;
		if (fsetxattr(fd, name, value, size, 0) < 0)
			return berth_errnof(err, errno, "set xattr %s", name);
	}
	return 0;
}

/* Owner, then mode (chown clears setuid/setgid), then xattrs (chown also
 * clears security.capability), then times unless deferred. */
static int apply_meta_fd(int fd, struct archive_entry *e, const struct meta *m, bool times,
			 struct berth_err *err)
{
	if (fchown(fd, m->uid, m->gid) < 0)
		return berth_errnof(err, errno, "chown %u:%u", (unsigned)m->uid, (unsigned)m->gid);
	if (fchmod(fd, m->mode) < 0)
		return berth_errnof(err, errno, "chmod %04o", (unsigned)m->mode);
	int r = set_xattrs(fd, e, err);
	if (r < 0)
		return r;
	if (times && futimens(fd, m->ts) < 0)
		return berth_errnof(err, errno, "set times");
	return 0;
}

static int remember_dir(struct unpacker *u, const char *path, int fd, const struct meta *m)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return berth_errnof(u->err, errno, "stat");
	if (u->ndirs == u->capdirs) {
		size_t cap = u->capdirs ? 2 * u->capdirs : 64;
		struct dir_time *d = reallocarray(u->dirs, cap, sizeof(*d));
		if (!d)
			return berth_errf(u->err, ENOMEM, "out of memory");
		u->dirs = d;
		u->capdirs = cap;
	}
	char *p = strdup(*path ? path : ".");
	if (!p)
		return berth_errf(u->err, ENOMEM, "out of memory");
	u->dirs[u->ndirs++] = (struct dir_time){
		.path = p, .dev = st.st_dev, .ino = st.st_ino, .ts = { m->ts[0], m->ts[1] },
	};
	return 0;
}

/* Directories a later entry replaced (or moved behind a symlink) are
 * skipped: their dev/ino no longer match. */
static int set_dir_times(struct unpacker *u)
{
	for (size_t i = 0; i < u->ndirs; i++) {
		const struct dir_time *d = &u->dirs[i];
		_cleanup_close_ int fd = open_dir_in_root(u->rootfd, d->path, O_NOFOLLOW,
							  RESOLVE_LAYER);
		if (fd == -ENOENT || fd == -ENOTDIR || fd == -ELOOP)
			continue;
		if (fd < 0)
			return berth_errnof(u->err, -fd, "layer entry \"%s\": set times", d->path);
		struct stat st;
		if (fstat(fd, &st) < 0)
			return berth_errnof(u->err, errno, "layer entry \"%s\": stat", d->path);
		if (st.st_dev != d->dev || st.st_ino != d->ino)
			continue;
		if (futimens(fd, d->ts) < 0)
			return berth_errnof(u->err, errno, "layer entry \"%s\": set times", d->path);
	}
	return 0;
}

/* ---- archive plumbing ---------------------------------------------------- */

/* libarchive reports a malformed archive as EILSEQ (its private
 * ARCHIVE_ERRNO_FILE_FORMAT) or -1: both are EINVAL to callers. */
static int archive_code(struct archive *a)
{
	int code = archive_errno(a);
	return code <= 0 || code == EILSEQ ? EINVAL : code;
}

static const char *archive_msg(struct archive *a)
{
	const char *msg = archive_error_string(a);
	return msg ? msg : "unknown error";
}

static int over_cap(struct unpacker *u)
{
	return berth_errf(u->err, EFBIG, "unpacks to more than %lld bytes: refused",
			  (long long)u->max);
}

/* Counts n more uncompressed bytes against the cap. */
static bool within_cap(struct unpacker *u, la_ssize_t n)
{
	u->total += n;
	return !u->max || u->total <= u->max;
}

/* An error from the tar reader, or from the decompressor behind it. */
static int tar_fail(struct unpacker *u, const char *what)
{
	if (u->max && u->total > u->max)
		return over_cap(u);
	if (u->raw_failed)
		return berth_errf(u->err, archive_code(u->raw), "decompress layer: %s",
				  archive_msg(u->raw));
	return berth_errf(u->err, archive_code(u->tar), "%s: %s", what, archive_msg(u->tar));
}

static la_ssize_t stream_read(struct archive *a, void *opaque, const void **ret)
{
	struct unpacker *u = opaque;
	la_ssize_t n = archive_read_data(u->raw, u->buf, sizeof(u->buf));
	if (n < 0) {
		u->raw_failed = true;
		archive_set_error(a, archive_code(u->raw), "%s", archive_msg(u->raw));
		return ARCHIVE_FATAL;
	}
	/* A bomb stops here: what the tar reader writes never passes the cap. */
	if (!within_cap(u, n)) {
		archive_set_error(a, EFBIG, "over the unpacked size cap");
		return ARCHIVE_FATAL;
	}
	sha256_update(&u->hash, u->buf, (size_t)n);
	*ret = u->buf;
	return n;
}

/* Hashes what follows the tar's end-of-archive marker. */
static int drain(struct unpacker *u)
{
	for (;;) {
		la_ssize_t n = archive_read_data(u->raw, u->buf, sizeof(u->buf));
		if (n == 0)
			return 0;
		if (n < 0)
			return berth_errf(u->err, archive_code(u->raw), "decompress layer: %s",
					  archive_msg(u->raw));
		if (!within_cap(u, n))
			return over_cap(u);
		sha256_update(&u->hash, u->buf, (size_t)n);
	}
}

/* The decompressor: only the filter comp names, built into libarchive (a
 * support call that returns ARCHIVE_WARN would run an external program),
 * and the data must really be in that format. */
static int open_raw(struct unpacker *u, int fd, enum img_compression comp)
{
	static const struct { int code; const char *name; int (*support)(struct archive *); } f[] = {
		[IMG_COMPRESSION_NONE] = { ARCHIVE_FILTER_NONE, "uncompressed", NULL },
		[IMG_COMPRESSION_GZIP] = { ARCHIVE_FILTER_GZIP, "gzip", archive_read_support_filter_gzip },
		[IMG_COMPRESSION_ZSTD] = { ARCHIVE_FILTER_ZSTD, "zstd", archive_read_support_filter_zstd },
	};
	if ((unsigned)comp >= ARRAY_SIZE(f))
		return berth_errf(u->err, EINVAL, "layer: unknown compression %d", (int)comp);
	if (!(u->raw = archive_read_new()))
		return berth_errf(u->err, ENOMEM, "layer: out of memory");
	if (f[comp].support && f[comp].support(u->raw) != ARCHIVE_OK)
		return berth_errf(u->err, ENOTSUP, "layer: %s is not built into libarchive",
				  f[comp].name);
	struct archive_entry *e;
	if (archive_read_support_format_raw(u->raw) != ARCHIVE_OK ||
	    archive_read_open_fd(u->raw, fd, READ_CHUNK) != ARCHIVE_OK)
		return berth_errf(u->err, archive_code(u->raw), "decompress layer: %s",
				  archive_msg(u->raw));
	if (archive_filter_code(u->raw, 0) != f[comp].code)
		return berth_errf(u->err, EINVAL, "layer: not %s data", f[comp].name);
	if (archive_read_next_header(u->raw, &e) != ARCHIVE_OK)
		return berth_errf(u->err, archive_code(u->raw), "decompress layer: %s",
				  archive_msg(u->raw));
	return 0;
}

static int open_tar(struct unpacker *u)
{
	if (!(u->tar = archive_read_new()))
		return berth_errf(u->err, ENOMEM, "layer: out of memory");
	/* format_tar reads ustar, pax (long names, sizes, xattrs) and GNU. */
	if (archive_read_support_format_tar(u->tar) != ARCHIVE_OK ||
	    archive_read_open(u->tar, u, NULL, stream_read, NULL) != ARCHIVE_OK)
		return tar_fail(u, "open layer tar");
	return 0;
}

/* ---- entries ------------------------------------------------------------- */

/* Copies the entry's data; sparse holes stay holes. */
static int copy_data(struct unpacker *u, int fd, struct archive_entry *e)
{
	for (;;) {
		const void *buf;
		size_t size;
		la_int64_t off;
		int r = archive_read_data_block(u->tar, &buf, &size, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
			return tar_fail(u, "read data");
		if (off < 0)
			return berth_errf(u->err, EINVAL, "negative data offset");
		if ((r = berth_pwrite_all(fd, buf, size, (off_t)off)) < 0)
			return berth_errnof(u->err, -r, "write");
	}
	if (ftruncate(fd, (off_t)archive_entry_size(e)) < 0)
		return berth_errnof(u->err, errno, "truncate");
	/* Start writeback now, without waiting, so the store's one syncfs
	 * before the layer is published finds little left to write. */
	sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	return 0;
}

static int make_file(struct unpacker *u, int pfd, const char *base, struct archive_entry *e,
		     const struct meta *m)
{
	int r = berth_rm_rf_at(pfd, base, u->err);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
					0600);
	if (fd < 0)
		return berth_errnof(u->err, errno, "create");
	if ((r = copy_data(u, fd, e)) < 0)
		return r;
	return apply_meta_fd(fd, e, m, true, u->err);
}

/* A directory over a directory merges; anything else is replaced. */
static int make_dir(struct unpacker *u, int pfd, const char *base, const char *path,
		    struct archive_entry *e, const struct meta *m)
{
	struct stat st;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode)) {
		int r = berth_rm_rf_at(pfd, base, u->err);
		if (r < 0)
			return r;
		if (mkdirat(pfd, base, 0700) < 0)
			return berth_errnof(u->err, errno, "mkdir");
	}
	_cleanup_close_ int fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return berth_errnof(u->err, errno, "open directory");
	int r = apply_meta_fd(fd, e, m, false, u->err);
	return r < 0 ? r : remember_dir(u, path, fd, m);
}

/* No xattrs: they would have to be set by path, and user.* are only
 * allowed on files and directories anyway. */
static int make_symlink(struct unpacker *u, int pfd, const char *base, struct archive_entry *e,
			const struct meta *m)
{
	const char *target = archive_entry_symlink(e);
	if (!target)
		target = archive_entry_symlink_utf8(e);
	if (!target || !*target)
		return berth_errf(u->err, EINVAL, "symlink without a target");
	if (strnlen(target, PATH_MAX) >= PATH_MAX)
		return berth_errf(u->err, EINVAL, "symlink target longer than PATH_MAX");
	int r = berth_rm_rf_at(pfd, base, u->err);
	if (r < 0)
		return r;
	if (symlinkat(target, pfd, base) < 0)
		return berth_errnof(u->err, errno, "symlink");
	if (fchownat(pfd, base, m->uid, m->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return berth_errnof(u->err, errno, "chown %u:%u", (unsigned)m->uid, (unsigned)m->gid);
	if (utimensat(pfd, base, m->ts, AT_SYMLINK_NOFOLLOW) < 0)
		return berth_errnof(u->err, errno, "set times");
	return 0;
}

/* Devices and fifos are never opened (that could block or have effects);
 * fchmodat(AT_SYMLINK_NOFOLLOW) refuses a symlink.  No xattrs, as for
 * symlinks. */
static int make_special(struct unpacker *u, int pfd, const char *base, struct archive_entry *e,
			const struct meta *m)
{
	mode_t type = archive_entry_filetype(e);
	dev_t dev = type == AE_IFIFO ? 0 : archive_entry_rdev(e);
	int r = berth_rm_rf_at(pfd, base, u->err);
	if (r < 0)
		return r;
	if (mknodat(pfd, base, type | 0600, dev) < 0)
		return berth_errnof(u->err, errno, "mknod");
	if (fchownat(pfd, base, m->uid, m->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return berth_errnof(u->err, errno, "chown %u:%u", (unsigned)m->uid, (unsigned)m->gid);
	if (fchmodat(pfd, base, m->mode, AT_SYMLINK_NOFOLLOW) < 0)
		return berth_errnof(u->err, errno, "chmod %04o", (unsigned)m->mode);
	if (utimensat(pfd, base, m->ts, AT_SYMLINK_NOFOLLOW) < 0)
		return berth_errnof(u->err, errno, "set times");
	return 0;
}

/* The target must be an earlier non-directory entry: the destination
 * started empty, so anything in it came from this layer.  Its parent is
 * resolved confined, never created; the link takes the target inode's
 * metadata, not the entry's. */
static int make_hardlink(struct unpacker *u, int pfd, const char *base, struct archive_entry *e)
{
	const char *raw = archive_entry_hardlink(e);
	if (!raw)
		raw = archive_entry_hardlink_utf8(e);
	char target[PATH_MAX];
	if (!raw || img_tar_name_normalize(raw, target, sizeof(target), NULL) < 0 || !*target)
		return berth_errf(u->err, EINVAL, "hardlink target \"%s\" is not a valid name",
				  raw ? raw : "");
	const char *tparent, *tbase;
	split_path(target, &tparent, &tbase);
	_cleanup_close_ int tpfd = open_dir_in_root(u->rootfd, tparent, 0, RESOLVE_LAYER);
	struct stat tst, st;
	if (tpfd < 0 || fstatat(tpfd, tbase, &tst, AT_SYMLINK_NOFOLLOW) < 0)
		return berth_errf(u->err, ENOENT, "hardlink target \"%s\" is not an earlier entry", raw);
	if (S_ISDIR(tst.st_mode))
		return berth_errf(u->err, EPERM, "hardlink target \"%s\" is a directory", raw);
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    st.st_dev == tst.st_dev && st.st_ino == tst.st_ino)
		return 0;
	int r = berth_rm_rf_at(pfd, base, u->err);
	if (r < 0)
		return r;
	if (linkat(tpfd, tbase, pfd, base, 0) < 0)
		return berth_errnof(u->err, errno, "hardlink to \"%s\"", raw);
	return 0;
}

static int make_node(struct unpacker *u, int pfd, const char *base, const char *path,
		     struct archive_entry *e)
{
	if (archive_entry_hardlink(e) || archive_entry_hardlink_utf8(e))
		return make_hardlink(u, pfd, base, e);
	struct meta m;
	int r = entry_meta(e, &m, u->err);
	if (r < 0)
		return r;
	mode_t type = archive_entry_filetype(e);
	switch (type) {
	case AE_IFREG:
		return make_file(u, pfd, base, e, &m);
	case AE_IFDIR:
		return make_dir(u, pfd, base, path, e, &m);
	case AE_IFLNK:
		return make_symlink(u, pfd, base, e, &m);
	case AE_IFCHR:
	case AE_IFBLK:
	case AE_IFIFO:
		return make_special(u, pfd, base, e, &m);
	default:
		return berth_errf(u->err, EINVAL, "unsupported entry type 0%o", (unsigned)type);
	}
}

/* "." and the like: only a directory, whose metadata the root takes. */
static int root_entry(struct unpacker *u, struct archive_entry *e)
{
	if (archive_entry_hardlink(e) || archive_entry_filetype(e) != AE_IFDIR)
		return berth_errf(u->err, EINVAL, "the layer root can only be a directory");
	struct meta m;
	int r = entry_meta(e, &m, u->err);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = open_dir_in_root(u->rootfd, ".", 0, RESOLVE_LAYER);
	if (fd < 0)
		return berth_errnof(u->err, -fd, "open layer root");
	if ((r = apply_meta_fd(fd, e, &m, false, u->err)) < 0)
		return r;
	return remember_dir(u, "", fd, &m);
}

/* Whiteouts: the parent is resolved without any symlink, so a whiteout
 * cannot reach through one.  ".wh..wh..opq" marks the parent opaque,
 * other ".wh..wh." meta files (aufs' plnk, ...) are skipped, ".wh.NAME"
 * replaces NAME with a char device 0:0. */
static int whiteout(struct unpacker *u, const char *parent, const char *base)
{
	bool opaque = !strcmp(base, WH_OPAQUE);
	if (!opaque && !strncmp(base, WH_META_PREFIX, strlen(WH_META_PREFIX)))
		return 0;
	const char *name = base + strlen(WH_PREFIX);
	if (!opaque && (!*name || !strcmp(name, ".") || !strcmp(name, "..")))
		return berth_errf(u->err, EINVAL, "whiteout of \"%s\" is not allowed", name);
	_cleanup_close_ int pfd = -1;
	int r = open_parent(u->rootfd, parent, RESOLVE_LAYER | RESOLVE_NO_SYMLINKS, &pfd, u->err);
	if (r < 0)
		return r;
	if (opaque) {
		if (fsetxattr(pfd, OPAQUE_XATTR, "y", 1, 0) < 0)
			return berth_errnof(u->err, errno, "set " OPAQUE_XATTR);
		return 0;
	}
	if ((r = berth_rm_rf_at(pfd, name, u->err)) < 0)
		return r;
	if (mknodat(pfd, name, S_IFCHR | 0000, makedev(0, 0)) < 0)
		return berth_errnof(u->err, errno, "create whiteout");
	return 0;
}

/* True when a directory of path is a ".wh..wh." meta directory (aufs'
 * .wh..wh.plnk holds hardlink sources): its content is skipped with it. */
static bool in_meta_dir(const char *parent)
{
	for (const char *p = parent;; p++) {
		if (!strncmp(p, WH_META_PREFIX, strlen(WH_META_PREFIX)))
			return true;
		if (!(p = strchr(p, '/')))
			return false;
	}
}

static int place_entry(struct unpacker *u, struct archive_entry *e, const char *normalized)
{
	if (!*normalized)
		return root_entry(u, e);
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s", normalized);
	const char *parent, *base;
	split_path(path, &parent, &base);
	if (in_meta_dir(parent))
		return 0;
	if (!strncmp(base, WH_PREFIX, strlen(WH_PREFIX)))
		return whiteout(u, parent, base);
	_cleanup_close_ int pfd = -1;
	int r = open_parent(u->rootfd, parent, RESOLVE_LAYER, &pfd, u->err);
	if (r < 0)
		return r;
	return make_node(u, pfd, base, normalized, e);
}

/* Entry names come from libarchive as C strings: an embedded NUL (pax
 * can carry one) ends the name there, and the shorter name is what gets
 * checked and used. */
static int unpack_entry(struct unpacker *u, struct archive_entry *e)
{
	const char *raw = archive_entry_pathname(e);
	if (!raw)
		raw = archive_entry_pathname_utf8(e);
	if (!raw)
		return berth_errf(u->err, EINVAL, "layer entry without a usable name");
	if (strnlen(raw, PATH_MAX) >= PATH_MAX)
		return berth_errf(u->err, EINVAL, "layer entry \"%.200s...\": name longer than PATH_MAX",
				  raw);
	char path[PATH_MAX];
	int r = img_tar_name_normalize(raw, path, sizeof(path), u->err);
	if (r < 0)
		return r;
	if ((r = place_entry(u, e, path)) < 0)
		return berth_err_wrap(u->err, "layer entry \"%s\"", raw);
	return 0;
}

/* ---- the layer ----------------------------------------------------------- */

static void unpacker_free(struct unpacker *u)
{
	if (u->tar)
		archive_read_free(u->tar);
	if (u->raw)
		archive_read_free(u->raw);
	sha256_done(&u->hash);
	for (size_t i = 0; i < u->ndirs; i++)
		free(u->dirs[i].path);
	free(u->dirs);
	free(u);
}
DEFINE_CLEANUP_FUNC(struct unpacker, unpacker_free)

static int unpack_entries(struct unpacker *u)
{
	for (;;) {
		struct archive_entry *e;
		int r = archive_read_next_header(u->tar, &e);
		if (r == ARCHIVE_EOF)
			return 0;
		/* ARCHIVE_WARN: e.g. a name not convertible to the locale;
		 * the entry is still complete. */
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
			return tar_fail(u, "read layer tar");
		if ((r = unpack_entry(u, e)) < 0)
			return r;
	}
}

static int check_diff_id(struct unpacker *u, const char *diff_id)
{
	char got[SHA256_DIGEST_STRLEN];
	sha256_final(&u->hash, got);
	if (diff_id && strcmp(got, diff_id))
		return berth_errf(u->err, EBADMSG, "diff id mismatch: expected %s, got %s",
				  diff_id, got);
	return 0;
}

int img_unpack_layer(int blob_fd, enum img_compression comp, int dest_dirfd,
		     const char *diff_id, int64_t max_bytes, struct berth_err *err)
{
	_cleanup_(unpacker_freep) struct unpacker *u = calloc(1, sizeof(*u));
	if (!u)
		return berth_errf(err, ENOMEM, "unpack layer: out of memory");
	u->rootfd = dest_dirfd;
	u->max = max_bytes;
	u->err = err;
	int r;
	if ((r = sha256_init(&u->hash)) < 0)
		return berth_errf(err, -r, "unpack layer: out of memory");
	if ((r = open_raw(u, blob_fd, comp)) < 0 || (r = open_tar(u)) < 0 ||
	    (r = unpack_entries(u)) < 0 || (r = drain(u)) < 0 || (r = set_dir_times(u)) < 0)
		return r;
	return check_diff_id(u, diff_id);
}
