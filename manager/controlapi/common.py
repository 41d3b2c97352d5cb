"""What every Control API rule shares: the refusal type and the object look-ups.

A rule refuses a request by raising `Refusal`: a gRPC-agnostic `Code` and the
exact message the person sees (the CLI and end-to-end tests match on these
messages). `manager.controlapi.server` maps the codes to gRPC status codes.
Nothing here does I/O or knows about gRPC.
"""
from __future__ import annotations

import enum
from typing import Any, Iterable, Optional, TypeVar

from google.protobuf.message import Message

from manager import lookup
from proto import control_pb2 as cpb
from proto import model

M = TypeVar("M", bound=Message)

NO_LEADER = ("The swarm does not have a leader. It's possible that too few managers are "
             "online. Make sure more than half of the managers are online.")


# The longest refusal message sent, in bytes as gRPC's status message encodes them
# (percent-encoding outside printable ASCII): a client drops a response whose
# headers pass 8 KiB, and a message quotes what the request said (a 3 MiB name).
MAX_MESSAGE_BYTES = 4096


def _encoded_size(text: str) -> int:
    return sum(1 if 0x20 <= b < 0x7F and b != 0x25 else 3 for b in text.encode())


def fitted(message: str) -> str:
    """`message` cut to what a gRPC status can carry, saying how much was cut."""
    if _encoded_size(message) <= MAX_MESSAGE_BYTES:
        return message
    keep = MAX_MESSAGE_BYTES  # every character takes one byte at least
    while True:
        keep = keep * 7 // 8
        head = message[:keep]
        note = f" ... ({len(message) - keep} more characters cut)"
        if _encoded_size(head + note) <= MAX_MESSAGE_BYTES:
            return head + note


class Code(enum.Enum):
    """Why a request is refused (the servicer turns it into a gRPC status code)."""
    INVALID_ARGUMENT = "invalid argument"
    NOT_FOUND = "not found"
    ALREADY_EXISTS = "already exists"
    FAILED_PRECONDITION = "failed precondition"
    UNAVAILABLE = "unavailable"


class Refusal(Exception):
    """A request the cluster will not carry out; `message` says why, to a person."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"Refusal({self.code.name}, {self.message!r})"


def disk_refusal(exc: Exception) -> Refusal:
    """A write the raft leader could not record on its disk (raft DiskError): its
    message names the file system that is full; nothing of the change was made."""
    return Refusal(Code.UNAVAILABLE, f"The manager could not record the change: {exc}")


def invalid(message: str) -> Refusal:
    """An INVALID_ARGUMENT refusal (raise it)."""
    return Refusal(Code.INVALID_ARGUMENT, message)


def precondition(message: str) -> Refusal:
    """A FAILED_PRECONDITION refusal (raise it)."""
    return Refusal(Code.FAILED_PRECONDITION, message)


def find(objects: Iterable[M], kind: str, ref: str) -> M:
    """The object `ref` names (full ID, name, unique ID prefix), or a refusal."""
    try:
        found: Any = lookup.resolve(objects, kind, ref)
    except lookup.NotFound as exc:
        raise Refusal(Code.NOT_FOUND, str(exc)) from None
    except lookup.Ambiguous as exc:
        raise invalid(str(exc)) from None
    return found


def check_version(kind: str, obj: Any, version: int) -> None:
    """Refuses an update that read an older version of the object (0: no check)."""
    if version and version != obj.meta.version:
        raise precondition(
            f"update out of sequence: {kind} {model.object_name(obj)} is at version "
            f"{obj.meta.version}, the request read version {version}; read it again and retry")


def listed(objects: Iterable[M], filters: Optional[cpb.ListFilters]) -> list[M]:
    """The objects that pass the filters, by name then ID (as `ls` shows them)."""
    out = [o for o in objects if lookup.matches(o, filters)]
    out.sort(key=lambda o: (model.object_name(o), getattr(o, "id")))
    return out
