/* daemon/server/metadata: the task metadata endpoint and task-role
 * credentials. */
#include "daemon/server/metadata.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/http.h>
#include <openssl/crypto.h>

#include "common/hash.h"
#include "common/json.h"
#include "common/time.h"
#include "daemon/server/credentials.h"
#include "daemon/server/endpoint.h"
#include "daemon/server/metadata_json.h"
#include "netns/net.h"

#define SAMPLES 256                 /* stats readings kept for precpu_stats */
#define CREDENTIALS_TTL_MS (3600 * 1000LL)

struct sample_slot {
	char key[STORE_TASK_ID_LEN + 256];   /* "<task id>/<container>" */
	struct md_sample s;
};

struct stats_req;

#define ADDRESSES 4096              /* task address → task id, remembered */

struct address_slot {
	unsigned addr;
	char task_id[STORE_TASK_ID_LEN + 1];
};

struct metadata {
	struct store *store;
	struct metadata_config cfg;
	struct endpoint *ep;
	char gateway[INET_ADDRSTRLEN + 4];
	struct stats_req *pending;
	struct sample_slot samples[SAMPLES];
	struct address_slot addresses[ADDRESSES];
};

/* ---- who is asking ---- */

/* The task's address (host byte order) from its ENI attachment. */
static bool task_ipv4(const struct store_task *t, unsigned *ret)
{
	_cleanup_(cJSON_Deletep) cJSON *att = t->attachments_json ? cJSON_Parse(t->attachments_json)
								   : NULL;
	const cJSON *d;
	cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(att, 0),
							     "details")) {
		const char *n = json_str(d, "name"), *v = json_str(d, "value");
		struct in_addr a;
		if (n && v && strcmp(n, "privateIPv4Address") == 0 && inet_pton(AF_INET, v, &a) == 1) {
			*ret = ntohl(a.s_addr);
			return true;
		}
	}
	return false;
}

/* Task TASK_ID (or ARN) if it runs (not STOPPED) at address PEER. */
static int task_at(struct metadata *m, const char *task_id, unsigned peer, struct store_task **ret)
{
	struct berth_err err = { 0 };
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	unsigned ip;
	int r = store_task_get(m->store, task_id, &t, &err);
	if (r < 0)
		return r;
	if (t->last_status == STORE_TASK_STOPPED || !task_ipv4(t, &ip) || ip != peer)
		return -ENOENT;
	*ret = TAKE_PTR(t);
	return 0;
}

static int scan_for_address(struct metadata *m, unsigned peer, struct store_task **ret)
{
	struct berth_err err = { 0 };
	struct store_task_filter f = { .not_stopped = true };
	struct store_page page = { 0 };
	_cleanup_free_ char *token = NULL;
	int r = -ENOENT;
	do {
		struct store_list l = { 0 };
		page.next_token = token;
		if (store_task_list(m->store, &f, &page, &l, &err) < 0)
			return -EIO;
		for (size_t i = 0; i < l.n && r == -ENOENT; i++)
			if (task_at(m, l.items[i], peer, ret) == 0)
				r = 0;
		free(token);
		token = r == 0 ? NULL : TAKE_PTR(l.next_token);
		store_list_clear(&l);
	} while (token);
	return r;
}

/* The running task at address PEER: the one the cache names if it is
 * still there, else found by a scan of the running tasks (then cached).
 * Task addresses are handed out in order, so ADDRESSES consecutive ones
 * never share a slot. */
static int task_by_address(struct metadata *m, unsigned peer, struct store_task **ret)
{
	struct address_slot *slot = &m->addresses[peer % ADDRESSES];
	if (slot->addr == peer && task_at(m, slot->task_id, peer, ret) == 0)
		return 0;
	int r = scan_for_address(m, peer, ret);
	if (r == 0) {
		slot->addr = peer;
		memcpy(slot->task_id, (*ret)->id, sizeof(slot->task_id));
	}
	return r;
}

/* The container whose endpoint id is ID (compared in constant time). */
static bool container_of(const struct metadata *m, const struct store_task *t, const char *id,
			 size_t *ret)
{
	for (size_t i = 0; i < t->n_containers; i++) {
		char want[TASKMETA_ID_LEN + 1];
		taskmeta_container_id(m->cfg.meta, t->id, t->containers[i].name, want);
		if (CRYPTO_memcmp(want, id, TASKMETA_ID_LEN + 1) == 0) {
			*ret = i;
			return true;
		}
	}
	return false;
}

/* ---- the task as the answers describe it ---- */

struct described {
	struct store_task *t;
	struct store_task_definition *td;
	cJSON *body, *ov;
	char *cluster_arn;
	struct md_task md;
};

