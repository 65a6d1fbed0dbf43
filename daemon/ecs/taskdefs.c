/* daemon/ecs/taskdefs: RegisterTaskDefinition, DescribeTaskDefinition,
 * ListTaskDefinitions, ListTaskDefinitionFamilies, DeregisterTaskDefinition,
 * DeleteTaskDefinitions.
 *
 * The store keeps each revision's body as built by taskdef_build() (the
 * request, normalised, with ECS's defaults and the computed members that
 * never change); the columns it keeps (ARN, revision, status, times) are
 * overlaid whenever a definition is encoded.  DELETE_IN_PROGRESS revisions
 * stay describable until the store purges them once no task uses them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/ecs/ecs.h"
#include "daemon/ecs/taskdef.h"

#define DELETE_MAX 10   /* DeleteTaskDefinitions batch */

static const char *const td_statuses[] = { "ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS", NULL };
static const char *const family_statuses[] = { "ACTIVE", "INACTIVE", "ALL", NULL };
static const char *const sort_orders[] = { "ASC", "DESC", NULL };

/* ECS's texts (DeleteTaskDefinitions failures, Describe of an unknown one). */
#define MSG_NOT_FOUND "Unable to describe task definition."
#define REASON_INVALID "The specified task definition identifier is invalid. Specify a valid " \
	"name or ARN and try again."
#define REASON_MISSING "The specified task definition does not exist. Specify a valid " \
	"account, family, revision and try again."
#define REASON_ACTIVE "The specified task definition is still in ACTIVE status. Please " \
	"deregister the target and try again."

/* ---- encoding ---- */

/* The TaskDefinition shape: the stored body with the columns overlaid. */
static int td_json(struct api_call *c, const struct store_task_definition *td, cJSON **ret)
{
	_cleanup_(cJSON_Deletep) cJSON *body = cJSON_Parse(td->body_json);
	if (!body || !cJSON_IsObject(body))
		return api_error(c, 0, API_E_SERVER, "task definition %s: stored JSON does not parse",
				 td->arn);
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	if (!o || !json_add_string(o, "taskDefinitionArn", td->arn))
		return api_oom(c);
	/* The body's members in their order, after the ARN as ECS puts it. */
	while (body->child) {
		cJSON *it = cJSON_DetachItemViaPointer(body, body->child);
		if (!cJSON_AddItemToObject(o, it->string, it)) {
			cJSON_Delete(it);
			return api_oom(c);
		}
	}
	if (!json_add_number(o, "revision", (double)td->revision) ||
	    !json_add_string(o, "status", store_td_status_name(td->status)) ||
	    !json_add_number(o, "registeredAt", (double)td->registered_at / 1000.0) ||
	    (td->deregistered_at &&
	     !json_add_number(o, "deregisteredAt", (double)td->deregistered_at / 1000.0)))
		return api_oom(c);
	*ret = TAKE_PTR(o);
	return 0;
}

/* {"taskDefinition": <td>} into c->out, with its tags when WITH_TAGS. */
static int reply_td(struct api_call *c, const struct store_task_definition *td, bool with_tags)
{
	cJSON *j;
	if (td_json(c, td, &j) < 0)
		return -1;
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	if (!out || !cJSON_AddItemToObject(out, "taskDefinition", j)) {
		cJSON_Delete(j);
		return api_oom(c);
	}
	if (with_tags && api_add_tags(c, out, td->arn) < 0)
		return -1;
	c->out = TAKE_PTR(out);
	return 0;
}

static int reply_list(struct api_call *c, const char *name, const struct store_list *l)
{
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *arr = out ? json_add_array(out, name) : NULL;
	if (!arr)
		return api_oom(c);
	for (size_t i = 0; i < l->n; i++) {
		cJSON *s = cJSON_CreateString(l->items[i]);
		if (!s || !cJSON_AddItemToArray(arr, s)) {
			cJSON_Delete(s);
			return api_oom(c);
		}
	}
	if (l->next_token && !json_add_string(out, "nextToken", l->next_token))
		return api_oom(c);
	c->out = TAKE_PTR(out);
	return 0;
}

/* ---- RegisterTaskDefinition ---- */

struct register_txn {
	const char *arn_base;
	const char *family;
	const char *body_json;
	const struct api_tags_in *tags;
	int64_t now_ms;
	struct store_task_definition *out;
};

static int register_fn(struct store *s, void *arg, struct berth_err *err)
{
	struct register_txn *t = arg;
	_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
	int r = store_task_definition_register(s, t->arn_base, t->family, t->body_json, t->now_ms,
					       &td, err);
	if (r < 0)
		return r;
	if (t->tags->n && (r = store_tags_put(s, td->arn, t->tags->v, t->tags->n, err)) < 0)
		return r;
	t->out = TAKE_PTR(td);
	return 0;
}

