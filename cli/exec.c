/* berth exec: a command in a running task's container (docs/cli.md,
 * docs/task-environment.md "berth exec").
 *
 * The request goes to the daemon's exec socket (<--socket>.exec,
 * daemon/server/exec_gate.h), which checks it and hands this connection
 * to the task's shim.  Without -t we give the process three pipes of our
 * own making; with -t the shim makes a new pty inside the container and
 * sends us its master.  Either way we relay between those and our own
 * stdio: our terminal, or any other descriptor of ours, never reaches
 * the container. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/ecs.h"
#include "common/cleanup.h"
#include "common/fdpass.h"
#include "common/json.h"
#include "common/time.h"

/* After the exit code: how long output still in flight (a pty's buffer,
 * a background process holding a pipe) is waited for. */
#define EXEC_DRAIN_MS 2000
#define EXEC_REPLY_MAX 65536
/* Berth's own failure or a refusal, as `berth run`'s and docker's: the
 * command's own exit codes stay unambiguous. */
#define EXEC_FAILED 125

struct exec_opts {
	bool interactive, tty;
	const char *container;
};

static int set_exec_opt(void *ctx, int ch, const char *arg)
{
	struct exec_opts *o = ctx;
	if (ch == 'i')
		o->interactive = true;
	else if (ch == 't')
		o->tty = true;
	else if (ch == 'C')
		o->container = arg;
	else
		return -1;
	return 0;
}

/* ---- the request -------------------------------------------------------- */

static int gate_connect(const char *api_socket, struct berth_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.exec", api_socket);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return berth_errf(err, ENAMETOOLONG, "exec socket %s.exec: path too long", api_socket);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return berth_errnof(err, errno, "exec socket: socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return berth_errnof(err, errno, "connect to %s (is the daemon running?)", sa.sun_path);
	return TAKE_FD(fd);
}

static char *request_json(const char *task, const struct exec_opts *o, char **cmd, int n,
			  const struct winsize *ws)
{
	_cleanup_(cJSON_Deletep) cJSON *req = cJSON_CreateObject();
	cJSON *argv = cJSON_AddArrayToObject(req, "command");
	if (!argv)
		return NULL;
	for (int i = 0; i < n; i++)
		if (!cJSON_AddItemToArray(argv, cJSON_CreateString(cmd[i])))
			return NULL;
	if (!cJSON_AddStringToObject(req, "task", task) ||
	    (o->container && !cJSON_AddStringToObject(req, "container", o->container)) ||
	    !cJSON_AddBoolToObject(req, "tty", o->tty) ||
	    !cJSON_AddNumberToObject(req, "rows", ws->ws_row) ||
	    !cJSON_AddNumberToObject(req, "cols", ws->ws_col))
		return NULL;
	return cJSON_PrintUnformatted(req);
}

/* One message of the session: into *ret (parsed), with a descriptor
 * (the pty master) into *ret_fd if one came. */
static int recv_msg(int conn, cJSON **ret, int *ret_fd, struct berth_err *err)
{
	_cleanup_free_ char *buf = malloc(EXEC_REPLY_MAX);
	int fd = -1;
	size_t n_fds = 0;
	ssize_t n = buf ? berth_recv_fds_upto(conn, buf, EXEC_REPLY_MAX, &fd, 1, &n_fds, 0)
			: -ENOMEM;
	if (n == 0)
		return berth_errf(err, EPIPE, "the session ended without an exit code (the task's "
				  "agent went away)");
	if (n < 0)
		return berth_errnof(err, (int)-n, "read the session");
	cJSON *o = cJSON_ParseWithLength(buf, (size_t)n);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		if (n_fds)
			close(fd);
		return berth_errf(err, EPROTO, "the session sent something that is not JSON");
	}
	*ret = o;
	if (ret_fd)
		*ret_fd = n_fds ? fd : -1;
	else if (n_fds)
		close(fd);
	return 0;
}

