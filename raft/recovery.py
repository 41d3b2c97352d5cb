"""Offline access to a manager's raft state, and rebuilding it as a one-member cluster.

This is what `swarm init --force-new-cluster` runs on a stopped manager's data
directory (or a restored copy of one):

- `read_local_state(data_dir)` reads `<data-dir>/raft/` without starting
  pysyncobj: the latest snapshot, then every journal entry after it fed
  through the same `StoreState.apply` the running store uses.  Every entry
  this manager holds is replayed, also one the old cluster had not committed
  yet: that is what raft does when this node becomes the only member and
  commits an entry of its own term.  pysyncobj's own entries (no-ops, code
  versions, membership changes) carry no store data and are skipped; a
  transaction the live store would have refused (conflict, undecodable) is
  skipped and reported, as the live store would have done.
- `force_new_cluster(...)` builds a fresh raft directory whose only member is
  this node and whose state is the recovered one, byte for byte: object IDs,
  versions and creation times are kept (the state is seeded into a new
  store and written as its first raft snapshot, instead of being re-created
  object by object, which would reset `meta`).  Then it commits
  `single_manager_actions` (this node is the leader; the other managers are
  demoted, see there) as ordinary log entries, writes the snapshot, closes
  the store, reads the new directory back offline and compares it with what
  the store held.  Only then is `raft/` swapped: the old one is kept as
  `raft.old-<time>`.  Everything is built in `<data-dir>/.force-new-cluster/`
  first, so a crash at any point leaves either the old or the new raft
  directory in place, never a half-written one.
"""
from __future__ import annotations

import os
import pickle
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from proto import model
from proto import objects_pb2 as pb
from proto import store_pb2
from raft import actions
from raft.errors import Conflict, CorruptJournal, StoreError
from raft.journal import read_entries
from raft.replica import RaftTuning, read_snapshot_file
from raft.state import StoreState
from raft.store import Store
from raft.tls_transport import TransportSecurity
from raft.view import StoreView

PathLike = Union[str, os.PathLike]
Cipher = Callable[[bytes], bytes]
STAGING_DIR = ".force-new-cluster"
BATCH = 200  # actions per transaction when committing adjustments

# pysyncobj's command types (first byte of every log entry), see pysyncobj.syncobj._COMMAND_TYPE
_REGULAR, _NO_OP, _MEMBERSHIP, _VERSION = 0, 1, 2, 3


class RecoveryError(StoreError):
    """The raft state cannot be read or rebuilt; the message says why."""


class NoManagerState(RecoveryError):
    """The data directory holds no manager (raft) state."""


def _identity(data: bytes) -> bytes:
    return data


@dataclass
class LocalState:
    """What a manager's raft directory holds, read offline."""

    state: StoreState
    snapshot_index: int = 0          # raft index the snapshot covers (0: no snapshot)
    last_index: int = 0              # last raft index in the journal (or the snapshot's)
    last_term: int = 0
    replayed: int = 0                # store transactions applied from the journal
    skipped: list = field(default_factory=list)   # "index N: reason" for refused entries
    members: list = field(default_factory=list)   # raft members as last recorded (sorted)

    def summary(self) -> dict:
        """kind -> {object id: meta.version}: what two states must agree on."""
        return summarize(self.state.snapshot())


def summarize(view: StoreView) -> dict:
    return {kind: {obj_id: obj.meta.version for obj_id, obj in view.table(kind).items()}
            for kind in model.KINDS}


def _node_addr(node: object) -> str:
    return str(getattr(node, "address", None) or getattr(node, "id", node))


