/* daemon/server/api: HTTP listeners, the AWS JSON 1.1 envelope, dispatch. */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>  /* TAILQ_FOREACH for keyvalq_struct.h */
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "common/time.h"
#include "daemon/server/api.h"
#include "daemon/server/api_conn.h"
#include "daemon/server/api_decode.h"
#include "daemon/server/api_encode.h"
#include "daemon/server/api_guard.h"
#include "daemon/ecs/berth_volumes.h"
#include "daemon/ecs/ecs.h"
#include "daemon/elb/elb.h"
#include "daemon/secrets/secrets.h"
#include "daemon/server/sigv4.h"

#define CONTENT_TYPE "application/x-amz-json-1.1"

struct api_listener {
	struct api *api;
	struct evhttp *http;
	bool auth;                  /* SigV4 required (TCP) */
	char *unix_path;            /* the socket to unlink on free, or NULL */
	dev_t dev;
	ino_t ino;
	struct api_listener *next;
};

struct api {
	struct event_base *base;
	struct store *store;
	struct api_config cfg;
	struct api_listener *listeners;
	struct api_conns *conns;        /* every listener's connections */
	struct api_encoder enc;         /* answers as text */
};

/* body: the operation's request shape has required members, so an empty
 * body is an error rather than {}. */
static const struct api_op {
	const char *name;
	int (*fn)(struct api_call *c);
	bool body;
	/* Reads only: runs in one store snapshot (store_read_begin()). */
	bool read;
} ops[] = {
	{ "CreateCluster", api_op_create_cluster, false, false },
	{ "DescribeClusters", api_op_describe_clusters, false, true },
	{ "ListClusters", api_op_list_clusters, false, true },
	{ "DeleteCluster", api_op_delete_cluster, true, false },
	{ "PutClusterCapacityProviders", api_op_put_cluster_capacity_providers, true, false },
	{ "UpdateCluster", api_op_update_cluster, true, false },
	{ "UpdateClusterSettings", api_op_update_cluster_settings, true, false },
	{ "UpdateTaskProtection", api_op_update_task_protection, true, false },
	{ "GetTaskProtection", api_op_get_task_protection, true, true },
	{ "PutAttributes", api_op_put_attributes, true, false },
	{ "ListAttributes", api_op_list_attributes, true, true },
	{ "DeleteAttributes", api_op_delete_attributes, true, false },
	{ "PutAccountSetting", api_op_put_account_setting, true, false },
	{ "PutAccountSettingDefault", api_op_put_account_setting_default, true, false },
	{ "ListAccountSettings", api_op_list_account_settings, false, true },
	{ "DeleteAccountSetting", api_op_delete_account_setting, true, false },
	{ "RegisterTaskDefinition", api_op_register_task_definition, true, false },
	{ "DescribeTaskDefinition", api_op_describe_task_definition, true, true },
	{ "ListTaskDefinitions", api_op_list_task_definitions, false, true },
	{ "ListTaskDefinitionFamilies", api_op_list_task_definition_families, false, true },
	{ "DeregisterTaskDefinition", api_op_deregister_task_definition, true, false },
	{ "DeleteTaskDefinitions", api_op_delete_task_definitions, true, false },
	{ "RunTask", api_op_run_task, true, false },
	{ "StartTask", api_op_start_task, true, false },
	{ "StopTask", api_op_stop_task, true, false },
	{ "DescribeTasks", api_op_describe_tasks, true, true },
	{ "ListTasks", api_op_list_tasks, false, true },
	{ "ListContainerInstances", api_op_list_container_instances, false, true },
	{ "DescribeContainerInstances", api_op_describe_container_instances, true, true },
	{ "UpdateContainerInstancesState", api_op_update_container_instances_state, true, false },
	{ "CreateService", api_op_create_service, true, false },
	{ "UpdateService", api_op_update_service, true, false },
	{ "DeleteService", api_op_delete_service, true, false },
	{ "DescribeServices", api_op_describe_services, true, true },
	{ "ListServices", api_op_list_services, false, true },
	{ "TagResource", api_op_tag_resource, true, false },
	{ "UntagResource", api_op_untag_resource, true, false },
	{ "ListTagsForResource", api_op_list_tags_for_resource, true, true },
};

