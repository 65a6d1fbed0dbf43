"""The build's first minutes as a newcomer meets them: a build without the
libraries stops with one line that says what to do, and `make deps` on a
machine that has everything says nothing and changes nothing."""
import os
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def make(*args, env=None):
    # Run as a user would, not as a sub-make of `make test`.
    base = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO), *args],
                          capture_output=True, text=True, timeout=120,
                          env={**base, **(env or {})})


def test_build_without_libraries_stops_with_one_line():
    # pkg-config that finds no .pc file is what a machine without the -dev
    # packages looks like to the Makefile.
    with tempfile.TemporaryDirectory() as empty:
        for goal in ([], ["all"], ["asan"], ["unit"]):
            p = make("-n", *goal, env={"PKG_CONFIG_LIBDIR": empty, "PKG_CONFIG_PATH": ""})
            assert p.returncode == 2, (goal, p.stdout, p.stderr)
            assert p.stdout == "", f"{goal}: make went on to build: {p.stdout[:500]}"
            lines = p.stderr.strip().splitlines()
            assert len(lines) == 1, p.stderr
            assert "make deps" in lines[0] and "libnl-3.0" in lines[0], lines[0]


def test_goals_that_install_or_clean_do_not_need_the_libraries():
    with tempfile.TemporaryDirectory() as empty:
        p = make("-n", "clean", env={"PKG_CONFIG_LIBDIR": empty, "PKG_CONFIG_PATH": ""})
        assert p.returncode == 0 and p.stdout.strip() == "rm -rf build", (p.stdout, p.stderr)


def test_deps_is_quiet_when_everything_is_installed():
    p = make("deps")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and p.stderr == "", (p.stdout, p.stderr)
