/* daemon/lb/lb_conf: checks a desired state and renders it as haproxy.cfg.
 *
 * Nothing a user typed reaches the config as it is: names and numbers are
 * checked against a strict grammar, and every other string (path and host
 * patterns, health check paths, fixed-response bodies and types) is
 * written as one token of \xNN escapes for every byte that is not a letter
 * or a digit.  HAProxy's config parser decodes those escapes inside the
 * token, so no quote, space, newline or '#' the user sends can end the
 * token, start a new keyword or a comment. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "daemon/lb/lb_internal.h"

/* Weighted forwards draw one number per request in [0, LB_DRAW). */
#define LB_DRAW 1000
#define LB_PATTERN_MAX 128
#define LB_HC_PATH_MAX 1024
#define LB_BODY_MAX 1024

static bool name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > LB_NAME_MAX)
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

static bool chars_ok(const char *s, size_t max, const char *extra)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > max)
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(extra, *p))
			return false;
	return true;
}

const struct lb_applied *lb_applied_find(const struct lb_applied *v, size_t n, const char *group,
					 const char *addr, int port)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].port == port && strcmp(v[i].group, group) == 0 &&
		    strcmp(v[i].addr, addr) == 0)
			return &v[i];
	return NULL;
}

bool lb_served(const struct lb *lb, const char *group, const char *addr, int port)
{
	const struct lb_applied *a = lb_applied_find(lb->targets, lb->n_targets, group, addr, port);
	return a && a->used;
}

const struct lb_group *lb_conf_group(const struct lb_state *s, const char *name)
{
	for (size_t i = 0; i < s->n_groups; i++)
		if (strcmp(s->groups[i].name, name) == 0)
			return &s->groups[i];
	return NULL;
}

static bool action_uses(const struct lb_action *a, const char *group)
{
	if (a->kind != LB_ACTION_FORWARD)
		return false;
	for (size_t i = 0; i < a->n_forward; i++)
		if (strcmp(a->forward[i].group, group) == 0)
			return true;
	return false;
}

bool lb_conf_group_used(const struct lb_state *s, const char *group)
{
	for (size_t i = 0; i < s->n_listeners; i++) {
		const struct lb_listener *l = &s->listeners[i];
		if (action_uses(&l->default_action, group))
			return true;
		for (size_t j = 0; j < l->n_rules; j++)
			if (action_uses(&l->rules[j].action, group))
				return true;
	}
	return false;
}

/* ELB's matcher: "200", "200-299", "200,302": codes 100..599. */
static bool matcher_ok(const char *m)
{
	if (!m || !*m || strlen(m) > 128)
		return false;
	const char *p = m;
	for (;;) {
		char *end;
		long a = strtol(p, &end, 10), b = a;
		if (end == p || !isdigit((unsigned char)*p))
			return false;
		p = end;
		if (*p == '-') {
			p++;
			if (!isdigit((unsigned char)*p))
				return false;
			b = strtol(p, &end, 10);
			p = end;
		}
		if (a < 100 || b > 599 || b < a)
			return false;
		if (*p == '\0')
			return true;
		if (*p++ != ',')
			return false;
	}
}

static int check_hc(const struct lb_group *g, struct berth_err *err)
{
	const struct lb_health_check *h = &g->hc;
	if (h->interval_s < 1 || h->interval_s > 300 || h->timeout_s < 1 || h->timeout_s > 120)
		return berth_errf(err, EINVAL,
				  "target group %s: the health check interval must be 1-300 s and "
				  "its timeout 1-120 s",
				  g->name);
	if (h->healthy_threshold < 1 || h->healthy_threshold > 10 || h->unhealthy_threshold < 1 ||
	    h->unhealthy_threshold > 10)
		return berth_errf(err, EINVAL,
				  "target group %s: the health check thresholds must be 1-10",
				  g->name);
	if (h->port < 0 || h->port > 65535)
		return berth_errf(err, EINVAL, "target group %s: health check port %d is not a port",
				  g->name, h->port);
	if (h->proto != LB_HTTP)
		return 0;
	if (h->path &&
	    (h->path[0] != '/' || !chars_ok(h->path, LB_HC_PATH_MAX, "/._~!$&'()*+,;=:@%?-")))
		return berth_errf(err, EINVAL,
				  "target group %s: health check path: must start with '/' and "
				  "hold at most %d printable characters, no space, quote or "
				  "backslash",
				  g->name, LB_HC_PATH_MAX);
	if (h->matcher && !matcher_ok(h->matcher))
		return berth_errf(err, EINVAL,
				  "target group %s: health check matcher: HTTP codes 100-599 as "
				  "\"200\", \"200-299\" or \"200,302\"",
				  g->name);
	return 0;
}

