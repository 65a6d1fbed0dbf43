#include "daemon/server/sigv4.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/cleanup.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
#define TERMINATOR "aws4_request"

/* ---- a growable string; an allocation failure sticks until checked ---- */

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_addc(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

/* Hands the string to the caller, or fails with -ENOMEM. */
static int buf_take(struct buf *b, char **ret, struct berth_err *err, const char *what)
{
	if (!b->oom && !b->p)
		buf_add(b, "", 0);
	if (b->oom) {
		free(b->p);
		b->p = NULL;
		return berth_errf(err, ENOMEM, "sigv4: %s: out of memory", what);
	}
	*ret = b->p;
	b->p = NULL;
	return 0;
}

static void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
}

/* ---- encoding ---- */

static const char hexdig[] = "0123456789abcdef";
static const char HEXDIG[] = "0123456789ABCDEF";

static void hex_lower(const unsigned char *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdig[p[i] >> 4];
		out[2 * i + 1] = hexdig[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

static void uri_encode(struct buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (unreserved(c)) {
			buf_addc(b, (char)c);
		} else {
			char e[3] = { '%', HEXDIG[c >> 4], HEXDIG[c & 15] };
			buf_add(b, e, 3);
		}
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Query names and values: decoded first so that "%7e", "~" and "%7E" all
 * canonicalise alike, then encoded strictly.  A '%' that starts no valid
 * escape stands for itself. */
static void query_encode(struct buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			c = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
			i += 2;
		}
		uri_encode(b, &c, 1);
	}
}

/* ---- canonical request ---- */

/* botocore's remove_dot_segments: empty and "." segments vanish, ".."
 * drops the previous one (never above the root), and the trailing slash
 * survives only when something is left before it. */
static void canonical_uri(struct buf *b, const char *path, size_t n)
{
	if (n == 0) {
		buf_addc(b, '/');
		return;
	}
	struct seg {
		const char *s;
		size_t n;
	};
	_cleanup_free_ struct seg *segs = calloc(n / 2 + 2, sizeof(*segs));
	if (!segs) {
		b->oom = true;
		return;
	}
	size_t nseg = 0;
	for (size_t i = 0; i <= n;) {
		size_t j = i;
		while (j < n && path[j] != '/')
			j++;
		const char *s = path + i;
		size_t len = j - i;
		if (len == 2 && s[0] == '.' && s[1] == '.') {
			if (nseg)
				nseg--;
		} else if (len > 0 && !(len == 1 && s[0] == '.')) {
			segs[nseg++] = (struct seg) { s, len };
		}
		i = j + 1;
	}
	if (path[0] == '/')
		buf_addc(b, '/');
	for (size_t i = 0; i < nseg; i++) {
		if (i)
			buf_addc(b, '/');
		uri_encode(b, segs[i].s, segs[i].n);
	}
	if (path[n - 1] == '/' && nseg)
		buf_addc(b, '/');
}

struct qpair {
	char *k, *v;
};

static int qpair_cmp(const void *a, const void *b)
{
	const struct qpair *x = a, *y = b;
	int c = strcmp(x->k, y->k);
	return c ? c : strcmp(x->v, y->v);
}

static void canonical_query(struct buf *b, const char *q, size_t n)
{
	size_t cap = 1;
	for (size_t i = 0; i < n; i++)
		cap += q[i] == '&';
	_cleanup_free_ struct qpair *v = calloc(cap, sizeof(*v));
	if (!v) {
		b->oom = true;
		return;
	}
	size_t nv = 0;
	for (size_t i = 0; i < n && !b->oom;) {
		size_t j = i;
		while (j < n && q[j] != '&')
			j++;
		if (j > i) {
			const char *eq = memchr(q + i, '=', j - i);
			size_t kn = eq ? (size_t)(eq - (q + i)) : j - i;
			struct buf k = { 0 }, val = { 0 };
			query_encode(&k, q + i, kn);
			if (eq)
				query_encode(&val, eq + 1, (size_t)(q + j - eq - 1));
			buf_add(&k, "", 0);
			buf_add(&val, "", 0);
			if (k.oom || val.oom) {
				buf_free(&k);
				buf_free(&val);
				b->oom = true;
				break;
			}
			v[nv++] = (struct qpair) { k.p, val.p };
		}
		i = j + 1;
	}
	if (!b->oom) {
		qsort(v, nv, sizeof(*v), qpair_cmp);
		for (size_t i = 0; i < nv; i++) {
			if (i)
				buf_addc(b, '&');
			buf_adds(b, v[i].k);
			buf_addc(b, '=');
			buf_adds(b, v[i].v);
		}
	}
	for (size_t i = 0; i < nv; i++) {
		free(v[i].k);
		free(v[i].v);
	}
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Appends every value of header NAME, each trimmed with inner whitespace
 * runs collapsed (botocore: ' '.join(v.split())), joined by ','.  Returns
 * how many headers matched. */
static size_t header_values(struct buf *b, const struct api_sigv4_request *req,
			    const char *name, size_t nlen)
{
	size_t found = 0;
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct api_http_header *h = &req->headers[i];
		if (h->name_len != nlen || strncasecmp(h->name, name, nlen) != 0)
			continue;
		if (found++)
			buf_addc(b, ',');
		bool pending_space = false, any = false;
		for (size_t j = 0; j < h->value_len; j++) {
			char c = h->value[j];
			if (is_ws(c)) {
				pending_space = any;
				continue;
			}
			if (pending_space)
				buf_addc(b, ' ');
			pending_space = false;
			any = true;
			buf_addc(b, c);
		}
	}
	return found;
}

int api_sigv4_sha256_hex(const void *p, size_t len, char out[65], struct berth_err *err)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	if (!EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		return berth_errf(err, EIO, "sigv4: SHA-256 failed in libcrypto");
	hex_lower(md, 32, out);
	return 0;
}

int api_sigv4_canonical_request(const struct api_sigv4_request *req, const char *signed_headers,
				const char *payload_hash, char **ret, struct berth_err *err)
{
	struct buf b = { 0 };
	buf_adds(&b, req->method);
	buf_addc(&b, '\n');
	const char *target = req->target ? req->target : "/";
	const char *qm = strchr(target, '?');
	size_t plen = qm ? (size_t)(qm - target) : strlen(target);
	canonical_uri(&b, target, plen);
	buf_addc(&b, '\n');
	if (qm)
		canonical_query(&b, qm + 1, strlen(qm + 1));
	buf_addc(&b, '\n');
	for (const char *s = signed_headers; *s;) {
		const char *e = strchr(s, ';');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n) {
			for (size_t i = 0; i < n; i++)
				buf_addc(&b, (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]));
			buf_addc(&b, ':');
			if (header_values(&b, req, s, n) == 0) {
				buf_free(&b);
				return berth_errf(err, ENOENT, "Signed header '%.*s' is not present in the request.", (int)n, s);
			}
			buf_addc(&b, '\n');
		}
		s = e ? e + 1 : s + n;
	}
	buf_addc(&b, '\n');
	buf_adds(&b, signed_headers);
	buf_addc(&b, '\n');
	char hash[65];
	if (!payload_hash) {
		int r = api_sigv4_sha256_hex(req->body ? req->body : "", req->body_len, hash, err);
		if (r < 0) {
			buf_free(&b);
			return r;
		}
		payload_hash = hash;
	}
	buf_adds(&b, payload_hash);
	return buf_take(&b, ret, err, "canonical request");
}

