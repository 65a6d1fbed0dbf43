#include "images/manifest.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "images/digest.h"

/* Sizes are JSON numbers, read as doubles: above 2^53 they would no
 * longer be exact, and no real blob comes near. */
#define SIZE_EXACT_MAX 9007199254740992.0

#define MT_SCHEMA1 "application/vnd.docker.distribution.manifest.v1+json"
#define MT_SCHEMA1_SIGNED "application/vnd.docker.distribution.manifest.v1+prettyjws"

const char img_manifest_accept[] = IMG_MT_OCI_INDEX ", " IMG_MT_DOCKER_LIST ", "
	IMG_MT_OCI_MANIFEST ", " IMG_MT_DOCKER_MANIFEST;

/* ---- JSON helpers ------------------------------------------------------- */

/* Parses exactly buf[0..len) as one JSON value: trailing bytes other than
 * white space are refused. */
static int parse_json(const char *buf, size_t len, cJSON **ret, struct berth_err *err)
{
	if (len > IMG_MANIFEST_MAX)
		return berth_errf(err, EFBIG, "%zu bytes is over the %u byte limit", len,
				  IMG_MANIFEST_MAX);
	if (!buf || len == 0)
		return berth_errf(err, EBADMSG, "empty document");
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, false);
	if (!root) {
		size_t at = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : 0;
		return berth_errf(err, EBADMSG, "invalid JSON at byte %zu", at);
	}
	while (end < buf + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
		end++;
	if (end != buf + len) {
		cJSON_Delete(root);
		return berth_errf(err, EBADMSG, "invalid JSON: trailing data at byte %zu",
				  (size_t)(end - buf));
	}
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return berth_errf(err, EBADMSG, "not a JSON object");
	}
	*ret = root;
	return 0;
}

/* Case-sensitive member lookup (cJSON_GetObjectItem ignores case).  A
 * duplicated key is refused: two parsers could each pick another copy. */
