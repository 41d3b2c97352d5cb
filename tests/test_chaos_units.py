"""Unit tests of the chaos soak's pure parts: what counts as converged, the
plaintext scan, the timeline, the stack file (lab.chaos)."""
from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import grpc
import pytest
import yaml

from lab.chaos.invariants import plaintext_files, service_problems, write_problems
from lab.chaos.timeline import Timeline
from lab.chaos.workload import compose_file
from lab.chaos.faults import Injector
from lab.chaos.run import _arguments
from lab.chaos.writers import Writer, Writers
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb


def node(node_id: str, role: int = pb.WORKER, ready: bool = True,
         drain: bool = False) -> pb.Node:
    n = pb.Node(id=node_id, role=role)
    n.description.hostname = node_id
    n.status.state = pb.NodeStatus.READY if ready else pb.NodeStatus.DOWN
    n.spec.availability = pb.NodeSpec.DRAIN if drain else pb.NodeSpec.ACTIVE
    n.spec.desired_role = role
    return n


def replicated(replicas: int, *constraints: str) -> pb.Service:
    svc = pb.Service(id="svc1", spec_version=2)
    svc.spec.annotations.name = "web"
    svc.spec.replicated.replicas = replicas
    if constraints:
        svc.spec.task.placement.constraints.extend(constraints)
    return svc


def global_service() -> pb.Service:
    svc = pb.Service(id="svc1", spec_version=2)
    svc.spec.annotations.name = "agent"
    getattr(svc.spec, "global").SetInParent()
    return svc


def task(node_id: str, slot: int = 0, state: int = pb.RUNNING, desired: int = pb.RUNNING,
         version: int = 2, task_id: str = "") -> pb.Task:
    t = pb.Task(id=task_id or f"t-{node_id}-{slot}-{state}", service_id="svc1", slot=slot,
                node_id=node_id, desired_state=desired, spec_version=version)
    t.status.state = state
    return t


NODES = [node("w1"), node("w2"), node("m1", role=pb.MANAGER)]


def test_replicated_converged_only_with_every_replica_running_at_the_spec() -> None:
    svc = replicated(2)
    assert service_problems(svc, NODES, [task("w1", 1), task("w2", 2)]) == []
    # one missing, one still starting, one of an older spec, one on a down node
    assert "1/2 running" in service_problems(svc, NODES, [task("w1", 1)])[0]
    assert service_problems(svc, NODES, [task("w1", 1), task("w2", 2, state=pb.STARTING)])
    old = task("w2", 2, version=1)
    assert service_problems(svc, NODES, [task("w1", 1), old]) == []   # same spec: up to date
    old.spec.container.image = "other"
    assert "older spec" in service_problems(svc, NODES, [task("w1", 1), old])[0]
    down = [node("w1"), node("w2", ready=False)]
    assert service_problems(svc, down, [task("w1", 1), task("w2", 2)])
    # ended tasks do not count; two tasks wanted running in one slot do
    assert service_problems(svc, NODES, [task("w1", 1), task("w2", 2),
                                         task("w2", 2, state=pb.SHUTDOWN, desired=pb.SHUTDOWN)]) == []
    doubled = service_problems(svc, NODES, [task("w1", 1), task("w2", 1, task_id="x")])
    assert any("slots [1]" in p for p in doubled)


def test_replicated_placement_and_update_state_count() -> None:
    svc = replicated(1, "node.role==worker")
    on_worker, on_manager = task("w1", 1), task("m1", 1)
    for t in (on_worker, on_manager):
        t.spec.CopyFrom(svc.spec.task)
    assert service_problems(svc, NODES, [on_worker]) == []
    assert any("placement excludes" in p for p in service_problems(svc, NODES, [on_manager]))
    svc.update_status.state = pb.UpdateStatus.UPDATING
    assert any("update in progress" in p for p in service_problems(svc, NODES, [on_worker]))
    svc.update_status.state = pb.UpdateStatus.PAUSED      # a paused update is a steady state
    old = task("w1", 1, version=1)
    old.spec.container.image = "other"
    assert service_problems(svc, NODES, [old]) == []


def test_global_one_task_on_every_eligible_node_and_none_elsewhere() -> None:
    svc = global_service()
    nodes = [node("w1"), node("w2", drain=True), node("w3", ready=False)]
    assert service_problems(svc, nodes, [task("w1")]) == []
    assert any("not exactly one" in p for p in service_problems(svc, nodes, []))
    assert any("ineligible" in p for p in service_problems(svc, nodes, [task("w1"), task("w2")]))
    two = [task("w1", task_id="a"), task("w1", task_id="b")]
    assert any("not exactly one" in p for p in service_problems(svc, nodes, two))


