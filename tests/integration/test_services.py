"""Services: CreateService, UpdateService, DeleteService, DescribeServices,
ListServices with boto3 against a real daemon that runs every task in its
own berth-shim.  The daemon counts a task without health checks healthy
after 1 s RUNNING (--service-healthy-after; ECS's 40 s by default).

Every answer boto3 sees is validated against botocore's model (events and
deployments included); the fixture checks nothing of any task is left.

These are the end-to-end cases (real tasks, a rolling update, lost,
failing and unhealthy tasks, a daemon restart, the API); the reconcile's
numbers (bounds and their rounding, backoff steps and cap, breaker
thresholds, grace period) are pinned in test time by tests/unit/test_svc.c."""
import copy
import os
import signal
import threading
import time

import pytest
from botocore.exceptions import ClientError

from fixtures import images as fx
from fixtures import tasks as tk
from test_api_clusters import make_client, unix_request
from test_api_tasks import (IDLE, NETCFG, TaskDaemon, describe, finish,  # noqa: F401
                            register, sh, stop_all_tasks, tmp_tasks)

HEALTHY_AFTER = ["--service-healthy-after", "1s"]


def stop_services_and_tasks(d):
    """Deletes every service and stops every task; returns [] (the
    services' tasks are the scheduler's to leave running)."""
    if d.proc.poll() is not None:
        return []
    ecs = make_client(d)
    try:
        for arn in ecs.list_services()["serviceArns"]:
            ecs.delete_service(service=arn, force=True)
    except ClientError:         # no default cluster
        return []
    stop_all_tasks(d)
    # 60 s: a task stopped before its trap waits out the default 30 s stopTimeout.
    tk.poll_until(lambda: not tk.shim_processes(d.tmp), 60, "every shim to exit")
    return []


@pytest.fixture
def sdaemon(tmp_tasks, task_net, registry_anon):
    d = TaskDaemon(tmp_tasks, task_net, HEALTHY_AFTER, registry=registry_anon).wait_ready()
    yield d
    finish(d, task_net, stop_services_and_tasks)


@pytest.fixture
def ecs(sdaemon):
    c = make_client(sdaemon)
    c.create_cluster()
    return c


def create(ecs, td, name="web", count=3, **kw):
    kw.setdefault("networkConfiguration", NETCFG)
    return ecs.create_service(serviceName=name, taskDefinition=td, desiredCount=count,
                              **kw)["service"]


def svc(ecs, name="web"):
    return ecs.describe_services(services=[name])["services"][0]


def stable(ecs, name="web", timeout=60):
    """boto3's services_stable waiter (one deployment, runningCount ==
    desiredCount), then the rollout COMPLETED (its tasks healthy)."""
    ecs.get_waiter("services_stable").wait(services=[name],
                                           WaiterConfig={"Delay": 1, "MaxAttempts": timeout})
    tk.poll_until(lambda: svc(ecs, name)["deployments"][0]["rolloutState"] == "COMPLETED",
                  timeout, f"service {name}'s rollout to complete")
    return svc(ecs, name)


def messages(s):
    return [e["message"] for e in s["events"]]


def running_tasks(ecs, name="web"):
    arns = ecs.list_tasks(serviceName=name)["taskArns"]
    if not arns:
        return []
    return [t for t in ecs.describe_tasks(tasks=arns)["tasks"] if t["lastStatus"] == "RUNNING"]


def wait_replaced(ecs, gone_arn, count, name="web", timeout=30):
    def ok():
        ts = running_tasks(ecs, name)
        return len(ts) == count and gone_arn not in {t["taskArn"] for t in ts}
    tk.poll_until(ok, timeout, "the lost task to be replaced", interval=0.05)


# ---- desired count and replacement ----

