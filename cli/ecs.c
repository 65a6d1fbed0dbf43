#include "cli/ecs.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ECS_TARGET_PREFIX "X-Amz-Target: AmazonEC2ContainerServiceV20141113."
#define ECS_CONNECT_TIMEOUT 10L
/* RunTask may pull images before it answers. */
#define ECS_TIMEOUT 900L

struct ecs {
	CURL *h;
	char *socket;
	char type[128];
};

int ecs_open(const char *socket_path, struct ecs **ret, struct berth_err *err)
{
	/* One command, one thread: no once-guard needed. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return berth_errf(err, ENOMEM, "libcurl: global initialisation failed");
	struct ecs *e = calloc(1, sizeof(*e));
	if (!e || !(e->socket = strdup(socket_path)) || !(e->h = curl_easy_init())) {
		ecs_close(e);
		return berth_errf(err, ENOMEM, "ECS client: out of memory");
	}
	*ret = e;
	return 0;
}

void ecs_close(struct ecs *e)
{
	if (!e)
		return;
	if (e->h)
		curl_easy_cleanup(e->h);
	free(e->socket);
	free(e);
	curl_global_cleanup();
}

const char *ecs_error_type(const struct ecs *e)
{
	return e->type;
}

/* OP is an ECS operation, or a whole target ("BerthV20261208.ListVolumes"). */
static struct curl_slist *request_headers(const char *op)
{
	char target[256];
	if (strchr(op, '.'))
		snprintf(target, sizeof(target), "X-Amz-Target: %s", op);
	else
		snprintf(target, sizeof(target), ECS_TARGET_PREFIX "%s", op);
	struct curl_slist *h = curl_slist_append(NULL, target), *n;
	const char *more[] = { "Content-Type: application/x-amz-json-1.1",
			       "Expect:" /* no 100-continue round trip */ };
	for (size_t i = 0; h && i < ARRAY_SIZE(more); i++) {
		if (!(n = curl_slist_append(h, more[i]))) {
			curl_slist_free_all(h);
			return NULL;
		}
		h = n;
	}
	return h;
}

/* The transfer itself, with HDRS (taken; NULL: out of memory): body into
 * *ret_body (NUL-terminated), status code. */
static int transfer(struct ecs *e, const char *op, struct curl_slist *hdrs, const char *body,
		    char **ret_body, long *ret_status, struct berth_err *err)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	if (!hdrs || !out) {
		curl_slist_free_all(hdrs);
		if (out)
			fclose(out);
		free(buf);
		return berth_errf(err, ENOMEM, "%s: out of memory", op);
	}
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *h = e->h;
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, e->socket);
	curl_easy_setopt(h, CURLOPT_URL, "http://localhost/");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, ECS_CONNECT_TIMEOUT);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, ECS_TIMEOUT);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "berth");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	CURLcode rc = curl_easy_perform(h);
	long os_errno = 0;
	curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, ret_status);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_slist_free_all(hdrs);
	fclose(out);
	if (rc == CURLE_COULDNT_CONNECT && os_errno) {
		free(buf);
		return berth_errnof(err, (int)os_errno, "cannot reach the berth daemon at %s", e->socket);
	}
	if (rc != CURLE_OK) {
		free(buf);
		return berth_errf(err, EIO, "cannot reach the berth daemon at %s: %s", e->socket,
				  errbuf[0] ? errbuf : curl_easy_strerror(rc));
	}
	*ret_body = buf;
	return 0;
}

/* A non-200 answer: the ECS error body, or what there is of it. */
static int answer_error(struct ecs *e, const char *op, long status, const cJSON *doc,
			const char *body, struct berth_err *err)
{
	const char *type = ecs_str(doc, "__type"), *msg = ecs_str(doc, "message");
	if (type) {
		/* "com.amazonaws.ecs#ClusterNotFoundException" style types too. */
		const char *hash = strrchr(type, '#');
		snprintf(e->type, sizeof(e->type), "%s", hash ? hash + 1 : type);
		return berth_errf(err, EPROTO, "%s: %s: %s", op, e->type, msg ? msg : "(no message)");
	}
	return berth_errf(err, EPROTO, "%s: HTTP %ld: %.200s", op, status,
			  body[0] ? body : "(empty answer)");
}

static int post(struct ecs *e, const char *op, const char *body, char **ret_body,
		long *ret_status, struct berth_err *err)
{
	return transfer(e, op, request_headers(op), body, ret_body, ret_status, err);
}

