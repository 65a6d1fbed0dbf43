/* daemon/sched/sched_helpers: the processes berthd runs rather than link their
 * libraries (docs/operations.md "Processes"): `berth task-image` pulls an
 * image for a task (libcurl, libarchive), `berth host-network` sets up the
 * bridge and NAT (libnftables), and `berth-shim PLAN` starts a task.  Each
 * prints its answer on stdout and its error, one `berth…: ` line, on
 * stderr; the caller waits for it to exit.  A task's image pinned by digest
 * and already in the store needs no helper: it is read in process
 * (images/local.h, which maps neither libcurl nor libarchive).
 *
 * A pull helper can run for minutes, so it must not outlive its reason
 * to run: it is started with PR_SET_PDEATHSIG=SIGKILL (the kernel kills
 * it when the launch thread, and so the daemon, dies — even by kill -9;
 * a restarted daemon then pulls again with no orphan next to it), and its
 * pidfd sits in the task's helper slot, where StopTask and shutdown
 * SIGKILL it (sched_helper_kill). */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sanitizer/asan_interface.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/cleanup.h"
#include "common/fdpass.h"
#include "common/json.h"
#include "daemon/sched/sched_internal.h"
#include "images/local.h"
#include "netns/policy_worker.h"

#define HELPER_OUT_MAX (8u << 20)  /* an image config is capped at 4 MiB */
#define HELPER_ERR_MAX 2048
#define ARGV_MAX 64
#define WORKER_STATUS_MS 10000  /* worker_started(), worker_status() */

extern char **environ;

