/* daemon/svc/svc_state: a service as C structs (svc_internal.h), parsed
 * once from its store row and written back once.  The stored JSON keeps
 * the member names it has always had, so a daemon restarted on an older
 * database reads it:
 *   deployments  [{id, status, taskDefinition, failedTasks, createdAt,
 *                  updatedAt, launchType?, networkConfiguration?,
 *                  rolloutState, rolloutStateReason}…], newest first,
 *                  times in seconds as ECS prints them
 *   events       [{id, createdAt, message}…], newest first
 *   state        {failures, nextLaunchAt (ms), lastCompleted, steady,
 *                 stuck, pins: {<deployment id>: [digest…]}, clientToken,
 *                 createRequest} */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "daemon/svc/svc_internal.h"

static const char *const dep_statuses[] = { "PRIMARY", "ACTIVE" };
static const char *const rollouts[] = { NULL, "IN_PROGRESS", "COMPLETED", "FAILED" };

static int word(const char *const *words, size_t n, const char *s)
{
	for (size_t i = 0; s && i < n; i++)
		if (words[i] && strcmp(words[i], s) == 0)
			return (int)i;
	return 0;
}

/* ---- small JSON helpers ---- */

/* A time in seconds (ECS's, with a millisecond fraction) as ms. */
static int64_t seconds_ms(const cJSON *o, const char *name)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!cJSON_IsNumber(n) || n->valuedouble <= 0)
		return 0;
	return (int64_t)(n->valuedouble * 1000.0 + 0.5);   /* to the nearest ms */
}

/* A copy of member NAME's string (NULL when absent); false on OOM. */
static bool dup_str(const cJSON *o, const char *name, char **ret)
{
	const char *s = json_str(o, name);
	*ret = s ? strdup(s) : NULL;
	return !s || *ret;
}

static bool add_opt_str(cJSON *o, const char *name, const char *v)
{
	return !v || cJSON_AddStringToObject(o, name, v);
}

static bool add_copy(cJSON *o, const char *name, const cJSON *v)
{
	if (!v)
		return true;
	cJSON *d = cJSON_Duplicate(v, true);
	if (d && cJSON_AddItemToObject(o, name, d))
		return true;
	cJSON_Delete(d);
	return false;
}

/* ---- the configuration ---- */

static void spec_parse(struct svc_spec *s, const cJSON *cfg)
{
	const cJSON *dc = cJSON_GetObjectItemCaseSensitive(cfg, "deploymentConfiguration");
	const cJSON *cb = cJSON_GetObjectItemCaseSensitive(dc, "deploymentCircuitBreaker");
	const cJSON *vpc = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(cfg, "networkConfiguration"), "awsvpcConfiguration");
	const char *strategy = json_str(cfg, "schedulingStrategy");
	const cJSON *cps = cJSON_GetObjectItemCaseSensitive(cfg, "capacityProviderStrategy");
	*s = (struct svc_spec){
		.launch_type = json_str(cfg, "launchType"),
		.capacity_providers = cJSON_GetArraySize(cps) > 0 ? cps : NULL,
		.strategy = strategy && strcmp(strategy, "DAEMON") == 0 ? SVC_DAEMON : SVC_REPLICA,
		.max_percent = json_int(dc, "maximumPercent", 200),
		.min_healthy_percent = json_int(dc, "minimumHealthyPercent", 100),
		.breaker = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cb, "enable")),
		.rollback = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cb, "rollback")),
		.grace_ms = json_int(cfg, "healthCheckGracePeriodSeconds", 0) * 1000,
		.network = cJSON_GetObjectItemCaseSensitive(cfg, "networkConfiguration"),
		.subnet = cJSON_GetStringValue(cJSON_GetArrayItem(
			cJSON_GetObjectItemCaseSensitive(vpc, "subnets"), 0)),
		.security_groups = cJSON_GetObjectItemCaseSensitive(vpc, "securityGroups"),
		.enable_execute_command =
			cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "enableExecuteCommand")),
		.propagate_tags = json_str(cfg, "propagateTags"),
		.managed_tags =
			cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "enableECSManagedTags")),
	};
}

