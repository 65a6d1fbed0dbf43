/* daemon/svc/svc: the service scheduler's reconcile.  See svc.h and
 * docs/services.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "daemon/sched/instance.h"
#include "daemon/sched/units.h"
#include "daemon/svc/svc.h"
#include "daemon/svc/svc_internal.h"

/* ---- the deployment configuration --------------------------------------- */

struct bounds {
	int64_t desired, max, min_healthy;
	bool breaker, rollback;
	int64_t grace_ms;
};

static struct bounds bounds_of(const struct svc_view *w)
{
	const struct svc_spec *s = &w->spec;
	struct bounds b = { .desired = w->row->desired_count };
	if (s->strategy == SVC_DAEMON)
		b.desired = 1;   /* one task on the one host, whatever the count says */
	if (w->row->status != STORE_SERVICE_ACTIVE)
		b.desired = 0;
	/* ECS's rounding: the ceiling may not exceed maximumPercent (round
	 * down), the floor may not go under minimumHealthyPercent (round up). */
	b.max = b.desired * s->max_percent / 100;
	b.min_healthy = (b.desired * s->min_healthy_percent + 99) / 100;
	if (b.min_healthy > b.desired)
		b.min_healthy = b.desired;
	b.breaker = s->breaker;
	b.rollback = s->rollback;
	b.grace_ms = s->grace_ms;
	return b;
}

/* The circuit breaker's threshold: clamp(ceil(0.5 × desired), 3, 200). */
static int64_t breaker_threshold(int64_t desired)
{
	int64_t t = (desired + 1) / 2;
	return t < 3 ? 3 : t > 200 ? 200 : t;
}

/* Does the definition's health depend on health checks (an essential
 * container has one)? */
static bool has_health_checks(const cJSON *body)
{
	const cJSON *cd;
	cJSON_ArrayForEach(cd, cJSON_GetObjectItemCaseSensitive(body, "containerDefinitions")) {
		const cJSON *hc = cJSON_GetObjectItemCaseSensitive(cd, "healthCheck");
		if (!cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cd, "essential")) &&
		    cJSON_IsObject(hc))
			return true;
	}
	return false;
}

/* ---- classifying tasks ------------------------------------------------------ */

enum tstate { T_STOPPING, T_PENDING, T_STARTING, T_HEALTHY, T_UNHEALTHY };

static void wake_at(int64_t *wake, int64_t at)
{
	if (!*wake || at < *wake)
		*wake = at;
}

static void targets_of(struct svc *v, const struct store_task *t, struct svc_target_report *r)
{
	*r = (struct svc_target_report){ .health = SVC_TARGETS_NONE };
	if (v->cfg.targets.health)
		v->cfg.targets.health(v->cfg.targets.arg, t, r);
}

/* A task in load balancers is healthy once all its targets are (and its
 * container health checks, if it has any, pass), as in ECS; one whose
 * target fails its checks after the grace period is replaced.  Target
 * health changes without telling the scheduler: it looks again soon. */
static enum tstate by_targets(const struct store_task *t, const struct svc_target_report *r,
			      bool checks, int64_t grace_end, int64_t now, int64_t *wake)
{
	wake_at(wake, now + (r->health == SVC_TARGETS_HEALTHY ? SVC_TARGETS_WATCH_MS
							     : SVC_TARGETS_POLL_MS));
	if (r->health == SVC_TARGETS_UNHEALTHY && now >= grace_end)
		return T_UNHEALTHY;
	if (r->health == SVC_TARGETS_UNHEALTHY)
		wake_at(wake, grace_end);
	if (r->health != SVC_TARGETS_HEALTHY)
		return T_STARTING;
	return !checks || t->health_status == STORE_HEALTH_HEALTHY ? T_HEALTHY : T_STARTING;
}

