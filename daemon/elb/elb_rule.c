/* daemon/elb/elb_rule: listener rules — CreateRule, DescribeRules,
 * DeleteRule — with path-pattern and host-header conditions, on HTTP
 * listeners.  A listener's default rule is its DefaultActions. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/elb/elb_internal.h"

#define RULES_MAX 100
#define CONDITIONS_MAX 5
#define VALUES_MAX 5
#define VALUE_LEN_MAX 128

static bool value_ok(const char *field, const char *v)
{
	bool path = strcmp(field, "path-pattern") == 0;
	size_t n = strlen(v);
	if (!n || n > VALUE_LEN_MAX)
		return false;
	for (const char *p = v; *p; p++) {
		bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || strchr("-.*?", *p) ||
			  (path && strchr("_$/~\"'@:+&", *p));
		if (!ok)
			return false;
	}
	return true;
}

/* Values, or <Field>Config.Values; not both. */
static cJSON *condition_values(struct elb_call *c, cJSON *cond, const char *field)
{
	cJSON *values = elb_take_list(c, cond, "Values", VALUES_MAX);
	cJSON *cfg = elb_take_obj(c, cond,
				  strcmp(field, "path-pattern") == 0 ? "PathPatternConfig"
								     : "HostHeaderConfig");
	cJSON *cv = cfg ? elb_take_list(c, cfg, "Values", VALUES_MAX) : NULL;
	if (c->code[0])
		return NULL;
	if ((values && cv) || (!values && !cv)) {
		elb_fail(c, "ValidationError",
			 "A %s condition takes its values in Values or in"
			 " its config's Values (exactly one of them)",
			 field);
		return NULL;
	}
	return values ? values : cv;
}

static int read_condition(struct elb_call *c, cJSON *cond, cJSON *out, bool *seen)
{
	const char *field;
	if (elb_need_str(c, cond, "Field", &field) < 0)
		return -1;
	int which = strcmp(field, "path-pattern") == 0	? 0
		    : strcmp(field, "host-header") == 0 ? 1
							: -1;
	if (which < 0)
		return elb_fail(c, "ValidationError",
				"Condition field '%.40s' is not supported by"
				" Berth's load balancers (path-pattern, host-header)",
				field);
	if (seen[which])
		return elb_fail(c, "ValidationError", "A rule can have only one '%s' condition",
				field);
	seen[which] = true;
	cJSON *values = condition_values(c, cond, field);
	if (!values)
		return -1;
	int n = cJSON_GetArraySize(values);
	if (n < 1)
		return elb_fail(c, "ValidationError", "A %s condition needs 1 to %d values", field,
				VALUES_MAX);
	const cJSON *v;
	cJSON_ArrayForEach(v, values)
		if (!value_ok(field, v->valuestring))
			return elb_fail(c, "ValidationError",
					"Condition value '%.130s' is not a valid %s"
					" (at most %d characters; letters, digits, - . * ?%s)",
					v->valuestring, field, VALUE_LEN_MAX,
					which == 0 ? " _ $ / ~ \" ' @ : + &" : "");
	cJSON *o = json_add_object(out);
	cJSON *cfg = o && json_add_string(o, "Field", field) &&
				     cJSON_AddItemToObject(o, "Values",
							   cJSON_Duplicate(values, true))
			     ? cJSON_AddObjectToObject(o, which == 0 ? "PathPatternConfig"
								     : "HostHeaderConfig")
			     : NULL;
	if (!cfg || !cJSON_AddItemToObject(cfg, "Values", cJSON_Duplicate(values, true)))
		return elb_fail(c, "InternalFailure", "out of memory");
	return 0;
}

static cJSON *read_conditions(struct elb_call *c)
{
	cJSON *list = elb_take_list(c, c->in, "Conditions", CONDITIONS_MAX);
	if (c->code[0])
		return NULL;
	if (!list || !cJSON_GetArraySize(list)) {
		elb_fail(c, "ValidationError", "A rule needs 1 to %d conditions", CONDITIONS_MAX);
		return NULL;
	}
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateArray();
	bool seen[2] = { false, false };
	cJSON *cond;
	cJSON_ArrayForEach(cond, list)
		if (!out || read_condition(c, cond, out, seen) < 0)
			return out ? NULL : (elb_fail(c, "InternalFailure", "out of memory"), NULL);
	return TAKE_PTR(out);
}

