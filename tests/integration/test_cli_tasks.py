"""The `berth` commands that talk to the daemon (docs/cli.md): register,
task-definitions, run, ps, inspect, stop, logs; `--output json` for each.

The daemon is test_api_clusters.py's `Daemon` (a real `berth daemon` on a
unix socket); the CLI runs as its own process with `--socket` pointing there,
and under the ASan build its stderr must carry no sanitizer report.  Log
reading is also tested on CRI files the test writes itself (a task the
daemon does not know, with rotated files and partial records), so the
reader's rotation handling is exercised exactly."""
import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from test_api_clusters import (ACCOUNT, REGION, SANITIZER_MARKS, Daemon, aws_cli,  # noqa: F401
                               daemon, raw, tmpdir_short)

REPO = Path(__file__).resolve().parents[2]
BERTH_BIN = os.environ.get("BERTH_BIN", str(REPO / "build/release/berth"))
ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
           UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
TASK_ID = "0123456789abcdef0123456789abcdef"


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

    def __call__(self, *args, timeout=60, env=None):
        p = subprocess.run(self.argv(args), capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, env={**ENV, **(env or {})})
        no_sanitizer_report(p.stderr)
        return p.returncode, p.stdout, p.stderr

    def json(self, *args):
        rc, out, err = self("--output", "json", *args)
        assert rc == 0, err
        return json.loads(out)

    def popen(self, *args):
        return subprocess.Popen(self.argv(args), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=ENV)


def finish(p, timeout=30):
    out, err = p.communicate(timeout=timeout)
    no_sanitizer_report(err)
    return p.returncode, out, err


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
    assert (rc, err) == (1, "berth: RegisterTaskDefinition: ClientException: Family contains "
                            "invalid characters.\n")


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
    ["ps"],
    ["inspect", TASK_ID],
    ["stop", TASK_ID],
    ["logs", TASK_ID],
    ["run", "-d", "busybox"],
]


@pytest.mark.parametrize("args", DAEMON_COMMANDS, ids=lambda a: a[0])
def test_no_daemon_is_a_clear_error(tmpdir_short, args):
    sock = Path(tmpdir_short) / "none.sock"
    td = write_td(tmpdir_short, web())
    rc, out, err = Cli(sock)(*[a.format(td=td) for a in args])
    assert rc == (125 if args[0] == "run" else 1) and out == ""
    assert err == f"berth: cannot reach the berth daemon at {sock}: No such file or directory\n"


@pytest.mark.parametrize("args", [
    ["register"], ["register", "a.json", "b.json"], ["task-definitions", "extra"],
    ["ps", "extra"], ["inspect"], ["stop"], ["logs"], ["run"], ["ps", "--output", "yaml"],
    ["ps", "--bogus"],
], ids=lambda a: "-".join(a))
def test_usage_errors(cli, args):
    rc, out, err = cli(*args)
    assert rc == 2 and out == "" and "usage: berth" in err


@pytest.mark.parametrize("cmd", ["inspect", "stop", "logs"])
def test_task_argument_must_be_an_id_or_arn(cli, cmd):
    rc, out, err = cli(cmd, "../../etc")
    assert rc == 1
    assert err == "berth: task ../../etc: not a task id (32 hex digits) or task ARN\n"


# ---- logs from the files alone (a task the daemon does not know) ----

def cri(stream, text, tag="F", ts="2026-01-02T03:04:05.000000001Z"):
    return f"{ts} {stream} {tag} {text}\n"


def task_logs(root, files):
    """Writes {name: records} under root/TASK_ID; returns that directory."""
    d = Path(root) / TASK_ID
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def test_logs_reads_rotated_files_oldest_first(cli):
    task_logs(cli.log_root, {
        "app.log.2": cri("stdout", "one") + cri("stderr", "err-one"),
        "app.log.1": cri("stdout", "two-") + "" + cri("stdout", "", "P") + cri("stdout", "a", "P")
        + cri("stdout", "b"),
        "app.log": cri("stdout", "three", "P") + cri("stderr", "err-two") +
        cri("stdout", " and more") + cri("stdout", "") + cri("stdout", "tabs\tand  kept"),
    })
    rc, out, err = cli("logs", TASK_ID)
    assert rc == 0, err
    assert out == "one\ntwo-\nab\nthree and more\n\ntabs\tand  kept\n"
    assert err == "err-one\nerr-two\n"
    # The ARN names the same task.
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/default/{TASK_ID}"
    assert cli("logs", arn)[:2] == (0, out)