static void described_done(struct described *d)
{
	store_task_free(d->t);
	store_task_definition_free(d->td);
	cJSON_Delete(d->body);
	cJSON_Delete(d->ov);
	free(d->cluster_arn);
}

/* Takes T. */
static int describe(struct metadata *m, struct store_task *t, struct described *d)
{
	struct berth_err err = { 0 };
	*d = (struct described){ .t = t };
	if (store_task_definition_get(m->store, t->task_definition_arn, &d->td, &err) < 0 ||
	    !(d->body = cJSON_Parse(d->td->body_json)) ||
	    (t->overrides_json && !(d->ov = cJSON_Parse(t->overrides_json))) ||
	    asprintf(&d->cluster_arn, "arn:aws:ecs:%s:%s:cluster/%s", m->cfg.region,
		     m->cfg.account_id, t->cluster) < 0) {
		d->cluster_arn = NULL;
		return -EIO;
	}
	d->md = (struct md_task){
		.t = t, .td = d->body, .ov = d->ov, .family = d->td->family,
		.revision = d->td->revision, .cluster_arn = d->cluster_arn,
		.region = m->cfg.region, .subnet = m->cfg.subnet, .gateway = m->gateway,
	};
	return 0;
}

/* ---- stats ---- */

/* The task's traffic from its veth's host end: what the host end
 * receives, the task sent. */
static void net_counters(const char *task_id, struct md_net *n)
{
	static const char *const names[] = {
		"tx_bytes", "tx_packets", "tx_errors", "tx_dropped",
		"rx_bytes", "rx_packets", "rx_errors", "rx_dropped",
	};
	uint64_t *slots[] = {
		&n->rx_bytes, &n->rx_packets, &n->rx_errors, &n->rx_dropped,
		&n->tx_bytes, &n->tx_packets, &n->tx_errors, &n->tx_dropped,
	};
	char ifname[IFNAMSIZ], path[128], buf[32];
	net_host_ifname(task_id, ifname);
	*n = (struct md_net){ 0 };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s", ifname, names[i]);
		_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t len = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (len > 0) {
			buf[len] = '\0';
			*slots[i] = strtoull(buf, NULL, 10);
		}
	}
}

static struct sample_slot *sample_for(struct metadata *m, const char *task_id, const char *name)
{
	char key[sizeof(m->samples[0].key)];
	snprintf(key, sizeof(key), "%s/%s", task_id, name);
	uint64_t h = berth_fnv1a64(BERTH_FNV1A64_INIT, key, strlen(key));
	struct sample_slot *s = &m->samples[h % SAMPLES];
	if (strcmp(s->key, key) != 0) {
		memcpy(s->key, key, sizeof(key));
		s->s = (struct md_sample){ 0 };
	}
	return s;
}

struct stats_req {
	struct metadata *m;             /* NULL: the endpoint is gone */
	struct evhttp_request *req;
	struct described d;
	ssize_t index;                  /* the container; -1: every one (task/stats) */
	struct stats_req *next, **pprev;
};

static void stats_req_free(struct stats_req *q)
{
	if (q->pprev) {
		*q->pprev = q->next;
		if (q->next)
			q->next->pprev = q->pprev;
	}
	described_done(&q->d);
	free(q);
}

static cJSON *container_stats(struct metadata *m, struct stats_req *q, size_t i,
			      const cJSON *ctrs, const struct md_net *net)
{
	const struct store_container *k = &q->d.t->containers[i];
	struct sample_slot *slot = sample_for(m, q->d.t->id, k->name);
	struct md_sample now;
	cJSON *o = md_stats_json(&q->d.md, i, cJSON_GetObjectItemCaseSensitive(ctrs, k->name), net,
				 &slot->s, &now);
	slot->s = now;
	return o;
}

/* The shim's answer (NULL: none; the cgroup counters are then 0, as
 * for a task whose shim is between its containers). */
static void on_stats(void *arg, const cJSON *answer)
{
	struct stats_req *q = arg;
	struct metadata *m = q->m;
	if (!m) {
		stats_req_free(q);
		return;
	}
	const cJSON *ctrs = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(answer, "stats"), "containers");
	struct md_net net;
	net_counters(q->d.t->id, &net);
	cJSON *o = NULL;
	if (q->index >= 0) {
		o = container_stats(m, q, (size_t)q->index, ctrs, &net);
	} else if ((o = cJSON_CreateObject())) {
		for (size_t i = 0; i < q->d.t->n_containers && o; i++) {
			cJSON *c = container_stats(m, q, i, ctrs, &net);
			if (!c || !cJSON_AddItemToObject(o, q->d.t->containers[i].runtime_id, c)) {
				cJSON_Delete(c);
				cJSON_Delete(o);
				o = NULL;
			}
		}
	}
	endpoint_send_json(q->req, 200, o);
	stats_req_free(q);
}

