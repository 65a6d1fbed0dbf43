/* daemon/elb/elb_read: the Query protocol's form, as a tree, and the
 * member readers that take from it. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>  /* TAILQ_FOREACH for keyvalq_struct.h */

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <libxml/xmlstring.h>

#include "daemon/elb/elb_internal.h"

/* Bounds a hostile form cannot exceed: list positions, nesting, and the
 * number of fields (each is placed by a scan of its parent's members, so
 * their count bounds the work a 1 MiB body can ask for; the largest
 * request, RegisterTargets with 1000 targets, has about 2000). */
#define FORM_INDEX_MAX 1000
#define FORM_DEPTH_MAX 12
#define FORM_FIELDS_MAX 4096

__attribute__((format(printf, 3, 4)))
static int bad(char *msg, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
	return -1;
}

/* Values become XML text: valid UTF-8, none of the control characters
 * XML 1.0 cannot carry. */
static bool value_ok(const char *v)
{
	if (xmlCheckUTF8((const xmlChar *)v) == 0)
		return false;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
			return false;
	return true;
}

static bool key_ok(const char *k)
{
	if (!*k || *k == '.')
		return false;
	for (const char *p = k; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return false;
	return k[strlen(k) - 1] != '.' && !strstr(k, "..");
}

/* Position IDX (1-based) of ARR, grown with null placeholders (a hole left
 * at the end is refused by check_holes()). */
static cJSON *array_slot(cJSON *arr, int idx)
{
	while (cJSON_GetArraySize(arr) < idx)
		if (!cJSON_AddItemToArray(arr, cJSON_CreateNull()))
			return NULL;
	return cJSON_GetArrayItem(arr, idx - 1);
}

static int parse_index(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s < '1' || *s > '9' || *end || v < 1 || v > FORM_INDEX_MAX)
		return -1;
	return (int)v;
}

/* Places VALUE at the dotted KEY in ROOT. */
static int insert(cJSON *root, const char *key, const char *value, char *msg, size_t msglen)
{
	_cleanup_free_ char *copy = strdup(key);
	if (!copy)
		return bad(msg, msglen, "out of memory");
	char *segs[FORM_DEPTH_MAX * 2];
	size_t n = 0;
	for (char *save = NULL, *t = strtok_r(copy, ".", &save); t; t = strtok_r(NULL, ".", &save)) {
		if (n == ARRAY_SIZE(segs))
			return bad(msg, msglen, "Parameter '%.100s' is nested too deeply", key);
		segs[n++] = t;
	}
	cJSON *cur = root;
	for (size_t i = 0; i < n; i++) {
		bool last = i + 1 == n;
		if (cJSON_IsArray(cur)) {
			int idx = parse_index(segs[i]);
			if (idx < 0)
				return bad(msg, msglen, "Parameter '%.100s': bad list position '%.20s'",
						key, segs[i]);
			cJSON *slot = array_slot(cur, idx);
			if (!slot)
				return bad(msg, msglen, "out of memory");
			if (last ? !cJSON_IsNull(slot) : (!cJSON_IsNull(slot) && !cJSON_IsObject(slot) &&
							  !cJSON_IsArray(slot)))
				return bad(msg, msglen, "Parameter '%.100s' given twice", key);
			bool next_member = !last && strcmp(segs[i + 1], "member") == 0;
			cJSON *item = last ? cJSON_CreateString(value)
				: cJSON_IsNull(slot) ? (next_member ? cJSON_CreateArray() : cJSON_CreateObject())
				: NULL;
			if (item && !cJSON_ReplaceItemInArray(cur, idx - 1, item))
				return bad(msg, msglen, "out of memory");
			cur = item ? item : slot;
			if (next_member) {
				if (!cJSON_IsArray(cur))
					return bad(msg, msglen, "Parameter '%.100s' mixes a list and a structure",
							key);
				i++;
			}
			continue;
		}
		bool next_member = !last && strcmp(segs[i + 1], "member") == 0;
		cJSON *child = cJSON_GetObjectItemCaseSensitive(cur, segs[i]);
		if (last) {
			if (child)
				return bad(msg, msglen, "Parameter '%.100s' given twice or mixed with its"
						" members", key);
			if (!cJSON_AddStringToObject(cur, segs[i], value))
				return bad(msg, msglen, "out of memory");
			return 0;
		}
		if (!child)
			child = next_member ? cJSON_AddArrayToObject(cur, segs[i])
					    : cJSON_AddObjectToObject(cur, segs[i]);
		if (!child || (next_member ? !cJSON_IsArray(child) : !cJSON_IsObject(child)))
			return bad(msg, msglen, "Parameter '%.100s' mixes a value, a list and a"
					" structure", key);
		cur = child;
		if (next_member) {
			i++;
			if (i + 1 == n)
				return bad(msg, msglen, "Parameter '%.100s' lacks a list position", key);
		}
	}
	return 0;
}

/* Lists must be 1..N with no hole. */
static int check_holes(const cJSON *v, char *msg, size_t msglen)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, v) {
		if (cJSON_IsNull(it))
			return bad(msg, msglen, "List '%.100s' skips a position: members are"
					" numbered from 1 without gaps", v->string ? v->string : "?");
		if (check_holes(it, msg, msglen) < 0)
			return -1;
	}
	return 0;
}

