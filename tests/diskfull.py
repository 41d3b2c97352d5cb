"""Small full file systems for resource-fault tests: a size-limited tmpfs and a filler.

`small_tmpfs(path, size)` mounts a tmpfs of `size` bytes on `path` for the
duration of a `with` block and always unmounts it (lazily, so a file still
open cannot keep it), also when the test fails. Mounting needs root: a test
that uses it fails with a message when not run as root (the CI runs as root),
it is never skipped. `fill(directory)` writes a filler file until the file
system has no room left; removing that file gives the room back.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import subprocess
from pathlib import Path
from typing import Iterator

_MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def require_root(what: str) -> None:
    """Fails (never skips) the calling test when not run as root."""
    if os.geteuid() != 0:
        raise AssertionError(f"{what} needs root (it mounts a tmpfs); run the tests as root, "
                             "as the CI does")


@contextlib.contextmanager
def small_tmpfs(path: Path, size: int, inodes: int = 0) -> Iterator[Path]:
    """A tmpfs of `size` bytes (and at most `inodes` inodes, if given) on `path`."""
    require_root("a full-disk test")
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0700" + (f",nr_inodes={inodes}" if inodes else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        if _libc.umount2(str(path).encode(), _MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err != errno.EINVAL:   # EINVAL: already not a mount point
                raise OSError(err, f"unmount {path}: {os.strerror(err)}")


def is_mounted(path: Path) -> bool:
    return any(line.split()[4] == str(path)
               for line in Path("/proc/self/mountinfo").read_text().splitlines())


def _check_small(directory: Path) -> None:
    """Never fill a real disk by mistake: only a file system of at most 64 MiB."""
    info = os.statvfs(directory)
    if info.f_blocks * info.f_frsize > 64 << 20:
        raise AssertionError(f"{directory} is not on a small test file system; not filling it")


def fill(directory: Path, name: str = "filler") -> Path:
    """Writes `directory/name` until the file system is full; returns its path."""
    _check_small(directory)
    filler = directory / name
    chunk = b"\xff" * 4096
    with open(filler, "ab", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    # a last partial page may still take a few bytes: take them too
    with open(filler, "ab", buffering=0) as f:
        for size in (1024, 64, 1):
            while True:
                try:
                    f.write(b"\xff" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return filler


def fill_inodes(directory: Path) -> list[Path]:
    """Creates empty files until the file system has no inode left; returns them."""
    _check_small(directory)
    made = []
    for i in range(1_000_000):
        path = directory / f"inode-{i}"
        try:
            path.touch()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            return made
        made.append(path)
    raise AssertionError(f"{directory} never ran out of inodes")
