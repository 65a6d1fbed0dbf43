/* berth-shim: the task's resources and state machine (docs/runtime.md
 * "Task semantics"). */
#include "runtime/shim_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/time.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* ---- set-up ------------------------------------------------------------- */

static int setup_cgroups(struct shim *s, struct berth_err *err)
{
	const struct plan *p = s->plan;
	int r = cg_driver_open(p->cgroup_name, CG_VERSION_AUTO, &s->cgd, err);
	if (r < 0)
		return r;
	char rel[PLAN_TASK_ID_MAX + PLAN_NAME_MAX + 8];
	snprintf(rel, sizeof(rel), "task-%s", p->task_id);
	struct cg_limits tl = {
		.cpu_quota = p->cpu, .memory_max = p->memory_mib << 20, .pids_max = p->pids_max,
		.device_allowlist = true,  /* the containers inherit it */
	};
	if ((r = cg_group_create(s->cgd, rel, &tl, &s->task_cg, err)) < 0)
		return r;
	for (size_t i = 0; i < p->n_containers; i++) {
		const struct plan_container *pc = &p->containers[i];
		struct cg_limits cl = {
			.cpu_shares = pc->cpu, .memory_max = pc->memory_mib << 20,
			.memory_low = pc->memory_reservation_mib << 20,
		};
		snprintf(rel, sizeof(rel), "task-%s/%s", p->task_id, pc->name);
		struct ctr *c = &s->ctrs[i];
		if ((r = cg_group_create(s->cgd, rel, &cl, &c->cg, err)) < 0)
			return r;
		/* v1: the container's processes (and its health probes) move
		 * themselves, the cheap way; v2 clones straight into the group. */
		if (cg_group_dirfd(c->cg) < 0 &&
		    (r = cg_group_open_self_join(c->cg, c->join_fds, ARRAY_SIZE(c->join_fds),
						 &c->n_join_fds, err)) < 0)
			return r;
	}
	return 0;
}

void shim_task_net_config(const struct plan *p, struct net_config *cfg)
{
	net_config_init(cfg);
	cfg->bridge = p->network.bridge;
	cfg->subnet = p->network.subnet;
	cfg->run_dir = p->run_dir;
	cfg->ipam_dir = p->network.ipam_dir;
	cfg->nft_table = p->network.nft_table;
}

/* awsvpc and bridge: an address, the namespace and veth on the bridge.
 * The policy elements are added while the rest is set up (shim_task_setup
 * waits for them): until they are in, the task's port sends nothing. */
static int setup_bridged(struct shim *s, struct berth_err *err)
{
	const struct plan *p = s->plan;
	int r = net_bridge_ensure(s->net, err);
	if (r >= 0)
		r = net_task_reserve(s->net, p->task_id, &s->nt, err);
	if (r < 0)
		return r;
	s->net_up = true;
	if ((r = shim_policy_start(p, "add", s->nt.addr, &s->policy, err)) < 0)
		return r;
	return net_task_build(s->net, &s->nt, err);
}

/* The task's namespace per its mode (docs/networking.md "Network
 * modes"): host mode has none, its containers stay in the shim's, the
 * host's. */
static int setup_mode(struct shim *s, struct berth_err *err)
{
	const struct plan *p = s->plan;
	switch (p->network.mode) {
	case PLAN_NET_NONE: {
		int r = net_task_isolated(s->net, p->task_id, &s->nt, err);
		s->net_up = r >= 0;
		return r;
	}
	case PLAN_NET_HOST:
		snprintf(s->nt.id, sizeof(s->nt.id), "%s", p->task_id);
		return 0;
	default:
		return setup_bridged(s, err);
	}
}

/* ip-10-89-0-5 as EC2 names an instance; the host's name in host mode;
 * without an address, the task id's first 12 digits, as Docker names a
 * container. */
