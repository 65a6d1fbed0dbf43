/* runtime/log: CRI log records, partial lines, rotation, option parsing,
 * and a 100 MB burst through real pipes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "runtime/log.h"

#define HDR_LEN 40 /* "<30-char timestamp> stdout F " */

struct fixture {
	char dir[64];
	int dirfd;
};

struct rec {
	char ts[31];
	char stream[7];
	char tag;
	const char *body;
	size_t len;
};

struct recs {
	char **texts;    /* file contents, which the bodies point into */
	size_t ntexts;
	struct rec *v;
	size_t n;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/berth-test-log-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->dirfd = open(f->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	*state = f;
	return f->dirfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	close(f->dirfd);
	int r = berth_rm_rf_at(AT_FDCWD, f->dir, &err);
	free(f);
	return r;
}

static struct rt_log *open_log(struct fixture *f, uint64_t max_size, unsigned max_files)
{
	struct rt_log_opts o = { .max_size = max_size, .max_files = max_files };
	struct rt_log *log = NULL;
	struct berth_err err = { 0 };
	int r = rt_log_open(f->dirfd, "app", &o, &log, &err);
	if (r < 0)
		fail_msg("rt_log_open: %s", err.msg);
	return log;
}

static void feed(struct rt_log *log, enum rt_log_stream s, const char *text)
{
	struct berth_err err = { 0 };
	int r = rt_log_feed(log, s, text, strlen(text), &err);
	if (r < 0)
		fail_msg("rt_log_feed: %s", err.msg);
}

static bool file_exists(struct fixture *f, const char *name)
{
	struct stat st;
	return fstatat(f->dirfd, name, &st, 0) == 0;
}

static size_t file_size(struct fixture *f, const char *name)
{
	struct stat st;
	assert_int_equal(fstatat(f->dirfd, name, &st, 0), 0);
	return (size_t)st.st_size;
}

/* Checks the fixed layout of one record and points rec into line. */
static void parse_record(const char *line, size_t len, struct rec *rec)
{
	if (len < HDR_LEN || line[30] != ' ' || line[37] != ' ' || line[39] != ' ')
		fail_msg("bad record: %.*s", (int)(len < 80 ? len : 80), line);
	memcpy(rec->ts, line, 30);
	rec->ts[30] = '\0';
	memcpy(rec->stream, line + 31, 6);
	rec->stream[6] = '\0';
	rec->tag = line[38];
	if (strcmp(rec->stream, "stdout") != 0 && strcmp(rec->stream, "stderr") != 0)
		fail_msg("bad stream in: %.60s", line);
	if (rec->tag != 'F' && rec->tag != 'P')
		fail_msg("bad tag in: %.60s", line);
	rec->body = line + HDR_LEN;
	rec->len = len - HDR_LEN;
}

/* Appends the records of dirfd/name to *rs; the file must end in '\n'. */
static void read_records(struct fixture *f, const char *name, struct recs *rs)
{
	struct berth_err err = { 0 };
	char *text;
	size_t len;
	if (berth_read_file_at(f->dirfd, name, 1u << 30, &text, &len, &err) < 0)
		fail_msg("read %s: %s", name, err.msg);
	assert_true(len == 0 || text[len - 1] == '\n');
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	rs->v = realloc(rs->v, (rs->n + lines + 1) * sizeof(*rs->v));
	assert_non_null(rs->v);
	for (char *p = text, *end = text + len; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		parse_record(p, (size_t)(nl - p), &rs->v[rs->n++]);
		p = nl + 1;
	}
	rs->texts = realloc(rs->texts, (rs->ntexts + 1) * sizeof(*rs->texts));
	assert_non_null(rs->texts);
	rs->texts[rs->ntexts++] = text;
}

static void recs_free(struct recs *rs)
{
	for (size_t i = 0; i < rs->ntexts; i++)
		free(rs->texts[i]);
	free(rs->texts);
	free(rs->v);
	memset(rs, 0, sizeof(*rs));
}

static void assert_rec(const struct rec *r, const char *stream, char tag, const char *body)
{
	assert_string_equal(r->stream, stream);
	assert_int_equal(r->tag, tag);
	assert_int_equal(r->len, strlen(body));
	assert_memory_equal(r->body, body, r->len);
}

/* ---- records ------------------------------------------------------------ */

static void test_full_records(void **state)
{
	struct fixture *f = *state;
	struct rt_log *log = open_log(f, 1u << 20, 2);
	feed(log, RT_LOG_STDOUT, "hello\nworld\n");
	struct recs rs = { 0 };
	read_records(f, "app.log", &rs);
	assert_int_equal(rs.n, 2);
	assert_rec(&rs.v[0], "stdout", 'F', "hello");
	assert_rec(&rs.v[1], "stdout", 'F', "world");
	struct rt_log_stats st;
	rt_log_get_stats(log, &st);
	assert_int_equal(st.records, 2);
	assert_int_equal(st.bytes, file_size(f, "app.log"));
	assert_int_equal(file_size(f, "app.log"), 2 * HDR_LEN + 12);
	struct stat sb;
	assert_int_equal(fstatat(f->dirfd, "app.log", &sb, 0), 0);
	assert_int_equal(sb.st_mode & 07777, 0640);
	recs_free(&rs);
	rt_log_close(log);
}

static void test_timestamp_format_and_order(void **state)
{
	struct fixture *f = *state;
	struct rt_log *log = open_log(f, 1u << 20, 2);
	for (int i = 0; i < 200; i++)
		feed(log, i % 2 ? RT_LOG_STDERR : RT_LOG_STDOUT, "tick\n");
	rt_log_close(log);

	struct berth_err err = { 0 };
	char *text;
	size_t len;
	assert_int_equal(berth_read_file_at(f->dirfd, "app.log", 1u << 20, &text, &len, &err), 0);
	regex_t re;
	assert_int_equal(regcomp(&re,
				 "^[0-9]{4}-(0[1-9]|1[0-2])-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]"
				 "\\.[0-9]{9}Z (stdout|stderr) [FP] tick$",
				 REG_EXTENDED | REG_NOSUB), 0);
	char prev[31] = "";
	int lines = 0;
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save), lines++) {
		if (regexec(&re, line, 0, NULL, 0) != 0)
			fail_msg("not a CRI record: %s", line);
		/* Fixed width, so text order is time order. */
		assert_true(strncmp(prev, line, 30) <= 0);
		memcpy(prev, line, 30);
		prev[30] = '\0';
	}
	assert_int_equal(lines, 200);
	/* Within a few seconds of now. */
	char now[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(now, sizeof(now), "%Y-%m-%dT%H", &tm);
	assert_true(strncmp(prev, now, 10) == 0);
	regfree(&re);
	free(text);
}

