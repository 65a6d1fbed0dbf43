/* daemon/elb/elb_read: the member readers that take from a request's
 * tree (elb_form.c makes it). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/elb/elb_internal.h"

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
		return NULL; /* a list or structure stays, and is reported unread */
	return take(c, obj, name)->valuestring;
}

int elb_need_str(struct elb_call *c, cJSON *obj, const char *name, const char **ret)
{
	*ret = elb_take_str(c, obj, name);
	if (!*ret || !**ret)
		return elb_fail(c, "ValidationError",
				"1 validation error detected: Value null at '%s'"
				" failed to satisfy constraint: Member must not be null",
				name);
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
		return elb_fail(c, "ValidationError",
				"1 validation error detected: Value '%.40s' at"
				" '%s' failed to satisfy constraint: Member must be an integer "
				"from %d"
				" to %d",
				s, name, lo, hi);
	*ret = (int)v;
	return 1;
}

int elb_take_bool(struct elb_call *c, cJSON *obj, const char *name, bool *ret)
{
	const char *s = elb_take_str(c, obj, name);
	if (!s)
		return 0;
	if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0)
		return elb_fail(c, "ValidationError",
				"Value '%.40s' at '%s' is not a boolean"
				" (true or false)",
				s, name);
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
		elb_fail(c, "ValidationError",
			 "1 validation error detected: Value at '%s' failed to"
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
	return elb_fail(c, "ValidationError",
			"Parameter '%s' is not supported by Berth's load"
			" balancers (docs/load-balancing.md lists the supported members)",
			name);
}
