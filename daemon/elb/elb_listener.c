/* daemon/elb/elb_listener: listeners — Create/Describe/Modify/Delete.
 *
 * All load balancers share the host's address, so a port is one listener
 * on the whole host, whichever load balancer it belongs to. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/elb/elb_internal.h"

#define LISTENERS_MAX 50
#define DEFAULT_RULE "DefaultRuleArn" /* stored, not a member of the answer */

static cJSON *listener_out(const struct store_elb_res *r, const cJSON *doc)
{
	cJSON *o = cJSON_Duplicate(doc, true);
	if (!o)
		return NULL;
	cJSON_DeleteItemFromObjectCaseSensitive(o, DEFAULT_RULE);
	if (!json_add_string(o, "ListenerArn", r->arn) ||
	    !json_add_string(o, "LoadBalancerArn", r->parent_arn)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static int answer_one(struct elb_call *c, const struct store_elb_res *r, const cJSON *doc)
{
	cJSON *list = cJSON_AddArrayToObject(c->out, "Listeners");
	cJSON *o = list ? listener_out(r, doc) : NULL;
	if (!o || !cJSON_AddItemToArray(list, o)) {
		cJSON_Delete(o);
		return elb_fail(c, "InternalFailure", "out of memory");
	}
	return 0;
}

/* PORT must be free on the host: no other listener (SELF excepted). */
static int check_port(struct elb_call *c, int port, const char *lb_arn, const char *self)
{
	struct store_elb_res *rs = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	int r = store_elb_res_list(c->e->store, "listener", NULL, &rs, &n, &err);
	if (r < 0)
		return elb_fail_store(c, r, &err, NULL, NULL);
	size_t mine = 0;
	for (size_t i = 0; r == 0 && i < n; i++) {
		mine += strcmp(rs[i].parent_arn, lb_arn) == 0;
		if (self && strcmp(rs[i].arn, self) == 0)
			continue;
		_cleanup_(cJSON_Deletep) cJSON *doc = cJSON_Parse(rs[i].doc_json);
		if (json_int(doc, "Port", 0) != port)
			continue;
		r = strcmp(rs[i].parent_arn, lb_arn) == 0
			    ? elb_fail(c, "DuplicateListener",
				       "A listener already exists on port %d of"
				       " load balancer '%s'",
				       port, lb_arn)
			    : elb_fail(c, "DuplicateListener",
				       "Port %d is taken by a listener of load"
				       " balancer '%s' (all load balancers share this host's "
				       "address)",
				       port, rs[i].parent_arn);
	}
	store_elb_res_array_free(rs, n);
	if (r == 0 && !self && mine >= LISTENERS_MAX)
		r = elb_fail(c, "TooManyListeners", "Load balancer '%s' has %d listeners already",
			     lb_arn, LISTENERS_MAX);
	return r;
}

/* Protocol for LB_DOC's type: HTTP on an application, TCP on a network
 * load balancer.  DFLT when the request names none. */
static int read_protocol(struct elb_call *c, const cJSON *lb_doc, const char *dflt, const char **ret)
{
	const char *p = elb_take_str(c, c->in, "Protocol");
	const char *want = strcmp(json_str(lb_doc, "Type"), "network") == 0 ? "TCP" : "HTTP";
	*ret = p ? p : dflt ? dflt : want;
	if (strcmp(*ret, "HTTP") != 0 && strcmp(*ret, "TCP") != 0)
		return elb_fail(c, "UnsupportedProtocol",
				"Listener protocol '%.20s' is not supported"
				" by Berth's load balancers (HTTP, TCP)",
				*ret);
	if (strcmp(*ret, want) != 0)
		return elb_fail(c, "IncompatibleProtocols",
				"Listener protocol '%s' is not valid on"
				" an %s load balancer (use %s)",
				*ret, json_str(lb_doc, "Type"), want);
	return 0;
}

int elb_op_create_listener(struct elb_call *c)
{
	const char *lb_arn, *proto;
	int port = 0;
	_cleanup_(cJSON_Deletep) cJSON *lb_doc = NULL;
	if (elb_need_str(c, c->in, "LoadBalancerArn", &lb_arn) < 0 ||
	    elb_take_int(c, c->in, "Port", 1, 65535, &port) < 0 ||
	    elb_load(c, ELB_LB, lb_arn, NULL, &lb_doc) < 0 ||
	    read_protocol(c, lb_doc, NULL, &proto) < 0)
		return -1;
	if (!port)
		return elb_fail(c, "ValidationError", "A listener needs a Port");
	_cleanup_(cJSON_Deletep)
		cJSON *actions = elb_read_actions(c, c->in, "DefaultActions", proto);
	_cleanup_(elb_tags_done) struct elb_tags tags = { 0 };
	if (!actions || elb_take_tags(c, &tags) < 0 || elb_check_all_read(c) < 0 ||
	    check_port(c, port, lb_arn, NULL) < 0)
		return -1;
	_cleanup_free_ char *arn = NULL, *rule_arn = NULL;
	if (elb_new_arn(c, ELB_LISTENER, NULL, lb_arn, &arn) < 0 ||
	    elb_new_arn(c, ELB_RULE, NULL, arn, &rule_arn) < 0)
		return -1;
	_cleanup_(cJSON_Deletep) cJSON *doc = cJSON_CreateObject();
	if (!doc || !json_add_number(doc, "Port", port) || !json_add_string(doc, "Protocol", proto) ||
	    !json_add_string(doc, DEFAULT_RULE, rule_arn) ||
	    !cJSON_AddItemToObject(doc, "DefaultActions", TAKE_PTR(actions)))
		return elb_fail(c, "InternalFailure", "out of memory");
	if (elb_insert(c, ELB_LISTENER, arn, NULL, lb_arn, doc) < 0 ||
	    elb_tags_create(c, &tags, arn) < 0)
		return -1;
	c->changed = true;
	struct store_elb_res r = { .arn = arn, .parent_arn = (char *)lb_arn };
	return answer_one(c, &r, doc);
}

static cJSON *listener_item(struct elb_call *c, const struct store_elb_res *r, const cJSON *doc)
{
	(void)c;
	return listener_out(r, doc);
}

int elb_op_describe_listeners(struct elb_call *c)
{
	struct elb_describe q = { .kind = ELB_LISTENER, .out = listener_item, .list = "Listeners" };
	q.parent = elb_take_str(c, c->in, "LoadBalancerArn");
	q.arns = elb_take_list(c, c->in, "ListenerArns", 20);
	if (c->code[0] || elb_take_page(c, &q.from, &q.size) < 0 || elb_check_all_read(c) < 0)
		return -1;
	if (!q.parent == !q.arns)
		return elb_fail(c, "ValidationError",
				"Either LoadBalancerArn or ListenerArns must be"
				" given (not both)");
	_cleanup_(cJSON_Deletep) cJSON *lb_doc = NULL;
	if (q.parent && elb_load(c, ELB_LB, q.parent, NULL, &lb_doc) < 0)
		return -1;
	return elb_describe(c, &q);
}

int elb_op_modify_listener(struct elb_call *c)
{
	const char *arn, *proto;
	int port = 0;
	_cleanup_(store_elb_res_freep) struct store_elb_res *r = NULL;
	_cleanup_(cJSON_Deletep) cJSON *doc = NULL, *lb_doc = NULL;
	if (elb_need_str(c, c->in, "ListenerArn", &arn) < 0 ||
	    elb_take_int(c, c->in, "Port", 1, 65535, &port) < 0 ||
	    elb_load(c, ELB_LISTENER, arn, &r, &doc) < 0 ||
	    elb_load(c, ELB_LB, r->parent_arn, NULL, &lb_doc) < 0 ||
	    read_protocol(c, lb_doc, json_str(doc, "Protocol"), &proto) < 0)
		return -1;
	cJSON *actions = NULL;
	if (cJSON_GetObjectItemCaseSensitive(c->in, "DefaultActions") &&
	    !(actions = elb_read_actions(c, c->in, "DefaultActions", proto)))
		return -1;
	if (actions)
		cJSON_ReplaceItemInObjectCaseSensitive(doc, "DefaultActions", actions);
	if (elb_check_all_read(c) < 0 || (port && check_port(c, port, r->parent_arn, arn) < 0))
		return -1;
	if (port) {
		cJSON_DeleteItemFromObjectCaseSensitive(doc, "Port");
		if (!json_add_number(doc, "Port", port))
			return elb_fail(c, "InternalFailure", "out of memory");
	}
	if (elb_save(c, arn, doc) < 0)
		return -1;
	c->changed = true;
	return answer_one(c, r, doc);
}

int elb_op_delete_listener(struct elb_call *c)
{
	const char *arn;
	_cleanup_(cJSON_Deletep) cJSON *doc = NULL;
	if (elb_need_str(c, c->in, "ListenerArn", &arn) < 0 || elb_check_all_read(c) < 0 ||
	    elb_load(c, ELB_LISTENER, arn, NULL, &doc) < 0)
		return -1;
	struct berth_err err = { 0 };
	int r = store_elb_res_delete(c->e->store, arn, &err);
	if (r < 0)
		return elb_fail_store(c, r, &err, "ListenerNotFound", NULL);
	c->changed = true;
	return 0;
}

/* The target group is used by a listener's default action or a rule. */
static int listener_uses(struct elb_call *c, const struct store_elb_res *l, const char *tg_arn,
			 bool *ret)
{
	_cleanup_(cJSON_Deletep) cJSON *doc = cJSON_Parse(l->doc_json);
	*ret = elb_actions_use(cJSON_GetObjectItemCaseSensitive(doc, "DefaultActions"), tg_arn);
	if (*ret)
		return 0;
	struct store_elb_res *rs = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	int r = store_elb_res_list(c->e->store, "rule", l->arn, &rs, &n, &err);
	if (r < 0)
		return elb_fail_store(c, r, &err, NULL, NULL);
	for (size_t i = 0; i < n && !*ret; i++) {
		_cleanup_(cJSON_Deletep) cJSON *rd = cJSON_Parse(rs[i].doc_json);
		*ret = elb_actions_use(cJSON_GetObjectItemCaseSensitive(rd, "Actions"), tg_arn);
	}
	store_elb_res_array_free(rs, n);
	return 0;
}

int elb_tg_users(struct elb_call *c, const char *tg_arn, cJSON *out)
{
	struct store_elb_res *ls = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	int r = store_elb_res_list(c->e->store, "listener", NULL, &ls, &n, &err);
	if (r < 0)
		return elb_fail_store(c, r, &err, NULL, NULL);
	for (size_t i = 0; r == 0 && i < n; i++) {
		bool uses = false;
		r = listener_uses(c, &ls[i], tg_arn, &uses);
		if (r == 0 && uses && !elb_array_has(out, ls[i].parent_arn) &&
		    !cJSON_AddItemToArray(out, cJSON_CreateString(ls[i].parent_arn)))
			r = elb_fail(c, "InternalFailure", "out of memory");
	}
	store_elb_res_array_free(ls, n);
	return r;
}

const char *elb_default_rule_arn(const cJSON *listener_doc)
{
	return json_str(listener_doc, DEFAULT_RULE);
}
