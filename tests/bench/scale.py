"""`make bench-scale [N=1000]`: N concurrent tasks on one host, through a
real `berth daemon` on its unix socket (raw HTTP: the client's own cost
stays out of the figures).  Not part of `make bench` or `make test`: a
full run holds N tasks (2N-3N processes, N veths on one bridge) for a few
minutes.

  start    RunTask count 10, N/10 times in a row (busybox `sleep`, awsvpc,
           memory 32 MiB, reservation 16 MiB, initProcessEnabled so that
           SIGTERM stops it): the time from the first RunTask until
           DescribeTasks says all N are RUNNING; the daemon's CPU time
           (utime + stime, every thread) per task meanwhile; the RunTask
           calls' own latency; meanwhile a prober on a second connection alternates
           ListTasks (100) and DescribeTasks (10 of the tasks): its p99
  memory   the daemon's VmRSS with N RUNNING (and its peak, VmHWM)
  adopt    kill -9 of the daemon with N RUNNING, then a new daemon on the
           same directories, RESTARTS times (default 3): from its exec until
           it answers ListTasks (it adopts every task before its listener
           opens), then the check that the same N task ids are RUNNING
           with the same shim pids and exactly N shims alive
  stop     StopTask of every task: from the first call until DescribeTasks
           says STOPPED for all and no shim, netns, veth on the bridge,
           task cgroup or mount under the work dir is left;
           the calls in a row on one connection, or spread over
           BERTH_BENCH_STOP_CONNS connections (default 1)

The client (its RunTask caller, prober and StopTask connections) runs at
the daemon loop's nice, -10, and the daemon and its tasks at 0: otherwise,
with N tasks busy on 2 CPUs, the client's own wait for a CPU is what the
call latencies measure.
The daemon gets its own bridge berthbench3, 10.220.0.0/16, no NAT, nft
table berth_bench_scale, cgroup name berth-bench-scale, and registers a
container instance far larger than the host (benchlib.ROOMY_INSTANCE):
this measures the control plane, not placement.  Before anything starts
the host's limits are checked against what N tasks need (host_limits());
the script says which is short and by how much.  Everything is removed at
the end, on Ctrl-C and SIGTERM too.
"""
import http.client
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import images as fx      # noqa: E402
from fixtures import registry as reg   # noqa: E402
from fixtures import tasks as tk       # noqa: E402
from benchlib import ROOMY_INSTANCE, Reaper, popen, run, wait   # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BERTH = os.environ.get("BERTH_BIN", str(REPO / "build/release/berth"))
N = int(os.environ.get("N", "1000"))
PER_CALL = 10
RESTARTS = int(os.environ.get("BERTH_BENCH_RESTARTS", "3"))
STOP_CONNS = int(os.environ.get("BERTH_BENCH_STOP_CONNS", "1"))
CLIENT_NICE = -10          # the daemon loop's (SCHED_LOOP_NICE): client_priority()
BRIDGE, SUBNET, NFT, CGROUP = "berthbench3", "10.220.0.0/16", "berth_bench_scale", \
    "berth-bench-scale"
BRIDGE_PORTS_MAX = 1024      # the kernel's BR_MAX_PORTS: veths one bridge takes
DEADLINE = 300               # s for any one phase: a bound against a hang, not a target
NETCFG = {"awsvpcConfiguration": {"subnets": ["subnet-0bench"]}}

# (figure, target, unit): the table's rows, in order.
TARGET = "AmazonEC2ContainerServiceV20141113."


