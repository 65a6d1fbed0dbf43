/* The content store under --root (directories 0700):
 *
 *   blobs/sha256/<hex>    verified blobs (manifests, configs, layers), 0444
 *   ingest/<hex>.partial  a download in progress (resumable)
 *   ingest/<hex>.lock     flock: one download per blob across threads and
 *                         processes; others wait, then find the blob
 *   ingest/.put-*         img_store_put_blob() temp files
 *   layers/<chain-hex>/   an unpacked layer (an overlayfs lowerdir); it
 *                         exists only once complete (built in
 *                         layers/.tmp-*, synced, renamed)
 *   layers/.lock-<chain-hex>  flock: one unpack per layer
 *   images.json           image records (ref → digests), atomic rewrite
 *   images.lock           flock: serialises updates of images.json
 *   store.lock            flock: pulls, ingests, unpacks and puts hold it
 *                         shared, GC exclusive.  Lock files are never
 *                         removed except by GC (under the exclusive lock),
 *                         since unlinking a held lock file would let a
 *                         second holder in.
 *
 * Every function is safe to call from several threads and processes at
 * once.  Blobs become visible only after their size and sha256 are
 * verified, so a failed or killed download never leaves a bad blob. */
#ifndef BERTH_IMG_STORE_H
#define BERTH_IMG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"
#include "common/sha256.h"
#include "images/manifest.h"
#include "images/ref.h"

struct img_store;

/* Opens (creating 0700 directories as needed) the store at root.
 * Leftover layers/.tmp-* and ingest/.put-* from a killed process are
 * removed here when nobody holds store.lock (else GC removes them). */
int img_store_open(const char *root, struct img_store **ret, struct berth_err *err);
void img_store_free(struct img_store *s);
const char *img_store_root(const struct img_store *s);

/* Shared lock held by a pull for its whole duration so GC cannot remove
 * what it just fetched but has not yet recorded.  Returns an fd to pass to
 * img_store_unlock(). */
int img_store_lock_shared(struct img_store *s, struct berth_err *err);
void img_store_unlock(int lockfd);

bool img_store_has_blob(struct img_store *s, const char *digest);

/* Reads a committed blob of at most max bytes (NUL-terminated heap copy;
 * -EFBIG when larger).  The content is re-hashed: -EBADMSG when the file
 * on disk no longer matches its digest. */
int img_store_read_blob(struct img_store *s, const char *digest, size_t max, char **ret,
			size_t *ret_len, struct berth_err *err);

/* Opens a committed blob read-only (O_CLOEXEC). */
int img_store_open_blob(struct img_store *s, const char *digest, struct berth_err *err);

/* Verifies buf against digest (when digest is NULL it is computed) and
 * commits it atomically; ret_digest (may be NULL) receives the digest.
 * A mismatch is -EBADMSG and commits nothing. */
int img_store_put_blob(struct img_store *s, const char *digest, const void *buf, size_t len,
		       char ret_digest[SHA256_DIGEST_STRLEN], struct berth_err *err);

/* Writer handed to a fetch callback by img_store_ingest().  Bytes are
 * hashed as they are written.  A write that would go past the blob's size
 * fails at once with the size mismatch error; the fetch should return it. */
struct img_ingest;
int img_ingest_write(struct img_ingest *w, const void *buf, size_t len, struct berth_err *err);
/* Drops everything written so far (server ignored a Range request). */
int img_ingest_restart(struct img_ingest *w, struct berth_err *err);

/* Fetches bytes [offset, size) of the blob into w.  offset > 0 means a
 * partial download survived from an earlier, interrupted attempt. */
typedef int (*img_fetch_fn)(void *opaque, struct img_ingest *w, int64_t offset,
			    struct berth_err *err);

