"""Unit tests for manager/orchestrator/: reconcile passes applied to an in-memory store.

`Sim` applies every write as a transaction through the store's own pure state
machine (raft/state.py: a version per transaction, optimistic version checks,
unique names), plus a scripted agent that moves tasks through their observed states.
"""
from __future__ import annotations

import itertools
from collections import Counter
from typing import Any, Iterable, Mapping, Optional

import pytest

from proto import model
from proto import objects_pb2 as pb
from proto import store_pb2
from raft import actions
from raft.errors import Conflict
from raft.state import StoreState
from raft.view import StoreView
from manager.orchestrator import Plan, reconcile

A = store_pb2.StoreAction
US = pb.UpdateStatus


class Sim:
    """The store's own state machine (raft/state.py) fed transactions, and a scripted agent."""

    def __init__(self) -> None:
        self.state = StoreState()
        self._ids = itertools.count(1)
        self.now = 1000.0

    # ------------------------------------------------------------ store --
    @property
    def version(self) -> int:
        return self.state.version

    @property
    def tables(self) -> dict[str, Mapping[str, Any]]:
        """Read-only tables of every kind, as of now."""
        view = self.state.snapshot()
        return {kind: view.table(kind) for kind in model.KINDS}

    def commit(self, txn_actions: Iterable[store_pb2.StoreAction]) -> int:
        """Applies one transaction the way every replica does: the bytes raft carries,
        through StoreState.apply (a failed version or name check raises Conflict)."""
        txn = store_pb2.StoreTransaction(proposer="sim", proposed_at=self.now)
        txn.actions.extend(txn_actions)
        return self.state.apply(store_pb2.StoreTransaction.FromString(txn.SerializeToString())).version

    def put(self, obj):
        """Creates or replaces an object in a transaction of its own (test setup, like a
        control API write). A fresh object (no version) replaces the stored one whatever its
        version; a copy of a stored object must still be current."""
        current = self.state.get(model.kind_of(obj), obj.id)
        if current is None:
            self.commit([actions.create(obj)])
        else:
            self.commit([actions.update(obj, obj.meta.version or current.meta.version)])
        return self.state.get(model.kind_of(obj), obj.id)

    def delete(self, kind: str, oid: str) -> None:
        self.commit([actions.remove(self.state.get(kind, oid), expected_version=0)])

    def view(self) -> StoreView:
        return self.state.snapshot()

    def apply(self, plan: Plan) -> None:
        """Commits a plan as one transaction, after checking what the store does not:
        one action per object and no update that changes nothing."""
        seen = set()
        for action in plan.actions:
            obj = model.unwrap(action.object)
            kind = model.kind_of(obj)
            assert (kind, obj.id) not in seen, f"two actions on {kind} {obj.id}"
            seen.add((kind, obj.id))
            if action.kind == A.UPDATE:
                assert self.state.get(kind, obj.id) != obj, "no-op update"
        if plan.actions:
            self.commit(plan.actions)

    def reconcile(self) -> Plan:
        return reconcile(self.view(), self.now, new_id=lambda: f"t{next(self._ids):04d}")

    def step(self) -> Plan:
        plan = self.reconcile()
        self.apply(plan)
        return plan

    def settle(self, agent: bool = True, rounds: int = 30) -> Plan:
        """Reconciles (and lets the agent act) until nothing changes."""
        for _ in range(rounds):
            plan = self.step()
            acted = self.agent() if agent else 0
            if not plan.actions and not acted:
                return plan
        raise AssertionError("did not converge")

    # ------------------------------------------------------------ agent --
    def set_state(self, task_id: str, state: int, exit_code: int = 0) -> None:
        """A report from the agent, stored as the dispatcher stores it."""
        t = pb.Task()
        t.CopyFrom(self.tables["task"][task_id])
        report = pb.TaskStatus(state=state)
        report.timestamp.CopyFrom(model.timestamp(self.now))
        report.container_status.exit_code = exit_code
        t.status.CopyFrom(model.merged_status(t.status, report))
        self.put(t)

    def agent(self) -> int:
        """Runs assigned tasks on ready nodes; stops tasks no longer wanted."""
        acted = 0
        for t in list(self.tables["task"].values()):
            node = self.tables["node"].get(t.node_id)
            if node is None or node.status.state != pb.NodeStatus.READY:
                continue
            if t.desired_state == pb.RUNNING and pb.ASSIGNED <= t.status.state < pb.RUNNING:
                self.set_state(t.id, pb.RUNNING)
                acted += 1
            elif t.desired_state > pb.RUNNING and t.status.state <= pb.RUNNING:
                self.set_state(t.id, pb.SHUTDOWN)
                acted += 1
        return acted

    # ---------------------------------------------------------- queries --
    def tasks(self, service: Optional[str] = None) -> list[pb.Task]:
        return sorted((t for t in self.tables["task"].values()
                       if service is None or t.service_id == service),
                      key=lambda t: (t.slot, t.node_id, t.id))

    def live(self, service: Optional[str] = None) -> list[pb.Task]:
        return [t for t in self.tasks(service) if t.desired_state <= pb.RUNNING]

    def running(self, service: Optional[str] = None) -> list[pb.Task]:
        return [t for t in self.live(service) if t.status.state == pb.RUNNING]

    def service(self, sid: str) -> pb.Service:
        return self.tables["service"][sid]

    def update_service(self, sid: str, **kw) -> pb.Service:
        """Changes the task spec the way the control API does."""
        s = pb.Service()
        s.CopyFrom(self.service(sid))
        s.previous_spec.CopyFrom(s.spec)
        for k, v in kw.items():
            if k == "image":
                s.spec.task.container.image = v
            elif k == "replicas":
                s.spec.replicated.replicas = v
                return self.put(s)
        s.spec_version += 1
        s.update_status.Clear()
        s.update_status.state = US.UPDATING
        s.update_status.message = "update in progress"
        return self.put(s)


