/* Backend detection, the driver and the group lifecycle common to v1 and v2
 * (see cgroup.h for the mapping and the delegation design). */
#include "cgroups/cgroup_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

#define CG_MOUNT_BASE "/sys/fs/cgroup"
#define CG_NAME_MAX 128
#define CG_REL_MAX 512

static const char *const cg_ctl_names[] = { "cpu", "cpuacct", "memory", "pids", "devices" };

struct mountinfo_hit {
	char mnt[512];   /* mount point */
	char root[512];  /* part of the hierarchy mounted there */
};

/* Finds in /proc/self/mountinfo the cgroup2 mount at /sys/fs/cgroup
 * (ctl == NULL) or the first v1 hierarchy under /sys/fs/cgroup/ that
 * serves ctl.  Mount points with escaped characters are never cgroup mounts
 * Berth uses, so the fields are compared as they stand. */
static bool find_mount(const char *mountinfo, const char *ctl, struct mountinfo_hit *hit)
{
	_cleanup_free_ char *copy = strdup(mountinfo);
	if (!copy)
		return false;
	char *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char root[512], mnt[512], fstype[32], opts[512];
		char *sep = strstr(line, " - ");
		if (!sep || sscanf(line, "%*s %*s %*s %511s %511s", root, mnt) != 2 ||
		    sscanf(sep + 3, "%31s %*s %511s", fstype, opts) != 2)
			continue;
		bool ok = ctl ? !strcmp(fstype, "cgroup") && !strncmp(mnt, CG_MOUNT_BASE "/",
								      sizeof(CG_MOUNT_BASE)) &&
					cg_has_token(opts, ctl, ',')
			      : !strcmp(fstype, "cgroup2") && !strcmp(mnt, CG_MOUNT_BASE);
		if (ok) {
			memcpy(hit->root, root, sizeof(root));
			memcpy(hit->mnt, mnt, sizeof(mnt));
			return true;
		}
	}
	return false;
}

/* This process's cgroup path in the hierarchy serving ctl (NULL: v2). */
static bool own_cgroup(const char *proc_cgroup, const char *ctl, char *ret, size_t size)
{
	_cleanup_free_ char *copy = strdup(proc_cgroup);
	if (!copy)
		return false;
	char *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		bool ok = ctl ? cg_has_token(c1 + 1, ctl, ',') : !strcmp(line, "0:");
		if (ok && strlen(c2 + 1) < size) {
			strcpy(ret, c2 + 1);
			return true;
		}
	}
	return false;
}

/* <mount>/<own minus the mounted root>/<name>, or NULL if own lies outside
 * what is mounted (a foreign cgroup namespace). */
static char *root_path(const struct mountinfo_hit *hit, const char *own, const char *name)
{
	size_t rl = strlen(hit->root);
	if (strcmp(hit->root, "/")) {
		if (strncmp(own, hit->root, rl) || (own[rl] != '/' && own[rl] != '\0'))
			return NULL;
		own += rl;
	}
	while (*own == '/')
		own++;
	char *p = NULL;
	if (asprintf(&p, "%s%s%s/%s", hit->mnt, *own ? "/" : "", own, name) < 0)
		return NULL;
	return p;
}

struct probe_in {
	const char *mountinfo;
	const char *proc_cgroup;
	const char *name;
};