static int check_group(const struct lb_state *s, size_t gi, struct berth_err *err)
{
	const struct lb_group *g = &s->groups[gi];
	if (!name_ok(g->name))
		return berth_errf(err, EINVAL, "target group name: 1-%d letters, digits, '_' or '-'",
				  LB_NAME_MAX);
	for (size_t i = 0; i < gi; i++)
		if (strcmp(s->groups[i].name, g->name) == 0)
			return berth_errf(err, EINVAL, "target group %s: named twice", g->name);
	if (g->slow_start_s < 0 || g->slow_start_s > 900)
		return berth_errf(err, EINVAL, "target group %s: slow start must be 0-900 s",
				  g->name);
	int r = check_hc(g, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < g->n_targets; i++) {
		const struct lb_target *t = &g->targets[i];
		struct in_addr a;
		if (!t->addr || inet_pton(AF_INET, t->addr, &a) != 1)
			return berth_errf(err, EINVAL,
					  "target group %s: target %s is not an IPv4 address",
					  g->name, t->addr ? t->addr : "(null)");
		if (t->port < 1 || t->port > 65535 || t->weight < 0 || t->weight > 256)
			return berth_errf(err, EINVAL,
					  "target group %s: target %s:%d: port 1-65535 and weight "
					  "0-256",
					  g->name, t->addr, t->port);
		for (size_t j = 0; j < i; j++)
			if (strcmp(g->targets[j].addr, t->addr) == 0 && g->targets[j].port == t->port)
				return berth_errf(err, EINVAL,
						  "target group %s: target %s:%d registered twice",
						  g->name, t->addr, t->port);
	}
	return 0;
}

static const char *const content_types[] = {
	"text/plain", "text/css", "text/html", "application/javascript", "application/json",
};

static int check_action(const struct lb_state *s, const struct lb_listener *l,
			const struct lb_action *a, struct berth_err *err)
{
	if (a->kind == LB_ACTION_FIXED) {
		if (l->proto != LB_HTTP)
			return berth_errf(err, EINVAL,
					  "listener %s: a fixed response needs an HTTP listener",
					  l->name);
		if (a->status < 200 || a->status > 599 || (a->status >= 300 && a->status < 400))
			return berth_errf(err, EINVAL,
					  "listener %s: fixed response status %d: 2XX, 4XX or 5XX",
					  l->name, a->status);
		bool known = !a->content_type;
		for (size_t i = 0; !known && i < ARRAY_SIZE(content_types); i++)
			known = strcmp(a->content_type, content_types[i]) == 0;
		if (!known)
			return berth_errf(err, EINVAL,
					  "listener %s: fixed response content type: one of "
					  "text/plain, text/css, text/html, "
					  "application/javascript, application/json",
					  l->name);
		if (a->body && strlen(a->body) > LB_BODY_MAX)
			return berth_errf(err, EINVAL,
					  "listener %s: fixed response body: at most %d bytes",
					  l->name, LB_BODY_MAX);
		return 0;
	}
	if (a->kind != LB_ACTION_FORWARD || a->n_forward == 0)
		return berth_errf(err, EINVAL,
				  "listener %s: an action forwards to target groups or answers a "
				  "fixed response",
				  l->name);
	for (size_t i = 0; i < a->n_forward; i++) {
		const struct lb_forward *f = &a->forward[i];
		const struct lb_group *g = f->group ? lb_conf_group(s, f->group) : NULL;
		if (!g)
			return berth_errf(err, ENOENT,
					  "listener %s: target group %s is not in the state",
					  l->name, f->group ? f->group : "(null)");
		if (g->proto != l->proto)
			return berth_errf(err, EINVAL,
					  "listener %s: target group %s has another protocol than "
					  "the listener",
					  l->name, g->name);
		if (f->weight < 0 || f->weight > 999)
			return berth_errf(err, EINVAL,
					  "listener %s: target group %s: weight %d: 0-999", l->name,
					  g->name, f->weight);
	}
	return 0;
}

