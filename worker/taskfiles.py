"""Secret and config files of tasks: one tmpfs per task, never the node's disk.

Owns how a task's secrets and configs reach its container. The agent keeps
the secrets and configs the dispatcher sent in memory (`TaskFiles.secrets`,
`TaskFiles.configs`). When a task that references some is prepared, a fresh
tmpfs is mounted on the host at `<root>/<task id>` (root defaults to
`/run/shoal/<node id>/tasks`: nodes of a lab share the host's mount
namespace), each file is written there with its owner and mode, and every
file is bind-mounted read-only into the container: secrets at
`/run/secrets/<target>` (or their absolute target), configs at their target.
When the task's container stops, or the task is gone, the tmpfs is unmounted
and its directory removed; on agent start, tmpfs of tasks no longer assigned
are removed too.

`plan()` is the pure part (which files, where, owned how); `TaskFiles` does
the mounting and writing.
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import logging
import os
import posixpath
from dataclasses import dataclass
from typing import Iterable, Mapping

from proto import objects_pb2 as pb
from worker.fserrors import describe
from worker.runtime import Mount

SECRETS_DIR = "/run/secrets"
DEFAULT_MODE = 0o444
RUN_ROOT = "/run/shoal"
TMPFS_SLACK = 64 * 1024      # bytes beyond the files' size (inodes, rounding)

_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MNT_DETACH = 2


class FileError(Exception):
    """A task's files cannot be provided; the message is fit for the task's error."""


@dataclass(frozen=True)
class FileEntry:
    """One file a task's container gets."""
    kind: str             # "secret" | "config"
    name: str             # the secret's or config's name
    object_id: str
    host_name: str        # file name inside the task's tmpfs
    container_path: str   # absolute path in the container
    data: bytes
    uid: int
    gid: int
    mode: int


def default_root(node_id: str) -> str:
    """Where this node's task tmpfs live on the host."""
    return os.path.join(RUN_ROOT, node_id, "tasks")


def _secret_target(target: str) -> str:
    return target if target.startswith("/") else posixpath.join(SECRETS_DIR, target)


def plan(task: pb.Task, secrets: Mapping[str, pb.Secret],
         configs: Mapping[str, pb.Config]) -> list[FileEntry]:
    """The files of `task`, from the secrets and configs this node holds.

    Raises FileError when the node does not hold one the task references (the
    dispatcher sends them before the task; a missing one was removed meanwhile).
    """
    entries: list[FileEntry] = []
    container = task.spec.container
    for index, sref in enumerate(container.secrets):
        sec = secrets.get(sref.secret_id)
        if sec is None:
            raise FileError(f"secret {sref.secret_name or sref.secret_id} "
                            f"({sref.secret_id}) was not received by this node")
        entries.append(FileEntry(
            "secret", sref.secret_name, sref.secret_id, f"secret-{index}",
            _secret_target(sref.target or sref.secret_name), sec.spec.data,
            sref.uid, sref.gid, sref.mode or DEFAULT_MODE))
    for index, cref in enumerate(container.configs):
        cfg = configs.get(cref.config_id)
        if cfg is None:
            raise FileError(f"config {cref.config_name or cref.config_id} "
                            f"({cref.config_id}) was not received by this node")
        target = cref.target or "/" + cref.config_name
        entries.append(FileEntry(
            "config", cref.config_name, cref.config_id, f"config-{index}",
            target if target.startswith("/") else "/" + target, cfg.spec.data,
            cref.uid, cref.gid, cref.mode or DEFAULT_MODE))
    return entries


