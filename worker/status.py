"""Task status reporting: the forward-only rule and the batching queue.

Controllers hand every observed state to a `StatusReporter`; the agent drains
it into `UpdateTaskStatus` calls. The reporter keeps only each task's newest
status, sends at most `max_batch` updates per call after collecting for at most
`max_delay` seconds, and puts back whatever a failed call did not deliver so the
next session resends it.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from proto import dispatcher_pb2 as dpb
from proto import model
from proto import objects_pb2 as pb
from worker.clock import REAL_CLOCK, Clock

SendFn = Callable[[list[dpb.TaskStatusUpdate]], Awaitable[None]]


def moves_forward(last: int, new: int, *, allow_same: bool = False) -> bool:
    """True when reporting `new` after `last` respects the forward-only order."""
    return new > last or (allow_same and new == last)


def make_status(
    state: pb.TaskState,
    message: str,
    *,
    err: str = "",
    container_id: str = "",
    pid: int = 0,
    exit_code: int = 0,
    at: float | None = None,
    health: pb.TaskHealth | None = None,
) -> pb.TaskStatus:
    """A TaskStatus stamped with the current time (or `at`), with the container's
    health when it has a healthcheck."""
    status = pb.TaskStatus(
        timestamp=model.timestamp(at), state=state, message=message, err=err
    )
    if health is not None:
        status.health.CopyFrom(health)
    if container_id:
        status.container_status.CopyFrom(
            pb.ContainerStatus(container_id=container_id, pid=pid, exit_code=exit_code)
        )
    return status


class StatusReporter:
    """Queue of not-yet-acknowledged task statuses, newest per task."""

    def __init__(self, *, max_delay: float = 0.01, max_batch: int = 100,
                 clock: Clock = REAL_CLOCK) -> None:
        self.max_delay = max_delay
        self.max_batch = max_batch
        self.clock = clock
        self._pending: dict[str, pb.TaskStatus] = {}
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._pending)

    def pending(self) -> dict[str, pb.TaskStatus]:
        """A copy of what waits to be sent (for tests and diagnostics)."""
        return dict(self._pending)

    def report(self, task_id: str, status: pb.TaskStatus) -> None:
        """Queues `status`; an older state than the one already queued is dropped."""
        queued = self._pending.get(task_id)
        if queued is not None and status.state < queued.state:
            return
        self._pending[task_id] = status
        self._changed.set()

    def take(self, limit: int | None = None) -> list[dpb.TaskStatusUpdate]:
        """Removes and returns up to `limit` queued updates, oldest task first."""
        limit = self.max_batch if limit is None else limit
        batch: list[dpb.TaskStatusUpdate] = []
        for task_id in list(self._pending)[:limit]:
            batch.append(dpb.TaskStatusUpdate(task_id=task_id, status=self._pending.pop(task_id)))
        return batch

    def restore(self, batch: list[dpb.TaskStatusUpdate]) -> None:
        """Puts back updates a failed call did not deliver, unless a newer one arrived meanwhile."""
        for update in batch:
            queued = self._pending.get(update.task_id)
            if queued is None or queued.state < update.status.state:
                self._pending[update.task_id] = update.status
        if self._pending:
            self._changed.set()

    async def _collect(self) -> None:
        """Waits for a first update, then up to max_delay or until a full batch is queued."""
        while not self._pending:
            self._changed.clear()
            await self._changed.wait()
        deadline = self.clock.now() + self.max_delay
        while len(self._pending) < self.max_batch:
            remaining = deadline - self.clock.now()
            if remaining <= 0:
                return
            self._changed.clear()
            if not await self.clock.wait(self._changed, remaining):
                return

    async def run(self, send: SendFn) -> None:
        """Sends batches through `send` forever; on a failed send, restores the batch and raises."""
        while True:
            await self._collect()
            batch = self.take()
            if not batch:
                continue
            try:
                await send(batch)
            except BaseException:
                self.restore(batch)
                raise
