"""What `swarm events` prints: store changes turned into Docker's swarm event messages.

Owns the translation of one Watch API event (a store change with the object
before and after it) into zero or one `Event` (type, action, actor ID,
attributes, time, store version), and how an event is shown: Docker's line
`<time> <type> <action> <id> (<k>=<v>, ...)`, and the row that `--format`
templates and `{{json .}}` read. Pure: no I/O, no clock.

Types and actions, as Docker's swarm-scope events:

- `service`, `node`, `secret`, `config`, `network`: `create`, `update`,
  `remove`; attributes `name`, the object's labels, and on an update what
  changed: services `image.old/new`, `replicas.old/new`,
  `updatestate.old/new`; nodes `availability.old/new`, `role.old/new`,
  `state.old/new`, `leader.old/new`, `reachability.old/new`.
- `task` (the container of a task): `start` when the agent reports it
  running, `die` when it leaves starting/running for complete, failed,
  shutdown or rejected (not for `orphaned`: its node is gone and nobody knows
  whether the container still runs). Attributes `name` (the container's,
  `<service>.<slot>.<task id>`), `image`, `service.id`, `service.name`,
  `node.id`, `node.name` (when known), `slot`, the container labels, and for
  `die` `exitCode`, `state` and `error` (when the task has one).

Every other store change (task bookkeeping, the cluster object, stacks) is
not an event.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from google.protobuf.message import Message

from cli.templates import JsonRow
from cli.timevalues import rfc3339_nano
from proto import objects_pb2 as pb
from proto import watch_pb2 as wpb

TYPES = ("service", "node", "secret", "config", "network", "task")
ACTIONS = ("create", "update", "remove", "start", "die")
SCOPE = "swarm"
FIELDS = ("Type", "Action", "Actor", "ID", "Scope", "Time", "TimeNano", "Version")

_ACTION_NAMES = {wpb.WatchEvent.CREATE: "create", wpb.WatchEvent.UPDATE: "update",
                 wpb.WatchEvent.REMOVE: "remove"}
_LIVE = frozenset({pb.STARTING, pb.RUNNING})
_DEAD = frozenset({pb.COMPLETE, pb.FAILED, pb.SHUTDOWN, pb.REJECTED})


@dataclass(frozen=True)
class Event:
    """One line of `swarm events`."""

    type: str
    action: str
    id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    time_nano: int = 0   # unix nanoseconds: when the change was committed
    version: int = 0     # the store version it was committed at

    def line(self) -> str:
        """Docker's default line: `<time> <type> <action> <id> (k=v, ...)`."""
        text = f"{rfc3339_nano(self.time_nano)} {self.type} {self.action} {self.id}"
        if self.attributes:
            text += " (" + ", ".join(f"{k}={v}" for k, v in sorted(self.attributes.items())) + ")"
        return text

    def row(self) -> JsonRow:
        """What `--format` sees: templates read Docker's events.Message by Go field name
        (`.Type`, `.Actor.ID`, `.Scope`, `.Time`, `.TimeNano`; also `.ID`, the actor's, and
        `.Version`, the store version); `{{json .}}` writes its JSON keys (`Type`, `Action`,
        `Actor`, `scope`, `time`, `timeNano`) and Shoal's `version`."""
        actor = {"ID": self.id, "Attributes": dict(self.attributes)}
        seconds = self.time_nano // 1_000_000_000
        return JsonRow({"Type": self.type, "Action": self.action, "ID": self.id,
                        "Actor": actor, "Scope": SCOPE, "Time": seconds,
                        "TimeNano": self.time_nano, "Version": self.version},
                       {"Type": self.type, "Action": self.action, "Actor": actor,
                        "scope": SCOPE, "time": seconds, "timeNano": self.time_nano,
                        "version": self.version})


def _nanos(ts: Any) -> int:
    return int(ts.seconds) * 1_000_000_000 + int(ts.nanos)


def _lower(enum_type: Any, value: int) -> str:
    return str(enum_type.Name(value)).lower()


def _changed(attrs: dict[str, str], key: str, old: str, new: str) -> None:
    if old != new:
        attrs[key + ".old"] = old
        attrs[key + ".new"] = new


def _with_labels(labels: Mapping[str, str], attrs: dict[str, str]) -> dict[str, str]:
    """The object's labels, then our attributes (which win on a clash, as Docker's name does)."""
    out = dict(labels)
    out.update(attrs)
    return out


