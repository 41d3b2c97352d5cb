"""pysyncobj underneath the store: its configuration, tick thread, journal and snapshots.

`Replica` is the one `SyncObj` of a store.  It owns:

- the configuration (tuned for commit latency: entries are sent as soon as
  they are proposed, not batched on a timer; see `RaftTuning`);
- the tick thread (pysyncobj's `autoTick` is off, so the thread's lifetime is
  the store's, not that of whichever thread built it);
- the journal: `raft.journal.DiskJournal` instead of pysyncobj's unsynced
  mmap journal; when it cannot append a proposal (disk full), the proposer
  is told at once (`DISK_FAILED`, the journal's message) instead of waiting
  for its timeout, and the failures are logged without flooding the log;
- snapshots (pysyncobj's "full dump"): the store state is dumped through the
  store's callbacks, so it is encrypted like every raft payload;
- the single replicated method, `apply_payload`, whose argument is one
  encrypted, serialised StoreTransaction.

Transactions, versions and watches live in raft/store.py and raft/state.py.
Each way this module adapts pysyncobj is described in design/internals.md
("pysyncobj underneath the store"); tests/test_raft_pysyncobj_contract.py
checks every pysyncobj internal it relies on against the pinned version.
"""
from __future__ import annotations

import logging
import os
import pickle
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import pysyncobj.syncobj as _syncobj_module
from pysyncobj import SyncObj, SyncObjConf, replicated
from pysyncobj.fast_queue import FastQueue
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.syncobj import SyncObjException

from proto.model import DEFAULT_SNAPSHOT_INTERVAL
from raft.errors import DiskError
from raft.journal import AppendFailed, DiskJournal, disk_error
from raft.tls_transport import TlsTransport, TransportSecurity
from raft.transmission import TransmissionMender

# The journal factory is swapped while a Replica's SyncObj initialises; the
# lock keeps two stores built at once from seeing each other's journal.
_JOURNAL_HOOK_LOCK = threading.Lock()

ApplyFn = Callable[[bytes], Any]


# Entries of at least this many bytes travel in pieces of this size (raft.transmission).
APPEND_BATCH_BYTES = 1 << 16

# Fail reason given to a proposer whose entry the leader could not write to its
# journal (pysyncobj's FAIL_REASON values are small; this one is ours). A local
# proposer's callback gets the journal's message as its result.
DISK_FAILED = 100
DISK_LOG_EVERY = 30.0  # seconds between two log lines about the same failing disk

SNAPSHOT_FILE = "snapshot"          # the current snapshot in the raft directory
SNAPSHOT_KEEPS_ENTRIES = 2  # entries a compacted journal starts with (the snapshot's last two)


class _CommandQueue(FastQueue):
    """pysyncobj's queue of proposals, remembering the one taken last: the one
    the leader was appending when its journal failed."""

    def __init__(self, max_size: int) -> None:
        super().__init__(max_size)
        self.last_taken: Optional[tuple] = None

    def get_nowait(self) -> tuple:
        item = super().get_nowait()
        self.last_taken = item
        return item


@dataclass(frozen=True)
class RaftTuning:
    """Raft timing and disk settings (seconds unless named otherwise)."""

    tick: float = 0.05  # longest wait of the tick thread for a socket event
    heartbeat: float = 0.1  # append_entries period when idle
    election_min: float = 0.5  # follower waits this ..
    election_max: float = 1.5  # .. to this long without a leader, then runs
    connection_timeout: float = 3.5  # a silent peer connection is dropped
    reconnect: float = 1.0  # delay between connection attempts to a peer
    leader_fallback: float = 3.0  # a leader cut off from a majority steps down
    # Snapshot and trim the journal after this many entries (Docker's default snapshot
    # interval); the cluster spec's raft.snapshot_interval replaces it while the store
    # holds a cluster object, unless `compaction_pinned` (tests, `SHOAL_RAFT_SNAPSHOT_ENTRIES`).
    compaction_entries: int = DEFAULT_SNAPSHOT_INTERVAL
    compaction_seconds: float = 300.0  # .. or this long after the last snapshot
    compaction_pinned: bool = False
    fsync: bool = True  # fdatasync each journal entry before going on
    snapshot_retry: float = 5.0  # after a snapshot failed to be written (disk full)


def read_snapshot_file(path: str) -> tuple:
    """A snapshot file as `(raft_data, state_blob)`: raft_data is pysyncobj's
    `(last_entry, prev_entry, cluster_nodes)`, state_blob the store's (encrypted) dump."""
    with open(path, "rb") as f:
        raft_data, state_blob = pickle.loads(f.read())
    return raft_data, state_blob


