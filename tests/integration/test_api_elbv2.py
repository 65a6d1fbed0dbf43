"""The ELBv2 API (`boto3.client("elbv2")`, `aws elbv2`) served by `berth
daemon`: AWS Query requests, XML answers.

Every answer a client receives is checked against botocore's own elbv2
model: the XML is read strictly (an element the model does not know, a list
not made of <member>s, a bad number, boolean or timestamp fails) and the
result goes through the same `validate` as the ECS answers.  Errors must be
<ErrorResponse>s with a code the model (or AWS's common errors) knows and
the model's HTTP status."""
import datetime
import http.client
import os
import subprocess
import time
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from fixtures import tasks as tk
from test_api_clusters import (AKID, AWS_CLI, REGION, SECRET, UUID_RE, Daemon,  # noqa: F401
                               tmpdir_short, validate)

MODEL = botocore.session.get_session().get_service_model("elbv2")
NS = "{http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/}"
MODEL_CODES = {s.metadata["error"]["code"]: s.metadata["error"]["httpStatusCode"]
               for s in MODEL.error_shapes}
# AWS's errors common to every Query API (the front end's), with theirs.
COMMON_CODES = {"ValidationError": 400, "InvalidAction": 400, "MissingAction": 400,
                "MissingParameter": 400, "InvalidParameterValue": 400,
                "MissingAuthenticationToken": 403, "IncompleteSignature": 403,
                "SignatureDoesNotMatch": 403, "InvalidClientTokenId": 403,
                "AccessDenied": 403, "RequestExpired": 403, "InternalFailure": 500}


# ---- the XML validator ----

def _from_xml(shape, el, path):
    """EL read strictly as SHAPE, into the JSON-like value `validate` takes."""
    t = shape.type_name
    kids = list(el)
    if t == "structure":
        names = {m.serialization.get("name", k): k for k, m in shape.members.items()}
        out = {}
        for k in kids:
            tag = k.tag.replace(NS, "")
            assert tag in names, f"{path}.{tag}: not a member of {shape.name}"
            assert names[tag] not in out, f"{path}.{tag}: given twice"
            out[names[tag]] = _from_xml(shape.members[names[tag]], k, f"{path}.{tag}")
        return out
    if t == "list":
        assert all(k.tag == NS + "member" for k in kids), f"{path}: list items must be <member>"
        return [_from_xml(shape.member, k, f"{path}[{i}]") for i, k in enumerate(kids)]
    assert not kids, f"{path}: a {t} has no child elements"
    text = el.text or ""
    if t == "string":
        return text
    if t in ("integer", "long"):
        assert text.lstrip("-").isdigit(), f"{path}: {text!r} is not an integer"
        return int(text)
    if t == "boolean":
        assert text in ("true", "false"), f"{path}: {text!r} is not a boolean"
        return text == "true"
    if t == "timestamp":
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
    raise AssertionError(f"{path}: shape type {t} not handled")


def validate_answer(op, status, headers, body):
    """One HTTP answer of the Query protocol; the error code when it is one."""
    lower = {k.lower(): v for k, v in headers.items()}
    assert UUID_RE.match(lower.get("x-amzn-requestid", "")), headers
    assert lower.get("content-type") == "text/xml", headers
    root = ET.fromstring(body)
    if status == 200:
        assert root.tag == NS + op + "Response", root.tag
        result, meta = list(root)
        assert result.tag == NS + op + "Result"
        assert meta.find(NS + "RequestId").text == lower["x-amzn-requestid"]
        shape = MODEL.operation_model(op).output_shape
        if shape is None:
            assert not list(result)
            return None
        validate(shape, _from_xml(shape, result, op), op)
        return None
    assert root.tag == NS + "ErrorResponse", root.tag
    err = root.find(NS + "Error")
    assert [e.tag.replace(NS, "") for e in err] == ["Type", "Code", "Message"]
    code = err.find(NS + "Code").text
    assert err.find(NS + "Message").text
    assert root.find(NS + "RequestId").text == lower["x-amzn-requestid"]
    want = MODEL_CODES.get(code, COMMON_CODES.get(code))
    assert want is not None, f"error code {code} is neither the model's nor a common one"
    assert status == want, (code, status, want)
    assert err.find(NS + "Type").text == ("Receiver" if status >= 500 else "Sender")
    return code


class Recorder:
    def __init__(self):
        self.seen = []

    def __call__(self, response_dict=None, **kw):
        if response_dict is None:
            return
        op = kw["event_name"].split(".")[-1]
        self.seen.append(op)
        validate_answer(op, response_dict["status_code"], response_dict["headers"],
                        response_dict["body"])


