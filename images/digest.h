/* Content digests.  Only sha256 is accepted, and a digest is validated as
 * ^sha256:[0-9a-f]{64}$ before it is ever used in a path or a URL. */
#ifndef BERTH_IMG_DIGEST_H
#define BERTH_IMG_DIGEST_H

#include <stdbool.h>

#include "common/err.h"
#include "common/sha256.h"

bool img_digest_valid(const char *d);

/* img_digest_valid() as an error: "invalid digest \"…\"" (names what). */
int img_digest_check(const char *d, const char *what, struct berth_err *err);

/* The 64 hex characters after "sha256:"; d must be valid. */
static inline const char *img_digest_hex(const char *d) { return d + 7; }

/* chain id of a layer stack per the OCI image spec:
 * chain(L0) = diff(L0); chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln)).
 * parent is NULL for the bottom layer.  Returns 0 or -ENOMEM. */
int img_chain_id(const char *parent, const char *diff_id, char out[72]);

#endif
