/* SSM parameters and Secrets Manager secrets, sealed at rest (store_secrets.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/fsutil.h"
#include "daemon/store/store_internal.h"
#include "daemon/store/store_secrets.h"

#define NONCE_LEN 12
#define TAG_LEN 16
#define SEAL_MAX (1u << 20)
#define PARAM_PAGE_DEFAULT 50
/* What sealed_check holds, sealed: opening it proves the key is the one
 * the database's values were sealed with. */
#define CHECK_TEXT "berth sealed-value check"

struct store_key {
	unsigned char k[STORE_KEY_LEN];
};

void store_key_free(struct store_key *k)
{
	if (!k)
		return;
	explicit_bzero(k->k, sizeof(k->k));
	free(k);
}

/* ---- sealing ---- */

/* The additional authenticated data of a row: "KIND\0A\0B". */
struct aad {
	char *p;
	size_t n;
};

static int aad_make(struct aad *a, const char *kind, const char *x, const char *y)
{
	size_t lk = strlen(kind), lx = strlen(x), ly = strlen(y);
	a->n = lk + lx + ly + 2;
	a->p = malloc(a->n);
	if (!a->p)
		return -ENOMEM;
	memcpy(a->p, kind, lk + 1);
	memcpy(a->p + lk + 1, x, lx + 1);
	memcpy(a->p + lk + lx + 2, y, ly);
	return 0;
}

static void aad_done(struct aad *a)
{
	free(a->p);
}

static void wipe_free(void *p, size_t n)
{
	if (p)
		explicit_bzero(p, n);
	free(p);
}

static int seal(const struct store_key *k, const struct aad *a, const void *pt, size_t n,
		unsigned char **ret, size_t *ret_len, struct berth_err *err)
{
	if (n > SEAL_MAX)
		return berth_errf(err, EINVAL, "store: value of %zu bytes is too large", n);
	_cleanup_free_ unsigned char *out = malloc(NONCE_LEN + n + TAG_LEN);
	EVP_CIPHER_CTX *ctx = out ? EVP_CIPHER_CTX_new() : NULL;
	if (!ctx)
		return berth_errf(err, ENOMEM, "store: out of memory");
	int len = 0, fin = 0;
	bool ok = getrandom(out, NONCE_LEN, 0) == NONCE_LEN &&
		  EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
		  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
		  EVP_EncryptInit_ex(ctx, NULL, NULL, k->k, out) == 1 &&
		  EVP_EncryptUpdate(ctx, NULL, &len, (const unsigned char *)a->p, (int)a->n) == 1 &&
		  EVP_EncryptUpdate(ctx, out + NONCE_LEN, &len, pt, (int)n) == 1 &&
		  EVP_EncryptFinal_ex(ctx, out + NONCE_LEN + len, &fin) == 1 &&
		  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out + NONCE_LEN + n) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok)
		return berth_errf(err, EIO, "store: sealing a value failed");
	*ret = TAKE_PTR(out);
	*ret_len = NONCE_LEN + n + TAG_LEN;
	return 0;
}

/* The plaintext, NUL-terminated after *ret_len bytes; -EBADMSG when the
 * blob does not open under K with A (another key, another row, changed). */
static int unseal(const struct store_key *k, const struct aad *a, const unsigned char *blob,
		  size_t n, unsigned char **ret, size_t *ret_len, struct berth_err *err)
{
	if (n < NONCE_LEN + TAG_LEN)
		return berth_errf(err, EBADMSG, "store: a sealed value is truncated");
	size_t pn = n - NONCE_LEN - TAG_LEN;
	unsigned char *out = malloc(pn + 1);
	EVP_CIPHER_CTX *ctx = out ? EVP_CIPHER_CTX_new() : NULL;
	if (!ctx) {
		free(out);
		return berth_errf(err, ENOMEM, "store: out of memory");
	}
	unsigned char tag[TAG_LEN];
	memcpy(tag, blob + n - TAG_LEN, TAG_LEN);
	int len = 0, fin = 0;
	bool ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
		  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
		  EVP_DecryptInit_ex(ctx, NULL, NULL, k->k, blob) == 1 &&
		  EVP_DecryptUpdate(ctx, NULL, &len, (const unsigned char *)a->p, (int)a->n) == 1 &&
		  EVP_DecryptUpdate(ctx, out, &len, blob + NONCE_LEN, (int)pn) == 1 &&
		  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1 &&
		  EVP_DecryptFinal_ex(ctx, out + len, &fin) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok) {
		wipe_free(out, pn + 1);
		return berth_errf(err, EBADMSG, "store: a sealed value does not open with the host "
				  "key (another key, or the database was altered)");
	}
	out[pn] = 0;
	*ret = out;
	*ret_len = pn;
	return 0;
}