def test_logs_of_unknown_task_without_files(cli):
    rc, out, err = cli("logs", TASK_ID)
    assert (rc, out, err) == (1, "", f"berth: task {TASK_ID} not found\n")
    task_logs(cli.log_root, {"a.log": cri("stdout", "A"), "b.log": cri("stdout", "B")})
    rc, out, err = cli("logs", TASK_ID)
    assert rc == 1 and "choose one with --container" in err
    assert cli("logs", "--container", "b", TASK_ID)[:2] == (0, "B\n")
    assert cli("logs", TASK_ID, "--container", "a")[:2] == (0, "A\n")
    rc, out, err = cli("logs", "--container", "c", TASK_ID)
    assert (rc, err) == (1, f"berth: task {TASK_ID} not found\n")


def wait_for_file(path, want, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = Path(path).read_text()
        if got == want:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path}: want {want!r}, have {Path(path).read_text()!r}")


@contextlib.contextmanager
def follower(cli, tmpdir, first):
    """`berth logs -f` of the forgotten task TASK_ID, its stdout and stderr
    in files; yields (out_path, err_path) once it has printed `first`, and
    at the end checks that SIGINT stops it (130) with no sanitizer report."""
    out_path, err_path = Path(tmpdir) / "out", Path(tmpdir) / "err"
    with open(out_path, "w") as o, open(err_path, "w") as e:
        p = subprocess.Popen(cli.argv(["logs", "-f", TASK_ID]), stdout=o, stderr=e,
                             stdin=subprocess.DEVNULL, env=ENV)
    try:
        wait_for_file(out_path, first)
        yield out_path, err_path
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=10) == 130
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    no_sanitizer_report(err_path.read_text())


def rotate(d, records, new_first=False):
    """Rotates d/app.log the shim's way: a new file, the others renamed up
    oldest first (none deleted), the new one to app.log last.  records go
    into the new file before its rename (new_first) or after."""
    new = d / "app.log.new"
    new.write_text("".join(records) if new_first else "")
    k = 1
    while (d / f"app.log.{k}").exists():
        k += 1
    for i in range(k - 1, 0, -1):
        os.rename(d / f"app.log.{i}", d / f"app.log.{i + 1}")
    os.rename(d / "app.log", d / "app.log.1")
    os.rename(new, d / "app.log")
    if not new_first:
        with open(d / "app.log", "a") as f:
            f.write("".join(records))


def test_logs_follow_survives_rotation(cli, tmpdir_short):
    """Every record once and in order while the writer rotates, once or
    twice between two reads; the follower of a forgotten task ends on
    SIGINT."""
    d = task_logs(cli.log_root, {"app.log": cri("stdout", "1")})
    with follower(cli, tmpdir_short, "1\n") as (out_path, err_path):
        with open(d / "app.log", "a") as f:
            f.write(cri("stdout", "2", "P"))
        with open(d / "app.log", "a") as f:
            f.write(cri("stdout", "3"))
        wait_for_file(out_path, "1\n23\n")
        with open(d / "app.log", "a") as f:
            f.write(cri("stdout", "4"))
        rotate(d, [cri("stdout", "5")])
        wait_for_file(out_path, "1\n23\n4\n5\n")
        # Two rotations the follower may see as one.
        rotate(d, [cri("stdout", "6"), cri("stderr", "e6")])
        rotate(d, [cri("stdout", "7")])
        wait_for_file(out_path, "1\n23\n4\n5\n6\n7\n")
        wait_for_file(err_path, "e6\n")


