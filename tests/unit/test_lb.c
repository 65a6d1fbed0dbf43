/* daemon/lb against a real HAProxy and real targets on 127.0.0.1
 * (tests/fixtures/lb_backend: each answers its own id). */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/time.h"
#include "daemon/lb/lb.h"

#define MAX_BACKENDS 4
#define DEADLINE_MS 15000

struct backend {
	pid_t pid;
	int port;
	char id[16];
};

struct fx {
	char dir[64];
	struct event_base *base;
	struct lb *lb;
	struct backend be[MAX_BACKENDS];
	size_t n_be;
	CURL *curl;
};

static const char *run_dir(struct fx *f, char *buf, size_t n)
{
	snprintf(buf, n, "%s/lb", f->dir);
	return buf;
}

/* Starts a target answering ID with STATUS; its port is in the result. */
static struct backend *backend_start(struct fx *f, const char *id, int status)
{
	char exe[4096], st[16];
	struct berth_err err = { 0 };
	assert_int_equal(berth_exe_sibling("lb_backend", exe, sizeof(exe), &err), 0);
	snprintf(st, sizeof(st), "%d", status);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		execl(exe, exe, id, st, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char line[16] = "";
	FILE *in = fdopen(p[0], "r");
	assert_non_null(fgets(line, sizeof(line), in));
	fclose(in);
	struct backend *b = &f->be[f->n_be++];
	b->pid = pid;
	b->port = atoi(line);
	snprintf(b->id, sizeof(b->id), "%s", id);
	assert_true(b->port > 0);
	return b;
}

/* A port nothing listens on now (the kernel's pick). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/berth-lb-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->base = event_base_new();
	char rd[128];
	struct lb_config cfg = { .run_dir = run_dir(f, rd, sizeof(rd)),
				 .bind_address = "127.0.0.1" };
	struct berth_err err = { 0 };
	int r = lb_new(f->base, &cfg, &f->lb, &err);
	if (r < 0)
		fail_msg("lb_new: %s", err.msg);
	f->curl = curl_easy_init();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	lb_free(f->lb);
	for (size_t i = 0; i < f->n_be; i++) {
		kill(f->be[i].pid, SIGKILL);
		waitpid(f->be[i].pid, NULL, 0);
	}
	curl_easy_cleanup(f->curl);
	event_base_free(f->base);
	char rd[128];
	/* No socket file, no pid file left: lb_free removed them. */
	_cleanup_closedir_ DIR *d = opendir(run_dir(f, rd, sizeof(rd)));
	for (struct dirent *e; d && (e = readdir(d));)
		assert_true(strcmp(e->d_name, "admin.sock") != 0 &&
			    strcmp(e->d_name, "master.sock") != 0 &&
			    strcmp(e->d_name, "haproxy.pid") != 0);
	assert_int_equal(berth_rm_rf_at(AT_FDCWD, f->dir, NULL), 0);
	free(f);
	return 0;
}

static size_t collect(char *ptr, size_t size, size_t n, void *ud)
{
	char *out = ud;
	size_t have = strlen(out), k = size * n;
	if (have + k >= 256)
		k = 255 - have;
	memcpy(out + have, ptr, k);
	out[have + k] = '\0';
	return size * n;
}

