"""The cluster spec's raft settings drive a real store's snapshots (`swarm init|update
--snapshot-interval / --max-snapshots`): real pysyncobj, real files, a loopback port."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from proto import model
from proto import objects_pb2 as pb
from raft import actions
from raft.replica import DEFAULT_SNAPSHOT_INTERVAL, SNAPSHOT_KEEPS_ENTRIES, \
    read_snapshot_file, retain_snapshots
from raft.store import Store
from tests.helpers import wait
from tests.test_store import FAST, free_port, service

POLL = 0.01


def covered(path: Path) -> int:
    """The raft index a snapshot file covers."""
    return int(read_snapshot_file(str(path))[0][0][1])


def old_files(raft_dir: Path) -> list[str]:
    return sorted(p.name for p in raft_dir.iterdir() if p.name.startswith("snapshot."))


def cluster(interval: int, keep: int) -> pb.Cluster:
    c = pb.Cluster(id=model.new_id())
    c.spec.annotations.name = "default"
    c.spec.raft.snapshot_interval = interval
    c.spec.raft.keep_old_snapshots = keep
    return c


@pytest.fixture
def store(tmp_path):
    s = Store("node1", str(tmp_path), f"127.0.0.1:{free_port()}", tuning=FAST)
    s.start()
    s.wait_ready(10)
    yield s
    s.close()


def test_snapshot_interval_and_old_snapshots_follow_the_cluster_spec(store, tmp_path):
    raft_dir = tmp_path / "raft"
    assert store._replica.snapshot_threshold == DEFAULT_SNAPSHOT_INTERVAL  # no cluster yet
    c = cluster(10, 2)
    store.commit([actions.create(c)])
    assert store._replica.snapshot_threshold == 10 + SNAPSHOT_KEEPS_ENTRIES
    snapshots: list[int] = []   # indices covered by the snapshots seen, in order
    for i in range(60):
        store.commit([actions.create(service(f"s{i}"))])
        if (raft_dir / "snapshot").exists():
            index = covered(raft_dir / "snapshot")
            if not snapshots or snapshots[-1] != index:
                snapshots.append(index)
    wait(lambda: len(old_files(raft_dir)) == 2, 10, "two old snapshots", interval=POLL)
    # every 10 entries, never fewer in between
    assert len(snapshots) >= 4, snapshots
    assert all(b - a == 10 for a, b in zip(snapshots, snapshots[1:])), snapshots
    assert old_files(raft_dir) == ["snapshot.1", "snapshot.2"]
    current = covered(raft_dir / "snapshot")
    first, second = covered(raft_dir / "snapshot.1"), covered(raft_dir / "snapshot.2")
    assert current > first > second and first - second >= 10, (current, first, second)
    # the journal holds what follows the last snapshot (and the entry that triggers the next)
    assert len(store._replica.journal) <= 10 + SNAPSHOT_KEEPS_ENTRIES + 1

    # --max-snapshots 0: the next snapshot leaves none of the old ones
    c = store.get("cluster", c.id)
    lowered = pb.Cluster()
    lowered.CopyFrom(c)
    lowered.spec.raft.keep_old_snapshots = 0
    lowered.spec.raft.snapshot_interval = 5
    store.commit([actions.update(lowered)])
    assert store._replica.snapshot_threshold == 5 + SNAPSHOT_KEEPS_ENTRIES
    for i in range(12):
        store.commit([actions.create(service(f"t{i}"))])
    wait(lambda: not old_files(raft_dir), 10, "old snapshots removed", interval=POLL)


def test_interval_zero_means_the_default_and_a_pinned_tuning_wins(tmp_path):
    pinned = replace(FAST, compaction_entries=7, compaction_pinned=True)
    s = Store("node1", str(tmp_path), f"127.0.0.1:{free_port()}", tuning=pinned)
    s.start()
    s.wait_ready(10)
    try:
        s.commit([actions.create(cluster(1000, 0))])
        assert s._replica.snapshot_threshold == 7
    finally:
        s.close()
    s = Store("node1", str(tmp_path / "b"), f"127.0.0.1:{free_port()}", tuning=FAST)
    s.start()
    s.wait_ready(10)
    try:
        s.commit([actions.create(cluster(0, 0))])
        assert s._replica.snapshot_threshold == DEFAULT_SNAPSHOT_INTERVAL
    finally:
        s.close()


def test_retain_snapshots_shifts_and_trims(tmp_path):
    (tmp_path / "snapshot").write_bytes(b"current")
    for n, data in ((1, b"one"), (3, b"three"), (7, b"seven")):
        (tmp_path / f"snapshot.{n}").write_bytes(data)
    (tmp_path / "snapshot.tmp").write_bytes(b"new")
    retain_snapshots(str(tmp_path), 2)
    assert old_files(tmp_path) == ["snapshot.1", "snapshot.2", "snapshot.tmp"]
    assert (tmp_path / "snapshot.1").read_bytes() == b"current"
    assert (tmp_path / "snapshot.2").read_bytes() == b"one"
    os.replace(tmp_path / "snapshot.tmp", tmp_path / "snapshot")  # as pysyncobj does
    assert (tmp_path / "snapshot.1").read_bytes() == b"current"
    retain_snapshots(str(tmp_path), 0)
    assert old_files(tmp_path) == []
    assert (tmp_path / "snapshot").read_bytes() == b"new"
