/* daemon/elb/elb_lb: CreateLoadBalancer, DescribeLoadBalancers,
 * DeleteLoadBalancer.
 *
 * Every load balancer is this host: DNSName is the address its listeners
 * are bound to, and Subnets / SecurityGroups are kept and echoed only (a
 * single host has neither). */
#include <errno.h>
#include <string.h>

#include "daemon/elb/elb_internal.h"

#define SUBNETS_MAX 16

/* The stored members plus the ones every answer derives. */
static cJSON *lb_out(struct elb *e, const struct store_elb_res *r, const cJSON *doc)
{
	char created[32];
	elb_time(r->created_at, created);
	cJSON *o = cJSON_Duplicate(doc, true);
	cJSON *state = o ? cJSON_AddObjectToObject(o, "State") : NULL;
	if (!state || !json_add_string(o, "LoadBalancerArn", r->arn) ||
	    !json_add_string(o, "LoadBalancerName", r->name) ||
	    !json_add_string(o, "DNSName", e->dns_name) ||
	    !json_add_string(o, "CreatedTime", created) ||
	    !json_add_string(state, "Code", "active")) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static int read_choice(struct elb_call *c, const char *name, const char *dflt,
		       const char *const *allowed, size_t n, const char **ret)
{
	const char *v = elb_take_str(c, c->in, name);
	*ret = v ? v : dflt;
	for (size_t i = 0; i < n; i++)
		if (strcmp(*ret, allowed[i]) == 0)
			return 0;
	return elb_fail(c, "ValidationError",
			"%s '%.40s' is not supported by Berth's load"
			" balancers (supported: %s%s%s)",
			name, *ret, allowed[0], n > 1 ? ", " : "", n > 1 ? allowed[1] : "");
}

/* Subnets and SecurityGroups: strings kept as given. */
static int copy_strings(struct elb_call *c, const char *name, cJSON *doc)
{
	cJSON *l = elb_take_list(c, c->in, name, SUBNETS_MAX);
	if (c->code[0])
		return -1;
	if (!l || !cJSON_GetArraySize(l))
		return 0;
	cJSON *copy = cJSON_Duplicate(l, true);
	if (!copy || !cJSON_AddItemToObject(doc, name, copy)) {
		cJSON_Delete(copy);
		return elb_fail(c, "InternalFailure", "out of memory");
	}
	return 0;
}

static cJSON *zones(struct elb_call *c, const cJSON *subnets)
{
	char zone[64];
	snprintf(zone, sizeof(zone), "%sa", c->e->cfg.region);
	cJSON *zs = cJSON_CreateArray();
	const cJSON *s;
	cJSON_ArrayForEach(s, subnets) {
		cJSON *z = json_add_object(zs);
		if (!z || !json_add_string(z, "ZoneName", zone) ||
		    !json_add_string(z, "SubnetId", s->valuestring)) {
			cJSON_Delete(zs);
			return NULL;
		}
	}
	return zs;
}

int elb_op_create_load_balancer(struct elb_call *c)
{
	static const char *const types[] = { "application", "network" };
	static const char *const schemes[] = { "internet-facing", "internal" };
	static const char *const ip_types[] = { "ipv4" };
	const char *name, *type, *scheme, *ip_type;
	if (elb_need_str(c, c->in, "Name", &name) < 0 ||
	    elb_check_name(c, "Load balancer", name) < 0 ||
	    read_choice(c, "Type", "application", types, 2, &type) < 0 ||
	    read_choice(c, "Scheme", "internet-facing", schemes, 2, &scheme) < 0 ||
	    read_choice(c, "IpAddressType", "ipv4", ip_types, 1, &ip_type) < 0)
		return -1;
	_cleanup_(cJSON_Deletep) cJSON *doc = cJSON_CreateObject();
	if (!doc || !json_add_string(doc, "Type", type) || !json_add_string(doc, "Scheme", scheme) ||
	    !json_add_string(doc, "IpAddressType", ip_type))
		return elb_fail(c, "InternalFailure", "out of memory");
	if (copy_strings(c, "Subnets", doc) < 0 || copy_strings(c, "SecurityGroups", doc) < 0)
		return -1;
	cJSON *subnets = cJSON_DetachItemFromObjectCaseSensitive(doc, "Subnets");
	cJSON *zs = subnets ? zones(c, subnets) : NULL;
	cJSON_Delete(subnets);
	if (zs && !cJSON_AddItemToObject(doc, "AvailabilityZones", zs))
		cJSON_Delete(zs);
	_cleanup_(elb_tags_done) struct elb_tags tags = { 0 };
	if (elb_take_tags(c, &tags) < 0 || elb_check_all_read(c) < 0)
		return -1;
	_cleanup_free_ char *arn = NULL;
	if (elb_new_arn(c, ELB_LB, name, strcmp(type, "network") == 0 ? "net" : "app", &arn) < 0 ||
	    elb_insert(c, ELB_LB, arn, name, NULL, doc) < 0 || elb_tags_create(c, &tags, arn) < 0)
		return -1;
	struct store_elb_res r = { .arn = arn, .name = (char *)name, .created_at = c->now_ms };
	cJSON *list = cJSON_AddArrayToObject(c->out, "LoadBalancers");
	cJSON *o = lb_out(c->e, &r, doc);
	if (!list || !o || !cJSON_AddItemToArray(list, o)) {
		cJSON_Delete(o);
		return elb_fail(c, "InternalFailure", "out of memory");
	}
	return 0;
}

bool elb_wanted(const struct store_elb_res *r, const cJSON *arns, const cJSON *names)
{
	if (!arns && !names)
		return true;
	const cJSON *it;
	cJSON_ArrayForEach(it, (arns ? arns : names))
		if (strcmp(it->valuestring, arns ? r->arn : r->name) == 0)
			return true;
	return false;
}

bool elb_array_has(const cJSON *arr, const char *s)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, arr)
		if (cJSON_IsString(it) && strcmp(it->valuestring, s) == 0)
			return true;
	return false;
}