static void test_streams_interleave_in_feed_order(void **state)
{
	struct fixture *f = *state;
	struct rt_log *log = open_log(f, 1u << 20, 2);
	feed(log, RT_LOG_STDOUT, "o1\n");
	feed(log, RT_LOG_STDERR, "e1\ne2\n");
	feed(log, RT_LOG_STDOUT, "o2\n");
	feed(log, RT_LOG_STDERR, "e3\n");
	struct recs rs = { 0 };
	read_records(f, "app.log", &rs);
	assert_int_equal(rs.n, 5);
	assert_rec(&rs.v[0], "stdout", 'F', "o1");
	assert_rec(&rs.v[1], "stderr", 'F', "e1");
	assert_rec(&rs.v[2], "stderr", 'F', "e2");
	assert_rec(&rs.v[3], "stdout", 'F', "o2");
	assert_rec(&rs.v[4], "stderr", 'F', "e3");
	recs_free(&rs);
	rt_log_close(log);
}

static void test_partial_lines_across_feeds(void **state)
{
	struct fixture *f = *state;
	struct rt_log *log = open_log(f, 1u << 20, 2);
	feed(log, RT_LOG_STDOUT, "hel");
	assert_int_equal(file_size(f, "app.log"), 0);
	feed(log, RT_LOG_STDOUT, "lo\nwor");
	feed(log, RT_LOG_STDERR, "err ");   /* its own partial line */
	feed(log, RT_LOG_STDOUT, "ld");
	feed(log, RT_LOG_STDERR, "line\n");
	feed(log, RT_LOG_STDOUT, "\n");
	struct recs rs = { 0 };
	read_records(f, "app.log", &rs);
	assert_int_equal(rs.n, 3);
	assert_rec(&rs.v[0], "stdout", 'F', "hello");
	assert_rec(&rs.v[1], "stderr", 'F', "err line");
	assert_rec(&rs.v[2], "stdout", 'F', "world");
	recs_free(&rs);
	rt_log_close(log);
}

static void test_empty_lines(void **state)
{
	struct fixture *f = *state;
	struct rt_log *log = open_log(f, 1u << 20, 2);
	feed(log, RT_LOG_STDOUT, "\n\na\n\n");
	feed(log, RT_LOG_STDERR, "");
	struct recs rs = { 0 };
	read_records(f, "app.log", &rs);
	assert_int_equal(rs.n, 4);
	assert_rec(&rs.v[0], "stdout", 'F', "");
	assert_rec(&rs.v[1], "stdout", 'F', "");
	assert_rec(&rs.v[2], "stdout", 'F', "a");
	assert_rec(&rs.v[3], "stdout", 'F', "");
	recs_free(&rs);
	rt_log_close(log);
}

/* Feeds a line of len bytes (plus "\n" when terminated), chunk bytes at a
 * time, and returns the records it made. */
