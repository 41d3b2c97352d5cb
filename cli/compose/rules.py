"""The manager's rules for the container fields a compose file sets, checked at load.

Owns the checks of values the manager refuses in CreateService
(manager/validation.py, manager/secretrefs.py) that a compose file can give:
DNS servers, search domains and options, the stop signal, capability names,
sysctls, environment variable names, supplementary groups, secret and config
targets and the paths their files land on (none shared, no mount on one), and
object names. The `swarm` CLI leaves these to the manager (as
Docker's does); the loader checks them so that a stack file is refused before
anything is sent, each problem at its key path. The layering keeps `cli` from
importing `manager`, so the rules are repeated here with the manager's words (the
capability and sysctl names themselves are shared: proto/containerrules.py);
tests/test_fuzz_compose.py checks that what the loader accepts the manager
accepts. Each function raises ComposeError with the path it is given.
"""
from __future__ import annotations

import ipaddress
import posixpath
import re
import signal
from typing import Iterable

from cli.compose.errors import ComposeError, join_path
from proto.containerrules import (ALL_CAPABILITIES, CAPABILITIES, NAMESPACED_SYSCTLS,
                                 NAMESPACED_SYSCTL_PREFIXES)

SECRETS_DIR = "/run/secrets"    # where a relative secret target lands in the container

MAX_SIGNAL = 64                 # Linux: 1 to SIGRTMAX
MAX_NAME = 63
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_ENV_KEY = re.compile(r"^[^=\s]+$")


def _word(value: str) -> bool:
    return bool(value) and not any(ch.isspace() for ch in value)


def dns_server(value: str, path: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ComposeError(f'invalid DNS server "{value}": expected an IP address such as '
                           "10.0.0.2", path=path) from None
    return value


def dns_word(value: str, what: str, path: str) -> str:
    """A DNS search domain or option: one word (a resolv.conf line holds it)."""
    if not _word(value):
        raise ComposeError(f'invalid {what} "{value}": it must not be empty nor contain white '
                           "space", path=path)
    return value


def stop_signal(name: str, path: str) -> str:
    """A signal name with or without SIG, any case, or a number from 1 to 64 ("": SIGTERM)."""
    if not name:
        return name
    text = name.strip().upper()
    if text.isascii() and text.isdigit():
        known = 1 <= int(text) <= MAX_SIGNAL
    else:
        known = (text if text.startswith("SIG") else "SIG" + text) in signal.Signals.__members__
    if not known:
        raise ComposeError(f'invalid stop signal "{name}": expected a signal name such as '
                           f"SIGTERM or SIGQUIT, or a number from 1 to {MAX_SIGNAL}", path=path)
    return name


def capability(normalized: str, path: str) -> str:
    """A capability name already normalised (CAP_ prefix, upper case) or ALL."""
    if normalized != ALL_CAPABILITIES and normalized not in CAPABILITIES:
        raise ComposeError(f'unknown capability "{normalized}": expected a Linux capability '
                           "such as NET_ADMIN or SYS_PTRACE (the CAP_ prefix is optional), or "
                           "ALL", path=path)
    return normalized


def sysctl(key: str, value: str, path: str) -> None:
    if not _word(key) or not value:
        raise ComposeError(f'invalid sysctl "{key}={value}": expected a name and a value such '
                           "as net.core.somaxconn: 1024", path=path)
    if key not in NAMESPACED_SYSCTLS and not key.startswith(NAMESPACED_SYSCTL_PREFIXES):
        raise ComposeError(f'sysctl "{key}" is not allowed in a container: only namespaced '
                           "sysctls can be set (net.*, fs.mqueue.*, kernel.msgmax, "
                           "kernel.msgmnb, kernel.msgmni, kernel.sem, kernel.shmall, "
                           "kernel.shmmax, kernel.shmmni, kernel.shm_rmid_forced)", path=path)


def env_name(key: str, path: str) -> str:
    if not _ENV_KEY.match(key):
        raise ComposeError(f'invalid environment variable name "{key}": it must not be empty '
                           'nor contain white space or "="', path=path)
    return key


def group(value: str, path: str) -> str:
    if not _word(value):
        raise ComposeError(f'invalid supplementary group "{value}": expected a group name or '
                           "GID", path=path)
    return value


def file_target(target: str, kind: str, path: str) -> str:
    """A secret's or config's target: a file name or an absolute path, no '..'."""
    if not target or target.strip() != target or "\0" in target:
        raise ComposeError(f'invalid target "{target}" for the {kind}: expected a file name '
                           "or an absolute path", path=path)
    parts = [p for p in target.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ComposeError(f'invalid target "{target}" for the {kind}: it must name a file '
                           "and must not contain '..'", path=path)
    return target


def file_path(target: str, kind: str, path: str) -> str:
    """Where a secret's or config's file appears in the container (as the manager
    places it: a relative secret under /run/secrets, a relative config under /)."""
    file_target(target, kind, path)
    clean = "/".join(p for p in target.split("/") if p not in ("", "."))
    if target.startswith("/"):
        return "/" + clean
    return posixpath.join(SECRETS_DIR, clean) if kind == "secret" else "/" + clean


def files_and_mounts(files: Iterable[tuple[str, str, str]], mounts: Iterable[str],
                     path: str) -> None:
    """No two files (`what`, container path, key path) at one path, and no mount target
    on a file or inside one."""
    taken: dict[str, str] = {}
    for what, where, key_path in files:
        if where in taken:
            raise ComposeError(f"{what} and {taken[where]} are both mounted at {where}: give "
                               "one of them another target", path=key_path)
        taken[where] = what
    for target in mounts:
        normal = posixpath.normpath(target) if target else target
        for where, what in taken.items():
            if normal == where or normal.startswith(where + "/"):
                raise ComposeError(f"mount target {target} collides with {what} at {where}: "
                                   "give the mount or the file another target",
                                   path=join_path(path, "volumes"))


def object_name(name: str, kind: str, path: str) -> str:
    """The name a stack's own network, secret or config is created with."""
    if not name or len(name) > MAX_NAME or not _NAME.match(name):
        raise ComposeError(f'invalid {kind} name "{name}": use 1 to {MAX_NAME} letters, '
                           'digits, "_", "." and "-", starting with a letter or digit',
                           path=path)
    return name