def test_logs_follow_loses_nothing_while_rotating_fast(cli, tmpdir_short):
    """A writer that rotates after every record, 300 times as fast as it
    can: the follower prints each record once, in order, whatever it
    catches half-renamed."""
    n = 300
    d = task_logs(cli.log_root, {"app.log": cri("stdout", "0")})
    with follower(cli, tmpdir_short, "0\n") as (out_path, _):
        for i in range(1, n + 1):
            rotate(d, [cri("stdout", str(i))], new_first=i % 2 == 0)
        wait_for_file(out_path, "".join(f"{i}\n" for i in range(n + 1)), timeout=30)


# ---- tasks: a daemon that runs them ----

# test_api_tasks.py's daemon: its own test network, and after every test a
# check that no task is left running and nothing of one on the host.
from fixtures import tasks as tk  # noqa: E402
from test_api_tasks import tdaemon, tmp_tasks  # noqa: E402,F401  (task_net: conftest.py)

IDLE = 'trap "exit 0" TERM; echo ready; sleep 1000 & wait'


@pytest.fixture
def tasks(tdaemon, catalogue):
    """Cli of tdaemon; .image is the busybox fixture in its registry."""
    c = Cli(tdaemon.sock, tdaemon.logs)
    c.daemon, c.net = tdaemon, tdaemon.net
    c.image = catalogue["busybox"].ref(tdaemon.registry.host)
    return c


def poll(fn, what, timeout=60):
    return tk.poll_until(fn, timeout, what)


def task_status(c, tid):
    rc, out, err = c("inspect", tid)
    assert rc == 0, err
    return json.loads(out)


def test_run_detached_ps_inspect_logs_stop(tasks):
    c = tasks
    rc, out, err = c("run", "-d", c.image, "sh", "-c", "echo hello; echo oops >&2; " + IDLE)
    assert rc == 0, err
    tid = out.strip()
    assert len(tid) == 32 and int(tid, 16) >= 0, out
    t = poll(lambda: (lambda t: t["lastStatus"] == "RUNNING" and t)(task_status(c, tid)),
             "the task to run")
    assert t["taskArn"].endswith("/" + tid)
    assert t["taskDefinitionArn"] == td_arn("berth-run-busybox", 1)
    assert task_status(c, t["taskArn"])["taskArn"] == t["taskArn"]   # the ARN works too

    rc, out, err = c("ps")
    assert rc == 0, err
    head, *rows = out.splitlines()
    assert head.split() == ["TASK", "ID", "DEFINITION", "STATUS", "HEALTH", "IP", "AGE"]
    assert len(rows) == 1
    cols = rows[0].split()
    assert cols[:3] == [tid, "berth-run-busybox:1", "RUNNING"]
    assert cols[4].startswith(c.net.subnet.rsplit(".", 1)[0] + "."), cols
    assert cols[5].endswith("s") or cols[5].endswith("m")
    ps = c.json("ps")
    assert [x["taskArn"] for x in ps] == [t["taskArn"]]

    poll(lambda: c("logs", tid)[1:] == ("hello\nready\n", "oops\n"), "the task's output")

    rc, out, err = c("stop", tid)
    assert (rc, out) == (0, tid + "\n"), err
    t = poll(lambda: (lambda t: t["lastStatus"] == "STOPPED" and t)(task_status(c, tid)),
             "the task to stop")
    assert t["stoppedReason"] == "Task stopped by user" and t["desiredStatus"] == "STOPPED"
    assert t["containers"][0]["exitCode"] == 0
    assert c("ps")[1].splitlines()[1:] == []
    rc, out, err = c("ps", "-a")
    assert rc == 0 and tid in out and "STOPPED" in out
    assert [x["taskArn"] for x in c.json("ps", "-a")] == [t["taskArn"]]
    # Logs outlive the task.
    assert c("logs", tid)[1:] == ("hello\nready\n", "oops\n")


