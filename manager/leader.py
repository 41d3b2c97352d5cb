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

A full pass over 30,000 tasks takes a few tenths of a second of CPU, so it runs
on a thread of its own: the event loop keeps answering heartbeats, sessions
and status reports meanwhile (the plan is pure, the snapshot immutable). While
changes keep coming, passes take at most `PASS_DUTY` of the time: after a pass
of d seconds of CPU the next starts no sooner than d * (1 - PASS_DUTY) / PASS_DUTY
later, and every change made meanwhile is folded into that next pass. A
transaction of task progress reports that no rule acts on
(manager/orchestrator/triggers.py) asks for no pass at all. A pass leaves out the
services nothing changed for since the last pass was committed whole
(manager/orchestrator/quiet.py): with 30,000 tasks of a settled service, creating one
more service costs a pass over that one, not over the 30,000; a full pass still runs
at every wake-up timer. A full pass over 30,000 tasks takes a few tenths of a second,
which every change arriving meanwhile would wait for; so instead of a full pass on a
timer, a skipping pass is checked (`audit`) every AUDIT_EVERY seconds on a thread of
its own (the first since the last check, with a copy of its task index), its snapshot
reconciled whole and skipping and the plans compared:
a difference is logged and makes the next pass full. What a
pass needs of all the tasks (the tasks to place, each node's load, ...) comes from a
TaskIndex (manager/orchestrator/taskindex.py) that the loop keeps from one pass to
the next, brought up to date with the tasks changed in between.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from manager import orchestrator
from manager.orchestrator.quiet import AUDIT_EVERY, Fingerprints, fingerprints, quiet
from manager.orchestrator.taskindex import TaskIndex, advanced
from manager.orchestrator.triggers import UPDATE_UNDER_WAY, needs_pass
from manager.objects import copy
from metrics.instruments import NodeMetrics
from proto import objects_pb2 as pb
from proto.store_pb2 import StoreAction
from raft import actions, errors
from raft.api import ObjectStore
from raft.state import TASK_LOG_MAX
from raft.view import StoreView


MANAGER_CHECK_PERIOD = 0.5  # seconds between reachability checks of the managers
PLAN_CHUNK = 500  # store actions per transaction when committing a plan
CATCH_UP_AFTER = TASK_LOG_MAX // 4  # task changes without a pass: the index catches up
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


@dataclass
class PassResult:
    """What one pass (`_pass`) gives the loop."""
    plan: orchestrator.Plan
    prints: Fingerprints       # the snapshot's, for the next pass's `quiet`
    skipped: frozenset[str]    # services left out
    index: TaskIndex           # of the snapshot, for the next pass
    cpu: float                 # CPU seconds of the pass's thread
    built: bool                # the index was built anew (the pass is full)
    kept: Optional[TaskIndex]  # a copy of `index`, when asked and the pass skipped some


def _pass(view: StoreView, now: float, previous: Optional[Fingerprints],
          index: Optional[TaskIndex], keep: bool = False) -> PassResult:
    """One reconcile pass, leaving out the services `previous` shows unchanged (None:
    a full pass); `index` is the last pass's TaskIndex (None: none), brought to `view`
    or built anew (then the pass is full). With `keep`, a pass that skipped services
    also returns a copy of the index (for an audit of it, on another thread)."""
    started = time.thread_time()
    index, built = advanced(index, view)
    prints = fingerprints(view, index)
    skip = frozenset() if built or previous is None else quiet(previous, prints)
    plan = orchestrator.reconcile(view, now, skip=skip, index=index)
    kept = index.copy() if keep and skip else None
    return PassResult(plan, prints, skip, index, time.thread_time() - started, built, kept)


def _catch_up(index: Optional[TaskIndex], view: StoreView) -> TaskIndex:
    """`index` brought to `view` without a pass (or built, if it cannot be)."""
    return advanced(index, view)[0]


def audit(view: StoreView, now: float, skip: frozenset[str],
          index: Optional[TaskIndex] = None) -> int:
    """How many actions a pass over `view` leaving out `skip` gets wrong: the view is
    reconciled whole and skipping, with the same made-up task IDs, and the two plans'
    actions compared (the cluster object's aside: its network keys are random).
    0 when the skip was right. `index`: the view's TaskIndex, the audit's own (the
    loop's moves on meanwhile); None: built here."""
    def ids() -> Callable[[], str]:
        counter = itertools.count()
        return lambda: f"audit{next(counter):08d}"

    def actions_of(plan: orchestrator.Plan) -> set[bytes]:
        return {a.SerializeToString(deterministic=True) for a in plan.actions
                if a.object.WhichOneof("object") != "cluster"}
    if index is None:
        index = TaskIndex.build(view)
    whole = orchestrator.reconcile(view, now, new_id=ids(), index=index)
    part = orchestrator.reconcile(view, now, new_id=ids(), skip=skip, index=index)
    return len(actions_of(whole) ^ actions_of(part))


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
        self._dirty = asyncio.Event()   # the loop has something to do (below)
        self._wanted = False            # a pass is wanted
        self._behind = 0                # task changes since the last pass, none wanting one
        self._tasks: list[asyncio.Task] = []
        self._executor: Optional[ThreadPoolExecutor] = None
        self._auditor: Optional[ThreadPoolExecutor] = None
        # the first skipping pass since the last audit: its view, time, skipped services
        # and a copy of its task index
        self._unaudited: Optional[tuple[StoreView, float, frozenset[str],
                                        Optional[TaskIndex]]] = None
        self._audit_missed = False  # the last audit found a wrong skip: next pass full
        self.passes = 0
        self.audits = 0        # audits done
        self.catch_ups = 0     # times the task index caught up without a pass
        self.audit_misses = 0  # of which found a skipping pass wrong
        self.ignored = 0  # transactions that asked for no pass (progress reports only)
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._want()
        self._executor = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix=f"reconcile-{self.node_id[:12]}")
        self._auditor = ThreadPoolExecutor(max_workers=1,
                                           thread_name_prefix=f"audit-{self.node_id[:12]}")
        self._unaudited, self._audit_missed = None, False
        self._tasks = [loop.create_task(self._watch()), loop.create_task(self._run()),
                       loop.create_task(self._watch_managers()),
                       loop.create_task(self._audits())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for pool in (self._executor, self._auditor):
            if pool is not None:
                pool.shutdown(wait=False)  # a pass or audit under way ends on its own
        self._executor = self._auditor = None
        self._unaudited = None

    def _want(self) -> None:
        """Asks the loop for a pass."""
        self._wanted = True
        self._dirty.set()

    async def _watch(self) -> None:
        async for events in self.store.watch_async(asyncio.get_running_loop()):
            if self._wanted:
                continue
            if needs_pass(events, self._update_under_way):
                self._want()
                continue
            self.ignored += 1
            # progress reports ask for no pass, but the store's task change log keeps
            # only so much: the index catches up before it would have to be rebuilt
            self._behind += len(events)
            if self._behind >= CATCH_UP_AFTER:
                self._dirty.set()

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

    async def _audits(self) -> None:
        """Every AUDIT_EVERY seconds, checks the first skipping pass since the last check."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(AUDIT_EVERY)
            if self._unaudited is None or self._auditor is None:
                continue
            view, now, skipped, kept = self._unaudited
            self._unaudited = None
            try:
                wrong = await loop.run_in_executor(self._auditor, audit, view, now, skipped,
                                                   kept)
            except Exception:  # the audits must keep coming: log it and go on
                self.log.exception("auditing the pass of store version %d failed",
                                   view.version)
                continue
            self.audits += 1
            self.log.debug("audit of the pass of store version %d: %d actions differ",
                           view.version, wrong)
            if wrong:
                self.audit_misses += 1
                self._audit_missed = True
                self._want()
                self.log.warning("the pass of store version %d left out services it should "
                                 "not have (%d actions differ from a full pass); the next "
                                 "pass is full", view.version, wrong)

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
        index: Optional[TaskIndex] = None         # of the last pass's view
        while True:
            timeout = None if wake_at is None else max(0.0, wake_at - time.time())
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            due = wake_at is not None and time.time() >= wake_at
            if not self._wanted and not due:   # only the index is behind
                self._dirty.clear()
                self._behind = 0
                self.log.debug("task index catching up")
                try:
                    index = await loop.run_in_executor(self._executor, _catch_up, index,
                                                       self.store.snapshot())
                    self.catch_ups += 1
                except Exception:
                    self.log.exception("bringing the task index up to date failed")
                    index = None
                continue
            pause = rest_until - time.monotonic()
            if pause > 0:  # the duty cycle: changes made meanwhile join this pass
                await asyncio.sleep(pause)
            self._dirty.clear()
            self._wanted, self._behind = False, 0
            view = self.store.snapshot()
            started = time.perf_counter()
            now = time.time()
            full = (wake_at is not None and now >= wake_at) or self._audit_missed
            self._audit_missed = False
            try:
                result = await loop.run_in_executor(
                    self._executor, _pass, view, now, None if full else previous, index,
                    self._unaudited is None)
                plan, prints, skipped, index = (result.plan, result.prints, result.skipped,
                                                result.index)
                took = time.perf_counter() - started
                self.metrics.scheduler_pass_seconds.observe(took)
                # the duty cycle counts the pass's own CPU time: waiting for the other
                # threads (an audit, the event loop) is no reason to rest
                rest_until = time.monotonic() + rest_after(result.cpu)
            except Exception:  # a bug in a decision must not kill the loop
                self.log.exception("reconciliation failed")
                index = None  # it may have been left half advanced
                await asyncio.sleep(0.5)
                self._want()
                continue
            self.passes += 1
            self.log.debug("pass %d: %.3f s (%.3f s CPU), %d services skipped, %d actions%s",
                           self.passes, took, result.cpu, len(skipped), len(plan.actions),
                           ", task index built" if result.built else "")
            if skipped and self._unaudited is None:
                self._unaudited = (view, now, skipped, result.kept)
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
                self._want()
            except (errors.NotLeader, errors.Unavailable) as exc:
                self.log.warning("could not commit plan: %s", exc)
                await asyncio.sleep(0.2)
                self._want()
            except Exception:  # a bug in a plan must not kill the loop
                self.log.exception("committing a plan failed")
                await asyncio.sleep(0.5)
                self._want()

