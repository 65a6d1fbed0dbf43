"""ECS services' loadBalancers: CreateService names a target group of the
daemon's ELBv2 API and a container port; every RUNNING task of the service
is registered there (its awsvpc address, that port), a task that is to stop
drains and is then gone (docs/load-balancing.md "ECS services")."""
import pytest
from botocore.exceptions import ClientError

from fixtures import tasks as tk
from test_api_elbv2 import make_elbv2
from test_api_clusters import make_client
from test_api_tasks import TaskDaemon, finish, register, sh, tmp_tasks  # noqa: F401
from test_services import (HEALTHY_AFTER, IDLE, create, running_tasks, stable,
                           stop_services_and_tasks, svc)


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
    set_delay(elb, arn, 6)
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
    watch_drain(ecs, elb, arn, kept["taskArn"], 6)
    tk.poll_until(lambda: len(running_tasks(ecs)) == 1, 30, "the replacement")

    # DeleteService drains the last one too.
    set_delay(elb, arn, 1)
    (last,) = running_tasks(ecs)
    ecs.delete_service(service="web", force=True)
    watch_drain(ecs, elb, arn, last["taskArn"], 1)
    tk.poll_until(lambda: targets(elb, arn) == set(), 30, "every target gone")


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
    from test_api_elbv2 import get, tk_free_port
    elb = make_elbv2(sdaemon)
    lb = elb.create_load_balancer(Name="web")["LoadBalancers"][0]
    arn = elb.create_target_group(Name="web", Protocol="HTTP", Port=80, TargetType="ip",
                                  HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2,
                                  HealthyThresholdCount=2)["TargetGroups"][0]["TargetGroupArn"]
    set_delay(elb, arn, 1)
    port = tk_free_port()
    elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": arn}])
    serve = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"
    td = register(ecs, sdaemon, [sh("app", serve, portMappings=[{"containerPort": 8080}])],
                  family="web")
    create(ecs, td, count=2, loadBalancers=[
        {"targetGroupArn": arn, "containerName": "app", "containerPort": 8080}])
    stable(ecs)

    def healthy():
        h = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        return len(h) == 2 and {x["TargetHealth"]["State"] for x in h} == {"healthy"}
    tk.poll_until(healthy, 60, "both tasks healthy in the target group")
    answers = set()
    for _ in range(20):
        status, body = get(port)
        assert status == 200
        answers.add(body.strip())
    assert len(answers) == 2, answers
    ecs.delete_service(service="web", force=True)
