/* daemon/server/api_conn: the API's connections, below evhttp — what a hostile
 * client can do with a socket before it has a valid signature.
 *
 *  - Every byte goes through api_guard (HTTP limits, AWS-shaped refusals)
 *    before evhttp sees it.
 *  - A request must arrive whole within the request deadline, counted
 *    from its first byte (a slow drip does not reset it); then the client
 *    gets a 408 and the connection is closed.
 *  - At most max_total connections, and max_per_source from one TCP peer
 *    address: a new one beyond either closes the least recently active
 *    idle one (no request in flight), or itself when none is idle.
 *  - Request bodies over API_CONN_SMALL_BODY that are arriving count
 *    against API_CONN_BODY_BUDGET (a body is held whole before its
 *    signature can be checked): beyond it, a new one is refused.
 *  - accept() failing (out of file descriptors) pauses the listener for
 *    API_CONN_ACCEPT_PAUSE_MS and closes the oldest idle connection,
 *    instead of spinning on a listener that stays readable; it is logged
 *    once per API_CONN_REPORT_MS with a count.
 *
 * How it hooks into evhttp (libevent 2.1 has no per-connection callback):
 * evhttp_set_bevcb() lets us create each connection's bufferevent; we keep
 * one reference to it, watch its input buffer (called synchronously as
 * bytes are read, before evhttp's read callback), learn evhttp's
 * connection from the bufferevent's callback argument once evhttp has set
 * it up, and hear of its end through evhttp_connection_set_closecb().  To
 * close a connection we shut its socket down: evhttp then reads EOF and
 * frees it as for any client that hung up. */
#ifndef BERTH_DAEMON_API_CONN_H
#define BERTH_DAEMON_API_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/cleanup.h"
#include "common/err.h"

struct event_base;
struct evconnlistener;
struct bufferevent;

#define API_CONN_ACCEPT_PAUSE_MS 100
/* Bodies over API_CONN_SMALL_BODY arriving at once, in all: beyond, a new
 * one is refused with a ThrottlingException (which clients retry). */
#define API_CONN_BODY_BUDGET (64u << 20)
#define API_CONN_SMALL_BODY (16u << 10)
#define API_CONN_REPORT_MS 10000

struct api_conn_limits {
	int64_t request_timeout_ms;
	size_t max_total, max_per_source;
	FILE *log;                      /* limit reports; NULL = quiet */
};

struct api_conns;

int api_conns_new(struct event_base *base, const struct api_conn_limits *lim,
		  struct api_conns **ret, struct berth_err *err);

/* For evhttp_set_bevcb(http, api_conns_bevcb, conns). */
struct bufferevent *api_conns_bevcb(struct event_base *base, void *conns);

/* Pauses LEV instead of spinning when accept() fails.  LEV must be bound
 * to an evhttp (evhttp_bind_listener) first and outlive CS's use of it:
 * api_conns_free() after every evhttp is freed. */
int api_conns_watch(struct api_conns *cs, struct evconnlistener *lev, struct berth_err *err);

/* After evhttp_free() of every evhttp using CS. */
void api_conns_free(struct api_conns *cs);
DEFINE_CLEANUP_FUNC(struct api_conns, api_conns_free)

/* The AWS-shaped error answer the guard and the deadline send:
 * an HTTP/1.1 response with a JSON body {"__type","message"}, a request id
 * and Connection: close.  malloc'd; NULL when out of memory. */
char *api_conn_error_response(int status, const char *type, const char *message, size_t *ret_len);

#endif
