"""The manager role of a node: its gRPC services and its leader-only components.

`Manager` registers the Control, Dispatcher and Watch services on the node's
gRPC server. It starts the leader-only parts when this manager becomes the
raft leader (dispatcher, reconciliation loop, root rotation reconciler, role
manager) and stops them when it loses the lead.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable, NoReturn, Optional

import grpc

from manager.controlapi.server import ControlServicer
from manager.dispatcher import Dispatcher
from manager.ca import RotationReconciler
from manager.leader import LeaderLoop
from manager.logbroker import LogBroker
from manager.rolemanager import RoleManager
from manager.volumebroker import VolumeBroker
from manager.watchapi import WatchServicer
from metrics.instruments import NodeMetrics
from proto import control_pb2_grpc, dispatcher_pb2_grpc, watch_pb2_grpc
from proto import dispatcher_pb2 as dpb
from raft.api import ObjectStore

NOT_LEADER_DISPATCH = "this manager is not the leader: connect to the leader's dispatcher"


class _LeaderOnlyDispatcher(dispatcher_pb2_grpc.DispatcherServicer):
    """Forwards dispatcher calls to the live Dispatcher while leading, else refuses."""

    def __init__(self, manager: "Manager") -> None:
        self.manager = manager

    def _target(self) -> Optional[Dispatcher]:
        return self.manager.dispatcher if self.manager.leading else None

    async def _refuse(self, context: grpc.aio.ServicerContext) -> NoReturn:
        leader = next((n.manager_status.addr for n in self.manager.store.list("node")
                       if n.manager_status.leader and n.manager_status.addr), "")
        hint = f"; the leader is at {leader}" if leader else ""
        await context.abort(grpc.StatusCode.UNAVAILABLE, NOT_LEADER_DISPATCH + hint)
        raise AssertionError("unreachable: abort raises")

    async def Session(self, request, context):
        d = self._target()
        if d is None:
            await self._refuse(context)
        async for msg in d.Session(request, context):
            yield msg

    async def Assignments(self, request, context):
        d = self._target()
        if d is None:
            await self._refuse(context)
        async for msg in d.Assignments(request, context):
            yield msg

    async def Heartbeat(self, request, context):
        d = self._target()
        if d is None:
            await self._refuse(context)
        return await d.Heartbeat(request, context)

    async def UpdateTaskStatus(self, request, context):
        d = self._target()
        if d is None:
            await self._refuse(context)
        return await d.UpdateTaskStatus(request, context)

    async def PublishLogs(self, request_iterator, context):
        d = self._target()
        if d is None:
            await self._refuse(context)
        node_id: Optional[str] = None
        async for req in request_iterator:
            node_id = node_id or d.session_node(req.session_id)
            if node_id is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "session invalid")
                raise AssertionError("unreachable: abort raises")
            self.manager.logs.publish(node_id, req)
        return dpb.PublishLogsResponse()

    async def UpdateVolumes(self, request, context):
        d = self._target()
        if d is None:
            await self._refuse(context)
        return await d.UpdateVolumes(request, context)

    async def VolumeResult(self, request, context):
        d = self._target()
        if d is None:
            await self._refuse(context)
        return await d.VolumeResult(request, context)


class Manager:
    """Everything a manager node serves and runs."""

    def __init__(self, store: ObjectStore, node_id: str, data_dir: str,
                 node_addr: Callable[[], str], metrics: Optional[NodeMetrics] = None) -> None:
        self.store = store
        self.metrics = metrics if metrics is not None else NodeMetrics()
        self.node_id = node_id
        self.data_dir = data_dir
        self.logs = LogBroker(node_id)
        self.volumes = VolumeBroker(node_id)
        self.control = ControlServicer(store, node_id, data_dir, self.logs, node_addr)
        self.control.volumes.broker = self.volumes
        self.dispatcher: Optional[Dispatcher] = None
        self.leader_loop: Optional[LeaderLoop] = None
        self.rotation: Optional[RotationReconciler] = None
        self.roles: Optional[RoleManager] = None
        self.leading = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._transition = asyncio.Lock()
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

    def register(self, server: grpc.aio.Server) -> None:
        control_pb2_grpc.add_ControlServicer_to_server(self.control, server)
        dispatcher_pb2_grpc.add_DispatcherServicer_to_server(_LeaderOnlyDispatcher(self), server)
        watch_pb2_grpc.add_WatchServicer_to_server(WatchServicer(self.store), server)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.store.on_leader_change(self._leader_changed)
        await self._apply_leadership(self.store.is_leader())

    def _leader_changed(self, leading: bool, leader_addr: Optional[str] = None) -> None:
        """Called on the raft thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(
                lambda: loop.create_task(self._apply_leadership(leading)))

    async def _apply_leadership(self, leading: bool) -> None:
        async with self._transition:
            leading = self.store.is_leader()
            if leading == self.leading:
                return
            self.leading = leading
            if leading:
                self.log.info("became the leader: starting dispatcher and orchestrators")
                self.dispatcher = Dispatcher(self.store, self.node_id, self.logs, self.volumes,
                                             metrics=self.metrics)
                self.dispatcher.start()
                self.leader_loop = LeaderLoop(self.store, self.node_id, self.metrics)
                self.leader_loop.start()
                self.rotation = RotationReconciler(self.store, self.node_id)
                self.rotation.start()
                self.roles = RoleManager(self.store, self.node_id, self.data_dir)
                self.roles.start()
            else:
                self.log.info("lost the lead: stopping dispatcher and orchestrators")
                await self._stop_leader_parts()

    async def _stop_leader_parts(self) -> None:
        if self.roles is not None:
            await self.roles.stop()
            self.roles = None
        if self.rotation is not None:
            await self.rotation.stop()
            self.rotation = None
        if self.leader_loop is not None:
            await self.leader_loop.stop()
            self.leader_loop = None
        if self.dispatcher is not None:
            await self.dispatcher.stop()
            self.dispatcher = None

    def dispatcher_sessions(self) -> int:
        """Sessions open on this manager's dispatcher (0 unless it leads)."""
        dispatcher = self.dispatcher
        return len(dispatcher.sessions) if dispatcher is not None else 0

    async def stop(self) -> None:
        async with self._transition:
            self.leading = False
            await self._stop_leader_parts()
