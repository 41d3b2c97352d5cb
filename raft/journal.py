"""The raft journal on disk: an append-only, checksummed, fsynced log file.

pysyncobj's own `FileJournal` writes entries into an mmap and never syncs
them, and its log compaction rewrites the journal in place (a crash in the
middle loses entries).  This module replaces it with a journal that

- appends each entry with one `write()` and, by default, `fdatasync()`s it
  before pysyncobj goes on (so a leader has the entry on disk before it
  replicates it, and a follower before it acknowledges it);
- truncates a diverging tail with `ftruncate`;
- compacts (drops a prefix) by writing a new file and renaming it over the
  old one, so a crash leaves either the old or the new journal;
- stores the raft term and vote synchronously and atomically, and the
  commit index lazily (it is only a hint: a restarted node re-learns it);
- on open, cuts off a torn last record (what a crash leaves of a write that
  was never acknowledged, logged) but refuses a journal whose damaged record
  has intact records after it (`CorruptJournal`, naming the file and the
  byte offset): those entries were acknowledged, and starting without them
  would silently lose or alter committed state;
- when a write fails (disk full, I/O error) it cuts off what it wrote of the
  record and raises `DiskError`: the file stays a valid journal, and the
  next write, once there is room, appends right after the last good entry.

It implements the interface pysyncobj expects from `createJournal()`:
entries are `(command: bytes, index: int, term: int)` tuples, addressed by
position (not by raft index) with `[]`, slices and `len()`.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import struct
import time
import zlib
from typing import Callable, Optional, Union

from raft.errors import CorruptJournal, DiskError

_MAGIC = b"SHOALJ01"
_RECORD = struct.Struct("<IIQQ")  # command length, crc32, raft index, raft term

Entry = tuple  # (command: bytes, index: int, term: int)


class DiskJournal:
    """pysyncobj journal kept in `path` (entries) and `path + ".meta"` (term, vote)."""

    def __init__(self, path: str, fsync: bool = True,
                 log: Optional[logging.LoggerAdapter] = None) -> None:
        self._path = path
        self._meta_path = path + ".meta"
        self._fsync = fsync
        self._log = log or logging.LoggerAdapter(logging.getLogger(__name__), {"node": "-"})
        self._broken = ""    # set when a failed write could not be undone: no more writes
        self._failing = False  # the last write failed (its recovery is logged)
        self._entries: list[Entry] = []
        self._offsets: list[int] = []  # file offset where each entry's record starts
        self._meta = self._read_meta()
        self._meta_dirty = False
        self._fd = -1
        # told the seconds each append took (write + fdatasync): the store's metrics
        self.append_observer: Optional[Callable[[float], None]] = None
        self._open()

    # ------------------------------------------------------------ files ----

    def _open(self) -> None:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        data = _read_all(fd)
        end = len(_MAGIC)
        try:
            if len(data) < len(_MAGIC) or data[: len(_MAGIC)] != _MAGIC:
                _check_magic(self._path, data)  # a prefix of it: the file's creation was torn
                os.ftruncate(fd, 0)
                os.pwrite(fd, _MAGIC, 0)
                self._sync(fd)
            else:
                self._entries, self._offsets, end = _parse(data)
                if end != len(data):
                    _check_torn(self._path, data, end, self._entries)
                    last = self._entries[-1][1] if self._entries else 0
                    self._log.warning(
                        "raft journal %s: cut off a torn last record (%d bytes at byte offset "
                        "%d, after raft index %d): a write that a crash interrupted, so "
                        "this node never acknowledged it; a raft leader sends it again if the "
                        "cluster has it", self._path,
                        len(data) - end, end, last)
                    os.ftruncate(fd, end)
                    self._sync(fd)
        except OSError as exc:
            os.close(fd)
            raise disk_error(exc, self._path, "prepare") from None
        except BaseException:
            os.close(fd)
            raise
        os.lseek(fd, end, os.SEEK_SET)
        self._fd = fd
        self._end = end

    def _sync(self, fd: int) -> None:
        if self._fsync:
            os.fdatasync(fd)

    def _read_meta(self) -> dict:
        try:
            with open(self._meta_path, "rb") as f:
                return json.loads(f.read() or b"{}")
        except FileNotFoundError:
            return {}

    def _write_meta(self) -> None:
        """Replaces the meta file atomically; DiskError (and the old file kept) on failure."""
        tmp = self._meta_path + ".tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(json.dumps(self._meta).encode())
                f.flush()
                if self._fsync:
                    os.fsync(f.fileno())
            os.replace(tmp, self._meta_path)
            self._sync_dir()
        except OSError as exc:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise disk_error(exc, self._meta_path, "write the raft term and vote to") from None
        self._meta_dirty = False

    def _sync_dir(self) -> None:
        if not self._fsync:
            return
        dfd = os.open(os.path.dirname(os.path.abspath(self._path)), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    # ------------------------------------------------- pysyncobj Journal ----

    def add(self, command: Union[bytes, str], idx: int, term: int) -> None:
        if isinstance(command, str):
            command = command.encode("utf-8")
        command = bytes(command)
        crc = zlib.crc32(command, zlib.crc32(struct.pack("<QQ", idx, term)))
        record = _RECORD.pack(len(command), crc, idx, term) + command
        if self._broken:
            raise AppendFailed(self._broken, self._path, 0, command)
        started = time.perf_counter()
        try:
            _write_all(self._fd, record)
            self._sync(self._fd)
        except OSError as exc:
            self._undo_append(exc, command)
        if self._failing:
            self._failing = False
            self._log.warning("raft journal %s: writes succeed again", self._path)
        if self.append_observer is not None:
            self.append_observer(time.perf_counter() - started)
        self._entries.append((command, idx, term))
        self._offsets.append(self._end)
        self._end += len(record)

    def _undo_append(self, exc: OSError, command: bytes) -> None:
        """Cuts off what a failed append wrote, then raises DiskError (always)."""
        error = disk_error(exc, self._path, "append an entry to", command)
        try:
            os.ftruncate(self._fd, self._end)
            os.lseek(self._fd, self._end, os.SEEK_SET)
        except OSError as cut:
            self._broken = (f"{error}; the part of the entry written could not be cut off "
                            f"({cut.strerror}): restart the node")
            raise AppendFailed(self._broken, self._path, error.errno, command) from None
        self._failing = True
        raise error

    def clear(self) -> None:
        self._entries = []
        self._offsets = []
        self._truncate(len(_MAGIC))

    def deleteEntriesFrom(self, entryFrom: int) -> None:
        if entryFrom >= len(self._entries):
            return
        cut = self._offsets[max(entryFrom, 0)]
        del self._entries[entryFrom:]
        del self._offsets[entryFrom:]
        self._truncate(cut)

    def deleteEntriesTo(self, entryTo: int) -> None:
        """Drops the first `entryTo` entries by atomically replacing the file."""
        if entryTo <= 0:
            return
        keep = self._entries[entryTo:]
        tmp = self._path + ".tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            parts = [_MAGIC]
            offsets = []
            pos = len(_MAGIC)
            for command, idx, term in keep:
                crc = zlib.crc32(command, zlib.crc32(struct.pack("<QQ", idx, term)))
                record = _RECORD.pack(len(command), crc, idx, term) + command
                offsets.append(pos)
                parts.append(record)
                pos += len(record)
            _write_all(fd, b"".join(parts))
            if self._fsync:
                os.fsync(fd)
            os.replace(tmp, self._path)
        except BaseException as exc:
            os.close(fd)
            try:
                os.unlink(tmp)  # a partial copy only takes the room that is missing
            except FileNotFoundError:
                pass
            if isinstance(exc, OSError):
                raise disk_error(exc, tmp, "compact the raft journal into") from None
            raise
        self._sync_dir()
        os.close(self._fd)
        self._fd = fd
        self._end = pos
        os.lseek(fd, pos, os.SEEK_SET)
        self._entries = list(keep)
        self._offsets = offsets

    def _truncate(self, offset: int) -> None:
        os.ftruncate(self._fd, offset)
        os.lseek(self._fd, offset, os.SEEK_SET)
        self._end = offset
        try:
            self._sync(self._fd)
        except OSError as exc:
            raise disk_error(exc, self._path, "truncate") from None

    def __getitem__(self, item):
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    def _destroy(self) -> None:
        if self._fd >= 0:
            if self._meta_dirty:
                try:
                    self._write_meta()
                except DiskError as exc:  # the commit index is a hint: closing goes on
                    self._log.warning("raft journal: %s", exc)
            os.close(self._fd)
            self._fd = -1

    def flush(self) -> None:
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise disk_error(exc, self._path, "flush") from None

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:
        if self._meta.get("commit_index") != raftCommitIndex:
            self._meta["commit_index"] = raftCommitIndex
            self._meta_dirty = True

    def getRaftCommitIndex(self) -> int:
        return self._meta.get("commit_index", 1)

    def setCurrentTerm(self, term: int, votedForNodeId: Optional[str]) -> None:
        """Raft: term and vote must be durable before any message reflects them.

        When they cannot be written (DiskError) the ones on disk stay the ones
        this journal reports; a call with the values already on disk writes nothing.
        """
        if "term" in self._meta and (self._meta["term"], self._meta.get("voted_for")) == \
                (term, votedForNodeId):
            return
        before = dict(self._meta)
        self._meta["term"] = term
        self._meta["voted_for"] = votedForNodeId
        try:
            self._write_meta()
        except DiskError:
            for key in ("term", "voted_for"):
                if key in before:
                    self._meta[key] = before[key]
                else:
                    self._meta.pop(key, None)
            raise

    def getCurrentTerm(self) -> int:
        return self._meta.get("term", 0)

    def getVotedForNodeId(self) -> Optional[str]:
        return self._meta.get("voted_for")

    def onOneSecondTimer(self) -> None:
        if self._meta_dirty:
            try:
                self._write_meta()
            except DiskError:
                pass  # the commit index is only a hint: kept dirty, written once there is room

    # ------------------------------------------------------ store hooks ----

    def align_to_snapshot(self, prev_entry: Entry, last_entry: Entry) -> None:
        """Drops entries older than a snapshot whose compaction did not finish.

        pysyncobj writes the snapshot first and trims the journal on a later
        tick.  After a crash in between, the journal still starts before the
        snapshot; pysyncobj would then discard the whole journal, entries
        newer than the snapshot included.  Trimming it here to start at the
        snapshot's two entries makes pysyncobj keep the rest.
        """
        want = (bytes(prev_entry[0]), prev_entry[1], prev_entry[2])
        for pos, entry in enumerate(self._entries[:-1]):
            if entry[1] == want[1]:
                nxt = self._entries[pos + 1]
                if entry == want and nxt[1] == last_entry[1] and nxt[2] == last_entry[2]:
                    self.deleteEntriesTo(pos)
                return


def _parse(data: bytes) -> tuple[list, list, int]:
    """Entries, their record offsets, and where the intact records end (magic checked by the caller)."""
    entries: list[Entry] = []
    offsets: list[int] = []
    end = len(_MAGIC)
    while end + _RECORD.size <= len(data):
        length, crc, idx, term = _RECORD.unpack_from(data, end)
        body_end = end + _RECORD.size + length
        if body_end > len(data):
            break
        command = data[end + _RECORD.size : body_end]
        if zlib.crc32(command, zlib.crc32(struct.pack("<QQ", idx, term))) != crc:
            break
        entries.append((command, idx, term))
        offsets.append(end)
        end = body_end
    return entries, offsets, end


def _check_magic(path: str, data: bytes) -> None:
    """CorruptJournal unless `data` starts with the magic or is a (torn) prefix of it."""
    if data[: len(_MAGIC)] != _MAGIC[: len(data)]:
        raise CorruptJournal(f"{path} is not a Shoal raft journal (byte offset 0: it does not "
                             "start with the journal's header)", path, 0)


def _check_torn(path: str, data: bytes, end: int, entries: list) -> None:
    """Raises CorruptJournal unless the bytes from `end` on are a torn last record.

    Each record is written by one write() and synced before the next one, so
    a crash can only leave the last record incomplete.  A damaged record
    with an intact record after it is damage to acknowledged entries.
    """
    last_idx, last_term = (entries[-1][1], entries[-1][2]) if entries else (0, 0)
    found = _intact_record_after(data, end, last_idx, last_term)
    if found is None:
        return
    offset, idx = found
    if end + _RECORD.size <= len(data):
        length = _RECORD.unpack_from(data, end)[0]
        why = ("fails its checksum" if end + _RECORD.size + length <= len(data)
               else f"claims {length} bytes, more than the file holds")
    else:
        why = "is cut short"
    raise CorruptJournal(
        f"the raft journal {path} is corrupt at byte offset {end}: the record there (after raft "
        f"index {last_idx}) {why}, yet an intact record (raft index {idx}) follows at byte offset "
        f"{offset}, so acknowledged entries were damaged. The node does not start on it: restore "
        "its data directory from a backup, or remove this manager from the cluster and join it "
        "again with an empty data directory", path, end)


def _intact_record_after(data: bytes, start: int, last_idx: int,
                         last_term: int) -> Optional[tuple[int, int]]:
    """(offset, raft index) of the first intact record after byte `start` that could
    follow raft index `last_idx`, None if there is none."""
    if not data[start:].strip(b"\0"):
        return None  # a zero-filled tail: space the file system allocated, never written
    limit = len(data) - _RECORD.size
    for pos in range(start + 1, limit + 1):
        length, crc, idx, term = _RECORD.unpack_from(data, pos)
        if idx <= last_idx or term < last_term:
            continue
        body_end = pos + _RECORD.size + length
        if body_end > len(data):
            continue
        body = data[pos + _RECORD.size: body_end]
        if zlib.crc32(body, zlib.crc32(struct.pack("<QQ", idx, term))) == crc:
            return pos, idx
    return None


class AppendFailed(DiskError):
    """An entry could not be appended; `command` is the entry (its proposer is told)."""

    def __init__(self, message: str, path: str, errno: int, command: bytes) -> None:
        super().__init__(message, path, errno)
        self.command = command


def disk_error(exc: OSError, path: str, action: str, command: Optional[bytes] = None) -> DiskError:
    """A DiskError saying which write failed and why: a full disk is named as such
    (an AppendFailed when `command`, the entry being appended, is given)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = os.path.dirname(os.path.abspath(path))
        cause = (f"no space left on the file system holding {where}; free space there "
                 "(nothing of this write was recorded)")
    else:
        cause = f"{exc.strerror or exc} (nothing of this write was recorded)"
    message = f"cannot {action} {path}: {cause}"
    if command is not None:
        return AppendFailed(message, path, exc.errno or 0, command)
    return DiskError(message, path, exc.errno or 0)


def read_entries(path: str) -> list:
    """The intact entries of a journal file, read without changing it (offline use).

    A missing or empty file holds no entries; a torn last record is left out,
    as `DiskJournal` would cut it off on open; damage before the end raises
    CorruptJournal, as `DiskJournal` would refuse to open it.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    if not data:
        return []
    _check_magic(path, data)
    entries, _, end = _parse(data)
    if end != len(data):
        _check_torn(path, data, end, entries)
    return entries


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks = []
    pos = 0
    while pos < size:
        chunk = os.pread(fd, size - pos, pos)
        if not chunk:
            break
        chunks.append(chunk)
        pos += len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
