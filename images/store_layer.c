/* images/store_layer: a layer blob unpacked into layers/<chain hex>, once
 * across threads and processes (img_store_ensure_layer(), store.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "images/digest.h"
#include "images/store_internal.h"
#include "images/unpack.h"

/* Unpacks blobfd into a fresh layers/.tmp-* directory, syncs it and renames
 * it to layers/<hex>: a layer directory exists only once complete. */
static int unpack_into_place(struct img_store *s, int blobfd, enum img_compression comp,
			     int64_t max_unpacked, const char *diff_id, const char *hex,
			     struct berth_err *err)
{
	char tmp[32];
	int r = img_store_random_name(".tmp-", tmp, sizeof(tmp), err);
	if (r < 0)
		return r;
	/* 0755: this becomes the root directory of the container's
	 * filesystem; layers/ itself is 0700, so host users still cannot
	 * reach it. */
	if (mkdirat(s->layersfd, tmp, 0755) < 0)
		return berth_errnof(err, errno, "create layers/%s", tmp);
	_cleanup_close_ int tmpfd = openat(s->layersfd, tmp,
					   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (tmpfd < 0)
		r = berth_errnof(err, errno, "open layers/%s", tmp);
	else
		r = img_unpack_layer(blobfd, comp, tmpfd, diff_id, max_unpacked, err);
	if (r == 0 && syncfs(tmpfd) < 0)
		r = berth_errnof(err, errno, "sync layers/%s", tmp);
	if (r == 0 && renameat2(s->layersfd, tmp, s->layersfd, hex, RENAME_NOREPLACE) < 0)
		r = berth_errnof(err, errno, "rename layers/%s to layers/%s", tmp, hex);
	if (r == 0)
		return berth_fsync_dir_at(s->layersfd, ".", err);
	berth_rm_rf_at(s->layersfd, tmp, NULL);
	return r;
}

static int ensure_layer_locked(struct img_store *s, const char *hex, const char *diff_id,
			       const char *blob_digest, enum img_compression comp,
			       int64_t max_unpacked, struct berth_err *err)
{
	_cleanup_close_ int blobfd = img_store_open_blob(s, blob_digest, err);
	if (blobfd < 0)
		return blobfd;
	return unpack_into_place(s, blobfd, comp, max_unpacked, diff_id, hex, err);
}

int img_store_ensure_layer(struct img_store *s, const char *chain_id, const char *diff_id,
			   const char *blob_digest, enum img_compression comp, int64_t max_unpacked,
			   bool *ret_unpacked, struct berth_err *err)
{
	int r;
	if ((r = img_digest_check(chain_id, "chain id", err)) < 0 ||
	    (r = img_digest_check(diff_id, "diff id", err)) < 0 ||
	    (r = img_digest_check(blob_digest, "layer digest", err)) < 0)
		return r;
	const char *hex = img_digest_hex(chain_id);
	bool unpacked = false;
	r = img_store_layer_present(s, hex, err);
	if (r == -ENOENT) {
		_cleanup_unlock_ int storelock = img_store_lock_shared(s, err);
		if (storelock < 0)
			return storelock;
		char name[HEX_LEN + 8];
		snprintf(name, sizeof(name), ".lock-%s", hex);
		_cleanup_unlock_ int lockfd = -1;
		if ((r = img_store_lock_at(s->layersfd, name, LOCK_EX, &lockfd, err)) < 0)
			return berth_err_wrap(err, "layer %s", chain_id);
		r = img_store_layer_present(s, hex, err);
		if (r == -ENOENT) {
			r = ensure_layer_locked(s, hex, diff_id, blob_digest, comp, max_unpacked, err);
			unpacked = r == 0;
		}
	}
	if (r < 0)
		return berth_err_wrap(err, "layer %s", chain_id);
	if (ret_unpacked)
		*ret_unpacked = unpacked;
	return 0;
}
