"""The cluster page's view model: store objects in, the page's state out. No I/O.

Owns `Mirror`, the CLI's copy of the manager's nodes, services and tasks
(filled from List calls, then kept current by Watch events, which may overlap
the lists: an event older than what is held is ignored), and `page_state`,
which turns such a copy into the JSON document the page draws: one column
per node (managers first, the leader leading), the node's current tasks as
boxes coloured per service, the tasks no node has yet, and the services with
their desired/running counts and update state. `cli.clusterwatch` feeds the
mirror, `cli.clusterhttp` sends the state to the page.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Optional

from cli.format import job_replicas_column, mode_of, replica_counts
from proto import model
from proto import objects_pb2 as pb
from proto import watch_pb2 as wpb

KINDS = ("node", "service", "task")   # what the page shows (the watch selects these)
TaskBox = dict[str, Any]


def _lower(name: str) -> str:
    return name.lower().replace("_", "-")


class Mirror:
    """Nodes, services and tasks by ID, as last seen.

    `replace` loads a full listing; `apply` takes watch events, ignoring those
    the held copy is already newer than (the watch is opened before the lists
    are read, so its first events may repeat what the lists hold).
    """

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}

    def replace(self, nodes: Iterable[pb.Node], services: Iterable[pb.Service],
                tasks: Iterable[pb.Task]) -> None:
        self.tables = {"node": {n.id: n for n in nodes},
                       "service": {s.id: s for s in services},
                       "task": {t.id: t for t in tasks}}

    def apply(self, event: wpb.WatchEvent) -> bool:
        """Applies one watch event; True when it changed the mirror."""
        kind = event.object.WhichOneof("object")
        if kind not in self.tables:
            return False
        obj = model.unwrap(event.object)
        table = self.tables[kind]
        held = table.get(obj.id)
        if event.action == wpb.WatchEvent.REMOVE:
            return table.pop(obj.id, None) is not None
        if held is not None and held.meta.version >= obj.meta.version:
            return False
        table[obj.id] = obj
        return True

    @property
    def nodes(self) -> list[pb.Node]:
        return list(self.tables["node"].values())

    @property
    def services(self) -> list[pb.Service]:
        return list(self.tables["service"].values())

    @property
    def tasks(self) -> list[pb.Task]:
        return list(self.tables["task"].values())


# Well-separated colours that carry white text; services take them in creation order.
PALETTE = ("#2563eb", "#db2777", "#059669", "#7c3aed", "#ea580c", "#0891b2", "#65a30d",
           "#be123c", "#4f46e5", "#b45309", "#0d9488", "#9333ea")
NO_SERVICE = "#6b7280"   # tasks of a service that is gone


def service_colours(services: Iterable[pb.Service]) -> dict[str, str]:
    """Service ID -> colour: the oldest service gets the first colour, and so on, so that
    a new service never changes the colour of those already drawn."""
    ordered = sorted(services, key=lambda s: (model.ts_seconds(s.meta.created_at), s.id))
    return {s.id: PALETTE[i % len(PALETTE)] for i, s in enumerate(ordered)}


def _natural(text: str) -> tuple:
    return tuple(int(part) if part.isdecimal() else part for part in re.split(r"(\d+)", text))


def short_image(image: str) -> str:
    """The image without its registry host and digest, as a box has room for:
    "127.0.0.1:5000/shoal/busybox:1@sha256:..." -> "shoal/busybox:1"."""
    image = image.split("@", 1)[0]
    first, sep, rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return rest
    return image


def is_current(task: pb.Task) -> bool:
    """A task the orchestrator still wants (desired state at most running): the page's
    boxes. Tasks being shut down, and a slot's history, are left out."""
    return task.desired_state <= pb.RUNNING


