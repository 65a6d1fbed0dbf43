"""docs/api.md's "Member policy", enforced against botocore's ECS model and a
real daemon.

For every operation the daemon implements (found by asking it: an operation
it does not know is UnknownOperationException), every member of the request
shape, and of the structures one level down, must be listed as honoured,
refused or no-op (a refused or no-op member covers its own members;
RegisterTaskDefinition's container members are listed in its own section).
A member the model does not have, or a stale row, fails too.

Then the policy is checked: each refused member, sent alone on an otherwise
valid request, is a 4xx naming it and makes nothing; each no-op member is
accepted."""
import re
from pathlib import Path

import pytest

# The plain API daemon fixture of test_api_clusters.py (pytest finds it by name).
from test_api_clusters import MODEL, daemon, raw, tmpdir_short  # noqa: F401

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
POLICIES = {"honoured", "refused", "no-op"}
NETCFG = {"awsvpcConfiguration": {"subnets": ["subnet-0policy"]}}
REFUSALS = {"UnsupportedFeatureException", "InvalidParameterException", "ClientException"}


def policy_rows():
    """{(operation, member path): policy} from the doc's table."""
    text = DOC.read_text()
    start = text.index("\n## Member policy")
    end = text.find("\n## ", start + 1)
    rows = {}
    for line in text[start:end if end > 0 else None].splitlines():
        m = re.match(r"^\| (\w+) \| `([^`]+)` \| ([\w-]+) \|", line)
        if m:
            key = (m.group(1), m.group(2))
            assert key not in rows, f"listed twice: {key}"
            assert m.group(3) in POLICIES, line
            rows[key] = m.group(3)
    assert rows, "docs/api.md has no member policy table"
    return rows


def walk(shape, prefix="", depth=1):
    """Member paths: "a", "a.b" (structure), "a[].b" (list of structures)."""
    for name, member in shape.members.items():
        path = prefix + name
        yield path
        if depth == 0:
            continue
        if member.type_name == "structure":
            yield from walk(member, path + ".", depth - 1)
        elif member.type_name == "list" and member.member.type_name == "structure":
            yield from walk(member.member, path + "[].", depth - 1)


def parents(path):
    """"a[].b.c" → "a", "a[].b"."""
    return [path[:m.start()] for m in re.finditer(r"(?:\[\])?\.", path)]


def implemented(d):
    ops = []
    for op in MODEL.operation_names:
        status, doc = raw(d, op, {})
        if doc.get("__type") != "UnknownOperationException":
            ops.append(op)
    return ops


def member_paths(op):
    # RegisterTaskDefinition's containers are documented member by member
    # in its own section (and test_api_taskdefs registers every one).
    depth = 0 if op == "RegisterTaskDefinition" else 1
    return list(walk(MODEL.operation_model(op).input_shape, depth=depth))


def test_every_member_of_every_operation_has_a_policy(daemon):
    rows = policy_rows()
    ops = implemented(daemon)
    assert "RunTask" in ops and "CreateService" in ops, ops
    missing, stale = [], []
    for op in ops:
        paths = member_paths(op)
        for path in paths:
            if (op, path) in rows:
                continue
            if any(rows.get((op, p)) in ("refused", "no-op") for p in parents(path)):
                continue
            missing.append(f"{op} {path}")
        stale += [f"{o} {p}" for (o, p) in rows if o == op and p not in paths]
    listed_ops = {o for o, _ in rows}
    stale += [f"{o} (not implemented)" for o in listed_ops - set(ops) if o in MODEL.operation_names]
    assert not missing, "members with no policy in docs/api.md:\n" + "\n".join(missing)
    assert not stale, "policy rows for no such member:\n" + "\n".join(stale)


def value_for(shape):
    """A value of SHAPE that asks for something (not empty, not false)."""
    t = shape.type_name
    if t == "string":
        return shape.enum[0] if shape.enum else "x"
    if t in ("integer", "long"):
        return max(1, shape.metadata.get("min", 1))
    if t == "boolean":
        return True
    if t == "list":
        return [value_for(shape.member)]
    if t == "map":
        return {"k": "v"}
    if t == "structure":
        names = shape.required_members or list(shape.members)[:1]
        return {n: value_for(shape.members[n]) for n in names}
    if t == "timestamp":
        return 0
    raise AssertionError(f"no value for shape type {t}")


