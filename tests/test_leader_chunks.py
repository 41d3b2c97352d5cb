"""manager.leader: a plan is committed in consecutive chunks, in order."""
from __future__ import annotations

from manager.leader import PLAN_CHUNK, chunks
from proto.store_pb2 import StoreAction


def test_plans_are_committed_in_chunks_in_order() -> None:
    acts = [StoreAction(expected_version=i) for i in range(2 * PLAN_CHUNK + 3)]
    parts = chunks(acts)
    assert [len(p) for p in parts] == [PLAN_CHUNK, PLAN_CHUNK, 3]
    assert [a for p in parts for a in p] == acts
    assert chunks([]) == []
