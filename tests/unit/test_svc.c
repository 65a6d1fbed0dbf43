/* daemon/svc: the service scheduler's reconcile, on a real store, with a
 * fake task engine and a fake clock: desired count, replacement, backoff,
 * the deployment bounds and their rounding, the circuit breaker and its
 * rollback, the health check grace period, DAEMON — in milliseconds of
 * test time.  docs/services.md states the rules these pin. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/event.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "daemon/sched/instance.h"
#include "daemon/svc/svc.h"
#include "daemon/svc/svc_internal.h"
#include "tests/unit/store_fixture.h"

#define ARN_BASE "arn:aws:ecs:us-east-1:123456789012"
#define CLUSTER "default"
#define NAME "web"
#define BODY "{\"containerDefinitions\":[{\"name\":\"web\",\"image\":\"busybox\"}]}"
#define BODY_HC                                                                      \
	"{\"containerDefinitions\":[{\"name\":\"web\",\"image\":\"busybox\","       \
	"\"healthCheck\":{\"command\":[\"CMD\",\"true\"]}}]}"
#define HEALTHY_AFTER_MS 40000
#define T0 1700000000000LL

struct fixture {
	char dir[64];
	struct store *s;
	struct event_base *base;
	struct svc *v;
	int64_t now;            /* the fake clock */
	int64_t room;           /* tasks the fake instance still has room for */
	int launches, stops;    /* calls of the fake engine */
	char td1[256], td2[256];
	/* The fake load balancers (setup_lb): the tasks whose targets are
	 * healthy (ids, space-separated), the one whose target failed. */
	char lb_healthy[1024], lb_sick[STORE_TASK_ID_LEN + 1];
};

/* ---- the fake clock and task engine ---- */

static int64_t fake_now(void *arg)
{
	return ((struct fixture *)arg)->now;
}

/* Records a task as the real engine would (PROVISIONING, in the store)
 * and starts nothing: the test moves it on. */
static int fake_launch(void *arg, const struct svc_launch *l, char id[STORE_TASK_ID_LEN + 1],
		       struct berth_err *err)
{
	struct fixture *f = arg;
	if (f->room == 0)
		return berth_errf(err, ENOSPC, "%s", INSTANCE_NO_MEMORY);
	struct store_task t = { 0 };
	int r = store_task_new_id(t.id, err);
	if (r < 0)
		return r;
	char arn[128], group[64];
	snprintf(arn, sizeof(arn), ARN_BASE ":task/%s/%s", l->cluster, t.id);
	snprintf(group, sizeof(group), "service:%s", l->service_name);
	t.arn = arn;
	t.cluster = (char *)l->cluster;
	t.task_definition_arn = l->td->arn;
	t.group = group;
	t.started_by = (char *)l->deployment_id;
	t.service_name = (char *)l->service_name;
	t.launch_type = (char *)l->launch_type;
	t.desired_status = STORE_TASK_RUNNING;
	t.last_status = STORE_TASK_PROVISIONING;
	t.created_at = l->now_ms;
	if ((r = store_task_insert(f->s, &t, err)) < 0)
		return r;
	memcpy(id, t.id, sizeof(t.id));
	f->launches++;
	f->room--;
	return 0;
}

static int fake_stop(void *arg, struct store_task *t, const char *reason, int64_t now_ms,
		     struct berth_err *err)
{
	struct fixture *f = arg;
	_cleanup_free_ char *code = strdup("ServiceSchedulerInitiated"), *why = strdup(reason);
	assert_non_null(code);
	assert_non_null(why);
	t->desired_status = STORE_TASK_STOPPED;
	free(t->stop_code);
	free(t->stopped_reason);
	t->stop_code = TAKE_PTR(code);
	t->stopped_reason = TAKE_PTR(why);
	t->stopping_at = now_ms;
	f->stops++;
	return store_task_update(f->s, t, err);
}

static void fake_targets(void *arg, const struct store_task *t, struct svc_target_report *ret)
{
	struct fixture *f = arg;
	*ret = (struct svc_target_report){ .health = SVC_TARGETS_INITIAL };
	if (strstr(f->lb_healthy, t->id))
		ret->health = SVC_TARGETS_HEALTHY;
	if (strcmp(f->lb_sick, t->id) != 0)
		return;
	ret->health = SVC_TARGETS_UNHEALTHY;
	snprintf(ret->target_group, sizeof(ret->target_group), "tg");
	snprintf(ret->event, sizeof(ret->event), "(task %s) (port 8080) is unhealthy in "
		 "(target-group tg) due to (reason Health checks failed with these codes: [500])",
		 t->id);
}

/* ---- set-up ---- */

static void register_td(struct fixture *f, const char *body, char *arn, size_t n)
{
	_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
	OK(store_task_definition_register(f->s, ARN_BASE, "web", body, 2000, &td, &e_));
	snprintf(arn, n, "%s", td->arn);
}

