"""Tests of the replicated store (raft/): real pysyncobj, real files, loopback ports."""
from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from proto import model
from proto import objects_pb2 as pb
from proto import watch_pb2
from raft import actions
from raft.errors import Conflict, NameConflict, Unavailable
from raft.replica import RaftTuning
from proto import store_pb2
from raft.state import StoreState, view_digest
from lab.localnode import free_port as lab_free_port
from raft.store import Store
from tests.helpers import wait

FAST = RaftTuning(heartbeat=0.05, election_min=0.2, election_max=0.4,
                  connection_timeout=1.0, reconnect=0.2, leader_fallback=1.0)
POLL = 0.01     # between two looks at in-process replicas


def free_port() -> int:
    """One free port for a raft endpoint (outside the ephemeral range)."""
    return lab_free_port(span=1)


def service(name: str) -> pb.Service:
    svc = pb.Service(id=model.new_id())
    svc.spec.annotations.name = name
    return svc


def task(service_id: str = "", slot: int = 1) -> pb.Task:
    return pb.Task(id=model.new_id(), service_id=service_id, slot=slot)


def copy(obj):
    dup = type(obj)()
    dup.CopyFrom(obj)
    return dup


@pytest.fixture
def store(tmp_path):
    s = Store("node1", str(tmp_path), f"127.0.0.1:{free_port()}", tuning=FAST)
    s.start()
    s.wait_ready(10)
    yield s
    s.close()


# ---------------------------------------------------------- transactions ----

def test_create_get_list_by_name_and_meta(store):
    svc = service("web")
    before = time.time()
    version = store.commit([actions.create(svc)])
    assert version == store.version == 1
    stored = store.get("service", svc.id)
    assert stored.spec.annotations.name == "web"
    assert stored.meta.version == 1
    assert before - 1 <= model.ts_seconds(stored.meta.created_at) <= time.time() + 1
    assert stored.meta.created_at == stored.meta.updated_at
    assert store.by_name("service", "web").id == svc.id
    assert [s.id for s in store.list("service")] == [svc.id]
    assert store.get("service", "missing") is None

    changed = copy(stored)
    changed.spec.annotations.labels["tier"] = "front"
    assert store.commit([actions.update(changed)]) == 2
    again = store.get("service", svc.id)
    assert again.meta.version == 2 and again.spec.annotations.labels["tier"] == "front"
    assert again.meta.created_at == stored.meta.created_at

    store.commit([actions.remove(again)])
    assert store.get("service", svc.id) is None and store.by_name("service", "web") is None


def test_one_transaction_many_objects(store):
    svc = service("api")
    tasks = [task(svc.id, slot) for slot in range(1, 101)]
    version = store.commit([actions.create(svc)] + [actions.create(t) for t in tasks])
    assert version == 1
    assert len(store.list("task")) == 100
    assert {t.meta.version for t in store.list("task")} == {1}


def test_stale_update_rejects_whole_transaction(store):
    a, b = service("a"), service("b")
    store.commit([actions.create(a), actions.create(b)])
    a1, b1 = copy(store.get("service", a.id)), copy(store.get("service", b.id))
    a1.spec.annotations.labels["x"] = "1"
    store.commit([actions.update(a1)])  # a is now at version 2

    stale = copy(b1)  # fresh
    stale.spec.annotations.labels["y"] = "2"
    a_stale = copy(a1)
    a_stale.meta.version = 1  # what we read before the first update
    new = task()
    with pytest.raises(Conflict) as err:
        store.commit([actions.update(stale), actions.create(new), actions.update(a_stale)])
    assert a.id in str(err.value) and '"a"' in str(err.value)
    assert "version 1" in str(err.value)
    # Nothing of the transaction was applied and the version did not move.
    assert store.version == 2
    assert store.get("service", b.id).meta.version == 1
    assert "y" not in store.get("service", b.id).spec.annotations.labels
    assert store.get("task", new.id) is None