static int check_rule(const struct lb_state *s, const struct lb_listener *l,
		      const struct lb_rule *ru, struct berth_err *err)
{
	if (l->proto != LB_HTTP)
		return berth_errf(err, EINVAL, "listener %s: rules need an HTTP listener", l->name);
	if (ru->n_paths + ru->n_hosts == 0)
		return berth_errf(err, EINVAL, "listener %s: rule %d has no condition", l->name,
				  ru->priority);
	/* ELB's character sets for the two conditions. */
	for (size_t i = 0; i < ru->n_paths; i++)
		if (!chars_ok(ru->paths[i], LB_PATTERN_MAX, "_-.$/~\"'@:+&*?"))
			return berth_errf(err, EINVAL,
					  "listener %s: rule %d: path pattern: 1-%d characters of "
					  "A-Z a-z 0-9 _ - . $ / ~ \" ' @ : + & * ?",
					  l->name, ru->priority, LB_PATTERN_MAX);
	for (size_t i = 0; i < ru->n_hosts; i++)
		if (!chars_ok(ru->hosts[i], LB_PATTERN_MAX, "-.*?"))
			return berth_errf(err, EINVAL,
					  "listener %s: rule %d: host header: 1-%d characters of "
					  "A-Z a-z 0-9 - . * ?",
					  l->name, ru->priority, LB_PATTERN_MAX);
	return check_action(s, l, &ru->action, err);
}

static int check_listener(const struct lb_state *s, size_t li, struct berth_err *err)
{
	const struct lb_listener *l = &s->listeners[li];
	if (!name_ok(l->name))
		return berth_errf(err, EINVAL, "listener name: 1-%d letters, digits, '_' or '-'",
				  LB_NAME_MAX);
	if (l->port < 1 || l->port > 65535)
		return berth_errf(err, EINVAL, "listener %s: port %d is not a port", l->name,
				  l->port);
	for (size_t i = 0; i < li; i++) {
		if (strcmp(s->listeners[i].name, l->name) == 0)
			return berth_errf(err, EINVAL, "listener %s: named twice", l->name);
		if (s->listeners[i].port == l->port)
			return berth_errf(err, EADDRINUSE, "listener %s: port %d is listener %s's",
					  l->name, l->port, s->listeners[i].name);
	}
	int r = check_action(s, l, &l->default_action, err);
	for (size_t i = 0; r == 0 && i < l->n_rules; i++)
		r = check_rule(s, l, &l->rules[i], err);
	return r;
}

int lb_conf_validate(const struct lb_state *s, struct berth_err *err)
{
	int r = 0;
	for (size_t i = 0; r == 0 && i < s->n_groups; i++)
		r = check_group(s, i, err);
	for (size_t i = 0; r == 0 && i < s->n_listeners; i++)
		r = check_listener(s, i, err);
	return r;
}

/* S as one config token: letters and digits as they are, every other
 * byte as \xNN (see the top of the file). */
static void put_token(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p))
			fputc(*p, f);
		else
			fprintf(f, "\\x%02x", *p);
	}
}

/* An ELB pattern ('*' any run, '?' one character) as an anchored POSIX
 * extended regex, every other character literal. */
static void put_pattern(FILE *f, const char *pat)
{
	char re[4 * LB_PATTERN_MAX + 3];
	size_t n = 0;
	re[n++] = '^';
	for (const char *p = pat; *p; p++) {
		if (*p == '*') {
			re[n++] = '.';
			re[n++] = '*';
		} else if (*p == '?') {
			re[n++] = '.';
		} else if (isalnum((unsigned char)*p)) {
			re[n++] = *p;
		} else {
			re[n++] = '[';
			re[n++] = *p;
			re[n++] = ']';
		}
	}
	re[n++] = '$';
	re[n] = '\0';
	fputc(' ', f);
	put_token(f, re);
}

void lb_conf_server_name(const char *addr, int port, char buf[LB_SRV_NAME_MAX])
{
	struct in_addr a = { 0 };
	inet_pton(AF_INET, addr, &a);
	const unsigned char *b = (const unsigned char *)&a.s_addr;
	snprintf(buf, LB_SRV_NAME_MAX, "t_%u_%u_%u_%u_%d", b[0], b[1], b[2], b[3], port);
}

/* Dynamic servers do not inherit `default-server`: the same keywords go on
 * every server line and every `add server`. */
