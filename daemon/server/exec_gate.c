/* daemon/server/exec_gate: `berth exec`'s socket (exec_gate.h). */
#include "daemon/server/exec_gate.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/fdpass.h"
#include "common/json.h"

#define GATE_LISTEN_MAX 16

struct gate_client {
	struct gate_client *next, **prev;
	struct exec_gate *g;
	struct event *ev;
	int fd;
};

struct gate_listener {
	struct event *ev;
	int fd;
	char *path;
	dev_t dev;
	ino_t ino;
};

struct exec_gate {
	struct event_base *base;
	struct sched *sched;
	struct gate_listener l[GATE_LISTEN_MAX];
	size_t n;
	struct gate_client *clients;
};

int exec_gate_new(struct event_base *base, struct sched *sched, struct exec_gate **ret,
		  struct berth_err *err)
{
	struct exec_gate *g = calloc(1, sizeof(*g));
	if (!g)
		return berth_errf(err, ENOMEM, "exec socket: out of memory");
	g->base = base;
	g->sched = sched;
	*ret = g;
	return 0;
}

static void client_free(struct gate_client *c)
{
	*c->prev = c->next;
	if (c->next)
		c->next->prev = c->prev;
	event_free(c->ev);
	close(c->fd);
	free(c);
}

static void reply_error(int fd, const char *msg)
{
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", false);
	cJSON_AddStringToObject(o, "error", msg);
	_cleanup_free_ char *text = cJSON_PrintUnformatted(o);
	if (text)
		berth_send_fds(fd, text, strlen(text), NULL, 0, MSG_DONTWAIT);
}

/* The request in BUF (LEN bytes) with its descriptors: handed to the
 * shim, or refused. */
static int handle(struct exec_gate *g, int conn, const char *buf, size_t len, const int *fds,
		  size_t n_fds, struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *req = cJSON_ParseWithLength(buf, len);
	if (!cJSON_IsObject(req))
		return berth_errf(err, EINVAL, "exec: the request is not a JSON object");
	const cJSON *tty = cJSON_GetObjectItemCaseSensitive(req, "tty");
	const cJSON *ctr = cJSON_GetObjectItemCaseSensitive(req, "container");
	struct sched_exec_req q = {
		.task = json_str(req, "task"),
		.container = json_str(req, "container"),
		.command = cJSON_GetObjectItemCaseSensitive(req, "command"),
		.tty = cJSON_IsTrue(tty),
		.rows = (int)json_int(req, "rows", 0),
		.cols = (int)json_int(req, "cols", 0),
	};
	if (!q.task)
		return berth_errf(err, EINVAL, "exec: no task named");
	if ((tty && !cJSON_IsBool(tty)) || (ctr && !q.container))
		return berth_errf(err, EINVAL, "exec in task %s: tty must be a boolean and container "
				  "a string", q.task);
	if (q.rows < 0 || q.rows > 65535 || q.cols < 0 || q.cols > 65535)
		return berth_errf(err, EINVAL, "exec in task %s: rows and cols: expected 0 to 65535",
				  q.task);
	int all[BERTH_FDPASS_MAX] = { conn };
	memcpy(all + 1, fds, n_fds * sizeof(int));
	return sched_exec(g->sched, &q, all, n_fds + 1, err);
}