/* ---- relaying ----------------------------------------------------------- */

/* Bytes from one descriptor to another, never blocking on either. */
struct pump {
	int from, to;
	bool eof;
	bool close_to;          /* at end of file, close `to` (the process's stdin) */
	size_t len, off;
	char buf[16384];
};

static void pump_init(struct pump *p, int from, int to, bool close_to)
{
	p->from = from;
	p->to = to;
	p->eof = from < 0;
	p->close_to = close_to;
	p->len = p->off = 0;
}

static void pump_finish(struct pump *p)
{
	p->eof = true;
	p->len = p->off = 0;
	if (p->close_to && p->to >= 0)
		close(p->to);
	if (p->close_to)
		p->to = -1;
}

/* Adds its poll entry (at most one) to pfd; returns how many. */
static int pump_poll(const struct pump *p, struct pollfd *pfd)
{
	if (p->len > p->off) {
		*pfd = (struct pollfd){ .fd = p->to, .events = POLLOUT };
		return 1;
	}
	if (p->eof)
		return 0;
	*pfd = (struct pollfd){ .fd = p->from, .events = POLLIN };
	return 1;
}

static void pump_run(struct pump *p, short revents)
{
	if (!revents)
		return;
	if (p->len > p->off) {
		ssize_t n = write(p->to, p->buf + p->off, p->len - p->off);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			pump_finish(p);   /* the reader is gone: drop the rest */
			return;
		}
		p->off += (size_t)n;
		if (p->off == p->len)
			p->off = p->len = 0;
		return;
	}
	ssize_t n = read(p->from, p->buf, sizeof(p->buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* EIO: a pty master whose slave is closed everywhere. */
	if (n <= 0) {
		pump_finish(p);
		return;
	}
	p->len = (size_t)n;
	p->off = 0;
}

struct session {
	int conn;
	int sigfd;              /* -1 without a terminal */
	int master;             /* -1 without a terminal */
	struct pump in, out, err;
	bool exited;
	int code;
	int64_t drain_until;
};

static void set_nonblock(int fd)
{
	int fl = fd >= 0 ? fcntl(fd, F_GETFL) : -1;
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void on_signal(struct session *s)
{
	struct signalfd_siginfo si;
	while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGWINCH) {
			struct winsize ws;
			if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
				ioctl(s->master, TIOCSWINSZ, &ws);
			continue;
		}
		/* Hung up or told to go: our end closes, and the shim kills
		 * the process. */
		s->exited = true;
		s->code = 128 + (int)si.ssi_signo;
		s->drain_until = 0;
	}
}

static int on_conn(struct session *s, struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *m = NULL;
	int r = recv_msg(s->conn, &m, NULL, err);
	if (r < 0)
		return r;
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(m, "exitCode");
	if (!cJSON_IsNumber(code))
		return berth_errf(err, EPROTO, "the session sent no exit code");
	s->exited = true;
	s->code = code->valueint;
	s->drain_until = berth_mono_ms() + EXEC_DRAIN_MS;
	return 0;
}

static bool done(const struct session *s)
{
	if (!s->exited)
		return false;
	return (s->out.eof && s->err.eof) || berth_mono_ms() >= s->drain_until;
}

