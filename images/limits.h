/* What one pull may cost: deadlines and sizes, so that a hostile or
 * broken registry cannot hold a pull (and the task waiting for it)
 * forever or fill the disk (docs/images.md "Limits").
 *
 * The same options are spelled by `berth pull`, `berth task-image` and
 * `berth daemon` (which hands them to its pull helpers).  No libcurl or
 * libarchive here: berthd parses these too. */
#ifndef BERTH_IMG_LIMITS_H
#define BERTH_IMG_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define IMG_DEFAULT_PULL_TIMEOUT_MS (2 * 3600 * 1000LL)   /* as the ECS agent's pull timeout */
#define IMG_DEFAULT_LAYER_TIMEOUT_MS (3600 * 1000LL)
#define IMG_DEFAULT_MAX_LAYER_SIZE (10LL << 30)           /* compressed bytes */
#define IMG_DEFAULT_MAX_LAYER_RATIO 100
/* Any layer may unpack to this much, whatever its ratio: tiny layers
 * (an empty tar is 10 KiB from a few dozen bytes) are never refused. */
#define IMG_LAYER_UNPACKED_FLOOR (64LL << 20)

/* 0 in any member means its default. */
struct img_pull_limits {
	int64_t pull_timeout_ms;   /* the whole pull: manifests, config, layers */
	int64_t layer_timeout_ms;  /* one layer's download */
	int64_t max_layer_size;    /* compressed bytes, as the manifest says */
	int64_t max_layer_ratio;   /* unpacked bytes per compressed byte */
};

/* The options, as `--NAME`: pull-timeout and layer-timeout take a
 * duration ("500ms", "30s", "10m", "2h", "1d"), max-layer-size a size ("512MiB",
 * "10GiB", "1G", plain bytes), max-layer-ratio a whole number. */
#define IMG_LIMIT_OPTS "[--pull-timeout DURATION] [--layer-timeout DURATION] " \
	"[--max-layer-size SIZE] [--max-layer-ratio N]"

/* Sets the limit the option NAME (without "--") names from ARG.  1 when
 * NAME is no limit option; -EINVAL with a message naming the option and
 * the expected form when ARG is not valid. */
int img_limits_set(struct img_pull_limits *l, const char *name, const char *arg,
		   struct berth_err *err);

/* The options that reproduce L's non-default members, as pairs
 * "--NAME", "VALUE" appended to argv at *n (bufs holds the value texts,
 * 4 × 32 bytes). */
void img_limits_argv(const struct img_pull_limits *l, char **argv, size_t *n, char bufs[4][32]);

/* L with its defaults filled in. */
struct img_pull_limits img_limits_resolve(const struct img_pull_limits *l);

#endif
