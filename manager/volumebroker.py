"""The volume broker: carries a volume request to one node's agent and its answer back.

Named volumes live on their node, so `swarm volume rm` and `swarm volume prune`
are carried out by that node's agent. The control API asks the broker
(`ask`); the broker holds the request until the node answers and the
dispatcher lists every request waiting for a node in each SessionMessage it
sends that node (`requests_for`), nudging the session when one is added. The
agent acts once per request ID and answers through the dispatcher's
VolumeResult RPC (`answer`). A request a node does not answer within the
deadline is given up (`NoAnswer`); one for a node without a session on this
manager is refused at once (`NotConnected`).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Callable

from proto import dispatcher_pb2 as dpb
from proto import model

ANSWER_TIMEOUT = 15.0  # seconds a node has to carry out a volume request and answer


class NotConnected(Exception):
    """The node has no session with this manager's dispatcher."""


class NoAnswer(Exception):
    """The node did not answer in time."""


@dataclass
class _Pending:
    node_id: str
    request: dpb.VolumeRequest
    answer: "asyncio.Future[dpb.VolumeResultRequest]"


class VolumeBroker:
    """Matches the control API's volume requests with the agents that carry them out."""

    def __init__(self, node_id: str) -> None:
        self._pending: dict[str, _Pending] = {}
        self._notify: Callable[[str], None] = lambda node: None
        self._connected: Callable[[str], bool] = lambda node: False
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

    def attach(self, notify: Callable[[str], None], connected: Callable[[str], bool]) -> None:
        """The dispatcher registers how to nudge a node's session and who is connected."""
        self._notify = notify
        self._connected = connected

    def connected(self, node_id: str) -> bool:
        """Whether the node has a session here (requests can reach it)."""
        return self._connected(node_id)

    def requests_for(self, node_id: str) -> list[dpb.VolumeRequest]:
        """The requests waiting for the node's answer (each SessionMessage carries them)."""
        return [p.request for p in self._pending.values() if p.node_id == node_id]

    def answer(self, node_id: str, result: dpb.VolumeResultRequest) -> None:
        """Called by the dispatcher with a node's VolumeResult; answers from another node
        than the one asked, or for a request given up, are dropped."""
        pending = self._pending.get(result.request_id)
        if pending is None or pending.node_id != node_id or pending.answer.done():
            return
        pending.answer.set_result(result)

    async def ask(self, node_id: str, request: dpb.VolumeRequest,
                  timeout: float = ANSWER_TIMEOUT) -> dpb.VolumeResultRequest:
        """Sends `request` (its ID is set here) to the node and waits for the answer.
        Raises NotConnected or NoAnswer."""
        if not self._connected(node_id):
            raise NotConnected(node_id)
        request.id = model.new_id()
        pending = _Pending(node_id, request, asyncio.get_running_loop().create_future())
        self._pending[request.id] = pending
        self._notify(node_id)
        try:
            return await asyncio.wait_for(asyncio.shield(pending.answer), timeout)
        except asyncio.TimeoutError:
            self.log.warning("node %s did not answer volume request %s within %gs", node_id,
                             request.id, timeout)
            raise NoAnswer(node_id) from None
        finally:
            del self._pending[request.id]
