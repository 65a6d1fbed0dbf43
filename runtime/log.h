/* Container log files in the CRI log format, for the task agent.
 *
 * Each container gets one struct rt_log writing <dir>/<name>.log:
 *
 *   2026-12-01T17:26:04.123456789Z stdout F hello
 *   2026-12-01T17:26:04.123456789Z stderr P <first 16 KiB of a long line>
 *   2026-12-01T17:26:04.123456789Z stderr F <rest of it>
 *
 * The format Fluent Bit, Vector, Promtail and the kubelet read.  The writer
 * is made for one event loop: it never blocks on the container (the caller
 * polls the pipes, level-triggered, and hands over what is readable) and
 * only ever writes whole records, batched, so a reader never sees a torn
 * line and a rotation never splits one.
 *
 * Line rules, as containerd's CRI logger:
 *  - a line is the bytes before '\n'; a '\r' right before the '\n' is part
 *    of the terminator and dropped, every other '\r' is kept as text;
 *  - a line longer than RT_LOG_LINE_MAX is cut into P records of exactly
 *    RT_LOG_LINE_MAX bytes followed by one F record with the rest;
 *  - stdout and stderr keep separate partial lines across feeds; a partial
 *    line is written when its '\n' arrives, as P once it outgrows
 *    RT_LOG_LINE_MAX, and as F by rt_log_flush_partial() at EOF (containerd
 *    writes P there; F lets shippers emit it instead of waiting forever).
 *
 * Timestamps are UTC ("Z") with nine fraction digits, one clock read per
 * feed, clamped so that they never go backwards within one file set.
 *
 * Rotation is by size, as Docker's json-file driver: before a record would
 * take the current file past max_size, <name>.log becomes <name>.log.1,
 * .1 becomes .2 … up to .<max_files-1>, the oldest is dropped, and a new
 * <name>.log is started.  With max_files 1 the current file is replaced. */
#ifndef BERTH_RT_LOG_H
#define BERTH_RT_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define RT_LOG_LINE_MAX 16384u          /* longest record body, as containerd/CRI-O */
#define RT_LOG_DEFAULT_MAX_SIZE 10000000u /* "10m", Docker units (decimal) */
#define RT_LOG_DEFAULT_MAX_FILES 5u
#define RT_LOG_MAX_FILES_LIMIT 1000u
#define RT_LOG_DRAIN_BUDGET (1u << 20)  /* bytes per rt_log_drain_fd() call */

enum rt_log_stream {
	RT_LOG_STDOUT = 0,
	RT_LOG_STDERR = 1,
};

struct rt_log_opts {
	uint64_t max_size;   /* bytes per file, > 0 */
	unsigned max_files;  /* 1 .. RT_LOG_MAX_FILES_LIMIT */
};

struct rt_log_stats {
	uint64_t records;        /* records handed to write() successfully */
	uint64_t bytes;          /* bytes written to files */
	uint64_t dropped_bytes;  /* record bytes lost to failed writes */
	uint64_t rotations;
};

/* rt_log_drain_fd() results (negative values are errors). */
enum rt_log_drain {
	RT_LOG_DRAINED = 0,  /* read until EAGAIN: wait for the next POLLIN */
	RT_LOG_EOF = 1,      /* writer side closed; partial line flushed */
	RT_LOG_MORE = 2,     /* budget used up with data left: poll again */
};

struct rt_log;

/* Defaults: 10m × 5. */
void rt_log_opts_init(struct rt_log_opts *opts);

/* Parses a size with Docker's units (go-units FromHumanSize, used by
 * json-file max-size): a decimal number, optionally fractional, one
 * optional space, an optional unit k, m, g, t or p (powers of 1000),
 * an optional "i" and an optional "b", case-insensitive: "10m", "1.5MB",
 * "512k", "100", "2 GiB" (still 2×1000³).  Fractions are truncated. */
int rt_log_parse_size(const char *s, uint64_t *ret, struct berth_err *err);

/* Parses max-file: a decimal integer 1 .. RT_LOG_MAX_FILES_LIMIT. */
int rt_log_parse_max_file(const char *s, unsigned *ret, struct berth_err *err);

/* Applies one logConfiguration option ("max-size" > 0, "max-file").
 * Other keys fail with -ENOTSUP so the caller may choose to ignore them;
 * *opts is left unchanged on any failure. */
int rt_log_opts_set(struct rt_log_opts *opts, const char *key, const char *value,
		    struct berth_err *err);

/* Opens (creating 0640, appending) dirfd/<name>.log.  dirfd is duplicated,
 * the caller keeps its own; name is one path component (the container
 * name).  *ret is freed with rt_log_close(). */
int rt_log_open(int dirfd, const char *name, const struct rt_log_opts *opts,
		struct rt_log **ret, struct berth_err *err);

/* Takes n bytes the container wrote to stream: writes every line they
 * complete, keeps the unterminated rest.  Records of one call reach the
 * file before the call returns, so feeds of both streams keep their order.
 * On a write failure the records of that write are dropped (counted in
 * dropped_bytes), parsing goes on, and the first error is returned. */
int rt_log_feed(struct rt_log *log, enum rt_log_stream stream, const char *buf, size_t n,
		struct berth_err *err);

/* Reads a non-blocking pipe and feeds what it reads, until EAGAIN, EOF or
 * RT_LOG_DRAIN_BUDGET bytes.  At EOF the partial line is flushed.  Returns
 * an enum rt_log_drain value or a negative errno; after a write failure it
 * still drains (to the budget) so the container is never held up. */
int rt_log_drain_fd(struct rt_log *log, enum rt_log_stream stream, int fd,
		    struct berth_err *err);

/* Writes the stream's unterminated partial line, if any, as an F record. */
int rt_log_flush_partial(struct rt_log *log, enum rt_log_stream stream,
			 struct berth_err *err);

void rt_log_get_stats(const struct rt_log *log, struct rt_log_stats *ret);

/* Flushes both partial lines (best effort), closes and frees; NULL is fine. */
void rt_log_close(struct rt_log *log);

#endif
