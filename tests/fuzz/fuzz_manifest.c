/* libFuzzer target: manifest/index parsing, platform choice and config
 * parsing over hostile bytes.  The first byte picks the Content-Type. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "images/digest.h"
#include "images/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const content_types[] = {
	IMG_MT_OCI_MANIFEST, IMG_MT_OCI_INDEX, IMG_MT_DOCKER_MANIFEST, IMG_MT_DOCKER_LIST,
	IMG_MT_OCI_CONFIG, IMG_MT_DOCKER_CONFIG, NULL, "application/json; charset=utf-8",
};

static void check_descriptor(const struct img_descriptor *d)
{
	if (!img_digest_valid(d->digest) || d->size < 0 ||
	    strnlen(d->media_type, sizeof(d->media_type)) == sizeof(d->media_type))
		__builtin_trap();
}

static void select_some(const struct img_manifest *m)
{
	struct img_platform want[4] = {
		{ .os = "linux", .arch = "arm64", .variant = "v8" },
		{ .os = "linux", .arch = "arm" },
		{ .os = "linux", .arch = "amd64", .variant = "v2" },
	};
	img_host_platform(&want[3]);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct img_descriptor *d = NULL;
		struct berth_err err = { 0 };
		int r = img_index_select(m, &want[i], &d, &err);
		if (r == 0 && (d < m->manifests || d >= m->manifests + m->n_manifests))
			__builtin_trap();
		if (r < 0 && (err.code == 0 || strnlen(err.msg, sizeof(err.msg)) == sizeof(err.msg)))
			__builtin_trap();
	}
}

static void fuzz_manifest(const char *buf, size_t len, const char *ct)
{
	struct img_manifest m;
	struct berth_err err = { 0 };
	if (img_manifest_parse(buf, len, ct, &m, &err) < 0) {
		if (err.code == 0)
			__builtin_trap();
		return;
	}
	if (m.kind == IMG_MANIFEST_IMAGE) {
		check_descriptor(&m.config);
		for (size_t i = 0; i < m.n_layers; i++)
			check_descriptor(&m.layers[i]);
	} else {
		for (size_t i = 0; i < m.n_manifests; i++)
			check_descriptor(&m.manifests[i]);
		select_some(&m);
	}
	img_manifest_done(&m);
}

static void fuzz_config(const char *buf, size_t len)
{
	struct img_config c;
	struct berth_err err = { 0 };
	if (img_config_parse(buf, len, &c, &err) < 0)
		return;
	for (size_t i = 0; i < c.n_diff_ids; i++)
		if (!img_digest_valid(c.diff_ids[i]))
			__builtin_trap();
	img_config_done(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *ct = content_types[data[0] % (sizeof(content_types) / sizeof(content_types[0]))];
	const char *buf = (const char *)data + 1;
	fuzz_manifest(buf, size - 1, ct);
	fuzz_config(buf, size - 1);
	return 0;
}