/* unseal() of column COL of ST for the row A names. */
static int unseal_col(const struct store_key *k, const struct aad *a, sqlite3_stmt *st, int col,
		      unsigned char **ret, size_t *ret_len, struct berth_err *err)
{
	const unsigned char *b = sqlite3_column_blob(st, col);
	int n = sqlite3_column_bytes(st, col);
	return unseal(k, a, b ? b : (const unsigned char *)"", (size_t)n, ret, ret_len, err);
}

/* ---- the key ---- */

static int check_row(struct store *s, const struct store_key *k, bool create, bool *ret_found,
		     struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "SELECT sealed FROM sealed_check WHERE id = 1", &st, err);
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: %s: sealed_check", s->path);
	*ret_found = rc == SQLITE_ROW;
	struct aad a = { (char *)"check", 5 };
	if (rc == SQLITE_ROW && k) {
		unsigned char *pt = NULL;
		size_t n = 0;
		if (unseal_col(k, &a, st, 0, &pt, &n, err) < 0)
			return -EBADMSG;
		bool same = n == strlen(CHECK_TEXT) && memcmp(pt, CHECK_TEXT, n) == 0;
		free(pt);
		return same ? 0 : -EBADMSG;
	}
	if (rc == SQLITE_ROW || !create)
		return 0;
	store_stmt_release(st);
	_cleanup_free_ unsigned char *blob = NULL;
	size_t bn = 0;
	if ((r = seal(k, &a, CHECK_TEXT, strlen(CHECK_TEXT), &blob, &bn, err)) < 0 ||
	    (r = store_prepare(s, "INSERT INTO sealed_check (id, sealed) VALUES (1, ?1)", &st,
			       err)) < 0)
		return r;
	sqlite3_bind_blob(st, 1, blob, (int)bn, SQLITE_STATIC);
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : store_sqlerr(s, rc, err, "store: %s: sealed_check", s->path);
}

static int key_create(const char *path, struct store_key *k, struct berth_err *err)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				      0600);
	if (fd < 0)
		return berth_errnof(err, errno, "secrets key %s: create", path);
	if (getrandom(k->k, sizeof(k->k), 0) != (ssize_t)sizeof(k->k) ||
	    fchmod(fd, 0600) < 0 || berth_pwrite_all(fd, k->k, sizeof(k->k), 0) < 0 ||
	    fsync(fd) < 0) {
		int e = errno ? errno : EIO;
		unlink(path);
		return berth_errnof(err, e, "secrets key %s: write", path);
	}
	_cleanup_free_ char *dir = strdup(path);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	if (slash) {
		*slash = 0;
		_cleanup_close_ int dfd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0)
			fsync(dfd);
	}
	return 0;
}

static int key_read(const char *path, int fd, struct store_key *k, struct berth_err *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return berth_errnof(err, errno, "secrets key %s", path);
	if (!S_ISREG(st.st_mode))
		return berth_errf(err, EINVAL, "secrets key %s: not a regular file", path);
	if (st.st_uid != geteuid())
		return berth_errf(err, EPERM, "secrets key %s: owned by uid %u, not by the daemon's "
				  "user (uid %u)", path, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & 077)
		return berth_errf(err, EPERM, "secrets key %s: mode %04o lets others read or write "
				  "it; it must be 0600", path, (unsigned)(st.st_mode & 07777));
	if (st.st_size != STORE_KEY_LEN)
		return berth_errf(err, EINVAL, "secrets key %s: %lld bytes, not the %d of a key",
				  path, (long long)st.st_size, STORE_KEY_LEN);
	ssize_t n = pread(fd, k->k, sizeof(k->k), 0);
	if (n != (ssize_t)sizeof(k->k))
		return berth_errnof(err, n < 0 ? errno : EIO, "secrets key %s: read", path);
	return 0;
}

int store_key_open(struct store *s, const char *path, struct store_key **ret,
		   struct berth_err *err)
{
	struct store_key *k = calloc(1, sizeof(*k));
	if (!k)
		return berth_errf(err, ENOMEM, "out of memory");
	_cleanup_(store_key_freep) struct store_key *own = k;
	bool found = false;
	int r = check_row(s, NULL, false, &found, err);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && found)
		return berth_errf(err, ENOENT, "secrets key %s: missing, but %s holds values sealed "
				  "with a key: restore the key file backed up with this database",
				  path, s->path);
	if (fd < 0 && errno == ENOENT)
		r = key_create(path, k, err);
	else if (fd < 0)
		r = berth_errnof(err, errno, "secrets key %s: open", path);
	else
		r = key_read(path, fd, k, err);
	if (r < 0)
		return r;
	r = check_row(s, k, true, &found, err);
	if (r == -EBADMSG)
		return berth_errf(err, EBADMSG, "secrets key %s: not the key the values in %s were "
				  "sealed with: restore the key file backed up with this database",
				  path, s->path);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(own);
	return 0;
}