static int probe_v2(const struct probe_in *in, struct cg_driver *d, struct berth_err *err)
{
	struct mountinfo_hit hit;
	char own[1024];
	if (!find_mount(in->mountinfo, NULL, &hit))
		return berth_errf(err, ENOTSUP, "no cgroup2 mount at " CG_MOUNT_BASE);
	if (!own_cgroup(in->proc_cgroup, NULL, own, sizeof(own)))
		return berth_errf(err, ENOTSUP, "no cgroup2 entry in /proc/self/cgroup");
	/* Already in <own>/<name>/agent (moved there by an earlier open, or
	 * started by a process that was, like a shim spawned by the daemon):
	 * the tree is rooted at <own> again, not nested below the leaf. */
	char leaf[CG_NAME_MAX + 16];
	snprintf(leaf, sizeof(leaf), "/%s/%s", in->name, cg_v2_ops.reserved);
	size_t ol = strlen(own), ll = strlen(leaf);
	if (ol >= ll && !strcmp(own + ol - ll, leaf))
		own[ol - ll > 0 ? ol - ll : 1] = '\0';
	_cleanup_free_ char *root = root_path(&hit, own, in->name);
	if (!root)
		return berth_errf(err, ENOTSUP, "own cgroup2 %s is outside the mount", own);
	_cleanup_free_ char *ctls = NULL, *file = NULL;
	if (asprintf(&file, "%.*s/cgroup.controllers", (int)(strrchr(root, '/') - root), root) < 0)
		return berth_errf(err, ENOMEM, "cgroup2: out of memory");
	int r = cg_read_at(AT_FDCWD, "/", file, 4096, &ctls, err);
	if (r < 0)
		return r;
	ctls[strcspn(ctls, "\n")] = '\0';
	for (unsigned i = 0; i < ARRAY_SIZE(cg_ctl_names); i++) {
		/* cpuacct and devices have no v2 controller: cpu.stat carries
		 * usage, a BPF program does the devices' job. */
		if (strcmp(cg_ctl_names[i], "cpuacct") && strcmp(cg_ctl_names[i], "devices") &&
		    !cg_has_token(ctls, cg_ctl_names[i], ' '))
			return berth_errf(err, ENOTSUP, "cgroup2 %s: controller %s not available "
					  "(cgroup.controllers: \"%s\")", own, cg_ctl_names[i], ctls);
	}
	d->hier[0] = (struct cg_hier){ .ctls = CG_CTL_CPU | CG_CTL_CPUACCT | CG_CTL_MEMORY |
					       CG_CTL_PIDS | CG_CTL_DEVICES,
				       .root = TAKE_PTR(root), .fd = -1 };
	d->nhier = 1;
	d->version = CG_VERSION_2;
	d->ops = &cg_v2_ops;
	return 0;
}

static int probe_v1(const struct probe_in *in, struct cg_driver *d, struct berth_err *err)
{
	for (unsigned i = 0; i < ARRAY_SIZE(cg_ctl_names); i++) {
		const char *ctl = cg_ctl_names[i];
		struct mountinfo_hit hit;
		char own[1024];
		if (!find_mount(in->mountinfo, ctl, &hit))
			return berth_errf(err, ENOTSUP, "no cgroup v1 hierarchy for %s under "
					  CG_MOUNT_BASE, ctl);
		if (!own_cgroup(in->proc_cgroup, ctl, own, sizeof(own)))
			return berth_errf(err, ENOTSUP, "no %s entry in /proc/self/cgroup", ctl);
		_cleanup_free_ char *root = root_path(&hit, own, in->name);
		if (!root)
			return berth_errf(err, ENOTSUP, "cgroup v1 %s: own cgroup %s is outside "
					  "the mount", ctl, own);
		unsigned h = 0;
		while (h < d->nhier && strcmp(d->hier[h].root, root))
			h++;
		if (h == d->nhier)  /* a new hierarchy; co-mounted ones share */
			d->hier[d->nhier++] = (struct cg_hier){ .root = TAKE_PTR(root), .fd = -1 };
		d->hier[h].ctls |= 1u << i;
	}
	d->version = CG_VERSION_1;
	d->ops = &cg_v1_ops;
	return 0;
}

static bool valid_component(const char *s, size_t len)
{
	if (len == 0 || len > CG_NAME_MAX || (len <= 2 && !strncmp(s, "..", len)))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", s[i]))
			return false;
	return true;
}

static int probe(const char *name, enum cg_version want, struct cg_driver *d,
		 struct berth_err *err)
{
	_cleanup_free_ char *mountinfo = NULL, *proc_cgroup = NULL;
	int r = cg_read_at(AT_FDCWD, "/proc/self", "/proc/self/mountinfo", 1u << 22, &mountinfo, err);
	if (r == 0)
		r = cg_read_at(AT_FDCWD, "/proc/self", "/proc/self/cgroup", 1u << 16, &proc_cgroup, err);
	if (r < 0)
		return r;
	struct probe_in in = { mountinfo, proc_cgroup, name };
	struct berth_err v2err = { 0 };
	if (want != CG_VERSION_1) {
		r = probe_v2(&in, d, &v2err);
		if (r == 0 || want == CG_VERSION_2) {
			if (r < 0 && err)
				*err = v2err;
			return r;
		}
	}
	r = probe_v1(&in, d, err);
	if (r < 0 && want == CG_VERSION_AUTO)
		return berth_err_wrap(err, "neither cgroup v2 (%s) nor v1", v2err.msg);
	return r;
}

