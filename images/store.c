#include "images/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "images/digest.h"
#include "images/store_internal.h"

/* images.json is ours, but a runaway file must not exhaust memory. */
#define RECORDS_MAX (64u << 20)
#define CHUNK (64u << 10)


/* ---- small helpers ------------------------------------------------------ */

static bool is_hex(const char *s, size_t min, size_t max)
{
	size_t n = strspn(s, "0123456789abcdef");
	return s[n] == '\0' && n >= min && n <= max;
}

/* Opens (creating, 0700) a directory below dirfd as an O_PATH fd. */
static int open_subdir(int dirfd, const char *name, int *ret, struct berth_err *err)
{
	if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return berth_errnof(err, errno, "create %s", name);
	int fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return berth_errnof(err, errno, "open %s", name);
	*ret = fd;
	return 0;
}

int img_store_lock_at(int dirfd, const char *name, int op, int *ret, struct berth_err *err)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return berth_errnof(err, errno, "lock %s", name);
	int r;
	while ((r = flock(fd, op)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return berth_errnof(err, errno, "lock %s", name);
	*ret = TAKE_FD(fd);
	return 0;
}

int img_store_random_name(const char *prefix, char *buf, size_t n, struct berth_err *err)
{
	unsigned char rnd[8];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return berth_errnof(err, errno, "getrandom");
	int len = snprintf(buf, n, "%s", prefix);
	for (size_t i = 0; i < sizeof(rnd) && len > 0 && (size_t)len < n; i++)
		len += snprintf(buf + len, n - (size_t)len, "%02x", rnd[i]);
	return 0;
}

static int blob_stat(struct img_store *s, const char *digest, struct stat *st)
{
	if (fstatat(s->blobsfd, img_digest_hex(digest), st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return S_ISREG(st->st_mode) ? 0 : -EINVAL;
}

static int digest_mismatch(struct berth_err *err, const char *want, const char *got)
{
	return berth_errf(err, EBADMSG, "blob %s: digest mismatch: got %s", want, got);
}

static int size_mismatch(struct berth_err *err, const char *digest, int64_t want, int64_t got,
			 bool at_least)
{
	return berth_errf(err, EBADMSG, "blob %s: size mismatch: expected %lld bytes, got %s%lld",
			  digest, (long long)want, at_least ? "at least " : "", (long long)got);
}

/* ---- open / locks ------------------------------------------------------- */

/* Removes what killed processes left behind: layers/.tmp-* and
 * ingest/.put-*.  Only when no pull, ingest or unpack is running (they
 * all hold store.lock shared), so a live unpack's directory is never
 * touched; otherwise GC collects them later. */
static void remove_stale_tmp(struct img_store *s)
{
	_cleanup_close_ int lockfd = -1;
	if (img_store_lock_at(s->rootfd, "store.lock", LOCK_EX | LOCK_NB, &lockfd, NULL) < 0)
		return;
	const struct { int dirfd; const char *prefix; } dirs[] = {
		{ s->layersfd, ".tmp-" }, { s->ingestfd, ".put-" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		int fd = openat(dirs[i].dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		_cleanup_closedir_ DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		if (!d) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		struct dirent *de;
		while ((de = readdir(d)))
			if (!strncmp(de->d_name, dirs[i].prefix, strlen(dirs[i].prefix)))
				berth_rm_rf_at(dirs[i].dirfd, de->d_name, NULL);
	}
}

void img_store_free(struct img_store *s)
{
	if (!s)
		return;
	closep(&s->rootfd);
	closep(&s->blobsfd);
	closep(&s->ingestfd);
	closep(&s->layersfd);
	free(s->root);
	free(s);
}
DEFINE_CLEANUP_FUNC(struct img_store, img_store_free)

int img_store_open(const char *root, struct img_store **ret, struct berth_err *err)
{
	int r = berth_mkdir_p(root, 0700, err);
	if (r < 0)
		return berth_err_wrap(err, "store %s", root);
	_cleanup_(img_store_freep) struct img_store *s = calloc(1, sizeof(*s));
	if (!s)
		return berth_errf(err, ENOMEM, "store %s: out of memory", root);
	s->rootfd = s->blobsfd = s->ingestfd = s->layersfd = -1;
	s->root = realpath(root, NULL);
	if (!s->root)
		return berth_errnof(err, errno, "store %s", root);
	s->rootfd = open(s->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->rootfd < 0)
		return berth_errnof(err, errno, "store %s", root);
	_cleanup_close_ int blobs = -1;
	if ((r = open_subdir(s->rootfd, "blobs", &blobs, err)) < 0 ||
	    (r = open_subdir(blobs, "sha256", &s->blobsfd, err)) < 0 ||
	    (r = open_subdir(s->rootfd, "ingest", &s->ingestfd, err)) < 0 ||
	    (r = open_subdir(s->rootfd, "layers", &s->layersfd, err)) < 0)
		return berth_err_wrap(err, "store %s", root);
	remove_stale_tmp(s);
	*ret = TAKE_PTR(s);
	return 0;
}

const char *img_store_root(const struct img_store *s)
{
	return s->root;
}

int img_store_lock_shared(struct img_store *s, struct berth_err *err)
{
	int fd;
	int r = img_store_lock_at(s->rootfd, "store.lock", LOCK_SH, &fd, err);
	if (r < 0)
		return berth_err_wrap(err, "store %s", s->root);
	return fd;
}

void img_store_unlock(int lockfd)
{
	if (lockfd < 0)
		return;
	flock(lockfd, LOCK_UN);
	close(lockfd);
}

/* ---- blobs -------------------------------------------------------------- */

bool img_store_has_blob(struct img_store *s, const char *digest)
{
	struct stat st;
	return img_digest_valid(digest) && blob_stat(s, digest, &st) == 0;
}

int img_store_read_blob(struct img_store *s, const char *digest, size_t max, char **ret,
			size_t *ret_len, struct berth_err *err)
{
	int r = img_digest_check(digest, "blob digest", err);
	if (r < 0)
		return r;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	r = berth_read_file_at(s->blobsfd, img_digest_hex(digest), max, &buf, &len, err);
	if (r == -ENOENT)
		return berth_errf(err, ENOENT, "blob %s: not in the store", digest);
	if (r < 0)
		return berth_err_wrap(err, "blob %s", digest);
	/* Re-hashing small blobs is cheap and catches on-disk corruption. */
	char got[SHA256_DIGEST_STRLEN];
	if (sha256_buf(buf, len, got) < 0)
		return berth_errf(err, ENOMEM, "blob %s: out of memory", digest);
	if (strcmp(got, digest))
		return berth_errf(err, EBADMSG, "blob %s: stored content is corrupt (sha256 is %s)",
				  digest, got);
	*ret = TAKE_PTR(buf);
	if (ret_len)
		*ret_len = len;
	return 0;
}

int img_store_open_blob(struct img_store *s, const char *digest, struct berth_err *err)
{
	int r = img_digest_check(digest, "blob digest", err);
	if (r < 0)
		return r;
	int fd = openat(s->blobsfd, img_digest_hex(digest), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return berth_errf(err, ENOENT, "blob %s: not in the store", digest);
	if (fd < 0)
		return berth_errnof(err, errno, "blob %s", digest);
	return fd;
}

/* fd holds the verified content under ingest/tmpname: make it read-only,
 * durable, then visible under its digest. */
static int commit_blob(struct img_store *s, int fd, const char *tmpname, const char *digest,
		       struct berth_err *err)
{
	if (fchmod(fd, 0444) < 0 || fsync(fd) < 0)
		return berth_errnof(err, errno, "blob %s: commit", digest);
	if (renameat(s->ingestfd, tmpname, s->blobsfd, img_digest_hex(digest)) < 0)
		return berth_errnof(err, errno, "blob %s: commit", digest);
	int r = berth_fsync_dir_at(s->blobsfd, ".", err);
	return r < 0 ? berth_err_wrap(err, "blob %s", digest) : 0;
}

static int put_blob_locked(struct img_store *s, const char *digest, const void *buf, size_t len,
			   struct berth_err *err)
{
	char tmp[32];
	int r = img_store_random_name(".put-", tmp, sizeof(tmp), err);
	if (r < 0)
		return berth_err_wrap(err, "blob %s", digest);
	_cleanup_close_ int fd = openat(s->ingestfd, tmp,
					O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return berth_errnof(err, errno, "blob %s: create temp file", digest);
	r = berth_pwrite_all(fd, buf, len, 0);
	if (r < 0)
		r = berth_errnof(err, -r, "blob %s: write", digest);
	else
		r = commit_blob(s, fd, tmp, digest, err);
	if (r < 0)
		unlinkat(s->ingestfd, tmp, 0);
	return r;
}

int img_store_put_blob(struct img_store *s, const char *digest, const void *buf, size_t len,
		       char ret_digest[SHA256_DIGEST_STRLEN], struct berth_err *err)
{
	int r;
	if (digest && (r = img_digest_check(digest, "blob digest", err)) < 0)
		return r;
	char got[SHA256_DIGEST_STRLEN];
	if (sha256_buf(buf, len, got) < 0)
		return berth_errf(err, ENOMEM, "blob: out of memory");
	if (digest && strcmp(got, digest))
		return digest_mismatch(err, digest, got);
	if (!img_store_has_blob(s, got)) {
		_cleanup_unlock_ int lockfd = img_store_lock_shared(s, err);
		if (lockfd < 0)
			return lockfd;
		if ((r = put_blob_locked(s, got, buf, len, err)) < 0)
			return r;
	}
	if (ret_digest)
		memcpy(ret_digest, got, SHA256_DIGEST_STRLEN);
	return 0;
}

/* ---- ingest ------------------------------------------------------------- */

#define INGEST_WRITEBACK_CHUNK (4 << 20)

struct img_ingest {
	const char *digest;
	int fd;                 /* ingest/<hex>.partial */
	int64_t size;           /* expected */
	int64_t written;        /* bytes in the partial file, all hashed */
	bool overflow;          /* the fetch wrote more than size */
	bool bad;               /* verification failed: discard the partial */
	struct sha256_ctx hash; /* over bytes [0, written) */
};

int img_ingest_write(struct img_ingest *w, const void *buf, size_t len, struct berth_err *err)
{
	if (len > (size_t)(w->size - w->written)) {
		w->overflow = true;
		return size_mismatch(err, w->digest, w->size, w->written + (int64_t)len, true);
	}
	int r = berth_pwrite_all(w->fd, buf, len, w->written);
	if (r < 0) {
		/* Part of buf may have landed without being hashed: cut it
		 * off so the file still matches the hash (and can resume). */
		if (ftruncate(w->fd, w->written) < 0)
			w->bad = true;
		return berth_errnof(err, -r, "blob %s: write partial download", w->digest);
	}
	sha256_update(&w->hash, buf, len);
	/* Kick off writeback of each full chunk as it lands, so the fsync
	 * at commit waits for the tail only. */
	if ((w->written + (int64_t)len) / INGEST_WRITEBACK_CHUNK > w->written / INGEST_WRITEBACK_CHUNK)
		sync_file_range(w->fd, w->written / INGEST_WRITEBACK_CHUNK * INGEST_WRITEBACK_CHUNK,
				INGEST_WRITEBACK_CHUNK, SYNC_FILE_RANGE_WRITE);
	w->written += (int64_t)len;
	return 0;
}

int img_ingest_restart(struct img_ingest *w, struct berth_err *err)
{
	if (ftruncate(w->fd, 0) < 0)
		return berth_errnof(err, errno, "blob %s: truncate partial download", w->digest);
	sha256_done(&w->hash);
	if (sha256_init(&w->hash) < 0)
		return berth_errf(err, ENOMEM, "blob %s: out of memory", w->digest);
	w->written = 0;
	w->overflow = w->bad = false;
	return 0;
}

/* Hashes what an earlier attempt left in the partial file, so the fetch
 * continues at its end; a file longer than the blob cannot be right. */
static int ingest_resume(struct img_ingest *w, struct berth_err *err)
{
	struct stat st;
	if (fstat(w->fd, &st) < 0)
		return berth_errnof(err, errno, "blob %s: partial download", w->digest);
	if (st.st_size > w->size)
		return img_ingest_restart(w, err);
	_cleanup_free_ char *buf = malloc(CHUNK);
	if (!buf)
		return berth_errf(err, ENOMEM, "blob %s: out of memory", w->digest);
	while (w->written < st.st_size) {
		ssize_t n = pread(w->fd, buf, CHUNK, w->written);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return berth_errnof(err, errno, "blob %s: read partial download", w->digest);
		if (n == 0)
			break;
		sha256_update(&w->hash, buf, (size_t)n);
		w->written += n;
	}
	return 0;
}

/* Size and digest check after the fetch.  Consumes w->hash. */
static int ingest_verify(struct img_ingest *w, struct berth_err *err)
{
	w->bad = true;
	if (w->overflow || w->written != w->size) {
		sha256_done(&w->hash);
		return size_mismatch(err, w->digest, w->size, w->overflow ? w->size + 1 : w->written,
				     w->overflow);
	}
	char got[SHA256_DIGEST_STRLEN];
	sha256_final(&w->hash, got);
	if (strcmp(got, w->digest))
		return digest_mismatch(err, w->digest, got);
	w->bad = false;
	return 0;
}

/* Resumes, fetches the rest and verifies.  A fetch error (network, disk
 * full) keeps the partial file so the next attempt resumes from it. */
static int ingest_download(struct img_ingest *w, img_fetch_fn fetch, void *opaque,
			   struct berth_err *err)
{
	int r = ingest_resume(w, err);
	if (r < 0)
		return r;
	if (w->written == w->size) {
		/* Complete, but its process died before the commit: use it if
		 * it verifies, else download it again. */
		if (ingest_verify(w, NULL) == 0)
			return 0;
		if ((r = img_ingest_restart(w, err)) < 0)
			return r;
	}
	r = fetch(opaque, w, w->written, err);
	if (r < 0) {
		w->bad = w->bad || w->overflow;
		return r;
	}
	return ingest_verify(w, err);
}

/* Called with the blob's lock held. */
static int ingest_locked(struct img_store *s, const char *digest, int64_t size,
			 img_fetch_fn fetch, void *opaque, struct berth_err *err)
{
	char partial[HEX_LEN + 16];
	snprintf(partial, sizeof(partial), "%s.partial", img_digest_hex(digest));
	struct img_ingest w = { .digest = digest, .size = size };
	w.fd = openat(s->ingestfd, partial, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (w.fd < 0)
		return berth_errnof(err, errno, "blob %s: open partial download", digest);
	int r = sha256_init(&w.hash);
	if (r < 0)
		r = berth_errf(err, ENOMEM, "blob %s: out of memory", digest);
	else
		r = ingest_download(&w, fetch, opaque, err);
	if (r == 0)
		r = commit_blob(s, w.fd, partial, digest, err);
	sha256_done(&w.hash);
	close(w.fd);
	if (r < 0 && w.bad)
		unlinkat(s->ingestfd, partial, 0);
	return r;
}

/* 0 when the blob is committed with the expected size, -ENOENT when not. */
static int blob_present(struct img_store *s, const char *digest, int64_t size,
			struct berth_err *err)
{
	struct stat st;
	int r = blob_stat(s, digest, &st);
	if (r == -ENOENT)
		return r;
	if (r < 0)
		return berth_errnof(err, -r, "blob %s", digest);
	if (st.st_size != size)
		return size_mismatch(err, digest, size, st.st_size, false);
	return 0;
}

int img_store_ingest(struct img_store *s, const char *digest, int64_t size,
		     img_fetch_fn fetch, void *opaque, bool *ret_fetched,
		     struct berth_err *err)
{
	int r = img_digest_check(digest, "blob digest", err);
	if (r < 0)
		return r;
	if (size < 0)
		return berth_errf(err, EINVAL, "blob %s: invalid size %lld", digest, (long long)size);
	bool fetched = false;
	r = blob_present(s, digest, size, err);
	if (r == -ENOENT) {
		/* store.lock keeps GC (which deletes lock files) away while
		 * the blob's lock is held. */
		_cleanup_unlock_ int storelock = img_store_lock_shared(s, err);
		if (storelock < 0)
			return storelock;
		char name[HEX_LEN + 8];
		snprintf(name, sizeof(name), "%s.lock", img_digest_hex(digest));
		_cleanup_unlock_ int lockfd = -1;
		if ((r = img_store_lock_at(s->ingestfd, name, LOCK_EX, &lockfd, err)) < 0)
			return berth_err_wrap(err, "blob %s", digest);
		r = blob_present(s, digest, size, err);
		if (r == -ENOENT) {
			r = ingest_locked(s, digest, size, fetch, opaque, err);
			fetched = r == 0;
		}
	}
	if (r == 0 && ret_fetched)
		*ret_fetched = fetched;
	return r;
}

/* ---- layers ------------------------------------------------------------- */

int img_store_layer_present(struct img_store *s, const char *hex, struct berth_err *err)
{
	struct stat st;
	if (fstatat(s->layersfd, hex, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? -ENOENT : berth_errnof(err, errno, "layers/%s", hex);
	if (!S_ISDIR(st.st_mode))
		return berth_errf(err, ENOTDIR, "layers/%s: not a directory", hex);
	return 0;
}

bool img_store_has_layer(struct img_store *s, const char *chain_id)
{
	return img_digest_valid(chain_id) &&
	       img_store_layer_present(s, img_digest_hex(chain_id), NULL) == 0;
}

int img_store_layer_path(struct img_store *s, const char *chain_id, char *buf, size_t n,
			 struct berth_err *err)
{
	int r = img_digest_check(chain_id, "chain id", err);
	if (r < 0)
		return r;
	if ((size_t)snprintf(buf, n, "%s/layers/%s", s->root, img_digest_hex(chain_id)) >= n)
		return berth_errf(err, ENAMETOOLONG, "layer %s: path too long", chain_id);
	return 0;
}

/* ---- image records (images.json) ---------------------------------------- */

static const struct {
	const char *key;
	size_t off;
	size_t len;
	bool digest;
} rec_strings[] = {
	{ "ref", offsetof(struct img_record, ref), IMG_REF_STR_MAX, false },
	{ "digest", offsetof(struct img_record, digest), SHA256_DIGEST_STRLEN, true },
	{ "manifestDigest", offsetof(struct img_record, manifest_digest), SHA256_DIGEST_STRLEN, true },
	{ "configDigest", offsetof(struct img_record, config_digest), SHA256_DIGEST_STRLEN, true },
};

static int rec_from_json(const cJSON *o, size_t idx, struct img_record *r, struct berth_err *err)
{
	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < ARRAY_SIZE(rec_strings); i++) {
		const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, rec_strings[i].key));
		char *dst = (char *)r + rec_strings[i].off;
		if (!v || !*v || strlen(v) >= rec_strings[i].len ||
		    (rec_strings[i].digest && !img_digest_valid(v)))
			return berth_errf(err, EBADMSG, "images.json: image %zu: bad \"%s\"", idx,
					  rec_strings[i].key);
		strcpy(dst, v);
	}
	const cJSON *size = cJSON_GetObjectItemCaseSensitive(o, "size");
	const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "pulledAt");
	if (!cJSON_IsNumber(size) || !cJSON_IsNumber(at))
		return berth_errf(err, EBADMSG, "images.json: image %zu: bad size or pulledAt", idx);
	r->size = (int64_t)size->valuedouble;
	r->pulled_at = (time_t)at->valuedouble;
	return 0;
}

static int cmp_rec(const void *a, const void *b)
{
	return strcmp(((const struct img_record *)a)->ref, ((const struct img_record *)b)->ref);
}

/* Reads images.json (absent means no records).  The file is replaced
 * atomically, so readers need no lock. */
static int load_records(struct img_store *s, struct img_record **ret, size_t *ret_n,
			struct berth_err *err)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r = berth_read_file_at(s->rootfd, "images.json", RECORDS_MAX, &text, &len, err);
	if (r == -ENOENT) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	if (r < 0)
		return berth_err_wrap(err, "store %s", s->root);
	_cleanup_(cJSON_Deletep) cJSON *doc = cJSON_ParseWithLength(text, len);
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "images");
	if (!cJSON_IsArray(arr))
		return berth_errf(err, EBADMSG, "store %s: images.json is not valid", s->root);
	size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
	_cleanup_free_ struct img_record *recs = calloc(n ? n : 1, sizeof(*recs));
	if (!recs)
		return berth_errf(err, ENOMEM, "store %s: out of memory", s->root);
	const cJSON *o;
	cJSON_ArrayForEach(o, arr) {
		if ((r = rec_from_json(o, i, &recs[i], err)) < 0)
			return berth_err_wrap(err, "store %s", s->root);
		i++;
	}
	if (n)
		qsort(recs, n, sizeof(*recs), cmp_rec);
	*ret = TAKE_PTR(recs);
	*ret_n = n;
	return 0;
}

static cJSON *rec_to_json(const struct img_record *r)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o != NULL;
	for (size_t i = 0; ok && i < ARRAY_SIZE(rec_strings); i++)
		ok = cJSON_AddStringToObject(o, rec_strings[i].key,
					     (const char *)r + rec_strings[i].off) != NULL;
	ok = ok && cJSON_AddNumberToObject(o, "size", (double)r->size) &&
	     cJSON_AddNumberToObject(o, "pulledAt", (double)r->pulled_at);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static int save_records(struct img_store *s, struct img_record *recs, size_t n,
			struct berth_err *err)
{
	if (n)
		qsort(recs, n, sizeof(*recs), cmp_rec);
	_cleanup_(cJSON_Deletep) cJSON *doc = cJSON_CreateObject();
	cJSON *arr = doc ? cJSON_AddArrayToObject(doc, "images") : NULL;
	for (size_t i = 0; arr && i < n; i++) {
		cJSON *o = rec_to_json(&recs[i]);
		if (!o || !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			arr = NULL;
		}
	}
	_cleanup_free_ char *text = arr ? cJSON_Print(doc) : NULL;
	if (!text)
		return berth_errf(err, ENOMEM, "store %s: out of memory", s->root);
	int r = berth_write_atomic_at(s->rootfd, "images.json", text, strlen(text), 0600, err);
	return r < 0 ? berth_err_wrap(err, "store %s", s->root) : 0;
}

/* Read-modify-write of images.json under images.lock: replaces or adds
 * `add`, or removes the record named `remove_ref`. */
static int update_records(struct img_store *s, const struct img_record *add,
			  const char *remove_ref, struct berth_err *err)
{
	_cleanup_unlock_ int lockfd = -1;
	int r = img_store_lock_at(s->rootfd, "images.lock", LOCK_EX, &lockfd, err);
	if (r < 0)
		return berth_err_wrap(err, "store %s", s->root);
	_cleanup_free_ struct img_record *recs = NULL;
	size_t n = 0, i;
	if ((r = load_records(s, &recs, &n, err)) < 0)
		return r;
	const char *ref = add ? add->ref : remove_ref;
	for (i = 0; i < n && strcmp(recs[i].ref, ref); i++)
		;
	if (!add) {
		if (i == n)
			return berth_errf(err, ENOENT, "image %s not found", ref);
		recs[i] = recs[--n];
	} else if (i < n) {
		recs[i] = *add;
	} else {
		struct img_record *grown = realloc(recs, (n + 1) * sizeof(*recs));
		if (!grown)
			return berth_errf(err, ENOMEM, "store %s: out of memory", s->root);
		recs = grown;
		recs[n++] = *add;
	}
	return save_records(s, recs, n, err);
}

int img_store_record(struct img_store *s, const struct img_record *rec, struct berth_err *err)
{
	int r;
	if (!rec->ref[0] || !memchr(rec->ref, '\0', sizeof(rec->ref)))
		return berth_errf(err, EINVAL, "image record: invalid reference");
	if ((r = img_digest_check(rec->digest, "image digest", err)) < 0 ||
	    (r = img_digest_check(rec->manifest_digest, "manifest digest", err)) < 0 ||
	    (r = img_digest_check(rec->config_digest, "config digest", err)) < 0)
		return berth_err_wrap(err, "image %s", rec->ref);
	return update_records(s, rec, NULL, err);
}

int img_store_list(struct img_store *s, struct img_record **ret, size_t *ret_n,
		   struct berth_err *err)
{
	return load_records(s, ret, ret_n, err);
}

/* Unique record whose digest starts with hex (12..64 chars). */
static int find_by_digest(const struct img_record *recs, size_t n, const char *ref,
			  const char *hex, struct img_record *ret, struct berth_err *err)
{
	const struct img_record *found = NULL;
	size_t matches = 0, len = strlen(hex);
	for (size_t i = 0; i < n; i++)
		if (!strncmp(img_digest_hex(recs[i].digest), hex, len)) {
			found = &recs[i];
			matches++;
		}
	if (matches > 1)
		return berth_errf(err, EINVAL, "image %s is ambiguous: it matches %zu images",
				  ref, matches);
	if (!found)
		return berth_errf(err, ENOENT, "image %s not found", ref);
	*ret = *found;
	return 0;
}

int img_store_find(struct img_store *s, const char *ref, struct img_record *ret,
		   struct berth_err *err)
{
	_cleanup_free_ struct img_record *recs = NULL;
	size_t n = 0;
	int r = load_records(s, &recs, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(recs[i].ref, ref)) {
			*ret = recs[i];
			return 0;
		}
	const char *hex = strncmp(ref, "sha256:", 7) ? ref : ref + 7;
	if (!is_hex(hex, 12, HEX_LEN))
		return berth_errf(err, ENOENT, "image %s not found", ref);
	return find_by_digest(recs, n, ref, hex, ret, err);
}

int img_store_remove(struct img_store *s, const char *ref, struct berth_err *err)
{
	return update_records(s, NULL, ref, err);
}

/* ---- garbage collection ------------------------------------------------- */

/* A set of 64-hex names, sorted before lookups. */
struct hexset {
	char (*v)[HEX_LEN + 1];
	size_t n, cap;
};

struct gc {
	struct img_store *s;
	struct hexset blobs;  /* reachable blobs */
	struct hexset layers; /* reachable chain ids */
};

static int hexset_add(struct hexset *h, const char *digest)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 64;
		void *v = realloc(h->v, cap * sizeof(*h->v));
		if (!v)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	memcpy(h->v[h->n++], img_digest_hex(digest), HEX_LEN + 1);
	return 0;
}

static int cmp_hex(const void *a, const void *b)
{
	return memcmp(a, b, HEX_LEN);
}

static bool hexset_has(const struct hexset *h, const char *hex)
{
	return h->n && bsearch(hex, h->v, h->n, sizeof(*h->v), cmp_hex);
}

/* Content problems (a blob deleted by hand or half-removed, a corrupt or
 * unparsable blob) only make an image unreachable; anything else, such as
 * ENOMEM or EIO, could hide references and must stop the sweep. */
static bool gc_read_tolerable(int r)
{
	return r == -ENOENT || r == -EFBIG || r == -EBADMSG;
}

static int gc_mark_config(struct gc *g, const char *digest, struct berth_err *err)
{
	if (hexset_add(&g->blobs, digest) < 0)
		return berth_errf(err, ENOMEM, "gc: out of memory");
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = img_store_read_blob(g->s, digest, IMG_MANIFEST_MAX, &buf, &len, err);
	if (r < 0)
		return gc_read_tolerable(r) ? 0 : r;
	struct img_config cfg = { 0 };
	r = img_config_parse(buf, len, &cfg, err);
	if (r < 0)
		return r == -ENOMEM ? r : 0;
	char chain[2][SHA256_DIGEST_STRLEN];
	for (size_t i = 0; r == 0 && i < cfg.n_diff_ids; i++) {
		r = img_chain_id(i ? chain[(i - 1) % 2] : NULL, cfg.diff_ids[i], chain[i % 2]);
		if (r == 0)
			r = hexset_add(&g->layers, chain[i % 2]);
	}
	img_config_done(&cfg);
	return r < 0 ? berth_errf(err, -r, "gc: config %s: out of memory", digest) : 0;
}

/* Marks a manifest (or, when allowed, an index and those of its children
 * that are in the store) with its config, layer blobs and chain ids. */
static int gc_mark_manifest(struct gc *g, const char *digest, bool allow_index,
			    struct berth_err *err)
{
	if (hexset_add(&g->blobs, digest) < 0)
		return berth_errf(err, ENOMEM, "gc: out of memory");
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = img_store_read_blob(g->s, digest, IMG_MANIFEST_MAX, &buf, &len, err);
	if (r < 0)
		return gc_read_tolerable(r) ? 0 : r;
	struct img_manifest m = { 0 };
	r = img_manifest_parse(buf, len, NULL, &m, err);
	if (r < 0)
		return r == -ENOMEM ? r : 0;
	if (m.kind == IMG_MANIFEST_INDEX && allow_index) {
		for (size_t i = 0; r == 0 && i < m.n_manifests; i++)
			if (img_store_has_blob(g->s, m.manifests[i].digest))
				r = gc_mark_manifest(g, m.manifests[i].digest, false, err);
	} else if (m.kind == IMG_MANIFEST_IMAGE) {
		for (size_t i = 0; r == 0 && i < m.n_layers; i++)
			if (hexset_add(&g->blobs, m.layers[i].digest) < 0)
				r = berth_errf(err, ENOMEM, "gc: out of memory");
		if (r == 0)
			r = gc_mark_config(g, m.config.digest, err);
	}
	img_manifest_done(&m);
	return r;
}

static int gc_mark(struct gc *g, struct berth_err *err)
{
	_cleanup_free_ struct img_record *recs = NULL;
	size_t n = 0;
	int r = load_records(g->s, &recs, &n, err);
	for (size_t i = 0; r == 0 && i < n; i++) {
		/* The record's own manifest and config are marked directly
		 * too, so they survive even when the index is gone. */
		r = gc_mark_manifest(g, recs[i].digest, true, err);
		if (r == 0 && strcmp(recs[i].digest, recs[i].manifest_digest))
			r = gc_mark_manifest(g, recs[i].manifest_digest, false, err);
		if (r == 0)
			r = gc_mark_config(g, recs[i].config_digest, err);
		if (r < 0)
			r = berth_err_wrap(err, "image %s", recs[i].ref);
	}
	if (g->blobs.n)
		qsort(g->blobs.v, g->blobs.n, sizeof(*g->blobs.v), cmp_hex);
	if (g->layers.n)
		qsort(g->layers.v, g->layers.n, sizeof(*g->layers.v), cmp_hex);
	return r;
}

/* Removes the entries of dirfd that `drop` selects; counts the removed
 * ones that `count` selects. */
static int gc_sweep_dir(struct gc *g, int dirfd, const char *what,
			bool (*drop)(const struct gc *, const char *, bool *), size_t *ret_n,
			struct berth_err *err)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_closedir_ DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return berth_errnof(err, errno, "gc: open %s", what);
	}
	struct dirent *de;
	size_t n = 0;
	while ((de = readdir(d))) {
		bool count = false;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !drop(g, de->d_name, &count))
			continue;
		int r = berth_rm_rf_at(dirfd, de->d_name, err);
		if (r < 0)
			return berth_err_wrap(err, "gc: %s", what);
		n += count;
	}
	*ret_n = n;
	return 0;
}

