"""berth-shim: a container's restartPolicy and the dependsOn startTimeout
(docs/runtime.md "Restarts", "Task semantics"; issue 15).

The plan takes a restartAttemptPeriod from 1 s (the daemon holds task
definitions to ECS's 60..1800), so these run in seconds.  Same test network
and leak check as test_shim.py (the shim_env fixture).
"""
import time

from fixtures import tasks as tk
from fixtures.tasks import IDLE, container, ctr


# Each run prints its number (kept in the container's writable layer) and
# its address, runs past the 1 s attempt period and fails with 3; the third
# run exits with 7, which the policy ignores.
COUNTING = ('n=$(cat /tmp/runs 2>/dev/null || echo 0); echo $((n+1)) > /tmp/runs; '
            'echo "run=$n ip=$(ip -4 addr | grep -o "inet [0-9.]*" | grep -v 127.0.0.1)"; '
            '[ "$n" -ge 2 ] && exit 7; sleep 1.3; exit 3')


def test_exit_past_the_period_restarts_in_place_until_an_ignored_code(shim_env):
    t = shim_env.task([
        ctr("web", shim_env.bb, COUNTING,
            restartPolicy={"enabled": True, "ignoredExitCodes": [7], "restartAttemptPeriod": 1}),
        ctr("side", shim_env.bb, IDLE),
    ]).start()
    with t.events() as es:
        st = t.wait_running(20, es)
        ip, side_pid = st["network"]["ipv4Address"], container(st, "side")["pid"]
        final = t.wait_stopped(30, es)
        restarts = [e for e in es.events if e.get("event") == "container-restarted"]
        seen = [container(s, "web")["lastStatus"] for s in es.statuses()]
    web = container(final, "web")
    # Restarted twice in the same task; the third exit (7) is ignored and,
    # web being essential, stops the task as any essential exit does.
    assert web["restartCount"] == 2 and len(restarts) == 2, (web, restarts)
    assert [container(e["task"], "web")["restartCount"] for e in restarts] == [1, 2], restarts
    assert web["exitCode"] == 7, web
    assert final["stopCode"] == "EssentialContainerExited", final
    assert seen.index("STOPPED") > max(i for i, x in enumerate(seen) if x == "RUNNING"), seen
    # The same namespace (address), the same writable layer (the counter),
    # one log that goes on; the other container never noticed.
    assert t.stdout_lines("web") == [f"run={n} ip=inet {ip}" for n in range(3)], t.records("web")
    assert container(final, "side")["pid"] == side_pid and \
        container(final, "side")["exitCode"] == 0, final


def test_exit_within_the_period_is_not_restarted(shim_env):
    """A container that dies at once (a crash loop) is never restarted:
    the attempt period bounds how often the shim starts it."""
    t = shim_env.task([ctr("crash", shim_env.bb, "echo up; exit 1",
                      restartPolicy={"enabled": True, "restartAttemptPeriod": 60})]).start()
    final = t.wait_stopped(30)
    c = container(final, "crash")
    assert c["restartCount"] == 0 and c["exitCode"] == 1, c
    assert final["stopCode"] == "EssentialContainerExited", final
    assert t.stdout_lines("crash") == ["up"]
    assert "not restarted: it ran for less than restartAttemptPeriod" in t.shim_log()


def test_hostile_restart_loop_restarts_at_most_once_per_period(shim_env):
    """A container that exits as soon as the period allows is restarted
    no more often than that, and a stop ends the loop."""
    t = shim_env.task([ctr("loop", shim_env.bb, "sleep 1.05; exit 1",
                      restartPolicy={"enabled": True, "restartAttemptPeriod": 1})]).start()
    with t.events() as es:
        t.wait_running(20, es)
        t0 = time.monotonic()
        t.wait_container("loop", lambda c: c["restartCount"] >= 2, 20, stream=es)
        elapsed = time.monotonic() - t0
        t.stop("enough")
        final = t.wait_stopped(20, es)
    assert elapsed >= 2.0, f"two restarts in {elapsed:.2f}s with a 1s period"
    n = container(final, "loop")["restartCount"]
    assert final["stopCode"] == "UserInitiated" and n <= 3 + int(elapsed), final


def test_start_timeout_gives_up_on_a_dependency_never_healthy(shim_env):
    t = shim_env.task([
        ctr("db", shim_env.bb, IDLE, health=("false", 5, 2, 1), startTimeout=2),
        ctr("app", shim_env.bb, IDLE, depends_on=[("db", "HEALTHY")]),
    ]).start()
    final = t.wait_stopped(30)
    db, app = container(final, "db"), container(final, "app")
    waited = final["stoppingAt"] - db["startedAt"]
    assert 1.9 <= waited < 2 + 2 * tk.SLOWDOWN, f"gave up after {waited:.2f}s, startTimeout 2"
    assert final["stopCode"] == "TaskFailedToStart", final
    assert final["stoppedReason"] == "Task failed to start", final
    assert "startedAt" not in app and "db was not HEALTHY within its startTimeout of 2s" in \
        app["reason"], app
