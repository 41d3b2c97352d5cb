"""The store's state machine: the object tables and how a transaction changes them.

Pure and deterministic: no raft, no I/O, no clock.  Every replica feeds the
same transactions in the same order into `StoreState.apply` and ends up with
the same tables and the same version.  The caller (raft/store.py) serialises
access with its own lock; `apply` is `prepare` (checks and watch events, reads
only: it may run outside that lock on the one thread that writes) then `commit`
(the writes, under the lock).

- Tables are plain dicts, one per kind, shared copy-on-write with snapshots:
  `snapshot()` marks every table as shared (O(number of kinds)); the next
  write to a shared table copies it first.
- `apply` checks every action of a transaction against the state as left by
  the actions before it; the first failed check raises `Conflict` and
  nothing is changed.
- `dump`/`load` turn the whole state into bytes (for raft snapshots).
- Tasks are indexed by node and by service (`tasks_of`), kept up to date by
  `apply` and `load`, so that a node's or a service's tasks are found without
  scanning every task (a dispatcher session, `service ps`).
"""
from __future__ import annotations

import builtins
import hashlib
import struct
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Optional

from proto import model
from proto import objects_pb2 as pb
from proto.model import StoredObject
from proto import store_pb2, watch_pb2
from raft.errors import Conflict, NameConflict
from raft.view import StoreView, TaskLog

# Kinds whose objects have a user-chosen name that must be unique.
UNIQUE_NAME_KINDS = frozenset({"service", "network", "secret", "config", "cluster", "stack"})

_ACTION_TO_EVENT = {
    store_pb2.StoreAction.CREATE: watch_pb2.WatchEvent.CREATE,
    store_pb2.StoreAction.UPDATE: watch_pb2.WatchEvent.UPDATE,
    store_pb2.StoreAction.REMOVE: watch_pb2.WatchEvent.REMOVE,
}
_DUMP_MAGIC = b"SHOALST1"
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
TASK_LOG_MAX = 200_000  # task IDs the task change log keeps (then the older half goes)


@dataclass(frozen=True)
class Applied:
    """What one applied transaction did."""

    version: int
    events: list  # list[watch_pb2.WatchEvent]


@dataclass(frozen=True)
class Prepared:
    """A checked transaction, not applied yet (`StoreState.prepare`, then `commit`)."""

    version: int
    events: list  # list[watch_pb2.WatchEvent]
    staged: dict  # (kind, ID) -> the new object, or None for a removal
    names: dict   # (kind, name) -> the holder's ID, or None when the name is freed


