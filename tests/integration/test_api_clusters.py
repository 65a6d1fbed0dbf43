"""`berth daemon` and the ECS wire protocol, through the cluster operations
(CreateCluster, DescribeClusters, ListClusters, DeleteCluster), with the real
clients: boto3 and Debian's `aws` CLI (v2) against a TCP listener that checks
SigV4, and raw HTTP over the 0600 unix socket.

Every response body a test sees (boto3's, the CLI's, raw ones) is validated
against botocore's own ECS service model: member names, types, required
members and enums.  The daemon runs fresh per test; at teardown it must exit 0
on SIGTERM, remove its socket, and (ASan build) report nothing."""
import base64
import datetime
import http.client
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import types
from pathlib import Path
from unittest import mock

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from fixtures import sanitizers
from fixtures import tasks as tk

REPO = Path(__file__).resolve().parents[2]
BERTH_BIN = os.environ.get("BERTH_BIN", str(REPO / "build/release/berth"))
AWS_CLI = "/usr/bin/aws"          # Debian's awscli 2.x, not a pyenv one
REGION = "us-east-1"
ACCOUNT = "000000000000"
AKID = "AKIDBERTHTEST"
SECRET = "berth/TEST+secret/key0123456789abcdefghij"
TARGET = "AmazonEC2ContainerServiceV20141113."
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
SANITIZER_MARKS = sanitizers.MARKS

MODEL = botocore.session.get_session().get_service_model("ecs")
# Error types a client may see: the ECS model's, plus the front end's
# (SigV4, routing, JSON) which no service model lists.
FRONT_END_ERRORS = {"MissingAuthenticationTokenException", "IncompleteSignatureException",
                    "InvalidSignatureException", "UnrecognizedClientException",
                    "AccessDeniedException", "UnknownOperationException",
                    "SerializationException"}
MODEL_ERRORS = {s.name for s in MODEL.error_shapes}


# ---- the model validator ----

def validate(shape, value, path="$"):
    """Asserts VALUE is what botocore's SHAPE describes; unknown members
    are errors too (a client would drop them silently)."""
    t = shape.type_name
    if t == "structure":
        assert isinstance(value, dict), f"{path}: expected an object, got {value!r}"
        for req in shape.required_members:
            assert req in value, f"{path}: required member {req} missing"
        for k, v in value.items():
            assert k in shape.members, f"{path}.{k}: not a member of {shape.name}"
            validate(shape.members[k], v, f"{path}.{k}")
    elif t == "list":
        assert isinstance(value, list), f"{path}: expected a list, got {value!r}"
        lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
        assert lo is None or len(value) >= lo, f"{path}: fewer than {lo} members"
        assert hi is None or len(value) <= hi, f"{path}: more than {hi} members"
        for i, v in enumerate(value):
            validate(shape.member, v, f"{path}[{i}]")
    elif t == "map":
        assert isinstance(value, dict), f"{path}: expected a map"
        for k, v in value.items():
            validate(shape.key, k, f"{path}<key>")
            validate(shape.value, v, f"{path}.{k}")
    elif t == "string":
        assert isinstance(value, str), f"{path}: expected a string, got {value!r}"
        if shape.enum:
            assert value in shape.enum, f"{path}: {value!r} not in {shape.enum}"
    elif t in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), \
            f"{path}: expected an integer, got {value!r}"
        lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
        assert (lo is None or value >= lo) and (hi is None or value <= hi), f"{path}: range"
    elif t == "boolean":
        assert isinstance(value, bool), f"{path}: expected a boolean"
    elif t == "blob":
        # AWS JSON 1.1: base64 text.
        assert isinstance(value, str), f"{path}: expected base64 text, got {value!r}"
        base64.b64decode(value, validate=True)
    elif t in ("double", "float"):
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{path}"
    elif t == "timestamp":
        # AWS JSON 1.1: epoch seconds as a JSON number.
        assert isinstance(value, (int, float)) and not isinstance(value, bool), \
            f"{path}: timestamps are epoch-second numbers, got {value!r}"
    else:
        raise AssertionError(f"{path}: shape type {t} not handled by the validator")


def validate_response(op, status, headers, body):
    """One HTTP answer: headers, then the body against the model."""
    lower = {k.lower(): v for k, v in headers.items()}
    assert UUID_RE.match(lower.get("x-amzn-requestid", "")), f"bad request id in {headers}"
    assert lower.get("content-type") == "application/x-amz-json-1.1"
    doc = json.loads(body)
    if status == 200:
        validate(MODEL.operation_model(op).output_shape, doc, op)
        return doc
    assert set(doc) == {"__type", "message"}, doc
    assert isinstance(doc["message"], str) and doc["message"]
    assert doc["__type"] in MODEL_ERRORS | FRONT_END_ERRORS, doc
    # 500 only for ServerException (clients retry 5xx), 4xx for the rest.
    assert (status == 500) == (doc["__type"] == "ServerException"), (status, doc)
    return doc


