/* daemon/server/api_conn: connection limits, request deadline, accept back-off
 * (api_conn.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "common/time.h"
#include "daemon/server/api_conn.h"
#include "daemon/server/api_guard.h"
#include "daemon/ecs/ecs.h"
#include "daemon/server/api.h"

struct api_conn {
	struct api_conns *cs;
	struct bufferevent *bev;        /* one reference is ours */
	struct evbuffer_cb_entry *watch;
	struct event *timer;            /* set-up, then the deadline, then release */
	struct sockaddr_storage peer;   /* the source address (its port is ignored) */
	bool tcp;
	bool registered;                /* counted, evhttp's close callback set */
	bool closing;                   /* evhttp freed its side */
	bool shut;                      /* we shut the socket down */
	bool answered;                  /* the guard's refusal was sent */
	bool deadline;                  /* the timer is the request deadline */
	uint64_t completed;             /* g.completed when the deadline was set */
	uint64_t reserved;              /* of the body budget, for this body */
	uint64_t reserved_for;          /* g.completed when it was reserved */
	struct api_guard g;
	TAILQ_ENTRY(api_conn) link;     /* least recently active first */
};

struct report {
	uint64_t count;
	int64_t last_ms;
};

struct api_listen_watch {
	struct api_conns *cs;
	struct evconnlistener *lev;
	struct event *resume;
	struct api_listen_watch *next;
};

struct api_conns {
	struct event_base *base;
	struct api_conn_limits lim;
	TAILQ_HEAD(, api_conn) conns;
	size_t live;                    /* registered, not shut, not closing */
	uint64_t reserved;              /* large bodies arriving, in bytes */
	struct api_listen_watch *watches;
	struct report accept_failed, evicted;
};

/* Counts one event and logs it at most once per API_CONN_REPORT_MS, with
 * how many there were since the last line: a flood costs one line. */
__attribute__((format(printf, 3, 4)))
static void report(struct api_conns *cs, struct report *r, const char *fmt, ...)
{
	r->count++;
	int64_t now = berth_mono_ms();
	if (!cs->lim.log || (r->last_ms && now - r->last_ms < API_CONN_REPORT_MS))
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("berth daemon: ", cs->lim.log);
	vfprintf(cs->lim.log, fmt, ap);
	fprintf(cs->lim.log, " (%llu time%s in the last %d s)\n", (unsigned long long)r->count,
		r->count == 1 ? "" : "s", API_CONN_REPORT_MS / 1000);
	fflush(cs->lim.log);
	va_end(ap);
	r->count = 0;
	r->last_ms = now;
}

