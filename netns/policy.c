/* A task's entries in the bridge table's sets (rules.c): its port binding
 * (veth . MAC . address) and its security groups, k-th group in map sgk
 * (0 in the slots it does not use) and (address . group) in members.
 * Elements only, one nftables transaction per call: no rule changes per
 * task.
 *
 * An address IPAM hands out again must never inherit an old owner's
 * groups.  Removing lists the sets and deletes every element naming the
 * address or the task's veth.  Adding first tries its elements alone: a
 * stale element for the address in any sgk map with another group makes
 * that transaction fail (a map key cannot be added twice with different
 * data), and since every members element has its sgk twin, no stale group
 * can hide without one; on that failure it purges as a removal does and
 * adds again, in one transaction.  The listing is the costly part (most
 * of it libnftables fetching its cache), so a normal start skips it.
 *
 * A bridge-mode task's published ports are elements of the ip table's
 * map `published` (protocol . host port → address . container port),
 * added and purged with the rest: purged are those mapping to the
 * task's address and those of the host ports the task is given now. */
#include "netns/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "common/json.h"

#define PURGE_MAX 8

struct purge {
	char ifname[IFNAMSIZ];
	char ips[PURGE_MAX][INET_ADDRSTRLEN];
	size_t n_ips;
	const struct net_publish *pub;  /* the host ports the task takes now */
	size_t n_pub;
};

/* The task's elements: its groups and published ports. */
struct task_elems {
	const char *const *groups;
	size_t n_groups;
	const struct net_publish *pub;
	size_t n_pub;
};

static const char *proto_name(uint8_t proto)
{
	return proto == IPPROTO_UDP ? "udp" : "tcp";
}

static bool port_ok(unsigned long v)
{
	return v >= 1 && v <= 65535;
}

uint32_t net_group_id(const char *group)
{
	uint64_t h = berth_fnv1a64(BERTH_FNV1A64_INIT, group, strlen(group));
	uint32_t id = (uint32_t)(h ^ (h >> 32));
	return id ? id : 1;
}

static bool purge_has_ip(const struct purge *p, const char *ip)
{
	for (size_t i = 0; i < p->n_ips; i++)
		if (strcmp(p->ips[i], ip) == 0)
			return true;
	return false;
}

static bool ip_ok(const char *s)
{
	struct in_addr a;
	return s && inet_pton(AF_INET, s, &a) == 1;
}

static bool chars_ok(const char *s, const char *set, size_t max)
{
	return s && *s && strlen(s) <= max && strspn(s, set) == strlen(s);
}

#define IFCHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"

/* The elements of set or map NAME in the listing ("elem" array). */
static const cJSON *elements(const cJSON *listing, const char *name)
{
	const cJSON *item;
	cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(listing, "nftables")) {
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(item, "set");
		if (!s)
			s = cJSON_GetObjectItemCaseSensitive(item, "map");
		const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "name"));
		if (n && strcmp(n, name) == 0)
			return cJSON_GetObjectItemCaseSensitive(s, "elem");
	}
	return NULL;
}

/* Item i of an element's key: {"concat": [...]} or [key, value]. */
static const cJSON *part(const cJSON *elem, int i)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(elem, "concat");
	return cJSON_GetArrayItem(c ? c : elem, i);
}

/* The addresses of the ports entries of p->ifname join p->ips, so that a
 * removal without the address finds it. */
static void purge_ports(const cJSON *listing, struct purge *p, FILE *out, const char *t)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, elements(listing, "ports")) {
		const char *ifn = cJSON_GetStringValue(part(e, 0));
		const char *mac = cJSON_GetStringValue(part(e, 1));
		const char *ip = cJSON_GetStringValue(part(e, 2));
		if (!chars_ok(ifn, IFCHARS, IFNAMSIZ - 1) || !chars_ok(mac, "0123456789abcdef:", 17) ||
		    !ip_ok(ip))
			continue;
		if (strcmp(ifn, p->ifname) == 0 && !purge_has_ip(p, ip) && p->n_ips < PURGE_MAX)
			snprintf(p->ips[p->n_ips++], INET_ADDRSTRLEN, "%s", ip);
		if (strcmp(ifn, p->ifname) == 0 || purge_has_ip(p, ip))
			fprintf(out, "delete element bridge %s ports { \"%s\" . %s . %s }\n", t, ifn,
				mac, ip);
	}
}

static void purge_groups(const cJSON *listing, const struct purge *p, FILE *out, const char *t)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, elements(listing, "members")) {
		const char *ip = cJSON_GetStringValue(part(e, 0));
		const cJSON *id = part(e, 1);
		if (ip_ok(ip) && cJSON_IsNumber(id) && purge_has_ip(p, ip))
			fprintf(out, "delete element bridge %s members { %s . %u }\n", t, ip,
				(uint32_t)id->valuedouble);
	}
	for (int k = 0; k < NET_GROUPS_MAX; k++) {
		char name[16];
		snprintf(name, sizeof(name), "sg%d", k);
		cJSON_ArrayForEach(e, elements(listing, name)) {
			const char *ip = cJSON_GetStringValue(part(e, 0));
			if (ip_ok(ip) && purge_has_ip(p, ip))
				fprintf(out, "delete element bridge %s %s { %s }\n", t, name, ip);
		}
	}
}

