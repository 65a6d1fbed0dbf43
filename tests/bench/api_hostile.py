"""Signed ListClusters latency at rest and under a connection attack: a
real `berth daemon` (api.py's, SigV4 on TCP), one boto3 client on a
kept-alive connection making BERTH_BENCH_HOSTILE_CALLS (default 500) calls
in a row, first alone, then while 1,000 idle TCP connections are open and
one slow-header attacker drips a header byte every 100 ms (reconnecting
whenever the daemon closes it at the request deadline).  Prints p50, p99
and max of each, and the ratio of the two p99s: the target is under 2.
"""
import os
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from api import Daemon, check_subnet_free, cleanup_host, client  # noqa: E402

CALLS = int(os.environ.get("BERTH_BENCH_HOSTILE_CALLS", "500"))
IDLE = 1000


def latencies(ecs, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        ecs.list_clusters()
        out.append(time.perf_counter() - t0)
    return out


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


class SlowHeader(threading.Thread):
    """Drips a request head one byte per 100 ms, again when closed."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop = port, threading.Event()

    def run(self):
        while not self.stop.is_set():
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                s.sendall(b"POST / HTTP/1.1\r\nX-Slow: ")
                try:
                    while not self.stop.wait(0.1):
                        s.send(b"a")
                except OSError:
                    pass        # closed at the request deadline


def main():
    if os.geteuid() != 0:
        sys.exit("api_hostile.py needs root (the daemon's bridge and cgroups)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < IDLE + 200:
        sys.exit(f"needs {IDLE + 200} descriptors; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    cleanup_host(Path("/nonexistent"))
    check_subnet_free()
    work = Path(tempfile.mkdtemp(prefix="berth-bench-hostile-", dir="/var/tmp"))
    d, socks, slow = None, [], None
    try:
        d = Daemon(work).wait_ready()
        ecs = client(d)
        latencies(ecs, 200)                     # connect, warm up
        rest = latencies(ecs, CALLS)
        for _ in range(IDLE):
            socks.append(socket.create_connection(("127.0.0.1", d.port), timeout=10))
        slow = SlowHeader(d.port)
        slow.start()
        time.sleep(1)
        attack = latencies(ecs, CALLS)
        slow.stop.set()
        print(f"\n| signed ListClusters, {CALLS} calls | p50 ms | p99 ms | max ms |")
        print("|:--|--:|--:|--:|")
        for name, v in (("at rest", rest),
                         (f"{IDLE} idle connections + a slow-header attacker", attack)):
            print(f"| {name} | {statistics.median(v) * 1e3:.2f} | {pct(v, 99) * 1e3:.2f} "
                  f"| {max(v) * 1e3:.2f} |")
        print(f"p99 under attack / p99 at rest: {pct(attack, 99) / pct(rest, 99):.2f} (target < 2)")
    finally:
        if slow:
            slow.stop.set()
            slow.join(5)
        for s in socks:
            s.close()
        if d:
            d.stop()
        cleanup_host(work)
        shutil.rmtree(work, ignore_errors=True)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


if __name__ == "__main__":
    main()
