"""Store objects as the manager handles them: typed reads and working copies.

The store hands out its own protobuf messages, typed only as `Message` by the
store's protocol (raft.api.ObjectStore). `get` reads one object as its own
class. A change is made on a deep copy (`copy`) and committed as an action,
so the stored object is never touched in place; `copy` is the one helper for
that, shared by every manager module.
"""
from __future__ import annotations

from typing import Optional, TypeVar

from google.protobuf.message import Message

from proto import model
from raft.api import ObjectStore

M = TypeVar("M", bound=Message)


def copy(obj: M) -> M:
    """A deep copy of a protobuf message, of the same type."""
    new = type(obj)()
    new.CopyFrom(obj)
    return new


def get(store: ObjectStore, cls: type[M], obj_id: str) -> Optional[M]:
    """The stored object of class `cls` (pb.Node, pb.Task, ...) with this ID, or None."""
    kind = model.kind_of_class(cls)
    obj = store.get(kind, obj_id)
    if obj is None:
        return None
    if not isinstance(obj, cls):
        raise TypeError(f"the store's {kind} table holds a {type(obj).__name__}")
    return obj