/* Reads FD to EOF into a NUL-terminated buffer of at most MAX bytes. */
static int read_all(int fd, size_t max, char **ret, size_t *ret_len)
{
	size_t len = 0, cap = 4096;
	_cleanup_free_ char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (len + 1 == cap) {
			if (cap >= max)
				return -EFBIG;
			/* buf stays ours (and is freed) if the larger copy fails. */
			char *grown = realloc(buf, cap * 2);
			if (!grown)
				return -ENOMEM;
			buf = grown;
			cap *= 2;
		}
		ssize_t k = read(fd, buf + len, cap - len - 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

void sched_helper_init(struct sched_helper *h)
{
	pthread_mutex_init(&h->lock, NULL);
	h->pidfd = -1;
	h->killed = false;
}

void sched_helper_destroy(struct sched_helper *h)
{
	pthread_mutex_destroy(&h->lock);
}

static void helper_signal_locked(struct sched_helper *h)
{
	if (h->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, h->pidfd, SIGKILL, NULL, 0);
}

void sched_helper_kill(struct sched_helper *h)
{
	pthread_mutex_lock(&h->lock);
	h->killed = true;
	helper_signal_locked(h);
	pthread_mutex_unlock(&h->lock);
}

/* Publishes (pidfd >= 0) or withdraws (-1) the running helper; one that
 * starts after a kill request dies at once. */
static void helper_set(struct sched_helper *h, int pidfd)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->pidfd = pidfd;
	if (h->killed)
		helper_signal_locked(h);
	pthread_mutex_unlock(&h->lock);
}

struct helper_child_args {
	char *const *argv;
	int in, out, errfd;          /* in < 0: /dev/null */
	pid_t parent;
	bool die_with_us;
	const sigset_t *mask;        /* the launching thread's, restored before exec */
};

/* The child between clone and execve: system calls only, no allocation
 * (it shares the daemon's memory).  The signals the daemon handles go back to their
 * defaults before they are unblocked, so no handler of the daemon's runs
 * here.  With die_with_us, the death signal is armed before anything else
 * and the parent checked afterwards, so a daemon killed in between cannot
 * leave the helper running. */
static int helper_child(void *arg)
{
	const struct helper_child_args *a = arg;
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;
		if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL &&
		    sa.sa_handler != SIG_IGN) {
			sa.sa_handler = SIG_DFL;
			sigaction(sig, &sa, NULL);
		}
	}
	if (a->die_with_us && (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != a->parent))
		_exit(127);
	int in = a->in;
	if (in < 0 && (in = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		_exit(127);
	if (dup2(in, 0) < 0 || dup2(a->out, 1) < 0 || dup2(a->errfd, 2) < 0 ||
	    sigprocmask(SIG_SETMASK, a->mask, NULL) < 0)
		_exit(127);
	execve(a->argv[0], a->argv, environ);
	_exit(127);
}

/* Starts ARGV with stdin IN (-1: /dev/null), stdout OUT and stderr ERRFD;
 * its pid and pidfd.  The child shares the daemon's memory until its
 * execve (CLONE_VM | CLONE_VFORK, as posix_spawn does): a fork copied the
 * daemon's page tables and made its pages copy-on-write, and with
 * hundreds of tasks starting the loop thread spent a quarter of its time
 * waiting for the memory map's lock those copies held. */
static int helper_spawn(char *const *argv, int in, int out, int errfd, bool die_with_us,
			pid_t *ret_pid, int *ret_pidfd)
{
	/* The child runs on this array: this thread sleeps (CLONE_VFORK)
	 * until the child has exec'd or exited. */
	_Alignas(16) char stack[32768];
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	struct helper_child_args a = { argv, in, out, errfd, getpid(), die_with_us, &old };
	int pidfd = -1;
	int pid = clone(helper_child, stack + sizeof(stack),
			CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &a, &pidfd);
	int saved = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* Under ASan the child's frames left their redzones in the shadow of
	 * STACK, this thread's memory, which later calls reuse: cleared, or
	 * ASan reports overflows there that never happened.  A no-op in a
	 * build without ASan. */
	ASAN_UNPOISON_MEMORY_REGION(stack, sizeof(stack));
	if (pid < 0)
		return -saved;
	*ret_pid = (pid_t)pid;
	*ret_pidfd = pidfd;
	return 0;
}

/* The wait status the pull worker sends on CTL once the pull exited (its
 * pipes are closed: it sends it at once).  A worker that died first killed
 * the pull with it, and one that does not answer (stopped, hung) must not
 * hold up the launch, nor the daemon's shutdown that joins it: SIGKILL. */
static int worker_status(int ctl)
{
	struct pollfd p = { .fd = ctl, .events = POLLIN };
	int status, n;
	ssize_t k = -1;
	while ((n = poll(&p, 1, WORKER_STATUS_MS)) < 0 && errno == EINTR)
		;
	if (n > 0)
		while ((k = recv(ctl, &status, sizeof(status), MSG_DONTWAIT)) < 0 && errno == EINTR)
			;
	return k == (ssize_t)sizeof(status) ? status : SIGKILL;
}

/* Reads a started helper's stdout OFD and stderr EFD to EOF and its exit
 * status (waitpid(PID), or from the worker's CTL when PID is 0).  With a
 * slot H the helper can be killed through H meanwhile.  *ret_out is its
 * stdout when it exits 0, else the error is its stderr line.  Closes
 * OFD, EFD and PIDFD. */
static int helper_collect(const char *name, struct sched_helper *h, int ofd, int efd, pid_t pid,
			  int pidfd, int ctl, char **ret_out, struct berth_err *err)
{
	_cleanup_close_ int ofd_ = ofd, efd_ = efd, pidfd_ = pidfd;
	helper_set(h, pidfd);
	_cleanup_free_ char *o = NULL, *e = NULL;
	size_t olen = 0, elen = 0;
	int r = read_all(ofd, HELPER_OUT_MAX, &o, &olen);
	if (read_all(efd, HELPER_ERR_MAX, &e, &elen) < 0)
		e = NULL;
	int status = 0;
	if (pid)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	else
		status = worker_status(ctl);
	helper_set(h, -1);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && r == 0) {
		*ret_out = TAKE_PTR(o);
		return 0;
	}
	const char *msg = e ? e : "";
	msg += strncmp(msg, "berth: ", 7) == 0 ? 7 : strncmp(msg, "berth-shim: ", 12) == 0 ? 12 : 0;
	size_t n = strcspn(msg, "\n");
	if (r < 0)
		return berth_errf(err, -r, "%s: its answer: %s", name, strerror(-r));
	if (!n)
		return berth_errf(err, EIO, "%s exited with status %d", name,
				  WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return berth_errf(err, EIO, "%.*s", (int)n, msg);
}

/* Runs ARGV (argv[0] the path), stdin /dev/null; *ret_out is its stdout
 * when it exits 0, else the error is its stderr line.  With a slot H the
 * helper dies with the daemon and can be killed through H. */
static int run_helper(char *const *argv, struct sched_helper *h, char **ret_out,
		      struct berth_err *err)
{
	int out[2], errp[2];
	if (pipe2(out, O_CLOEXEC) < 0)
		return berth_errnof(err, errno, "pipe");
	if (pipe2(errp, O_CLOEXEC) < 0) {
		close(out[0]), close(out[1]);
		return berth_errnof(err, errno, "pipe");
	}
	pid_t pid = 0;
	int pidfd = -1;
	int rc = helper_spawn(argv, -1, out[1], errp[1], h != NULL, &pid, &pidfd);
	close(out[1]);
	close(errp[1]);
	if (rc < 0) {
		close(out[0]), close(errp[0]);
		return berth_errnof(err, -rc, "start %s", argv[0]);
	}
	return helper_collect(argv[0], h, out[0], errp[0], pid, pidfd, -1, ret_out, err);
}

/* `berth [--root R] [--registry-auth F] [--insecure-registry H]… [limits]
 * SUBCOMMAND`; bufs holds the limits' value texts. */
static size_t cli_argv(const struct sched *s, char **argv, const char *subcommand,
		       char bufs[4][32])
{
	size_t n = 0;
	argv[n++] = (char *)s->cfg.cli_bin;
	argv[n++] = "--root";
	argv[n++] = (char *)s->cfg.root;
	if (s->cfg.registry.auth_file) {
		argv[n++] = "--registry-auth";
		argv[n++] = (char *)s->cfg.registry.auth_file;
	}
	for (size_t i = 0; i < s->cfg.registry.n_insecure && n + 14 < ARGV_MAX; i++) {
		argv[n++] = "--insecure-registry";
		argv[n++] = (char *)s->cfg.registry.insecure[i];
	}
	img_limits_argv(&s->cfg.pull_limits, argv, &n, bufs);
	argv[n++] = (char *)subcommand;
	return n;
}

/* ---- the pull worker (cli/images.c has the other side) ------------------ */

#define WORKER_RETRY_S 1

void sched_worker_init(struct sched *s)
{
	pthread_mutex_init(&s->worker_lock, NULL);
	s->worker_sock = s->worker_pidfd = s->netpol_pidfd = -1;
}

/* The worker's socket for one request (a copy: the loop may replace the
 * worker meanwhile), or -1. */
static int worker_sock(struct sched *s)
{
	pthread_mutex_lock(&s->worker_lock);
	int fd = s->worker_sock >= 0 ? fcntl(s->worker_sock, F_DUPFD_CLOEXEC, 3) : -1;
	pthread_mutex_unlock(&s->worker_lock);
	return fd;
}

static void close_fds(const int fds[3])
{
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* The pull's pid and pidfd, the worker's first answer on CTL; a worker
 * that does not answer in time is passed over (the caller execs). */
static int worker_started(int ctl, int *ret_pidfd)
{
	struct pollfd p = { .fd = ctl, .events = POLLIN };
	int pid, n;
	while ((n = poll(&p, 1, WORKER_STATUS_MS)) < 0 && errno == EINTR)
		;
	if (n <= 0 || berth_recv_fds(ctl, &pid, sizeof(pid), ret_pidfd, 1, MSG_DONTWAIT) !=
		      (ssize_t)sizeof(pid))
		return -EPIPE;
	return 0;
}

/* `task-image REF` run by the worker.  -EAGAIN when there is no worker or
 * it did not take the request: the caller execs the helper itself. */
static int worker_pull(struct sched *s, const char *ref, struct sched_helper *h, char **ret_out,
		       struct berth_err *err)
{
	_cleanup_close_ int sock = worker_sock(s);
	if (sock < 0)
		return -EAGAIN;
	/* ours[i] stays here, theirs[i] goes to the pull: stdout, stderr, control. */
	int out[2] = { -1, -1 }, errp[2] = { -1, -1 }, ctl[2] = { -1, -1 }, pidfd = -1;
	int r = pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
		socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0 ? -EAGAIN : 0;
	int ours[3] = { out[0], errp[0], ctl[0] }, theirs[3] = { out[1], errp[1], ctl[1] };
	/* Never blocks: a worker whose queue is full is passed over too. */
	if (r == 0 && berth_send_fds(sock, ref, strlen(ref), theirs, 3, MSG_DONTWAIT) < 0)
		r = -EAGAIN;
	close_fds(theirs);
	if (r == 0 && worker_started(ctl[0], &pidfd) < 0)
		r = -EAGAIN;
	if (r < 0) {
		close_fds(ours);
		return r;
	}
	_cleanup_close_ int ctlfd = ctl[0];
	return helper_collect(s->cfg.cli_bin, h, out[0], errp[0], 0, pidfd, ctlfd, ret_out, err);
}

/* Ends a worker (if any) and waits for it; *PIDFD -1 afterwards. */
static void helper_end(struct event **ev, int *pidfd, pid_t pid)
{
	if (*ev)
		event_free(*ev);
	*ev = NULL;
	if (*pidfd >= 0) {
		syscall(SYS_pidfd_send_signal, *pidfd, SIGKILL, NULL, 0);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		close(*pidfd);
	}
	*pidfd = -1;
}

static void worker_drop(struct sched *s)
{
	pthread_mutex_lock(&s->worker_lock);
	if (s->worker_sock >= 0)
		close(s->worker_sock);
	s->worker_sock = -1;
	pthread_mutex_unlock(&s->worker_lock);
	helper_end(&s->worker_ev, &s->worker_pidfd, s->worker_pid);
}

static void on_worker_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sched_worker_start(arg);
}

static void on_worker_exit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct sched *s = arg;
	worker_drop(s);
	sched_say(s, "the pull worker exited; another starts in %d s (pulls exec their "
		  "helper meanwhile)", WORKER_RETRY_S);
	struct timeval tv = { WORKER_RETRY_S, 0 };
	if (!s->worker_retry_ev)
		s->worker_retry_ev = evtimer_new(s->base, on_worker_retry, s);
	if (!s->worker_retry_ev || evtimer_add(s->worker_retry_ev, &tv) < 0)
		sched_say(s, "cannot arm the pull worker's restart: pulls exec their helper");
}

