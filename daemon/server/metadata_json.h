/* daemon/server/metadata_json: the task metadata endpoint's answers in
 * the shapes of ECS's task metadata v4 (docs/task-environment.md): the
 * container and task documents, and Docker-shaped stats built from the
 * shim's cgroup counters and the task veth's counters. */
#ifndef BERTH_DAEMON_METADATA_JSON_H
#define BERTH_DAEMON_METADATA_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "daemon/store/store.h"

/* A task as the endpoint describes it. */
struct md_task {
	const struct store_task *t;
	const cJSON *td;            /* the definition's body */
	const cJSON *ov;            /* the task's overrides, or NULL */
	const char *family;
	int64_t revision;
	const char *cluster_arn;
	const char *region;
	const char *subnet;         /* the task subnet, CIDR */
	const char *gateway;        /* "a.b.c.d/prefix", as ECS spells it */
};

/* One stats reading of a container, kept for the next one's "pre" half. */
struct md_sample {
	int64_t read_ms;            /* 0: none */
	uint64_t cpu_ns, system_ns, rx_bytes, tx_bytes;
};

/* The task's network counters, as the task sees them (eth1 in the
 * answer, as on Fargate). */
struct md_net {
	uint64_t rx_bytes, rx_packets, rx_errors, rx_dropped;
	uint64_t tx_bytes, tx_packets, tx_errors, tx_dropped;
};

/* NULL when out of memory. */
cJSON *md_container_json(const struct md_task *m, size_t i);
cJSON *md_task_json(const struct md_task *m);

/* Container I's stats from CG (its "containers"[name] object of the
 * shim's stats answer; NULL: none, the counters are 0) and NET, with
 * PREV as the "pre" values; *NOW is this reading. */
cJSON *md_stats_json(const struct md_task *m, size_t i, const cJSON *cg, const struct md_net *net,
		     const struct md_sample *prev, struct md_sample *now);

#endif
