/* daemon/elb/elb_state: the stored state in the data plane's terms
 * (daemon/lb/lb.h's struct lb_state), built whole from the store.
 *
 * Names: a target group is "tg-<id>", a listener "l-<id>" (the ARNs' last
 * component), stable across restarts.  An instance target is this host,
 * 127.0.0.1; a target whose drain has ended (not yet purged) is left out.
 * Every string the state points to lives in the struct elb_state. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/elb/elb_internal.h"
#include "daemon/elb/elb_state.h"

/* Everything the state borrows, freed together. */
struct elb_state {
	struct lb_state st;
	struct store_elb_res *tgs, *ls;
	size_t n_tgs, n_ls;
	struct store_elb_target *ts;
	size_t n_ts;
	cJSON *docs; /* parsed JSON of every resource, kept alive */
	struct lb_group *groups;
	struct lb_target *targets;
	struct lb_listener *listeners;
	struct lb_rule *rules;
	struct lb_forward *forwards;
	const char **values;
	char (*names)[40]; /* group and listener names */
	size_t n_rules, n_forwards, n_values, n_names;
};

void elb_state_free(struct elb_state *p)
{
	if (!p)
		return;
	store_elb_res_array_free(p->tgs, p->n_tgs);
	store_elb_res_array_free(p->ls, p->n_ls);
	store_elb_targets_free(p->ts, p->n_ts);
	cJSON_Delete(p->docs);
	free(p->groups);
	free(p->targets);
	free(p->listeners);
	free(p->rules);
	free(p->forwards);
	free(p->values);
	free(p->names);
	free(p);
}

static const char *name_of(struct elb_state *p, const char *arn)
{
	elb_plane_name(arn, p->names[p->n_names]);
	return p->names[p->n_names++];
}

static cJSON *keep(struct elb_state *p, const char *json)
{
	cJSON *doc = cJSON_Parse(json);
	if (doc)
		cJSON_AddItemToArray(p->docs, doc);
	return doc;
}

static enum lb_proto proto_of(const cJSON *doc, const char *member)
{
	const char *s = json_str(doc, member);
	return s && strcmp(s, "TCP") == 0 ? LB_TCP : LB_HTTP;
}

static int fill_groups(struct elb_state *p, int64_t now, struct berth_err *err)
{
	size_t t = 0;
	for (size_t i = 0; i < p->n_tgs; i++) {
		cJSON *doc = keep(p, p->tgs[i].doc_json);
		if (!doc)
			return berth_errf(err, EBADMSG, "target group %s: stored members unreadable",
					  p->tgs[i].arn);
		const char *hc_port = json_str(doc, "HealthCheckPort");
		bool ip = strcmp(json_str(doc, "TargetType"), "ip") == 0;
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "Matcher");
		int slow = elb_tg_attribute(doc, "slow_start.duration_seconds");
		p->groups[i] = (struct lb_group){
			.name = name_of(p, p->tgs[i].arn),
			.proto = proto_of(doc, "Protocol"),
			.hc = {
				.proto = proto_of(doc, "HealthCheckProtocol"),
				.path = json_str(doc, "HealthCheckPath"),
				.port = strcmp(hc_port, "traffic-port") == 0 ? 0 : atoi(hc_port),
				.interval_s = (int)json_int(doc, "HealthCheckIntervalSeconds", 30),
				.timeout_s = (int)json_int(doc, "HealthCheckTimeoutSeconds", 5),
				.healthy_threshold = (int)json_int(doc, "HealthyThresholdCount", 5),
				.unhealthy_threshold = (int)json_int(doc, "UnhealthyThresholdCount", 2),
				.matcher = json_str(m, "HttpCode"),
			},
			.slow_start_s = slow,
			.targets = &p->targets[t],
		};
		for (size_t j = 0; j < p->n_ts; j++) {
			const struct store_elb_target *st = &p->ts[j];
			if (strcmp(st->target_group_arn, p->tgs[i].arn) != 0 ||
			    (st->drain_until && st->drain_until <= now))
				continue;
			p->targets[t++] = (struct lb_target){
				.addr = ip ? st->id : ELB_INSTANCE_ADDR,
				.port = st->port,
				.weight = 1,
				.draining = st->drain_until != 0,
			};
			p->groups[i].n_targets++;
		}
	}
	return 0;
}

/* Stored ACTIONS (one) as an lb_action; its forwards appended to P's. */
static int fill_action(struct elb_state *p, const cJSON *actions, struct lb_action *ret)
{
	const cJSON *a = cJSON_GetArrayItem(actions, 0);
	const char *type = json_str(a, "Type");
	if (type && strcmp(type, "fixed-response") == 0) {
		const cJSON *f = cJSON_GetObjectItemCaseSensitive(a, "FixedResponseConfig");
		*ret = (struct lb_action){
			.kind = LB_ACTION_FIXED,
			.status = atoi(json_str(f, "StatusCode")),
			.content_type = json_str(f, "ContentType"),
			.body = json_str(f, "MessageBody"),
		};
		return 0;
	}
	*ret = (struct lb_action){ .kind = LB_ACTION_FORWARD,
				   .forward = &p->forwards[p->n_forwards] };
	const cJSON *g;
	cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(
				      cJSON_GetObjectItemCaseSensitive(a, "ForwardConfig"),
				      "TargetGroups")) {
		p->forwards[p->n_forwards++] = (struct lb_forward){
			.group = name_of(p, json_str(g, "TargetGroupArn")),
			.weight = (int)json_int(g, "Weight", 1),
		};
		ret->n_forward++;
	}
	return 0;
}

