/* daemon/elb/elb: the ELBv2 service — its state, the dispatcher, errors,
 * ARNs and the resource helpers the operations share. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/time.h"
#include "daemon/elb/elb_internal.h"

struct elb_op {
	const char *name;
	elb_op_fn *fn;
	bool read; /* runs in one store snapshot */
};

static const struct elb_op ops[] = {
	{ "CreateLoadBalancer", elb_op_create_load_balancer, false },
	{ "DescribeLoadBalancers", elb_op_describe_load_balancers, true },
	{ "DeleteLoadBalancer", elb_op_delete_load_balancer, false },
	{ "CreateTargetGroup", elb_op_create_target_group, false },
	{ "DescribeTargetGroups", elb_op_describe_target_groups, true },
	{ "ModifyTargetGroup", elb_op_modify_target_group, false },
	{ "DeleteTargetGroup", elb_op_delete_target_group, false },
	{ "ModifyTargetGroupAttributes", elb_op_modify_target_group_attributes, false },
	{ "DescribeTargetGroupAttributes", elb_op_describe_target_group_attributes, true },
	{ "CreateListener", elb_op_create_listener, false },
	{ "DescribeListeners", elb_op_describe_listeners, true },
	{ "ModifyListener", elb_op_modify_listener, false },
	{ "DeleteListener", elb_op_delete_listener, false },
	{ "CreateRule", elb_op_create_rule, false },
	{ "DescribeRules", elb_op_describe_rules, true },
	{ "DeleteRule", elb_op_delete_rule, false },
	{ "RegisterTargets", elb_op_register_targets, false },
	{ "DeregisterTargets", elb_op_deregister_targets, false },
	{ "DescribeTargetHealth", elb_op_describe_target_health, true },
	{ "AddTags", elb_op_add_tags, false },
	{ "DescribeTags", elb_op_describe_tags, true },
	{ "RemoveTags", elb_op_remove_tags, false },
};

/* ---- errors ---- */

/* The model's HTTP status for CODE: 400 but for these. */
static int code_status(const char *code)
{
	if (strcmp(code, "InternalFailure") == 0 || strcmp(code, "HealthUnavailable") == 0)
		return 500;
	if (strcmp(code, "PriorRequestNotComplete") == 0)
		return 429;
	return 400;
}

int elb_fail(struct elb_call *c, const char *code, const char *fmt, ...)
{
	if (c->code[0])
		return -1; /* the first error is the one reported */
	snprintf(c->code, sizeof(c->code), "%s", code);
	c->status = code_status(code);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->message, sizeof(c->message), fmt, ap);
	va_end(ap);
	return -1;
}

int elb_fail_store(struct elb_call *c, int r, const struct berth_err *err,
		   const char *notfound_code, const char *dup_code)
{
	if (r == -ENOENT && notfound_code)
		return elb_fail(c, notfound_code, "%s", err->msg);
	if (r == -EEXIST && dup_code)
		return elb_fail(c, dup_code, "%s", err->msg);
	return elb_fail(c, "InternalFailure", "%s", err->msg);
}

/* ---- ARNs ---- */

static const char *const kind_words[] = { "loadbalancer", "targetgroup", "listener", "rule" };
static const char *const notfound_codes[] = { "LoadBalancerNotFound", "TargetGroupNotFound",
					      "ListenerNotFound", "RuleNotFound" };

const char *elb_kind_word(enum elb_kind kind)
{
	return kind_words[kind];
}

const char *elb_notfound_code(enum elb_kind kind)
{
	return notfound_codes[kind];
}

const char *elb_arn_id(const char *arn)
{
	const char *slash = strrchr(arn, '/');
	return slash ? slash + 1 : arn;
}

void elb_plane_name(const char *arn, char out[40])
{
	snprintf(out, 40, "%s-%.16s", strstr(arn, ":targetgroup/") ? "tg" : "l", elb_arn_id(arn));
}

/* "loadbalancer/app/NAME/ID" of a load balancer's or listener's ARN: the
 * part a listener's and a rule's ARNs continue. */
static const char *arn_resource(const char *arn)
{
	const char *p = strstr(arn, ":loadbalancer/");
	if (!p)
		p = strstr(arn, ":listener/");
	return p ? strchr(p, '/') + 1 : "";
}