# ---- the daemon ----

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_API_NET = []


def api_net_args():
    """Every daemon starts its scheduler, which ensures its bridge: the
    API tests give it a session bridge on a free subnet, no NAT and their
    own cgroup name, never the host's berth0 (conftest removes the bridge
    at session end)."""
    if not _API_NET:
        _API_NET.extend(["--bridge", API_BRIDGE, "--subnet", tk.pick_test_subnet(prefix="10.215"),
                         "--no-nat", "--nft-table", f"berth_api_{os.getpid()}",
                         "--cgroup-name", f"berth-api-{os.getpid()}"])
    return _API_NET


API_BRIDGE = f"berthapi{os.getpid() % 100000}"


class Daemon:
    """A real `berth daemon` on a unix socket and a SigV4 TCP port."""

    # The suite's daemons register a container instance far larger than
    # the machine (the lane's guest has 2 GiB) and keep a small disk
    # reserve: tests of other things must not meet RESOURCE:MEMORY or
    # RESOURCE:DISK.  test_api_policy.py tests placement with roomy=False
    # and its own figures.
    ROOMY = ("--instance-cpu", "1048576", "--instance-memory", "16777216",
             "--disk-reserve", "16")

    def __init__(self, tmp, extra=(), tcp=True, creds=True, name="daemon", net_args=None,
                 roomy=True):
        self.tmp = Path(tmp)
        self.root = self.tmp / "root"
        self.run = self.tmp / "run"
        self.sock = self.run / "berth.sock"
        self.port = free_port() if tcp else None
        self.creds = self.tmp / "credentials"
        self.creds.write_text(f"[default]\naws_access_key_id = {AKID}\n"
                              f"aws_secret_access_key = {SECRET}\n")
        self.creds.chmod(0o600)
        args = [BERTH_BIN, "daemon", "--root", str(self.root), "--run-root", str(self.run),
                "--listen", f"unix:{self.sock}", "--log-root", str(self.tmp / "logs"),
                *(api_net_args() if net_args is None else net_args)]
        if tcp:
            args += ["--listen", f"tcp:127.0.0.1:{self.port}"]
        if creds:
            args += ["--credentials", str(self.creds)]
        # The task endpoint (169.254.170.2:80) and the introspection
        # (127.0.0.1:51678) are off unless a test turns them on in EXTRA
        # (the last of an option wins), on addresses of its own.
        args += ["--task-endpoint", "off", "--introspection", "off"]
        args += list(self.ROOMY if roomy else ()) + list(extra)
        self.name = name
        self.stderr_path = self.tmp / f"{name}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        # The environment carries conftest's sanitizer options (sanitizers.py).
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self._stderr)
        self.endpoint = f"http://127.0.0.1:{self.port}" if tcp else None

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.stderr()}")
            if "berth daemon: ready" in self.stderr():   # not "already in use"
                return self
            time.sleep(0.02)
        raise AssertionError(f"daemon not ready: {self.stderr()}")

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def stop(self):
        """SIGTERM; the daemon must exit 0, clean, without its socket."""
        if not tk.terminate(self.proc):
            raise AssertionError("daemon ignored SIGTERM")
        self._stderr.close()
        err = self.stderr()
        # Its own, its helpers' and its shims' (their stderr is shim.log).
        sanitizers.scan([self.stderr_path, *self.root.glob("tasks/*/shim.log")],
                        f"from {self.name} or its shims")
        sanitizers.check(f"from {self.name}, its helpers or its shims")
        assert self.proc.returncode == 0, f"daemon exited {self.proc.returncode}:\n{err}"
        assert not self.sock.exists(), "the daemon left its socket behind"
        return err


def unix_request(path, op, body, raw_body=None, method="POST", target=None, url="/"):
    """One HTTP request over AF_UNIX; (status, headers, body bytes)."""
    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(30)
            self.sock.connect(str(path))
    c = Conn("localhost")
    data = raw_body if raw_body is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    if target is not False:
        headers["X-Amz-Target"] = target or TARGET + op
    try:
        c.request(method, url, body=data if method != "GET" else None, headers=headers)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def raw(d, op, body=None, **kw):
    """A request over the unix socket, validated; (status, document)."""
    status, headers, data = unix_request(d.sock, op, body if body is not None else {}, **kw)
    return status, validate_response(op, status, headers, data)


