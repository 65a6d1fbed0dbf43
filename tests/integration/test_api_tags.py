"""The tag operations (TagResource, UntagResource, ListTagsForResource)
against a real `berth daemon`, on clusters and task definition revisions,
with boto3, Debian's `aws` CLI and raw HTTP over the unix socket.

The daemon, the clients and the model validator are test_api_clusters.py's:
every answer is checked against botocore's ECS model."""
import json

import pytest
from botocore.exceptions import ClientError

from test_api_clusters import (ACCOUNT, REGION, aws_cli, daemon, ecs, raw,  # noqa: F401
                               tmpdir_short)


def cluster_arn(name):
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{name}"


def td_arn(family, rev):
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{rev}"


def register(ecs, family="web", **kw):
    return ecs.register_task_definition(
        family=family, containerDefinitions=[{"name": "app", "image": "nginx", "memory": 64}],
        **kw)["taskDefinition"]


def tags_of(ecs, arn):
    return ecs.list_tags_for_resource(resourceArn=arn)["tags"]


def error(exc):
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def tags(n, prefix="k"):
    return [{"key": f"{prefix}{i:02d}", "value": f"v{i}"} for i in range(n)]


# ---- boto3 ----

def test_cluster_tag_untag_list(ecs):
    ecs.create_cluster(clusterName="web", tags=[{"key": "team", "value": "a"}])
    arn = cluster_arn("web")
    assert tags_of(ecs, arn) == [{"key": "team", "value": "a"}]

    r = ecs.tag_resource(resourceArn=arn, tags=[{"key": "env", "value": "prod"},
                                                {"key": "zone", "value": ""}])
    assert set(r) == {"ResponseMetadata"}
    # Sorted by key, whatever the order they were given in.
    assert tags_of(ecs, arn) == [{"key": "env", "value": "prod"}, {"key": "team", "value": "a"},
                                 {"key": "zone", "value": ""}]

    # Replace: the value of a key already there changes, the rest stay.
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "team", "value": "b"}])
    assert tags_of(ecs, arn) == [{"key": "env", "value": "prod"}, {"key": "team", "value": "b"},
                                 {"key": "zone", "value": ""}]
    d = ecs.describe_clusters(clusters=["web"], include=["TAGS"])["clusters"][0]
    assert d["tags"] == tags_of(ecs, arn)

    # Untag: keys it does not have are ignored.
    r = ecs.untag_resource(resourceArn=arn, tagKeys=["team", "nope"])
    assert set(r) == {"ResponseMetadata"}
    assert tags_of(ecs, arn) == [{"key": "env", "value": "prod"}, {"key": "zone", "value": ""}]
    ecs.untag_resource(resourceArn=arn, tagKeys=["env", "zone"])
    assert tags_of(ecs, arn) == []

    # An empty tag list is accepted and changes nothing.
    ecs.tag_resource(resourceArn=arn, tags=[])
    assert tags_of(ecs, arn) == []
    assert {"TagResource", "UntagResource", "ListTagsForResource"} <= set(ecs.recorder.seen)


def test_task_definition_tags(ecs):
    register(ecs, tags=[{"key": "owner", "value": "me"}])
    register(ecs)
    one, two = td_arn("web", 1), td_arn("web", 2)
    assert tags_of(ecs, one) == [{"key": "owner", "value": "me"}]
    assert tags_of(ecs, two) == []

    ecs.tag_resource(resourceArn=two, tags=[{"key": "b", "value": "2"}, {"key": "a", "value": "1"}])
    assert tags_of(ecs, two) == [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]
    # Per revision: the first one is unchanged.
    assert tags_of(ecs, one) == [{"key": "owner", "value": "me"}]
    d = ecs.describe_task_definition(taskDefinition="web:2", include=["TAGS"])
    assert d["tags"] == [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]

    ecs.tag_resource(resourceArn=two, tags=[{"key": "a", "value": "one"}])
    ecs.untag_resource(resourceArn=two, tagKeys=["b"])
    assert tags_of(ecs, two) == [{"key": "a", "value": "one"}]

    # An INACTIVE revision can still be tagged.
    ecs.deregister_task_definition(taskDefinition="web:1")
    ecs.tag_resource(resourceArn=one, tags=[{"key": "gone", "value": "yes"}])
    assert tags_of(ecs, one) == [{"key": "gone", "value": "yes"}, {"key": "owner", "value": "me"}]


