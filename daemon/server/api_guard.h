/* daemon/server/api_guard: the HTTP limits, checked on the bytes of a connection
 * as they arrive, before libevent's evhttp parses them.
 *
 * evhttp (libevent 2.1) parses the requests, but it answers what it
 * refuses (a bad line, a bad length, a bad chunk, an unknown method) with
 * an HTML page, only lets a huge Content-Length be drained to its end, and
 * has no per-request deadline.  So every byte first goes through this
 * guard, which refuses, in AWS's JSON error shape, everything evhttp would
 * answer itself, and is strictly narrower than evhttp: what passes here,
 * evhttp accepts too.  It keeps a few counters and the first
 * API_GUARD_LINE_KEEP bytes of the current line, whatever the client
 * sends: nothing grows with the input.
 *
 * Rules (docs/operations.md "HTTP limits"):
 *  - the request line is METHOD SP TARGET SP HTTP/1.0|HTTP/1.1, at most
 *    API_GUARD_LINE_KEEP bytes, a known method other than CONNECT, a
 *    target evhttp can parse;
 *  - the head (request line and headers) is at most API_GUARD_HEAD_MAX
 *    bytes and API_GUARD_HEADERS_MAX header lines, each NAME: VALUE with no
 *    control character but TAB, no obsolete line folding;
 *  - Content-Length is decimal digits, at most API_GUARD_BODY_MAX; repeats
 *    must agree; Transfer-Encoding is refused (no ECS client sends it);
 *    Expect is absent or 100-continue. */
#ifndef BERTH_DAEMON_API_GUARD_H
#define BERTH_DAEMON_API_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define API_GUARD_HEAD_MAX (64 * 1024)
#define API_GUARD_HEADERS_MAX 100
#define API_GUARD_LINE_KEEP 1024
#define API_GUARD_BODY_MAX (1024 * 1024)
/* After a 413, the body announced is read and dropped up to this much, so
 * that a client still sending reads the answer instead of a reset. */
#define API_GUARD_DISCARD_MAX (8 * 1024 * 1024)

enum api_guard_state {
	API_GUARD_HEAD,     /* reading a request's head (or waiting for one) */
	API_GUARD_BODY,     /* reading its body */
	API_GUARD_DISCARD,  /* refused: dropping the rest of a too-large body */
	API_GUARD_CLOSED,   /* refused: everything is dropped until the close */
};

struct api_guard {
	enum api_guard_state state;
	bool in_request;            /* a byte of the current request was seen */
	bool have_line;             /* the request line is behind us */
	uint64_t completed;         /* requests whose last byte was seen */
	size_t head_bytes, headers;
	uint64_t body_left;         /* BODY, DISCARD */
	int64_t content_length;     /* -1: none in this head */
	bool cr;                    /* the last byte was a CR */
	size_t line_len;            /* of the current line, CR and LF excluded */
	char line[API_GUARD_LINE_KEEP];
	/* The refusal, once state >= DISCARD. */
	int status;
	const char *type;
	char message[192];
};

void api_guard_init(struct api_guard *g);

/* Takes N more bytes of the connection and returns the state after them.
 * When it turns DISCARD or CLOSED, g->status/type/message say what to
 * answer, once; from then on the caller drops every byte (none may reach
 * evhttp) and feeds them here only to count the discarded body. */
enum api_guard_state api_guard_feed(struct api_guard *g, const char *p, size_t n);

/* Refuses what remains of the connection (a deadline, a limit): CLOSED
 * with STATUS, TYPE and MESSAGE, as a refusal by the rules would be. */
void api_guard_refuse(struct api_guard *g, int status, const char *type, const char *message);

#endif