def tcp_request(d, headers, data, method="POST"):
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
    try:
        c.request(method, "/", body=data, headers=headers)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def signed_request(d, op, body, secret=SECRET, skew=0):
    """Headers and body signed by botocore's own SigV4Auth, its clock moved
    by SKEW seconds."""
    data = json.dumps(body).encode()
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=d.endpoint + "/", data=data,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + op})
    creds = botocore.credentials.Credentials(AKID, secret)

    class SkewedDateTime(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return datetime.datetime.utcnow() + datetime.timedelta(seconds=skew)

    fake = types.SimpleNamespace(datetime=SkewedDateTime, timedelta=datetime.timedelta)
    with mock.patch.object(botocore.auth, "datetime", fake):
        botocore.auth.SigV4Auth(creds, "ecs", REGION).add_auth(req)
    return dict(req.headers.items()), data


@pytest.fixture
def tmpdir_short():
    # sun_path is 108 bytes: pytest's tmp_path can be longer.
    d = tempfile.mkdtemp(prefix="berth-api-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def daemon(tmpdir_short):
    d = Daemon(tmpdir_short).wait_ready()
    yield d
    d.stop()


class Recorder:
    """Validates every raw answer boto3 receives against the model."""

    def __init__(self):
        self.seen = []

    def __call__(self, response_dict=None, context=None, exception=None, **kw):
        if response_dict is None:
            return
        op = kw["event_name"].split(".")[-1]
        self.seen.append(op)
        validate_response(op, response_dict["status_code"], response_dict["headers"],
                          response_dict["body"])


def make_client(d, secret=SECRET, region=REGION):
    c = boto3.client("ecs", endpoint_url=d.endpoint, region_name=region,
                     aws_access_key_id=AKID, aws_secret_access_key=secret,
                     config=Config(retries={"total_max_attempts": 1}))
    rec = Recorder()
    c.meta.events.register("response-received.ecs.*", rec)
    c.recorder = rec
    return c


@pytest.fixture
def ecs(daemon):
    return make_client(daemon)


def aws_cli(d, tmp, *args, check=True):
    """Debian's aws CLI with its own config files and no network."""
    cfg = Path(tmp) / "aws-config"
    cfg.write_text(f"[default]\nregion = {REGION}\noutput = json\n")
    cred = Path(tmp) / "aws-credentials"
    cred.write_text(f"[default]\naws_access_key_id = {AKID}\naws_secret_access_key = {SECRET}\n")
    cred.chmod(0o600)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "AWS_CONFIG_FILE": str(cfg),
           "AWS_SHARED_CREDENTIALS_FILE": str(cred), "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_PAGER": "", "AWS_MAX_ATTEMPTS": "1"}
    p = subprocess.run([AWS_CLI, "--endpoint-url", d.endpoint, "ecs", *args],
                       capture_output=True, text=True, env=env, timeout=60 * tk.SLOWDOWN)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def arn(name):
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{name}"


# ---- boto3 ----

def test_round_trip_boto3(ecs):
    c = ecs.create_cluster(clusterName="web", tags=[{"key": "team", "value": "a"}],
                           settings=[{"name": "containerInsights", "value": "enabled"}])["cluster"]
    assert c["clusterArn"] == arn("web") and c["clusterName"] == "web"
    assert c["status"] == "ACTIVE"
    assert c["registeredContainerInstancesCount"] == 1      # the host
    assert c["runningTasksCount"] == c["pendingTasksCount"] == c["activeServicesCount"] == 0
    assert c["tags"] == [{"key": "team", "value": "a"}]
    assert c["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    assert c["capacityProviders"] == [] and c["defaultCapacityProviderStrategy"] == []

    # Idempotent: the same cluster again, not a second one.
    again = ecs.create_cluster(clusterName="web")["cluster"]
    assert again["clusterArn"] == c["clusterArn"]

    d = ecs.describe_clusters(clusters=["web", arn("web")])
    assert [x["clusterName"] for x in d["clusters"]] == ["web", "web"]
    assert d["failures"] == []
    assert "tags" not in d["clusters"][0] and "settings" not in d["clusters"][0]
    d = ecs.describe_clusters(clusters=["web"], include=["TAGS", "SETTINGS"])
    assert d["clusters"][0]["tags"] == [{"key": "team", "value": "a"}]
    assert d["clusters"][0]["settings"] == [{"name": "containerInsights", "value": "enabled"}]

    assert ecs.list_clusters()["clusterArns"] == [arn("web")]

    gone = ecs.delete_cluster(cluster="web")["cluster"]
    assert gone["status"] == "INACTIVE" and gone["clusterArn"] == arn("web")
    # ECS keeps listing a deleted cluster for a while (DeleteCluster: INACTIVE
    # clusters "might remain discoverable"; tools that list clusters then
    # filter on status).
    assert ecs.list_clusters()["clusterArns"] == [arn("web")]
    # Deleted clusters stay describable as INACTIVE, as in ECS.
    assert ecs.describe_clusters(clusters=["web"])["clusters"][0]["status"] == "INACTIVE"
    with pytest.raises(ClientError) as e:
        ecs.delete_cluster(cluster="never-was")
    assert e.value.response["Error"]["Code"] == "ClusterNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert set(ecs.recorder.seen) == {"CreateCluster", "DescribeClusters", "ListClusters",
                                      "DeleteCluster"}


def test_recreate_after_delete_drops_old_tags(ecs):
    ecs.create_cluster(clusterName="x", tags=[{"key": "old", "value": "1"}])
    ecs.delete_cluster(cluster=arn("x"))
    c = ecs.create_cluster(clusterName="x")["cluster"]
    assert c["status"] == "ACTIVE" and c["tags"] == []


def test_paging_covers_all(ecs):
    names = [f"c{i:02d}" for i in range(7)]
    for n in names:
        ecs.create_cluster(clusterName=n)
    got, token, pages = [], None, 0
    while True:
        kw = {"maxResults": 1}
        if token:
            kw["nextToken"] = token
        r = ecs.list_clusters(**kw)
        assert len(r["clusterArns"]) <= 1
        got += r["clusterArns"]
        pages += 1
        token = r.get("nextToken")
        if not token:
            break
    assert got == [arn(n) for n in names]
    assert pages == len(names)
    # botocore's paginator over the same pages.
    pg = ecs.get_paginator("list_clusters").paginate(PaginationConfig={"PageSize": 3})
    assert [a for p in pg for a in p["clusterArns"]] == [arn(n) for n in names]
    for bad in ({"maxResults": 0}, {"maxResults": 101}, {"nextToken": "not-a-token"}):
        with pytest.raises(ClientError) as e:
            ecs.list_clusters(**bad)
        assert e.value.response["Error"]["Code"] == "InvalidParameterException"


def test_describe_unknown_is_missing(ecs):
    ecs.create_cluster(clusterName="here")
    d = ecs.describe_clusters(clusters=["here", "nope", arn("gone"),
                                        "arn:aws:ecs:eu-west-1:000000000000:cluster/here"])
    assert [c["clusterName"] for c in d["clusters"]] == ["here"]
    assert d["failures"] == [
        {"arn": arn("nope"), "reason": "MISSING"},
        {"arn": arn("gone"), "reason": "MISSING"},
        {"arn": "arn:aws:ecs:eu-west-1:000000000000:cluster/here", "reason": "MISSING"},
    ]


def test_default_cluster_when_omitted(ecs):
    d = ecs.describe_clusters()
    assert d["clusters"] == [] and d["failures"] == [{"arn": arn("default"), "reason": "MISSING"}]
    c = ecs.create_cluster()["cluster"]
    assert c["clusterName"] == "default" and c["clusterArn"] == arn("default")
    d = ecs.describe_clusters()
    assert [c["clusterName"] for c in d["clusters"]] == ["default"]


@pytest.mark.parametrize("kwargs,field", [
    ({"clusterName": "has space"}, "clusterName"),
    ({"clusterName": "x" * 256}, "clusterName"),
    ({"clusterName": "dots.not.allowed"}, "clusterName"),
    ({"clusterName": "ok", "settings": [{"name": "containerInsights", "value": "maybe"}]},
     "settings[0].value"),
    ({"clusterName": "ok", "tags": [{"key": "aws:reserved", "value": "v"}]}, "tags[0].key"),
    ({"clusterName": "ok", "tags": [{"key": "k", "value": "v" * 257}]}, "tags[0].value"),
    ({"clusterName": "ok", "capacityProviders": ["MY_ASG"]}, "capacityProviders[0]"),
    ({"clusterName": "ok", "capacityProviders": ["FARGATE"],
      "defaultCapacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT"}]},
     "defaultCapacityProviderStrategy[0].capacityProvider"),
    ({"clusterName": "ok", "configuration": {"executeCommandConfiguration": {
        "logging": "OVERRIDE"}}}, "logConfiguration"),
])
def test_bad_create_is_invalid_parameter(ecs, kwargs, field):
    with pytest.raises(ClientError) as e:
        ecs.create_cluster(**kwargs)
    err = e.value.response["Error"]
    assert err["Code"] == "InvalidParameterException"
    assert field in err["Message"]
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert ecs.list_clusters()["clusterArns"] == []  # nothing half-created