static enum tstate classify(struct svc *v, struct svc_view *w, const struct store_task *t,
			    const struct bounds *b, int64_t now, int64_t *wake)
{
	if (t->desired_status == STORE_TASK_STOPPED || t->last_status > STORE_TASK_RUNNING)
		return T_STOPPING;
	if (t->last_status != STORE_TASK_RUNNING)
		return T_PENDING;
	int64_t grace_end = t->started_at + b->grace_ms;
	if (t->health_status == STORE_HEALTH_UNHEALTHY && now >= grace_end)
		return T_UNHEALTHY;
	if (t->health_status == STORE_HEALTH_UNHEALTHY)
		wake_at(wake, grace_end);   /* nothing else may change when the grace period ends */
	struct store_task_definition *td;
	const cJSON *body;
	struct berth_err err = { 0 };
	bool checks = svc_td(v, w, t->task_definition_arn, &td, &body, &err) == 0 &&
		      has_health_checks(body);
	struct svc_target_report r = { .health = SVC_TARGETS_NONE };
	if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(w->cfg, "loadBalancers")))
		targets_of(v, t, &r);
	if (r.health != SVC_TARGETS_NONE)
		return by_targets(t, &r, checks, grace_end, now, wake);
	if (t->health_status == STORE_HEALTH_HEALTHY)
		return T_HEALTHY;
	if (checks)
		return T_STARTING;  /* until its checks pass */
	int64_t at = t->started_at + v->cfg.healthy_after_ms;
	if (now >= at)
		return T_HEALTHY;
	wake_at(wake, at);
	return T_STARTING;
}

/* ---- acting ------------------------------------------------------------------ */

struct idlist {
	char text[1024];
	int n;
};

static void idlist_add(struct idlist *l, const char *id)
{
	size_t len = strlen(l->text);
	if (len + STORE_TASK_ID_LEN + 10 < sizeof(l->text))
		snprintf(l->text + len, sizeof(l->text) - len, "%s(task %s)", l->n ? " " : "", id);
	l->n++;
}

static int stop_task(struct svc *v, struct svc_view *w, struct store_task *t, const char *reason,
		     int64_t now, struct idlist *stopped)
{
	struct berth_err err = { 0 };
	int r = v->engine.stop(v->engine.arg, t, reason, now, &err);
	if (r < 0) {
		svc_say(v, "service %s: stop task %s: %s", w->row->name, t->id, err.msg);
		return r;
	}
	idlist_add(stopped, t->id);
	return 0;
}

static int launch_one(struct svc *v, struct svc_view *w, const struct svc_deployment *dep,
		      int64_t now, struct idlist *started, struct berth_err *err)
{
	struct store_task_definition *td;
	const cJSON *body;
	int r = svc_td(v, w, dep->task_definition, &td, &body, err);
	if (r < 0)
		return r;
	const char *pins[TASKDEF_CONTAINERS_MAX];
	const char *prop = w->spec.propagate_tags;
	struct svc_launch l = {
		.cluster = w->row->cluster, .service_name = w->row->name,
		.deployment_id = dep->id,
		.launch_type = w->spec.capacity_providers ? "FARGATE" : w->spec.launch_type,
		.subnet = w->spec.subnet, .td = td, .body = body, .now_ms = now,
		.security_groups = w->spec.security_groups, .pins = pins,
		.n_pins = svc_pins_for(dep, body, pins, ARRAY_SIZE(pins)),
		.enable_execute_command = w->spec.enable_execute_command,
		.tags = { .propagate_from = !prop ? NULL : strcmp(prop, "SERVICE") == 0 ? w->row->arn
					  : strcmp(prop, "TASK_DEFINITION") == 0 ? td->arn : NULL,
			  .managed = w->spec.managed_tags, .cluster = w->row->cluster,
			  .service_name = w->row->name },
	};
	char id[STORE_TASK_ID_LEN + 1];
	r = v->engine.launch(v->engine.arg, &l, id, err);
	if (r == 0)
		idlist_add(started, id);
	return r;
}

/* ---- one reconcile ------------------------------------------------------------- */

/* Stopped by the scheduler or a user (StopTask), not by its own exit. */
static bool stopped_on_purpose(const struct store_task *t)
{
	return t->stop_code && (strcmp(t->stop_code, "ServiceSchedulerInitiated") == 0 ||
				strcmp(t->stop_code, "UserInitiated") == 0);
}