static int worker_spawn(struct sched *s, struct berth_err *err)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return berth_errnof(err, errno, "socketpair");
	char *argv[ARGV_MAX], bufs[4][32];
	size_t n = cli_argv(s, argv, "task-image", bufs);
	argv[n++] = "--worker";
	argv[n] = NULL;
	/* The worker and the pulls it forks run at the daemon's own nice, not
	 * at the loop thread's boost it would inherit from this thread. */
	if (s->boosted)
		setpriority(PRIO_PROCESS, (id_t)gettid(), s->nice);
	int r = helper_spawn(argv, sv[1], STDERR_FILENO, STDERR_FILENO, true, &s->worker_pid,
			     &s->worker_pidfd);
	if (s->boosted)
		setpriority(PRIO_PROCESS, (id_t)gettid(), SCHED_LOOP_NICE);
	close(sv[1]);
	if (r < 0) {
		close(sv[0]);
		return berth_errnof(err, -r, "start %s", s->cfg.cli_bin);
	}
	pthread_mutex_lock(&s->worker_lock);
	s->worker_sock = sv[0];
	pthread_mutex_unlock(&s->worker_lock);
	s->worker_ev = event_new(s->base, s->worker_pidfd, EV_READ, on_worker_exit, s);
	if (!s->worker_ev || event_add(s->worker_ev, NULL) < 0) {
		worker_drop(s);
		return berth_errf(err, ENOMEM, "cannot watch the pull worker");
	}
	return 0;
}

