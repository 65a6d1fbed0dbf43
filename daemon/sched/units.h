/* daemon/sched/units: ECS's sizes as a task definition writes them: task
 * cpu and memory strings, Fargate's table of sizes, and the limits on a
 * definition that both the API's validation (daemon/ecs/taskdef.c) and the
 * task engine (plans, placement) rely on. */
#ifndef BERTH_DAEMON_SCHED_UNITS_H
#define BERTH_DAEMON_SCHED_UNITS_H

#include <stdbool.h>
#include <stdint.h>

#define TASKDEF_CONTAINERS_MAX 10    /* containers per task definition (ECS quota) */
#define TASKDEF_IMAGE_MAX 255        /* characters of a container image (ECS) */
#define TASKDEF_EC2_CPU_MIN 128      /* task cpu units outside Fargate */
#define TASKDEF_EC2_CPU_MAX 196608   /* 192 vCPU */

/* Task cpu: "256" (units) or "1 vcpu", "0.5 vCPU", "2vCPU" (× 1024).
 * 0, or -EINVAL for anything else, fractions of a unit included. */
int units_parse_cpu(const char *s, int64_t *ret);
/* Task memory: "512" (MiB), "512 MiB", "512MB", "1GB", "1 GB", "0.5 GiB"
 * (× 1024).  0, or -EINVAL. */
int units_parse_memory(const char *s, int64_t *ret);
/* Is (CPU units, MEMORY MiB) a size Fargate offers? */
bool units_fargate_fits(int64_t cpu, int64_t memory);

#endif
