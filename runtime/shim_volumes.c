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
#include <sys/file.h>
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
		return berth_errnof(err, errno, "volume %s", v->name);
	if (st.st_uid != 0 || fchownat(fd, "", u->uid, u->gid, AT_EMPTY_PATH) == 0)
		return 0;
	return berth_errnof(err, errno, "volume %s: chown to %u:%u", v->name, (unsigned)u->uid,
			    (unsigned)u->gid);
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
		int fd = s->vol_fds[m->volume];
		if (!m->readonly) {
			int r = claim(&s->plan->volumes[m->volume], fd, &c->user, err);
			if (r < 0)
				return r;
		}
		binds[i] = (struct rt_bind){ .dest = m->container_path, .source_fd = fd,
					     .writable = !m->readonly };
	}
	sort_by_depth(binds, c->pc->n_mounts);
	return 0;
}