/* On the loop thread only: the worker dies with the thread that started it. */
void sched_worker_start(struct sched *s)
{
	struct berth_err err = { 0 };
	if (worker_spawn(s, &err) < 0)
		sched_say(s, "pull worker: %s; pulls exec their helper", err.msg);
}

void sched_worker_stop(struct sched *s)
{
	worker_drop(s);
	if (s->worker_retry_ev)
		event_free(s->worker_retry_ev);
	s->worker_retry_ev = NULL;
	pthread_mutex_destroy(&s->worker_lock);
}

/* ---- the network policy worker (netns/policy_main.c) ------------------- */

static void on_netpol_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	sched_netpol_start(arg);
}

static void on_netpol_exit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct sched *s = arg;
	helper_end(&s->netpol_ev, &s->netpol_pidfd, s->netpol_pid);
	sched_say(s, "the network policy worker exited; another starts in %d s (shims exec "
		  "berth-netpolicy meanwhile)", WORKER_RETRY_S);
	struct timeval tv = { WORKER_RETRY_S, 0 };
	if (!s->netpol_retry_ev)
		s->netpol_retry_ev = evtimer_new(s->base, on_netpol_retry, s);
	if (!s->netpol_retry_ev || evtimer_add(s->netpol_retry_ev, &tv) < 0)
		sched_say(s, "cannot arm the network policy worker's restart");
}

