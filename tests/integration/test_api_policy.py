"""The daemon's policy for what a task may ask for (docs/security.md "Daemon
policy"): capabilities beyond SYS_PTRACE and ulimits beyond nofile only
when the operator allows them, names checked at registration, a hard
memory limit and a CPU quota for every task, and the host as one ECS
container instance whose registered memory RunTask does not overcommit.

Every answer boto3 sees is validated against botocore's model; every test
checks that nothing of its tasks is left on the host."""
import os

import pytest
from botocore.exceptions import ClientError

from fixtures import tasks as tk
from test_api_tasks import (NETCFG, TaskDaemon, finish, log_lines, make_client,  # noqa: F401
                            register, run, sh, tmp_tasks, wait_running, wait_stopped)

PTRACE_BIT = 1 << 19
NET_ADMIN_BIT = 1 << 12
SYS_ADMIN_BIT = 1 << 21
DANGEROUS = ["SYS_ADMIN", "NET_ADMIN", "ALL", "SYS_MODULE", "SYS_RAWIO", "DAC_READ_SEARCH",
             "SYS_TIME", "SYS_BOOT", "MAC_ADMIN", "BLOCK_SUSPEND"]


@pytest.fixture
def start(tmp_tasks, task_net, registry_anon):
    """start(*flags) → a daemon on the test network with those flags."""
    started = []

    def go(*flags, roomy=True):
        assert not started, "one daemon per test (they share the network)"
        d = TaskDaemon(tmp_tasks, task_net, flags, registry=registry_anon,
                       roomy=roomy).wait_ready()
        started.append(d)
        return d, make_client(d)
    yield go
    for d in started:
        finish(d, task_net)


def caps_def(name, caps, script="grep ^CapEff: /proc/1/status", **kw):
    return sh(name, script, linuxParameters={"capabilities": {"add": caps}}, **kw)


def client_error(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["Error"]["Message"]


def printed(d, task, container, what):
    """The first line starting with WHAT the container printed, once the
    task stopped."""
    (t,) = wait_stopped(make_client(d), [task["taskArn"]])
    lines = [x for x in log_lines(d, t, container) if x.startswith(what)]
    assert lines, ([(c.get("exitCode"), c.get("reason")) for c in t["containers"]],
                   t.get("stoppedReason"), log_lines(d, t, container))
    return lines[0][len(what):]


def cap_eff(d, task, container):
    return int(printed(d, task, container, "CapEff:").split()[0], 16)


def limits(d, task, container, what):
    """[soft, hard] of the /proc/self/limits line WHAT."""
    return printed(d, task, container, what).split()[:2]


# ---- capabilities ----

@pytest.mark.parametrize("cap", DANGEROUS)
def test_dangerous_capability_is_refused_at_run_task(start, cap):
    d, ecs = start()
    td = register(ecs, d, [sh("side", "true", essential=False), caps_def("web", [cap])])
    with pytest.raises(ClientError) as e:
        ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG)
    code, msg = client_error(e)
    assert code == "ClientException", msg
    assert f"containerDefinitions[1] (web): linuxParameters.capabilities.add: {cap} is not " \
           f"allowed on this host: a task may add only SYS_PTRACE " in msg, msg
    assert "--allow-capabilities" in msg and td in msg, msg
    assert ecs.list_clusters()["clusterArns"] == []  # nothing made, not even the cluster


def test_sys_ptrace_is_allowed_and_present_default_set_unchanged(start):
    d, ecs = start()
    td = register(ecs, d, [caps_def("traced", ["SYS_PTRACE"])], family="traced")
    (t,) = run(ecs, td)
    assert cap_eff(d, t, "traced") == int(tk.CAP_EFF_DOCKER, 16) | PTRACE_BIT
    plain = register(ecs, d, [sh("plain", "grep ^CapEff: /proc/1/status")], family="plain")
    (t,) = run(ecs, plain)
    assert cap_eff(d, t, "plain") == int(tk.CAP_EFF_DOCKER, 16)


