"""pytest glue for integration tests: real registries with every fixture
image pushed (one per flavour per session), a runner for the berth CLI with
a fresh --root per test, and a check after every test that nothing the
fixtures started is left running."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from fixtures import images as fx          # noqa: E402
from fixtures import registry as reg       # noqa: E402
from fixtures import sanitizers            # noqa: E402

BERTH_BIN = os.environ.get("BERTH_BIN", str(REPO / "build/release/berth"))

# Objects that live for the whole session (the registries and their token
# servers); anything else in reg.LIVE after a test is a leak.
_SESSION_OBJECTS = set()


def pytest_configure(config):
    """Sanitizer reports of every process the session starts go to files
    (tests/fixtures/sanitizers.py): a test after which one appears fails."""
    config.addinivalue_line(
        "markers", "cgroup: what the cgroup backend decides (limits, OOM, devices, "
        "teardown, re-adoption); the cgroup lane of `make test` runs these on the "
        "backend this host does not use (tests/vm/lane.sh)")
    sanitizers.install()


def pytest_sessionfinish(session, exitstatus):
    """After every fixture is torn down nothing may be left running.  The
    API tests' daemons share one session bridge and nft tables
    (test_api_clusters.py)."""
    subprocess.run(["ip", "link", "del", f"berthapi{os.getpid() % 100000}"], capture_output=True)
    for family in ("ip", "bridge"):
        subprocess.run(["nft", "delete", "table", family, f"berth_api_{os.getpid()}"],
                       capture_output=True)
    leaks = set(reg.LIVE)
    for obj in leaks:
        obj.stop()
    pids = reg.child_registry_pids()
    for pid in pids:
        os.kill(pid, 9)
    if leaks or pids:
        print(f"\nberth fixtures left running at session end: {leaks} pids {pids}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    cgroups = _own_test_cgroups()
    if cgroups:
        print(f"\ncgroups the session's fixtures left: {cgroups}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    reports = sanitizers.take()
    sanitizers.remove()
    if reports:
        print(f"\nsanitizer reports at session end:\n{reports}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _own_test_cgroups():
    """The session's cgroup trees (cgroupName berth-test-<pid>,
    berth-dtest-<pid>) still there, in any hierarchy."""
    left = []
    for mnt, own in tk.own_cgroups().items():
        d = os.path.join(mnt, own.lstrip("/"))
        left += [os.path.join(d, n) for n in (os.listdir(d) if os.path.isdir(d) else ())
                 if n.startswith("berth") and n.endswith(f"-{os.getpid()}")]
    return left


@pytest.fixture(autouse=True)
def _no_leftovers():
    yield
    leaks = set(reg.LIVE) - _SESSION_OBJECTS
    for obj in leaks:
        obj.stop()
    allowed = {r.pid for r in _SESSION_OBJECTS if isinstance(r, reg.Registry)}
    stray = set(reg.child_registry_pids()) - allowed
    for pid in stray:
        os.kill(pid, 9)
    assert not leaks and not stray, f"test left running: {leaks} registry pids {stray}"
    sanitizers.check("after this test")


@pytest.fixture(scope="session")
def canary():
    """A host directory hostile layers aim at; must never change."""
    d = tempfile.mkdtemp(prefix="berth-canary-", dir="/tmp")
    fx.make_canary(d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def catalogue(canary):
    """name -> Image | Index | Hostile (hostile ones aim at the canary)."""
    return fx.catalogue(canary=canary)


def _session_registry(flavour, catalogue):
    r = reg.Registry(flavour).start()
    _SESSION_OBJECTS.add(r)
    if r.token_server:
        _SESSION_OBJECTS.add(r.token_server)
    try:
        r.push_all(catalogue.values())
    except BaseException:
        r.stop()
        raise
    return r


def _finish(r):
    r.stop()
    _SESSION_OBJECTS.discard(r)
    _SESSION_OBJECTS.discard(r.token_server)


@pytest.fixture(scope="session")
def registry_anon(catalogue):
    r = _session_registry("anon", catalogue)
    yield r
    _finish(r)


@pytest.fixture(scope="session")
def registry_basic(catalogue):
    r = _session_registry("basic", catalogue)
    yield r
    _finish(r)


@pytest.fixture(scope="session")
def registry_token(catalogue):
    r = _session_registry("token", catalogue)
    yield r
    _finish(r)


@pytest.fixture
def registry(request):
    """Indirect-parametrize helper: request.param is a flavour name."""
    return request.getfixturevalue(f"registry_{request.param}")


@pytest.fixture(scope="session")
def big_image(registry_anon):
    """The ~100 MB image, built (or read from the on-disk cache) and pushed
    to the anon registry on first use.  Only benchmarks ask for it."""
    im = fx.big_image()
    registry_anon.push(im)
    return im


@pytest.fixture
def corrupted(registry_anon):
    """The "corrupt" image's second layer, damaged in the anon registry for
    the duration of one test.  Yields (image, layer blob)."""
    im, blob = fx.corrupt_target()
    registry_anon.corrupt_blob(blob.digest)
    yield im, blob
    registry_anon.restore_blob(blob.digest)


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="berth-test-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def auth_file(workdir):
    """auth_file(registry, user=, password=) -> path of a docker-style
    config.json holding those credentials for that registry's host."""
    n = [0]

    def make(registry, user=reg.USER, password=reg.PASSWORD):
        n[0] += 1
        return reg.write_docker_config(str(workdir / f"auth{n[0]}"), registry.host, user,
                                       password)
    return make


