"""The Control API's ServiceLogs call: which tasks, which manager, which bounds.

The logs of a task are read by the agent of its node, which the log broker
(manager.logbroker) reaches through that node's dispatcher session. Agents
keep their session with the leader's dispatcher only, so a follower manager
hands the whole stream to the leader (once: the forwarded call carries the
`FORWARDED` metadata key and is never forwarded again) and passes its answers
on as they come. Before this, a `service logs` run on a follower found no
session for any node and returned nothing at all.
"""
from __future__ import annotations

import logging
from typing import Any, AsyncIterator, Optional, TypeAlias

import grpc

from manager.controlapi import services
from manager.controlapi.common import Code, Refusal, find
from manager.controlapi.volumecalls import FORWARDED, ChannelFactory
from manager.logbroker import LogBroker, unavailable
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from raft.api import ObjectStore

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


def _forwarded(context: Context) -> bool:
    return any(key == FORWARDED for key, _ in (context.invocation_metadata() or ()))


def request_tail(request: cpb.ServiceLogsRequest) -> int:
    """The lines per task the request asks for: -1 (everything) when `tail` is unset
    (an API client that leaves it out), else its value (0: none)."""
    return request.tail if request.HasField("tail") else -1


class LogCalls:
    """What ServiceLogs does; the node sets `leader_channel` (as for volumes)."""

    def __init__(self, store: ObjectStore, node_id: str, broker: LogBroker) -> None:
        self.store = store
        self.node_id = node_id
        self.broker = broker
        # opens a mutual-TLS channel to another manager (the leader), as this node
        self.leader_channel: Optional[ChannelFactory] = None
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

    def _leader_addr(self) -> str:
        return next((n.manager_status.addr for n in self.store.list("node")
                     if n.manager_status.leader and n.manager_status.addr), "")

    async def stream(self, request: cpb.ServiceLogsRequest,
                     context: Context) -> AsyncIterator[cpb.ServiceLogsResponse]:
        """The responses of one ServiceLogs call (a Refusal for an unknown service)."""
        svc = find(self.store.list("service"), "service", request.service_id)
        chosen = services.log_tasks(svc, self.store.list("task"), list(request.task_ids))
        if request.since and request.until and request.until < request.since:
            raise Refusal(Code.INVALID_ARGUMENT, "the until time is before the since time")
        if (self.leader_channel is not None and not self.store.is_leader()
                and not _forwarded(context)):
            async for response in self._from_leader(request, context):
                yield response
            return
        async for response in self.broker.subscribe(chosen, follow=request.follow,
                                                    tail=request_tail(request),
                                                    since=request.since,
                                                    until=request.until):
            yield response

    async def _from_leader(self, request: cpb.ServiceLogsRequest,
                           context: Context) -> AsyncIterator[cpb.ServiceLogsResponse]:
        """The leader's answers to the same call, passed on; with no leader, every node
        holding some of the tasks is reported unavailable."""
        assert self.leader_channel is not None
        leader = self._leader_addr()
        if not leader:
            nodes = sorted({t.node_id for t in services.log_tasks(
                find(self.store.list("service"), "service", request.service_id),
                self.store.list("task"), list(request.task_ids))})
            yield cpb.ServiceLogsResponse(warnings=[f"{unavailable(n)}: the swarm has no "
                                                    "leader now" for n in nodes])
            return
        self.log.info("ServiceLogs handed to the leader at %s", leader)
        channel = self.leader_channel(leader)
        try:
            stub = control_pb2_grpc.ControlStub(channel)
            call = stub.ServiceLogs(request, metadata=((FORWARDED, self.node_id),))
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as err:
            await context.abort(err.code(), err.details() or "")
        finally:
            await channel.close()
