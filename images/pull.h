/* Pull: reference → registry → verified content store → unpacked layers.
 *
 * Resolves the reference (tag or digest; an index or manifest list picks
 * the wanted platform), stores and verifies manifests and config, then
 * fetches and unpacks up to max_parallel layers at once.  Each layer is
 * downloaded into the store (size + sha256 checked before commit) and
 * unpacked into layers/<chain-id>/ with its diff id checked.  The image
 * record is written last, so an interrupted or failed pull leaves no
 * record; what it did fetch is reused (or resumed) by the next pull.
 *
 * Limits (images/limits.h): every request ends by the pull's deadline and
 * each layer's download by its own; a layer whose manifest size is over
 * max_layer_size is refused before any byte of it is fetched (and the
 * store refuses a body longer than that size); unpacking stops as soon as
 * a layer passes max(max_layer_ratio × its size, 64 MiB) uncompressed
 * bytes, and the partial layer is removed. */
#ifndef BERTH_IMG_PULL_H
#define BERTH_IMG_PULL_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "images/limits.h"
#include "images/manifest.h"
#include "images/registry.h"
#include "images/store.h"

enum img_layer_state {
	IMG_LAYER_WAITING,
	IMG_LAYER_DOWNLOADING,
	IMG_LAYER_UNPACKING,
	IMG_LAYER_DONE,   /* downloaded (or found) and unpacked by this pull */
	IMG_LAYER_EXISTS, /* already unpacked in the store */
	IMG_LAYER_FAILED,
};

struct img_layer_progress {
	char digest[SHA256_DIGEST_STRLEN];
	int64_t size; /* compressed bytes */
	int64_t done; /* bytes downloaded so far (includes a resumed prefix) */
	enum img_layer_state state;
};

/* Called whenever a layer changes state or receives bytes, from the
 * pulling threads but never concurrently.  n is the number of layers;
 * first called once with every layer WAITING. */
typedef void (*img_pull_progress_fn)(void *opaque, const struct img_layer_progress *layers,
				     size_t n);

struct img_pull_opts {
	struct img_registry_opts registry;
	unsigned max_parallel;               /* 0 means 4 */
	const struct img_platform *platform; /* NULL means the host's */
	img_pull_progress_fn progress;       /* may be NULL */
	void *opaque;
	struct img_pull_limits limits;       /* zeros: the defaults */
	/* A record that already says the same (reference, digests, size) is
	 * left as it is, pull time included: a task's pull, which RunTask
	 * repeats for every task, saves rewriting and syncing images.json. */
	bool keep_same_record;
};

/* Pulls ref into s and records it.  On success fills *ret (may be NULL).
 * Errors read "pull <ref>: <cause>", e.g.
 * "pull 127.0.0.1:5000/app:1: layer sha256:ab12…: digest mismatch: …". */
int img_pull(struct img_store *s, const char *ref, const struct img_pull_opts *opts,
	     struct img_record *ret, struct berth_err *err);

#endif