@pytest.mark.cgroup
def test_service_stable_then_every_lost_task_is_replaced(ecs, sdaemon):
    td = register(ecs, sdaemon, [sh("app", IDLE)], family="web")
    s = create(ecs, td)
    assert s["status"] == "ACTIVE" and s["desiredCount"] == 3
    (dep,) = s["deployments"]
    assert dep["status"] == "PRIMARY" and dep["id"].startswith("ecs-svc/")
    assert len(dep["id"]) == len("ecs-svc/") + 19
    s = stable(ecs)
    assert s["runningCount"] == 3 and s["pendingCount"] == 0, s
    assert s["deployments"][0]["rolloutState"] == "COMPLETED"
    msgs = messages(s)
    assert any(m.startswith("(service web) has started 3 tasks: (task ") for m in msgs), msgs
    assert "(service web) has reached a steady state." in msgs
    assert any(m.endswith("deployment completed.") for m in msgs), msgs
    tasks = running_tasks(ecs)
    assert {t["group"] for t in tasks} == {"service:web"}
    assert {t["startedBy"] for t in tasks} == {dep["id"]}
    c = ecs.describe_clusters(clusters=["default"])["clusters"][0]
    assert c["activeServicesCount"] == 1 and c["runningTasksCount"] == 3

    # StopTask → replaced.
    victim = tasks[0]["taskArn"]
    ecs.stop_task(task=victim)
    wait_replaced(ecs, victim, 3)
    # Its processes killed from the host → replaced.
    victim = running_tasks(ecs)[0]
    for pid in tk.task_pids(sdaemon.net.cgroup_name, victim["taskArn"].rsplit("/", 1)[1]):
        os.kill(pid, signal.SIGKILL)
    wait_replaced(ecs, victim["taskArn"], 3)
    # Its shim killed → replaced, and cleaned up.
    victim = running_tasks(ecs)[0]
    shims = tk.shim_processes(sdaemon.tmp, victim["taskArn"].rsplit("/", 1)[1])
    assert len(shims) == 1, (tk.shim_processes(sdaemon.tmp), victim["taskArn"])
    os.kill(shims[0], signal.SIGKILL)
    tk.reap(shims[0])
    wait_replaced(ecs, victim["taskArn"], 3)
    gone = describe(ecs, victim["taskArn"])
    tk.poll_until(lambda: describe(ecs, victim["taskArn"])["lastStatus"] == "STOPPED", 10,
                  "the lost task STOPPED")
    assert gone["taskArn"] == victim["taskArn"]
    s = stable(ecs)
    assert s["runningCount"] == 3


def test_create_service_client_token_makes_a_retry_succeed(ecs, sdaemon):
    """CreateService again with the same clientToken and the same request
    (a client's retry after a lost answer) returns the service and starts
    nothing more; anything else under that name is still not idempotent."""
    td = register(ecs, sdaemon, [sh("app", IDLE)], family="web")
    first = create(ecs, td, count=2, clientToken="svc-retry-1")
    stable(ecs)
    again = create(ecs, td, count=2, clientToken="svc-retry-1")
    assert again["serviceArn"] == first["serviceArn"]
    assert [d["id"] for d in again["deployments"]] == [d["id"] for d in first["deployments"]]
    for kw in ({"count": 3, "clientToken": "svc-retry-1"}, {"count": 2, "clientToken": "other"},
               {"count": 2}):
        with pytest.raises(ClientError) as e:
            create(ecs, td, **kw)
        err = e.value.response["Error"]
        assert err["Code"] == "InvalidParameterException", (kw, err)
        assert err["Message"] == "Creation of service was not idempotent.", (kw, err)
    with pytest.raises(ClientError) as e:
        create(ecs, td, name="web2", clientToken="x" * 37)
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "clientToken" in e.value.response["Error"]["Message"]
    s = stable(ecs)
    assert s["runningCount"] == 2 and len(ecs.list_tasks(serviceName="web")["taskArns"]) == 2
    assert ecs.list_services()["serviceArns"] == [first["serviceArn"]]