char *api_conn_error_response(int status, const char *type, const char *message, size_t *ret_len)
{
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	_cleanup_free_ char *body = NULL;
	if (!o || !json_add_string(o, "__type", type) || !json_add_string(o, "message", message) ||
	    !(body = cJSON_PrintUnformatted(o)))
		return NULL;
	char rid[37], *s;
	json_uuid(rid);
	int n = asprintf(&s, "HTTP/1.1 %d %s\r\nContent-Type: application/x-amz-json-1.1\r\n"
			 "x-amzn-RequestId: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 status, api_reason_phrase(status), rid, strlen(body), body);
	if (n < 0)
		return NULL;
	*ret_len = (size_t)n;
	return s;
}

/* ---- one connection ---- */

static bool idle(const struct api_conn *c)
{
	return c->registered && !c->closing && !c->shut && !c->g.in_request &&
	       c->g.state == API_GUARD_HEAD &&
	       evbuffer_get_length(bufferevent_get_output(c->bev)) == 0;
}

static void unreserve(struct api_conn *c)
{
	c->cs->reserved -= c->reserved;
	c->reserved = 0;
}

/* A body over API_CONN_SMALL_BODY counts against API_CONN_BODY_BUDGET from
 * its head to its last byte: before its signature can be checked the
 * whole body must be held, so together they are bounded.  False when this
 * one does not fit. */
static bool reserve_body(struct api_conn *c)
{
	if (c->reserved && c->reserved_for == c->g.completed && c->g.state == API_GUARD_BODY)
		return true;
	unreserve(c);
	if (c->g.state != API_GUARD_BODY || c->g.content_length <= API_CONN_SMALL_BODY)
		return true;
	uint64_t want = (uint64_t)c->g.content_length;
	if (c->cs->reserved + want > API_CONN_BODY_BUDGET)
		return false;
	c->cs->reserved += want;
	c->reserved = want;
	c->reserved_for = c->g.completed;
	return true;
}

/* Closes our side: evhttp reads EOF and frees the connection, and its
 * close callback releases ours. */
static void conn_shut(struct api_conn *c)
{
	unreserve(c);
	if (c->shut || c->closing)
		return;
	c->shut = true;
	if (c->registered)
		c->cs->live--;
	shutdown(bufferevent_getfd(c->bev), SHUT_RDWR);
}

/* Sends the guard's refusal, unless an answer is still being written
 * (pipelining): the close alone must then do. */
static void conn_answer(struct api_conn *c)
{
	if (c->answered)
		return;
	c->answered = true;
	if (evbuffer_get_length(bufferevent_get_output(c->bev)))
		return;
	size_t n;
	_cleanup_free_ char *r = api_conn_error_response(c->g.status, c->g.type, c->g.message, &n);
	/* A short answer to a socket we have not written to since the last
	 * answer drained: it fits the send buffer. */
	if (r)
		(void)!send(bufferevent_getfd(c->bev), r, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void conn_release(struct api_conn *c)
{
	struct api_conns *cs = c->cs;
	TAILQ_REMOVE(&cs->conns, c, link);
	unreserve(c);
	if (c->registered && !c->shut && !c->closing)
		cs->live--;
	event_free(c->timer);
	evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->watch);
	bufferevent_decref(c->bev);
	free(c);
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	struct api_conn *c = arg;
	if (c->registered && !c->shut)
		c->cs->live--;
	unreserve(c);
	c->closing = true;
	/* evhttp frees the bufferevent after this returns; ours is the last
	 * reference, dropped on the next turn of the loop. */
	event_active(c->timer, EV_TIMEOUT, 1);
}

static bool same_source(const struct api_conn *a, const struct api_conn *b)
{
	if (!a->tcp || !b->tcp || a->peer.ss_family != b->peer.ss_family)
		return false;
	if (a->peer.ss_family == AF_INET)
		return ((const struct sockaddr_in *)&a->peer)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)&b->peer)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)&a->peer)->sin6_addr,
		      &((const struct sockaddr_in6 *)&b->peer)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

/* The least recently active idle connection (from LIKE's source when
 * LIKE is given), other than SELF. */
static struct api_conn *oldest_idle(struct api_conns *cs, const struct api_conn *like,
				    const struct api_conn *self)
{
	struct api_conn *c;
	TAILQ_FOREACH(c, &cs->conns, link)
		if (c != self && idle(c) && (!like || same_source(c, like)))
			return c;
	return NULL;
}

static size_t from_source(struct api_conns *cs, const struct api_conn *like)
{
	size_t n = 0;
	struct api_conn *c;
	TAILQ_FOREACH(c, &cs->conns, link)
		n += c->registered && !c->shut && !c->closing && same_source(c, like);
	return n;
}

/* Makes room for C: false when C itself had to go. */
static bool make_room(struct api_conn *c)
{
	struct api_conns *cs = c->cs;
	struct api_conn *victim;
	while (cs->live > cs->lim.max_total) {
		if (!(victim = oldest_idle(cs, NULL, c))) {
			conn_shut(c);
			return false;
		}
		conn_shut(victim);
		report(cs, &cs->evicted, "closed an idle API connection: more than %zu connections "
		       "(--max-connections)", cs->lim.max_total);
	}
	while (c->tcp && from_source(cs, c) > cs->lim.max_per_source) {
		if (!(victim = oldest_idle(cs, c, c))) {
			conn_shut(c);
			return false;
		}
		conn_shut(victim);
		report(cs, &cs->evicted, "closed an idle API connection: more than %zu connections "
		       "from one address (--max-connections-per-source)", cs->lim.max_per_source);
	}
	return true;
}

