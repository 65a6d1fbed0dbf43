/* daemon/elb/elb_action: a listener's or rule's actions — `forward` to one
 * or several weighted target groups, and `fixed-response` — read from a
 * request and checked against the listener's protocol. */
#include <stdio.h>
#include <string.h>

#include "daemon/elb/elb_internal.h"

#define FORWARD_GROUPS_MAX 5

/* Types the model knows that Berth does not serve. */
static const char *const unsupported_types[] = {
	"authenticate-oidc",
	"authenticate-cognito",
	"redirect",
	"jwt-validation",
};

static int check_group(struct elb_call *c, const char *arn, const char *listener_proto)
{
	_cleanup_(cJSON_Deletep) cJSON *doc = NULL;
	if (elb_load(c, ELB_TG, arn, NULL, &doc) < 0)
		return -1;
	const char *proto = json_str(doc, "Protocol");
	if (strcmp(proto, listener_proto) != 0)
		return elb_fail(c, "IncompatibleProtocols",
				"Target group '%s' uses protocol %s: a %s"
				" listener forwards to %s target groups only",
				arn, proto, listener_proto, listener_proto);
	return 0;
}

static int add_group(struct elb_call *c, cJSON *groups, const char *arn, int weight)
{
	cJSON *g = json_add_object(groups);
	if (!g || !json_add_string(g, "TargetGroupArn", arn) ||
	    !json_add_number(g, "Weight", weight))
		return elb_fail(c, "InternalFailure", "out of memory");
	return 0;
}

/* ForwardConfig.TargetGroups (weighted) and/or TargetGroupArn into OUT. */
static int read_forward(struct elb_call *c, cJSON *in, const char *proto, cJSON *out)
{
	const char *single = elb_take_str(c, in, "TargetGroupArn");
	cJSON *fc = elb_take_obj(c, in, "ForwardConfig");
	cJSON *list = fc ? elb_take_list(c, fc, "TargetGroups", FORWARD_GROUPS_MAX) : NULL;
	cJSON *sticky = fc ? elb_take_obj(c, fc, "TargetGroupStickinessConfig") : NULL;
	bool enabled = false;
	if (c->code[0] || (sticky && elb_take_bool(c, sticky, "Enabled", &enabled) < 0))
		return -1;
	if (enabled)
		return elb_fail(c, "ValidationError",
				"Target group stickiness is not supported by"
				" Berth's load balancers");
	cJSON *fwd = cJSON_AddObjectToObject(out, "ForwardConfig");
	cJSON *groups = fwd ? cJSON_AddArrayToObject(fwd, "TargetGroups") : NULL;
	cJSON *st = fwd ? cJSON_AddObjectToObject(fwd, "TargetGroupStickinessConfig") : NULL;
	if (!groups || !st || !cJSON_AddFalseToObject(st, "Enabled"))
		return elb_fail(c, "InternalFailure", "out of memory");
	cJSON *g;
	cJSON_ArrayForEach(g, list) {
		const char *arn;
		int weight = 1;
		if (elb_need_str(c, g, "TargetGroupArn", &arn) < 0 ||
		    elb_take_int(c, g, "Weight", 0, 999, &weight) < 0 ||
		    check_group(c, arn, proto) < 0)
			return -1;
		for (cJSON *h = groups->child; h; h = h->next)
			if (strcmp(json_str(h, "TargetGroupArn"), arn) == 0)
				return elb_fail(c, "ValidationError",
						"Target group '%s' is listed twice", arn);
		if (add_group(c, groups, arn, weight) < 0)
			return -1;
	}
	int n = cJSON_GetArraySize(groups);
	if (single) {
		if (n > 1 ||
		    (n == 1 && strcmp(json_str(groups->child, "TargetGroupArn"), single) != 0))
			return elb_fail(c, "ValidationError",
					"TargetGroupArn and ForwardConfig name"
					" different target groups");
		if (!n && (check_group(c, single, proto) < 0 || add_group(c, groups, single, 1) < 0))
			return -1;
		n = 1;
	}
	if (!n)
		return elb_fail(c, "ValidationError",
				"A forward action needs a TargetGroupArn or"
				" ForwardConfig.TargetGroups");
	if (n == 1 &&
	    !json_add_string(out, "TargetGroupArn", json_str(groups->child, "TargetGroupArn")))
		return elb_fail(c, "InternalFailure", "out of memory");
	return 0;
}

