"""ECS services' loadBalancers: CreateService names a target group of the
daemon's ELBv2 API and a container port; every RUNNING task of the service
is registered there (its awsvpc address, that port), a task that is to stop
drains and is then gone (docs/load-balancing.md "ECS services")."""
import pytest
from botocore.exceptions import ClientError

from fixtures import tasks as tk
from fixtures.requestloop import RequestLoop
from test_api_elbv2 import make_elbv2
from test_api_clusters import make_client
from test_api_tasks import TaskDaemon, finish, register, sh, tmp_tasks  # noqa: F401
from test_services import (HEALTHY_AFTER, IDLE, create, messages, running_tasks, stable,
                           stop_services_and_tasks, svc, wait_replaced)


@pytest.fixture
def sdaemon(tmp_tasks, task_net, registry_anon):
    """test_services.py's daemon, its listeners bound to 127.0.0.1 only."""
    d = TaskDaemon(tmp_tasks, task_net, HEALTHY_AFTER + ["--lb-address", "127.0.0.1"],
                   registry=registry_anon).wait_ready()
    yield d
    finish(d, task_net, stop_services_and_tasks)


@pytest.fixture
def ecs(sdaemon):
    c = make_client(sdaemon)
    c.create_cluster()
    return c


def task_ip(t):
    (att,) = t["attachments"]
    return {d["name"]: d["value"] for d in att["details"]}["privateIPv4Address"]


def targets(elb, arn):
    h = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {(x["Target"]["Id"], x["Target"]["Port"], x["TargetHealth"]["State"]) for x in h}


def set_delay(elb, arn, seconds):
    elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": str(seconds)}])


def task(ecs, arn):
    return ecs.describe_tasks(tasks=[arn])["tasks"][0]


def event_times(ecs, words):
    """The service's events containing WORDS, oldest first: (time, message)."""
    evs = svc(ecs)["events"]
    return [(e["createdAt"].timestamp(), e["message"]) for e in reversed(evs)
            if words in e["message"]]


def watch_drain(ecs, elb, tg, arn, delay):
    """Task ARN, just told to stop: DEACTIVATING (desired STOPPED) with
    its target draining, and STOPPED only once the drain is over."""
    t = task(ecs, arn)
    ip = task_ip(t)
    tk.poll_until(lambda: task(ecs, arn)["lastStatus"] == "DEACTIVATING", 10, "DEACTIVATING")
    assert task(ecs, arn)["desiredStatus"] == "STOPPED"
    assert (ip, 8080, "draining") in targets(elb, tg)
    tk.poll_until(lambda: task(ecs, arn)["lastStatus"] == "STOPPED", delay + 30,
                  "the task stopped after its drain")
    # The stop came after the drain: DEACTIVATING from the drain's start
    # (the service event) for the whole deregistration delay.
    (began, _), *_ = [e for e in event_times(ecs, "has begun draining")
                      if e[0] >= t["stoppingAt"].timestamp() - 1]
    stopped = task(ecs, arn)["executionStoppedAt"].timestamp()
    assert stopped - began >= delay - 0.3, (began, stopped)
    assert ip not in {x[0] for x in targets(elb, tg)}


