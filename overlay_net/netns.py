"""Network namespace plumbing: named namespaces and running code inside one.

Owns how this package enters a namespace without `ip netns exec` (which
remounts /sys) and without forking a process that holds gRPC state: the work
runs on a short-lived thread that `setns()`es into the namespace first
(namespaces are per thread on Linux). Sockets opened there stay in that
namespace, and processes started from that thread (e.g. `nft`) inherit it.

Also owns creating/removing named namespaces under /run/netns (a bind mount of
a fresh namespace, the `ip netns add` convention), used for the sandboxes and,
by the worker, for task namespaces.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import threading
from pathlib import Path
from typing import Callable, Optional, TypeVar

from pyroute2 import IPRoute

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MNT_DETACH = 2

T = TypeVar("T")

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class NetnsError(OSError):
    """A namespace operation failed."""


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise NetnsError(err, f"{what}: {os.strerror(err)}")


def netns_path(name_or_path: str) -> str:
    """A namespace name (under /run/netns) or an absolute path, as a path."""
    return name_or_path if "/" in name_or_path else str(NETNS_DIR / name_or_path)


def run_in_netns(path: Optional[str], fn: Callable[[], T]) -> T:
    """Runs fn() on a thread inside the namespace at path (None: this thread's own)."""
    if path is None:
        return fn()
    box: dict[str, object] = {}

    def body() -> None:
        try:
            fd = os.open(netns_path(path), os.O_RDONLY | os.O_CLOEXEC)
            try:
                _check(_libc.setns(fd, CLONE_NEWNET), f"setns {path}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as err:  # handed to the caller's thread
            box["error"] = err

    thread = threading.Thread(target=body, name=f"netns:{os.path.basename(path)}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def exists(name_or_path: str) -> bool:
    return os.path.exists(netns_path(name_or_path))


def create(name: str) -> str:
    """Creates the named namespace (with loopback up) if missing; returns its path."""
    path = NETNS_DIR / name
    if path.exists():
        return str(path)
    NETNS_DIR.mkdir(parents=True, exist_ok=True)
    _make_netns_dir_shared()
    path.touch(mode=0o444)

    def body() -> None:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        _check(_libc.mount(b"/proc/thread-self/ns/net", str(path).encode(), b"none",
                           MS_BIND, None), f"bind mount {path}")

    box: dict[str, BaseException] = {}

    def runner() -> None:
        try:
            body()
        except BaseException as err:
            box["error"] = err

    thread = threading.Thread(target=runner, name=f"netns-create:{name}")
    thread.start()
    thread.join()
    if "error" in box:
        path.unlink(missing_ok=True)
        raise box["error"]
    run_in_netns(str(path), _loopback_up)
    return str(path)


def _loopback_up() -> None:
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")


def _make_netns_dir_shared() -> None:
    """Like iproute2: /run/netns is a shared mount point, so its bind mounts propagate."""
    mounts = Path("/proc/self/mountinfo").read_text()
    if any(line.split()[4] == str(NETNS_DIR) for line in mounts.splitlines()):
        return
    target = str(NETNS_DIR).encode()
    _check(_libc.mount(target, target, b"none", MS_BIND | MS_REC, None),
           f"bind mount {NETNS_DIR}")
    _check(_libc.mount(b"none", target, None, MS_SHARED | MS_REC, None),
           f"make {NETNS_DIR} shared")


def remove(name_or_path: str) -> bool:
    """Unmounts and removes a named namespace; False if it did not exist."""
    path = netns_path(name_or_path)
    if not os.path.exists(path):
        return False
    ret = _libc.umount2(path.encode(), MNT_DETACH)
    if ret != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
        _check(ret, f"umount {path}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return True


def list_names(prefix: str) -> list[str]:
    """Names under /run/netns that start with prefix."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []
