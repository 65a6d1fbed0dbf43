/* daemon/store/store: opening the database, transactions, and the helpers the
 * table modules (store_defs.c, store_task.c) share. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/store/store_internal.h"

/* ---- errors ---- */

int store_errno_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return EBUSY;
	case SQLITE_NOMEM:
		return ENOMEM;
	case SQLITE_FULL:
		return ENOSPC;
	case SQLITE_READONLY:
		return EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return EACCES;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return EBADMSG;
	case SQLITE_CANTOPEN:
		return ENOENT;
	case SQLITE_TOOBIG:
		return E2BIG;
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			return EEXIST;
		if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
			return ENOENT;
		return EINVAL;
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
		return EINVAL;
	default:
		return EIO;
	}
}

int store_sqlerr(struct store *s, int rc, struct berth_err *err, const char *fmt, ...)
{
	char what[BERTH_ERR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	const char *msg = s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
	return berth_errf(err, store_errno_of(rc), "%s: %s", what, msg);
}

int store_exec(struct store *s, const char *sql, struct berth_err *err)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return store_sqlerr(s, rc, err, "store: %s", s->path);
	return 0;
}

/* ---- the statement cache ---- */

/* FNV-1a over the length and the first and last 32 bytes: the SQL of a
 * task read is ~600 bytes, hashed on every read; statements that share
 * both ends only share a probe chain (strcmp decides). */
static uint64_t sql_hash(const char *sql)
{
	size_t len = strlen(sql);
	uint64_t h = (0xcbf29ce484222325ULL ^ len) * 0x100000001b3ULL;
	const unsigned char *p = (const unsigned char *)sql;
	for (size_t i = 0; i < len && i < 32; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	for (size_t i = len > 32 ? len - 32 : len; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

/* Doubles the table (or makes the first one) and rehashes every slot. */
static int stmts_grow(struct store *s)
{
	size_t cap = s->cap_stmts ? 2 * s->cap_stmts : 64;
	struct store_stmt_slot *t = calloc(cap, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < s->cap_stmts; i++) {
		struct store_stmt_slot *e = &s->stmts[i];
		if (!e->sql)
			continue;
		size_t j = e->hash & (cap - 1);
		while (t[j].sql)
			j = (j + 1) & (cap - 1);
		t[j] = *e;
	}
	free(s->stmts);
	s->stmts = t;
	s->cap_stmts = cap;
	return 0;
}

int store_prepare(struct store *s, const char *sql, sqlite3_stmt **ret, struct berth_err *err)
{
	uint64_t h = sql_hash(sql);
	size_t mask = s->cap_stmts - 1, i = h & mask;
	for (; s->cap_stmts && s->stmts[i].sql; i = (i + 1) & mask) {
		struct store_stmt_slot *e = &s->stmts[i];
		/* A busy one is in use further up the stack: take another. */
		if (e->hash == h && strcmp(e->sql, sql) == 0 && !sqlite3_stmt_busy(e->st)) {
			*ret = e->st;
			return 0;
		}
	}
	if (2 * (s->n_stmts + 1) > s->cap_stmts) {
		if (stmts_grow(s) < 0)
			return berth_errf(err, ENOMEM, "store: %s: statement cache: out of memory",
					  s->path);
		mask = s->cap_stmts - 1;
		for (i = h & mask; s->stmts[i].sql; i = (i + 1) & mask)
			;
	}
	_cleanup_free_ char *copy = strdup(sql);
	if (!copy)
		return berth_errf(err, ENOMEM, "store: %s: statement cache: out of memory", s->path);
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK)
		return store_sqlerr(s, rc, err, "store: %s: prepare", s->path);
	s->stmts[i] = (struct store_stmt_slot){ .hash = h, .sql = TAKE_PTR(copy), .st = st };
	s->n_stmts++;
	*ret = st;
	return 0;
}

int store_run(struct store *s, const char *sql, struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, sql, &st, err);
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return store_sqlerr(s, rc, err, "store: %s: %s", s->path, sql);
	return 0;
}

static void stmts_free(struct store *s)
{
	for (size_t i = 0; i < s->cap_stmts; i++) {
		sqlite3_finalize(s->stmts[i].st);
		free(s->stmts[i].sql);
	}
	free(s->stmts);
}

int store_select_row(struct store *s, const char *sql, const char *what, const char *key,
		     sqlite3_stmt **ret, struct berth_err *err)
{
	int r = store_prepare(s, sql, ret, err);
	if (r < 0)
		return r;
	store_bind_text(*ret, 1, key);
	int rc = sqlite3_step(*ret);
	if (rc == SQLITE_DONE)
		return berth_errf(err, ENOENT, "store: %s %s: not found", what, key);
	if (rc != SQLITE_ROW)
		return store_sqlerr(s, rc, err, "store: %s %s", what, key);
	return 0;
}

/* ---- binding and reading ---- */

int store_bind_text(sqlite3_stmt *st, int idx, const char *v)
{
	if (!v)
		return sqlite3_bind_null(st, idx);
	return sqlite3_bind_text(st, idx, v, -1, SQLITE_STATIC);
}

int store_bind_ms(sqlite3_stmt *st, int idx, int64_t v)
{
	if (v == 0)
		return sqlite3_bind_null(st, idx);
	return sqlite3_bind_int64(st, idx, v);
}

char *store_col_dup(sqlite3_stmt *st, int col, bool *oom)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	if (!t) {
		/* NULL text is either SQL NULL or an allocation failure. */
		if (sqlite3_column_type(st, col) != SQLITE_NULL)
			*oom = true;
		return NULL;
	}
	char *d = strdup((const char *)t);
	if (!d)
		*oom = true;
	return d;
}

