"""manager/orchestrator/taskindex.py and the store's task change log (raft/state.py,
raft/view.py): an index advanced from view to view with the log answers what one built
from the whole view answers, and what `Work` derives from it (the tasks to place, to
remove, each node's load for the scheduler, the orphans) is what a scan of every task
gives, through random histories of task creations, updates and removals."""
from __future__ import annotations

import random

from manager.orchestrator.plan import Work
from manager.orchestrator.taskindex import TaskIndex, advanced
from proto import model
from proto import objects_pb2 as pb
from proto import store_pb2
from raft import actions
from raft import state as state_module
from raft.state import StoreState
from scheduler.nodeinfo import build

NODES = [f"n{i}" for i in range(4)]
SERVICES = ["s0", "s1", "s2"]
STATES = [pb.NEW, pb.PENDING, pb.ASSIGNED, pb.RUNNING, pb.COMPLETE, pb.FAILED, pb.SHUTDOWN]
DESIRED = [pb.READY, pb.RUNNING, pb.SHUTDOWN, pb.REMOVE]


def assert_same_index(kept: TaskIndex, built: TaskIndex) -> None:
    """`kept` (advanced) answers as `built` (from the whole view): the same tasks per
    service in the same order, the same sets, the same loads. (Their per-service top
    versions differ by design: a removal raises a kept one, a progress report does not:
    the orchestrator tests check the passes they let skip decide as full ones.)"""
    assert kept.version == built.version
    assert {s: list(ids) for s, ids in kept.by_service.items()} == \
        {s: list(ids) for s, ids in built.by_service.items()}
    assert set(kept.unplaced) == set(built.unplaced)
    assert set(kept.removable) == set(built.removable)
    assert set(kept.own_ports) == set(built.own_ports)
    loads = {n: (l.cpu_reserved, l.mem_reserved, l.active, l.by_service)
             for n, l in kept.loads.items() if l.active or l.cpu_reserved or l.mem_reserved}
    fresh = {n: (l.cpu_reserved, l.mem_reserved, l.active, l.by_service)
             for n, l in built.loads.items() if l.active or l.cpu_reserved or l.mem_reserved}
    assert loads == fresh


def _service(sid: str, host_port: bool) -> pb.Service:
    svc = pb.Service(id=sid)
    svc.spec.annotations.name = sid
    svc.spec.replicated.replicas = 1
    if host_port:
        svc.spec.endpoint.ports.add(target_port=80, published_port=8080,
                                    publish_mode=pb.PortConfig.HOST)
    return svc


def _random_task(rng: random.Random, tid: str, sid: str) -> pb.Task:
    task = pb.Task(id=tid, service_id=sid, slot=rng.randint(1, 3))
    _mutate(rng, task)
    return task


def _mutate(rng: random.Random, task: pb.Task) -> None:
    task.status.state = rng.choice(STATES)
    task.desired_state = rng.choice(DESIRED)
    task.node_id = rng.choice(NODES + ["", "gone"])
    if rng.random() < 0.3:
        task.spec.resources.reservations.nano_cpus = rng.randint(1, 4) * 100
        task.spec.resources.reservations.memory_bytes = rng.randint(1, 4) << 20
    else:
        task.spec.ClearField("resources")
    task.ClearField("endpoint")
    if rng.random() < 0.2:
        task.endpoint.ports.add(target_port=81, published_port=rng.choice([9000, 9001]),
                                publish_mode=pb.PortConfig.HOST)


def _commit(state: StoreState, acts: list) -> None:
    if acts:
        txn = store_pb2.StoreTransaction(proposer="t", proposed_at=1000.0)
        txn.actions.extend(acts)
        state.apply(txn)


def _history(seed: int, steps: int, check) -> None:
    rng = random.Random(seed)
    state = StoreState()
    acts = [actions.create(_service(s, host_port=(s == "s2"))) for s in SERVICES]
    for n in NODES:
        node = pb.Node(id=n)
        node.description.resources.nano_cpus = 10_000
        node.description.resources.memory_bytes = 1 << 30
        acts.append(actions.create(node))
    _commit(state, acts)
    made = 0
    index = None
    for _ in range(steps):
        acts = []
        tasks = list(state.list("task"))
        for _ in range(rng.randint(0, 6)):
            roll = rng.random()
            if roll < 0.45 or not tasks:
                made += 1
                acts.append(actions.create(_random_task(rng, f"t{made:04d}", rng.choice(SERVICES + ["gone"]))))
            else:
                task = tasks.pop(rng.randrange(len(tasks)))
                if roll < 0.8:
                    new = pb.Task()
                    new.CopyFrom(task)
                    _mutate(rng, new)
                    acts.append(actions.update(new))
                else:
                    acts.append(actions.remove(task))
        _commit(state, acts)
        if rng.random() < 0.7:   # the leader does not see every version
            view = state.snapshot()
            index, built = advanced(index, view)
            check(view, index, built)


