"""Which fields of two protobuf messages differ, as dotted paths ("task.container.image").

Pure: a stack deploy (manager/controlapi/stacks.py) lists, for each service it
would update, the spec fields that change, and `stack deploy --dry-run` shows
them. The diff descends into singular message fields present on both sides;
a repeated field or a map that differs is one path (its elements are not
matched up), as is a message field set on one side only (a oneof that
switched, e.g. "replicated" to "global", yields both members).
"""
from __future__ import annotations

from typing import Sequence

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message


def changed_fields(old: Message, new: Message) -> list[str]:
    """The dotted paths of the fields whose values differ, in field-number order.

    Both messages must be of the same type; equal messages give []."""
    if old.DESCRIPTOR is not new.DESCRIPTOR:
        raise TypeError(f"cannot compare a {old.DESCRIPTOR.full_name} with a "
                        f"{new.DESCRIPTOR.full_name}")
    out: list[str] = []
    _diff(old, new, "", out)
    return out


def _is_map(fd: FieldDescriptor) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def _diff(old: Message, new: Message, prefix: str, out: list[str]) -> None:
    fields: Sequence[FieldDescriptor] = old.DESCRIPTOR.fields  # type: ignore[assignment]
    for fd in sorted(fields, key=lambda f: f.number):
        path = prefix + fd.name
        a, b = getattr(old, fd.name), getattr(new, fd.name)
        if _is_map(fd):
            if dict(a) != dict(b):
                out.append(path)
        elif fd.is_repeated:
            if list(a) != list(b):
                out.append(path)
        elif fd.message_type is not None:
            has_a, has_b = old.HasField(fd.name), new.HasField(fd.name)
            if has_a != has_b:
                out.append(path)
            elif has_a and a != b:
                before = len(out)
                _diff(a, b, path + ".", out)
                if len(out) == before:   # equal fields, different presence deeper down
                    out.append(path)
        elif fd.has_presence and old.HasField(fd.name) != new.HasField(fd.name):
            out.append(path)
        elif a != b:
            out.append(path)
