"""Proves the fixtures right with independent tools: GNU tar for the expected
layer trees, skopeo (a real registry client) for the registries, plain
HTTP for auth, corruption and throttling.  Needs no berth binary."""
import base64
import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time

import pytest
import requests

from fixtures import images as fx
from fixtures import registry as reg

FLAVOURS = ["anon", "basic", "token"]
PULLABLE = ["busybox", "multilayer", "multiarch-oci", "multiarch-docker", "docker-schema2",
            "zstd"]


def skopeo(*args, timeout=120):
    p = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def creds(registry, password=reg.PASSWORD):
    return [] if registry.flavour == "anon" else ["--src-creds", f"{reg.USER}:{password}"]


def decompress(blob_bytes, media_type):
    if media_type.endswith("+gzip") or media_type.endswith(".tar.gzip"):
        return gzip.decompress(blob_bytes)
    if media_type.endswith("+zstd"):
        return subprocess.run(["zstd", "-q", "-d", "-c"], input=blob_bytes,
                              stdout=subprocess.PIPE, check=True).stdout
    return blob_bytes


def reference_unpack(tar_bytes, dest):
    """GNU tar, then whiteouts converted to overlay form: the independent
    oracle the expected trees are checked against."""
    subprocess.run(["tar", "-x", "-p", "--numeric-owner", "--xattrs",
                    "--xattrs-include=user.*", "-C", str(dest)], input=tar_bytes, check=True)
    for dirpath, _, files in os.walk(dest):
        for n in files:
            if n == ".wh..wh..opq":
                os.unlink(os.path.join(dirpath, n))
                os.setxattr(dirpath, "trusted.overlay.opaque", b"y")
            elif n.startswith(".wh."):
                os.unlink(os.path.join(dirpath, n))
                os.mknod(os.path.join(dirpath, n[4:]), 0o600 | 0o020000, 0)


def all_images(fixture):
    return fixture.images if isinstance(fixture, fx.Index) else [fixture]


# ------------------------------------------------------------------ offline

@pytest.mark.parametrize("name", PULLABLE + ["foreign-only", "corrupt"])
def test_expected_trees_match_gnu_tar(catalogue, name, workdir):
    for im in all_images(catalogue[name]):
        for i, layer in enumerate(im.layers):
            d = workdir / f"{im.digest[7:19]}-{i}"
            d.mkdir()
            reference_unpack(layer.tar, d)
            assert fx.diff_trees(layer.expected, fx.describe_tree(d)) == [], (name, i)


def test_fixture_shapes(catalogue):
    ml = catalogue["multilayer"]
    assert len(ml.layers) >= 3
    assert ml.layers[0].blob.digest == catalogue["busybox"].layers[0].blob.digest
    kinds = {(n["type"], n["mode"]) for ly in ml.expected_layers for n in ly.values()}
    assert ("file", 0o4755) in kinds and ("dir", 0o700) in kinds and ("dir", 0o1777) in kinds
    flat = {p: n for ly in ml.expected_layers for p, n in ly.items()}
    assert flat["etc/berth/removed"]["type"] == "char"
    assert flat["opt/data"]["xattrs"] == {"trusted.overlay.opaque": "y"}
    assert flat["usr/share/berth/hl-b"]["hlgroup"] == "usr/share/berth/hl-a"
    assert flat["usr/bin/link"]["target"] == "/bin/busybox"
    assert flat["etc/berth/xattr"]["xattrs"] == {"user.berth": "test"}
    assert (flat["home/app/owned"]["uid"], flat["home/app/owned"]["gid"]) == (1000, 1000)
    bb = catalogue["busybox"]
    assert bb.config_json["config"]["Cmd"] == ["/bin/sh"]
    assert bb.expected_layers[0]["bin/sh"]["target"] == "/bin/busybox"
    assert catalogue["multiarch-oci"].resolved() is not None
    assert catalogue["foreign-only"].resolved() is None
    assert catalogue["multiarch-oci"].resolved().digest == ml.digest
    z = catalogue["zstd"]
    assert [ly.blob.media_type for ly in z.layers] == [fx.OCI_LAYER_ZSTD, fx.OCI_LAYER_TAR]
    assert z.layers[0].diff_id == bb.layers[0].diff_id
    m = json.loads(catalogue["docker-schema2"].manifest_bytes)
    assert m["mediaType"] == fx.DOCKER_MANIFEST
    assert m["config"]["mediaType"] == fx.DOCKER_CONFIG
    assert {ly["mediaType"] for ly in m["layers"]} == {fx.DOCKER_LAYER_GZIP}
    assert json.loads(catalogue["multiarch-docker"].manifest_bytes)["mediaType"] == fx.DOCKER_LIST