def read_local_state(data_dir: PathLike, decrypt: Cipher = _identity) -> LocalState:
    """The store state of the manager whose data directory is `data_dir`, offline.

    Raises NoManagerState when `<data_dir>/raft` holds no snapshot and no
    journal entry, RecoveryError when what it holds cannot be read (wrong
    key, corrupt snapshot, journal not continuing the snapshot).
    """
    raft_dir = Path(data_dir) / "raft"
    snapshot_path = raft_dir / "snapshot"
    journal_path = raft_dir / "journal"
    if not raft_dir.is_dir():
        raise NoManagerState(f"{data_dir} holds no manager state: there is no {raft_dir}")
    try:
        entries = read_entries(str(journal_path))
    except CorruptJournal as exc:
        raise RecoveryError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise RecoveryError(f"cannot read the raft journal {journal_path}: {exc}") from None
    has_snapshot = snapshot_path.is_file()
    if not has_snapshot and not entries:
        raise NoManagerState(f"{data_dir} holds no manager state: {raft_dir} has neither a "
                             "snapshot nor journal entries")

    local = LocalState(state=StoreState())
    members: set = set()
    if has_snapshot:
        try:
            raft_data, blob = read_snapshot_file(str(snapshot_path))
            last_entry, cluster = raft_data[0], raft_data[2]
        except Exception as exc:
            raise RecoveryError(f"cannot read the raft snapshot {snapshot_path}: {exc}") from None
        try:
            local.state = StoreState.load(decrypt(blob))
        except Exception as exc:
            raise RecoveryError(f"cannot decode the store snapshot in {snapshot_path} "
                                f"(wrong key, or corrupt): {exc}") from None
        local.snapshot_index, local.last_term = last_entry[1], last_entry[2]
        local.last_index = local.snapshot_index
        members = {_node_addr(n) for n in cluster}

    expected = local.snapshot_index + 1  # pysyncobj's first entry has index 1
    for command, idx, term in entries:
        if has_snapshot and idx <= local.snapshot_index:
            continue  # already in the snapshot (a compaction that had not trimmed yet)
        if idx != expected:
            raise RecoveryError(f"the raft journal {journal_path} misses entries: the next entry "
                                f"should have index {expected}, it has index {idx}")
        expected = idx + 1
        local.last_index, local.last_term = idx, term
        _replay(local, members, bytes(command), idx, decrypt)
    local.members = sorted(members)
    return local


def _replay(local: LocalState, members: set, command: bytes, idx: int, decrypt: Cipher) -> None:
    if not command:
        return
    kind = command[0]
    if kind == _MEMBERSHIP:
        try:
            op, node_id, _node = pickle.loads(command[1:])
        except Exception:
            local.skipped.append(f"index {idx}: unreadable membership change")
            return
        (members.add if op == "add" else members.discard)(str(node_id))
        return
    if kind != _REGULAR:
        return  # no-op or code version: no store data
    try:
        call = pickle.loads(command[1:])  # (method ID, args) as pysyncobj's @replicated writes it
        if not (isinstance(call, tuple) and len(call) >= 2 and call[1]):
            raise ValueError("not a replicated call with an argument")
        payload = call[1][0]
        txn = store_pb2.StoreTransaction.FromString(decrypt(payload))
    except Exception as exc:
        local.skipped.append(f"index {idx}: cannot decode the transaction: {exc}")
        return
    try:
        local.state.apply(txn)
    except Conflict as exc:
        local.skipped.append(f"index {idx}: refused as the live store did: {exc}")
        return
    local.replayed += 1


# ------------------------------------------------------------- rebuilding --

def single_manager_actions(view: StoreView, node_id: str, addr: str, raft_addr: str,
                           hostname: Optional[str] = None) -> list:
    """The changes that make `view` a one-manager cluster led by `node_id`.

    - this node: manager, leader, reachable, at its (possibly new) addresses;
    - every other manager stays listed with its ID (its tasks and history
      refer to it) but is demoted as `swarm node demote` would do it: worker
      role and desired role, no manager status, state DOWN.  Such nodes are
      no longer raft members; they drop out of the manager lists agents and
      joining nodes get, and out of quorum counts.  One that comes back
      with its old data directory is told by the new cluster to be a worker;
      re-promote it (`swarm node promote`) or remove it and join it again.
      (Docker keeps them listed as unreachable managers instead.)
    - worker nodes, the cluster object (CA, join tokens), services, tasks,
      networks, secrets and configs are kept as they are.

    Raises RecoveryError when `node_id` has no node object (not this cluster's manager).
    """
    me = view.table("node").get(node_id)
    if me is None:
        raise RecoveryError(f"the store has no node {node_id}: the raft state does not belong "
                            "to this node's cluster")
    out = []
    new = pb.Node()
    new.CopyFrom(me)
    new.role = pb.MANAGER
    new.spec.desired_role = pb.MANAGER
    new.manager_status.addr = addr
    new.manager_status.raft_addr = raft_addr
    new.manager_status.leader = True
    new.manager_status.reachability = pb.ManagerStatus.REACHABLE
    if hostname:
        new.description.hostname = hostname
    if new != me:
        out.append(actions.update(new))
    for node in view.table("node").values():
        if node.id == node_id:
            continue
        if node.role != pb.MANAGER and node.spec.desired_role != pb.MANAGER:
            continue
        demoted = pb.Node()
        demoted.CopyFrom(node)
        demoted.role = pb.WORKER
        demoted.spec.desired_role = pb.WORKER
        demoted.ClearField("manager_status")
        demoted.status.state = pb.NodeStatus.DOWN
        demoted.status.message = ("manager left out by --force-new-cluster: demoted; "
                                  "promote or re-join it")
        out.append(actions.update(demoted))
    return out


