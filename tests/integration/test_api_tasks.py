"""Tasks through the daemon: RunTask, StopTask, DescribeTasks, ListTasks with
boto3 and the aws CLI, against a real daemon that pulls from a real registry
and runs every task in its own berth-shim with a real netns, veth, cgroups
and overlay rootfs.

The daemon runs on a test bridge/subnet/nft table/cgroup name of its own
(never berth0), with NAT on (the product path), and every test checks that
no shim, cgroup, netns, veth or mount of its tasks is left afterwards.
Every answer boto3 sees is validated against botocore's model."""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, WaiterError

from fixtures import tasks as tk
from test_api_clusters import ACCOUNT, REGION, Daemon, aws_cli, make_client, raw, unix_request

OOM_REASON = tk.OOM_REASON
AGENT_GONE = "Task stopped: the task agent exited unexpectedly"
IDLE = tk.IDLE
NETCFG = {"awsvpcConfiguration": {"subnets": ["subnet-0berthtest"], "assignPublicIp": "DISABLED"}}


# ---- the network and the daemon ----

class TaskDaemon(Daemon):
    """A task daemon; REGISTRY (a fixture registry or proxy on 127.0.0.1)
    is named with --insecure-registry, as loopback registries must be.
    ROOMY: a container instance larger than the machine (test_api_clusters)."""

    def __init__(self, tmp, net, extra=(), name="daemon", registry=None, roomy=True):
        self.net = net
        self.registry = registry
        self.logs = Path(tmp) / "logs"
        args = ["--log-root", str(self.logs), "--bridge", net.bridge, "--subnet", net.subnet,
                "--nft-table", net.nft_table, "--cgroup-name", net.cgroup_name]
        if registry is not None:
            args += ["--insecure-registry", registry.host]
        super().__init__(tmp, extra=extra, name=name, net_args=args, roomy=roomy)
        self.user_extra = tuple(extra)
        self.roomy = roomy

    def restart(self, name):
        """A new daemon on the same directories and network."""
        return TaskDaemon(self.tmp, self.net, self.user_extra, name=name,
                          registry=self.registry, roomy=self.roomy)


def leftovers(d, net):
    return tk.daemon_leftovers(d.tmp, d.run, net.bridge, net.cgroup_name)


def force_cleanup(d, net):
    tk.force_daemon_cleanup(d.tmp, net.bridge, net.cgroup_name)


@pytest.fixture
def tmp_tasks():
    d = tempfile.mkdtemp(prefix="berth-t-", dir="/tmp")
    os.chmod(d, 0o755)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def stop_all_tasks(d):
    """Stops every task of a live daemon; the ARNs that were still running."""
    if d.proc.poll() is not None:
        return []
    ecs = make_client(d)
    try:
        arns = ecs.list_tasks()["taskArns"]
    except ClientError:         # no default cluster: no task ever ran
        return []
    for arn in arns:
        ecs.stop_task(task=arn)
    if arns:
        wait_stopped(ecs, arns, 60)
    return arns


def finish(d, net, cleanup=stop_all_tasks):
    """After a test: CLEANUP(d), then the daemon stopped whatever happened
    (it must exit 0 on SIGTERM), then nothing of any task on the host."""
    try:
        running = cleanup(d)
    finally:
        log = d.stop()
        left = leftovers(d, net)
        if left:
            force_cleanup(d, net)
    assert not running, f"the test left tasks running: {running}"
    assert not left, f"tasks left on the host: {left}\ndaemon log:\n{log}"


@pytest.fixture
def tdaemon(tmp_tasks, task_net, registry_anon):
    d = TaskDaemon(tmp_tasks, task_net, registry=registry_anon).wait_ready()
    yield d
    finish(d, task_net)


@pytest.fixture
def ecs(tdaemon):
    return make_client(tdaemon)


# ---- helpers ----

def image(d, name):
    return f"{d.registry.host}/{name}:latest"


def register(ecs, d, containers, family="app", **kw):
    """A task definition of CONTAINERS (busybox, essential by default).
    Their stopTimeout is 2 s unless a test says otherwise: a shell as a
    container's PID 1 ignores SIGTERM, and ECS's default of 30 s made each
    stop of such a container wait half a minute for its SIGKILL."""
    for c in containers:
        c.setdefault("image", image(d, "busybox"))
        c.setdefault("essential", True)
        c.setdefault("stopTimeout", 2)
    kw.setdefault("cpu", "256")
    kw.setdefault("memory", "512")
    td = ecs.register_task_definition(family=family, networkMode="awsvpc",
                                      containerDefinitions=containers, **kw)["taskDefinition"]
    return td["taskDefinitionArn"]


def sh(name, script, **kw):
    return dict(name=name, entryPoint=["/bin/sh", "-c"], command=[script], **kw)


def run(ecs, td, **kw):
    kw.setdefault("networkConfiguration", NETCFG)
    out = ecs.run_task(taskDefinition=td, **kw)
    assert out["failures"] == [], out
    return out["tasks"]


def describe(ecs, arn):
    out = ecs.describe_tasks(tasks=[arn])
    assert out["failures"] == [], out
    return out["tasks"][0]


def wait_for(ecs, arn, pred, timeout, what):
    timeout *= tk.SLOWDOWN    # the cgroup lane's qemu guest
    deadline = time.monotonic() + timeout
    while True:
        t = describe(ecs, arn)
        if pred(t):
            return t
        if time.monotonic() > deadline:
            raise AssertionError(f"task not {what} after {timeout}s: {json.dumps(t, default=str)}")
        time.sleep(0.05)


def wait_running(ecs, arn, timeout=30):
    return wait_for(ecs, arn, lambda t: t["lastStatus"] in ("RUNNING", "STOPPED"), timeout,
                    "RUNNING")


