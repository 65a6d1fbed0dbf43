#include "runtime/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"

/* A partial line may hold one byte more than a record: a trailing '\r'
 * that could still turn out to be half of a "\r\n". */
#define PART_CAP (RT_LOG_LINE_MAX + 1)
/* Pending records; always holds the largest record (header + LINE_MAX). */
#define OUT_CAP (128u << 10)
/* One pipe's worth (the default pipe capacity). */
#define READ_CAP (64u << 10)
/* "2026-12-01T17:26:04.123456789Z", then " stdout " */
#define TS_LEN 30
#define HDR_MAX (TS_LEN + 8)
/* "<name>.log.<n>" must fit a file name. */
#define NAME_LEN_MAX (NAME_MAX - 10)

struct partial {
	char *buf;    /* PART_CAP bytes */
	size_t len;
};

struct rt_log {
	int dirfd;
	int fd;
	char *name;               /* container name; files are <name>.log[.N] */
	uint64_t max_size;
	unsigned max_files;
	uint64_t fsize;           /* bytes written to the current file */
	char *out;                /* OUT_CAP bytes of whole records not yet written */
	size_t olen;
	uint64_t orecs;           /* records in out */
	char *rbuf;               /* READ_CAP bytes for rt_log_drain_fd() */
	struct timespec last;     /* latest timestamp used, for the clamp */
	char hdr[HDR_MAX];        /* "<timestamp> <stream> " of the current batch */
	size_t hlen;
	struct berth_err *err;    /* the current batch's caller, for failures */
	int ret;                  /* first failure of the current batch */
	struct rt_log_stats stats;
	struct partial part[2];
};

static const char *const stream_names[] = {
	[RT_LOG_STDOUT] = "stdout",
	[RT_LOG_STDERR] = "stderr",
};

/* ---- options ------------------------------------------------------------ */

