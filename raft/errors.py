"""Errors the store raises to its callers.

Every error is a `StoreError`; callers that only care whether a write went
through catch that.  The subclasses say what to do next:

- `Conflict`: the transaction was rejected as a whole (a stale version, a
  duplicate ID or name, a missing object).  Nothing was applied; re-read and
  retry.
- `NotLeader`: the operation needs the raft leader and this node is not it.
- `Unavailable`: no quorum, no leader, or the deadline passed.  The write may
  or may not have been applied when the message says its outcome is unknown.
- `HistoryGone`: a watch asked to replay changes older than this replica's
  event history keeps (raft/history.py); nothing was subscribed.
- `DiskError` (an `Unavailable`): this manager could not write its raft
  data (the file system is full, or an I/O error); the message names the
  file and the cause.  Nothing of the write was recorded; retry once there
  is room.
- `CorruptJournal`: the raft journal is damaged before its end (not a torn
  last record, which is cut off on open); the store refuses to start.
"""
from __future__ import annotations


class StoreError(Exception):
    """Base class of every store error."""


class Conflict(StoreError):
    """A transaction failed its checks; nothing of it was applied."""


class NameConflict(Conflict):
    """A transaction would give an object a name another object of its kind holds
    (two requests for one name raced; the first one committed)."""


class NotLeader(StoreError):
    """The operation must run on the raft leader."""

    def __init__(self, message: str, leader: str | None = None) -> None:
        super().__init__(message)
        self.leader = leader


class Unavailable(StoreError):
    """The store could not complete the operation (no quorum, timeout, stopped)."""


class HistoryGone(StoreError):
    """A watch asked to replay changes this replica no longer keeps (or never had)."""


class DiskError(Unavailable):
    """Raft data could not be written (disk full, I/O error); nothing of the write was kept."""

    def __init__(self, message: str, path: str = "", errno: int = 0) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno


class CorruptJournal(StoreError):
    """The raft journal holds a damaged record with intact ones after it.

    A torn last record is what a crash leaves of a write that was never
    acknowledged, and it is cut off; a damaged record followed by intact ones
    means acknowledged entries were lost or altered, so the store does not
    start (`path`, `offset`: the file and the damaged record's byte offset).
    """

    def __init__(self, message: str, path: str, offset: int) -> None:
        super().__init__(message)
        self.path = path
        self.offset = offset
