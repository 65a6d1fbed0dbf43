"""`berth service create|update|ls|inspect|rm|events` (docs/cli.md) against
a real daemon: test_services.py's `sdaemon` (tasks count as healthy after
1 s RUNNING) runs the services' tasks for real, and checks afterwards that
nothing of them is left on the host.  The CLI runs as its own process with
`--socket` pointing at the daemon, and under the ASan build its stderr must
carry no sanitizer report (test_cli_tasks.py's Cli).  Error and usage cases
that start no task use test_api_clusters.py's plain daemon."""
import json
import re
import signal
import subprocess
from pathlib import Path

import pytest

from fixtures import tasks as tk
from test_api_clusters import daemon, make_client, raw, tmpdir_short  # noqa: F401
from test_api_tasks import IDLE, register, sh, tmp_tasks  # noqa: F401
from test_cli_tasks import Cli, finish, td_arn
from test_services import sdaemon  # noqa: F401

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
EVENT_LINE = re.compile(rf"^({TIME})  (\(service [^)]+\) .*)$")
LS_HEAD = ["NAME", "STATUS", "DESIRED", "RUNNING", "PENDING", "TASK", "DEFINITION", "ROLLOUT"]


@pytest.fixture
def svc_cli(sdaemon):
    """Cli of sdaemon; .ecs is a boto3 client of it, .td(…) registers."""
    c = Cli(sdaemon.sock, sdaemon.logs)
    c.daemon, c.ecs = sdaemon, make_client(sdaemon)
    # A stop can land before the script's trap (a service removed right
    # after its create): a short stopTimeout keeps that SIGKILL quick.
    c.td = lambda script=IDLE, family="web": register(
        c.ecs, sdaemon, [sh("app", script, stopTimeout=2)], family=family)
    return c


def inspect(c, name="web"):
    rc, out, err = c("service", "inspect", name)
    assert rc == 0, err
    return json.loads(out)


def settled(c, name="web", count=None, td=None, timeout=60):
    """The service once its rollout is COMPLETED with one deployment (of
    td, with count tasks RUNNING, when given) and its newest event is the
    steady state (a scale-up leaves the rollout COMPLETED, and the event
    comes once the new tasks are healthy)."""
    def ok():
        s = inspect(c, name)
        deps = s["deployments"]
        steady = s["events"] and s["events"][0]["message"].endswith("reached a steady state.")
        return (len(deps) == 1 and deps[0]["rolloutState"] == "COMPLETED" and steady and
                (count is None or s["runningCount"] == count == s["desiredCount"]) and
                (td is None or s["taskDefinition"] == td)) and s
    return tk.poll_until(ok, timeout, f"service {name} to settle", interval=0.2)


def ls_rows(c):
    rc, out, err = c("service", "ls")
    assert rc == 0, err
    head, *rows = out.splitlines()
    assert head.split() == LS_HEAD
    return [r.split() for r in rows]


def event_lines(c, *args, name="web"):
    rc, out, err = c("service", "events", *args, name)
    assert rc == 0, err
    lines = out.splitlines()
    for line in lines:
        assert EVENT_LINE.match(line), line
    return lines


def service_tasks(c, name="web", status="RUNNING"):
    return c.ecs.list_tasks(serviceName=name, desiredStatus=status)["taskArns"]


# ---- the life of a service ----

