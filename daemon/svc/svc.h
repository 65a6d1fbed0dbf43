/* daemon/svc/svc: the service scheduler (docs/services.md): keeps each
 * service's desired count of tasks RUNNING, rolls deployments within
 * maximumPercent / minimumHealthyPercent, replaces unhealthy and lost
 * tasks, backs off tasks that keep failing, and trips the deployment
 * circuit breaker — with ECS's words in the service events.
 *
 * It owns no state of its own: every decision is made from the store
 * (the service row, its deployments, events and backoff state, and its
 * tasks), so a daemon killed at any moment carries on where it was after
 * a restart.  A reconcile runs when something may have changed: a task of
 * the service changed state, the API changed the service, or a timer the
 * last reconcile armed (a backoff ending, a task becoming healthy).
 *
 * Module prefix svc_ (the design's sched_ is the task engine it drives). */
#ifndef BERTH_DAEMON_SVC_H
#define BERTH_DAEMON_SVC_H

#include <stdint.h>
#include <stdio.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "daemon/store/store.h"

struct event_base;
struct sched;

#define SVC_DEFAULT_HEALTHY_AFTER_MS 40000   /* ECS: RUNNING this long = healthy */
#define SVC_BACKOFF_BASE_MS 1000
#define SVC_BACKOFF_CAP_MS (15 * 60 * 1000)   /* ECS's 15 min */
#define SVC_EVENTS_MAX 100
#define SVC_PLACE_RETRY_MS 5000             /* a task that did not fit is tried again */
#define SVC_THROTTLE_AFTER 3                 /* failures before ECS's "unable to consistently start" */
#define SVC_STOP_SCALE "Scaling activity initiated by (deployment %s)"
#define SVC_STOP_UNHEALTHY "Task failed container health checks"
#define SVC_STOP_DELETED "Service deleted"

struct svc_config {
	int64_t healthy_after_ms;   /* 0 = SVC_DEFAULT_HEALTHY_AFTER_MS */
};

struct svc;

/* Reconciles every ACTIVE or DRAINING service once the loop runs. */
int svc_new(struct event_base *base, struct store *store, struct sched *sched,
	    const struct svc_config *cfg, FILE *log, struct svc **ret, struct berth_err *err);
void svc_free(struct svc *v);
DEFINE_CLEANUP_FUNC(struct svc, svc_free)

/* Something about service CLUSTER/NAME changed: reconcile it soon (calls
 * coalesce into one reconcile per loop iteration). */
void svc_poke(struct svc *v, const char *cluster, const char *name);

/* Both accept a NULL V (no scheduler yet) and do nothing then. */

/* Task T of a service has just been recorded STOPPED: counts a failure or
 * a loss for the service's backoff and circuit breaker, then pokes it. */
void svc_task_stopped(struct svc *v, const struct store_task *t);

/* A deployment id, "ecs-svc/" and 19 digits, into buf (at least 28 bytes). */
void svc_deployment_id(char *buf, size_t n);

#endif
