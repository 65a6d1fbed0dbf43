/* Registry authentication inputs: WWW-Authenticate challenges (RFC 7235)
 * and docker config.json credentials.  Pure parsers, no I/O; the flow that
 * uses them (ping, token fetch, retry) lives in registry.c. */
#include "images/registry.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cleanup.h"

/* Longest challenge parameter value we keep (realms are URLs). */
#define CHALLENGE_VALUE_MAX 4096

/* RFC 7230 tchar. */
static bool is_tchar(char c)
{
	return isalnum((unsigned char)c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Reads a quoted-string starting after the opening quote; backslash
 * escapes the next character.  Control characters are refused: values
 * end up in URLs and headers. */
static int parse_quoted(const char **pp, char *out, struct berth_err *err)
{
	const char *p = *pp;
	size_t n = 0;
	for (;; p++) {
		if (*p == '"')
			break;
		if (*p == '\\')
			p++;
		if (*p == '\0')
			return berth_errf(err, EPROTO, "unterminated quoted string");
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return berth_errf(err, EPROTO, "control character in quoted string");
		if (n + 1 >= CHALLENGE_VALUE_MAX)
			return berth_errf(err, EPROTO, "parameter value too long");
		out[n++] = *p;
	}
	out[n] = '\0';
	*pp = p + 1;
	return 0;
}

/* Unquoted values: RFC 7235 says token, but some servers send bare URLs,
 * so anything up to a comma or whitespace is taken. */
static int parse_bare(const char **pp, char *out, struct berth_err *err)
{
	const char *p = *pp;
	size_t n = strcspn(p, ", \t");
	if (n == 0)
		return berth_errf(err, EPROTO, "empty parameter value");
	if (n >= CHALLENGE_VALUE_MAX)
		return berth_errf(err, EPROTO, "parameter value too long");
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f || p[i] == '"')
			return berth_errf(err, EPROTO, "invalid character in parameter value");
	memcpy(out, p, n);
	out[n] = '\0';
	*pp = p + n;
	return 0;
}

static int set_param(struct img_challenge *c, const char *name, size_t len, const char *value)
{
	char **slot = NULL;
	if (len == 5 && strncasecmp(name, "realm", 5) == 0)
		slot = &c->realm;
	else if (len == 7 && strncasecmp(name, "service", 7) == 0)
		slot = &c->service;
	else if (len == 5 && strncasecmp(name, "scope", 5) == 0)
		slot = &c->scope;
	if (!slot)
		return 0; /* error=, error_description=, …: not needed */
	char *dup = strdup(value);
	if (!dup)
		return -ENOMEM;
	free(*slot); /* a repeated parameter: the last one wins */
	*slot = dup;
	return 0;
}

/* Parses "name = value" pairs separated by commas.  A name not followed
 * by '=' after a comma starts the next challenge (several challenges may
 * share one header); only the first challenge is used. */
static int parse_params(const char *p, struct img_challenge *c, struct berth_err *err)
{
	_cleanup_free_ char *value = malloc(CHALLENGE_VALUE_MAX);
	if (!value)
		return berth_errf(err, ENOMEM, "out of memory");
	bool after_comma = false;
	for (;;) {
		p = skip_ows(p);
		if (*p == '\0')
			return 0;
		const char *name = p;
		while (is_tchar(*p))
			p++;
		size_t name_len = (size_t)(p - name);
		if (name_len == 0)
			return berth_errf(err, EPROTO, "expected a parameter name at \"%.32s\"", name);
		p = skip_ows(p);
		if (*p != '=') {
			if (after_comma)
				return 0;
			return berth_errf(err, EPROTO, "parameter \"%.*s\" has no value",
					  (int)name_len, name);
		}
		p = skip_ows(p + 1);
		int r;
		if (*p == '"') {
			p++;
			r = parse_quoted(&p, value, err);
		} else {
			r = parse_bare(&p, value, err);
		}
		if (r < 0)
			return r;
		if (set_param(c, name, name_len, value) < 0)
			return berth_errf(err, ENOMEM, "out of memory");
		p = skip_ows(p);
		if (*p == '\0')
			return 0;
		if (*p != ',')
			return berth_errf(err, EPROTO, "expected ',' at \"%.32s\"", p);
		p++;
		after_comma = true;
	}
}

static int parse_challenge(const char *header, struct img_challenge *c, struct berth_err *err)
{
	const char *p = skip_ows(header);
	const char *scheme = p;
	while (is_tchar(*p))
		p++;
	size_t len = (size_t)(p - scheme);
	if (len == 0)
		return berth_errf(err, EPROTO, "no authentication scheme");
	if (len == 6 && strncasecmp(scheme, "bearer", 6) == 0)
		strcpy(c->scheme, "Bearer");
	else if (len == 5 && strncasecmp(scheme, "basic", 5) == 0)
		strcpy(c->scheme, "Basic");
	else
		return berth_errf(err, EPROTO, "unsupported authentication scheme \"%.*s\"",
				  (int)(len > 32 ? 32 : len), scheme);
	if (*p != '\0' && *p != ' ' && *p != '\t')
		return berth_errf(err, EPROTO, "unexpected '%c' after the scheme", *p);
	int r = parse_params(p, c, err);
	if (r < 0)
		return r;
	if (strcmp(c->scheme, "Bearer") == 0 && (!c->realm || !c->realm[0]))
		return berth_errf(err, EPROTO, "Bearer challenge without realm");
	return 0;
}

int img_challenge_parse(const char *header, struct img_challenge *ret, struct berth_err *err)
{
	struct img_challenge c = { 0 };
	int r = parse_challenge(header, &c, err);
	if (r < 0) {
		img_challenge_done(&c);
		return berth_err_wrap(err, "WWW-Authenticate \"%.80s\"", header);
	}
	*ret = c;
	return 0;
}

void img_challenge_done(struct img_challenge *c)
{
	free(c->realm);
	free(c->service);
	free(c->scope);
	*c = (struct img_challenge){ 0 };
}

/* "https://index.docker.io/v1/" → "docker.io", "HTTP://Host:5000" →
 * "host:5000": the scheme and any path are dropped, Docker Hub's aliases
 * folded into "docker.io". */
static void normalize_host(const char *key, char *out, size_t size)
{
	if (strncasecmp(key, "https://", 8) == 0)
		key += 8;
	else if (strncasecmp(key, "http://", 7) == 0)
		key += 7;
	size_t n = strcspn(key, "/");
	if (n >= size)
		n = size - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)key[i]);
	out[n] = '\0';
	static const char *const hub[] = { "index.docker.io", "registry-1.docker.io",
					   "registry.hub.docker.com" };
	for (size_t i = 0; i < ARRAY_SIZE(hub); i++)
		if (strcmp(out, hub[i]) == 0)
			snprintf(out, size, "docker.io");
}