static int setup_with(void **state, const char *body, bool lb)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	char path[96];
	f->s = unit_store_open("svc", f->dir, path);
	struct store_cluster in = { .name = CLUSTER, .arn = ARN_BASE ":cluster/" CLUSTER };
	_cleanup_(store_cluster_freep) struct store_cluster *c = NULL;
	OK(store_cluster_create(f->s, &in, 1000, &c, NULL, &e_));
	register_td(f, body, f->td1, sizeof(f->td1));
	register_td(f, body, f->td2, sizeof(f->td2));
	f->now = T0;
	f->room = 1000000;
	f->base = event_base_new();
	assert_non_null(f->base);
	struct svc_engine engine = { fake_launch, fake_stop, "0123456789abcdef0123456789abcdef", f };
	struct svc_clock clock = { fake_now, f };
	struct svc_config cfg = { .healthy_after_ms = HEALTHY_AFTER_MS };
	if (lb)
		cfg.targets = (struct svc_targets){ fake_targets, f };
	OK(svc_new(f->base, f->s, &engine, &clock, &cfg, NULL, &f->v, &e_));
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, BODY, false);
}

static int setup_hc(void **state)
{
	return setup_with(state, BODY_HC, false);
}

static int setup_lb(void **state)
{
	return setup_with(state, BODY, true);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	svc_free(f->v);
	event_base_free(f->base);
	unit_store_close(f->s, f->dir);
	free(f);
	return 0;
}

/* ---- the service ---- */

/* A service NAME of TD1 as CreateService records it; CONFIG is its
 * stored configuration (the request's members). */
static void create(struct fixture *f, int64_t desired, const char *config)
{
	struct store_service row = {
		.cluster = CLUSTER, .name = NAME, .arn = ARN_BASE ":service/" CLUSTER "/" NAME,
		.created_at = f->now, .desired_count = desired, .config_json = (char *)config,
		.deployments_json = "[]", .events_json = "[]", .state_json = "{}",
	};
	OK(store_service_create(f->s, &row, &e_));
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	OK(svc_view_load(f->v, CLUSTER, NAME, &w, &e_));
	assert_int_equal(svc_deploy(&w, f->td1, f->now), 0);
	OK(svc_view_save(f->v, &w, &e_));
}

#define CONFIG(max, min) \
	"{\"deploymentConfiguration\":{\"maximumPercent\":" #max ",\"minimumHealthyPercent\":" #min "}}"
#define BREAKER(rollback)                                                             \
	"{\"deploymentConfiguration\":{\"maximumPercent\":200,\"minimumHealthyPercent\":" \
	"100,\"deploymentCircuitBreaker\":{\"enable\":true,\"rollback\":" #rollback "}}}"

/* UpdateService: a new deployment of TD (NULL: none), or DESIRED (< 0: as is). */
static void update(struct fixture *f, const char *td, int64_t desired)
{
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	OK(svc_view_load(f->v, CLUSTER, NAME, &w, &e_));
	if (desired >= 0)
		w.row->desired_count = desired;
	if (td)
		assert_int_equal(svc_deploy(&w, td, f->now), 0);
	OK(svc_view_save(f->v, &w, &e_));
}

static int64_t reconcile(struct fixture *f)
{
	return svc_reconcile(f->v, CLUSTER, NAME);
}

/* What the tests read back from the stored service. */
struct seen {
	int64_t failures, next_launch_at;
	int n_deployments;
	char primary[64], primary_td[256], rollout[32];
	int n_tasks;                    /* not STOPPED (desired STOPPED included) */
};

static struct seen look(struct fixture *f)
{
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	OK(svc_view_load_tasks(f->v, CLUSTER, NAME, &w, &e_));
	static const char *const rollouts[] = { "", "IN_PROGRESS", "COMPLETED", "FAILED" };
	struct seen s = { .failures = w.state.failures, .next_launch_at = w.state.next_launch_at,
			  .n_deployments = (int)w.n_deps };
	assert_true(w.n_deps > 0);
	snprintf(s.primary, sizeof(s.primary), "%s", w.deps[0].id);
	snprintf(s.primary_td, sizeof(s.primary_td), "%s", w.deps[0].task_definition);
	snprintf(s.rollout, sizeof(s.rollout), "%s", rollouts[w.deps[0].rollout]);
	s.n_tasks = (int)w.n;
	return s;
}

/* Whether any of the service's events says WANT. */
static bool said(struct fixture *f, const char *want)
{
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	OK(svc_view_load(f->v, CLUSTER, NAME, &w, &e_));
	for (size_t i = 0; i < w.n_events; i++)
		if (strstr(w.events[i].message, want))
			return true;
	return false;
}

/* ---- moving tasks on, as the task engine would report ---- */

/* The ids of the service's tasks not STOPPED, in id order, into IDS. */
static size_t task_ids(struct fixture *f, char ids[][STORE_TASK_ID_LEN + 1], size_t max)
{
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	OK(svc_view_load_tasks(f->v, CLUSTER, NAME, &w, &e_));
	size_t n = 0;
	for (size_t i = 0; i < w.n && n < max; i++)
		if (w.tasks[i]->desired_status != STORE_TASK_STOPPED)
			snprintf(ids[n++], STORE_TASK_ID_LEN + 1, "%s", w.tasks[i]->id);
	return n;
}

