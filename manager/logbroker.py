"""The log broker: routes `service logs` requests to agents and their lines back.

A subscriber names tasks; the broker groups them by node and offers each node a
LogSubscription through its dispatcher session. Agents answer over PublishLogs;
the broker hands the lines to the subscriber until every node has closed (or,
with follow, until the subscriber goes away).

Nothing is skipped silently: a node that holds some of the tasks but has no
session (down, unreachable, or connected to another manager), a node whose
session ends before it has sent everything, and one that does not answer in
time are each named in a warning (`ServiceLogsResponse.warnings`, swarmkit's
"node X is not available") that the subscriber receives as soon as it is known.
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
    lost: list[str] = field(default_factory=list)  # nodes whose session ended meanwhile


def unavailable(node_id: str) -> str:
    """The warning for a node whose tasks' logs cannot be read (swarmkit's words)."""
    return f"node {node_id} is not available"


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
                sub.lost.append(node_id)
                sub.queue.put_nowait(None)

    async def subscribe(self, tasks: list, follow: bool, tail: int, since: float = 0.0,
                        until: float = 0.0) -> AsyncIterator[cpb.ServiceLogsResponse]:
        """Yields the log lines of `tasks` from every node that runs them, in batches,
        and a warning for each node whose part cannot be read. `tail` < 0: every
        line; `since`/`until`: unix seconds, 0 for no bound."""
        sub_id = model.new_id()
        by_node: dict[str, list[str]] = {}
        for task in tasks:
            by_node.setdefault(task.node_id, []).append(task.id)
        per_node = {n: dpb.LogSubscription(id=sub_id, task_ids=ids, follow=follow, tail=tail,
                                           since=since, until=until)
                    for n, ids in by_node.items() if self._connected(n)}
        sub = _Subscription(id=sub_id, per_node=per_node, open_nodes=set(per_node))
        self._subs[sub_id] = sub
        for node_id in per_node:
            self._notify(node_id)
        try:
            missing = sorted(set(by_node) - set(per_node))
            if missing:
                self.log.info("log subscription %s: no session with %s", sub_id,
                              ", ".join(missing))
                yield cpb.ServiceLogsResponse(warnings=[unavailable(n) for n in missing])
            while sub.open_nodes or not sub.queue.empty():
                timeout: Optional[float] = None if follow else NODE_ANSWER_TIMEOUT
                try:
                    item = await asyncio.wait_for(sub.queue.get(), timeout)
                except asyncio.TimeoutError:
                    late = sorted(sub.open_nodes)
                    self.log.warning("log subscription %s: nodes %s did not answer", sub_id,
                                     ", ".join(late))
                    yield cpb.ServiceLogsResponse(warnings=[
                        f"{unavailable(n)}: no answer within {NODE_ANSWER_TIMEOUT:.0f}s"
                        for n in late])
                    break
                if item:
                    yield cpb.ServiceLogsResponse(messages=item)
                if sub.lost:
                    lost, sub.lost = sub.lost, []
                    yield cpb.ServiceLogsResponse(warnings=[unavailable(n) for n in lost])
        finally:
            del self._subs[sub_id]
            for node_id in per_node:
                self._notify(node_id)