/* GET http://127.0.0.1:PORT/PATH (Host: HOST); the status, BODY the answer. */
static long get(struct fx *f, int port, const char *path, const char *host, char body[256])
{
	char url[256], hh[160];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	body[0] = '\0';
	struct curl_slist *hdrs = NULL;
	if (host) {
		snprintf(hh, sizeof(hh), "Host: %s", host);
		hdrs = curl_slist_append(NULL, hh);
	}
	curl_easy_setopt(f->curl, CURLOPT_URL, url);
	curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(f->curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(f->curl, CURLOPT_TIMEOUT_MS, 5000L);
	long code = 0;
	if (curl_easy_perform(f->curl) == CURLE_OK)
		curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	return code;
}

static void apply_ok(struct fx *f, const struct lb_state *s)
{
	struct berth_err err = { 0 };
	int r = lb_apply(f->lb, s, &err);
	if (r < 0)
		fail_msg("lb_apply: %s", err.msg);
}

static enum lb_target_state health(struct fx *f, const char *group, const struct backend *b,
				   struct lb_target_health *h)
{
	struct berth_err err = { 0 };
	int r = lb_target_health(f->lb, group, "127.0.0.1", b->port, h, &err);
	if (r < 0)
		fail_msg("lb_target_health: %s", err.msg);
	return h->state;
}

/* Runs the loop until target B of GROUP is in WANT. */
static void wait_health(struct fx *f, const char *group, const struct backend *b,
			enum lb_target_state want, struct lb_target_health *h)
{
	int64_t end = berth_mono_ms() + DEADLINE_MS;
	while (health(f, group, b, h) != want) {
		if (berth_mono_ms() > end)
			fail_msg("target %s: state %d, reason %s, not %d", b->id, h->state,
				 h->reason, want);
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		usleep(20000);
	}
}

/* COMMAND on the Runtime API: its answer in BUF. */
static void admin(struct fx *f, const char *command, char *buf, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/lb/admin.sock", f->dir);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, command, strlen(command)), (ssize_t)strlen(command));
	size_t n = 0;
	ssize_t k;
	while (n < size - 1 && (k = read(fd, buf + n, size - 1 - n)) > 0)
		n += (size_t)k;
	buf[n] = '\0';
}

/* The worker's pid from `show info` on the Runtime API. */
static long worker_pid(struct fx *f)
{
	char buf[8192];
	admin(f, "show info\n", buf, sizeof(buf));
	char *p = strstr(buf, "\nPid: ");
	assert_non_null(p);
	return atol(p + 6);
}

/* The connections HAProxy opened to target B of group "web" (`show
 * stat`'s "connect" column). */
static long connects(struct fx *f, const struct backend *b)
{
	static char buf[1 << 16];
	admin(f, "show stat\n", buf, sizeof(buf));
	char want[64];
	snprintf(want, sizeof(want), "\ng_web,t_127_0_0_1_%d,", b->port);
	/* The column's index in the header line "# pxname,svname,...". */
	const char *h = strstr(buf, ",connect,");
	assert_non_null(h);
	int col = 0;
	for (const char *p = buf; p <= h; p++)
		col += *p == ',';
	const char *row = strstr(buf, want);
	assert_non_null(row);
	for (int i = 0; i < col; i++) {
		row = strchr(row + 1, ',');
		assert_non_null(row);
	}
	return atol(row + 1);
}

#define HC_FAST \
	{ \
		LB_HTTP, "/health", 0, 1, 1, 1, 2, "200" \
	}

/* One HTTP listener forwarding to group "web" with TARGETS. */
struct one {
	struct lb_target t[MAX_BACKENDS];
	struct lb_group g;
	struct lb_forward fw;
	struct lb_listener l;
	struct lb_state s;
};

static void one_init(struct one *o, int port, struct backend **bs, size_t n)
{
	memset(o, 0, sizeof(*o));
	for (size_t i = 0; i < n; i++)
		o->t[i] = (struct lb_target){ "127.0.0.1", bs[i]->port, 1, false };
	o->g = (struct lb_group){ "web", LB_HTTP, HC_FAST, 0, o->t, n };
	o->fw = (struct lb_forward){ "web", 1 };
	o->l = (struct lb_listener){ "http",  port,
				     LB_HTTP, { LB_ACTION_FORWARD, &o->fw, 1, 0, NULL, NULL },
				     NULL,    0 };
	o->s = (struct lb_state){ &o->l, 1, &o->g, 1 };
}

/* One HTTP listener on a fresh port forwarding to group "web" with the N
 * targets BS, served, and each of them healthy: the port. */
static int serve_healthy(struct fx *f, struct one *o, struct backend **bs, size_t n)
{
	int port = free_port();
	one_init(o, port, bs, n);
	apply_ok(f, &o->s);
	struct lb_target_health h;
	for (size_t i = 0; i < n; i++)
		wait_health(f, "web", bs[i], LB_HEALTHY, &h);
	return port;
}

/* N requests on fresh connections: how many each backend answered. */
static void spread(struct fx *f, int port, int n, int counts[MAX_BACKENDS])
{
	memset(counts, 0, sizeof(int) * MAX_BACKENDS);
	curl_easy_setopt(f->curl, CURLOPT_FORBID_REUSE, 1L);
	for (int i = 0; i < n; i++) {
		char body[256];
		assert_int_equal(get(f, port, "/", NULL, body), 200);
		for (size_t j = 0; j < f->n_be; j++)
			counts[j] += strcmp(body, f->be[j].id) == 0;
	}
	curl_easy_setopt(f->curl, CURLOPT_FORBID_REUSE, 0L);
}

static void test_spread_and_drain(void **state)
{
	struct fx *f = *state;
	struct backend *bs[2] = { backend_start(f, "A", 200), backend_start(f, "B", 200) };
	struct one o;
	int port = serve_healthy(f, &o, bs, 2), c[MAX_BACKENDS];
	struct lb_target_health h;
	health(f, "web", bs[0], &h);
	assert_int_equal(h.last_code, 200);
	spread(f, port, 20, c);
	assert_int_equal(c[0] + c[1], 20);
	assert_true(c[0] >= 5 && c[1] >= 5);

	/* Drained: no new connection goes to B, and HAProxy was not reloaded. */
	long pid = worker_pid(f);
	o.t[1].draining = true;
	apply_ok(f, &o.s);
	health(f, "web", bs[1], &h);
	assert_int_equal(h.state, LB_DRAINING);
	assert_string_equal(h.reason, "Target.DeregistrationInProgress");
	spread(f, port, 10, c);
	assert_int_equal(c[0], 10);

	/* A third target added, B removed: still the same worker. */
	bs[1] = backend_start(f, "C", 200);
	one_init(&o, port, bs, 2);
	apply_ok(f, &o.s);
	wait_health(f, "web", bs[1], LB_HEALTHY, &h);
	spread(f, port, 20, c);
	assert_int_equal(c[1], 0);
	assert_true(c[0] >= 5 && c[2] >= 5);
	assert_int_equal(worker_pid(f), pid);
	struct berth_err err = { 0 };
	assert_int_equal(lb_target_health(f->lb, "web", "127.0.0.1", f->be[1].port, &h, &err),
			 -ENOENT);
}

static void test_unhealthy_gets_no_traffic(void **state)
{
	struct fx *f = *state;
	struct backend *bs[2] = { backend_start(f, "A", 200), backend_start(f, "E", 500) };
	int port = free_port(), c[MAX_BACKENDS];
	struct one o;
	one_init(&o, port, bs, 2);
	apply_ok(f, &o.s);
	struct lb_target_health h;
	wait_health(f, "web", bs[0], LB_HEALTHY, &h);
	wait_health(f, "web", bs[1], LB_UNHEALTHY, &h);
	assert_string_equal(h.reason, "Target.ResponseCodeMismatch");
	assert_int_equal(h.last_code, 500);
	spread(f, port, 10, c);
	assert_int_equal(c[0], 10);

	/* Nothing listens on a target's port: it fails its checks. */
	o.t[1].port = free_port();
	apply_ok(f, &o.s);
	struct backend gone = { 0, o.t[1].port, "gone" };
	wait_health(f, "web", &gone, LB_UNHEALTHY, &h);
	assert_string_equal(h.reason, "Target.FailedHealthChecks");

	/* A target that never answers: its checks time out. */
	struct backend *hang = backend_start(f, "H", 0);
	o.t[1].port = hang->port;
	apply_ok(f, &o.s);
	wait_health(f, "web", hang, LB_UNHEALTHY, &h);
	assert_string_equal(h.reason, "Target.Timeout");

	/* A group no listener forwards to: its targets are unused. */
	struct lb_group g2[2] = { o.g, { "spare", LB_HTTP, HC_FAST, 0, o.t, 1 } };
	o.s.groups = g2;
	o.s.n_groups = 2;
	apply_ok(f, &o.s);
	health(f, "spare", bs[0], &h);
	assert_int_equal(h.state, LB_UNUSED);
	assert_string_equal(h.reason, "Target.NotInUse");
}

/* Killed: restarted by the event loop, serving the same state. */
static void test_restart_after_kill(void **state)
{
	struct fx *f = *state;
	struct backend *bs[1] = { backend_start(f, "A", 200) };
	struct one o;
	int port = serve_healthy(f, &o, bs, 1);
	struct lb_target_health h;
	/* A target added after the last reload survives the restart too. */
	struct backend *b2 = backend_start(f, "B", 200);
	bs[0] = b2;
	struct lb_target t2[2] = { o.t[0], { "127.0.0.1", b2->port, 1, false } };
	o.g.targets = t2;
	o.g.n_targets = 2;
	apply_ok(f, &o.s);
	wait_health(f, "web", b2, LB_HEALTHY, &h);

	_cleanup_free_ char *pid_s = NULL;
	char path[128];
	snprintf(path, sizeof(path), "%s/lb/haproxy.pid", f->dir);
	assert_int_equal(berth_read_file_at(AT_FDCWD, path, 64, &pid_s, NULL, NULL), 0);
	pid_t old = atoi(pid_s);
	assert_int_equal(kill(old, SIGKILL), 0);
	/* The old worker may serve a moment longer: only answers after the
	 * new master wrote its pid count. */
	int64_t end = berth_mono_ms() + DEADLINE_MS;
	char body[256];
	bool a = false, b = false;
	curl_easy_setopt(f->curl, CURLOPT_FORBID_REUSE, 1L);
	while (!(a && b)) {
		assert_true(berth_mono_ms() < end);
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		free(pid_s);
		pid_s = NULL;
		bool restarted = berth_read_file_at(AT_FDCWD, path, 64, &pid_s, NULL, NULL) == 0 &&
				 atoi(pid_s) != old;
		if (restarted && get(f, port, "/", NULL, body) == 200) {
			a |= strcmp(body, "A") == 0;
			b |= strcmp(body, "B") == 0;
		} else {
			usleep(20000);
		}
	}
	/* The worker on the Runtime API is the new master's. */
	char stat[64], line[512] = "";
	snprintf(stat, sizeof(stat), "/proc/%ld/stat", worker_pid(f));
	_cleanup_fclose_ FILE *sf = fopen(stat, "re");
	assert_non_null(sf);
	assert_non_null(fgets(line, sizeof(line), sf));
	int ppid = 0;
	assert_non_null(strrchr(line, ')'));
	assert_int_equal(sscanf(strrchr(line, ')') + 2, "%*c %d", &ppid), 1);
	assert_int_equal(ppid, atoi(pid_s));
}

/* A registered target's connections are kept and shared: a keep-alive
 * client's requests and clients with one request per connection cost a
 * connection or so to the target, not one each. */
static void test_target_connections_reused(void **state)
{
	struct fx *f = *state;
	struct backend *bs[1] = { backend_start(f, "A", 200) };
	struct one o;
	int port = serve_healthy(f, &o, bs, 1), c[MAX_BACKENDS];
	char body[256];
	for (int i = 0; i < 10; i++)
		assert_int_equal(get(f, port, "/", NULL, body), 200);
	spread(f, port, 20, c);
	assert_int_equal(c[0], 20);
	long n = connects(f, bs[0]);
	if (n > 5)
		fail_msg("%ld connections to the target for 30 requests", n);
}

/* HAProxy's worker killed (not its master): the load balancer serves
 * again, from a new worker, and the targets never noticed. */
static void test_serves_again_after_worker_killed(void **state)
{
	struct fx *f = *state;
	struct backend *bs[1] = { backend_start(f, "A", 200) };
	struct one o;
	int port = serve_healthy(f, &o, bs, 1);
	long worker = worker_pid(f);
	assert_int_equal(kill((pid_t)worker, SIGKILL), 0);
	int64_t end = berth_mono_ms() + DEADLINE_MS;
	while (kill((pid_t)worker, 0) == 0) {
		assert_true(berth_mono_ms() < end);
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		usleep(10000);
	}
	char body[256] = "";
	curl_easy_setopt(f->curl, CURLOPT_FORBID_REUSE, 1L);
	while (get(f, port, "/", NULL, body) != 200) {
		assert_true(berth_mono_ms() < end);
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		usleep(20000);
	}
	assert_string_equal(body, "A");
	assert_int_not_equal(worker_pid(f), worker);
	assert_int_equal(kill(bs[0]->pid, 0), 0);
	assert_int_equal(waitpid(bs[0]->pid, NULL, WNOHANG), 0);
}

/* Requests to PORT until target ID answers one: the milliseconds since
 * T0 (5000 at most). */
static int64_t ms_to_first_answer(struct fx *f, int port, const char *id, int64_t t0)
{
	char body[256] = "";
	curl_easy_setopt(f->curl, CURLOPT_FORBID_REUSE, 1L);
	while (strcmp(body, id) != 0 && berth_mono_ms() - t0 < 5000) {
		get(f, port, "/", NULL, body);
		usleep(10000);
	}
	curl_easy_setopt(f->curl, CURLOPT_FORBID_REUSE, 0L);
	return berth_mono_ms() - t0;
}

/* A target gets its first check at once, not one interval later, both
 * when HAProxy starts (a reload: the config leaves new targets out) and
 * when it is registered through the Runtime API: with a 5 s interval and
 * a healthy threshold of 1, it serves well within one interval. */
static void test_new_target_checked_at_once(void **state)
{
	struct fx *f = *state;
	struct backend *bs[2] = { backend_start(f, "A", 200), backend_start(f, "B", 200) };
	int port = free_port();
	const struct lb_health_check slow = { LB_HTTP, "/health", 0, 5, 2, 1, 2, "200" };
	struct one o;
	one_init(&o, port, bs, 1);
	o.g.hc = slow;
	int64_t t0 = berth_mono_ms();
	apply_ok(f, &o.s);
	int64_t took = ms_to_first_answer(f, port, "A", t0);
	if (took >= 2500)
		fail_msg("the first target served after %lld ms (check interval 5 s)",
			 (long long)took);
	long pid = worker_pid(f);
	one_init(&o, port, bs, 2);
	o.g.hc = slow;
	t0 = berth_mono_ms();
	apply_ok(f, &o.s);
	took = ms_to_first_answer(f, port, "B", t0);
	if (took >= 2500)
		fail_msg("the registered target served after %lld ms (check interval 5 s)",
			 (long long)took);
	assert_int_equal(worker_pid(f), pid);
}

static void test_rules_and_fixed_response(void **state)
{
	struct fx *f = *state;
	struct backend *a = backend_start(f, "api", 200), *w = backend_start(f, "www", 200);
	int port = free_port();
	struct lb_target ta = { "127.0.0.1", a->port, 1, false },
			 tw = { "127.0.0.1", w->port, 1, false };
	struct lb_group g[2] = { { "api", LB_HTTP, HC_FAST, 0, &ta, 1 },
				 { "www", LB_HTTP, HC_FAST, 0, &tw, 1 } };
	struct lb_forward fa = { "api", 1 }, fw = { "www", 1 };
	const char *paths[] = { "/api/*", "/v?/x" }, *hosts[] = { "*.Example.com" },
		   *fpaths[] = { "/fixed" };
	/* A body no quoting survives: quotes, a newline, '#', a backslash. */
	const char *body = "{\"a\": 'b'}\n# not a comment \\x41 %[src]";
	struct lb_rule rules[3] = {
		{ 20, NULL, 0, hosts, 1, { LB_ACTION_FORWARD, &fw, 1, 0, NULL, NULL } },
		{ 10, paths, 2, NULL, 0, { LB_ACTION_FORWARD, &fa, 1, 0, NULL, NULL } },
		{ 5, fpaths, 1, NULL, 0, { LB_ACTION_FIXED, NULL, 0, 418, "application/json", body } },
	};
	struct lb_listener l = {
		"http", port, LB_HTTP, { LB_ACTION_FIXED, NULL, 0, 404, "text/plain", "no route" },
		rules,	3
	};
	struct lb_state s = { &l, 1, g, 2 };
	apply_ok(f, &s);
	struct lb_target_health h;
	wait_health(f, "api", a, LB_HEALTHY, &h);
	wait_health(f, "www", w, LB_HEALTHY, &h);
	char out[256];
	assert_int_equal(get(f, port, "/api/users", "www.example.com", out), 200);
	assert_string_equal(out, "api"); /* priority 10 before 20 */
	assert_int_equal(get(f, port, "/v2/x", NULL, out), 200);
	assert_string_equal(out, "api");
	assert_int_equal(get(f, port, "/v22/x", NULL, out), 404);
	assert_string_equal(out, "no route");
	assert_int_equal(get(f, port, "/", "WWW.example.COM:8080", out), 200);
	assert_string_equal(out, "www");
	assert_int_equal(get(f, port, "/", "example.com", out), 404);
	assert_int_equal(get(f, port, "/fixed", "www.example.com", out), 418);
	assert_string_equal(out, body);
	char *ct = NULL;
	curl_easy_getinfo(f->curl, CURLINFO_CONTENT_TYPE, &ct);
	assert_string_equal(ct, "application/json");
}

/* A network LB: raw TCP through, both ways. */
static void test_tcp_listener(void **state)
{
	struct fx *f = *state;
	struct backend *b = backend_start(f, "raw", 200);
	int port = free_port();
	struct lb_target t = { "127.0.0.1", b->port, 1, false };
	struct lb_group g = { "tcp", LB_TCP, { LB_TCP, NULL, 0, 1, 1, 1, 2, NULL }, 0, &t, 1 };
	struct lb_forward fw = { "tcp", 1 };
	struct lb_listener l = { "nlb", port, LB_TCP, { LB_ACTION_FORWARD, &fw, 1, 0, NULL, NULL },
				 NULL,	0 };
	struct lb_state s = { &l, 1, &g, 1 };
	apply_ok(f, &s);
	struct lb_target_health h;
	wait_health(f, "tcp", b, LB_HEALTHY, &h);
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	const char req[] = "NOT-HTTP\r\n\r\n";
	assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
	char buf[512] = "";
	size_t n = 0;
	ssize_t k;
	while (!strstr(buf, "\r\n\r\nraw") && (k = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0) {
		n += (size_t)k;
		buf[n] = '\0';
	}
	assert_non_null(strstr(buf, "\r\n\r\nraw"));

	/* A network LB may check over HTTP, and ramp a target up slowly. */
	g.hc = (struct lb_health_check){ LB_HTTP, "/ping?x=1", 0, 1, 1, 1, 2, "200-399" };
	g.slow_start_s = 5;
	apply_ok(f, &s);
	struct backend *b2 = backend_start(f, "raw2", 200);
	struct lb_target t2[2] = { t, { "127.0.0.1", b2->port, 1, false } };
	g.targets = t2;
	g.n_targets = 2;
	apply_ok(f, &s);
	wait_health(f, "tcp", b2, LB_HEALTHY, &h);
	assert_int_equal(h.last_code, 200);
}

/* A port someone else holds: -EADDRINUSE naming it; the served state stays. */
static void test_port_in_use(void **state)
{
	struct fx *f = *state;
	struct backend *bs[1] = { backend_start(f, "A", 200) };
	struct one o;
	int port = serve_healthy(f, &o, bs, 1);

	_cleanup_close_ int taken = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	assert_int_equal(bind(taken, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(taken, 1), 0);
	assert_int_equal(getsockname(taken, (struct sockaddr *)&sa, &sl), 0);
	struct lb_listener two[2] = { o.l, o.l };
	two[1].name = "second";
	two[1].port = ntohs(sa.sin_port);
	struct lb_state s2 = { two, 2, &o.g, 1 };
	struct berth_err err = { 0 };
	assert_int_equal(lb_apply(f->lb, &s2, &err), -EADDRINUSE);
	char want[32];
	snprintf(want, sizeof(want), "port %d", two[1].port);
	assert_non_null(strstr(err.msg, want));
	char body[256];
	assert_int_equal(get(f, port, "/", NULL, body), 200);
	assert_string_equal(body, "A");
	/* And a later change still works from the served state. */
	apply_ok(f, &o.s);
	assert_int_equal(get(f, port, "/", NULL, body), 200);
}

static void refused(struct fx *f, const struct lb_state *s, const char *what)
{
	struct berth_err err = { 0 };
	int r = lb_apply(f->lb, s, &err);
	if (r != -EINVAL)
		fail_msg("%s: lb_apply returned %d (%s), not -EINVAL", what, r, err.msg);
}

/* Strings that would write HAProxy config if pasted: refused, and the
 * served state is untouched. */
static void test_injection_refused(void **state)
{
	struct fx *f = *state;
	struct backend *bs[1] = { backend_start(f, "A", 200) };
	struct one o;
	int port = serve_healthy(f, &o, bs, 1), evil_port = free_port();
	char evil[128];
	snprintf(evil, sizeof(evil), "/a\n    bind 127.0.0.1:%d", evil_port);
	const char *paths[] = { evil }, *hosts[] = { "a.com if TRUE" };
	struct lb_rule ru = { 1, paths, 1, NULL, 0, o.l.default_action };
	o.l.rules = &ru;
	o.l.n_rules = 1;
	refused(f, &o.s, "newline in a path pattern");
	ru.n_paths = 0;
	ru.hosts = hosts;
	ru.n_hosts = 1;
	refused(f, &o.s, "space in a host pattern");
	o.l.n_rules = 0;
	o.l.name = "http x";
	refused(f, &o.s, "listener name with a space");
	o.l.name = "http";
	o.g.name = "web\nlisten x";
	o.fw.group = o.g.name;
	refused(f, &o.s, "group name with a newline");
	o.g.name = o.fw.group = "web";
	o.g.hc.path = "/h ealth\" #";
	refused(f, &o.s, "health check path with a space and a quote");
	o.g.hc.path = "/health";
	o.g.hc.matcher = "200 if TRUE";
	refused(f, &o.s, "matcher with words");
	o.g.hc.matcher = "200";
	o.t[0].addr = "127.0.0.1:1 backup";
	refused(f, &o.s, "target address with keywords");
	o.t[0].addr = "127.0.0.1";
	struct lb_action fixed = { LB_ACTION_FIXED, NULL, 0, 200, "text/plain\nx: y", "hi" };
	o.l.default_action = fixed;
	refused(f, &o.s, "content type with a newline");
	char body[256];
	assert_int_equal(get(f, port, "/", NULL, body), 200);
	assert_string_equal(body, "A");
	/* Nothing listens on the port the path pattern tried to bind. */
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)evil_port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), -1);
}

