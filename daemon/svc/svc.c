/* daemon/svc/svc: the service scheduler.  See svc.h and docs/services.md. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/event.h>

#include "common/cleanup.h"
#include "common/time.h"
#include "common/json.h"
#include "daemon/sched/instance.h"
#include "daemon/sched/sched.h"
#include "daemon/sched/units.h"
#include "daemon/svc/svc.h"
#include "daemon/svc/svc_internal.h"

/* ---- the service as one reconcile sees it -------------------------------- */

void svc_view_done(struct svc_view *w)
{
	store_service_free(w->row);
	cJSON_Delete(w->cfg);
	cJSON_Delete(w->deps);
	cJSON_Delete(w->events);
	cJSON_Delete(w->state);
	for (size_t i = 0; i < w->n; i++)
		store_task_free(w->tasks[i]);
	free(w->tasks);
	for (size_t i = 0; i < w->n_tds; i++)
		store_task_definition_free(w->tds[i]), cJSON_Delete(w->td_bodies[i]);
	*w = (struct svc_view){ 0 };
}

static int load_tasks(struct svc *v, struct svc_view *w, struct berth_err *err)
{
	struct store_task_filter f = { .cluster = w->row->cluster, .service_name = w->row->name,
				       .not_stopped = true };
	struct store_page page = { 0 };
	_cleanup_free_ char *token = NULL;
	do {
		struct store_list l = { 0 };
		page.next_token = token;
		int r = store_task_list(v->store, &f, &page, &l, err);
		if (r < 0)
			return r;
		struct store_task **grown = realloc(w->tasks, (w->n + l.n + 1) * sizeof(*grown));
		if (!grown) {
			store_list_clear(&l);
			return berth_errf(err, ENOMEM, "out of memory");
		}
		w->tasks = grown;
		for (size_t i = 0; i < l.n && r == 0; i++)
			if ((r = store_task_get(v->store, l.items[i], &w->tasks[w->n], err)) == 0)
				w->n++;
		free(token);
		token = TAKE_PTR(l.next_token);
		store_list_clear(&l);
		if (r < 0)
			return r;
	} while (token);
	return 0;
}

int svc_view_load(struct svc *v, const char *cluster, const char *name, struct svc_view *w,
		  struct berth_err *err)
{
	*w = (struct svc_view){ 0 };
	int r = store_service_get(v->store, cluster, name, &w->row, err);
	if (r < 0)
		return r;
	w->cfg = cJSON_Parse(w->row->config_json);
	w->deps = cJSON_Parse(w->row->deployments_json);
	w->events = cJSON_Parse(w->row->events_json);
	w->state = cJSON_Parse(w->row->state_json);
	if (!w->cfg || !w->deps || !w->events || !w->state)
		return berth_errf(err, EBADMSG, "service %s: stored JSON does not parse", name);
	return 0;
}

int svc_view_load_tasks(struct svc *v, const char *cluster, const char *name,
			struct svc_view *w, struct berth_err *err)
{
	int r = svc_view_load(v, cluster, name, w, err);
	return r < 0 ? r : load_tasks(v, w, err);
}

int svc_view_save(struct svc *v, struct svc_view *w, struct berth_err *err)
{
	_cleanup_free_ char *deps = cJSON_PrintUnformatted(w->deps);
	_cleanup_free_ char *events = cJSON_PrintUnformatted(w->events);
	_cleanup_free_ char *state = cJSON_PrintUnformatted(w->state);
	if (!deps || !events || !state)
		return berth_errf(err, ENOMEM, "out of memory");
	free(w->row->deployments_json);
	free(w->row->events_json);
	free(w->row->state_json);
	w->row->deployments_json = TAKE_PTR(deps);
	w->row->events_json = TAKE_PTR(events);
	w->row->state_json = TAKE_PTR(state);
	return store_service_update(v->store, w->row, err);
}

/* ---- small JSON helpers ---------------------------------------------------- */

bool svc_set_num(cJSON *o, const char *name, double v)
{
	cJSON *n = cJSON_GetObjectItemCaseSensitive(o, name);
	if (cJSON_IsNumber(n)) {
		cJSON_SetNumberValue(n, v);
		return true;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(o, name);
	return cJSON_AddNumberToObject(o, name, v) != NULL;
}

static bool flag(const cJSON *o, const char *name)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, name));
}

