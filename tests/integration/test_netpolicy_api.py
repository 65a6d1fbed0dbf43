"""Security groups through the ECS API (docs/networking.md "Network
policy"): RunTask's and a service's awsvpcConfiguration.securityGroups
reach the task's network policy; a task without groups is in its
cluster's default group.
The daemon, its test network and the probes are those of test_api_tasks.py
and test_netpolicy.py; nothing leaves the test subnet."""
import subprocess

import pytest
from botocore.exceptions import ClientError

from fixtures import tasks as tk
from test_api_clusters import make_client
from test_api_tasks import (NETCFG, TaskDaemon, describe, ecs, eni_detail,  # noqa: F401
                            register, run, sh, task_id, tdaemon, tmp_tasks, wait_running,
                            wait_stopped)
from test_netpolicy import IDLE, WEB, connect_from
from test_services import create, running_tasks, sdaemon, stable  # noqa: F401


def netcfg(*groups):
    vpc = dict(NETCFG["awsvpcConfiguration"])
    if groups:
        vpc["securityGroups"] = list(groups)
    return {"awsvpcConfiguration": vpc}


def start(ecs, d, td, *groups):
    (t,) = run(ecs, td, networkConfiguration=netcfg(*groups))
    t = wait_running(ecs, t["taskArn"])
    assert t["lastStatus"] == "RUNNING", t
    return t, d.run / "netns" / task_id(t), eni_detail(t, "privateIPv4Address")


def test_run_task_security_groups_decide_which_tasks_talk(ecs, tdaemon):
    web_td = register(ecs, tdaemon, [sh("web", WEB, stopTimeout=2)], family="web")
    idle_td = register(ecs, tdaemon, [sh("idle", IDLE, stopTimeout=2)], family="idle")
    web, _, web_ip = start(ecs, tdaemon, web_td, "sg-web")
    plain, _, plain_ip = start(ecs, tdaemon, web_td)
    same, same_ns, _ = start(ecs, tdaemon, idle_td, "sg-db", "sg-web")
    other, other_ns, _ = start(ecs, tdaemon, idle_td)

    def up(ns, ip):
        return lambda: connect_from(ns, ip, 8080) == "connected"
    tk.poll_until(up(same_ns, web_ip), 20, "sg-web task reaching the sg-web httpd")
    assert connect_from(other_ns, web_ip, 8080) == "dropped", "default group → sg-web"
    assert connect_from(same_ns, plain_ip, 8080) == "dropped", "sg-web → default group"
    tk.poll_until(up(other_ns, plain_ip), 20, "default group to default group")
    # The groups are shown with the task's network interface.
    assert eni_detail(web, "securityGroups") == "sg-web"
    assert eni_detail(same, "securityGroups") == "sg-db,sg-web"
    assert eni_detail(other, "securityGroups") == "default:default"
    arns = [t["taskArn"] for t in (web, plain, same, other)]
    for a in arns:
        ecs.stop_task(task=a)
    wait_stopped(ecs, arns)


@pytest.mark.parametrize("groups", [
    ["sg-1", "sg-2", "sg-3", "sg-4", "sg-5", "sg-6"], ["sg-1,sg-2"], [""], ["sg 1"]])
def test_run_task_refuses_bad_security_groups(ecs, tdaemon, groups):
    td = register(ecs, tdaemon, [sh("idle", IDLE)])
    with pytest.raises(ClientError) as e:
        ecs.run_task(taskDefinition=td, networkConfiguration={"awsvpcConfiguration": {
            "subnets": ["subnet-0berthtest"], "securityGroups": groups}})
    assert e.value.response["Error"]["Code"] == "InvalidParameterException", e.value.response
    assert "securityGroups" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError, match="ClusterNotFound"):
        ecs.list_tasks()           # refused before anything was made


def test_service_tasks_get_the_service_security_groups(sdaemon):
    ecs = make_client(sdaemon)
    ecs.create_cluster()
    td = register(ecs, sdaemon, [sh("idle", IDLE, stopTimeout=2)], family="svc")
    create(ecs, td, name="grouped", count=1, networkConfiguration=netcfg("sg-svc"))
    stable(ecs, "grouped")
    (t,) = running_tasks(ecs, "grouped")
    assert eni_detail(t, "securityGroups") == "sg-svc"


def test_daemon_blocked_addresses_option(tmp_tasks, task_net):
    """--blocked-addresses replaces the default list in the rules; a bad
    list stops the start with its reason, before anything is made."""
    d = TaskDaemon(tmp_tasks, task_net, ["--blocked-addresses", "192.0.2.7, 198.51.100.0/24"],
                   name="blocking").wait_ready()
    try:
        out = subprocess.run(["nft", "list", "set", "bridge", task_net.nft_table, "blocked"],
                             capture_output=True, text=True).stdout
        assert "192.0.2.7" in out and "198.51.100.0/24" in out, out
        assert "169.254.169.254" not in out, out
    finally:
        d.stop()
    bad = TaskDaemon(tmp_tasks, task_net, ["--blocked-addresses", "10.0.0.1/33"], name="bad")
    assert bad.proc.wait(timeout=30) != 0
    bad._stderr.close()
    assert '"10.0.0.1/33"' in bad.stderr(), bad.stderr()
