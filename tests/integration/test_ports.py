"""Network modes and published ports (docs/networking.md "Network modes"
and "Published ports", issue 13): bridge-mode tasks publish their
portMappings on the host through nftables DNAT in Berth's own table, with
dynamic host ports from the operator's range, ECS's RESOURCE:PORTS when a
port is taken, networkBindings as ECS shows them, ports released at stop
and known again after a daemon kill -9.

Traffic goes only to 127.0.0.1 (the published ports, as a host client
reaches them) and to addresses of the session's test bridge; every answer
boto3 sees is validated against botocore's model (make_client)."""
import os
import signal
import socket
import subprocess

import pytest
from botocore.exceptions import ClientError

from fixtures import tasks as tk
from fixtures.registry import free_port
from test_api_clusters import make_client
from test_api_tasks import (IDLE, TaskDaemon, describe, finish, http_get, image, sh,  # noqa: F401
                            task_id, tdaemon, tmp_tasks, wait_running, wait_stopped)
from test_netpolicy import DROP_WAIT, connect_from
from test_services import messages, running_tasks, sdaemon, stable, svc  # noqa: F401

# The task's own address as the page, so a client knows which task answered.
WEB = ('trap "exit 0" TERM; mkdir -p /tmp/www; hostname > /tmp/www/index.html; '
       'httpd -f -p 8080 -h /tmp/www & wait')


def register_mode(ecs, d, mode, containers, family="ports"):
    for c in containers:
        c.setdefault("image", image(d, "busybox"))
        c.setdefault("stopTimeout", 2)
    td = ecs.register_task_definition(family=family, networkMode=mode, cpu="256",
                                      memory="512", containerDefinitions=containers)
    return td["taskDefinition"]["taskDefinitionArn"]


def web(*mappings):
    return sh("web", WEB, portMappings=list(mappings))


def run_bridge(ecs, td, count=1):
    out = ecs.run_task(taskDefinition=td, count=count)
    assert out["failures"] == [], out
    tasks = [wait_running(ecs, t["taskArn"]) for t in out["tasks"]]
    for t in tasks:
        assert_routed_to_our_bridge(t)
    return tasks


def assert_routed_to_our_bridge(task):
    """The host routes the task's address to this session's bridge: a
    test session beside this one that took the same subnet would take the
    DNATed traffic, and every published-port check would fail for that."""
    nis = task["containers"][0]["networkInterfaces"]
    if not nis:
        return
    ip = nis[0]["privateIpv4Address"]
    out = subprocess.run(["ip", "-o", "route", "get", ip], capture_output=True,
                         text=True).stdout
    bridges = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    assert f" dev {task_bridge(task)} " in out, \
        f"{ip} is routed elsewhere ({out.strip()}): another bridge holds the subnet?\n{bridges}"


def task_bridge(task):
    eni = task["attachments"][0]["details"]
    subnet = {d["name"]: d["value"] for d in eni}["subnetId"]
    return subnet.split("subnet-", 1)[1]


def bindings(task, container="web"):
    (c,) = [c for c in task["containers"] if c["name"] == container]
    return c["networkBindings"]


def published(d):
    """The elements of the DNAT map, as `nft` prints them."""
    out = subprocess.run(["nft", "list", "map", "ip", d.net.nft_table, "published"],
                         capture_output=True, text=True, check=True).stdout
    return out.split("elements = {", 1)[1].split("}", 1)[0].split(",") if "elements" in out \
        else []


def page(port):
    """The page 127.0.0.1:PORT serves, or None while nothing answers."""
    try:
        return http_get(f"http://127.0.0.1:{port}/", timeout=2)[1].strip()
    except OSError:
        return None