/* An exact key wins; otherwise the first key naming the same host. */
static const cJSON *find_entry(const cJSON *auths, const char *host)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(auths, host);
	if (e)
		return e;
	char want[512], have[512];
	normalize_host(host, want, sizeof(want));
	cJSON_ArrayForEach(e, auths) {
		normalize_host(e->string, have, sizeof(have));
		if (strcmp(want, have) == 0)
			return e;
	}
	return NULL;
}

/* Strict standard base64 with padding, as Docker writes it. */
static int decode_auth(const char *b64, char **ret_user, char **ret_pass, struct berth_err *err)
{
	size_t len = strlen(b64);
	size_t pad = len > 0 && b64[len - 1] == '=' ? (len > 1 && b64[len - 2] == '=' ? 2 : 1) : 0;
	if (len == 0 || len % 4 != 0 || strspn(b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					       "0123456789+/") != len - pad)
		return berth_errf(err, EINVAL, "\"auth\" is not valid base64");
	_cleanup_free_ unsigned char *raw = malloc(len / 4 * 3 + 1);
	if (!raw)
		return berth_errf(err, ENOMEM, "out of memory");
	int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len);
	if (n < 0)
		return berth_errf(err, EINVAL, "\"auth\" is not valid base64");
	n -= (int)pad; /* EVP_DecodeBlock counts padding as zero bytes */
	raw[n] = '\0';
	char *colon = strchr((char *)raw, ':');
	if ((int)strlen((char *)raw) != n || !colon)
		return berth_errf(err, EINVAL, "\"auth\" does not decode to user:password");
	*colon = '\0';
	_cleanup_free_ char *user = strdup((char *)raw);
	_cleanup_free_ char *pass = strdup(colon + 1);
	if (!user || !pass)
		return berth_errf(err, ENOMEM, "out of memory");
	*ret_user = TAKE_PTR(user);
	*ret_pass = TAKE_PTR(pass);
	return 0;
}

static int entry_credentials(const cJSON *e, char **ret_user, char **ret_pass, struct berth_err *err)
{
	if (!cJSON_IsObject(e))
		return berth_errf(err, EINVAL, "entry is not an object");
	const cJSON *auth = cJSON_GetObjectItemCaseSensitive(e, "auth");
	if (auth && !cJSON_IsString(auth))
		return berth_errf(err, EINVAL, "\"auth\" is not a string");
	if (auth && auth->valuestring[0])
		return decode_auth(auth->valuestring, ret_user, ret_pass, err);
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(e, "username");
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "password");
	if (!cJSON_IsString(u) || !cJSON_IsString(p) || !u->valuestring[0])
		return 0; /* e.g. only an identitytoken, or a credential helper's stub */
	_cleanup_free_ char *user = strdup(u->valuestring);
	_cleanup_free_ char *pass = strdup(p->valuestring);
	if (!user || !pass)
		return berth_errf(err, ENOMEM, "out of memory");
	*ret_user = TAKE_PTR(user);
	*ret_pass = TAKE_PTR(pass);
	return 0;
}

static void cjson_deletep(cJSON **j) { cJSON_Delete(*j); }

int img_auth_lookup(const char *config_json, const char *host, char **ret_user,
		    char **ret_pass, struct berth_err *err)
{
	_cleanup_(cjson_deletep) cJSON *root = cJSON_Parse(config_json);
	if (!cJSON_IsObject(root))
		return berth_errf(err, EINVAL, "invalid JSON: not an object");
	const cJSON *auths = cJSON_GetObjectItemCaseSensitive(root, "auths");
	char *user = NULL, *pass = NULL;
	if (auths && !cJSON_IsObject(auths))
		return berth_errf(err, EINVAL, "\"auths\" is not an object");
	const cJSON *e = auths ? find_entry(auths, host) : NULL;
	if (e) {
		int r = entry_credentials(e, &user, &pass, err);
		if (r < 0)
			return berth_err_wrap(err, "auths \"%s\"", e->string);
	}
	*ret_user = user;
	*ret_pass = pass;
	return 0;
}
