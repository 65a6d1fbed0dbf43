"""A service behind a load balancer, end to end: a real `berth daemon`
(release build, fixture registry, `--lb-address 127.0.0.1`), driven with
boto3's ecs and elbv2 clients (SigV4 on its 127.0.0.1 port).

  service     2 awsvpc tasks of busybox httpd on port 8080, each answering
              "VERSION HOSTNAME" (busybox httpd closes the connection after
              every answer: keep-alive holds between wrk and HAProxy only,
              HAProxy opens a new connection to the task per request, as a
              direct client does)
  LB          an application load balancer, an HTTP listener on a free port
              of 127.0.0.1, an ip target group (health checks every 5 s,
              ELB's and the daemon's minimum; healthy after 2; deregistration
              delay 2 s); the bench starts once both targets are healthy
  load        wrk (Debian's), lb.py's knobs: BERTH_BENCH_LB_THREADS threads
              (1), BERTH_BENCH_LB_CONNS connections (8),
              BERTH_BENCH_LB_SECONDS (5) per run; direct to one task's
              address:8080 and through the LB alternating,
              BERTH_BENCH_LBS_RUNS times (3); no CPU pinning (the daemon
              starts HAProxy and the tasks)
  deploy      UpdateService to a new revision (maximumPercent 200,
              minimumHealthyPercent 100) while a thread sends sequential
              GETs to the LB (a new connection each, 2 s timeout), until
              the deployment is COMPLETED and the old tasks STOPPED (at
              most 240 s): answered and failed requests (target 0 failed)

Prints req/s, p50, p99 (medians of the runs) for both paths, the LB's cost
in throughput (target < 15 %) and its p99 (target < 5 ms), beside the
machine's load average.  Everything is removed at the end (services.py's
cleanup and leftover check: service, tasks, daemon, bridge, cgroups, temp
dir; the listener, LB and target group deleted through the API first).
"""
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures import registry as reg   # noqa: E402
from fixtures import tasks as tk       # noqa: E402
from fixtures.requestloop import RequestLoop  # noqa: E402
import lb                              # noqa: E402
import services as sv                  # noqa: E402

RUNS = int(os.environ.get("BERTH_BENCH_LBS_RUNS", "3"))
DEPLOY_LIMIT = 240
# Its own names, so that it never touches services.py's host state.
sv.BRIDGE, sv.SUBNET, sv.NFT, sv.CGROUP = (
    "berthbench5", "10.219.0.0/16", "berth_bench_lbs", "berth-bench-lbs")
lb.PIN = False
EXTRA = ["--introspection", "off", "--task-endpoint", "off", "--lb-address", "127.0.0.1"]
SERVE = ('mkdir -p /www && echo "$VERSION $(hostname)" > /www/index.html && '
         "exec httpd -f -p 8080 -h /www")


def load():
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def web(ecs, image, version):
    """A task definition of SERVE; httpd ignores SIGTERM as the container's
    first process: stopTimeout 2."""
    return ecs.register_task_definition(
        family=sv.FAMILY, networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[{
            "name": "app", "image": image, "essential": True, "stopTimeout": 2,
            "entryPoint": ["/bin/sh", "-c"], "command": [SERVE],
            "portMappings": [{"containerPort": 8080}],
            "environment": [{"name": "VERSION", "value": version}]}],
    )["taskDefinition"]["taskDefinitionArn"]


def elbv2(d):
    return boto3.client("elbv2", endpoint_url=f"http://127.0.0.1:{d.port}",
                        region_name=sv.REGION, aws_access_key_id=sv.AKID,
                        aws_secret_access_key=sv.SECRET,
                        config=Config(retries={"total_max_attempts": 1}))


