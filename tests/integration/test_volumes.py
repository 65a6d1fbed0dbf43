"""Task volumes through the daemon (docs/task-environment.md "Volumes"): task
volumes shared by a task's containers and gone with the task, mountPoints
and volumesFrom with readOnly, named volumes that outlive tasks with `berth
volume ls|rm`, host paths only beneath --allow-host-path prefixes (nosuid,
nodev, symlinks cannot lead out), ECS's registration checks, the members
Berth refuses, and an image whose symlinks aim the mount point elsewhere.

Real tasks: a daemon on the test network pulling from the test registry;
every test checks nothing of its tasks is left on the host."""
import http.client
import json
import os
import signal
import subprocess
from pathlib import Path

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
from botocore.exceptions import ClientError

from fixtures import tasks as tk
from test_api_clusters import AKID, REGION, SECRET
from test_api_tasks import (NETCFG, TaskDaemon, finish, image, log_lines, make_client,  # noqa: F401
                            register, sh, tmp_tasks, wait_running, wait_stopped)
from test_cli_tasks import BERTH_BIN


@pytest.fixture
def start(tmp_tasks, task_net, registry_anon):
    """start(*flags) → (daemon, ecs client) on the test network."""
    started = []

    def go(*flags):
        d = TaskDaemon(tmp_tasks, task_net, flags, registry=registry_anon).wait_ready()
        started.append(d)
        return d, make_client(d)
    yield go
    for d in started:
        finish(d, task_net)


def run_to_end(d, ecs, containers, volumes, family="vol"):
    """Registers and runs the task; the STOPPED task."""
    td = register(ecs, d, containers, family=family, volumes=volumes)
    (t,) = ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG)["tasks"]
    (t,) = wait_stopped(ecs, [t["taskArn"]], 90)
    return t


def out(d, t, name):
    return log_lines(d, t, name)


def container(t, name):
    return next(c for c in t["containers"] if c["name"] == name)


def task_dir(d, t):
    return d.root / "tasks" / t["taskArn"].rsplit("/", 1)[1]