static int member(const cJSON *obj, const char *key, const cJSON **ret, struct berth_err *err)
{
	const cJSON *found = NULL;
	for (const cJSON *c = obj->child; c; c = c->next) {
		if (!c->string || strcmp(c->string, key) != 0)
			continue;
		if (found)
			return berth_errf(err, EBADMSG, "duplicate \"%s\"", key);
		found = c;
	}
	*ret = found;
	return 0;
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

/* Copies obj.key into dst[size]: a string of printable ASCII without
 * blanks, shorter than size.  Absent: "" unless required. */
static int get_str(const cJSON *obj, const char *key, bool required, char *dst, size_t size,
		   struct berth_err *err)
{
	const cJSON *it;
	int r = member(obj, key, &it, err);
	if (r < 0)
		return r;
	if (!it) {
		dst[0] = '\0';
		return required ? berth_errf(err, EBADMSG, "missing \"%s\"", key) : 0;
	}
	if (!cJSON_IsString(it) || !it->valuestring)
		return berth_errf(err, EBADMSG, "\"%s\" is not a string", key);
	size_t n = strlen(it->valuestring);
	if (n >= size)
		return berth_errf(err, EBADMSG, "\"%s\" is too long: %zu bytes, at most %zu", key, n,
				  size - 1);
	if (!printable(it->valuestring))
		return berth_errf(err, EBADMSG, "\"%s\" holds blanks, control or non-ASCII characters",
				  key);
	memcpy(dst, it->valuestring, n + 1);
	return 0;
}

/* A required digest string, validated. */
static int get_digest(const cJSON *obj, const char *key, char dst[SHA256_DIGEST_STRLEN],
		      struct berth_err *err)
{
	const cJSON *it;
	int r = member(obj, key, &it, err);
	if (r < 0)
		return r;
	if (!it)
		return berth_errf(err, EBADMSG, "missing \"%s\"", key);
	if (!cJSON_IsString(it) || !it->valuestring)
		return berth_errf(err, EBADMSG, "\"%s\" is not a string", key);
	r = img_digest_check(it->valuestring, key, err);
	if (r < 0)
		return r;
	memcpy(dst, it->valuestring, SHA256_DIGEST_STRLEN);
	return 0;
}

/* A required non-negative integer size. */
static int get_size(const cJSON *obj, int64_t *ret, struct berth_err *err)
{
	const cJSON *it;
	int r = member(obj, "size", &it, err);
	if (r < 0)
		return r;
	if (!it)
		return berth_errf(err, EBADMSG, "missing \"size\"");
	if (!cJSON_IsNumber(it))
		return berth_errf(err, EBADMSG, "\"size\" is not a number");
	double v = it->valuedouble;
	/* Written so that NaN fails too. */
	if (!(v >= 0 && v <= SIZE_EXACT_MAX))
		return berth_errf(err, EBADMSG, "\"size\" %g is out of range", v);
	if ((double)(int64_t)v != v)
		return berth_errf(err, EBADMSG, "\"size\" %g is not an integer", v);
	*ret = (int64_t)v;
	return 0;
}

/* A required array or object member. */
static int get_container(const cJSON *obj, const char *key, bool array, const cJSON **ret,
			 struct berth_err *err)
{
	int r = member(obj, key, ret, err);
	if (r < 0)
		return r;
	if (!*ret)
		return berth_errf(err, EBADMSG, "missing \"%s\"", key);
	if (array ? !cJSON_IsArray(*ret) : !cJSON_IsObject(*ret))
		return berth_errf(err, EBADMSG, "\"%s\" is not an %s", key,
				  array ? "array" : "object");
	return 0;
}

static size_t array_len(const cJSON *a)
{
	size_t n = 0;
	for (const cJSON *c = a->child; c; c = c->next)
		n++;
	return n;
}

/* ---- media types -------------------------------------------------------- */

enum mt_class {
	MT_GENERIC, /* says nothing: infer from the body */
	MT_IMAGE,
	MT_INDEX,
	MT_OLD,     /* Docker schema 1 */
	MT_OTHER,
};

static enum mt_class classify(const char *mt)
{
	static const char *const generic[] = {
		"", "application/json", "application/octet-stream", "binary/octet-stream",
		"text/plain",
	};
	if (!strcmp(mt, IMG_MT_OCI_MANIFEST) || !strcmp(mt, IMG_MT_DOCKER_MANIFEST))
		return MT_IMAGE;
	if (!strcmp(mt, IMG_MT_OCI_INDEX) || !strcmp(mt, IMG_MT_DOCKER_LIST))
		return MT_INDEX;
	if (!strcmp(mt, MT_SCHEMA1) || !strcmp(mt, MT_SCHEMA1_SIGNED))
		return MT_OLD;
	for (size_t i = 0; i < ARRAY_SIZE(generic); i++)
		if (!strcmp(mt, generic[i]))
			return MT_GENERIC;
	return MT_OTHER;
}

/* The Content-Type without parameters and blanks, lowercased; characters
 * that are not printable become '?' so the text is safe to quote. */
static enum mt_class header_type(const char *ct, char out[128])
{
	out[0] = '\0';
	if (!ct)
		return MT_GENERIC;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	size_t n = strcspn(ct, ";");
	while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	bool cut = n > 127;
	if (cut)
		n = 127;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)ct[i];
		out[i] = c > 0x20 && c < 0x7f ? (char)tolower(c) : '?';
	}
	out[n] = '\0';
	return cut ? MT_OTHER : classify(out);
}

static int schema1_error(struct berth_err *err, const char *mt)
{
	return berth_errf(err, ENOTSUP,
			  "Docker schema 1 manifests (%s) are not supported: push the image "
			  "again as Docker schema 2 or OCI", mt);
}

static bool has_member(const cJSON *obj, const char *key)
{
	const cJSON *it = NULL;
	return member(obj, key, &it, NULL) < 0 || it;
}