static void default_hostname(struct shim *s)
{
	uint32_t a = ntohl(s->nt.addr.s_addr);
	if (a)
		snprintf(s->hostname, sizeof(s->hostname), "ip-%u-%u-%u-%u", a >> 24,
			 (a >> 16) & 255, (a >> 8) & 255, a & 255);
	else if (s->plan->network.mode != PLAN_NET_HOST ||
		 gethostname(s->hostname, sizeof(s->hostname) - 1) < 0)
		snprintf(s->hostname, sizeof(s->hostname), "%.12s", s->plan->task_id);
}

static int setup_net(struct shim *s, struct berth_err *err)
{
	const struct plan *p = s->plan;
	struct net_config cfg;
	shim_task_net_config(p, &cfg);
	int r = net_open(&cfg, &s->net, err);
	if (r >= 0)
		r = setup_mode(s, err);
	if (r < 0)
		return r;
	if (p->network.hostname)
		snprintf(s->hostname, sizeof(s->hostname), "%s", p->network.hostname);
	else
		default_hostname(s);
	if ((r = net_task_write_files(s->net, &s->nt, s->hostname, s->taskdirfd, err)) < 0)
		return r;
	char line[sizeof(s->hostname) + 1];
	int n = snprintf(line, sizeof(line), "%s\n", s->hostname);
	return berth_write_file_at(s->taskdirfd, "hostname", line, (size_t)n, 0644, err);
}

static int setup_container_dir(struct shim *s, struct ctr *c, struct berth_err *err)
{
	if (asprintf(&c->dir, "%s/containers/%s", s->plan->task_dir, c->pc->name) < 0) {
		c->dir = NULL;
		return berth_errf(err, ENOMEM, "out of memory");
	}
	/* A leftover of a crashed shim would hand the container an old
	 * upper dir: start clean. */
	int r = berth_rm_rf_at(AT_FDCWD, c->dir, err);
	_cleanup_free_ char *upper = NULL, *work = NULL;
	if (r >= 0 && (asprintf(&upper, "%s/upper", c->dir) < 0 ||
		       asprintf(&work, "%s/work", c->dir) < 0))
		return berth_errf(err, ENOMEM, "out of memory");
	if (r >= 0)
		r = berth_mkdir_p(upper, 0755, err);
	if (r >= 0)
		r = berth_mkdir_p(work, 0700, err);
	if (r >= 0)
		r = rt_log_open(s->logdirfd, c->pc->name, &c->pc->log_opts, &c->log, err);
	return r;
}

int shim_task_setup(struct shim *s, struct berth_err *err)
{
	const struct plan *p = s->plan;
	_cleanup_free_ char *cache = NULL;
	if (asprintf(&cache, "%s/seccomp", p->run_dir) < 0)
		return berth_errf(err, ENOMEM, "task %s: set-up: out of memory", p->task_id);
	int r = berth_open_dir_p(p->task_dir, 0700, &s->taskdirfd, err);
	if (r >= 0)
		r = berth_open_dir_p(p->log_dir, 0750, &s->logdirfd, err);
	if (r >= 0)
		r = berth_open_dir_p(cache, 0700, &s->cachedirfd, err);
	if (r >= 0)
		r = shim_volumes_open(s, err);
	if (r >= 0)
		r = setup_net(s, err);
	if (r >= 0)
		r = setup_cgroups(s, err);
	for (size_t i = 0; r >= 0 && i < p->n_containers; i++)
		if ((r = setup_container_dir(s, &s->ctrs[i], err)) < 0)
			berth_err_wrap(err, "container %s", p->containers[i].name);
	if (r >= 0)
		r = shim_policy_wait(&s->policy, err);
	if (r < 0)
		return berth_err_wrap(err, "task %s: set-up", p->task_id);
	return 0;
}

/* ---- exits -------------------------------------------------------------- */

static void ctr_set_reason(struct ctr *c, const char *reason)
{
	free(c->reason);
	c->reason = reason ? strdup(reason) : NULL;
}

