#!/bin/sh
# Usage: tests/lint/runtime_symbols.sh build/release/obj/runtime/*.o
# (the runtime/ objects that go into libberth.a; `make lint`).
#
# Two rules the compiler does not check (CONTRIBUTING.md, "Naming"):
#
# 1. Every global symbol a runtime/ object defines carries its module's
#    prefix, so nothing the library exports can collide with a caller's
#    name (a shim-internal `task_free` against a daemon's):
#      runtime/shim.c         shim_
#      runtime/shim_<m>.c     shim_<m>_   (or exactly shim_<m>: shim_cleanup)
#      runtime/<m>.c, other   rt_, or <m>_ (plan.c: plan_)
#    Anything else must be static.
#
# 2. The launcher's files (runtime/ outside shim*) call each other without a
#    loop: container.c on top, child.c at the bottom (runtime/child.h).
#    The edges are "a.o uses a global b.o defines", read with nm.
set -eu

fail=0
defs=$(mktemp)
trap 'rm -f "$defs"' EXIT

for o in "$@"; do
	m=$(basename "$o" .o)
	case $m in
	shim) rule='^shim_' ;;
	shim_*) rule="^${m}(_|\$)" ;;
	*) rule="^(rt|${m})_" ;;
	esac
	nm -g --defined-only "$o" | awk -v m="$m" '{ print $3, m }' >>"$defs"
	bad=$(nm -g --defined-only "$o" | awk '{ print $3 }' | grep -Ev "$rule" || true)
	for s in $bad; do
		echo "runtime/$m.c: global symbol $s lacks the module prefix ($rule): rename it or make it static" >&2
		fail=1
	done
done

# Edges between the launcher's files, as "caller callee" pairs for tsort.
edges=$(for o in "$@"; do
	m=$(basename "$o" .o)
	case $m in shim*) continue ;; esac
	echo "$m $m"
	nm -u "$o" | awk '{ print $2 }' | while read -r u; do
		awk -v s="$u" -v m="$m" '$1 == s && $2 != m && $2 !~ /^shim/ { print m, $2 }' "$defs"
	done
done | sort -u)
if ! echo "$edges" | tsort >/dev/null 2>&1; then
	echo "runtime/: the launcher's files call each other in a loop:" >&2
	echo "$edges" | tsort 2>&1 >/dev/null | sed 's/^/  /' >&2
	fail=1
fi

[ $fail -eq 0 ] && echo "runtime symbols: $# objects, every global prefixed, no call loop"
exit $fail
