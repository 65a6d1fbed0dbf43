/* daemon/sched/policy: what the operator lets a task ask for on this host, and
 * what a task gets when its definition asks for nothing.
 *
 *   capabilities  a task may add only SYS_PTRACE (Fargate's rule); the
 *                 operator widens the set (`--allow-capabilities
 *                 NET_ADMIN,SYS_TIME`; `ALL` only when named).  Dropping
 *                 is always allowed.
 *   ulimits       only `nofile` (hard ≤ POLICY_NOFILE_MAX, soft ≤ hard);
 *                 others by operator opt-in (`--allow-ulimits rtprio`).
 *   memory, cpu   a definition without task memory runs under a hard
 *                 limit anyway (`--default-task-memory`, 512 MiB), and one
 *                 without task cpu under a CPU quota (`--default-task-cpu`,
 *                 1024 units = one CPU).
 *   logs          a container's logConfiguration max-size and max-file
 *                 are clamped to `--log-max-size` (100m) and
 *                 `--log-max-file` (10).
 *   disk          a task's writable layers are measured every
 *                 `--disk-check-interval` (10 s) against its ephemeral
 *                 storage (`--default-ephemeral-storage`, 20 GiB, without
 *                 ephemeralStorage); new tasks wait while the disk under
 *                 --root has less than `--disk-reserve` (1 GiB) free.
 *   host paths    a volume's host.sourcePath only beneath a prefix the
 *                 operator allows (`--allow-host-path /srv/data`,
 *                 repeatable; daemon/sched/volumes.h).
 *   the instance  the host registers as one ECS container instance with
 *                 CPU (nproc × 1024) and memory (MemTotal minus
 *                 `--reserved-memory`); `--instance-cpu`/`--instance-memory`
 *                 override them.
 *
 *   networks      bridge-mode tasks' dynamic host ports come from
 *                 `--host-port-range` (49153-65535, ECS's); networkMode
 *                 host only with `--allow-host-network` (the task shares
 *                 the host's network stack: docs/networking.md).
 *
 * A zeroed struct is the default policy.  Names are ECS's: the capability
 * and ulimit lists RegisterTaskDefinition accepts. */
#ifndef BERTH_DAEMON_POLICY_H
#define BERTH_DAEMON_POLICY_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

#define POLICY_NOFILE_MAX 1048576		 /* Fargate's nofile ceiling */
#define POLICY_DEFAULT_TASK_MEMORY 512		 /* MiB */
#define POLICY_DEFAULT_TASK_CPU 1024		 /* units: one CPU */
#define POLICY_DEFAULT_RESERVED_MEMORY 256	 /* MiB kept for the host */
#define POLICY_DEFAULT_LOG_MAX_SIZE 100000000ULL /* bytes ("100m"), per log file */
#define POLICY_DEFAULT_LOG_MAX_FILES 10
#define POLICY_DEFAULT_EPHEMERAL_STORAGE 20480 /* MiB: Fargate's 20 GiB */
#define POLICY_DEFAULT_DISK_CHECK_MS 10000
#define POLICY_DEFAULT_DISK_RESERVE 1024 /* MiB kept free under --root */
#define POLICY_HOST_PATHS_MAX 16

struct berth_policy {
	uint64_t caps;		     /* bit i: policy capability i may be added */
	bool caps_all;		     /* ALL was named */
	uint32_t ulimits;	     /* bit i: policy ulimit i may be set */
	int64_t default_task_memory; /* MiB; 0 = POLICY_DEFAULT_TASK_MEMORY */
	int64_t default_task_cpu;    /* units; 0 = POLICY_DEFAULT_TASK_CPU */
	int64_t reserved_memory;     /* MiB; 0 = POLICY_DEFAULT_RESERVED_MEMORY, -1 = none */
	int64_t instance_cpu;	     /* units; 0 = from the host */
	int64_t instance_memory;     /* MiB; 0 = from the host */
	uint64_t log_max_size;	     /* bytes; 0 = POLICY_DEFAULT_LOG_MAX_SIZE */
	unsigned log_max_files;	     /* 0 = POLICY_DEFAULT_LOG_MAX_FILES */
	int64_t ephemeral_storage;   /* MiB without ephemeralStorage; 0 = the default */
	int64_t disk_check_ms;	     /* 0 = POLICY_DEFAULT_DISK_CHECK_MS */
	int64_t disk_reserve;	     /* MiB; 0 = POLICY_DEFAULT_DISK_RESERVE, -1 = none */
	/* --allow-host-path: canonical absolute prefixes (daemon/sched/volumes.h) */
	const char *host_paths[POLICY_HOST_PATHS_MAX];
	size_t n_host_paths;
	unsigned host_port_min, host_port_max; /* 0 = 49153-65535 (daemon/sched/ports.h) */
	bool allow_host_network;     /* networkMode host may run */
};

/* Is NAME a capability ECS accepts in linuxParameters.capabilities
 * ("SYS_ADMIN"; "ALL" too)? */
bool policy_capability_known(const char *name);
/* Is NAME one of ECS's 15 ulimit names ("nofile", "rtprio", …)? */
bool policy_ulimit_known(const char *name);

/* "NET_ADMIN,SYS_TIME" (--allow-capabilities) and "rtprio,memlock"
 * (--allow-ulimits) into P, adding to what it allows; -EINVAL naming an
 * unknown name. */
int policy_allow_capabilities(struct berth_policy *p, const char *list, struct berth_err *err);
int policy_allow_ulimits(struct berth_policy *p, const char *list, struct berth_err *err);

/* Fills P's instance CPU and memory from the host where the operator set
 * none: nproc × 1024 units, MemTotal minus the reserve.  -EINVAL when
 * the reserve leaves no memory. */
int policy_host_resources(struct berth_policy *p, struct berth_err *err);

/* 0 when the task definition TD (its networkMode, and every container)
 * asks only for what P allows; -EPERM with a message naming the member
 * (the container too) and what the operator allows
 * ("containerDefinitions[0] (web): linuxParameters.capabilities.add:
 * SYS_ADMIN is not allowed …"). */
int policy_check(const struct berth_policy *p, const cJSON *td, struct berth_err *err);

/* The default limits and the log maxima with P's settings. */
int64_t policy_task_memory(const struct berth_policy *p);
int64_t policy_task_cpu(const struct berth_policy *p);
uint64_t policy_log_max_size(const struct berth_policy *p);
unsigned policy_log_max_files(const struct berth_policy *p);
int64_t policy_ephemeral_storage(const struct berth_policy *p);
int64_t policy_disk_check_ms(const struct berth_policy *p);
int64_t policy_disk_reserve(const struct berth_policy *p); /* 0: none */

#endif