int api_op_register_task_definition(struct api_call *c)
{
	_cleanup_(cJSON_Deletep) cJSON *body = NULL;
	_cleanup_(api_tags_in_done) struct api_tags_in tags = { 0 };
	if (taskdef_build(c, &body) < 0 || api_parse_tags(c, &tags) < 0)
		return -1;
	_cleanup_free_ char *json = cJSON_PrintUnformatted(body);
	_cleanup_free_ char *arn_base = NULL;
	if (!json || asprintf(&arn_base, "arn:aws:ecs:%s:%s", c->region, c->account_id) < 0)
		return api_oom(c);
	struct register_txn t = {
		.arn_base = arn_base,
		.family = cJSON_GetObjectItemCaseSensitive(body, "family")->valuestring,
		.body_json = json,
		.tags = &tags,
		.now_ms = c->now_ms,
	};
	struct berth_err err = { 0 };
	int r = store_txn(c->store, register_fn, &t, &err);
	if (r < 0)
		return api_store_error(c, r, &err);
	_cleanup_(store_task_definition_freep) struct store_task_definition *td = t.out;
	return reply_td(c, td, tags.n > 0);
}

/* ---- DescribeTaskDefinition ---- */

/* `taskDefinition`: a family, family:revision or ARN, as a string. */
static int get_ref(struct api_call *c, const char **ret)
{
	if (api_get_string(c, c->in, "", "taskDefinition", true, ret) < 0)
		return -1;
	if (!**ret)
		return api_error(c, 0, API_E_INVALID, "taskDefinition: must not be empty");
	return 0;
}

int api_op_describe_task_definition(struct api_call *c)
{
	const char *ref;
	const cJSON *include, *it;
	if (get_ref(c, &ref) < 0 || api_get_array(c, c->in, "", "include", false, 16, &include) < 0)
		return -1;
	bool tags = false;
	int i = 0;
	cJSON_ArrayForEach(it, include) {
		if (!cJSON_IsString(it) || strcmp(it->valuestring, "TAGS") != 0)
			return api_error(c, 0, API_E_INVALID, "include[%d]: expected TAGS", i);
		tags = true;
		i++;
	}
	_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
	struct berth_err err = { 0 };
	int r = store_task_definition_get(c->store, ref, &td, &err);
	/* ECS answers every reference it cannot resolve the same way, a
	 * malformed revision included. */
	if (r == -ENOENT || r == -EINVAL)
		return api_error(c, 0, API_E_CLIENT, MSG_NOT_FOUND);
	if (r < 0)
		return api_store_error(c, r, &err);
	return reply_td(c, td, tags);
}

/* ---- ListTaskDefinitions, ListTaskDefinitionFamilies ---- */

int api_op_list_task_definitions(struct api_call *c)
{
	const char *family, *status, *sort;
	struct store_page page;
	if (api_get_string(c, c->in, "", "familyPrefix", false, &family) < 0 ||
	    api_get_enum(c, c->in, "", "status", false, td_statuses, &status) < 0 ||
	    api_get_enum(c, c->in, "", "sort", false, sort_orders, &sort) < 0 ||
	    api_get_page(c, &page) < 0)
		return -1;
	/* ECS lists ACTIVE revisions unless told otherwise. */
	struct store_td_filter f = {
		.family = family && *family ? family : NULL,
		.has_status = true,
		.status = STORE_TD_ACTIVE,
		.descending = sort && strcmp(sort, "DESC") == 0,
	};
	if (status)
		store_td_status_parse(status, &f.status);
	_cleanup_(store_list_clear) struct store_list l = { 0 };
	struct berth_err err = { 0 };
	int r = store_task_definition_list(c->store, &f, &page, &l, &err);
	if (r == -EINVAL)
		return api_error(c, 0, API_E_INVALID, "nextToken: not a token from ListTaskDefinitions "
				 "with these filters");
	if (r < 0)
		return api_store_error(c, r, &err);
	return reply_list(c, "taskDefinitionArns", &l);
}

int api_op_list_task_definition_families(struct api_call *c)
{
	const char *prefix, *status;
	struct store_page page;
	if (api_get_string(c, c->in, "", "familyPrefix", false, &prefix) < 0 ||
	    api_get_enum(c, c->in, "", "status", false, family_statuses, &status) < 0 ||
	    api_get_page(c, &page) < 0)
		return -1;
	/* Without a status ECS lists ACTIVE and INACTIVE families alike. */
	enum store_family_status st = !status || strcmp(status, "ALL") == 0 ? STORE_FAMILY_ALL
				      : strcmp(status, "ACTIVE") == 0 ? STORE_FAMILY_ACTIVE
				      : STORE_FAMILY_INACTIVE;
	_cleanup_(store_list_clear) struct store_list l = { 0 };
	struct berth_err err = { 0 };
	int r = store_task_definition_families(c->store, prefix && *prefix ? prefix : NULL, st,
					       &page, &l, &err);
	if (r == -EINVAL)
		return api_error(c, 0, API_E_INVALID, "nextToken: not a token from "
				 "ListTaskDefinitionFamilies");
	if (r < 0)
		return api_store_error(c, r, &err);
	return reply_list(c, "families", &l);
}

