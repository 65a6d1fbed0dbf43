/* daemon/server/introspect: the ECS agent's introspection API, on
 * 127.0.0.1:51678 by default (--introspection; docs/task-environment.md):
 *
 *   /v1/metadata                 Cluster, ContainerInstanceArn, Version
 *   /v1/tasks                    every task the store holds
 *   /v1/tasks?taskarn=ARN        one task
 *   /v1/tasks?dockerid=ID        the task of a container (its runtimeId)
 *
 * Read-only, from the store; anyone who can reach the address reads
 * task ARNs and container names, as with the agent, so it listens on
 * loopback unless told otherwise. */
#ifndef BERTH_DAEMON_INTROSPECT_H
#define BERTH_DAEMON_INTROSPECT_H

#include <stdio.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "daemon/store/store.h"

struct event_base;

struct introspect_config {
	const char *spec;           /* "a.b.c.d:port" to listen on (port 0: any) */
	const char *region, *account_id;
	const char *instance_id;    /* the host's container instance id */
	const char *version;        /* "Berth 0.9.0 (git …)" */
	FILE *log;
};

struct introspect;

/* Serves cfg.spec, whose port is first reserved when it lies in the
 * ephemeral range (net_reserve_local_port).  A port a connection holds
 * is tried again each second until it is free (logged), not a failure.
 * CFG's strings must outlive I. */
int introspect_new(struct event_base *base, struct store *store,
		   const struct introspect_config *cfg, struct introspect **ret,
		   struct berth_err *err);
void introspect_free(struct introspect *i);
DEFINE_CLEANUP_FUNC(struct introspect, introspect_free)

#endif
