"""What the benchmarks share: running a command, a markdown table of
median / min / max, and a child reaper for benchmarks whose processes
(shims, container processes) reparent to the benchmark.

Reaper: the benchmark makes itself a child subreaper (PR_SET_CHILD_SUBREAPER),
so that everything its daemon's shims leave behind reparents to it rather
than to pid 1, and a thread reaps those zombies (every POLL seconds: not on
SIGCHLD, whose Python handler ran inside itself when hundreds of shims
exited at once and deadlocked on the Event's lock).  It never reaps a process the benchmark started itself through
run() or popen(): their exit status belongs to whoever waits for them.
"""
import ctypes
import os
import statistics
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import tasks as tk   # noqa: E402

PR_SET_CHILD_SUBREAPER = 36

# The benches' daemons register a container instance far larger than this
# machine: they measure the control plane, not placement (a 2-core host
# registers 2048 CPU units, which ten 256-unit tasks overcommit).
ROOMY_INSTANCE = ["--instance-cpu", "1048576", "--instance-memory", "16777216"]

_spawn_lock = threading.Lock()   # held from fork to registration in _ours
_ours = set()                    # pids of children started here, not the reaper's


def popen(argv, **kw):
    """subprocess.Popen, registered so that the reaper leaves it alone."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    with _spawn_lock:
        p = subprocess.Popen(argv, **kw)
        _ours.add(p.pid)
    return p


def wait(p, timeout=None):
    """p.wait(), then the pid is no longer ours (a reused pid may be the reaper's)."""
    rc = p.wait(timeout)
    with _spawn_lock:
        _ours.discard(p.pid)
    return rc


def run(argv, timeout=None, check=False, **kw):
    """subprocess.run(argv, capture_output=True, text=True), stdin closed."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    p = popen(argv, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException:
        p.kill()
        p.communicate()
        raise
    finally:
        with _spawn_lock:
            _ours.discard(p.pid)
    done = subprocess.CompletedProcess(argv, p.returncode, out, err)
    if check:
        done.check_returncode()
    return done


# ------------------------------------------------------------------ reaper

def set_child_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _children():
    """Pids of this process's children, from /proc/self/task/*/children."""
    out = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                out |= {int(x) for x in f.read().split()}
        except OSError:
            pass
    return out


class Reaper:
    """Makes this process a child subreaper and reaps the zombies of
    processes it did not start (see the module comment).  Use as a context
    manager from the main thread; .reaped counts them."""

    def __init__(self):
        self.reaped = 0
        self._kick = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="reaper", daemon=True)

    POLL = 0.2

    def __enter__(self):
        set_child_subreaper()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._kick.set()
        self._thread.join()
        self.reap()

    def _loop(self):
        while not self._stop:
            self._kick.wait(self.POLL)
            self.reap()

    def reap(self):
        """Reaps every zombie child not started here; returns how many."""
        n = 0
        with _spawn_lock:
            for pid in _children() - _ours:
                if tk.proc_state(pid) != "Z":
                    continue
                try:
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        n += 1
                except ChildProcessError:
                    pass
        self.reaped += n
        return n

    def zombies(self):
        """Zombie children left (ours included): none once all is done."""
        return sorted(pid for pid in _children() if tk.proc_state(pid) == "Z")


# ------------------------------------------------------------------ tables

