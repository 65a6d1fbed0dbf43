/* images/unpack: name normalisation, what an entry becomes on disk, the
 * compressions, the diff id, and the classic breakout archives (containerd's
 * TestBreakouts): each one fails or stays inside the layer, and a canary
 * directory next to the destination is never created into or changed.
 * Runs as root (ownership, devices, trusted.* xattrs). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/sha256.h"
#include "images/unpack.h"

#define TAR_CAP (4u << 20)
#define MTIME 1700000000
#define CANARY "canary\n"

/* One archive entry; perm 0 means 0755 for directories, 0644 for files. */
struct ent {
	const char *name;
	mode_t type;
	mode_t perm;
	const char *data;     /* file content or symlink target */
	const char *hardlink; /* hardlink target */
	unsigned uid, gid;
	time_t mtime;         /* 0: MTIME */
	dev_t rdev;
	const char *xattrs[6]; /* name, value pairs */
};

#define DIR_(n, ...) { .name = (n), .type = AE_IFDIR, __VA_ARGS__ }
#define REG(n, d, ...) { .name = (n), .type = AE_IFREG, .data = (d), __VA_ARGS__ }
#define LNK(n, t, ...) { .name = (n), .type = AE_IFLNK, .perm = 0777, .data = (t), __VA_ARGS__ }
#define HARD(n, t) { .name = (n), .type = AE_IFREG, .hardlink = (t) }

