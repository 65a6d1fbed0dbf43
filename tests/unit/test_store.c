/* images/store: blobs, resumable ingest, once-only work across threads and
 * processes, layers, image records and garbage collection. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/sha256.h"
#include "images/digest.h"
#include "images/local.h"
#include "images/store.h"

#define BLOB_LEN (200u << 10)

struct fixture {
	char dir[64];
	struct img_store *s;
	char *data; /* BLOB_LEN pseudo-random bytes */
	char digest[SHA256_DIGEST_STRLEN];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	strcpy(f->dir, "/tmp/berth-test-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	struct berth_err err = { 0 };
	assert_int_equal(img_store_open(f->dir, &f->s, &err), 0);
	f->data = malloc(BLOB_LEN);
	assert_non_null(f->data);
	unsigned x = 12345;
	for (size_t i = 0; i < BLOB_LEN; i++) {
		x = x * 1103515245u + 12345u;
		f->data[i] = (char)(x >> 16);
	}
	assert_int_equal(sha256_buf(f->data, BLOB_LEN, f->digest), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	img_store_free(f->s);
	assert_int_equal(berth_rm_rf_at(AT_FDCWD, f->dir, NULL), 0);
	free(f->data);
	free(f);
	return 0;
}

/* Number of entries in root/sub, "." and ".." excluded. */
static size_t count_entries(const struct fixture *f, const char *sub)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", f->dir, sub);
	_cleanup_closedir_ DIR *d = opendir(path);
	assert_non_null(d);
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	return n;
}

static bool exists(const struct fixture *f, const char *sub, const char *name)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s/%s", f->dir, sub, name);
	return lstat(path, &st) == 0;
}

/* ---- a scripted blob source --------------------------------------------- */

struct source {
	const char *data;
	size_t len;
	size_t fail_at;      /* > 0: write up to here, then fail like a dropped connection */
	bool ignore_range;   /* like a server that answers 200 to a Range request */
	unsigned delay_us;   /* between chunks, to keep concurrent callers waiting */
	int64_t offset;      /* what the store asked for */
	atomic_int *calls;
};

static int fetch(void *opaque, struct img_ingest *w, int64_t offset, struct berth_err *err)
{
	struct source *src = opaque;
	atomic_fetch_add(src->calls, 1);
	src->offset = offset;
	size_t pos = (size_t)offset;
	if (src->ignore_range && offset > 0) {
		int r = img_ingest_restart(w, err);
		if (r < 0)
			return r;
		pos = 0;
	}
	while (pos < src->len) {
		size_t n = src->len - pos < 10000 ? src->len - pos : 10000;
		if (src->fail_at && pos + n > src->fail_at)
			n = src->fail_at - pos;
		int r = img_ingest_write(w, src->data + pos, n, err);
		if (r < 0)
			return r;
		pos += n;
		if (src->fail_at && pos == src->fail_at)
			return berth_errf(err, ECONNRESET, "connection reset by peer");
		if (src->delay_us)
			usleep(src->delay_us);
	}
	return 0;
}

/* ---- blobs --------------------------------------------------------------- */

static void test_put_read_open_blob(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	char got[SHA256_DIGEST_STRLEN];
	assert_false(img_store_has_blob(f->s, f->digest));
	assert_int_equal(img_store_put_blob(f->s, NULL, f->data, BLOB_LEN, got, &err), 0);
	assert_string_equal(got, f->digest);
	assert_true(img_store_has_blob(f->s, f->digest));
	/* Idempotent, with the digest given this time. */
	assert_int_equal(img_store_put_blob(f->s, f->digest, f->data, BLOB_LEN, NULL, &err), 0);

	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	assert_int_equal(img_store_read_blob(f->s, f->digest, BLOB_LEN, &buf, &len, &err), 0);
	assert_int_equal(len, BLOB_LEN);
	assert_memory_equal(buf, f->data, BLOB_LEN);
	assert_int_equal(img_store_read_blob(f->s, f->digest, 100, &buf, &len, &err), -EFBIG);

	_cleanup_close_ int fd = img_store_open_blob(f->s, f->digest, &err);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, BLOB_LEN);
	assert_int_equal(st.st_mode & 07777, 0444);
	assert_int_equal(count_entries(f, "ingest"), 0);
}