def test_run_foreground_exit_code_env_and_name(tasks):
    c = tasks
    rc, out, err = c("run", "-e", "GREETING=hi there", "-e", "EMPTY=", "-e", "FROM_HOST",
                     "-e", "NOT_ON_HOST", "--name", "my.app", "--memory", "128", "--cpu", "512",
                     c.image, "sh", "-c", 'echo "$GREETING"; echo "[$EMPTY]"; echo "$FROM_HOST";'
                     ' echo "${NOT_ON_HOST-unset}"; echo err >&2; exit 3',
                     env={"FROM_HOST": "host value"})
    assert (rc, out) == (3, "hi there\n[]\nhost value\nunset\n"), err
    assert err == "err\n"
    status, doc = raw(c.daemon, "DescribeTaskDefinition", {"taskDefinition": "my-app"})
    td = doc["taskDefinition"]
    assert (td["cpu"], td["memory"], td["networkMode"]) == ("512", "128", "awsvpc")
    ctr = td["containerDefinitions"][0]
    assert ctr["memory"] == 128 and ctr["essential"] is True and ctr["image"] == c.image
    assert {"name": "GREETING", "value": "hi there"} in ctr["environment"]
    rc, out, err = c("run", c.image, "sh", "-c", "exit 255")
    assert rc == 255, err
    status, doc = raw(c.daemon, "DescribeTaskDefinition", {"taskDefinition": "berth-run-busybox"})
    assert (doc["taskDefinition"]["cpu"], doc["taskDefinition"]["memory"]) == ("256", "512")


def test_run_json(tasks):
    c = tasks
    resp = c.json("run", "-d", c.image, "sh", "-c", IDLE)
    assert set(resp) >= {"tasks", "failures"} and len(resp["tasks"]) == 1
    assert resp["tasks"][0]["lastStatus"] in ("PROVISIONING", "PENDING", "RUNNING")
    arn = resp["tasks"][0]["taskArn"]
    stopped = c.json("stop", arn)
    assert stopped["task"]["desiredStatus"] == "STOPPED"
    poll(lambda: task_status(c, arn)["lastStatus"] == "STOPPED", "the task to stop")
    rc, out, err = c("--output", "json", "run", c.image, "sh", "-c", "echo quiet; exit 4")
    assert rc == 4, err
    t = json.loads(out)
    assert t["lastStatus"] == "STOPPED" and t["containers"][0]["exitCode"] == 4


def test_run_failed_to_start_is_125(tasks):
    c = tasks
    image = c.image.rsplit("/", 1)[0] + "/does-not-exist:1"
    rc, out, err = c("run", image, "true")
    assert rc == 125 and out == ""
    assert err.startswith("berth: task ") and " failed to start: CannotPullContainerError: " in err
    assert len(err.splitlines()) == 1, err   # the container says the same: said once
    rc, out, err = c("--output", "json", "run", image, "true")
    assert rc == 125
    t = json.loads(out)
    assert t["lastStatus"] == "STOPPED" and t["stopCode"] == "TaskFailedToStart"


def test_run_ctrl_c_stops_the_task(tasks):
    c = tasks
    p = c.popen("run", c.image, "sh", "-c", IDLE)
    try:
        assert p.stdout.readline() == "ready\n"
        p.send_signal(signal.SIGINT)
        rc, out, err = finish(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 0, err
    assert "stopping task" in err
    t = c.json("ps", "-a")[0]
    assert t["lastStatus"] == "STOPPED"
    assert t["stoppedReason"] == "Task stopped by user (berth run interrupted)"


def test_logs_follow_ends_when_the_task_stops(tasks):
    c = tasks
    script = "for i in 1 2 3; do echo line$i; sleep 0.2; done; echo bye >&2"
    rc, out, err = c("run", "-d", c.image, "sh", "-c", script)
    assert rc == 0, err
    tid = out.strip()
    rc, out, err = finish(c.popen("logs", "-f", tid), timeout=60)
    assert (rc, out, err) == (0, "line1\nline2\nline3\n", "bye\n")
    # The ECS error of a daemon that does not know the container.
    rc, out, err = c("logs", "--container", "nope", tid)
    assert rc == 1 and "has no container nope (it has: busybox)" in err


def test_stop_unknown_task_is_the_daemons_error(tasks):
    rc, out, err = tasks("stop", TASK_ID)
    assert rc == 1 and err.startswith("berth: StopTask: "), err
    rc, out, err = tasks("inspect", TASK_ID)
    assert (rc, err) == (1, f"berth: task {TASK_ID} not found\n")
