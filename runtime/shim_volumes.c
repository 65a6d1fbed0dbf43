/* berth-shim: the task's volumes (docs/task-environment.md "Volumes").
 *
 * Each volume is opened once at set-up, beneath its root with
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, so a symlink in a host path
 * cannot lead out of the operator's allowed prefix; the containers' binds
 * are clones of that fd (runtime/mounts.c), never of a path looked up
 * again.  Task volumes live in <taskDir>/volumes and go with the task; a
 * named volume is held with a shared flock for the task's life, which
 * `berth volume rm` (an exclusive one) respects. */
#include "runtime/shim_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <limits.h>
#include <string.h>
#include <sys/file.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/fsutil.h"

static int open_beneath(int rootfd, const char *path, int flags)
{
	struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC),
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
	int fd;
	while ((fd = (int)syscall(SYS_openat2, rootfd, path[0] ? path : ".", &how, sizeof(how))) < 0 &&
	       errno == EAGAIN)
		;
	return fd;
}

static int open_volume(const struct plan_volume *v, int *ret, struct berth_err *err)
{
	_cleanup_close_ int root = -1;
	int r = 0;
	if (v->create)
		r = berth_open_dir_p(v->root, 0700, &root, err);
	else if ((root = open(v->root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		r = berth_errnof(err, errno, "%s", v->root);
	if (r < 0)
		return r;
	if (v->create && mkdirat(root, v->path, 0755) < 0 && errno != EEXIST)
		return berth_errnof(err, errno, "create %s/%s", v->root, v->path);
	_cleanup_close_ int fd = open_beneath(root, v->path, v->shared ? O_RDONLY | O_DIRECTORY
									 : O_PATH);
	if (fd < 0 && errno == EXDEV)
		return berth_errf(err, EXDEV, "%s/%s: a symlink leads out of %s", v->root, v->path,
				  v->root);
	if (fd < 0 && errno == ELOOP)
		return berth_errf(err, ELOOP, "%s/%s: a symlink on the way is a /proc magic link "
				  "or loops", v->root, v->path);
	if (fd < 0)
		return berth_errnof(err, errno, "%s/%s", v->root, v->path);
	if (v->shared && flock(fd, LOCK_SH | LOCK_NB) < 0)
		return berth_errnof(err, errno == EWOULDBLOCK ? EBUSY : errno,
				    "%s/%s: being removed", v->root, v->path);
	*ret = TAKE_FD(fd);
	return 0;
}

int shim_volumes_open(struct shim *s, struct berth_err *err)
{
	const struct plan *p = s->plan;
	if (p->n_volumes == 0)
		return 0;
	if (!(s->vol_fds = malloc(p->n_volumes * sizeof(int))))
		return berth_errf(err, ENOMEM, "volumes: out of memory");
	for (size_t i = 0; i < p->n_volumes; i++)
		s->vol_fds[i] = -1;
	for (size_t i = 0; i < p->n_volumes; i++) {
		int r = open_volume(&p->volumes[i], &s->vol_fds[i], err);
		if (r < 0)
			return berth_err_wrap(err, "volume %s", p->volumes[i].name);
	}
	return 0;
}

void shim_volumes_close(struct shim *s)
{
	for (size_t i = 0; s->vol_fds && i < s->plan->n_volumes; i++)
		if (s->vol_fds[i] >= 0)
			close(s->vol_fds[i]);
	free(TAKE_PTR(s->vol_fds));
}

int shim_volumes_remove(const struct plan *p, struct berth_err *err)
{
	_cleanup_free_ char *dir = NULL;
	if (asprintf(&dir, "%s/volumes", p->task_dir) < 0) {
		dir = NULL;
		return berth_errf(err, ENOMEM, "out of memory");
	}
	return berth_rm_rf_at(AT_FDCWD, dir, err);
}

/* ---- seeding a volume with the image's files (ECS's VOLUME rule) -------- */

#define SEED_DEPTH_MAX 64

/* A file of the image with more than one name: copied once, linked after,
 * so hard links cannot multiply what a layer holds. */
struct seed_link {
	dev_t dev;
	ino_t ino;
	char *rel;              /* its copy, relative to the volume */
};

struct seed {
	int root;               /* the volume */
	char rel[PATH_MAX];     /* the directory being copied, relative to it */
	struct seed_link *links;
	size_t n_links;
};

static void seed_done(struct seed *sd)
{
	for (size_t i = 0; i < sd->n_links; i++)
		free(sd->links[i].rel);
	free(sd->links);
}

static int copy_dir(struct seed *sd, int src, int dst, int depth, struct berth_err *err);

/* The image's owner and mode on FD; set-id bits are dropped. */
static int copy_owner(int fd, const struct stat *st, const char *name, struct berth_err *err)
{
	mode_t keep = S_ISDIR(st->st_mode) ? 01777 : 0777;
	if (fchown(fd, st->st_uid, st->st_gid) < 0 || fchmod(fd, st->st_mode & keep) < 0)
		return berth_errnof(err, errno, "%s: owner and mode", name);
	return 0;
}

/* "rel/name" of the entry NAME in the directory being copied; NULL: OOM. */
static char *rel_name(const struct seed *sd, const char *name)
{
	char *p = NULL;
	return asprintf(&p, "%s%s%s", sd->rel, sd->rel[0] ? "/" : "", name) < 0 ? NULL : p;
}

/* 1 when NAME was made a link to an earlier copy of the same file, 0 when
 * it is to be copied (and is recorded when it has other names). */
static int link_known(struct seed *sd, int dst, const char *name, const struct stat *st,
		      struct berth_err *err)
{
	if (st->st_nlink < 2)
		return 0;
	for (size_t i = 0; i < sd->n_links; i++)
		if (sd->links[i].dev == st->st_dev && sd->links[i].ino == st->st_ino)
			return linkat(sd->root, sd->links[i].rel, dst, name, 0) < 0
				? berth_errnof(err, errno, "%s", name) : 1;
	struct seed_link *grown = realloc(sd->links, (sd->n_links + 1) * sizeof(*grown));
	char *rel = grown ? rel_name(sd, name) : NULL;
	if (grown)
		sd->links = grown;
	if (!rel)
		return berth_errf(err, ENOMEM, "out of memory");
	sd->links[sd->n_links++] = (struct seed_link){ st->st_dev, st->st_ino, rel };
	return 0;
}

static int copy_file(struct seed *sd, int src, int dst, const char *name, const struct stat *st,
		     struct berth_err *err)
{
	int r = link_known(sd, dst, name, st, err);
	if (r != 0)
		return r < 0 ? r : 0;
	_cleanup_close_ int in = openat(src, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int out = openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
					 O_CLOEXEC, 0600);
	if (in < 0 || out < 0)
		return berth_errnof(err, errno, "%s", name);
	for (off_t left = st->st_size; left > 0;) {
		ssize_t n = sendfile(out, in, NULL, left > (1 << 30) ? (1 << 30) : (size_t)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return berth_errnof(err, n < 0 ? errno : EIO, "%s: copy", name);
		left -= n;
	}
	return copy_owner(out, st, name, err);
}

static int copy_link(int src, int dst, const char *name, const struct stat *st,
		     struct berth_err *err)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(src, name, target, sizeof(target) - 1);
	if (n < 0)
		return berth_errnof(err, errno, "%s", name);
	target[n] = '\0';
	if (symlinkat(target, dst, name) < 0 ||
	    fchownat(dst, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return berth_errnof(err, errno, "%s", name);
	return 0;
}

static int copy_subdir(struct seed *sd, int src, int dst, const char *name,
		       const struct stat *st, int depth, struct berth_err *err)
{
	if (depth >= SEED_DEPTH_MAX)
		return berth_errf(err, ELOOP, "%s: more than %d levels", name, SEED_DEPTH_MAX);
	if (mkdirat(dst, name, 0700) < 0)
		return berth_errnof(err, errno, "%s", name);
	_cleanup_close_ int sub_src = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					     O_CLOEXEC);
	_cleanup_close_ int sub_dst = openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					     O_CLOEXEC);
	if (sub_src < 0 || sub_dst < 0)
		return berth_errnof(err, errno, "%s", name);
	size_t len = strlen(sd->rel);
	if (snprintf(sd->rel + len, sizeof(sd->rel) - len, "%s%s", len ? "/" : "", name) >=
	    (int)(sizeof(sd->rel) - len))
		return berth_errf(err, ENAMETOOLONG, "%s: path too long", name);
	int r = copy_dir(sd, sub_src, sub_dst, depth + 1, err);
	sd->rel[len] = '\0';
	if (r < 0)
		return berth_err_wrap(err, "%s", name);
	return copy_owner(sub_dst, st, name, err);
}

/* One entry, never through a link; devices, fifos and sockets are left
 * out (the volume is nodev anyway). */
static int copy_entry(struct seed *sd, int src, int dst, const char *name, int depth,
		      struct berth_err *err)
{
	struct stat st;
	if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return berth_errnof(err, errno, "%s", name);
	if (S_ISREG(st.st_mode))
		return copy_file(sd, src, dst, name, &st, err);
	if (S_ISLNK(st.st_mode))
		return copy_link(src, dst, name, &st, err);
	if (S_ISDIR(st.st_mode))
		return copy_subdir(sd, src, dst, name, &st, depth, err);
	return 0;
}

/* A stream of the directory FD (which stays open); NULL with errno. */
static DIR *read_dir(int fd)
{
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d && dfd >= 0) {
		int e = errno;
		close(dfd);
		errno = e;
	}
	return d;
}

static int copy_dir(struct seed *sd, int src, int dst, int depth, struct berth_err *err)
{
	DIR *d = read_dir(src);
	if (!d)
		return berth_errnof(err, errno, "read directory");
	struct dirent *de;
	int r = 0;
	while (r == 0 && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			r = copy_entry(sd, src, dst, de->d_name, depth, err);
	closedir(d);
	return r;
}

/* 1 when the directory FD holds nothing, 0 when it does. */
static int is_empty(int fd, struct berth_err *err)
{
	DIR *d = read_dir(fd);
	if (!d)
		return berth_errnof(err, errno, "read");
	struct dirent *de;
	int empty = 1;
	while (empty && (de = readdir(d)))
		empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
	closedir(d);
	return empty;
}

/* The image's directory at PATH, opened as the container would see it:
 * -ENOENT when it has none there. */
static int open_image_dir(const struct plan_container *pc, const char *path, int *ret,
			  struct berth_err *err)
{
	_cleanup_free_ const char **top_first = calloc(pc->layers.n, sizeof(char *));
	if (!top_first)
		return berth_errf(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < pc->layers.n; i++)
		top_first[i] = pc->layers.v[pc->layers.n - 1 - i];
	_cleanup_close_ int view = -1;
	int r = rt_mounts_image_view(top_first, pc->layers.n, &view, err);
	if (r < 0)
		return r;
	struct open_how how = { .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	int fd;
	while ((fd = (int)syscall(SYS_openat2, view, path + 1, &how, sizeof(how))) < 0 &&
	       errno == EAGAIN)
		;
	if (fd < 0 && (errno == ENOENT || errno == ENOTDIR))
		return -ENOENT;
	if (fd < 0)
		return berth_errnof(err, errno, "the image's %s", path);
	*ret = fd;
	return 0;
}

/* An empty volume Berth made, mounted at a path the image declares a
 * VOLUME at, gets the image's files there, owner and mode included (its
 * root takes the image directory's).  1 when it did. */
static int seed(const struct plan_container *pc, const struct plan_mount *m, int vol_fd,
		struct berth_err *err)
{
	int r = is_empty(vol_fd, err);
	if (r <= 0)
		return r;
	_cleanup_close_ int src = -1;
	_cleanup_close_ int dst = openat(vol_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	if (dst < 0)
		return berth_errnof(err, errno, "open");
	r = open_image_dir(pc, m->container_path, &src, err);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	struct seed sd = { .root = dst };
	r = copy_dir(&sd, src, dst, 0, err);
	seed_done(&sd);
	if (r < 0)
		return berth_err_wrap(err, "copy the image's %s", m->container_path);
	if (fstat(src, &st) < 0)
		return berth_errnof(err, errno, "the image's %s", m->container_path);
	r = copy_owner(dst, &st, m->container_path, err);
	return r < 0 ? r : 1;
}

/* A volume Berth made (task or named) still owned by root becomes the
 * first non-root container user's that mounts it read-write, so a task
 * whose image runs as `app` can write its volume; a host path keeps the
 * owner the operator gave it. */
static int claim(const struct plan_volume *v, int fd, const struct rt_user *u,
		 struct berth_err *err)
{
	struct stat st;
	if (!v->create || u->uid == 0)
		return 0;
	if (fstat(fd, &st) < 0)
		return berth_errnof(err, errno, "stat");
	if (st.st_uid != 0 || fchownat(fd, "", u->uid, u->gid, AT_EMPTY_PATH) == 0)
		return 0;
	return berth_errnof(err, errno, "chown to %u:%u", (unsigned)u->uid, (unsigned)u->gid);
}

static size_t depth(const char *path)
{
	size_t n = 0;
	for (; *path; path++)
		n += *path == '/';
	return n;
}

/* Parents before children (stable), as Docker orders mounts: /data/sub
 * listed before /data would otherwise end up hidden under it. */
static void sort_by_depth(struct rt_bind *b, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct rt_bind x = b[i];
		size_t j = i;
		for (; j > 0 && depth(b[j - 1].dest) > depth(x.dest); j--)
			b[j] = b[j - 1];
		b[j] = x;
	}
}

int shim_volumes_binds(struct shim *s, struct ctr *c, struct rt_bind *binds,
		       struct berth_err *err)
{
	for (size_t i = 0; i < c->pc->n_mounts; i++) {
		const struct plan_mount *m = &c->pc->mounts[i];
		const struct plan_volume *v = &s->plan->volumes[m->volume];
		int fd = s->vol_fds[m->volume];
		int r = m->image_volume && v->create ? seed(c->pc, m, fd, err) : 0;
		if (r == 0 && !m->readonly)
			r = claim(v, fd, &c->user, err);
		if (r < 0)
			return berth_err_wrap(err, "volume %s", v->name);
		binds[i] = (struct rt_bind){ .dest = m->container_path, .source_fd = fd,
					     .writable = !m->readonly };
	}
	sort_by_depth(binds, c->pc->n_mounts);
	return 0;
}