def mk_node(nid: str, *, state: int = pb.NodeStatus.READY, availability: int = pb.NodeSpec.ACTIVE,
            labels: Optional[dict] = None) -> pb.Node:
    n = pb.Node(id=nid)
    n.description.hostname = nid
    n.description.platform.os = "linux"
    n.status.state = state
    n.spec.availability = availability
    n.spec.annotations.labels.update(labels or {})
    return n


def mk_service(sid: str = "web", replicas: Optional[int] = 3, *, image: str = "busybox:1",
               condition: int = pb.RestartPolicy.ANY, delay: Optional[float] = None,
               max_attempts: int = 0, window: float = 0, parallelism: int = 1,
               update_delay: float = 0, order: int = pb.UpdateConfig.STOP_FIRST,
               failure_action: int = pb.UpdateConfig.PAUSE, monitor: float = 0,
               max_failure_ratio: float = 0, constraints: Iterable[str] = ()) -> pb.Service:
    s = pb.Service(id=sid, spec_version=1)
    s.spec.annotations.name = sid
    if replicas is None:
        s.spec.SetInParent()
        s.spec.__getattribute__("global").SetInParent()
    else:
        s.spec.replicated.replicas = replicas
    s.spec.task.container.image = image
    r = s.spec.task.restart
    r.condition = condition
    if delay is not None:
        r.has_delay = True
        r.delay.CopyFrom(model.duration(delay))
    r.max_attempts = max_attempts
    r.window.CopyFrom(model.duration(window))
    s.spec.task.placement.constraints.extend(constraints)
    u = s.spec.update
    u.parallelism = parallelism
    u.delay.CopyFrom(model.duration(update_delay))
    u.order = order
    u.failure_action = failure_action
    u.monitor.CopyFrom(model.duration(monitor))
    u.max_failure_ratio = max_failure_ratio
    s.spec.rollback.parallelism = 0
    return s


@pytest.fixture
def sim() -> Sim:
    s = Sim()
    for i in range(3):
        s.put(mk_node(f"n{i}"))
    return s


def kinds(plan: Plan) -> Counter:
    return Counter(A.Kind.Name(a.kind) for a in plan.actions)


# ---------------------------------------------------------------- replicated --

def test_create_service_makes_slots_and_assigns(sim: Sim):
    sim.put(mk_service("web", 3))
    plan = sim.step()
    assert kinds(plan) == {"CREATE": 3}
    tasks = sim.tasks("web")
    assert [t.slot for t in tasks] == [1, 2, 3]
    assert [t.annotations.name for t in tasks] == ["web.1", "web.2", "web.3"]
    for t in tasks:
        assert t.service_name == "web" and t.spec_version == 1
        assert t.desired_state == pb.RUNNING and t.status.state == pb.ASSIGNED
        assert t.status.message == "scheduler assigned task to node"
        assert t.spec == sim.service("web").spec.task
    assert sorted(t.node_id for t in tasks) == ["n0", "n1", "n2"]


def test_tasks_carry_the_stack_namespace_of_their_service(sim: Sim):
    # the agent puts it on the task containers, as Docker does (issue 12)
    svc = mk_service("shop_web", 2)
    svc.spec.annotations.labels.update({"com.docker.stack.namespace": "shop", "other": "x"})
    sim.put(svc)
    sim.put(mk_service("plain", 1))
    sim.step()
    assert all(dict(t.annotations.labels) == {"com.docker.stack.namespace": "shop"}
               for t in sim.tasks("shop_web"))
    assert not sim.tasks("plain")[0].annotations.labels


def test_converged_view_gives_empty_plan(sim: Sim):
    sim.put(mk_service("web", 3))
    sim.settle()
    assert len(sim.running("web")) == 3
    plan = sim.reconcile()
    assert plan.actions == [] and plan.wake_at is None


def test_ten_replicas_over_five_nodes(sim: Sim):
    for i in range(3, 5):
        sim.put(mk_node(f"n{i}"))
    sim.put(mk_service("web", 10))
    sim.step()
    assert set(Counter(t.node_id for t in sim.tasks("web")).values()) == {2}


