/* images/store_internal: what the content store's files share (store.c:
 * blobs, records, GC; store_layer.c: unpacking a layer into place).  The
 * unpacking lives apart so that a program that only reads the store
 * (berthd resolving a task's image pinned by digest) links neither
 * unpack.c nor libarchive.  Not for use outside images/store*.c. */
#ifndef BERTH_IMG_STORE_INTERNAL_H
#define BERTH_IMG_STORE_INTERNAL_H

#include "common/cleanup.h"
#include "images/store.h"

#define HEX_LEN 64

/* Immutable after img_store_open(), so one store may be shared by threads. */
struct img_store {
	char *root;    /* absolute */
	int rootfd;    /* O_PATH; every path below is resolved from these fds */
	int blobsfd;   /* blobs/sha256 */
	int ingestfd;  /* ingest */
	int layersfd;  /* layers */
};

/* Opens (creating) dirfd/name and flocks it.  Each call opens its own file
 * description, so two threads of one process exclude each other too. */
int img_store_lock_at(int dirfd, const char *name, int op, int *ret, struct berth_err *err);

/* prefix + 16 random hex chars: names no other writer can pick. */
int img_store_random_name(const char *prefix, char *buf, size_t n, struct berth_err *err);

/* 0 when layers/<hex> is a directory, -ENOENT when absent. */
int img_store_layer_present(struct img_store *s, const char *hex, struct berth_err *err);

static inline void img_store_unlockp(int *fd)
{
	img_store_unlock(*fd);
}
#define _cleanup_unlock_ _cleanup_(img_store_unlockp)

#endif
