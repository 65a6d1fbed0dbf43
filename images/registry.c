/* Registry client on libcurl: transport, the auth flow and the two GETs.
 *
 * Connections: libcurl 7.88 documents sharing the connection cache
 * (CURL_LOCK_DATA_CONNECT) between concurrent threads as unsupported, so
 * the CURLSH shares only DNS and TLS sessions, and keep-alive comes from a
 * small pool of easy handles: a finished transfer returns its handle, with
 * its open connection, for the next request of any thread to reuse.
 *
 * Redirects: libcurl (since 7.58, and with the port and scheme checks of
 * 7.83) drops a custom "Authorization:" header when a redirect leaves the
 * original host, port or scheme, unless CURLOPT_UNRESTRICTED_AUTH is set;
 * it stays off here.  Checked against a server that redirects blob GETs
 * to another port: the second request carries no Authorization. */
#include "common/time.h"
#include "images/registry.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "images/digest.h"
#include "images/manifest.h"

#define REG_BUFFER_SIZE (512L * 1024)   /* bigger reads: fewer sink calls, less CPU */
#define REG_CONNECT_TIMEOUT 10L
#define REG_LOW_SPEED_LIMIT 1024L       /* bytes/s … */
#define REG_LOW_SPEED_TIME 60L          /* … sustained this long aborts */
#define REG_MAX_REDIRS 5L
#define REG_ERRBODY_MAX (64u * 1024)    /* error bodies are only for messages */
#define REG_TOKEN_MAX (1u << 20)
#define REG_TOKEN_TTL_DEFAULT 60        /* distribution token spec default */
#define REG_TOKEN_MARGIN 10             /* renew this long before expiry */
#define REG_POOL_MAX 16
#define REG_AUTH_FILE_MAX (1u << 20)
#define REG_URL_MAX 2048
#define REG_TEXT_MAX 400

struct img_registry {
	char host[IMG_REF_DOMAIN_MAX];        /* host[:port] we connect to */
	char path[IMG_REF_PATH_MAX];          /* repository */
	char base[IMG_REF_DOMAIN_MAX + 16];   /* "https://host[:port]" */
	char *basic;                          /* "Basic <b64>" or NULL */
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_lock;            /* guards pool, n_pool */
	CURL *pool[REG_POOL_MAX];
	size_t n_pool;
	pthread_mutex_t auth_lock;            /* guards everything below */
	char *authz;                          /* Authorization value or NULL */
	int64_t authz_expiry;                 /* CLOCK_MONOTONIC s; 0: none */
	struct img_challenge bearer;          /* kept to renew the token */
	unsigned gen;                         /* bumped on each new authz */
	int64_t deadline_ms;                  /* CLOCK_MONOTONIC; 0: none */
};

struct growbuf {
	char *p;
	size_t len, cap;
};

/* One HTTP exchange.  The response fields are reset at each status line,
 * so after redirects they describe the final response. */
struct xfer {
	const char *url;
	const char *accept;
	const char *authz;
	size_t body_max;                 /* buffer mode: cap on the 2xx body;
					  * 0 without sink: body dropped */
	img_blob_sink_fn sink;           /* sink mode when set */
	img_blob_restart_fn restart;
	void *opaque;
	int64_t offset;
	int64_t deadline_ms;             /* CLOCK_MONOTONIC; 0: the registry's */

	long status;
	int64_t content_length;          /* -1: not sent */
	int64_t range_start;             /* from Content-Range; -1: none */
	char ctype[256];
	char digest[SHA256_DIGEST_STRLEN];
	char *www_auth;
	bool started;                    /* first 2xx body byte seen */
	struct growbuf body;             /* 2xx body in buffer mode */
	struct growbuf errbody;          /* non-2xx body, for messages */