def test_an_advanced_index_answers_as_one_built_from_the_whole_view() -> None:
    builds = []

    def check(view, index, built) -> None:
        builds.append(built)
        assert_same_index(index, TaskIndex.build(view))
    for seed in range(8):
        _history(seed, 120, check)
    assert builds.count(True) == 8   # only each history's first view was built whole


def test_work_derives_from_the_index_what_a_scan_of_every_task_gives() -> None:
    def check(view, index, built) -> None:
        work = Work(view, 1000.0, index=index)
        rng = random.Random(view.version)
        # the pass's own changes: edits, creations and deletions on top of the view
        for tid in rng.sample(sorted(work.tasks), min(4, len(work.tasks))):
            if rng.random() < 0.3:
                work.delete_task(tid)
            else:
                _mutate(rng, work.edit_task(tid))
        for n in range(rng.randint(0, 3)):
            work.add_task(_random_task(rng, f"new{view.version}-{n}", rng.choice(SERVICES)))
        tasks = list(work.tasks.values())
        assert [t.id for t in work.unplaced()] == sorted(
            t.id for t in tasks if t.desired_state <= pb.RUNNING and t.status.state <= pb.PENDING)
        assert [t.id for t in work.removable()] == sorted(
            t.id for t in tasks if t.desired_state >= pb.REMOVE)
        for sid in SERVICES + ["gone"]:
            assert [t.id for t in work.service_tasks(sid)] == \
                [t.id for t in tasks if t.service_id == sid]
        assert sorted(t.id for t in work.orphans()) == sorted(
            t.id for t in view.tasks.values()
            if t.service_id not in work.services and t.id in work.tasks)
        pending = {t.id for t in work.unplaced()}
        kept = work.node_infos(pending)
        scanned = build(work.nodes.values(), tasks, work.services, skip=pending)
        assert {n: (i.cpu_reserved, i.mem_reserved, i.active, i.by_service, i.ports)
                for n, i in kept.items()} == \
            {n: (i.cpu_reserved, i.mem_reserved, i.active, i.by_service, i.ports)
             for n, i in scanned.items()}
    for seed in range(8):
        _history(100 + seed, 80, check)


def test_a_copy_stays_the_index_of_its_view() -> None:
    def check(view, index, built) -> None:
        kept = index.copy()
        assert_same_index(kept, TaskIndex.build(view))
        copies.append((view, kept))
    copies: list = []
    _history(7, 60, check)
    for view, kept in copies:   # the original went on advancing meanwhile
        assert_same_index(kept, TaskIndex.build(view))


def test_a_task_moved_to_another_service_is_indexed_under_it() -> None:
    """Tasks never change service in Shoal; the index still follows one that would
    (it then comes last among its new service's tasks)."""
    state = StoreState()
    _commit(state, [actions.create(pb.Task(id=f"t{i}", service_id="a", node_id="n",
                                           desired_state=pb.RUNNING)) for i in range(3)])
    index = TaskIndex.build(state.snapshot())
    moved = pb.Task()
    moved.CopyFrom(state.get("task", "t1"))
    moved.service_id = "b"
    _commit(state, [actions.update(moved)])
    assert index.advance(state.snapshot())
    assert {s: sorted(ids) for s, ids in index.by_service.items()} == \
        {"a": ["t0", "t2"], "b": ["t1"]}
    assert index.loads["n"].by_service == {"a": 2, "b": 1}


def test_the_log_says_when_it_does_not_reach_back(monkeypatch) -> None:
    monkeypatch.setattr(state_module, "TASK_LOG_MAX", 10)
    state = StoreState()
    _commit(state, [actions.create(pb.Task(id=f"a{i}", service_id="s")) for i in range(3)])
    early = state.snapshot()
    assert early.tasks_changed_since(0) == ["a0", "a1", "a2"]
    assert early.tasks_changed_since(early.version) == []
    for i in range(8):
        _commit(state, [actions.create(pb.Task(id=f"b{i}", service_id="s"))])
    view = state.snapshot()
    assert view.tasks_changed_since(0) is None            # the oldest half is gone
    assert view.tasks_changed_since(view.version - 2) == ["b6", "b7"]
    assert early.tasks_changed_since(0) == ["a0", "a1", "a2"]   # an older view keeps its own
    index = TaskIndex.build(early)
    assert not index.advance(view) and index.version == early.version
    assert advanced(index, view)[1]                        # so it is built anew
    loaded = StoreState.load(state.dump())
    assert loaded.snapshot().tasks_changed_since(view.version - 1) is None
    assert StoreState().snapshot().tasks_changed_since(0) == []


def test_a_hand_made_view_has_no_log_and_work_builds_its_own_index() -> None:
    state = StoreState()
    _commit(state, [actions.create(pb.Task(id="t1", service_id="s", node_id="n"))])
    view = state.snapshot()
    bare = type(view)(version=view.version, tasks=view.tasks)
    assert bare.tasks_changed_since(0) is None
    work = Work(bare, 0.0)
    assert [t.id for t in work.service_tasks("s")] == ["t1"]
    assert model.is_terminal(pb.COMPLETE)
