"""The `swarm` command: argument tree and dispatch.

Owns the command tree (`swarm [-H HOST] [--debug] COMMAND ...`), choosing the
node to talk to (-H/--host, then $SWARM_HOST, then the default control
socket) and turning failures into one line on stderr with a non-zero exit.
Node-starting commands (`init`, `join`, `daemon`, `leave`) are dispatched to
`cli.commands_daemon`, imported only when one of them runs; every other command is
a Control API client in `cli.commands_*`.
"""
from __future__ import annotations

import argparse
import sys
import traceback
from typing import Callable, Optional, Sequence

import grpc

from cli import (commands_ca, commands_network, commands_node, commands_secret,
                 commands_service, commands_swarm, commands_system)
from cli.client import CLIError, describe_rpc_error, resolve_host
from cli.context import Context
from cli.flags import add_service_flags, bool_flag, rewrite_bool_assignments
from cli.parsing import UsageError, parse_duration

Handler = Callable[[Context, argparse.Namespace], int]


def _list_flags(parser: argparse.ArgumentParser, quiet_help: str) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    parser.add_argument("-f", "--filter", action="append", default=[],
                        help="Filter output based on conditions provided (key=value)")
    parser.add_argument("--format", default=None,
                        help='Format output: "table" (default), "json", or a Go template')


def _task_list_flags(parser: argparse.ArgumentParser) -> None:
    _list_flags(parser, "Only display task IDs")
    parser.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    parser.add_argument("--no-resolve", action="store_true",
                        help="Do not map IDs to Names")


def _client(parser: argparse.ArgumentParser, handler: Handler) -> None:
    parser.set_defaults(handler=handler)


def _node_starting(parser: argparse.ArgumentParser, name: str) -> None:
    parser.set_defaults(bootstrap=name)


def _add_init(sub) -> None:
    p = sub.add_parser("init", help="Initialize a swarm: this node becomes its first manager")
    p.add_argument("--advertise-addr", help="Advertised address (format: <ip|interface>[:port])")
    p.add_argument("--listen-addr", help="Listen address (format: <ip|interface>[:port]) "
                                         "(default 0.0.0.0:2377)")
    p.add_argument("--data-dir", help="Node data directory (default /var/lib/shoal)")
    p.add_argument("--foreground", action="store_true",
                   help="Run the node in this process instead of detaching")
    p.add_argument("--default-addr-pool", action="append", default=None,
                   help="Default address pool in CIDR format (repeatable) (default 10.0.0.0/8)")
    p.add_argument("--default-addr-pool-mask-length", type=int, default=None,
                   help="Subnet mask length for default address pool (default 24)")
    p.add_argument("--task-history-limit", type=int, default=None,
                   help="Task history retention limit (default 5)")
    p.add_argument("--dispatcher-heartbeat", default=None,
                   help="Dispatcher heartbeat period (ns|us|ms|s|m|h) (default 5s)")
    bool_flag(p, "--autolock", None, "Enable manager autolocking (requiring an unlock key "
                                     "to start a stopped manager)")
    p.add_argument("--force-new-cluster", action="store_true",
                   help="Force create a new cluster from current state: a one-manager cluster "
                        "from this (stopped) manager's data directory, every object kept")
    _node_starting(p, "cmd_init")


def _add_join(sub) -> None:
    p = sub.add_parser("join", help="Join a swarm as a node and/or manager")
    p.add_argument("--token", required=True, help="Token for entry into the swarm")
    p.add_argument("--advertise-addr", help="Advertised address (format: <ip|interface>[:port])")
    p.add_argument("--listen-addr", help="Listen address (format: <ip|interface>[:port])")
    p.add_argument("--data-dir", help="Node data directory (default /var/lib/shoal)")
    p.add_argument("--availability", default=None,
                   help='Availability of the node ("active"|"pause"|"drain")')
    p.add_argument("--foreground", action="store_true",
                   help="Run the node in this process instead of detaching")
    p.add_argument("remote", metavar="HOST:PORT", help="Address of a manager")
    _node_starting(p, "cmd_join")


def _add_daemon(sub) -> None:
    p = sub.add_parser("daemon", help="Start the node kept in a data directory")
    p.add_argument("--data-dir", help="Node data directory (default /var/lib/shoal)")
    p.add_argument("--foreground", action="store_true",
                   help="Run the node in this process instead of detaching")
    _node_starting(p, "cmd_daemon")


