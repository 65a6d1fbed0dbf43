"""The `berth` commands that talk to the daemon (docs/cli.md): register,
task-definitions; `--output json` for each.

The daemon is test_api_clusters.py's `Daemon` (a real `berth daemon` on a
unix socket); the CLI runs as its own process with `--socket` pointing there,
and under the ASan build its stderr must carry no sanitizer report."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from test_api_clusters import (ACCOUNT, REGION, SANITIZER_MARKS, Daemon, aws_cli,  # noqa: F401
                               daemon, raw, tmpdir_short)

REPO = Path(__file__).resolve().parents[2]
BERTH_BIN = os.environ.get("BERTH_BIN", str(REPO / "build/release/berth"))
ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
           UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")


def td_arn(family, rev):
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{rev}"


def no_sanitizer_report(err):
    for mark in SANITIZER_MARKS:
        assert mark not in err, f"sanitizer report from the CLI:\n{err}"


class Cli:
    """`berth --socket <daemon's> [--log-root DIR] ARGS`: (rc, stdout, stderr)."""

    def __init__(self, sock, log_root=None):
        self.sock, self.log_root = str(sock), log_root

    def argv(self, args):
        a = [BERTH_BIN, "--socket", self.sock]
        if self.log_root:
            a += ["--log-root", str(self.log_root)]
        return a + [str(x) for x in args]

    def __call__(self, *args, timeout=60):
        p = subprocess.run(self.argv(args), capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, env=ENV)
        no_sanitizer_report(p.stderr)
        return p.returncode, p.stdout, p.stderr

    def json(self, *args):
        rc, out, err = self("--output", "json", *args)
        assert rc == 0, err
        return json.loads(out)


@pytest.fixture
def cli(daemon, tmpdir_short):
    return Cli(daemon.sock, Path(tmpdir_short) / "logs")


def write_td(tmp, doc, name="td.json"):
    p = Path(tmp) / name
    p.write_text(json.dumps(doc))
    return p


def web(family="web", **kw):
    return {"family": family,
            "containerDefinitions": [{"name": "app", "image": "busybox", "memory": 64, **kw}]}


# ---- register, task-definitions ----

def test_register_prints_family_revision(cli, tmpdir_short):
    f = write_td(tmpdir_short, web())
    assert cli("register", f) == (0, "web:1\n", "")
    assert cli("register", f) == (0, "web:2\n", "")
    out = cli.json("register", f)
    td = out["taskDefinition"]
    assert td["taskDefinitionArn"] == td_arn("web", 3) and td["status"] == "ACTIVE"
    assert td["containerDefinitions"][0]["image"] == "busybox"


def test_register_unwraps_describe_output(tmpdir_short):
    """What `aws ecs describe-task-definition --include TAGS` prints
    registers as the next revision, tags and all."""
    d = Daemon(tmpdir_short).wait_ready()
    try:
        c = Cli(d.sock)
        f = write_td(tmpdir_short, {**web(command=["echo", "hi"]),
                                    "tags": [{"key": "team", "value": "a"}]})
        assert c("register", f)[:2] == (0, "web:1\n")
        p = aws_cli(d, tmpdir_short, "describe-task-definition", "--task-definition", "web:1",
                    "--include", "TAGS")
        described = Path(tmpdir_short) / "described.json"
        described.write_text(p.stdout)
        assert "taskDefinition" in json.loads(p.stdout)
        rc, out, err = c("register", described)
        assert (rc, out) == (0, "web:2\n"), err
        status, doc = raw(d, "DescribeTaskDefinition",
                          {"taskDefinition": "web:2", "include": ["TAGS"]})
        assert status == 200
        assert doc["taskDefinition"]["containerDefinitions"][0]["command"] == ["echo", "hi"]
        assert doc["tags"] == [{"key": "team", "value": "a"}]
    finally:
        d.stop()


def test_register_errors(cli, tmpdir_short):
    rc, out, err = cli("register", "/nonexistent/td.json")
    assert (rc, out) == (1, "") and err.startswith("berth: read /nonexistent/td.json: ")
    assert "No such file" in err
    bad = Path(tmpdir_short) / "bad.json"
    bad.write_text('{"family": ')
    rc, out, err = cli("register", bad)
    assert rc == 1 and f"berth: {bad}: not valid JSON" in err
    bad.write_text("[1, 2]")
    rc, out, err = cli("register", bad)
    assert rc == 1 and f"berth: {bad}: not a JSON object" in err
    # The daemon's error body, as "berth: <Op>: <__type>: <message>".
    rc, out, err = cli("register", write_td(tmpdir_short, {"family": "x"}))
    assert (rc, out) == (1, "")
    assert err == ("berth: RegisterTaskDefinition: InvalidParameterException: "
                   "containerDefinitions: a value is required\n")
    rc, out, err = cli("register", write_td(tmpdir_short, web(family="bad name")))
    assert rc == 1 and err.startswith("berth: RegisterTaskDefinition: InvalidParameterException: "
                                      "family: ")


def test_task_definitions_lists_every_page(cli, daemon, tmpdir_short):
    assert cli("task-definitions") == (0, "FAMILY                                   "
                                          "REVISION STATUS\n", "")
    assert cli.json("task-definitions") == []
    # More than one page (ListTaskDefinitions pages by 100).
    for i in range(103):
        status, _ = raw(daemon, "RegisterTaskDefinition", web("b-many"))
        assert status == 200
    for fam in ("a-first", "c-last"):
        assert cli("register", write_td(tmpdir_short, web(fam)))[0] == 0
    status, _ = raw(daemon, "DeregisterTaskDefinition", {"taskDefinition": "b-many:2"})
    assert status == 200
    rc, out, err = cli("task-definitions")
    assert rc == 0, err
    rows = [ln.split() for ln in out.splitlines()[1:]]
    assert rows[0] == ["a-first", "1", "ACTIVE"] and rows[-1] == ["c-last", "1", "ACTIVE"]
    assert [r[1] for r in rows if r[0] == "b-many"] == [str(i) for i in range(1, 104) if i != 2]
    everything = cli.json("task-definitions", "-a")
    assert len(everything) == 105
    assert {"taskDefinitionArn": td_arn("b-many", 2), "family": "b-many", "revision": 2,
            "status": "INACTIVE"} in everything
    assert [(x["family"], x["revision"]) for x in everything] == sorted(
        (x["family"], x["revision"]) for x in everything)


# ---- errors every command shares ----

DAEMON_COMMANDS = [
    ["register", "{td}"],
    ["task-definitions"],
]


@pytest.mark.parametrize("args", DAEMON_COMMANDS, ids=lambda a: a[0])
def test_no_daemon_is_a_clear_error(tmpdir_short, args):
    sock = Path(tmpdir_short) / "none.sock"
    td = write_td(tmpdir_short, web())
    rc, out, err = Cli(sock)(*[a.format(td=td) for a in args])
    assert rc == 1 and out == ""
    assert err == f"berth: cannot reach the berth daemon at {sock}: No such file or directory\n"


@pytest.mark.parametrize("args", [
    ["register"], ["register", "a.json", "b.json"], ["task-definitions", "extra"],
    ["task-definitions", "--output", "yaml"], ["task-definitions", "--bogus"],
], ids=lambda a: "-".join(a))
def test_usage_errors(cli, args):
    rc, out, err = cli(*args)
    assert rc == 2 and out == "" and "usage: berth" in err


def test_help(cli):
    rc, out, err = cli("task-definitions", "--help")
    assert rc == 0 and out.startswith("usage: berth task-definitions [-a]")
    rc, out, err = cli("help")
    assert rc == 0
    for cmd in ("register", "task-definitions"):
        assert f"  {cmd} " in out

