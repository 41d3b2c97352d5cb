"""The `swarm` command: argument tree and dispatch.

Owns the command tree (`swarm [-H HOST] [--debug] [-v] COMMAND ...`), choosing the
node to talk to (-H/--host, then $SWARM_HOST, then the default control
socket) and turning failures into one line on stderr with a non-zero exit.

People run `swarm node ls` in loops and scripts, so a run imports only the
command it runs. `COMMANDS` is the table of top-level commands: each one's
help line and the module that declares its arguments (`declare_<name>`) and
holds its handlers. That module is imported (by name, with importlib) when
the command's parser is first used, to parse or to print help; `swarm --help`
imports none of them. Client commands are Control API clients in
`cli.commands_*`. Node-starting commands (`init`, `join`, `daemon`, `leave`)
are declared in `cli.commands_daemon` and run in the module their entry names
(`runner`), imported only when one of them runs: it pulls in the node,
manager, worker and store code that no client command needs.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Callable, NamedTuple, Optional, Sequence

from cli.client import CLIError, RpcFailure, describe_rpc_error, resolve_host, version_line
from cli.context import Context
from cli.flags import check_utf8, rewrite_bool_assignments
from cli.lazyparse import LazyParser
from cli.parsing import UsageError, parse_duration
from cli.unsupported import add_refusals


class Command(NamedTuple):
    """One top-level command of the table."""

    name: str
    help: str
    module: str       # declares its arguments (`declare_<name>`) and holds its handlers
    runner: str = ""  # node-starting commands: the module with the `cmd_*` that runs it

    @property
    def declarer(self) -> str:
        return "declare_" + self.name.replace("-", "_")


# The module that starts and stops this host's node (cmd_init, cmd_join, ...).
NODE_COMMANDS = "cli.node_commands"

COMMANDS: tuple[Command, ...] = (
    Command("init", "Initialize a swarm: this node becomes its first manager",
            "cli.commands_daemon", NODE_COMMANDS),
    Command("join", "Join a swarm as a node and/or manager", "cli.commands_daemon",
            NODE_COMMANDS),
    Command("daemon", "Start the node kept in a data directory", "cli.commands_daemon",
            NODE_COMMANDS),
    Command("leave", "Leave the swarm", "cli.commands_daemon", NODE_COMMANDS),
    Command("join-token", "Manage join tokens", "cli.commands_swarm"),
    Command("ca", "Display and rotate the root CA", "cli.commands_ca"),
    Command("update", "Update the swarm", "cli.commands_swarm"),
    Command("unlock-key", "Manage the unlock key", "cli.commands_swarm"),
    Command("unlock", "Unlock swarm (the key is read from a prompt or standard input)",
            "cli.commands_swarm"),
    Command("info", "Display information about the node and its swarm", "cli.commands_system"),
    Command("version", "Show the swarm version information", "cli.commands_system"),
    Command("service", "Manage services", "cli.commands_service"),
    Command("task", "Fetch the logs of tasks (swarm service logs TASK)", "cli.servicelogs"),
    Command("node", "Manage swarm nodes", "cli.commands_node"),
    Command("secret", "Manage secrets", "cli.commands_secret"),
    Command("config", "Manage configs", "cli.commands_secret"),
    Command("network", "Manage networks", "cli.commands_network"),
    Command("volume", "Manage the named volumes of every node", "cli.commands_volume"),
    Command("stack", "Manage stacks declared in Compose files", "cli.commands_stack"),
    Command("events", "Get real time events from the swarm", "cli.commands_events"),
    Command("inspect", "Return low-level information on tasks, services and nodes",
            "cli.commands_inspect"),
    Command("ui", "Serve a live page of the cluster on this machine's loopback address",
            "cli.commands_ui"),
    Command("login", "Log in to a registry", "cli.commands_login"),
    Command("logout", "Log out from a registry", "cli.commands_login"),
)
_BY_NAME = {command.name: command for command in COMMANDS}


class CommandParser(LazyParser):
    """The parser of one top-level command, declared by its module on first use.

    The top-level parser lists every command with its help line; a command's
    own arguments (and sub-commands) are declared only when argparse hands it
    the rest of the command line, or when its help or usage is printed: then
    the command's module is imported and its `declare_<name>` runs, and the
    Docker flags Shoal refuses are added (`cli.unsupported`). Parsers
    made below it (sub-commands) are LazyParsers (declared on use when their
    module gives them a `declare`, plain ArgumentParsers otherwise).
    """

    def __init__(self, *args: Any, command: Optional[Command] = None, **kwargs: Any) -> None:
        if command is not None:
            kwargs["declare"] = _declarer(command)
        super().__init__(*args, **kwargs)
        self._refusals_added = False

    def declare(self) -> None:
        """Adds the arguments (once), then the Docker flags and commands Shoal refuses
        (`cli.unsupported`), so that using one names the reason."""
        super().declare()
        if not self._refusals_added:
            self._refusals_added = True
            add_refusals(self)


def _declarer(command: Command) -> Callable[[argparse.ArgumentParser], None]:
    """Imports the command's module (by name) and lets it declare the arguments."""
    def declare(parser: argparse.ArgumentParser) -> None:
        getattr(importlib.import_module(command.module), command.declarer)(parser)
    return declare


