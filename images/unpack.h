/* Layer unpacking with libarchive, in process (gzip, zstd or plain tar;
 * never an external decompressor), safe against hostile layers
 * (docs/images.md#safety):
 *  - names are normalised; "..", NUL and over-long names are refused;
 *  - parents are resolved with openat2(RESOLVE_IN_ROOT) so symlinks in
 *    the layer cannot lead outside it; the final component is never
 *    followed;
 *  - hardlinks must name an earlier non-directory entry inside the layer;
 *  - ".wh.NAME" becomes an overlay whiteout (char device 0:0) and
 *    ".wh..wh..opq" sets trusted.overlay.opaque=y on its directory;
 *  - ownership, modes (incl. setuid), mtimes, user.* and
 *    security.capability xattrs are kept; trusted.* from the archive are
 *    dropped.
 * The uncompressed stream is hashed and compared with the config's diff
 * id, so a layer whose content does not match is refused. */
#ifndef BERTH_IMG_UNPACK_H
#define BERTH_IMG_UNPACK_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "images/manifest.h"

/* Unpacks the archive read from blob_fd into the directory dest_dirfd
 * (expected empty).  diff_id may be NULL to skip the check (tests).
 * max_bytes > 0 caps the uncompressed stream: one byte more stops the
 * decompression there (-EFBIG "unpacks to more than N bytes: refused"), so
 * a decompression bomb writes at most that much.  On error the directory
 * holds partial content the caller discards. */
int img_unpack_layer(int blob_fd, enum img_compression comp, int dest_dirfd,
		     const char *diff_id, int64_t max_bytes, struct berth_err *err);

/* Normalises a tar entry name into out: strips leading "/" and "./",
 * folds "//" and "/./", drops a trailing "/".  A name made only of "."
 * and "/" (".", "./" as `tar -C dir .` writes it, "/") names the layer
 * root and becomes "".  Refuses (-EINVAL, with a message naming the
 * entry) the empty name, any ".." component, and names that do not fit
 * in outsz.  Pure; fuzzed. */
int img_tar_name_normalize(const char *in, char *out, size_t outsz, struct berth_err *err);

#endif
