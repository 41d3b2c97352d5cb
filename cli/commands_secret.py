"""`swarm secret ...` and `swarm config ...`: create, ls, inspect, rm.

Owns both verb sets on top of the Control API; they differ only in the kind
of object. Data comes from a file or standard input ("-"); a secret's data is
never shown (the manager does not return it), a config's is, in `inspect`.
Output follows Docker: `create` prints the ID, `ls` the columns
`ID NAME DRIVER CREATED UPDATED` (configs without DRIVER), `inspect` a JSON
list shaped like Docker's, `rm` the names it removed.
"""
from __future__ import annotations

import argparse
import base64
import datetime
import json
import sys
import time
from typing import Any, Mapping, Sequence

from cli import format as fmt
from cli import inspectformat
from cli.client import CLIError
from cli.context import Context
from cli.flags import list_flags
from cli.parsing import UsageError, filter_values, parse_filters, parse_labels
from cli.templates import render
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb

FILTERS = ("id", "name", "label")
SECRET_FIELDS = ("ID", "Name", "Driver", "CreatedAt", "UpdatedAt", "Labels")
SECRET_COLUMNS = ("ID", "Name", "Driver", "CreatedAt", "UpdatedAt")
CONFIG_FIELDS = ("ID", "Name", "CreatedAt", "UpdatedAt", "Labels")
CONFIG_COLUMNS = ("ID", "Name", "CreatedAt", "UpdatedAt")
_HEADERS = {"CreatedAt": "CREATED", "UpdatedAt": "UPDATED"}
LIMITS = {"secret": 500 * 1024, "config": 1000 * 1024}  # as the manager's (swarmkit's)
_RPC = {"secret": ("Secret", "Secrets", "secret_id", "secret_version"),
        "config": ("Config", "Configs", "config_id", "config_version")}


# ------------------------------------------------------------- pure parts ----

def ago(when: float, now: float) -> str:
    """Docker's CREATED/UPDATED column: "About a minute ago"."""
    return f"{fmt.human_duration(max(0.0, now - when))} ago"


