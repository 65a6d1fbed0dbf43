"""Task start: Berth's full task start next to its peers, plus 100 tasks at
once.

  berth       berth-shim --foreground PLAN: netns + veth + address + the
              network policy's elements (berth-netpolicy) + cgroups
              (task and container) + overlay rootfs + Docker's hardening
              (caps, seccomp, masked paths), timed from the shim's exec to
              the container's startedAt (its exec)
  runc        `runc run` of the same rootfs as a bundle running /bin/true:
              bare (no network set-up), create + start + wait + delete
  podman      `podman run --rm --network none` of the same image (runc,
              cgroupfs, overlay storage)
  floor       `unshare -mpuin -f chroot ROOTFS /bin/true`: namespaces and
              an exec, nothing else

then 100 Berth tasks started at once (each `sleep`ing): the time until all
report RUNNING, host memory per idle task (MemAvailable before and after)
and the shims' RSS.  Medians of BERTH_BENCH_STARTS (default 50) runs.
"""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import images as fx      # noqa: E402
from fixtures import registry as reg   # noqa: E402
from benchlib import run, table        # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BERTH = os.environ.get("BERTH_BIN", str(REPO / "build/release/berth"))
SHIM = os.environ.get("BERTH_SHIM", str(REPO / "build/release/berth-shim"))
RUNS = int(os.environ.get("BERTH_BENCH_STARTS", "50"))
MANY = int(os.environ.get("BERTH_BENCH_MANY", "100"))
BRIDGE, SUBNET, CGROUP = "berthbench0", "10.217.0.0/16", "berth-bench"
NFT = "berth_bench_tasks"


def timed(argv):
    t0 = time.monotonic()
    p = run(argv)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({p.returncode}): {p.stderr.strip()[-300:]}")
    return dt


class Bench:
    def __init__(self, work, layers, rootfs, image_ref):
        self.work, self.layers, self.rootfs, self.image_ref = work, layers, rootfs, image_ref
        self.n = 0
        self.pids = []     # detached shims, for stop_all()

    def stop_all(self):
        """SIGTERM every detached shim still running: each stops its task
        and tears it down, leaving nothing behind."""
        alive = [pid for pid in self.pids if os.path.exists(f"/proc/{pid}")]
        for pid in alive:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while alive and time.monotonic() < deadline:
            alive = [pid for pid in alive if os.path.exists(f"/proc/{pid}")]
            time.sleep(0.05)

    def plan(self, argv, name=None):
        self.n += 1
        tid = name or f"bench{os.getpid()}x{self.n}"
        d = self.work / "tasks" / tid
        d.mkdir(parents=True)
        plan = {
            "taskId": tid, "taskDir": str(d), "runDir": str(self.work / "run"),
            "logDir": str(self.work / "logs" / tid), "cgroupName": CGROUP,
            "network": {"mode": "awsvpc", "bridge": BRIDGE, "subnet": SUBNET,
                        "ipamDir": str(self.work / "ipam"), "nftTable": NFT},
            # stopTimeout 2: a sleep as pid 1 ignores SIGTERM.
            "containers": [{"name": "main", "layers": self.layers, "entryPoint": argv,
                            "essential": True, "stopTimeout": 2}],
        }
        path = d / "plan.json"
        path.write_text(json.dumps(plan))
        return tid, path, d

    def berth_start(self):
        """Shim exec → container exec, from the exit record's timestamps."""
        _, path, d = self.plan(["/bin/true"])
        t0 = time.time()
        p = run([SHIM, "--foreground", str(path)])
        if p.returncode != 0:
            raise RuntimeError(f"berth-shim failed ({p.returncode}): {p.stderr.strip()[-300:]}")
        rec = json.loads((d / "exit.json").read_text())
        started = rec["containers"][0]["startedAt"]
        shutil.rmtree(d, ignore_errors=True)
        return started - t0

    def runc(self):
        bundle = self.work / "bundle"
        return timed(["runc", "run", "--bundle", str(bundle), f"bench{self.n}"])

    def podman(self):
        return timed(podman_argv(self.work) + ["run", "--rm", "--network", "none",
                                               "--ulimit", "nofile=1024:4096",
                                               "--ulimit", "nproc=1024:1024",
                                               self.image_ref, "/bin/true"])

    def floor(self):
        return timed(["unshare", "-mpuin", "-f", "chroot", self.rootfs, "/bin/true"])


def podman_argv(work):
    return ["podman", "--root", str(work / "podman-root"), "--runroot", str(work / "podman-run"),
            "--runtime", "runc", "--cgroup-manager=cgroupfs", "--events-backend", "none"]


