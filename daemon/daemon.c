/* daemon/daemon: start-up, listeners, signals, shutdown. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "daemon/elb/elb.h"
#include "daemon/lb/lb.h"
#include "daemon/server/api.h"
#include "daemon/server/credentials.h"
#include "daemon/server/exec_gate.h"
#include "daemon/daemon.h"
#include "daemon/server/endpoint.h"
#include "daemon/server/introspect.h"
#include "daemon/server/log_limit.h"
#include "daemon/server/metadata.h"
#include "daemon/sched/instance.h"
#include "daemon/sched/taskmeta.h"
#include "daemon/sched/sched.h"
#include "daemon/sched/volumes.h"
#include "daemon/svc/svc.h"
#include "daemon/store/store.h"
#include "daemon/store/store_secrets.h"

/* lb.h declares no scope cleanup of its own. */
DEFINE_CLEANUP_FUNC(struct lb, lb_free)

DEFINE_CLEANUP_FUNC(struct event_base, event_base_free)
DEFINE_CLEANUP_FUNC(struct event, event_free)
DEFINE_CLEANUP_FUNC(struct event_config, event_config_free)

/* The loop batches its epoll_ctl calls (a changelist): a request that
 * reads, answers and reads again costs one epoll_ctl instead of four.
 * Safe here because every fd the loop watches is its own (socket, accept,
 * pipe, pidfd), never a dup() of another watched one. */
static struct event_base *new_loop(void)
{
	_cleanup_(event_config_freep) struct event_config *cfg = event_config_new();
	if (!cfg || event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) < 0)
		return NULL;
	return event_base_new_with_config(cfg);
}

struct listen_spec {
	bool tcp;
	char *path;                     /* unix */
	char *host, *port;              /* tcp */
};

static void specs_free(struct listen_spec *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].path);
		free(v[i].host);
		free(v[i].port);
	}
}

/* "unix:PATH" | "tcp:HOST:PORT" | "tcp:[V6]:PORT" */
static int parse_listen(const char *s, struct listen_spec *ret, struct berth_err *err)
{
	*ret = (struct listen_spec){ 0 };
	if (strncmp(s, "unix:", 5) == 0) {
		if (s[5] != '/')
			return berth_errf(err, EINVAL, "--listen %s: the socket path must be absolute", s);
		ret->path = strdup(s + 5);
		return ret->path ? 0 : berth_errf(err, ENOMEM, "out of memory");
	}
	if (strncmp(s, "tcp:", 4) != 0)
		return berth_errf(err, EINVAL, "--listen %s: expected unix:PATH or tcp:HOST:PORT", s);
	const char *h = s + 4, *colon;
	size_t hn;
	if (*h == '[') {
		const char *close = strchr(h, ']');
		if (!close || close[1] != ':')
			return berth_errf(err, EINVAL, "--listen %s: expected tcp:[ADDRESS]:PORT", s);
		h++;
		hn = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(h, ':');
		if (!colon)
			return berth_errf(err, EINVAL, "--listen %s: expected tcp:HOST:PORT", s);
		hn = (size_t)(colon - h);
	}
	const char *p = colon + 1;
	char *end;
	long port = strtol(p, &end, 10);
	if (!hn || !*p || *end || port < 0 || port > 65535)
		return berth_errf(err, EINVAL, "--listen %s: expected tcp:HOST:PORT with a port 0-65535", s);
	ret->tcp = true;
	ret->host = strndup(h, hn);
	ret->port = strdup(p);
	return ret->host && ret->port ? 0 : berth_errf(err, ENOMEM, "out of memory");
}

static bool all_of(const char *s, const char *set)
{
	return *s && strspn(s, set) == strlen(s);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct event_base *base = arg;
	(void)sig;
	event_base_loopbreak(base);
}

