"""Services: how fast a service heals, and a rolling update, against a real
`berth daemon` driven with boto3 (the ECS API over SigV4 on 127.0.0.1).

  replacement  a 2-task service (busybox, awsvpc); every process of one
               RUNNING task's cgroup is SIGKILLed from the host, and the
               clock runs from the kill until a new task of the service is
               RUNNING in DescribeTasks (polled every few ms), with the
               split from the tasks' own timestamps: the old task's
               stoppingAt (the shim saw the essential container die) and
               stoppedAt (torn down; Berth gives executionStoppedAt the
               same value), the new one's createdAt, pullStartedAt,
               pullStoppedAt (every start asks the registry again, as the
               ECS agent does) and startedAt.  Median of
               BERTH_BENCH_KILLS (default 20).
               Before each kill both tasks have been RUNNING for 1.5 s, so
               that they count healthy (--service-healthy-after 1s): a task
               that dies before it is healthy is a failure, and the next
               start is backed off (docs/services.md).
  rolling      the 2-task service stable on revision N, UpdateService to a
               new revision N+1 (maximumPercent 200, minimumHealthyPercent
               100): the time until it has one deployment, COMPLETED, and
               2 RUNNING tasks of N+1.  Median of BERTH_BENCH_ROLLS (3).

Peers, for scale (not run here): ECS replaces a stopped service task in
tens of seconds; Kubernetes documents its CrashLoopBackOff delays as 10 s,
20 s, 40 s … .  And ECS counts a task without health checks healthy after
40 s, which the rolling row computes too.
"""
import datetime
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures import images as fx      # noqa: E402
from fixtures import registry as reg   # noqa: E402
from fixtures import tasks as tk       # noqa: E402
from benchlib import ROOMY_INSTANCE, Reaper, popen, run, table, wait   # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BERTH = os.environ.get("BERTH_BIN", str(REPO / "build/release/berth"))
KILLS = int(os.environ.get("BERTH_BENCH_KILLS", "20"))
ROLLS = int(os.environ.get("BERTH_BENCH_ROLLS", "3"))
BRIDGE, SUBNET, NFT, CGROUP = "berthbench2", "10.219.0.0/16", "berth_bench2", "berth-bench-svc"
HEALTHY_AFTER = 1.0        # --service-healthy-after
ECS_HEALTHY_AFTER = 40.0   # ECS's wait, the daemon's default
SETTLE = 1.5               # RUNNING this long before a kill: healthy, with margin
POLL = 0.003               # between two polls while the clock runs
COUNT = 2
SERVICE, FAMILY = "bench", "bench"
AKID, SECRET, REGION = "AKIDBERTHBENCH", "berth-bench-secret", "us-east-1"
NETCFG = {"awsvpcConfiguration": {"subnets": ["subnet-bench"]}}
IDLE = tk.IDLE             # sh: trap "exit 0" TERM; sleep 1000 & wait


