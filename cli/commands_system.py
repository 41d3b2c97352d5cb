"""`swarm info` and `swarm version`.

Owns the node-wide summaries: the client's own version (cli.client.client_version,
from the installed distribution) and what the node reports through Info.
"""
from __future__ import annotations

import argparse
import platform
import sys

from cli import pretty
from cli.client import API_VERSION, RpcFailure, client_version, describe_rpc_error
from cli.context import Context
from cli.templates import Template
from proto import control_pb2 as cpb

__all__ = ["API_VERSION", "client_version", "info", "version"]


def info(ctx: Context, ns: argparse.Namespace) -> int:
    response = ctx.call("Info", cpb.InfoRequest())
    if ns.format:
        fields = pretty.info_fields(response, ctx.host)
        if ns.format.strip() == "json":
            ctx.print(Template("{{json .}}", fields).render(fields))
        else:
            ctx.print(Template(ns.format, fields).render(fields))
        return 0
    cluster = None
    if response.is_manager and response.cluster_id:  # the cluster-wide settings Docker shows
        cluster = ctx.call("GetCluster", cpb.GetClusterRequest(cluster_id="")).cluster
    ctx.print(pretty.info_text(response, ctx.host, client_version(), cluster))
    return 0


def version(ctx: Context, ns: argparse.Namespace) -> int:
    lines = ["Client:",
             f" Version:         {client_version()}",
             f" API version:     {API_VERSION}",
             f" Python version:  {platform.python_version()}",
             f" OS/Arch:         {sys.platform}/{platform.machine()}"]
    ctx.print("\n".join(lines))
    try:
        response = ctx.call("Info", cpb.InfoRequest())
    except RpcFailure as exc:
        ctx.out.flush()
        ctx.warn(describe_rpc_error(exc, ctx.host, ctx.debug))
        return 1
    ctx.print("\nServer:\n"
              f" Version:         {response.version}\n"
              f" API version:     {API_VERSION}\n"
              f" Node ID:         {response.node_id}")
    return 0


def declare_info(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm info [-f FORMAT]` on `parser`."""
    parser.add_argument("-f", "--format", default=None, help="Format output using a template "
                                                             '("json" or {{.Field}})')
    parser.set_defaults(handler=info)


def declare_version(parser: argparse.ArgumentParser) -> None:
    """`swarm version` takes no arguments."""
    parser.set_defaults(handler=version)
