"""Docker's `--mount` grammar for services, and `--mount-add`/`--mount-rm` on update.

Owns the translation of one `--mount` value, a CSV list of fields such as
`type=volume,source=data,target=/data,volume-opt=type=tmpfs`, into a
`pb.Mount`, with Docker's field names and spellings (`source`/`src`,
`target`/`dst`/`destination`, `readonly`/`ro`, `volume-*`, `bind-*`,
`tmpfs-*`; the type defaults to volume) and Docker's refusals: an unknown
field, options of another mount type, a relative target, an absolute volume
source, a source on a tmpfs, a bind without a source. The manager checks the
same rules again (manager/validation.py) for callers of the API; the messages
are the same on both sides.

`update_mounts` applies `--mount-rm TARGET` (by target) and then `--mount-add`
(a mount at the target of an existing one replaces it).
"""
from __future__ import annotations

import csv
from typing import Iterable, MutableSequence

from cli.parsing import INT64_MAX, UsageError, parse_size
from proto import mountrules
from proto import objects_pb2 as pb

TYPES = {"volume": pb.Mount.VOLUME, "bind": pb.Mount.BIND, "tmpfs": pb.Mount.TMPFS}
PROPAGATIONS = mountrules.PROPAGATIONS
MAX_MODE = mountrules.MAX_FILE_MODE

FIELDS = ("type", "source", "src", "target", "dst", "destination", "readonly", "ro",
          "bind-propagation", "volume-driver", "volume-opt", "volume-label", "volume-nocopy",
          "tmpfs-size", "tmpfs-mode")
_BARE = ("readonly", "ro", "volume-nocopy")      # fields that may stand without =value
# Docker fields Shoal has no counterpart for: refused by name rather than as unknown.
_UNSUPPORTED = {
    "consistency": "it only matters to Docker Desktop on macOS and has no effect on Linux",
    "bind-nonrecursive": "bind mounts are always recursive here",
    "bind-recursive": "bind mounts are always recursive here",
    "bind-create-src": "a bind source must exist on the node",
    "volume-subpath": "a volume is always mounted whole",
    "image-subpath": "image mounts are not supported",
}
FORM = ("expected type=volume|bind|tmpfs,source=NAME|/PATH,target=/PATH followed by any of "
        "readonly, bind-propagation, volume-driver, volume-opt, volume-label, volume-nocopy, "
        "tmpfs-size, tmpfs-mode")


def type_name(mount: pb.Mount) -> str:
    """"volume", "bind" or "tmpfs", as Docker spells a mount's type."""
    return pb.Mount.Type.Name(mount.type).lower()


clean_target = mountrules.mount_target  # "/data/" and "/data" are one target


class _Groups:
    """Which type-specific option groups a --mount value used (Docker refuses mixes).
    A plain class: `dataclasses` costs `service ls` ~6 ms of start-up (see cli.client)."""

    def __init__(self) -> None:
        self.used: dict[str, str] = {}   # prefix -> first field using it

    def note(self, key: str) -> None:
        prefix = key.split("-", 1)[0]
        self.used.setdefault(prefix, key)


def _bool(key: str, value: str | None) -> bool:
    if value is None:
        return True
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise UsageError(f"invalid value for '{key}': invalid boolean value (\"{value}\"): must be "
                     'one of "true", "1", "false", or "0" (default "true")')


def _pair(key: str, value: str, text: str) -> tuple[str, str]:
    name, _, val = value.partition("=")
    if not name:
        raise UsageError(f"invalid value for '{key}' in --mount \"{text}\": expected "
                         f"{key}=KEY=VALUE")
    return name, val


def _fields(text: str) -> list[str]:
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise UsageError(f'invalid --mount "{text}": {exc}') from None
    return rows[0] if rows else []


def parse_mount(text: str) -> pb.Mount:
    """Parses one --mount value into a Mount, or raises UsageError saying what is wrong."""
    value_text = text.strip()
    if not value_text:
        raise UsageError(f'invalid --mount "": value is empty; {FORM}')
    mount = pb.Mount(type=pb.Mount.VOLUME)
    groups = _Groups()
    for item in _fields(value_text):
        key, sep, value = item.partition("=")
        if key.strip() != key:
            raise UsageError(f"invalid option '{key.strip()}' in '{item}': option should not "
                             "have whitespace")
        if sep:
            if not value.strip():
                raise UsageError(f"invalid value for '{key}': value is empty")
            if value.strip() != value:
                raise UsageError(f"invalid value for '{key}' in '{item}': value should not "
                                 "have whitespace")
        key = key.lower()
        if not sep and key not in _BARE:
            if not key or key in FIELDS or key in _UNSUPPORTED:
                raise UsageError(f"invalid field '{item}' must be a key=value pair")
            raise UsageError(f"unknown option '{key}' in '{item}': {FORM}")
        _apply(mount, key, value if sep else None, item, value_text, groups)
    check_exclusive(mount, groups)
    check_mount(mount)
    return mount


