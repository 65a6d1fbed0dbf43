"""Group commit through the API: many writes at once share transactions and
fsyncs, yet every write the daemon answered survives a kill -9, and the
calls that fail among them take nothing of their neighbours' with them."""
import threading
from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import ClientError

from test_api_clusters import make_client
from test_api_tasks import (  # noqa: F401  (fixtures)
    IDLE, ecs, register, run, sh, tdaemon, tmp_tasks, wait_running, wait_stopped)

WORKERS = 24


def call_all(d, calls):
    """CALLS, a list of (name, fn(client)), made at once from WORKERS
    threads each with its own connection; {name: answer or ClientError}."""
    start = threading.Barrier(min(WORKERS, len(calls)))
    local = threading.local()

    def one(item):
        name, fn = item
        if not hasattr(local, "ecs"):
            local.ecs = make_client(d)
            start.wait(timeout=30)
        try:
            return name, fn(local.ecs)
        except ClientError as e:
            return name, e

    with ThreadPoolExecutor(WORKERS) as pool:
        return dict(pool.map(one, calls))


def test_answered_writes_survive_kill9_and_failures_stay_alone(ecs, tdaemon):
    td = register(ecs, tdaemon, [sh("app", IDLE, stopTimeout=2)], family="grouped")
    victims = [t["taskArn"] for t in run(ecs, td, count=6)]
    cluster = ecs.describe_clusters()["clusters"][0]["clusterArn"]

    calls = []
    for i in range(8):
        calls.append((f"run{i}", lambda c: run(c, td)))
    for i, arn in enumerate(victims):
        calls.append((f"stop{i}", lambda c, arn=arn: c.stop_task(task=arn, reason="grouped")))
    for i in range(24):
        calls.append((f"tag{i}", lambda c, i=i: c.tag_resource(
            resourceArn=cluster, tags=[{"key": f"k{i}", "value": f"v{i}"}])))
    # Failing calls among them: refused before writing, refused by the
    # store's own all-or-nothing check, and a task that is not there.
    for i in range(6):
        calls.append((f"bad-key{i}", lambda c: c.tag_resource(
            resourceArn=cluster, tags=[{"key": "aws:reserved", "value": "x"}])))
        calls.append((f"too-many{i}", lambda c, i=i: c.tag_resource(
            resourceArn=cluster, tags=[{"key": f"many{i}-{j}", "value": "x"} for j in range(51)])))
        calls.append((f"no-task{i}", lambda c: c.stop_task(task="0" * 32)))
    answers = call_all(tdaemon, calls)
    # Killed as soon as the last answer is in: no clean shutdown commits
    # anything for it.
    tdaemon.proc.kill()
    tdaemon.proc.wait()

    for name, a in answers.items():
        if name.startswith(("bad-key", "too-many", "no-task")):
            assert isinstance(a, ClientError), (name, a)
        else:
            assert not isinstance(a, ClientError), (name, a.response)

    d2 = tdaemon.restart("daemon2").wait_ready()
    tdaemon.__dict__.update(d2.__dict__)      # the fixture cleans up the new one
    ecs2 = make_client(d2)
    tags = {t["key"]: t["value"] for t in ecs2.list_tags_for_resource(resourceArn=cluster)["tags"]}
    assert tags == {f"k{i}": f"v{i}" for i in range(24)}, tags

    started = [answers[f"run{i}"][0]["taskArn"] for i in range(8)]
    known = ecs2.list_tasks()["taskArns"] + ecs2.list_tasks(desiredStatus="STOPPED")["taskArns"]
    assert set(started) <= set(known), set(started) - set(known)
    for chunk in (started, victims):
        for t in ecs2.describe_tasks(tasks=chunk)["tasks"]:
            if t["taskArn"] in victims:
                assert t["desiredStatus"] == "STOPPED" and t["stoppedReason"] == "grouped", t
            else:
                assert t["desiredStatus"] == "RUNNING", t
    # The tasks RunTask answered for run, launched before the kill or
    # after the restart.
    for arn in started:
        assert wait_running(ecs2, arn)["lastStatus"] == "RUNNING"
    for arn in started:
        ecs2.stop_task(task=arn)
    wait_stopped(ecs2, started + victims)
