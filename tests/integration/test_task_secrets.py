"""Container `secrets`: values put with boto3 into the daemon's SSM and
Secrets Manager become a real task's environment variables (by parameter
name, parameter ARN, secret ARN, ECS's json-key / version-stage /
version-id form), and appear nowhere else: not in DescribeTasks, `berth
inspect`, the daemon's log, the shim's log, the run dir or the plan file
(0600, without them; the shim's start plan that has them is removed once
the shim has read it).  A secret that
cannot be read stops the task with ECS's ResourceInitializationError."""
import json
import os
import subprocess
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from fixtures import tasks as tk
from test_api_clusters import ACCOUNT, BERTH_BIN, REGION, make_client
from test_api_secrets import client
from test_api_tasks import (describe, ecs, log_lines, register, run, sh,  # noqa: F401
                            task_id, tdaemon, tmp_tasks, wait_stopped)

PULL = ("ResourceInitializationError: unable to pull secrets or registry auth: "
        "execution resource retrieval failed: ")
VALUES = {
    "DB_PASSWORD": "ssm-secure-5be1c7d2",
    "PLAIN": "ssm-plain-0a9e44f1",
    "API_TOKEN": "sm-json-key-77c0e1a3",
    "API_KEY": "sm-whole-d41c9b02",
    "PREVIOUS": "sm-previous-3f6a8e90",
    "BY_NAME": "sm-by-name-c2d7a615",
    "BY_VERSION": "sm-by-version-e8b14a07",
}


def files_under(*roots):
    for root in roots:
        for dirpath, dirs, names in os.walk(root):
            for n in names:
                p = Path(dirpath) / n
                if p.is_file() and not p.is_symlink():
                    yield p


def leaks(paths):
    """(path, name) for every file in PATHS that holds a value."""
    out = []
    for p in paths:
        try:
            data = p.read_bytes()
        except OSError:
            continue
        out += [(str(p), k) for k, v in VALUES.items() if v.encode() in data]
    return out


def put_values(d):
    ssm, sm = client(d, "ssm"), client(d, "secretsmanager")
    ssm.put_parameter(Name="/app/db/password", Value=VALUES["DB_PASSWORD"], Type="SecureString")
    ssm.put_parameter(Name="plain", Value=VALUES["PLAIN"], Type="String")
    api = sm.create_secret(Name="app/api", SecretString=json.dumps(
        {"token": VALUES["API_TOKEN"], "user": "bob"}))["ARN"]
    key = sm.create_secret(Name="app/key", SecretString=VALUES["PREVIOUS"])["ARN"]
    sm.put_secret_value(SecretId=key, SecretString=VALUES["API_KEY"])
    sm.create_secret(Name="by-name-only", SecretString=VALUES["BY_NAME"])
    ver = sm.create_secret(Name="app/ver", SecretString=VALUES["BY_VERSION"])
    sm.put_secret_value(SecretId="app/ver", SecretString="a-later-value")
    return api, key, f"{ver['ARN']}:::{ver['VersionId']}"