static void drain_tail(struct shim *s, struct ctr *c, struct shim_src *src,
		       enum rt_log_stream st);

/* Kills and reaps a container whose exit we cannot watch; its status. */
static int ctr_kill_wait(struct shim *s, struct ctr *c)
{
	struct berth_err err = { 0 };
	int status = 137;
	if (rt_kill(&c->proc, SIGKILL, &err) < 0 || rt_wait(&c->proc, &status, &err) < 0)
		shim_diagf(s, "container %s: %s", c->pc->name, err.msg);
	return status;
}

/* The restart policy (docs/runtime.md "Restarts"): the same container
 * again, in the task's namespace, with its volumes and its writable
 * layer, its log continued.  False: it stays exited (CODE may change to
 * the failed restart's). */
static bool ctr_restart(struct shim *s, struct ctr *c, int *code)
{
	struct berth_err err = { 0 };
	int64_t ran = berth_mono_ms() - c->run_start_ms;
	enum shim_restart_verdict v = shim_restart_decide(&c->pc->restart, *code, ran,
							  s->status >= TASK_STOPPING);
	if (v != SHIM_RESTART_YES) {
		if (v != SHIM_RESTART_OFF)
			shim_diagf(s, "container %s: not restarted: %s", c->pc->name,
				   shim_restart_verdict_text(v));
		return false;
	}
	/* What the old process wrote goes to the log before the new one's. */
	drain_tail(s, c, &c->out_src, RT_LOG_STDOUT);
	drain_tail(s, c, &c->err_src, RT_LOG_STDERR);
	shim_unwatch(s, &c->oom_src);  /* the group's fd: watched again at start */
	c->oom_src.fd = -1;
	rt_strv_free(c->env);
	c->env = NULL;
	rt_user_release(&c->user);
	c->health = RT_HEALTH_UNKNOWN;
	if (shim_start_ctr(s, c, &err) < 0) {
		shim_diagf(s, "container %s: restart: %s", c->pc->name, err.msg);
		ctr_set_reason(c, err.msg);
		if (c->status == CTR_RUNNING) {
			*code = ctr_kill_wait(s, c);
			shim_src_close(s, &c->pid_src);
			c->proc.pidfd = -1;
		}
		return false;
	}
	c->restart_count++;
	shim_diagf(s, "container %s: exited with %d after %llds: restarted in place, pid %d "
		   "(restart %u)", c->pc->name, *code, (long long)(ran / 1000), (int)c->proc.pid,
		   c->restart_count);
	shim_ctl_emit(s, "container-restarted", c);
	return true;
}

/* Called once the container's first process is reaped. */
static void ctr_exited(struct shim *s, struct ctr *c, int code)
{
	struct berth_err err = { 0 };
	uint64_t kills = c->oom_kills;
	shim_src_close(s, &c->pid_src);
	c->proc.pidfd = -1;
	shim_src_close(s, &c->kill_src);
	shim_health_stop(s, c);
	if (cg_group_oom_kills(c->cg, &kills, &err) < 0)
		shim_diagf(s, "container %s: %s", c->pc->name, err.msg);
	/* The cgroup counter, not the exit code, says it was the OOM killer;
	 * it counts since the group was made, across restarts. */
	bool oom = kills > c->oom_kills;
	c->oom_kills = kills;
	if (ctr_restart(s, c, &code))
		return;
	c->status = CTR_STOPPED;
	c->exited = true;
	c->exit_code = code;
	c->finished_at = shim_now();
	if (oom)
		ctr_set_reason(c, CG_OOM_REASON);
	shim_diagf(s, "container %s: exited with %d%s", c->pc->name, code,
		   oom ? " (OOM kill)" : "");
	shim_ctl_emit(s, "container-exited", c);
	if (c->pc->essential)
		shim_task_stop(s, STOP_ESSENTIAL, REASON_ESSENTIAL);
}

