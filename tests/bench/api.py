"""The daemon through its API: a real `berth daemon` (SigV4 on TCP, boto3),
pulling from a local docker-registry and running tasks in real shims.

  RunTask → RUNNING   run_task, then describe_tasks every ~2 ms
                      (BERTH_BENCH_API_POLL_MS) until the task is RUNNING:
                      API included, image warm (the manifest is still
                      checked, as every RunTask does); then stop_task and
                      wait for STOPPED, not counted.  Split by the daemon's
                      createdAt, pullStartedAt, pullStoppedAt, startedAt
                      (whole ms) and the shim's own createdAt and container
                      startedAt (its STATUS on the control socket)
  reads/s             DescribeTasks of 10 RUNNING tasks, ListTasks (10 tasks)
                      and DescribeServices of 10 services side by side,
                      each on 1 and 4 kept-alive unix-socket connections
                      (raw HTTP, no SigV4: a client process per connection
                      sending one prebuilt request, so that the client is
                      not the bottleneck; its CPU per request is printed
                      beside the daemon's) for BERTH_BENCH_API_SECONDS
                      (default 5): req/s, p50/p99 latency, and the daemon's
                      utime+stime per request; then DescribeTasks through
                      boto3 (SigV4 on TCP), one client
  daemon memory       VmRSS, RssAnon and Pss (smaps_rollup) right after
                      start, with 10 tasks RUNNING, and idle at the end

Medians of BERTH_BENCH_API_RUNS (default 50; 0 skips them) starts, after one that pulls
the image; the rates are medians of 3 runs.  The daemon gets its own bridge
berthbench1, 10.218.0.0/16, no NAT, nft table berth_bench_api and cgroup
name berth-bench-api; this process is the shims' subreaper and reaps them.
Everything is removed at the end, and checked: no shim, veth, cgroup,
mount, netns or zombie may be left, and the daemon must exit 0 on SIGTERM.
"""
import ctypes
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
import time
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import images as fx      # noqa: E402
from fixtures import registry as reg   # noqa: E402
from fixtures import tasks as tk       # noqa: E402
from benchlib import ROOMY_INSTANCE, http_call, http_request, proc_cpu_seconds, \
    unix_load                         # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BERTH = os.environ.get("BERTH_BIN", str(REPO / "build/release/berth"))
RUNS = int(os.environ.get("BERTH_BENCH_API_RUNS", "50"))
SECONDS = float(os.environ.get("BERTH_BENCH_API_SECONDS", "5"))
RATE_RUNS = 3
TASKS = 10
SERVICES = 10
THREADS = 4
POLL = float(os.environ.get("BERTH_BENCH_API_POLL_MS", "2")) / 1e3
BRIDGE, SUBNET, NFT_TABLE, CGROUP = "berthbench1", "10.218.0.0/16", "berth_bench_api", \
    "berth-bench-api"
REGION, AKID, SECRET = "us-east-1", "AKIDBERTHBENCH", "berth/BENCH+secret/key0123456789abcdef"
TARGET = "AmazonEC2ContainerServiceV20141113."
NETCFG = {"awsvpcConfiguration": {"subnets": ["subnet-0berthbench"],
                                  "assignPublicIp": "DISABLED"}}


def run(argv):
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)


# ---- the shims' subreaper ----

def set_child_subreaper():
    """Each shim detaches (its starter exits) and reparents to the nearest
    subreaper: this process, not pid 1, so that reap_shims() can wait for
    it and nothing is left as a zombie."""
    if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:   # PR_SET_CHILD_SUBREAPER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def zombie_children():
    """{pid: comm} of this process's children that have exited, unreaped."""
    out, me = {}, os.getpid()
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/stat") as f:
                head, tail = f.read().rsplit(")", 1)
        except (OSError, ValueError):
            continue
        state, ppid = tail.split()[:2]
        if state == "Z" and int(ppid) == me:
            out[int(d)] = head.split("(", 1)[1]
    return out


def reap_shims():
    """Waits for exited shims only: subprocess waits for its own children."""
    for pid, comm in zombie_children().items():
        if comm == "berth-shim":
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


# ---- the daemon ----

