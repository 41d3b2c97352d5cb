"""End to end on one node: real daemon, real podman containers, the real CLI.

Covers the walking skeleton's acceptance: create/scale, restart policies,
rolling updates, removal, logs, global mode, bad input and pull failures.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from lab import images
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb
from tests.cluster import SingleNode, podman
from tests.helpers import wait

pytestmark = pytest.mark.e2e

NAME_RE = re.compile(r"^(?P<svc>[\w-]+)\.(?P<slot>\d+)\.(?P<task>[0-9a-z]{25})$")


@pytest.fixture(scope="module")
def image() -> str:
    return images.ensure_demo_image()


@pytest.fixture(scope="module")
def image_v2(image: str) -> str:
    """The demo image under a second tag, so `--image` really changes the spec."""
    ref = image.rsplit(":", 1)[0] + ":v2"
    podman("tag", image, ref)
    podman("push", "--tls-verify=false", ref)
    return ref


@pytest.fixture(scope="module")
def node(tmp_path_factory, image):
    n = SingleNode(tmp_path_factory.mktemp("svc"))
    try:
        out = n.init()
        assert f"Swarm initialized: current node ({n.node_id}) is now a manager." in out.stdout
        yield n
    finally:
        n.destroy()


def _rm(node: SingleNode, name: str) -> None:
    node.swarm("service", "rm", name, check=False)


def test_create_scale_and_remove(node: SingleNode, image: str) -> None:
    out = node.swarm("service", "create", "--name", "web", "--replicas", "3",
                     "--stop-grace-period", "2s", image, "httpd", "-f", "-p", "8080")
    assert "verify: Service" in out.stdout and "converged" in out.stdout
    svc = node.service("web")
    assert svc.id in out.stdout
    containers = wait(lambda: len(node.containers("web")) == 3 and node.containers("web"),
                      15, "3 running containers")
    slots = set()
    for c in containers:
        m = NAME_RE.match(c["Names"][0])
        assert m and m["svc"] == "web", c["Names"]
        slots.add(int(m["slot"]))
        task = node.api().GetTask(cpb.GetTaskRequest(task_id=m["task"])).task
        assert task.slot == int(m["slot"]) and task.status.state == pb.RUNNING
    assert slots == {1, 2, 3}

    ls = node.swarm("service", "ls").stdout
    line = next(l for l in ls.splitlines() if " web " in f" {l} ")
    assert "3/3" in line and image in line
    ps = node.swarm("service", "ps", "web").stdout
    for slot in (1, 2, 3):
        row = next(l for l in ps.splitlines() if f"web.{slot} " in l)
        assert "Running" in row

    node.swarm("service", "scale", "web=5")
    wait(lambda: len(node.containers("web")) == 5, 15, "5 running containers")
    assert "5/5" in node.swarm("service", "ls", "--filter", "name=web").stdout
    node.swarm("service", "scale", "web=2")
    wait(lambda: len(node.containers("web")) == 2, 15, "2 running containers")
    assert {NAME_RE.match(c["Names"][0])["slot"] for c in node.containers("web")} == {"1", "2"}

    started = time.monotonic()
    node.swarm("service", "rm", "web")
    wait(lambda: not node.containers("web", all_states=True), 2 + 5,
         "every container of web removed within grace + 5s")
    assert time.monotonic() - started < 7
    res = node.swarm("service", "ps", "web", check=False)
    assert res.returncode != 0 and "No such service" in res.stderr


def test_killed_container_is_replaced_in_its_slot(node: SingleNode, image: str) -> None:
    node.swarm("service", "create", "-d", "--name", "phoenix", "--restart-delay", "1s",
               "--stop-grace-period", "1s", image, "sleep", "3600")
    first = wait(lambda: node.running("phoenix"), 20, "phoenix running")[0]
    podman("kill", "--signal", "KILL", first.status.container_status.container_id)
    killed_at = time.monotonic()

    def replaced():
        tasks = node.tasks("phoenix")
        new = [t for t in tasks if t.id != first.id and t.status.state == pb.RUNNING]
        old = [t for t in tasks if t.id == first.id and t.status.state == pb.FAILED]
        return (new, old) if new and old else None

    new, old = wait(replaced, 1 + 5, "a replacement within delay + 5s")
    assert time.monotonic() - killed_at < 6
    assert new[0].slot == first.slot == 1
    assert old[0].status.container_status.exit_code == 137
    ps = node.swarm("service", "ps", "phoenix").stdout
    failed_row = next(l for l in ps.splitlines() if "Failed" in l)
    assert "137" in failed_row and "phoenix.1" in failed_row
    assert len(node.containers("phoenix")) == 1
    _rm(node, "phoenix")


def _settled(node: SingleNode, name: str, count: int):
    """Waits until `count` tasks exist and none is still meant to run."""
    def done():
        tasks = node.tasks(name)
        if len(tasks) == count and all(t.desired_state != pb.RUNNING for t in tasks):
            return tasks
        return None
    return wait(done, 30, f"{name}: {count} tasks, none desired running")


def test_restart_condition_none(node: SingleNode, image: str) -> None:
    node.swarm("service", "create", "-d", "--name", "once", "--restart-condition", "none",
               "--restart-delay", "200ms", image, "sh", "-c", "exit 3")
    tasks = _settled(node, "once", 1)
    assert tasks[0].status.state == pb.FAILED
    assert tasks[0].status.container_status.exit_code == 3
    assert "Failed" in node.swarm("service", "ps", "once").stdout
    _rm(node, "once")


def test_on_failure_does_not_restart_success(node: SingleNode, image: str) -> None:
    node.swarm("service", "create", "-d", "--name", "okjob", "--restart-condition",
               "on-failure", "--restart-delay", "200ms", image, "sh", "-c", "exit 0")
    tasks = _settled(node, "okjob", 1)
    assert tasks[0].status.state == pb.COMPLETE
    _rm(node, "okjob")


def test_on_failure_with_max_attempts(node: SingleNode, image: str) -> None:
    node.swarm("service", "create", "-d", "--name", "flaky", "--restart-condition",
               "on-failure", "--restart-delay", "200ms", "--restart-max-attempts", "2",
               image, "sh", "-c", "exit 1")
    tasks = _settled(node, "flaky", 3)   # the first run and two restarts
    assert all(t.status.state == pb.FAILED and t.slot == 1 for t in tasks)
    _rm(node, "flaky")


def _replaced_one_at_a_time(tasks: list[pb.Task], version: int) -> None:
    new = sorted((t for t in tasks if t.spec_version == version),
                 key=lambda t: t.meta.created_at.ToNanoseconds())
    assert len(new) == 3
    for prev, nxt in zip(new, new[1:]):
        # the next replacement was made only after the previous one was running: since
        # its first RUNNING report (`running_since`; the agent reports RUNNING again with
        # the PID a moment later, which moves `timestamp`)
        assert prev.status.HasField("running_since"), prev
        assert nxt.meta.created_at.ToNanoseconds() >= \
            prev.status.running_since.ToNanoseconds() or prev.status.state != pb.RUNNING, \
            (prev, nxt)


def test_rolling_update_image_and_env(node: SingleNode, image: str, image_v2: str) -> None:
    node.swarm("service", "create", "--name", "roll", "--replicas", "3",
               "--stop-grace-period", "1s", image, "sleep", "3600")
    node.swarm("service", "update", "--image", image_v2, "roll")
    svc = node.service("roll")
    running = wait(lambda: len([t for t in node.running("roll")
                                if t.spec_version == svc.spec_version]) == 3
                   and node.running("roll"), 60, "3 tasks on the new image")
    # the CLI pinned the tag to its digest; podman names the container's image by it
    digest = images.manifest_digest(images.DEMO_REPO, "v2")
    assert all(t.spec.container.image == f"{image_v2}@{digest}" for t in running)
    _replaced_one_at_a_time(node.tasks("roll"), svc.spec_version)
    assert {c["Image"] for c in node.containers("roll")} == \
        {f"{image_v2.rsplit(':', 1)[0]}@{digest}"}

    node.swarm("service", "update", "--env-add", "COLOUR=teal", "roll")
    svc = node.service("roll")
    wait(lambda: len([t for t in node.running("roll")
                      if t.spec_version == svc.spec_version]) == 3, 60,
         "3 tasks with the new environment")
    _replaced_one_at_a_time(node.tasks("roll"), svc.spec_version)
    containers = wait(lambda: len(node.containers("roll")) == 3 and node.containers("roll"),
                      15, "old containers stopped")
    for c in containers:
        env = podman("inspect", "--format", "{{json .Config.Env}}", c["Id"]).stdout
        assert "COLOUR=teal" in env
    _rm(node, "roll")


def test_logs_are_prefixed_with_task_names(node: SingleNode, image: str) -> None:
    node.swarm("service", "create", "--name", "chatty", "--replicas", "2",
               "--stop-grace-period", "1s", image, "sh", "-c",
               "echo hello-from-$(hostname); echo second-line; sleep 3600")
    def lines():
        out = node.swarm("service", "logs", "chatty").stdout
        got = [l for l in out.splitlines() if "hello-from-" in l]
        return got if len(got) == 2 else None
    got = wait(lines, 20, "a hello line from each task")
    for line in got:
        assert re.match(r"^chatty\.[12]\.[0-9a-z]+@\S+\s+\|\s+hello-from-", line), line
    tail = node.swarm("service", "logs", "--tail", "1", "chatty").stdout
    assert tail.count("second-line") == 2 and "hello-from" not in tail
    follow = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "service", "logs", "--follow", "chatty"], stdout=subprocess.PIPE,
        text=True, env=node.env)
    try:
        first = follow.stdout.readline()
        assert "chatty." in first
    finally:
        follow.kill()
        follow.wait()
    _rm(node, "chatty")


def test_global_service_gets_one_task(node: SingleNode, image: str) -> None:
    node.swarm("service", "create", "--name", "everywhere", "--mode", "global",
               "--stop-grace-period", "1s", image, "sleep", "3600")
    running = wait(lambda: node.running("everywhere"), 20, "the global task")
    assert len(running) == 1 and running[0].node_id == node.node_id
    assert "1/1" in node.swarm("service", "ls", "--filter", "name=everywhere").stdout
    assert len(node.containers("everywhere")) == 1
    _rm(node, "everywhere")


def test_bad_input_is_refused_and_changes_nothing(node: SingleNode, image: str) -> None:
    node.swarm("service", "create", "-d", "--name", "keep", "--stop-grace-period", "1s",
               image, "sleep", "3600")
    before = node.service("keep")
    listing = node.swarm("service", "ls", "-q").stdout
    cases = [
        (["service", "inspect", "nosuch"], "nosuch"),
        (["service", "scale", "nosuch=2"], "nosuch"),
        (["service", "create", "--name", "neg", "--replicas", "-1", image], "-1"),
        (["service", "create", "--name", "badport", "-p", "80:abc", image], "abc"),
        (["service", "create", "--name", "badport2", "-p", "published=x,target=80", image],
         "published"),
        (["service", "create", "--name", "badc", "--constraint", "node.role=manager", image],
         "node.role=manager"),
        (["service", "create", "--name", "keep", image], "already exists"),
        (["service", "update", "--replicas", "-1", "keep"], "-1"),
        (["service", "update", "--constraint-add", "bogus", "keep"], "bogus"),
    ]
    for args, needle in cases:
        res = node.swarm(*args, check=False)
        assert res.returncode != 0, (args, res.stdout)
        assert needle in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr
    assert node.swarm("service", "ls", "-q").stdout == listing
    after = node.service("keep")
    assert after.meta.version == before.meta.version and after.spec == before.spec
    _rm(node, "keep")


def test_unpullable_image_is_rejected_with_reason(node: SingleNode) -> None:
    missing = f"{images.REGISTRY_ADDR}/shoal/does-not-exist:1"
    node.swarm("service", "create", "-d", "--name", "ghost", "--restart-condition", "none",
               missing)
    task = wait(lambda: [t for t in node.tasks("ghost") if t.status.state == pb.REJECTED],
                30, "the task rejected")[0]
    assert task.status.err
    ps = node.swarm("service", "ps", "--no-trunc", "ghost").stdout
    row = next(l for l in ps.splitlines() if "Rejected" in l)
    assert "does-not-exist" in row or task.status.err[:20] in row
    _rm(node, "ghost")


def _inspect(container_id: str) -> dict:
    return json.loads(podman("inspect", container_id).stdout)[0]


def test_pids_oom_env_file_and_log(node: SingleNode, image: str, tmp_path) -> None:
    """--limit-pids, --oom-score-adj, --env-file and --log-driver json-file with
    --log-opt max-size reach podman's container; --limit-pids 0 lifts the limit
    (no podman default of 2048). The score is raised: lowering it needs CAP_SYS_RESOURCE,
    which a lab in a container may lack (tests/test_service_limits_envfile.py)."""
    env_file = tmp_path / "app.env"
    env_file.write_text("# settings\nFROM_FILE=file-value\nOVERRIDDEN=from-file\n")
    node.swarm("service", "create", "--name", "tuned", "--stop-grace-period", "1s",
               "--limit-pids", "100", "--oom-score-adj", "500", "--env-file", str(env_file),
               "-e", "OVERRIDDEN=from-flag", "--log-driver", "json-file",
               "--log-opt", "max-size=1m",
               image, "sh", "-c", "echo env-says-$FROM_FILE-$OVERRIDDEN; sleep 3600")
    task = wait(lambda: node.running("tuned"), 30, "tuned running")[0]
    data = _inspect(task.status.container_status.container_id)
    host = data["HostConfig"]
    assert host["PidsLimit"] == 100
    assert host["OomScoreAdj"] == 500
    pid = data["State"]["Pid"]
    with open(f"/proc/{pid}/oom_score_adj") as handle:
        assert handle.read().strip() == "500"
    log = host["LogConfig"]
    assert log["Type"] == "k8s-file", log
    assert log.get("Size") not in (None, "", "0B", "-1B"), log
    env = data["Config"]["Env"]
    assert "FROM_FILE=file-value" in env and "OVERRIDDEN=from-flag" in env, env
    wait(lambda: "env-says-file-value-from-flag" in node.swarm("service", "logs",
                                                                 "tuned").stdout,
         20, "the task's line in service logs")
    pretty = node.swarm("service", "inspect", "--pretty", "tuned").stdout
    assert re.search(r"PIDs:\s+100", pretty) and re.search(r"Name:\s+json-file", pretty)

    node.swarm("service", "update", "--limit-pids", "0", "tuned")
    new = wait(lambda: [t for t in node.running("tuned") if t.id != task.id], 30,
               "the updated task running")[0]
    limit = _inspect(new.status.container_status.container_id)["HostConfig"]["PidsLimit"]
    assert limit <= 0, f"PidsLimit {limit}: expected no limit (podman's default is 2048)"
    _rm(node, "tuned")
