/* daemon/server/endpoint: a JSON-over-GET HTTP server on one TCP socket. */
#include "daemon/server/endpoint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "common/hash.h"
#include "common/time.h"
#include "daemon/server/api_conn.h"
#include "daemon/server/api_guard.h"

/* A source address's request budget (a token bucket). */
struct budget {
	uint32_t addr;              /* host byte order; 0: free */
	double tokens;
	int64_t at_ms;              /* of the last refill */
};

struct endpoint {
	struct evhttp *http;
	struct api_conns *conns;
	endpoint_handler handler;
	void *arg;
	struct budget budgets[ENDPOINT_SOURCES];
};

#define PROBES 8

/* Takes one request from ADDR's budget: false when it has none left.
 * Budgets live in a table probed PROBES slots deep; a new address takes
 * the one refilled longest ago (which a full budget would reach anyway
 * unless its owner is still busy). */
static bool within_budget(struct endpoint *e, uint32_t addr)
{
	int64_t now = berth_mono_ms();
	uint64_t h = berth_fnv1a64(BERTH_FNV1A64_INIT, &addr, sizeof(addr));
	struct budget *b = NULL, *oldest = NULL;
	for (size_t i = 0; i < PROBES && !b; i++) {
		struct budget *s = &e->budgets[(h + i) % ENDPOINT_SOURCES];
		if (s->addr == addr)
			b = s;
		else if (!oldest || s->at_ms < oldest->at_ms)
			oldest = s;
	}
	if (!b) {
		b = oldest;
		*b = (struct budget){ .addr = addr, .tokens = ENDPOINT_BURST, .at_ms = now };
	}
	b->tokens += (double)(now - b->at_ms) * ENDPOINT_RATE / 1000.0;
	if (b->tokens > ENDPOINT_BURST)
		b->tokens = ENDPOINT_BURST;
	b->at_ms = now;
	if (b->tokens < 1)
		return false;
	b->tokens -= 1;
	return true;
}

static int parse_spec(const char *spec, const char *flag, struct sockaddr_in *sa,
		      struct berth_err *err)
{
	char ip[INET_ADDRSTRLEN];
	const char *colon = strrchr(spec, ':');
	char *end;
	errno = 0;
	unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
	if (!colon || (size_t)(colon - spec) >= sizeof(ip) || end == colon + 1 || *end || errno ||
	    port > 65535)
		return berth_errf(err, EINVAL, "%s %s: expected ADDRESS:PORT (IPv4)", flag, spec);
	memcpy(ip, spec, (size_t)(colon - spec));
	ip[colon - spec] = '\0';
	*sa = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1)
		return berth_errf(err, EINVAL, "%s %s: expected ADDRESS:PORT (IPv4)", flag, spec);
	return 0;
}

int endpoint_bind(const char *spec, const char *flag, bool freebind, int *ret_fd, int *ret_port,
		  struct berth_err *err)
{
	struct sockaddr_in sa;
	int r = parse_spec(spec, flag, &sa, err);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (freebind && setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one)) < 0))
		return berth_errnof(err, errno, "%s %s: socket", flag, spec);
	/* No Nagle, as on the API's listeners: answers go out whole at once. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	socklen_t sl = sizeof(sa);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		return berth_errnof(err, errno, "%s %s: listen", flag, spec);
	*ret_port = ntohs(sa.sin_port);
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static void handle(struct evhttp_request *req, void *arg)
{
	struct endpoint *e = arg;
	unsigned addr;
	if (endpoint_peer_ipv4(req, &addr) && !within_budget(e, addr)) {
		endpoint_send_message(req, 429, "too many requests from this address; slow down");
		return;
	}
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	if (cmd != EVHTTP_REQ_GET) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
		endpoint_send_message(req, 405, "only GET is served here");
		return;
	}
	e->handler(req, e->arg);
}

int endpoint_new(struct event_base *base, int fd, FILE *log, endpoint_handler handler, void *arg,
		 struct endpoint **ret, struct berth_err *err)
{
	_cleanup_close_ int owned = fd;
	struct endpoint *e = calloc(1, sizeof(*e));
	if (!e)
		return berth_errf(err, ENOMEM, "out of memory");
	e->handler = handler;
	e->arg = arg;
	struct api_conn_limits lim = {
		.request_timeout_ms = ENDPOINT_REQUEST_TIMEOUT_MS,
		.max_total = ENDPOINT_MAX_CONNECTIONS,
		.max_per_source = ENDPOINT_MAX_PER_SOURCE,
		.log = log,
	};
	int r = api_conns_new(base, &lim, &e->conns, err);
	if (r < 0) {
		free(e);
		return r;
	}
	struct evconnlistener *lev = NULL;
	if (!(e->http = evhttp_new(base)) ||
	    !(lev = evconnlistener_new(base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
				       -1, owned))) {
		endpoint_free(e);
		return berth_errf(err, ENOMEM, "out of memory");
	}
	TAKE_FD(owned);
	evhttp_set_bevcb(e->http, api_conns_bevcb, e->conns);
	evhttp_set_max_headers_size(e->http, 2 * API_GUARD_HEAD_MAX);
	evhttp_set_max_body_size(e->http, ENDPOINT_BODY_MAX);
	evhttp_set_timeout(e->http, ENDPOINT_REQUEST_TIMEOUT_MS / 1000);
	evhttp_set_allowed_methods(e->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
				   EVHTTP_REQ_PATCH | EVHTTP_REQ_TRACE);
	evhttp_set_gencb(e->http, handle, e);
	if (!evhttp_bind_listener(e->http, lev)) {
		evconnlistener_free(lev);
		endpoint_free(e);
		return berth_errf(err, ENOMEM, "out of memory");
	}
	if ((r = api_conns_watch(e->conns, lev, err)) < 0) {
		endpoint_free(e);
		return r;
	}
	*ret = e;
	return 0;
}

void endpoint_free(struct endpoint *e)
{
	if (!e)
		return;
	if (e->http)
		evhttp_free(e->http);
	api_conns_free(e->conns);
	free(e);
}

void endpoint_send_json(struct evhttp_request *req, int status, cJSON *body)
{
	char *s = body ? cJSON_PrintUnformatted(body) : NULL;
	cJSON_Delete(body);
	if (!s) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	struct evbuffer *out = evbuffer_new();
	int r = out ? evbuffer_add(out, s, strlen(s)) : -1;
	free(s);
	if (r < 0) {
		if (out)
			evbuffer_free(out);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", out);
	evbuffer_free(out);
}

void endpoint_send_message(struct evhttp_request *req, int status, const char *message)
{
	endpoint_send_json(req, status, cJSON_CreateString(message));
}

bool endpoint_peer_ipv4(struct evhttp_request *req, unsigned *ret)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	const struct sockaddr *sa = c ? evhttp_connection_get_addr(c) : NULL;
	if (!sa || sa->sa_family != AF_INET)
		return false;
	*ret = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
	return true;
}