class Balancer:
    """The load balancer, its listener on 127.0.0.1:port and target group."""

    def __init__(self, elb):
        self.elb = elb
        self.lb = self.tg = self.listener = self.port = None

    def create(self):
        elb = self.elb
        self.lb = elb.create_load_balancer(Name="bench")["LoadBalancers"][0]["LoadBalancerArn"]
        self.tg = elb.create_target_group(
            Name="bench", Protocol="HTTP", Port=80, TargetType="ip",
            HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2,
            HealthyThresholdCount=2, UnhealthyThresholdCount=2,
        )["TargetGroups"][0]["TargetGroupArn"]
        elb.modify_target_group_attributes(TargetGroupArn=self.tg, Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": "2"}])
        self.port = reg.free_port()
        self.listener = elb.create_listener(
            LoadBalancerArn=self.lb, Protocol="HTTP", Port=self.port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": self.tg}],
        )["Listeners"][0]["ListenerArn"]

    def states(self):
        h = self.elb.describe_target_health(TargetGroupArn=self.tg)["TargetHealthDescriptions"]
        return [x["TargetHealth"]["State"] for x in h]

    def delete(self):
        """Listener, LB, target group (the service using it is gone first)."""
        if self.listener:
            self.elb.delete_listener(ListenerArn=self.listener)
        if self.lb:
            self.elb.delete_load_balancer(LoadBalancerArn=self.lb)
        if self.tg:
            self.elb.delete_target_group(TargetGroupArn=self.tg)


def task_ip(t):
    (att,) = t["attachments"]
    return {d["name"]: d["value"] for d in att["details"]}["privateIPv4Address"]


def both_direct(ips):
    """wrk to each task's address at once, half the connections each:
    (summed req/s, mean p50, worse p99, summed failures) - the same
    serving side as through the LB, without it."""
    out = [None, None]

    def one(i):
        out[i] = lb.wrk(8080, [], host=ips[i], conns=max(1, lb.CONNS // 2))
    threads = [threading.Thread(target=one, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if None in out:
        raise RuntimeError("a wrk to a task's address failed")
    return (out[0][0] + out[1][0], (out[0][1] + out[1][1]) / 2, max(out[0][2], out[1][2]),
            out[0][3] + out[1][3])


def bench_wrk(ips, lb_port):
    """wrk to one task, to both at once, and through the LB, alternating."""
    res = {f"direct, one task ({ips[0]}:8080)": [], "direct, both tasks at once": [],
           f"LB (127.0.0.1:{lb_port}, both tasks)": []}
    one, both, via = res.values()
    before = load()
    for i in range(RUNS):
        one.append(lb.wrk(8080, [], host=ips[0]))
        both.append(both_direct(ips))
        via.append(lb.wrk(lb_port, []))
        print(f"  run {i + 1}: one task {one[-1][0]:.0f} req/s, both tasks {both[-1][0]:.0f}, "
              f"LB {via[-1][0]:.0f}", flush=True)
    print(f"\nHTTP, wrk -t{lb.THREADS} -c{lb.CONNS} ({lb.CONNS // 2} per task for both "
          f"tasks: p50 their mean, p99 the worse), {lb.SECONDS} s x {RUNS} runs; "
          f"{before} before, {load()} after, {os.cpu_count()} CPUs")
    print("\n| path | req/s | p50 ms | p99 ms | failed requests |")
    print("|:-----|------:|-------:|-------:|----------------:|")
    med = {}
    for name, runs in res.items():
        med[name] = [statistics.median(r[i] for r in runs) for i in (0, 1, 2)]
        print(f"| {name} (median of {len(runs)}) | {med[name][0]:.0f} | "
              f"{med[name][1] * 1e3:.3f} | {med[name][2] * 1e3:.3f} | "
              f"{sum(r[3] for r in runs)} |")
    (m_one, m_both, m_lb) = med.values()
    print()
    p99 = m_lb[2] * 1e3
    for name, base in (("one task", m_one), ("both tasks", m_both)):
        cost = 100.0 * (1 - m_lb[0] / base[0])
        print(f"LB cost against direct to {name}: {cost:.1f} % of throughput "
              f"(target < 15 %): {'met' if cost < 15 else 'NOT met'}; p99 "
              f"{p99 - base[2] * 1e3:+.3f} ms")
    print(f"LB p99 {p99:.3f} ms (target < 5 ms): {'met' if p99 < 5 else 'NOT met'}")


def deployed(ecs, td, old):
    s = ecs.describe_services(services=[sv.SERVICE])["services"][0]
    deps = s["deployments"]
    return (len(deps) == 1 and deps[0]["taskDefinition"] == td and
            deps[0]["rolloutState"] == "COMPLETED" and
            all(t["lastStatus"] == "STOPPED" for t in ecs.describe_tasks(tasks=old)["tasks"]))


def bench_deploy(ecs, image, bal):
    old = [t["taskArn"] for t in sv.service_tasks(ecs)]
    td = web(ecs, image, "v2")
    before = load()
    loop = RequestLoop(f"http://127.0.0.1:{bal.port}/", limit=DEPLOY_LIMIT + 30)
    try:
        t0 = time.monotonic()
        ecs.update_service(service=sv.SERVICE, taskDefinition=td)
        tk.poll_until(lambda: deployed(ecs, td, old), DEPLOY_LIMIT,
                      "the deployment COMPLETED and the old tasks STOPPED", interval=0.2)
        took = time.monotonic() - t0
    finally:
        loop.stop()
    answers = [p.split()[0] for p in loop.pages]
    versions = {v: answers.count(v) for v in sorted(set(answers))}
    print(f"\nrolling deploy v1 → v2 (2 tasks, 200 %/100 %), sequential GETs through the LB "
          f"(new connection each, 2 s timeout); {before} before, {load()} after")
    print("\n| rolling deploy | value |")
    print("|:---------------|------:|")
    print(f"| UpdateService → COMPLETED, old tasks STOPPED | {took:.1f} s |")
    print(f"| requests answered 200 | {len(answers)} ({versions}) |")
    print(f"| failed requests during a rolling deploy (target 0) | {len(loop.failures)} |")
    if loop.failures:
        print(f"first failures: {loop.failures[:5]}")


def run_bench(d, ecs, image):
    ecs.create_cluster()
    bal = Balancer(elbv2(d))
    try:
        bal.create()
        ecs.create_service(
            serviceName=sv.SERVICE, taskDefinition=web(ecs, image, "v1"), desiredCount=2,
            networkConfiguration=sv.NETCFG,
            deploymentConfiguration={"maximumPercent": 200, "minimumHealthyPercent": 100},
            loadBalancers=[{"targetGroupArn": bal.tg, "containerName": "app",
                            "containerPort": 8080}])
        t0 = time.monotonic()
        tasks = sv.whole(ecs, timeout=120)
        tk.poll_until(lambda: bal.states() == ["healthy"] * 2, 120, "both targets healthy")
        print(f"service of 2 tasks with both targets healthy after "
              f"{time.monotonic() - t0:.1f} s", flush=True)
        bench_wrk([task_ip(t) for t in tasks], bal.port)
        bench_deploy(ecs, image, bal)
    finally:
        sv.stop_everything(d, ecs)
        bal.delete()


if __name__ == "__main__":
    if not shutil.which("wrk"):
        sys.exit("lb_service.py: wrk is missing (make deps installs it)")
    sv.main(run_bench, EXTRA)
