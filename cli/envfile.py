"""Docker's env files, read on the client for `service create --env-file`.

Owns the reading of KEY=VALUE files by the Docker CLI's rules: the file is UTF-8
(a byte order mark at its start is dropped); leading white space of each line is
dropped; blank lines and lines starting with "#" are skipped; "KEY=VALUE" is taken
as it is (quotes and trailing white space belong to the value, nothing is
expanded); a bare "KEY" takes the value of the client's environment when it has
one and is skipped otherwise; a key may not be empty or hold a space or tab.
Every mistake is a `UsageError` naming the file and the line.

The Compose file's `env_file` key has its own rules (cli/compose/paths.py).
"""
from __future__ import annotations

import os
from typing import Iterable, Mapping, Optional

from cli.parsing import UsageError

_BOM = b"\xef\xbb\xbf"


def parse_env_file(path: str, data: bytes,
                   environ: Optional[Mapping[str, str]] = None) -> list[str]:
    """The KEY=VALUE entries of the env file `path` whose content is `data`."""
    env = os.environ if environ is None else environ
    entries: list[str] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM):]
        try:
            line = raw.decode("utf-8").lstrip()
        except UnicodeDecodeError:
            raise UsageError(f'invalid env file "{path}", line {number}: not UTF-8 text') \
                from None
        if not line or line.startswith("#"):
            continue
        key, sep, _value = line.partition("=")
        if not key:
            raise UsageError(f'invalid env file "{path}", line {number}: no variable name '
                             f'in "{line}" (expected KEY=VALUE)')
        if " " in key or "\t" in key:
            raise UsageError(f'invalid env file "{path}", line {number}: the variable name '
                             f'"{key}" contains white space (expected KEY=VALUE)')
        if sep:
            entries.append(line)
        elif key in env:
            entries.append(f"{key}={env[key]}")
    return entries


def read_env_files(paths: Iterable[str],
                   environ: Optional[Mapping[str, str]] = None) -> list[str]:
    """The entries of every `--env-file`, in order (a later one wins over an earlier
    one when the container is made)."""
    entries: list[str] = []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UsageError(f'cannot read the env file "{path}" (--env-file): '
                             f"{reason.lower()}") from None
        entries.extend(parse_env_file(path, data, environ))
    return entries


def merge_env(from_files: Iterable[str], given: Iterable[str]) -> list[str]:
    """The container's environment: the env files' entries (a later one replacing an
    earlier one with the same key, at the later one's place), less those --env sets,
    then --env's entries as given: --env wins over --env-file."""
    env = list(given)
    overridden = {entry.split("=", 1)[0] for entry in env}
    merged: dict[str, str] = {}
    for entry in from_files:
        key = entry.split("=", 1)[0]
        merged.pop(key, None)
        if key not in overridden:
            merged[key] = entry
    return [*merged.values(), *env]