def _add_leave(sub) -> None:
    p = sub.add_parser("leave", help="Leave the swarm")
    p.add_argument("-f", "--force", action="store_true",
                   help="Force this node to leave the swarm, ignoring warnings")
    p.add_argument("--data-dir", default=None,
                   help="Node data directory (default /var/lib/shoal)")
    _node_starting(p, "cmd_leave")


def _add_join_token(sub) -> None:
    p = sub.add_parser("join-token", help="Manage join tokens",
                       usage="swarm join-token [OPTIONS] (worker|manager)")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display token")
    p.add_argument("--rotate", action="store_true", help="Rotate join token")
    p.add_argument("role", metavar="(worker|manager)")
    _client(p, commands_swarm.join_token)


def _add_ca(sub) -> None:
    p = sub.add_parser("ca", help="Display and rotate the root CA")
    p.add_argument("--rotate", action="store_true",
                   help="Rotate the swarm CA: a new root certificate and key are generated")
    p.add_argument("--cert-expiry", default=None,
                   help="Validity period for node certificates (ns|us|ms|s|m|h) "
                        "(default 2160h0m0s)")
    p.add_argument("-d", "--detach", action="store_true",
                   help="Exit immediately instead of waiting for the root rotation to converge")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress progress output")
    _client(p, commands_ca.ca)


def _add_update(sub) -> None:
    p = sub.add_parser("update", help="Update the swarm")
    p.add_argument("--dispatcher-heartbeat", default=None,
                   help="Dispatcher heartbeat period (ns|us|ms|s|m|h) (default 5s)")
    p.add_argument("--task-history-limit", default=None,
                   help="Task history retention limit (default 5)")
    p.add_argument("--cert-expiry", default=None,
                   help="Validity period for node certificates (ns|us|ms|s|m|h) "
                        "(default 2160h0m0s)")
    bool_flag(p, "--autolock", None, "Change manager autolocking setting (true|false)")
    _client(p, commands_swarm.update)


def _add_unlock(sub) -> None:
    p = sub.add_parser("unlock-key", help="Manage the unlock key")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display token")
    p.add_argument("--rotate", action="store_true", help="Rotate unlock key")
    _client(p, commands_swarm.unlock_key)
    p = sub.add_parser("unlock", help="Unlock swarm (the key is read from a prompt or "
                                      "standard input)")
    _client(p, commands_swarm.unlock)


def _add_service(sub) -> None:
    service = sub.add_parser("service", help="Manage services")
    ssub = service.add_subparsers(dest="subcommand", metavar="COMMAND")
    ssub.required = True

    p = ssub.add_parser("create", help="Create a new service",
                        usage="swarm service create [OPTIONS] IMAGE [COMMAND] [ARG...]")
    add_service_flags(p, update=False)
    _client(p, commands_service.create)

    p = ssub.add_parser("update", help="Update a service")
    add_service_flags(p, update=True)
    _client(p, commands_service.update)

    p = ssub.add_parser("ls", aliases=["list"], help="List services")
    _list_flags(p, "Only display IDs")
    _client(p, commands_service.ls)

    p = ssub.add_parser("ps", help="List the tasks of one or more services")
    _task_list_flags(p)
    p.add_argument("services", nargs="+", metavar="SERVICE")
    _client(p, commands_service.ps)

    p = ssub.add_parser("inspect", help="Display detailed information on one or more services")
    p.add_argument("--pretty", action="store_true", help="Print the information in a human "
                                                         "friendly format")
    p.add_argument("services", nargs="+", metavar="SERVICE")
    _client(p, commands_service.inspect)

    p = ssub.add_parser("scale", help="Scale one or multiple replicated services",
                        usage="swarm service scale SERVICE=REPLICAS [SERVICE=REPLICAS...]")
    bool_flag(p, "--detach", "-d", "Exit immediately instead of waiting for the service "
                                   "to converge")
    p.add_argument("pairs", nargs="+", metavar="SERVICE=REPLICAS")
    _client(p, commands_service.scale)

    p = ssub.add_parser("rm", aliases=["remove"], help="Remove one or more services")
    p.add_argument("services", nargs="+", metavar="SERVICE")
    _client(p, commands_service.remove)

    p = ssub.add_parser("logs", help="Fetch the logs of a service")
    p.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    p.add_argument("-n", "--tail", default="all",
                   help='Number of lines to show from the end of the logs (default "all")')
    p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    p.add_argument("--no-task-ids", action="store_true", help="Do not include task IDs in output")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("service", metavar="SERVICE")
    _client(p, commands_service.logs)