	int cb_ret;                      /* why a callback aborted */
	struct berth_err cb_err;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc; /* written once under curl_once */

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int img_registry_init(struct berth_err *err)
{
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return berth_errf(err, EIO, "libcurl: %s", curl_easy_strerror(curl_init_rc));
	return 0;
}

static int grow_append(struct growbuf *b, const void *p, size_t n, size_t max)
{
	if (b->len + n > max)
		return -EFBIG;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q)
			return -ENOMEM;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static void xfer_reset_response(struct xfer *x)
{
	x->status = 0;
	x->content_length = -1;
	x->range_start = -1;
	x->ctype[0] = '\0';
	x->digest[0] = '\0';
	free(x->www_auth);
	x->www_auth = NULL;
	x->started = false;
	x->body.len = 0;
	x->errbody.len = 0;
}

static void xfer_done(struct xfer *x)
{
	free(x->www_auth);
	free(x->body.p);
	free(x->errbody.p);
}

/* ---- registry error bodies ---------------------------------------- */

static void text_append(char *out, size_t size, const char *s)
{
	size_t n = strlen(out);
	if (n && n + 2 < size)
		n += (size_t)snprintf(out + n, size - n, "; ");
	for (; *s && n + 1 < size; s++)
		out[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s;
	out[n] = '\0';
}

/* The registry's own words: {"errors":[{"code","message"}]} (distribution
 * spec) or a token server's {"details"|"error_description"|"error"}.
 * Returns whether an error code says "does not exist". */
static bool registry_text(const struct growbuf *b, char out[REG_TEXT_MAX])
{
	out[0] = '\0';
	bool unknown = false;
	cJSON *j = b->len ? cJSON_ParseWithLength(b->p, b->len) : NULL;
	const cJSON *errors = cJSON_GetObjectItemCaseSensitive(j, "errors");
	if (!cJSON_IsArray(errors))
		errors = NULL;
	const cJSON *e;
	cJSON_ArrayForEach(e, errors) {
		const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "code"));
		const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "message"));
		if (code && (!strcmp(code, "MANIFEST_UNKNOWN") || !strcmp(code, "BLOB_UNKNOWN") ||
			     !strcmp(code, "NAME_UNKNOWN")))
			unknown = true;
		if (msg || code)
			text_append(out, REG_TEXT_MAX, msg ? msg : code);
	}
	static const char *const fields[] = { "details", "error_description", "error", "message" };
	for (size_t i = 0; !out[0] && i < ARRAY_SIZE(fields); i++) {
		const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, fields[i]));
		if (s)
			text_append(out, REG_TEXT_MAX, s);
	}
	cJSON_Delete(j);
	return unknown;
}

/* Maps a final non-2xx status to the contract's errnos. */
static int status_error(const struct xfer *x, const char *what, struct berth_err *err)
{
	char text[REG_TEXT_MAX];
	bool unknown = registry_text(&x->errbody, text);
	if (!text[0])
		snprintf(text, sizeof(text), "HTTP %ld", x->status);
	if (x->status == 404 || unknown)
		return berth_errf(err, ENOENT, "%s %s: not found: %s", what, x->url, text);
	if (x->status == 401 || x->status == 403)
		return berth_errf(err, EACCES, "%s %s: unauthorized: %s", what, x->url, text);
	return berth_errf(err, EPROTO, "%s %s: HTTP %ld: %s", what, x->url, x->status, text);
}

/* ---- libcurl callbacks --------------------------------------------- */

/* Records why a callback aborts the transfer: "<url>: <message>". */
__attribute__((format(printf, 3, 4)))
static int xfer_fail(struct xfer *x, int code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	x->cb_ret = berth_errf(&x->cb_err, code, "GET %s: %s", x->url, msg);
	return x->cb_ret;
}

/* Copies a header's value (trimmed) when line is "<name>: value". */
static bool header_value(const char *line, size_t len, const char *name, char *out, size_t size)
{
	size_t n = strlen(name);
	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return false;
	const char *v = line + n + 1, *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && isspace((unsigned char)end[-1]))
		end--;
	size_t vlen = (size_t)(end - v);
	if (vlen >= size)
		vlen = size - 1; /* over-long values are cut; none we use is long */
	memcpy(out, v, vlen);
	out[vlen] = '\0';
	return true;
}

static void header_status(struct xfer *x, const char *line, size_t len)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "%.*s", (int)(len < 63 ? len : 63), line);
	xfer_reset_response(x);
	const char *sp = strchr(buf, ' ');
	x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
}

