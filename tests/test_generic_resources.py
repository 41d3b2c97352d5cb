"""Generic resources (issue 18), pure parts: the KIND=VALUE forms (proto/genericres.py),
the scheduler's filter and claim (scheduler/generic.py), placement through orchestrator
passes, the container's DOCKER_RESOURCE_* variables, the CLI flags of `service
create|update` and of `swarm init|join|daemon`, the node's kept terms, the manager's
check and the --pretty text. The lab test is in tests/test_e2e_cluster.py."""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import pytest

from cli import node_commands, pretty, specs
from cli.flags import rewrite_bool_assignments
from cli.main import build_parser, main
from cli.parsing import UsageError
from manager.validation import InvalidSpec, check_resources
from node.state import NodeState, apply_generic_flags
from proto import genericres as gr
from proto import objects_pb2 as pb
from scheduler import generic, schedule
from scheduler.nodeinfo import Load, from_loads
from tests.test_orchestrator import Sim, mk_node, mk_service
from tests.test_scheduler import node, pending, task
from worker.taskspec import container_config


def gpus(n: pb.Node, *ids: str) -> pb.Node:
    n.description.resources.generic_resources.extend(gr.named("gpu", i) for i in ids)
    return n


def asks(tasks: list[pb.Task], **counts: int) -> list[pb.Task]:
    for t in tasks:
        t.spec.resources.reservations.generic_resources.extend(
            gr.discrete(k, v) for k, v in counts.items())
    return tasks


def ids(d) -> list[str]:
    return [gr.value_of(r) for r in d.generic]


# ------------------------------------------------------------------ parsing --

class TestParse:
    def test_node_terms_named_and_discrete(self) -> None:
        res = gr.parse_node(["gpu=GPU-1", "ssd=3", "gpu=GPU-2", " fpga = F1 "])
        assert gr.terms(res) == ["gpu=GPU-1", "gpu=GPU-2", "ssd=3", "fpga=F1"]
        assert [gr.is_named(r) for r in res] == [True, True, False, True]
        assert res[2].discrete_resource_spec.value == 3
        assert gr.summary(res) == ["gpu=GPU-1,GPU-2", "ssd=3", "fpga=F1"]

    @pytest.mark.parametrize("terms,why", [
        (["gpu"], "expected KIND=VALUE"),
        (["=1"], "expected KIND=VALUE"),
        (["gpu="], "expected KIND=VALUE"),
        (["gpu=a=b"], "expected KIND=VALUE"),
        (["my gpu=1"], "may hold no spaces or commas"),
        (["gpu=A,B"], "one value per term"),
        (["ssd=-1"], "cannot be negative"),
        (["ssd=1", "ssd=2"], "not both nor two counts"),
        (["gpu=1", "gpu=GPU-2"], "not both nor two counts"),
        (["gpu=A", "gpu=A"], "given twice"),
    ])
    def test_node_terms_refused(self, terms: list[str], why: str) -> None:
        with pytest.raises(ValueError, match=why):
            gr.parse_node(terms)

    def test_request_counts_only(self) -> None:
        res = gr.parse_request(["gpu=2", "ssd=1"])
        assert gr.terms(res) == ["gpu=2", "ssd=1"]
        assert gr.check_request(res) == ""

    @pytest.mark.parametrize("terms,why", [
        (["gpu=GPU-1"], "reserves a count of a kind"),
        (["gpu=0"], "positive integer"),
        (["gpu=-2"], "positive integer"),
        (["gpu=1", "gpu=2"], "given twice"),
        (["gpu"], "expected KIND=VALUE"),
    ])
    def test_request_refused(self, terms: list[str], why: str) -> None:
        with pytest.raises(ValueError, match=why):
            gr.parse_request(terms)

    def test_check_request_refuses_what_the_cli_would(self) -> None:
        assert "not named ones" in gr.check_request([gr.named("gpu", "GPU-1")])
        assert "must be positive" in gr.check_request([gr.discrete("gpu", 0)])
        assert "given twice" in gr.check_request([gr.discrete("a", 1), gr.discrete("a", 2)])
        assert "neither" in gr.check_request([pb.GenericResource()])
        # the kind rule of the flags and compose files: no '=', spaces or commas
        for kind in ("", "a=b", "my gpu", "gpu,ssd", "gpu\t"):
            assert "invalid generic resource kind" in gr.check_request(
                [gr.discrete(kind, 1)]), kind
        with pytest.raises(ValueError, match="may hold no spaces or commas"):
            gr.parse_request(["my gpu=1"])

    def test_env_is_swarmkits_format(self) -> None:
        assigned = [gr.named("gpu", "GPU-1"), gr.named("gpu", "GPU-7"),
                    gr.discrete("ssd", 2), gr.named("nvidia-gpu", "u1")]
        assert gr.env(assigned) == ["DOCKER_RESOURCE_GPU=GPU-1,GPU-7", "DOCKER_RESOURCE_SSD=2",
                                    "DOCKER_RESOURCE_NVIDIA-GPU=u1"]
        assert gr.env([]) == []


