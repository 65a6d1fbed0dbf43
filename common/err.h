/* The one error convention (docs/architecture.md#errors).
 *
 * A function that can fail returns int: 0 on success, a negative errno on
 * failure, and fills *err with a message that names the object and the
 * cause.  Callers add context with berth_err_wrap() on the way up, so the
 * final text reads outermost-first:
 *   "pull 127.0.0.1:5000/app:1: layer sha256:ab12…: digest mismatch"
 * Library code never prints and never exits; only cli/ and the daemon's
 * top level turn an error into output. */
#ifndef BERTH_ERR_H
#define BERTH_ERR_H

#include <stddef.h>

#define BERTH_ERR_MAX 1024

struct berth_err {
	int code;                  /* positive errno, 0 when clear */
	char msg[BERTH_ERR_MAX];
};

/* Sets *err (if err is not NULL) and returns -abs(code); code 0 becomes EIO. */
int berth_errf(struct berth_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* berth_errf() with ": strerror(code)" appended. */
int berth_errnof(struct berth_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes "<context>: " to the message already in *err and returns
 * -err->code, so `return berth_err_wrap(err, "layer %s", d);` passes the
 * failure up with one more level of context. */
int berth_err_wrap(struct berth_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void berth_err_clear(struct berth_err *err);

#endif
