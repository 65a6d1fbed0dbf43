/* berth-shim: the task's network policy elements, through berth-netpolicy
 * (docs/networking.md "Network policy").  The add runs while the rest of
 * the task is set up; the shim waits for it before any container starts. */
#include "runtime/shim_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fsutil.h"

extern char **environ;

#define POLICY_ARGV_MAX (20 + 2 * NET_GROUPS_MAX)

/* Spawns argv (stdin and stdout /dev/null, stderr a pipe, no signal
 * blocked: the shim blocks the ones its signalfd reads). */
static int spawn(const char *const *argv, struct policy_job *job, struct berth_err *err)
{
	int ep[2];
	if (pipe2(ep, O_CLOEXEC) < 0)
		return berth_errnof(err, errno, "pipe");
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none;
	sigemptyset(&none);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, ep[1], 2);
	posix_spawnattr_init(&at);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
	pid_t pid;
	int r = posix_spawn(&pid, argv[0], &fa, &at, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(ep[1]);
	if (r != 0) {
		close(ep[0]);
		return berth_errnof(err, r, "run %s", argv[0]);
	}
	job->pid = pid;
	job->errfd = ep[0];
	snprintf(job->what, sizeof(job->what), "berth-netpolicy %s", argv[1]);
	return 0;
}

int shim_policy_start(const struct plan *p, const char *verb, struct in_addr addr,
		      struct policy_job *job, struct berth_err *err)
{
	char bin[4096], ip[INET_ADDRSTRLEN];
	int r = berth_exe_sibling("berth-netpolicy", bin, sizeof(bin), err);
	if (r < 0)
		return r;
	const struct plan_network *n = &p->network;
	const char *argv[POLICY_ARGV_MAX] = {
		bin, verb, "--bridge", n->bridge, "--subnet", n->subnet,
		"--nft-table", n->nft_table, "--run-root", p->run_dir, "--ipam-dir", n->ipam_dir,
		"--task", p->task_id,
	};
	size_t k = 14;
	if (addr.s_addr != htonl(INADDR_ANY))
		argv[k++] = "--ip", argv[k++] = inet_ntop(AF_INET, &addr, ip, sizeof(ip));
	/* A task without groups is in the default one, as a plan from the
	 * daemon never is (it names the cluster's). */
	static const char *const fallback[] = { "default" };
	const char *const *g = n->security_groups.n ? (const char *const *)n->security_groups.v
						    : fallback;
	size_t n_g = n->security_groups.n ? n->security_groups.n : 1;
	for (size_t i = 0; strcmp(verb, "add") == 0 && i < n_g; i++)
		argv[k++] = "--group", argv[k++] = g[i];
	return spawn(argv, job, err);
}

int shim_policy_wait(struct policy_job *job, struct berth_err *err)
{
	if (job->pid <= 0)
		return 0;
	char msg[1024];
	size_t len = 0;
	for (ssize_t k; len < sizeof(msg) - 1 &&
	     ((k = read(job->errfd, msg + len, sizeof(msg) - 1 - len)) > 0 ||
	      (k < 0 && errno == EINTR));)
		len += k > 0 ? (size_t)k : 0;
	msg[len] = '\0';
	closep(&job->errfd);
	int status = 0, r;
	while ((r = waitpid(job->pid, &status, 0)) < 0 && errno == EINTR)
		;
	job->pid = 0;
	if (r < 0)
		return berth_errnof(err, errno, "%s: wait", job->what);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	msg[strcspn(msg, "\n")] = '\0';
	return berth_errf(err, EIO, "%s: %s", job->what, *msg ? msg : "failed without a message");
}

int shim_policy_run(const struct plan *p, const char *verb, struct in_addr addr,
		    struct berth_err *err)
{
	struct policy_job job = { .errfd = -1 };
	int r = shim_policy_start(p, verb, addr, &job, err);
	return r < 0 ? r : shim_policy_wait(&job, err);
}