# ---------------------------------------------------------------- scheduler --

class TestScheduler:
    def test_only_nodes_with_enough_free_ids_qualify(self) -> None:
        nodes = [gpus(node("a"), "GPU-1", "GPU-2"), node("b"), gpus(node("c"), "GPU-9")]
        decisions = schedule(nodes, [], asks(pending(4), gpu=1), {})
        placed = [d for d in decisions if d.node_id]
        assert Counter(d.node_id for d in placed) == {"a": 2, "c": 1}
        assert sorted(ids(d)[0] for d in placed) == ["GPU-1", "GPU-2", "GPU-9"]
        stuck = [d for d in decisions if not d.node_id]
        assert [d.message for d in stuck] == ["no suitable node (insufficient resources on "
                                              "3 nodes)"]

    def test_two_ids_to_one_task_and_the_next_is_pending(self) -> None:
        nodes = [gpus(node("a"), "G1", "G2", "G3")]
        decisions = schedule(nodes, [], asks(pending(2), gpu=2), {})
        assert ids(decisions[0]) == ["G1", "G2"]
        assert decisions[1].node_id is None
        assert "insufficient resources on 1 node" in decisions[1].message

    def test_ids_held_by_live_tasks_are_taken(self) -> None:
        nodes = [gpus(node("a"), "G1", "G2")]
        running = task("old", node_id="a", state=pb.RUNNING)
        running.assigned_generic_resources.append(gr.named("gpu", "G1"))
        finished = task("gone", node_id="a", state=pb.COMPLETE)
        finished.assigned_generic_resources.append(gr.named("gpu", "G2"))
        decisions = schedule(nodes, [running, finished], asks(pending(2), gpu=1), {})
        assert ids(decisions[0]) == ["G2"]    # a terminal task holds nothing
        assert decisions[1].node_id is None

    def test_discrete_counts(self) -> None:
        ssd = node("a")
        ssd.description.resources.generic_resources.append(gr.discrete("ssd", 5))
        held = task("old", node_id="a", state=pb.RUNNING)
        held.assigned_generic_resources.append(gr.discrete("ssd", 2))
        decisions = schedule([ssd, node("b")], [held], asks(pending(3), ssd=2), {})
        assert [(d.node_id, gr.terms(d.generic)) for d in decisions] == [
            ("a", ["ssd=2"]), (None, []), (None, [])]

    def test_tasks_without_a_reservation_ignore_them(self) -> None:
        nodes = [gpus(node("a"), "G1"), node("b")]
        decisions = schedule(nodes, [], pending(4), {})
        assert Counter(d.node_id for d in decisions) == {"a": 2, "b": 2}
        assert all(d.generic == () for d in decisions)

    def test_claim_and_free(self) -> None:
        offered = gr.parse_node(["gpu=A", "gpu=B", "gpu=C", "ssd=4"])
        held: dict = {}
        generic.change(held, [gr.named("gpu", "B"), gr.discrete("ssd", 3)], 1)
        assert generic.free(offered, held, "gpu") == 2
        assert generic.free(offered, held, "ssd") == 1
        assert generic.free(offered, held, "fpga") == 0
        assert generic.fits((("gpu", 2), ("ssd", 1)), offered, held)
        assert not generic.fits((("ssd", 2),), offered, held)
        assert gr.terms(generic.claim((("gpu", 2), ("ssd", 1)), offered, held)) == [
            "gpu=A", "gpu=C", "ssd=1"]
        generic.change(held, [gr.named("gpu", "B"), gr.discrete("ssd", 3)], -1)
        assert held == {}

    def test_kept_loads_carry_held_resources(self) -> None:
        n = gpus(node("a"), "G1", "G2")
        t = task("t1", node_id="a", state=pb.RUNNING)
        t.assigned_generic_resources.append(gr.named("gpu", "G1"))
        load = Load()
        load.change(t, 1)
        assert load.held == {("gpu", "G1"): 1}
        infos = from_loads([n], {"a": load})
        decisions = schedule([n], (), asks(pending(1), gpu=1), {}, infos)
        assert ids(decisions[0]) == ["G2"]
        assert load.held == {("gpu", "G1"): 1}      # the kept load is not changed
        load.change(t, -1)
        assert load.held == {}


