"""The task definition operations (RegisterTaskDefinition,
DescribeTaskDefinition, ListTaskDefinitions, ListTaskDefinitionFamilies,
DeregisterTaskDefinition, DeleteTaskDefinitions) against a real `berth
daemon`, with boto3, Debian's `aws` CLI and raw HTTP over the unix socket.

The daemon, the clients and the model validator are test_api_clusters.py's:
every answer is checked against botocore's ECS model.  Debian's botocore
(1.29) predates DeleteTaskDefinitions, so that operation is called raw and
its answer validated member by member against the model's TaskDefinition
and Failure shapes."""
import datetime
import json
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from test_api_clusters import (ACCOUNT, MODEL, REGION, UUID_RE, Daemon, aws_cli,  # noqa: F401
                               daemon, ecs, raw, tmpdir_short, unix_request, validate,
                               validate_response)

# The project's own corpus of task definitions in the shapes real users
# register (tests/fixtures/task-definitions/README.md).
CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "task-definitions"


def td_arn(family, rev):
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{rev}"


def corpus_files():
    files = sorted(CORPUS.glob("*.json"))
    if not files:
        pytest.fail(f"no task definitions in {CORPUS}")
    return files


def drop_nulls(v):
    """What a client can send: botocore refuses None members."""
    if isinstance(v, dict):
        return {k: drop_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [drop_nulls(x) for x in v]
    return v


def assert_sent_comes_back(sent, got, path="$"):
    """Every member sent is echoed unchanged (ECS adds members, never
    alters given ones)."""
    if isinstance(sent, dict):
        assert isinstance(got, dict), f"{path}: {got!r}"
        for k, v in sent.items():
            assert k in got, f"{path}.{k}: not echoed"
            assert_sent_comes_back(v, got[k], f"{path}.{k}")
    elif isinstance(sent, list):
        assert isinstance(got, list) and len(got) == len(sent), f"{path}: {got!r}"
        for i, (a, b) in enumerate(zip(sent, got)):
            assert_sent_comes_back(a, b, f"{path}[{i}]")
    else:
        assert sent == got, f"{path}: sent {sent!r}, got {got!r}"


def assert_computed(td, family, rev, status="ACTIVE"):
    assert td["taskDefinitionArn"] == td_arn(family, rev)
    assert td["family"] == family and td["revision"] == rev and td["status"] == status
    at = td["registeredAt"]   # boto3 parses it, the raw answer is epoch seconds
    assert abs((at if isinstance(at, (int, float)) else at.timestamp()) - time.time()) < 120
    assert td["registeredBy"] == f"arn:aws:iam::{ACCOUNT}:root"
    assert td["requiresAttributes"] == []
    assert td["compatibilities"][0] == "EC2"
    assert isinstance(td["volumes"], list) and isinstance(td["placementConstraints"], list)
    for c in td["containerDefinitions"]:
        assert isinstance(c["essential"], bool) and isinstance(c["cpu"], int)
        for k in ("portMappings", "environment", "mountPoints", "volumesFrom"):
            assert isinstance(c[k], list), k
    assert ("deregisteredAt" in td) == (status != "ACTIVE")


def container(name="app", **kw):
    return {"name": name, "image": "busybox", "memory": 128, **kw}


def register(ecs, family="web", **kw):
    kw.setdefault("containerDefinitions", [container()])
    return ecs.register_task_definition(family=family, **kw)["taskDefinition"]


def error_of(call, *args, **kw):
    with pytest.raises(ClientError) as e:
        call(*args, **kw)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


# Debian's model (botocore 1.29) predates DELETE_IN_PROGRESS.
TD_STATUSES = ("ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS")


def validate_td(td, path="taskDefinition"):
    assert td["status"] in TD_STATUSES, td["status"]
    validate(MODEL.shape_for("TaskDefinition"), {k: v for k, v in td.items() if k != "status"},
             path)


def raw_describe(d, ref):
    status, headers, body = unix_request(d.sock, "DescribeTaskDefinition",
                                         {"taskDefinition": ref})
    assert status == 200, body
    doc = json.loads(body)
    assert set(doc) == {"taskDefinition"}
    validate_td(doc["taskDefinition"])
    return doc["taskDefinition"]


def raw_delete(d, refs):
    """DeleteTaskDefinitions over the socket, its answer validated against
    the model's shapes (the operation itself is newer than botocore 1.29)."""
    status, headers, body = unix_request(d.sock, "DeleteTaskDefinitions",
                                         {"taskDefinitions": refs})
    if status != 200:
        return status, validate_response("DescribeTaskDefinition", status, headers, body)
    lower = {k.lower(): v for k, v in headers.items()}
    assert UUID_RE.match(lower.get("x-amzn-requestid", "")), headers
    assert lower.get("content-type") == "application/x-amz-json-1.1"
    doc = json.loads(body)
    assert set(doc) == {"taskDefinitions", "failures"}, doc
    for i, td in enumerate(doc["taskDefinitions"]):
        validate_td(td, f"taskDefinitions[{i}]")
    for i, f in enumerate(doc["failures"]):
        validate(MODEL.shape_for("Failure"), f, f"failures[{i}]")
    return status, doc


# ---- the corpus: definitions as real users write them ----

def host_port_mismatch(doc):
    """An awsvpc or host definition with a hostPort other than its
    containerPort."""
    return doc.get("networkMode") in ("awsvpc", "host") and any(
        pm.get("hostPort") not in (None, 0, pm.get("containerPort"))
        for c in doc["containerDefinitions"] for pm in c.get("portMappings") or [])


def test_corpus_registers_as_is(ecs, daemon):
    families = {}
    for f in corpus_files():
        doc = json.loads(f.read_text())
        sent = drop_nulls(doc)
        if host_port_mismatch(doc):
            # Written by users, refused by ECS (and Berth) all the same.
            with pytest.raises(ClientError, match="the host ports and container ports in port "
                                                  "mappings must match"):
                ecs.register_task_definition(**sent)
            continue
        families[doc["family"]] = families.get(doc["family"], 0) + 1
        rev = families[doc["family"]]
        r = ecs.register_task_definition(**sent)
        td = r["taskDefinition"]
        assert "tags" not in r
        assert_sent_comes_back(sent, td)
        assert_computed(td, doc["family"], rev)
        fargate = doc.get("networkMode") == "awsvpc" and "cpu" in doc
        assert td["compatibilities"] == (["EC2", "FARGATE"] if fargate else ["EC2"]), f.name
        for c in td["containerDefinitions"]:
            for pm in c["portMappings"]:
                assert pm["protocol"] in ("tcp", "udp")
                if doc.get("networkMode") in ("awsvpc", "host"):
                    assert "hostPort" in pm
        # Describe gives back exactly what Register answered.
        d = ecs.describe_task_definition(taskDefinition=td["taskDefinitionArn"])
        assert d["taskDefinition"] == td and "tags" not in d
        # The file's exact bytes, nulls and all, over the socket.
        status, out = raw(daemon, "RegisterTaskDefinition", raw_body=f.read_bytes())
        assert status == 200, out
        assert out["taskDefinition"]["revision"] == rev + 1
        assert_sent_comes_back(sent, out["taskDefinition"])
        families[doc["family"]] += 1
    assert {"RegisterTaskDefinition", "DescribeTaskDefinition"} <= set(ecs.recorder.seen)


def member_paths(v, path=""):
    """Every member path in a document, lists flattened: containerDefinitions.image."""
    if isinstance(v, dict):
        for k, x in v.items():
            yield f"{path}{k}"
            yield from member_paths(x, f"{path}{k}.")
    elif isinstance(v, list):
        for x in v:
            yield from member_paths(x, path)


# What published real-world definitions (Fargate and EC2 variants of web
# servers, app servers, a dashboard, a gossip agent) use, and what a
# sidecar-style task adds.  The corpus must keep covering all of it.
REAL_WORLD_MEMBERS = {
    "family", "networkMode", "cpu", "memory", "requiresCompatibilities", "volumes",
    "placementConstraints", "containerDefinitions.name", "containerDefinitions.image",
    "containerDefinitions.essential", "containerDefinitions.cpu", "containerDefinitions.memory",
    "containerDefinitions.memoryReservation", "containerDefinitions.command",
    "containerDefinitions.entryPoint", "containerDefinitions.environment.name",
    "containerDefinitions.environment.value", "containerDefinitions.dockerLabels",
    "containerDefinitions.ulimits", "containerDefinitions.portMappings.containerPort",
    "containerDefinitions.portMappings.hostPort", "containerDefinitions.portMappings.protocol",
    "containerDefinitions.logConfiguration.logDriver",
    "containerDefinitions.logConfiguration.options.awslogs-group",
    "containerDefinitions.logConfiguration.options.awslogs-region",
    "containerDefinitions.logConfiguration.options.awslogs-stream-prefix",
    # sidecars, dependencies and the rest of a production task
    "taskRoleArn", "executionRoleArn", "runtimePlatform.cpuArchitecture", "ephemeralStorage",
    "volumes.host.sourcePath", "volumes.dockerVolumeConfiguration.scope",
    "containerDefinitions.dependsOn.condition", "containerDefinitions.healthCheck.command",
    "containerDefinitions.healthCheck.startPeriod", "containerDefinitions.secrets.valueFrom",
    "containerDefinitions.mountPoints.readOnly", "containerDefinitions.linuxParameters.capabilities",
    "containerDefinitions.linuxParameters.initProcessEnabled",
    "containerDefinitions.ulimits.softLimit", "containerDefinitions.firelensConfiguration.type",
    "containerDefinitions.stopTimeout", "containerDefinitions.readonlyRootFilesystem",
    "containerDefinitions.user", "containerDefinitions.workingDirectory",
    "containerDefinitions.portMappings.name",
}


def test_corpus_covers_real_world_definitions():
    docs = {f.name: json.loads(f.read_text()) for f in corpus_files()}
    members = {p for d in docs.values() for p in member_paths(d)}
    assert REAL_WORLD_MEMBERS <= members, REAL_WORLD_MEMBERS - members
    assert {d.get("networkMode") for d in docs.values()} >= {"awsvpc", "bridge", "host"}
    compat = {c for d in docs.values() for c in d.get("requiresCompatibilities", ["(none)"])}
    assert compat >= {"EC2", "FARGATE", "(none)"}
    # Revisions of one family; definitions without task-level sizes.
    fams = [d["family"] for d in docs.values()]
    assert any(fams.count(f) > 1 for f in fams)
    assert any("cpu" not in d and "memory" not in d for d in docs.values())
    ctrs = [(d, c) for d in docs.values() for c in d["containerDefinitions"]]
    # JSON nulls and empty lists, as real files carry them.
    assert any(v is None for _, c in ctrs for v in c.values())
    assert any(c.get("environment") == [] for _, c in ctrs)
    assert any(d.get("volumes") == [] and d.get("placementConstraints") == []
               for d in docs.values())
    assert any("memoryReservation" in c and "memory" not in c for _, c in ctrs)
    assert any(len(c.get("portMappings", [])) > 1 for _, c in ctrs)
    # awsvpc mappings without hostPort, and with one other than containerPort.
    maps = [(d.get("networkMode"), m) for d, c in ctrs for m in c.get("portMappings", [])]
    assert any(n == "awsvpc" and "hostPort" not in m for n, m in maps)
    assert any(n == "bridge" and "hostPort" not in m for n, m in maps)
    assert any(n == "awsvpc" and m.get("hostPort", m["containerPort"]) != m["containerPort"]
               for n, m in maps)
    # Image references: bare, tagged, user/repo, a registry host, a digest.
    images = {c["image"] for _, c in ctrs}
    assert any("/" not in i and ":" not in i for i in images)
    assert any("/" not in i and ":" in i for i in images)
    assert any(i.count("/") == 1 and "." not in i.split("/")[0] for i in images)
    assert any("." in i.split("/")[0] for i in images if "/" in i)
    assert any("@sha256:" in i for i in images)


def cli_times(out):
    """The CLI (v2) prints timestamps as ISO-8601; the model wants the
    epoch seconds that came over the wire."""
    td = out["taskDefinition"]
    for k in ("registeredAt", "deregisteredAt"):
        if k in td:
            td[k] = datetime.datetime.fromisoformat(td[k]).timestamp()
    return out


def test_aws_cli_register_from_file(daemon, tmpdir_short):
    f = CORPUS / "static-site_fargate.json"
    out = cli_times(json.loads(aws_cli(daemon, tmpdir_short, "register-task-definition",
                                       "--cli-input-json", f"file://{f}").stdout))
    validate(MODEL.operation_model("RegisterTaskDefinition").output_shape, out)
    assert_sent_comes_back(json.loads(f.read_text()), out["taskDefinition"])
    assert out["taskDefinition"]["compatibilities"] == ["EC2", "FARGATE"]
    out = cli_times(json.loads(aws_cli(daemon, tmpdir_short, "describe-task-definition",
                                       "--task-definition", "static-site:1").stdout))
    validate(MODEL.operation_model("DescribeTaskDefinition").output_shape, out)
    assert out["taskDefinition"]["taskDefinitionArn"] == td_arn("static-site", 1)
    p = aws_cli(daemon, tmpdir_short, "describe-task-definition", "--task-definition", "nope",
                check=False)
    assert p.returncode != 0 and "ClientException" in p.stderr


# ---- revisions and references ----

def test_revisions_and_resolution(ecs):
    for i in (1, 2, 3):
        td = register(ecs, containerDefinitions=[container(command=["echo", str(i)])])
        assert td["revision"] == i and td["taskDefinitionArn"] == td_arn("web", i)
    get = lambda ref: ecs.describe_task_definition(taskDefinition=ref)["taskDefinition"]  # noqa
    assert get("web")["revision"] == 3
    assert get("web:2")["containerDefinitions"][0]["command"] == ["echo", "2"]
    assert get(td_arn("web", 1))["revision"] == 1
    ecs.deregister_task_definition(taskDefinition="web:3")
    assert get("web")["revision"] == 2          # latest ACTIVE
    old = get("web:3")
    assert old["status"] == "INACTIVE" and old["deregisteredAt"] >= old["registeredAt"]
    for ref in ("nope", "web:4", "web:0", "web:x", "web:", td_arn("nope", 1),
                f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/web:1"):
        assert error_of(ecs.describe_task_definition, taskDefinition=ref) == \
            ("ClientException", "Unable to describe task definition."), ref


def test_defaults_and_size_normalisation(ecs):
    td = register(ecs, family="sized", cpu="1 vcpu", memory="2GB", networkMode="awsvpc",
                  containerDefinitions=[{"name": "a", "image": "nginx",
                                         "portMappings": [{"containerPort": 80}]},
                                        {"name": "b", "image": "busybox", "essential": False,
                                         "cpu": 10}])
    assert td["cpu"] == "1024" and td["memory"] == "2048"
    assert td["compatibilities"] == ["EC2", "FARGATE"]
    a, b = td["containerDefinitions"]
    assert a["essential"] is True and a["cpu"] == 0
    assert a["portMappings"] == [{"containerPort": 80, "protocol": "tcp", "hostPort": 80}]
    assert a["environment"] == a["mountPoints"] == a["volumesFrom"] == []
    assert b["essential"] is False and b["cpu"] == 10
    assert td["volumes"] == [] and td["placementConstraints"] == []
    assert_computed(td, "sized", 1)
    for cpu, mem, want in (("0.5 vCPU", "1 GB", ("512", "1024")), ("256", "512", ("256", "512")),
                           ("2vCPU", "4096 MiB", ("2048", "4096"))):
        td = register(ecs, family="sized", cpu=cpu, memory=mem)
        assert (td["cpu"], td["memory"]) == want
    # Bridge never fits Fargate, whatever the sizes.
    td = register(ecs, family="br", cpu="256", memory="512", networkMode="bridge")
    assert td["compatibilities"] == ["EC2"]


def test_tags(ecs):
    tags = [{"key": "team", "value": "a"}, {"key": "env", "value": "prod"}]
    r = ecs.register_task_definition(family="tagged", containerDefinitions=[container()],
                                     tags=tags)
    assert sorted(r["tags"], key=lambda t: t["key"]) == sorted(tags, key=lambda t: t["key"])
    assert "tags" not in r["taskDefinition"]
    assert "tags" not in ecs.describe_task_definition(taskDefinition="tagged")
    d = ecs.describe_task_definition(taskDefinition="tagged", include=["TAGS"])
    assert sorted(d["tags"], key=lambda t: t["key"]) == sorted(tags, key=lambda t: t["key"])
    register(ecs, family="bare")
    assert ecs.describe_task_definition(taskDefinition="bare", include=["TAGS"])["tags"] == []
    code, msg = error_of(ecs.register_task_definition, family="t2",
                         containerDefinitions=[container()],
                         tags=[{"key": "aws:x", "value": "v"}])
    assert code == "InvalidParameterException" and "tags[0].key" in msg


# ---- listing ----

def test_list_task_definitions(ecs):
    for fam, n in (("b", 2), ("a", 3), ("ab", 1)):
        for _ in range(n):
            register(ecs, family=fam)
    ecs.deregister_task_definition(taskDefinition="a:2")
    active = [td_arn("a", 1), td_arn("a", 3), td_arn("ab", 1), td_arn("b", 1), td_arn("b", 2)]
    assert ecs.list_task_definitions()["taskDefinitionArns"] == active
    assert ecs.list_task_definitions(sort="DESC")["taskDefinitionArns"] == active[::-1]
    # familyPrefix is in fact the whole family name.
    assert ecs.list_task_definitions(familyPrefix="a")["taskDefinitionArns"] == \
        [td_arn("a", 1), td_arn("a", 3)]
    assert ecs.list_task_definitions(status="INACTIVE")["taskDefinitionArns"] == [td_arn("a", 2)]
    assert ecs.list_task_definitions(status="DELETE_IN_PROGRESS")["taskDefinitionArns"] == []
    got, token, pages = [], None, 0
    while True:
        kw = {"maxResults": 2, **({"nextToken": token} if token else {})}
        r = ecs.list_task_definitions(**kw)
        got += r["taskDefinitionArns"]
        pages += 1
        token = r.get("nextToken")
        if not token:
            break
    assert got == active and pages == 3
    pg = ecs.get_paginator("list_task_definitions").paginate(
        sort="DESC", PaginationConfig={"PageSize": 1})
    assert [a for p in pg for a in p["taskDefinitionArns"]] == active[::-1]
    for bad in ({"maxResults": 0}, {"maxResults": 101}, {"nextToken": "garbage"}):
        code, msg = error_of(ecs.list_task_definitions, **bad)
        assert code == "InvalidParameterException"


def test_list_families(ecs):
    for fam in ("web", "web-api", "worker", "db"):
        register(ecs, family=fam)
    ecs.deregister_task_definition(taskDefinition="worker:1")
    assert ecs.list_task_definition_families()["families"] == ["db", "web", "web-api", "worker"]
    assert ecs.list_task_definition_families(familyPrefix="w")["families"] == \
        ["web", "web-api", "worker"]
    assert ecs.list_task_definition_families(familyPrefix="web")["families"] == ["web", "web-api"]
    assert ecs.list_task_definition_families(status="ACTIVE")["families"] == \
        ["db", "web", "web-api"]
    assert ecs.list_task_definition_families(status="INACTIVE")["families"] == ["worker"]
    assert ecs.list_task_definition_families(status="ALL")["families"] == \
        ["db", "web", "web-api", "worker"]
    r = ecs.list_task_definition_families(maxResults=3)
    assert r["families"] == ["db", "web", "web-api"]
    r = ecs.list_task_definition_families(maxResults=3, nextToken=r["nextToken"])
    assert r["families"] == ["worker"] and "nextToken" not in r
    pg = ecs.get_paginator("list_task_definition_families").paginate(
        PaginationConfig={"PageSize": 1})
    assert [f for p in pg for f in p["families"]] == ["db", "web", "web-api", "worker"]


# ---- deregister and delete ----

def test_deregister_and_delete_lifecycle(ecs, daemon):
    for _ in range(3):
        register(ecs, family="life")
    # ECS's own texts.
    for ref, msg in (("life", "Revision is missing."),
                     (f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/life",
                      "Revision is missing."),
                     ("life:foo", "Invalid revision number. Number: foo"),
                     ("life:0", "Invalid revision number. Number: 0"),
                     ("life:9", "Unable to describe task definition."),
                     ("nope:1", "Unable to describe task definition.")):
        assert error_of(ecs.deregister_task_definition, taskDefinition=ref) == \
            ("ClientException", msg), ref
    td = ecs.deregister_task_definition(taskDefinition="life:1")["taskDefinition"]
    assert_computed(td, "life", 1, "INACTIVE")
    again = ecs.deregister_task_definition(taskDefinition=td_arn("life", 1))["taskDefinition"]
    assert again == td                          # already INACTIVE: as it was
    ecs.deregister_task_definition(taskDefinition="life:2")

    status, doc = raw_delete(daemon, ["life:1", td_arn("life", 2), "life:3", "nope:1",
                                      "life", "life:x"])
    assert status == 200
    assert [t["taskDefinitionArn"] for t in doc["taskDefinitions"]] == \
        [td_arn("life", 1), td_arn("life", 2)]
    assert all(t["status"] == "DELETE_IN_PROGRESS" for t in doc["taskDefinitions"])
    assert doc["failures"] == [
        {"arn": "life:3", "reason": "The specified task definition is still in ACTIVE status. "
                                    "Please deregister the target and try again."},
        {"arn": "nope:1", "reason": "The specified task definition does not exist. Specify a "
                                    "valid account, family, revision and try again."},
        {"arn": "life", "reason": "The specified task definition identifier is invalid. "
                                  "Specify a valid name or ARN and try again."},
        {"arn": "life:x", "reason": "The specified task definition identifier is invalid. "
                                    "Specify a valid name or ARN and try again."},
    ]
    d = raw_describe(daemon, "life:1")
    assert d["status"] == "DELETE_IN_PROGRESS" and "deregisteredAt" in d
    assert ecs.list_task_definitions(status="DELETE_IN_PROGRESS")["taskDefinitionArns"] == \
        [td_arn("life", 1), td_arn("life", 2)]
    code, _ = error_of(ecs.deregister_task_definition, taskDefinition="life:1")
    assert code == "ClientException"
    # Deleting again is harmless; revision numbers are never reused.
    status, doc = raw_delete(daemon, ["life:1"])
    assert doc["failures"] == [] and doc["taskDefinitions"][0]["status"] == "DELETE_IN_PROGRESS"
    assert register(ecs, family="life")["revision"] == 4
    for body in ({}, {"taskDefinitions": []}, {"taskDefinitions": "life:1"},
                 {"taskDefinitions": [1]}, {"taskDefinitions": [f"x:{i}" for i in range(1, 12)]}):
        status, headers, data = unix_request(daemon.sock, "DeleteTaskDefinitions", body)
        doc = validate_response("DescribeTaskDefinition", status, headers, data)
        assert status == 400 and doc["__type"] == "InvalidParameterException", body
        assert "taskDefinitions" in doc["message"]


# ---- Fargate sizes ----

@pytest.mark.parametrize("cpu,memory", [
    ("256", "512"), ("256", "1024"), ("256", "2048"), ("512", "1024"), ("512", "3072"),
    ("512", "4096"), ("1024", "2048"), ("1024", "8192"), ("2048", "4096"), ("2048", "16384"),
    ("4096", "8192"), ("4096", "30720"), ("8192", "16384"), ("8192", "61440"),
    ("16384", "32768"), ("16384", "122880"), ("1 vCPU", "3GB"), (".25 vcpu", "0.5GB"),
])
def test_fargate_sizes_accepted(ecs, cpu, memory):
    td = register(ecs, family="fg", cpu=cpu, memory=memory, networkMode="awsvpc",
                  requiresCompatibilities=["FARGATE"])
    assert td["compatibilities"] == ["EC2", "FARGATE"]
    assert td["requiresCompatibilities"] == ["FARGATE"]


@pytest.mark.parametrize("cpu,memory,units", [
    ("256", "4096", (256, 4096)), ("256", "1536", (256, 1536)), ("512", "512", (512, 512)),
    ("1024", "9216", (1024, 9216)), ("2048", "17408", (2048, 17408)),
    ("4096", "31744", (4096, 31744)), ("8192", "18432", (8192, 18432)),
    ("16384", "36864", (16384, 36864)), ("128", "512", (128, 512)),
    ("3 vcpu", "8GB", (3072, 8192)),
])
def test_fargate_sizes_refused(ecs, cpu, memory, units):
    code, msg = error_of(register, ecs, family="fg", cpu=cpu, memory=memory,
                         networkMode="awsvpc", requiresCompatibilities=["FARGATE"])
    assert code == "ClientException"
    assert msg.startswith("No Fargate configuration exists for given values: "
                          f"{units[0]} CPU, {units[1]} memory."), msg
    assert ecs.list_task_definition_families()["families"] == []


@pytest.mark.parametrize("kw,words", [
    ({"cpu": "256", "memory": "512", "networkMode": "bridge"}, "awsvpc"),
    ({"cpu": "256", "memory": "512"}, "awsvpc"),
    ({"memory": "512", "networkMode": "awsvpc"}, "'cpu'"),
    ({"cpu": "256", "networkMode": "awsvpc"}, "'memory'"),
])
def test_fargate_needs_awsvpc_and_sizes(ecs, kw, words):
    code, msg = error_of(register, ecs, family="fg", requiresCompatibilities=["FARGATE"], **kw)
    assert code == "ClientException" and words in msg


@pytest.mark.parametrize("image,words", [
    ("busybox:" + "a" * 250, "is 258 characters long; the limit is 255"),
    ("Busybox", "repository name must be lowercase"),
    ("busybox:bad tag", "invalid reference"),
    ("127.0.0.1:5000/app@sha256:abc", "invalid reference"),
    ("a//b", "invalid reference"),
])
def test_a_bad_image_fails_at_registration(ecs, image, words):
    """As ECS: an image over 255 characters or that is no reference is a
    ClientException naming the container, and nothing is registered."""
    code, msg = error_of(register, ecs, family="badimg",
                         containerDefinitions=[container("ok"), container("side", image=image)])
    assert code == "ClientException", msg
    assert "container 'side'" in msg and words in msg, msg
    assert ecs.list_task_definitions(familyPrefix="badimg")["taskDefinitionArns"] == []


def test_good_images_register(ecs):
    """The forms a reference can take all pass, up to 255 characters."""
    hexd = "0" * 64
    for image in ["busybox", "library/busybox:1.36", "127.0.0.1:5000/a/b:tag",
                  f"registry.example/app@sha256:{hexd}", f"localhost/app:v1@sha256:{hexd}",
                  "registry.example/" + "a" * 199 + ":" + "t" * 38]:
        td = register(ecs, family="goodimg", containerDefinitions=[container(image=image)])
        assert td["containerDefinitions"][0]["image"] == image


# ---- malformed input, raw ----

C = {"name": "a", "image": "busybox", "memory": 64}


def td_body(**kw):
    body = {"family": "bad", "containerDefinitions": [dict(C)]}
    body.update(kw)
    return body


def with_container(**kw):
    return td_body(containerDefinitions=[{**C, **kw}])


@pytest.mark.parametrize("op,body,etype,field", [
    ("RegisterTaskDefinition", {"containerDefinitions": [C]}, "InvalidParameterException",
     "family"),
    # ECS's words (ClientException), as its users quote them.
    ("RegisterTaskDefinition", td_body(family="has space"), "ClientException",
     "Family contains invalid characters."),
    ("RegisterTaskDefinition", td_body(family="x" * 256), "ClientException",
     "Family is longer than 255 characters."),
    ("RegisterTaskDefinition", td_body(family=""), "ClientException",
     "Family should not be null or empty."),
    ("RegisterTaskDefinition", td_body(family=7), "InvalidParameterException", "family"),
    ("RegisterTaskDefinition", {"family": "f"}, "InvalidParameterException",
     "containerDefinitions"),
    ("RegisterTaskDefinition", td_body(containerDefinitions=[]), "InvalidParameterException",
     "containerDefinitions"),
    ("RegisterTaskDefinition", td_body(containerDefinitions={"name": "a"}),
     "InvalidParameterException", "containerDefinitions"),
    ("RegisterTaskDefinition", td_body(containerDefinitions=["a"]), "InvalidParameterException",
     "containerDefinitions[0]"),
    ("RegisterTaskDefinition", td_body(containerDefinitions=[dict(C, name=f"c{i}")
                                                             for i in range(11)]),
     "InvalidParameterException", "containerDefinitions"),
    ("RegisterTaskDefinition", td_body(containerDefinitions=[{"image": "x", "memory": 6}]),
     "ClientException", "Container.name should not be null or empty."),
    ("RegisterTaskDefinition", td_body(containerDefinitions=[{"name": "x", "memory": 6}]),
     "ClientException", "Container.image should not be null or empty."),
    ("RegisterTaskDefinition", with_container(image=""), "ClientException",
     "Container.image should not be null or empty."),
    ("RegisterTaskDefinition", with_container(name="a b"), "ClientException",
     "Container.name contains invalid characters."),
    ("RegisterTaskDefinition", td_body(containerDefinitions=[C, C]), "ClientException",
     "containerDefinitions[1].name"),
    ("RegisterTaskDefinition", with_container(cpu="256"), "InvalidParameterException",
     "containerDefinitions[0].cpu"),
    ("RegisterTaskDefinition", with_container(memory=1.5), "InvalidParameterException",
     "containerDefinitions[0].memory"),
    ("RegisterTaskDefinition", with_container(memoryReservation="64"),
     "InvalidParameterException", "containerDefinitions[0].memoryReservation"),
    ("RegisterTaskDefinition", with_container(essential="yes"), "InvalidParameterException",
     "containerDefinitions[0].essential"),
    ("RegisterTaskDefinition", with_container(command="sleep 1"), "InvalidParameterException",
     "containerDefinitions[0].command"),
    ("RegisterTaskDefinition", with_container(portMappings=[{"containerPort": "80"}]),
     "InvalidParameterException", "containerDefinitions[0].portMappings[0].containerPort"),
    ("RegisterTaskDefinition", with_container(portMappings=[{"containerPort": 80,
                                                             "protocol": "sctp"}]),
     "InvalidParameterException", "containerDefinitions[0].portMappings[0].protocol"),
    ("RegisterTaskDefinition", with_container(environment=[{"name": "A", "value": 1}]),
     "InvalidParameterException", "containerDefinitions[0].environment[0].value"),
    ("RegisterTaskDefinition", with_container(healthCheck={"interval": 10}),
     "InvalidParameterException", "containerDefinitions[0].healthCheck.command"),
    ("RegisterTaskDefinition", with_container(logConfiguration={"options": {}}),
     "InvalidParameterException", "containerDefinitions[0].logConfiguration.logDriver"),
    ("RegisterTaskDefinition", with_container(dockerLabels={"a": 1}),
     "InvalidParameterException", "containerDefinitions[0].dockerLabels.a"),
    ("RegisterTaskDefinition", with_container(memory=None), "ClientException", "memory"),
    ("RegisterTaskDefinition", with_container(memory=64, memoryReservation=128),
     "ClientException", "memoryReservation"),
    ("RegisterTaskDefinition", td_body(memory="32", containerDefinitions=[dict(C)]),
     "ClientException", "memory"),
    ("RegisterTaskDefinition", with_container(essential=False), "ClientException", "essential"),
    ("RegisterTaskDefinition", td_body(networkMode="nat"), "InvalidParameterException",
     "networkMode"),
    ("RegisterTaskDefinition", td_body(requiresCompatibilities=["LAMBDA"]),
     "InvalidParameterException", "requiresCompatibilities[0]"),
    ("RegisterTaskDefinition", td_body(requiresCompatibilities="FARGATE"),
     "InvalidParameterException", "requiresCompatibilities"),
    ("RegisterTaskDefinition", td_body(cpu=256), "InvalidParameterException", "cpu"),
    ("RegisterTaskDefinition", td_body(cpu="lots"), "ClientException", "'cpu'"),
    ("RegisterTaskDefinition", td_body(cpu="64"), "ClientException", "'cpu'"),
    ("RegisterTaskDefinition", td_body(cpu="0.1 vcpu"), "ClientException", "'cpu'"),
    ("RegisterTaskDefinition", td_body(memory="1TB"), "ClientException", "'memory'"),
    ("RegisterTaskDefinition", td_body(memory=512), "InvalidParameterException", "memory"),
    ("RegisterTaskDefinition", td_body(volumes=[{"name": 1}]), "InvalidParameterException",
     "volumes[0].name"),
    ("RegisterTaskDefinition", td_body(ephemeralStorage={"sizeInGiB": 500}),
     "InvalidParameterException", "ephemeralStorage.sizeInGiB"),
    ("RegisterTaskDefinition", td_body(pidMode="vm"), "InvalidParameterException", "pidMode"),
    # restartPolicy: ECS's limits (API reference, ContainerRestartPolicy).
    ("RegisterTaskDefinition", with_container(restartPolicy={"ignoredExitCodes": [1]}),
     "ClientException", "'restartPolicy.enabled' must be specified."),
    ("RegisterTaskDefinition", with_container(restartPolicy={"enabled": True,
                                                             "restartAttemptPeriod": 59}),
     "ClientException", "'restartPolicy.restartAttemptPeriod' must be between 60 and 1800"),
    ("RegisterTaskDefinition", with_container(restartPolicy={"enabled": True,
                                                             "restartAttemptPeriod": 1801}),
     "ClientException", "'restartPolicy.restartAttemptPeriod' must be between 60 and 1800"),
    ("RegisterTaskDefinition", with_container(restartPolicy={"enabled": True,
                                                             "ignoredExitCodes": list(range(51))}),
     "ClientException", "'restartPolicy.ignoredExitCodes' can have at most 50 exit codes."),
    ("RegisterTaskDefinition", with_container(restartPolicy={"enabled": True,
                                                             "ignoredExitCodes": ["1"]}),
     "ClientException", "'restartPolicy.ignoredExitCodes' must be a list of integers."),
    # Fargate's isolation: no host PID namespace, no IPC namespace setting.
    ("RegisterTaskDefinition", td_body(pidMode="host", requiresCompatibilities=["FARGATE"],
                                       networkMode="awsvpc", cpu="256", memory="512"),
     "ClientException", "Fargate does not support pidMode 'host'."),
    ("RegisterTaskDefinition", td_body(ipcMode="task", requiresCompatibilities=["FARGATE"],
                                       networkMode="awsvpc", cpu="256", memory="512"),
     "ClientException", "Fargate does not support ipcMode."),
    ("RegisterTaskDefinition", td_body(runtimePlatform={"cpuArchitecture": "MIPS"}),
     "InvalidParameterException", "runtimePlatform.cpuArchitecture"),
    ("RegisterTaskDefinition", td_body(tags=[{"value": "v"}]), "InvalidParameterException",
     "tags[0].key"),
    ("DescribeTaskDefinition", {}, "InvalidParameterException", "taskDefinition"),
    ("DescribeTaskDefinition", {"taskDefinition": 5}, "InvalidParameterException",
     "taskDefinition"),
    ("DescribeTaskDefinition", {"taskDefinition": "x", "include": ["ALL"]},
     "InvalidParameterException", "include[0]"),
    ("ListTaskDefinitions", {"status": "GONE"}, "InvalidParameterException", "status"),
    ("ListTaskDefinitions", {"sort": "UP"}, "InvalidParameterException", "sort"),
    ("ListTaskDefinitions", {"familyPrefix": ["a"]}, "InvalidParameterException",
     "familyPrefix"),
    ("ListTaskDefinitionFamilies", {"status": "DELETE_IN_PROGRESS"},
     "InvalidParameterException", "status"),
    ("ListTaskDefinitionFamilies", {"maxResults": "5"}, "InvalidParameterException",
     "maxResults"),
    ("DeregisterTaskDefinition", {}, "InvalidParameterException", "taskDefinition"),
    ("DeregisterTaskDefinition", {"taskDefinition": ["a:1"]}, "InvalidParameterException",
     "taskDefinition"),
])
def test_malformed_members(daemon, op, body, etype, field):
    status, doc = raw(daemon, op, body)
    assert status == 400 and doc["__type"] == etype, doc
    assert field in doc["message"], doc
    assert raw(daemon, "ListTaskDefinitionFamilies")[1] == {"families": []}  # nothing stored


def test_unknown_members_dropped_nulls_absent(daemon):
    body = td_body(futureMember={"x": 1}, taskRoleArn=None,
                   containerDefinitions=[dict(C, ulimits=None, hostname=None)])
    status, doc = raw(daemon, "RegisterTaskDefinition", body)   # validated: no unknown echoed
    assert status == 200
    td = doc["taskDefinition"]
    assert "futureMember" not in td and "taskRoleArn" not in td
    assert "ulimits" not in td["containerDefinitions"][0]


def test_every_register_member_is_accepted(daemon):
    """One definition with every member of botocore's request shape."""
    body = {
        "family": "full", "taskRoleArn": "arn:aws:iam::000000000000:role/t",
        "executionRoleArn": "arn:aws:iam::000000000000:role/e", "networkMode": "awsvpc",
        "containerDefinitions": [{
            "name": "main", "image": "nginx", "repositoryCredentials": {
                "credentialsParameter": "arn:aws:secretsmanager:us-east-1:0:secret:x"},
            "cpu": 256, "memory": 512, "memoryReservation": 256, "links": [],
            "portMappings": [{"containerPort": 80, "hostPort": 80, "protocol": "tcp",
                              "name": "http", "appProtocol": "http"}],
            "essential": True, "entryPoint": ["/docker-entrypoint.sh"],
            "command": ["nginx", "-g", "daemon off;"],
            "environment": [{"name": "A", "value": "1"}],
            "environmentFiles": [{"value": "arn:aws:s3:::b/e.env", "type": "s3"}],
            "mountPoints": [{"sourceVolume": "data", "containerPath": "/data",
                             "readOnly": False}],
            "volumesFrom": [], "linuxParameters": {
                "capabilities": {"add": ["SYS_PTRACE"], "drop": []},
                "initProcessEnabled": True, "tmpfs": []},
            "secrets": [{"name": "S", "valueFrom": "arn:aws:ssm:us-east-1:0:parameter/s"}],
            "dependsOn": [{"containerName": "side", "condition": "START"}],
            "startTimeout": 30, "stopTimeout": 30, "hostname": "h", "user": "101",
            "workingDirectory": "/", "disableNetworking": False, "privileged": False,
            "readonlyRootFilesystem": True, "dnsServers": ["1.1.1.1"],
            "dnsSearchDomains": ["example.com"],
            "extraHosts": [{"hostname": "db", "ipAddress": "10.0.0.2"}],
            "dockerSecurityOptions": ["no-new-privileges"], "interactive": False,
            "pseudoTerminal": False, "dockerLabels": {"k": "v"},
            "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}],
            "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "g"}},
            "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 30, "timeout": 5,
                            "retries": 3, "startPeriod": 0},
            "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
            "resourceRequirements": [], "firelensConfiguration": {"type": "fluentbit"}},
            {"name": "side", "image": "busybox", "essential": False}],
        "volumes": [{"name": "data", "host": {"sourcePath": "/srv"}},
                    {"name": "d2", "dockerVolumeConfiguration": {"scope": "task"}},
                    {"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}],
        "placementConstraints": [{"type": "memberOf", "expression": "attribute:x == y"}],
        # Not FARGATE: ipcMode rules Fargate out (ECS: not supported on Fargate),
        # and Fargate-compatible definitions take no host.sourcePath.
        "requiresCompatibilities": ["EC2"], "cpu": "1 vCPU", "memory": "2 GB",
        "tags": [{"key": "k", "value": "v"}], "pidMode": "task", "ipcMode": "none",
        "proxyConfiguration": {"type": "APPMESH", "containerName": "main",
                               "properties": [{"name": "AppPorts", "value": "80"}]},
        "inferenceAccelerators": [],
        "ephemeralStorage": {"sizeInGiB": 30},
        "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
    }
    req = MODEL.shape_for("RegisterTaskDefinitionRequest")
    assert set(req.members) <= set(body), set(req.members) - set(body)
    validate(req, body)
    status, doc = raw(daemon, "RegisterTaskDefinition", body)
    assert status == 200, doc
    td = doc["taskDefinition"]
    sent = {k: v for k, v in body.items() if k not in ("tags", "cpu", "memory")}
    assert_sent_comes_back(sent, td)
    assert td["cpu"] == "1024" and td["memory"] == "2048"
    assert td["compatibilities"] == ["EC2"]
    assert doc["tags"] == [{"key": "k", "value": "v"}]


def test_definitions_survive_restart(tmpdir_short):
    d = Daemon(tmpdir_short).wait_ready()
    try:
        raw(d, "RegisterTaskDefinition", td_body(family="kept"))
        raw(d, "RegisterTaskDefinition", td_body(family="kept"))
        raw(d, "DeregisterTaskDefinition", {"taskDefinition": "kept:2"})
    finally:
        d.stop()
    d = Daemon(tmpdir_short).wait_ready()
    try:
        assert raw(d, "ListTaskDefinitions", {"status": "INACTIVE"})[1] == \
            {"taskDefinitionArns": [td_arn("kept", 2)]}
        assert raw(d, "RegisterTaskDefinition", td_body(family="kept"))[1][
            "taskDefinition"]["revision"] == 3
    finally:
        d.stop()
