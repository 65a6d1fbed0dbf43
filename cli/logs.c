#include "cli/logs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/time.h"
#include "runtime/log.h"

/* Holds the largest record (header + RT_LOG_LINE_MAX) several times. */
#define READ_CAP (64u << 10)
/* Rotated files are numbered 1 .. max-file - 1. */
#define LOG_INDEX_MAX ((int)RT_LOG_MAX_FILES_LIMIT)

struct reader {
	const char *dir;
	const char *name;
	int dirfd;            /* -1 until the directory exists */
	int fd;               /* the file being read, -1 before the first */
	dev_t dev;
	ino_t ino;
	size_t len;           /* bytes of an unfinished record in buf */
	char *buf;            /* READ_CAP bytes */
};

/* index 0: <name>.log; k > 0: <name>.log.k */
static void file_name(const struct reader *r, int index, char buf[NAME_MAX + 1])
{
	if (index == 0)
		snprintf(buf, NAME_MAX + 1, "%s.log", r->name);
	else
		snprintf(buf, NAME_MAX + 1, "%s.log.%d", r->name, index);
}

static bool stat_index(const struct reader *r, int index, struct stat *st)
{
	char name[NAME_MAX + 1];
	file_name(r, index, name);
	return fstatat(r->dirfd, name, st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st->st_mode);
}

/* Scans the files: returns the index of the open one (-1: none open, or
 * rotated out) and sets *oldest to the highest index there (-1: none).
 * A rotation renames files up by one, oldest first, and the new file
 * takes <name>.log last, so while it runs one index is missing: two
 * missing in a row, not one, mark the end. */
static int scan(const struct reader *r, int *oldest)
{
	struct stat st;
	int at = -1, missing = 0;
	*oldest = -1;
	for (int k = 0; k <= LOG_INDEX_MAX && missing < 2; k++) {
		if (!stat_index(r, k, &st)) {
			missing++;
			continue;
		}
		missing = 0;
		*oldest = k;
		if (at < 0 && r->fd >= 0 && st.st_dev == r->dev && st.st_ino == r->ino)
			at = k;
	}
	return at;
}

static int oldest_index(const struct reader *r)
{
	int oldest;
	scan(r, &oldest);
	return oldest;
}

/* One record "<time> <stream> <F|P> <text>" without its '\n'. */
static void emit(const char *line, size_t n)
{
	const char *sp = memchr(line, ' ', n);
	size_t rest = sp ? (size_t)(line + n - sp) : 0; /* from that space on */
	bool out = rest >= 10 && !memcmp(sp, " stdout ", 8);
	bool err = rest >= 10 && !memcmp(sp, " stderr ", 8);
	if (!(out || err) || (sp[8] != 'F' && sp[8] != 'P') || sp[9] != ' ') {
		/* Not a CRI record: show it as it is. */
		fwrite(line, 1, n, stdout);
		fputc('\n', stdout);
		return;
	}
	FILE *f = err ? stderr : stdout;
	fwrite(sp + 10, 1, rest - 10, f);
	if (sp[8] == 'F')
		fputc('\n', f);
}

/* Prints the whole records in buf and keeps the unfinished rest. */
static void emit_records(struct reader *r)
{
	char *start = r->buf, *end = r->buf + r->len, *nl;
	while ((nl = memchr(start, '\n', (size_t)(end - start)))) {
		emit(start, (size_t)(nl - start));
		start = nl + 1;
	}
	r->len = (size_t)(end - start);
	memmove(r->buf, start, r->len);
	if (r->len == READ_CAP) { /* no record is this long: not CRI */
		emit(r->buf, r->len);
		r->len = 0;
	}
}