int ecs_post_form(struct ecs *e, const char *action, const char *form, char **ret_body,
		  long *ret_status, struct berth_err *err)
{
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
	struct curl_slist *n = h ? curl_slist_append(h, "Expect:") : NULL;
	if (!n)
		curl_slist_free_all(h);
	return transfer(e, action, n, form, ret_body, ret_status, err);
}

int ecs_call(struct ecs *e, const char *op, const cJSON *req, cJSON **ret,
	     struct berth_err *err)
{
	e->type[0] = '\0';
	_cleanup_free_ char *text = req ? cJSON_PrintUnformatted(req) : strdup("{}");
	if (!text)
		return berth_errf(err, ENOMEM, "%s: out of memory", op);
	_cleanup_free_ char *body = NULL;
	long status = 0;
	int r = post(e, op, text, &body, &status, err);
	if (r < 0)
		return r;
	_cleanup_(cJSON_Deletep) cJSON *doc = cJSON_Parse(body);
	if (status != 200)
		return answer_error(e, op, status, doc, body, err);
	if (!cJSON_IsObject(doc))
		return berth_errf(err, EBADMSG, "%s: the daemon's answer is not a JSON object: %.200s",
				  op, body);
	*ret = TAKE_PTR(doc);
	return 0;
}

static bool is_hex_id(const char *s, size_t n)
{
	if (n != ECS_TASK_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

int ecs_task_id(const char *arg, char id[ECS_TASK_ID_LEN + 1], struct berth_err *err)
{
	const char *s = arg;
	if (!strncmp(arg, "arn:", 4)) {
		const char *task = strstr(arg, ":task/");
		const char *slash = strrchr(arg, '/');
		s = task && slash ? slash + 1 : "";
	}
	if (!is_hex_id(s, strlen(s)))
		return berth_errf(err, EINVAL, "task %s: not a task id (32 hex digits) or task ARN",
				  arg);
	memcpy(id, s, ECS_TASK_ID_LEN + 1);
	return 0;
}

const struct ecs_describe ecs_op_tasks = { "DescribeTasks", "tasks", "taskArn", 100 };
const struct ecs_describe ecs_op_services = { "DescribeServices", "services", "serviceArn", 10 };

bool ecs_no_default_cluster(const struct ecs *e, const char *cluster)
{
	return !strcmp(cluster, "default") && !strcmp(e->type, "ClusterNotFoundException");
}

static bool has_item(const cJSON *items, const char *key, const char *arn)
{
	const cJSON *t;
	cJSON_ArrayForEach(t, items) {
		const char *a = ecs_str(t, key);
		if (a && !strcmp(a, arn))
			return true;
	}
	return false;
}

/* The request for refs[from, from + d->batch). */
static cJSON *describe_request(const struct ecs_describe *d, const char *cluster,
			       const cJSON *refs, int from)
{
	_cleanup_(cJSON_Deletep) cJSON *req = cJSON_CreateObject();
	cJSON *list = req ? cJSON_AddArrayToObject(req, d->member) : NULL;
	if (!list || !cJSON_AddStringToObject(req, "cluster", cluster))
		return NULL;
	int n = cJSON_GetArraySize(refs);
	for (int i = from; i < n && i < from + d->batch; i++)
		if (!cJSON_AddItemToArray(list, cJSON_Duplicate(cJSON_GetArrayItem(refs, i), 0)))
			return NULL;
	return TAKE_PTR(req);
}

/* One call of d for refs[from, from + d->batch); new items go to out. */
static int describe_batch(struct ecs *e, const struct ecs_describe *d, const char *cluster,
			  const cJSON *refs, int from, cJSON *out, struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *req = describe_request(d, cluster, refs, from), *resp = NULL;
	if (!req)
		return berth_errf(err, ENOMEM, "%s: out of memory", d->op);
	int r = ecs_call(e, d->op, req, &resp, err);
	if (r < 0)
		return r;
	cJSON *items = cJSON_GetObjectItemCaseSensitive(resp, d->member);
	while (cJSON_GetArraySize(items) > 0) {
		cJSON *t = cJSON_DetachItemFromArray(items, 0);
		const char *arn = ecs_str(t, d->key);
		if (arn && !has_item(out, d->key, arn))
			cJSON_AddItemToArray(out, t);
		else
			cJSON_Delete(t);
	}
	return 0;
}

int ecs_describe_all(struct ecs *e, const struct ecs_describe *d, const char *cluster,
		     const cJSON *refs, cJSON *out, struct berth_err *err)
{
	int r = 0;
	for (int i = 0; r == 0 && i < cJSON_GetArraySize(refs); i += d->batch)
		r = describe_batch(e, d, cluster, refs, i, out, err);
	return r;
}

int ecs_describe_one(struct ecs *e, const struct ecs_describe *d, const char *cluster,
		     const char *ref, cJSON **ret, struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *refs = cJSON_CreateArray(), *out = cJSON_CreateArray();
	if (!refs || !out || !cJSON_AddItemToArray(refs, cJSON_CreateString(ref)))
		return berth_errf(err, ENOMEM, "%s: out of memory", d->op);
	int r = ecs_describe_all(e, d, cluster, refs, out, err);
	/* No default cluster yet: nothing ever ran there. */
	if (r < 0 && ecs_no_default_cluster(e, cluster)) {
		*ret = NULL;
		return 0;
	}
	if (r < 0)
		return r;
	*ret = cJSON_GetArraySize(out) > 0 ? cJSON_DetachItemFromArray(out, 0) : NULL;
	return 0;
}

int ecs_describe_task(struct ecs *e, const char *cluster, const char *task, cJSON **ret,
		      struct berth_err *err)
{
	return ecs_describe_one(e, &ecs_op_tasks, cluster, task, ret, err);
}

int ecs_stop_task(struct ecs *e, const char *cluster, const char *task, const char *reason,
		  cJSON **ret, struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *req = cJSON_CreateObject(), *resp = NULL;
	if (!req || !cJSON_AddStringToObject(req, "cluster", cluster) ||
	    !cJSON_AddStringToObject(req, "task", task) ||
	    !cJSON_AddStringToObject(req, "reason", reason))
		return berth_errf(err, ENOMEM, "StopTask: out of memory");
	int r = ecs_call(e, "StopTask", req, &resp, err);
	if (r == 0 && ret)
		*ret = TAKE_PTR(resp);
	return r;
}

/* Sets member name of obj to a copy of value (NULL: removes it). */
static int set_string(cJSON *obj, const char *name, const char *value)
{
	cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
	return !value || cJSON_AddStringToObject(obj, name, value) ? 0 : -ENOMEM;
}

int ecs_list_all(struct ecs *e, const char *op, cJSON *req, const char *member, cJSON *out,
		 struct berth_err *err)
{
	cJSON_DeleteItemFromObjectCaseSensitive(req, "maxResults");
	if (!cJSON_AddNumberToObject(req, "maxResults", 100))
		return berth_errf(err, ENOMEM, "%s: out of memory", op);
	_cleanup_(cJSON_Deletep) cJSON *resp = NULL;
	do {
		cJSON *prev = TAKE_PTR(resp);
		int r = set_string(req, "nextToken", ecs_str(prev, "nextToken"));
		cJSON_Delete(prev);
		if (r < 0)
			return berth_errf(err, ENOMEM, "%s: out of memory", op);
		if ((r = ecs_call(e, op, req, &resp, err)) < 0)
			return r;
		const cJSON *v;
		cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(resp, member))
			if (cJSON_IsString(v) &&
			    !cJSON_AddItemToArray(out, cJSON_CreateString(v->valuestring)))
				return berth_errf(err, ENOMEM, "%s: out of memory", op);
	} while (ecs_str(resp, "nextToken"));
	return 0;
}

int ecs_sort_array(cJSON *arr, int (*cmp)(const void *, const void *))
{
	int n = cJSON_GetArraySize(arr);
	if (n < 2)
		return 0;
	_cleanup_free_ cJSON **v = calloc((size_t)n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (int i = 0; i < n; i++)
		v[i] = cJSON_DetachItemFromArray(arr, 0);
	qsort(v, (size_t)n, sizeof(*v), cmp);
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(arr, v[i]);
	return 0;
}

const char *ecs_str(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *ecs_td_name(const char *arn)
{
	const char *p = arn ? strstr(arn, ":task-definition/") : NULL;
	return p ? p + strlen(":task-definition/") : arn ? arn : "-";
}

int ecs_print_json(const cJSON *v)
{
	_cleanup_free_ char *text = cJSON_Print(v);
	if (!text) {
		fprintf(stderr, "berth: out of memory formatting JSON\n");
		return 1;
	}
	puts(text);
	return 0;
}