static void on_client(evutil_socket_t fd, short what, void *arg)
{
	struct gate_client *c = arg;
	if (what & EV_TIMEOUT) {
		char msg[64];
		snprintf(msg, sizeof(msg), "exec: no request within %d s", EXEC_GATE_TIMEOUT_S);
		reply_error(fd, msg);
		client_free(c);
		return;
	}
	_cleanup_free_ char *buf = malloc(EXEC_GATE_REQUEST_MAX);
	int fds[BERTH_FDPASS_MAX - 1];
	size_t n_fds = 0;
	ssize_t n = buf ? berth_recv_fds_upto(fd, buf, EXEC_GATE_REQUEST_MAX, fds, ARRAY_SIZE(fds),
					      &n_fds, MSG_DONTWAIT) : -ENOMEM;
	if (n == -EAGAIN || n == -EINTR)
		return;
	struct berth_err err = { 0 };
	int r = n > 0 ? handle(c->g, fd, buf, (size_t)n, fds, n_fds, &err)
		      : berth_errf(&err, n ? (int)-n : EPIPE, "exec: no request (%s)",
				   n == -EBADMSG ? "cut short or too many descriptors"
						 : n ? strerror((int)-n) : "hung up");
	if (r < 0)
		reply_error(fd, err.msg);
	for (size_t i = 0; i < n_fds; i++)
		close(fds[i]);
	client_free(c);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct exec_gate *g = arg;
	int cfd;
	while ((cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		struct gate_client *c = calloc(1, sizeof(*c));
		struct timeval tv = { EXEC_GATE_TIMEOUT_S, 0 };
		if (c)
			c->ev = event_new(g->base, cfd, EV_READ | EV_PERSIST, on_client, c);
		if (!c || !c->ev || event_add(c->ev, &tv) < 0) {
			if (c && c->ev)
				event_free(c->ev);
			free(c);
			close(cfd);
			continue;
		}
		c->g = g;
		c->fd = cfd;
		c->next = g->clients;
		c->prev = &g->clients;
		if (c->next)
			c->next->prev = &c->next;
		g->clients = c;
	}
}

static int bind_gate(const char *path, int *ret_fd, struct stat *ret_st, struct berth_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return berth_errf(err, ENAMETOOLONG, "exec socket %s: longer than %zu bytes", path,
				  sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, path);
	struct stat st;
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
		return berth_errf(err, EEXIST, "exec socket %s: exists and is not a socket", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return berth_errnof(err, errno, "exec socket %s: remove the old one", path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return berth_errnof(err, errno, "exec socket %s: socket", path);
	/* 0600 from its first moment, as the API socket. */
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	umask(old);
	if (r < 0)
		return berth_errnof(err, e, "exec socket %s: bind", path);
	if (chmod(path, 0600) < 0 || lstat(path, ret_st) < 0 || listen(fd, 64) < 0) {
		e = errno;
		unlink(path);
		return berth_errnof(err, e, "exec socket %s: listen", path);
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int exec_gate_listen(struct exec_gate *g, const char *api_path, struct berth_err *err)
{
	if (g->n == GATE_LISTEN_MAX)
		return berth_errf(err, E2BIG, "at most %d exec sockets", GATE_LISTEN_MAX);
	struct gate_listener *l = &g->l[g->n];
	*l = (struct gate_listener){ .fd = -1 };
	if (asprintf(&l->path, "%s" EXEC_GATE_SUFFIX, api_path) < 0) {
		l->path = NULL;
		return berth_errf(err, ENOMEM, "exec socket: out of memory");
	}
	struct stat st;
	int r = bind_gate(l->path, &l->fd, &st, err);
	if (r >= 0 && (!(l->ev = event_new(g->base, l->fd, EV_READ | EV_PERSIST, on_accept, g)) ||
		       event_add(l->ev, NULL) < 0))
		r = berth_errf(err, ENOMEM, "exec socket %s: out of memory", l->path);
	if (r < 0) {
		if (l->fd >= 0) {
			unlink(l->path);
			close(l->fd);
		}
		if (l->ev)
			event_free(l->ev);
		free(l->path);
		return r;
	}
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	g->n++;
	return 0;
}

void exec_gate_free(struct exec_gate *g)
{
	if (!g)
		return;
	while (g->clients)
		client_free(g->clients);
	for (size_t i = 0; i < g->n; i++) {
		struct gate_listener *l = &g->l[i];
		struct stat st;
		/* Only our own socket: a new daemon may have bound the path. */
		if (lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
			unlink(l->path);
		event_free(l->ev);
		close(l->fd);
		free(l->path);
	}
	free(g);
}
