/* berth-shim: the task's network policy elements, through berth-netpolicy
 * (docs/networking.md "Network policy").  The add runs while the rest of
 * the task is set up; the shim waits for it before any container starts.
 * The command goes to the daemon's policy worker when one listens under
 * the run root (no exec, libnftables already loaded), and is run as a
 * process of its own when none does, or when it does not answer in time:
 * a shim started without a daemon behaves as before. */
#include "runtime/shim_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/time.h"
#include "netns/policy_worker.h"

extern char **environ;

#define POLICY_ARGV_MAX NETPOLICY_WORKER_ARGS_MAX
/* How long the worker may take to answer before the shim runs the
 * command itself: far above its few milliseconds, far below a start's
 * budget when it hangs. */
#define POLICY_WORKER_MS 500
/* A remove waits for the worker's batch before it (docs/networking.md
 * "The policy worker"): with hundreds of tasks stopping that took more
 * than 500 ms, and each shim that gave up exec'd berth-netpolicy, whose
 * listings then held the kernel's nftables lock against the worker's
 * batch: a pile-up.  Still bounded, against a hung worker. */
#define POLICY_WORKER_REMOVE_MS 5000

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
	return 0;
}

/* The command's arguments (argv[0] BIN, NULL-terminated); IP holds the
 * address text. */
static void policy_argv(const struct plan *p, const char *verb, struct in_addr addr,
			const char *bin, char ip[INET_ADDRSTRLEN], const char **argv)
{
	const struct plan_network *n = &p->network;
	const char *head[] = {
		bin, verb, "--bridge", n->bridge, "--subnet", n->subnet,
		"--nft-table", n->nft_table, "--run-root", p->run_dir, "--ipam-dir", n->ipam_dir,
		"--task", p->task_id,
	};
	size_t k = sizeof(head) / sizeof(*head);
	memcpy(argv, head, sizeof(head));
	if (addr.s_addr != htonl(INADDR_ANY))
		argv[k++] = "--ip", argv[k++] = inet_ntop(AF_INET, &addr, ip, INET_ADDRSTRLEN);
	/* A task without groups is in the default one, as a plan from the
	 * daemon never is (it names the cluster's). */
	static const char *const fallback[] = { "default" };
	const char *const *g = n->security_groups.n ? (const char *const *)n->security_groups.v
						    : fallback;
	size_t n_g = n->security_groups.n ? n->security_groups.n : 1;
	for (size_t i = 0; strcmp(verb, "add") == 0 && i < n_g; i++)
		argv[k++] = "--group", argv[k++] = g[i];
	for (size_t i = 0; strcmp(verb, "add") == 0 && i < n->n_publish; i++)
		argv[k++] = "--publish", argv[k++] = n->publish[i];
	argv[k] = NULL;
}

/* Sends the command (argv from the verb on) to the worker: its
 * connection, or -1 when there is none to take it now. */
static int worker_ask(const char *run_dir, const char *const *argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char req[NETPOLICY_WORKER_REQ_MAX];
	size_t len = 0;
	for (size_t i = 0; argv[i]; i++) {
		size_t l = strlen(argv[i]) + 1;
		if (len + l > sizeof(req))
			return -1;
		memcpy(req + len, argv[i], l);
		len += l;
	}
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s/%s", run_dir, NETPOLICY_WORKER_DIR,
		     NETPOLICY_WORKER_SOCK) >= (int)sizeof(sa.sun_path))
		return -1;
	/* Never blocks: a worker whose queue is full is passed over. */
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)
		return -1;
	return TAKE_FD(fd);
}

/* The worker's answer: 0, the command's failure, or -EAGAIN when it gave
 * none in time (the connection is closed first: the worker then drops a
 * request it has not begun). */
static int worker_answer(struct policy_job *job, struct berth_err *err)
{
	_cleanup_close_ int fd = TAKE_FD(job->sock);
	char msg[2048];
	ssize_t n = -1;
	int64_t deadline = berth_mono_ms() + (strcmp(job->verb, "remove") == 0
					      ? POLICY_WORKER_REMOVE_MS : POLICY_WORKER_MS);
	for (int64_t left; n < 0 && (left = deadline - berth_mono_ms()) > 0;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int k = poll(&pf, 1, (int)left);
		if (k < 0 && errno != EINTR)
			break;
		if (k > 0 && (n = recv(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT)) < 0 &&
		    errno != EAGAIN && errno != EINTR)
			break;
	}
	if (n <= 0)
		return -EAGAIN;
	msg[n] = '\0';
	if (msg[0] == 0)
		return 0;
	msg[1 + strcspn(msg + 1, "\n")] = '\0';
	return berth_errf(err, EIO, "%s: %s", job->what, msg[1] ? msg + 1 : "failed without a message");
}

static int policy_exec(struct policy_job *job, struct berth_err *err)
{
	char bin[4096], ip[INET_ADDRSTRLEN];
	const char *argv[POLICY_ARGV_MAX + 1];
	int r = berth_exe_sibling("berth-netpolicy", bin, sizeof(bin), err);
	if (r < 0)
		return r;
	policy_argv(job->plan, job->verb, job->addr, bin, ip, argv);
	return spawn(argv, job, err);
}

int shim_policy_start(const struct plan *p, const char *verb, struct in_addr addr,
		      struct policy_job *job, struct berth_err *err)
{
	char ip[INET_ADDRSTRLEN];
	const char *argv[POLICY_ARGV_MAX + 1];
	job->plan = p;
	job->verb = verb;
	job->addr = addr;
	snprintf(job->what, sizeof(job->what), "berth-netpolicy %s", verb);
	policy_argv(p, verb, addr, "berth-netpolicy", ip, argv);
	if ((job->sock = worker_ask(p->run_dir, argv + 1)) >= 0)
		return 0;
	return policy_exec(job, err);
}

int shim_policy_wait(struct policy_job *job, struct berth_err *err)
{
	if (job->sock >= 0) {
		int r = worker_answer(job, err);
		if (r != -EAGAIN || (r = policy_exec(job, err)) < 0)
			return r;
	}
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
	struct policy_job job = { .sock = -1, .errfd = -1 };
	int r = shim_policy_start(p, verb, addr, &job, err);
	return r < 0 ? r : shim_policy_wait(&job, err);
}
