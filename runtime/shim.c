/* berth-shim: set-up order and the one event loop (runtime/shim.h). */
#include "runtime/shim_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/time.h"

#define EVENTS_PER_WAIT 64

double shim_now(void)
{
	/* Milliseconds, as the ECS API reports them. */
	int64_t ms = berth_real_ms();
	return (double)(ms / 1000) + (double)(ms % 1000) / 1000.0;
}

void shim_diagf(struct shim *s, const char *fmt, ...)
{
	if (!s->diag)
		return;
	char msg[BERTH_ERR_MAX + 256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->diag(s->diag_data, msg);
}

int shim_watch(struct shim *s, struct shim_src *src, uint32_t events, struct berth_err *err)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, src->fd, &ev) < 0)
		return berth_errnof(err, errno, "task %s: watch fd %d", s->plan->task_id, src->fd);
	return 0;
}

void shim_unwatch(struct shim *s, struct shim_src *src)
{
	if (src->fd >= 0)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, src->fd, NULL);
}

void shim_src_close(struct shim *s, struct shim_src *src)
{
	if (src->fd < 0)
		return;
	shim_unwatch(s, src);
	close(src->fd);
	src->fd = -1;
}

int shim_new(struct plan *plan, shim_diag_fn diag, void *diag_data, struct shim **ret,
	     struct berth_err *err)
{
	_cleanup_(plan_freep) struct plan *p = plan;
	struct shim *s = calloc(1, sizeof(*s));
	struct ctr *ctrs = calloc(p->n_containers, sizeof(*ctrs));
	if (!s || !ctrs) {
		free(s);
		free(ctrs);
		return berth_errf(err, ENOMEM, "task %s: out of memory", p->task_id);
	}
	*s = (struct shim){
		.diag = diag, .diag_data = diag_data, .epfd = -1, .taskdirfd = -1,
		.logdirfd = -1, .cachedirfd = -1, .nullfd = -1, .sig_src.fd = -1, .listen_src.fd = -1,
		.linger_src.fd = -1, .policy.errfd = -1, .policy.sock = -1, .ctrs = ctrs,
		.created_at = shim_now(),
	};
	for (size_t i = 0; i < p->n_containers; i++) {
		struct ctr *c = &ctrs[i];
		c->pc = &p->containers[i];
		c->proc.pidfd = -1;
		c->pid_src.fd = c->out_src.fd = c->err_src.fd = c->oom_src.fd = c->kill_src.fd = -1;
		c->start_src.fd = -1;
		shim_task_init_ctr(c);
	}
	s->plan = TAKE_PTR(p);
	*ret = s;
	return 0;
}

static void on_signal(struct shim *s, struct shim_src *src, uint32_t events)
{
	(void)events;
	struct signalfd_siginfo si;
	while (read(src->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo != SIGTERM && si.ssi_signo != SIGINT)
			continue;
		shim_diagf(s, "task %s: %s from pid %u: stopping", s->plan->task_id,
			   strsignal((int)si.ssi_signo), si.ssi_pid);
		shim_task_stop(s, STOP_USER, "Task stopped by user");
	}
	shim_task_progress(s);
}

/* SIGTERM and SIGINT become events; SIGCHLD is blocked because exits are
 * read from pidfds (a pending SIGCHLD is harmless); SIGPIPE because a
 * client hanging up must not kill the task. */
static int setup_signals(struct shim *s, struct berth_err *err)
{
	sigset_t block, wanted;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGPIPE);
	if (sigprocmask(SIG_BLOCK, &block, &s->old_mask) < 0)
		return berth_errnof(err, errno, "block signals");
	sigemptyset(&wanted);
	sigaddset(&wanted, SIGTERM);
	sigaddset(&wanted, SIGINT);
	s->sig_src.fd = signalfd(-1, &wanted, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s->sig_src.fd < 0)
		return berth_errnof(err, errno, "signalfd");
	s->sig_src.fn = on_signal;
	return shim_watch(s, &s->sig_src, EPOLLIN, err);
}

int shim_setup(struct shim *s, struct berth_err *err)
{
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0)
		return berth_errnof(err, errno, "task %s: epoll", s->plan->task_id);
	s->nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (s->nullfd < 0)
		return berth_errnof(err, errno, "task %s: open /dev/null", s->plan->task_id);
	int r = setup_signals(s, err);
	if (r < 0)
		return berth_err_wrap(err, "task %s", s->plan->task_id);
	/* The socket first: it also tells us whether another shim owns the
	 * task, before anything of the task is touched. */
	if ((r = shim_ctl_listen(s, err)) < 0)
		return r;
	if ((r = shim_task_setup(s, err)) < 0) {
		shim_task_teardown(s);
		shim_ctl_close(s);
		return r;
	}
	return 0;
}

static int loop_once(struct shim *s, struct berth_err *err)
{
	struct epoll_event ev[EVENTS_PER_WAIT];
	int n = epoll_wait(s->epfd, ev, EVENTS_PER_WAIT, -1);
	if (n < 0 && errno == EINTR)
		return 0;
	if (n < 0)
		return berth_errnof(err, errno, "task %s: epoll_wait", s->plan->task_id);
	for (int i = 0; i < n; i++) {
		struct shim_src *src = ev[i].data.ptr;
		if (src->fd >= 0)
			src->fn(s, src, ev[i].events);
	}
	return 0;
}

int shim_run(struct shim *s, struct berth_err *err)
{
	shim_task_progress(s);
	/* Checked before waiting: a task can end before the first wait (a
	 * start failure), and then nothing may be left to wake us. */
	for (shim_ctl_sweep(s); !(s->recorded && shim_ctl_flushed(s)); shim_ctl_sweep(s)) {
		int r = loop_once(s, err);
		if (r < 0) {
			/* The loop itself broke: still leave nothing behind. */
			shim_task_stop(s, STOP_USER, err->msg);
			shim_task_teardown(s);
			shim_ctl_close(s);
			return r;
		}
	}
	return 0;
}

void shim_free(struct shim *s)
{
	if (!s)
		return;
	shim_ctl_free(s);
	shim_exec_free(s);
	shim_task_free(s);
	if (s->sig_src.fd >= 0) {
		close(s->sig_src.fd);
		sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
	}
	if (s->linger_src.fd >= 0)
		close(s->linger_src.fd);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->nullfd >= 0)
		close(s->nullfd);
	free(s->stopped_reason);
	free(s->ctrs);
	plan_free(s->plan);
	free(s);
}