static void header_field(struct xfer *x, const char *line, size_t len)
{
	char v[4096];
	if (header_value(line, len, "Content-Type", v, sizeof(v))) {
		size_t n = strcspn(v, "; \t"); /* drop "; charset=…" */
		if (n < sizeof(x->ctype)) { /* longer is no media type we know */
			memcpy(x->ctype, v, n);
			x->ctype[n] = '\0';
		}
	} else if (header_value(line, len, "Docker-Content-Digest", v, sizeof(v))) {
		if (img_digest_valid(v)) /* anything else counts as absent */
			memcpy(x->digest, v, SHA256_DIGEST_STRLEN);
	} else if (header_value(line, len, "Content-Length", v, sizeof(v))) {
		char *end;
		long long n = strtoll(v, &end, 10);
		x->content_length = *end == '\0' && n >= 0 ? n : -1;
	} else if (header_value(line, len, "Content-Range", v, sizeof(v))) {
		long long start;
		x->range_start = sscanf(v, "bytes %lld-", &start) == 1 && start >= 0 ? start : -1;
	} else if (!x->www_auth && header_value(line, len, "WWW-Authenticate", v, sizeof(v))) {
		x->www_auth = strdup(v);
	}
}

static size_t on_header(char *line, size_t size, size_t n, void *opaque)
{
	struct xfer *x = opaque;
	size_t len = size * n;
	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		header_status(x, line, len);
		return len;
	}
	header_field(x, line, len);
	/* A 2xx body we would refuse anyway is not downloaded at all. */
	if (x->status / 100 == 2 && x->body_max && x->content_length > (int64_t)x->body_max) {
		xfer_fail(x, EFBIG, "response larger than %zu bytes", x->body_max);
		return 0;
	}
	return len;
}

/* First 2xx byte of a blob: a 200 to a Range request restarts the sink,
 * a 206 must resume exactly where we asked. */
static int blob_first_chunk(struct xfer *x)
{
	if (x->status == 206) {
		if (x->offset == 0 || x->range_start != x->offset)
			return xfer_fail(x, EPROTO, "partial content from byte %" PRId64
					 ", asked for byte %" PRId64, x->range_start, x->offset);
		return 0;
	}
	if (x->offset > 0) {
		if (!x->restart)
			return xfer_fail(x, EPROTO, "server ignored the Range request");
		x->offset = 0;
		int r = x->restart(x->opaque, &x->cb_err);
		if (r < 0)
			x->cb_ret = r;
		return r;
	}
	return 0;
}

static size_t on_body(char *buf, size_t size, size_t n, void *opaque)
{
	struct xfer *x = opaque;
	size_t len = size * n;
	if (x->status / 100 != 2) {
		/* Error bodies only feed messages: keep the start, drop the rest. */
		size_t room = REG_ERRBODY_MAX - x->errbody.len;
		if (grow_append(&x->errbody, buf, len < room ? len : room, REG_ERRBODY_MAX) < 0)
			return 0;
		return len;
	}
	if (!x->sink) {
		int r = grow_append(&x->body, buf, len, x->body_max);
		if (r == -EFBIG)
			xfer_fail(x, EFBIG, "response larger than %zu bytes", x->body_max);
		else if (r < 0)
			xfer_fail(x, ENOMEM, "out of memory");
		return r < 0 ? 0 : len;
	}
	if (!x->started) {
		x->started = true;
		if (blob_first_chunk(x) < 0)
			return 0;
	}
	int r = x->sink(x->opaque, buf, len, &x->cb_err);
	if (r < 0) {
		x->cb_ret = r;
		return 0;
	}
	return len;
}

/* ---- easy handles -------------------------------------------------- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *opaque)
{
	(void)h;
	(void)access;
	struct img_registry *r = opaque;
	pthread_mutex_lock(&r->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *opaque)
{
	(void)h;
	struct img_registry *r = opaque;
	pthread_mutex_unlock(&r->share_locks[data]);
}

static CURL *handle_get(struct img_registry *r)
{
	CURL *h = NULL;
	pthread_mutex_lock(&r->pool_lock);
	if (r->n_pool)
		h = r->pool[--r->n_pool];
	pthread_mutex_unlock(&r->pool_lock);
	return h ? h : curl_easy_init();
}

/* curl_easy_reset keeps live connections and caches but forgets our
 * pointers to stack buffers. */
