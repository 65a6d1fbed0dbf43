/* Manifest, index and config parsing; platform choice. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "images/manifest.h"

#define H16(c) c c c c c c c c c c c c c c c c
#define DIG(c) "sha256:" H16(c) H16(c) H16(c) H16(c)
#define DA DIG("a")
#define DB DIG("b")
#define DC DIG("c")
#define DD DIG("d")

#define L_TAR "application/vnd.oci.image.layer.v1.tar"
#define L_GZ "application/vnd.oci.image.layer.v1.tar+gzip"
#define L_ZST "application/vnd.oci.image.layer.v1.tar+zstd"
#define L_DGZ "application/vnd.docker.image.rootfs.diff.tar.gzip"

#define DESC(mt, d, size) "{\"mediaType\":\"" mt "\",\"digest\":\"" d "\",\"size\":" size "}"
#define CFG_OCI DESC(IMG_MT_OCI_CONFIG, DA, "123")
#define MANIFEST(mt, cfg, layers) \
	"{\"schemaVersion\":2,\"mediaType\":\"" mt "\",\"config\":" cfg ",\"layers\":[" layers "]}"
#define OCI_WITH_LAYER(layer) MANIFEST(IMG_MT_OCI_MANIFEST, CFG_OCI, layer)
#define ENTRY(d, plat) \
	"{\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\",\"digest\":\"" d "\",\"size\":10" plat "}"
#define PLAT(os, arch) ",\"platform\":{\"os\":\"" os "\",\"architecture\":\"" arch "\"}"
#define PLATV(os, arch, v) \
	",\"platform\":{\"os\":\"" os "\",\"architecture\":\"" arch "\",\"variant\":\"" v "\"}"
#define INDEX(entries) \
	"{\"schemaVersion\":2,\"mediaType\":\"" IMG_MT_OCI_INDEX "\",\"manifests\":[" entries "]}"

/* ---- helpers ---------------------------------------------------------- */

static void parse_ok(const char *json, const char *ct, struct img_manifest *m)
{
	struct berth_err e = { 0 };
	int r = img_manifest_parse(json, strlen(json), ct, m, &e);
	if (r != 0)
		fail_msg("parse failed (%d): %s\n%s", r, e.msg, json);
}

/* Fails with code and a message containing needle; *ret is not touched. */
static void parse_fails_len(const char *json, size_t len, const char *ct, int code,
			    const char *needle)
{
	struct img_manifest m, poison;
	memset(&m, 0xa5, sizeof(m));
	memcpy(&poison, &m, sizeof(m));
	struct berth_err e = { 0 };
	int r = img_manifest_parse(json, len, ct, &m, &e);
	if (r != code)
		fail_msg("expected %d, got %d (%s) for\n%.300s", code, r, e.msg, json);
	if (!strstr(e.msg, needle))
		fail_msg("message \"%s\" lacks \"%s\"", e.msg, needle);
	assert_int_equal(e.code, -code);
	assert_memory_equal(&m, &poison, sizeof(m));
}

static void parse_fails(const char *json, const char *ct, int code, const char *needle)
{
	parse_fails_len(json, strlen(json), ct, code, needle);
}

static void config_fails(const char *json, int code, const char *needle)
{
	struct img_config c;
	memset(&c, 0x5a, sizeof(c));
	struct berth_err e = { 0 };
	int r = img_config_parse(json, strlen(json), &c, &e);
	if (r != code)
		fail_msg("expected %d, got %d (%s) for\n%s", code, r, e.msg, json);
	if (!strstr(e.msg, needle))
		fail_msg("message \"%s\" lacks \"%s\"", e.msg, needle);
	assert_int_equal(((unsigned char *)&c)[0], 0x5a);
}

static void set_plat(struct img_platform *p, const char *os, const char *arch, const char *v)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->os, sizeof(p->os), "%s", os);
	snprintf(p->arch, sizeof(p->arch), "%s", arch);
	snprintf(p->variant, sizeof(p->variant), "%s", v);
}

/* Selects from the index json for want; returns the chosen digest's
 * first hex character, or 0 when nothing matches (message in e). */
static char select_from(const char *json, const char *os, const char *arch, const char *v,
			struct berth_err *e)
{
	struct img_manifest m = { 0 };
	parse_ok(json, NULL, &m);
	struct img_platform want;
	set_plat(&want, os, arch, v);
	const struct img_descriptor *d = NULL;
	memset(e, 0, sizeof(*e));
	int r = img_index_select(&m, &want, &d, e);
	char c = 0;
	if (r == 0)
		c = d->digest[7];
	else
		assert_int_equal(r, -ENOENT);
	img_manifest_done(&m);
	return c;
}

/* ---- manifests -------------------------------------------------------- */

static void test_oci_manifest(void **state)
{
	(void)state;
	struct img_manifest m;
	parse_ok(OCI_WITH_LAYER(DESC(L_TAR, DB, "0") "," DESC(L_GZ, DC, "4096") ","
				DESC(L_ZST, DD, "9007199254740992")),
		 IMG_MT_OCI_MANIFEST, &m);
	assert_int_equal(m.kind, IMG_MANIFEST_IMAGE);
	assert_string_equal(m.media_type, IMG_MT_OCI_MANIFEST);
	assert_string_equal(m.config.media_type, IMG_MT_OCI_CONFIG);
	assert_string_equal(m.config.digest, DA);
	assert_int_equal(m.config.size, 123);
	assert_int_equal(m.n_layers, 3);
	assert_string_equal(m.layers[0].digest, DB);
	assert_int_equal(m.layers[0].size, 0);
	assert_int_equal(m.layers[0].compression, IMG_COMPRESSION_NONE);
	assert_int_equal(m.layers[1].compression, IMG_COMPRESSION_GZIP);
	assert_int_equal(m.layers[1].size, 4096);
	assert_int_equal(m.layers[2].compression, IMG_COMPRESSION_ZSTD);
	assert_true(m.layers[2].size == INT64_C(9007199254740992));
	assert_null(m.manifests);
	assert_int_equal(m.n_manifests, 0);
	img_manifest_done(&m);
	assert_null(m.layers);
	img_manifest_done(&m); /* twice is fine */

	/* Zero layers is allowed by image-spec v1.1 (SHOULD, not MUST). */
	parse_ok(OCI_WITH_LAYER(""), NULL, &m);
	assert_int_equal(m.n_layers, 0);
	img_manifest_done(&m);
}

