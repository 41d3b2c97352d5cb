"""Working copies of store objects.

The store hands out its own protobuf messages; a change is made on a deep copy
and committed as an action, so the stored object is never touched in place.
`copy` is that one helper, shared by every manager module.
"""
from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import Message

M = TypeVar("M", bound=Message)


def copy(obj: M) -> M:
    """A deep copy of a protobuf message, of the same type."""
    new = type(obj)()
    new.CopyFrom(obj)
    return new
