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
 * last reconcile armed (a backoff ending, a task becoming healthy, a
 * health check grace period ending, a placement to try again).
 *
 * It reads the time only from the struct svc_clock and reaches the task
 * engine only through the struct svc_engine given to svc_new(), so
 * tests/unit/test_svc.c drives it with fakes.
 *
 * Module prefix svc_ (the design's sched_ is the task engine it drives). */
#ifndef BERTH_DAEMON_SVC_H
#define BERTH_DAEMON_SVC_H

#include <stdint.h>
#include <stdio.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "daemon/sched/tasktags.h"
#include "daemon/store/store.h"

struct cJSON;
struct event_base;

#define SVC_DEFAULT_HEALTHY_AFTER_MS 40000   /* ECS: RUNNING this long = healthy */
#define SVC_BACKOFF_BASE_MS 1000
#define SVC_BACKOFF_CAP_MS (15 * 60 * 1000)   /* ECS's 15 min */
#define SVC_EVENTS_MAX 100
#define SVC_PLACE_RETRY_MS 5000             /* a task that did not fit is tried again */
#define SVC_THROTTLE_AFTER 3                 /* failures before ECS's "unable to consistently start" */
#define SVC_STOP_SCALE "Scaling activity initiated by (deployment %s)"
#define SVC_STOP_UNHEALTHY "Task failed container health checks"
#define SVC_STOP_DELETED "Service deleted"
/* A task stopped because its container instance is DRAINING (%s: the
 * service's name), in the words ECS users quote for it. */
#define SVC_STOP_DRAINING "Service %s: container instance is in DRAINING state"

#define SVC_STOP_ELB "Task failed ELB health checks in (target-group %s)"
/* How often a reconcile looks at a task's load balancer targets again:
 * while one is not healthy yet, and once all are. */
#define SVC_TARGETS_POLL_MS 1000
#define SVC_TARGETS_WATCH_MS 5000

/* A task's targets in its service's load balancers, as the scheduler
 * weighs them: NONE (it has none that a listener uses: the rules without
 * a load balancer apply), INITIAL (one is not healthy yet), HEALTHY (all
 * are), UNHEALTHY (one failed its health checks). */
enum svc_target_health { SVC_TARGETS_NONE, SVC_TARGETS_INITIAL, SVC_TARGETS_HEALTHY,
			 SVC_TARGETS_UNHEALTHY };

struct svc_target_report {
	enum svc_target_health health;
	/* UNHEALTHY: the group of the failing target, and ECS's event
	 * without "(service NAME) ": "(task ID) (port N) is unhealthy in
	 * (target-group ARN) due to (reason …)". */
	char target_group[512];
	char event[1024];
};

/* Where the scheduler reads target health (the daemon's: the ELBv2 API,
 * daemon/elb/elb_ecs.c); a NULL HEALTH: no load balancers. */
struct svc_targets {
	void (*health)(void *arg, const struct store_task *t, struct svc_target_report *ret);
	void *arg;
};

struct svc_config {
	int64_t healthy_after_ms;   /* 0 = SVC_DEFAULT_HEALTHY_AFTER_MS */
	struct svc_targets targets;
};

/* The time the scheduler goes by (epoch ms): it never reads a clock of
 * its own, so a test can drive it (svc_real_clock is the daemon's). */
struct svc_clock {
	int64_t (*now_ms)(void *arg);
	void *arg;
};
extern const struct svc_clock svc_real_clock;

/* One task of deployment DEPLOYMENT_ID of service SERVICE_NAME to start. */
struct svc_launch {
	const char *cluster, *service_name, *deployment_id;
	const char *launch_type, *subnet;         /* or NULL */
	const struct cJSON *security_groups;      /* awsvpcConfiguration's, or NULL */
	const struct store_task_definition *td;
	const struct cJSON *body;                 /* td's body, parsed */
	const char *const *pins;                  /* per container: a digest or NULL */
	size_t n_pins;
	int64_t now_ms;
	bool enable_execute_command;
	struct tasktags tags;                     /* propagateTags, enableECSManagedTags */
};

/* What the service scheduler asks of the task engine, and all it asks:
 * the daemon's is svc_engine_sched() (svc_engine.c, over daemon/sched), a
 * unit test gives a fake. */
struct svc_engine {
	/* Places, records and starts one task: 0 and its id into ID, or
	 * -ENOSPC with the ECS reason (INSTANCE_NO_MEMORY, _CPU, _DISK) as
	 * ERR's message when the instance has no room for it. */
	int (*launch)(void *arg, const struct svc_launch *q, char id[STORE_TASK_ID_LEN + 1],
		      struct berth_err *err);
	/* Stops T: records desiredStatus STOPPED, stopCode
	 * ServiceSchedulerInitiated and REASON (T as written), then has the
	 * task told. */
	int (*stop)(void *arg, struct store_task *t, const char *reason, int64_t now_ms,
		    struct berth_err *err);
	const char *instance_id;  /* the container instance, named in ECS's placement event */
	void *arg;
};

/* The daemon's engine: ARG (kept by the caller while the scheduler lives)
 * holds the task engine and the store. */
struct sched;
struct svc_sched {
	struct sched *sched;
	struct store *store;
};
void svc_engine_sched(struct svc_sched *arg, struct svc_engine *ret);

struct svc;

/* Reconciles every ACTIVE or DRAINING service once the loop runs.  ENGINE
 * and CLOCK are copied. */
int svc_new(struct event_base *base, struct store *store, const struct svc_engine *engine,
	    const struct svc_clock *clock, const struct svc_config *cfg, FILE *log,
	    struct svc **ret, struct berth_err *err);
void svc_free(struct svc *v);
DEFINE_CLEANUP_FUNC(struct svc, svc_free)

/* Something about service CLUSTER/NAME changed: reconcile it soon (calls
 * coalesce into one reconcile per loop iteration). */
void svc_poke(struct svc *v, const char *cluster, const char *name);

/* Every ACTIVE or DRAINING service of CLUSTER, likewise (its container
 * instance changed status). */
void svc_poke_cluster(struct svc *v, const char *cluster);

/* Both accept a NULL V (no scheduler yet) and do nothing then. */

/* Task T of a service has just been recorded STOPPED: counts a failure or
 * a loss for the service's backoff and circuit breaker, then pokes it. */
void svc_task_stopped(struct svc *v, const struct store_task *t);

/* An event about service CLUSTER/NAME from outside the scheduler (its
 * load balancers': "registered 1 targets in (target-group …)"):
 * "(service NAME) MESSAGE" joins its events at the next reconcile, which
 * this asks for.  Kept in memory until then, so it may be called from
 * inside a reconcile (a task the scheduler stops drains). */
void svc_note(struct svc *v, const char *cluster, const char *name, const char *message);

/* A deployment id, "ecs-svc/" and 19 digits, into buf (at least 28 bytes). */
void svc_deployment_id(char *buf, size_t n);

#endif
