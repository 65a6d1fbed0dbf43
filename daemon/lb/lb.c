/* daemon/lb: the desired state against the served one.  A change of
 * targets only goes through the Runtime API (add/del server, drain,
 * weight); any other change writes a new haproxy.cfg, has `haproxy -c`
 * check it and reloads the master (hitless: old connections finish on the
 * old worker, and the servers' health carries over in servers.state). */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include <poll.h>
#include <dirent.h>
#include <stdio.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "daemon/lb/lb_internal.h"

#define LB_DEL_TRIES 20

static int applied_from(const struct lb_state *s, struct lb_applied **ret, size_t *ret_n)
{
	size_t n = 0;
	for (size_t i = 0; i < s->n_groups; i++)
		n += s->groups[i].n_targets;
	_cleanup_free_ struct lb_applied *v = calloc(n + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < s->n_groups; i++) {
		const struct lb_group *g = &s->groups[i];
		bool used = lb_conf_group_used(s, g->name);
		char opts[LB_SRV_OPTS_MAX];
		lb_conf_server_opts(g, opts);
		for (size_t j = 0; j < g->n_targets; j++, k++) {
			struct lb_applied *a = &v[k];
			snprintf(a->group, sizeof(a->group), "%s", g->name);
			snprintf(a->addr, sizeof(a->addr), "%s", g->targets[j].addr);
			snprintf(a->opts, sizeof(a->opts), "%s", opts);
			a->port = g->targets[j].port;
			a->weight = g->targets[j].weight;
			a->draining = g->targets[j].draining;
			a->used = used;
		}
	}
	*ret = TAKE_PTR(v);
	*ret_n = n;
	return 0;
}

/* A command whose answer is empty when it worked. */
static int cmd_quiet(struct lb *lb, struct berth_err *err, const char *verb,
		     const struct lb_applied *a, const char *tail)
{
	char srv[LB_SRV_NAME_MAX];
	lb_conf_server_name(a->addr, a->port, srv);
	_cleanup_free_ char *out = NULL;
	int r = lb_proc_cmd(lb, &out, err, "%s g_%s/%s%s", verb, a->group, srv, tail);
	if (r < 0)
		return r;
	/* Commands joined by ';' answer one after the other. */
	char *what = out + strspn(out, " \n");
	what[strcspn(what, "\n")] = '\0';
	if (*what)
		return berth_errf(err, EPROTO, "HAProxy: %s g_%s/%s%s: %s", verb, a->group, srv,
				  tail, what);
	return 0;
}

static int program_target(struct lb *lb, const struct lb_applied *a, struct berth_err *err)
{
	if (a->draining)
		return cmd_quiet(lb, err, "set server", a, " state drain");
	char w[32];
	snprintf(w, sizeof(w), " weight %d", a->weight);
	int r = cmd_quiet(lb, err, "set server", a, " state ready");
	return r < 0 ? r : cmd_quiet(lb, err, "set server", a, w);
}

