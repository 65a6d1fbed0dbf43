"""The network policy (docs/networking.md "Network policy", issue 10): what a
task can reach, tried from inside real task namespaces.

Tasks run under berth-shim on the session's test network (bridge
berthtest<pid>, a free 10.213.N.0/24, nft tables ip/bridge berth_test_<pid>,
installed by `berth host-network` as berthd does).  The probes run in a
task's network namespace with nsenter; every address they send to is the
test bridge's gateway or a task of the test subnet.  Nothing is ever sent
to 169.254.169.254: its drop is read from the ruleset, and the blocked-
address rule is exercised on a task address configured as blocked.

A dropped packet never answers, so "dropped" is a connection attempt that
saw nothing within DROP_WAIT seconds (a refusal would mean it got through).
"""
import secrets
import socket
import subprocess
import time
from pathlib import Path

import pytest

from fixtures import tasks as tk
from fixtures.tasks import IDLE, ctr

DROP_WAIT = 1.5

WEB = 'trap "exit 0" TERM; httpd -f -p 8080 -h /var/www & wait'

# argv: source address ("" for the task's own), destination, port.
PROBE = """
import socket, sys
src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket()
s.settimeout(float(sys.argv[4]))
if src:
    s.bind((src, 0))
try:
    s.connect((dst, port))
    print("connected")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("dropped")
"""

# A router advertisement for prefix argv[1] (8 bytes, hex) as a raw
# Ethernet frame from eth0 to all nodes: what a task with NET_RAW can send.
ROUTER_ADVERTISEMENT = """
import socket, struct, sys
mac = bytes.fromhex(open("/sys/class/net/eth0/address").read().strip().replace(":", ""))
eui = bytearray(mac[:3] + b"\\xff\\xfe" + mac[3:])
eui[0] ^= 2
src = b"\\xfe\\x80" + bytes(6) + bytes(eui)
dst = bytes.fromhex("ff020000000000000000000000000001")
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
pio = struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 86400, 14400, 0) + bytes.fromhex(sys.argv[1]) + bytes(8)
body = ra + pio + struct.pack("!BB", 1, 1) + mac
pseudo = src + dst + struct.pack("!I3xB", len(body), 58)
words = struct.unpack("!%dH" % ((len(pseudo) + len(body)) // 2), pseudo + body)
c = sum(words)
while c >> 16:
    c = (c & 0xFFFF) + (c >> 16)
body = body[:2] + struct.pack("!H", ~c & 0xFFFF) + body[4:]
ip6 = struct.pack("!IHBB", 0x60000000, len(body), 58, 255) + src + dst
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for _ in range(3):
    s.send(bytes.fromhex("333300000001") + mac + b"\\x86\\xdd" + ip6 + body)
print("sent")
"""


@pytest.fixture(autouse=True)
def _every_test_is_leak_checked(shim_env):
    yield


@pytest.fixture
def env(shim_env):
    return shim_env


