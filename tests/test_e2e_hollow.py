"""A small hollow lab: one real manager and 50 hollow nodes in two processes.

Checks what scale work relies on, not timings: hollow nodes join through the real
join flow and are ordinary nodes to the cluster (Ready, the lab's engine label),
500 tasks are spread over them, a constraint on the label places tasks, a task
told to fail is restarted, and killing a hollow process (25 nodes at once) moves
its tasks to the other nodes; the process started again resumes the same nodes.

The lab is brought up by the `swarm-lab up --hollow 50 --hollow-per-process 25`
command itself, and the last tests add groups to it: `swarm-lab add --hollow N`
(and what it refuses), then a group with a long start delay, whose tasks stay
STARTING for that long, then a group whose nodes offer two gpus each (`add --hollow 3
--generic-resource gpu=G1 --generic-resource gpu=G2`), which takes the tasks that
reserve one until they are all held. They run last because they change the node count the
earlier tests assert.
"""
from __future__ import annotations

import collections
import json
import subprocess
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from lab.cluster import Lab
from lab.hollownodes import LABEL_HOLLOW
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb
from tests.labfixtures import swarm_lab, swarm_lab_cluster

pytestmark = pytest.mark.e2e

GROUP = 25          # hollow nodes per process at `up`
ADDED = 6           # the group `swarm-lab add --hollow` starts
START_DELAY = 3.0   # seconds a task of the slow group takes to start


@pytest.fixture(scope="module")
def brought_up() -> Iterator[tuple[Lab, subprocess.CompletedProcess]]:
    """The lab, made by `swarm-lab up`, and that command's result."""
    with swarm_lab_cluster("--managers", "1", "--workers", "0", "--hollow", str(2 * GROUP),
                           "--hollow-per-process", str(GROUP)) as (lab, result):
        lab.swarm("manager1", "node", "update", "--availability", "drain", "manager1")
        yield lab, result


@pytest.fixture(scope="module")
def lab(brought_up: tuple[Lab, subprocess.CompletedProcess]) -> Lab:
    return brought_up[0]


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


def status_column(lab: Lab, column: str) -> dict[str, str]:
    """One column of the default `swarm-lab status` table, by lab node name."""
    res = swarm_lab(lab, "status")
    assert res.returncode == 0, res.stderr
    header, *lines = res.stdout.splitlines()
    start = header.index(column)
    end = next((i for i in range(start + len(column), len(header))
                if header[i] != " " and header[i - 1] == " "), None)
    return {line.split()[0]: line[start:end].strip() for line in lines}


def ready_hostnames(lab: Lab) -> list[str]:
    """The hostnames `swarm node ls` shows Ready."""
    res = lab.swarm("manager1", "node", "ls", "--format", "{{.Hostname}} {{.Status}}")
    return sorted(line.split()[0] for line in res.stdout.splitlines()
                  if line.endswith(" Ready"))


def test_swarm_lab_up_splits_the_hollow_nodes_into_processes(
        brought_up: tuple[Lab, subprocess.CompletedProcess]) -> None:
    lab, result = brought_up
    printed = [line.split("\t") for line in result.stdout.splitlines()]
    assert {row[0]: row[1] for row in printed} == {"manager1": "manager", "hollow1": "hollow",
                                                  "hollow2": "hollow"}
    assert {row[0]: row[2] for row in printed} == {n: lab.ip(n) for n in lab.names()}
    # 50 nodes, at most 25 a process: ceil(50 / 25) = 2 processes of 25 (the default,
    # 250 a process, would have made one)
    assert status_column(lab, "NODES") == {"manager1": "1", "hollow1": str(GROUP),
                                           "hollow2": str(GROUP)}
    pids = status_column(lab, "PID")
    assert pids["hollow1"] != pids["hollow2"]
    assert all(b"lab.hollownodes" in Path(f"/proc/{pids[g]}/cmdline").read_bytes()
               for g in ("hollow1", "hollow2"))
    expected = sorted([f"hollow{g}-{i}" for g in (1, 2) for i in range(1, GROUP + 1)]
                      + ["manager1"])
    lab.wait_for(lambda: ready_hostnames(lab) == expected, 60, "50 hollow nodes Ready")


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


def test_swarm_lab_add_hollow_refuses_a_name_a_manager_or_a_token(lab: Lab) -> None:
    before = lab.hollow_groups()
    for extra in (["extra1"], ["--manager"], ["--token", "SWMTKN-1-x"]):
        res = swarm_lab(lab, "add", "--hollow", "3", *extra)
        assert res.returncode == 2, (extra, res.stdout, res.stderr)
        assert res.stderr.strip() == (
            "Error: add --hollow N takes no NAME, --manager or --token (hollow nodes are "
            "workers; the group is named hollowK)")
        assert res.stdout == ""
    res = swarm_lab(lab, "add", "--hollow", "0")
    assert res.returncode == 2
    assert res.stderr.strip() == "Error: add --hollow N needs N of at least 1, not 0"
    assert lab.hollow_groups() == before and "extra1" not in lab.names()   # nothing added


