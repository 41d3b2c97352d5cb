"""The bounded history of applied transactions that watches replay from.

Every manager applies the same raft log in the same order, so the store
version of a transaction is the same on every manager, and so is its commit
time (`WatchEvent.committed_at`: the proposer's clock, carried inside the
transaction). `EventHistory` keeps the watch events of the last transactions
this replica applied, bounded by a number of events, so that a watcher can
pick up where it left off on any manager (`after(version)`, e.g. `swarm
events` after a leader change) or ask for what happened since a time
(`since(seconds)`, `swarm events --since`).

What is not kept is never made up: a replica that installed a raft snapshot
(a restart, or a follower that fell behind) cannot replay the transactions
the snapshot folded in; `after` raises `HistoryGone` for those rather than
replay with a gap. The store (raft/store.py) feeds it under its lock.

`max_events=0` turns the history off (a measurement switch, lab/bench/store.py
--watch-history off): nothing is recorded, and a watcher asking to resume from
before the newest applied transaction gets HistoryGone, as after a gap.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Optional

from proto import watch_pb2
from raft.errors import HistoryGone

DEFAULT_MAX_EVENTS = 4096  # watch events kept per manager (2-4 MB for typical task updates)


@dataclass(frozen=True)
class Committed:
    """The watch events of one applied transaction, kept serialised (a parsed event with
    its objects before and after costs several times the bytes in memory)."""

    version: int
    committed_at: float    # unix seconds (the transaction's proposed_at)
    blobs: tuple[bytes, ...]

    def events(self) -> list:
        """The transaction's watch_pb2.WatchEvents (fresh copies)."""
        return [watch_pb2.WatchEvent.FromString(blob) for blob in self.blobs]


class EventHistory:
    """The last applied transactions of one replica, oldest first, at most `max_events`
    events (0: none, the history is off).

    `floor` is the newest version whose successors can all be replayed: a
    watcher that has seen every change up to `floor` (or later) can resume
    here without a gap. Not thread-safe: the store calls it under its lock.
    """

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS, floor: int = 0) -> None:
        if max_events < 0:
            raise ValueError("an event history keeps 0 (off) or more events")
        self.max_events = max_events
        self.floor = floor
        self._entries: deque[Committed] = deque()
        self._events = 0

    def __len__(self) -> int:
        return len(self._entries)

    def encode(self, events: list) -> tuple[bytes, ...]:
        """The events as `record` keeps them (nothing when the history is off); the
        store encodes them before it takes its lock."""
        if self.max_events == 0:
            return ()
        return tuple(ev.SerializeToString() for ev in events)

    def record(self, version: int, events: list, committed_at: Optional[float] = None,
               blobs: Optional[tuple[bytes, ...]] = None) -> None:
        """Keeps one applied transaction's events (the oldest ones go past the bound);
        `blobs`: the same events already `encode`d."""
        if not events:
            return
        if self.max_events == 0:   # off: every transaction is a gap
            self.floor = version
            return
        if committed_at is None:
            first = events[0]
            committed_at = first.committed_at.seconds + first.committed_at.nanos / 1e9
        if blobs is None:
            blobs = self.encode(events)
        self._entries.append(Committed(version, committed_at, blobs))
        self._events += len(events)
        while self._events > self.max_events and len(self._entries) > 1:
            dropped = self._entries.popleft()
            self._events -= len(dropped.blobs)
            self.floor = dropped.version

    def reset(self, version: int) -> None:
        """The state was replaced by a snapshot at `version`: nothing before it can be replayed."""
        self._entries.clear()
        self._events = 0
        self.floor = version

    def after(self, version: int) -> list[Committed]:
        """Every kept transaction after `version`, oldest first.

        Raises HistoryGone when some transaction after `version` is no longer
        (or was never) kept here."""
        if version < self.floor and self.max_events == 0:
            raise HistoryGone(
                f"changes after store version {version} cannot be replayed: this manager "
                f"keeps no watch history (it is at version {self.floor})")
        if version < self.floor:
            raise HistoryGone(
                f"changes after store version {version} are no longer kept on this manager "
                f"(it can replay from version {self.floor} on)")
        return [c for c in self._entries if c.version > version]

    def since(self, seconds: float) -> list[Committed]:
        """Every kept transaction committed at or after `seconds` (unix time), oldest first."""
        return [c for c in self._entries if c.committed_at >= seconds]