def test_a_deployment_runs_the_digests_its_first_task_pulled(ecs, sdaemon):
    """ECS's software version consistency: once a deployment's first task
    has pulled, its later tasks run those digests even after the tag moved
    (a scale-up here); a container with versionConsistency "disabled"
    follows the tag; a new deployment (forceNewDeployment) resolves again."""
    reg, cat = sdaemon.registry, fx.catalogue()

    def push_as_tag(name):
        im = copy.copy(cat[name])
        im.repo, im.tag = "pinned/app", "v"
        reg.push(im)
        return im.digest

    a = push_as_tag("busybox")
    image = f"{reg.host}/pinned/app:v"
    app = sh("app", IDLE, image=image, essential=True)
    side = sh("side", IDLE, image=image, essential=True, versionConsistency="disabled")
    # Debian's botocore predates versionConsistency: registered raw.
    status, _, data = unix_request(sdaemon.sock, "RegisterTaskDefinition", {
        "family": "pinned", "networkMode": "awsvpc", "cpu": "256", "memory": "512",
        "containerDefinitions": [app, side]})
    assert status == 200, data
    create(ecs, "pinned", count=1)
    stable(ecs)

    def digests(tasks):
        return sorted(tuple(c["imageDigest"] for c in sorted(t["containers"],
                                                             key=lambda c: c["name"]))
                      for t in tasks)

    assert digests(running_tasks(ecs)) == [(a, a)]
    b = push_as_tag("docker-schema2")
    assert b != a
    ecs.update_service(service="web", desiredCount=2)
    stable(ecs)
    # app pinned to a; side follows the tag to b.
    assert digests(running_tasks(ecs)) == [(a, a), (a, b)]
    ecs.update_service(service="web", forceNewDeployment=True)
    tk.poll_until(lambda: len(svc(ecs)["deployments"]) == 1 and
                  digests(running_tasks(ecs)) == [(b, b), (b, b)], 60,
                  "the new deployment on the tag's new digest")


# ---- backoff ----

@pytest.fixture
def ldaemon(tmp_tasks, task_net, registry_anon):
    """A task that stops after --service-healthy-after RUNNING had been
    healthy and is no failure.  dd meets its memory limit at once natively,
    but takes seconds on the cgroup v2 lane (qemu TCG), so the backoff test's
    daemon counts a task healthy only after 30 s."""
    d = TaskDaemon(tmp_tasks, task_net, ["--service-healthy-after", "30s"],
                   registry=registry_anon).wait_ready()
    yield d
    finish(d, task_net, stop_services_and_tasks)


@pytest.mark.parametrize("kind", ["crash", "oom"])
def test_failing_tasks_back_off(ldaemon, kind):
    """A real task that crashes or is OOM-killed before it was healthy is a
    failure: the next start waits (never a spin), and after three the
    service says so.  The delays' values (1, 2, 4 s … 15 min) are pinned
    by tests/unit/test_svc.c in test time."""
    ecs = make_client(ldaemon)
    ecs.create_cluster()
    # dd's 200 MB buffer meets the 64 MiB limit at once.
    script = "exit 1" if kind == "crash" else "dd if=/dev/zero of=/dev/null bs=200M count=1"
    td = register(ecs, ldaemon, [sh("app", script)], family="loop", memory="64")
    create(ecs, td, name="loop", count=1)

    def three_failed():
        t0 = time.monotonic()
        s = svc(ecs, "loop")     # the host and the daemon stay responsive
        assert time.monotonic() - t0 < 1 * tk.SLOWDOWN
        return s["deployments"][0]["failedTasks"] >= 3 and s
    s = tk.poll_until(three_failed, 60, "three failures", interval=0.2)
    assert "(service loop) is unable to consistently start tasks successfully." in messages(s)
    arns = ecs.list_tasks(serviceName="loop", desiredStatus="STOPPED")["taskArns"]
    tasks = sorted(ecs.describe_tasks(tasks=arns)["tasks"], key=lambda t: t["createdAt"])
    assert len(tasks) >= 3, tasks
    for a, b in zip(tasks[:2], tasks[1:3]):
        assert (b["createdAt"] - a["stoppedAt"]).total_seconds() >= 0.95, (a, b)
    if kind == "oom":
        assert tasks[0]["containers"][0]["reason"] == tk.OOM_REASON


# ---- deployments ----

def sample_counts(ecs, name, stop, out):
    c = make_client_like(ecs)
    while not stop.is_set():
        arns = c.list_tasks(serviceName=name)["taskArns"]
        ts = c.describe_tasks(tasks=arns)["tasks"] if arns else []
        out.append((sum(t["lastStatus"] == "RUNNING" for t in ts),
                    sum(t["lastStatus"] != "STOPPED" for t in ts)))
        time.sleep(0.1)