int elb_new_arn(struct elb_call *c, enum elb_kind kind, const char *name, const char *parent,
		char **ret)
{
	unsigned char rnd[8];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return elb_fail(c, "InternalFailure", "no randomness for a new ARN");
	char id[17];
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(id + 2 * i, 3, "%02x", rnd[i]);
	char prefix[160];
	snprintf(prefix, sizeof(prefix), "arn:aws:elasticloadbalancing:%s:%s:", c->e->cfg.region,
		 c->e->cfg.account_id);
	int n = -1;
	switch (kind) {
	case ELB_LB:
		n = asprintf(ret, "%sloadbalancer/%s/%s/%s", prefix, parent, name, id);
		break;
	case ELB_TG:
		n = asprintf(ret, "%stargetgroup/%s/%s", prefix, name, id);
		break;
	case ELB_LISTENER:
		n = asprintf(ret, "%slistener/%s/%s", prefix, arn_resource(parent), id);
		break;
	case ELB_RULE:
		n = asprintf(ret, "%slistener-rule/%s/%s", prefix, arn_resource(parent), id);
		break;
	}
	return n < 0 ? elb_fail(c, "InternalFailure", "out of memory") : 0;
}

/* ---- stored resources ---- */

int elb_load(struct elb_call *c, enum elb_kind kind, const char *arn,
	     struct store_elb_res **ret_res, cJSON **ret_doc)
{
	struct berth_err err = { 0 };
	_cleanup_(store_elb_res_freep) struct store_elb_res *res = NULL;
	int r = store_elb_res_get(c->e->store, arn, &res, &err);
	if (r == -ENOENT || (r == 0 && strcmp(res->kind, kind_words[kind]) != 0))
		return elb_fail(c, notfound_codes[kind], "One or more %s not found: '%.300s'",
				kind == ELB_LB	       ? "load balancers"
				: kind == ELB_TG       ? "target groups"
				: kind == ELB_LISTENER ? "listeners"
						       : "rules",
				arn);
	if (r < 0)
		return elb_fail_store(c, r, &err, NULL, NULL);
	cJSON *doc = cJSON_Parse(res->doc_json);
	if (!doc)
		return elb_fail(c, "InternalFailure", "%s %s: stored members unreadable",
				kind_words[kind], arn);
	*ret_doc = doc;
	if (ret_res)
		*ret_res = TAKE_PTR(res);
	return 0;
}

int elb_save(struct elb_call *c, const char *arn, const cJSON *doc)
{
	_cleanup_free_ char *s = cJSON_PrintUnformatted(doc);
	if (!s)
		return elb_fail(c, "InternalFailure", "out of memory");
	struct berth_err err = { 0 };
	int r = store_elb_res_update(c->e->store, arn, s, &err);
	return r < 0 ? elb_fail_store(c, r, &err, NULL, NULL) : 0;
}

/* ---- the service ---- */

int elb_new(struct event_base *base, struct store *store, const struct elb_config *cfg,
	    struct elb **ret, struct berth_err *err)
{
	_cleanup_(elb_freep) struct elb *e = calloc(1, sizeof(*e));
	if (!e)
		return berth_errf(err, ENOMEM, "load balancers: out of memory");
	e->base = base;
	e->store = store;
	e->cfg = *cfg;
	char host[256] = "localhost";
	if (!cfg->dns_name)
		gethostname(host, sizeof(host) - 1);
	e->dns_name = strdup(cfg->dns_name ? cfg->dns_name : host);
	if (!e->dns_name)
		return berth_errf(err, ENOMEM, "load balancers: out of memory");
	/* A stored listener whose port another program took meanwhile must
	 * not keep the daemon (and its tasks) down: said, and served as
	 * soon as a change applies. */
	struct berth_err plane_err = { 0 };
	if (elb_plane_apply(e, &plane_err) < 0 && cfg->log)
		fprintf(cfg->log, "berth daemon: load balancers: re-applying the stored state: %s\n",
			plane_err.msg);
	elb_drain_arm(e);
	*ret = TAKE_PTR(e);
	return 0;
}

void elb_free(struct elb *e)
{
	if (!e)
		return;
	if (e->drain_timer)
		event_free(e->drain_timer);
	free(e->dns_name);
	free(e);
}

static const struct elb_op *find_op(const char *name)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(ops); i++)
		if (strcmp(ops[i].name, name) == 0)
			return &ops[i];
	return NULL;
}