/* Checks schemaVersion; 1 is Docker schema 1. */
static int check_schema_version(const cJSON *root, struct berth_err *err)
{
	const cJSON *v;
	int r = member(root, "schemaVersion", &v, err);
	if (r < 0)
		return r;
	if (!v)
		return berth_errf(err, EBADMSG, "missing \"schemaVersion\"");
	if (!cJSON_IsNumber(v))
		return berth_errf(err, EBADMSG, "\"schemaVersion\" is not a number");
	if (v->valuedouble == 1)
		return schema1_error(err, "schemaVersion 1");
	if (v->valuedouble != 2)
		return berth_errf(err, ENOTSUP, "schemaVersion %g is not supported, want 2",
				  v->valuedouble);
	return 0;
}

/* Neither mediaType nor Content-Type says: the fields decide. */
static int infer_kind(const cJSON *root, enum img_manifest_kind *kind, char mt[128],
		      struct berth_err *err)
{
	bool idx = has_member(root, "manifests");
	bool img = has_member(root, "config") || has_member(root, "layers");
	if (idx == img)
		return berth_errf(err, EBADMSG, idx ? "both \"manifests\" and \"config\"/\"layers\": "
				  "neither a manifest nor an index" : "no mediaType, \"manifests\", "
				  "\"config\" or \"layers\": neither a manifest nor an index");
	*kind = idx ? IMG_MANIFEST_INDEX : IMG_MANIFEST_IMAGE;
	strcpy(mt, idx ? IMG_MT_OCI_INDEX : IMG_MT_OCI_MANIFEST);
	return 0;
}

/* Decides manifest or index from the body's mediaType and the
 * Content-Type; the body wins, and the two must agree on the kind. */
static int resolve_kind(const cJSON *root, const char *ctype, enum img_manifest_kind *kind,
			char mt[128], struct berth_err *err)
{
	char hdr[128], body[128];
	enum mt_class hc = header_type(ctype, hdr);
	if (hc == MT_OLD)
		return schema1_error(err, hdr);
	int r = get_str(root, "mediaType", false, body, sizeof(body), err);
	if (r < 0)
		return r;
	enum mt_class bc = body[0] ? classify(body) : MT_GENERIC;
	if (body[0] && bc == MT_GENERIC)
		bc = MT_OTHER; /* "application/json" is no manifest type */
	if (bc == MT_OLD)
		return schema1_error(err, body);
	r = check_schema_version(root, err);
	if (r < 0)
		return r;
	if (bc == MT_GENERIC && hc == MT_GENERIC)
		return infer_kind(root, kind, mt, err);
	if (bc == MT_OTHER || (bc == MT_GENERIC && hc == MT_OTHER))
		return berth_errf(err, ENOTSUP, "unsupported manifest media type \"%s\"",
				  bc == MT_OTHER ? body : hdr);
	if ((hc == MT_IMAGE || hc == MT_INDEX) && bc != MT_GENERIC && hc != bc)
		return berth_errf(err, EBADMSG, "Content-Type %s contradicts the mediaType %s "
				  "of the body", hdr, body);
	enum mt_class c = bc != MT_GENERIC ? bc : hc;
	*kind = c == MT_INDEX ? IMG_MANIFEST_INDEX : IMG_MANIFEST_IMAGE;
	strcpy(mt, bc != MT_GENERIC ? body : hdr);
	return 0;
}

/* An index must not look like a manifest and vice versa (CVE-2021-41190). */
static int check_unambiguous(const cJSON *root, enum img_manifest_kind kind,
			     struct berth_err *err)
{
	if (kind == IMG_MANIFEST_IMAGE && has_member(root, "manifests"))
		return berth_errf(err, EBADMSG, "an image manifest must not have \"manifests\"");
	if (kind == IMG_MANIFEST_INDEX && (has_member(root, "config") || has_member(root, "layers")))
		return berth_errf(err, EBADMSG, "an index must not have \"config\" or \"layers\"");
	return 0;
}

