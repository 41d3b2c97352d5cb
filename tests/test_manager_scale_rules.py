"""manager.leader: a plan is committed in consecutive chunks, in order; manager.dispatcher:
a node's status address is its IP."""
from __future__ import annotations

from manager.dispatcher import peer_ip
from manager.leader import PLAN_CHUNK, chunks
from proto.store_pb2 import StoreAction


def test_plans_are_committed_in_chunks_in_order() -> None:
    acts = [StoreAction(expected_version=i) for i in range(2 * PLAN_CHUNK + 3)]
    parts = chunks(acts)
    assert [len(p) for p in parts] == [PLAN_CHUNK, PLAN_CHUNK, 3]
    assert [a for p in parts for a in p] == acts
    assert chunks([]) == []


def test_a_nodes_status_addr_is_its_ip() -> None:
    assert peer_ip("ipv4:10.1.0.3:40112") == "10.1.0.3"
    assert peer_ip("ipv6:[fd00::5]:40112") == "fd00::5"
    assert peer_ip("unix:/run/x.sock") == "unix:/run/x.sock"