class Daemon:
    def __init__(self, work, registry_host=None):
        self.root, self.run, self.logs = work / "root", work / "run", work / "logs"
        self.sock = self.run / "berth.sock"
        self.port = reg.free_port()
        creds = work / "credentials"
        creds.write_text(f"[default]\naws_access_key_id = {AKID}\n"
                         f"aws_secret_access_key = {SECRET}\n")
        creds.chmod(0o600)
        self.stderr_path = work / "daemon.stderr"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [BERTH, "daemon", "--root", str(self.root), "--run-root", str(self.run),
                 "--log-root", str(self.logs), "--listen", f"unix:{self.sock}",
                 "--listen", f"tcp:127.0.0.1:{self.port}", "--credentials", str(creds),
                 "--bridge", BRIDGE, "--subnet", SUBNET, "--no-nat", "--nft-table", NFT_TABLE,
                 "--cgroup-name", CGROUP, "--introspection", "off", *ROOMY_INSTANCE,
                 *(["--insecure-registry", registry_host] if registry_host else [])],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        self.pid = self.proc.pid
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while "ready" not in self.stderr():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon not ready ({self.proc.poll()}): {self.stderr()}")
            time.sleep(0.01)
        return self

    def stop(self):
        """SIGTERM: the daemon must exit 0."""
        if not tk.terminate(self.proc):
            raise RuntimeError("the daemon ignored SIGTERM")
        if self.proc.returncode != 0:
            raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.stderr()[-2000:]}")

    def memory(self):
        """{"VmRSS:", "RssAnon:", "Pss:"}: bytes."""
        out = {}
        for path, names in ((f"/proc/{self.pid}/status", ("VmRSS:", "RssAnon:")),
                            (f"/proc/{self.pid}/smaps_rollup", ("Pss:",))):
            with open(path) as f:
                for line in f:
                    if line.startswith(names):
                        out[line.split()[0]] = int(line.split()[1]) * 1024
        return out


def client(d):
    """A boto3 ECS client of its own (a session each: threads share none)."""
    return boto3.session.Session().client(
        "ecs", endpoint_url=d.endpoint, region_name=REGION, aws_access_key_id=AKID,
        aws_secret_access_key=SECRET, config=Config(retries={"total_max_attempts": 1}))


# ---- tasks ----

def register(ecs, image):
    return ecs.register_task_definition(
        family="bench", networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[{"name": "main", "image": image, "essential": True,
                               "entryPoint": ["/bin/sh", "-c"], "command": [tk.IDLE],
                               # A stop that lands before the trap is set
                               # would otherwise wait the default 30 s.
                               "stopTimeout": 2}])["taskDefinition"]["taskDefinitionArn"]


def run_tasks(ecs, td, count=1):
    out = ecs.run_task(taskDefinition=td, count=count, networkConfiguration=NETCFG)
    if out["failures"] or len(out["tasks"]) != count:
        raise RuntimeError(f"RunTask: {out['failures']}")
    return [t["taskArn"] for t in out["tasks"]]


def describe(ecs, arns):
    out = ecs.describe_tasks(tasks=arns)
    if out["failures"]:
        raise RuntimeError(f"DescribeTasks: {out['failures']}")
    return out["tasks"]


def wait_status(ecs, arns, status, timeout=60, poll=0.05):
    deadline = time.monotonic() + timeout
    while True:
        tasks = describe(ecs, arns)
        if all(t["lastStatus"] == status for t in tasks):
            return tasks
        bad = [t for t in tasks if t["lastStatus"] == "STOPPED" and status != "STOPPED"]
        if bad:
            raise RuntimeError(f"task stopped: {bad[0].get('stoppedReason')}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not {status} after {timeout} s: "
                               f"{[t['lastStatus'] for t in tasks]}")
        reap_shims()
        time.sleep(poll)


def stop_all(ecs):
    arns = ecs.list_tasks()["taskArns"]
    for arn in arns:
        ecs.stop_task(task=arn, reason="bench done")
    if arns:
        wait_status(ecs, arns, "STOPPED")
    reap_shims()


def one_start(d, ecs, td):
    """Client times (s) and the daemon's timestamps of one RunTask → RUNNING."""
    wall0, t0 = time.time(), time.monotonic()
    arn, = run_tasks(ecs, td)
    t_api = time.monotonic() - t0
    polls = 0
    while True:
        last = time.monotonic()
        t, = describe(ecs, [arn])
        polls += 1
        if t["lastStatus"] == "RUNNING":
            seen, seen_wall = time.monotonic(), time.time()
            break
        if t["lastStatus"] == "STOPPED" or last - t0 > 60:
            raise RuntimeError(f"task {t['lastStatus']}: {t.get('stoppedReason')}")
        time.sleep(max(0.0, POLL - (time.monotonic() - last)))
    ts = {k: t[k].timestamp() for k in ("createdAt", "pullStartedAt", "pullStoppedAt",
                                         "startedAt")}
    # The shim's own marks, finer than the daemon's whole milliseconds:
    # when it came up (exec'd, plan read, detached) and its container's exec.
    with tk.Shim(d.run / "shims" / f"{arn.rsplit('/', 1)[1]}.sock") as shim:
        st = shim.status()
    shim_up, exec_at = st["createdAt"], st["containers"][0]["startedAt"]
    ecs.stop_task(task=arn, reason="bench")
    wait_status(ecs, [arn], "STOPPED", poll=0.02)
    return {
        "RunTask → RUNNING (client)": seen - t0,
        "  RunTask call": t_api,
        "  container exec → seen by client": seen_wall - exec_at,
        "startedAt − createdAt (daemon)": ts["startedAt"] - ts["createdAt"],
        "  createdAt → pullStartedAt": ts["pullStartedAt"] - ts["createdAt"],
        "  pull (manifest check)": ts["pullStoppedAt"] - ts["pullStartedAt"],
        "  pullStoppedAt → startedAt": ts["startedAt"] - ts["pullStoppedAt"],
        "    plan write, shim spawn → shim up": shim_up - ts["pullStoppedAt"],
        "    shim up → container exec (shim)": exec_at - shim_up,
        "client t0 → createdAt": ts["createdAt"] - wall0,
    }, polls


