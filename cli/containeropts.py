"""Container options of services beyond the basics: capabilities, sysctls, ulimits,
extra hosts, supplementary groups and log options.

Owns how `--cap-add`/`--cap-drop`, `--sysctl`, `--ulimit`, `--host`, `--group` and
`--log-driver`/`--log-opt` of `service create`, and their update counterparts (`--cap-add`/`--cap-drop`
again, `--sysctl-add`/`--sysctl-rm`, `--ulimit-add`/`--ulimit-rm`,
`--host-add`/`--host-rm`, `--group-add`/`--group-rm`, `--log-driver`/`--log-opt`),
land in a
`ContainerSpec` (log options in its `TaskSpec`), with Docker's spellings and its update semantics. Pure
functions raising `UsageError`.

As in Docker's CLI, capability names are only normalised here (upper case,
`CAP_` prefix, `ALL`); whether a name is a Linux capability, and whether a
sysctl may be set in a container, the manager decides (manager/validation.py).
"""
from __future__ import annotations

import ipaddress
from typing import Iterable, MutableMapping, MutableSequence

from cli.parsing import INT64_MAX, UsageError
from proto import logrules
from proto import objects_pb2 as pb

ALL = "ALL"
RESET = "RESET"      # `service update --cap-add RESET`: forget the previous list
# Docker's ulimit names (go-units); "as" is left out by Docker too.
ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")
ULIMIT_FORM = "expected NAME=SOFT[:HARD] such as nofile=1024:2048"
# The log drivers Shoal runs with podman's (options: proto/logrules.py).
LOG_DRIVERS = logrules.DRIVERS


# ------------------------------------------------------------ capabilities ----

def normalize_capability(name: str) -> str:
    """"net_admin", "CAP_NET_ADMIN" and " Net_Admin " all become "CAP_NET_ADMIN";
    ALL (and RESET) stay as they are."""
    cap = name.strip().upper()
    if not cap:
        raise UsageError("invalid capability \"\": expected a name such as NET_ADMIN or ALL")
    if cap in (ALL, RESET) or cap.startswith("CAP_"):
        return cap
    return "CAP_" + cap


def _caps(names: Iterable[str]) -> set[str]:
    return {normalize_capability(n) for n in names}


def _cap_list(caps: set[str]) -> list[str]:
    """Sorted; ALL stands alone."""
    return [ALL] if ALL in caps else sorted(caps)


def create_capabilities(c: pb.ContainerSpec, add: Iterable[str], drop: Iterable[str]) -> None:
    """`service create --cap-add/--cap-drop`: adding wins over dropping the same one."""
    to_add, to_drop = _caps(add), _caps(drop)
    if RESET in to_add or RESET in to_drop:
        raise UsageError("RESET can only be given to service update --cap-add/--cap-drop "
                         "(it clears the service's list)")
    if ALL in to_add:
        to_add = {ALL}
    if ALL in to_drop:
        to_drop = {ALL}
    del c.cap_add[:]
    del c.cap_drop[:]
    c.cap_add.extend(_cap_list(to_add))
    c.cap_drop.extend(_cap_list(to_drop - to_add))


def update_capabilities(c: pb.ContainerSpec, add: Iterable[str], drop: Iterable[str]) -> None:
    """`service update --cap-add/--cap-drop`, Docker's three states per capability.

    Dropping one the service adds takes it off the add list (back to the default
    set); dropping another puts it on the drop list. Likewise adding one the
    service drops takes it off the drop list, adding another puts it on the add
    list. Given in both flags, adding wins. RESET empties that list first.
    """
    have_add, have_drop = set(c.cap_add), set(c.cap_drop)
    to_add, to_drop = _caps(add), _caps(drop)
    if RESET in to_add:
        have_add = set()
        to_add.discard(RESET)
    if RESET in to_drop:
        have_drop = set()
        to_drop.discard(RESET)
    for cap in to_drop - to_add:
        if cap in have_add:
            have_add.discard(cap)
        else:
            have_drop.add(cap)
    for cap in to_add:
        if cap in have_drop:
            have_drop.discard(cap)
        else:
            have_add.add(cap)
    del c.cap_add[:]
    del c.cap_drop[:]
    c.cap_add.extend(_cap_list(have_add))
    c.cap_drop.extend(_cap_list(have_drop))


# ----------------------------------------------------------------- sysctls ----