static void handle_put(struct img_registry *r, CURL *h)
{
	curl_easy_reset(h);
	pthread_mutex_lock(&r->pool_lock);
	if (r->n_pool < REG_POOL_MAX) {
		r->pool[r->n_pool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&r->pool_lock);
	if (h)
		curl_easy_cleanup(h);
}

static struct curl_slist *build_headers(const struct xfer *x, bool *oom)
{
	char line[8192];
	struct curl_slist *l = NULL, *t;
	*oom = false;
	if (x->accept) {
		snprintf(line, sizeof(line), "Accept: %s", x->accept);
		if (!(t = curl_slist_append(l, line)))
			goto fail;
		l = t;
	}
	if (x->authz) {
		/* A token can be long; build it on the heap. */
		_cleanup_free_ char *a = NULL;
		if (asprintf(&a, "Authorization: %s", x->authz) < 0) {
			a = NULL; /* undefined after a failure */
			goto fail;
		}
		if (!(t = curl_slist_append(l, a)))
			goto fail;
		l = t;
	}
	return l;
fail:
	curl_slist_free_all(l);
	*oom = true;
	return NULL;
}

static void setup_handle(CURL *h, struct img_registry *r, struct xfer *x,
			 struct curl_slist *hdrs, char *errbuf, char *range)
{
	curl_easy_setopt(h, CURLOPT_URL, x->url);
	curl_easy_setopt(h, CURLOPT_SHARE, r->share);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM */
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, REG_MAX_REDIRS);
	curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 0L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, REG_CONNECT_TIMEOUT);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, REG_LOW_SPEED_LIMIT);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, REG_LOW_SPEED_TIME);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, REG_BUFFER_SIZE);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "berth");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	if (range)
		curl_easy_setopt(h, CURLOPT_RANGE, range);
}

static int curl_error(CURL *h, CURLcode rc, const struct xfer *x, const char *what,
		      const char *errbuf, struct berth_err *err)
{
	const char *msg = errbuf[0] ? errbuf : curl_easy_strerror(rc);
	double connect_time = 0;
	curl_easy_getinfo(h, CURLINFO_CONNECT_TIME, &connect_time);
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return berth_errf(err, EHOSTUNREACH, "%s unreachable: %s", what, msg);
	case CURLE_OPERATION_TIMEDOUT:
		if (connect_time <= 0)
			return berth_errf(err, EHOSTUNREACH, "%s unreachable: %s", what, msg);
		return berth_errf(err, ETIMEDOUT, "%s %s: %s", what, x->url, msg);
	case CURLE_OUT_OF_MEMORY:
		return berth_errf(err, ENOMEM, "%s %s: %s", what, x->url, msg);
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_TOO_MANY_REDIRECTS:
		return berth_errf(err, EPROTO, "%s %s: %s", what, x->url, msg);
	default:
		return berth_errf(err, EIO, "%s %s: %s", what, x->url, msg);
	}
}

/* The earlier of the registry's and the exchange's deadlines (0: none). */
static int64_t xfer_deadline(const struct img_registry *r, const struct xfer *x)
{
	if (!r->deadline_ms || (x->deadline_ms && x->deadline_ms < r->deadline_ms))
		return x->deadline_ms;
	return r->deadline_ms;
}

/* Runs one exchange.  Returns 0 when an HTTP response arrived, whatever
 * its status; what names the peer in messages ("registry host:port").
 * The whole exchange, however slowly the bytes trickle, ends at the
 * deadline: -ETIMEDOUT "… deadline reached". */
static int perform(struct img_registry *r, struct xfer *x, const char *what,
		   struct berth_err *err)
{
	int64_t deadline = xfer_deadline(r, x);
	if (deadline && berth_mono_ms() >= deadline)
		return berth_errf(err, ETIMEDOUT, "%s %s: deadline reached", what, x->url);
	bool oom;
	struct curl_slist *hdrs = build_headers(x, &oom);
	CURL *h = oom ? NULL : handle_get(r);
	if (!h) {
		curl_slist_free_all(hdrs);
		return berth_errf(err, ENOMEM, "%s %s: out of memory", what, x->url);
	}
	char errbuf[CURL_ERROR_SIZE] = "";
	char range[32];
	snprintf(range, sizeof(range), "%" PRId64 "-", x->offset);
	xfer_reset_response(x);
	x->cb_ret = 0;
	setup_handle(h, r, x, hdrs, errbuf, x->offset > 0 ? range : NULL);
	if (deadline)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(deadline - berth_mono_ms() + 1));
	CURLcode rc = curl_easy_perform(h);
	int ret = 0;
	if (x->cb_ret < 0) {
		*err = x->cb_err;
		ret = x->cb_ret;
	} else if (rc == CURLE_OPERATION_TIMEDOUT && deadline && berth_mono_ms() >= deadline) {
		ret = berth_errf(err, ETIMEDOUT, "%s %s: deadline reached", what, x->url);
	} else if (rc != CURLE_OK) {
		ret = curl_error(h, rc, x, what, errbuf, err);
	}
	handle_put(r, h);
	curl_slist_free_all(hdrs);
	return ret;
}

