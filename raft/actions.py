"""Builders for store actions: the only way callers describe a change.

`create(obj)`, `update(obj)` and `remove(obj)` each return one
`store_pb2.StoreAction`; a list of them passed to `Store.commit` is one
transaction.  `update` and `remove` carry the version the caller read
(`obj.meta.version`) so that the store can reject a write based on a stale
read.
"""
from __future__ import annotations

from google.protobuf.message import Message

from proto import model
from proto import objects_pb2 as pb
from proto import store_pb2
from proto.model import StoredObject


def create(obj: Message) -> store_pb2.StoreAction:
    """Creates `obj`; rejected if its ID, or its name for named kinds, exists."""
    _stored(obj)
    return store_pb2.StoreAction(kind=store_pb2.StoreAction.CREATE, object=model.wrap(obj))


def update(obj: Message, expected_version: int | None = None) -> store_pb2.StoreAction:
    """Replaces the stored object with `obj`.

    Rejected unless the stored version equals `expected_version`, which
    defaults to `obj.meta.version` (the version the caller read).
    """
    stored = _stored(obj)
    version = stored.meta.version if expected_version is None else expected_version
    return store_pb2.StoreAction(
        kind=store_pb2.StoreAction.UPDATE, object=model.wrap(obj), expected_version=version
    )


def remove(obj: Message, expected_version: int | None = None) -> store_pb2.StoreAction:
    """Deletes the stored object with `obj`'s ID.

    Rejected if it is missing or its version differs from `expected_version`
    (default `obj.meta.version`; 0 accepts any version).  Only the kind and
    the ID travel through raft.
    """
    stored = _stored(obj)
    version = stored.meta.version if expected_version is None else expected_version
    slim = type(stored)(id=stored.id)
    return store_pb2.StoreAction(
        kind=store_pb2.StoreAction.REMOVE, object=model.wrap(slim), expected_version=version
    )


def _stored(obj: Message) -> StoredObject:
    """`obj` as one of the stored kinds, checked to carry an ID."""
    # the classes of proto.model.StoredObject, spelled out so that mypy narrows to it
    if not isinstance(obj, (pb.Node, pb.Service, pb.Task, pb.Network, pb.Secret, pb.Config,
                            pb.Cluster, pb.Stack)):
        raise ValueError(f"{type(obj).__name__} is not a kind the store holds "
                         f"({', '.join(model.KINDS)})")
    if not obj.id:
        raise ValueError(f"{model.kind_of(obj)} has no ID; set one with proto.model.new_id()")
    return obj
