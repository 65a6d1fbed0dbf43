/* daemon/ecs/attributes: the container instance's attributes — the ones the
 * ECS agent reports (ecs.os-type, …) and the operator's own
 * (PutAttributes, ListAttributes, DeleteAttributes) — and the memberOf
 * placement constraints RunTask evaluates against them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "daemon/ecs/ecs.h"

#define ATTRIBUTES_MAX 10          /* per Put/DeleteAttributes request */
#define CUSTOM_MAX 10              /* custom attributes per instance, as ECS */
#define NAME_MAX_LEN 128
#define TARGET_TYPE "container-instance"

static bool add_attribute(cJSON *arr, const char *name, const char *value)
{
	cJSON *o = json_add_object(arr);
	return o && json_add_string(o, "name", name) && (!value || json_add_string(o, "value", value));
}

int api_instance_attributes(struct api_call *c, const char *cluster, cJSON **ret)
{
	struct utsname u;
	const char *arch = uname(&u) == 0 ? u.machine : "unknown";
	if (strcmp(arch, "aarch64") == 0)
		arch = "arm64";
	char az[64];
	snprintf(az, sizeof(az), "%sa", c->region);
	_cleanup_(cJSON_Deletep) cJSON *arr = cJSON_CreateArray();
	if (!arr || !add_attribute(arr, "ecs.os-type", "linux") ||
	    !add_attribute(arr, "ecs.os-family", "LINUX") ||
	    !add_attribute(arr, "ecs.cpu-architecture", arch) ||
	    !add_attribute(arr, "ecs.availability-zone", az) ||
	    !add_attribute(arr, "ecs.capability.task-eni", NULL) ||
	    !add_attribute(arr, "ecs.capability.container-health-check", NULL))
		return api_oom(c);
	struct store_tag *v = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	int r = store_attributes_list(c->store, cluster, &v, &n, &err);
	if (r < 0)
		return api_store_error(c, r, &err);
	bool ok = true;
	for (size_t i = 0; ok && i < n; i++)
		ok = add_attribute(arr, v[i].key, v[i].value);
	store_tags_free(v, n);
	if (!ok)
		return api_oom(c);
	*ret = TAKE_PTR(arr);
	return 0;
}

static bool charset(const char *s, const char *extra)
{
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && !strchr(extra, *s))
			return false;
	return true;
}

/* One attribute of a Put/DeleteAttributes request: its name and value, on
 * the host as target. */
static int get_attribute(struct api_call *c, const char *cluster, const cJSON *it, int i,
			 const char **name, const char **value)
{
	char path[32];
	const char *type, *target;
	snprintf(path, sizeof(path), "attributes[%d].", i);
	if (!cJSON_IsObject(it))
		return api_error(c, 0, API_E_INVALID, "%.*s: expected an object",
				 (int)strlen(path) - 1, path);
	if (api_get_string(c, it, path, "name", true, name) < 0 ||
	    api_get_string(c, it, path, "value", false, value) < 0 ||
	    api_get_string(c, it, path, "targetType", false, &type) < 0 ||
	    api_get_string(c, it, path, "targetId", false, &target) < 0)
		return -1;
	if (!**name || strlen(*name) > NAME_MAX_LEN || !charset(*name, "_.-/"))
		return api_error(c, 0, API_E_INVALID, "%sname: 1 to %d letters, numbers, hyphens, "
				 "underscores, periods and slashes", path, NAME_MAX_LEN);
	if (strncmp(*name, "ecs.", 4) == 0)
		return api_error(c, 0, API_E_INVALID, "%sname %s: the ecs. prefix is the agent's",
				 path, *name);
	if (*value && (!**value || strlen(*value) > NAME_MAX_LEN || !charset(*value, "_.-/@: ")))
		return api_error(c, 0, API_E_INVALID, "%svalue: 1 to %d letters, numbers, hyphens, "
				 "underscores, periods, at signs, slashes, colons and spaces", path,
				 NAME_MAX_LEN);
	if (type && strcmp(type, TARGET_TYPE) != 0)
		return api_error(c, 0, API_E_INVALID, "%stargetType: only %s", path, TARGET_TYPE);
	if (!target)
		return api_error(c, 0, API_E_INVALID, "%stargetId: required: the container "
				 "instance the attribute is on", path);
	if (!api_is_instance(c, cluster, target))
		return api_error(c, 0, "TargetNotFoundException", "Could not find %.256s.", target);
	return 0;
}