def test_plaintext_scan_finds_the_mark_across_chunks_and_skips_mounts(tmp_path: Path) -> None:
    mark = b"CHAOSPLAINTEXT-1-2-abc"
    (tmp_path / "clean").write_bytes(b"x" * 100)
    straddle = tmp_path / "deep" / "straddle"
    straddle.parent.mkdir()
    straddle.write_bytes(b"y" * ((1 << 20) - 5) + mark + b"z")
    assert plaintext_files(tmp_path, b"CHAOSPLAINTEXT") == [str(straddle)]
    mounted = tmp_path / "tmpfs"
    mounted.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mounted)], check=True)
    try:
        (mounted / "secret").write_bytes(mark)
        assert plaintext_files(tmp_path, b"CHAOSPLAINTEXT") == [str(straddle)]
    finally:
        subprocess.run(["umount", str(mounted)], check=True)
    os.remove(straddle)
    assert plaintext_files(tmp_path, b"CHAOSPLAINTEXT") == []


def test_timeline_counts_by_kind_and_marks_failures() -> None:
    tl = Timeline()
    tl.add("fault", "kill-leader manager1")
    tl.add("fault", "kill-leader manager2")
    tl.add("op", "scale web to 2", "ok")
    tl.add("heal", "kill-leader manager2", "NOT converged", ok=False)
    assert tl.counts("fault") == {"kill-leader": 2}
    lines = tl.lines()
    assert len(lines) == 4 and " ! heal" in lines[3] and lines[3].endswith("-> NOT converged")


@pytest.mark.parametrize("gen", [1, 2])
def test_the_stack_file_is_valid_compose_that_changes_with_each_deploy(gen: int) -> None:
    doc = yaml.safe_load(compose_file("img:1", 3, gen))
    web = doc["services"]["web"]
    assert web["deploy"]["replicas"] == 3 and web["environment"]["GEN"] == str(gen)
    assert doc["services"]["agent"]["deploy"]["mode"] == "global"
    assert doc["secrets"]["token"]["file"] == "./token.txt"


class _Refused(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._code.name


class _FlakyStore:
    """Stands in for the managers: of every 5 calls, the first is refused before
    committing (UNAVAILABLE) and the third commits but its answer is lost
    (DEADLINE_EXCEEDED), so its retry meets ALREADY_EXISTS."""

    def __init__(self, stop: threading.Event, writes: int) -> None:
        self.configs: dict[str, int] = {}
        self.version = 0
        self.calls = 0
        self.stop, self.writes = stop, writes

    def call(self, rng, fn, tries=0):
        return fn(self)

    def CreateConfig(self, request, timeout):
        self.calls += 1
        name = request.spec.annotations.name
        if name in self.configs:
            raise _Refused(grpc.StatusCode.ALREADY_EXISTS)
        if self.calls % 5 == 1:
            raise _Refused(grpc.StatusCode.UNAVAILABLE)        # not committed
        self.version += 1
        self.configs[name] = self.version
        if len(self.configs) >= self.writes:
            self.stop.set()
        if self.calls % 5 == 3:
            lost = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)
            raise _Refused(lost[self.calls % 2])                 # committed, answer lost
        return cpb.CreateConfigResponse(config=pb.Config(meta=pb.Meta(version=self.version)))

    def ListConfigs(self, request, timeout):
        name = request.filters.names[0]
        found = [pb.Config(meta=pb.Meta(version=self.configs[name]))] if name in self.configs else []
        for c in found:
            c.spec.annotations.name = name
        return cpb.ListConfigsResponse(configs=found)


def test_a_writer_retries_the_same_name_and_reads_back_what_a_lost_answer_committed() -> None:
    stop = threading.Event()
    store = _FlakyStore(stop, writes=12)
    w = Writer(1, seed=5)
    w.run(store, stop)           # type: ignore[arg-type]  # the fake stands in for Access
    assert not w.refused
    assert w.recovered > 0 and w.failures > 0
    # every acknowledged write is stored once, at the version recorded, in order
    assert [store.configs[n] for n, _ in w.acked] == [v for _, v in w.acked]
    assert [v for _, v in w.acked] == sorted(store.configs.values())[:len(w.acked)]
    assert set(store.configs) <= w.attempted