def client_error(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["Error"]["Message"]


def mountinfo_line(d, t, name, path):
    """The /proc/self/mountinfo line the container printed for PATH."""
    lines = [x for x in out(d, t, name) if len(x.split()) > 4 and x.split()[4] == path]
    assert lines, (out(d, t, name), container(t, name))
    return lines[0]


# ---- task volumes ----

def test_task_volume_shared_between_writer_and_reader_then_gone(start):
    """The writer (as user app) writes, the reader waits for the file; the
    volume is an empty directory per task and nothing of it remains."""
    d, ecs = start()
    t = run_to_end(d, ecs, [
        sh("writer", "ls -A /data | wc -l; echo from-writer > /data/f; sleep 30",
           user="app", essential=False, mountPoints=[
               {"sourceVolume": "shared", "containerPath": "/data"}]),
        sh("reader", "while ! test -f /in/f; do sleep 0.1; done; cat /in/f; id -u",
           mountPoints=[{"sourceVolume": "shared", "containerPath": "/in"}]),
    ], [{"name": "shared"}])
    assert container(t, "reader")["exitCode"] == 0, t
    assert out(d, t, "reader") == ["from-writer", "0"]
    assert out(d, t, "writer")[0] == "0"          # empty at first
    assert not (task_dir(d, t) / "volumes").exists()


def test_volumes_from_and_read_only(start):
    """volumesFrom gives the source's mounts (read-only when asked); a
    readOnly mount refuses writes with EROFS."""
    d, ecs = start()
    t = run_to_end(d, ecs, [
        sh("src", "echo hello > /v/f; sleep 30", essential=False,
           mountPoints=[{"sourceVolume": "v", "containerPath": "/v"}]),
        sh("ro", "while ! test -f /v/f; do sleep 0.1; done; cat /v/f; "
                 "touch /v/g 2>&1; touch /r/x 2>&1; grep ' /r ' /proc/self/mountinfo",
           volumesFrom=[{"sourceContainer": "src", "readOnly": True}],
           mountPoints=[{"sourceVolume": "w", "containerPath": "/r", "readOnly": True}]),
    ], [{"name": "v"}, {"name": "w", "dockerVolumeConfiguration": {"scope": "task",
                                                                    "driver": "local"}}])
    lines = out(d, t, "ro")
    assert lines[0] == "hello", lines
    assert "Read-only file system" in lines[1] and "Read-only file system" in lines[2], lines
    assert " ro," in lines[3] or " ro " in lines[3], lines


def test_empty_volume_seeded_from_the_images_volume(start):
    """ECS's VOLUME rule: an empty volume mounted where the image declares
    a VOLUME gets the image's files there, owners and modes too (set-id
    bits dropped), links as links; a container without the VOLUME (the
    reader) sees them through the same volume."""
    d, ecs = start()
    t = run_to_end(d, ecs, [
        sh("c", "stat -c '%u:%g %a %n' /seed /seed/a /seed/suid; stat -c %h /seed/hl; "
                "readlink /seed/link; cat /seed/sub/b; sleep 30", image=image(d, "volume-seed"),
           essential=False,
           mountPoints=[{"sourceVolume": "v", "containerPath": "/seed"}]),
        sh("r", "while ! test -f /r/sub/b; do sleep 0.1; done; cat /r/a",
           mountPoints=[{"sourceVolume": "v", "containerPath": "/r"}]),
    ], [{"name": "v"}])
    assert out(d, t, "c") == ["1000:1000 750 /seed", "1000:1000 640 /seed/a",
                              "0:0 755 /seed/suid", "2", "a", "nested"], (t, out(d, t, "c"))
    assert out(d, t, "r") == ["from the image"]


def test_nested_mount_points_in_any_order(start):
    """/a/b listed before /a still shows: parents are mounted first."""
    d, ecs = start()
    t = run_to_end(d, ecs, [
        sh("c", "echo inner > /a/b/f; echo outer > /a/g; ls /a", mountPoints=[
            {"sourceVolume": "inner", "containerPath": "/a/b"},
            {"sourceVolume": "outer", "containerPath": "/a"}]),
    ], [{"name": "inner"}, {"name": "outer"}])
    assert container(t, "c")["exitCode"] == 0, (t, out(d, t, "c"))
    assert out(d, t, "c") == ["b", "g"]


def test_image_symlinks_cannot_redirect_the_mount(start):
    """/data -> /srv/target resolves inside the rootfs; /up -> ../../.. stays
    at the container's root; /magic -> /proc/self/root/... is refused."""
    d, ecs = start()
    img = image(d, "volume-links")
    t = run_to_end(d, ecs, [
        sh("c", "echo in > /srv/target/f; echo up > /vol/g; sleep 30", image=img,
           essential=False, mountPoints=[
               {"sourceVolume": "v", "containerPath": "/data"},
               {"sourceVolume": "u", "containerPath": "/up/vol"}]),
        sh("check", "while ! test -f /v/f || ! test -f /u/g; do sleep 0.1; done; "
                    "cat /v/f /u/g", mountPoints=[
                        {"sourceVolume": "v", "containerPath": "/v"},
                        {"sourceVolume": "u", "containerPath": "/u"}]),
    ], [{"name": "v"}, {"name": "u"}])
    assert out(d, t, "check") == ["in", "up"], (t, out(d, t, "c"))
    t = run_to_end(d, ecs, [
        sh("c", "true", image=img, mountPoints=[{"sourceVolume": "v",
                                                 "containerPath": "/magic/x"}]),
    ], [{"name": "v"}], family="magic")
    reason = container(t, "c").get("reason", "") + t.get("stoppedReason", "")
    assert "magic link" in reason and "/magic/x" in reason, t


def test_task_volume_gone_after_shim_and_daemon_kill9(start):
    """kill -9 the daemon, then the task's shim: the restarted daemon
    cleans up after the shim, task volume included."""
    d, ecs = start()
    td = register(ecs, d, [sh("c", "echo x > /v/f; sleep 600", mountPoints=[
        {"sourceVolume": "v", "containerPath": "/v"}])], family="k9", volumes=[{"name": "v"}])
    (t,) = ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG)["tasks"]
    vol = task_dir(d, t) / "volumes" / "v"
    tk.poll_until(lambda: (vol / "f").exists(), 60, "the container to write its volume")
    d.proc.kill()
    d.proc.wait()
    (shim,) = tk.shim_processes(d.tmp)
    os.kill(shim, signal.SIGKILL)
    tk.reap(shim)
    d2 = d.restart("daemon2").wait_ready()
    d.__dict__.update(d2.__dict__)
    (t,) = wait_stopped(make_client(d2), [t["taskArn"]])
    assert t["lastStatus"] == "STOPPED"
    assert not vol.parent.exists()


# ---- named volumes ----

def cli(d, *args):
    return subprocess.run([BERTH_BIN, "--socket", str(d.sock), *args], capture_output=True,
                          text=True, timeout=60)


