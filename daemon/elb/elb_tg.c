/* daemon/elb/elb_tg: target groups — Create/Describe/Modify/Delete and
 * their attributes.  Protocols HTTP and TCP, target types ip and instance
 * (an instance target is this host: its traffic goes to 127.0.0.1, where
 * bridge-mode tasks publish their ports). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/elb/elb_internal.h"

#define ATTRS "Attributes" /* the stored attributes; not a member of the answer */
#define ATTR_DELAY "deregistration_delay.timeout_seconds"
#define ATTR_SLOW "slow_start.duration_seconds"

/* "200", "200-299", "200,302": codes 200..499. */
static bool matcher_ok(const char *m)
{
	size_t n = strlen(m);
	if (!n || n > 64)
		return false;
	for (const char *p = m; *p;) {
		char *end;
		long lo = strtol(p, &end, 10), hi = lo;
		if (end == p || lo < 200 || lo > 499)
			return false;
		if (*end == '-') {
			p = end + 1;
			hi = strtol(p, &end, 10);
			if (end == p || hi < lo || hi > 499)
				return false;
		}
		if (*end && *end != ',')
			return false;
		p = *end ? end + 1 : end;
	}
	return true;
}

static bool hc_port_ok(const char *p)
{
	if (strcmp(p, "traffic-port") == 0)
		return true;
	char *end;
	long v = strtol(p, &end, 10);
	return *p && !*end && v >= 1 && v <= 65535;
}

static int set_int(struct elb_call *c, cJSON *doc, const char *name, int v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(doc, name);
	return json_add_number(doc, name, v) ? 0 : elb_fail(c, "InternalFailure", "out of memory");
}

static int set_str(struct elb_call *c, cJSON *doc, const char *name, const char *v)
{
	return json_set_str(doc, name, v) ? 0 : elb_fail(c, "InternalFailure", "out of memory");
}

/* The health-check members of a Create or Modify, onto DOC (which holds
 * the defaults or the current values), then checked together. */
static int read_health_check(struct elb_call *c, cJSON *doc)
{
	static const struct {
		const char *name;
		int lo, hi;
	} ints[] = {
		{ "HealthCheckIntervalSeconds", 5, 300 },
		{ "HealthCheckTimeoutSeconds", 2, 120 },
		{ "HealthyThresholdCount", 2, 10 },
		{ "UnhealthyThresholdCount", 2, 10 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(ints); i++) {
		int v;
		int r = elb_take_int(c, c->in, ints[i].name, ints[i].lo, ints[i].hi, &v);
		if (r < 0 || (r > 0 && set_int(c, doc, ints[i].name, v) < 0))
			return -1;
	}
	bool enabled = true;
	if (elb_take_bool(c, c->in, "HealthCheckEnabled", &enabled) < 0)
		return -1;
	if (!enabled)
		return elb_fail(c, "ValidationError",
				"HealthCheckEnabled false is not supported:"
				" Berth's load balancers always check their targets");
	const char *proto = elb_take_str(c, c->in, "HealthCheckProtocol");
	if (proto && strcmp(proto, "HTTP") != 0 && strcmp(proto, "TCP") != 0)
		return elb_fail(c, "ValidationError",
				"Health check protocol '%.20s' is not supported"
				" (HTTP or TCP)",
				proto);
	if (proto && strcmp(proto, "TCP") == 0 && strcmp(json_str(doc, "Protocol"), "HTTP") == 0)
		return elb_fail(c, "ValidationError",
				"Health check protocol TCP is not supported for"
				" target groups with protocol HTTP (an application load balancer "
				"checks"
				" over HTTP)");
	if (proto && set_str(c, doc, "HealthCheckProtocol", proto) < 0)
		return -1;
	const char *port = elb_take_str(c, c->in, "HealthCheckPort");
	if (port && !hc_port_ok(port))
		return elb_fail(c, "ValidationError",
				"Health check port '%.20s' must be"
				" 'traffic-port' or a port from 1 to 65535",
				port);
	if (port && set_str(c, doc, "HealthCheckPort", port) < 0)
		return -1;
	bool http = strcmp(json_str(doc, "HealthCheckProtocol"), "HTTP") == 0;
	const char *path = elb_take_str(c, c->in, "HealthCheckPath");
	if (path && (!http || path[0] != '/' || strlen(path) > 1024 || strpbrk(path, " \"<>\\")))
		return elb_fail(c, "ValidationError",
				http ? "Health check path '%.100s' must start"
				       " with '/' and have at most 1024 characters, no spaces"
				     : "A health check path is only valid with protocol HTTP (got "
				       "'%.100s')",
				path);
	cJSON *matcher = elb_take_obj(c, c->in, "Matcher");
	const char *code = matcher ? elb_take_str(c, matcher, "HttpCode") : NULL;
	if (matcher && (!code || !http || !matcher_ok(code)))
		return elb_fail(c, "ValidationError",
				"Matcher HttpCode '%.64s' must be HTTP codes"
				" from 200 to 499 ('200', '200-299' or '200,302'), with an HTTP "
				"health"
				" check",
				code ? code : "");
	if (http) {
		/* The new value, or the default when there is none yet (never
		 * the old one re-set: json_set_str frees it first). */
		if ((path || !json_str(doc, "HealthCheckPath")) &&
		    set_str(c, doc, "HealthCheckPath", path ? path : "/") < 0)
			return -1;
		cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "Matcher");
		if (!m && !(m = cJSON_AddObjectToObject(doc, "Matcher")))
			return elb_fail(c, "InternalFailure", "out of memory");
		if ((code || !json_str(m, "HttpCode")) &&
		    set_str(c, m, "HttpCode", code ? code : "200") < 0)
			return -1;
	} else {
		cJSON_DeleteItemFromObjectCaseSensitive(doc, "HealthCheckPath");
		cJSON_DeleteItemFromObjectCaseSensitive(doc, "Matcher");
	}
	/* As ELB: an HTTP check's timeout is below its interval, a TCP one's
	 * (default 10 s) at most its interval. */
	int timeout = (int)json_int(doc, "HealthCheckTimeoutSeconds", 0);
	int interval = (int)json_int(doc, "HealthCheckIntervalSeconds", 0);
	if (http ? timeout >= interval : timeout > interval)
		return elb_fail(c, "ValidationError",
				"Health check timeout (%d s) must be %s the"
				" interval (%d s)",
				timeout, http ? "smaller than" : "at most", interval);
	return 0;
}