def hostname_of(task):
    ip = task["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]
    return "ip-" + ip.replace(".", "-")


def stop(ecs, tasks):
    arns = [t["taskArn"] for t in tasks]
    for a in arns:
        ecs.stop_task(task=a)
    return wait_stopped(ecs, arns)


@pytest.fixture
def ecs(tdaemon):
    return make_client(tdaemon)


def test_bridge_tasks_serve_on_distinct_dynamic_host_ports(ecs, tdaemon):
    """Two tasks of one bridge-mode definition (hostPort absent): distinct
    ports of ECS's range, networkBindings as ECS shows them, each port
    reaching its own task from the host on 127.0.0.1; after the stop no
    DNAT element is left and the ports are free again."""
    td = register_mode(ecs, tdaemon, "bridge", [web({"containerPort": 8080})])
    tasks = run_bridge(ecs, td, count=2)
    ports = []
    for t in tasks:
        assert t["lastStatus"] == "RUNNING", t
        (b,) = bindings(t)
        assert b == {"bindIP": "0.0.0.0", "containerPort": 8080, "hostPort": b["hostPort"],
                     "protocol": "tcp"}, b
        assert 49153 <= b["hostPort"] <= 65535, b
        ports.append(b["hostPort"])
    assert ports[0] != ports[1], ports
    for t, port in zip(tasks, ports):
        assert tk.poll_until(lambda: page(port), 20, f"127.0.0.1:{port}") == hostname_of(t)
    assert len(published(tdaemon)) == 2
    for t in stop(ecs, tasks):
        assert bindings(t)[0]["hostPort"] in ports     # still shown, as ECS does
    assert published(tdaemon) == []
    # The ports are free: a fixed hostPort on one of them runs.
    td2 = register_mode(ecs, tdaemon, "bridge", [web({"containerPort": 8080,
                                                      "hostPort": ports[0]})], family="fixed")
    (t,) = run_bridge(ecs, td2)
    assert bindings(t)[0]["hostPort"] == ports[0]
    assert tk.poll_until(lambda: page(ports[0]), 20, "the fixed port") == hostname_of(t)
    stop(ecs, [t])
    assert published(tdaemon) == []


@pytest.fixture
def outside():
    """A client outside the host's bridge: a namespace of the test's own on
    a veth link to the host, the host end holding the link's first
    address, as a LAN client reaches the host."""
    name = f"bcli{os.getpid() % 100000}"
    subnet = tk.pick_test_subnet(prefix="10.217")
    host_ip, client_ip = subnet.replace(".0/24", ".1"), subnet.replace(".0/24", ".2")
    cmds = [["ip", "netns", "add", name],
            ["ip", "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", name],
            ["ip", "addr", "add", f"{host_ip}/24", "dev", name],
            ["ip", "link", "set", name, "up"],
            ["ip", "-n", name, "addr", "add", f"{client_ip}/24", "dev", "eth0"],
            ["ip", "-n", name, "link", "set", "eth0", "up"],
            ["ip", "-n", name, "link", "set", "lo", "up"]]
    try:
        for c in cmds:
            subprocess.run(c, check=True, capture_output=True)
        yield name, host_ip
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_published_port_from_another_interface(ecs, tdaemon, outside):
    """A client on another link of the host reaches a bridge task on the
    host's address of that link and the published port (prerouting DNAT,
    then forwarded into the subnet), and nothing else of the subnet."""
    ns, host_ip = outside
    td = register_mode(ecs, tdaemon, "bridge", [web({"containerPort": 8080})])
    (t,) = run_bridge(ecs, td)
    port = bindings(t)[0]["hostPort"]
    tk.poll_until(lambda: page(port), 20, "the published port")
    fetch = ("import sys, urllib.request\n"
             "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())")
    out = subprocess.run(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", fetch,
                          f"http://{host_ip}:{port}/"], capture_output=True, text=True)
    assert out.stdout.strip() == hostname_of(t), out.stderr
    # The task's own address is not routed from the LAN, published or not.
    ip = t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]
    subprocess.run(["ip", "-n", ns, "route", "add", tdaemon.net.subnet, "via", host_ip],
                   check=True)
    assert connect_from(f"/run/netns/{ns}", ip, 8080) == "dropped"
    stop(ecs, [t])