class UnixHTTP(http.client.HTTPConnection):
    """One kept-alive HTTP connection to the daemon's unix socket."""

    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path = str(path)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)

    def call(self, op, body):
        self.request("POST", "/", body=body, headers={
            "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + op})
        r = self.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"{op}: HTTP {r.status}: {data[:300]!r}")
        return data


TARGETS = [("all RUNNING after the first RunTask", 10.0, "s"),
           ("  daemon CPU per task started (all its threads)", None, "ms"),
           ("RunTask (count 10) call, median", None, "ms"),
           ("RunTask (count 10) call, p99", None, "ms"),
           ("API p99 while they start (prober)", 50.0, "ms"),
           ("daemon VmRSS, N RUNNING", 50.0, "MiB"),
           ("daemon VmHWM (peak RSS)", None, "MiB"),
           ("kill -9 + restart → all re-adopted (median)", 0.5, "s"),
           ("StopTask of all → all STOPPED, nothing left", 10.0, "s"),
           ("  StopTask calls themselves", None, "s")]


# ------------------------------------------------------------------ host limits

def read_int(path):
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def host_limits(n):
    """[(what, needed, have, ok, hard)]: what N tasks need of the host.  A
    task is a shim, the container's init and `sleep` (3 processes), a
    netns with a veth on the bridge, an address, cgroups and a netns
    mount; the daemon holds one connection per shim."""
    import resource
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    inf = float("inf")
    pids_max = None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for base in (f"/sys/fs/cgroup/pids{path}", f"/sys/fs/cgroup{path}") \
                if ctrls in ("pids", "") else ():
            v = Path(base, "pids.max")
            if v.exists():
                txt = v.read_text().strip()
                pids_max = inf if txt == "max" else int(txt)
    mem = {ln.split(":")[0]: int(ln.split()[1]) * 1024
           for ln in Path("/proc/meminfo").read_text().splitlines()}
    prefix = int(SUBNET.split("/")[1])
    rows = [
        ("veths on one bridge (BR_MAX_PORTS)", n + 1, BRIDGE_PORTS_MAX, True),
        ("addresses in " + SUBNET, n + 2, 2 ** (32 - prefix) - 2, True),
        ("kernel.pid_max", 3 * n + 4096, read_int("/proc/sys/kernel/pid_max"), True),
        ("kernel.threads-max", 3 * n + 4096, read_int("/proc/sys/kernel/threads-max"), True),
        ("pids.max of this cgroup", 3 * n + 1024, pids_max if pids_max is not None else inf, True),
        ("RLIMIT_NPROC (hard; root is exempt)", 3 * n + 1024,
         inf if nproc == resource.RLIM_INFINITY or os.geteuid() == 0 else nproc, True),
        ("RLIMIT_NOFILE hard (the daemon: a socket per shim)", 2 * n + 256,
         inf if nofile == resource.RLIM_INFINITY else nofile, True),
        ("fs.file-max", 30 * n, read_int("/proc/sys/fs/file-max"), True),
        ("fs.mount-max (a netns mount per task)", 4 * n + 1024,
         read_int("/proc/sys/fs/mount-max") or inf, True),
        ("fs.inotify.max_user_instances (cgroup v2 waits)", 64,
         read_int("/proc/sys/fs/inotify/max_user_instances"), True),
        ("MemAvailable (~2 MiB per idle task)", 2 * 2 ** 20 * n + 2 ** 30,
         mem.get("MemAvailable", 0), True),
        # Tasks that talk to the host each hold a neighbour entry; these
        # sleep and send nothing, so a short table only warns.
        ("net.ipv4.neigh.default.gc_thresh3 (if every task talks)", n + 64,
         read_int("/proc/sys/net/ipv4/neigh/default/gc_thresh3"), False),
    ]
    return [(what, need, have, have is not None and have >= need, hard)
            for what, need, have, hard in rows]


def check_host(n):
    rows = host_limits(n)
    print(f"host limits for N={n}:")
    for what, need, have, ok, hard in rows:
        mark = "ok" if ok else ("SHORT" if hard else "warning")
        h = "unlimited" if have == float("inf") else have
        print(f"  {what:<58} need >= {need:<12} have {h!s:<12} {mark}")
    short = [r for r in rows if not r[3] and r[4]]
    if short:
        raise SystemExit("this host cannot hold N=%d tasks: %s (raise them with sysctl/ulimit, "
                         "or run with a smaller N)" % (n, "; ".join(
                             f"{w} is {h}, needs {need}" for w, need, h, _, _ in short)))


# ------------------------------------------------------------------ the daemon

class Daemon:
    """berth daemon on a unix socket, everything under WORK; start() again
    after kill() re-adopts what the last one left."""

    def __init__(self, work, registry_host):
        self.work, self.registry_host = work, registry_host
        self.run_dir = work / "run"
        self.sock = self.run_dir / "berth.sock"
        self.proc = None
        self.n_started = 0

    def argv(self):
        w = self.work
        return [BERTH, "daemon", "--root", str(w / "root"), "--run-root", str(self.run_dir),
                "--log-root", str(w / "logs"), "--listen", f"unix:{self.sock}",
                "--insecure-registry", self.registry_host, "--bridge", BRIDGE,
                "--subnet", SUBNET, "--nft-table", NFT, "--no-nat", "--cgroup-name", CGROUP,
                "--introspection", "off", "--task-endpoint", "off",
                *ROOMY_INSTANCE]

    def start(self):
        """Starts it; seconds from the exec until ListTasks answers."""
        self.n_started += 1
        self.stderr_path = self.work / f"daemon{self.n_started}.stderr"
        with open(self.stderr_path, "wb") as err:
            t0 = time.monotonic()
            self.proc = popen(self.argv(), stdout=subprocess.DEVNULL, stderr=err,
                              preexec_fn=lambda: os.setpriority(os.PRIO_PROCESS, 0, 0))
        while True:
            try:
                c = UnixHTTP(self.sock)
                c.call("ListClusters", b"{}")
                c.close()
                return time.monotonic() - t0
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() - t0 > 60:
                raise RuntimeError(f"daemon not answering ({self.proc.poll()}): "
                                   f"{self.stderr()[-2000:]}")
            time.sleep(0.002)

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def kill(self):
        self.proc.kill()
        wait(self.proc)

    def stop(self):
        """SIGTERM: it must exit 0."""
        if self.proc.poll() is not None:
            wait(self.proc)
        elif not tk.terminate(self.proc):
            raise RuntimeError("the daemon ignored SIGTERM")
        if self.proc.returncode != 0:
            raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.stderr()[-2000:]}")

    def cpu_seconds(self):
        """utime + stime of the daemon, its ended threads included."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory(self):
        out = {}
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split()[0]] = int(line.split()[1]) * 1024
        return out


class Api:
    """JSON calls on one kept-alive unix-socket connection."""

    def __init__(self, d):
        self.c = UnixHTTP(d.sock)

    def __call__(self, op, **body):
        return json.loads(self.c.call(op, json.dumps(body).encode()))

    def close(self):
        self.c.close()


def list_all(api, **filt):
    arns, token = [], None
    while True:
        out = api("ListTasks", maxResults=100, **filt, **({"nextToken": token} if token else {}))
        arns += out["taskArns"]
        token = out.get("nextToken")
        if not token:
            return arns


def statuses(api, arns):
    """{arn: lastStatus}, 100 a call."""
    out = {}
    for i in range(0, len(arns), 100):
        got = api("DescribeTasks", tasks=arns[i:i + 100])
        if got["failures"]:
            raise RuntimeError(f"DescribeTasks: {got['failures'][:3]}")
        out.update({t["taskArn"]: t for t in got["tasks"]})
    return out


def wait_all(api, arns, status, t0, extra=lambda: True):
    """Polls until every task of ARNS is STATUS and EXTRA() holds; the time
    since T0 (monotonic)."""
    pending = list(arns)
    while True:
        got = statuses(api, pending) if pending else {}
        bad = [t for t in got.values() if t["lastStatus"] == "STOPPED" and status != "STOPPED"]
        if bad:
            raise RuntimeError(f"{len(bad)} tasks STOPPED: {bad[0].get('stoppedReason')}")
        pending = [a for a in pending if got[a]["lastStatus"] != status]
        if not pending and extra():
            return time.monotonic() - t0
        if time.monotonic() - t0 > DEADLINE:
            raise RuntimeError(f"{len(pending)} of {len(arns)} tasks not {status} after "
                               f"{DEADLINE} s")
        time.sleep(0.05)


# ------------------------------------------------------------------ phases

class Prober(threading.Thread):
    """ListTasks (100) and DescribeTasks (10 known tasks) in turn on its own
    connection, recording each call's latency, until stopped."""

    def __init__(self, d, arns):
        super().__init__(name="prober", daemon=True)
        self.api, self.arns = Api(d), arns
        self.samples, self.error, self.done = [], None, threading.Event()

    def run(self):
        try:
            i = 0
            while not self.done.is_set():
                t0 = time.monotonic()
                if i % 2 or not self.arns:
                    self.api("ListTasks", maxResults=100)
                else:
                    self.api("DescribeTasks", tasks=self.arns[-10:])
                self.samples.append(time.monotonic() - t0)
                i += 1
                time.sleep(0.005)
        except Exception as e:      # noqa: BLE001 - reported by the caller
            self.error = e
        finally:
            self.api.close()

    def finish(self):
        self.done.set()
        self.join()
        if self.error:
            raise self.error
        return self.samples