class Berth:
    """Runs the berth CLI with --root <fresh dir>; returns (rc, out, err).
    HOME points at an empty dir and DOCKER_CONFIG is unset unless a test
    passes env=, so the host's credentials never leak in."""

    def __init__(self, binary, workdir):
        self.bin = binary
        self.root = workdir / "root"
        self.home = workdir / "home"
        self.home.mkdir()
        self.procs = []

    def env(self, extra=None):
        env = {k: v for k, v in os.environ.items() if k != "DOCKER_CONFIG"}
        env["HOME"] = str(self.home)
        env.update(extra or {})
        return env

    def argv(self, args):
        return [self.bin, "--root", str(self.root), *map(str, args)]

    def __call__(self, *args, env=None, timeout=300):
        p = subprocess.run(self.argv(args), env=self.env(env), capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr

    def popen(self, *args, env=None):
        p = subprocess.Popen(self.argv(args), env=self.env(env), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def pull(self, registry, fixture, *extra, env=None, ref=None):
        """pull --insecure-registry HOST <extra> REF (REF defaults to fixture's)."""
        return self("pull", "--insecure-registry", registry.host, *extra,
                    ref or fixture.ref(registry.host), env=env)

    def layer_dir(self, chain_id):
        return self.root / "layers" / chain_id.split(":", 1)[1]

    def reap(self):
        alive = [p for p in self.procs if p.poll() is None]
        for p in alive:
            p.kill()
        for p in self.procs:
            p.communicate()
        return alive


@pytest.fixture
def berth(workdir):
    if not os.access(BERTH_BIN, os.X_OK):
        pytest.fail(f"berth binary not built: {BERTH_BIN} (run make)")
    b = Berth(BERTH_BIN, workdir)
    yield b
    alive = b.reap()
    assert not alive, f"berth processes left running: {[p.args for p in alive]}"


# ------------------------------------------------------------------ berth-shim

from fixtures import tasks as tk           # noqa: E402

# Session-unique, so that two test sessions on one host (say, the shim's
# engineer and CI) never remove each other's bridge or table.
TEST_BRIDGE = f"berthtest{os.getpid() % 100000}"     # <= 15 chars
TEST_NFT_TABLE = f"berth_test_{os.getpid()}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """item.rep_<phase>: lets fixtures know whether the test itself failed."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _set_child_subreaper():
    """Orphans of the test (shims whose starting parent exited, a shim
    whose parent a test killed) reparent to pytest, not to pid 1, so that
    the tests can reap them and see exactly when they exit."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER


class ShimSession:
    def __init__(self, root, net, layers):
        self.root, self.net, self.layers = root, net, layers
        self.counter = 0


def _probe_layer(root, name):
    """A one-file layer: tests/fixtures/<name>.c built static (and so not
    position-independent) as /<name with dashes>."""
    exe = name.replace("_", "-")
    layer = root / f"{exe}-layer"
    layer.mkdir()
    src = Path(__file__).resolve().parents[1] / "fixtures" / f"{name}.c"
    p = subprocess.run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
                        str(layer / exe), str(src)], capture_output=True, text=True)
    assert p.returncode == 0, f"building {src}: {p.stderr}"
    return layer


@pytest.fixture(scope="session")
def shim_session(registry_anon, catalogue):
    """Session state for berth-shim tests: a session root under /tmp, the
    fixture images pulled with the real `berth pull` into a store there
    (layers/<chain hex> are the plans' layers), and the test network:
    bridge berthtest<pid>, a 10.213.N.0/24 no host interface uses, nft
    table berth_test_<pid>, cgroupName berth-test-<pid>.  Removed again at
    session end."""
    if os.geteuid() != 0:
        pytest.fail("berth-shim tests need root (real namespaces, cgroups and veths)")
    if not os.access(BERTH_BIN, os.X_OK):
        pytest.fail(f"berth binary not built: {BERTH_BIN} (run make)")
    if not os.access(tk.SHIM_BIN, os.X_OK):
        pytest.fail(f"berth-shim not built: {tk.SHIM_BIN} (run make all)")
    _set_child_subreaper()
    root = Path(tempfile.mkdtemp(prefix=f"berth-shimtest-{os.getpid()}-", dir="/tmp"))
    os.chmod(root, 0o755)
    try:
        net = tk.claim_test_net(TEST_BRIDGE, "10.213", TEST_NFT_TABLE,
                                f"berth-test-{os.getpid()}", BERTH_BIN, root / "hostnet")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    store = root / "store"
    layers = {}
    try:
        for name in ("busybox", "multilayer"):
            f = catalogue[name]
            p = subprocess.run([BERTH_BIN, "--root", str(store), "pull", "--insecure-registry",
                                registry_anon.host, f.ref(registry_anon.host)],
                               capture_output=True, text=True, timeout=300,
                               stdin=subprocess.DEVNULL)
            assert p.returncode == 0, f"berth pull {name}: {p.stderr}"
            im = f.resolved()
            layers[name] = [store / "layers" / c.split(":", 1)[1] for c in im.chain_ids]
            for d in layers[name]:
                assert d.is_dir(), f"pulled {name} but {d} is missing"
        for probe in ("keyctl_probe", "socketcall_probe", "fd_thief"):
            layers[probe.replace("_", "-")] = [_probe_layer(root, probe)]
        yield ShimSession(root, net, layers)
    finally:
        for pid in tk.shim_processes(root):
            os.kill(pid, 9)
            tk.reap(pid)
        tk.remove_cgroup_roots(net.cgroup_name)
        for line in sorted(tk.mount_lines(root), reverse=True):
            subprocess.run(["umount", "-l", line.split()[4]], capture_output=True)
        net.remove()
        shutil.rmtree(root, ignore_errors=True)


def _shim_leftovers(env, before):
    """Everything of env's tasks still on the host, as {what: [items]}."""
    sess = env.session
    out = {}
    shims = tk.shim_processes(env.root)
    if shims:
        out["berth-shim processes"] = shims
    cg = tk.task_cgroup_dirs(sess.net.cgroup_name)
    if cg:
        out["cgroups"] = cg
    mounts = tk.mount_lines(sess.root) - before["mounts"]
    if mounts:
        out["mounts"] = sorted(mounts)
    netns = tk.netns_names() - before["netns"]
    if netns:
        out["ip netns"] = sorted(netns)
    nsdir = env.run_dir / "netns"
    if nsdir.is_dir() and os.listdir(nsdir):
        out[f"{nsdir}"] = sorted(os.listdir(nsdir))
    links = tk.links()
    new = {n for n in links - before["links"]
           if n.startswith("vberth") and tk.link_master(n) == sess.net.bridge}
    ours = {tk.veth_name(t.id) for t in env.tasks} | {t.host_if for t in env.tasks if t.host_if}
    veths = sorted(new | (ours & links))
    if veths:
        out["veths"] = veths
    ruleset = tk.nft_ruleset()
    ips = [t.ip for t in env.tasks if t.ip and t.ip in ruleset]
    if ips:
        out["nft rules naming task addresses"] = ips
    held = []
    if env.ipam_dir.is_dir():
        for dirpath, _, files in os.walk(env.ipam_dir):
            held += [os.path.join(dirpath, f) for f in files if not f.startswith(".")]
    if held:
        out["IPAM addresses still allocated"] = held
    socks = [str(t.sock_path) for t in env.tasks if t.sock_path.exists()]
    if socks:
        out["control sockets"] = socks
    return out


def _force_cleanup(env, left):
    sess = env.session
    for pid in tk.shim_processes(env.root):
        try:
            os.kill(pid, 9)
        except OSError:
            pass
        tk.reap(pid)
    tk.kill_cgroup_tree(tk.task_cgroup_dirs(sess.net.cgroup_name))
    for line in sorted(left.get("mounts", []), reverse=True):
        subprocess.run(["umount", "-l", line.split()[4]], capture_output=True)
    nsdir = env.run_dir / "netns"
    if nsdir.is_dir():
        for n in os.listdir(nsdir):
            subprocess.run(["umount", "-l", str(nsdir / n)], capture_output=True)
            try:
                os.unlink(nsdir / n)
            except OSError:
                pass
    for n in left.get("ip netns", []):
        subprocess.run(["ip", "netns", "del", n], capture_output=True)
    for v in left.get("veths", []):
        subprocess.run(["ip", "link", "del", v], capture_output=True)
    for f in left.get("IPAM addresses still allocated", []):
        try:
            os.unlink(f)
        except OSError:
            pass


@pytest.fixture
def shim_env(shim_session, request):
    """A per-test TaskEnv (tmp dirs for runDir, taskDirs, logDirs, ipamDir).
    After the test: tasks still running are stopped (a test that passed and
    left one running fails), then nothing of any task may be left on the
    host — no shim process, cgroup, mount, netns, veth, nft rule, IPAM
    address or socket; leftovers are removed forcibly and fail the test."""
    shim_session.counter += 1
    env = tk.TaskEnv(shim_session, shim_session.root / f"t{shim_session.counter:03d}")
    before = {"mounts": tk.mount_lines(shim_session.root), "netns": tk.netns_names(),
              "links": tk.links()}
    yield env
    running = []
    for t in env.tasks:
        if t.parent is not None and t.parent.poll() is None:
            t.parent.kill()
            t.parent.wait()
        if t.pid and tk.alive(t.pid):
            running.append(t)
            try:
                t.stop_and_wait("test teardown", timeout=40)
            except Exception as e:       # noqa: BLE001 - reported below
                print(f"stopping {t} at teardown: {e}")
    rep = getattr(request.node, "rep_call", None)
    test_failed = rep is not None and rep.failed
    left = _shim_leftovers(env, before)
    if left:
        _force_cleanup(env, left)
    problems = []
    if running and not test_failed:
        problems.append(f"test left tasks running: {running}")
    if left:
        problems.append("left behind after the task stopped: " +
                        json.dumps(left, indent=1, default=str))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# ------------------------------------------------------------------ berth daemon tasks

@pytest.fixture(scope="session")
def task_net():
    """The task daemons' own test network, NAT table and cgroup name
    (tests/integration/test_api_tasks.py, test_services.py)."""
    if os.geteuid() != 0:
        pytest.fail("task tests need root")
    _set_child_subreaper()
    hostnet = tempfile.mkdtemp(prefix=f"berth-dtest-{os.getpid()}-", dir="/tmp")
    forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    net = tk.claim_test_net(f"berthd{os.getpid() % 100000}", "10.214",
                            f"berth_dtest_{os.getpid()}", f"berth-dtest-{os.getpid()}",
                            BERTH_BIN, hostnet)
    yield net
    net.remove()
    shutil.rmtree(hostnet, ignore_errors=True)
    tk.remove_cgroup_roots(net.cgroup_name)
    # NAT turned ip_forward on: a host-wide setting the tests put back.
    Path("/proc/sys/net/ipv4/ip_forward").write_text(forward)