struct tally {
	int64_t live, primary_active, healthy, primary_healthy, pending;
	int64_t wake;
};

static void count(struct svc *v, struct svc_view *w, const struct bounds *b, int64_t now,
		  enum tstate *st, struct tally *n)
{
	const char *primary = w->deps[0].id;
	for (size_t i = 0; i < w->n; i++) {
		const struct store_task *t = w->tasks[i];
		bool mine = t->started_by && strcmp(t->started_by, primary) == 0;
		st[i] = classify(v, w, t, b, now, &n->wake);
		n->live++;
		n->pending += st[i] == T_PENDING || st[i] == T_STARTING;
		n->healthy += st[i] == T_HEALTHY;
		/* A task stopping of its own accord (it exited, failed) is
		 * replaced once it is STOPPED and its failure is counted for the
		 * backoff; one the scheduler or a user stops is replaced now. */
		n->primary_active += mine && st[i] != T_UNHEALTHY &&
				     (st[i] != T_STOPPING || !stopped_on_purpose(t));
		n->primary_healthy += mine && st[i] == T_HEALTHY;
	}
}

/* Unhealthy tasks go; while maximumPercent leaves room their replacement
 * starts first and they go once the primary is whole again. */
static void stop_unhealthy(struct svc *v, struct svc_view *w, const struct bounds *b,
			   enum tstate *st, struct tally *n, int64_t now, struct idlist *stopped)
{
	for (size_t i = 0; i < w->n; i++) {
		struct store_task *t = w->tasks[i];
		if (st[i] != T_UNHEALTHY || (n->live < b->max && n->primary_healthy < b->desired))
			continue;
		/* Its container's checks, or else its targets', failed. */
		char reason[700] = SVC_STOP_UNHEALTHY;
		struct svc_target_report r = { .health = SVC_TARGETS_NONE };
		if (t->health_status != STORE_HEALTH_UNHEALTHY)
			targets_of(v, t, &r);
		if (r.health == SVC_TARGETS_UNHEALTHY)
			snprintf(reason, sizeof(reason), SVC_STOP_ELB, r.target_group);
		if (stop_task(v, w, t, reason, now, stopped) < 0)
			continue;
		if (r.health == SVC_TARGETS_UNHEALTHY)
			svc_event(w, now, "%s", r.event);
		st[i] = T_STOPPING;
	}
}

/* UpdateTaskProtection: not stopped for scale-in or a deployment while
 * protected, as on ECS.  A store error counts as unprotected. */
static bool is_protected(struct svc *v, const struct store_task *t, int64_t now)
{
	int64_t until = 0;
	struct berth_err err = { 0 };
	return store_task_protection_get(v->store, t->arn, &until, &err) == 0 && until > now;
}

/* Old deployments' tasks, and the primary's beyond the desired count:
 * not-yet-healthy ones freely, healthy ones while the healthy count stays
 * at or above minimumHealthyPercent. */
static void stop_surplus(struct svc *v, struct svc_view *w, const struct bounds *b,
			 enum tstate *st, struct tally *n, int64_t now, struct idlist *stopped)
{
	const char *primary = w->deps[0].id;
	int64_t extra = n->primary_active - b->desired;
	char reason[128];
	snprintf(reason, sizeof(reason), SVC_STOP_SCALE, primary);
	for (int pass = 0; pass < 2; pass++)   /* not healthy first, then healthy */
		for (size_t i = 0; i < w->n; i++) {
			const struct store_task *t = w->tasks[i];
			bool mine = t->started_by && strcmp(t->started_by, primary) == 0;
			bool healthy = st[i] == T_HEALTHY;
			if (st[i] == T_STOPPING || st[i] == T_UNHEALTHY || healthy != (pass == 1) ||
			    (mine && extra <= 0))
				continue;
			if (healthy && !mine && n->healthy - 1 < b->min_healthy)
				continue;
			if (is_protected(v, t, now))
				continue;
			if (stop_task(v, w, w->tasks[i], reason, now, stopped) < 0)
				continue;
			st[i] = T_STOPPING;
			n->healthy -= healthy;
			extra -= mine;
		}
}

