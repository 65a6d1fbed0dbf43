/* berth-shim [--foreground | --cleanup] PLAN.json — the task agent
 * (docs/runtime.md).
 *
 * The only place of the shim that prints: a bad plan or a failed set-up
 * is one "berth-shim: <error>" line on stderr and exit status 1 (2 for a
 * usage error); while the task runs, diagnostics go to stderr, which a
 * detached shim points at <taskDir>/shim.log.  --cleanup removes what a
 * dead shim left of the task (shim_cleanup()) and prints nothing unless
 * that fails. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "runtime/plan.h"
#include "runtime/shim.h"

#define READY_MAX 2048

static void diag(void *data, const char *msg)
{
	(void)data;
	struct timespec ts;
	struct tm tm;
	char when[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ berth-shim[%d]: %s\n", when, ts.tv_nsec / 1000000, (int)getpid(),
		msg);
}

/* "OK <pid>" or "ERR <message>" to the starting process (ready_fd -1:
 * we are in the foreground and print ourselves). */
static void report(int ready_fd, bool ok, const char *msg)
{
	char buf[READY_MAX];
	int n = ok ? snprintf(buf, sizeof(buf), "OK %d\n", (int)getpid())
		   : snprintf(buf, sizeof(buf), "ERR %s", msg);
	if (ready_fd < 0) {
		if (ok)
			printf("%d\n", (int)getpid());
		else
			fprintf(stderr, "berth-shim: %s\n", msg);
		fflush(stdout);
		return;
	}
	if (!ok)
		diag(NULL, msg);
	if (n > (int)sizeof(buf) - 1)
		n = (int)sizeof(buf) - 1;
	if (write(ready_fd, buf, (size_t)n) != n)
		diag(NULL, "could not tell the starting process");
	close(ready_fd);
}

static int run(struct plan *plan, int ready_fd)
{
	struct berth_err err = { 0 };
	_cleanup_(shim_freep) struct shim *s = NULL;
	int r = shim_new(plan, diag, NULL, &s, &err);
	if (r >= 0)
		r = shim_setup(s, &err);
	if (r < 0) {
		report(ready_fd, false, err.msg);
		return 1;
	}
	report(ready_fd, true, NULL);
	if (shim_run(s, &err) < 0) {
		diag(NULL, err.msg);
		return 1;
	}
	return 0;
}

/* The starting process: waits for the shim's first words. */
static int wait_ready(int fd, const char *task_dir)
{
	char buf[READY_MAX];
	size_t len = 0;
	for (ssize_t n; len < sizeof(buf) - 1; len += (size_t)n)
		if ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) <= 0) {
			if (n < 0 && errno == EINTR) {
				n = 0;
				continue;
			}
			break;
		}
	buf[len] = '\0';
	if (!strncmp(buf, "OK ", 3)) {
		fputs(buf + 3, stdout);
		return 0;
	}
	if (!strncmp(buf, "ERR ", 4))
		fprintf(stderr, "berth-shim: %s\n", buf + 4);
	else
		fprintf(stderr, "berth-shim: the shim exited during set-up (see %s/shim.log)\n",
			task_dir);
	return 1;
}

/* Own session, no controlling terminal, stdio on shim.log, and none of
 * the starting process's fds (a caller reading our stdout to EOF must
 * not wait for the task). */
static int become_daemon(const struct plan *plan, int ready_fd, struct berth_err *err)
{
	if (setsid() < 0)
		return berth_errnof(err, errno, "setsid");
	int r = berth_mkdir_p(plan->task_dir, 0700, err);
	if (r < 0)
		return r;
	char path[4096];
	snprintf(path, sizeof(path), "%s/shim.log", plan->task_dir);
	_cleanup_close_ int logfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	_cleanup_close_ int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (logfd < 0 || nullfd < 0)
		return berth_errnof(err, errno, "open %s", logfd < 0 ? path : "/dev/null");
	if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
		return berth_errnof(err, errno, "redirect stdio to %s", path);
	close(TAKE_FD(logfd));
	close(TAKE_FD(nullfd));
	if (ready_fd > 3)
		close_range(3, (unsigned)ready_fd - 1, 0);
	close_range((unsigned)ready_fd + 1, ~0U, 0);
	return 0;
}

static int detach(struct plan *plan)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "berth-shim: ready pipe: %s\n", strerror(errno));
		plan_free(plan);
		return 1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "berth-shim: fork: %s\n", strerror(errno));
		plan_free(plan);
		return 1;
	}
	if (pid > 0) {
		close(p[1]);
		int rc = wait_ready(p[0], plan->task_dir);
		close(p[0]);
		plan_free(plan);
		return rc;
	}
	close(p[0]);
	struct berth_err err = { 0 };
	if (become_daemon(plan, p[1], &err) < 0) {
		report(p[1], false, err.msg);
		plan_free(plan);
		return 1;
	}
	return run(plan, p[1]);
}

static int cleanup(struct plan *plan)
{
	struct berth_err err = { 0 };
	int r = shim_cleanup(plan, &err);
	plan_free(plan);
	if (r < 0) {
		fprintf(stderr, "berth-shim: %s\n", err.msg);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = NULL, *path = NULL;
	for (int i = 1; i < argc; i++) {
		if ((!strcmp(argv[i], "--foreground") || !strcmp(argv[i], "--cleanup")) && !mode)
			mode = argv[i];
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else
			path = NULL, i = argc;
	}
	if (!path) {
		fprintf(stderr, "usage: berth-shim [--foreground | --cleanup] PLAN.json\n");
		return 2;
	}
	struct berth_err err = { 0 };
	struct plan *plan = NULL;
	if (plan_load(path, &plan, &err) < 0) {
		fprintf(stderr, "berth-shim: %s\n", err.msg);
		return 1;
	}
	if (!mode)
		return detach(plan);
	return !strcmp(mode, "--cleanup") ? cleanup(plan) : run(plan, -1);
}
