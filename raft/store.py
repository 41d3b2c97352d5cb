"""The replicated object store: the API managers use to read and change cluster state.

`Store` joins the pure state machine (raft/state.py) to pysyncobj
(raft/replica.py):

- reads are local and lock-protected (`get`, `list`, `by_name`, `tasks_of`,
  `snapshot`);
- a write is one transaction = one raft entry (`commit`, `acommit`); the
  entry's payload is the serialised StoreTransaction passed through the
  store's `encrypt` (and `decrypt` on apply), so journal, snapshots and raft
  traffic only hold what `encrypt` returns;
- a write returns once its entry is committed *and applied on this node*, so
  the caller reads its own write, also on a follower (pysyncobj forwards the
  entry to the leader and reports back when the local replica applies it);
  one the leader cannot write to its journal (disk full) fails at once with
  `DiskError`, which names the file and the cause;
- subscribers see every applied transaction as watch events, in order;
  the last ones are kept (raft/history.py) so that a watch can replay what
  it missed (`watch_async(after_version=...)` or `since=...`);
- raft membership helpers for adding and removing managers;
- raft traffic between replicas is mutual TLS when a `tls` security object
  is given (raft/tls_transport.py; the daemon passes pki/raft_tls.py's),
  otherwise pysyncobj's plain TCP, optionally with its `password`.
"""
from __future__ import annotations

import asyncio
import builtins
import logging
import os
import pickle
import threading
import time
from typing import Any, Callable, Iterable, Optional, Sequence

from google.protobuf.message import Message
from pysyncobj import FAIL_REASON

from metrics.collectors import RaftStatus
from metrics.instruments import NodeMetrics
from proto import store_pb2
from raft.api import LeaderCallback, ObjectStore, Subscriber
from raft.errors import Conflict, DiskError, NameConflict, StoreError, Unavailable
from raft.history import DEFAULT_MAX_EVENTS, EventHistory
from raft.replica import DISK_FAILED, RaftTuning, Replica, read_snapshot_file
from raft.state import StoreState, dump_view
from raft.tls_transport import TransportSecurity
from raft.view import StoreView
from raft.watch import WatchStream

DEFAULT_RAFT_PORT = 2378

Cipher = Callable[[bytes], bytes]

_POLL = 0.1  # seconds between checks for a lost leader while a write waits
_CLOSED = -1  # our own fail reason: the store was closed while a write waited
_FAILURES = {
    FAIL_REASON.QUEUE_FULL: "too many writes are waiting for raft",
    FAIL_REASON.MISSING_LEADER: "the cluster has no raft leader",
    FAIL_REASON.DISCARDED: "the entry was overwritten by a new leader; it was not applied",
    FAIL_REASON.NOT_LEADER: "the node it was sent to is no longer the raft leader; it was not applied",
    FAIL_REASON.LEADER_CHANGED: "the raft leader changed; the write may or may not have been applied",
    FAIL_REASON.REQUEST_DENIED: "raft refused the request",
    FAIL_REASON.UNKNOWN_OUTCOME: "the outcome of the write is unknown (leader changed or restarted)",
    _CLOSED: "the store was closed",
}


def _identity(data: bytes) -> bytes:
    return data


def with_default_port(addr: str, port: int = DEFAULT_RAFT_PORT) -> str:
    """'10.0.0.1' -> '10.0.0.1:2378'; an address with a port is returned as is."""
    return addr if ":" in addr else f"{addr}:{port}"


