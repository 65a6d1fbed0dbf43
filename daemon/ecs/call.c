/* daemon/ecs/call: the per-request helpers every operation module uses (ecs.h):
 * errors in ECS's shape and the member readers that name a malformed
 * member in an InvalidParameterException. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/ecs/ecs.h"

int api_error(struct api_call *c, int status, const char *type, const char *fmt, ...)
{
	c->type = type;
	c->status = status ? status : strcmp(type, API_E_SERVER) == 0 ? 500 : 400;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->message, sizeof(c->message), fmt, ap);
	va_end(ap);
	return -1;
}

int api_store_error(struct api_call *c, int r, const struct berth_err *err)
{
	if (r == -EINVAL)
		return api_error(c, 0, API_E_INVALID, "%s", err->msg);
	return api_error(c, 0, API_E_SERVER, "%s", err->msg[0] ? err->msg : strerror(-r));
}

int api_oom(struct api_call *c)
{
	return api_error(c, 0, API_E_SERVER, "out of memory");
}

/* The member, or NULL when absent; JSON null counts as absent, as in
 * botocore, which never sends one. */
static const cJSON *member(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	return v && !cJSON_IsNull(v) ? v : NULL;
}

static int missing(struct api_call *c, const char *path, const char *name, bool required)
{
	if (required)
		return api_error(c, 0, API_E_INVALID, "%s%s: a value is required", path, name);
	return 0;
}

int api_get_string(struct api_call *c, const cJSON *obj, const char *path, const char *name,
		   bool required, const char **ret)
{
	const cJSON *v = member(obj, name);
	*ret = NULL;
	if (!v)
		return missing(c, path, name, required);
	if (!cJSON_IsString(v))
		return api_error(c, 0, API_E_INVALID, "%s%s: expected a string", path, name);
	*ret = v->valuestring;
	return 0;
}

int api_get_object(struct api_call *c, const cJSON *obj, const char *path, const char *name,
		   bool required, const cJSON **ret)
{
	const cJSON *v = member(obj, name);
	*ret = NULL;
	if (!v)
		return missing(c, path, name, required);
	if (!cJSON_IsObject(v))
		return api_error(c, 0, API_E_INVALID, "%s%s: expected an object", path, name);
	*ret = v;
	return 0;
}

int api_get_array(struct api_call *c, const cJSON *obj, const char *path, const char *name,
		  bool required, size_t max, const cJSON **ret)
{
	const cJSON *v = member(obj, name);
	*ret = NULL;
	if (!v)
		return missing(c, path, name, required);
	if (!cJSON_IsArray(v))
		return api_error(c, 0, API_E_INVALID, "%s%s: expected a list", path, name);
	if ((size_t)cJSON_GetArraySize(v) > max)
		return api_error(c, 0, API_E_INVALID, "%s%s: at most %zu members are allowed",
				 path, name, max);
	*ret = v;
	return 0;
}

int api_get_int(struct api_call *c, const cJSON *obj, const char *path, const char *name,
		bool required, int64_t min, int64_t max, bool *ret_present, int64_t *ret)
{
	const cJSON *v = member(obj, name);
	*ret_present = false;
	if (!v)
		return missing(c, path, name, required);
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
		return api_error(c, 0, API_E_INVALID, "%s%s: expected an integer", path, name);
	/* Range-check as a double first: a huge number must not overflow
	 * the conversion. */
	if (v->valuedouble < (double)min || v->valuedouble > (double)max)
		return api_error(c, 0, API_E_INVALID, "%s%s: must be between %lld and %lld",
				 path, name, (long long)min, (long long)max);
	*ret = (int64_t)v->valuedouble;
	*ret_present = true;
	return 0;
}

int api_get_bool(struct api_call *c, const cJSON *obj, const char *path, const char *name,
		 bool *ret_present, bool *ret)
{
	const cJSON *v = member(obj, name);
	*ret_present = false;
	if (!v)
		return 0;
	if (!cJSON_IsBool(v))
		return api_error(c, 0, API_E_INVALID, "%s%s: expected a boolean", path, name);
	*ret = cJSON_IsTrue(v);
	*ret_present = true;
	return 0;
}

int api_get_enum(struct api_call *c, const cJSON *obj, const char *path, const char *name,
		 bool required, const char *const *words, const char **ret)
{
	const char *s;
	if (api_get_string(c, obj, path, name, required, &s) < 0)
		return -1;
	*ret = NULL;
	if (!s)
		return 0;
	for (size_t i = 0; words[i]; i++)
		if (strcmp(s, words[i]) == 0) {
			*ret = words[i];
			return 0;
		}
	char list[256] = "";
	size_t off = 0;
	for (size_t i = 0; words[i] && off < sizeof(list); i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "", words[i]);
	return api_error(c, 0, API_E_INVALID, "%s%s: '%.128s' is not one of %s", path, name, s, list);
}