def test_scale_up_and_down(sim: Sim):
    sim.put(mk_service("web", 2))
    sim.settle()
    sim.update_service("web", replicas=5)
    plan = sim.step()
    assert kinds(plan) == {"CREATE": 3}
    assert [t.slot for t in sim.live("web")] == [1, 2, 3, 4, 5]
    sim.settle()
    sim.update_service("web", replicas=2)
    plan = sim.step()
    assert kinds(plan) == {"UPDATE": 3}
    removed = [t for t in sim.tasks("web") if t.desired_state == pb.REMOVE]
    assert [t.slot for t in removed] == [3, 4, 5]
    sim.settle()
    assert [t.slot for t in sim.tasks("web")] == [1, 2]


def test_pending_reason_written_once_then_placed(sim: Sim):
    sim.put(mk_service("web", 2, constraints=["node.labels.zone==a"]))
    sim.step()
    for t in sim.tasks("web"):
        assert t.status.state == pb.PENDING and not t.node_id
        assert t.scheduling_message == (
            "no suitable node (scheduling constraints not satisfied on 3 nodes)")
    assert sim.reconcile().actions == []
    sim.put(mk_node("n9", labels={"zone": "a"}))
    sim.step()
    assert {t.node_id for t in sim.tasks("web")} == {"n9"}
    assert all(t.status.state == pb.ASSIGNED and not t.scheduling_message
               for t in sim.tasks("web"))


def test_new_message_when_reason_changes(sim: Sim):
    sim.put(mk_service("web", 1, constraints=["node.labels.zone==a"]))
    sim.step()
    sim.put(mk_node("n5", availability=pb.NodeSpec.PAUSE, labels={"zone": "a"}))
    plan = sim.step()
    assert kinds(plan) == {"UPDATE": 1}
    assert "1 node not available for new tasks" in sim.tasks("web")[0].scheduling_message


def test_drained_and_paused_nodes(sim: Sim):
    sim.put(mk_service("web", 3))
    sim.settle()
    on_n0 = [t for t in sim.live("web") if t.node_id == "n0"]
    n0 = mk_node("n0", availability=pb.NodeSpec.DRAIN)
    sim.put(n0)
    plan = sim.step()
    assert kinds(plan) == {"CREATE": 1, "UPDATE": 1}
    old = sim.tables["task"][on_n0[0].id]
    assert old.desired_state == pb.SHUTDOWN
    new = [t for t in sim.live("web") if t.slot == old.slot]
    assert len(new) == 1 and new[0].node_id in ("n1", "n2")
    sim.settle()
    sim.put(mk_node("n1", availability=pb.NodeSpec.PAUSE))
    assert sim.reconcile().actions == []  # pause keeps tasks where they are
    sim.update_service("web", replicas=4)
    sim.step()
    assert sim.live("web")[-1].node_id == "n2"


def test_node_down_moves_tasks_at_once(sim: Sim):
    sim.put(mk_service("web", 3, delay=30))
    sim.settle()
    victim = [t for t in sim.live("web") if t.node_id == "n1"][0]
    sim.put(mk_node("n1", state=pb.NodeStatus.DOWN))
    plan = sim.step()
    assert plan.wake_at is None
    old = sim.tables["task"][victim.id]
    assert old.desired_state == pb.SHUTDOWN and old.status.state == pb.RUNNING
    repl = [t for t in sim.live("web") if t.slot == victim.slot]
    assert repl[0].node_id in ("n0", "n2") and list(repl[0].restarts) == []
    sim.settle()
    assert len(sim.running("web")) == 3
    # a removed node's tasks move too
    sim.delete("node", "n2")
    sim.step()
    assert all(t.node_id == "n0" for t in sim.live("web"))


def fail(sim: Sim, task: pb.Task, state: int = pb.FAILED, exit_code: int = 1) -> None:
    sim.set_state(task.id, state, exit_code)


def test_restart_after_delay_with_wake_at(sim: Sim):
    sim.put(mk_service("web", 1))
    sim.settle()
    t1 = sim.live("web")[0]
    fail(sim, t1)
    failed_at = sim.now
    sim.now += 1
    plan = sim.reconcile()
    assert plan.actions == [] and plan.wake_at == failed_at + 5
    sim.now = failed_at + 5
    plan = sim.step()
    assert kinds(plan) == {"CREATE": 1, "UPDATE": 1}
    assert sim.tables["task"][t1.id].desired_state == pb.SHUTDOWN
    t2 = sim.live("web")[0]
    assert t2.slot == 1 and t2.id != t1.id and list(t2.restarts) == [sim.now]
    assert t2.status.state == pb.ASSIGNED


def test_externally_stopped_task_is_restarted(sim: Sim):
    sim.put(mk_service("web", 1, delay=0))
    sim.settle()
    fail(sim, sim.live("web")[0], pb.SHUTDOWN, 0)
    sim.step()
    assert len(sim.live("web")) == 1 and sim.live("web")[0].status.state == pb.ASSIGNED


