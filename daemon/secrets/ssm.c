/* daemon/secrets/ssm: SSM Parameter Store's PutParameter, GetParameter,
 * GetParameters, GetParametersByPath, DescribeParameters, DeleteParameter.
 *
 * Names follow SSM's rules: 1-2048 of letters, digits and "_.-/"; a name
 * with a '/' is a path and starts with one; at most 15 levels; no "aws" or
 * "ssm" prefix.  GetParameter(s) also take "name:version" and the
 * parameter's ARN.  Every type is sealed at rest; a SecureString read
 * without WithDecryption answers its sealed bytes (base64), as SSM answers
 * the KMS ciphertext. */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/secrets/secrets.h"
#include "daemon/store/store_secrets.h"

#define E_VALIDATION "ValidationException"
#define E_INTERNAL "InternalServerError"
#define E_NOT_FOUND "ParameterNotFound"
#define E_VERSION_NOT_FOUND "ParameterVersionNotFound"

#define NAME_MAX_LEN 2048
#define LEVELS_MAX 15
#define VALUE_MAX_STANDARD 4096
#define VALUE_MAX_ADVANCED 8192
#define DESCRIPTION_MAX 1024
#define PATTERN_MAX 1024
#define GET_NAMES_MAX 10
#define BY_PATH_MAX 10
#define DESCRIBE_MAX 50

static const char *const types[] = { "String", "StringList", "SecureString", NULL };
static const char *const tiers[] = { "Standard", "Advanced", "Intelligent-Tiering", NULL };

/* ---- names, ARNs ---- */

static int name_error(struct api_call *c, const char *name, const char *why)
{
	return api_error(c, 0, E_VALIDATION, "Parameter name %.200s: %s", name, why);
}

