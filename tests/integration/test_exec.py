"""`berth exec` against real tasks (docs/task-environment.md "berth exec").

Each test starts a real daemon (test_api_tasks.py's TaskDaemon) and real
tasks; the CLI runs as its own process, on pipes or on a pseudo-terminal
the test opens (the operator's terminal), and the process it starts must
be the container's: its rootfs, env, user, cgroup.  The attack: a process
in the task tries TIOCSTI on every terminal it can reach and lists its
descriptors; the operator's terminal must receive nothing and the process
must hold nothing but its pipes or its own pty."""
import errno
import json
import fcntl
import os
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from fixtures import images as fx
from fixtures import tasks as tk
from test_api_clusters import make_client
from test_api_tasks import (NETCFG, describe, ecs, register, run, sh, task_id,  # noqa: F401
                            tdaemon, tmp_tasks, wait_running, wait_stopped)
from test_cli_tasks import BERTH_BIN, ENV, no_sanitizer_report

PROBE_SRC = Path(__file__).resolve().parents[1] / "fixtures" / "exec_probe.c"


@pytest.fixture(scope="module")
def probe_image(registry_anon, tmp_path_factory):
    """busybox plus /usr/bin/exec-probe (tests/fixtures/exec_probe.c)."""
    exe = tmp_path_factory.mktemp("exec-probe") / "exec-probe"
    p = subprocess.run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                        str(PROBE_SRC)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    im = fx.Image("exec-probe", "latest", [fx.busybox_layer(), fx.Layer([
        fx.D("usr"), fx.D("usr/bin"), fx.F("usr/bin/exec-probe", exe.read_bytes(), 0o755)])])
    registry_anon.push(im)
    return f"{registry_anon.host}/exec-probe:latest"


def berth(d, *args):
    return [BERTH_BIN, "--socket", str(d.sock), "exec", *[str(a) for a in args]]


def exec_run(d, *args, input=None, timeout=60):
    """berth exec ARGS on pipes: (rc, stdout, stderr)."""
    p = subprocess.run(berth(d, *args), input=input, capture_output=True, text=True,
                       timeout=timeout, env=ENV,
                       stdin=None if input is not None else subprocess.DEVNULL)
    no_sanitizer_report(p.stderr)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def start(ecs, tdaemon):
    """start(CONTAINERS, **register_kw): a task, RUNNING; its id.  Stopped
    again after the test."""
    arns = []

    def go(containers, **kw):
        td = register(ecs, tdaemon, containers, **kw)
        (t,) = run(ecs, td)
        arns.append(t["taskArn"])
        t = wait_running(ecs, t["taskArn"])
        assert t["lastStatus"] == "RUNNING", t
        return task_id(t)
    yield go
    live = [a for a in arns if describe(ecs, a)["lastStatus"] != "STOPPED"]
    for a in live:
        ecs.stop_task(task=a)
    if live:
        wait_stopped(ecs, live)


def exec_pids(d, tid, container, argv):
    """Host pids in the container's cgroup whose command line is ARGV."""
    want = "\0".join(argv) + "\0"
    out = []
    for root in tk.cgroup_tree_roots(d.net.cgroup_name):
        for pid in tk.cgroup_procs(os.path.join(root, f"task-{tid}", container)):
            try:
                if Path(f"/proc/{pid}/cmdline").read_text() == want:
                    out.append(pid)
            except OSError:
                pass
    return out


def running(argv):
    """Pids of every process on the host whose command line is ARGV."""
    return [p[0] for p in tk.processes() if p[3] == argv]


# ---- the operator's terminal: a pty of the test's ----

class Terminal:
    """berth exec ARGS on a new pty whose slave is its controlling terminal."""

    def __init__(self, argv, rows=24, cols=80):
        self.master, self.slave = os.openpty()
        self.resize(rows, cols)
        self.proc = subprocess.Popen(
            argv, stdin=self.slave, stdout=self.slave, stderr=self.slave, env=ENV,
            start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        self.out = b""

    def resize(self, rows, cols):
        # On the controlling terminal of berth exec: it gets SIGWINCH.
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, data):
        os.write(self.master, data)

    def expect(self, pattern, timeout=30):
        deadline = time.monotonic() + timeout * tk.SLOWDOWN
        while True:
            m = re.search(pattern, self.out)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{pattern!r} not seen; output so far: {self.out!r}")
            if select.select([self.master], [], [], left)[0]:
                try:
                    self.out += os.read(self.master, 4096)
                except OSError as e:
                    if e.errno != errno.EIO:
                        raise

    def wait(self, timeout=30):
        rc = self.proc.wait(timeout=timeout * tk.SLOWDOWN)
        while select.select([self.master], [], [], 0)[0]:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                break
            if not data:
                break
            self.out += data
        return rc

    def pending_input(self):
        """Bytes waiting in the terminal's input queue: typed, or injected."""
        buf = fcntl.ioctl(self.slave, termios.TIOCINQ, struct.pack("i", 0))
        return struct.unpack("i", buf)[0]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def terminals():
    made = []

    def make(*args, **kw):
        t = Terminal(*args, **kw)
        made.append(t)
        return t
    yield make
    for t in made:
        t.close()