def test_create_and_update_service_refuse_a_capability(start):
    d, ecs = start()
    ecs.create_cluster()
    bad = register(ecs, d, [caps_def("web", ["SYS_ADMIN"], tk.IDLE)], family="bad")
    with pytest.raises(ClientError) as e:
        ecs.create_service(serviceName="s", taskDefinition=bad, desiredCount=1,
                           networkConfiguration=NETCFG)
    code, msg = client_error(e)
    assert code == "ClientException" and "SYS_ADMIN is not allowed" in msg, msg
    assert ecs.list_services()["serviceArns"] == []

    good = register(ecs, d, [sh("web", tk.IDLE, stopTimeout=2)], family="good")
    ecs.create_service(serviceName="s", taskDefinition=good, desiredCount=0,
                       networkConfiguration=NETCFG)
    with pytest.raises(ClientError) as e:
        ecs.update_service(service="s", taskDefinition=bad)
    code, msg = client_error(e)
    assert code == "ClientException" and "(web): linuxParameters.capabilities.add: SYS_ADMIN" \
        in msg, msg
    (s,) = ecs.describe_services(services=["s"])["services"]
    assert s["taskDefinition"] == good and len(s["deployments"]) == 1, s
    ecs.delete_service(service="s", force=True)


def test_operator_allows_more_capabilities_and_ulimits(start):
    d, ecs = start("--allow-capabilities", "NET_ADMIN", "--allow-ulimits", "core")
    td = register(ecs, d, [caps_def("net", ["NET_ADMIN"])], family="net")
    (t,) = run(ecs, td)
    assert cap_eff(d, t, "net") == int(tk.CAP_EFF_DOCKER, 16) | NET_ADMIN_BIT

    core = register(ecs, d, [sh("core", "grep 'Max core file size' /proc/self/limits",
                                ulimits=[{"name": "core", "softLimit": 1024, "hardLimit": 2048}])],
                    family="core")
    (t,) = run(ecs, core)
    assert limits(d, t, "core", "Max core file size") == ["1024", "2048"]

    for caps in (["SYS_ADMIN"], ["ALL"]):
        bad = register(ecs, d, [caps_def("web", caps)], family="bad")
        with pytest.raises(ClientError) as e:
            ecs.run_task(taskDefinition=bad, networkConfiguration=NETCFG)
        code, msg = client_error(e)
        assert code == "ClientException", msg
        assert "a task may add only SYS_PTRACE, NET_ADMIN (" in msg, msg


def test_operator_allows_all_only_when_named(start):
    """--allow-capabilities ALL lets a task add anything (ALL itself is
    accepted by the API; whether the runtime can grant every bit depends
    on the host's bounding set, so the check is on SYS_ADMIN)."""
    d, ecs = start("--allow-capabilities", "all")
    td = register(ecs, d, [caps_def("admin", ["SYS_ADMIN", "NET_ADMIN"])], family="admin")
    (t,) = run(ecs, td)
    assert cap_eff(d, t, "admin") & SYS_ADMIN_BIT
    td = register(ecs, d, [caps_def("all", ["ALL"])], family="all")
    (t,) = run(ecs, td)
    wait_stopped(ecs, [t["taskArn"]])


# ---- ulimits ----

@pytest.mark.parametrize("ulimit,message", [
    ({"name": "rtprio", "softLimit": 1, "hardLimit": 1},
     "ulimits[0]: rtprio is not allowed on this host: a task may set only nofile"),
    ({"name": "memlock", "softLimit": -1, "hardLimit": -1}, "ulimits[0]: memlock is not allowed"),
    ({"name": "nofile", "softLimit": 1024, "hardLimit": 1048577},
     "ulimits[0]: nofile hardLimit 1048577 is above 1048576"),
])
def test_ulimits_beyond_nofile_are_refused_at_run_task(start, ulimit, message):
    d, ecs = start()
    td = register(ecs, d, [sh("web", "true", ulimits=[ulimit])])
    with pytest.raises(ClientError) as e:
        ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG)
    code, msg = client_error(e)
    assert code == "ClientException" and "(web): " + message in msg, msg
    assert ecs.list_clusters()["clusterArns"] == []  # nothing made, not even the cluster


def test_nofile_is_allowed(start):
    d, ecs = start()
    td = register(ecs, d, [sh("web", "grep 'Max open files' /proc/self/limits", ulimits=[
        {"name": "nofile", "softLimit": 1000, "hardLimit": 2000}])])
    (t,) = run(ecs, td)
    assert limits(d, t, "web", "Max open files") == ["1000", "2000"]


# ---- names at registration ----