/* SSM's rules for a name (or, with IS_PATH, a GetParametersByPath path). */
static int check_name(struct api_call *c, const char *name, bool is_path)
{
	size_t n = strlen(name);
	if (n < 1 || n > NAME_MAX_LEN)
		return name_error(c, name, "must be 1 to 2048 characters");
	if (strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-/") != n)
		return name_error(c, name, "may hold only letters, numbers and the symbols .-_ "
				  "(and / between the levels of a path)");
	if ((strchr(name, '/') || is_path) && name[0] != '/')
		return name_error(c, name, "a path (a name with '/') must begin with '/'");
	if (strstr(name, "//") || (n > 1 && name[n - 1] == '/'))
		return name_error(c, name, "a path's levels must not be empty");
	size_t levels = 0;
	for (const char *p = name; *p; p++)
		levels += *p == '/';
	if (levels > LEVELS_MAX)
		return api_error(c, 0, "HierarchyLevelLimitExceededException", "Parameter name %.200s: "
				 "a hierarchy has at most %d levels", name, LEVELS_MAX);
	const char *first = name + (name[0] == '/');
	if (!is_path && (strncasecmp(first, "aws", 3) == 0 || strncasecmp(first, "ssm", 3) == 0))
		return name_error(c, name, "can't be prefixed with \"aws\" or \"ssm\" "
				  "(case-insensitive)");
	return 0;
}

static char *param_arn(const struct api_call *c, const char *name)
{
	char *s;
	if (asprintf(&s, "arn:aws:ssm:%s:%s:parameter%s%s", c->region, c->account_id,
		     name[0] == '/' ? "" : "/", name) < 0)
		return NULL;
	return s;
}

/* A GetParameter(s) reference: NAME, NAME:VERSION, or the ARN of either. */
struct ref {
	char name[NAME_MAX_LEN + 1];
	int64_t version;            /* 0: the latest */
	const char *selector;       /* ":3" as given, or NULL */
	bool short_arn;             /* "parameter/x": "x", else "/x" */
};

/* 0 with *r, or -1 after a ValidationException. */
static int parse_ref(struct api_call *c, const char *in, struct ref *r)
{
	char prefix[160];
	snprintf(prefix, sizeof(prefix), "arn:aws:ssm:%s:%s:parameter", c->region, c->account_id);
	const char *s = in;
	if (strncmp(in, "arn:", 4) == 0) {
		if (strncmp(in, prefix, strlen(prefix)) != 0 || in[strlen(prefix)] != '/')
			return api_error(c, 0, E_VALIDATION, "%.200s: not the ARN of a parameter in "
					 "this region (%s) and account (%s)", in, c->region,
					 c->account_id);
		s = in + strlen(prefix);
	}
	const char *colon = strchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : strlen(s);
	if (n > NAME_MAX_LEN)
		return name_error(c, in, "must be 1 to 2048 characters");
	memcpy(r->name, s, n);
	r->name[n] = 0;
	/* An ARN of a name without '/' has one: "parameter/x" is "x". */
	r->short_arn = s != in && !strchr(r->name + 1, '/');
	if (r->short_arn)
		memmove(r->name, r->name + 1, n);
	r->version = 0;
	r->selector = colon;
	if (colon) {
		char *end;
		long long v = strtoll(colon + 1, &end, 10);
		if (!colon[1] || *end || v < 1)
			return api_error(c, 0, E_VERSION_NOT_FOUND, "%.200s: Berth keeps no parameter "
					 "labels; a selector is a version number", in);
		r->version = v;
	}
	return check_name(c, r->name, false);
}

/* ---- answers ---- */

static int param_json(struct api_call *c, const struct store_param *p, const char *selector,
		      cJSON *o)
{
	_cleanup_free_ char *arn = param_arn(c, p->name);
	if (!arn || !json_add_string(o, "Name", p->name) || !json_add_string(o, "Type", p->type) ||
	    !json_add_string(o, "Value", p->value) || !json_add_number(o, "Version", (double)p->version) ||
	    (selector && !json_add_string(o, "Selector", selector)) ||
	    !secrets_add_date(o, "LastModifiedDate", p->modified_at) || !json_add_string(o, "ARN", arn) ||
	    !json_add_string(o, "DataType", p->data_type))
		return api_oom(c);
	return 0;
}

/* ParameterMetadata (no ARN: botocore's model of it has none). */
static int meta_json(struct api_call *c, const struct store_param *p, cJSON *o)
{
	char user[64];
	snprintf(user, sizeof(user), "arn:aws:iam::%s:root", c->account_id);
	if (!json_add_string(o, "Name", p->name) || !json_add_string(o, "Type", p->type) ||
	    (strcmp(p->type, "SecureString") == 0 && !json_add_string(o, "KeyId", "alias/aws/ssm")) ||
	    !secrets_add_date(o, "LastModifiedDate", p->modified_at) ||
	    !json_add_string(o, "LastModifiedUser", user) ||
	    (p->description && !json_add_string(o, "Description", p->description)) ||
	    (p->allowed_pattern && !json_add_string(o, "AllowedPattern", p->allowed_pattern)) ||
	    !json_add_number(o, "Version", (double)p->version) ||
	    !json_add_string(o, "Tier", p->tier) || !json_add_array(o, "Policies") ||
	    !json_add_string(o, "DataType", p->data_type))
		return api_oom(c);
	return 0;
}

/* A store failure as SSM's error. */
static int store_fail(struct api_call *c, int r, const struct berth_err *err, const char *name,
		      int64_t version)
{
	if (r == -ENOENT)
		return api_error(c, 0, E_NOT_FOUND, "Parameter %.200s not found.", name);
	if (r == -ENODATA)
		return api_error(c, 0, E_VERSION_NOT_FOUND, "Systems Manager could not find version "
				 "%lld of %.200s. Verify the version and try again.",
				 (long long)version, name);
	return api_error(c, 0, E_INTERNAL, "%s", err->msg);
}

/* ---- PutParameter ---- */

/* AllowedPattern: a POSIX extended regular expression VALUE must match. */
static int check_pattern(struct api_call *c, const char *pattern, const char *value)
{
	regex_t re;
	if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
		return api_error(c, 0, "InvalidAllowedPatternException", "AllowedPattern %.200s: not "
				 "a valid regular expression", pattern);
	int m = regexec(&re, value, 0, NULL, 0);
	regfree(&re);
	if (m != 0)
		return api_error(c, 0, "ParameterPatternMismatchException", "Parameter value, cannot "
				 "be validated against allowedPattern: %.200s", pattern);
	return 0;
}

/* Members Berth does not keep: refused rather than dropped. */
static int refuse_unkept(struct api_call *c)
{
	static const char *const unkept[] = { "Tags", "Policies", NULL };
	const char *m = secrets_unkept(c, unkept);
	if (m)
		return api_error(c, 0, E_VALIDATION, "%s: Berth does not keep parameter %s", m,
				 strcmp(m, "Tags") ? "policies" : "tags");
	return 0;
}

struct put_in {
	struct store_param_put p;
	const char *key_id;
};

static int read_put(struct api_call *c, struct put_in *in)
{
	bool have;
	struct store_param_put *p = &in->p;
	if (api_get_string(c, c->in, "", "Name", true, &p->name) < 0 ||
	    api_get_string(c, c->in, "", "Value", true, &p->value) < 0 ||
	    api_get_enum(c, c->in, "", "Type", false, types, &p->type) < 0 ||
	    api_get_string(c, c->in, "", "Description", false, &p->description) < 0 ||
	    api_get_string(c, c->in, "", "AllowedPattern", false, &p->allowed_pattern) < 0 ||
	    api_get_string(c, c->in, "", "KeyId", false, &in->key_id) < 0 ||
	    api_get_enum(c, c->in, "", "Tier", false, tiers, &p->tier) < 0 ||
	    api_get_string(c, c->in, "", "DataType", false, &p->data_type) < 0 ||
	    api_get_bool(c, c->in, "", "Overwrite", &have, &p->overwrite) < 0 ||
	    check_name(c, p->name, false) < 0 || refuse_unkept(c) < 0)
		return -1;
	if (p->tier && strcmp(p->tier, "Intelligent-Tiering") == 0)
		p->tier = strlen(p->value) > VALUE_MAX_STANDARD ? "Advanced" : "Standard";
	size_t max = p->tier && strcmp(p->tier, "Advanced") == 0 ? VALUE_MAX_ADVANCED
								 : VALUE_MAX_STANDARD;
	if (!*p->value || strlen(p->value) > max)
		return api_error(c, 0, E_VALIDATION, "Value: a %s parameter's value is 1 to %zu "
				 "characters", max == VALUE_MAX_STANDARD ? "Standard" : "Advanced", max);
	if (p->description && strlen(p->description) > DESCRIPTION_MAX)
		return api_error(c, 0, E_VALIDATION, "Description: at most %d characters",
				 DESCRIPTION_MAX);
	if (p->allowed_pattern && strlen(p->allowed_pattern) > PATTERN_MAX)
		return api_error(c, 0, E_VALIDATION, "AllowedPattern: at most %d characters",
				 PATTERN_MAX);
	if (p->data_type && strcmp(p->data_type, "text") != 0)
		return api_error(c, 0, E_VALIDATION, "DataType %.100s: Berth keeps text parameters "
				 "only", p->data_type);
	if (in->key_id && p->type && strcmp(p->type, "SecureString") != 0)
		return api_error(c, 0, E_VALIDATION, "KeyId is allowed with the SecureString type only");
	return 0;
}

static int put_parameter(struct api_call *c)
{
	struct put_in in = { .p.now_ms = c->now_ms };
	if (read_put(c, &in) < 0)
		return -1;
	struct berth_err err = { 0 };
	_cleanup_(store_param_freep) struct store_param *cur = NULL;
	int r = store_param_get(c->store, c->secrets_key, in.p.name, 0, false, &cur, &err);
	if (r < 0 && r != -ENOENT)
		return store_fail(c, r, &err, in.p.name, 0);
	const char *pattern = in.p.allowed_pattern ? in.p.allowed_pattern
				: cur ? cur->allowed_pattern : NULL;
	if (cur && !in.p.overwrite)
		return api_error(c, 0, "ParameterAlreadyExists", "The parameter %.200s already exists. "
				 "To overwrite this value, set the overwrite option in the request "
				 "to true.", in.p.name);
	if (!cur && !in.p.type)
		return api_error(c, 0, E_VALIDATION, "A parameter type is required when you create a "
				 "parameter.");
	if (pattern && *pattern && check_pattern(c, pattern, in.p.value) < 0)
		return -1;
	int64_t version;
	r = store_param_put(c->store, c->secrets_key, &in.p, &version, &err);
	if (r == -EEXIST)
		return api_error(c, 0, "ParameterAlreadyExists", "The parameter %.200s already exists.",
				 in.p.name);
	if (r < 0)
		return store_fail(c, r, &err, in.p.name, 0);
	c->out = cJSON_CreateObject();
	if (!c->out || !json_add_number(c->out, "Version", (double)version) ||
	    !json_add_string(c->out, "Tier", in.p.tier ? in.p.tier : cur ? cur->tier : "Standard"))
		return api_oom(c);
	return 0;
}

/* ---- GetParameter, GetParameters ---- */

static int get_one(struct api_call *c, const char *ref_text, bool decrypt, cJSON *o)
{
	struct ref ref;
	if (parse_ref(c, ref_text, &ref) < 0)
		return -1;
	struct berth_err err = { 0 };
	_cleanup_(store_param_freep) struct store_param *p = NULL;
	int r = store_param_get(c->store, c->secrets_key, ref.name, ref.version, decrypt, &p, &err);
	if (r == -ENOENT && ref.short_arn) {
		char slashed[NAME_MAX_LEN + 2];
		snprintf(slashed, sizeof(slashed), "/%s", ref.name);
		r = store_param_get(c->store, c->secrets_key, slashed, ref.version, decrypt, &p, &err);
	}
	if (r < 0)
		return store_fail(c, r, &err, ref.name, ref.version);
	return param_json(c, p, ref.selector, o);
}

static int get_parameter(struct api_call *c)
{
	const char *name;
	bool have, decrypt = false;
	if (api_get_string(c, c->in, "", "Name", true, &name) < 0 ||
	    api_get_bool(c, c->in, "", "WithDecryption", &have, &decrypt) < 0)
		return -1;
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *o = out ? cJSON_AddObjectToObject(out, "Parameter") : NULL;
	if (!o)
		return api_oom(c);
	if (get_one(c, name, decrypt, o) < 0)
		return -1;
	c->out = TAKE_PTR(out);
	return 0;
}

static int get_parameters(struct api_call *c)
{
	const cJSON *names, *it;
	bool have, decrypt = false;
	if (api_get_array(c, c->in, "", "Names", true, GET_NAMES_MAX, &names) < 0 ||
	    api_get_bool(c, c->in, "", "WithDecryption", &have, &decrypt) < 0)
		return -1;
	if (!cJSON_GetArraySize(names))
		return api_error(c, 0, E_VALIDATION, "Names: at least one name is required");
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *found = out ? json_add_array(out, "Parameters") : NULL;
	cJSON *invalid = found ? json_add_array(out, "InvalidParameters") : NULL;
	if (!invalid)
		return api_oom(c);
	cJSON_ArrayForEach(it, names) {
		if (!cJSON_IsString(it))
			return api_error(c, 0, E_VALIDATION, "Names: expected a list of strings");
		cJSON *o = cJSON_CreateObject();
		int r = o ? get_one(c, it->valuestring, decrypt, o) : api_oom(c);
		if (r == 0 && cJSON_AddItemToArray(found, o))
			continue;
		cJSON_Delete(o);
		/* A name that is missing, or malformed, is an invalid one. */
		if (!o || strcmp(c->type, E_INTERNAL) == 0 || strcmp(c->type, API_E_SERVER) == 0)
			return -1;
		c->type = NULL;
		if (!cJSON_AddItemToArray(invalid, cJSON_CreateString(it->valuestring)))
			return api_oom(c);
	}
	c->out = TAKE_PTR(out);
	return 0;
}

/* ---- GetParametersByPath, DescribeParameters ---- */

/* ParameterFilters: Type (Equals) everywhere; Name (Equals, BeginsWith)
 * and Path (OneLevel, Recursive) where ALL. */
static int read_filters(struct api_call *c, bool all, struct store_param_filter *f)
{
	const cJSON *arr, *it;
	if (api_get_array(c, c->in, "", "ParameterFilters", false, 50, &arr) < 0)
		return -1;
	static const char *const old_filters[] = { "Filters", NULL };
	if (secrets_unkept(c, old_filters))
		return api_error(c, 0, "InvalidFilterKey", "Filters: Berth takes ParameterFilters "
				 "only");
	cJSON_ArrayForEach(it, arr) {
		const char *key, *opt;
		const cJSON *vals;
		if (!cJSON_IsObject(it) || api_get_string(c, it, "ParameterFilters.", "Key", true, &key) < 0 ||
		    api_get_string(c, it, "ParameterFilters.", "Option", false, &opt) < 0 ||
		    api_get_array(c, it, "ParameterFilters.", "Values", true, 1, &vals) < 0)
			return c->type ? -1 : api_error(c, 0, E_VALIDATION, "ParameterFilters: "
							"expected objects");
		const char *v = cJSON_GetStringValue(cJSON_GetArrayItem(vals, 0));
		if (!v)
			return api_error(c, 0, "InvalidFilterValue", "ParameterFilters %s: one string "
					 "value is required", key);
		opt = opt ? opt : "Equals";
		if (strcmp(key, "Type") == 0 && strcmp(opt, "Equals") == 0)
			f->type = v;
		else if (all && strcmp(key, "Name") == 0 && strcmp(opt, "Equals") == 0)
			f->name_equals = v;
		else if (all && strcmp(key, "Name") == 0 && strcmp(opt, "BeginsWith") == 0)
			f->name_begins = v;
		else if (all && strcmp(key, "Path") == 0 &&
			 (strcmp(opt, "OneLevel") == 0 || strcmp(opt, "Recursive") == 0)) {
			f->path = v;
			f->recursive = strcmp(opt, "Recursive") == 0;
		} else if (strcmp(key, "Type") == 0 || strcmp(key, "Name") == 0 ||
			   strcmp(key, "Path") == 0)
			return api_error(c, 0, "InvalidFilterOption", "ParameterFilters %s: option %.64s "
					 "is not supported here", key, opt);
		else
			return api_error(c, 0, "InvalidFilterKey", "ParameterFilters: key %.64s is not "
					 "supported (Berth filters by Type%s)", key,
					 all ? ", Name and Path" : "");
	}
	return 0;
}

/* One page of F into c->out: LIST holding parameters (VALUES) or metadata. */
static int list_page(struct api_call *c, struct store_param_filter *f, int64_t max)
{
	const char *token;
	bool have;
	int64_t n = 0;
	if (api_get_int(c, c->in, "", "MaxResults", false, 1, max, &have, &n) < 0 ||
	    api_get_string(c, c->in, "", "NextToken", false, &token) < 0)
		return -1;
	struct store_page page = { (int)(have ? n : max), token && *token ? token : NULL };
	struct berth_err err = { 0 };
	struct store_param *v = NULL;
	size_t count = 0;
	_cleanup_free_ char *next = NULL;
	int r = store_param_list(c->store, c->secrets_key, f, &page, &v, &count, &next, &err);
	if (r == -EINVAL)
		return api_error(c, 0, "InvalidNextToken", "NextToken: the token is not valid: %s",
				 err.msg);
	if (r < 0)
		return store_fail(c, r, &err, "", 0);
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *arr = out ? json_add_array(out, "Parameters") : NULL;
	r = arr && (!next || json_add_string(out, "NextToken", next)) ? 0 : api_oom(c);
	for (size_t i = 0; r == 0 && i < count; i++) {
		cJSON *o = json_add_object(arr);
		r = !o ? api_oom(c) : f->values ? param_json(c, &v[i], NULL, o) : meta_json(c, &v[i], o);
	}
	store_params_free(v, count);
	if (r < 0)
		return -1;
	c->out = TAKE_PTR(out);
	return 0;
}

static int get_parameters_by_path(struct api_call *c)
{
	struct store_param_filter f = { .values = true };
	bool have;
	if (api_get_string(c, c->in, "", "Path", true, &f.path) < 0 ||
	    api_get_bool(c, c->in, "", "Recursive", &have, &f.recursive) < 0 ||
	    api_get_bool(c, c->in, "", "WithDecryption", &have, &f.decrypt) < 0 ||
	    check_name(c, f.path, true) < 0 || read_filters(c, false, &f) < 0)
		return -1;
	return list_page(c, &f, BY_PATH_MAX);
}

static int describe_parameters(struct api_call *c)
{
	struct store_param_filter f = { 0 };
	if (read_filters(c, true, &f) < 0)
		return -1;
	return list_page(c, &f, DESCRIBE_MAX);
}

/* ---- DeleteParameter ---- */

static int delete_parameter(struct api_call *c)
{
	const char *name;
	if (api_get_string(c, c->in, "", "Name", true, &name) < 0 || check_name(c, name, false) < 0)
		return -1;
	struct berth_err err = { 0 };
	int r = store_param_delete(c->store, name, &err);
	if (r < 0)
		return store_fail(c, r, &err, name, 0);
	c->out = cJSON_CreateObject();
	return c->out ? 0 : api_oom(c);
}

/* ---- the operations, with SSM's error types ---- */

#define SSM_OP(op, fn) \
	int op(struct api_call *c) { return secrets_call(c, fn, E_VALIDATION, E_INTERNAL); }

SSM_OP(api_op_ssm_put_parameter, put_parameter)
SSM_OP(api_op_ssm_get_parameter, get_parameter)
SSM_OP(api_op_ssm_get_parameters, get_parameters)
SSM_OP(api_op_ssm_get_parameters_by_path, get_parameters_by_path)
SSM_OP(api_op_ssm_describe_parameters, describe_parameters)
SSM_OP(api_op_ssm_delete_parameter, delete_parameter)