/* berth-netpolicy beside the shim: the one its shims would exec. */
static int netpol_spawn(struct sched *s, struct berth_err *err)
{
	char bin[4096], dir[4096];
	const char *slash = strrchr(s->cfg.shim_bin, '/');
	int len = slash ? (int)(slash - s->cfg.shim_bin) : 1;
	snprintf(bin, sizeof(bin), "%.*s/berth-netpolicy", len, slash ? s->cfg.shim_bin : ".");
	if (snprintf(dir, sizeof(dir), "%s/%s", s->cfg.run_root, NETPOLICY_WORKER_DIR) >=
	    (int)sizeof(dir))
		return berth_errf(err, ENAMETOOLONG, "%s: run root too long", s->cfg.run_root);
	char *argv[] = { bin, "--worker", dir, NULL };
	if (s->boosted)
		setpriority(PRIO_PROCESS, (id_t)gettid(), s->nice);
	int r = helper_spawn(argv, -1, STDERR_FILENO, STDERR_FILENO, true, &s->netpol_pid,
			     &s->netpol_pidfd);
	if (s->boosted)
		setpriority(PRIO_PROCESS, (id_t)gettid(), SCHED_LOOP_NICE);
	if (r < 0)
		return berth_errnof(err, -r, "start %s", bin);
	s->netpol_ev = event_new(s->base, s->netpol_pidfd, EV_READ, on_netpol_exit, s);
	if (!s->netpol_ev || event_add(s->netpol_ev, NULL) < 0) {
		helper_end(&s->netpol_ev, &s->netpol_pidfd, s->netpol_pid);
		return berth_errf(err, ENOMEM, "cannot watch the network policy worker");
	}
	return 0;
}

void sched_netpol_start(struct sched *s)
{
	struct berth_err err = { 0 };
	if (netpol_spawn(s, &err) < 0)
		sched_say(s, "network policy worker: %s; shims exec berth-netpolicy", err.msg);
}

void sched_netpol_stop(struct sched *s)
{
	helper_end(&s->netpol_ev, &s->netpol_pidfd, s->netpol_pid);
	if (s->netpol_retry_ev)
		event_free(s->netpol_retry_ev);
	s->netpol_retry_ev = NULL;
}

void sched_pulled_done(struct sched_pulled *p)
{
	free(p->config);
	free(p->digest);
	for (size_t i = 0; i < p->n_layers; i++)
		free(p->layers[i]);
	free(p->layers);
}