/* Action and Version, checked and taken out of the form. */
static const struct elb_op *envelope(struct elb_call *c)
{
	const char *action = elb_take_str(c, c->in, "Action");
	const char *version = elb_take_str(c, c->in, "Version");
	if (!action || !*action) {
		elb_fail(c, "MissingAction", "The request must name an Action");
		return NULL;
	}
	const struct elb_op *op = find_op(action);
	if (!op) {
		elb_fail(c, "InvalidAction",
			 "Could not find operation %.100s for version " ELB_VERSION
			 " (Berth's load balancers support a subset: "
			 "docs/load-balancing.md)",
			 action);
		return NULL;
	}
	if (!version || !*version) {
		elb_fail(c, "MissingParameter", "The request must contain the parameter Version");
		return NULL;
	}
	if (strcmp(version, ELB_VERSION) != 0) {
		elb_fail(c, "InvalidAction",
			 "Could not find operation %s for version %.40s"
			 " (only " ELB_VERSION ")",
			 action, version);
		return NULL;
	}
	return op;
}

/* A change and its data plane update are one transaction: a listener
 * HAProxy cannot bind (its port taken by some other program) is refused
 * and the store keeps the state that is still served. */
static int txn_op(struct store *s, void *arg, struct berth_err *err)
{
	(void)s;
	struct elb_call *c = arg;
	const struct elb_op *op = c->op;
	if (op->fn(c) < 0)
		return berth_errf(err, EINVAL, "%s", c->message);
	if (!c->changed)
		return 0;
	int r = elb_plane_apply(c->e, err);
	if (r == -EADDRINUSE)
		return elb_fail(c, "DuplicateListener", "%s", err->msg), r;
	if (r < 0)
		return elb_fail(c, "InternalFailure", "the load balancers' data plane: %s",
				err->msg),
		       r;
	return 0;
}

static int run_op(struct elb_call *c, const struct elb_op *op)
{
	struct berth_err err = { 0 };
	c->op = op;
	if (!op->read) {
		int r = store_txn(c->e->store, txn_op, c, &err);
		if (r < 0 && !c->code[0])
			return elb_fail(c, "InternalFailure", "%s", err.msg);
		if (r == 0)
			elb_drain_arm(c->e);
		return r;
	}
	if (store_read_begin(c->e->store, &err) < 0)
		return elb_fail(c, "InternalFailure", "%s", err.msg);
	int r = op->fn(c);
	store_read_end(c->e->store);
	return r;
}

void elb_serve(struct elb *e, const char *body, size_t len, const char *request_id, int *ret_status,
	       char **ret_body)
{
	struct elb_call c = { .e = e, .now_ms = berth_real_ms() };
	char msg[256];
	c.spent = cJSON_CreateArray();
	c.out = cJSON_CreateObject();
	const struct elb_op *op = NULL;
	if (!c.spent || !c.out)
		elb_fail(&c, "InternalFailure", "out of memory");
	else if (elb_query_parse(body, len, &c.in, msg, sizeof(msg)) < 0)
		elb_fail(&c, "ValidationError", "%s", msg);
	else if ((op = envelope(&c)) != NULL)
		run_op(&c, op);
	if (c.code[0]) {
		*ret_status = c.status;
		*ret_body = elb_error_xml(c.code, c.message, request_id);
	} else {
		*ret_status = 200;
		*ret_body = elb_answer_xml(op->name, c.out, request_id);
	}
	cJSON_Delete(c.in);
	cJSON_Delete(c.spent);
	cJSON_Delete(c.out);
}

/* ---- helpers of several operations ---- */

int elb_check_name(struct elb_call *c, const char *what, const char *name)
{
	size_t n = strlen(name);
	bool ok = n >= 1 && n <= ELB_NAME_MAX && name[0] != '-' && name[n - 1] != '-';
	for (size_t i = 0; ok && i < n; i++)
		ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
		     (name[i] >= '0' && name[i] <= '9') || name[i] == '-';
	if (!ok)
		return elb_fail(c, "ValidationError",
				"%s name '%.64s' must have 1 to 32 characters:"
				" letters, digits and hyphens, not starting or ending with a "
				"hyphen",
				what, name);
	if (strncmp(name, "internal-", 9) == 0)
		return elb_fail(c, "ValidationError", "%s name '%s' cannot begin with 'internal-'",
				what, name);
	return 0;
}

#define PAGE_MAX 400

int elb_take_page(struct elb_call *c, int *ret_from, int *ret_size)
{
	*ret_from = 0;
	*ret_size = PAGE_MAX;
	if (elb_take_int(c, c->in, "PageSize", 1, PAGE_MAX, ret_size) < 0)
		return -1;
	const char *marker = elb_take_str(c, c->in, "Marker");
	if (!marker)
		return 0;
	char *end;
	long v = 0;
	if (strncmp(marker, "berth-", 6) != 0 || (v = strtol(marker + 6, &end, 10)) < 1 || *end ||
	    v > 1000000)
		return elb_fail(c, "ValidationError",
				"Marker '%.64s' was not handed out by this API", marker);
	*ret_from = (int)v;
	return 0;
}

