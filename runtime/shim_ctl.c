/* berth-shim: the control socket, its clients and the STATUS JSON
 * (docs/runtime.md "The control socket"). */
#include "runtime/shim_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fdpass.h"
#include "common/fsutil.h"
#include "common/json.h"

/* How long the last clients may take to read task-stopped. */
#define LINGER_SEC 5

/* ---- STATUS ------------------------------------------------------------- */

static const char *const task_status_names[] = { "PENDING", "RUNNING", "STOPPING", "STOPPED" };
static const char *const ctr_status_names[] = { "PENDING", "RUNNING", "STOPPED" };

static void add_time(cJSON *o, const char *key, double t)
{
	if (t > 0)
		cJSON_AddNumberToObject(o, key, t);
}

static cJSON *network_json(const struct shim *s)
{
	const struct net_task *t = &s->nt;
	char ip[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN], mac[18];
	inet_ntop(AF_INET, &t->addr, ip, sizeof(ip));
	inet_ntop(AF_INET, &t->gateway, gw, sizeof(gw));
	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", t->mac[0], t->mac[1],
		 t->mac[2], t->mac[3], t->mac[4], t->mac[5]);
	cJSON *n = cJSON_CreateObject();
	cJSON_AddStringToObject(n, "ipv4Address", ip);
	cJSON_AddNumberToObject(n, "prefixLength", t->prefix);
	cJSON_AddStringToObject(n, "gateway", gw);
	cJSON_AddStringToObject(n, "macAddress", mac);
	cJSON_AddStringToObject(n, "netns", t->netns_path);
	cJSON_AddStringToObject(n, "hostInterface", t->host_ifname);
	cJSON_AddStringToObject(n, "hostname", s->hostname);
	return n;
}

static cJSON *container_json(const struct ctr *c)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", c->pc->name);
	cJSON_AddStringToObject(o, "lastStatus", ctr_status_names[c->status]);
	if (c->started)
		cJSON_AddNumberToObject(o, "pid", c->proc.pid);
	if (c->exited)
		cJSON_AddNumberToObject(o, "exitCode", c->exit_code);
	if (c->reason)
		cJSON_AddStringToObject(o, "reason", c->reason);
	cJSON_AddStringToObject(o, "healthStatus", rt_health_status_name(c->health));
	cJSON_AddNumberToObject(o, "restartCount", c->restart_count);
	add_time(o, "startedAt", c->started_at);
	add_time(o, "finishedAt", c->finished_at);
	return o;
}

cJSON *shim_ctl_status_json(const struct shim *s)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "taskId", s->plan->task_id);
	cJSON_AddStringToObject(o, "lastStatus", task_status_names[s->status]);
	cJSON_AddStringToObject(o, "healthStatus", rt_health_status_name(shim_health_task(s)));
	if (s->stop_code)
		cJSON_AddStringToObject(o, "stopCode", s->stop_code);
	if (s->stopped_reason)
		cJSON_AddStringToObject(o, "stoppedReason", s->stopped_reason);
	add_time(o, "createdAt", s->created_at);
	add_time(o, "startedAt", s->started_at);
	add_time(o, "stoppingAt", s->stopping_at);
	add_time(o, "stoppedAt", s->stopped_at);
	cJSON_AddNumberToObject(o, "shimPid", getpid());
	if (s->nt.addr.s_addr)  /* none and host mode have no address to report */
		cJSON_AddItemToObject(o, "network", network_json(s));
	cJSON *a = cJSON_AddArrayToObject(o, "containers");
	for (size_t i = 0; i < s->plan->n_containers; i++)
		cJSON_AddItemToArray(a, container_json(&s->ctrs[i]));
	return o;
}

static cJSON *stats_json(struct cg_group *g, struct berth_err *err)
{
	struct cg_stats st;
	if (cg_group_stats(g, &st, err) < 0)
		return NULL;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "memoryCurrent", (double)st.memory_current);
	cJSON_AddNumberToObject(o, "memoryPeak", (double)st.memory_peak);
	cJSON_AddNumberToObject(o, "cpuUsageUsec", (double)st.cpu_usage_usec);
	cJSON_AddNumberToObject(o, "pidsCurrent", (double)st.pids_current);
	return o;
}