static const struct api_op ssm_ops[] = {
	{ "PutParameter", api_op_ssm_put_parameter, true, false },
	{ "GetParameter", api_op_ssm_get_parameter, true, true },
	{ "GetParameters", api_op_ssm_get_parameters, true, true },
	{ "GetParametersByPath", api_op_ssm_get_parameters_by_path, true, true },
	{ "DescribeParameters", api_op_ssm_describe_parameters, false, true },
	{ "DeleteParameter", api_op_ssm_delete_parameter, true, false },
};

static const struct api_op sm_ops[] = {
	{ "CreateSecret", api_op_sm_create_secret, true, false },
	{ "GetSecretValue", api_op_sm_get_secret_value, true, true },
	{ "PutSecretValue", api_op_sm_put_secret_value, true, false },
	{ "DescribeSecret", api_op_sm_describe_secret, true, true },
	{ "ListSecrets", api_op_sm_list_secrets, false, true },
	{ "DeleteSecret", api_op_sm_delete_secret, true, false },
};

/* Berth's own (daemon/ecs/berth_volumes.h). */
static const struct api_op berth_ops[] = {
	{ "ListVolumes", api_op_list_volumes, false, false },
	{ "DeleteVolume", api_op_delete_volume, true, false },
};

/* The AWS JSON 1.1 services on this endpoint: X-Amz-Target is
 * "<prefix><operation>", and the SigV4 credential scope must name the
 * signing service of the one the request is for.  A request naming none of
 * them is checked against the first. */
static const struct api_service {
	const char *prefix;
	const char *signing;
	const struct api_op *ops;
	size_t n_ops;
} services[] = {
	{ "AmazonEC2ContainerServiceV20141113.", "ecs", ops, ARRAY_SIZE(ops) },
	{ "AmazonSSM.", "ssm", ssm_ops, ARRAY_SIZE(ssm_ops) },
	{ "secretsmanager.", "secretsmanager", sm_ops, ARRAY_SIZE(sm_ops) },
	{ BERTH_TARGET_PREFIX, "berth", berth_ops, ARRAY_SIZE(berth_ops) },
};

/* ---- the envelope ---- */


const char *api_reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	default:  return "Internal Server Error";
	}
}

static void free_body(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	free((void *)data);
}

/* body (taken): evhttp writes it from where it is, no copy. */
static void send_typed(struct evhttp_request *req, int status, const char *rid, const char *type,
		       char *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "x-amzn-RequestId", rid);
	struct evbuffer *b = body ? evbuffer_new() : NULL;
	if (b && evbuffer_add_reference(b, body, strlen(body), free_body, NULL) < 0) {
		evbuffer_free(b);
		b = NULL;
	}
	if (!b)
		free(body);
	evhttp_send_reply(req, b ? status : 500, api_reason_phrase(b ? status : 500), b);
	if (b)
		evbuffer_free(b);
}

static void send_owned(struct evhttp_request *req, int status, const char *rid, char *body)
{
	send_typed(req, status, rid, CONTENT_TYPE, body);
}

static void send_body(struct evhttp_request *req, int status, const char *rid, const char *body)
{
	send_owned(req, status, rid, strdup(body));
}

/* The body of an error answer (malloc'd; NULL when out of memory).  extra
 * (may be NULL; taken): more members of the body, such as
 * ConflictException's resourceIds. */
static char *error_body(struct api *a, const char *rid, int status, const char *type,
			const char *message, cJSON *extra)
{
	if (status >= 500 && a->cfg.log)
		fprintf(a->cfg.log, "berth daemon: request %s: %s: %s\n", rid, type, message);
	_cleanup_(cJSON_Deletep) cJSON *o = extra ? extra : cJSON_CreateObject();
	if (o && json_add_string(o, "__type", type) && json_add_string(o, "message", message))
		return cJSON_PrintUnformatted(o);
	return NULL;
}

static const char oom_body[] = "{\"__type\":\"ServerException\",\"message\":\"out of memory\"}";

static void send_error(struct api *a, struct evhttp_request *req, const char *rid, int status,
		       const char *type, const char *message)
{
	char *s = error_body(a, rid, status, type, message, NULL);
	if (s)
		send_owned(req, status, rid, s);
	else
		send_body(req, 500, rid, oom_body);
}

