/* daemon/secrets/secretsmanager: Secrets Manager's CreateSecret,
 * GetSecretValue, PutSecretValue, DescribeSecret, ListSecrets,
 * DeleteSecret.
 *
 * A secret's ARN is "arn:aws:secretsmanager:<region>:<account>:secret:
 * <name>-<6 random characters>", as Secrets Manager makes them; SecretId
 * is the ARN, the ARN without its suffix, or the name.  Versions carry
 * staging labels: a new value takes AWSCURRENT (unless VersionStages says
 * otherwise) and the version that had it becomes AWSPREVIOUS; a version
 * left with no label is dropped.  A deleted secret is scheduled for
 * deletion after its recovery window (refused by every operation but
 * DescribeSecret and ListSecrets until then), or removed at once with
 * ForceDeleteWithoutRecovery. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/evp.h>

#include "daemon/secrets/secrets.h"
#include "daemon/store/store_secrets.h"

#define E_INVALID "InvalidParameterException"
#define E_REQUEST "InvalidRequestException"
#define E_INTERNAL "InternalServiceError"
#define E_NOT_FOUND "ResourceNotFoundException"
#define E_EXISTS "ResourceExistsException"

#define NAME_MAX_LEN 512
#define ID_MAX 2048
#define VALUE_MAX 65536
#define TOKEN_MIN 32
#define TOKEN_MAX 64
#define DESCRIPTION_MAX 2048
#define STAGES_MAX 20
#define STAGE_MAX 256
#define LIST_MAX 100
#define RECOVERY_MIN 7
#define RECOVERY_MAX 30
#define DAY_MS (24LL * 3600 * 1000)

/* ---- names, ARNs, lookups ---- */

static int check_name(struct api_call *c, const char *name)
{
	size_t n = strlen(name);
	if (n < 1 || n > NAME_MAX_LEN ||
	    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+=.@-") != n)
		return api_error(c, 0, E_INVALID, "Name %.200s: Invalid name. Must be a valid name "
				 "containing alphanumeric characters, or any of the following: "
				 "-/_+=.@ (1 to %d characters)", name, NAME_MAX_LEN);
	return 0;
}

static char *secret_arn(const struct api_call *c, const char *name)
{
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[6];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return NULL;
	char sfx[7];
	for (size_t i = 0; i < 6; i++)
		sfx[i] = alnum[rnd[i] % (sizeof(alnum) - 1)];
	sfx[6] = 0;
	char *s;
	if (asprintf(&s, "arn:aws:secretsmanager:%s:%s:secret:%s-%s", c->region, c->account_id, name,
		     sfx) < 0)
		return NULL;
	return s;
}

/* SecretId (ARN, partial ARN or name) → the secret, or -1 after
 * ResourceNotFoundException.  DELETED_OK: a secret scheduled for deletion
 * too, else InvalidRequestException for one. */
static int find_secret(struct api_call *c, const char *id, bool deleted_ok,
		       struct store_secret **ret)
{
	if (strlen(id) < 1 || strlen(id) > ID_MAX)
		return api_error(c, 0, E_INVALID, "SecretId: 1 to %d characters", ID_MAX);
	char prefix[160];
	snprintf(prefix, sizeof(prefix), "arn:aws:secretsmanager:%s:%s:secret:", c->region,
		 c->account_id);
	struct berth_err err = { 0 };
	int r = store_secret_get(c->store, id, c->now_ms, ret, &err);
	/* A partial ARN (no random suffix) names the secret by name. */
	if (r == -ENOENT && strncmp(id, prefix, strlen(prefix)) == 0)
		r = store_secret_get(c->store, id + strlen(prefix), c->now_ms, ret, &err);
	if (r == -ENOENT)
		return api_error(c, 0, E_NOT_FOUND, "Secrets Manager can't find the specified secret: "
				 "%.200s.", id);
	if (r < 0)
		return api_error(c, 0, E_INTERNAL, "%s", err.msg);
	if (!deleted_ok && (*ret)->deletion_date) {
		store_secret_free(TAKE_PTR(*ret));
		return api_error(c, 0, E_REQUEST, "You can't perform this operation on the secret "
				 "%.200s because it was marked for deletion.", id);
	}
	return 0;
}

static cJSON *stage_list(char *const *stages, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; a && i < n; i++)
		if (!cJSON_AddItemToArray(a, cJSON_CreateString(stages[i]))) {
			cJSON_Delete(a);
			return NULL;
		}
	return a;
}