int api_sigv4_string_to_sign(const char *amz_date, const char *scope,
			     const char *canonical_request, char **ret, struct berth_err *err)
{
	char hash[65];
	int r = api_sigv4_sha256_hex(canonical_request, strlen(canonical_request), hash, err);
	if (r < 0)
		return r;
	struct buf b = { 0 };
	buf_adds(&b, ALGORITHM "\n");
	buf_adds(&b, amz_date);
	buf_addc(&b, '\n');
	buf_adds(&b, scope);
	buf_addc(&b, '\n');
	buf_adds(&b, hash);
	return buf_take(&b, ret, err, "string to sign");
}

static int hmac256(const void *key, size_t klen, const char *msg, unsigned char out[32],
		   struct berth_err *err)
{
	unsigned int n = 0;
	if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &n) || n != 32)
		return berth_errf(err, EIO, "sigv4: HMAC-SHA256 failed in libcrypto");
	return 0;
}

int api_sigv4_signature(const char *secret, const char *date8, const char *region,
			const char *service, const char *string_to_sign, char ret[65],
			struct berth_err *err)
{
	size_t slen = strlen(secret);
	_cleanup_free_ char *k0 = malloc(slen + 5);
	if (!k0)
		return berth_errf(err, ENOMEM, "sigv4: out of memory");
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, secret, slen + 1);
	unsigned char k[32], sig[32];
	int r = hmac256(k0, slen + 4, date8, k, err);
	OPENSSL_cleanse(k0, slen + 4);
	if (r >= 0)
		r = hmac256(k, 32, region, k, err);
	if (r >= 0)
		r = hmac256(k, 32, service, k, err);
	if (r >= 0)
		r = hmac256(k, 32, TERMINATOR, k, err);
	if (r >= 0)
		r = hmac256(k, 32, string_to_sign, sig, err);
	/* The derived key is as good as the secret for a day: wipe it. */
	OPENSSL_cleanse(k, sizeof(k));
	if (r < 0)
		return r;
	hex_lower(sig, 32, ret);
	return 0;
}

