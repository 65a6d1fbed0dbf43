"""SSM Parameter Store and Secrets Manager on the daemon's endpoint, with
the real clients (Debian's `aws` CLI and boto3) over SigV4 TCP, every
answer validated against botocore's own ssm and secretsmanager models;
the host key and what the database file holds (no plaintext, rows that
cannot be swapped); the daemon's refusal of a key file that is not right."""
import base64
import json
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from fixtures import tasks as tk
from test_api_clusters import (ACCOUNT, AKID, AWS_CLI, FRONT_END_ERRORS, REGION, SECRET,
                               UUID_RE, Daemon, tcp_request, validate)

SESSION = botocore.session.get_session()
MODELS = {"ssm": SESSION.get_service_model("ssm"),
          "secretsmanager": SESSION.get_service_model("secretsmanager")}
TARGETS = {"ssm": "AmazonSSM.", "secretsmanager": "secretsmanager."}
# SSM answers a malformed member with ValidationException, which its
# model (like most) does not list as a shape.
EXTRA_ERRORS = {"ssm": {"ValidationException"}, "secretsmanager": set()}
INTERNAL = {"ssm": "InternalServerError", "secretsmanager": "InternalServiceError"}
SM_ARN_RE = re.compile(rf"^arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:(.+)-[A-Za-z0-9]{{6}}$")


def validate_answer(service, op, status, headers, body):
    lower = {k.lower(): v for k, v in headers.items()}
    assert UUID_RE.match(lower.get("x-amzn-requestid", "")), headers
    assert lower.get("content-type") == "application/x-amz-json-1.1"
    doc = json.loads(body)
    model = MODELS[service]
    if status == 200:
        validate(model.operation_model(op).output_shape, doc, op)
        return doc
    assert set(doc) == {"__type", "message"} and doc["message"], doc
    known = {s.name for s in model.error_shapes} | FRONT_END_ERRORS | EXTRA_ERRORS[service]
    assert doc["__type"] in known, doc
    assert (status == 500) == (doc["__type"] == INTERNAL[service]), (status, doc)
    return doc


class Recorder:
    def __init__(self, service):
        self.service, self.seen = service, []

    def __call__(self, response_dict=None, **kw):
        if response_dict is None:
            return
        op = kw["event_name"].split(".")[-1]
        self.seen.append(op)
        validate_answer(self.service, op, response_dict["status_code"], response_dict["headers"],
                        response_dict["body"])


def client(d, service):
    c = boto3.client(service, endpoint_url=d.endpoint, region_name=REGION,
                     aws_access_key_id=AKID, aws_secret_access_key=SECRET,
                     config=Config(retries={"total_max_attempts": 1}))
    c.recorder = Recorder(service)
    c.meta.events.register(f"response-received.{c.meta.service_model.service_id.hyphenize()}.*",
                           c.recorder)
    return c


def cli(d, tmp, service, *args, check=True):
    """Debian's aws CLI (its own botocore) with its own config, no network."""
    cfg = Path(tmp) / "aws-config"
    cfg.write_text(f"[default]\nregion = {REGION}\noutput = json\n")
    cred = Path(tmp) / "aws-credentials"
    cred.write_text(f"[default]\naws_access_key_id = {AKID}\naws_secret_access_key = {SECRET}\n")
    cred.chmod(0o600)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "AWS_CONFIG_FILE": str(cfg),
           "AWS_SHARED_CREDENTIALS_FILE": str(cred), "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_PAGER": "", "AWS_MAX_ATTEMPTS": "1"}
    p = subprocess.run([AWS_CLI, "--endpoint-url", d.endpoint, service, *args],
                       capture_output=True, text=True, env=env, timeout=60 * tk.SLOWDOWN)
    if check:
        assert p.returncode == 0, p.stderr
    return json.loads(p.stdout) if check and p.stdout.strip() else p


def raw(d, service, op, body):
    """An unsigned request over the unix socket, validated; (status, doc)."""
    from test_api_clusters import unix_request
    status, headers, data = unix_request(d.sock, op, body, target=TARGETS[service] + op)
    return status, validate_answer(service, op, status, headers, data)