/* Once evhttp has set the connection up (it did right after our bevcb
 * returned): its close callback, the peer, the limits. */
static void conn_register(struct api_conn *c)
{
	void *evcon = NULL;
	bufferevent_data_cb rd = NULL;
	bufferevent_event_cb ev = NULL;
	bufferevent_getcb(c->bev, &rd, NULL, &ev, &evcon);
	if (!rd && !ev) {               /* evhttp gave it up already */
		c->closing = true;
		return;
	}
	evhttp_connection_set_closecb(evcon, on_close, c);
	c->registered = true;
	c->cs->live++;
	socklen_t sl = sizeof(c->peer);
	if (getpeername(bufferevent_getfd(c->bev), (struct sockaddr *)&c->peer, &sl) == 0)
		c->tcp = c->peer.ss_family == AF_INET || c->peer.ss_family == AF_INET6;
	make_room(c);
}

static void arm_deadline(struct api_conn *c)
{
	int64_t ms = c->cs->lim.request_timeout_ms;
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	c->deadline = true;
	c->completed = c->g.completed;
	evtimer_add(c->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct api_conn *c = arg;
	if (!c->registered && !c->closing)
		conn_register(c);
	if (c->closing) {
		conn_release(c);
		return;
	}
	if (!c->deadline)
		return;
	c->deadline = false;
	if (c->g.state < API_GUARD_DISCARD) {
		char msg[128];
		snprintf(msg, sizeof(msg), "The request was not received within %lld ms.",
			 (long long)c->cs->lim.request_timeout_ms);
		api_guard_refuse(&c->g, 408, API_E_CLIENT, msg);
		conn_answer(c);
	}
	evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
	conn_shut(c);
}

/* Feeds the LEN bytes from offset START of BUF to the guard. */
static void feed(struct api_conn *c, struct evbuffer *buf, size_t start, size_t len)
{
	struct evbuffer_ptr pos;
	if (evbuffer_ptr_set(buf, &pos, start, EVBUFFER_PTR_SET) < 0)
		return;
	while (len && c->g.state != API_GUARD_CLOSED) {
		struct evbuffer_iovec v[8];
		int n = evbuffer_peek(buf, (ev_ssize_t)len, &pos, v, 8);
		if (n <= 0)
			return;
		size_t done = 0;
		for (int i = 0; i < n && i < 8 && done < len; i++) {
			size_t k = v[i].iov_len < len - done ? v[i].iov_len : len - done;
			api_guard_feed(&c->g, v[i].iov_base, k);
			done += k;
		}
		len -= done;
		if (evbuffer_ptr_set(buf, &pos, done, EVBUFFER_PTR_ADD) < 0)
			return;
	}
}

/* Bytes arrived: before evhttp parses them. */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct api_conn *c = arg;
	if (!info->n_added)
		return;                 /* evhttp consuming what it read */
	if (!c->registered && !c->closing)
		conn_register(c);
	size_t len = evbuffer_get_length(buf);
	if (c->closing || c->shut) {
		evbuffer_drain(buf, len);
		return;
	}
	TAILQ_REMOVE(&c->cs->conns, c, link);
	TAILQ_INSERT_TAIL(&c->cs->conns, c, link);
	feed(c, buf, len - info->n_added, info->n_added);
	if (c->g.state < API_GUARD_DISCARD && !reserve_body(c))
		api_guard_refuse(&c->g, 400, "ThrottlingException", "Too many large request bodies "
				 "are arriving at once; retry later.");
	if (c->g.state >= API_GUARD_DISCARD) {
		unreserve(c);
		conn_answer(c);
		evbuffer_drain(buf, evbuffer_get_length(buf));
		if (c->g.state == API_GUARD_CLOSED)
			conn_shut(c);
		return;
	}
	if (c->g.in_request && (!c->deadline || c->completed != c->g.completed))
		arm_deadline(c);
	else if (!c->g.in_request && c->deadline) {
		c->deadline = false;
		evtimer_del(c->timer);
	}
}