def wait_stopped(ecs, arns, timeout=60):
    ecs.get_waiter("tasks_stopped").wait(tasks=arns, WaiterConfig={
        "Delay": 1, "MaxAttempts": timeout * tk.SLOWDOWN})
    return [describe(ecs, a) for a in arns]


def eni_detail(task, name):
    (att,) = task["attachments"]
    return {d["name"]: d["value"] for d in att["details"]}.get(name)


def log_lines(d, task, container):
    p = d.logs / task["taskArn"].rsplit("/", 1)[1] / f"{container}.log"
    if not p.exists():
        return []
    return [tk.parse_cri(line)[3] for line in p.read_text().splitlines()]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def task_id(task):
    return task["taskArn"].rsplit("/", 1)[1]


# ---- the full path ----

@pytest.mark.cgroup
def test_register_run_serve_stop(ecs, tdaemon):
    """register → run → RUNNING with an IP → HTTP to the task IP → logs →
    stop → STOPPED UserInitiated; every state and timestamp as ECS."""
    td = register(ecs, tdaemon, [
        # The image's Cmd: httpd, pid 1 without a SIGTERM handler, so the
        # stop is a SIGKILL after stopTimeout.
        {"name": "web", "image": image(tdaemon, "multilayer"), "stopTimeout": 2},
        sh("probe", "until wget -q -O- http://localhost:8080/ >/dev/null; do sleep 0.1; done; "
                    "echo probe-ok; " + IDLE, essential=False),
    ], cpu="256", memory="512")
    (t0,) = run(ecs, td, startedBy="pytest", tags=[{"key": "k", "value": "v"}])
    assert t0["lastStatus"] in ("PROVISIONING", "PENDING"), t0
    assert t0["desiredStatus"] == "RUNNING"
    assert t0["taskArn"].startswith(f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/default/")
    assert t0["group"] == "family:app" and t0["startedBy"] == "pytest"
    assert t0["cpu"] == "256" and t0["memory"] == "512"
    assert t0["tags"] == [{"key": "k", "value": "v"}]
    assert t0["attachments"][0]["type"] == "ElasticNetworkInterface"
    assert eni_detail(t0, "subnetId") == "subnet-0berthtest"

    ecs.get_waiter("tasks_running").wait(tasks=[t0["taskArn"]],
                                         WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    # RUNNING once the essential web has started; the non-essential probe
    # starts just after it.
    t = wait_for(ecs, t0["taskArn"], lambda t: all(c["lastStatus"] == "RUNNING"
                                                   for c in t["containers"]), 10, "all RUNNING")
    assert t["lastStatus"] == "RUNNING" and t["connectivity"] == "CONNECTED", t
    ip = eni_detail(t, "privateIPv4Address")
    assert ip and ip.startswith(tdaemon.net.subnet.rsplit(".", 2)[0]), t
    assert t["attachments"][0]["status"] == "ATTACHED"
    assert eni_detail(t, "macAddress") and eni_detail(t, "networkInterfaceId").startswith("eni-")
    for c in t["containers"]:
        assert c["lastStatus"] == "RUNNING", c
        assert c["imageDigest"].startswith("sha256:"), c
        assert c["networkInterfaces"] == [{"attachmentId": t["attachments"][0]["id"],
                                           "privateIpv4Address": ip}]
    # The probe's line says httpd listens (exec'd is not listening yet).
    tk.poll_until(lambda: "probe-ok" in log_lines(tdaemon, t, "probe"), 20, "probe log line")
    status, body = http_get(f"http://{ip}:8080/")
    assert status == 200 and body, body

    stopped = ecs.stop_task(task=t["taskArn"], reason="done testing")["task"]
    assert stopped["desiredStatus"] == "STOPPED" and stopped["stopCode"] == "UserInitiated"
    assert stopped["stoppedReason"] == "done testing"
    (final,) = wait_stopped(ecs, [t["taskArn"]])
    assert final["lastStatus"] == "STOPPED" and final["stopCode"] == "UserInitiated", final
    assert final["stoppedReason"] == "done testing"
    assert final["attachments"][0]["status"] == "DELETED"
    assert all(c["lastStatus"] == "STOPPED" for c in final["containers"])
    assert final["version"] > t["version"] > t0["version"]
    order = ["createdAt", "pullStartedAt", "pullStoppedAt", "startedAt", "stoppingAt",
             "executionStoppedAt", "stoppedAt"]
    times = [final[k] for k in order]
    assert times == sorted(times), dict(zip(order, times))
    # Nothing of the task is left on the host (the fixture checks the
    # rest); its log stays.
    assert not (tdaemon.run / "netns" / task_id(final)).exists()
    assert "probe-ok" in log_lines(tdaemon, final, "probe")


def test_states_are_visible_in_order(ecs, tdaemon):
    td = register(ecs, tdaemon, [sh("app", "sleep 0.5")])
    (t0,) = run(ecs, td)
    seen, versions = [], []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        t = describe(ecs, t0["taskArn"])
        if not seen or seen[-1] != t["lastStatus"]:
            seen.append(t["lastStatus"])
        versions.append(t["version"])
        if t["lastStatus"] == "STOPPED":
            break
        time.sleep(0.01)
    order = ["PROVISIONING", "PENDING", "ACTIVATING", "RUNNING", "DEACTIVATING", "STOPPING",
             "DEPROVISIONING", "STOPPED"]
    assert seen == sorted(seen, key=order.index), seen
    assert "RUNNING" in seen and seen[-1] == "STOPPED", seen
    assert versions == sorted(versions)
    assert t["stopCode"] == "EssentialContainerExited", t
    assert t["stoppedReason"] == "Essential container in task exited"
    assert t["containers"][0]["exitCode"] == 0


def test_exit_code_and_essential_exit(ecs, tdaemon):
    # side may not have reached its trap when main's exit stops it: a
    # short stopTimeout keeps the SIGKILL that follows quick.
    td = register(ecs, tdaemon, [sh("main", "exit 3"),
                                 sh("side", IDLE, essential=False, stopTimeout=2)])
    (t0,) = run(ecs, td)
    (t,) = wait_stopped(ecs, [t0["taskArn"]])
    by = {c["name"]: c for c in t["containers"]}
    assert by["main"]["exitCode"] == 3
    assert by["side"]["lastStatus"] == "STOPPED"
    assert t["stopCode"] == "EssentialContainerExited"


def test_pull_failure_is_cannot_pull_container_error(ecs, tdaemon):
    td = register(ecs, tdaemon, [{"name": "app", "image": f"{tdaemon.registry.host}/nope:1"}])
    (t0,) = run(ecs, td)
    (t,) = wait_stopped(ecs, [t0["taskArn"]])
    assert t["stopCode"] == "TaskFailedToStart", t
    reason = t["containers"][0]["reason"]
    assert reason.startswith("CannotPullContainerError: "), reason
    assert "nope" in reason
    assert t["stoppedReason"].startswith("CannotPullContainerError"), t
    assert "startedAt" not in t


def test_start_failure_is_cannot_start_container_error(ecs, tdaemon):
    td = register(ecs, tdaemon, [{"name": "app", "entryPoint": ["nope"]}])
    (t0,) = run(ecs, td)
    (t,) = wait_stopped(ecs, [t0["taskArn"]])
    assert t["stopCode"] == "TaskFailedToStart", t
    assert t["containers"][0]["reason"].startswith(
        'CannotStartContainerError: exec: "nope": executable file not found in $PATH'), t


@pytest.mark.cgroup
def test_oom_is_out_of_memory_error(ecs, tdaemon):
    td = register(ecs, tdaemon, [sh("hog", 'x=$(head -c 200000000 /dev/zero | tr "\\0" a)')],
                  memory="64", cpu="256")
    (t0,) = run(ecs, td)
    (t,) = wait_stopped(ecs, [t0["taskArn"]], 90)
    hog = t["containers"][0]
    assert hog["reason"] == OOM_REASON and hog["exitCode"] == 137, hog
    assert t["stopCode"] == "EssentialContainerExited"


def test_count_overrides_and_distinct_addresses(ecs, tdaemon):
    td = register(ecs, tdaemon, [sh("app", "echo default; " + IDLE,
                                    environment=[{"name": "A", "value": "def"}])])
    tasks = run(ecs, td, count=3, overrides={"containerOverrides": [{
        "name": "app", "command": ['echo "A=$A B=$B"; ' + IDLE],
        "environment": [{"name": "A", "value": "over"}, {"name": "B", "value": "b"}]}]})
    assert len(tasks) == 3 and len({t["taskArn"] for t in tasks}) == 3
    arns = [t["taskArn"] for t in tasks]
    ecs.get_waiter("tasks_running").wait(tasks=arns, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    running = [describe(ecs, a) for a in arns]
    ips = {eni_detail(t, "privateIPv4Address") for t in running}
    assert len(ips) == 3, ips
    for t in running:
        assert t["overrides"]["containerOverrides"][0]["name"] == "app"
        tk.poll_until(lambda: "A=over B=b" in log_lines(tdaemon, t, "app"), 10, "override log")
    for a in arns:
        ecs.stop_task(task=a)
    wait_stopped(ecs, arns)


def test_list_tasks_filters_and_paging(ecs, tdaemon):
    td = register(ecs, tdaemon, [sh("app", IDLE)], family="lister")
    other = register(ecs, tdaemon, [sh("app", "exit 0")], family="other")
    a = [t["taskArn"] for t in run(ecs, td, count=3, startedBy="me")]
    (b,) = [t["taskArn"] for t in run(ecs, other)]
    wait_stopped(ecs, [b])
    assert sorted(ecs.list_tasks()["taskArns"]) == sorted(a)
    assert sorted(ecs.list_tasks(family="lister")["taskArns"]) == sorted(a)
    assert ecs.list_tasks(family="other")["taskArns"] == []
    assert ecs.list_tasks(family="other", desiredStatus="STOPPED")["taskArns"] == [b]
    assert sorted(ecs.list_tasks(startedBy="me")["taskArns"]) == sorted(a)
    assert ecs.list_tasks(desiredStatus="PENDING")["taskArns"] == []
    # launchType filters (every task here ran as FARGATE, the default).
    assert sorted(ecs.list_tasks(launchType="FARGATE")["taskArns"]) == sorted(a)
    assert ecs.list_tasks(launchType="EC2")["taskArns"] == []
    pages = list(ecs.get_paginator("list_tasks").paginate(PaginationConfig={"PageSize": 1}))
    assert sorted(x for p in pages for x in p["taskArns"]) == sorted(a)
    assert len(pages) == 3
    for x in a:
        ecs.stop_task(task=x)
    wait_stopped(ecs, a)
    assert ecs.list_tasks()["taskArns"] == []


def test_describe_unknown_is_missing_and_stop_unknown_is_invalid(ecs, tdaemon):
    ecs.create_cluster()
    out = ecs.describe_tasks(tasks=["0123456789abcdef0123456789abcdef"])
    assert out["tasks"] == []
    # The full ARN, as ECS prints it; an ARN as given.
    assert out["failures"] == [{"arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/default/"
                                "0123456789abcdef0123456789abcdef", "reason": "MISSING"}]
    other = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/default/" + "f" * 32
    assert ecs.describe_tasks(tasks=[other])["failures"] == [{"arn": other, "reason": "MISSING"}]
    with pytest.raises(ClientError) as e:
        ecs.describe_tasks(tasks=[])
    assert e.value.response["Error"] == {"Code": "InvalidParameterException",
                                         "Message": "Tasks cannot be empty."}
    with pytest.raises(ClientError) as e:
        ecs.stop_task(task="0123456789abcdef0123456789abcdef")
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        ecs.describe_tasks(cluster="nosuch", tasks=["x"])
    assert e.value.response["Error"]["Code"] == "ClusterNotFoundException"



def test_stop_names_its_cluster_and_the_first_stop_stays(ecs, tdaemon):
    """StopTask through another cluster does not find the task and changes
    nothing; a second StopTask keeps the first one's reason and stoppingAt."""
    ecs.create_cluster(clusterName="other")
    td = register(ecs, tdaemon, [sh("app", IDLE)], family="stopper")
    (t,) = run(ecs, td)
    with pytest.raises(ClientError) as e:
        ecs.stop_task(cluster="other", task=t["taskArn"])
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "not found" in e.value.response["Error"]["Message"]
    now = describe(ecs, t["taskArn"])
    assert now["desiredStatus"] == "RUNNING" and "stopCode" not in now, now
    first = ecs.stop_task(task=t["taskArn"], reason="first")["task"]
    again = ecs.stop_task(task=t["taskArn"], reason="second")["task"]
    assert again["stoppedReason"] == "first" and again["stoppingAt"] == first["stoppingAt"], again
    (final,) = wait_stopped(ecs, [t["taskArn"]])
    assert final["stopCode"] == "UserInitiated" and final["stoppedReason"] == "first", final

REFUSED = {
    "privileged": ({"privileged": True}, "privileged"),
    "environmentFiles": ({"environmentFiles": [{"value": "arn:aws:s3:::b/e.env", "type": "s3"}]},
                         "S3"),
    "devices": ({"linuxParameters": {"devices": [{"hostPath": "/dev/kvm"}]}}, "devices"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unsupported_members_are_refused_at_run(ecs, tdaemon, case):
    extra, word = REFUSED[case]
    td = register(ecs, tdaemon, [dict(name="app", **extra)])
    with pytest.raises(ClientError) as e:
        run(ecs, td)
    err = e.value.response["Error"]
    assert err["Code"] == "ClientException" and word in err["Message"], err
    assert ecs.list_clusters()["clusterArns"] == []  # nothing made, not even the cluster


def test_awsvpc_needs_network_configuration(ecs, tdaemon):
    td = register(ecs, tdaemon, [sh("app", "true")])
    with pytest.raises(ClientError) as e:
        ecs.run_task(taskDefinition=td)
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "Network Configuration must be provided" in e.value.response["Error"]["Message"]


def test_inactive_definition_is_refused(ecs, tdaemon):
    td = register(ecs, tdaemon, [sh("app", "true")])
    ecs.deregister_task_definition(taskDefinition=td)
    with pytest.raises(ClientError) as e:
        run(ecs, td)
    assert e.value.response["Error"]["Code"] == "ClientException"


def test_stop_while_pulling_never_starts(ecs, tdaemon):
    td = register(ecs, tdaemon, [{"name": "app", "image": image(tdaemon, "multilayer")}])
    (t0,) = run(ecs, td)
    ecs.stop_task(task=t0["taskArn"])
    (t,) = wait_stopped(ecs, [t0["taskArn"]])
    assert t["stopCode"] == "UserInitiated" and t["stoppedReason"] == "Task stopped by user"


# ---- the aws CLI ----

def test_aws_cli_run_describe_list_stop(ecs, tdaemon, tmp_tasks):
    td = register(ecs, tdaemon, [sh("app", IDLE)], family="cli")
    net = "awsvpcConfiguration={subnets=[subnet-1],assignPublicIp=DISABLED}"
    out = json.loads(aws_cli(tdaemon, tmp_tasks, "run-task", "--task-definition", "cli",
                             "--network-configuration", net, "--count", "2").stdout)
    arns = [t["taskArn"] for t in out["tasks"]]
    p = aws_cli(tdaemon, tmp_tasks, "wait", "tasks-running", "--tasks", *arns)
    out = json.loads(aws_cli(tdaemon, tmp_tasks, "describe-tasks", "--tasks", *arns).stdout)
    assert [t["lastStatus"] for t in out["tasks"]] == ["RUNNING", "RUNNING"]
    out = json.loads(aws_cli(tdaemon, tmp_tasks, "list-tasks", "--family", "cli").stdout)
    assert sorted(out["taskArns"]) == sorted(arns)
    for a in arns:
        out = json.loads(aws_cli(tdaemon, tmp_tasks, "stop-task", "--task", a).stdout)
        assert out["task"]["desiredStatus"] == "STOPPED"
    p = aws_cli(tdaemon, tmp_tasks, "wait", "tasks-stopped", "--tasks", *arns)
    assert p.returncode == 0
    assert td.endswith(":1")


# ---- malformed requests ----

BAD = [
    ("RunTask", {}, "taskDefinition"),
    ("RunTask", {"taskDefinition": 5}, "taskDefinition"),
    ("RunTask", {"taskDefinition": "x", "count": 0}, "count"),
    ("RunTask", {"taskDefinition": "x", "count": 11}, "count"),
    ("RunTask", {"taskDefinition": "x", "count": "2"}, "count"),
    ("RunTask", {"taskDefinition": "x", "count": 1.5}, "count"),
    ("RunTask", {"taskDefinition": "x", "launchType": "MOON"}, "launchType"),
    ("RunTask", {"taskDefinition": "x", "startedBy": "a b"}, "startedBy"),
    ("RunTask", {"taskDefinition": "x", "startedBy": "a" * 129}, "startedBy"),
    ("RunTask", {"taskDefinition": "x", "overrides": []}, "overrides"),
    ("RunTask", {"taskDefinition": "x", "overrides": {"containerOverrides": {}}},
     "containerOverrides"),
    ("RunTask", {"taskDefinition": "x", "overrides": {"containerOverrides": [5]}},
     "containerOverrides[0]"),
    ("RunTask", {"taskDefinition": "x", "overrides": {"containerOverrides": [
        {"name": "a", "command": "ls"}]}}, "command"),
    ("RunTask", {"taskDefinition": "x", "overrides": {"containerOverrides": [
        {"name": "a", "command": [1]}]}}, "command[0]"),
    ("RunTask", {"taskDefinition": "x", "overrides": {"containerOverrides": [
        {"name": "a", "memory": "big"}]}}, "memory"),
    ("RunTask", {"taskDefinition": "x", "overrides": {"cpu": 256}}, "cpu"),
    ("RunTask", {"taskDefinition": "x", "overrides": {"containerOverrides": [
        {"name": "a", "environment": [{"name": 1}]}]}}, "environment[0].name"),
    ("RunTask", {"taskDefinition": "x", "networkConfiguration": {"awsvpcConfiguration": {}}},
     "subnets"),
    ("RunTask", {"taskDefinition": "x", "networkConfiguration": {"awsvpcConfiguration": {
        "subnets": []}}}, "subnets can not be empty."),
    ("RunTask", {"taskDefinition": "x", "networkConfiguration": {"awsvpcConfiguration": {
        "subnets": ["s"], "assignPublicIp": "MAYBE"}}}, "assignPublicIp"),
    ("RunTask", {"taskDefinition": "x", "tags": [{"key": "aws:x", "value": "v"}]}, "aws:"),
    ("RunTask", {"taskDefinition": "x", "group": ""}, "group"),
    ("StopTask", {}, "task"),
    ("StopTask", {"task": ["x"]}, "task"),
    ("StopTask", {"task": "x", "reason": 7}, "reason"),
    ("DescribeTasks", {}, "tasks"),
    ("DescribeTasks", {"tasks": "x"}, "tasks"),
    ("DescribeTasks", {"tasks": [1]}, "tasks"),
    ("DescribeTasks", {"tasks": ["x"] * 101}, "tasks"),
    ("DescribeTasks", {"tasks": ["x"], "include": ["NOPE"]}, "include"),
    ("ListTasks", {"desiredStatus": "GONE"}, "desiredStatus"),
    ("ListTasks", {"maxResults": 0}, "maxResults"),
    ("ListTasks", {"maxResults": 101}, "maxResults"),
    ("ListTasks", {"nextToken": "garbage!"}, "nextToken"),
    ("ListTasks", {"family": 3}, "family"),
    ("ListTasks", {"launchType": "X"}, "launchType"),
]


@pytest.mark.parametrize("op,body,field", BAD, ids=[f"{o}-{f}-{i}" for i, (o, _, f) in
                                                     enumerate(BAD)])
def test_malformed_task_requests(tdaemon, op, body, field):
    assert raw(tdaemon, "CreateCluster", {})[0] == 200
    status, doc = raw(tdaemon, op, body)
    assert status == 400, doc
    # A malformed member is an InvalidParameterException, as ECS answers
    # for a parameter it cannot take; never one of two.
    assert doc["__type"] == "InvalidParameterException", doc
    assert field in doc["message"], doc
    # The daemon keeps serving, and nothing was recorded.
    status, doc = raw(tdaemon, "ListTasks", {"desiredStatus": "STOPPED"})
    assert status == 200 and doc["taskArns"] == []


def test_refused_run_task_creates_no_cluster(tdaemon):
    """ECS makes the default cluster for a RunTask it runs, not for one it
    refuses; a named cluster that does not exist is reported first."""
    for body in ({"taskDefinition": "nosuch:1"},
                 {"taskDefinition": "nosuch:1", "cluster": "default"}):
        status, doc = raw(tdaemon, "RunTask", body)
        assert (status, doc["__type"]) == (400, "ClientException"), doc
    status, doc = raw(tdaemon, "RunTask", {"taskDefinition": "nosuch:1", "cluster": "nope"})
    assert (status, doc["__type"]) == (400, "ClusterNotFoundException"), doc
    assert raw(tdaemon, "ListClusters", {})[1]["clusterArns"] == []


def test_capacity_provider_strategy(ecs, tdaemon):
    """FARGATE and FARGATE_SPOT run alike here, as FARGATE tasks; ECS's
    rules: only providers the cluster has, never with a launchType."""
    td = register(ecs, tdaemon, [sh("app", IDLE)], family="cap")
    spot = [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    not_associated = ("The specified capacity provider strategy cannot contain a capacity "
                      "provider that is not associated with the cluster. Associate the capacity "
                      "provider with the cluster or specify a valid capacity provider and try "
                      "again.")
    # The default cluster does not exist, so it has no providers: refused,
    # and nothing made.
    with pytest.raises(ClientError) as e:
        ecs.run_task(taskDefinition=td, capacityProviderStrategy=spot, networkConfiguration=NETCFG)
    assert e.value.response["Error"] == {"Code": "InvalidParameterException",
                                         "Message": not_associated}
    assert ecs.list_clusters()["clusterArns"] == []
    ecs.create_cluster(clusterName="cp", capacityProviders=["FARGATE_SPOT"])
    with pytest.raises(ClientError) as e:
        ecs.run_task(cluster="cp", taskDefinition=td, launchType="FARGATE",
                     capacityProviderStrategy=spot, networkConfiguration=NETCFG)
    assert e.value.response["Error"] == {
        "Code": "InvalidParameterException",
        "Message": "Specifying both a launch type and capacity provider strategy is not "
                   "supported. Remove one and try again."}
    with pytest.raises(ClientError) as e:
        ecs.run_task(cluster="cp", taskDefinition=td, networkConfiguration=NETCFG,
                     capacityProviderStrategy=[{"capacityProvider": "FARGATE"}])
    assert e.value.response["Error"]["Message"] == not_associated
    (t,) = run(ecs, td, cluster="cp", capacityProviderStrategy=spot)
    assert t["launchType"] == "FARGATE"
    ecs.stop_task(cluster="cp", task=t["taskArn"])
    ecs.get_waiter("tasks_stopped").wait(cluster="cp", tasks=[t["taskArn"]], WaiterConfig={
        "Delay": 1, "MaxAttempts": 60 * tk.SLOWDOWN})


def test_propagated_and_managed_tags(ecs, tdaemon):
    """propagateTags TASK_DEFINITION and enableECSManagedTags tag the task
    as ECS does; the request's own tags win on a shared key."""
    td = ecs.register_task_definition(
        family="tagged", networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[dict(sh("app", IDLE), image=image(tdaemon, "busybox"))],
        tags=[{"key": "team", "value": "td"}, {"key": "tier", "value": "web"}],
    )["taskDefinition"]["taskDefinitionArn"]
    (t,) = run(ecs, td, propagateTags="TASK_DEFINITION", enableECSManagedTags=True,
               tags=[{"key": "team", "value": "mine"}])
    want = [{"key": "aws:ecs:clusterName", "value": "default"},
            {"key": "team", "value": "mine"}, {"key": "tier", "value": "web"}]
    assert sorted(t["tags"], key=lambda x: x["key"]) == want
    assert ecs.list_tags_for_resource(resourceArn=t["taskArn"])["tags"] == want
    (plain,) = run(ecs, td)
    assert ecs.list_tags_for_resource(resourceArn=plain["taskArn"])["tags"] == []
    with pytest.raises(ClientError) as e:
        ecs.run_task(taskDefinition=td, propagateTags="SERVICE", networkConfiguration=NETCFG)
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    for x in (t, plain):
        ecs.stop_task(task=x["taskArn"])
    wait_stopped(ecs, [t["taskArn"], plain["taskArn"]])


def test_start_task_on_the_host(ecs, tdaemon):
    """StartTask runs on the container instance it names: the host, a task
    per entry, launch type EC2."""
    td = register(ecs, tdaemon, [sh("app", IDLE)], family="started")
    with pytest.raises(ClientError) as e:
        ecs.start_task(taskDefinition=td, containerInstances=["x"], networkConfiguration=NETCFG)
    assert e.value.response["Error"]["Code"] == "ClusterNotFoundException"
    ecs.create_cluster()
    (host,) = ecs.list_container_instances()["containerInstanceArns"]
    for bad, word in (([], "can not be empty"), (["not-the-host"], "containerInstances[0]")):
        with pytest.raises(ClientError) as e:
            ecs.start_task(taskDefinition=td, containerInstances=bad,
                           networkConfiguration=NETCFG)
        err = e.value.response["Error"]
        assert err["Code"] == "InvalidParameterException" and word in err["Message"], err
    out = ecs.start_task(taskDefinition=td, containerInstances=[host], startedBy="starter",
                         networkConfiguration=NETCFG)
    assert out["failures"] == [], out
    (t,) = out["tasks"]
    assert t["launchType"] == "EC2" and t["startedBy"] == "starter"
    assert t["containerInstanceArn"] == host                 # an EC2 task names its instance
    assert wait_running(ecs, t["taskArn"])["lastStatus"] == "RUNNING"
    ecs.stop_task(task=t["taskArn"])
    wait_stopped(ecs, [t["taskArn"]])


def test_attributes_and_placement_constraints(ecs, tdaemon):
    """Custom attributes on the host's container instance, and RunTask's
    memberOf and distinctInstance evaluated against it, as ECS does."""
    td = register(ecs, tdaemon, [sh("app", IDLE)], family="placed")
    ecs.create_cluster()
    (host,) = ecs.list_container_instances()["containerInstanceArns"]
    out = ecs.put_attributes(attributes=[{"name": "stack", "value": "prod", "targetId": host,
                                          "targetType": "container-instance"},
                                         {"name": "gpu", "targetId": host}])
    assert {a["name"] for a in out["attributes"]} == {"stack", "gpu"}
    (inst,) = ecs.describe_container_instances(containerInstances=[host])["containerInstances"]
    assert {"name": "stack", "value": "prod"} in inst["attributes"]
    assert {"name": "gpu"} in inst["attributes"]
    assert {"name": "ecs.os-type", "value": "linux"} in inst["attributes"]
    listed = ecs.list_attributes(targetType="container-instance", attributeName="stack")
    assert listed["attributes"] == [{"name": "stack", "value": "prod",
                                     "targetType": "container-instance", "targetId": host}]
    for attrs, code in (([{"name": "x", "targetId": "not-the-host"}], "TargetNotFoundException"),
                        ([{"name": "ecs.os-type", "targetId": host}], "InvalidParameterException"),
                        ([{"name": "x"}], "InvalidParameterException"),
                        ([{"name": f"a{i}", "targetId": host} for i in range(9)],
                         "AttributeLimitExceededException")):
        with pytest.raises(ClientError) as e:
            ecs.put_attributes(attributes=attrs)
        assert e.value.response["Error"]["Code"] == code, attrs

    member = lambda expr: [{"type": "memberOf", "expression": expr}]  # noqa: E731
    for expr in ("attribute:stack == prod", "attribute:gpu exists", "attribute:stack != dev",
                 "attribute:ecs.os-type == linux", "attribute:nope !exists"):
        (t,) = run(ecs, td, placementConstraints=member(expr))
        ecs.stop_task(task=t["taskArn"])
    out = ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG, count=2,
                       placementConstraints=member("attribute:stack == dev"))
    assert out["tasks"] == [] and [f["reason"] for f in out["failures"]] == [
        "MemberOf placement constraint unsatisfied."] * 2, out
    out = ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG, count=3,
                       placementConstraints=[{"type": "distinctInstance"}])
    assert len(out["tasks"]) == 1 and [f["reason"] for f in out["failures"]] == [
        "DistinctInstance placement constraint unsatisfied."] * 2, out
    with pytest.raises(ClientError) as e:
        ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG,
                     placementConstraints=member("attribute:stack =~ pr.*"))
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    ecs.delete_attributes(attributes=[{"name": "stack", "targetId": host}])
    out = ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG,
                       placementConstraints=member("attribute:stack == prod"))
    assert out["tasks"] == [], out
    stop_all_tasks(tdaemon)


def test_client_token_makes_run_task_idempotent(ecs, tdaemon):
    """RunTask's clientToken, as ECS: the same request again (a client's
    retry) answers with the tasks the first one made and starts none;
    another request under the token is a ConflictException whose
    resourceIds are those tasks.  (Debian's botocore predates the member,
    so the requests are raw.)"""
    td = register(ecs, tdaemon, [sh("app", IDLE)], family="token")
    body = {"taskDefinition": td, "count": 2, "clientToken": "retry-1/ok~", "startedBy": "me",
            "networkConfiguration": NETCFG, "tags": [{"key": "k", "value": "v"}]}
    status, first = raw(tdaemon, "RunTask", body)
    assert status == 200 and len(first["tasks"]) == 2, first
    arns = [t["taskArn"] for t in first["tasks"]]
    # The same members in another order are the same request.
    status, again = raw(tdaemon, "RunTask", dict(reversed(list(body.items()))))
    assert status == 200 and again["failures"] == [], again
    assert [t["taskArn"] for t in again["tasks"]] == arns
    assert all(t["tags"] == [{"key": "k", "value": "v"}] for t in again["tasks"]), again

    status, _, data = unix_request(tdaemon.sock, "RunTask", dict(body, count=1))
    doc = json.loads(data)
    assert status == 400 and doc["__type"] == "ConflictException", doc
    assert doc["resourceIds"] == arns and "retry-1/ok~" in doc["message"], doc

    other = run(ecs, td)  # no token: a task of its own
    status, third = raw(tdaemon, "RunTask", dict(body, clientToken="retry-2", count=1))
    assert status == 200 and third["tasks"][0]["taskArn"] not in arns, third
    listed = ecs.list_tasks(family="token")["taskArns"]
    assert sorted(listed) == sorted(arns + [other[0]["taskArn"], third["tasks"][0]["taskArn"]])

    for bad in ("", "a b", "x" * 65, "caf\u00e9"):
        status, doc = raw(tdaemon, "RunTask", dict(body, clientToken=bad))
        assert status == 400 and doc["__type"] == "InvalidParameterException", doc
        assert "clientToken" in doc["message"], doc
    assert sorted(ecs.list_tasks(family="token")["taskArns"]) == sorted(listed)
    for arn in listed:
        ecs.stop_task(task=arn)
    wait_stopped(ecs, listed)


def test_unknown_definition_is_client_exception(ecs, tdaemon):
    with pytest.raises(ClientError) as e:
        run(ecs, "nosuch:1")
    assert e.value.response["Error"]["Code"] == "ClientException"
    with pytest.raises(WaiterError):
        ecs.get_waiter("tasks_running").wait(tasks=["0" * 32],
                                             WaiterConfig={"Delay": 1, "MaxAttempts": 1})


# ---- restarts, lost shims, retention ----

COUNTER = "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.05; done"


def ticks(d, task):
    return [int(x.split("-")[1]) for x in log_lines(d, task, "app") if x.startswith("tick-")]


@pytest.mark.cgroup
def test_daemon_kill9_with_10_tasks_readopts_them(ecs, tdaemon):
    """kill -9 the daemon with 10 running tasks: they keep running and
    logging; a new daemon finds all 10 RUNNING, starts none twice, can stop
    them, and no log line is lost."""
    # COUNTER has no SIGTERM handler: stopped by SIGKILL after stopTimeout.
    td = register(ecs, tdaemon, [sh("app", COUNTER, stopTimeout=2)], family="survivor")
    arns = [t["taskArn"] for t in run(ecs, td, count=10)]
    ecs.get_waiter("tasks_running").wait(tasks=arns, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    before = {a: describe(ecs, a) for a in arns}
    shims = set(tk.shim_processes(tdaemon.tmp))
    assert len(shims) == 10, shims

    tdaemon.proc.kill()
    tdaemon.proc.wait()
    counts = {a: len(ticks(tdaemon, before[a])) for a in arns}
    for a in arns:      # still logging with nobody listening
        tk.poll_until(lambda: len(ticks(tdaemon, before[a])) > counts[a] + 5, 10,
                      f"more log lines from {a}")
    assert set(tk.shim_processes(tdaemon.tmp)) == shims

    d2 = tdaemon.restart("daemon2").wait_ready()
    tdaemon.__dict__.update(d2.__dict__)      # the fixture stops the new one
    ecs2 = make_client(d2)
    assert sorted(ecs2.list_tasks()["taskArns"]) == sorted(arns)
    for a in arns:
        t = describe(ecs2, a)
        assert t["lastStatus"] == "RUNNING", t
        assert eni_detail(t, "privateIPv4Address") == eni_detail(before[a], "privateIPv4Address")
        assert t["startedAt"] == before[a]["startedAt"]
    assert set(tk.shim_processes(tdaemon.tmp)) == shims, "a task was started twice"
    for a in arns:
        ecs2.stop_task(task=a)
    for t in wait_stopped(ecs2, arns):
        assert t["stopCode"] == "UserInitiated", t
        n = ticks(d2, t)
        assert n == list(range(len(n))) and len(n) > 20, f"log gap in {a}: {n[:5]}…"


def test_restarted_daemon_stops_a_task_the_store_says_to_stop(ecs, tdaemon):
    """A daemon that died between recording a StopTask and telling the
    shim: its successor, following the shim again, finds desiredStatus
    STOPPED and stops the task, with the recorded code and reason."""
    td = register(ecs, tdaemon, [sh("app", IDLE)], family="told")
    (t,) = run(ecs, td)
    wait_running(ecs, t["taskArn"])
    tdaemon.proc.kill()
    tdaemon.proc.wait()
    with sqlite3.connect(tdaemon.root / "berth.db") as db:
        db.execute("UPDATE tasks SET desired_status = 'STOPPED', stop_code = 'UserInitiated',"
                   " stopped_reason = 'told before the crash' WHERE id = ?", (task_id(t),))
    d2 = tdaemon.restart("daemon2").wait_ready()
    tdaemon.__dict__.update(d2.__dict__)
    (s,) = wait_stopped(make_client(d2), [t["taskArn"]])
    assert (s["stopCode"], s["stoppedReason"]) == ("UserInitiated", "told before the crash"), s


@pytest.mark.cgroup
def test_shim_killed_stops_the_task_and_cleans_up(ecs, tdaemon):
    td = register(ecs, tdaemon, [sh("app", IDLE)])
    (t0,) = run(ecs, td)
    wait_running(ecs, t0["taskArn"])
    (shim,) = tk.shim_processes(tdaemon.tmp)
    os.kill(shim, signal.SIGKILL)
    tk.reap(shim)
    (t,) = wait_stopped(ecs, [t0["taskArn"]], 30)
    assert t["stoppedReason"] == AGENT_GONE, t
    # The fixture then proves its processes, cgroups, netns and veth are gone.


@pytest.mark.cgroup
def test_shim_killed_while_daemon_down_is_recorded_at_start(ecs, tdaemon):
    td = register(ecs, tdaemon, [sh("app", IDLE)])
    (t0,) = run(ecs, td)
    wait_running(ecs, t0["taskArn"])
    tdaemon.proc.kill()
    tdaemon.proc.wait()
    (shim,) = tk.shim_processes(tdaemon.tmp)
    os.kill(shim, signal.SIGKILL)
    tk.reap(shim)
    d2 = tdaemon.restart("daemon2").wait_ready()
    tdaemon.__dict__.update(d2.__dict__)
    t = describe(make_client(d2), t0["taskArn"])
    assert t["lastStatus"] == "STOPPED" and t["stoppedReason"] == AGENT_GONE, t


def test_task_stopped_while_daemon_down_is_recorded_from_its_exit_record(ecs, tdaemon):
    td = register(ecs, tdaemon, [sh("app", "sleep 1; exit 4")])
    (t0,) = run(ecs, td)
    wait_running(ecs, t0["taskArn"])
    tdaemon.proc.kill()
    tdaemon.proc.wait()
    tk.poll_until(lambda: not tk.shim_processes(tdaemon.tmp), 20, "the task to end")
    d2 = tdaemon.restart("daemon2").wait_ready()
    tdaemon.__dict__.update(d2.__dict__)
    t = describe(make_client(d2), t0["taskArn"])
    assert t["lastStatus"] == "STOPPED" and t["stopCode"] == "EssentialContainerExited", t
    assert t["containers"][0]["exitCode"] == 4


def test_stopped_tasks_are_pruned_after_the_retention(tmp_tasks, task_net, registry_anon):
    d = TaskDaemon(tmp_tasks, task_net, ["--task-retention", "3s", "--log-retention", "5s"],
                   registry=registry_anon)
    d.wait_ready()
    try:
        ecs = make_client(d)
        td = register(ecs, d, [sh("app", "echo bye")])
        (t0,) = run(ecs, td)
        # Polled, not boto's 1 s waiter: the record must be seen before it goes.
        t = wait_for(ecs, t0["taskArn"], lambda t: t["lastStatus"] == "STOPPED", 30, "STOPPED")
        assert (d.root / "tasks" / task_id(t)).is_dir()
        assert log_lines(d, t, "app") == ["bye"]
        tk.poll_until(lambda: ecs.describe_tasks(tasks=[t0["taskArn"]])["failures"], 10,
                      "the task record to be pruned")
        assert not (d.root / "tasks" / task_id(t)).exists()
        tk.poll_until(lambda: not (d.logs / task_id(t)).exists(), 10, "the logs to be pruned")
    finally:
        d.stop()
    assert not leftovers(d, task_net)


def test_nat_is_on_for_the_subnet(tdaemon):
    out = subprocess.run(["nft", "list", "table", "ip", tdaemon.net.nft_table],
                         capture_output=True, text=True).stdout
    assert "masquerade" in out and tdaemon.net.subnet in out, out
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