def tmpfs_size(entries: Iterable[FileEntry]) -> int:
    """Bytes for the task's tmpfs: its files plus slack, in whole pages."""
    page = 4096
    total = sum(-(-len(e.data) // page) * page for e in entries) + TMPFS_SLACK
    return -(-total // page) * page


# ------------------------------------------------------------ mounting ----

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _mount_tmpfs(path: str, size: int) -> None:
    options = f"mode=0700,size={size}".encode()
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    if _libc.mount(b"tmpfs", path.encode(), b"tmpfs", flags, options) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount tmpfs on {path}: {os.strerror(err)}")


def _unmount(path: str) -> None:
    """Lazily unmounts `path` (a container still holding a bind keeps its own view)."""
    while os.path.ismount(path):
        if _libc.umount2(path.encode(), _MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err == errno.EINVAL:    # not a mount point after all
                return
            raise OSError(err, f"unmount {path}: {os.strerror(err)}")


def _write(directory: str, entry: FileEntry) -> str:
    path = os.path.join(directory, entry.host_name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        view = memoryview(entry.data)
        while view:
            view = view[os.write(fd, view):]
        os.fchown(fd, entry.uid, entry.gid)
        os.fchmod(fd, entry.mode)
    finally:
        os.close(fd)
    return path


class TaskFiles:
    """The secrets and configs this node holds, and the tmpfs of its tasks."""

    def __init__(self, root: str, log: logging.LoggerAdapter | None = None) -> None:
        self.root = root
        self.secrets: dict[str, pb.Secret] = {}
        self.configs: dict[str, pb.Config] = {}
        self.log = log or logging.LoggerAdapter(logging.getLogger(__name__), {"node": "-"})

    def task_dir(self, task_id: str) -> str:
        if not task_id or "/" in task_id or task_id in (".", ".."):
            raise ValueError(f"invalid task ID {task_id!r}")
        return os.path.join(self.root, task_id)

    # ---- blocking parts (run in a thread by the async wrappers)

    def mount(self, task_id: str, entries: list[FileEntry]) -> list[Mount]:
        """Mounts a fresh tmpfs for the task, writes its files; returns the container mounts."""
        directory = self.task_dir(task_id)
        self.release(task_id)   # never reuse a leftover: start from an empty tmpfs
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        os.mkdir(directory, 0o700)
        try:
            _mount_tmpfs(directory, tmpfs_size(entries))
            mounts = [Mount(source=_write(directory, e), target=e.container_path,
                            read_only=True) for e in entries]
        except BaseException:
            self.release(task_id)
            raise
        self.log.info("task %s: %d secret/config files on a tmpfs at %s",
                      task_id, len(entries), directory)
        return mounts

    def release(self, task_id: str) -> bool:
        """Unmounts and removes the task's tmpfs; True if there was one."""
        directory = self.task_dir(task_id)
        if not os.path.lexists(directory):
            return False
        _unmount(directory)
        for name in os.listdir(directory):   # only if the mount had failed half-way
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)
        self.log.info("task %s: secret/config tmpfs removed", task_id)
        return True

    def leftovers(self) -> list[str]:
        """Task IDs that have a tmpfs directory under the root."""
        try:
            return sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []

    def cleanup(self, keep: Iterable[str]) -> list[str]:
        """Removes the tmpfs of every task not in `keep`; returns their task IDs."""
        kept = set(keep)
        removed = []
        for task_id in self.leftovers():
            if task_id in kept:
                continue
            try:
                self.release(task_id)
                removed.append(task_id)
            except (OSError, ValueError) as exc:
                self.log.warning("cannot remove the tmpfs of task %s: %s", task_id, exc)
        return removed

    # ---- what the task controller calls

    async def prepare(self, task: pb.Task) -> list[Mount]:
        """The container mounts for `task`'s secrets and configs ([] if it has none).

        Raises FileError when a file cannot be provided.
        """
        entries = plan(task, self.secrets, self.configs)
        if not entries:
            return []
        try:
            return await asyncio.to_thread(self.mount, task.id, entries)
        except OSError as exc:
            path = exc.filename if isinstance(exc.filename, str) else self.task_dir(task.id)
            raise FileError(f"cannot provide secrets and configs: {describe(exc, path)}") from None

    async def finish(self, task_id: str) -> None:
        """The task's container no longer runs: its files go."""
        if not os.path.lexists(os.path.join(self.root, task_id)):
            return
        try:
            await asyncio.to_thread(self.release, task_id)
        except OSError as exc:
            self.log.warning("task %s: cannot remove its secret/config tmpfs: %s", task_id, exc)
