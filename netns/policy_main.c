/* berth-netpolicy (add|remove) --bridge B --subnet S --nft-table T
 * --run-root R --ipam-dir D --task ID [--ip A] [--group G]...
 * [--publish PROTO:HOSTPORT:PORT]...: a task's network policy elements and
 * published ports (netns/policy.c), for berth-shim, which does
 * not link libnftables.  A binary of its own rather than a `berth`
 * command: it maps only libnftables, libnl and cJSON, so it starts in a
 * fifth of the CPU time `berth` (libcurl, libarchive, …) needs, twice per
 * task.  Prints nothing; a failure is one "berth-netpolicy: …" line on
 * stderr and exit status 1 (2 for a usage error).
 *
 * berth-netpolicy --worker DIR: the same commands served on DIR/sock, for
 * as long as it lives (berthd runs one: docs/networking.md "The policy
 * worker"), so that a task start costs no exec and no libnftables load.
 * A request is one SOCK_SEQPACKET message, the command's arguments from
 * the verb on, each NUL-terminated; the answer is one message, the exit
 * status as one byte and then what the command would print on stderr. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "netns/args.h"
#include "netns/policy_worker.h"

static const char usage[] = "usage: berth-netpolicy (add|remove) --bridge B --subnet S "
			    "--nft-table T --run-root R --ipam-dir D --task ID [--ip A] "
			    "[--group G]... [--publish tcp|udp:HOSTPORT:PORT]...\n"
			    "       berth-netpolicy --worker DIR\n";

/* One command (argv[0] the verb): its exit status, and its stderr text in
 * MSG (empty on success). */
static int run(int argc, char **argv, char *msg, size_t size)
{
	const char *verb = argc > 0 ? argv[0] : "";
	bool add = strcmp(verb, "add") == 0;
	struct net_args a;
	*msg = '\0';
	if ((!add && strcmp(verb, "remove") != 0) || net_args_parse(argc, argv, &a) < 0 ||
	    !a.task || (add && !a.ip)) {
		snprintf(msg, size, "%s", usage);
		return 2;
	}
	struct in_addr addr = { .s_addr = htonl(INADDR_ANY) };
	struct berth_err err = { 0 };
	int r = 0;
	_cleanup_(net_closep) struct net *net = NULL;
	if (a.ip && inet_pton(AF_INET, a.ip, &addr) != 1)
		r = berth_errf(&err, EINVAL, "task %s: address \"%s\" is not IPv4", a.task, a.ip);
	if (r >= 0)
		r = net_open(&a.cfg, &net, &err);
	if (r >= 0)
		r = add ? net_policy_task_add_ports(net, a.task, addr, a.groups, a.n_groups,
						    a.publish, a.n_publish, &err)
			: net_policy_task_remove(net, a.task, addr, &err);
	if (r < 0) {
		snprintf(msg, size, "berth-netpolicy: %s\n", err.msg);
		return 1;
	}
	return 0;
}

/* ---- the worker ---------------------------------------------------------- */

/* DIR made (or kept) a directory of ours that only we can enter, and its
 * socket bound anew (a dead worker's is left behind). */
static int worker_listen(const char *dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, NETPOLICY_WORKER_SOCK) >=
	    (int)sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return -EPERM;
	if (chmod(dir, 0700) < 0 || (unlink(sa.sun_path) < 0 && errno != ENOENT))
		return -errno;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	mode_t old = umask(0177);
	int r = fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (r < 0 || listen(fd, 128) < 0)
		return r < 0 ? r : -errno;
	return TAKE_FD(fd);
}

/* Whether the client still waits: one that gave up (its deadline passed)
 * has run the command itself, and a late add must not follow its remove. */
static bool client_waits(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };
	return poll(&p, 1, 0) == 0;
}

/* One connection: root only, one request, one answer. */
static void worker_serve(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0)
		return;
	struct timeval tv = { 1, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	char req[NETPOLICY_WORKER_REQ_MAX + 1];
	ssize_t n = recv(fd, req, NETPOLICY_WORKER_REQ_MAX, 0);
	if (n <= 0 || req[n - 1] != '\0')
		return;
	char *argv[NETPOLICY_WORKER_ARGS_MAX + 1];
	int argc = 0;
	for (char *p = req; p < req + n && argc < NETPOLICY_WORKER_ARGS_MAX; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	if (!client_waits(fd))
		return;
	/* A remove waits out an RCU grace period in the kernel (about 16 ms):
	 * it runs in a child, so that the adds of starting tasks do not queue
	 * behind the removes of stopping ones (SIGCHLD is ignored: no zombie). */
	pid_t pid = argc > 0 && strcmp(argv[0], "remove") == 0 ? fork() : -1;
	if (pid > 0)
		return;
	char answer[1 + 2048];
	answer[0] = (char)run(argc, argv, answer + 1, sizeof(answer) - 1);
	send(fd, answer, 1 + strlen(answer + 1), MSG_NOSIGNAL);
	if (pid == 0)
		_exit(0);
}

static int worker(const char *dir)
{
	int lfd = worker_listen(dir);
	signal(SIGCHLD, SIG_IGN);
	if (lfd < 0) {
		fprintf(stderr, "berth-netpolicy: worker socket in %s: %s\n", dir, strerror(-lfd));
		return 1;
	}
	for (;;) {
		_cleanup_close_ int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			worker_serve(fd);
		else if (errno != EINTR && errno != ECONNABORTED)
			break;
	}
	fprintf(stderr, "berth-netpolicy: worker socket in %s: %s\n", dir, strerror(errno));
	close(lfd);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--worker") == 0)
		return worker(argv[2]);
	char msg[2048];
	int status = run(argc - 1, argv + 1, msg, sizeof(msg));
	fputs(msg, stderr);
	return status;
}
