#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int set_code(struct berth_err *err, int code)
{
	code = abs(code);
	if (code == 0)
		code = EIO;
	if (err)
		err->code = code;
	return -code;
}

int berth_errf(struct berth_err *err, int code, const char *fmt, ...)
{
	int ret = set_code(err, code);
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return ret;
}

int berth_errnof(struct berth_err *err, int code, const char *fmt, ...)
{
	int ret = set_code(err, code);
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < sizeof(err->msg))
			snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, ": %s", strerror(-ret));
	}
	return ret;
}

int berth_err_wrap(struct berth_err *err, const char *fmt, ...)
{
	if (!err)
		return -EIO;
	if (err->code == 0)
		err->code = EIO;
	char prefix[BERTH_ERR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	/* Joined in a buffer big enough for both, then cut to fit. */
	char joined[2 * BERTH_ERR_MAX + 2];
	snprintf(joined, sizeof(joined), "%s: %s", prefix, err->msg);
	size_t len = strnlen(joined, BERTH_ERR_MAX - 1);
	memcpy(err->msg, joined, len);
	err->msg[len] = '\0';
	return -err->code;
}

void berth_err_clear(struct berth_err *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}
