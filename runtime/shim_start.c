/* berth-shim: turning one planned container into a running one. */
#include "runtime/shim_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/time.h"


/* What rt_start() borrows; released after it returns either way. */
struct start_ctx {
	const char **lowerdirs;
	int out[2], errp[2];   /* pipes: [0] ours, [1] the container's */
	char upper[PATH_MAX], work[PATH_MAX];
	char hosts[PATH_MAX], resolv[PATH_MAX], hostname[PATH_MAX];
};

static void ctx_release(struct start_ctx *x)
{
	free(x->lowerdirs);
	for (int i = 0; i < 2; i++) {
		if (x->out[i] >= 0)
			close(x->out[i]);
		if (x->errp[i] >= 0)
			close(x->errp[i]);
	}
}

/* The image's /etc/passwd is the one in the topmost layer that has it
 * (every layer above it left it alone). */
static int open_user_root(const struct plan_container *pc, int *ret, struct berth_err *err)
{
	for (size_t i = pc->layers.n; i-- > 0;) {
		const char *dir = pc->layers.v[i];
		_cleanup_close_ int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return berth_errnof(err, errno, "layer %s", dir);
		struct stat st;
		if (i == 0 || fstatat(fd, "etc/passwd", &st, AT_SYMLINK_NOFOLLOW) == 0) {
			*ret = TAKE_FD(fd);
			return 0;
		}
	}
	return berth_errf(err, EINVAL, "no layers");
}

/* The user and environment stay with the container: health probes run
 * with the same. */
static int prepare_user(struct ctr *c, struct berth_err *err)
{
	_cleanup_close_ int root = -1;
	int r = open_user_root(c->pc, &root, err);
	if (r >= 0)
		r = rt_resolve_user(root, c->pc->user, &c->user, err);
	return r;
}

static int make_pipes(struct start_ctx *x, struct berth_err *err)
{
	if (pipe2(x->out, O_CLOEXEC) < 0 || pipe2(x->errp, O_CLOEXEC) < 0)
		return berth_errnof(err, errno, "stdio pipes");
	/* Our ends only: a container writing to a full pipe blocks, as it
	 * would under any runtime, but we never do. */
	if (fcntl(x->out[0], F_SETFL, O_NONBLOCK) < 0 || fcntl(x->errp[0], F_SETFL, O_NONBLOCK) < 0)
		return berth_errnof(err, errno, "stdio pipes");
	return 0;
}

static int prepare(struct shim *s, struct ctr *c, struct start_ctx *x, struct berth_err *err)
{
	const struct plan_container *pc = c->pc;
	const char *td = s->plan->task_dir;
	if (!(x->lowerdirs = calloc(pc->layers.n, sizeof(char *))))
		return berth_errf(err, ENOMEM, "out of memory");
	/* The plan lists layers bottom first, overlayfs wants the top first. */
	for (size_t i = 0; i < pc->layers.n; i++)
		x->lowerdirs[i] = pc->layers.v[pc->layers.n - 1 - i];
	snprintf(x->upper, sizeof(x->upper), "%s/upper", c->dir);
	snprintf(x->work, sizeof(x->work), "%s/work", c->dir);
	snprintf(x->hosts, sizeof(x->hosts), "%s/hosts", td);
	snprintf(x->resolv, sizeof(x->resolv), "%s/resolv.conf", td);
	snprintf(x->hostname, sizeof(x->hostname), "%s/hostname", td);
	int r = rt_env_merge(NULL, (const char *const *)pc->env.v, &c->env, err);
	if (r >= 0)
		r = prepare_user(c, err);
	if (r >= 0)
		r = make_pipes(x, err);
	return r;
}

#define TASK_FILE_BINDS 3