# ------------------------------------------------------- orchestrator passes --

def gpu_service(replicas: int, count: int = 1) -> pb.Service:
    s = mk_service("ml", replicas)
    s.spec.task.resources.reservations.generic_resources.append(gr.discrete("gpu", count))
    return s


def test_passes_place_by_gpu_and_reuse_freed_ids() -> None:
    sim = Sim()
    sim.put(gpus(mk_node("n1"), "GPU-1", "GPU-2"))
    sim.put(mk_node("n2"))
    sim.put(gpu_service(3))
    sim.settle()
    live = sim.live("ml")
    running = [t for t in live if t.status.state == pb.RUNNING]
    assert {t.node_id for t in running} == {"n1"}
    assert sorted(gr.value_of(t.assigned_generic_resources[0]) for t in running) == [
        "GPU-1", "GPU-2"]
    stuck = [t for t in live if t.status.state == pb.PENDING]
    assert [t.scheduling_message for t in stuck] == [
        "no suitable node (insufficient resources on 2 nodes)"]
    # a running task ends: the pending one gets its id (freed through the kept loads)
    first = running[0]
    sim.set_state(first.id, pb.FAILED)
    sim.settle()
    holders = [t for t in sim.live("ml") if t.status.state == pb.RUNNING]
    assert len(holders) == 2
    assert sorted(gr.value_of(t.assigned_generic_resources[0]) for t in holders) == [
        "GPU-1", "GPU-2"]
    assert any(t.id == stuck[0].id for t in holders)


# ------------------------------------------------------------------ worker --

def test_container_env_gets_the_assigned_resources_after_the_specs() -> None:
    t = pb.Task(id="t1", service_id="s1", slot=1, node_id="n1")
    t.spec.container.image = "busybox"
    t.spec.container.env.append("A=1")
    t.assigned_generic_resources.extend([gr.named("gpu", "GPU-2"), gr.discrete("ssd", 1)])
    config = container_config(t, "n1", grantable_caps=())
    assert config.env == ["A=1", "DOCKER_RESOURCE_GPU=GPU-2", "DOCKER_RESOURCE_SSD=1"]


# --------------------------------------------------------------------- cli --

def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(rewrite_bool_assignments(argv))


def test_service_create_and_update_flags() -> None:
    spec = specs.create_spec(parse(["service", "create", "--generic-resource", "gpu=2",
                                    "--generic-resource", "ssd=1", "busybox"]))
    held = spec.task.resources.reservations.generic_resources
    assert gr.terms(held) == ["gpu=2", "ssd=1"]
    changed = specs.update_spec(spec, parse(["service", "update", "--generic-resource-rm",
                                             "ssd", "--generic-resource-add", "gpu=1",
                                             "--generic-resource-add", "fpga=1", "web"]))
    assert gr.terms(changed.task.resources.reservations.generic_resources) == [
        "gpu=1", "fpga=1"]
    same = specs.update_spec(changed, parse(["service", "update", "--env-add", "X=1", "web"]))
    assert gr.terms(same.task.resources.reservations.generic_resources) == ["gpu=1", "fpga=1"]


@pytest.mark.parametrize("argv,why", [
    (["service", "create", "--generic-resource", "gpu=GPU-1", "busybox"],
     "reserves a count of a kind"),
    (["service", "create", "--generic-resource", "gpu", "busybox"], "expected KIND=VALUE"),
    (["service", "create", "--generic-resource", "gpu=0", "busybox"], "positive integer"),
])
def test_service_create_refuses_bad_values(argv: list[str], why: str) -> None:
    with pytest.raises(UsageError, match=why):
        specs.create_spec(parse(argv))


