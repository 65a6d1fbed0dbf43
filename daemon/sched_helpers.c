/* daemon/sched: the processes berthd runs rather than link their
 * libraries (docs/operations.md "Processes"): `berth task-image` pulls an
 * image for a task (libcurl, libarchive), `berth host-network` sets up the
 * bridge and NAT (libnftables), and `berth-shim PLAN` starts a task.  Each
 * prints its answer on stdout and its error, one `berth…: ` line, on
 * stderr; the caller waits for it to exit. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "daemon/api_internal.h"
#include "daemon/sched_internal.h"

#define HELPER_OUT_MAX (8u << 20)  /* an image config is capped at 4 MiB */
#define HELPER_ERR_MAX 2048
#define ARGV_MAX 64

extern char **environ;

/* Reads FD to EOF into a NUL-terminated buffer of at most MAX bytes. */
static int read_all(int fd, size_t max, char **ret, size_t *ret_len)
{
	size_t len = 0, cap = 4096;
	_cleanup_free_ char *buf = malloc(cap);
	for (ssize_t k; buf;) {
		if (len + 1 == cap && !(cap < max && (buf = realloc(buf, cap *= 2))))
			return buf ? -EFBIG : -ENOMEM;
		if ((k = read(fd, buf + len, cap - len - 1)) < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	if (!buf)
		return -ENOMEM;
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

/* Runs ARGV (argv[0] the path), stdin /dev/null; *ret_out is its stdout
 * when it exits 0, else the error is its stderr line. */
static int run_helper(char *const *argv, char **ret_out, struct berth_err *err)
{
	int out[2], errp[2];
	if (pipe2(out, O_CLOEXEC) < 0)
		return berth_errnof(err, errno, "pipe");
	if (pipe2(errp, O_CLOEXEC) < 0) {
		close(out[0]), close(out[1]);
		return berth_errnof(err, errno, "pipe");
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	close(errp[1]);
	_cleanup_close_ int ofd = out[0], efd = errp[0];
	if (rc != 0)
		return berth_errnof(err, rc, "start %s", argv[0]);
	_cleanup_free_ char *o = NULL, *e = NULL;
	size_t olen = 0, elen = 0;
	int r = read_all(ofd, HELPER_OUT_MAX, &o, &olen);
	if (read_all(efd, HELPER_ERR_MAX, &e, &elen) < 0)
		e = NULL;
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && r == 0) {
		*ret_out = TAKE_PTR(o);
		return 0;
	}
	const char *msg = e ? e : "";
	msg += strncmp(msg, "berth: ", 7) == 0 ? 7 : strncmp(msg, "berth-shim: ", 12) == 0 ? 12 : 0;
	size_t n = strcspn(msg, "\n");
	if (r < 0)
		return berth_errf(err, -r, "%s: its answer: %s", argv[0], strerror(-r));
	if (!n)
		return berth_errf(err, EIO, "%s exited with status %d", argv[0],
				  WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return berth_errf(err, EIO, "%.*s", (int)n, msg);
}

/* `berth [--root R] [--registry-auth F] [--insecure-registry H]… SUBCOMMAND` */
static size_t cli_argv(const struct sched *s, char **argv, const char *subcommand)
{
	size_t n = 0;
	argv[n++] = (char *)s->cfg.cli_bin;
	argv[n++] = "--root";
	argv[n++] = (char *)s->cfg.root;
	if (s->cfg.registry.auth_file) {
		argv[n++] = "--registry-auth";
		argv[n++] = (char *)s->cfg.registry.auth_file;
	}
	for (size_t i = 0; i < s->cfg.registry.n_insecure && n + 6 < ARGV_MAX; i++) {
		argv[n++] = "--insecure-registry";
		argv[n++] = (char *)s->cfg.registry.insecure[i];
	}
	argv[n++] = (char *)subcommand;
	return n;
}

void sched_pulled_done(struct sched_pulled *p)
{
	free(p->config);
	free(p->digest);
	for (size_t i = 0; i < p->n_layers; i++)
		free(p->layers[i]);
	free(p->layers);
}

static int parse_pulled(const char *text, struct sched_pulled *p)
{
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_Parse(text);
	const cJSON *layers = cJSON_GetObjectItemCaseSensitive(o, "layers"), *l;
	const char *digest = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "digest"));
	const cJSON *config = cJSON_GetObjectItemCaseSensitive(o, "config");
	if (!digest || !cJSON_IsObject(config) || !cJSON_IsArray(layers))
		return -EBADMSG;
	p->digest = strdup(digest);
	p->config = cJSON_PrintUnformatted(config);
	p->layers = calloc((size_t)cJSON_GetArraySize(layers) + 1, sizeof(*p->layers));
	if (!p->digest || !p->config || !p->layers)
		return -ENOMEM;
	cJSON_ArrayForEach(l, layers) {
		if (!cJSON_IsString(l))
			return -EBADMSG;
		if (!(p->layers[p->n_layers++] = strdup(l->valuestring)))
			return -ENOMEM;
	}
	return 0;
}

int sched_pull(struct sched *s, const char *ref, struct sched_pulled *p, struct berth_err *err)
{
	char *argv[ARGV_MAX];
	size_t n = cli_argv(s, argv, "task-image");
	argv[n++] = (char *)ref;
	argv[n] = NULL;
	_cleanup_free_ char *out = NULL;
	int r = run_helper(argv, &out, err);
	if (r < 0)
		return r;
	if ((r = parse_pulled(out, p)) < 0)
		return berth_errf(err, -r, "image %s: %s gave no usable answer", ref, s->cfg.cli_bin);
	return 0;
}

int sched_spawn_shim(struct sched *s, const char *plan, int *ret_pid, struct berth_err *err)
{
	char *argv[] = { (char *)s->cfg.shim_bin, (char *)plan, NULL };
	_cleanup_free_ char *out = NULL;
	int r = run_helper(argv, &out, err);
	if (r < 0)
		return r;
	if ((*ret_pid = atoi(out)) <= 0)
		return berth_errf(err, EIO, "%s: no pid in its answer", s->cfg.shim_bin);
	return 0;
}

int sched_host_network(const struct sched_config *c, struct berth_err *err)
{
	char ipam[4096];
	snprintf(ipam, sizeof(ipam), "%s/ipam", c->root);
	char *argv[] = {
		(char *)c->cli_bin, "host-network", "--bridge", (char *)c->bridge,
		"--subnet", (char *)c->subnet, "--nft-table", (char *)c->nft_table,
		"--run-root", (char *)c->run_root, "--ipam-dir", ipam,
		c->nat ? "--nat" : "--no-nat",
		c->blocked ? "--block" : NULL, (char *)c->blocked, NULL,
	};
	_cleanup_free_ char *out = NULL;
	return run_helper(argv, &out, err);
}