@pytest.mark.parametrize("condition,state,exit_code,restarted", [
    (pb.RestartPolicy.ANY, pb.COMPLETE, 0, True),
    (pb.RestartPolicy.ANY, pb.FAILED, 1, True),
    (pb.RestartPolicy.ON_FAILURE, pb.COMPLETE, 0, False),
    (pb.RestartPolicy.ON_FAILURE, pb.FAILED, 3, True),
    (pb.RestartPolicy.ON_FAILURE, pb.REJECTED, 0, True),
    (pb.RestartPolicy.NONE, pb.FAILED, 1, False),
    (pb.RestartPolicy.NONE, pb.COMPLETE, 0, False),
])
def test_restart_conditions(sim: Sim, condition, state, exit_code, restarted):
    sim.put(mk_service("job", 1, condition=condition, delay=0))
    sim.settle()
    t1 = sim.live("job")[0]
    fail(sim, t1, state, exit_code)
    sim.step()
    assert sim.tables["task"][t1.id].desired_state == pb.SHUTDOWN
    assert len(sim.live("job")) == (1 if restarted else 0)
    if not restarted:
        plan = sim.reconcile()
        assert plan.actions == [] and plan.wake_at is None
        # a new spec runs the slot again
        sim.update_service("job", image="busybox:2")
        sim.step()
        assert len(sim.live("job")) == 1


def test_max_attempts(sim: Sim):
    sim.put(mk_service("web", 1, max_attempts=2, delay=0))
    sim.settle()
    for attempt in range(3):
        sim.now += 10
        fail(sim, sim.live("web")[0])
        sim.now += 1
        sim.settle()
        assert len(sim.live("web")) == (1 if attempt < 2 else 0)
    assert len(sim.tasks("web")) == 3


def test_window_forgets_old_restarts(sim: Sim):
    sim.put(mk_service("web", 1, max_attempts=1, window=60, delay=0))
    sim.settle()
    fail(sim, sim.live("web")[0])
    sim.settle()
    assert len(sim.live("web")) == 1
    sim.now += 100  # the first restart is out of the window now
    fail(sim, sim.live("web")[0])
    sim.settle()
    t = sim.live("web")
    assert len(t) == 1 and list(t[0].restarts) == [sim.now]
    sim.now += 5
    fail(sim, t[0])
    sim.settle()
    assert sim.live("web") == []


def test_failed_task_waiting_for_delay_occupies_slot(sim: Sim):
    sim.put(mk_service("web", 2, delay=10))
    sim.settle()
    fail(sim, sim.live("web")[0])
    sim.now += 2
    plan = sim.reconcile()
    assert plan.actions == [] and plan.wake_at == sim.now + 8


# --------------------------------------------------------------------- global --

def test_global_one_task_per_node_and_join(sim: Sim):
    sim.put(mk_service("mon", None))
    sim.settle()
    tasks = sim.live("mon")
    assert sorted(t.node_id for t in tasks) == ["n0", "n1", "n2"]
    assert all(t.slot == 0 and t.annotations.name == f"mon.{t.node_id}" for t in tasks)
    sim.put(mk_node("n3"))
    plan = sim.step()
    assert kinds(plan) == {"CREATE": 1}
    assert sorted(t.node_id for t in sim.live("mon")) == ["n0", "n1", "n2", "n3"]
    sim.settle()
    assert sim.reconcile().actions == []


def test_global_drain_down_and_back(sim: Sim):
    sim.put(mk_service("mon", None))
    sim.settle()
    sim.put(mk_node("n1", availability=pb.NodeSpec.DRAIN))
    plan = sim.step()
    assert kinds(plan) == {"UPDATE": 1}
    assert sorted(t.node_id for t in sim.live("mon")) == ["n0", "n2"]
    sim.settle()
    sim.put(mk_node("n1"))
    sim.step()
    assert sorted(t.node_id for t in sim.live("mon")) == ["n0", "n1", "n2"]
    sim.settle()
    sim.put(mk_node("n2", state=pb.NodeStatus.DOWN))
    sim.step()
    assert sorted(t.node_id for t in sim.live("mon")) == ["n0", "n1"]
    sim.delete("node", "n2")
    sim.settle()
    assert {t.node_id for t in sim.tasks("mon")} == {"n0", "n1"}


def test_global_paused_and_unready_nodes_get_no_new_task(sim: Sim):
    sim.put(mk_node("n1", availability=pb.NodeSpec.PAUSE))
    sim.put(mk_node("n2", state=pb.NodeStatus.UNKNOWN))
    sim.put(mk_service("mon", None))
    sim.settle()
    assert [t.node_id for t in sim.tasks("mon")] == ["n0"]


def test_global_constraints(sim: Sim):
    sim.put(mk_node("n1", labels={"role": "edge"}))
    sim.put(mk_service("edge", None, constraints=["node.labels.role==edge"]))
    sim.settle()
    assert [t.node_id for t in sim.live("edge")] == ["n1"]
    sim.put(mk_node("n1"))
    sim.step()
    assert sim.live("edge") == []


