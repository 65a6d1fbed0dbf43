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
		memmove(out, diff_id, SHA256_DIGEST_STRLEN);
		out[SHA256_DIGEST_STRLEN - 1] = '\0';
		return 0;
	}
	char buf[2 * SHA256_DIGEST_STRLEN];
	int n = snprintf(buf, sizeof(buf), "%s %s", parent, diff_id);
	return sha256_buf(buf, (size_t)n, out);
}