static cJSON *rule_out(const char *arn, const char *priority, const cJSON *conditions,
		       const cJSON *actions, bool is_default)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !json_add_string(o, "RuleArn", arn) || !json_add_string(o, "Priority", priority) ||
	    !cJSON_AddItemToObject(o, "Conditions",
				   conditions ? cJSON_Duplicate(conditions, true)
					      : cJSON_CreateArray()) ||
	    !cJSON_AddItemToObject(o, "Actions", cJSON_Duplicate(actions, true)) ||
	    !cJSON_AddBoolToObject(o, "IsDefault", is_default)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *stored_rule_out(const struct store_elb_res *r)
{
	_cleanup_(cJSON_Deletep) cJSON *doc = cJSON_Parse(r->doc_json);
	return doc ? rule_out(r->arn, json_str(doc, "Priority"),
			      cJSON_GetObjectItemCaseSensitive(doc, "Conditions"),
			      cJSON_GetObjectItemCaseSensitive(doc, "Actions"), false)
		   : NULL;
}

static int check_priority(struct elb_call *c, const char *listener, int priority)
{
	struct store_elb_res *rs = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	int r = store_elb_res_list(c->e->store, "rule", listener, &rs, &n, &err);
	if (r < 0)
		return elb_fail_store(c, r, &err, NULL, NULL);
	for (size_t i = 0; r == 0 && i < n; i++) {
		_cleanup_(cJSON_Deletep) cJSON *doc = cJSON_Parse(rs[i].doc_json);
		const char *p = json_str(doc, "Priority");
		if (p && atoi(p) == priority)
			r = elb_fail(c, "PriorityInUse", "Priority '%d' is currently in use",
				     priority);
	}
	if (r == 0 && n >= RULES_MAX)
		r = elb_fail(c, "TooManyRules", "Listener '%s' has %d rules already", listener,
			     RULES_MAX);
	store_elb_res_array_free(rs, n);
	return r;
}

int elb_op_create_rule(struct elb_call *c)
{
	const char *listener;
	int priority = 0;
	_cleanup_(cJSON_Deletep) cJSON *ldoc = NULL;
	if (elb_need_str(c, c->in, "ListenerArn", &listener) < 0 ||
	    elb_take_int(c, c->in, "Priority", 1, 50000, &priority) < 0 ||
	    elb_load(c, ELB_LISTENER, listener, NULL, &ldoc) < 0)
		return -1;
	if (!priority)
		return elb_fail(c, "ValidationError", "A rule needs a Priority from 1 to 50000");
	const char *proto = json_str(ldoc, "Protocol");
	if (strcmp(proto, "HTTP") != 0)
		return elb_fail(c, "InvalidConfigurationRequest",
				"Rules are supported on HTTP"
				" listeners only, and '%s' is a %s listener",
				listener, proto);
	_cleanup_(cJSON_Deletep) cJSON *conditions = read_conditions(c);
	_cleanup_(cJSON_Deletep)
		cJSON *actions = conditions ? elb_read_actions(c, c->in, "Actions", proto) : NULL;
	_cleanup_(elb_tags_done) struct elb_tags tags = { 0 };
	if (!actions || elb_take_tags(c, &tags) < 0 || elb_check_all_read(c) < 0 ||
	    check_priority(c, listener, priority) < 0)
		return -1;
	char prio[16];
	snprintf(prio, sizeof(prio), "%d", priority);
	_cleanup_free_ char *arn = NULL;
	_cleanup_(cJSON_Deletep) cJSON *doc = cJSON_CreateObject();
	if (!doc || !json_add_string(doc, "Priority", prio) ||
	    !cJSON_AddItemReferenceToObject(doc, "Conditions", conditions) ||
	    !cJSON_AddItemReferenceToObject(doc, "Actions", actions))
		return elb_fail(c, "InternalFailure", "out of memory");
	if (elb_new_arn(c, ELB_RULE, NULL, listener, &arn) < 0 ||
	    elb_insert(c, ELB_RULE, arn, NULL, listener, doc) < 0 ||
	    elb_tags_create(c, &tags, arn) < 0)
		return -1;
	c->changed = true;
	cJSON *list = cJSON_AddArrayToObject(c->out, "Rules");
	cJSON *o = list ? rule_out(arn, prio, conditions, actions, false) : NULL;
	if (!o || !cJSON_AddItemToArray(list, o)) {
		cJSON_Delete(o);
		return elb_fail(c, "InternalFailure", "out of memory");
	}
	return 0;
}

/* A listener's rules by priority, then its default rule. */
static int listener_rules(struct elb_call *c, const char *listener, cJSON *items)
{
	_cleanup_(cJSON_Deletep) cJSON *ldoc = NULL;
	if (elb_load(c, ELB_LISTENER, listener, NULL, &ldoc) < 0)
		return -1;
	struct store_elb_res *rs = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	int r = store_elb_res_list(c->e->store, "rule", listener, &rs, &n, &err);
	if (r < 0)
		return elb_fail_store(c, r, &err, NULL, NULL);
	for (size_t i = 0; r == 0 && i < n; i++) {
		cJSON *o = stored_rule_out(&rs[i]);
		if (!o || !cJSON_AddItemToArray(items, o))
			r = elb_fail(c, "InternalFailure", "rule %s: unreadable", rs[i].arn);
	}
	store_elb_res_array_free(rs, n);
	if (r < 0)
		return -1;
	elb_sort_rules(items);
	cJSON *d = rule_out(elb_default_rule_arn(ldoc), "default", NULL,
			    cJSON_GetObjectItemCaseSensitive(ldoc, "DefaultActions"), true);
	if (!d || !cJSON_AddItemToArray(items, d))
		return elb_fail(c, "InternalFailure", "out of memory");
	return 0;
}