static void test_docker_manifest(void **state)
{
	(void)state;
	struct img_manifest m;
	const char *j = MANIFEST(IMG_MT_DOCKER_MANIFEST, DESC(IMG_MT_DOCKER_CONFIG, DA, "1469"),
				 DESC(L_DGZ, DB, "2811969") "," DESC(L_DGZ, DC, "32"));
	parse_ok(j, IMG_MT_DOCKER_MANIFEST, &m);
	assert_int_equal(m.kind, IMG_MANIFEST_IMAGE);
	assert_string_equal(m.media_type, IMG_MT_DOCKER_MANIFEST);
	assert_string_equal(m.config.media_type, IMG_MT_DOCKER_CONFIG);
	assert_int_equal(m.n_layers, 2);
	assert_int_equal(m.layers[0].compression, IMG_COMPRESSION_GZIP);
	assert_int_equal(m.layers[0].size, 2811969);
	assert_string_equal(m.layers[1].digest, DC);
	img_manifest_done(&m);

	/* Pretty-printed, with annotations and unknown fields. */
	parse_ok("{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"" IMG_MT_OCI_MANIFEST "\",\n"
		 "  \"artifactType\": \"x\", \"annotations\": {\"a\": \"b\"},\n"
		 "  \"config\": {\"mediaType\": \"" IMG_MT_OCI_CONFIG "\", \"digest\": \"" DA "\","
		 " \"size\": 7, \"annotations\": {}},\n  \"layers\": [" DESC(L_GZ, DB, "5") "]\n}\n",
		 "application/vnd.oci.image.manifest.v1+json", &m);
	assert_int_equal(m.n_layers, 1);
	img_manifest_done(&m);
}

static void test_oci_index(void **state)
{
	(void)state;
	struct img_manifest m;
	parse_ok(INDEX(ENTRY(DA, PLAT("linux", "amd64")) "," ENTRY(DB, PLATV("linux", "arm64", "v8"))
		       "," ENTRY(DC, "")),
		 IMG_MT_OCI_INDEX, &m);
	assert_int_equal(m.kind, IMG_MANIFEST_INDEX);
	assert_string_equal(m.media_type, IMG_MT_OCI_INDEX);
	assert_int_equal(m.n_manifests, 3);
	assert_null(m.layers);
	assert_string_equal(m.manifests[0].digest, DA);
	assert_string_equal(m.manifests[0].media_type, IMG_MT_OCI_MANIFEST);
	assert_int_equal(m.manifests[0].size, 10);
	assert_string_equal(m.manifests[0].platform.os, "linux");
	assert_string_equal(m.manifests[0].platform.arch, "amd64");
	assert_string_equal(m.manifests[0].platform.variant, "");
	assert_string_equal(m.manifests[1].platform.variant, "v8");
	assert_string_equal(m.manifests[2].platform.os, "");
	assert_string_equal(m.manifests[2].platform.arch, "");
	img_manifest_done(&m);

	parse_ok(INDEX(""), NULL, &m);
	assert_int_equal(m.n_manifests, 0);
	img_manifest_done(&m);
}

static void test_docker_list(void **state)
{
	(void)state;
	struct img_manifest m;
	parse_ok("{\"schemaVersion\":2,\"mediaType\":\"" IMG_MT_DOCKER_LIST "\",\"manifests\":["
		 "{\"mediaType\":\"" IMG_MT_DOCKER_MANIFEST "\",\"size\":7143,\"digest\":\"" DA "\","
		 "\"platform\":{\"architecture\":\"ppc64le\",\"os\":\"linux\"}},"
		 "{\"mediaType\":\"" IMG_MT_DOCKER_MANIFEST "\",\"size\":7682,\"digest\":\"" DB "\","
		 "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\",\"features\":[\"sse4\"],"
		 "\"os.version\":\"10.0.14393.1066\"}}]}",
		 IMG_MT_DOCKER_LIST, &m);
	assert_int_equal(m.kind, IMG_MANIFEST_INDEX);
	assert_string_equal(m.media_type, IMG_MT_DOCKER_LIST);
	assert_int_equal(m.n_manifests, 2);
	assert_string_equal(m.manifests[0].platform.arch, "ppc64le");
	assert_int_equal(m.manifests[1].size, 7682);
	img_manifest_done(&m);
}