int64_t store_col_ms(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, col);
}

/* ---- transactions ---- */

int store_tx_begin(struct store *s, struct store_tx *tx, struct berth_err *err)
{
	int r = store_group_prepare(s, err);
	if (r < 0)
		return r;
	char sql[32];
	/* IMMEDIATE takes the write lock up front: a deferred transaction
	 * that later upgrades can hit SQLITE_BUSY that no busy handler can
	 * resolve (the classic WAL read-to-write deadlock). */
	if (s->depth == 0)
		snprintf(sql, sizeof(sql), "BEGIN IMMEDIATE");
	else
		snprintf(sql, sizeof(sql), "SAVEPOINT s%u", s->depth + 1);
	r = store_run(s, sql, err);
	if (r < 0)
		return r;
	s->depth++;
	if (s->group && s->depth == 2)
		s->group_units++;
	*tx = (struct store_tx){ .s = s, .level = s->depth, .hooks = s->n_hooks, .open = true };
	return 0;
}

int store_tx_commit(struct store_tx *tx, struct berth_err *err)
{
	struct store *s = tx->s;
	char sql[32];
	if (tx->level == 1)
		snprintf(sql, sizeof(sql), "COMMIT");
	else
		snprintf(sql, sizeof(sql), "RELEASE s%u", tx->level);
	int r = store_run(s, sql, err);
	if (r < 0)
		return r;  /* still open: the cleanup rolls it back */
	tx->open = false;
	s->depth--;
	if (tx->level == 1) {
		/* Outside a group (none could open): durable before it is told. */
		r = store_group_synced(s, err);
		store_hooks_run(s, r, err);
	}
	return r;
}

void store_tx_rollback(struct store_tx *tx)
{
	struct store *s = tx->s;
	char sql[32];
	struct berth_err ignored = { 0 };
	/* A failed rollback leaves nothing to do: SQLite has already rolled
	 * the transaction back when it reports that kind of error. */
	if (tx->level == 1) {
		store_run(s, "ROLLBACK", &ignored);
	} else {
		snprintf(sql, sizeof(sql), "ROLLBACK TO s%u", tx->level);
		store_run(s, sql, &ignored);
		snprintf(sql, sizeof(sql), "RELEASE s%u", tx->level);
		store_run(s, sql, &ignored);
	}
	tx->open = false;
	s->depth--;
	if (tx->level > 1) {
		store_hooks_cancel(s, tx->hooks);
		return;
	}
	struct berth_err why = { 0 };
	store_hooks_run(s, berth_errf(&why, ECANCELED, "store: %s: transaction rolled back",
				      s->path), &why);
}

