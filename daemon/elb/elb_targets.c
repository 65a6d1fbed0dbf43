/* daemon/elb/elb_targets: RegisterTargets, DeregisterTargets and
 * DescribeTargetHealth.
 *
 * An ip target is an IPv4 address; an instance target is this host (its
 * traffic goes to 127.0.0.1).  Addresses no load balancer should reach —
 * unspecified, link-local (the cloud metadata service), multicast,
 * broadcast — are refused.  A deregistered target drains for the group's
 * deregistration delay and is then forgotten (elb_plane.c's timer). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/elb/elb_internal.h"
#include "daemon/lb/lb.h"

#define TARGETS_MAX 1000
#define INSTANCE_ID_MAX 64

static int check_ip(struct elb_call *c, const char *id)
{
	struct in_addr a;
	if (inet_pton(AF_INET, id, &a) != 1)
		return elb_fail(c, "InvalidTarget",
				"Target '%.64s' is not an IPv4 address (target"
				" type ip)",
				id);
	uint32_t h = ntohl(a.s_addr);
	if (h == 0 || (h >> 16) == 0xa9fe || (h >> 28) == 0xe || h == 0xffffffff || (h >> 24) == 0)
		return elb_fail(c, "InvalidTarget",
				"Target '%s' is an address a load balancer may not"
				" send to (unspecified, link-local, multicast or broadcast)",
				id);
	return 0;
}

static int check_instance(struct elb_call *c, const char *id)
{
	size_t n = strlen(id);
	bool ok = n >= 1 && n <= INSTANCE_ID_MAX;
	for (size_t i = 0; ok && i < n; i++)
		ok = (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
		     (id[i] >= '0' && id[i] <= '9') || id[i] == '-';
	return ok ? 0 : elb_fail(c, "InvalidTarget", "Target '%.64s' is not an instance id", id);
}

/* One {Id, Port} of Targets, checked for the group (DOC). */
static int read_target(struct elb_call *c, cJSON *t, const cJSON *doc, const char **ret_id,
		       int *ret_port)
{
	*ret_port = (int)json_int(doc, "Port", 0);
	if (elb_need_str(c, t, "Id", ret_id) < 0 ||
	    elb_take_int(c, t, "Port", 1, 65535, ret_port) < 0)
		return -1;
	return strcmp(json_str(doc, "TargetType"), "ip") == 0 ? check_ip(c, *ret_id)
							      : check_instance(c, *ret_id);
}

static cJSON *read_targets(struct elb_call *c, bool required)
{
	cJSON *list = elb_take_list(c, c->in, "Targets", TARGETS_MAX);
	if (!c->code[0] && required && (!list || !cJSON_GetArraySize(list)))
		elb_fail(c, "ValidationError", "Targets must list at least one target");
	return c->code[0] ? NULL : list;
}

int elb_op_register_targets(struct elb_call *c)
{
	const char *arn;
	_cleanup_(cJSON_Deletep) cJSON *doc = NULL;
	if (elb_need_str(c, c->in, "TargetGroupArn", &arn) < 0 ||
	    elb_load(c, ELB_TG, arn, NULL, &doc) < 0)
		return -1;
	cJSON *list = read_targets(c, true);
	if (!list)
		return -1;
	/* A refusal after some writes is undone with them: every change runs
	 * in one store transaction (elb.c). */
	cJSON *t;
	cJSON_ArrayForEach(t, list) {
		const char *id;
		int port;
		if (read_target(c, t, doc, &id, &port) < 0)
			return -1;
		struct berth_err err = { 0 };
		int r = store_elb_target_put(c->e->store, arn, id, port, c->now_ms, &err);
		if (r < 0)
			return elb_fail_store(c, r, &err, NULL, NULL);
	}
	if (elb_check_all_read(c) < 0)
		return -1;
	struct store_elb_target *ts = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	int r = store_elb_target_list(c->e->store, arn, &ts, &n, &err);
	store_elb_targets_free(ts, n);
	if (r < 0)
		return elb_fail_store(c, r, &err, NULL, NULL);
	if (n > TARGETS_MAX)
		return elb_fail(c, "TooManyTargets",
				"Target group '%s' would have %zu targets: at"
				" most %d",
				arn, n, TARGETS_MAX);
	c->changed = true;
	return 0;
}