/* Takes D. */
static void send_stats(struct metadata *m, struct evhttp_request *req, struct described *d,
		       ssize_t index)
{
	struct stats_req *q = calloc(1, sizeof(*q));
	if (!q) {
		described_done(d);
		endpoint_send_json(req, 500, NULL);
		return;
	}
	*q = (struct stats_req){ .m = m, .req = req, .d = *d, .index = index };
	q->next = m->pending;
	if (q->next)
		q->next->pprev = &q->next;
	q->pprev = &m->pending;
	m->pending = q;
	struct berth_err err = { 0 };
	if (sched_task_stats(m->cfg.sched, q->d.t->id, on_stats, q, &err) < 0)
		on_stats(q, NULL);
}

/* ---- the metadata paths ---- */

static void not_found(struct evhttp_request *req, const char *version)
{
	char msg[160];
	snprintf(msg, sizeof(msg), "%s container metadata handler: unable to get task for the "
		 "endpoint id: no task of this address has that id", version);
	endpoint_send_message(req, 404, msg);
}

static bool add_tags(struct metadata *m, const struct store_task *t, cJSON *o)
{
	struct berth_err err = { 0 };
	struct store_tag *tags = NULL;
	size_t n = 0;
	if (store_tags_list(m->store, t->arn, &tags, &n, &err) < 0)
		return false;
	cJSON *tt = cJSON_AddObjectToObject(o, "TaskTags");
	bool ok = tt && cJSON_AddObjectToObject(o, "ContainerInstanceTags");
	for (size_t i = 0; ok && i < n; i++)
		ok = json_add_string(tt, tags[i].key, tags[i].value);
	store_tags_free(tags, n);
	return ok;
}

/* REST is what follows the id: "", "/task", "/taskWithTags", "/stats",
 * "/task/stats". */
static void metadata_path(struct metadata *m, struct evhttp_request *req, const char *version,
			  const char *id, const char *rest, unsigned peer)
{
	char task_id[STORE_TASK_ID_LEN + 1];
	memcpy(task_id, id, STORE_TASK_ID_LEN);
	task_id[STORE_TASK_ID_LEN] = '\0';
	struct store_task *t = NULL;
	size_t index;
	if (strspn(task_id, "0123456789abcdef") != STORE_TASK_ID_LEN ||
	    task_at(m, task_id, peer, &t) < 0 || !container_of(m, t, id, &index)) {
		store_task_free(t);
		not_found(req, version);
		return;
	}
	struct described d;
	if (describe(m, t, &d) < 0) {
		described_done(&d);
		endpoint_send_message(req, 500, "the task's definition could not be read");
		return;
	}
	if (!strcmp(rest, "/stats") || !strcmp(rest, "/task/stats")) {
		send_stats(m, req, &d, rest[1] == 's' ? (ssize_t)index : -1);
		return;
	}
	cJSON *o = NULL;
	bool tags = !strcmp(rest, "/taskWithTags");
	if (!*rest) {
		o = md_container_json(&d.md, index);
	} else if (tags || !strcmp(rest, "/task")) {
		o = md_task_json(&d.md);
		if (o && tags && !add_tags(m, t, o)) {
			cJSON_Delete(o);
			o = NULL;
		}
	} else {
		described_done(&d);
		not_found(req, version);
		return;
	}
	described_done(&d);
	endpoint_send_json(req, 200, o);
}

/* ---- credentials ---- */

static void credentials_error(struct evhttp_request *req, int status, const char *code,
			      const char *message)
{
	cJSON *o = cJSON_CreateObject();
	if (o && (!json_add_string(o, "code", code) || !json_add_string(o, "message", message) ||
		  !json_add_number(o, "HTTPErrorCode", status))) {
		cJSON_Delete(o);
		o = NULL;
	}
	endpoint_send_json(req, status, o);
}

