/* daemon/elb/elb_tags: AddTags, DescribeTags, RemoveTags, and the Tags of
 * the Create* operations; stored in the store's tags table like ECS's. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/elb/elb_internal.h"

#define TAGS_MAX 50
#define TAG_ARNS_MAX 20

/* The kind an ARN names, by its resource part. */
static enum elb_kind arn_kind(const char *arn)
{
	if (strstr(arn, ":targetgroup/"))
		return ELB_TG;
	if (strstr(arn, ":listener-rule/"))
		return ELB_RULE;
	if (strstr(arn, ":listener/"))
		return ELB_LISTENER;
	return ELB_LB;
}

static int check_exists(struct elb_call *c, const char *arn)
{
	_cleanup_(cJSON_Deletep) cJSON *doc = NULL;
	return elb_load(c, arn_kind(arn), arn, NULL, &doc);
}

/* TAGS ({Key, Value} structures) as store tags; keys unique. */
static int read_tags(struct elb_call *c, cJSON *tags, struct store_tag **ret, size_t *ret_n)
{
	size_t n = (size_t)cJSON_GetArraySize(tags);
	struct store_tag *ts = calloc(n ? n : 1, sizeof(*ts));
	if (!ts)
		return elb_fail(c, "InternalFailure", "out of memory");
	size_t i = 0;
	cJSON *t;
	cJSON_ArrayForEach(t, tags) {
		const char *key;
		if (elb_need_str(c, t, "Key", &key) < 0)
			break;
		const char *value = elb_take_str(c, t, "Value");
		for (size_t j = 0; j < i; j++)
			if (strcmp(ts[j].key, key) == 0)
				elb_fail(c, "DuplicateTagKeys", "Tag key '%.128s' is given twice",
					 key);
		ts[i++] = (struct store_tag){ (char *)key, (char *)(value ? value : "") };
	}
	if (c->code[0]) {
		free(ts);
		return -1;
	}
	*ret = ts;
	*ret_n = n;
	return 0;
}

static int put_tags(struct elb_call *c, const char *arn, const struct store_tag *ts, size_t n)
{
	struct berth_err err = { 0 };
	struct store_tag *have = NULL;
	size_t n_have = 0;
	int r = store_tags_list(c->e->store, arn, &have, &n_have, &err);
	if (r < 0)
		return elb_fail_store(c, r, &err, NULL, NULL);
	size_t total = n_have;
	for (size_t i = 0; i < n; i++) {
		bool known = false;
		for (size_t j = 0; j < n_have && !known; j++)
			known = strcmp(have[j].key, ts[i].key) == 0;
		total += !known;
	}
	store_tags_free(have, n_have);
	if (total > TAGS_MAX)
		return elb_fail(c, "TooManyTags", "%s would have %zu tags: at most %d", arn, total,
				TAGS_MAX);
	r = store_tags_put(c->e->store, arn, ts, n, &err);
	if (r == -EINVAL)
		return elb_fail(c, "ValidationError", "%s", err.msg);
	return r < 0 ? elb_fail_store(c, r, &err, NULL, NULL) : 0;
}

int elb_take_tags(struct elb_call *c, struct elb_tags *ret)
{
	*ret = (struct elb_tags){ 0 };
	cJSON *tags = elb_take_list(c, c->in, "Tags", TAGS_MAX);
	if (c->code[0])
		return -1;
	return tags && cJSON_GetArraySize(tags) ? read_tags(c, tags, &ret->v, &ret->n) : 0;
}

int elb_tags_create(struct elb_call *c, struct elb_tags *tags, const char *arn)
{
	int r = tags->n ? put_tags(c, arn, tags->v, tags->n) : 0;
	free(tags->v);
	*tags = (struct elb_tags){ 0 };
	return r;
}