int lb_program_targets(struct lb *lb, struct berth_err *err)
{
	for (size_t i = 0; i < lb->n_targets; i++) {
		if (!lb->targets[i].used)
			continue;
		int r = program_target(lb, &lb->targets[i], err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Every answer of a command line is empty but FIRST's. */
static int answers_ok(const char *out, const char *first, const char *cmd, struct berth_err *err)
{
	const char *p = out + strspn(out, " \n");
	if (strncmp(p, first, strlen(first)) != 0)
		p = out;
	else
		p += strlen(first);
	p += strspn(p, " .\n");
	if (*p == '\0')
		return 0;
	return berth_errf(err, EPROTO, "HAProxy: %s: %.*s", cmd, (int)strcspn(p, "\n"), p);
}

/* A server new to HAProxy (a registration, or a target a reload's config
 * left out): added in maintenance, then out of it down, to turn up after
 * `rise` checks, as ELB's "initial" target gets no traffic (leaving
 * maintenance sets it up: down in the same line, so no request is
 * dispatched in between).  All on one command line: HAProxy schedules a
 * dynamic server's first check at once (max-spread-checks), and that check
 * runs only if its line has enabled it by then; enabled by a later line,
 * the check found disabled waits one interval (`inter`) before the next,
 * and the target's first traffic came a whole interval after its
 * registration. */
static int add_target(struct lb *lb, const struct lb_applied *a, struct berth_err *err)
{
	char srv[LB_SRV_NAME_MAX], what[LB_NAME_MAX + LB_SRV_NAME_MAX + 16];
	lb_conf_server_name(a->addr, a->port, srv);
	snprintf(what, sizeof(what), "add server g_%s/%s", a->group, srv);
	_cleanup_free_ char *out = NULL;
	int r = lb_proc_cmd(lb, &out, err,
			    "%s %s:%d %s weight %d; enable health g_%s/%s; enable server g_%s/%s; "
			    "set server g_%s/%s health down",
			    what, a->addr, a->port, a->opts, a->draining ? 0 : a->weight, a->group,
			    srv, a->group, srv, a->group, srv);
	if (r < 0 || (r = answers_ok(out, "New server registered", what, err)) < 0)
		return r;
	return a->draining ? program_target(lb, a, err) : 0;
}

/* Out of rotation, its sessions cut, then deleted: HAProxy deletes only a
 * server in maintenance with no connection left, and idle ones close
 * asynchronously. */
static int del_target(struct lb *lb, const struct lb_applied *a, struct berth_err *err)
{
	int r = cmd_quiet(lb, err, "set server", a, " state maint");
	if (r < 0)
		return r;
	char srv[LB_SRV_NAME_MAX];
	lb_conf_server_name(a->addr, a->port, srv);
	for (int i = 0; i < LB_DEL_TRIES; i++) {
		if ((r = cmd_quiet(lb, err, "shutdown sessions server", a, "")) < 0)
			return r;
		_cleanup_free_ char *out = NULL;
		if ((r = lb_proc_cmd(lb, &out, err, "del server g_%s/%s", a->group, srv)) < 0)
			return r;
		if (strstr(out, "Server deleted"))
			return 0;
		poll(NULL, 0, 25);
	}
	return berth_errf(err, EBUSY, "HAProxy: del server g_%s/%s: still has connections",
			  a->group, srv);
}

static int diff_targets(struct lb *lb, const struct lb_applied *nv, size_t nn, struct berth_err *err)
{
	int r = 0;
	for (size_t i = 0; r == 0 && i < lb->n_targets; i++) {
		const struct lb_applied *o = &lb->targets[i];
		const struct lb_applied *n = lb_applied_find(nv, nn, o->group, o->addr, o->port);
		if (o->used && (!n || !n->used))
			r = del_target(lb, o, err);
	}
	for (size_t i = 0; r == 0 && i < nn; i++) {
		const struct lb_applied *n = &nv[i];
		const struct lb_applied *o = lb_applied_find(lb->targets, lb->n_targets, n->group,
							     n->addr, n->port);
		if (!n->used)
			continue;
		if (!o || !o->used)
			r = add_target(lb, n, err);
		else if (o->weight != n->weight || o->draining != n->draining)
			r = program_target(lb, n, err);
	}
	return r;
}

/* A port the new state listens on and the served one does not: taken by
 * someone else?  Tried before HAProxy is asked, so the error names it. */
static int ports_free(struct lb *lb, const struct lb_state *s, struct berth_err *err)
{
	for (size_t i = 0; i < s->n_listeners; i++) {
		const struct lb_listener *l = &s->listeners[i];
		bool served = false;
		for (size_t j = 0; j < lb->n_ports; j++)
			served |= lb->ports[j] == l->port;
		if (served)
			continue;
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_port = htons((uint16_t)l->port) };
		if (lb->bind)
			inet_pton(AF_INET, lb->bind, &sa.sin_addr);
		_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int one = 1;
		if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
			return berth_errnof(err, errno, "listener %s: port %d", l->name, l->port);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return berth_errnof(err, errno, "listener %s: port %d on %s", l->name,
					    l->port, lb->bind ? lb->bind : "every address");
	}
	return 0;
}

static int save_ports(struct lb *lb, const struct lb_state *s)
{
	int *p = calloc(s->n_listeners + 1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < s->n_listeners; i++)
		p[i] = s->listeners[i].port;
	free(lb->ports);
	lb->ports = p;
	lb->n_ports = s->n_listeners;
	return 0;
}

/* The master's state file for the next reload: health and drains carry
 * over to the new worker. */
static int save_server_state(struct lb *lb, struct berth_err *err)
{
	_cleanup_free_ char *out = NULL;
	int r = lb_proc_cmd(lb, &out, err, "show servers state");
	if (r < 0)
		return r;
	return berth_write_file_at(lb->dirfd, "servers.state", out, strlen(out), 0600, err);
}

static int write_cfg(struct lb *lb, const char *name, const char *cfg, struct berth_err *err)
{
	return berth_write_file_at(lb->dirfd, name, cfg, strlen(cfg), 0600, err);
}

static int reload(struct lb *lb, const struct lb_state *s, const char *cfg, struct berth_err *err)
{
	int r = ports_free(lb, s, err);
	if (r < 0)
		return r;
	if ((r = write_cfg(lb, "haproxy.cfg.new", cfg, err)) < 0)
		return r;
	if ((r = lb_proc_check(lb, "haproxy.cfg.new", err)) < 0) {
		unlinkat(lb->dirfd, "haproxy.cfg.new", 0);
		return r;
	}
	if (lb->pid > 0 && (r = save_server_state(lb, err)) < 0)
		return r;
	_cleanup_free_ char *old = NULL;
	berth_read_file_at(lb->dirfd, "haproxy.cfg", 16u << 20, &old, NULL, NULL);
	if (renameat(lb->dirfd, "haproxy.cfg.new", lb->dirfd, "haproxy.cfg") < 0)
		return berth_errnof(err, errno, "%s/haproxy.cfg", lb->run_dir);
	if (lb->pid > 0) {
		r = lb_proc_reload(lb, err);
	} else {
		/* Dead and waiting for its restart: started now instead. */
		if (lb->ev_restart)
			evtimer_del(lb->ev_restart);
		r = lb_proc_start(lb, err);
	}
	if (r < 0 && old)
		write_cfg(lb, "haproxy.cfg", old, NULL);
	return r;
}

static void put_applied(struct lb *lb, struct lb_applied *v, size_t n)
{
	free(lb->targets);
	lb->targets = v;
	lb->n_targets = n;
}

int lb_apply(struct lb *lb, const struct lb_state *state, struct berth_err *err)
{
	int r = lb_conf_validate(state, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *skel = NULL, *cfg = NULL, *next = NULL;
	_cleanup_free_ struct lb_applied *nv = NULL;
	size_t nn = 0;
	if ((r = lb_conf_render(lb, state, LB_CONF_SKELETON, &skel, err)) < 0 ||
	    (r = lb_conf_render(lb, state, LB_CONF_SERVING, &cfg, err)) < 0)
		return r;
	if ((r = applied_from(state, &nv, &nn)) < 0)
		return berth_errnof(err, -r, "load balancer state");
	/* No listener and no HAProxy: nothing to serve, nothing started (a
	 * daemon that serves no load balancer runs no HAProxy). */
	if (state->n_listeners == 0 && lb->pid <= 0) {
		if (lb->ev_restart)
			evtimer_del(lb->ev_restart);
		put_applied(lb, TAKE_PTR(nv), nn);
		free(lb->skeleton);
		lb->skeleton = TAKE_PTR(skel);
		if (save_ports(lb, state) < 0)
			return berth_errf(err, ENOMEM, "load balancer state");
		return write_cfg(lb, "haproxy.cfg", cfg, err);
	}
	if (lb->pid > 0 && lb->skeleton && strcmp(skel, lb->skeleton) == 0) {
		struct berth_err e = { 0 };
		if (diff_targets(lb, nv, nn, &e) == 0) {
			put_applied(lb, TAKE_PTR(nv), nn);
			/* For a restart after a crash. */
			return write_cfg(lb, "haproxy.cfg", cfg, err);
		}
		lb_logf(lb, "%s: reloading instead", e.msg);
	}
	if ((r = lb_conf_render(lb, state, LB_CONF_RELOAD, &next, err)) < 0 ||
	    (r = reload(lb, state, next, err)) < 0)
		return r;
	for (size_t i = 0; r == 0 && i < nn; i++)
		if (nv[i].used && !lb_served(lb, nv[i].group, nv[i].addr, nv[i].port))
			r = add_target(lb, &nv[i], err);
	put_applied(lb, TAKE_PTR(nv), nn);
	free(lb->skeleton);
	lb->skeleton = TAKE_PTR(skel);
	if (r == 0 && save_ports(lb, state) < 0)
		r = berth_errf(err, ENOMEM, "load balancer state");
	if (r == 0)
		r = lb_program_targets(lb, err);
	/* A restart must not bring the new targets up in maintenance. */
	return r < 0 ? r : write_cfg(lb, "haproxy.cfg", cfg, err);
}

/* Does process PID's command line name SOCK (our -S master socket)?
 * HAProxy's workers are forked, not exec'd: they carry the master's. */
static bool names_socket(int pid, const char *sock)
{
	char path[64], cmdline[8192];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	/* /proc files have no size: read, not berth_read_file_at(). */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t len = fd >= 0 ? read(fd, cmdline, sizeof(cmdline) - 1) : -1;
	if (len <= 0)
		return false;
	cmdline[len] = '\0';
	for (ssize_t off = 0; off < len; off += (ssize_t)strlen(cmdline + off) + 1)
		if (strcmp(cmdline + off, sock) == 0)
			return true;
	return false;
}

#define LEFTOVER_MAX 64

/* A HAProxy an earlier daemon left running (killed with -9) still holds
 * the listeners' ports: its master and every worker (found by their
 * command line naming this run dir's master socket) are stopped, and
 * waited for, so the ports are free when this returns. */
static void stop_leftover(struct lb *lb)
{
	char sock[4200];
	snprintf(sock, sizeof(sock), "%s/master.sock,mode,600", lb->run_dir);
	DIR *d = opendir("/proc");
	if (!d)
		return;
	struct pollfd p[LEFTOVER_MAX];
	nfds_t n = 0;
	struct dirent *e;
	while (n < LEFTOVER_MAX && (e = readdir(d))) {
		int pid = atoi(e->d_name);
		if (pid <= 1 || pid == getpid() || !names_socket(pid, sock))
			continue;
		int fd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (fd < 0)
			continue;
		lb_logf(lb, "stopping the HAProxy process %d an earlier daemon left running", pid);
		syscall(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0);
		p[n++] = (struct pollfd){ .fd = fd, .events = POLLIN };
	}
	closedir(d);
	/* Each gets 5 s to go, then SIGKILL and 1 s more. */
	for (nfds_t i = 0; i < n; i++) {
		if (poll(&p[i], 1, 5000) <= 0) {
			syscall(SYS_pidfd_send_signal, p[i].fd, SIGKILL, NULL, 0);
			poll(&p[i], 1, 1000);
		}
		close(p[i].fd);
	}
}

/* What a HAProxy leaves in the run dir (a killed one does not remove its
 * sockets). */
static void remove_runtime_files(struct lb *lb)
{
	static const char *const files[] = { "admin.sock", "master.sock", "haproxy.pid",
					     "haproxy.cfg.new" };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		unlinkat(lb->dirfd, files[i], 0);
}

static int check_config(const struct lb_config *cfg, struct berth_err *err)
{
	struct in_addr a;
	if (!cfg->run_dir || cfg->run_dir[0] != '/')
		return berth_errf(err, EINVAL,
				  "load balancer: the run dir must be an absolute path");
	/* It is written into haproxy.cfg and -S as it is; the socket paths
	 * must fit a sockaddr_un. */
	if (strlen(cfg->run_dir) + sizeof("/master.sock") >
		    sizeof(((struct sockaddr_un *)0)->sun_path) ||
	    strpbrk(cfg->run_dir, " \t\n\r\"'\\#$%,"))
		return berth_errf(err, EINVAL,
				  "load balancer: run dir %s: at most 95 characters, no space, "
				  "quote, backslash, '#', '$', '%%' or ','",
				  cfg->run_dir);
	if (cfg->bind_address && inet_pton(AF_INET, cfg->bind_address, &a) != 1)
		return berth_errf(err, EINVAL,
				  "load balancer: bind address %s is not an IPv4 address",
				  cfg->bind_address);
	return 0;
}

int lb_new(struct event_base *base, const struct lb_config *cfg, struct lb **ret,
	   struct berth_err *err)
{
	int r = check_config(cfg, err);
	if (r < 0)
		return r;
	struct lb *lb = calloc(1, sizeof(*lb));
	if (!lb)
		return berth_errf(err, ENOMEM, "load balancer");
	lb->base = base;
	lb->log = cfg->log;
	lb->pidfd = lb->dirfd = -1;
	lb->backoff_ms = 100;
	lb->as_root = geteuid() == 0;
	lb->run_dir = strdup(cfg->run_dir);
	lb->haproxy = strdup(cfg->haproxy ? cfg->haproxy : "haproxy");
	lb->bind = cfg->bind_address ? strdup(cfg->bind_address) : NULL;
	_cleanup_free_ char *empty = NULL;
	if (!lb->run_dir || !lb->haproxy || (cfg->bind_address && !lb->bind))
		r = berth_errf(err, ENOMEM, "load balancer");
	else if ((r = berth_open_dir_p(lb->run_dir, 0700, &lb->dirfd, err)) < 0 ||
		 fchmod(lb->dirfd, 0700) < 0)
		r = r < 0 ? r : berth_errnof(err, errno, "chmod 0700 %s", lb->run_dir);
	if (r == 0) {
		stop_leftover(lb);
		remove_runtime_files(lb);
		/* No state from an earlier HAProxy: its servers' health is stale.
		 * HAProxy itself starts with the first listener (lb_apply). */
		r = berth_write_file_at(lb->dirfd, "servers.state", "1\n", 2, 0600, err);
		const struct lb_state none = { 0 };
		if (r == 0 && (r = lb_conf_render(lb, &none, LB_CONF_SERVING, &empty, err)) == 0)
			r = write_cfg(lb, "haproxy.cfg", empty, err);
	}
	if (r < 0) {
		lb_free(lb);
		return berth_err_wrap(err, "load balancer in %s", cfg->run_dir);
	}
	lb->skeleton = TAKE_PTR(empty);
	*ret = lb;
	return 0;
}

void lb_free(struct lb *lb)
{
	if (!lb)
		return;
	lb_proc_stop(lb);
	if (lb->ev_restart)
		event_free(lb->ev_restart);
	if (lb->dirfd >= 0) {
		remove_runtime_files(lb);
		unlinkat(lb->dirfd, "servers.state", 0);
		close(lb->dirfd);
	}
	free(lb->run_dir);
	free(lb->haproxy);
	free(lb->bind);
	free(lb->skeleton);
	free(lb->ports);
	free(lb->targets);
	free(lb);
}
