"""End to end on one node: rolling updates that fail, and rollbacks.

An update to a spec whose healthcheck never passes fails on its first task; with
`--update-failure-action rollback` the service goes back to its previous spec
(no other slot was touched) and `service update` exits non-zero saying why; with
`pause` the update stays paused and `service inspect` says so.  `service
rollback` swaps the spec and the previous spec, so a second one goes forward
again; a service without a previous spec cannot be rolled back.
"""
from __future__ import annotations

import pytest

from lab import images
from proto import objects_pb2 as pb
from tests.cluster import SingleNode
from tests.helpers import wait

pytestmark = pytest.mark.e2e

US = pb.UpdateStatus
SICK_CMD = "echo backend down >&2; false"
SICK = ["--health-cmd", SICK_CMD, "--health-retries", "1", "--health-interval", "1s"]
SICK_OUTPUT = "(last health check output: backend down)"
SLEEP = ["sh", "-c", "exec sleep 3600"]


@pytest.fixture(scope="module")
def image() -> str:
    return images.ensure_demo_image()


@pytest.fixture(scope="module")
def node(tmp_path_factory, image):
    n = SingleNode(tmp_path_factory.mktemp("rollback"))
    try:
        n.init()
        yield n
    finally:
        n.destroy()


def sick(task: pb.Task) -> bool:
    return list(task.spec.container.healthcheck.test) == ["CMD-SHELL", SICK_CMD]


def four_running(node: SingleNode, service: str) -> list[pb.Task] | None:
    running = node.running(service)
    return running if len(running) == 4 else None


def env_of(task: pb.Task) -> list[str]:
    return [e for e in task.spec.container.env if e.startswith("V=")]


def test_failing_update_rolls_back_after_one_task(node: SingleNode, image: str) -> None:
    node.swarm("service", "create", "--name", "rb", "--replicas", "4",
               "--stop-grace-period", "1s", "--update-parallelism", "1",
               "--update-failure-action", "rollback", "--update-monitor", "3s",
               "--rollback-monitor", "1s", image, *SLEEP)
    res = node.swarm("service", "update", *SICK, "rb", check=False, timeout=180)
    assert res.returncode != 0, res.stdout
    assert "rollback: update rolled back due to failure or early termination of task" \
        in res.stdout
    assert "service rolled back" in res.stderr and "unhealthy container" in res.stderr, \
        res.stderr
    assert SICK_OUTPUT in res.stderr, res.stderr
    svc = node.service("rb")
    assert svc.update_status.state == US.ROLLBACK_COMPLETED
    assert not svc.spec.task.container.HasField("healthcheck")
    assert list(svc.previous_spec.task.container.healthcheck.test) == ["CMD-SHELL", SICK_CMD]
    replaced = [t for t in node.tasks("rb") if sick(t)]
    assert len(replaced) <= 1 and len({t.slot for t in replaced}) <= 1, replaced
    running = wait(lambda: four_running(node, "rb"), 30, "4 rb tasks running")
    assert not any(sick(t) for t in running)
    assert sorted(t.slot for t in running) == [1, 2, 3, 4]
    node.swarm("service", "rm", "rb")


def test_failing_update_pauses(node: SingleNode, image: str) -> None:
    node.swarm("service", "create", "--name", "pz", "--replicas", "2",
               "--stop-grace-period", "1s", "--update-parallelism", "1",
               "--update-failure-action", "pause", "--update-monitor", "2s", image, *SLEEP)
    res = node.swarm("service", "update", *SICK, "pz", check=False, timeout=180)
    assert res.returncode != 0, res.stdout
    assert "update paused" in res.stderr and "unhealthy container" in res.stderr, res.stderr
    assert SICK_OUTPUT in res.stderr, res.stderr
    svc = node.service("pz")
    assert svc.update_status.state == US.PAUSED
    assert "unhealthy container" in svc.update_status.message
    pretty = node.swarm("service", "inspect", "--pretty", "pz").stdout
    assert "paused" in pretty and svc.update_status.message in pretty, pretty
    # paused: the other slot keeps its old task
    old = wait(lambda: [t for t in node.running("pz") if not sick(t)] or None, 10,
               "an old pz task still running")
    assert len(old) == 1
    node.swarm("service", "rm", "pz")


def test_manual_rollback_swaps_specs(node: SingleNode, image: str) -> None:
    node.swarm("service", "create", "--name", "fw", "--replicas", "2", "-e", "V=1",
               "--stop-grace-period", "1s", "--update-monitor", "1s",
               "--rollback-monitor", "1s", image, *SLEEP)
    res = node.swarm("service", "rollback", "fw", check=False)
    assert res.returncode == 1
    assert "service fw does not have a previous spec" in res.stderr, res.stderr
    node.swarm("service", "update", "--env-add", "V=2", "fw")

    def all_on(value: str) -> bool:
        running = node.running("fw")
        return len(running) == 2 and all(env_of(t) == [f"V={value}"] for t in running)

    assert all_on("2")
    res = node.swarm("service", "rollback", "fw")
    assert "rollback: manually requested rollback" in res.stdout
    assert env_of_spec(node.service("fw")) == ["V=1"]
    wait(lambda: all_on("1"), 30, "fw back on V=1")
    assert node.service("fw").update_status.state == US.ROLLBACK_COMPLETED
    # a second rollback goes forward again
    node.swarm("service", "update", "--rollback", "fw")
    assert env_of_spec(node.service("fw")) == ["V=2"]
    wait(lambda: all_on("2"), 30, "fw forward on V=2")
    res = node.swarm("service", "update", "--rollback", "--replicas", "3", "fw", check=False)
    assert res.returncode == 1
    assert "other flags may not be combined with --rollback: --replicas" in res.stderr
    assert node.service("fw").spec.replicated.replicas == 2
    node.swarm("service", "rm", "fw")


def env_of_spec(svc: pb.Service) -> list[str]:
    return [e for e in svc.spec.task.container.env if e.startswith("V=")]