/* blobs/sha256: unreachable blobs; names that are not digests are left. */
static bool gc_drop_blob(const struct gc *g, const char *name, bool *count)
{
	*count = is_hex(name, HEX_LEN, HEX_LEN) && !hexset_has(&g->blobs, name);
	return *count;
}

/* layers: unreachable layers, plus tmp dirs and lock files, which are
 * stale since GC runs with store.lock held exclusively. */
static bool gc_drop_layer(const struct gc *g, const char *name, bool *count)
{
	*count = is_hex(name, HEX_LEN, HEX_LEN) && !hexset_has(&g->layers, name);
	return *count || !strncmp(name, ".tmp-", 5) || !strncmp(name, ".lock-", 6);
}

/* ingest: everything (partials, locks, temp files) is stale here. */
static bool gc_drop_ingest(const struct gc *g, const char *name, bool *count)
{
	(void)g;
	(void)name;
	*count = false;
	return true;
}

int img_store_gc(struct img_store *s, size_t *ret_blobs, size_t *ret_layers,
		 struct berth_err *err)
{
	_cleanup_unlock_ int lockfd = -1;
	int r = img_store_lock_at(s->rootfd, "store.lock", LOCK_EX, &lockfd, err);
	if (r < 0)
		return berth_err_wrap(err, "store %s", s->root);
	struct gc g = { .s = s };
	size_t blobs = 0, layers = 0, ignored = 0;
	r = gc_mark(&g, err);
	if (r == 0)
		r = gc_sweep_dir(&g, s->blobsfd, "blobs", gc_drop_blob, &blobs, err);
	if (r == 0)
		r = gc_sweep_dir(&g, s->layersfd, "layers", gc_drop_layer, &layers, err);
	if (r == 0)
		r = gc_sweep_dir(&g, s->ingestfd, "ingest", gc_drop_ingest, &ignored, err);
	free(g.blobs.v);
	free(g.layers.v);
	if (r < 0)
		return r;
	if (ret_blobs)
		*ret_blobs = blobs;
	if (ret_layers)
		*ret_layers = layers;
	return 0;
}