@pytest.mark.parametrize("member,message", [
    ({"linuxParameters": {"capabilities": {"add": ["BOGUS_CAP"]}}},
     "linuxParameters.capabilities.add: 'BOGUS_CAP' is not a Linux capability"),
    ({"linuxParameters": {"capabilities": {"drop": ["NET_RAW", "CAP_BOGUS"]}}},
     "linuxParameters.capabilities.drop: 'CAP_BOGUS' is not a Linux capability"),
    ({"ulimits": [{"name": "nofile", "softLimit": 1, "hardLimit": 2},
                  {"name": "bogus", "softLimit": 1, "hardLimit": 1}]},
     "ulimits[1].name: 'bogus' is not one of core, cpu"),
    ({"ulimits": [{"name": "nofile", "softLimit": 4096, "hardLimit": 1024}]},
     "ulimits[0] (nofile): softLimit 4096 is greater than hardLimit 1024."),
], ids=["cap-add", "cap-drop", "ulimit-name", "ulimit-soft-above-hard"])
def test_bad_names_are_refused_at_registration(start, member, message):
    d, ecs = start()
    with pytest.raises(ClientError) as e:
        register(ecs, d, [dict(name="web", **member)])
    code, msg = client_error(e)
    assert code == "ClientException", msg
    assert msg.startswith("Invalid setting for container 'web'. ") and message in msg, msg
    assert ecs.list_task_definitions()["taskDefinitionArns"] == []


# ---- limits by default ----

def task_cgroup_value(d, task, v1_name, v2_name):
    """The task cgroup's V1_NAME (cgroup v1) or V2_NAME (v2) file, read
    from the host."""
    tid = task["taskArn"].rsplit("/", 1)[1]
    for root in tk.cgroup_tree_roots(d.net.cgroup_name):
        for name in (v1_name, v2_name):
            p = os.path.join(root, f"task-{tid}", name)
            if os.path.exists(p):
                with open(p) as f:
                    return f.read().strip()
    raise AssertionError(f"no {v1_name} / {v2_name} for task {tid} under "
                         f"{tk.cgroup_tree_roots(d.net.cgroup_name)}")


def memory_limit_mib(d, task):
    v = task_cgroup_value(d, task, "memory.limit_in_bytes", "memory.max")
    return None if v == "max" else int(v) // (1 << 20)


def cpu_quota(d, task):
    """Microseconds of CPU per 100 ms period, or None when unlimited."""
    v = task_cgroup_value(d, task, "cpu.cfs_quota_us", "cpu.max").split()[0]
    return None if v in ("max", "-1") else int(v)


def reservation_only(d, ecs, script, family="res"):
    """The issue's definition: no task size, a container reservation only."""
    c = sh("app", script, memoryReservation=64, stopTimeout=2)
    c.setdefault("image", f"{d.registry.host}/busybox:latest")
    return ecs.register_task_definition(family=family, networkMode="awsvpc",
                                        containerDefinitions=[c])["taskDefinition"]


def test_reservation_only_definition_gets_a_hard_limit_and_a_quota(start):
    d, ecs = start()
    td = reservation_only(d, ecs, tk.IDLE)
    assert "memory" not in td and "cpu" not in td, td
    (t,) = run(ecs, td["taskDefinitionArn"])
    wait_running(ecs, t["taskArn"])
    assert memory_limit_mib(d, t) == 512
    assert cpu_quota(d, t) == 100000           # 1024 units: one CPU
    ecs.stop_task(task=t["taskArn"])
    wait_stopped(ecs, [t["taskArn"]])


def test_default_task_memory_is_enforced(start):
    """A task that grows past the operator's default is OOM-killed (at
    HEAD a string grew to 402 MiB untouched)."""
    d, ecs = start("--default-task-memory", "64", "--default-task-cpu", "512")
    td = reservation_only(d, ecs, 'x=$(head -c 200000000 /dev/zero | tr "\\0" a)')
    (t,) = run(ecs, td["taskDefinitionArn"])
    (t,) = wait_stopped(ecs, [t["taskArn"]], 90)
    assert t["containers"][0]["reason"] == tk.OOM_REASON, t["containers"][0]
    assert t["containers"][0]["exitCode"] == 137
    # The task's own size still wins over the default.
    sized = register(ecs, d, [sh("app", tk.IDLE, stopTimeout=2)], family="sized",
                     cpu="256", memory="512")
    (t,) = run(ecs, sized)
    wait_running(ecs, t["taskArn"])
    assert memory_limit_mib(d, t) == 512 and cpu_quota(d, t) == 25000
    ecs.stop_task(task=t["taskArn"])
    wait_stopped(ecs, [t["taskArn"]])