# ---- without a terminal ----

def test_pipes_exit_code_env_user_rootfs_and_cgroup(ecs, tdaemon, start):
    """stdout and stderr separate, stdin piped with -i (EOF without), the
    exit code returned; the process is the container's: its env, user,
    working directory, rootfs (a file the container wrote), cgroup."""
    tid = start([sh("app", "echo from-the-container > /tmp/mark; exec sleep 1000",
                    environment=[{"name": "GREETING", "value": "hi there"}],
                    user="1000", workingDirectory="/home/app",
                    ulimits=[{"name": "nofile", "softLimit": 512, "hardLimit": 1024}],
                    linuxParameters={"capabilities": {"drop": ["NET_RAW", "CHOWN"]}})])
    rc, out, err = exec_run(tdaemon, tid, "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (rc, out, err) == (7, "out\n", "err\n")

    rc, out, err = exec_run(tdaemon, "-i", tid, "--", "sh", "-c", "read x; echo got:$x",
                            input="hello\n")
    assert (rc, out) == (0, "got:hello\n"), err
    rc, out, err = exec_run(tdaemon, tid, "--", "cat")          # no -i: EOF at once
    assert (rc, out) == (0, ""), err

    rc, out, err = exec_run(tdaemon, tid, "--", "sh", "-c",
                            'echo "$GREETING"; id -u; pwd; cat /tmp/mark; cat /proc/self/cgroup')
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[:4] == ["hi there", "1000", "/home/app", "from-the-container"]
    # Inside the container's cgroup namespace, at its root: the
    # container's own cgroup.
    assert lines[4:] in (["0::/"], []) or all(line.endswith(":/") for line in lines[4:]), lines

    # Its security profile and limits are the container's own (pid 1's,
    # read on the host).
    (init,) = set(exec_pids(tdaemon, tid, "app", ["sleep", "1000"]))
    keys = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Uid",
            "Gid", "Groups")
    want = [line for line in Path(f"/proc/{init}/status").read_text().splitlines()
            if line.split(":")[0] in keys]
    rc, out, err = exec_run(tdaemon, tid, "--", "cat", "/proc/self/status")
    assert rc == 0, err
    assert [line for line in out.splitlines() if line.split(":")[0] in keys] == want
    rc, out, err = exec_run(tdaemon, tid, "--", "cat", "/proc/self/limits")
    assert rc == 0, err
    assert out == Path(f"/proc/{init}/limits").read_text()

    # Counted in the container's cgroup on the host, and killed when the
    # client goes away.
    p = subprocess.Popen(berth(tdaemon, tid, "--", "sleep", "1001"), env=ENV,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        pids = tk.poll_until(lambda: exec_pids(tdaemon, tid, "app", ["sleep", "1001"]), 30,
                             "the exec'd sleep in the container's cgroup")
        assert len(set(pids)) == 1
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)
    tk.poll_until(lambda: not exec_pids(tdaemon, tid, "app", ["sleep", "1001"]) or None, 30,
                  "the exec'd sleep gone after its client")