def _add_node(sub) -> None:
    node = sub.add_parser("node", help="Manage swarm nodes")
    nsub = node.add_subparsers(dest="subcommand", metavar="COMMAND")
    nsub.required = True

    p = nsub.add_parser("ls", aliases=["list"], help="List nodes in the swarm")
    _list_flags(p, "Only display IDs")
    _client(p, commands_node.ls)

    p = nsub.add_parser("inspect", help="Display detailed information on one or more nodes")
    p.add_argument("--pretty", action="store_true", help="Print the information in a human "
                                                         "friendly format")
    p.add_argument("nodes", nargs="*", metavar="NODE", help='Node ID, hostname or "self"')
    _client(p, commands_node.inspect)

    p = nsub.add_parser("update", help="Update a node")
    p.add_argument("--availability", default=None,
                   help='Availability of the node ("active"|"pause"|"drain")')
    p.add_argument("--role", default=None, help='Role of the node ("worker"|"manager")')
    p.add_argument("--label-add", action="append", default=[],
                   help="Add or update a node label (key=value)")
    p.add_argument("--label-rm", action="append", default=[], help="Remove a node label if exists")
    p.add_argument("node", metavar="NODE")
    _client(p, commands_node.update)

    p = nsub.add_parser("ps", help="List tasks running on one or more nodes, defaults to "
                                   "current node")
    _task_list_flags(p)
    p.add_argument("nodes", nargs="*", metavar="NODE")
    _client(p, commands_node.ps)

    p = nsub.add_parser("rm", aliases=["remove"], help="Remove one or more nodes from the swarm")
    p.add_argument("-f", "--force", action="store_true",
                   help="Force remove a node from the swarm")
    p.add_argument("nodes", nargs="+", metavar="NODE")
    _client(p, commands_node.remove)

    for verb, handler, text in (("promote", commands_node.promote, "Promote one or more nodes "
                                 "to manager in the swarm"),
                                ("demote", commands_node.demote, "Demote one or more nodes "
                                 "from manager in the swarm")):
        p = nsub.add_parser(verb, help=text)
        p.add_argument("nodes", nargs="+", metavar="NODE")
        _client(p, handler)


def build_parser() -> argparse.ArgumentParser:
    """The whole `swarm` command tree."""
    parser = argparse.ArgumentParser(
        prog="swarm", description="Shoal: a Swarm-style cluster orchestrator.")
    parser.add_argument("-H", "--host", default=None,
                        help="Node to talk to: unix:///path/swarm.sock or host:port "
                             "(default $SWARM_HOST, else unix:///var/lib/shoal/swarm.sock)")
    parser.add_argument("-D", "--debug", action="store_true", help="Enable debug output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_init(sub)
    _add_join(sub)
    _add_daemon(sub)
    _add_leave(sub)
    _add_join_token(sub)
    _add_ca(sub)
    _add_update(sub)
    _add_unlock(sub)
    p = sub.add_parser("info", help="Display information about the node and its swarm")
    p.add_argument("-f", "--format", default=None, help="Format output using a template "
                                                        '("json" or {{.Field}})')
    _client(p, commands_system.info)
    p = sub.add_parser("version", help="Show the swarm version information")
    _client(p, commands_system.version)
    _add_service(sub)
    _add_node(sub)
    for kind in ("secret", "config"):
        commands_secret.add_commands(sub, kind, _client, _list_flags)
    commands_network.add_parser(sub, _client)
    return parser


def _run_bootstrap(name: str, ns: argparse.Namespace) -> int:
    if getattr(ns, "dispatcher_heartbeat", None) is not None:
        parse_duration(ns.dispatcher_heartbeat, "--dispatcher-heartbeat")
    from cli import commands_daemon  # lazily: pulls in node/, manager/ and worker/

    command = getattr(commands_daemon, name, None)
    if command is None:
        raise CLIError(f"Error: swarm {ns.command} is not available in this build")
    return int(command(ns) or 0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `swarm` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    ns = parser.parse_args(rewrite_bool_assignments(args))
    debug = bool(ns.debug)
    ctx: Optional[Context] = None
    try:
        if getattr(ns, "bootstrap", None):
            return _run_bootstrap(ns.bootstrap, ns)
        ctx = Context(host=resolve_host(ns.host), debug=debug)
        return ns.handler(ctx, ns)
    except UsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except CLIError as exc:
        print(exc.message, file=sys.stderr)
        return exc.code
    except grpc.RpcError as exc:
        if debug:
            traceback.print_exc()
        host = ctx.host if ctx is not None else resolve_host(ns.host)
        print(describe_rpc_error(exc, host, debug), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    finally:
        if ctx is not None:
            ctx.close()


if __name__ == "__main__":
    sys.exit(main())