/* ---- reading values ---- */

struct value_in {
	const char *token;          /* ClientRequestToken (the version id) */
	bool binary;
	unsigned char *data;        /* SecretBinary decoded, or the string */
	size_t len;
	bool present;
	unsigned char *decoded;     /* owned when binary */
};

static void value_in_done(struct value_in *v)
{
	if (v->decoded) {
		explicit_bzero(v->decoded, v->len);
		free(v->decoded);
	}
}

/* SecretBinary is base64 on the wire (AWS JSON 1.1 blobs). */
static int decode_binary(struct api_call *c, const char *b, struct value_in *v)
{
	size_t n = strlen(b);
	if (n % 4 || n > VALUE_MAX * 4 / 3 + 4)
		return api_error(c, 0, E_INVALID, "SecretBinary: not base64 of at most %d bytes",
				 VALUE_MAX);
	v->decoded = malloc(n / 4 * 3 + 1);
	if (!v->decoded)
		return api_oom(c);
	int len = EVP_DecodeBlock(v->decoded, (const unsigned char *)b, (int)n);
	for (size_t i = n; len > 0 && i > 0 && b[i - 1] == '='; i--)
		len--;
	if (len < 0 || len > VALUE_MAX)
		return api_error(c, 0, E_INVALID, "SecretBinary: not base64 of at most %d bytes",
				 VALUE_MAX);
	v->data = v->decoded;
	v->len = (size_t)len;
	v->binary = true;
	return 0;
}

static int read_value(struct api_call *c, struct value_in *v, char *uuid)
{
	const char *str, *bin;
	if (api_get_string(c, c->in, "", "ClientRequestToken", false, &v->token) < 0 ||
	    api_get_string(c, c->in, "", "SecretString", false, &str) < 0 ||
	    api_get_string(c, c->in, "", "SecretBinary", false, &bin) < 0)
		return -1;
	if (v->token && (strlen(v->token) < TOKEN_MIN || strlen(v->token) > TOKEN_MAX))
		return api_error(c, 0, E_INVALID, "ClientRequestToken: %d to %d characters",
				 TOKEN_MIN, TOKEN_MAX);
	if (!v->token) {
		json_uuid(uuid);
		v->token = uuid;
	}
	if (str && bin)
		return api_error(c, 0, E_INVALID, "You can't specify both a binary secret value and "
				 "a string secret value in the same secret.");
	v->present = str || bin;
	if (bin)
		return decode_binary(c, bin, v);
	if (str && strlen(str) > VALUE_MAX)
		return api_error(c, 0, E_INVALID, "SecretString: at most %d bytes", VALUE_MAX);
	v->data = (unsigned char *)str;
	v->len = str ? strlen(str) : 0;
	return 0;
}

/* ---- CreateSecret ---- */

static int refuse_unkept(struct api_call *c)
{
	static const char *const unkept[] = { "Tags", "AddReplicaRegions", "Type", NULL };
	const char *m = secrets_unkept(c, unkept);
	if (m)
		return api_error(c, 0, E_REQUEST, "%s: Berth's Secrets Manager keeps no tags, "
				 "replicas or managed secret types", m);
	return 0;
}

