"""The dispatcher's expiry against a session being registered (manager/dispatcher.py).

A node's Session first records the node ready, then registers the session. The
expiry, running on the same loop, must not take the node for a ready node
without a session in between and mark it down: nothing would set it ready
again while its session heartbeats (seen once in CI: a manager that joined
stayed down for good)."""
from __future__ import annotations

import asyncio
from typing import Any

from manager.dispatcher import Dispatcher
from manager.logbroker import LogBroker
from proto import objects_pb2 as pb
from raft import actions


def ready_node(store: Any, node_id: str) -> None:
    node = pb.Node(id=node_id, role=pb.MANAGER)
    node.status.state = pb.NodeStatus.READY
    store.commit([actions.create(node)])


def state(store: Any, node_id: str) -> int:
    return int(store.get("node", node_id).status.state)


def test_a_node_being_registered_is_not_marked_down(store: Any) -> None:
    ready_node(store, "n1")
    disp = Dispatcher(store, "m1", LogBroker("m1"))
    disp._registering.add("n1")
    asyncio.run(disp._mark_down([("n1", "heartbeat failure")]))
    assert state(store, "n1") == pb.NodeStatus.READY


def test_a_ready_node_without_a_session_is_marked_down(store: Any) -> None:
    ready_node(store, "n1")
    disp = Dispatcher(store, "m1", LogBroker("m1"))
    asyncio.run(disp._mark_down([("n1", "heartbeat failure")]))
    assert state(store, "n1") == pb.NodeStatus.DOWN