static int layer_compression(const char *mt, enum img_compression *ret, struct berth_err *err)
{
	static const struct {
		const char *mt;
		enum img_compression c;
	} types[] = {
		{ "application/vnd.oci.image.layer.v1.tar", IMG_COMPRESSION_NONE },
		{ "application/vnd.oci.image.layer.v1.tar+gzip", IMG_COMPRESSION_GZIP },
		{ "application/vnd.oci.image.layer.v1.tar+zstd", IMG_COMPRESSION_ZSTD },
		{ "application/vnd.docker.image.rootfs.diff.tar.gzip", IMG_COMPRESSION_GZIP },
	};
	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		if (!strcmp(mt, types[i].mt)) {
			*ret = types[i].c;
			return 0;
		}
	}
	if (strstr(mt, "+encrypted"))
		return berth_errf(err, ENOTSUP, "encrypted layer media type \"%s\" is not supported",
				  mt);
	if (strstr(mt, "nondistributable") || strstr(mt, ".foreign."))
		return berth_errf(err, ENOTSUP, "non-distributable layer media type \"%s\" is not "
				  "supported", mt);
	return berth_errf(err, ENOTSUP, "unsupported layer media type \"%s\"", mt);
}

/* ---- descriptors -------------------------------------------------------- */

static int parse_descriptor(const cJSON *o, struct img_descriptor *d, struct berth_err *err)
{
	if (!cJSON_IsObject(o))
		return berth_errf(err, EBADMSG, "not an object");
	int r = get_str(o, "mediaType", true, d->media_type, sizeof(d->media_type), err);
	if (r == 0)
		r = get_digest(o, "digest", d->digest, err);
	if (r == 0)
		r = get_size(o, &d->size, err);
	return r;
}

static int parse_platform(const cJSON *o, struct img_platform *p, struct berth_err *err)
{
	const cJSON *pl;
	int r = member(o, "platform", &pl, err);
	if (r < 0 || !pl)
		return r;
	if (!cJSON_IsObject(pl))
		return berth_errf(err, EBADMSG, "\"platform\" is not an object");
	r = get_str(pl, "os", false, p->os, sizeof(p->os), err);
	if (r == 0)
		r = get_str(pl, "architecture", false, p->arch, sizeof(p->arch), err);
	if (r == 0)
		r = get_str(pl, "variant", false, p->variant, sizeof(p->variant), err);
	return r < 0 ? berth_err_wrap(err, "platform") : 0;
}

static int parse_layer(const cJSON *o, struct img_descriptor *d, struct berth_err *err)
{
	int r = parse_descriptor(o, d, err);
	return r < 0 ? r : layer_compression(d->media_type, &d->compression, err);
}

static int parse_entry(const cJSON *o, struct img_descriptor *d, struct berth_err *err)
{
	int r = parse_descriptor(o, d, err);
	return r < 0 ? r : parse_platform(o, &d->platform, err);
}

/* Parses the array root.key into a new descriptor array. */
static int parse_list(const cJSON *root, const char *key,
		      int (*parse)(const cJSON *, struct img_descriptor *, struct berth_err *),
		      struct img_descriptor **ret, size_t *ret_n, struct berth_err *err)
{
	const cJSON *a;
	int r = get_container(root, key, true, &a, err);
	if (r < 0)
		return r;
	size_t n = array_len(a);
	_cleanup_free_ struct img_descriptor *v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return berth_errf(err, ENOMEM, "%zu %s: out of memory", n, key);
	size_t i = 0;
	for (const cJSON *c = a->child; c; c = c->next, i++) {
		r = parse(c, &v[i], err);
		if (r < 0)
			return berth_err_wrap(err, "%s[%zu]", key, i);
	}
	*ret = TAKE_PTR(v);
	*ret_n = n;
	return 0;
}