/* Groups already torn down are left out. */
static int all_stats(struct shim *s, cJSON **ret, struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	cJSON *task = s->task_cg ? stats_json(s->task_cg, err) : NULL;
	if (s->task_cg && !task)
		return berth_err_wrap(err, "task %s: stats", s->plan->task_id);
	if (task)
		cJSON_AddItemToObject(o, "task", task);
	cJSON *ctrs = cJSON_AddObjectToObject(o, "containers");
	for (size_t i = 0; i < s->plan->n_containers; i++) {
		struct ctr *c = &s->ctrs[i];
		if (!c->cg)
			continue;
		cJSON *cs = stats_json(c->cg, err);
		if (!cs)
			return berth_err_wrap(err, "container %s: stats", c->pc->name);
		cJSON_AddItemToObject(ctrs, c->pc->name, cs);
	}
	*ret = TAKE_PTR(o);
	return 0;
}

/* ---- client output ------------------------------------------------------ */

static void client_set_mask(struct shim *s, struct client *c, uint32_t mask)
{
	if (c->dead || mask == c->mask)
		return;
	struct epoll_event ev = { .events = mask, .data.ptr = &c->src };
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->src.fd, &ev) < 0)
		c->dead = true;
	c->mask = mask;
}

static void client_flush(struct shim *s, struct client *c)
{
	while (!c->dead && c->out_off < c->out_len) {
		ssize_t n = send(c->src.fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			client_set_mask(s, c, c->mask | EPOLLOUT);
			return;
		}
		if (n < 0) {
			c->dead = true;
			return;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	if (c->close_after_flush)
		c->dead = true;
	else
		client_set_mask(s, c, c->mask & ~(uint32_t)EPOLLOUT);
}

/* Queues one JSON line (consumes o) and writes what the socket takes. */
static void client_send(struct shim *s, struct client *c, cJSON *o)
{
	char *text = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (c->dead) {
		free(text);
		return;
	}
	size_t len = text ? strlen(text) : 0;
	if (!text || c->out_len + len + 1 > CLIENT_OUT_MAX) {
		/* A reader this far behind (or no memory) loses its connection,
		 * never the task its events. */
		shim_diagf(s, "task %s: control client dropped: %s", s->plan->task_id,
			   text ? "too far behind" : "out of memory");
		free(text);
		c->dead = true;
		return;
	}
	if (c->out_len + len + 1 > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + len + 1)
			cap *= 2;
		char *out = realloc(c->out, cap);
		if (!out) {
			free(text);
			c->dead = true;
			return;
		}
		c->out = out;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, text, len);
	c->out[c->out_len + len] = '\n';
	c->out_len += len + 1;
	free(text);
	client_flush(s, c);
}

static cJSON *ok_reply(void)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", true);
	return o;
}

static void send_error(struct shim *s, struct client *c, const char *msg)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", false);
	cJSON_AddStringToObject(o, "error", msg);
	client_send(s, c, o);
}

static cJSON *event_json(const struct shim *s, const char *name, const struct ctr *ctr)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "event", name);
	if (ctr)
		cJSON_AddStringToObject(o, "container", ctr->pc->name);
	cJSON_AddItemToObject(o, "task", shim_ctl_status_json(s));
	return o;
}

void shim_ctl_emit(struct shim *s, const char *name, const struct ctr *ctr)
{
	for (struct client *c = s->clients; c; c = c->next)
		if (c->events && !c->dead)
			client_send(s, c, event_json(s, name, ctr));
}

/* ---- requests ----------------------------------------------------------- */

static void op_stop(struct shim *s, struct client *c, const cJSON *req)
{
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(req, "reason");
	if (reason && !cJSON_IsString(reason) && !cJSON_IsNull(reason)) {
		send_error(s, c, "stop: reason is not a string");
		return;
	}
	client_send(s, c, ok_reply());
	shim_task_stop(s, STOP_USER,
		       cJSON_IsString(reason) ? reason->valuestring : "Task stopped by user");
	shim_task_progress(s);
}

static void op_stats(struct shim *s, struct client *c)
{
	struct berth_err err = { 0 };
	cJSON *stats = NULL;
	if (all_stats(s, &stats, &err) < 0) {
		send_error(s, c, err.msg);
		return;
	}
	cJSON *o = ok_reply();
	cJSON_AddItemToObject(o, "stats", stats);
	client_send(s, c, o);
}

