/* berth pull | images | rmi | inspect-image: the local image store; berth
 * task-image (and its --worker): berthd's pulls. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/cleanup.h"
#include "common/fdpass.h"
#include "common/json.h"
#include "images/digest.h"
#include "images/pull.h"
#include "images/registry.h"
#include "images/store.h"

DEFINE_CLEANUP_FUNC(struct img_store, img_store_free)
DEFINE_CLEANUP_FUNC(struct progress, progress_free)

/* Parses options, checks the positional count and opens the store. */
static int open_store(struct cli *c, int argc, char **argv, int npos, const struct cli_cmd *cmd,
		      struct img_store **ret, int *ret_first)
{
	int first, rc = cli_parse_args(c, argc, argv, cmd, npos, npos, &first);
	if (rc >= 0)
		return rc;
	struct berth_err err = { 0 };
	if (img_store_open(c->root, ret, &err) < 0)
		return cli_fail(&err);
	*ret_first = first;
	return -1;
}

int cmd_pull(struct cli *c, int argc, char **argv)
{
	static const struct cli_cmd cmd = {
		.usage = "berth pull [--root DIR] [--registry-auth FILE] "
			 "[--insecure-registry HOST:PORT] " IMG_LIMIT_OPTS " REF",
		.help = "Pulls image REF (HOST[:PORT]/NAME[:TAG|@DIGEST]; docker.io/library/ by\n"
			"default) into the store under --root: the manifest for this machine's\n"
			"platform, its config and layers, verified and unpacked.  Progress bars on a\n"
			"terminal; then the reference and its digest.  No daemon needed.\n",
	};
	_cleanup_(img_store_freep) struct img_store *s = NULL;
	int first, rc = open_store(c, argc, argv, 1, &cmd, &s, &first);
	if (rc >= 0)
		return rc;
	_cleanup_(progress_freep) struct progress *pr = progress_new(STDOUT_FILENO);
	struct img_pull_opts opts = {
		.registry = c->registry,
		.limits = c->pull_limits,
		.progress = pr ? progress_update : NULL,
		.opaque = pr,
	};
	struct img_record rec;
	struct berth_err err = { 0 };
	if (img_pull(s, argv[first], &opts, &rec, &err) < 0)
		return cli_fail(&err);
	printf("pulled %s\ndigest: %s\n", rec.ref, rec.digest);
	return 0;
}

static void human_size(int64_t n, char buf[16])
{
	static const char *units[] = { "B", "kB", "MB", "GB", "TB" };
	double v = (double)n;
	size_t u = 0;
	while (v >= 1000 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1000;
		u++;
	}
	snprintf(buf, 16, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static int print_images_json(const struct img_record *recs, size_t n)
{
	_cleanup_(cJSON_Deletep) cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; arr && i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		if (!o || !cJSON_AddItemToArray(arr, o))
			return 1;
		cJSON_AddStringToObject(o, "ref", recs[i].ref);
		cJSON_AddStringToObject(o, "digest", recs[i].digest);
		cJSON_AddStringToObject(o, "manifestDigest", recs[i].manifest_digest);
		cJSON_AddStringToObject(o, "configDigest", recs[i].config_digest);
		cJSON_AddNumberToObject(o, "size", (double)recs[i].size);
		cJSON_AddNumberToObject(o, "pulledAt", (double)recs[i].pulled_at);
	}
	_cleanup_free_ char *text = arr ? cJSON_Print(arr) : NULL;
	if (!text)
		return 1;
	puts(text);
	return 0;
}

int cmd_images(struct cli *c, int argc, char **argv)
{
	_cleanup_(img_store_freep) struct img_store *s = NULL;
	static const struct cli_cmd cmd = {
		.usage = "berth images [--root DIR] [--output table|json]",
		.help = "Lists the store's images: IMAGE, DIGEST, SIZE, PULLED (json: an array of\n"
			"{ref, digest, size, pulledAt}).\n",
	};
	int first, rc = open_store(c, argc, argv, 0, &cmd, &s, &first);
	if (rc >= 0)
		return rc;
	_cleanup_free_ struct img_record *recs = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	if (img_store_list(s, &recs, &n, &err) < 0)
		return cli_fail(&err);
	if (c->json)
		return print_images_json(recs, n);
	printf("%-50s %-15s %-10s %s\n", "IMAGE", "DIGEST", "SIZE", "PULLED");
	for (size_t i = 0; i < n; i++) {
		char size[16], when[32];
		human_size(recs[i].size, size);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&recs[i].pulled_at));
		printf("%-50s %-15.12s %-10s %s\n", recs[i].ref, recs[i].digest + 7, size, when);
	}
	return 0;
}

