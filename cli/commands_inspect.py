"""`swarm inspect`: any cluster object by ID, ID prefix or name, as JSON.

Docker's top-level `inspect` for swarm objects: each reference is looked up as a
task, then a service, then a node (or only as `--type`), and the objects found
are printed as one JSON list, as the `inspect` of their own command prints them,
or each through `-f/--format TEMPLATE` (cli/inspectformat.py, as `service inspect -f`).
A task's status carries its container's health (status, failing streak and the
last check results with their output) when it has a healthcheck.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

from google.protobuf.message import Message

from cli import format as fmt
from cli.client import CLIError, RpcFailure, describe_rpc_error, is_not_found
from cli.context import Context
from cli.inspectformat import message_resolver
from cli.parsing import UsageError
from cli.templates import Template
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb

Lookup = Callable[[Context, str], Message]


def _task(ctx: Context, ref: str) -> Message:
    return ctx.call("GetTask", cpb.GetTaskRequest(task_id=ref)).task


def _service(ctx: Context, ref: str) -> Message:
    return ctx.get_service(ref)


def _node(ctx: Context, ref: str) -> Message:
    return ctx.resolve_node(ref)


LOOKUPS: dict[str, Lookup] = {"task": _task, "service": _service, "node": _node}
MESSAGES: dict[str, type[Message]] = {"task": pb.Task, "service": pb.Service, "node": pb.Node}


def templates(text: str, kinds: list[str]) -> dict[str, Template | UsageError]:
    """The template parsed for each kind of object (or why it cannot run on that kind);
    UsageError when it runs on none of them."""
    parsed: dict[str, Template | UsageError] = {}
    errors: list[UsageError] = []
    for kind in kinds:
        try:
            parsed[kind] = Template(text, (), resolve=message_resolver(MESSAGES[kind],
                                                                       f"a {kind}"))
        except UsageError as exc:
            parsed[kind] = exc
            errors.append(exc)
    if len(errors) == len(kinds):
        raise errors[0]
    return parsed


def _render(parsed: dict[str, Template | UsageError], obj: Message) -> str:
    kind = next(k for k, m in MESSAGES.items() if isinstance(obj, m))
    template = parsed[kind]
    if isinstance(template, UsageError):
        raise template
    return template.render(fmt.to_dict(obj))


def _lookup(ctx: Context, ref: str, kinds: list[str]) -> tuple[Message | None, str]:
    """The first object of `kinds` that `ref` names, or None with the last error."""
    error = f"Error: No such object: {ref}"
    for kind in kinds:
        try:
            return LOOKUPS[kind](ctx, ref), ""
        except RpcFailure as exc:
            if not is_not_found(exc):
                return None, describe_rpc_error(exc, ctx.host, ctx.debug)
        except CLIError as exc:  # no such node (or an ambiguous name)
            if len(kinds) == 1:
                error = exc.message
    return None, error


def inspect(ctx: Context, ns: argparse.Namespace) -> int:
    kinds = [ns.type] if ns.type else list(LOOKUPS)
    parsed = templates(ns.format, kinds) if ns.format else None
    found: list[Any] = []
    status = 0
    for ref in ns.objects:
        obj, error = _lookup(ctx, ref, kinds)
        if obj is None:
            ctx.warn(error)
            status = 1
        else:
            found.append(obj)
    if parsed is None:
        ctx.print(fmt.inspect_json(found))
    else:
        for obj in found:
            ctx.print(_render(parsed, obj))
    return status


def declare_inspect(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm inspect [--type task|service|node] OBJECT...` on `parser`."""
    parser.add_argument("-f", "--format", default=None,
                        help="Format the output using the given Go template")
    parser.add_argument("--type", choices=sorted(LOOKUPS), default=None,
                        help="Only look up objects of this type")
    parser.add_argument("objects", nargs="+", metavar="OBJECT")
    parser.set_defaults(handler=inspect)