/* The answer: the attributes as the request gave them, with the target. */
static int reply_attributes(struct api_call *c, const char *cluster, const cJSON *attrs)
{
	_cleanup_free_ char *arn = api_instance_arn(c, cluster);
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *arr = out ? json_add_array(out, "attributes") : NULL;
	const cJSON *it;
	cJSON_ArrayForEach(it, attrs) {
		cJSON *o = arr && arn ? json_add_object(arr) : NULL;
		const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "value"));
		if (!o || !json_add_string(o, "name", cJSON_GetStringValue(
				cJSON_GetObjectItemCaseSensitive(it, "name"))) ||
		    (v && !json_add_string(o, "value", v)) ||
		    !json_add_string(o, "targetType", TARGET_TYPE) ||
		    !json_add_string(o, "targetId", arn))
			return api_oom(c);
	}
	if (!arr)
		return api_oom(c);
	c->out = TAKE_PTR(out);
	return 0;
}

static int change(struct api_call *c, bool put)
{
	char cluster[API_NAME_MAX + 1];
	const cJSON *attrs, *it;
	if (api_get_cluster(c, false, cluster) < 0 ||
	    api_get_array(c, c->in, "", "attributes", true, ATTRIBUTES_MAX, &attrs) < 0)
		return -1;
	if (!cJSON_GetArraySize(attrs))
		return api_error(c, 0, API_E_INVALID, "attributes can not be empty.");
	const char *name, *value;
	int i = 0;
	cJSON_ArrayForEach(it, attrs)
		if (get_attribute(c, cluster, it, i++, &name, &value) < 0)
			return -1;
	struct store_tag *v = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	int r = store_attributes_list(c->store, cluster, &v, &n, &err);
	size_t count = n;
	cJSON_ArrayForEach(it, attrs) {
		bool known = false;
		name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name"));
		for (size_t k = 0; k < n; k++)
			known |= strcmp(v[k].key, name) == 0;
		count += put && !known;
	}
	store_tags_free(v, n);
	if (r < 0)
		return api_store_error(c, r, &err);
	if (count > CUSTOM_MAX)
		return api_error(c, 0, "AttributeLimitExceededException", "You can apply up to %d "
				 "custom attributes per resource.", CUSTOM_MAX);
	cJSON_ArrayForEach(it, attrs) {
		name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name"));
		value = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "value"));
		r = put ? store_attribute_put(c->store, cluster, name, value, &err)
			: store_attribute_delete(c->store, cluster, name, &err);
		if (r < 0)
			return api_store_error(c, r, &err);
	}
	return reply_attributes(c, cluster, attrs);
}

int api_op_put_attributes(struct api_call *c)
{
	return change(c, true);
}

int api_op_delete_attributes(struct api_call *c)
{
	return change(c, false);
}

int api_op_list_attributes(struct api_call *c)
{
	char cluster[API_NAME_MAX + 1];
	const char *type, *name, *value, *token;
	bool have;
	int64_t max;
	if (api_get_cluster(c, false, cluster) < 0 ||
	    api_get_string(c, c->in, "", "targetType", true, &type) < 0 ||
	    api_get_string(c, c->in, "", "attributeName", false, &name) < 0 ||
	    api_get_string(c, c->in, "", "attributeValue", false, &value) < 0 ||
	    api_get_string(c, c->in, "", "nextToken", false, &token) < 0 ||
	    api_get_int(c, c->in, "", "maxResults", false, 1, 100, &have, &max) < 0)
		return -1;
	if (strcmp(type, TARGET_TYPE) != 0)
		return api_error(c, 0, API_E_INVALID, "targetType: only %s", TARGET_TYPE);
	if (value && !name)
		return api_error(c, 0, API_E_INVALID, "attributeValue: only with attributeName");
	if (token && *token)  /* one page: at most 16 attributes */
		return api_error(c, 0, API_E_INVALID, "nextToken: not a token from ListAttributes");
	_cleanup_(cJSON_Deletep) cJSON *all = NULL;
	if (api_instance_attributes(c, cluster, &all) < 0)
		return -1;
	_cleanup_free_ char *arn = api_instance_arn(c, cluster);
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *arr = out && arn ? json_add_array(out, "attributes") : NULL;
	if (!arr)
		return api_oom(c);
	const cJSON *it;
	int shown = 0;
	cJSON_ArrayForEach(it, all) {
		const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name"));
		const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "value"));
		if ((name && strcmp(name, n) != 0) || (value && (!v || strcmp(value, v) != 0)))
			continue;
		if (have && shown == max)
			break;
		cJSON *o = json_add_object(arr);
		if (!o || !json_add_string(o, "name", n) || (v && !json_add_string(o, "value", v)) ||
		    !json_add_string(o, "targetType", TARGET_TYPE) || !json_add_string(o, "targetId", arn))
			return api_oom(c);
		shown++;
	}
	c->out = TAKE_PTR(out);
	return 0;
}

