"""manager/orchestrator/quiet.py: a pass that skips unchanged services decides exactly
what a full pass decides. Every step of each scenario below is reconciled twice on the
same snapshot, fully and skipping what `quiet` names (its previous fingerprints taken
as the leader loop takes them: the snapshot of the last pass committed whole), and the
two plans must be the same actions; then the plan is committed and the agent acts.
The skipping pass uses the TaskIndex the leader loop would have: the previous pass's,
advanced with the store's task change log (and checked equal to one built whole)."""
from __future__ import annotations

import itertools
from typing import Callable, Optional

from manager.orchestrator import Plan, reconcile
from manager.leader import next_wake
from manager.orchestrator.quiet import Fingerprints, fingerprints, quiet
from manager.orchestrator.taskindex import TaskIndex, advanced
from tests.test_taskindex import assert_same_index
from proto import objects_pb2 as pb
from tests.test_orchestrator import Sim, mk_node, mk_service


class Twin(Sim):
    """A Sim whose passes are checked against skipping ones."""

    def __init__(self) -> None:
        super().__init__()
        self.previous: Optional[Fingerprints] = None
        self.skipped: list[frozenset[str]] = []
        self.wake: Optional[float] = None        # as the leader loop keeps it
        self.index: Optional[TaskIndex] = None   # likewise

    def reconcile(self) -> Plan:
        view = self.view()
        start = next(self._ids)

        def ids() -> Callable[[], str]:
            counter = itertools.count(start * 1000)
            return lambda: f"t{next(counter):07d}"
        full = reconcile(view, self.now, new_id=ids())
        self.index, built = advanced(self.index, view)
        assert built == (self.previous is None)   # the log reaches back to every pass
        assert_same_index(self.index, TaskIndex.build(view))
        prints = fingerprints(view, self.index)
        full_pass = self.wake is not None and self.now >= self.wake   # the loop skips nothing
        skip = frozenset() if full_pass else quiet(self.previous, prints)
        partial = reconcile(view, self.now, new_id=ids(), skip=skip, index=self.index)
        assert [a.SerializeToString(deterministic=True) for a in partial.actions] == \
            [a.SerializeToString(deterministic=True) for a in full.actions], skip
        wake = next_wake(partial.wake_at, self.wake if skip else None, self.now)
        if full.wake_at is not None:  # the loop wakes no later than a full pass asks
            assert wake is not None and wake <= full.wake_at, (wake, full.wake_at)
        self.wake = wake
        self.skipped.append(skip)
        self.previous = prints      # the plan is committed whole by step()
        return full


def twin() -> Twin:
    s = Twin()
    for i in range(4):
        s.put(mk_node(f"n{i}"))
    return s


def test_settled_services_are_skipped_and_a_new_one_is_not() -> None:
    s = twin()
    s.put(mk_service("big", 12))
    s.settle()
    s.put(mk_service("one", 1))
    s.step()
    assert "big" in s.skipped[-1] and "one" not in s.skipped[-1]
    s.settle()
    assert len(s.running("one")) == 1 and len(s.running("big")) == 12


def test_scaling_failures_node_loss_and_updates_decide_as_a_full_pass() -> None:
    s = twin()
    s.put(mk_service("a", 6, delay=0))
    s.put(mk_service("b", 4, delay=0))
    s.settle()
    s.update_service("a", replicas=9)                  # scale up
    s.settle()
    victim = s.running("b")[0]
    s.set_state(victim.id, pb.FAILED, exit_code=2)     # a task fails: restarted
    s.settle()
    assert len(s.running("b")) == 4
    node = mk_node("n1", state=pb.NodeStatus.DOWN)     # a node goes down: tasks move
    node.CopyFrom(s.tables["node"]["n1"])
    node.status.state = pb.NodeStatus.DOWN
    s.put(node)
    s.settle()
    assert all(t.node_id != "n1" for t in s.running())
    s.update_service("b", image="busybox:2")           # a rolling update
    s.settle()
    assert {t.spec.container.image for t in s.running("b")} == {"busybox:2"}
    s.delete("service", "a")                           # removal
    s.settle()
    assert not s.running("a")
    assert any(s.skipped)           # some passes did skip, and decided the same


def test_a_restart_delay_survives_passes_that_skip_its_service() -> None:
    s = twin()
    s.put(mk_service("slow", 2, delay=5))
    s.put(mk_service("other", 1))
    s.settle()
    failed = s.running("slow")[0]
    s.set_state(failed.id, pb.FAILED, exit_code=1)
    s.step()                                  # the replacement waits for its delay
    waiting = s.wake
    assert waiting is not None and waiting > s.now
    s.update_service("other", replicas=2)     # an unrelated change: a pass skips "slow"
    s.step()
    assert "slow" in s.skipped[-1] and s.wake == waiting   # its wake-up is kept
    s.now = waiting                            # at the wake-up: a full pass restarts it
    s.settle()
    assert len(s.running("slow")) == 2


def test_fingerprints_move_with_what_the_rules_read() -> None:
    s = twin()
    s.put(mk_service("a", 2))
    s.settle()
    before = fingerprints(s.view(), TaskIndex.build(s.view()))
    assert quiet(before, fingerprints(s.view(), TaskIndex.build(s.view()))) == {"a"}
    assert quiet(None, before) == frozenset()
    task = s.running("a")[0]
    s.set_state(task.id, pb.FAILED)                    # a task changed
    assert "a" not in quiet(before, fingerprints(s.view(), TaskIndex.build(s.view())))
    s.settle()
    settled = fingerprints(s.view(), TaskIndex.build(s.view()))
    s.put(mk_node("n9"))                               # anything else changed: no skipping
    assert quiet(settled, fingerprints(s.view(), TaskIndex.build(s.view()))) == frozenset()