def test_global_restart_and_finish(sim: Sim):
    sim.put(mk_service("mon", None, condition=pb.RestartPolicy.ON_FAILURE, delay=0))
    sim.settle()
    on_n0 = [t for t in sim.live("mon") if t.node_id == "n0"][0]
    fail(sim, on_n0)
    sim.step()
    again = [t for t in sim.live("mon") if t.node_id == "n0"]
    assert len(again) == 1 and again[0].id != on_n0.id
    sim.settle()
    fail(sim, again[0], pb.COMPLETE, 0)
    sim.settle()
    assert sorted(t.node_id for t in sim.live("mon")) == ["n1", "n2"]
    assert sim.reconcile().actions == []


# ---------------------------------------------------------------------- update --

def images(sim: Sim, sid: str = "web") -> Counter:
    return Counter(t.spec.container.image for t in sim.live(sid))


def test_rolling_update_one_at_a_time(sim: Sim):
    sim.put(mk_service("web", 3))
    sim.settle()
    sim.update_service("web", image="busybox:2")
    plan = sim.step()
    assert kinds(plan) == {"CREATE": 1, "UPDATE": 1}
    assert images(sim) == {"busybox:1": 2, "busybox:2": 1}
    # stop-first: the new task is held at READY while the old one still runs
    new = [t for t in sim.live("web") if t.spec.container.image == "busybox:2"][0]
    old = [t for t in sim.tables["task"].values()
           if t.slot == new.slot and t.id != new.id][0]
    assert new.desired_state == pb.READY and old.desired_state == pb.SHUTDOWN
    assert sim.reconcile().actions == []  # waits for the old task to stop
    sim.agent()
    seen = []
    for _ in range(20):
        sim.step()
        sim.agent()
        seen.append(images(sim)["busybox:2"])
        if sim.service("web").update_status.state == US.COMPLETED:
            break
    # one slot at a time: the count of new tasks never jumps by more than one
    assert all(b - a in (0, 1) for a, b in zip([1] + seen, seen)) and seen[-1] == 3
    st = sim.service("web").update_status
    assert st.state == US.COMPLETED and st.message == "update completed"
    assert images(sim) == {"busybox:2": 3}
    assert [t.slot for t in sim.live("web")] == [1, 2, 3]
    assert sim.reconcile().actions == []


@pytest.mark.parametrize("parallelism,first_batch", [(2, 2), (0, 4)])
def test_update_parallelism(sim: Sim, parallelism, first_batch):
    sim.put(mk_service("web", 4, parallelism=parallelism))
    sim.settle()
    sim.update_service("web", image="busybox:2")
    sim.step()
    assert images(sim)["busybox:2"] == first_batch
    sim.settle()
    assert images(sim) == {"busybox:2": 4}
    assert sim.service("web").update_status.state == US.COMPLETED


def test_update_delay_between_batches(sim: Sim):
    sim.put(mk_service("web", 2, update_delay=10))
    sim.settle()
    sim.update_service("web", image="busybox:2")
    sim.step()
    sim.agent()   # the old task stops
    sim.step()    # the new one may run now
    sim.agent()
    started = sim.now
    plan = sim.reconcile()
    assert plan.actions == [] and plan.wake_at == started + 10
    sim.now = started + 10
    sim.step()
    assert images(sim) == {"busybox:2": 2}


def test_start_first(sim: Sim):
    sim.put(mk_service("web", 1, order=pb.UpdateConfig.START_FIRST))
    sim.settle()
    old = sim.live("web")[0]
    sim.update_service("web", image="busybox:2")
    plan = sim.step()
    assert kinds(plan) == {"CREATE": 1}
    assert len(sim.live("web")) == 2
    sim.agent()
    sim.step()
    assert sim.tables["task"][old.id].desired_state == pb.SHUTDOWN
    sim.settle()
    assert images(sim) == {"busybox:2": 1}
    assert sim.service("web").update_status.state == US.COMPLETED


def test_update_pauses_on_failure(sim: Sim):
    sim.put(mk_service("web", 3, delay=0))
    sim.settle()
    sim.update_service("web", image="broken")
    sim.step()
    new = [t for t in sim.live("web") if t.spec.container.image == "broken"][0]
    fail(sim, new)
    sim.step()
    st = sim.service("web").update_status
    assert st.state == US.PAUSED
    assert st.message == (f"update paused due to failure or early termination of task "
                          f"{new.id}: exit code 1")
    sim.settle()
    assert images(sim) == {"busybox:1": 2, "broken": 1}


def test_update_rolls_back_on_failure(sim: Sim):
    sim.put(mk_service("web", 2, delay=0, failure_action=pb.UpdateConfig.ROLLBACK))
    sim.settle()
    sim.update_service("web", image="broken")
    sim.step()
    new = [t for t in sim.live("web") if t.spec.container.image == "broken"][0]
    fail(sim, new)
    sim.step()
    svc = sim.service("web")
    assert svc.update_status.state == US.ROLLBACK_STARTED
    assert svc.spec.task.container.image == "busybox:1" and svc.spec_version == 3
    assert svc.previous_spec.task.container.image == "broken"
    sim.settle()
    assert images(sim) == {"busybox:1": 2}
    st = sim.service("web").update_status
    assert st.state == US.ROLLBACK_COMPLETED and st.message == "rollback completed"


