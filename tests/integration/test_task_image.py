"""A task's image, the two paths (docs/images.md, "A task's image"): a tag
is asked of the registry on every RunTask, as ECS does; an image pinned by
digest that the store already holds is run without any registry request
(and without a helper process).  The daemon's registry is a proxy in front
of the fixture registry that records every request it forwards."""
import os
import shutil
import signal

import pytest

from fixtures import registry as reg
from fixtures import tasks as tk
from test_api_tasks import (TaskDaemon, finish, register, run, sh, wait_for, wait_running,
                            wait_stopped, IDLE, tmp_tasks)  # noqa: F401 - tmp_tasks: a fixture
from test_api_clusters import make_client


@pytest.fixture
def proxied(tmp_tasks, task_net, registry_anon):
    with reg.SlowProxy(registry_anon, 1 << 30) as px:
        d = TaskDaemon(tmp_tasks, task_net, registry=px).wait_ready()
        try:
            yield d, px
        finally:
            finish(d, task_net)


def start(ecs, d, image):
    """RunTask of IMAGE until RUNNING, then stopped; its imageDigest."""
    td = register(ecs, d, [sh("app", IDLE, image=image, stopTimeout=2)])
    (t0,) = run(ecs, td)
    t = wait_running(ecs, t0["taskArn"])
    assert t["lastStatus"] == "RUNNING", t.get("stoppedReason")
    ecs.stop_task(task=t0["taskArn"])
    wait_stopped(ecs, [t0["taskArn"]])
    return t["containers"][0]["imageDigest"]


def test_tag_is_asked_each_run_and_a_stored_digest_never(proxied, catalogue):
    d, px = proxied
    ecs = make_client(d)
    bb = catalogue["busybox"]
    pinned = f"{px.host}/{bb.repo}@{bb.digest}"
    # Pinned but not stored yet: pulled like any image.
    assert start(ecs, d, pinned) == bb.digest
    assert ("GET", f"/v2/{bb.repo}/manifests/{bb.digest}") in px.requests
    # Stored now: no request at all.
    px.requests.clear()
    assert start(ecs, d, pinned) == bb.digest
    assert px.requests == []
    # A layer gone from the store: the pull repairs it, then the store serves again.
    for layer in (d.root / "layers").iterdir():
        if not layer.name.startswith("."):
            shutil.rmtree(layer)
    assert start(ecs, d, pinned) == bb.digest
    assert ("GET", f"/v2/{bb.repo}/manifests/{bb.digest}") in px.requests
    px.requests.clear()
    assert start(ecs, d, pinned) == bb.digest
    assert px.requests == []
    # By tag: the registry says where the tag points, on every RunTask
    # (and nothing else: no /v2/ ping).  The image record, unchanged, is
    # not rewritten.
    records = d.root / "images.json"
    for i in range(2):
        px.requests.clear()
        assert start(ecs, d, f"{px.host}/{bb.repo}:{bb.tag}") == bb.digest
        assert px.requests == [("GET", f"/v2/{bb.repo}/manifests/{bb.tag}")], px.requests
        if i == 0:
            written = records.stat().st_mtime_ns
    assert records.stat().st_mtime_ns == written


def test_a_runtask_asks_for_its_tag_once(proxied, catalogue):
    """The tasks of one RunTask share its resolution of a tag (one manifest
    request for count 3); the next RunTask asks again."""
    d, px = proxied
    ecs = make_client(d)
    bb = catalogue["busybox"]
    td = register(ecs, d, [sh("app", IDLE, image=f"{px.host}/{bb.repo}:{bb.tag}",
                              stopTimeout=2)])
    ask = ("GET", f"/v2/{bb.repo}/manifests/{bb.tag}")
    for count in (3, 2):
        px.requests.clear()
        arns = [t["taskArn"] for t in run(ecs, td, count=count)]
        try:
            for arn in arns:
                t = wait_running(ecs, arn)
                assert t["lastStatus"] == "RUNNING", t.get("stoppedReason")
                assert t["containers"][0]["imageDigest"] == bb.digest
            assert px.requests.count(ask) == 1, px.requests
        finally:
            for arn in arns:
                ecs.stop_task(task=arn)
            wait_stopped(ecs, arns)


