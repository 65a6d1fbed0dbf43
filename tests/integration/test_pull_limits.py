"""Pulls against hostile registries (issue 11): a registry that trickles
bytes just fast enough to dodge the low-speed limit meets the layer and pull
deadlines; a layer over the size limit is refused before it is fetched; a
zstd bomb stops at the expansion cap with nothing left on disk; a loopback
registry is only contacted when the operator names it; and the daemon's
`berth task-image` helpers die with StopTask, with the daemon's shutdown and
with the daemon itself (kill -9), so a restarted daemon runs exactly one
pull per task.

CLI contract (besides test_pull.py's):
  berth [--pull-timeout D] [--layer-timeout D] [--max-layer-size SIZE]
        [--max-layer-ratio N] pull REF      (and the same for berth daemon)
  failure: "berth: pull REF: … not downloaded within the layer deadline of
  3s (--layer-timeout) …", "… not pulled within the pull deadline …",
  "… over the N byte limit (--max-layer-size)", "… unpacks to more than N
  bytes: refused (… --max-layer-ratio)", "… only used when named with
  --insecure-registry HOST:PORT …"."""
import os
import socket
import struct
import subprocess
import tarfile
import time

import pytest

from fixtures import images as fx
from fixtures import registry as reg
from fixtures import tasks as tk
from test_api_tasks import (IDLE, TaskDaemon, finish, make_client, register,  # noqa: F401
                            run, sh, tdaemon, tmp_tasks, wait_for)
from test_pull import assert_fails, images_json

TRICKLE = 4096      # bytes/s: four times curl's low-speed limit, so only a deadline ends it


def pull_helpers(root):
    """pids of the pulls working on the store ROOT: `berth … task-image`
    processes, and the children of berthd's pull worker (`berth …
    task-image --worker`, which forks one per pull), not the worker."""
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        procs[int(d)] = (argv, ppid)
    workers = {pid for pid, (argv, _) in procs.items() if b"--worker" in argv}
    return [pid for pid, (argv, ppid) in procs.items()
            if b"task-image" in argv and str(root).encode() in argv
            and (pid not in workers or ppid in workers) and tk.alive(pid)]


def store_leftovers(root):
    """What a refused pull may not leave: layer dirs (and their temp
    dirs) and partial downloads; lock files do not count."""
    left = [f"layers/{n}" for n in os.listdir(root / "layers") if not n.startswith(".lock-")]
    left += [f"ingest/{n}" for n in os.listdir(root / "ingest") if not n.endswith(".lock")]
    return left


# ------------------------------------------------------------------ deadlines

@pytest.mark.parametrize("flag,words", [
    ("--layer-timeout", "not downloaded within the layer deadline of 3s (--layer-timeout)"),
    ("--pull-timeout", "not pulled within the pull deadline of 3s (--pull-timeout)"),
])
def test_trickling_registry_meets_the_deadline(berth, registry_anon, catalogue, flag, words):
    im = catalogue["busybox"]
    with reg.SlowProxy(registry_anon, TRICKLE) as px:
        t0 = time.monotonic()
        result = berth("pull", "--insecure-registry", px.host, flag, "3s", px.ref(im),
                       timeout=120)
        took = time.monotonic() - t0
        sent = px.blob_bytes
    msg = assert_fails(result, words)
    assert im.layers[0].blob.digest in msg, msg
    assert sent > 2 * TRICKLE, f"the proxy hardly sent anything ({sent} bytes): {msg}"
    assert 3 <= took < 30, f"the pull ended after {took:.1f}s"
    assert images_json(berth) == []


def test_bad_limit_values_are_refused(berth):
    for flag, value in [("--layer-timeout", "soon"), ("--pull-timeout", "0s"),
                        ("--max-layer-size", "-1"), ("--max-layer-ratio", "1.5x")]:
        rc, _, err = berth(flag, value, "pull", "127.0.0.1:1/x:1")
        assert rc == 2 and f"berth: {flag} {value}: expected" in err, (flag, rc, err)


# ------------------------------------------------------------------ sizes