/* ---- SSM parameters ---- */

void store_param_free(struct store_param *p)
{
	if (!p)
		return;
	store_params_free(p, 1);
}

void store_params_free(struct store_param *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		struct store_param *p = &v[i];
		if (p->value)
			wipe_free(p->value, strlen(p->value));
		free(p->name);
		free(p->type);
		free(p->description);
		free(p->allowed_pattern);
		free(p->tier);
		free(p->data_type);
	}
	free(v);
}

static int param_aad(struct aad *a, const char *name, int64_t version)
{
	char v[24];
	snprintf(v, sizeof(v), "%lld", (long long)version);
	return aad_make(a, "ssm", name, v);
}

static char *b64(const unsigned char *p, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

/* The value in column COL of ST (version VERSION of NAME, of TYPE). */
static int param_value(const struct store_key *k, sqlite3_stmt *st, int col, const char *name,
		       int64_t version, const char *type, bool decrypt, char **ret,
		       struct berth_err *err)
{
	if (!decrypt && strcmp(type, "SecureString") == 0) {
		*ret = b64(sqlite3_column_blob(st, col), (size_t)sqlite3_column_bytes(st, col));
		return *ret ? 0 : berth_errf(err, ENOMEM, "out of memory");
	}
	struct aad a;
	if (param_aad(&a, name, version) < 0)
		return berth_errf(err, ENOMEM, "out of memory");
	size_t n;
	int r = unseal_col(k, &a, st, col, (unsigned char **)ret, &n, err);
	aad_done(&a);
	return r < 0 ? berth_err_wrap(err, "parameter %s version %lld", name, (long long)version) : 0;
}

struct param_cur {
	bool exists;
	int64_t version;
	char *type, *description, *allowed_pattern, *tier, *data_type;
};

static void param_cur_done(struct param_cur *c)
{
	free(c->type);
	free(c->description);
	free(c->allowed_pattern);
	free(c->tier);
	free(c->data_type);
}

static int param_current(struct store *s, const char *name, struct param_cur *c,
			 struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_select_row(s, "SELECT p.version, v.type, p.description, p.allowed_pattern, "
				 "p.tier, p.data_type FROM ssm_parameters p JOIN "
				 "ssm_parameter_versions v ON v.name = p.name AND v.version = "
				 "p.version WHERE p.name = ?1", "parameter", name, &st, err);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	bool oom = false;
	c->exists = true;
	c->version = sqlite3_column_int64(st, 0);
	c->type = store_col_dup(st, 1, &oom);
	c->description = store_col_dup(st, 2, &oom);
	c->allowed_pattern = store_col_dup(st, 3, &oom);
	c->tier = store_col_dup(st, 4, &oom);
	c->data_type = store_col_dup(st, 5, &oom);
	return oom ? berth_errf(err, ENOMEM, "out of memory") : 0;
}

static const char *or(const char *a, const char *b)
{
	return a ? a : b;
}

static int param_write(struct store *s, const struct store_key *k, const struct store_param_put *in,
		       const struct param_cur *cur, const char *type, int64_t version,
		       struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "INSERT INTO ssm_parameters (name, version, description, "
			      "allowed_pattern, tier, data_type) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
			      "ON CONFLICT (name) DO UPDATE SET version = excluded.version, "
			      "description = excluded.description, allowed_pattern = "
			      "excluded.allowed_pattern, tier = excluded.tier, data_type = "
			      "excluded.data_type", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, in->name);
	sqlite3_bind_int64(st, 2, version);
	store_bind_text(st, 3, or(in->description, cur->description));
	store_bind_text(st, 4, or(in->allowed_pattern, cur->allowed_pattern));
	store_bind_text(st, 5, or(in->tier, or(cur->tier, "Standard")));
	store_bind_text(st, 6, or(in->data_type, or(cur->data_type, "text")));
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: parameter %s", in->name);
	store_stmt_release(st);
	struct aad a;
	_cleanup_free_ unsigned char *blob = NULL;
	size_t bn = 0;
	if (param_aad(&a, in->name, version) < 0)
		return berth_errf(err, ENOMEM, "out of memory");
	r = seal(k, &a, in->value, strlen(in->value), &blob, &bn, err);
	aad_done(&a);
	if (r < 0 || (r = store_prepare(s, "INSERT INTO ssm_parameter_versions (name, version, "
					"type, sealed, modified_at) VALUES (?1, ?2, ?3, ?4, ?5)",
					&st, err)) < 0)
		return r;
	store_bind_text(st, 1, in->name);
	sqlite3_bind_int64(st, 2, version);
	store_bind_text(st, 3, type);
	sqlite3_bind_blob(st, 4, blob, (int)bn, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, in->now_ms);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: parameter %s", in->name);
	store_stmt_release(st);
	if ((r = store_prepare(s, "DELETE FROM ssm_parameter_versions WHERE name = ?1 AND "
			       "version <= ?2", &st, err)) < 0)
		return r;
	store_bind_text(st, 1, in->name);
	sqlite3_bind_int64(st, 2, version - STORE_PARAM_VERSIONS_MAX);
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : store_sqlerr(s, rc, err, "store: parameter %s", in->name);
}