def make_client_like(ecs):
    return make_client(type("D", (), {"endpoint": ecs.meta.endpoint_url})())


def test_rolling_update_holds_the_bounds(ecs, sdaemon):
    rev1 = register(ecs, sdaemon, [sh("app", IDLE)], family="web")
    rev2 = register(ecs, sdaemon, [sh("app", "echo v2; " + IDLE)], family="web")
    assert rev1.endswith(":1") and rev2.endswith(":2")
    create(ecs, rev1, count=2, deploymentConfiguration={"maximumPercent": 200,
                                                        "minimumHealthyPercent": 100})
    stable(ecs)
    samples, stop = [], threading.Event()
    th = threading.Thread(target=sample_counts, args=(ecs, "web", stop, samples))
    th.start()
    try:
        t0 = time.monotonic()
        s = ecs.update_service(service="web", taskDefinition="web")["service"]   # latest: rev 2
        assert len(s["deployments"]) == 2 and s["deployments"][0]["taskDefinition"] == rev2
        s = stable(ecs)
        took = time.monotonic() - t0
    finally:
        stop.set()
        th.join()
    assert len(samples) > 10
    assert min(r for r, _ in samples) >= 2, samples
    assert max(n for _, n in samples) <= 4, samples
    (dep,) = s["deployments"]
    assert dep["taskDefinition"] == rev2 and dep["rolloutState"] == "COMPLETED"
    assert {t["taskDefinitionArn"] for t in running_tasks(ecs)} == {rev2}
    print(f"\nrolling update of 2 tasks: {took:.2f} s")


def test_circuit_breaker_rolls_back(ecs, sdaemon):
    """Real tasks that cannot start (their image is not in the registry)
    trip the breaker, and the rollback runs the last COMPLETED revision
    again.  Its thresholds, and a breaker without rollback, are
    tests/unit/test_svc.c's."""
    good = register(ecs, sdaemon, [sh("app", IDLE)], family="web")
    bad = register(ecs, sdaemon, [{"name": "app", "image": f"{sdaemon.registry.host}/nope:1"}],
                   family="web")
    create(ecs, good, count=1, deploymentConfiguration={
        "deploymentCircuitBreaker": {"enable": True, "rollback": True}})
    stable(ecs)
    ecs.update_service(service="web", taskDefinition=bad)

    def failed():
        return any(m.endswith("deployment failed: tasks failed to start.")
                   for m in messages(svc(ecs)))
    tk.poll_until(failed, 40, "the circuit breaker to trip")
    s = svc(ecs)
    assert any(m.startswith("(service web) rolling back to deployment ecs-svc/")
               for m in messages(s)), messages(s)
    s = stable(ecs)
    (dep,) = s["deployments"]
    assert dep["taskDefinition"] == good and dep["rolloutState"] == "COMPLETED"


def test_unhealthy_task_is_replaced(ecs, sdaemon):
    script = "touch /tmp/ok; (sleep 4; rm /tmp/ok) & " + IDLE
    td = register(ecs, sdaemon, [sh("app", script, healthCheck={
        "command": ["CMD-SHELL", "test -f /tmp/ok"], "interval": 5, "timeout": 2, "retries": 1,
        "startPeriod": 0})], family="hc")
    create(ecs, td, name="hc", count=1)
    first = None
    tk.poll_until(lambda: running_tasks(ecs, "hc"), 20, "a RUNNING task")
    first = running_tasks(ecs, "hc")[0]["taskArn"]

    def replaced():
        t = describe(ecs, first)
        return t["desiredStatus"] == "STOPPED" and t["stoppedReason"] == \
            "Task failed container health checks"
    tk.poll_until(replaced, 40, "the unhealthy task to be replaced")
    tk.poll_until(lambda: [t for t in running_tasks(ecs, "hc") if t["taskArn"] != first], 20,
                  "its replacement")


# ---- deletion, listing, strategies ----

