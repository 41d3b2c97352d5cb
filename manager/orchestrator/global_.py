"""Global services: one task on every eligible node.

A node is eligible for a new task when it is READY, ACTIVE, of a wanted
platform and matches the constraints.  Existing tasks may stay on a node
that is paused or not (yet) ready, but are shut down when the node is down,
drained or stops matching the constraints, and marked REMOVE when the node
has left the cluster.  Each node's tasks form a slot supervised like a
replicated slot (restart policy on the same node, start-first duplicates).

A node whose newest task was deliberately not restarted keeps no task (the
restart policy had its say) until the spec changes.  A task this orchestrator
shut down because the node became ineligible does not count as that: when
the node is eligible again it gets a new task.
"""
from __future__ import annotations

from typing import Callable, Mapping

from proto import objects_pb2 as pb
from manager.orchestrator.plan import Work
from manager.orchestrator.restart import supervise, would_restart
from manager.orchestrator.slots import SlotKey, is_dirty, is_live, make_task, service_slots
from scheduler import constraints as cons

_OWN_END = (pb.COMPLETE, pb.FAILED, pb.REJECTED)


def _matches(service: pb.Service, node: pb.Node) -> bool:
    placement = service.spec.task.placement
    try:
        parsed = cons.parse_all(placement.constraints)
    except ValueError:
        return False
    return cons.platform_matches(placement.platforms, node) and cons.match_all(parsed, node)


def eligible(service: pb.Service, node: pb.Node) -> bool:
    """The node should run a task of this global service."""
    return (node.status.state == pb.NodeStatus.READY
            and node.spec.availability == pb.NodeSpec.ACTIVE
            and _matches(service, node))


def keeps(service: pb.Service, node: pb.Node) -> bool:
    """A task already on the node may stay there."""
    return (node.status.state != pb.NodeStatus.DOWN
            and node.spec.availability != pb.NodeSpec.DRAIN
            and _matches(service, node))


def tend_node_slots(work: Work, service: pb.Service, slots: Mapping[SlotKey, list[pb.Task]],
                    settled: Callable[[list[pb.Task]], bool] = lambda tasks: False) -> None:
    """The existing tasks of a global service or job, node by node (a global slot is its
    node ID): removed with their node, shut down on a node that no longer qualifies,
    else supervised by the restart policy; a node whose tasks `settled` says are done
    (a completed global job) is left as it is."""
    for node_id in sorted(slots):
        tasks = slots[node_id]
        if settled(tasks):
            continue
        node = work.nodes.get(str(node_id))
        if node is None:
            for t in tasks:
                work.set_desired(t, pb.REMOVE)
        elif not keeps(service, node):
            for t in tasks:
                if is_live(t):
                    work.set_desired(t, pb.SHUTDOWN)
        else:
            supervise(work, service, node_id, tasks, lambda t: False)


def reconcile_global(work: Work, service: pb.Service) -> None:
    """Brings one global service in line with the set of eligible nodes."""
    tend_node_slots(work, service, service_slots(work, service))

    slots = service_slots(work, service)
    for node_id in sorted(work.nodes):
        node = work.nodes[node_id]
        if not eligible(service, node):
            continue
        tasks = slots.get(node_id, [])
        if any(is_live(t) for t in tasks):
            continue
        if tasks and _finished(tasks[-1], service):
            continue
        make_task(work, service, node_id)


def _finished(newest: pb.Task, service: pb.Service) -> bool:
    return (newest.desired_state == pb.SHUTDOWN and newest.status.state in _OWN_END
            and not would_restart(newest) and not is_dirty(newest, service))