static int create_secret(struct api_call *c)
{
	const char *name, *desc, *kms;
	char uuid[37];
	_cleanup_(value_in_done) struct value_in v = { 0 };
	if (api_get_string(c, c->in, "", "Name", true, &name) < 0 ||
	    api_get_string(c, c->in, "", "Description", false, &desc) < 0 ||
	    api_get_string(c, c->in, "", "KmsKeyId", false, &kms) < 0 || check_name(c, name) < 0 ||
	    refuse_unkept(c) < 0 || read_value(c, &v, uuid) < 0)
		return -1;
	if ((desc && strlen(desc) > DESCRIPTION_MAX) || (kms && strlen(kms) > DESCRIPTION_MAX))
		return api_error(c, 0, E_INVALID, "%s: at most %d characters",
				 desc && strlen(desc) > DESCRIPTION_MAX ? "Description" : "KmsKeyId",
				 DESCRIPTION_MAX);
	_cleanup_free_ char *arn = secret_arn(c, name);
	if (!arn)
		return api_oom(c);
	struct store_secret_create in = {
		.name = name, .arn = arn, .description = desc, .kms_key_id = kms,
		.version_id = v.present ? v.token : NULL, .binary = v.binary, .data = v.data,
		.len = v.len, .now_ms = c->now_ms,
	};
	struct berth_err err = { 0 };
	int r = store_secret_create(c->store, c->secrets_key, &in, &err);
	if (r == -EEXIST) {
		_cleanup_(store_secret_freep) struct store_secret *old = NULL;
		if (store_secret_get(c->store, name, c->now_ms, &old, &err) == 0 && old->deletion_date)
			return api_error(c, 0, E_REQUEST, "You can't create this secret because a "
					 "secret with this name (%.200s) is already scheduled for "
					 "deletion.", name);
		return api_error(c, 0, E_EXISTS, "The operation failed because the secret %.200s "
				 "already exists.", name);
	}
	if (r < 0)
		return api_error(c, 0, r == -EINVAL ? E_INVALID : E_INTERNAL, "%s", err.msg);
	c->out = cJSON_CreateObject();
	if (!c->out || !json_add_string(c->out, "ARN", arn) || !json_add_string(c->out, "Name", name) ||
	    (v.present && !json_add_string(c->out, "VersionId", v.token)))
		return api_oom(c);
	return 0;
}

/* ---- GetSecretValue ---- */

static int value_json(struct api_call *c, const struct store_secret *s,
		      const struct store_secret_value *v)
{
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	cJSON *stages = stage_list(v->stages, v->n_stages);
	if (!o || !stages || !cJSON_AddItemToObject(o, "VersionStages", stages)) {
		cJSON_Delete(stages);
		return api_oom(c);
	}
	_cleanup_free_ char *b64 = v->binary ? malloc(4 * ((v->len + 2) / 3) + 1) : NULL;
	if (b64)
		EVP_EncodeBlock((unsigned char *)b64, v->data, (int)v->len);
	if ((v->binary && !b64) || !json_add_string(o, "ARN", s->arn) ||
	    !json_add_string(o, "Name", s->name) || !json_add_string(o, "VersionId", v->version_id) ||
	    !json_add_string(o, v->binary ? "SecretBinary" : "SecretString",
			     v->binary ? b64 : (const char *)v->data) ||
	    !secrets_add_date(o, "CreatedDate", v->created_at))
		return api_oom(c);
	c->out = TAKE_PTR(o);
	return 0;
}

static int get_secret_value(struct api_call *c)
{
	const char *id, *version, *stage;
	if (api_get_string(c, c->in, "", "SecretId", true, &id) < 0 ||
	    api_get_string(c, c->in, "", "VersionId", false, &version) < 0 ||
	    api_get_string(c, c->in, "", "VersionStage", false, &stage) < 0)
		return -1;
	if (version && (strlen(version) < TOKEN_MIN || strlen(version) > TOKEN_MAX))
		return api_error(c, 0, E_INVALID, "VersionId: %d to %d characters", TOKEN_MIN,
				 TOKEN_MAX);
	if (stage && (!*stage || strlen(stage) > STAGE_MAX))
		return api_error(c, 0, E_INVALID, "VersionStage: 1 to %d characters", STAGE_MAX);
	if (!version && !stage)
		stage = STORE_STAGE_CURRENT;
	_cleanup_(store_secret_freep) struct store_secret *s = NULL;
	if (find_secret(c, id, false, &s) < 0)
		return -1;
	struct berth_err err = { 0 };
	_cleanup_(store_secret_value_freep) struct store_secret_value *v = NULL;
	int r = store_secret_get_value(c->store, c->secrets_key, s->arn, version, stage, &v, &err);
	if (r == -ENOENT)
		return api_error(c, 0, E_NOT_FOUND, "Secrets Manager can't find the specified secret "
				 "value for %s: %.200s", version ? "VersionId" : "staging label",
				 version ? version : stage);
	if (r < 0)
		return api_error(c, 0, r == -EBADMSG ? "DecryptionFailure" : E_INTERNAL, "%s", err.msg);
	return value_json(c, s, v);
}