def test_taken_host_port_is_a_resource_ports_failure(ecs, tdaemon):
    """A fixed hostPort held by a running task, or by a host process, does
    not place: RunTask answers a failures entry RESOURCE:PORTS and makes
    no task, as ECS does for a task that does not fit."""
    port = free_port()
    td = register_mode(ecs, tdaemon, "bridge", [web({"containerPort": 8080, "hostPort": port})])
    (first,) = run_bridge(ecs, td)
    out = ecs.run_task(taskDefinition=td)
    assert out["tasks"] == [], out
    (f,) = out["failures"]
    assert f["reason"] == "RESOURCE:PORTS", f
    assert f["arn"].startswith("arn:aws:ecs:") and ":container-instance/" in f["arn"], f
    assert str(port) in f.get("detail", ""), f
    assert len(ecs.list_tasks()["taskArns"]) == 1
    stop(ecs, [first])
    # A host listener holds the port: never shadowed by a task's DNAT.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        held = s.getsockname()[1]
        td2 = register_mode(ecs, tdaemon, "bridge",
                            [web({"containerPort": 8080, "hostPort": held})], family="held")
        out = ecs.run_task(taskDefinition=td2)
        assert out["tasks"] == [] and out["failures"][0]["reason"] == "RESOURCE:PORTS", out
    assert published(tdaemon) == []