static void long_line(struct fixture *f, size_t len, size_t chunk, struct recs *rs)
{
	struct rt_log *log = open_log(f, 1u << 30, 2);
	struct berth_err err = { 0 };
	char *buf = malloc(len + 1);
	assert_non_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)('a' + i % 26);
	buf[len] = '\n';
	for (size_t off = 0; off < len + 1; off += chunk) {
		size_t n = len + 1 - off < chunk ? len + 1 - off : chunk;
		assert_int_equal(rt_log_feed(log, RT_LOG_STDOUT, buf + off, n, &err), 0);
	}
	rt_log_close(log);
	read_records(f, "app.log", rs);
	/* The bodies put back together are the line. */
	size_t total = 0;
	for (size_t i = 0; i < rs->n; i++) {
		assert_memory_equal(rs->v[i].body, buf + total, rs->v[i].len);
		total += rs->v[i].len;
	}
	assert_int_equal(total, len);
	free(buf);
	assert_int_equal(unlinkat(f->dirfd, "app.log", 0), 0);
}

static void test_long_line_split(void **state)
{
	struct fixture *f = *state;
	const size_t chunks[] = { 1u << 20, 4096, 1000, 16385, 7 };
	for (size_t c = 0; c < ARRAY_SIZE(chunks); c++) {
		struct recs rs = { 0 };
		long_line(f, 40000, chunks[c], &rs);
		assert_int_equal(rs.n, 3);
		assert_int_equal(rs.v[0].tag, 'P');
		assert_int_equal(rs.v[0].len, RT_LOG_LINE_MAX);
		assert_int_equal(rs.v[1].tag, 'P');
		assert_int_equal(rs.v[1].len, RT_LOG_LINE_MAX);
		assert_int_equal(rs.v[2].tag, 'F');
		assert_int_equal(rs.v[2].len, 40000 - 2 * RT_LOG_LINE_MAX);
		recs_free(&rs);
	}
	/* Exactly the bound is one F record; one byte more is P + F. */
	struct recs rs = { 0 };
	long_line(f, RT_LOG_LINE_MAX, 4096, &rs);
	assert_int_equal(rs.n, 1);
	assert_int_equal(rs.v[0].tag, 'F');
	recs_free(&rs);
	long_line(f, RT_LOG_LINE_MAX + 1, 4096, &rs);
	assert_int_equal(rs.n, 2);
	assert_int_equal(rs.v[0].tag, 'P');
	assert_int_equal(rs.v[1].tag, 'F');
	assert_int_equal(rs.v[1].len, 1);
	recs_free(&rs);
	/* Two full records: the last P is followed by an empty F. */
	long_line(f, 2 * RT_LOG_LINE_MAX, 3000, &rs);
	assert_int_equal(rs.n, 2);
	assert_int_equal(rs.v[0].tag, 'P');
	assert_int_equal(rs.v[1].tag, 'F');
	assert_int_equal(rs.v[1].len, RT_LOG_LINE_MAX);
	recs_free(&rs);
}

static void test_eof_flushes_partial_as_full(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	struct rt_log *log = open_log(f, 1u << 20, 2);
	feed(log, RT_LOG_STDOUT, "done\nno newline");
	feed(log, RT_LOG_STDERR, "err tail");
	assert_int_equal(rt_log_flush_partial(log, RT_LOG_STDOUT, &err), 0);
	assert_int_equal(rt_log_flush_partial(log, RT_LOG_STDOUT, &err), 0); /* nothing left */
	assert_int_equal(rt_log_flush_partial(log, 7, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "unknown stream"));
	rt_log_close(log); /* flushes stderr's partial line too */
	struct recs rs = { 0 };
	read_records(f, "app.log", &rs);
	assert_int_equal(rs.n, 3);
	assert_rec(&rs.v[0], "stdout", 'F', "done");
	assert_rec(&rs.v[1], "stdout", 'F', "no newline");
	assert_rec(&rs.v[2], "stderr", 'F', "err tail");
	recs_free(&rs);
}

/* As containerd: the '\r' of a "\r\n" terminator goes, any other stays. */
static void test_crlf(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	struct rt_log *log = open_log(f, 1u << 20, 2);
	feed(log, RT_LOG_STDOUT, "dos\r\n");
	feed(log, RT_LOG_STDOUT, "bar\rspin\n");
	feed(log, RT_LOG_STDOUT, "split\r");
	feed(log, RT_LOG_STDOUT, "\n\r\n");
	feed(log, RT_LOG_STDOUT, "two\r\r\n");
	feed(log, RT_LOG_STDOUT, "cr at eof\r");
	assert_int_equal(rt_log_flush_partial(log, RT_LOG_STDOUT, &err), 0);
	rt_log_close(log);
	struct recs rs = { 0 };
	read_records(f, "app.log", &rs);
	assert_int_equal(rs.n, 6);
	assert_rec(&rs.v[0], "stdout", 'F', "dos");
	assert_rec(&rs.v[1], "stdout", 'F', "bar\rspin");
	assert_rec(&rs.v[2], "stdout", 'F', "split");
	assert_rec(&rs.v[3], "stdout", 'F', "");
	assert_rec(&rs.v[4], "stdout", 'F', "two\r");
	assert_rec(&rs.v[5], "stdout", 'F', "cr at eof\r");
	recs_free(&rs);
}

