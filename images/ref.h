/* Image references, parsed with Docker's normalisation rules
 * (distribution/reference): "busybox" is docker.io/library/busybox:latest,
 * a first component with '.' or ':' or equal to "localhost" is a registry
 * host[:port], "@sha256:<64 hex>" pins a digest. */
#ifndef BERTH_IMG_REF_H
#define BERTH_IMG_REF_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/sha256.h"

#define IMG_REF_DOMAIN_MAX 256
#define IMG_REF_PATH_MAX 256
#define IMG_REF_TAG_MAX 129
#define IMG_REF_STR_MAX (IMG_REF_DOMAIN_MAX + IMG_REF_PATH_MAX + IMG_REF_TAG_MAX + SHA256_DIGEST_STRLEN + 4)

struct img_ref {
	char domain[IMG_REF_DOMAIN_MAX]; /* "docker.io", "127.0.0.1:5000" */
	char path[IMG_REF_PATH_MAX];     /* "library/busybox" */
	char tag[IMG_REF_TAG_MAX];       /* "latest"; "" when only a digest was given */
	char digest[SHA256_DIGEST_STRLEN]; /* "" or "sha256:<64 hex>" */
};

/* Parses s.  Errors name the reference and the rule it breaks
 * ("invalid reference \"Foo\": repository name must be lowercase"). */
int img_ref_parse(const char *s, struct img_ref *ret, struct berth_err *err);

/* Canonical text: "docker.io/library/busybox:latest",
 * "127.0.0.1:5000/app@sha256:…", or "host/app:tag@sha256:…". */
void img_ref_format(const struct img_ref *r, char buf[IMG_REF_STR_MAX]);

/* What to ask the registry for: the digest when pinned, else the tag. */
const char *img_ref_reference(const struct img_ref *r);

/* The host[:port] to connect to: docker.io is served by registry-1.docker.io. */
const char *img_ref_registry_host(const struct img_ref *r);

/* True when the registry host is localhost, 127.0.0.0/8 or [::1]: such
 * registries are used only when the operator names them
 * (images/registry.h). */
bool img_ref_is_loopback(const struct img_ref *r);

#endif