static void on_pidfd(struct shim *s, struct shim_src *src, uint32_t events)
{
	(void)events;
	struct ctr *c = shim_container_of(src, struct ctr, pid_src);
	siginfo_t si = { 0 };
	if (waitid(P_PIDFD, (id_t)src->fd, &si, WEXITED | WNOHANG) < 0) {
		/* Someone else reaped it: the code is lost, the exit is not. */
		shim_diagf(s, "container %s: wait: %s", c->pc->name, strerror(errno));
		si.si_pid = c->proc.pid;
		si.si_code = CLD_EXITED;
		si.si_status = 255;
	}
	if (si.si_pid == 0)
		return;
	ctr_exited(s, c, si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status);
	shim_task_progress(s);
}

static void drain(struct shim *s, struct ctr *c, struct shim_src *src, enum rt_log_stream st,
		  uint32_t events)
{
	struct berth_err err = { 0 };
	int r = rt_log_drain_fd(c->log, st, src->fd, &err);
	if (r < 0)
		shim_diagf(s, "container %s: log: %s", c->pc->name, err.msg);
	if (r == RT_LOG_EOF || (r < 0 && !(events & EPOLLIN)))
		shim_src_close(s, src);
}

static void on_stdout(struct shim *s, struct shim_src *src, uint32_t events)
{
	drain(s, shim_container_of(src, struct ctr, out_src), src, RT_LOG_STDOUT, events);
}

static void on_stderr(struct shim *s, struct shim_src *src, uint32_t events)
{
	drain(s, shim_container_of(src, struct ctr, err_src), src, RT_LOG_STDERR, events);
}

/* A wake-up only: the count is read again when the container exits. */
static void on_oom(struct shim *s, struct shim_src *src, uint32_t events)
{
	(void)events;
	struct ctr *c = shim_container_of(src, struct ctr, oom_src);
	struct berth_err err = { 0 };
	uint64_t kills;
	if (cg_group_oom_kills(c->cg, &kills, &err) < 0)
		shim_diagf(s, "container %s: %s", c->pc->name, err.msg);
	else if (kills)
		shim_diagf(s, "container %s: %llu OOM kill(s)", c->pc->name,
			   (unsigned long long)kills);
}

static void on_kill_timer(struct shim *s, struct shim_src *src, uint32_t events)
{
	(void)events;
	struct ctr *c = shim_container_of(src, struct ctr, kill_src);
	struct berth_err err = { 0 };
	shim_src_close(s, src);
	if (c->status != CTR_RUNNING)
		return;
	shim_diagf(s, "container %s: still running %us after SIGTERM: SIGKILL", c->pc->name,
		   c->pc->stop_timeout);
	if (rt_kill(&c->proc, SIGKILL, &err) < 0)
		shim_diagf(s, "container %s: %s", c->pc->name, err.msg);
}

/* ---- starting ----------------------------------------------------------- */

enum dep_state { DEP_READY, DEP_WAIT, DEP_NEVER, DEP_TIMED_OUT };

static enum dep_state dep_wait(const struct ctr *t, enum plan_condition cond)
{
	bool gone = t->status == CTR_STOPPED;
	switch (cond) {
	case PLAN_DEP_START:
		return t->started ? DEP_READY : gone ? DEP_NEVER : DEP_WAIT;
	case PLAN_DEP_COMPLETE:
		return t->exited ? DEP_READY : gone ? DEP_NEVER : DEP_WAIT;
	case PLAN_DEP_SUCCESS:
		return t->exited && t->exit_code == 0 ? DEP_READY : gone ? DEP_NEVER : DEP_WAIT;
	case PLAN_DEP_HEALTHY:
		return t->health == RT_HEALTH_HEALTHY ? DEP_READY : gone ? DEP_NEVER : DEP_WAIT;
	default:
		return DEP_NEVER;
	}
}

