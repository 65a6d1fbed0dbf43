#!/bin/sh
# tests/vm/lane.sh TEST...  -- the cgroup v2 lane of `make test` (`make vm-lane`).
#
# With --cgroup NAME the tests run in the cgroup leaf /NAME, not in the
# root: what a systemd host gives a service or a login shell.
#
# Runs every TEST (C unit test binaries, those under build/asan/ with
# ASAN_OPTIONS=detect_leaks=1; *.py files through pytest, with BERTH_BIN and
# BERTH_SHIM passed on) in ONE boot of tests/vm/run, i.e. on a real
# cgroup v2 kernel, or natively when this host's /sys/fs/cgroup already is
# cgroup2 (--native-if-v2).  Every BIN runs even when an earlier one fails;
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
    if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
        echo "== cgroup v2 lane (native: this host is cgroup v2)"
    else
        echo "== cgroup v2 lane (qemu)"
    fi
    start=$(date +%s)
    # The checkout is shared into the guest: it may live under a path the
    # guest replaces with a fresh directory (/tmp, /var/tmp), as a CI
    # clone may.
    tests/vm/run --native-if-v2 --share "$PWD" --timeout "${BERTH_VM_LANE_VM_TIMEOUT:-1800}" \
        ${cgroup:+--cgroup "$cgroup"} -- tests/vm/lane.sh --inside "$@"
    rc=$?
    echo "== cgroup v2 lane: exit $rc, $(( $(date +%s) - start )) s wall"
    exit $rc
fi
shift

# --- inside the guest (or natively on a cgroup v2 host) ---
uptime_s() { cut -d' ' -f1 /proc/uptime; }

if [ "${BERTH_VM:-}" = 1 ]; then
    echo "kernel $(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
fi

summary=
fail=0
for b in "$@"; do
    limit=${BERTH_VM_LANE_TIMEOUT:-300}
    # The loop's words were expanded already: set -- only builds this
    # step's command line.
    case "$b" in
        *.py)     label="$b (pytest)"; asan=${ASAN_OPTIONS:-}; limit=${BERTH_VM_LANE_PYTEST_TIMEOUT:-1200}
                  set -- /usr/bin/python3 -m pytest -q -p no:cacheprovider "$b" ;;
        */asan/*) label="$b (asan)"; asan=detect_leaks=1; set -- "$b" ;;
        *)        label="$b";        asan=${ASAN_OPTIONS:-}; set -- "$b" ;;
    esac
    echo "== $label (cgroup v2)"
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
echo "== cgroup v2 lane summary"
printf '%s' "$summary"
exit $fail
