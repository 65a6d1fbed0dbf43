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
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
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

/* One request of a root client on FD: its arguments (pointing into REQ,
 * NETPOLICY_WORKER_REQ_MAX + 1 bytes) and their count, or -1. */
static int worker_read(int fd, char *req, char **argv)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0)
		return -1;
	struct timeval tv = { 1, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	ssize_t n = recv(fd, req, NETPOLICY_WORKER_REQ_MAX, 0);
	if (n <= 0 || req[n - 1] != '\0')
		return -1;
	int argc = 0;
	for (char *p = req; p < req + n && argc < NETPOLICY_WORKER_ARGS_MAX; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	return argc;
}

static void answer(int fd, int status, const char *msg)
{
	char buf[1 + 2048];
	buf[0] = (char)status;
	snprintf(buf + 1, sizeof(buf) - 1, "%s", msg);
	send(fd, buf, 1 + strlen(buf + 1), MSG_NOSIGNAL);
}

/* Removals arrive together (a service scaled in, a cluster's tasks
 * stopped) and each costs a listing of the whole table and an RCU grace
 * period in the kernel (about 16 ms): those waiting are made in one go,
 * by one child at a time, so that the adds of starting tasks do not
 * queue behind them and N removals cost about what one does. */
#define BATCH_MAX 256

struct removal {
	int fd;
	int argc;
	char *argv[NETPOLICY_WORKER_ARGS_MAX + 1];
	char req[NETPOLICY_WORKER_REQ_MAX + 1];
};

struct batch {
	struct removal *r;           /* BATCH_MAX of them */
	size_t n;
	int child;                   /* the pidfd of the child removing, or -1 */
};

static bool same_net(const struct net_config *a, const struct net_config *b)
{
	return !strcmp(a->bridge, b->bridge) && !strcmp(a->subnet, b->subnet) &&
	       !strcmp(a->nft_table, b->nft_table) && !strcmp(a->run_dir, b->run_dir) &&
	       !strcmp(a->ipam_dir, b->ipam_dir);
}

/* In one transaction the removals of B still awaited that are well formed
 * and name the same network as the first; *done[i] when removal i was
 * answered. */
static void remove_together(struct batch *b, bool *done)
{
	struct net_args a0, a;
	const char *ids[BATCH_MAX];
	struct in_addr addrs[BATCH_MAX];
	size_t idx[BATCH_MAX], n = 0;
	for (size_t i = 0; i < b->n; i++) {
		struct removal *r = &b->r[i];
		if (net_args_parse(r->argc, r->argv, n ? &a : &a0) < 0)
			continue;
		const struct net_args *x = n ? &a : &a0;
		addrs[n].s_addr = htonl(INADDR_ANY);
		if (!x->task || (x->ip && inet_pton(AF_INET, x->ip, &addrs[n]) != 1) ||
		    (n && !same_net(&a0.cfg, &a.cfg)))
			continue;
		ids[n] = x->task;
		idx[n++] = i;
	}
	struct berth_err err = { 0 };
	_cleanup_(net_closep) struct net *net = NULL;
	if (n < 2 || net_open(&a0.cfg, &net, &err) < 0 ||
	    net_policy_tasks_remove(net, ids, addrs, n, &err) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		answer(b->r[idx[i]].fd, 0, "");
		done[idx[i]] = true;
	}
}

/* The child's work: B's removals whose clients still wait, together, and
 * one by one what that could not do. */
static void remove_batch(struct batch *b)
{
	bool done[BATCH_MAX] = { 0 };
	size_t k = 0;
	for (size_t i = 0; i < b->n; i++)
		if (client_waits(b->r[i].fd))
			b->r[k++] = b->r[i];
	b->n = k;
	remove_together(b, done);
	for (size_t i = 0; i < b->n; i++) {
		char msg[2048];
		if (done[i])
			continue;
		int status = run(b->r[i].argc, b->r[i].argv, msg, sizeof(msg));
		answer(b->r[i].fd, status, msg);
	}
}

/* Hands B's removals to a child (made here when fork fails). */
static void batch_start(struct batch *b)
{
	pid_t pid = fork();
	if (pid == 0) {
		remove_batch(b);
		_exit(0);
	}
	if (pid < 0)
		remove_batch(b);
	else if ((b->child = (int)syscall(SYS_pidfd_open, pid, 0)) < 0)
		b->child = -1;  /* gone already, or no pidfd: the next batch goes at once */
	for (size_t i = 0; i < b->n; i++)
		close(b->r[i].fd);
	b->n = 0;
}

/* The connections waiting on LFD: an add is made now, a removal joins B
 * (those beyond BATCH_MAX wait in the listen queue).  Returns as soon as
 * a removal waits with no child removing, so that a stream of adds never
 * holds it up. */
static int worker_accept(int lfd, struct batch *b)
{
	while (b->n < BATCH_MAX && !(b->n && b->child < 0)) {
		struct removal *r = &b->r[b->n];
		_cleanup_close_ int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return errno == EAGAIN || errno == EINTR || errno == ECONNABORTED ? 0 : -errno;
		if ((r->argc = worker_read(fd, r->req, r->argv)) < 0 || !client_waits(fd))
			continue;
		if (r->argc > 0 && strcmp(r->argv[0], "remove") == 0) {
			r->fd = TAKE_FD(fd);
			b->n++;
			continue;
		}
		char msg[2048];
		int status = run(r->argc, r->argv, msg, sizeof(msg));
		answer(fd, status, msg);
	}
	return 0;
}

static int worker(const char *dir)
{
	int lfd = worker_listen(dir);
	if (lfd < 0) {
		fprintf(stderr, "berth-netpolicy: worker socket in %s: %s\n", dir, strerror(-lfd));
		return 1;
	}
	struct batch b = { .r = calloc(BATCH_MAX, sizeof(*b.r)), .child = -1 };
	int r = b.r && fcntl(lfd, F_SETFL, O_NONBLOCK) == 0 ? 0 : -ENOMEM;
	while (r == 0) {
		struct pollfd p[2] = { { .fd = b.n < BATCH_MAX ? lfd : -1, .events = POLLIN },
				       { .fd = b.child, .events = POLLIN } };
		if (poll(p, 2, -1) < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		if (p[1].revents) {
			close(b.child);
			b.child = -1;
		}
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (p[0].revents)
			r = worker_accept(lfd, &b);
		if (b.n && b.child < 0)
			batch_start(&b);
	}
	fprintf(stderr, "berth-netpolicy: worker socket in %s: %s\n", dir, strerror(-r));
	free(b.r);
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