def test_remove_checks(store):
    svc = service("gone")
    store.commit([actions.create(svc)])
    stored = store.get("service", svc.id)
    old = copy(stored)
    old.meta.version = 7
    with pytest.raises(Conflict):
        store.commit([actions.remove(old)])
    store.commit([actions.remove(old, expected_version=0)])  # 0 = any version
    with pytest.raises(Conflict, match="does not exist"):
        store.commit([actions.remove(stored)])
    with pytest.raises(Conflict, match="does not exist"):
        store.commit([actions.update(stored)])


def test_duplicate_id_and_name_uniqueness(store):
    svc = service("db")
    store.commit([actions.create(svc)])
    with pytest.raises(Conflict, match="already exists"):
        store.commit([actions.create(svc)])
    with pytest.raises(NameConflict, match='name "db" is already in use'):
        store.commit([actions.create(service("db"))])   # through raft: still a name conflict
    # Names are per kind: a network may be called "db" too.
    net = pb.Network(id=model.new_id())
    net.spec.annotations.name = "db"
    store.commit([actions.create(net)])
    # Two new objects with one name in one transaction: rejected as a whole.
    with pytest.raises(Conflict):
        store.commit([actions.create(service("x")), actions.create(service("x"))])
    assert store.by_name("service", "x") is None
    # Renaming frees the old name and takes the new one.
    renamed = copy(store.get("service", svc.id))
    renamed.spec.annotations.name = "db2"
    store.commit([actions.update(renamed)])
    assert store.by_name("service", "db2").id == svc.id
    store.commit([actions.create(service("db"))])
    # Tasks and nodes have no unique names.
    store.commit([actions.create(pb.Task(id=model.new_id(), annotations=pb.Annotations(name="t.1")))
                  for _ in range(2)])


def test_empty_transaction_is_a_no_op(store):
    assert store.commit([]) == 0


# --------------------------------------------------------------- watches ----

def test_subscribe_gets_events_in_order(store):
    seen: list = []
    unsubscribe = store.subscribe(lambda events, version: seen.append((version, events)))
    svc = service("w")
    store.commit([actions.create(svc), actions.create(task(svc.id))])
    updated = copy(store.get("service", svc.id))
    updated.spec.annotations.labels["k"] = "v"
    store.commit([actions.update(updated)])
    store.commit([actions.remove(store.get("service", svc.id))])
    with pytest.raises(Conflict):
        store.commit([actions.create(svc), actions.create(svc)])
    unsubscribe()
    store.commit([actions.create(service("after"))])

    assert [v for v, _ in seen] == [1, 2, 3]
    (_, first), (_, second), (_, third) = seen
    assert [e.action for e in first] == [watch_pb2.WatchEvent.CREATE] * 2
    assert first[0].object.service.id == svc.id and first[0].version == 1
    assert second[0].action == watch_pb2.WatchEvent.UPDATE
    assert second[0].object.service.meta.version == 2
    assert second[0].old_object.service.meta.version == 1
    assert third[0].action == watch_pb2.WatchEvent.REMOVE
    assert third[0].object.service.spec.annotations.labels["k"] == "v"


def test_watch_async_and_acommit(store):
    async def main() -> list:
        loop = asyncio.get_running_loop()
        stream = store.watch_async(loop)
        assert stream.view.version == 0
        # The loop keeps running while a write waits for raft.
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticking = asyncio.create_task(ticker())
        versions = [await store.acommit([actions.create(service(f"s{i}"))]) for i in range(3)]
        ticking.cancel()
        assert versions == [1, 2, 3] and ticks > 3
        batches = []
        async with stream:
            async for batch in stream:
                batches.append(batch)
                if len(batches) == 3:
                    break
        return batches

    batches = asyncio.run(main())
    assert [b[0].version for b in batches] == [1, 2, 3]
    assert [b[0].object.service.spec.annotations.name for b in batches] == ["s0", "s1", "s2"]


def test_acommit_conflict(store):
    svc = service("dup")
    store.commit([actions.create(svc)])

    async def main() -> None:
        with pytest.raises(Conflict):
            await store.acommit([actions.create(service("dup"))])

    asyncio.run(main())