class StoreState:
    """In-memory tables of every kind, the name indexes and the version counter."""

    def __init__(self) -> None:
        self.version = 0
        self._tables: dict[str, dict[str, StoredObject]] = {kind: {} for kind in model.KINDS}
        self._shared: set[str] = set()
        self._names: dict[str, dict[str, str]] = {kind: {} for kind in UNIQUE_NAME_KINDS}
        # task IDs by node ID and by service ID (tasks with an empty one are not indexed)
        self._tasks_by_node: dict[str, set[str]] = {}
        self._tasks_by_service: dict[str, set[str]] = {}
        # (version, task IDs changed) per transaction since `_log_start` (see TaskLog)
        self._task_log: list[tuple[int, tuple[str, ...]]] = []
        self._log_start = 0
        self._log_ids = 0  # task IDs in the log

    # ------------------------------------------------------------ reads ----

    def get(self, kind: str, obj_id: str) -> Optional[StoredObject]:
        return self._table(kind).get(obj_id)

    def list(self, kind: str) -> list[StoredObject]:
        return list(self._table(kind).values())

    def by_name(self, kind: str, name: str) -> Optional[StoredObject]:
        if kind in UNIQUE_NAME_KINDS:
            obj_id = self._names[kind].get(name)
            return None if obj_id is None else self._tables[kind].get(obj_id)
        for obj in self._table(kind).values():
            if model.object_name(obj) == name:
                return obj
        return None

    def tasks_of(self, node_id: str = "", service_id: str = "") -> builtins.list[StoredObject]:
        """The tasks on `node_id` and/or of `service_id` (each given one must match;
        at least one must be given), in no particular order."""
        if not node_id and not service_id:
            raise ValueError("tasks_of needs a node ID or a service ID")
        ids: set[str] = set()
        if node_id:
            ids = self._tasks_by_node.get(node_id, set())
        if service_id:
            of_service = self._tasks_by_service.get(service_id, set())
            ids = ids & of_service if node_id else of_service
        table = self._tables["task"]
        return [table[i] for i in ids]

    def _index_task(self, old: Optional[StoredObject], new: Optional[StoredObject]) -> None:
        """Moves a task between the index entries when its node or service changes."""
        for attr, index in (("node_id", self._tasks_by_node),
                            ("service_id", self._tasks_by_service)):
            before = getattr(old, attr) if old is not None else ""
            after = getattr(new, attr) if new is not None else ""
            if before == after:
                continue
            if before:
                held = index.get(before)
                if held is not None:
                    held.discard(old.id)  # type: ignore[union-attr]
                    if not held:
                        del index[before]
            if after:
                index.setdefault(after, set()).add(new.id)  # type: ignore[union-attr]

    def snapshot(self) -> StoreView:
        """A read-only view that later writes do not change (copy-on-write)."""
        self._shared.update(self._tables)
        # Each table holds the message class of its kind (the view's field types).
        tables: dict[str, Mapping[str, Any]] = {
            kind + "s": MappingProxyType(table) for kind, table in self._tables.items()}
        log = TaskLog(self._task_log, self._log_start, len(self._task_log))
        return StoreView(version=self.version, task_log=log, **tables)

    def _table(self, kind: str) -> dict[str, StoredObject]:
        try:
            return self._tables[kind]
        except KeyError:
            raise ValueError(f"unknown kind {kind!r}; one of {', '.join(model.KINDS)}") from None

    def _writable(self, kind: str) -> dict[str, StoredObject]:
        if kind in self._shared:
            self._tables[kind] = dict(self._tables[kind])
            self._shared.discard(kind)
        return self._tables[kind]

    # ----------------------------------------------------------- writes ----

    def apply(self, txn: store_pb2.StoreTransaction) -> Applied:
        """Applies a whole transaction or, raising Conflict, nothing of it.

        `txn` is owned by the state afterwards: its objects become the stored
        objects (with meta filled in) and must not be touched by the caller.
        """
        return self.commit(self.prepare(txn))

    def prepare(self, txn: store_pb2.StoreTransaction) -> Prepared:
        """The checks and the watch events of `apply`, changing nothing (Conflict when a
        check fails). Only reads the tables: the one thread that changes the state
        (raft's) may run it while readers hold the store's lock, then `commit` under
        the lock; nothing may change the state between the two."""
        version = self.version + 1
        at = model.timestamp(txn.proposed_at)
        staged: dict[tuple[str, str], Optional[StoredObject]] = {}
        names: dict[tuple[str, str], Optional[str]] = {}
        events: list[watch_pb2.WatchEvent] = []

        def current(kind: str, obj_id: str) -> Optional[StoredObject]:
            key = (kind, obj_id)
            return staged[key] if key in staged else self._tables[kind].get(obj_id)

        def owner(kind: str, name: str) -> Optional[str]:
            key = (kind, name)
            return names[key] if key in names else self._names[kind].get(name)

        for n, action in enumerate(txn.actions):
            kind = action.object.WhichOneof("object")
            if kind is None:
                raise Conflict(f"action {n + 1} of the transaction carries no object")
            obj = getattr(action.object, kind)
            if not obj.id:
                raise Conflict(f"action {n + 1} of the transaction: {kind} has no ID")
            old = current(kind, obj.id)
            label = _Label(kind, old if old is not None else obj)  # named only if refused

            if action.kind == store_pb2.StoreAction.CREATE:
                if old is not None:
                    raise Conflict(f"{label} already exists")
                obj.meta.created_at.CopyFrom(at)
            elif action.kind == store_pb2.StoreAction.UPDATE:
                if old is None:
                    raise Conflict(f"{label} does not exist (it may have been removed)")
                if old.meta.version != action.expected_version:
                    raise Conflict(
                        f"{label} was changed by someone else: update is based on version "
                        f"{action.expected_version}, the store has version {old.meta.version}"
                    )
                obj.meta.created_at.CopyFrom(old.meta.created_at)
            elif action.kind == store_pb2.StoreAction.REMOVE:
                if old is None:
                    raise Conflict(f"{label} does not exist")
                if action.expected_version and old.meta.version != action.expected_version:
                    raise Conflict(
                        f"{label} was changed by someone else: remove is based on version "
                        f"{action.expected_version}, the store has version {old.meta.version}"
                    )
            else:
                raise Conflict(f"action {n + 1} of the transaction has unknown kind {action.kind}")

            if kind in UNIQUE_NAME_KINDS:
                name_before = model.object_name(old) if old is not None else ""
                name_after = "" if action.kind == store_pb2.StoreAction.REMOVE else model.object_name(obj)
                if name_after != name_before:
                    if name_after:
                        holder = owner(kind, name_after)
                        if holder is not None and holder != obj.id:
                            raise NameConflict(f'{kind} name "{name_after}" is already in use '
                                               f'by {kind} {holder}')
                        names[(kind, name_after)] = obj.id
                    if name_before and owner(kind, name_before) == obj.id:
                        names[(kind, name_before)] = None

            event = watch_pb2.WatchEvent(action=_ACTION_TO_EVENT[action.kind], version=version)
            event.committed_at.CopyFrom(at)
            if action.kind == store_pb2.StoreAction.REMOVE:
                staged[(kind, obj.id)] = None
                assert old is not None  # removing a missing object is a Conflict (above)
                getattr(event.object, kind).CopyFrom(old)  # one copy (wrap would make two)
            else:
                obj.meta.version = version
                obj.meta.updated_at.CopyFrom(at)
                staged[(kind, obj.id)] = obj
                event.object.CopyFrom(action.object)
                if old is not None:
                    getattr(event.old_object, kind).CopyFrom(old)
            events.append(event)
        return Prepared(version=version, events=events, staged=staged, names=names)

    def commit(self, prepared: Prepared) -> Applied:
        """Writes a prepared transaction into the tables (no check can fail here)."""
        if prepared.version != self.version + 1:
            raise RuntimeError(f"a transaction prepared for version {prepared.version} "
                               f"cannot be committed at version {self.version}")
        changed_tasks = []
        for (kind, obj_id), obj in prepared.staged.items():
            table = self._writable(kind)
            if kind == "task":
                self._index_task(table.get(obj_id), obj)
                changed_tasks.append(obj_id)
            if obj is None:
                table.pop(obj_id, None)
            else:
                table[obj_id] = obj
        for (kind, name), holder_id in prepared.names.items():
            if holder_id is None:
                self._names[kind].pop(name, None)
            else:
                self._names[kind][name] = holder_id
        self.version = prepared.version
        if changed_tasks:
            self._log_tasks(prepared.version, tuple(changed_tasks))
        return Applied(version=prepared.version, events=prepared.events)

    def _log_tasks(self, version: int, ids: tuple[str, ...]) -> None:
        """Appends to the task change log; a full log keeps its newer half in a new list
        (views hold the old one, which never changes again)."""
        if self._log_ids + len(ids) > TASK_LOG_MAX:
            kept: list[tuple[int, tuple[str, ...]]] = []
            count = 0
            for entry in reversed(self._task_log):
                if count + len(entry[1]) > TASK_LOG_MAX // 2:
                    break
                kept.append(entry)
                count += len(entry[1])
            kept.reverse()
            self._log_start = version - 1 if not kept else kept[0][0] - 1
            self._task_log, self._log_ids = kept, count
        self._task_log.append((version, ids))
        self._log_ids += len(ids)

    # ---------------------------------------------------------- dumping ----

    def dump(self) -> bytes:
        """Serialises the version and every object (for a raft snapshot)."""
        return dump_view(self.snapshot())

    @classmethod
    def load(cls, data: bytes) -> "StoreState":
        """The state `dump` wrote."""
        if data[: len(_DUMP_MAGIC)] != _DUMP_MAGIC:
            raise ValueError("not a Shoal store snapshot (wrong key, or corrupt)")
        state = cls()
        pos = len(_DUMP_MAGIC)
        (state.version,) = _U64.unpack_from(data, pos)
        pos += _U64.size
        while pos < len(data):
            (size,) = _U32.unpack_from(data, pos)
            pos += _U32.size
            wrapped = pb.StoreObject.FromString(data[pos : pos + size])
            pos += size
            kind = wrapped.WhichOneof("object")
            obj = getattr(wrapped, kind)
            state._tables[kind][obj.id] = obj
            if kind == "task":
                state._index_task(None, obj)
            name = model.object_name(obj)
            if kind in UNIQUE_NAME_KINDS and name:
                state._names[kind][name] = obj.id
        state._log_start = state.version  # what changed before the dump is not known
        return state

    def diff(self, newer: "StoreState") -> builtins.list[watch_pb2.WatchEvent]:
        """Watch events that turn this state into `newer` (after a snapshot install)."""
        events = []
        for kind in model.KINDS:
            mine, theirs = self._tables[kind], newer._tables[kind]
            for obj_id, obj in theirs.items():
                old = mine.get(obj_id)
                if old is None or old.meta.version != obj.meta.version:
                    event = watch_pb2.WatchEvent(
                        action=watch_pb2.WatchEvent.CREATE if old is None else watch_pb2.WatchEvent.UPDATE,
                        version=obj.meta.version,
                    )
                    event.object.CopyFrom(model.wrap(obj))
                    event.committed_at.CopyFrom(obj.meta.updated_at)
                    if old is not None:
                        event.old_object.CopyFrom(model.wrap(old))
                    events.append(event)
            for obj_id, old in mine.items():
                if obj_id not in theirs:
                    event = watch_pb2.WatchEvent(action=watch_pb2.WatchEvent.REMOVE, version=newer.version)
                    event.object.CopyFrom(model.wrap(old))
                    events.append(event)
        return events