/* An error in the protocol of the request: ELBv2's XML for a Query one. */
static void send_fail(struct api *a, struct evhttp_request *req, const char *rid, bool query,
		      int status, const char *type, const char *message)
{
	if (query)
		send_typed(req, status, rid, ELB_CONTENT_TYPE, elb_error_xml(type, message, rid));
	else
		send_error(a, req, rid, status, type, message);
}

/* SigV4 for a TCP request: 0 when it may proceed, -1 after answering. */
static int check_auth(struct api *a, struct evhttp_request *req, const char *rid,
		      const char *signing, bool query, const void *body, size_t len)
{
	if (!a->cfg.credentials)        /* --insecure-no-auth */
		return 0;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	size_t n = 0;
	struct evkeyval *kv;
	TAILQ_FOREACH(kv, in, next)
		n++;
	_cleanup_free_ struct api_http_header *hs = calloc(n ? n : 1, sizeof(*hs));
	if (!hs) {
		send_fail(a, req, rid, query, 500, API_E_SERVER, "out of memory");
		return -1;
	}
	n = 0;
	TAILQ_FOREACH(kv, in, next)
		hs[n++] = (struct api_http_header){ kv->key, strlen(kv->key), kv->value, strlen(kv->value) };
	struct api_sigv4_request sr = {
		.method = "POST",
		.target = evhttp_request_get_uri(req),
		.headers = hs,
		.n_headers = n,
		.body = body,
		.body_len = len,
	};
	struct api_sigv4_result res;
	struct berth_err err = { 0 };
	int r = api_sigv4_verify(&sr, a->cfg.credentials, a->cfg.region, signing, time(NULL), &res, &err);
	if (r < 0)
		send_fail(a, req, rid, query, 500, API_E_SERVER, err.msg);
	else if (!res.ok)
		send_fail(a, req, rid, query, res.http_status ? res.http_status : 403, res.error_type,
			  res.message);
	bool ok = r == 0 && res.ok;
	api_sigv4_result_done(&res);
	return ok ? 0 : -1;
}

static const struct api_service *find_service(const char *target)
{
	for (size_t i = 0; target && i < ARRAY_SIZE(services); i++)
		if (strncmp(target, services[i].prefix, strlen(services[i].prefix)) == 0)
			return &services[i];
	return NULL;
}

static const struct api_op *find_op(const struct api_service *svc, const char *target)
{
	if (!svc)
		return NULL;
	const char *name = target + strlen(svc->prefix);
	for (size_t i = 0; i < svc->n_ops; i++)
		if (strcmp(name, svc->ops[i].name) == 0)
			return &svc->ops[i];
	return NULL;
}

/* The ELBv2 API speaks AWS Query: a form body and no X-Amz-Target. */
static bool is_query(struct evhttp_request *req, const char *target)
{
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	static const char form[] = "application/x-www-form-urlencoded";
	return !target && ct && strncasecmp(ct, form, sizeof(form) - 1) == 0;
}

static void handle_query(struct api_listener *l, struct evhttp_request *req, const char *rid,
			 const char *body, size_t len)
{
	struct api *a = l->api;
	if (l->auth && check_auth(a, req, rid, ELB_SIGNING_NAME, true, body, len) < 0)
		return;
	if (!a->cfg.elb) {
		send_fail(a, req, rid, true, 400, "InvalidAction",
			  "This daemon serves no load balancer API.");
		return;
	}
	int status;
	char *xml;
	elb_serve(a->cfg.elb, body, len, rid, &status, &xml);
	/* What the request wrote is on disk before it is answered (a load
	 * balancer change is rare: it commits at once). */
	struct berth_err err = { 0 };
	if (store_group_commit(a->store, &err) < 0) {
		free(xml);
		send_fail(a, req, rid, true, 500, API_E_SERVER, err.msg);
		return;
	}
	send_typed(req, xml ? status : 500, rid, ELB_CONTENT_TYPE, xml);
}

/* An answer made, waiting for the commit of the writes it reports. */
struct reply {
	struct api *a;
	struct evhttp_request *req;
	char rid[37];
	int status;
	char *body;                 /* NULL: out of memory */
};

/* store_commit_fn: sends the answer, or a ServerException when what it
 * reports never reached the disk. */
