"""End to end: `kill -9` of the daemon loses nothing and duplicates nothing."""
from __future__ import annotations

import json

import pytest

from lab import images
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb
from tests.cluster import SingleNode, podman
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


def test_daemon_generic_resources_are_reported_kept_and_given_to_tasks(node: SingleNode
                                                                         ) -> None:
    """`swarm daemon --node-generic-resource` (issue 18): a task reserving a resource no
    node offers stays Pending; the node restarted offering it runs the task, whose
    container sees DOCKER_RESOURCE_SSD; a later restart without the flag keeps it."""
    image = images.ensure_demo_image()
    node.swarm("service", "create", "-d", "--name", "disk", "--generic-resource", "ssd=1",
               "--stop-grace-period", "1s", image, "sleep", "3600")

    def pending_reason() -> str:
        tasks = [t for t in node.tasks("disk") if t.desired_state == pb.RUNNING]
        return tasks[0].scheduling_message if tasks else ""
    reason = wait(pending_reason, 20, "the disk task Pending with a reason")
    assert reason == "no suitable node (insufficient resources on 1 node)"

    node.kill9()
    node.swarm("daemon", "--data-dir", str(node.data_dir), "--node-generic-resource", "ssd=2")
    running = wait(lambda: node.running("disk"), 30, "the disk task running")
    assert [(r.discrete_resource_spec.kind, r.discrete_resource_spec.value)
            for r in running[0].assigned_generic_resources] == [("ssd", 1)]
    cid = wait(lambda: node.containers("disk"), 20, "the disk container")[0]["Id"]
    assert podman("exec", cid, "sh", "-c", "echo $DOCKER_RESOURCE_SSD").stdout.strip() == "1"

    node.kill9()
    node.restart()                                        # no flag: node.json's are kept
    shown = node.swarm("node", "inspect", "self", "--format",
                       "{{json .Description.Resources.GenericResources}}").stdout
    assert json.loads(shown) == [{"discrete_resource_spec": {"kind": "ssd", "value": 2}}]