def test_chain_ids():
    a, b, c = (fx.sha256_digest(x) for x in (b"a", b"b", b"c"))
    ab = fx.sha256_digest(f"{a} {b}".encode())
    assert fx.chain_ids([a, b, c]) == [a, ab, fx.sha256_digest(f"{ab} {c}".encode())]


def test_deterministic():
    ml = fx.multilayer_layers()
    assert [ly.blob.digest for ly in ml] == [ly.blob.digest for ly in fx.multilayer_layers()]
    assert fx.Layer(fx.busybox_entries(), "zstd").blob.digest == \
        fx.busybox_layer("zstd").blob.digest


def test_hostile_layers_keep_raw_names(catalogue, canary):
    hostile = {h.case: h for h in catalogue.values() if isinstance(h, fx.Hostile)}
    assert len(hostile) >= 15
    names = {}
    for case, h in hostile.items():
        with tarfile.open(fileobj=io.BytesIO(h.image.layers[-1].tar)) as t:
            names[case] = [(m.name, m.linkname) for m in t.getmembers()]
    assert ("etc/x", "/") in names["symlink-absolute"]
    assert names["dotdot-name"][0][0].startswith("../")
    assert names["absolute-name"][0][0].startswith("/")
    assert names["whiteout-parent"][-1][0] == "etc/.wh..."
    assert any(link == f"{canary}/{fx.CANARY_FILE}" for _, link in
               names["hardlink-absolute-canary"])
    assert {h.verdict for h in hostile.values()} == {"fail", "contain"}


# ------------------------------------------------------------------ registries

@pytest.mark.parametrize("registry", FLAVOURS, indirect=True)
@pytest.mark.parametrize("name", PULLABLE + ["foreign-only"])
def test_skopeo_inspect_raw(registry, catalogue, name):
    f = catalogue[name]
    rc, out, err = skopeo("inspect", "--raw", "--tls-verify=false",
                          *(["--creds", f"{reg.USER}:{reg.PASSWORD}"]
                            if registry.flavour != "anon" else []),
                          f"docker://{registry.ref(f)}")
    assert rc == 0, err
    assert out.encode() == f.manifest_bytes


@pytest.mark.parametrize("registry", FLAVOURS, indirect=True)
@pytest.mark.parametrize("name", PULLABLE)
def test_skopeo_copy(registry, catalogue, name, workdir):
    """skopeo copies the image (the linux/amd64 one for indexes) into an OCI
    layout; its layer blobs are ours and unpack to the expected trees."""
    f = catalogue[name]
    im = f.resolved()
    layout = workdir / "oci"
    rc, out, err = skopeo("copy", "--preserve-digests", "--src-tls-verify=false",
                          *creds(registry), "--override-os", "linux", "--override-arch", "amd64",
                          f"docker://{registry.ref(f)}", f"oci:{layout}:t")
    assert rc == 0, err
    index = json.loads((layout / "index.json").read_text())
    mdigest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs/sha256" / mdigest[7:]).read_bytes())
    got = [ly["digest"] for ly in manifest["layers"]]
    assert got == [ly.blob.digest for ly in im.layers]
    for i, (desc, layer) in enumerate(zip(manifest["layers"], im.layers)):
        data = (layout / "blobs/sha256" / desc["digest"][7:]).read_bytes()
        assert fx.sha256_digest(data) == desc["digest"]
        tar = decompress(data, desc["mediaType"])
        assert fx.sha256_digest(tar) == layer.diff_id
        d = workdir / f"layer{i}"
        d.mkdir()
        reference_unpack(tar, d)
        assert fx.diff_trees(layer.expected, fx.describe_tree(d)) == []
    config = json.loads((layout / "blobs/sha256" / manifest["config"]["digest"][7:]).read_bytes())
    assert config["rootfs"]["diff_ids"] == im.diff_ids


