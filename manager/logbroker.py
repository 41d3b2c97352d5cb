"""The log broker: routes `service logs` requests to agents and their lines back.

A subscriber names tasks; the broker groups them by node and offers each node a
LogSubscription through its dispatcher session. Agents answer over PublishLogs;
the broker hands the lines to the subscriber until every node has closed (or,
with follow, until the subscriber goes away).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Optional

from proto import control_pb2 as cpb
from proto import dispatcher_pb2 as dpb
from proto import model

NODE_ANSWER_TIMEOUT = 10.0  # seconds a node may take to close a non-follow subscription


@dataclass
class _Subscription:
    id: str
    per_node: dict[str, dpb.LogSubscription]
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    open_nodes: set[str] = field(default_factory=set)


class LogBroker:
    """Matches log subscribers with the agents that hold the logs."""

    def __init__(self, node_id: str) -> None:
        self._subs: dict[str, _Subscription] = {}
        self._notify: Callable[[str], None] = lambda node_id: None
        self._connected: Callable[[str], bool] = lambda node_id: False
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

    def attach(self, notify: Callable[[str], None], connected: Callable[[str], bool]) -> None:
        """The dispatcher registers how to nudge a node's session and who is connected."""
        self._notify = notify
        self._connected = connected

    def subscriptions_for(self, node_id: str) -> list[dpb.LogSubscription]:
        """The open subscriptions a node's session must carry."""
        return [s.per_node[node_id] for s in self._subs.values() if node_id in s.per_node]

    def publish(self, node_id: str, request: dpb.PublishLogsRequest) -> None:
        """Called by the dispatcher for every PublishLogs message from an agent."""
        sub = self._subs.get(request.subscription_id)
        if sub is None or node_id not in sub.per_node:
            return
        if request.messages:
            sub.queue.put_nowait(list(request.messages))
        if request.close:
            sub.open_nodes.discard(node_id)
            sub.queue.put_nowait(None)

    def node_gone(self, node_id: str) -> None:
        """A node's session ended: it will send nothing more."""
        for sub in self._subs.values():
            if node_id in sub.open_nodes:
                sub.open_nodes.discard(node_id)
                sub.queue.put_nowait(None)

    async def subscribe(self, tasks: list, follow: bool, tail: int
                        ) -> AsyncIterator[list[cpb.LogMessage]]:
        """Yields batches of log lines of `tasks` from every node that runs them."""
        sub_id = model.new_id()
        by_node: dict[str, list[str]] = {}
        for task in tasks:
            by_node.setdefault(task.node_id, []).append(task.id)
        per_node = {n: dpb.LogSubscription(id=sub_id, task_ids=ids, follow=follow,
                                           tail=tail if tail else -1)
                    for n, ids in by_node.items() if self._connected(n)}
        sub = _Subscription(id=sub_id, per_node=per_node, open_nodes=set(per_node))
        self._subs[sub_id] = sub
        for node_id in per_node:
            self._notify(node_id)
        try:
            while sub.open_nodes or not sub.queue.empty():
                timeout: Optional[float] = None if follow else NODE_ANSWER_TIMEOUT
                try:
                    item = await asyncio.wait_for(sub.queue.get(), timeout)
                except asyncio.TimeoutError:
                    self.log.warning("log subscription %s: nodes %s did not answer", sub_id,
                                     ", ".join(sorted(sub.open_nodes)))
                    break
                if item:
                    yield item
        finally:
            del self._subs[sub_id]
            for node_id in per_node:
                self._notify(node_id)