int api_sigv4_authorization(const struct api_sigv4_request *req, const char *access_key_id,
			    const char *secret, const char *region, const char *service,
			    const char *amz_date, const char *signed_headers, char **ret,
			    struct berth_err *err)
{
	if (strlen(amz_date) != 16)
		return berth_errf(err, EINVAL, "sigv4: amz date '%s' is not YYYYMMDDTHHMMSSZ", amz_date);
	char scope[512];
	int n = snprintf(scope, sizeof(scope), "%.8s/%s/%s/" TERMINATOR, amz_date, region, service);
	if (n < 0 || (size_t)n >= sizeof(scope))
		return berth_errf(err, EINVAL, "sigv4: region or service too long");
	_cleanup_free_ char *creq = NULL, *sts = NULL;
	int r = api_sigv4_canonical_request(req, signed_headers, NULL, &creq, err);
	if (r < 0)
		return r;
	r = api_sigv4_string_to_sign(amz_date, scope, creq, &sts, err);
	if (r < 0)
		return r;
	char date8[9];
	memcpy(date8, amz_date, 8);
	date8[8] = '\0';
	char sig[65];
	r = api_sigv4_signature(secret, date8, region, service, sts, sig, err);
	if (r < 0)
		return r;
	struct buf b = { 0 };
	buf_adds(&b, ALGORITHM " Credential=");
	buf_adds(&b, access_key_id);
	buf_addc(&b, '/');
	buf_adds(&b, scope);
	buf_adds(&b, ", SignedHeaders=");
	buf_adds(&b, signed_headers);
	buf_adds(&b, ", Signature=");
	buf_adds(&b, sig);
	return buf_take(&b, ret, err, "authorization");
}

/* ---- verification ---- */

static const char SIG_MISMATCH[] =
	"The request signature we calculated does not match the signature you provided. "
	"Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
static const char BAD_TOKEN[] = "The security token included in the request is invalid.";

__attribute__((format(printf, 3, 4)))
static int deny(struct api_sigv4_result *res, const char *type, const char *fmt, ...)
{
	res->ok = false;
	res->error_type = type;
	res->http_status = 403;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
	return 0;
}

void api_sigv4_result_done(struct api_sigv4_result *res)
{
	if (!res)
		return;
	free(res->canonical_request);
	free(res->string_to_sign);
	res->canonical_request = res->string_to_sign = NULL;
}