/* Accepts a reference in any form img_ref_parse takes, or a digest prefix. */
static int find_image(struct img_store *s, const char *arg, struct img_record *rec,
		      struct berth_err *err)
{
	struct img_ref ref;
	if (img_ref_parse(arg, &ref, NULL) == 0) {
		char canon[IMG_REF_STR_MAX];
		img_ref_format(&ref, canon);
		if (img_store_find(s, canon, rec, NULL) == 0)
			return 0;
	}
	return img_store_find(s, arg, rec, err);
}

int cmd_rmi(struct cli *c, int argc, char **argv)
{
	_cleanup_(img_store_freep) struct img_store *s = NULL;
	static const struct cli_cmd cmd = {
		.usage = "berth rmi [--root DIR] REF",
		.help = "Removes image REF (a reference or a digest prefix) from the store, then\n"
			"deletes the blobs and layers no image uses any more.\n",
	};
	int first, rc = open_store(c, argc, argv, 1, &cmd, &s, &first);
	if (rc >= 0)
		return rc;
	struct img_record rec;
	struct berth_err err = { 0 };
	size_t blobs = 0, layers = 0;
	if (find_image(s, argv[first], &rec, &err) < 0 ||
	    img_store_remove(s, rec.ref, &err) < 0)
		return cli_fail(&err);
	printf("untagged %s\n", rec.ref);
	if (img_store_gc(s, &blobs, &layers, &err) < 0)
		return cli_fail(&err);
	printf("deleted %zu blob%s, %zu layer%s\n", blobs, blobs == 1 ? "" : "s", layers,
	       layers == 1 ? "" : "s");
	return 0;
}

int cmd_inspect_image(struct cli *c, int argc, char **argv)
{
	_cleanup_(img_store_freep) struct img_store *s = NULL;
	static const struct cli_cmd cmd = {
		.usage = "berth inspect-image [--root DIR] REF",
		.help = "Prints the config of image REF (a reference or a digest prefix) as JSON.\n",
	};
	int first, rc = open_store(c, argc, argv, 1, &cmd, &s, &first);
	if (rc >= 0)
		return rc;
	struct img_record rec;
	struct berth_err err = { 0 };
	_cleanup_free_ char *buf = NULL;
	size_t len;
	if (find_image(s, argv[first], &rec, &err) < 0 ||
	    img_store_read_blob(s, rec.config_digest, IMG_MANIFEST_MAX, &buf, &len, &err) < 0)
		return cli_fail(&err);
	_cleanup_(cJSON_Deletep) cJSON *cfg = cJSON_ParseWithLength(buf, len);
	_cleanup_free_ char *text = cfg ? cJSON_Print(cfg) : NULL;
	if (!text) {
		berth_errf(&err, EBADMSG, "image %s: config %s is not valid JSON", rec.ref, rec.config_digest);
		return cli_fail(&err);
	}
	puts(text);
	return 0;
}

/* ---- berth task-image: the daemon's image helper ---- */

/* REF as a task runs it: pulled (a tag may have moved), or the stored image
 * when the registry cannot be reached or refuses — the ECS agent's
 * default pull behaviour. */
/* The stored image a task runs when its pull fails: REF's record as
 * find_image() finds it, or, for a reference pinned to a digest (a service
 * deployment's), any record of that digest: its first task pulled the
 * image by tag.  0 or -1. */