/* MSG as the newest event, unless it already is. */
static void event_once(struct svc_view *w, const char *msg, int64_t now)
{
	char full[800];
	snprintf(full, sizeof(full), "(service %s) %s", w->row->name, msg);
	if (!w->n_events || !w->events[0].message || strcmp(w->events[0].message, full) != 0)
		svc_event(w, now, "%s", msg);
}

/* ECS's event for a task the container instance has no room for (WHY:
 * RESOURCE:MEMORY, :CPU, :DISK or :PORTS), once while it stays the newest. */
static void unplaced(struct svc *v, struct svc_view *w, const char *why, int64_t now)
{
	char msg[512], lack[64];
	snprintf(lack, sizeof(lack), "has insufficient %s available",
		 strcmp(why, INSTANCE_NO_CPU) == 0 ? "CPU units" :
		 strcmp(why, INSTANCE_NO_DISK) == 0 ? "disk space" : "memory");
	snprintf(msg, sizeof(msg), "was unable to place a task because no container instance met "
		 "all of its requirements. The closest matching (container-instance %s) %s. For "
		 "more information, see the Troubleshooting section of the Amazon ECS Developer "
		 "Guide.", v->engine.instance_id, strcmp(why, INSTANCE_NO_PORTS) == 0
		 ? "is already using a port required by your task" : lack);
	event_once(w, msg, now);
}

static void start_missing(struct svc *v, struct svc_view *w, const struct bounds *b,
			  struct tally *n, int64_t now, struct idlist *started)
{
	const struct svc_deployment *primary = &w->deps[0];
	int64_t need = b->desired - n->primary_active, room = b->max - n->live;
	if (need <= 0 || room <= 0 || primary->rollout == SVC_ROLLOUT_FAILED)
		return;
	int64_t next = w->state.next_launch_at;
	if (next > now) {   /* backing off */
		if (!n->wake || next < n->wake)
			n->wake = next;
		return;
	}
	struct berth_err err = { 0 };
	for (int64_t k = 0; k < (need < room ? need : room); k++) {
		int r = launch_one(v, w, primary, now, started, &err);
		if (r == -ENOSPC) {
			unplaced(v, w, err.msg, now);
			if (!n->wake || now + SVC_PLACE_RETRY_MS < n->wake)
				n->wake = now + SVC_PLACE_RETRY_MS;
			break;
		}
		if (r < 0) {
			svc_say(v, "service %s: start a task: %s", w->row->name, err.msg);
			break;
		}
	}
	n->live += started->n;
}

/* ---- the container instance DRAINING (UpdateContainerInstancesState) ---- */

static bool instance_draining(struct svc *v, const char *cluster)
{
	bool draining = false;
	struct berth_err err = { 0 };
	return store_instance_draining_get(v->store, cluster, &draining, &err) == 0 && draining;
}

/* ECS's draining of a service's tasks (developer guide, "Draining Amazon
 * ECS container instances"): PENDING ones stop at once, RUNNING ones while
 * the healthy count stays at or above minimumHealthyPercent; their
 * replacements would start on another instance, and there is none: ECS's
 * event says so instead.  Task protection does not hold a task back: it
 * covers scale-in and deployments only (ECS's developer guide, "task
 * scale-in protection"). */
static void drain(struct svc *v, struct svc_view *w, const struct bounds *b, enum tstate *st,
		  struct tally *n, int64_t now, struct idlist *stopped)
{
	char reason[320];
	snprintf(reason, sizeof(reason), SVC_STOP_DRAINING, w->row->name);
	for (size_t i = 0; i < w->n; i++) {
		const struct store_task *t = w->tasks[i];
		bool healthy = st[i] == T_HEALTHY;
		bool counted = st[i] != T_UNHEALTHY && t->started_by &&
			       strcmp(t->started_by, w->deps[0].id) == 0;
		if (st[i] == T_STOPPING || (healthy && n->healthy - 1 < b->min_healthy) ||
		    stop_task(v, w, w->tasks[i], reason, now, stopped) < 0)
			continue;
		st[i] = T_STOPPING;
		n->healthy -= healthy;
		n->primary_active -= counted;
	}
	if (n->primary_active < b->desired)
		event_once(w, "was unable to place a task because no container instance met all "
			   "of its requirements. Reason: No Container Instances were found in your "
			   "cluster.", now);
}

