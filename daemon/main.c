/* berthd: the control plane's executable (daemon/daemon.h does the work).
 * `berth daemon ARGS` execs it, so both spell the same options.  It is a
 * binary of its own so that it does not map what only the command line
 * needs (libcurl, libarchive, libnftables and what they pull in: about
 * half of a `berth` process's memory): pulls and the host's NAT run in
 * `berth` helper processes (daemon/sched.c). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "daemon/daemon.h"
#include "daemon/sched/volumes.h"
#include "runtime/log.h"

/* The Makefile's VERSION (and the git commit), as `berth --version`. */
#ifdef BERTH_COMMIT
#define VERSION_TEXT "Berth " BERTH_VERSION " (git " BERTH_COMMIT ")"
#else
#define VERSION_TEXT "Berth " BERTH_VERSION
#endif

static const char usage_text[] =
	"berth daemon [--root DIR] [--run-root DIR] [--log-root DIR]\n"
	"             [--listen unix:PATH|tcp:HOST:PORT]... [--credentials FILE] [--insecure-no-auth]\n"
	"             [--region R] [--account-id N] [--subnet CIDR] [--bridge NAME] [--no-nat]\n"
	"             [--nft-table NAME] [--blocked-addresses LIST] [--cgroup-name NAME]\n"
	"             [--task-retention DURATION]\n"
	"             [--log-retention DURATION] [--registry-auth FILE] [--insecure-registry HOST:PORT]...\n"
	"             [--shim PATH] [--service-healthy-after DURATION]\n"
	"             " IMG_LIMIT_OPTS "\n"
	"             [--request-timeout DURATION] [--max-connections N] [--max-connections-per-source N]\n"
	"             [--allow-capabilities CAP,...] [--allow-ulimits NAME,...]\n"
	"             [--allow-host-path PREFIX]...\n"
	"             [--default-task-memory MIB] [--default-task-cpu UNITS]\n"
	"             [--instance-cpu UNITS] [--instance-memory MIB] [--reserved-memory MIB]\n"
	"             [--log-max-size SIZE] [--log-max-file N] [--default-ephemeral-storage MIB]\n"
	"             [--disk-check-interval DURATION] [--disk-reserve MIB]\n"
	"             [--host-port-range LOW-HIGH] [--allow-host-network]\n"
	"             [--lb-address ADDR]\n"
	"             [--task-endpoint ADDRESS:PORT|off] [--task-role-credentials FILE]\n"
	"             [--introspection ADDRESS:PORT|off]\n"
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

/* A whole number MIN..2^31 (MiB, CPU units). */
static int parse_units(const char *opt, const char *s, int64_t min, int64_t *ret)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > INT32_MAX) {
		fprintf(stderr, "berth: --%s %s: expected a whole number from %lld\n", opt, s,
			(long long)min);
		return -1;
	}
	*ret = v;
	return 0;
}

