"""A small hollow lab: one real manager and 50 hollow nodes in two processes.

Checks what scale work relies on, not timings: hollow nodes join through the real
join flow and are ordinary nodes to the cluster (Ready, the lab's engine label),
500 tasks are spread over them, a constraint on the label places tasks, a task
told to fail is restarted, and killing a hollow process (25 nodes at once) moves
its tasks to the other nodes; the process started again resumes the same nodes.
"""
from __future__ import annotations

import collections
import json
import subprocess
from typing import Iterator

import grpc
import pytest

from lab.cluster import Lab
from lab.hollownodes import LABEL_HOLLOW
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb
from tests.labfixtures import lab_cluster

pytestmark = pytest.mark.e2e

GROUP = 25


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with lab_cluster(1, 0) as lab:
        lab.add_hollow_groups([GROUP, GROUP])
        lab.swarm("manager1", "node", "update", "--availability", "drain", "manager1")
        yield lab


@pytest.fixture(scope="module")
def api(lab: Lab) -> Iterator[control_pb2_grpc.ControlStub]:
    channel = grpc.insecure_channel(f"unix://{lab.data_dir('manager1')}/swarm.sock")
    yield control_pb2_grpc.ControlStub(channel)
    channel.close()


def nodes(api: control_pb2_grpc.ControlStub) -> dict[str, pb.Node]:
    return {n.id: n for n in api.ListNodes(cpb.ListNodesRequest(), timeout=30).nodes}


def tasks(api: control_pb2_grpc.ControlStub, service: str) -> list[pb.Task]:
    req = cpb.ListTasksRequest()
    req.filters.service_ids.append(service)
    return list(api.ListTasks(req, timeout=30).tasks)


def running(api: control_pb2_grpc.ControlStub, service: str) -> list[pb.Task]:
    return [t for t in tasks(api, service)
            if t.desired_state == pb.TaskState.Value("RUNNING")
            and t.status.state == pb.TaskState.Value("RUNNING")]


def service_id(lab: Lab, *args: str) -> str:
    return lab.swarm("manager1", "service", "create", "-d", *args).stdout.strip()


def test_hollow_nodes_are_ordinary_ready_nodes(lab: Lab, api: control_pb2_grpc.ControlStub
                                               ) -> None:
    groups = lab.hollow_groups()
    assert sorted(groups) == ["hollow1", "hollow2"]
    assert [g["count"] for g in groups.values()] == [GROUP, GROUP]
    lab.wait_ready(timeout=60)
    listed = [n for n in nodes(api).values() if n.role == pb.WORKER]
    assert len(listed) == 2 * GROUP
    assert {n.description.hostname for n in listed} == \
        {h for g in groups.values() for h in g["hostnames"]}
    assert len({n.id for n in listed}) == 2 * GROUP           # one identity each
    for node in listed:
        group = node.description.hostname.rsplit("-", 1)[0]
        assert node.description.engine_labels[LABEL_HOLLOW] == group
        assert node.status.state == pb.NodeStatus.READY
        assert node.status.addr == groups[group]["ip"]
    # `swarm-lab status` shows one row per hollow process with its node count
    res = subprocess.run(["swarm-lab", "status", "--format", "json"], capture_output=True,
                         text=True, env=dict(lab.env, SHOAL_LAB_DIR=str(lab.root)))
    rows = {r["Name"]: r for r in map(json.loads, res.stdout.splitlines())}
    assert rows["hollow1"]["Role"] == "hollow" and rows["hollow1"]["Nodes"] == GROUP
    assert rows["hollow2"]["Pid"] == groups["hollow2"]["pid"]
    assert rows["manager1"]["Nodes"] == 1


def test_500_tasks_spread_over_the_hollow_nodes(lab: Lab, api: control_pb2_grpc.ControlStub
                                                ) -> None:
    svc = service_id(lab, "--name", "spread", "--replicas", "500", "busybox", "sleep", "1d")
    lab.wait_for(lambda: len(running(api, svc)) == 500, 120, "500 hollow tasks running")
    per_node = collections.Counter(t.node_id for t in running(api, svc))
    known = nodes(api)
    assert all(known[n].role == pb.WORKER for n in per_node)    # the manager is drained
    assert len(per_node) == 2 * GROUP
    assert set(per_node.values()) == {500 // (2 * GROUP)}       # spread: 10 each
    lab.swarm("manager1", "service", "rm", svc)


def test_a_constraint_on_the_labs_label_places_tasks(lab: Lab,
                                                     api: control_pb2_grpc.ControlStub) -> None:
    svc = service_id(lab, "--name", "only1", "--replicas", "30", "--constraint",
                     f"engine.labels.{LABEL_HOLLOW}==hollow1", "busybox", "sleep", "1d")
    lab.wait_for(lambda: len(running(api, svc)) == 30, 60, "30 tasks on hollow1")
    known = nodes(api)
    assert {known[t.node_id].description.hostname.rsplit("-", 1)[0]
            for t in running(api, svc)} == {"hollow1"}
    lab.swarm("manager1", "service", "rm", svc)


def test_a_failing_hollow_task_is_restarted(lab: Lab, api: control_pb2_grpc.ControlStub
                                            ) -> None:
    svc = service_id(lab, "--name", "crashy", "--replicas", "2", "--restart-delay", "0s",
                     "--container-label", "com.shoal.hollow.exit-code=3",
                     "--container-label", "com.shoal.hollow.run-for=0.3",
                     "busybox", "sleep", "1d")

    def failed() -> list[pb.Task]:
        return [t for t in tasks(api, svc) if t.status.state == pb.TaskState.Value("FAILED")]
    lab.wait_for(lambda: len(failed()) >= 4, 60, "failed tasks replaced")
    assert all(t.status.container_status.exit_code == 3 for t in failed())
    assert any("non-zero exit (3)" in t.status.err for t in failed())
    lab.swarm("manager1", "service", "rm", svc)


def test_killing_a_hollow_process_moves_its_tasks(lab: Lab, api: control_pb2_grpc.ControlStub
                                                  ) -> None:
    svc = service_id(lab, "--name", "moving", "--replicas", "100", "busybox", "sleep", "1d")
    lab.wait_for(lambda: len(running(api, svc)) == 100, 60, "100 tasks running")
    doomed = set(lab.hollow_groups()["hollow2"]["hostnames"])
    by_host = {n.id: n.description.hostname for n in nodes(api).values()}
    assert any(by_host[t.node_id] in doomed for t in running(api, svc))
    lab.kill("hollow2")

    def moved() -> bool:
        now = running(api, svc)
        return len(now) == 100 and not any(by_host[t.node_id] in doomed for t in now)
    lab.wait_for(moved, 90, "hollow2's tasks running on hollow1")
    down = [n for n in nodes(api).values() if n.description.hostname in doomed]
    assert len(down) == GROUP and all(n.status.state == pb.NodeStatus.DOWN for n in down)

    lab.start("hollow2")          # the same 25 identities come back, no new nodes
    lab.wait_ready(timeout=60)
    assert len([n for n in nodes(api).values() if n.role == pb.WORKER]) == 2 * GROUP
    lab.swarm("manager1", "service", "rm", svc)
