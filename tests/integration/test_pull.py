"""`berth pull | images | inspect-image | rmi` against real registries.

CLI contract under test (binary $BERTH_BIN):
  berth --root DIR pull [--registry-auth FILE] [--insecure-registry H:P] REF
    exit 0, layers unpacked at DIR/layers/<chain-id hex>/, plain progress
    lines when stdout is not a TTY; failure: exit 1 and "berth: <cause>" on
    stderr ("not found", "unauthorized", "no matching manifest" + the offered
    platforms, "digest mismatch", "unreachable").
  berth --root DIR images [--output json] | inspect-image REF | rmi REF
  DOCKER_CONFIG=<dir with config.json> is used when --registry-auth is not.
"""
import hashlib
import json
import os
import signal
import stat
import subprocess
import time

import pytest

from fixtures import images as fx
from fixtures import registry as reg

FLAVOURS = ["anon", "basic", "token"]
PULLABLE = ["busybox", "multilayer", "multiarch-oci", "multiarch-docker", "docker-schema2",
            "zstd"]
HOSTILE_CASES = [c[0] for c in fx.hostile_cases("/tmp/berth-canary-x")]


# ------------------------------------------------------------------ helpers

def auth_args(registry, auth_file, password=reg.PASSWORD):
    if registry.flavour == "anon":
        return []
    return ["--registry-auth", auth_file(registry, password=password)]


def assert_fails(result, cause):
    rc, out, err = result
    assert rc == 1, f"rc={rc}\nstdout: {out}\nstderr: {err}"
    msgs = [line for line in err.splitlines() if line.startswith("berth: ")]
    assert msgs, f"no 'berth: ' message on stderr: {err!r}"
    assert cause in msgs[-1], f"{cause!r} not in {msgs[-1]!r}"
    return msgs[-1]


def images_json(berth):
    rc, out, err = berth("images", "--output", "json")
    assert rc == 0, err
    return json.loads(out)


def assert_layers(berth, image):
    """Every layer of image is unpacked under its chain id, exactly as expected."""
    for i, (chain, expected) in enumerate(zip(image.chain_ids, image.expected_layers)):
        d = berth.layer_dir(chain)
        assert d.is_dir(), f"layer {i} ({chain}) not unpacked"
        diff = fx.diff_trees(expected, fx.describe_tree(d))
        assert diff == [], f"layer {i} ({chain}):\n" + "\n".join(diff[:40])


def assert_record(rec, fixture, host, t0):
    im = fixture.resolved()
    assert rec["ref"] == fixture.ref(host)
    assert rec["digest"] == fixture.digest
    assert rec["manifestDigest"] == im.digest
    assert rec["configDigest"] == im.config.digest
    assert rec["size"] == im.size
    assert t0 - 5 <= rec["pulledAt"] <= time.time() + 5


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def store_files(root, sub):
    d = root / sub
    return sorted(os.listdir(d)) if d.is_dir() else []


def layer_dirs(root):
    """layers/ minus the per-layer lock files (.lock-<chain hex>) that the
    store keeps until GC (store.h: unlinking a held lock would let a second
    unpacker in)."""
    return [n for n in store_files(root, "layers")
            if not (n.startswith(".lock-") and (root / "layers" / n).is_file())]


def assert_store_consistent(root, partial_ok=False):
    """Every blob matches its name; no temp unpack left, and no partial
    download unless partial_ok (a failed pull cancels the other layers'
    downloads and keeps what they fetched for the next pull to resume)."""
    blobs = root / "blobs" / "sha256"
    for name in os.listdir(blobs):
        assert sha256_file(blobs / name) == name, f"blob {name} is corrupt"
    for name in layer_dirs(root):
        assert len(name) == 64 and all(c in "0123456789abcdef" for c in name), \
            f"stray entry layers/{name}"
    for dirpath, dirs, files in os.walk(root):
        if os.path.dirname(dirpath) == str(root / "layers"):
            dirs[:] = []          # image content, not store bookkeeping
            continue
        for n in dirs + files:
            assert not (n.endswith(".partial") and not partial_ok) and \
                not n.startswith(".tmp"), \
                f"leftover {os.path.join(dirpath, n)}"


# ------------------------------------------------------------------ pulls

@pytest.mark.parametrize("registry", FLAVOURS, indirect=True)
@pytest.mark.parametrize("name", PULLABLE)
def test_pull_unpacks_expected_layers(berth, registry, catalogue, auth_file, name):
    f = catalogue[name]
    t0 = time.time()
    rc, out, err = berth.pull(registry, f, *auth_args(registry, auth_file))
    assert rc == 0, err
    assert out.strip() and "\r" not in out and "\x1b" not in out, \
        f"progress is not plain lines: {out!r}"
    assert_layers(berth, f.resolved())
    recs = images_json(berth)
    assert len(recs) == 1
    assert_record(recs[0], f, registry.host, t0)
    rc, out, err = berth("inspect-image", f.ref(registry.host))
    assert rc == 0, err
    assert json.loads(out) == f.resolved().config_json
    assert_store_consistent(berth.root)


