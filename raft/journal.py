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
- on open, stops at the first torn or corrupt record and cuts it off.

It implements the interface pysyncobj expects from `createJournal()`:
entries are `(command: bytes, index: int, term: int)` tuples, addressed by
position (not by raft index) with `[]`, slices and `len()`.
"""
from __future__ import annotations

import json
import os
import struct
import time
import zlib
from typing import Callable, Optional, Union

_MAGIC = b"SHOALJ01"
_RECORD = struct.Struct("<IIQQ")  # command length, crc32, raft index, raft term

Entry = tuple  # (command: bytes, index: int, term: int)


class DiskJournal:
    """pysyncobj journal kept in `path` (entries) and `path + ".meta"` (term, vote)."""

    def __init__(self, path: str, fsync: bool = True) -> None:
        self._path = path
        self._meta_path = path + ".meta"
        self._fsync = fsync
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
        if len(data) < len(_MAGIC) or data[: len(_MAGIC)] != _MAGIC:
            if data and data[: len(_MAGIC)] != _MAGIC[: len(data)]:
                os.close(fd)
                raise ValueError(f"{self._path} is not a Shoal raft journal")
            os.ftruncate(fd, 0)
            os.pwrite(fd, _MAGIC, 0)
            self._sync(fd)
        else:
            self._entries, self._offsets, end = _parse(data)
            if end != len(data):  # torn or corrupt tail: never acknowledged
                os.ftruncate(fd, end)
                self._sync(fd)
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
        tmp = self._meta_path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(json.dumps(self._meta).encode())
            f.flush()
            if self._fsync:
                os.fsync(f.fileno())
        os.replace(tmp, self._meta_path)
        self._sync_dir()
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
        started = time.perf_counter()
        _write_all(self._fd, record)
        self._sync(self._fd)
        if self.append_observer is not None:
            self.append_observer(time.perf_counter() - started)
        self._entries.append((command, idx, term))
        self._offsets.append(self._end)
        self._end += len(record)

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
        except BaseException:
            os.close(fd)
            raise
        os.replace(tmp, self._path)
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
        self._sync(self._fd)

    def __getitem__(self, item):
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    def _destroy(self) -> None:
        if self._fd >= 0:
            if self._meta_dirty:
                self._write_meta()
            os.close(self._fd)
            self._fd = -1

    def flush(self) -> None:
        os.fdatasync(self._fd)

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:
        if self._meta.get("commit_index") != raftCommitIndex:
            self._meta["commit_index"] = raftCommitIndex
            self._meta_dirty = True

    def getRaftCommitIndex(self) -> int:
        return self._meta.get("commit_index", 1)

    def setCurrentTerm(self, term: int, votedForNodeId: Optional[str]) -> None:
        # Raft: term and vote must be durable before any message reflects them.
        self._meta["term"] = term
        self._meta["voted_for"] = votedForNodeId
        self._write_meta()

    def getCurrentTerm(self) -> int:
        return self._meta.get("term", 0)

    def getVotedForNodeId(self) -> Optional[str]:
        return self._meta.get("voted_for")

    def onOneSecondTimer(self) -> None:
        if self._meta_dirty:
            self._write_meta()

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


def read_entries(path: str) -> list:
    """The intact entries of a journal file, read without changing it (offline use).

    A missing or empty file holds no entries; a torn or corrupt tail is left
    out, as `DiskJournal` would cut it off on open.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    if not data:
        return []
    if data[: len(_MAGIC)] != _MAGIC[: len(data)]:
        raise ValueError(f"{path} is not a Shoal raft journal")
    return _parse(data)[0]


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
