/* daemon/server/api_guard: HTTP request limits on the raw bytes (api_guard.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>

#include "daemon/server/api_guard.h"

/* Error types, as api_internal.h spells them for the API. */
#define BAD_HTTP "SerializationException"
#define CLIENT "ClientException"
#define UNKNOWN_OP "UnknownOperationException"

void api_guard_init(struct api_guard *g)
{
	memset(g, 0, sizeof(*g));
	g->content_length = -1;
}

static void vrefuse(struct api_guard *g, enum api_guard_state state, int status,
		    const char *type, const char *fmt, va_list ap)
{
	g->state = state;
	g->status = status;
	g->type = type;
	vsnprintf(g->message, sizeof(g->message), fmt, ap);
}

__attribute__((format(printf, 4, 5)))
static void refuse(struct api_guard *g, int status, const char *type, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vrefuse(g, API_GUARD_CLOSED, status, type, fmt, ap);
	va_end(ap);
}

void api_guard_refuse(struct api_guard *g, int status, const char *type, const char *message)
{
	refuse(g, status, type, "%s", message);
}

static void request_done(struct api_guard *g)
{
	uint64_t completed = g->completed + 1;
	api_guard_init(g);
	g->completed = completed;
}

/* evhttp knows these (and CONNECT, which takes an authority, not a path:
 * refused here); each reaches the API, which answers 404 or 405 itself. */
static bool known_method(const char *m, size_t n)
{
	static const char *const methods[] = {
		"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH",
	};
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strlen(methods[i]) == n && memcmp(methods[i], m, n) == 0)
			return true;
	return false;
}

static void request_line(struct api_guard *g)
{
	if (g->line_len >= sizeof(g->line)) {
		refuse(g, 414, CLIENT, "The request line is longer than %zu bytes.", sizeof(g->line) - 1);
		return;
	}
	size_t n = g->line_len;
	while (n && g->line[n - 1] == ' ')
		n--;
	g->line[n] = '\0';
	char *sp1 = strchr(g->line, ' '), *sp2 = strrchr(g->line, ' ');
	if (!sp1 || sp2 == sp1 || memchr(sp1 + 1, ' ', (size_t)(sp2 - sp1 - 1))) {
		refuse(g, 400, BAD_HTTP, "The request line is not METHOD TARGET HTTP-VERSION.");
		return;
	}
	if (!known_method(g->line, (size_t)(sp1 - g->line))) {
		refuse(g, 405, UNKNOWN_OP, "The ECS API accepts POST requests only.");
		return;
	}
	if (strcmp(sp2 + 1, "HTTP/1.1") != 0 && strcmp(sp2 + 1, "HTTP/1.0") != 0) {
		refuse(g, 400, BAD_HTTP, "Only HTTP/1.0 and HTTP/1.1 are served.");
		return;
	}
	*sp2 = '\0';
	struct evhttp_uri *u = evhttp_uri_parse_with_flags(sp1 + 1, EVHTTP_URI_NONCONFORMANT);
	if (!u) {
		refuse(g, 400, BAD_HTTP, "The request target is not a valid URI.");
		return;
	}
	evhttp_uri_free(u);
	g->have_line = true;
}