class Daemon:
    """berth daemon on a unix socket and a SigV4 TCP port, everything under work."""

    def __init__(self, work, registry_host, extra=()):
        self.work = work
        self.run_dir = work / "run"
        self.port = reg.free_port()
        creds = work / "credentials"
        creds.write_text(f"[default]\naws_access_key_id = {AKID}\n"
                         f"aws_secret_access_key = {SECRET}\n")
        creds.chmod(0o600)
        argv = [BERTH, "daemon", "--root", str(work / "root"), "--run-root", str(self.run_dir),
                "--log-root", str(work / "logs"), "--listen", f"unix:{self.run_dir}/berth.sock",
                "--listen", f"tcp:127.0.0.1:{self.port}", "--credentials", str(creds),
                "--insecure-registry", registry_host,
                "--bridge", BRIDGE, "--subnet", SUBNET, "--nft-table", NFT, "--no-nat",
                "--cgroup-name", CGROUP, "--service-healthy-after", f"{HEALTHY_AFTER:g}s",
                *ROOMY_INSTANCE, *extra]
        self.stderr_path = work / "daemon.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = popen(argv, stdout=subprocess.DEVNULL, stderr=self._stderr)
        deadline = time.monotonic() + 20
        while "ready" not in self.stderr():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon not ready ({self.proc.poll()}): {self.stderr()}")
            time.sleep(0.02)

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def client(self):
        return boto3.client("ecs", endpoint_url=f"http://127.0.0.1:{self.port}",
                            region_name=REGION, aws_access_key_id=AKID,
                            aws_secret_access_key=SECRET,
                            config=Config(retries={"total_max_attempts": 1}))

    def stop(self):
        """SIGTERM: the daemon must exit 0 (its tasks are gone by then)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                wait(self.proc, 20)
            except BaseException:
                self.proc.kill()
                wait(self.proc)
                raise RuntimeError("the daemon ignored SIGTERM")
        else:
            wait(self.proc)
        self._stderr.close()
        if self.proc.returncode != 0:
            raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.stderr()[-2000:]}")


# ------------------------------------------------------------------ the service

def ts(t, key):
    v = t.get(key)
    return v.timestamp() if isinstance(v, datetime.datetime) else None


def register(ecs, image, script):
    return ecs.register_task_definition(
        family=FAMILY, networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[{"name": "app", "image": image, "essential": True,
                               "entryPoint": ["/bin/sh", "-c"], "command": [script]}],
    )["taskDefinition"]["taskDefinitionArn"]


def service_tasks(ecs):
    """Every not-STOPPED task of the service (ListTasks' default filter)."""
    arns = ecs.list_tasks(serviceName=SERVICE)["taskArns"]
    return ecs.describe_tasks(tasks=arns)["tasks"] if arns else []


def whole(ecs, td=None, timeout=60):
    """Waits until the service is stable: one deployment (of td), rollout
    COMPLETED, COUNT tasks RUNNING for SETTLE s (healthy) and no other;
    returns those tasks."""
    deadline = time.monotonic() + timeout
    while True:
        s = ecs.describe_services(services=[SERVICE])["services"][0]
        deps = s["deployments"]
        if (len(deps) == 1 and deps[0]["rolloutState"] == "COMPLETED" and
                (td is None or deps[0]["taskDefinition"] == td)):
            tasks = service_tasks(ecs)
            now = time.time()
            if (len(tasks) == COUNT and
                    all(t["lastStatus"] == "RUNNING" and now - ts(t, "startedAt") >= SETTLE
                        for t in tasks)):
                return tasks
        if time.monotonic() > deadline:
            raise RuntimeError(f"service not whole after {timeout} s: {deps}")
        time.sleep(0.1)


def task_id(arn):
    return arn.rsplit("/", 1)[1]


# ------------------------------------------------------------------ replacement

# (row, key, task, field): the split, from the tasks' own timestamps.
SPLIT = [("old task stoppingAt (the shim saw its container die)", "stopping", "old", "stoppingAt"),
         ("old task stoppedAt (the shim tore it down)", "stopped", "old", "stoppedAt"),
         ("new task createdAt (the scheduler replaced it)", "created", "new", "createdAt"),
         ("new task pullStartedAt", "pull_started", "new", "pullStartedAt"),
         ("new task pullStoppedAt", "pull_stopped", "new", "pullStoppedAt"),
         ("new task startedAt (its container's exec)", "started", "new", "startedAt")]


def replace_one(ecs):
    """Kills one task's processes; seconds from the kill to each mark."""
    tasks = whole(ecs)
    victim = min(tasks, key=lambda t: ts(t, "startedAt"))
    before = {t["taskArn"] for t in tasks}
    pids = tk.task_pids(CGROUP, task_id(victim["taskArn"]))
    if not pids:
        raise RuntimeError(f"no process in the cgroups of {victim['taskArn']}")
    t0 = time.time()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    marks, new, polls = {}, [], 0
    while True:
        if not new:
            new = [a for a in ecs.list_tasks(serviceName=SERVICE)["taskArns"] if a not in before]
        got = {t["taskArn"]: t for t in
               ecs.describe_tasks(tasks=[victim["taskArn"]] + new)["tasks"]}
        now = time.time()
        polls += 1
        old = got[victim["taskArn"]]
        if "stopped_seen" not in marks and old["lastStatus"] == "STOPPED":
            marks["stopped_seen"] = now - t0
        up = [got[a] for a in new if got[a]["lastStatus"] == "RUNNING"]
        if up:
            marks["total"] = now - t0
            break
        if now - t0 > 30:
            raise RuntimeError(f"no replacement RUNNING 30 s after the kill: {list(got.values())}")
        time.sleep(POLL)
    if "stopped_seen" not in marks:       # STOPPED by the time the new one runs
        marks["stopped_seen"] = marks["total"]
    marks["polls"] = polls
    for _, key, which, field in SPLIT:
        v = ts(old if which == "old" else up[0], field)
        if v is not None:
            marks[key] = v - t0
    return marks


def round_trip(ecs, n=50):
    """Median seconds of one DescribeTasks of the service's tasks, at rest."""
    arns = [t["taskArn"] for t in whole(ecs)]
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        ecs.describe_tasks(tasks=arns)
        times.append(time.monotonic() - t0)
    return statistics.median(times)


def bench_replacement(ecs):
    rtt = round_trip(ecs)
    runs = []
    for i in range(KILLS):
        m = replace_one(ecs)
        runs.append(m)
        print(f"  kill {i + 1:2}: new task RUNNING after {m['total'] * 1e3:7.1f} ms "
              f"({m['polls']} polls)", flush=True)
    rows = [("kill -9 → replacement RUNNING in the API", [m["total"] for m in runs],
             "target < 500 ms")]
    for name, key, _, _ in SPLIT:
        rows.append(("  kill -9 → " + name, [m[key] for m in runs if key in m], ""))
    rows.insert(3, ("  kill -9 → old task STOPPED seen in the API",
                    [m["stopped_seen"] for m in runs], ""))
    period = statistics.median(m["total"] / m["polls"] for m in runs)
    table(f"service task replacement, {KILLS} kills", rows)
    print(f"\nWhile the clock ran the API was polled every {period * 1e3:.1f} ms (ListTasks "
          "until the new task exists, then DescribeTasks, then a "
          f"{POLL * 1e3:g} ms sleep); one DescribeTasks at rest takes {rtt * 1e3:.1f} ms "
          "(boto3 + SigV4 + daemon).  The split is the tasks' own timestamps (the daemon's "
          "and the shims' clocks, ms resolution).")
    return rows


# ------------------------------------------------------------------ rolling update

def roll_once(ecs, image, rev):
    tasks = whole(ecs)
    old = [t["taskArn"] for t in tasks]
    td = register(ecs, image, f"echo v{rev}; {IDLE}")
    t0 = time.time()
    ecs.update_service(service=SERVICE, taskDefinition=td)
    while True:
        s = ecs.describe_services(services=[SERVICE])["services"][0]
        deps = s["deployments"]
        if (len(deps) == 1 and deps[0]["taskDefinition"] == td and
                deps[0]["rolloutState"] == "COMPLETED"):
            tasks = service_tasks(ecs)
            if (len(tasks) == COUNT and
                    all(t["lastStatus"] == "RUNNING" and t["taskDefinitionArn"] == td
                        for t in tasks)):
                total = time.time() - t0
                break
        if time.time() - t0 > 120:
            raise RuntimeError(f"rollout to {td} not done after 120 s: {deps}")
        time.sleep(0.01)
    gone = ecs.describe_tasks(tasks=old)["tasks"]
    return {"total": total,
            "new_running": max(ts(t, "startedAt") for t in tasks) - t0,
            "old_stopped": max(ts(t, "stoppedAt") for t in gone) - t0}


def bench_rolling(ecs, image):
    runs = []
    for i in range(ROLLS):
        rev = i + 2
        m = roll_once(ecs, image, rev)
        runs.append(m)
        print(f"  rollout to revision {rev}: {m['total']:.2f} s", flush=True)
    totals = [m["total"] for m in runs]
    rows = [(f"{COUNT}-task rolling update, UpdateService → COMPLETED", totals,
             f"includes {HEALTHY_AFTER:g} s healthy-after (one wave: 200 %/100 %)"),
            ("  → both new tasks RUNNING (startedAt)", [m["new_running"] for m in runs], ""),
            ("  → both old tasks STOPPED (stoppedAt)", [m["old_stopped"] for m in runs], ""),
            (f"  computed with ECS's {ECS_HEALTHY_AFTER:g} s healthy-after",
             [t - HEALTHY_AFTER + ECS_HEALTHY_AFTER for t in totals],
             f"measured + {ECS_HEALTHY_AFTER - HEALTHY_AFTER:g} s")]
    table(f"rolling update, {ROLLS} rollouts", rows, unit="s", scale=1)
    return rows


# ------------------------------------------------------------------ host

def cleanup_host():
    run(["ip", "link", "del", BRIDGE])
    for family in ("ip", "bridge"):
        run(["nft", "delete", "table", family, NFT])
    tk.remove_cgroup_roots(CGROUP)


def stop_everything(d, ecs):
    """The service deleted, every task STOPPED and its shim gone."""
    try:
        ecs.update_service(service=SERVICE, desiredCount=0)
        ecs.delete_service(service=SERVICE, force=True)
    except ecs.exceptions.ClientError:
        pass
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        arns = ecs.list_tasks()["taskArns"]
        for a in arns:
            ecs.stop_task(task=a, reason="bench done")
        if not arns and not tk.shim_processes(d.work):
            return
        time.sleep(0.2)
    raise RuntimeError(f"tasks still running 60 s after the bench: {arns}, "
                       f"shims {tk.shim_processes(d.work)}")


def check_subnet():
    out = run(["ip", "-4", "-o", "addr"]).stdout + run(["ip", "-4", "route"]).stdout
    for line in out.splitlines():
        if " 10.219." in f" {line}" and BRIDGE not in line:
            raise RuntimeError(f"{SUBNET} is in use on this host: {line.strip()}")


def bench(ecs, image):
    ecs.create_cluster()
    td = register(ecs, image, IDLE)
    ecs.create_service(serviceName=SERVICE, taskDefinition=td, desiredCount=COUNT,
                       networkConfiguration=NETCFG,
                       deploymentConfiguration={"maximumPercent": 200,
                                                "minimumHealthyPercent": 100})
    t0 = time.time()
    whole(ecs, td)
    print(f"service of {COUNT} tasks stable (healthy for {SETTLE} s) after "
          f"{time.time() - t0:.2f} s; {KILLS} kills", flush=True)
    bench_replacement(ecs)
    print(f"\n{ROLLS} rolling updates", flush=True)
    bench_rolling(ecs, image)


def on_sigterm(signum, _frame):
    """SIGTERM cleans up as Ctrl-C does (a second one is ignored meanwhile)."""
    signal.signal(signum, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def main(run_bench=lambda d, ecs, image: bench(ecs, image), extra=()):
    """RUN_BENCH(daemon, ecs client, busybox image ref) against a daemon
    with EXTRA flags; everything is cleaned up and checked afterwards."""
    signal.signal(signal.SIGTERM, on_sigterm)
    work = Path(tempfile.mkdtemp(prefix="berth-bench-svc-", dir="/var/tmp"))
    os.chmod(work, 0o755)
    errors = []                   # the first is raised once all is cleaned up
    with Reaper() as reaper:
        d = None
        try:
            cleanup_host()        # what a crashed earlier run left
            check_subnet()
            with reg.Registry("anon") as r:
                im = fx.catalogue()["busybox"]
                r.push(im)
                d = Daemon(work, r.host, extra)
                ecs = d.client()
                try:
                    run_bench(d, ecs, im.ref(r.host))
                except BaseException as e:
                    errors.append(e)
                stop_everything(d, ecs)
        except BaseException as e:
            errors.append(e)
        finally:
            if d:
                try:
                    d.stop()
                except RuntimeError as e:
                    errors.append(e)
                left = tk.daemon_leftovers(work, d.run_dir, BRIDGE, CGROUP)
                if left:
                    tk.force_daemon_cleanup(work, BRIDGE, CGROUP)
                    errors.append(RuntimeError(f"tasks left on the host: {left}"))
            cleanup_host()
            shutil.rmtree(work, ignore_errors=True)
    zombies = reaper.zombies()
    print(f"\nreaped {reaper.reaped} orphans (shims, container processes); "
          f"zombies left: {len(zombies)}")
    if zombies:
        errors.append(RuntimeError(f"zombies left: {zombies}"))
    if errors:
        raise errors[0]


if __name__ == "__main__":
    main()
