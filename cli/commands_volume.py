"""`swarm volume ls|inspect|rm|prune`: the named volumes of every node.

Named volumes are local to a node, as in Swarm. Each node's agent reports its
volumes to the managers, so `ls` shows every node's volumes in one table
(`NODE DRIVER VOLUME NAME SERVICES`; Docker shows one engine's at a time) and
`inspect` Docker's volume document plus the node. `rm` and `prune` act on one
node (`--node`, required) through its agent: `rm` is refused while a task of
that node uses the volume; `prune` asks for confirmation as Docker does
(`-f` skips it) and prints the removed volumes and the space reclaimed.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Mapping, Optional, Sequence

from cli.context import Context
from cli.flags import list_flags
from cli.parsing import UsageError, filter_values, parse_filters
from cli.templates import Template, render, tabulate
from proto import control_pb2 as cpb

FILTERS = ("node", "name", "label", "driver", "dangling")
FIELDS = ("Node", "Driver", "Name", "Services", "NodeID", "Labels", "Mountpoint", "Scope")
COLUMNS = ("Node", "Driver", "Name", "Services")
_HEADERS = {"Name": "VOLUME NAME"}
INSPECT_FIELDS = ("CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope",
                  "Node", "NodeID", "Services")
PRUNE_WARNING = ("WARNING! This will remove all local volumes not used by at least one "
                 "container.\nAre you sure you want to continue? [y/N] ")
NODE_NEEDED = ("{verb} needs --node NODE: volumes are local to a node "
               "(`swarm volume ls` shows where each one is)")


# ------------------------------------------------------------- pure parts ----

def request_filters(items: Sequence[str]) -> cpb.VolumeFilters:
    """`--filter` values as the ListVolumes filters (keys checked here)."""
    filters = parse_filters(items, FILTERS)
    dangling = filter_values(filters, "dangling")
    if len(dangling) > 1:
        raise UsageError('give the "dangling" filter once')
    for value in dangling:
        if value.lower() not in ("true", "false", "1", "0"):
            raise UsageError(f'invalid filter "dangling={value}": use dangling=true or '
                             "dangling=false")
    return cpb.VolumeFilters(nodes=filter_values(filters, "node"),
                             names=filter_values(filters, "name"),
                             labels=filter_values(filters, "label"),
                             drivers=filter_values(filters, "driver"),
                             dangling=dangling[0] if dangling else "")


def row(entry: cpb.VolumeEntry) -> dict[str, str]:
    """One `ls` row, keyed by template field names."""
    volume = entry.volume
    return {"Node": entry.node_hostname or entry.node_id, "NodeID": entry.node_id,
            "Driver": volume.driver, "Name": volume.name,
            "Services": ",".join(entry.services),
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(volume.labels.items())),
            "Mountpoint": volume.mountpoint, "Scope": "local"}


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    body = [[_HEADERS.get(c, c.upper()) for c in COLUMNS]]
    body += [[str(r.get(c, "")) for c in COLUMNS] for r in rows]
    return tabulate(body)


def inspect_doc(entry: cpb.VolumeEntry) -> dict[str, Any]:
    """Docker's `volume inspect` document, plus the node and the services using it."""
    volume = entry.volume
    created = volume.created_at
    return {"CreatedAt": created.ToJsonString() if created.seconds or created.nanos else "",
            "Driver": volume.driver, "Labels": dict(sorted(volume.labels.items())),
            "Mountpoint": volume.mountpoint, "Name": volume.name,
            "Options": dict(sorted(volume.options.items())), "Scope": "local",
            "Node": entry.node_hostname or entry.node_id, "NodeID": entry.node_id,
            "Services": list(entry.services)}