def fail_with(sim: Sim, task: pb.Task, state: int, err: str) -> None:
    t = pb.Task()
    t.CopyFrom(sim.tables["task"][task.id])
    report = pb.TaskStatus(state=state, err=err)
    report.timestamp.CopyFrom(model.timestamp(sim.now))
    t.status.CopyFrom(model.merged_status(t.status, report))
    sim.put(t)


def new_tasks(sim: Sim, image: str, sid: str = "web") -> list[pb.Task]:
    return [t for t in sim.tasks(sid) if t.spec.container.image == image]


def test_unhealthy_new_task_rolls_back_after_one_slot(sim: Sim):
    """parallelism 1: the first new task never becomes healthy; only its slot was touched."""
    sim.put(mk_service("web", 4, delay=0, failure_action=pb.UpdateConfig.ROLLBACK, monitor=3))
    sim.settle()
    sim.update_service("web", image="sick")
    sim.step()
    sim.agent()          # the old task of slot 1 stops
    sim.step()           # its replacement may start
    (new,) = new_tasks(sim, "sick")
    sim.set_state(new.id, pb.STARTING)
    assert sim.reconcile().actions == []    # the next batch waits for RUNNING
    fail_with(sim, new, pb.FAILED, "unhealthy container")
    sim.step()
    svc = sim.service("web")
    assert svc.update_status.state == US.ROLLBACK_STARTED
    assert svc.update_status.message == ("update rolled back due to failure or early "
                                         f"termination of task {new.id}: unhealthy container")
    assert svc.spec.task.container.image == "busybox:1"
    sim.settle()
    assert len(new_tasks(sim, "sick")) == 1
    assert images(sim) == {"busybox:1": 4}
    assert len(sim.running("web")) == 4
    # the rollback's own monitor period (0 here) has passed: completed
    assert sim.service("web").update_status.state == US.ROLLBACK_COMPLETED


def test_failures_are_measured_against_tasks_updated_so_far(sim: Sim):
    """1 failure of 4 slots is 0.25, but of the 1 slot updated so far it is 1.0 > 0.3."""
    sim.put(mk_service("web", 4, delay=0, max_failure_ratio=0.3))
    sim.settle()
    sim.update_service("web", image="broken")
    sim.step()
    (new,) = new_tasks(sim, "broken")
    fail_with(sim, new, pb.REJECTED, "no such image")
    sim.step()
    st = sim.service("web").update_status
    assert st.state == US.PAUSED and st.message.endswith(f"task {new.id}: no such image")


def test_failure_ratio_tolerates_few_failures(sim: Sim):
    sim.put(mk_service("web", 4, delay=0, max_failure_ratio=0.5, parallelism=0))
    sim.settle()
    sim.update_service("web", image="busybox:2")
    sim.step()
    sim.agent()
    sim.step()
    first = new_tasks(sim, "busybox:2")[0]
    fail_with(sim, first, pb.FAILED, "oops")   # 1 of 4 updated slots: tolerated
    sim.settle()
    assert sim.service("web").update_status.state == US.COMPLETED
    assert images(sim) == {"busybox:2": 4}


def test_exit_within_monitor_counts_and_completion_waits_for_monitor(sim: Sim):
    sim.put(mk_service("web", 1, delay=0, monitor=5))
    sim.settle()
    sim.update_service("web", image="busybox:2")
    sim.settle()
    (new,) = new_tasks(sim, "busybox:2")
    plan = sim.reconcile()
    assert sim.service("web").update_status.state == US.UPDATING
    assert plan.actions == [] and plan.wake_at == sim.now + 5
    sim.now += 2
    fail(sim, new, pb.COMPLETE, 0)     # exits 0 two seconds after it started
    sim.step()
    st = sim.service("web").update_status
    assert st.state == US.PAUSED
    assert st.message == ("update paused due to failure or early termination of task "
                          f"{new.id}: exit code 0")


def test_a_failure_after_the_tasks_own_monitor_period_does_not_fail_the_update(sim: Sim):
    """Slot 1's new task runs 8 s (monitor 5 s) and then fails while the update waits its
    10 s delay: the restart policy's business; the update goes on and completes."""
    sim.put(mk_service("web", 2, delay=0, monitor=5, update_delay=10))
    sim.settle()
    sim.update_service("web", image="busybox:2")
    sim.step()
    sim.agent()
    sim.step()
    sim.agent()
    (first,) = [t for t in new_tasks(sim, "busybox:2") if t.status.state == pb.RUNNING]
    assert sim.tables["task"][first.id].status.running_since == model.timestamp(sim.now)
    sim.now += 8
    fail_with(sim, first, pb.FAILED, "exit code 137")
    sim.step()
    assert sim.service("web").update_status.state == US.UPDATING
    for _ in range(10):      # restart delay, update delay, monitor: a minute at most
        sim.now += 5
        sim.settle()
        state = sim.service("web").update_status.state
        assert state in (US.UPDATING, US.COMPLETED), sim.service("web").update_status
        if state == US.COMPLETED:
            break
    assert sim.service("web").update_status.state == US.COMPLETED
    assert len([t for t in sim.running("web") if t.spec.container.image == "busybox:2"]) == 2


