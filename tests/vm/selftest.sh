#!/bin/sh
# Proves that tests/vm/run gives a usable cgroup v2 guest: controllers, an OOM kill counted
# in memory.events, exit status propagation, a --share dir written back, pytest importable,
# and a timeout that leaves neither qemu nor a temp dir behind.
set -u
cd "$(dirname "$0")/../.." || exit 1
RUN=tests/vm/run
share=$(mktemp -d /tmp/berth-vm-selftest.XXXXXX) || exit 1
trap 'rm -rf "$share"' EXIT
trap 'exit 130' INT TERM HUP
fail=0
check() {  # check NAME COMMAND...
    name=$1; shift
    if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fail=1; fi
}

start=$(date +%s.%N)
BERTH_VM_TIMING=1 "$RUN" --timeout 300 --share "$share" -- sh -c '
    cat /sys/fs/cgroup/cgroup.controllers
    cg=/sys/fs/cgroup/selftest-oom
    mkdir $cg && echo 32M > $cg/memory.max && echo 0 > $cg/memory.swap.max
    sh -c "echo \$\$ > $cg/cgroup.procs && exec dd if=/dev/zero of=/dev/null bs=64M count=1" \
        2>/dev/null
    echo "dd_status=$?"
    grep "^oom_kill " $cg/memory.events
    rmdir $cg
    echo written-by-guest > "$1/from-guest"
    /usr/bin/python3 -c "import pytest; print(\"pytest\", pytest.__version__)"
' sh "$share" > "$share/out" 2> "$share/err"
rc=$?
end=$(date +%s.%N)
cat "$share/out"
check "run exits 0" [ "$rc" = 0 ]
check "controllers include cpu memory pids" \
    sh -c "head -n1 '$share/out' | tr ' ' '\n' | grep -c -x -e cpu -e memory -e pids | grep -qx 3"
check "all eight controllers" grep -qx "cpuset cpu io memory hugetlb pids rdma misc" "$share/out"
check "dd OOM-killed (137)" grep -qx "dd_status=137" "$share/out"
check "memory.events oom_kill 1" grep -qx "oom_kill 1" "$share/out"
check "--share file on host" grep -qx "written-by-guest" "$share/from-guest"
check "python3 imports pytest" grep -q "^pytest " "$share/out"
grep "timing:" "$share/err"
echo "host-measured total: $(awk "BEGIN { printf \"%.1f\", $end - $start }") s"

"$RUN" -- false
check "false exits 1" [ $? = 1 ]
"$RUN" -- sh -c 'exit 42'
check "exit 42 propagates" [ $? = 42 ]

"$RUN" --timeout 5 -- sleep 60 2>/dev/null &
pid=$!
wait $pid
check "timeout exits 124" [ $? = 124 ]
check "no qemu left after timeout" sh -c "! pgrep -f 'berth-vm\\.$pid\\.' >/dev/null"
check "no temp dir left after timeout" sh -c "! ls -d /tmp/berth-vm.$pid.* 2>/dev/null"

[ $fail = 0 ] && echo "selftest: all passed" || echo "selftest: FAILED"
exit $fail
