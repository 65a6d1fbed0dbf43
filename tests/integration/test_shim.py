"""The task agent `berth-shim` (docs/runtime.md, issue 3 "Tests").

Contract under test (binary $BERTH_SHIM):
  berth-shim [--foreground] PLAN.json
    bad plan: exit 1, "berth-shim: <field …>" on stderr, nothing created;
    else (detached) exit 0 printing the shim's pid once the control socket
    <runDir>/shims/<taskId>.sock (0600) listens and network + cgroups exist.
  control socket: status / stop / stats / events, one JSON line each way.
  <taskDir>/exit.json: the final STATUS; then task-stopped, socket removed.
  berth-shim --cleanup PLAN.json
    after the shim died (kill -9): removes what it left of the task, prints
    nothing, exit 0 (also when nothing is left); exit 1 and "berth-shim: …"
    while a shim still answers on the task's socket.

Every test runs its own tasks (unique ids) on the session's test network
(bridge berthtest<pid>, a free 10.213.N.0/24, nft table berth_test_<pid>,
cgroupName berth-test-<pid>), with per-test runDir/taskDir/logDir/ipamDir; the
shim_env fixture fails any test after which something of a task is left on
the host.  Traffic goes only to 127.0.0.0/8 and to task addresses.
"""
import ipaddress
import json
import os
import re
import signal
import socket
import stat
import subprocess
import time

import pytest
import requests

from fixtures import images as fx
from fixtures import tasks as tk
from fixtures.tasks import IDLE, container, ctr


@pytest.fixture(autouse=True)
def _every_test_is_leak_checked(shim_env):
    yield


@pytest.fixture
def env(shim_env):
    return shim_env


def http_session():
    s = requests.Session()
    s.trust_env = False          # never a proxy
    return s


def lines_with(prefix, lines):
    return [ln[len(prefix):] for ln in lines if ln.startswith(prefix)]


def kv(lines):
    """key=value lines of a probe's stdout (first occurrence wins)."""
    out = {}
    for ln in lines:
        if "=" in ln:
            k, v = ln.split("=", 1)
            out.setdefault(k, v)
    return out


# ------------------------------------------------------------------ a) plans

def test_shim_needs_no_shared_library():
    """berth-shim is a static PIE: no ld.so and no DT_NEEDED, so it runs
    whatever libraries the host has, maps only the pages it uses, and can
    never load the host's NSS modules (runtime/shim_nss.c)."""
    elf = subprocess.run(["readelf", "-hldW", tk.SHIM_BIN], capture_output=True, text=True,
                         check=True).stdout
    assert re.search(r"Type:\s+DYN ", elf), "not position-independent (no ASLR)"
    assert "INTERP" not in elf and "(NEEDED)" not in elf, \
        [ln for ln in elf.splitlines() if "INTERP" in ln or "NEEDED" in ln]


def _valid_plan(env):
    return env.task([
        ctr("init", env.bb, "true", essential=False),
        ctr("web", env.bb, IDLE, depends_on=[("init", "SUCCESS")]),
    ])


BAD_PLANS = {
    # case: (mutation of the plan dict, words the message must contain)
    "missing-taskId": (lambda p: p.pop("taskId"), ["taskId"]),
    "missing-taskDir": (lambda p: p.pop("taskDir"), ["taskDir"]),
    "no-containers": (lambda p: p.__setitem__("containers", []), ["containers"]),
    "unknown-dependsOn": (lambda p: p["containers"][1].__setitem__(
        "dependsOn", [{"containerName": "ghost", "condition": "START"}]),
        ["dependsOn", "ghost"]),
    "bad-condition": (lambda p: p["containers"][1].__setitem__(
        "dependsOn", [{"containerName": "init", "condition": "SOMETIME"}]),
        ["dependsOn", "condition"]),
    "dependsOn-cycle": (lambda p: (
        p["containers"][0].__setitem__("dependsOn", [{"containerName": "web",
                                                      "condition": "START"}]),
        p["containers"][1].__setitem__("dependsOn", [{"containerName": "init",
                                                      "condition": "START"}])),
        ["dependsOn", "cycle"]),
    "stopTimeout-too-big": (lambda p: p["containers"][1].__setitem__("stopTimeout", 121),
                            ["stopTimeout"]),
    "stopTimeout-negative": (lambda p: p["containers"][1].__setitem__("stopTimeout", -5),
                             ["stopTimeout"]),
    "stopTimeout-not-a-number": (lambda p: p["containers"][1].__setitem__("stopTimeout",
                                                                          "soon"),
                                 ["stopTimeout"]),
    "relative-layer": (lambda p: p["containers"][1].__setitem__("layers", ["layers/x"]),
                       ["layers"]),
    "healthCheck-interval": (lambda p: p["containers"][1].__setitem__(
        "healthCheck", {"command": ["CMD-SHELL", "true"], "interval": 1}),
        ["healthCheck", "interval"]),
}


def _tree(path):
    out = []
    for dirpath, dirs, files in os.walk(path):
        out += [os.path.relpath(os.path.join(dirpath, n), path) for n in dirs + files]
    return sorted(out)


@pytest.mark.parametrize("foreground", [False, True], ids=["detached", "foreground"])
@pytest.mark.parametrize("case", sorted(BAD_PLANS))
def test_bad_plan_refused_and_nothing_created(env, case, foreground):
    t = _valid_plan(env)
    mutate, words = BAD_PLANS[case]
    plan = json.loads(json.dumps(t.plan))
    mutate(plan)
    t.write_plan(plan)
    before = _tree(env.root)
    rc, out, err = t.run_shim(*(["--foreground"] if foreground else []), timeout=20)
    assert rc == 1, f"rc={rc}\nstdout: {out}\nstderr: {err}"
    msgs = [ln for ln in err.splitlines() if ln.startswith("berth-shim: ")]
    assert msgs, f"no 'berth-shim: ' message on stderr: {err!r}"
    for w in words:
        assert w in msgs[-1], f"{w!r} not named in {msgs[-1]!r}"
    assert out.strip() == "", f"printed {out!r} for a refused plan"
    assert _tree(env.root) == before, "a refused plan changed the directories"
    assert not t.sock_path.exists()
    assert not os.path.exists(t.log_dir)


def test_unreadable_plan_refused(env):
    t = _valid_plan(env)
    t.write_plan(raw='{"taskId": "x", ')
    rc, out, err = t.run_shim(timeout=20)
    assert rc == 1 and err.startswith("berth-shim: "), (rc, out, err)
    t.plan_path.unlink()
    rc, out, err = t.run_shim(timeout=20)
    assert rc == 1 and err.startswith("berth-shim: "), (rc, out, err)


# ------------------------------------------------------------------ b) network, isolation

WEB = 'trap "exit 0" TERM; httpd -f -p 8080 -h /var/www & wait'
FETCH = ('for i in $(seq 100); do if wget -q -O- http://localhost:8080/index.html; '
         'then exit 0; fi; sleep 0.1; done; echo fetch failed >&2; exit 1')


