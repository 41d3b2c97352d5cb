"""The `swarm` argument tree as data, for comparing it with Docker's CLI.

Owns `command_tree()`: every command and sub-command of `swarm` (each
parser's declarations forced, lazy ones included) with its flags: long and
short names, whether it takes a value, and whether it is a refusal declared
from `cli.unsupported` rather than an implemented flag. Pure: it only builds
parsers, nothing runs.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Optional

from cli.main import build_parser
from cli.unsupported import Refused, RefuseFlag


@dataclass(frozen=True)
class Flag:
    """One option of a command, as a person types it."""

    long: str                  # "--replicas"
    short: Optional[str]       # "-q", or None
    takes_value: bool
    refused: Optional[Refused] = None   # declared only to refuse it, with the reason

    @property
    def implemented(self) -> bool:
        return self.refused is None


@dataclass
class CommandInfo:
    """One command of the tree: its parser and flags by long name."""

    path: str                                  # "service create", "init"
    parser: argparse.ArgumentParser
    flags: dict[str, Flag] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    refused: Optional[Refused] = None          # the whole command is refused

    def flag(self, long: str) -> Optional[Flag]:
        return self.flags.get(long)


def _declare(parser: argparse.ArgumentParser) -> None:
    declare = getattr(parser, "declare", None)
    if declare is not None:
        declare()


def _flags(parser: argparse.ArgumentParser) -> dict[str, Flag]:
    found: dict[str, Flag] = {}
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        shorts = [o for o in action.option_strings if not o.startswith("--")]
        refused = action.refused if isinstance(action, RefuseFlag) else None
        takes_value = action.nargs != 0 if refused is None else refused.value
        for long in longs:
            found[long] = Flag(long, shorts[0] if shorts else None, takes_value, refused)
    return found


def _whole_refusal(parser: argparse.ArgumentParser) -> Optional[Refused]:
    for action in parser._actions:
        refused = getattr(action, "refused", None)
        if not action.option_strings and refused is not None:
            return refused
    return None


def _walk(parser: argparse.ArgumentParser, path: str, aliases: tuple[str, ...],
          out: dict[str, CommandInfo]) -> None:
    _declare(parser)
    out[path] = CommandInfo(path, parser, _flags(parser), aliases, _whole_refusal(parser))
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        names: dict[int, list[str]] = {}
        for name, sub in action.choices.items():
            names.setdefault(id(sub), []).append(name)
        for name, sub in action.choices.items():
            own = names[id(sub)]
            if name == own[0]:
                _walk(sub, f"{path} {name}".strip(), tuple(own[1:]), out)


def command_tree() -> dict[str, CommandInfo]:
    """Every command of `swarm` by path ("" is `swarm` itself)."""
    out: dict[str, CommandInfo] = {}
    _walk(build_parser(), "", (), out)
    return out