/* Drained deployments leave the list; a whole, healthy primary completes
 * its rollout; ECS's steady-state and stuck events. */
static void progress(struct svc_view *w, const struct bounds *b, const struct tally *n,
		     bool moved, int64_t now)
{
	for (size_t i = w->n_deps - 1; i >= 1; i--) {
		const char *id = w->deps[i].id;
		bool has = false;
		for (size_t k = 0; k < w->n && !has; k++)
			has = w->tasks[k]->started_by && strcmp(w->tasks[k]->started_by, id) == 0 &&
			      w->tasks[k]->last_status != STORE_TASK_STOPPED;
		if (has)
			continue;
		svc_deployment_free(&w->deps[i]);
		memmove(&w->deps[i], &w->deps[i + 1], (w->n_deps - i - 1) * sizeof(*w->deps));
		w->n_deps--;
	}
	struct svc_deployment *primary = &w->deps[0];
	bool whole = n->primary_healthy >= b->desired && w->n_deps == 1 &&
		     n->live == n->primary_healthy;
	if (whole && primary->rollout == SVC_ROLLOUT_IN_PROGRESS) {
		char reason[128];
		snprintf(reason, sizeof(reason), "ECS deployment %s completed.", primary->id);
		char *why = strdup(reason), *td = strdup(primary->task_definition);
		if (!why || !td) {
			free(why);
			free(td);
			return;   /* out of memory: the next reconcile completes it */
		}
		primary->rollout = SVC_ROLLOUT_COMPLETED;
		free(primary->rollout_reason);
		primary->rollout_reason = why;
		primary->updated_at = now;
		free(w->state.last_completed);
		w->state.last_completed = td;
		svc_event(w, now, "(deployment %s) deployment completed.", primary->id);
	}
	if (moved)
		w->state.steady = w->state.stuck = false;
	if (whole && !moved && !w->state.steady) {
		w->state.steady = true;
		svc_event(w, now, "has reached a steady state.");
	}
	bool stuck = !moved && !whole && n->pending == 0 && n->live >= b->max &&
		     n->primary_active < b->desired && n->healthy <= b->min_healthy;
	if (stuck && !w->state.stuck) {
		w->state.stuck = true;
		svc_event(w, now, "is unable to make progress: maximumPercent and "
			  "minimumHealthyPercent allow no task to be started or stopped.");
	}
}

/* DRAINING with nothing left: INACTIVE. */
static void drained(struct svc_view *w, const struct tally *n)
{
	if (w->row->status == STORE_SERVICE_DRAINING && n->live == 0)
		w->row->status = STORE_SERVICE_INACTIVE;
}

int64_t svc_reconcile(struct svc *v, const char *cluster, const char *name)
{
	int64_t now = v->clock.now_ms(v->clock.arg);
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	struct berth_err err = { 0 };
	if (svc_view_load_tasks(v, cluster, name, &w, &err) < 0) {
		if (err.code != ENOENT)
			svc_say(v, "service %s: %s", name, err.msg);
		svc_notes_flush(v, cluster, name, NULL, now);   /* nowhere to write them */
		return 0;
	}
	bool idle = w.row->status == STORE_SERVICE_INACTIVE || !w.n_deps;
	/* An idle service saves here only the events noted for it. */
	if (svc_notes_flush(v, cluster, name, &w, now) && idle && svc_view_save(v, &w, &err) < 0)
		svc_say(v, "service %s: %s", name, err.msg);
	if (idle)
		return 0;
	struct bounds b = bounds_of(&w);
	_cleanup_free_ enum tstate *st = calloc(w.n + 1, sizeof(*st));
	if (!st)
		return 0;
	struct tally n = { 0 };
	count(v, &w, &b, now, st, &n);
	svc_pins_learn(&w);
	struct idlist stopped = { "", 0 }, started = { "", 0 };
	stop_unhealthy(v, &w, &b, st, &n, now, &stopped);
	if (instance_draining(v, cluster))
		drain(v, &w, &b, st, &n, now, &stopped);
	else
		start_missing(v, &w, &b, &n, now, &started);
	stop_surplus(v, &w, &b, st, &n, now, &stopped);
	if (started.n)
		svc_event(&w, now, "has started %d tasks: %s.", started.n, started.text);
	if (stopped.n)
		svc_event(&w, now, "has stopped %d running tasks: %s.", stopped.n, stopped.text);
	progress(&w, &b, &n, started.n || stopped.n, now);
	drained(&w, &n);
	if (svc_view_save(v, &w, &err) < 0)
		svc_say(v, "service %s: %s", name, err.msg);
	return n.wake;
}