void lb_conf_server_opts(const struct lb_group *g, char buf[LB_SRV_OPTS_MAX])
{
	const struct lb_health_check *h = &g->hc;
	/* HAProxy 2.6 keeps no idle connection to a dynamic server unless
	 * told to (pool-max-conn and pool-purge-delay: 0 for them, not the
	 * config servers' -1 and 5s): without these, every request through a
	 * registered target opened a connection to it, a keep-alive
	 * client's too. */
	int n = snprintf(buf, LB_SRV_OPTS_MAX,
			 "check inter %ds fall %d rise %d pool-max-conn -1 pool-purge-delay 5s",
			 h->interval_s, h->unhealthy_threshold, h->healthy_threshold);
	if (h->port > 0)
		n += snprintf(buf + n, LB_SRV_OPTS_MAX - n, " port %d", h->port);
	if (g->slow_start_s > 0)
		snprintf(buf + n, LB_SRV_OPTS_MAX - n, " slowstart %ds", g->slow_start_s);
}

static void put_backend(FILE *f, const struct lb *lb, const struct lb_group *g,
			enum lb_conf_kind kind)
{
	const struct lb_health_check *h = &g->hc;
	fprintf(f, "\nbackend g_%s\n    mode %s\n    balance roundrobin\n", g->name,
		g->proto == LB_HTTP ? "http" : "tcp");
	fprintf(f, "    timeout check %ds\n", h->timeout_s);
	/* Idle target connections serve any client's requests, its first
	 * too, as ELB keeps its target connections for every client
	 * (HAProxy's default, "safe", opens one for each client
	 * connection's first request).  A GET that finds its reused
	 * connection closed by the target (an empty response) is retried on
	 * a new one; the frontend disables retries for other methods. */
	if (g->proto == LB_HTTP)
		fputs("    http-reuse always\n    retry-on conn-failure empty-response\n", f);
	if (h->proto == LB_HTTP) {
		fputs("    option httpchk\n    http-check send meth GET uri ", f);
		put_token(f, h->path ? h->path : "/");
		fputs(" ver HTTP/1.1 hdr Host berth-lb\n    http-check expect status ", f);
		put_token(f, h->matcher ? h->matcher : "200");
		fputc('\n', f);
	}
	char opts[LB_SRV_OPTS_MAX];
	lb_conf_server_opts(g, opts);
	/* The skeleton names the keywords too: a change of them reloads. */
	fprintf(f, "    # servers: %s\n", opts);
	for (size_t i = 0; kind != LB_CONF_SKELETON && i < g->n_targets; i++) {
		char name[LB_SRV_NAME_MAX];
		const struct lb_target *t = &g->targets[i];
		/* Added after the reload, as a registration is (lb.c). */
		if (kind == LB_CONF_RELOAD && !lb_served(lb, g->name, t->addr, t->port))
			continue;
		lb_conf_server_name(t->addr, t->port, name);
		fprintf(f, "    server %s %s:%d %s weight %d\n", name, t->addr, t->port, opts,
			t->draining ? 0 : t->weight);
	}
}

/* The rule's conditions as ACL names after `if`. */
static void put_conds(FILE *f, const char *rule)
{
	if (rule)
		fprintf(f, " %s", rule);
	fputs(" !{ var(txn.lb_be) -m found }", f);
}

static void put_action(FILE *f, const struct lb_action *a, const char *rule, bool http)
{
	if (a->kind == LB_ACTION_FIXED) {
		fprintf(f, "    http-request return status %d", a->status);
		if (a->body && *a->body) {
			fputs(" content-type ", f);
			put_token(f, a->content_type ? a->content_type : "text/plain");
			fputs(" string ", f);
			put_token(f, a->body);
		}
		fputs(" if", f);
		put_conds(f, rule);
		fputc('\n', f);
		return;
	}
	int total = 0;
	for (size_t i = 0; i < a->n_forward; i++)
		total += a->forward[i].weight;
	int cum = 0;
	for (size_t i = 0; i < a->n_forward; i++) {
		const struct lb_forward *fw = &a->forward[i];
		/* All weights 0: an even split. */
		cum += total ? fw->weight : 1;
		int bound = (int)((long)cum * LB_DRAW / (total ? total : (int)a->n_forward));
		if (total && fw->weight == 0)
			continue;
		fprintf(f, "    %s-request %sset-var(txn.lb_be) str(g_%s) if",
			http ? "http" : "tcp", http ? "" : "content ", fw->group);
		put_conds(f, rule);
		if (bound < LB_DRAW)
			fprintf(f, " { var(txn.lb_r) -m int lt %d }", bound);
		fputc('\n', f);
	}
}