def test_fargate_launch_type_needs_a_fargate_definition(start):
    d, ecs = start()
    td = reservation_only(d, ecs, "true")
    assert td["compatibilities"] == ["EC2"], td
    with pytest.raises(ClientError) as e:
        ecs.run_task(taskDefinition=td["taskDefinitionArn"], launchType="FARGATE",
                     networkConfiguration=NETCFG)
    assert client_error(e) == ("InvalidParameterException",
                               "Task definition does not support launch_type FARGATE.")
    ecs.create_cluster()
    with pytest.raises(ClientError) as e:
        ecs.create_service(serviceName="s", taskDefinition=td["taskDefinitionArn"],
                           desiredCount=1, launchType="FARGATE", networkConfiguration=NETCFG)
    assert client_error(e)[0] == "InvalidParameterException"
    assert ecs.list_tasks()["taskArns"] == [] and ecs.list_services()["serviceArns"] == []
    # Registering for Fargate without a task size is refused, as ECS does.
    with pytest.raises(ClientError) as e:
        ecs.register_task_definition(family="f", networkMode="awsvpc", memory="512",
                                     requiresCompatibilities=["FARGATE"],
                                     containerDefinitions=[sh("app", "true", image="x")])
    assert client_error(e) == ("ClientException",
                               "Fargate requires that 'cpu' be defined at the task level.")
    fargate = register(ecs, d, [sh("app", "true")], family="fargate",
                       requiresCompatibilities=["FARGATE"])
    (t,) = run(ecs, fargate, launchType="FARGATE")
    wait_stopped(ecs, [t["taskArn"]])


# ---- the container instance ----

def host_memory_mib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no MemTotal")


def resources(inst, which):
    out = {}
    for r in inst[which]:
        out[r["name"]] = r["integerValue"] if r["type"] == "INTEGER" else r["stringSetValue"]
    return out


def the_instance(ecs, cluster="default"):
    (arn,) = ecs.list_container_instances(cluster=cluster)["containerInstanceArns"]
    out = ecs.describe_container_instances(cluster=cluster, containerInstances=[arn])
    assert out["failures"] == [], out
    (inst,) = out["containerInstances"]
    return inst


def stop_all(ecs):
    arns = ecs.list_tasks()["taskArns"]
    for arn in arns:
        ecs.stop_task(task=arn)
    wait_stopped(ecs, arns)