@dataclass
class Rebuilt:
    """What `force_new_cluster` did."""

    local: LocalState            # what was read from the old raft directory
    old_raft_dir: Path           # where the old raft directory now is
    adjustments: int             # node objects changed (this node, demoted managers)
    version: int                 # store version of the new cluster
    objects: int                 # objects kept


def force_new_cluster(
    data_dir: PathLike,
    node_id: str,
    bind_addr: str,
    raft_addr: str,
    manager_addr: str,
    *,
    password: Optional[str] = None,
    tls: Optional[TransportSecurity] = None,
    encrypt: Cipher = _identity,
    decrypt: Cipher = _identity,
    tuning: RaftTuning = RaftTuning(),
    timeout: float = 60.0,
    adjust: Optional[Callable[[StoreView], Sequence[store_pb2.StoreAction]]] = None,
) -> Rebuilt:
    """Replaces `<data_dir>/raft` by a one-member raft group holding the same state.

    `bind_addr`/`raft_addr` are this node's raft endpoints (the raft port must
    be free: the daemon must not run), `manager_addr` its manager endpoint.
    `tls` secures the raft port while the one-member group runs (see
    raft/tls_transport.py).
    `adjust(view)` gives the changes to commit on the recovered state; the
    default is `single_manager_actions`.
    """
    data_dir = Path(data_dir)
    local = read_local_state(data_dir, decrypt)
    staging = data_dir / STAGING_DIR
    shutil.rmtree(staging, ignore_errors=True)  # a leftover of an interrupted attempt
    staging.mkdir(mode=0o700)
    if adjust is None:
        def adjust(view: StoreView) -> list:
            return single_manager_actions(view, node_id, manager_addr, raft_addr,
                                          socket.gethostname())
    seeded = StoreState.load(local.state.dump())  # the store owns (and changes) its state
    store = Store(node_id, str(staging), bind_addr, [], advertise_addr=raft_addr,
                  encrypt=encrypt, decrypt=decrypt, tuning=tuning, password=password,
                  tls=tls)
    try:
        store.seed(seeded)
        try:
            store.start()
        except OSError as exc:
            raise RecoveryError(f"{exc} (is the daemon of this data directory still running?)") \
                from None
        store.wait_ready(timeout)
        changes = list(adjust(store.snapshot()))
        for start in range(0, len(changes), BATCH):
            store.commit(changes[start:start + BATCH], timeout=timeout)
        store.write_snapshot(timeout)
        expected = summarize(store.snapshot())
        version = store.version
    except BaseException:
        store.close()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    store.close()

    check = read_local_state(staging, decrypt)
    if check.summary() != expected or check.state.version != version:
        shutil.rmtree(staging, ignore_errors=True)
        raise RecoveryError("the rebuilt raft state does not read back as written; "
                            f"{data_dir / 'raft'} was left unchanged")

    old = data_dir / time.strftime("raft.old-%Y%m%d-%H%M%S")
    n = 1
    while old.exists():
        n += 1
        old = data_dir / time.strftime(f"raft.old-%Y%m%d-%H%M%S-{n}")
    os.rename(data_dir / "raft", old)
    os.rename(staging / "raft", data_dir / "raft")
    _fsync_dir(data_dir)
    shutil.rmtree(staging, ignore_errors=True)
    return Rebuilt(local=local, old_raft_dir=old, adjustments=len(changes), version=version,
                   objects=sum(len(ids) for ids in expected.values()))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