def test_create_accepts_fargate_providers_and_configuration(ecs):
    cfg = {"executeCommandConfiguration": {"logging": "OVERRIDE", "logConfiguration": {
        "cloudWatchLogGroupName": "g", "cloudWatchEncryptionEnabled": True}}}
    c = ecs.create_cluster(clusterName="f", capacityProviders=["FARGATE", "FARGATE_SPOT"],
                           defaultCapacityProviderStrategy=[
                               {"capacityProvider": "FARGATE", "weight": 1, "base": 0}],
                           configuration=cfg)["cluster"]
    assert c["configuration"] == cfg
    d = ecs.describe_clusters(clusters=["f"], include=["CONFIGURATIONS"])["clusters"][0]
    assert d["configuration"] == cfg
    # The providers are kept, as ECS keeps them (they were dropped once).
    strategy = [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}]
    for x in (c, d):
        assert x["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"], x
        assert x["defaultCapacityProviderStrategy"] == strategy, x


def test_update_cluster_and_settings(ecs):
    ecs.create_cluster(clusterName="u")
    on = [{"name": "containerInsights", "value": "enabled"}]
    c = ecs.update_cluster_settings(cluster="u", settings=on)["cluster"]
    assert c["settings"] == on
    cfg = {"executeCommandConfiguration": {"logging": "DEFAULT"}}
    off = [{"name": "containerInsights", "value": "disabled"}]
    c = ecs.update_cluster(cluster="u", settings=off, configuration=cfg)["cluster"]
    assert c["settings"] == off and c["configuration"] == cfg
    d = ecs.describe_clusters(clusters=["u"], include=["SETTINGS", "CONFIGURATIONS"])
    assert d["clusters"][0]["settings"] == off and d["clusters"][0]["configuration"] == cfg
    # Only what is given changes.
    c = ecs.update_cluster(cluster="u", settings=on)["cluster"]
    assert c["settings"] == on and c["configuration"] == cfg
    for call, kw, code in (
            (ecs.update_cluster, {"cluster": "nope"}, "ClusterNotFoundException"),
            (ecs.update_cluster_settings, {"cluster": "nope", "settings": on},
             "ClusterNotFoundException"),
            (ecs.update_cluster_settings, {"cluster": "u", "settings": [
                {"name": "containerInsights", "value": "loud"}]}, "InvalidParameterException"),
            (ecs.update_cluster, {"cluster": "u", "serviceConnectDefaults": {"namespace": "n"}},
             "UnsupportedFeatureException")):
        with pytest.raises(ClientError) as e:
            call(**kw)
        assert e.value.response["Error"]["Code"] == code, (kw, e.value.response)
    assert ecs.describe_clusters(clusters=["u"], include=["SETTINGS"])["clusters"][0][
        "settings"] == on