/* ---- a task of the service stopped ------------------------------------------ */

static void breaker_trips(struct svc_view *w, const struct bounds *b, int64_t now)
{
	struct svc_deployment *primary = &w->deps[0];
	if (!b->breaker || primary->rollout != SVC_ROLLOUT_IN_PROGRESS ||
	    w->state.failures < breaker_threshold(b->desired))
		return;
	char *why = strdup("ECS deployment circuit breaker: tasks failed to start.");
	if (!why)
		return;   /* out of memory: the next failure trips it */
	primary->rollout = SVC_ROLLOUT_FAILED;
	free(primary->rollout_reason);
	primary->rollout_reason = why;
	primary->updated_at = now;
	svc_event(w, now, "(deployment %s) deployment failed: tasks failed to start.", primary->id);
	const char *last = w->state.last_completed;
	if (!b->rollback || !last || strcmp(last, primary->task_definition) == 0)
		return;
	_cleanup_free_ char *td = strdup(last);
	if (td && svc_deploy(w, td, now) == 0)
		svc_event(w, now, "rolling back to deployment %s.", w->deps[0].id);
}

static void count_failure(struct svc_view *w, const struct store_task *t, const struct bounds *b,
			  int64_t now)
{
	int64_t failures = w->state.failures + 1;
	int64_t delay = SVC_BACKOFF_BASE_MS << (failures - 1 < 20 ? failures - 1 : 20);
	if (delay > SVC_BACKOFF_CAP_MS)
		delay = SVC_BACKOFF_CAP_MS;
	w->state.failures = failures;
	w->state.next_launch_at = now + delay;
	for (size_t i = 0; i < w->n_deps; i++)
		if (t->started_by && strcmp(w->deps[i].id, t->started_by) == 0)
			w->deps[i].failed_tasks++;
	if (failures == SVC_THROTTLE_AFTER)
		svc_event(w, now, "is unable to consistently start tasks successfully.");
	breaker_trips(w, b, now);
}

void svc_task_stopped(struct svc *v, const struct store_task *t)
{
	if (!v || !t->service_name)
		return;
	int64_t now = v->clock.now_ms(v->clock.arg);
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	struct berth_err err = { 0 };
	if (svc_view_load(v, t->cluster, t->service_name, &w, &err) < 0 || !w.n_deps)
		return;
	/* Stopped on purpose (by the scheduler or a user): replaced at once,
	 * not a failure.  Otherwise it failed unless it had been healthy. */
	bool meant = stopped_on_purpose(t);
	bool was_healthy = t->started_at &&
			   t->stopped_at - t->started_at >= v->cfg.healthy_after_ms;
	bool of_primary = t->started_by && strcmp(w.deps[0].id, t->started_by) == 0;
	struct bounds b = bounds_of(&w);
	if (!meant && !was_healthy && of_primary) {
		count_failure(&w, t, &b, now);
	} else if (!meant && of_primary) {
		w.state.failures = 0;
		w.state.next_launch_at = 0;
	}
	if (svc_view_save(v, &w, &err) < 0)
		svc_say(v, "service %s: %s", t->service_name, err.msg);
	svc_poke(v, t->cluster, t->service_name);
}