static int stored_image(struct img_store *s, const char *ref, struct img_record *rec)
{
	struct img_ref r;
	_cleanup_free_ struct img_record *recs = NULL;
	size_t n = 0;
	if (find_image(s, ref, rec, NULL) == 0)
		return 0;
	if (img_ref_parse(ref, &r, NULL) < 0 || !r.digest[0] ||
	    img_store_list(s, &recs, &n, NULL) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (strcmp(recs[i].digest, r.digest) == 0) {
			*rec = recs[i];
			return 0;
		}
	return -1;
}

/* The ECS agent's default: pull, and fall back to the stored image. */
static int task_image_record(struct img_store *s, struct cli *c, const char *ref,
			     struct img_record *rec, struct berth_err *err)
{
	struct img_pull_opts opts = { .registry = c->registry, .limits = c->pull_limits,
				      .keep_same_record = true };
	int r = img_pull(s, ref, &opts, rec, err);
	return r < 0 && stored_image(s, ref, rec) == 0 ? 0 : r;
}

/* {"ref", "digest", "config": the image config, "layers": [dirs, bottom
 * first]} of REC. */
static int task_image_json(struct img_store *s, const struct img_record *rec, cJSON **ret,
			   struct berth_err *err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r = img_store_read_blob(s, rec->config_digest, 4u << 20, &text, &len, err);
	if (r < 0)
		return r;
	struct img_config cfg = { 0 };
	if ((r = img_config_parse(text, len, &cfg, err)) < 0)
		return r;
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	cJSON *config = cJSON_ParseWithLength(text, len);
	cJSON *layers = NULL;
	if (!o || !config || !cJSON_AddItemToObject(o, "config", config) ||
	    !cJSON_AddStringToObject(o, "ref", rec->ref) ||
	    !cJSON_AddStringToObject(o, "digest", rec->digest) ||
	    !(layers = cJSON_AddArrayToObject(o, "layers")))
		r = berth_errf(err, ENOMEM, "out of memory");
	char chain[72] = "", path[4096];
	for (size_t i = 0; r == 0 && i < cfg.n_diff_ids; i++) {
		if (img_chain_id(i ? chain : NULL, cfg.diff_ids[i], chain) < 0)
			r = berth_errf(err, ENOMEM, "out of memory");
		else if ((r = img_store_layer_path(s, chain, path, sizeof(path), err)) == 0 &&
			 !cJSON_AddItemToArray(layers, cJSON_CreateString(path)))
			r = berth_errf(err, ENOMEM, "out of memory");
	}
	img_config_done(&cfg);
	if (r == 0)
		*ret = TAKE_PTR(o);
	return r;
}

/* One `task-image REF`: the answer on stdout, or the error on stderr; the
 * exit status. */
static int task_image(struct cli *c, const char *ref)
{
	_cleanup_(img_store_freep) struct img_store *s = NULL;
	struct img_record rec;
	struct berth_err err = { 0 };
	_cleanup_(cJSON_Deletep) cJSON *o = NULL;
	if (img_store_open(c->root, &s, &err) < 0 || task_image_record(s, c, ref, &rec, &err) < 0 ||
	    task_image_json(s, &rec, &o, &err) < 0)
		return cli_fail(&err);
	_cleanup_free_ char *text = cJSON_PrintUnformatted(o);
	if (!text || puts(text) == EOF || fflush(stdout) == EOF) {
		fprintf(stderr, "berth: task-image %s: cannot write the answer\n", ref);
		return 1;
	}
	return 0;
}

/* ---- berth task-image --worker: berthd's pull worker ----
 *
 * Started once by berthd with a SOCK_SEQPACKET socket as its stdin, so that
 * a task's pull costs a fork of a process whose libraries (libcurl's 50
 * or so) are loaded and initialised already, rather than an exec.  Each
 * request is one message: the reference, with three descriptors: the
 * pull's stdout and stderr (pipes berthd reads) and a control socket.  The
 * worker forks a child that runs exactly `task-image REF` (the same
 * limits, errors and fallback), sends the child's pid and pidfd on the
 * control socket (berthd SIGKILLs it through the pidfd on StopTask) and,
 * once the child exited, its wait status.  The worker itself never reads
 * registry data: a hostile registry reaches only the child, which holds
 * nothing but its own pipes.  Children die with the worker and the worker
 * with berthd (PR_SET_PDEATHSIG); the worker exits when berthd closes the
 * socket. */

#define WORKER_PULLS_MAX 256

struct worker_pull {
	int pidfd;
	int ctl;
};

static _Noreturn void worker_child(struct cli *c, const char *ref, const int fds[3],
				   pid_t worker)
{
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != worker || null < 0 ||
	    dup2(null, 0) < 0 || dup2(fds[0], 1) < 0 || dup2(fds[1], 2) < 0)
		_exit(127);
	/* Nothing of the worker's (other pulls' control sockets) stays open. */
	close_range(3, ~0U, 0);
	_exit(task_image(c, ref));
}

