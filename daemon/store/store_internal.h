/* Shared by daemon/store*.c only: the connection, transactions, statement
 * and column helpers, paging tokens. */
#ifndef BERTH_DAEMON_STORE_INTERNAL_H
#define BERTH_DAEMON_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/store/store.h"

/* One prepared statement of the cache: SQL text (hashed) -> statement. */
struct store_stmt_slot {
	uint64_t hash;
	char *sql;                  /* NULL: an empty slot */
	sqlite3_stmt *st;
};

struct store {
	sqlite3 *db;
	char *path;
	unsigned depth;             /* open transaction + savepoints */
	bool reading;               /* store_read_begin() opened the transaction */
	/* Every statement is prepared once per connection and kept until
	 * store_close(): preparing was about half of a DescribeTasks'
	 * CPU.  Open addressing, a power-of-two size, at most half full. */
	struct store_stmt_slot *stmts;
	size_t n_stmts, cap_stmts;
};

/* A transaction, or a savepoint when one is already open, so every store
 * call is atomic on its own and also nests inside store_txn(). */
struct store_tx {
	struct store *s;
	unsigned level;             /* 1 = the outermost BEGIN */
	bool open;
};
int store_tx_begin(struct store *s, struct store_tx *tx, struct berth_err *err);
int store_tx_commit(struct store_tx *tx, struct berth_err *err);
void store_tx_rollback(struct store_tx *tx);
static inline void store_tx_rollbackp(struct store_tx *tx)
{
	if (tx->open)
		store_tx_rollback(tx);
}
#define _cleanup_tx_ _cleanup_(store_tx_rollbackp)

/* Hands a statement from store_prepare() back to the cache: reset (which
 * ends its read of the database) and its bindings cleared.  Never
 * sqlite3_finalize() one: the cache finalizes them at store_close(). */
static inline void store_stmt_release(sqlite3_stmt *st)
{
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}
static inline void store_stmt_releasep(sqlite3_stmt **st) { store_stmt_release(*st); }
#define _cleanup_stmt_ _cleanup_(store_stmt_releasep)

/* SQLite result code → negative errno, with "<what>: <sqlite message>". */
int store_sqlerr(struct store *s, int rc, struct berth_err *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int store_errno_of(int rc);

/* Runs SQL that may hold several statements (schema, migrations). */
int store_exec(struct store *s, const char *sql, struct berth_err *err);
/* The cached statement for sql (prepared on first use, with
 * SQLITE_PREPARE_PERSISTENT); the caller releases it with
 * _cleanup_stmt_ or store_stmt_release().  A statement still stepping is
 * not handed out twice: a nested use of the same SQL gets a second one. */
int store_prepare(struct store *s, const char *sql, sqlite3_stmt **ret, struct berth_err *err);
/* One statement of sql, cached, stepped to its end (BEGIN, COMMIT, …). */
int store_run(struct store *s, const char *sql, struct berth_err *err);
/* Prepares sql (one parameter, ?1 = key) and steps it onto its first row:
 * -ENOENT "store: <what> <key>: not found" when there is none.  The
 * caller finalizes *ret, also after a failure. */
int store_select_row(struct store *s, const char *sql, const char *what, const char *key,
		     sqlite3_stmt **ret, struct berth_err *err);

/* Binders that store NULL for a NULL string or a 0 time. */
int store_bind_text(sqlite3_stmt *st, int idx, const char *v);
int store_bind_ms(sqlite3_stmt *st, int idx, int64_t v);
/* Column copies; NULL for SQL NULL.  *oom is set when strdup fails, so a
 * reader checks once after filling a whole struct. */
char *store_col_dup(sqlite3_stmt *st, int col, bool *oom);
int64_t store_col_ms(sqlite3_stmt *st, int col);

/* Paging: the effective limit, and cursors tied to one kind of list
 * ("cl", "td", "tf", "tk") so a token cannot be replayed elsewhere. */
int store_page_limit(const struct store_page *p, int *ret, struct berth_err *err);
/* store_page_limit() and the decoded cursor of p's token (*ret_after:
 * NULL on the first page; the caller frees it). */
int store_page_begin(const struct store_page *p, const char *kind, int *ret_limit,
		     char **ret_after, struct berth_err *err);
int store_token_encode(const char *kind, const char *key, char **ret);
int store_token_decode(const char *kind, const char *token, char **ret_key,
		       struct berth_err *err);
/* Appends a copy of item to l (grown by doubling). */
int store_list_push(struct store_list *l, const char *item);

/* Read-only checks that the file is ours and not from a newer berth; run
 * before the first write so a refused file stays untouched. */
int store_schema_check(struct store *s, struct berth_err *err);
/* Applies every migration the file lacks (store_schema.c). */
int store_migrate(struct store *s, struct berth_err *err);

#endif