static bool name_is(const char *name, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

static void content_length(struct api_guard *g, const char *v, size_t n)
{
	uint64_t len = 0;
	bool huge = false;
	if (!n || strspn(v, "0123456789") < n) {
		refuse(g, 400, BAD_HTTP, "Content-Length is not a decimal number of bytes.");
		return;
	}
	for (size_t i = 0; i < n && !huge; i++) {
		len = len * 10 + (uint64_t)(v[i] - '0');
		huge = len > API_GUARD_BODY_MAX;
	}
	if (huge) {
		refuse(g, 413, CLIENT, "Request body of %.*s bytes exceeds the limit of %d bytes.",
		       n > 40 ? 40 : (int)n, v, API_GUARD_BODY_MAX);
		/* Answered now; what the client still sends is dropped. */
		g->state = API_GUARD_DISCARD;
		g->body_left = API_GUARD_DISCARD_MAX;
		return;
	}
	if (g->content_length >= 0 && (uint64_t)g->content_length != len) {
		refuse(g, 400, BAD_HTTP, "The request has two different Content-Length headers.");
		return;
	}
	g->content_length = (int64_t)len;
}

static void header_line(struct api_guard *g)
{
	if (++g->headers > API_GUARD_HEADERS_MAX) {
		refuse(g, 431, CLIENT, "The request has more than %d header lines.", API_GUARD_HEADERS_MAX);
		return;
	}
	size_t kept = g->line_len < sizeof(g->line) ? g->line_len : sizeof(g->line) - 1;
	g->line[kept] = '\0';
	if (g->line[0] == ' ' || g->line[0] == '\t') {
		refuse(g, 400, BAD_HTTP, "Header lines may not be folded.");
		return;
	}
	const char *colon = memchr(g->line, ':', kept);
	if (!colon) {
		refuse(g, 400, BAD_HTTP, "A header line is not NAME: VALUE.");
		return;
	}
	size_t nn = (size_t)(colon - g->line);
	bool cl = name_is(g->line, nn, "Content-Length"), te = name_is(g->line, nn, "Transfer-Encoding"),
	     ex = name_is(g->line, nn, "Expect");
	if (!cl && !te && !ex)
		return;
	if (g->line_len != kept) {
		refuse(g, 400, BAD_HTTP, "The %.*s header is too long.", (int)nn, g->line);
		return;
	}
	const char *v = colon + 1, *e = g->line + kept;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (cl)
		content_length(g, v, (size_t)(e - v));
	else if (te)
		refuse(g, 400, BAD_HTTP, "Transfer-Encoding is not accepted: send the body with a Content-Length.");
	else if (!name_is(v, (size_t)(e - v), "100-continue"))
		refuse(g, 417, CLIENT, "Only 'Expect: 100-continue' is understood.");
}

static void line_end(struct api_guard *g)
{
	if (!g->have_line) {
		request_line(g);
	} else if (g->line_len == 0) {
		if (g->content_length > 0) {
			g->state = API_GUARD_BODY;
			g->body_left = (uint64_t)g->content_length;
		} else {
			request_done(g);
		}
	} else {
		header_line(g);
	}
	g->line_len = 0;
}

static void head_byte(struct api_guard *g, char c)
{
	g->in_request = true;
	if (++g->head_bytes > API_GUARD_HEAD_MAX) {
		refuse(g, 431, CLIENT, "The request head is longer than %d bytes.", API_GUARD_HEAD_MAX);
		return;
	}
	if (c == '\n') {
		g->cr = false;
		line_end(g);
		return;
	}
	if (g->cr) {
		refuse(g, 400, BAD_HTTP, "A CR in the request head is not followed by LF.");
		return;
	}
	if (c == '\r') {
		g->cr = true;
		return;
	}
	if (((unsigned char)c < 0x20 && c != '\t') || c == 0x7f) {
		refuse(g, 400, BAD_HTTP, "The request head contains a control character.");
		return;
	}
	if (g->line_len < sizeof(g->line))
		g->line[g->line_len] = c;
	g->line_len++;
}

enum api_guard_state api_guard_feed(struct api_guard *g, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && g->state != API_GUARD_CLOSED) {
		if (g->state == API_GUARD_HEAD) {
			head_byte(g, p[i++]);
			continue;
		}
		size_t k = n - i < g->body_left ? n - i : (size_t)g->body_left;
		g->body_left -= k;
		i += k;
		if (g->body_left)
			continue;
		if (g->state == API_GUARD_BODY)
			request_done(g);
		else
			g->state = API_GUARD_CLOSED;
	}
	return g->state;
}
