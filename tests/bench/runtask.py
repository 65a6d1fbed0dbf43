"""RunTask → RUNNING with a warm image, on both of a task's image paths
(docs/images.md, "A task's image"):

  by tag      the container's image is `host/busybox:1`: every RunTask asks
              the registry which digest the tag points at now (one manifest
              request), then runs the stored image of that digest
  by digest   the image is `host/busybox@sha256:…`: already in the store,
              so no registry request at all

Each start is run_task, then describe_tasks every ~2 ms until RUNNING (as
api.py's), the two paths interleaved so that the machine's load falls on
both alike.  Split: the RunTask call itself, the daemon's createdAt →
pullStartedAt, the image step (pullStartedAt → pullStoppedAt, the daemon's
whole milliseconds), plan write + shim spawn → shim up, shim up → the
container's exec (the shim's own clock), and the exec → the client's
DescribeTasks seeing RUNNING.  p50 and p99 of
BERTH_BENCH_RUNTASK_RUNS (default 40) starts per path, after one warm-up
start each.  The daemon gets its own bridge berthbench4, 10.219.0.0/16, nft
table berth_bench_runtask and cgroup name berth-bench-runtask; everything is
removed at the end and checked as in api.py.
"""
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures import images as fx      # noqa: E402
from fixtures import registry as reg   # noqa: E402
import api                             # noqa: E402

RUNS = int(os.environ.get("BERTH_BENCH_RUNTASK_RUNS", "40"))
# Its own names, so that it never touches api.py's (or another run's) host state.
api.BRIDGE, api.SUBNET, api.NFT_TABLE, api.CGROUP = (
    "berthbench4", "10.219.0.0/16", "berth_bench_runtask", "berth-bench-runtask")

SPLIT = (("RunTask → RUNNING (client)", "RunTask → RUNNING (client)"),
         ("  RunTask call (client)", "  RunTask call"),
         ("  createdAt → pullStartedAt", "  createdAt → pullStartedAt"),
         ("  image step (pull…Stopped)", "  pull (manifest check)"),
         ("  plan, shim spawn → shim up", "    plan write, shim spawn → shim up"),
         ("  shim up → container exec", "    shim up → container exec (shim)"),
         ("  container exec → seen (poll)", "  container exec → seen by client"))


def pct(values, q):
    """The q-th percentile (0-100), linear between the nearest ranks."""
    v = sorted(values)
    k = (len(v) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def table(samples):
    print(f"\n{'RunTask → RUNNING, warm image':<32} {'path':<10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'min ms':>8} {'max ms':>8}")
    for label, key in SPLIT:
        for path, runs in samples.items():
            v = [s[key] * 1e3 for s in runs]
            print(f"{label:<32} {path:<10} {statistics.median(v):8.1f} {pct(v, 99):8.1f} "
                  f"{min(v):8.1f} {max(v):8.1f}")
    print(f"({RUNS} starts per path, interleaved; target p50 < 20 ms, p99 < 40 ms; "
          f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f})")


def bench(d, ecs, tag_ref):
    td_tag = api.register(ecs, tag_ref)
    api.one_start(d, ecs, td_tag)                      # the pull: warm from now on
    arn = ecs.list_tasks(desiredStatus="STOPPED")["taskArns"][0]
    digest = api.describe(ecs, [arn])[0]["containers"][0]["imageDigest"]
    td_digest = api.register(ecs, f"{tag_ref.rsplit(':', 1)[0]}@{digest}")
    api.one_start(d, ecs, td_digest)
    samples = {"by tag": [], "by digest": []}
    for _ in range(RUNS):
        samples["by tag"].append(api.one_start(d, ecs, td_tag)[0])
        samples["by digest"].append(api.one_start(d, ecs, td_digest)[0])
    table(samples)


def main():
    if os.geteuid() != 0:
        sys.exit("runtask.py needs root (namespaces, cgroups, veths)")
    api.set_child_subreaper()
    api.cleanup_host(Path("/nonexistent"))      # a crashed earlier run's bridge and cgroups
    api.check_subnet_free()
    work = Path(tempfile.mkdtemp(prefix="berth-bench-runtask-", dir="/var/tmp"))
    os.chmod(work, 0o755)
    d = None
    try:
        with reg.Registry("anon") as r:
            im = fx.catalogue()["busybox"]
            r.push(im)
            d = api.Daemon(work, r.host).wait_ready()
            ecs = api.client(d)
            try:
                bench(d, ecs, im.ref(r.host))
            finally:
                try:
                    if d.proc.poll() is None:
                        api.stop_all(ecs)
                finally:
                    d.stop()
        left = api.leftovers(work)
        if left:
            raise RuntimeError(f"left on the host: {left}")
        print("\ndaemon exited 0; no shim, veth, cgroup, mount, netns or zombie left")
    finally:
        if d and d.proc.poll() is None:         # it never got ready
            d.proc.kill()
            d.proc.wait()
        api.cleanup_host(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
