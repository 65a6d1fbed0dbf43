/* daemon/daemon: `berth daemon` — opens the store, starts the API
 * listeners on one libevent loop and serves until SIGTERM or SIGINT, then
 * shuts down cleanly: listeners closed, unix sockets removed, store closed.
 *
 * Start-up raises the soft RLIMIT_NOFILE to the hard limit (each task
 * and each API connection holds a descriptor) and sizes the connection
 * limits to what it leaves.  Its log lines (o->log) go through a token
 * bucket: DAEMON_LOG_BURST lines at once, DAEMON_LOG_RATE a second after
 * that, and a count of the lines dropped, so that no client can make the
 * daemon write faster than that.
 *
 * Directories: ROOT (state: berth.db) is created 0700, RUN_ROOT (sockets)
 * 0755; the API socket itself is 0600, so only root reaches it. */
#ifndef BERTH_DAEMON_DAEMON_H
#define BERTH_DAEMON_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "daemon/sched/policy.h"
#include "images/limits.h"

#define DAEMON_DEFAULT_ROOT "/var/lib/berth"
#define DAEMON_DEFAULT_RUN_ROOT "/run/berth"
#define DAEMON_DEFAULT_LOG_ROOT "/var/log/berth"
#define DAEMON_DEFAULT_REGION "us-east-1"
#define DAEMON_DEFAULT_ACCOUNT "000000000000"
#define DAEMON_SOCKET_NAME "berth.sock"
#define DAEMON_LISTEN_MAX 16
#define DAEMON_LOG_RATE 20
#define DAEMON_LOG_BURST 100
#define DAEMON_DEFAULT_TASK_ENDPOINT "169.254.170.2:80"
#define DAEMON_DEFAULT_INTROSPECTION "127.0.0.1:51678"

struct daemon_opts {
	const char *root;               /* NULL = DAEMON_DEFAULT_ROOT */
	const char *run_root;           /* NULL = DAEMON_DEFAULT_RUN_ROOT */
	/* "unix:PATH" or "tcp:HOST:PORT" ("tcp:[::1]:PORT" for IPv6); none
	 * means unix:<run_root>/berth.sock. */
	const char *listen[DAEMON_LISTEN_MAX];
	size_t n_listen;
	const char *credentials_file;   /* AWS shared-credentials INI, or NULL */
	bool insecure_no_auth;          /* allow TCP without SigV4 */
	const char *region;             /* NULL = DAEMON_DEFAULT_REGION */
	const char *account_id;         /* NULL = DAEMON_DEFAULT_ACCOUNT */
	FILE *log;                      /* start-up lines, warnings, 5xx; NULL = quiet */

	/* Tasks (daemon/sched.h); NULL / 0 = the defaults there. */
	const char *log_root;           /* NULL = DAEMON_DEFAULT_LOG_ROOT */
	const char *shim_bin;           /* NULL = berth-shim next to this executable */
	const char *bridge, *subnet, *nft_table, *cgroup_name;
	bool no_nat;
	const char *blocked_addresses;  /* NULL = netns's default, 169.254.169.254 */
	int64_t task_retention_ms, log_retention_ms;
	int64_t service_healthy_after_ms;  /* 0 = 40 s, ECS's */
	/* HTTP limits (daemon/api_conn.h); 0 = the defaults: 10 s, and as
	 * many connections as the open-file limit leaves room for. */
	int64_t request_timeout_ms;
	size_t max_connections, max_connections_per_source;
	const char *registry_auth;      /* docker config.json for pulls */
	const char *insecure_registries[DAEMON_LISTEN_MAX];
	size_t n_insecure;
	struct berth_policy policy;     /* what tasks may ask for; zeroed = the defaults */
	struct img_pull_limits pull_limits;  /* zeros = images/limits.h's defaults */
	/* The load balancers' listeners bind here (an IPv4 literal); NULL =
	 * every host address.  HAProxy's files go in <run_root>/lb. */
	const char *lb_address;
	/* The task endpoint (metadata, credentials) and the agent
	 * introspection, "a.b.c.d:port" or "off"; NULL = the defaults above
	 * (docs/task-environment.md). */
	const char *task_endpoint, *introspection;
	const char *role_credentials;   /* role ARN → keys, shared-credentials INI, or NULL */
	const char *version;            /* introspection's Version; NULL = "Berth" */
};

/* Runs the daemon until a SIGTERM or SIGINT; 0 after a clean shutdown, or
 * a negative errno with *err when it could not start (bad option, busy
 * socket, unreadable credentials, store refused). */
int daemon_run(const struct daemon_opts *o, struct berth_err *err);

#endif