static void test_content_type_contradiction(void **state)
{
	(void)state;
	const char *img = OCI_WITH_LAYER(DESC(L_GZ, DB, "1"));
	const char *idx = INDEX(ENTRY(DA, PLAT("linux", "amd64")));
	parse_fails(img, IMG_MT_OCI_INDEX, -EBADMSG, "contradicts");
	parse_fails(img, IMG_MT_DOCKER_LIST, -EBADMSG, "contradicts");
	parse_fails(idx, IMG_MT_OCI_MANIFEST, -EBADMSG, "contradicts");
	parse_fails(idx, IMG_MT_DOCKER_MANIFEST "; charset=utf-8", -EBADMSG, "contradicts");

	/* Same kind, other flavour: the body's mediaType wins. */
	struct img_manifest m;
	parse_ok(img, IMG_MT_DOCKER_MANIFEST, &m);
	assert_string_equal(m.media_type, IMG_MT_OCI_MANIFEST);
	img_manifest_done(&m);

	/* No body mediaType: a specific Content-Type decides, and the
	 * fields must not say otherwise. */
	const char *bare = "{\"schemaVersion\":2,\"config\":" CFG_OCI ",\"layers\":[]}";
	parse_ok(bare, IMG_MT_DOCKER_MANIFEST, &m);
	assert_int_equal(m.kind, IMG_MANIFEST_IMAGE);
	assert_string_equal(m.media_type, IMG_MT_DOCKER_MANIFEST);
	img_manifest_done(&m);
	parse_fails(bare, IMG_MT_OCI_INDEX, -EBADMSG, "must not have");

	/* A body whose mediaType is unknown, or a vendor Content-Type with a
	 * body that says nothing. */
	parse_fails(MANIFEST("application/vnd.oci.artifact.manifest.v1+json", CFG_OCI, ""), NULL,
		    -ENOTSUP, "application/vnd.oci.artifact.manifest.v1+json");
	parse_fails(MANIFEST("application/json", CFG_OCI, ""), NULL, -ENOTSUP,
		    "unsupported manifest media type");
	parse_fails(bare, "application/vnd.example+json", -ENOTSUP, "application/vnd.example+json");
}

static void test_generic_content_type(void **state)
{
	(void)state;
	const char *generic[] = { NULL, "", "application/json", "application/octet-stream",
				  "Application/JSON; charset=utf-8", " text/plain " };
	const char *img = "{\"schemaVersion\":2,\"config\":" CFG_OCI ",\"layers\":["
			  DESC(L_TAR, DB, "3") "]}";
	const char *layers_only = "{\"schemaVersion\":2,\"layers\":[]}";
	const char *idx = "{\"schemaVersion\":2,\"manifests\":[" ENTRY(DA, "") "]}";
	for (size_t i = 0; i < sizeof(generic) / sizeof(generic[0]); i++) {
		struct img_manifest m;
		parse_ok(img, generic[i], &m);
		assert_int_equal(m.kind, IMG_MANIFEST_IMAGE);
		assert_string_equal(m.media_type, IMG_MT_OCI_MANIFEST);
		assert_int_equal(m.n_layers, 1);
		img_manifest_done(&m);
		parse_ok(idx, generic[i], &m);
		assert_int_equal(m.kind, IMG_MANIFEST_INDEX);
		assert_string_equal(m.media_type, IMG_MT_OCI_INDEX);
		img_manifest_done(&m);
		parse_ok(OCI_WITH_LAYER(""), generic[i], &m);
		img_manifest_done(&m);
		/* "layers" says manifest, but "config" is missing. */
		parse_fails(layers_only, generic[i], -EBADMSG, "missing \"config\"");
	}
	/* The Content-Type is matched without parameters and case. */
	struct img_manifest m;
	parse_ok(idx, "Application/Vnd.OCI.Image.Index.v1+JSON ; charset=utf-8", &m);
	assert_int_equal(m.kind, IMG_MANIFEST_INDEX);
	img_manifest_done(&m);

	parse_fails("{\"schemaVersion\":2,\"manifests\":[],\"layers\":[]}", NULL, -EBADMSG,
		    "neither a manifest nor an index");
	parse_fails("{\"schemaVersion\":2}", "application/json", -EBADMSG,
		    "neither a manifest nor an index");
	/* Ambiguous documents are refused even with a mediaType. */
	parse_fails("{\"schemaVersion\":2,\"mediaType\":\"" IMG_MT_OCI_INDEX "\",\"manifests\":[],"
		    "\"layers\":[]}", NULL, -EBADMSG, "index: an index must not have");
	parse_fails("{\"schemaVersion\":2,\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\",\"config\":"
		    CFG_OCI ",\"layers\":[],\"manifests\":[]}", NULL, -EBADMSG,
		    "manifest: an image manifest must not have \"manifests\"");
}

static void test_schema1_refused(void **state)
{
	(void)state;
	const char *s1 = "{\"schemaVersion\":1,\"name\":\"library/x\",\"tag\":\"1\","
			 "\"architecture\":\"amd64\",\"fsLayers\":[{\"blobSum\":\"" DA "\"}],"
			 "\"history\":[],\"signatures\":[]}";
	parse_fails(s1, NULL, -ENOTSUP, "schema 1");
	parse_fails(s1, "application/json", -ENOTSUP, "schema 1");
	parse_fails(s1, "application/vnd.docker.distribution.manifest.v1+prettyjws", -ENOTSUP,
		    "Docker schema 1 manifests (application/vnd.docker.distribution.manifest.v1"
		    "+prettyjws) are not supported");
	parse_fails(s1, "application/vnd.docker.distribution.manifest.v1+json", -ENOTSUP,
		    "schema 1");
	parse_fails("{\"schemaVersion\":1,\"mediaType\":\"application/vnd.docker.distribution."
		    "manifest.v1+json\"}", IMG_MT_DOCKER_MANIFEST, -ENOTSUP, "schema 1");
	/* Whatever the body says, a schema 1 Content-Type is refused. */
	parse_fails(OCI_WITH_LAYER(""), "application/vnd.docker.distribution.manifest.v1+json",
		    -ENOTSUP, "schema 1");

	parse_fails("{\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\",\"config\":" CFG_OCI
		    ",\"layers\":[]}", NULL, -EBADMSG, "missing \"schemaVersion\"");
	parse_fails("{\"schemaVersion\":3,\"config\":" CFG_OCI ",\"layers\":[]}", NULL, -ENOTSUP,
		    "schemaVersion 3 is not supported");
	parse_fails("{\"schemaVersion\":\"2\",\"config\":" CFG_OCI ",\"layers\":[]}", NULL,
		    -EBADMSG, "not a number");
}