class PrintVersion(argparse.Action):
    """`swarm --version` / `-v`: prints the version line (cli.client.version_line) and
    exits 0, as `docker --version` does. The line is made only when asked for: reading
    the distribution's version loads importlib.metadata."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: Any = argparse.SUPPRESS, help: Optional[str] = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: Optional[str] = None) -> None:
        print(version_line())
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    """The whole `swarm` command tree (each command's arguments declared when used)."""
    parser = LazyParser(prog="swarm", description="Shoal: a Swarm-style cluster orchestrator.")
    parser.add_argument("-H", "--host", default=None,
                        help="Node to talk to: unix:///path/swarm.sock or host:port "
                             "(default $SWARM_HOST, else unix:///var/lib/shoal/swarm.sock)")
    parser.add_argument("-D", "--debug", action="store_true", help="Enable debug output")
    parser.add_argument("-v", "--version", action=PrintVersion,
                        help="Print version information and quit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    sub.required = True
    for command in COMMANDS:
        sub.add_parser(command.name, help=command.help, command=command)
    return parser


def parse_command_line(argv: Sequence[str]) -> argparse.Namespace:
    """`swarm ARGV` parsed: UsageError for an argument that is not UTF-8; argparse
    exits with status 2 and its usage message for a malformed command line."""
    args = list(argv)
    check_utf8(args)
    return build_parser().parse_args(rewrite_bool_assignments(args))


def _run_node_command(ns: argparse.Namespace) -> int:
    """Runs a node-starting command in the module the table names for it."""
    if getattr(ns, "dispatcher_heartbeat", None) is not None:
        parse_duration(ns.dispatcher_heartbeat, "--dispatcher-heartbeat")
    module = importlib.import_module(_BY_NAME[ns.command].runner)
    command = getattr(module, ns.bootstrap, None)
    if command is None:
        raise CLIError(f"Error: swarm {ns.command} is not available in this build")
    return int(command(ns) or 0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `swarm` console script; returns the exit code.

    Called without `argv`, as the console script does, it owns the process: a
    client command then ends it at once (`_exit_now`) instead of returning.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        ns = parse_command_line(args)
    except UsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    code = _run(ns)
    if argv is None and not getattr(ns, "bootstrap", None):
        _exit_now(code)
    return code


def _run(ns: argparse.Namespace) -> int:
    """Runs the parsed command; failures become one line on stderr and an exit code."""
    debug = bool(ns.debug)
    ctx: Optional[Context] = None
    try:
        if getattr(ns, "bootstrap", None):
            return _run_node_command(ns)
        ctx = Context(host=resolve_host(ns.host), debug=debug)
        return ns.handler(ctx, ns)
    except UsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except CLIError as exc:
        print(exc.message, file=sys.stderr)
        return exc.code
    except RpcFailure as exc:
        if debug:   # the interpreter's own printer: the traceback module costs start-up time
            sys.__excepthook__(type(exc), exc, exc.__traceback__)
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


def _exit_now(code: int) -> None:
    """Ends a finished client command's process without tearing the interpreter down.

    The teardown (every module's objects, then gRPC's core) costs 20-30 ms on
    this project's machines, a sixth of a `swarm node ls`. A client command has
    closed its channel and runs no threads, so once its output is flushed
    there is nothing left to release. If the output cannot be flushed (the
    reader closed the pipe), this returns and the usual exit reports it.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        return
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