def make_bundle(work, rootfs):
    bundle = work / "bundle"
    bundle.mkdir()
    run(["runc", "spec", "--bundle", str(bundle)], check=True)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["root"] = {"path": rootfs, "readonly": True}
    cfg["process"]["args"] = ["/bin/true"]
    cfg["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(cfg))


def shim_ask(sock, req):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(sock)
        s.sendall((json.dumps(req) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


def mem_available():
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def pss(pid):
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def conmon_memory(work, ref):
    """The peer of berth-shim: podman's per-container monitor, idle."""
    p = run(podman_argv(work) + ["run", "-d", "--network", "none",
                                 "--ulimit", "nofile=1024:4096", "--ulimit", "nproc=1024:1024",
                                 ref, "/bin/sleep", "60"])
    if p.returncode != 0:
        return f"conmon: did not run: {p.stderr.strip()[-200:]}"
    cid = p.stdout.strip()
    try:
        pid = int(run(podman_argv(work) + ["inspect", "--format", "{{.State.ConmonPid}}",
                                           cid]).stdout.strip() or 0)
        time.sleep(1)
        return (f"conmon (podman's per-container monitor): RSS {rss(pid) / 2**20:.2f} MiB, "
                f"PSS {pss(pid) / 2**20:.2f} MiB")
    finally:
        run(podman_argv(work) + ["rm", "-f", "-t", "0", cid])


def many(b):
    """MANY tasks at once: time until all RUNNING, memory per idle task."""
    before = mem_available()
    t0 = time.monotonic()
    tasks = []
    for _ in range(MANY):
        tid, path, d = b.plan(["/bin/sleep", "3600"])
        p = subprocess.Popen([SHIM, str(path)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        tasks.append((tid, p))
    pids = b.pids
    for tid, p in tasks:
        out, err = p.communicate(timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"berth-shim {tid}: {err.strip()[-300:]}")
        pids.append(int(out.split()[0]))
    socks = [str(b.work / "run" / "shims" / f"{tid}.sock") for tid, _ in tasks]
    deadline = time.monotonic() + 120
    pending = set(socks)
    while pending and time.monotonic() < deadline:
        pending = {s for s in pending
                   if shim_ask(s, {"op": "status"})["task"]["lastStatus"] != "RUNNING"}
    total = time.monotonic() - t0
    if pending:
        raise RuntimeError(f"{len(pending)} tasks not RUNNING after 120 s")
    time.sleep(1)   # let page cache and slabs settle before reading memory
    per_task = (before - mem_available()) / MANY
    shim_rss = statistics.median(rss(pid) for pid in pids)
    shim_pss = statistics.median(pss(pid) for pid in pids)
    for s in socks:
        shim_ask(s, {"op": "stop", "reason": "bench done"})
    b.stop_all()
    return total, per_task, shim_rss, shim_pss


def host_network(work):
    """The bridge and the network policy's tables, as berthd sets them up
    (no NAT: the tasks send nothing)."""
    run([BERTH, "host-network", "--bridge", BRIDGE, "--subnet", SUBNET, "--nft-table", NFT,
         "--run-root", str(work / "run"), "--ipam-dir", str(work / "ipam"), "--no-nat"],
        check=True)


def cleanup_host():
    run(["ip", "link", "del", BRIDGE])
    for family in ("ip", "bridge"):
        run(["nft", "delete", "table", family, NFT])
    for ctl in ("cpu", "cpuacct", "memory", "pids", "unified", ""):
        base = Path("/sys/fs/cgroup") / ctl
        for d in sorted(base.glob(f"**/{CGROUP}"), reverse=True) if base.is_dir() else []:
            for sub in sorted(d.glob("**/"), key=lambda p: -len(p.parts)):
                try:
                    sub.rmdir()
                except OSError:
                    pass


def main():
    work = Path(tempfile.mkdtemp(prefix="berth-bench-tasks-", dir="/var/tmp"))
    b = None
    try:
        with reg.Registry("anon") as r:
            im = fx.catalogue()["busybox"]
            r.push(im)
            ref = im.ref(r.host)
            store = work / "store"
            subprocess.run([BERTH, "--root", str(store), "pull", "--insecure-registry", r.host,
                            ref], check=True, capture_output=True)
            layers = [str(store / "layers" / c.split(":")[1]) for c in im.chain_ids]
            rootfs = layers[-1] if len(layers) == 1 else None
            make_bundle(work, rootfs)
            run(podman_argv(work) + ["pull", "-q", "--tls-verify=false", ref], check=True)
            host_network(work)
            b = Bench(work, layers, rootfs, ref)
            peers = [("berth (netns+veth+cgroups+overlay+seccomp)", b.berth_start),
                     ("runc run (bare: no network)", b.runc),
                     ("podman run --rm --network none", b.podman),
                     ("floor: unshare -mpuin -f chroot", b.floor)]
            rows = []
            print(f"{RUNS} starts each", flush=True)
            for name, fn in peers:
                times = []
                try:
                    for _ in range(RUNS):
                        times.append(fn())
                except (RuntimeError, FileNotFoundError, KeyError) as e:
                    rows.append((name, None, str(e).splitlines()[0][:90]))
                    continue
                rows.append((name, times, ""))
            table("task start, /bin/true", rows)
            total, per_task, shim_rss, shim_pss = many(b)
            print(f"\n{MANY} tasks at once: all RUNNING after {total:.2f} s; host memory "
                  f"{per_task / 2**20:.2f} MiB per idle task")
            print(f"berth-shim: RSS median {shim_rss / 2**20:.2f} MiB, "
                  f"PSS {shim_pss / 2**20:.2f} MiB")
            print(conmon_memory(work, ref))
    finally:
        if b:
            b.stop_all()
        run(podman_argv(work) + ["system", "reset", "--force"])
        cleanup_host()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