def human_size(num: float) -> str:
    """Docker's units.HumanSize: decimal units, 4 significant digits ("2.097MB")."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    value = float(num)
    i = 0
    while value >= 1000 and i < len(units) - 1:
        value /= 1000
        i += 1
    return f"{value:.4g}{units[i]}"


def prune_report(removed: Sequence[str], reclaimed: int) -> str:
    """What `volume prune` prints, as Docker does."""
    text = ""
    if removed:
        text = "Deleted Volumes:\n" + "".join(f"{name}\n" for name in removed) + "\n"
    return text + f"Total reclaimed space: {human_size(reclaimed if removed else 0)}"


def confirmed(answer: Optional[str]) -> bool:
    return (answer or "").strip().lower() in ("y", "yes")


# ------------------------------------------------------------------ verbs ----

def _entries(ctx: Context, filters: cpb.VolumeFilters) -> list[cpb.VolumeEntry]:
    return list(ctx.call("ListVolumes", cpb.ListVolumesRequest(filters=filters)).volumes)


def _node_ref(ctx: Context, ref: Optional[str], verb: str) -> str:
    if not ref:
        raise UsageError(NODE_NEEDED.format(verb=verb))
    return ctx.info().node_id if ref == "self" else ref


def ls(ctx: Context, ns: argparse.Namespace) -> int:
    entries = _entries(ctx, request_filters(ns.filter))
    if ns.quiet:
        seen: set[str] = set()
        for entry in entries:
            if entry.volume.name not in seen:
                seen.add(entry.volume.name)
                ctx.print(entry.volume.name)
        return 0
    text = render(ns.format, [row(e) for e in entries], COLUMNS, FIELDS, table=table)
    if text:
        ctx.print(text)
    return 0


def inspect(ctx: Context, ns: argparse.Namespace) -> int:
    nodes = [ctx.resolve_node(ns.node).id] if ns.node else []
    entries = _entries(ctx, cpb.VolumeFilters(nodes=nodes))
    docs: list[dict[str, Any]] = []
    status = 0
    for name in ns.names:
        found = [inspect_doc(e) for e in entries if e.volume.name == name]
        if not found:
            where = f" on node {ns.node}" if ns.node else ""
            ctx.warn(f"Error: No such volume: {name}{where}")
            status = 1
        docs += found
    if ns.format:
        template = Template(ns.format, INSPECT_FIELDS)
        for doc in docs:
            ctx.print(template.render(doc))
    else:
        ctx.print(json.dumps(docs, indent=4, ensure_ascii=False))
    return status


def remove(ctx: Context, ns: argparse.Namespace) -> int:
    node = _node_ref(ctx, ns.node, "swarm volume rm")
    status = 0
    for name in ns.names:
        def rm(name: str = name) -> None:
            ctx.call("RemoveVolume", cpb.RemoveVolumeRequest(node=node, name=name,
                                                             force=ns.force))
        if ctx.attempt(rm):
            ctx.print(name)
        else:
            status = 1
    return status


def prune(ctx: Context, ns: argparse.Namespace) -> int:
    node = _node_ref(ctx, ns.node, "swarm volume prune")
    if not ns.force:
        ctx.out.write(PRUNE_WARNING)
        ctx.out.flush()
        if not confirmed(sys.stdin.readline()):
            return 0
    answer = ctx.call("PruneVolumes", cpb.PruneVolumesRequest(node=node))
    ctx.print(prune_report(list(answer.removed), answer.reclaimed_bytes))
    return 0


def declare_volume(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm volume ls|inspect|rm|prune` on `parser`."""
    gsub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    gsub.required = True

    p = gsub.add_parser("ls", aliases=["list"], help="List the volumes of every node")
    list_flags(p, "Only display volume names")
    p.set_defaults(handler=ls)

    p = gsub.add_parser("inspect", help="Display detailed information on one or more volumes")
    p.add_argument("--node", default=None, help="Only the volume of this node")
    p.add_argument("-f", "--format", default=None, help="Format output using a Go template")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.set_defaults(handler=inspect)

    p = gsub.add_parser("rm", aliases=["remove"], help="Remove one or more volumes of a node",
                        usage="swarm volume rm [OPTIONS] --node NODE VOLUME [VOLUME...]")
    p.add_argument("--node", default=None, help="The node that holds the volumes (required)")
    p.add_argument("-f", "--force", action="store_true",
                   help="Do not fail when a volume does not exist")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.set_defaults(handler=remove)

    p = gsub.add_parser("prune", help="Remove the unused volumes of a node",
                        usage="swarm volume prune [OPTIONS] --node NODE")
    p.add_argument("--node", default=None, help="The node to prune (required)")
    p.add_argument("-f", "--force", action="store_true",
                   help="Do not prompt for confirmation")
    p.set_defaults(handler=prune)