static int read_to_end(struct reader *r, struct berth_err *err)
{
	for (;;) {
		ssize_t n = read(r->fd, r->buf + r->len, READ_CAP - r->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return berth_errnof(err, errno, "read %s/%s.log", r->dir, r->name);
		if (n == 0)
			return 0;
		r->len += (size_t)n;
		emit_records(r);
	}
}

/* Opens the file at index into *fd (its identity in *st); -ENOENT when it
 * went away meanwhile. */
static int open_index(const struct reader *r, int index, int *fd, struct stat *st,
		      struct berth_err *err)
{
	char name[NAME_MAX + 1];
	file_name(r, index, name);
	*fd = openat(r->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0 && errno == ENOENT)
		return -ENOENT;
	if (*fd < 0 || fstat(*fd, st) < 0) {
		int e = errno;
		if (*fd >= 0)
			close(*fd);
		return berth_errnof(err, e, "open %s/%s", r->dir, name);
	}
	return 0;
}

static void adopt(struct reader *r, int fd, const struct stat *st)
{
	if (r->fd >= 0) {
		/* Records never span files: what is left was torn. */
		if (r->len)
			emit(r->buf, r->len);
		r->len = 0;
		close(r->fd);
	}
	r->fd = fd;
	r->dev = st->st_dev;
	r->ino = st->st_ino;
}

static bool at_index(const struct reader *r, int index)
{
	struct stat st;
	return stat_index(r, index, &st) && st.st_dev == r->dev && st.st_ino == r->ino;
}

/* Moves on to the file after the open one: the next newer, or the oldest
 * left when the open one was rotated out (or none was open).  1: moved;
 * 0: the open one is the current file; -EAGAIN: files moved meanwhile.
 * A rotation renames every file up by one, oldest first, and the writer
 * can rotate again between our stat and our open.  So the open one (B)
 * is found at k, k-1 is opened, and B must still be at k: then B sat at
 * k all along, and what was opened was at k-1 beside it, its successor. */
static int open_next(struct reader *r, struct berth_err *err)
{
	int oldest, k = scan(r, &oldest);
	if (k == 0)
		return 0;
	int index = k > 0 ? k - 1 : oldest;
	if (index < 0)
		return 0;
	int fd;
	struct stat st;
	int rc = open_index(r, index, &fd, &st, err);
	if (rc < 0)
		return rc == -ENOENT ? -EAGAIN : rc;
	if (k > 0 && !at_index(r, k)) {
		close(fd);
		return -EAGAIN;
	}
	adopt(r, fd, &st);
	return 1;
}

/* Reads everything there is now, across rotations, up to the end of
 * <name>.log. */
static int pump(struct reader *r, struct berth_err *err)
{
	if (r->dirfd < 0)
		return 0;
	for (int guard = 0; guard < 4 * LOG_INDEX_MAX; guard++) {
		int r2 = r->fd >= 0 ? read_to_end(r, err) : 0;
		if (r2 < 0)
			return r2;
		r2 = open_next(r, err);
		if (r2 != 1 && r2 != -EAGAIN)
			return r2;
	}
	return 0;
}

static void open_dir(struct reader *r)
{
	if (r->dirfd < 0 && r->name)
		r->dirfd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

bool log_exists(const char *dir, const char *container)
{
	struct reader r = { .dir = dir, .name = container, .dirfd = -1, .fd = -1 };
	open_dir(&r);
	bool there = r.dirfd >= 0 && oldest_index(&r) >= 0;
	if (r.dirfd >= 0)
		close(r.dirfd);
	return there;
}

static void stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
}

void log_hold_signals(void)
{
	sigset_t set;
	stop_signals(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

/* SIGINT and SIGTERM blocked and readable from *ret; *old restores them. */
static int signals_open(sigset_t *old, int *ret, struct berth_err *err)
{
	sigset_t set;
	stop_signals(&set);
	if (sigprocmask(SIG_BLOCK, &set, old) < 0)
		return berth_errnof(err, errno, "block SIGINT and SIGTERM");
	*ret = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (*ret < 0) {
		int e = errno;
		sigprocmask(SIG_SETMASK, old, NULL);
		return berth_errnof(err, e, "signalfd");
	}
	return 0;
}

struct watch {
	int ino;    /* inotify fd */
	int sig;    /* signalfd */
	bool watching;
};

/* Waits for a change in the directory, a signal or the timeout; the
 * signal's number, or 0. */
static int wait_event(struct reader *r, struct watch *w)
{
	if (!w->watching && r->dirfd >= 0)
		w->watching = inotify_add_watch(w->ino, r->dir, IN_MODIFY | IN_CREATE |
						IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE) >= 0;
	struct pollfd p[2] = { { .fd = w->ino, .events = POLLIN },
			       { .fd = w->sig, .events = POLLIN } };
	if (poll(p, 2, LOG_CHECK_MS) <= 0)
		return 0;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	while (read(w->ino, buf, sizeof(buf)) > 0)
		;
	struct signalfd_siginfo si;
	if (p[1].revents & POLLIN && read(w->sig, &si, sizeof(si)) == sizeof(si))
		return (int)si.ssi_signo;
	return 0;
}

static int follow_loop(struct log_follow *f, struct reader *r, struct watch *w,
		       struct berth_err *err)
{
	int64_t last_check = 0;
	bool finishing = false;
	for (;;) {
		open_dir(r);
		int rc = pump(r, err);
		fflush(stdout);
		if (rc < 0 || finishing)
			return rc;
		if (f->done && berth_mono_ms() - last_check >= LOG_CHECK_MS) {
			last_check = berth_mono_ms();
			rc = f->done(f->ctx, err);
			if (rc < 0)
				return rc;
			finishing = rc > 0;
			if (finishing)
				continue;
		}
		int signo = wait_event(r, w);
		if (!signo)
			continue;
		rc = f->on_signal ? f->on_signal(f->ctx, signo, err) : 1;
		if (rc != 0) {
			f->signo = rc > 0 ? signo : 0;
			return rc < 0 ? rc : 0;
		}
	}
}

int log_follow(struct log_follow *f, struct berth_err *err)
{
	_cleanup_free_ char *buf = malloc(READ_CAP);
	struct reader r = { .dir = f->dir, .name = f->container, .dirfd = -1, .fd = -1,
			    .buf = buf };
	f->signo = 0;
	if (!buf)
		return berth_errf(err, ENOMEM, "logs: out of memory");
	open_dir(&r);
	int rc = 0;
	if (!f->follow) {
		rc = pump(&r, err);
	} else {
		sigset_t old;
		struct watch w = { .ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC), .sig = -1 };
		if (w.ino < 0)
			rc = berth_errnof(err, errno, "inotify");
		else if ((rc = signals_open(&old, &w.sig, err)) == 0) {
			rc = follow_loop(f, &r, &w, err);
			close(w.sig);
			sigprocmask(SIG_SETMASK, &old, NULL);
		}
		if (w.ino >= 0)
			close(w.ino);
	}
	fflush(stdout);
	if (r.fd >= 0)
		close(r.fd);
	if (r.dirfd >= 0)
		close(r.dirfd);
	return rc;
}