/* ELB's weighted forward: weight 0 gets nothing, the rest share. */
static void test_weighted_forward(void **state)
{
	struct fx *f = *state;
	struct backend *a = backend_start(f, "A", 200), *b = backend_start(f, "B", 200);
	int port = free_port(), c[MAX_BACKENDS];
	struct lb_target ta = { "127.0.0.1", a->port, 1, false },
			 tb = { "127.0.0.1", b->port, 1, false };
	struct lb_group g[2] = { { "ga", LB_HTTP, HC_FAST, 0, &ta, 1 },
				 { "gb", LB_HTTP, HC_FAST, 0, &tb, 1 } };
	struct lb_forward fw[2] = { { "ga", 1 }, { "gb", 0 } };
	struct lb_listener l = { "http", port, LB_HTTP, { LB_ACTION_FORWARD, fw, 2, 0, NULL, NULL },
				 NULL,	 0 };
	struct lb_state s = { &l, 1, g, 2 };
	apply_ok(f, &s);
	struct lb_target_health h;
	wait_health(f, "ga", a, LB_HEALTHY, &h);
	wait_health(f, "gb", b, LB_HEALTHY, &h);
	spread(f, port, 10, c);
	assert_int_equal(c[0], 10);
	fw[1].weight = 1;
	apply_ok(f, &s);
	spread(f, port, 40, c);
	assert_true(c[0] >= 5 && c[1] >= 5);
}