static void reply_send(void *arg, int r, const struct berth_err *err)
{
	struct reply *rp = arg;
	if (r < 0) {
		char msg[BERTH_ERR_MAX + 64];
		snprintf(msg, sizeof(msg), "the request's writes were not committed: %s",
			 err && err->msg[0] ? err->msg : "store error");
		free(rp->body);
		rp->body = error_body(rp->a, rp->rid, 500, API_E_SERVER, msg, NULL);
		rp->status = 500;
	}
	if (rp->body)
		send_owned(rp->req, rp->status, rp->rid, TAKE_PTR(rp->body));
	else
		send_body(rp->req, 500, rp->rid, oom_body);
	free(rp);
}

/* The answer of a call that failed: its error body. */
static void reply_error(struct api *a, struct reply *rp, struct api_call *c, const char *op)
{
	if (!c->type)
		api_error(c, 0, API_E_SERVER, "%s: no response", op);
	rp->status = c->status;
	rp->body = error_body(a, rp->rid, c->status, c->type, c->message, c->error_members);
	cJSON_Delete(c->out);
}

/* Runs the operation: a read in one snapshot, a write as one unit of the
 * store (a savepoint in the turn's group).  Each store call in it is a
 * savepoint of its own, undone alone when it fails, so a failing request
 * leaves what it wrote before it failed (a RunTask's "default" cluster),
 * as when every call was its own transaction, and never touches what the
 * requests beside it in the group wrote.  Fills RP. */
static void run_op(struct api *a, const struct api_op *op, struct api_call *c,
		   struct reply *rp)
{
	struct berth_err err = { 0 };
	struct store_tx unit _cleanup_tx_ = { 0 };
	store_group_bound(a->store);  /* a long turn: what is waiting goes now */
	int r = op->read ? store_read_begin(c->store, &err) : store_tx_begin(c->store, &unit, &err);
	if (r < 0) {
		api_error(c, 0, API_E_SERVER, "%s", err.msg);
		reply_error(a, rp, c, op->name);
		return;
	}
	r = op->fn(c);
	if (op->read)
		store_read_end(c->store);
	else if (store_tx_commit(&unit, &err) < 0 && r >= 0 && c->out)
		r = api_error(c, 0, API_E_SERVER, "%s", err.msg);
	if (r < 0 || !c->out) {
		reply_error(a, rp, c, op->name);
		return;
	}
	cJSON_Delete(c->error_members);  /* members of an error that was not raised */
	rp->body = api_encode(&a->enc, c->out);
	cJSON_Delete(c->out);
	rp->status = rp->body ? 200 : 500;
}

/* One request, in the order AWS's front end checks: route, size,
 * signature, operation, body, then the operation's own validation. */
static void handle(struct evhttp_request *req, void *arg)
{
	struct api_listener *l = arg;
	struct api *a = l->api;
	char rid[37];
	json_uuid(rid);

	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	if (!path || strcmp(path, "/") != 0) {
		send_error(a, req, rid, 404, "UnknownOperationException",
			   "The ECS API is served at POST / only.");
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
		send_error(a, req, rid, 405, "UnknownOperationException",
			   "The ECS API accepts POST requests only.");
		return;
	}
	/* The size was checked by api_guard before the body was read. */
	struct evbuffer *inbuf = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(inbuf);
	const char *body = len ? (const char *)evbuffer_pullup(inbuf, -1) : "";
	if (!body) {
		send_error(a, req, rid, 500, API_E_SERVER, "out of memory");
		return;
	}
	const char *target = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Amz-Target");
	if (is_query(req, target)) {
		handle_query(l, req, rid, body, len);
		return;
	}
	const struct api_service *svc = find_service(target);
	if (l->auth && check_auth(a, req, rid, (svc ? svc : services)->signing, false, body, len) < 0)
		return;

	const struct api_op *op = find_op(svc, target);
	if (!op) {
		char msg[256];
		snprintf(msg, sizeof(msg), target ? "Unknown operation '%.200s'."
			 : "Missing X-Amz-Target header: no operation named.", target);
		send_error(a, req, rid, 400, "UnknownOperationException", msg);
		return;
	}

	_cleanup_(cJSON_Deletep) cJSON *in = NULL;
	struct api_decode_error de;
	int r = api_decode_body(op->name, op->body, body, len, &in, &de);
	if (r < 0) {
		send_error(a, req, rid, r == -ENOMEM ? 500 : 400, de.type, de.message);
		return;
	}

	struct api_call c = {
		/* A read sees committed state only, when there is a reader. */
		.store = op->read && a->cfg.reader ? a->cfg.reader : a->store,
		.sched = a->cfg.sched,
		.svc = a->cfg.svc,
		.region = a->cfg.region,
		.account_id = a->cfg.account_id,
		.secrets_key = a->cfg.secrets_key,
		.in = in,
		.now_ms = berth_real_ms(),
	};
	struct reply *rp = calloc(1, sizeof(*rp));
	if (!rp) {
		send_error(a, req, rid, 500, API_E_SERVER, "out of memory");
		return;
	}
	*rp = (struct reply){ .a = a, .req = req, .status = 200 };
	memcpy(rp->rid, rid, sizeof(rp->rid));
	run_op(a, op, &c, rp);
	/* Whatever the operation wrote, or read on the writing connection,
	 * may still be in the open group: the answer waits until that is on
	 * disk.  A read on the reader saw none of it and goes at once. */
	struct berth_err err = { 0 };
	if (store_after_commit(c.store, reply_send, rp, &err) < 0) {
		/* No room to wait: the group commits now. */
		int cr = store_group_commit(c.store, &err);
		reply_send(rp, cr, &err);
	}
}