static int policy_list(int (*fn)(struct berth_policy *, const char *, struct berth_err *),
		       struct berth_policy *p, const char *arg)
{
	struct berth_err err = { 0 };
	if (fn(p, arg, &err) < 0) {
		fprintf(stderr, "berth: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int bad_opt(const char *opt, const char *arg, const char *expected)
{
	fprintf(stderr, "berth: --%s %s: expected %s\n", opt, arg, expected);
	return -1;
}

/* --reserved-memory / --disk-reserve 0 means none (-1 in the policy: 0
 * is the default). */
static int parse_reserve(const char *opt, const char *arg, int64_t *ret)
{
	if (parse_units(opt, arg, 0, ret) < 0)
		return -1;
	if (*ret == 0)
		*ret = -1;
	return 0;
}

/* A count from 1 to 1,000,000. */
static int parse_count(const char *opt, const char *s, size_t *ret)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (end == s || *end || errno || v < 1 || v > 1000000) {
		fprintf(stderr, "berth: --%s %s: expected a number from 1 to 1000000\n", opt, s);
		return -1;
	}
	*ret = (size_t)v;
	return 0;
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
	OPT_BLOCKED, OPT_TASK_RET, OPT_LOG_RET, OPT_REG_AUTH, OPT_INSECURE_REG, OPT_SHIM, OPT_HEALTHY_AFTER,
	OPT_ALLOW_CAPS, OPT_ALLOW_ULIMITS, OPT_ALLOW_HOST_PATH, OPT_TASK_MEMORY, OPT_TASK_CPU, OPT_INSTANCE_CPU,
	OPT_INSTANCE_MEMORY, OPT_RESERVED_MEMORY, OPT_LOG_MAX_SIZE, OPT_LOG_MAX_FILE,
	OPT_EPHEMERAL, OPT_DISK_CHECK, OPT_DISK_RESERVE, OPT_HOST_PORTS, OPT_HOST_NET,
	OPT_PULL_LIMIT,
	OPT_REQ_TIMEOUT, OPT_MAX_CONNS, OPT_MAX_CONNS_SRC,
	OPT_LB_ADDRESS,
	OPT_TASK_ENDPOINT, OPT_ROLE_CREDS, OPT_INTROSPECTION,
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
	{ "allow-capabilities", required_argument, NULL, OPT_ALLOW_CAPS },
	{ "allow-ulimits", required_argument, NULL, OPT_ALLOW_ULIMITS },
	{ "allow-host-path", required_argument, NULL, OPT_ALLOW_HOST_PATH },
	{ "default-task-memory", required_argument, NULL, OPT_TASK_MEMORY },
	{ "default-task-cpu", required_argument, NULL, OPT_TASK_CPU },
	{ "instance-cpu", required_argument, NULL, OPT_INSTANCE_CPU },
	{ "instance-memory", required_argument, NULL, OPT_INSTANCE_MEMORY },
	{ "reserved-memory", required_argument, NULL, OPT_RESERVED_MEMORY },
	{ "log-max-size", required_argument, NULL, OPT_LOG_MAX_SIZE },
	{ "log-max-file", required_argument, NULL, OPT_LOG_MAX_FILE },
	{ "default-ephemeral-storage", required_argument, NULL, OPT_EPHEMERAL },
	{ "disk-check-interval", required_argument, NULL, OPT_DISK_CHECK },
	{ "disk-reserve", required_argument, NULL, OPT_DISK_RESERVE },
	{ "host-port-range", required_argument, NULL, OPT_HOST_PORTS },
	{ "allow-host-network", no_argument, NULL, OPT_HOST_NET },
	{ "pull-timeout", required_argument, NULL, OPT_PULL_LIMIT },
	{ "layer-timeout", required_argument, NULL, OPT_PULL_LIMIT },
	{ "max-layer-size", required_argument, NULL, OPT_PULL_LIMIT },
	{ "max-layer-ratio", required_argument, NULL, OPT_PULL_LIMIT },
	{ "request-timeout", required_argument, NULL, OPT_REQ_TIMEOUT },
	{ "max-connections", required_argument, NULL, OPT_MAX_CONNS },
	{ "max-connections-per-source", required_argument, NULL, OPT_MAX_CONNS_SRC },
	{ "lb-address", required_argument, NULL, OPT_LB_ADDRESS },
	{ "task-endpoint", required_argument, NULL, OPT_TASK_ENDPOINT },
	{ "task-role-credentials", required_argument, NULL, OPT_ROLE_CREDS },
	{ "introspection", required_argument, NULL, OPT_INTROSPECTION },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

/* "49153-65535": bridge-mode tasks' dynamic host ports, 1024 and up (the
 * privileged ports are the host's services'). */
static int parse_port_range(const char *s, struct berth_policy *p)
{
	unsigned lo, hi;
	char tail;
	if (sscanf(s, "%5u-%5u%c", &lo, &hi, &tail) != 2 || lo < 1024 || hi > 65535 || lo > hi)
		return bad_opt("host-port-range", s, "LOW-HIGH with 1024 <= LOW <= HIGH <= 65535");
	p->host_port_min = lo;
	p->host_port_max = hi;
	return 0;
}

/* A policy option (daemon/policy.h) into P: 0, or -1 after printing why not. */
static int set_policy_opt(struct berth_policy *p, int ch, const char *arg)
{
	struct berth_err err = { 0 };
	switch (ch) {
	case OPT_ALLOW_CAPS: return policy_list(policy_allow_capabilities, p, arg);
	case OPT_ALLOW_ULIMITS: return policy_list(policy_allow_ulimits, p, arg);
	case OPT_ALLOW_HOST_PATH: return policy_list(volumes_allow_host_path, p, arg);
	case OPT_TASK_MEMORY:
		return parse_units("default-task-memory", arg, 6, &p->default_task_memory);
	case OPT_TASK_CPU: return parse_units("default-task-cpu", arg, 128, &p->default_task_cpu);
	case OPT_INSTANCE_CPU: return parse_units("instance-cpu", arg, 128, &p->instance_cpu);
	case OPT_INSTANCE_MEMORY:
		return parse_units("instance-memory", arg, 6, &p->instance_memory);
	case OPT_RESERVED_MEMORY: return parse_reserve("reserved-memory", arg, &p->reserved_memory);
	case OPT_EPHEMERAL:
		return parse_units("default-ephemeral-storage", arg, 1, &p->ephemeral_storage);
	case OPT_DISK_CHECK: return parse_duration("disk-check-interval", arg, &p->disk_check_ms);
	case OPT_DISK_RESERVE: return parse_reserve("disk-reserve", arg, &p->disk_reserve);
	case OPT_HOST_PORTS: return parse_port_range(arg, p);
	case OPT_HOST_NET: p->allow_host_network = true; return 0;
	case OPT_LOG_MAX_SIZE:
		if (rt_log_parse_size(arg, &p->log_max_size, &err) < 0 || !p->log_max_size)
			return bad_opt("log-max-size", arg, "a size above 0 such as 10m or 1g");
		return 0;
	case OPT_LOG_MAX_FILE:
		if (rt_log_parse_max_file(arg, &p->log_max_files, &err) < 0)
			return bad_opt("log-max-file", arg, "a number of files from 1 to 1000");
		return 0;
	default: return -1;
	}
}

/* A pull limit (images/limits.h), for the pull helpers. */
static int set_limit(struct daemon_opts *o, const char *name, const char *arg)
{
	struct berth_err err = { 0 };
	if (img_limits_set(&o->pull_limits, name, arg, &err) == 0)
		return 0;
	fprintf(stderr, "berth: %s\n", err.msg);
	return -1;
}

/* One option into O (NAME: the long option's): 0, or -1 after printing
 * why not. */
static int set_opt(struct daemon_opts *o, int ch, const char *name, const char *arg)
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
	case OPT_LB_ADDRESS: o->lb_address = arg; return 0;
	case OPT_TASK_RET: return parse_duration("task-retention", arg, &o->task_retention_ms);
	case OPT_LOG_RET: return parse_duration("log-retention", arg, &o->log_retention_ms);
	case OPT_REG_AUTH: o->registry_auth = arg; return 0;
	case OPT_INSECURE_REG:
		return add_listen(o->insecure_registries, &o->n_insecure, "insecure-registry", arg);
	case OPT_SHIM: o->shim_bin = arg; return 0;
	case OPT_HEALTHY_AFTER:
		return parse_duration("service-healthy-after", arg, &o->service_healthy_after_ms);
	case OPT_PULL_LIMIT: return set_limit(o, name, arg);
	case OPT_REQ_TIMEOUT: return parse_duration("request-timeout", arg, &o->request_timeout_ms);
	case OPT_MAX_CONNS: return parse_count("max-connections", arg, &o->max_connections);
	case OPT_MAX_CONNS_SRC:
		return parse_count("max-connections-per-source", arg, &o->max_connections_per_source);
	case OPT_TASK_ENDPOINT: o->task_endpoint = arg; return 0;
	case OPT_ROLE_CREDS: o->role_credentials = arg; return 0;
	case OPT_INTROSPECTION: o->introspection = arg; return 0;
	default: return set_policy_opt(&o->policy, ch, arg);
	}
}

int main(int argc, char **argv)
{
	struct daemon_opts o = { .log = stderr, .version = VERSION_TEXT };
	optind = 1;
	int ch, idx = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
		if (ch == 'h') {
			printf("usage: %s\n", usage_text);
			return 0;
		}
		if (set_opt(&o, ch, opts[idx].name, optarg) < 0) {
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