# ------------------------------------------------------------ snapshots ----

def test_snapshot_isolation(store):
    svc = service("iso")
    store.commit([actions.create(svc)] + [actions.create(task(svc.id, i)) for i in range(10)])
    view = store.snapshot()
    assert view.version == 1 and len(view.tasks) == 10
    more = [task(svc.id, 20 + i) for i in range(5)]
    store.commit([actions.create(t) for t in more])
    changed = copy(store.get("service", svc.id))
    changed.spec.annotations.labels["v"] = "2"
    store.commit([actions.update(changed), actions.remove(store.get("task", more[0].id))])
    assert len(view.tasks) == 10 and view.version == 1
    assert view.services[svc.id].meta.version == 1
    assert "v" not in view.services[svc.id].spec.annotations.labels
    fresh = store.snapshot()
    assert fresh.version == 3 and len(fresh.tasks) == 14
    with pytest.raises(TypeError):
        fresh.tasks["x"] = pb.Task()  # views are read-only


def test_state_dump_load_roundtrip():
    state = StoreState()
    from proto import store_pb2
    txn = store_pb2.StoreTransaction(proposed_at=1000.0)
    svc = service("round")
    txn.actions.extend([actions.create(svc), actions.create(task(svc.id))])
    state.apply(txn)
    back = StoreState.load(state.dump())
    assert back.version == 1
    assert back.by_name("service", "round").id == svc.id
    assert len(back.list("task")) == 1
    assert back.diff(state) == []


# ------------------------------------------------------ restart and crypto ----

def test_restart_from_journal_and_snapshot(tmp_path):
    addr = f"127.0.0.1:{free_port()}"
    box = {"key": 0x5A}

    def xor(data: bytes) -> bytes:
        return bytes(b ^ box["key"] for b in data)

    tuning = RaftTuning(heartbeat=0.05, election_min=0.2, election_max=0.4, connection_timeout=1.0,
                        reconnect=0.2, leader_fallback=1.0, compaction_entries=20)
    s = Store("node1", str(tmp_path), addr, encrypt=xor, decrypt=xor, tuning=tuning)
    s.start()
    s.wait_ready(10)
    ids = []
    for i in range(30):  # more than compaction_entries: a snapshot is taken
        svc = service(f"secret-name-{i}")
        ids.append(svc.id)
        s.commit([actions.create(svc)])
    wait(lambda: (tmp_path / "raft" / "snapshot").exists(), 10, "raft snapshot", interval=POLL)
    for i in range(3):  # entries after the snapshot, in the journal only
        svc = service(f"secret-name-late-{i}")
        ids.append(svc.id)
        s.commit([actions.create(svc)])
    s.close()

    # Nothing on disk holds the plaintext.
    for path in (tmp_path / "raft").iterdir():
        assert b"secret-name" not in path.read_bytes(), path

    s2 = Store("node1", str(tmp_path), addr, encrypt=xor, decrypt=xor, tuning=tuning)
    s2.start()
    s2.wait_ready(10)
    try:
        assert s2.version == 33
        assert sorted(o.id for o in s2.list("service")) == sorted(ids)
        assert s2.by_name("service", "secret-name-late-2") is not None
        assert s2.commit([actions.create(service("after-restart"))]) == 34
    finally:
        s2.close()