int store_txn(struct store *s, store_txn_fn fn, void *arg, struct berth_err *err)
{
	struct store_tx tx _cleanup_tx_ = { 0 };
	int r = store_tx_begin(s, &tx, err);
	if (r < 0)
		return r;
	r = fn(s, arg, err);
	if (r < 0)
		return r;
	return store_tx_commit(&tx, err);
}

int store_read_begin(struct store *s, struct berth_err *err)
{
	if (s->depth > 0)
		return 0;
	/* Deferred: the read lock comes with the first read. */
	int r = store_run(s, "BEGIN", err);
	if (r < 0)
		return r;
	s->depth++;
	s->reading = true;
	return 0;
}

void store_read_end(struct store *s)
{
	if (!s->reading)
		return;
	struct berth_err ignored = { 0 };
	/* A read has nothing to lose: should COMMIT fail, ROLLBACK still
	 * ends the transaction so that the next one can begin. */
	if (store_run(s, "COMMIT", &ignored) < 0)
		store_run(s, "ROLLBACK", &ignored);
	s->depth--;
	s->reading = false;
}

/* ---- open / close ---- */

static void store_stmt_finalizep(sqlite3_stmt **st) { sqlite3_finalize(*st); }

static int exec_pragma_text(struct store *s, const char *sql, const char *want,
			    struct berth_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, sql, &st, err);
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return store_sqlerr(s, rc, err, "store: %s: %s", s->path, sql);
	const char *got = (const char *)sqlite3_column_text(st, 0);
	if (!got || strcasecmp(got, want) != 0)
		return berth_errf(err, EBADMSG, "store: %s: %s answered \"%s\", not \"%s\"", s->path,
				  sql, got ? got : "", want);
	return 0;
}

/* Reads before anything writes: a file that is not a database, or is
 * corrupt, must be reported and left exactly as it was. */
static int check_readable(struct store *s, struct berth_err *err)
{
	int rc = sqlite3_exec(s->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
	if ((rc & 0xff) == SQLITE_NOTADB)
		return berth_errf(err, EBADMSG, "store: %s: not an SQLite database (left untouched)",
				  s->path);
	if (rc != SQLITE_OK)
		return store_sqlerr(s, rc, err, "store: %s: unreadable (left untouched)", s->path);
	/* quick_check reads every page: O(size), but the database holds
	 * only live state and an hour of stopped tasks, and finding damage
	 * here beats finding it mid-request. */
	_cleanup_(store_stmt_finalizep) sqlite3_stmt *st = NULL;
	rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB)
			return store_sqlerr(s, rc, err, "store: %s: corrupt database (left untouched)",
					    s->path);
		return store_sqlerr(s, rc, err, "store: %s: integrity check", s->path);
	}
	const char *res = (const char *)sqlite3_column_text(st, 0);
	if (!res || strcmp(res, "ok") != 0)
		return berth_errf(err, EBADMSG, "store: %s: corrupt database (left untouched): %s",
				  s->path, res ? res : "?");
	return 0;
}