static void fill_spec(struct shim *s, struct ctr *c, struct start_ctx *x, struct rt_spec *spec,
		      struct rt_bind *binds)
{
	const struct plan_container *pc = c->pc;
	binds[0] = (struct rt_bind){ .source = x->hosts, .dest = "/etc/hosts" };
	binds[1] = (struct rt_bind){ .source = x->resolv, .dest = "/etc/resolv.conf" };
	binds[2] = (struct rt_bind){ .source = x->hostname, .dest = "/etc/hostname" };
	rt_spec_init(spec);
	spec->rootfs = (struct rt_rootfs){
		.lowerdirs = x->lowerdirs, .n_lowerdirs = pc->layers.n,
		.upperdir = x->upper, .workdir = x->work, .readonly = pc->readonly_rootfs,
	};
	spec->hostname = s->hostname;
	/* Host mode: no namespace to join, the host's stays. */
	spec->netns_path = s->nt.netns_path[0] ? s->nt.netns_path : NULL;
	spec->argv = (const char *const *)pc->argv.v;
	spec->env = (const char *const *)c->env;
	spec->cwd = pc->working_dir && pc->working_dir[0] ? pc->working_dir : NULL;
	spec->uid = c->user.uid;
	spec->gid = c->user.gid;
	spec->groups = c->user.groups;
	spec->n_groups = c->user.n_groups;
	spec->init = pc->init_process;
	spec->ulimits = pc->ulimits;
	spec->n_ulimits = pc->n_ulimits;
	spec->cap_add = (const char *const *)pc->cap_add.v;
	spec->n_cap_add = pc->cap_add.n;
	spec->cap_drop = (const char *const *)pc->cap_drop.v;
	spec->n_cap_drop = pc->cap_drop.n;
	spec->binds = binds;
	spec->n_binds = TASK_FILE_BINDS + pc->n_mounts;
	spec->cgroup_fd = cg_group_dirfd(c->cg);   /* v2; -EOPNOTSUPP on v1 */
	spec->self_join_fds = c->join_fds;         /* v1 */
	spec->n_self_join_fds = c->n_join_fds;
	spec->seccomp_cache_dirfd = s->cachedirfd;
	spec->stdio[0] = s->nullfd;
	spec->stdio[1] = x->out[1];
	spec->stdio[2] = x->errp[1];
}

/* Registers the running container's fds; the pipes' read ends move from
 * x to c. */
static int watch_running(struct shim *s, struct ctr *c, struct start_ctx *x,
			 struct berth_err *err)
{
	c->pid_src.fd = c->proc.pidfd;
	c->out_src.fd = TAKE_FD(x->out[0]);
	c->err_src.fd = TAKE_FD(x->errp[0]);
	int r = shim_watch(s, &c->pid_src, EPOLLIN, err);
	if (r >= 0)
		r = shim_watch(s, &c->out_src, EPOLLIN, err);
	if (r >= 0)
		r = shim_watch(s, &c->err_src, EPOLLIN, err);
	if (r < 0)
		return r;
	int oomfd;
	if ((r = cg_group_oom_fd(c->cg, &oomfd, err)) < 0)
		return r;
	c->oom_src.fd = oomfd;
	return shim_watch(s, &c->oom_src, EPOLLIN, err);
}

int shim_start_ctr(struct shim *s, struct ctr *c, struct berth_err *err)
{
	struct start_ctx x = { .out = { -1, -1 }, .errp = { -1, -1 } };
	struct rt_spec spec;
	_cleanup_free_ struct rt_bind *binds = calloc(TASK_FILE_BINDS + c->pc->n_mounts,
						      sizeof(*binds));
	int r = binds ? prepare(s, c, &x, err) : berth_errf(err, ENOMEM, "out of memory");
	/* Volumes after the task's files, so nothing of ours is ever created
	 * inside a volume (a volume over /etc hides them instead). */
	if (r >= 0)
		r = shim_volumes_binds(s, c, binds + TASK_FILE_BINDS, err);
	if (r >= 0) {
		fill_spec(s, c, &x, &spec, binds);
		r = rt_start(&spec, &c->proc, err);
	} else {
		/* The launcher's prefix, so every start failure reads the same. */
		berth_err_wrap(err, "CannotStartContainerError");
	}
	if (r >= 0) {
		close(TAKE_FD(x.out[1]));
		close(TAKE_FD(x.errp[1]));
		c->status = CTR_RUNNING;
		c->started = true;
		c->started_at = shim_now();
		c->run_start_ms = berth_mono_ms();
		/* A restart keeps its place in the stop order. */
		if (!c->start_seq)
			c->start_seq = ++s->start_seq;
		/* Failing to watch a running container would lose its exit:
		 * the caller stops the task. */
		r = watch_running(s, c, &x, err);
		if (r >= 0 && c->pc->health.present) {
			struct berth_err herr = { 0 };
			/* The container runs; only its health stays UNKNOWN. */
			if (shim_health_start(s, c, &herr) < 0)
				shim_diagf(s, "container %s: health check: %s", c->pc->name, herr.msg);
		}
	}
	ctx_release(&x);
	/* Building the seccomp filter and the mounts allocates about a MiB
	 * that is free again now; hand it back, since a shim then idles for
	 * the life of its task. */
	malloc_trim(0);
	return r;
}