int store_param_put(struct store *s, const struct store_key *k, const struct store_param_put *in,
		    int64_t *ret_version, struct berth_err *err)
{
	struct store_tx tx _cleanup_tx_ = { 0 };
	struct param_cur cur = { 0 };
	int r = store_tx_begin(s, &tx, err);
	if (r >= 0)
		r = param_current(s, in->name, &cur, err);
	if (r >= 0 && cur.exists && !in->overwrite)
		r = berth_errf(err, EEXIST, "store: parameter %s: exists", in->name);
	const char *type = or(in->type, cur.type);
	if (r >= 0 && !type)
		r = berth_errf(err, EINVAL, "store: parameter %s: a type is required", in->name);
	int64_t version = cur.exists ? cur.version + 1 : 1;
	if (r >= 0)
		r = param_write(s, k, in, &cur, type, version, err);
	param_cur_done(&cur);
	if (r >= 0)
		r = store_tx_commit(&tx, err);
	if (r >= 0)
		*ret_version = version;
	return r;
}

int store_param_get(struct store *s, const struct store_key *k, const char *name,
		    int64_t version, bool decrypt, struct store_param **ret, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_select_row(s, "SELECT version, description, allowed_pattern, tier, data_type "
				 "FROM ssm_parameters WHERE name = ?1", "parameter", name, &st, err);
	if (r < 0)
		return r;
	_cleanup_(store_param_freep) struct store_param *p = calloc(1, sizeof(*p));
	if (!p)
		return berth_errf(err, ENOMEM, "out of memory");
	bool oom = false;
	p->version = version ? version : sqlite3_column_int64(st, 0);
	p->description = store_col_dup(st, 1, &oom);
	p->allowed_pattern = store_col_dup(st, 2, &oom);
	p->tier = store_col_dup(st, 3, &oom);
	p->data_type = store_col_dup(st, 4, &oom);
	p->name = strdup(name);
	store_stmt_release(st);
	if ((r = store_prepare(s, "SELECT type, sealed, modified_at FROM ssm_parameter_versions "
			       "WHERE name = ?1 AND version = ?2", &st, err)) < 0)
		return r;
	store_bind_text(st, 1, name);
	sqlite3_bind_int64(st, 2, p->version);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return berth_errf(err, ENODATA, "store: parameter %s: no version %lld", name,
				  (long long)p->version);
	if (rc != SQLITE_ROW)
		return store_sqlerr(s, rc, err, "store: parameter %s", name);
	p->type = store_col_dup(st, 0, &oom);
	p->modified_at = sqlite3_column_int64(st, 2);
	if (oom || !p->name)
		return berth_errf(err, ENOMEM, "out of memory");
	if ((r = param_value(k, st, 1, name, p->version, p->type, decrypt, &p->value, err)) < 0)
		return r;
	*ret = TAKE_PTR(p);
	return 0;
}

int store_param_delete(struct store *s, const char *name, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "DELETE FROM ssm_parameters WHERE name = ?1", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, name);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: parameter %s", name);
	if (sqlite3_changes(s->db) == 0)
		return berth_errf(err, ENOENT, "store: parameter %s: not found", name);
	return 0;
}

static bool param_match(const struct store_param_filter *f, const char *name, const char *type)
{
	if (f->name_equals && strcmp(name, f->name_equals) != 0)
		return false;
	if (f->name_begins && strncmp(name, f->name_begins, strlen(f->name_begins)) != 0)
		return false;
	if (f->type && strcmp(type, f->type) != 0)
		return false;
	if (!f->path)
		return true;
	size_t n = strlen(f->path);
	/* "/" is the root: its children are "/x"; "/a" has "/a/x". */
	if (strcmp(f->path, "/") == 0)
		n = 0;
	if (strncmp(name, f->path, n) != 0 || name[n] != '/' || !name[n + 1])
		return false;
	return f->recursive || !strchr(name + n + 1, '/');
}

