/* daemon/lb: the load balancers' data plane — one HAProxy process,
 * supervised by the daemon and programmed through its Runtime API.
 *
 * THE CONTRACT between the ELBv2 API (daemon/elb, the control plane: what
 * the user asked for, kept in the store) and HAProxy (this layer: what is
 * served).  The caller hands over the whole desired state; lb_apply()
 * makes HAProxy serve exactly that.  A change of targets (add, remove,
 * drain, weight) goes through the Runtime API with no reload; a change of
 * listeners, rules or health checks may use a hitless reload (master-worker
 * mode, old connections finish on the old worker).  If HAProxy dies, the
 * layer restarts it with the last applied state; tasks are unaffected.
 *
 * Every string in the structs below is borrowed for the call only. */
#ifndef BERTH_DAEMON_LB_H
#define BERTH_DAEMON_LB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/err.h"

struct event_base;
struct lb;

struct lb_config {
	const char *run_dir;      /* HAProxy's config, sockets, pid file go here (0700) */
	const char *haproxy;      /* the haproxy binary; NULL = "haproxy" on PATH */
	const char *bind_address; /* listeners bind here; NULL = every host address */
	FILE *log;                /* HAProxy restarts and failures; NULL = quiet */
};

/* Prepares the run dir (stopping a HAProxy an earlier daemon left there);
 * HAProxy itself starts with the first lb_apply() that has a listener.
 * HAProxy's master dies with the daemon (a parent-death signal). */
int lb_new(struct event_base *base, const struct lb_config *cfg, struct lb **ret,
	   struct berth_err *err);
/* Stops HAProxy (its listeners close) and frees. */
void lb_free(struct lb *lb);

enum lb_proto { LB_HTTP, LB_TCP };

/* ELBv2's health check of a target group, in ELB's units. */
struct lb_health_check {
	enum lb_proto proto;      /* HTTP: GET path, matcher on the status; TCP: connect */
	const char *path;         /* HTTP only, "/" by default */
	int port;                 /* 0 = the target's traffic port */
	int interval_s, timeout_s;
	int healthy_threshold, unhealthy_threshold;
	const char *matcher;      /* HTTP codes: "200", "200-299", "200,302" */
};

struct lb_target {
	const char *addr;         /* IPv4 literal */
	int port;
	int weight;               /* 1..256 */
	bool draining;            /* deregistered: no new connections, existing ones finish */
};

/* A target group.  name: stable and unique, [A-Za-z0-9_-]{1,64}
 * (derived from the target group ARN by the caller). */
struct lb_group {
	const char *name;
	enum lb_proto proto;
	struct lb_health_check hc;
	int slow_start_s;         /* 0 = off */
	const struct lb_target *targets;
	size_t n_targets;
};

struct lb_forward {
	const char *group;        /* an lb_group name in the same state */
	int weight;               /* 0..999, ELB's weighted forward */
};

struct lb_action {
	enum { LB_ACTION_FORWARD, LB_ACTION_FIXED } kind;
	const struct lb_forward *forward;  /* FORWARD: one or more groups */
	size_t n_forward;
	int status;               /* FIXED: the response's code, type and body */
	const char *content_type;
	const char *body;
};

/* A listener rule (HTTP listeners): all non-empty conditions must match;
 * within one condition any value matches (ELB's "*" and "?" wildcards). */
struct lb_rule {
	int priority;             /* lower first */
	const char *const *paths;
	size_t n_paths;
	const char *const *hosts;
	size_t n_hosts;
	struct lb_action action;
};

struct lb_listener {
	const char *name;         /* stable and unique, like lb_group.name */
	int port;
	enum lb_proto proto;      /* HTTP: an application LB; TCP: a network LB */
	struct lb_action default_action;
	const struct lb_rule *rules;
	size_t n_rules;
};

struct lb_state {
	const struct lb_listener *listeners;
	size_t n_listeners;
	const struct lb_group *groups;
	size_t n_groups;
};

/* Makes HAProxy serve STATE.  -EADDRINUSE (message naming the port) when a
 * listener's port cannot be bound; the previous state is still served
 * then.  -EINVAL for a string or number HAProxy must not see (nothing
 * changes).  Synchronous: a target change costs a few Runtime API round
 * trips, a reload tens of milliseconds (docs/load-balancing.md). */
int lb_apply(struct lb *lb, const struct lb_state *state, struct berth_err *err);

/* ELB's target health, read from HAProxy's checks. */
enum lb_target_state { LB_INITIAL, LB_HEALTHY, LB_UNHEALTHY, LB_DRAINING, LB_UNUSED };

struct lb_target_health {
	enum lb_target_state state;
	/* ELB's reason code or "" ("Elb.RegistrationInProgress",
	 * "Target.ResponseCodeMismatch", "Target.Timeout",
	 * "Target.FailedHealthChecks", "Target.DeregistrationInProgress",
	 * "Target.NotInUse"), and the last HTTP code a check got (0 = none). */
	char reason[48];
	int last_code;
};

/* -ENOENT when GROUP has no such target in the last applied state. */
int lb_target_health(struct lb *lb, const char *group, const char *addr, int port,
		     struct lb_target_health *ret, struct berth_err *err);

#endif