static void test_bad_digests(void **state)
{
	(void)state;
	const char *bad[] = {
		"sha256:" H16("A") H16("A") H16("A") H16("A"),
		"sha256:" H16("a") H16("a") H16("a"),
		DA "0",
		"sha512:" H16("a") H16("a") H16("a") H16("a"),
		"sha256:" H16("a") H16("a") H16("a") H16("g") ,
		"../../../../etc/passwd",
		"",
	};
	char buf[1024];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), OCI_WITH_LAYER("{\"mediaType\":\"" L_GZ "\",\"digest\":"
							  "\"%s\",\"size\":1}"), bad[i]);
		parse_fails(buf, NULL, -EINVAL, "manifest: layers[0]: invalid digest");
		snprintf(buf, sizeof(buf), MANIFEST(IMG_MT_OCI_MANIFEST, "{\"mediaType\":\""
			 IMG_MT_OCI_CONFIG "\",\"digest\":\"%s\",\"size\":1}", ""), bad[i]);
		parse_fails(buf, NULL, -EINVAL, "manifest: config: invalid digest");
		snprintf(buf, sizeof(buf), INDEX("{\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\","
						 "\"digest\":\"%s\",\"size\":1}"), bad[i]);
		parse_fails(buf, NULL, -EINVAL, "index: manifests[0]: invalid digest");
	}
	parse_fails(OCI_WITH_LAYER(DESC(L_GZ, DB, "1") ",{\"mediaType\":\"" L_GZ "\",\"size\":1}"),
		    NULL, -EBADMSG, "layers[1]: missing \"digest\"");
	parse_fails(OCI_WITH_LAYER("{\"mediaType\":\"" L_GZ "\",\"digest\":7,\"size\":1}"), NULL,
		    -EBADMSG, "\"digest\" is not a string");
	parse_fails(OCI_WITH_LAYER("{\"mediaType\":\"" L_GZ "\",\"digest\":null,\"size\":1}"), NULL,
		    -EBADMSG, "\"digest\" is not a string");
}

static void test_bad_sizes(void **state)
{
	(void)state;
	const struct {
		const char *size, *needle;
	} bad[] = {
		{ "-1", "out of range" },         { "1.5", "not an integer" },
		{ "1e30", "out of range" },       { "9223372036854775807", "out of range" },
		{ "-0.5", "out of range" },       { "\"12\"", "not a number" },
		{ "null", "not a number" },       { "true", "not a number" },
		{ "0.000001", "not an integer" }, { "18446744073709551616", "out of range" },
	};
	char buf[1024];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), OCI_WITH_LAYER("{\"mediaType\":\"" L_GZ "\",\"digest\":\""
							  DB "\",\"size\":%s}"), bad[i].size);
		parse_fails(buf, NULL, -EBADMSG, bad[i].needle);
		snprintf(buf, sizeof(buf), INDEX("{\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\","
						 "\"digest\":\"" DA "\",\"size\":%s}"), bad[i].size);
		parse_fails(buf, NULL, -EBADMSG, bad[i].needle);
	}
	parse_fails(OCI_WITH_LAYER("{\"mediaType\":\"" L_GZ "\",\"digest\":\"" DB "\"}"), NULL,
		    -EBADMSG, "missing \"size\"");
	struct img_manifest m;
	parse_ok(OCI_WITH_LAYER(DESC(L_GZ, DB, "1e3") "," DESC(L_GZ, DC, "-0")), NULL, &m);
	assert_int_equal(m.layers[0].size, 1000);
	assert_int_equal(m.layers[1].size, 0);
	img_manifest_done(&m);
}

static void test_layer_types(void **state)
{
	(void)state;
	const struct {
		const char *mt, *needle;
	} bad[] = {
		{ "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "non-distributable" },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "non-distributable" },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar", "non-distributable" },
		{ "application/vnd.oci.image.layer.v1.tar+gzip+encrypted", "encrypted" },
		{ "application/vnd.oci.image.layer.v1.tar+zstd+encrypted", "encrypted" },
		{ "application/vnd.docker.image.rootfs.diff.tar", "unsupported layer media type" },
		{ "application/vnd.oci.image.layer.v1.tar+bzip2", "unsupported layer media type" },
		{ "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "unsupported" },
		{ "APPLICATION/VND.OCI.IMAGE.LAYER.V1.TAR", "unsupported" },
	};
	char buf[1024], needle[256];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), OCI_WITH_LAYER(DESC(L_GZ, DB, "1") ",{\"mediaType\":\"%s\","
							  "\"digest\":\"" DC "\",\"size\":1}"), bad[i].mt);
		parse_fails(buf, NULL, -ENOTSUP, bad[i].needle);
		/* The error names the layer and the type. */
		snprintf(needle, sizeof(needle), "manifest: layers[1]: ");
		parse_fails(buf, NULL, -ENOTSUP, needle);
		snprintf(needle, sizeof(needle), "\"%s\"", bad[i].mt);
		parse_fails(buf, NULL, -ENOTSUP, needle);
	}
	/* Config: only image configs. */
	parse_fails(MANIFEST(IMG_MT_OCI_MANIFEST, DESC("application/vnd.oci.empty.v1+json", DA, "2"),
			     ""), NULL, -ENOTSUP,
		    "config media type \"application/vnd.oci.empty.v1+json\" is not an image config");
	parse_fails(MANIFEST(IMG_MT_DOCKER_MANIFEST, DESC("application/vnd.docker.plugin.v1+json",
							  DA, "2"), ""), NULL, -ENOTSUP,
		    "application/vnd.docker.plugin.v1+json");
	/* A Docker manifest may carry an OCI config and OCI layers. */
	struct img_manifest m;
	parse_ok(MANIFEST(IMG_MT_DOCKER_MANIFEST, CFG_OCI, DESC(L_ZST, DB, "1")), NULL, &m);
	assert_int_equal(m.layers[0].compression, IMG_COMPRESSION_ZSTD);
	img_manifest_done(&m);
}