/* ---- authentication ------------------------------------------------ */

static int append_query(char *url, size_t size, const char *key, const char *value)
{
	char *esc = curl_easy_escape(NULL, value, 0);
	if (!esc)
		return -ENOMEM;
	size_t n = strlen(url);
	int w = snprintf(url + n, size - n, "%c%s=%s", strchr(url, '?') ? '&' : '?', key, esc);
	curl_free(esc);
	return w < 0 || (size_t)w >= size - n ? -ENAMETOOLONG : 0;
}

/* realm?service=…&scope=… with each space-separated scope its own
 * parameter, as the token spec wants. */
static int token_url(const struct img_registry *r, const struct img_challenge *c,
		     char url[REG_URL_MAX], struct berth_err *err)
{
	if (strncasecmp(c->realm, "https://", 8) != 0 && strncasecmp(c->realm, "http://", 7) != 0)
		return berth_errf(err, EPROTO, "registry %s: token realm \"%.100s\" is not an http(s) URL",
				  r->host, c->realm);
	char scope[IMG_REF_PATH_MAX + 32];
	snprintf(scope, sizeof(scope), "repository:%s:pull", r->path);
	_cleanup_free_ char *scopes = strdup(c->scope ? c->scope : scope);
	int ret = scopes && snprintf(url, REG_URL_MAX, "%s", c->realm) < REG_URL_MAX ? 0 : -ENOMEM;
	if (ret == 0 && c->service)
		ret = append_query(url, REG_URL_MAX, "service", c->service);
	char *save = NULL;
	for (char *s = scopes ? strtok_r(scopes, " ", &save) : NULL; s && ret == 0;
	     s = strtok_r(NULL, " ", &save))
		ret = append_query(url, REG_URL_MAX, "scope", s);
	if (ret < 0)
		return berth_errf(err, -ret, "registry %s: cannot build the token URL", r->host);
	return 0;
}

/* Token and lifetime from {"token"|"access_token", "expires_in"}.  The
 * token goes into a header: printable ASCII without spaces only. */
static int token_parse(const struct xfer *x, char **ret_token, int64_t *ret_ttl,
		       struct berth_err *err)
{
	cJSON *j = cJSON_ParseWithLength(x->body.p ? x->body.p : "", x->body.len);
	const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "token"));
	if (!t || !t[0])
		t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "access_token"));
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
	int64_t ttl = cJSON_IsNumber(exp) && exp->valuedouble >= REG_TOKEN_TTL_DEFAULT &&
			      exp->valuedouble < 1e9 ? (int64_t)exp->valuedouble : REG_TOKEN_TTL_DEFAULT;
	bool ok = t && t[0];
	for (const char *p = t; ok && *p; p++)
		ok = *p > 0x20 && *p < 0x7f;
	char *dup = ok ? strdup(t) : NULL;
	cJSON_Delete(j);
	if (!ok)
		return berth_errf(err, EPROTO, "token server %s: no usable token in the response", x->url);
	if (!dup)
		return berth_errf(err, ENOMEM, "token server %s: out of memory", x->url);
	*ret_token = dup;
	*ret_ttl = ttl;
	return 0;
}

/* GETs a bearer token for c, with our credentials when we have them, and
 * installs it as the authorization.  Caller holds auth_lock. */
static int token_fetch_locked(struct img_registry *r, const struct img_challenge *c,
			      struct berth_err *err)
{
	char url[REG_URL_MAX];
	int ret = token_url(r, c, url, err);
	if (ret < 0)
		return ret;
	struct xfer x = { .url = url, .authz = r->basic, .body_max = REG_TOKEN_MAX };
	ret = perform(r, &x, "token server", err);
	if (ret == 0 && x.status != 200)
		ret = status_error(&x, "token server", err);
	_cleanup_free_ char *token = NULL;
	int64_t ttl = 0;
	if (ret == 0)
		ret = token_parse(&x, &token, &ttl, err);
	xfer_done(&x);
	if (ret < 0)
		return ret;
	free(r->authz);
	if (asprintf(&r->authz, "Bearer %s", token) < 0) {
		r->authz = NULL;
		return berth_errf(err, ENOMEM, "registry %s: out of memory", r->host);
	}
	r->authz_expiry = berth_mono_ms() / 1000 + ttl - REG_TOKEN_MARGIN;
	r->gen++;
	return 0;
}

