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
                           stop_services_and_tasks)


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


def test_service_registers_running_tasks_and_drains_stopped_ones(ecs, sdaemon):
    elb = make_elbv2(sdaemon)
    tg = elb.create_target_group(Name="web", Protocol="HTTP", Port=80,
                                 TargetType="ip")["TargetGroups"][0]
    arn = tg["TargetGroupArn"]
    elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "2"}])
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
    ecs.update_service(service="web", desiredCount=1)
    tk.poll_until(lambda: len(running_tasks(ecs)) == 1, 60, "the scale-in")
    (kept,) = {task_ip(t) for t in running_tasks(ecs)}
    tk.poll_until(lambda: targets(elb, arn) == {(kept, 8080, "unused")}, 30,
                  "the stopped task's target drained and gone")
    # Deleting the service drains the last one too.
    ecs.delete_service(service="web", force=True)
    tk.poll_until(lambda: targets(elb, arn) == set(), 60, "every target gone")


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