def test_tasks_drain_from_their_targets_before_they_stop(ecs, sdaemon):
    """Scale-in, StopTask (across a daemon kill -9) and DeleteService: a
    task in a target group drains first (DEACTIVATING, desired STOPPED)
    and is stopped only when the group's deregistration delay is over;
    the service's events say so in ECS's words."""
    elb = make_elbv2(sdaemon)
    arn = elb.create_target_group(Name="web", Protocol="HTTP", Port=80,
                                  TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    set_delay(elb, arn, 2)
    td = register(ecs, sdaemon, [sh("app", IDLE, portMappings=[{"containerPort": 8080}])],
                  family="web")
    lbs = [{"targetGroupArn": arn, "containerName": "app", "containerPort": 8080}]
    s = create(ecs, td, count=2, loadBalancers=lbs)
    assert s["loadBalancers"] == lbs
    stable(ecs)
    ips = {task_ip(t) for t in running_tasks(ecs)}
    assert len(ips) == 2
    # No listener forwards to the group: registered, "unused".
    tk.poll_until(lambda: targets(elb, arn) == {(ip, 8080, "unused") for ip in ips}, 30,
                  "both tasks registered")
    assert len(event_times(ecs, f"registered 1 targets in (target-group {arn})")) == 2

    # Scale-in: the task leaving drains, then stops.
    before = {t["taskArn"] for t in running_tasks(ecs)}
    ecs.update_service(service="web", desiredCount=1)
    tk.poll_until(lambda: len(running_tasks(ecs)) == 1, 30, "the scale-in")
    (gone,) = before - {t["taskArn"] for t in running_tasks(ecs)}
    watch_drain(ecs, elb, arn, gone, 2)
    msgs = [m for _, m in event_times(ecs, "")]
    i = msgs.index(f"(service web) has stopped 1 running tasks: (task {gone.rsplit('/', 1)[1]}).")
    assert msgs[i + 1:i + 3] == [
        f"(service web) deregistered 1 targets in (target-group {arn})",
        "(service web) has begun draining connections on 1 tasks."], msgs

    # StopTask, and the daemon killed mid-drain: the new daemon stops the
    # task when the drain (kept in the store) ends, not before.
    set_delay(elb, arn, 10)   # longer than a restart on a loaded machine
    (kept,) = running_tasks(ecs)
    ecs.stop_task(task=kept["taskArn"], reason="by hand")
    tk.poll_until(lambda: task(ecs, kept["taskArn"])["lastStatus"] == "DEACTIVATING", 10,
                  "DEACTIVATING")
    sdaemon.proc.kill()
    sdaemon.proc.wait()
    d2 = sdaemon.restart("daemon2").wait_ready()
    sdaemon.__dict__.update(d2.__dict__)
    ecs, elb = make_client(d2), make_elbv2(d2)
    t = task(ecs, kept["taskArn"])
    assert (t["lastStatus"], t["desiredStatus"], t["stoppedReason"]) == \
        ("DEACTIVATING", "STOPPED", "by hand")
    watch_drain(ecs, elb, arn, kept["taskArn"], 10)
    tk.poll_until(lambda: len(running_tasks(ecs)) == 1, 30, "the replacement")

    # DeleteService drains the last one too.
    set_delay(elb, arn, 2)
    (last,) = running_tasks(ecs)
    ecs.delete_service(service="web", force=True)
    watch_drain(ecs, elb, arn, last["taskArn"], 2)
    tk.poll_until(lambda: targets(elb, arn) == set(), 30, "every target gone")


def answers_through(port, n=20):
    """N requests through the load balancer on 127.0.0.1:PORT, all 200:
    the distinct answers."""
    from test_api_elbv2 import get
    answers = set()
    for _ in range(n):
        status, body = get(port)
        assert status == 200
        answers.add(body.strip())
    return answers


def app_lb(elb, delay, **health):
    """An application load balancer "web" on a free port of 127.0.0.1
    forwarding to a target group "web" (ip unless HEALTH says, 5 s
    checks, healthy after 2, HEALTH's members; deregistration delay
    DELAY): (group ARN, port)."""
    from test_api_elbv2 import tk_free_port
    lb = elb.create_load_balancer(Name="web")["LoadBalancers"][0]
    health = {"TargetType": "ip", "HealthCheckIntervalSeconds": 5,
              "HealthCheckTimeoutSeconds": 2, "HealthyThresholdCount": 2, **health}
    arn = elb.create_target_group(Name="web", Protocol="HTTP", Port=80,
                                  **health)["TargetGroups"][0]["TargetGroupArn"]
    set_delay(elb, arn, delay)
    port = tk_free_port()
    elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": arn}])
    return arn, port


def test_load_balancers_refused(ecs, sdaemon):
    elb = make_elbv2(sdaemon)
    ip_tg = elb.create_target_group(Name="ip", Protocol="HTTP", Port=80,
                                    TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    inst_tg = elb.create_target_group(Name="inst", Protocol="HTTP", Port=80,
                                      TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    td = register(ecs, sdaemon, [sh("app", IDLE, portMappings=[{"containerPort": 8080}])],
                  family="web")
    gone = ip_tg.rsplit("/", 1)[0] + "/0123456789abcdef"
    cases = [
        ({"targetGroupArn": gone, "containerName": "app", "containerPort": 8080}, "does not exist"),
        ({"targetGroupArn": inst_tg, "containerName": "app", "containerPort": 8080},
         "incompatible with the awsvpc network mode"),
        ({"targetGroupArn": ip_tg, "containerName": "nope", "containerPort": 8080},
         "does not exist in the task definition"),
        ({"targetGroupArn": ip_tg, "containerName": "app", "containerPort": 9999},
         "did not have a container port 9999"),
    ]
    for lb, words in cases:
        with pytest.raises(ClientError) as e:
            create(ecs, td, count=1, loadBalancers=[lb])
        assert e.value.response["Error"]["Code"] == "InvalidParameterException"
        assert words in e.value.response["Error"]["Message"], e.value.response["Error"]
    assert ecs.list_services()["serviceArns"] == []


def test_service_behind_a_load_balancer_serves_every_task(ecs, sdaemon):
    """Two awsvpc tasks answering their hostname (busybox httpd) behind an
    application load balancer on 127.0.0.1: requests reach both."""
    elb = make_elbv2(sdaemon)
    arn, port = app_lb(elb, 1)
    serve = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"
    td = register(ecs, sdaemon, [sh("app", serve, portMappings=[{"containerPort": 8080}],
                                    stopTimeout=2)], family="web")
    create(ecs, td, count=2, loadBalancers=[
        {"targetGroupArn": arn, "containerName": "app", "containerPort": 8080}])
    stable(ecs)

    def healthy():
        h = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        return len(h) == 2 and {x["TargetHealth"]["State"] for x in h} == {"healthy"}
    tk.poll_until(healthy, 60, "both tasks healthy in the target group")
    assert len(answers_through(port)) == 2
    ecs.delete_service(service="web", force=True)


# A busybox httpd answering "VERSION HOSTNAME" on / and its health on
# /cgi-bin/health: 200, or 500 once /tmp/sick exists.
HEALTH = ('#!/bin/sh\nif [ -e /tmp/sick ]; then printf "Status: 500 Sick\\r\\n\\r\\n"; '
          'else printf "Content-Type: text/plain\\r\\n\\r\\nok"; fi\n')


def web(ecs, d, version):
    serve = ("mkdir -p /www/cgi-bin && echo \"$VERSION $(hostname)\" > /www/index.html && "
             "printf '%s' \"$HEALTH\" > /www/cgi-bin/health && chmod +x /www/cgi-bin/health && "
             "exec httpd -f -p 8080 -h /www")
    # httpd ignores SIGTERM as its container's first process: stopTimeout 2.
    return register(ecs, d, [sh("app", serve, portMappings=[{"containerPort": 8080}],
                                stopTimeout=2, environment=[{"name": "VERSION", "value": version},
                                             {"name": "HEALTH", "value": HEALTH}])],
                    family="web")


def test_rolling_deploy_without_a_failed_request_and_unhealthy_target_replaced(ecs, sdaemon):
    """A two-task service behind an application load balancer: v1 → v2
    under a continuous request loop fails no request (the new tasks count
    only once their targets are healthy; the old ones drain, then stop),
    with ECS's events in order.  Then a task whose health check starts
    answering 500 is replaced, in ECS's words."""
    elb = make_elbv2(sdaemon)
    tg, port = app_lb(elb, 2, HealthCheckPath="/cgi-bin/health", UnhealthyThresholdCount=2)
    v1, v2 = web(ecs, sdaemon, "v1"), web(ecs, sdaemon, "v2")
    create(ecs, v1, count=2, loadBalancers=[
        {"targetGroupArn": tg, "containerName": "app", "containerPort": 8080}])
    stable(ecs)
    # Stable means healthy in the target group now, not only RUNNING.
    assert {x[2] for x in targets(elb, tg)} == {"healthy"}
    old = {t["taskArn"] for t in running_tasks(ecs)}

    loop = RequestLoop(f"http://127.0.0.1:{port}/", limit=180, timeout=10)
    try:
        ecs.update_service(service="web", taskDefinition=v2)
        tk.poll_until(lambda: all(task(ecs, a)["lastStatus"] == "STOPPED" for a in old), 120,
                      "the v1 tasks stopped")
        stable(ecs)
        tk.poll_until(lambda: any(b.startswith("v2") for b in loop.pages[-10:]), 30,
                      "v2 answering")
    finally:
        loop.stop()
    assert loop.failures == [], loop.failures[:5]
    assert len({b for b in loop.pages if b.startswith("v1")}) == 2
    assert len({b for b in loop.pages if b.startswith("v2")}) == 2
    assert not any(b.startswith("v1") for b in loop.pages[-10:])

    # Each v1 task drained for the whole delay before it stopped; the
    # events came in ECS's order: the new targets registered, the old
    # tasks stopped, deregistered and drained, the deployment completed.
    msgs = [m for _, m in event_times(ecs, "")]
    for a in old:
        t = task(ecs, a)
        (began, _), *_ = [e for e in event_times(ecs, "has begun draining")
                          if e[0] >= t["stoppingAt"].timestamp() - 1]
        assert t["executionStoppedAt"].timestamp() - began >= 2 - 0.3
    regs = [i for i, m in enumerate(msgs) if f"registered 1 targets in (target-group {tg})" in m
            and "deregistered" not in m]
    stops = [i for i, m in enumerate(msgs) if "has stopped" in m]
    deregs = [i for i, m in enumerate(msgs) if "deregistered 1 targets" in m]
    drains = [i for i, m in enumerate(msgs) if "has begun draining connections on 1 tasks." in m]
    done = [i for i, m in enumerate(msgs) if "deployment completed" in m]
    assert len(regs) == 4 and len(deregs) == 2 and len(drains) == 2, msgs
    assert regs[2] < regs[3] < stops[0] < deregs[0] < drains[0], msgs
    assert stops[-1] < deregs[1] < drains[1] < done[-1], msgs

    # A v2 task's health check starts answering 500: it is replaced.
    from test_exec import exec_run
    sick = running_tasks(ecs)[0]
    sick_id = sick["taskArn"].rsplit("/", 1)[1]
    rc, _, err = exec_run(sdaemon, sick_id, "--", "touch", "/tmp/sick")
    assert rc == 0, err
    words = (f"(service web) (task {sick_id}) (port 8080) is unhealthy in (target-group {tg}) "
             "due to (reason Health checks failed with these codes: [500])")
    tk.poll_until(lambda: words in messages(svc(ecs)), 60, "the unhealthy event")
    t = task(ecs, sick["taskArn"])
    assert t["stoppedReason"] == f"Task failed ELB health checks in (target-group {tg})"
    assert t["stopCode"] == "ServiceSchedulerInitiated"
    wait_replaced(ecs, sick["taskArn"], 2, timeout=60)
    tk.poll_until(lambda: {x[2] for x in targets(elb, tg)} == {"healthy"}, 60,
                  "the replacement healthy, the sick target gone")


def test_bridge_tasks_are_instance_targets_on_their_host_ports(ecs, sdaemon):
    """A bridge-mode service behind an application load balancer: each
    task is registered in an instance target group as this host's
    container instance and the dynamic host port of its networkBindings,
    both get traffic; an ip group is refused for it, as in ECS."""
    from test_ports import WEB, register_mode
    elb = make_elbv2(sdaemon)
    ip_tg = elb.create_target_group(Name="ip", Protocol="HTTP", Port=80,
                                    TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    arn, port = app_lb(elb, 1, TargetType="instance")
    td = register_mode(ecs, sdaemon, "bridge", [sh("web", WEB, portMappings=[
        {"containerPort": 8080}])], family="web")

    def bridge_service(tg, count):
        ecs.create_service(serviceName="web", taskDefinition=td, desiredCount=count,
                           launchType="EC2", loadBalancers=[
                               {"targetGroupArn": tg, "containerName": "web",
                                "containerPort": 8080}])
    with pytest.raises(ClientError) as e:
        bridge_service(ip_tg, 1)
    assert "incompatible with the bridge network mode" in e.value.response["Error"]["Message"]
    bridge_service(arn, 2)
    stable(ecs)
    tasks = running_tasks(ecs)
    host_ports = {t["containers"][0]["networkBindings"][0]["hostPort"] for t in tasks}
    (instance,) = {t["containerInstanceArn"].rsplit("/", 1)[1] for t in tasks}
    assert len(host_ports) == 2
    assert targets(elb, arn) == {(instance, p, "healthy") for p in host_ports}
    assert len(answers_through(port)) == 2
    ecs.delete_service(service="web", force=True)
    tk.poll_until(lambda: targets(elb, arn) == set(), 30, "every target gone")
