"""The task endpoint (task metadata v4/v3, task-role credentials) and the
agent introspection, against a real daemon running real tasks.

The daemon serves the task endpoint on its test bridge's gateway address
and a free port (--task-endpoint GW:0), never on 169.254.170.2, and the
introspection on 127.0.0.1 and a free port: every request here goes to
127.0.0.1 or to the test bridge.  Tasks fetch their own metadata with
busybox wget and print it; requests that must come from a task's address
run in its network namespace (nsenter), the others from the host."""
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime

import pytest

from fixtures import tasks as tk
from test_api_clusters import ACCOUNT, REGION, free_port, make_client, unix_request
from test_api_tasks import (TaskDaemon, describe, eni_detail, finish, image, log_lines, register,
                            run, sh, task_id, tmp_tasks, wait_running, wait_stopped)

ROLE = f"arn:aws:iam::{ACCOUNT}:role/app"
UNMAPPED = f"arn:aws:iam::{ACCOUNT}:role/nobody"
KEYS = {"AccessKeyId": "ASIABERTHROLETEST01", "SecretAccessKey": "role/secret+key0123456789",
        "Token": "role-session-token-0123456789"}


def gateway(net):
    return str(next(ipaddress.ip_network(net.subnet).hosts()))


class EndpointDaemon(TaskDaemon):
    """A task daemon with the task endpoint on its bridge's gateway and the
    introspection on loopback, both on free ports, and a role mapping."""

    def __init__(self, tmp, net, registry, extra=(), name="daemon"):
        creds = tmp / "roles"
        creds.write_text(f"[{ROLE}]\naws_access_key_id = {KEYS['AccessKeyId']}\n"
                         f"aws_secret_access_key = {KEYS['SecretAccessKey']}\n"
                         f"aws_session_token = {KEYS['Token']}\n")
        creds.chmod(0o600)
        super().__init__(tmp, net, registry=registry, extra=[
            "--task-endpoint", f"{gateway(net)}:0", "--introspection", "127.0.0.1:0",
            "--task-role-credentials", str(creds), *extra], name=name)

    def wait_ready(self, timeout=20):
        super().wait_ready(timeout)
        err = self.stderr()
        self.meta_base = re.search(r"task endpoint on (http://\S+)", err).group(1)
        port = re.search(r"agent introspection on 127\.0\.0\.1:(\d+)", err).group(1)
        self.intro = f"http://127.0.0.1:{port}"
        return self


@pytest.fixture
def edaemon(tmp_tasks, task_net, registry_anon):
    d = EndpointDaemon(tmp_tasks, task_net, registry_anon).wait_ready()
    yield d
    finish(d, task_net)


@pytest.fixture
def ecs(edaemon):
    return make_client(edaemon)


def get(url, timeout=10):
    """(status, body text) of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def in_netns(d, task, code, *args):
    """Runs python CODE in TASK's network namespace (its address is the
    source of what it sends); its stdout."""
    netns = d.run / "netns" / task_id(task)
    p = subprocess.run(["nsenter", f"--net={netns}", sys.executable, "-c", code, *args],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


GET_IN_NETNS = """
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
        print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
"""


def get_from_task(d, task, url):
    status, _, body = in_netns(d, task, GET_IN_NETNS, url).partition("\n")
    return int(status), body.strip()


def wait_log(d, task, container, marker, timeout=60):
    def done():
        lines = log_lines(d, task, container)
        return lines if marker in lines else None
    return tk.poll_until(done, timeout * tk.SLOWDOWN, f"{marker} in the log of {container}")


def sections(lines):
    """The task's printout: sections separated by '===' lines."""
    out, cur = [], []
    for line in lines:
        if line in ("===", "END"):
            out.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    return out


# What a task prints: its endpoint variables, then its task metadata,
# its task stats and its container metadata, as JSON.
PRINT_METADATA = """
echo "$ECS_CONTAINER_METADATA_URI_V4"; echo ===
echo "$ECS_CONTAINER_METADATA_URI"; echo ===
echo "${AWS_CONTAINER_CREDENTIALS_RELATIVE_URI:-none}"; echo ===
wget -qO- "$ECS_CONTAINER_METADATA_URI_V4/task"; echo; echo ===
wget -qO- "$ECS_CONTAINER_METADATA_URI_V4/task/stats"; echo; echo ===
wget -qO- "$ECS_CONTAINER_METADATA_URI/stats"; echo; echo ===
wget -qO- "$ECS_CONTAINER_METADATA_URI_V4"; echo; echo END
exec sleep 3600
"""