/* The first header called NAME, trimmed, or NULL. */
static const struct api_http_header *first_header(const struct api_sigv4_request *req,
						  const char *name, const char **vs, size_t *vn)
{
	size_t nlen = strlen(name);
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct api_http_header *h = &req->headers[i];
		if (h->name_len == nlen && strncasecmp(h->name, name, nlen) == 0) {
			const char *s = h->value, *e = h->value + h->value_len;
			while (s < e && is_ws(*s))
				s++;
			while (e > s && is_ws(e[-1]))
				e--;
			*vs = s;
			*vn = (size_t)(e - s);
			return h;
		}
	}
	return NULL;
}

/* YYYYMMDDTHHMMSSZ, a real calendar time. */
static bool parse_amz_date(const char *s, size_t n, time_t *ret)
{
	if (n != 16 || s[8] != 'T' || s[15] != 'Z')
		return false;
	for (size_t i = 0; i < 15; i++)
		if (i != 8 && (s[i] < '0' || s[i] > '9'))
			return false;
#define D(i, k) ((s[i] - '0') * (k))
	struct tm tm = {
		.tm_year = D(0, 1000) + D(1, 100) + D(2, 10) + D(3, 1) - 1900,
		.tm_mon = D(4, 10) + D(5, 1) - 1,
		.tm_mday = D(6, 10) + D(7, 1),
		.tm_hour = D(9, 10) + D(10, 1),
		.tm_min = D(11, 10) + D(12, 1),
		.tm_sec = D(13, 10) + D(14, 1),
	};
#undef D
	struct tm want = tm, back;
	time_t t = timegm(&tm);
	if (!gmtime_r(&t, &back) || back.tm_year != want.tm_year || back.tm_mon != want.tm_mon ||
	    back.tm_mday != want.tm_mday || back.tm_hour != want.tm_hour ||
	    back.tm_min != want.tm_min || back.tm_sec != want.tm_sec)
		return false;
	*ret = t;
	return true;
}

static void fmt_amz_date(time_t t, char out[17])
{
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
		snprintf(out, 17, "?");
}

struct auth_params {
	const char *alg;
	size_t alg_n;
	const char *cred, *sh, *sig;
	size_t cred_n, sh_n, sig_n;
	bool have_sh;
};

/* Splits "ALG k=v, k=v, …".  Returns false with RES filled on a pair
 * without '='. */
static bool parse_auth(const char *a, size_t n, struct auth_params *p, struct api_sigv4_result *res)
{
	memset(p, 0, sizeof(*p));
	size_t i = 0;
	while (i < n && a[i] != ' ')
		i++;
	p->alg = a;
	p->alg_n = i;
	while (i < n) {
		size_t j = i;
		while (j < n && a[j] != ',')
			j++;
		const char *s = a + i, *e = a + j;
		while (s < e && is_ws(*s))
			s++;
		while (e > s && is_ws(e[-1]))
			e--;
		if (s < e) {
			const char *eq = memchr(s, '=', (size_t)(e - s));
			if (!eq) {
				deny(res, API_SIGV4_INCOMPLETE,
				     "'%.*s' not a valid key=value pair (missing equal-sign) in Authorization header: '%.*s'",
				     (int)(e - s), s, (int)n, a);
				return false;
			}
			size_t kn = (size_t)(eq - s), vn = (size_t)(e - eq - 1);
			/* Later repeats win, as on AWS. */
			if (kn == 10 && memcmp(s, "Credential", 10) == 0) {
				p->cred = eq + 1;
				p->cred_n = vn;
			} else if (kn == 13 && memcmp(s, "SignedHeaders", 13) == 0) {
				p->sh = eq + 1;
				p->sh_n = vn;
				p->have_sh = true;
			} else if (kn == 9 && memcmp(s, "Signature", 9) == 0) {
				p->sig = eq + 1;
				p->sig_n = vn;
			}
		}
		i = j + 1;
	}
	return true;
}

/* One entry of a SignedHeaders list. */
struct sh_entry {
	const char *s;
	size_t n;
};