int store_open(const char *path, struct store **ret, struct berth_err *err)
{
	_cleanup_(store_closep) struct store *s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(path)))
		return berth_errf(err, ENOMEM, "store: %s: out of memory", path);

	/* Create the file ourselves so it is born 0600: SQLite would use
	 * 0644 & ~umask, and it gives the -wal and -shm files the main
	 * file's mode. */
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return berth_errnof(err, errno, "store: %s: open", path);
	struct stat stbuf;
	if (fstat(fd, &stbuf) < 0)
		return berth_errnof(err, errno, "store: %s: stat", path);
	if (!S_ISREG(stbuf.st_mode))
		return berth_errf(err, EINVAL, "store: %s: not a regular file", path);

	int rc = sqlite3_open_v2(path, &s->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE |
				 SQLITE_OPEN_NOMUTEX,
				 NULL);
	if (rc != SQLITE_OK)
		return store_sqlerr(s, rc, err, "store: %s: open", path);
	sqlite3_extended_result_codes(s->db, 1);
	/* Writers from another process wait instead of failing; readers
	 * never wait in WAL mode. */
	sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);

	int r = check_readable(s, err);
	if (r < 0)
		return r;
	/* Version and ownership before the first write (journal_mode=WAL
	 * writes the header): a newer or foreign file stays untouched. */
	r = store_schema_check(s, err);
	if (r < 0)
		return r;
	r = exec_pragma_text(s, "PRAGMA journal_mode = WAL", "wal", err);
	if (r < 0)
		return r;
	/* FULL: in WAL mode NORMAL may lose the last commits on power loss,
	 * and a lost RunTask would run a task the daemon forgot. */
	r = store_exec(s, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", err);
	if (r < 0)
		return r;
	r = store_migrate(s, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(s);
	return 0;
}

int store_open_reader(const struct store *w, struct store **ret, struct berth_err *err)
{
	_cleanup_(store_closep) struct store *s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(w->path)))
		return berth_errf(err, ENOMEM, "store: %s: out of memory", w->path);
	int rc = sqlite3_open_v2(s->path, &s->db,
				 SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE |
				 SQLITE_OPEN_NOMUTEX,
				 NULL);
	if (rc != SQLITE_OK)
		return store_sqlerr(s, rc, err, "store: %s: open for reading", s->path);
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
	/* SQLite opens the files at the first read: read now, so that the
	 * descriptors are held from the start and a daemon out of them
	 * (a connection flood) still answers reads. */
	int r = store_exec(s, "SELECT count(*) FROM sqlite_master", err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(s);
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	store_group_detach(s);
	/* sqlite3_close_v2 defers until stray statements are finalized
	 * instead of failing with SQLITE_BUSY and leaking the handle. */
	stmts_free(s);
	sqlite3_close_v2(s->db);
	free(s->path);
	free(s);
}

/* ---- enums ---- */

static const char *const cluster_status_names[] = { "ACTIVE", "INACTIVE" };
static const char *const td_status_names[] = { "ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS" };
static const char *const task_status_names[] = {
	"PROVISIONING", "PENDING", "ACTIVATING", "RUNNING", "DEACTIVATING",
	"STOPPING", "DEPROVISIONING", "STOPPED", "DELETED",
};
static const char *const health_names[] = { "UNKNOWN", "HEALTHY", "UNHEALTHY" };

static const char *name_of(const char *const *names, size_t n, unsigned v)
{
	return v < n ? names[v] : "UNKNOWN";
}

static int parse_of(const char *const *names, size_t n, const char *s, int *ret)
{
	for (size_t i = 0; s && i < n; i++)
		if (strcmp(names[i], s) == 0) {
			*ret = (int)i;
			return 0;
		}
	return -EINVAL;
}

#define ENUM_FUNCS(fn, type, names)                                          \
	const char *store_##fn##_name(type v)                                 \
	{                                                                     \
		return name_of(names, ARRAY_SIZE(names), (unsigned)v);        \
	}                                                                     \
	int store_##fn##_parse(const char *s, type *ret)                      \
	{                                                                     \
		int v;                                                        \
		if (parse_of(names, ARRAY_SIZE(names), s, &v) < 0)            \
			return -EINVAL;                                       \
		*ret = (type)v;                                               \
		return 0;                                                     \
	}
ENUM_FUNCS(cluster_status, enum store_cluster_status, cluster_status_names)
ENUM_FUNCS(td_status, enum store_td_status, td_status_names)
ENUM_FUNCS(task_status, enum store_task_status, task_status_names)
ENUM_FUNCS(health, enum store_health, health_names)

/* ---- paging ---- */

