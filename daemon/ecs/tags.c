/* daemon/ecs/tags: TagResource, UntagResource, ListTagsForResource.
 *
 * Tags belong to any resource the store holds (clusters, task definition
 * revisions, tasks, services), keyed by its full ARN.  An ARN
 * must be well formed ("arn:aws:ecs:<region>:<account>:<kind>/<id>", a
 * task definition naming its revision) or the request is an
 * InvalidParameterException; a well-formed ARN of something Berth does not
 * hold (another region or account included) is a ResourceNotFoundException
 * for TagResource and UntagResource, and for ListTagsForResource, whose
 * model has no such error, ClusterNotFoundException for a cluster and
 * InvalidParameterException for the rest.  A deleted (INACTIVE) cluster
 * keeps its tags as they were: ECS refuses to change them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/ecs/ecs.h"

/* ---- tags as every resource's requests and answers carry them ---- */

size_t api_utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

int api_add_tags(struct api_call *c, cJSON *o, const char *arn)
{
	struct store_tag *tags = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	int r = store_tags_list(c->store, arn, &tags, &n, &err);
	if (r < 0)
		return api_store_error(c, r, &err);
	cJSON *arr = json_add_array(o, "tags");
	for (size_t i = 0; arr && i < n; i++) {
		cJSON *t = json_add_object(arr);
		if (!t || !json_add_string(t, "key", tags[i].key) ||
		    !json_add_string(t, "value", tags[i].value))
			arr = NULL;
	}
	store_tags_free(tags, n);
	return arr ? 0 : api_oom(c);
}

void api_tags_in_done(struct api_tags_in *t)
{
	free(t->v);  /* the strings are the request's */
}

int api_parse_tags(struct api_call *c, struct api_tags_in *ret)
{
	const cJSON *arr, *it;
	if (api_get_array(c, c->in, "", "tags", false, STORE_TAGS_MAX, &arr) < 0)
		return -1;
	if (!arr || !cJSON_GetArraySize(arr))
		return 0;
	ret->v = calloc((size_t)cJSON_GetArraySize(arr), sizeof(*ret->v));
	if (!ret->v)
		return api_oom(c);
	cJSON_ArrayForEach(it, arr) {
		char path[24];
		snprintf(path, sizeof(path), "tags[%zu].", ret->n);
		if (!cJSON_IsObject(it))
			return api_error(c, 0, API_E_INVALID, "%.*s: expected an object",
					 (int)strlen(path) - 1, path);
		const char *k, *v;
		if (api_get_string(c, it, path, "key", true, &k) < 0 ||
		    api_get_string(c, it, path, "value", false, &v) < 0)
			return -1;
		size_t kn = api_utf8_chars(k);
		if (kn < 1 || kn > STORE_TAG_KEY_MAX)
			return api_error(c, 0, API_E_INVALID, "%skey: must be 1 to %d characters",
					 path, STORE_TAG_KEY_MAX);
		if (strncasecmp(k, "aws:", 4) == 0)
			return api_error(c, 0, API_E_INVALID, "%skey: the aws: prefix is reserved", path);
		if (v && api_utf8_chars(v) > STORE_TAG_VALUE_MAX)
			return api_error(c, 0, API_E_INVALID, "%svalue: must be at most %d characters",
					 path, STORE_TAG_VALUE_MAX);
		ret->v[ret->n++] = (struct store_tag){ .key = (char *)k, .value = (char *)(v ? v : "") };
	}
	return 0;
}


#define API_E_RESOURCE_NF "ResourceNotFoundException"
#define MSG_RESOURCE_NF "The specified resource could not be found."

/* The resource types ECS tags; the ones Berth has no table for yet are
 * well formed but never found. */
static const char *const arn_kinds[] = {
	"cluster", "task-definition", "task", "service", "container-instance",
	"capacity-provider", "task-set", NULL,
};

static bool all_of(const char *s, size_t n, const char *set)
{
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !strchr(set, s[i]))
			return false;
	return true;
}

/* The resource part after "<kind>/": one or more '/'-separated segments
 * of ECS identifier characters. */
static bool ids_valid(const char *s)
{
	static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
	if (!*s)
		return false;
	for (const char *seg = s;;) {
		size_t n = strcspn(seg, "/");
		if (n < 1 || n > API_NAME_MAX || !all_of(seg, n, chars))
			return false;
		if (!seg[n])
			return true;
		seg += n + 1;
	}
}

