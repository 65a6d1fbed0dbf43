/* daemon/elb/elb_form: the Query protocol's form body as a tree —
 * `A.B=v` a structure, `A.member.N=v` a list (1-based, no holes), values
 * strings — parsed with libevent's form decoder.  Hostile input is
 * bounded (fields, nesting, list positions) and every value is UTF-8 text
 * XML 1.0 can carry, so no answer echoing it can be malformed. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h> /* TAILQ_FOREACH for keyvalq_struct.h */

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <libxml/chvalid.h>

#include "daemon/elb/elb_internal.h"

/* Bounds a hostile form cannot exceed: list positions, nesting, and the
 * number of fields (each is placed by a scan of its parent's members, so
 * their count bounds the work a 1 MiB body can ask for; the largest
 * request, RegisterTargets with 1000 targets, has about 2000). */
#define FORM_INDEX_MAX 1000
#define FORM_DEPTH_MAX 12
#define FORM_FIELDS_MAX 4096

__attribute__((format(printf, 3, 4))) static int bad(char *msg, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
	return -1;
}

/* The code point at *P (strict UTF-8: no stray continuation byte, no
 * overlong form, no surrogate, nothing above U+10FFFF), P moved past it;
 * -1 when it is not one.  libxml2's xmlGetUTF8Char takes a continuation
 * byte for a lead byte, so it cannot be the judge. */
static long utf8_next(const unsigned char **p)
{
	const unsigned char *s = *p;
	int n = s[0] < 0x80		       ? 0
		: s[0] >= 0xc2 && s[0] <= 0xdf ? 1
		: s[0] >= 0xe0 && s[0] <= 0xef ? 2
		: s[0] >= 0xf0 && s[0] <= 0xf4 ? 3
					       : -1;
	if (n < 0)
		return -1;
	long c = n ? s[0] & (0x3f >> n) : s[0];
	for (int i = 1; i <= n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		c = (c << 6) | (s[i] & 0x3f);
	}
	static const long min[] = { 0, 0x80, 0x800, 0x10000 };
	if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return -1;
	*p = s + n + 1;
	return c;
}

/* Values become XML text: UTF-8 of characters XML 1.0 can carry. */
static bool value_ok(const char *v)
{
	const unsigned char *p = (const unsigned char *)v;
	while (*p) {
		long c = utf8_next(&p);
		if (c < 0 || !xmlIsCharQ(c))
			return false;
	}
	return true;
}

static bool is_letter(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Member names are letters and digits, starting with a letter (so they
 * make XML element names), dot-separated; after "member" (never first) a
 * position. */
static bool key_ok(const char *k)
{
	bool position = false;
	if (strncmp(k, "member", 6) == 0 && (k[6] == '.' || !k[6]))
		return false;
	for (const char *seg = k; *seg;) {
		size_t n = strcspn(seg, ".");
		if (!n || (!position && !is_letter(seg[0])))
			return false;
		for (size_t i = 0; i < n; i++)
			if (!is_letter(seg[i]) && !(seg[i] >= '0' && seg[i] <= '9'))
				return false;
		position = n == 6 && strncmp(seg, "member", 6) == 0;
		seg += n;
		if (*seg == '.' && !*++seg)
			return false;
	}
	return *k && !position; /* "member" last: no position */
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
				return bad(msg, msglen,
					   "Parameter '%.100s': bad list position '%.20s'", key,
					   segs[i]);
			cJSON *slot = array_slot(cur, idx);
			if (!slot)
				return bad(msg, msglen, "out of memory");
			if (last ? !cJSON_IsNull(slot)
				 : (!cJSON_IsNull(slot) && !cJSON_IsObject(slot) &&
				    !cJSON_IsArray(slot)))
				return bad(msg, msglen, "Parameter '%.100s' given twice", key);
			bool next_member = !last && strcmp(segs[i + 1], "member") == 0;
			cJSON *item = last		   ? cJSON_CreateString(value)
				      : cJSON_IsNull(slot) ? (next_member ? cJSON_CreateArray()
									  : cJSON_CreateObject())
							   : NULL;
			if (item && !cJSON_ReplaceItemInArray(cur, idx - 1, item))
				return bad(msg, msglen, "out of memory");
			cur = item ? item : slot;
			if (next_member) {
				if (!cJSON_IsArray(cur))
					return bad(msg, msglen,
						   "Parameter '%.100s' mixes a list and a "
						   "structure",
						   key);
				i++;
			}
			continue;
		}
		bool next_member = !last && strcmp(segs[i + 1], "member") == 0;
		cJSON *child = cJSON_GetObjectItemCaseSensitive(cur, segs[i]);
		if (last) {
			if (child)
				return bad(msg, msglen,
					   "Parameter '%.100s' given twice or mixed with its"
					   " members",
					   key);
			if (!cJSON_AddStringToObject(cur, segs[i], value))
				return bad(msg, msglen, "out of memory");
			return 0;
		}
		if (!child)
			child = next_member ? cJSON_AddArrayToObject(cur, segs[i])
					    : cJSON_AddObjectToObject(cur, segs[i]);
		if (!child || (next_member ? !cJSON_IsArray(child) : !cJSON_IsObject(child)))
			return bad(msg, msglen,
				   "Parameter '%.100s' mixes a value, a list and a"
				   " structure",
				   key);
		cur = child;
		if (next_member) {
			i++;
			if (i + 1 == n)
				return bad(msg, msglen, "Parameter '%.100s' lacks a list position",
					   key);
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
			return bad(msg, msglen,
				   "List '%.100s' skips a position: members are"
				   " numbered from 1 without gaps",
				   v->string ? v->string : "?");
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
			r = bad(msg, msglen, "The request has more than %d parameters",
				FORM_FIELDS_MAX);
	TAILQ_FOREACH(kv, &q, next) {
		if (r < 0)
			break;
		_cleanup_free_ char *key = evhttp_uridecode(kv->key, 1, NULL);
		if (!key) {
			r = bad(msg, msglen, "out of memory");
			break;
		}
		if (!key_ok(key) || !value_ok(kv->value)) {
			r = bad(msg, msglen,
				"Parameter '%.100s': not a member name, or a value"
				" that is not UTF-8 text",
				key);
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
