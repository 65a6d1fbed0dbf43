/* daemon/ecs/account: ECS account settings — PutAccountSetting,
 * PutAccountSettingDefault, ListAccountSettings, DeleteAccountSetting.
 *
 * A setting belongs to a principal (an IAM user's or role's ARN); the
 * account's default is the root's (arn:aws:iam::<account>:root), which is
 * also who a request without principalArn is from: Berth's access keys
 * name no IAM identity.  A principal's effective value is its own, else the
 * account default, else ECS's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/ecs/ecs.h"

/* The settings and their values.  The long ARN formats cannot be turned
 * off: Berth's ARNs are always the long ones.  awsvpcTrunking changes
 * nothing on a host without ENI limits; containerInsights is the new
 * clusters' default (CreateCluster). */
static const struct setting {
	const char *name;
	const char *dflt;
	const char *const values[4];
} settings[] = {
	{ "serviceLongArnFormat", "enabled", { "enabled", NULL } },
	{ "taskLongArnFormat", "enabled", { "enabled", NULL } },
	{ "containerInstanceLongArnFormat", "enabled", { "enabled", NULL } },
	{ "awsvpcTrunking", "disabled", { "enabled", "disabled", NULL } },
	{ "containerInsights", "disabled", { "enabled", "disabled", "enhanced", NULL } },
};

#define LIST_MAX 10   /* ListAccountSettings' maxResults bound */
#define TOKEN_PREFIX "as:"

static const struct setting *find_setting(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++)
		if (strcmp(settings[i].name, name) == 0)
			return &settings[i];
	return NULL;
}

static int get_name(struct api_call *c, bool required, const struct setting **ret)
{
	const char *name;
	*ret = NULL;
	if (api_get_string(c, c->in, "", "name", required, &name) < 0)
		return -1;
	if (name && !(*ret = find_setting(name)))
		return api_error(c, 0, API_E_INVALID, "name: '%.64s' is not an account setting "
				 "Berth has (serviceLongArnFormat, taskLongArnFormat, "
				 "containerInstanceLongArnFormat, awsvpcTrunking, containerInsights)",
				 name);
	return 0;
}

static int get_value(struct api_call *c, const struct setting *set, bool required,
		     const char **ret)
{
	if (api_get_string(c, c->in, "", "value", required, ret) < 0)
		return -1;
	if (!*ret || !set)
		return 0;
	for (size_t i = 0; set->values[i]; i++)
		if (strcmp(*ret, set->values[i]) == 0)
			return 0;
	if (!set->values[1])
		return api_error(c, 0, API_E_INVALID, "value: %s cannot be '%.32s': Berth always "
				 "uses the long ARN format", set->name, *ret);
	return api_error(c, 0, API_E_INVALID, "value: '%.32s' is not a value of %s", *ret,
			 set->name);
}

/* principalArn, or the root's ARN into BUF when absent. */
static int get_principal(struct api_call *c, char *buf, size_t n, const char **ret)
{
	if (api_get_string(c, c->in, "", "principalArn", false, ret) < 0)
		return -1;
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "arn:aws:iam::%s:", c->account_id);
	if (!*ret) {
		snprintf(buf, n, "%sroot", prefix);
		*ret = buf;
	} else if (strncmp(*ret, prefix, strlen(prefix)) != 0 || strlen(*ret) > 1600 ||
		   !(strcmp(*ret + strlen(prefix), "root") == 0 ||
		     strncmp(*ret + strlen(prefix), "user/", 5) == 0 ||
		     strncmp(*ret + strlen(prefix), "role/", 5) == 0)) {
		return api_error(c, 0, API_E_INVALID, "principalArn: '%.256s' is not the root, a "
				 "user or a role of account %s", *ret, c->account_id);
	}
	return 0;
}

static cJSON *setting_json(const char *name, const char *value, const char *principal)
{
	cJSON *o = cJSON_CreateObject();
	if (o && json_add_string(o, "name", name) && json_add_string(o, "value", value) &&
	    json_add_string(o, "principalArn", principal))
		return o;
	cJSON_Delete(o);
	return NULL;
}

static int reply_setting(struct api_call *c, const char *name, const char *value,
			 const char *principal)
{
	cJSON *s = setting_json(name, value, principal);
	c->out = s ? cJSON_CreateObject() : NULL;
	if (!c->out || !cJSON_AddItemToObject(c->out, "setting", s)) {
		cJSON_Delete(s);
		return api_oom(c);
	}
	return 0;
}

static int put(struct api_call *c, bool dflt)
{
	const struct setting *set;
	const char *value, *principal;
	char root[128];
	if (get_name(c, true, &set) < 0 || get_value(c, set, true, &value) < 0)
		return -1;
	if (dflt) {
		snprintf(root, sizeof(root), "arn:aws:iam::%s:root", c->account_id);
		principal = root;
	} else if (get_principal(c, root, sizeof(root), &principal) < 0) {
		return -1;
	}
	struct berth_err err = { 0 };
	int r = store_account_setting_put(c->store, principal, set->name, value, &err);
	if (r < 0)
		return api_store_error(c, r, &err);
	return reply_setting(c, set->name, value, principal);
}