# ---- read rates: DescribeTasks, ListTasks, DescribeServices ----

def read_ops(arns, services):
    """(name, X-Amz-Target operation, body): the reads measured side by side."""
    return [(f"DescribeTasks ({len(arns)} tasks)", "DescribeTasks", {"tasks": arns}),
            (f"ListTasks ({len(arns)} tasks)", "ListTasks", {}),
            (f"DescribeServices ({len(services)} services)", "DescribeServices",
             {"services": services})]


def read_rates(d, arns, services):
    """[(name, answer bytes, conns, [unix_load() per run])]: each read on 1
    and THREADS kept-alive unix-socket connections, a client process each."""
    rows = []
    for name, op, body in read_ops(arns, services):
        req = http_request(TARGET + op, json.dumps(body).encode())
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(d.sock))
            status, answer = http_call(s, req)
        if status != 200 or b'"failures":[{' in answer:
            raise RuntimeError(f"{op}: HTTP {status}: {answer[:300]!r}")
        for conns in (1, THREADS):
            runs = [unix_load(str(d.sock), req, conns, SECONDS,
                              lambda: proc_cpu_seconds(d.pid)) for _ in range(RATE_RUNS)]
            rows.append((name, len(answer), conns, runs))
    return rows


def boto_rate(d, arns):
    """DescribeTasks through boto3 (SigV4 on TCP), 1 client: [req/s per run],
    daemon CPU s per request."""
    ecs = client(d)
    describe(ecs, arns)                 # connect and warm up outside the clock
    rates, cpu = [], []
    for _ in range(RATE_RUNS):
        c0, n, t0 = proc_cpu_seconds(d.pid), 0, time.monotonic()
        while time.monotonic() - t0 < SECONDS:
            describe(ecs, arns)
            n += 1
        rates.append(n / (time.monotonic() - t0))
        cpu.append((proc_cpu_seconds(d.pid) - c0) / n)
    return rates, statistics.median(cpu)


# ---- output ----

def start_table(samples):
    print(f"\n{f'RunTask → RUNNING, {len(samples)} starts':<40} {'median ms':>10} {'min ms':>8} "
          f"{'max ms':>8}")
    for key in samples[0]:
        v = [s[key] * 1e3 for s in samples]
        print(f"{key:<40} {statistics.median(v):10.1f} {min(v):8.1f} {max(v):8.1f}")


def rate_table(rows, boto):
    med = statistics.median
    print(f"\n{'reads, raw HTTP on the unix socket':<32} {'KiB':>5} {'conns':>5} {'req/s':>7} "
          f"{'min':>6} {'max':>6} {'p50 µs':>7} {'p99 µs':>7} {'daemon µs':>9} {'client µs':>9}")
    for name, size, conns, runs in rows:
        rates = [r["rate"] for r in runs]
        print(f"{name:<32} {size / 1024:5.1f} {conns:5d} {med(rates):7.0f} {min(rates):6.0f} "
              f"{max(rates):6.0f} {med(r['p50'] for r in runs) * 1e6:7.0f} "
              f"{med(r['p99'] for r in runs) * 1e6:7.0f} "
              f"{med(r['daemon'] for r in runs) * 1e6:9.0f} "
              f"{med(r['client'] for r in runs) * 1e6:9.0f}")
    rates, cpu = boto
    print(f"{'DescribeTasks, boto3 SigV4 TCP':<32} {'':>5} {1:5d} {med(rates):7.0f} "
          f"{min(rates):6.0f} {max(rates):6.0f} {'':>7} {'':>7} {cpu * 1e6:9.0f}")
    print(f"(medians of {RATE_RUNS} runs of {SECONDS:g} s; a client process per connection "
          "sending one prebuilt request; daemon µs: its utime+stime per request; client µs: "
          "the clients' CPU per request; targets: >= 5000 req/s on 4 connections, < 150 µs "
          "daemon CPU per request; load: " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + ")")


