/* ECS container health checks, without the I/O: the healthCheck object's
 * parser and the per-container and per-task state machines.  The shim runs
 * the probes (rt_exec_in, runtime/exec.h) and feeds the results in; keeping
 * this pure lets the rules be tested with a fake clock.
 *
 * The rules, as ECS (which delegates to Docker's health monitor):
 *  - a container's status is UNKNOWN until the first conclusive result;
 *  - a pass makes it HEALTHY and resets the consecutive-failure count;
 *  - a failure (non-zero exit, or killed after timeout_s) counts towards
 *    retries; after `retries` counted failures in a row it is UNHEALTHY;
 *  - failures within start_period_s of the start do not count, until the
 *    first pass: from then on every failure counts (Docker's
 *    "once a check succeeds, the container is considered started");
 *  - a probe runs interval_s after the container started, then interval_s
 *    after the previous probe finished (Docker's monitor loop).
 * Times are milliseconds on one monotonic clock of the caller's choice. */
#ifndef BERTH_RT_HEALTH_H
#define BERTH_RT_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* ECS's defaults and limits (RegisterTaskDefinition, HealthCheck). */
#define RT_HEALTH_INTERVAL_DEFAULT 30
#define RT_HEALTH_INTERVAL_MIN 5
#define RT_HEALTH_INTERVAL_MAX 300
#define RT_HEALTH_TIMEOUT_DEFAULT 5
#define RT_HEALTH_TIMEOUT_MIN 2
#define RT_HEALTH_TIMEOUT_MAX 60
#define RT_HEALTH_RETRIES_DEFAULT 3
#define RT_HEALTH_RETRIES_MIN 1
#define RT_HEALTH_RETRIES_MAX 10
#define RT_HEALTH_START_PERIOD_DEFAULT 0
#define RT_HEALTH_START_PERIOD_MIN 0
#define RT_HEALTH_START_PERIOD_MAX 300

enum rt_health_status {
	RT_HEALTH_UNKNOWN = 0,
	RT_HEALTH_HEALTHY,
	RT_HEALTH_UNHEALTHY,
};

/* "UNKNOWN", "HEALTHY", "UNHEALTHY": the ECS API's healthStatus values. */
const char *rt_health_status_name(enum rt_health_status s);

struct rt_health_config {
	char **argv;         /* NULL-terminated heap strv; NULL: no health check ("NONE") */
	int interval_s;
	int timeout_s;
	int retries;
	int start_period_s;
};

/* From the container definition's healthCheck: command[0..n) is
 *   ["CMD", exe, args…]        argv = exe, args…
 *   ["CMD-SHELL", script, …]   argv = /bin/sh -c script …  (as Docker: the
 *                              strings after the script become $0, $1…;
 *                              they are not joined into it)
 *   ["NONE"]                   disabled: argv NULL
 * Each number is -1 for "absent" (the default applies) or must lie within
 * ECS's limits.  On success *ret owns argv (rt_health_config_free); on
 * failure *ret is untouched and the message names the healthCheck field. */
int rt_health_config_from(const char *const *command, size_t n, int interval_s,
			  int timeout_s, int retries, int start_period_s,
			  struct rt_health_config *ret, struct berth_err *err);

/* Frees argv and zeroes *cfg (NULL-safe, idempotent). */
void rt_health_config_free(struct rt_health_config *cfg);

/* One container's health.  Plain data; nothing to free. */
struct rt_health {
	enum rt_health_status status;
	unsigned failures;        /* consecutive failures, counted or not */
	unsigned counted;         /* consecutive failures that count toward retries */
	int64_t started_at;       /* ms */
	int64_t next_due;         /* ms */
	int64_t interval_ms, start_period_ms;
	unsigned retries;
};

/* The container started at `now`: UNKNOWN, first probe due interval_s
 * later.  Copies what it needs from cfg (which may go away). */
void rt_health_start(struct rt_health *h, const struct rt_health_config *cfg, int64_t now);

/* When the next probe should start (ms, same clock). */
int64_t rt_health_next_due(const struct rt_health *h);

/* A probe finished at `now` (passed: exit 0 within the timeout).  Updates
 * the status, schedules the next probe and returns true when the status
 * changed (the shim's "health-changed" event). */
bool rt_health_record(struct rt_health *h, bool passed, int64_t now);

/* One container as the task sees it. */
struct rt_health_member {
	bool essential;
	bool has_check;
	enum rt_health_status status;
};

/* The task's healthStatus: UNHEALTHY if any essential container with a
 * check is UNHEALTHY; HEALTHY if there is at least one essential container
 * with a check and all of them are HEALTHY; else UNKNOWN.  Non-essential
 * containers and containers without checks do not count. */
enum rt_health_status rt_health_task(const struct rt_health_member *m, size_t n);

#endif