def make_elbv2(d, secret=SECRET, check_params=True):
    """boto3's elbv2 client; check_params=False lets bad values reach the daemon."""
    c = boto3.client("elbv2", endpoint_url=d.endpoint, region_name=REGION,
                     aws_access_key_id=AKID, aws_secret_access_key=secret,
                     config=Config(retries={"total_max_attempts": 1},
                                   parameter_validation=check_params))
    c.recorder = Recorder()
    c.meta.events.register("response-received.elastic-load-balancing-v2.*", c.recorder)
    return c


@pytest.fixture
def daemon(tmpdir_short):
    d = Daemon(tmpdir_short, extra=("--lb-address", "127.0.0.1")).wait_ready()
    yield d
    d.stop()


@pytest.fixture
def elb(daemon):
    return make_elbv2(daemon)


def code_of(excinfo):
    return excinfo.value.response["Error"]["Code"]


def make_lb_tg(elb, name="web", lb_type="application", proto="HTTP"):
    lb = elb.create_load_balancer(Name=name, Type=lb_type)["LoadBalancers"][0]
    tg = elb.create_target_group(Name=f"{name}-tg", Protocol=proto, Port=8080,
                                 TargetType="ip")["TargetGroups"][0]
    return lb, tg


# ---- the happy path ----

def test_load_balancers_target_groups_listeners(elb):
    lb, tg = make_lb_tg(elb)
    assert lb["LoadBalancerArn"].startswith(
        f"arn:aws:elasticloadbalancing:{REGION}:000000000000:loadbalancer/app/web/")
    assert lb["DNSName"] == "127.0.0.1" and lb["State"]["Code"] == "active"
    assert lb["Type"] == "application" and lb["Scheme"] == "internet-facing"
    assert tg["HealthCheckPath"] == "/" and tg["Matcher"] == {"HttpCode": "200"}
    assert tg["HealthCheckTimeoutSeconds"] == 5 and tg["LoadBalancerArns"] == []
    port = tk_free_port()
    l = elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
                            DefaultActions=[{"Type": "forward",
                                             "TargetGroupArn": tg["TargetGroupArn"]}])
    l = l["Listeners"][0]
    assert l["Port"] == port and l["DefaultActions"][0]["TargetGroupArn"] == tg["TargetGroupArn"]
    got = elb.describe_target_groups(Names=["web-tg"])["TargetGroups"][0]
    assert got["LoadBalancerArns"] == [lb["LoadBalancerArn"]]
    assert elb.describe_load_balancers(Names=["web"])["LoadBalancers"][0]["LoadBalancerArn"] \
        == lb["LoadBalancerArn"]
    ls = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert [x["ListenerArn"] for x in ls] == [l["ListenerArn"]]
    # Weighted forward to two groups, then a fixed response.
    tg2 = elb.create_target_group(Name="web-tg2", Protocol="HTTP", Port=8081,
                                  TargetType="ip")["TargetGroups"][0]
    m = elb.modify_listener(ListenerArn=l["ListenerArn"], DefaultActions=[{
        "Type": "forward", "ForwardConfig": {"TargetGroups": [
            {"TargetGroupArn": tg["TargetGroupArn"], "Weight": 3},
            {"TargetGroupArn": tg2["TargetGroupArn"], "Weight": 1}]}}])["Listeners"][0]
    weights = {g["TargetGroupArn"]: g["Weight"]
               for g in m["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]}
    assert weights == {tg["TargetGroupArn"]: 3, tg2["TargetGroupArn"]: 1}
    m = elb.modify_listener(ListenerArn=l["ListenerArn"], DefaultActions=[{
        "Type": "fixed-response", "FixedResponseConfig": {
            "StatusCode": "503", "ContentType": "text/plain", "MessageBody": "down"}}])
    assert m["Listeners"][0]["DefaultActions"][0]["FixedResponseConfig"]["MessageBody"] == "down"
    elb.delete_listener(ListenerArn=l["ListenerArn"])
    assert elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] == []
    elb.delete_target_group(TargetGroupArn=tg2["TargetGroupArn"])
    elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    assert elb.describe_load_balancers()["LoadBalancers"] == []
    assert {"CreateLoadBalancer", "DescribeListeners", "ModifyListener"} <= set(elb.recorder.seen)


def tk_free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_target_group_health_check_and_attributes(elb):
    tg = elb.create_target_group(
        Name="api", Protocol="HTTP", Port=80, TargetType="ip", HealthCheckPath="/healthz",
        HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2,
        UnhealthyThresholdCount=3, Matcher={"HttpCode": "200-299"},
        Tags=[{"Key": "team", "Value": "edge"}])["TargetGroups"][0]
    assert (tg["HealthCheckPath"], tg["HealthCheckIntervalSeconds"], tg["Matcher"]["HttpCode"]) \
        == ("/healthz", 5, "200-299")
    arn = tg["TargetGroupArn"]
    attrs = {a["Key"]: a["Value"] for a in
             elb.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]}
    assert attrs["deregistration_delay.timeout_seconds"] == "300"
    elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "0"},
        {"Key": "slow_start.duration_seconds", "Value": "30"}])
    attrs = {a["Key"]: a["Value"] for a in
             elb.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]}
    assert attrs == {"deregistration_delay.timeout_seconds": "0",
                     "slow_start.duration_seconds": "30"}
    m = elb.modify_target_group(TargetGroupArn=arn, HealthCheckPath="/ready",
                                HealthCheckIntervalSeconds=10)["TargetGroups"][0]
    assert (m["HealthCheckPath"], m["HealthCheckIntervalSeconds"]) == ("/ready", 10)
    tags = elb.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"]
    assert tags == [{"Key": "team", "Value": "edge"}]
    elb.add_tags(ResourceArns=[arn], Tags=[{"Key": "env", "Value": "prod"}])
    elb.remove_tags(ResourceArns=[arn], TagKeys=["team"])
    tags = elb.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"]
    assert tags == [{"Key": "env", "Value": "prod"}]


