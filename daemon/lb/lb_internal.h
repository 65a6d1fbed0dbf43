/* daemon/lb internals: the config renderer (lb_conf.c), the HAProxy
 * process and its sockets (lb_proc.c), the state and its diffs (lb.c). */
#ifndef BERTH_DAEMON_LB_INTERNAL_H
#define BERTH_DAEMON_LB_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/lb/lb.h"

#define LB_NAME_MAX 64
/* "t_255_255_255_255_65535" */
#define LB_SRV_NAME_MAX 32
/* The server keywords a group gives each of its targets. */
#define LB_SRV_OPTS_MAX 160

/* A target as HAProxy serves it, kept to diff the next state against. */
struct lb_applied {
	char group[LB_NAME_MAX + 1];
	char addr[16];
	int port;
	int weight;
	bool draining;
	bool used;                /* its group is behind a listener: a server exists */
	char opts[LB_SRV_OPTS_MAX]; /* the group's server keywords */
};

struct lb {
	struct event_base *base;
	char *run_dir, *haproxy, *bind;
	FILE *log;
	int dirfd;
	bool as_root;             /* HAProxy's workers drop to nobody */

	pid_t pid;                /* the master, 0 when not running */
	int pidfd;
	struct event *ev_exit, *ev_restart;
	int64_t started_ms;
	int backoff_ms;

	char *skeleton;           /* the served config without its servers */
	int *ports;               /* the listener ports served */
	size_t n_ports;
	struct lb_applied *targets;
	size_t n_targets;
};

/* lb_conf.c */
int lb_conf_validate(const struct lb_state *s, struct berth_err *err);
enum lb_conf_kind {
	LB_CONF_SKELETON,         /* no servers: equal skeletons need no reload */
	LB_CONF_SERVING,          /* every server as it is: what a restart reads */
	LB_CONF_RELOAD,           /* servers not in lb->targets yet left out (added after) */
};
/* The haproxy.cfg for S. */
int lb_conf_render(const struct lb *lb, const struct lb_state *s, enum lb_conf_kind kind,
		   char **ret, struct berth_err *err);
const struct lb_applied *lb_applied_find(const struct lb_applied *v, size_t n, const char *group,
					 const char *addr, int port);
/* Whether HAProxy has this target as a server now (lb->targets). */
bool lb_served(const struct lb *lb, const char *group, const char *addr, int port);
void lb_conf_server_name(const char *addr, int port, char buf[LB_SRV_NAME_MAX]);
void lb_conf_server_opts(const struct lb_group *g, char buf[LB_SRV_OPTS_MAX]);
/* The group named NAME in S, or NULL. */
const struct lb_group *lb_conf_group(const struct lb_state *s, const char *name);
/* Whether a listener of S forwards to GROUP. */
bool lb_conf_group_used(const struct lb_state *s, const char *group);

/* lb_proc.c */
int lb_proc_start(struct lb *lb, struct berth_err *err);
void lb_proc_stop(struct lb *lb);
int lb_proc_reload(struct lb *lb, struct berth_err *err);
/* One Runtime API command on the worker's socket; its answer in *ret
 * (may be NULL). */
int lb_proc_cmd(struct lb *lb, char **ret, struct berth_err *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* `haproxy -c` on NAME in the run dir: HAProxy's own words when it refuses. */
int lb_proc_check(struct lb *lb, const char *name, struct berth_err *err);
void lb_logf(struct lb *lb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* lb.c: puts the applied targets' weights and drains on a fresh worker. */
int lb_program_targets(struct lb *lb, struct berth_err *err);

#endif