def register(api, image):
    return api("RegisterTaskDefinition", family="scale", networkMode="awsvpc",
               containerDefinitions=[{
                   "name": "main", "image": image, "essential": True,
                   "entryPoint": ["/bin/sleep", "86400"], "memory": 32,
                   "memoryReservation": 16, "stopTimeout": 2,
                   "linuxParameters": {"initProcessEnabled": True}}],
               )["taskDefinition"]["taskDefinitionArn"]


def p99(v):
    s = sorted(v)
    return s[min(len(s) - 1, int(0.99 * len(s)))]


def start_all(d, api, td, fig):
    arns, calls = [], []
    prober = Prober(d, arns)
    prober.start()
    cpu0 = d.cpu_seconds()
    t0 = time.monotonic()
    try:
        for _ in range(N // PER_CALL):
            c0 = time.monotonic()
            out = api("RunTask", taskDefinition=td, count=PER_CALL, networkConfiguration=NETCFG)
            calls.append(time.monotonic() - c0)
            if out["failures"] or len(out["tasks"]) != PER_CALL:
                raise RuntimeError(f"RunTask: {out['failures']}")
            arns += [t["taskArn"] for t in out["tasks"]]
        fig[0] = [wait_all(api, arns, "RUNNING", t0)]
        fig[1] = [(d.cpu_seconds() - cpu0) / N * 1e3]
    finally:
        probes = prober.finish()
    fig[2] = [statistics.median(calls) * 1e3]
    fig[3] = [p99(calls) * 1e3]
    fig[4] = [p99(probes) * 1e3]
    print(f"  {N} RUNNING after {fig[0][0]:.2f} s; RunTask calls: first "
          f"{calls[0] * 1e3:.0f} ms, last {calls[-1] * 1e3:.0f} ms; prober: {len(probes)} calls, "
          f"median {statistics.median(probes) * 1e3:.1f} ms", flush=True)
    return arns


def shims_by_task(work):
    """{task id: {shim pids}} of the live shims under WORK: a berth-shim
    whose parent is not one (the container's init is the shim's fork and
    keeps its argv, the plan's path)."""
    procs = [p for p in tk.processes() if p[2] != "Z"]
    shim_pids = {pid for pid, _, _, argv in procs
                 if argv and os.path.basename(argv[0]) == "berth-shim"}
    out = {}
    for pid, ppid, _, argv in procs:
        if pid not in shim_pids or ppid in shim_pids:
            continue
        m = re.search(r"^%s/root/tasks/([0-9a-f]{32})/plan\.json$" % re.escape(str(work)),
                      argv[-1])
        if m:
            out.setdefault(m.group(1), set()).add(pid)
    return out


def restart(d, arns):
    """kill -9, then a new daemon; seconds until it answers, after checking
    that it kept every task and every shim."""
    before = shims_by_task(d.work)
    ids = {a.rsplit("/", 1)[1] for a in arns}
    if set(before) != ids or any(len(p) != 1 for p in before.values()):
        raise RuntimeError(f"before the restart: {len(before)} tasks with a shim, "
                           f"{sum(len(p) for p in before.values())} shims, for {len(ids)} tasks")
    d.kill()
    dt = d.start()
    api = Api(d)
    try:
        running = list_all(api, desiredStatus="RUNNING")
        got = statuses(api, running)
    finally:
        api.close()
    after = shims_by_task(d.work)
    lost = ids - {a.rsplit("/", 1)[1] for a in running}
    not_running = [a for a, t in got.items() if t["lastStatus"] != "RUNNING"]
    if len(running) != len(arns) or lost or not_running or after != before:
        raise RuntimeError(f"after the restart: {len(running)} listed RUNNING (want {len(arns)}), "
                           f"{len(lost)} lost, {len(not_running)} not RUNNING, "
                           f"shims changed: {after != before}")
    return dt


def leftovers(work):
    """What the tasks left on the host: {kind: count}."""
    out = {}
    shims = tk.shim_processes(work)
    veths = run(["ip", "-o", "link", "show", "master", BRIDGE]).stdout.strip().splitlines()
    cgroups = tk.task_cgroup_dirs(CGROUP)
    mounts = tk.mount_lines(work)
    nsdir = work / "run" / "netns"
    netns = os.listdir(nsdir) if nsdir.is_dir() else []
    for kind, v in (("shims", shims), ("veths", veths), ("cgroups", cgroups),
                    ("mounts", mounts), ("netns", netns)):
        if v:
            out[kind] = len(v)
    return out


def stop_calls(d, api, arns):
    """StopTask of every ARN: in a row on API's connection, or spread over
    STOP_CONNS connections of their own (each answer waits for the fsync
    of the group commit holding its write: one client in a row pays one
    fsync a call, concurrent ones share them)."""
    if STOP_CONNS <= 1:
        for a in arns:
            api("StopTask", task=a, reason="bench done")
        return
    errors = []

    def worker(part):
        c = Api(d)
        try:
            for a in part:
                c("StopTask", task=a, reason="bench done")
        except (OSError, RuntimeError, ValueError) as e:
            errors.append(e)
        finally:
            c.close()
    threads = [threading.Thread(target=worker, args=(arns[i::STOP_CONNS],))
               for i in range(STOP_CONNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def stop_all(d, api, arns, fig):
    t0 = time.monotonic()
    stop_calls(d, api, arns)
    calls = time.monotonic() - t0
    left = {}

    def clean():
        left.clear()
        left.update(leftovers(d.work))
        return not left
    try:
        fig[8] = [wait_all(api, arns, "STOPPED", t0, clean)]
    except RuntimeError:
        raise RuntimeError(f"after StopTask: {left}")
    fig[9] = [calls]
    print(f"  {N} stopped and torn down after {fig[8][0]:.2f} s "
          f"(the StopTask calls took {calls:.2f} s on {STOP_CONNS} connection(s))", flush=True)


def print_table(fig):
    head = ["figure (N=%d)" % N, "median", "target", "result"]
    rows = []
    for i, (name, target, unit) in enumerate(TARGETS):
        v = fig.get(i)
        if not v:
            rows.append([name, "-", "", "did not run"])
            continue
        m = statistics.median(v)
        txt = f"{m:.2f} {unit}" + (f" (n={len(v)})" if len(v) > 1 else "")
        ok = "" if target is None else ("pass" if m < target else "FAIL")
        rows.append([name, txt, "" if target is None else f"< {target:g} {unit}", ok])
    w = [max(len(r[i]) for r in [head] + rows) for i in range(4)]
    print()
    for r in [head, ["-" * x for x in w]] + rows:
        print("| " + " | ".join(c.ljust(x) for c, x in zip(r, w)) + " |")
    print(f"(load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f} on {os.cpu_count()} CPUs)")


def client_priority():
    """This thread, and the threads it starts from now on (the prober, the
    StopTask connections), at the daemon loop's nice (-10) when root: with
    N tasks starting or stopping on 2 CPUs a client at nice 0 gets a sliver
    of a CPU, and its calls then measure its own wait for one, not the
    daemon.  The daemon and the tasks start at nice 0 (Daemon.start)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CLIENT_NICE)
    except PermissionError:
        pass


def bench(d, image, fig):
    """Fills FIG {row of TARGETS: samples} as the phases go."""
    client_priority()
    api = Api(d)
    try:
        api("CreateCluster")
        td = register(api, image)
        print(f"starting {N} tasks: RunTask count {PER_CALL} × {N // PER_CALL}", flush=True)
        arns = start_all(d, api, td, fig)
        time.sleep(1)
        mem = d.memory()
        fig[5], fig[6] = [mem["VmRSS:"] / 2 ** 20], [mem["VmHWM:"] / 2 ** 20]
    finally:
        api.close()
    times = []
    for i in range(RESTARTS):
        times.append(restart(d, arns))
        print(f"  restart {i + 1}: answering, {N} tasks re-adopted, after "
              f"{times[-1] * 1e3:.0f} ms", flush=True)
        fig[7] = times
    api = Api(d)
    try:
        stop_all(d, api, arns, fig)
    finally:
        api.close()


# ------------------------------------------------------------------ clean-up

def cleanup_host(work):
    """Whatever a run (this one, or one that crashed) left: shims, task
    processes, mounts, veths, the bridge, the nft tables, cgroups."""
    for pid in tk.shim_processes(work) if work else []:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    tk.remove_cgroup_roots(CGROUP)
    for line in sorted(tk.mount_lines(work), reverse=True) if work else []:
        run(["umount", "-l", line.split()[4]])
    for line in run(["ip", "-o", "link", "show", "master", BRIDGE]).stdout.splitlines():
        m = re.match(r"\d+:\s+([^:@\s]+)", line)
        if m:
            run(["ip", "link", "del", m.group(1)])
    run(["ip", "link", "del", BRIDGE])
    for family in ("ip", "bridge"):
        run(["nft", "delete", "table", family, NFT])


def on_sigterm(signum, _frame):
    """SIGTERM cleans up as Ctrl-C does (a second one is ignored meanwhile)."""
    signal.signal(signum, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def main():
    if os.geteuid() != 0:
        sys.exit("scale.py needs root (namespaces, cgroups, veths)")
    if N % PER_CALL or N <= 0:
        sys.exit(f"N must be a positive multiple of {PER_CALL}, not {N}")
    signal.signal(signal.SIGTERM, on_sigterm)
    check_host(N)
    cleanup_host(None)
    check_subnet_free_of(SUBNET)
    work = Path(tempfile.mkdtemp(prefix="berth-bench-scale-", dir="/var/tmp"))
    os.chmod(work, 0o755)
    fig, errors = {}, []
    with Reaper() as reaper:
        d = None
        try:
            with reg.Registry("anon") as r:
                im = fx.catalogue()["busybox"]
                r.push(im)
                d = Daemon(work, r.host)
                d.start()
                bench(d, im.ref(r.host), fig)
        except BaseException as e:
            errors.append(e)
        finally:
            if d and d.proc:
                try:
                    if d.proc.poll() is None and errors:
                        stop_leftover_tasks(d)
                    d.stop()
                except (RuntimeError, OSError) as e:
                    errors.append(e)
            if d and d.proc and errors:
                print(f"daemon stderr (last lines):\n{d.stderr()[-4000:]}", file=sys.stderr)
            left = leftovers(work)
            if left and not errors:
                errors.append(RuntimeError(f"left on the host: {left}"))
            cleanup_host(work)
            shutil.rmtree(work, ignore_errors=True)
    print_table(fig)
    zombies = reaper.zombies()
    if zombies:
        errors.append(RuntimeError(f"zombies left: {zombies}"))
    if errors:
        raise errors[0]
    print("daemon exited 0; no shim, veth, cgroup, mount, netns or zombie left")


def stop_leftover_tasks(d):
    """After a failure: StopTask for whatever still runs, briefly."""
    try:
        api = Api(d)
        for a in list_all(api, desiredStatus="RUNNING"):
            api("StopTask", task=a, reason="bench failed")
        api.close()
    except (OSError, RuntimeError, ValueError):
        pass


def check_subnet_free_of(subnet):
    """No address or route of the host may overlap SUBNET (ours are gone)."""
    ours = ipaddress.ip_network(subnet)
    for cmd in (["ip", "-4", "-o", "addr"], ["ip", "-4", "route", "show", "table", "all"]):
        for word in run(cmd).stdout.split():
            try:
                net = ipaddress.ip_network(word, strict=False)
            except ValueError:
                continue
            if net.prefixlen > 0 and net.overlaps(ours):
                raise SystemExit(f"{subnet} is in use on this host ({net}): pick another")


if __name__ == "__main__":
    main()
