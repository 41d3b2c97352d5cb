"""`swarm stack ...`: stacks declared in Compose files. Only `stack config` for now.

Owns the command-line side of stacks: reading the `-c` files (`-c -` reads
standard input), the client's environment for substitution, printing the
loader's warnings on stderr as Docker does and its errors as one message
with a non-zero exit. `stack config` prints the merged, interpolated file.
The loading itself is `cli.compose`.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Optional, Sequence, TextIO

from cli.client import CLIError
from cli.compose.errors import ComposeError, Warnings
from cli.compose.loader import Loaded, Source, load
from cli.compose.render import render
from cli.context import Context


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def read_sources(files: Sequence[str], stdin: TextIO,
                 read: Callable[[str], str] = _read_text) -> tuple[list[Source], str]:
    """The compose files' texts and the folder relative paths are resolved against
    (the first file's; the current folder when that file is standard input)."""
    if not files:
        raise CLIError("Error: specify a Compose file (with --compose-file)")
    sources = []
    for name in files:
        try:
            text = stdin.read() if name == "-" else read(name)
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise CLIError(f"Error: cannot read compose file {name}: {reason}") from None
        sources.append(Source(name=name, text=text))
    first = files[0]
    workdir = os.getcwd() if first == "-" else os.path.dirname(os.path.abspath(first))
    return sources, workdir


def warning_lines(warnings: Sequence[str]) -> list[str]:
    """How Docker shows each warning: variables as logrus lines, ignored options plainly."""
    return [text + "\n" if text.startswith("Ignoring") else f"WARN[0000] {text}"
            for text in warnings]


def load_stack(files: Sequence[str], stdin: TextIO, err: TextIO,
               env: Optional[dict[str, str]] = None) -> Loaded:
    sources, workdir = read_sources(files, stdin)
    warnings = Warnings()
    try:
        return load(sources, dict(os.environ) if env is None else env, workdir, _read_text,
                    warnings)
    except ComposeError as exc:
        raise CLIError(f"Error: {exc.text()}") from None
    finally:
        for line in warning_lines(warnings.items):
            err.write(line + "\n")
        err.flush()


def config(ctx: Context, ns: argparse.Namespace) -> int:
    loaded = load_stack(ns.compose_file, sys.stdin, ctx.err)
    ctx.out.write(render(loaded.stack))
    return 0


def declare_stack(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm stack config` on `parser`."""
    ssub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    ssub.required = True
    p = ssub.add_parser("config", help="Outputs the final config file, after doing merges and "
                                       "interpolations",
                        usage="swarm stack config -c FILE [-c FILE...]")
    p.add_argument("-c", "--compose-file", action="append", default=[], metavar="FILE",
                   help='Path to a Compose file, or "-" to read from stdin')
    p.set_defaults(handler=config)
