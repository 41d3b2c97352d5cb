"""Replicated services: N slots, each with one live task.

Per pass and per service, in this order:

1. scale down: every task in a slot above N gets desired state REMOVE (the
   reaper deletes them once they have stopped);
2. each slot 1..N is supervised (`restart.supervise`): tasks on nodes that are
   down, drained or gone are shut down and replaced elsewhere; ended tasks
   follow the restart policy; duplicates are retired;
3. each slot 1..N without a live task gets a new one, unless the slot is
   finished: its newest task was deliberately not restarted (restart policy)
   and is still of the current spec.  A new spec revives finished slots.
"""
from __future__ import annotations

from proto import objects_pb2 as pb
from manager.orchestrator.plan import Work
from manager.orchestrator.restart import supervise
from manager.orchestrator.slots import is_dirty, is_live, make_task, service_slots


def node_unusable(work: Work, node_id: str) -> bool:
    """A task on this node must move: the node is gone, down or drained."""
    node = work.nodes.get(node_id)
    return (node is None or node.status.state == pb.NodeStatus.DOWN
            or node.spec.availability == pb.NodeSpec.DRAIN)


def reconcile_replicated(work: Work, service: pb.Service) -> None:
    """Brings one replicated service's slots in line with its replica count."""
    want = service.spec.replicated.replicas
    slots = service_slots(work, service)

    for slot in sorted(slots, reverse=True):
        if int(slot) > want or int(slot) < 1:  # a replicated slot is its number
            for t in slots[slot]:
                work.set_desired(t, pb.REMOVE)

    def must_move(t: pb.Task) -> bool:
        return bool(t.node_id) and node_unusable(work, t.node_id)

    for slot in range(1, want + 1):
        tasks = slots.get(slot)
        if tasks:
            supervise(work, service, slot, tasks, must_move)

    slots = service_slots(work, service)
    for slot in range(1, want + 1):
        tasks = slots.get(slot, [])
        if any(is_live(t) for t in tasks):
            continue
        if tasks and _finished(tasks[-1], service):
            continue
        make_task(work, service, slot)


def _finished(newest: pb.Task, service: pb.Service) -> bool:
    """The slot ran its course: its newest task was stopped by the restart
    policy (never restarted) and the spec has not changed since."""
    return newest.desired_state == pb.SHUTDOWN and not is_dirty(newest, service)
