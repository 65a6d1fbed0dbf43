"""The load balancers' data plane: HTTP through HAProxy as daemon/lb
programs it, against the same requests straight to one target.

  targets     two tests/fixtures/lb_backend processes on 127.0.0.1 (a C
              epoll HTTP/1.1 server answering a fixed 1-byte body), so the
              target costs little beside HAProxy
  LB          tests/bench/lb_serve: lb_new + lb_apply, one HTTP listener on
              127.0.0.1 forwarding round-robin to both targets, health
              checks on (1 s)
  load        wrk (Debian's), HTTP/1.1 keep-alive, BERTH_BENCH_LB_THREADS
              threads (default 1) and BERTH_BENCH_LB_CONNS connections
              (default 8) for BERTH_BENCH_LB_SECONDS (default 5), run
              BERTH_BENCH_LB_RUNS times (default 3), direct and LB
              alternating, the same wrk command for both
  CPUs        with 2 CPUs or more, wrk runs on CPU 0 and the serving side
              (targets, HAProxy) on CPU 1, for both paths: wrk cannot
              starve HAProxy of CPU, and both paths serve from one core
              (BERTH_BENCH_LB_PIN=0: no pinning)

Prints req/s and wrk's p50/p99 latency as medians, the CPU time the
serving side spent per request (targets alone for direct; HAProxy and the
targets for LB: HAProxy's own cost is the difference), the LB's cost in
throughput against direct, and the targets (cost < 15 %, p99 < 5 ms).
Then, BERTH_BENCH_LB_RUNS times: a new target is registered (lb_apply, the
Runtime API) and requests go through the LB every 5 ms until one reaches
it: lb_apply's time and the time to the first request it serves (health
check interval 1 s, healthy threshold 1; target < 1 s).
The machine's load (os.getloadavg) is printed: with other work on its
cores the figures are noisy.  Everything it starts is stopped at the end.
"""
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as bl   # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "build" / "release" / "tests"
SECONDS = int(os.environ.get("BERTH_BENCH_LB_SECONDS", "5"))
RUNS = int(os.environ.get("BERTH_BENCH_LB_RUNS", "3"))
THREADS = int(os.environ.get("BERTH_BENCH_LB_THREADS", "1"))
CONNS = int(os.environ.get("BERTH_BENCH_LB_CONNS", "8"))
PIN = os.environ.get("BERTH_BENCH_LB_PIN", "1") != "0" and len(os.sched_getaffinity(0)) >= 2
CPUS = sorted(os.sched_getaffinity(0))
CLK = os.sysconf("SC_CLK_TCK")
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port):
    """One request on a new connection: the body, or None."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/")
        return c.getresponse().read().decode()
    except OSError:
        return None
    finally:
        c.close()


def pinned(argv, side):
    """ARGV on the client's or the serving side's CPU (see the top)."""
    if not PIN:
        return argv
    return ["taskset", "-c", str(CPUS[0] if side == "client" else CPUS[1])] + argv


def tree_cpu(roots):
    """CPU seconds (user + system) spent so far by the processes ROOTS and
    every descendant still alive (HAProxy's master and workers under
    lb_serve)."""
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # after the name: state ppid ... utime(12) stime(13)
            stats[int(d)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    total, todo, seen = 0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        total += stats[pid][1]
        todo.extend(c for c, (pp, _) in stats.items() if pp == pid)
    return total / CLK


def wrk(port, serving, host="127.0.0.1", conns=CONNS):
    """(req/s, p50 s, p99 s, errors, serving-side CPU s per request) of one
    wrk run on HOST:PORT with CONNS connections; SERVING: the pids that
    serve it."""
    cpu0 = tree_cpu(serving)
    out = bl.run(pinned(["wrk", f"-t{THREADS}", f"-c{conns}", f"-d{SECONDS}s", "--latency",
                  f"http://{host}:{port}/"], "client"), timeout=SECONDS + 30, check=True).stdout
    cpu = tree_cpu(serving) - cpu0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * UNITS[m.group(2)]
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|errors: connect|read|write|timeout)\s*:?\s*(\d+)", out))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return rps, pct(50), pct(99), errors, cpu / max(total, 1)


def main():
    if not shutil.which("wrk"):
        print("lb.py: wrk is missing (make deps installs it)")
        return 1
    procs = []
    tmp = tempfile.mkdtemp(prefix="berth-bench-lb-")
    try:
        ports = []
        for ident in ("A", "B"):
            p = bl.popen(pinned([str(BIN / "lb_backend"), ident], "serving"),
                         stdout=subprocess.PIPE, text=True)
            procs.append(p)
            ports.append(int(p.stdout.readline()))
        lb_port = free_port()
        lb = bl.popen(pinned([str(BIN / "lb_serve"), f"{tmp}/lb", str(lb_port)] +
                             [str(p) for p in ports], "serving"),
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(lb)
        if lb.stdout.readline().strip() != "ready":
            print("lb.py: lb_serve did not get ready")
            return 1
        res = {"direct": [], "LB": []}
        load_before = os.getloadavg()[0]
        for _ in range(RUNS):
            # Direct: the one target hit; LB: HAProxy and both targets.
            res["direct"].append(wrk(ports[0], [procs[0].pid]))
            res["LB"].append(wrk(lb_port, [p.pid for p in procs]))
        load_after = os.getloadavg()[0]
        applied, to_traffic = [], []
        for i in range(RUNS):
            ident = f"N{i}"
            p = bl.popen(pinned([str(BIN / "lb_backend"), ident], "serving"),
                         stdout=subprocess.PIPE, text=True)
            procs.insert(0, p)
            port = int(p.stdout.readline())
            t0 = time.monotonic()
            lb.stdin.write(f"add {port}\n")
            lb.stdin.flush()
            applied.append(int(lb.stdout.readline().split()[1]) / 1e3)
            while get(lb_port) != ident:
                if time.monotonic() - t0 > 30:
                    break
                time.sleep(0.005)
            to_traffic.append(time.monotonic() - t0)
        pin = f"wrk on CPU {CPUS[0]}, targets and HAProxy on CPU {CPUS[1]}" if PIN else "no pinning"
        print(f"\nHTTP keep-alive, wrk -t{THREADS} -c{CONNS}, {SECONDS} s x {RUNS} runs, {pin}; "
              f"load average {load_before:.2f} before, {load_after:.2f} after, {os.cpu_count()} CPUs")
        print("\n| path | req/s | p50 ms | p99 ms | serving CPU µs/request | failed requests |")
        print("|:-----|------:|-------:|-------:|-----------------------:|----------------:|")
        med = {}
        for name, runs in res.items():
            med[name] = [statistics.median(r[i] for r in runs) for i in (0, 1, 2, 4)]
            failed = sum(r[3] for r in runs)
            print(f"| {name} (median of {len(runs)}) | {med[name][0]:.0f} | {med[name][1] * 1e3:.3f} | "
                  f"{med[name][2] * 1e3:.3f} | {med[name][3] * 1e6:.1f} | {failed} |")
        bl.table("new target", [("lb_apply (no reload)", applied, ""),
                                ("registered → first request served", to_traffic, "")])
        cost = 100.0 * (1 - med["LB"][0] / med["direct"][0])
        p99 = med["LB"][2] * 1e3
        print(f"\nHAProxy's own CPU per request: {(med['LB'][3] - med['direct'][3]) * 1e6:.1f} µs")
        print(f"LB cost: {cost:.1f} % of direct throughput (target < 15 %): "
              f"{'met' if cost < 15 else 'NOT met'}; LB p99 {p99:.3f} ms (target < 5 ms): "
              f"{'met' if p99 < 5 else 'NOT met'}")
        return 0
    finally:
        for p in reversed(procs):
            if p.stdin and not p.stdin.closed:
                p.stdin.close()
            else:
                p.kill()
            try:
                bl.wait(p, timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                bl.wait(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
