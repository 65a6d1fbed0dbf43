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
	/* Group commit (store_group.c): once attached to a loop, the
	 * outermost transaction is the group, begun by the turn's first
	 * write and committed by commit_ev at the end of the turn. */
	struct event *commit_ev;        /* NULL: not attached, each write commits */
	bool group;                     /* the open transaction (level 1) is the group */
	int64_t group_since_ms;         /* monotonic, when it began */
	unsigned group_units;           /* top-level savepoints in it */
	unsigned group_max_units;       /* STORE_GROUP_UNITS (tests lower them) */
	int64_t group_max_ms;           /* STORE_GROUP_MS */
	/* What waits for the outermost transaction's end (store_after_commit). */
	struct store_hook *hooks;
	size_t n_hooks, cap_hooks;
	/* The WAL's fsync on a thread of its own (store_group_sync_apart()),
	 * or NULL: each COMMIT waits for its own (synchronous=FULL). */
	struct store_syncer *syncer;
};

/* A store_after_commit() callback; r: -ECANCELED once the savepoint it
 * was registered in was rolled back (the commit cannot make it true). */
struct store_hook {
	store_commit_fn fn;
	void *arg;
	int r;
};

/* store_group.c, for the transactions of store.c: */
/* Before a transaction begins: opens the group at depth 0. */
int store_group_prepare(struct store *s, struct berth_err *err);
/* The outermost transaction ended: every hook is called, with R (0:
 * committed) unless it was cancelled.  ERR says why when R < 0. */
void store_hooks_run(struct store *s, int r, const struct berth_err *err);
/* A savepoint begun when MARK hooks were queued was rolled back: those
 * queued since are cancelled. */
void store_hooks_cancel(struct store *s, size_t mark);
/* With a syncer: the log fsync'd now, and the callbacks of the commits
 * that waited for it called; 0 without one. */
int store_group_synced(struct store *s, struct berth_err *err);
/* store_close(): commits what is open (its hooks run), frees the timer. */
void store_group_detach(struct store *s);


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
/* Steps ST, a list query run with LIMIT limit + 1, into *ret: column
 * ITEM_COL of each row is an item, column KEY_COL the page cursor.  A row
 * beyond the page means there is a next one, and *ret's next_token (of
 * KIND) starts it after the last key returned.  WHAT names the list in
 * errors ("clusters"). */
int store_page_collect(struct store *s, sqlite3_stmt *st, const char *kind, int limit,
		       int key_col, int item_col, const char *what, struct store_list *ret,
		       struct berth_err *err);

/* Read-only checks that the file is ours and not from a newer berth; run
 * before the first write so a refused file stays untouched. */
int store_schema_check(struct store *s, struct berth_err *err);
/* Applies every migration the file lacks (store_schema.c). */
int store_migrate(struct store *s, struct berth_err *err);

#endif