@pytest.mark.cgroup
def test_delete_service_drains_every_task(ecs, sdaemon):
    td = register(ecs, sdaemon, [sh("app", IDLE)], family="web")
    create(ecs, td, count=2)
    stable(ecs)
    with pytest.raises(ClientError) as e:
        ecs.delete_service(service="web")
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    s = ecs.delete_service(service="web", force=True)["service"]
    assert s["status"] == "DRAINING" and s["desiredCount"] == 0
    tk.poll_until(lambda: svc(ecs)["status"] == "INACTIVE", 30, "the service INACTIVE")
    assert ecs.list_tasks(serviceName="web")["taskArns"] == []
    assert ecs.list_services()["serviceArns"] == []
    with pytest.raises(ClientError) as e:
        ecs.update_service(service="web", desiredCount=1)
    assert e.value.response["Error"]["Code"] == "ServiceNotFoundException"


def test_protected_task_survives_scale_in(ecs, sdaemon):
    """UpdateTaskProtection: scale-in passes over a protected task until its
    protection is lifted, as on ECS; only a service's RUNNING tasks."""
    td = register(ecs, sdaemon, [sh("app", IDLE, stopTimeout=2)], family="web")
    create(ecs, td, count=2)
    stable(ecs)
    keep, other = sorted(t["taskArn"] for t in running_tasks(ecs))
    out = ecs.update_task_protection(cluster="default", tasks=[keep, "f" * 32], protectionEnabled=True,
                                     expiresInMinutes=60)
    (p,) = out["protectedTasks"]
    assert p["taskArn"] == keep and p["protectionEnabled"] is True and "expirationDate" in p
    assert [f["reason"] for f in out["failures"]] == ["MISSING"]
    got = ecs.get_task_protection(cluster="default", tasks=[keep, other])["protectedTasks"]
    assert [(x["taskArn"], x["protectionEnabled"]) for x in got] == [(keep, True), (other, False)]
    ecs.update_service(service="web", desiredCount=0)
    tk.poll_until(lambda: [t["taskArn"] for t in running_tasks(ecs)] == [keep], 30,
                  "the unprotected task to stop")
    assert ecs.describe_tasks(tasks=[keep])["tasks"][0]["desiredStatus"] == "RUNNING"
    ecs.update_task_protection(cluster="default", tasks=[keep], protectionEnabled=False)
    tk.poll_until(lambda: running_tasks(ecs) == [], 30, "the task to stop once unprotected")
    (lone,) = ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG)["tasks"]
    out = ecs.update_task_protection(cluster="default", tasks=[lone["taskArn"]], protectionEnabled=True)
    assert out["protectedTasks"] == [] and out["failures"][0]["reason"] == "TASK_NOT_VALID"
    ecs.stop_task(task=lone["taskArn"])


def test_list_describe_and_daemon_strategy(ecs, sdaemon):
    td = register(ecs, sdaemon, [sh("app", IDLE)], family="web")
    create(ecs, td, name="a", count=0)
    s = create(ecs, td, name="d", count=5, schedulingStrategy="DAEMON")
    assert s["desiredCount"] == 1 and s["schedulingStrategy"] == "DAEMON"
    s = stable(ecs, "d")
    assert s["runningCount"] == 1
    arns = ecs.list_services()["serviceArns"]
    assert [a.rsplit("/", 1)[1] for a in arns] == ["a", "d"]
    # Both filters are honoured (both services run as FARGATE, the default).
    def names(**kw):
        return [a.rsplit("/", 1)[1] for a in ecs.list_services(**kw)["serviceArns"]]
    assert names(schedulingStrategy="DAEMON") == ["d"]
    assert names(schedulingStrategy="REPLICA") == ["a"]
    assert names(launchType="FARGATE") == ["a"]
    assert names(launchType="EC2") == ["d"]     # a DAEMON service's default, as ECS
    assert svc(ecs, "d")["launchType"] == "EC2"
    assert [t["launchType"] for t in running_tasks(ecs, "d")] == ["EC2"]
    with pytest.raises(ClientError) as e:
        create(ecs, td, name="f", schedulingStrategy="DAEMON", launchType="FARGATE")
    assert e.value.response["Error"] == {
        "Code": "InvalidParameterException",
        "Message": "The DAEMON scheduling strategy is not supported with the FARGATE "
                   "launch type."}
    with pytest.raises(ClientError) as e:
        create(ecs, td, name="s", networkConfiguration={"awsvpcConfiguration": {"subnets": []}})
    assert e.value.response["Error"] == {"Code": "InvalidParameterException",
                                         "Message": "subnets can not be empty."}
    pages = list(ecs.get_paginator("list_services").paginate(PaginationConfig={"PageSize": 1}))
    assert len(pages) == 2
    out = ecs.describe_services(services=["a", "nope"])
    # The full ARN, as ECS prints it (deploy tools show it).
    assert out["failures"] == [{"arn": "arn:aws:ecs:us-east-1:000000000000:service/default/nope",
                                "reason": "MISSING"}]
    with pytest.raises(ClientError) as e:
        ecs.describe_services(services=[])
    assert e.value.response["Error"] == {"Code": "InvalidParameterException",
                                         "Message": "Services cannot be empty."}
    with pytest.raises(ClientError) as e:
        create(ecs, td, name="a")
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        create(ecs, td, name="x", serviceRegistries=[{"registryArn": "arn:x"}])
    assert e.value.response["Error"]["Code"] == "UnsupportedFeatureException"
    # loadBalancers name target groups of the ELBv2 API (test_service_lb.py).
    with pytest.raises(ClientError) as e:
        create(ecs, td, name="x", loadBalancers=[{"targetGroupArn": "arn:x", "containerName":
                                                  "app", "containerPort": 80}])
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        ecs.create_service(serviceName="y", taskDefinition=td, desiredCount=1)
    assert "Network Configuration must be provided" in e.value.response["Error"]["Message"]