struct bufferevent *api_conns_bevcb(struct event_base *base, void *arg)
{
	struct api_conns *cs = arg;
	struct api_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;    /* evhttp makes a bufferevent of its own */
	c->cs = cs;
	api_guard_init(&c->g);
	c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	c->timer = c->bev ? evtimer_new(base, on_timer, c) : NULL;
	c->watch = c->timer ? evbuffer_add_cb(bufferevent_get_input(c->bev), on_input, c) : NULL;
	if (!c->watch) {
		if (c->timer)
			event_free(c->timer);
		if (c->bev)
			bufferevent_free(c->bev);
		free(c);
		return NULL;
	}
	bufferevent_incref(c->bev);
	TAILQ_INSERT_TAIL(&cs->conns, c, link);
	/* evhttp sets the connection up when we return: look at it then. */
	event_active(c->timer, EV_TIMEOUT, 1);
	return c->bev;
}

/* ---- listeners ---- */

/* A watch's timer is always pending: an hour when the listener runs, the
 * pause when it is paused.  Being pending is what lets on_accept_error()
 * find it (below). */
static void watch_arm(struct api_listen_watch *w, int64_t ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	evtimer_add(w->resume, &tv);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct api_listen_watch *w = arg;
	evconnlistener_enable(w->lev);
	watch_arm(w, 3600 * 1000);
}

struct find_watch {
	struct evconnlistener *lev;
	struct api_listen_watch *found;
};

static int find_watch_cb(const struct event_base *base, const struct event *ev, void *arg)
{
	(void)base;
	struct find_watch *f = arg;
	struct api_listen_watch *w = event_get_callback_arg(ev);
	if (event_get_callback(ev) != on_resume || w->lev != f->lev)
		return 0;
	f->found = w;
	return 1;
}

/* accept() failed, typically EMFILE: the listening socket stays readable,
 * so without a pause the loop would spin on it.  The listener's user data
 * is evhttp's, so our watch is found among the loop's pending events. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
	(void)arg;
	int e = EVUTIL_SOCKET_ERROR();
	struct find_watch f = { .lev = lev };
	event_base_foreach_event(evconnlistener_get_base(lev), find_watch_cb, &f);
	evconnlistener_disable(lev);
	if (!f.found)
		return;
	struct api_conns *cs = f.found->cs;
	watch_arm(f.found, API_CONN_ACCEPT_PAUSE_MS);
	struct api_conn *victim = oldest_idle(cs, NULL, NULL);
	if (victim)
		conn_shut(victim);
	report(cs, &cs->accept_failed, "cannot accept API connections: %s; pausing the listener "
	       "for %d ms and closing the oldest idle connection", strerror(e),
	       API_CONN_ACCEPT_PAUSE_MS);
}

int api_conns_watch(struct api_conns *cs, struct evconnlistener *lev, struct berth_err *err)
{
	struct api_listen_watch *w = calloc(1, sizeof(*w));
	if (w)
		w->resume = evtimer_new(cs->base, on_resume, w);
	if (!w || !w->resume) {
		free(w);
		return berth_errf(err, ENOMEM, "api: out of memory");
	}
	w->cs = cs;
	w->lev = lev;
	w->next = cs->watches;
	cs->watches = w;
	watch_arm(w, 3600 * 1000);
	evconnlistener_set_error_cb(lev, on_accept_error);
	return 0;
}

int api_conns_new(struct event_base *base, const struct api_conn_limits *lim,
		  struct api_conns **ret, struct berth_err *err)
{
	struct api_conns *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return berth_errf(err, ENOMEM, "api: out of memory");
	cs->base = base;
	cs->lim = *lim;
	TAILQ_INIT(&cs->conns);
	*ret = cs;
	return 0;
}

void api_conns_free(struct api_conns *cs)
{
	if (!cs)
		return;
	while (!TAILQ_EMPTY(&cs->conns))
		conn_release(TAILQ_FIRST(&cs->conns));
	while (cs->watches) {
		struct api_listen_watch *w = cs->watches;
		cs->watches = w->next;
		event_free(w->resume);
		free(w);
	}
	free(cs);
}