def test_process_is_killed_when_the_task_stops(ecs, tdaemon, start):
    tid = start([sh("app", "exec sleep 1000")])
    p = subprocess.Popen(berth(tdaemon, tid, "--", "sleep", "1002"), env=ENV,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        tk.poll_until(lambda: exec_pids(tdaemon, tid, "app", ["sleep", "1002"]), 30,
                      "the exec'd sleep")
        ecs.stop_task(task=tid)
        _, err = p.communicate(timeout=60 * tk.SLOWDOWN)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    no_sanitizer_report(err)
    assert p.returncode == 137, err
    assert not running(["sleep", "1002"])


# ---- with a terminal ----

def test_tty_window_size_and_ctrl_c(ecs, tdaemon, start, terminals):
    tid = start([sh("app", "exec sleep 1000")])
    t = terminals(berth(tdaemon, "-it", tid, "--", "sh", "-c",
                        "busybox tty; busybox stty size; read x; busybox stty size; exit 3"),
                  rows=33, cols=101)
    t.expect(rb"/dev/pts/\d+\r\n")
    t.expect(rb"33 101\r\n")
    t.resize(40, 120)
    t.send(b"x\r")
    t.expect(rb"40 120\r\n")
    assert t.wait() == 3

    t = terminals(berth(tdaemon, "-it", tid, "--", "sh", "-c", "echo ready; exec sleep 1003"))
    t.expect(rb"ready")
    t.send(b"\x03")                  # through the pty's line discipline: SIGINT
    assert t.wait() == 130
    tk.poll_until(lambda: not running(["sleep", "1003"]) or None, 30, "the sleep gone")


def test_the_process_cannot_reach_the_operators_terminal(ecs, tdaemon, start, terminals,
                                                       probe_image):
    """TIOCSTI from inside reaches only the process's own pty; the process
    holds its pty or its pipes and nothing else of the host."""
    tid = start([{"name": "app", "image": probe_image,
                                "entryPoint": ["/bin/sleep", "1000"]}])
    # -t without -i: berth exec never reads its terminal, so anything
    # injected there would stay in the input queue.
    t = terminals(berth(tdaemon, "-t", tid, "--", "exec-probe", "sti", "INJECTED"))
    assert t.wait() == 0
    out = t.out.decode(errors="replace")
    legacy = Path("/proc/sys/dev/tty/legacy_tiocsti")
    if not legacy.exists() or legacy.read_text().strip() == "1":  # else TIOCSTI is refused
        assert "sti fd0: ok" in out and "read: INJECTED" in out, out    # its own pty
    assert t.pending_input() == 0, "a process in the task typed into the operator's terminal"

    t = terminals(berth(tdaemon, "-t", tid, "--", "exec-probe", "fds"))
    assert t.wait() == 0
    fds = dict(re.findall(r"fd (\d+) -> (\S+)", t.out.decode(errors="replace")))
    assert sorted(fds) == ["0", "1", "2"], fds
    assert len(set(fds.values())) == 1 and re.fullmatch(r"/dev/pts/\d+", fds["0"]), fds

    # On pipes: nothing to inject into, and pipes only.
    t = terminals([*berth(tdaemon, tid, "--", "exec-probe", "sti", "INJECTED")])
    t.wait()
    assert "sti fd0: ok" not in t.out.decode(errors="replace")
    assert t.pending_input() == 0
    rc, out, err = exec_run(tdaemon, tid, "--", "exec-probe", "fds")
    assert rc == 0, err
    fds = dict(re.findall(r"fd (\d+) -> (\S+)", out))
    assert sorted(fds) == ["0", "1", "2"], fds
    assert all(re.fullmatch(r"pipe:\[\d+\]", v) for v in fds.values()), fds


# ---- refusals ----

def test_refusals_name_the_task_and_container(ecs, tdaemon, start):
    tid = start([sh("app", "exec sleep 1000"),
                               sh("side", "exec sleep 1000", essential=False),
                               sh("once", "exit 0", essential=False)])
    rc, _, err = exec_run(tdaemon, tid, "--", "true")
    assert rc == 125 and f"task {tid} has 3 containers (app, side, once)" in err, err
    rc, _, err = exec_run(tdaemon, "--container", "nope", tid, "--", "true")
    assert rc == 125 and f'task {tid} has no container "nope"' in err, err
    tk.poll_until(lambda: describe(ecs, tid)["containers"][2]["lastStatus"] == "STOPPED" or None,
                  30, "container once STOPPED")
    rc, _, err = exec_run(tdaemon, "--container", "once", tid, "--", "true")
    assert rc == 125 and f"container once of task {tid} is STOPPED" in err, err
    rc, _, err = exec_run(tdaemon, "--container", "side", tid)
    assert rc == 2 and f"exec in task {tid}: no command given" in err, err
    rc, _, err = exec_run(tdaemon, "--container", "side", tid, "--", "no-such-command")
    assert rc == 125 and 'exec: "no-such-command": executable file not found' in err, err
    rc, out, err = exec_run(tdaemon, "--container", "side", tid, "--", "echo", "fine")
    assert (rc, out) == (0, "fine\n"), err

    unknown = "0123456789abcdef0123456789abcdef"
    rc, _, err = exec_run(tdaemon, unknown, "--", "true")
    assert rc == 125 and f"task {unknown}: not found" in err, err

    ecs.stop_task(task=tid)
    wait_stopped(ecs, [describe(ecs, tid)["taskArn"]])
    rc, _, err = exec_run(tdaemon, "--container", "app", tid, "--", "true")
    assert rc == 125 and f"task {tid} is STOPPED" in err, err


# ---- enableExecuteCommand ----

def test_tasks_report_enable_execute_command(ecs, tdaemon):
    """As RunTask or CreateService gave it (DescribeTasks, validated by
    botocore's model on the way in and out)."""
    td = register(ecs, tdaemon, [sh("app", "exec sleep 1000")])
    (on,) = run(ecs, td, enableExecuteCommand=True)
    (off,) = run(ecs, td)
    assert on["enableExecuteCommand"] is True and off["enableExecuteCommand"] is False
    assert describe(ecs, on["taskArn"])["enableExecuteCommand"] is True
    assert describe(ecs, off["taskArn"])["enableExecuteCommand"] is False
    ecs.create_service(serviceName="execd", taskDefinition=td, desiredCount=1,
                       networkConfiguration=NETCFG, enableExecuteCommand=True)
    (svc_task,) = tk.poll_until(lambda: ecs.list_tasks(serviceName="execd")["taskArns"], 30,
                                "the service's task")
    assert describe(ecs, svc_task)["enableExecuteCommand"] is True
    ecs.delete_service(service="execd", force=True)
    for arn in (on["taskArn"], off["taskArn"]):
        ecs.stop_task(task=arn)
    wait_stopped(ecs, [on["taskArn"], off["taskArn"], svc_task])


def test_exec_socket_is_root_only_and_refuses_malformed_requests(tdaemon):
    path = f"{tdaemon.sock}.exec"
    assert os.stat(path).st_mode & 0o777 == 0o600
    r, w = os.pipe()
    cases = [
        (b"not json", [], "not a JSON object"),
        (b'{"command": ["true"]}', [], "no task named"),
        (b'{"task": "0123456789abcdef0123456789abcdef", "command": "true"}', [r, w, w],
         "no command given"),
        (b'{"task": "0123456789abcdef0123456789abcdef", "command": ["true"], "tty": 1}', [],
         "tty must be a boolean"),
        (b'{"task": "0123456789abcdef0123456789abcdef", "command": ["true"]}', [r, w, w, w],
         "too many descriptors"),
        (b'{"task": "0123456789abcdef0123456789abcdef", "command": ["true"]}', [r, w, w],
         "task 0123456789abcdef0123456789abcdef: not found"),
    ]
    try:
        for payload, fds, why in cases:
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
                s.settimeout(30)
                s.connect(path)
                socket.send_fds(s, [payload], fds)
                reply = json.loads(s.recv(65536))
                assert reply["ok"] is False and why in reply["error"], (payload, reply)
                assert s.recv(65536) == b""       # then the daemon hangs up
    finally:
        os.close(r)
        os.close(w)


def test_session_survives_a_daemon_restart(ecs, tdaemon):
    """The daemon only hands the session over: kill -9 it mid-session and
    the session goes on; the next daemon serves exec again."""
    td = register(ecs, tdaemon, [sh("app", "exec sleep 1000")])
    (t,) = run(ecs, td)
    arn = wait_running(ecs, t["taskArn"])["taskArn"]
    tid = arn.rsplit("/", 1)[1]
    script = ["sh", "-c", "read x; echo got:$x; exit 4"]
    p = subprocess.Popen(berth(tdaemon, "-i", tid, "--", *script), env=ENV, text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        tk.poll_until(lambda: exec_pids(tdaemon, tid, "app", script), 30, "the exec'd sh")
        tdaemon.proc.kill()
        tdaemon.proc.wait()
        out, err = p.communicate("hi\n", timeout=30 * tk.SLOWDOWN)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    no_sanitizer_report(err)
    assert (p.returncode, out) == (4, "got:hi\n"), err

    d2 = tdaemon.restart("daemon2").wait_ready()
    tdaemon.__dict__.update(d2.__dict__)      # the fixture stops the new one
    rc, out, err = exec_run(d2, tid, "--", "echo", "again")
    assert (rc, out) == (0, "again\n"), err
    ecs2 = make_client(d2)
    ecs2.stop_task(task=arn)
    wait_stopped(ecs2, [arn])