static void test_bounded_strings(void **state)
{
	(void)state;
	char mt[200], buf[2048];
	memset(mt, 'x', sizeof(mt) - 1);
	mt[sizeof(mt) - 1] = '\0';
	snprintf(buf, sizeof(buf), OCI_WITH_LAYER("{\"mediaType\":\"%s\",\"digest\":\"" DB "\","
						  "\"size\":1}"), mt);
	parse_fails(buf, NULL, -EBADMSG, "layers[0]: \"mediaType\" is too long: 199 bytes");
	/* 127 bytes fit, and the type is then refused by name. */
	mt[127] = '\0';
	snprintf(buf, sizeof(buf), OCI_WITH_LAYER("{\"mediaType\":\"%s\",\"digest\":\"" DB "\","
						  "\"size\":1}"), mt);
	parse_fails(buf, NULL, -ENOTSUP, "unsupported layer media type");
	snprintf(buf, sizeof(buf), "{\"schemaVersion\":2,\"mediaType\":\"%s\"}", mt);
	parse_fails(buf, NULL, -ENOTSUP, "unsupported manifest media type");
	/* An over-long Content-Type is no known type; the body says nothing. */
	mt[127] = 'x';
	mt[150] = '\0';
	parse_fails("{\"schemaVersion\":2,\"config\":" CFG_OCI ",\"layers\":[]}", mt, -ENOTSUP,
		    "unsupported manifest media type");

	parse_fails(INDEX(ENTRY(DA, PLAT("linux", "0123456789abcdef0123456789abcdef"))), NULL,
		    -EBADMSG, "index: manifests[0]: platform: \"architecture\" is too long");
	parse_fails(INDEX(ENTRY(DA, PLATV("linux", "arm", "0123456789abcdef0123456789abcdef"))),
		    NULL, -EBADMSG, "\"variant\" is too long");
	parse_fails(INDEX(ENTRY(DA, ",\"platform\":{\"os\":\"linux\\u001b[31m\","
				"\"architecture\":\"amd64\"}")), NULL, -EBADMSG, "control");
	parse_fails(INDEX(ENTRY(DA, ",\"platform\":\"linux/amd64\"")), NULL, -EBADMSG,
		    "\"platform\" is not an object");
	parse_fails(INDEX(ENTRY(DA, ",\"platform\":{\"os\":5}")), NULL, -EBADMSG,
		    "\"os\" is not a string");
	parse_fails(OCI_WITH_LAYER("{\"mediaType\":\"" L_GZ " \",\"digest\":\"" DB "\",\"size\":1}"),
		    NULL, -EBADMSG, "blanks");
	parse_fails(OCI_WITH_LAYER("{\"digest\":\"" DB "\",\"size\":1}"), NULL, -EBADMSG,
		    "layers[0]: missing \"mediaType\"");
}

static void test_invalid_json(void **state)
{
	(void)state;
	const char *full = OCI_WITH_LAYER(DESC(L_GZ, DB, "1"));
	parse_fails_len(full, strlen(full) - 1, NULL, -EBADMSG, "manifest: invalid JSON");
	parse_fails_len(full, 0, NULL, -EBADMSG, "empty");
	parse_fails("", NULL, -EBADMSG, "empty");
	parse_fails("{\"schemaVersion\":2,", NULL, -EBADMSG, "invalid JSON at byte");
	parse_fails("[]", NULL, -EBADMSG, "not a JSON object");
	parse_fails("\"x\"", NULL, -EBADMSG, "not a JSON object");
	parse_fails("{} {}", NULL, -EBADMSG, "trailing data at byte 3");
	parse_fails("nul", NULL, -EBADMSG, "invalid JSON");

	char buf[1024];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "%s", full);
	buf[n++] = '\0';
	buf[n++] = 'x';
	parse_fails_len(buf, n, NULL, -EBADMSG, "trailing data");

	/* Trailing white space is fine. */
	n = (size_t)snprintf(buf, sizeof(buf), "%s \r\n\t", full);
	struct img_manifest m;
	struct berth_err e = { 0 };
	assert_int_equal(img_manifest_parse(buf, n, NULL, &m, &e), 0);
	img_manifest_done(&m);

	/* Duplicate keys are refused; keys are case-sensitive. */
	parse_fails("{\"schemaVersion\":2,\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\",\"config\":"
		    CFG_OCI ",\"layers\":[],\"layers\":[" DESC(L_GZ, DB, "1") "]}", NULL, -EBADMSG,
		    "duplicate \"layers\"");
	parse_fails(OCI_WITH_LAYER("{\"mediaType\":\"" L_GZ "\",\"digest\":\"" DB "\",\"size\":1,"
				   "\"size\":2}"), NULL, -EBADMSG, "duplicate \"size\"");
	parse_fails("{\"schemaVersion\":2,\"MediaType\":\"" IMG_MT_OCI_INDEX "\",\"config\":"
		    CFG_OCI ",\"Layers\":[]}", NULL, -EBADMSG, "missing \"layers\"");
	parse_fails(MANIFEST(IMG_MT_OCI_MANIFEST, "[]", ""), NULL, -EBADMSG,
		    "config: \"config\" is not an object");
	parse_fails("{\"schemaVersion\":2,\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\",\"config\":"
		    CFG_OCI ",\"layers\":{}}", NULL, -EBADMSG, "\"layers\" is not an array");
	parse_fails(OCI_WITH_LAYER("7"), NULL, -EBADMSG, "layers[0]: not an object");
	parse_fails(INDEX("null"), NULL, -EBADMSG, "manifests[0]: not an object");
}