static int param_row(const struct store_key *k, sqlite3_stmt *st, const struct store_param_filter *f,
		     struct store_param *p, struct berth_err *err)
{
	bool oom = false;
	p->name = store_col_dup(st, 0, &oom);
	p->version = sqlite3_column_int64(st, 1);
	p->description = store_col_dup(st, 2, &oom);
	p->allowed_pattern = store_col_dup(st, 3, &oom);
	p->tier = store_col_dup(st, 4, &oom);
	p->data_type = store_col_dup(st, 5, &oom);
	p->type = store_col_dup(st, 6, &oom);
	p->modified_at = sqlite3_column_int64(st, 8);
	if (oom)
		return berth_errf(err, ENOMEM, "out of memory");
	if (!f->values)
		return 0;
	return param_value(k, st, 7, p->name, p->version, p->type, f->decrypt, &p->value, err);
}

int store_param_list(struct store *s, const struct store_key *k, const struct store_param_filter *f,
		     const struct store_page *page, struct store_param **ret, size_t *ret_n,
		     char **ret_next, struct berth_err *err)
{
	int limit;
	_cleanup_free_ char *after = NULL;
	struct store_page pg = { page->max_results ? page->max_results : PARAM_PAGE_DEFAULT,
				 page->next_token };
	int r = store_page_begin(&pg, "pm", &limit, &after, err);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (r < 0 || (r = store_prepare(s, "SELECT p.name, p.version, p.description, "
					"p.allowed_pattern, p.tier, p.data_type, v.type, v.sealed, "
					"v.modified_at FROM ssm_parameters p JOIN "
					"ssm_parameter_versions v ON v.name = p.name AND v.version "
					"= p.version WHERE p.name > ?1 ORDER BY p.name", &st, err)) < 0)
		return r;
	store_bind_text(st, 1, after ? after : "");
	struct store_param *v = calloc((size_t)limit, sizeof(*v));
	if (!v)
		return berth_errf(err, ENOMEM, "out of memory");
	size_t n = 0;
	int rc = SQLITE_DONE;
	*ret_next = NULL;
	while (r >= 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		if (!param_match(f, name, (const char *)sqlite3_column_text(st, 6)))
			continue;
		if (n == (size_t)limit) {
			if (store_token_encode("pm", v[n - 1].name, ret_next) < 0)
				r = berth_errf(err, ENOMEM, "out of memory");
			break;
		}
		r = param_row(k, st, f, &v[n++], err);
	}
	if (r >= 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = store_sqlerr(s, rc, err, "store: parameters");
	if (r < 0) {
		store_params_free(v, n);
		free(TAKE_PTR(*ret_next));
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* ---- Secrets Manager secrets ---- */

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

void store_secret_free(struct store_secret *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n_versions; i++) {
		free(v->versions[i].version_id);
		strv_free(v->versions[i].stages, v->versions[i].n_stages);
	}
	free(v->versions);
	free(v->name);
	free(v->arn);
	free(v->description);
	free(v->kms_key_id);
	free(v);
}

void store_secret_value_free(struct store_secret_value *v)
{
	if (!v)
		return;
	wipe_free(v->data, v->len);
	free(v->version_id);
	strv_free(v->stages, v->n_stages);
	free(v);
}

/* Runs SQL (?1 = A, ?2 = B, ?3 = C; NULL binds NULL) to its end. */
static int run3(struct store *s, const char *sql, const char *a, const char *b, const char *c,
		struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, sql, &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, a);
	store_bind_text(st, 2, b);
	store_bind_text(st, 3, c);
	int rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : store_sqlerr(s, rc, err, "store: secret %s", a);
}

static int version_insert(struct store *s, const struct store_key *k, const char *arn,
			  const char *version_id, bool binary, const unsigned char *data,
			  size_t len, int64_t now, struct berth_err *err)
{
	struct aad a;
	_cleanup_free_ unsigned char *blob = NULL;
	size_t bn = 0;
	if (aad_make(&a, "sm", arn, version_id) < 0)
		return berth_errf(err, ENOMEM, "out of memory");
	int r = seal(k, &a, data, len, &blob, &bn, err);
	aad_done(&a);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (r < 0 || (r = store_prepare(s, "INSERT INTO sm_versions (arn, version_id, is_binary, "
					"sealed, created_at) VALUES (?1, ?2, ?3, ?4, ?5)", &st,
					err)) < 0)
		return r;
	store_bind_text(st, 1, arn);
	store_bind_text(st, 2, version_id);
	sqlite3_bind_int(st, 3, binary);
	sqlite3_bind_blob(st, 4, blob, (int)bn, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, now);
	int rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : store_sqlerr(s, rc, err, "store: secret %s", arn);
}

static int purge_expired(struct store *s, int64_t now, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "DELETE FROM sm_secrets WHERE deletion_date <= ?1", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, now);
	int rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : store_sqlerr(s, rc, err, "store: secrets");
}

