/* daemon/elb/elb_ecs: ECS services' loadBalancers.  A task of a service
 * whose loadBalancers name target groups is registered in each once it is
 * RUNNING: an awsvpc task in an ip group (its address, the entry's
 * containerPort), a bridge-mode task in an instance group (this host's
 * container instance, the host port that containerPort is published on).  When it is to
 * stop — desired STOPPED (scale-in, a deployment replacing it, StopTask,
 * DeleteService) — its targets drain for their groups' deregistration
 * delay first, and the task engine keeps it running (DEACTIVATING) until
 * the last drain ends (elb_task_deregister(), the deregister hook); a task
 * that is no longer running drains at once.
 *
 * The service's events say so in ECS's words.  Their texts, and their
 * order when a task is stopped ("has stopped 1 running tasks", then
 * "deregistered 1 targets in (target-group …)", then "has begun draining
 * connections on 1 tasks."), are those of ECS services' event lists as
 * published in public deployment logs and monitoring code on GitHub
 * (found with the search tool, December 2026), and of
 * /work/shared/reference's notes on ECS service events. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/time.h"
#include "daemon/elb/elb_internal.h"
#include "daemon/lb/lb.h"
#include "daemon/svc/svc.h"

/* The task's address: its ENI attachment's privateIPv4Address. */
static const char *task_address(const cJSON *attachments)
{
	const cJSON *a, *d;
	cJSON_ArrayForEach(a, attachments)
		cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(a, "details"))
			if (json_str(d, "name") &&
			    strcmp(json_str(d, "name"), "privateIPv4Address") == 0)
				return json_str(d, "value");
	return NULL;
}

enum settled { UNCHANGED, REGISTERED, DRAINED };

/* Registers (WANT) or drains the target ADDR:PORT of group TG; what
 * changed.  *UNTIL is raised to the end of its drain when it drains. */
static enum settled settle(struct elb *e, const char *tg, const char *addr, int port, bool want,
			   int64_t now, int64_t *until, struct berth_err *err)
{
	struct store_elb_target *ts = NULL;
	size_t n = 0;
	if (store_elb_target_list(e->store, tg, &ts, &n, err) < 0)
		return UNCHANGED;
	const struct store_elb_target *t = NULL;
	for (size_t i = 0; i < n && !t; i++)
		if (strcmp(ts[i].id, addr) == 0 && ts[i].port == port)
			t = &ts[i];
	bool registered = t && !t->drain_until, known = t != NULL;
	if (known && t->drain_until > *until)
		*until = t->drain_until;
	store_elb_targets_free(ts, n);
	if (want && !registered)
		return store_elb_target_put(e->store, tg, addr, port, now, err) == 0 ? REGISTERED
										     : UNCHANGED;
	if (want || !registered)
		return UNCHANGED;
	_cleanup_(store_elb_res_freep) struct store_elb_res *r = NULL;
	if (store_elb_res_get(e->store, tg, &r, err) < 0)
		return UNCHANGED;
	_cleanup_(cJSON_Deletep) cJSON *doc = cJSON_Parse(r->doc_json);
	int64_t end = now + 1000 * elb_tg_attribute(doc, "deregistration_delay.timeout_seconds");
	if (store_elb_target_drain(e->store, tg, addr, port, end, err) < 0)
		return UNCHANGED;
	if (end > *until)
		*until = end;
	return DRAINED;
}

/* What a task of a service with loadBalancers is in them. */
struct task_lbs {
	cJSON *cfg, *att;        /* the service's configuration, the task's attachments */
	const cJSON *lbs;        /* cfg's loadBalancers */
	const char *addr;        /* the task's address, or NULL */
};

/* The host port container NAME of T publishes its TCP port PORT on (its
 * networkBindings), or 0. */