static void say(const struct daemon_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void say(const struct daemon_opts *o, const char *fmt, ...)
{
	if (!o->log)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(o->log, fmt, ap);
	va_end(ap);
	fflush(o->log);
}

/* The task engine's hooks (sched.h): a service's task changed, stopped
 * or is to stop.  What they reach: the service engine is NULL while the
 * task engine adopts tasks. */
struct task_watchers {
	struct svc *svc;
	struct elb *elb;
};

static void on_task_changed(void *arg, const struct store_task *t)
{
	struct task_watchers *w = arg;
	elb_task_changed(w->elb, w->svc, t);
	if (t->service_name)
		svc_poke(w->svc, t->cluster, t->service_name);
}

static void on_task_stopped(void *arg, const struct store_task *t)
{
	struct task_watchers *w = arg;
	elb_task_changed(w->elb, w->svc, t);
	svc_task_stopped(w->svc, t);
}

static void on_target_health(void *arg, const struct store_task *t,
			     struct svc_target_report *ret)
{
	elb_task_health(arg, t, ret);
}

static int64_t on_task_deregister(void *arg, const struct store_task *t, int64_t now_ms)
{
	(void)now_ms;
	struct task_watchers *w = arg;
	return elb_task_deregister(w->elb, w->svc, t);
}

/* The task endpoint before the scheduler: its socket is bound first
 * (IP_FREEBIND: the address goes on the bridge with the network's rules,
 * which need the port bound, when it was 0), and the plans carry its
 * URL and key. */
struct task_endpoint {
	int fd;                     /* -1: off */
	char spec[INET_ADDRSTRLEN + 8];  /* "a.b.c.d:port", the port as bound */
	struct taskmeta meta;
};

static void task_endpoint_done(struct task_endpoint *te)
{
	if (te->fd >= 0)
		close(te->fd);
}

static bool is_off(const char *spec)
{
	return strcmp(spec, "off") == 0;
}

static int task_endpoint_bind(const struct daemon_opts *o, const char *root,
			      struct task_endpoint *te, struct berth_err *err)
{
	const char *spec = o->task_endpoint ? o->task_endpoint : DAEMON_DEFAULT_TASK_ENDPOINT;
	if (is_off(spec))
		return o->role_credentials
			       ? berth_errf(err, EINVAL, "--task-role-credentials: the task endpoint "
					    "is off (--task-endpoint off)") : 0;
	/* Refused at start rather than at a task's first request. */
	_cleanup_(api_credentials_freep) struct api_credentials *check = NULL;
	if (o->role_credentials && api_credentials_load(o->role_credentials, &check, err) < 0)
		return berth_err_wrap(err, "--task-role-credentials");
	int port, r = taskmeta_key_load(root, te->meta.key, err);
	if (r < 0 || (r = endpoint_bind(spec, "--task-endpoint", true, &te->fd, &port, err)) < 0)
		return r;
	char addr[INET_ADDRSTRLEN];
	snprintf(addr, sizeof(addr), "%.*s", (int)strcspn(spec, ":"), spec);
	snprintf(te->spec, sizeof(te->spec), "%s:%d", addr, port);
	snprintf(te->meta.base, sizeof(te->meta.base), port == 80 ? "http://%s" : "http://%s:%d",
		 addr, port);
	return 0;
}

/* The task endpoint's server and the introspection (off: *ret NULL). */
static int start_endpoints(const struct daemon_opts *o, struct event_base *base,
			   struct store *store, struct sched *sched, struct task_endpoint *te,
			   struct metadata **ret_md, struct introspect **ret_in,
			   struct berth_err *err)
{
	const char *region = o->region ? o->region : DAEMON_DEFAULT_REGION;
	const char *account = o->account_id ? o->account_id : DAEMON_DEFAULT_ACCOUNT;
	int r = 0;
	if (te->fd >= 0) {
		struct metadata_config mc = {
			.meta = &te->meta, .sched = sched, .role_credentials = o->role_credentials,
			.region = region, .account_id = account,
			.subnet = o->subnet ? o->subnet : SCHED_DEFAULT_SUBNET, .log = o->log,
		};
		int fd = te->fd;
		te->fd = -1;
		if ((r = metadata_new(base, store, fd, &mc, ret_md, err)) < 0)
			return r;
		say(o, "berth daemon: task endpoint on %s\n", te->meta.base);
	}
	const char *spec = o->introspection ? o->introspection : DAEMON_DEFAULT_INTROSPECTION;
	if (is_off(spec))
		return 0;
	struct introspect_config ic = {
		.spec = spec, .region = region, .account_id = account,
		.instance_id = sched_instance_id(sched),
		.version = o->version ? o->version : "Berth", .log = o->log,
	};
	return introspect_new(base, store, &ic, ret_in, err);
}

static int start_sched(const struct daemon_opts *o, struct event_base *base, struct store *store,
		       const struct store_key *key, const char *root, const char *run_root,
		       const struct sched_hooks *hooks, const struct task_endpoint *te,
		       struct sched **ret, struct berth_err *err)
{
	char shim[4096], cli[4096];
	int r = 0;
	if ((!o->shim_bin && (r = berth_exe_sibling("berth-shim", shim, sizeof(shim), err)) < 0) ||
	    (r = berth_exe_sibling("berth", cli, sizeof(cli), err)) < 0)
		return r;
	const char *log_root = o->log_root ? o->log_root : DAEMON_DEFAULT_LOG_ROOT;
	if ((r = berth_mkdir_p(log_root, 0755, err)) < 0)
		return berth_err_wrap(err, "--log-root %s", log_root);
	if ((r = volumes_check_prefixes(&o->policy, (const char *const[]){ root, run_root, log_root },
					3, err)) < 0)
		return r;
	struct sched_config sc = {
		.root = root, .run_root = run_root, .log_root = log_root,
		.shim_bin = o->shim_bin ? o->shim_bin : shim,
		.cli_bin = cli,
		.bridge = o->bridge ? o->bridge : SCHED_DEFAULT_BRIDGE,
		.subnet = o->subnet ? o->subnet : SCHED_DEFAULT_SUBNET,
		.nft_table = o->nft_table ? o->nft_table : SCHED_DEFAULT_NFT_TABLE,
		.nat = !o->no_nat,
		.blocked = o->blocked_addresses,
		.task_endpoint = te->fd >= 0 ? te->spec : NULL,
		.meta = te->fd >= 0 ? &te->meta : NULL,
		.cgroup_name = o->cgroup_name ? o->cgroup_name : SCHED_DEFAULT_CGROUP,
		.registry = { .auth_file = o->registry_auth, .insecure = o->insecure_registries,
			      .n_insecure = o->n_insecure },
		.pull_limits = o->pull_limits,
		.task_retention_ms = o->task_retention_ms ? o->task_retention_ms
							  : SCHED_DEFAULT_TASK_RETENTION_MS,
		.log_retention_ms = o->log_retention_ms ? o->log_retention_ms
							: SCHED_DEFAULT_LOG_RETENTION_MS,
		.region = o->region ? o->region : DAEMON_DEFAULT_REGION,
		.account_id = o->account_id ? o->account_id : DAEMON_DEFAULT_ACCOUNT,
		.secrets_key = key,
		.policy = o->policy,
		.log = o->log,
		.hooks = *hooks,
	};
	if (access(sc.shim_bin, X_OK) < 0)
		return berth_errnof(err, errno, "the task agent %s", sc.shim_bin);
	if (access(sc.cli_bin, X_OK) < 0)
		return berth_errnof(err, errno, "the image and network helper %s", sc.cli_bin);
	return sched_new(base, store, &sc, ret, err);
}

static int serve(const struct daemon_opts *o, const char *root, const char *run_root,
		 struct listen_spec *specs, size_t n, const struct api_credentials *creds,
		 struct berth_err *err)
{
	int r = berth_mkdir_p(root, 0700, err);
	if (r < 0)
		return berth_err_wrap(err, "--root %s", root);
	r = berth_mkdir_p(run_root, 0755, err);
	if (r < 0)
		return berth_err_wrap(err, "--run-root %s", run_root);
	_cleanup_free_ char *db = NULL;
	if (asprintf(&db, "%s/berth.db", root) < 0)
		return berth_errf(err, ENOMEM, "out of memory");
	_cleanup_(store_closep) struct store *store = NULL;
	r = store_open(db, &store, err);
	if (r < 0)
		return r;
	/* The host key sealing SSM and Secrets Manager values: created on
	 * first start, refused when it is not the database's (store_secrets.h). */
	_cleanup_free_ char *key_path = NULL;
	if (asprintf(&key_path, "%s/%s", root, STORE_KEY_FILE) < 0)
		return berth_errf(err, ENOMEM, "out of memory");
	_cleanup_(store_key_freep) struct store_key *key = NULL;
	if ((r = store_key_open(store, key_path, &key, err)) < 0)
		return r;
	/* The API's reads see committed state only (store.h, group commit). */
	_cleanup_(store_closep) struct store *reader = NULL;
	r = store_open_reader(store, &reader, err);
	if (r < 0)
		return r;

	_cleanup_(event_base_freep) struct event_base *base = new_loop();
	if (!base)
		return berth_errf(err, ENOMEM, "cannot create the event loop");
	_cleanup_(event_freep) struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	_cleanup_(event_freep) struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
	if (!sigterm || !sigint || event_add(sigterm, NULL) < 0 || event_add(sigint, NULL) < 0)
		return berth_errf(err, ENOMEM, "cannot watch SIGTERM/SIGINT");
	/* One transaction and one fsync per turn of the loop (store.h). */
	if ((r = store_group_attach(store, base, err)) < 0)
		return r;
	/* And its fsync off the loop: the API answers meanwhile. */
	struct berth_err sync_err = { 0 };
	if (store_group_sync_apart(store, &sync_err) < 0)
		fprintf(stderr, "berth daemon: %s; commits sync on the loop\n", sync_err.msg);

	/* The load balancers: HAProxy (daemon/lb) serving what the ELBv2 API
	 * (daemon/elb) keeps in the store, re-applied now; before the task
	 * engine, whose hooks tell the API about services' tasks (adopted
	 * ones too), and freed after it. */
	_cleanup_free_ char *lb_dir = NULL;
	if (asprintf(&lb_dir, "%s/lb", run_root) < 0)
		return berth_errf(err, ENOMEM, "out of memory");
	struct lb_config lc = { .run_dir = lb_dir, .bind_address = o->lb_address, .log = o->log };
	_cleanup_(lb_freep) struct lb *lb = NULL;
	if ((r = lb_new(base, &lc, &lb, err)) < 0)
		return r;
	char instance[INSTANCE_ID_LEN + 1];   /* the task engine's, for instance targets */
	instance_id(root, instance);
	struct elb_config ec = {
		.region = o->region ? o->region : DAEMON_DEFAULT_REGION,
		.account_id = o->account_id ? o->account_id : DAEMON_DEFAULT_ACCOUNT,
		.dns_name = o->lb_address, .lb = lb, .instance_id = instance, .log = o->log,
	};
	_cleanup_(elb_freep) struct elb *elb = NULL;
	if ((r = elb_new(base, store, &ec, &elb, err)) < 0)
		return r;

	/* Before the API: RunTask needs it, and a restarted daemon adopts
	 * its tasks before it answers about them. */
	struct task_watchers watchers = { .elb = elb };  /* the hooks' argument */
	struct sched_hooks hooks = { on_task_changed, on_task_stopped, on_task_deregister,
				     &watchers };
	_cleanup_(task_endpoint_done) struct task_endpoint te = { .fd = -1 };
	r = task_endpoint_bind(o, root, &te, err);
	if (r < 0)
		return r;
	_cleanup_(sched_freep) struct sched *sched = NULL;
	r = start_sched(o, base, store, key, root, run_root, &hooks, &te, &sched, err);
	if (r < 0)
		return r;
	/* Freed before the scheduler, whose stats answers they await. */
	_cleanup_(metadata_freep) struct metadata *md = NULL;
	_cleanup_(introspect_freep) struct introspect *intro = NULL;
	if ((r = start_endpoints(o, base, store, sched, &te, &md, &intro, err)) < 0)
		return r;
	/* Freed before the scheduler whose tasks it watches. */
	struct svc_config vc = { .healthy_after_ms = o->service_healthy_after_ms,
				 .targets = { on_target_health, elb } };
	struct svc_sched engine_arg = { sched, store };
	struct svc_engine engine;
	svc_engine_sched(&engine_arg, &engine);
	_cleanup_(svc_freep) struct svc *services = NULL;
	if ((r = svc_new(base, store, &engine, &svc_real_clock, &vc, o->log, &services, err)) < 0)
		return r;
	watchers.svc = services;

	struct api_config cfg = {
		.region = o->region ? o->region : DAEMON_DEFAULT_REGION,
		.account_id = o->account_id ? o->account_id : DAEMON_DEFAULT_ACCOUNT,
		.credentials = creds,
		.insecure_no_auth = o->insecure_no_auth,
		.log = o->log,
		.reader = reader,
		.sched = sched,
		.svc = services,
		.secrets_key = key,
		.elb = elb,
		.request_timeout_ms = o->request_timeout_ms,
		.max_connections = o->max_connections,
		.max_connections_per_source = o->max_connections_per_source,
	};
	/* Declared after the loop's events so it is freed first: its
	 * connections and listeners live on BASE. */
	_cleanup_(api_freep) struct api *api = NULL;
	r = api_new(base, store, &cfg, &api, err);
	if (r < 0)
		return r;
	/* `berth exec`: a socket beside each unix API socket. */
	_cleanup_(exec_gate_freep) struct exec_gate *gate = NULL;
	if ((r = exec_gate_new(base, sched, &gate, err)) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (!specs[i].tcp) {
			r = api_listen_unix(api, specs[i].path, err);
			if (r >= 0)
				r = exec_gate_listen(gate, specs[i].path, err);
			if (r < 0)
				return r;
			say(o, "berth daemon: listening on unix:%s\n", specs[i].path);
			continue;
		}
		int port;
		r = api_listen_tcp(api, specs[i].host, specs[i].port, &port, err);
		if (r < 0)
			return r;
		say(o, "berth daemon: listening on tcp:%s:%d (%s)\n", specs[i].host, port,
		    creds ? "SigV4" : "NO AUTHENTICATION");
	}
	say(o, "berth daemon: ready (region %s, account %s)\n", cfg.region, cfg.account_id);

	if (event_base_dispatch(base) < 0)
		return berth_errf(err, EIO, "the event loop failed");
	say(o, "berth daemon: shutting down\n");
	return 0;
}

/* The soft open-file limit raised to the hard one: each task and each
 * API connection holds a descriptor, and the default soft limit (1024)
 * is reached by a thousand tasks or clients.  Returns the limit now. */
static rlim_t raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = { rl.rlim_max, rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			rl = want;
	}
	return rl.rlim_cur;
}