/* ---- PutSecretValue ---- */

static int read_stages(struct api_call *c, const char **stages, size_t *n)
{
	const cJSON *arr, *it;
	if (api_get_array(c, c->in, "", "VersionStages", false, STAGES_MAX, &arr) < 0)
		return -1;
	*n = 0;
	if (!arr)
		return 0;
	if (!cJSON_GetArraySize(arr))
		return api_error(c, 0, E_INVALID, "VersionStages: at least one staging label");
	cJSON_ArrayForEach(it, arr) {
		if (!cJSON_IsString(it) || !*it->valuestring || strlen(it->valuestring) > STAGE_MAX)
			return api_error(c, 0, E_INVALID, "VersionStages: each is 1 to %d characters",
					 STAGE_MAX);
		stages[(*n)++] = it->valuestring;
	}
	return 0;
}

static int put_secret_value(struct api_call *c)
{
	const char *id, *stages[STAGES_MAX];
	size_t n_stages;
	char uuid[37];
	_cleanup_(value_in_done) struct value_in v = { 0 };
	if (api_get_string(c, c->in, "", "SecretId", true, &id) < 0 || read_value(c, &v, uuid) < 0 ||
	    read_stages(c, stages, &n_stages) < 0)
		return -1;
	static const char *const rotation[] = { "RotationToken", NULL };
	if (secrets_unkept(c, rotation))
		return api_error(c, 0, E_REQUEST, "RotationToken: Berth's Secrets Manager does not "
				 "rotate secrets");
	if (!v.present)
		return api_error(c, 0, E_INVALID, "You must provide either SecretString or "
				 "SecretBinary.");
	_cleanup_(store_secret_freep) struct store_secret *s = NULL;
	if (find_secret(c, id, false, &s) < 0)
		return -1;
	struct store_secret_put in = {
		.arn = s->arn, .version_id = v.token, .binary = v.binary, .data = v.data,
		.len = v.len, .stages = n_stages ? stages : NULL, .n_stages = n_stages,
		.now_ms = c->now_ms,
	};
	struct berth_err err = { 0 };
	bool existed;
	int r = store_secret_put_value(c->store, c->secrets_key, &in, &existed, &err);
	if (r == -EEXIST)
		return api_error(c, 0, E_EXISTS, "You can't modify an existing version, you can only "
				 "create a new version (version %.64s of %.200s).", v.token, s->name);
	if (r < 0)
		return api_error(c, 0, E_INTERNAL, "%s", err.msg);
	_cleanup_(store_secret_value_freep) struct store_secret_value *val = NULL;
	r = store_secret_get_value(c->store, c->secrets_key, s->arn, v.token, NULL, &val, &err);
	if (r < 0)
		return api_error(c, 0, E_INTERNAL, "%s", err.msg);
	c->out = cJSON_CreateObject();
	cJSON *st = stage_list(val->stages, val->n_stages);
	if (!c->out || !st || !cJSON_AddItemToObject(c->out, "VersionStages", st)) {
		cJSON_Delete(st);
		return api_oom(c);
	}
	if (!json_add_string(c->out, "ARN", s->arn) || !json_add_string(c->out, "Name", s->name) ||
	    !json_add_string(c->out, "VersionId", v.token))
		return api_oom(c);
	return 0;
}