/* Requests to PORT for MS milliseconds on one keep-alive client in a
 * child process; its pipe gets "ok failed". */
static pid_t load_start(int port, int ms, int *ret_fd)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct fx c = { .curl = curl_easy_init() };
		int ok = 0, failed = 0;
		char body[256];
		for (int64_t end = berth_mono_ms() + ms; berth_mono_ms() < end;)
			get(&c, port, "/", NULL, body) == 200 ? ok++ : failed++;
		dprintf(p[1], "%d %d\n", ok, failed);
		_exit(0);
	}
	close(p[1]);
	*ret_fd = p[0];
	return pid;
}

/* Reloads (a rule added, changed, removed) under load: not one failed
 * request, as the old worker finishes what it has. */
static void test_reload_is_hitless(void **state)
{
	struct fx *f = *state;
	struct backend *bs[1] = { backend_start(f, "A", 200) };
	struct one o;
	int port = serve_healthy(f, &o, bs, 1);
	long pid = worker_pid(f);
	int fd;
	pid_t child = load_start(port, 3000, &fd);
	const char *paths[] = { "/nothing/*" };
	struct lb_rule ru = { 1, paths, 1, NULL, 0, { LB_ACTION_FIXED, NULL, 0, 404, NULL, NULL } };
	usleep(300000);
	o.l.rules = &ru;
	o.l.n_rules = 1;
	apply_ok(f, &o.s);
	usleep(300000);
	paths[0] = "/none/*";
	apply_ok(f, &o.s);
	usleep(300000);
	o.l.n_rules = 0;
	apply_ok(f, &o.s);
	assert_int_not_equal(worker_pid(f), pid);
	char line[64] = "";
	assert_true(read(fd, line, sizeof(line) - 1) > 0);
	close(fd);
	waitpid(child, NULL, 0);
	int ok = 0, failed = -1;
	assert_int_equal(sscanf(line, "%d %d", &ok, &failed), 2);
	assert_int_equal(failed, 0);
	assert_true(ok > 10);
}