def test_inactive_cluster_tags(ecs):
    # A deleted cluster stays, INACTIVE and describable, with its tags;
    # creating it again brings it back without them.
    # Its tags cannot change then, as in ECS.
    ecs.create_cluster(clusterName="tmp", tags=[{"key": "a", "value": "1"}])
    ecs.delete_cluster(cluster="tmp")
    assert tags_of(ecs, cluster_arn("tmp")) == [{"key": "a", "value": "1"}]
    inactive = ("InvalidParameterException",
                "The specified cluster is inactive. Specify an active cluster and try again.")
    for call in (lambda: ecs.tag_resource(resourceArn=cluster_arn("tmp"),
                                          tags=[{"key": "b", "value": "2"}]),
                 lambda: ecs.untag_resource(resourceArn=cluster_arn("tmp"), tagKeys=["a"])):
        with pytest.raises(ClientError) as e:
            call()
        assert error(e) == inactive
    assert tags_of(ecs, cluster_arn("tmp")) == [{"key": "a", "value": "1"}]
    ecs.create_cluster(clusterName="tmp")
    assert tags_of(ecs, cluster_arn("tmp")) == []


def test_limits(ecs):
    ecs.create_cluster(clusterName="web")
    arn = cluster_arn("web")

    # 51 in one request: refused by the daemon (botocore does not check).
    with pytest.raises(ClientError) as e:
        ecs.tag_resource(resourceArn=arn, tags=tags(51))
    assert error(e)[0] == "InvalidParameterException"
    assert "tags" in error(e)[1]

    # 50 are fine; a 51st on top is refused, all or nothing.
    ecs.tag_resource(resourceArn=arn, tags=tags(50))
    assert len(tags_of(ecs, arn)) == 50
    with pytest.raises(ClientError) as e:
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "one-more", "value": "x"},
                                                {"key": "k00", "value": "changed"}])
    code, msg = error(e)
    assert code == "InvalidParameterException" and "50" in msg
    got = tags_of(ecs, arn)
    assert len(got) == 50 and got[0] == {"key": "k00", "value": "v0"}
    # Replacing values keeps the count: still allowed at the limit.
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "k00", "value": "new"}])
    assert tags_of(ecs, arn)[0] == {"key": "k00", "value": "new"}
    ecs.untag_resource(resourceArn=arn, tagKeys=[t["key"] for t in tags(50)])
    assert tags_of(ecs, arn) == []

    # Key 128 characters (not bytes) is fine, 129 is not; value 256 / 257.
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "k" * 128, "value": "v" * 256},
                                            {"key": "é" * 128, "value": "é" * 256}])
    assert {t["key"] for t in tags_of(ecs, arn)} == {"k" * 128, "é" * 128}
    for bad, member in (({"key": "k" * 129, "value": "v"}, "tags[0].key"),
                        ({"key": "k", "value": "v" * 257}, "tags[0].value"),
                        ({"key": "aws:owner", "value": "v"}, "tags[0].key"),
                        ({"key": "AWS:owner", "value": "v"}, "tags[0].key")):
        with pytest.raises(ClientError) as e:
            ecs.tag_resource(resourceArn=arn, tags=[bad])
        code, msg = error(e)
        assert code == "InvalidParameterException" and member in msg, (bad, msg)
    with pytest.raises(ClientError) as e:
        ecs.untag_resource(resourceArn=arn, tagKeys=["aws:owner"])
    assert error(e)[0] == "InvalidParameterException" and "aws:" in error(e)[1]
    with pytest.raises(ClientError) as e:
        ecs.untag_resource(resourceArn=arn, tagKeys=["k" * 129])
    assert error(e)[0] == "InvalidParameterException" and "tagKeys[0]" in error(e)[1]