/* ELB's defaults for PROTO (ALB's for HTTP, NLB's for TCP). */
static cJSON *defaults(const char *proto, int port, const char *type)
{
	bool http = strcmp(proto, "HTTP") == 0;
	cJSON *d = cJSON_CreateObject();
	cJSON *a = d ? cJSON_AddObjectToObject(d, ATTRS) : NULL;
	if (!a || !json_add_string(d, "Protocol", proto) || !json_add_number(d, "Port", port) ||
	    !json_add_string(d, "HealthCheckProtocol", proto) ||
	    !json_add_string(d, "HealthCheckPort", "traffic-port") ||
	    !cJSON_AddTrueToObject(d, "HealthCheckEnabled") ||
	    !json_add_number(d, "HealthCheckIntervalSeconds", 30) ||
	    !json_add_number(d, "HealthCheckTimeoutSeconds", http ? 5 : 10) ||
	    !json_add_number(d, "HealthyThresholdCount", 5) ||
	    !json_add_number(d, "UnhealthyThresholdCount", 2) ||
	    !json_add_string(d, "TargetType", type) || !json_add_string(d, "IpAddressType", "ipv4") ||
	    (http && !json_add_string(d, "ProtocolVersion", "HTTP1")) ||
	    !json_add_string(a, ATTR_DELAY, "300") || !json_add_string(a, ATTR_SLOW, "0")) {
		cJSON_Delete(d);
		return NULL;
	}
	return d;
}

