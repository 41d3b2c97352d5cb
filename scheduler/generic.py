"""Generic resources in placement: what a node has left, and what a task is given.

A node offers generic resources in its description (`swarm daemon
--node-generic-resource`): named ids of a kind (gpu=GPU-1, gpu=GPU-2) or a discrete
count (ssd=3). A service reserves counts of kinds (`--generic-resource gpu=1`). A node
qualifies when, for every kind asked, what it has free covers the count: the ids of
that kind no live task holds, or the count less the units live tasks hold. The task
then gets specific resources (`claim`): the first free ids in the order the node lists
them, or the count; they are stored on the task (`assigned_generic_resources`), so
they stay the same for its life, and the load of a node is counted from them.

Usage is kept per node as `Held`: (kind, id) -> 1 for a named id held, (kind, "") ->
units held of a discrete kind.
"""
from __future__ import annotations

from typing import Iterator, Mapping, MutableMapping, Sequence

from proto import genericres as gr
from proto import objects_pb2 as pb

Key = tuple[str, str]
Held = MutableMapping[Key, int]
Request = tuple[tuple[str, int], ...]   # (kind, count) a task reserves


def request_of(task: pb.Task) -> Request:
    """The counts the task's spec reserves, by kind (named entries are not requests)."""
    return tuple((r.discrete_resource_spec.kind, r.discrete_resource_spec.value)
                 for r in task.spec.resources.reservations.generic_resources
                 if r.WhichOneof("resource") == "discrete_resource_spec"
                 and r.discrete_resource_spec.value > 0)


def usage(assigned: Sequence[pb.GenericResource]) -> Iterator[tuple[Key, int]]:
    """What resources assigned to a task hold of its node."""
    for r in assigned:
        if gr.is_named(r):
            yield (r.named_resource_spec.kind, r.named_resource_spec.value), 1
        elif r.WhichOneof("resource") is not None:
            yield (r.discrete_resource_spec.kind, ""), r.discrete_resource_spec.value


def change(held: Held, assigned: Sequence[pb.GenericResource], sign: int) -> None:
    """Adds (sign 1) or takes away (-1) what `assigned` holds."""
    for key, n in usage(assigned):
        count = held.get(key, 0) + sign * n
        if count:
            held[key] = count
        else:
            held.pop(key, None)


def free(offered: Sequence[pb.GenericResource], held: Mapping[Key, int], kind: str) -> int:
    """How many units of `kind` the node has that no live task holds."""
    total = 0
    for r in offered:
        if gr.kind_of(r) != kind:
            continue
        if gr.is_named(r):
            total += 0 if held.get((kind, r.named_resource_spec.value)) else 1
        else:
            total += max(0, r.discrete_resource_spec.value - held.get((kind, ""), 0))
    return total


def fits(request: Request, offered: Sequence[pb.GenericResource],
         held: Mapping[Key, int]) -> bool:
    """Whether the node's free resources cover every count asked."""
    return all(free(offered, held, kind) >= count for kind, count in request)


def claim(request: Request, offered: Sequence[pb.GenericResource],
          held: Mapping[Key, int]) -> list[pb.GenericResource]:
    """The resources a task placed on the node gets (call only when `fits`): for each
    kind, its first free named ids in the node's order, then units of a discrete count."""
    out: list[pb.GenericResource] = []
    for kind, count in request:
        need = count
        for r in offered:
            if need <= 0:
                break
            if gr.kind_of(r) != kind or not gr.is_named(r):
                continue
            if not held.get((kind, r.named_resource_spec.value)):
                out.append(gr.named(kind, r.named_resource_spec.value))
                need -= 1
        if need > 0:
            out.append(gr.discrete(kind, need))
    return out
