"""The Control API's volume calls: ListVolumes, RemoveVolume, PruneVolumes.

Listing reads the store only. Removing and pruning happen on the volume's node:
the rules of `volumes` check the request against the store (unknown node, a task
of the node still using the volume), then the request goes to the node's agent
through the `manager.volumebroker.VolumeBroker` and the call waits for its
answer. Agents keep their session with the leader's dispatcher, so a follower
manager hands the call to the leader (once: a forwarded call carries the
`FORWARDED` metadata key and is never forwarded again). `ControlServicer`
calls these from its thin RPC methods, which turn a `Refusal` into a status.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional, TypeAlias

import grpc

from manager.controlapi import volumes
from manager.controlapi.common import Code, Refusal, find
from manager.volumebroker import ANSWER_TIMEOUT, NoAnswer, NotConnected, VolumeBroker
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import dispatcher_pb2 as dpb
from proto import objects_pb2 as pb
from raft.api import ObjectStore

FORWARDED = "shoal-forwarded-by"   # metadata key of a call a follower handed to the leader
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
ChannelFactory = Callable[[str], grpc.aio.Channel]


class VolumeCalls:
    """What the volume RPCs do; `broker` and `leader_channel` are set by the node."""

    def __init__(self, store: ObjectStore, node_id: str) -> None:
        self.store = store
        self.node_id = node_id
        self.broker: Optional[VolumeBroker] = None
        # opens a mutual-TLS channel to another manager (the leader), as this node
        self.leader_channel: Optional[ChannelFactory] = None
        self.timeout = ANSWER_TIMEOUT
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

    def list(self, request: cpb.ListVolumesRequest) -> cpb.ListVolumesResponse:
        filters = request.filters if request.HasField("filters") else None
        return cpb.ListVolumesResponse(volumes=volumes.entries(
            self.store.list("node"), self.store.list("task"), filters))

    async def remove(self, request: cpb.RemoveVolumeRequest,
                     context: Context) -> cpb.RemoveVolumeResponse:
        node: pb.Node = find(self.store.list("node"), "node", request.node)
        volumes.check_removable(node, request.name, self.store.list("task"))
        if self._elsewhere(node, context):
            return await self._forward("RemoveVolume", request, context)
        result = await self._ask(node, dpb.VolumeRequest(op=dpb.VolumeRequest.REMOVE,
                                                         name=request.name,
                                                         force=request.force))
        volumes.outcome(result, node, request.name)
        return cpb.RemoveVolumeResponse()

    async def prune(self, request: cpb.PruneVolumesRequest,
                    context: Context) -> cpb.PruneVolumesResponse:
        node: pb.Node = find(self.store.list("node"), "node", request.node)
        if self._elsewhere(node, context):
            return await self._forward("PruneVolumes", request, context)
        keep = volumes.needed(self.store.list("task"), node.id)
        result = await self._ask(node, dpb.VolumeRequest(op=dpb.VolumeRequest.PRUNE,
                                                         keep=keep))
        volumes.outcome(result, node)
        return cpb.PruneVolumesResponse(removed=list(result.removed),
                                        reclaimed_bytes=result.reclaimed_bytes)

    # ------------------------------------------------------------ helpers --

    def _elsewhere(self, node: pb.Node, context: Context) -> bool:
        """Whether the node's agent is reached through the leader, another manager."""
        if self.broker is not None and self.broker.connected(node.id):
            return False
        forwarded = any(key == FORWARDED for key, _ in (context.invocation_metadata() or ()))
        return not forwarded and self.leader_channel is not None and not self.store.is_leader()

    async def _ask(self, node: pb.Node, request: dpb.VolumeRequest) -> dpb.VolumeResultRequest:
        if self.broker is None:
            raise volumes.unreachable(node)
        try:
            return await self.broker.ask(node.id, request, self.timeout)
        except NotConnected:
            raise volumes.unreachable(node) from None
        except NoAnswer:
            raise volumes.no_answer(node, self.timeout) from None

    async def _forward(self, method: str, request: Any, context: Context) -> Any:
        """The leader's answer to the same call; its refusal is passed on as it is."""
        assert self.leader_channel is not None
        leader = next((n.manager_status.addr for n in self.store.list("node")
                       if n.manager_status.leader and n.manager_status.addr), "")
        if not leader:
            raise Refusal(Code.UNAVAILABLE, "the swarm has no leader now: the volume's node "
                          "cannot be reached; try again")
        self.log.info("%s handed to the leader at %s", method, leader)
        channel = self.leader_channel(leader)
        try:
            stub = control_pb2_grpc.ControlStub(channel)
            return await getattr(stub, method)(request, timeout=self.timeout + 5,
                                               metadata=((FORWARDED, self.node_id),))
        except grpc.aio.AioRpcError as err:
            await context.abort(err.code(), err.details() or "")
            raise  # abort raises; never reached
        finally:
            await channel.close()
