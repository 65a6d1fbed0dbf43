/* berth-shim: running a container's healthCheck probes (the rules are
 * runtime/health.h's; this file only does the I/O).  Per container: one
 * timerfd for the next probe (absolute, CLOCK_MONOTONIC), the running
 * probe's pidfd, and a timerfd that SIGKILLs a probe past its timeout. */
#include "runtime/shim_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/time.h"
#include "runtime/exec.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

enum rt_health_status shim_health_task(const struct shim *s)
{
	struct rt_health_member m[s->plan->n_containers];
	for (size_t i = 0; i < s->plan->n_containers; i++)
		m[i] = (struct rt_health_member){
			.essential = s->ctrs[i].pc->essential,
			.has_check = s->ctrs[i].pc->health.present,
			.status = s->ctrs[i].health,
		};
	return rt_health_task(m, s->plan->n_containers);
}

/* Creates (once) and watches a timerfd in src, firing at ms (absolute
 * CLOCK_MONOTONIC) or after rel_ms when abs is false. */
static int timer_arm(struct shim *s, struct shim_src *src, int64_t ms, bool abs,
		     struct berth_err *err)
{
	if (src->fd < 0) {
		src->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (src->fd < 0)
			return berth_errnof(err, errno, "timerfd");
		int r = shim_watch(s, src, EPOLLIN, err);
		if (r < 0) {
			close(src->fd);
			src->fd = -1;
			return r;
		}
	}
	if (ms <= 0)
		ms = 1;  /* 0 would disarm */
	struct itimerspec its = {
		.it_value = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 },
	};
	if (timerfd_settime(src->fd, abs ? TFD_TIMER_ABSTIME : 0, &its, NULL) < 0)
		return berth_errnof(err, errno, "timerfd");
	return 0;
}

static int probe_spawn(struct shim *s, struct ctr *c, struct berth_err *err)
{
	const struct plan_container *pc = c->pc;
	struct rt_exec_spec spec;
	shim_exec_spec(s, c, &spec);
	spec.argv = (const char *const *)pc->health.cfg.argv;
	/* Probe output is not the container's: it does not go to its log. */
	for (int i = 0; i < 3; i++)
		spec.stdio[i] = s->nullfd;
	int r = rt_exec_in(&spec, &c->probe, err);
	if (r < 0)
		return r;
	c->probe_src.fd = c->probe.pidfd;
	c->probe_timed_out = false;
	if ((r = shim_watch(s, &c->probe_src, EPOLLIN, err)) < 0)
		return r;
	return timer_arm(s, &c->probe_kill_src, (int64_t)pc->health.cfg.timeout_s * 1000, false,
			 err);
}

static void record(struct shim *s, struct ctr *c, bool passed)
{
	struct berth_err err = { 0 };
	if (rt_health_record(&c->hs, passed, berth_mono_ms())) {
		c->health = c->hs.status;
		shim_diagf(s, "container %s: %s", c->pc->name, rt_health_status_name(c->health));
		shim_ctl_emit(s, "health-changed", c);
	}
	if (c->status == CTR_RUNNING &&
	    timer_arm(s, &c->due_src, rt_health_next_due(&c->hs), true, &err) < 0)
		shim_diagf(s, "container %s: health check: %s", c->pc->name, err.msg);
	shim_task_progress(s);
}

static void on_due(struct shim *s, struct shim_src *src, uint32_t events)
{
	(void)events;
	struct ctr *c = shim_container_of(src, struct ctr, due_src);
	struct berth_err err = { 0 };
	uint64_t ticks;
	if (read(src->fd, &ticks, sizeof(ticks)) < 0 || c->status != CTR_RUNNING ||
	    c->probe_src.fd >= 0)
		return;
	if (probe_spawn(s, c, &err) >= 0)
		return;
	/* A probe that cannot even start is a failed probe, as in Docker. */
	shim_diagf(s, "container %s: health check: %s", c->pc->name, err.msg);
	shim_src_close(s, &c->probe_kill_src);
	if (c->probe_src.fd >= 0) {
		rt_kill(&c->probe, SIGKILL, NULL);
		int st;
		rt_wait(&c->probe, &st, NULL);
		shim_src_close(s, &c->probe_src);
	}
	c->probe.pidfd = -1;
	record(s, c, false);
}

static void on_probe_exit(struct shim *s, struct shim_src *src, uint32_t events)
{
	(void)events;
	struct ctr *c = shim_container_of(src, struct ctr, probe_src);
	siginfo_t si = { 0 };
	if (waitid(P_PIDFD, (id_t)src->fd, &si, WEXITED | WNOHANG) < 0)
		si.si_pid = c->probe.pid, si.si_code = CLD_KILLED;
	if (si.si_pid == 0)
		return;
	shim_src_close(s, src);
	c->probe.pidfd = -1;
	shim_src_close(s, &c->probe_kill_src);
	bool passed = si.si_code == CLD_EXITED && si.si_status == 0 && !c->probe_timed_out;
	record(s, c, passed);
}

static void on_probe_timeout(struct shim *s, struct shim_src *src, uint32_t events)
{
	(void)events;
	struct ctr *c = shim_container_of(src, struct ctr, probe_kill_src);
	shim_src_close(s, src);
	if (c->probe_src.fd < 0)
		return;
	/* Its exit (next) counts as a failure. */
	c->probe_timed_out = true;
	shim_diagf(s, "container %s: health check timed out after %ds", c->pc->name,
		   c->pc->health.cfg.timeout_s);
	rt_kill(&c->probe, SIGKILL, NULL);
}

void shim_health_init_ctr(struct ctr *c)
{
	c->probe.pidfd = -1;
	c->due_src = (struct shim_src){ .fd = -1, .fn = on_due };
	c->probe_src = (struct shim_src){ .fd = -1, .fn = on_probe_exit };
	c->probe_kill_src = (struct shim_src){ .fd = -1, .fn = on_probe_timeout };
}

int shim_health_start(struct shim *s, struct ctr *c, struct berth_err *err)
{
	rt_health_start(&c->hs, &c->pc->health.cfg, berth_mono_ms());
	return timer_arm(s, &c->due_src, rt_health_next_due(&c->hs), true, err);
}

/* The container is gone (its pid namespace with it): a running probe is
 * dead or dying, so the blocking wait is short. */
void shim_health_stop(struct shim *s, struct ctr *c)
{
	shim_src_close(s, &c->due_src);
	shim_src_close(s, &c->probe_kill_src);
	if (c->probe_src.fd >= 0) {
		int st;
		rt_kill(&c->probe, SIGKILL, NULL);
		rt_wait(&c->probe, &st, NULL);
		shim_src_close(s, &c->probe_src);
		c->probe.pidfd = -1;
	}
}

void shim_health_free(struct ctr *c)
{
	if (c->due_src.fd >= 0)
		close(c->due_src.fd);
	if (c->probe_kill_src.fd >= 0)
		close(c->probe_kill_src.fd);
	if (c->probe_src.fd >= 0)
		close(c->probe_src.fd);
}
