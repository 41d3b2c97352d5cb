"""The store as the rest of Shoal sees it: one typed protocol, no pysyncobj.

Everything outside `raft/` that reads or changes cluster state (the manager's
servers and loops, the node daemon) depends on `ObjectStore`, never on the
concrete `raft.store.Store` nor on pysyncobj. Reads are local and consistent
with this replica's last applied transaction; a write is one transaction of
store actions that returns once committed and applied here; watches deliver
every applied transaction in order; membership calls change the raft voter
set. The concrete implementation is `raft.store.Store`.
"""
from __future__ import annotations

import asyncio
import builtins
from typing import Callable, Optional, Protocol, Sequence

from google.protobuf.message import Message

from proto import store_pb2
from raft.view import StoreView
from raft.watch import WatchStream

Subscriber = Callable[[list, int], None]
LeaderCallback = Callable[[bool, Optional[str]], None]


class ObjectStore(Protocol):
    """The replicated object store's interface (implemented by raft.store.Store)."""

    @property
    def version(self) -> int:
        """Number of transactions applied on this replica."""
        ...

    def get(self, kind: str, obj_id: str) -> Optional[Message]: ...

    def list(self, kind: str) -> list: ...

    def by_name(self, kind: str, name: str) -> Optional[Message]: ...

    def snapshot(self) -> StoreView:
        """A consistent, immutable view of every table at one version."""
        ...

    def commit(self, actions: Sequence[store_pb2.StoreAction], timeout: float = 5.0) -> int:
        """Commits one transaction (all actions or none); returns the new version."""
        ...

    async def acommit(self, actions: Sequence[store_pb2.StoreAction], timeout: float = 5.0) -> int:
        """`commit` for asyncio callers (the event loop is never blocked)."""
        ...

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Calls `callback(events, version)` for every applied transaction; returns unsubscribe."""
        ...

    def subscribe_with_view(self, callback: Subscriber) -> tuple[StoreView, Callable[[], None]]: ...

    def watch_async(self, loop: Optional[asyncio.AbstractEventLoop] = None) -> WatchStream: ...

    def is_leader(self) -> bool: ...

    def leader(self) -> Optional[str]: ...

    def on_leader_change(self, callback: LeaderCallback) -> None: ...

    def members(self) -> builtins.list[str]: ...

    def add_member(self, raft_addr: str, timeout: float = 10.0) -> None: ...

    def remove_member(self, raft_addr: str, timeout: float = 10.0) -> None: ...

    def reachable_members(self) -> set[str]: ...

    def status(self) -> dict: ...
