"""The replicated store on a damaged journal and on a full disk (real pysyncobj, real files).

- Torn last journal record: a one-node store restarts with every committed
  write; a follower of three restarts, drops it and catches up from the leader.
- A damaged record in the middle: the store refuses to start with
  CorruptJournal naming the journal file and the byte offset.
- The data directory on a full tmpfs: a write fails at once with DiskError
  naming the full file system, nothing committed is lost (the same store and
  a reopened one hold exactly the committed writes), and once the filler is
  removed the next write succeeds without a restart. The same for a full
  leader (a follower's write is told why) and a full follower (it catches
  up once it has room). A Control API write answers UNAVAILABLE with the
  disk's message.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from manager.controlapi.server import ControlServicer
from manager.logbroker import LogBroker
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb
from raft import actions
from raft import journal as journal_module
from raft.errors import CorruptJournal, DiskError
from raft.replica import RaftTuning
from raft.store import Store
from tests.diskfull import fill, small_tmpfs
from tests.helpers import wait
from tests.test_store import FAST, POLL, free_port, service

NO_SNAPSHOTS = RaftTuning(heartbeat=0.05, election_min=0.2, election_max=0.4,
                          connection_timeout=1.0, reconnect=0.2, leader_fallback=1.0,
                          compaction_entries=1_000_000, compaction_seconds=3600)


def _started(data_dir: Path, addr: str, tuning: RaftTuning = NO_SNAPSHOTS, peers=()) -> Store:
    store = Store("node1", str(data_dir), addr, peers=peers, tuning=tuning)
    store.start()
    return store


def _contents(store: Store) -> dict:
    return {s.spec.annotations.name: (s.id, s.meta.version) for s in store.list("service")}


def _offsets(path: Path) -> list[int]:
    return journal_module._parse(path.read_bytes())[1]


def test_a_torn_last_record_restarts_with_every_committed_write(tmp_path: Path, caplog) -> None:
    addr = f"127.0.0.1:{free_port()}"
    store = _started(tmp_path, addr)
    try:
        store.wait_ready(10)
        for i in range(12):
            store.commit([actions.create(service(f"svc-{i}"))])
        before = _contents(store)
    finally:
        store.close()
    path = tmp_path / "raft" / "journal"
    with open(path, "ab") as f:     # what a crash leaves of the next write
        f.write(path.read_bytes()[_offsets(path)[-1]:][:30])
    with caplog.at_level(logging.WARNING, logger="raft.journal"):
        store = _started(tmp_path, addr)
    try:
        store.wait_ready(10)
        assert _contents(store) == before
        assert any("torn last record" in r.getMessage() for r in caplog.records)
        store.commit([actions.create(service("after"))])
        assert store.by_name("service", "after") is not None
    finally:
        store.close()


def test_a_corrupt_record_in_the_middle_refuses_to_start(tmp_path: Path) -> None:
    addr = f"127.0.0.1:{free_port()}"
    store = _started(tmp_path, addr)
    try:
        store.wait_ready(10)
        for i in range(12):
            store.commit([actions.create(service(f"svc-{i}"))])
    finally:
        store.close()
    path = tmp_path / "raft" / "journal"
    offsets = _offsets(path)
    bad = offsets[len(offsets) // 2]
    data = bytearray(path.read_bytes())
    data[bad + journal_module._RECORD.size + 3] ^= 0x40
    path.write_bytes(bytes(data))
    store = Store("node1", str(tmp_path), addr, tuning=NO_SNAPSHOTS)
    with pytest.raises(CorruptJournal) as info:
        store.start()
    assert f"the raft journal {path} is corrupt at byte offset {bad}" in str(info.value)
    assert path.read_bytes() == bytes(data)
    store.close()


def test_a_follower_with_a_torn_tail_catches_up_from_the_leader(tmp_path: Path) -> None:
    addrs = [f"127.0.0.1:{free_port()}" for _ in range(3)]

    def member(i: int) -> Store:
        return Store(f"node{i}", str(tmp_path / f"n{i}"), addrs[i],
                     peers=[a for a in addrs if a != addrs[i]], tuning=FAST)

    stores = [member(i) for i in range(3)]
    try:
        for s in stores:
            s.start()
        for s in stores:
            s.wait_ready(15)
        leader = wait(lambda: next((s for s in stores if s.is_leader()), None), 10, "a leader",
                      interval=POLL)
        for i in range(10):
            leader.commit([actions.create(service(f"before-{i}"))])
        index = stores.index(next(s for s in stores if s is not leader))
        follower = stores[index]
        wait(lambda: len(follower.list("service")) == 10, 10, "the follower to have every write",
             interval=POLL)
        follower.close()
        path = tmp_path / f"n{index}" / "raft" / "journal"
        last = _offsets(path)[-1]
        with open(path, "r+b") as f:     # its last record, torn by the crash
            f.truncate(last + (path.stat().st_size - last) // 2)
        for i in range(5):
            leader.commit([actions.create(service(f"while-down-{i}"))])
        stores[index] = follower = member(index)
        follower.start()
        follower.wait_ready(15)
        wait(lambda: len(follower.list("service")) == 15, 15, "the follower to catch up",
             interval=POLL)
        assert _contents(follower) == _contents(leader)
        version = follower.commit([actions.create(service("from-the-follower"))])
        wait(lambda: all(s.version >= version for s in stores), 10, "every member to apply it",
             interval=POLL)
    finally:
        for s in stores:
            s.close()


def test_a_full_data_dir_fails_writes_clearly_and_recovers_when_space_returns(tmp_path: Path) -> None:
    mount = tmp_path / "data"
    addr = f"127.0.0.1:{free_port()}"
    big = "x" * 20_000   # one entry: more than the journal's last page has left
    with small_tmpfs(mount, 1024 * 1024):
        store = _started(mount, addr)
        try:
            store.wait_ready(10)
            for i in range(5):
                store.commit([actions.create(service(f"svc-{i}"))])
            committed = _contents(store)
            filler = fill(mount)
            for attempt in range(3):
                svc = service(f"refused-{attempt}")
                svc.spec.annotations.labels["pad"] = big
                started = time.monotonic()
                with pytest.raises(DiskError) as info:
                    store.commit([actions.create(svc)], timeout=10)
                assert time.monotonic() - started < 3, "the proposer is told at once"
                message = str(info.value)
                assert f"no space left on the file system holding {mount / 'raft'}" in message
                assert str(mount / "raft" / "journal") in message
            assert _contents(store) == committed
            filler.unlink()     # space again: the same store writes, no restart
            svc = service("after-space-returns")
            svc.spec.annotations.labels["pad"] = big
            store.commit([actions.create(svc)], timeout=10)
            committed = _contents(store)
            assert "after-space-returns" in committed and len(committed) == 6
        finally:
            store.close()
        store = _started(mount, addr)   # nothing committed lost or damaged on disk
        try:
            store.wait_ready(10)
            assert _contents(store) == committed
            store.commit([actions.create(service("after-restart"))])
        finally:
            store.close()


def test_a_full_disk_while_a_snapshot_is_written_keeps_the_store_going(tmp_path: Path, caplog) -> None:
    mount = tmp_path / "data"
    addr = f"127.0.0.1:{free_port()}"
    tuning = RaftTuning(heartbeat=0.05, election_min=0.2, election_max=0.4, connection_timeout=1.0,
                        reconnect=0.2, leader_fallback=1.0, compaction_entries=1_000_000,
                        compaction_seconds=3600, snapshot_retry=1.0)
    with small_tmpfs(mount, 1024 * 1024):
        store = _started(mount, addr, tuning)
        try:
            store.wait_ready(10)
            for i in range(40):
                svc = service(f"svc-{i}")
                svc.spec.annotations.labels["pad"] = "y" * 2000
                store.commit([actions.create(svc)])
            committed = _contents(store)
            filler = fill(mount)
            with caplog.at_level(logging.WARNING):
                with pytest.raises(DiskError, match="no raft snapshot .* no space left on the "
                                                    "file system holding"):
                    store.write_snapshot(timeout=1.5)
            failed_dumps = [r for r in caplog.records if "Failed to store full dump" in r.getMessage()]
            assert len(failed_dumps) <= 2, "attempts wait snapshot_retry after a failure"
            assert not (mount / "raft" / "snapshot.tmp").exists()
            filler.unlink()
            store.write_snapshot(timeout=10)
            store.commit([actions.create(service("after-snapshot"))])
            committed = _contents(store)
        finally:
            store.close()
        store = _started(mount, addr)
        try:
            store.wait_ready(10)
            assert _contents(store) == committed
        finally:
            store.close()


@contextlib.contextmanager
def three_on_tmpfs(tmp_path: Path, size: int) -> Iterator[tuple[list[Store], list[Path], Store]]:
    """Three raft stores, each on a tmpfs of `size` bytes: (stores, their mounts, the
    leader), all closed and unmounted afterwards."""
    addrs = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    mounts = [tmp_path / f"n{i}" for i in range(3)]
    with small_tmpfs(mounts[0], size), small_tmpfs(mounts[1], size), \
            small_tmpfs(mounts[2], size):
        stores = [Store(f"node{i}", str(mounts[i]), addrs[i],
                        peers=[a for a in addrs if a != addrs[i]], tuning=FAST) for i in range(3)]
        try:
            for s in stores:
                s.start()
            for s in stores:
                s.wait_ready(15)
            leader = wait(lambda: next((s for s in stores if s.is_leader()), None), 10,
                          "a leader", interval=POLL)
            yield stores, mounts, leader
        finally:
            for s in stores:
                s.close()


def test_a_follower_is_told_when_the_leaders_disk_is_full(tmp_path: Path) -> None:
    """A write proposed on a follower fails at once with the leader's reason, and
    the cluster writes again once the leader has room."""
    big = "x" * 20_000
    with three_on_tmpfs(tmp_path, 1024 * 1024) as (stores, mounts, leader):
        follower = next(s for s in stores if s is not leader)
        follower.commit([actions.create(service("before"))])
        filler = fill(mounts[stores.index(leader)])
        svc = service("refused")
        svc.spec.annotations.labels["pad"] = big
        started = time.monotonic()
        with pytest.raises(DiskError, match="the raft leader cannot write its journal"):
            follower.commit([actions.create(svc)], timeout=10)
        assert time.monotonic() - started < 3, "the follower is told at once"
        filler.unlink()
        version = follower.commit([actions.create(svc)], timeout=10)
        wait(lambda: all(s.version >= version for s in stores), 10, "every member to apply it",
             interval=POLL)
        assert all(s.by_name("service", "refused") is not None for s in stores)


def test_a_follower_with_a_full_disk_catches_up_when_space_returns(tmp_path: Path) -> None:
    big = "x" * 20_000
    with three_on_tmpfs(tmp_path, 1024 * 1024) as (stores, mounts, leader):
        full = next(s for s in stores if s is not leader)
        leader.commit([actions.create(service("before"))])
        wait(lambda: full.by_name("service", "before") is not None, 10, "replication",
             interval=POLL)
        filler = fill(mounts[stores.index(full)])
        for i in range(3):     # the other two hold a majority: writes go on
            svc = service(f"while-full-{i}")
            svc.spec.annotations.labels["pad"] = big
            leader.commit([actions.create(svc)], timeout=10)
        assert full.by_name("service", "while-full-0") is None
        filler.unlink()
        wait(lambda: _contents(full) == _contents(leader), 15,
             "the follower to catch up once it has room", interval=POLL)
        # what it wrote around the failures is one valid journal without gaps
        indices = [e[1] for e in journal_module.read_entries(
            str(mounts[stores.index(full)] / "raft" / "journal"))]
        assert indices == list(range(indices[0], indices[0] + len(indices)))


class _Aborted(Exception):
    pass


class _Context:
    """What a unary Control API call does with a refusal: abort with a status and message."""

    def __init__(self) -> None:
        self.status: tuple = ()

    async def abort(self, code: grpc.StatusCode, message: str) -> None:
        self.status = (code, message)
        raise _Aborted(message)


def test_a_control_api_write_on_a_full_manager_says_so(tmp_path: Path) -> None:
    """`swarm secret create` on a manager whose disk is full: UNAVAILABLE with the
    disk's message (not "the swarm does not have a leader"), nothing created."""
    mount = tmp_path / "data"
    with small_tmpfs(mount, 1024 * 1024):
        store = _started(mount, f"127.0.0.1:{free_port()}")
        try:
            store.wait_ready(10)
            control = ControlServicer(store, "node1", str(mount), LogBroker("node1"), lambda: "")
            spec = pb.SecretSpec(data=b"s" * 20_000)
            spec.annotations.name = "big"
            filler = fill(mount)
            context = _Context()
            with pytest.raises(_Aborted):
                asyncio.run(control.CreateSecret(cpb.CreateSecretRequest(spec=spec), context))
            code, message = context.status
            assert code == grpc.StatusCode.UNAVAILABLE
            assert message.startswith("The manager could not record the change: write failed: "
                                      "cannot append an entry to ")
            assert f"no space left on the file system holding {mount / 'raft'}" in message
            assert store.list("secret") == []
            filler.unlink()
            asyncio.run(control.CreateSecret(cpb.CreateSecretRequest(spec=spec), _Context()))
            assert [s.spec.annotations.name for s in store.list("secret")] == ["big"]
        finally:
            store.close()