def test_service_update_refuses_bad_values() -> None:
    spec = specs.create_spec(parse(["service", "create", "--generic-resource", "gpu=1",
                                    "busybox"]))
    with pytest.raises(UsageError, match="could not find generic-resource `ssd` to remove"):
        specs.update_spec(spec, parse(["service", "update", "--generic-resource-rm", "ssd",
                                       "web"]))
    ns = parse(["service", "update", "--generic-resource-add", "gpu=x", "web"])
    with pytest.raises(UsageError, match="reserves a count"):
        specs.check_values(ns)    # before any call to the manager


def test_bad_generic_resource_is_one_line_and_exit_1(capsys) -> None:
    assert main(["service", "create", "--generic-resource", "gpu=GPU-1", "busybox"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: invalid --generic-resource 'gpu=GPU-1'") and \
        err.count("\n") == 1


def test_daemon_flags_reach_the_config() -> None:
    config = node_commands.node_config(parse(["daemon", "--node-generic-resource", "gpu=G1",
                                              "--node-generic-resource", "ssd=2"]), {})
    assert config.generic_resources == ("gpu=G1", "ssd=2")
    config = node_commands.node_config(parse(["join", "--token", "t",
                                              "--node-generic-resource", "gpu=G1",
                                              "10.0.0.2:2377"]), {})
    assert config.generic_resources == ("gpu=G1",)
    config = node_commands.node_config(parse(["init", "--node-generic-resource", "gpu=G1"]), {})
    assert config.generic_resources == ("gpu=G1",)
    assert node_commands.node_config(parse(["daemon"]), {}).generic_resources is None
    with pytest.raises(UsageError, match="not both nor two counts"):
        node_commands.node_config(parse(["daemon", "--node-generic-resource", "ssd=1",
                                         "--node-generic-resource", "ssd=2"]), {})


def test_node_state_keeps_the_terms(tmp_path: Path) -> None:
    state = NodeState(node_id="n", role="worker", advertise_addr="a", listen_addr="l",
                      raft_addr="r")
    assert not apply_generic_flags(state, None)
    assert apply_generic_flags(state, ["gpu=G1", "ssd=2", "gpu=G2"])
    assert state.generic_resources == ["gpu=G1", "gpu=G2", "ssd=2"]
    assert not apply_generic_flags(state, ["gpu=G1", "gpu=G2", "ssd=2"])
    state.save(tmp_path)
    assert NodeState.load(tmp_path).generic_resources == ["gpu=G1", "gpu=G2", "ssd=2"]
    with pytest.raises(ValueError):
        apply_generic_flags(state, ["gpu"])
    assert state.generic_resources == ["gpu=G1", "gpu=G2", "ssd=2"]
    assert apply_generic_flags(state, [""])             # "" alone clears them
    assert state.generic_resources == []


# ----------------------------------------------------------------- manager --

def test_manager_refuses_named_or_limited_generic_resources() -> None:
    r = pb.ResourceRequirements()
    r.reservations.generic_resources.append(gr.discrete("gpu", 1))
    check_resources(r)
    r.reservations.generic_resources.append(gr.named("gpu", "GPU-1"))
    with pytest.raises(InvalidSpec, match="not named ones"):
        check_resources(r)
    r = pb.ResourceRequirements()
    r.limits.generic_resources.append(gr.discrete("gpu", 1))
    with pytest.raises(InvalidSpec, match="reserved, not limited"):
        check_resources(r)


# ------------------------------------------------------------------ pretty --

def test_pretty_texts_show_them() -> None:
    s = mk_service("ml", 1)
    s.spec.task.resources.reservations.generic_resources.extend(gr.parse_request(["gpu=2"]))
    text = pretty.service_text(s)
    assert "Resources:\n Reservations:\n  Generic Resources:\n   gpu:" in text
    assert text.split("   gpu:")[1].split("\n")[0].strip() == "2"
    n = gpus(mk_node("n1"), "GPU-1", "GPU-2")
    n.description.resources.generic_resources.append(gr.discrete("ssd", 3))
    text = pretty.node_text(n)
    lines = [line.rstrip() for line in text.splitlines()]
    at = lines.index(" Generic Resources:")
    assert [line.split() for line in lines[at + 1:at + 3]] == [
        ["gpu:", "GPU-1,", "GPU-2"], ["ssd:", "3"]]
