"""The store as the rest of Shoal sees it: one typed protocol, no pysyncobj.

Everything outside `raft/` that reads or changes cluster state (the manager's
servers and loops, the node daemon) depends on `ObjectStore`, never on the
concrete `raft.store.Store` nor on pysyncobj. Reads are local and consistent
with this replica's last applied transaction; a write is one transaction of
store actions that returns once committed and applied here; watches deliver
every applied transaction in order; membership calls change the raft voter
set. The concrete implementation is `raft.store.Store`; only the composition
root that builds it (the node daemon) calls its lifecycle methods (`start`,
`wait_ready`, `close`). mypy checks that `Store` implements this protocol
(the assignment at the end of raft/store.py) and tests/test_store_api.py
checks it at run time.

Objects come back as `google.protobuf.message.Message`: the stored kinds are
the messages of `proto.model.KINDS` (`proto.model.StoredObject`). They are
shared with the store and with every snapshot: never mutate one; copy it,
change the copy and commit `raft.actions.update(copy)`.

Errors (raft/errors.py): `Conflict` (the transaction was refused as a whole),
`Unavailable` (no leader or quorum, timeout, store closed; the message says
when the outcome is unknown), `StoreError` (everything else).
"""
from __future__ import annotations

import asyncio
import builtins
from typing import Callable, Optional, Protocol, Sequence

from google.protobuf.message import Message

from proto import store_pb2
from raft.view import StoreView
from raft.watch import WatchStream

# callback(events, version): the watch_pb2.WatchEvents of one applied transaction
Subscriber = Callable[[list, int], None]
# callback(is_leader, leader_raft_addr)
LeaderCallback = Callable[[bool, Optional[str]], None]


class ObjectStore(Protocol):
    """The replicated object store's interface (implemented by raft.store.Store)."""

    # ------------------------------------------------------------ reads ----

    @property
    def version(self) -> int:
        """Number of transactions applied on this replica (objects' `meta.version` counts these)."""
        ...

    def get(self, kind: str, obj_id: str) -> Optional[Message]:
        """The object of `kind` ("node", "service", ...) with this ID, or None.

        Raises ValueError for an unknown kind."""
        ...

    def list(self, kind: str) -> list:
        """Every object of `kind`, in no particular order."""
        ...

    def by_name(self, kind: str, name: str) -> Optional[Message]:
        """The object of `kind` with this name (hostname for nodes), or None."""
        ...

    def tasks_of(self, node_id: str = "", service_id: str = "") -> builtins.list:
        """The tasks assigned to `node_id` and/or of `service_id` (every one given must
        match; give at least one), in no particular order: an index lookup, no scan."""
        ...

    def snapshot(self) -> StoreView:
        """A consistent, immutable view of every table at one version."""
        ...

    # ----------------------------------------------------------- writes ----

    def commit(self, actions: Sequence[store_pb2.StoreAction], timeout: float = 5.0) -> int:
        """Commits one transaction (all actions or none); returns the new version.

        Blocks until the entry is committed and applied on this replica, so
        the caller reads its own write. Build actions with raft/actions.py.
        Never call it on the raft thread (in a subscriber or leader callback).
        """
        ...

    async def acommit(self, actions: Sequence[store_pb2.StoreAction], timeout: float = 5.0) -> int:
        """`commit` for asyncio callers (the event loop is never blocked)."""
        ...

    # ---------------------------------------------------------- watches ----

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Calls `callback(events, version)` for every applied transaction; returns unsubscribe.

        The callback runs on the raft thread under the store lock: keep it
        short and hand work off."""
        ...

    def subscribe_with_view(self, callback: Subscriber) -> tuple[StoreView, Callable[[], None]]:
        """`subscribe`, plus a view taken atomically with it: events start right after the view."""
        ...

    def watch_async(self, loop: Optional[asyncio.AbstractEventLoop] = None, *,
                    after_version: Optional[int] = None,
                    since: Optional[float] = None) -> WatchStream:
        """An async iterator of event batches on `loop` (default: the running loop);
        its `.view` is the state the live batches start from.

        Replay first (raft/history.py: each manager keeps its last applied
        transactions): `after_version` replays every transaction after that
        version, raising HistoryGone when some are no longer kept here;
        `since` (unix seconds) replays the kept ones committed at or after it."""
        ...

    # ------------------------------------------------------- leadership ----

    def is_leader(self) -> bool:
        """True once this replica leads and has applied every committed entry
        (only then may leader-only components act on the store)."""
        ...

    def leader(self) -> Optional[str]:
        """Raft address ("ip:port") of the current leader, if one is known."""
        ...

    def on_leader_change(self, callback: LeaderCallback) -> None:
        """Calls `callback(is_leader, leader_addr)` on the raft thread at every change."""
        ...

    # ------------------------------------------------------- membership ----

    def members(self) -> builtins.list[str]:
        """Raft addresses of every voting member, this replica included (sorted)."""
        ...

    def add_member(self, raft_addr: str, timeout: float = 10.0) -> None:
        """Adds a manager's raft endpoint to the voters (one change at a time).

        Raises StoreError when raft refuses the change (another is in
        progress, or the address is already a member)."""
        ...

    def remove_member(self, raft_addr: str, timeout: float = 10.0) -> None:
        """Removes a manager's raft endpoint from the voters (never the leader itself)."""
        ...

    def reachable_members(self) -> set[str]:
        """Raft endpoints this replica is connected to right now, itself included."""
        ...

    def status(self) -> dict:
        """Raft bookkeeping for diagnostics (term, commit index, journal size, members)."""
        ...
