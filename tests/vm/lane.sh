#!/bin/sh
# tests/vm/lane.sh [--cgroup NAME] TEST...  -- the cgroup lane of `make test`
# (`make vm-lane`): the cgroup backend this host does not use, in a qemu guest.
#
# With --cgroup NAME the tests run in the cgroup leaf /NAME, not in the
# root: what a systemd host gives a service or a login shell.
#
# Runs every TEST (C unit test binaries, those under build/asan/ with
# ASAN_OPTIONS=detect_leaks=1; of *.py files, through pytest, the tests
# marked `cgroup`: the rest do not depend on the cgroup backend, and `make
# integration` runs them all natively; BERTH_BIN and BERTH_SHIM are passed
# on) in ONE boot of tests/vm/run: a real cgroup v2
# kernel on a v1 (hybrid) host, v1 hierarchies (--cgroup-v1) on a cgroup v2
# host.  Every BIN runs even when an earlier one fails;
# the exit status is 0 only if all passed.  A summary with each BIN's status
# and time ends the output.
#
# Environment: BERTH_VM_LANE_TIMEOUT  seconds per BIN (default 300; TCG is
#              ~10x slower than the host, these take 1-4 s natively)
#              BERTH_VM_LANE_PYTEST_TIMEOUT  seconds per *.py (default 1200)
#              BERTH_VM_LANE_VM_TIMEOUT  seconds for the whole VM (default 1800)
set -u
cd "$(dirname "$0")/../.." || exit 1

cgroup=
if [ "${1:-}" = --cgroup ]; then
    cgroup=${2:?tests/vm/lane.sh: --cgroup needs a NAME}
    shift 2
fi
if [ "${1:-}" != --inside ]; then
    [ $# -gt 0 ] || { echo "usage: tests/vm/lane.sh [--cgroup NAME] BIN..." >&2; exit 2; }
    for b in "$@"; do
        case "$b" in
            *.py) [ -f "$b" ] || { echo "tests/vm/lane.sh: $b: no such test file" >&2; exit 2; } ;;
            *)    [ -x "$b" ] || { echo "tests/vm/lane.sh: $b: not an executable (make it first)" >&2; exit 2; } ;;
        esac
    done
    # The lane proves the cgroup backend this host does not use: a v1
    # (hybrid) host boots a cgroup v2 guest, a v2 host a v1 guest, whose
    # daemon suites need no leaf of their own (--cgroup is v2's): `make
    # integration` ran them on v2 natively.
    if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
        [ -z "$cgroup" ] || { echo "== the daemon's suites ran on cgroup v2 natively"; exit 0; }
        echo "== cgroup v1 lane (qemu: this host is cgroup v2)"
        mode=--cgroup-v1
    else
        echo "== cgroup v2 lane (qemu${cgroup:+, in the leaf /$cgroup})"
        mode=${cgroup:+--cgroup=$cgroup}
    fi
    start=$(date +%s)
    # The checkout is shared into the guest: it may live under a path the
    # guest replaces with a fresh directory (/tmp, /var/tmp), as a CI
    # clone may.
    tests/vm/run $mode --share "$PWD" --timeout "${BERTH_VM_LANE_VM_TIMEOUT:-1800}" \
        -- tests/vm/lane.sh --inside "$@"
    rc=$?
    echo "== cgroup lane: exit $rc, $(( $(date +%s) - start )) s wall"
    exit $rc
fi
shift

# --- inside the guest ---
uptime_s() { cut -d' ' -f1 /proc/uptime; }

if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
    v=v2
    echo "kernel $(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
else
    v=v1
    echo "kernel $(uname -r), cgroup v1 hierarchies: $(ls /sys/fs/cgroup | tr '\n' ' ')"
fi

summary=
fail=0
for b in "$@"; do
    limit=${BERTH_VM_LANE_TIMEOUT:-300}
    # The loop's words were expanded already: set -- only builds this
    # step's command line.
    case "$b" in
        *.py)     label="$b (pytest)"; asan=${ASAN_OPTIONS:-}; limit=${BERTH_VM_LANE_PYTEST_TIMEOUT:-1200}
                  set -- /usr/bin/python3 -m pytest -q -p no:cacheprovider -m cgroup "$b" ;;
        */asan/*) label="$b (asan)"; asan=detect_leaks=1; set -- "$b" ;;
        *)        label="$b";        asan=${ASAN_OPTIONS:-}; set -- "$b" ;;
    esac
    echo "== $label (cgroup $v)"
    t0=$(uptime_s)
    ASAN_OPTIONS=$asan timeout -k 10 "$limit" "$@" 2>&1
    rc=$?
    dt=$(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }')
    case $rc in
        0)   res=ok ;;
        124) res="FAIL (timeout)"; fail=1 ;;
        *)   res="FAIL (exit $rc)"; fail=1 ;;
    esac
    summary="$summary$(printf '  %-16s %6s s  %s' "$res" "$dt" "$label")
"
done
echo "== cgroup $v lane summary"
printf '%s' "$summary"
exit $fail
