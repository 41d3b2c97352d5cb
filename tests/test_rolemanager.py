"""The role manager's order of a demotion, against an in-memory store (no raft, no timers)."""
from __future__ import annotations

import builtins
from typing import Sequence

from manager.rolemanager import RoleManager
from proto import objects_pb2 as pb
from proto import store_pb2
from raft import errors
from tests.test_controlapi_rules import manager


class FakeStore:
    """Just what the role manager uses: nodes, raft members, commits, in call order."""

    def __init__(self, nodes: list[pb.Node], members: list[str]) -> None:
        self.nodes = {n.id: n for n in nodes}
        self.raft = list(members)
        self.calls: list[str] = []
        self.conflicts = 0  # commits to refuse with a version conflict first

    def list(self, kind: str) -> list:
        assert kind == "node"
        return list(self.nodes.values())

    def members(self) -> builtins.list[str]:
        return list(self.raft)

    def remove_member(self, raft_addr: str, timeout: float = 10.0) -> None:
        self.calls.append(f"remove {raft_addr}")
        self.raft.remove(raft_addr)

    async def acommit(self, acts: Sequence[store_pb2.StoreAction], timeout: float = 5.0) -> int:
        if self.conflicts:
            self.conflicts -= 1
            raise errors.Conflict("node changed meanwhile")
        for act in acts:
            node = act.object.node
            self.calls.append(f"record {node.id} {pb.NodeRole.Name(node.role)}")
            self.nodes[node.id] = node
        return 1


def group() -> list[pb.Node]:
    return [manager("m1", leader=True), manager("m2", demoting=True), manager("m3")]


async def test_raft_removal_comes_before_the_store_update(tmp_path) -> None:
    store = FakeStore(group(), ["m1:2378", "m2:2378", "m3:2378"])
    roles = RoleManager(store, "m1", str(tmp_path))  # type: ignore[arg-type]
    assert await roles.check() is False      # nothing left pending
    assert store.calls == ["remove m2:2378", "record m2 WORKER"]
    assert not store.nodes["m2"].HasField("manager_status")


async def test_a_new_leader_finishes_a_demotion_already_out_of_raft(tmp_path) -> None:
    store = FakeStore(group(), ["m1:2378", "m3:2378"])
    roles = RoleManager(store, "m3", str(tmp_path))  # type: ignore[arg-type]
    assert await roles.check() is False
    assert store.calls == ["record m2 WORKER"]


async def test_a_conflicting_store_update_is_retried_on_a_fresh_read(tmp_path) -> None:
    store = FakeStore(group(), ["m1:2378", "m2:2378", "m3:2378"])
    store.conflicts = 1
    roles = RoleManager(store, "m1", str(tmp_path))  # type: ignore[arg-type]
    assert await roles.check() is True       # step 2 still pending after the conflict
    assert await roles.check() is False
    assert store.calls == ["remove m2:2378", "record m2 WORKER"]