def test_named_volume_survives_tasks_and_volume_ls_rm(start):
    d, ecs = start()
    vol = [{"name": "keep", "dockerVolumeConfiguration": {
        "scope": "shared", "autoprovision": True, "driver": "local"}}]
    mp = [{"sourceVolume": "keep", "containerPath": "/k"}]
    t = run_to_end(d, ecs, [sh("a", "echo first >> /k/log", mountPoints=mp)], vol)
    assert container(t, "a")["exitCode"] == 0, t
    t = run_to_end(d, ecs, [sh("b", "echo second >> /k/log; cat /k/log", mountPoints=mp)], vol)
    assert out(d, t, "b") == ["first", "second"]
    ls = cli(d, "volume", "ls")
    assert ls.returncode == 0 and "keep" in ls.stdout, ls
    # In use: refused while a task runs with it.
    td = register(ecs, d, [sh("c", "sleep 60", mountPoints=mp)], family="hold", volumes=vol)
    (t,) = ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG)["tasks"]
    assert wait_running(ecs, t["taskArn"], 60)["lastStatus"] == "RUNNING"
    rm = cli(d, "volume", "rm", "keep")
    assert rm.returncode == 1 and "in use by a running task" in rm.stderr, rm
    ecs.stop_task(task=t["taskArn"])
    wait_stopped(ecs, [t["taskArn"]])
    rm = cli(d, "volume", "rm", "keep")
    assert rm.returncode == 0, rm
    assert not (d.root / "volumes" / "keep").exists()
    rm = cli(d, "volume", "rm", "keep")
    assert rm.returncode == 1 and "no such volume" in rm.stderr, rm
    assert "keep" not in cli(d, "volume", "ls").stdout


# ---- host paths ----

@pytest.fixture
def host_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostpaths")
    allowed = base / "allowed"
    (allowed / "data").mkdir(parents=True)
    (allowed / "data" / "hello").write_text("from the host\n")
    (base / "outside").mkdir()
    (base / "outside" / "secret").write_text("must not be seen\n")
    (allowed / "escape").symlink_to(base / "outside")
    (allowed / "rel-escape").symlink_to("../outside")
    return Path(os.path.realpath(base))


def host_task(d, ecs, src, script, family="host", **mp):
    return run_to_end(d, ecs, [sh("c", script, mountPoints=[
        {"sourceVolume": "h", "containerPath": "/h", **mp}])],
        [{"name": "h", "host": {"sourcePath": str(src)}}], family=family)


def test_host_path_refused_without_flag(start, host_dirs):
    d, ecs = start()
    td = register(ecs, d, [sh("c", "true", mountPoints=[
        {"sourceVolume": "h", "containerPath": "/h"}])],
        volumes=[{"name": "h", "host": {"sourcePath": str(host_dirs / "allowed" / "data")}}])
    with pytest.raises(ClientError) as e:
        ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG)
    code, msg = client_error(e)
    assert code == "ClientException" and "--allow-host-path" in msg and "not allowed" in msg, msg


def test_host_path_allowed_prefix_nosuid_nodev_and_refusals(start, host_dirs):
    allowed = host_dirs / "allowed"
    d, ecs = start("--allow-host-path", str(allowed))
    t = host_task(d, ecs, allowed / "data",
                  "cat /h/hello; echo back > /h/new; grep ' /h ' /proc/self/mountinfo")
    lines = out(d, t, "c")
    assert lines[0] == "from the host", lines
    opts = lines[1].split()[5].split(",")
    assert "nosuid" in opts and "nodev" in opts and "rw" in opts, lines
    assert (allowed / "data" / "new").read_text() == "back\n"
    t = host_task(d, ecs, allowed / "data", "touch /h/x 2>&1", family="ro", readOnly=True)
    assert "Read-only file system" in out(d, t, "c")[0]
    assert not (allowed / "data" / "x").exists()
    # Outside the prefix: refused at RunTask.
    td = register(ecs, d, [sh("c", "true", mountPoints=[
        {"sourceVolume": "h", "containerPath": "/h"}])], family="out",
        volumes=[{"name": "h", "host": {"sourcePath": str(host_dirs / "outside")}}])
    with pytest.raises(ClientError) as e:
        ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG)
    assert "not beneath a prefix allowed" in client_error(e)[1]
    # A symlink beneath the prefix that leads out: the task fails to start.
    for link in ("escape", "rel-escape"):
        t = host_task(d, ecs, allowed / link, "cat /h/secret", family=link)
        assert out(d, t, "c") == [], t
        assert "leads out of" in t.get("stoppedReason", ""), t


def test_host_path_prefix_must_not_expose_berth_or_root(tmp_tasks, task_net, registry_anon):
    for prefix, why in ((str(tmp_tasks), "would expose Berth's own directory"),
                        ("/", "never the whole host"),
                        (str(tmp_tasks) + "/../" + tmp_tasks.name, "canonical path")):
        d = TaskDaemon(tmp_tasks, task_net, ("--allow-host-path", prefix),
                       registry=registry_anon)
        assert d.proc.wait(30) != 0
        d._stderr.close()
        assert why in d.stderr(), d.stderr()


# ---- registration and refusals ----