def task_box(task: pb.Task, services: dict[str, pb.Service],
             colours: dict[str, str]) -> TaskBox:
    service = services.get(task.service_id)
    name = task.service_name or (service.spec.annotations.name if service else "")
    return {
        "id": task.id,
        "service_id": task.service_id,
        "service": name,
        "name": f"{name}.{task.slot}" if task.slot else name,
        "slot": task.slot,
        "node_id": task.node_id,
        "state": _lower(pb.TaskState.Name(task.status.state)),
        "desired": _lower(pb.TaskState.Name(task.desired_state)),
        "image": task.spec.container.image,
        "image_short": short_image(task.spec.container.image),
        "health": task.status.health.status,
        "message": task.status.err or task.scheduling_message or task.status.message,
        "failed": task.status.state in (pb.FAILED, pb.REJECTED, pb.ORPHANED),
        "colour": colours.get(task.service_id, NO_SERVICE),
    }


def _box_order(box: TaskBox) -> tuple:
    return (box["service"], box["slot"], box["id"])


def node_column(node: pb.Node, boxes: list[TaskBox]) -> dict[str, Any]:
    state = _lower(pb.NodeStatus.State.Name(node.status.state))
    manager = node.role == pb.MANAGER
    return {
        "id": node.id,
        "hostname": node.description.hostname or node.id,
        "role": "manager" if manager else "worker",
        "leader": bool(manager and node.manager_status.leader),
        "reachability": _lower(pb.ManagerStatus.Reachability.Name(
            node.manager_status.reachability)) if manager else "",
        "state": state,
        "down": node.status.state in (pb.NodeStatus.DOWN, pb.NodeStatus.DISCONNECTED),
        "message": node.status.message,
        "availability": _lower(pb.NodeSpec.Availability.Name(node.spec.availability)),
        "labels": dict(sorted(node.spec.annotations.labels.items())),
        "addr": node.status.addr,
        "tasks": sorted(boxes, key=_box_order),
    }


def _column_order(column: dict[str, Any]) -> tuple:
    return (column["role"] != "manager", not column["leader"], _natural(column["hostname"]))


def service_row(service: pb.Service, tasks: list[pb.Task], down: set[str],
                colour: str) -> dict[str, Any]:
    mode = mode_of(service.spec)
    running, desired = replica_counts(service, tasks, down)
    replicas = (job_replicas_column(service, tasks, down) if mode.endswith(" job")
                else f"{running}/{desired}")
    update = service.update_status
    name = service.spec.annotations.name
    return {
        "id": service.id,
        "name": name,
        "mode": mode,
        "image": service.spec.task.container.image,
        "desired": desired,
        "running": running,
        "replicas": replicas,
        "update_state": _lower(pb.UpdateStatus.State.Name(update.state))
        if update.state else "",
        "update_message": update.message,
        "colour": colour,
    }


def page_state(mirror: Mirror, connected: bool = True, error: str = "",
               now: Optional[float] = None) -> dict[str, Any]:
    """The document the page draws (JSON-ready: plain dicts, lists, strings, numbers)."""
    services = mirror.tables["service"]
    nodes = mirror.tables["node"]
    tasks = sorted(mirror.tasks, key=lambda t: t.id)
    colours = service_colours(services.values())
    by_node: dict[str, list[TaskBox]] = {node_id: [] for node_id in nodes}
    unassigned: list[TaskBox] = []
    for task in tasks:
        if not is_current(task):
            continue
        box = task_box(task, services, colours)
        if task.node_id in by_node:
            by_node[task.node_id].append(box)
        else:
            unassigned.append(box)
    columns = sorted((node_column(node, by_node[node.id]) for node in nodes.values()),
                     key=_column_order)
    down = {c["id"] for c in columns if c["down"]}
    of_service: dict[str, list[pb.Task]] = {}
    for task in tasks:
        of_service.setdefault(task.service_id, []).append(task)
    rows = sorted((service_row(s, of_service.get(s.id, []), down, colours[s.id])
                   for s in services.values()),
                  key=lambda r: _natural(r["name"]))
    return {
        "connected": connected,
        "error": error,
        "time": now,
        "nodes": columns,
        "unassigned": sorted(unassigned, key=_box_order),
        "services": rows,
        "counts": {"nodes": len(columns), "down": len(down), "services": len(rows),
                   "tasks": sum(len(c["tasks"]) for c in columns) + len(unassigned)},
    }
