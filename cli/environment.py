"""The environment variables the node-starting commands read, in one place.

`swarm init`, `join`, `daemon` and `leave` build a `node.config.NodeConfig`
from their flags and these variables (cli/node_commands.py); nothing under
`node/`, `manager/` or `worker/` reads the environment. Only the standard
library and `pki.ca` are imported here, so client commands stay quick to
start. The variables (README, "Operator and test settings"):

- SHOAL_PODMAN_ROOT, SHOAL_PODMAN_RUNROOT, SHOAL_PODMAN_HOME: the podman
  storage (`--root`, `--runroot`) and HOME (registries.conf) of the node's
  tasks; unset, the host's podman defaults. Absolute paths.
- SHOAL_MIN_CERT_EXPIRY: lowers the shortest `--cert-expiry` (default 1h; e.g.
  `10s`, never below 10s), a test hook; `swarm update` checks it too.
- SHOAL_RAFT_SNAPSHOT_ENTRIES: the raft journal length that triggers a
  snapshot (a positive integer; unset, the store's default), a test hook.
- SWARM_DEBUG: any non-empty value makes the daemon log at DEBUG level.
- NOTIFY_SOCKET: set by systemd for a `Type=notify` unit: where the daemon run in
  the foreground sends READY=1 and STOPPING=1 (node/sdnotify.py). `take_notify_socket`
  also takes it out of this process's environment, so that nothing the daemon
  starts (its podman service, containers) inherits it.
"""
from __future__ import annotations

import datetime as _dt
import os
from typing import Mapping, Optional

from node.sdnotify import ENV as NOTIFY_ENV   # the one definition of "NOTIFY_SOCKET"
from pki.ca import parse_min_cert_expiry

MIN_EXPIRY_ENV = "SHOAL_MIN_CERT_EXPIRY"
SNAPSHOT_ENTRIES_ENV = "SHOAL_RAFT_SNAPSHOT_ENTRIES"
DEBUG_ENV = "SWARM_DEBUG"
PODMAN_PREFIX = "SHOAL_PODMAN_"  # _ROOT, _RUNROOT, _HOME: see worker.podman.PodmanOptions


def _env(environ: Optional[Mapping[str, str]]) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def min_cert_expiry(environ: Optional[Mapping[str, str]] = None) -> _dt.timedelta:
    """The shortest node certificate lifetime: 1h unless $SHOAL_MIN_CERT_EXPIRY lowers it."""
    return parse_min_cert_expiry(_env(environ).get(MIN_EXPIRY_ENV, ""))


def raft_snapshot_entries(environ: Optional[Mapping[str, str]] = None) -> int:
    """$SHOAL_RAFT_SNAPSHOT_ENTRIES as a positive number, else 0 (the store's default)."""
    raw = _env(environ).get(SNAPSHOT_ENTRIES_ENV, "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) > 0 else 0


def debug(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether $SWARM_DEBUG asks the daemon for DEBUG logging."""
    return bool(_env(environ).get(DEBUG_ENV))


def podman_variables(environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The $SHOAL_PODMAN_* variables, for `PodmanOptions.from_env`."""
    return {name: value for name, value in _env(environ).items()
            if name.startswith(PODMAN_PREFIX)}


def notify_socket(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """$NOTIFY_SOCKET (systemd's readiness socket), None when unset or empty."""
    return _env(environ).get(NOTIFY_ENV) or None


def take_notify_socket() -> None:
    """Removes $NOTIFY_SOCKET from this process's environment (read it first)."""
    os.environ.pop(NOTIFY_ENV, None)
