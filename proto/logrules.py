"""Rules for a task's log options (`TaskSpec.log_driver_options`), as podman can honour them.

Shoal keeps every task's output in podman's own per-container log file (the k8s-file
driver). For that file podman (conmon) takes one limit, a size in bytes: when the next
write would pass it, the file is started afresh, so it holds at most that many bytes of
the newest output and never more than one file. That is Docker's json-file rotation with
`max-file` 1 (Docker's default), so the options Shoal accepts are:

- `max-size`: a positive size, a number with an optional unit b, k, m, g, t (binary
  units, as Docker's RAMInBytes: 10m = 10 MiB);
- `max-file`: "1" only; podman keeps no rotated files, so a larger count would be
  accepted and ignored.

Pure: `log_max_size` returns the byte limit or raises `LogOptionError` with a message
that says what was wrong and what to do. The manager applies it to every spec it is
sent (manager/validation.py), the compose loader before anything is sent
(cli/compose/service.py) and the agent to build the container (worker/taskspec.py), so
all three agree.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Mapping

MAX_SIZE = "max-size"
MAX_FILE = "max-file"
OPTIONS = (MAX_SIZE, MAX_FILE)

_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
_MAX_BYTES = 2**63 - 1  # podman's limit is a signed 64-bit byte count
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


LOCAL_MAX_SIZE = "20m"  # Docker's `local` driver keeps 20 MB files (five of them)


def with_driver_defaults(driver: str | None, options: Mapping[str, str]) -> dict[str, str]:
    """The options to store for `driver` (json-file, local or None): Docker's `local`
    driver limits its files to 20 MB when no max-size is given, so `local` without
    one gets max-size 20m (one file: podman keeps no rotated ones)."""
    result = dict(options)
    if driver == "local" and MAX_SIZE not in result:
        result[MAX_SIZE] = LOCAL_MAX_SIZE
    return result


class LogOptionError(ValueError):
    """A log option Shoal cannot honour; the message says why and what to do."""


def parse_max_size(text: str) -> int:
    """max-size in bytes ("10m" = 10 MiB); raises LogOptionError unless it is positive."""
    m = _SIZE.match(text.strip())
    if not m:
        raise LogOptionError(f'invalid size "{text}" for log option max-size: expected a '
                             "number of bytes with an optional unit b, k, m, g, t (e.g. 10m)")
    size = int(Decimal(m.group(1)) * _UNITS[(m.group(2) or "").lower()])  # exact, no overflow
    if size > _MAX_BYTES:
        raise LogOptionError(f'max-size "{text}" is too large: at most {_MAX_BYTES} bytes '
                             "(8 EiB); leave max-size out for an unlimited log")
    if size <= 0:
        raise LogOptionError(f'max-size must be a positive size, not "{text}" (e.g. 10m); '
                             "leave max-size out for an unlimited log")
    return size


def check_max_file(text: str) -> None:
    """Raises LogOptionError unless max-file is "1" (the only count podman keeps)."""
    if not (text.strip().isascii() and text.strip().isdigit()) or int(text) < 1:
        raise LogOptionError(f'max-file must be a positive number, not "{text}"')
    if int(text) != 1:
        raise LogOptionError(
            f'log option max-file "{text}" is not supported: podman keeps one log file per '
            "task and starts it afresh when it reaches max-size (Docker's max-file 1); "
            'remove max-file (or set it to "1") and choose max-size for how much output '
            "to keep")


def log_max_size(options: Mapping[str, str]) -> int:
    """The log file's size limit in bytes that `options` ask for, 0 for none.

    Raises LogOptionError for an option other than max-size and max-file, or a value
    podman cannot honour."""
    for key in sorted(options):
        if key not in OPTIONS:
            raise LogOptionError(f'log option "{key}" is not supported: Shoal keeps each '
                                 "task's output in podman's log file, which takes max-size "
                                 'and max-file "1" only')
    if MAX_FILE in options:
        check_max_file(options[MAX_FILE])
    if MAX_SIZE in options:
        return parse_max_size(options[MAX_SIZE])
    return 0