def error_code(fn, **kw):
    with pytest.raises(ClientError) as e:
        fn(**kw)
    return e.value.response["Error"]["Code"]


@pytest.fixture
def tmpdir_short(tmp_path_factory):
    import tempfile
    d = tempfile.mkdtemp(prefix="berth-sec-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def daemon(tmpdir_short):
    d = Daemon(tmpdir_short).wait_ready()
    yield d
    d.stop()


@pytest.fixture
def ssm(daemon):
    return client(daemon, "ssm")


@pytest.fixture
def sm(daemon):
    return client(daemon, "secretsmanager")


# ---- SSM ----

def test_ssm_with_the_aws_cli(daemon, tmpdir_short):
    t = tmpdir_short
    out = cli(daemon, t, "ssm", "put-parameter", "--name", "/app/db/host", "--value",
              "db.internal", "--type", "String")
    assert out == {"Version": 1, "Tier": "Standard"}
    cli(daemon, t, "ssm", "put-parameter", "--name", "/app/db/password", "--value", "hunter2-cli",
        "--type", "SecureString")
    cli(daemon, t, "ssm", "put-parameter", "--name", "/app/hosts", "--value", "a,b,c",
        "--type", "StringList")
    p = cli(daemon, t, "ssm", "get-parameter", "--name", "/app/db/password",
            "--with-decryption")["Parameter"]
    assert p["Value"] == "hunter2-cli" and p["Type"] == "SecureString" and p["Version"] == 1
    assert p["ARN"] == f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/app/db/password"
    # Without decryption a SecureString is its ciphertext, never the value.
    p = cli(daemon, t, "ssm", "get-parameter", "--name", "/app/db/password")["Parameter"]
    assert p["Value"] != "hunter2-cli" and "hunter2" not in p["Value"]
    base64.b64decode(p["Value"], validate=True)
    # Exists: refused without --overwrite, a new version with it.
    e = cli(daemon, t, "ssm", "put-parameter", "--name", "/app/db/host", "--value", "x",
            "--type", "String", check=False)
    assert e.returncode != 0 and "ParameterAlreadyExists" in e.stderr
    out = cli(daemon, t, "ssm", "put-parameter", "--name", "/app/db/host", "--value",
              "db2.internal", "--overwrite")
    assert out["Version"] == 2
    assert cli(daemon, t, "ssm", "get-parameter", "--name",
               "/app/db/host:1")["Parameter"]["Value"] == "db.internal"
    got = cli(daemon, t, "ssm", "get-parameters-by-path", "--path", "/app", "--recursive",
              "--with-decryption")["Parameters"]
    assert {x["Name"]: x["Value"] for x in got} == {
        "/app/db/host": "db2.internal", "/app/db/password": "hunter2-cli", "/app/hosts": "a,b,c"}
    names = [x["Name"] for x in cli(daemon, t, "ssm", "describe-parameters")["Parameters"]]
    assert names == ["/app/db/host", "/app/db/password", "/app/hosts"]
    cli(daemon, t, "ssm", "delete-parameter", "--name", "/app/hosts")
    e = cli(daemon, t, "ssm", "get-parameter", "--name", "/app/hosts", check=False)
    assert e.returncode != 0 and "ParameterNotFound" in e.stderr


def test_ssm_boto3_versions_paths_and_paging(ssm):
    for i in range(5):
        ssm.put_parameter(Name=f"/svc/a/p{i}", Value=f"v{i}", Type="String")
    ssm.put_parameter(Name="/svc/a/deep/x", Value="deep", Type="String")
    ssm.put_parameter(Name="plain", Value="top", Type="String")
    for v in range(2, 5):
        assert ssm.put_parameter(Name="plain", Value=f"top{v}", Overwrite=True)["Version"] == v
    p = ssm.get_parameter(Name="plain")["Parameter"]
    assert p["Value"] == "top4" and p["Version"] == 4
    assert p["ARN"] == f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/plain"
    p = ssm.get_parameter(Name=f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/plain:2")["Parameter"]
    assert p["Value"] == "top2" and p["Selector"] == ":2"
    assert error_code(ssm.get_parameter, Name="plain:9") == "ParameterVersionNotFound"
    # The ARN of a one-level path ("/one") has the same form as a plain name's.
    ssm.put_parameter(Name="/one", Value="slashed", Type="String")
    assert ssm.get_parameter(Name=f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/one")[
        "Parameter"]["Value"] == "slashed"
    r = ssm.get_parameters(Names=["plain", "/svc/a/p0", "nope", "plain:7"])
    assert [x["Name"] for x in r["Parameters"]] == ["plain", "/svc/a/p0"]
    assert r["InvalidParameters"] == ["nope", "plain:7"]
    one = ssm.get_parameters_by_path(Path="/svc/a")["Parameters"]
    assert [x["Name"] for x in one] == [f"/svc/a/p{i}" for i in range(5)]
    # botocore's paginator, two at a time, over the recursive listing.
    pages = ssm.get_paginator("get_parameters_by_path").paginate(
        Path="/svc", Recursive=True, PaginationConfig={"PageSize": 2})
    got = [x["Name"] for pg in pages for x in pg["Parameters"]]
    assert got == ["/svc/a/deep/x"] + [f"/svc/a/p{i}" for i in range(5)]
    assert [x["Name"] for x in ssm.get_parameters_by_path(Path="/")["Parameters"]] == ["/one"]
    d = ssm.describe_parameters(ParameterFilters=[
        {"Key": "Name", "Option": "BeginsWith", "Values": ["/svc/a/p"]}])["Parameters"]
    assert len(d) == 5 and all(x["Type"] == "String" for x in d)
    ssm.put_parameter(Name="/svc/sec", Value="s3cr3t-boto", Type="SecureString",
                      Description="a secure one")
    d = ssm.describe_parameters(ParameterFilters=[
        {"Key": "Type", "Values": ["SecureString"]}])["Parameters"]
    assert [(x["Name"], x["KeyId"], x["Description"]) for x in d] == [
        ("/svc/sec", "alias/aws/ssm", "a secure one")]
    assert "Value" not in d[0]
    ssm.delete_parameter(Name="plain")
    assert error_code(ssm.delete_parameter, Name="plain") == "ParameterNotFound"
    assert set(ssm.recorder.seen) >= {"PutParameter", "GetParameter", "GetParameters",
                                      "GetParametersByPath", "DescribeParameters",
                                      "DeleteParameter"}


# ---- Secrets Manager ----

def test_secretsmanager_versions_and_stages(sm, daemon, tmpdir_short):
    c = sm.create_secret(Name="prod/db", SecretString='{"user":"app","password":"pw-one"}',
                         Description="the database")
    m = SM_ARN_RE.match(c["ARN"])
    assert m and m.group(1) == "prod/db" and c["Name"] == "prod/db"
    v1 = c["VersionId"]
    assert UUID_RE.match(v1)
    got = sm.get_secret_value(SecretId="prod/db")
    assert got["SecretString"] == '{"user":"app","password":"pw-one"}'
    assert got["VersionStages"] == ["AWSCURRENT"] and got["VersionId"] == v1
    v2 = sm.put_secret_value(SecretId=c["ARN"], SecretString="pw-two")
    assert v2["VersionStages"] == ["AWSCURRENT"]
    assert sm.get_secret_value(SecretId="prod/db")["SecretString"] == "pw-two"
    prev = sm.get_secret_value(SecretId="prod/db", VersionStage="AWSPREVIOUS")
    assert prev["VersionId"] == v1 and prev["VersionStages"] == ["AWSPREVIOUS"]
    assert sm.get_secret_value(SecretId="prod/db", VersionId=v1)["VersionId"] == v1
    # A third value: the first version loses its last stage and is gone.
    tok = "0123456789abcdef0123456789abcdef"
    v3 = sm.put_secret_value(SecretId="prod/db", SecretString="pw-three", ClientRequestToken=tok)
    assert v3["VersionId"] == tok
    # The same token with the same value again is a no-op; another value is refused.
    assert sm.put_secret_value(SecretId="prod/db", SecretString="pw-three",
                               ClientRequestToken=tok)["VersionId"] == tok
    assert error_code(sm.put_secret_value, SecretId="prod/db", SecretString="other",
                      ClientRequestToken=tok) == "ResourceExistsException"
    desc = sm.describe_secret(SecretId="prod/db")
    assert desc["VersionIdsToStages"] == {v2["VersionId"]: ["AWSPREVIOUS"], tok: ["AWSCURRENT"]}
    assert desc["Description"] == "the database" and desc["RotationEnabled"] is False
    assert error_code(sm.get_secret_value, SecretId="prod/db",
                      VersionId=v1) == "ResourceNotFoundException"
    # A custom stage, and the partial ARN (no random suffix) as the id.
    sm.put_secret_value(SecretId=f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:prod/db",
                        SecretString="pw-staged", VersionStages=["TESTING"])
    assert sm.get_secret_value(SecretId="prod/db", VersionStage="TESTING")["SecretString"] == \
        "pw-staged"
    assert sm.get_secret_value(SecretId="prod/db")["SecretString"] == "pw-three"
    # Binary values travel as base64 and come back as the same bytes.
    b = sm.create_secret(Name="blob", SecretBinary=b"\x00\x01binary\xff")
    assert sm.get_secret_value(SecretId=b["ARN"])["SecretBinary"] == b"\x00\x01binary\xff"
    # The aws CLI too.
    out = cli(daemon, tmpdir_short, "secretsmanager", "create-secret", "--name", "cli/one",
              "--secret-string", "from-cli")
    assert SM_ARN_RE.match(out["ARN"])
    out = cli(daemon, tmpdir_short, "secretsmanager", "get-secret-value", "--secret-id", "cli/one")
    assert out["SecretString"] == "from-cli"


def test_secretsmanager_list_and_delete(sm, daemon):
    for n in ("a/1", "a/2", "a/3", "b/1"):
        sm.create_secret(Name=n, SecretString=f"value-of-{n}")
    pages = sm.get_paginator("list_secrets").paginate(PaginationConfig={"PageSize": 2})
    assert [s["Name"] for p in pages for s in p["SecretList"]] == ["a/1", "a/2", "a/3", "b/1"]
    got = sm.list_secrets(Filters=[{"Key": "name", "Values": ["a/"]}], SortOrder="desc")
    assert [s["Name"] for s in got["SecretList"]] == ["a/3", "a/2", "a/1"]
    assert all(list(s["SecretVersionsToStages"].values()) == [["AWSCURRENT"]]
               for s in got["SecretList"])
    d = sm.delete_secret(SecretId="a/1", RecoveryWindowInDays=7)
    assert d["Name"] == "a/1" and d["DeletionDate"]
    assert error_code(sm.get_secret_value, SecretId="a/1") == "InvalidRequestException"
    assert error_code(sm.create_secret, Name="a/1", SecretString="x") == "InvalidRequestException"
    assert sm.describe_secret(SecretId="a/1")["DeletedDate"]
    assert "a/1" not in [s["Name"] for s in sm.list_secrets()["SecretList"]]
    # (IncludePlannedDeletion is newer than Debian's botocore: sent raw.)
    st, doc = raw(daemon, "secretsmanager", "ListSecrets", {"IncludePlannedDeletion": True})
    assert "a/1" in [s["Name"] for s in doc["SecretList"]]
    sm.delete_secret(SecretId="a/2", ForceDeleteWithoutRecovery=True)
    assert error_code(sm.describe_secret, SecretId="a/2") == "ResourceNotFoundException"
    again = sm.create_secret(Name="a/2", SecretString="new")
    assert sm.get_secret_value(SecretId="a/2")["ARN"] == again["ARN"]
    assert set(sm.recorder.seen) >= {"CreateSecret", "ListSecrets", "DeleteSecret",
                                     "GetSecretValue", "DescribeSecret"}


BAD = [
    # (service, operation, body, error code)
    ("ssm", "PutParameter", {"Name": "/x", "Value": "v"}, "ValidationException"),
    ("ssm", "PutParameter", {"Name": "/x", "Value": "v", "Type": "Number"}, "ValidationException"),
    ("ssm", "PutParameter", {"Name": "no/slash", "Value": "v", "Type": "String"},
     "ValidationException"),
    ("ssm", "PutParameter", {"Name": "/a b", "Value": "v", "Type": "String"}, "ValidationException"),
    ("ssm", "PutParameter", {"Name": "awsthing", "Value": "v", "Type": "String"},
     "ValidationException"),
    ("ssm", "PutParameter", {"Name": "/" + "/".join("l" * 16), "Value": "v", "Type": "String"},
     "HierarchyLevelLimitExceededException"),
    ("ssm", "PutParameter", {"Name": "/x", "Value": "", "Type": "String"}, "ValidationException"),
    ("ssm", "PutParameter", {"Name": "/x", "Value": "v" * 4097, "Type": "String"},
     "ValidationException"),
    ("ssm", "PutParameter", {"Name": "/x", "Value": "abc", "Type": "String",
                             "AllowedPattern": "^[0-9]+$"}, "ParameterPatternMismatchException"),
    ("ssm", "PutParameter", {"Name": "/x", "Value": "abc", "Type": "String",
                             "AllowedPattern": "(["}, "InvalidAllowedPatternException"),
    ("ssm", "PutParameter", {"Name": "/x", "Value": "v", "Type": "String", "Overwrite": "yes"},
     "ValidationException"),
    ("ssm", "PutParameter", {"Name": "/x", "Value": "v", "Type": "String",
                             "Tags": [{"Key": "k", "Value": "v"}]}, "ValidationException"),
    ("ssm", "GetParameter", {"Name": "/missing"}, "ParameterNotFound"),
    ("ssm", "GetParameter", {"Name": "/x:label"}, "ParameterVersionNotFound"),
    ("ssm", "GetParameter", {"Name": "arn:aws:ssm:eu-west-1:000000000000:parameter/x"},
     "ValidationException"),
    ("ssm", "GetParameters", {"Names": []}, "ValidationException"),
    ("ssm", "GetParametersByPath", {"Path": "relative"}, "ValidationException"),
    ("ssm", "GetParametersByPath", {"Path": "/x", "MaxResults": 11}, "ValidationException"),
    ("ssm", "GetParametersByPath", {"Path": "/x", "NextToken": "bm90LW91cnM="},
     "InvalidNextToken"),
    ("ssm", "DescribeParameters", {"ParameterFilters": [{"Key": "KeyId", "Values": ["k"]}]},
     "InvalidFilterKey"),
    ("ssm", "DescribeParameters", {"Filters": [{"Key": "Name", "Values": ["x"]}]},
     "InvalidFilterKey"),
    ("ssm", "DeleteParameter", {"Name": "/missing"}, "ParameterNotFound"),
    ("secretsmanager", "CreateSecret", {"Name": "bad name!"}, "InvalidParameterException"),
    ("secretsmanager", "CreateSecret", {"Name": "x", "SecretString": "a", "SecretBinary": "YQ=="},
     "InvalidParameterException"),
    ("secretsmanager", "CreateSecret", {"Name": "x", "ClientRequestToken": "short"},
     "InvalidParameterException"),
    ("secretsmanager", "CreateSecret", {"Name": "x", "SecretBinary": "not base64!"},
     "InvalidParameterException"),
    ("secretsmanager", "CreateSecret", {"Name": "x", "Tags": [{"Key": "k", "Value": "v"}]},
     "InvalidRequestException"),
    ("secretsmanager", "CreateSecret", {"Name": "x", "SecretString": "s" * 65537},
     "InvalidParameterException"),
    ("secretsmanager", "GetSecretValue", {"SecretId": "missing"}, "ResourceNotFoundException"),
    ("secretsmanager", "GetSecretValue", {"SecretId": "exists", "VersionStage": "NOPE"},
     "ResourceNotFoundException"),
    ("secretsmanager", "GetSecretValue", {"SecretId": "exists", "VersionId": "x"},
     "InvalidParameterException"),
    ("secretsmanager", "PutSecretValue", {"SecretId": "exists"}, "InvalidParameterException"),
    ("secretsmanager", "PutSecretValue", {"SecretId": "missing", "SecretString": "v"},
     "ResourceNotFoundException"),
    ("secretsmanager", "PutSecretValue", {"SecretId": "exists", "SecretString": "v",
                                          "VersionStages": []}, "InvalidParameterException"),
    ("secretsmanager", "PutSecretValue", {"SecretId": "exists", "SecretString": "v",
                                          "RotationToken": "t"}, "InvalidRequestException"),
    ("secretsmanager", "CreateSecret", {"Name": "exists", "SecretString": "again"},
     "ResourceExistsException"),
    ("secretsmanager", "DeleteSecret", {"SecretId": "exists", "RecoveryWindowInDays": 3},
     "InvalidParameterException"),
    ("secretsmanager", "DeleteSecret", {"SecretId": "exists", "RecoveryWindowInDays": 7,
                                        "ForceDeleteWithoutRecovery": True},
     "InvalidParameterException"),
    ("secretsmanager", "ListSecrets", {"NextToken": "garbage"}, "InvalidNextTokenException"),
    ("secretsmanager", "ListSecrets", {"Filters": [{"Key": "tag-key", "Values": ["x"]}]},
     "InvalidParameterException"),
    ("secretsmanager", "DescribeSecret", {"SecretId": ""}, "InvalidParameterException"),
]


def test_bad_requests_get_the_services_errors_and_change_nothing(daemon):
    st, _ = raw(daemon, "secretsmanager", "CreateSecret",
                {"Name": "exists", "SecretString": "kept", "ClientRequestToken": "t" * 32})
    assert st == 200
    for service, op, body, code in BAD:
        st, doc = raw(daemon, service, op, body)
        assert (st, doc["__type"]) == (400, code), (service, op, body, doc)
    # Nothing changed: no parameter, one secret with its one value.
    st, doc = raw(daemon, "ssm", "DescribeParameters", {})
    assert doc["Parameters"] == []
    st, doc = raw(daemon, "secretsmanager", "ListSecrets", {})
    assert [s["Name"] for s in doc["SecretList"]] == ["exists"]
    st, doc = raw(daemon, "secretsmanager", "GetSecretValue", {"SecretId": "exists"})
    assert doc["SecretString"] == "kept" and doc["VersionId"] == "t" * 32


def test_a_request_signed_for_another_service_is_refused(daemon):
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    data = json.dumps({"Name": "/x"}).encode()
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=daemon.endpoint + "/", data=data,
        headers={"Content-Type": "application/x-amz-json-1.1",
                 "X-Amz-Target": "AmazonSSM.GetParameter"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(AKID, SECRET), "ecs",
                            REGION).add_auth(req)
    status, headers, body = tcp_request(daemon, dict(req.headers), data)
    doc = validate_answer("ssm", "GetParameter", status, headers, body)
    assert status == 403 and doc["__type"] == "InvalidSignatureException", doc


# ---- the host key and the database ----

PLAINTEXTS = ["plain-param-7f3a9c", "secure-param-81be0d", "sm-string-c44e12", "sm-binary-9d0f55"]


def put_all(ssm, sm):
    ssm.put_parameter(Name="/enc/plain", Value=PLAINTEXTS[0], Type="String")
    ssm.put_parameter(Name="/enc/secure", Value=PLAINTEXTS[1], Type="SecureString")
    sm.create_secret(Name="enc/s", SecretString=PLAINTEXTS[2])
    sm.create_secret(Name="enc/b", SecretBinary=PLAINTEXTS[3].encode())


def db_bytes(root):
    return b"".join(p.read_bytes() for p in Path(root).glob("berth.db*"))


def test_values_are_sealed_at_rest_and_rows_cannot_be_swapped(tmpdir_short):
    d = Daemon(tmpdir_short).wait_ready()
    try:
        put_all(client(d, "ssm"), client(d, "secretsmanager"))
        key = d.root / "secrets.key"
        st = key.stat()
        assert st.st_size == 32 and (st.st_mode & 0o777) == 0o600 and st.st_uid == os.geteuid()
        blob = db_bytes(d.root)
        for v in PLAINTEXTS:
            assert v.encode() not in blob, f"{v} is in the database in clear"
            assert base64.b64encode(v.encode()) not in blob
        # Swap attack: one row's sealed value copied into another's row
        # does not open there (its identity is the AAD).
        with sqlite3.connect(d.root / "berth.db") as db:
            db.execute("UPDATE ssm_parameter_versions SET sealed = (SELECT sealed FROM "
                       "ssm_parameter_versions WHERE name = '/enc/secure') WHERE name = '/enc/plain'")
        st, doc = raw(d, "ssm", "GetParameter", {"Name": "/enc/plain"})
        assert st == 500 and doc["__type"] == "InternalServerError"
        assert PLAINTEXTS[1] not in json.dumps(doc) and "does not open" in doc["message"]
    finally:
        err = d.stop()
    for v in PLAINTEXTS:
        assert v not in err
    # After shutdown (WAL checkpointed) the file still holds no plaintext.
    blob = db_bytes(d.root)
    assert not any(v.encode() in blob for v in PLAINTEXTS)


def start_fails(tmp, what):
    """A daemon on TMP that must refuse to start; its stderr."""
    d = Daemon(tmp, name="refused")
    try:
        rc = d.proc.wait(timeout=30 * tk.SLOWDOWN)
    except subprocess.TimeoutExpired:
        d.proc.kill()
        d.proc.wait()
        rc = 0
    finally:
        d._stderr.close()
    assert rc != 0, f"the daemon started with {what}"
    return d.stderr()


def test_a_wrong_key_file_stops_the_daemon_at_start(tmpdir_short):
    d = Daemon(tmpdir_short).wait_ready()
    put_all(client(d, "ssm"), client(d, "secretsmanager"))
    d.stop()
    key = Path(tmpdir_short) / "root" / "secrets.key"
    good = key.read_bytes()

    key.chmod(0o644)
    assert "mode 0644 lets others read or write it" in start_fails(tmpdir_short, "mode 0644")
    key.chmod(0o600)
    key.write_bytes(good[:16])
    assert "16 bytes, not the 32 of a key" in start_fails(tmpdir_short, "a short key")
    key.write_bytes(os.urandom(32))
    err = start_fails(tmpdir_short, "another key")
    assert "not the key the values in" in err and "restore the key file" in err
    key.unlink()
    err = start_fails(tmpdir_short, "no key")
    assert "missing, but" in err and "restore the key file" in err
    key.write_bytes(good)
    key.chmod(0o600)
    os.chown(key, 65534, 65534)
    assert "owned by uid 65534" in start_fails(tmpdir_short, "a key owned by nobody")
    os.chown(key, 0, 0)
    # The right key again: the values are back.
    d = Daemon(tmpdir_short, name="again").wait_ready()
    try:
        p = client(d, "ssm").get_parameter(Name="/enc/secure", WithDecryption=True)["Parameter"]
        assert p["Value"] == PLAINTEXTS[1]
    finally:
        d.stop()


def test_a_copied_database_without_its_key_reveals_nothing(tmpdir_short):
    d = Daemon(tmpdir_short).wait_ready()
    put_all(client(d, "ssm"), client(d, "secretsmanager"))
    d.stop()
    other = Path(tmpdir_short) / "thief"
    (other / "root").mkdir(parents=True, mode=0o700)
    shutil.copy(Path(tmpdir_short) / "root" / "berth.db", other / "root" / "berth.db")
    err = start_fails(other, "a stolen database and no key")
    assert "missing, but" in err
    assert not (other / "root" / "secrets.key").exists(), "a key was made for sealed values"
