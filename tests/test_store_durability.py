"""Durability of the store: no acknowledged write is lost to kill -9.

A child process commits writes in a loop and prints each ID once `commit`
returned; the test kills it with SIGKILL mid-stream (several times, on the
same data directory), then opens a store on that directory and checks that
every acknowledged write is there.  With a small compaction threshold the
kills also land around raft snapshots and journal compactions.
"""
from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raft.replica import RaftTuning
from raft.store import Store
from tests.test_store import free_port

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import sys
from proto import model, objects_pb2 as pb
from raft import actions
from raft.replica import RaftTuning
from raft.store import Store

data_dir, addr, compaction, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
tuning = RaftTuning(election_min=0.2, election_max=0.4, heartbeat=0.05, connection_timeout=1.0,
                    compaction_entries=compaction)
store = Store("child", data_dir, addr, encrypt=lambda b: b[::-1], decrypt=lambda b: b[::-1], tuning=tuning)
store.start()
store.wait_ready(10)
print("ready", store.version, len(store.list("task")), flush=True)
while True:
    tasks = [pb.Task(id=model.new_id()) for _ in range(batch)]
    store.commit([actions.create(t) for t in tasks])
    print(" ".join(t.id for t in tasks), flush=True)
"""


def run_and_kill(data_dir: Path, addr: str, compaction: int, batch: int, acks: int) -> tuple[int, list[str]]:
    """Starts the child, kills it after `acks` acknowledged commits; returns (tasks at start, acked IDs)."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), addr, str(compaction), str(batch)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    acked: list[str] = []
    at_start = -1
    buffer = b""
    deadline = time.monotonic() + 20
    try:
        while len(acked) < acks * batch:
            if time.monotonic() > deadline:
                raise AssertionError(f"child too slow: {len(acked)} acks; stderr: {child.stderr.read1(65536)!r}")
            ready, _, _ = select.select([child.stdout], [], [], 0.5)
            if not ready:
                assert child.poll() is None, child.stderr.read().decode()
                continue
            chunk = os.read(child.stdout.fileno(), 65536)
            assert chunk, child.stderr.read().decode()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                words = line.decode().split()
                if words[0] == "ready":
                    at_start = int(words[2])
                else:
                    acked.extend(words)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        # Lines the child printed before it died were acknowledged too.
        *complete, _partial = (buffer + child.stdout.read()).split(b"\n")
        for line in complete:  # a whole line: that commit returned
            words = line.decode().split()
            if words and words[0] != "ready":
                acked.extend(words)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()
    return at_start, acked


def check_all_present(data_dir: Path, addr: str, acked: list[str]) -> None:
    tuning = RaftTuning(election_min=0.2, election_max=0.4, heartbeat=0.05, connection_timeout=1.0)
    store = Store("check", str(data_dir), addr, encrypt=lambda b: b[::-1], decrypt=lambda b: b[::-1],
                  tuning=tuning)
    store.start()
    try:
        store.wait_ready(10)
        present = {t.id for t in store.list("task")}
        missing = [i for i in acked if i not in present]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged writes lost, e.g. {missing[:3]}"
    finally:
        store.close()


@pytest.mark.parametrize("compaction,batch", [(100000, 1), (15, 3)], ids=["journal-only", "with-snapshots"])
def test_kill_9_loses_no_acknowledged_write(tmp_path, compaction, batch):
    rng = random.Random(7)
    addr = f"127.0.0.1:{free_port()}"
    acked_total: list[str] = []
    for _ in range(3):
        at_start, acked = run_and_kill(tmp_path, addr, compaction, batch, acks=rng.randint(40, 90))
        assert at_start >= len(acked_total)  # the restarted child saw every earlier write
        acked_total.extend(acked)
    if compaction < 100000:
        assert (tmp_path / "raft" / "snapshot").exists()
    check_all_present(tmp_path, addr, acked_total)


def test_journal_survives_torn_tail_and_unfinished_compaction(tmp_path):
    from raft.journal import DiskJournal

    path = str(tmp_path / "journal")
    j = DiskJournal(path)
    for idx in range(1, 11):
        j.add(b"cmd%d" % idx, idx, 1)
    j.setCurrentTerm(3, "127.0.0.1:1")
    j._destroy()
    with open(path, "ab") as f:  # a record cut short by a crash
        f.write(b"\x40\x00\x00\x00partial")
    j = DiskJournal(path)
    assert [e[1] for e in j] == list(range(1, 11))
    assert j.getCurrentTerm() == 3 and j.getVotedForNodeId() == "127.0.0.1:1"
    # A snapshot covering entries up to 6 was written, the trim was not.
    j.align_to_snapshot((b"cmd5", 5, 1), (b"cmd6", 6, 1))
    assert [e[1] for e in j] == list(range(5, 11))
    j.deleteEntriesFrom(3)  # a new leader overwrote entries 8..10
    j.add(b"other8", 8, 2)
    j._destroy()
    j = DiskJournal(path)
    assert [(e[1], e[2]) for e in j] == [(5, 1), (6, 1), (7, 1), (8, 2)]
    j._destroy()