static int parse_pulled(const char *text, struct sched_pulled *p)
{
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_Parse(text);
	const cJSON *layers = cJSON_GetObjectItemCaseSensitive(o, "layers"), *l;
	const char *digest = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "digest"));
	const cJSON *config = cJSON_GetObjectItemCaseSensitive(o, "config");
	if (!digest || !cJSON_IsObject(config) || !cJSON_IsArray(layers))
		return -EBADMSG;
	p->digest = strdup(digest);
	p->config = cJSON_PrintUnformatted(config);
	p->layers = calloc((size_t)cJSON_GetArraySize(layers) + 1, sizeof(*p->layers));
	if (!p->digest || !p->config || !p->layers)
		return -ENOMEM;
	cJSON_ArrayForEach(l, layers) {
		if (!cJSON_IsString(l))
			return -EBADMSG;
		if (!(p->layers[p->n_layers++] = strdup(l->valuestring)))
			return -ENOMEM;
	}
	return 0;
}

/* REF pinned by digest and complete in the store: no registry request (a
 * digest names its content for good) and no helper.  Otherwise -ENOENT (or
 * -ENOMEM), P untouched: the helper pulls, and repairs what was missing. */
static int pulled_local(struct sched *s, const char *ref, struct sched_pulled *p)
{
	struct img_local l;
	if (!strchr(ref, '@') || img_local_image(s->images, ref, &l, NULL) < 0)
		return -ENOENT;
	struct sched_pulled got = {
		.digest = strdup(l.digest), .config = TAKE_PTR(l.config),
		.layers = TAKE_PTR(l.layers), .n_layers = l.n_layers,
	};
	l.n_layers = 0;
	img_local_done(&l);
	if (!got.digest) {
		sched_pulled_done(&got);
		return -ENOMEM;
	}
	*p = got;
	return 0;
}

int sched_pull(struct sched *s, struct sched_helper *h, const char *ref, struct sched_pulled *p,
	       struct berth_err *err)
{
	if (pulled_local(s, ref, p) == 0)
		return 0;
	char *argv[ARGV_MAX], bufs[4][32];
	size_t n = cli_argv(s, argv, "task-image", bufs);
	argv[n++] = (char *)ref;
	argv[n] = NULL;
	_cleanup_free_ char *out = NULL;
	int r = worker_pull(s, ref, h, &out, err);
	if (r == -EAGAIN)
		r = run_helper(argv, h, &out, err);
	if (r < 0)
		return r;
	if ((r = parse_pulled(out, p)) < 0)
		return berth_errf(err, -r, "image %s: %s gave no usable answer", ref, s->cfg.cli_bin);
	return 0;
}

int sched_spawn_shim(struct sched *s, const char *plan, int *ret_pid, struct berth_err *err)
{
	char *argv[] = { (char *)s->cfg.shim_bin, (char *)plan, NULL };
	_cleanup_free_ char *out = NULL;
	int r = run_helper(argv, NULL, &out, err);
	if (r < 0)
		return r;
	if ((*ret_pid = atoi(out)) <= 0)
		return berth_errf(err, EIO, "%s: no pid in its answer", s->cfg.shim_bin);
	return 0;
}

int sched_host_network(const struct sched_config *c, struct berth_err *err)
{
	char ipam[4096];
	snprintf(ipam, sizeof(ipam), "%s/ipam", c->root);
	char *argv[18] = {
		(char *)c->cli_bin, "host-network", "--bridge", (char *)c->bridge,
		"--subnet", (char *)c->subnet, "--nft-table", (char *)c->nft_table,
		"--run-root", (char *)c->run_root, "--ipam-dir", ipam,
		c->nat ? "--nat" : "--no-nat",
	};
	size_t n = 13;
	if (c->blocked)
		argv[n++] = "--block", argv[n++] = (char *)c->blocked;
	if (c->task_endpoint)
		argv[n++] = "--task-endpoint", argv[n++] = (char *)c->task_endpoint;
	_cleanup_free_ char *out = NULL;
	return run_helper(argv, NULL, &out, err);
}
