/* daemon/server/introspect: the agent introspection API. */
#include "daemon/server/introspect.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "daemon/server/endpoint.h"
#include "netns/net.h"

/* The cluster /v1/metadata names: the agent belongs to one cluster,
 * Berth's one container instance to each; "default" is the one an ECS
 * client uses when it names none. */
#define INTROSPECT_CLUSTER "default"

struct introspect {
	struct event_base *base;
	struct store *store;
	struct introspect_config cfg;
	struct endpoint *ep;        /* NULL while the port is held */
	struct event *retry;
};

/* How often a held port is tried again. */
#define INTROSPECT_RETRY_MS 1000

static cJSON *metadata_json(const struct introspect *in)
{
	char arn[512];
	snprintf(arn, sizeof(arn), "arn:aws:ecs:%s:%s:container-instance/%s/%s", in->cfg.region,
		 in->cfg.account_id, INTROSPECT_CLUSTER, in->cfg.instance_id);
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	if (!o || !json_add_string(o, "Cluster", INTROSPECT_CLUSTER) ||
	    !json_add_string(o, "ContainerInstanceArn", arn) ||
	    !json_add_string(o, "Version", in->cfg.version))
		return NULL;
	return TAKE_PTR(o);
}

/* "arn:…:task-definition/FAMILY:REV" → FAMILY and REV. */
static bool add_family(cJSON *o, const char *td_arn)
{
	const char *slash = strrchr(td_arn, '/'), *colon = strrchr(td_arn, ':');
	if (!slash || !colon || colon < slash)
		return json_add_string(o, "Family", "") && json_add_string(o, "Version", "");
	_cleanup_free_ char *family = strndup(slash + 1, (size_t)(colon - slash - 1));
	return family && json_add_string(o, "Family", family) &&
	       json_add_string(o, "Version", colon + 1);
}

static cJSON *task_json(const struct store_task *t)
{
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	cJSON *ctrs = NULL;
	if (!o || !json_add_string(o, "Arn", t->arn) ||
	    !json_add_string(o, "DesiredStatus", store_task_status_name(t->desired_status)) ||
	    !json_add_string(o, "KnownStatus", store_task_status_name(t->last_status)) ||
	    !add_family(o, t->task_definition_arn) || !(ctrs = json_add_array(o, "Containers")))
		return NULL;
	for (size_t i = 0; i < t->n_containers; i++) {
		const struct store_container *k = &t->containers[i];
		cJSON *c = json_add_object(ctrs);
		if (!c || !json_add_string(c, "DockerId", k->runtime_id) ||
		    !json_add_string(c, "DockerName", k->name) || !json_add_string(c, "Name", k->name) ||
		    !json_add_string(c, "Image", k->image) ||
		    (k->image_digest && !json_add_string(c, "ImageID", k->image_digest)))
			return NULL;
	}
	return TAKE_PTR(o);
}

static int all_tasks(struct introspect *in, cJSON **ret)
{
	struct berth_err err = { 0 };
	struct store_task_filter f = { 0 };
	struct store_page page = { 0 };
	_cleanup_free_ char *token = NULL;
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	cJSON *arr = o ? json_add_array(o, "Tasks") : NULL;
	if (!arr)
		return -ENOMEM;
	do {
		struct store_list l = { 0 };
		page.next_token = token;
		int r = store_task_list(in->store, &f, &page, &l, &err);
		for (size_t i = 0; r == 0 && i < l.n; i++) {
			_cleanup_(store_task_freep) struct store_task *t = NULL;
			cJSON *j = NULL;
			/* A task pruned since the list was read is left out. */
			if (store_task_get(in->store, l.items[i], &t, &err) == 0 &&
			    (!(j = task_json(t)) || !cJSON_AddItemToArray(arr, j))) {
				cJSON_Delete(j);
				r = -ENOMEM;
			}
		}
		free(token);
		token = TAKE_PTR(l.next_token);
		store_list_clear(&l);
		if (r < 0)
			return r;
	} while (token);
	*ret = TAKE_PTR(o);
	return 0;
}

/* The task whose container has runtime id ID: "<task id>-<name>". */
static int task_of_container(struct introspect *in, const char *id, struct store_task **ret)
{
	struct berth_err err = { 0 };
	char task_id[STORE_TASK_ID_LEN + 1];
	if (strlen(id) <= STORE_TASK_ID_LEN || id[STORE_TASK_ID_LEN] != '-')
		return -ENOENT;
	memcpy(task_id, id, STORE_TASK_ID_LEN);
	task_id[STORE_TASK_ID_LEN] = '\0';
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	if (strspn(task_id, "0123456789abcdef") != STORE_TASK_ID_LEN ||
	    store_task_get(in->store, task_id, &t, &err) < 0)
		return -ENOENT;
	for (size_t i = 0; i < t->n_containers; i++)
		if (t->containers[i].runtime_id && !strcmp(t->containers[i].runtime_id, id)) {
			*ret = TAKE_PTR(t);
			return 0;
		}
	return -ENOENT;
}