/* A daemon killed with -9 takes its HAProxy with it: nothing holds the
 * listeners' ports, and the next daemon on the same run dir serves. */
static void test_haproxy_dies_with_daemon(void **state)
{
	struct fx *f = *state;
	struct backend *bs[1] = { backend_start(f, "A", 200) };
	int port = free_port();
	struct one o;
	one_init(&o, port, bs, 1);
	lb_free(f->lb);
	f->lb = NULL;
	char rd[128], path[160];
	run_dir(f, rd, sizeof(rd));
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* The "daemon": serves, says so, and waits for its SIGKILL. */
		struct event_base *base = event_base_new();
		struct lb_config cfg = { .run_dir = rd, .bind_address = "127.0.0.1" };
		struct lb *lb;
		struct berth_err err = { 0 };
		if (lb_new(base, &cfg, &lb, &err) < 0 || lb_apply(lb, &o.s, &err) < 0)
			_exit(1);
		(void)!write(p[1], "ok", 2);
		for (;;)
			pause();
	}
	close(p[1]);
	char ok[4] = "";
	assert_int_equal(read(p[0], ok, sizeof(ok)), 2);
	close(p[0]);
	_cleanup_free_ char *pid_s = NULL;
	snprintf(path, sizeof(path), "%s/haproxy.pid", rd);
	assert_int_equal(berth_read_file_at(AT_FDCWD, path, 64, &pid_s, NULL, NULL), 0);
	pid_t master = atoi(pid_s);
	assert_int_equal(kill(master, 0), 0);
	assert_int_equal(kill(child, SIGKILL), 0);
	assert_int_equal(waitpid(child, NULL, 0), child);
	int64_t end = berth_mono_ms() + DEADLINE_MS;
	while (kill(master, 0) == 0)
		assert_true(berth_mono_ms() < end);
	struct lb_config cfg = { .run_dir = rd, .bind_address = "127.0.0.1" };
	struct berth_err err = { 0 };
	if (lb_new(f->base, &cfg, &f->lb, &err) < 0)
		fail_msg("lb_new after a killed daemon: %s", err.msg);
	apply_ok(f, &o.s);
	struct lb_target_health h;
	wait_health(f, "web", bs[0], LB_HEALTHY, &h);
	char body[256];
	assert_int_equal(get(f, port, "/", NULL, body), 200);
}