void rt_log_opts_init(struct rt_log_opts *opts)
{
	opts->max_size = RT_LOG_DEFAULT_MAX_SIZE;
	opts->max_files = RT_LOG_DEFAULT_MAX_FILES;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* k, m, g, t, p → 1000^1 .. 1000^5; anything else → 0. */
static uint64_t unit_multiplier(char c)
{
	static const char units[] = "kmgtp";
	const char *u = c ? strchr(units, lower(c)) : NULL;
	uint64_t mul = 1;
	if (!u)
		return 0;
	for (const char *i = units; i <= u; i++)
		mul *= 1000;
	return mul;
}

/* Digits of a fraction beyond 18 cannot change a result truncated to bytes
 * of a value below 2^63, so they are read but not kept. */
static const char *parse_fraction(const char *p, uint64_t *frac, uint64_t *scale)
{
	for (; is_digit(*p); p++) {
		if (*scale < 1000000000000000000ull) {
			*frac = *frac * 10 + (uint64_t)(*p - '0');
			*scale *= 10;
		}
	}
	return p;
}

static int bad_size(struct berth_err *err, const char *s)
{
	return berth_errf(err, EINVAL,
			  "size \"%s\": invalid (want a number with an optional unit k, m or g, e.g. 10m)", s);
}

int rt_log_parse_size(const char *s, uint64_t *ret, struct berth_err *err)
{
	const char *p = s;
	uint64_t whole = 0, frac = 0, scale = 1, mul = 1;

	if (!is_digit(*p))
		return bad_size(err, s);
	for (; is_digit(*p); p++) {
		if (whole > (UINT64_MAX - 9) / 10)
			return berth_errf(err, ERANGE, "size \"%s\": too large", s);
		whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		if (!is_digit(p[1]))
			return bad_size(err, s);
		p = parse_fraction(p + 1, &frac, &scale);
	}
	if (*p == ' ')
		p++;
	if (unit_multiplier(*p))
		mul = unit_multiplier(*p++);
	if (lower(*p) == 'i')
		p++;
	if (lower(*p) == 'b')
		p++;
	if (*p != '\0')
		return bad_size(err, s);
	unsigned __int128 v = (unsigned __int128)whole * mul + (unsigned __int128)frac * mul / scale;
	if (v > INT64_MAX)
		return berth_errf(err, ERANGE, "size \"%s\": too large", s);
	*ret = (uint64_t)v;
	return 0;
}

int rt_log_parse_max_file(const char *s, unsigned *ret, struct berth_err *err)
{
	unsigned long v = 0;
	const char *p = s;
	for (; is_digit(*p) && v <= RT_LOG_MAX_FILES_LIMIT; p++)
		v = v * 10 + (unsigned long)(*p - '0');
	if (p == s || *p != '\0' || v < 1 || v > RT_LOG_MAX_FILES_LIMIT)
		return berth_errf(err, EINVAL, "max-file \"%s\": want an integer from 1 to %u", s,
				  RT_LOG_MAX_FILES_LIMIT);
	*ret = (unsigned)v;
	return 0;
}

int rt_log_opts_set(struct rt_log_opts *opts, const char *key, const char *value,
		    struct berth_err *err)
{
	if (strcmp(key, "max-size") == 0) {
		uint64_t size;
		int r = rt_log_parse_size(value, &size, err);
		if (r < 0)
			return berth_err_wrap(err, "log option max-size");
		if (size == 0)
			return berth_errf(err, EINVAL, "log option max-size \"%s\": must be positive", value);
		opts->max_size = size;
		return 0;
	}
	if (strcmp(key, "max-file") == 0) {
		struct berth_err e = { 0 };
		unsigned n;
		int r = rt_log_parse_max_file(value, &n, &e);
		if (r < 0)
			return berth_errf(err, r, "log option %s", e.msg);
		opts->max_files = n;
		return 0;
	}
	return berth_errf(err, ENOTSUP, "log option %s: not supported", key);
}

/* ---- files -------------------------------------------------------------- */

/* index 0 is the current file, <name>.log; -1 the next one being prepared. */
static void file_name(const struct rt_log *log, int index, char *buf, size_t n)
{
	if (index == 0)
		snprintf(buf, n, "%s.log", log->name);
	else if (index < 0)
		snprintf(buf, n, "%s.log.new", log->name);
	else
		snprintf(buf, n, "%s.log.%d", log->name, index);
}

static int open_file(const struct rt_log *log, int index, int flags, int *ret,
		     struct berth_err *err)
{
	char name[NAME_MAX + 1];
	file_name(log, index, name, sizeof(name));
	int fd = openat(log->dirfd, name,
			O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | flags, 0640);
	if (fd < 0)
		return berth_errnof(err, errno, "log %s: open %s", log->name, name);
	/* Whatever the umask: logs are readable by the group (shippers). */
	if (fchmod(fd, 0640) < 0) {
		int e = errno;
		close(fd);
		return berth_errnof(err, e, "log %s: chmod %s", log->name, name);
	}
	*ret = fd;
	return 0;
}

static int rename_file(const struct rt_log *log, int from, int to, struct berth_err *err)
{
	char a[NAME_MAX + 1], b[NAME_MAX + 1];
	file_name(log, from, a, sizeof(a));
	file_name(log, to, b, sizeof(b));
	if (renameat(log->dirfd, a, log->dirfd, b) < 0 && errno != ENOENT)
		return berth_errnof(err, errno, "log %s: rename %s to %s", log->name, a, b);
	return 0;
}

/* The new file is made first, so a failure changes nothing on disk; the
 * shift renames over the oldest, and the new file takes <name>.log last. */
static int rotate_files(struct rt_log *log, int *ret, struct berth_err *err)
{
	_cleanup_close_ int fd = -1;
	int r = open_file(log, -1, O_TRUNC, &fd, err);
	if (r < 0)
		return r;
	for (int i = (int)log->max_files - 1; i >= 1 && r == 0; i--)
		r = rename_file(log, i - 1, i, err);
	if (r == 0)
		r = rename_file(log, -1, 0, err);
	if (r < 0) {
		char name[NAME_MAX + 1];
		file_name(log, -1, name, sizeof(name));
		unlinkat(log->dirfd, name, 0);
		return r;
	}
	*ret = TAKE_FD(fd);
	return 0;
}

/* ---- batches of whole records ------------------------------------------- */

static void batch_fail(struct rt_log *log, int r)
{
	if (log->ret == 0)
		log->ret = r;
}

/* Writes all of p; *done says how much reached the file even on failure. */
static int write_all(int fd, const char *p, size_t len, size_t *done)
{
	*done = 0;
	while (*done < len) {
		ssize_t n = write(fd, p + *done, len - *done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		*done += (size_t)n;
	}
	return 0;
}

static uint64_t count_records(const char *p, size_t len)
{
	uint64_t n = 0;
	for (const char *end = p + len; (p = memchr(p, '\n', (size_t)(end - p))); p++)
		n++;
	return n;
}

/* A write that failed half-way (disk full, file size limit) must not leave
 * a torn record: cut the file back to the last whole record it got. */
static void keep_whole_records(struct rt_log *log, size_t done)
{
	const char *nl = done ? memrchr(log->out, '\n', done) : NULL;
	size_t keep = nl ? (size_t)(nl - log->out) + 1 : 0;
	if (keep < done && ftruncate(log->fd, (off_t)(log->fsize + keep)) < 0)
		keep = done; /* cannot cut: at least count what is there */
	log->fsize += keep;
	log->stats.bytes += keep;
	log->stats.records += count_records(log->out, keep);
	log->stats.dropped_bytes += log->olen - keep;
}

/* Writes the pending records; what fails is dropped, never retried, so the
 * file only ever holds whole records. */
static void flush_out(struct rt_log *log)
{
	if (log->olen == 0)
		return;
	size_t done;
	int r = write_all(log->fd, log->out, log->olen, &done);
	if (r < 0) {
		keep_whole_records(log, done);
		batch_fail(log, berth_errnof(log->err, -r, "log %s: write %s.log", log->name,
					     log->name));
	} else {
		log->fsize += log->olen;
		log->stats.bytes += log->olen;
		log->stats.records += log->orecs;
	}
	log->olen = 0;
	log->orecs = 0;
}

static void rotate(struct rt_log *log)
{
	flush_out(log);
	int fd;
	int r = rotate_files(log, &fd, log->err);
	if (r < 0) {
		/* Keep writing where we are; try again one max_size later
		 * rather than on every record. */
		batch_fail(log, r);
		log->fsize = 0;
		return;
	}
	close(log->fd);
	log->fd = fd;
	log->fsize = 0;
	log->stats.rotations++;
}

/* Appends one record "<hdr><tag> <a><b>\n"; the body may span two pieces
 * (the kept partial line and the new bytes). */
static void append_record(struct rt_log *log, char tag, const char *a, size_t alen,
			  const char *b, size_t blen)
{
	size_t len = log->hlen + 2 + alen + blen + 1;
	uint64_t size = log->fsize + log->olen;
	if (size > 0 && size + len > log->max_size)
		rotate(log);
	if (OUT_CAP - log->olen < len)
		flush_out(log);
	char *o = log->out + log->olen;
	memcpy(o, log->hdr, log->hlen);
	o += log->hlen;
	*o++ = tag;
	*o++ = ' ';
	if (alen)
		memcpy(o, a, alen);
	if (blen)
		memcpy(o + alen, b, blen);
	o[alen + blen] = '\n';
	log->olen += len;
	log->orecs++;
}

/* Writes a body as P records of RT_LOG_LINE_MAX bytes and a last one
 * tagged final. */
static void append_split(struct rt_log *log, char final, const char *a, size_t alen,
			 const char *b, size_t blen)
{
	while (alen + blen > RT_LOG_LINE_MAX) {
		size_t ta = alen < RT_LOG_LINE_MAX ? alen : RT_LOG_LINE_MAX;
		size_t tb = RT_LOG_LINE_MAX - ta;
		append_record(log, 'P', a, ta, b, tb);
		a += ta;
		alen -= ta;
		b += tb;
		blen -= tb;
	}
	append_record(log, final, a, alen, b, blen);
}

static char *put_digits(char *p, unsigned long v, int width, char sep)
{
	for (int i = width - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	p[width] = sep;
	return p + width + 1;
}

/* "2026-12-01T17:26:04.123456789Z " into buf (TS_LEN + 1 bytes). */
static void stamp(struct rt_log *log, char *buf)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec < log->last.tv_sec ||
	    (ts.tv_sec == log->last.tv_sec && ts.tv_nsec < log->last.tv_nsec))
		ts = log->last;
	log->last = ts;
	gmtime_r(&ts.tv_sec, &tm);
	char *p = put_digits(buf, (unsigned long)tm.tm_year + 1900, 4, '-');
	p = put_digits(p, (unsigned long)tm.tm_mon + 1, 2, '-');
	p = put_digits(p, (unsigned long)tm.tm_mday, 2, 'T');
	p = put_digits(p, (unsigned long)tm.tm_hour, 2, ':');
	p = put_digits(p, (unsigned long)tm.tm_min, 2, ':');
	p = put_digits(p, (unsigned long)tm.tm_sec, 2, '.');
	p = put_digits(p, (unsigned long)ts.tv_nsec, 9, 'Z');
	*p = ' ';
}

/* One clock read per batch: every record of one read shares its time. */
static void batch_begin(struct rt_log *log, enum rt_log_stream stream, struct berth_err *err)
{
	stamp(log, log->hdr);
	memcpy(log->hdr + TS_LEN + 1, stream_names[stream], 6);
	log->hdr[TS_LEN + 7] = ' ';
	log->hlen = TS_LEN + 8;
	log->err = err;
	log->ret = 0;
}

static int batch_end(struct rt_log *log)
{
	flush_out(log);
	int r = log->ret;
	log->err = NULL;
	log->ret = 0;
	return r;
}

static int check_stream(const struct rt_log *log, enum rt_log_stream stream,
			struct berth_err *err)
{
	if (stream != RT_LOG_STDOUT && stream != RT_LOG_STDERR)
		return berth_errf(err, EINVAL, "log %s: unknown stream %d", log->name, (int)stream);
	return 0;
}

/* ---- lines -------------------------------------------------------------- */

/* A line ends: the partial part plus len bytes before the '\n'. */
static void end_line(struct rt_log *log, struct partial *pl, const char *s, size_t len)
{
	size_t plen = pl->len;
	if (len > 0 && s[len - 1] == '\r')
		len--;
	else if (len == 0 && plen > 0 && pl->buf[plen - 1] == '\r')
		plen--;
	append_split(log, 'F', pl->buf, plen, s, len);
	pl->len = 0;
}

/* Unterminated bytes: kept, and cut into P records once a full record's
 * worth is known not to end in "\r\n". */
static void keep_partial(struct rt_log *log, struct partial *pl, const char *s, size_t n)
{
	while (n > 0) {
		size_t take = PART_CAP - pl->len < n ? PART_CAP - pl->len : n;
		memcpy(pl->buf + pl->len, s, take);
		pl->len += take;
		s += take;
		n -= take;
		if (pl->len == PART_CAP && (n > 0 || pl->buf[PART_CAP - 1] != '\r')) {
			append_record(log, 'P', pl->buf, RT_LOG_LINE_MAX, NULL, 0);
			pl->buf[0] = pl->buf[RT_LOG_LINE_MAX];
			pl->len = 1;
		}
	}
}

int rt_log_feed(struct rt_log *log, enum rt_log_stream stream, const char *buf, size_t n,
		struct berth_err *err)
{
	int r = check_stream(log, stream, err);
	if (r < 0)
		return r;
	struct partial *pl = &log->part[stream];
	const char *p = buf, *end = buf + n;
	batch_begin(log, stream, err);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			keep_partial(log, pl, p, (size_t)(end - p));
			break;
		}
		end_line(log, pl, p, (size_t)(nl - p));
		p = nl + 1;
	}
	return batch_end(log);
}

