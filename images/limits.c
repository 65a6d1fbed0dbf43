#include "images/limits.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cleanup.h"

struct unit {
	const char *word;
	double mult;
};

static const struct unit durations[] = {
	{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
	{ NULL, 0 },
};

static const struct unit sizes[] = {
	{ "", 1 }, { "B", 1 },
	{ "K", 1024.0 }, { "KiB", 1024.0 }, { "M", 1048576.0 }, { "MiB", 1048576.0 },
	{ "G", 1073741824.0 }, { "GiB", 1073741824.0 },
	{ "T", 1099511627776.0 }, { "TiB", 1099511627776.0 }, { NULL, 0 },
};

static const struct unit plain[] = { { "", 1 }, { NULL, 0 } };

/* "<number><unit>" with a unit of UNITS → a whole value ≥ 1, < 2^53
 * ("1.5s" is 1500 ms; "1.5" bytes is refused, not rounded). */
static int parse_value(const char *s, const struct unit *units, int64_t *ret)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || !(v > 0) || !isfinite(v))
		return -EINVAL;
	for (const struct unit *u = units; u->word; u++) {
		double x = v * u->mult;
		if (strcasecmp(end, u->word) == 0 && x >= 1 && x < 9007199254740992.0 &&
		    x == (double)(int64_t)x) {
			*ret = (int64_t)x;
			return 0;
		}
	}
	return -EINVAL;
}

static const struct {
	const char *flag;
	size_t offset;
	const struct unit *units;
	const char *form;
} opts[] = {
	{ "--pull-timeout", offsetof(struct img_pull_limits, pull_timeout_ms), durations,
	  "a duration such as 90s, 30m or 2h" },
	{ "--layer-timeout", offsetof(struct img_pull_limits, layer_timeout_ms), durations,
	  "a duration such as 90s, 30m or 2h" },
	{ "--max-layer-size", offsetof(struct img_pull_limits, max_layer_size), sizes,
	  "a size such as 512MiB or 10GiB" },
	{ "--max-layer-ratio", offsetof(struct img_pull_limits, max_layer_ratio), plain,
	  "a whole number of at least 1" },
};

int img_limits_set(struct img_pull_limits *l, const char *name, const char *arg,
		   struct berth_err *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
		if (strcmp(name, opts[i].flag + 2) != 0)
			continue;
		int64_t *dst = (int64_t *)((char *)l + opts[i].offset);
		if (parse_value(arg, opts[i].units, dst) < 0)
			return berth_errf(err, EINVAL, "--%s %.64s: expected %s", name, arg,
					  opts[i].form);
		return 0;
	}
	return 1;
}

void img_limits_argv(const struct img_pull_limits *l, char **argv, size_t *n, char bufs[4][32])
{
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
		int64_t v = *(const int64_t *)((const char *)l + opts[i].offset);
		if (!v)
			continue;
		snprintf(bufs[i], 32, "%" PRId64 "%s", v, opts[i].units == durations ? "ms" : "");
		argv[(*n)++] = (char *)opts[i].flag;
		argv[(*n)++] = bufs[i];
	}
}

struct img_pull_limits img_limits_resolve(const struct img_pull_limits *l)
{
	struct img_pull_limits r = l ? *l : (struct img_pull_limits){ 0 };
	if (!r.pull_timeout_ms)
		r.pull_timeout_ms = IMG_DEFAULT_PULL_TIMEOUT_MS;
	if (!r.layer_timeout_ms)
		r.layer_timeout_ms = IMG_DEFAULT_LAYER_TIMEOUT_MS;
	if (!r.max_layer_size)
		r.max_layer_size = IMG_DEFAULT_MAX_LAYER_SIZE;
	if (!r.max_layer_ratio)
		r.max_layer_ratio = IMG_DEFAULT_MAX_LAYER_RATIO;
	return r;
}