/* A HAProxy of this run dir not started by this lb (its pid file and
 * command line say so) holds the port: lb_new stops it. */
static void test_leftover_haproxy_stopped(void **state)
{
	struct fx *f = *state;
	int port = free_port();
	lb_free(f->lb);
	f->lb = NULL;
	char rd[128], cfgp[160], master[160], pidp[160];
	run_dir(f, rd, sizeof(rd));
	snprintf(cfgp, sizeof(cfgp), "%s/leftover.cfg", rd);
	snprintf(master, sizeof(master), "%s/master.sock,mode,600", rd);
	snprintf(pidp, sizeof(pidp), "%s/haproxy.pid", rd);
	char cfg[512];
	int n = snprintf(cfg, sizeof(cfg),
			 "defaults\n    mode http\n    timeout client 5s\n"
			 "frontend f\n    bind 127.0.0.1:%d\n"
			 "    http-request return status 200 content-type text/plain string left\n",
			 port);
	assert_int_equal(berth_write_file_at(AT_FDCWD, cfgp, cfg, (size_t)n, 0600, NULL), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 1);
		dup2(nul, 2);
		execlp("haproxy", "haproxy", "-W", "-db", "-S", master, "-f", cfgp, "-p", pidp,
		       (char *)NULL);
		_exit(127);
	}
	char body[256];
	int64_t end = berth_mono_ms() + DEADLINE_MS;
	while (get(f, port, "/", NULL, body) != 200)
		assert_true(berth_mono_ms() < end);
	assert_string_equal(body, "left");
	/* Its master writes the pid file after its worker serves: wait for
	 * the whole line, not only the file. */
	for (;;) {
		_cleanup_free_ char *pid_s = NULL;
		if (berth_read_file_at(AT_FDCWD, pidp, 64, &pid_s, NULL, NULL) == 0 &&
		    strchr(pid_s, '\n'))
			break;
		assert_true(berth_mono_ms() < end);
		usleep(10000);
	}
	struct lb_config c = { .run_dir = rd, .bind_address = "127.0.0.1" };
	struct berth_err err = { 0 };
	if (lb_new(f->base, &c, &f->lb, &err) < 0)
		fail_msg("lb_new over a leftover: %s", err.msg);
	pid_t got;
	while ((got = waitpid(pid, NULL, WNOHANG)) == 0 && berth_mono_ms() < end)
		usleep(10000);
	if (got != pid) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fail_msg("lb_new left the leftover HAProxy running");
	}
	struct backend *bs[1] = { backend_start(f, "A", 200) };
	struct one o;
	one_init(&o, port, bs, 1);
	apply_ok(f, &o.s);
	struct lb_target_health h;
	wait_health(f, "web", bs[0], LB_HEALTHY, &h);
	assert_int_equal(get(f, port, "/", NULL, body), 200);
	assert_string_equal(body, "A");
}