void cg_driver_free(struct cg_driver *d)
{
	if (!d)
		return;
	for (unsigned i = 0; i < d->nhier; i++) {
		free(d->hier[i].root);
		if (d->hier[i].fd >= 0)
			close(d->hier[i].fd);
	}
	free(d);
}
DEFINE_CLEANUP_FUNC(struct cg_driver, cg_driver_free)

int cg_driver_open(const char *name, enum cg_version want, struct cg_driver **ret,
		   struct berth_err *err)
{
	if (!valid_component(name, strlen(name)))
		return berth_errf(err, EINVAL, "cgroup driver: bad name \"%s\"", name);
	_cleanup_(cg_driver_freep) struct cg_driver *d = calloc(1, sizeof(*d));
	if (!d)
		return berth_errf(err, ENOMEM, "cgroup driver: out of memory");
	int r = probe(name, want, d, err);
	if (r < 0)
		return berth_err_wrap(err, "cgroup driver");
	bool made[CG_MAX_HIER] = { false };
	for (unsigned i = 0; r == 0 && i < d->nhier; i++) {
		struct cg_hier *h = &d->hier[i];
		if (mkdir(h->root, 0755) == 0)
			made[i] = true;
		else if (errno != EEXIST)
			r = berth_errnof(err, errno, "cgroup %s: mkdir", h->root);
		h->fd = r < 0 ? -1 : open(h->root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (r == 0 && h->fd < 0)
			r = berth_errnof(err, errno, "cgroup %s: open", h->root);
	}
	if (r == 0 && d->ops->driver_init)
		r = d->ops->driver_init(d, err);
	if (r < 0) {
		/* Only what this call created, and only while still empty. */
		for (unsigned i = 0; i < d->nhier; i++)
			if (made[i])
				rmdir(d->hier[i].root);
		return r;
	}
	*ret = TAKE_PTR(d);
	return 0;
}

enum cg_version cg_driver_version(const struct cg_driver *d)
{
	return d->version;
}

void cg_group_free(struct cg_group *g)
{
	if (!g)
		return;
	for (unsigned i = 0; i < CG_MAX_HIER; i++) {
		free(g->path[i]);
		if (g->fd[i] >= 0)
			close(g->fd[i]);
	}
	if (g->oom_fd >= 0)
		close(g->oom_fd);
	free(g->rel);
	free(g);
}
DEFINE_CLEANUP_FUNC(struct cg_group, cg_group_free)

static int group_new(struct cg_driver *d, const char *rel, struct cg_group **ret,
		     struct berth_err *err)
{
	size_t len = strlen(rel);
	const char *first_end = strchrnul(rel, '/');
	if (len > CG_REL_MAX)
		return berth_errf(err, ENAMETOOLONG, "cgroup group \"%.64s…\": name too long", rel);
	for (const char *p = rel;; p++) {
		const char *end = strchrnul(p, '/');
		if (!valid_component(p, (size_t)(end - p)))
			return berth_errf(err, EINVAL, "cgroup group \"%s\": bad name", rel);
		if (!*end)
			break;
		p = end;
	}
	if (d->ops->reserved && !strncmp(rel, d->ops->reserved, (size_t)(first_end - rel)) &&
	    strlen(d->ops->reserved) == (size_t)(first_end - rel))
		return berth_errf(err, EINVAL, "cgroup group \"%s\": \"%s\" is reserved", rel,
				  d->ops->reserved);
	_cleanup_(cg_group_freep) struct cg_group *g = calloc(1, sizeof(*g));
	if (!g)
		return berth_errf(err, ENOMEM, "cgroup group %s: out of memory", rel);
	g->drv = d;
	g->oom_fd = -1;
	for (unsigned i = 0; i < CG_MAX_HIER; i++)
		g->fd[i] = -1;
	g->rel = strdup(rel);
	if (!g->rel)
		return berth_errf(err, ENOMEM, "cgroup group %s: out of memory", rel);
	for (unsigned i = 0; i < d->nhier; i++)
		if (asprintf(&g->path[i], "%s/%s", d->hier[i].root, rel) < 0) {
			g->path[i] = NULL;
			return berth_errf(err, ENOMEM, "cgroup group %s: out of memory", rel);
		}
	*ret = TAKE_PTR(g);
	return 0;
}

/* v2 needs the parent's controllers enabled for its children first. */
static int prepare_parent(struct cg_group *g, unsigned i, struct berth_err *err)
{
	struct cg_hier *h = &g->drv->hier[i];
	_cleanup_free_ char *parent = strdup(g->rel), *ppath = NULL;
	if (!parent)
		return berth_errf(err, ENOMEM, "cgroup %s: out of memory", g->path[i]);
	char *slash = strrchr(parent, '/');
	if (slash)
		*slash = '\0';
	_cleanup_close_ int pfd = slash ? openat(h->fd, parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
				       : fcntl(h->fd, F_DUPFD_CLOEXEC, 3);
	if (pfd < 0)
		return berth_errnof(err, errno, "cgroup %s: open parent", g->path[i]);
	if (asprintf(&ppath, "%s%s%s", h->root, slash ? "/" : "", slash ? parent : "") < 0)
		return berth_errf(err, ENOMEM, "cgroup %s: out of memory", g->path[i]);
	return g->drv->ops->prepare_parent(g->drv, pfd, ppath, err);
}

static int group_mkdir(struct cg_group *g, unsigned i, struct berth_err *err)
{
	if (g->drv->ops->prepare_parent) {
		int r = prepare_parent(g, i, err);
		if (r < 0)
			return r;
	}
	if (mkdirat(g->drv->hier[i].fd, g->rel, 0755) < 0)
		return berth_errnof(err, errno, "cgroup %s: mkdir", g->path[i]);
	return 0;
}

int cg_group_create(struct cg_driver *d, const char *rel, const struct cg_limits *limits,
		    struct cg_group **ret, struct berth_err *err)
{
	_cleanup_(cg_group_freep) struct cg_group *g = NULL;
	int r = group_new(d, rel, &g, err);
	unsigned made = 0;
	for (unsigned i = 0; r == 0 && i < d->nhier; i++) {
		r = group_mkdir(g, i, err);
		if (r < 0)
			break;
		made = i + 1;
		g->fd[i] = openat(d->hier[i].fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (g->fd[i] < 0)
			r = berth_errnof(err, errno, "cgroup %s: open", g->path[i]);
	}
	if (r == 0)
		r = d->ops->set_limits(g, limits, err);
	if (r < 0) {
		/* Fresh and empty, so a plain rmdir undoes each mkdir. */
		while (made-- > 0)
			unlinkat(d->hier[made].fd, rel, AT_REMOVEDIR);
		return r;
	}
	*ret = TAKE_PTR(g);
	return 0;
}

/* Opens the group in every hierarchy; with partial, hierarchies where it
 * is missing are left at fd -1 (cleanup of half-made leftovers). */
static int group_open(struct cg_driver *d, const char *rel, bool partial, struct cg_group **ret,
		      struct berth_err *err)
{
	_cleanup_(cg_group_freep) struct cg_group *g = NULL;
	int r = group_new(d, rel, &g, err);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < d->nhier; i++) {
		g->fd[i] = openat(d->hier[i].fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (g->fd[i] < 0 && !(partial && errno == ENOENT))
			return berth_errnof(err, errno, "cgroup %s: open", g->path[i]);
	}
	*ret = TAKE_PTR(g);
	return 0;
}

int cg_group_open(struct cg_driver *d, const char *rel, struct cg_group **ret,
		  struct berth_err *err)
{
	return group_open(d, rel, false, ret, err);
}

int cg_group_attach(struct cg_group *g, pid_t pid, struct berth_err *err)
{
	return g->drv->ops->attach(g, pid, err);
}

int cg_group_dirfd(const struct cg_group *g)
{
	return g->drv->version == CG_VERSION_2 ? g->fd[0] : -EOPNOTSUPP;
}

int cg_group_open_self_join(const struct cg_group *g, int *fds, size_t max, size_t *ret_n,
			    struct berth_err *err)
{
	if (g->drv->version == CG_VERSION_2)
		return berth_errf(err, EOPNOTSUPP, "cgroup %s: v2 joins with CLONE_INTO_CGROUP",
				  g->rel);
	if (g->drv->nhier > max)
		return berth_errf(err, E2BIG, "cgroup %s: %u hierarchies", g->rel, g->drv->nhier);
	for (unsigned i = 0; i < g->drv->nhier; i++) {
		fds[i] = openat(g->fd[i], "tasks", O_WRONLY | O_CLOEXEC);
		if (fds[i] < 0) {
			int r = berth_errnof(err, errno, "cgroup %s: open tasks", g->path[i]);
			while (i--)
				close(fds[i]);
			return r;
		}
	}
	*ret_n = g->drv->nhier;
	return 0;
}

const char *cg_group_path(const struct cg_group *g, unsigned i)
{
	return i < g->drv->nhier ? g->path[i] : NULL;
}

int cg_group_oom_fd(struct cg_group *g, int *ret_fd, struct berth_err *err)
{
	if (g->oom_fd < 0) {
		int r = g->drv->ops->oom_arm(g, err);
		if (r < 0)
			return r;
	}
	*ret_fd = g->oom_fd;
	return 0;
}

int cg_group_oom_kills(struct cg_group *g, uint64_t *ret, struct berth_err *err)
{
	if (g->oom_fd >= 0) {
		/* Drain first: an event landing after this is seen next time. */
		char buf[4096];
		while (read(g->oom_fd, buf, sizeof(buf)) > 0)
			;
	}
	return g->drv->ops->oom_kills(g, ret, err);
}

int cg_group_stats(struct cg_group *g, struct cg_stats *ret, struct berth_err *err)
{
	struct cg_stats st = { 0 };
	int r = g->drv->ops->stats(g, &st, err);
	if (r < 0)
		return r;
	*ret = st;
	return 0;
}

int cg_group_kill_all(struct cg_group *g, struct berth_err *err)
{
	return g->drv->ops->kill_all(g, err);
}

int cg_group_destroy(struct cg_group *g, struct berth_err *err)
{
	if (!g)
		return 0;
	int r = cg_group_kill_all(g, err);
	for (unsigned i = 0; r == 0 && i < g->drv->nhier; i++)
		if (g->fd[i] >= 0)
			r = cg_rmdir_tree(g->drv->hier[i].fd, g->rel, g->path[i], err);
	cg_group_free(g);
	return r;
}

int cg_group_remove(struct cg_driver *d, const char *rel, struct berth_err *err)
{
	struct cg_group *g = NULL;
	int r = group_open(d, rel, true, &g, err);
	if (r < 0)
		return r;
	return cg_group_destroy(g, err);
}

static int remove_children(struct cg_driver *d, unsigned i, struct berth_err *err)
{
	int fd = openat(d->hier[i].fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return berth_errnof(err, errno, "cgroup %s: open", d->hier[i].root);
	_cleanup_closedir_ DIR *dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return berth_errnof(err, errno, "cgroup %s: list", d->hier[i].root);
	}
	struct dirent *de;
	while ((errno = 0, de = readdir(dp))) {
		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    (d->ops->reserved && !strcmp(de->d_name, d->ops->reserved)))
			continue;
		int r = cg_group_remove(d, de->d_name, err);
		if (r < 0)
			return r;
	}
	if (errno)
		return berth_errnof(err, errno, "cgroup %s: list", d->hier[i].root);
	return 0;
}

int cg_driver_remove(struct cg_driver *d, struct berth_err *err)
{
	for (unsigned i = 0; i < d->nhier; i++) {
		int r = remove_children(d, i, err);
		if (r < 0)
			return r;
		if (d->ops->reserved && unlinkat(d->hier[i].fd, d->ops->reserved, AT_REMOVEDIR) < 0 &&
		    errno != ENOENT)
			return berth_errnof(err, errno, "cgroup %s/%s: rmdir", d->hier[i].root,
					    d->ops->reserved);
		if (rmdir(d->hier[i].root) < 0 && errno != ENOENT)
			return berth_errnof(err, errno, "cgroup %s: rmdir", d->hier[i].root);
	}
	return 0;
}
