/* images/local: the image a reference pinned by digest names, read from the
 * store alone: no registry request, no unpacking.  A digest names its
 * content for good, so a task whose image is pinned and already stored
 * needs nothing from the registry (a tag, by contrast, is asked again on
 * every RunTask: docs/images.md, "A task's image").  berthd calls this in
 * process; it links neither libcurl nor libarchive. */
#ifndef BERTH_IMG_LOCAL_H
#define BERTH_IMG_LOCAL_H

#include <stddef.h>

#include "common/err.h"
#include "common/sha256.h"
#include "images/store.h"

struct img_local {
	char digest[SHA256_DIGEST_STRLEN];  /* the pinned digest (index or manifest) */
	char *config;                       /* the image config, JSON text */
	char **layers;                      /* unpacked layer dirs, bottom first */
	size_t n_layers;
};

/* Fills *ret for REF (repo@sha256:… or repo:tag@sha256:…) when the store
 * holds all of it, checked as a pull leaves it: an image record of that
 * digest, its index (if any), manifest and config blobs present and
 * re-hashed, the config's diff ids matching the manifest's layers, and
 * every layer unpacked.  -EINVAL when REF is not pinned by digest,
 * -ENOENT (or the error found) when something is missing or damaged: the
 * caller then pulls, which repairs it.  Free with img_local_done(). */
int img_local_image(struct img_store *s, const char *ref, struct img_local *ret,
		    struct berth_err *err);
void img_local_done(struct img_local *l);

#endif