def test_the_host_is_one_container_instance(start):
    d, ecs = start(roomy=False)
    ecs.create_cluster()
    inst = the_instance(ecs)
    arn = inst["containerInstanceArn"]
    prefix = "arn:aws:ecs:us-east-1:000000000000:container-instance/default/"
    assert arn.startswith(prefix) and len(arn) == len(prefix) + 32, arn
    cpu = os.cpu_count() * 1024
    mem = host_memory_mib() - 256
    assert resources(inst, "registeredResources") == {"CPU": cpu, "MEMORY": mem, "PORTS": [],
                                                      "PORTS_UDP": []}
    assert resources(inst, "remainingResources") == resources(inst, "registeredResources")
    assert inst["status"] == "ACTIVE" and inst["agentConnected"] is True, inst
    assert inst["runningTasksCount"] == 0 and inst["pendingTasksCount"] == 0
    assert set(inst["versionInfo"]) == {"agentVersion", "agentHash", "dockerVersion"}
    attrs = {a["name"]: a.get("value") for a in inst["attributes"]}
    assert attrs["ecs.os-type"] == "linux" and attrs["ecs.cpu-architecture"], attrs
    assert inst["registeredAt"].timestamp() > 0

    # A task reserves its size: remaining goes down, the counts go up.
    td = register(ecs, d, [sh("app", tk.IDLE, stopTimeout=2)], cpu="512", memory="1024")
    (t,) = run(ecs, td)
    wait_running(ecs, t["taskArn"])
    inst = the_instance(ecs)
    assert resources(inst, "remainingResources")["MEMORY"] == mem - 1024
    assert resources(inst, "remainingResources")["CPU"] == cpu - 512
    assert inst["runningTasksCount"] == 1 and inst["pendingTasksCount"] == 0, inst
    # By id and by ARN; anything else is MISSING; named twice, described once.
    iid = arn.rsplit("/", 1)[1]
    out = ecs.describe_container_instances(containerInstances=[iid, arn, "nope", prefix + "0" * 32])
    assert [i["containerInstanceArn"] for i in out["containerInstances"]] == [arn]
    assert [f["reason"] for f in out["failures"]] == ["MISSING", "MISSING"], out
    # Another cluster: the same host, its own ARN and task counts.
    ecs.create_cluster(clusterName="other")
    other = the_instance(ecs, "other")
    assert other["containerInstanceArn"].endswith(f"/other/{iid}")
    assert other["runningTasksCount"] == 0
    assert resources(other, "remainingResources")["MEMORY"] == mem - 1024
    assert ecs.list_container_instances(status="DRAINING")["containerInstanceArns"] == []
    with pytest.raises(ClientError) as e:
        ecs.list_container_instances(filter="attribute:ecs.os-type == linux")
    assert client_error(e)[0] == "InvalidParameterException"
    assert ecs.list_tasks(containerInstance=arn)["taskArns"] == [t["taskArn"]]
    assert ecs.list_tasks(containerInstance=iid)["taskArns"] == [t["taskArn"]]
    assert ecs.list_tasks(containerInstance="nope")["taskArns"] == []
    assert ecs.describe_clusters()["clusters"][0]["registeredContainerInstancesCount"] == 1
    with pytest.raises(ClientError) as e:
        ecs.list_container_instances(cluster="nope")
    assert client_error(e)[0] == "ClusterNotFoundException"
    ecs.stop_task(task=t["taskArn"])
    wait_stopped(ecs, [t["taskArn"]])
    assert resources(the_instance(ecs), "remainingResources")["MEMORY"] == mem


def test_overcommit_is_resource_memory_then_cpu(start):
    d, ecs = start("--instance-memory", "1100", "--instance-cpu", "1024")
    td = register(ecs, d, [sh("app", tk.IDLE, stopTimeout=2)], cpu="256", memory="512")
    out = ecs.run_task(taskDefinition=td, count=3, networkConfiguration=NETCFG)
    iarn = the_instance(ecs)["containerInstanceArn"]
    two = out["tasks"]
    assert len(two) == 2, out
    assert out["failures"] == [{"arn": iarn, "reason": "RESOURCE:MEMORY"}], out
    out = ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG)
    assert out["tasks"] == [] and out["failures"] == [{"arn": iarn, "reason": "RESOURCE:MEMORY"}]
    assert len(ecs.list_tasks()["taskArns"]) == 2
    # A reservation-only task reserves what its container reserves (64).
    small = reservation_only(d, ecs, tk.IDLE)["taskDefinitionArn"]
    run(ecs, small)
    # CPU: 2 × 256 taken (the reservation-only task reserves none), 1024
    # more do not fit though memory would.
    cpu = register(ecs, d, [sh("app", "true")], family="cpu", cpu="1024", memory="6")
    out = ecs.run_task(taskDefinition=cpu, networkConfiguration=NETCFG)
    assert out["tasks"] == [] and out["failures"] == [{"arn": iarn, "reason": "RESOURCE:CPU"}]
    # Room again once a task is STOPPED.
    first = two[0]["taskArn"]
    ecs.stop_task(task=first)
    wait_stopped(ecs, [first])
    run(ecs, td)
    stop_all(ecs)


