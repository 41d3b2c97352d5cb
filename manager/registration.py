"""Recording nodes ready as they open dispatcher sessions, many in one transaction.

When a leader dies, every node of the cluster opens a session with the new one within
a second or two; one raft write per node would be a thousand writes. The dispatcher
(manager/dispatcher.py) hands each opening session to the `Registrar`, which waits a
few milliseconds for others to join, then records them all READY (creating the nodes
it has never seen) in one transaction, retried on a conflict. Every session waiting
in a batch hears how it went: its node as stored, or the error (also when the
dispatcher stops in the middle of a commit).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

from manager import objects
from manager.objects import copy
from proto import dispatcher_pb2 as dpb
from proto import objects_pb2 as pb
from proto import store_pb2
from raft import actions, errors
from raft.api import ObjectStore

CONFLICT_RETRIES = 20   # commits of one batch before its sessions are told to retry

# a session waiting to be recorded: (node ID, its request, its peer IP, its answer)
Waiting = tuple[str, dpb.SessionRequest, str, asyncio.Future]


class Registrar:
    """Batches the registrations of the sessions that open together."""

    def __init__(self, store: ObjectStore, log: logging.LoggerAdapter | logging.Logger,
                 window: float) -> None:
        self.store = store
        self.log = log
        self.window = window     # seconds a registration waits for others to join it
        self.waiting: list[Waiting] = []
        self._wakeup = asyncio.Event()
        self._task: Optional[asyncio.Task[Any]] = None

    def start(self) -> None:
        """Starts batching (call on the event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stops batching; every session still waiting hears Unavailable."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        waiting, self.waiting = self.waiting, []
        for *_, fut in waiting:
            if not fut.done():
                fut.set_exception(errors.Unavailable("the dispatcher stopped"))

    async def register(self, node_id: str, request: dpb.SessionRequest,
                       peer: str) -> Optional[pb.Node]:
        """Records the node ready (creating it on its first session); the node object
        as stored, or None if it was removed meanwhile. Not started (a test driving one
        call): recorded at once, alone."""
        if self._task is None:
            await self.commit([(node_id, request, peer)])
            return objects.get(self.store, pb.Node, node_id)
        fut = asyncio.get_running_loop().create_future()
        self.waiting.append((node_id, request, peer, fut))
        self._wakeup.set()
        return await fut

    def _action(self, node_id: str, request: dpb.SessionRequest,
                peer: str) -> store_pb2.StoreAction:
        """The action that records one node ready, from the store as it is now."""
        node = objects.get(self.store, pb.Node, node_id)
        if node is None:
            new = pb.Node(id=node_id, role=pb.WORKER)
            new.spec.availability = pb.NodeSpec.ACTIVE
            new.spec.desired_role = pb.WORKER
            act = actions.create
        else:
            new = copy(node)
            act = actions.update
        new.description.CopyFrom(request.description)
        new.status.state = pb.NodeStatus.READY
        new.status.message = ""
        new.status.addr = peer
        return act(new)

    async def commit(self, batch: list[tuple[str, dpb.SessionRequest, str]]) -> None:
        """Records every node of `batch` ready in one transaction (a node named twice:
        its last request), retried on a conflict."""
        latest = {node_id: (request, peer) for node_id, request, peer in batch}
        for _ in range(CONFLICT_RETRIES):
            acts = [self._action(node_id, request, peer)
                    for node_id, (request, peer) in latest.items()]
            try:
                await self.store.acommit(acts)
                return
            except errors.Conflict:
                continue
        names = ", ".join(sorted(latest))
        raise errors.Unavailable(f"could not register node {names}: too many conflicts")

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            await asyncio.sleep(self.window)  # let concurrent sessions join this batch
            self._wakeup.clear()
            waiting, self.waiting = self.waiting, []
            if not waiting:
                continue
            error: Optional[Exception] = None
            try:
                await self.commit([(n, request, peer) for n, request, peer, _ in waiting])
            except errors.StoreError as exc:  # Unavailable, NotLeader, ...: each session hears it
                error = exc
            except asyncio.CancelledError:  # stopped mid-commit: the batch must still hear it
                error = errors.Unavailable("the dispatcher stopped")
                raise
            except Exception as exc:  # a bug must not leave sessions waiting forever
                self.log.exception("recording %d nodes ready failed", len(waiting))
                error = errors.Unavailable(f"could not record the node ready: {exc}")
            finally:
                for node_id, _, _, fut in waiting:
                    if fut.done():
                        continue
                    if error is not None:
                        fut.set_exception(error)
                    else:
                        fut.set_result(objects.get(self.store, pb.Node, node_id))