/* ---- listeners ---- */

int api_new(struct event_base *base, struct store *store, const struct api_config *cfg,
	    struct api **ret, struct berth_err *err)
{
	if (!cfg->region || !*cfg->region || !cfg->account_id || !*cfg->account_id)
		return berth_errf(err, EINVAL, "api: a region and an account id are required");
	struct api *a = calloc(1, sizeof(*a));
	if (!a)
		return berth_errf(err, ENOMEM, "api: out of memory");
	a->base = base;
	a->store = store;
	a->cfg = *cfg;
	struct api_conn_limits lim = {
		.request_timeout_ms = cfg->request_timeout_ms ? cfg->request_timeout_ms
							      : API_REQUEST_TIMEOUT_MS,
		.max_total = cfg->max_connections ? cfg->max_connections : API_MAX_CONNECTIONS,
		.max_per_source = cfg->max_connections_per_source ? cfg->max_connections_per_source
								  : API_MAX_CONNECTIONS / 4,
		.log = cfg->log,
	};
	int r = api_conns_new(base, &lim, &a->conns, err);
	if (r < 0) {
		free(a);
		return r;
	}
	*ret = a;
	return 0;
}

static int listener_add(struct api *a, struct evconnlistener *lev, bool auth,
			struct api_listener **ret, struct berth_err *err)
{
	struct api_listener *l = calloc(1, sizeof(*l));
	struct evhttp *http = l ? evhttp_new(a->base) : NULL;
	if (!http) {
		free(l);
		evconnlistener_free(lev);
		return berth_errf(err, ENOMEM, "api: out of memory");
	}
	l->api = a;
	l->http = http;
	l->auth = auth;
	/* api_guard refuses first, in AWS's error format, whatever evhttp
	 * would answer with an HTML page: these limits of evhttp's own are
	 * only a second line, never reached. */
	evhttp_set_bevcb(http, api_conns_bevcb, a->conns);
	evhttp_set_max_headers_size(http, 2 * API_GUARD_HEAD_MAX);
	evhttp_set_max_body_size(http, API_BODY_MAX);
	/* Idle keep-alive connections; a request's own deadline is api_conn's. */
	evhttp_set_timeout(http, API_IDLE_TIMEOUT);
	/* Every method api_guard lets through reaches handle(), which answers
	 * the wrong ones (404, 405) itself. */
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
				   EVHTTP_REQ_PATCH | EVHTTP_REQ_TRACE);
	evhttp_set_gencb(http, handle, l);
	if (!evhttp_bind_listener(http, lev)) {
		evconnlistener_free(lev);
		evhttp_free(http);
		free(l);
		return berth_errf(err, ENOMEM, "api: cannot attach the HTTP server");
	}
	l->next = a->listeners;
	a->listeners = l;
	*ret = l;
	return api_conns_watch(a->conns, lev, err);
}

/* Is something accepting connections at PATH?  A socket file whose owner
 * died refuses them. */
static bool socket_alive(const struct sockaddr_un *sa)
{
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true;  /* cannot tell: do not remove it */
	return connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno != ECONNREFUSED;
}

