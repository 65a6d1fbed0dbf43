/* SHA-256 over OpenSSL's libcrypto, in the "sha256:<hex>" digest form the
 * OCI specs use. */
#ifndef BERTH_SHA256_H
#define BERTH_SHA256_H

#include <stddef.h>

#define SHA256_DIGEST_STRLEN 72 /* "sha256:" + 64 hex + NUL */

struct sha256_ctx {
	void *md; /* EVP_MD_CTX */
};

/* Returns 0 or -ENOMEM. */
int sha256_init(struct sha256_ctx *c);
void sha256_update(struct sha256_ctx *c, const void *p, size_t n);
/* Writes "sha256:<hex>" and releases the context. */
void sha256_final(struct sha256_ctx *c, char out[SHA256_DIGEST_STRLEN]);
/* Releases the context without a result; safe on a zeroed or final'd ctx. */
void sha256_done(struct sha256_ctx *c);
/* One-shot "sha256:<hex>" of a buffer; returns 0 or -ENOMEM. */
int sha256_buf(const void *p, size_t n, char out[SHA256_DIGEST_STRLEN]);

#endif