def test_a_failure_within_the_monitor_period_fails_the_update_even_in_a_later_batch(sim: Sim):
    """The same with a failure 3 s after its start (monitor 5 s): the update pauses."""
    sim.put(mk_service("web", 2, delay=0, monitor=5, update_delay=10))
    sim.settle()
    sim.update_service("web", image="busybox:2")
    sim.step()
    sim.agent()
    sim.step()
    sim.agent()
    (first,) = [t for t in new_tasks(sim, "busybox:2") if t.status.state == pb.RUNNING]
    sim.now += 3
    fail_with(sim, first, pb.FAILED, "exit code 137")
    sim.step()
    st = sim.service("web").update_status
    assert st.state == US.PAUSED and st.message.endswith(f"{first.id}: exit code 137")


def test_update_completes_after_monitor_period(sim: Sim):
    sim.put(mk_service("web", 2, delay=0, monitor=5))
    sim.settle()
    sim.update_service("web", image="busybox:2")
    sim.settle()
    assert sim.service("web").update_status.state == US.UPDATING
    sim.now += 5
    sim.step()
    st = sim.service("web").update_status
    assert st.state == US.COMPLETED and st.message == "update completed"


def test_failed_rollback_pauses_and_is_never_rolled_back(sim: Sim):
    svc = mk_service("web", 2, delay=0, failure_action=pb.UpdateConfig.ROLLBACK)
    svc.spec.rollback.failure_action = pb.UpdateConfig.ROLLBACK   # ignored during a rollback
    sim.put(svc)
    sim.settle()
    sim.update_service("web", image="broken")
    sim.step()
    (new,) = new_tasks(sim, "broken")
    fail(sim, new)
    sim.step()
    assert sim.service("web").update_status.state == US.ROLLBACK_STARTED
    rolled = [t for t in sim.live("web") if t.spec_version == sim.service("web").spec_version]
    assert rolled
    fail_with(sim, rolled[0], pb.FAILED, "disk full")
    sim.step()
    after = sim.service("web")
    assert after.update_status.state == US.ROLLBACK_PAUSED
    assert after.update_status.message == ("rollback paused due to failure or early "
                                           f"termination of task {rolled[0].id}: disk full")
    assert after.spec.task.container.image == "busybox:1"
    assert after.previous_spec.task.container.image == "broken"


def test_paused_update_stays_paused_until_a_new_spec(sim: Sim):
    sim.put(mk_service("web", 3, delay=0))
    sim.settle()
    sim.update_service("web", image="broken")
    sim.step()
    (new,) = new_tasks(sim, "broken")
    fail(sim, new)
    sim.step()
    assert sim.service("web").update_status.state == US.PAUSED
    sim.now += 100
    sim.settle()
    assert sim.service("web").update_status.state == US.PAUSED
    assert images(sim)["busybox:1"] == 2
    sim.update_service("web", image="busybox:3")   # a new spec restarts the update
    sim.settle()
    assert sim.service("web").update_status.state == US.COMPLETED
    assert images(sim) == {"busybox:3": 3}


def test_new_spec_during_update_replaces_it(sim: Sim):
    sim.put(mk_service("web", 3, delay=0))
    sim.settle()
    sim.update_service("web", image="busybox:2")
    sim.step()
    sim.agent()
    sim.step()
    sim.update_service("web", image="busybox:3")
    sim.settle()
    assert images(sim) == {"busybox:3": 3}
    assert sim.service("web").update_status.state == US.COMPLETED


def test_update_status_without_work_completes(sim: Sim):
    sim.put(mk_service("web", 0))
    sim.update_service("web", image="busybox:2")
    sim.step()
    assert sim.service("web").update_status.state == US.COMPLETED


def test_dirty_tasks_start_an_update_by_themselves(sim: Sim):
    sim.put(mk_service("web", 2))
    sim.settle()
    s = pb.Service()
    s.CopyFrom(sim.service("web"))
    s.spec.task.container.image = "busybox:2"
    s.spec_version = 2
    sim.put(s)
    sim.step()
    assert sim.service("web").update_status.state == US.UPDATING
    sim.settle()
    assert sim.service("web").update_status.state == US.COMPLETED


def test_global_rolling_update(sim: Sim):
    sim.put(mk_service("mon", None))
    sim.settle()
    sim.update_service("mon", image="busybox:2")
    sim.step()
    assert images(sim, "mon") == {"busybox:1": 2, "busybox:2": 1}
    sim.settle()
    assert images(sim, "mon") == {"busybox:2": 3}
    assert sim.service("mon").update_status.state == US.COMPLETED


