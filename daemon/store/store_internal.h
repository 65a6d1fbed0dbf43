/* Shared by daemon/store*.c only: the connection, transactions, statement
 * and column helpers, paging tokens. */
#ifndef BERTH_DAEMON_STORE_INTERNAL_H
#define BERTH_DAEMON_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>

#include "daemon/store/store.h"

struct store {
	sqlite3 *db;
	char *path;
	unsigned depth;             /* open transaction + savepoints */
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

static inline void store_stmt_finalizep(sqlite3_stmt **st) { sqlite3_finalize(*st); }
#define _cleanup_stmt_ _cleanup_(store_stmt_finalizep)

/* SQLite result code → negative errno, with "<what>: <sqlite message>". */
int store_sqlerr(struct store *s, int rc, struct berth_err *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int store_errno_of(int rc);

int store_exec(struct store *s, const char *sql, struct berth_err *err);
int store_prepare(struct store *s, const char *sql, sqlite3_stmt **ret, struct berth_err *err);
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