def service_attributes(new: pb.Service, old: Optional[pb.Service]) -> dict[str, str]:
    """`name`, labels, and on an update the image, replicas and update state that changed."""
    attrs = {"name": new.spec.annotations.name}
    if old is not None:
        _changed(attrs, "image", old.spec.task.container.image, new.spec.task.container.image)
        if new.spec.WhichOneof("mode") == "replicated" and old.spec.WhichOneof("mode") == "replicated":
            _changed(attrs, "replicas", str(old.spec.replicated.replicas),
                     str(new.spec.replicated.replicas))
        if new.HasField("update_status"):
            state = _lower(pb.UpdateStatus.State, new.update_status.state)
            if not old.HasField("update_status"):
                attrs["updatestate.new"] = state
            else:
                _changed(attrs, "updatestate",
                         _lower(pb.UpdateStatus.State, old.update_status.state), state)
    return _with_labels(new.spec.annotations.labels, attrs)


def node_name(node: pb.Node) -> str:
    return node.spec.annotations.name or node.description.hostname


def node_attributes(new: pb.Node, old: Optional[pb.Node]) -> dict[str, str]:
    """`name`, labels, and on an update availability, role, state, leadership, reachability."""
    attrs = {"name": node_name(new)}
    if old is not None:
        _changed(attrs, "availability", _lower(pb.NodeSpec.Availability, old.spec.availability),
                 _lower(pb.NodeSpec.Availability, new.spec.availability))
        _changed(attrs, "role", _lower(pb.NodeRole, old.role), _lower(pb.NodeRole, new.role))
        _changed(attrs, "state", _lower(pb.NodeStatus.State, old.status.state),
                 _lower(pb.NodeStatus.State, new.status.state))
        if new.HasField("manager_status") and old.HasField("manager_status"):
            _changed(attrs, "leader", str(old.manager_status.leader).lower(),
                     str(new.manager_status.leader).lower())
            _changed(attrs, "reachability",
                     _lower(pb.ManagerStatus.Reachability, old.manager_status.reachability),
                     _lower(pb.ManagerStatus.Reachability, new.manager_status.reachability))
    return _with_labels(new.spec.annotations.labels, attrs)


def task_action(new: pb.Task, old: Optional[pb.Task]) -> Optional[str]:
    """`start`, `die` or None (no container event) for a task's status change."""
    before = old.status.state if old is not None else pb.NEW
    after = new.status.state
    if after == pb.RUNNING and before != pb.RUNNING:
        return "start"
    if before in _LIVE and after in _DEAD:
        return "die"
    return None


def task_attributes(task: pb.Task, action: str,
                    node_names: Mapping[str, str]) -> dict[str, str]:
    """The container's name and image, its service, node and slot; exit details for `die`."""
    service = task.service_name or task.service_id
    attrs = {"name": f"{service}.{task.slot or task.node_id}.{task.id}",
             "image": task.spec.container.image,
             "service.id": task.service_id, "service.name": task.service_name,
             "node.id": task.node_id}
    if task.node_id in node_names:
        attrs["node.name"] = node_names[task.node_id]
    if task.slot:
        attrs["slot"] = str(task.slot)
    if action == "die":
        attrs["exitCode"] = str(task.status.container_status.exit_code)
        attrs["state"] = _lower(pb.TaskState, task.status.state)
        if task.status.err:
            attrs["error"] = task.status.err
    return _with_labels(task.spec.container.labels, {k: v for k, v in attrs.items() if v})


def _named_attributes(obj: Message) -> dict[str, str]:
    spec: Any = getattr(obj, "spec")
    return _with_labels(spec.annotations.labels, {"name": spec.annotations.name})


def to_event(ev: wpb.WatchEvent,
             node_names: Optional[Mapping[str, str]] = None) -> Optional[Event]:
    """The `swarm events` event of one store change (task events name the node from
    `node_names`, ID to hostname), or None when it is not one."""
    kind = ev.object.WhichOneof("object")
    if kind not in TYPES:
        return None
    action: Optional[str] = _ACTION_NAMES[ev.action]
    new: Any = getattr(ev.object, kind)
    old: Any = getattr(ev.old_object, kind) if ev.old_object.HasField(kind) else None
    if kind == "task":
        if ev.action == wpb.WatchEvent.REMOVE:
            return None
        action = task_action(new, old)
        if action is None:
            return None
        attrs = task_attributes(new, action, node_names or {})
    elif kind == "service":
        attrs = service_attributes(new, old if ev.action == wpb.WatchEvent.UPDATE else None)
    elif kind == "node":
        attrs = node_attributes(new, old if ev.action == wpb.WatchEvent.UPDATE else None)
    else:
        attrs = _named_attributes(new)
    assert action is not None
    return Event(type=kind, action=action, id=new.id, attributes=attrs,
                 time_nano=_nanos(ev.committed_at), version=ev.version)