# ------------------------------------------------------------- removal, reaper --

def test_service_removed(sim: Sim):
    sim.put(mk_service("web", 2))
    sim.settle()
    sim.step()
    ids = [t.id for t in sim.tasks("web")]
    sim.delete("service", "web")
    plan = sim.step()
    assert kinds(plan) == {"UPDATE": 2}
    assert all(sim.tables["task"][i].desired_state == pb.REMOVE for i in ids)
    sim.settle()
    assert sim.tasks("web") == []


def test_unassigned_tasks_of_removed_service_go_at_once(sim: Sim):
    sim.put(mk_service("web", 2, constraints=["node.id==nowhere"]))
    sim.step()
    sim.delete("service", "web")
    plan = sim.step()
    assert kinds(plan) == {"REMOVE": 2}


def history(sim: Sim, n: int, slot: int = 1, node: str = "n0",
            service: Optional[pb.Service] = None) -> None:
    """Puts `n` ended tasks in a slot, oldest first, made from `service`'s spec."""
    for i in range(n):
        t = pb.Task(id=f"h{slot}-{i:02d}", service_id="web", slot=slot, node_id=node,
                    desired_state=pb.SHUTDOWN)
        if service is not None:
            t.spec.CopyFrom(service.spec.task)
            t.spec_version = service.spec_version
        t.status.state = pb.FAILED
        sim.now += 1
        sim.put(t)


@pytest.mark.parametrize("limit,kept", [(0, 5), (2, 2), (-1, 8)])
def test_history_limit(sim: Sim, limit, kept):
    c = pb.Cluster(id="c")
    c.spec.orchestration.task_history_retention_limit = limit
    sim.put(c)
    history(sim, 7)
    sim.now += 1
    sim.put(mk_service("web", 1, delay=0))
    sim.settle()
    slot1 = sim.tasks("web")
    assert len(slot1) == kept
    assert len(sim.live("web")) == 1
    assert sim.reconcile().actions == []


def test_history_limit_default_without_cluster_and_newest_kept(sim: Sim):
    svc = mk_service("web", 1, condition=pb.RestartPolicy.NONE)
    history(sim, 7, slot=1, service=svc)
    sim.put(svc)
    plan = sim.step()
    assert kinds(plan) == {"REMOVE": 2}
    left = sorted(t.id for t in sim.tasks("web"))
    assert left == [f"h1-{i:02d}" for i in range(2, 7)]  # the newest stays; slot is finished


def test_history_with_running_old_task_not_deleted(sim: Sim):
    svc = mk_service("web", 1, condition=pb.RestartPolicy.NONE)
    history(sim, 6, service=svc)
    t = sim.tables["task"]["h1-00"]
    t2 = pb.Task()
    t2.CopyFrom(t)
    t2.status.state = pb.RUNNING  # asked to stop, has not yet
    sim.put(t2)
    sim.put(svc)
    plan = sim.step()
    assert [model.unwrap(a.object).id for a in plan.actions] == ["h1-01"]


def test_plans_never_touch_an_object_twice_and_use_current_versions(sim: Sim):
    # Sim.apply asserts both; drive a busy scenario through it.
    sim.put(mk_service("web", 6, delay=0, parallelism=2))
    sim.put(mk_service("mon", None, delay=0))
    sim.settle()
    sim.update_service("web", image="busybox:2")
    sim.put(mk_node("n1", state=pb.NodeStatus.DOWN))
    fail(sim, sim.live("web")[0])
    sim.update_service("web", replicas=3)
    sim.settle()
    assert images(sim) == {"busybox:2": 3}
    assert sorted(t.node_id for t in sim.live("mon")) == ["n0", "n2"]


def test_deterministic_apart_from_ids(sim: Sim):
    sim.put(mk_service("web", 5))
    view = sim.view()
    ids = itertools.count()
    p1 = reconcile(view, 5.0, new_id=lambda: f"x{next(ids)}")
    ids = itertools.count()
    p2 = reconcile(view, 5.0, new_id=lambda: f"x{next(ids)}")
    assert p1 == p2


def test_large_service_in_one_pass():
    sim = Sim()
    for i in range(100):
        sim.put(mk_node(f"n{i:03d}"))
    sim.put(mk_service("web", 1000))
    plan = sim.step()
    assert kinds(plan) == {"CREATE": 1000}
    assert set(Counter(t.node_id for t in sim.tasks("web")).values()) == {10}
    sim.agent()
    assert sim.reconcile().actions == []


def test_sim_commits_like_the_store(sim: Sim):
    # One plan is one transaction: one version for all it changes; names stay unique.
    sim.put(mk_service("web", 3))
    before = sim.version
    sim.step()
    assert sim.version == before + 1
    assert {t.meta.version for t in sim.tasks("web")} == {before + 1}
    twin = mk_service("web2", 1)
    twin.spec.annotations.name = "web"
    with pytest.raises(Conflict, match='service name "web" is already in use'):
        sim.put(twin)