def test_secrets_reach_the_environment_and_nowhere_else(ecs, tdaemon):
    api, key, by_version = put_values(tdaemon)
    secrets = [
        {"name": "BY_VERSION", "valueFrom": by_version},
        {"name": "DB_PASSWORD", "valueFrom": "/app/db/password"},
        {"name": "PLAIN", "valueFrom": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/plain"},
        {"name": "API_TOKEN", "valueFrom": f"{api}:token::"},
        {"name": "API_KEY", "valueFrom": key},
        {"name": "PREVIOUS", "valueFrom": f"{key}::AWSPREVIOUS:"},
        {"name": "BY_NAME", "valueFrom": "by-name-only"},
    ]
    # A secret wins over an environment entry of the same name.
    td = register(ecs, tdaemon, [sh("app", "env | sort; exec sleep 300", secrets=secrets,
                                    environment=[{"name": "PLAIN", "value": "not-this"}])])
    (t0,) = run(ecs, td)
    arn = t0["taskArn"]

    def env_lines():
        lines = log_lines(tdaemon, t0, "app")
        return lines if any(x.startswith("PREVIOUS=") for x in lines) else None
    lines = tk.poll_until(env_lines, 60 * tk.SLOWDOWN, "the task's env in its log")
    env = dict(x.split("=", 1) for x in lines if "=" in x)
    for k, v in VALUES.items():
        assert env.get(k) == v, (k, env.get(k))

    # (The container can print before the task is recorded RUNNING.)
    t = tk.poll_until(lambda: (lambda t: t["lastStatus"] == "RUNNING" and t)(describe(ecs, arn)),
                      30 * tk.SLOWDOWN, "the task RUNNING")
    # Not in the API's answers, nor `berth inspect`.
    answers = json.dumps(ecs.describe_tasks(tasks=[arn]), default=str)
    answers += json.dumps(ecs.list_tasks(), default=str)
    answers += json.dumps(ecs.describe_task_definition(taskDefinition=td), default=str)
    inspect = subprocess.run([BERTH_BIN, "--socket", str(tdaemon.sock), "inspect", task_id(t)],
                             capture_output=True, text=True, timeout=30)
    assert inspect.returncode == 0, inspect.stderr
    for v in VALUES.values():
        assert v not in answers and v not in inspect.stdout
    # The plan file: 0600, root's, in a 0700 directory, without the values.
    task_dir = tdaemon.root / "tasks" / task_id(t)
    plan = task_dir / "plan.json"
    st = plan.stat()
    assert (st.st_mode & 0o777) == 0o600 and st.st_uid == 0, oct(st.st_mode)
    assert (task_dir.stat().st_mode & 0o077) == 0
    assert "DB_PASSWORD" not in plan.read_text()
    # The plan the shim started from, with the values, is gone.
    assert not (task_dir / "start-plan.json").exists()
    # Not in the run dir, the task's files, the logs (but the container's
    # own output, which printed them), the daemon's log.
    own_log = tdaemon.logs / task_id(t) / "app.log"
    paths = [p for p in files_under(tdaemon.run, tdaemon.root / "tasks", tdaemon.logs)
             if p != own_log]
    assert plan in paths
    assert leaks(paths + [tdaemon.stderr_path]) == []

    ecs.stop_task(task=arn)
    wait_stopped(ecs, [arn])
    assert leaks(list(files_under(tdaemon.run, tdaemon.root / "tasks")) +
                 [tdaemon.stderr_path]) == []


def stop_reason(ecs, d, secrets):
    td = register(ecs, d, [sh("app", "exec sleep 300", secrets=secrets)], family="broken")
    (t0,) = run(ecs, td)
    (t,) = wait_stopped(ecs, [t0["taskArn"]])
    assert t["stopCode"] == "TaskFailedToStart", t
    assert "startedAt" not in t and "pullStartedAt" in t, t
    return t["stoppedReason"]


def test_a_secret_that_cannot_be_read_stops_the_task_with_ecs_reason(ecs, tdaemon):
    api, _, _ = put_values(tdaemon)
    assert stop_reason(ecs, tdaemon, [{"name": "X", "valueFrom": "/no/such"}]) == (
        PULL + "unable to retrieve secrets from ssm: invalid parameters: /no/such")
    gone = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:gone-AbCdEf"
    assert stop_reason(ecs, tdaemon, [{"name": "X", "valueFrom": gone}]) == (
        PULL + f"unable to retrieve secret from asm: failed to fetch secret {gone} from "
        "secrets manager: ResourceNotFoundException: Secrets Manager can't find the "
        "specified secret.")
    assert stop_reason(ecs, tdaemon, [{"name": "X", "valueFrom": f"{api}:nokey::"}]) == (
        PULL + f"unable to retrieve secret from asm: retrieved secret {api} from Secrets "
        "Manager did not contain json key nokey")
    assert stop_reason(ecs, tdaemon, [{"name": "X", "valueFrom": f"{api}::NOSTAGE:"}]) == (
        PULL + f"unable to retrieve secret from asm: failed to fetch secret {api} from "
        "secrets manager: ResourceNotFoundException: Secrets Manager can't find the "
        "specified secret value for staging label: NOSTAGE")
    # One good secret and one missing: the task still does not start.
    assert stop_reason(ecs, tdaemon, [{"name": "A", "valueFrom": "plain"},
                                      {"name": "B", "valueFrom": "/missing"}]).endswith(
        "invalid parameters: /missing")


@pytest.mark.parametrize("value_from, why", [
    ("arn:aws:s3:::bucket/key", "secrets come from ssm parameters or secretsmanager"),
    (f"arn:aws:ssm:{REGION}:{ACCOUNT}:document/x", "an SSM ARN is"),
    (f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:n:k:s:v:extra", "at most"),
    ("arn:aws:ssm", "not an ARN"),
])
def test_register_refuses_a_value_from_berth_cannot_read(ecs, tdaemon, value_from, why):
    with pytest.raises(ClientError) as e:
        register(ecs, tdaemon, [sh("app", "true", secrets=[{"name": "S",
                                                           "valueFrom": value_from}])])
    err = e.value.response["Error"]
    assert err["Code"] == "ClientException" and why in err["Message"], err
    assert "containerDefinitions[0].secrets[0]" in err["Message"]


def test_register_refuses_a_secret_name_that_is_no_variable_name(ecs, tdaemon):
    with pytest.raises(ClientError) as e:
        register(ecs, tdaemon, [sh("app", "true", secrets=[{"name": "A=B",
                                                           "valueFrom": "/x"}])])
    assert e.value.response["Error"]["Code"] == "ClientException"


def test_a_restarted_daemon_removes_a_start_plan_its_predecessor_left(ecs, tdaemon):
    """The daemon dies between writing the start plan and removing it: the
    next one removes it before anything else, and the task runs on."""
    put_values(tdaemon)
    td = register(ecs, tdaemon, [sh("app", "exec sleep 300", secrets=[
        {"name": "DB_PASSWORD", "valueFrom": "/app/db/password"}])], family="left")
    (t0,) = run(ecs, td)
    arn = t0["taskArn"]
    tk.poll_until(lambda: describe(ecs, arn)["lastStatus"] == "RUNNING", 60 * tk.SLOWDOWN,
                  "the task to run")
    tdaemon.proc.kill()
    tdaemon.proc.wait()
    # What a death at the wrong moment leaves: the start plan, values and all.
    left = tdaemon.root / "tasks" / task_id(t0) / "start-plan.json"
    left.write_text(json.dumps({"DB_PASSWORD": VALUES["DB_PASSWORD"]}))
    left.chmod(0o600)
    d2 = tdaemon.restart("daemon2").wait_ready()
    tdaemon.__dict__.update(d2.__dict__)      # the fixture stops the new one
    assert not left.exists()
    ecs2 = make_client(d2)
    assert describe(ecs2, arn)["lastStatus"] == "RUNNING"
    assert leaks(list(files_under(d2.run, d2.root / "tasks"))) == []
    ecs2.stop_task(task=arn)
    wait_stopped(ecs2, [arn])