static int parse_image(const cJSON *root, struct img_manifest *m, struct berth_err *err)
{
	const cJSON *cfg;
	int r = get_container(root, "config", false, &cfg, err);
	if (r == 0)
		r = parse_descriptor(cfg, &m->config, err);
	if (r < 0)
		return berth_err_wrap(err, "config");
	const char *mt = m->config.media_type;
	if (strcmp(mt, IMG_MT_OCI_CONFIG) && strcmp(mt, IMG_MT_DOCKER_CONFIG))
		return berth_errf(err, ENOTSUP, "config media type \"%s\" is not an image config "
				  "(an artifact?)", mt);
	return parse_list(root, "layers", parse_layer, &m->layers, &m->n_layers, err);
}

int img_manifest_parse(const char *buf, size_t len, const char *content_type,
		       struct img_manifest *ret, struct berth_err *err)
{
	struct berth_err local;
	if (!err)
		err = &local;
	_cleanup_(cJSON_Deletep) cJSON *root = NULL;
	struct img_manifest m = { 0 };
	int r = parse_json(buf, len, &root, err);
	if (r == 0)
		r = resolve_kind(root, content_type, &m.kind, m.media_type, err);
	if (r == 0)
		r = check_unambiguous(root, m.kind, err);
	if (r == 0 && m.kind == IMG_MANIFEST_IMAGE)
		r = parse_image(root, &m, err);
	else if (r == 0)
		r = parse_list(root, "manifests", parse_entry, &m.manifests, &m.n_manifests, err);
	if (r < 0) {
		bool index = m.kind == IMG_MANIFEST_INDEX;
		img_manifest_done(&m);
		return berth_err_wrap(err, "%s", index ? "index" : "manifest");
	}
	*ret = m;
	return 0;
}

void img_manifest_done(struct img_manifest *m)
{
	if (!m)
		return;
	free(m->layers);
	free(m->manifests);
	memset(m, 0, sizeof(*m));
}

/* ---- platforms ---------------------------------------------------------- */

static void set_platform(struct img_platform *p, const char *arch, const char *variant)
{
	snprintf(p->arch, sizeof(p->arch), "%s", arch);
	snprintf(p->variant, sizeof(p->variant), "%s", variant);
}

/* uname's machine in Go's terms, for an architecture not known at build
 * time; an unknown name is kept as it is. */