def old_snapshots(raft_dir: str) -> list[str]:
    """The former snapshots kept in `raft_dir`, newest first (`snapshot.1`, `.2`, ...)."""
    numbered = []
    for name in os.listdir(raft_dir):
        stem, _, number = name.partition(".")
        if stem == SNAPSHOT_FILE and number.isdigit() and number == str(int(number)):
            numbered.append((int(number), name))
    return [name for _, name in sorted(numbered)]


def retain_snapshots(raft_dir: str, keep: int) -> None:
    """Before a new snapshot replaces the current one: the current one becomes
    `snapshot.1` (the older ones move up by one) when `keep` > 0, and only the newest
    `keep` former snapshots stay (`swarm update --max-snapshots`)."""
    kept = old_snapshots(raft_dir)
    current = os.path.join(raft_dir, SNAPSHOT_FILE)
    if keep > 0 and os.path.isfile(current):
        for name in reversed(kept[:keep - 1]):
            number = int(name.partition(".")[2])
            os.replace(os.path.join(raft_dir, name),
                       os.path.join(raft_dir, f"{SNAPSHOT_FILE}.{number + 1}"))
        older = os.path.join(raft_dir, f"{SNAPSHOT_FILE}.1")
        if os.path.exists(older):
            os.unlink(older)
        os.link(current, older)  # the rename of the new snapshot leaves this name on the old
        kept = old_snapshots(raft_dir)
    for name in kept[keep:]:
        os.unlink(os.path.join(raft_dir, name))


class _InspectingTransport(TlsTransport):
    """The raft transport (TLS when the replica has security), letting the
    replica adjust a message before raft handles it."""

    def _onMessageReceived(self, node, message):  # noqa: N802 (pysyncobj's name)
        super()._onMessageReceived(node, self._syncObj.inspect_message(message))


