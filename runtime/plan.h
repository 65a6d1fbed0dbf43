/* The task plan: the JSON file a berth-shim is started with
 * (docs/runtime.md "The plan"), parsed and validated whole into these
 * structs before the shim touches anything.  Field names follow the ECS
 * container definition; limits are ECS's:
 *
 *   containers[].name     [A-Za-z0-9_-]{1,255}, unique within the task
 *   stopTimeout           2..120 s, default 30
 *   startTimeout          2..120 s, absent: none; how long a container that
 *                         others wait on for COMPLETE, SUCCESS or HEALTHY
 *                         may take to get there (ECS sets it on the
 *                         dependency, not on the waiting container)
 *   restartPolicy         {enabled, ignoredExitCodes (at most 50 integers),
 *                         restartAttemptPeriod 1..1800 s, default 300}; the
 *                         daemon holds task definitions to ECS's 60..1800
 *   dependsOn             START | COMPLETE | SUCCESS | HEALTHY on a container
 *                         of the task; no cycles; COMPLETE and SUCCESS not on
 *                         an essential container, HEALTHY only on one with a
 *                         healthCheck
 *   healthCheck           command ["CMD", argv…], ["CMD-SHELL", "line"] or
 *                         ["NONE"]; interval 5..300 (30), timeout 2..60 (5),
 *                         retries 1..10 (3), startPeriod 0..300 (0)
 *                         (runtime/health.h converts and checks them)
 *   cpu, memory, …        non-negative integers (memory in MiB)
 *   volumes[]             task level: {name, root, path, create, shared},
 *                         names unique, root absolute; create: path is one
 *                         component the shim may create under root
 *   mountPoints[]         {sourceVolume, containerPath, readOnly, imageVolume}: a volume
 *                         of the task, an absolute path other than "/"
 *                         without "..", unique within the container
 *                         (the daemon has already expanded volumesFrom)
 *
 * After plan_parse() succeeds every field holds a valid value (defaults
 * filled in), so the shim needs no further checks. */
#ifndef BERTH_RT_PLAN_H
#define BERTH_RT_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "netns/net.h"
#include "runtime/container.h"
#include "runtime/health.h"
#include "runtime/log.h"

#define PLAN_NAME_MAX 255
#define PLAN_TASK_ID_MAX 64
#define PLAN_STOP_TIMEOUT_DEFAULT 30
#define PLAN_STOP_TIMEOUT_MIN 2
#define PLAN_STOP_TIMEOUT_MAX 120
#define PLAN_START_TIMEOUT_MIN 2
#define PLAN_START_TIMEOUT_MAX 120
#define PLAN_RESTART_PERIOD_DEFAULT 300
#define PLAN_RESTART_PERIOD_MIN 1
#define PLAN_RESTART_PERIOD_MAX 1800
#define PLAN_RESTART_IGNORED_MAX 50
#define PLAN_MAX_BYTES (16u << 20)

enum plan_condition {
	PLAN_DEP_START,
	PLAN_DEP_COMPLETE,
	PLAN_DEP_SUCCESS,
	PLAN_DEP_HEALTHY,
};

/* "START", … for a condition. */
const char *plan_condition_name(enum plan_condition c);

struct plan_dep {
	size_t index;             /* into plan.containers */
	enum plan_condition condition;
};

/* A NULL-terminated string vector with its length, so that it can be
 * handed to rt_spec as it is. */
struct plan_strv {
	char **v;
	size_t n;
};

struct plan_health {
	bool present;                 /* false also for ["NONE"] */
	struct rt_health_config cfg;  /* argv to run, defaults filled in */
};

/* A task volume: the host directory root/path, opened beneath root
 * (RESOLVE_BENEATH: a symlink in path cannot leave it). */
struct plan_volume {
	char *name;
	char *root;     /* absolute */
	char *path;     /* relative to root; "" is root itself */
	bool create;    /* mkdir root (-p) and path if missing: task and named volumes */
	bool shared;    /* a named volume: held (flock LOCK_SH) while the task runs */
};

struct plan_mount {
	size_t volume;           /* into plan.volumes */
	char *container_path;
	bool readonly;
	bool image_volume;       /* the image declares a VOLUME here: seed an empty volume */
};

/* ECS's ContainerRestartPolicy (docs/runtime.md "Restarts"). */
struct plan_restart {
	bool enabled;
	int ignored[PLAN_RESTART_IGNORED_MAX];   /* exit codes never restarted on */
	size_t n_ignored;
	unsigned attempt_period;                 /* seconds */
};

struct plan_container {
	char *name;
	struct plan_strv layers;       /* as in the plan: bottom first */
	struct plan_strv argv;         /* entryPoint followed by command */
	struct plan_strv env;          /* "NAME=value" */
	char *user;                    /* NULL: root */
	char *working_dir;             /* NULL: "/" */
	bool essential;
	unsigned stop_timeout;         /* seconds */
	unsigned start_timeout;        /* seconds, 0: none */
	struct plan_restart restart;
	struct plan_dep *deps;
	size_t n_deps;
	struct plan_health health;
	struct rt_ulimit *ulimits;
	size_t n_ulimits;
	bool readonly_rootfs;
	struct plan_strv cap_add, cap_drop;
	bool init_process;
	uint64_t memory_mib, memory_reservation_mib;
	uint32_t cpu;
	struct rt_log_opts log_opts;
	struct plan_mount *mounts;
	size_t n_mounts;
};

/* Per-task networking only: the bridge is ensured (cheap), NAT and the
 * policy's rules are the daemon's host-level business (net_rules_ensure);
 * the task's elements in nft_table's sets are its own (security groups:
 * docs/networking.md "Network policy"). */
/* awsvpc and bridge: the task's namespace on the bridge; none: a
 * namespace with only lo; host: no namespace of its own (the daemon
 * allows it only when the operator opted in). */
enum plan_net_mode { PLAN_NET_AWSVPC, PLAN_NET_BRIDGE, PLAN_NET_NONE, PLAN_NET_HOST };

struct plan_network {
	enum plan_net_mode mode;       /* "mode": awsvpc (default), bridge, none, host */
	char *bridge, *subnet, *ipam_dir, *nft_table;
	/* bridge mode's published ports, "tcp:HOSTPORT:PORT" as
	 * net_publish_parse() reads them (berth-netpolicy --publish). */
	char publish[NET_PUBLISH_MAX][24];
	size_t n_publish;
	struct plan_strv security_groups; /* at most NET_GROUPS_MAX; none: default */
	char *hostname;                /* NULL: derived from the address */
};

struct plan {
	char *task_id;
	uint32_t cpu;                  /* task cpu units, 0: no cap */
	uint64_t memory_mib;           /* 0: no limit */
	uint64_t pids_max;
	char *task_dir, *run_dir, *log_dir, *cgroup_name;
	struct plan_network network;
	struct plan_volume *volumes;
	size_t n_volumes;
	struct plan_container *containers;
	size_t n_containers;
};

/* Parses and validates len bytes of JSON text.  Errors name the field:
 * "containers[1].dependsOn[0].containerName \"db\": no such container".
 * *ret is freed with plan_free(). */
int plan_parse(const char *text, size_t len, struct plan **ret, struct berth_err *err);

/* plan_parse() of a file (at most PLAN_MAX_BYTES). */
int plan_load(const char *path, struct plan **ret, struct berth_err *err);

/* Index of the container called name, or -1. */
int plan_container_index(const struct plan *p, const char *name);

void plan_free(struct plan *p);
DEFINE_CLEANUP_FUNC(struct plan, plan_free)

#endif
