"""Rules for a task's log driver and options (`TaskSpec.log_driver`,
`TaskSpec.log_driver_options`), as podman can honour them.

Shoal runs every task with podman, which has three ways to keep a container's output,
and Docker's drivers map onto them:

- `json-file` (the default, also "" in a spec) and `local`: podman's own per-container
  log file (its k8s-file driver). For that file podman (conmon) takes one limit, a size
  in bytes: when the next write would pass it, the file is started afresh, so it holds
  at most that many bytes of the newest output and never more than one file. That is
  Docker's json-file rotation with `max-file` 1 (Docker's default). Options:
  `max-size` (a positive size, a number with an optional unit b, k, m, g, t, binary
  units as Docker's RAMInBytes: 10m = 10 MiB), `max-file` ("1" only: podman keeps no
  rotated files, so a larger count would be accepted and ignored). Not `tag`: conmon
  refuses a tag for that file ("k8s-file doesn't support --log-tag").
- `journald`: the node's systemd journal (podman's journald driver). Option: `tag`
  (the journal's CONTAINER_TAG and SYSLOG_IDENTIFIER).
- `none`: no log at all (`service logs` has nothing to read). No options.

journald's `tag` is handed to podman as given (podman expands its Go template, e.g.
"{{.Name}}"), and podman records it with the container.

Pure: `podman_log` returns what podman's create call needs, or raises
`LogOptionError` with a message that says what was wrong and what to do. The manager
applies it to every spec it is sent (manager/validation.py), the CLI and the compose
loader before anything is sent (cli/containeropts.py, cli/compose/service.py) and the
agent to build the container (worker/taskspec.py), so all of them agree.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Mapping, NamedTuple

MAX_SIZE = "max-size"
MAX_FILE = "max-file"
TAG = "tag"
OPTIONS = (MAX_SIZE, MAX_FILE, TAG)   # every option some driver takes
FILE_OPTIONS = (MAX_SIZE, MAX_FILE)    # those of podman's log file (json-file, local)

JSON_FILE = "json-file"
LOCAL = "local"
JOURNALD = "journald"
NONE = "none"
DRIVERS = (JSON_FILE, LOCAL, JOURNALD, NONE)
# Docker's driver name ("" = the default, json-file) -> podman's
PODMAN_DRIVERS = {"": "k8s-file", JSON_FILE: "k8s-file", LOCAL: "k8s-file",
                  JOURNALD: "journald", NONE: "none"}
_DRIVER_OPTIONS: dict[str, tuple[str, ...]] = {
    "": FILE_OPTIONS, JSON_FILE: FILE_OPTIONS, LOCAL: FILE_OPTIONS, JOURNALD: (TAG,), NONE: ()}

_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
_MAX_BYTES = 2**63 - 1  # podman's limit is a signed 64-bit byte count
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


LOCAL_MAX_SIZE = "20m"  # Docker's `local` driver keeps 20 MB files (five of them)


def with_driver_defaults(driver: str | None, options: Mapping[str, str]) -> dict[str, str]:
    """The options to store for `driver` (one of DRIVERS, or None): Docker's `local`
    driver limits its files to 20 MB when no max-size is given, so `local` without
    one gets max-size 20m (one file: podman keeps no rotated ones)."""
    result = dict(options)
    if driver == "local" and MAX_SIZE not in result:
        result[MAX_SIZE] = LOCAL_MAX_SIZE
    return result


class LogOptionError(ValueError):
    """A log driver or option Shoal cannot honour; the message says why and what to do."""


class PodmanLog(NamedTuple):
    """How podman keeps a task's output: its `log_configuration` of the create call.

    (A NamedTuple: the CLI imports this module on every run, see cli/unsupported.py.)"""

    driver: str = "k8s-file"   # podman's driver: k8s-file, journald or none
    size: int = 0              # the k8s-file's size limit in bytes; 0 = none
    tag: str = ""              # podman's log tag; "" = podman's default


def check_driver(driver: str) -> None:
    """Raises LogOptionError unless `driver` is one Shoal can run ("" = the default)."""
    if driver not in PODMAN_DRIVERS:
        raise LogOptionError(
            f'log driver "{driver}" is not supported: Shoal runs tasks with podman, which '
            "keeps their output in its own log file (json-file, local), in the node's "
            "journal (journald) or nowhere (none); use one of json-file, local, journald, "
            "none")


def _unsupported_option(driver: str, key: str) -> str:
    if driver == JOURNALD:
        return (f'log option "{key}" is not supported by the journald log driver: it '
                "takes tag only")
    if driver == NONE:
        return (f'log option "{key}" is not supported by the none log driver: it keeps no '
                "log, so it takes no options")
    if key == TAG:
        return (f'log option "tag" is not supported by the {driver or JSON_FILE} log driver: '
                "podman's log file keeps no tag (conmon refuses one); use --log-driver "
                "journald for tagged output")
    return (f'log option "{key}" is not supported: Shoal keeps each task\'s output in '
            'podman\'s log file, which takes max-size and max-file "1" only')


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


def podman_log(driver: str, options: Mapping[str, str]) -> PodmanLog:
    """What podman is asked for by a task's log `driver` ("" = json-file) and `options`.

    Raises LogOptionError for a driver Shoal cannot run, an option that driver does not
    take, or a value podman cannot honour."""
    check_driver(driver)
    allowed = _DRIVER_OPTIONS[driver]
    for key in sorted(options):
        if key not in allowed:
            raise LogOptionError(_unsupported_option(driver, key))
    if MAX_FILE in options:
        check_max_file(options[MAX_FILE])
    size = parse_max_size(options[MAX_SIZE]) if MAX_SIZE in options else 0
    return PodmanLog(PODMAN_DRIVERS[driver], size, options.get(TAG, ""))


def log_max_size(options: Mapping[str, str]) -> int:
    """The log file's size limit in bytes that json-file `options` ask for, 0 for none
    (raises LogOptionError as `podman_log` does)."""
    return podman_log(JSON_FILE, options).size
