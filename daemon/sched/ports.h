/* daemon/sched/ports: the host ports of bridge-mode tasks, as the ECS
 * container instance counts them (its PORTS and PORTS_UDP resources).
 *
 * A bridge-mode task publishes each portMappings entry on the host
 * (docs/networking.md "Published ports"): a fixed hostPort is that port,
 * hostPort 0 or absent a free one of the operator's dynamic range
 * (--host-port-range, ECS's 49153-65535 by default).  A port is taken
 * while a task not STOPPED holds it (its containers' networkBindings,
 * read back from the store: nothing is kept in memory, so a restarted
 * daemon knows every port its running tasks hold) or while a host
 * process has bound it (a bind() test, so a task never shadows sshd or
 * the daemon's own TCP API).  A task whose fixed port is taken, or that
 * finds no free dynamic port, is not placed: ECS's RESOURCE:PORTS. */
#ifndef BERTH_DAEMON_PORTS_H
#define BERTH_DAEMON_PORTS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "daemon/sched/instance.h"
#include "daemon/sched/policy.h"
#include "daemon/store/store.h"

#define PORTS_DYNAMIC_MIN 49153  /* ECS's ephemeral range */
#define PORTS_DYNAMIC_MAX 65535

/* Ports held: bit p of tcp / udp. */
struct ports_used {
	uint64_t tcp[65536 / 64], udp[65536 / 64];
	uint32_t cursor;  /* where the next dynamic search starts */
};

/* Whether TD runs in bridge or host mode (where a mapping's hostPort is
 * its containerPort, bound by the task itself on the host's stack) with
 * at least one port mapping. */
bool ports_needed(const cJSON *td);

/* *U = the host ports every task not STOPPED holds. */
int ports_load(struct store *s, struct ports_used *u, struct berth_err *err);

/* Host ports for every portMappings entry of TD (bridge or host mode),
 * taken in U: *RET is a new array with, per container definition, the
 * array of its networkBindings as DescribeTasks shows them ({bindIP,
 * containerPort, hostPort, protocol}).  NULL when it fits (out of memory:
 * NULL with *RET NULL, U unchanged), else INSTANCE_NO_PORTS with DETAIL
 * saying which port, U unchanged. */
const char *ports_assign(const struct berth_policy *p, struct ports_used *u, const cJSON *td,
			 cJSON **ret, char *detail, size_t detail_n);

/* The "tcp:HOSTPORT:PORT" strings of a task's bindings (network_json of
 * each container: {"networkBindings": [...]}), for the plan's
 * network.publish: a new array of strings, or NULL on OOM. */
cJSON *ports_publish_list(const char *const *network_json, size_t n);

#endif
