/* daemon/svc/svc_internal: what svc.c (reconcile), svc_loop.c (timers, deployments)
 * and api_services.c share.  Not for use outside daemon/. */
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
	struct sched *sched;
	struct svc_config cfg;
	struct svc_entry *entries;
	FILE *log;
};

/* One service as a reconcile sees it: its row, its JSON parsed, its tasks
 * that are not STOPPED, and the task definitions looked up meanwhile. */
struct svc_view {
	struct store_service *row;
	cJSON *cfg, *deps, *events, *state;
	struct store_task **tasks;
	size_t n;
	struct store_task_definition *tds[SVC_TDS_MAX];
	cJSON *td_bodies[SVC_TDS_MAX];
	size_t n_tds;
};

/* The row and its JSON (w->tasks stays empty) … */
int svc_view_load(struct svc *v, const char *cluster, const char *name, struct svc_view *w,
		  struct berth_err *err);
/* … and the service's tasks that are not STOPPED too. */
int svc_view_load_tasks(struct svc *v, const char *cluster, const char *name,
			struct svc_view *w, struct berth_err *err);
int svc_view_save(struct svc *v, struct svc_view *w, struct berth_err *err);
void svc_view_done(struct svc_view *w);
int svc_td(struct svc *v, struct svc_view *w, const char *arn, struct store_task_definition **td,
	   const cJSON **body, struct berth_err *err);

/* Runs one reconcile of CLUSTER/NAME; returns when to run the next one
 * (epoch ms), 0 for "only when something happens". */
int64_t svc_reconcile(struct svc *v, const char *cluster, const char *name, int64_t now);

/* A new PRIMARY deployment of TD_ARN in W (the old primary becomes
 * ACTIVE); the backoff starts over.  0, or -ENOMEM. */
int svc_deploy(struct svc_view *w, const char *td_arn, int64_t now);

/* Image digests per deployment (svc_pins.c): learns them from W's tasks
 * that have pulled (and forgets those of deployments gone), and gives
 * the ones a new task of DEPLOYMENT runs, per container of BODY, into RET
 * (at most MAX; NULL: by tag); returns how many (0: none yet). */
void svc_pins_learn(struct svc_view *w);
size_t svc_pins_for(const struct svc_view *w, const char *deployment, const cJSON *body,
		    const char **ret, size_t max);

/* "(service NAME) " + the message, as the newest event. */
void svc_event(struct svc_view *w, int64_t now, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void svc_say(struct svc *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

bool svc_set_num(cJSON *o, const char *name, double v);

#endif