def test_pull_twice_is_idempotent(berth, registry_anon, catalogue):
    f = catalogue["multilayer"]
    assert berth.pull(registry_anon, f)[0] == 0
    before = {n: (berth.root / "layers" / n).stat().st_ino for n in store_files(berth.root,
                                                                                 "layers")}
    rc, _, err = berth.pull(registry_anon, f)
    assert rc == 0, err
    after = {n: (berth.root / "layers" / n).stat().st_ino for n in store_files(berth.root,
                                                                                "layers")}
    assert before == after, "layers were unpacked again"
    assert len(images_json(berth)) == 1
    assert_layers(berth, f)


def test_shared_layer_unpacked_once(berth, registry_anon, catalogue):
    """busybox, multilayer and zstd share the busybox diff_id (so chain id)."""
    for name in ("busybox", "multilayer", "zstd"):
        rc, _, err = berth.pull(registry_anon, catalogue[name])
        assert rc == 0, err
    chains = {c for n in ("busybox", "multilayer", "zstd") for c in catalogue[n].chain_ids}
    assert sorted(c[7:] for c in chains) == layer_dirs(berth.root)
    for name in ("busybox", "multilayer", "zstd"):
        assert_layers(berth, catalogue[name])


# ------------------------------------------------------------------ failures

def test_corrupt_blob_is_rejected(berth, registry_anon, corrupted):
    im, blob = corrupted
    assert_fails(berth.pull(registry_anon, im), "digest mismatch")
    assert not (berth.root / "blobs" / "sha256" / blob.hex).exists()
    assert not berth.layer_dir(im.chain_ids[1]).exists()
    assert images_json(berth) == []
    assert not (berth.root / "ingest" / f"{blob.hex}.partial").exists(), \
        "the corrupt download was kept for resuming"
    assert_store_consistent(berth.root, partial_ok=True)


@pytest.mark.parametrize("ref", ["busybox:no-such-tag", "no-such-repo:latest"])
def test_unknown_reference(berth, registry_anon, ref):
    assert_fails(berth("pull", "--insecure-registry", registry_anon.host,
                       f"{registry_anon.host}/{ref}"), "not found")


def test_token_registry_without_credentials(berth, registry_token, catalogue):
    assert_fails(berth.pull(registry_token, catalogue["busybox"]), "unauthorized")
    assert images_json(berth) == []


def test_token_registry_with_credentials(berth, registry_token, catalogue, auth_file):
    ts = registry_token.token_server
    n = len(ts.requests)
    rc, _, err = berth.pull(registry_token, catalogue["busybox"], "--registry-auth",
                            auth_file(registry_token))
    assert rc == 0, err
    asked = ts.requests[n:]
    assert any(user == reg.USER and any(t == "repository" and name == "busybox" and
                                        "pull" in acts for t, name, acts in scopes)
               for user, scopes in asked), asked
    assert_layers(berth, catalogue["busybox"])


@pytest.mark.parametrize("registry", ["basic", "token"], indirect=True)
def test_wrong_password(berth, registry, catalogue, auth_file):
    assert_fails(berth.pull(registry, catalogue["busybox"],
                            *auth_args(registry, auth_file, password="wrong-password")),
                 "unauthorized")
    assert images_json(berth) == []


@pytest.mark.parametrize("registry", ["basic", "token"], indirect=True)
def test_docker_config_env(berth, registry, catalogue, workdir):
    cfg = workdir / "docker-config"
    reg.write_docker_config(str(cfg), registry.host)
    rc, _, err = berth.pull(registry, catalogue["busybox"], env={"DOCKER_CONFIG": str(cfg)})
    assert rc == 0, err
    assert_layers(berth, catalogue["busybox"])


def test_registry_auth_overrides_docker_config(berth, registry_basic, catalogue, workdir,
                                               auth_file):
    bad = workdir / "bad-config"
    reg.write_docker_config(str(bad), registry_basic.host, password="wrong-password")
    rc, _, err = berth.pull(registry_basic, catalogue["busybox"], "--registry-auth",
                            auth_file(registry_basic), env={"DOCKER_CONFIG": str(bad)})
    assert rc == 0, err


def test_closed_port_is_unreachable(berth, catalogue):
    host = f"127.0.0.1:{reg.closed_port()}"
    assert_fails(berth("pull", "--insecure-registry", host, f"{host}/busybox:latest",
                       timeout=120), "unreachable")


