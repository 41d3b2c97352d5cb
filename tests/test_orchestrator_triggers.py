"""Which store changes ask the leader for a reconcile pass (manager/orchestrator/triggers.py).

The property that makes skipping safe: on a converged cluster (a pass plans nothing),
after any transaction `needs_pass` calls unneeded, a pass still plans nothing and asks
for no other wake-up. Checked on random progress reports over replicated and global
services, with and without a rolling update under way."""
from __future__ import annotations

import itertools
import random

import pytest

from manager.orchestrator import reconcile
from manager.orchestrator.triggers import is_progress_report, needs_pass
from proto import model
from proto import objects_pb2 as pb
from proto import store_pb2, watch_pb2
from raft import actions
from raft.state import StoreState

NOW = 1_000_000.0


def apply(state: StoreState, acts: list) -> list:
    txn = store_pb2.StoreTransaction(proposer="t", proposed_at=NOW)
    txn.actions.extend(acts)
    return state.apply(txn).events


def node(i: int) -> pb.Node:
    n = pb.Node(id=f"node{i:02d}", role=pb.WORKER)
    n.spec.availability = pb.NodeSpec.ACTIVE
    n.status.state = pb.NodeStatus.READY
    n.description.hostname = f"h{i}"
    return n


def service(name: str, replicas: int = 0, update: int = pb.UpdateStatus.UNKNOWN) -> pb.Service:
    svc = pb.Service(id=f"svc-{name}", spec_version=1)
    svc.spec.annotations.name = name
    svc.spec.task.container.image = "busybox"
    if replicas:
        svc.spec.replicated.replicas = replicas
    else:
        getattr(svc.spec, "global").SetInParent()  # `global` is a Python keyword
    svc.update_status.state = update
    return svc


def under_way(state: StoreState):
    def check(service_id: str) -> bool:
        svc = state.get("service", service_id)
        return svc is None or svc.update_status.state in (
            pb.UpdateStatus.UPDATING, pb.UpdateStatus.PAUSED,
            pb.UpdateStatus.ROLLBACK_STARTED, pb.UpdateStatus.ROLLBACK_PAUSED)
    return check


def converge(state: StoreState) -> None:
    ids = itertools.count()
    for _ in range(10):
        plan = reconcile(state.snapshot(), NOW, new_id=lambda: f"task{next(ids):05d}")
        if not plan.actions:
            return
        apply(state, plan.actions)
    raise AssertionError("no convergence")


def report(task: pb.Task, state: int) -> store_pb2.StoreAction:
    new = pb.Task()
    new.CopyFrom(task)
    new.status.state = state
    new.status.message = model.state_name(state).lower()
    new.status.timestamp.CopyFrom(model.timestamp(NOW))
    return actions.update(new)


@pytest.mark.parametrize("seed", range(40))
def test_a_converged_cluster_stays_converged_after_unneeded_changes(seed) -> None:
    rng = random.Random(seed)
    state = StoreState()
    update = rng.choice([pb.UpdateStatus.UNKNOWN, pb.UpdateStatus.COMPLETED,
                         pb.UpdateStatus.UPDATING, pb.UpdateStatus.PAUSED])
    apply(state, [actions.create(node(i)) for i in range(rng.randint(1, 6))]
          + [actions.create(service("web", rng.randint(1, 12), update)),
             actions.create(service("agent"))])
    converge(state)
    skipped = 0
    for _ in range(30):
        tasks = list(state.snapshot().tasks.values())
        picked = rng.sample(tasks, rng.randint(1, len(tasks)))
        acts = []
        for t in picked:
            target = rng.choice([pb.ASSIGNED, pb.ACCEPTED, pb.PREPARING, pb.READY,
                                 pb.STARTING, pb.RUNNING, pb.RUNNING, pb.FAILED])
            if target >= t.status.state and target != t.status.state:
                acts.append(report(t, target))
        if not acts:
            continue
        before = reconcile(state.snapshot(), NOW)
        events = apply(state, acts)
        if needs_pass(events, under_way(state)):
            converge(state)
            continue
        skipped += 1
        assert not before.actions
        after = reconcile(state.snapshot(), NOW)
        assert after.actions == [] and after.wake_at == before.wake_at
    if update in (pb.UpdateStatus.UNKNOWN, pb.UpdateStatus.COMPLETED):
        assert skipped  # reports outside an update are the common case that is skipped


def event(new: pb.Task, old: pb.Task | None = None,
          action: int = watch_pb2.WatchEvent.UPDATE) -> watch_pb2.WatchEvent:
    ev = watch_pb2.WatchEvent(action=action)
    ev.object.task.CopyFrom(new)
    if old is not None:
        ev.old_object.task.CopyFrom(old)
    return ev


def task(state: int, **fields) -> pb.Task:
    values = dict(id="t1", service_id="s1", node_id="n1", slot=1, desired_state=pb.RUNNING,
                  spec_version=1)
    values.update(fields)
    t = pb.Task(**values)
    t.status.state = state
    return t


def never(service_id: str) -> bool:
    return False


def always(service_id: str) -> bool:
    return True


def test_progress_between_assigned_and_running_is_not_acted_on() -> None:
    assert not needs_pass([event(task(pb.ACCEPTED), task(pb.ASSIGNED)),
                           event(task(pb.RUNNING), task(pb.STARTING))], never)
    assert not needs_pass([event(task(pb.RUNNING), task(pb.RUNNING))], always)  # a new message
    assert not needs_pass([], never)


@pytest.mark.parametrize("new,old,under_way", [
    (task(pb.RUNNING), task(pb.STARTING), True),        # an update waits for RUNNING
    (task(pb.FAILED), task(pb.RUNNING), False),         # restart policy
    (task(pb.COMPLETE), task(pb.RUNNING), False),       # jobs, restart policy
    (task(pb.SHUTDOWN), task(pb.RUNNING), False),
    (task(pb.ASSIGNED), task(pb.PENDING), False),       # the orchestrator's own placement
    (task(pb.RUNNING, desired_state=pb.SHUTDOWN), task(pb.RUNNING), False),
    (task(pb.RUNNING, node_id="n2"), task(pb.RUNNING), False),
    (task(pb.RUNNING, spec_version=2), task(pb.RUNNING), False),
])
def test_changes_a_rule_reads_ask_for_a_pass(new, old, under_way) -> None:
    check = always if under_way else never
    assert needs_pass([event(task(pb.ACCEPTED), task(pb.ASSIGNED)), event(new, old)], check)


def test_other_kinds_and_actions_ask_for_a_pass() -> None:
    assert needs_pass([event(task(pb.RUNNING), None, watch_pb2.WatchEvent.CREATE)], never)
    assert needs_pass([event(task(pb.RUNNING), task(pb.RUNNING), watch_pb2.WatchEvent.REMOVE)],
                      never)
    ev = watch_pb2.WatchEvent(action=watch_pb2.WatchEvent.UPDATE)
    ev.object.node.id = "n1"
    ev.old_object.node.id = "n1"
    assert needs_pass([ev], never)
    changed_spec = task(pb.RUNNING)
    changed_spec.spec.container.image = "other"
    assert not is_progress_report(event(changed_spec, task(pb.STARTING)), never)