/* Acts on a challenge: Bearer fetches a token (remembering the challenge
 * to renew it), Basic sends our credentials.  Returns 1 for a Basic
 * challenge we have no credentials for.  Caller holds auth_lock. */
static int answer_challenge_locked(struct img_registry *r, struct img_challenge *c,
				   struct berth_err *err)
{
	if (strcmp(c->scheme, "Basic") == 0) {
		if (!r->basic)
			return 1;
		free(r->authz);
		r->authz = strdup(r->basic);
		r->authz_expiry = 0;
		r->gen++;
		return r->authz ? 0 : berth_errf(err, ENOMEM, "registry %s: out of memory", r->host);
	}
	int ret = token_fetch_locked(r, c, err);
	if (ret < 0)
		return ret;
	img_challenge_done(&r->bearer);
	r->bearer = *c;
	*c = (struct img_challenge){ 0 };
	return 0;
}

static int copy_authz_locked(struct img_registry *r, char **ret, unsigned *ret_gen,
			     struct berth_err *err)
{
	char *a = NULL;
	if (r->authz && !(a = strdup(r->authz)))
		return berth_errf(err, ENOMEM, "registry %s: out of memory", r->host);
	*ret = a;
	*ret_gen = r->gen;
	return 0;
}

/* The authorization to send now: none until a 401 asked for one (no /v2/
 * ping first: on an anonymous registry that round trip was a third of a
 * warm RunTask's image step, and an authenticating one answers the real
 * request with the same challenge); renews an expired token.  Threads
 * wait on auth_lock while one of them talks to the token server, then all
 * use its token. */
static int auth_current(struct img_registry *r, char **ret, unsigned *ret_gen, struct berth_err *err)
{
	pthread_mutex_lock(&r->auth_lock);
	int ret_code = 0;
	if (r->authz_expiry && berth_mono_ms() / 1000 >= r->authz_expiry && r->bearer.realm)
		ret_code = token_fetch_locked(r, &r->bearer, err);
	if (ret_code == 0)
		ret_code = copy_authz_locked(r, ret, ret_gen, err);
	pthread_mutex_unlock(&r->auth_lock);
	return ret_code;
}

/* After a 401 to authorization generation `seen`: another thread may
 * already have a new one; else answer the 401's challenge. */
static int auth_refresh(struct img_registry *r, unsigned seen, const struct xfer *x,
			char **ret, unsigned *ret_gen, struct berth_err *err)
{
	pthread_mutex_lock(&r->auth_lock);
	int ret_code = 0;
	if (r->gen == seen) {
		struct img_challenge c = { 0 };
		if (!x->www_auth)
			ret_code = status_error(x, "GET", err);
		else if ((ret_code = img_challenge_parse(x->www_auth, &c, err)) < 0)
			berth_err_wrap(err, "GET %s", x->url);
		else if ((ret_code = answer_challenge_locked(r, &c, err)) > 0)
			ret_code = status_error(x, "GET", err);
		img_challenge_done(&c);
	}
	if (ret_code == 0)
		ret_code = copy_authz_locked(r, ret, ret_gen, err);
	pthread_mutex_unlock(&r->auth_lock);
	return ret_code;
}

/* A GET with authorization, retried once after a 401 with fresh
 * credentials; any final non-2xx becomes an error. */
static int registry_get(struct img_registry *r, struct xfer *x, struct berth_err *err)
{
	char what[IMG_REF_DOMAIN_MAX + 16];
	snprintf(what, sizeof(what), "registry %s", r->host);
	_cleanup_free_ char *authz = NULL;
	unsigned gen = 0;
	int ret = auth_current(r, &authz, &gen, err);
	for (int attempt = 0; ret == 0; attempt++) {
		x->authz = authz;
		ret = perform(r, x, what, err);
		if (ret < 0 || x->status != 401 || attempt > 0)
			break;
		free(TAKE_PTR(authz));
		ret = auth_refresh(r, gen, x, &authz, &gen, err);
	}
	x->authz = NULL;
	if (ret == 0 && x->status / 100 != 2)
		ret = status_error(x, "GET", err);
	return ret;
}

/* ---- public API ---------------------------------------------------- */