static bool in_run_dir(struct fx *f, const char *name)
{
	char path[160];
	snprintf(path, sizeof(path), "%s/lb/%s", f->dir, name);
	return access(path, F_OK) == 0;
}

/* A daemon that serves no load balancer runs no HAProxy: it starts with
 * the first listener. */
static void test_no_haproxy_until_a_listener(void **state)
{
	struct fx *f = *state;
	struct backend *bs[1] = { backend_start(f, "A", 200) };
	struct one o;
	one_init(&o, free_port(), bs, 1);
	o.s.n_listeners = 0;
	assert_false(in_run_dir(f, "master.sock"));
	apply_ok(f, &o.s);
	assert_false(in_run_dir(f, "master.sock"));
	struct lb_target_health h;
	health(f, "web", bs[0], &h);
	assert_int_equal(h.state, LB_UNUSED);
	o.s.n_listeners = 1;
	apply_ok(f, &o.s);
	assert_true(in_run_dir(f, "master.sock"));
	wait_health(f, "web", bs[0], LB_HEALTHY, &h);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_spread_and_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unhealthy_gets_no_traffic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_after_kill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_target_connections_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_serves_again_after_worker_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_target_checked_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_and_fixed_response, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_listener, setup, teardown),
		cmocka_unit_test_setup_teardown(test_port_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_injection_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_weighted_forward, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_is_hitless, setup, teardown),
		cmocka_unit_test_setup_teardown(test_haproxy_dies_with_daemon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_haproxy_until_a_listener, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leftover_haproxy_stopped, setup, teardown),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return r;
}
