/* tests/unit/store_fixture.h: what the unit tests of the daemon's store
 * and of the modules over it share — a store opened in a fresh temporary
 * directory, removed again after, and OK(call). */
#ifndef BERTH_TEST_STORE_FIXTURE_H
#define BERTH_TEST_STORE_FIXTURE_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/fsutil.h"
#include "daemon/store/store.h"

/* The call must succeed; it may name e_, its struct berth_err. */
#define OK(call)                                                  \
	do {                                                      \
		struct berth_err e_ = { 0 };                      \
		int r_ = (call);                                  \
		if (r_ < 0)                                       \
			fail_msg("%s: %d %s", #call, r_, e_.msg); \
	} while (0)

/* A store in a new /tmp/berth-test-NAME-XXXXXX: the directory into DIR,
 * the database's path into PATH. */
static inline struct store *unit_store_open(const char *name, char dir[64], char path[96])
{
	snprintf(dir, 64, "/tmp/berth-test-%s-XXXXXX", name);
	assert_non_null(mkdtemp(dir));
	snprintf(path, 96, "%s/berth.db", dir);
	struct store *s = NULL;
	struct berth_err err = { 0 };
	if (store_open(path, &s, &err) < 0)
		fail_msg("store_open %s: %s", path, err.msg);
	return s;
}

/* Closes S and removes DIR with all in it. */
static inline void unit_store_close(struct store *s, const char *dir)
{
	store_close(s);
	struct berth_err err = { 0 };
	berth_rm_rf_at(AT_FDCWD, dir, &err);
}

#endif