/* A rule's condition values, appended to P's. */
static const char *const *fill_values(struct elb_state *p, const cJSON *conds, const char *field,
				      size_t *ret_n)
{
	const char *const *start = &p->values[p->n_values];
	*ret_n = 0;
	const cJSON *c, *v;
	cJSON_ArrayForEach(c, conds) {
		if (strcmp(json_str(c, "Field"), field) != 0)
			continue;
		cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(c, "Values")) {
			p->values[p->n_values++] = v->valuestring;
			(*ret_n)++;
		}
	}
	return start;
}

static int fill_listener(struct elb_state *p, struct store *s, size_t i, struct berth_err *err)
{
	cJSON *doc = keep(p, p->ls[i].doc_json);
	if (!doc)
		return berth_errf(err, EBADMSG, "listener %s: stored members unreadable",
				  p->ls[i].arn);
	struct lb_listener *l = &p->listeners[i];
	*l = (struct lb_listener){
		.name = name_of(p, p->ls[i].arn),
		.port = (int)json_int(doc, "Port", 0),
		.proto = proto_of(doc, "Protocol"),
		.rules = &p->rules[p->n_rules],
	};
	fill_action(p, cJSON_GetObjectItemCaseSensitive(doc, "DefaultActions"), &l->default_action);
	struct store_elb_res *rs = NULL;
	size_t n = 0;
	int r = store_elb_res_list(s, "rule", p->ls[i].arn, &rs, &n, err);
	if (r < 0)
		return r;
	for (size_t j = 0; j < n && r == 0; j++) {
		cJSON *rd = keep(p, rs[j].doc_json);
		if (!rd) {
			r = berth_errf(err, EBADMSG, "rule %s: stored members unreadable",
				       rs[j].arn);
			break;
		}
		struct lb_rule *rule = &p->rules[p->n_rules++];
		const cJSON *conds = cJSON_GetObjectItemCaseSensitive(rd, "Conditions");
		*rule = (struct lb_rule){ .priority = atoi(json_str(rd, "Priority")) };
		rule->paths = fill_values(p, conds, "path-pattern", &rule->n_paths);
		rule->hosts = fill_values(p, conds, "host-header", &rule->n_hosts);
		fill_action(p, cJSON_GetObjectItemCaseSensitive(rd, "Actions"), &rule->action);
		l->n_rules++;
	}
	store_elb_res_array_free(rs, n);
	return r;
}

/* Upper bounds of what the state can hold, for one allocation each:
 * every listener's rules are at most 100, with 5 conditions of 5 values
 * and 5 forwards. */
static int plane_alloc(struct elb_state *p)
{
	size_t rules = p->n_ls * 100, names = p->n_tgs + p->n_ls + (p->n_ls + rules) * 5;
	p->docs = cJSON_CreateArray();
	p->groups = calloc(p->n_tgs + 1, sizeof(*p->groups));
	p->targets = calloc(p->n_ts + 1, sizeof(*p->targets));
	p->listeners = calloc(p->n_ls + 1, sizeof(*p->listeners));
	p->rules = calloc(rules + 1, sizeof(*p->rules));
	p->forwards = calloc((p->n_ls + rules) * 5 + 1, sizeof(*p->forwards));
	p->values = calloc(rules * 25 + 1, sizeof(*p->values));
	p->names = calloc(names + 1, sizeof(*p->names));
	return p->docs && p->groups && p->targets && p->listeners && p->rules && p->forwards &&
			       p->values && p->names
		       ? 0
		       : -ENOMEM;
}

static int state_fill(struct elb_state *p, struct store *s, int64_t now, struct berth_err *err)
{
	int r = store_elb_res_list(s, "targetgroup", NULL, &p->tgs, &p->n_tgs, err);
	if (r == 0)
		r = store_elb_res_list(s, "listener", NULL, &p->ls, &p->n_ls, err);
	if (r == 0)
		r = store_elb_target_list(s, NULL, &p->ts, &p->n_ts, err);
	if (r < 0)
		return r;
	if (plane_alloc(p) < 0)
		return berth_errf(err, ENOMEM, "out of memory");
	r = fill_groups(p, now, err);
	for (size_t i = 0; r == 0 && i < p->n_ls; i++)
		r = fill_listener(p, s, i, err);
	return r;
}

int elb_state_build(struct store *s, int64_t now, struct elb_state **ret, struct berth_err *err)
{
	struct elb_state *p = calloc(1, sizeof(*p));
	if (!p)
		return berth_errf(err, ENOMEM, "out of memory");
	int r = state_fill(p, s, now, err);
	if (r < 0) {
		elb_state_free(p);
		return r;
	}
	p->st = (struct lb_state){
		.listeners = p->listeners,
		.n_listeners = p->n_ls,
		.groups = p->groups,
		.n_groups = p->n_tgs,
	};
	*ret = p;
	return 0;
}

const struct lb_state *elb_state_get(const struct elb_state *p)
{
	return &p->st;
}
