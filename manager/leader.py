"""The leader's reconciliation loop.

While this manager leads, it turns store changes (and due timers, such as a
restart delay) into a fresh snapshot, asks the pure orchestrator for a plan,
and commits the plan in transactions of at most PLAN_CHUNK actions (a
30,000-replica service is thousands of task objects: one raft entry of them would
be tens of megabytes, stalling raft's heartbeats while it is sent). Conflicts
(another writer got there first) simply cause another pass on the newer
snapshot; the chunks committed before it stay, as each is a valid step. For that,
the updates of services, nodes and the cluster go first (`commit_order`): a task is
never committed before the service version it was made for (a rollback creates
tasks from the previous spec under a new spec version; committed alone, they would
pass for tasks of whatever spec a user's update gives that version meanwhile).

A pass reads the whole cluster (about a second for 30,000 tasks), so it runs
on a thread of its own: the event loop keeps answering heartbeats, sessions
and status reports meanwhile (the plan is pure, the snapshot immutable). While
changes keep coming, passes take at most `PASS_DUTY` of the time: after a pass
of d seconds the next starts no sooner than d * (1 - PASS_DUTY) / PASS_DUTY
later, and every change made meanwhile is folded into that next pass. A
transaction of task progress reports that no rule acts on
(manager/orchestrator/triggers.py) asks for no pass at all. A pass leaves out the
services nothing changed for since the last pass was committed whole
(manager/orchestrator/quiet.py): with 30,000 tasks of a settled service, creating one
more service costs a pass over that one, not over the 30,000; a full pass still runs
at every wake-up timer and at least every FULL_PASS_EVERY seconds of changes.
"""
from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

from manager import orchestrator
from manager.orchestrator.quiet import FULL_PASS_EVERY, Fingerprints, fingerprints, quiet
from manager.orchestrator.triggers import UPDATE_UNDER_WAY, needs_pass
from manager.objects import copy
from metrics.instruments import NodeMetrics
from proto import objects_pb2 as pb
from proto.store_pb2 import StoreAction
from raft import actions, errors
from raft.api import ObjectStore
from raft.view import StoreView


MANAGER_CHECK_PERIOD = 0.5  # seconds between reachability checks of the managers
PLAN_CHUNK = 500  # store actions per transaction when committing a plan
PASS_DUTY = 0.5  # the largest share of the time reconcile passes take while changes keep coming


# the kinds whose updates a plan commits before its tasks (see the module docstring)
_FIRST_KINDS = frozenset({"service", "node", "cluster"})


def commit_order(acts: Sequence[StoreAction]) -> list[StoreAction]:
    """The plan's actions in the order they are committed: the updates of services,
    nodes and the cluster first, then the others as the plan lists them."""
    first = [a for a in acts if a.object.WhichOneof("object") in _FIRST_KINDS]
    if not first:
        return list(acts)
    return first + [a for a in acts if a.object.WhichOneof("object") not in _FIRST_KINDS]


def chunks(acts: Sequence[StoreAction], size: int = PLAN_CHUNK) -> list[list[StoreAction]]:
    """`acts` cut into consecutive lists of at most `size`."""
    return [list(acts[i:i + size]) for i in range(0, len(acts), size)]


def _pass(view: StoreView, now: float, previous: Optional[Fingerprints]
          ) -> tuple[orchestrator.Plan, Fingerprints, frozenset[str]]:
    """One reconcile pass, leaving out the services `previous` shows unchanged (None:
    a full pass); returns the plan, this snapshot's fingerprints and what was skipped."""
    prints = fingerprints(view)
    skip = quiet(previous, prints)
    return orchestrator.reconcile(view, now, skip=skip), prints, skip


def next_wake(planned: Optional[float], kept: Optional[float], now: float) -> Optional[float]:
    """When the loop must run a pass again without a change: the plan's wake-up, or an
    earlier one still to come that a pass which skipped services must keep (a skipped
    service's restart delay or update monitor asks for nothing in that pass)."""
    times = [t for t in (planned, kept if kept is not None and kept > now else None)
             if t is not None]
    return min(times) if times else None


def rest_after(pass_seconds: float, duty: float = PASS_DUTY) -> float:
    """Seconds to leave between a pass that took `pass_seconds` and the next one."""
    return pass_seconds * (1.0 - duty) / duty


class LeaderLoop:
    """Runs orchestration, scheduling and reaping on the leader."""

    def __init__(self, store: ObjectStore, node_id: str,
                 metrics: Optional[NodeMetrics] = None) -> None:
        self.store = store
        self.node_id = node_id
        self.metrics = metrics if metrics is not None else NodeMetrics()
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._executor: Optional[ThreadPoolExecutor] = None
        self.passes = 0
        self.ignored = 0  # transactions that asked for no pass (progress reports only)
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._dirty.set()
        self._executor = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix=f"reconcile-{self.node_id[:12]}")
        self._tasks = [loop.create_task(self._watch()), loop.create_task(self._run()),
                       loop.create_task(self._watch_managers())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._executor is not None:
            self._executor.shutdown(wait=False)  # a pass under way ends on its own
            self._executor = None

    async def _watch(self) -> None:
        async for events in self.store.watch_async(asyncio.get_running_loop()):
            if self._dirty.is_set():
                continue
            if needs_pass(events, self._update_under_way):
                self._dirty.set()
            else:
                self.ignored += 1

    def _update_under_way(self, service_id: str) -> bool:
        service = self.store.get("service", service_id)
        return not isinstance(service, pb.Service) or \
            service.update_status.state in UPDATE_UNDER_WAY

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
        loop = asyncio.get_running_loop()
        rest_until = 0.0
        previous: Optional[Fingerprints] = None   # of the last pass committed whole
        last_full = 0.0                           # monotonic time of the last full pass
        while True:
            timeout = None if wake_at is None else max(0.0, wake_at - time.time())
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            pause = rest_until - time.monotonic()
            if pause > 0:  # the duty cycle: changes made meanwhile join this pass
                await asyncio.sleep(pause)
            self._dirty.clear()
            view = self.store.snapshot()
            started = time.perf_counter()
            now = time.time()
            full = (wake_at is not None and now >= wake_at) or \
                time.monotonic() - last_full >= FULL_PASS_EVERY
            try:
                plan, prints, skipped = await loop.run_in_executor(
                    self._executor, _pass, view, now, None if full else previous)
                took = time.perf_counter() - started
                self.metrics.scheduler_pass_seconds.observe(took)
                rest_until = time.monotonic() + rest_after(took)
            except Exception:  # a bug in a decision must not kill the loop
                self.log.exception("reconciliation failed")
                await asyncio.sleep(0.5)
                self._dirty.set()
                continue
            self.passes += 1
            self.log.debug("pass %d: %.3f s, %d services skipped, %d actions", self.passes,
                           took, len(skipped), len(plan.actions))
            if not skipped:
                last_full = time.monotonic()
            self.metrics.scheduler_tasks_placed.inc(plan.placed)
            wake_at = next_wake(plan.wake_at, wake_at if skipped else None, now)
            previous = None   # until this plan is committed whole
            if not plan.actions:
                previous = prints
                continue
            try:
                for part in chunks(commit_order(plan.actions)):
                    await self.store.acommit(part)
                previous = prints
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