def test_task_image_falls_back_to_the_stored_image(berth, catalogue):
    """`berth task-image`, berthd's pull helper, does what the ECS agent
    does by default: pull, and when the registry cannot be reached, run the
    image stored under that reference, or for a reference pinned to a
    digest (a service deployment's) one stored with that digest."""
    im = catalogue["busybox"]
    with reg.Registry("anon") as r:
        r.push(im)
        ref, named = im.ref(r.host), ("--insecure-registry", r.host)
        rc, out, err = berth(*named, "task-image", ref)
        assert rc == 0, err
        assert json.loads(out)["digest"] == im.digest
    # The registry is gone now.
    for stored in (ref, f"{ref}@{im.digest}", f"{ref.rsplit(':', 1)[0]}@{im.digest}"):
        rc, out, err = berth(*named, "task-image", stored)
        assert rc == 0, (stored, err)
        got = json.loads(out)
        assert got["digest"] == im.digest, (stored, got)
        assert got["layers"] and all(os.path.isdir(d) for d in got["layers"]), got
    other = f"{ref}@sha256:{'0' * 64}"
    assert_fails(berth(*named, "task-image", other, timeout=120), "unreachable")


@pytest.fixture
def small_fs(workdir):
    """A 256 KiB tmpfs: a store on it runs out of space mid-download."""
    mnt = workdir / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "berth-test", str(mnt)],
                   check=True)
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_disk_full(berth, registry_anon, catalogue, small_fs):
    im = catalogue["busybox"]
    berth.root = small_fs / "root"
    msg = assert_fails(berth.pull(registry_anon, im), "No space left on device")
    assert im.ref(registry_anon.host) in msg and im.layers[0].blob.digest in msg, msg
    # The manifest and config may be kept (verified; GC removes them), the
    # layer must not be, and no image is recorded.
    assert im.layers[0].blob.hex not in store_files(berth.root, "blobs/sha256")
    assert layer_dirs(berth.root) == []
    assert images_json(berth) == []
    assert_store_consistent(berth.root, partial_ok=True)


def test_no_matching_platform(berth, registry_anon, catalogue):
    msg = assert_fails(berth.pull(registry_anon, catalogue["foreign-only"]),
                       "no matching manifest")
    assert "linux/arm64" in msg and "linux/s390x" in msg, msg
    assert images_json(berth) == []


# ------------------------------------------------------------------ images / rmi

def test_images_inspect_rmi(berth, registry_anon, catalogue):
    bb, ml = catalogue["busybox"], catalogue["multilayer"]
    host = registry_anon.host
    t0 = time.time()
    for f in (bb, ml):
        rc, _, err = berth.pull(registry_anon, f)
        assert rc == 0, err
    recs = {r["ref"]: r for r in images_json(berth)}
    assert set(recs) == {bb.ref(host), ml.ref(host)}
    for f in (bb, ml):
        assert_record(recs[f.ref(host)], f, host, t0)
    rc, out, err = berth("images")
    assert rc == 0 and "busybox" in out and "multilayer" in out, err
    rc, out, err = berth("inspect-image", ml.ref(host))
    assert rc == 0, err
    cfg = json.loads(out)
    assert cfg == ml.config_json and cfg["config"]["WorkingDir"] == "/var/www"

    rc, _, err = berth("rmi", bb.ref(host))
    assert rc == 0, err
    assert [r["ref"] for r in images_json(berth)] == [ml.ref(host)]
    blobs = store_files(berth.root, "blobs/sha256")
    assert bb.manifest.hex not in blobs and bb.config.hex not in blobs
    assert {ml.manifest.hex, ml.config.hex} | {ly.blob.hex for ly in ml.layers} == set(blobs)
    assert_layers(berth, ml)   # the shared busybox layer survives
    assert_fails(berth("inspect-image", bb.ref(host)), "not found")

    rc, _, err = berth("rmi", ml.ref(host))
    assert rc == 0, err
    assert images_json(berth) == []
    assert store_files(berth.root, "blobs/sha256") == []
    assert store_files(berth.root, "layers") == []
    assert_fails(berth("rmi", ml.ref(host)), "not found")


# ------------------------------------------------------------------ concurrent pulls