static int secret_insert(struct store *s, const struct store_secret_create *in,
			 struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "INSERT INTO sm_secrets (name, arn, description, kms_key_id, "
			      "created_at, changed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, in->name);
	store_bind_text(st, 2, in->arn);
	store_bind_text(st, 3, in->description);
	store_bind_text(st, 4, in->kms_key_id);
	sqlite3_bind_int64(st, 5, in->now_ms);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT)
		return berth_errf(err, EEXIST, "store: secret %s: exists", in->name);
	return rc == SQLITE_DONE ? 0 : store_sqlerr(s, rc, err, "store: secret %s", in->name);
}

int store_secret_create(struct store *s, const struct store_key *k,
			const struct store_secret_create *in, struct berth_err *err)
{
	struct store_tx tx _cleanup_tx_ = { 0 };
	int r = store_tx_begin(s, &tx, err);
	if (r < 0 || (r = purge_expired(s, in->now_ms, err)) < 0 ||
	    (r = secret_insert(s, in, err)) < 0)
		return r;
	if (in->version_id &&
	    ((r = version_insert(s, k, in->arn, in->version_id, in->binary, in->data, in->len,
				 in->now_ms, err)) < 0 ||
	     (r = run3(s, "INSERT INTO sm_stages (arn, stage, version_id) VALUES (?1, ?2, ?3)",
		       in->arn, STORE_STAGE_CURRENT, in->version_id, err)) < 0))
		return r;
	return store_tx_commit(&tx, err);
}

/* Appends a copy of S to *V (*N entries). */
static int strv_push(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

static struct store_secret_version *version_of(struct store_secret *v, const char *id)
{
	for (size_t i = 0; i < v->n_versions; i++)
		if (strcmp(v->versions[i].version_id, id) == 0)
			return &v->versions[i];
	return NULL;
}

/* The versions that have a stage, oldest first, with their stages. */
static int secret_versions(struct store *s, struct store_secret *v, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "SELECT g.stage, g.version_id, v.created_at FROM sm_stages g "
			      "JOIN sm_versions v ON v.arn = g.arn AND v.version_id = g.version_id "
			      "WHERE g.arn = ?1 ORDER BY v.created_at, g.version_id, g.stage", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, v->arn);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 1);
		struct store_secret_version *ver = version_of(v, id);
		if (!ver) {
			struct store_secret_version *nv = realloc(v->versions, (v->n_versions + 1) *
								  sizeof(*nv));
			if (!nv)
				return berth_errf(err, ENOMEM, "out of memory");
			v->versions = nv;
			ver = &nv[v->n_versions++];
			*ver = (struct store_secret_version){ .version_id = strdup(id),
				.created_at = sqlite3_column_int64(st, 2) };
			if (!ver->version_id)
				return berth_errf(err, ENOMEM, "out of memory");
		}
		if (strv_push(&ver->stages, &ver->n_stages,
			      (const char *)sqlite3_column_text(st, 0)) < 0)
			return berth_errf(err, ENOMEM, "out of memory");
	}
	return rc == SQLITE_DONE ? 0 : store_sqlerr(s, rc, err, "store: secret %s", v->arn);
}

int store_secret_get(struct store *s, const char *id, int64_t now_ms, struct store_secret **ret,
		     struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "SELECT name, arn, description, kms_key_id, created_at, changed_at, "
			      "deleted_at, deletion_date FROM sm_secrets WHERE (arn = ?1 OR name = ?1) "
			      "AND (deletion_date IS NULL OR deletion_date > ?2)", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, id);
	sqlite3_bind_int64(st, 2, now_ms);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return berth_errf(err, ENOENT, "store: secret %s: not found", id);
	if (rc != SQLITE_ROW)
		return store_sqlerr(s, rc, err, "store: secret %s", id);
	_cleanup_(store_secret_freep) struct store_secret *v = calloc(1, sizeof(*v));
	if (!v)
		return berth_errf(err, ENOMEM, "out of memory");
	bool oom = false;
	v->name = store_col_dup(st, 0, &oom);
	v->arn = store_col_dup(st, 1, &oom);
	v->description = store_col_dup(st, 2, &oom);
	v->kms_key_id = store_col_dup(st, 3, &oom);
	v->created_at = sqlite3_column_int64(st, 4);
	v->changed_at = sqlite3_column_int64(st, 5);
	v->deleted_at = store_col_ms(st, 6);
	v->deletion_date = store_col_ms(st, 7);
	store_stmt_release(st);
	if (oom)
		return berth_errf(err, ENOMEM, "out of memory");
	if ((r = secret_versions(s, v, err)) < 0)
		return r;
	*ret = TAKE_PTR(v);
	return 0;
}

