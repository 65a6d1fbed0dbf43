"""ECS members a single host honours, with boto3 against a real daemon
that runs every task (every answer validated against botocore's model):

- UpdateContainerInstancesState on the host's container instance: DRAINING
  places no new task (RunTask and StartTask answer a failure), has the
  service scheduler stop the services' tasks within minimumHealthyPercent
  and start none, leaves standalone tasks running, survives a daemon
  restart; ACTIVE again scales the services back up.
- Services' propagateTags, enableECSManagedTags and
  capacityProviderStrategy: the tasks a service starts carry the tags ECS
  gives them; FARGATE / FARGATE_SPOT run as FARGATE tasks."""
import pytest
from botocore.exceptions import ClientError

from fixtures import tasks as tk
from test_api_clusters import make_client
from test_api_tasks import IDLE, NETCFG, register, sh, tmp_tasks  # noqa: F401
from test_services import create, ecs, messages, running_tasks, sdaemon, stable, svc  # noqa: F401


def instance_status(ecs, arn):
    (ci,) = ecs.describe_container_instances(containerInstances=[arn])["containerInstances"]
    return ci["status"]


def test_draining_stops_service_tasks_within_bounds_and_active_brings_them_back(ecs, sdaemon):
    td = register(ecs, sdaemon, [sh("app", IDLE, stopTimeout=2)], family="web")
    create(ecs, td, count=2, deploymentConfiguration={"minimumHealthyPercent": 50})
    stable(ecs)
    (lone,) = ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG)["tasks"]
    tk.poll_until(lambda: ecs.describe_tasks(tasks=[lone["taskArn"]])["tasks"][0]["lastStatus"]
                  == "RUNNING", 30, "the standalone task RUNNING")
    (arn,) = ecs.list_container_instances()["containerInstanceArns"]

    out = ecs.update_container_instances_state(containerInstances=[arn, "f" * 32],
                                               status="DRAINING")
    assert [c["status"] for c in out["containerInstances"]] == ["DRAINING"]
    assert [f["reason"] for f in out["failures"]] == ["MISSING"]
    assert ecs.list_container_instances(status="DRAINING")["containerInstanceArns"] == [arn]
    assert ecs.list_container_instances(status="ACTIVE")["containerInstanceArns"] == []

    # minimumHealthyPercent 50 of 2: one task stops, one keeps running (its
    # replacement has no other instance to go to).
    tk.poll_until(lambda: len(running_tasks(ecs)) == 1 and
                  len(ecs.list_tasks(serviceName="web")["taskArns"]) == 1, 30,
                  "one of the service's two tasks to drain")
    (gone,) = ecs.list_tasks(serviceName="web", desiredStatus="STOPPED")["taskArns"]
    (t,) = ecs.describe_tasks(tasks=[gone])["tasks"]
    assert t["stopCode"] == "ServiceSchedulerInitiated"
    assert t["stoppedReason"] == "Service web: container instance is in DRAINING state"
    assert any("No Container Instances were found in your cluster" in m
               for m in messages(svc(ecs))), messages(svc(ecs))
    # 0 lets the last one go too.
    ecs.update_service(service="web", deploymentConfiguration={"minimumHealthyPercent": 0})
    tk.poll_until(lambda: ecs.list_tasks(serviceName="web")["taskArns"] == [], 30,
                  "the service's last task to drain")

    # No new task is placed; the standalone one runs on.
    out = ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG, count=2)
    assert out["tasks"] == [] and [(f["arn"], f["reason"]) for f in out["failures"]] == \
        [(arn, "DRAINING")] * 2
    out = ecs.start_task(taskDefinition=td, networkConfiguration=NETCFG,
                         containerInstances=[arn])
    assert out["tasks"] == [] and [f["reason"] for f in out["failures"]] == ["DRAINING"]
    (t,) = ecs.describe_tasks(tasks=[lone["taskArn"]])["tasks"]
    assert t["lastStatus"] == "RUNNING" and t["desiredStatus"] == "RUNNING"

    # Kept across a restart.
    sdaemon.proc.kill()
    sdaemon.proc.wait()
    d2 = sdaemon.restart("daemon2").wait_ready()
    sdaemon.__dict__.update(d2.__dict__)
    ecs = make_client(d2)
    assert instance_status(ecs, arn) == "DRAINING"
    assert ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG)["tasks"] == []

    out = ecs.update_container_instances_state(containerInstances=[arn], status="ACTIVE")
    assert [c["status"] for c in out["containerInstances"]] == ["ACTIVE"]
    s = stable(ecs)
    assert s["runningCount"] == 2
    assert ecs.list_container_instances(status="DRAINING")["containerInstanceArns"] == []


