"""`swarm node ...`: ls, inspect, update, ps, rm, promote, demote.

Owns the node verbs on top of the Control API. Nodes are named by ID,
unique ID prefix, hostname or "self" (`Context.resolve_node`); changes read
the node, edit a copy of its spec and send it with the version read.
"""
from __future__ import annotations

import argparse

from cli import format as fmt
from cli import inspectformat, pretty
from cli.client import CLIError
from cli.context import Context
from cli.flags import list_flags, task_list_flags
from cli.parsing import UsageError, filter_values, parse_filters, parse_kv
from cli.tasklist import TASK_FILTERS, filter_tasks, print_tasks
from cli.templates import render
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb

NODE_FILTERS = ("id", "name", "label", "node.label", "role", "membership")
_ROLES = {"manager": pb.MANAGER, "worker": pb.WORKER}
_AVAILABILITY = {"active": pb.NodeSpec.ACTIVE, "pause": pb.NodeSpec.PAUSE,
                 "drain": pb.NodeSpec.DRAIN}


def _label_matches(labels: dict, expr: str) -> bool:
    key, sep, value = expr.partition("=")
    return key in labels and (not sep or labels[key] == value)


def matches_node(node: pb.Node, filters) -> bool:
    """Docker's node filters, applied client-side."""
    for f in filters:
        if f.key == "id" and not node.id.startswith(f.value):
            return False
        if f.key == "name" and f.value not in node.description.hostname:
            return False
        if f.key == "role":
            if f.value.lower() not in _ROLES:
                raise UsageError(f'invalid role "{f.value}": expected manager or worker')
            if node.role != _ROLES[f.value.lower()]:
                return False
        if f.key == "membership":
            if f.value.lower() not in ("accepted", "pending"):
                raise UsageError(f'invalid membership "{f.value}": expected accepted or pending')
            if f.value.lower() == "pending":
                return False
        if f.key == "node.label" and not _label_matches(dict(node.spec.annotations.labels), f.value):
            return False
        if f.key == "label":
            labels = dict(node.description.engine_labels)
            labels.update(node.spec.annotations.labels)
            if not _label_matches(labels, f.value):
                return False
    return True


def ls(ctx: Context, ns: argparse.Namespace) -> int:
    filters = parse_filters(ns.filter, NODE_FILTERS)
    roles = [_ROLES[v.lower()] for v in filter_values(filters, "role") if v.lower() in _ROLES]
    request = cpb.ListFilters(id_prefixes=filter_values(filters, "id"), roles=roles)
    nodes = ctx.call("ListNodes", cpb.ListNodesRequest(filters=request)).nodes
    nodes = fmt.sort_nodes(n for n in nodes if matches_node(n, filters))
    if ns.quiet:
        for node in nodes:
            ctx.print(node.id)
        return 0
    self_id = ctx.info().node_id
    rows = [fmt.node_row(n, self_id) for n in nodes]
    text = render(ns.format, rows, fmt.NODE_COLUMNS, fmt.NODE_FIELDS, table=fmt.node_table)
    if text:
        ctx.print(text)
    return 0


NODE_PATHS = inspectformat.message_resolver(pb.Node, "a node")


def inspect(ctx: Context, ns: argparse.Namespace) -> int:
    out = inspectformat.output(ns.format, ns.pretty, NODE_PATHS)
    nodes = []
    status = 0
    for ref in ns.nodes or ["self"]:
        if not ctx.attempt(lambda: nodes.append(ctx.resolve_node(ref))):
            status = 1
    if out.pretty:
        if nodes:
            ctx.print("\n\n".join(pretty.node_text(n) for n in nodes))
    elif out.template:
        for text in out.each([fmt.to_dict(n) for n in nodes]):
            ctx.print(text)
    else:
        ctx.print(fmt.inspect_json(nodes))
    return status


def _send_spec(ctx: Context, node: pb.Node, spec: pb.NodeSpec) -> None:
    ctx.call("UpdateNode", cpb.UpdateNodeRequest(node_id=node.id, node_version=node.meta.version,
                                                 spec=spec))


def update(ctx: Context, ns: argparse.Namespace) -> int:
    availability = None
    if ns.availability is not None:
        value = ns.availability.strip().lower()
        if value not in _AVAILABILITY:
            raise UsageError(f'invalid availability "{ns.availability}": expected active, '
                             "pause or drain")
        availability = _AVAILABILITY[value]
    role = None
    if ns.role is not None:
        if ns.role.lower() not in _ROLES:
            raise UsageError(f'invalid role "{ns.role}": expected manager or worker')
        role = _ROLES[ns.role.lower()]
    additions = dict(parse_kv(item, "--label-add") for item in ns.label_add)
    node = ctx.resolve_node(ns.node)
    spec = pb.NodeSpec()
    spec.CopyFrom(node.spec)
    labels = spec.annotations.labels
    for key in ns.label_rm:
        if key not in labels:
            raise CLIError(f"Error: key {key} doesn't exist in node's labels")
        del labels[key]
    labels.update(additions)
    if availability is not None:
        spec.availability = availability
    if role is not None:
        spec.desired_role = role
    _send_spec(ctx, node, spec)
    ctx.print(ns.node)
    return 0