def test_service_waits_for_room_with_ecs_event(start):
    d, ecs = start("--instance-memory", "1100")
    ecs.create_cluster()
    td = register(ecs, d, [sh("app", tk.IDLE, stopTimeout=2)], cpu="256", memory="512")
    ecs.create_service(serviceName="s", taskDefinition=td, desiredCount=3,
                       networkConfiguration=NETCFG)
    iid = the_instance(ecs)["containerInstanceArn"].rsplit("/", 1)[1]
    want = (f"(service s) was unable to place a task because no container instance met all of "
            f"its requirements. The closest matching (container-instance {iid}) has insufficient "
            f"memory available.")

    def events():
        return [e["message"] for e in ecs.describe_services(services=["s"])["services"][0]["events"]]
    tk.poll_until(lambda: any(m.startswith(want) for m in events()), 30, "the placement event")
    tk.poll_until(lambda: len(ecs.list_tasks()["taskArns"]) == 2, 30, "two tasks")
    assert sum(m.startswith(want) for m in events()) == 1, events()
    # Scaled to what fits, it settles.
    ecs.update_service(service="s", desiredCount=2)
    ecs.get_waiter("services_stable").wait(services=["s"], WaiterConfig={"Delay": 1,
                                                                        "MaxAttempts": 60})
    arns = ecs.list_tasks()["taskArns"]
    ecs.update_service(service="s", desiredCount=0)
    ecs.delete_service(service="s")
    wait_stopped(ecs, arns)


# ---- logs ----

def test_log_rotation_is_clamped_to_the_operator_maxima(start):
    """The definition asks for 1m × 5; the operator allows 4k × 2: about
    8 KiB of a 200 KiB output stays on disk."""
    d, ecs = start("--log-max-size", "4k", "--log-max-file", "2")
    td = register(ecs, d, [sh("chatty", "i=0; while [ $i -lt 4000 ]; do "
                              "echo line-$i-0123456789012345678901234567890123456789; "
                              "i=$((i+1)); done", logConfiguration={
                                  "logDriver": "json-file",
                                  "options": {"max-size": "1m", "max-file": "5"}})])
    (t,) = run(ecs, td)
    (t,) = wait_stopped(ecs, [t["taskArn"]])
    assert t["containers"][0]["exitCode"] == 0, t
    files = tk.log_files(d.logs / t["taskArn"].rsplit("/", 1)[1], "chatty")
    sizes = [f.stat().st_size for f in files]
    assert 1 <= len(files) <= 2 and all(s <= 4000 + 200 for s in sizes), sizes
    # The newest lines are the ones kept.
    assert "line-3999-" in files[-1].read_text()


# ---- disk ----

def test_task_over_its_ephemeral_storage_is_stopped(start):
    """Accounting (docs/security.md): a task whose writable layers grow
    past its ephemeral storage (a test-sized default here) is stopped with
    a reason that says so; a task within it keeps running; the daemon's
    database still writes."""
    d, ecs = start("--default-ephemeral-storage", "20", "--disk-check-interval", "200ms")
    small = register(ecs, d, [sh("small", "dd if=/dev/zero of=/tmp/f bs=1M count=5 2>/dev/null;"
                                 " echo wrote; " + tk.IDLE, stopTimeout=2)], family="small")
    (a,) = run(ecs, small)
    tk.poll_until(lambda: "wrote" in log_lines(d, a, "small"), 30, "the small write")
    big = register(ecs, d, [sh("big", "dd if=/dev/zero of=/tmp/f bs=1M count=64 2>/dev/null;"
                               " echo wrote; " + tk.IDLE, stopTimeout=2)], family="big")
    (b,) = run(ecs, big)
    (b,) = wait_stopped(ecs, [b["taskArn"]])
    assert b["stopCode"] == "TerminationNotice", b
    assert b["stoppedReason"].startswith("Task stopped: its containers' writable layers hold "), b
    assert b["stoppedReason"].endswith("MiB, over its ephemeral storage of 20 MiB"), b
    (a,) = ecs.describe_tasks(tasks=[a["taskArn"]])["tasks"]
    assert a["lastStatus"] == "RUNNING" and a["desiredStatus"] == "RUNNING", a
    # The store still takes writes.
    (c,) = run(ecs, register(ecs, d, [sh("after", "true")], family="after"))
    wait_stopped(ecs, [c["taskArn"]])
    stop_all(ecs)


def test_no_new_task_below_the_disk_reserve(start):
    d, ecs = start("--disk-reserve", "2000000000")
    td = register(ecs, d, [sh("app", "true")])
    out = ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG)
    assert out["tasks"] == [], out
    (f,) = out["failures"]
    assert f["reason"] == "RESOURCE:DISK" and f["arn"] == the_instance(ecs)["containerInstanceArn"]
    assert "MiB free, below the 2000000000 MiB the daemon keeps for its store and database " \
           "(--disk-reserve)" in f["detail"], f
    assert ecs.list_tasks()["taskArns"] == []