def test_targets_register_drain_and_health(elb):
    lb, tg = make_lb_tg(elb)
    arn = tg["TargetGroupArn"]
    elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": "127.0.0.2"},
                                                      {"Id": "127.0.0.3", "Port": 9000}])
    h = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    got = {(d["Target"]["Id"], d["Target"]["Port"]): d["TargetHealth"] for d in h}
    # No listener forwards to the group yet: unused, as ELB says.
    assert got[("127.0.0.2", 8080)] == {"State": "unused", "Reason": "Target.NotInUse",
                                        "Description": got[("127.0.0.2", 8080)]["Description"]}
    assert set(got) == {("127.0.0.2", 8080), ("127.0.0.3", 9000)}
    elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": "127.0.0.3", "Port": 9000}])
    h = elb.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": "127.0.0.3", "Port": 9000}])
    th = h["TargetHealthDescriptions"][0]["TargetHealth"]
    assert (th["State"], th["Reason"]) == ("draining", "Target.DeregistrationInProgress")
    # Deregistration delay 0: gone at once.
    elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "0"}])
    elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": "127.0.0.2"}])
    h = elb.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": "127.0.0.2"}])
    th = h["TargetHealthDescriptions"][0]["TargetHealth"]
    assert (th["State"], th["Reason"]) == ("unused", "Target.NotRegistered")


