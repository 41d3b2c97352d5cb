"""The store's event history (raft/history.py) and watches that replay from it.

EventHistory is tested alone; `Store.watch_async(after_version=..., since=...)`
on a real one-node store (pysyncobj on loopback, as tests/test_store.py).
"""
from __future__ import annotations

import asyncio

import pytest

from proto import model
from proto import objects_pb2 as pb
from proto import watch_pb2 as wpb
from raft import actions
from raft.errors import HistoryGone
from raft.history import EventHistory
from raft.state import StoreState
from raft.store import Store
from manager.watchapi import consecutive
from proto import store_pb2
from tests.test_store import FAST, free_port, service


def events(n: int, version: int) -> list:
    return [wpb.WatchEvent(version=version) for _ in range(n)]


def test_history_replays_after_a_version_and_since_a_time() -> None:
    h = EventHistory(max_events=10)
    for v in range(1, 6):
        h.record(v, events(1, v), committed_at=100.0 + v)
    assert [c.version for c in h.after(0)] == [1, 2, 3, 4, 5]
    assert [c.version for c in h.after(3)] == [4, 5]
    assert h.after(5) == [] and h.after(9) == []
    assert [c.version for c in h.since(103.0)] == [3, 4, 5]
    h.record(6, [], committed_at=200.0)          # a transaction without events keeps nothing
    assert len(h) == 5


def test_history_is_bounded_and_refuses_what_it_dropped() -> None:
    h = EventHistory(max_events=4)
    for v in range(1, 5):
        h.record(v, events(2, v), committed_at=float(v))
    # 8 events recorded, 4 kept: versions 3 and 4; after 2 is still whole
    assert [c.version for c in h.after(2)] == [3, 4]
    with pytest.raises(HistoryGone, match="version 2 on"):
        h.after(1)
    assert h.floor == 2
    # one transaction larger than the bound is kept whole (the newest is never dropped)
    h.record(5, events(9, 5), committed_at=5.0)
    assert [c.version for c in h.after(4)] == [5]


def test_history_after_a_snapshot_starts_at_its_version() -> None:
    h = EventHistory()
    h.record(1, events(1, 1), committed_at=1.0)
    h.reset(40)
    assert h.after(40) == [] and len(h) == 0
    with pytest.raises(HistoryGone):
        h.after(39)


def test_commit_time_is_the_transactions_on_every_event() -> None:
    state = StoreState()
    txn = store_pb2.StoreTransaction(proposed_at=1_796_497_200.5)
    txn.actions.extend([actions.create(service("a")), actions.create(service("b"))])
    applied = state.apply(txn)
    assert {model.ts_seconds(e.committed_at) for e in applied.events} == {1_796_497_200.5}


@pytest.fixture
def store(tmp_path):
    s = Store("node1", str(tmp_path), f"127.0.0.1:{free_port()}", tuning=FAST, history_events=3)
    s.start()
    s.wait_ready(10)
    yield s
    s.close()


async def take(stream, n: int) -> list:
    batches = []
    async for batch in stream:
        batches.append(batch)
        if len(batches) == n:
            break
    stream.close()
    return batches


def test_watch_replays_then_goes_live_without_gap_or_repeat(store: Store) -> None:
    for name in ("a", "b", "c"):
        store.commit([actions.create(service(name))])

    async def main() -> tuple[list, list, int]:
        stream = store.watch_async(after_version=1)
        await store.acommit([actions.create(service("d"))])
        resumed = await take(stream, 3)
        recent = store.watch_async(since=0.0)    # every kept transaction: the last 3
        kept = await take(recent, 3)
        return resumed, kept, stream.view.version

    resumed, kept, view_version = asyncio.run(main())
    assert view_version == 3
    assert [(b[0].version, b[0].object.service.spec.annotations.name) for b in resumed] == \
        [(2, "b"), (3, "c"), (4, "d")]
    assert [b[0].version for b in kept] == [2, 3, 4]
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(HistoryGone):        # version 1 is no longer kept
            store.watch_async(loop, after_version=0)
    finally:
        loop.close()
    assert isinstance(kept[0][0].object.service, pb.Service)


def test_a_restarted_store_replays_what_its_journal_holds(tmp_path) -> None:
    addr = f"127.0.0.1:{free_port()}"
    first = Store("node1", str(tmp_path), addr, tuning=FAST)
    first.start()
    first.wait_ready(10)
    for name in ("a", "b", "c"):
        first.commit([actions.create(service(name))])
    first.close()
    again = Store("node1", str(tmp_path), addr, tuning=FAST)
    again.start()
    again.wait_ready(10)
    try:
        async def main() -> list:
            return await take(again.watch_async(after_version=1), 2)
        assert [b[0].object.service.spec.annotations.name for b in asyncio.run(main())] == \
            ["b", "c"]
    finally:
        again.close()


def test_watch_api_tells_a_transaction_from_a_snapshot_install() -> None:
    assert consecutive(events(2, 8), 8)
    assert not consecutive(events(1, 9), 8)          # a transaction was skipped
    assert not consecutive([wpb.WatchEvent(version=3), wpb.WatchEvent(version=8)], 8)
    assert not consecutive([], 8)


def test_a_history_of_zero_events_is_off_and_every_resume_is_a_gap() -> None:
    h = EventHistory(max_events=0)
    h.record(1, events(2, 1), committed_at=1.0)
    h.record(2, events(1, 2), committed_at=2.0)
    assert len(h) == 0 and h.since(0.0) == []
    with pytest.raises(HistoryGone, match="keeps no watch history"):
        h.after(1)
    assert h.after(2) == []      # a watcher that saw everything misses nothing
    with pytest.raises(ValueError):
        EventHistory(max_events=-1)


def test_a_store_without_history_answers_a_resume_as_a_gap(tmp_path) -> None:
    s = Store("node1", str(tmp_path), f"127.0.0.1:{free_port()}", tuning=FAST, history_events=0)
    s.start()
    s.wait_ready(10)
    try:
        for name in ("a", "b"):
            s.commit([actions.create(service(name))])
        loop = asyncio.new_event_loop()
        try:
            # the Watch API turns HistoryGone into OUT_OF_RANGE, as for a gap
            with pytest.raises(HistoryGone, match="keeps no watch history"):
                s.watch_async(loop, after_version=1)
            recent = s.watch_async(loop, since=0.0)
            assert recent.pending() == 0 and recent.view.version == 2   # nothing to replay
            recent.close()
        finally:
            loop.close()
    finally:
        s.close()