def test_account_settings(ecs):
    root = f"arn:aws:iam::{ACCOUNT}:root"
    user = f"arn:aws:iam::{ACCOUNT}:user/ops"
    eff = ecs.list_account_settings(effectiveSettings=True)["settings"]
    assert {x["name"]: x["value"] for x in eff} == {
        "serviceLongArnFormat": "enabled", "taskLongArnFormat": "enabled",
        "containerInstanceLongArnFormat": "enabled", "awsvpcTrunking": "disabled",
        "containerInsights": "disabled"}
    assert all(x["principalArn"] == root for x in eff)
    assert ecs.list_account_settings()["settings"] == []          # nothing set yet

    # The account default is what a new cluster gets, as on ECS.
    s = ecs.put_account_setting_default(name="containerInsights", value="enabled")["setting"]
    assert s == {"name": "containerInsights", "value": "enabled", "principalArn": root}
    c = ecs.create_cluster(clusterName="insightful")["cluster"]
    assert c["settings"] == [{"name": "containerInsights", "value": "enabled"}]

    s = ecs.put_account_setting(name="awsvpcTrunking", value="enabled", principalArn=user)
    assert s["setting"]["principalArn"] == user
    mine = ecs.list_account_settings(principalArn=user, effectiveSettings=True)["settings"]
    got = {x["name"]: (x["value"], x["principalArn"]) for x in mine}
    assert got["awsvpcTrunking"] == ("enabled", user)
    assert got["containerInsights"] == ("enabled", root)         # the default shows through
    assert ecs.list_account_settings(principalArn=user)["settings"] == [
        {"name": "awsvpcTrunking", "value": "enabled", "principalArn": user}]
    assert [x["name"] for x in ecs.list_account_settings(
        effectiveSettings=True, value="enabled")["settings"]] == [
        "serviceLongArnFormat", "taskLongArnFormat", "containerInstanceLongArnFormat",
        "containerInsights"]
    pages = list(ecs.get_paginator("list_account_settings").paginate(
        effectiveSettings=True, PaginationConfig={"PageSize": 2}))
    assert [len(p["settings"]) for p in pages] == [2, 2, 1]

    gone = ecs.delete_account_setting(name="awsvpcTrunking", principalArn=user)["setting"]
    assert gone == {"name": "awsvpcTrunking", "value": "enabled", "principalArn": user}
    assert ecs.list_account_settings(principalArn=user)["settings"] == []
    for call, kw in ((ecs.delete_account_setting, {"name": "awsvpcTrunking",
                                                   "principalArn": user}),
                     (ecs.put_account_setting, {"name": "taskLongArnFormat",
                                                "value": "disabled"}),
                     (ecs.put_account_setting, {"name": "containerInsights", "value": "loud"}),
                     (ecs.put_account_setting, {"name": "fargateVirtualization",
                                                "value": "enabled"}),
                     (ecs.put_account_setting, {"name": "awsvpcTrunking", "value": "enabled",
                                                "principalArn": "arn:aws:iam::999999999999:root"}),
                     (ecs.list_account_settings, {"nextToken": "garbage"})):
        with pytest.raises(ClientError) as e:
            call(**kw)
        assert e.value.response["Error"]["Code"] == "InvalidParameterException", kw
    # The settings are durable: what was refused changed nothing.
    assert ecs.list_account_settings()["settings"] == [
        {"name": "containerInsights", "value": "enabled", "principalArn": root}]


