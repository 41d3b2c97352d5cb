"""Linux capabilities of task containers, decided as Docker's engine decides them.

Owns the capability table (kernel numbering), Docker's default set for
containers, and the arithmetic that turns a ContainerSpec's cap_add/cap_drop
into the exact set a container gets (`effective`). The engine is then told
that set and nothing else (drop everything, add these), so a container has
Docker's capabilities whatever the engine's own defaults are: podman's lack
NET_RAW, for one, and `ping` fails without it.

Docker's rules, restated:
- nothing added or dropped: the default set;
- ALL among the additions: every capability the node can grant, minus the ones
  named in the drops (ALL in the drops then removes nothing more);
- otherwise ALL among the drops: exactly the additions;
- otherwise: the default set minus the drops, plus the additions.
Names are accepted in any case, with or without the CAP_ prefix.

`effective` and `bitmask` are pure; `grantable()` reads this process's
capability bounding set once (what "ALL" means on this node).
"""
from __future__ import annotations

import functools
from typing import Iterable, Sequence

ALL = "ALL"

# Index = the capability's number in linux/capability.h.
CAPABILITIES: tuple[str, ...] = tuple("CAP_" + name for name in (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
    "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
    "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"))
_NUMBER = {name: number for number, name in enumerate(CAPABILITIES)}

# Docker's default capabilities of a container (moby's oci defaults), in kernel order.
DOCKER_DEFAULT: tuple[str, ...] = tuple("CAP_" + name for name in (
    "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "NET_BIND_SERVICE", "NET_RAW", "SYS_CHROOT", "MKNOD", "AUDIT_WRITE", "SETFCAP"))


class CapabilityError(ValueError):
    """A capability name nobody knows; the message is fit for a task's error."""


def normalize(name: str) -> str:
    """"net_raw", "NET_RAW" and "cap_net_raw" -> "CAP_NET_RAW"; "all" -> "ALL".

    Raises CapabilityError for a name that is not a Linux capability."""
    text = name.strip().upper()
    if text == ALL:
        return ALL
    if not text.startswith("CAP_"):
        text = "CAP_" + text
    if text not in _NUMBER:
        raise CapabilityError(f'unknown capability: "{text}"')
    return text


def effective(add: Iterable[str], drop: Iterable[str],
              grantable_caps: Sequence[str] = CAPABILITIES,
              default: Sequence[str] = DOCKER_DEFAULT) -> list[str]:
    """The capabilities a container gets from its spec's additions and drops (see the
    module's rules), in kernel order, each once. `grantable_caps` is what ALL means."""
    additions = [normalize(c) for c in add]
    drops = {normalize(c) for c in drop}
    if ALL in additions:
        chosen = {c for c in grantable_caps if c not in drops}
    elif ALL in drops:
        chosen = set(additions)
    else:
        chosen = {c for c in default if c not in drops} | set(additions)
    return sorted(chosen, key=_NUMBER.__getitem__)


def bitmask(names: Iterable[str]) -> int:
    """The capability set as the kernel shows it (/proc/<pid>/status CapEff)."""
    mask = 0
    for name in names:
        mask |= 1 << _NUMBER[normalize(name)]
    return mask


def names_of(mask: int) -> list[str]:
    """The capabilities of a kernel bitmask that this table knows, in kernel order."""
    return [name for number, name in enumerate(CAPABILITIES) if mask >> number & 1]


def parse_bounding(status_text: str) -> list[str]:
    """The capabilities of the CapBnd line of a /proc/<pid>/status text."""
    for line in status_text.splitlines():
        if line.startswith("CapBnd:"):
            return names_of(int(line.split()[1], 16))
    return list(CAPABILITIES)


@functools.lru_cache(maxsize=1)
def grantable() -> tuple[str, ...]:
    """What ALL means on this node: the capabilities of this process's bounding set (the
    agent runs as the engine's user; a container cannot be given more than that)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            return tuple(parse_bounding(status.read()))
    except OSError:
        return CAPABILITIES