int svc_view_set_config(struct svc_view *w, struct berth_err *err)
{
	char *text = cJSON_PrintUnformatted(w->cfg);
	if (!text)
		return berth_errf(err, ENOMEM, "service %s: out of memory", w->row->name);
	free(w->row->config_json);
	w->row->config_json = text;
	spec_parse(&w->spec, w->cfg);
	return 0;
}

/* ---- deployments ---- */

void svc_deployment_free(struct svc_deployment *d)
{
	free(d->id);
	free(d->task_definition);
	free(d->launch_type);
	cJSON_Delete(d->network);
	cJSON_Delete(d->capacity_providers);
	free(d->rollout_reason);
	for (size_t i = 0; i < d->n_pins; i++)
		free(d->pins[i]);
	free(d->pins);
	*d = (struct svc_deployment){ 0 };
}

/* PINS (an array of digests, or NULL) into D. */
static bool pins_parse(struct svc_deployment *d, const cJSON *pins)
{
	if (!cJSON_IsArray(pins))
		return true;
	d->pinned = true;
	int n = cJSON_GetArraySize(pins);
	if (n == 0)
		return true;
	if (!(d->pins = calloc((size_t)n, sizeof(*d->pins))))
		return false;
	for (d->n_pins = 0; d->n_pins < (size_t)n; d->n_pins++) {
		const char *s = cJSON_GetStringValue(cJSON_GetArrayItem(pins, (int)d->n_pins));
		if (s && !(d->pins[d->n_pins] = strdup(s)))
			return false;
	}
	return true;
}

/* SHOWN: for an answer, which moves the stored object itself: its
 * networkConfiguration and capacityProviderStrategy are not copied. */
static bool deployment_parse(struct svc_deployment *d, const cJSON *o, const cJSON *pins,
			     bool shown)
{
	const cJSON *nc = cJSON_GetObjectItemCaseSensitive(o, "networkConfiguration");
	const cJSON *cps = cJSON_GetObjectItemCaseSensitive(o, "capacityProviderStrategy");
	d->status = word(dep_statuses, ARRAY_SIZE(dep_statuses), json_str(o, "status"));
	d->rollout = word(rollouts, ARRAY_SIZE(rollouts), json_str(o, "rolloutState"));
	d->failed_tasks = json_int(o, "failedTasks", 0);
	d->created_at = seconds_ms(o, "createdAt");
	d->updated_at = seconds_ms(o, "updatedAt");
	if (!dup_str(o, "id", &d->id) || !d->id || !dup_str(o, "taskDefinition", &d->task_definition) ||
	    !dup_str(o, "launchType", &d->launch_type) ||
	    !dup_str(o, "rolloutStateReason", &d->rollout_reason) ||
	    (nc && !shown && !(d->network = cJSON_Duplicate(nc, true))) ||
	    (cps && !shown && !(d->capacity_providers = cJSON_Duplicate(cps, true))))
		return false;
	return pins_parse(d, cJSON_GetObjectItemCaseSensitive(pins, d->id));
}

cJSON *svc_deployment_json(const struct svc_deployment *d)
{
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "id", d->id) ||
	    !cJSON_AddStringToObject(o, "status", dep_statuses[d->status]) ||
	    !add_opt_str(o, "taskDefinition", d->task_definition) ||
	    !cJSON_AddNumberToObject(o, "failedTasks", (double)d->failed_tasks) ||
	    !cJSON_AddNumberToObject(o, "createdAt", (double)d->created_at / 1000.0) ||
	    !cJSON_AddNumberToObject(o, "updatedAt", (double)d->updated_at / 1000.0) ||
	    !add_opt_str(o, "launchType", d->launch_type) ||
	    !add_copy(o, "networkConfiguration", d->network) ||
	    !add_copy(o, "capacityProviderStrategy", d->capacity_providers) ||
	    !add_opt_str(o, "rolloutState", rollouts[d->rollout]) ||
	    !add_opt_str(o, "rolloutStateReason", d->rollout_reason))
		return NULL;
	return TAKE_PTR(o);
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

