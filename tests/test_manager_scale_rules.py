"""manager.leader: a plan is committed in consecutive chunks, the updates of services,
nodes and the cluster first, the rest in order; manager.dispatcher:
a node's status address is its IP."""
from __future__ import annotations

import asyncio
import time

from manager import leader
from manager.dispatcher import peer_ip
from manager.leader import PLAN_CHUNK, chunks, commit_order
from manager.orchestrator import Plan
from proto import objects_pb2 as pb
from proto.store_pb2 import StoreAction
from raft import actions
from tests.test_store import store  # noqa: F401  (the fixture: a one-node raft store)


def test_plans_are_committed_in_chunks_in_order() -> None:
    acts = [StoreAction(expected_version=i) for i in range(2 * PLAN_CHUNK + 3)]
    parts = chunks(acts)
    assert [len(p) for p in parts] == [PLAN_CHUNK, PLAN_CHUNK, 3]
    assert [a for p in parts for a in p] == acts
    assert chunks([]) == []


def test_a_nodes_status_addr_is_its_ip() -> None:
    assert peer_ip("ipv4:10.1.0.3:40112") == "10.1.0.3"
    assert peer_ip("ipv6:[fd00::5]:40112") == "fd00::5"
    assert peer_ip("unix:/run/x.sock") == "unix:/run/x.sock"


def test_service_node_and_cluster_updates_are_committed_before_tasks() -> None:
    """A plan is committed in several transactions and may stop after any of them: the
    service version its tasks are made for must already be there (a rollback's tasks
    carry the previous spec under a new spec version)."""
    creates = [actions.create(pb.Task(id=f"t{i:04d}", service_id="s1", spec_version=2))
               for i in range(PLAN_CHUNK + 100)]
    svc = pb.Service(id="s1", spec_version=2)
    node, cluster = pb.Node(id="n1"), pb.Cluster(id="c1")
    stopped = pb.Task(id="old", service_id="s1", spec_version=1, desired_state=pb.SHUTDOWN)
    secret = pb.Secret(id="x1")
    plan = [*creates, actions.update(svc), actions.update(node), actions.update(cluster),
            actions.update(stopped), actions.remove(secret)]
    ordered = commit_order(plan)
    first = chunks(ordered)[0]
    kinds = [a.object.WhichOneof("object") for a in first[:3]]
    assert kinds == ["service", "node", "cluster"]
    assert sorted(a.SerializeToString() for a in ordered) == \
        sorted(a.SerializeToString() for a in plan)           # nothing lost or doubled
    rest = [a for a in ordered if a.object.WhichOneof("object") not in
            ("service", "node", "cluster")]
    assert rest == [*creates, actions.update(stopped), actions.remove(secret)]  # plan order
    assert commit_order(creates) == creates


def test_the_leader_loop_commits_a_big_plan_services_first(store, monkeypatch) -> None:  # noqa: F811
    svc = pb.Service(id="s1", spec_version=1)
    svc.spec.annotations.name = "web"
    store.commit([actions.create(svc)])
    stored = store.get("service", "s1")
    bumped = pb.Service()
    bumped.CopyFrom(stored)
    bumped.spec_version = 2
    creates = [actions.create(pb.Task(id=f"t{i:04d}", service_id="s1", spec_version=2))
               for i in range(PLAN_CHUNK + 1)]
    plans = [Plan(actions=[*creates, actions.update(bumped)])]

    def reconcile(view, now, **options) -> Plan:
        return plans.pop() if plans else Plan()

    monkeypatch.setattr(leader.orchestrator, "reconcile", reconcile)
    committed: list[list[StoreAction]] = []
    real = store.acommit

    async def recording(acts, timeout: float = 5.0) -> int:
        committed.append(list(acts))
        return await real(acts, timeout)

    monkeypatch.setattr(store, "acommit", recording)

    async def scenario() -> None:
        loop = leader.LeaderLoop(store, "m1")
        loop.start()
        try:
            deadline = time.monotonic() + 20
            while len(store.tasks_of(service_id="s1")) < len(creates):
                assert time.monotonic() < deadline, "the plan was not committed"
                await asyncio.sleep(0.02)
        finally:
            await loop.stop()

    asyncio.run(scenario())
    parts = [p for p in committed if any(a.object.WhichOneof("object") in ("service", "task")
                                         for a in p)]
    assert [len(p) for p in parts] == [PLAN_CHUNK, 2]
    assert parts[0][0].object.WhichOneof("object") == "service"
    assert store.get("service", "s1").spec_version == 2