def pull_workers(daemon_pid):
    """pids of the daemon's pull workers (`berth … task-image --worker`)."""
    return [pid for pid, ppid, state, argv in tk.processes()
            if ppid == daemon_pid and "task-image" in argv and "--worker" in argv
            and state != "Z"]


def test_pull_worker_killed_is_replaced_and_tasks_still_start(proxied, catalogue):
    """The pull worker is one process per daemon; killed, the next pulls
    exec their own helper and the daemon starts another worker."""
    d, px = proxied
    ecs = make_client(d)
    tag = catalogue["busybox"].ref(px.host)
    (old,) = tk.poll_until(lambda: pull_workers(d.proc.pid), 10, "the pull worker")
    os.kill(old, signal.SIGKILL)
    start(ecs, d, tag)
    (new,) = tk.poll_until(lambda: pull_workers(d.proc.pid), 10, "a new pull worker")
    assert new != old
    px.requests.clear()
    start(ecs, d, tag)
    assert px.requests, "the tag was not asked of the registry"
    assert "the pull worker exited" in d.stderr()


def test_a_crashing_pull_fails_its_task_only(tmp_tasks, task_net, registry_anon, catalogue):
    """A pull that crashes (as one a hostile registry broke would) is a
    process of its own: its task fails with CannotPullContainerError, and
    the worker and the daemon carry on starting other tasks."""
    bb = catalogue["busybox"]
    with reg.SlowProxy(registry_anon, 4096) as px:
        d = TaskDaemon(tmp_tasks, task_net, registry=px,
                       extra=("--insecure-registry", registry_anon.host)).wait_ready()
        try:
            ecs = make_client(d)
            (worker,) = tk.poll_until(lambda: pull_workers(d.proc.pid), 10, "the pull worker")
            td = register(ecs, d, [sh("app", IDLE, image=bb.ref(px.host))])
            (t0,) = run(ecs, td)
            assert px.wait_bytes(4096, 60), "the pull never started"
            (pull,) = tk.poll_until(lambda: [p for p, pp, st, _ in tk.processes()
                                             if pp == worker and st != "Z"], 10, "the pull")
            os.kill(pull, signal.SIGABRT)     # a crash (ASan would catch SIGSEGV)
            (t,) = wait_stopped(ecs, [t0["taskArn"]])
            assert t["stopCode"] == "TaskFailedToStart", t
            assert t["stoppedReason"].startswith("CannotPullContainerError: "), t
            assert "status 134" in t["stoppedReason"], t
            assert pull_workers(d.proc.pid) == [worker]
            assert start(ecs, d, bb.ref(registry_anon.host)) == bb.digest
        finally:
            finish(d, task_net)


def test_a_hung_pull_worker_holds_up_no_stop(tmp_tasks, task_net, registry_anon, catalogue):
    """A worker that stops answering (here: SIGSTOP) while a task pulls: a
    StopTask still kills the pull and the task still stops, within the
    daemon's 10 s wait for the worker's report."""
    with reg.SlowProxy(registry_anon, 4096) as px:
        d = TaskDaemon(tmp_tasks, task_net, registry=px).wait_ready()
        try:
            ecs = make_client(d)
            (worker,) = tk.poll_until(lambda: pull_workers(d.proc.pid), 10, "the pull worker")
            td = register(ecs, d, [sh("app", IDLE, image=catalogue["busybox"].ref(px.host))])
            (t0,) = run(ecs, td)
            assert px.wait_bytes(4096, 60), "the pull never started"
            os.kill(worker, signal.SIGSTOP)
            ecs.stop_task(task=t0["taskArn"], reason="not needed after all")
            t = wait_for(ecs, t0["taskArn"], lambda t: t["lastStatus"] == "STOPPED", 30,
                         "STOPPED")
            assert t["stoppedReason"] == "not needed after all", t
        finally:
            finish(d, task_net)


def test_a_stopped_pull_worker_is_passed_over(proxied, catalogue):
    """A worker stopped before a RunTask: the launch waits at most 10 s for
    it, then execs its own helper, and the task runs."""
    d, px = proxied
    ecs = make_client(d)
    (worker,) = tk.poll_until(lambda: pull_workers(d.proc.pid), 10, "the pull worker")
    os.kill(worker, signal.SIGSTOP)
    try:
        assert start(ecs, d, catalogue["busybox"].ref(px.host)) == catalogue["busybox"].digest
    finally:
        os.kill(worker, signal.SIGCONT)
