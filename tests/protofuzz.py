"""Hypothesis strategies for any protobuf message, read from its descriptor.

`messages(cls)` fills a message's fields recursively with random values: every
scalar type over its whole range (edges first), enums with their known numbers
and unknown ones, repeated fields, maps, nested messages and one member of each
oneof. `mutated(base)` starts from a valid message and changes one to three
fields anywhere in it (set to a random value, appended to, or cleared), so that
a validator is passed the parts it accepts and reaches its deep checks.

Strings come mostly from `STRINGS`: words the Control API gives a meaning to
(object names of the fuzz tests' store, constraint and sysctl forms, addresses,
capabilities, log options) with random text mixed in.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

F = FieldDescriptor

STRINGS = [
    # names of the objects the fuzz tests' store holds (tests/test_fuzz_controlapi.py)
    "web", "db", "job", "front", "back", "spare", "ingress", "host", "pw", "conf", "app", "app_web",
    "app_default", "app_pw", "default", "m1", "w1", "w2", "new",
    # kinds and actions of the Watch API
    "node", "service", "task", "network", "secret", "config", "cluster", "stack",
    "create", "update", "remove", "UPDATE",
    # forms the API parses
    "", " ", "a", "-a", ".", "a b", "a=b", "=b", "K=V", "K", "ALL", "NET_ADMIN", "net_admin",
    "CAP_CHOWN", "CAP_BOGUS", "node.role==manager", "node.role!=worker", "node.labels.zone",
    "node.labels.zone==a", "engine.labels.x", "node.labels.", "node.id==", "==", "node.x~y",
    "net.core.somaxconn", "kernel.shmmax", "vm.swappiness", "nofile", "nproc", "core",
    "10.0.0.5 db", "::1 h", "10.0.0.5", "1.2.3.4 a:b", "10.20.0.0/24", "10.20.0.1",
    "10.0.0.0/8", "10.0.0.0/31", "10.20.0.0/16", "256.0.0.0/24", "fe80::/64", "10.0.0.0/33",
    "/data", "/run/secrets/x", "relative", "/", "/a/../b", "rshared", "private", "bogus",
    "max-size", "max-file", "10m", "1k", "0", "-1", "1e3", "encrypted", "overlay", "local",
    "busybox:latest", "nginx:1", "SIGTERM", "root", "type", "device", "o", "size=1m", "tmpfs",
    "com.docker.stack.namespace", "SWMTKN-1-abc-def", "SWMKEY-1-abc",
    "a" * 63, "a" * 64, "x" * 300, "é", "\x00", "\t", "😀", "a\nb",
]
TEXT = st.one_of(st.sampled_from(STRINGS), st.sampled_from(STRINGS), st.text(max_size=12))

_INT_RANGES = {
    F.TYPE_INT32: (-2**31, 2**31 - 1), F.TYPE_SINT32: (-2**31, 2**31 - 1),
    F.TYPE_SFIXED32: (-2**31, 2**31 - 1),
    F.TYPE_INT64: (-2**63, 2**63 - 1), F.TYPE_SINT64: (-2**63, 2**63 - 1),
    F.TYPE_SFIXED64: (-2**63, 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1), F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1), F.TYPE_FIXED64: (0, 2**64 - 1),
}
_SMALL = [0, 1, 2, 3, 5, 10, 100, 1000, 65535, 65536, 10**8, 10**9, 10**15]


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    edges = sorted({v for v in [low, high, -1, *_SMALL, *(-v for v in _SMALL)]
                    if low <= v <= high})
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    """Values for one non-message element of `field`."""
    kind = field.type
    if kind in _INT_RANGES:
        return _integers(*_INT_RANGES[kind])
    if kind == F.TYPE_BOOL:
        return st.booleans()
    if kind == F.TYPE_STRING:
        return TEXT
    if kind == F.TYPE_BYTES:
        return st.one_of(st.binary(max_size=16), TEXT.map(lambda s: s.encode()))
    if kind == F.TYPE_FLOAT:
        return st.floats(width=32)
    if kind == F.TYPE_DOUBLE:
        return st.floats()
    if kind == F.TYPE_ENUM and field.enum_type is not None:
        known = sorted(field.enum_type.values_by_number)
        return st.one_of(st.sampled_from(known), st.sampled_from(known),
                         st.integers(-3, 40), _integers(-2**31, 2**31 - 1))
    raise TypeError(f"no strategy for field {field.full_name} (type {kind})")


def _entry(field: FieldDescriptor) -> Descriptor:
    """The key/value message of a map field."""
    entry = field.message_type
    assert entry is not None
    return entry


def is_map(field: FieldDescriptor) -> bool:
    return field.is_repeated and field.message_type is not None \
        and field.message_type.GetOptions().map_entry


def element(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    """Values for one element of `field` (a message for message fields)."""
    if field.type == F.TYPE_MESSAGE:
        return messages(field.message_type, depth - 1)
    return scalar(field)


def value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    """A whole value of `field`: a list for repeated fields, a dict for maps."""
    if is_map(field):
        entry = _entry(field)
        return st.dictionaries(element(entry.fields_by_name["key"], depth),
                               element(entry.fields_by_name["value"], depth), max_size=3)
    if field.is_repeated:
        return st.lists(element(field, depth), max_size=3)
    return element(field, depth)


def assign(target: Message, field: FieldDescriptor, new: Any, *, append: bool = False) -> None:
    """Sets `field` of `target` to `new` (as `value` draws it); `append` adds to what a
    repeated field or map holds instead of replacing it."""
    current = getattr(target, field.name)
    if is_map(field):
        if not append:
            current.clear()
        message_values = _entry(field).fields_by_name["value"].type == F.TYPE_MESSAGE
        for key, item in new.items():
            if message_values:
                current[key].CopyFrom(item)
            else:
                current[key] = item
    elif field.is_repeated:
        if not append:
            del current[:]
        for item in new:
            if field.type == F.TYPE_MESSAGE:
                current.add().CopyFrom(item)
            else:
                current.append(item)
    elif field.type == F.TYPE_MESSAGE:
        current.CopyFrom(new)
    else:
        setattr(target, field.name, new)


def _cls(descriptor: Descriptor) -> Callable[[], Message]:
    return message_factory.GetMessageClass(descriptor)


@st.composite
def _message(draw: st.DrawFn, descriptor: Descriptor, depth: int) -> Message:
    msg = _cls(descriptor)()
    if depth <= 0:
        return msg
    chosen_oneofs = {o.name: draw(st.sampled_from([None, *o.fields]))
                     for o in descriptor.oneofs}
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and not is_map(field) and oneof.name in chosen_oneofs:
            if chosen_oneofs[oneof.name] is not field:
                continue
        elif not draw(st.integers(0, 2)) == 0:  # a third of the fields are set
            continue
        assign(msg, field, draw(value(field, depth)))
        if field.type == F.TYPE_MESSAGE and not field.is_repeated:
            getattr(msg, field.name).SetInParent()  # an empty sub-message is present
    return msg


def messages(cls_or_descriptor: Any, depth: int = 4) -> st.SearchStrategy[Message]:
    """Random messages of a type, nested `depth` levels deep."""
    descriptor = getattr(cls_or_descriptor, "DESCRIPTOR", cls_or_descriptor)
    return _message(descriptor, depth)


Path = tuple[FieldDescriptor, ...]


@lru_cache(maxsize=None)
def paths(descriptor: Descriptor, depth: int = 7) -> tuple[Path, ...]:
    """Every field reachable from `descriptor`, as the fields leading to it (maps are
    leaves; repeated messages are entered through one of their elements)."""
    out: list[Path] = []
    for field in descriptor.fields:
        out.append((field,))
        if field.type == F.TYPE_MESSAGE and not is_map(field) and depth > 1:
            out.extend((field, *rest) for rest in paths(field.message_type, depth - 1))
    return tuple(out)


@st.composite
def _mutated(draw: st.DrawFn, base: Message, most: int) -> Message:
    msg = type(base)()
    msg.CopyFrom(base)
    for _ in range(draw(st.integers(1, most))):
        path = draw(st.sampled_from(paths(msg.DESCRIPTOR)))
        target = msg
        for field in path[:-1]:  # walk to the leaf, into an existing or a new element
            if field.is_repeated:
                items = getattr(target, field.name)
                index = draw(st.integers(0, len(items)))
                target = items[index] if index < len(items) else items.add()
            else:
                target = getattr(target, field.name)
        leaf = path[-1]
        how = draw(st.sampled_from(["set", "set", "set", "append", "clear"]))
        if how == "clear":
            target.ClearField(leaf.name)
        else:
            assign(target, leaf, draw(value(leaf, 3)), append=how == "append")
    return msg


def mutated(base: Message, most: int = 3) -> st.SearchStrategy[Message]:
    """`base` with one to `most` random fields changed."""
    return _mutated(base, most)