/* ---- DeregisterTaskDefinition, DeleteTaskDefinitions ---- */

/* Does REF name one revision ("family:revision" or an ARN)? */
static bool names_revision(const char *ref)
{
	if (strncmp(ref, "arn:", 4) == 0)
		return true;
	const char *colon = strrchr(ref, ':');
	return colon && colon != ref && colon[1] >= '1' && colon[1] <= '9' &&
	       strspn(colon + 1, "0123456789") == strlen(colon + 1);
}

int api_op_deregister_task_definition(struct api_call *c)
{
	const char *ref;
	if (get_ref(c, &ref) < 0)
		return -1;
	/* ECS's words for a reference without a usable revision. */
	const char *slash = strncmp(ref, "arn:", 4) == 0 ? strrchr(ref, '/') : NULL;
	const char *colon = strrchr(slash ? slash : ref, ':');
	if (!colon || colon == ref)
		return api_error(c, 0, API_E_CLIENT, "Revision is missing.");
	if (!names_revision(ref))
		return api_error(c, 0, API_E_CLIENT, "Invalid revision number. Number: %.64s",
				 colon + 1);
	_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
	struct berth_err err = { 0 };
	int r = store_task_definition_deregister(c->store, ref, c->now_ms, &td, &err);
	if (r == -ENOENT)
		return api_error(c, 0, API_E_CLIENT, "Unable to describe task definition.");
	if (r == -EINVAL)   /* DELETE_IN_PROGRESS */
		return api_error(c, 0, API_E_CLIENT, "taskDefinition: %s is being deleted and cannot "
				 "be deregistered.", ref);
	if (r < 0)
		return api_store_error(c, r, &err);
	return reply_td(c, td, false);
}

static int add_failure(struct api_call *c, cJSON *failures, const char *ref, const char *reason)
{
	cJSON *f = json_add_object(failures);
	if (!f || !json_add_string(f, "arn", ref) || !json_add_string(f, "reason", reason))
		return api_oom(c);
	return 0;
}

/* One DeleteTaskDefinitions member: into DEFS, or into FAILURES with ECS's
 * reason. */
static int delete_one(struct api_call *c, const char *ref, cJSON *defs, cJSON *failures)
{
	if (!names_revision(ref))
		return add_failure(c, failures, ref, REASON_INVALID);
	_cleanup_(store_task_definition_freep) struct store_task_definition *td = NULL;
	struct berth_err err = { 0 };
	int r = store_task_definition_get(c->store, ref, &td, &err);
	if (r == -ENOENT || r == -EINVAL)
		return add_failure(c, failures, ref, r == -ENOENT ? REASON_MISSING : REASON_INVALID);
	if (r < 0)
		return api_store_error(c, r, &err);
	if (td->status == STORE_TD_ACTIVE)
		return add_failure(c, failures, ref, REASON_ACTIVE);
	store_task_definition_free(TAKE_PTR(td));
	r = store_task_definition_delete(c->store, ref, &td, &err);
	if (r == -ENOENT)
		return add_failure(c, failures, ref, REASON_MISSING);
	if (r == -EINVAL)   /* reactivated meanwhile: cannot happen with one writer */
		return add_failure(c, failures, ref, REASON_ACTIVE);
	if (r < 0)
		return api_store_error(c, r, &err);
	cJSON *j;
	if (td_json(c, td, &j) < 0)
		return -1;
	if (!cJSON_AddItemToArray(defs, j)) {
		cJSON_Delete(j);
		return api_oom(c);
	}
	return 0;
}

int api_op_delete_task_definitions(struct api_call *c)
{
	const cJSON *refs, *it;
	if (api_get_array(c, c->in, "", "taskDefinitions", true, DELETE_MAX, &refs) < 0)
		return -1;
	if (!cJSON_GetArraySize(refs))
		return api_error(c, 0, API_E_INVALID, "taskDefinitions: at least one task definition "
				 "is required");
	int i = 0;
	cJSON_ArrayForEach(it, refs) {
		if (!cJSON_IsString(it))
			return api_error(c, 0, API_E_INVALID, "taskDefinitions[%d]: expected a string", i);
		i++;
	}
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *defs = out ? json_add_array(out, "taskDefinitions") : NULL;
	cJSON *failures = defs ? json_add_array(out, "failures") : NULL;
	if (!failures)
		return api_oom(c);
	cJSON_ArrayForEach(it, refs)
		if (delete_one(c, it->valuestring, defs, failures) < 0)
			return -1;
	c->out = TAKE_PTR(out);
	return 0;
}