static int rule_cmp(const void *a, const void *b)
{
	const struct lb_rule *x = *(const struct lb_rule *const *)a;
	const struct lb_rule *y = *(const struct lb_rule *const *)b;
	return (x->priority > y->priority) - (x->priority < y->priority);
}

static void put_rule(FILE *f, const struct lb_rule *ru, size_t idx)
{
	char acls[64] = "";
	if (ru->n_paths) {
		fprintf(f, "    acl r%zu_path path -m reg", idx);
		for (size_t i = 0; i < ru->n_paths; i++)
			put_pattern(f, ru->paths[i]);
		fputc('\n', f);
		snprintf(acls, sizeof(acls), "r%zu_path", idx);
	}
	if (ru->n_hosts) {
		/* ELB matches the host name case-insensitively, without the port. */
		fprintf(f, "    acl r%zu_host req.hdr(host),field(1,:) -m reg -i", idx);
		for (size_t i = 0; i < ru->n_hosts; i++)
			put_pattern(f, ru->hosts[i]);
		fputc('\n', f);
		size_t n = strlen(acls);
		snprintf(acls + n, sizeof(acls) - n, "%sr%zu_host", n ? " " : "", idx);
	}
	put_action(f, &ru->action, acls, true);
}

static int put_frontend(FILE *f, const struct lb *lb, const struct lb_listener *l)
{
	bool http = l->proto == LB_HTTP;
	fprintf(f, "\nfrontend l_%s\n    mode %s\n    bind %s:%d\n", l->name, http ? "http" : "tcp",
		lb->bind ? lb->bind : "", l->port);
	/* The headers ELB adds for its targets. */
	if (http)
		fputs("    option forwardfor\n"
		      "    http-request disable-l7-retry if !METH_GET\n"
		      "    http-request set-header X-Forwarded-Proto http\n"
		      "    http-request set-header X-Forwarded-Port %[dst_port]\n",
		      f);
	fprintf(f, "    %s-request %sset-var(txn.lb_r) rand(%d)\n", http ? "http" : "tcp",
		http ? "" : "content ", LB_DRAW);
	_cleanup_free_ const struct lb_rule **order = calloc(l->n_rules + 1, sizeof(*order));
	if (!order)
		return -ENOMEM;
	for (size_t i = 0; i < l->n_rules; i++)
		order[i] = &l->rules[i];
	qsort(order, l->n_rules, sizeof(*order), rule_cmp);
	for (size_t i = 0; i < l->n_rules; i++)
		put_rule(f, order[i], i);
	put_action(f, &l->default_action, NULL, http);
	fputs("    use_backend %[var(txn.lb_be)]\n", f);
	return 0;
}

static void put_global(FILE *f, const struct lb *lb)
{
	fprintf(f,
		"# Written by berthd (daemon/lb); every change is overwritten.\n"
		"global\n"
		"    stats socket %s/admin.sock mode 600 level admin expose-fd listeners\n"
		"    stats timeout 30s\n"
		"    server-state-file %s/servers.state\n"
		"    hard-stop-after 15m\n"
		/* A server's first check waits min(inter, this): a registered
		 * target is checked at once, as ELB does, not one interval late
		 * (lb.c: add_target). */
		"    max-spread-checks 20ms\n",
		lb->run_dir, lb->run_dir);
	/* HAProxy parses what clients send: its workers run as nobody. */
	if (lb->as_root)
		fputs("    uid 65534\n    gid 65534\n", f);
	fputs("\ndefaults\n"
	      "    load-server-state-from-file global\n"
	      "    timeout connect 5s\n"
	      "    timeout client 60s\n"
	      "    timeout server 60s\n"
	      "    timeout http-request 10s\n"
	      "    timeout http-keep-alive 60s\n"
	      "    option redispatch\n"
	      "    retries 3\n",
	      f);
}

int lb_conf_render(const struct lb *lb, const struct lb_state *s, enum lb_conf_kind kind,
		   char **ret, struct berth_err *err)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return berth_errnof(err, errno, "load balancer config");
	put_global(f, lb);
	int r = 0;
	for (size_t i = 0; r == 0 && i < s->n_listeners; i++)
		r = put_frontend(f, lb, &s->listeners[i]);
	for (size_t i = 0; i < s->n_groups; i++)
		if (lb_conf_group_used(s, s->groups[i].name))
			put_backend(f, lb, &s->groups[i], kind);
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	if (r < 0) {
		free(buf);
		return berth_errnof(err, -r, "load balancer config");
	}
	*ret = buf;
	return 0;
}