static int sh_cmp(const void *a, const void *b)
{
	const struct sh_entry *x = a, *y = b;
	int c = strncasecmp(x->s, y->s, x->n < y->n ? x->n : y->n);
	return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* Splits L (";"-separated, empty entries skipped) into V, at most
 * API_SIGV4_SIGNED_HEADERS_MAX entries; false when there are more.  The
 * cap comes first so that nothing after it costs more than a constant:
 * this runs before the key is known. */
static bool sh_split(const char *l, size_t n, struct sh_entry v[API_SIGV4_SIGNED_HEADERS_MAX],
		     size_t *ret_n)
{
	size_t k = 0;
	for (size_t i = 0; i < n;) {
		const char *e = memchr(l + i, ';', n - i);
		size_t j = e ? (size_t)(e - l) : n;
		if (j > i) {
			if (k == API_SIGV4_SIGNED_HEADERS_MAX)
				return false;
			v[k++] = (struct sh_entry){ l + i, j - i };
		}
		i = j + 1;
	}
	*ret_n = k;
	return true;
}

static bool sh_has(const struct sh_entry *v, size_t n, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < n; i++)
		if (v[i].n == nl && strncasecmp(v[i].s, name, nl) == 0)
			return true;
	return false;
}

/* A name V lists twice, found by sorting a copy: n log n, n <= 64. */
static const struct sh_entry *sh_dup(const struct sh_entry *v, size_t n,
				     struct sh_entry sorted[API_SIGV4_SIGNED_HEADERS_MAX])
{
	memcpy(sorted, v, n * sizeof(*v));
	qsort(sorted, n, sizeof(*sorted), sh_cmp);
	for (size_t i = 1; i < n; i++)
		if (sh_cmp(&sorted[i - 1], &sorted[i]) == 0)
			return &sorted[i];
	return NULL;
}