class Replica(SyncObj):
    """The pysyncobj node of one store."""

    def __init__(
        self,
        self_addr: str,
        bind_addr: str,
        peers: list[str],
        raft_dir: str,
        tuning: RaftTuning,
        apply_fn: ApplyFn,
        dump_fn: Callable[[], bytes],
        load_fn: Callable[[bytes], None],
        password: Optional[str],
        log: logging.LoggerAdapter,
        security: Optional[TransportSecurity] = None,
    ) -> None:
        if security is not None and password:
            raise ValueError("raft traffic is protected by TLS or by a password, not both")
        os.makedirs(raft_dir, mode=0o700, exist_ok=True)
        self._apply_fn = apply_fn
        self._dump_fn = dump_fn
        self._load_fn = load_fn
        self._log = log
        self._rewound_to: Optional[tuple[int, int]] = None  # (term, commit) last logged
        self._pieces = TransmissionMender(APPEND_BATCH_BYTES)
        self._raft_security = security  # read by the transport (raft/tls_transport.py)
        self._tuning = tuning
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._after_tick: list[Callable[[], None]] = []
        self.fatal: Optional[BaseException] = None  # set when the replica cannot go on
        self._disk_logged = float("-inf")  # monotonic time of the last disk failure logged
        self._snapshot_retry_at = float("-inf")  # no snapshot attempt before (after a failure)
        self.keep_old_snapshots = 0  # snapshots kept beside the current one (set_snapshot_policy)
        self.snapshot_error: Optional[DiskError] = None  # why the last snapshot failed
        self.journal = DiskJournal(os.path.join(raft_dir, "journal"), fsync=tuning.fsync,
                                   log=log)
        conf = SyncObjConf(
            autoTick=False,
            appendEntriesUseBatch=False,
            appendEntriesBatchSizeBytes=APPEND_BATCH_BYTES,
            commandsWaitLeader=True,
            dynamicMembershipChange=True,
            raftMinTimeout=tuning.election_min,
            raftMaxTimeout=tuning.election_max,
            appendEntriesPeriod=tuning.heartbeat,
            connectionTimeout=tuning.connection_timeout,
            connectionRetryTime=tuning.reconnect,
            leaderFallbackTimeout=tuning.leader_fallback,
            logCompactionMinEntries=tuning.compaction_entries,
            logCompactionMinTime=tuning.compaction_seconds,
            journalFile=self.journal_path,
            fullDumpFile=os.path.join(raft_dir, SNAPSHOT_FILE),
            serializer=self._write_snapshot,
            deserializer=self._read_snapshot,
            bindAddress=bind_addr,
            maxBindRetries=1,
            password=password,
        )
        opened = []

        def journal_factory(path: Optional[str]) -> DiskJournal:
            opened.append(path)
            return self.journal

        with _JOURNAL_HOOK_LOCK:
            original = _syncobj_module.createJournal
            _syncobj_module.createJournal = journal_factory
            try:
                super().__init__(self_addr, [p for p in peers if p != self_addr], conf,
                                 transportClass=_InspectingTransport)
            except SyncObjException as e:
                self.journal._destroy()
                raise OSError(f"cannot listen for raft on {bind_addr}: {e.errorCode}") from None
            finally:
                _syncobj_module.createJournal = original
        if not opened:
            raise RuntimeError("pysyncobj did not take the store's journal; unsupported pysyncobj version")
        self._commands = _CommandQueue(conf.commandsQueueSize)
        original_queue: FastQueue = getattr(self, "_SyncObj__commandsQueue")
        while True:  # (empty: nothing is proposed before the constructor returns)
            try:
                self._commands.put_nowait(original_queue.get_nowait())
            except queue.Empty:
                break
        setattr(self, "_SyncObj__commandsQueue", self._commands)  # pysyncobj's private queue
        self._seen_index = self._last_index()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._poller.subscribe(self._wake_r, self._drain_wake, POLL_EVENT_TYPE.READ)
        self.addOnTickCallback(self._before_poll)

    @property
    def transport(self) -> _InspectingTransport:
        """The raft transport (pysyncobj keeps it in a private attribute)."""
        return self._SyncObj__transport

    @property
    def journal_path(self) -> str:
        return self.journal._path

    # ----------------------------------------------------------- thread ----

    def start(self, name: str) -> None:
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def add_tick_hook(self, fn: Callable[[], None]) -> None:
        """Runs `fn` on the raft thread after every tick."""
        self._after_tick.append(fn)

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and self.fatal is None:
                try:
                    self.doTick(self._tuning.tick)
                except DiskError as exc:  # e.g. a follower appending the leader's entries
                    self._log_disk_error(exc)
                    time.sleep(self._tuning.tick)
                except Exception:
                    self._log.exception("raft tick failed")
                    time.sleep(self._tuning.tick)
                for fn in self._after_tick:
                    try:
                        fn()
                    except Exception:
                        self._log.exception("raft tick hook failed")
        finally:
            try:
                self._doDestroy()
            except Exception:
                self._log.exception("closing raft failed")
            self._poller.unsubscribe(self._wake_r)
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _before_poll(self) -> None:
        """pysyncobj tick callback, run just before the tick sleeps in poll().

        Within a tick pysyncobj applies committed entries first and appends
        new proposals after; on a single node (or with a follower's answer
        already in) the new entry could commit at once, but the tick would
        sleep first.  When this tick appended or left entries to apply, wake
        the poller so that the next tick runs immediately.
        """
        index = self._last_index()
        if index != self._seen_index or self.raftCommitIndex > self.raftLastApplied:
            self._seen_index = index
            try:
                os.write(self._wake_w, b"!")
            except BlockingIOError:
                pass

    def _drain_wake(self, fd: int, events: int) -> None:
        try:
            while os.read(fd, 4096):
                pass
        except BlockingIOError:
            pass

    def _last_index(self) -> int:
        return self.journal[-1][1] if len(self.journal) else 0

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------- replicated ----

    @replicated
    def apply_payload(self, payload: bytes) -> Any:
        """Applies one store transaction (runs on every replica, in log order)."""
        if self.fatal is not None:
            raise RuntimeError(f"raft replica stopped: {self.fatal}")
        return self._apply_fn(payload)

    def _checkCommandsToApply(self) -> None:  # noqa: N802 (pysyncobj's name)
        """pysyncobj: the leader appends queued proposals to its journal. One that
        cannot be written (disk full) fails for its proposer now, with the
        journal's message; the proposals after it wait in the queue."""
        try:
            super()._checkCommandsToApply()
        except AppendFailed as exc:
            taken = self._commands.last_taken
            if taken is not None and taken[0] == exc.command:
                self._refuse(taken[1], exc)
            self._log_disk_error(exc)

    def _refuse(self, callback: Any, exc: AppendFailed) -> None:
        if callback is None:
            return
        if isinstance(callback, tuple):  # proposed on a follower: answer it
            node, request_id = callback
            self.transport.send(node, {"type": "apply_command_response",
                                       "request_id": request_id, "error": DISK_FAILED})
            return
        callback(str(exc), DISK_FAILED)

    def _log_disk_error(self, exc: DiskError) -> None:
        now = time.monotonic()
        if now - self._disk_logged >= DISK_LOG_EVERY:
            self._disk_logged = now
            self._log.error("raft: %s (logged again in %gs while it lasts)", exc, DISK_LOG_EVERY)

    def propose(self, payload: bytes, callback: Callable[[Any, int], None]) -> None:
        """Queues `payload` for the log; `callback(result, fail_reason)` runs on the raft thread."""
        self.apply_payload(payload, callback=callback)

    def inspect_message(self, message: dict) -> dict:
        """Raft thread: keeps a follower from dropping entries it already holds.

        With entries sent as soon as they are proposed, several append_entries
        are in flight per follower, and an acknowledgement of an older one
        moves the leader's nextIndex back: the leader re-sends entries the
        follower already has.  pysyncobj then truncates the follower's log
        after the message's entries, contrary to raft (only a conflicting
        entry may be deleted): entries the follower had acknowledged, maybe
        counted for a commit, vanish until re-sent.  So entries this log
        already holds (same index and term, hence the same entry) are cut off
        the front of the message; when that leaves none and the log ends in
        the leader's term (all of it came from this leader), the message
        becomes a heartbeat at the end of the log, and the follower
        acknowledges what it really holds.
        """
        if message.get("type") != "append_entries" or "prevLogIdx" not in message:
            return message
        if message.get("transmission") is not None:
            return self._pieces.mend(message)  # a big entry in pieces: see raft.transmission
        journal = self.journal
        if not len(journal):
            return message
        rewound = self._rewind_to_commit(message, journal)
        if rewound is not None:
            return rewound
        entries = message.get("entries")
        if not entries:
            return message
        first = journal[0][1]
        held = 0  # leading entries of the message this log already holds
        for _, idx, term in entries:
            pos = idx - first
            if pos < 0 or pos >= len(journal) or journal[pos][2] != term:
                break
            held += 1
        if held == 0:
            return message
        adjusted = dict(message)
        if held < len(entries):  # append (or resolve a conflict) after what we hold
            _, prev_idx, prev_term = entries[held - 1]
            adjusted.update(prevLogIdx=prev_idx, prevLogTerm=prev_term, entries=entries[held:])
            return adjusted
        _, last_idx, last_term = journal[-1]
        if last_term != message["term"]:
            return message
        adjusted.update(prevLogIdx=last_idx, prevLogTerm=last_term, entries=[])
        return adjusted

    def _rewind_to_commit(self, message: dict, journal: Any) -> Optional[dict]:
        """A message this log will refuse, while its uncommitted tail did not come
        from the sender: the refusal is made to ask for what follows the commit index.

        pysyncobj refuses an append_entries either because its prevLogIdx lies
        past this log's end (answer: "send from my last index + 1") or because
        the terms differ there (answer: "send from prevLogIdx", one step back).
        A former leader that was cut off holds uncommitted entries of its own
        term at indices the new leader filled differently. The new leader keeps
        several messages in flight, so a "last index + 1" answer to a later one
        overtakes every step back and points past the conflict again: the
        follower never catches up (seen after a partition heals). Entries up to
        this log's commit index are in every later leader's log, so the answer
        becomes "send from commit index + 1": the message is turned into a
        heartbeat whose prevLogIdx is that index with a term no entry has, which
        pysyncobj refuses with exactly that index. Every refusal then names the
        same point; the leader's next message starts there, matches, and
        replaces the tail.
        """
        _, last_idx, last_term = journal[-1]
        if last_term == message["term"]:
            return None          # all of this log came through the sender
        commit = self.raftCommitIndex
        first = journal[0][1]
        if last_idx <= commit or commit + 1 < first:
            return None          # no uncommitted tail: a gap is only a lag
        pos = message["prevLogIdx"] - first
        if 0 <= pos < len(journal) and journal[pos][2] == message["prevLogTerm"]:
            return None          # accepted: pysyncobj drops the tail itself
        if getattr(self, "_rewound_to", None) != (message["term"], commit):
            self._rewound_to = (message["term"], commit)
            self._log.info("raft: entries %d-%d of term %d are not the leader's (term %d): "
                           "asking for its log after index %d", commit + 1, last_idx, last_term,
                           message["term"], commit)
        return dict(message, prevLogIdx=commit + 1, prevLogTerm=-1, entries=[])

    # ---------------------------------------------------- term and vote ----

    def _SyncObj__setCurrentTerm(self, term: int, votedForNodeId: Any) -> None:  # noqa: N802
        """pysyncobj sets its term and vote in memory, then has the journal write them.

        They are written first here: when the disk is full the DiskError stops
        the vote or election before pysyncobj acts on a term or vote that would
        be forgotten by a restart (a second vote in the same term). The journal
        does not write the same values twice.
        """
        self.journal.setCurrentTerm(term, votedForNodeId)
        super()._SyncObj__setCurrentTerm(term, votedForNodeId)

    # -------------------------------------------------------- snapshots ----

    def _SyncObj__tryLogCompaction(self) -> None:  # noqa: N802 (pysyncobj's private name)
        """pysyncobj, every tick: snapshots and trims the journal when due.

        After a snapshot could not be written (disk full), pysyncobj would try
        again on the next tick, dumping the whole state and logging a warning
        each time; attempts wait `snapshot_retry` seconds instead.
        """
        if time.monotonic() < self._snapshot_retry_at:
            return
        super()._SyncObj__tryLogCompaction()

    def set_snapshot_policy(self, interval: int, keep_old: int) -> None:
        """Raft thread: snapshot after `interval` log entries (0: the tuning's), and keep
        `keep_old` former snapshots on disk (`snapshot.1` the newest of them)."""
        if interval > 0 and not self._tuning.compaction_pinned:
            # pysyncobj snapshots once its journal holds more than this many entries,
            # and the journal keeps the last two entries a snapshot covers
            threshold = interval + SNAPSHOT_KEEPS_ENTRIES
        else:
            threshold = self._tuning.compaction_entries
        conf = self._SyncObj__conf  # pysyncobj's configuration, read at every tick
        if (conf.logCompactionMinEntries, self.keep_old_snapshots) != (threshold, keep_old):
            self._log.info("raft snapshots: journal compacted beyond %d entries, %d old "
                           "snapshot(s) kept", threshold, keep_old)
        conf.logCompactionMinEntries = threshold
        self.keep_old_snapshots = keep_old

    @property
    def snapshot_threshold(self) -> int:
        """The journal length beyond which pysyncobj snapshots, as it applies it now."""
        return int(self._SyncObj__conf.logCompactionMinEntries)

    def _write_snapshot(self, path: str, raft_data: tuple) -> None:
        """pysyncobj serializer: raft bookkeeping plus the store state, fsynced.
        pysyncobj then renames `path` over the current snapshot, which is kept
        first as `snapshot.1` when old snapshots are to be kept."""
        blob = pickle.dumps((raft_data, self._dump_fn()), protocol=4)
        try:
            with open(path, "wb") as f:
                f.write(blob)
                f.flush()
                if self._tuning.fsync:
                    os.fsync(f.fileno())
            retain_snapshots(os.path.dirname(path), self.keep_old_snapshots)
        except OSError as exc:
            # pysyncobj keeps the last snapshot and tries again later; the partial
            # file would only hold the room that is missing.
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            self.snapshot_error = disk_error(exc, path, "write the raft snapshot")
            self._snapshot_retry_at = time.monotonic() + self._tuning.snapshot_retry
            self._log_disk_error(self.snapshot_error)
            raise
        self.snapshot_error = None

    def _read_snapshot(self, path: str) -> tuple:
        """pysyncobj deserializer: restores the store state, returns raft bookkeeping."""
        try:
            raft_data, state_blob = read_snapshot_file(path)
            last_entry, prev_entry = raft_data[0], raft_data[1]
            self.journal.align_to_snapshot(prev_entry, last_entry)
            self._load_fn(state_blob)
            return raft_data
        except BaseException as e:
            # pysyncobj would log this and carry on from the journal alone,
            # with an empty state: stop the replica instead.
            self.fatal = e
            self._log.error("cannot load raft snapshot %s: %s", path, e)
            raise

    # --------------------------------------------------------- queries ----

    def leader_addr(self) -> Optional[str]:
        leader = self._getLeader()
        return None if leader is None else leader.address

    def leadership_established(self) -> bool:
        """Leader, and an entry of its own term is committed and applied.

        Only then does a new leader's state hold every committed write, so
        only then may leader-only components act on it.
        """
        if not self._isLeader():
            return False
        commit = self.raftCommitIndex
        if self.raftLastApplied < commit:
            return False
        try:
            first = self.journal[0][1]
            return self.journal[commit - first][2] == self.raftCurrentTerm
        except IndexError:
            return False

    def members(self) -> list[str]:
        return sorted([self.selfNode.address] + [n.address for n in self.otherNodes])