def _label(kind: str, obj: StoredObject) -> str:
    name = model.object_name(obj)
    return f'{kind} "{name}" ({obj.id})' if name else f"{kind} {obj.id}"


class _Label:
    """How a refusal names an object, worked out only when one is formatted (most
    actions pass their checks, and a transaction may hold 30,000 of them)."""

    __slots__ = ("kind", "obj")

    def __init__(self, kind: str, obj: StoredObject) -> None:
        self.kind, self.obj = kind, obj

    def __str__(self) -> str:
        return _label(self.kind, self.obj)




def dump_view(view: StoreView) -> bytes:
    """Serialises a snapshot: what `StoreState.load` reads back."""
    parts = [_DUMP_MAGIC, _U64.pack(view.version)]
    for kind in model.KINDS:
        for obj in view.table(kind).values():
            blob = model.wrap(obj).SerializeToString()
            parts.append(_U32.pack(len(blob)))
            parts.append(blob)
    return b"".join(parts)


def view_digest(view: StoreView) -> str:
    """SHA-256 (hex) of a snapshot's objects, independent of the order they were
    stored in: two managers at the same store version must give the same digest
    (the chaos soak's agreement check, `InfoRequest.store_digest`)."""
    digest = hashlib.sha256()
    for kind in model.KINDS:
        table = view.table(kind)
        for obj_id in sorted(table):
            blob = model.wrap(table[obj_id]).SerializeToString(deterministic=True)
            digest.update(_U32.pack(len(blob)))
            digest.update(blob)
    return digest.hexdigest()
