/* daemon/lb/lb_proc: the HAProxy process (master-worker mode, the master
 * our child, watched through a pidfd in the event loop) and its two unix
 * sockets in the run dir: master.sock (the master CLI: `show proc`,
 * `reload`) and admin.sock (the worker's Runtime API).
 *
 * The calls here block the caller for as long as HAProxy takes to answer
 * (a few milliseconds; a reload, tens), with deadlines. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/time.h"
#include "daemon/lb/lb_internal.h"

#define LB_SOCK_TIMEOUT_S 5
#define LB_START_MS 10000
#define LB_ANSWER_MAX (8u << 20)
#define LB_BACKOFF_MAX_MS 5000
/* A master that lived this long was healthy: the next death restarts at once. */
#define LB_STABLE_MS 10000

extern char **environ;

void lb_logf(struct lb *lb, const char *fmt, ...)
{
	if (!lb->log)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("berthd: load balancer: ", lb->log);
	vfprintf(lb->log, fmt, ap);
	fputc('\n', lb->log);
	fflush(lb->log);
	va_end(ap);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Sends CMD on the unix socket run_dir/SOCK and reads the answer up to
 * the server's end of it. */
static int sock_ask(struct lb *lb, const char *sock, const char *cmd, char **ret,
		    struct berth_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", lb->run_dir, sock);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return berth_errnof(err, errno, "HAProxy %s", sock);
	struct timeval tv = { LB_SOCK_TIMEOUT_S, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return berth_errnof(err, errno, "HAProxy %s", sock);
	size_t len = strlen(cmd);
	for (size_t off = 0; off < len;) {
		ssize_t k = send(fd, cmd + off, len - off, MSG_NOSIGNAL);
		if (k < 0 && errno != EINTR)
			return berth_errnof(err, errno, "HAProxy %s: send", sock);
		off += k > 0 ? (size_t)k : 0;
	}
	/* The master CLI answers a half-closed connection, then closes. */
	shutdown(fd, SHUT_WR);
	_cleanup_free_ char *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (cap - n < 4096) {
			if (cap >= LB_ANSWER_MAX)
				return berth_errf(err, EFBIG, "HAProxy %s: answer over %u bytes",
						  sock, LB_ANSWER_MAX);
			char *nb = realloc(buf, cap = cap ? 2 * cap : 8192);
			if (!nb)
				return berth_errf(err, ENOMEM, "HAProxy %s", sock);
			buf = nb;
		}
		ssize_t k = recv(fd, buf + n, cap - n - 1, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return berth_errnof(err, errno, "HAProxy %s: no answer", sock);
		if (k == 0)
			break;
		n += (size_t)k;
	}
	buf[n] = '\0';
	if (ret)
		*ret = TAKE_PTR(buf);
	return 0;
}

int lb_proc_cmd(struct lb *lb, char **ret, struct berth_err *err, const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(cmd, sizeof(cmd) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd) - 1)
		return berth_errf(err, E2BIG, "HAProxy command too long");
	/* Callers build commands from checked names and numbers only. */
	strcat(cmd, "\n");
	return sock_ask(lb, "admin.sock", cmd, ret, err);
}

struct proc_info {
	long reloads, failed;
	pid_t worker;
};

/* `show proc` on the master CLI: "<pid> master <reloads> [failed: N] …",
 * then "# workers" and a line per worker. */
static int show_proc(struct lb *lb, struct proc_info *pi, struct berth_err *err)
{
	_cleanup_free_ char *out = NULL;
	int r = sock_ask(lb, "master.sock", "show proc\n", &out, err);
	if (r < 0)
		return r;
	*pi = (struct proc_info){ -1, 0, 0 };
	bool workers = false;
	for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		long pid, n;
		char type[16];
		if (line[0] == '#') {
			workers = strcmp(line, "# workers") == 0;
			continue;
		}
		if (sscanf(line, "%ld %15s %ld", &pid, type, &n) != 3)
			continue;
		if (strcmp(type, "master") == 0) {
			pi->reloads = n;
			const char *fl = strstr(line, "[failed: ");
			pi->failed = fl ? strtol(fl + 9, NULL, 10) : 0;
		} else if (workers && strcmp(type, "worker") == 0 && pi->worker == 0) {
			pi->worker = (pid_t)pid;
		}
	}
	if (pi->reloads < 0)
		return berth_errf(err, EPROTO, "HAProxy master.sock: no master in `show proc`");
	return 0;
}

static void on_master_exit(evutil_socket_t fd, short what, void *arg);

