"""The role manager: carries out demotions on the leader, in a fixed, resumable order.

The Control API only records a demotion (the node's `spec.desired_role`
becomes worker; its `role` stays manager). While this manager leads, the role
manager finishes every pending demotion in two steps, as `roles.demotion_steps`
decides them from the store and the raft membership:

1. take the node's raft endpoint out of the raft group (raft membership change);
2. record the node a worker in the store (`role` worker, no manager status).

Raft membership follows the store, never the reverse: if the leader dies
between the steps, the store still says "manager, to be demoted", and the next
leader's role manager sees the endpoint already out of raft and does step 2.
The demoted node's daemon restarts as a worker only once the store says
worker (node daemon, role change).

Test hook (only for the end-to-end test of this order): when the file
`FAULT_AFTER_RAFT_REMOVAL` exists in this manager's data directory, the
process removes the file and exits at once right after step 1, as a leader
that dies between the steps would. Nothing else reads that file.
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from manager import roles
from manager.background import LeaderTask
from proto import objects_pb2 as pb
from raft import actions, errors
from raft.api import ObjectStore

RETRY_PERIOD = 1.0  # seconds between passes while a demotion waits (quorum, a failed step)
MAX_STEPS_PER_CHECK = 8  # passes of one check; a demotion takes two
FAULT_AFTER_RAFT_REMOVAL = "test-hook-exit-after-raft-removal"
FAULT_EXIT_CODE = 70


class RoleManager(LeaderTask):
    """On the leader: finishes pending demotions (raft removal first, then the store)."""

    def __init__(self, store: ObjectStore, node_id: str, data_dir: str) -> None:
        self.store = store
        self.node_id = node_id
        self.data_dir = Path(data_dir)
        self._waiting: dict[str, str] = {}  # node ID -> why its demotion waits (logged once)
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

    async def _run(self) -> None:
        changed = asyncio.Event()
        stream = self.store.watch_async(asyncio.get_running_loop())

        async def watch() -> None:
            async for events in stream:
                if any(ev.object.WhichOneof("object") == "node" for ev in events):
                    changed.set()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            while True:
                changed.clear()
                try:
                    pending = await self.check()
                except Exception:  # a failed pass must not end demotions for good
                    self.log.exception("role manager pass failed")
                    pending = True
                if not pending:
                    await changed.wait()
                else:
                    try:
                        await asyncio.wait_for(changed.wait(), RETRY_PERIOD)
                    except asyncio.TimeoutError:
                        pass
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def check(self) -> bool:
        """Carries pending demotions as far as they go now; True while some remain.

        After a step succeeds the steps are decided again on a fresh read, so
        step 2 follows step 1 at once.
        """
        for _ in range(MAX_STEPS_PER_CHECK):
            steps = roles.demotion_steps(self.store.list("node"), self.store.members(),
                                         self.node_id)
            progressed = False
            for demotion in steps:
                progressed |= await self._take(demotion)
            if not progressed:
                return bool(steps)
        return True

    async def _take(self, demotion: roles.Demotion) -> bool:
        """Takes one step of one demotion; True when it succeeded."""
        node = demotion.node
        if demotion.step is roles.Step.WAIT:
            if self._waiting.get(node.id) != demotion.reason:
                self._waiting[node.id] = demotion.reason
                self.log.warning("demotion of node %s waits: %s", node.id, demotion.reason)
            return False
        self._waiting.pop(node.id, None)
        if demotion.step is roles.Step.REMOVE_MEMBER:
            return await self._remove_member(node.id, node.manager_status.raft_addr)
        return await self._record_worker(node)

    async def _remove_member(self, node_id: str, raft_addr: str) -> bool:
        """Step 1: the node's raft endpoint leaves the raft group."""
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, self.store.remove_member, raft_addr)
        except errors.StoreError as exc:
            self.log.warning("demotion of node %s: raft removal of %s failed (%s); will retry",
                             node_id, raft_addr, exc)
            return False
        self.log.info("demotion of node %s: %s left the raft group", node_id, raft_addr)
        self._fault_after_raft_removal()
        return True

    async def _record_worker(self, node: pb.Node) -> bool:
        """Step 2: the store records the node a worker (its daemon then restarts as one)."""
        try:
            await self.store.acommit([actions.update(roles.as_worker(node))])
        except errors.StoreError as exc:
            self.log.info("demotion of node %s not recorded yet (%s); will retry", node.id, exc)
            return False
        self.log.info("demotion of node %s: recorded as a worker", node.id)
        return True

    def _fault_after_raft_removal(self) -> None:
        """The test hook (module docstring): exit between the two steps."""
        hook = self.data_dir / FAULT_AFTER_RAFT_REMOVAL
        if hook.exists():
            hook.unlink()
            self.log.warning("test hook %s: exiting between the two steps of a demotion", hook)
            logging.shutdown()
            os._exit(FAULT_EXIT_CODE)