int elb_op_deregister_targets(struct elb_call *c)
{
	const char *arn;
	_cleanup_(cJSON_Deletep) cJSON *doc = NULL;
	if (elb_need_str(c, c->in, "TargetGroupArn", &arn) < 0 ||
	    elb_load(c, ELB_TG, arn, NULL, &doc) < 0)
		return -1;
	cJSON *list = read_targets(c, true);
	if (!list)
		return -1;
	int64_t until = c->now_ms +
			1000LL * elb_tg_attribute(doc, "deregistration_delay.timeout_seconds");
	cJSON *t;
	cJSON_ArrayForEach(t, list) {
		const char *id;
		int port;
		if (read_target(c, t, doc, &id, &port) < 0)
			return -1;
		struct berth_err err = { 0 };
		int r = store_elb_target_drain(c->e->store, arn, id, port, until, &err);
		if (r == -ENOENT)
			return elb_fail(c, "InvalidTarget",
					"The following targets are not registered in"
					" target group '%s': '%s:%d'",
					arn, id, port);
		if (r < 0)
			return elb_fail_store(c, r, &err, NULL, NULL);
	}
	if (elb_check_all_read(c) < 0)
		return -1;
	/* A delay of 0: gone now, not at the timer's next turn. */
	size_t purged;
	struct berth_err err = { 0 };
	if (store_elb_target_purge(c->e->store, c->now_ms, &purged, &err) < 0)
		return elb_fail_store(c, -EIO, &err, NULL, NULL);
	c->changed = true;
	return 0;
}

/* ---- health ---- */

static const char *const state_words[] = {
	[LB_INITIAL] = "initial",   [LB_HEALTHY] = "healthy", [LB_UNHEALTHY] = "unhealthy",
	[LB_DRAINING] = "draining", [LB_UNUSED] = "unused",
};

static const char *describe_reason(const char *reason, int code)
{
	static __thread char buf[96];
	if (strcmp(reason, "Target.ResponseCodeMismatch") == 0 && code) {
		snprintf(buf, sizeof(buf), "Health checks failed with these codes: [%d]", code);
		return buf;
	}
	if (strcmp(reason, "Target.Timeout") == 0)
		return "Request timed out";
	if (strcmp(reason, "Target.FailedHealthChecks") == 0)
		return "Health checks failed";
	if (strcmp(reason, "Target.DeregistrationInProgress") == 0)
		return "Target deregistration is in progress";
	if (strcmp(reason, "Target.NotInUse") == 0)
		return "Target group is not configured to receive traffic from the load balancer";
	if (strcmp(reason, "Target.NotRegistered") == 0)
		return "Target is not registered to the target group";
	if (strcmp(reason, "Elb.RegistrationInProgress") == 0)
		return "Target registration is in progress";
	if (strcmp(reason, "Elb.InitialHealthChecking") == 0)
		return "Initial health checks in progress";
	return NULL;
}

/* The health of one stored target (or of one not registered: T NULL). */
static int target_health(struct elb_call *c, const char *arn, const cJSON *doc, bool used,
			 const struct store_elb_target *t, struct lb_target_health *h)
{
	*h = (struct lb_target_health){ .state = LB_UNUSED };
	if (!t) {
		snprintf(h->reason, sizeof(h->reason), "Target.NotRegistered");
		return 0;
	}
	if (t->drain_until) {
		h->state = LB_DRAINING;
		snprintf(h->reason, sizeof(h->reason), "Target.DeregistrationInProgress");
		return 0;
	}
	if (!used) {
		snprintf(h->reason, sizeof(h->reason), "Target.NotInUse");
		return 0;
	}
	struct berth_err err = { 0 };
	bool ip = strcmp(json_str(doc, "TargetType"), "ip") == 0;
	int r = elb_plane_health(c->e, arn, ip ? t->id : ELB_INSTANCE_ADDR, t->port, h, &err);
	if (r == -ENODEV) { /* no data plane: nothing checks it */
		h->state = LB_INITIAL;
		snprintf(h->reason, sizeof(h->reason), "Elb.RegistrationInProgress");
		return 0;
	}
	return r < 0 ? elb_fail(c, "HealthUnavailable", "%s", err.msg) : 0;
}

