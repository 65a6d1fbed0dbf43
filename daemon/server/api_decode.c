/* daemon/server/api_decode: request bodies (api_decode.h). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "daemon/server/api_decode.h"

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF):
 * cJSON passes bytes through, and a client must never get back a string
 * it cannot decode. */
static bool utf8_valid(const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char b = p[i];
		size_t len;
		uint32_t cp, min;
		if (b < 0x80) {
			i++;
			continue;
		} else if ((b & 0xe0) == 0xc0) {
			len = 2, cp = b & 0x1f, min = 0x80;
		} else if ((b & 0xf0) == 0xe0) {
			len = 3, cp = b & 0x0f, min = 0x800;
		} else if ((b & 0xf8) == 0xf0) {
			len = 4, cp = b & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* The body is not NUL-terminated: every scan stops at END. */
static const char *skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/* Does the JSON text hold a \u0000 escape?  cJSON decodes it into its
 * C strings, which then end there: "zz\u0000../x" would be read as "zz".
 * A backslash outside a string is invalid JSON anyway, so each one starts
 * an escape; a raw NUL byte is a control character JSON does not allow
 * in a string, refused here too. */
static bool escaped_nul(const char *p, size_t n)
{
	if (memchr(p, '\0', n))
		return true;
	for (const char *e = p + n; (p = memchr(p, '\\', (size_t)(e - p))) != NULL;) {
		if (e - p >= 6 && memcmp(p + 1, "u0000", 5) == 0)
			return true;
		p += e - p >= 2 ? 2 : 1;
	}
	return false;
}

static int fail(struct api_decode_error *e, int r, const char *type, const char *msg)
{
	e->type = type;
	snprintf(e->message, sizeof(e->message), "%s", msg);
	return r;
}

int api_decode_body(const char *op, bool required, const char *body, size_t len, cJSON **ret,
		    struct api_decode_error *e)
{
	*ret = NULL;
	if (!utf8_valid((const unsigned char *)body, len))
		return fail(e, -EINVAL, "SerializationException", "The request body is not valid UTF-8.");
	if (escaped_nul(body, len))
		return fail(e, -EINVAL, "InvalidParameterException", "A string in the request contains a "
			    "NUL character (\\u0000), which no ECS name or value may contain.");
	if (skip_space(body, body + len) == body + len) {
		if (required) {
			char msg[160];
			snprintf(msg, sizeof(msg), "The request body is empty: %s needs a JSON object "
				 "with its required members.", op);
			return fail(e, -EINVAL, "SerializationException", msg);
		}
		*ret = cJSON_CreateObject();  /* an empty body is {} where {} is valid */
		return *ret ? 0 : fail(e, -ENOMEM, "ServerException", "out of memory");
	}
	const char *end = NULL;
	cJSON *in = cJSON_ParseWithLengthOpts(body, len, &end, false);
	if (in && end)
		end = skip_space(end, body + len);
	if (!in || end != body + len || !cJSON_IsObject(in)) {
		const char *why = in ? "The request body must be one JSON object."
				     : "The request body is not valid JSON.";
		cJSON_Delete(in);
		return fail(e, -EINVAL, "SerializationException", why);
	}
	*ret = in;
	return 0;
}