/* As the ECS agent: a dependency that has run its startTimeout without
 * reaching COMPLETE, SUCCESS or HEALTHY is given up on (START has no
 * timeout: starting is the shim's own business). */
static enum dep_state dep_check(const struct ctr *t, enum plan_condition cond)
{
	enum dep_state st = dep_wait(t, cond);
	if (st == DEP_WAIT && cond != PLAN_DEP_START && t->start_timed_out)
		return DEP_TIMED_OUT;
	return st;
}

/* DEP_NEVER and DEP_TIMED_OUT also write why into why. */
static enum dep_state deps_check(const struct shim *s, const struct ctr *c, char *why, size_t n)
{
	enum dep_state all = DEP_READY;
	for (size_t i = 0; i < c->pc->n_deps; i++) {
		const struct plan_dep *d = &c->pc->deps[i];
		const struct ctr *t = &s->ctrs[d->index];
		enum dep_state st = dep_check(t, d->condition);
		if (st == DEP_NEVER) {
			snprintf(why, n, "DependencyConditionNotMet: container %s: dependency %s "
				 "can no longer be %s", c->pc->name, t->pc->name,
				 plan_condition_name(d->condition));
			return DEP_NEVER;
		}
		if (st == DEP_TIMED_OUT) {
			snprintf(why, n, "DependencyConditionNotMet: container %s: dependency %s "
				 "was not %s within its startTimeout of %us", c->pc->name,
				 t->pc->name, plan_condition_name(d->condition),
				 t->pc->start_timeout);
			return DEP_TIMED_OUT;
		}
		if (st == DEP_WAIT)
			all = DEP_WAIT;
	}
	return all;
}

static void ctr_reap_now(struct shim *s, struct ctr *c)
{
	ctr_exited(s, c, ctr_kill_wait(s, c));
}

static void check_running(struct shim *s)
{
	if (s->status != TASK_PENDING)
		return;
	for (size_t i = 0; i < s->plan->n_containers; i++)
		if (s->ctrs[i].pc->essential && !s->ctrs[i].started)
			return;
	s->status = TASK_RUNNING;
	s->started_at = shim_now();
	shim_diagf(s, "task %s: RUNNING", s->plan->task_id);
}

static void on_start_timer(struct shim *s, struct shim_src *src, uint32_t events)
{
	(void)events;
	struct ctr *c = shim_container_of(src, struct ctr, start_src);
	shim_src_close(s, src);
	c->start_timed_out = true;
	shim_task_progress(s);
}

static bool awaited_past_start(const struct shim *s, size_t idx)
{
	for (size_t i = 0; i < s->plan->n_containers; i++) {
		const struct plan_container *pc = &s->plan->containers[i];
		for (size_t d = 0; d < pc->n_deps; d++)
			if (pc->deps[d].index == idx && pc->deps[d].condition != PLAN_DEP_START)
				return true;
	}
	return false;
}

/* startTimeout runs from the container's first start, and only matters
 * to a container waiting for it to complete, succeed or be healthy. */
static void arm_start_timer(struct shim *s, struct ctr *c)
{
	struct berth_err err = { 0 };
	if (!c->pc->start_timeout || !awaited_past_start(s, (size_t)(c - s->ctrs)))
		return;
	c->start_src.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct itimerspec its = { .it_value.tv_sec = c->pc->start_timeout };
	if (c->start_src.fd < 0 || timerfd_settime(c->start_src.fd, 0, &its, NULL) < 0) {
		berth_errnof(&err, errno, "startTimeout timer");
	} else if (shim_watch(s, &c->start_src, EPOLLIN, &err) >= 0) {
		return;
	}
	/* Without a timer the wait would be unbounded: give up now instead. */
	shim_diagf(s, "container %s: %s", c->pc->name, err.msg);
	if (c->start_src.fd >= 0)
		close(c->start_src.fd);
	c->start_src.fd = -1;
	c->start_timed_out = true;
}