static int host_port(const struct store_task *t, const char *name, int port)
{
	for (size_t i = 0; name && i < t->n_containers; i++) {
		if (strcmp(t->containers[i].name, name) != 0 || !t->containers[i].network_json)
			continue;
		_cleanup_(cJSON_Deletep) cJSON *net = cJSON_Parse(t->containers[i].network_json);
		const cJSON *b;
		cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(net, "networkBindings")) {
			const char *proto = json_str(b, "protocol");
			if (json_int(b, "containerPort", 0) == port && (!proto || !strcmp(proto, "tcp")))
				return (int)json_int(b, "hostPort", 0);
		}
	}
	return 0;
}

/* One target of a task: an ip group's is the task's address and the
 * containerPort; an instance group's (a bridge-mode task, as in ECS) is
 * this host's container instance and the host port the containerPort is
 * published on, which the data plane reaches at ELB_INSTANCE_ADDR. */
struct target {
	const char *tg, *id;
	int port;
	bool instance;
};

static bool target_of(struct elb *e, const struct store_task *t, const struct task_lbs *l,
		      const cJSON *lb, struct target *ret)
{
	struct berth_err err = { 0 };
	_cleanup_(store_elb_res_freep) struct store_elb_res *r = NULL;
	*ret = (struct target){ .tg = json_str(lb, "targetGroupArn") };
	if (!ret->tg || store_elb_res_get(e->store, ret->tg, &r, &err) < 0)
		return false;
	_cleanup_(cJSON_Deletep) cJSON *doc = cJSON_Parse(r->doc_json);
	const char *type = json_str(doc, "TargetType");
	int port = (int)json_int(lb, "containerPort", 0);
	ret->instance = type && strcmp(type, "instance") == 0;
	ret->id = ret->instance ? e->cfg.instance_id : l->addr;
	ret->port = ret->instance ? host_port(t, json_str(lb, "containerName"), port) : port;
	return ret->id && ret->port > 0;
}

static void task_lbs_done(struct task_lbs *l)
{
	cJSON_Delete(l->cfg);
	cJSON_Delete(l->att);
}

/* False when T is no task of a service with load balancers (or its
 * service is gone: its targets went with DeleteService's drains). */
static bool task_lbs(struct elb *e, const struct store_task *t, struct task_lbs *ret)
{
	*ret = (struct task_lbs){ 0 };
	struct berth_err err = { 0 };
	_cleanup_(store_service_freep) struct store_service *v = NULL;
	if (!e || !t->service_name ||
	    store_service_get(e->store, t->cluster, t->service_name, &v, &err) < 0)
		return false;
	ret->cfg = cJSON_Parse(v->config_json);
	ret->att = t->attachments_json ? cJSON_Parse(t->attachments_json) : NULL;
	ret->lbs = cJSON_GetObjectItemCaseSensitive(ret->cfg, "loadBalancers");
	ret->addr = task_address(ret->att);
	return cJSON_GetArraySize(ret->lbs) > 0;
}

/* Registers T in its service's groups (WANT) or drains it; the latest
 * drain end of its targets (0: none draining).  Each change is a service
 * event. */
static int64_t settle_task(struct elb *e, struct svc *svc, const struct store_task *t, bool want)
{
	_cleanup_(task_lbs_done) struct task_lbs l;
	if (!task_lbs(e, t, &l))
		return 0;
	struct berth_err err = { 0 };
	int64_t now = berth_real_ms(), until = 0;
	bool drained = false, changed = false;
	const cJSON *lb;
	cJSON_ArrayForEach(lb, l.lbs) {
		struct target g;
		if (!target_of(e, t, &l, lb, &g))
			continue;
		enum settled s = settle(e, g.tg, g.id, g.port, want, now, &until, &err);
		char msg[600];
		snprintf(msg, sizeof(msg), "%s 1 targets in (target-group %s)",
			 s == REGISTERED ? "registered" : "deregistered", g.tg);
		if (s != UNCHANGED)
			svc_note(svc, t->cluster, t->service_name, msg);
		drained |= s == DRAINED;
		changed |= s != UNCHANGED;
	}
	if (drained)
		svc_note(svc, t->cluster, t->service_name,
			 "has begun draining connections on 1 tasks.");
	if (err.msg[0] && e->cfg.log)
		fprintf(e->cfg.log, "berth daemon: load balancers: task %s: %s\n", t->id, err.msg);
	if (!changed)
		return until;
	size_t purged;
	if ((store_elb_target_purge(e->store, now, &purged, &err) < 0 ||
	     elb_plane_apply(e, &err) < 0) &&
	    e->cfg.log)
		fprintf(e->cfg.log, "berth daemon: load balancers: task %s: %s\n", t->id, err.msg);
	elb_drain_arm(e);
	return until;
}