static void test_too_large(void **state)
{
	(void)state;
	size_t n = IMG_MANIFEST_MAX + 1;
	char *buf = malloc(n);
	assert_non_null(buf);
	const char *j = OCI_WITH_LAYER(DESC(L_GZ, DB, "1"));
	memset(buf, ' ', n);
	memcpy(buf, j, strlen(j));
	parse_fails_len(buf, n, NULL, -EFBIG, "over the 4194304 byte limit");
	struct img_config c;
	struct berth_err e = { 0 };
	assert_int_equal(img_config_parse(buf, n, &c, &e), -EFBIG);
	assert_non_null(strstr(e.msg, "4194305 bytes"));

	/* Exactly the limit is fine. */
	struct img_manifest m;
	assert_int_equal(img_manifest_parse(buf, IMG_MANIFEST_MAX, NULL, &m, &e), 0);
	assert_int_equal(m.n_layers, 1);
	img_manifest_done(&m);
	/* Refused before parsing: even garbage gets EFBIG, not EBADMSG. */
	memset(buf, '[', n);
	parse_fails_len(buf, n, NULL, -EFBIG, "byte limit");
	free(buf);
}

/* ---- platform choice ------------------------------------------------- */

static void test_host_platform(void **state)
{
	(void)state;
	struct img_platform p;
	memset(&p, 0x7f, sizeof(p));
	img_host_platform(&p);
	assert_string_equal(p.os, "linux");
	assert_true(p.arch[0] != '\0');
#if defined(__x86_64__)
	assert_string_equal(p.arch, "amd64");
	assert_string_equal(p.variant, "");
#elif defined(__aarch64__)
	assert_string_equal(p.arch, "arm64");
	assert_string_equal(p.variant, "v8");
#endif
}

#define MULTI \
	INDEX(ENTRY(DA, PLATV("linux", "arm64", "v8")) "," ENTRY(DB, PLAT("linux", "s390x")))

static void test_select_exact(void **state)
{
	(void)state;
	struct berth_err e;
	const char *j = INDEX(ENTRY(DA, PLAT("linux", "arm64")) "," ENTRY(DB, PLAT("linux", "amd64"))
			      "," ENTRY(DC, PLAT("windows", "amd64")) ","
			      ENTRY(DD, PLAT("linux", "ppc64le")));
	assert_int_equal(select_from(j, "linux", "amd64", "", &e), 'b');
	assert_int_equal(select_from(j, "windows", "amd64", "", &e), 'c');
	assert_int_equal(select_from(j, "linux", "ppc64le", "", &e), 'd');
	/* Aliases in the index are understood. */
	assert_int_equal(select_from(INDEX(ENTRY(DA, PLAT("linux", "x86_64"))), "linux", "amd64", "",
				     &e), 'a');
	/* The host's own platform is found in an index that offers it. */
	struct img_platform host;
	img_host_platform(&host);
	char buf[1024];
	snprintf(buf, sizeof(buf), INDEX(ENTRY(DA, PLAT("linux", "mips")) ","
					 ENTRY(DB, PLATV("%s", "%s", "%s"))),
		 host.os, host.arch, host.variant);
	assert_int_equal(select_from(buf, host.os, host.arch, host.variant, &e), 'b');
}

static void test_select_variant(void **state)
{
	(void)state;
	struct berth_err e;
	const char *arm = INDEX(ENTRY(DA, PLATV("linux", "arm", "v6")) ","
				ENTRY(DB, PLATV("linux", "arm", "v7")) ","
				ENTRY(DC, PLAT("linux", "amd64")));
	assert_int_equal(select_from(arm, "linux", "arm", "v7", &e), 'b');
	assert_int_equal(select_from(arm, "linux", "arm", "v6", &e), 'a');
	/* arm without a variant means v7. */
	assert_int_equal(select_from(arm, "linux", "arm", "", &e), 'b');
	assert_int_equal(select_from(arm, "linux", "arm", "v5", &e), 0);
	assert_non_null(strstr(e.msg, "linux/arm/v5"));
	/* With no variant wanted, the exact (empty) one is preferred over a
	 * later or earlier other one. */
	const char *amd = INDEX(ENTRY(DA, PLATV("linux", "amd64", "v3")) ","
				ENTRY(DB, PLAT("linux", "amd64")));
	assert_int_equal(select_from(amd, "linux", "amd64", "", &e), 'b');
	assert_int_equal(select_from(amd, "linux", "amd64", "v3", &e), 'a');
	assert_int_equal(select_from(amd, "linux", "amd64", "v2", &e), 0);
	/* ... and any variant will do when nothing better is there. */
	assert_int_equal(select_from(INDEX(ENTRY(DA, PLATV("linux", "amd64", "v2"))), "linux",
				     "amd64", "", &e), 'a');
	/* The first of equals wins. */
	assert_int_equal(select_from(INDEX(ENTRY(DA, PLAT("linux", "amd64")) ","
					   ENTRY(DB, PLAT("linux", "amd64"))), "linux", "amd64", "",
				     &e), 'a');
}