/* A "\r\n" straddling the record bound stays one terminator. */
static void test_crlf_at_line_bound(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	size_t n = RT_LOG_LINE_MAX;
	char *buf = malloc(n + 2);
	assert_non_null(buf);
	memset(buf, 'x', n);
	buf[n] = '\r';
	buf[n + 1] = '\n';
	struct rt_log *log = open_log(f, 1u << 20, 2);
	assert_int_equal(rt_log_feed(log, RT_LOG_STDOUT, buf, n + 1, &err), 0);
	assert_int_equal(file_size(f, "app.log"), 0);
	assert_int_equal(rt_log_feed(log, RT_LOG_STDOUT, buf + n + 1, 1, &err), 0);
	/* The same bytes without the '\n': the '\r' is text of a P/F pair. */
	assert_int_equal(rt_log_feed(log, RT_LOG_STDOUT, buf, n + 1, &err), 0);
	assert_int_equal(rt_log_feed(log, RT_LOG_STDOUT, "y\n", 2, &err), 0);
	rt_log_close(log);
	struct recs rs = { 0 };
	read_records(f, "app.log", &rs);
	assert_int_equal(rs.n, 3);
	assert_int_equal(rs.v[0].tag, 'F');
	assert_int_equal(rs.v[0].len, n);
	assert_int_equal(rs.v[1].tag, 'P');
	assert_int_equal(rs.v[1].len, n);
	assert_rec(&rs.v[2], "stdout", 'F', "\ry");
	recs_free(&rs);
	free(buf);
}

/* ---- rotation ----------------------------------------------------------- */

/* Writes count numbered lines in uneven feeds. */
static void write_numbered(struct rt_log *log, int count)
{
	char buf[4096];
	size_t len = 0;
	for (int i = 0; i < count; i++) {
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "line %05d%s\n", i,
					i % 7 == 0 ? " with a longer tail" : "");
		if (i % 5 == 4 || i == count - 1 || len > sizeof(buf) - 64) {
			struct berth_err err = { 0 };
			/* Cut mid-line at times, to rotate with partials kept. */
			size_t cut = i % 3 == 0 && len > 4 ? len - 3 : len;
			assert_int_equal(rt_log_feed(log, RT_LOG_STDOUT, buf, cut, &err), 0);
			memmove(buf, buf + cut, len - cut);
			len -= cut;
		}
	}
	assert_int_equal(len, 0);
}

/* Reads files .N … .1 and .log in age order; checks each against max_size
 * and that the lines run on with no gap up to count-1. */
static int check_rotated(struct fixture *f, unsigned max_files, size_t max_size, int count)
{
	struct recs rs = { 0 };
	char name[64];
	for (int i = (int)max_files + 2; i >= 0; i--) {
		if (i == 0)
			snprintf(name, sizeof(name), "app.log");
		else
			snprintf(name, sizeof(name), "app.log.%d", i);
		if (!file_exists(f, name))
			continue;
		if ((unsigned)i >= max_files)
			fail_msg("%s exists with max_files %u", name, max_files);
		assert_true(file_size(f, name) <= max_size);
		read_records(f, name, &rs);
	}
	assert_true(rs.n > 0);
	int first = -1;
	for (size_t i = 0; i < rs.n; i++) {
		int seq;
		assert_int_equal(rs.v[i].tag, 'F');
		assert_int_equal(sscanf(rs.v[i].body, "line %05d", &seq), 1);
		if (first < 0)
			first = seq;
		assert_int_equal(seq, first + (int)i);
	}
	assert_int_equal(first + (int)rs.n, count);
	int n = (int)rs.n;
	recs_free(&rs);
	return n;
}

static void test_rotation_caps_files(void **state)
{
	struct fixture *f = *state;
	struct rt_log *log = open_log(f, 1000, 3);
	write_numbered(log, 500);
	struct rt_log_stats st;
	rt_log_get_stats(log, &st);
	rt_log_close(log);
	assert_int_equal(st.records, 500);
	assert_true(st.rotations > 10);
	assert_true(file_exists(f, "app.log.2"));
	assert_false(file_exists(f, "app.log.new"));
	int kept = check_rotated(f, 3, 1000, 500);
	assert_true(kept < 500 && kept > 30);
}