static bool seq(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* Checks the Authorization header up to the key lookup; false = denied. */
static bool check_header(const struct api_sigv4_request *req, const struct api_credentials *creds,
			 const char *region, const char *service, time_t now,
			 struct auth_params *p, const char **date, size_t *date_n,
			 const char *cred_part[5], size_t cred_len[5], struct api_sigv4_result *res)
{
	const char *a;
	size_t an;
	if (!first_header(req, "authorization", &a, &an) || an < 5 || memcmp(a, "AWS4-", 5) != 0) {
		deny(res, API_SIGV4_MISSING_TOKEN, "Request is missing Authentication Token");
		return false;
	}
	if (an > API_SIGV4_AUTHORIZATION_MAX) {
		deny(res, API_SIGV4_INCOMPLETE, "The Authorization header is longer than %d bytes.",
		     API_SIGV4_AUTHORIZATION_MAX);
		return false;
	}
	if (!parse_auth(a, an, p, res))
		return false;

	const char *date_hdr = "X-Amz-Date";
	if (!first_header(req, "x-amz-date", date, date_n)) {
		date_hdr = "Date";
		if (!first_header(req, "date", date, date_n))
			date_hdr = NULL;
	}
	struct buf m = { 0 };
	if (!p->cred_n)
		buf_adds(&m, "Authorization header requires 'Credential' parameter. ");
	if (!p->sig_n)
		buf_adds(&m, "Authorization header requires 'Signature' parameter. ");
	if (!p->have_sh)
		buf_adds(&m, "Authorization header requires 'SignedHeaders' parameter. ");
	if (!date_hdr)
		buf_adds(&m, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ");
	if (m.len || m.oom) {
		deny(res, API_SIGV4_INCOMPLETE, "%sAuthorization=%.*s", m.p ? m.p : "", (int)an, a);
		buf_free(&m);
		return false;
	}

	time_t t;
	if (!parse_amz_date(*date, *date_n, &t)) {
		deny(res, API_SIGV4_INCOMPLETE,
		     "Date must be in ISO-8601 'basic format'. Got '%.*s'. See http://en.wikipedia.org/wiki/ISO_8601",
		     (int)*date_n, *date);
		return false;
	}
	char ts[17], lim[17], ns[17];
	fmt_amz_date(t, ts);
	fmt_amz_date(now, ns);
	if (t < now - API_SIGV4_MAX_SKEW) {
		fmt_amz_date(now - API_SIGV4_MAX_SKEW, lim);
		deny(res, API_SIGV4_INVALID, "Signature expired: %s is now earlier than %s (%s - %d min.)",
		     ts, lim, ns, API_SIGV4_MAX_SKEW / 60);
		return false;
	}
	if (t > now + API_SIGV4_MAX_SKEW) {
		fmt_amz_date(now + API_SIGV4_MAX_SKEW, lim);
		deny(res, API_SIGV4_INVALID, "Signature not yet current: %s is still later than %s (%s + %d min.)",
		     ts, lim, ns, API_SIGV4_MAX_SKEW / 60);
		return false;
	}

	struct sh_entry sh[API_SIGV4_SIGNED_HEADERS_MAX], sorted[API_SIGV4_SIGNED_HEADERS_MAX];
	size_t nsh;
	if (!sh_split(p->sh, p->sh_n, sh, &nsh)) {
		deny(res, API_SIGV4_INCOMPLETE, "SignedHeaders lists more than %d headers.",
		     API_SIGV4_SIGNED_HEADERS_MAX);
		return false;
	}
	const struct sh_entry *d = sh_dup(sh, nsh, sorted);
	if (d) {
		deny(res, API_SIGV4_INCOMPLETE, "SignedHeaders lists '%.*s' more than once.",
		     (int)d->n, d->s);
		return false;
	}
	if (!sh_has(sh, nsh, "host") && !sh_has(sh, nsh, ":authority")) {
		deny(res, API_SIGV4_INVALID, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
		return false;
	}
	/* Berth's own rules: the date the window is checked against is
	 * signed, and so is the operation, so that a captured request cannot
	 * be replayed as another one (every SDK signs X-Amz-Target). */
	if (!sh_has(sh, nsh, date_hdr)) {
		deny(res, API_SIGV4_INVALID, "'%s' must be a 'SignedHeader' in the AWS Authorization.", date_hdr);
		return false;
	}
	const char *tv;
	size_t tn;
	if (first_header(req, "x-amz-target", &tv, &tn) && !sh_has(sh, nsh, "x-amz-target")) {
		deny(res, API_SIGV4_INVALID,
		     "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization.");
		return false;
	}

	if (!seq(p->alg, p->alg_n, ALGORITHM)) {
		deny(res, API_SIGV4_INCOMPLETE, "Unsupported AWS 'algorithm': '%.*s' (only " ALGORITHM " for now).",
		     (int)p->alg_n, p->alg);
		return false;
	}

	/* Credential=KEYID/DATE/REGION/SERVICE/aws4_request; trailing slashes
	 * are ignored, as on AWS. */
	size_t cn = p->cred_n, np = 0;
	while (cn && p->cred[cn - 1] == '/')
		cn--;
	bool bad = false;
	for (size_t i = 0; i <= cn && !bad;) {
		size_t j = i;
		while (j < cn && p->cred[j] != '/')
			j++;
		if (np == 5)
			bad = true;
		else {
			cred_part[np] = p->cred + i;
			cred_len[np++] = j - i;
		}
		i = j + 1;
	}
	if (bad || np != 5) {
		deny(res, API_SIGV4_INCOMPLETE,
		     "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '%.*s'",
		     (int)p->cred_n, p->cred);
		return false;
	}
	snprintf(res->access_key_id, sizeof(res->access_key_id), "%.*s", (int)cred_len[0], cred_part[0]);

	/* All scope complaints in one message, as AWS gives them. */
	if (!seq(cred_part[2], cred_len[2], region)) {
		buf_adds(&m, "Credential should be scoped to a valid region, not '");
		buf_add(&m, cred_part[2], cred_len[2]);
		buf_adds(&m, "'. ");
	}
	if (!seq(cred_part[3], cred_len[3], service)) {
		buf_adds(&m, "Credential should be scoped to correct service: '");
		buf_adds(&m, service);
		buf_adds(&m, "'. ");
	}
	if (!seq(cred_part[4], cred_len[4], TERMINATOR)) {
		buf_adds(&m, "Credential should be scoped with a valid terminator: '" TERMINATOR "', not '");
		buf_add(&m, cred_part[4], cred_len[4]);
		buf_adds(&m, "'. ");
	}
	if (cred_len[1] != 8 || memcmp(cred_part[1], *date, 8) != 0) {
		buf_adds(&m, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '");
		buf_add(&m, cred_part[1], cred_len[1]);
		buf_adds(&m, "' != '");
		buf_add(&m, *date, 8);
		buf_adds(&m, "', from '");
		buf_add(&m, *date, *date_n);
		buf_adds(&m, "'. ");
	}
	if (m.len || m.oom) {
		if (m.p && m.len && m.p[m.len - 1] == ' ')
			m.p[--m.len] = '\0';
		deny(res, API_SIGV4_INVALID, "%s", m.p ? m.p : "Credential scope is invalid.");
		buf_free(&m);
		return false;
	}

	res->credential = api_credentials_find(creds, cred_part[0], cred_len[0]);
	if (!res->credential) {
		deny(res, API_SIGV4_UNRECOGNIZED, "%s", BAD_TOKEN);
		return false;
	}
	return true;
}

int api_sigv4_verify(const struct api_sigv4_request *req, const struct api_credentials *creds,
		     const char *region, const char *service, time_t now,
		     struct api_sigv4_result *res, struct berth_err *err)
{
	memset(res, 0, sizeof(*res));
	struct auth_params p;
	const char *date, *cred_part[5];
	size_t date_n, cred_len[5];
	if (!check_header(req, creds, region, service, now, &p, &date, &date_n, cred_part, cred_len, res)) {
		res->credential = NULL;
		return 0;
	}
	const struct api_credential *cred = res->credential;
	res->credential = NULL;

	char body_hash[65];
	int r = api_sigv4_sha256_hex(req->body ? req->body : "", req->body_len, body_hash, err);
	if (r < 0)
		return r;
	/* Only the real hash is accepted: "UNSIGNED-PAYLOAD" would leave the
	 * body, which is the whole ECS request, unauthenticated. */
	const char *ch;
	size_t chn;
	if (first_header(req, "x-amz-content-sha256", &ch, &chn) &&
	    !(chn == 64 && CRYPTO_memcmp(ch, body_hash, 64) == 0))
		return deny(res, API_SIGV4_INVALID,
			    "The provided 'x-amz-content-sha256' header does not match what was computed.");

	_cleanup_free_ char *sh = strndup(p.sh, p.sh_n);
	if (!sh)
		return berth_errf(err, ENOMEM, "sigv4: out of memory");
	struct berth_err cerr = { 0 };
	r = api_sigv4_canonical_request(req, sh, body_hash, &res->canonical_request, &cerr);
	if (r == -ENOENT)
		return deny(res, API_SIGV4_INVALID, "%s", cerr.msg);
	if (r < 0) {
		*err = cerr;
		return r;
	}
	char scope[600];
	snprintf(scope, sizeof(scope), "%.*s/%s/%s/" TERMINATOR, (int)cred_len[1], cred_part[1], region, service);
	char date8[9], amz[17];
	memcpy(date8, date, 8);
	date8[8] = '\0';
	memcpy(amz, date, 16);
	amz[16] = '\0';
	r = api_sigv4_string_to_sign(amz, scope, res->canonical_request, &res->string_to_sign, err);
	if (r < 0)
		return r;
	char want[65];
	r = api_sigv4_signature(cred->secret_access_key, date8, region, service, res->string_to_sign, want, err);
	if (r < 0)
		return r;
	bool match = p.sig_n == 64 && CRYPTO_memcmp(want, p.sig, 64) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	if (!match)
		return deny(res, API_SIGV4_INVALID, "%s", SIG_MISMATCH);

	/* Temporary credentials: the token must be the one issued with the key,
	 * and a key without one must not be sent one. */
	const char *tok;
	size_t tokn;
	bool have = first_header(req, "x-amz-security-token", &tok, &tokn) != NULL;
	const char *need = cred->session_token;
	if (have != (need != NULL) ||
	    (need && !(strlen(need) == tokn && CRYPTO_memcmp(need, tok, tokn) == 0)))
		return deny(res, API_SIGV4_UNRECOGNIZED, "%s", BAD_TOKEN);

	res->ok = true;
	res->credential = cred;
	return 0;
}