def test_put_cluster_capacity_providers(ecs):
    ecs.create_cluster(clusterName="p")
    spot = [{"capacityProvider": "FARGATE_SPOT", "weight": 2, "base": 1}]
    c = ecs.put_cluster_capacity_providers(cluster="p", capacityProviders=["FARGATE_SPOT"],
                                           defaultCapacityProviderStrategy=spot)["cluster"]
    assert c["capacityProviders"] == ["FARGATE_SPOT"]
    assert c["defaultCapacityProviderStrategy"] == spot
    d = ecs.describe_clusters(clusters=["p"])["clusters"][0]
    assert (d["capacityProviders"], d["defaultCapacityProviderStrategy"]) == (["FARGATE_SPOT"], spot)
    # Emptied again: both lists empty.
    c = ecs.put_cluster_capacity_providers(cluster="p", capacityProviders=[],
                                           defaultCapacityProviderStrategy=[])["cluster"]
    assert c["capacityProviders"] == [] and c["defaultCapacityProviderStrategy"] == []
    for kw, code in (({"cluster": "nope"}, "ClusterNotFoundException"),
                     ({"cluster": "p", "capacityProviders": ["MY_ASG"]},
                      "InvalidParameterException"),
                     ({"cluster": "p", "defaultCapacityProviderStrategy": spot},
                      "InvalidParameterException")):
        args = {"capacityProviders": [], "defaultCapacityProviderStrategy": [], **kw}
        with pytest.raises(ClientError) as e:
            ecs.put_cluster_capacity_providers(**args)
        assert e.value.response["Error"]["Code"] == code, (kw, e.value.response)
    ecs.delete_cluster(cluster="p")
    with pytest.raises(ClientError) as e:
        ecs.put_cluster_capacity_providers(cluster="p", capacityProviders=[],
                                           defaultCapacityProviderStrategy=[])
    assert e.value.response["Error"]["Code"] == "ClusterNotFoundException"


# ---- the aws CLI ----

def test_round_trip_aws_cli(daemon, tmpdir_short):
    out = json.loads(aws_cli(daemon, tmpdir_short, "create-cluster", "--cluster-name", "cli",
                             "--tags", "key=k,value=v").stdout)
    validate(MODEL.operation_model("CreateCluster").output_shape, out)
    assert out["cluster"]["clusterArn"] == arn("cli")
    assert out["cluster"]["tags"] == [{"key": "k", "value": "v"}]

    out = json.loads(aws_cli(daemon, tmpdir_short, "describe-clusters", "--clusters", "cli",
                             "missing", "--include", "TAGS").stdout)
    validate(MODEL.operation_model("DescribeClusters").output_shape, out)
    assert out["clusters"][0]["tags"] == [{"key": "k", "value": "v"}]
    assert out["failures"] == [{"arn": arn("missing"), "reason": "MISSING"}]

    for n in ("cli2", "cli3"):
        aws_cli(daemon, tmpdir_short, "create-cluster", "--cluster-name", n)
    # The CLI's own paginator, one item per page.
    out = json.loads(aws_cli(daemon, tmpdir_short, "list-clusters", "--page-size", "1").stdout)
    validate(MODEL.operation_model("ListClusters").output_shape, out)
    assert out["clusterArns"] == [arn("cli"), arn("cli2"), arn("cli3")]

    out = json.loads(aws_cli(daemon, tmpdir_short, "delete-cluster", "--cluster", "cli").stdout)
    validate(MODEL.operation_model("DeleteCluster").output_shape, out)
    assert out["cluster"]["status"] == "INACTIVE"

    p = aws_cli(daemon, tmpdir_short, "delete-cluster", "--cluster", "cli9", check=False)
    assert p.returncode != 0 and "ClusterNotFoundException" in p.stderr
    p = aws_cli(daemon, tmpdir_short, "create-cluster", "--cluster-name", "bad name", check=False)
    assert p.returncode != 0 and "InvalidParameterException" in p.stderr


# ---- authentication ----

def test_wrong_secret_is_invalid_signature(daemon):
    bad = make_client(daemon, secret="not-the-secret")
    with pytest.raises(ClientError) as e:
        bad.list_clusters()
    assert e.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_wrong_region_is_refused(daemon):
    bad = make_client(daemon, region="eu-west-1")
    with pytest.raises(ClientError) as e:
        bad.list_clusters()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # AWS: the scope names another region, so the signature is invalid.
    assert e.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert "Credential should be scoped to a valid region" in \
        e.value.response["Error"]["Message"]