def test_skopeo_refuses_foreign_only_index(registry_anon, catalogue, workdir):
    rc, out, err = skopeo("copy", "--src-tls-verify=false", "--override-os", "linux",
                          "--override-arch", "amd64",
                          f"docker://{registry_anon.ref(catalogue['foreign-only'])}",
                          f"oci:{workdir / 'oci'}:t")
    assert rc != 0 and "no image found" in err.lower(), err


def test_token_registry_refuses_anonymous(registry_token, catalogue, workdir):
    ref = registry_token.ref(catalogue["busybox"])
    rc, _, err = skopeo("copy", "--src-tls-verify=false", f"docker://{ref}",
                        f"oci:{workdir / 'oci'}:t")
    assert rc != 0 and ("unauthorized" in err or "denied" in err), err
    # The anonymous token is real but grants nothing; the registry checks it.
    client = registry_token.make_client()
    r = client.request("GET", "/v2/busybox/manifests/latest", "busybox",
                       headers={"Accept": fx.OCI_MANIFEST})
    assert r.status_code == 401
    ts = registry_token.token_server
    assert ts.requests[-1][0] is None


def test_token_registry_verifies_signatures(registry_token):
    """A token with full access but signed by a foreign key is refused, the
    same claims signed by the token server are accepted."""
    good = registry_token.token_server.issue(reg.USER, [("repository", "busybox", ["pull"])])
    other = reg.TokenServer(tempfile.mkdtemp(prefix="berth-forge-"))
    try:
        forged = other.issue(reg.USER, [("repository", "busybox", ["pull"])])
    finally:
        shutil.rmtree(os.path.dirname(other.cert_path))
    url = f"{registry_token.url}/v2/busybox/manifests/latest"
    h = {"Accept": fx.OCI_MANIFEST}
    assert requests.get(url, headers=dict(h, Authorization="Bearer " + good)).status_code == 200
    assert requests.get(url, headers=dict(h, Authorization="Bearer " + forged)).status_code == 401
    r = requests.get(url, headers=h)
    assert r.status_code == 401
    chal = r.headers["WWW-Authenticate"]
    assert chal.startswith("Bearer ") and f'service="{reg.SERVICE}"' in chal
    assert 'scope="repository:busybox:pull"' in chal


def test_token_server_answers_like_docker_hub(registry_token):
    ts = registry_token.token_server
    r = requests.get(ts.realm, params={"service": reg.SERVICE,
                                       "scope": "repository:busybox:pull,push"},
                     auth=(reg.USER, reg.PASSWORD))
    body = r.json()
    assert r.status_code == 200 and body["token"] == body["access_token"]
    assert body["expires_in"] == 300 and body["issued_at"].endswith("Z")
    payload = json.loads(base64.urlsafe_b64decode(body["token"].split(".")[1] + "=="))
    assert payload["access"] == [{"type": "repository", "name": "busybox",
                                  "actions": ["pull", "push"]}]
    r = requests.get(ts.realm, params={"service": reg.SERVICE}, auth=(reg.USER, "wrong"))
    assert r.status_code == 401


@pytest.mark.parametrize("key_header", ["x5c", "kid"])
def test_token_key_identification(key_header, catalogue):
    """distribution 2.8 accepts the signing key both as an x5c chain and
    as a libtrust key id matching the rootcertbundle."""
    with reg.Registry("token", key_header=key_header) as r:
        r.push(catalogue["busybox"])
        rc, out, err = skopeo("inspect", "--raw", "--tls-verify=false", "--creds",
                              f"{reg.USER}:{reg.PASSWORD}",
                              f"docker://{r.ref(catalogue['busybox'])}")
        assert rc == 0, err


