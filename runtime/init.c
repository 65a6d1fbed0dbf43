#include "runtime/init.h"

#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "runtime/child.h"

/* What `docker kill -s`, a terminal and ECS's stop send; tini's and
 * catatonit's forwarding set minus job control. */
static const int forwarded[] = {
	SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT, SIGWINCH,
};

/* Raised by the kernel for a fault of our own: blocking them would turn a
 * crash into a hang (catatonit's kernel_signals). */
static const int faults[] = {
	SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT,
};

static void wait_set(sigset_t *set)
{
	sigfillset(set);
	for (size_t i = 0; i < ARRAY_SIZE(faults); i++)
		sigdelset(set, faults[i]);
}

static bool is_forwarded(int sig)
{
	for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
		if (forwarded[i] == sig)
			return true;
	return false;
}

/* Reaps everything that has exited; true once the child is among them,
 * with its status in *code. */
static bool reap_all(pid_t child, int *code)
{
	bool done = false;
	int ws;
	pid_t p;
	while ((p = waitpid(-1, &ws, WNOHANG)) > 0 || (p < 0 && errno == EINTR)) {
		if (p != child)
			continue;
		done = true;
		*code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	}
	return done;
}

/* Once the loop runs there is nobody to report to: no failure may end
 * it early, only the child's exit (catatonit's rule). */
static _Noreturn void init_loop(pid_t child)
{
	sigset_t set;
	wait_set(&set);
	int code = 127;
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si);
		if (sig < 0)
			continue;
		if (sig == SIGCHLD) {
			if (reap_all(child, &code))
				_exit(code);
		} else if (is_forwarded(sig)) {
			/* ESRCH: the child is a zombie we reap next. */
			kill(child, sig);
		}
	}
}

static int drop_all_caps(struct berth_err *err)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct none[2] = { { 0 }, { 0 } };
	if (syscall(SYS_capset, &hdr, none) < 0)
		return rt_cerrnof(err, errno, "init: drop capabilities");
	return 0;
}

int rt_init_fork(int sock, bool drop_caps, struct berth_err *err)
{
	/* Before the fork, so pid 1 never holds them while the command
	 * runs.  The command loses nothing: as a non-root user under
	 * no_new_privs its execve would clear them anyway. */
	if (drop_caps) {
		int r = drop_all_caps(err);
		if (r < 0)
			return r;
	}
	/* Also before: the command's execve renames it anyway, and whoever
	 * looks at pid 1 sees the final name from the start. */
	prctl(PR_SET_NAME, "berth-init", 0, 0, 0);
	sigset_t set, old;
	wait_set(&set);
	/* Blocked before the fork, so no signal for the child is lost while
	 * pid 1 is not yet waiting. */
	if (sigprocmask(SIG_SETMASK, &set, &old) < 0)
		return rt_cerrnof(err, errno, "init: block signals");
	/* A raw fork: glibc's fork() would run atfork handlers (see
	 * runtime/internal.h).  No namespace flags, so seccomp allows it. */
	long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	if (pid < 0) {
		int e = errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		return rt_cerrnof(err, e, "init: fork");
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		return 0;
	}
	close(sock);
	init_loop((pid_t)pid);
}