static void test_select_arm64_v8(void **state)
{
	(void)state;
	struct berth_err e;
	/* An arm64 entry without a variant is v8 (containerd does the same). */
	const char *plain = INDEX(ENTRY(DA, PLAT("linux", "amd64")) ","
				  ENTRY(DB, PLAT("linux", "arm64")));
	assert_int_equal(select_from(plain, "linux", "arm64", "v8", &e), 'b');
	assert_int_equal(select_from(plain, "linux", "arm64", "", &e), 'b');
	const char *v8 = INDEX(ENTRY(DA, PLATV("linux", "arm64", "v8")));
	assert_int_equal(select_from(v8, "linux", "arm64", "", &e), 'a');
	assert_int_equal(select_from(v8, "linux", "arm64", "v8", &e), 'a');
	assert_int_equal(select_from(INDEX(ENTRY(DA, PLAT("linux", "aarch64"))), "linux", "arm64",
				     "v8", &e), 'a');
	/* v8 wanted: an exact "v8" beats an empty variant, v9 does not fit. */
	const char *both = INDEX(ENTRY(DA, PLATV("linux", "arm64", "v9")) ","
				 ENTRY(DB, PLAT("linux", "arm64")) ","
				 ENTRY(DC, PLATV("linux", "arm64", "v8")));
	assert_int_equal(select_from(both, "linux", "arm64", "v8", &e), 'c');
	assert_int_equal(select_from(both, "linux", "arm64", "v9", &e), 'a');
	assert_int_equal(select_from(INDEX(ENTRY(DA, PLATV("linux", "arm64", "v9"))), "linux",
				     "arm64", "v8", &e), 0);
}

static void test_select_no_match(void **state)
{
	(void)state;
	struct berth_err e;
	assert_int_equal(select_from(MULTI, "linux", "amd64", "", &e), 0);
	assert_string_equal(e.msg, "no matching manifest for linux/amd64 in the manifest list "
			    "entries (offered: linux/arm64/v8, linux/s390x)");
	assert_int_equal(e.code, ENOENT);
	assert_int_equal(select_from(INDEX(""), "linux", "amd64", "", &e), 0);
	assert_string_equal(e.msg, "no matching manifest for linux/amd64 in the manifest list "
			    "entries (offered: none)");
	assert_int_equal(select_from(MULTI, "linux", "arm", "v7", &e), 0);
	assert_non_null(strstr(e.msg, "for linux/arm/v7 in"));
	assert_int_equal(select_from(MULTI, "windows", "s390x", "", &e), 0);

	/* Many entries: the list is cut, the message stays bounded. */
	size_t cap = 64 * 1024, len = 0;
	char *buf = malloc(cap);
	assert_non_null(buf);
	len += (size_t)snprintf(buf, cap, "{\"schemaVersion\":2,\"manifests\":[");
	for (int i = 0; i < 200; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s" ENTRY(DA, PLAT("linux", "arch%03d")),
					i ? "," : "", i);
	snprintf(buf + len, cap - len, "]}");
	assert_int_equal(select_from(buf, "linux", "amd64", "", &e), 0);
	assert_non_null(strstr(e.msg, "linux/arch000, linux/arch001"));
	assert_true(strlen(e.msg) < sizeof(e.msg));
	free(buf);

	/* Not an index. */
	struct img_manifest m;
	parse_ok(OCI_WITH_LAYER(""), NULL, &m);
	struct img_platform want;
	set_plat(&want, "linux", "amd64", "");
	const struct img_descriptor *d = NULL;
	assert_int_equal(img_index_select(&m, &want, &d, &e), -EINVAL);
	assert_null(d);
	img_manifest_done(&m);
}

static void test_select_skips_non_images(void **state)
{
	(void)state;
	struct berth_err e;
	/* BuildKit's layout: images, then attestation manifests for
	 * unknown/unknown, also a nested index and an artifact. */
	const char *j = INDEX(
		ENTRY(DA, ",\"platform\":{\"architecture\":\"unknown\",\"os\":\"unknown\"},"
			  "\"annotations\":{\"vnd.docker.reference.type\":\"attestation-manifest\","
			  "\"vnd.docker.reference.digest\":\"" DB "\"}") ","
		"{\"mediaType\":\"" IMG_MT_OCI_INDEX "\",\"digest\":\"" DC "\",\"size\":3"
		PLAT("linux", "amd64") "},"
		"{\"mediaType\":\"application/vnd.example.sbom+json\",\"digest\":\"" DC "\","
		"\"size\":3" PLAT("linux", "amd64") "},"
		ENTRY(DD, "") ","
		ENTRY(DB, PLAT("linux", "amd64")));
	assert_int_equal(select_from(j, "linux", "amd64", "", &e), 'b');
	assert_int_equal(select_from(j, "unknown", "unknown", "", &e), 0);
	/* Only image manifests with a platform are listed as offered. */
	assert_non_null(strstr(e.msg, "(offered: linux/amd64)"));

	const char *none = INDEX(
		ENTRY(DA, PLAT("unknown", "unknown")) ","
		"{\"mediaType\":\"" IMG_MT_DOCKER_LIST "\",\"digest\":\"" DC "\",\"size\":3"
		PLAT("linux", "amd64") "}," ENTRY(DD, ""));
	assert_int_equal(select_from(none, "linux", "amd64", "", &e), 0);
	assert_non_null(strstr(e.msg, "(offered: none)"));

	/* Docker manifests in an OCI index are images too. */
	assert_int_equal(select_from(INDEX("{\"mediaType\":\"" IMG_MT_DOCKER_MANIFEST "\","
					   "\"digest\":\"" DC "\",\"size\":3" PLAT("linux", "amd64")
					   "}"), "linux", "amd64", "", &e), 'c');
}