static void test_rotation_conserves_lines(void **state)
{
	struct fixture *f = *state;
	struct rt_log *log = open_log(f, 1000, RT_LOG_MAX_FILES_LIMIT);
	write_numbered(log, 500);
	struct rt_log_stats st;
	rt_log_get_stats(log, &st);
	rt_log_close(log);
	assert_int_equal(check_rotated(f, RT_LOG_MAX_FILES_LIMIT, 1000, 500), 500);
	/* A file set of n rotations has n + 1 files. */
	char name[32];
	snprintf(name, sizeof(name), "app.log.%llu", (unsigned long long)st.rotations);
	assert_true(file_exists(f, name));
}

static void test_rotation_single_file_and_big_record(void **state)
{
	struct fixture *f = *state;
	struct rt_log *log = open_log(f, 60, 1);
	feed(log, RT_LOG_STDOUT, "first\n"); /* 46 bytes: the next one rotates */
	feed(log, RT_LOG_STDOUT, "second\n");
	assert_false(file_exists(f, "app.log.1"));
	struct recs rs = { 0 };
	read_records(f, "app.log", &rs);
	assert_int_equal(rs.n, 1);
	assert_rec(&rs.v[0], "stdout", 'F', "second");
	recs_free(&rs);
	/* A record bigger than max_size gets a file to itself, whole. */
	char big[300];
	memset(big, 'b', sizeof(big) - 2);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\0';
	feed(log, RT_LOG_STDOUT, big);
	feed(log, RT_LOG_STDOUT, "after\n");
	rt_log_close(log);
	read_records(f, "app.log", &rs);
	assert_int_equal(rs.n, 1);
	assert_rec(&rs.v[0], "stdout", 'F', "after");
	recs_free(&rs);
}

static void test_reopen_appends_and_counts_size(void **state)
{
	struct fixture *f = *state;
	struct rt_log *log = open_log(f, 120, 2);
	feed(log, RT_LOG_STDOUT, "one\ntwo\n");
	rt_log_close(log);
	log = open_log(f, 120, 2);
	feed(log, RT_LOG_STDOUT, "three\n"); /* 2×44 + 46 > 120: rotates first */
	rt_log_close(log);
	struct recs rs = { 0 };
	read_records(f, "app.log.1", &rs);
	assert_int_equal(rs.n, 2);
	recs_free(&rs);
	read_records(f, "app.log", &rs);
	assert_int_equal(rs.n, 1);
	assert_rec(&rs.v[0], "stdout", 'F', "three");
	recs_free(&rs);
}

/* ---- errors ------------------------------------------------------------- */

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	struct rt_log_opts o;
	struct rt_log *log = NULL;
	struct berth_err err = { 0 };
	rt_log_opts_init(&o);
	assert_int_equal(o.max_size, 10000000);
	assert_int_equal(o.max_files, 5);
	assert_int_equal(rt_log_open(f->dirfd, "a/b", &o, &log, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "a/b"));
	assert_int_equal(rt_log_open(f->dirfd, "", &o, &log, &err), -EINVAL);
	assert_int_equal(rt_log_open(f->dirfd, "..", &o, &log, &err), -EINVAL);
	char longname[300];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(rt_log_open(f->dirfd, longname, &o, &log, &err), -ENAMETOOLONG);
	o.max_files = 0;
	assert_int_equal(rt_log_open(f->dirfd, "app", &o, &log, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "max-file"));
	rt_log_opts_init(&o);
	assert_int_equal(rt_log_open(-1, "app", &o, &log, &err), -EBADF);
	assert_null(log);
	assert_int_equal(mkdirat(f->dirfd, "dir.log", 0700), 0);
	assert_int_equal(rt_log_open(f->dirfd, "dir", &o, &log, &err), -EISDIR);
	assert_non_null(strstr(err.msg, "dir.log"));
	assert_null(log);
	rt_log_close(NULL);
}

/* A write that fails half-way (here: at RLIMIT_FSIZE, as at a full disk)
 * is reported, and the file is cut back to its last whole record. */