def test_unknown_resource(ecs):
    ecs.create_cluster(clusterName="web")
    register(ecs)
    unknown = [cluster_arn("nope"), td_arn("web", 2), td_arn("other", 1),
               f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/web",
               f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/web/0123456789abcdef0123456789abcdef",
               f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/web/svc"]
    for arn in unknown:
        for call in (lambda: ecs.tag_resource(resourceArn=arn, tags=[{"key": "a", "value": "b"}]),
                     lambda: ecs.tag_resource(resourceArn=arn, tags=[]),
                     lambda: ecs.untag_resource(resourceArn=arn, tagKeys=["a"])):
            with pytest.raises(ClientError) as e:
                call()
            assert error(e) == ("ResourceNotFoundException",
                                "The specified resource could not be found."), arn
        # ListTagsForResource's model has no ResourceNotFoundException.
        with pytest.raises(ClientError) as e:
            ecs.list_tags_for_resource(resourceArn=arn)
        if ":cluster/" in arn:
            assert error(e) == ("ClusterNotFoundException", "Cluster not found."), arn
        else:
            assert error(e) == ("InvalidParameterException",
                                f"The specified resource could not be found: {arn}"), arn


@pytest.mark.parametrize("arn", [
    "", "web", "cluster/web", "arn:aws:ecs", f"arn:aws:s3:{REGION}:{ACCOUNT}:cluster/web",
    f"arn:aws:ecs:{REGION}:123:cluster/web", f"arn:aws:ecs::{ACCOUNT}:cluster/web",
    f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/", f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster",
    f"arn:aws:ecs:{REGION}:{ACCOUNT}:bucket/web", f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/a b",
    f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web",
    f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:0",
    f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:x",
])
def test_malformed_arn(ecs, arn):
    for call in (lambda: ecs.tag_resource(resourceArn=arn, tags=[{"key": "a", "value": "b"}]),
                 lambda: ecs.untag_resource(resourceArn=arn, tagKeys=["a"]),
                 lambda: ecs.list_tags_for_resource(resourceArn=arn)):
        with pytest.raises(ClientError) as e:
            call()
        code, msg = error(e)
        assert code == "InvalidParameterException" and "resourceArn" in msg, (arn, msg)


# ---- raw: what botocore would not send ----

def test_raw_member_checks(daemon):
    raw(daemon, "CreateCluster", {"clusterName": "web"})
    arn = cluster_arn("web")
    cases = [
        ("TagResource", {"tags": [{"key": "a", "value": "b"}]}, "resourceArn"),
        ("TagResource", {"resourceArn": arn}, "tags"),
        ("TagResource", {"resourceArn": 7, "tags": []}, "resourceArn"),
        ("TagResource", {"resourceArn": arn, "tags": {"a": "b"}}, "tags"),
        ("TagResource", {"resourceArn": arn, "tags": ["a"]}, "tags[0]"),
        ("TagResource", {"resourceArn": arn, "tags": [{"value": "b"}]}, "tags[0].key"),
        ("TagResource", {"resourceArn": arn, "tags": [{"key": ""}]}, "tags[0].key"),
        ("UntagResource", {"resourceArn": arn}, "tagKeys"),
        ("UntagResource", {"resourceArn": arn, "tagKeys": "a"}, "tagKeys"),
        ("UntagResource", {"resourceArn": arn, "tagKeys": ["a", 1]}, "tagKeys[1]"),
        ("UntagResource", {"resourceArn": arn, "tagKeys": [""]}, "tagKeys[0]"),
        ("ListTagsForResource", {}, "resourceArn"),
    ]
    for op, body, member in cases:
        status, doc = raw(daemon, op, body)
        assert status == 400 and doc["__type"] == "InvalidParameterException", (op, body, doc)
        assert member in doc["message"], (op, body, doc)
    # A tag without a value has the empty value; an empty key list is a no-op.
    assert raw(daemon, "TagResource", {"resourceArn": arn, "tags": [{"key": "a"}]}) == (200, {})
    assert raw(daemon, "UntagResource", {"resourceArn": arn, "tagKeys": []}) == (200, {})
    assert raw(daemon, "ListTagsForResource", {"resourceArn": arn}) == \
        (200, {"tags": [{"key": "a", "value": ""}]})


# ---- the aws CLI ----

def test_aws_cli(daemon, tmpdir_short):
    aws_cli(daemon, tmpdir_short, "create-cluster", "--cluster-name", "web",
            "--tags", "key=team,value=a")
    arn = cluster_arn("web")
    p = aws_cli(daemon, tmpdir_short, "tag-resource", "--resource-arn", arn,
                "--tags", "key=env,value=prod", "key=team,value=b")
    assert p.stdout.strip() in ("", "{}"), p.stdout
    got = json.loads(aws_cli(daemon, tmpdir_short, "list-tags-for-resource",
                             "--resource-arn", arn).stdout)
    assert got == {"tags": [{"key": "env", "value": "prod"}, {"key": "team", "value": "b"}]}
    aws_cli(daemon, tmpdir_short, "untag-resource", "--resource-arn", arn, "--tag-keys", "team")
    got = json.loads(aws_cli(daemon, tmpdir_short, "list-tags-for-resource",
                             "--resource-arn", arn).stdout)
    assert got == {"tags": [{"key": "env", "value": "prod"}]}

    td = json.dumps({"family": "web", "containerDefinitions":
                     [{"name": "app", "image": "nginx", "memory": 64}],
                     "tags": [{"key": "owner", "value": "me"}]})
    aws_cli(daemon, tmpdir_short, "register-task-definition", "--cli-input-json", td)
    aws_cli(daemon, tmpdir_short, "tag-resource", "--resource-arn", td_arn("web", 1),
            "--tags", "key=tier,value=front")
    got = json.loads(aws_cli(daemon, tmpdir_short, "list-tags-for-resource",
                             "--resource-arn", td_arn("web", 1)).stdout)
    assert got == {"tags": [{"key": "owner", "value": "me"}, {"key": "tier", "value": "front"}]}

    p = aws_cli(daemon, tmpdir_short, "list-tags-for-resource", "--resource-arn",
                cluster_arn("nope"), check=False)
    assert p.returncode != 0 and "ClusterNotFoundException" in p.stderr
    p = aws_cli(daemon, tmpdir_short, "tag-resource", "--resource-arn", "not-an-arn",
                "--tags", "key=a,value=b", check=False)
    assert p.returncode != 0 and "InvalidParameterException" in p.stderr