static void ctr_try_start(struct shim *s, struct ctr *c)
{
	struct berth_err err = { 0 };
	if (shim_start_ctr(s, c, &err) >= 0) {
		shim_diagf(s, "container %s: started, pid %d", c->pc->name, (int)c->proc.pid);
		arm_start_timer(s, c);
		/* Before the event, so the start that makes the task RUNNING
		 * says so: an events-only client never polls. */
		check_running(s);
		shim_ctl_emit(s, "container-started", c);
		return;
	}
	shim_diagf(s, "container %s: %s", c->pc->name, err.msg);
	ctr_set_reason(c, err.msg);
	if (c->status == CTR_RUNNING) {
		shim_ctl_emit(s, "container-started", c);
		ctr_reap_now(s, c);
		shim_task_stop(s, STOP_FAILED_START, err.msg);
		return;
	}
	c->status = CTR_STOPPED;
	shim_ctl_emit(s, "container-exited", c);
	if (c->pc->essential)
		shim_task_stop(s, STOP_FAILED_START, err.msg);
}

/* Starts every pending container whose conditions hold, until nothing
 * changes (a start can satisfy another container's START condition). */
static void start_ready(struct shim *s)
{
	bool changed = true;
	while (changed && s->status < TASK_STOPPING) {
		changed = false;
		for (size_t i = 0; i < s->plan->n_containers && s->status < TASK_STOPPING; i++) {
			struct ctr *c = &s->ctrs[i];
			char why[BERTH_ERR_MAX];
			if (c->status != CTR_PENDING)
				continue;
			enum dep_state st = deps_check(s, c, why, sizeof(why));
			if (st == DEP_WAIT)
				continue;
			changed = true;
			if (st == DEP_READY) {
				ctr_try_start(s, c);
				continue;
			}
			ctr_set_reason(c, why);
			c->status = CTR_STOPPED;
			shim_diagf(s, "%s", why);
			shim_ctl_emit(s, "container-exited", c);
			/* A timeout stops the task in ECS's words ("Task failed to
			 * start"), the container's reason says which dependency. */
			shim_task_stop(s, STOP_FAILED_START,
				       st == DEP_TIMED_OUT ? REASON_FAILED_START : why);
		}
	}
}

/* ---- stopping ----------------------------------------------------------- */

void shim_task_stop(struct shim *s, const char *code, const char *reason)
{
	if (s->status >= TASK_STOPPING)
		return;
	s->status = TASK_STOPPING;
	s->stopping_at = shim_now();
	s->stop_code = code;
	free(s->stopped_reason);
	s->stopped_reason = strdup(reason);
	shim_diagf(s, "task %s: STOPPING: %s: %s", s->plan->task_id, code, reason);
	/* What never started never will. */
	for (size_t i = 0; i < s->plan->n_containers; i++)
		if (s->ctrs[i].status == CTR_PENDING)
			s->ctrs[i].status = CTR_STOPPED;
}

static bool has_running_dependent(const struct shim *s, size_t idx)
{
	for (size_t i = 0; i < s->plan->n_containers; i++) {
		const struct ctr *c = &s->ctrs[i];
		if (c->status != CTR_RUNNING)
			continue;
		for (size_t d = 0; d < c->pc->n_deps; d++)
			if (c->pc->deps[d].index == idx)
				return true;
	}
	return false;
}

static int arm_kill_timer(struct shim *s, struct ctr *c, struct berth_err *err)
{
	c->kill_src.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (c->kill_src.fd < 0)
		return berth_errnof(err, errno, "timerfd");
	c->kill_src.fn = on_kill_timer;
	struct itimerspec its = { .it_value.tv_sec = c->pc->stop_timeout };
	if (timerfd_settime(c->kill_src.fd, 0, &its, NULL) < 0)
		return berth_errnof(err, errno, "timerfd");
	return shim_watch(s, &c->kill_src, EPOLLIN, err);
}