static void test_put_wrong_digest_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	assert_int_equal(img_store_put_blob(f->s, f->digest, "other", 5, NULL, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "digest mismatch: got sha256:"));
	assert_false(img_store_has_blob(f->s, f->digest));
	assert_int_equal(count_entries(f, "blobs/sha256"), 0);
	assert_int_equal(count_entries(f, "ingest"), 0);
	/* Invalid digests never reach a path. */
	assert_int_equal(img_store_put_blob(f->s, "sha256:../../etc", "x", 1, NULL, &err), -EINVAL);
	assert_int_equal(img_store_open_blob(f->s, "sha256:../x", &err), -EINVAL);
	char *buf = NULL;
	assert_int_equal(img_store_read_blob(f->s, f->digest, 10, &buf, NULL, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "not in the store"));
}

/* ---- ingest -------------------------------------------------------------- */

static void test_ingest_success(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	atomic_int calls = 0;
	struct source src = { .data = f->data, .len = BLOB_LEN, .calls = &calls };
	bool fetched = false;
	assert_int_equal(img_store_ingest(f->s, f->digest, BLOB_LEN, fetch, &src, &fetched, &err), 0);
	assert_true(fetched);
	assert_int_equal(src.offset, 0);
	assert_true(img_store_has_blob(f->s, f->digest));
	/* Second time: already there, no fetch. */
	assert_int_equal(img_store_ingest(f->s, f->digest, BLOB_LEN, fetch, &src, &fetched, &err), 0);
	assert_false(fetched);
	assert_int_equal(calls, 1);
	char partial[128];
	snprintf(partial, sizeof(partial), "%s.partial", img_digest_hex(f->digest));
	assert_false(exists(f, "ingest", partial));
	/* A descriptor whose size disagrees with the stored blob is refused. */
	assert_int_equal(img_store_ingest(f->s, f->digest, 10, fetch, &src, NULL, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "size mismatch"));
}

static void test_ingest_digest_mismatch(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	atomic_int calls = 0;
	char *evil = malloc(BLOB_LEN);
	assert_non_null(evil);
	memcpy(evil, f->data, BLOB_LEN);
	evil[BLOB_LEN / 2] ^= 1;
	struct source src = { .data = evil, .len = BLOB_LEN, .calls = &calls };
	int r = img_store_ingest(f->s, f->digest, BLOB_LEN, fetch, &src, NULL, &err);
	free(evil);
	assert_int_equal(r, -EBADMSG);
	char want[256];
	snprintf(want, sizeof(want), "blob %s: digest mismatch: got sha256:", f->digest);
	assert_non_null(strstr(err.msg, want));
	assert_false(img_store_has_blob(f->s, f->digest));
	assert_int_equal(count_entries(f, "blobs/sha256"), 0);
	/* Only the lock file is left in ingest/, no partial. */
	assert_int_equal(count_entries(f, "ingest"), 1);
}

static void test_ingest_size_errors(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	atomic_int calls = 0;
	char small[SHA256_DIGEST_STRLEN];
	assert_int_equal(sha256_buf(f->data, 1000, small), 0);
	/* The server sends more than the descriptor's size: stop early. */
	struct source src = { .data = f->data, .len = BLOB_LEN, .calls = &calls };
	assert_int_equal(img_store_ingest(f->s, small, 1000, fetch, &src, NULL, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "size mismatch: expected 1000 bytes, got at least"));
	/* ... or less. */
	src.len = 500;
	assert_int_equal(img_store_ingest(f->s, small, 1000, fetch, &src, NULL, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "size mismatch: expected 1000 bytes, got 500"));
	assert_false(img_store_has_blob(f->s, small));
	assert_int_equal(count_entries(f, "ingest"), 1); /* the lock only */
}

static void test_ingest_resume(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	atomic_int calls = 0;
	struct source src = { .data = f->data, .len = BLOB_LEN, .fail_at = 150000, .calls = &calls };
	assert_int_equal(img_store_ingest(f->s, f->digest, BLOB_LEN, fetch, &src, NULL, &err),
			 -ECONNRESET);
	assert_false(img_store_has_blob(f->s, f->digest));
	char partial[128];
	snprintf(partial, sizeof(partial), "%s/ingest/%s.partial", f->dir, img_digest_hex(f->digest));
	struct stat st;
	assert_int_equal(stat(partial, &st), 0);
	assert_int_equal(st.st_size, 150000);

	src.fail_at = 0;
	bool fetched = false;
	assert_int_equal(img_store_ingest(f->s, f->digest, BLOB_LEN, fetch, &src, &fetched, &err), 0);
	assert_true(fetched);
	assert_int_equal(src.offset, 150000);
	assert_int_equal(calls, 2);
	_cleanup_free_ char *buf = NULL;
	assert_int_equal(img_store_read_blob(f->s, f->digest, BLOB_LEN, &buf, NULL, &err), 0);
	assert_memory_equal(buf, f->data, BLOB_LEN);
	assert_int_not_equal(stat(partial, &st), 0);
}