int rt_log_flush_partial(struct rt_log *log, enum rt_log_stream stream, struct berth_err *err)
{
	int r = check_stream(log, stream, err);
	if (r < 0 || log->part[stream].len == 0)
		return r;
	struct partial *pl = &log->part[stream];
	batch_begin(log, stream, err);
	append_split(log, 'F', pl->buf, pl->len, NULL, 0);
	pl->len = 0;
	return batch_end(log);
}

static int read_some(struct rt_log *log, enum rt_log_stream stream, int fd, size_t want,
		     size_t *ret, struct berth_err *err)
{
	ssize_t n;
	do
		n = read(fd, log->rbuf, want);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		*ret = SIZE_MAX;
		return 0;
	}
	if (n < 0)
		return berth_errnof(err, errno, "log %s: read %s", log->name, stream_names[stream]);
	*ret = (size_t)n;
	return 0;
}

int rt_log_drain_fd(struct rt_log *log, enum rt_log_stream stream, int fd,
		    struct berth_err *err)
{
	int r = check_stream(log, stream, err);
	if (r < 0)
		return r;
	/* A full disk must not stall the container: after a failed write
	 * keep draining, and report that first failure at the end. */
	int failed = 0;
	for (size_t budget = RT_LOG_DRAIN_BUDGET; budget > 0;) {
		struct berth_err *e = failed ? NULL : err;
		size_t n = 0;
		r = read_some(log, stream, fd, budget < READ_CAP ? budget : READ_CAP, &n, e);
		if (r < 0)
			return failed ? failed : r;
		if (n == SIZE_MAX)
			return failed ? failed : RT_LOG_DRAINED;
		if (n == 0) {
			r = rt_log_flush_partial(log, stream, e);
			return failed ? failed : r < 0 ? r : RT_LOG_EOF;
		}
		budget -= n;
		r = rt_log_feed(log, stream, log->rbuf, n, e);
		if (r < 0 && !failed)
			failed = r;
	}
	return failed ? failed : RT_LOG_MORE;
}