int api_listen_unix(struct api *a, const char *path, struct berth_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (!*path || strlen(path) >= sizeof(sa.sun_path))
		return berth_errf(err, ENAMETOOLONG, "listen unix:%s: path empty or longer than %zu bytes",
				  path, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);

	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return berth_errf(err, EEXIST, "listen unix:%s: exists and is not a socket", path);
		if (socket_alive(&sa))
			return berth_errf(err, EADDRINUSE, "listen unix:%s: another daemon is serving it", path);
		if (unlink(path) < 0 && errno != ENOENT)
			return berth_errnof(err, errno, "listen unix:%s: remove stale socket", path);
	}

	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return berth_errnof(err, errno, "listen unix:%s: socket", path);
	/* The socket is born 0600 (the umask covers the window between bind
	 * and chmod) and is made so explicitly before anyone can connect. */
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	umask(old);
	if (r < 0)
		return berth_errnof(err, e, "listen unix:%s: bind", path);
	if (chmod(path, 0600) < 0 || lstat(path, &st) < 0) {
		e = errno;
		unlink(path);
		return berth_errnof(err, e, "listen unix:%s: chmod", path);
	}
	_cleanup_free_ char *copy = strdup(path);
	if (!copy) {
		unlink(path);
		return berth_errf(err, ENOMEM, "listen unix:%s: out of memory", path);
	}
	struct evconnlistener *lev = evconnlistener_new(a->base, NULL, NULL,
							LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
							-1, fd);
	if (!lev) {
		e = errno ? errno : ENOMEM;
		unlink(path);
		return berth_errnof(err, e, "listen unix:%s: listen", path);
	}
	TAKE_FD(fd);  /* the listener closes it now */
	struct api_listener *l;
	if (listener_add(a, lev, false, &l, err) < 0) {
		unlink(path);
		return -ENOMEM;
	}
	l->unix_path = TAKE_PTR(copy);
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	return 0;
}

int api_listen_tcp(struct api *a, const char *host, const char *port, int *ret_port,
		   struct berth_err *err)
{
	if (!a->cfg.credentials && !a->cfg.insecure_no_auth)
		return berth_errf(err, EPERM, "listen tcp:%s:%s: a TCP listener needs --credentials "
				  "(or --insecure-no-auth)", host, port);
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	};
	struct addrinfo *res = NULL;
	int g = getaddrinfo(host, port, &hints, &res);
	if (g != 0)
		return berth_errf(err, EINVAL, "listen tcp:%s:%s: %s", host, port, gai_strerror(g));
	struct evconnlistener *lev = evconnlistener_new_bind(
		a->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
		-1, res->ai_addr, (int)res->ai_addrlen);
	int e = errno;
	freeaddrinfo(res);
	if (!lev)
		return berth_errnof(err, e ? e : EADDRNOTAVAIL, "listen tcp:%s:%s", host, port);
	/* No Nagle (accepted sockets inherit it on Linux): libevent writes an
	 * answer in 16 KiB pieces, and the last piece of a larger one would
	 * otherwise wait ~40 ms for the client's delayed ACK. */
	int one = 1;
	setsockopt(evconnlistener_get_fd(lev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int bound = 0;
	if (getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&ss, &sl) == 0)
		bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						       : ((struct sockaddr_in *)&ss)->sin_port);
	struct api_listener *l;
	int r = listener_add(a, lev, true, &l, err);
	if (r < 0)
		return r;
	if (ret_port)
		*ret_port = bound;
	return 0;
}

void api_free(struct api *a)
{
	if (!a)
		return;
	/* The answers still waiting for a commit go out before their
	 * connections are freed. */
	struct berth_err ignored = { 0 };
	store_group_commit(a->store, &ignored);
	struct api_listener *l = a->listeners;
	while (l) {
		struct api_listener *next = l->next;
		evhttp_free(l->http);
		if (l->unix_path) {
			/* Only our own socket: a newer daemon may have taken
			 * the path over meanwhile. */
			struct stat st;
			if (lstat(l->unix_path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
				unlink(l->unix_path);
			free(l->unix_path);
		}
		free(l);
		l = next;
	}
	/* After every evhttp: they hand their connections back as they go. */
	api_conns_free(a->conns);
	api_encoder_done(&a->enc);
	free(a);
}