static void op_status(struct shim *s, struct client *c, bool subscribe)
{
	cJSON *o = ok_reply();
	cJSON_AddItemToObject(o, "task", shim_ctl_status_json(s));
	client_send(s, c, o);
	if (!subscribe)
		return;
	c->events = true;
	/* Subscribed after the end (in the linger window): the end now. */
	if (s->recorded) {
		client_send(s, c, event_json(s, "task-stopped", NULL));
		c->close_after_flush = true;
		client_flush(s, c);
	}
}

static void op_exec(struct shim *s, struct client *c, const cJSON *req)
{
	struct berth_err err = { 0 };
	size_t n = c->n_fds;
	c->n_fds = 0;
	if (shim_exec_start(s, req, c->fds, n, &err) < 0)
		send_error(s, c, err.msg);
	else
		client_send(s, c, ok_reply());
}

static void handle_line(struct shim *s, struct client *c, const char *line, size_t len)
{
	_cleanup_(cJSON_Deletep) cJSON *req = cJSON_ParseWithLength(line, len);
	const cJSON *op = req ? cJSON_GetObjectItemCaseSensitive(req, "op") : NULL;
	if (!cJSON_IsObject(req)) {
		send_error(s, c, "request is not a JSON object");
	} else if (!cJSON_IsString(op)) {
		send_error(s, c, "request has no \"op\" string");
	} else if (!strcmp(op->valuestring, "status")) {
		op_status(s, c, false);
	} else if (!strcmp(op->valuestring, "events")) {
		op_status(s, c, true);
	} else if (!strcmp(op->valuestring, "stop")) {
		op_stop(s, c, req);
	} else if (!strcmp(op->valuestring, "stats")) {
		op_stats(s, c);
	} else if (!strcmp(op->valuestring, "exec")) {
		op_exec(s, c, req);
	} else {
		char msg[160];
		snprintf(msg, sizeof(msg), "unknown op \"%.100s\"", op->valuestring);
		send_error(s, c, msg);
	}
}

static void handle_lines(struct shim *s, struct client *c)
{
	size_t start = 0;
	for (char *nl; !c->dead && (nl = memchr(c->in + start, '\n', c->in_len - start));) {
		size_t len = (size_t)(nl - (c->in + start));
		/* Blank lines (keep-alives, a trailing \r\n) are ignored. */
		if (len > 0 && !(len == 1 && c->in[start] == '\r'))
			handle_line(s, c, c->in + start, len);
		start += len + 1;
	}
	memmove(c->in, c->in + start, c->in_len - start);
	c->in_len -= start;
}

/* Requests are small; only a long line makes the buffer grow. */
static int grow_in(struct client *c)
{
	size_t cap = c->in_cap ? c->in_cap * 2 : 4096;
	if (cap > CLIENT_IN_MAX)
		cap = CLIENT_IN_MAX;
	char *in = realloc(c->in, cap);
	if (!in)
		return -ENOMEM;
	c->in = in;
	c->in_cap = cap;
	return 0;
}

/* recv(), keeping the descriptors an exec request carries (SCM_RIGHTS;
 * only root reaches the socket).  n or -errno. */
static ssize_t client_recv(struct client *c)
{
	int fds[ARRAY_SIZE(c->fds)];
	size_t n_fds = 0;
	ssize_t n = berth_recv_fds_upto(c->src.fd, c->in + c->in_len, c->in_cap - c->in_len, fds,
					ARRAY_SIZE(fds), &n_fds, MSG_DONTWAIT);
	for (size_t i = 0; i < n_fds; i++) {
		if (c->n_fds < ARRAY_SIZE(c->fds))
			c->fds[c->n_fds++] = fds[i];
		else
			close(fds[i]);
	}
	return n;
}

static void client_read(struct shim *s, struct client *c)
{
	for (;;) {
		if (c->in_len == CLIENT_IN_MAX) {
			send_error(s, c, "request line longer than 1 MiB");
			c->close_after_flush = true;
			client_flush(s, c);
			return;
		}
		if (c->in_len == c->in_cap && grow_in(c) < 0) {
			c->dead = true;
			return;
		}
		ssize_t n = client_recv(c);
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			/* Hung up (or half-closed): answer what it asked, a last
			 * line without its newline too, then close. */
			if (n == 0 && c->in_len > 0) {
				handle_line(s, c, c->in, c->in_len);
				c->in_len = 0;
			}
			c->close_after_flush = true;
			client_set_mask(s, c, c->mask & ~(uint32_t)EPOLLIN);
			client_flush(s, c);
			return;
		}
		c->in_len += (size_t)n;
		handle_lines(s, c);
		if (c->dead || c->close_after_flush)
			return;
	}
}