/* Version VERSION_ID of ARN (is_binary, sealed, created_at), -ENOENT. */
static int version_row(struct store *s, const char *arn, const char *version_id,
		       sqlite3_stmt **st, struct berth_err *err)
{
	int r = store_prepare(s, "SELECT is_binary, sealed, created_at FROM sm_versions WHERE "
			      "arn = ?1 AND version_id = ?2", st, err);
	if (r < 0)
		return r;
	store_bind_text(*st, 1, arn);
	store_bind_text(*st, 2, version_id);
	int rc = sqlite3_step(*st);
	if (rc == SQLITE_DONE)
		return berth_errf(err, ENOENT, "store: secret %s: no version %s", arn, version_id);
	return rc == SQLITE_ROW ? 0 : store_sqlerr(s, rc, err, "store: secret %s", arn);
}

static int version_open(const struct store_key *k, sqlite3_stmt *st, const char *arn,
			const char *version_id, unsigned char **ret, size_t *ret_len,
			struct berth_err *err)
{
	struct aad a;
	if (aad_make(&a, "sm", arn, version_id) < 0)
		return berth_errf(err, ENOMEM, "out of memory");
	int r = unseal_col(k, &a, st, 1, ret, ret_len, err);
	aad_done(&a);
	return r < 0 ? berth_err_wrap(err, "secret %s version %s", arn, version_id) : 0;
}

/* The same version again: 1 when it holds the same value, -EEXIST when
 * another, 0 when there is no such version. */
static int version_same(struct store *s, const struct store_key *k,
			const struct store_secret_put *in, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = version_row(s, in->arn, in->version_id, &st, err);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	unsigned char *pt = NULL;
	size_t n = 0;
	if ((r = version_open(k, st, in->arn, in->version_id, &pt, &n, err)) < 0)
		return r;
	bool same = !sqlite3_column_int(st, 0) == !in->binary && n == in->len &&
		    memcmp(pt, in->data, n) == 0;
	wipe_free(pt, n);
	if (!same)
		return berth_errf(err, EEXIST, "store: secret %s: version %s exists with another "
				  "value", in->arn, in->version_id);
	return 1;
}

/* STAGE onto VERSION_ID; AWSCURRENT leaving a version makes it AWSPREVIOUS. */
static int stage_move(struct store *s, const char *arn, const char *stage, const char *version_id,
		      struct berth_err *err)
{
	int r = 0;
	if (strcmp(stage, STORE_STAGE_CURRENT) == 0)
		r = run3(s, "INSERT OR REPLACE INTO sm_stages (arn, stage, version_id) SELECT arn, "
			 "?2, version_id FROM sm_stages WHERE arn = ?1 AND stage = 'AWSCURRENT' AND "
			 "version_id != ?3", arn, STORE_STAGE_PREVIOUS, version_id, err);
	if (r >= 0)
		r = run3(s, "INSERT OR REPLACE INTO sm_stages (arn, stage, version_id) VALUES "
			 "(?1, ?2, ?3)", arn, stage, version_id, err);
	return r;
}

int store_secret_put_value(struct store *s, const struct store_key *k,
			   const struct store_secret_put *in, bool *ret_existed,
			   struct berth_err *err)
{
	static const char *const current[] = { STORE_STAGE_CURRENT };
	const char *const *stages = in->stages ? in->stages : current;
	size_t n = in->stages ? in->n_stages : 1;
	struct store_tx tx _cleanup_tx_ = { 0 };
	int r = store_tx_begin(s, &tx, err);
	if (r >= 0)
		r = version_same(s, k, in, err);
	*ret_existed = r == 1;
	if (r != 0)
		return r < 0 ? r : store_tx_commit(&tx, err);
	r = version_insert(s, k, in->arn, in->version_id, in->binary, in->data, in->len,
			   in->now_ms, err);
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = stage_move(s, in->arn, stages[i], in->version_id, err);
	if (r >= 0)
		r = run3(s, "DELETE FROM sm_versions WHERE arn = ?1 AND version_id NOT IN (SELECT "
			 "version_id FROM sm_stages WHERE arn = ?1)", in->arn, NULL, NULL, err);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (r < 0 || (r = store_prepare(s, "UPDATE sm_secrets SET changed_at = ?2 WHERE arn = ?1",
					&st, err)) < 0)
		return r;
	store_bind_text(st, 1, in->arn);
	sqlite3_bind_int64(st, 2, in->now_ms);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: secret %s", in->arn);
	return store_tx_commit(&tx, err);
}