def test_rules_path_and_host(elb):
    lb, tg = make_lb_tg(elb)
    tg2 = elb.create_target_group(Name="api", Protocol="HTTP", Port=9000,
                                  TargetType="ip")["TargetGroups"][0]
    l = elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP",
                            Port=tk_free_port(), DefaultActions=[
                                {"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    larn = l["Listeners"][0]["ListenerArn"]
    r1 = elb.create_rule(ListenerArn=larn, Priority=20, Conditions=[
        {"Field": "path-pattern", "Values": ["/api/*"]}],
        Actions=[{"Type": "forward", "TargetGroupArn": tg2["TargetGroupArn"]}])["Rules"][0]
    r2 = elb.create_rule(ListenerArn=larn, Priority=10, Conditions=[
        {"Field": "host-header", "HostHeaderConfig": {"Values": ["api.example.com"]}}],
        Actions=[{"Type": "fixed-response",
                  "FixedResponseConfig": {"StatusCode": "404"}}])["Rules"][0]
    assert r1["Priority"] == "20" and r1["Conditions"][0]["PathPatternConfig"]["Values"] == ["/api/*"]
    rules = elb.describe_rules(ListenerArn=larn)["Rules"]
    assert [r["Priority"] for r in rules] == ["10", "20", "default"]
    assert rules[-1]["IsDefault"] is True
    one = elb.describe_rules(RuleArns=[r1["RuleArn"]])["Rules"]
    assert [r["RuleArn"] for r in one] == [r1["RuleArn"]]
    with pytest.raises(ClientError) as e:
        elb.delete_rule(RuleArn=rules[-1]["RuleArn"])
    assert code_of(e) == "OperationNotPermitted"
    elb.delete_rule(RuleArn=r2["RuleArn"])
    assert [r["Priority"] for r in elb.describe_rules(ListenerArn=larn)["Rules"]] == ["20", "default"]
    # A group a rule forwards to is in use.
    with pytest.raises(ClientError) as e:
        elb.delete_target_group(TargetGroupArn=tg2["TargetGroupArn"])
    assert code_of(e) == "ResourceInUse"


def test_quota(elb):
    for i in range(50):
        elb.create_load_balancer(Name=f"lb{i}")
    with pytest.raises(ClientError) as e:
        elb.create_load_balancer(Name="one-too-many")
    assert code_of(e) == "TooManyLoadBalancers"


def test_paging(elb):
    for i in range(5):
        elb.create_target_group(Name=f"tg{i}", Protocol="TCP", Port=80 + i, TargetType="ip")
    p1 = elb.describe_target_groups(PageSize=2)
    names = [t["TargetGroupName"] for t in p1["TargetGroups"]]
    marker = p1["NextMarker"]
    while marker:
        p = elb.describe_target_groups(PageSize=2, Marker=marker)
        names += [t["TargetGroupName"] for t in p["TargetGroups"]]
        marker = p.get("NextMarker")
    assert names == [f"tg{i}" for i in range(5)]


def aws_elbv2(d, tmp, *args, check=True):
    cfg = Path(tmp) / "aws-config"
    cfg.write_text(f"[default]\nregion = {REGION}\noutput = json\n")
    cred = Path(tmp) / "aws-credentials"
    cred.write_text(f"[default]\naws_access_key_id = {AKID}\naws_secret_access_key = {SECRET}\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "AWS_CONFIG_FILE": str(cfg),
           "AWS_SHARED_CREDENTIALS_FILE": str(cred), "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_PAGER": "", "AWS_MAX_ATTEMPTS": "1"}
    p = subprocess.run([AWS_CLI, "--endpoint-url", d.endpoint, "elbv2", *args],
                       capture_output=True, text=True, env=env, timeout=60 * tk.SLOWDOWN)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_aws_cli(daemon, tmpdir_short):
    import json
    out = json.loads(aws_elbv2(daemon, tmpdir_short, "create-load-balancer", "--name", "cli",
                               "--type", "network").stdout)
    assert out["LoadBalancers"][0]["Type"] == "network"
    out = json.loads(aws_elbv2(daemon, tmpdir_short, "describe-load-balancers").stdout)
    assert [x["LoadBalancerName"] for x in out["LoadBalancers"]] == ["cli"]
    p = aws_elbv2(daemon, tmpdir_short, "describe-load-balancers", "--names", "nope", check=False)
    assert p.returncode != 0 and "LoadBalancerNotFound" in p.stderr
    # Nested members the CLI serialises itself: actions, health checks, tags.
    tg = json.loads(aws_elbv2(daemon, tmpdir_short, "create-target-group", "--name", "cli-tg",
                              "--protocol", "TCP", "--port", "9000", "--target-type", "ip",
                              "--health-check-interval-seconds", "10", "--tags",
                              "Key=team,Value=edge").stdout)["TargetGroups"][0]
    assert tg["HealthCheckIntervalSeconds"] == 10 and tg["HealthCheckProtocol"] == "TCP"
    port = tk_free_port()
    out = json.loads(aws_elbv2(daemon, tmpdir_short, "create-listener", "--load-balancer-arn",
                               out["LoadBalancers"][0]["LoadBalancerArn"], "--protocol", "TCP",
                               "--port", str(port), "--default-actions",
                               json.dumps([{"Type": "forward", "ForwardConfig": {"TargetGroups": [
                                   {"TargetGroupArn": tg["TargetGroupArn"], "Weight": 5}]}}])).stdout)
    action = out["Listeners"][0]["DefaultActions"][0]
    assert action["ForwardConfig"]["TargetGroups"][0]["Weight"] == 5
    out = json.loads(aws_elbv2(daemon, tmpdir_short, "describe-tags", "--resource-arns",
                               tg["TargetGroupArn"]).stdout)
    assert out["TagDescriptions"][0]["Tags"] == [{"Key": "team", "Value": "edge"}]


# ---- bad requests ----

def raw_query(d, form, sign=True, service="elasticloadbalancing", secret=SECRET):
    """A Query request as botocore would sign it, or not signed at all."""
    data = urllib.parse.urlencode(form).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    if sign:
        req = botocore.awsrequest.AWSRequest(method="POST", url=d.endpoint + "/", data=data,
                                             headers=headers)
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(AKID, secret), service,
                                REGION).add_auth(req)
        headers = dict(req.headers.items())
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
    try:
        c.request("POST", "/", body=data, headers=headers)
        r = c.getresponse()
        status, hs, body = r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()
    return status, validate_answer(form.get("Action", ""), status, hs, body)


def test_bad_requests(daemon):
    elb = make_elbv2(daemon, check_params=False)
    lb, tg = make_lb_tg(elb)
    lb_arn, tg_arn = lb["LoadBalancerArn"], tg["TargetGroupArn"]
    port = tk_free_port()
    fwd = [{"Type": "forward", "TargetGroupArn": tg_arn}]
    l = elb.create_listener(LoadBalancerArn=lb_arn, Protocol="HTTP", Port=port,
                            DefaultActions=fwd)["Listeners"][0]
    gone = lb_arn.rsplit("/", 1)[0] + "/0123456789abcdef"
    gone_tg = tg_arn.rsplit("/", 1)[0] + "/0123456789abcdef"
    cases = [
        (lambda: elb.describe_load_balancers(LoadBalancerArns=[gone]), "LoadBalancerNotFound"),
        (lambda: elb.describe_target_groups(TargetGroupArns=[gone_tg]), "TargetGroupNotFound"),
        (lambda: elb.register_targets(TargetGroupArn=gone_tg, Targets=[{"Id": "10.0.0.1"}]),
         "TargetGroupNotFound"),
        (lambda: elb.create_listener(LoadBalancerArn=gone, Protocol="HTTP", Port=80,
                                     DefaultActions=fwd), "LoadBalancerNotFound"),
        (lambda: elb.create_listener(LoadBalancerArn=lb_arn, Protocol="HTTP", Port=0,
                                     DefaultActions=fwd), "ValidationError"),
        (lambda: elb.create_listener(LoadBalancerArn=lb_arn, Protocol="HTTP", Port=70000,
                                     DefaultActions=fwd), "ValidationError"),
        (lambda: elb.create_listener(LoadBalancerArn=lb_arn, Protocol="HTTP", Port=port,
                                     DefaultActions=fwd), "DuplicateListener"),
        (lambda: elb.create_listener(LoadBalancerArn=lb_arn, Protocol="HTTPS", Port=443,
                                     DefaultActions=fwd), "UnsupportedProtocol"),
        (lambda: elb.create_listener(LoadBalancerArn=lb_arn, Protocol="TCP", Port=81,
                                     DefaultActions=fwd), "IncompatibleProtocols"),
        (lambda: elb.create_listener(LoadBalancerArn=lb_arn, Protocol="HTTP", Port=82,
                                     DefaultActions=[{"Type": "redirect", "RedirectConfig": {
                                         "StatusCode": "HTTP_301"}}]), "InvalidLoadBalancerAction"),
        (lambda: elb.create_listener(LoadBalancerArn=lb_arn, Protocol="HTTP", Port=83,
                                     DefaultActions=[{"Type": "forward",
                                                      "TargetGroupArn": gone_tg}]),
         "TargetGroupNotFound"),
        (lambda: elb.create_listener(LoadBalancerArn=lb_arn, Protocol="HTTP", Port=84,
                                     DefaultActions=fwd, SslPolicy="ELBSecurityPolicy-2016-08"),
         "ValidationError"),
        (lambda: elb.create_load_balancer(Name="web"), "DuplicateLoadBalancerName"),
        (lambda: elb.create_load_balancer(Name="bad_name!"), "ValidationError"),
        (lambda: elb.create_load_balancer(Name="gw", Type="gateway"), "ValidationError"),
        (lambda: elb.create_target_group(Name="web-tg", Protocol="HTTP", Port=80, TargetType="ip"),
         "DuplicateTargetGroupName"),
        (lambda: elb.create_target_group(Name="x", Protocol="HTTP", Port=80,
                                         HealthCheckIntervalSeconds=1), "ValidationError"),
        (lambda: elb.create_target_group(Name="x", Protocol="HTTP", Port=80,
                                         HealthCheckIntervalSeconds=5,
                                         HealthCheckTimeoutSeconds=10), "ValidationError"),
        (lambda: elb.create_target_group(Name="x", Protocol="HTTP", Port=80,
                                         Matcher={"HttpCode": "600"}), "ValidationError"),
        (lambda: elb.create_target_group(Name="x", Protocol="TCP", Port=80,
                                         HealthCheckPath="/x"), "ValidationError"),
        (lambda: elb.create_target_group(Name="x", Protocol="HTTP", Port=80,
                                         TargetType="lambda"), "ValidationError"),
        (lambda: elb.create_target_group(Name="x", Protocol="HTTP", Port=80,
                                         HealthCheckProtocol="TCP"), "ValidationError"),
        (lambda: elb.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": "169.254.169.254"}]),
         "InvalidTarget"),
        (lambda: elb.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": "not-an-ip"}]),
         "InvalidTarget"),
        (lambda: elb.deregister_targets(TargetGroupArn=tg_arn, Targets=[{"Id": "10.9.9.9"}]),
         "InvalidTarget"),
        (lambda: elb.modify_target_group_attributes(TargetGroupArn=tg_arn, Attributes=[
            {"Key": "stickiness.enabled", "Value": "true"}]), "ValidationError"),
        (lambda: elb.modify_target_group_attributes(TargetGroupArn=tg_arn, Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": "9999"}]), "ValidationError"),
        (lambda: elb.create_rule(ListenerArn=l["ListenerArn"], Priority=1, Conditions=[
            {"Field": "http-request-method", "Values": ["GET"]}], Actions=fwd), "ValidationError"),
        (lambda: elb.delete_target_group(TargetGroupArn=tg_arn), "ResourceInUse"),
        (lambda: elb.add_tags(ResourceArns=[tg_arn], Tags=[{"Key": "a", "Value": "1"},
                                                           {"Key": "a", "Value": "2"}]),
         "DuplicateTagKeys"),
        (lambda: elb.describe_tags(ResourceArns=[gone]), "LoadBalancerNotFound"),
        (lambda: elb.delete_listener(ListenerArn=l["ListenerArn"] + "0"), "ListenerNotFound"),
    ]
    for i, (fn, want) in enumerate(cases):
        with pytest.raises(ClientError) as e:
            fn()
        assert code_of(e) == want, (i, e.value.response["Error"])
    # The unknown action, the missing Version, no or a wrong signature.
    status, code = raw_query(daemon, {"Action": "CreateTrustStore", "Version": "2015-12-01"})
    assert (status, code) == (400, "InvalidAction")
    status, code = raw_query(daemon, {"Action": "DescribeLoadBalancers"})
    assert (status, code) == (400, "MissingParameter")
    status, code = raw_query(daemon, {"Action": "DescribeLoadBalancers", "Version": "2015-12-01",
                                      "Names.member.2": "x"})
    assert (status, code) == (400, "ValidationError")
    status, code = raw_query(daemon, {"Action": "DescribeLoadBalancers", "Version": "2015-12-01"},
                             sign=False)
    assert (status, code) == (403, "MissingAuthenticationToken")
    status, code = raw_query(daemon, {"Action": "DescribeLoadBalancers", "Version": "2015-12-01"},
                             service="ecs")
    assert status == 403 and code in ("SignatureDoesNotMatch", "IncompleteSignature"), code
    status, code = raw_query(daemon, {"Action": "DescribeLoadBalancers", "Version": "2015-12-01"},
                             secret="wrong")
    assert (status, code) == (403, "SignatureDoesNotMatch")
    # Nothing the refusals touched changed, and the daemon still answers.
    assert [x["LoadBalancerName"] for x in elb.describe_load_balancers()["LoadBalancers"]] == ["web"]
    assert len(elb.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]) == 1
    assert daemon.proc.poll() is None
    assert len(elb.recorder.seen) >= 35


def test_hostile_forms(daemon):
    """Forms no SDK sends: the daemon refuses each in ELB's words, quickly."""
    v = {"Action": "DescribeLoadBalancers", "Version": "2015-12-01"}
    many = dict(v, **{f"x{i}": "1" for i in range(5000)})
    bad = [many, dict(v, **{"Names.member.1000": "a"}), dict(v, **{"Names.member.0": "a"}),
           dict(v, **{"Names.member.x": "a"}), dict(v, **{"Names": "a", "Names.member.1": "b"}),
           dict(v, **{"Names..member.1": "a"}), dict(v, **{"Na mes": "a"}),
           dict(v, **{"Names.member.1": "\x01"}), dict(v, **{"A." * 30 + "B": "a"}),
           # Not UTF-8 (a stray continuation byte, an overlong '/', beyond
           # U+10FFFF), and names no member has.
           dict(v, **{"Names.member.1": b"a\xbc\x90"}), dict(v, **{"Names.member.1": b"\xc0\xaf"}),
           dict(v, **{"Names.member.1": b"\xf7\x92\x8b\xa4"}), dict(v, **{"member.1": "a"}),
           dict(v, **{"Names.member": "a"}), dict(v, **{"Names.1x": "a"})]
    for form in bad:
        t = time.monotonic()
        status, code = raw_query(daemon, form)
        assert (status, code) == (400, "ValidationError"), list(form)[-1]
        assert time.monotonic() - t < 5
    status, code = raw_query(daemon, v)
    assert (status, code) == (200, None)


def test_tag_values_round_trip(elb):
    lb = elb.create_load_balancer(Name="tags")["LoadBalancers"][0]
    value = "a b+c&d=e/é <x>"
    elb.add_tags(ResourceArns=[lb["LoadBalancerArn"]], Tags=[{"Key": "k", "Value": value}])
    got = elb.describe_tags(ResourceArns=[lb["LoadBalancerArn"]])["TagDescriptions"][0]["Tags"]
    assert got == [{"Key": "k", "Value": value}]


def test_drain_ends_on_time_across_a_restart(tmpdir_short):
    d = Daemon(tmpdir_short, extra=("--lb-address", "127.0.0.1")).wait_ready()
    try:
        elb = make_elbv2(d)
        tg = elb.create_target_group(Name="d", Protocol="HTTP", Port=80,
                                     TargetType="ip")["TargetGroups"][0]
        arn = tg["TargetGroupArn"]
        elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": "3"}])
        elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": "127.0.0.8"}, {"Id": "127.0.0.9"}])
        elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": "127.0.0.8"}])
        start = time.monotonic()
    finally:
        d.stop()
    d = Daemon(tmpdir_short, extra=("--lb-address", "127.0.0.1"), name="again").wait_ready()
    try:
        elb = make_elbv2(d)

        def ids():
            h = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
            return sorted(x["Target"]["Id"] for x in h)
        assert ids() == ["127.0.0.8", "127.0.0.9"]
        tk.poll_until(lambda: ids() == ["127.0.0.9"], 20, "the drained target to go")
        assert time.monotonic() - start >= 3
    finally:
        d.stop()


def test_state_survives_restart(tmpdir_short):
    d = Daemon(tmpdir_short, extra=("--lb-address", "127.0.0.1")).wait_ready()
    try:
        elb = make_elbv2(d)
        lb, tg = make_lb_tg(elb)
        elb.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": "127.0.0.5"}])
        elb.deregister_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": "127.0.0.5"}])
    finally:
        d.stop()
    d = Daemon(tmpdir_short, extra=("--lb-address", "127.0.0.1"), name="again").wait_ready()
    try:
        elb = make_elbv2(d)
        assert elb.describe_load_balancers()["LoadBalancers"][0]["LoadBalancerArn"] \
            == lb["LoadBalancerArn"]
        h = elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])
        assert h["TargetHealthDescriptions"][0]["TargetHealth"]["State"] == "draining"
    finally:
        d.stop()



