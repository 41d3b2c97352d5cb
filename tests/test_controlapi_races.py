"""Control API answers when two requests race for one name (found by the chaos soak).

A manager checks a new object's name against its own copy of the store, then
commits; when another request for the same name committed in between (its
entry was in the raft log, not yet applied here), the store's own check
refuses the transaction. That refusal must reach the client as ALREADY_EXISTS,
as Docker answers, not as FAILED_PRECONDITION "update out of sequence".
"""
from __future__ import annotations

from typing import Sequence

import grpc

from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb
from proto import store_pb2
from raft import actions
from raft.errors import Conflict, NameConflict
from raft.state import StoreState
from tests.controlfuzz import Control, seeded
from tests.memstore import MemoryStore


class RacingStore(MemoryStore):
    """Commits a config of the same name just before the request's own transaction."""

    def commit(self, acts: Sequence[store_pb2.StoreAction], timeout: float = 5.0) -> int:
        for action in acts:
            if action.kind == store_pb2.StoreAction.CREATE and action.object.HasField("config"):
                rival = pb.Config(id=model.new_id())
                rival.spec.CopyFrom(action.object.config.spec)
                super().commit([actions.create(rival)])
        return super().commit(acts, timeout)


def test_a_name_taken_between_check_and_commit_is_already_exists() -> None:
    dump, data_dir = seeded()
    control = Control(RacingStore(StoreState.load(dump)), data_dir)
    spec = pb.ConfigSpec(data=b"x")
    spec.annotations.name = "raced"
    answer = control.call("CreateConfig", cpb.CreateConfigRequest(spec=spec))
    assert answer.code == grpc.StatusCode.ALREADY_EXISTS, (answer.code, answer.message)
    assert 'config name "raced" is already in use' in answer.message
    # only the request that committed first holds the name
    assert [c.spec.annotations.name for c in control.store.list("config")].count("raced") == 1


def test_the_store_says_name_conflict_apart_from_other_conflicts() -> None:
    state = StoreState()
    first = pb.Config(id=model.new_id())
    first.spec.annotations.name = "one"
    second = pb.Config(id=model.new_id())
    second.spec.CopyFrom(first.spec)
    txn = store_pb2.StoreTransaction(proposer="t", proposed_at=1.0)
    txn.actions.append(actions.create(first))
    state.apply(txn)
    again = store_pb2.StoreTransaction(proposer="t", proposed_at=2.0)
    again.actions.append(actions.create(second))
    try:
        state.apply(again)
    except NameConflict as exc:
        assert 'config name "one"' in str(exc)
    else:
        raise AssertionError("a second object of the same name was stored")
    stale = store_pb2.StoreTransaction(proposer="t", proposed_at=3.0)
    stale.actions.append(actions.update(first, expected_version=999))
    try:
        state.apply(stale)
    except NameConflict:
        raise AssertionError("a version conflict was taken for a name conflict") from None
    except Conflict:
        pass
