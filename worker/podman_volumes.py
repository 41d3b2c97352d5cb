"""podman's named volumes on the wire: its volume list and its removal refusals.

Pure translation for `worker.podman.PodmanRuntime.list_volumes` and
`remove_volume`: an entry of libpod's `GET /volumes/json` becomes a
`worker.runtime.VolumeInfo`; a refused `DELETE /volumes/{name}` becomes
`VolumeNotFound` (404), `VolumeInUse` (409, worded as Docker's "volume is in
use - [container IDs]") or `RuntimeError_`. No I/O here.
"""
from __future__ import annotations

import re
from typing import Any

from worker.podman_wire import error_message, parse_time
from worker.runtime import RuntimeError_, VolumeInfo, VolumeInUse, VolumeNotFound

_USERS = re.compile(r"following container\(s\):\s*(.*?)(?::\s*volume is being used)?\s*$",
                    re.DOTALL)


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()} if isinstance(value, dict) else {}


def volume_info(entry: dict[str, Any]) -> VolumeInfo:
    """One entry of libpod's volume list."""
    return VolumeInfo(name=str(entry.get("Name") or ""),
                      driver=str(entry.get("Driver") or "local"),
                      labels=_strings(entry.get("Labels")),
                      options=_strings(entry.get("Options")),
                      mountpoint=str(entry.get("Mountpoint") or ""),
                      created_at=parse_time(str(entry.get("CreatedAt") or "")))


def volumes_from(data: Any) -> list[VolumeInfo]:
    """libpod's answer to `GET /volumes/json`, sorted by name (unnamed entries dropped)."""
    found = [volume_info(e) for e in (data or []) if isinstance(e, dict) and e.get("Name")]
    return sorted(found, key=lambda v: v.name)


def removal_error(name: str, status: int, data: Any, reason: str = "") -> RuntimeError_:
    """What a refused `DELETE /volumes/{name}` means, as the exception to raise."""
    message = error_message(data, status, reason)
    if status == 404:
        return VolumeNotFound(f"no such volume: {name}")
    if status == 409 or "being used" in message:
        users = _USERS.search(message)
        ids = [c.strip() for c in users.group(1).split(",") if c.strip()] if users else []
        return VolumeInUse(f"remove {name}: volume is in use - [{', '.join(ids)}]" if ids
                           else f"remove {name}: volume is in use ({message})")
    return RuntimeError_(f"remove {name}: {message}")