def memory_table(rows):
    print(f"\n{'daemon memory (MiB)':<40} {'VmRSS':>10} {'RssAnon':>8} {'Pss':>8}")
    for name, m in rows:
        print(f"{name:<40} {m['VmRSS:'] / 2**20:10.2f} {m['RssAnon:'] / 2**20:8.2f} "
              f"{m['Pss:'] / 2**20:8.2f}")
    print("target: < 10 MiB idle")


# ---- the host ----

def check_subnet_free():
    """Nothing else on the host may route or hold an address in SUBNET
    (run after our own bridge of an earlier run is removed)."""
    ours = ipaddress.ip_network(SUBNET)
    for cmd in (["ip", "-4", "-o", "addr"], ["ip", "-4", "route", "show", "table", "all"]):
        for m in re.finditer(r"(\d+\.\d+\.\d+\.\d+(?:/\d+)?)", run(cmd).stdout):
            net = ipaddress.ip_network(m.group(1), strict=False)
            if net.prefixlen > 0 and net.overlaps(ours):
                raise RuntimeError(f"{SUBNET} is in use on this host: {net}")


def leftovers(work):
    out = {}
    shims = tk.shim_processes(work)
    if shims:
        out["berth-shim processes"] = shims
    veths = [n for n in tk.links() if tk.link_master(n) == BRIDGE]
    if veths:
        out[f"veths on {BRIDGE}"] = veths
    cgroups = tk.task_cgroup_dirs(CGROUP)
    if cgroups:
        out["task cgroups"] = cgroups
    mounts = tk.mount_lines(work)
    if mounts:
        out["mounts"] = sorted(mounts)
    nsdir = work / "run" / "netns"
    if nsdir.is_dir() and os.listdir(nsdir):
        out["netns"] = os.listdir(nsdir)
    zombies = zombie_children()
    if zombies:
        out["zombies"] = zombies
    return out


def cleanup_host(work):
    for pid in tk.shim_processes(work):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    reap_shims()
    tk.kill_cgroup_tree(tk.task_cgroup_dirs(CGROUP))
    for line in sorted(tk.mount_lines(work), reverse=True):
        run(["umount", "-l", line.split()[4]])
    for root in tk.cgroup_tree_roots(CGROUP):
        for dirpath, _, _ in sorted(os.walk(root), reverse=True):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass
    run(["ip", "link", "del", BRIDGE])
    for family in ("ip", "bridge"):
        run(["nft", "delete", "table", family, NFT_TABLE])


def bench(d, ecs, image):
    mem = [("idle, right after start", d.memory())]
    td = register(ecs, image)
    one_start(d, ecs, td)               # the first pull: the image is warm from now on
    samples, polls = [], []
    for _ in range(RUNS):
        s, p = one_start(d, ecs, td)
        samples.append(s)
        polls.append(p)
    if samples:
        start_table(samples)
        print(f"(describe_tasks polls per start: median {statistics.median(polls):.0f})")
    arns = run_tasks(ecs, td, TASKS)
    wait_status(ecs, arns, "RUNNING")
    services = [ecs.create_service(serviceName=f"bench-{i}", taskDefinition=td, desiredCount=0,
                                   networkConfiguration=NETCFG)["service"]["serviceName"]
                for i in range(SERVICES)]
    time.sleep(1)
    mem.append((f"{TASKS} tasks RUNNING", d.memory()))
    rate_table(read_rates(d, arns, services), boto_rate(d, arns))
    mem.append((f"{TASKS} RUNNING, after the DescribeTasks load", d.memory()))
    for name in services:
        ecs.delete_service(service=name)
    stop_all(ecs)
    time.sleep(1)
    mem.append(("idle again, all tasks STOPPED", d.memory()))
    memory_table(mem)


def main():
    if os.geteuid() != 0:
        sys.exit("api.py needs root (namespaces, cgroups, veths)")
    set_child_subreaper()
    cleanup_host(Path("/nonexistent"))          # a crashed earlier run's bridge and cgroups
    check_subnet_free()
    work = Path(tempfile.mkdtemp(prefix="berth-bench-api-", dir="/var/tmp"))
    os.chmod(work, 0o755)
    d = None
    try:
        with reg.Registry("anon") as r:
            im = fx.catalogue()["busybox"]
            r.push(im)
            d = Daemon(work, r.host).wait_ready()
            ecs = client(d)
            try:
                bench(d, ecs, im.ref(r.host))
            finally:
                try:
                    if d.proc.poll() is None:
                        stop_all(ecs)
                finally:
                    d.stop()
        left = leftovers(work)
        if left:
            raise RuntimeError(f"left on the host: {left}")
        print("\ndaemon exited 0; no shim, veth, cgroup, mount, netns or zombie left")
    finally:
        if d and d.proc.poll() is None:         # it never got ready
            d.proc.kill()
            d.proc.wait()
        cleanup_host(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
