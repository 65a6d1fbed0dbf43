/* daemon/sched/ports: host ports of bridge-mode tasks (ports.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "daemon/sched/ports.h"

static uint64_t *set_of(struct ports_used *u, const char *proto)
{
	return proto && strcmp(proto, "udp") == 0 ? u->udp : u->tcp;
}

static bool held(struct ports_used *u, const char *proto, unsigned port)
{
	return set_of(u, proto)[port / 64] >> (port % 64) & 1;
}

static void hold(struct ports_used *u, const char *proto, unsigned port)
{
	set_of(u, proto)[port / 64] |= UINT64_C(1) << (port % 64);
}

static const cJSON *member(const cJSON *o, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(o, name);
}

bool ports_needed(const cJSON *td)
{
	const char *nm = json_str(td, "networkMode");
	const cJSON *cd;
	if (!nm || (strcmp(nm, "bridge") != 0 && strcmp(nm, "host") != 0))
		return false;
	cJSON_ArrayForEach(cd, member(td, "containerDefinitions"))
		if (cJSON_GetArraySize(member(cd, "portMappings")) > 0)
			return true;
	return false;
}

/* The bindings of one stored container into U. */
static void hold_bindings(struct ports_used *u, const char *network_json)
{
	_cleanup_(cJSON_Deletep) cJSON *net = network_json ? cJSON_Parse(network_json) : NULL;
	const cJSON *b;
	cJSON_ArrayForEach(b, member(net, "networkBindings")) {
		const cJSON *hp = member(b, "hostPort");
		if (cJSON_IsNumber(hp) && hp->valuedouble >= 1 && hp->valuedouble <= 65535)
			hold(u, json_str(b, "protocol"), (unsigned)hp->valuedouble);
	}
}

static int hold_task(struct store *s, struct ports_used *u, const char *arn, struct berth_err *err)
{
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	int r = store_task_get(s, arn, &t, err);
	if (r == -ENOENT)  /* pruned meanwhile */
		return 0;
	for (size_t i = 0; r == 0 && i < t->n_containers; i++)
		hold_bindings(u, t->containers[i].network_json);
	return r;
}

int ports_load(struct store *s, struct ports_used *u, struct berth_err *err)
{
	struct store_task_filter f = { .not_stopped = true };
	struct store_page page = { 0 };
	_cleanup_free_ char *token = NULL;
	do {
		_cleanup_(store_list_clear) struct store_list l = { 0 };
		page.next_token = token;
		int r = store_task_list(s, &f, &page, &l, err);
		for (size_t i = 0; r == 0 && i < l.n; i++)
			r = hold_task(s, u, l.items[i], err);
		if (r < 0)
			return r;
		free(token);
		token = TAKE_PTR(l.next_token);
	} while (token);
	return 0;
}

/* Whether a host process holds PORT: a bind() to it on every address
 * fails.  SO_REUSEADDR for TCP, so that a closed connection's TIME_WAIT
 * does not count, a listener does. */
static bool host_holds(const char *proto, unsigned port)
{
	bool udp = strcmp(proto, "udp") == 0;
	_cleanup_close_ int fd = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (fd < 0 || (!udp && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0))
		return false;
	return bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno == EADDRINUSE;
}

static bool port_free(struct ports_used *u, const char *proto, unsigned port)
{
	return !held(u, proto, port) && !host_holds(proto, port);
}

/* A free port of the dynamic range, or 0. */
static unsigned dynamic_port(const struct berth_policy *p, struct ports_used *u, const char *proto)
{
	unsigned lo = p->host_port_min ? p->host_port_min : PORTS_DYNAMIC_MIN;
	unsigned hi = p->host_port_max ? p->host_port_max : PORTS_DYNAMIC_MAX;
	unsigned n = hi - lo + 1;
	/* Round robin from the last port given, as ECS does, so that a port
	 * just released is not handed out again at once. */
	for (unsigned i = 0; i < n; i++) {
		unsigned port = lo + (u->cursor + i) % n;
		if (port_free(u, proto, port)) {
			u->cursor = port - lo + 1;
			return port;
		}
	}
	return 0;
}