static void on_client(struct shim *s, struct shim_src *src, uint32_t events)
{
	struct client *c = shim_container_of(src, struct client, src);
	if (c->dead)
		return;
	if (events & EPOLLERR) {
		c->dead = true;
		return;
	}
	if (events & EPOLLOUT)
		client_flush(s, c);
	if (events & (EPOLLIN | EPOLLHUP) && !c->close_after_flush)
		client_read(s, c);
	else if (events & EPOLLHUP)
		c->dead = true;
}

static void on_accept(struct shim *s, struct shim_src *src, uint32_t events)
{
	(void)events;
	for (;;) {
		int fd = accept4(src->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				shim_diagf(s, "task %s: accept: %s", s->plan->task_id,
					   strerror(errno));
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		struct client *c = calloc(1, sizeof(*c));
		struct berth_err err = { 0 };
		if (c) {
			c->src = (struct shim_src){ .fd = fd, .fn = on_client };
			c->mask = EPOLLIN;
		}
		if (!c || shim_watch(s, &c->src, EPOLLIN, &err) < 0) {
			shim_diagf(s, "task %s: control client: %s", s->plan->task_id,
				   c ? err.msg : "out of memory");
			free(c);
			close(fd);
			continue;
		}
		c->next = s->clients;
		s->clients = c;
	}
}

/* ---- the listening socket ----------------------------------------------- */

int shim_ctl_sock_addr(const struct plan *p, struct sockaddr_un *ret, struct berth_err *err)
{
	*ret = (struct sockaddr_un){ .sun_family = AF_UNIX };
	int n = snprintf(ret->sun_path, sizeof(ret->sun_path), "%s/shims/%s.sock", p->run_dir,
			 p->task_id);
	if (n < 0 || (size_t)n >= sizeof(ret->sun_path))
		return berth_errf(err, ENAMETOOLONG, "task %s: socket path %s/shims/%s.sock: longer "
				  "than %zu bytes", p->task_id, p->run_dir, p->task_id,
				  sizeof(ret->sun_path) - 1);
	return 0;
}

int shim_ctl_sock_probe(const struct sockaddr_un *sa, enum ctl_sock *ret, struct berth_err *err)
{
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return berth_errnof(err, errno, "socket");
	/* EAGAIN: a full backlog, so somebody listens. */
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EAGAIN)
		*ret = CTL_SOCK_SERVED;
	else if (errno == ENOENT)
		*ret = CTL_SOCK_NONE;
	else if (errno == ECONNREFUSED)
		*ret = CTL_SOCK_STALE;
	else
		return berth_errnof(err, errno, "%s: probe", sa->sun_path);
	return 0;
}

/* 0 if the path is free (a stale socket is removed), -EADDRINUSE if a shim
 * answers there. */
static int claim_path(struct shim *s, const struct sockaddr_un *sa, struct berth_err *err)
{
	enum ctl_sock st;
	int r = shim_ctl_sock_probe(sa, &st, err);
	if (r < 0 || st == CTL_SOCK_NONE)
		return r;
	if (st == CTL_SOCK_SERVED)
		return berth_errf(err, EADDRINUSE, "%s: another shim is serving task %s",
				  s->sock_path, s->plan->task_id);
	shim_diagf(s, "task %s: removing stale socket %s", s->plan->task_id, s->sock_path);
	if (unlink(s->sock_path) < 0 && errno != ENOENT)
		return berth_errnof(err, errno, "%s: remove stale socket", s->sock_path);
	return 0;
}

