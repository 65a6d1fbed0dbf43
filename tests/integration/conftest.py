"""pytest glue for integration tests: real registries with every fixture
image pushed (one per flavour per session), a runner for the berth CLI with
a fresh --root per test, and a check after every test that nothing the
fixtures started is left running."""
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

BERTH_BIN = os.environ.get("BERTH_BIN", str(REPO / "build/release/berth"))

# Objects that live for the whole session (the registries and their token
# servers); anything else in reg.LIVE after a test is a leak.
_SESSION_OBJECTS = set()


def pytest_sessionfinish(session, exitstatus):
    """After every fixture is torn down nothing may be left running."""
    leaks = set(reg.LIVE)
    for obj in leaks:
        obj.stop()
    pids = reg.child_registry_pids()
    for pid in pids:
        os.kill(pid, 9)
    if leaks or pids:
        print(f"\nberth fixtures left running at session end: {leaks} pids {pids}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
