"""`-f/--format` of the inspect commands: one template output per inspected object.

Owns how `node|service|secret|config inspect -f TEMPLATE` (and `swarm inspect -f`)
read an object: the template runs against the same JSON document `inspect` prints,
so `{{json .spec}}` shows what the JSON output shows. Node, service and task
documents are their protobuf messages with the .proto's field names
(`spec.annotations.name`); a path is resolved once, when the template is parsed,
against the message's descriptor, so Docker's spellings of the fields work too:
Go-style names of the same field (`.ID`, `.Description.Hostname`,
`.ManagerStatus.Leader`, `.Spec.TaskTemplate.ContainerSpec.Image`) and the names
Docker gives fields Shoal keeps elsewhere (`.Spec.Name` and `.Spec.Labels` are
under `annotations`, `.Version.Index` and `.CreatedAt` under `meta`,
`.Spec.Mode.Replicated` is the spec's `replicated`). A path that names no field is
refused before anything is printed, naming the field, as Docker's "can't evaluate
field" is. Secret and config documents are already Docker's shape (`ID`,
`Spec.Name`); their paths are checked against that shape.

`--pretty` prints the human-readable text instead; `--format pretty` means
`--pretty` (as in Docker) and giving both is refused.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, NamedTuple, Optional, Sequence, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from cli.parsing import UsageError
from cli.templates import Resolved, Resolver, Template

# Docker's name for a field Shoal keeps under another path: (guard, path). The alias
# applies in a message that has the field `guard`; `path` is the .proto field names to
# follow from there (empty: the same message, Docker's grouping level, e.g. Mode).
_ALIASES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "Name": (("annotations", ("annotations", "name")),),
    "Labels": (("annotations", ("annotations", "labels")),
               ("engine_labels", ("engine_labels",))),
    "Version": (("meta", ("meta",)),),
    "Index": (("version", ("version",)),),
    "CreatedAt": (("meta", ("meta", "created_at")),),
    "UpdatedAt": (("meta", ("meta", "updated_at")),),
    "TaskTemplate": (("task", ("task",)),),
    "ContainerSpec": (("container", ("container",)),),
    "RestartPolicy": (("restart", ("restart",)),),
    "UpdateConfig": (("update", ("update",)),),
    "RollbackConfig": (("rollback", ("rollback",)),),
    "EndpointSpec": (("endpoint", ("endpoint",)),),
    "Mode": (("replicated", ()),),
    "Engine": (("engine_version", ()),),
    "Role": (("desired_role", ("desired_role",)),),
    "NetworksAttachments": (("networks", ("networks",)),),
}
_ACRONYMS = re.compile(r"(IDs|IPs|CPUs|ID|IP|CPU|TLS|OS|VIP)(?=[A-Z]|$)")
_WORDS = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake(name: str) -> str:
    """A Go-style field name as the .proto spells it: EngineVersion -> engine_version,
    NodeID -> node_id, TLSInfo -> tls_info."""
    name = _ACRONYMS.sub(lambda m: m.group(1).capitalize(), name)
    return _WORDS.sub("_", name).lower()


def _field(message: Descriptor, name: str) -> Optional[FieldDescriptor]:
    return message.fields_by_name.get(name)


def _step(message: Descriptor, key: str) -> Optional[tuple[str, ...]]:
    """The .proto field names `key` stands for in `message`, or None."""
    for candidate in (key, snake(key)):
        if _field(message, candidate) is not None:
            return (candidate,)
    for guard, path in _ALIASES.get(key, ()):
        if _field(message, guard) is not None:
            return path
    return None


TIMESTAMP = "google.protobuf.Timestamp"   # JSON shows it as a string, not an object


def _is_map(field: FieldDescriptor) -> bool:
    entry = field.message_type
    return entry is not None and bool(entry.GetOptions().map_entry)


def _inner(field: FieldDescriptor) -> Optional[Descriptor]:
    """The message a template can go into with `.Key` from `field`: a single message
    that JSON shows as an object; None for anything else."""
    message = field.message_type
    if message is None or field.is_repeated or message.full_name == TIMESTAMP:
        return None
    return message


def zero_value(field: FieldDescriptor) -> Any:
    """What a field reads as when the document leaves it out (an unset message on the
    way, e.g. a worker's manager_status): its zero value, as a Go struct's field is; None
    ("<no value>") for a message."""
    if field.is_repeated:
        return {} if _is_map(field) else []
    if field.message_type is not None:
        return "" if field.message_type.full_name == TIMESTAMP else None
    if field.enum_type is not None:
        return field.enum_type.values[0].name
    if field.type == FieldDescriptor.TYPE_BYTES:
        return ""   # JSON shows bytes as base64 text
    return field.default_value


def message_resolver(root: type[Message], kind: str) -> Resolver:
    """Resolves template paths against documents of the protobuf message `root`
    (cli/format.to_dict of one)."""

    def resolve(path: list[str]) -> Resolved:
        keys: list[str] = []
        message: Optional[Descriptor] = cast(Descriptor, root.DESCRIPTOR)  # or upb's twin
        field: Optional[FieldDescriptor] = None
        in_map = False
        for i, key in enumerate(path):
            if in_map:   # the rest are the map's keys (labels)
                keys.append(key)
                continue
            where = f'".{".".join(path[:i])}"' if i else kind
            if message is None:
                raise UsageError(f'invalid --format: {where} is not an object; it has no '
                                 f'field "{key}"')
            names = _step(message, key)
            if names is None:
                raise UsageError(f'invalid --format: {where} has no field "{key}" (in '
                                 f'".{".".join(path)}"); its fields are '
                                 + ", ".join(f.name for f in message.fields))
            for name in names:   # an alias's path goes through messages only
                assert message is not None
                field = message.fields_by_name[name]
                keys.append(name)
                in_map = _is_map(field)
                message = None if in_map else _inner(field)
        return Resolved(keys, None if in_map or field is None else zero_value(field))

    return resolve


# What a secret's or config's document holds (cli/commands_secret.inspect_doc);
# None: a value, "*": a map whose keys are the labels.
Shape = Mapping[str, Any]
SECRET_SHAPE: Shape = {"ID": None, "Version": {"Index": None}, "CreatedAt": None,
                       "UpdatedAt": None, "Spec": {"Name": None, "Labels": "*"}}
CONFIG_SHAPE: Shape = {**SECRET_SHAPE,
                       "Spec": {"Name": None, "Labels": "*", "Data": None}}


def shape_resolver(shape: Shape, kind: str) -> Resolver:
    """Resolves template paths against documents of a known `shape`."""

    def resolve(path: list[str]) -> Resolved:
        level: Any = shape
        for i, key in enumerate(path):
            if level == "*":
                continue
            if not isinstance(level, Mapping):
                raise UsageError(f'invalid --format: ".{".".join(path[:i])}" is not an '
                                 f'object; it has no field "{key}"')
            if key not in level:
                where = f'".{".".join(path[:i])}"' if i else kind
                raise UsageError(f'invalid --format: {where} has no field "{key}" (in '
                                 f'".{".".join(path)}"); its fields are ' + ", ".join(level))
            level = level[key]
        return Resolved(path)

    return resolve


def check_pretty(text: Optional[str], pretty: bool) -> bool:
    """Whether to print the human-readable text: `--pretty` or `--format pretty`.

    Refuses `--pretty` with another `--format` (Docker refuses it on `service inspect`;
    Shoal on every inspect, rather than ignore one of them) and a template that starts
    with "pretty" (Docker's "cannot supply extra formatting options")."""
    if pretty and text and text != "pretty":
        raise UsageError("--format is incompatible with human friendly format (--pretty): "
                         "give one of them")
    if text and text.startswith("pretty") and text != "pretty":
        raise UsageError("Cannot supply extra formatting options to the pretty template: "
                         "use --format pretty (or --pretty) alone, or a template")
    return pretty or text == "pretty"


class InspectOutput(NamedTuple):
    """How an inspect command prints what it found, decided before any call: the
    human-readable text, a template, or (neither) the JSON list. (A NamedTuple: the
    list commands that import this module avoid `dataclasses`' start-up cost.)"""

    pretty: bool
    template: Optional[Template]

    def each(self, docs: Sequence[Mapping[str, Any]]) -> list[str]:
        """The template's output for each document."""
        assert self.template is not None
        return [self.template.render(doc) for doc in docs]


def output(text: Optional[str], pretty: bool, resolve: Resolver) -> InspectOutput:
    """The output `--format TEXT` / `--pretty` ask for, or UsageError (a template that
    cannot run, both flags)."""
    if check_pretty(text, pretty):
        return InspectOutput(True, None)
    return InspectOutput(False, Template(text, (), resolve=resolve) if text else None)