int elb_query_parse(const char *body, size_t len, cJSON **ret, char *msg, size_t msglen)
{
	if (memchr(body, '\0', len))
		return bad(msg, msglen, "The request body holds a NUL byte");
	_cleanup_free_ char *s = strndup(body, len);
	_cleanup_(cJSON_Deletep) cJSON *root = cJSON_CreateObject();
	if (!s || !root)
		return bad(msg, msglen, "out of memory");
	struct evkeyvalq q;
	TAILQ_INIT(&q);
	if (*s && evhttp_parse_query_str(s, &q) < 0) {
		evhttp_clear_headers(&q);
		return bad(msg, msglen, "The request body is not a form (key=value&…)");
	}
	int r = 0;
	size_t n = 0;
	struct evkeyval *kv;
	TAILQ_FOREACH(kv, &q, next)
		if (++n > FORM_FIELDS_MAX)
			r = bad(msg, msglen, "The request has more than %d parameters", FORM_FIELDS_MAX);
	TAILQ_FOREACH(kv, &q, next) {
		if (r < 0)
			break;
		_cleanup_free_ char *key = evhttp_uridecode(kv->key, 1, NULL);
		if (!key) {
			r = bad(msg, msglen, "out of memory");
			break;
		}
		if (!key_ok(key) || !value_ok(kv->value)) {
			r = bad(msg, msglen, "Parameter '%.100s': not a member name, or a value"
				     " that is not UTF-8 text", key);
			break;
		}
		if ((r = insert(root, key, kv->value, msg, msglen)) < 0)
			break;
	}
	evhttp_clear_headers(&q);
	if (r < 0 || check_holes(root, msg, msglen) < 0)
		return -1;
	*ret = TAKE_PTR(root);
	return 0;
}

/* ---- readers ---- */

/* Moves ITEM out of OBJ into the call's spent pile (it stays valid). */
static cJSON *take(struct elb_call *c, cJSON *obj, const char *name)
{
	cJSON *it = obj ? cJSON_DetachItemFromObjectCaseSensitive(obj, name) : NULL;
	if (it)
		cJSON_AddItemToArray(c->spent, it);
	return it;
}

const char *elb_take_str(struct elb_call *c, cJSON *obj, const char *name)
{
	cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!cJSON_IsString(it))
		return NULL;  /* a list or structure stays, and is reported unread */
	return take(c, obj, name)->valuestring;
}

int elb_need_str(struct elb_call *c, cJSON *obj, const char *name, const char **ret)
{
	*ret = elb_take_str(c, obj, name);
	if (!*ret || !**ret)
		return elb_fail(c, "ValidationError", "1 validation error detected: Value null at '%s'"
				" failed to satisfy constraint: Member must not be null", name);
	return 0;
}

int elb_take_int(struct elb_call *c, cJSON *obj, const char *name, int lo, int hi, int *ret)
{
	const char *s = elb_take_str(c, obj, name);
	if (!s)
		return 0;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
		return elb_fail(c, "ValidationError", "1 validation error detected: Value '%.40s' at"
				" '%s' failed to satisfy constraint: Member must be an integer from %d"
				" to %d", s, name, lo, hi);
	*ret = (int)v;
	return 1;
}

int elb_take_bool(struct elb_call *c, cJSON *obj, const char *name, bool *ret)
{
	const char *s = elb_take_str(c, obj, name);
	if (!s)
		return 0;
	if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0)
		return elb_fail(c, "ValidationError", "Value '%.40s' at '%s' is not a boolean"
				" (true or false)", s, name);
	*ret = strcmp(s, "true") == 0;
	return 1;
}

static cJSON *empty_list(struct elb_call *c)
{
	cJSON *a = cJSON_CreateArray();
	if (a)
		cJSON_AddItemToArray(c->spent, a);
	return a;
}

cJSON *elb_take_list(struct elb_call *c, cJSON *obj, const char *name, int max)
{
	cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (cJSON_IsString(it) && !*it->valuestring) {
		take(c, obj, name);
		return empty_list(c);
	}
	if (!cJSON_IsArray(it))
		return NULL;
	/* A list of strings is read whole by the caller; a list of
	 * structures is read member by member, each leaf taken. */
	if (cJSON_IsString(it->child))
		take(c, obj, name);
	if (cJSON_GetArraySize(it) > max) {
		elb_fail(c, "ValidationError", "1 validation error detected: Value at '%s' failed to"
			 " satisfy constraint: Member must have length less than or equal to %d",
			 name, max);
		return NULL;
	}
	return it;
}

cJSON *elb_take_obj(struct elb_call *c, cJSON *obj, const char *name)
{
	(void)c;
	cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsObject(it) ? it : NULL;
}

/* Reading leaves empty structures and lists behind: only leaves count. */
static bool has_leaf(const cJSON *v)
{
	if (!cJSON_IsArray(v) && !cJSON_IsObject(v))
		return !cJSON_IsNull(v);
	const cJSON *it;
	cJSON_ArrayForEach(it, v)
		if (has_leaf(it))
			return true;
	return false;
}

/* The form name of the first unread leaf under V, into BUF. */
static void first_leaf(const cJSON *v, char *buf, size_t len)
{
	while (cJSON_IsArray(v) || cJSON_IsObject(v)) {
		const cJSON *ch = v->child;
		int idx = 1;
		while (ch && !has_leaf(ch)) {
			ch = ch->next;
			idx++;
		}
		if (!ch)
			return;
		size_t at = strlen(buf);
		if (cJSON_IsArray(v))
			snprintf(buf + at, len - at, "%smember.%d", at ? "." : "", idx);
		else
			snprintf(buf + at, len - at, "%s%s", at ? "." : "", ch->string);
		v = ch;
	}
}

int elb_check_all_read(struct elb_call *c)
{
	if (!has_leaf(c->in))
		return 0;
	char name[256] = "";
	first_leaf(c->in, name, sizeof(name));
	return elb_fail(c, "ValidationError", "Parameter '%s' is not supported by Berth's load"
			" balancers (docs/load-balancing.md lists the supported members)", name);
}
