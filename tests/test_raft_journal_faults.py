"""The raft journal file under damage and a full disk (raft/journal.py), on real files.

- A torn last record (a crash in the middle of its write, never acknowledged)
  is cut off on open, and the cut is logged.
- A damaged record with intact records after it (a bad checksum, a bad
  length, a zeroed page in the middle) refuses to open: CorruptJournal names
  the file and the damaged record's byte offset, and the file is left as it
  was; the offline reader refuses it too.
- A write that fails (a full tmpfs) raises DiskError naming the file and the
  full file system, leaves the file a valid journal without any part of the
  failed record, and the next write after space returns succeeds.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from raft import journal as journal_module
from raft.errors import CorruptJournal, DiskError
from raft.journal import DiskJournal, read_entries
from raft.recovery import RecoveryError, read_local_state
from tests.diskfull import fill, small_tmpfs


def _write(path: Path, count: int, size: int = 40) -> list[tuple]:
    j = DiskJournal(str(path))
    for idx in range(1, count + 1):
        j.add(bytes([idx % 256]) * size, idx, 1 + idx // 5)
    entries = list(j)
    j._destroy()
    return entries


def _offsets(path: Path) -> list[int]:
    """Where each record starts (the journal's own parser, read-only)."""
    return journal_module._parse(path.read_bytes())[1]


def _reopen(path: Path) -> list[tuple]:
    j = DiskJournal(str(path))
    try:
        return list(j)
    finally:
        j._destroy()


# ------------------------------------------------------------ torn tail ----

@pytest.mark.parametrize("cut", [3, 20, 30, 50], ids=["in-header", "end-of-header", "in-body",
                                                       "one-byte-short"])
def test_a_torn_last_record_is_cut_off_and_logged(tmp_path: Path, caplog, cut: int) -> None:
    path = tmp_path / "journal"
    entries = _write(path, 10)
    last = _offsets(path)[-1]
    size = path.stat().st_size
    keep = last + cut if cut < 50 else size - 1
    os.truncate(path, keep)
    with caplog.at_level(logging.WARNING, logger="raft.journal"):
        assert _reopen(path) == entries[:-1]
    assert path.stat().st_size == last
    assert any("torn last record" in r.getMessage() and str(path) in r.getMessage()
               and f"byte offset {last}" in r.getMessage() and "raft index 9" in r.getMessage()
               for r in caplog.records)
    j = DiskJournal(str(path))   # and it appends where the good records end
    j.add(b"again", 10, 3)
    j._destroy()
    assert [e[1] for e in _reopen(path)] == list(range(1, 11))


def test_a_last_record_with_a_bad_checksum_is_a_torn_tail(tmp_path: Path) -> None:
    """The last record's bytes reached the disk only in part (its length did)."""
    path = tmp_path / "journal"
    entries = _write(path, 6)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    assert _reopen(path) == entries[:-1]


def test_a_zero_filled_tail_is_a_torn_tail(tmp_path: Path) -> None:
    """A crash after the file system grew the file but before the data landed."""
    path = tmp_path / "journal"
    entries = _write(path, 6)
    with open(path, "ab") as f:
        f.write(b"\0" * 300)
    assert _reopen(path) == entries
    assert read_entries(str(path)) == entries


# ---------------------------------------------------- damage in the middle ----

def _refused(path: Path, offset: int) -> CorruptJournal:
    before = path.read_bytes()
    with pytest.raises(CorruptJournal) as info:
        DiskJournal(str(path))
    assert path.read_bytes() == before, "a refused journal must be left as it was"
    err = info.value
    assert err.path == str(path) and err.offset == offset
    assert str(path) in str(err) and f"byte offset {offset}" in str(err)
    with pytest.raises(CorruptJournal, match=f"byte offset {offset}"):
        read_entries(str(path))
    return err


def test_a_bad_checksum_in_the_middle_refuses_to_open(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    _write(path, 10)
    offsets = _offsets(path)
    data = bytearray(path.read_bytes())
    data[offsets[4] + journal_module._RECORD.size + 7] ^= 0x01   # one bit of entry 5's body
    path.write_bytes(bytes(data))
    err = _refused(path, offsets[4])
    assert "fails its checksum" in str(err) and "after raft index 4" in str(err)
    assert "raft index 6" in str(err) and f"byte offset {offsets[5]}" in str(err)


def test_a_bad_length_in_the_middle_refuses_to_open(tmp_path: Path) -> None:
    """A flipped length would otherwise read as a record running past the end: torn."""
    path = tmp_path / "journal"
    _write(path, 10)
    offsets = _offsets(path)
    data = bytearray(path.read_bytes())
    data[offsets[3] + 2] = 0x7F                                    # length of entry 4: ~8 MB
    path.write_bytes(bytes(data))
    err = _refused(path, offsets[3])
    assert "more than the file holds" in str(err)


def test_a_zeroed_page_in_the_middle_refuses_to_open(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    _write(path, 200, size=60)
    offsets = _offsets(path)
    data = bytearray(path.read_bytes())
    data[4096:8192] = b"\0" * 4096
    path.write_bytes(bytes(data))
    first_bad = next(o for o in offsets if o + journal_module._RECORD.size + 60 > 4096)
    _refused(path, first_bad)


def test_a_damaged_first_record_refuses_to_open(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    _write(path, 5)
    offsets = _offsets(path)
    data = bytearray(path.read_bytes())
    data[offsets[0] + 4] ^= 0xFF                                   # entry 1's checksum
    path.write_bytes(bytes(data))
    _refused(path, offsets[0])


def test_a_file_that_is_no_journal_refuses_to_open(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    path.write_bytes(b"not a journal at all")
    _refused(path, 0)


def test_offline_recovery_refuses_a_corrupt_journal(tmp_path: Path) -> None:
    """`swarm init --force-new-cluster` reads the journal offline: it refuses too."""
    raft_dir = tmp_path / "raft"
    raft_dir.mkdir()
    path = raft_dir / "journal"
    _write(path, 10)
    offsets = _offsets(path)
    data = bytearray(path.read_bytes())
    data[offsets[2] + journal_module._RECORD.size] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(RecoveryError, match=f"{path} is corrupt at byte offset {offsets[2]}"):
        read_local_state(tmp_path)


# --------------------------------------------------------------- disk full ----

def test_an_append_on_a_full_disk_fails_clearly_and_leaves_the_journal_valid(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    with small_tmpfs(mount, 256 * 1024):
        path = mount / "journal"
        j = DiskJournal(str(path))
        try:
            for idx in range(1, 6):
                j.add(b"k" * 1000, idx, 1)
            j.setCurrentTerm(1, "a")
            good_size = path.stat().st_size
            filler = fill(mount)
            big = b"x" * 20_000    # more than the slack of the journal's last page
            for _ in range(3):     # the failure repeats, nothing is left behind
                with pytest.raises(DiskError) as info:
                    j.add(big, 6, 1)
                assert path.stat().st_size == good_size
            message = str(info.value)
            assert str(path) in message and f"no space left on the file system holding {mount}" in message
            assert info.value.path == str(path)
            assert [e[1] for e in j] == [1, 2, 3, 4, 5]
            assert [e[1] for e in read_entries(str(path))] == [1, 2, 3, 4, 5]
            # term and vote: the failure is a DiskError, the old meta file is kept
            with pytest.raises(DiskError, match="raft term and vote"):
                j.setCurrentTerm(2, "b")
            assert not (mount / "journal.meta.tmp").exists()
            assert (mount / "journal.meta").read_text() == '{"term": 1, "voted_for": "a"}'
            assert (j.getCurrentTerm(), j.getVotedForNodeId()) == (1, "a")
            filler.unlink()        # room again: the same journal goes on, no reopen
            j.add(big, 6, 1)
            j.add(b"after", 7, 1)
            j.setCurrentTerm(2, "b")
        finally:
            j._destroy()
        back = _reopen(path)
        assert [e[1] for e in back] == [1, 2, 3, 4, 5, 6, 7] and back[5][0] == big
        assert DiskJournal(str(path)).getCurrentTerm() == 2


def test_a_compaction_on_a_full_disk_keeps_the_old_journal(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    with small_tmpfs(mount, 128 * 1024):
        path = mount / "journal"
        j = DiskJournal(str(path))
        try:
            for idx in range(1, 21):
                j.add(bytes([idx]) * 2000, idx, 1)
            filler = fill(mount)
            with pytest.raises(DiskError, match="compact the raft journal"):
                j.deleteEntriesTo(5)
            assert sorted(os.listdir(mount)) == ["filler", "journal"]
            assert [e[1] for e in j] == list(range(1, 21))
            filler.unlink()
            j.add(b"z" * 100, 21, 1)
            j.deleteEntriesTo(5)
        finally:
            j._destroy()
        assert [e[1] for e in _reopen(path)] == list(range(6, 22))


def test_a_new_journal_on_a_full_disk_says_so(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    with small_tmpfs(mount, 64 * 1024):
        fill(mount)
        with pytest.raises(DiskError, match=f"cannot prepare {mount / 'journal'}: no space left "
                                            f"on the file system holding {mount}"):
            DiskJournal(str(mount / "journal"))
