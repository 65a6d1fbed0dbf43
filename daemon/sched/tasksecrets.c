/* daemon/sched/tasksecrets: container secrets → environment values (tasksecrets.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "daemon/sched/tasksecrets.h"

#define ARN_FIELDS_MAX 10
/* What every failure says first, after "ResourceInitializationError: ". */
#define PULL_FAILED "unable to pull secrets or registry auth: execution resource retrieval failed: "

void tasksecret_ref_done(struct tasksecret_ref *r)
{
	free(r->id);
	free(r->json_key);
	free(r->stage);
	free(r->version_id);
	free(r->region);
	free(r->account);
	*r = (struct tasksecret_ref){ 0 };
}

/* A copy of S, NULL for an empty or absent one; false when out of memory. */
static bool dup_nonempty(char **dst, const char *s)
{
	*dst = s && *s ? strdup(s) : NULL;
	return !(s && *s) || *dst;
}

static int parse_secret_arn(const char *vf, char **f, size_t n, struct tasksecret_ref *r,
			    struct berth_err *err)
{
	if (strcmp(f[5], "secret") != 0 || n < 7 || !*f[6])
		return berth_errf(err, EINVAL, "valueFrom %s: a Secrets Manager ARN is "
				  "arn:aws:secretsmanager:<region>:<account>:secret:<name>", vf);
	if (n > ARN_FIELDS_MAX)
		return berth_errf(err, EINVAL, "valueFrom %s: after the secret's name come at most "
				  "json-key:version-stage:version-id", vf);
	r->kind = TASKSECRET_SM;
	if (asprintf(&r->id, "%s:%s:%s:%s:%s:%s:%s", f[0], f[1], f[2], f[3], f[4], f[5], f[6]) < 0) {
		r->id = NULL;
		return berth_errf(err, ENOMEM, "out of memory");
	}
	if (!dup_nonempty(&r->json_key, n > 7 ? f[7] : NULL) ||
	    !dup_nonempty(&r->stage, n > 8 ? f[8] : NULL) ||
	    !dup_nonempty(&r->version_id, n > 9 ? f[9] : NULL))
		return berth_errf(err, ENOMEM, "out of memory");
	return 0;
}

static int parse_arn(const char *vf, char *copy, struct tasksecret_ref *r, struct berth_err *err)
{
	char *f[ARN_FIELDS_MAX + 1];
	size_t n = 0;
	for (char *p = copy; p && n <= ARN_FIELDS_MAX;)
		f[n++] = strsep(&p, ":");
	if (n < 6)
		return berth_errf(err, EINVAL, "valueFrom %s: not an ARN (arn:aws:<service>:<region>:"
				  "<account>:<resource>)", vf);
	if (!dup_nonempty(&r->region, f[3]) || !dup_nonempty(&r->account, f[4]))
		return berth_errf(err, ENOMEM, "out of memory");
	if (strcmp(f[2], "secretsmanager") == 0)
		return parse_secret_arn(vf, f, n, r, err);
	if (strcmp(f[2], "ssm") != 0)
		return berth_errf(err, EINVAL, "valueFrom %s: an ARN of %s; secrets come from ssm "
				  "parameters or secretsmanager secrets", vf, f[2]);
	if (n != 6 || strncmp(f[5], "parameter/", 10) != 0 || !f[5][10])
		return berth_errf(err, EINVAL, "valueFrom %s: an SSM ARN is "
				  "arn:aws:ssm:<region>:<account>:parameter/<name>", vf);
	r->kind = TASKSECRET_SSM;
	r->id = strdup(f[5] + 9);
	return r->id ? 0 : berth_errf(err, ENOMEM, "out of memory");
}

int tasksecret_parse(const char *value_from, struct tasksecret_ref *ret, struct berth_err *err)
{
	*ret = (struct tasksecret_ref){ 0 };
	if (!*value_from)
		return berth_errf(err, EINVAL, "valueFrom: empty");
	if (strncmp(value_from, "arn:", 4) != 0) {
		ret->kind = TASKSECRET_NAME;
		ret->id = strdup(value_from);
		return ret->id ? 0 : berth_errf(err, ENOMEM, "out of memory");
	}
	_cleanup_free_ char *copy = strdup(value_from);
	int r = copy ? parse_arn(value_from, copy, ret, err) : berth_errf(err, ENOMEM, "out of memory");
	if (r < 0)
		tasksecret_ref_done(ret);
	return r;
}