static void ctr_term(struct shim *s, struct ctr *c)
{
	struct berth_err err = { 0 };
	c->term_sent = true;
	shim_diagf(s, "container %s: SIGTERM", c->pc->name);
	int r = rt_kill(&c->proc, SIGTERM, &err);
	if (r >= 0)
		r = arm_kill_timer(s, c, &err);
	if (r < 0) {
		/* No way to wait politely: do not wait at all. */
		shim_diagf(s, "container %s: %s: SIGKILL", c->pc->name, err.msg);
		shim_src_close(s, &c->kill_src);
		rt_kill(&c->proc, SIGKILL, NULL);
	}
}

/* Reverse start order, and a container only once nothing that depends on
 * it still runs (ECS stops dependents before their dependencies). */
static void stop_progress(struct shim *s)
{
	for (unsigned seq = s->start_seq; seq > 0; seq--)
		for (size_t i = 0; i < s->plan->n_containers; i++) {
			struct ctr *c = &s->ctrs[i];
			if (c->start_seq == seq && c->status == CTR_RUNNING && !c->term_sent &&
			    !has_running_dependent(s, i))
				ctr_term(s, c);
		}
}

static bool all_stopped(const struct shim *s)
{
	for (size_t i = 0; i < s->plan->n_containers; i++)
		if (s->ctrs[i].status != CTR_STOPPED)
			return false;
	return true;
}

static void write_record(struct shim *s)
{
	struct berth_err err = { 0 };
	cJSON *st = shim_ctl_status_json(s);
	char *text = st ? cJSON_PrintUnformatted(st) : NULL;
	cJSON_Delete(st);
	if (!text) {
		shim_diagf(s, "task %s: exit record: out of memory", s->plan->task_id);
		return;
	}
	size_t len = strlen(text);
	if (berth_write_atomic_at(s->taskdirfd, "exit.json", text, len, 0644, &err) < 0)
		shim_diagf(s, "task %s: exit record: %s", s->plan->task_id, err.msg);
	free(text);
}

static void task_finish(struct shim *s)
{
	shim_task_teardown(s);
	s->status = TASK_STOPPED;
	s->stopped_at = shim_now();
	write_record(s);
	shim_diagf(s, "task %s: STOPPED", s->plan->task_id);
	shim_ctl_emit(s, "task-stopped", NULL);
	/* Recorded first: requests shim_ctl_finish() still answers see the end. */
	s->recorded = true;
	shim_ctl_finish(s);
}

void shim_task_progress(struct shim *s)
{
	if (s->status == TASK_STOPPED)
		return;
	if (s->status < TASK_STOPPING) {
		start_ready(s);
		check_running(s);
	}
	if (s->status == TASK_STOPPING) {
		stop_progress(s);
		if (all_stopped(s))
			task_finish(s);
	}
}

/* ---- teardown ----------------------------------------------------------- */

/* Bounded: a writer that is somehow still alive cannot hold us here. */
static void drain_tail(struct shim *s, struct ctr *c, struct shim_src *src,
		       enum rt_log_stream st)
{
	struct berth_err err = { 0 };
	int r = RT_LOG_MORE;
	while (src->fd >= 0 && r == RT_LOG_MORE)
		if ((r = rt_log_drain_fd(c->log, st, src->fd, &err)) < 0)
			shim_diagf(s, "container %s: log: %s", c->pc->name, err.msg);
	shim_src_close(s, src);
}