static void tasks_path(struct introspect *in, struct evhttp_request *req, const char *query)
{
	struct evkeyvalq q;
	if (evhttp_parse_query_str(query ? query : "", &q) < 0) {
		endpoint_send_message(req, 400, "Unable to parse the query");
		return;
	}
	const char *arn = evhttp_find_header(&q, "taskarn"), *docker = evhttp_find_header(&q, "dockerid");
	struct berth_err err = { 0 };
	_cleanup_(store_task_freep) struct store_task *t = NULL;
	cJSON *o = NULL;
	if (arn && docker) {
		endpoint_send_message(req, 400, "Request contains both taskarn and dockerid; "
				      "specify one");
	} else if (arn && (strncmp(arn, "arn:", 4) != 0 || store_task_get(in->store, arn, &t, &err) < 0)) {
		endpoint_send_message(req, 404, "Unable to find task with the given ARN");
	} else if (docker && task_of_container(in, docker, &t) < 0) {
		endpoint_send_message(req, 404, "Unable to find task for the given docker id");
	} else if (t) {
		endpoint_send_json(req, 200, task_json(t));
	} else {
		int r = all_tasks(in, &o);
		endpoint_send_json(req, r < 0 ? 500 : 200, o);
	}
	evhttp_clear_headers(&q);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct introspect *in = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	if (path && !strcmp(path, "/v1/metadata"))
		endpoint_send_json(req, 200, metadata_json(in));
	else if (path && !strcmp(path, "/v1/tasks"))
		tasks_path(in, req, evhttp_uri_get_query(uri));
	else
		endpoint_send_message(req, 404, "Not found: the agent serves /v1/metadata and "
				      "/v1/tasks");
}

/* Listens on cfg.spec: 0, or -EADDRINUSE while a connection holds the
 * port (tried again each INTROSPECT_RETRY_MS), or another error. */
static int listen_now(struct introspect *in, struct berth_err *err)
{
	int fd, port, r = endpoint_bind(in->cfg.spec, "--introspection", false, &fd, &port, err);
	if (r < 0)
		return r;
	if ((r = endpoint_new(in->base, fd, in->cfg.log, on_request, in, &in->ep, err)) < 0)
		return r;
	if (in->cfg.log)
		fprintf(in->cfg.log, "berth daemon: agent introspection on %.*s:%d\n",
			(int)strcspn(in->cfg.spec, ":"), in->cfg.spec, port);
	return 0;
}

static void retry_later(struct introspect *in)
{
	struct timeval tv = { INTROSPECT_RETRY_MS / 1000, 0 };
	evtimer_add(in->retry, &tv);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct introspect *in = arg;
	struct berth_err err = { 0 };
	int r = listen_now(in, &err);
	if (r == -EADDRINUSE)
		retry_later(in);
	else if (r < 0 && in->cfg.log)
		fprintf(in->cfg.log, "berth daemon: agent introspection is off: %s\n", err.msg);
}

/* Reserves the port first, so that once the connection holding it (if
 * any) ends, no other takes it. */
int introspect_new(struct event_base *base, struct store *store,
		   const struct introspect_config *cfg, struct introspect **ret,
		   struct berth_err *err)
{
	const char *colon = strrchr(cfg->spec, ':');
	bool reserved;
	int r = net_reserve_local_port(colon ? atoi(colon + 1) : 0, &reserved, err);
	if (r < 0)
		return berth_err_wrap(err, "--introspection %s", cfg->spec);
	if (reserved && cfg->log)
		fprintf(cfg->log, "berth daemon: reserved port %s of the ephemeral range for the "
			"agent introspection (net.ipv4.ip_local_reserved_ports)\n", colon + 1);
	_cleanup_(introspect_freep) struct introspect *in = calloc(1, sizeof(*in));
	if (!in || !(in->retry = evtimer_new(base, on_retry, in)))
		return berth_errf(err, ENOMEM, "out of memory");
	in->base = base;
	in->store = store;
	in->cfg = *cfg;
	r = listen_now(in, err);
	if (r == -EADDRINUSE) {
		if (cfg->log)
			fprintf(cfg->log, "berth daemon: agent introspection: %s; trying again each "
				"second\n", err->msg);
		berth_err_clear(err);
		retry_later(in);
	} else if (r < 0) {
		return r;
	}
	*ret = TAKE_PTR(in);
	return 0;
}

void introspect_free(struct introspect *in)
{
	if (!in)
		return;
	endpoint_free(in->ep);
	if (in->retry)
		event_free(in->retry);
	free(in);
}