static int spawn(char *const argv[], int out, pid_t *ret, struct berth_err *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (out >= 0) {
		posix_spawn_file_actions_adddup2(&fa, out, 1);
		posix_spawn_file_actions_adddup2(&fa, out, 2);
	} else {
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	}
	/* The daemon's signal mask and handlers are not HAProxy's. */
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	int r = posix_spawnp(ret, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r != 0)
		return berth_errnof(err, r, "start %s", argv[0]);
	return 0;
}

/* Child side of spawn_master(): what may run between fork and exec. */
static void master_child(char *const argv[], int out, pid_t parent, int report)
{
	sigset_t none;
	sigemptyset(&none);
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (out < 0)
		out = nul;
	/* HAProxy handles its own signals: none blocked or ignored. */
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) == 0 && getppid() == parent && nul >= 0 &&
	    dup2(nul, 0) >= 0 && dup2(out, 1) >= 0 && dup2(out, 2) >= 0 &&
	    sigprocmask(SIG_SETMASK, &none, NULL) == 0)
		execvp(argv[0], argv);
	int e = errno;
	(void)!write(report, &e, sizeof(e));
	_exit(127);
}

/* The master dies with the daemon (SIGTERM when its parent goes; it then
 * stops its workers): a daemon killed with -9 leaves no HAProxy holding
 * the listeners' ports.  fork, not posix_spawn, for the prctl: HAProxy
 * starts rarely.  An exec failure comes back on a close-on-exec pipe. */
static int spawn_master(char *const argv[], int out, pid_t *ret, struct berth_err *err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return berth_errnof(err, errno, "start %s", argv[0]);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0)
		master_child(argv, out, parent, p[1]);
	int e = errno;
	close(p[1]);
	_cleanup_close_ int rd = p[0];
	if (pid < 0)
		return berth_errnof(err, e, "start %s", argv[0]);
	ssize_t k;
	while ((k = read(rd, &e, sizeof(e))) < 0 && errno == EINTR)
		;
	if (k == (ssize_t)sizeof(e)) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return berth_errnof(err, e, "start %s", argv[0]);
	}
	*ret = pid;
	return 0;
}

int lb_proc_check(struct lb *lb, const char *name, struct berth_err *err)
{
	char cfg[4200];
	snprintf(cfg, sizeof(cfg), "%s/%s", lb->run_dir, name);
	char *argv[] = { lb->haproxy, "-c", "-q", "-f", cfg, NULL };
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return berth_errnof(err, errno, "haproxy -c");
	_cleanup_close_ int rd = p[0], wr = p[1];
	pid_t pid;
	int r = spawn(argv, wr, &pid, err);
	if (r < 0)
		return r;
	close(TAKE_FD(wr));
	char out[1024];
	size_t n = 0;
	ssize_t k;
	while ((k = read(rd, out + n, sizeof(out) - 1 - n)) > 0 || (k < 0 && errno == EINTR))
		n += k > 0 ? (size_t)k : 0;
	out[n] = '\0';
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	/* Its first alert names the line and the cause. */
	char *alert = strstr(out, "[ALERT]");
	char *eol = alert ? strchr(alert, '\n') : NULL;
	if (eol)
		*eol = '\0';
	return berth_errf(err, EINVAL, "HAProxy refuses the configuration: %s", alert ? alert : out);
}

/* The master exited (or failed to start): reaps it. */
static int reap(struct lb *lb)
{
	int st = 0;
	while (waitpid(lb->pid, &st, 0) < 0 && errno == EINTR)
		;
	event_free(lb->ev_exit);
	lb->ev_exit = NULL;
	close(TAKE_FD(lb->pidfd));
	lb->pid = 0;
	return st;
}

static bool exited(struct lb *lb, int wait_ms)
{
	struct pollfd p = { .fd = lb->pidfd, .events = POLLIN };
	return poll(&p, 1, wait_ms) > 0;
}