@pytest.mark.parametrize("containers,volumes,msg", [
    ([{"mountPoints": [{"sourceVolume": "nope", "containerPath": "/x"}]}], [],
     "Unknown volume 'nope'."),
    ([{"mountPoints": [{"containerPath": "/x"}]}], [{"name": "v"}], "Unknown volume 'null'."),
    ([{"mountPoints": [{"sourceVolume": "v", "containerPath": "/x"},
                       {"sourceVolume": "v", "containerPath": "/x"}]}], [{"name": "v"}],
     "Duplicate mount point containerPath '/x'."),
    ([{"mountPoints": [{"sourceVolume": "v", "containerPath": "rel"}]}], [{"name": "v"}],
     "must be an absolute path"),
    ([{"volumesFrom": [{"sourceContainer": "ghost"}]}], [],
     "Invalid 'volumesFrom' setting. Unknown container: 'ghost'."),
    ([{"volumesFrom": [{"sourceContainer": "c1"}]}, {"volumesFrom": [{"sourceContainer": "c0"}]}],
     [], "a cycle"),
    ([{}], [{"name": "v"}, {"name": "v"}], "Duplicate volume name 'v'."),
    ([{}], [{"name": "v", "host": {"sourcePath": ""}}], "host.sourcePath should not be blank."),
    ([{}], [{"name": "bad name"}], "volume.name contains invalid characters."),
])
def test_registration_checks(start, containers, volumes, msg):
    d, ecs = start()
    defs = [dict(sh(f"c{i}", "true"), image=image(d, "busybox"), **c)
            for i, c in enumerate(containers)]
    with pytest.raises(ClientError) as e:
        ecs.register_task_definition(family="bad", networkMode="awsvpc", cpu="256",
                                     memory="512", containerDefinitions=defs, volumes=volumes)
    code, text = client_error(e)
    assert code == "ClientException" and msg in text, text


@pytest.mark.parametrize("volume,member", [
    ({"efsVolumeConfiguration": {"fileSystemId": "fs-1"}}, "efsVolumeConfiguration"),
    ({"fsxWindowsFileServerVolumeConfiguration": {
        "fileSystemId": "fs-1", "rootDirectory": "x", "authorizationConfig": {
            "credentialsParameter": "p", "domain": "d"}}},
     "fsxWindowsFileServerVolumeConfiguration"),
    ({"dockerVolumeConfiguration": {"scope": "shared", "driver": "rexray/ebs"}},
     "dockerVolumeConfiguration.driver"),
    ({"dockerVolumeConfiguration": {"scope": "task", "driverOpts": {"type": "nfs"}}},
     "dockerVolumeConfiguration.driverOpts"),
])
def test_unsupported_volume_members_refused_at_run_task(start, volume, member):
    d, ecs = start()
    td = register(ecs, d, [sh("c", "true")], family="unsup", volumes=[dict(name="v", **volume)])
    with pytest.raises(ClientError) as e:
        ecs.run_task(taskDefinition=td, networkConfiguration=NETCFG)
    code, msg = client_error(e)
    assert code == "ClientException" and f"volumes[0] (v): {member}" in msg, msg


def test_berth_operations_over_signed_tcp(start):
    """ListVolumes over TCP: signed for the signing name `berth` it
    answers; signed for `ecs` the signature does not check out."""
    d, ecs = start()

    def call(service):
        req = botocore.awsrequest.AWSRequest(
            method="POST", url=d.endpoint + "/", data=b"{}",
            headers={"Content-Type": "application/x-amz-json-1.1",
                     "X-Amz-Target": "BerthV20261208.ListVolumes"})
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(AKID, SECRET), service,
                                REGION).add_auth(req)
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        try:
            c.request("POST", "/", body=b"{}", headers=dict(req.headers.items()))
            r = c.getresponse()
            return r.status, json.loads(r.read() or b"{}")
        finally:
            c.close()
    assert call("berth") == (200, {"volumes": []})
    assert call("ecs") == (403, {
        "__type": "InvalidSignatureException",
        "message": "Credential should be scoped to correct service: 'berth'."})


def test_task_volume_counts_against_ephemeral_storage(start):
    """A task filling its task volume is stopped like one filling its
    writable layer: the volume is the task's disk too."""
    d, ecs = start("--default-ephemeral-storage", "20", "--disk-check-interval", "200ms")
    t = run_to_end(d, ecs, [sh("big", "dd if=/dev/zero of=/v/f bs=1M count=64 2>/dev/null; "
                                      "sleep 600", stopTimeout=2, mountPoints=[
                                          {"sourceVolume": "v", "containerPath": "/v"}])],
                   [{"name": "v"}], family="full")
    assert t["stopCode"] == "TerminationNotice", t
    assert t["stoppedReason"].startswith(
        "Task stopped: its containers' writable layers and task volumes hold "), t
    assert not (task_dir(d, t) / "volumes").exists()