/* ---- config ---------------------------------------------------------- */

static void test_config(void **state)
{
	(void)state;
	const char *j = "{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\","
			"\"created\":\"2024-01-01T00:00:00Z\",\"config\":{\"Env\":[\"PATH=/bin\"],"
			"\"Cmd\":[\"sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DA
			"\",\"" DB "\"]},\"history\":[{\"created_by\":\"x\"}]}";
	struct img_config c;
	struct berth_err e = { 0 };
	assert_int_equal(img_config_parse(j, strlen(j), &c, &e), 0);
	assert_string_equal(c.platform.arch, "arm64");
	assert_string_equal(c.platform.os, "linux");
	assert_string_equal(c.platform.variant, "v8");
	assert_int_equal(c.n_diff_ids, 2);
	assert_string_equal(c.diff_ids[0], DA);
	assert_string_equal(c.diff_ids[1], DB);
	img_config_done(&c);
	assert_null(c.diff_ids);
	assert_int_equal(c.n_diff_ids, 0);
	img_config_done(&c);

	const char *empty = "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
	assert_int_equal(img_config_parse(empty, strlen(empty), &c, &e), 0);
	assert_int_equal(c.n_diff_ids, 0);
	assert_string_equal(c.platform.os, "");
	img_config_done(&c);
}

static void test_config_bad(void **state)
{
	(void)state;
	config_fails("{\"rootfs\":{\"type\":\"layer\",\"diff_ids\":[]}}", -EBADMSG,
		     "rootfs: type \"layer\" is not \"layers\"");
	config_fails("{\"rootfs\":{\"diff_ids\":[]}}", -EBADMSG, "rootfs: missing \"type\"");
	config_fails("{\"rootfs\":{\"type\":\"layers\"}}", -EBADMSG, "missing \"diff_ids\"");
	config_fails("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":\"" DA "\"}}", -EBADMSG,
		     "\"diff_ids\" is not an array");
	config_fails("{\"os\":\"linux\"}", -EBADMSG, "rootfs: missing \"rootfs\"");
	config_fails("{\"rootfs\":[]}", -EBADMSG, "\"rootfs\" is not an object");
	/* A bad digest after good ones: no leak, names the index. */
	config_fails("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DA "\",\"" DB "\","
		     "\"sha256:1234\"]}}", -EINVAL,
		     "rootfs: diff_ids[2]: invalid diff id \"sha256:1234\"");
	config_fails("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DA "\",7]}}", -EINVAL,
		     "diff_ids[1]: invalid diff id");
	config_fails("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DA "\"],"
		     "\"diff_ids\":[]}}", -EBADMSG, "duplicate \"diff_ids\"");
	config_fails("{\"architecture\":7,\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
		     -EBADMSG, "\"architecture\" is not a string");
	config_fails("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}} x", -EBADMSG,
		     "trailing data");
	config_fails("[1]", -EBADMSG, "not a JSON object");
	config_fails("", -EBADMSG, "empty");
}

/* ---- odds and ends --------------------------------------------------- */

static void test_misc(void **state)
{
	(void)state;
	struct img_manifest m = { 0 };
	img_manifest_done(&m);
	img_manifest_done(NULL);
	struct img_config c = { 0 };
	img_config_done(&c);
	img_config_done(NULL);

	/* A NULL err still gets the right code. */
	const char *j = OCI_WITH_LAYER(DESC("application/x", DB, "1"));
	assert_int_equal(img_manifest_parse(j, strlen(j), NULL, &m, NULL), -ENOTSUP);
	assert_int_equal(img_config_parse("{}", 2, &c, NULL), -EBADMSG);
	struct img_platform want = { .os = "linux", .arch = "amd64" };
	const struct img_descriptor *d;
	parse_ok(INDEX(""), NULL, &m);
	assert_int_equal(img_index_select(&m, &want, &d, NULL), -ENOENT);
	img_manifest_done(&m);

	/* The Accept header names all four manifest types. */
	assert_non_null(strstr(img_manifest_accept, IMG_MT_OCI_MANIFEST));
	assert_non_null(strstr(img_manifest_accept, IMG_MT_OCI_INDEX));
	assert_non_null(strstr(img_manifest_accept, IMG_MT_DOCKER_MANIFEST));
	assert_non_null(strstr(img_manifest_accept, IMG_MT_DOCKER_LIST));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oci_manifest),
		cmocka_unit_test(test_docker_manifest),
		cmocka_unit_test(test_oci_index),
		cmocka_unit_test(test_docker_list),
		cmocka_unit_test(test_content_type_contradiction),
		cmocka_unit_test(test_generic_content_type),
		cmocka_unit_test(test_schema1_refused),
		cmocka_unit_test(test_bad_digests),
		cmocka_unit_test(test_bad_sizes),
		cmocka_unit_test(test_layer_types),
		cmocka_unit_test(test_bounded_strings),
		cmocka_unit_test(test_invalid_json),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_host_platform),
		cmocka_unit_test(test_select_exact),
		cmocka_unit_test(test_select_variant),
		cmocka_unit_test(test_select_arm64_v8),
		cmocka_unit_test(test_select_no_match),
		cmocka_unit_test(test_select_skips_non_images),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_config_bad),
		cmocka_unit_test(test_misc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
