"""Time as the worker's loops see it: the current time, sleeping, and waiting for
an event with a timeout.

`LoopClock` is the real clock (the event loop's monotonic time).  The agent and
the status reporter take a `Clock` so that tests can move time by hand and check
back-off, heartbeat and batching delays without sleeping.
"""
from __future__ import annotations

import asyncio
from typing import Protocol


class Clock(Protocol):
    """What the worker needs of time."""

    def now(self) -> float:
        """Monotonic seconds (only differences mean anything)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Returns after `seconds`."""
        ...

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        """Waits until `event` is set (True) or `timeout` seconds have passed (False)."""
        ...


class LoopClock:
    """The real clock: the running event loop's time."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        return await wait_event(event, timeout)


REAL_CLOCK = LoopClock()


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Waits until `event` is set (True) or `timeout` seconds have passed (False).

    Use it instead of `asyncio.wait_for(event.wait(), timeout)` in loops that must
    stop when cancelled: in Python 3.11, wait_for returns normally when the event is
    set just as the cancellation arrives, and the cancellation is lost.
    """
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
