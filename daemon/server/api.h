/* daemon/server/api: the ECS API server — AWS JSON 1.1 over HTTP (libevent's
 * evhttp), request decoding, dispatch to the operations, error bodies.
 *
 * Wire protocol (docs/api.md "Wire protocol"): `POST /` with
 * `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Op>` and a JSON object
 * body; every answer carries `x-amzn-RequestId` and Content-Type
 * application/x-amz-json-1.1; errors are {"__type","message"} with 400, and
 * 500 only for ServerException (clients retry 5xx five times, so nothing a
 * retry cannot fix may be a 5xx).
 *
 * Listeners: a unix socket is trusted (its 0600 mode is the access check:
 * root only) and needs no signature; a TCP listener checks SigV4 on every
 * request against the credentials given to api_new().  Both feed the same
 * dispatcher, so the two differ in authentication only.
 *
 * The API runs on the caller's event loop, in its thread, and calls the
 * store synchronously: one request at a time is the store's rule too. */
#ifndef BERTH_DAEMON_API_H
#define BERTH_DAEMON_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "daemon/server/credentials.h"
#include "daemon/store/store.h"

struct event_base;
struct elb;
struct sched;
struct store_key;
struct svc;

/* Largest request body served; larger ones get a 413 ClientException
 * (api_guard.h has the other HTTP limits). */
#define API_BODY_MAX (1024 * 1024)
/* A request must arrive whole within this, from its first byte. */
#define API_REQUEST_TIMEOUT_MS 10000
/* Seconds an idle keep-alive connection is kept. */
#define API_IDLE_TIMEOUT 60
/* Connections at once (all listeners), by default; a quarter of them from
 * one TCP address. */
#define API_MAX_CONNECTIONS 4096

struct api_config {
	const char *region;        /* "us-east-1"; ARNs and the SigV4 scope */
	const char *account_id;    /* 12 digits, for ARNs */
	/* Keys a TCP listener verifies signatures against; NULL when none
	 * were given, and then api_listen_tcp() refuses unless insecure. */
	const struct api_credentials *credentials;
	bool insecure_no_auth;     /* TCP without SigV4 (tests, trusted nets) */
	FILE *log;                 /* one line per 5xx answer; NULL = quiet */
	/* HTTP limits (api_conn.h); 0 = API_REQUEST_TIMEOUT_MS,
	 * API_MAX_CONNECTIONS and a quarter of max_connections. */
	int64_t request_timeout_ms;
	size_t max_connections, max_connections_per_source;
	/* The connection reads (Describe*, List*) run on: committed state
	 * only (store_open_reader()), so their answers need not wait for the
	 * open group's commit.  NULL: the store, and a read's answer then
	 * waits for the commit of the writes it may have seen. */
	struct store *reader;
	struct sched *sched;       /* the task engine RunTask/StopTask drive */
	struct svc *svc;           /* the service scheduler the service operations poke */
	const struct store_key *secrets_key;  /* SSM and Secrets Manager values */
	struct elb *elb;           /* the ELBv2 API (Query requests); NULL = none */
};

struct api;

/* An API server on BASE over STORE.  Both, and every string and the
 * credentials in CFG, must outlive the server; it owns nothing of them.
 * *ret is freed with api_free(). */
int api_new(struct event_base *base, struct store *store, const struct api_config *cfg,
	    struct api **ret, struct berth_err *err);

/* Binds PATH (a stale socket left by a dead daemon is replaced; a live one
 * or any other file is refused), sets mode 0600 before listen(), serves
 * without authentication.  api_free() removes the socket again. */
int api_listen_unix(struct api *a, const char *path, struct berth_err *err);

/* Binds HOST:PORT ("127.0.0.1", "::1", "0.0.0.0"; PORT may be "0" for any)
 * and serves with SigV4 (or none when cfg->insecure_no_auth).  -EPERM
 * when there are no credentials and insecure_no_auth is not set.
 * ret_port (may be NULL) receives the port actually bound. */
int api_listen_tcp(struct api *a, const char *host, const char *port, int *ret_port,
		   struct berth_err *err);

/* Closes every listener and connection and unlinks the unix sockets this
 * server bound (only if the path still names that socket). */
void api_free(struct api *a);
DEFINE_CLEANUP_FUNC(struct api, api_free)

/* "OK", "Bad Request", …: the reason phrase for an HTTP status. */
const char *api_reason_phrase(int status);

#endif
