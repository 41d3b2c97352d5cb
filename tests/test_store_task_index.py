"""The store's task index (raft/state.py `tasks_of`): by node and by service, kept by
every transaction and rebuilt from a snapshot; and the same read through raft.store.Store."""
from __future__ import annotations

import asyncio
import time

import pytest

from manager.controlapi.server import ControlServicer
from manager.logbroker import LogBroker
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb
from proto import store_pb2
from raft import actions
from raft.state import StoreState
from tests.test_store import store  # noqa: F401  (the fixture: a one-node raft store)


def apply(state: StoreState, *acts: store_pb2.StoreAction) -> None:
    txn = store_pb2.StoreTransaction(proposer="t", proposed_at=time.time())
    txn.actions.extend(acts)
    state.apply(txn)


def task(tid: str, service: str, node: str = "") -> pb.Task:
    return pb.Task(id=tid, service_id=service, node_id=node)


def ids(tasks) -> set[str]:
    return {t.id for t in tasks}


def moved(state: StoreState, tid: str, **fields: str) -> pb.Task:
    t = pb.Task()
    t.CopyFrom(state.get("task", tid))
    for name, value in fields.items():
        setattr(t, name, value)
    return t


def test_index_follows_creates_updates_and_removes() -> None:
    state = StoreState()
    apply(state, actions.create(task("t1", "s1")), actions.create(task("t2", "s1", "n1")),
          actions.create(task("t3", "s2", "n1")))
    assert ids(state.tasks_of(service_id="s1")) == {"t1", "t2"}
    assert ids(state.tasks_of(node_id="n1")) == {"t2", "t3"}
    assert ids(state.tasks_of(node_id="n1", service_id="s2")) == {"t3"}
    assert state.tasks_of(node_id="n2") == []

    view = state.snapshot()
    apply(state, actions.update(moved(state, "t1", node_id="n2")),
          actions.update(moved(state, "t2", node_id="n2")))
    assert ids(state.tasks_of(node_id="n1")) == {"t3"}
    assert ids(state.tasks_of(node_id="n2")) == {"t1", "t2"}
    # the objects are the stored ones, at their newest version
    assert all(t is state.get("task", t.id) for t in state.tasks_of(node_id="n2"))
    assert view.tasks["t1"].node_id == ""  # snapshots are not touched

    apply(state, actions.remove(state.get("task", "t2")), actions.remove(state.get("task", "t3")))
    assert ids(state.tasks_of(node_id="n2")) == {"t1"}
    assert state.tasks_of(node_id="n1") == [] and state.tasks_of(service_id="s2") == []


def test_a_refused_transaction_leaves_the_index_alone() -> None:
    state = StoreState()
    apply(state, actions.create(task("t1", "s1", "n1")))
    stale = moved(state, "t1", node_id="n2")
    stale.meta.version = 99
    with pytest.raises(Exception):
        apply(state, actions.update(moved(state, "t1", node_id="n3")),
              actions.update(stale, expected_version=99))
    assert ids(state.tasks_of(node_id="n1")) == {"t1"} and state.tasks_of(node_id="n3") == []


def test_index_is_rebuilt_from_a_snapshot_dump() -> None:
    state = StoreState()
    apply(state, actions.create(task("t1", "s1", "n1")), actions.create(task("t2", "s1")))
    loaded = StoreState.load(state.dump())
    assert ids(loaded.tasks_of(service_id="s1")) == {"t1", "t2"}
    assert ids(loaded.tasks_of(node_id="n1")) == {"t1"}


def test_asking_for_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="node ID or a service ID"):
        StoreState().tasks_of()


def test_store_reads_the_index(store) -> None:  # noqa: F811
    t = task(model.new_id(), "s1", "n1")
    store.commit([actions.create(t)])
    assert ids(store.tasks_of(node_id="n1")) == {t.id}
    assert ids(store.tasks_of(service_id="s1")) == {t.id}


def test_list_tasks_by_service_or_node_reads_the_index(store, tmp_path) -> None:  # noqa: F811
    control = ControlServicer(store, "m1", str(tmp_path), LogBroker("m1"), lambda: "")
    a1, a2, b1 = task("a1" * 12 + "x", "sa", "n1"), task("a2" * 12 + "x", "sa", "n2"), \
        task("b1" * 12 + "x", "sb", "n1")
    store.commit([actions.create(t) for t in (a1, a2, b1)])

    def listed(**filters) -> set[str]:
        request = cpb.ListTasksRequest(filters=cpb.ListFilters(**filters))
        return ids(asyncio.run(control.ListTasks(request, None)).tasks)

    assert listed(service_ids=["sa"]) == {a1.id, a2.id}
    assert listed(service_ids=["sa", "sb", "sa"]) == {a1.id, a2.id, b1.id}
    assert listed(node_ids=["n1"]) == {a1.id, b1.id}
    assert listed(service_ids=["sa"], node_ids=["n1"]) == {a1.id}
    assert listed(service_ids=["sa"], desired_states=[pb.RUNNING]) == set()
    assert listed(service_ids=[""]) == set() and listed(service_ids=["nope"]) == set()
    assert listed() == {a1.id, a2.id, b1.id}


def test_prepare_changes_nothing_until_commit() -> None:
    state = StoreState()
    apply(state, actions.create(task("t1", "s1", "n1")))
    view = state.snapshot()
    txn = store_pb2.StoreTransaction(proposer="t", proposed_at=time.time())
    txn.actions.extend([actions.update(moved(state, "t1", node_id="n2")),
                        actions.create(task("t2", "s1", "n2"))])
    prepared = state.prepare(txn)
    assert state.version == 1 and state.get("task", "t2") is None
    assert ids(state.tasks_of(node_id="n1")) == {"t1"}
    assert [e.version for e in prepared.events] == [2, 2]
    applied = state.commit(prepared)
    assert applied.version == state.version == 2 and applied.events is prepared.events
    assert ids(state.tasks_of(node_id="n2")) == {"t1", "t2"} and view.tasks["t1"].node_id == "n1"
    with pytest.raises(RuntimeError, match="prepared for version 2"):
        state.commit(prepared)  # the state moved on: a stale preparation is refused


def test_readers_are_not_locked_out_while_a_transaction_is_checked(store, monkeypatch) -> None:  # noqa: F811
    """The store's lock is taken only for the writes of an apply, not its checks."""
    seen: list[bool] = []
    prepare = store._state.prepare

    def watching(txn):
        seen.append(store._lock._is_owned())  # held by the raft thread, running this?
        return prepare(txn)

    monkeypatch.setattr(store._state, "prepare", watching)
    store.commit([actions.create(task(model.new_id(), "s1", "n1"))])
    assert seen == [False]