/* One request from SOCK: 1 with REF and FDS, 0 at EOF (berthd is gone),
 * -1 for anything else (a malformed message is dropped). */
static int worker_recv(int sock, char *ref, size_t n, int fds[3])
{
	ssize_t k = berth_recv_fds(sock, ref, n - 1, fds, 3, 0);
	if (k <= 0)
		return k == 0 ? 0 : -1;
	ref[k] = '\0';
	return 1;
}

/* Starts the pull a request asks for; 1 when P now tracks it.  P NULL: at
 * the limit, the request is refused at once (berthd then execs the helper
 * itself), so that pulls stuck on a slow registry never hold up others. */
static int worker_start(struct cli *c, int sock, struct worker_pull *p)
{
	char ref[IMG_REF_STR_MAX + 1];
	int fds[3];
	int r = worker_recv(sock, ref, sizeof(ref), fds);
	if (r <= 0)
		return r;
	if (!p) {
		for (int i = 0; i < 3; i++)
			close(fds[i]);
		return -1;
	}
	pid_t worker = getpid(), pid = fork();
	if (pid == 0)
		worker_child(c, ref, fds, worker);
	close(fds[0]);
	close(fds[1]);
	int pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
	int v = pid;
	if (pidfd >= 0 && berth_send_fds(fds[2], &v, sizeof(v), &pidfd, 1, 0) == 0) {
		*p = (struct worker_pull){ pidfd, fds[2] };
		return 1;
	}
	/* berthd reads EOF on the control socket and runs the helper itself. */
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (pidfd >= 0)
		close(pidfd);
	close(fds[2]);
	return -1;
}

/* P's child exited: its wait status to berthd. */
static void worker_finish(struct worker_pull *p)
{
	siginfo_t si = { 0 };
	int status = W_EXITCODE(127, 0);
	if (waitid(P_PIDFD, (id_t)p->pidfd, &si, WEXITED) == 0)
		status = si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0) : si.si_status;
	berth_send_fds(p->ctl, &status, sizeof(status), NULL, 0, 0);
	close(p->ctl);
	close(p->pidfd);
}

static int task_image_worker(struct cli *c)
{
	struct berth_err err = { 0 };
	if (img_registry_init(&err) < 0)
		return cli_fail(&err);
	struct worker_pull pulls[WORKER_PULLS_MAX];
	struct pollfd pfd[WORKER_PULLS_MAX + 1];
	size_t n = 0;
	for (;;) {
		pfd[0] = (struct pollfd){ .fd = 0, .events = POLLIN };
		for (size_t i = 0; i < n; i++)
			pfd[i + 1] = (struct pollfd){ .fd = pulls[i].pidfd, .events = POLLIN };
		if (poll(pfd, n + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			berth_errnof(&err, errno, "task-image worker: poll");
			return cli_fail(&err);
		}
		for (size_t i = n; i-- > 0;)
			if (pfd[i + 1].revents) {
				worker_finish(&pulls[i]);
				pulls[i] = pulls[--n];
			}
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			int r = worker_start(c, 0, n < WORKER_PULLS_MAX ? &pulls[n] : NULL);
			if (r == 0)
				return 0;
			n += r > 0;
		}
	}
}

static int set_worker(void *ctx, int ch, const char *arg)
{
	(void)ch, (void)arg;
	*(bool *)ctx = true;
	return 0;
}

int cmd_task_image(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = { { "worker", no_argument, NULL, 'w' }, { 0 } };
	bool worker = false;
	const struct cli_cmd cmd = {
		.usage = "berth task-image [--root DIR] REF | --worker",
		.help = "For berthd: pulls REF as the ECS agent does (the stored image when the\n"
			"registry cannot be reached) and prints {ref, digest, config, layers} as\n"
			"one line of JSON.  --worker: berthd's pull worker, which runs each\n"
			"request from the socket on its stdin in a child (docs/images.md).\n",
		.opts = opts, .set = set_worker, .ctx = &worker,
	};
	int first, rc = cli_parse_args(c, argc, argv, &cmd, 0, 1, &first);
	if (rc >= 0)
		return rc;
	if (worker != (argc - first == 0)) {
		fprintf(stderr, "usage: %s\n", cmd.usage);
		return 2;
	}
	return worker ? task_image_worker(c) : task_image(c, argv[first]);
}