def test_port_in_use_and_closed_store(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        s = Store("node1", str(tmp_path), f"127.0.0.1:{port}", tuning=FAST)
        with pytest.raises(OSError):
            s.start()
    s = Store("node1", str(tmp_path / "b"), f"127.0.0.1:{free_port()}", tuning=FAST)
    s.start()
    s.close()
    with pytest.raises(Unavailable):
        s.commit([actions.create(service("late"))])


# ------------------------------------------------------------ 3-node raft ----

@pytest.fixture
def cluster(tmp_path):
    addrs = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    stores = [Store(f"node{i}", str(tmp_path / f"n{i}"), addr,
                    peers=[a for a in addrs if a != addr], tuning=FAST)
              for i, addr in enumerate(addrs)]
    for s in stores:
        s.start()
    for s in stores:
        s.wait_ready(15)
    yield stores
    for s in stores:
        s.close()


def test_three_nodes_replicate_and_forward(cluster):
    leader = wait(lambda: next((s for s in cluster if s.is_leader()), None), 10, "a leader",
                  interval=POLL)
    assert sum(s.is_leader() for s in cluster) == 1
    followers = [s for s in cluster if s is not leader]
    wait(lambda: all(f.leader() == leader.raft_addr for f in followers), 10, "followers to see the leader",
         interval=POLL)
    assert sorted(leader.members()) == sorted(s.raft_addr for s in cluster)

    changes = []
    leader.on_leader_change(lambda is_leader, addr: changes.append((is_leader, addr)))

    # Written on the leader, replicated to the followers.
    svc = service("from-leader")
    assert leader.commit([actions.create(svc)]) == 1
    wait(lambda: all(f.get("service", svc.id) for f in followers), 10, "replication", interval=POLL)

    # Written on a follower: forwarded, and visible there when commit returns.
    follower = followers[0]
    for i in range(20):
        t = task(svc.id, i + 1)
        version = follower.commit([actions.create(t)])
        assert follower.get("task", t.id) is not None  # read-your-writes
        assert follower.version >= version == i + 2

    # Conflicts are reported to the follower that proposed.
    with pytest.raises(Conflict):
        follower.commit([actions.create(service("from-leader"))])

    async def follower_async() -> int:
        return await followers[1].acommit([actions.create(service("async-follower"))])

    version = asyncio.run(follower_async())
    assert followers[1].by_name("service", "async-follower") is not None
    wait(lambda: all(s.version == version for s in cluster), 10, "all replicas at the same version",
         interval=POLL)
    views = [s.snapshot() for s in cluster]
    assert len({tuple(sorted((k, v.meta.version) for k, v in view.tasks.items())) for view in views}) == 1


def test_three_nodes_leader_loss(cluster):
    leader = wait(lambda: next((s for s in cluster if s.is_leader()), None), 10, "a leader",
                  interval=POLL)
    leader.commit([actions.create(service("before"))])
    rest = [s for s in cluster if s is not leader]
    events = []
    for s in rest:
        s.on_leader_change(lambda is_leader, addr, s=s: events.append((s.raft_addr, is_leader, addr)))
    leader.close()
    new = wait(lambda: next((s for s in rest if s.is_leader()), None), 15, "a new leader",
               interval=POLL)
    assert any(is_leader for _, is_leader, _ in events)
    other = next(s for s in rest if s is not new)
    wait(lambda: other.leader() == new.raft_addr, 10, "the follower to follow the new leader",
         interval=POLL)
    other.commit([actions.create(service("after"))])
    assert new.by_name("service", "before") is not None
    wait(lambda: new.by_name("service", "after") is not None, 10, "replication to the new leader",
         interval=POLL)


def test_membership_add_node(tmp_path, cluster):
    leader = wait(lambda: next((s for s in cluster if s.is_leader()), None), 10, "a leader",
                  interval=POLL)
    leader.commit([actions.create(service("old"))])
    addr = f"127.0.0.1:{free_port()}"
    leader.add_member(addr)
    joined = Store("node9", str(tmp_path / "n9"), addr, peers=[s.raft_addr for s in cluster], tuning=FAST)
    joined.start()
    try:
        joined.wait_ready(15)
        wait(lambda: joined.by_name("service", "old") is not None, 10, "the new member to catch up",
             interval=POLL)
        assert addr in leader.members()
        joined.commit([actions.create(service("new"))])
        assert joined.by_name("service", "new") is not None
    finally:
        joined.close()
    leader.remove_member(addr)
    assert addr not in leader.members()


def test_follower_keeps_entries_it_already_holds(store):
    """A re-sent append_entries must not truncate entries the log holds (see Replica.inspect_message)."""
    for i in range(5):
        store.commit([actions.create(service(f"held-{i}"))])
    replica = store._replica
    journal = list(replica.journal)
    term = journal[-1][2]
    resent = {"type": "append_entries", "term": term, "commit_index": 1,
              "prevLogIdx": journal[1][1], "prevLogTerm": journal[1][2], "entries": journal[2:4]}
    adjusted = replica.inspect_message(resent)
    assert adjusted["entries"] == [] and adjusted["prevLogIdx"] == journal[-1][1]
    extra = (b"new", journal[-1][1] + 1, term)
    overlapping = dict(resent, entries=journal[2:] + [extra])
    adjusted = replica.inspect_message(overlapping)
    assert adjusted["entries"] == [extra] and adjusted["prevLogIdx"] == journal[-1][1]
    conflicting = dict(resent, entries=[(b"x", journal[2][1], term + 1)])
    assert replica.inspect_message(conflicting) is conflicting


def test_a_cut_off_leader_is_rewound_to_its_commit_index():
    """A former leader's uncommitted tail (term 3) conflicts with the new leader's
    log (term 4 from index 364): every refusal asks for commit index + 1, so replies
    that overtake one another cannot point past the conflict (Replica._rewind_to_commit)."""
    from types import SimpleNamespace

    from raft.replica import Replica

    journal = [(b"e", i, 1 if i <= 300 else 3) for i in range(1, 367)]     # 1..366
    follower = SimpleNamespace(journal=journal, raftCommitIndex=363,
                               _log=logging.LoggerAdapter(logging.getLogger("test"), {}))
    follower._rewind_to_commit = Replica._rewind_to_commit.__get__(follower)

    def seen(prev_idx: int, prev_term: int, entries=()) -> dict:
        message = {"type": "append_entries", "term": 7, "commit_index": 660,
                   "prevLogIdx": prev_idx, "prevLogTerm": prev_term, "entries": list(entries)}
        return Replica.inspect_message(follower, message)

    rewound = {"prevLogIdx": 364, "prevLogTerm": -1, "entries": []}
    for prev_idx, prev_term in ((660, 7), (366, 4), (365, 4), (364, 4)):   # all refused
        got = seen(prev_idx, prev_term, [(b"n", prev_idx + 1, 7)])
        assert {k: got[k] for k in rewound} == rewound, (prev_idx, got)
    # the leader's next message starts after the commit index: it matches, and goes
    # through untouched so that pysyncobj replaces the tail
    fixing = {"type": "append_entries", "term": 7, "commit_index": 660, "prevLogIdx": 363,
              "prevLogTerm": 3, "entries": [(b"n", 364, 4), (b"n", 365, 4)]}
    assert Replica.inspect_message(follower, fixing) is fixing
    # nothing uncommitted, or a tail from the sender's own term: pysyncobj decides
    follower.raftCommitIndex = 366
    lagging = {"type": "append_entries", "term": 7, "commit_index": 660, "prevLogIdx": 660,
               "prevLogTerm": 7, "entries": []}
    assert Replica.inspect_message(follower, lagging) is lagging
    follower.raftCommitIndex = 363
    same_term = dict(lagging, term=3)
    assert Replica.inspect_message(follower, same_term) is same_term


def _state_of(*objects) -> StoreState:
    """The objects created in one transaction, in the order given."""
    state = StoreState()
    txn = store_pb2.StoreTransaction(proposer="t", proposed_at=1000.0)
    txn.actions.extend(actions.create(obj) for obj in objects)
    state.apply(txn)
    return state


def test_view_digest_ignores_insertion_order_and_sees_any_change():
    """The digest the chaos soak compares between managers: the same objects stored in
    another order give the same digest; one changed field gives another."""
    a, b, c = service("a"), service("b"), task(slot=2)
    one = _state_of(a, b, c)
    other = _state_of(c, b, a)
    assert view_digest(one.snapshot()) == view_digest(other.snapshot())
    changed = copy(b)
    changed.spec.annotations.labels["x"] = "1"
    third = _state_of(a, changed, c)
    assert view_digest(third.snapshot()) != view_digest(one.snapshot())
    assert view_digest(_state_of(a, b).snapshot()) != view_digest(one.snapshot())