def test_swarm_lab_add_hollow_starts_one_more_group(lab: Lab,
                                                    api: control_pb2_grpc.ControlStub) -> None:
    res = swarm_lab(lab, "add", "--hollow", str(ADDED))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().split("\t") == ["hollow3", "hollow", lab.ip("hollow3"),
                                              f"{ADDED} nodes"]
    assert status_column(lab, "NODES")["hollow3"] == str(ADDED)
    assert status_column(lab, "PID")["hollow3"] == str(lab.pid("hollow3"))
    added = [f"hollow3-{i}" for i in range(1, ADDED + 1)]
    lab.wait_for(lambda: set(added) <= set(ready_hostnames(lab)), 60, "hollow3's nodes Ready")
    workers = [n for n in nodes(api).values() if n.role == pb.WORKER]
    assert len(workers) == 2 * GROUP + ADDED
    mine = [n for n in workers if n.description.engine_labels[LABEL_HOLLOW] == "hollow3"]
    assert sorted(n.description.hostname for n in mine) == added
    assert all(n.status.addr == lab.ip("hollow3") for n in mine)


def test_a_groups_start_delay_holds_its_tasks_before_running(
        lab: Lab, api: control_pb2_grpc.ControlStub) -> None:
    group = lab.add_hollow(2, start_delay=START_DELAY)
    argv = Path(f"/proc/{lab.pid(group)}/cmdline").read_bytes().split(b"\0")
    assert argv[argv.index(b"--start-delay") + 1] == str(START_DELAY).encode()
    svc = service_id(lab, "--name", "slow", "--replicas", "2", "--constraint",
                     f"engine.labels.{LABEL_HOLLOW}=={group}", "busybox", "sleep", "1d")
    starting: dict[str, float] = {}    # task -> when its node reported it STARTING

    def seconds(task: pb.Task) -> float:
        return task.status.timestamp.seconds + task.status.timestamp.nanos / 1e9

    def all_running() -> list[pb.Task]:
        for task in tasks(api, svc):
            if task.status.state == pb.TaskState.Value("STARTING"):
                starting.setdefault(task.id, seconds(task))
        now = running(api, svc)
        return now if len(now) == 2 else []
    started = lab.wait_for(all_running, 60, "the slow group's 2 tasks running")
    assert set(starting) == {t.id for t in started}    # each was seen STARTING first
    for task in started:
        assert seconds(task) - starting[task.id] >= START_DELAY - 0.05
    lab.swarm("manager1", "service", "rm", svc)


def test_a_group_with_generic_resources_takes_the_tasks_that_reserve_them(
        lab: Lab, api: control_pb2_grpc.ControlStub) -> None:
    res = swarm_lab(lab, "add", "--hollow", "3", "--generic-resource", "gpu=G1",
                    "--generic-resource", "gpu=G2")
    assert res.returncode == 0, res.stderr
    group = res.stdout.split("\t")[0]
    mine = {n.id for n in nodes(api).values()
            if n.description.engine_labels.get(LABEL_HOLLOW) == group}
    assert len(mine) == 3
    assert all([r.named_resource_spec.value for r in n.description.resources.generic_resources]
               == ["G1", "G2"] for n in nodes(api).values() if n.id in mine)
    svc = service_id(lab, "--name", "gpus", "--replicas", "7", "--generic-resource", "gpu=1",
                     "busybox", "sleep", "1d")
    placed = lab.wait_for(lambda: running(api, svc) if len(running(api, svc)) == 6 else [],
                          60, "6 gpu tasks running on the gpu group")
    assert {t.node_id for t in placed} == mine
    holds = {(t.node_id, r.named_resource_spec.value)
             for t in placed for r in t.assigned_generic_resources}
    assert len(holds) == 6                     # two tasks per node, each its own gpu

    def seventh() -> str:
        waiting = [t for t in tasks(api, svc) if t.status.state == pb.TaskState.Value("PENDING")
                   and t.scheduling_message]
        return waiting[0].scheduling_message if len(waiting) == 1 else ""
    message = lab.wait_for(seventh, 30, "the 7th gpu task Pending with a reason")
    assert "insufficient resources on" in message
    lab.swarm("manager1", "service", "rm", svc)
