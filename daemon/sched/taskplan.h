/* daemon/sched/taskplan: a task definition + RunTask overrides + the pulled
 * images → the berth-shim plan (docs/runtime.md "The plan").
 *
 * Two steps, as the rest of the daemon: taskplan_check() decides at RunTask
 * time, before anything exists, whether Berth can run the definition as
 * written (a member whose meaning Berth cannot honour and whose absence
 * would change what runs is refused, never ignored: docs/api.md lists
 * them); taskplan_build() then merges, per container, the image config
 * under the definition under the overrides, exactly as Docker and the ECS
 * agent do:
 *
 *   entryPoint   definition's (even an empty one), else the image's
 *   command      override's, else definition's, else the image's Cmd; an
 *                empty list counts as unset — but not the image's Cmd when
 *                the definition sets a non-empty entryPoint of its own
 *                (moby's merge() drops Cmd then too)
 *   environment  image Env, then definition environment, then override
 *                environment, then the resolved secrets; a later name
 *                replaces an earlier one
 *   user, workingDirectory   definition's, else the image's
 *   cpu, memory, memoryReservation   override's, else definition's
 *
 * Pure functions over cJSON: no I/O, no store. */
#ifndef BERTH_DAEMON_TASKPLAN_H
#define BERTH_DAEMON_TASKPLAN_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "common/err.h"

struct taskmeta;

/* Fargate's bound on stopTimeout and startTimeout; the shim refuses more
 * (runtime/plan.h). */
#define TASKPLAN_STOP_TIMEOUT_MAX 120
#define TASKPLAN_PIDS_MAX 4096

/* Where a task's pieces live, from the daemon's options. */
struct taskplan_env {
	const char *task_id;
	const char *task_dir;    /* <root>/tasks/<id> */
	const char *run_dir;     /* the daemon's --run-root */
	const char *log_dir;     /* <log-root>/<id> */
	const char *cgroup_name;
	const char *bridge, *subnet, *ipam_dir, *nft_table;
	const char *security_groups; /* joined by ','; NULL: none (the shim's default) */
	/* Bridge mode: the host ports placement gave the task, an array of
	 * "tcp:HOSTPORT:PORT" strings (daemon/sched/ports.h); NULL: none. */
	const cJSON *publish;
	/* The limits of a task whose definition (and overrides) set no task
	 * cpu / memory (daemon/policy.h), raised to what its containers
	 * ask for together; 0 = none. */
	long long default_cpu, default_memory;
	/* The largest logConfiguration max-size (bytes) and max-file a
	 * container gets; 0 = as the definition says. */
	unsigned long long log_max_size;
	unsigned log_max_files;
	/* Resolved container secrets: per container definition, in order,
	 * an array of {"name", "value"} (tasksecrets.h); NULL: none. */
	const cJSON *secrets;
	/* Volumes (daemon/sched/volumes.h): named volumes' directory and
	 * the operator's allowed host-path prefixes. */
	const char *volumes_dir;
	const char *const *host_paths;
	size_t n_host_paths;
	/* The task endpoint (daemon/sched/taskmeta.h): its variables are set
	 * in every container, last; NULL = no endpoint, none set. */
	const struct taskmeta *meta;
};

/* A container's pulled image: its config blob (the image config JSON) and
 * its unpacked layer directories, bottom first. */
struct taskplan_image {
	const char *config_json;
	const char *const *layers;
	size_t n_layers;
};

/* 0 when the definition TD (a stored body) with OVERRIDES (a RunTask
 * `overrides` object, or NULL) can run; else -EINVAL or -ENOTSUP with a
 * message naming the member: ENOTSUP for what Berth refuses to run
 * ("containerDefinitions[0] (web): privileged: Berth does not run
 * privileged containers"), EINVAL for overrides that do not fit the
 * definition (an unknown container name). */
int taskplan_check(const cJSON *td, const cJSON *overrides, struct berth_err *err);

/* The plan for one task: IMAGES holds one entry per container definition,
 * in order.  TD and OVERRIDES must have passed taskplan_check().  *ret is
 * a new cJSON object the caller deletes.  Errors: a malformed image config
 * (-EINVAL, naming the container), -ENOMEM. */
int taskplan_build(const cJSON *td, const cJSON *overrides, const struct taskplan_image *images,
		   const struct taskplan_env *env, cJSON **ret, struct berth_err *err);

/* The definition's task cpu units / memory MiB after overrides (the
 * strings ECS stores, "256" and "512"); 0 when not set. */
long long taskplan_task_cpu(const cJSON *td, const cJSON *overrides);
long long taskplan_task_memory(const cJSON *td, const cJSON *overrides);

/* Container CNAME's FIELD (cpu, memory, memoryReservation) after the
 * overrides; 0 when unset or no such container. */
long long taskplan_container_size(const cJSON *td, const cJSON *overrides, const char *cname,
				  const char *field);

/* What the task reserves on the container instance, as ECS counts it:
 * the task cpu / memory, else the sum over its containers of cpu and of
 * memory (memoryReservation where memory is not set), overrides applied. */
long long taskplan_reserved_cpu(const cJSON *td, const cJSON *overrides);
long long taskplan_reserved_memory(const cJSON *td, const cJSON *overrides);

#endif
