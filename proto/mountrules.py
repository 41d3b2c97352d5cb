"""Rules for one `Mount` of a container spec, as Docker's daemon checks them.

Pure: `check_mount` raises `MountError` with a message that says what was wrong
and what form is expected. The manager applies them to every spec it is sent
(manager/validation.py, as INVALID_ARGUMENT); the `swarm` CLI applies the same
rules before it calls (cli/mounts.py), so both speak the same words.
"""
from __future__ import annotations

import posixpath
import re

from proto import objects_pb2 as pb

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
MAX_FILE_MODE = 0o7777


class MountError(ValueError):
    """A mount that Docker (and so Shoal) refuses; the message says why."""


def mount_type_name(mount: pb.Mount) -> str:
    """"volume", "bind" or "tmpfs" (the number itself when the type is not one of them)."""
    try:
        return pb.Mount.Type.Name(mount.type).lower()
    except ValueError:
        return str(mount.type)


def mount_target(target: str) -> str:
    """A mount target as targets are compared: "/data/" and "/data" are one."""
    return posixpath.normpath(target) if target else target


ANONYMOUS_WITH_OPTIONS = ("invalid mount config for type \"volume\": an anonymous volume (no "
                          "source) cannot take volume-opt, volume-label or volume-driver "
                          "(mount at {target}): name it with source=NAME")


def check_mount(m: pb.Mount) -> None:
    """One mount, by the rules of Docker's daemon (and the same words as the CLI)."""
    kind = mount_type_name(m)
    if m.type not in (pb.Mount.VOLUME, pb.Mount.BIND, pb.Mount.TMPFS):
        raise MountError(f"invalid mount type: {kind}: expected volume, bind or tmpfs")
    for option, field_name in (("bind", "bind_options"), ("volume", "volume_options"),
                               ("tmpfs", "tmpfs_options")):
        if m.HasField(field_name) and option != kind:
            raise MountError(f"cannot mix '{option}-*' options with mount type '{kind}' "
                              f"(mount at {m.target or '?'})")
    if not m.target:
        raise MountError(f'invalid mount config for type "{kind}": field Target must not be '
                          "empty")
    if not m.target.startswith("/"):
        raise MountError(f"invalid mount target, must be an absolute path: {m.target}")
    if mount_target(m.target) == "/":
        raise MountError(f"invalid mount config for type \"{kind}\": invalid specification: "
                          "destination can't be '/'")
    if m.type == pb.Mount.BIND:
        if not m.source:
            raise MountError('invalid mount config for type "bind": field Source must not be '
                              "empty")
        if not m.source.startswith("/"):
            raise MountError(f"invalid bind mount source, must be an absolute path: "
                              f"{m.source} (the path is the node's, not this client's)")
        propagation = m.bind_options.propagation
        if propagation and propagation not in PROPAGATIONS:
            raise MountError(f'invalid mount config for type "bind": invalid propagation '
                              f"mode: {propagation} (expected one of {', '.join(PROPAGATIONS)})")
    elif m.type == pb.Mount.VOLUME:
        if m.source.startswith("/"):
            raise MountError(f"invalid volume mount source, must not be an absolute path: "
                              f"{m.source} (for a path of the node use type=bind)")
        if m.source and not VOLUME_NAME_RE.match(m.source):
            raise MountError(f'invalid volume name "{m.source}": only '
                              '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed (for a path of the '
                              "node use type=bind with an absolute source)")
        opts = m.volume_options
        for what, entries in (("volume-opt", opts.driver_options), ("volume-label", opts.labels)):
            if any(not key or any(ch.isspace() for ch in key) for key in entries):
                raise MountError(f"invalid {what} of the volume mount at {m.target}: keys "
                                  "must not be empty nor contain white space")
        if any(ch.isspace() for ch in opts.driver):
            raise MountError(f'invalid volume-driver "{opts.driver}" of the mount at '
                              f"{m.target}")
        if not m.source and (opts.driver_options or opts.labels
                             or opts.driver not in ("", "local")):
            # podman creates an anonymous volume only with the defaults
            raise MountError(ANONYMOUS_WITH_OPTIONS.format(target=m.target))
    else:
        if m.source:
            raise MountError('invalid mount config for type "tmpfs": field Source must not '
                              "be specified")
        if m.tmpfs_options.size_bytes < 0:
            raise MountError(f'invalid mount config for type "tmpfs": tmpfs size must not be '
                              f"negative: {m.tmpfs_options.size_bytes}")
        if m.tmpfs_options.mode > MAX_FILE_MODE:
            raise MountError(f'invalid mount config for type "tmpfs": invalid tmpfs mode '
                              f"{oct(m.tmpfs_options.mode)}: expected permission bits up to "
                              "0o7777")
