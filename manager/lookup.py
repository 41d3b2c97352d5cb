"""Finding objects the way a person names them, and filtering lists.

Pure functions over store reads: an object is found by full ID, then exact
name, then a unique ID prefix — as Docker resolves `docker service inspect web`.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb


class NotFound(LookupError):
    """Nothing matched; the message is Docker's "No such <kind>: <ref>"."""


class Ambiguous(LookupError):
    """An ID prefix matched several objects."""


def resolve(objects: Iterable[Any], kind: str, ref: str) -> Any:
    """Returns the one object of `objects` that `ref` names, or raises."""
    objs = list(objects)
    if not ref:
        raise NotFound(f"No such {kind}: (empty name)")
    for obj in objs:
        if obj.id == ref:
            return obj
    by_name = [o for o in objs if model.object_name(o) == ref]
    if len(by_name) == 1:
        return by_name[0]
    by_prefix = [o for o in objs if o.id.startswith(ref)]
    if len(by_prefix) == 1:
        return by_prefix[0]
    if len(by_name) > 1 or len(by_prefix) > 1:
        count = max(len(by_name), len(by_prefix))
        raise Ambiguous(f"{kind} {ref} is ambiguous ({count} matches): use the full ID")
    raise NotFound(f"No such {kind}: {ref}")


def _labels_match(have: dict, want: dict) -> bool:
    for key, value in want.items():
        if key not in have or (value and have[key] != value):
            return False
    return True


def _labels_of(obj: Any) -> dict:
    if isinstance(obj, pb.Task):
        return dict(obj.annotations.labels)
    return dict(obj.spec.annotations.labels)


def matches(obj: Any, f: Optional[cpb.ListFilters]) -> bool:
    """True when obj passes every non-empty filter field."""
    if f is None:
        return True
    if f.names or f.name_prefixes:  # (a name costs a look into the object: only when asked)
        name = model.object_name(obj)
        if f.names and name not in f.names:
            return False
        if f.name_prefixes and not any(name.startswith(p) for p in f.name_prefixes):
            return False
    if f.id_prefixes and not any(obj.id.startswith(p) for p in f.id_prefixes):
        return False
    if f.labels and not _labels_match(_labels_of(obj), dict(f.labels)):
        return False
    if isinstance(obj, pb.Task):
        if f.service_ids and obj.service_id not in f.service_ids:
            return False
        if f.node_ids and obj.node_id not in f.node_ids:
            return False
        if f.desired_states and obj.desired_state not in f.desired_states:
            return False
    if isinstance(obj, pb.Node) and f.roles and obj.role not in f.roles:
        return False
    return True