/* The task the last reconcile started (the one still PROVISIONING). */
static void launched(struct fixture *f, char id[STORE_TASK_ID_LEN + 1])
{
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	OK(svc_view_load_tasks(f->v, CLUSTER, NAME, &w, &e_));
	size_t n = 0;
	for (size_t i = 0; i < w.n; i++)
		if (w.tasks[i]->last_status == STORE_TASK_PROVISIONING)
			memcpy(id, w.tasks[i]->id, STORE_TASK_ID_LEN + 1), n++;
	assert_int_equal(n, 1);
}

static void set_task(struct fixture *f, const char *id, enum store_task_status last,
		     enum store_health health)
{
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	OK(store_task_get(f->s, id, &t, &e_));
	if (last == STORE_TASK_RUNNING && t->last_status != STORE_TASK_RUNNING)
		t->started_at = f->now;
	t->last_status = last;
	t->health_status = health;
	OK(store_task_update(f->s, t, &e_));
}

/* Every task not STOPPED goes RUNNING now (health unknown). */
static void run_all(struct fixture *f)
{
	char ids[64][STORE_TASK_ID_LEN + 1];
	size_t n = task_ids(f, ids, 64);
	for (size_t i = 0; i < n; i++)
		set_task(f, ids[i], STORE_TASK_RUNNING, STORE_HEALTH_UNKNOWN);
}

/* Task ID is recorded STOPPED now with CODE (its own exit:
 * EssentialContainerExited; on purpose: UserInitiated,
 * ServiceSchedulerInitiated), and the engine reports it. */
static void task_stopped(struct fixture *f, const char *id, const char *code)
{
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	OK(store_task_get(f->s, id, &t, &e_));
	free(t->stop_code);
	t->stop_code = strdup(code);
	assert_non_null(t->stop_code);
	t->last_status = STORE_TASK_STOPPED;
	t->desired_status = STORE_TASK_STOPPED;
	t->stopped_at = f->now;
	OK(store_task_update(f->s, t, &e_));
	svc_task_stopped(f->v, t);
}

/* Every task the scheduler has asked to stop is STOPPED now. */
static void finish_stops(struct fixture *f)
{
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	OK(svc_view_load_tasks(f->v, CLUSTER, NAME, &w, &e_));
	for (size_t i = 0; i < w.n; i++)
		if (w.tasks[i]->desired_status == STORE_TASK_STOPPED)
			task_stopped(f, w.tasks[i]->id, w.tasks[i]->stop_code ? w.tasks[i]->stop_code
									      : "UserInitiated");
}

/* A steady service: its tasks started, RUNNING, healthy (by time) and
 * whole (the clock moves HEALTHY_AFTER_MS on). */
static void settle(struct fixture *f)
{
	reconcile(f);
	run_all(f);
	f->now += HEALTHY_AFTER_MS;
	reconcile(f);
	finish_stops(f);
	reconcile(f);
}

/* ---- desired count and replacement ---- */

static void test_desired_count_up_and_down(void **state)
{
	struct fixture *f = *state;
	create(f, 3, CONFIG(200, 100));
	reconcile(f);
	assert_int_equal(f->launches, 3);
	assert_true(said(f, "has started 3 tasks"));
	run_all(f);
	f->now += HEALTHY_AFTER_MS;
	assert_int_equal(reconcile(f), 0);
	struct seen s = look(f);
	assert_string_equal(s.rollout, "COMPLETED");
	assert_true(said(f, "has reached a steady state."));
	update(f, NULL, 1);
	reconcile(f);
	assert_int_equal(f->stops, 2);
	assert_true(said(f, "has stopped 2 running tasks"));
	finish_stops(f);
	update(f, NULL, 4);
	reconcile(f);
	assert_int_equal(f->launches, 6);
	assert_int_equal(look(f).n_tasks, 4);
}

/* A view for an answer (DescribeServices) has the deployments and tasks
 * a full one has, leaves the events as stored text and is never saved:
 * saving it would drop the events and state it did not read. */
