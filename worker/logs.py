"""Log subscriptions: streaming task output to the managers.

The dispatcher lists the current log subscriptions in every SessionMessage.
`LogPublisher` starts one asyncio task per new subscription, reads the lines of
the subscribed tasks that have a container on this node and sends them through
a `PublishLogs` client stream. Without follow it ends with a `close=True`
request; a subscription marked `close` or no longer listed cancels its stream.
A subscription's `since`/`until` bounds (unix seconds) are applied here, to the
lines `tail` selected (as Docker applies them); a followed stream with `until`
ends once that time has passed.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable

from proto import control_pb2 as cpb
from proto import dispatcher_pb2 as dpb
from proto import objects_pb2 as pb
from worker.runtime import Runtime

BATCH_LINES = 100  # log lines per PublishLogsRequest at most


@dataclass
class LocalTask:
    """A task of this node that has a container, as the log code needs it."""
    task: pb.Task
    container_id: str


# Finds the local container of a task, None when the task does not run here.
LookupFn = Callable[[str], "LocalTask | None"]
# Sends a stream of requests as one PublishLogs call.
PublishFn = Callable[[AsyncIterator[dpb.PublishLogsRequest]], Awaitable[object]]

_STREAMS = {"stdout": cpb.LogMessage.STDOUT, "stderr": cpb.LogMessage.STDERR}
_DONE = object()
UNTIL_GRACE = 1.0  # seconds a followed stream waits past `until` for lines written before it


def in_window(timestamp: float, since: float, until: float) -> bool:
    """Whether a line written at `timestamp` is within the bounds (0: no bound)."""
    return (not since or timestamp >= since) and (not until or timestamp <= until)


class LogPublisher:
    """Keeps one streaming job per active log subscription."""

    def __init__(self, runtime: Runtime, node_id: str, lookup: LookupFn,
                 log: logging.LoggerAdapter | None = None) -> None:
        self.runtime = runtime
        self.node_id = node_id
        self.lookup = lookup
        self.log = log or logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._finished: set[str] = set()  # subscriptions fully sent (no follow)

    @property
    def active(self) -> set[str]:
        return {sid for sid, job in self._jobs.items() if not job.done()}

    def update(self, subscriptions: list[dpb.LogSubscription], session_id: str,
               publish: PublishFn) -> None:
        """Applies the current subscription list of a SessionMessage."""
        listed = {sub.id for sub in subscriptions if not sub.close}
        for sid in list(self._jobs):
            if sid not in listed:
                self._jobs.pop(sid).cancel()
        self._finished &= listed
        for sub in subscriptions:
            if sub.close or sub.id in self._jobs or sub.id in self._finished:
                continue
            job = asyncio.create_task(self._serve(sub, session_id, publish), name=f"logs-{sub.id}")
            self._jobs[sub.id] = job
            job.add_done_callback(functools.partial(self._job_done, sub.id))

    def _job_done(self, sid: str, job: asyncio.Task[None]) -> None:
        if self._jobs.get(sid) is job:
            del self._jobs[sid]
            if not job.cancelled() and job.exception() is None:
                self._finished.add(sid)

    async def reset(self) -> None:
        """Cancels every stream (the session ended); finished subscriptions stay finished."""
        jobs = list(self._jobs.values())
        self._jobs.clear()
        for job in jobs:
            job.cancel()
        for job in jobs:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job

    async def _serve(self, sub: dpb.LogSubscription, session_id: str, publish: PublishFn) -> None:
        local = [found for tid in sub.task_ids if (found := self.lookup(tid)) is not None]
        self.log.debug("log subscription %s: %d of %d tasks here", sub.id, len(local), len(sub.task_ids))
        try:
            await publish(self._requests(sub, session_id, local))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.warning("log subscription %s: publishing failed: %s", sub.id, exc)
            raise

    async def _requests(self, sub: dpb.LogSubscription, session_id: str,
                        local: list[LocalTask]) -> AsyncIterator[dpb.PublishLogsRequest]:
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=4 * BATCH_LINES)
        readers = [asyncio.create_task(self._read(sub, item, queue)) for item in local]
        remaining = len(readers)
        try:
            while remaining:
                batch: list[cpb.LogMessage] = []
                item = await queue.get()
                while True:
                    if item is _DONE:
                        remaining -= 1
                    else:
                        batch.append(item)  # type: ignore[arg-type]
                    if len(batch) >= BATCH_LINES or queue.empty():
                        break
                    item = queue.get_nowait()
                if batch:
                    yield dpb.PublishLogsRequest(session_id=session_id, subscription_id=sub.id,
                                                 messages=batch)
            yield dpb.PublishLogsRequest(session_id=session_id, subscription_id=sub.id, close=True)
        finally:
            for reader in readers:
                reader.cancel()

    async def _read(self, sub: dpb.LogSubscription, item: LocalTask,
                    queue: asyncio.Queue[object]) -> None:
        remaining = sub.until - time.time() if sub.until else None
        follow = sub.follow and (remaining is None or remaining > 0)
        try:
            if follow and remaining is not None:
                await asyncio.wait_for(self._pump(sub, item, queue, follow),
                                       remaining + UNTIL_GRACE)
            else:
                await self._pump(sub, item, queue, follow)
        except TimeoutError:
            pass  # `until` has passed: the followed stream is complete
        except Exception as exc:  # a broken stream ends this task's lines, not the others'
            self.log.warning("logs of task %s: %s", item.task.id, exc)
        await queue.put(_DONE)

    async def _pump(self, sub: dpb.LogSubscription, item: LocalTask,
                    queue: asyncio.Queue[object], follow: bool) -> None:
        task = item.task
        tail = sub.tail if sub.tail >= 0 else -1
        async for line in self.runtime.logs(item.container_id, tail=tail, follow=follow):
            if sub.until and line.timestamp > sub.until:
                break   # lines come in order: nothing after this one is wanted
            if not in_window(line.timestamp, sub.since, sub.until):
                continue
            await queue.put(cpb.LogMessage(
                task_id=task.id, task_name=task.annotations.name, node_id=self.node_id,
                service_id=task.service_id, stream=_STREAMS.get(line.stream, cpb.LogMessage.STDOUT),
                data=line.data, timestamp=line.timestamp))