/* base/dest is the layer root, base/outside the canary next to it. */
struct fixture {
	char base[64];
	char outside[96];
	int basefd;
	int destfd;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->base, sizeof(f->base), "/tmp/berth-unpack-XXXXXX");
	assert_non_null(mkdtemp(f->base));
	snprintf(f->outside, sizeof(f->outside), "%s/outside", f->base);
	f->basefd = open(f->base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->basefd >= 0);
	assert_int_equal(mkdirat(f->basefd, "dest", 0755), 0);
	assert_int_equal(mkdirat(f->basefd, "outside", 0755), 0);
	_cleanup_close_ int outfd = openat(f->basefd, "outside", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(outfd >= 0);
	assert_int_equal(berth_write_atomic_at(outfd, "canary", CANARY, strlen(CANARY), 0644, NULL), 0);
	f->destfd = openat(f->basefd, "dest", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->destfd >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	close(f->destfd);
	close(f->basefd);
	assert_int_equal(berth_rm_rf_at(AT_FDCWD, f->base, NULL), 0);
	free(f);
	return 0;
}

/* ---- building archives -------------------------------------------------- */

static void add_entry(struct archive *a, const struct ent *x)
{
	struct archive_entry *e = archive_entry_new();
	assert_non_null(e);
	archive_entry_set_pathname(e, x->name);
	mode_t perm = x->perm ? x->perm : x->type == AE_IFDIR ? 0755 : 0644;
	archive_entry_set_mode(e, x->type | perm);
	archive_entry_set_uid(e, x->uid);
	archive_entry_set_gid(e, x->gid);
	archive_entry_set_mtime(e, x->mtime ? x->mtime : MTIME, 0);
	archive_entry_set_rdev(e, x->rdev);
	for (size_t i = 0; i + 1 < ARRAY_SIZE(x->xattrs) && x->xattrs[i]; i += 2)
		archive_entry_xattr_add_entry(e, x->xattrs[i], x->xattrs[i + 1],
					      strlen(x->xattrs[i + 1]));
	size_t len = 0;
	if (x->hardlink)
		archive_entry_set_hardlink(e, x->hardlink);
	else if (x->type == AE_IFLNK)
		archive_entry_set_symlink(e, x->data);
	else if (x->type == AE_IFREG && x->data)
		len = strlen(x->data);
	archive_entry_set_size(e, (la_int64_t)len);
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	if (len)
		assert_int_equal(archive_write_data(a, x->data, len), (la_ssize_t)len);
	archive_entry_free(e);
}

/* A pax archive of the entries, uncompressed; the caller frees *ret. */
static size_t make_tar(const struct ent *ents, size_t n, char **ret)
{
	char *buf = malloc(TAR_CAP);
	assert_non_null(buf);
	struct archive *a = archive_write_new();
	assert_non_null(a);
	size_t used = 0;
	assert_int_equal(archive_write_set_format_pax(a), ARCHIVE_OK);
	/* Names are bytes, whatever the locale. */
	assert_int_equal(archive_write_set_options(a, "hdrcharset=BINARY"), ARCHIVE_OK);
	/* Padded to a full 10 KiB record, as tar(1) writes it. */
	assert_int_equal(archive_write_set_bytes_in_last_block(a, 0), ARCHIVE_OK);
	assert_int_equal(archive_write_open_memory(a, buf, TAR_CAP, &used), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++)
		add_entry(a, &ents[i]);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	*ret = buf;
	return used;
}

/* Compresses buf with libarchive's raw format and the given filter. */
static size_t compress(const char *buf, size_t len, int filter, char **ret)
{
	char *out = malloc(TAR_CAP);
	assert_non_null(out);
	struct archive *a = archive_write_new();
	assert_non_null(a);
	size_t used = 0;
	assert_int_equal(archive_write_add_filter(a, filter), ARCHIVE_OK);
	assert_int_equal(archive_write_set_format_raw(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_memory(a, out, TAR_CAP, &used), ARCHIVE_OK);
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, "layer.tar");
	archive_entry_set_filetype(e, AE_IFREG);
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	assert_int_equal(archive_write_data(a, buf, len), (la_ssize_t)len);
	archive_entry_free(e);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	*ret = out;
	return used;
}

static int memfd_of(const char *buf, size_t len)
{
	int fd = memfd_create("layer", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static int unpack_capped(struct fixture *f, const char *blob, size_t len,
			 enum img_compression comp, const char *diff_id, int64_t max,
			 struct berth_err *err)
{
	_cleanup_close_ int fd = memfd_of(blob, len);
	return img_unpack_layer(fd, comp, f->destfd, diff_id, max, err);
}

static int unpack_blob(struct fixture *f, const char *blob, size_t len,
		       enum img_compression comp, const char *diff_id, struct berth_err *err)
{
	return unpack_capped(f, blob, len, comp, diff_id, 0, err);
}

/* Unpacks the entries as a plain tar, checking its diff id too. */
static int unpack(struct fixture *f, const struct ent *ents, size_t n, struct berth_err *err)
{
	_cleanup_free_ char *tar = NULL;
	size_t len = make_tar(ents, n, &tar);
	char diff_id[SHA256_DIGEST_STRLEN];
	assert_int_equal(sha256_buf(tar, len, diff_id), 0);
	berth_err_clear(err);
	return unpack_blob(f, tar, len, IMG_COMPRESSION_NONE, diff_id, err);
}

#define UNPACK(f, err, ...) ({ \
	const struct ent _e[] = { __VA_ARGS__ }; \
	unpack((f), _e, ARRAY_SIZE(_e), (err)); \
})

/* ---- checks -------------------------------------------------------------- */

static struct stat lstat_in(struct fixture *f, const char *path)
{
	struct stat st;
	if (fstatat(f->destfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		fail_msg("lstat %s: %s", path, strerror(errno));
	return st;
}

static bool exists_in(int dirfd, const char *path)
{
	struct stat st;
	return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void assert_content(struct fixture *f, const char *path, const char *want)
{
	_cleanup_free_ char *got = NULL;
	assert_int_equal(berth_read_file_at(f->destfd, path, 1 << 20, &got, NULL, NULL), 0);
	assert_string_equal(got, want);
}

static size_t count_entries(int dirfd, const char *path)
{
	int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	assert_non_null(d);
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	return n;
}

/* Nothing next to dest was created, and the canary is untouched. */
static void assert_outside_intact(struct fixture *f)
{
	assert_int_equal(count_entries(f->basefd, "."), 2);
	assert_int_equal(count_entries(f->basefd, "outside"), 1);
	struct stat st;
	assert_int_equal(fstatat(f->basefd, "outside", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(fstatat(f->basefd, "outside/canary", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(st.st_nlink, 1);
	assert_int_equal(st.st_uid, 0);
	_cleanup_free_ char *got = NULL;
	assert_int_equal(berth_read_file_at(f->basefd, "outside/canary", 1024, &got, NULL, NULL), 0);
	assert_string_equal(got, CANARY);
}

/* Where the layer's own copy of f->outside/name lands: the absolute path
 * taken as a name inside the layer. */
static const char *inside_path(struct fixture *f, const char *name)
{
	static char path[192];
	snprintf(path, sizeof(path), "%s/%s", f->outside + 1, name);
	return path;
}

static void assert_err_contains(int r, const struct berth_err *err, const char *want)
{
	assert_true(r < 0);
	if (!strstr(err->msg, want))
		fail_msg("error \"%s\" does not contain \"%s\"", err->msg, want);
}

/* ---- names --------------------------------------------------------------- */

static void test_normalize_table(void **state)
{
	(void)state;
	static const struct { const char *in, *want; } cases[] = {
		{ "etc/passwd", "etc/passwd" },
		{ "/etc/passwd", "etc/passwd" },
		{ "./etc/passwd", "etc/passwd" },
		{ "etc//passwd", "etc/passwd" },
		{ "etc/./passwd", "etc/passwd" },
		{ "etc/passwd/", "etc/passwd" },
		{ "etc/", "etc" },
		{ "//a//b//", "a/b" },
		{ "././a", "a" },
		{ "a/.", "a" },
		{ ".", "" },
		{ "./", "" },
		{ "/", "" },
		{ "///./", "" },
		{ ".hidden", ".hidden" },
		{ "...", "..." },
		{ "..a", "..a" },
		{ "a..", "a.." },
		{ "a/..b/c", "a/..b/c" },
		{ ".wh..wh..opq", ".wh..wh..opq" },
		{ "", NULL },
		{ "..", NULL },
		{ "../x", NULL },
		{ "/..", NULL },
		{ "a/../b", NULL },
		{ "a/..", NULL },
		{ "a/b/../../..", NULL },
		{ "./../etc", NULL },
		{ "a//..//b", NULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char out[64];
		struct berth_err err = { 0 };
		int r = img_tar_name_normalize(cases[i].in, out, sizeof(out), &err);
		if (!cases[i].want) {
			if (r != -EINVAL)
				fail_msg("\"%s\": expected refusal, got %d", cases[i].in, r);
			assert_non_null(strstr(err.msg, "layer entry \""));
			continue;
		}
		if (r != 0)
			fail_msg("\"%s\": %s", cases[i].in, err.msg);
		assert_string_equal(out, cases[i].want);
	}
}

static void test_normalize_too_long(void **state)
{
	(void)state;
	char out[8];
	struct berth_err err = { 0 };
	assert_int_equal(img_tar_name_normalize("abcdef", out, 7, &err), 0);
	assert_string_equal(out, "abcdef");
	assert_int_equal(img_tar_name_normalize("abcdefg", out, 7, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "too long"));
	assert_int_equal(img_tar_name_normalize("a/b", out, 3, &err), -EINVAL);
	assert_int_equal(img_tar_name_normalize("./a", out, 2, &err), 0);
	assert_string_equal(out, "a");
	assert_int_equal(img_tar_name_normalize(".", out, 1, &err), 0);
	assert_string_equal(out, "");
	assert_int_equal(img_tar_name_normalize(".", out, 0, &err), -EINVAL);
}

static void test_long_names(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	/* Past ustar's 100/155 limits: pax carries it. */
	char name[301];
	memset(name, 'n', 300);
	name[300] = '\0';
	name[150] = '/';
	assert_int_equal(UNPACK(f, &err, REG(name, "long\n")), 0);
	assert_content(f, name, "long\n");
	/* Longer than PATH_MAX is refused. */
	_cleanup_free_ char *huge = malloc(PATH_MAX + 64);
	assert_non_null(huge);
	for (size_t i = 0; i < PATH_MAX + 62; i++)
		huge[i] = i % 8 == 7 ? '/' : 'h';
	huge[PATH_MAX + 62] = '\0';
	assert_err_contains(UNPACK(f, &err, REG(huge, "x")), &err, "longer than PATH_MAX");
	assert_false(exists_in(f->destfd, "hhhhhhh"));
}

/* ---- node types and metadata --------------------------------------------- */

static void test_types(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	int r = UNPACK(f, &err,
		DIR_("dir/"),
		REG("dir/file", "hello\n"),
		LNK("dir/link", "file"),
		HARD("dir/hard", "dir/file"),
		REG("implicit/parent/file", "deep\n"),
		{ .name = "dev/null", .type = AE_IFCHR, .perm = 0666, .rdev = makedev(1, 3) },
		{ .name = "dev/loop", .type = AE_IFBLK, .perm = 0660, .rdev = makedev(7, 0) },
		{ .name = "fifo", .type = AE_IFIFO, .perm = 0620 },
		REG("caf\xc3\xa9/\xff\xfe", "bytes\n"));
	if (r)
		fail_msg("%s", err.msg);
	assert_content(f, "dir/file", "hello\n");
	/* Names are bytes: UTF-8 or not, they arrive as written. */
	assert_content(f, "caf\xc3\xa9/\xff\xfe", "bytes\n");
	struct stat st = lstat_in(f, "dir/link");
	assert_true(S_ISLNK(st.st_mode));
	char target[64];
	ssize_t n = readlinkat(f->destfd, "dir/link", target, sizeof(target));
	assert_int_equal(n, 4);
	assert_memory_equal(target, "file", 4);
	struct stat a = lstat_in(f, "dir/file"), b = lstat_in(f, "dir/hard");
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(a.st_nlink, 2);
	assert_content(f, "implicit/parent/file", "deep\n");
	st = lstat_in(f, "implicit/parent");
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	st = lstat_in(f, "dev/null");
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(st.st_rdev, makedev(1, 3));
	assert_int_equal(st.st_mode & 07777, 0666);
	st = lstat_in(f, "dev/loop");
	assert_true(S_ISBLK(st.st_mode));
	assert_int_equal(st.st_rdev, makedev(7, 0));
	st = lstat_in(f, "fifo");
	assert_true(S_ISFIFO(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0620);
}

static void test_modes_owners_times(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	int r = UNPACK(f, &err,
		DIR_("d/", .perm = 02775, .uid = 1000, .gid = 1000, .mtime = 1000000),
		REG("d/suid", "x", .perm = 04755, .uid = 1000, .gid = 1001,
		    .mtime = 1234567890),
		REG("d/sgid", "x", .perm = 02711),
		DIR_("tmp/", .perm = 01777),
		REG("d/ro", "x", .perm = 0400),
		LNK("d/link", "suid", .uid = 1000, .gid = 1002, .mtime = 2000000));
	if (r)
		fail_msg("%s", err.msg);
	struct stat st = lstat_in(f, "d/suid");
	assert_int_equal(st.st_mode & 07777, 04755);
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(st.st_gid, 1001);
	assert_int_equal(st.st_mtim.tv_sec, 1234567890);
	assert_int_equal(lstat_in(f, "d/sgid").st_mode & 07777, 02711);
	assert_int_equal(lstat_in(f, "tmp").st_mode & 07777, 01777);
	assert_int_equal(lstat_in(f, "d/ro").st_mode & 07777, 0400);
	/* The directory's mtime survives the children created after it. */
	st = lstat_in(f, "d");
	assert_int_equal(st.st_mode & 07777, 02775);
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(st.st_mtim.tv_sec, 1000000);
	st = lstat_in(f, "d/link");
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(st.st_gid, 1002);
	assert_int_equal(st.st_mtim.tv_sec, 2000000);
}

static void test_root_entry(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	assert_int_equal(UNPACK(f, &err,
		DIR_("./", .perm = 0750, .mtime = 3000000),
		REG("./a", "a\n")), 0);
	struct stat st;
	assert_int_equal(fstat(f->destfd, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(st.st_mtim.tv_sec, 3000000);
	assert_content(f, "a", "a\n");
	assert_err_contains(UNPACK(f, &err, REG(".", "x")), &err, "layer root");
}

static void test_xattrs(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	/* VFS_CAP_REVISION_2 | effective, CAP_NET_RAW permitted. */
	static const char cap[20] = { 0x01, 0x00, 0x00, 0x02, 0x00, 0x20 };
	const struct ent ents[] = {
		REG("f", "x", .xattrs = { "user.keep", "yes", "trusted.evil", "1",
					  "security.selinux", "system_u:object_r:bin_t:s0" }),
		DIR_("d/", .xattrs = { "user.dir", "kept", "trusted.overlay.opaque", "y",
				       "trusted.overlay.redirect", "/etc" }),
	};
	assert_int_equal(unpack(f, ents, ARRAY_SIZE(ents), &err), 0);
	char buf[64];
	char path[160];
	snprintf(path, sizeof(path), "%s/dest/f", f->base);
	assert_int_equal(lgetxattr(path, "user.keep", buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "yes", 3);
	assert_int_equal(lgetxattr(path, "trusted.evil", buf, sizeof(buf)), -1);
	assert_int_equal(errno, ENODATA);
	assert_int_equal(lgetxattr(path, "security.selinux", buf, sizeof(buf)), -1);
	snprintf(path, sizeof(path), "%s/dest/d", f->base);
	assert_int_equal(lgetxattr(path, "user.dir", buf, sizeof(buf)), 4);
	assert_int_equal(lgetxattr(path, "trusted.overlay.opaque", buf, sizeof(buf)), -1);
	assert_int_equal(lgetxattr(path, "trusted.overlay.redirect", buf, sizeof(buf)), -1);

	/* security.capability is kept, and survives the chown. */
	struct archive *a = archive_write_new();
	_cleanup_free_ char *tar = malloc(TAR_CAP);
	size_t used = 0;
	assert_int_equal(archive_write_set_format_pax(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_memory(a, tar, TAR_CAP, &used), ARCHIVE_OK);
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, "ping");
	archive_entry_set_mode(e, AE_IFREG | 0755);
	archive_entry_set_uid(e, 1000);
	archive_entry_set_size(e, 0);
	archive_entry_xattr_add_entry(e, "security.capability", cap, sizeof(cap));
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	archive_entry_free(e);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	if (unpack_blob(f, tar, used, IMG_COMPRESSION_NONE, NULL, &err))
		fail_msg("%s", err.msg);
	snprintf(path, sizeof(path), "%s/dest/ping", f->base);
	char got[32];
	assert_int_equal(lgetxattr(path, "security.capability", got, sizeof(got)), 20);
	assert_memory_equal(got, cap, 20);
}

/* ---- replacing ----------------------------------------------------------- */

static void test_replace(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	int r = UNPACK(f, &err,
		REG("x", "file\n"),
		DIR_("x/"),
		REG("x/y", "in dir\n"),
		DIR_("d/", .mtime = 4000000),
		REG("d/child", "c\n"),
		REG("d", "now a file\n", .mtime = 5000000),
		REG("f", "old\n"),
		REG("f", "new\n"),
		LNK("l", "f"),
		REG("l", "not through\n"));
	if (r)
		fail_msg("%s", err.msg);
	assert_true(S_ISDIR(lstat_in(f, "x").st_mode));
	assert_content(f, "x/y", "in dir\n");
	assert_true(S_ISREG(lstat_in(f, "d").st_mode));
	assert_content(f, "d", "now a file\n");
	assert_int_equal(lstat_in(f, "d").st_mtim.tv_sec, 5000000);
	assert_content(f, "f", "new\n");
	/* A file over a symlink replaces the link; the target is untouched. */
	assert_true(S_ISREG(lstat_in(f, "l").st_mode));
	assert_content(f, "l", "not through\n");
	assert_content(f, "f", "new\n");
}

static void test_dir_merge(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	int r = UNPACK(f, &err,
		DIR_("m/", .perm = 0700),
		REG("m/a", "a\n"),
		DIR_("m/", .perm = 0750, .uid = 1000, .mtime = 4000000),
		REG("m/b", "b\n"));
	if (r)
		fail_msg("%s", err.msg);
	assert_content(f, "m/a", "a\n");
	assert_content(f, "m/b", "b\n");
	struct stat st = lstat_in(f, "m");
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(st.st_mtim.tv_sec, 4000000);
}

/* ---- whiteouts ------------------------------------------------------------ */

static void test_whiteouts(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	int r = UNPACK(f, &err,
		DIR_("a/"),
		REG("a/.wh.gone", ""),
		REG("a/there", "x"),
		DIR_("a/there-dir/"),
		REG("a/there-dir/c", "x"),
		REG("a/.wh.there", ""),
		REG("a/.wh.there-dir", ""),
		DIR_("o/"),
		REG("o/.wh..wh..opq", ""),
		REG("o/.wh..wh.plnk", ""),
		REG(".wh..wh.aufs", ""),
		DIR_(".wh..wh.plnk/"),
		REG(".wh..wh.plnk/123.456", "aufs"),
		REG("o/.wh..wh.orph/x/y", "aufs"),
		REG("new/deep/.wh.x", ""));
	if (r)
		fail_msg("%s", err.msg);
	const char *wh[] = { "a/gone", "a/there", "a/there-dir", "new/deep/x" };
	for (size_t i = 0; i < ARRAY_SIZE(wh); i++) {
		struct stat st = lstat_in(f, wh[i]);
		assert_true(S_ISCHR(st.st_mode));
		assert_int_equal(st.st_rdev, makedev(0, 0));
	}
	assert_false(exists_in(f->destfd, "a/.wh.gone"));
	assert_false(exists_in(f->destfd, "o/.wh..wh..opq"));
	assert_false(exists_in(f->destfd, "o/.wh..wh.plnk"));
	assert_false(exists_in(f->destfd, ".wh..wh.aufs"));
	assert_false(exists_in(f->destfd, ".wh..wh.plnk"));
	assert_false(exists_in(f->destfd, "o/.wh..wh.orph"));
	char path[160], buf[8];
	snprintf(path, sizeof(path), "%s/dest/o", f->base);
	assert_int_equal(lgetxattr(path, "trusted.overlay.opaque", buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], 'y');
	snprintf(path, sizeof(path), "%s/dest/a", f->base);
	assert_int_equal(lgetxattr(path, "trusted.overlay.opaque", buf, sizeof(buf)), -1);

	assert_err_contains(UNPACK(f, &err, REG("a/.wh...", "")), &err, "whiteout of \"..\"");
	assert_err_contains(UNPACK(f, &err, REG("a/.wh..", "")), &err, "whiteout of \".\"");
	assert_err_contains(UNPACK(f, &err, REG("a/.wh..", "")), &err, "layer entry \"a/.wh..\"");
	assert_err_contains(UNPACK(f, &err, REG("a/.wh.", "")), &err, "whiteout");
	assert_true(S_ISDIR(lstat_in(f, "a").st_mode));
}

/* ---- compression and diff id ------------------------------------------------ */

static void test_compressions(void **state)
{
	struct fixture *f = *state;
	const struct ent ents[] = { DIR_("etc/"), REG("etc/hostname", "berth\n") };
	_cleanup_free_ char *tar = NULL;
	size_t len = make_tar(ents, ARRAY_SIZE(ents), &tar);
	char diff_id[SHA256_DIGEST_STRLEN];
	assert_int_equal(sha256_buf(tar, len, diff_id), 0);
	static const struct { int filter; enum img_compression comp; } cases[] = {
		{ ARCHIVE_FILTER_NONE, IMG_COMPRESSION_NONE },
		{ ARCHIVE_FILTER_GZIP, IMG_COMPRESSION_GZIP },
		{ ARCHIVE_FILTER_ZSTD, IMG_COMPRESSION_ZSTD },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *blob = NULL;
		size_t blen = compress(tar, len, cases[i].filter, &blob);
		if (cases[i].comp != IMG_COMPRESSION_NONE)
			assert_int_not_equal(memcmp(blob, tar, 16), 0);
		assert_int_equal(berth_rm_rf_at(f->destfd, "etc", NULL), 0);
		struct berth_err err = { 0 };
		if (unpack_blob(f, blob, blen, cases[i].comp, diff_id, &err))
			fail_msg("case %zu: %s", i, err.msg);
		assert_content(f, "etc/hostname", "berth\n");
		/* The data must be what the descriptor says. */
		enum img_compression other = (cases[i].comp + 1) % 3;
		assert_true(unpack_blob(f, blob, blen, other, diff_id, &err) < 0);
	}
	struct berth_err err = { 0 };
	assert_int_equal(unpack_blob(f, tar, len, (enum img_compression)7, NULL, &err), -EINVAL);
	/* A truncated gzip stream is an error, not a short layer. */
	_cleanup_free_ char *gz = NULL;
	size_t gzlen = compress(tar, len, ARCHIVE_FILTER_GZIP, &gz);
	assert_err_contains(unpack_blob(f, gz, gzlen / 2, IMG_COMPRESSION_GZIP, NULL, &err), &err,
			    "decompress layer");
}

static void test_diff_id(void **state)
{
	struct fixture *f = *state;
	const struct ent ents[] = { REG("a", "a\n") };
	_cleanup_free_ char *tar = NULL;
	size_t len = make_tar(ents, ARRAY_SIZE(ents), &tar);
	/* The digest covers the whole stream, end-of-archive blocks and
	 * record padding included. */
	assert_int_equal(len % 10240, 0);
	char diff_id[SHA256_DIGEST_STRLEN];
	assert_int_equal(sha256_buf(tar, len, diff_id), 0);
	_cleanup_free_ char *gz = NULL;
	size_t gzlen = compress(tar, len, ARCHIVE_FILTER_GZIP, &gz);
	struct berth_err err = { 0 };
	assert_int_equal(unpack_blob(f, gz, gzlen, IMG_COMPRESSION_GZIP, diff_id, &err), 0);

	const char *wrong = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
	int r = unpack_blob(f, gz, gzlen, IMG_COMPRESSION_GZIP, wrong, &err);
	assert_int_equal(r, -EBADMSG);
	char want[256];
	snprintf(want, sizeof(want), "diff id mismatch: expected %s, got %s", wrong, diff_id);
	assert_string_equal(err.msg, want);

	/* Trailing bytes after the archive count too. */
	_cleanup_free_ char *longer = malloc(len + 512);
	memcpy(longer, tar, len);
	memset(longer + len, 0, 512);
	assert_int_equal(unpack_blob(f, longer, len + 512, IMG_COMPRESSION_NONE, diff_id, &err),
			 -EBADMSG);
	assert_int_equal(sha256_buf(longer, len + 512, diff_id), 0);
	assert_int_equal(unpack_blob(f, longer, len + 512, IMG_COMPRESSION_NONE, diff_id, &err), 0);
}

/* A layer that expands past the cap stops there: the file being written
 * holds at most the cap, and every byte of the stream counts (the end of
 * archive and record padding too). */
static void test_unpacked_cap(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *big = malloc(200 * 1024 + 1);
	assert_non_null(big);
	memset(big, 'z', 200 * 1024);
	big[200 * 1024] = '\0';
	const struct ent ents[] = { REG("zeros", big) };
	_cleanup_free_ char *tar = NULL;
	size_t len = make_tar(ents, ARRAY_SIZE(ents), &tar);
	_cleanup_free_ char *zst = NULL;
	size_t zlen = compress(tar, len, ARCHIVE_FILTER_ZSTD, &zst);
	assert_true(zlen < 4096);
	struct berth_err err = { 0 };
	assert_err_contains(unpack_capped(f, zst, zlen, IMG_COMPRESSION_ZSTD, NULL, 64 * 1024, &err),
			    &err, "unpacks to more than 65536 bytes: refused");
	assert_int_equal(err.code, EFBIG);
	assert_true(lstat_in(f, "zeros").st_size <= 64 * 1024);
	assert_err_contains(unpack_capped(f, zst, zlen, IMG_COMPRESSION_ZSTD, NULL,
					  (int64_t)len - 1, &err), &err, "unpacks to more than");
	assert_int_equal(unpack_capped(f, zst, zlen, IMG_COMPRESSION_ZSTD, NULL, (int64_t)len,
				       &err), 0);
	assert_int_equal(lstat_in(f, "zeros").st_size, 200 * 1024);
}

static void test_bad_hardlinks(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	assert_err_contains(UNPACK(f, &err, DIR_("d/"), HARD("h", "d")), &err,
			    "layer entry \"h\": hardlink target \"d\" is a directory");
	assert_err_contains(UNPACK(f, &err, HARD("h", "missing")), &err, "not an earlier entry");
	assert_err_contains(UNPACK(f, &err, HARD("h", "./")), &err, "not a valid name");
	assert_false(exists_in(f->destfd, "h"));
	assert_outside_intact(f);
}

/* ---- breakouts -------------------------------------------------------------- */

static void test_absolute_symlink(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	char pwn[160];
	snprintf(pwn, sizeof(pwn), "%s/canary", f->outside);
	/* A file over the link replaces the link ... */
	assert_int_equal(UNPACK(f, &err, LNK("link", pwn), REG("link", "pwned\n")), 0);
	assert_content(f, "link", "pwned\n");
	assert_outside_intact(f);
	/* ... and a write through it resolves inside the layer, where the
	 * target does not exist: refused. */
	assert_err_contains(UNPACK(f, &err, LNK("dlink", f->outside), REG("dlink/canary", "pwned\n")),
			    &err, "layer entry \"dlink/canary\": parent directory \"dlink\"");
	assert_int_equal(err.code, ENOENT);
	assert_outside_intact(f);
	/* Once the layer has that directory, the write lands there. */
	assert_int_equal(UNPACK(f, &err, DIR_(inside_path(f, "")), LNK("dlink", f->outside),
				REG("dlink/canary", "pwned\n")), 0);
	assert_content(f, inside_path(f, "canary"), "pwned\n");
	assert_outside_intact(f);
	/* "/" is the layer root. */
	assert_int_equal(UNPACK(f, &err, LNK("root", "/"), REG("root/x", "inside\n")), 0);
	assert_content(f, "x", "inside\n");
	assert_outside_intact(f);
}

static void test_symlink_up_and_out(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	/* dest/../outside is the canary's directory; in the layer it is the
	 * layer's own "outside". */
	assert_int_equal(UNPACK(f, &err, DIR_("outside/"), LNK("up", "../outside"),
				REG("up/canary", "pwned\n")), 0);
	assert_content(f, "outside/canary", "pwned\n");
	assert_outside_intact(f);
	/* ".." stops at the layer root: dest/tmp, which does not exist. */
	int r = UNPACK(f, &err, LNK("far", "../../../../../../../../tmp"), REG("far/pwned", "x"));
	assert_int_equal(r, -ENOENT);
	assert_false(exists_in(f->basefd, "pwned"));
	assert_outside_intact(f);
	r = UNPACK(f, &err, LNK("deep/er", "../../../outside/canary"), REG("deep/er", "x"));
	assert_int_equal(r, 0);
	assert_outside_intact(f);
}

static void test_hardlink_out(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	/* Down and out: through a symlink to the outside. */
	assert_err_contains(UNPACK(f, &err, LNK("l", f->outside), HARD("h", "l/canary")), &err,
			    "not an earlier entry");
	assert_err_contains(UNPACK(f, &err, LNK("up", ".."), HARD("h2", "up/outside/canary")),
			    &err, "not an earlier entry");
	assert_err_contains(UNPACK(f, &err, HARD("h3", "../outside/canary")), &err,
			    "not a valid name");
	/* Absolute targets are names inside the layer. */
	assert_err_contains(UNPACK(f, &err, HARD("passwd", "/etc/passwd")), &err,
			    "layer entry \"passwd\": hardlink target \"/etc/passwd\" is not an earlier entry");
	char abs[160];
	snprintf(abs, sizeof(abs), "%s/canary", f->outside);
	assert_err_contains(UNPACK(f, &err, HARD("h4", abs)), &err, "not an earlier entry");
	assert_false(exists_in(f->destfd, "h"));
	assert_false(exists_in(f->destfd, "passwd"));
	assert_outside_intact(f);
	/* An absolute target that is inside is fine. */
	assert_int_equal(UNPACK(f, &err, REG("etc/passwd", "root\n"), HARD("pw", "/etc/passwd")), 0);
	assert_int_equal(lstat_in(f, "pw").st_ino, lstat_in(f, "etc/passwd").st_ino);
}

static void test_symlinked_parent(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	int r = UNPACK(f, &err, LNK("etc", f->outside), REG("etc/canary", "pwned\n"),
		       DIR_("etc/sub/"), LNK("etc/sl", "x"));
	assert_int_equal(r, -ENOENT);
	assert_outside_intact(f);
	r = UNPACK(f, &err, LNK("rel", "../outside"), DIR_("rel/newdir/"), REG("rel/canary", "x"));
	assert_int_equal(r, -ENOENT);
	assert_false(exists_in(f->destfd, "outside"));
	assert_outside_intact(f);
	/* A chain of links stays inside too. */
	r = UNPACK(f, &err, LNK("a", "b"), LNK("b", "/../../.."), DIR_("a/outside/"),
		   REG("a/outside/canary", "chained\n"));
	assert_int_equal(r, 0);
	assert_content(f, "outside/canary", "chained\n");
	assert_outside_intact(f);
}

static void test_dir_over_symlink(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	assert_int_equal(UNPACK(f, &err, LNK("d", f->outside),
				DIR_("d/", .perm = 0777, .uid = 1000),
				REG("d/canary", "inside\n")), 0);
	struct stat st = lstat_in(f, "d");
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0777);
	assert_content(f, "d/canary", "inside\n");
	assert_outside_intact(f);
}

static void test_whiteout_breakouts(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	/* Whiteout of a parent: a whiteout under a symlinked directory. */
	assert_err_contains(UNPACK(f, &err, LNK("s", f->outside), REG("s/.wh.canary", "")), &err,
			    "layer entry \"s/.wh.canary\"");
	assert_outside_intact(f);
	assert_true(UNPACK(f, &err, LNK("r", ".."), REG("r/outside/.wh.canary", "")) < 0);
	assert_true(UNPACK(f, &err, REG("../outside/.wh.canary", "")) < 0);
	assert_true(UNPACK(f, &err, LNK("o", f->outside), REG("o/.wh..wh..opq", "")) < 0);
	assert_outside_intact(f);
	char path[160];
	snprintf(path, sizeof(path), "%s/.wh..wh..opq", f->outside);
	assert_true(UNPACK(f, &err, REG(path, "")) == 0);
	assert_outside_intact(f);
	/* Whiteout through a symlink: replaces the link itself. */
	assert_int_equal(UNPACK(f, &err, LNK("t", f->outside), REG(".wh.t", "")), 0);
	assert_true(S_ISCHR(lstat_in(f, "t").st_mode));
	assert_outside_intact(f);
	assert_err_contains(UNPACK(f, &err, REG(".wh..", "")), &err, "not allowed");
	assert_outside_intact(f);
}

static void test_dotdot_names(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	const char *names[] = { "../pwned", "a/../../pwned", "..", "./../outside/canary",
				"/../outside/canary", "x/../../../outside/canary" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		int r = UNPACK(f, &err, REG(names[i], "pwned\n"));
		assert_int_equal(r, -EINVAL);
		assert_non_null(strstr(err.msg, "\"..\" component"));
		assert_outside_intact(f);
	}
	assert_int_equal(UNPACK(f, &err, LNK("l", "../outside/canary")), 0);
	assert_true(UNPACK(f, &err, HARD("h", "../outside/canary")) < 0);
	assert_int_equal(count_entries(f->destfd, "."), 1);
	assert_outside_intact(f);
}

static void test_absolute_names(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	char path[160];
	snprintf(path, sizeof(path), "%s/canary", f->outside);
	assert_int_equal(UNPACK(f, &err, REG("/pwned", "a\n"), REG(path, "b\n"),
				REG("//etc/../", "c")), -EINVAL);
	assert_int_equal(UNPACK(f, &err, REG("/pwned", "a\n"), REG(path, "b\n")), 0);
	assert_content(f, "pwned", "a\n");
	assert_content(f, path + 1, "b\n");
	assert_outside_intact(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalize_table),
		cmocka_unit_test(test_normalize_too_long),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_long_names),
		T(test_types),
		T(test_modes_owners_times),
		T(test_root_entry),
		T(test_xattrs),
		T(test_replace),
		T(test_dir_merge),
		T(test_whiteouts),
		T(test_compressions),
		T(test_diff_id),
		T(test_unpacked_cap),
		T(test_bad_hardlinks),
		T(test_absolute_symlink),
		T(test_symlink_up_and_out),
		T(test_hardlink_out),
		T(test_symlinked_parent),
		T(test_dir_over_symlink),
		T(test_whiteout_breakouts),
		T(test_dotdot_names),
		T(test_absolute_names),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