@pytest.mark.cgroup
def test_two_containers_share_localhost_host_reaches_task_and_tasks_are_apart(env):
    other = env.task([ctr("peer", env.bb, 'trap "exit 0" TERM; sleep 4242 & wait')]).start()
    other_st = other.wait_running()
    t = env.task([
        ctr("web", env.bb, WEB, stop_timeout=5),
        ctr("client", env.bb, FETCH, essential=False),
        ctr("probe", env.bb, "ps; echo ---; ls /proc", essential=False,
            depends_on=[("client", "COMPLETE")]),
    ]).start()
    with t.events() as es:
        st = t.wait_container("probe", lambda c: c["lastStatus"] == "STOPPED", 30,
                              stream=es)
        assert container(st, "client")["exitCode"] == 0, t.records("client")
        assert "hello from berth" in t.stdout_lines("client"), t.records("client")
        # A non-essential container's exit stops only itself.
        assert st["lastStatus"] == "RUNNING", st
        assert container(st, "web")["lastStatus"] == "RUNNING", st

        ip, ip2 = st["network"]["ipv4Address"], other_st["network"]["ipv4Address"]
        assert ip != ip2, "two tasks got the same address"
        for a in (ip, ip2):
            assert ipaddress.ip_address(a) in env.net.net, a
        r = http_session().get(f"http://{ip}:8080/index.html", timeout=5)
        assert r.status_code == 200 and r.text == "hello from berth\n", (r.status_code, r.text)

        out = t.stdout_lines("probe")
        ps, procs = out[:out.index("---")], out[out.index("---") + 1:]
        text = "\n".join(out)
        assert "4242" not in text and "httpd" not in text, \
            f"another container's processes are visible:\n{text}"
        pids = [int(x) for ln in procs for x in ln.split() if x.isdigit()]
        assert pids and max(pids) < 50 and len(pids) <= 5, \
            f"/proc shows more than the probe's own processes: {pids}"
        assert len(ps) <= 4, f"ps shows other processes:\n{text}"
        t.stop("done")
        t.wait_stopped(30, es)
    other.stop_and_wait()


# ------------------------------------------------------------------ c) lifecycle