static int bind_listen(struct shim *s, const struct sockaddr_un *sa, struct berth_err *err)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return berth_errnof(err, errno, "%s: socket", s->sock_path);
	s->listen_src = (struct shim_src){ .fd = fd, .fn = on_accept };
	/* The umask makes the socket 0600 from its first moment; chmod
	 * repeats it against an unusual umask handling. */
	mode_t old = umask(0177);
	int r = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));
	umask(old);
	if (r < 0)
		return berth_errnof(err, errno, "%s: bind", s->sock_path);
	s->sock_bound = true;
	if (chmod(s->sock_path, 0600) < 0)
		return berth_errnof(err, errno, "%s: chmod", s->sock_path);
	if (listen(fd, 64) < 0)
		return berth_errnof(err, errno, "%s: listen", s->sock_path);
	return shim_watch(s, &s->listen_src, EPOLLIN, err);
}

int shim_ctl_listen(struct shim *s, struct berth_err *err)
{
	const struct plan *p = s->plan;
	struct sockaddr_un sa;
	int r = shim_ctl_sock_addr(p, &sa, err);
	if (r < 0)
		return r;
	snprintf(s->sock_path, sizeof(s->sock_path), "%s", sa.sun_path);
	char dir[sizeof(s->sock_path) + 8];
	snprintf(dir, sizeof(dir), "%s/shims", p->run_dir);
	r = berth_mkdir_p(dir, 0700, err);
	if (r >= 0)
		r = claim_path(s, &sa, err);
	if (r >= 0)
		r = bind_listen(s, &sa, err);
	if (r < 0) {
		shim_ctl_close(s);
		return berth_err_wrap(err, "task %s: control socket", p->task_id);
	}
	return 0;
}

void shim_ctl_close(struct shim *s)
{
	shim_src_close(s, &s->listen_src);
	if (s->sock_bound && unlink(s->sock_path) < 0 && errno != ENOENT)
		shim_diagf(s, "task %s: remove %s: %s", s->plan->task_id, s->sock_path,
			   strerror(errno));
	s->sock_bound = false;
}

/* ---- the end ------------------------------------------------------------ */

static void on_linger(struct shim *s, struct shim_src *src, uint32_t events)
{
	(void)events;
	shim_src_close(s, src);
	for (struct client *c = s->clients; c; c = c->next)
		if (!c->dead) {
			shim_diagf(s, "task %s: control client did not read the end in %ds: dropped",
				   s->plan->task_id, LINGER_SEC);
			c->dead = true;
		}
}

void shim_ctl_finish(struct shim *s)
{
	/* Connections still in the backlog, and requests not read yet, get
	 * their answer (the final status) instead of a reset. */
	if (s->listen_src.fd >= 0)
		on_accept(s, &s->listen_src, EPOLLIN);
	for (struct client *c = s->clients; c; c = c->next)
		if (!c->dead && !c->close_after_flush)
			client_read(s, c);
	shim_ctl_close(s);
	for (struct client *c = s->clients; c; c = c->next) {
		c->close_after_flush = true;
		client_flush(s, c);
	}
	struct berth_err err = { 0 };
	struct itimerspec its = { .it_value.tv_sec = LINGER_SEC };
	s->linger_src = (struct shim_src){
		.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC), .fn = on_linger,
	};
	if (s->linger_src.fd < 0 || timerfd_settime(s->linger_src.fd, 0, &its, NULL) < 0 ||
	    shim_watch(s, &s->linger_src, EPOLLIN, &err) < 0) {
		/* Without a deadline nobody may hold us up. */
		shim_src_close(s, &s->linger_src);
		for (struct client *c = s->clients; c; c = c->next)
			c->dead = true;
	}
}

bool shim_ctl_flushed(const struct shim *s)
{
	return s->clients == NULL;
}

static void client_free(struct shim *s, struct client *c)
{
	shim_src_close(s, &c->src);
	for (size_t i = 0; i < c->n_fds; i++)
		close(c->fds[i]);
	free(c->in);
	free(c->out);
	free(c);
}

void shim_ctl_sweep(struct shim *s)
{
	shim_exec_sweep(s);
	for (struct client **pp = &s->clients; *pp;) {
		struct client *c = *pp;
		if (c->dead) {
			*pp = c->next;
			client_free(s, c);
		} else {
			pp = &c->next;
		}
	}
}

void shim_ctl_free(struct shim *s)
{
	while (s->clients) {
		struct client *c = s->clients;
		s->clients = c->next;
		client_free(s, c);
	}
	if (s->listen_src.fd >= 0)
		close(s->listen_src.fd);
	s->listen_src.fd = -1;
}
