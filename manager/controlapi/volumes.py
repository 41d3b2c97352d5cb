"""Control API rules for named volumes, which live on their nodes.

The store knows each node's volumes as its agent last reported them
(`NodeStatus.volumes`) and which tasks mount which volume (their specs). From
those alone these rules list volumes with the services using them, filter
them, refuse to remove a volume a task of its node still uses, name the
volumes a prune must keep, and turn a node's answer into a result or a
refusal. Removing and pruning are carried out by the node's agent
(`manager.volumebroker`); nothing here does I/O.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

from manager.controlapi.common import Code, Refusal, invalid, precondition
from proto import control_pb2 as cpb
from proto import dispatcher_pb2 as dpb
from proto import model
from proto import objects_pb2 as pb

_TRUE = ("true", "1")
_FALSE = ("false", "0")


def mounted_volumes(task: pb.Task) -> set[str]:
    """Names of the named volumes the task's container mounts."""
    return {m.source for m in task.spec.container.mounts
            if m.type == pb.Mount.VOLUME and m.source}


def users(tasks: Iterable[pb.Task], node_id: str, name: str) -> list[pb.Task]:
    """The tasks of `node_id` that are not over and mount volume `name`."""
    return [t for t in tasks if t.node_id == node_id and not model.is_terminal(t.status.state)
            and name in mounted_volumes(t)]


def needed(tasks: Iterable[pb.Task], node_id: str) -> list[str]:
    """Every volume a task of the node that is not over mounts (a prune keeps them)."""
    names: set[str] = set()
    for task in tasks:
        if task.node_id == node_id and not model.is_terminal(task.status.state):
            names |= mounted_volumes(task)
    return sorted(names)


def task_label(task: pb.Task) -> str:
    """How a refusal names a task: `web.1` (global: `web.<node id>`) and its ID."""
    base = task.service_name or task.annotations.name.split(".")[0]
    slot = str(task.slot) if task.slot else task.node_id
    return f"{base}.{slot} (task {task.id})"


def _node_matches(node: pb.Node, refs: Sequence[str]) -> bool:
    return any(node.id == r or node.description.hostname == r or node.id.startswith(r)
               for r in refs)


def _label_matches(labels: dict[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def _dangling(value: str) -> Optional[bool]:
    if not value:
        return None
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise invalid(f'invalid filter "dangling={value}": use dangling=true or dangling=false')


def entries(nodes: Iterable[pb.Node], tasks: Sequence[pb.Task],
            filters: Optional[cpb.VolumeFilters] = None) -> list[cpb.VolumeEntry]:
    """Every reported volume of every node that passes the filters, with the services
    whose tasks on that node mount it; by node hostname, then volume name."""
    f = filters or cpb.VolumeFilters()
    dangling = _dangling(f.dangling)
    out: list[cpb.VolumeEntry] = []
    for node in sorted(nodes, key=lambda n: (n.description.hostname, n.id)):
        if f.nodes and not _node_matches(node, f.nodes):
            continue
        for volume in sorted(node.status.volumes, key=lambda v: v.name):
            labels = dict(volume.labels)
            if f.names and not any(n in volume.name for n in f.names):
                continue
            if f.labels and not all(_label_matches(labels, w) for w in f.labels):
                continue
            if f.drivers and volume.driver not in f.drivers:
                continue
            using = users(tasks, node.id, volume.name)
            if dangling is not None and dangling == bool(using):
                continue
            out.append(cpb.VolumeEntry(
                node_id=node.id, node_hostname=node.description.hostname, volume=volume,
                services=sorted({t.service_name for t in using if t.service_name}),
                task_ids=sorted(t.id for t in using)))
    return out


def check_removable(node: pb.Node, name: str, tasks: Iterable[pb.Task]) -> None:
    """Refuses to remove a volume that a task of the node which is not over mounts."""
    if not name:
        raise invalid("volume name missing: give the name of the volume to remove")
    using = users(tasks, node.id, name)
    if using:
        raise precondition(
            f"remove {name}: volume is in use - [{', '.join(task_label(t) for t in using)}] "
            f"on node {node.description.hostname or node.id}: remove the service or its "
            "mount first")


def outcome(result: dpb.VolumeResultRequest, node: pb.Node, name: str = "") -> None:
    """Refuses when the node could not carry out the request (its own words)."""
    where = node.description.hostname or node.id
    if result.failure == dpb.VolumeResultRequest.NOT_FOUND:
        raise Refusal(Code.NOT_FOUND, f"No such volume: {name} (on node {where})")
    if result.failure == dpb.VolumeResultRequest.IN_USE:
        raise precondition(f"{result.message} (on node {where})")
    if result.failure != dpb.VolumeResultRequest.NONE:
        raise precondition(f"node {where}: {result.message}")


def unreachable(node: pb.Node) -> Refusal:
    """The refusal for a node whose agent cannot be asked now."""
    where = node.description.hostname or node.id
    state = pb.NodeStatus.State.Name(node.status.state).lower()
    return Refusal(Code.UNAVAILABLE,
                   f"node {where} is not connected (status {state}): its volumes can be "
                   "removed once its agent is back")


def no_answer(node: pb.Node, timeout: float) -> Refusal:
    where = node.description.hostname or node.id
    return Refusal(Code.UNAVAILABLE, f"node {where} did not answer within {timeout:g}s; "
                   "run `swarm volume ls` to see whether the volume is still there")