static int fill_past_limit(struct fixture *f)
{
	struct berth_err err = { 0 };
	struct rlimit rl = { .rlim_cur = 200, .rlim_max = RLIM_INFINITY };
	char batch[256];
	size_t len = 0;
	const size_t bodies[] = { 29, 50, 53 }; /* records of 70, 91 and 94 bytes */
	for (size_t i = 0; i < ARRAY_SIZE(bodies); i++) {
		memset(batch + len, (char)('c' + i), bodies[i]);
		len += bodies[i];
		batch[len++] = '\n';
	}
	signal(SIGXFSZ, SIG_IGN);
	struct rt_log *log = open_log(f, 1u << 20, 2);
	if (setrlimit(RLIMIT_FSIZE, &rl) < 0 || rt_log_feed(log, RT_LOG_STDOUT, "a\nb\n", 4, &err) < 0)
		return 10;
	/* 84 bytes in the file; 116 of the 255 fit under the limit. */
	int r = rt_log_feed(log, RT_LOG_STDOUT, batch, len, &err);
	struct rt_log_stats st;
	rt_log_get_stats(log, &st);
	if (r != -EFBIG || !strstr(err.msg, "log app: write app.log"))
		return 11;
	if (st.records != 3 || st.bytes != 154 || st.dropped_bytes != 185)
		return 12;
	/* Still usable after the failure. */
	if (rt_log_feed(log, RT_LOG_STDERR, "z\n", 2, &err) < 0)
		return 13;
	rt_log_close(log);
	return 0;
}

static void test_write_failure_keeps_whole_records(void **state)
{
	struct fixture *f = *state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fill_past_limit(f));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	struct recs rs = { 0 };
	read_records(f, "app.log", &rs);
	assert_int_equal(rs.n, 4);
	assert_int_equal(rs.v[2].len, 29);
	assert_rec(&rs.v[3], "stderr", 'F', "z");
	recs_free(&rs);
}

/* rt_log_drain_fd() stops at its budget so one chatty container cannot
 * starve the loop, tells EAGAIN from EOF, and flushes the tail at EOF. */
static void test_drain_budget_again_eof(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(fcntl(p[1], F_SETPIPE_SZ, RT_LOG_DRAIN_BUDGET), (int)RT_LOG_DRAIN_BUDGET);
	char *buf = malloc(RT_LOG_DRAIN_BUDGET);
	assert_non_null(buf);
	for (size_t i = 0; i < RT_LOG_DRAIN_BUDGET; i++)
		buf[i] = i % 64 == 63 ? '\n' : 'q';
	assert_int_equal(write(p[1], buf, RT_LOG_DRAIN_BUDGET), (ssize_t)RT_LOG_DRAIN_BUDGET);
	struct rt_log *log = open_log(f, 1u << 30, 2);
	assert_int_equal(rt_log_drain_fd(log, RT_LOG_STDERR, p[0], &err), RT_LOG_MORE);
	assert_int_equal(rt_log_drain_fd(log, RT_LOG_STDERR, p[0], &err), RT_LOG_DRAINED);
	assert_int_equal(write(p[1], "tail", 4), 4);
	assert_int_equal(rt_log_drain_fd(log, RT_LOG_STDERR, p[0], &err), RT_LOG_DRAINED);
	close(p[1]);
	assert_int_equal(rt_log_drain_fd(log, RT_LOG_STDERR, p[0], &err), RT_LOG_EOF);
	assert_int_equal(rt_log_drain_fd(log, RT_LOG_STDERR, p[0], &err), RT_LOG_EOF);
	/* Not a readable fd: a clear error. */
	assert_int_equal(rt_log_drain_fd(log, RT_LOG_STDOUT, -1, &err), -EBADF);
	assert_string_equal(err.msg, "log app: read stdout: Bad file descriptor");
	struct rt_log_stats st;
	rt_log_get_stats(log, &st);
	rt_log_close(log);
	close(p[0]);
	free(buf);
	assert_int_equal(st.records, RT_LOG_DRAIN_BUDGET / 64 + 1);
	struct recs rs = { 0 };
	read_records(f, "app.log", &rs);
	assert_int_equal(rs.n, RT_LOG_DRAIN_BUDGET / 64 + 1);
	assert_rec(&rs.v[rs.n - 1], "stderr", 'F', "tail");
	recs_free(&rs);
}

/* ---- options ------------------------------------------------------------ */