static void test_ingest_restart_when_range_ignored(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	atomic_int calls = 0;
	struct source src = { .data = f->data, .len = BLOB_LEN, .fail_at = 70000, .calls = &calls };
	assert_int_equal(img_store_ingest(f->s, f->digest, BLOB_LEN, fetch, &src, NULL, &err),
			 -ECONNRESET);
	src.fail_at = 0;
	src.ignore_range = true;
	assert_int_equal(img_store_ingest(f->s, f->digest, BLOB_LEN, fetch, &src, NULL, &err), 0);
	assert_int_equal(src.offset, 70000);
	assert_true(img_store_has_blob(f->s, f->digest));
}

static void test_ingest_complete_partial_is_committed(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	/* A download that finished but whose process died before the commit. */
	char name[128];
	snprintf(name, sizeof(name), "%s.partial", img_digest_hex(f->digest));
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/ingest", f->dir);
	_cleanup_close_ int ingest = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(berth_write_atomic_at(ingest, name, f->data, BLOB_LEN, 0600, &err), 0);
	atomic_int calls = 0;
	struct source src = { .data = f->data, .len = BLOB_LEN, .calls = &calls };
	assert_int_equal(img_store_ingest(f->s, f->digest, BLOB_LEN, fetch, &src, NULL, &err), 0);
	assert_int_equal(calls, 0);
	assert_true(img_store_has_blob(f->s, f->digest));
}

struct ingest_job {
	struct fixture *f;
	atomic_int *calls;
	int ret;
	bool fetched;
};

static void *ingest_thread(void *arg)
{
	struct ingest_job *j = arg;
	struct source src = { .data = j->f->data, .len = BLOB_LEN, .delay_us = 2000, .calls = j->calls };
	j->ret = img_store_ingest(j->f->s, j->f->digest, BLOB_LEN, fetch, &src, &j->fetched, NULL);
	return NULL;
}

static void test_ingest_threads_fetch_once(void **state)
{
	struct fixture *f = *state;
	atomic_int calls = 0;
	struct ingest_job jobs[4];
	pthread_t t[4];
	for (size_t i = 0; i < 4; i++) {
		jobs[i] = (struct ingest_job){ .f = f, .calls = &calls, .ret = -1 };
		assert_int_equal(pthread_create(&t[i], NULL, ingest_thread, &jobs[i]), 0);
	}
	int fetched = 0;
	for (size_t i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(jobs[i].ret, 0);
		fetched += jobs[i].fetched;
	}
	assert_int_equal(calls, 1);
	assert_int_equal(fetched, 1);
	assert_true(img_store_has_blob(f->s, f->digest));
}