def test_concurrent_pulls_share_downloads(berth, registry_anon, catalogue):
    """Two processes pulling the same image into one store: both succeed and
    every blob crosses the wire once (the second waits on the first)."""
    im = catalogue["multilayer"]
    with reg.SlowProxy(registry_anon, 512 * 1024) as px:
        procs = [berth.popen("pull", "--insecure-registry", px.host, px.ref(im))
                 for _ in range(2)]
        results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
        gets = [path for method, path in px.requests
                if method == "GET" and "/blobs/sha256:" in path]
    for rc, out, err in results:
        assert rc == 0, err
    for blob in im.blobs():
        n = sum(path.endswith(blob.digest) for path in gets)
        assert n == 1, f"blob {blob.digest} fetched {n} times: {gets}"
    assert_layers(berth, im)
    assert_store_consistent(berth.root)


# ------------------------------------------------------------------ interrupted pull

def test_killed_pull_then_pull_again(berth, registry_anon, catalogue):
    im = catalogue["multilayer"]
    with reg.SlowProxy(registry_anon, 256 * 1024) as px:
        p = berth.popen("pull", "--insecure-registry", px.host, px.ref(im))
        started = px.wait_bytes(192 * 1024, 120)
        p.send_signal(signal.SIGKILL)
        out, err = p.communicate(timeout=30)
        assert started, f"pull never downloaded through the proxy: {out} {err}"
        assert p.returncode == -signal.SIGKILL
        assert px.blob_bytes < sum(b.size for b in im.blobs()), "pull was not cut mid-way"
    rc, out, err = berth.pull(registry_anon, im)
    assert rc == 0, err
    assert_layers(berth, im)
    assert_store_consistent(berth.root)
    assert [r["ref"] for r in images_json(berth)] == [im.ref(registry_anon.host)]


# ------------------------------------------------------------------ hostile layers

def _lstat_tuple(path):
    st = os.lstat(path)
    return (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
            st.st_size, st.st_nlink, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def host_snapshot(canary, workdir, root):
    """What a breakout could change outside --root."""
    snap = {}
    for dirpath, dirs, files in os.walk(canary):
        for n in [""] + dirs + files:
            p = os.path.join(dirpath, n) if n else dirpath
            snap[p] = _lstat_tuple(p)
            if n in files:
                snap[p] += (sha256_file(p),)
    snap["/etc/passwd"] = _lstat_tuple("/etc/passwd") + (sha256_file("/etc/passwd"),)
    snap["/etc:names"] = sorted(os.listdir("/etc"))
    snap["/:names"] = sorted(os.listdir("/"))
    for dirpath, dirs, files in os.walk(workdir):
        if dirpath == str(workdir):
            dirs[:] = [d for d in dirs if d != os.path.basename(root)]
        for n in dirs + files:
            snap[os.path.join(dirpath, n)] = os.path.isdir(os.path.join(dirpath, n))
    return snap


def planted(canary, workdir):
    """Files a breakout would plant (all carry fx.EVIL in their name)."""
    found = []
    for d in ("/", "/tmp", "/etc", "/var/tmp", os.path.dirname(canary)):
        found += [os.path.join(d, n) for n in os.listdir(d) if fx.EVIL in n]
    for top in (canary, str(workdir)):
        for dirpath, dirs, files in os.walk(top):
            if dirpath == str(workdir):
                dirs[:] = [d for d in dirs if d != "root"]
            found += [os.path.join(dirpath, n) for n in dirs + files if fx.EVIL in n]
    return found


@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_hostile_layer(berth, registry_anon, catalogue, canary, workdir, case):
    h = catalogue[f"hostile/{case}"]
    before = host_snapshot(canary, workdir, berth.root)
    assert planted(canary, workdir) == []
    rc, out, err = berth.pull(registry_anon, h)
    assert planted(canary, workdir) == [], f"{case}: {h.description}"
    assert host_snapshot(canary, workdir, berth.root) == before, f"{case}: host changed"
    top = berth.layer_dir(h.image.chain_ids[-1])
    if h.verdict == "fail" or (rc != 0 and not h.must_succeed):
        assert_fails((rc, out, err), "")
        assert not top.exists(), "a failed layer was committed"
        assert images_json(berth) == []
    else:
        assert rc == 0, f"{case} ({h.description}) must be contained, not refused: {err}"
    if rc == 0:
        for rel, kind in h.inside.items():
            st = os.lstat(top / rel)
            assert fx._kind(st.st_mode) == kind, f"{rel}: {fx._kind(st.st_mode)} != {kind}"
        host = {(st.st_dev, st.st_ino) for st in
                (os.lstat(p) for p in [os.path.join(canary, n) for n in os.listdir(canary)]
                 + ["/etc/passwd"])}
        for dirpath, dirs, files in os.walk(top):
            for n in files:
                st = os.lstat(os.path.join(dirpath, n))
                assert (st.st_dev, st.st_ino) not in host, f"{n}: hardlink to a host file"
    assert_store_consistent(berth.root, partial_ok=rc != 0)
