/* daemon/sched/instance: the host as one ECS container instance.
 *
 * The host registers CPU and memory (daemon/policy.h: nproc × 1024 units
 * and MemTotal minus a reserve, or the operator's figures) in every
 * cluster; what its tasks reserve — every task not STOPPED, of any
 * cluster, counted as ECS counts it (taskplan_reserved_cpu/memory) — is
 * taken from both.  RunTask and the service scheduler place a task only
 * where it fits, else ECS's RESOURCE:MEMORY / RESOURCE:CPU.
 *
 * The instance id is stable for a host and a --root: 32 hex digits
 * hashed from /etc/machine-id and the root directory. */
#ifndef BERTH_DAEMON_INSTANCE_H
#define BERTH_DAEMON_INSTANCE_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "common/err.h"
#include "daemon/sched/policy.h"
#include "daemon/store/store.h"

#define INSTANCE_ID_LEN 32
#define INSTANCE_NO_MEMORY "RESOURCE:MEMORY"
#define INSTANCE_NO_CPU "RESOURCE:CPU"
#define INSTANCE_NO_DISK "RESOURCE:DISK" /* Berth's: the host's disk reserve */
#define INSTANCE_NO_PORTS "RESOURCE:PORTS" /* a host port (daemon/sched/ports.h) */

struct instance_usage {
	int64_t cpu, memory;	  /* reserved by tasks not STOPPED, every cluster */
	int64_t running, pending; /* tasks of the cluster asked for: RUNNING, before it */
};

/* The id of the host's container instance under ROOT, into RET. */
void instance_id(const char *root, char ret[INSTANCE_ID_LEN + 1]);

/* What the tasks reserve now; the counts are CLUSTER's (a name). */
int instance_usage(struct store *s, const char *cluster, struct instance_usage *ret,
		   struct berth_err *err);

/* Whether a task of definition TD with OVERRIDES fits on the instance P
 * registers with U already reserved: NULL, after adding what it reserves
 * to U, or the ECS failure reason that says why not. */
const char *instance_place(const struct berth_policy *p, struct instance_usage *u, const cJSON *td,
			   const cJSON *overrides);

#endif