def labels_text(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def row(obj: Any, now: float) -> dict[str, str]:
    """One `ls` row of a secret or config, keyed by Docker's template fields."""
    out = {
        "ID": obj.id,
        "Name": obj.spec.annotations.name,
        "CreatedAt": ago(model.ts_seconds(obj.meta.created_at), now),
        "UpdatedAt": ago(model.ts_seconds(obj.meta.updated_at or obj.meta.created_at), now),
        "Labels": labels_text(dict(obj.spec.annotations.labels)),
    }
    if isinstance(obj, pb.Secret):
        out["Driver"] = ""
    return out


def table(rows: Sequence[Mapping[str, Any]], columns: tuple[str, ...]) -> str:
    body = [[_HEADERS.get(c, c.upper()) for c in columns]]
    body += [[r.get(c, "") for c in columns] for r in rows]
    return fmt.tabulate(body)


def _rfc3339(ts: Any) -> str:
    seconds = model.ts_seconds(ts)
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def inspect_doc(obj: Any) -> dict[str, Any]:
    """Docker's inspect shape: ID, Version.Index, CreatedAt, UpdatedAt, Spec (no secret data)."""
    spec: dict[str, Any] = {"Name": obj.spec.annotations.name,
                            "Labels": dict(obj.spec.annotations.labels)}
    if isinstance(obj, pb.Config):
        spec["Data"] = base64.b64encode(obj.spec.data).decode()
    return {"ID": obj.id, "Version": {"Index": obj.meta.version},
            "CreatedAt": _rfc3339(obj.meta.created_at),
            "UpdatedAt": _rfc3339(obj.meta.updated_at or obj.meta.created_at),
            "Spec": spec}


def pretty_text(obj: Any) -> str:
    """`inspect --pretty`: the fields a person reads, as Docker prints them."""
    lines = [f"ID:              {obj.id}", f"Name:            {obj.spec.annotations.name}"]
    labels = dict(obj.spec.annotations.labels)
    if labels:
        lines.append("Labels:")
        lines += [f" - {k}={v}" for k, v in sorted(labels.items())]
    lines.append(f"Created at:      {_rfc3339(obj.meta.created_at)}")
    lines.append(f"Updated at:      {_rfc3339(obj.meta.updated_at or obj.meta.created_at)}")
    if isinstance(obj, pb.Config):
        lines += ["Data:", obj.spec.data.decode(errors="replace")]
    return "\n".join(lines)


# ------------------------------------------------------------------ verbs ----

def _read_data(source: str, kind: str) -> bytes:
    try:
        if source == "-":
            return sys.stdin.buffer.read()
        with open(source, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise CLIError(f"Error: cannot read the {kind} data from {source}: "
                       f"{exc.strerror or exc}") from None


def _get(ctx: Context, kind: str, ref: str) -> Any:
    single, _, id_field, _ = _RPC[kind]
    request = getattr(cpb, f"Get{single}Request")(**{id_field: ref})
    return getattr(ctx.call(f"Get{single}", request), kind)


def create(ctx: Context, ns: argparse.Namespace) -> int:
    kind = ns.kind
    labels = parse_labels(ns.label, "--label")
    if ns.file is None:
        raise UsageError(f'"swarm {kind} create" requires exactly 2 arguments: '
                         f"{kind.upper()} file|- (use - to read from standard input)")
    data = _read_data(ns.file, kind)
    if not data:
        raise CLIError(f"Error: {kind} data is empty: give a non-empty file or standard input")
    if len(data) > LIMITS[kind]:
        raise CLIError(f"Error: {kind} data is {len(data)} bytes; the limit is "
                       f"{LIMITS[kind] // 1024} KiB")
    spec_type = pb.SecretSpec if kind == "secret" else pb.ConfigSpec
    spec = spec_type(annotations=pb.Annotations(name=ns.name, labels=labels), data=data)
    single = _RPC[kind][0]
    request = getattr(cpb, f"Create{single}Request")(spec=spec)
    created = getattr(ctx.call(f"Create{single}", request), kind)
    ctx.print(created.id)
    return 0


def ls(ctx: Context, ns: argparse.Namespace) -> int:
    kind = ns.kind
    filters = parse_filters(ns.filter, FILTERS)
    request_filters = cpb.ListFilters(
        id_prefixes=filter_values(filters, "id"),
        name_prefixes=filter_values(filters, "name"),
        labels=dict(item.partition("=")[::2] for item in filter_values(filters, "label")))
    plural = _RPC[kind][1]
    response = ctx.call(f"List{plural}",
                        getattr(cpb, f"List{plural}Request")(filters=request_filters))
    objects = list(getattr(response, plural.lower()))
    if ns.quiet:
        for obj in objects:
            ctx.print(obj.id)
        return 0
    now = time.time()
    rows = [row(o, now) for o in objects]
    columns, fields = ((SECRET_COLUMNS, SECRET_FIELDS) if kind == "secret"
                       else (CONFIG_COLUMNS, CONFIG_FIELDS))
    text = render(ns.format, rows, columns, fields, table=lambda rs: table(list(rs), columns))
    if text:
        ctx.print(text)
    return 0


PATHS = {"secret": inspectformat.shape_resolver(inspectformat.SECRET_SHAPE, "a secret"),
         "config": inspectformat.shape_resolver(inspectformat.CONFIG_SHAPE, "a config")}


def inspect(ctx: Context, ns: argparse.Namespace) -> int:
    out = inspectformat.output(ns.format, ns.pretty, PATHS[ns.kind])
    found: list[Any] = []
    status = 0
    for ref in ns.names:
        if not ctx.attempt(lambda: found.append(_get(ctx, ns.kind, ref))):  # runs at once
            status = 1
    if out.pretty:
        if found:
            ctx.print("\n\n".join(pretty_text(o) for o in found))
    elif out.template:
        for text in out.each([inspect_doc(o) for o in found]):
            ctx.print(text)
    else:
        ctx.print(json.dumps([inspect_doc(o) for o in found], indent=4, ensure_ascii=False))
    return status


def remove(ctx: Context, ns: argparse.Namespace) -> int:
    kind = ns.kind
    single, _, id_field, _ = _RPC[kind]
    status = 0
    for ref in ns.names:
        def rm(ref: str = ref) -> None:
            obj = _get(ctx, kind, ref)
            ctx.call(f"Remove{single}",
                     getattr(cpb, f"Remove{single}Request")(**{id_field: obj.id}))
        if ctx.attempt(rm):
            ctx.print(ref)
        else:
            status = 1
    return status


def declare_secret(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm secret create|ls|inspect|rm` on `parser`."""
    _declare(parser, "secret")


def declare_config(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm config create|ls|inspect|rm` on `parser`."""
    _declare(parser, "config")


def _declare(parser: argparse.ArgumentParser, kind: str) -> None:
    word = kind.capitalize()
    gsub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    gsub.required = True

    p = gsub.add_parser("create", help=f"Create a {kind} from a file or STDIN as content",
                        usage=f"swarm {kind} create [OPTIONS] {kind.upper()} file|-")
    p.add_argument("-l", "--label", action="append", default=[], help=f"{word} labels")
    p.add_argument("name", metavar=kind.upper())
    p.add_argument("file", metavar="file|-", nargs="?", default=None)
    p.set_defaults(kind=kind)
    p.set_defaults(handler=create)

    p = gsub.add_parser("ls", aliases=["list"], help=f"List {kind}s")
    list_flags(p, "Only display IDs")
    p.set_defaults(kind=kind)
    p.set_defaults(handler=ls)

    p = gsub.add_parser("inspect", help=f"Display detailed information on one or more {kind}s")
    p.add_argument("-f", "--format", default=None,
                   help="Format the output using the given Go template")
    p.add_argument("--pretty", action="store_true",
                   help="Print the information in a human friendly format")
    p.add_argument("names", nargs="+", metavar=kind.upper())
    p.set_defaults(kind=kind)
    p.set_defaults(handler=inspect)

    p = gsub.add_parser("rm", aliases=["remove"], help=f"Remove one or more {kind}s")
    p.add_argument("names", nargs="+", metavar=kind.upper())
    p.set_defaults(kind=kind)
    p.set_defaults(handler=remove)