void elb_task_changed(struct elb *e, struct svc *svc, const struct store_task *t)
{
	/* A task desired STOPPED but still up is the deregister hook's. */
	bool up = t->last_status == STORE_TASK_RUNNING || t->last_status == STORE_TASK_DEACTIVATING;
	if (t->desired_status == STORE_TASK_STOPPED && up)
		return;
	settle_task(e, svc, t, t->last_status == STORE_TASK_RUNNING);
}

int64_t elb_task_deregister(struct elb *e, struct svc *svc, const struct store_task *t)
{
	return settle_task(e, svc, t, false);
}

/* ---- target health, for the service engine ---- */

/* ECS's "due to (reason …)" for ELB's reason code. */
static void reason_words(const struct lb_target_health *h, char *buf, size_t n)
{
	if (strcmp(h->reason, "Target.ResponseCodeMismatch") == 0)
		snprintf(buf, n, "Health checks failed with these codes: [%d]", h->last_code);
	else if (strcmp(h->reason, "Target.Timeout") == 0)
		snprintf(buf, n, "Request timed out");
	else
		snprintf(buf, n, "Health checks failed");
}

/* One target's verdict, ELB's state weighed as the service engine does. */
static enum svc_target_health one_target(struct elb *e, const struct target *g,
					 struct lb_target_health *h)
{
	struct berth_err err = { 0 };
	int r = elb_plane_health(e, g->tg, g->instance ? ELB_INSTANCE_ADDR : g->id, g->port, h,
				 &err);
	if (r == -ENODEV || (r == 0 && h->state == LB_UNUSED))
		return SVC_TARGETS_NONE;     /* nothing checks it: no verdict */
	if (r < 0 || h->state == LB_INITIAL || h->state == LB_DRAINING)
		return SVC_TARGETS_INITIAL;  /* not registered yet, or HAProxy restarting */
	return h->state == LB_HEALTHY ? SVC_TARGETS_HEALTHY : SVC_TARGETS_UNHEALTHY;
}

void elb_task_health(struct elb *e, const struct store_task *t, struct svc_target_report *ret)
{
	*ret = (struct svc_target_report){ .health = SVC_TARGETS_NONE };
	_cleanup_(task_lbs_done) struct task_lbs l;
	if (!task_lbs(e, t, &l))
		return;
	const cJSON *lb;
	cJSON_ArrayForEach(lb, l.lbs) {
		struct target g;
		struct lb_target_health h;
		/* Not registered (yet): not healthy. */
		enum svc_target_health v = target_of(e, t, &l, lb, &g) ? one_target(e, &g, &h)
									 : SVC_TARGETS_INITIAL;
		if (v == SVC_TARGETS_UNHEALTHY && ret->health != SVC_TARGETS_UNHEALTHY) {
			char why[128];
			reason_words(&h, why, sizeof(why));
			snprintf(ret->target_group, sizeof(ret->target_group), "%s", g.tg);
			/* ECS names an instance target's instance and host port. */
			snprintf(ret->event, sizeof(ret->event),
				 "(%s %s) (port %d) is unhealthy in (target-group %s) due to (reason %s)",
				 g.instance ? "instance" : "task", g.instance ? g.id : t->id, g.port,
				 g.tg, why);
		}
		/* The worst: UNHEALTHY over INITIAL over HEALTHY over NONE. */
		static const int rank[] = { [SVC_TARGETS_NONE] = 0, [SVC_TARGETS_HEALTHY] = 1,
					    [SVC_TARGETS_INITIAL] = 2, [SVC_TARGETS_UNHEALTHY] = 3 };
		if (rank[v] > rank[ret->health])
			ret->health = v;
	}
}