def _apply(mount: pb.Mount, key: str, value: str | None, item: str, text: str,
           groups: _Groups) -> None:
    """Sets one field of a --mount value on `mount` (value is None for a bare flag)."""
    val = value or ""
    if key == "type":
        type_key = val.lower()
        if type_key not in TYPES:
            raise UsageError(f'invalid mount type "{val}" in --mount "{text}": expected '
                             "volume, bind or tmpfs")
        mount.type = TYPES[type_key]
    elif key in ("source", "src"):
        mount.source = val
    elif key in ("target", "dst", "destination"):
        mount.target = val
    elif key in ("readonly", "ro"):
        mount.read_only = _bool(key, value)
    elif key == "bind-propagation":
        groups.note(key)
        propagation = val.lower()
        if propagation not in PROPAGATIONS:
            raise UsageError(f"invalid value for bind-propagation: {val} (expected one of "
                             + ", ".join(PROPAGATIONS) + ")")
        mount.bind_options.propagation = propagation
    elif key == "volume-driver":
        groups.note(key)
        mount.volume_options.driver = val
    elif key == "volume-opt":
        groups.note(key)
        name, option = _pair(key, val, text)
        mount.volume_options.driver_options[name] = option
    elif key == "volume-label":
        groups.note(key)
        name, label = _pair(key, val, text)
        mount.volume_options.labels[name] = label
    elif key == "volume-nocopy":
        groups.note(key)
        mount.volume_options.no_copy = _bool(key, value)
    elif key == "tmpfs-size":
        groups.note(key)
        try:
            size = parse_size(val, "tmpfs-size")
        except UsageError as exc:
            limit = f"; at most {INT64_MAX} bytes" if "too large" in str(exc) else ""
            raise UsageError(f"invalid value for tmpfs-size: {val} (expected a size such as "
                             f"64k, 1m or 1g{limit})") from None
        mount.tmpfs_options.size_bytes = size
    elif key == "tmpfs-mode":
        groups.note(key)
        try:
            mode = int(val, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= MAX_MODE:
            raise UsageError(f"invalid value for tmpfs-mode: {val} (expected octal "
                             "permission bits such as 1777 or 0700)")
        mount.tmpfs_options.mode = mode
    elif key in _UNSUPPORTED:
        raise UsageError(f"unsupported option '{key}' in '{item}': {_UNSUPPORTED[key]}")
    else:
        raise UsageError(f"unknown option '{key}' in '{item}': {FORM}")


def check_exclusive(mount: pb.Mount, groups: _Groups) -> None:
    """Docker's client-side rule: `bind-*`, `volume-*` and `tmpfs-*` fields only with
    their own mount type."""
    kind = type_name(mount)
    for prefix in ("bind", "volume", "tmpfs"):
        if prefix in groups.used and prefix != kind:
            raise UsageError(f"cannot mix '{prefix}-*' options with mount type '{kind}'")


def check_mount(mount: pb.Mount) -> None:
    """The daemon's rules for one mount (proto.mountrules, which the manager applies
    again), before anything is sent."""
    try:
        mountrules.check_mount(mount)
    except mountrules.MountError as err:
        raise UsageError(str(err)) from None


def update_mounts(mounts: MutableSequence[pb.Mount], add: Iterable[str],
                  rm: Iterable[str]) -> None:
    """`service update`: --mount-rm TARGET removes the mount at TARGET, then each
    --mount-add is added, replacing the mount already at its target (in its place)."""
    added = [parse_mount(text) for text in add]
    seen: set[str] = set()
    for mount in added:
        target = clean_target(mount.target)
        if target in seen:
            raise UsageError(f"duplicate mount target: {mount.target} is given twice in "
                             "--mount-add")
        seen.add(target)
    removed = {clean_target(target) for target in rm}
    keep = [m for m in mounts if clean_target(m.target) not in removed]
    for mount in added:
        target = clean_target(mount.target)
        index = next((i for i, m in enumerate(keep) if clean_target(m.target) == target), None)
        if index is None:
            keep.append(mount)
        else:
            keep[index] = mount
    del mounts[:]
    mounts.extend(keep)


def create_mounts(texts: Iterable[str]) -> list[pb.Mount]:
    """`service create --mount ...`: the mounts, refusing two at one target."""
    result: list[pb.Mount] = []
    seen: set[str] = set()
    for text in texts:
        mount = parse_mount(text)
        target = clean_target(mount.target)
        if target in seen:
            raise UsageError(f"duplicate mount point: {mount.target} (two --mount options "
                             "have this target)")
        seen.add(target)
        result.append(mount)
    return result
