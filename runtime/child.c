/* The child side of a launch (runtime/child.h): syscalls and stack
 * buffers only, and no call into another runtime/ file. */
#include "runtime/child.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "runtime/container.h"

/* ---- error helpers ------------------------------------------------------ */

static int cerr_v(struct berth_err *err, int code, bool with_errno, const char *fmt, va_list ap)
{
	code = abs(code);
	if (code == 0)
		code = EIO;
	if (!err)
		return -code;
	err->code = code;
	int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	const char *desc = strerrordesc_np(code);
	if (with_errno && n >= 0 && (size_t)n < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, ": %s", desc ? desc : "error");
	return -code;
}

int rt_cerrf(struct berth_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = cerr_v(err, code, false, fmt, ap);
	va_end(ap);
	return r;
}

int rt_cerrnof(struct berth_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = cerr_v(err, code, true, fmt, ap);
	va_end(ap);
	return r;
}

/* ---- steps -------------------------------------------------------------- */

/* A caller's blocked signals and ignored dispositions would survive
 * execve; the container starts with the defaults. */
void rt_child_reset_signals(void)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);  /* EINVAL for libc's own: fine */
}

int rt_child_wait_go(int sock, struct berth_err *err)
{
	char c;
	ssize_t n;
	while ((n = read(sock, &c, 1)) < 0 && errno == EINTR)
		;
	return n == 1 ? 0 : rt_cerrf(err, EPIPE, "parent went away");
}

int rt_child_self_join(const int *fds, size_t n, struct berth_err *err)
{
	for (size_t i = 0; i < n; i++)
		if (write(fds[i], "0", 1) != 1)
			return rt_cerrnof(err, errno, "join cgroup");
	return 0;
}

/* Copies first, so a source that is itself 0-2 is not overwritten. */
int rt_child_stdio(const int stdio[3], struct berth_err *err)
{
	int tmp[3] = { -1, -1, -1 };
	for (int i = 0; i < 3; i++)
		if (stdio[i] >= 0 && (tmp[i] = fcntl(stdio[i], F_DUPFD_CLOEXEC, 3)) < 0)
			return rt_cerrnof(err, errno, "stdio fd %d", stdio[i]);
	for (int i = 0; i < 3; i++)
		if (tmp[i] >= 0 && dup2(tmp[i], i) < 0)
			return rt_cerrnof(err, errno, "dup2 stdio %d", i);
	/* The copies are CLOEXEC and closed with the rest below. */
	return 0;
}

int rt_child_rlimits(const struct rt_ulimit *ul, size_t n, struct berth_err *err)
{
	for (size_t i = 0; i < n; i++) {
		struct rlimit rl = { .rlim_cur = ul[i].soft, .rlim_max = ul[i].hard };
		if (setrlimit(ul[i].resource, &rl) < 0)
			return rt_cerrnof(err, errno, "ulimit %d (%llu:%llu)", ul[i].resource,
					  (unsigned long long)rl.rlim_cur,
					  (unsigned long long)rl.rlim_max);
	}
	return 0;
}

/* Every fd but 0-2 and the error socket (moved to 3, CLOEXEC) goes now,
 * before chdir, so no host directory fd can be reached through
 * /proc/self/fd (CVE-2024-21626). */
int rt_child_close_fds(int *sock, struct berth_err *err)
{
	if (*sock != 3) {
		if (dup3(*sock, 3, O_CLOEXEC) < 0)
			return rt_cerrnof(err, errno, "move error socket");
		*sock = 3;
	}
	if (close_range(4, ~0U, 0) < 0)
		return rt_cerrnof(err, errno, "close inherited fds");
	return 0;
}

int rt_child_close_all_but(const int *keep, size_t n, struct berth_err *err)
{
	int sorted[RT_KEEP_FDS_MAX];
	if (n > RT_KEEP_FDS_MAX)
		return rt_cerrf(err, E2BIG, "%zu fds to keep", n);
	/* Insertion sort: a handful of fds, and no allocation here. */
	for (size_t i = 0; i < n; i++) {
		size_t j = i;
		for (; j > 0 && sorted[j - 1] > keep[i]; j--)
			sorted[j] = sorted[j - 1];
		sorted[j] = keep[i];
	}
	unsigned from = 3;
	for (size_t i = 0; i < n; i++) {
		if (sorted[i] < (int)from)
			continue;
		if ((unsigned)sorted[i] > from && close_range(from, (unsigned)sorted[i] - 1, 0) < 0)
			return rt_cerrnof(err, errno, "close inherited fds");
		from = (unsigned)sorted[i] + 1;
	}
	if (close_range(from, ~0U, 0) < 0)
		return rt_cerrnof(err, errno, "close inherited fds");
	return 0;
}

int rt_child_cwd(const char *cwd, struct berth_err *err)
{
	char buf[PATH_MAX];
	if (chdir(cwd) < 0)
		return rt_cerrnof(err, errno, "working directory \"%s\"", cwd);
	/* getcwd() fails (ENOENT) when the cwd is outside our root. */
	if (!getcwd(buf, sizeof(buf)) || buf[0] != '/')
		return rt_cerrf(err, ENOENT, "working directory \"%s\": outside the container", cwd);
	return 0;
}

/* execvpe() searches the caller's PATH; the container's is in its env. */
int rt_child_exec(char *const *argv, char *const *env, const char *path, struct berth_err *err)
{
	const char *file = argv[0];
	if (strchr(file, '/')) {
		execve(file, argv, env);
		return rt_cerrnof(err, errno, "exec: \"%s\"", file);
	}
	bool denied = false;
	char buf[PATH_MAX];
	for (const char *p = path, *end; ; p = end + 1) {
		end = strchrnul(p, ':');
		/* An empty element means the working directory, as in POSIX. */
		int len = snprintf(buf, sizeof(buf), "%.*s/%s", end > p ? (int)(end - p) : 1,
				   end > p ? p : ".", file);
		if (len > 0 && (size_t)len < sizeof(buf)) {
			execve(buf, argv, env);
			if (errno == EACCES)
				denied = true;
			else if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP)
				return rt_cerrnof(err, errno, "exec: \"%s\"", buf);
		}
		if (!*end)
			break;
	}
	if (denied)
		return rt_cerrf(err, EACCES, "exec: \"%s\": permission denied", file);
	return rt_cerrf(err, ENOENT, "exec: \"%s\": executable file not found in $PATH", file);
}