/* ---- DescribeSecret, ListSecrets ---- */

/* The members DescribeSecret and a SecretListEntry share; VERSIONS names
 * the version map ("VersionIdsToStages" / "SecretVersionsToStages"). */
static int secret_json(struct api_call *c, const struct store_secret *s, const char *versions,
		       cJSON *o)
{
	if (!json_add_string(o, "ARN", s->arn) || !json_add_string(o, "Name", s->name) ||
	    (s->description && !json_add_string(o, "Description", s->description)) ||
	    (s->kms_key_id && !json_add_string(o, "KmsKeyId", s->kms_key_id)) ||
	    !cJSON_AddBoolToObject(o, "RotationEnabled", 0) ||
	    !secrets_add_date(o, "LastChangedDate", s->changed_at) ||
	    (s->deleted_at && !secrets_add_date(o, "DeletedDate", s->deleted_at)) ||
	    !secrets_add_date(o, "CreatedDate", s->created_at))
		return api_oom(c);
	cJSON *map = cJSON_AddObjectToObject(o, versions);
	for (size_t i = 0; map && i < s->n_versions; i++) {
		cJSON *st = stage_list(s->versions[i].stages, s->versions[i].n_stages);
		if (!st || !cJSON_AddItemToObject(map, s->versions[i].version_id, st)) {
			cJSON_Delete(st);
			map = NULL;
		}
	}
	return map ? 0 : api_oom(c);
}

static int describe_secret(struct api_call *c)
{
	const char *id;
	if (api_get_string(c, c->in, "", "SecretId", true, &id) < 0)
		return -1;
	_cleanup_(store_secret_freep) struct store_secret *s = NULL;
	if (find_secret(c, id, true, &s) < 0)
		return -1;
	_cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
	if (!o)
		return api_oom(c);
	if (secret_json(c, s, "VersionIdsToStages", o) < 0)
		return -1;
	c->out = TAKE_PTR(o);
	return 0;
}

/* Filters: "name" (a prefix) only. */
static int read_list_filters(struct api_call *c, const char **ret_prefix)
{
	const cJSON *arr, *it;
	*ret_prefix = NULL;
	if (api_get_array(c, c->in, "", "Filters", false, 10, &arr) < 0)
		return -1;
	cJSON_ArrayForEach(it, arr) {
		const char *key;
		const cJSON *vals;
		if (!cJSON_IsObject(it) || api_get_string(c, it, "Filters.", "Key", true, &key) < 0 ||
		    api_get_array(c, it, "Filters.", "Values", true, 10, &vals) < 0)
			return c->type ? -1 : api_error(c, 0, E_INVALID, "Filters: expected objects");
		const char *v = cJSON_GetStringValue(cJSON_GetArrayItem(vals, 0));
		if (strcmp(key, "name") != 0 || !v || cJSON_GetArraySize(vals) != 1)
			return api_error(c, 0, E_INVALID, "Filters: Berth filters secrets by one "
					 "\"name\" prefix only (not %.64s)", key);
		*ret_prefix = v;
	}
	return 0;
}

static int list_entries(struct api_call *c, const struct store_list *l, cJSON *arr)
{
	for (size_t i = 0; i < l->n; i++) {
		struct berth_err err = { 0 };
		_cleanup_(store_secret_freep) struct store_secret *s = NULL;
		int r = store_secret_get(c->store, l->items[i], c->now_ms, &s, &err);
		if (r == -ENOENT)
			continue;
		cJSON *o = r < 0 ? NULL : json_add_object(arr);
		if (r < 0)
			return api_error(c, 0, E_INTERNAL, "%s", err.msg);
		if (!o)
			return api_oom(c);
		if (secret_json(c, s, "SecretVersionsToStages", o) < 0)
			return -1;
	}
	return 0;
}

