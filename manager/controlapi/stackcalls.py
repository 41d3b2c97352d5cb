"""The Control API's stack calls: DeployStack, ListStacks, RemoveStack, RollbackStack.

The I/O around the pure rules of `stacks`: read what the rules need from the
store, commit the plan as one transaction, answer. A deploy whose
transaction meets a store `Conflict` (someone changed one of its objects
between the read and the commit) reads again and plans again, a few times;
a rollback (the deploy of the stack's previous definition) does the same.
`stack rm` commits its first step (services, secrets, configs, the stack
object), then waits on the store, with a deadline, until the reaper has
deleted the removed services' tasks, then removes the networks in a second
transaction, so that a redeploy right after finds no half-removed network.

Writes on a follower manager go through raft to the leader as every other
Control write does (raft.store); the wait reads this manager's replica.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Protocol, Sequence, TypeVar

from manager import ca
from manager.controlapi import stacks
from manager.controlapi.common import NO_LEADER, Code, Refusal, disk_refusal
from proto import control_pb2 as cpb
from proto import store_pb2
from raft import errors
from raft.api import ObjectStore

DEPLOY_ATTEMPTS = 5          # plans tried when the store refuses one for a conflict
REMOVE_WAIT = 60.0           # seconds `stack rm` waits for the stack's tasks to go


class _Planned(Protocol):
    actions: list[store_pb2.StoreAction]
    changes: list[cpb.StackChange]


P = TypeVar("P", bound=_Planned)


class StackCalls:
    """What the stack RPCs do, on one manager's store."""

    def __init__(self, store: ObjectStore, node_id: str) -> None:
        self.store = store
        self.node_id = node_id
        self.remove_wait = REMOVE_WAIT
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

    def current(self) -> stacks.Current:
        """What the rules read, from one consistent view of the store."""
        view = self.store.snapshot()
        return stacks.Current(
            services=list(view.services.values()), networks=list(view.networks.values()),
            secrets=list(view.secrets.values()), configs=list(view.configs.values()),
            tasks=list(view.tasks.values()), stacks=list(view.stacks.values()),
            cluster=ca.cluster_of(self.store))

    async def _commit(self, acts: Sequence[store_pb2.StoreAction]) -> int:
        try:
            return await self.store.acommit(acts)
        except errors.DiskError as exc:   # (an Unavailable: the leader's disk is full)
            raise disk_refusal(exc) from None
        except (errors.NotLeader, errors.Unavailable):
            raise Refusal(Code.UNAVAILABLE, NO_LEADER) from None

    async def deploy(self, request: cpb.DeployStackRequest) -> cpb.DeployStackResponse:
        changes = await self._applied(
            request.stack.name, "deployed", request.dry_run,
            lambda: stacks.deploy_plan(request.stack, request.prune, self.current()))
        return cpb.DeployStackResponse(changes=changes)

    async def rollback(self, request: cpb.RollbackStackRequest) -> cpb.RollbackStackResponse:
        changes = await self._applied(
            request.name, "rolled back", request.dry_run,
            lambda: stacks.rollback_plan(request.name, self.current()))
        return cpb.RollbackStackResponse(changes=changes)

    async def _applied(self, name: str, what: str, dry_run: bool,
                       rule: Callable[[], stacks.Plan]) -> list[cpb.StackChange]:
        """Plans with `rule` and commits the plan as one transaction (nothing with
        `dry_run`); plans again after a conflict. The changes made (or that would be)."""
        for attempt in range(1, DEPLOY_ATTEMPTS + 1):
            plan = rule()
            if dry_run:
                for change in plan.changes:
                    if change.action == cpb.StackChange.CREATE:
                        change.id = ""
                return plan.changes
            if not plan.actions:
                return []
            try:
                version = await self._commit(plan.actions)
            except errors.Conflict as exc:
                self.log.info("stack %s: attempt %d to be %s met a conflict (%s); planning "
                              "again", name, attempt, what, exc)
                continue
            self.log.info("stack %s %s at store version %d: %d change(s)", name, what, version,
                          len(plan.changes))
            return plan.changes
        raise Refusal(Code.FAILED_PRECONDITION,
                      f"stack {name}: its objects kept changing while it was being {what} "
                      f"({DEPLOY_ATTEMPTS} attempts); nothing was changed, try it again")

    def list(self) -> cpb.ListStacksResponse:
        return cpb.ListStacksResponse(stacks=stacks.summaries(self.current()))

    async def remove(self, request: cpb.RemoveStackRequest) -> cpb.RemoveStackResponse:
        name = request.name
        plan = await self._planned(name, "removed", lambda: stacks.removal(name, self.current()))
        self.log.info("stack %s: %d service(s), secret(s) and config(s) removed", name,
                      len(plan.changes))
        if not plan.networks:
            return cpb.RemoveStackResponse(changes=plan.changes)
        if not await self._tasks_gone(plan.service_ids):
            left = [n.spec.annotations.name for n in plan.networks]
            raise Refusal(Code.FAILED_PRECONDITION,
                          f"stack {name}: services, secrets and configs removed, but its tasks "
                          f"were still stopping after {self.remove_wait:g}s; network(s) "
                          f"{', '.join(left)} kept: run 'swarm stack rm {name}' again to remove "
                          "them")
        nets = await self._planned(name, "removed (networks)", lambda: stacks.network_removal(
            plan.networks, self.current()))
        self.log.info("stack %s: %d network(s) removed", name, len(nets.changes))
        return cpb.RemoveStackResponse(changes=list(plan.changes) + nets.changes)

    async def _planned(self, name: str, what: str, rule: Callable[[], P]) -> P:
        """Plans with `rule` and commits its actions; plans again after a conflict."""
        for attempt in range(1, DEPLOY_ATTEMPTS + 1):
            plan = rule()
            if not plan.actions:
                return plan
            try:
                await self._commit(plan.actions)
                return plan
            except errors.Conflict as exc:
                self.log.info("stack %s: attempt %d to be %s met a conflict (%s); planning "
                              "again", name, attempt, what, exc)
        raise Refusal(Code.FAILED_PRECONDITION,
                      f"stack {name}: its objects kept changing while it was being {what} "
                      f"({DEPLOY_ATTEMPTS} attempts); run the removal again")

    async def _tasks_gone(self, service_ids: set[str]) -> bool:
        """Waits until no task of these services is in the store; False at the deadline."""
        deadline = time.monotonic() + self.remove_wait
        async with self.store.watch_async(asyncio.get_running_loop()) as stream:
            while stacks.stack_tasks(service_ids, self.store.list("task")):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                try:
                    await asyncio.wait_for(stream.__anext__(), left)
                except (asyncio.TimeoutError, StopAsyncIteration):
                    return not stacks.stack_tasks(service_ids, self.store.list("task"))
        return True