def request_with(op, path, base):
    """BASE with the member PATH set (its parents made as needed)."""
    body = dict(base)
    shape = MODEL.operation_model(op).input_shape
    node = body
    steps = re.split(r"(\[\])?\.", path)
    names = [s for s in steps[0::2]]
    lists = [bool(s) for s in steps[1::2]]
    for i, name in enumerate(names):
        member = shape.members[name]
        if i == len(names) - 1:
            node[name] = value_for(member)
            break
        if lists[i]:
            item = {}
            node[name] = [item]
            node, shape = item, member.member
        else:
            node = node.setdefault(name, {})
            shape = member
    return body


@pytest.fixture
def world(daemon):
    """A cluster, a runnable awsvpc definition and a service at 0 tasks."""
    assert raw(daemon, "CreateCluster", {})[0] == 200
    td = {"family": "policy", "networkMode": "awsvpc", "cpu": "256", "memory": "512",
          "containerDefinitions": [{"name": "app", "image": "busybox", "essential": True}]}
    status, doc = raw(daemon, "RegisterTaskDefinition", td)
    assert status == 200, doc
    arn = doc["taskDefinition"]["taskDefinitionArn"]
    status, doc = raw(daemon, "CreateService", {"serviceName": "there", "taskDefinition": arn,
                                                "desiredCount": 0, "networkConfiguration": NETCFG})
    assert status == 200, doc
    return {
        "CreateCluster": {"clusterName": "policy-new"},
        "RunTask": {"taskDefinition": arn, "networkConfiguration": NETCFG},
        "CreateService": {"serviceName": "policy-new", "taskDefinition": arn,
                          "desiredCount": 0, "networkConfiguration": NETCFG},
        "UpdateService": {"service": "there"},
        "UpdateCluster": {"cluster": "default"},
        "StartTask": {"taskDefinition": arn, "networkConfiguration": NETCFG,
                      "containerInstances": raw(daemon, "ListContainerInstances", {})[1][
                          "containerInstanceArns"]},
        "ListContainerInstances": {},
    }


def snapshot(d):
    """What a refused request must not have changed."""
    out = [raw(d, "ListClusters", {})[1]["clusterArns"],
           raw(d, "ListServices", {})[1]["serviceArns"],
           raw(d, "DescribeServices", {"services": ["there"]})[1]["services"][0]["deployments"]]
    for status in ("RUNNING", "STOPPED"):
        out.append(raw(d, "ListTasks", {"desiredStatus": status})[1]["taskArns"])
    return out


def checked_rows(policy):
    """The rows of POLICY whose member is not under another such row."""
    rows = policy_rows()
    return sorted((op, path) for (op, path), p in rows.items()
                  if p == policy and op in MODEL.operation_names
                  and not any(rows.get((op, q)) == policy for q in parents(path)))


REFUSED_ROWS = checked_rows("refused")
NO_OP_ROWS = checked_rows("no-op")


@pytest.mark.parametrize("op,path", REFUSED_ROWS, ids=[f"{o}-{p}" for o, p in REFUSED_ROWS])
def test_refused_members_are_refused(daemon, world, op, path):
    assert op in world, f"no base request for {op}: add one to the world fixture"
    before = snapshot(daemon)
    status, doc = raw(daemon, op, request_with(op, path, world[op]))
    assert status == 400 and doc["__type"] in REFUSALS, (path, doc)
    name = re.split(r"(?:\[\])?\.", path)[-1]
    assert name in doc["message"], (path, doc)
    assert snapshot(daemon) == before, f"{op} with {path} changed something"


@pytest.mark.parametrize("op,path", NO_OP_ROWS, ids=[f"{o}-{p}" for o, p in NO_OP_ROWS])
def test_no_op_members_are_accepted(daemon, world, op, path):
    body = request_with(op, path, world[op])
    if op == "RunTask":
        # Checked before the definition is looked up, and no task starts.
        body["taskDefinition"] = "policy-none:1"
    status, doc = raw(daemon, op, body)
    if op == "RunTask":
        assert status == 400 and doc["message"].startswith("Unable to describe task "
                                                           "definition"), doc
    else:
        assert status == 200, (path, doc)
