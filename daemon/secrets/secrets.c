/* daemon/secrets/secrets: what the SSM and Secrets Manager operations share (secrets.h). */
#include <string.h>

#include "daemon/secrets/secrets.h"

int secrets_call(struct api_call *c, int (*fn)(struct api_call *c), const char *service_invalid,
		 const char *service_internal)
{
	if (!c->secrets_key)
		return api_error(c, 500, service_internal, "the daemon has no secrets key");
	int r = fn(c);
	if (r < 0 && c->type && strcmp(c->type, API_E_INVALID) == 0)
		c->type = service_invalid;
	if (r < 0 && c->type && strcmp(c->type, API_E_SERVER) == 0)
		c->type = service_internal;
	/* Only the service's internal error is a 5xx: clients retry those. */
	if (r < 0 && c->type == service_internal)
		c->status = 500;
	return r;
}

const char *secrets_unkept(const struct api_call *c, const char *const *names)
{
	for (size_t i = 0; names[i]; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->in, names[i]);
		if (v && !cJSON_IsNull(v) && !(cJSON_IsArray(v) && !cJSON_GetArraySize(v)) &&
		    !(cJSON_IsString(v) && !*v->valuestring))
			return names[i];
	}
	return NULL;
}

bool secrets_add_date(cJSON *o, const char *name, int64_t ms)
{
	return json_add_number(o, name, (double)ms / 1000.0);
}
