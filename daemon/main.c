/* berthd: the control plane's executable (daemon/daemon.h does the work).
 * `berth daemon ARGS` execs it, so both spell the same options.  It is a
 * binary of its own so that it does not map what only the command line
 * needs (libcurl, libarchive, libnftables and what they pull in: about
 * half of a `berth` process's memory): pulls and the host's NAT run in
 * `berth` helper processes (daemon/sched.c). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "daemon/daemon.h"

static const char usage_text[] =
	"berth daemon [--root DIR] [--run-root DIR] [--log-root DIR]\n"
	"             [--listen unix:PATH|tcp:HOST:PORT]... [--credentials FILE] [--insecure-no-auth]\n"
	"             [--region R] [--account-id N] [--subnet CIDR] [--bridge NAME] [--no-nat]\n"
	"             [--nft-table NAME] [--blocked-addresses LIST] [--cgroup-name NAME]\n"
	"             [--task-retention DURATION]\n"
	"             [--log-retention DURATION] [--registry-auth FILE] [--insecure-registry HOST:PORT]...\n"
	"             [--shim PATH] [--service-healthy-after DURATION]\n"
	"DURATION: a number with a unit: 500ms, 30s, 10m, 1h, 7d";

/* "500ms", "30s", "10m", "1h", "7d" → milliseconds (> 0). */
static int parse_duration(const char *opt, const char *s, int64_t *ret)
{
	char *end;
	double v = strtod(s, &end);
	static const struct { const char *unit; double ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
	};
	for (size_t i = 0; end != s && v > 0 && i < ARRAY_SIZE(units); i++)
		if (strcmp(end, units[i].unit) == 0 && v * units[i].ms >= 1 &&
		    v * units[i].ms < 1e15) {
			*ret = (int64_t)(v * units[i].ms);
			return 0;
		}
	fprintf(stderr, "berth: --%s %s: expected a duration such as 500ms, 30s, 10m, 1h or 7d\n",
		opt, s);
	return -1;
}

static int add_listen(const char **v, size_t *n, const char *opt, const char *arg)
{
	if (*n >= DAEMON_LISTEN_MAX) {
		fprintf(stderr, "berth: at most %d --%s options\n", DAEMON_LISTEN_MAX, opt);
		return -1;
	}
	v[(*n)++] = arg;
	return 0;
}

enum {
	OPT_LOG_ROOT = 256, OPT_SUBNET, OPT_BRIDGE, OPT_NO_NAT, OPT_NFT_TABLE, OPT_CGROUP,
	OPT_BLOCKED, OPT_TASK_RET, OPT_LOG_RET, OPT_REG_AUTH, OPT_INSECURE_REG, OPT_SHIM,
	OPT_HEALTHY_AFTER,
};

static const struct option opts[] = {
	{ "root", required_argument, NULL, 'r' },
	{ "run-root", required_argument, NULL, 'R' },
	{ "listen", required_argument, NULL, 'l' },
	{ "credentials", required_argument, NULL, 'c' },
	{ "insecure-no-auth", no_argument, NULL, 'I' },
	{ "region", required_argument, NULL, 'g' },
	{ "account-id", required_argument, NULL, 'a' },
	{ "log-root", required_argument, NULL, OPT_LOG_ROOT },
	{ "subnet", required_argument, NULL, OPT_SUBNET },
	{ "bridge", required_argument, NULL, OPT_BRIDGE },
	{ "no-nat", no_argument, NULL, OPT_NO_NAT },
	{ "nft-table", required_argument, NULL, OPT_NFT_TABLE },
	{ "blocked-addresses", required_argument, NULL, OPT_BLOCKED },
	{ "cgroup-name", required_argument, NULL, OPT_CGROUP },
	{ "task-retention", required_argument, NULL, OPT_TASK_RET },
	{ "log-retention", required_argument, NULL, OPT_LOG_RET },
	{ "registry-auth", required_argument, NULL, OPT_REG_AUTH },
	{ "insecure-registry", required_argument, NULL, OPT_INSECURE_REG },
	{ "shim", required_argument, NULL, OPT_SHIM },
	{ "service-healthy-after", required_argument, NULL, OPT_HEALTHY_AFTER },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

/* One option into O: 0, or -1 after printing why not. */
static int set_opt(struct daemon_opts *o, int ch, const char *arg)
{
	switch (ch) {
	case 'r': o->root = arg; return 0;
	case 'R': o->run_root = arg; return 0;
	case 'l': return add_listen(o->listen, &o->n_listen, "listen", arg);
	case 'c': o->credentials_file = arg; return 0;
	case 'I': o->insecure_no_auth = true; return 0;
	case 'g': o->region = arg; return 0;
	case 'a': o->account_id = arg; return 0;
	case OPT_LOG_ROOT: o->log_root = arg; return 0;
	case OPT_SUBNET: o->subnet = arg; return 0;
	case OPT_BRIDGE: o->bridge = arg; return 0;
	case OPT_NO_NAT: o->no_nat = true; return 0;
	case OPT_NFT_TABLE: o->nft_table = arg; return 0;
	case OPT_BLOCKED: o->blocked_addresses = arg; return 0;
	case OPT_CGROUP: o->cgroup_name = arg; return 0;
	case OPT_TASK_RET: return parse_duration("task-retention", arg, &o->task_retention_ms);
	case OPT_LOG_RET: return parse_duration("log-retention", arg, &o->log_retention_ms);
	case OPT_REG_AUTH: o->registry_auth = arg; return 0;
	case OPT_INSECURE_REG:
		return add_listen(o->insecure_registries, &o->n_insecure, "insecure-registry", arg);
	case OPT_SHIM: o->shim_bin = arg; return 0;
	case OPT_HEALTHY_AFTER:
		return parse_duration("service-healthy-after", arg, &o->service_healthy_after_ms);
	default: return -1;
	}
}

int main(int argc, char **argv)
{
	struct daemon_opts o = { .log = stderr };
	optind = 1;
	int ch;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'h') {
			printf("usage: %s\n", usage_text);
			return 0;
		}
		if (set_opt(&o, ch, optarg) < 0) {
			if (ch == '?' || ch == ':')
				fprintf(stderr, "usage: %s\n", usage_text);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: %s\n", usage_text);
		return 2;
	}
	struct berth_err err = { 0 };
	if (daemon_run(&o, &err) < 0) {
		fprintf(stderr, "berth: %s\n", err.msg);
		return 1;
	}
	return 0;
}