static int list_json(struct net *net, const char *what, cJSON **ret, struct berth_err *err)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "list %s %s\n", what, net->nft_table);
	_cleanup_free_ char *text = NULL;
	int r = net_nft_run(net, cmd, true, &text, "list", err);
	if (r < 0)
		return r;
	if (!(*ret = cJSON_Parse(text)))
		return berth_errf(err, EIO, "nftables %s %s: list: unreadable JSON", what,
				  net->nft_table);
	return 0;
}

/* Whether P gives the task host port PORT of protocol PROTO ("tcp"). */
static bool purge_has_port(const struct purge *p, const char *proto, double port)
{
	for (size_t i = 0; i < p->n_pub; i++)
		if (strcmp(proto_name(p->pub[i].proto), proto) == 0 && p->pub[i].host_port == port)
			return true;
	return false;
}

/* The published ports to the task's addresses, and any element of the
 * host ports it takes now. */
static void purge_published(const cJSON *listing, const struct purge *p, FILE *out, const char *t)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, elements(listing, "published")) {
		const cJSON *key = cJSON_GetArrayItem(e, 0), *val = cJSON_GetArrayItem(e, 1);
		const char *proto = cJSON_GetStringValue(part(key, 0));
		const cJSON *port = part(key, 1);
		const char *ip = cJSON_GetStringValue(part(val, 0));
		if (!proto || (strcmp(proto, "tcp") && strcmp(proto, "udp")) || !cJSON_IsNumber(port) ||
		    !port_ok((unsigned long)port->valuedouble) || !ip_ok(ip))
			continue;
		if (purge_has_ip(p, ip) || purge_has_port(p, proto, port->valuedouble))
			fprintf(out, "delete element ip %s published { %s . %u }\n", t, proto,
				(unsigned)port->valuedouble);
	}
}

/* The task's new elements: port binding, then group k in slot k, then
 * its published ports. */
static void add_task(struct net *net, const char *ifname, struct in_addr addr,
		     const struct task_elems *te, FILE *out)
{
	const char *const *groups = te->groups;
	size_t n = te->n_groups;
	const char *t = net->nft_table;
	char ip[INET_ADDRSTRLEN];
	uint8_t m[6];
	inet_ntop(AF_INET, &addr, ip, sizeof(ip));
	net_mac_from_ip(ntohl(addr.s_addr), m);
	fprintf(out, "add element bridge %s ports { \"%s\" . %02x:%02x:%02x:%02x:%02x:%02x . %s }\n",
		t, ifname, m[0], m[1], m[2], m[3], m[4], m[5], ip);
	for (size_t k = 0; k < NET_GROUPS_MAX; k++) {
		/* 0 is no group's id: an unused slot matches no member. */
		uint32_t id = k < n ? net_group_id(groups[k]) : 0;
		fprintf(out, "add element bridge %s sg%zu { %s : %u }\n", t, k, ip, id);
		if (id)
			fprintf(out, "add element bridge %s members { %s . %u }\n", t, ip, id);
	}
	for (size_t i = 0; i < te->n_pub; i++)
		fprintf(out, "add element ip %s published { %s . %u : %s . %u }\n", t,
			proto_name(te->pub[i].proto), te->pub[i].host_port, ip,
			te->pub[i].container_port);
}

/* Deletions of whatever LISTING (bridge table) and PUBLISHED (ip table)
 * hold of task TASK_ID's veth and ADDR (unless INADDR_ANY); ADD (or NULL)
 * also names the host ports the task takes now. */
static void purge_task(const cJSON *listing, const cJSON *published, const char *task_id,
		       struct in_addr addr, const struct task_elems *add, FILE *out,
		       const char *t)
{
	struct purge p = { .pub = add ? add->pub : NULL, .n_pub = add ? add->n_pub : 0 };
	net_host_ifname(task_id, p.ifname);
	if (addr.s_addr != htonl(INADDR_ANY))
		inet_ntop(AF_INET, &addr, p.ips[p.n_ips++], INET_ADDRSTRLEN);
	purge_ports(listing, &p, out, t);
	purge_groups(listing, &p, out, t);
	purge_published(published, &p, out, t);
}

/* The script of a change of N tasks (IDS, ADDRS): with purge, the
 * deletions of purge_task() for each, from one listing; with add (N is 1),
 * the task's new elements.  malloc'd into *ret ("" when there is nothing
 * to do). */