static void test_view_for_an_answer_is_not_saved(void **state)
{
	struct fixture *f = *state;
	create(f, 2, CONFIG(200, 100));
	reconcile(f);
	struct seen s = look(f);
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	OK(svc_view_load_shown(f->s, CLUSTER, NAME, &w, &e_));
	assert_int_equal((int)w.n_deps, s.n_deployments);
	assert_string_equal(w.deps[0].id, s.primary);
	assert_string_equal(w.deps[0].task_definition, s.primary_td);
	assert_int_equal((int)w.n, s.n_tasks);
	assert_int_equal((int)w.n_events, 0);
	assert_non_null(strstr(w.row->events_json, "has started 2 tasks"));
	_cleanup_free_ char *stored = strdup(w.row->events_json);
	struct berth_err err = { 0 };
	assert_int_equal(svc_view_save(f->v, &w, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not saved"));
	assert_true(said(f, "has started 2 tasks"));
	_cleanup_(svc_view_done) struct svc_view again = { 0 };
	OK(svc_view_load_shown(f->s, CLUSTER, NAME, &again, &e_));
	assert_string_equal(again.row->events_json, stored);
}

/* A task stopped on purpose (StopTask) is replaced while it stops; one
 * that exits is replaced once it is STOPPED. */
static void test_stopped_task_is_replaced(void **state)
{
	struct fixture *f = *state;
	create(f, 2, CONFIG(200, 100));
	settle(f);
	char ids[4][STORE_TASK_ID_LEN + 1];
	assert_int_equal(task_ids(f, ids, 4), 2);
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	OK(store_task_get(f->s, ids[0], &t, &e_));
	t->desired_status = STORE_TASK_STOPPED;
	t->stop_code = strdup("UserInitiated");
	OK(store_task_update(f->s, t, &e_));
	reconcile(f);
	assert_int_equal(f->launches, 3);
	f->now += 1000;
	task_stopped(f, ids[1], "EssentialContainerExited");   /* healthy: no backoff */
	reconcile(f);
	assert_int_equal(f->launches, 4);
}

/* ---- backoff ---- */

/* One task of the primary starts, runs for a second and exits: a failure.
 * Returns the delay the backoff set. */
static int64_t fail_one(struct fixture *f)
{
	struct seen s = look(f);
	if (s.next_launch_at > f->now)
		f->now = s.next_launch_at;
	int before = f->launches;
	reconcile(f);
	assert_int_equal(f->launches, before + 1);
	char id[STORE_TASK_ID_LEN + 1];
	launched(f, id);
	set_task(f, id, STORE_TASK_RUNNING, STORE_HEALTH_UNKNOWN);
	f->now += 1000;
	task_stopped(f, id, "EssentialContainerExited");
	return look(f).next_launch_at - f->now;
}

static void test_backoff_doubles_to_fifteen_minutes(void **state)
{
	struct fixture *f = *state;
	create(f, 1, CONFIG(200, 100));
	static const int64_t want[] = { 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000,
					256000, 512000, 900000, 900000, 900000 };
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		assert_int_equal(fail_one(f), want[i]);
		assert_int_equal(look(f).failures, (int64_t)i + 1);
		/* Nothing starts before the delay is over; the timer is armed for it. */
		f->now += want[i] - 1;
		assert_int_equal(reconcile(f), f->now + 1);
		assert_int_equal(look(f).n_tasks, 0);
		f->now += 1;
	}
	assert_true(said(f, "is unable to consistently start tasks successfully."));
}

static void test_new_deployment_resets_backoff(void **state)
{
	struct fixture *f = *state;
	create(f, 1, CONFIG(200, 100));
	for (int i = 0; i < 4; i++)
		fail_one(f);
	assert_int_equal(look(f).failures, 4);
	update(f, f->td2, -1);
	assert_int_equal(look(f).failures, 0);
	int before = f->launches;
	reconcile(f);
	assert_int_equal(f->launches, before + 1);
}

/* A task that had been healthy and dies is not a failure: the count
 * starts over and its replacement starts at once. */
static void test_healthy_task_death_is_not_a_failure(void **state)
{
	struct fixture *f = *state;
	create(f, 1, CONFIG(200, 100));
	fail_one(f);
	fail_one(f);
	assert_int_equal(look(f).failures, 2);
	f->now = look(f).next_launch_at;
	reconcile(f);
	char ids[2][STORE_TASK_ID_LEN + 1];
	assert_int_equal(task_ids(f, ids, 2), 1);
	set_task(f, ids[0], STORE_TASK_RUNNING, STORE_HEALTH_UNKNOWN);
	f->now += HEALTHY_AFTER_MS;
	task_stopped(f, ids[0], "EssentialContainerExited");
	struct seen s = look(f);
	assert_int_equal(s.failures, 0);
	assert_int_equal(s.next_launch_at, 0);
	int before = f->launches;
	reconcile(f);
	assert_int_equal(f->launches, before + 1);
}

/* ---- the bounds ---- */

/* desiredCount 3, maximumPercent 150, minimumHealthyPercent 50: ceiling
 * ⌊4.5⌋ = 4 tasks, floor ⌈1.5⌉ = 2 healthy.  A new deployment starts one
 * task and stops one old one, no more. */
static void test_bounds_round_max_down_and_min_up(void **state)
{
	struct fixture *f = *state;
	create(f, 3, CONFIG(150, 50));
	settle(f);
	assert_int_equal(f->launches, 3);
	update(f, f->td2, -1);
	reconcile(f);
	assert_int_equal(f->launches, 4);
	assert_int_equal(f->stops, 1);
}

/* At maximumPercent 200 a rolling update starts the new tasks before
 * stopping any old one (minimumHealthyPercent 100 keeps them). */
static void test_rollout_starts_replacements_before_stopping(void **state)
{
	struct fixture *f = *state;
	create(f, 2, CONFIG(200, 100));
	settle(f);
	update(f, f->td2, -1);
	reconcile(f);
	assert_int_equal(f->launches, 4);
	assert_int_equal(f->stops, 0);
	/* RUNNING without health checks is healthy after HEALTHY_AFTER_MS:
	 * until then the old tasks stay, and the timer is armed for it. */
	run_all(f);
	f->now += 1000;
	assert_int_equal(reconcile(f), f->now - 1000 + HEALTHY_AFTER_MS);
	assert_int_equal(f->stops, 0);
	f->now += HEALTHY_AFTER_MS - 1000;
	reconcile(f);
	assert_int_equal(f->stops, 2);
	finish_stops(f);
	reconcile(f);
	struct seen s = look(f);
	assert_int_equal(s.n_deployments, 1);
	assert_string_equal(s.rollout, "COMPLETED");
	assert_string_equal(s.primary_td, f->td2);
}

/* An unhealthy task's replacement starts first while maximumPercent
 * leaves room; the unhealthy task goes once the replacement is healthy. */
static void test_unhealthy_task_replaced_before_it_stops(void **state)
{
	struct fixture *f = *state;
	create(f, 2, CONFIG(200, 100));
	reconcile(f);
	char ids[4][STORE_TASK_ID_LEN + 1];
	assert_int_equal(task_ids(f, ids, 4), 2);
	set_task(f, ids[0], STORE_TASK_RUNNING, STORE_HEALTH_HEALTHY);
	set_task(f, ids[1], STORE_TASK_RUNNING, STORE_HEALTH_HEALTHY);
	reconcile(f);
	f->now += 1000;
	char sick[STORE_TASK_ID_LEN + 1];
	memcpy(sick, ids[1], sizeof(sick));
	set_task(f, sick, STORE_TASK_RUNNING, STORE_HEALTH_UNHEALTHY);
	reconcile(f);
	assert_int_equal(f->launches, 3);
	assert_int_equal(f->stops, 0);
	/* The replacement becomes healthy: now the unhealthy task goes. */
	assert_int_equal(task_ids(f, ids, 4), 3);
	for (size_t i = 0; i < 3; i++)
		if (strcmp(ids[i], sick) != 0)
			set_task(f, ids[i], STORE_TASK_RUNNING, STORE_HEALTH_HEALTHY);
	reconcile(f);
	assert_int_equal(f->stops, 1);
	assert_true(said(f, "has stopped 1 running tasks"));
}

/* The service's events, newest first: the messages into OUT (MAX of
 * them); how many there are. */
static size_t events(struct fixture *f, char out[][200], size_t max)
{
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	OK(svc_view_load(f->v, CLUSTER, NAME, &w, &e_));
	for (size_t i = 0; i < w.n_events && i < max; i++)
		snprintf(out[i], 200, "%s", w.events[i].message);
	return w.n_events;
}

/* svc_note(): the load balancers' events join the service's at its next
 * reconcile, in the order they were noted and before what that
 * reconcile does, once. */
static void test_notes_join_the_events(void **state)
{
	struct fixture *f = *state;
	create(f, 1, CONFIG(200, 100));
	svc_note(f->v, CLUSTER, NAME, "deregistered 1 targets in (target-group tg)");
	svc_note(f->v, CLUSTER, NAME, "has begun draining connections on 1 tasks.");
	reconcile(f);
	char ev[4][200];
	assert_int_equal(events(f, ev, 4), 3);
	assert_non_null(strstr(ev[0], "has started 1 tasks"));
	assert_string_equal(ev[1], "(service web) has begun draining connections on 1 tasks.");
	assert_string_equal(ev[2], "(service web) deregistered 1 targets in (target-group tg)");
	reconcile(f);
	assert_int_equal(events(f, ev, 4), 3);
}

/* A note for a service that cannot be read is dropped, not kept (its
 * timer would fire again and again). */
static void test_notes_of_a_missing_service_are_dropped(void **state)
{
	struct fixture *f = *state;
	svc_note(f->v, CLUSTER, NAME, "registered 1 targets in (target-group tg)");
	assert_int_equal(reconcile(f), 0);
	create(f, 1, CONFIG(200, 100));
	reconcile(f);
	assert_false(said(f, "registered 1 targets"));
}

/* A one-task service with a 60 s healthCheckGracePeriodSeconds (and the
 * members MORE), its task RUNNING now with HEALTH: its id into ID. */
static void one_task_with_grace(struct fixture *f, const char *more, enum store_health health,
				char id[STORE_TASK_ID_LEN + 1])
{
	char config[512];
	snprintf(config, sizeof(config), "{%s\"healthCheckGracePeriodSeconds\":60,"
		 "\"deploymentConfiguration\":{\"maximumPercent\":200,"
		 "\"minimumHealthyPercent\":100}}", more);
	create(f, 1, config);
	reconcile(f);
	char ids[2][STORE_TASK_ID_LEN + 1];
	assert_int_equal(task_ids(f, ids, 2), 1);
	set_task(f, ids[0], STORE_TASK_RUNNING, health);
	memcpy(id, ids[0], STORE_TASK_ID_LEN + 1);
}

/* Behind a load balancer a task is healthy once its targets are, not
 * after the time without one: a deployment keeps the old tasks until
 * the new ones' targets are healthy, and watches them meanwhile. */
#define LBS "\"loadBalancers\":[{\"targetGroupArn\":\"tg\",\"containerName\":\"web\"," \
	    "\"containerPort\":8080}],"

static void test_targets_decide_health(void **state)
{
	struct fixture *f = *state;
	create(f, 2, "{" LBS "\"deploymentConfiguration\":{\"maximumPercent\":200,"
		     "\"minimumHealthyPercent\":100}}");
	reconcile(f);
	run_all(f);
	f->now += HEALTHY_AFTER_MS;
	assert_int_equal(reconcile(f), f->now + SVC_TARGETS_POLL_MS);
	assert_string_equal(look(f).rollout, "IN_PROGRESS");
	char ids[4][STORE_TASK_ID_LEN + 1];
	assert_int_equal(task_ids(f, ids, 4), 2);
	snprintf(f->lb_healthy, sizeof(f->lb_healthy), "%s %s", ids[0], ids[1]);
	assert_int_equal(reconcile(f), f->now + SVC_TARGETS_WATCH_MS);
	assert_string_equal(look(f).rollout, "COMPLETED");
	/* A deployment: the new tasks run, their targets still initial. */
	update(f, f->td2, -1);
	reconcile(f);
	run_all(f);
	f->now += HEALTHY_AFTER_MS;
	reconcile(f);
	assert_int_equal(f->launches, 4);
	assert_int_equal(f->stops, 0);
	assert_int_equal(task_ids(f, ids, 4), 4);
	size_t len = strlen(f->lb_healthy);
	for (size_t i = 0; i < 4; i++)
		if (!strstr(f->lb_healthy, ids[i]))
			len += (size_t)snprintf(f->lb_healthy + len, sizeof(f->lb_healthy) - len,
						" %s", ids[i]);
	reconcile(f);
	assert_int_equal(f->stops, 2);
}

/* A task whose target fails its checks after healthCheckGracePeriodSeconds
 * is replaced, with ECS's event and stoppedReason; not during it. */
static void test_unhealthy_target_replaced_after_grace(void **state)
{
	struct fixture *f = *state;
	char ids[1][STORE_TASK_ID_LEN + 1];
	one_task_with_grace(f, LBS, STORE_HEALTH_UNKNOWN, ids[0]);
	memcpy(f->lb_sick, ids[0], sizeof(f->lb_sick));
	f->now += 10000;
	assert_int_equal(reconcile(f), f->now + SVC_TARGETS_POLL_MS);
	assert_int_equal(f->launches, 1);
	f->now += 50000;   /* the grace period is over */
	reconcile(f);
	assert_int_equal(f->launches, 2);
	assert_int_equal(f->stops, 0);   /* its replacement first */
	char fresh[STORE_TASK_ID_LEN + 1];
	launched(f, fresh);
	set_task(f, fresh, STORE_TASK_RUNNING, STORE_HEALTH_UNKNOWN);
	snprintf(f->lb_healthy, sizeof(f->lb_healthy), "%s", fresh);
	reconcile(f);
	assert_int_equal(f->stops, 1);
	char ev[3][200], want[200];
	events(f, ev, 3);
	snprintf(want, sizeof(want), "(service web) (task %s) (port 8080) is unhealthy in "
		 "(target-group tg) due to (reason Health checks failed with these codes: [500])",
		 ids[0]);
	assert_string_equal(ev[1], want);
	assert_non_null(strstr(ev[0], "has stopped 1 running tasks"));
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	OK(store_task_get(f->s, ids[0], &t, &e_));
	assert_string_equal(t->stopped_reason, "Task failed ELB health checks in (target-group tg)");
}

/* maximumPercent 100, minimumHealthyPercent 100 with one task: no move. */
static void test_bounds_that_allow_no_move_say_so(void **state)
{
	struct fixture *f = *state;
	create(f, 1, CONFIG(100, 100));
	settle(f);
	update(f, f->td2, -1);
	reconcile(f);
	assert_int_equal(f->launches, 1);
	assert_int_equal(f->stops, 0);
	assert_true(said(f, "is unable to make progress"));
}

/* UNHEALTHY does not count during healthCheckGracePeriodSeconds. */
static void test_health_check_grace_period(void **state)
{
	struct fixture *f = *state;
	char id[STORE_TASK_ID_LEN + 1];
	one_task_with_grace(f, "", STORE_HEALTH_UNHEALTHY, id);
	int64_t grace_end = f->now + 60000;
	/* Nothing else may happen: the reconcile arms its timer for the end. */
	f->now += 10000;
	assert_int_equal(reconcile(f), grace_end);
	f->now = grace_end - 1;
	assert_int_equal(reconcile(f), grace_end);
	assert_int_equal(f->launches, 1);
	f->now += 1;
	reconcile(f);
	assert_int_equal(f->launches, 2);
}

/* ---- the circuit breaker ---- */

/* The primary's tasks fail (without running a reconcile): after
 * clamp(⌈D / 2⌉, 3, 200) failures its rollout is FAILED, not one before. */
static void test_breaker_threshold(void **state)
{
	struct fixture *f = *state;
	create(f, 1, BREAKER(false));
	static const struct { int64_t desired, threshold; } cases[] = {
		{ 1, 3 }, { 5, 3 }, { 6, 3 }, { 7, 4 }, { 10, 5 }, { 399, 200 }, { 400, 200 },
		{ 1000, 200 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		update(f, f->td2, cases[i].desired);   /* a fresh deployment and count */
		struct seen s = look(f);
		struct store_task t = { .cluster = CLUSTER, .service_name = NAME,
					.started_by = s.primary,
					.stop_code = (char *)"EssentialContainerExited",
					.started_at = f->now, .stopped_at = f->now + 1000 };
		for (int64_t k = 1; k <= cases[i].threshold; k++) {
			assert_string_equal(look(f).rollout, "IN_PROGRESS");
			svc_task_stopped(f->v, &t);
		}
		if (strcmp(look(f).rollout, "FAILED") != 0)
			fail_msg("desired %lld: not FAILED after %lld failures",
				 (long long)cases[i].desired, (long long)cases[i].threshold);
	}
}

static void test_breaker_stops_starting_tasks(void **state)
{
	struct fixture *f = *state;
	create(f, 1, BREAKER(false));
	for (int i = 0; i < 3; i++)
		fail_one(f);
	struct seen s = look(f);
	assert_string_equal(s.rollout, "FAILED");
	assert_true(said(f, "deployment failed: tasks failed to start."));
	f->now += SVC_BACKOFF_CAP_MS;
	int before = f->launches;
	reconcile(f);
	assert_int_equal(f->launches, before);
	assert_int_equal(s.n_deployments, 1);
}

static void test_breaker_rolls_back_to_the_last_completed(void **state)
{
	struct fixture *f = *state;
	create(f, 1, BREAKER(true));
	settle(f);
	assert_string_equal(look(f).rollout, "COMPLETED");
	update(f, f->td2, -1);
	for (int i = 0; i < 3; i++)
		fail_one(f);
	struct seen s = look(f);
	assert_string_equal(s.primary_td, f->td1);
	assert_string_equal(s.rollout, "IN_PROGRESS");
	assert_int_equal(s.failures, 0);
	assert_true(said(f, "rolling back to deployment"));
	int before = f->launches;
	reconcile(f);
	assert_int_equal(f->launches, before + 1);
}

/* ---- DAEMON ---- */

static void test_daemon_strategy_runs_one_task(void **state)
{
	struct fixture *f = *state;
	create(f, 3, "{\"schedulingStrategy\":\"DAEMON\","
		     "\"deploymentConfiguration\":{\"maximumPercent\":200,"
		     "\"minimumHealthyPercent\":100}}");
	settle(f);
	assert_int_equal(f->launches, 1);
	assert_int_equal(look(f).n_tasks, 1);
}

/* ---- placement ---- */

static void test_no_room_says_so_and_retries(void **state)
{
	struct fixture *f = *state;
	f->room = 1;
	create(f, 2, CONFIG(200, 100));
	int64_t wake = reconcile(f);
	assert_int_equal(f->launches, 1);
	assert_int_equal(wake, f->now + SVC_PLACE_RETRY_MS);
	assert_true(said(f, "insufficient memory available"));
	f->room = 1;
	f->now = wake;
	reconcile(f);
	assert_int_equal(f->launches, 2);
}

/* UpdateContainerInstancesState DRAINING: PENDING tasks stop at once even
 * at minimumHealthyPercent 100; RUNNING ones down to the minimum; nothing
 * starts (ECS's event says why); ACTIVE again scales back up. */
static void test_draining_instance_drains_within_min_healthy(void **state)
{
	struct fixture *f = *state;
	create(f, 4, CONFIG(200, 100));
	reconcile(f);
	assert_int_equal(f->launches, 4);
	OK(store_instance_draining_set(f->s, CLUSTER, true, &e_));
	reconcile(f);
	assert_int_equal(f->stops, 4);   /* all PENDING */
	assert_int_equal(f->launches, 4);
	assert_true(said(f, "Reason: No Container Instances were found in your cluster."));
	finish_stops(f);
	reconcile(f);
	assert_int_equal(f->launches, 4);
	OK(store_instance_draining_set(f->s, CLUSTER, false, &e_));
	update(f, NULL, -1);
	settle(f);
	assert_int_equal(f->launches, 8);
	assert_int_equal(look(f).n_tasks, 4);
	_cleanup_(svc_view_done) struct svc_view w = { 0 };
	OK(svc_view_load(f->v, CLUSTER, NAME, &w, &e_));
	cJSON_ReplaceItemInObjectCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(w.cfg, "deploymentConfiguration"),
		"minimumHealthyPercent", cJSON_CreateNumber(50));
	OK(svc_view_set_config(&w, &e_));
	OK(svc_view_save(f->v, &w, &e_));
	OK(store_instance_draining_set(f->s, CLUSTER, true, &e_));
	reconcile(f);
	assert_int_equal(f->stops, 6);   /* healthy ones: down to 50 % of 4 */
	finish_stops(f);
	reconcile(f);
	assert_int_equal(f->stops, 6);
	assert_int_equal(f->launches, 8);
	assert_int_equal(look(f).n_tasks, 2);
}

/* ---- the stored format ---- */

/* A service row as the untyped scheduler wrote it (an ACTIVE deployment's
 * "status" last, pins, a clientToken) is read, and written back with the
 * same members and values. */
static void test_reads_and_writes_the_stored_format(void **state)
{
	struct fixture *f = *state;
	char deps[2048], st[1024];
	snprintf(deps, sizeof(deps),
		 "[{\"id\":\"ecs-svc/1234567890123456789\",\"status\":\"PRIMARY\","
		 "\"taskDefinition\":\"%s\",\"failedTasks\":1,\"createdAt\":1700000000.5,"
		 "\"updatedAt\":1700000001.25,\"launchType\":\"FARGATE\","
		 "\"rolloutState\":\"IN_PROGRESS\",\"rolloutStateReason\":\"in progress.\"},"
		 "{\"id\":\"ecs-svc/0000000000000000001\",\"taskDefinition\":\"%s\","
		 "\"failedTasks\":0,\"createdAt\":1699999990,\"updatedAt\":1700000000.5,"
		 "\"networkConfiguration\":{\"awsvpcConfiguration\":{\"subnets\":[\"s-1\"]}},"
		 "\"rolloutState\":\"COMPLETED\",\"rolloutStateReason\":\"completed.\","
		 "\"status\":\"ACTIVE\"}]", f->td2, f->td1);
	snprintf(st, sizeof(st),
		 "{\"failures\":2,\"nextLaunchAt\":1700000003250,\"lastCompleted\":\"%s\","
		 "\"steady\":false,\"stuck\":true,\"pins\":{\"ecs-svc/0000000000000000001\":"
		 "[\"sha256:aa\"],\"ecs-svc/gone\":[\"sha256:bb\"]},\"clientToken\":\"tok\","
		 "\"createRequest\":{\"serviceName\":\"web\"}}", f->td1);
	struct store_service row = {
		.cluster = CLUSTER, .name = NAME, .arn = ARN_BASE ":service/" CLUSTER "/" NAME,
		.created_at = f->now, .desired_count = 1, .config_json = CONFIG(200, 100),
		.deployments_json = deps, .state_json = st,
		.events_json = "[{\"id\":\"e1\",\"createdAt\":1700000001.25,"
			       "\"message\":\"(service web) has started 1 tasks: (task x).\"}]",
	};
	OK(store_service_create(f->s, &row, &e_));
	for (int round = 0; round < 2; round++) {   /* as stored, then as written back */
		_cleanup_(svc_view_done) struct svc_view w = { 0 };
		OK(svc_view_load(f->v, CLUSTER, NAME, &w, &e_));
		assert_int_equal(w.n_deps, 2);
		const struct svc_deployment *p = &w.deps[0], *a = &w.deps[1];
		assert_string_equal(p->id, "ecs-svc/1234567890123456789");
		assert_int_equal(p->status, SVC_DEP_PRIMARY);
		assert_string_equal(p->task_definition, f->td2);
		assert_int_equal(p->failed_tasks, 1);
		assert_int_equal(p->created_at, 1700000000500);
		assert_int_equal(p->updated_at, 1700000001250);
		assert_string_equal(p->launch_type, "FARGATE");
		assert_int_equal(p->rollout, SVC_ROLLOUT_IN_PROGRESS);
		assert_false(p->pinned);
		assert_int_equal(a->status, SVC_DEP_ACTIVE);
		assert_int_equal(a->rollout, SVC_ROLLOUT_COMPLETED);
		assert_string_equal(a->rollout_reason, "completed.");
		assert_non_null(a->network);
		assert_true(a->pinned);
		assert_int_equal(a->n_pins, 1);
		assert_string_equal(a->pins[0], "sha256:aa");
		assert_int_equal(w.n_events, 1);
		assert_string_equal(w.events[0].id, "e1");
		assert_int_equal(w.events[0].created_at, 1700000001250);
		assert_int_equal(w.state.failures, 2);
		assert_int_equal(w.state.next_launch_at, 1700000003250);
		assert_string_equal(w.state.last_completed, f->td1);
		assert_false(w.state.steady);
		assert_true(w.state.stuck);
		assert_string_equal(w.state.client_token, "tok");
		assert_non_null(w.state.create_request);
		OK(svc_view_save(f->v, &w, &e_));
		assert_non_null(strstr(w.row->state_json, "\"nextLaunchAt\":1700000003250"));
		assert_non_null(strstr(w.row->state_json, "\"pins\":{\"ecs-svc/0000000000000000001\":"
							   "[\"sha256:aa\"]}"));
		assert_non_null(strstr(w.row->deployments_json, "\"createdAt\":1700000000.5,"));
		assert_non_null(strstr(w.row->events_json, "\"createdAt\":1700000001.25,"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_desired_count_up_and_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stopped_task_is_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_view_for_an_answer_is_not_saved, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_backoff_doubles_to_fifteen_minutes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_new_deployment_resets_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_healthy_task_death_is_not_a_failure, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bounds_round_max_down_and_min_up, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rollout_starts_replacements_before_stopping,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_unhealthy_task_replaced_before_it_stops,
						setup_hc, teardown),
		cmocka_unit_test_setup_teardown(test_notes_join_the_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notes_of_a_missing_service_are_dropped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_targets_decide_health, setup_lb, teardown),
		cmocka_unit_test_setup_teardown(test_unhealthy_target_replaced_after_grace, setup_lb,
						teardown),
		cmocka_unit_test_setup_teardown(test_bounds_that_allow_no_move_say_so, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_health_check_grace_period, setup_hc, teardown),
		cmocka_unit_test_setup_teardown(test_breaker_threshold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_breaker_stops_starting_tasks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_breaker_rolls_back_to_the_last_completed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_daemon_strategy_runs_one_task, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_room_says_so_and_retries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_draining_instance_drains_within_min_healthy,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_reads_and_writes_the_stored_format, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
