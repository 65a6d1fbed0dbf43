/* common/json: see json.h. */
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/json.h"

const char *json_str(const cJSON *o, const char *name)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

int64_t json_int(const cJSON *o, const char *name, int64_t dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : dflt;
}

bool json_set_str(cJSON *o, const char *name, const char *v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, name);
	return cJSON_AddStringToObject(o, name, v) != NULL;
}

bool json_add_string(cJSON *obj, const char *name, const char *v)
{
	return cJSON_AddStringToObject(obj, name, v ? v : "") != NULL;
}

bool json_add_number(cJSON *obj, const char *name, double v)
{
	return cJSON_AddNumberToObject(obj, name, v) != NULL;
}

cJSON *json_add_array(cJSON *obj, const char *name)
{
	return cJSON_AddArrayToObject(obj, name);
}

cJSON *json_add_object(cJSON *arr)
{
	cJSON *o = cJSON_CreateObject();
	if (o && !cJSON_AddItemToArray(arr, o)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

void json_uuid(char out[37])
{
	unsigned char b[16];
	/* getrandom() of 16 bytes does not fail once the pool is up; should
	 * it, an id from the clock still tells requests apart in logs. */
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		memset(b, 0, sizeof(b));
		memcpy(b, &ts, sizeof(ts) < sizeof(b) ? sizeof(ts) : sizeof(b));
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);  /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);  /* RFC 4122 variant */
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
}