static int add_description(struct elb_call *c, cJSON *list, const cJSON *doc, const char *id,
			   int port, const struct lb_target_health *h)
{
	const char *hc = json_str(doc, "HealthCheckPort");
	char port_s[16];
	snprintf(port_s, sizeof(port_s), "%d", port);
	cJSON *d = json_add_object(list);
	cJSON *t = d ? cJSON_AddObjectToObject(d, "Target") : NULL;
	cJSON *th = t ? cJSON_AddObjectToObject(d, "TargetHealth") : NULL;
	const char *desc = describe_reason(h->reason, h->last_code);
	if (!th || !json_add_string(t, "Id", id) || !json_add_number(t, "Port", port) ||
	    !json_add_string(d, "HealthCheckPort", strcmp(hc, "traffic-port") == 0 ? port_s : hc) ||
	    !json_add_string(th, "State", state_words[h->state]) ||
	    (h->reason[0] && !json_add_string(th, "Reason", h->reason)) ||
	    (desc && !json_add_string(th, "Description", desc)))
		return elb_fail(c, "InternalFailure", "out of memory");
	return 0;
}

static int describe_asked(struct elb_call *c, const char *arn, const cJSON *doc, bool used,
			  const struct store_elb_target *ts, size_t n, cJSON *asked, cJSON *out)
{
	cJSON *t;
	cJSON_ArrayForEach(t, asked) {
		const char *id;
		int port;
		if (read_target(c, t, doc, &id, &port) < 0)
			return -1;
		const struct store_elb_target *found = NULL;
		for (size_t i = 0; i < n && !found; i++)
			if (strcmp(ts[i].id, id) == 0 && ts[i].port == port)
				found = &ts[i];
		struct lb_target_health h;
		if (target_health(c, arn, doc, used, found, &h) < 0 ||
		    add_description(c, out, doc, id, port, &h) < 0)
			return -1;
	}
	return 0;
}

int elb_op_describe_target_health(struct elb_call *c)
{
	const char *arn;
	_cleanup_(cJSON_Deletep) cJSON *doc = NULL, *users = cJSON_CreateArray();
	if (elb_need_str(c, c->in, "TargetGroupArn", &arn) < 0 ||
	    elb_load(c, ELB_TG, arn, NULL, &doc) < 0)
		return -1;
	cJSON *asked = read_targets(c, false);
	if (c->code[0] || !users || elb_tg_users(c, arn, users) < 0)
		return -1;
	cJSON *out = json_add_array(c->out, "TargetHealthDescriptions");
	struct store_elb_target *ts = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	int r = out ? store_elb_target_list(c->e->store, arn, &ts, &n, &err) : -ENOMEM;
	if (r < 0)
		return elb_fail_store(c, r, &err, NULL, NULL);
	bool used = cJSON_GetArraySize(users) > 0;
	if (asked) {
		r = describe_asked(c, arn, doc, used, ts, n, asked, out);
	} else {
		for (size_t i = 0; r == 0 && i < n; i++) {
			struct lb_target_health h;
			r = target_health(c, arn, doc, used, &ts[i], &h);
			if (r == 0)
				r = add_description(c, out, doc, ts[i].id, ts[i].port, &h);
		}
	}
	store_elb_targets_free(ts, n);
	return r < 0 ? -1 : elb_check_all_read(c);
}