/* The answer's form of a target group. */
static cJSON *tg_out(struct elb_call *c, const struct store_elb_res *r, const cJSON *doc)
{
	cJSON *o = cJSON_Duplicate(doc, true);
	if (!o)
		return NULL;
	cJSON_DeleteItemFromObjectCaseSensitive(o, ATTRS);
	cJSON *lbs = cJSON_CreateArray();
	if (!lbs || !json_add_string(o, "TargetGroupArn", r->arn) ||
	    !json_add_string(o, "TargetGroupName", r->name) || elb_tg_users(c, r->arn, lbs) < 0 ||
	    !cJSON_AddItemToObject(o, "LoadBalancerArns", lbs)) {
		cJSON_Delete(lbs);
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static int answer_one(struct elb_call *c, const struct store_elb_res *r, const cJSON *doc)
{
	cJSON *list = cJSON_AddArrayToObject(c->out, "TargetGroups");
	cJSON *o = list ? tg_out(c, r, doc) : NULL;
	if (!o || !cJSON_AddItemToArray(list, o)) {
		cJSON_Delete(o);
		return elb_fail(c, "InternalFailure", "target group %s: out of memory", r->arn);
	}
	return 0;
}

static int read_create(struct elb_call *c, const char **name, cJSON **ret)
{
	if (elb_need_str(c, c->in, "Name", name) < 0 || elb_check_name(c, "Target group", *name) < 0)
		return -1;
	const char *proto = elb_take_str(c, c->in, "Protocol");
	const char *type = elb_take_str(c, c->in, "TargetType");
	int port = 0;
	if (elb_take_int(c, c->in, "Port", 1, 65535, &port) < 0)
		return -1;
	type = type ? type : "instance";
	if (strcmp(type, "ip") != 0 && strcmp(type, "instance") != 0)
		return elb_fail(c, "ValidationError",
				"Target type '%.20s' is not supported by Berth"
				" (ip or instance)",
				type);
	if (!proto || !port)
		return elb_fail(c, "ValidationError",
				"A protocol and a port must be specified for"
				" target type '%s'",
				type);
	if (strcmp(proto, "HTTP") != 0 && strcmp(proto, "TCP") != 0)
		return elb_fail(c, "ValidationError",
				"Target group protocol '%.20s' is not supported"
				" by Berth (HTTP or TCP)",
				proto);
	const char *version = elb_take_str(c, c->in, "ProtocolVersion");
	if (version && (strcmp(proto, "HTTP") != 0 || strcmp(version, "HTTP1") != 0))
		return elb_fail(c, "ValidationError",
				"Protocol version '%.20s' is not supported"
				" (HTTP1, with protocol HTTP)",
				version);
	const char *ip_type = elb_take_str(c, c->in, "IpAddressType");
	if (ip_type && strcmp(ip_type, "ipv4") != 0)
		return elb_fail(c, "ValidationError",
				"IP address type '%.20s' is not supported (ipv4)", ip_type);
	_cleanup_(cJSON_Deletep) cJSON *doc = defaults(proto, port, type);
	if (!doc)
		return elb_fail(c, "InternalFailure", "out of memory");
	const char *vpc = elb_take_str(c, c->in, "VpcId");
	if ((vpc && set_str(c, doc, "VpcId", vpc) < 0) || read_health_check(c, doc) < 0)
		return -1;
	*ret = TAKE_PTR(doc);
	return 0;
}

int elb_op_create_target_group(struct elb_call *c)
{
	const char *name;
	_cleanup_(cJSON_Deletep) cJSON *doc = NULL;
	if (read_create(c, &name, &doc) < 0)
		return -1;
	_cleanup_(elb_tags_done) struct elb_tags tags = { 0 };
	if (elb_take_tags(c, &tags) < 0 || elb_check_all_read(c) < 0)
		return -1;
	_cleanup_free_ char *arn = NULL;
	if (elb_new_arn(c, ELB_TG, name, NULL, &arn) < 0 ||
	    elb_insert(c, ELB_TG, arn, name, NULL, doc) < 0 || elb_tags_create(c, &tags, arn) < 0)
		return -1;
	struct store_elb_res r = { .arn = arn, .name = (char *)name };
	return answer_one(c, &r, doc);
}

/* DescribeTargetGroups' LoadBalancerArn: the groups that load balancer uses. */
static bool used_by(struct elb_call *c, const cJSON *item, const void *lb)
{
	(void)c;
	return elb_array_has(cJSON_GetObjectItemCaseSensitive(item, "LoadBalancerArns"), lb);
}

int elb_op_describe_target_groups(struct elb_call *c)
{
	struct elb_describe q = { .kind = ELB_TG, .out = tg_out, .list = "TargetGroups" };
	const char *lb = elb_take_str(c, c->in, "LoadBalancerArn");
	q.arns = elb_take_list(c, c->in, "TargetGroupArns", 20);
	q.names = elb_take_list(c, c->in, "Names", 20);
	if (c->code[0] || elb_take_page(c, &q.from, &q.size) < 0 || elb_check_all_read(c) < 0)
		return -1;
	if (!!lb + !!q.arns + !!q.names > 1)
		return elb_fail(c, "ValidationError",
				"LoadBalancerArn, TargetGroupArns and Names"
				" cannot be used together");
	_cleanup_(cJSON_Deletep) cJSON *lb_doc = NULL;
	if (lb && elb_load(c, ELB_LB, lb, NULL, &lb_doc) < 0)
		return -1;
	if (lb) {
		q.keep = used_by;
		q.arg = lb;
	}
	return elb_describe(c, &q);
}

int elb_op_modify_target_group(struct elb_call *c)
{
	const char *arn;
	if (elb_need_str(c, c->in, "TargetGroupArn", &arn) < 0)
		return -1;
	_cleanup_(store_elb_res_freep) struct store_elb_res *r = NULL;
	_cleanup_(cJSON_Deletep) cJSON *doc = NULL;
	if (elb_load(c, ELB_TG, arn, &r, &doc) < 0 || read_health_check(c, doc) < 0 ||
	    elb_check_all_read(c) < 0 || elb_save(c, arn, doc) < 0)
		return -1;
	c->changed = true;
	return answer_one(c, r, doc);
}

int elb_op_delete_target_group(struct elb_call *c)
{
	const char *arn;
	if (elb_need_str(c, c->in, "TargetGroupArn", &arn) < 0 || elb_check_all_read(c) < 0)
		return -1;
	if (!strstr(arn, ":targetgroup/"))
		return elb_fail(c, "ValidationError", "'%.300s' is not a target group ARN", arn);
	_cleanup_(cJSON_Deletep) cJSON *users = cJSON_CreateArray();
	if (!users || elb_tg_users(c, arn, users) < 0)
		return elb_fail(c, "InternalFailure", "out of memory");
	if (cJSON_GetArraySize(users))
		return elb_fail(c, "ResourceInUse",
				"Target group '%s' is currently in use by a"
				" listener or a rule",
				arn);
	struct berth_err err = { 0 };
	int r = store_elb_res_delete(c->e->store, arn, &err);
	if (r < 0 && r != -ENOENT) /* as ELB: one that is gone already is fine */
		return elb_fail_store(c, r, &err, NULL, NULL);
	c->changed = r == 0;
	return 0;
}

/* ---- attributes ---- */

static int answer_attributes(struct elb_call *c, const cJSON *doc)
{
	cJSON *list = json_add_array(c->out, "Attributes");
	const cJSON *a;
	cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(doc, ATTRS)) {
		cJSON *o = list ? json_add_object(list) : NULL;
		if (!o || !json_add_string(o, "Key", a->string) ||
		    !json_add_string(o, "Value", a->valuestring))
			return elb_fail(c, "InternalFailure", "out of memory");
	}
	return list ? 0 : elb_fail(c, "InternalFailure", "out of memory");
}

static int set_attribute(struct elb_call *c, cJSON *attrs, const char *key, const char *value)
{
	char *end;
	long v = strtol(value, &end, 10);
	bool num = *value && !*end;
	if (strcmp(key, ATTR_DELAY) == 0) {
		if (!num || v < 0 || v > 3600)
			return elb_fail(c, "ValidationError",
					"Attribute '%s' must be from 0 to 3600"
					" (got '%.20s')",
					key, value);
	} else if (strcmp(key, ATTR_SLOW) == 0) {
		if (!num || (v != 0 && (v < 30 || v > 900)))
			return elb_fail(c, "ValidationError",
					"Attribute '%s' must be 0 or from 30 to"
					" 900 (got '%.20s')",
					key, value);
	} else {
		return elb_fail(c, "ValidationError",
				"Target group attribute key '%.100s' is not"
				" recognized (Berth supports " ATTR_DELAY " and " ATTR_SLOW ")",
				key);
	}
	char canon[16];
	snprintf(canon, sizeof(canon), "%ld", v);
	return set_str(c, attrs, key, canon);
}

int elb_op_modify_target_group_attributes(struct elb_call *c)
{
	const char *arn;
	if (elb_need_str(c, c->in, "TargetGroupArn", &arn) < 0)
		return -1;
	cJSON *list = elb_take_list(c, c->in, "Attributes", 20);
	if (c->code[0])
		return -1;
	if (!list || !cJSON_GetArraySize(list))
		return elb_fail(c, "ValidationError", "Attributes must list at least one attribute");
	_cleanup_(cJSON_Deletep) cJSON *doc = NULL;
	if (elb_load(c, ELB_TG, arn, NULL, &doc) < 0)
		return -1;
	cJSON *attrs = cJSON_GetObjectItemCaseSensitive(doc, ATTRS);
	cJSON *a;
	cJSON_ArrayForEach(a, list) {
		const char *key, *value;
		if (elb_need_str(c, a, "Key", &key) < 0 || elb_need_str(c, a, "Value", &value) < 0 ||
		    set_attribute(c, attrs, key, value) < 0)
			return -1;
	}
	if (elb_check_all_read(c) < 0 || elb_save(c, arn, doc) < 0)
		return -1;
	c->changed = true;
	return answer_attributes(c, doc);
}

int elb_op_describe_target_group_attributes(struct elb_call *c)
{
	const char *arn;
	if (elb_need_str(c, c->in, "TargetGroupArn", &arn) < 0 || elb_check_all_read(c) < 0)
		return -1;
	_cleanup_(cJSON_Deletep) cJSON *doc = NULL;
	return elb_load(c, ELB_TG, arn, NULL, &doc) < 0 ? -1 : answer_attributes(c, doc);
}

int elb_tg_attribute(const cJSON *doc, const char *key)
{
	const char *v = json_str(cJSON_GetObjectItemCaseSensitive(doc, ATTRS), key);
	return v ? atoi(v) : 0;
}