/* ---- memberOf ---- */

/* ATTRS' value of NAME: *found, and *value (NULL for a valueless one). */
static void lookup(const cJSON *attrs, const char *name, size_t len, bool *found,
		   const char **value)
{
	const cJSON *it;
	*found = false;
	*value = NULL;
	cJSON_ArrayForEach(it, attrs) {
		const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name"));
		if (n && strlen(n) == len && strncmp(n, name, len) == 0) {
			*found = true;
			*value = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "value"));
		}
	}
}

/* One expression of the cluster query language's attribute subset:
 * "attribute:NAME == VALUE", "!=", "exists", "!exists".  1 true, 0 false,
 * -1 not understood. */
static int evaluate(const cJSON *attrs, const char *e)
{
	static const char prefix[] = "attribute:";
	while (*e == ' ')
		e++;
	if (strncmp(e, prefix, strlen(prefix)) != 0)
		return -1;
	const char *name = e + strlen(prefix);
	size_t len = strcspn(name, " ");
	const char *op = name + len;
	while (*op == ' ')
		op++;
	bool found;
	const char *have;
	lookup(attrs, name, len, &found, &have);
	if (strcmp(op, "exists") == 0 || strcmp(op, "!exists") == 0)
		return found == (op[0] != '!');
	bool eq = strncmp(op, "==", 2) == 0;
	if (!eq && strncmp(op, "!=", 2) != 0)
		return -1;
	const char *want = op + 2;
	while (*want == ' ')
		want++;
	size_t wl = strlen(want);
	while (wl && want[wl - 1] == ' ')
		wl--;
	if (!wl)
		return -1;
	bool same = found && have && strlen(have) == wl && strncmp(have, want, wl) == 0;
	return same == eq;
}

int api_check_placement(struct api_call *c, const char *cluster, const cJSON *constraints,
			int64_t count, const char **ret_unplaced, int64_t *ret_placed)
{
	const cJSON *it;
	int i = 0;
	*ret_unplaced = NULL;
	*ret_placed = count;
	_cleanup_(cJSON_Deletep) cJSON *attrs = NULL;
	cJSON_ArrayForEach(it, constraints) {
		char path[40];
		const char *type, *expr;
		static const char *const types[] = { "distinctInstance", "memberOf", NULL };
		snprintf(path, sizeof(path), "placementConstraints[%d].", i++);
		if (!cJSON_IsObject(it))
			return api_error(c, 0, API_E_INVALID, "%.*s: expected an object",
					 (int)strlen(path) - 1, path);
		if (api_get_enum(c, it, path, "type", true, types, &type) < 0 ||
		    api_get_string(c, it, path, "expression", false, &expr) < 0)
			return -1;
		if (strcmp(type, "distinctInstance") == 0) {
			if (expr)
				return api_error(c, 0, API_E_INVALID, "%sexpression: distinctInstance "
						 "takes none", path);
			/* One container instance: one task of the request fits. */
			if (count > 1) {
				*ret_placed = 1;
				*ret_unplaced = "DistinctInstance placement constraint unsatisfied.";
			}
			continue;
		}
		if (!expr || !*expr)
			return api_error(c, 0, API_E_INVALID, "%sexpression: required for memberOf",
					 path);
		if (!attrs && api_instance_attributes(c, cluster, &attrs) < 0)
			return -1;
		int ok = evaluate(attrs, expr);
		if (ok < 0)
			return api_error(c, 0, API_E_INVALID, "%sexpression '%.200s': Berth evaluates "
					 "\"attribute:NAME == VALUE\", \"!=\", \"exists\" and "
					 "\"!exists\" only", path, expr);
		if (!ok) {
			*ret_placed = 0;
			*ret_unplaced = "MemberOf placement constraint unsatisfied.";
		}
	}
	return 0;
}
