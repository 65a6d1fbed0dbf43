/* Helpers shared by the runtime/ sources; not part of the public API.
 *
 * Between clone3() and execve() the container's first process is a copy of
 * a possibly multi-threaded parent, made by a raw syscall: glibc's fork
 * handlers did not run, so a lock held by another parent thread (malloc,
 * stdio, gettext, the setxid broadcast) stays held forever in the child.
 * Code on that path ("child side" in the headers) therefore uses syscalls,
 * stack buffers and the two functions below only: no malloc, no stdio, no
 * strerror (which may translate through gettext). */
#ifndef BERTH_RT_INTERNAL_H
#define BERTH_RT_INTERNAL_H

#include "common/err.h"

/* berth_errf() for the child side. */
int rt_cerrf(struct berth_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* berth_errnof() for the child side: appends ": <strerrordesc_np(code)>". */
int rt_cerrnof(struct berth_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
