/* daemon/ecs/taskdef: a RegisterTaskDefinition request → the task definition
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
 * Errors go through api_error() (daemon/ecs/ecs.h): InvalidParameterException
 * for a malformed member, ClientException for a definition ECS refuses. */
#ifndef BERTH_DAEMON_TASKDEF_H
#define BERTH_DAEMON_TASKDEF_H

#include <stdbool.h>
#include <stdint.h>

#include "daemon/ecs/ecs.h"
#include "daemon/sched/units.h"

/* Validates c->in as a RegisterTaskDefinition request and returns, in
 * *ret, the definition to store: the request's members (tags, nulls and
 * members the request shape does not have dropped), cpu/memory
 * normalised, the defaults ECS fills in, and the computed members that do
 * not change (compatibilities, requiresAttributes, registeredBy).  The
 * caller overlays arn, revision, status and the times. */
int taskdef_build(struct api_call *c, cJSON **ret);

/* taskdef_volumes.c: volumes (names, host.sourcePath), every container's
 * mountPoints (a volume of the definition, absolute and unique
 * containerPath) and volumesFrom (a container of the definition, no
 * cycle), and what Fargate-compatible definitions may not have; -1 after
 * api_error(ClientException). */
int taskdef_check_volumes(struct api_call *c, const cJSON *body, bool fargate);

#endif
