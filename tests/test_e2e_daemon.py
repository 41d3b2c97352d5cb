"""End to end: `kill -9` of the daemon loses nothing and duplicates nothing."""
from __future__ import annotations

import pytest

from lab import images
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb
from tests.cluster import SingleNode
from tests.helpers import wait

pytestmark = pytest.mark.e2e


@pytest.fixture
def node(tmp_path):
    images.ensure_demo_image()
    n = SingleNode(tmp_path)
    try:
        n.init()
        yield n
    finally:
        n.destroy()


def test_kill9_and_restart_keeps_services_tasks_and_containers(node: SingleNode) -> None:
    image = images.ensure_demo_image()
    node.swarm("service", "create", "--name", "steady", "--replicas", "3",
               "--stop-grace-period", "1s", image, "sleep", "3600")
    before_tasks = {t.id: t.slot for t in node.running("steady")}
    before_containers = {c["Id"] for c in node.containers("steady")}
    assert len(before_tasks) == 3 and len(before_containers) == 3

    # acknowledged writes just before the kill must all survive it
    acked = []
    for i in range(20):
        node.swarm("service", "create", "-d", "--name", f"w{i}", "--replicas", "0", image)
        acked.append(f"w{i}")
    node.kill9()
    assert {c["Id"] for c in node.containers("steady")} == before_containers  # kept running

    node.restart()
    names = set(node.swarm("service", "ls", "--format", "{{.Name}}").stdout.split())
    assert set(acked) <= names and "steady" in names

    def settled():
        running = node.running("steady")
        return running if len(running) == 3 else None
    running = wait(settled, 20, "3 running tasks after restart")
    assert {t.id: t.slot for t in running} == before_tasks  # adopted, not replaced
    # once the restarted agent demonstrably runs new work, the old containers are
    # still the only ones of the service: adopted, with no duplicates
    node.swarm("service", "create", "--name", "probe", image, "sleep", "3600")
    wait(lambda: node.running("probe"), 20, "a new service running after restart")
    assert {c["Id"] for c in node.containers("steady", all_states=True)} == before_containers
    tasks = node.api().ListTasks(cpb.ListTasksRequest()).tasks
    assert sum(1 for t in tasks if t.service_name == "steady"
               and t.desired_state == pb.RUNNING) == 3
