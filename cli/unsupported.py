"""Docker CLI flags and commands that `swarm` refuses, and why.

Owns the two tables the Docker parity test (tests/test_cli_parity.py) reads
beside Docker 20.10's own flags (tests/fixtures/docker-20.10-flags.json):

- `NOT_SUPPORTED`: what Shoal does not do, with the reason (the README shows it);
- `TO_BUILD`: what Shoal does not do *yet* (issue 18), each with what it needs.
  It only shrinks: once a flag is implemented the parity test fails until its
  entry is removed from here.

`add_refusals(parser)` declares every entry of both tables on the parser of its
command (found by the parser's `prog`, "swarm service create"), unless the
command declares that flag itself: using one ends in a `UsageError` that names
the reason (one line, exit 1) instead of argparse's "unrecognized arguments".
A value listed in `accepted` asks for what Shoal does anyway (`--orchestrator
swarm`) and is taken as a no-op. Whole commands (`network connect`) are refused
the same way.
"""
from __future__ import annotations

import argparse
from typing import Any, NamedTuple, Optional, Sequence

from cli.parsing import UsageError


class Refused(NamedTuple):
    """A Docker flag (or, with an empty `flag`, a whole command) that `swarm` refuses.

    (A NamedTuple: every `swarm` run imports this module, and `dataclasses` costs
    list commands milliseconds of start-up, see tests/test_cli_startup.py.)"""

    flag: str                    # "--isolation"; "" for the whole command
    commands: tuple[str, ...]    # Shoal command paths: "service create", "init"
    reason: str                  # why (NOT_SUPPORTED) or what it needs (TO_BUILD)
    short: Optional[str] = None  # Docker's short name, "-d"
    value: bool = True           # takes a value (False: a boolean flag)
    accepted: tuple[str, ...] = ()   # values that ask for what Shoal does anyway
    to_build: bool = False       # True: in TO_BUILD (planned), False: not supported


def _no(flag: str, commands: str, reason: str, **kw: Any) -> Refused:
    return Refused(flag, tuple(c.strip() for c in commands.split(",")), reason, **kw)


def _todo(flag: str, commands: str, needs: str, **kw: Any) -> Refused:
    return _no(flag, commands, needs, to_build=True, **kw)


_SERVICE = "service create, service update"
_STACK = "stack deploy, stack ls, stack ps, stack rm, stack services"

NOT_SUPPORTED: tuple[Refused, ...] = (
    _no("--credential-spec", _SERVICE,
        "Windows only (credential specs for group managed service accounts)"),
    _no("--isolation", _SERVICE,
        "Windows only (process/Hyper-V isolation); on Linux only \"default\" exists",
        accepted=("default",)),
    _no("--driver", "secret create",
        "no secret driver plugins: secrets are kept in the managers' encrypted store",
        short="-d"),
    _no("--template-driver", "secret create, config create",
        "no templated secrets or configs: Shoal delivers the data exactly as stored"),
    _no("--attachable", "network create",
        "Shoal runs no standalone containers, so nothing attaches to a network by hand; "
        "services join networks with --network (--attachable=false is accepted)",
        value=False),
    _no("--ipam-driver", "network create",
        "no IPAM plugins: the managers' built-in allocator assigns every address",
        accepted=("default",)),
    _no("--ipam-opt", "network create",
        "the managers' built-in allocator takes no IPAM options (Docker's default IPAM "
        "driver documents none for overlays); shape addresses with --subnet, --gateway, "
        "--ip-range and --aux-address"),
    _no("--ipv6", "network create",
        "overlays are IPv4 only (VXLAN sandboxes, nftables ip tables, DNS A records); "
        "--ipv6=false is accepted", value=False),
    _no("--orchestrator", _STACK,
        "no Kubernetes: stacks always run on the swarm", accepted=("swarm",)),
    _no("", "network connect",
        "Shoal runs no standalone containers; attach a service with "
        "`swarm service update --network-add NETWORK SERVICE`"),
    _no("", "network disconnect",
        "Shoal runs no standalone containers; detach a service with "
        "`swarm service update --network-rm NETWORK SERVICE`"),
)

TO_BUILD: tuple[Refused, ...] = ()

REFUSED: tuple[Refused, ...] = NOT_SUPPORTED + TO_BUILD


def refusal_message(entry: Refused, command: str) -> str:
    """The one line a person reads on using `entry` with `swarm COMMAND` (what a planned
    flag still needs is for the people who build it, not in the message)."""
    what = f"{entry.flag} on `swarm {command}`" if entry.flag else f"`swarm {command}`"
    if entry.to_build:
        return f"{what} is not implemented in Shoal yet"
    return f"{what} is not supported by Shoal: {entry.reason}"


class RefuseFlag(argparse.Action):
    """Refuses a Docker flag with the reason; an `accepted` value is taken as a no-op."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, refused: Refused,
                 command: str, **kwargs: Any) -> None:
        # A boolean takes an optional value, so that `--ipv6=true` is refused with the
        # reason too instead of argparse's "ignored explicit argument".
        kwargs["nargs"] = None if refused.value else "?"
        super().__init__(option_strings, dest, default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS, **kwargs)
        self.refused = refused
        self.command = command

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: Optional[str] = None) -> None:
        if values in self.refused.accepted or (not self.refused.value and values == "false"):
            return
        raise UsageError(refusal_message(self.refused, self.command))


class _RefuseCommand(argparse.Action):
    """Refuses a whole command (a positional that takes whatever follows it)."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, refused: Refused,
                 command: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=argparse.REMAINDER, **kwargs)
        self.refused = refused
        self.command = command

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: Optional[str] = None) -> None:
        raise UsageError(refusal_message(self.refused, self.command))


def command_path(parser: argparse.ArgumentParser) -> str:
    """"service create" for the parser of `swarm service create`."""
    return " ".join(parser.prog.split()[1:])


def add_refusals(parser: argparse.ArgumentParser) -> None:
    """Declares the refused flags of `parser`'s command, and its refused sub-commands,
    except those the command declares itself (implemented since the tables were written)."""
    path = command_path(parser)
    taken = parser._option_string_actions   # noqa: SLF001 - argparse has no public view
    for entry in REFUSED:
        if entry.flag and path in entry.commands and entry.flag not in taken:
            names = [entry.flag] + ([entry.short] if entry.short and entry.short not in taken
                                    else [])
            parser.add_argument(*names, action=RefuseFlag, refused=entry, command=path)
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return
    for entry in REFUSED:
        for command in entry.commands:
            parent, _, name = command.rpartition(" ")
            if not entry.flag and parent == path and name not in subs[0].choices:
                # no help=: left out of the command list; its own --help says why
                sub = subs[0].add_parser(name, description=refusal_message(entry, command))
                sub.add_argument("refused_args", action=_RefuseCommand, refused=entry,
                                 command=command, help=argparse.SUPPRESS)