def test_unknown_access_key_is_unrecognized(daemon):
    c = boto3.client("ecs", endpoint_url=daemon.endpoint, region_name=REGION,
                     aws_access_key_id="AKIDNOBODY", aws_secret_access_key=SECRET)
    with pytest.raises(ClientError) as e:
        c.list_clusters()
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_unsigned_post_is_403(daemon):
    status, headers, body = tcp_request(
        daemon, {"Content-Type": "application/x-amz-json-1.1",
                 "X-Amz-Target": TARGET + "ListClusters"}, b"{}")
    assert status == 403
    doc = validate_response("ListClusters", status, headers, body)
    assert doc["__type"] == "MissingAuthenticationTokenException"


@pytest.mark.parametrize("skew", [-600, 600])
def test_skewed_clock_is_invalid_signature(daemon, skew):
    headers, data = signed_request(daemon, "ListClusters", {}, skew=skew)
    status, rh, body = tcp_request(daemon, headers, data)
    doc = validate_response("ListClusters", status, rh, body)
    assert status == 403 and doc["__type"] == "InvalidSignatureException"
    assert "Signature" in doc["message"]
    # The same signer without skew is accepted: the skew is what failed.
    headers, data = signed_request(daemon, "ListClusters", {})
    status, rh, body = tcp_request(daemon, headers, data)
    assert status == 200, body


def test_tampered_body_is_invalid_signature(daemon):
    headers, _ = signed_request(daemon, "CreateCluster", {"clusterName": "a"})
    data = json.dumps({"clusterName": "b"}).encode()
    headers["Content-Length"] = str(len(data))
    status, rh, body = tcp_request(daemon, headers, data)
    assert status == 403
    assert validate_response("CreateCluster", status, rh, body)["__type"] == \
        "InvalidSignatureException"


def test_tcp_refused_without_credentials(tmpdir_short):
    d = Daemon(tmpdir_short, creds=False)
    assert d.proc.wait(timeout=20) == 1
    assert "--credentials" in d.stderr()
    d._stderr.close()
    assert not d.sock.exists()


def test_insecure_no_auth_warns_and_serves(tmpdir_short):
    d = Daemon(tmpdir_short, creds=False, extra=["--insecure-no-auth"]).wait_ready()
    try:
        assert "WARNING" in d.stderr()
        status, headers, body = tcp_request(
            d, {"Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": TARGET + "ListClusters"}, b"{}")
        assert status == 200
        validate_response("ListClusters", status, headers, body)
    finally:
        d.stop()


# ---- the envelope: malformed requests, over the unix socket ----