def _change_role(ctx: Context, refs: list[str], role: pb.NodeRole) -> int:
    status = 0
    word = "manager" if role == pb.MANAGER else "worker"
    for ref in refs:
        said: list[str] = []

        def change() -> None:
            node = ctx.resolve_node(ref)
            name = node.description.hostname or ref
            if node.spec.desired_role == role:
                said.append(f"Node {name} is already a {word}.")
                return
            spec = pb.NodeSpec()
            spec.CopyFrom(node.spec)
            spec.desired_role = role
            _send_spec(ctx, node, spec)
            said.append(f"Node {name} promoted to a manager in the swarm." if role == pb.MANAGER
                        else f"Manager {name} demoted in the swarm.")
        if not ctx.attempt(change):
            status = 1
        for line in said:
            ctx.print(line)
    return status


def promote(ctx: Context, ns: argparse.Namespace) -> int:
    return _change_role(ctx, ns.nodes, pb.MANAGER)


def demote(ctx: Context, ns: argparse.Namespace) -> int:
    return _change_role(ctx, ns.nodes, pb.WORKER)


def remove(ctx: Context, ns: argparse.Namespace) -> int:
    status = 0
    for ref in ns.nodes:
        def rm() -> None:
            node = ctx.resolve_node(ref)
            ctx.call("RemoveNode", cpb.RemoveNodeRequest(node_id=node.id, force=bool(ns.force)))
        if not ctx.attempt(rm):
            status = 1
            continue
        ctx.print(ref)
    return status


def ps(ctx: Context, ns: argparse.Namespace) -> int:
    filters = parse_filters(ns.filter, TASK_FILTERS)
    nodes = [ctx.resolve_node(ref) for ref in (ns.nodes or ["self"])]
    node_names = ctx.node_names()
    task_filter = cpb.ListFilters(node_ids=sorted({n.id for n in nodes}))
    tasks = ctx.call("ListTasks", cpb.ListTasksRequest(filters=task_filter)).tasks
    ids = {n.id for n in nodes}
    tasks = [t for t in tasks if t.node_id in ids]
    services = filter_values(filters, "service")
    if services:
        wanted = {ctx.get_service(s).id for s in services}
        tasks = [t for t in tasks if t.service_id in wanted]
    print_tasks(ctx, filter_tasks(tasks, filters, node_names), ns, node_names)
    return 0


def declare_node(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm node ls|inspect|update|ps|rm|promote|demote` on `parser`."""
    nsub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    nsub.required = True

    p = nsub.add_parser("ls", aliases=["list"], help="List nodes in the swarm")
    list_flags(p, "Only display IDs")
    p.set_defaults(handler=ls)

    p = nsub.add_parser("inspect", help="Display detailed information on one or more nodes")
    p.add_argument("-f", "--format", default=None,
                   help="Format the output using the given Go template")
    p.add_argument("--pretty", action="store_true", help="Print the information in a human "
                                                         "friendly format")
    p.add_argument("nodes", nargs="*", metavar="NODE", help='Node ID, hostname or "self"')
    p.set_defaults(handler=inspect)

    p = nsub.add_parser("update", help="Update a node")
    p.add_argument("--availability", default=None,
                   help='Availability of the node ("active"|"pause"|"drain")')
    p.add_argument("--role", default=None, help='Role of the node ("worker"|"manager")')
    p.add_argument("--label-add", action="append", default=[],
                   help="Add or update a node label (key=value)")
    p.add_argument("--label-rm", action="append", default=[], help="Remove a node label if exists")
    p.add_argument("node", metavar="NODE")
    p.set_defaults(handler=update)

    p = nsub.add_parser("ps", help="List tasks running on one or more nodes, defaults to "
                                   "current node")
    task_list_flags(p)
    p.add_argument("nodes", nargs="*", metavar="NODE")
    p.set_defaults(handler=ps)

    p = nsub.add_parser("rm", aliases=["remove"], help="Remove one or more nodes from the swarm")
    p.add_argument("-f", "--force", action="store_true",
                   help="Force remove a node from the swarm")
    p.add_argument("nodes", nargs="+", metavar="NODE")
    p.set_defaults(handler=remove)

    for verb, handler, text in (("promote", promote, "Promote one or more nodes "
                                 "to manager in the swarm"),
                                ("demote", demote, "Demote one or more nodes "
                                 "from manager in the swarm")):
        p = nsub.add_parser(verb, help=text)
        p.add_argument("nodes", nargs="+", metavar="NODE")
        p.set_defaults(handler=handler)