def test_udp_mapping_reaches_the_task(ecs, tdaemon):
    """A UDP mapping: a datagram to 127.0.0.1:<hostPort> arrives on the
    container port in the task's namespace, and the answer comes back."""
    td = register_mode(ecs, tdaemon, "bridge", [
        sh("app", IDLE, portMappings=[{"containerPort": 5353, "protocol": "udp"}])])
    (t,) = run_bridge(ecs, td)
    (b,) = bindings(t, "app")
    assert b["protocol"] == "udp" and b["containerPort"] == 5353, b
    # The listener runs in the task's namespace (the test's own python:
    # busybox has no UDP server) and echoes one datagram.
    echo = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.bind(('0.0.0.0', 5353)); print('up', flush=True); d, a = s.recvfrom(100); "
            "s.sendto(d.upper(), a)")
    netns = tdaemon.run / "netns" / task_id(t)
    p = subprocess.Popen(["nsenter", f"--net={netns}", "/usr/bin/python3", "-c", echo],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "up"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(5)
            c.sendto(b"ping", ("127.0.0.1", b["hostPort"]))
            assert c.recvfrom(100)[0] == b"PING"
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
    stop(ecs, [t])
    assert published(tdaemon) == []


def test_ports_are_known_again_after_daemon_kill9(tmp_tasks, task_net, registry_anon):
    """With a range of one port: the task holding it survives a daemon
    kill -9; the new daemon does not hand the port to another task
    (RESOURCE:PORTS), still publishes it, and frees it at the stop."""
    port = free_port()
    d = TaskDaemon(tmp_tasks, task_net, ["--host-port-range", f"{port}-{port}"],
                   registry=registry_anon).wait_ready()
    live = [d]
    try:
        ecs = make_client(d)
        td = register_mode(ecs, d, "bridge", [web({"containerPort": 8080})])
        (t,) = run_bridge(ecs, td)
        assert bindings(t)[0]["hostPort"] == port
        assert tk.poll_until(lambda: page(port), 20, "the published port") == hostname_of(t)
        shims = set(tk.shim_processes(d.tmp))

        d.proc.kill()
        d.proc.wait()
        d2 = d.restart("daemon2").wait_ready()
        live.append(d2)
        ecs2 = make_client(d2)
        assert describe(ecs2, t["taskArn"])["lastStatus"] == "RUNNING"
        out = ecs2.run_task(taskDefinition=td)
        assert out["tasks"] == [] and out["failures"][0]["reason"] == "RESOURCE:PORTS", out
        assert set(tk.shim_processes(d2.tmp)) == shims
        assert page(port) == hostname_of(t)
        assert len(published(d2)) == 1
        stop(ecs2, [t])
        assert published(d2) == []
        (t2,) = run_bridge(ecs2, td)
        assert bindings(t2)[0]["hostPort"] == port
        stop(ecs2, [t2])
    finally:
        finish(live[-1], task_net)


def test_killed_shim_leaves_no_published_port(ecs, tdaemon):
    """The task agent killed with SIGKILL: the daemon's cleanup of the dead
    shim removes its DNAT elements, and the port is free for the next
    task."""
    port = free_port()
    td = register_mode(ecs, tdaemon, "bridge", [web({"containerPort": 8080, "hostPort": port})])
    (t,) = run_bridge(ecs, td)
    assert len(published(tdaemon)) == 1
    (shim,) = tk.shim_processes(tdaemon.tmp)
    os.kill(shim, signal.SIGKILL)
    tk.reap(shim)
    wait_stopped(ecs, [t["taskArn"]], 30)
    assert published(tdaemon) == []
    (t2,) = run_bridge(ecs, td)
    assert tk.poll_until(lambda: page(port), 20, "the port again") == hostname_of(t2)
    stop(ecs, [t2])


# A UDP datagram as a raw Ethernet frame from eth0 (what a task with
# NET_RAW can send): argv destination address, port, destination MAC.
RAW_UDP = """
import socket, struct, sys
dst, port, dmac = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3].replace(":", ""))
src = socket.inet_aton(sys.argv[4])
data = b"localnet-probe"
udp = struct.pack("!HHHH", 40000, port, 8 + len(data), 0) + data
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, src,
                 socket.inet_aton(dst))
c = sum(struct.unpack("!10H", ip))
while c >> 16:
    c = (c & 0xFFFF) + (c >> 16)
ip = ip[:10] + struct.pack("!H", ~c & 0xFFFF) + ip[12:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
mac = s.getsockname()[4]      # the namespace's eth0 (nsenter keeps the host's /sys)
for _ in range(3):
    s.send(dmac + mac + b"\\x08\\x00" + ip + udp)
print("sent")
"""


def received(sock):
    sock.settimeout(DROP_WAIT)
    try:
        return sock.recv(100)
    except socket.timeout:
        return None


def localnet_drops(d):
    out = subprocess.run(["nft", "list", "chain", "ip", d.net.nft_table, "localnet"],
                         capture_output=True, text=True, check=True).stdout
    return sum(int(line.split("packets ")[1].split()[0]) for line in out.splitlines()
               if "127.0.0.0/8" in line and "packets" in line)


def test_route_localnet_gives_tasks_no_way_to_host_loopback(ecs, tdaemon):
    """route_localnet on the bridge (for the host's own 127.0.0.1 clients
    of published ports) would let a task's packet to 127.0.0.1 be routed to
    the host's loopback services, even one whose port the host opens to
    tasks.  A raw frame to 127.0.0.1 through the gateway is dropped (and
    counted); the same frame to the gateway's address on that open port
    arrives, so the frames are right."""
    net = tdaemon.net
    gw = str(net.net.network_address + 1)
    gw_mac = "02:be:" + ":".join(f"{int(x):02x}" for x in gw.split("."))
    with open(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet") as f:
        assert f.read().strip() == "1"
    td = register_mode(ecs, tdaemon, "bridge", [sh("app", IDLE)])
    (t,) = run_bridge(ecs, td)
    netns = tdaemon.run / "netns" / task_id(t)
    ip = t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]
    lo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lo.bind(("127.0.0.1", 0))
    port = lo.getsockname()[1]
    gw_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gw_sock.bind((gw, port))
    elem = f"{{ udp . {port} }}"
    subprocess.run(["nft", "add", "element", "ip", net.nft_table, "host_ports", elem], check=True)
    try:
        before = localnet_drops(tdaemon)
        for dst in ("127.0.0.1", gw):
            out = subprocess.run(["nsenter", f"--net={netns}", "/usr/bin/python3", "-c", RAW_UDP, dst,
                                  str(port), gw_mac, ip], capture_output=True, text=True)
            assert out.stdout.strip() == "sent", out.stderr
        assert received(gw_sock) == b"localnet-probe", "the control frame did not arrive"
        assert received(lo) is None, "a task reached the host's 127.0.0.1"
        assert localnet_drops(tdaemon) >= before + 3
    finally:
        subprocess.run(["nft", "delete", "element", "ip", net.nft_table, "host_ports", elem])
        lo.close()
        gw_sock.close()
        stop(ecs, [t])


def test_published_port_is_not_reachable_from_a_task(ecs, tdaemon):
    """The host is closed to tasks: a task connecting to the gateway on
    another task's published port is not forwarded there (the DNAT applies
    to traffic from outside the bridge only)."""
    td = register_mode(ecs, tdaemon, "bridge", [web({"containerPort": 8080})])
    (server,) = run_bridge(ecs, td)
    port = bindings(server)[0]["hostPort"]
    tk.poll_until(lambda: page(port), 20, "the published port")
    td2 = register_mode(ecs, tdaemon, "bridge", [sh("app", IDLE)], family="client")
    (client,) = run_bridge(ecs, td2)
    gw = str(tdaemon.net.net.network_address + 1)
    out = connect_from(tdaemon.run / "netns" / task_id(client), gw, port)
    assert out == "dropped", out
    stop(ecs, [server, client])


def test_service_of_bridge_tasks_and_a_fixed_port_it_cannot_place(sdaemon):
    """A service of bridge-mode tasks: each on its own dynamic port, each
    serving its own task; a service of fixed-port tasks places one, and
    its event says why not the second (RESOURCE:PORTS)."""
    ecs = make_client(sdaemon)
    ecs.create_cluster()
    td = register_mode(ecs, sdaemon, "bridge", [web({"containerPort": 8080})])
    ecs.create_service(serviceName="dyn", taskDefinition=td, desiredCount=2)
    stable(ecs, "dyn")
    tasks = running_tasks(ecs, "dyn")
    ports = {bindings(t)[0]["hostPort"]: t for t in tasks}
    assert len(ports) == 2, tasks
    for port, t in ports.items():
        assert tk.poll_until(lambda: page(port), 20, f"service port {port}") == hostname_of(t)
    port = free_port()
    fixed = register_mode(ecs, sdaemon, "bridge", [web({"containerPort": 8080, "hostPort": port})],
                          family="fixed")
    ecs.create_service(serviceName="fixed", taskDefinition=fixed, desiredCount=2)
    tk.poll_until(lambda: any("is already using a port required by your task" in m
                              for m in messages(svc(ecs, "fixed"))), 30,
                  "the service's event for the port")
    assert len(running_tasks(ecs, "fixed")) <= 1


# ---- none and host ----

def test_none_mode_has_only_loopback(ecs, tdaemon):
    """networkMode none: the task's namespace holds lo and nothing else;
    no address, no veth on the bridge, no interface in DescribeTasks."""
    td = register_mode(ecs, tdaemon, "none", [sh("app", IDLE)])
    (t,) = run_bridge(ecs, td)
    assert t["lastStatus"] == "RUNNING", t
    assert t["attachments"] == [] and t["containers"][0]["networkInterfaces"] == [], t
    netns = tdaemon.run / "netns" / task_id(t)
    links = subprocess.run(["nsenter", f"--net={netns}", "ip", "-o", "link"],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert [line.split(":")[1].strip() for line in links] == ["lo"], links
    addrs = subprocess.run(["nsenter", f"--net={netns}", "ip", "-o", "-4", "addr"],
                           capture_output=True, text=True, check=True).stdout
    assert "127.0.0.1/8" in addrs and addrs.count("inet ") == 1, addrs
    bridge_ports = subprocess.run(["ip", "-o", "link", "show", "master", tdaemon.net.bridge],
                                  capture_output=True, text=True).stdout
    assert bridge_ports.strip() == "", bridge_ports
    stop(ecs, [t])
    assert not netns.exists()


def test_host_mode_is_refused_without_the_opt_in(ecs, tdaemon):
    td = register_mode(ecs, tdaemon, "host", [sh("app", IDLE)])
    with pytest.raises(ClientError) as e:
        ecs.run_task(taskDefinition=td)
    err = e.value.response["Error"]
    assert err["Code"] == "ClientException", err
    assert "networkMode host" in err["Message"] and "--allow-host-network" in err["Message"]
    assert ecs.list_clusters()["clusterArns"] == []  # nothing made, not even the cluster


def test_host_mode_with_the_opt_in_shares_the_host_stack(tmp_tasks, task_net, registry_anon):
    """--allow-host-network: the task's containers are in the host's network
    namespace, listen on the host's ports themselves (networkBindings as
    ECS shows them), and a second task wanting the same port does not
    place (RESOURCE:PORTS)."""
    d = TaskDaemon(tmp_tasks, task_net, ["--allow-host-network"],
                   registry=registry_anon).wait_ready()
    try:
        ecs = make_client(d)
        port = free_port()
        script = (f'trap "exit 0" TERM; readlink /proc/self/ns/net; mkdir -p /tmp/www; '
                  f'echo host-mode > /tmp/www/index.html; '
                  f'httpd -f -p 127.0.0.1:{port} -h /tmp/www & wait')
        td = register_mode(ecs, d, "host", [
            sh("web", script, portMappings=[{"containerPort": port}])])
        (t,) = run_bridge(ecs, td)
        assert bindings(t) == [{"bindIP": "0.0.0.0", "containerPort": port, "hostPort": port,
                                "protocol": "tcp"}], t
        assert t["attachments"] == [], t
        assert tk.poll_until(lambda: page(port), 20, "the host-mode httpd") == "host-mode"
        logs = d.logs / task_id(t) / "web.log"
        line = tk.parse_cri(logs.read_text().splitlines()[0])[3]
        assert line == subprocess.run(["readlink", "/proc/self/ns/net"], capture_output=True,
                                      text=True).stdout.strip()
        out = ecs.run_task(taskDefinition=td)
        assert out["tasks"] == [] and out["failures"][0]["reason"] == "RESOURCE:PORTS", out
        assert published(d) == []      # nothing to publish: the task binds the port itself
        stop(ecs, [t])
    finally:
        finish(d, task_net)


# ---- what RegisterTaskDefinition and RunTask refuse ----

def mapping(**kw):
    return dict({"containerPort": 8080}, **kw)


BAD_MAPPINGS = [
    ("bridge", [mapping(containerPort=0)], "Invalid 'containerPort' setting for container 'web'"),
    ("bridge", [mapping(hostPort=65536)], "hostPort"),
    ("bridge", [mapping(containerPort=65536)], "containerPort"),
    ("bridge", [mapping(protocol="sctp")], "protocol"),
    ("bridge", [mapping(containerPort=1000 + i) for i in range(100)], "at most 64"),
    ("bridge", [mapping(), mapping(hostPort=9000)], "containerPort 8080/tcp is mapped twice"),
    ("bridge", [mapping(hostPort=9000), mapping(containerPort=81, hostPort=9000)],
     "TCP host port '9000' is mapped multiple times in task."),
    ("awsvpc", [mapping(hostPort=9090)],
     "When networkMode=awsvpc, the host ports and container ports in port mappings must "
     "match."),
    ("none", [mapping()], "networkMode=none"),
]


@pytest.mark.parametrize("mode,mappings,words", BAD_MAPPINGS)
def test_bad_port_mappings_are_refused_at_register(ecs, tdaemon, mode, mappings, words):
    with pytest.raises(ClientError) as e:
        register_mode(ecs, tdaemon, mode, [web(*mappings)])
    err = e.value.response["Error"]
    assert err["Code"] in ("ClientException", "InvalidParameterException"), err
    assert words in err["Message"], err
    assert ecs.list_task_definitions()["taskDefinitionArns"] == []


@pytest.mark.parametrize("mode", ["bridge", "none", "host"])
def test_network_configuration_only_for_awsvpc(ecs, tdaemon, mode):
    td = register_mode(ecs, tdaemon, mode, [sh("app", IDLE)])
    with pytest.raises(ClientError) as e:
        ecs.run_task(taskDefinition=td, networkConfiguration={"awsvpcConfiguration": {
            "subnets": ["subnet-0berthtest"]}})
    err = e.value.response["Error"]
    assert err["Code"] == "InvalidParameterException", err
    assert err["Message"] == ("Network Configuration is not valid for the given networkMode "
                              "of this task definition."), err
    assert ecs.list_clusters()["clusterArns"] == []  # nothing made, not even the cluster


def test_same_port_twice_over_udp_and_tcp_is_fine(ecs, tdaemon):
    register_mode(ecs, tdaemon, "bridge", [web(mapping(hostPort=9000),
                                               mapping(protocol="udp", hostPort=9000))])
