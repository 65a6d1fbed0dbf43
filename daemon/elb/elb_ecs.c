/* daemon/elb/elb_ecs: ECS services' loadBalancers.  A task of a service
 * whose loadBalancers name target groups is registered in each (its awsvpc
 * address, the entry's containerPort) once it is RUNNING, and drained for
 * the group's deregistration delay as soon as it is to stop — desired
 * STOPPED (scale-in, a deployment replacing it, StopTask, DeleteService)
 * or no longer running. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/time.h"
#include "daemon/elb/elb_internal.h"

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

/* Registers (WANT) or drains the target ADDR:PORT of group TG; true when
 * that changed anything. */
static bool settle(struct elb *e, const char *tg, const char *addr, int port, bool want,
		   int64_t now, struct berth_err *err)
{
	struct store_elb_target *ts = NULL;
	size_t n = 0;
	if (store_elb_target_list(e->store, tg, &ts, &n, err) < 0)
		return false;
	const struct store_elb_target *t = NULL;
	for (size_t i = 0; i < n && !t; i++)
		if (strcmp(ts[i].id, addr) == 0 && ts[i].port == port)
			t = &ts[i];
	bool registered = t && !t->drain_until, known = t != NULL;
	store_elb_targets_free(ts, n);
	if (want && !registered)
		return store_elb_target_put(e->store, tg, addr, port, now, err) == 0;
	if (want || !registered)
		return false;
	_cleanup_(store_elb_res_freep) struct store_elb_res *r = NULL;
	if (!known || store_elb_res_get(e->store, tg, &r, err) < 0)
		return false;
	_cleanup_(cJSON_Deletep) cJSON *doc = cJSON_Parse(r->doc_json);
	int64_t delay = elb_tg_attribute(doc, "deregistration_delay.timeout_seconds");
	return store_elb_target_drain(e->store, tg, addr, port, now + 1000 * delay, err) == 0;
}

void elb_task_changed(struct elb *e, const struct store_task *t)
{
	if (!e || !t->service_name)
		return;
	struct berth_err err = { 0 };
	_cleanup_(store_service_freep) struct store_service *v = NULL;
	if (store_service_get(e->store, t->cluster, t->service_name, &v, &err) < 0)
		return; /* gone already: its targets went with DeleteService's drains */
	_cleanup_(cJSON_Deletep) cJSON *cfg = cJSON_Parse(v->config_json);
	_cleanup_(cJSON_Deletep) cJSON *att = t->attachments_json ? cJSON_Parse(t->attachments_json)
								  : NULL;
	const cJSON *lbs = cJSON_GetObjectItemCaseSensitive(cfg, "loadBalancers");
	const char *addr = task_address(att);
	if (!cJSON_GetArraySize(lbs) || !addr)
		return;
	bool want = t->last_status == STORE_TASK_RUNNING && t->desired_status != STORE_TASK_STOPPED;
	int64_t now = berth_real_ms();
	bool changed = false;
	const cJSON *lb;
	cJSON_ArrayForEach(lb, lbs)
		changed |= settle(e, json_str(lb, "targetGroupArn"), addr,
				  (int)json_int(lb, "containerPort", 0), want, now, &err);
	if (err.msg[0] && e->cfg.log)
		fprintf(e->cfg.log, "berth daemon: load balancers: task %s: %s\n", t->id, err.msg);
	if (!changed)
		return;
	size_t purged;
	if ((store_elb_target_purge(e->store, now, &purged, &err) < 0 ||
	     elb_plane_apply(e, &err) < 0) &&
	    e->cfg.log)
		fprintf(e->cfg.log, "berth daemon: load balancers: task %s: %s\n", t->id, err.msg);
	elb_drain_arm(e);
}
