#include "images/ref.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "images/digest.h"

/* distribution/reference: NameTotalLengthMax and the tag's {0,127}. */
#define NAME_TOTAL_MAX 255
#define TAG_LEN_MAX 128
#define DEFAULT_DOMAIN "docker.io"
#define LEGACY_DOMAIN "index.docker.io"
#define HUB_HOST "registry-1.docker.io"
#define OFFICIAL_PREFIX "library/"
#define DEFAULT_TAG "latest"
/* How much of a hostile reference an error message quotes. */
#define QUOTE_MAX 128

/* A slice of the input: nothing is copied until every rule has passed. */
struct span {
	const char *p;
	size_t n;
};

/* ---- character classes (ASCII only, as Go's regexp) -------------------- */

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static bool is_word(char c)
{
	return is_alnum(c) || c == '_';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool span_eq(struct span s, const char *lit)
{
	return s.n == strlen(lit) && !memcmp(s.p, lit, s.n);
}

static bool span_has(struct span s, char c)
{
	return s.n && memchr(s.p, c, s.n);
}

/* ---- errors --------------------------------------------------------------- */

/* Copies at most QUOTE_MAX bytes of p[0..n) into out, control bytes as '?',
 * with "..." when cut: the text may be hostile and huge. */
static void quote(const char *p, size_t n, char out[QUOTE_MAX + 4])
{
	size_t m = n > QUOTE_MAX ? QUOTE_MAX : n;
	for (size_t i = 0; i < m; i++) {
		unsigned char c = (unsigned char)p[i];
		out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (m < n) {
		memcpy(out + m, "...", 3);
		m += 3;
	}
	out[m] = '\0';
}

static int ref_errf(struct berth_err *err, const char *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int ref_errf(struct berth_err *err, const char *s, const char *fmt, ...)
{
	char q[QUOTE_MAX + 4];
	char rule[2 * QUOTE_MAX];
	va_list ap;

	quote(s, strlen(s), q);
	va_start(ap, fmt);
	vsnprintf(rule, sizeof(rule), fmt, ap);
	va_end(ap);
	return berth_errf(err, EINVAL, "invalid reference \"%s\": %s", q, rule);
}

/* ---- the grammar ------------------------------------------------------------ */

/* pathComponent: [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)* */
static bool path_component_valid(struct span c)
{
	size_t i = 0;

	while (i < c.n) {
		if (!is_lower_alnum(c.p[i]))
			return false;
		while (i < c.n && is_lower_alnum(c.p[i]))
			i++;
		if (i == c.n)
			return true;
		if (c.p[i] == '.') {
			i++;
		} else if (c.p[i] == '_') {
			i++;
			if (i < c.n && c.p[i] == '_')
				i++;
		} else if (c.p[i] == '-') {
			while (i < c.n && c.p[i] == '-')
				i++;
		} else {
			return false;
		}
		if (i == c.n)
			return false; /* a separator must be followed by alnum */
	}
	return false; /* empty */
}

/* domainNameComponent (\. domainNameComponent)*, where a component is
 * [a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]. */
static bool domain_name_valid(struct span h)
{
	size_t i = 0;

	for (;;) {
		size_t start = i;
		while (i < h.n && (is_alnum(h.p[i]) || h.p[i] == '-'))
			i++;
		if (i == start || h.p[start] == '-' || h.p[i - 1] == '-')
			return false;
		if (i == h.n)
			return true;
		if (h.p[i] != '.')
			return false;
		i++;
	}
}

/* (domainName | \[[a-fA-F0-9:]+\]) (:[0-9]+)? */
static bool domain_valid(struct span d)
{
	struct span host = d;
	size_t i;

	if (d.n && d.p[0] == '[') {
		const char *close = memchr(d.p, ']', d.n);
		if (!close || close == d.p + 1)
			return false;
		for (const char *q = d.p + 1; q < close; q++)
			if (!is_hex(*q) && *q != ':')
				return false;
		i = (size_t)(close - d.p) + 1;
	} else {
		const char *colon = memchr(d.p, ':', d.n);
		host.n = colon ? (size_t)(colon - d.p) : d.n;
		if (!domain_name_valid(host))
			return false;
		i = host.n;
	}
	if (i == d.n)
		return true;
	if (d.p[i] != ':' || ++i == d.n)
		return false;
	for (; i < d.n; i++)
		if (!is_digit(d.p[i]))
			return false;
	return true;
}

/* [\w][\w.-]{0,127}; the length is checked by the caller. */
static bool tag_valid(struct span t)
{
	if (!t.n || !is_word(t.p[0]))
		return false;
	for (size_t i = 1; i < t.n; i++)
		if (!is_word(t.p[i]) && t.p[i] != '.' && t.p[i] != '-')
			return false;
	return true;
}

/* Docker refuses a bare image id where a name is expected. */
static bool is_identifier(const char *s, size_t n)
{
	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_digit(s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
			return false;
	return true;
}

static int check_path(const char *s, struct span rem, struct berth_err *err)
{
	char q[QUOTE_MAX + 4];

	if (!rem.n)
		return ref_errf(err, s, "repository name must have at least one component");
	for (size_t i = 0; i < rem.n; i++)
		if (rem.p[i] >= 'A' && rem.p[i] <= 'Z')
			return ref_errf(err, s, "repository name must be lowercase");
	while (rem.n) {
		const char *slash = memchr(rem.p, '/', rem.n);
		struct span c = { rem.p, slash ? (size_t)(slash - rem.p) : rem.n };
		if (!c.n)
			return ref_errf(err, s, "empty repository path component");
		if (!path_component_valid(c)) {
			quote(c.p, c.n, q);
			return ref_errf(err, s, "invalid repository path component \"%s\": "
					"want [a-z0-9] separated by '.', '_', '__' or '-'", q);
		}
		if (!slash)
			break;
		rem.p += c.n + 1;
		rem.n -= c.n + 1;
		if (!rem.n)
			return ref_errf(err, s, "empty repository path component");
	}
	return 0;
}

/* go-digest's algorithm: [A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)* */
static bool algorithm_valid(struct span a)
{
	bool want_letter = true;

	for (size_t i = 0; i < a.n; i++) {
		char c = a.p[i];
		if (want_letter) {
			if (!is_alnum(c) || is_digit(c))
				return false;
			want_letter = false;
		} else if (c == '-' || c == '_' || c == '+' || c == '.') {
			want_letter = true;
		} else if (!is_alnum(c)) {
			return false;
		}
	}
	return a.n && !want_letter;
}

static int check_digest(const char *s, const char *d, struct berth_err *err)
{
	char q[QUOTE_MAX + 4];

	if (!*d)
		return ref_errf(err, s, "empty digest");
	if (strncmp(d, "sha256:", 7) != 0) {
		const char *colon = strchr(d, ':');
		if (colon && algorithm_valid((struct span){ d, (size_t)(colon - d) })) {
			quote(d, (size_t)(colon - d), q);
			return ref_errf(err, s, "unsupported digest algorithm \"%s\": only sha256", q);
		}
	}
	if (!img_digest_valid(d))
		return ref_errf(err, s, "invalid digest: want sha256:<64 lowercase hex>");
	return 0;
}

int img_ref_parse(const char *s, struct img_ref *ret, struct berth_err *err)
{
	if (!s)
		s = "";
	size_t len = strlen(s);

	if (is_identifier(s, len))
		return ref_errf(err, s, "cannot specify 64-byte hexadecimal strings");

	/* name[:tag][@digest]: neither a name nor a tag may hold an '@', and a
	 * tag's ':' comes after the last '/' (a registry's port is before it). */
	const char *at = memchr(s, '@', len);
	size_t name_end = at ? (size_t)(at - s) : len;
	const char *last_slash = memrchr(s, '/', name_end);
	const char *seg = last_slash ? last_slash + 1 : s;
	const char *colon = memrchr(seg, ':', name_end - (size_t)(seg - s));
	struct span name = { s, colon ? (size_t)(colon - s) : name_end };
	struct span tag = { colon ? colon + 1 : NULL, colon ? name_end - name.n - 1 : 0 };
	const char *digest = at ? at + 1 : NULL;

	if (!name.n)
		return ref_errf(err, s, "repository name must have at least one component");

	/* splitDockerDomain: the first component names a registry when it
	 * looks like a host: it has a '.' or a ':' or is "localhost". */
	struct span domain = { DEFAULT_DOMAIN, strlen(DEFAULT_DOMAIN) };
	struct span rem = name;
	const char *slash = memchr(name.p, '/', name.n);
	if (slash) {
		struct span first = { name.p, (size_t)(slash - name.p) };
		if (span_has(first, '.') || span_has(first, ':') || span_eq(first, "localhost")) {
			if (!domain_valid(first)) {
				char q[QUOTE_MAX + 4];
				quote(first.p, first.n, q);
				return ref_errf(err, s, "invalid registry host \"%s\"", q);
			}
			domain = first;
			rem.p = slash + 1;
			rem.n = name.n - first.n - 1;
		}
	}
	if (span_eq(domain, LEGACY_DOMAIN))
		domain = (struct span){ DEFAULT_DOMAIN, strlen(DEFAULT_DOMAIN) };
	const char *prefix = "";
	if (span_eq(domain, DEFAULT_DOMAIN) && rem.n && !span_has(rem, '/'))
		prefix = OFFICIAL_PREFIX;

	int r = check_path(s, rem, err);
	if (r < 0)
		return r;
	if (domain.n + 1 + strlen(prefix) + rem.n > NAME_TOTAL_MAX)
		return ref_errf(err, s, "repository name must not be more than %d characters",
				NAME_TOTAL_MAX);

	if (colon) {
		if (!tag.n)
			return ref_errf(err, s, "empty tag");
		if (tag.n > TAG_LEN_MAX)
			return ref_errf(err, s, "tag must not be more than %d characters", TAG_LEN_MAX);
		if (!tag_valid(tag)) {
			char q[QUOTE_MAX + 4];
			quote(tag.p, tag.n, q);
			return ref_errf(err, s, "invalid tag \"%s\": want [A-Za-z0-9_][A-Za-z0-9_.-]*", q);
		}
	}
	if (digest && (r = check_digest(s, digest, err)) < 0)
		return r;

	/* Every length is bounded above: the name by NAME_TOTAL_MAX, the tag
	 * by TAG_LEN_MAX, the digest by img_digest_valid(). */
	struct img_ref out = { 0 };
	memcpy(out.domain, domain.p, domain.n);
	snprintf(out.path, sizeof(out.path), "%s%.*s", prefix, (int)rem.n, rem.p);
	if (colon)
		memcpy(out.tag, tag.p, tag.n);
	else if (!digest)
		strcpy(out.tag, DEFAULT_TAG);
	if (digest)
		memcpy(out.digest, digest, SHA256_DIGEST_STRLEN);
	*ret = out;
	return 0;
}

void img_ref_format(const struct img_ref *r, char buf[IMG_REF_STR_MAX])
{
	snprintf(buf, IMG_REF_STR_MAX, "%s/%s%s%s%s%s", r->domain, r->path,
		 r->tag[0] ? ":" : "", r->tag, r->digest[0] ? "@" : "", r->digest);
}

const char *img_ref_reference(const struct img_ref *r)
{
	return r->digest[0] ? r->digest : r->tag;
}

const char *img_ref_registry_host(const struct img_ref *r)
{
	return strcmp(r->domain, DEFAULT_DOMAIN) ? r->domain : HUB_HOST;
}

bool img_ref_is_loopback(const struct img_ref *r)
{
	char host[IMG_REF_DOMAIN_MAX];
	const char *d = r->domain;

	if (d[0] == '[') {
		const char *close = strchr(d, ']');
		struct in6_addr a6;
		if (!close)
			return false;
		snprintf(host, sizeof(host), "%.*s", (int)(close - d - 1), d + 1);
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return false;
		return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	}
	const char *colon = strchr(d, ':');
	struct in_addr a4;
	snprintf(host, sizeof(host), "%.*s", (int)(colon ? (size_t)(colon - d) : strlen(d)), d);
	if (!strcasecmp(host, "localhost"))
		return true;
	return inet_pton(AF_INET, host, &a4) == 1 && ((const unsigned char *)&a4.s_addr)[0] == 127;
}