@pytest.mark.parametrize("registry", ["basic", "token"], indirect=True)
def test_wrong_password_refused(registry, catalogue, workdir):
    rc, _, err = skopeo("copy", "--src-tls-verify=false",
                        *creds(registry, password="not-the-password"),
                        f"docker://{registry.ref(catalogue['busybox'])}",
                        f"oci:{workdir / 'oci'}:t")
    assert rc != 0 and ("unauthorized" in err or "401" in err), err


@pytest.mark.parametrize("registry", ["basic", "token"], indirect=True)
def test_docker_config_helper(registry, catalogue, workdir):
    path = reg.write_docker_config(str(workdir / "cfg"), registry.host)
    rc, _, err = skopeo("inspect", "--raw", "--tls-verify=false", "--authfile", path,
                        f"docker://{registry.ref(catalogue['busybox'])}")
    assert rc == 0, err


def test_corrupted_blob_is_served_corrupted(registry_anon, corrupted, workdir):
    im, blob = corrupted
    served = requests.get(f"{registry_anon.url}/v2/{im.repo}/blobs/{blob.digest}").content
    assert len(served) == blob.size and served != blob.data
    assert fx.sha256_digest(served) != blob.digest
    assert gzip.decompress(served) == im.layers[1].tar   # only the gzip MTIME byte changed
    rc, _, err = skopeo("copy", "--src-tls-verify=false", f"docker://{registry_anon.ref(im)}",
                        f"oci:{workdir / 'oci'}:t")
    assert rc != 0 and "digest" in err.lower(), err


def test_slow_proxy_throttles_blobs(registry_anon, catalogue, workdir):
    layer = catalogue["busybox"].layers[0].blob
    rate = 2 * 1024 * 1024
    with reg.SlowProxy(registry_anon, rate) as px:
        t = time.monotonic()
        data = requests.get(f"http://{px.host}/v2/busybox/blobs/{layer.digest}").content
        elapsed = time.monotonic() - t
        assert data == layer.data and elapsed >= 0.8 * layer.size / rate
        # The proxy counts a chunk after writing it: the client can have
        # the last one first.
        assert px.wait_bytes(layer.size, 10) and px.blob_bytes == layer.size
        rc, _, err = skopeo("copy", "--src-tls-verify=false",
                            f"docker://{px.ref(catalogue['multilayer'])}",
                            f"oci:{workdir / 'oci'}:t")
        assert rc == 0, err


def test_slow_proxy_can_be_cut_mid_blob(registry_anon, catalogue):
    layer = catalogue["busybox"].layers[0].blob
    with reg.SlowProxy(registry_anon, 256 * 1024) as px:
        r = requests.get(f"http://{px.host}/v2/busybox/blobs/{layer.digest}", stream=True)
        assert px.wait_bytes(64 * 1024, 30)
        r.close()
        assert px.blob_bytes < layer.size


def test_registry_stop_cleans_up():
    r = reg.Registry("basic").start()
    pid, workdir = r.pid, r.workdir
    assert pid in reg.child_registry_pids()
    r.stop()
    assert pid not in reg.child_registry_pids()
    assert not os.path.exists(workdir) and r not in reg.LIVE


def test_big_image(big_image, registry_anon, workdir):
    assert 90e6 < big_image.size < 130e6 and len(big_image.layers) >= 5
    rc, out, err = skopeo("inspect", "--raw", "--tls-verify=false",
                          f"docker://{registry_anon.ref(big_image)}")
    assert rc == 0 and out.encode() == big_image.manifest_bytes, err
    blob = big_image.layers[0].blob
    data = requests.get(f"{registry_anon.url}/v2/big/blobs/{blob.digest}").content
    assert fx.sha256_digest(data) == blob.digest
    assert fx.sha256_digest(gzip.decompress(data)) == big_image.layers[0].diff_id