int svc_deploy(struct svc_view *w, const char *td_arn, int64_t now)
{
	struct svc_deployment *grown = realloc(w->deps, (w->n_deps + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	w->deps = grown;
	char id[32], reason[96];
	svc_deployment_id(id, sizeof(id));
	snprintf(reason, sizeof(reason), "ECS deployment %s in progress.", id);
	struct svc_deployment d = {
		.id = strdup(id), .status = SVC_DEP_PRIMARY, .task_definition = strdup(td_arn),
		.created_at = now, .updated_at = now, .rollout = SVC_ROLLOUT_IN_PROGRESS,
		.rollout_reason = strdup(reason),
		.launch_type = w->spec.launch_type ? strdup(w->spec.launch_type) : NULL,
		.network = w->spec.network ? cJSON_Duplicate(w->spec.network, true) : NULL,
		.capacity_providers = w->spec.capacity_providers
					      ? cJSON_Duplicate(w->spec.capacity_providers, true)
					      : NULL,
	};
	if (!d.id || !d.task_definition || !d.rollout_reason ||
	    (w->spec.launch_type && !d.launch_type) || (w->spec.network && !d.network) ||
	    (w->spec.capacity_providers && !d.capacity_providers)) {
		svc_deployment_free(&d);
		return -ENOMEM;
	}
	if (w->n_deps) {
		w->deps[0].status = SVC_DEP_ACTIVE;
		w->deps[0].updated_at = now;
	}
	memmove(w->deps + 1, w->deps, w->n_deps * sizeof(*w->deps));
	w->deps[0] = d;
	w->n_deps++;
	/* A new deployment starts its backoff and breaker count over. */
	w->state.failures = 0;
	w->state.next_launch_at = 0;
	return 0;
}

/* ---- events ---- */

static bool events_parse(struct svc_view *w, const cJSON *arr)
{
	size_t n = (size_t)cJSON_GetArraySize(arr);
	if (n > SVC_EVENTS_MAX)
		n = SVC_EVENTS_MAX;
	if (!(w->events = calloc(SVC_EVENTS_MAX, sizeof(*w->events))))
		return false;
	for (; w->n_events < n; w->n_events++) {
		const cJSON *e = cJSON_GetArrayItem(arr, (int)w->n_events);
		struct svc_event_item *x = &w->events[w->n_events];
		snprintf(x->id, sizeof(x->id), "%s", json_str(e, "id") ? json_str(e, "id") : "");
		x->created_at = seconds_ms(e, "createdAt");
		if (!dup_str(e, "message", &x->message))
			return false;
	}
	return true;
}

cJSON *svc_events_json(const struct svc_view *w)
{
	_cleanup_(cJSON_Deletep) cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; arr && i < w->n_events; i++) {
		const struct svc_event_item *x = &w->events[i];
		cJSON *e = json_add_object(arr);
		if (!e || !cJSON_AddStringToObject(e, "id", x->id) ||
		    !cJSON_AddNumberToObject(e, "createdAt", (double)x->created_at / 1000.0) ||
		    !add_opt_str(e, "message", x->message))
			return NULL;
	}
	return TAKE_PTR(arr);
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
	char *text = strdup(msg);
	if (!text)
		return;
	if (w->n_events == SVC_EVENTS_MAX)
		free(w->events[--w->n_events].message);
	memmove(w->events + 1, w->events, w->n_events * sizeof(*w->events));
	w->events[0] = (struct svc_event_item){ .created_at = now, .message = text };
	json_uuid(w->events[0].id);
	w->n_events++;
}

/* ---- the scheduler's state ---- */

static bool state_parse(struct svc_state *s, const cJSON *o)
{
	const cJSON *req = cJSON_GetObjectItemCaseSensitive(o, "createRequest");
	s->failures = json_int(o, "failures", 0);
	s->next_launch_at = json_int(o, "nextLaunchAt", 0);
	s->steady = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "steady"));
	s->stuck = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "stuck"));
	return dup_str(o, "lastCompleted", &s->last_completed) &&
	       dup_str(o, "clientToken", &s->client_token) &&
	       (!req || (s->create_request = cJSON_Duplicate(req, true)));
}