static int relay(struct session *s, struct berth_err *err)
{
	while (!done(s)) {
		struct pollfd pfd[5];
		int n = 0, iin = -1, iout = -1, ierr = -1, iconn = -1, isig = -1;
		if (pump_poll(&s->in, &pfd[n]))
			iin = n++;
		if (pump_poll(&s->out, &pfd[n]))
			iout = n++;
		if (pump_poll(&s->err, &pfd[n]))
			ierr = n++;
		if (!s->exited) {
			iconn = n;
			pfd[n++] = (struct pollfd){ .fd = s->conn, .events = POLLIN };
		}
		if (s->sigfd >= 0) {
			isig = n;
			pfd[n++] = (struct pollfd){ .fd = s->sigfd, .events = POLLIN };
		}
		int64_t left = s->exited ? s->drain_until - berth_mono_ms() : -1;
		int k = poll(pfd, (nfds_t)n, s->exited ? (left > 0 ? (int)left : 0) : -1);
		if (k < 0 && errno != EINTR)
			return berth_errnof(err, errno, "poll");
		if (k <= 0)
			continue;
		/* Signals first: a window change before the keys typed after it. */
		if (isig >= 0 && pfd[isig].revents)
			on_signal(s);
		pump_run(&s->in, iin >= 0 ? pfd[iin].revents : 0);
		pump_run(&s->out, iout >= 0 ? pfd[iout].revents : 0);
		pump_run(&s->err, ierr >= 0 ? pfd[ierr].revents : 0);
		if (iconn >= 0 && pfd[iconn].revents) {
			int r = on_conn(s, err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* ---- the terminal ------------------------------------------------------- */

struct raw_tty {
	bool set;
	struct termios saved;
};

static void raw_restore(struct raw_tty *t)
{
	if (t->set)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &t->saved);
	t->set = false;
}

/* Our terminal in raw mode: every key, ^C included, goes to the pty,
 * whose own line discipline then does what a terminal does. */
static void raw_enter(struct raw_tty *t)
{
	struct termios raw;
	if (tcgetattr(STDIN_FILENO, &t->saved) < 0)
		return;
	raw = t->saved;
	cfmakeraw(&raw);
	t->set = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
}

static int open_signals(sigset_t *old, struct berth_err *err)
{
	sigset_t set;
	sigemptyset(&set);
	int sigs[] = { SIGWINCH, SIGTERM, SIGHUP, SIGINT, SIGQUIT };
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaddset(&set, sigs[i]);
	if (sigprocmask(SIG_BLOCK, &set, old) < 0)
		return berth_errnof(err, errno, "block signals");
	int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return berth_errnof(err, errno, "signalfd");
	return fd;
}

/* ---- the command -------------------------------------------------------- */

/* The pipes' far ends for the process, our ends into the session. */
static int make_pipes(struct session *s, bool interactive, int theirs[3], struct berth_err *err)
{
	int p[3][2];
	for (int i = 0; i < 3; i++) {
		if (pipe2(p[i], O_CLOEXEC) == 0)
			continue;
		int e = errno;
		while (i-- > 0)
			close(p[i][0]), close(p[i][1]);
		return berth_errnof(err, e, "pipe");
	}
	/* The process reads p[0] and writes p[1] and p[2]. */
	theirs[0] = p[0][0], theirs[1] = p[1][1], theirs[2] = p[2][1];
	set_nonblock(p[0][1]);
	set_nonblock(p[1][0]);
	set_nonblock(p[2][0]);
	pump_init(&s->in, interactive ? STDIN_FILENO : -1, p[0][1], true);
	if (!interactive)
		pump_finish(&s->in);   /* the process reads end of file at once */
	pump_init(&s->out, p[1][0], STDOUT_FILENO, false);
	pump_init(&s->err, p[2][0], STDERR_FILENO, false);
	return 0;
}

static int start(const char *api_socket, const char *task, const struct exec_opts *o, char **cmd,
		 int n, struct session *s, struct berth_err *err)
{
	struct winsize ws = { 0 };
	if (o->tty && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 &&
	    ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0)
		ws = (struct winsize){ 0 };
	_cleanup_free_ char *req = request_json(task, o, cmd, n, &ws);
	if (!req)
		return berth_errf(err, ENOMEM, "out of memory");
	int theirs[3] = { -1, -1, -1 };
	int r = o->tty ? 0 : make_pipes(s, o->interactive, theirs, err);
	if (r < 0)
		return r;
	s->conn = gate_connect(api_socket, err);
	if (s->conn >= 0)
		r = berth_send_fds(s->conn, req, strlen(req), theirs, o->tty ? 0 : 3, 0);
	for (int i = 0; i < 3; i++)
		if (theirs[i] >= 0)
			close(theirs[i]);
	if (s->conn < 0)
		return s->conn;
	if (r < 0)
		return berth_errnof(err, -r, "send the request to the daemon");
	_cleanup_(cJSON_Deletep) cJSON *reply = NULL;
	if ((r = recv_msg(s->conn, &reply, &s->master, err)) < 0)
		return r;
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"))) {
		const char *msg = json_str(reply, "error");
		return berth_errf(err, EINVAL, "%s", msg ? msg : "exec refused");
	}
	if (o->tty && s->master < 0)
		return berth_errf(err, EPROTO, "the session sent no terminal");
	if (o->tty) {
		set_nonblock(s->master);
		pump_init(&s->in, o->interactive ? STDIN_FILENO : -1, s->master, false);
		pump_init(&s->out, s->master, STDOUT_FILENO, false);
		pump_init(&s->err, -1, -1, false);
	}
	return 0;
}

static void session_close(struct session *s)
{
	int fds[] = { s->conn, s->sigfd, s->master, s->out.from != s->master ? s->out.from : -1,
		      s->err.from };
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (s->in.close_to && s->in.to >= 0)
		close(s->in.to);
}

int cmd_exec(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "interactive", no_argument, NULL, 'i' }, { "tty", no_argument, NULL, 't' },
		{ "container", required_argument, NULL, 'C' }, { 0 } };
	struct exec_opts o = { 0 };
	const struct cli_cmd cmd = {
		.usage = "berth exec [-i] [-t] [--container NAME] TASK -- CMD [ARG…]",
		.help = "Runs CMD inside a RUNNING container of task TASK (its id or ARN), with\n"
			"the container's namespaces, cgroup, user, capabilities, seccomp profile,\n"
			"environment and working directory, and exits with its exit code (128+N\n"
			"after signal N; 125: refused, or berth failed).\n\n"
			"  -i, --interactive  pass our standard input to CMD (else it reads EOF)\n"
			"  -t, --tty          give CMD a new terminal in the container; ours is\n"
			"                     put in raw mode and relayed (window size, ^C)\n"
			"  --container NAME   the container (needed when the task has several)\n",
		.opts = opts, .shortopts = "it", .set = set_exec_opt, .ctx = &o,
	};
	int first, rc = cli_parse_args(c, argc, argv, &cmd, 1, -1, &first);
	if (rc >= 0)
		return rc;
	char id[ECS_TASK_ID_LEN + 1];
	struct berth_err err = { 0 };
	if (ecs_task_id(argv[first], id, &err) < 0)
		return cli_fail(&err), EXEC_FAILED;
	if (first + 1 >= argc) {
		fprintf(stderr, "berth: exec in task %s: no command given\nusage: %s\n", id,
			cmd.usage);
		return 2;
	}
	struct session s = { .conn = -1, .sigfd = -1, .master = -1 };
	pump_init(&s.in, -1, -1, false);
	pump_init(&s.out, -1, -1, false);
	pump_init(&s.err, -1, -1, false);
	struct raw_tty raw = { 0 };
	sigset_t old;
	sigemptyset(&old);
	int r = start(c->socket, id, &o, argv + first + 1, argc - first - 1, &s, &err);
	if (r >= 0 && o.tty)
		r = s.sigfd = open_signals(&old, &err);
	if (r >= 0 && o.tty && o.interactive && isatty(STDIN_FILENO))
		raw_enter(&raw);
	if (r >= 0)
		r = relay(&s, &err);
	raw_restore(&raw);
	session_close(&s);
	if (o.tty)
		sigprocmask(SIG_SETMASK, &old, NULL);
	return r < 0 ? (cli_fail(&err), EXEC_FAILED) : s.code;
}