def berth(d, *args):
    p = subprocess.run([os.environ.get("BERTH_BIN", "build/release/berth"), "--socket",
                        str(d.sock), *args], capture_output=True, text=True, timeout=60)
    return p


def test_cli_lb_ls_and_targets(daemon, elb):
    lb, tg = make_lb_tg(elb)
    port = tk_free_port()
    elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    elb.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": "127.0.0.7"}])
    p = berth(daemon, "lb", "ls")
    assert p.returncode == 0, p.stderr
    head, row = p.stdout.splitlines()
    assert head.split() == ["NAME", "TYPE", "STATE", "ADDRESS", "LISTENERS"]
    assert row.split() == ["web", "application", "active", "127.0.0.1", f"{port}/HTTP"]
    for name in ("web-tg", tg["TargetGroupArn"]):
        p = berth(daemon, "lb", "targets", name)
        assert p.returncode == 0, p.stderr
        lines = p.stdout.splitlines()
        assert lines[0].split()[:4] == ["TARGET", "PORT", "STATE", "REASON"]
        assert lines[1].split()[:2] == ["127.0.0.7", "8080"]
    p = berth(daemon, "lb", "targets", "nope")
    assert p.returncode == 1 and "TargetGroupNotFound" in p.stderr, p.stderr


# ---- end to end: HAProxy serving what the API asked for ----