def test_create_ls_inspect_scale_events_rm(svc_cli):
    c = svc_cli
    td = c.td()
    # No default cluster yet: nothing listed, and create makes the cluster.
    assert ls_rows(c) == []
    assert c.json("service", "ls") == []
    assert c("service", "create", "web", "--task-definition", "web", "--desired-count", "2") == \
        (0, "web\n", "")
    s = settled(c, count=2)
    assert s["taskDefinition"] == td and s["status"] == "ACTIVE"
    assert s["deploymentConfiguration"]["maximumPercent"] == 200
    assert s["deploymentConfiguration"]["minimumHealthyPercent"] == 100
    assert "deploymentCircuitBreaker" not in s["deploymentConfiguration"]
    assert s["networkConfiguration"] == {"awsvpcConfiguration": {"subnets": ["subnet-berth"]}}
    assert ls_rows(c) == [["web", "ACTIVE", "2", "2", "0", "web:1", "COMPLETED"]]
    (listed,) = c.json("service", "ls")
    assert listed["serviceArn"] == s["serviceArn"] and listed["desiredCount"] == 2
    # The ARN names the same service.
    assert inspect(c, s["serviceArn"])["serviceName"] == "web"

    # Scale up: the primary deployment resizes, no new one.
    assert c("service", "update", "web", "--desired-count", "3") == (0, "web\n", "")
    s = settled(c, count=3)
    assert len(service_tasks(c)) == 3

    # Events: oldest first, like a log; -n keeps the last ones; json alike.
    lines = event_lines(c)
    msgs = [EVENT_LINE.match(ln).group(2) for ln in lines]
    assert msgs == [e["message"] for e in reversed(s["events"])]
    assert msgs[0].startswith("(service web) has started 2 tasks: (task ")
    assert "(service web) has reached a steady state." in msgs
    times = [EVENT_LINE.match(ln).group(1) for ln in lines]
    assert times == sorted(times)
    assert event_lines(c, "-n", "2") == lines[-2:]
    assert event_lines(c, "-n", "0") == []
    evs = c.json("service", "events", "web")
    assert [e["id"] for e in evs] == [e["id"] for e in reversed(s["events"])]
    assert c.json("service", "events", "--tail", "1", "web") == evs[-1:]

    # rm: refused while scaled above 0 (the daemon's words, and what to do).
    rc, out, err = c("service", "rm", "web")
    assert (rc, out) == (1, "")
    assert err.startswith("berth: service web: DeleteService: InvalidParameterException: "
                          "The service cannot be stopped while it is scaled above 0."), err
    assert "--force" in err and len(err.splitlines()) == 1
    arns = service_tasks(c)
    assert c("service", "rm", "--force", "web") == (0, "web\n", "")
    tk.poll_until(lambda: inspect(c)["status"] == "INACTIVE", 30, "the service INACTIVE")
    assert service_tasks(c) == []
    for t in c.ecs.describe_tasks(tasks=arns)["tasks"]:
        assert t["lastStatus"] == "STOPPED" and t["stopCode"] == "ServiceSchedulerInitiated", t
    assert ls_rows(c) == []
    # INACTIVE stays describable, but is gone for update and rm.
    assert inspect(c)["desiredCount"] == 0
    assert c("service", "update", "web", "--desired-count", "1") == \
        (1, "", "berth: service web not found\n")
    assert c("service", "rm", "-f", "web") == (1, "", "berth: service web not found\n")