int api_get_client_token(struct api_call *c, size_t max, const char **ret)
{
	if (api_get_string(c, c->in, "", "clientToken", false, ret) < 0)
		return -1;
	if (!*ret)
		return 0;
	size_t n = strlen(*ret);
	bool ok = n >= 1 && n <= max;
	for (size_t i = 0; ok && i < n; i++)
		ok = (unsigned char)(*ret)[i] >= 33 && (unsigned char)(*ret)[i] <= 126;
	if (!ok)
		return api_error(c, 0, API_E_INVALID, "clientToken: 1 to %zu characters, each in the "
				 "range 33-126", max);
	return 0;
}

bool api_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > API_NAME_MAX)
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

char *api_arn(const struct api_call *c, const char *kind, const char *name)
{
	char *s;
	if (asprintf(&s, "arn:aws:ecs:%s:%s:%s/%s", c->region, c->account_id, kind, name) < 0)
		return NULL;
	return s;
}

int api_get_include_tags(struct api_call *c, bool *ret_tags)
{
	const cJSON *inc, *v;
	if (api_get_array(c, c->in, "", "include", false, 10, &inc) < 0)
		return -1;
	*ret_tags = false;
	cJSON_ArrayForEach(v, inc) {
		if (!cJSON_IsString(v) || strcmp(v->valuestring, "TAGS") != 0)
			return api_error(c, 0, API_E_INVALID, "include: only TAGS may be included");
		*ret_tags = true;
	}
	return 0;
}

static const char *const strategy_types[] = { "random", "spread", "binpack", NULL };

int api_check_platform(struct api_call *c)
{
	const char *v;
	const cJSON *ps, *it;
	if (api_get_string(c, c->in, "", "platformVersion", false, &v) < 0 ||
	    api_get_array(c, c->in, "", "placementStrategy", false, 5, &ps) < 0)
		return -1;
	if (v && strcmp(v, "LATEST") != 0 && strcmp(v, "1.4.0") != 0)
		return api_error(c, 0, API_E_INVALID, "The specified platform does not exist.");
	int i = 0;
	cJSON_ArrayForEach(it, ps) {
		char path[32];
		const char *type, *field;
		snprintf(path, sizeof(path), "placementStrategy[%d].", i++);
		if (!cJSON_IsObject(it))
			return api_error(c, 0, API_E_INVALID, "%.*s: expected an object",
					 (int)strlen(path) - 1, path);
		if (api_get_enum(c, it, path, "type", false, strategy_types, &type) < 0 ||
		    api_get_string(c, it, path, "field", false, &field) < 0)
			return -1;
	}
	return 0;
}

/* null, [], {} and false ask for nothing: such a member is as absent. */
static bool asks_nothing(const cJSON *m)
{
	return cJSON_IsNull(m) || cJSON_IsFalse(m) ||
	       ((cJSON_IsArray(m) || cJSON_IsObject(m)) && !m->child);
}

int api_refuse_members(struct api_call *c, const cJSON *obj, const char *path,
		       const char *const *handled)
{
	const cJSON *m;
	cJSON_ArrayForEach(m, obj) {
		bool known = asks_nothing(m);
		for (size_t i = 0; handled[i] && !known; i++)
			known = strcmp(m->string, handled[i]) == 0;
		if (!known)
			return api_error(c, 0, API_E_UNSUPPORTED, "%s%.128s: Berth does not support "
					 "this member here (docs/api.md, \"Member policy\").", path,
					 m->string);
	}
	return 0;
}

int api_add_missing(struct api_call *c, cJSON *failures, const char *kind, const char *cluster,
		    const char *ref)
{
	_cleanup_free_ char *arn = NULL;
	if (strncmp(ref, "arn:", 4) != 0 &&
	    asprintf(&arn, "arn:aws:ecs:%s:%s:%s/%s/%s", c->region, c->account_id, kind, cluster,
		     ref) < 0)
		return api_oom(c);
	cJSON *f = json_add_object(failures);
	if (!f || !json_add_string(f, "arn", arn ? arn : ref) ||
	    !json_add_string(f, "reason", "MISSING"))
		return api_oom(c);
	return 0;
}

int api_get_page(struct api_call *c, struct store_page *ret)
{
	bool have;
	int64_t n = 0;
	const char *tok;
	if (api_get_int(c, c->in, "", "maxResults", false, 1, STORE_PAGE_MAX, &have, &n) < 0 ||
	    api_get_string(c, c->in, "", "nextToken", false, &tok) < 0)
		return -1;
	/* An empty token is the first page, as no token is. */
	*ret = (struct store_page){ .max_results = (int)n, .next_token = tok && *tok ? tok : NULL };
	return 0;
}

