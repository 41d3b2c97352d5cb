"""Watch streams: store events delivered to an asyncio loop.

The store calls its subscribers on the raft thread.  A `WatchStream`
subscribes one such callback that hands each batch over to its loop with
`call_soon_threadsafe`, so consumers iterate with `async for` and never block
the raft thread.  A stream is created together with a `StoreView` (`view`)
taken atomically with the subscription: the stream holds exactly the
transactions after `view.version`, with no gap and no overlap.
"""
from __future__ import annotations

import asyncio
from typing import Callable, Optional

from raft.view import StoreView

_CLOSED = object()


class WatchStream:
    """Async iterator of event batches (`list[watch_pb2.WatchEvent]`, one per transaction)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        subscribe_with_view: Callable[[Callable[[list, int], None]], tuple[StoreView, Callable[[], None]]],
    ) -> None:
        self._loop = loop
        self._queue: asyncio.Queue = asyncio.Queue()
        self._closed = False
        self.view: StoreView
        self._unsubscribe: Optional[Callable[[], None]] = None
        self.view, self._unsubscribe = subscribe_with_view(self._deliver)

    def replay(self, batches: list) -> None:
        """Puts batches ahead of every live one (call it on the loop, right after
        creating the stream, before the loop runs anything else)."""
        for batch in batches:
            self._queue.put_nowait(batch)

    def pending(self) -> int:
        """Batches queued and not yet read (right after `replay`: the replayed ones)."""
        return self._queue.qsize()

    def _deliver(self, events: list, version: int) -> None:
        """Raft thread: queue a batch for the loop."""
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, events)
        except RuntimeError:  # the loop is closed: nobody will read this stream
            self._stop_subscription()

    def _stop_subscription(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    def close(self) -> None:
        """Ends the stream; a pending or later `__anext__` raises StopAsyncIteration."""
        if self._closed:
            return
        self._closed = True
        self._stop_subscription()
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, _CLOSED)
        except RuntimeError:
            pass

    def __aiter__(self) -> "WatchStream":
        return self

    async def __anext__(self) -> list:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _CLOSED:
            raise StopAsyncIteration
        return item

    async def __aenter__(self) -> "WatchStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
