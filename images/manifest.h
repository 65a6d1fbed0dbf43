/* Manifests, indexes and image configs (OCI image-spec v1.1 and Docker
 * schema2).  Pure parsers over byte buffers: no I/O, fuzzable. */
#ifndef BERTH_IMG_MANIFEST_H
#define BERTH_IMG_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/sha256.h"

/* Manifests and configs larger than this are refused before parsing. */
#define IMG_MANIFEST_MAX (4u << 20)

#define IMG_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define IMG_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define IMG_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define IMG_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define IMG_MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define IMG_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"

/* The Accept header for manifest requests: all four manifest types. */
extern const char img_manifest_accept[];

enum img_compression {
	IMG_COMPRESSION_NONE,
	IMG_COMPRESSION_GZIP,
	IMG_COMPRESSION_ZSTD,
};

struct img_platform {
	char os[32];
	char arch[32];
	char variant[32];
};

struct img_descriptor {
	char media_type[128];
	char digest[SHA256_DIGEST_STRLEN]; /* validated */
	int64_t size;                      /* >= 0 */
	struct img_platform platform;      /* index entries only */
	enum img_compression compression;  /* layers only */
};

enum img_manifest_kind {
	IMG_MANIFEST_IMAGE, /* OCI manifest or Docker schema2 */
	IMG_MANIFEST_INDEX, /* OCI index or Docker manifest list */
};

struct img_manifest {
	enum img_manifest_kind kind;
	char media_type[128];
	struct img_descriptor config;     /* IMAGE only */
	struct img_descriptor *layers;    /* IMAGE only, bottom first */
	size_t n_layers;
	struct img_descriptor *manifests; /* INDEX only */
	size_t n_manifests;
};

/* Parses a manifest or index.  content_type is the registry's
 * Content-Type (may be NULL or generic); the body's own mediaType wins
 * when present, and the two must not contradict.  Layer media types other
 * than tar, tar+gzip, tar+zstd (OCI) and tar.gzip (Docker) are refused
 * with an error naming the type.  Free with img_manifest_done(). */
int img_manifest_parse(const char *buf, size_t len, const char *content_type,
		       struct img_manifest *ret, struct berth_err *err);
void img_manifest_done(struct img_manifest *m);

/* Host platform in OCI/Go terms: "amd64", "arm64", "arm" (+variant), … */
void img_host_platform(struct img_platform *ret);

/* Picks the entry of an index that matches want (os and arch equal;
 * variant equal when want has one, preferring an exact variant match).
 * With no match: -ENOENT and an error listing every platform offered
 * ("no matching manifest for linux/amd64 in the manifest list entries
 * (offered: linux/arm64/v8, linux/s390x)"). */
int img_index_select(const struct img_manifest *idx, const struct img_platform *want,
		     const struct img_descriptor **ret, struct berth_err *err);

/* What Berth needs from an image config; the raw JSON stays in the store. */
struct img_config {
	struct img_platform platform;
	char **diff_ids; /* validated sha256 digests, bottom first */
	size_t n_diff_ids;
};

int img_config_parse(const char *buf, size_t len, struct img_config *ret,
		     struct berth_err *err);
void img_config_done(struct img_config *c);

#endif