/* The listener a rule ARN belongs to: its ARN with "listener-rule/" as
 * "listener/" and the last component dropped. */
static char *rule_listener(const char *rule_arn)
{
	const char *p = strstr(rule_arn, ":listener-rule/");
	const char *last = strrchr(rule_arn, '/');
	char *s = NULL;
	if (p && last &&
	    asprintf(&s, "%.*s:listener/%.*s", (int)(p - rule_arn), rule_arn,
		     (int)(last - (p + 15)), p + 15) < 0)
		s = NULL;
	return s;
}

int elb_op_describe_rules(struct elb_call *c)
{
	int from, size;
	const char *listener = elb_take_str(c, c->in, "ListenerArn");
	cJSON *arns = elb_take_list(c, c->in, "RuleArns", 20);
	if (c->code[0] || elb_take_page(c, &from, &size) < 0 || elb_check_all_read(c) < 0)
		return -1;
	if (!listener == !arns)
		return elb_fail(c, "ValidationError",
				"Either ListenerArn or RuleArns must be given"
				" (not both)");
	cJSON *items = cJSON_CreateArray();
	if (!items)
		return elb_fail(c, "InternalFailure", "out of memory");
	if (listener && listener_rules(c, listener, items) < 0) {
		cJSON_Delete(items);
		return -1;
	}
	const cJSON *a;
	cJSON_ArrayForEach(a, arns) {
		_cleanup_free_ char *l = rule_listener(a->valuestring);
		_cleanup_(cJSON_Deletep) cJSON *all = cJSON_CreateArray();
		struct berth_err err = { 0 };
		_cleanup_(store_elb_res_freep) struct store_elb_res *ld = NULL;
		cJSON *found = NULL;
		if (l && all && store_elb_res_get(c->e->store, l, &ld, &err) == 0 &&
		    listener_rules(c, l, all) == 0)
			for (cJSON *it = all->child; it && !found; it = it->next)
				if (strcmp(json_str(it, "RuleArn"), a->valuestring) == 0)
					found = it;
		if (!found) {
			cJSON_Delete(items);
			c->code[0] = '\0';
			return elb_fail(c, "RuleNotFound", "One or more rules not found: '%.300s'",
					a->valuestring);
		}
		cJSON_AddItemToArray(items, cJSON_DetachItemViaPointer(all, found));
	}
	return elb_put_page(c, "Rules", items, from, size);
}

int elb_op_delete_rule(struct elb_call *c)
{
	const char *arn;
	if (elb_need_str(c, c->in, "RuleArn", &arn) < 0 || elb_check_all_read(c) < 0)
		return -1;
	_cleanup_(cJSON_Deletep) cJSON *doc = NULL;
	_cleanup_free_ char *l = rule_listener(arn);
	_cleanup_(cJSON_Deletep) cJSON *ldoc = NULL;
	struct berth_err err = { 0 };
	_cleanup_(store_elb_res_freep) struct store_elb_res *ld = NULL;
	if (l && store_elb_res_get(c->e->store, l, &ld, &err) == 0 &&
	    (ldoc = cJSON_Parse(ld->doc_json)) && elb_default_rule_arn(ldoc) &&
	    strcmp(elb_default_rule_arn(ldoc), arn) == 0)
		return elb_fail(c, "OperationNotPermitted",
				"The default rule of a listener cannot be"
				" deleted: delete the listener");
	if (elb_load(c, ELB_RULE, arn, NULL, &doc) < 0)
		return -1;
	int r = store_elb_res_delete(c->e->store, arn, &err);
	if (r < 0)
		return elb_fail_store(c, r, &err, "RuleNotFound", NULL);
	c->changed = true;
	return 0;
}

static int by_priority(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	return atoi(json_str(x, "Priority")) - atoi(json_str(y, "Priority"));
}

void elb_sort_rules(cJSON *items)
{
	int n = cJSON_GetArraySize(items);
	if (n < 2)
		return;
	cJSON **v = calloc((size_t)n, sizeof(*v));
	if (!v)
		return; /* unsorted: creation order */
	for (int i = 0; i < n; i++)
		v[i] = cJSON_DetachItemFromArray(items, 0);
	qsort(v, (size_t)n, sizeof(*v), by_priority);
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(items, v[i]);
	free(v);
}