static void test_ingest_processes_fetch_once(void **state)
{
	struct fixture *f = *state;
	atomic_int *calls = mmap(NULL, sizeof(*calls), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(calls != MAP_FAILED);
	atomic_init(calls, 0);
	pid_t pids[3];
	for (size_t i = 0; i < 3; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			/* A separate process with its own store handle. */
			struct img_store *s = NULL;
			struct source src = { .data = f->data, .len = BLOB_LEN, .delay_us = 2000,
					      .calls = calls };
			int r = img_store_open(f->dir, &s, NULL);
			if (r == 0)
				r = img_store_ingest(s, f->digest, BLOB_LEN, fetch, &src, NULL, NULL);
			img_store_free(s);
			_exit(r == 0 ? 0 : 1);
		}
	}
	for (size_t i = 0; i < 3; i++) {
		int status;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	assert_int_equal(atomic_load(calls), 1);
	assert_true(img_store_has_blob(f->s, f->digest));
	munmap(calls, sizeof(*calls));
}

/* ---- layers -------------------------------------------------------------- */

/* A one-file ustar archive built with libarchive; returns its length. */
static size_t make_tar(char *buf, size_t cap, const char *name, const char *content)
{
	struct archive *a = archive_write_new();
	assert_non_null(a);
	size_t used = 0;
	assert_int_equal(archive_write_set_format_ustar(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)strlen(content));
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	assert_int_equal(archive_write_data(a, content, strlen(content)), (la_ssize_t)strlen(content));
	archive_entry_free(e);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return used;
}

/* Stores a one-file layer; its digest is also its diff id and chain id. */
static void put_layer(struct fixture *f, const char *content, char digest[SHA256_DIGEST_STRLEN])
{
	static char tar[16384];
	size_t len = make_tar(tar, sizeof(tar), "hello.txt", content);
	struct berth_err err = { 0 };
	assert_int_equal(img_store_put_blob(f->s, NULL, tar, len, digest, &err), 0);
}

static void assert_layer_file(struct fixture *f, const char *chain, const char *content)
{
	char path[4096];
	assert_int_equal(img_store_layer_path(f->s, chain, path, sizeof(path), NULL), 0);
	strcat(path, "/hello.txt");
	_cleanup_free_ char *got = NULL;
	assert_int_equal(berth_read_file_at(AT_FDCWD, path, 1024, &got, NULL, NULL), 0);
	assert_string_equal(got, content);
}

static void test_layer_once(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	char d[SHA256_DIGEST_STRLEN];
	put_layer(f, "hello\n", d);
	bool unpacked = false;
	assert_int_equal(img_store_ensure_layer(f->s, d, d, d, IMG_COMPRESSION_NONE, 0, &unpacked,
						&err), 0);
	assert_true(unpacked);
	assert_layer_file(f, d, "hello\n");
	assert_int_equal(img_store_ensure_layer(f->s, d, d, d, IMG_COMPRESSION_NONE, 0, &unpacked,
						&err), 0);
	assert_false(unpacked);

	/* A wrong diff id is refused and leaves no layer or temp dir. */
	char other[SHA256_DIGEST_STRLEN], chain[SHA256_DIGEST_STRLEN];
	put_layer(f, "other\n", other);
	assert_int_equal(img_chain_id(d, other, chain), 0);
	assert_int_not_equal(img_store_ensure_layer(f->s, chain, d, other, IMG_COMPRESSION_NONE,
						    0, NULL, &err), 0);
	assert_false(exists(f, "layers", img_digest_hex(chain)));
	/* layers/: the one layer and two lock files. */
	assert_int_equal(count_entries(f, "layers"), 3);
	/* A missing blob is an error naming it. */
	assert_int_equal(img_store_ensure_layer(f->s, chain, f->digest, f->digest,
						IMG_COMPRESSION_NONE, 0, NULL, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "not in the store"));
}

struct layer_job {
	struct fixture *f;
	const char *digest;
	int ret;
	bool unpacked;
};

static void *layer_thread(void *arg)
{
	struct layer_job *j = arg;
	j->ret = img_store_ensure_layer(j->f->s, j->digest, j->digest, j->digest,
					IMG_COMPRESSION_NONE, 0, &j->unpacked, NULL);
	return NULL;
}

static void test_layer_concurrent_once(void **state)
{
	struct fixture *f = *state;
	char d[SHA256_DIGEST_STRLEN];
	put_layer(f, "concurrent\n", d);
	struct layer_job jobs[4];
	pthread_t t[4];
	for (size_t i = 0; i < 4; i++) {
		jobs[i] = (struct layer_job){ .f = f, .digest = d, .ret = -1 };
		assert_int_equal(pthread_create(&t[i], NULL, layer_thread, &jobs[i]), 0);
	}
	int unpacked = 0;
	for (size_t i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(jobs[i].ret, 0);
		unpacked += jobs[i].unpacked;
	}
	assert_int_equal(unpacked, 1);
	assert_layer_file(f, d, "concurrent\n");
}

static void test_open_removes_stale_tmp(void **state)
{
	struct fixture *f = *state;
	char path[256];
	snprintf(path, sizeof(path), "%s/layers/.tmp-0123456789abcdef", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	/* Not while someone holds the store (it may be a live unpack) ... */
	int lockfd = img_store_lock_shared(f->s, NULL);
	assert_true(lockfd >= 0);
	struct img_store *s2 = NULL;
	assert_int_equal(img_store_open(f->dir, &s2, NULL), 0);
	img_store_free(s2);
	assert_true(exists(f, "layers", ".tmp-0123456789abcdef"));
	img_store_unlock(lockfd);
	/* ... but once nobody does. */
	assert_int_equal(img_store_open(f->dir, &s2, NULL), 0);
	img_store_free(s2);
	assert_false(exists(f, "layers", ".tmp-0123456789abcdef"));
}

/* ---- records ------------------------------------------------------------- */

static struct img_record make_record(const char *ref, char c)
{
	struct img_record r = { .size = 42, .pulled_at = 1700000000 };
	snprintf(r.ref, sizeof(r.ref), "%s", ref);
	char hex[65];
	memset(hex, c, 64);
	hex[64] = '\0';
	snprintf(r.digest, sizeof(r.digest), "sha256:%s", hex);
	snprintf(r.manifest_digest, sizeof(r.manifest_digest), "sha256:%s", hex);
	snprintf(r.config_digest, sizeof(r.config_digest), "sha256:%s", hex);
	return r;
}

static void test_records(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	struct img_record a = make_record("docker.io/library/b:1", 'a');
	struct img_record b = make_record("docker.io/library/a:1", 'b');
	struct img_record c = make_record("127.0.0.1:5000/app:1", 'c');
	c.digest[20] = 'd'; /* shares a 12-hex prefix with a */
	memcpy(c.digest + 7, a.digest + 7, 12);
	assert_int_equal(img_store_record(f->s, &a, &err), 0);
	assert_int_equal(img_store_record(f->s, &b, &err), 0);
	assert_int_equal(img_store_record(f->s, &c, &err), 0);
	b.size = 99;
	assert_int_equal(img_store_record(f->s, &b, &err), 0); /* replaces */

	_cleanup_free_ struct img_record *list = NULL;
	size_t n = 0;
	assert_int_equal(img_store_list(f->s, &list, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(list[0].ref, c.ref);
	assert_string_equal(list[1].ref, b.ref);
	assert_int_equal(list[1].size, 99);
	assert_int_equal(list[1].pulled_at, 1700000000);
	assert_string_equal(list[2].ref, a.ref);

	struct img_record got;
	assert_int_equal(img_store_find(f->s, b.ref, &got, &err), 0);
	assert_string_equal(got.digest, b.digest);
	assert_int_equal(img_store_find(f->s, "bbbbbbbbbbbb", &got, &err), 0);
	assert_string_equal(got.ref, b.ref);
	assert_int_equal(img_store_find(f->s, c.digest, &got, &err), 0);
	assert_string_equal(got.ref, c.ref);
	assert_int_equal(img_store_find(f->s, "sha256:aaaaaaaaaaaaa", &got, &err), 0);
	assert_string_equal(got.ref, a.ref);
	assert_int_equal(img_store_find(f->s, "aaaaaaaaaaaa", &got, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "ambiguous"));
	assert_int_equal(img_store_find(f->s, "bbbbbbbbbbb", &got, &err), -ENOENT); /* 11 hex */
	assert_int_equal(img_store_find(f->s, "docker.io/library/zz:1", &got, &err), -ENOENT);
	assert_string_equal(err.msg, "image docker.io/library/zz:1 not found");

	assert_int_equal(img_store_remove(f->s, b.ref, &err), 0);
	assert_int_equal(img_store_remove(f->s, b.ref, &err), -ENOENT);
	assert_int_equal(img_store_find(f->s, b.ref, &got, &err), -ENOENT);
	struct img_record bad = make_record("x", 'a');
	strcpy(bad.config_digest, "sha256:nothex");
	assert_int_equal(img_store_record(f->s, &bad, &err), -EINVAL);
}

/* ---- garbage collection -------------------------------------------------- */

struct image {
	char layer[SHA256_DIGEST_STRLEN];
	char config[SHA256_DIGEST_STRLEN];
	char manifest[SHA256_DIGEST_STRLEN];
	char index[SHA256_DIGEST_STRLEN];
};

static void put_json(struct fixture *f, char digest[SHA256_DIGEST_STRLEN], const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void put_json(struct fixture *f, char digest[SHA256_DIGEST_STRLEN], const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(buf));
	assert_int_equal(img_store_put_blob(f->s, NULL, buf, (size_t)n, digest, NULL), 0);
}

/* A one-layer image behind an index, pulled and recorded as ref. */
static void make_image(struct fixture *f, const char *ref, const char *content, struct image *im)
{
	put_layer(f, content, im->layer);
	assert_int_equal(img_store_ensure_layer(f->s, im->layer, im->layer, im->layer,
						IMG_COMPRESSION_NONE, 0, NULL, NULL), 0);
	put_json(f, im->config, "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},"
		 "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}", im->layer);
	put_json(f, im->manifest, "{\"schemaVersion\":2,\"mediaType\":\"%s\","
		 "\"config\":{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":1},"
		 "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
		 "\"digest\":\"%s\",\"size\":1}]}", IMG_MT_OCI_MANIFEST, IMG_MT_OCI_CONFIG,
		 im->config, im->layer);
	put_json(f, im->index, "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":"
		 "[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":1,"
		 "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}",
		 IMG_MT_OCI_INDEX, IMG_MT_OCI_MANIFEST, im->manifest);
	struct img_record rec = { .size = 1, .pulled_at = time(NULL) };
	snprintf(rec.ref, sizeof(rec.ref), "%s", ref);
	strcpy(rec.digest, im->index);
	strcpy(rec.manifest_digest, im->manifest);
	strcpy(rec.config_digest, im->config);
	assert_int_equal(img_store_record(f->s, &rec, NULL), 0);
}

static void assert_image_present(struct fixture *f, const struct image *im, bool present)
{
	assert_int_equal(img_store_has_blob(f->s, im->layer), present);
	assert_int_equal(img_store_has_blob(f->s, im->config), present);
	assert_int_equal(img_store_has_blob(f->s, im->manifest), present);
	assert_int_equal(img_store_has_blob(f->s, im->index), present);
	assert_int_equal(exists(f, "layers", img_digest_hex(im->layer)), present);
}

static void test_gc(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	struct image one, two;
	make_image(f, "127.0.0.1:5000/one:1", "one\n", &one);
	make_image(f, "127.0.0.1:5000/two:1", "two\n", &two);
	/* Garbage: a stray blob, a stray layer, a stale partial and tmp dir. */
	char stray[SHA256_DIGEST_STRLEN];
	assert_int_equal(img_store_put_blob(f->s, NULL, "stray", 5, stray, &err), 0);
	char layer[SHA256_DIGEST_STRLEN];
	put_layer(f, "stray layer\n", layer);
	assert_int_equal(img_store_ensure_layer(f->s, layer, layer, layer, IMG_COMPRESSION_NONE,
						0, NULL, &err), 0);
	atomic_int calls = 0;
	struct source src = { .data = f->data, .len = BLOB_LEN, .fail_at = 1000, .calls = &calls };
	assert_int_equal(img_store_ingest(f->s, f->digest, BLOB_LEN, fetch, &src, NULL, &err),
			 -ECONNRESET);
	char tmp[256];
	snprintf(tmp, sizeof(tmp), "%s/layers/.tmp-feedfacefeedface", f->dir);
	assert_int_equal(mkdir(tmp, 0700), 0);

	size_t blobs = 99, layers = 99;
	assert_int_equal(img_store_gc(f->s, &blobs, &layers, &err), 0);
	assert_int_equal(blobs, 2); /* stray + the stray layer's blob */
	assert_int_equal(layers, 1);
	assert_image_present(f, &one, true);
	assert_image_present(f, &two, true);
	assert_false(img_store_has_blob(f->s, stray));
	assert_false(exists(f, "layers", img_digest_hex(layer)));
	assert_false(exists(f, "layers", ".tmp-feedfacefeedface"));
	assert_int_equal(count_entries(f, "ingest"), 0);
	assert_int_equal(count_entries(f, "layers"), 2);

	assert_int_equal(img_store_remove(f->s, "127.0.0.1:5000/one:1", &err), 0);
	assert_int_equal(img_store_gc(f->s, &blobs, &layers, &err), 0);
	assert_int_equal(blobs, 4);
	assert_int_equal(layers, 1);
	assert_image_present(f, &one, false);
	assert_image_present(f, &two, true);

	/* Half-deleted: the index and manifest of two are gone.  GC still
	 * works, and keeps what the record names directly. */
	char path[256];
	snprintf(path, sizeof(path), "%s/blobs/sha256/%s", f->dir, img_digest_hex(two.index));
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/blobs/sha256/%s", f->dir, img_digest_hex(two.manifest));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(img_store_gc(f->s, &blobs, &layers, &err), 0);
	assert_int_equal(blobs, 1); /* the layer blob, no longer reachable */
	assert_int_equal(layers, 0);
	assert_true(img_store_has_blob(f->s, two.config));
	assert_true(exists(f, "layers", img_digest_hex(two.layer)));
}

/* ---- a pinned image from the store alone (images/local.h) ---------------- */

static int local(struct fixture *f, const char *repo, const char *digest, struct img_local *l,
		 struct berth_err *err)
{
	char ref[256];
	snprintf(ref, sizeof(ref), "%s@%s", repo, digest);
	return img_local_image(f->s, ref, l, err);
}

static void test_local_image(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	struct image one;
	make_image(f, "127.0.0.1:5000/one:1", "one\n", &one);
	struct img_local l = { 0 };
	/* By the digest the tag resolved to, under any repository name. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(local(f, i ? "other/name" : "127.0.0.1:5000/one", one.index, &l,
				       &err), 0);
		assert_string_equal(l.digest, one.index);
		assert_non_null(strstr(l.config, one.layer));
		assert_int_equal(l.n_layers, 1);
		char want[512];
		snprintf(want, sizeof(want), "%s/layers/%s", f->dir, img_digest_hex(one.layer));
		assert_string_equal(l.layers[0], want);
		img_local_done(&l);
	}
	/* A tag is never answered from the store: the registry says where it points. */
	assert_int_equal(img_local_image(f->s, "127.0.0.1:5000/one:1", &l, &err), -EINVAL);
	/* A digest no record has. */
	assert_int_equal(local(f, "127.0.0.1:5000/one", one.config, &l, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "not in the store"));
}

/* Anything a pull would have to fetch or repair sends the caller to the pull. */
static void test_local_image_incomplete(void **state)
{
	struct fixture *f = *state;
	struct berth_err err = { 0 };
	struct image one;
	struct img_local l = { 0 };
	char path[512];
	make_image(f, "127.0.0.1:5000/one:1", "one\n", &one);
	snprintf(path, sizeof(path), "%s/layers/%s", f->dir, img_digest_hex(one.layer));
	assert_int_equal(berth_rm_rf_at(AT_FDCWD, path, NULL), 0);
	assert_int_equal(local(f, "127.0.0.1:5000/one", one.index, &l, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "not unpacked"));

	/* A config blob damaged on disk is re-hashed and refused. */
	make_image(f, "127.0.0.1:5000/two:1", "two\n", &one);
	snprintf(path, sizeof(path), "%s/blobs/sha256/%s", f->dir, img_digest_hex(one.config));
	assert_int_equal(chmod(path, 0644), 0);
	FILE *fp = fopen(path, "r+");
	assert_non_null(fp);
	assert_int_equal(fputc('X', fp), 'X');
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(local(f, "127.0.0.1:5000/two", one.index, &l, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "corrupt"));

	/* A missing manifest. */
	make_image(f, "127.0.0.1:5000/three:1", "three\n", &one);
	snprintf(path, sizeof(path), "%s/blobs/sha256/%s", f->dir, img_digest_hex(one.manifest));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(local(f, "127.0.0.1:5000/three", one.index, &l, &err), -ENOENT);
	assert_null(l.layers);
}

struct gc_job {
	struct img_store *s;
	atomic_bool done;
	int ret;
};

static void *gc_thread(void *arg)
{
	struct gc_job *j = arg;
	j->ret = img_store_gc(j->s, NULL, NULL, NULL);
	atomic_store(&j->done, true);
	return NULL;
}

static void test_gc_waits_for_pull(void **state)
{
	struct fixture *f = *state;
	int lockfd = img_store_lock_shared(f->s, NULL);
	assert_true(lockfd >= 0);
	/* What a running pull has fetched but not yet recorded. */
	assert_int_equal(img_store_put_blob(f->s, f->digest, f->data, BLOB_LEN, NULL, NULL), 0);
	struct gc_job job = { .s = f->s, .ret = -1 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, gc_thread, &job), 0);
	usleep(200000);
	assert_false(atomic_load(&job.done));
	assert_true(img_store_has_blob(f->s, f->digest));
	img_store_unlock(lockfd);
	pthread_join(t, NULL);
	assert_int_equal(job.ret, 0);
	assert_false(img_store_has_blob(f->s, f->digest));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_read_open_blob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_wrong_digest_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_success, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_digest_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_size_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_restart_when_range_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_complete_partial_is_committed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_threads_fetch_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_processes_fetch_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layer_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layer_concurrent_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_removes_stale_tmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_waits_for_pull, setup, teardown),
		cmocka_unit_test_setup_teardown(test_local_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_local_image_incomplete, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