int elb_put_page(struct elb_call *c, const char *list, cJSON *items, int from, int size)
{
	_cleanup_(cJSON_Deletep) cJSON *all = items;
	cJSON *page = cJSON_AddArrayToObject(c->out, list);
	if (!all || !page)
		return elb_fail(c, "InternalFailure", "out of memory");
	int n = cJSON_GetArraySize(all);
	for (int i = 0; i < size && from < cJSON_GetArraySize(all); i++)
		cJSON_AddItemToArray(page, cJSON_DetachItemFromArray(all, from));
	if (from + size < n) {
		char marker[32];
		snprintf(marker, sizeof(marker), "berth-%d", from + size);
		if (!json_add_string(c->out, "NextMarker", marker))
			return elb_fail(c, "InternalFailure", "out of memory");
	}
	return 0;
}

/* ELB's default quotas, per region there and per host here: a bound on
 * what one client can make the daemon hold and hand to HAProxy. */
#define LOAD_BALANCERS_MAX 50
#define TARGET_GROUPS_MAX 3000

static int check_quota(struct elb_call *c, enum elb_kind kind)
{
	int max = kind == ELB_LB ? LOAD_BALANCERS_MAX : kind == ELB_TG ? TARGET_GROUPS_MAX : 0;
	if (!max)
		return 0; /* listeners and rules have theirs per parent */
	struct store_elb_res *rs = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	int r = store_elb_res_list(c->e->store, kind_words[kind], NULL, &rs, &n, &err);
	store_elb_res_array_free(rs, n);
	if (r < 0)
		return elb_fail_store(c, r, &err, NULL, NULL);
	if (n >= (size_t)max)
		return elb_fail(c, kind == ELB_LB ? "TooManyLoadBalancers" : "TooManyTargetGroups",
				"There are %zu %s already: at most %d", n,
				kind == ELB_LB ? "load balancers" : "target groups", max);
	return 0;
}

int elb_insert(struct elb_call *c, enum elb_kind kind, const char *arn, const char *name,
	       const char *parent, const cJSON *doc)
{
	if (check_quota(c, kind) < 0)
		return -1;
	_cleanup_free_ char *s = cJSON_PrintUnformatted(doc);
	if (!s)
		return elb_fail(c, "InternalFailure", "out of memory");
	struct store_elb_res r = {
		.arn = (char *)arn,
		.kind = (char *)kind_words[kind],
		.name = (char *)name,
		.parent_arn = (char *)parent,
		.created_at = c->now_ms,
		.doc_json = s,
	};
	struct berth_err err = { 0 };
	int res = store_elb_res_insert(c->e->store, &r, &err);
	if (res == -EEXIST)
		return elb_fail(c,
				kind == ELB_LB ? "DuplicateLoadBalancerName"
					       : "DuplicateTargetGroupName",
				"A %s with the name '%s' already exists",
				kind == ELB_LB ? "load balancer" : "target group", name);
	return res < 0 ? elb_fail_store(c, res, &err, NULL, NULL) : 0;
}

int elb_describe(struct elb_call *c, const struct elb_describe *q)
{
	struct store_elb_res *rs = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	int r = store_elb_res_list(c->e->store, kind_words[q->kind], q->parent, &rs, &n, &err);
	if (r < 0)
		return elb_fail_store(c, r, &err, NULL, NULL);
	cJSON *items = cJSON_CreateArray();
	r = items ? elb_check_found(c, q->kind, rs, n, q->arns, q->names)
		  : elb_fail(c, "InternalFailure", "out of memory");
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (!elb_wanted(&rs[i], q->arns, q->names))
			continue;
		_cleanup_(cJSON_Deletep) cJSON *doc = cJSON_Parse(rs[i].doc_json);
		cJSON *o = doc ? q->out(c, &rs[i], doc) : NULL;
		if (o && q->keep && !q->keep(c, o, q->arg)) {
			cJSON_Delete(o);
			continue;
		}
		if (!o || !cJSON_AddItemToArray(items, o))
			r = elb_fail(c, "InternalFailure", "%s %s: unreadable", kind_words[q->kind],
				     rs[i].arn);
	}
	store_elb_res_array_free(rs, n);
	if (r < 0) {
		cJSON_Delete(items);
		return -1;
	}
	return elb_put_page(c, q->list, items, q->from, q->size);
}