/* ---- resolving ---- */

struct ctx {
	struct store *s;
	const struct store_key *k;
	const char *region, *account;
	int64_t now_ms;
};

/* An ARN of this daemon's region and account (only those are here). */
static bool ours(const struct ctx *x, const struct tasksecret_ref *r)
{
	return r->region && r->account && strcmp(r->region, x->region) == 0 &&
	       strcmp(r->account, x->account) == 0;
}

static int ssm_missing(const char *vf, struct berth_err *err)
{
	return berth_errf(err, ENOENT, PULL_FAILED "unable to retrieve secrets from ssm: invalid "
			  "parameters: %s", vf);
}

/* NAME's latest value in *ret; -ENOENT (without a message) when none. */
static int ssm_value(const struct ctx *x, const char *name, char **ret, struct berth_err *err)
{
	_cleanup_(store_param_freep) struct store_param *p = NULL;
	int r = store_param_get(x->s, x->k, name, 0, true, &p, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(p->value);
	return 0;
}

static int from_ssm(const struct ctx *x, const char *vf, const struct tasksecret_ref *ref,
		    char **ret, struct berth_err *err)
{
	if (!ours(x, ref))
		return ssm_missing(vf, err);
	int r = ssm_value(x, ref->id, ret, err);
	/* "parameter/x" is the ARN of "x" as well as of "/x". */
	if (r == -ENOENT && !strchr(ref->id + 1, '/'))
		r = ssm_value(x, ref->id + 1, ret, err);
	return r == -ENOENT ? ssm_missing(vf, err) : r;
}

static int asm_fail(const char *id, const char *why, struct berth_err *err)
{
	return berth_errf(err, ENOENT, PULL_FAILED "unable to retrieve secret from asm: failed to "
			  "fetch secret %s from secrets manager: %s", id, why);
}

/* KEY of the JSON object TEXT, as a string (a non-string member as its
 * JSON text). */
static int json_key(const char *id, const char *text, const char *key, char **ret,
		    struct berth_err *err)
{
	_cleanup_(cJSON_Deletep) cJSON *doc = cJSON_Parse(text);
	const cJSON *v = cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, key) : NULL;
	if (!v)
		return berth_errf(err, ENOENT, PULL_FAILED "unable to retrieve secret from asm: "
				  "retrieved secret %s from Secrets Manager did not contain json "
				  "key %s", id, key);
	*ret = cJSON_IsString(v) ? strdup(v->valuestring) : cJSON_PrintUnformatted(v);
	/* The parsed document holds the whole secret too. */
	if (cJSON_IsObject(doc))
		for (cJSON *m = doc->child; m; m = m->next)
			if (cJSON_IsString(m))
				explicit_bzero(m->valuestring, strlen(m->valuestring));
	return *ret ? 0 : berth_errf(err, ENOMEM, "out of memory");
}

static int find_secret(const struct ctx *x, const struct tasksecret_ref *ref,
		       struct store_secret **ret, struct berth_err *err)
{
	int r = store_secret_get(x->s, ref->id, x->now_ms, ret, err);
	/* An ARN without the random suffix names the secret by its name. */
	const char *name = ref->kind == TASKSECRET_SM ? strstr(ref->id, ":secret:") : NULL;
	if (r == -ENOENT && name && ours(x, ref))
		r = store_secret_get(x->s, name + 8, x->now_ms, ret, err);
	return r;
}

static int from_asm(const struct ctx *x, const struct tasksecret_ref *ref, char **ret,
		    struct berth_err *err)
{
	_cleanup_(store_secret_freep) struct store_secret *sec = NULL;
	int r = find_secret(x, ref, &sec, err);
	if (r == -ENOENT)
		return asm_fail(ref->id, "ResourceNotFoundException: Secrets Manager can't find the "
				"specified secret.", err);
	if (r < 0)
		return r;
	if (sec->deletion_date)
		return asm_fail(ref->id, "InvalidRequestException: You can't perform this operation "
				"on the secret because it was marked for deletion.", err);
	const char *stage = ref->stage ? ref->stage : ref->version_id ? NULL : STORE_STAGE_CURRENT;
	_cleanup_(store_secret_value_freep) struct store_secret_value *v = NULL;
	r = store_secret_get_value(x->s, x->k, sec->arn, ref->version_id, stage, &v, err);
	if (r == -ENOENT) {
		char why[512];
		snprintf(why, sizeof(why), "ResourceNotFoundException: Secrets Manager can't find the "
			 "specified secret value for %s: %s", ref->version_id ? "VersionId"
			 : "staging label", ref->version_id ? ref->version_id : stage);
		return asm_fail(ref->id, why, err);
	}
	if (r < 0)
		return r;
	if (v->binary)
		return asm_fail(ref->id, "the secret's value is SecretBinary; only a SecretString can "
				"be an environment variable", err);
	if (ref->json_key)
		return json_key(ref->id, (const char *)v->data, ref->json_key, ret, err);
	*ret = strdup((const char *)v->data);
	return *ret ? 0 : berth_errf(err, ENOMEM, "out of memory");
}

