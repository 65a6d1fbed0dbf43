/* daemon/taskdef: a RegisterTaskDefinition request → the task definition
 * Berth stores (store_task_definition.body_json).
 *
 * Every member of botocore's RegisterTaskDefinitionRequest is accepted.
 * The members Berth reads (now or when it runs the task) are type-checked
 * down to the container level, and the ECS rules that decide whether the
 * definition can run at all are enforced with ECS's exceptions: family and
 * container names, unique container names, an essential container,
 * container memory, task cpu/memory (converted to units and MiB strings, as
 * ECS does), and Fargate's cpu/memory table and network mode.  Everything
 * else is stored and echoed as given; ECS's defaults are filled in.
 *
 * Errors go through api_error() (api_internal.h): InvalidParameterException
 * for a malformed member, ClientException for a definition ECS refuses. */
#ifndef BERTH_DAEMON_TASKDEF_H
#define BERTH_DAEMON_TASKDEF_H

#include <stdbool.h>
#include <stdint.h>

#include "daemon/api_internal.h"

#define TASKDEF_CONTAINERS_MAX 10    /* containers per task definition (ECS quota) */
#define TASKDEF_IMAGE_MAX 255        /* characters of a container image (ECS) */
#define TASKDEF_EC2_CPU_MIN 128      /* task cpu units outside Fargate */
#define TASKDEF_EC2_CPU_MAX 196608   /* 192 vCPU */

/* Task cpu: "256" (units) or "1 vcpu", "0.5 vCPU", "2vCPU" (× 1024).
 * 0, or -EINVAL for anything else, fractions of a unit included. */
int taskdef_parse_cpu(const char *s, int64_t *ret);
/* Task memory: "512" (MiB), "512 MiB", "512MB", "1GB", "1 GB", "0.5 GiB"
 * (× 1024).  0, or -EINVAL. */
int taskdef_parse_memory(const char *s, int64_t *ret);
/* Is (CPU units, MEMORY MiB) a size Fargate offers? */
bool taskdef_fargate_fits(int64_t cpu, int64_t memory);

/* Validates c->in as a RegisterTaskDefinition request and returns, in
 * *ret, the definition to store: the request's members (tags, nulls and
 * members the request shape does not have dropped), cpu/memory
 * normalised, the defaults ECS fills in, and the computed members that do
 * not change (compatibilities, requiresAttributes, registeredBy).  The
 * caller overlays arn, revision, status and the times. */
int taskdef_build(struct api_call *c, cJSON **ret);

#endif