class Backend:
    """An HTTP server on 127.0.0.1 in this process: answers NAME on every
    path, and on /health the status in self.health."""

    def __init__(self, name):
        import http.server
        import threading
        backend = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                code = backend.health if self.path == "/health" else 200
                body = backend.name.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.name, self.health = name, 200
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backends():
    bs = [Backend("one"), Backend("two")]
    yield bs
    for b in bs:
        b.stop()


def get(port, path="/", host=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path, headers={"Host": host} if host else {})
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def try_get(port, path="/", host=None):
    """get(), or None while the listener is not (yet) serving."""
    try:
        return get(port, path, host)
    except OSError:
        return None


def health(elb, arn):
    h = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {x["Target"]["Port"]: (x["TargetHealth"]["State"], x["TargetHealth"].get("Reason"))
            for x in h}


def serving_group(elb, backends, name="e2e"):
    lb = elb.create_load_balancer(Name=name)["LoadBalancers"][0]
    tg = elb.create_target_group(Name=f"{name}-tg", Protocol="HTTP", Port=80, TargetType="ip",
                                 HealthCheckPath="/health", HealthCheckIntervalSeconds=5,
                                 HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2,
                                 UnhealthyThresholdCount=2)["TargetGroups"][0]
    arn = tg["TargetGroupArn"]
    elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": "127.0.0.1", "Port": b.port}
                                                      for b in backends])
    port = tk_free_port()
    elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": arn}])
    return lb, arn, port