static int resolve_one(const struct ctx *x, const char *vf, char **ret, struct berth_err *err)
{
	struct tasksecret_ref ref;
	int r = tasksecret_parse(vf, &ref, err);
	if (r == -EINVAL)
		return berth_errf(err, ENOENT, PULL_FAILED "%s", err->msg);
	if (r < 0)
		return r;
	if (ref.kind == TASKSECRET_SSM)
		r = from_ssm(x, vf, &ref, ret, err);
	else if (ref.kind == TASKSECRET_SM)
		r = from_asm(x, &ref, ret, err);
	else {
		/* A name: a parameter, else a secret of that name. */
		r = ssm_value(x, vf, ret, err);
		if (r == -ENOENT) {
			r = from_asm(x, &ref, ret, err);
			if (r == -ENOENT)
				r = ssm_missing(vf, err);
		}
	}
	tasksecret_ref_done(&ref);
	return r;
}

/* One container's secrets appended to OUT as {"name", "value"}. */
static int container_secrets(const struct ctx *x, const cJSON *cd, cJSON *out,
			     struct berth_err *err)
{
	const cJSON *sec;
	cJSON_ArrayForEach(sec, cJSON_GetObjectItemCaseSensitive(cd, "secrets")) {
		const char *name = json_str(sec, "name"), *vf = json_str(sec, "valueFrom");
		if (!name || !vf)
			continue;  /* RegisterTaskDefinition requires both */
		char *value = NULL;
		int r = resolve_one(x, vf, &value, err);
		if (r < 0)
			return r;
		cJSON *o = json_add_object(out);
		bool ok = o && json_add_string(o, "name", name) && json_add_string(o, "value", value);
		explicit_bzero(value, strlen(value));
		free(value);
		if (!ok)
			return berth_errf(err, ENOMEM, "out of memory");
	}
	return 0;
}

int tasksecrets_resolve(struct store *s, const struct store_key *k, const char *region,
			const char *account, int64_t now_ms, const cJSON *td, cJSON **ret,
			struct berth_err *err)
{
	const struct ctx x = { s, k, region, account, now_ms };
	const cJSON *cd, *cds = cJSON_GetObjectItemCaseSensitive(td, "containerDefinitions");
	*ret = NULL;
	bool any = false;
	cJSON_ArrayForEach(cd, cds)
		any |= cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cd, "secrets")) > 0;
	if (!any)
		return 0;
	if (!k)
		return berth_errf(err, ENOENT, PULL_FAILED "the daemon has no secrets key");
	cJSON *all = cJSON_CreateArray();
	if (!all)
		return berth_errf(err, ENOMEM, "out of memory");
	cJSON_ArrayForEach(cd, cds) {
		cJSON *one = cJSON_CreateArray();
		if (!one || !cJSON_AddItemToArray(all, one)) {
			cJSON_Delete(one);
			tasksecrets_free(all);
			return berth_errf(err, ENOMEM, "out of memory");
		}
		int r = container_secrets(&x, cd, one, err);
		if (r < 0) {
			tasksecrets_free(all);
			return r;
		}
	}
	*ret = all;
	return 0;
}

static void wipe(cJSON *v)
{
	for (; v; v = v->next) {
		if (cJSON_IsString(v) && v->valuestring)
			explicit_bzero(v->valuestring, strlen(v->valuestring));
		wipe(v->child);
	}
}

void tasksecrets_free(cJSON *v)
{
	if (v)
		wipe(v->child);
	cJSON_Delete(v);
}

void tasksecrets_free_text(char *text)
{
	if (text)
		explicit_bzero(text, strlen(text));
	free(text);
}
