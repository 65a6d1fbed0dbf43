"""Pulls against hostile registries (issue 11): the daemon's `berth
task-image` helpers die with StopTask, with the daemon's shutdown and with
the daemon itself (kill -9), so a restarted daemon runs exactly one pull per
task."""
import os
import time

from fixtures import registry as reg
from fixtures import tasks as tk
from test_api_tasks import (IDLE, TaskDaemon, finish, make_client, register,  # noqa: F401
                            run, sh, tmp_tasks, wait_for)

TRICKLE = 4096      # bytes/s: four times curl's low-speed limit, so only a deadline ends it


def pull_helpers(root):
    """pids of `berth … task-image` processes working on the store ROOT."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"task-image" in argv and str(root).encode() in argv and tk.alive(int(d)):
            out.append(int(d))
    return out


# ------------------------------------------------------------------ the daemon's helpers

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