int api_op_put_account_setting(struct api_call *c)
{
	return put(c, false);
}

int api_op_put_account_setting_default(struct api_call *c)
{
	return put(c, true);
}

/* The stored value of NAME for PRINCIPAL, or NULL. */
static const char *stored(const struct store_account_setting *v, size_t n, const char *principal,
			  const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].principal, principal) == 0 && strcmp(v[i].name, name) == 0)
			return v[i].value;
	return NULL;
}

int api_op_delete_account_setting(struct api_call *c)
{
	const struct setting *set;
	const char *principal;
	char root[128];
	if (get_name(c, true, &set) < 0 || get_principal(c, root, sizeof(root), &principal) < 0)
		return -1;
	struct store_account_setting *v = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	int r = store_account_settings_list(c->store, &v, &n, &err);
	const char *cur = r == 0 ? stored(v, n, principal, set->name) : NULL;
	_cleanup_free_ char *was = cur ? strdup(cur) : NULL;
	store_account_settings_free(v, n);
	if (cur && !was)
		return api_oom(c);
	if (r == 0 && !cur)
		return api_error(c, 0, API_E_INVALID, "%s is not set for %.256s", set->name,
				 principal);
	if (r == 0)
		r = store_account_setting_delete(c->store, principal, set->name, &err);
	if (r < 0)
		return api_store_error(c, r, &err);
	return reply_setting(c, set->name, was, principal);
}

/* The page of LIST (an array) from nextToken, at most maxResults. */
static int page_out(struct api_call *c, cJSON *list)
{
	const char *token;
	bool have;
	int64_t max = LIST_MAX, from = 0;
	if (api_get_string(c, c->in, "", "nextToken", false, &token) < 0 ||
	    api_get_int(c, c->in, "", "maxResults", false, 1, LIST_MAX, &have, &max) < 0)
		return -1;
	if (!have)
		max = LIST_MAX;
	if (token && *token) {
		char *end;
		if (strncmp(token, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) != 0 ||
		    (from = strtol(token + strlen(TOKEN_PREFIX), &end, 10)) < 0 || *end ||
		    from > cJSON_GetArraySize(list))
			return api_error(c, 0, API_E_INVALID, "nextToken: not a token from "
					 "ListAccountSettings");
	}
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *arr = out ? json_add_array(out, "settings") : NULL;
	if (!arr)
		return api_oom(c);
	int64_t total = cJSON_GetArraySize(list), i;
	for (i = from; i < total && i < from + max; i++) {
		cJSON *item = cJSON_Duplicate(cJSON_GetArrayItem(list, (int)i), true);
		if (!item || !cJSON_AddItemToArray(arr, item)) {
			cJSON_Delete(item);
			return api_oom(c);
		}
	}
	char next[32];
	snprintf(next, sizeof(next), TOKEN_PREFIX "%lld", (long long)i);
	if (i < total && !json_add_string(out, "nextToken", next))
		return api_oom(c);
	c->out = TAKE_PTR(out);
	return 0;
}

int api_op_list_account_settings(struct api_call *c)
{
	const struct setting *only;
	const char *value, *principal;
	bool have, effective = false;
	char root[128], account_root[128];
	if (get_name(c, false, &only) < 0 || get_value(c, only, false, &value) < 0 ||
	    get_principal(c, root, sizeof(root), &principal) < 0 ||
	    api_get_bool(c, c->in, "", "effectiveSettings", &have, &effective) < 0)
		return -1;
	snprintf(account_root, sizeof(account_root), "arn:aws:iam::%s:root", c->account_id);
	struct store_account_setting *v = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	int r = store_account_settings_list(c->store, &v, &n, &err);
	if (r < 0)
		return api_store_error(c, r, &err);
	_cleanup_(cJSON_Deletep) cJSON *list = cJSON_CreateArray();
	bool oom = !list;
	for (size_t i = 0; !oom && i < ARRAY_SIZE(settings); i++) {
		const struct setting *set = &settings[i];
		const char *val = stored(v, n, principal, set->name), *whose = principal;
		if (!val && effective) {
			whose = account_root;
			val = stored(v, n, account_root, set->name);
			if (!val)
				val = set->dflt;
		}
		if (!val || (only && only != set) || (value && strcmp(value, val) != 0))
			continue;
		cJSON *o = setting_json(set->name, val, whose);
		if (!o || !cJSON_AddItemToArray(list, o)) {
			cJSON_Delete(o);
			oom = true;
		}
	}
	store_account_settings_free(v, n);
	if (oom)
		return api_oom(c);
	return page_out(c, list);
}

int api_account_default(struct api_call *c, const char *name, char **ret)
{
	const struct setting *set = find_setting(name);
	char root[128];
	snprintf(root, sizeof(root), "arn:aws:iam::%s:root", c->account_id);
	struct store_account_setting *v = NULL;
	size_t n = 0;
	struct berth_err err = { 0 };
	int r = store_account_settings_list(c->store, &v, &n, &err);
	if (r < 0)
		return api_store_error(c, r, &err);
	const char *val = stored(v, n, root, name);
	*ret = strdup(val ? val : set->dflt);
	store_account_settings_free(v, n);
	return *ret ? 0 : api_oom(c);
}