class Store:
    """One manager's replica of the cluster store."""

    def __init__(
        self,
        node_id: str,
        data_dir: str,
        bind_addr: str,
        peers: Iterable[str] = (),
        *,
        advertise_addr: Optional[str] = None,
        encrypt: Cipher = _identity,
        decrypt: Cipher = _identity,
        tuning: RaftTuning = RaftTuning(),
        password: Optional[str] = None,
        tls: Optional[TransportSecurity] = None,
        history_events: int = DEFAULT_MAX_EVENTS,
        metrics: Optional[NodeMetrics] = None,
    ) -> None:
        if tls is not None and password:
            raise ValueError("raft traffic is protected by TLS or by a password, not both")
        self.node_id = node_id
        self.bind_addr = with_default_port(bind_addr)
        self.raft_addr = with_default_port(advertise_addr or bind_addr)
        self.peers = [with_default_port(p) for p in peers]
        self.raft_dir = os.path.join(data_dir, "raft")
        self._encrypt = encrypt
        self._decrypt = decrypt
        self._tuning = tuning
        self._password = password
        self._tls = tls
        self._log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})
        # raft and write instruments (metrics/instruments.py); private when not given
        self.metrics = metrics if metrics is not None else NodeMetrics()
        self._last_leader: Optional[str] = None  # the last leader seen, to count changes
        self._lock = threading.RLock()
        self._state = StoreState()
        self._subscribers: tuple[Subscriber, ...] = ()
        self._history = EventHistory(history_events)
        self._leader_callbacks: list[LeaderCallback] = []
        self._leader_state: tuple[bool, Optional[str]] = (False, None)
        # monotonic time since which raft has known no leader (None: a leader is known)
        self._leaderless_since: Optional[float] = time.monotonic()
        self._ready = threading.Event()
        self._pending: dict[int, Callable[[Any, int], None]] = {}
        self._pending_seq = 0
        self._replica: Optional[Replica] = None
        self._closed = False

    # -------------------------------------------------------- lifecycle ----

    def start(self) -> None:
        """Opens the journal, binds the raft port and starts the raft thread."""
        if self._replica is not None:
            return
        self._replica = Replica(
            self.raft_addr,
            self.bind_addr,
            self.peers,
            self.raft_dir,
            self._tuning,
            apply_fn=self._apply,
            dump_fn=self._dump,
            load_fn=self._load,
            password=self._password,
            log=self._log,
            security=self._tls,
        )
        self._replica.add_tick_hook(self._after_tick)
        self._follow_snapshot_policy()
        self._replica.journal.append_observer = self.metrics.raft_append_seconds.observe
        self._replica.start(name=f"raft-{self.node_id[:12]}")
        self._log.info("raft store on %s (peers: %s), data in %s",
                       self.raft_addr, ", ".join(self.peers) or "none", self.raft_dir)

    def seed(self, state: StoreState) -> None:
        """Before `start`, on an empty raft directory: begin from `state` instead
        of an empty store (`swarm init --force-new-cluster`). The state is not in
        the log: call `write_snapshot` once running, or a restart loses it."""
        if self._replica is not None:
            raise StoreError("seed() must come before start()")
        if os.path.exists(os.path.join(self.raft_dir, "snapshot")) or \
                os.path.exists(os.path.join(self.raft_dir, "journal")):
            raise StoreError(f"seed() needs an empty raft directory; {self.raft_dir} holds raft state")
        with self._lock:
            self._state = state
            self._history.reset(state.version)

    def write_snapshot(self, timeout: float = 30.0) -> int:
        """Writes a raft snapshot of everything applied so far and waits until it
        is on disk; returns the raft index it covers."""
        replica = self._check_running()
        target = replica.raftLastApplied
        path = os.path.join(self.raft_dir, "snapshot")
        deadline = time.monotonic() + timeout
        while True:
            replica.forceLogCompaction()
            try:
                covered = read_snapshot_file(path)[0][0][1]
            except (OSError, EOFError, ValueError, IndexError, TypeError, pickle.UnpicklingError):
                covered = 0
            if covered >= target:
                return covered
            if time.monotonic() >= deadline:
                failed = replica.snapshot_error
                if failed is not None:
                    raise DiskError(f"no raft snapshot up to index {target} was written: {failed}",
                                    failed.path, failed.errno)
                raise Unavailable(f"no raft snapshot up to index {target} was written "
                                  f"within {timeout:g}s")
            self._check_running()
            time.sleep(0.05)

    def close(self) -> None:
        """Stops raft and fails the writes still waiting (Unavailable)."""
        if self._closed:
            return
        self._closed = True
        if self._replica is not None:
            self._replica.stop()
        with self._lock:
            pending, self._pending = self._pending, {}
        for callback in pending.values():
            callback(None, _CLOSED)
        self._ready.clear()

    def __enter__(self) -> "Store":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Waits until a leader is known and this replica has caught up with it."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
            self._check_running()
            if time.monotonic() >= deadline:
                raise Unavailable(f"raft store not ready after {timeout:g}s: no leader reachable "
                                  f"(peers: {', '.join(self.peers) or 'none'})")

    def is_leader(self) -> bool:
        """True once this node leads and has applied every committed entry."""
        return self._leader_state[0]

    def leader(self) -> Optional[str]:
        """Raft address of the current leader, if one is known."""
        return self._leader_state[1]

    def on_leader_change(self, callback: LeaderCallback) -> None:
        """`callback(is_leader, leader_addr)` runs on the raft thread at every change."""
        self._leader_callbacks.append(callback)

    def _check_running(self) -> Replica:
        replica = self._replica
        if replica is None or self._closed:
            raise Unavailable("the store is not running")
        if replica.fatal is not None:
            raise Unavailable(f"the raft replica stopped: {replica.fatal}")
        if not replica.alive():
            raise Unavailable("the raft thread is not running")
        return replica

    def _after_tick(self) -> None:
        """Raft thread, after every tick: leadership and readiness."""
        replica = self._replica
        if replica is None:  # the hook is added by start(), after the replica exists
            return
        established = replica.leadership_established()
        leader = replica.leader_addr()
        if established or (leader is not None and leader != self.raft_addr and replica.isReady()):
            self._ready.set()
        else:
            self._ready.clear()
        if leader is None:
            if self._leaderless_since is None:
                self._leaderless_since = time.monotonic()
        else:
            self._leaderless_since = None
        state = (established, leader if leader is not None and (established or leader != self.raft_addr) else None)
        if leader is not None and leader != self._last_leader:
            self._last_leader = leader
            self.metrics.raft_leader_changes.inc()
        if state != self._leader_state:
            self._leader_state = state
            self._log.info("raft leader is now %s%s", state[1] or "unknown",
                           " (this node)" if state[0] else "")
            for callback in list(self._leader_callbacks):
                try:
                    callback(*state)
                except Exception:
                    self._log.exception("leader change callback failed")

    # ------------------------------------------------------------ reads ----

    @property
    def version(self) -> int:
        """Number of transactions applied on this replica."""
        return self._state.version

    def get(self, kind: str, obj_id: str) -> Optional[Message]:
        with self._lock:
            return self._state.get(kind, obj_id)

    def list(self, kind: str) -> list:
        with self._lock:
            return self._state.list(kind)

    def by_name(self, kind: str, name: str) -> Optional[Message]:
        with self._lock:
            return self._state.by_name(kind, name)

    def tasks_of(self, node_id: str = "", service_id: str = "") -> builtins.list:
        with self._lock:
            return self._state.tasks_of(node_id, service_id)

    def snapshot(self) -> StoreView:
        with self._lock:
            return self._state.snapshot()

    # ----------------------------------------------------------- writes ----

    def _leaderless(self) -> bool:
        """True once raft has known no leader for longer than an election takes.

        pysyncobj keeps a write proposed without a leader queued until one
        appears, which never happens on a minority: such writes would hang for
        their whole timeout. A write is refused instead, and a waiting one
        given up, when no leader has been known for `election_max` seconds
        (a partitioned follower gets there within ~2 election timeouts, a
        leader cut off from the majority `leader_fallback` seconds later).
        """
        since = self._leaderless_since
        return since is not None and time.monotonic() - since > self._tuning.election_max

    def _no_leader(self, proposed: bool) -> Unavailable:
        return Unavailable("write failed: the cluster has no raft leader" +
                           ("; it may still be applied if a leader appears" if proposed else ""))

    def commit(self, actions: Sequence[store_pb2.StoreAction], timeout: float = 5.0) -> int:
        """Commits one transaction; returns the store version it produced."""
        if not actions:
            return self.version
        replica = self._check_running()
        if threading.current_thread() is replica._thread:
            raise StoreError("commit() on the raft thread would deadlock; hand the work to another thread")
        if self._leaderless():
            raise self._no_leader(proposed=False)
        done = threading.Event()
        outcome: list = []

        def settle(result: Any, reason: int) -> None:
            outcome.append((result, reason))
            done.set()

        with self.metrics.store_write_seconds.time():
            self._propose(replica, actions, settle)
            deadline = time.monotonic() + timeout
            while not done.wait(max(0.0, min(_POLL, deadline - time.monotonic()))):
                if self._leaderless():
                    raise self._no_leader(proposed=True)
                if time.monotonic() >= deadline:
                    raise self._timeout(timeout)
        return self._outcome(*outcome[0])

    async def acommit(self, actions: Sequence[store_pb2.StoreAction], timeout: float = 5.0) -> int:
        """`commit` for asyncio: waits without blocking the loop."""
        if not actions:
            return self.version
        replica = self._check_running()
        if self._leaderless():
            raise self._no_leader(proposed=False)
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()

        def resolve(result: Any, reason: int) -> None:
            if not future.done():
                future.set_result((result, reason))

        def settle(result: Any, reason: int) -> None:
            try:
                loop.call_soon_threadsafe(resolve, result, reason)
            except RuntimeError:  # loop closed; nobody waits any more
                pass

        started = time.perf_counter()
        try:
            return await self._await_commit(replica, actions, future, settle, timeout)
        finally:
            self.metrics.store_write_seconds.observe(time.perf_counter() - started)

    async def _await_commit(self, replica: Replica, actions: Sequence[store_pb2.StoreAction],
                            future: asyncio.Future, settle: Callable[[Any, int], None],
                            timeout: float) -> int:
        self._propose(replica, actions, settle)
        deadline = time.monotonic() + timeout
        while True:
            done, _ = await asyncio.wait({future}, timeout=max(0.0, min(_POLL, deadline - time.monotonic())))
            if done:
                break
            if self._leaderless():
                future.cancel()
                raise self._no_leader(proposed=True)
            if time.monotonic() >= deadline:
                future.cancel()
                raise self._timeout(timeout)
        result, reason = future.result()
        return self._outcome(result, reason)

    def _propose(self, replica: Replica, actions: Sequence[store_pb2.StoreAction],
                 settle: Callable[[Any, int], None]) -> None:
        txn = store_pb2.StoreTransaction(proposer=self.node_id, proposed_at=time.time())
        txn.actions.extend(actions)
        payload = self._encrypt(txn.SerializeToString())
        with self._lock:
            self._pending_seq += 1
            key = self._pending_seq
            fired: list[bool] = []

            def once(result: Any, reason: int) -> None:
                with self._lock:
                    if fired:
                        return
                    fired.append(True)
                    self._pending.pop(key, None)
                settle(result, reason)

            self._pending[key] = once
        replica.propose(payload, once)

    def _timeout(self, timeout: float) -> Unavailable:
        leader = self.leader()
        where = f"leader {leader}" if leader else "no leader known"
        return Unavailable(f"the write was not committed within {timeout:g}s ({where}); "
                           "it may still be applied later")

    @staticmethod
    def _outcome(result: Any, reason: int) -> int:
        if reason == DISK_FAILED:
            raise DiskError(f"write failed: {result}" if result else
                            "write failed: the raft leader cannot write its journal (disk full "
                            "or I/O error; see its log); nothing of this write was recorded")
        if reason != FAIL_REASON.SUCCESS:
            raise Unavailable(f"write failed: {_FAILURES.get(reason, f'raft error {reason}')}")
        status, value = result
        if status == "ok":
            return value
        if status == "conflict":
            raise Conflict(value)
        if status == "name-conflict":
            raise NameConflict(value)
        raise StoreError(value)

    def _apply(self, payload: bytes) -> tuple[str, Any]:
        """Raft thread: applies one committed transaction (every replica, log order)."""
        with self.metrics.raft_apply_seconds.time():
            return self._apply_timed(payload)

    def _apply_timed(self, payload: bytes) -> tuple[str, Any]:
        try:
            txn = store_pb2.StoreTransaction.FromString(self._decrypt(payload))
        except Exception as e:
            self._log.error("cannot decode a raft entry: %s", e)
            return ("error", f"cannot decode the transaction: {e}")
        # Checks and watch events outside the lock (this thread alone changes the state),
        # so that readers wait only for the writes themselves, not for the whole apply
        # of a big transaction.
        try:
            prepared = self._state.prepare(txn)
        except NameConflict as e:
            return ("name-conflict", str(e))
        except Conflict as e:
            return ("conflict", str(e))
        blobs = self._history.encode(prepared.events)
        with self._lock:
            applied = self._state.commit(prepared)
            self._history.record(applied.version, applied.events, txn.proposed_at, blobs)
            for subscriber in self._subscribers:
                try:
                    subscriber(applied.events, applied.version)
                except Exception:
                    self._log.exception("store subscriber failed")
        if any(e.object.WhichOneof("object") == "cluster" for e in applied.events):
            self._follow_snapshot_policy()
        return ("ok", applied.version)

    def _follow_snapshot_policy(self) -> None:
        """Raft thread (or before it runs): snapshots as the cluster spec's raft
        settings ask (`swarm init|update --snapshot-interval/--max-snapshots`)."""
        replica = self._replica
        if replica is None:
            return
        clusters = self.list("cluster")
        raft = clusters[0].spec.raft if clusters else None
        replica.set_snapshot_policy(raft.snapshot_interval if raft else 0,
                                    raft.keep_old_snapshots if raft else 0)

    # ---------------------------------------------------------- watches ----

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """`callback(events, version)` runs on the raft thread after every applied
        transaction, under the store lock: keep it short, hand work off.
        Returns a function that unsubscribes."""
        return self.subscribe_with_view(callback)[1]

    def subscribe_with_view(self, callback: Subscriber) -> tuple[StoreView, Callable[[], None]]:
        """Subscribes and snapshots atomically: events start right after the view."""
        with self._lock:
            self._subscribers = self._subscribers + (callback,)
            view = self._state.snapshot()

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not callback)

        return view, unsubscribe

    def watch_async(self, loop: Optional[asyncio.AbstractEventLoop] = None, *,
                    after_version: Optional[int] = None,
                    since: Optional[float] = None) -> WatchStream:
        """An async iterator of event batches; `.view` is the state it starts from.

        With `after_version` the stream first replays the kept transactions
        after that version (HistoryGone when some are no longer kept), with
        `since` (unix seconds) the kept ones committed at or after that time;
        the replay ends at `.view.version`, live batches follow it."""
        with self._lock:
            backlog: builtins.list = []
            if after_version is not None:
                backlog = self._history.after(after_version)
            elif since is not None:
                backlog = self._history.since(since)
            # under the lock, no transaction is applied between the backlog and the view
            stream = WatchStream(loop or asyncio.get_running_loop(), self.subscribe_with_view)
        stream.replay([c.events() for c in backlog])
        return stream

    # -------------------------------------------------------- snapshots ----

    def _dump(self) -> bytes:
        """Raft thread: the state for a raft snapshot, encrypted."""
        with self._lock:
            view = self._state.snapshot()
        return self._encrypt(dump_view(view))

    def _load(self, blob: bytes) -> None:
        """Raft thread: replaces the state with a snapshot's (restart or install)."""
        newer = StoreState.load(self._decrypt(blob))
        with self._lock:
            events = self._state.diff(newer)
            self._state = newer
            self._history.reset(newer.version)
            if events:
                for subscriber in self._subscribers:
                    try:
                        subscriber(events, newer.version)
                    except Exception:
                        self._log.exception("store subscriber failed")
        self._follow_snapshot_policy()
        self._log.info("loaded raft snapshot at store version %d", newer.version)

    # ------------------------------------------------------- membership ----

    def members(self) -> builtins.list[str]:
        """Raft addresses of every voting member, this node included."""
        return self._check_running().members()

    def add_member(self, raft_addr: str, timeout: float = 10.0) -> None:
        """Adds a manager to the raft group (one change at a time)."""
        replica = self._check_running()
        self._membership(replica.addNodeToCluster, with_default_port(raft_addr), timeout)

    def remove_member(self, raft_addr: str, timeout: float = 10.0) -> None:
        """Removes a manager from the raft group (not the leader itself)."""
        replica = self._check_running()
        self._membership(replica.removeNodeFromCluster, with_default_port(raft_addr), timeout)

    def _membership(self, change: Callable[..., None], addr: str, timeout: float) -> None:
        done = threading.Event()
        outcome: list = []

        def settle(result: Any, reason: int) -> None:
            outcome.append(reason)
            done.set()

        change(addr, callback=settle)
        if not done.wait(timeout):
            raise self._timeout(timeout)
        if outcome[0] == FAIL_REASON.REQUEST_DENIED:
            raise StoreError(f"raft refused the membership change for {addr}: another change is "
                             "still in progress, the node is already (not) a member, or it is the leader")
        if outcome[0] != FAIL_REASON.SUCCESS:
            raise Unavailable(f"membership change for {addr} failed: "
                              f"{_FAILURES.get(outcome[0], outcome[0])}")

    def reachable_members(self) -> set[str]:
        """Raft endpoints this replica is connected to right now, itself included."""
        status = self._check_running().getStatus()
        prefix = "partner_node_status_server_"
        return {self.raft_addr} | {key[len(prefix):] for key, value in status.items()
                                   if key.startswith(prefix) and value == 2}

    def status(self) -> dict:
        """Raft bookkeeping for diagnostics."""
        replica = self._check_running()
        entries, last_index = _journal_tail(replica.journal)
        return {
            "raft_addr": self.raft_addr,
            "leader": self.leader(),
            "is_leader": self.is_leader(),
            "term": replica.raftCurrentTerm,
            "commit_index": replica.raftCommitIndex,
            "last_applied": replica.raftLastApplied,
            "journal_entries": entries,
            "last_index": last_index,
            "store_version": self.version,
            "members": replica.members(),
        }

    def raft_status(self) -> Optional[RaftStatus]:
        """Raft's term, indexes and leadership for the metrics (None unless running)."""
        replica = self._replica
        if replica is None or self._closed:
            return None
        _, last_index = _journal_tail(replica.journal)
        return RaftStatus(term=int(replica.raftCurrentTerm),
                          last_index=last_index,
                          commit_index=int(replica.raftCommitIndex),
                          applied_index=int(replica.raftLastApplied),
                          is_leader=self.is_leader(), members=len(replica.members()))

def _journal_tail(journal: Any) -> tuple[int, int]:
    """The journal's length and last raft index, read once: compaction (raft's
    thread) may clear the journal between a len() and an index, and a scrape or a
    status call must never fail for that (an empty journal reads as (0, 0))."""
    try:
        last = journal[-1]
    except IndexError:
        return 0, 0
    return len(journal), int(last[1])


# mypy checks here that Store implements the interface the rest of Shoal uses.
_STORE_IMPLEMENTS: type[ObjectStore] = Store