class _Manager:
    """One manager's ListConfigs, from a {name: version} map (names may repeat)."""

    def __init__(self, configs: list[tuple[str, int]]) -> None:
        self.configs = configs

    def ListConfigs(self, request, timeout):
        out = []
        for name, version in self.configs:
            c = pb.Config(meta=pb.Meta(version=version))
            c.spec.annotations.name = name
            out.append(c)
        return cpb.ListConfigsResponse(configs=out)


class _Managers:
    def __init__(self, views: dict[str, list[tuple[str, int]]]) -> None:
        self.managers = sorted(views)
        self.views = {m: _Manager(v) for m, v in views.items()}

    def api(self, name: str) -> _Manager:
        return self.views[name]


def _writer(acked: list[tuple[str, int]], attempted: set[str]) -> Writer:
    w = Writer(1, seed=1)
    w.acked = list(acked)
    w.attempted = set(attempted) | {n for n, _ in acked}
    return w


def test_write_check_finds_lost_moved_doubled_and_unknown_writes() -> None:
    acked = [("chaos-w1-00001", 5), ("chaos-w1-00002", 9)]
    w = _writer(acked, {"chaos-w1-00003"})
    whole = acked + [("chaos-w1-00003", 12)]      # an unacknowledged write that committed
    assert write_problems(_Managers({"m1": whole, "m2": whole}), [w]) == []  # type: ignore[arg-type]
    cases = {
        "lost 1 acknowledged": [acked[0]],
        "another version": [acked[0], ("chaos-w1-00002", 10)],
        "stored twice": whole + [("chaos-w1-00003", 13)],
        "nobody attempted": whole + [("chaos-w1-00099", 14)],
    }
    for what, view in cases.items():
        problems = write_problems(_Managers({"m1": whole, "m2": view}), [w])  # type: ignore[arg-type]
        assert len(problems) == 1 and problems[0].startswith("m2:") and what in problems[0], \
            (what, problems)
    backwards = _writer([("chaos-w1-00001", 9), ("chaos-w1-00002", 5)], set())
    view = [("chaos-w1-00001", 9), ("chaos-w1-00002", 5)]
    assert any("not rising" in p for p in write_problems(_Managers({"m1": view}), [backwards]))  # type: ignore[arg-type]


class _Waits:
    """Stands in for the injector's stop event: records how long each wait asked for."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.asked.append(seconds)
        return False


class _FiveManagers:
    managers = ["m1", "m2", "m3", "m4", "m5"]
    workers = ["w1", "w2", "w3"]


def test_hold_bounds_and_the_minority_follow_the_options() -> None:
    """--hold decides how long a fault lasts (half the partitions longer), and a
    5-manager lab puts 2 managers in a minority, a 3-manager lab 1."""
    inj = Injector(access=_FiveManagers(), timeline=Timeline(), operator=None,  # type: ignore[arg-type]
                   repair=None, seed=3, hold=(0.5, 0.75))                      # type: ignore[arg-type]
    inj._stop = _Waits()                                                      # type: ignore[assignment]
    for _ in range(20):
        inj._hold()
    assert all(0.5 <= s <= 0.75 for s in inj._stop.asked)                     # type: ignore[attr-defined]
    for _ in range(40):
        inj._hold(long=True)
    longs = inj._stop.asked[20:]                                              # type: ignore[attr-defined]
    assert any(s >= 12.0 for s in longs) and any(s <= 0.75 for s in longs)
    assert inj._minority() == 2
    _FiveManagers.managers = ["m1", "m2", "m3"]
    try:
        assert inj._minority() == 1
    finally:
        _FiveManagers.managers = ["m1", "m2", "m3", "m4", "m5"]


def test_the_command_line_options_reach_the_run() -> None:
    args = _arguments(["--seed", "9", "--duration", "30", "--managers", "5", "--workers", "2",
                       "--writers", "3", "--hold", "1", "2", "--gap", "0.5", "1",
                       "--converge-bound", "40"])
    assert (args.seed, args.duration, args.managers, args.workers, args.writers) == (9, 30, 5, 2, 3)
    assert tuple(args.hold) == (1.0, 2.0) and tuple(args.gap) == (0.5, 1.0)
    assert args.converge_bound == 40.0
    assert len(Writers(None, args.writers, args.seed).writers) == 3   # type: ignore[arg-type]
    with pytest.raises(SystemExit):
        _arguments(["--duration", "0"])
    with pytest.raises(SystemExit):
        _arguments(["--managers", "4"])