# ---- restarts ----

@pytest.mark.cgroup
def test_daemon_kill9_mid_rollout_completes_within_bounds(ecs, sdaemon):
    rev1 = register(ecs, sdaemon, [sh("app", IDLE)], family="web")
    rev2 = register(ecs, sdaemon, [sh("app", "echo v2; " + IDLE)], family="web")
    create(ecs, rev1, count=2)
    stable(ecs)
    peak, stop = [0], threading.Event()

    def watch_shims():   # a host-level count, also while the daemon is down
        while not stop.is_set():
            peak[0] = max(peak[0], len(tk.shim_tasks(sdaemon.tmp)))
            time.sleep(0.05)
    th = threading.Thread(target=watch_shims)
    th.start()
    try:
        ecs.update_service(service="web", taskDefinition=rev2)
        tk.poll_until(lambda: any(t["taskDefinitionArn"] == rev2 for t in running_tasks(ecs)),
                      20, "a rev 2 task")
        sdaemon.proc.kill()
        sdaemon.proc.wait()
        d2 = sdaemon.restart("daemon2").wait_ready()
        sdaemon.__dict__.update(d2.__dict__)
        ecs2 = make_client(d2)
        s = stable(ecs2)
    finally:
        stop.set()
        th.join()
    (dep,) = s["deployments"]
    assert dep["taskDefinition"] == rev2 and s["runningCount"] == 2
    assert peak[0] <= 4, f"{peak[0]} tasks ran at once (maximumPercent 200 of 2)"
    assert {t["taskDefinitionArn"] for t in running_tasks(ecs2)} == {rev2}


def test_create_service_makes_the_default_cluster(sdaemon):
    ecs = make_client(sdaemon)      # no CreateCluster first, as on a fresh account
    td = register(ecs, sdaemon, [sh("app", IDLE)], family="web")
    s = create(ecs, td, count=0)
    assert s["clusterArn"].endswith(":cluster/default")
    assert ecs.describe_clusters()["clusters"][0]["activeServicesCount"] == 1


def test_update_changes_only_the_deployment_members_it_names(ecs, sdaemon):
    td = register(ecs, sdaemon, [sh("app", IDLE)], family="web")
    create(ecs, td, count=0, deploymentConfiguration={
        "maximumPercent": 150, "deploymentCircuitBreaker": {"enable": True, "rollback": True}})
    s = ecs.update_service(service="web",
                           deploymentConfiguration={"minimumHealthyPercent": 50})["service"]
    assert s["deploymentConfiguration"] == {
        "maximumPercent": 150, "minimumHealthyPercent": 50,
        "deploymentCircuitBreaker": {"enable": True, "rollback": True}}