def parse_sysctl(text: str, flag: str) -> tuple[str, str]:
    """"net.core.somaxconn=1024" -> (key, value)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not key or not sep or any(ch.isspace() for ch in key):
        raise UsageError(f'invalid value "{text}" for {flag}: expected KEY=VALUE such as '
                         "net.core.somaxconn=1024")
    return key, value


def update_sysctls(sysctls: MutableMapping[str, str], add: Iterable[str],
                   rm: Iterable[str]) -> None:
    """--sysctl-rm KEY (or KEY=VALUE) removes, then --sysctl-add KEY=VALUE sets."""
    for item in rm:
        sysctls.pop(item.partition("=")[0].strip(), None)
    sysctls.update(dict(parse_sysctl(item, "--sysctl-add") for item in add))


# ----------------------------------------------------------------- ulimits ----

def _limit(text: str, spec: str, flag: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise UsageError(f'invalid value "{spec}" for {flag}: "{text}" is not a number; '
                         f"{ULIMIT_FORM}") from None
    if value > INT64_MAX:
        raise UsageError(f'invalid value "{spec}" for {flag}: {text} is too large; limits '
                         f"are at most {INT64_MAX}, or -1 for unlimited")
    return value


def parse_ulimit(text: str, flag: str) -> pb.Ulimit:
    """Docker's NAME=SOFT[:HARD]; HARD defaults to SOFT, -1 is unlimited."""
    name, sep, limits = text.partition("=")
    if not sep:
        raise UsageError(f'invalid value "{text}" for {flag}: {ULIMIT_FORM}')
    if name not in ULIMIT_NAMES:
        raise UsageError(f'invalid ulimit type "{name}" in {flag} "{text}": expected one of '
                         + ", ".join(ULIMIT_NAMES))
    soft_text, has_hard, hard_text = limits.partition(":")
    soft = _limit(soft_text, text, flag)
    hard = _limit(hard_text, text, flag) if has_hard else soft
    if soft < -1 or hard < -1:
        raise UsageError(f'invalid value "{text}" for {flag}: limits are numbers >= 0, or -1 '
                         "for unlimited")
    if hard != -1 and (soft == -1 or soft > hard):
        raise UsageError(f'invalid value "{text}" for {flag}: the soft limit must be less '
                         "than or equal to the hard limit")
    return pb.Ulimit(name=name, soft=soft, hard=hard)


def set_ulimits(ulimits: MutableSequence[pb.Ulimit], add: Iterable[str], rm: Iterable[str],
                flag: str) -> None:
    """Removes the names in `rm`, then sets each of `add` (one per name); sorted by name."""
    by_name = {u.name: u for u in ulimits}
    for item in rm:
        by_name.pop(item.partition("=")[0].strip(), None)
    for item in add:
        limit = parse_ulimit(item, flag)
        by_name[limit.name] = limit
    del ulimits[:]
    ulimits.extend(by_name[name] for name in sorted(by_name))


# ------------------------------------------------------------- extra hosts ----

def parse_host(text: str, flag: str) -> str:
    """Docker's HOST:IP (or HOST=IP, IPv6 allowed, in brackets or not) as the "IP HOST"
    line the spec stores (swarmkit's form of /etc/hosts entries)."""
    host, sep, address = text.partition("=")
    if not sep:
        host, sep, address = text.partition(":")
    if not sep or not host or ":" in host or any(ch.isspace() for ch in host):
        raise UsageError(f'bad format for {flag}: "{text}": expected HOST:IP such as '
                         "db:10.0.0.5")
    if address == "host-gateway":
        raise UsageError(f'invalid {flag} "{text}": host-gateway is not supported here; give '
                         "the node's IP address")
    if len(address) > 2 and address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise UsageError(f'invalid IP address in {flag}: "{address}" (expected HOST:IP such '
                         "as db:10.0.0.5)") from None
    return f"{address} {host}"


def update_hosts(hosts: MutableSequence[str], add: Iterable[str], rm: Iterable[str]) -> None:
    """--host-rm HOST[:IP] takes HOST off the lines (of that IP only, when given); a line
    left without a name goes. Then each --host-add line is appended, once."""
    removals = []
    for item in rm:
        host, _, address = item.partition(":")
        removals.append((host, address))
    lines = []
    for line in hosts:
        parts = line.split()
        if not parts:
            continue
        address, names = parts[0], parts[1:]
        for host, only_address in removals:
            if not only_address or only_address == address:
                names = [n for n in names if n != host]
        if names:
            lines.append(" ".join([address, *names]))
    lines.extend(parse_host(item, "--host-add") for item in add)
    del hosts[:]
    hosts.extend(dict.fromkeys(lines))


# ------------------------------------------------------------------ groups ----

def check_group(text: str, flag: str) -> str:
    """A supplementary group: a name or a GID, without white space."""
    if not text or any(ch.isspace() for ch in text):
        raise UsageError(f'invalid value "{text}" for {flag}: expected a group name or GID')
    return text


# ------------------------------------------------------------- log options ----

def log_options(driver: str | None, opts: Iterable[str],
                current_driver: str = "") -> tuple[str, dict[str, str]] | None:
    """The task's log driver and options that `--log-driver` and `--log-opt KEY=VALUE`
    ask for, checked by the manager's own rules; None when neither was given.

    `current_driver` is the service's (update): --log-opt alone keeps it. On update,
    either flag replaces the options as a whole (Docker replaces the driver's
    configuration; it ignores --log-opt without --log-driver, Shoal does not)."""
    items = list(opts)
    if driver is None and not items:
        return None
    if driver is not None and driver not in LOG_DRIVERS:
        raise UsageError(f'log driver "{driver}" is not supported for --log-driver: Shoal '
                         "runs tasks with podman, which keeps their output in its own log "
                         "file (json-file, local), in the node's journal (journald) or "
                         "nowhere (none); use one of json-file, local, journald, none")
    options: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f'invalid --log-opt "{item}": expected KEY=VALUE such as '
                             "max-size=10m")
        options[key] = value
    options = logrules.with_driver_defaults(driver, options)
    name = current_driver if driver is None else driver
    try:
        logrules.podman_log(name, options)
    except logrules.LogOptionError as exc:
        raise UsageError(f"{exc} (--log-opt)") from None
    return name, options