static cJSON *pins_json(const struct svc_view *w)
{
	_cleanup_(cJSON_Deletep) cJSON *pins = cJSON_CreateObject();
	for (size_t i = 0; pins && i < w->n_deps; i++) {
		const struct svc_deployment *d = &w->deps[i];
		if (!d->pinned)
			continue;
		cJSON *arr = cJSON_AddArrayToObject(pins, d->id);
		for (size_t k = 0; arr && k < d->n_pins; k++)
			if (!cJSON_AddItemToArray(arr, d->pins[k] ? cJSON_CreateString(d->pins[k])
								  : cJSON_CreateNull()))
				arr = NULL;
		if (!arr)
			return NULL;
	}
	return TAKE_PTR(pins);
}

static cJSON *state_json(const struct svc_view *w)
{
	const struct svc_state *s = &w->state;
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	cJSON *pins = pins_json(w);
	if (!o || !pins || !cJSON_AddItemToObject(o, "pins", pins)) {
		cJSON_Delete(pins);
		return NULL;
	}
	if (!cJSON_AddNumberToObject(o, "failures", (double)s->failures) ||
	    !cJSON_AddNumberToObject(o, "nextLaunchAt", (double)s->next_launch_at) ||
	    !add_opt_str(o, "lastCompleted", s->last_completed) ||
	    !cJSON_AddBoolToObject(o, "steady", s->steady) ||
	    !cJSON_AddBoolToObject(o, "stuck", s->stuck) ||
	    !add_opt_str(o, "clientToken", s->client_token) ||
	    !add_copy(o, "createRequest", s->create_request))
		return NULL;
	return TAKE_PTR(o);
}

/* ---- the view ---- */

void svc_view_done(struct svc_view *w)
{
	store_service_free(w->row);
	cJSON_Delete(w->cfg);
	for (size_t i = 0; i < w->n_deps; i++)
		svc_deployment_free(&w->deps[i]);
	free(w->deps);
	for (size_t i = 0; i < w->n_events; i++)
		free(w->events[i].message);
	free(w->events);
	free(w->state.last_completed);
	free(w->state.client_token);
	cJSON_Delete(w->state.create_request);
	for (size_t i = 0; i < w->n; i++)
		store_task_free(w->tasks[i]);
	free(w->tasks);
	for (size_t i = 0; i < w->n_tds; i++)
		store_task_definition_free(w->tds[i]), cJSON_Delete(w->td_bodies[i]);
	cJSON_Delete(w->shown_deps);
	*w = (struct svc_view){ 0 };
}

/* ROW into W; events and state too when FULL (a view to be saved). */
static int view_parse(struct svc_view *w, struct store_service *row, bool full,
		      struct berth_err *err)
{
	w->row = row;
	w->shown = !full;
	_cleanup_(cJSON_Deletep) cJSON *deps = cJSON_Parse(row->deployments_json);
	_cleanup_(cJSON_Deletep) cJSON *events = full ? cJSON_Parse(row->events_json) : NULL;
	_cleanup_(cJSON_Deletep) cJSON *state = full ? cJSON_Parse(row->state_json) : NULL;
	w->cfg = cJSON_Parse(row->config_json);
	if (!w->cfg || !cJSON_IsArray(deps) || (full && (!events || !state)))
		return berth_errf(err, EBADMSG, "service %s: stored JSON does not parse", row->name);
	spec_parse(&w->spec, w->cfg);
	size_t n = (size_t)cJSON_GetArraySize(deps);
	const cJSON *pins = cJSON_GetObjectItemCaseSensitive(state, "pins");
	if ((n && !(w->deps = calloc(n, sizeof(*w->deps)))) ||
	    (full && (!events_parse(w, events) || !state_parse(&w->state, state))))
		return berth_errf(err, ENOMEM, "service %s: out of memory", row->name);
	for (; w->n_deps < n; w->n_deps++)
		if (!deployment_parse(&w->deps[w->n_deps], cJSON_GetArrayItem(deps, (int)w->n_deps),
				      pins, !full)) {
			w->n_deps++;   /* freed with the view */
			return berth_errf(err, EBADMSG, "service %s: a stored deployment does not "
					  "parse", row->name);
		}
	if (!full)
		w->shown_deps = TAKE_PTR(deps);
	return 0;
}

