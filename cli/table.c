#include "cli/table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int table_add(struct table *t, const char *const *row)
{
	if (t->n_cols == 0 || t->n_cols > TABLE_COLS_MAX)
		return -EINVAL;
	if (t->n_rows == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16;
		char **cells = realloc(t->cells, cap * t->n_cols * sizeof(*cells));
		if (!cells)
			return -ENOMEM;
		t->cells = cells;
		t->cap = cap;
	}
	char **dst = t->cells + t->n_rows * t->n_cols;
	for (size_t i = 0; i < t->n_cols; i++) {
		if (!(dst[i] = strdup(row[i] ? row[i] : "-"))) {
			while (i > 0)
				free(dst[--i]);
			return -ENOMEM;
		}
	}
	t->n_rows++;
	return 0;
}

static void print_row(const struct table *t, const char *const *cells, const int *width,
		      FILE *f)
{
	for (size_t i = 0; i + 1 < t->n_cols; i++)
		fprintf(f, "%-*s  ", width[i], cells[i]);
	fprintf(f, "%s\n", cells[t->n_cols - 1]);
}

void table_print(const struct table *t, FILE *f)
{
	if (t->n_cols == 0 || t->n_cols > TABLE_COLS_MAX)
		return;
	int width[TABLE_COLS_MAX];
	const char *head[TABLE_COLS_MAX];
	for (size_t i = 0; i < t->n_cols; i++) {
		head[i] = t->cols[i].head;
		width[i] = (int)strlen(head[i]);
		if (width[i] < t->cols[i].min)
			width[i] = t->cols[i].min;
		for (size_t r = 0; r < t->n_rows; r++) {
			int n = (int)strlen(t->cells[r * t->n_cols + i]);
			if (n > width[i])
				width[i] = n;
		}
	}
	print_row(t, head, width, f);
	for (size_t r = 0; r < t->n_rows; r++)
		print_row(t, (const char *const *)t->cells + r * t->n_cols, width, f);
}

void table_done(struct table *t)
{
	for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->n_rows = t->cap = 0;
}
