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
