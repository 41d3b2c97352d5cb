"""Replica's own additions to pysyncobj's tick, tested without sockets or a raft thread.

- the wake-up pipe (`Replica._before_poll`): a tick that appended entries, or
  left committed entries unapplied, makes the next tick run at once instead of
  after the poll timeout;
- `Replica.leadership_established`: a new leader counts as leader only once an
  entry of its own term is committed and applied.

(The append_entries adjustments are tested in tests/test_store.py.)
"""
from __future__ import annotations

import functools
import os
from types import SimpleNamespace

import pytest

from raft.replica import Replica


@pytest.fixture
def pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    yield r, w
    os.close(r)
    os.close(w)


def _pending(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""


def test_a_tick_that_leaves_work_wakes_the_poller(pipe) -> None:
    r, w = pipe
    replica = SimpleNamespace(journal=[(b"noop", 1, 1)], raftCommitIndex=1, raftLastApplied=1,
                              _seen_index=1, _wake_w=w)
    replica._last_index = functools.partial(Replica._last_index, replica)

    Replica._before_poll(replica)  # nothing new: the tick may sleep in poll()
    assert _pending(r) == b""

    replica.journal.append((b"entry", 2, 1))  # the tick appended a proposal
    Replica._before_poll(replica)
    assert _pending(r) == b"!" and replica._seen_index == 2

    Replica._before_poll(replica)  # the same log again: no wake-up
    assert _pending(r) == b""

    replica.raftCommitIndex = 2  # committed, not yet applied
    Replica._before_poll(replica)
    Replica._before_poll(replica)
    assert _pending(r) == b"!!"

    Replica._before_poll(replica)
    Replica._drain_wake(replica, r, 0)  # the poller's callback empties the pipe
    assert _pending(r) == b""


def test_leadership_is_established_by_an_applied_entry_of_the_leaders_term() -> None:
    journal = [(b"e", 1, 1), (b"e", 2, 1), (b"noop", 3, 2)]
    replica = SimpleNamespace(journal=journal, raftCommitIndex=2, raftLastApplied=2, raftCurrentTerm=2,
                              _isLeader=lambda: True)
    established = functools.partial(Replica.leadership_established, replica)

    assert not established()  # the committed entry is of the former leader's term
    replica.raftCommitIndex = 3
    assert not established()  # its own no-op is committed, not yet applied
    replica.raftLastApplied = 3
    assert established()
    replica._isLeader = lambda: False
    assert not established()