static void test_parse_size(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		uint64_t want;
	} ok[] = {
		{ "10m", 10000000 },     { "10M", 10000000 },    { "10mb", 10000000 },
		{ "10MB", 10000000 },    { "10MiB", 10000000 },  { "1k", 1000 },
		{ "1kb", 1000 },         { "1KB", 1000 },        { "512", 512 },
		{ "100b", 100 },         { "1.5m", 1500000 },    { "2 g", 2000000000 },
		{ "1g", 1000000000 },    { "1t", 1000000000000ull },
		{ "3p", 3000000000000000ull },                   { "0", 0 },
		{ "0.5k", 500 },         { "1.0001k", 1000 },    { "007k", 7000 },
		{ "9223372036854775807", INT64_MAX },
	};
	static const struct {
		const char *in;
		int code;
	} bad[] = {
		{ "", -EINVAL },         { "m", -EINVAL },       { "10x", -EINVAL },
		{ "-1", -EINVAL },       { "1.", -EINVAL },      { ".5", -EINVAL },
		{ "10mbb", -EINVAL },    { "1e6", -EINVAL },     { " 10", -EINVAL },
		{ "10  m", -EINVAL },    { "1.2.3", -EINVAL },   { "10kk", -EINVAL },
		{ "99999999999999999999", -ERANGE },
		{ "10000p", -ERANGE },   { "9223372036854775808", -ERANGE },
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		struct berth_err err = { 0 };
		uint64_t v = 1;
		if (rt_log_parse_size(ok[i].in, &v, &err) < 0 || v != ok[i].want)
			fail_msg("size \"%s\": got %llu (%s), want %llu", ok[i].in,
				 (unsigned long long)v, err.msg, (unsigned long long)ok[i].want);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct berth_err err = { 0 };
		uint64_t v = 42;
		int r = rt_log_parse_size(bad[i].in, &v, &err);
		if (r != bad[i].code || v != 42)
			fail_msg("size \"%s\": got %d, want %d", bad[i].in, r, bad[i].code);
		char quoted[64];
		snprintf(quoted, sizeof(quoted), "\"%s\"", bad[i].in);
		assert_non_null(strstr(err.msg, quoted));
	}
}

