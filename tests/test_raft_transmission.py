"""raft.transmission: pysyncobj's pieces of a big entry, labelled as its leader labels them."""
from __future__ import annotations

import pickle

import pytest

from raft.transmission import TransmissionMender

BATCH = 1024


def leader_pieces(entry: tuple, batch: int = BATCH) -> list[dict]:
    """The pieces pysyncobj's leader sends for one big entry, with its labels: "finish"
    once a piece reaches the end of the entry's *command* (not of the pickled entry)."""
    data = pickle.dumps(entry, 2)
    pieces = []
    for pos in range(0, len(data), batch):
        if pos == 0:
            kind = "start"
        elif pos + batch >= len(entry[0]):
            kind = "finish"
        else:
            kind = "process"
        pieces.append({"type": "append_entries", "transmission": kind,
                       "data": data[pos:pos + batch], "term": 3})
    return pieces


def follower_joins(pieces: list[dict], mender: TransmissionMender | None) -> list[tuple]:
    """What pysyncobj's follower unpickles: it joins pieces and loads at each "finish"."""
    received, loaded = b"", []
    for piece in pieces:
        if mender is not None:
            piece = mender.mend(piece)
        kind = piece["transmission"]
        received = piece["data"] if kind == "start" else received + piece["data"]
        if kind == "finish":
            loaded.append(pickle.loads(received))
            received = b""
    return loaded


def mislabelled_command() -> bytes:
    """A command whose pickled entry has its last piece starting past the command's end."""
    for size in range(3 * BATCH, 4 * BATCH):
        command = b"x" * size
        pieces = leader_pieces((command, 7, 3))
        if [p["transmission"] for p in pieces].count("finish") > 1:
            return command
    raise AssertionError("no size shows the mislabelling")


def test_the_leader_labels_a_piece_finish_too_early() -> None:
    entry = (mislabelled_command(), 7, 3)
    with pytest.raises((pickle.UnpicklingError, EOFError)):
        follower_joins(leader_pieces(entry), None)


def test_mended_pieces_give_the_whole_entry() -> None:
    entry = (mislabelled_command(), 7, 3)
    assert follower_joins(leader_pieces(entry), TransmissionMender(BATCH)) == [entry]


@pytest.mark.parametrize("size", [BATCH, BATCH + 1, 2 * BATCH - 40, 5 * BATCH, 5 * BATCH + 999])
def test_correctly_labelled_entries_pass_unchanged(size: int) -> None:
    entry = (bytes(range(256)) * (size // 256) + b"y" * (size % 256), 12, 4)
    pieces = leader_pieces(entry)
    mender = TransmissionMender(BATCH)
    assert follower_joins(pieces, mender) == [entry]


def test_a_new_start_forgets_an_unfinished_entry() -> None:
    first = leader_pieces((b"a" * 3 * BATCH, 1, 1))
    second = (b"b" * 2 * BATCH, 2, 1)
    mender = TransmissionMender(BATCH)
    assert follower_joins(first[:2] + leader_pieces(second), mender) == [second]


def test_other_messages_are_untouched() -> None:
    mender = TransmissionMender(BATCH)
    message = {"type": "append_entries", "entries": [], "term": 1}
    assert mender.mend(message) is message
    with pytest.raises(ValueError):
        TransmissionMender(0)