int elb_check_found(struct elb_call *c, enum elb_kind kind, const struct store_elb_res *rs,
		    size_t n, const cJSON *arns, const cJSON *names)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, (arns ? arns : names)) {
		bool found = false;
		for (size_t i = 0; i < n && !found; i++)
			found = strcmp(it->valuestring, arns ? rs[i].arn : rs[i].name) == 0;
		if (!found)
			return elb_fail(c, elb_notfound_code(kind),
					"One or more %s not found: '%.300s'",
					kind == ELB_LB	       ? "load balancers"
					: kind == ELB_TG       ? "target groups"
					: kind == ELB_LISTENER ? "listeners"
							       : "rules",
					it->valuestring);
	}
	return 0;
}

static cJSON *lb_item(struct elb_call *c, const struct store_elb_res *r, const cJSON *doc)
{
	return lb_out(c->e, r, doc);
}

int elb_op_describe_load_balancers(struct elb_call *c)
{
	struct elb_describe q = { .kind = ELB_LB, .out = lb_item, .list = "LoadBalancers" };
	q.arns = elb_take_list(c, c->in, "LoadBalancerArns", 20);
	q.names = elb_take_list(c, c->in, "Names", 20);
	if (c->code[0] || elb_take_page(c, &q.from, &q.size) < 0 || elb_check_all_read(c) < 0)
		return -1;
	if (q.arns && q.names)
		return elb_fail(c, "ValidationError",
				"LoadBalancerArns and Names cannot be used together");
	return elb_describe(c, &q);
}

int elb_op_delete_load_balancer(struct elb_call *c)
{
	const char *arn;
	if (elb_need_str(c, c->in, "LoadBalancerArn", &arn) < 0 || elb_check_all_read(c) < 0)
		return -1;
	if (!strstr(arn, ":loadbalancer/"))
		return elb_fail(c, "ValidationError", "'%.300s' is not a load balancer ARN", arn);
	struct berth_err err = { 0 };
	int r = store_elb_res_delete(c->e->store, arn, &err);
	/* As ELB: deleting one that is gone already succeeds. */
	if (r < 0 && r != -ENOENT)
		return elb_fail_store(c, r, &err, NULL, NULL);
	c->changed = r == 0;
	return 0;
}