static cJSON *need_arns(struct elb_call *c)
{
	cJSON *arns = elb_take_list(c, c->in, "ResourceArns", TAG_ARNS_MAX);
	if (!c->code[0] && (!arns || !cJSON_GetArraySize(arns)))
		elb_fail(c, "ValidationError", "ResourceArns must list 1 to %d ARNs", TAG_ARNS_MAX);
	return c->code[0] ? NULL : arns;
}

int elb_op_add_tags(struct elb_call *c)
{
	cJSON *arns = need_arns(c);
	cJSON *tags = arns ? elb_take_list(c, c->in, "Tags", TAGS_MAX) : NULL;
	if (!arns || c->code[0])
		return -1;
	if (!tags || !cJSON_GetArraySize(tags))
		return elb_fail(c, "ValidationError", "Tags must list 1 to %d tags", TAGS_MAX);
	struct store_tag *ts;
	size_t n;
	if (read_tags(c, tags, &ts, &n) < 0)
		return -1;
	int r = elb_check_all_read(c);
	const cJSON *a;
	cJSON_ArrayForEach(a, arns) {
		if (r < 0)
			break;
		r = check_exists(c, a->valuestring);
		if (r == 0)
			r = put_tags(c, a->valuestring, ts, n);
	}
	free(ts);
	return r;
}

int elb_op_remove_tags(struct elb_call *c)
{
	cJSON *arns = need_arns(c);
	cJSON *keys = arns ? elb_take_list(c, c->in, "TagKeys", TAGS_MAX) : NULL;
	if (!arns || c->code[0] || elb_check_all_read(c) < 0)
		return -1;
	if (!keys || !cJSON_GetArraySize(keys))
		return elb_fail(c, "ValidationError", "TagKeys must list 1 to %d keys", TAGS_MAX);
	size_t n = (size_t)cJSON_GetArraySize(keys), i = 0;
	_cleanup_free_ const char **ks = calloc(n, sizeof(*ks));
	if (!ks)
		return elb_fail(c, "InternalFailure", "out of memory");
	const cJSON *k;
	cJSON_ArrayForEach(k, keys)
		ks[i++] = k->valuestring;
	const cJSON *a;
	cJSON_ArrayForEach(a, arns) {
		if (check_exists(c, a->valuestring) < 0)
			return -1;
		struct berth_err err = { 0 };
		int r = store_tags_remove(c->e->store, a->valuestring, ks, n, &err);
		if (r < 0)
			return elb_fail(c, r == -EINVAL ? "ValidationError" : "InternalFailure",
					"%s", err.msg);
	}
	return 0;
}

static int describe_one(struct elb_call *c, cJSON *descs, const char *arn)
{
	if (check_exists(c, arn) < 0)
		return -1;
	struct berth_err err = { 0 };
	struct store_tag *ts = NULL;
	size_t n = 0;
	int r = store_tags_list(c->e->store, arn, &ts, &n, &err);
	if (r < 0)
		return elb_fail_store(c, r, &err, NULL, NULL);
	cJSON *d = json_add_object(descs);
	cJSON *list = d && json_add_string(d, "ResourceArn", arn) ? json_add_array(d, "Tags") : NULL;
	for (size_t i = 0; list && i < n; i++) {
		cJSON *t = json_add_object(list);
		if (!t || !json_add_string(t, "Key", ts[i].key) ||
		    !json_add_string(t, "Value", ts[i].value))
			list = NULL;
	}
	store_tags_free(ts, n);
	return list ? 0 : elb_fail(c, "InternalFailure", "out of memory");
}

int elb_op_describe_tags(struct elb_call *c)
{
	cJSON *arns = need_arns(c);
	if (!arns || elb_check_all_read(c) < 0)
		return -1;
	cJSON *descs = json_add_array(c->out, "TagDescriptions");
	if (!descs)
		return elb_fail(c, "InternalFailure", "out of memory");
	const cJSON *a;
	cJSON_ArrayForEach(a, arns)
		if (describe_one(c, descs, a->valuestring) < 0)
			return -1;
	return 0;
}