static void platform_from_machine(const char *machine, struct img_platform *p)
{
	static const struct {
		const char *machine, *arch, *variant;
	} map[] = {
		{ "x86_64", "amd64", "" }, { "amd64", "amd64", "" },
		{ "aarch64", "arm64", "v8" }, { "arm64", "arm64", "v8" },
		{ "armv7l", "arm", "v7" }, { "armv7", "arm", "v7" }, { "armv8l", "arm", "v7" },
		{ "armv6l", "arm", "v6" }, { "armv5tel", "arm", "v5" },
		{ "i386", "386", "" }, { "i486", "386", "" }, { "i586", "386", "" },
		{ "i686", "386", "" }, { "ppc64le", "ppc64le", "" }, { "s390x", "s390x", "" },
		{ "riscv64", "riscv64", "" }, { "mips64", "mips64", "" },
		{ "loongarch64", "loong64", "" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
		if (!strcmp(machine, map[i].machine)) {
			set_platform(p, map[i].arch, map[i].variant);
			return;
		}
	}
	set_platform(p, machine, "");
}

void img_host_platform(struct img_platform *ret)
{
	struct img_platform p = { .os = "linux" };
	/* The build's own architecture first: a 32-bit binary on a 64-bit
	 * kernel wants the 32-bit image, whatever uname says. */
#if defined(__x86_64__)
	const char *machine = "x86_64";
#elif defined(__aarch64__)
	const char *machine = "aarch64";
#elif defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7
	const char *machine = "armv7l";
#elif defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH == 6
	const char *machine = "armv6l";
#elif defined(__arm__)
	const char *machine = "armv5tel";
#elif defined(__i386__)
	const char *machine = "i686";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	const char *machine = "ppc64le";
#elif defined(__s390x__)
	const char *machine = "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
	const char *machine = "riscv64";
#else
	const char *machine = NULL;
#endif
	struct utsname u;
	if (!machine)
		machine = uname(&u) == 0 ? u.machine : "unknown";
	platform_from_machine(machine, &p);
	*ret = p;
}

/* Aliases folded the way containerd's platforms.Normalize does, except
 * that arm64's default variant is spelt "v8" rather than "". */
static void normalize(const struct img_platform *in, struct img_platform *out)
{
	*out = *in;
	const char *a = in->arch, *v = in->variant;
	if (!strcmp(a, "x86_64") || !strcmp(a, "x86-64") || !strcmp(a, "amd64"))
		set_platform(out, "amd64", !strcmp(v, "v1") ? "" : v);
	else if (!strcmp(a, "aarch64") || !strcmp(a, "arm64"))
		set_platform(out, "arm64", !*v || !strcmp(v, "8") || !strcmp(v, "v8.0") ? "v8" : v);
	else if (!strcmp(a, "i386"))
		set_platform(out, "386", "");
	else if (!strcmp(a, "armhf"))
		set_platform(out, "arm", "v7");
	else if (!strcmp(a, "armel"))
		set_platform(out, "arm", "v6");
	else if (!strcmp(a, "arm") && (!*v || !strcmp(v, "7")))
		set_platform(out, "arm", "v7");
	else if (!strcmp(a, "arm") && (!strcmp(v, "5") || !strcmp(v, "6") || !strcmp(v, "8")))
		set_platform(out, "arm", v[0] == '5' ? "v5" : v[0] == '6' ? "v6" : "v8");
}

/* Only image manifests for a real platform can be run: not nested
 * indexes, not artifacts, not BuildKit's attestation manifests (which say
 * "unknown/unknown"), not entries without a platform. */
static bool runnable(const struct img_descriptor *d)
{
	if (strcmp(d->media_type, IMG_MT_OCI_MANIFEST) && strcmp(d->media_type, IMG_MT_DOCKER_MANIFEST))
		return false;
	const struct img_platform *p = &d->platform;
	return p->os[0] && p->arch[0] && strcmp(p->os, "unknown") && strcmp(p->arch, "unknown");
}

/* 0: no match; higher is better. */
static int match_score(const struct img_platform *want, const struct img_platform *nwant,
		       const struct img_platform *have)
{
	struct img_platform n;
	normalize(have, &n);
	if (strcmp(nwant->os, n.os) || strcmp(nwant->arch, n.arch))
		return 0;
	if (!strcmp(nwant->variant, n.variant))
		return !strcmp(want->variant, have->variant) ? 3 : 2;
	return want->variant[0] ? 0 : 1;
}

static void format_platform(const struct img_platform *p, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s%s%s", p->os, p->arch, p->variant[0] ? "/" : "", p->variant);
}

static int no_match(const struct img_manifest *idx, const struct img_platform *want,
		    struct berth_err *err)
{
	/* Room for the rest of the message; "..." always fits after len. */
	char offered[BERTH_ERR_MAX - 256] = "", one[3 * sizeof(struct img_platform)];
	size_t len = 0;
	for (size_t i = 0; i < idx->n_manifests; i++) {
		if (!runnable(&idx->manifests[i]))
			continue;
		format_platform(&idx->manifests[i].platform, one, sizeof(one));
		size_t n = strlen(one) + (len ? 2 : 0);
		if (len + n + 6 > sizeof(offered)) {
			snprintf(offered + len, sizeof(offered) - len, "%s...", len ? ", " : "");
			break;
		}
		snprintf(offered + len, sizeof(offered) - len, "%s%s", len ? ", " : "", one);
		len += n;
	}
	char w[3 * sizeof(struct img_platform)];
	format_platform(want, w, sizeof(w));
	return berth_errf(err, ENOENT, "no matching manifest for %s in the manifest list entries "
			  "(offered: %s)", w, offered[0] ? offered : "none");
}

int img_index_select(const struct img_manifest *idx, const struct img_platform *want,
		     const struct img_descriptor **ret, struct berth_err *err)
{
	if (idx->kind != IMG_MANIFEST_INDEX)
		return berth_errf(err, EINVAL, "select a platform: %s is not an index",
				  idx->media_type);
	struct img_platform nwant;
	normalize(want, &nwant);
	const struct img_descriptor *best = NULL;
	int best_score = 0;
	for (size_t i = 0; i < idx->n_manifests; i++) {
		const struct img_descriptor *d = &idx->manifests[i];
		int s = runnable(d) ? match_score(want, &nwant, &d->platform) : 0;
		if (s > best_score) {
			best = d;
			best_score = s;
		}
	}
	if (!best)
		return no_match(idx, want, err);
	*ret = best;
	return 0;
}

/* ---- image config ------------------------------------------------------- */

static int parse_diff_ids(const cJSON *rootfs, struct img_config *c, struct berth_err *err)
{
	char type[32];
	int r = get_str(rootfs, "type", true, type, sizeof(type), err);
	if (r < 0)
		return r;
	if (strcmp(type, "layers"))
		return berth_errf(err, EBADMSG, "type \"%s\" is not \"layers\"", type);
	const cJSON *a;
	r = get_container(rootfs, "diff_ids", true, &a, err);
	if (r < 0)
		return r;
	size_t n = array_len(a);
	c->diff_ids = calloc(n ? n : 1, sizeof(*c->diff_ids));
	if (!c->diff_ids)
		return berth_errf(err, ENOMEM, "%zu diff ids: out of memory", n);
	for (const cJSON *it = a->child; it; it = it->next) {
		const char *s = cJSON_IsString(it) ? it->valuestring : NULL;
		r = img_digest_check(s, "diff id", err);
		if (r < 0)
			return berth_err_wrap(err, "diff_ids[%zu]", c->n_diff_ids);
		c->diff_ids[c->n_diff_ids] = strdup(s);
		if (!c->diff_ids[c->n_diff_ids])
			return berth_errf(err, ENOMEM, "diff ids: out of memory");
		c->n_diff_ids++;
	}
	return 0;
}

static int parse_config(const cJSON *root, struct img_config *c, struct berth_err *err)
{
	struct img_platform *p = &c->platform;
	int r = get_str(root, "architecture", false, p->arch, sizeof(p->arch), err);
	if (r == 0)
		r = get_str(root, "os", false, p->os, sizeof(p->os), err);
	if (r == 0)
		r = get_str(root, "variant", false, p->variant, sizeof(p->variant), err);
	if (r < 0)
		return r;
	const cJSON *rootfs;
	r = get_container(root, "rootfs", false, &rootfs, err);
	if (r == 0)
		r = parse_diff_ids(rootfs, c, err);
	return r < 0 ? berth_err_wrap(err, "rootfs") : 0;
}

int img_config_parse(const char *buf, size_t len, struct img_config *ret,
		     struct berth_err *err)
{
	struct berth_err local;
	if (!err)
		err = &local;
	_cleanup_(cJSON_Deletep) cJSON *root = NULL;
	struct img_config c = { 0 };
	int r = parse_json(buf, len, &root, err);
	if (r == 0)
		r = parse_config(root, &c, err);
	if (r < 0) {
		img_config_done(&c);
		return r;
	}
	*ret = c;
	return 0;
}

void img_config_done(struct img_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_diff_ids; i++)
		free(c->diff_ids[i]);
	free(c->diff_ids);
	memset(c, 0, sizeof(*c));
}
