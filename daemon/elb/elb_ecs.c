/* daemon/elb/elb_ecs: ECS services' loadBalancers.  A task of a service
 * whose loadBalancers name target groups is registered in each (its awsvpc
 * address, the entry's containerPort) once it is RUNNING.  When it is to
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

/* Registers T in its service's groups (WANT) or drains it; the latest
 * drain end of its targets (0: none draining).  Each change is a service
 * event. */
static int64_t settle_task(struct elb *e, struct svc *svc, const struct store_task *t, bool want)
{
	if (!e || !t->service_name)
		return 0;
	struct berth_err err = { 0 };
	_cleanup_(store_service_freep) struct store_service *v = NULL;
	if (store_service_get(e->store, t->cluster, t->service_name, &v, &err) < 0)
		return 0; /* gone already: its targets went with DeleteService's drains */
	_cleanup_(cJSON_Deletep) cJSON *cfg = cJSON_Parse(v->config_json);
	_cleanup_(cJSON_Deletep) cJSON *att = t->attachments_json ? cJSON_Parse(t->attachments_json)
								  : NULL;
	const cJSON *lbs = cJSON_GetObjectItemCaseSensitive(cfg, "loadBalancers");
	const char *addr = task_address(att);
	if (!cJSON_GetArraySize(lbs) || !addr)
		return 0;
	int64_t now = berth_real_ms(), until = 0;
	bool drained = false, changed = false;
	const cJSON *lb;
	cJSON_ArrayForEach(lb, lbs) {
		const char *tg = json_str(lb, "targetGroupArn");
		enum settled s = settle(e, tg, addr, (int)json_int(lb, "containerPort", 0), want, now,
					&until, &err);
		char msg[600];
		snprintf(msg, sizeof(msg), "%s 1 targets in (target-group %s)",
			 s == REGISTERED ? "registered" : "deregistered", tg);
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