def start_printing_task(ecs, d, family="meta", **kw):
    td = register(ecs, d, [sh("app", PRINT_METADATA)], family=family, **kw)
    (t,) = run(ecs, td)
    t = wait_running(ecs, t["taskArn"], timeout=60)
    assert t["lastStatus"] == "RUNNING", t
    out = sections(wait_log(d, t, "app", "END"))
    return t, out


def stop(ecs, *tasks):
    arns = [t["taskArn"] for t in tasks]
    for a in arns:
        ecs.stop_task(task=a)
    ecs.get_waiter("tasks_stopped").wait(tasks=arns, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def test_a_task_reads_its_own_metadata_and_stats(ecs, edaemon):
    d = edaemon
    t, (v4, v3, creds_uri, task_doc, task_stats, stats_v3, ctr_doc) = start_printing_task(ecs, d)
    tid = task_id(t)
    ip = eni_detail(t, "privateIPv4Address")
    # The variables: the endpoint's address, an id of the container's own.
    assert re.fullmatch(re.escape(d.meta_base) + r"/v4/" + tid + r"-[0-9a-f]{20}", v4), v4
    assert v3 == v4.replace("/v4/", "/v3/")
    assert creds_uri == "none"   # no role, no credentials variable

    meta = json.loads(task_doc)
    assert meta["TaskARN"] == t["taskArn"]
    assert meta["Cluster"] == t["clusterArn"]
    assert meta["Family"] == "meta" and meta["Revision"] == t["taskDefinitionArn"].rsplit(":", 1)[1]
    assert meta["DesiredStatus"] == "RUNNING" and meta["KnownStatus"] == "RUNNING"
    assert meta["Limits"] == {"CPU": int(t["cpu"]) / 1024, "Memory": int(t["memory"])}
    assert meta["AvailabilityZone"] == t["availabilityZone"]
    assert meta["LaunchType"] == t["launchType"]
    for k in ("PullStartedAt", "PullStoppedAt"):
        datetime.strptime(meta[k], "%Y-%m-%dT%H:%M:%S.%fZ")
    (c,) = meta["Containers"]
    (dc,) = t["containers"]
    assert c["DockerId"] == dc["runtimeId"] and c["Name"] == "app"
    assert c["Image"] == dc["image"] and c["ImageID"] == dc["imageDigest"]
    assert c["Labels"]["com.amazonaws.ecs.task-arn"] == t["taskArn"]
    assert c["Type"] == "NORMAL" and c["KnownStatus"] == "RUNNING"
    (n,) = c["Networks"]
    assert n["NetworkMode"] == "awsvpc" and n["IPv4Addresses"] == [ip]
    assert n["AttachmentIndex"] == 0
    assert n["MACAddress"] == eni_detail(t, "macAddress")
    assert n["PrivateDNSName"] == eni_detail(t, "privateDnsName")
    assert n["IPv4SubnetCIDRBlock"] == d.net.subnet
    assert n["SubnetGatewayIpv4Address"] == f"{gateway(d.net)}/{d.net.subnet.split('/')[1]}"
    assert json.loads(ctr_doc) == c

    stats = json.loads(task_stats)
    assert list(stats) == [dc["runtimeId"]]
    s = stats[dc["runtimeId"]]
    assert s["id"] == dc["runtimeId"] and s["name"] == "/app"
    assert s["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert s["cpu_stats"]["system_cpu_usage"] > 0 and s["cpu_stats"]["online_cpus"] >= 1
    assert "precpu_stats" in s and "preread" in s
    assert s["memory_stats"]["usage"] > 0
    assert s["memory_stats"]["limit"] == int(t["memory"]) * 1024 * 1024
    assert s["pids_stats"]["current"] >= 1
    # The wget of /task went out of eth0 before this reading.
    assert s["networks"]["eth1"]["tx_bytes"] > 0 and s["networks"]["eth1"]["rx_bytes"] > 0
    # v3 path, container stats; the second reading has the first as "pre".
    s3 = json.loads(stats_v3)
    assert s3["id"] == dc["runtimeId"]
    assert s3["precpu_stats"]["cpu_usage"]["total_usage"] == s["cpu_stats"]["cpu_usage"]["total_usage"]
    assert s3["preread"] == s["read"]
    stop(ecs, t)


def test_restart_count_and_an_exit_within_the_restart_period(ecs, edaemon):
    """restartPolicy through the daemon: the count where ECS reports it
    (task metadata v4 RestartCount, for a container whose policy is
    enabled), and an exit before restartAttemptPeriod (ECS's minimum, 60 s)
    is not restarted: the essential container's exit stops the task."""
    d = edaemon
    # Registered without boto3: the suite's botocore predates restartPolicy.
    status, _, data = unix_request(d.sock, "RegisterTaskDefinition", {
        "family": "restarts", "networkMode": "awsvpc", "cpu": "256", "memory": "512",
        "containerDefinitions": [
            # Until the daemon has recorded the task's address, the
            # endpoint does not know the caller: ask again for a while.
            sh("app", 'for i in $(seq 40); do wget -qO- "$ECS_CONTAINER_METADATA_URI_V4/task" '
               '2>/dev/null && break; sleep 0.25; done; echo; echo END; exit 4',
               image=image(d, "busybox"), restartPolicy={
                   "enabled": True, "ignoredExitCodes": [0], "restartAttemptPeriod": 60}),
            sh("side", "exit 0", image=image(d, "busybox"), essential=False)]})
    assert status == 200, data
    (t,) = run(ecs, json.loads(data)["taskDefinition"]["taskDefinitionArn"])
    (t,) = wait_stopped(ecs, [t["taskArn"]])
    assert t["stopCode"] == "EssentialContainerExited", t
    assert {c["name"]: c.get("exitCode") for c in t["containers"]} == {"app": 4, "side": 0}, t
    out = log_lines(d, t, "app")
    assert out and out[-1] == "END", out
    meta = json.loads(sections(out)[0])
    counts = {c["Name"]: c.get("RestartCount") for c in meta["Containers"]}
    assert counts == {"app": 0, "side": None}, meta["Containers"]


def test_ids_are_bound_to_the_calling_task(ecs, edaemon):
    d = edaemon
    a, out_a = start_printing_task(ecs, d, family="a")
    b, out_b = start_printing_task(ecs, d, family="b")
    a_uri, b_uri = out_a[0], out_b[0]
    # Its own id answers in the task's namespace; A's id from B's does not,
    # nor from the host (the gateway's address), nor a forged one.
    assert get_from_task(d, b, b_uri + "/task")[0] == 200
    for path in ("", "/task", "/stats", "/task/stats"):
        status, body = get_from_task(d, b, a_uri + path)
        assert status == 404, (path, body)
        assert get(a_uri + path)[0] == 404
    forged = a_uri[:-20] + "0" * 20
    assert get_from_task(d, a, forged + "/task")[0] == 404
    assert get_from_task(d, a, a_uri + "/task")[0] == 200
    # From inside a task too, with busybox wget: B asks with A's id.
    td = register(ecs, d, [sh("probe", 'wget -qO- "$OTHER/task"; echo "rc=$?"; echo END; '
                                       'exec sleep 3600')], family="probe")
    (p,) = run(ecs, td, overrides={"containerOverrides": [
        {"name": "probe", "environment": [{"name": "OTHER", "value": a_uri}]}]})
    lines = wait_log(d, p, "probe", "END")
    assert "rc=1" in lines and not any("TaskARN" in line for line in lines), lines
    stop(ecs, a, b, p)


CONTAINER_PROVIDER = """
import json, os, sys
from botocore.credentials import ContainerProvider
from botocore.utils import ContainerMetadataFetcher
# botocore fetches full URIs from loopback and 169.254.170.2 only; the
# test's endpoint is on its own bridge, so that address is allowed too.
ContainerMetadataFetcher._ALLOWED_HOSTS = ContainerMetadataFetcher._ALLOWED_HOSTS + [sys.argv[1]]
env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": sys.argv[2]}
c = ContainerProvider(environ=env).load().get_frozen_credentials()
print(json.dumps([c.access_key, c.secret_key, c.token]))
"""


def test_task_role_credentials(ecs, edaemon):
    d = edaemon
    t, out = start_printing_task(ecs, d, family="role", taskRoleArn=ROLE)
    rel = out[2]
    assert re.fullmatch(r"/v2/credentials/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-"
                        r"[89ab][0-9a-f]{3}-[0-9a-f]{12}", rel), rel
    status, body = get_from_task(d, t, d.meta_base + rel)
    assert status == 200, body
    doc = json.loads(body)
    assert set(doc) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn"}
    assert {k: doc[k] for k in KEYS} == KEYS and doc["RoleArn"] == ROLE
    exp = datetime.strptime(doc["Expiration"], "%Y-%m-%dT%H:%M:%SZ")
    assert exp.timestamp() > time.time()
    # botocore's own container credential provider resolves them.
    got = in_netns(d, t, CONTAINER_PROVIDER, gateway(d.net), d.meta_base + rel)
    assert json.loads(got) == [KEYS["AccessKeyId"], KEYS["SecretAccessKey"], KEYS["Token"]]
    # The same URI from the host, or a wrong UUID from the task: 404.
    assert get(d.meta_base + rel)[0] == 404
    status, body = get_from_task(d, t, d.meta_base + rel[:-12] + "0" * 12)
    assert status == 404 and json.loads(body)["code"] == "InvalidIdInRequest"
    stop(ecs, t)


def test_an_unmapped_role_is_404_and_the_task_runs(ecs, edaemon):
    d = edaemon
    td = register(ecs, d, [sh("app", 'echo "$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"; echo END; '
                                     'exec sleep 3600')], family="unmapped")
    # The role comes from RunTask's overrides this time.
    (t,) = run(ecs, td, overrides={"taskRoleArn": UNMAPPED})
    rel = sections(wait_log(d, t, "app", "END"))[0]
    status, body = get_from_task(d, t, d.meta_base + rel)
    assert status == 404
    assert json.loads(body) == {"code": "NoCredentialsAssociated",
                                "message": "CredentialsV2Request: Credentials not found",
                                "HTTPErrorCode": 404}
    assert describe(ecs, t["taskArn"])["lastStatus"] == "RUNNING"
    stop(ecs, t)


def test_introspection_shapes(ecs, edaemon):
    d = edaemon
    t, _ = start_printing_task(ecs, d, family="intro")
    status, body = get(d.intro + "/v1/metadata")
    assert status == 200
    meta = json.loads(body)
    assert meta["Cluster"] == "default"
    assert meta["ContainerInstanceArn"].startswith(
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/default/")
    assert meta["Version"].startswith("Berth ")
    (dc,) = t["containers"]
    expect = {"Arn": t["taskArn"], "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING",
              "Family": "intro", "Version": t["taskDefinitionArn"].rsplit(":", 1)[1],
              "Containers": [{"DockerId": dc["runtimeId"], "DockerName": "app", "Name": "app",
                              "Image": dc["image"], "ImageID": dc["imageDigest"]}]}
    status, body = get(d.intro + "/v1/tasks")
    assert status == 200 and json.loads(body) == {"Tasks": [expect]}
    q = urllib.parse.quote(t["taskArn"], safe="")
    assert json.loads(get(f"{d.intro}/v1/tasks?taskarn={q}")[1]) == expect
    assert json.loads(get(f"{d.intro}/v1/tasks?dockerid={dc['runtimeId']}")[1]) == expect
    assert get(f"{d.intro}/v1/tasks?taskarn={q}x")[0] == 404
    assert get(f"{d.intro}/v1/tasks?dockerid=nope")[0] == 404
    assert get(f"{d.intro}/v1/tasks?taskarn={q}&dockerid={dc['runtimeId']}")[0] == 400
    stop(ecs, t)


def raw_http(host, port, data):
    """Sends DATA, returns the status line of the answer (or '' when the
    connection was closed without one)."""
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(data)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return buf.split(b"\r\n", 1)[0].decode(errors="replace")


def test_hostile_requests_are_answered_cleanly(ecs, edaemon):
    d = edaemon
    t, out = start_printing_task(ecs, d, family="hostile")
    own = out[0]
    base_host, base_port = d.meta_base[len("http://"):].split(":")
    intro_port = int(d.intro.rsplit(":", 1)[1])
    for path in ("/v4/../../../etc/passwd", own[len(d.meta_base):] + "/../task",
                 own[len(d.meta_base):] + "/task/../task", "/v4/" + "a" * 5000,
                 "/v2/credentials/../../v1/metadata", "/v4/%00%ff/task", "/", "/v4/",
                 own[len(d.meta_base):] + "/nope"):
        status, _ = get_from_task(d, t, d.meta_base + path)
        assert status in (400, 404, 414), (path, status)
    # A query, even a malformed one, is ignored, as the agent does.
    assert get_from_task(d, t, own + "/task?x=%zz&&=")[0] == 200
    for path in ("/v1/tasks?%zz", "/v1/tasks?taskarn=%zz", "/v1/../v1/metadata", "/v2/metadata",
                 "/v1/tasks?dockerid=" + "x" * 3000):
        status, _ = get(d.intro + path)
        assert status in (400, 404, 414), (path, status)
    # Raw bytes: a request line too long, a body, junk, a bad version;
    # to both servers (the task endpoint from the host).
    for host, port in (("127.0.0.1", intro_port), (base_host, int(base_port))):
        for data in (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
                     b"POST /v1/metadata HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
                     b"\x16\x03\x01\x02\x00junk\r\n\r\n", b"GET /v1/metadata HTTP/9.9\r\n\r\n"):
            line = raw_http(host, port, data)
            assert line == "" or line.split()[1] in ("400", "404", "405", "413", "414", "431",
                                                     "501", "505"), (host, data[:20], line)
    assert get_from_task(d, t, f"http://{base_host}:{base_port}/v4/x", )[0] == 404
    # Both still serve.
    assert get(d.intro + "/v1/metadata")[0] == 200
    assert get_from_task(d, t, own + "/task")[0] == 200
    assert d.proc.poll() is None
    stop(ecs, t)


FLOOD = """
import http.client, json, sys, time, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
ok, start = 0, time.monotonic()
while time.monotonic() - start < float(sys.argv[2]):
    c.request("GET", u.path)
    r = c.getresponse()
    r.read()
    if r.status != 200:
        break
    ok += 1
print(json.dumps({"ok": ok, "status": r.status, "seconds": time.monotonic() - start}))
"""


def test_a_flood_from_one_task_is_throttled(ecs, edaemon):
    """Requests on one keep-alive connection as fast as the task can send
    them, until the first refusal: it is a 429, after the burst and the
    rate's refill but not much more (however fast the machine is)."""
    d = edaemon
    a, out_a = start_printing_task(ecs, d, family="flood")
    b, out_b = start_printing_task(ecs, d, family="calm")
    r = json.loads(in_netns(d, a, FLOOD, out_a[0] + "/task", str(60 * tk.SLOWDOWN)))
    assert r["status"] == 429, r
    assert 200 <= r["ok"] <= 200 + 100 * r["seconds"] + 10, r
    # Another task is not held back; the flooder gets answers again soon.
    assert get_from_task(d, b, out_b[0] + "/task")[0] == 200
    tk.poll_until(lambda: get_from_task(d, a, out_a[0] + "/task")[0] == 200, 10,
                  "an answer again after the flood")
    stop(ecs, a, b)


def test_the_endpoint_is_the_only_new_way_in(edaemon):
    """The rules let tasks reach the endpoint's port on its address, and
    nothing else of the host (the rule is read from the ruleset; that
    nothing else is open is test_netpolicy.py's)."""
    d = edaemon
    host, port = d.meta_base[len("http://"):].split(":")
    rules = subprocess.run(["nft", "list", "chain", "ip", d.net.nft_table, "input"],
                           capture_output=True, text=True, check=True).stdout
    accepts = [line.strip() for line in rules.splitlines() if line.strip().endswith("accept")]
    assert f'iifname "{d.net.bridge}" ip daddr {host} tcp dport {port} accept' in accepts, rules
    assert len(accepts) == 3, rules   # replies, @host_ports, the endpoint


def test_an_endpoint_address_outside_the_subnet(tmp_tasks, task_net, registry_anon):
    """The default's shape (169.254.170.2 is outside every task subnet): a
    /32 on the bridge, reached through the task's default route.  A
    documentation address (TEST-NET-1) on the test's own bridge stands in
    for it."""
    outside = f"192.0.2.{ipaddress.ip_network(task_net.subnet).network_address.packed[2]}"
    d = EndpointDaemon(tmp_tasks, task_net, registry_anon,
                       extra=["--task-endpoint", f"{outside}:0"]).wait_ready()
    try:
        assert d.meta_base.startswith(f"http://{outside}:")
        addrs = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", task_net.bridge],
                               capture_output=True, text=True, check=True).stdout
        assert f"inet {outside}/32" in addrs, addrs
        ecs = make_client(d)
        t, out = start_printing_task(ecs, d, family="outside")
        assert json.loads(out[3])["TaskARN"] == t["taskArn"]
        assert get_from_task(d, t, out[0] + "/task")[0] == 200
        assert get(out[0] + "/task")[0] == 404       # the host's own address
        stop(ecs, t)
    finally:
        finish(d, task_net)
        subprocess.run(["ip", "addr", "del", f"{outside}/32", "dev", task_net.bridge],
                       capture_output=True)


def test_ids_survive_a_daemon_restart(tmp_tasks, task_net, registry_anon):
    """The ids are recomputed from the host key, not remembered: a task
    started before a restart keeps its endpoint (on a fixed port here, as
    169.254.170.2:80 is)."""
    fixed = ["--task-endpoint", f"{gateway(task_net)}:{free_port()}"]
    d = EndpointDaemon(tmp_tasks, task_net, registry_anon, extra=fixed).wait_ready()
    t, out = start_printing_task(make_client(d), d, family="restart", taskRoleArn=ROLE)
    d.stop()
    d = EndpointDaemon(tmp_tasks, task_net, registry_anon, extra=fixed, name="again").wait_ready()
    try:
        assert get_from_task(d, t, out[0] + "/task")[0] == 200
        assert get_from_task(d, t, d.meta_base + out[2])[0] == 200
        stop(make_client(d), t)
    finally:
        finish(d, task_net)


def test_a_bad_endpoint_or_credentials_file_is_refused(tmp_tasks, task_net, registry_anon):
    net = task_net
    inside = str(ipaddress.ip_network(net.subnet).network_address + 5)
    roles = tmp_tasks / "roles"
    roles.write_text(f"[{ROLE}]\naws_access_key_id = A\naws_secret_access_key = B\n")
    roles.chmod(0o644)
    for extra, msg in (
            (["--task-endpoint", f"{inside}:80"], "must be its gateway"),
            (["--task-endpoint", "nonsense"], "expected ADDRESS:PORT"),
            (["--task-endpoint", f"{gateway(net)}:0", "--task-role-credentials", str(roles)],
             "--task-role-credentials"),
            (["--task-endpoint", "off", "--task-role-credentials", str(roles)],
             "the task endpoint is off")):
        d = TaskDaemon(tmp_tasks, net, registry=registry_anon, extra=extra)
        assert d.proc.wait(timeout=30) == 1, extra
        assert msg in d.stderr(), (extra, d.stderr())


RESERVED = "/proc/sys/net/ipv4/ip_local_reserved_ports"


def test_introspection_port_held_by_a_connection(tmp_tasks, task_net, registry_anon):
    """The introspection's port lies in the ephemeral range (51678 does):
    while an outgoing connection happens to hold it, the daemon still
    starts, reserves the port and listens once the connection ends."""
    saved = open(RESERVED).read().strip()
    srv = socket.create_server(("127.0.0.1", 0))
    cli = socket.socket()
    cli.bind(("127.0.0.1", 0))            # an ephemeral port, as a pull's
    port = cli.getsockname()[1]
    cli.connect(srv.getsockname())
    acc, _ = srv.accept()
    d = None
    try:
        d = TaskDaemon(tmp_tasks, task_net, registry=registry_anon,
                       extra=["--introspection", f"127.0.0.1:{port}"]).wait_ready()
        assert "trying again each second" in d.stderr()
        ranges = [r.partition("-") for r in open(RESERVED).read().strip().split(",")]
        assert any(int(a) <= port <= int(b or a) for a, _, b in ranges)
        acc.close()               # the peer ends it: no TIME_WAIT on PORT
        cli.recv(1)
        cli.close()
        tk.poll_until(lambda: "agent introspection on" in d.stderr(), 10 * tk.SLOWDOWN,
                      "the introspection listening")
        status, body = get(f"http://127.0.0.1:{port}/v1/metadata")
        assert status == 200 and json.loads(body)["Cluster"] == "default"
    finally:
        cli.close()
        acc.close()
        srv.close()
        if d:
            finish(d, task_net)
        with open(RESERVED, "w") as f:
            f.write(saved + "\n")