static void ctr_teardown(struct shim *s, struct ctr *c)
{
	struct berth_err err = { 0 };
	if (c->status == CTR_RUNNING)
		ctr_reap_now(s, c);
	shim_src_close(s, &c->kill_src);
	shim_src_close(s, &c->start_src);
	/* The OOM fd belongs to the group; v1 signals it on removal. */
	shim_unwatch(s, &c->oom_src);
	c->oom_src.fd = -1;
	if (c->cg && cg_group_destroy(TAKE_PTR(c->cg), &err) < 0)
		shim_diagf(s, "container %s: %s", c->pc->name, err.msg);
	/* Every writer is dead now: what is left in the pipes is the tail. */
	drain_tail(s, c, &c->out_src, RT_LOG_STDOUT);
	drain_tail(s, c, &c->err_src, RT_LOG_STDERR);
	rt_log_close(TAKE_PTR(c->log));
	if (c->dir && berth_rm_rf_at(AT_FDCWD, c->dir, &err) < 0)
		shim_diagf(s, "container %s: %s", c->pc->name, err.msg);
}

void shim_task_teardown(struct shim *s)
{
	struct berth_err err = { 0 };
	shim_exec_end_all(s);
	for (size_t i = 0; i < s->plan->n_containers; i++)
		ctr_teardown(s, &s->ctrs[i]);
	if (s->task_cg && cg_group_destroy(TAKE_PTR(s->task_cg), &err) < 0)
		shim_diagf(s, "task %s: %s", s->plan->task_id, err.msg);
	/* The elements go first (after an add still running, if the set-up
	 * failed): an address never returns to IPAM with them. */
	if (shim_policy_wait(&s->policy, &err) < 0)
		shim_diagf(s, "task %s: %s", s->plan->task_id, err.msg);
	if (s->net_up && s->nt.addr.s_addr && shim_policy_run(s->plan, "remove", s->nt.addr,
							     &err) < 0)
		shim_diagf(s, "task %s: %s", s->plan->task_id, err.msg);
	if (s->net_up && net_task_teardown(s->net, s->plan->task_id, s->nt.addr, &err) < 0)
		shim_diagf(s, "task %s: %s", s->plan->task_id, err.msg);
	s->net_up = false;
	/* Every container is gone: nothing mounts a volume any more. */
	shim_volumes_close(s);
	if (shim_volumes_remove(s->plan, &err) < 0)
		shim_diagf(s, "task %s: %s", s->plan->task_id, err.msg);
	if (s->taskdirfd >= 0 && unlinkat(s->taskdirfd, "containers", AT_REMOVEDIR) < 0 &&
	    errno != ENOENT)
		shim_diagf(s, "task %s: remove %s/containers: %s", s->plan->task_id,
			   s->plan->task_dir, strerror(errno));
}

void shim_task_free(struct shim *s)
{
	for (size_t i = 0; s->ctrs && i < s->plan->n_containers; i++) {
		struct ctr *c = &s->ctrs[i];
		/* Not the OOM fd: the group owns it. */
		struct shim_src *fds[] = { &c->pid_src, &c->out_src, &c->err_src, &c->kill_src,
					   &c->start_src };
		for (size_t k = 0; k < ARRAY_SIZE(fds); k++)
			if (fds[k]->fd >= 0)
				close(fds[k]->fd);
		for (size_t k = 0; k < c->n_join_fds; k++)
			close(c->join_fds[k]);
		shim_health_free(c);
		rt_log_close(c->log);
		rt_strv_free(c->env);
		rt_user_release(&c->user);
		cg_group_free(c->cg);
		free(c->reason);
		free(c->dir);
	}
	shim_volumes_close(s);
	cg_group_free(s->task_cg);
	cg_driver_free(s->cgd);
	net_close(s->net);
	if (s->taskdirfd >= 0)
		close(s->taskdirfd);
	if (s->logdirfd >= 0)
		close(s->logdirfd);
	if (s->cachedirfd >= 0)
		close(s->cachedirfd);
}

void shim_task_init_ctr(struct ctr *c)
{
	c->pid_src.fn = on_pidfd;
	c->out_src.fn = on_stdout;
	c->err_src.fn = on_stderr;
	c->oom_src.fn = on_oom;
	c->kill_src.fn = on_kill_timer;
	c->start_src.fn = on_start_timer;
	shim_health_init_ctr(c);
}