int store_page_limit(const struct store_page *p, int *ret, struct berth_err *err)
{
	int n = p ? p->max_results : 0;
	if (n == 0)
		n = STORE_PAGE_MAX;
	if (n < 1 || n > STORE_PAGE_MAX)
		return berth_errf(err, EINVAL, "store: maxResults %d: must be between 1 and %d",
				  p->max_results, STORE_PAGE_MAX);
	*ret = n;
	return 0;
}

int store_page_begin(const struct store_page *p, const char *kind, int *ret_limit,
		     char **ret_after, struct berth_err *err)
{
	*ret_after = NULL;
	int r = store_page_limit(p, ret_limit, err);
	if (r >= 0 && p && p->next_token)
		r = store_token_decode(kind, p->next_token, ret_after, err);
	return r;
}

int store_token_encode(const char *kind, const char *key, char **ret)
{
	_cleanup_free_ char *plain = NULL;
	int n = asprintf(&plain, "%s:%s", kind, key);
	if (n < 0)
		return -ENOMEM;
	char *out = malloc(4 * (((size_t)n + 2) / 3) + 1);
	if (!out)
		return -ENOMEM;
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)plain, n);
	*ret = out;
	return 0;
}

int store_token_decode(const char *kind, const char *token, char **ret_key,
		       struct berth_err *err)
{
	size_t len = strlen(token);
	/* Our cursors are at most a few hundred bytes; a huge token is not
	 * ours and is refused before allocating for it. */
	if (len == 0 || len % 4 != 0 || len > 4096)
		return berth_errf(err, EINVAL, "store: nextToken: not a token this daemon issued");
	_cleanup_free_ unsigned char *plain = malloc(len / 4 * 3 + 1);
	if (!plain)
		return berth_errf(err, ENOMEM, "store: nextToken: out of memory");
	int n = EVP_DecodeBlock(plain, (const unsigned char *)token, (int)len);
	if (n < 0)
		return berth_errf(err, EINVAL, "store: nextToken: not a token this daemon issued");
	/* EVP_DecodeBlock counts the '=' padding as zero bytes. */
	for (size_t i = len; i > 0 && token[i - 1] == '='; i--)
		n--;
	plain[n] = '\0';
	size_t klen = strlen(kind);
	if ((size_t)n != strlen((char *)plain) || (size_t)n <= klen + 1 ||
	    memcmp(plain, kind, klen) != 0 || plain[klen] != ':')
		return berth_errf(err, EINVAL, "store: nextToken: not a token for this list");
	char *key = strdup((char *)plain + klen + 1);
	if (!key)
		return berth_errf(err, ENOMEM, "store: nextToken: out of memory");
	*ret_key = key;
	return 0;
}

int store_list_push(struct store_list *l, const char *item)
{
	if ((l->n & (l->n - 1)) == 0) {  /* 0, 1, 2, 4, …: grow */
		size_t cap = l->n ? 2 * l->n : 1;
		char **items = realloc(l->items, cap * sizeof(*items));
		if (!items)
			return -ENOMEM;
		l->items = items;
	}
	char *d = strdup(item);
	if (!d)
		return -ENOMEM;
	l->items[l->n++] = d;
	return 0;
}

int store_page_collect(struct store *s, sqlite3_stmt *st, const char *kind, int limit,
		       int key_col, int item_col, const char *what, struct store_list *ret,
		       struct berth_err *err)
{
	_cleanup_(store_list_clear) struct store_list l = { 0 };
	_cleanup_free_ char *last = NULL;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && l.n < (size_t)limit) {
		free(last);
		last = strdup((const char *)sqlite3_column_text(st, key_col));
		if (!last || store_list_push(&l, (const char *)sqlite3_column_text(st, item_col)) < 0)
			return berth_errf(err, ENOMEM, "store: %s: out of memory", what);
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_sqlerr(s, rc, err, "store: %s: list", what);
	if (rc == SQLITE_ROW && store_token_encode(kind, last, &l.next_token) < 0)
		return berth_errf(err, ENOMEM, "store: %s: out of memory", what);
	*ret = l;
	l = (struct store_list){ 0 };
	return 0;
}

void store_list_clear(struct store_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	free(l->next_token);
	*l = (struct store_list){ 0 };
}