@pytest.mark.cgroup
def test_status_lifecycle_events_and_exit_record(env):
    t = env.task([
        ctr("gate", env.bb, "sleep 1.5", essential=False),
        ctr("main", env.bb, 'trap "sleep 1; exit 0" TERM; sleep 1000 & wait', stop_timeout=10,
            depends_on=[("gate", "COMPLETE")]),
    ])
    t0 = time.time()
    t.start()
    es = t.events()
    try:
        st = os.stat(t.sock_path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        assert es.initial["lastStatus"] == "PENDING", es.initial
        assert es.initial["shimPid"] == t.pid

        running = t.wait_running(20, stream=es)
        assert running["lastStatus"] == "RUNNING"
        with t.client() as c:
            # An unknown request is answered, and the connection stays usable.
            bad = c.request({"op": "frobnicate"})
            assert bad.get("ok") is False and bad.get("error"), bad
            bad = c.request(None, raw=b"this is not json\n")
            assert bad.get("ok") is False and bad.get("error"), bad
            s = c.status()
        assert tk.find_nulls(s) == [], f"null members: {tk.find_nulls(s)}"
        assert s["taskId"] == t.id and s["lastStatus"] == "RUNNING"
        assert s["healthStatus"] == "UNKNOWN"
        for k in ("stopCode", "stoppedReason", "stoppingAt", "stoppedAt"):
            assert k not in s, f"{k} present while running: {s}"
        assert t0 - 1 <= s["createdAt"] <= s["startedAt"] <= time.time() + 1, s
        n = s["network"]
        ip = ipaddress.ip_address(n["ipv4Address"])
        assert ip in env.net.net and str(ip) != env.net.gateway, n
        assert n["prefixLength"] == env.net.net.prefixlen, n
        assert n["gateway"] == env.net.gateway, n
        assert n["macAddress"] == "02:be:" + ":".join(f"{b:02x}" for b in ip.packed), n
        assert n["netns"] == str(env.run_dir / "netns" / t.id), n
        assert os.path.exists(n["netns"])
        assert re.fullmatch(r"vberth[0-9a-f]{9}", n["hostInterface"]), n
        assert tk.link_master(n["hostInterface"]) == env.net.bridge, n
        assert n["hostname"] == "ip-" + str(ip).replace(".", "-"), n
        gate, main = container(s, "gate"), container(s, "main")
        assert gate["lastStatus"] == "STOPPED" and gate["exitCode"] == 0, gate
        assert gate["startedAt"] <= gate["finishedAt"] <= main["startedAt"], (gate, main)
        assert main["lastStatus"] == "RUNNING" and tk.alive(main["pid"]), main
        assert "exitCode" not in main and "finishedAt" not in main, main

        with t.client() as c:
            assert c.stop("stopped by the lifecycle test") == {"ok": True}
        # No event announces STOPPING: main's TERM trap takes 1 s, so status shows it.
        stopping = tk.poll_until(
            lambda: (lambda x: x if x["lastStatus"] != "RUNNING" else None)(t.status()),
            5, "lastStatus to leave RUNNING after stop")
        assert stopping["lastStatus"] == "STOPPING", stopping
        assert "stoppingAt" in stopping and "stoppedAt" not in stopping, stopping
        assert container(stopping, "main")["lastStatus"] == "RUNNING", stopping
        final = t.wait_stopped(20, stream=es)
        assert es.events[-1]["event"] == "task-stopped", es.events[-1]
        assert es.next(time.monotonic() + 5) is None, "events went on after task-stopped"
    finally:
        es.close()

    seen = [x["lastStatus"] for x in es.statuses()]
    order = [tk.STATUS_ORDER.index(x) for x in seen]
    assert order == sorted(order), f"lastStatus went backwards: {seen}"
    kinds = [(e["event"], e.get("container")) for e in es.events]
    for want in [("container-started", "main"), ("container-exited", "gate"),
                 ("container-exited", "main")]:
        assert want in kinds, f"{want} not in events {kinds}"
    assert kinds.index(("container-exited", "gate")) < kinds.index(("container-started",
                                                                    "main")), kinds

    assert final["stopCode"] == "UserInitiated", final
    assert final["stoppedReason"] == "stopped by the lifecycle test", final
    assert final["createdAt"] <= final["startedAt"] <= final["stoppingAt"] <= \
        final["stoppedAt"], final
    assert final["stoppedAt"] - final["stoppingAt"] >= 0.9, "main's TERM trap sleeps 1 s"
    m = container(final, "main")
    assert m["lastStatus"] == "STOPPED" and m["exitCode"] == 0, m
    assert m["startedAt"] <= m["finishedAt"] <= final["stoppedAt"], m
    assert tk.find_nulls(final) == []
    assert t.exit_record() == final, "exit.json differs from the final STATUS"
    assert not t.sock_path.exists()
    assert not tk.alive(t.pid)
    # The events stream alone must tell a client the task became RUNNING:
    # the STATUS of main's container-started event (main is the last
    # essential container to start) already says so.
    started = [e for e in es.events if e["event"] == "container-started"
               and e.get("container") == "main"]
    assert started and started[0]["task"]["lastStatus"] == "RUNNING", \
        f"no event shows the task RUNNING: lastStatus per event {seen}"


# ------------------------------------------------------------------ d) essential

@pytest.mark.cgroup
def test_essential_exit_stops_task_and_others_get_sigterm(env):
    t = env.task([
        # main's second starts once side is exec'd: side's shell has that
        # long to reach its trap (pid 1 drops a signal it does not handle).
        ctr("main", env.bb, "sleep 1; exit 3", depends_on=[("side", "START")]),
        ctr("side", env.bb, 'trap "echo got-term; exit 42" TERM; sleep 1000 & wait',
            stop_timeout=20),
    ]).start()
    final = t.wait_stopped(30)
    assert final["stopCode"] == "EssentialContainerExited", final
    assert final["stoppedReason"] == tk.ESSENTIAL_REASON, final
    main, side = container(final, "main"), container(final, "side")
    assert main["exitCode"] == 3, main
    assert side["exitCode"] == 42, f"side was not stopped by SIGTERM: {side}"
    assert "got-term" in t.stdout_lines("side")
    assert final["stoppedAt"] - main["finishedAt"] < 10, "waited for the stop timeout"


def test_nonessential_exit_stops_only_itself(env):
    t = env.task([
        ctr("helper", env.bb, "sleep 0.5; exit 5", essential=False),
        ctr("main", env.bb, IDLE),
    ]).start()
    with t.events() as es:
        st = t.wait_container("helper", lambda c: c["lastStatus"] == "STOPPED", 20, stream=es)
        assert container(st, "helper")["exitCode"] == 5
        # Nothing else may happen to the task for a while.
        quiet_until = time.monotonic() + 1.5
        try:
            ev = es.next(quiet_until)
        except socket.timeout:
            ev = None
        assert ev is None, f"the task reacted to a non-essential exit: {ev}"
        st = t.status()
        assert st["lastStatus"] == "RUNNING", st
        assert container(st, "main")["lastStatus"] == "RUNNING", st
        with t.client() as c:
            c.stop("bye")
        final = t.wait_stopped(20, es)
    assert final["stopCode"] == "UserInitiated" and final["stoppedReason"] == "bye", final
    assert container(final, "helper")["exitCode"] == 5


# ------------------------------------------------------------------ e) stopTimeout

@pytest.mark.cgroup
def test_stop_timeout_sigkills_container_ignoring_sigterm(env):
    t = env.task([ctr("stubborn", env.bb, 'trap "" TERM; while true; do sleep 1; done',
                      stop_timeout=2)]).start()
    with t.events() as es:
        t.wait_running(20, es)
        t0 = time.monotonic()
        with t.client() as c:
            c.stop()
        final = t.wait_stopped(30, es)
        elapsed = time.monotonic() - t0
    # 2 s of grace, then SIGKILL at once (the lane's emulated guest is
    # SLOWDOWN times slower).
    assert 2.0 <= elapsed < 2 + 2 * tk.SLOWDOWN, f"stop took {elapsed:.2f}s with stopTimeout 2"
    s = container(final, "stubborn")
    assert s["exitCode"] == 137, s
    assert final["stoppedAt"] - final["stoppingAt"] >= 1.9, final


# ------------------------------------------------------------------ f) dependsOn

def test_depends_on_start_complete_success_order(env):
    t = env.task([
        ctr("a", env.bb, "sleep 1; exit 0", essential=False),
        ctr("b", env.bb, IDLE, depends_on=[("a", "START")]),
        ctr("c", env.bb, IDLE, depends_on=[("a", "COMPLETE")]),
        ctr("d", env.bb, IDLE, depends_on=[("a", "SUCCESS")]),
    ]).start()
    with t.events() as es:
        st = t.wait_running(20, es)
        a, b, c, d = (container(st, n) for n in "abcd")
        assert a["exitCode"] == 0, a
        assert a["startedAt"] <= b["startedAt"] < a["finishedAt"], (a, b)
        assert c["startedAt"] >= a["finishedAt"], (a, c)
        assert d["startedAt"] >= a["finishedAt"], (a, d)
        with t.client() as cl:
            cl.stop()
        t.wait_stopped(20, es)


def test_stop_order_dependents_before_dependencies(env):
    """ECS stops dependents first: the dependency gets SIGTERM only after
    the container that depends on it has stopped."""
    t = env.task([
        ctr("base", env.bb, IDLE, stop_timeout=10),
        ctr("app", env.bb, 'trap "sleep 1; exit 0" TERM; sleep 1000 & wait', stop_timeout=10,
            depends_on=[("base", "START")]),
    ]).start()
    t.wait_running()
    final = t.stop_and_wait()
    base, app = container(final, "base"), container(final, "app")
    assert app["exitCode"] == 0 and base["exitCode"] == 0, (app, base)
    assert app["finishedAt"] <= base["finishedAt"], \
        f"base stopped before its dependent app: {base['finishedAt']} < {app['finishedAt']}"


def test_depends_on_success_that_cannot_hold_stops_task(env):
    t = env.task([
        # x's second starts once z is exec'd, for z's trap (see above).
        ctr("x", env.bb, "sleep 1; exit 1", essential=False, depends_on=[("z", "START")]),
        ctr("y", env.bb, IDLE, depends_on=[("x", "SUCCESS")]),
        ctr("z", env.bb, IDLE),
    ]).start()
    with t.events() as es:
        final = t.wait_stopped(30, es)
        seen = [s["lastStatus"] for s in es.statuses()]
    assert "RUNNING" not in seen, f"RUNNING with an essential container never started: {seen}"
    assert container(final, "x")["exitCode"] == 1
    y = container(final, "y")
    assert y["lastStatus"] == "STOPPED" and "startedAt" not in y and "pid" not in y, y
    assert container(final, "z")["exitCode"] == 0, "z did not get a clean SIGTERM"
    # y, essential, can never start: the task failed to start.
    assert final.get("stopCode") == "TaskFailedToStart", final
    assert final.get("stoppedReason"), final


# ------------------------------------------------------------------ g) OOM

@pytest.mark.cgroup
def test_oom_kill_reported_as_out_of_memory(env):
    t = env.task([ctr("hog", env.bb,
                      'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived ${#x}')],
                 memory=64).start()
    final = t.wait_stopped(60)
    hog = container(final, "hog")
    assert hog["exitCode"] == 137, hog
    assert hog.get("reason") == tk.OOM_REASON, hog
    assert not any("survived" in x for x in t.stdout_lines("hog"))
    assert final["stopCode"] == "EssentialContainerExited", final


def _cgroup_value(env, t, group, *files):
    """(file, content) of the first of files found in the task's cgroup
    group ("" for the task group, else a container), in any hierarchy."""
    for root in tk.cgroup_tree_roots(env.net.cgroup_name):
        for f in files:
            p = os.path.join(root, f"task-{t.id}", group, f)
            if os.path.exists(p):
                with open(p) as fh:
                    return f, fh.read().strip()
    raise AssertionError(f"none of {files} in the cgroup of {group or 'the task'}")


@pytest.mark.cgroup
def test_container_limits_inside_the_task(env):
    """Container-level limits under a task limit: the container group gets
    its hard memory limit, CPU weight and memory reservation, and the
    container over its own 32 MiB is OOM-killed with ECS's reason while the
    task (256 MiB) and its other container run on."""
    # USR1 first: wait_running() returns once the TERM trap is set.
    hog = ('trap "go=1" USR1; trap "exit 0" TERM; while [ -z "$go" ]; do sleep 0.1; done; '
           'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived ${#x}')
    t = env.task([ctr("hog", env.bb, hog, essential=False, memory=32),
                  ctr("calm", env.bb, IDLE, cpu=512, memoryReservation=64)],
                 memory=256).start()
    st = t.wait_running()
    MiB = 1 << 20
    assert _cgroup_value(env, t, "", "memory.max", "memory.limit_in_bytes")[1] == str(256 * MiB)
    assert _cgroup_value(env, t, "hog", "memory.max",
                         "memory.limit_in_bytes")[1] == str(32 * MiB)
    f, v = _cgroup_value(env, t, "calm", "cpu.weight", "cpu.shares")
    assert v == (str(1 + (512 - 2) * 9999 // 262142) if f == "cpu.weight" else "512"), (f, v)
    assert _cgroup_value(env, t, "calm", "memory.low",
                         "memory.soft_limit_in_bytes")[1] == str(64 * MiB)
    os.kill(container(st, "hog")["pid"], signal.SIGUSR1)
    with t.events() as es:
        st = t.wait_container("hog", lambda c: c["lastStatus"] == "STOPPED", 60, stream=es)
    h = container(st, "hog")
    assert h["exitCode"] == 137 and h.get("reason") == tk.OOM_REASON, h
    assert not any("survived" in x for x in t.stdout_lines("hog"))
    assert st["lastStatus"] == "RUNNING" and container(st, "calm")["lastStatus"] == "RUNNING", st
    final = t.stop_and_wait()
    assert final["stopCode"] == "UserInitiated", final


@pytest.mark.cgroup
def test_sigkill_without_oom_is_not_reported_as_oom(env):
    t = env.task([ctr("killed", env.bb, 'sh -c "kill -9 \\$\\$"; exit $?')],
                 memory=64).start()
    final = t.wait_stopped(30)
    k = container(final, "killed")
    assert k["exitCode"] == 137, k
    assert not k.get("reason", "").startswith("OutOfMemoryError"), k


# ------------------------------------------------------------------ h) CPU

@pytest.mark.cgroup
def test_task_cpu_256_gets_a_quarter_cpu(env):
    t = env.task([ctr("burner", env.bb,
                      'trap "exit 0" TERM; while :; do :; done & while :; do :; done')],
                 cpu=256).start()
    t.wait_running()
    with t.client() as c:
        time.sleep(0.5)          # measurement window, not a wait for an event
        s1, t1 = c.stats(), time.monotonic()
        time.sleep(3)
        s2, t2 = c.stats(), time.monotonic()
    used = (s2["task"]["cpuUsageUsec"] - s1["task"]["cpuUsageUsec"]) / 1e6
    share = used / (t2 - t1)
    assert 0.2 <= share <= 0.3, f"task got {share:.3f} CPU, want 0.25 ± 20%"
    for k in ("memoryCurrent", "memoryPeak", "cpuUsageUsec", "pidsCurrent"):
        assert isinstance(s2["task"][k], int), (k, s2)
        assert isinstance(s2["containers"]["burner"][k], int), (k, s2)
    assert s2["task"]["pidsCurrent"] >= 2
    assert 0 < s2["task"]["memoryCurrent"] <= s2["task"]["memoryPeak"], s2
    assert s2["containers"]["burner"]["cpuUsageUsec"] <= s2["task"]["cpuUsageUsec"]
    t.stop_and_wait()


# ------------------------------------------------------------------ i) pids

@pytest.mark.cgroup
def test_fork_bomb_held_by_pids_max(env):
    """The bomb's pid 1 execs a sleep, so it never dies of a failed fork;
    the task also gets one CPU of the two, so that the measurement of the
    host's responsiveness is about pids, not about a starved machine."""
    t = env.task([ctr("bomb", env.bb, '(f(){ f | f & }; f); exec sleep 1000', stop_timeout=2)],
                 pidsMax=64, cpu=1024).start()
    t.wait_running()
    seen = []

    def filled():
        n = t.stats()["task"]["pidsCurrent"]
        seen.append(n)
        return n >= 56
    tk.poll_until(filled, 20, "the fork bomb to fill pids.max")
    for _ in range(10):
        seen.append(t.stats()["task"]["pidsCurrent"])
        t0 = time.monotonic()
        subprocess.run(["true"], check=True, timeout=10)
        assert time.monotonic() - t0 < 1.0, "the host is sluggish under the fork bomb"
    assert max(seen) <= 64, f"pids.max 64 exceeded: {seen}"
    t0 = time.monotonic()
    final = t.stop_and_wait(timeout=30)
    assert time.monotonic() - t0 < 15
    assert final["stopCode"] == "UserInitiated"


# ------------------------------------------------------------------ j) security probe

PROBE = r"""
grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | sed 's/:[[:space:]]*/=/'
/bin/busybox unshare -U true 2>/dev/null; echo unshare=$?
mount -t tmpfs x /tmp 2>/dev/null; echo mount=$?
echo kcore=$(head -c 16 /proc/kcore 2>/dev/null | wc -c)
echo keys=$(cat /proc/keys 2>/dev/null | wc -c)
(: > /proc/sysrq-trigger) 2>/dev/null; echo sysrq=$?
(: > /proc/sys/kernel/hostname) 2>/dev/null; echo procsys=$?
echo firmware=$(ls /sys/firmware 2>/dev/null | wc -l)
echo procs=$(ls /proc | grep -E '^[0-9]+$' | tr '\n' ' ')
ls /run/berth >/dev/null 2>&1; echo runberth=$?
ls "$RUNDIR" >/dev/null 2>&1; echo rundir=$?
ls "$ROOT" >/dev/null 2>&1; echo sessroot=$?
echo hostname=$(hostname)
echo uid=$(id -u)
(echo x >> /etc/hosts) 2>/dev/null; echo hostsw=$?
grep -E ' /(etc/hosts|etc/resolv.conf|etc/hostname|sys|proc/sys|proc/sysrq-trigger) ' /proc/self/mountinfo | awk '{print "mnt=" $5 " " $6}'
sed 's/^/hosts:/' /etc/hosts
sed 's/^/resolv:/' /etc/resolv.conf
sed 's/^/etchostname:/' /etc/hostname
echo done=1
"""


def test_in_container_security_probe(env):
    t = env.task([ctr("probe", env.bb, PROBE, environment=[
        {"name": "RUNDIR", "value": str(env.run_dir)},
        {"name": "ROOT", "value": str(env.session.root)}])]).start()
    with t.events() as es:
        hostname = es.initial["network"]["hostname"]
        final = t.wait_stopped(30, es)
    assert container(final, "probe")["exitCode"] == 0, (final, t.records("probe"))
    out = t.stdout_lines("probe")
    v = kv(out)
    assert v.get("done") == "1", out
    assert v["CapEff"] == tk.CAP_EFF_DOCKER, v
    assert v["NoNewPrivs"] == "1", v
    assert v["Seccomp"] == "2", v
    assert v["unshare"] != "0", "unshare -U succeeded"
    assert v["mount"] != "0", "mount succeeded"
    assert v["kcore"] == "0", "/proc/kcore is readable"
    assert v["keys"] == "0", "/proc/keys is readable"
    assert v["sysrq"] != "0", "/proc/sysrq-trigger is writable"
    assert v["procsys"] != "0", "/proc/sys is writable"
    assert v["firmware"] == "0", "/sys/firmware is not masked"
    pids = [int(x) for x in v["procs"].split()]
    assert pids and 1 in pids and len(pids) <= 6, f"/proc shows other processes: {pids}"
    assert v["runberth"] != "0" and v["rundir"] != "0" and v["sessroot"] != "0", v
    assert v["hostname"] == hostname, (v, hostname)
    assert v["uid"] == "0"
    assert v["hostsw"] != "0", "/etc/hosts is writable"
    mnts = {ln.split()[0][4:]: ln.split()[1] for ln in out if ln.startswith("mnt=")}
    # (This kernel may lack /proc/sysrq-trigger and /proc/kcore altogether.)
    for p in ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/sys", "/proc/sys"] + \
            (["/proc/sysrq-trigger"] if os.path.exists("/proc/sysrq-trigger") else []):
        assert p in mnts, f"{p} is not a bind mount: {mnts}"
        assert "ro" in mnts[p].split(","), f"{p} is mounted {mnts[p]}"
    hosts = (t.task_dir / "hosts").read_text().splitlines()
    resolv = (t.task_dir / "resolv.conf").read_text().splitlines()
    assert lines_with("hosts:", out) == hosts
    assert lines_with("resolv:", out) == resolv
    assert lines_with("etchostname:", out) == (t.task_dir / "hostname").read_text().splitlines()
    assert any(hostname in ln for ln in hosts), hosts


def test_keyring_syscalls_refused(env):
    """Keys are not namespaced: Docker's profile refuses the keyring
    syscalls, and so must ours (busybox has no keyctl, hence a probe)."""
    t = env.task([ctr("keys", env.bb + env.layers["keyctl-probe"],
                      argv=["/keyctl-probe"])]).start()
    final = t.wait_stopped(30)
    assert container(final, "keys")["exitCode"] == 0, (final, t.records("keys"))
    v = kv(t.stdout_lines("keys"))
    assert v == {"keyctl": "EPERM", "add_key": "EPERM", "request_key": "EPERM"}, v


def test_i386_socketcall_cannot_open_alg_or_vsock(env):
    """i386's socketcall(2) hides socket()'s family from seccomp: a 32-bit
    entry (int $0x80, as a 32-bit program makes) must not open AF_ALG or
    AF_VSOCK; the direct 32-bit socket syscall still works, family-checked."""
    t = env.task([ctr("sc", env.bb + env.layers["socketcall-probe"],
                      argv=["/socketcall-probe"])]).start()
    final = t.wait_stopped(30)
    assert container(final, "sc")["exitCode"] == 0, (final, t.records("sc"))
    v = kv(t.stdout_lines("sc"))
    assert v == {"socketcall_alg": "EPERM", "socketcall_vsock": "EPERM",
                 "socket32_alg": "EPERM", "socket32_vsock": "EPERM", "socket32_inet": "ok",
                 "socket64_alg": "EPERM"}, v


# ------------------------------------------------------------------ j2) devices

# What a task must never read: the start of a "host disk" (a loop device).
DISK_MARKER = b"BERTH-HOST-DISK-MARKER-5e1f0c"


@pytest.fixture
def host_disk(env):
    """A read-only loop device over a file that starts with DISK_MARKER, as
    a stand-in for a host disk; yields its (major, minor), detached after."""
    subprocess.run(["modprobe", "loop"], capture_output=True)   # the v2 lane's kernel
    img = env.root / "disk.img"
    img.write_bytes(DISK_MARKER.ljust(64 * 1024, b"\0"))
    p = subprocess.run(["losetup", "--read-only", "--find", "--show", str(img)],
                       capture_output=True, text=True)
    assert p.returncode == 0, f"losetup: {p.stderr}"
    dev = p.stdout.strip()
    try:
        with open(dev, "rb") as f:                  # the host can read it
            assert f.read(len(DISK_MARKER)) == DISK_MARKER
        st = os.stat(dev)
        yield os.major(st.st_rdev), os.minor(st.st_rdev)
    finally:
        subprocess.run(["losetup", "--detach", dev], check=True)


def _no_marker(t, name):
    for rec in t.records(name):
        assert DISK_MARKER.decode() not in json.dumps(rec), f"the task read the disk: {rec}"


DEVICES = r"""
mknod /tmp/disk b {maj} {min}; echo mknod_tmp=$?
echo "read_tmp=$(head -c 64 /tmp/disk 2>&1)"
mknod /dev/disk b {maj} {min}; echo mknod_dev=$?
echo "read_dev=$(head -c 64 /dev/disk 2>&1)"
echo zero=$(head -c 8 /dev/zero | wc -c)
echo urandom=$(head -c 8 /dev/urandom | wc -c)
echo x > /dev/null; echo null=$?
echo "full=$( (echo x > /dev/full) 2>&1)"
echo "tty=$( (: < /dev/tty) 2>&1)"
(exec 3<>/dev/ptmx) 2>/dev/null; echo ptmx=$?
echo done=1
"""


@pytest.mark.cgroup
def test_default_task_cannot_read_a_host_disk_but_has_its_devices(env, host_disk):
    """CAP_MKNOD stays (Docker's default set), so mknod of the host's loop
    device works; opening it must not: nodev on the root filesystem
    (EACCES) and, on the container's own /dev tmpfs, the task cgroup's
    device allow-list (EPERM)."""
    maj, mn = host_disk
    t = env.task([ctr("dev", env.bb, DEVICES.format(maj=maj, min=mn))]).start()
    final = t.wait_stopped(30)
    assert container(final, "dev")["exitCode"] == 0, (final, t.records("dev"))
    _no_marker(t, "dev")
    v = kv(t.stdout_lines("dev"))
    assert v.get("done") == "1", v
    assert v["mknod_tmp"] == "0" and v["mknod_dev"] == "0", v
    assert "Permission denied" in v["read_tmp"], v          # nodev
    assert "Operation not permitted" in v["read_dev"], v    # the device cgroup
    assert v["zero"] == "8" and v["urandom"] == "8" and v["null"] == "0", v
    assert "No space left" in v["full"], v
    # No controlling terminal, but the device itself is allowed.
    assert "not permitted" not in v["tty"] and "No such device" in v["tty"], v
    assert v["ptmx"] == "0", v


@pytest.mark.cgroup
def test_device_node_shipped_in_a_layer_is_kept_but_unreadable(env, host_disk, registry_anon):
    """An image may ship a 0666 block node: it is unpacked as it is (the
    image stays faithful), and still neither a non-root user nor root in
    the task can read through it."""
    maj, mn = host_disk
    im = fx.Image(f"devnode-{os.getpid()}-{env.root.name}", "latest",
                  [fx.busybox_layer(), fx.Layer([fx.DEV("disk", "block", maj, mn)])])
    registry_anon.push(im)
    store = env.session.root / "store"
    p = subprocess.run([os.environ.get("BERTH_BIN", "build/release/berth"), "--root", str(store),
                        "pull", "--insecure-registry", registry_anon.host,
                        im.ref(registry_anon.host)],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    layers = [store / "layers" / c.split(":", 1)[1] for c in im.resolved().chain_ids]
    node = layers[-1] / "disk"
    try:
        st = os.lstat(node)
        assert stat.S_ISBLK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666, oct(st.st_mode)
        assert st.st_rdev == os.makedev(maj, mn)
        script = 'echo "ls=$(ls -ln /disk)"; echo "read=$(head -c 64 /disk 2>&1)"; echo done=1'
        t = env.task([ctr("user", layers, script, user="1000"),
                      ctr("root", layers, script, essential=False)]).start()
        final = t.wait_stopped(30)
        for name in ("user", "root"):
            assert container(final, name)["exitCode"] == 0, (final, t.records(name))
            _no_marker(t, name)
            v = kv(t.stdout_lines(name))
            assert v.get("done") == "1", (name, v)
            assert v["ls"].startswith("brw-rw-rw-"), (name, v)
            assert re.search(rf"\b{maj},\s+{mn}\b", v["ls"]), (name, v)
            assert "Permission denied" in v["read"], (name, v)
    finally:
        node.unlink(missing_ok=True)     # a world-readable node of a host device


def test_user_env_workdir_ulimits_readonly_root(env):
    script = ('echo uid=$(id -u); echo gid=$(id -g); echo groups=$(id -G); echo pwd=$(pwd); '
              'echo "greeting=$GREETING"; echo path=$PATH; echo nofile=$(ulimit -n); '
              'touch /home/app/x 2>/dev/null; echo rootfsw=$?; '
              'touch /tmp/x 2>/dev/null; echo tmpw=$?')
    t = env.task([ctr("who", env.bb, script, user="app", workingDirectory="/home/app",
                      environment=[{"name": "GREETING", "value": "hi there"}],
                      ulimits=[{"name": "nofile", "softLimit": 512, "hardLimit": 1024}],
                      readonlyRootFilesystem=True)]).start()
    final = t.wait_stopped(30)
    assert container(final, "who")["exitCode"] == 0, t.records("who")
    v = kv(t.stdout_lines("who"))
    assert v["uid"] == "1000" and v["gid"] == "1000", v
    assert set(v["groups"].split()) == {"1000", "1001"}, v
    assert v["pwd"] == "/home/app" and v["greeting"] == "hi there", v
    assert v["path"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", v
    assert v["nofile"] == "512", v
    assert v["rootfsw"] != "0" and v["tmpw"] != "0", "readonlyRootFilesystem is writable"


def test_overlay_rootfs_stacks_layers_and_spares_them(env):
    layers = env.layers["multilayer"]
    top = layers[-1] / "etc/berth/layer"
    before = top.read_text()
    script = ('echo layer=$(cat /etc/berth/layer); '
              'test -e /etc/berth/removed; echo removed=$?; '
              'echo data=$(ls /opt/data | tr "\\n" " "); '
              'echo changed > /etc/berth/layer && echo written=$(cat /etc/berth/layer)')
    t = env.task([ctr("ov", layers, script)]).start()
    final = t.wait_stopped(30)
    assert container(final, "ov")["exitCode"] == 0, t.records("ov")
    v = kv(t.stdout_lines("ov"))
    assert v["layer"] == "4" and v["removed"] != "0", v
    assert v["data"].split() == ["new"], v
    assert v["written"] == "changed", v
    assert top.read_text() == before, "the container wrote into a lower layer"
    cdir = t.task_dir / "containers"
    files = [os.path.join(d, f) for d, _, fs in os.walk(cdir) for f in fs] if cdir.exists() else []
    assert files == [], f"upper/work not deleted at teardown: {files}"


# ------------------------------------------------------------------ k) start failures

START_FAILURES = {
    "exec-not-found": ({"entryPoint": ["nope"]},
                       'CannotStartContainerError: exec: "nope": executable file not found '
                       'in $PATH'),
    "bad-user": ({"entryPoint": ["/bin/true"], "user": "nosuchuser"}, "nosuchuser"),
    "bad-workdir": ({"entryPoint": ["/bin/true"], "workingDirectory": "/no/such/dir"},
                    "/no/such/dir"),
}


@pytest.mark.parametrize("case", sorted(START_FAILURES))
def test_start_failure_gives_reason_and_task_failed_to_start(env, case):
    fields, want = START_FAILURES[case]
    c = ctr("app", env.bb)
    c.update(fields)
    t = env.task([c, ctr("side", env.bb, IDLE, essential=False)]).start()
    final = t.wait_stopped(30)
    app = container(final, "app")
    assert app["lastStatus"] == "STOPPED", app
    assert app.get("reason", "").startswith("CannotStartContainerError"), app
    assert want in app["reason"], app
    assert final["stopCode"] == "TaskFailedToStart", final
    assert t.exit_record() == final


def test_missing_layer_is_a_start_failure(env):
    t = env.task([ctr("app", [env.root / "no-such-layer"], argv=["/bin/true"])])
    t.write_plan()
    rc, out, err = t.run_shim(timeout=30)
    # docs/runtime.md: a layer that is not there fails the container's
    # start (the plan itself is well formed), it is not a plan refusal.
    assert rc == 0, (rc, out, err)
    t.pid = int(out)
    final = t.wait_stopped(30)
    app = container(final, "app")
    assert "CannotStartContainerError" in app.get("reason", ""), app
    assert final["stopCode"] == "TaskFailedToStart", final


def test_nonessential_start_failure_stops_only_itself(env):
    t = env.task([ctr("main", env.bb, IDLE),
                  ctr("extra", env.bb, argv=["nope"], essential=False)]).start()
    with t.events() as es:
        st = t.wait_container("extra", lambda c: c["lastStatus"] == "STOPPED", 20, stream=es)
        assert "executable file not found" in container(st, "extra").get("reason", ""), st
        st = t.wait_running(10, es)
        assert st["lastStatus"] == "RUNNING", st
        with t.client() as c:
            c.stop()
        final = t.wait_stopped(20, es)
    assert final["stopCode"] == "UserInitiated"


# ------------------------------------------------------------------ l) logs

def test_logs_cri_format_order_streams_and_long_lines(env):
    script = ('echo out-1; sleep 0.1; echo err-1 >&2; sleep 0.1; echo out-2; sleep 0.1; '
              'printf "crlf\\r\\n"; sleep 0.1; echo "err-2 has  spaces" >&2; sleep 0.1; '
              'head -c 20000 /dev/zero | tr "\\0" x; echo; sleep 0.1; printf no-newline')
    t = env.task([ctr("talker", env.bb, script)]).start()
    t.wait_stopped(30)
    recs = t.records("talker")
    got = [(s, tag, text) for _, s, tag, text in recs]
    want = [("stdout", "F", "out-1"), ("stderr", "F", "err-1"), ("stdout", "F", "out-2"),
            ("stdout", "F", "crlf"), ("stderr", "F", "err-2 has  spaces"),
            ("stdout", "P", "x" * 16384), ("stdout", "F", "x" * (20000 - 16384)),
            ("stdout", "F", "no-newline")]
    assert got == want, "\n".join(map(repr, got))
    stamps = [r[0] for r in recs]
    assert stamps == sorted(stamps), stamps
    assert t.log_path("talker").exists(), "logs must stay after teardown"


def test_log_rotation_by_size(env):
    script = ('i=0; while [ $i -lt 400 ]; do printf "line-%04d-padding-padding\\n" $i; '
              'i=$((i+1)); done')
    t = env.task([ctr("rot", env.bb, script,
                      log_options={"max-size": "2k", "max-file": "3"})]).start()
    t.wait_stopped(30)
    files = tk.log_files(t.log_dir, "rot")
    names = sorted(p.name for p in files)
    assert names == ["rot.log", "rot.log.1", "rot.log.2"], names
    texts = []
    for p in files:
        assert p.stat().st_size <= 2000, f"{p.name} is {p.stat().st_size} bytes > 2k"
        texts += [r[3] for r in tk.read_records(p)]
    nums = [int(x[5:9]) for x in texts]
    assert nums == list(range(nums[0], 400)), "rotated logs are not a contiguous tail"
    assert all(x == f"line-{n:04d}-padding-padding" for x, n in zip(texts, nums))
    assert len(nums) > 60, nums


BURST_LINES = 1_000_000
BURST_PAD = ("0123456789abcdefghijklmnopqrstuvwxyz" * 3)[:90]


def test_log_burst_100mb_counted_line_by_line(env):
    assert len(BURST_PAD) == 90       # "%08d " + pad + "\n" = 100 bytes
    script = (f"awk 'BEGIN {{ for (i = 0; i < {BURST_LINES}; i++) "
              f"printf \"%08d {BURST_PAD}\\n\", i }}'")
    t = env.task([ctr("burst", env.bb, script,
                      log_options={"max-size": "300m", "max-file": "2"})]).start()
    final = t.wait_stopped(120 * tk.SLOWDOWN)
    b = container(final, "burst")
    assert b["exitCode"] == 0, b
    # Under the lane's qemu TCG on a loaded host, awk alone took 37 s.
    assert b["finishedAt"] - b["startedAt"] < 30 * tk.SLOWDOWN, "the writer was held up"
    files = tk.log_files(t.log_dir, "burst")
    assert [p.name for p in files] == ["burst.log"], files
    n = 0
    with open(files[0], "rb") as f:
        for line in f:
            parts = line.split(b" ", 3)
            want = b"%08d %s\n" % (n, BURST_PAD.encode())
            if len(parts) != 4 or parts[1] != b"stdout" or parts[2] != b"F" or \
                    parts[3] != want:
                raise AssertionError(f"record {n}: {line[:160]!r}")
            n += 1
    assert n == BURST_LINES, f"{BURST_LINES - n} lines lost"


# ------------------------------------------------------------------ m) parent killed

TICKER = 'trap "exit 0" TERM; i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.1 & wait; done'


@pytest.mark.parametrize("foreground", [False, True], ids=["detached", "foreground"])
@pytest.mark.cgroup
def test_kill_9_of_parent_keeps_task_running(env, foreground):
    t = env.task([ctr("ticker", env.bb, TICKER)])
    parent = t.start_under_parent(foreground)
    t.wait_running()
    if foreground:
        assert tk.proc_status_field(t.pid, "PPid") == str(parent.pid), \
            "--foreground shim is not the sh's child"
    parent.kill()
    parent.wait(10)
    assert tk.alive(t.pid), "the shim died with its parent"

    def ticks():
        return len([x for x in t.stdout_lines("ticker") if x.startswith("tick-")])
    n0 = ticks()
    tk.poll_until(lambda: ticks() >= n0 + 5, 10, "the task to go on logging")
    st = t.status()                        # a new connection re-attaches
    assert st["lastStatus"] == "RUNNING" and st["shimPid"] == t.pid, st
    with t.events() as es:
        with t.client() as c:
            c.stop("re-attached stop")
        final = t.wait_stopped(20, es)
        assert es.events[-1]["event"] == "task-stopped"
    assert final["stopCode"] == "UserInitiated"
    assert final["stoppedReason"] == "re-attached stop"
    assert t.exit_record() == final


# ------------------------------------------------------------------ n) health

READY = 'touch /tmp/ready; ' + IDLE


def _health_events(es, name):
    return [e["task"] for e in es.events if e.get("event") == "health-changed"
            and e.get("container") == name]


def test_health_check_pass_makes_container_and_task_healthy(env):
    t = env.task([ctr("web", env.bb, READY, health=("test -f /tmp/ready", 5, 2, 1))]).start()
    with t.events() as es:
        assert container(es.initial, "web")["healthStatus"] == "UNKNOWN", es.initial
        st = t.wait_container("web", lambda c: c.get("healthStatus") == "HEALTHY", 20,
                              stream=es)
        assert st["healthStatus"] == "HEALTHY", st
        assert _health_events(es, "web"), [e.get("event") for e in es.events]
        with t.client() as c:
            c.stop()
        t.wait_stopped(20, es)


PROBE_COUNTER = ('n=$(cat /tmp/probes 2>/dev/null || echo 0); echo $((n+1)) > /tmp/probes; '
                 '[ "$n" -lt 1 ]')


def test_health_check_turning_bad_becomes_unhealthy(env):
    t = env.task([ctr("flaky", env.bb, IDLE, health=(PROBE_COUNTER, 5, 2, 2))]).start()
    with t.events() as es:
        t.wait_container("flaky", lambda c: c.get("healthStatus") == "HEALTHY", 20, stream=es)
        st = t.wait_container("flaky", lambda c: c.get("healthStatus") == "UNHEALTHY", 30,
                              stream=es)
        assert st["healthStatus"] == "UNHEALTHY", st
        assert st["lastStatus"] == "RUNNING", "an unhealthy container is not stopped"
        seq = [container(s, "flaky")["healthStatus"] for s in es.statuses()]
        dedup = [x for i, x in enumerate(seq) if i == 0 or seq[i - 1] != x]
        assert dedup == ["UNKNOWN", "HEALTHY", "UNHEALTHY"], seq
        with t.client() as c:
            c.stop()
        t.wait_stopped(20, es)


def test_depends_on_healthy(env):
    t = env.task([
        ctr("db", env.bb, READY, health=("test -f /tmp/ready", 5, 2, 1)),
        ctr("app", env.bb, IDLE, depends_on=[("db", "HEALTHY")]),
    ]).start()
    with t.events() as es:
        st = t.wait_container("app", lambda c: "startedAt" in c, 30, stream=es)
        assert container(st, "db")["healthStatus"] == "HEALTHY", st
        kinds = [(e["event"], e.get("container")) for e in es.events]
        assert kinds.index(("health-changed", "db")) < kinds.index(("container-started",
                                                                    "app")), kinds
        for s in es.statuses():
            if container(s, "db").get("healthStatus") != "HEALTHY":
                assert "startedAt" not in container(s, "app"), s
        with t.client() as c:
            c.stop()
        t.wait_stopped(20, es)


# ------------------------------------------------------------------ o) init

ORPHANS = '(sleep 0.3 &); (sleep 0.3 &); (sleep 0.3 &); exec sleep 1000'


@pytest.mark.cgroup
def test_health_check_process_holds_no_host_directory(env):
    """A container with SYS_PTRACE (the one capability Fargate lets a task
    add) catches its health probe's process as it appears (the next pid
    of its pid namespace), stops it and takes every fd it holds with
    pidfd_getfd(): none may be a directory or file of the host (the
    shim's task, log, cache or cgroup directories, its logs)."""
    t = env.task([ctr("victim", env.bb + env.layers["fd-thief"],
                      argv=["/fd-thief", "3", "2", "8"], health=("sleep 1", 5, 4, 3),
                      linuxParameters={"capabilities": {"add": ["SYS_PTRACE"]}})]).start()
    final = t.wait_stopped(60)
    out = t.stdout_lines("victim")
    assert container(final, "victim")["exitCode"] == 0, (final, t.records("victim"))
    assert "done=1" in out, out
    caught = [ln for ln in out if ln.startswith("caught=") and ln != "caught=none"]
    assert caught, f"the attack never caught a health probe: {out}"
    stolen = [ln for ln in out if ln.startswith("fd=")]
    assert stolen, out
    host = [ln for ln in stolen if " type=dir " in ln or " type=reg " in ln]
    assert not host, "a probe carried host directories or files:\n" + "\n".join(host)


def test_health_probe_held_by_the_container_does_not_stall_the_shim(env):
    """The thief keeps its copy of the probe's socket to the shim, so the
    shim never sees the probe exec (end of file on that socket): it gives
    up after RT_EXEC_START_MS (10 s), counts a failed probe and goes on,
    instead of waiting until the container lets go (60 s here).  A probe
    that passes first (one the thief caught only after its exec) is fine:
    the thief tries the next."""
    t = env.task([ctr("victim", env.bb + env.layers["fd-thief"],
                      argv=["/fd-thief", "3", "4", "8", "60"], health=("true", 5, 2, 1),
                      stop_timeout=2,
                      linuxParameters={"capabilities": {"add": ["SYS_PTRACE"]}})]).start()
    with t.events() as es:
        st = t.wait_container("victim", lambda c: c.get("healthStatus") == "UNHEALTHY", 60,
                              stream=es)
        assert st["lastStatus"] == "RUNNING", st
        with t.client() as c:
            c.stop()
        t.wait_stopped(20, es)
    assert any(ln.startswith("caught=") and ln != "caught=none"
               for ln in t.stdout_lines("victim")), t.stdout_lines("victim")


def _ns_init(pid):
    """Host pid of the pid-namespace init of the container whose pid is given."""
    ns = os.readlink(f"/proc/{pid}/ns/pid")
    for p, _pp, state, _argv in tk.processes():
        try:
            if state != "Z" and os.readlink(f"/proc/{p}/ns/pid") == ns and \
                    tk.proc_status_field(p, "NSpid").split()[-1] == "1":
                return p
        except (OSError, AttributeError):
            continue
    raise AssertionError(f"no init in the pid namespace of {pid}")


def _children(pid):
    return [(p, state, argv) for p, pp, state, argv in tk.processes() if pp == pid]


@pytest.mark.parametrize("init", [True, False], ids=["init", "no-init"])
@pytest.mark.cgroup
def test_init_process_reaps_zombies_and_forwards_signals(env, init):
    t = env.task([ctr("z", env.bb, ORPHANS, stop_timeout=2 if not init else 10,
                      linuxParameters={"initProcessEnabled": init})]).start()
    st = t.wait_running()
    init_pid = _ns_init(container(st, "z")["pid"])
    if init:
        # sh forks the orphans before it execs the real process (sleep
        # 1000), and they die 0.3 s later.  Once that much time has passed
        # since the exec, the init must have reaped them: its only child is
        # the real process.  (Polled from RUNNING alone, this passed before
        # the orphans existed.)
        tk.poll_until(lambda: ["sleep", "1000"] in [a for _, _, a in _children(init_pid)], 10,
                      "the real process")
        time.sleep(0.3)
        kids = tk.poll_until(lambda: (lambda k: k if len(k) == 1 else None)(
            _children(init_pid)), 10, "the init's children to be just the real process")
        assert kids[0][1] != "Z" and kids[0][2] == ["sleep", "1000"], kids
    else:
        # Control: without the init, sleep is pid 1 and the orphans stay zombies.
        tk.poll_until(lambda: len([s for _, s, _ in _children(init_pid) if s == "Z"]) >= 3, 10,
                      "three zombies under a non-reaping pid 1")
    t0 = time.monotonic()
    final = t.stop_and_wait()
    elapsed = time.monotonic() - t0
    z = container(final, "z")
    if init:
        assert z["exitCode"] == 143, f"SIGTERM not forwarded to the real process: {z}"
        assert elapsed < 5, f"stop took {elapsed:.1f}s: SIGTERM was not forwarded"
    else:
        assert z["exitCode"] == 137, z


# ------------------------------------------------------------------ p) after a shim died

def _kill_shim(t):
    """kill -9 of a running task's shim (reaped: pytest is the subreaper);
    returns {container: pid} of the containers it left running."""
    st = t.status()
    pids = {c["name"]: c["pid"] for c in st["containers"] if c["lastStatus"] == "RUNNING"}
    os.kill(t.pid, signal.SIGKILL)
    tk.poll_until(lambda: not tk.alive(t.pid), 10, f"shim {t.pid} to die")
    return pids


def _ipam_files(env, t):
    out = []
    for d, _, files in os.walk(env.ipam_dir):
        for f in files:
            p = os.path.join(d, f)
            if not f.startswith(".") and open(p).read().strip() == t.id:
                out.append(p)
    return out


def _left_of(env, t):
    """{kind: [what of task t is still on the host]}; every list empty once
    it is all gone."""
    netns = env.run_dir / "netns" / t.id
    return {
        "cgroups": [d for d in tk.task_cgroup_dirs(env.net.cgroup_name)
                    if f"/task-{t.id}" in d],
        "netns": [str(netns)] if netns.exists() else [],
        "netns mount": sorted(tk.mount_lines(netns)),
        "veth": [t.host_if] if t.host_if in tk.links() else [],
        "ipam": _ipam_files(env, t),
        "socket": [str(t.sock_path)] if t.sock_path.exists() else [],
        "containers dir": [str(t.task_dir / "containers")]
        if (t.task_dir / "containers").exists() else [],
    }


def _cleanup(t):
    rc, out, err = t.run_shim("--cleanup")
    assert (rc, out, err) == (0, "", ""), f"--cleanup: rc={rc}\nstdout: {out}\nstderr: {err}"


def _assert_all_gone(env, t, pids):
    tk.poll_until(lambda: all(not tk.alive(p) for p in pids.values()), 10,
                  "the containers' processes to be gone")
    left = {k: v for k, v in _left_of(env, t).items() if v}
    assert not left, f"left after --cleanup: {left}"
    assert t.log_path(next(iter(pids))).exists(), "--cleanup removed the logs"
    assert not (t.task_dir / "exit.json").exists(), "an exit record appeared from nowhere"


CLEANUP_TASKS = {
    "one-container": [("app", IDLE, True)],
    "two-containers": [("web", WEB, True), ("side", IDLE, False)],
}


@pytest.mark.parametrize("case", sorted(CLEANUP_TASKS))
@pytest.mark.cgroup
def test_cleanup_after_kill_9_removes_what_the_shim_left(env, case):
    t = env.task([ctr(n, env.bb, script, essential=ess, stop_timeout=5)
                  for n, script, ess in CLEANUP_TASKS[case]]).start()
    t.wait_running()
    pids = _kill_shim(t)
    assert sorted(pids) == sorted(n for n, _, _ in CLEANUP_TASKS[case]), pids
    # The premise: the shim's death stopped nothing and removed nothing.
    assert all(tk.alive(p) for p in pids.values()), f"containers died with the shim: {pids}"
    left = _left_of(env, t)
    missing = [k for k, v in left.items() if not v]
    assert not missing, f"not there after kill -9 of the shim: {missing}"
    hierarchies = len(tk.cgroup_tree_roots(env.net.cgroup_name))
    assert len(left["cgroups"]) == hierarchies * (1 + len(pids)), left["cgroups"]
    _cleanup(t)
    _assert_all_gone(env, t, pids)


@pytest.mark.cgroup
def test_cleanup_is_idempotent_and_takes_partial_leftovers(env):
    never = env.task([ctr("app", env.bb, IDLE)])
    never.write_plan()
    _cleanup(never)                     # nothing of it was ever there
    t = env.task([ctr("app", env.bb, IDLE)]).start()
    t.wait_running()
    pids = _kill_shim(t)
    # Only part left: the veth and the socket are gone already.
    subprocess.run(["ip", "link", "del", t.host_if], check=True, capture_output=True)
    t.sock_path.unlink()
    _cleanup(t)
    _assert_all_gone(env, t, pids)
    _cleanup(t)
    _assert_all_gone(env, t, pids)


def test_cleanup_refused_while_the_shim_runs(env):
    t = env.task([ctr("app", env.bb, IDLE)]).start()
    st = t.wait_running()
    rc, out, err = t.run_shim("--cleanup")
    assert rc == 1 and out == "", (rc, out, err)
    assert err.startswith("berth-shim: ") and str(t.sock_path) in err, err
    assert "still answers" in err, err
    after = t.status()
    assert after["lastStatus"] == "RUNNING" and after["shimPid"] == t.pid, after
    assert tk.alive(container(st, "app")["pid"]), "--cleanup killed a live shim's container"
    left = _left_of(env, t)
    assert all(left.values()), f"--cleanup took from a live shim: {left}"
    final = t.stop_and_wait()
    assert final["stopCode"] == "UserInitiated", final
