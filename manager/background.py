"""One coroutine that runs as a task of this manager's event loop while it leads.

`LeaderTask` owns the start/stop life cycle the leader's helpers share
(`ca.RotationReconciler`, `rolemanager.RoleManager`): `start` runs the
subclass's `_run` as a task, `stop` cancels it and waits until it has ended.
`manager.manager.Manager` starts them when this manager becomes the leader
and stops them when it loses the lead.
"""
from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Optional


class LeaderTask(ABC):
    """A background job of the leader: `_run` in a task between `start` and `stop`."""

    _task: Optional[asyncio.Task] = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    @abstractmethod
    async def _run(self) -> None:
        """The job itself; runs until cancelled by `stop`."""
