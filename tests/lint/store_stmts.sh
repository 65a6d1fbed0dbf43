#!/bin/sh
# The store prepares every statement once per connection and keeps it in
# its cache (daemon/store/store.c) until store_close(), which finalizes it.
# A table module that finalized one itself would leave the cache holding a
# freed statement: modules release theirs (store_stmt_release(),
# _cleanup_stmt_) and never call sqlite3_finalize() or prepare outside
# store_prepare().  Prints each such call and exits 1 if there is one.
cd "$(dirname "$0")/../.." || exit 2
bad=$(grep -n 'sqlite3_finalize\|sqlite3_prepare' daemon/*/*.c | grep -v '^daemon/store/store\.c:')
if [ -n "$bad" ]; then
	printf '%s\n' "$bad" | sed 's/^/store statements: finalized or prepared outside the cache (daemon\/store\/store.c): /' >&2
	exit 1
fi
echo "store statements: every one goes through the cache (store_prepare, store_stmt_release)"