def test_layer_over_the_size_limit_is_not_fetched(berth, registry_anon, catalogue):
    im = catalogue["multilayer"]
    big = max(im.layers, key=lambda ly: ly.blob.size).blob
    with reg.SlowProxy(registry_anon, 1 << 30) as px:
        msg = assert_fails(berth("pull", "--insecure-registry", px.host, "--max-layer-size",
                                 "1KiB", px.ref(im)),
                           f"layer {big.digest}: {big.size} bytes is over the 1024 byte limit "
                           "(--max-layer-size)")
        layer_gets = [p for m, p in px.requests if any(p.endswith(ly.blob.digest)
                                                       for ly in im.layers)]
    assert layer_gets == [], f"layers were fetched: {layer_gets} ({msg})"
    assert store_leftovers(berth.root) == []


def zstd_bomb(size):
    """A zstd frame of one tar entry "zeros" of SIZE zero bytes, built from
    RLE blocks (4 bytes per 128 KiB): about SIZE / 32768 bytes."""
    ti = tarfile.TarInfo("zeros")
    ti.size, ti.mode = size, 0o644
    header = ti.tobuf(format=tarfile.USTAR_FORMAT)
    # Magic; no checksum, no content size; a 128 KiB window.
    out = bytearray(struct.pack("<I", 0xFD2FB528) + bytes([0x00, 0x38]))

    def block(kind, n, last, payload):
        out.extend(((n << 3) | (kind << 1) | int(last)).to_bytes(3, "little") + payload)

    block(0, len(header), False, header)            # raw
    left = size + 1024                              # the data, then end of archive
    while left:
        n = min(left, 128 * 1024)
        left -= n
        block(1, n, left == 0, b"\0")               # RLE
    return bytes(out)


@pytest.fixture
def tmpfs_root(workdir):
    """A 256 MiB tmpfs for the store: a bomb that is not stopped fills it."""
    mnt = workdir / "bombroot"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m,mode=0700", "berth-bomb",
                    str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_zstd_bomb_stops_at_the_cap(berth, registry_anon, tmpfs_root):
    """4 GiB of zeros in 128 KiB of zstd: refused once the layer passes
    max(100 × its size, 64 MiB) unpacked, and the layer's partial content is
    gone (the verified blob itself stays for GC)."""
    blob = fx.Blob(fx.OCI_LAYER_ZSTD, zstd_bomb(4 << 30))
    # The diff id does not matter: the cap must fire long before the end.
    layer = fx.Layer([], "zstd", blob=blob, diff_id=f"sha256:{'ab' * 32}", expected={})
    im = fx.Image("bomb", "latest", [layer])
    registry_anon.push(im)
    berth.root = tmpfs_root
    msg = assert_fails(berth.pull(registry_anon, im),
                       f"unpacks to more than {64 << 20} bytes: refused")
    assert f"layer {blob.digest}: " in msg and 'entry "zeros"' in msg, msg
    assert "--max-layer-ratio" in msg, msg
    assert store_leftovers(tmpfs_root) == []
    used = os.statvfs(tmpfs_root)
    assert (used.f_blocks - used.f_bfree) * used.f_frsize < 4 << 20, "the bomb's output stayed"
    assert images_json(berth) == []


# ------------------------------------------------------------------ loopback registries

