/* daemon/sched/units: see units.h. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "common/cleanup.h"
#include "daemon/sched/units.h"

/* ---- cpu and memory strings ---- */

/* "<digits>[.<digits>] [unit]" (or ".<digits>") → the value × MULT for the unit, which
 * must be a whole number.  UNITS is NULL-terminated pairs of a unit word
 * (matched case-insensitively; "" = no unit) and its multiplier. */
struct unit {
	const char *word;
	int64_t mult;
};

static int parse_quantity(const char *s, const struct unit *units, int64_t *ret)
{
	const char *p = s;
	while (*p == ' ')
		p++;
	int64_t ip = 0, frac = 0, scale = 1;
	int nint = 0, nfrac = 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (++nint > 9)
			return -EINVAL;
		ip = ip * 10 + (*p - '0');
	}
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++) {
			if (++nfrac > 6)
				return -EINVAL;
			frac = frac * 10 + (*p - '0');
			scale *= 10;
		}
		if (nfrac == 0)
			return -EINVAL;
	}
	if (nint == 0 && nfrac == 0)
		return -EINVAL;
	while (*p == ' ')
		p++;
	size_t n = strlen(p);
	while (n && p[n - 1] == ' ')
		n--;
	for (const struct unit *u = units; u->word; u++) {
		if (strlen(u->word) != n || strncasecmp(p, u->word, n) != 0)
			continue;
		int64_t v = (ip * scale + frac) * u->mult;
		if (v % scale != 0 || v / scale <= 0)
			return -EINVAL;
		*ret = v / scale;
		return 0;
	}
	return -EINVAL;
}

int units_parse_cpu(const char *s, int64_t *ret)
{
	static const struct unit units[] = { { "", 1 }, { "vcpu", 1024 }, { NULL, 0 } };
	return parse_quantity(s, units, ret);
}

int units_parse_memory(const char *s, int64_t *ret)
{
	static const struct unit units[] = {
		{ "", 1 }, { "mib", 1 }, { "mb", 1 }, { "gb", 1024 }, { "gib", 1024 }, { NULL, 0 },
	};
	return parse_quantity(s, units, ret);
}

bool units_fargate_fits(int64_t cpu, int64_t memory)
{
	/* cpu: memory from, to, step (MiB). */
	static const struct { int64_t cpu, lo, hi, step; } sizes[] = {
		{ 256, 512, 2048, 0 },   /* 512, 1024, 2048: the one irregular row */
		{ 512, 1024, 4096, 1024 },
		{ 1024, 2048, 8192, 1024 },
		{ 2048, 4096, 16384, 1024 },
		{ 4096, 8192, 30720, 1024 },
		{ 8192, 16384, 61440, 4096 },
		{ 16384, 32768, 122880, 8192 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		if (sizes[i].cpu != cpu)
			continue;
		if (cpu == 256)
			return memory == 512 || memory == 1024 || memory == 2048;
		return memory >= sizes[i].lo && memory <= sizes[i].hi &&
		       (memory - sizes[i].lo) % sizes[i].step == 0;
	}
	return false;
}
