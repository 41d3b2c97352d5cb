"""Paths of the client's files named by a compose file, and env files.

Owns how a relative path of a compose file is resolved (against the folder of
the first compose file, as Docker's `stack deploy` does for every file) and
how an env file reads (Docker's format: `KEY=VALUE` lines taken as they are,
`#` comments and blank lines skipped, a bare `KEY` taking the client's value).
Files are read through the reader the caller injects.
"""
from __future__ import annotations

import posixpath
from typing import Callable, Optional

from cli.compose.errors import ComposeError

Reader = Callable[[str], str]


def absolute(workdir: str, path: str) -> str:
    if posixpath.isabs(path):
        return posixpath.normpath(path)
    return posixpath.normpath(posixpath.join(workdir, path))


def read_file(reader: Reader, path: str, key_path: str) -> str:
    try:
        return reader(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ComposeError(f'cannot read "{path}": {reason}', path=key_path) from None


def read_env_file(path: str, reader: Reader, key_path: str) -> dict[str, Optional[str]]:
    out: dict[str, Optional[str]] = {}
    for number, line in enumerate(read_file(reader, path, key_path).splitlines(), 1):
        text = line.lstrip()
        if not text or text.startswith("#"):
            continue
        key, found, value = text.partition("=")
        if not key or any(ch.isspace() for ch in key):
            raise ComposeError(f'{path} line {number}: variable "{key}" is empty or contains '
                               "whitespace", path=key_path)
        out[key] = value if found else None
    return out
