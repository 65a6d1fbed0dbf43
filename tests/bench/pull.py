"""`make bench`: Berth's pull of the ~100 MB fixture image next to its peers.

Pushes the big fixture (6 gzip layers) to a local docker-registry on
127.0.0.1 and pulls it into an empty store, five times each:

  berth     berth pull: download + verify (sha256, size, diff ids) + unpack
  skopeo    skopeo copy docker://… oci:DIR: download only, no unpack
  podman    podman pull (runc, cgroupfs, vfs storage): download + unpack

and prints the medians as a table.  Nothing here is a test: figures only.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import images as fx      # noqa: E402
from fixtures import registry as reg   # noqa: E402

BERTH = os.environ.get("BERTH_BIN", str(Path(__file__).resolve().parents[2] /
                                       "build/release/berth"))
RUNS = int(os.environ.get("BERTH_BENCH_RUNS", "5"))


def timed(argv, env=None):
    t0 = time.monotonic()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    return dt


def settle():
    """Flushes the previous run's writes so they are not billed to the next;
    the registry's files stay in the page cache for every peer alike."""
    subprocess.run(["sync"], check=False)


def bench_berth(ref, host, work):
    root = os.path.join(work, "berth-root")
    try:
        return timed([BERTH, "--root", root, "pull", "--insecure-registry", host, ref])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_skopeo(ref, host, work):
    dest = os.path.join(work, "skopeo-oci")
    try:
        return timed(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                      f"docker://{ref}", f"oci:{dest}:latest"])
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def podman_argv(work):
    return ["podman", "--root", os.path.join(work, "podman-root"),
            "--runroot", os.path.join(work, "podman-run"), "--storage-driver", "vfs",
            "--runtime", "runc", "--cgroup-manager=cgroupfs", "--events-backend", "none"]


def bench_podman(ref, host, work):
    try:
        return timed(podman_argv(work) + ["pull", "--quiet", "--tls-verify=false", ref])
    finally:
        subprocess.run(podman_argv(work) + ["system", "reset", "--force"],
                       capture_output=True, stdin=subprocess.DEVNULL)
        for d in ("podman-root", "podman-run"):
            shutil.rmtree(os.path.join(work, d), ignore_errors=True)


PEERS = [
    ("berth pull (download+verify+unpack)", bench_berth),
    ("skopeo copy (download only)", bench_skopeo),
    ("podman pull (download+unpack)", bench_podman),
]


def main():
    im = fx.big_image()
    work = tempfile.mkdtemp(prefix="berth-bench-", dir="/var/tmp")
    rows = []
    try:
        with reg.Registry("anon") as r:
            r.push(im)
            ref = im.ref(r.host)
            print(f"image {ref}: {len(im.layers)} layers, {im.size / 1e6:.1f} MB compressed;"
                  f" {RUNS} runs each into an empty store", flush=True)
            for name, fn in PEERS:
                times = []
                try:
                    for _ in range(RUNS):
                        settle()
                        times.append(fn(ref, r.host, work))
                except (RuntimeError, FileNotFoundError) as e:
                    rows.append((name, None, None, None, str(e).splitlines()[0][:80]))
                    continue
                rows.append((name, statistics.median(times), min(times), max(times), ""))
                print(f"  {name}: " + " ".join(f"{t:.2f}" for t in times), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'pull of the ~100 MB fixture':<40} {'median s':>9} {'min s':>7} {'max s':>7}"
          f" {'MB/s':>7}")
    for name, med, lo, hi, note in rows:
        if med is None:
            print(f"{name:<40} {'-':>9} {'-':>7} {'-':>7} {'-':>7}  did not run: {note}")
        else:
            print(f"{name:<40} {med:9.2f} {lo:7.2f} {hi:7.2f} {im.size / 1e6 / med:7.1f}")


if __name__ == "__main__":
    main()