/* Connections the open-file limit leaves room for, after a quarter of it
 * (at least 64) for tasks, the store, pulls and the listeners. */
static size_t connections_for(rlim_t nofile)
{
	rlim_t reserve = nofile / 4 > 64 ? nofile / 4 : 64;
	rlim_t n = nofile > reserve + 16 ? nofile - reserve : 16;
	return n < API_MAX_CONNECTIONS ? (size_t)n : API_MAX_CONNECTIONS;
}

static int run_checked(const struct daemon_opts *o, struct berth_err *err);

int daemon_run(const struct daemon_opts *in, struct berth_err *err)
{
	struct daemon_opts o = *in;
	size_t fit = connections_for(raise_nofile());
	if (!o.max_connections)
		o.max_connections = fit;
	if (!o.max_connections_per_source)
		o.max_connections_per_source = o.max_connections / 4 ? o.max_connections / 4 : 1;
	struct log_limit ll;
	_cleanup_fclose_ FILE *log = o.log ? log_limit_open(&ll, o.log, DAEMON_LOG_RATE,
							  DAEMON_LOG_BURST, NULL) : NULL;
	if (log)
		o.log = log;
	return run_checked(&o, err);
}

static int run_checked(const struct daemon_opts *o, struct berth_err *err)
{
	const char *root = o->root ? o->root : DAEMON_DEFAULT_ROOT;
	const char *run_root = o->run_root ? o->run_root : DAEMON_DEFAULT_RUN_ROOT;
	const char *region = o->region ? o->region : DAEMON_DEFAULT_REGION;
	const char *account = o->account_id ? o->account_id : DAEMON_DEFAULT_ACCOUNT;
	if (!all_of(region, "abcdefghijklmnopqrstuvwxyz0123456789-"))
		return berth_errf(err, EINVAL, "--region %s: expected a region name like us-east-1", region);
	if (strlen(account) != 12 || !all_of(account, "0123456789"))
		return berth_errf(err, EINVAL, "--account-id %s: expected 12 digits", account);

	struct listen_spec specs[DAEMON_LISTEN_MAX];
	size_t n = 0;
	int r = 0;
	bool any_tcp = false;
	if (o->n_listen > DAEMON_LISTEN_MAX)
		return berth_errf(err, E2BIG, "at most %d --listen options", DAEMON_LISTEN_MAX);
	if (!o->n_listen) {
		specs[0] = (struct listen_spec){ 0 };
		if (asprintf(&specs[0].path, "%s/%s", run_root, DAEMON_SOCKET_NAME) < 0)
			return berth_errf(err, ENOMEM, "out of memory");
		n = 1;
	}
	for (size_t i = 0; i < o->n_listen && r == 0; i++) {
		r = parse_listen(o->listen[i], &specs[n], err);
		n++;
		any_tcp |= r == 0 && specs[n - 1].tcp;
	}
	_cleanup_(api_credentials_freep) struct api_credentials *creds = NULL;
	if (r == 0 && o->credentials_file)
		r = api_credentials_load(o->credentials_file, &creds, err);
	if (r == 0 && any_tcp && !creds && !o->insecure_no_auth)
		r = berth_errf(err, EPERM, "a TCP listener requires --credentials FILE "
			       "(or --insecure-no-auth to serve unsigned requests)");
	if (r == 0 && any_tcp && !creds)
		say(o, "berth daemon: WARNING: --insecure-no-auth: the TCP listener accepts "
			"unsigned requests; anyone who can reach it controls this host\n");

	/* A client that goes away mid-reply must not kill the daemon. */
	struct sigaction ign = { .sa_handler = SIG_IGN }, old_pipe;
	sigaction(SIGPIPE, &ign, &old_pipe);
	if (r == 0)
		r = serve(o, root, run_root, specs, n, creds, err);
	sigaction(SIGPIPE, &old_pipe, NULL);
	specs_free(specs, n);
	return r;
}