def test_requests_spread_health_and_drain(daemon, elb, backends):
    lb, arn, port = serving_group(elb, backends)
    want = {b.port: ("healthy", None) for b in backends}
    tk.poll_until(lambda: health(elb, arn) == want, 40, "both targets healthy")
    seen = {get(port)[1] for _ in range(20)}
    assert seen == {"one", "two"}
    # A failing health check: unhealthy with the code, no traffic.
    backends[1].health = 500
    tk.poll_until(lambda: health(elb, arn)[backends[1].port] ==
                  ("unhealthy", "Target.ResponseCodeMismatch"), 40, "target two unhealthy")
    assert {get(port) for _ in range(10)} == {(200, "one")}
    backends[1].health = 200
    tk.poll_until(lambda: health(elb, arn) == want, 40, "target two healthy again")
    # Deregistered: draining for the delay, then gone; traffic to the other.
    elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "2"}])
    elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": "127.0.0.1",
                                                         "Port": backends[0].port}])
    assert health(elb, arn)[backends[0].port] == ("draining", "Target.DeregistrationInProgress")
    assert {get(port) for _ in range(10)} == {(200, "two")}
    tk.poll_until(lambda: list(health(elb, arn)) == [backends[1].port], 20, "the drain to end")


def test_rules_route_and_network_lb_forwards_tcp(daemon, elb, backends):
    lb, arn, port = serving_group(elb, backends[:1], name="rules")
    tg2 = elb.create_target_group(Name="two", Protocol="HTTP", Port=backends[1].port,
                                  TargetType="ip", HealthCheckIntervalSeconds=5,
                                  HealthCheckTimeoutSeconds=2,
                                  HealthyThresholdCount=2)["TargetGroups"][0]
    elb.register_targets(TargetGroupArn=tg2["TargetGroupArn"], Targets=[{"Id": "127.0.0.1"}])
    larn = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"][0]["ListenerArn"]
    elb.create_rule(ListenerArn=larn, Priority=1, Conditions=[
        {"Field": "path-pattern", "Values": ["/two/*"]}],
        Actions=[{"Type": "forward", "TargetGroupArn": tg2["TargetGroupArn"]}])
    elb.create_rule(ListenerArn=larn, Priority=2, Conditions=[
        {"Field": "host-header", "Values": ["teapot.example"]}],
        Actions=[{"Type": "fixed-response", "FixedResponseConfig": {
            "StatusCode": "418", "ContentType": "text/plain", "MessageBody": "short"}}])
    tk.poll_until(lambda: try_get(port, "/two/x") == (200, "two") and try_get(port) == (200, "one"),
                  40, "both groups serving")
    assert get(port, "/", host="teapot.example") == (418, "short")
    # A network load balancer forwards raw TCP.
    nlb = elb.create_load_balancer(Name="tcp", Type="network")["LoadBalancers"][0]
    ttg = elb.create_target_group(Name="tcp-tg", Protocol="TCP", Port=backends[1].port,
                                  TargetType="ip", HealthCheckIntervalSeconds=5,
                                  HealthCheckTimeoutSeconds=2,
                                  HealthyThresholdCount=2)["TargetGroups"][0]
    elb.register_targets(TargetGroupArn=ttg["TargetGroupArn"], Targets=[{"Id": "127.0.0.1"}])
    tport = tk_free_port()
    elb.create_listener(LoadBalancerArn=nlb["LoadBalancerArn"], Protocol="TCP", Port=tport,
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": ttg["TargetGroupArn"]}])
    tk.poll_until(lambda: try_get(tport) == (200, "two"), 40, "the TCP listener forwarding")


def test_listener_port_taken_by_another_program(daemon, elb, backends):
    import socket
    lb = elb.create_load_balancer(Name="taken")["LoadBalancers"][0]
    tg = elb.create_target_group(Name="taken-tg", Protocol="HTTP", Port=80,
                                 TargetType="ip")["TargetGroups"][0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(ClientError) as e:
            elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP",
                                Port=s.getsockname()[1], DefaultActions=[
                                    {"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    assert code_of(e) == "DuplicateListener"
    assert elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] == []


def test_served_again_after_restart(tmpdir_short, backends):
    d = Daemon(tmpdir_short, extra=("--lb-address", "127.0.0.1")).wait_ready()
    try:
        elb = make_elbv2(d)
        lb, arn, port = serving_group(elb, backends)
        tk.poll_until(lambda: (try_get(port) or (0,))[0] == 200, 40, "the listener serving")
    finally:
        d.stop()
    d = Daemon(tmpdir_short, extra=("--lb-address", "127.0.0.1"), name="again").wait_ready()
    try:
        tk.poll_until(lambda: (try_get(port) or (0,))[0] == 200, 40,
                      "the listener serving after the restart")
    finally:
        d.stop()


def test_a_port_taken_while_down_does_not_keep_the_daemon_down(tmpdir_short, backends):
    import socket
    d = Daemon(tmpdir_short, extra=("--lb-address", "127.0.0.1")).wait_ready()
    try:
        elb = make_elbv2(d)
        lb, arn, port = serving_group(elb, backends)
    finally:
        d.stop()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        d = Daemon(tmpdir_short, extra=("--lb-address", "127.0.0.1"), name="again").wait_ready()
    try:
        # wait_ready() took the "already" of "address already in use" for
        # "ready": wait for the daemon's own line.
        tk.poll_until(lambda: "berth daemon: ready" in d.stderr(), 20, "the daemon ready")
        assert f"{port}" in d.stderr() and "re-applying the stored state" in d.stderr()
        elb = make_elbv2(d)
        # The port is free again: the next change serves the listener.
        elb.modify_target_group(TargetGroupArn=arn, HealthCheckIntervalSeconds=6)
        tk.poll_until(lambda: (try_get(port) or (0,))[0] == 200, 40, "the listener serving")
    finally:
        d.stop()
