#include "common/sha256.h"

#include <errno.h>
#include <stdio.h>
#include <openssl/evp.h>

int sha256_init(struct sha256_ctx *c)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		c->md = NULL;
		return -ENOMEM;
	}
	c->md = md;
	return 0;
}

void sha256_update(struct sha256_ctx *c, const void *p, size_t n)
{
	EVP_DigestUpdate(c->md, p, n);
}

void sha256_final(struct sha256_ctx *c, char out[SHA256_DIGEST_STRLEN])
{
	unsigned char raw[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_DigestFinal_ex(c->md, raw, &len);
	sha256_done(c);
	int n = snprintf(out, SHA256_DIGEST_STRLEN, "sha256:");
	for (unsigned int i = 0; i < len && i < 32; i++)
		n += snprintf(out + n, (size_t)(SHA256_DIGEST_STRLEN - n), "%02x", raw[i]);
}

void sha256_done(struct sha256_ctx *c)
{
	EVP_MD_CTX_free(c->md);
	c->md = NULL;
}

int sha256_buf(const void *p, size_t n, char out[SHA256_DIGEST_STRLEN])
{
	struct sha256_ctx c;
	if (sha256_init(&c) < 0)
		return -ENOMEM;
	sha256_update(&c, p, n);
	sha256_final(&c, out);
	return 0;
}
