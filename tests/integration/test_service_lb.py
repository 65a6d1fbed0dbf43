"""ECS services' loadBalancers: CreateService names a target group of the
daemon's ELBv2 API and a container port; every RUNNING task of the service
is registered there (its awsvpc address, that port), a task that is to stop
drains and is then gone (docs/load-balancing.md "ECS services")."""
import pytest
from botocore.exceptions import ClientError

from fixtures import tasks as tk
from test_api_elbv2 import make_elbv2
from test_api_tasks import register, sh, tmp_tasks  # noqa: F401
from test_services import IDLE, create, ecs, running_tasks, sdaemon, stable  # noqa: F401


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