def test_bounds_new_revision_breaker_and_json(svc_cli):
    c = svc_cli
    rev1 = c.td()
    s = c.json("service", "create", "web", "--task-definition", "web:1", "--desired-count", "2",
               "--min-healthy", "50", "--max-percent", "150", "--circuit-breaker",
               "--grace-period", "5")
    assert s["serviceName"] == "web" and s["status"] == "ACTIVE" and s["taskDefinition"] == rev1
    assert s["deploymentConfiguration"] == {
        "minimumHealthyPercent": 50, "maximumPercent": 150,
        "deploymentCircuitBreaker": {"enable": True, "rollback": False}}
    assert s["healthCheckGracePeriodSeconds"] == 5
    first = settled(c, count=2)["deployments"][0]["id"]

    # A new revision (the bare family: its latest) rolls out and completes.
    rev2 = c.td("echo v2; " + IDLE)
    s = c.json("service", "update", "web", "--task-definition", "web")
    assert s["taskDefinition"] == rev2 and len(s["deployments"]) == 2
    s = settled(c, count=2, td=rev2)
    assert s["deployments"][0]["id"] != first
    assert ls_rows(c) == [["web", "ACTIVE", "2", "2", "0", "web:2", "COMPLETED"]]
    running = c.ecs.describe_tasks(tasks=service_tasks(c))["tasks"]
    assert {t["taskDefinitionArn"] for t in running} == {rev2}
    assert any(ln.endswith("deployment completed.") for ln in event_lines(c))

    # The bounds change one at a time: the rest of the configuration stays.
    assert c("service", "update", "web", "--circuit-breaker=rollback") == (0, "web\n", "")
    assert inspect(c)["deploymentConfiguration"] == {
        "minimumHealthyPercent": 50, "maximumPercent": 150,
        "deploymentCircuitBreaker": {"enable": True, "rollback": True}}
    assert c("service", "update", "web", "--no-circuit-breaker", "--max-percent", "200") == \
        (0, "web\n", "")
    assert inspect(c)["deploymentConfiguration"] == {
        "minimumHealthyPercent": 50, "maximumPercent": 200,
        "deploymentCircuitBreaker": {"enable": False, "rollback": False}}

    # --force-new-deployment: a new deployment of the same revision.
    before = inspect(c)["deployments"][0]["id"]
    assert c("service", "update", "web", "--force-new-deployment") == (0, "web\n", "")
    s = settled(c, count=2, td=rev2)
    assert s["deployments"][0]["id"] != before
    s = c.json("service", "rm", "--force", "web")
    assert s["status"] == "DRAINING" and s["desiredCount"] == 0
    tk.poll_until(lambda: service_tasks(c) == [], 30, "the service's tasks to stop")


def test_daemon_strategy_needs_no_count(svc_cli):
    c = svc_cli
    c.td()
    rc, out, err = c("service", "create", "d", "--task-definition", "web",
                     "--scheduling-strategy", "daemon")
    assert (rc, out) == (0, "d\n"), err
    s = settled(c, "d", count=1)
    assert s["schedulingStrategy"] == "DAEMON"
    # DAEMON needs no force to go (ECS's rule).
    assert c("service", "rm", "d") == (0, "d\n", "")
    tk.poll_until(lambda: inspect(c, "d")["status"] == "INACTIVE", 30, "the service INACTIVE")


def test_events_follow(svc_cli):
    """-f prints each event once, as it comes, and ends by itself when the
    service is INACTIVE; json -f prints one event object a line."""
    c = svc_cli
    c.td()
    assert c("service", "create", "web", "--task-definition", "web", "--desired-count", "1")[0] == 0
    plain = c.popen("service", "events", "-f", "web")
    js = c.popen("--output", "json", "service", "events", "-f", "web")
    try:
        settled(c, count=1)
        assert c("service", "rm", "--force", "web")[0] == 0
        rc, out, err = finish(plain, timeout=60)
        assert rc == 0, err
        rc, jout, err = finish(js, timeout=60)
        assert rc == 0, err
    finally:
        for p in (plain, js):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert inspect(c)["status"] == "INACTIVE"
    final = list(reversed(inspect(c)["events"]))
    lines = out.splitlines()
    assert [EVENT_LINE.match(ln).group(2) for ln in lines] == [e["message"] for e in final]
    evs = [json.loads(ln) for ln in jout.splitlines()]
    assert [e["id"] for e in evs] == [e["id"] for e in final]
    msgs = [e["message"] for e in evs]
    assert msgs[0].startswith("(service web) has started 1 tasks: "), msgs
    assert "(service web) has reached a steady state." in msgs