static cJSON *credentials_json(const struct api_credential *c, const char *role)
{
	int64_t exp_ms = berth_real_ms() + CREDENTIALS_TTL_MS;
	time_t exp = (time_t)(exp_ms / 1000);
	struct tm tm;
	char when[32];
	gmtime_r(&exp, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	if (!o || !json_add_string(o, "RoleArn", role) ||
	    !json_add_string(o, "AccessKeyId", c->access_key_id) ||
	    !json_add_string(o, "SecretAccessKey", c->secret_access_key) ||
	    !json_add_string(o, "Token", c->session_token ? c->session_token : "") ||
	    !json_add_string(o, "Expiration", when))
		return NULL;
	return TAKE_PTR(o);
}

static void credentials_path(struct metadata *m, struct evhttp_request *req, const char *uuid,
			     unsigned peer)
{
	struct store_task *t = NULL;
	struct described d = { 0 };
	const char *role = NULL;
	char want[TASKMETA_UUID_LEN + 1];
	if (task_by_address(m, peer, &t) == 0 && describe(m, t, &d) == 0 &&
	    (role = taskmeta_role_arn(d.body, d.ov))) {
		taskmeta_credentials_id(m->cfg.meta, d.t->id, role, want);
		if (strlen(uuid) != TASKMETA_UUID_LEN ||
		    CRYPTO_memcmp(want, uuid, TASKMETA_UUID_LEN) != 0)
			role = NULL;
	}
	if (!role) {
		described_done(&d);
		credentials_error(req, 404, "InvalidIdInRequest", "CredentialsV2Request: ID not found");
		return;
	}
	struct berth_err err = { 0 };
	_cleanup_(api_credentials_freep) struct api_credentials *creds = NULL;
	const struct api_credential *c = NULL;
	if (m->cfg.role_credentials &&
	    api_credentials_load(m->cfg.role_credentials, &creds, &err) < 0 && m->cfg.log)
		fprintf(m->cfg.log, "berth daemon: task endpoint: %s\n", err.msg);
	for (size_t i = 0; creds && (c = api_credentials_get(creds, i)); i++)
		if (strcmp(c->profile, role) == 0)
			break;
	if (!c) {
		described_done(&d);
		credentials_error(req, 404, "NoCredentialsAssociated",
				  "CredentialsV2Request: Credentials not found");
		return;
	}
	endpoint_send_json(req, 200, credentials_json(c, role));
	described_done(&d);
}

/* ---- dispatch ---- */

static void on_request(struct evhttp_request *req, void *arg)
{
	struct metadata *m = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	unsigned peer;
	if (!path || strlen(path) > ENDPOINT_PATH_MAX || !endpoint_peer_ipv4(req, &peer)) {
		not_found(req, "V4");
		return;
	}
	if (!strncmp(path, "/v2/credentials/", 16)) {
		credentials_path(m, req, path + 16, peer);
		return;
	}
	bool v4 = !strncmp(path, "/v4/", 4), v3 = !strncmp(path, "/v3/", 4);
	if ((!v4 && !v3) || strlen(path + 4) < TASKMETA_ID_LEN) {
		not_found(req, v3 ? "V3" : "V4");
		return;
	}
	char id[TASKMETA_ID_LEN + 1];
	memcpy(id, path + 4, TASKMETA_ID_LEN);
	id[TASKMETA_ID_LEN] = '\0';
	metadata_path(m, req, v3 ? "V3" : "V4", id, path + 4 + TASKMETA_ID_LEN, peer);
}

/* "10.89.0.0/16" → "10.89.0.1/16", the gateway as ECS writes it. */
static int gateway_of(const char *subnet, char *out, size_t n, struct berth_err *err)
{
	char ip[INET_ADDRSTRLEN];
	const char *slash = strchr(subnet, '/');
	struct in_addr a;
	if (!slash || (size_t)(slash - subnet) >= sizeof(ip))
		return berth_errf(err, EINVAL, "subnet %s: expected a.b.c.d/prefix", subnet);
	memcpy(ip, subnet, (size_t)(slash - subnet));
	ip[slash - subnet] = '\0';
	if (inet_pton(AF_INET, ip, &a) != 1)
		return berth_errf(err, EINVAL, "subnet %s: expected a.b.c.d/prefix", subnet);
	a.s_addr = htonl(ntohl(a.s_addr) + 1);
	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	snprintf(out, n, "%s%s", ip, slash);
	return 0;
}

int metadata_new(struct event_base *base, struct store *store, int fd,
		 const struct metadata_config *cfg, struct metadata **ret, struct berth_err *err)
{
	_cleanup_close_ int owned = fd;
	_cleanup_free_ struct metadata *m = calloc(1, sizeof(*m));
	if (!m)
		return berth_errf(err, ENOMEM, "out of memory");
	m->store = store;
	m->cfg = *cfg;
	int r = gateway_of(cfg->subnet, m->gateway, sizeof(m->gateway), err);
	if (r < 0 || (r = endpoint_new(base, TAKE_FD(owned), cfg->log, on_request, m, &m->ep,
				       err)) < 0)
		return r;
	*ret = TAKE_PTR(m);
	return 0;
}

void metadata_free(struct metadata *m)
{
	if (!m)
		return;
	/* Stats still awaited: the scheduler calls back later (or at its own
	 * free), and the request dies with its connection now. */
	for (struct stats_req *q = m->pending; q; q = q->next) {
		q->m = NULL;
		q->pprev = NULL;
	}
	endpoint_free(m->ep);
	free(m);
}
