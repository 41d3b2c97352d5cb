"""The `swarm-lab` command: argument parsing and output for `lab.cluster.Lab`.

Owns the command tree (up, down, status, ip, host, exec, podman, kill, start,
add, remove, partition, heal; `up --hollow N` and `add --hollow N` start hollow
nodes, see lab.hollowlab), `status --format` rendering (Docker's table, json,
Go-template subset via `cli.templates`) and turning lab failures into one
`Error: …` line on stderr with exit code 1 (usage errors exit 2). The lab's
directory is $SHOAL_LAB_DIR (default /var/lib/shoal-lab); $SHOAL_LAB_INDEX
picks another underlay (bridge shoallab<k>, 10.99.<k>.0/24) at `up`.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Optional, Sequence

from cli.parsing import UsageError
from cli.templates import render
from lab.cluster import FIELDS, Lab, LabError
from lab.hollowlab import PER_PROCESS
from lab.netlab import NetLabError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swarm-lab", description="Many Shoal nodes on this host, one network namespace each")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("up", help="Create the underlay and start a cluster")
    p.add_argument("--managers", type=int, default=1, help="Number of managers (default 1)")
    p.add_argument("--workers", type=int, default=0, help="Number of workers (default 0)")
    p.add_argument("--hollow", type=int, default=0, metavar="N",
                   help="Number of hollow nodes (no containers; groups hollow1..K)")
    p.add_argument("--hollow-per-process", type=int, default=PER_PROCESS, metavar="N",
                   help=f"Hollow nodes per process (default {PER_PROCESS})")
    p.add_argument("--generic-resource", action="append", default=[],
                   metavar="NODE:KIND=VALUE",
                   help="A generic resource NODE advertises (swarm init|join "
                        "--node-generic-resource KIND=VALUE), e.g. worker1:gpu=GPU-1 "
                        "(repeatable)")
    sub.add_parser("down", help="Remove everything the lab made (also after a crash)")
    p = sub.add_parser("status", help="List the lab's nodes")
    p.add_argument("--format", default=None,
                   help='"table" (default), "json", or a Go template such as {{.IP}}')
    for name, text in (("ip", "Print a node's underlay IP"),
                       ("host", "Print the SWARM_HOST value of a node"),
                       ("kill", "SIGKILL a node's daemon"),
                       ("start", "Start a node's daemon again (swarm daemon)"),
                       ("remove", "Remove a node and everything it runs")):
        sub.add_parser(name, help=text).add_argument("node", metavar="NODE")
    p = sub.add_parser("exec", help="Run a command inside a node (SWARM_HOST set)")
    p.add_argument("node", metavar="NODE")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD")
    p = sub.add_parser("podman", help="Run podman on a node's own storage, inside the node")
    p.add_argument("node", metavar="NODE")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="-- ARGS")
    p = sub.add_parser("add", help="Join a new node (or a group of hollow nodes) to the "
                                   "lab's cluster")
    p.add_argument("node", metavar="NAME", nargs="?")
    p.add_argument("--manager", action="store_true", help="Join as a manager")
    p.add_argument("--hollow", type=int, default=None, metavar="N",
                   help="Start a group of N hollow nodes instead (named hollowK)")
    p.add_argument("--token", default=None, help="Join token (default: a fresh one)")
    p.add_argument("--generic-resource", action="append", default=[], metavar="KIND=VALUE",
                   help="A generic resource the node advertises (repeatable; with "
                        "--hollow, every node of the group)")
    p = sub.add_parser("partition", help="Cut traffic between two groups of nodes")
    p.add_argument("nodes", nargs="+", metavar="NODE")
    p.add_argument("--from", dest="others", nargs="+", required=True, metavar="NODE")
    sub.add_parser("heal", help="Remove every partition")
    return parser


def _status(lab: Lab, fmt: Optional[str]) -> int:
    rows = [n.row() for n in lab.nodes()]
    try:
        text = render(fmt, rows, FIELDS, FIELDS)
    except UsageError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    if rows or text:
        print(text)
    return 0


def _node_flags(given: Sequence[str]) -> dict[str, list[str]]:
    """`up --generic-resource NODE:KIND=VALUE` as `swarm init|join` flags per node."""
    flags: dict[str, list[str]] = {}
    for item in given:
        node, sep, term = item.partition(":")
        if not sep or not node or "=" not in term:
            raise LabError(f"invalid --generic-resource {item!r}: expected NODE:KIND=VALUE "
                           "(e.g. worker1:gpu=GPU-1)")
        flags.setdefault(node, []).extend(["--node-generic-resource", term])
    return flags


def _run(args: argparse.Namespace) -> int:
    node_flags: dict[str, list[str]] = {}
    if args.command == "up":
        node_flags = _node_flags(args.generic_resource)
        made = {f"manager{i}" for i in range(1, args.managers + 1)} | {
            f"worker{i}" for i in range(1, args.workers + 1)}
        unknown = sorted(set(node_flags) - made)
        if unknown:
            raise LabError(f"--generic-resource names {', '.join(unknown)}, which `up` does "
                           f"not make (it makes {', '.join(sorted(made))}; give hollow "
                           "groups theirs with `add --hollow N --generic-resource`)")
    lab = Lab(node_flags=node_flags) if node_flags else Lab()
    cmd = args.command
    if cmd == "up":
        for node in lab.up(args.managers, args.workers, args.hollow, args.hollow_per_process):
            print(f"{node.name}\t{node.role}\t{node.ip}")
        return 0
    if cmd == "down":
        lab.down()
        return 0
    if cmd == "status":
        return _status(lab, args.format)
    if cmd == "ip":
        print(lab.ip(args.node))
        return 0
    if cmd == "host":
        print(lab.host(args.node))
        return 0
    if cmd == "exec":
        command = list(args.cmd)
        if command and command[0] == "--":
            command = command[1:]
        if not command:
            print("Error: exec needs a command: swarm-lab exec NODE -- CMD...", file=sys.stderr)
            return 2
        argv, env = lab.exec_argv(args.node, command, registry_view=True)
        return subprocess.call(argv, env=env)
    if cmd == "podman":
        podman_args = list(args.args)
        if podman_args and podman_args[0] == "--":
            podman_args = podman_args[1:]
        if not podman_args:
            print("Error: podman needs arguments: swarm-lab podman NODE -- ps -a",
                  file=sys.stderr)
            return 2
        argv, env = lab.podman_argv(args.node, podman_args)
        return subprocess.call(argv, env=env)
    if cmd == "kill":
        lab.kill(args.node)
        return 0
    if cmd == "start":
        lab.start(args.node)
        return 0
    if cmd == "add":
        if args.hollow is not None:
            if args.node or args.manager or args.token:
                print("Error: add --hollow N takes no NAME, --manager or --token (hollow "
                      "nodes are workers; the group is named hollowK)", file=sys.stderr)
                return 2
            if args.hollow < 1:
                print(f"Error: add --hollow N needs N of at least 1, not {args.hollow}",
                      file=sys.stderr)
                return 2
            if args.generic_resource:      # every node of the group offers them
                name = lab.add_hollow(args.hollow, generic_resources=args.generic_resource)
            else:
                name = lab.add_hollow(args.hollow)
            print(f"{name}\thollow\t{lab.ip(name)}\t{args.hollow} nodes")
            return 0
        if not args.node:
            print("Error: add needs a NAME (or --hollow N)", file=sys.stderr)
            return 2
        if args.generic_resource:
            node = lab.add(args.node, manager=args.manager, token=args.token,
                           flags=[f for term in args.generic_resource
                                  for f in ("--node-generic-resource", term)])
        else:
            node = lab.add(args.node, manager=args.manager, token=args.token)
        print(f"{node.name}\t{node.role}\t{node.ip}")
        return 0
    if cmd == "remove":
        lab.remove(args.node)
        return 0
    if cmd == "partition":
        lab.partition(args.nodes, args.others)
        return 0
    if cmd == "heal":
        lab.heal()
        return 0
    raise AssertionError(f"unhandled command {cmd}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (LabError, NetLabError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
