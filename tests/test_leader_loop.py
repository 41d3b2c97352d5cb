"""The leader's reconciliation loop (manager/leader.py): passes on a thread of their own,
at most PASS_DUTY of the time while changes keep coming, the event loop free meanwhile,
skipping passes audited against full ones."""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable

import pytest

from manager import leader
from manager.leader import LeaderLoop, audit, rest_after
from proto import model
from proto import objects_pb2 as pb
from proto import store_pb2
from raft import actions
from raft import state as raft_state
from raft.state import StoreState
from tests.test_store import store  # noqa: F401  (the fixture: a one-node raft store)


async def until(cond: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_rest_after_keeps_passes_to_their_share_of_the_time() -> None:
    assert rest_after(1.0, 0.5) == pytest.approx(1.0)
    assert rest_after(0.3, 0.75) == pytest.approx(0.1)
    assert rest_after(0.0) == 0.0


def ready_node(node_id: str) -> pb.Node:
    node = pb.Node(id=node_id, role=pb.WORKER)
    node.spec.availability = pb.NodeSpec.ACTIVE
    node.status.state = pb.NodeStatus.READY
    return node


def replicated(name: str, replicas: int) -> pb.Service:
    svc = pb.Service(id=model.new_id(), spec_version=1)
    svc.spec.annotations.name = name
    svc.spec.task.container.image = "busybox"
    svc.spec.replicated.replicas = replicas
    return svc


def test_passes_run_off_the_event_loop_and_converge(store, monkeypatch) -> None:  # noqa: F811
    threads: set[str] = set()
    reconcile = leader.orchestrator.reconcile

    def spying(view, now, **options):
        threads.add(threading.current_thread().name)
        return reconcile(view, now, **options)

    monkeypatch.setattr(leader.orchestrator, "reconcile", spying)
    store.commit([actions.create(ready_node("n1")), actions.create(ready_node("n2"))])

    async def scenario() -> None:
        loop = LeaderLoop(store, "m1")
        loop.start()
        try:
            svc = replicated("web", 4)
            store.commit([actions.create(svc)])
            await until(lambda: len([t for t in store.tasks_of(service_id=svc.id)
                                     if t.status.state == pb.ASSIGNED]) == 4,
                        "4 assigned tasks")
            placed = sorted(t.node_id for t in store.tasks_of(service_id=svc.id))
            assert placed == ["n1", "n1", "n2", "n2"]
            scaled = pb.Service()
            scaled.CopyFrom(store.get("service", svc.id))
            scaled.spec.replicated.replicas = 6
            store.commit([actions.update(scaled)])
            await until(lambda: len(store.tasks_of(service_id=svc.id)) == 6, "6 tasks")
            await until(lambda: all(t.status.state == pb.ASSIGNED
                                    for t in store.tasks_of(service_id=svc.id)), "6 assigned")
            # progress reports no rule acts on ask for no pass
            await until(lambda: not loop._dirty.is_set(), "the last pass to start")
            reports = []
            for t in store.tasks_of(service_id=svc.id):
                new = pb.Task()
                new.CopyFrom(t)
                new.status.state = pb.RUNNING
                reports.append(actions.update(new))
            store.commit(reports)
            await until(lambda: loop.ignored >= 1, "the reports to be judged unneeded")
            assert not loop._dirty.is_set()
        finally:
            await loop.stop()
        assert threads and all(name.startswith("reconcile-") for name in threads)

    asyncio.run(scenario())


def test_audit_counts_what_a_wrong_skip_misses() -> None:
    state = StoreState()
    txn = store_pb2.StoreTransaction(proposer="t", proposed_at=1000.0)
    svc = replicated("web", 3)
    txn.actions.extend([actions.create(ready_node("n1")), actions.create(svc)])
    state.apply(txn)
    view = state.snapshot()
    assert audit(view, 1000.0, frozenset()) == 0
    assert audit(view, 1000.0, frozenset({svc.id})) == 3   # the 3 tasks it would not make


def test_an_audit_catches_a_wrong_skip_and_the_next_pass_is_full(store, monkeypatch) -> None:  # noqa: F811
    """With `quiet` made wrong (it names every service, a new one included), the new
    service gets its tasks only because an audit finds the skipping pass wrong."""
    monkeypatch.setattr(leader, "AUDIT_EVERY", 0.2)
    wrong = {"on": False}
    right_quiet = leader.quiet

    def wrong_quiet(previous, now):
        return frozenset(now.services) if wrong["on"] else right_quiet(previous, now)

    monkeypatch.setattr(leader, "quiet", wrong_quiet)
    store.commit([actions.create(ready_node("n1"))])

    async def scenario() -> None:
        loop = LeaderLoop(store, "m1")
        loop.start()
        try:
            first = replicated("first", 2)
            store.commit([actions.create(first)])
            await until(lambda: len(store.tasks_of(service_id=first.id)) == 2, "2 tasks")
            second = replicated("second", 1)   # its pass leaves `first` out
            store.commit([actions.create(second)])
            await until(lambda: len(store.tasks_of(service_id=second.id)) == 1, "1 task")
            await until(lambda: loop.audits >= 1, "an audit of a right skip")
            assert loop.audit_misses == 0
            wrong["on"] = True
            svc = replicated("skipped", 3)
            store.commit([actions.create(svc)])
            await until(lambda: loop.audit_misses >= 1, "the audit to find the wrong skip")
            await until(lambda: len(store.tasks_of(service_id=svc.id)) == 3,
                        "the full pass to make the 3 tasks")
        finally:
            await loop.stop()

    asyncio.run(scenario())


def test_progress_reports_alone_bring_the_index_up_to_date_without_a_pass(
        store, monkeypatch) -> None:  # noqa: F811
    """Transactions that ask for no pass still fill the store's task change log: past
    CATCH_UP_AFTER task changes the loop advances its index (no pass), so the next pass
    finds it up to date instead of building it again."""
    monkeypatch.setattr(leader, "CATCH_UP_AFTER", 4)
    monkeypatch.setattr(raft_state, "TASK_LOG_MAX", 10)   # the log keeps 5 to 10 task IDs
    builds: list[int] = []
    build = leader.TaskIndex.build.__func__  # type: ignore[attr-defined]

    def counting(cls, view):
        builds.append(view.version)
        return build(cls, view)

    monkeypatch.setattr(leader.TaskIndex, "build", classmethod(counting))
    store.commit([actions.create(ready_node("n1"))])

    async def scenario() -> None:
        loop = LeaderLoop(store, "m1")
        loop.start()
        try:
            svc = replicated("web", 6)
            store.commit([actions.create(svc)])
            await until(lambda: len([t for t in store.tasks_of(service_id=svc.id)
                                     if t.status.state == pb.ASSIGNED]) == 6, "6 assigned")
            await until(lambda: not loop._dirty.is_set(), "the last pass to start")
            passes, built = loop.passes, len(builds)
            tasks = sorted(store.tasks_of(service_id=svc.id), key=lambda t: t.id)
            for n, state in enumerate((pb.ACCEPTED, pb.PREPARING, pb.READY), start=1):
                for t in tasks[:4]:   # 4 reports, one transaction each: a catch-up
                    new = pb.Task()
                    new.CopyFrom(store.get("task", t.id))
                    new.status.state = state
                    store.commit([actions.update(new)])
                await until(lambda: loop.catch_ups >= n, f"catch-up {n}")
            assert loop.passes == passes   # 12 reports: more than the log keeps
            other = replicated("other", 1)
            store.commit([actions.create(other)])
            await until(lambda: len(store.tasks_of(service_id=other.id)) == 1, "1 task")
            assert len(builds) == built   # advanced, never built again
        finally:
            await loop.stop()

    asyncio.run(scenario())