static int task_script(struct net *net, const char *const *ids, const struct in_addr *addrs,
		       size_t n, bool purge, const struct task_elems *add, char **ret,
		       struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *listing = NULL, *published = NULL;
	int r;
	if (purge && ((r = list_json(net, "table bridge", &listing, err)) < 0 ||
		      (r = list_json(net, "table ip", &published, err)) < 0))
		return r;
	size_t len = 0;
	FILE *out = open_memstream(ret, &len);
	if (!out)
		return berth_errf(err, ENOMEM, "out of memory");
	for (size_t i = 0; purge && i < n; i++)
		purge_task(listing, published, ids[i], addrs[i], add, out, net->nft_table);
	if (add) {
		char ifname[IFNAMSIZ];
		net_host_ifname(ids[0], ifname);
		add_task(net, ifname, addrs[0], add, out);
	}
	if (fclose(out) != 0) {
		free(TAKE_PTR(*ret));
		return berth_errf(err, ENOMEM, "out of memory");
	}
	return 0;
}

static int task_run(struct net *net, const char *task_id, struct in_addr addr, bool purge,
		    const struct task_elems *add, struct berth_err *err)
{
	_cleanup_free_ char *script = NULL;
	int r = task_script(net, &task_id, &addr, 1, purge, add, &script, err);
	if (r == 0 && *script)
		r = net_nft_run(net, script, false, NULL, add ? "add task" : "remove task", err);
	return r < 0 ? berth_err_wrap(err, "task %s", task_id) : 0;
}

static int check_task(const char *task_id, size_t n, struct berth_err *err)
{
	if (!net_id_ok(task_id))
		return berth_errf(err, EINVAL, "task id \"%s\" is not [A-Za-z0-9_.-]{1,64}", task_id);
	if (n > NET_GROUPS_MAX)
		return berth_errf(err, EINVAL, "task %s: %zu security groups, at most %d", task_id,
				  n, NET_GROUPS_MAX);
	return 0;
}

/* At most NET_PUBLISH_MAX ports, each valid, no host port twice. */
static int check_publish(const char *task_id, const struct net_publish *pub, size_t n,
			 struct berth_err *err)
{
	if (n > NET_PUBLISH_MAX)
		return berth_errf(err, EINVAL, "task %s: %zu published ports, at most %d", task_id,
				  n, NET_PUBLISH_MAX);
	for (size_t i = 0; i < n; i++) {
		if ((pub[i].proto != IPPROTO_TCP && pub[i].proto != IPPROTO_UDP) ||
		    !port_ok(pub[i].host_port) || !port_ok(pub[i].container_port))
			return berth_errf(err, EINVAL, "task %s: published port %zu: not a TCP or "
					  "UDP port 1-65535", task_id, i);
		for (size_t j = 0; j < i; j++)
			if (pub[j].proto == pub[i].proto && pub[j].host_port == pub[i].host_port)
				return berth_errf(err, EINVAL, "task %s: host port %s %u published "
						  "twice", task_id, proto_name(pub[i].proto),
						  pub[i].host_port);
	}
	return 0;
}

int net_policy_task_add_ports(struct net *net, const char *task_id, struct in_addr addr,
			      const char *const *groups, size_t n_groups,
			      const struct net_publish *pub, size_t n_pub, struct berth_err *err)
{
	int r = check_task(task_id, n_groups, err);
	if (r < 0 || (r = check_publish(task_id, pub, n_pub, err)) < 0)
		return r;
	if (addr.s_addr == htonl(INADDR_ANY))
		return berth_errf(err, EINVAL, "task %s: no address", task_id);
	const struct task_elems te = { groups, n_groups, pub, n_pub };
	if (task_run(net, task_id, addr, false, &te, NULL) == 0)
		return 0;
	return task_run(net, task_id, addr, true, &te, err);
}

int net_policy_task_add(struct net *net, const char *task_id, struct in_addr addr,
			const char *const *groups, size_t n_groups, struct berth_err *err)
{
	return net_policy_task_add_ports(net, task_id, addr, groups, n_groups, NULL, 0, err);
}

int net_policy_tasks_remove(struct net *net, const char *const *ids, const struct in_addr *addrs,
			    size_t n, struct berth_err *err)
{
	for (size_t i = 0; i < n; i++) {
		int r = check_task(ids[i], 0, err);
		if (r < 0)
			return r;
	}
	if (n == 1)
		return task_run(net, ids[0], addrs[0], true, NULL, err);
	_cleanup_free_ char *script = NULL;
	int r = n ? task_script(net, ids, addrs, n, true, NULL, &script, err) : 0;
	if (r == 0 && script && *script)
		r = net_nft_run(net, script, false, NULL, "remove tasks", err);
	return r < 0 ? berth_err_wrap(err, "%zu tasks", n) : 0;
}

int net_policy_task_remove(struct net *net, const char *task_id, struct in_addr addr,
			   struct berth_err *err)
{
	return net_policy_tasks_remove(net, &task_id, &addr, 1, err);
}
