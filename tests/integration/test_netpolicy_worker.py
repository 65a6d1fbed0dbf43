"""The network policy worker (docs/networking.md "The policy worker"):
berthd runs one `berth-netpolicy --worker`; a task's shim asks it for the
task's policy elements instead of exec'ing berth-netpolicy, and execs as
before when the worker is gone or does not answer.  Only root reaches its
socket.  The daemon and its test network are test_api_tasks.py's."""
import errno
import os
import re
import signal
import socket
import stat
import subprocess
from pathlib import Path

from fixtures import tasks as tk
from test_api_tasks import (TaskDaemon, ecs, register, run, sh, task_id, tdaemon,  # noqa: F401
                            tmp_tasks, wait_running, wait_stopped)

IDLE = "sleep 1000"


def worker_pid(d):
    """The daemon's live berth-netpolicy --worker child, or None."""
    for task in Path(f"/proc/{d.proc.pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in children:
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"berth-netpolicy") and b"--worker" in argv:
                return int(pid)
    return None


def served(pid):
    """How many times the worker has woken up (each request wakes it)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError(f"no context switch count for {pid}")


def elements(d, ip):
    """The lines of the daemon's bridge table that name IP."""
    out = subprocess.run(["nft", "list", "table", "bridge", d.net.nft_table],
                         capture_output=True, text=True, check=True).stdout
    return re.findall(r"^.*\b%s\b.*$" % re.escape(ip), out, re.M)


def task_procs(d, tid):
    """The container processes of task TID (from its cgroups)."""
    out = set()
    for cg in tk.task_cgroup_dirs(d.net.cgroup_name):
        procs = Path(cg) / "cgroup.procs"
        if tid in cg and procs.exists():
            out.update(int(p) for p in procs.read_text().split())
    return sorted(out)


def start(ecs, d, td):
    (t,) = run(ecs, td)
    t = wait_running(ecs, t["taskArn"])
    assert t["lastStatus"] == "RUNNING", t
    ip = next(x["value"] for x in t["attachments"][0]["details"]
              if x["name"] == "privateIPv4Address")
    return t, ip


def live_worker(d):
    tk.poll_until(lambda: worker_pid(d) is not None, 20, "the policy worker running")
    return worker_pid(d)


def test_tasks_get_their_policy_through_the_worker(ecs, tdaemon):
    d = tdaemon
    sock = d.run / "netpolicy" / "sock"
    pid = live_worker(d)
    assert stat.S_IMODE(os.lstat(sock.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o600
    td = register(ecs, d, [sh("idle", IDLE, stopTimeout=1)])
    before = served(pid)
    t, ip = start(ecs, d, td)
    assert served(pid) > before, "the shim did not ask the worker"
    assert elements(d, ip), f"no policy element for {ip}"
    # The container cannot see the socket: it is not in its mount view.
    procs = task_procs(d, task_id(t))
    assert procs, "no container process found"
    for p in procs:
        assert Path(f"/proc/{p}/root/bin/busybox").exists(), "not the container's view"
        assert not Path(f"/proc/{p}/root{sock}").exists(), f"{sock} visible to {p}"
    ecs.stop_task(task=t["taskArn"])
    wait_stopped(ecs, [t["taskArn"]])
    tk.poll_until(lambda: not elements(d, ip), 20, f"{ip}'s elements removed")


def connect_as_nobody(path):
    """connect()'s errno for uid/gid 65534 (0: connected)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).connect(str(path))
        except OSError as e:
            code = e.errno or 255
        os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_only_root_reaches_the_worker(tdaemon):
    sock = tdaemon.run / "netpolicy" / "sock"
    live_worker(tdaemon)
    assert connect_as_nobody(sock) == errno.EACCES  # its directory is root's, 0700
    # Root connects; a bad request gets the command's own usage error.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(10)
    s.connect(str(sock))
    s.send(b"frobnicate\0")
    answer = s.recv(4096)
    s.close()
    assert answer[0] == 2 and answer[1:].startswith(b"usage: berth-netpolicy"), answer


def test_tasks_start_without_the_worker_and_it_comes_back(ecs, tdaemon):
    d = tdaemon
    td = register(ecs, d, [sh("idle", IDLE, stopTimeout=1)])
    pid = live_worker(d)
    # A worker that does not answer: the shim runs the command itself.
    os.kill(pid, signal.SIGSTOP)
    try:
        t1, ip1 = start(ecs, d, td)
        assert elements(d, ip1)
    finally:
        os.kill(pid, signal.SIGCONT)
    # A dead worker: shims exec, and the daemon starts another.
    os.kill(pid, signal.SIGKILL)
    t2, ip2 = start(ecs, d, td)
    assert elements(d, ip2)
    tk.poll_until(lambda: worker_pid(d) not in (None, pid), 20, "a new policy worker")
    new = live_worker(d)
    before = served(new)
    t3, ip3 = start(ecs, d, td)
    assert served(new) > before and elements(d, ip3)
    arns = [t["taskArn"] for t in (t1, t2, t3)]
    for a in arns:
        ecs.stop_task(task=a)
    wait_stopped(ecs, arns)
    for ip in (ip1, ip2, ip3):
        tk.poll_until(lambda: not elements(d, ip), 20, f"{ip}'s elements removed")