def test_unnamed_loopback_registry_is_refused(berth, registry_anon, catalogue):
    """An image reference cannot make berth connect to a local port: only
    the registries named with --insecure-registry are contacted."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        srv.setblocking(False)
        host = f"127.0.0.1:{srv.getsockname()[1]}"
        for ref in (f"{host}/x:1", f"{host}/library/busybox@sha256:{'0' * 64}"):
            assert_fails(berth("pull", "--insecure-registry", registry_anon.host, ref),
                         f"a loopback registry is only used when named with "
                         f"--insecure-registry {host} (plain HTTP)")
        with pytest.raises(BlockingIOError):
            srv.accept()
    with reg.SlowProxy(registry_anon, 1 << 30) as px:
        assert_fails(berth("pull", px.ref(catalogue["busybox"])), "--insecure-registry")
        assert px.requests == []
        rc, _, err = berth("pull", "--insecure-registry", px.host, px.ref(catalogue["busybox"]))
        assert rc == 0, err


# ------------------------------------------------------------------ the daemon's helpers

def test_task_whose_pull_trickles_stops_at_the_deadline(tmp_tasks, task_net, registry_anon,
                                                         catalogue):
    with reg.SlowProxy(registry_anon, TRICKLE) as px:
        d = TaskDaemon(tmp_tasks, task_net, ["--layer-timeout", "3s"], registry=px).wait_ready()
        try:
            ecs = make_client(d)
            td = register(ecs, d, [sh("app", IDLE, image=px.ref(catalogue["busybox"]))])
            (t0,) = run(ecs, td)
            t = wait_for(ecs, t0["taskArn"], lambda t: t["lastStatus"] == "STOPPED", 60,
                         "STOPPED")
        finally:
            finish(d, task_net)
    assert t["stopCode"] == "TaskFailedToStart", t
    reason = t["stoppedReason"]
    assert reason.startswith("CannotPullContainerError: ") and \
        "layer deadline of 3s (--layer-timeout)" in reason, reason
    assert t["containers"][0]["reason"] == reason


def test_unnamed_loopback_image_fails_the_task(tdaemon):
    ecs = make_client(tdaemon)
    host = f"127.0.0.1:{reg.closed_port()}"
    td = register(ecs, tdaemon, [sh("app", IDLE, image=f"{host}/x:1")])
    (t0,) = run(ecs, td)
    t = wait_for(ecs, t0["taskArn"], lambda t: t["lastStatus"] == "STOPPED", 60, "STOPPED")
    assert t["stoppedReason"].startswith("CannotPullContainerError: ") and \
        f"--insecure-registry {host}" in t["stoppedReason"], t["stoppedReason"]


def one_helper(root, exclude=()):
    """The one pull helper working on ROOT (waits for it)."""
    return tk.poll_until(lambda: [p for p in pull_helpers(root) if p not in exclude], 30,
                         "a pull helper")


def test_stop_task_kills_its_pull_helper(tmp_tasks, task_net, registry_anon, catalogue):
    with reg.SlowProxy(registry_anon, TRICKLE) as px:
        d = TaskDaemon(tmp_tasks, task_net, registry=px).wait_ready()
        try:
            ecs = make_client(d)
            td = register(ecs, d, [sh("app", IDLE, image=px.ref(catalogue["busybox"]))])
            (t0,) = run(ecs, td)
            assert px.wait_bytes(TRICKLE, 60), "the pull never started"
            (pid,) = one_helper(d.root)
            ecs.stop_task(task=t0["taskArn"], reason="not needed after all")
            tk.poll_until(lambda: not tk.alive(pid), 1, f"pull helper {pid} to die")
            t = wait_for(ecs, t0["taskArn"], lambda t: t["lastStatus"] == "STOPPED", 10,
                         "STOPPED")
        finally:
            finish(d, task_net)
    assert t["stopCode"] == "UserInitiated" and \
        t["stoppedReason"] == "not needed after all", t


def test_daemon_shutdown_kills_pull_helpers(tmp_tasks, task_net, registry_anon, catalogue):
    with reg.SlowProxy(registry_anon, TRICKLE) as px:
        d = TaskDaemon(tmp_tasks, task_net, registry=px).wait_ready()
        try:
            ecs = make_client(d)
            td = register(ecs, d, [sh("app", IDLE, image=px.ref(catalogue["busybox"]))])
            run(ecs, td)
            (pid,) = one_helper(d.root)
            t0 = time.monotonic()
            d.stop()            # SIGTERM: must exit 0, and soon, with no helper left
            assert time.monotonic() - t0 < 5
            assert not tk.alive(pid)
        finally:
            if d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()


def test_daemon_kill9_leaves_one_pull_per_task(tmp_tasks, task_net, registry_anon, catalogue):
    with reg.SlowProxy(registry_anon, TRICKLE) as px:
        d = TaskDaemon(tmp_tasks, task_net, registry=px).wait_ready()
        try:
            ecs = make_client(d)
            td = register(ecs, d, [sh("app", IDLE, image=px.ref(catalogue["busybox"]))])
            (t0,) = run(ecs, td)
            (old,) = one_helper(d.root)
            d.proc.kill()
            d.proc.wait()
            tk.poll_until(lambda: not tk.alive(old), 2, f"the old pull helper {old} to die")
            d = d.restart("daemon2").wait_ready()
            # The new daemon relaunched the task before it said "ready".
            (new,) = one_helper(d.root, exclude=(old,))
            assert pull_helpers(d.root) == [new]
            ecs = make_client(d)
            ecs.stop_task(task=t0["taskArn"], reason="done")
            tk.poll_until(lambda: not tk.alive(new), 1, f"pull helper {new} to die")
        finally:
            finish(d, task_net)