def test_update_container_instances_state_refuses_what_ecs_refuses(ecs, sdaemon):
    (arn,) = ecs.list_container_instances()["containerInstanceArns"]
    for kw in ({"containerInstances": [arn], "status": "REGISTERING"},
               {"containerInstances": [], "status": "DRAINING"},
               {"containerInstances": [arn] * 11, "status": "DRAINING"}):
        with pytest.raises(ClientError) as e:
            ecs.update_container_instances_state(**kw)
        assert e.value.response["Error"]["Code"] == "InvalidParameterException", kw
    with pytest.raises(ClientError) as e:
        ecs.update_container_instances_state(cluster="nope", containerInstances=[arn],
                                             status="DRAINING")
    assert e.value.response["Error"]["Code"] == "ClusterNotFoundException"
    # Another cluster's instance is not this one's: nothing changes.
    ecs.create_cluster(clusterName="other")
    out = ecs.update_container_instances_state(cluster="other", containerInstances=[arn],
                                               status="DRAINING")
    assert out["containerInstances"] == [] and out["failures"][0]["reason"] == "MISSING"
    assert instance_status(ecs, arn) == "ACTIVE"
    # Its own (the same host, named by id) drains; deleting the cluster
    # forgets that: made again, it finds the instance ACTIVE.
    host_id = arn.rsplit("/", 1)[1]
    out = ecs.update_container_instances_state(cluster="other", containerInstances=[host_id],
                                               status="DRAINING")
    assert [c["status"] for c in out["containerInstances"]] == ["DRAINING"]
    assert instance_status(ecs, arn) == "ACTIVE"      # default's is another
    ecs.delete_cluster(cluster="other")
    ecs.create_cluster(clusterName="other")
    (other,) = ecs.list_container_instances(cluster="other")["containerInstanceArns"]
    (ci,) = ecs.describe_container_instances(cluster="other",
                                             containerInstances=[other])["containerInstances"]
    assert ci["status"] == "ACTIVE"


def tags_of(ecs, arn):
    (t,) = ecs.describe_tasks(tasks=[arn], include=["TAGS"])["tasks"]
    return {x["key"]: x["value"] for x in t.get("tags", [])}, t


def test_service_tasks_carry_propagated_and_managed_tags_and_capacity_providers(ecs, sdaemon):
    ecs.put_cluster_capacity_providers(cluster="default",
                                       capacityProviders=["FARGATE", "FARGATE_SPOT"],
                                       defaultCapacityProviderStrategy=[])
    td = register(ecs, sdaemon, [sh("app", IDLE, stopTimeout=2)], family="tagged",
                  tags=[{"key": "team", "value": "td"}, {"key": "tier", "value": "web"}])
    spot = [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]
    s = create(ecs, td, name="t", count=1, tags=[{"key": "team", "value": "svc"}],
               propagateTags="SERVICE", enableECSManagedTags=True,
               capacityProviderStrategy=spot)
    assert s["propagateTags"] == "SERVICE" and s["enableECSManagedTags"] is True
    assert s["capacityProviderStrategy"] == spot and "launchType" not in s
    (dep,) = s["deployments"]
    assert "launchType" not in dep and dep["capacityProviderStrategy"] == spot
    plain = create(ecs, td, name="plain", count=0)
    assert plain["propagateTags"] == "NONE" and plain["enableECSManagedTags"] is False
    assert plain["launchType"] == "FARGATE"

    tk.poll_until(lambda: ecs.list_tasks(serviceName="t")["taskArns"], 20, "the service's task")
    (first,) = ecs.list_tasks(serviceName="t")["taskArns"]
    tags, t = tags_of(ecs, first)
    assert tags == {"team": "svc", "aws:ecs:clusterName": "default",
                    "aws:ecs:serviceName": "t"}, tags
    assert t["launchType"] == "FARGATE"

    # TASK_DEFINITION, managed tags off: the next deployment's task has the
    # definition's tags only.
    s = ecs.update_service(service="t", propagateTags="TASK_DEFINITION",
                           enableECSManagedTags=False, forceNewDeployment=True)["service"]
    assert s["propagateTags"] == "TASK_DEFINITION" and s["enableECSManagedTags"] is False
    tk.poll_until(lambda: set(ecs.list_tasks(serviceName="t")["taskArns"]) - {first}, 20,
                  "the new deployment's task")
    (second,) = set(ecs.list_tasks(serviceName="t")["taskArns"]) - {first}
    assert tags_of(ecs, second)[0] == {"team": "td", "tier": "web"}

    spot_message = ("Specifying both a launch type and capacity provider strategy is not "
                    "supported. Remove one and try again.")
    for kw, message in (({"launchType": "FARGATE"}, spot_message),
                        ({"schedulingStrategy": "DAEMON"}, "DAEMON"),
                        ({"cluster": "bare"}, "not associated with the cluster")):
        if kw.get("cluster"):
            ecs.create_cluster(clusterName="bare")
        with pytest.raises(ClientError) as e:
            create(ecs, td, name="refused", count=0, capacityProviderStrategy=spot, **kw)
        err = e.value.response["Error"]
        assert err["Code"] == "InvalidParameterException" and message in err["Message"], kw
    assert "refused" not in str(ecs.list_services()["serviceArns"])
