/* FNV-1a, 64 bit: a stable, non-cryptographic hash for names and cache
 * keys that only have to be stable and rarely collide (no libcrypto, which
 * a task agent cannot afford to map). */
#ifndef BERTH_HASH_H
#define BERTH_HASH_H

#include <stddef.h>
#include <stdint.h>

#define BERTH_FNV1A64_INIT UINT64_C(0xcbf29ce484222325)

/* Folds n bytes at p into h (start from BERTH_FNV1A64_INIT). */
static inline uint64_t berth_fnv1a64(uint64_t h, const void *p, size_t n)
{
	for (const unsigned char *c = p; n--; c++)
		h = (h ^ *c) * UINT64_C(0x100000001b3);
	return h;
}

#endif
