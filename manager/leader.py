"""The leader's reconciliation loop.

While this manager leads, it turns store changes (and due timers, such as a
restart delay) into a fresh snapshot, asks the pure orchestrator for a plan,
and commits the plan in transactions of at most PLAN_CHUNK actions, in order (a
30,000-replica service is thousands of task objects: one raft entry of them would
be tens of megabytes, stalling raft's heartbeats while it is sent). Conflicts
(another writer got there first) simply cause another pass on the newer
snapshot; the chunks committed before it stay, as each is a valid step.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Optional, Sequence

from manager import orchestrator
from manager.objects import copy
from metrics.instruments import NodeMetrics
from proto import objects_pb2 as pb
from proto.store_pb2 import StoreAction
from raft import actions, errors
from raft.api import ObjectStore


MANAGER_CHECK_PERIOD = 0.5  # seconds between reachability checks of the managers
PLAN_CHUNK = 500  # store actions per transaction when committing a plan
# After a pass that took d seconds the next one starts d * PASS_SPACING later at the
# earliest: a pass reads the whole snapshot, so on a big cluster (30,000 tasks: about a
# second a pass) passes back to back would leave the event loop no time for sessions,
# heartbeats and API calls. Changes arriving meanwhile are handled together.
PASS_SPACING = 1.0


def chunks(acts: Sequence[StoreAction], size: int = PLAN_CHUNK) -> list[list[StoreAction]]:
    """`acts` cut into consecutive lists of at most `size`."""
    return [list(acts[i:i + size]) for i in range(0, len(acts), size)]


class LeaderLoop:
    """Runs orchestration, scheduling and reaping on the leader."""

    def __init__(self, store: ObjectStore, node_id: str,
                 metrics: Optional[NodeMetrics] = None) -> None:
        self.store = store
        self.node_id = node_id
        self.metrics = metrics if metrics is not None else NodeMetrics()
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.passes = 0
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._dirty.set()
        self._tasks = [loop.create_task(self._watch()), loop.create_task(self._run()),
                       loop.create_task(self._watch_managers())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _watch(self) -> None:
        async for _events in self.store.watch_async(asyncio.get_running_loop()):
            self._dirty.set()

    async def _mark_leader(self) -> None:
        """Records in the manager nodes who leads and which managers raft reaches."""
        reachable = self.store.reachable_members()
        acts = []
        for node in self.store.list("node"):
            if node.role != pb.MANAGER:
                continue
            leader = node.id == self.node_id
            reach = (pb.ManagerStatus.REACHABLE if leader or
                     node.manager_status.raft_addr in reachable
                     else pb.ManagerStatus.UNREACHABLE)
            if node.manager_status.leader != leader or node.manager_status.reachability != reach:
                new = copy(node)
                new.manager_status.leader = leader
                new.manager_status.reachability = reach
                acts.append(actions.update(new))
        if acts:
            await self.store.acommit(acts)

    async def _watch_managers(self) -> None:
        while True:
            await asyncio.sleep(MANAGER_CHECK_PERIOD)
            try:
                await self._mark_leader()
            except errors.StoreError as exc:
                self.log.debug("manager status not recorded: %s", exc)
            except Exception:  # the marks must keep coming: log it and try again
                self.log.exception("recording the managers' status failed")

    async def _run(self) -> None:
        wake_at: Optional[float] = None
        while True:
            try:
                await self._mark_leader()
                break
            except errors.Conflict:
                continue
            except (errors.NotLeader, errors.Unavailable) as exc:
                self.log.warning("cannot record leadership yet: %s", exc)
                await asyncio.sleep(0.2)
            except Exception:  # not fatal: _watch_managers records it again soon
                self.log.exception("recording leadership failed")
                break
        while True:
            timeout = None if wake_at is None else max(0.0, wake_at - time.time())
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            self._dirty.clear()
            started = time.perf_counter()
            view = self.store.snapshot()
            try:
                plan = orchestrator.reconcile(view, time.time())
                took = time.perf_counter() - started
                self.metrics.scheduler_pass_seconds.observe(took)
            except Exception:  # a bug in a decision must not kill the loop
                self.log.exception("reconciliation failed")
                await asyncio.sleep(0.5)
                self._dirty.set()
                continue
            self.passes += 1
            self.metrics.scheduler_tasks_placed.inc(plan.placed)
            wake_at = plan.wake_at
            if not plan.actions:
                await self._space(took)
                continue
            try:
                for part in chunks(plan.actions):
                    await self.store.acommit(part)
            except errors.Conflict as exc:
                self.log.debug("plan conflicted (%s); reconciling again", exc)
                self._dirty.set()
            except (errors.NotLeader, errors.Unavailable) as exc:
                self.log.warning("could not commit plan: %s", exc)
                await asyncio.sleep(0.2)
                self._dirty.set()
            except Exception:  # a bug in a plan must not kill the loop
                self.log.exception("committing a plan failed")
                await asyncio.sleep(0.5)
                self._dirty.set()
            await self._space(took)

    @staticmethod
    async def _space(took: float) -> None:
        """Waits PASS_SPACING times as long as the pass took (its commit not counted:
        that waits on raft, leaving the loop free)."""
        pause = took * PASS_SPACING
        if pause > 0.01:
            await asyncio.sleep(pause)