static void test_parse_max_file_and_options(void **state)
{
	(void)state;
	struct berth_err err = { 0 };
	unsigned n = 0;
	assert_int_equal(rt_log_parse_max_file("1", &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rt_log_parse_max_file("1000", &n, &err), 0);
	assert_int_equal(n, 1000);
	const char *bad[] = { "0", "-1", "", "abc", "1001", "5x", " 5", "99999999999999999999" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		n = 7;
		assert_int_equal(rt_log_parse_max_file(bad[i], &n, &err), -EINVAL);
		assert_int_equal(n, 7);
	}

	struct rt_log_opts o;
	rt_log_opts_init(&o);
	assert_int_equal(rt_log_opts_set(&o, "max-size", "1k", &err), 0);
	assert_int_equal(rt_log_opts_set(&o, "max-file", "3", &err), 0);
	assert_int_equal(o.max_size, 1000);
	assert_int_equal(o.max_files, 3);
	assert_int_equal(rt_log_opts_set(&o, "max-size", "ten", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "log option max-size: size \"ten\": invalid"));
	assert_int_equal(rt_log_opts_set(&o, "max-size", "0", &err), -EINVAL);
	assert_string_equal(err.msg, "log option max-size \"0\": must be positive");
	assert_int_equal(rt_log_opts_set(&o, "max-file", "0", &err), -EINVAL);
	assert_string_equal(err.msg, "log option max-file \"0\": want an integer from 1 to 1000");
	assert_int_equal(rt_log_opts_set(&o, "compress", "true", &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "compress"));
	assert_int_equal(o.max_size, 1000);
	assert_int_equal(o.max_files, 3);
}

/* ---- throughput --------------------------------------------------------- */

#define BURST_BYTES 100000000u /* 100 MB of 100-byte lines */
#define LINE_BYTES 100

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Line seq of a stream: "<o|e> <9-digit seq> xxx…\n", LINE_BYTES long. */
static void make_line(char *p, char tag, unsigned seq)
{
	snprintf(p, 13, "%c %09u ", tag, seq);
	memset(p + 12, 'x', LINE_BYTES - 13);
	p[LINE_BYTES - 1] = '\n';
}

#ifdef __SANITIZE_ADDRESS__
#define FEED_LIMIT_S 30.0
#else
#define FEED_LIMIT_S 3.0
#endif

static void test_feed_throughput(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	enum { CHUNK_LINES = 655 }; /* one 64 KiB pipe read */
	char *chunk = malloc(CHUNK_LINES * LINE_BYTES);
	assert_non_null(chunk);
	for (unsigned i = 0; i < CHUNK_LINES; i++)
		make_line(chunk + i * LINE_BYTES, 'o', i);
	struct rt_log *log = open_log(f, 1u << 30, 2);
	double t0 = now_s();
	for (size_t done = 0; done < BURST_BYTES; done += CHUNK_LINES * LINE_BYTES) {
		assert_int_equal(rt_log_feed(log, RT_LOG_STDOUT, chunk, CHUNK_LINES * LINE_BYTES,
					     &err), 0);
	}
	double dt = now_s() - t0;
	struct rt_log_stats st;
	rt_log_get_stats(log, &st);
	rt_log_close(log);
	print_message("feed: 100 MB of 100-byte lines in %.3f s (%.0f MB/s), %llu records\n", dt,
		      BURST_BYTES / 1e6 / dt, (unsigned long long)st.records);
	assert_true(dt < FEED_LIMIT_S);
	free(chunk);
}

/* The child: 50 MB of numbered lines on each pipe, written in odd-sized
 * pieces so lines straddle reads, as fast as the pipes take them. */
static void burst_child(int out, int errfd)
{
	enum { PIECE = 65521 };
	static char buf[2][PIECE + LINE_BYTES];
	size_t len[2] = { 0, 0 };
	unsigned seq[2] = { 0, 0 };
	const unsigned per_stream = BURST_BYTES / LINE_BYTES / 2;
	int fds[2] = { out, errfd };
	for (unsigned i = 0; i < 2 * per_stream; i++) {
		int s = (int)(i % 2);
		make_line(buf[s] + len[s], s ? 'e' : 'o', seq[s]++);
		len[s] += LINE_BYTES;
		bool last = seq[s] == per_stream;
		if (len[s] >= PIECE || last) {
			size_t n = last ? len[s] : PIECE;
			if (write(fds[s], buf[s], n) != (ssize_t)n)
				_exit(20);
			memmove(buf[s], buf[s] + n, len[s] - n);
			len[s] -= n;
		}
	}
	_exit(0);
}

static void pump(struct rt_log *log, int rd[2])
{
	struct berth_err err = { 0 };
	bool open_[2] = { true, true };
	while (open_[0] || open_[1]) {
		struct pollfd p[2] = { { .fd = open_[0] ? rd[0] : -1, .events = POLLIN },
				       { .fd = open_[1] ? rd[1] : -1, .events = POLLIN } };
		assert_true(poll(p, 2, 10000) > 0);
		for (int s = 0; s < 2; s++) {
			if (!(p[s].revents & (POLLIN | POLLHUP)))
				continue;
			int r = rt_log_drain_fd(log, s, rd[s], &err);
			if (r < 0)
				fail_msg("drain: %s", err.msg);
			if (r == RT_LOG_EOF)
				open_[s] = false;
		}
	}
}

static void check_burst(struct fixture *f, unsigned max_files)
{
	const unsigned per_stream = BURST_BYTES / LINE_BYTES / 2;
	unsigned want[2] = { 0, 0 };
	char name[32];
	for (int i = (int)max_files - 1; i >= 0; i--) {
		if (i == 0)
			snprintf(name, sizeof(name), "app.log");
		else
			snprintf(name, sizeof(name), "app.log.%d", i);
		if (!file_exists(f, name))
			continue;
		struct recs rs = { 0 };
		read_records(f, name, &rs);
		for (size_t k = 0; k < rs.n; k++) {
			const struct rec *r = &rs.v[k];
			int s = r->stream[3] == 'e'; /* std(e)rr */
			char line[LINE_BYTES];
			make_line(line, s ? 'e' : 'o', want[s]);
			if (r->tag != 'F' || r->len != LINE_BYTES - 1 ||
			    memcmp(r->body, line, LINE_BYTES - 1) != 0)
				fail_msg("%s record %zu: want %s line %u, got %.20s", name, k,
					 s ? "stderr" : "stdout", want[s], r->body);
			want[s]++;
		}
		recs_free(&rs);
	}
	assert_int_equal(want[0], per_stream);
	assert_int_equal(want[1], per_stream);
}

static void test_pipe_burst_100mb_none_lost(void **state)
{
	struct fixture *f = *state;
	int out[2], errp[2];
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(errp, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(out[0]);
		close(errp[0]);
		burst_child(out[1], errp[1]);
	}
	close(out[1]);
	close(errp[1]);
	int rd[2] = { out[0], errp[0] };
	for (int s = 0; s < 2; s++)
		assert_int_equal(fcntl(rd[s], F_SETFL, O_NONBLOCK), 0);
	/* 32 MB files, enough of them that nothing is dropped: rotation
	 * under load must keep every record whole. */
	struct rt_log *log = open_log(f, 32000000, 20);
	double t0 = now_s();
	pump(log, rd);
	double dt = now_s() - t0;
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	struct rt_log_stats st;
	rt_log_get_stats(log, &st);
	rt_log_close(log);
	close(rd[0]);
	close(rd[1]);
	print_message("pipe: 100 MB (2 streams) in %.3f s (%.0f MB/s), %llu records, %llu rotations\n",
		      dt, BURST_BYTES / 1e6 / dt, (unsigned long long)st.records,
		      (unsigned long long)st.rotations);
	assert_int_equal(st.dropped_bytes, 0);
	assert_true(st.rotations >= 3);
	check_burst(f, 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_full_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timestamp_format_and_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_streams_interleave_in_feed_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_lines_across_feeds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof_flushes_partial_as_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crlf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crlf_at_line_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_caps_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_conserves_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_single_file_and_big_record, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reopen_appends_and_counts_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_failure_keeps_whole_records, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_drain_budget_again_eof, setup, teardown),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_max_file_and_options),
		cmocka_unit_test_setup_teardown(test_feed_throughput, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipe_burst_100mb_none_lost, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