/* Makes blob `digest` of `size` bytes present exactly once: returns 0 at
 * once when it is committed; otherwise takes the blob's lock (waiting for
 * another thread or process that is fetching it, after which it is
 * usually there), resumes any partial download, calls fetch, then checks
 * size and sha256 and commits.  On mismatch (-EBADMSG) nothing is
 * committed, the partial file is removed and the error says
 * "blob sha256:…: digest mismatch: got sha256:…" or
 * "blob sha256:…: size mismatch: expected N bytes, got M".  When fetch
 * fails, its error is returned and the partial file is kept, so the next
 * call resumes.  A partial that is already complete (killed before its
 * commit) is committed without calling fetch if it verifies.  A committed
 * blob whose size differs from `size` is a size mismatch.
 * *ret_fetched (may be NULL) tells whether this call committed it. */
int img_store_ingest(struct img_store *s, const char *digest, int64_t size,
		     img_fetch_fn fetch, void *opaque, bool *ret_fetched,
		     struct berth_err *err);

/* Unpacks the blob `blob_digest` (compression as given, must be in the
 * store: -ENOENT otherwise) into layers/<hex of chain_id>/ unless already
 * there, checking the uncompressed tar against diff_id; max_unpacked > 0
 * caps the uncompressed bytes (-EFBIG, see img_unpack_layer()).  Exactly once
 * across threads and processes, like img_store_ingest(); *ret_unpacked
 * (may be NULL) tells whether this call unpacked it.  On failure no
 * layer directory is left. */
int img_store_ensure_layer(struct img_store *s, const char *chain_id, const char *diff_id,
			   const char *blob_digest, enum img_compression comp, int64_t max_unpacked,
			   bool *ret_unpacked, struct berth_err *err);

/* Absolute path of layers/<hex of chain_id> into buf. */
int img_store_layer_path(struct img_store *s, const char *chain_id, char *buf, size_t n,
			 struct berth_err *err);

/* Whether layers/<hex of chain_id> is an unpacked layer (a directory). */
bool img_store_has_layer(struct img_store *s, const char *chain_id);

/* Image records. */
struct img_record {
	char ref[IMG_REF_STR_MAX];                  /* canonical, as img_ref_format() */
	char digest[SHA256_DIGEST_STRLEN];          /* what the tag resolved to (index or manifest) */
	char manifest_digest[SHA256_DIGEST_STRLEN]; /* the platform's image manifest */
	char config_digest[SHA256_DIGEST_STRLEN];
	int64_t size;                               /* sum of compressed layer sizes */
	time_t pulled_at;
};

/* Adds or replaces the record with the same ref. */
int img_store_record(struct img_store *s, const struct img_record *rec, struct berth_err *err);
/* All records, sorted by ref; the caller frees *ret. */
int img_store_list(struct img_store *s, struct img_record **ret, size_t *ret_n,
		   struct berth_err *err);
/* Finds the record for ref (canonical text, or the record digest / a
 * prefix of it of at least 12 hex chars, with or without "sha256:").
 * -ENOENT "image … not found" otherwise; -EINVAL "… is ambiguous" when a
 * prefix matches several records. */
int img_store_find(struct img_store *s, const char *ref, struct img_record *ret,
		   struct berth_err *err);
/* Removes the record; -ENOENT when there is none. */
int img_store_remove(struct img_store *s, const char *ref, struct berth_err *err);

/* Deletes every blob and layer that no image record reaches (record →
 * index → those child manifests present → config + layer blobs; config
 * diff ids → chain ids → layers), and everything in ingest/ plus
 * layers/.tmp-* and lock files (so interrupted downloads start over).
 * Takes store.lock exclusively, so it waits for running pulls.  A record
 * whose blobs are missing or unparsable (a half-deleted image) does not
 * make GC fail: what can still be reached from it is kept.  Errors that
 * could hide references (ENOMEM, EIO, a bad images.json) stop GC before
 * anything is deleted.  *ret_blobs / *ret_layers (may be NULL) count what
 * was deleted. */
int img_store_gc(struct img_store *s, size_t *ret_blobs, size_t *ret_layers,
		 struct berth_err *err);

#endif
