/* Text tables for the listing commands: every column as wide as its widest
 * cell (or its header, or its minimum), two spaces apart, the last one not
 * padded; rows in the order they were added. */
#ifndef BERTH_CLI_TABLE_H
#define BERTH_CLI_TABLE_H

#include <stdio.h>
#include <stddef.h>

#include "common/cleanup.h"

#define TABLE_COLS_MAX 16

struct table_col {
	const char *head;
	int min;              /* at least this wide (0: the widest cell) */
};

struct table {
	const struct table_col *cols;
	size_t n_cols;
	char **cells;         /* n_rows × n_cols copies, row by row */
	size_t n_rows, cap;
};

#define TABLE_INIT(c) { .cols = (c), .n_cols = ARRAY_SIZE(c) }

/* Appends one row: n_cols cells, copied (NULL prints "-").  -ENOMEM, or
 * -EINVAL for a table of no or more than TABLE_COLS_MAX columns. */
int table_add(struct table *t, const char *const *row);

void table_print(const struct table *t, FILE *f);

/* Frees the rows; t can take new ones. */
void table_done(struct table *t);

#endif