/* Until the master answers with a worker, or dies. */
static int wait_ready(struct lb *lb, struct berth_err *err)
{
	int64_t deadline = berth_mono_ms() + LB_START_MS;
	while (berth_mono_ms() < deadline) {
		struct proc_info pi;
		struct berth_err e = { 0 };
		if (show_proc(lb, &pi, &e) == 0 && pi.worker > 0)
			return 0;
		if (exited(lb, 20)) {
			int st = reap(lb);
			return berth_errf(err, EIO,
					  "HAProxy exited at start (status %d): a listener's port "
					  "in use, or see its log",
					  WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		}
	}
	return berth_errf(err, ETIMEDOUT, "HAProxy did not start within %d ms", LB_START_MS);
}

int lb_proc_start(struct lb *lb, struct berth_err *err)
{
	char master[4200], cfg[4200], pidf[4200];
	snprintf(master, sizeof(master), "%s/master.sock,mode,600", lb->run_dir);
	snprintf(cfg, sizeof(cfg), "%s/haproxy.cfg", lb->run_dir);
	snprintf(pidf, sizeof(pidf), "%s/haproxy.pid", lb->run_dir);
	char *argv[] = { lb->haproxy, "-W", "-db", "-S", master, "-f", cfg, "-p", pidf, NULL };
	int r = spawn_master(argv, lb->log ? fileno(lb->log) : -1, &lb->pid, err);
	if (r < 0)
		return r;
	lb->pidfd = (int)syscall(SYS_pidfd_open, lb->pid, 0);
	lb->ev_exit = lb->pidfd >= 0 ? event_new(lb->base, lb->pidfd, EV_READ, on_master_exit, lb)
				     : NULL;
	if (!lb->ev_exit || event_add(lb->ev_exit, NULL) < 0) {
		r = berth_errnof(err, errno ? errno : ENOMEM, "watch HAProxy (pid %d)",
				 (int)lb->pid);
		lb_proc_stop(lb);
		return r;
	}
	lb->started_ms = berth_mono_ms();
	r = wait_ready(lb, err);
	if (r < 0) {
		lb_proc_stop(lb);
		return r;
	}
	lb_logf(lb, "HAProxy started (pid %d)", (int)lb->pid);
	return 0;
}

/* SIGTERM: the master stops its workers and exits; SIGKILL after 5 s. */
void lb_proc_stop(struct lb *lb)
{
	if (lb->pid <= 0)
		return;
	kill(lb->pid, SIGTERM);
	if (lb->pidfd >= 0 && !exited(lb, 5000))
		kill(lb->pid, SIGKILL);
	reap(lb);
}

static void schedule_restart(struct lb *lb)
{
	struct timeval tv = { lb->backoff_ms / 1000, (lb->backoff_ms % 1000) * 1000 };
	evtimer_add(lb->ev_restart, &tv);
	lb->backoff_ms = lb->backoff_ms * 2 > LB_BACKOFF_MAX_MS ? LB_BACKOFF_MAX_MS
								: lb->backoff_ms * 2;
}

static void restart(struct lb *lb)
{
	struct berth_err err = { 0 };
	int r = lb_proc_start(lb, &err);
	if (r == 0)
		r = lb_program_targets(lb, &err);
	if (r == 0)
		return;
	lb_logf(lb, "restart failed: %s; next try in %d ms", err.msg, lb->backoff_ms);
	schedule_restart(lb);
}

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	restart(arg);
}

static void on_master_exit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct lb *lb = arg;
	pid_t pid = lb->pid;
	int st = reap(lb);
	lb_logf(lb, "HAProxy (pid %d) exited (%s %d); restarting it with the last applied state",
		(int)pid, WIFSIGNALED(st) ? "signal" : "status",
		WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	if (!lb->ev_restart && !(lb->ev_restart = evtimer_new(lb->base, on_restart, lb)))
		return;
	/* One that dies again soon after its start waits longer each time. */
	if (berth_mono_ms() - lb->started_ms > LB_STABLE_MS) {
		lb->backoff_ms = 100;
		restart(lb);
	} else {
		schedule_restart(lb);
	}
}

int lb_proc_reload(struct lb *lb, struct berth_err *err)
{
	struct proc_info before, now;
	int r = show_proc(lb, &before, err);
	if (r < 0)
		return berth_err_wrap(err, "reload HAProxy");
	/* The master re-executes itself: the connection may end unanswered. */
	sock_ask(lb, "master.sock", "reload\n", NULL, NULL);
	int64_t deadline = berth_mono_ms() + LB_START_MS;
	for (;;) {
		struct berth_err e = { 0 };
		if (show_proc(lb, &now, &e) == 0 && now.reloads > before.reloads)
			break;
		if (berth_mono_ms() > deadline)
			return berth_errf(err, ETIMEDOUT,
					  "reload HAProxy: no new worker within %d ms", LB_START_MS);
		if (exited(lb, 0))
			return berth_errf(err, EIO, "reload HAProxy: the master exited");
		sleep_ms(10);
	}
	if (now.failed > 0)
		return berth_errf(err, EIO,
				  "reload HAProxy: the new configuration failed to load (a "
				  "listener's port taken?); the previous one is still served");
	return 0;
}