static cJSON *binding(unsigned container_port, unsigned host_port, const char *proto)
{
	cJSON *b = cJSON_CreateObject();
	if (b && json_add_string(b, "bindIP", "0.0.0.0") &&
	    cJSON_AddNumberToObject(b, "containerPort", container_port) &&
	    cJSON_AddNumberToObject(b, "hostPort", host_port) && json_add_string(b, "protocol", proto))
		return b;
	cJSON_Delete(b);
	return NULL;
}

/* One portMappings entry of container NAME: its binding into ARR, its
 * port into U.  0, 1 when it does not fit (DETAIL says why), -ENOMEM. */
static int assign_one(const struct berth_policy *p, struct ports_used *u, const cJSON *pm,
		      const char *name, cJSON *arr, char *detail, size_t detail_n)
{
	const char *proto = json_str(pm, "protocol") ? json_str(pm, "protocol") : "tcp";
	const cJSON *cp = member(pm, "containerPort"), *hp = member(pm, "hostPort");
	unsigned host = cJSON_IsNumber(hp) ? (unsigned)hp->valuedouble : 0;
	if (host && !port_free(u, proto, host)) {
		snprintf(detail, detail_n, "container %s: host port %s %u is in use", name, proto,
			 host);
		return 1;
	}
	if (!host && !(host = dynamic_port(p, u, proto))) {
		snprintf(detail, detail_n, "container %s: no free %s host port in the dynamic "
			 "range", name, proto);
		return 1;
	}
	hold(u, proto, host);
	cJSON *b = binding(cJSON_IsNumber(cp) ? (unsigned)cp->valuedouble : 0, host, proto);
	if (b && cJSON_AddItemToArray(arr, b))
		return 0;
	cJSON_Delete(b);
	return -ENOMEM;
}

/* Every mapping of TD into ALL (an array per container) and U. */
static int assign_all(const struct berth_policy *p, struct ports_used *u, const cJSON *td,
		      cJSON *all, char *detail, size_t detail_n)
{
	const cJSON *cd, *pm;
	cJSON_ArrayForEach(cd, member(td, "containerDefinitions")) {
		cJSON *arr = cJSON_CreateArray();
		if (!arr || !cJSON_AddItemToArray(all, arr)) {
			cJSON_Delete(arr);
			return -ENOMEM;
		}
		cJSON_ArrayForEach(pm, member(cd, "portMappings")) {
			int r = assign_one(p, u, pm, json_str(cd, "name"), arr, detail, detail_n);
			if (r != 0)
				return r;
		}
	}
	return 0;
}

const char *ports_assign(const struct berth_policy *p, struct ports_used *u, const cJSON *td,
			 cJSON **ret, char *detail, size_t detail_n)
{
	*ret = NULL;
	/* On failure U keeps no port of this task: work on a copy. */
	_cleanup_free_ struct ports_used *tmp = malloc(sizeof(*tmp));
	_cleanup_(cJSON_Deletep) cJSON *all = cJSON_CreateArray();
	if (!tmp || !all)
		return NULL;
	*tmp = *u;
	int r = assign_all(p, tmp, td, all, detail, detail_n);
	if (r > 0)
		return INSTANCE_NO_PORTS;
	if (r == 0) {
		*u = *tmp;
		*ret = TAKE_PTR(all);
	}
	return NULL;
}

cJSON *ports_publish_list(const char *const *network_json, size_t n)
{
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateArray();
	for (size_t i = 0; out && i < n; i++) {
		_cleanup_(cJSON_Deletep) cJSON *net = network_json[i] ? cJSON_Parse(network_json[i])
								      : NULL;
		const cJSON *b;
		cJSON_ArrayForEach(b, member(net, "networkBindings")) {
			const cJSON *hp = member(b, "hostPort"), *cp = member(b, "containerPort");
			char s[32];
			snprintf(s, sizeof(s), "%s:%u:%u", json_str(b, "protocol") ?
				 json_str(b, "protocol") : "tcp",
				 cJSON_IsNumber(hp) ? (unsigned)hp->valuedouble : 0,
				 cJSON_IsNumber(cp) ? (unsigned)cp->valuedouble : 0);
			if (!cJSON_AddItemToArray(out, cJSON_CreateString(s)))
				return NULL;
		}
	}
	return TAKE_PTR(out);
}
