"""`service ls` counts: the manager counts each service's tasks (ListServices with
status, proto/model.py replica_status) and the CLI shows them without fetching every
task; against a manager that does not count, the CLI counts from the tasks as before."""
from __future__ import annotations

import asyncio

from cli import commands_service
from cli import format as fmt
from manager.controlapi.server import ControlServicer
from manager.logbroker import LogBroker
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb
from raft import actions
from tests.test_store import store  # noqa: F401  (the fixture: a one-node raft store)


def node(node_id: str, down: bool = False) -> pb.Node:
    n = pb.Node(id=node_id)
    n.status.state = pb.NodeStatus.DOWN if down else pb.NodeStatus.READY
    return n


def service(sid: str, mode: str, **spec: int) -> pb.Service:
    svc = pb.Service(id=sid, spec_version=1)
    svc.spec.annotations.name = sid
    if mode == "replicated":
        svc.spec.replicated.replicas = spec["replicas"]
        svc.spec.task.placement.max_replicas = spec.get("max", 0)
    elif mode == "replicated_job":
        svc.spec.replicated_job.total_completions = spec["total"]
        svc.spec.replicated_job.max_concurrent = spec.get("concurrent", 0)
    else:
        getattr(svc.spec, mode).SetInParent()  # global, global_job
    return svc


def task(tid: str, sid: str, node_id: str, state: int, desired: int = pb.RUNNING,
         slot: int = 0) -> pb.Task:
    t = pb.Task(id=tid, service_id=sid, node_id=node_id, desired_state=desired, slot=slot,
                spec_version=1)
    t.status.state = state
    return t


SERVICES = [service("web", "replicated", replicas=3, max=2), service("agent", "global"),
            service("batch", "replicated_job", total=4, concurrent=2),
            service("sweep", "global_job")]
TASKS = [task("w1", "web", "n1", pb.RUNNING, slot=1), task("w2", "web", "n2", pb.RUNNING, slot=2),
         task("w3", "web", "n3", pb.STARTING, slot=3),
         task("w0", "web", "n1", pb.FAILED, desired=pb.SHUTDOWN, slot=1),
         task("a1", "agent", "n1", pb.RUNNING), task("a2", "agent", "n2", pb.RUNNING),
         task("b1", "batch", "n1", pb.COMPLETE, desired=pb.COMPLETE, slot=1),
         task("b2", "batch", "n2", pb.RUNNING, slot=2),
         task("s1", "sweep", "n1", pb.COMPLETE, desired=pb.COMPLETE),
         task("s2", "sweep", "n3", pb.RUNNING),
         # finished, then stopped: `service ls` never listed it, so it is not counted
         task("s0", "sweep", "n3", pb.COMPLETE, desired=pb.SHUTDOWN),
         task("b0", "batch", "n3", pb.COMPLETE, desired=pb.SHUTDOWN, slot=3)]
LISTED = [t for t in TASKS if t.desired_state in (pb.RUNNING, pb.COMPLETE)]
NODES = [node("n1"), node("n2", down=True), node("n3")]


def test_the_manager_counts_what_the_cli_would(store, tmp_path) -> None:  # noqa: F811
    store.commit([actions.create(o) for o in (*NODES, *SERVICES, *TASKS)])
    control = ControlServicer(store, "m1", str(tmp_path), LogBroker("m1"), lambda: "")
    response = asyncio.run(control.ListServices(cpb.ListServicesRequest(status=True), None))
    assert {s.id for s in response.services} == set(response.statuses) == \
        {s.id for s in SERVICES}
    for svc in SERVICES:
        got = response.statuses[svc.id]
        want = model.replica_status(svc, LISTED, ["n2"])
        assert (got.running_tasks, got.desired_tasks, got.completed_tasks,
                got.total_completions) == want
    columns = {s.id: fmt.service_row(s, [], status=model.replica_status(s, LISTED, ["n2"]))
               ["Replicas"] for s in SERVICES}
    assert columns == {"web": "1/3 (max 2 per node)", "agent": "1/2",
                       "batch": "0/2 (1/4 completed)", "sweep": "1/1 (1/2 completed)"}
    plain = asyncio.run(control.ListServices(cpb.ListServicesRequest(), None))
    assert len(plain.services) == 4 and not plain.statuses  # counted only when asked


class FakeContext:
    """The calls `service ls` makes, answered from lists (with or without counts)."""

    def __init__(self, counts: bool) -> None:
        self.counts = counts
        self.methods: list[str] = []

    def call(self, method: str, request):
        self.methods.append(method)
        if method == "ListServices":
            response = cpb.ListServicesResponse(services=SERVICES)
            if self.counts and request.status:
                for s in SERVICES:
                    r, d, c, t = model.replica_status(s, LISTED, ["n2"])
                    response.statuses[s.id].CopyFrom(cpb.ServiceStatus(
                        running_tasks=r, desired_tasks=d, completed_tasks=c, total_completions=t))
            return response
        assert method == "ListTasks"
        wanted = request.filters
        return cpb.ListTasksResponse(tasks=[t for t in TASKS if t.service_id in
                                            wanted.service_ids and t.desired_state in
                                            wanted.desired_states])

    def nodes(self) -> list[pb.Node]:
        self.methods.append("ListNodes")
        return NODES


def test_the_cli_uses_the_managers_counts_and_falls_back_to_tasks() -> None:
    counted, old = FakeContext(counts=True), FakeContext(counts=False)
    want = [model.replica_status(s, LISTED, ["n2"]) for s in SERVICES]
    assert commands_service._replica_counts(counted, SERVICES) == want  # type: ignore[arg-type]
    assert counted.methods == ["ListServices"]
    assert commands_service._replica_counts(old, SERVICES) == want  # type: ignore[arg-type]
    assert old.methods == ["ListServices", "ListTasks", "ListNodes"]
    assert commands_service._replica_counts(counted, []) == []  # type: ignore[arg-type]
