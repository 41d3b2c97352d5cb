"""The node filters a task must pass, and the reason text when none passes.

Filters run in a fixed order and a node is charged to the first filter it
fails, so the "no suitable node (...)" message counts each node once.
Static filters depend only on the node and the task's spec (evaluated once per
group of identical tasks); dynamic ones depend on the load placed so far.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Optional, Sequence

from proto import objects_pb2 as pb
from scheduler import constraints as cons
from scheduler import generic
from scheduler.nodeinfo import NodeInfo, Port


class Reason(IntEnum):
    """Why a node was rejected; the value is the filter's position."""

    NOT_READY = 0
    NOT_ACTIVE = 1
    PLATFORM = 2
    CONSTRAINTS = 3
    RESOURCES = 4
    MAX_REPLICAS = 5
    HOST_PORT = 6


def _nodes(n: int) -> str:
    return "1 node" if n == 1 else f"{n} nodes"


_PHRASES = {
    Reason.NOT_READY: lambda n: f"{_nodes(n)} not ready",
    Reason.NOT_ACTIVE: lambda n: f"{_nodes(n)} not available for new tasks (paused or drained)",
    Reason.PLATFORM: lambda n: f"unsupported platform on {_nodes(n)}",
    Reason.CONSTRAINTS: lambda n: f"scheduling constraints not satisfied on {_nodes(n)}",
    Reason.RESOURCES: lambda n: f"insufficient resources on {_nodes(n)}",
    Reason.MAX_REPLICAS: lambda n: f"max replicas per node reached on {_nodes(n)}",
    Reason.HOST_PORT: lambda n: f"host-mode port already in use on {_nodes(n)}",
}


@dataclass(frozen=True)
class TaskNeeds:
    """What one group of identical tasks asks of a node."""

    service_id: str
    constraints: tuple[cons.Constraint, ...]
    platforms: tuple[pb.Platform, ...]
    cpu: int
    memory: int
    max_replicas: int
    ports: frozenset[Port]
    bad_constraint: str = ""  # set when a constraint does not parse
    generic: generic.Request = ()  # counts of generic resources reserved, by kind

    @classmethod
    def of(cls, task: pb.Task, ports: frozenset[Port]) -> "TaskNeeds":
        placement = task.spec.placement
        bad = ""
        try:
            parsed = tuple(cons.parse_all(placement.constraints))
        except ValueError as exc:
            parsed, bad = (), str(exc)
        res = task.spec.resources.reservations
        return cls(
            service_id=task.service_id,
            constraints=parsed,
            platforms=tuple(placement.platforms),
            cpu=res.nano_cpus,
            memory=res.memory_bytes,
            max_replicas=placement.max_replicas,
            ports=ports,
            bad_constraint=bad,
            generic=generic.request_of(task),
        )


def static_check(needs: TaskNeeds, node: pb.Node) -> Optional[Reason]:
    """The first static filter `node` fails for these needs, or None."""
    if node.status.state != pb.NodeStatus.READY:
        return Reason.NOT_READY
    if node.spec.availability != pb.NodeSpec.ACTIVE:
        return Reason.NOT_ACTIVE
    if not cons.platform_matches(needs.platforms, node):
        return Reason.PLATFORM
    if needs.bad_constraint or not cons.match_all(needs.constraints, node):
        return Reason.CONSTRAINTS
    return None


def dynamic_check(needs: TaskNeeds, info: NodeInfo) -> Optional[Reason]:
    """The first load-dependent filter the node fails, or None."""
    if (needs.cpu and info.cpu_free() < needs.cpu) or (
        needs.memory and info.mem_free() < needs.memory
    ) or (needs.generic and not generic.fits(
            needs.generic, info.node.description.resources.generic_resources, info.held)):
        return Reason.RESOURCES
    if needs.max_replicas and info.service_count(needs.service_id) >= needs.max_replicas:
        return Reason.MAX_REPLICAS
    if needs.ports and not needs.ports.isdisjoint(info.ports):
        return Reason.HOST_PORT
    return None


def explain(counts: dict[Reason, int], extra: Sequence[str] = ()) -> str:
    """The pending message: most common reason first, ties in filter order."""
    parts = [
        _PHRASES[r](n) for r, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n
    ]
    parts.extend(extra)
    if not parts:
        parts = ["no nodes available"]
    return "no suitable node (" + "; ".join(parts) + ")"