static bool set_flag(cJSON *o, const char *name, bool v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, name);
	return cJSON_AddBoolToObject(o, name, v) != NULL;
}

void svc_deployment_id(char *buf, size_t n)
{
	unsigned char b[8];
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		memset(b, 7, sizeof(b));
	uint64_t x;
	memcpy(&x, b, sizeof(x));
	snprintf(buf, n, "ecs-svc/%019llu", (unsigned long long)(x % 10000000000000000000ULL));
}

/* "(service NAME) MESSAGE" as the newest event, at most SVC_EVENTS_MAX kept. */
void svc_event(struct svc_view *w, int64_t now, const char *fmt, ...)
{
	char msg[1024];
	int n = snprintf(msg, sizeof(msg), "(service %s) ", w->row->name);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	char id[37];
	json_uuid(id);
	cJSON *e = cJSON_CreateObject();
	if (!e || !cJSON_AddStringToObject(e, "id", id) ||
	    !cJSON_AddNumberToObject(e, "createdAt", (double)now / 1000.0) ||
	    !cJSON_AddStringToObject(e, "message", msg) ||
	    !cJSON_InsertItemInArray(w->events, 0, e)) {
		cJSON_Delete(e);
		return;
	}
	while (cJSON_GetArraySize(w->events) > SVC_EVENTS_MAX)
		cJSON_DeleteItemFromArray(w->events, SVC_EVENTS_MAX);
}

/* ---- the deployment configuration --------------------------------------- */

struct bounds {
	int64_t desired, max, min_healthy;
	bool breaker, rollback;
	int64_t grace_ms;
};

static struct bounds bounds_of(const struct svc_view *w)
{
	const cJSON *dc = cJSON_GetObjectItemCaseSensitive(w->cfg, "deploymentConfiguration");
	const cJSON *cb = cJSON_GetObjectItemCaseSensitive(dc, "deploymentCircuitBreaker");
	struct bounds b = { .desired = w->row->desired_count };
	if (w->row->status != STORE_SERVICE_ACTIVE)
		b.desired = 0;
	int64_t maxp = json_int(dc, "maximumPercent", 200);
	int64_t minp = json_int(dc, "minimumHealthyPercent", 100);
	/* ECS's rounding: the ceiling may not exceed maximumPercent (round
	 * down), the floor may not go under minimumHealthyPercent (round up). */
	b.max = b.desired * maxp / 100;
	b.min_healthy = (b.desired * minp + 99) / 100;
	if (b.min_healthy > b.desired)
		b.min_healthy = b.desired;
	b.breaker = flag(cb, "enable");
	b.rollback = flag(cb, "rollback");
	b.grace_ms = json_int(w->cfg, "healthCheckGracePeriodSeconds", 0) * 1000;
	return b;
}

/* The circuit breaker's threshold: clamp(ceil(0.5 × desired), 3, 200). */
static int64_t breaker_threshold(int64_t desired)
{
	int64_t t = (desired + 1) / 2;
	return t < 3 ? 3 : t > 200 ? 200 : t;
}

/* ---- task definitions a reconcile needs ---------------------------------- */

int svc_td(struct svc *v, struct svc_view *w, const char *arn, struct store_task_definition **td,
	   const cJSON **body, struct berth_err *err)
{
	for (size_t i = 0; i < w->n_tds; i++)
		if (strcmp(w->tds[i]->arn, arn) == 0) {
			*td = w->tds[i];
			*body = w->td_bodies[i];
			return 0;
		}
	if (w->n_tds == SVC_TDS_MAX)
		return berth_errf(err, E2BIG, "service %s: too many deployments", w->row->name);
	int r = store_task_definition_get(v->store, arn, &w->tds[w->n_tds], err);
	if (r < 0)
		return r;
	w->td_bodies[w->n_tds] = cJSON_Parse(w->tds[w->n_tds]->body_json);
	if (!w->td_bodies[w->n_tds]) {
		store_task_definition_free(w->tds[w->n_tds]);
		return berth_errf(err, EBADMSG, "task definition %s: does not parse", arn);
	}
	*td = w->tds[w->n_tds];
	*body = w->td_bodies[w->n_tds++];
	return 0;
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
	if (t->health_status == STORE_HEALTH_HEALTHY)
		return T_HEALTHY;
	struct store_task_definition *td;
	const cJSON *body;
	struct berth_err err = { 0 };
	if (svc_td(v, w, t->task_definition_arn, &td, &body, &err) == 0 && has_health_checks(body))
		return T_STARTING;  /* until its checks pass */
	int64_t at = t->started_at + v->cfg.healthy_after_ms;
	if (now >= at)
		return T_HEALTHY;
	if (!*wake || at < *wake)
		*wake = at;
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
	t->desired_status = STORE_TASK_STOPPED;
	free(t->stop_code);
	free(t->stopped_reason);
	t->stop_code = strdup("ServiceSchedulerInitiated");
	t->stopped_reason = strdup(reason);
	if (!t->stopping_at)
		t->stopping_at = now;
	int r = store_task_update(v->store, t, &err);
	if (r < 0) {
		svc_say(v, "service %s: stop task %s: %s", w->row->name, t->id, err.msg);
		return r;
	}
	sched_stop(v->sched, t->id, reason);
	idlist_add(stopped, t->id);
	return 0;
}