int svc_view_parse(struct svc_view *w, struct store_service *row, struct berth_err *err)
{
	return view_parse(w, row, true, err);
}

static char *print(cJSON *o)
{
	char *text = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return text;
}

int svc_view_encode(struct svc_view *w, struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *deps = cJSON_CreateArray();
	for (size_t i = 0; deps && i < w->n_deps; i++) {
		cJSON *d = svc_deployment_json(&w->deps[i]);
		if (!d || !cJSON_AddItemToArray(deps, d)) {
			cJSON_Delete(d);
			return berth_errf(err, ENOMEM, "service %s: out of memory", w->row->name);
		}
	}
	_cleanup_free_ char *deps_s = print(TAKE_PTR(deps));
	_cleanup_free_ char *events_s = print(svc_events_json(w));
	_cleanup_free_ char *state_s = print(state_json(w));
	if (!deps_s || !events_s || !state_s)
		return berth_errf(err, ENOMEM, "service %s: out of memory", w->row->name);
	free(w->row->deployments_json);
	free(w->row->events_json);
	free(w->row->state_json);
	w->row->deployments_json = TAKE_PTR(deps_s);
	w->row->events_json = TAKE_PTR(events_s);
	w->row->state_json = TAKE_PTR(state_s);
	return 0;
}

static int load_tasks(struct store *st, struct svc_view *w, struct berth_err *err)
{
	struct store_task_filter f = { .cluster = w->row->cluster, .service_name = w->row->name,
				       .not_stopped = true };
	struct store_page page = { 0 };
	_cleanup_free_ char *token = NULL;
	do {
		struct store_list l = { 0 };
		page.next_token = token;
		int r = store_task_list(st, &f, &page, &l, err);
		if (r < 0)
			return r;
		struct store_task **grown = realloc(w->tasks, (w->n + l.n + 1) * sizeof(*grown));
		if (!grown) {
			store_list_clear(&l);
			return berth_errf(err, ENOMEM, "out of memory");
		}
		w->tasks = grown;
		for (size_t i = 0; i < l.n && r == 0; i++)
			if ((r = store_task_get(st, l.items[i], &w->tasks[w->n], err)) == 0)
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
	struct store_service *row = NULL;
	int r = store_service_get(v->store, cluster, name, &row, err);
	return r < 0 ? r : svc_view_parse(w, row, err);
}

int svc_view_load_tasks(struct svc *v, const char *cluster, const char *name,
			struct svc_view *w, struct berth_err *err)
{
	int r = svc_view_load(v, cluster, name, w, err);
	return r < 0 ? r : load_tasks(v->store, w, err);
}

int svc_view_load_shown(struct store *st, const char *cluster, const char *name,
			struct svc_view *w, struct berth_err *err)
{
	*w = (struct svc_view){ 0 };
	struct store_service *row = NULL;
	int r = store_service_get(st, cluster, name, &row, err);
	if (r == 0)
		r = view_parse(w, row, false, err);
	return r < 0 ? r : load_tasks(st, w, err);
}

int svc_view_save(struct svc *v, struct svc_view *w, struct berth_err *err)
{
	if (w->shown)   /* its events and state were never read: saving would drop them */
		return berth_errf(err, EINVAL, "service %s: a view for an answer is not saved",
				  w->row->name);
	int r = svc_view_encode(w, err);
	return r < 0 ? r : store_service_update(v->store, w->row, err);
}

/* ---- task definitions a reconcile needs ---- */

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
