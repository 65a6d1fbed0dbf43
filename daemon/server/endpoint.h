/* daemon/server/endpoint: the small HTTP servers the daemon runs beside
 * the API — the task metadata endpoint (metadata.c) and the agent
 * introspection (introspect.c).  One TCP listener each on the daemon's
 * loop, behind the API's connection limits and HTTP guard (api_conn.h:
 * a request must arrive whole within its deadline, a source holds a
 * bounded number of connections) and a per-address request rate, answering
 * JSON to GET only. */
#ifndef BERTH_DAEMON_ENDPOINT_H
#define BERTH_DAEMON_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/cleanup.h"
#include "common/err.h"

struct cJSON;
struct event_base;
struct evhttp_request;

#define ENDPOINT_MAX_CONNECTIONS 256
#define ENDPOINT_MAX_PER_SOURCE 32
#define ENDPOINT_REQUEST_TIMEOUT_MS 10000
/* Requests a second one source address may make, after a burst of
 * ENDPOINT_BURST; beyond, 429 (a task polling its stats every second
 * from each of ten containers makes ten). */
#define ENDPOINT_RATE 100
#define ENDPOINT_BURST 200
#define ENDPOINT_SOURCES 1024       /* addresses whose budget is kept */
/* No request to these servers has a body; a path is at most this long. */
#define ENDPOINT_BODY_MAX 0
#define ENDPOINT_PATH_MAX 512

/* Binds a listening TCP socket to SPEC, "a.b.c.d:port" (port 0: any
 * free one), named FLAG in errors.  FREEBIND: the address need not be
 * on an interface yet (the task endpoint's goes on the bridge after).
 * *ret_port is the port bound. */
int endpoint_bind(const char *spec, const char *flag, bool freebind, int *ret_fd, int *ret_port,
		  struct berth_err *err);

typedef void (*endpoint_handler)(struct evhttp_request *req, void *arg);

struct endpoint;

/* Serves FD (from endpoint_bind; taken, also on failure) on BASE: each
 * GET goes to HANDLER(req, ARG), which answers it now or later; any
 * other method is answered 405 here. */
int endpoint_new(struct event_base *base, int fd, FILE *log, endpoint_handler handler, void *arg,
		 struct endpoint **ret, struct berth_err *err);
void endpoint_free(struct endpoint *e);
DEFINE_CLEANUP_FUNC(struct endpoint, endpoint_free)

/* Answers REQ with STATUS and BODY (taken; NULL answers 500). */
void endpoint_send_json(struct evhttp_request *req, int status, struct cJSON *body);
/* Answers REQ with STATUS and the JSON string MESSAGE, as the ECS agent
 * words its metadata errors. */
void endpoint_send_message(struct evhttp_request *req, int status, const char *message);

/* The IPv4 address REQ came from (host byte order); false for another
 * family. */
bool endpoint_peer_ipv4(struct evhttp_request *req, unsigned *ret);

#endif