def test_events_follow_ends_on_ctrl_c(svc_cli):
    c = svc_cli
    c.td()
    assert c("service", "create", "web", "--task-definition", "web", "--desired-count", "1")[0] == 0
    p = c.popen("service", "events", "-f", "web")
    try:
        # Its first line: it is following, with SIGINT in hand.
        assert "(service web) has started 1 tasks: " in p.stdout.readline()
        p.send_signal(signal.SIGINT)
        rc, out, err = finish(p, timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 130 and err == "", err
    assert c("service", "rm", "--force", "web") == (0, "web\n", "")
    tk.poll_until(lambda: service_tasks(c) == [], 30, "the service's tasks to stop")


# ---- errors (a daemon that runs no task) ----

@pytest.fixture
def cli(daemon):  # noqa: F811
    c = Cli(daemon.sock)
    c.daemon = daemon
    status, _ = raw(daemon, "RegisterTaskDefinition", {
        "family": "web", "networkMode": "awsvpc", "cpu": "256", "memory": "512",
        "containerDefinitions": [{"name": "app", "image": "busybox", "essential": True}]})
    assert status == 200
    return c


NOT_FOUND = [["inspect", "nope"], ["events", "nope"], ["events", "-f", "nope"],
             ["update", "nope", "--desired-count", "1"], ["update", "nope", "--max-percent", "150"],
             ["rm", "nope"], ["rm", "--force", "nope"]]


@pytest.mark.parametrize("args", NOT_FOUND, ids="-".join)
def test_unknown_service_is_not_found(cli, args):
    # Before the default cluster exists, and after.
    assert cli("service", *args) == (1, "", "berth: service nope not found\n")
    status, _ = raw(cli.daemon, "CreateCluster", {})
    assert status == 200
    assert cli("service", *args) == (1, "", "berth: service nope not found\n")


def test_daemon_errors_name_the_service(cli):
    rc, out, err = cli("service", "create", "x", "--task-definition", "nope", "--desired-count",
                       "1")
    assert (rc, out) == (1, "")
    assert err == ("berth: service x: CreateService: ClientException: Unable to describe task "
                   "definition nope.\n")
    assert cli("service", "create", "a", "--task-definition", "web", "--desired-count", "0") == \
        (0, "a\n", "")
    rc, out, err = cli("service", "create", "a", "--task-definition", "web", "--desired-count",
                       "0")
    assert err == ("berth: service a: CreateService: InvalidParameterException: Creation of "
                   "service was not idempotent.\n")
    rc, out, err = cli("service", "update", "a", "--max-percent", "5000")
    assert rc == 1 and err.startswith("berth: service a: UpdateService: "
                                      "InvalidParameterException: deploymentConfiguration."
                                      "maximumPercent"), err
    rc, out, err = cli("--cluster", "elsewhere", "service", "create", "a", "--task-definition",
                       "web", "--desired-count", "0")
    assert (rc, err) == (1, "berth: service a: CreateService: ClusterNotFoundException: "
                            "Cluster not found.\n")
    rc, out, err = cli("service", "ls", "--cluster", "elsewhere")
    assert (rc, err) == (1, "berth: ListServices: ClusterNotFoundException: Cluster not found.\n")
    # --cluster reaches every subcommand.
    status, _ = raw(cli.daemon, "CreateCluster", {"clusterName": "elsewhere"})
    assert status == 200
    assert cli("service", "create", "--cluster", "elsewhere", "b", "--task-definition", "web",
               "--desired-count", "0") == (0, "b\n", "")
    assert [s["serviceName"] for s in cli.json("--cluster", "elsewhere", "service", "ls")] == ["b"]
    assert [s["serviceName"] for s in cli.json("service", "ls")] == ["a"]
    assert cli("service", "inspect", "b")[2] == "berth: service b not found\n"
    assert cli("service", "--cluster", "elsewhere", "rm", "b") == (0, "b\n", "")
    assert cli("service", "rm", "a") == (0, "a\n", "")


def test_ls_describes_in_batches_of_ten(cli):
    for i in range(23):
        assert cli("service", "create", f"s{i:02}", "--task-definition", "web",
                   "--desired-count", "0")[0] == 0
    rows = ls_rows(cli)
    assert [r[0] for r in rows] == [f"s{i:02}" for i in range(23)]
    assert all(r[1:] == ["ACTIVE", "0", "0", "0", "web:1", r[6]] for r in rows), rows
    assert len(cli.json("service", "ls")) == 23
    for i in range(23):
        assert cli("service", "rm", f"s{i:02}")[0] == 0


@pytest.mark.parametrize("args", [
    [], ["bogus"], ["create"], ["create", "web"], ["create", "web", "--desired-count", "1"],
    ["create", "web", "--task-definition", "web"],
    ["create", "web", "--task-definition", "web", "--desired-count", "abc"],
    ["create", "web", "--task-definition", "web", "--desired-count", "-1"],
    ["create", "web", "--task-definition", "web", "--desired-count", "1", "--circuit-breaker=yes"],
    ["create", "web", "--task-definition", "web", "--desired-count", "1",
     "--scheduling-strategy", "FOO"],
    ["create", "web", "--task-definition", "web", "--desired-count", "1", "--no-circuit-breaker"],
    ["create", "a", "b", "--task-definition", "web", "--desired-count", "1"],
    ["update", "web"], ["update", "web", "--circuit-breaker", "--no-circuit-breaker"],
    ["update", "web", "--max-percent", "1.5"], ["update", "--desired-count", "1"],
    ["inspect"], ["inspect", "a", "b"], ["rm"], ["rm", "a", "b"], ["ls", "extra"],
    ["events"], ["events", "-n", "x", "web"], ["events", "web", "--bogus"],
], ids=lambda a: "-".join(a) or "none")
def test_usage_errors(cli, args):
    rc, out, err = cli("service", *args)
    assert rc == 2 and out == "" and "usage: berth service" in err, (rc, out, err)


def test_help(cli):
    rc, out, err = cli("service", "--help")
    assert rc == 0 and out.startswith("usage: berth service SUBCOMMAND")
    for sub in ("create", "update", "ls", "inspect", "rm", "events"):
        assert f"  {sub} " in out
    rc, out, err = cli("service", "create", "--help")
    assert rc == 0 and out.startswith("usage: berth service create NAME --task-definition")
    rc, out, err = cli("help")
    assert rc == 0 and "  service " in out


@pytest.mark.parametrize("args", [
    ["create", "web", "--task-definition", "web", "--desired-count", "1"],
    ["update", "web", "--desired-count", "1"], ["update", "web", "--max-percent", "100"],
    ["ls"], ["inspect", "web"], ["rm", "web"], ["events", "web"], ["events", "-f", "web"],
], ids="-".join)
def test_no_daemon_is_a_clear_error(tmpdir_short, args):  # noqa: F811
    sock = Path(tmpdir_short) / "none.sock"
    assert Cli(sock)("service", *args) == (
        1, "", f"berth: cannot reach the berth daemon at {sock}: No such file or directory\n")


def test_json_of_create_and_events_is_json(cli):
    s = cli.json("service", "create", "j", "--task-definition", "web", "--desired-count", "0")
    assert s["serviceArn"].endswith(":service/default/j") and s["desiredCount"] == 0
    assert s["taskDefinition"] == td_arn("web", 1)
    evs = cli.json("service", "events", "j")
    assert all(set(e) == {"id", "createdAt", "message"} for e in evs), evs
    assert [e["createdAt"] for e in evs] == sorted(e["createdAt"] for e in evs)
    assert cli.json("service", "update", "j", "--grace-period", "7")[
        "healthCheckGracePeriodSeconds"] == 7
    out = subprocess.run(cli.argv(["service", "inspect", "--output", "table", "j"]),
                         capture_output=True, text=True)
    assert json.loads(out.stdout)["serviceName"] == "j"   # inspect is always JSON
    assert cli.json("service", "rm", "j")["status"] in ("DRAINING", "INACTIVE")