/* The version STAGE is on, malloc'd in *ret. */
static int stage_version(struct store *s, const char *arn, const char *stage, char **ret,
			 struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "SELECT version_id FROM sm_stages WHERE arn = ?1 AND stage = ?2",
			      &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, arn);
	store_bind_text(st, 2, stage);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return berth_errf(err, ENOENT, "store: secret %s: no version has stage %s", arn, stage);
	if (rc != SQLITE_ROW)
		return store_sqlerr(s, rc, err, "store: secret %s", arn);
	bool oom = false;
	*ret = store_col_dup(st, 0, &oom);
	return oom ? berth_errf(err, ENOMEM, "out of memory") : 0;
}

static int value_stages(struct store *s, const char *arn, struct store_secret_value *v,
			struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, "SELECT stage FROM sm_stages WHERE arn = ?1 AND version_id = ?2 "
			      "ORDER BY stage", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, arn);
	store_bind_text(st, 2, v->version_id);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (strv_push(&v->stages, &v->n_stages, (const char *)sqlite3_column_text(st, 0)) < 0)
			return berth_errf(err, ENOMEM, "out of memory");
	return rc == SQLITE_DONE ? 0 : store_sqlerr(s, rc, err, "store: secret %s", arn);
}

int store_secret_get_value(struct store *s, const struct store_key *k, const char *arn,
			   const char *version_id, const char *stage,
			   struct store_secret_value **ret, struct berth_err *err)
{
	_cleanup_(store_secret_value_freep) struct store_secret_value *v = calloc(1, sizeof(*v));
	if (!v)
		return berth_errf(err, ENOMEM, "out of memory");
	int r = 0;
	if (version_id)
		r = (v->version_id = strdup(version_id)) ? 0 : berth_errf(err, ENOMEM, "out of memory");
	else
		r = stage_version(s, arn, stage, &v->version_id, err);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (r < 0 || (r = version_row(s, arn, v->version_id, &st, err)) < 0 ||
	    (r = value_stages(s, arn, v, err)) < 0)
		return r;
	bool on_stage = !stage;
	for (size_t i = 0; stage && i < v->n_stages; i++)
		on_stage |= strcmp(v->stages[i], stage) == 0;
	if (!on_stage)
		return berth_errf(err, ENOENT, "store: secret %s: version %s does not have stage %s",
				  arn, v->version_id, stage);
	v->binary = sqlite3_column_int(st, 0);
	v->created_at = sqlite3_column_int64(st, 2);
	if ((r = version_open(k, st, arn, v->version_id, &v->data, &v->len, err)) < 0)
		return r;
	*ret = TAKE_PTR(v);
	return 0;
}

int store_secret_list(struct store *s, bool include_deleted, const char *name_begins, bool desc,
		      int64_t now_ms, const struct store_page *page, struct store_list *ret,
		      struct berth_err *err)
{
	int limit;
	_cleanup_free_ char *after = NULL;
	int r = store_page_begin(page, "sm", &limit, &after, err);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	/* Two statements: ORDER BY cannot take its direction as a parameter. */
	if (r < 0 || (r = store_prepare(s, desc ?
		"SELECT arn, name FROM sm_secrets WHERE (?1 IS NULL OR name < ?1) AND "
		"(deletion_date IS NULL OR (?2 AND deletion_date > ?3)) AND "
		"(?4 IS NULL OR substr(name, 1, length(?4)) = ?4) ORDER BY name DESC LIMIT ?5" :
		"SELECT arn, name FROM sm_secrets WHERE (?1 IS NULL OR name > ?1) AND "
		"(deletion_date IS NULL OR (?2 AND deletion_date > ?3)) AND "
		"(?4 IS NULL OR substr(name, 1, length(?4)) = ?4) ORDER BY name LIMIT ?5",
		&st, err)) < 0)
		return r;
	store_bind_text(st, 1, after);
	sqlite3_bind_int(st, 2, include_deleted);
	sqlite3_bind_int64(st, 3, now_ms);
	store_bind_text(st, 4, name_begins);
	sqlite3_bind_int(st, 5, limit + 1);
	return store_page_collect(s, st, "sm", limit, 1, 0, "secrets", ret, err);
}

int store_secret_delete(struct store *s, const char *arn, int64_t now_ms, int64_t deletion_date,
			struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, deletion_date ?
			      "UPDATE sm_secrets SET deleted_at = ?2, deletion_date = ?3 WHERE arn = ?1"
			      : "DELETE FROM sm_secrets WHERE arn = ?1", &st, err);
	if (r < 0)
		return r;
	store_bind_text(st, 1, arn);
	if (deletion_date) {
		sqlite3_bind_int64(st, 2, now_ms);
		sqlite3_bind_int64(st, 3, deletion_date);
	}
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: secret %s", arn);
	if (sqlite3_changes(s->db) == 0)
		return berth_errf(err, ENOENT, "store: secret %s: not found", arn);
	return 0;
}