/* Tags per the distribution spec; digests validated as such. */
static int check_reference(const char *ref, struct berth_err *err)
{
	if (strchr(ref, ':'))
		return img_digest_check(ref, "manifest", err);
	size_t n = strlen(ref);
	if (n == 0 || n > 128 || !(isalnum((unsigned char)ref[0]) || ref[0] == '_') ||
	    strspn(ref, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != n)
		return berth_errf(err, EINVAL, "invalid tag \"%.140s\"", ref);
	return 0;
}

int img_registry_get_manifest(struct img_registry *r, const char *reference,
			      char **ret_body, size_t *ret_len, char **ret_content_type,
			      char **ret_digest, struct berth_err *err)
{
	int ret = check_reference(reference, err);
	if (ret < 0)
		return ret;
	char url[REG_URL_MAX];
	snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", r->base, r->path, reference);
	struct xfer x = { .url = url, .accept = img_manifest_accept, .body_max = IMG_MANIFEST_MAX };
	ret = registry_get(r, &x, err);
	if (ret == 0 && x.status != 200)
		ret = berth_errf(err, EPROTO, "GET %s: unexpected HTTP %ld", url, x.status);
	if (ret == 0 && !x.body.p && grow_append(&x.body, "", 0, 1) < 0)
		ret = berth_errf(err, ENOMEM, "GET %s: out of memory", url);
	_cleanup_free_ char *ctype = ret == 0 ? strdup(x.ctype) : NULL;
	_cleanup_free_ char *digest = ret == 0 ? strdup(x.digest) : NULL;
	if (ret == 0 && (!ctype || !digest))
		ret = berth_errf(err, ENOMEM, "GET %s: out of memory", url);
	if (ret == 0) {
		*ret_body = TAKE_PTR(x.body.p);
		*ret_len = x.body.len;
		*ret_content_type = TAKE_PTR(ctype);
		*ret_digest = TAKE_PTR(digest);
	}
	xfer_done(&x);
	return ret;
}

int img_registry_get_blob(struct img_registry *r, const char *digest, int64_t offset,
			  int64_t deadline_ms, img_blob_sink_fn sink, img_blob_restart_fn restart,
			  void *opaque, struct berth_err *err)
{
	int ret = img_digest_check(digest, "blob", err);
	if (ret < 0)
		return ret;
	if (offset < 0)
		return berth_errf(err, EINVAL, "blob %s: negative offset", digest);
	char url[REG_URL_MAX];
	snprintf(url, sizeof(url), "%s/v2/%s/blobs/%s", r->base, r->path, digest);
	struct xfer x = { .url = url, .sink = sink, .restart = restart, .opaque = opaque,
			  .offset = offset, .deadline_ms = deadline_ms };
	ret = registry_get(r, &x, err);
	/* A 200 with an empty body to a Range request still means "from 0". */
	if (ret == 0 && x.status != 206 && x.offset > 0) {
		x.started = true;
		x.cb_ret = 0;
		ret = blob_first_chunk(&x);
		if (ret < 0)
			*err = x.cb_err;
	}
	xfer_done(&x);
	return ret;
}

/* The auth file named by opts, or $DOCKER_CONFIG/config.json if present.
 * Sets *ret_path to NULL when there is none. */
static int auth_file_path(const struct img_registry_opts *opts, char **ret_path, struct berth_err *err)
{
	char *p = NULL;
	if (opts && opts->auth_file) {
		p = strdup(opts->auth_file);
	} else {
		const char *dir = getenv("DOCKER_CONFIG");
		if (!dir || !dir[0]) {
			*ret_path = NULL;
			return 0;
		}
		if (asprintf(&p, "%s/config.json", dir) < 0) {
			p = NULL;
		} else if (access(p, F_OK) != 0) {
			free(p);
			*ret_path = NULL;
			return 0;
		}
	}
	if (!p)
		return berth_errf(err, ENOMEM, "out of memory");
	*ret_path = p;
	return 0;
}

static int load_credentials(struct img_registry *r, const struct img_ref *ref,
			    const struct img_registry_opts *opts, struct berth_err *err)
{
	_cleanup_free_ char *path = NULL, *json = NULL, *user = NULL, *pass = NULL;
	int ret = auth_file_path(opts, &path, err);
	if (ret < 0 || !path)
		return ret;
	size_t len;
	ret = berth_read_file_at(AT_FDCWD, path, REG_AUTH_FILE_MAX, &json, &len, err);
	if (ret == 0)
		ret = img_auth_lookup(json, ref->domain, &user, &pass, err);
	if (ret < 0)
		return berth_err_wrap(err, "auth file %s", path);
	if (!user)
		return 0;
	_cleanup_free_ char *plain = NULL;
	if (asprintf(&plain, "%s:%s", user, pass) < 0) {
		plain = NULL;
		return berth_errf(err, ENOMEM, "out of memory");
	}
	size_t n = strlen(plain);
	r->basic = malloc(6 + 4 * ((n + 2) / 3) + 1);
	if (!r->basic)
		return berth_errf(err, ENOMEM, "out of memory");
	memcpy(r->basic, "Basic ", 6);
	EVP_EncodeBlock((unsigned char *)r->basic + 6, (unsigned char *)plain, (int)n);
	explicit_bzero(plain, n);
	explicit_bzero(pass, strlen(pass));
	return 0;
}

static bool is_insecure(const struct img_ref *ref, const struct img_registry_opts *opts)
{
	for (size_t i = 0; opts && i < opts->n_insecure; i++)
		if (!strcasecmp(opts->insecure[i], ref->domain) ||
		    !strcasecmp(opts->insecure[i], img_ref_registry_host(ref)))
			return true;
	return false;
}

static int registry_init(struct img_registry *r, const struct img_ref *ref,
			 const struct img_registry_opts *opts, struct berth_err *err)
{
	const char *host = img_ref_registry_host(ref);
	size_t plen = strlen(ref->path);
	if (!plen || strspn(ref->path, "abcdefghijklmnopqrstuvwxyz0123456789._-/") != plen)
		return berth_errf(err, EINVAL, "invalid repository \"%.256s\"", ref->path);
	bool insecure = is_insecure(ref, opts);
	/* Whatever listens on a local port is not a registry because an image
	 * reference names it: the operator names the ones that are. */
	if (!insecure && img_ref_is_loopback(ref))
		return berth_errf(err, EPERM, "a loopback registry is only used when named with "
				  "--insecure-registry %s (plain HTTP)", host);
	snprintf(r->host, sizeof(r->host), "%s", host);
	snprintf(r->path, sizeof(r->path), "%s", ref->path);
	snprintf(r->base, sizeof(r->base), "%s://%s", insecure ? "http" : "https", host);
	int rc = img_registry_init(err);
	if (rc < 0)
		return rc;
	r->share = curl_share_init();
	if (!r->share)
		return berth_errf(err, ENOMEM, "out of memory");
	curl_share_setopt(r->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(r->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(r->share, CURLSHOPT_USERDATA, r);
	curl_share_setopt(r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	return load_credentials(r, ref, opts, err);
}

int img_registry_open(const struct img_ref *ref, const struct img_registry_opts *opts,
		      struct img_registry **ret, struct berth_err *err)
{
	struct img_registry *r = calloc(1, sizeof(*r));
	if (!r)
		return berth_errf(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < ARRAY_SIZE(r->share_locks); i++)
		pthread_mutex_init(&r->share_locks[i], NULL);
	pthread_mutex_init(&r->pool_lock, NULL);
	pthread_mutex_init(&r->auth_lock, NULL);
	if (registry_init(r, ref, opts, err) < 0) {
		img_registry_free(r);
		return berth_err_wrap(err, "registry %s", img_ref_registry_host(ref));
	}
	*ret = r;
	return 0;
}

void img_registry_set_deadline(struct img_registry *r, int64_t deadline_ms)
{
	r->deadline_ms = deadline_ms;
}

void img_registry_free(struct img_registry *r)
{
	if (!r)
		return;
	/* Handles first: they reference the share. */
	for (size_t i = 0; i < r->n_pool; i++)
		curl_easy_cleanup(r->pool[i]);
	if (r->share)
		curl_share_cleanup(r->share);
	if (r->basic)
		explicit_bzero(r->basic, strlen(r->basic));
	free(r->basic);
	free(r->authz);
	img_challenge_done(&r->bearer);
	for (size_t i = 0; i < ARRAY_SIZE(r->share_locks); i++)
		pthread_mutex_destroy(&r->share_locks[i]);
	pthread_mutex_destroy(&r->pool_lock);
	pthread_mutex_destroy(&r->auth_lock);
	free(r);
}