/* ---- open / close ------------------------------------------------------- */

static int check_name(const char *name, struct berth_err *err)
{
	size_t len = strlen(name);
	if (len == 0 || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return berth_errf(err, EINVAL, "log \"%s\": invalid container name for a file", name);
	if (len > NAME_LEN_MAX)
		return berth_errf(err, ENAMETOOLONG, "log %.32s…: container name longer than %d bytes",
				  name, NAME_LEN_MAX);
	return 0;
}

static int check_opts(const char *name, const struct rt_log_opts *opts, struct berth_err *err)
{
	if (opts->max_size == 0 || opts->max_size > INT64_MAX)
		return berth_errf(err, EINVAL, "log %s: max-size %llu out of range", name,
				  (unsigned long long)opts->max_size);
	if (opts->max_files < 1 || opts->max_files > RT_LOG_MAX_FILES_LIMIT)
		return berth_errf(err, EINVAL, "log %s: max-file %u out of range (1 to %u)", name,
				  opts->max_files, RT_LOG_MAX_FILES_LIMIT);
	return 0;
}

static int alloc_buffers(struct rt_log *log, struct berth_err *err)
{
	log->out = malloc(OUT_CAP);
	log->rbuf = malloc(READ_CAP);
	log->part[0].buf = malloc(PART_CAP);
	log->part[1].buf = malloc(PART_CAP);
	if (!log->out || !log->rbuf || !log->part[0].buf || !log->part[1].buf)
		return berth_errf(err, ENOMEM, "log %s: buffers", log->name);
	return 0;
}

DEFINE_CLEANUP_FUNC(struct rt_log, rt_log_close)

int rt_log_open(int dirfd, const char *name, const struct rt_log_opts *opts,
		struct rt_log **ret, struct berth_err *err)
{
	int r = check_name(name, err);
	if (r == 0)
		r = check_opts(name, opts, err);
	if (r < 0)
		return r;
	_cleanup_(rt_log_closep) struct rt_log *log = calloc(1, sizeof(*log));
	if (!log)
		return berth_errf(err, ENOMEM, "log %s", name);
	log->fd = -1;
	log->dirfd = dirfd == AT_FDCWD ? open(".", O_PATH | O_DIRECTORY | O_CLOEXEC)
				       : fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (log->dirfd < 0)
		return berth_errnof(err, errno, "log %s: directory", name);
	log->name = strdup(name);
	log->max_size = opts->max_size;
	log->max_files = opts->max_files;
	if (!log->name)
		return berth_errf(err, ENOMEM, "log %s", name);
	r = alloc_buffers(log, err);
	if (r == 0)
		r = open_file(log, 0, 0, &log->fd, err);
	if (r < 0)
		return r;
	struct stat st;
	if (fstat(log->fd, &st) < 0)
		return berth_errnof(err, errno, "log %s: stat %s.log", name, name);
	log->fsize = (uint64_t)st.st_size;
	*ret = TAKE_PTR(log);
	return 0;
}

void rt_log_get_stats(const struct rt_log *log, struct rt_log_stats *ret)
{
	*ret = log->stats;
}

void rt_log_close(struct rt_log *log)
{
	if (!log)
		return;
	if (log->fd >= 0) {
		rt_log_flush_partial(log, RT_LOG_STDOUT, NULL);
		rt_log_flush_partial(log, RT_LOG_STDERR, NULL);
		close(log->fd);
	}
	if (log->dirfd >= 0)
		close(log->dirfd);
	free(log->part[0].buf);
	free(log->part[1].buf);
	free(log->rbuf);
	free(log->out);
	free(log->name);
	free(log);
}
