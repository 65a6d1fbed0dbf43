/* daemon/svc/svc_internal: what svc.c (reconcile), svc_state.c (the typed
 * service), svc_loop.c (timers), svc_pins.c and ecs/services.c share.  Not
 * for use outside daemon/. */
#ifndef BERTH_DAEMON_SVC_INTERNAL_H
#define BERTH_DAEMON_SVC_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/json.h"
#include "daemon/svc/svc.h"

#define SVC_TDS_MAX 8

struct svc_entry;

struct svc {
	struct event_base *base;
	struct store *store;
	struct svc_engine engine;
	struct svc_clock clock;
	struct svc_config cfg;
	struct svc_entry *entries;
	FILE *log;
};

enum svc_strategy { SVC_REPLICA, SVC_DAEMON };

/* The stored configuration's members the scheduler reads.  The strings
 * and JSON point into the view's cfg: svc_view_set_config() reads them
 * again after cfg changes. */
struct svc_spec {
	const char *launch_type;             /* or NULL */
	const cJSON *capacity_providers;     /* a strategy (FARGATE, FARGATE_SPOT): FARGATE
					      * tasks; NULL when none or empty */
	enum svc_strategy strategy;
	int64_t max_percent, min_healthy_percent;
	bool breaker, rollback;              /* deploymentCircuitBreaker */
	int64_t grace_ms;                    /* healthCheckGracePeriodSeconds */
	const cJSON *network;                /* networkConfiguration, or NULL */
	const char *subnet;                  /* awsvpcConfiguration.subnets[0], or NULL */
	const cJSON *security_groups;        /* awsvpcConfiguration.securityGroups, or NULL */
	bool enable_execute_command;         /* given to its tasks */
	const char *propagate_tags;          /* TASK_DEFINITION, SERVICE, NONE or NULL */
	bool managed_tags;                   /* enableECSManagedTags */
};

enum svc_dep_status { SVC_DEP_PRIMARY, SVC_DEP_ACTIVE };
enum svc_rollout { SVC_ROLLOUT_NONE, SVC_ROLLOUT_IN_PROGRESS, SVC_ROLLOUT_COMPLETED,
		   SVC_ROLLOUT_FAILED };

struct svc_deployment {
	char *id;                            /* "ecs-svc/" and 19 digits */
	enum svc_dep_status status;
	char *task_definition;               /* ARN */
	int64_t failed_tasks;
	int64_t created_at, updated_at;      /* ms */
	char *launch_type;                   /* the service's when made, or NULL */
	cJSON *network;                      /* likewise its networkConfiguration */
	cJSON *capacity_providers;           /* and capacityProviderStrategy, or NULL */
	enum svc_rollout rollout;
	char *rollout_reason;
	/* The image digests its tasks run (svc_pins.c), one per container in
	 * definition order (NULL: not known); pinned false: none yet. */
	bool pinned;
	char **pins;
	size_t n_pins;
};

struct svc_event_item {
	char id[37];
	int64_t created_at;                  /* ms */
	char *message;
};

/* The scheduler's own state: the backoff, the rollout's progress, and
 * what a CreateService retry is compared with. */
struct svc_state {
	int64_t failures;                    /* in a row, of the PRIMARY */
	int64_t next_launch_at;              /* ms; 0: no backoff */
	char *last_completed;                /* task definition of the last COMPLETED rollout */
	bool steady, stuck;                  /* their events were said */
	char *client_token;                  /* CreateService's, or NULL */
	cJSON *create_request;               /* the request made under it, or NULL */
};

/* One service as a reconcile sees it: its row, its stored JSON parsed
 * once (svc_view_load) into the members below and written back once
 * (svc_view_save) in the same format, its tasks that are not STOPPED, and
 * the task definitions looked up meanwhile. */
struct svc_view {
	struct store_service *row;
	cJSON *cfg;                          /* the configuration as stored (the API echoes it) */
	struct svc_spec spec;
	struct svc_deployment *deps;         /* newest first: [0] is the PRIMARY */
	size_t n_deps;
	struct svc_event_item *events;       /* newest first, at most SVC_EVENTS_MAX */
	size_t n_events;
	struct svc_state state;
	struct store_task **tasks;
	size_t n;
	struct store_task_definition *tds[SVC_TDS_MAX];
	cJSON *td_bodies[SVC_TDS_MAX];
	size_t n_tds;
	bool shown;                          /* svc_view_load_shown's: never saved */
	/* svc_view_load_shown's: the deployments as stored (what
	 * svc_deployment_json() printed), parsed once and moved into the
	 * answer rather than built again from DEPS. */
	cJSON *shown_deps;
};

/* The row and its JSON (w->tasks stays empty) … */
int svc_view_load(struct svc *v, const char *cluster, const char *name, struct svc_view *w,
		  struct berth_err *err);
/* … and the service's tasks that are not STOPPED too. */
int svc_view_load_tasks(struct svc *v, const char *cluster, const char *name,
			struct svc_view *w, struct berth_err *err);
/* … or, for an answer, the row, its configuration, deployments and tasks:
 * the events stay text in the row, the state unread (svc_view_save
 * refuses such a view).  Read from ST: the API's, which for a read is its
 * connection to committed state only. */
int svc_view_load_shown(struct store *st, const char *cluster, const char *name,
			struct svc_view *w, struct berth_err *err);
/* W's typed members into W's row JSON (svc_view_encode), then the store. */
int svc_view_save(struct svc *v, struct svc_view *w, struct berth_err *err);
void svc_view_done(struct svc_view *w);
/* ROW (W's from now on) parsed into W; W's typed members into ROW's JSON. */
int svc_view_parse(struct svc_view *w, struct store_service *row, struct berth_err *err);
int svc_view_encode(struct svc_view *w, struct berth_err *err);
/* W's cfg changed: its spec read again, its text into the row. */
int svc_view_set_config(struct svc_view *w, struct berth_err *err);
/* A deployment, and the events, as the API and the store show them. */
cJSON *svc_deployment_json(const struct svc_deployment *d);
cJSON *svc_events_json(const struct svc_view *w);
int svc_td(struct svc *v, struct svc_view *w, const char *arn, struct store_task_definition **td,
	   const cJSON **body, struct berth_err *err);

/* Runs one reconcile of CLUSTER/NAME at the clock's now; returns when to
 * run the next one (epoch ms), 0 for "only when something happens". */
int64_t svc_reconcile(struct svc *v, const char *cluster, const char *name);

/* A new PRIMARY deployment of TD_ARN in W (the old primary becomes
 * ACTIVE); the backoff starts over.  0, or -ENOMEM. */
int svc_deploy(struct svc_view *w, const char *td_arn, int64_t now);

/* Image digests per deployment (svc_pins.c): learns them from W's tasks
 * that have pulled, and gives the ones a new task of deployment D runs,
 * per container of BODY, into RET
 * (at most MAX; NULL: by tag); returns how many (0: none yet). */
void svc_pins_learn(struct svc_view *w);
size_t svc_pins_for(const struct svc_deployment *d, const cJSON *body, const char **ret,
		    size_t max);

/* "(service NAME) " + the message, as the newest event. */
void svc_event(struct svc_view *w, int64_t now, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void svc_say(struct svc *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The svc_note()s of service CLUSTER/NAME into W's events, oldest
 * first (W NULL: dropped, the service cannot be read); how many. */
size_t svc_notes_flush(struct svc *v, const char *cluster, const char *name, struct svc_view *w,
		       int64_t now);

void svc_deployment_free(struct svc_deployment *d);

#endif