/* NULL when ARN is a well-formed ECS resource ARN, else why not. */
static const char *arn_problem(const char *arn)
{
	static const char prefix[] = "arn:aws:ecs:";
	if (strncmp(arn, prefix, strlen(prefix)) != 0)
		return "does not start with arn:aws:ecs:";
	const char *region = arn + strlen(prefix);
	size_t rn = strcspn(region, ":");
	if (!region[rn] || rn < 1 || rn > 32 ||
	    !all_of(region, rn, "abcdefghijklmnopqrstuvwxyz0123456789-"))
		return "has no valid region";
	const char *account = region + rn + 1;
	size_t an = strcspn(account, ":");
	if (!account[an] || an != 12 || !all_of(account, an, "0123456789"))
		return "has no valid 12-digit account";
	const char *res = account + an + 1;
	size_t kn = strcspn(res, "/");
	const char *kind = NULL;
	for (size_t i = 0; arn_kinds[i]; i++)
		if (kn == strlen(arn_kinds[i]) && strncmp(res, arn_kinds[i], kn) == 0)
			kind = arn_kinds[i];
	if (!kind || !res[kn])
		return "names no resource type ECS can tag";
	const char *id = res + kn + 1;
	if (strcmp(kind, "task-definition") == 0) {
		/* family:revision */
		const char *colon = strrchr(id, ':');
		if (!colon || colon == id || (size_t)(colon - id) > API_NAME_MAX ||
		    !all_of(id, (size_t)(colon - id),
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") ||
		    colon[1] < '1' || colon[1] > '9' || strlen(colon + 1) > 10 ||
		    strspn(colon + 1, "0123456789") != strlen(colon + 1))
			return "names no task definition revision (family:revision)";
		return NULL;
	}
	return ids_valid(id) ? NULL : "has an invalid resource id";
}

/* `resourceArn`, required and well formed. */
static int get_arn(struct api_call *c, const char **ret)
{
	if (api_get_string(c, c->in, "", "resourceArn", true, ret) < 0)
		return -1;
	const char *why = arn_problem(*ret);
	if (why)
		return api_error(c, 0, API_E_INVALID, "resourceArn: '%.512s' is not a valid ECS "
				 "resource ARN: it %s.", *ret, why);
	return 0;
}

/* A store failure of a tag operation on ARN. */
static int tag_store_error(struct api_call *c, int r, const struct berth_err *err)
{
	if (r == -ENOENT)
		return api_error(c, 0, API_E_RESOURCE_NF, MSG_RESOURCE_NF);
	return api_store_error(c, r, err);
}

/* TagResource and UntagResource on an INACTIVE cluster: ECS's
 * InvalidParameterException. */
static int check_cluster_active(struct api_call *c, const char *arn)
{
	if (!strstr(arn, ":cluster/"))
		return 0;
	_cleanup_(store_cluster_freep) struct store_cluster *cl = NULL;
	struct berth_err err = { 0 };
	int r = store_cluster_find(c->store, arn, &cl, &err);
	if (r == -ENOENT)
		return 0;  /* the tag operation's own answer */
	if (r < 0)
		return api_store_error(c, r, &err);
	if (cl->status == STORE_CLUSTER_INACTIVE)
		return api_error(c, 0, API_E_INVALID, "The specified cluster is inactive. Specify "
				 "an active cluster and try again.");
	return 0;
}

static int reply_empty(struct api_call *c)
{
	c->out = cJSON_CreateObject();
	return c->out ? 0 : api_oom(c);
}

/* ---- TagResource ---- */

int api_op_tag_resource(struct api_call *c)
{
	const char *arn;
	const cJSON *arr;
	_cleanup_(api_tags_in_done) struct api_tags_in tags = { 0 };
	/* `tags` is required here (CreateCluster's is not); api_parse_tags()
	 * then checks each one. */
	if (get_arn(c, &arn) < 0 ||
	    api_get_array(c, c->in, "", "tags", true, STORE_TAGS_MAX, &arr) < 0 ||
	    api_parse_tags(c, &tags) < 0 || check_cluster_active(c, arn) < 0)
		return -1;
	struct berth_err err = { 0 };
	int r = tags.n ? store_tags_put(c->store, arn, tags.v, tags.n, &err)
		       : store_resource_exists(c->store, arn, &err);
	/* Keys and values were checked above: what the store still refuses
	 * is the total after the merge. */
	if (r == -EINVAL)
		return api_error(c, 0, API_E_INVALID, "tags: a resource can have at most %d tags; "
				 "these would take %s past the limit.", STORE_TAGS_MAX, arn);
	if (r < 0)
		return tag_store_error(c, r, &err);
	return reply_empty(c);
}

/* ---- UntagResource ---- */

int api_op_untag_resource(struct api_call *c)
{
	const char *arn;
	const cJSON *arr, *it;
	if (get_arn(c, &arn) < 0 ||
	    api_get_array(c, c->in, "", "tagKeys", true, (size_t)-1, &arr) < 0)
		return -1;
	size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
	_cleanup_free_ const char **keys = calloc(n ? n : 1, sizeof(*keys));
	if (!keys)
		return api_oom(c);
	cJSON_ArrayForEach(it, arr) {
		if (!cJSON_IsString(it))
			return api_error(c, 0, API_E_INVALID, "tagKeys[%zu]: expected a string", i);
		size_t kn = api_utf8_chars(it->valuestring);
		if (kn < 1 || kn > STORE_TAG_KEY_MAX)
			return api_error(c, 0, API_E_INVALID, "tagKeys[%zu]: must be 1 to %d characters",
					 i, STORE_TAG_KEY_MAX);
		if (strncasecmp(it->valuestring, "aws:", 4) == 0)
			return api_error(c, 0, API_E_INVALID, "tagKeys[%zu]: the aws: prefix is reserved; "
					 "such tags cannot be removed", i);
		keys[i++] = it->valuestring;
	}
	if (check_cluster_active(c, arn) < 0)
		return -1;
	struct berth_err err = { 0 };
	int r = n ? store_tags_remove(c->store, arn, keys, n, &err)
		  : store_resource_exists(c->store, arn, &err);
	if (r < 0)
		return tag_store_error(c, r, &err);
	return reply_empty(c);
}

/* ---- ListTagsForResource ---- */

int api_op_list_tags_for_resource(struct api_call *c)
{
	const char *arn;
	if (get_arn(c, &arn) < 0)
		return -1;
	struct berth_err err = { 0 };
	int r = store_resource_exists(c->store, arn, &err);
	if (r == -ENOENT && strstr(arn, ":cluster/"))
		return api_error(c, 0, API_E_CLUSTER_NF, "Cluster not found.");
	if (r == -ENOENT)
		return api_error(c, 0, API_E_INVALID, "The specified resource could not be "
				 "found: %.512s", arn);
	if (r < 0)
		return api_store_error(c, r, &err);
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	if (!out)
		return api_oom(c);
	/* api_add_tags() lists them ordered by key. */
	if (api_add_tags(c, out, arn) < 0)
		return -1;
	c->out = TAKE_PTR(out);
	return 0;
}