def test_unix_socket_mode_and_raw_http(daemon):
    st = os.lstat(daemon.sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == 0
    status, doc = raw(daemon, "CreateCluster", {"clusterName": "u"})
    assert status == 200 and doc["cluster"]["clusterArn"] == arn("u")
    status, doc = raw(daemon, "ListClusters")
    assert doc == {"clusterArns": [arn("u")]}


@pytest.mark.parametrize("data", [b"{", b"not json", b"[]", b"\"s\"", b"{} {}", b"{\"a\":\xff}",
                                  b"{\"clusterName\": \"a\",}"])
def test_bad_json_is_serialization_exception(daemon, data):
    status, doc = raw(daemon, "CreateCluster", raw_body=data)
    assert status == 400 and doc["__type"] == "SerializationException"
    assert raw(daemon, "ListClusters")[0] == 200  # still serving


def test_empty_body_is_empty_object(daemon):
    status, doc = raw(daemon, "ListClusters", raw_body=b"")
    assert status == 200 and doc == {"clusterArns": []}


@pytest.mark.parametrize("target", [TARGET + "FlyToTheMoon", "Other.ListClusters", TARGET, False])
def test_unknown_operation(daemon, target):
    status, doc = raw(daemon, "ListClusters", target=target)
    assert status == 400 and doc["__type"] == "UnknownOperationException"


def test_wrong_method_and_path(daemon):
    status, headers, body = unix_request(daemon.sock, "ListClusters", {}, method="GET")
    assert status == 405
    assert validate_response("ListClusters", status, headers, body)["__type"] == \
        "UnknownOperationException"
    status, headers, body = unix_request(daemon.sock, "ListClusters", {}, url="/other")
    assert status == 404
    validate_response("ListClusters", status, headers, body)


@pytest.mark.parametrize("op,body,field", [
    ("CreateCluster", {"clusterName": 5}, "clusterName"),
    ("CreateCluster", {"clusterName": ""}, "clusterName"),
    ("CreateCluster", {"tags": {"key": "k"}}, "tags"),
    ("CreateCluster", {"tags": [{"value": "v"}]}, "tags[0].key"),
    ("CreateCluster", {"tags": ["k"]}, "tags[0]"),
    ("CreateCluster", {"tags": [{"key": "k%d" % i} for i in range(51)]}, "tags"),
    ("CreateCluster", {"settings": [{"name": "other", "value": "enabled"}]}, "settings[0].name"),
    ("CreateCluster", {"settings": "x"}, "settings"),
    ("CreateCluster", {"configuration": []}, "configuration"),
    ("CreateCluster", {"configuration": {"executeCommandConfiguration": {"logging": "ALL"}}},
     "logging"),
    ("CreateCluster", {"defaultCapacityProviderStrategy": [{"capacityProvider": "FARGATE",
                                                            "weight": 1.5}]}, "weight"),
    ("DescribeClusters", {"clusters": "default"}, "clusters"),
    ("DescribeClusters", {"clusters": [1]}, "clusters[0]"),
    ("DescribeClusters", {"clusters": ["c%d" % i for i in range(101)]}, "clusters"),
    ("DescribeClusters", {"include": ["EVERYTHING"]}, "include[0]"),
    ("ListClusters", {"maxResults": "1"}, "maxResults"),
    ("ListClusters", {"maxResults": 1e300}, "maxResults"),
    ("ListClusters", {"nextToken": 3}, "nextToken"),
    ("DeleteCluster", {}, "cluster"),
    ("DeleteCluster", {"cluster": ["a"]}, "cluster"),
    ("DeleteCluster", {"cluster": "bad/name"}, "cluster"),
])
def test_malformed_members(daemon, op, body, field):
    status, doc = raw(daemon, op, body)
    assert status == 400 and doc["__type"] == "InvalidParameterException", doc
    assert field in doc["message"], doc
    assert raw(daemon, "ListClusters")[0] == 200


def test_unknown_members_are_ignored(daemon):
    status, doc = raw(daemon, "CreateCluster", {"clusterName": "u", "futureMember": {"x": 1}})
    assert status == 200


def test_service_connect_is_unsupported(daemon):
    status, doc = raw(daemon, "CreateCluster", {"clusterName": "s",
                                                "serviceConnectDefaults": {"namespace": "n"}})
    assert status == 400 and doc["__type"] == "UnsupportedFeatureException"


def test_oversized_body_then_still_serving(daemon):
    pad = b" " * (1024 * 1024)
    status, headers, body = unix_request(daemon.sock, "ListClusters", None,
                                         raw_body=b"{}" + pad)
    assert status == 413
    doc = validate_response("ListClusters", status, headers, body)
    assert doc["__type"] == "ClientException"
    # Far beyond the limit libevent itself answers 413 without buffering it.
    status, headers, body = unix_request(daemon.sock, "ListClusters", None,
                                         raw_body=b"{}" + pad * 6)
    assert status == 413
    assert raw(daemon, "ListClusters")[0] == 200
    # Just under the limit is served.
    status, doc = raw(daemon, "ListClusters", raw_body=b"{}" + b" " * (1024 * 1024 - 2))
    assert status == 200


def test_state_survives_restart(tmpdir_short):
    d = Daemon(tmpdir_short).wait_ready()
    try:
        raw(d, "CreateCluster", {"clusterName": "kept"})
    finally:
        d.stop()
    d = Daemon(tmpdir_short).wait_ready()
    try:
        assert raw(d, "ListClusters")[1] == {"clusterArns": [arn("kept")]}
    finally:
        d.stop()


def test_stale_socket_is_replaced_live_one_refused(tmpdir_short):
    d = Daemon(tmpdir_short).wait_ready()
    try:
        # A second daemon on the same socket must not steal it.
        d2 = Daemon(tmpdir_short, tcp=False, name="second")
        assert d2.proc.wait(timeout=20) == 1
        d2._stderr.close()
        assert "another daemon" in d2.stderr()
        assert raw(d, "ListClusters")[0] == 200
    finally:
        d.stop()
    # A socket file nobody serves (a crashed daemon's) is taken over.
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(d.sock))
    s.close()
    d = Daemon(tmpdir_short).wait_ready()
    try:
        assert raw(d, "ListClusters")[0] == 200
    finally:
        d.stop()


def test_daemon_is_berthd_without_the_command_line_libraries(daemon):
    """`berth daemon` execs berthd, which maps neither libcurl, libarchive
    nor libnftables (pulls and NAT run in helper processes): half the
    memory a `berth` process would keep."""
    exe = os.readlink(f"/proc/{daemon.proc.pid}/exe")
    assert os.path.basename(exe) == "berthd", exe
    maps = Path(f"/proc/{daemon.proc.pid}/maps").read_text()
    for lib in ("libcurl", "libarchive", "libnftables"):
        assert lib not in maps, f"the daemon maps {lib}"