static bool content_type_ok(const char *t)
{
	static const char *const types[] = { "text/plain", "text/css", "text/html",
					     "application/javascript", "application/json" };
	for (size_t i = 0; i < ARRAY_SIZE(types); i++)
		if (strcmp(t, types[i]) == 0)
			return true;
	return false;
}

static int read_fixed(struct elb_call *c, cJSON *in, const char *proto, cJSON *out)
{
	cJSON *fc = elb_take_obj(c, in, "FixedResponseConfig");
	if (!fc)
		return elb_fail(c, "ValidationError",
				"A fixed-response action needs"
				" FixedResponseConfig");
	if (strcmp(proto, "HTTP") != 0)
		return elb_fail(c, "InvalidLoadBalancerAction",
				"A %s listener cannot answer with a"
				" fixed response (HTTP listeners only)",
				proto);
	const char *code, *type = elb_take_str(c, fc, "ContentType");
	const char *body = elb_take_str(c, fc, "MessageBody");
	if (elb_need_str(c, fc, "StatusCode", &code) < 0)
		return -1;
	if (strlen(code) != 3 || !strchr("245", code[0]) || code[1] < '0' || code[1] > '9' ||
	    code[2] < '0' || code[2] > '9')
		return elb_fail(c, "ValidationError",
				"Fixed response status code '%.10s' must be"
				" 2XX, 4XX or 5XX",
				code);
	if (type && !content_type_ok(type))
		return elb_fail(c, "ValidationError",
				"Fixed response content type '%.64s' must be"
				" text/plain, text/css, text/html, application/javascript or"
				" application/json",
				type);
	if (body && strlen(body) > 1024)
		return elb_fail(c, "ValidationError",
				"Fixed response message body is longer than"
				" 1024 characters");
	cJSON *o = cJSON_AddObjectToObject(out, "FixedResponseConfig");
	if (!o || !json_add_string(o, "StatusCode", code) ||
	    (type && !json_add_string(o, "ContentType", type)) ||
	    (body && !json_add_string(o, "MessageBody", body)))
		return elb_fail(c, "InternalFailure", "out of memory");
	return 0;
}

cJSON *elb_read_actions(struct elb_call *c, cJSON *obj, const char *name, const char *proto)
{
	cJSON *list = elb_take_list(c, obj, name, 5);
	if (c->code[0])
		return NULL;
	if (!list || cJSON_GetArraySize(list) != 1) {
		elb_fail(c,
			 list && cJSON_GetArraySize(list) > 1 ? "TooManyActions" : "ValidationError",
			 "%s must hold exactly one action (forward or fixed-response)", name);
		return NULL;
	}
	cJSON *in = list->child;
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateArray();
	cJSON *a = out ? json_add_object(out) : NULL;
	const char *type;
	int order = 1;
	if (!a) {
		elb_fail(c, "InternalFailure", "out of memory");
		return NULL;
	}
	if (elb_need_str(c, in, "Type", &type) < 0 ||
	    elb_take_int(c, in, "Order", 1, 50000, &order) < 0)
		return NULL;
	if (!json_add_string(a, "Type", type) || !json_add_number(a, "Order", order)) {
		elb_fail(c, "InternalFailure", "out of memory");
		return NULL;
	}
	int r = -1;
	if (strcmp(type, "forward") == 0)
		r = read_forward(c, in, proto, a);
	else if (strcmp(type, "fixed-response") == 0)
		r = read_fixed(c, in, proto, a);
	for (size_t i = 0; r < 0 && !c->code[0] && i < ARRAY_SIZE(unsupported_types); i++)
		if (strcmp(type, unsupported_types[i]) == 0)
			elb_fail(c, "InvalidLoadBalancerAction",
				 "Action type '%s' is not supported by"
				 " Berth's load balancers (forward, fixed-response)",
				 type);
	if (r < 0 && !c->code[0])
		elb_fail(c, "ValidationError",
			 "1 validation error detected: Value '%.40s' at"
			 " '%s.member.1.type' failed to satisfy constraint: Member must satisfy "
			 "enum"
			 " value set: [forward, fixed-response, redirect, authenticate-oidc,"
			 " authenticate-cognito, jwt-validation]",
			 type, name);
	return r < 0 ? NULL : TAKE_PTR(out);
}

bool elb_actions_use(const cJSON *actions, const char *tg_arn)
{
	const cJSON *a, *g;
	cJSON_ArrayForEach(a, actions)
		cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(
					      cJSON_GetObjectItemCaseSensitive(a, "ForwardConfig"),
					      "TargetGroups"))
			if (strcmp(json_str(g, "TargetGroupArn"), tg_arn) == 0)
				return true;
	return false;
}