def table(title, rows, unit="ms", scale=1e3, digits=2):
    """A markdown table: rows are (name, samples in seconds or None, note);
    a row without samples shows its note as the reason it did not run."""
    cells = []
    for name, samples, note in rows:
        if samples:
            f = f"{{:.{digits}f}}"
            cells.append([name, f.format(statistics.median(samples) * scale),
                          f.format(min(samples) * scale), f.format(max(samples) * scale),
                          str(len(samples)), note or ""])
        else:
            cells.append([name, "-", "-", "-", "0", f"did not run: {note}"])
    head = [title, f"median {unit}", f"min {unit}", f"max {unit}", "n", "note"]
    if not any(c[5] for c in cells):
        head, cells = head[:5], [c[:5] for c in cells]
    widths = [max(len(r[i]) for r in [head] + cells) for i in range(len(head))]

    def line(r):
        return "| " + " | ".join(
            v.ljust(w) if i in (0, 5) else v.rjust(w)
            for i, (v, w) in enumerate(zip(r, widths))) + " |"
    print()
    print(line(head))
    print("|" + "|".join(("-" * (w + 1) + ":" if i not in (0, 5) else ":" + "-" * (w + 1))
                         for i, w in enumerate(widths)) + "|")
    for r in cells:
        print(line(r))


# ------------------------------------------------------------------ load

def http_request(target, body):
    """The bytes of one AWS JSON 1.1 POST (no SigV4: for the unix socket)."""
    return (f"POST / HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Type: application/x-amz-json-1.1\r\nX-Amz-Target: {target}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def http_call(sock, request):
    """Sends REQUEST on the kept-alive SOCK; returns (status, body)."""
    sock.sendall(request)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the daemon closed the connection")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = next(int(v) for k, _, v in (ln.partition(b":") for ln in lines[1:])
                  if k.strip().lower() == b"content-length")
    while len(body) < length:
        chunk = sock.recv(max(65536, length - len(body)))
        if not chunk:
            raise ConnectionError("the daemon closed the connection mid-answer")
        body += chunk
    return status, body


def _load_worker(path, request, start, stop_at, out):
    """One client process: one connection, the same prebuilt request in a
    loop from START until STOP_AT (CLOCK_MONOTONIC is system-wide)."""
    import socket
    import time
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    status, body = http_call(sock, request)      # warm up, outside the clock
    if status != 200:
        out.put(RuntimeError(f"HTTP {status}: {body[:300]!r}"))
        return
    start.wait()
    lat, clock, end = [], time.perf_counter_ns, stop_at.value
    c0 = time.process_time()
    while time.monotonic() < end:
        t0 = clock()
        http_call(sock, request)
        lat.append(clock() - t0)
    out.put((lat, time.process_time() - c0))
    sock.close()


def unix_load(path, request, conns, seconds, daemon_cpu):
    """CONNS client processes, each on its own kept-alive connection to the
    unix socket PATH, send REQUEST for SECONDS.  Returns {"rate": req/s,
    "p50", "p99": latency s, "daemon": daemon CPU s per request (from
    DAEMON_CPU(), read before and after), "client": the clients' CPU s per
    request}: a client that is not the bottleneck spends less per request
    than its share of the wall time."""
    import multiprocessing as mp
    import time
    ctx = mp.get_context("fork")
    start, out = ctx.Barrier(conns + 1), ctx.Queue()
    stop_at = ctx.Value("d", 0.0)
    procs = [ctx.Process(target=_load_worker, args=(path, request, start, stop_at, out))
             for _ in range(conns)]
    for p in procs:
        p.start()
    try:
        stop_at.value = time.monotonic() + seconds + 0.05
        c0 = daemon_cpu()
        t0 = time.monotonic()
        start.wait(timeout=30)
        results = [out.get(timeout=seconds + 60) for _ in procs]
        dt = stop_at.value - t0
        c1 = daemon_cpu()
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.exitcode is None:
                p.kill()
                p.join()
    for r in results:
        if isinstance(r, Exception):
            raise r
    lat = sorted(x for r in results for x in r[0])
    n = len(lat)
    return {"rate": n / dt, "p50": lat[n // 2] / 1e9, "p99": lat[min(n - 1, n * 99 // 100)] / 1e9,
            "daemon": (c1 - c0) / n, "client": sum(r[1] for r in results) / n}


def proc_cpu_seconds(pid):
    """utime + stime of PID (all its threads, dead ones included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
