"""The AWS SDK for JavaScript v3 (`@aws-sdk/client-ecs`, installed by `make
deps` with `npm ci` from tests/js/package-lock.json) as a second client,
independent of botocore: its own request serializer, response parser, SigV4
signer, error classes and waiters.  tests/js/ecs_flow.mjs runs the main
flows against a real task daemon (clusters, task definitions, tasks with the
running/stopped waiters, a service with the stable/inactive waiters, tags,
errors) and prints what it saw; this file checks it."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures import tasks as tk
from test_api_clusters import AKID, ACCOUNT, REGION, SECRET
# The task daemon fixtures of test_api_tasks.py (pytest finds them by name).
from test_api_tasks import image, tdaemon, tmp_tasks  # noqa: F401

JS = Path(__file__).resolve().parents[1] / "js"


def run_flow(d):
    node = shutil.which("node")
    assert node, "node is missing: `make deps` installs it"
    assert (JS / "node_modules/@aws-sdk/client-ecs").is_dir(), \
        "the JavaScript SDK is missing: `make deps` runs npm ci in tests/js"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(d.tmp),
           "BERTH_ENDPOINT": d.endpoint, "AWS_REGION": REGION, "BERTH_AKID": AKID,
           "BERTH_SECRET": SECRET, "BERTH_IMAGE": image(d, "busybox"),
           "BERTH_SUBNET": "subnet-0berthjs", "AWS_EC2_METADATA_DISABLED": "true"}
    p = subprocess.run([node, str(JS / "ecs_flow.mjs")], capture_output=True, text=True,
                       env=env, cwd=JS, timeout=300 * tk.SLOWDOWN)
    assert p.returncode == 0, f"node exited {p.returncode}:\n{p.stderr}\n{d.stderr()}"
    return json.loads(p.stdout)


def test_main_flows_through_the_js_sdk(tdaemon, task_net):
    out = run_flow(tdaemon)
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}"
    assert out["createCluster"] == {"arn": f"{arn}:cluster/jsflow", "status": "ACTIVE"}
    assert out["describeClusters"]["names"] == ["jsflow"]
    assert out["describeClusters"]["tags"] == [{"key": "team", "value": "js"}]
    assert out["describeClusters"]["failures"] == [
        {"arn": f"{arn}:cluster/nosuch", "reason": "MISSING"}]
    assert f"{arn}:cluster/jsflow" in out["listClusters"]

    assert out["register"] == {"arn": f"{arn}:task-definition/jsapp:1", "revision": 1,
                               "status": "ACTIVE", "registeredAt": True}
    assert out["describeTaskDefinition"]["container"] == "main"

    assert out["runTask"] == {"failures": [], "lastStatus": "PROVISIONING"}
    assert out["waitRunning"] == "SUCCESS" and out["waitStopped"] == "SUCCESS"
    t = out["describeTasks"]
    assert t["lastStatus"] == "RUNNING" and t["startedAt"] and t["containers"] == ["RUNNING"]
    assert t["eni"].startswith(task_net.subnet.rsplit(".", 2)[0])
    assert len(out["listTasks"]) == 1
    assert out["stopped"] == {"stopCode": "UserInitiated", "stoppedReason": "js says stop",
                              "stoppedAt": True}

    assert out["createService"] == {"status": "ACTIVE", "desired": 1}
    assert out["waitStable"] == "SUCCESS" and out["waitInactive"] == "SUCCESS"
    # Stable is one deployment at its desired count; its rollout may still
    # be IN_PROGRESS then, as on ECS.
    svc = out["describeServices"]
    assert svc["running"] == 1 and len(svc["deployments"]) == 1 and svc["events"], svc
    assert out["tags"] == [{"key": "env", "value": "test"}]

    e = out["errors"]
    assert e["unknownTaskDefinition"]["name"] == "ClientException"
    assert e["unknownTaskDefinition"]["status"] == 400
    assert e["unknownCluster"]["name"] == "ClusterNotFoundException"
    assert e["unknownCluster"]["fault"] == "client"
    assert e["badFamily"]["name"] == "ClientException", e["badFamily"]
    assert e["wrongSecret"]["status"] == 403
    assert e["wrongSecret"]["name"] == "InvalidSignatureException"
    assert out["deleteCluster"] == "INACTIVE"