def in_task(st, *argv):
    """Runs argv in the network namespace of a task: st is its STATUS or
    its netns path."""
    netns = st if isinstance(st, (str, Path)) else st["network"]["netns"]
    p = subprocess.run(["nsenter", f"--net={netns}", *argv], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, f"{argv} in the task's namespace: {p.stderr}"
    return p.stdout.strip()


def connect_from(st, dst, port, src=""):
    """'connected', 'refused' (got through: nothing listens) or 'dropped'."""
    return in_task(st, "/usr/bin/python3", "-c", PROBE, src, dst, str(port), str(DROP_WAIT))


def ip_of(st):
    return st["network"]["ipv4Address"]


def in_groups(env, *groups):
    return env.net.config(env.ipam_dir, securityGroups=list(groups))


def start(env, script, network=None):
    fields = {"network": network} if network else {}
    t = env.task([ctr("main", env.bb, script, stop_timeout=5)], **fields).start()
    return t, t.wait_running()


def serving(st):
    """Waits until the task's httpd on 8080 answers the host."""
    def up():
        try:
            socket.create_connection((ip_of(st), 8080), timeout=1).close()
            return True
        except OSError:
            return False
    tk.poll_until(up, 20, f"httpd of {ip_of(st)}")


def test_host_listener_on_any_address_is_unreachable_from_a_task(env):
    with socket.socket() as lsn:
        lsn.bind(("0.0.0.0", 0))
        lsn.listen(8)
        port = lsn.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        t, st = start(env, IDLE)
        assert connect_from(st, env.net.gateway, port) == "dropped"
        # The host still reaches the task, and the task answers it.
        web, wst = start(env, WEB)
        serving(wst)
        for x in (web, t):
            x.stop_and_wait()


def test_security_groups_decide_which_tasks_talk(env):
    web_a, sa = start(env, WEB, in_groups(env, "sg-a"))
    web_b, sb = start(env, WEB, in_groups(env, "sg-b"))
    client, sc = start(env, IDLE, in_groups(env, "sg-a"))
    both, sab = start(env, IDLE, in_groups(env, "sg-b", "sg-a"))
    serving(sa)
    serving(sb)
    assert connect_from(sc, ip_of(sa), 8080) == "connected", "same group"
    assert connect_from(sc, ip_of(sb), 8080) == "dropped", "different groups"
    assert connect_from(sb, ip_of(sa), 8080) == "dropped", "different groups"
    assert connect_from(sab, ip_of(sa), 8080) == "connected", "shares sg-a"
    assert connect_from(sab, ip_of(sb), 8080) == "connected", "shares sg-b"
    for x in (web_a, web_b, client, both):
        x.stop_and_wait()


def test_spoofed_source_address_and_mac_are_dropped(env):
    web, sw = start(env, WEB)
    client, sc = start(env, IDLE)
    serving(sw)
    assert connect_from(sc, ip_of(sw), 8080) == "connected"
    # An address of the subnet no task holds, added inside the task (as a
    # task with NET_ADMIN could; a raw socket could send it without).
    spoof = str(env.net.net.network_address + 254)
    in_task(sc, "ip", "addr", "add", f"{spoof}/32", "dev", "eth0")
    assert connect_from(sc, ip_of(sw), 8080, src=spoof) == "dropped"
    in_task(sc, "ip", "addr", "del", f"{spoof}/32", "dev", "eth0")
    # Its own address from another MAC: ARP and IP are both dropped.
    mac = in_task(sc, "cat", "/sys/class/net/eth0/address")
    in_task(sc, "ip", "link", "set", "eth0", "address", "02:be:00:00:00:01")
    assert connect_from(sc, ip_of(sw), 8080) == "dropped"
    in_task(sc, "ip", "link", "set", "eth0", "address", mac)
    for x in (web, client):
        x.stop_and_wait()


def _host_ra_routes(bridge, prefix):
    out = subprocess.run(["ip", "-6", "route", "show", "table", "all"], capture_output=True,
                         text=True).stdout
    return [ln for ln in out.splitlines()
            if prefix in ln or (f"dev {bridge} " in ln + " " and "proto ra" in ln)]


def test_router_advertisement_from_a_task_changes_no_host_route(env):
    t, st = start(env, IDLE)
    tag = secrets.token_hex(2)
    prefix_hex, prefix = f"20010db8{tag}0000", f"2001:db8:{int(tag, 16):x}:"
    assert _host_ra_routes(env.net.bridge, prefix) == []
    assert in_task(st, "/usr/bin/python3", "-c", ROUTER_ADVERTISEMENT, prefix_hex) == "sent"
    # The kernel handles an RA as it arrives; give it DROP_WAIT to show.
    deadline = time.monotonic() + DROP_WAIT
    while time.monotonic() < deadline:
        assert _host_ra_routes(env.net.bridge, prefix) == [], "the task's RA made host routes"
        time.sleep(0.1)
    assert in_task(st, "cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6") == "1"
    t.stop_and_wait()


def test_metadata_address_blocked_by_default_and_blocked_list_is_configurable(env):
    rules = subprocess.run(["nft", "list", "table", "bridge", env.net.nft_table],
                           capture_output=True, text=True).stdout
    assert "elements = { 169.254.169.254 }" in rules, rules
    assert "ip daddr @blocked drop" in rules, rules
    web, sw = start(env, WEB)
    client, sc = start(env, IDLE)
    serving(sw)
    assert connect_from(sc, ip_of(sw), 8080) == "connected"
    # A task address of the test subnet as the blocked one: dropped even
    # between tasks of one group; a restart of the rules keeps the tasks.
    try:
        env.net.reconfigure("--block", ip_of(sw))
        assert connect_from(sc, ip_of(sw), 8080) == "dropped"
    finally:
        env.net.reconfigure()
    assert connect_from(sc, ip_of(sw), 8080) == "connected"
    for x in (web, client):
        x.stop_and_wait()
