#include "images/digest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

bool img_digest_valid(const char *d)
{
	if (!d || strncmp(d, "sha256:", 7) != 0)
		return false;
	for (int i = 0; i < 64; i++) {
		char c = d[7 + i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return d[71] == '\0';
}

int img_digest_check(const char *d, const char *what, struct berth_err *err)
{
	if (img_digest_valid(d))
		return 0;
	/* Quote at most a prefix: the text may be hostile and huge. */
	return berth_errf(err, EINVAL, "invalid %s \"%.80s\": want sha256:<64 lowercase hex>",
			  what, d ? d : "");
}

int img_chain_id(const char *parent, const char *diff_id, char out[72])
{
	if (!parent) {
		/* Bounded: diff_id may be shorter than a digest (or alias out). */
		size_t n = strnlen(diff_id, SHA256_DIGEST_STRLEN - 1);
		memmove(out, diff_id, n);
		out[n] = '\0';
		return 0;
	}
	/* Streamed, so overlong input is hashed whole rather than cut short
	 * (or read past a fixed buffer); out may alias parent. */
	struct sha256_ctx c;
	if (sha256_init(&c) < 0)
		return -ENOMEM;
	sha256_update(&c, parent, strlen(parent));
	sha256_update(&c, " ", 1);
	sha256_update(&c, diff_id, strlen(diff_id));
	sha256_final(&c, out);
	return 0;
}