static int list_secrets(struct api_call *c)
{
	static const char *const orders[] = { "asc", "desc", NULL };
	static const char *const sort_by[] = { "name", NULL };
	const char *token, *order, *by, *prefix;
	bool have, deleted = false;
	int64_t max = 0;
	if (api_get_int(c, c->in, "", "MaxResults", false, 1, LIST_MAX, &have, &max) < 0 ||
	    api_get_string(c, c->in, "", "NextToken", false, &token) < 0 ||
	    api_get_enum(c, c->in, "", "SortOrder", false, orders, &order) < 0 ||
	    api_get_enum(c, c->in, "", "SortBy", false, sort_by, &by) < 0 ||
	    api_get_bool(c, c->in, "", "IncludePlannedDeletion", &have, &deleted) < 0 ||
	    read_list_filters(c, &prefix) < 0)
		return -1;
	struct store_page page = { (int)max, token && *token ? token : NULL };
	struct store_list l = { 0 };
	struct berth_err err = { 0 };
	int r = store_secret_list(c->store, deleted, prefix, order && strcmp(order, "desc") == 0,
				  c->now_ms, &page, &l, &err);
	if (r == -EINVAL)
		return api_error(c, 0, "InvalidNextTokenException", "NextToken: the token is not "
				 "valid: %s", err.msg);
	if (r < 0)
		return api_error(c, 0, E_INTERNAL, "%s", err.msg);
	_cleanup_(cJSON_Deletep) cJSON *out = cJSON_CreateObject();
	cJSON *arr = out ? json_add_array(out, "SecretList") : NULL;
	r = arr && (!l.next_token || json_add_string(out, "NextToken", l.next_token)) ? 0
											: api_oom(c);
	if (r == 0)
		r = list_entries(c, &l, arr);
	store_list_clear(&l);
	if (r < 0)
		return -1;
	c->out = TAKE_PTR(out);
	return 0;
}

/* ---- DeleteSecret ---- */

static int delete_secret(struct api_call *c)
{
	const char *id;
	bool have_days, have_force, force = false;
	int64_t days = RECOVERY_MAX;
	if (api_get_string(c, c->in, "", "SecretId", true, &id) < 0 ||
	    api_get_int(c, c->in, "", "RecoveryWindowInDays", false, RECOVERY_MIN, RECOVERY_MAX,
			&have_days, &days) < 0 ||
	    api_get_bool(c, c->in, "", "ForceDeleteWithoutRecovery", &have_force, &force) < 0)
		return -1;
	if (have_days && force)
		return api_error(c, 0, E_INVALID, "You can't use ForceDeleteWithoutRecovery in "
				 "conjunction with RecoveryWindowInDays.");
	_cleanup_(store_secret_freep) struct store_secret *s = NULL;
	if (find_secret(c, id, force, &s) < 0)
		return -1;
	int64_t when = force ? 0 : c->now_ms + days * DAY_MS;
	struct berth_err err = { 0 };
	int r = store_secret_delete(c->store, s->arn, c->now_ms, when, &err);
	if (r < 0)
		return api_error(c, 0, r == -ENOENT ? E_NOT_FOUND : E_INTERNAL, "%s", err.msg);
	c->out = cJSON_CreateObject();
	if (!c->out || !json_add_string(c->out, "ARN", s->arn) ||
	    !json_add_string(c->out, "Name", s->name) ||
	    !secrets_add_date(c->out, "DeletionDate", force ? c->now_ms : when))
		return api_oom(c);
	return 0;
}

/* ---- the operations, with Secrets Manager's error types ---- */

#define SM_OP(op, fn) \
	int op(struct api_call *c) { return secrets_call(c, fn, E_INVALID, E_INTERNAL); }

SM_OP(api_op_sm_create_secret, create_secret)
SM_OP(api_op_sm_get_secret_value, get_secret_value)
SM_OP(api_op_sm_put_secret_value, put_secret_value)
SM_OP(api_op_sm_describe_secret, describe_secret)
SM_OP(api_op_sm_list_secrets, list_secrets)
SM_OP(api_op_sm_delete_secret, delete_secret)