def test_no_vote_is_cast_that_a_full_disk_cannot_keep(tmp_path: Path) -> None:
    """The leader of three dies while a follower's disk is full: that follower can
    neither vote nor stand (its term and vote would not survive a restart), so no
    leader is elected by two; once it has room, one is."""
    with three_on_tmpfs(tmp_path, 512 * 1024) as (stores, mounts, leader):
        leader.commit([actions.create(service("before"))])
        rest = [s for s in stores if s is not leader]
        wait(lambda: all(s.by_name("service", "before") for s in rest), 10, "replication",
             interval=POLL)
        full, other = rest
        filler = fill(mounts[stores.index(full)])
        terms = (full.status()["term"], other.status()["term"])
        leader.close()
        deadline = time.monotonic() + 3.0     # several election timeouts (FAST: <= 0.4 s)
        while time.monotonic() < deadline:
            assert not any(s.is_leader() for s in rest), "a leader without a durable vote"
            time.sleep(POLL)
        meta = (mounts[stores.index(full)] / "raft" / "journal.meta").read_text()
        assert f'"term": {terms[0]}' in meta    # its term on disk never moved
        filler.unlink()
        new = wait(lambda: next((s for s in rest if s.is_leader()), None), 15,
                   "a leader once the disk has room", interval=POLL)
        assert new.by_name("service", "before") is not None
        new.commit([actions.create(service("after"))])


def test_a_term_that_cannot_be_written_is_not_taken(tmp_path: Path) -> None:
    """pysyncobj would set a new term and vote in memory before the journal fails
    to write them; the replica writes first, so memory keeps the durable ones."""
    mount = tmp_path / "data"
    with small_tmpfs(mount, 256 * 1024):
        store = _started(mount, f"127.0.0.1:{free_port()}")
        try:
            store.wait_ready(10)
            replica = store._replica
            assert replica is not None
            term = replica.raftCurrentTerm
            filler = fill(mount)
            with pytest.raises(DiskError, match="raft term and vote"):
                replica._SyncObj__setCurrentTerm(term + 1, "someone-else:1")
            assert replica.raftCurrentTerm == term
            assert replica.journal.getCurrentTerm() == term
            filler.unlink()
            store.commit([actions.create(service("still-leader"))])
        finally:
            store.close()
