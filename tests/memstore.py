"""An in-memory `raft.api.ObjectStore` over the real state machine, for in-process tests.

`MemoryStore` applies each transaction to a `raft.state.StoreState` at once
(no raft, no threads, no I/O), as one replica that is always the leader: the
same checks, versions, name uniqueness and watch events as `raft.store.Store`,
and the same copy semantics (a committed transaction is serialised first, so
the caller's objects are never the stored ones). `dump()` is the state's
byte-exact dump, to compare a store before and after a call.
"""
from __future__ import annotations

import asyncio
import builtins
import time
from typing import Callable, Optional, Sequence

from google.protobuf.message import Message

from proto import store_pb2
from raft.api import LeaderCallback, Subscriber
from raft.errors import StoreError
from raft.state import StoreState
from raft.view import StoreView
from raft.watch import WatchStream

ADDR = "127.0.0.1:1"  # the raft address this one-member store claims


class MemoryStore:
    """One always-leading replica of the object store, kept in memory."""

    def __init__(self, state: Optional[StoreState] = None) -> None:
        self.state = state if state is not None else StoreState()
        self._subscribers: tuple[Subscriber, ...] = ()

    @classmethod
    def loaded(cls, dump: bytes) -> "MemoryStore":
        """A store holding what `dump()` of another one returned."""
        return cls(StoreState.load(dump))

    def dump(self) -> bytes:
        return self.state.dump()

    # ------------------------------------------------------------ reads ----

    @property
    def version(self) -> int:
        return self.state.version

    def get(self, kind: str, obj_id: str) -> Optional[Message]:
        return self.state.get(kind, obj_id)

    def list(self, kind: str) -> builtins.list:
        return self.state.list(kind)

    def by_name(self, kind: str, name: str) -> Optional[Message]:
        return self.state.by_name(kind, name)

    def tasks_of(self, node_id: str = "", service_id: str = "") -> builtins.list:
        return self.state.tasks_of(node_id, service_id)

    def snapshot(self) -> StoreView:
        return self.state.snapshot()

    # ----------------------------------------------------------- writes ----

    def commit(self, actions: Sequence[store_pb2.StoreAction], timeout: float = 5.0) -> int:
        """Applies the transaction (raft.errors.Conflict when a check fails)."""
        if not actions:
            return self.version
        txn = store_pb2.StoreTransaction(proposer="memory", proposed_at=time.time())
        txn.actions.extend(actions)
        applied = self.state.apply(store_pb2.StoreTransaction.FromString(txn.SerializeToString()))
        for subscriber in self._subscribers:
            subscriber(applied.events, applied.version)
        return applied.version

    async def acommit(self, actions: Sequence[store_pb2.StoreAction],
                      timeout: float = 5.0) -> int:
        return self.commit(actions, timeout)

    # ---------------------------------------------------------- watches ----

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        return self.subscribe_with_view(callback)[1]

    def subscribe_with_view(self, callback: Subscriber) -> tuple[StoreView, Callable[[], None]]:
        self._subscribers = self._subscribers + (callback,)

        def unsubscribe() -> None:
            self._subscribers = tuple(s for s in self._subscribers if s is not callback)
        return self.state.snapshot(), unsubscribe

    def watch_async(self, loop: Optional[asyncio.AbstractEventLoop] = None, *,
                    after_version: Optional[int] = None,
                    since: Optional[float] = None) -> WatchStream:
        if after_version is not None or since is not None:
            raise StoreError("the in-memory store keeps no history to replay")
        return WatchStream(loop or asyncio.get_running_loop(), self.subscribe_with_view)

    # ------------------------------------------------------- leadership ----

    def is_leader(self) -> bool:
        return True

    def leader(self) -> Optional[str]:
        return ADDR

    def on_leader_change(self, callback: LeaderCallback) -> None:
        callback(True, ADDR)

    # ------------------------------------------------------- membership ----

    def members(self) -> builtins.list[str]:
        return [ADDR]

    def add_member(self, raft_addr: str, timeout: float = 10.0) -> None:
        raise StoreError("the in-memory store has one member only")

    def remove_member(self, raft_addr: str, timeout: float = 10.0) -> None:
        raise StoreError("the in-memory store has one member only")

    def reachable_members(self) -> set[str]:
        return {ADDR}

    def status(self) -> dict:
        return {"members": [ADDR], "version": self.version}