static const cJSON *vpc_of(const struct svc_view *w)
{
	const cJSON *nc = cJSON_GetObjectItemCaseSensitive(w->cfg, "networkConfiguration");
	return cJSON_GetObjectItemCaseSensitive(nc, "awsvpcConfiguration");
}

static const char *subnet_of(const struct svc_view *w)
{
	return cJSON_GetStringValue(cJSON_GetArrayItem(
		cJSON_GetObjectItemCaseSensitive(vpc_of(w), "subnets"), 0));
}

static int launch_one(struct svc *v, struct svc_view *w, const cJSON *dep, int64_t now,
		      struct idlist *started, struct berth_err *err)
{
	struct store_task_definition *td;
	const cJSON *body;
	int r = svc_td(v, w, json_str(dep, "taskDefinition"), &td, &body, err);
	if (r < 0)
		return r;
	/* Placement, as RunTask's: the host's registered CPU and memory. */
	struct instance_usage u;
	if ((r = instance_usage(v->store, w->row->cluster, &u, err)) < 0)
		return r;
	const char *why = sched_disk_room(v->sched, err) == -ENOSPC ? INSTANCE_NO_DISK
			  : instance_place(sched_policy(v->sched), &u, body, NULL);
	if (why)
		return berth_errf(err, ENOSPC, "%s", why);
	char group[300];
	snprintf(group, sizeof(group), "service:%s", w->row->name);
	const char *pins[TASKDEF_CONTAINERS_MAX];
	struct sched_task_req q = {
		.cluster = w->row->cluster, .td = td, .body = body, .group = group,
		.started_by = json_str(dep, "id"), .launch_type = json_str(w->cfg, "launchType"),
		.subnet = subnet_of(w), .service_name = w->row->name, .now_ms = now,
		.security_groups = cJSON_GetObjectItemCaseSensitive(vpc_of(w), "securityGroups"),
		.pins = pins,
		.n_pins = svc_pins_for(w, json_str(dep, "id"), body, pins, ARRAY_SIZE(pins)),
	};
	struct store_task t = { 0 };
	r = sched_task_record(v->sched, &q, &t, err);
	if (r == 0)
		r = store_task_insert(v->store, &t, err);
	if (r == 0)
		r = sched_launch(v->sched, &t, td->body_json, err);
	if (r == 0)
		idlist_add(started, t.id);
	sched_task_record_clear(&t);
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
	const char *primary = json_str(cJSON_GetArrayItem(w->deps, 0), "id");
	for (size_t i = 0; i < w->n; i++) {
		const struct store_task *t = w->tasks[i];
		bool mine = t->started_by && primary && strcmp(t->started_by, primary) == 0;
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
	for (size_t i = 0; i < w->n; i++)
		if (st[i] == T_UNHEALTHY &&
		    (n->live >= b->max || n->primary_healthy >= b->desired) &&
		    stop_task(v, w, w->tasks[i], SVC_STOP_UNHEALTHY, now, stopped) == 0)
			st[i] = T_STOPPING;
}

/* Old deployments' tasks, and the primary's beyond the desired count:
 * not-yet-healthy ones freely, healthy ones while the healthy count stays
 * at or above minimumHealthyPercent. */
static void stop_surplus(struct svc *v, struct svc_view *w, const struct bounds *b,
			 enum tstate *st, struct tally *n, int64_t now, struct idlist *stopped)
{
	const char *primary = json_str(cJSON_GetArrayItem(w->deps, 0), "id");
	int64_t extra = n->primary_active - b->desired;
	char reason[128];
	snprintf(reason, sizeof(reason), SVC_STOP_SCALE, primary ? primary : "?");
	for (int pass = 0; pass < 2; pass++)   /* not healthy first, then healthy */
		for (size_t i = 0; i < w->n; i++) {
			const struct store_task *t = w->tasks[i];
			bool mine = t->started_by && primary && strcmp(t->started_by, primary) == 0;
			bool healthy = st[i] == T_HEALTHY;
			if (st[i] == T_STOPPING || st[i] == T_UNHEALTHY || healthy != (pass == 1) ||
			    (mine && extra <= 0))
				continue;
			if (healthy && !mine && n->healthy - 1 < b->min_healthy)
				continue;
			if (stop_task(v, w, w->tasks[i], reason, now, stopped) < 0)
				continue;
			st[i] = T_STOPPING;
			n->healthy -= healthy;
			extra -= mine;
		}
}

/* ECS's event for a task the container instance has no room for (WHY:
 * RESOURCE:MEMORY or RESOURCE:CPU), once while it stays the newest. */
static void unplaced(struct svc *v, struct svc_view *w, const char *why, int64_t now)
{
	char msg[512];
	snprintf(msg, sizeof(msg), "was unable to place a task because no container instance met "
		 "all of its requirements. The closest matching (container-instance %s) has "
		 "insufficient %s available. For more information, see the Troubleshooting "
		 "section of the Amazon ECS Developer Guide.", sched_instance_id(v->sched),
		 strcmp(why, INSTANCE_NO_CPU) == 0 ? "CPU units" :
		 strcmp(why, INSTANCE_NO_DISK) == 0 ? "disk space" : "memory");
	char full[800];
	snprintf(full, sizeof(full), "(service %s) %s", w->row->name, msg);
	const char *last = json_str(cJSON_GetArrayItem(w->events, 0), "message");
	if (!last || strcmp(last, full) != 0)
		svc_event(w, now, "%s", msg);
}

static void start_missing(struct svc *v, struct svc_view *w, const struct bounds *b,
			  struct tally *n, int64_t now, struct idlist *started)
{
	cJSON *primary = cJSON_GetArrayItem(w->deps, 0);
	const char *rollout = json_str(primary, "rolloutState");
	int64_t need = b->desired - n->primary_active, room = b->max - n->live;
	if (need <= 0 || room <= 0 || (rollout && strcmp(rollout, "FAILED") == 0))
		return;
	int64_t next = json_int(w->state, "nextLaunchAt", 0);
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

/* Drained deployments leave the list; a whole, healthy primary completes
 * its rollout; ECS's steady-state and stuck events. */
static void progress(struct svc_view *w, const struct bounds *b, const struct tally *n,
		     bool moved, int64_t now)
{
	cJSON *primary = cJSON_GetArrayItem(w->deps, 0);
	for (int i = cJSON_GetArraySize(w->deps) - 1; i >= 1; i--) {
		const char *id = json_str(cJSON_GetArrayItem(w->deps, i), "id");
		bool has = false;
		for (size_t k = 0; k < w->n && !has; k++)
			has = w->tasks[k]->started_by && strcmp(w->tasks[k]->started_by, id) == 0 &&
			      w->tasks[k]->last_status != STORE_TASK_STOPPED;
		if (!has)
			cJSON_DeleteItemFromArray(w->deps, i);
	}
	bool whole = n->primary_healthy >= b->desired && cJSON_GetArraySize(w->deps) == 1 &&
		     n->live == n->primary_healthy;
	const char *rollout = json_str(primary, "rolloutState");
	if (whole && rollout && strcmp(rollout, "IN_PROGRESS") == 0) {
		char reason[128];
		snprintf(reason, sizeof(reason), "ECS deployment %s completed.",
			 json_str(primary, "id"));
		json_set_str(primary, "rolloutState", "COMPLETED");
		json_set_str(primary, "rolloutStateReason", reason);
		svc_set_num(primary, "updatedAt", (double)now / 1000.0);
		json_set_str(w->state, "lastCompleted", json_str(primary, "taskDefinition"));
		svc_event(w, now, "(deployment %s) deployment completed.", json_str(primary, "id"));
	}
	if (moved)
		set_flag(w->state, "steady", false), set_flag(w->state, "stuck", false);
	if (whole && !moved && !flag(w->state, "steady")) {
		set_flag(w->state, "steady", true);
		svc_event(w, now, "has reached a steady state.");
	}
	bool stuck = !moved && !whole && n->pending == 0 && n->live >= b->max &&
		     n->primary_active < b->desired && n->healthy <= b->min_healthy;
	if (stuck && !flag(w->state, "stuck")) {
		set_flag(w->state, "stuck", true);
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

int64_t svc_reconcile(struct svc *v, const char *cluster, const char *name, int64_t now)
{
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	struct berth_err err = { 0 };
	if (svc_view_load_tasks(v, cluster, name, &w, &err) < 0) {
		if (err.code != ENOENT)
			svc_say(v, "service %s: %s", name, err.msg);
		return 0;
	}
	if (w.row->status == STORE_SERVICE_INACTIVE || !cJSON_GetArraySize(w.deps))
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
	cJSON *primary = cJSON_GetArrayItem(w->deps, 0);
	const char *id = json_str(primary, "id"), *rollout = json_str(primary, "rolloutState");
	if (!b->breaker || !rollout || strcmp(rollout, "IN_PROGRESS") != 0 ||
	    json_int(w->state, "failures", 0) < breaker_threshold(b->desired))
		return;
	json_set_str(primary, "rolloutState", "FAILED");
	json_set_str(primary, "rolloutStateReason", "ECS deployment circuit breaker: tasks failed "
		     "to start.");
	svc_set_num(primary, "updatedAt", (double)now / 1000.0);
	svc_event(w, now, "(deployment %s) deployment failed: tasks failed to start.", id);
	const char *last = json_str(w->state, "lastCompleted");
	if (!b->rollback || !last || strcmp(last, json_str(primary, "taskDefinition")) == 0)
		return;
	_cleanup_free_ char *td = strdup(last);
	if (td && svc_deploy(w, td, now) == 0)
		svc_event(w, now, "rolling back to deployment %s.",
			  json_str(cJSON_GetArrayItem(w->deps, 0), "id"));
}

static void count_failure(struct svc_view *w, const struct store_task *t, const struct bounds *b,
			  int64_t now)
{
	int64_t failures = json_int(w->state, "failures", 0) + 1;
	int64_t delay = SVC_BACKOFF_BASE_MS << (failures - 1 < 20 ? failures - 1 : 20);
	if (delay > SVC_BACKOFF_CAP_MS)
		delay = SVC_BACKOFF_CAP_MS;
	svc_set_num(w->state, "failures", (double)failures);
	svc_set_num(w->state, "nextLaunchAt", (double)(now + delay));
	cJSON *d;
	cJSON_ArrayForEach(d, w->deps)
		if (t->started_by && strcmp(json_str(d, "id"), t->started_by) == 0)
			svc_set_num(d, "failedTasks", (double)(json_int(d, "failedTasks", 0) + 1));
	if (failures == SVC_THROTTLE_AFTER)
		svc_event(w, now, "is unable to consistently start tasks successfully.");
	breaker_trips(w, b, now);
}

void svc_task_stopped(struct svc *v, const struct store_task *t)
{
	if (!v || !t->service_name)
		return;
	int64_t now = berth_real_ms();
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	struct berth_err err = { 0 };
	if (svc_view_load(v, t->cluster, t->service_name, &w, &err) < 0)
		return;
	/* Stopped on purpose (by the scheduler or a user): replaced at once,
	 * not a failure.  Otherwise it failed unless it had been healthy. */
	bool meant = stopped_on_purpose(t);
	bool was_healthy = t->started_at &&
			   t->stopped_at - t->started_at >= v->cfg.healthy_after_ms;
	const char *primary = json_str(cJSON_GetArrayItem(w.deps, 0), "id");
	bool of_primary = primary && t->started_by && strcmp(primary, t->started_by) == 0;
	struct bounds b = bounds_of(&w);
	if (!meant && !was_healthy && of_primary) {
		count_failure(&w, t, &b, now);
	} else if (!meant && of_primary) {
		svc_set_num(w.state, "failures", 0);
		svc_set_num(w.state, "nextLaunchAt", 0);
	}
	if (svc_view_save(v, &w, &err) < 0)
		svc_say(v, "service %s: %s", t->service_name, err.msg);
	svc_poke(v, t->cluster, t->service_name);
}
