"""Unit tests for scheduler/: constraint parsing and matching, filters, spread."""
from __future__ import annotations

from collections import Counter

import pytest

from proto import objects_pb2 as pb
from scheduler import Decision, schedule
from scheduler import constraints as cons


def node(nid: str, *, hostname: str = "", role: int = pb.WORKER, state: int = pb.NodeStatus.READY,
         availability: int = pb.NodeSpec.ACTIVE, labels: dict | None = None,
         engine_labels: dict | None = None, os: str = "linux", arch: str = "x86_64",
         cpus: float = 0, memory: int = 0) -> pb.Node:
    n = pb.Node(id=nid, role=role)
    n.description.hostname = hostname or f"host-{nid}"
    n.description.platform.os = os
    n.description.platform.architecture = arch
    n.description.resources.nano_cpus = int(cpus * 1e9)
    n.description.resources.memory_bytes = memory
    n.description.engine_labels.update(engine_labels or {})
    n.spec.annotations.labels.update(labels or {})
    n.spec.availability = availability
    n.status.state = state
    return n


def task(tid: str, service: str = "svc", *, slot: int = 1, node_id: str = "",
         state: int = pb.PENDING, desired: int = pb.RUNNING, constraints: list[str] = (),
         prefs: list[str] = (), cpus: float = 0, memory: int = 0, max_replicas: int = 0,
         spec_version: int = 1) -> pb.Task:
    t = pb.Task(id=tid, service_id=service, slot=slot, node_id=node_id, desired_state=desired,
                spec_version=spec_version)
    t.status.state = state
    t.spec.placement.constraints.extend(constraints)
    for p in prefs:
        t.spec.placement.preferences.add(spread=p)
    t.spec.placement.max_replicas = max_replicas
    t.spec.resources.reservations.nano_cpus = int(cpus * 1e9)
    t.spec.resources.reservations.memory_bytes = memory
    return t


def pending(n: int, service: str = "svc", **kw) -> list[pb.Task]:
    return [task(f"{service}-t{i:04d}", service, slot=i + 1, **kw) for i in range(n)]


def placed(decisions: list[Decision]) -> Counter:
    return Counter(d.node_id for d in decisions)


# ------------------------------------------------------------- constraints --

class TestParse:
    @pytest.mark.parametrize("expr,key,op,value", [
        ("node.id==abc", "node.id", "==", "abc"),
        ("node.hostname != web1", "node.hostname", "!=", "web1"),
        ("node.role==manager", "node.role", "==", "manager"),
        ("NODE.ROLE==Worker", "node.role", "==", "Worker"),
        ("node.platform.os==linux", "node.platform.os", "==", "linux"),
        ("node.platform.arch!=arm64", "node.platform.arch", "!=", "arm64"),
        ("node.labels.zone==eu-1", "node.labels.zone", "==", "eu-1"),
        ("engine.labels.disk==ssd", "engine.labels.disk", "==", "ssd"),
        ("node.labels.Zone==a", "node.labels.Zone", "==", "a"),
    ])
    def test_accepts(self, expr, key, op, value):
        c = cons.parse(expr)
        assert (c.key, c.op, c.value, c.expr) == (key, op, value, expr)

    @pytest.mark.parametrize("expr,why", [
        ("node.role=manager", "no == or != operator"),
        ("node.role", "no == or != operator"),
        ("node.id==", "the value is empty"),
        ("==x", "malformed"),
        ("node.color==red", "unknown key 'node.color'"),
        ("node.labels.==x", "invalid label name"),
        ("node.role==boss", "node.role must be manager or worker"),
        ("node.id==a==b", "more than one operator"),
    ])
    def test_rejects_with_readable_message(self, expr, why):
        with pytest.raises(ValueError) as err:
            cons.parse(expr)
        msg = str(err.value)
        assert repr(expr) in msg
        assert why in msg
        assert "KEY==VALUE or KEY!=VALUE" in msg

    def test_parse_all_raises_on_first_bad(self):
        with pytest.raises(ValueError, match="bogus"):
            cons.parse_all(["node.role==worker", "bogus==1"])


class TestMatch:
    n = node("n1", hostname="web1", role=pb.MANAGER, labels={"zone": "A"},
             engine_labels={"disk": "ssd"}, arch="x86_64")

    @pytest.mark.parametrize("expr,expected", [
        ("node.id==n1", True), ("node.id!=n1", False), ("node.id==n2", False),
        ("node.hostname==web1", True), ("node.hostname==WEB1", True),
        ("node.hostname!=web2", True),
        ("node.role==manager", True), ("node.role==worker", False),
        ("node.role!=worker", True),
        ("node.platform.os==linux", True), ("node.platform.os!=linux", False),
        ("node.platform.arch==amd64", True), ("node.platform.arch==x86_64", True),
        ("node.platform.arch==arm64", False),
        ("node.labels.zone==a", True), ("node.labels.zone!=A", False),
        ("node.labels.zone==b", False), ("node.labels.rack==1", False),
        ("node.labels.rack!=1", True), ("node.labels.ZONE==a", False),
        ("engine.labels.disk==ssd", True), ("engine.labels.disk!=ssd", False),
        ("engine.labels.gpu!=yes", True),
    ])
    def test_match(self, expr, expected):
        assert cons.parse(expr).matches(self.n) is expected

    def test_match_all_and_platforms(self):
        cs = cons.parse_all(["node.role==manager", "node.labels.zone==a"])
        assert cons.match_all(cs, self.n)
        assert not cons.match_all(cs + [cons.parse("node.id==zz")], self.n)
        assert cons.platform_matches([], self.n)
        assert cons.platform_matches([pb.Platform(os="linux", architecture="amd64")], self.n)
        assert cons.platform_matches([pb.Platform(os="", architecture="")], self.n)
        assert not cons.platform_matches([pb.Platform(os="windows")], self.n)

    def test_label_value(self):
        assert cons.label_value("node.labels.zone", self.n) == "A"
        assert cons.label_value("engine.labels.none", self.n) is None
        with pytest.raises(ValueError):
            cons.label_value("node.id", self.n)


# ---------------------------------------------------------------- schedule --

def test_spread_two_per_node():
    nodes = [node(f"n{i}") for i in range(5)]
    ds = schedule(nodes, [], pending(10), {})
    assert len(ds) == 10
    assert placed(ds) == {f"n{i}": 2 for i in range(5)}
    assert all(d.message == "" for d in ds)


def test_decisions_follow_pending_order_and_are_deterministic():
    nodes = [node(f"n{i}") for i in range(3)]
    p = pending(7)
    first = schedule(nodes, [], p, {})
    assert [d.task_id for d in first] == [t.id for t in p]
    assert first == schedule(list(reversed(nodes)), [], p, {})


def test_accepts_mappings():
    nodes = {n.id: n for n in (node("a"), node("b"))}
    ds = schedule(nodes, {}, pending(2), {})
    assert placed(ds) == {"a": 1, "b": 1}


def test_existing_tasks_of_service_then_total_load():
    nodes = [node("a"), node("b"), node("c")]
    existing = [task("x1", node_id="a", state=pb.RUNNING),
                task("x2", node_id="a", state=pb.RUNNING),
                task("o1", "other", node_id="b", state=pb.RUNNING)]
    ds = schedule(nodes, existing, pending(1), {})
    assert ds[0].node_id == "c"  # b has no svc task but more tasks overall
    ds = schedule(nodes, existing, pending(2), {})
    assert placed(ds) == {"c": 1, "b": 1}


def test_terminal_and_shutdown_tasks_do_not_count_for_spread():
    nodes = [node("a"), node("b")]
    existing = [task("x1", node_id="a", state=pb.FAILED),
                task("x2", node_id="a", state=pb.RUNNING, desired=pb.SHUTDOWN),
                task("x3", node_id="b", state=pb.RUNNING)]
    assert schedule(nodes, existing, pending(1), {})[0].node_id == "a"


def test_not_ready_and_unavailable_nodes():
    nodes = [node("down", state=pb.NodeStatus.DOWN),
             node("drain", availability=pb.NodeSpec.DRAIN),
             node("pause", availability=pb.NodeSpec.PAUSE),
             node("ok")]
    ds = schedule(nodes, [], pending(3), {})
    assert placed(ds) == {"ok": 3}
    ds = schedule(nodes[:3], [], pending(1), {})
    assert ds[0].node_id is None
    assert ds[0].message == ("no suitable node (2 nodes not available for new tasks "
                             "(paused or drained); 1 node not ready)")


def test_no_nodes_message():
    ds = schedule([], [], pending(1), {})
    assert ds == [Decision("svc-t0000", None, "no suitable node (no nodes available)")]


@pytest.mark.parametrize("expr,expected", [
    ("node.labels.zone==a", {"n1", "n2"}),
    ("node.labels.zone!=a", {"n3", "n4"}),
    ("node.role==manager", {"n1"}),
    ("node.role!=manager", {"n2", "n3", "n4"}),
    ("node.hostname==host-n3", {"n3"}),
    ("node.id!=n1", {"n2", "n3", "n4"}),
    ("engine.labels.disk==ssd", {"n4"}),
    ("node.platform.arch==arm64", {"n2"}),
])
def test_constraints_select_nodes(expr, expected):
    nodes = [node("n1", role=pb.MANAGER, labels={"zone": "a"}),
             node("n2", labels={"zone": "a"}, arch="aarch64"),
             node("n3", labels={"zone": "b"}),
             node("n4", engine_labels={"disk": "ssd"})]
    ds = schedule(nodes, [], pending(8, constraints=[expr]), {})
    assert set(placed(ds)) == expected


def test_constraints_unsatisfied_message_counts_nodes():
    nodes = [node("n1"), node("n2"), node("n3"),
             node("big", labels={"zone": "a"}, cpus=1)]
    ds = schedule(nodes, [], pending(1, constraints=["node.labels.zone==a"], cpus=2), {})
    assert ds[0].node_id is None
    assert ds[0].message == ("no suitable node (scheduling constraints not satisfied on 3 nodes; "
                             "insufficient resources on 1 node)")


def test_bad_constraint_on_task_is_explained():
    ds = schedule([node("a")], [], pending(1, constraints=["nonsense"]), {})
    assert ds[0].node_id is None
    assert "scheduling constraints not satisfied on 1 node" in ds[0].message
    assert "invalid constraint 'nonsense'" in ds[0].message


def test_resources_account_for_existing_and_same_call_tasks():
    gib = 1 << 30
    nodes = [node("a", cpus=2, memory=4 * gib), node("b", cpus=2, memory=4 * gib)]
    existing = [task("x", "other", node_id="a", state=pb.RUNNING, cpus=1, memory=gib),
                task("done", "other", node_id="b", state=pb.COMPLETE, cpus=2, memory=4 * gib)]
    ds = schedule(nodes, existing, pending(4, cpus=1), {})
    assert placed(ds) == {"a": 1, "b": 2, None: 1}
    assert ds[-1].message == "no suitable node (insufficient resources on 2 nodes)"
    ds = schedule(nodes, existing, pending(2, memory=3 * gib), {})
    assert placed(ds) == {"a": 1, "b": 1}


def test_reservation_on_node_without_reported_resources():
    ds = schedule([node("a")], [], pending(1, memory=1), {})
    assert ds[0].node_id is None and "insufficient resources on 1 node" in ds[0].message
    assert schedule([node("a")], [], pending(1), {})[0].node_id == "a"


def test_max_replicas_per_node():
    nodes = [node("a"), node("b")]
    existing = [task("x", node_id="a", state=pb.RUNNING)]
    ds = schedule(nodes, existing, pending(4, max_replicas=2), {})
    assert placed(ds) == {"a": 1, "b": 2, None: 1}
    assert ds[-1].message == "no suitable node (max replicas per node reached on 2 nodes)"


def host_service(sid: str, port: int) -> pb.Service:
    s = pb.Service(id=sid)
    s.spec.endpoint.ports.add(target_port=80, published_port=port,
                              publish_mode=pb.PortConfig.HOST)
    return s


def test_host_ports():
    services = {"web": host_service("web", 8080), "other": host_service("other", 8080),
                "ingress": pb.Service(id="ingress")}
    services["ingress"].spec.endpoint.ports.add(target_port=80, published_port=8080)
    nodes = [node("a"), node("b"), node("c")]
    existing = [task("o", "other", node_id="a", state=pb.RUNNING)]
    ds = schedule(nodes, existing, pending(3, "web"), services)
    assert placed(ds) == {"b": 1, "c": 1, None: 1}
    assert ds[-1].message == "no suitable node (host-mode port already in use on 3 nodes)"
    # ingress-mode ports never conflict
    assert all(d.node_id for d in schedule(nodes, existing, pending(3, "ingress"), services))


def test_host_port_from_task_endpoint_wins():
    t = task("o", "other", node_id="a", state=pb.RUNNING)
    t.endpoint.ports.add(target_port=80, published_port=9000, publish_mode=pb.PortConfig.HOST)
    ds = schedule([node("a"), node("b")], [t], pending(2, "web"),
                  {"web": host_service("web", 9000)})
    assert placed(ds) == {"b": 1, None: 1}


def test_spread_preference():
    nodes = [node("a1", labels={"zone": "a"}), node("a2", labels={"zone": "a"}),
             node("a3", labels={"zone": "a"}), node("b1", labels={"zone": "b"}),
             node("x")]
    ds = schedule(nodes, [], pending(6, prefs=["node.labels.zone"]), {})
    by_zone = Counter(
        {"a1": "a", "a2": "a", "a3": "a", "b1": "b", "x": None}[d.node_id] for d in ds)
    assert by_zone == {"a": 2, "b": 2, None: 2}
    assert placed(ds)["b1"] == 2 and placed(ds)["x"] == 2


def test_nested_preferences():
    nodes = []
    for dc in ("east", "west"):
        for rack in ("r1", "r2"):
            for i in range(2 if dc == "east" else 1):
                nodes.append(node(f"{dc}-{rack}-{i}", labels={"dc": dc, "rack": rack}))
    ds = schedule(nodes, [], pending(8, prefs=["node.labels.dc", "node.labels.rack"]), {})
    counts = placed(ds)
    per_dc = Counter(nid.split("-")[0] for nid in counts.elements())
    per_rack = Counter("-".join(nid.split("-")[:2]) for nid in counts.elements())
    assert per_dc == {"east": 4, "west": 4}
    assert set(per_rack.values()) == {2}


def test_preference_accounts_existing_tasks():
    nodes = [node("a1", labels={"zone": "a"}), node("b1", labels={"zone": "b"}),
             node("b2", labels={"zone": "b"})]
    existing = [task("x", node_id="b1", state=pb.RUNNING)]
    ds = schedule(nodes, existing, pending(1, prefs=["engine.labels.nothing",
                                                     "node.labels.zone"]), {})
    assert ds[0].node_id == "a1"


def test_preassigned_node_is_only_checked():
    nodes = [node("a"), node("b", availability=pb.NodeSpec.PAUSE), node("c", cpus=1)]
    ts = [task("g1", node_id="a", slot=0), task("g2", node_id="b", slot=0),
          task("g3", node_id="c", slot=0, cpus=2), task("g4", node_id="gone", slot=0)]
    ds = {d.task_id: d for d in schedule(nodes, [], ts, {})}
    assert ds["g1"].node_id == "a"
    assert ds["g2"] == Decision("g2", None, "no suitable node (1 node not available for new "
                                            "tasks (paused or drained))")
    assert ds["g3"].message == "no suitable node (insufficient resources on 1 node)"
    assert ds["g4"].node_id is None and "not in the cluster" in ds["g4"].message


def test_inputs_not_modified():
    nodes = [node("a")]
    p = pending(2)
    before = [t.SerializeToString() for t in p]
    schedule(nodes, [], p, {})
    assert [t.SerializeToString() for t in p] == before


def test_several_services_in_one_call():
    nodes = [node("a"), node("b")]
    ds = schedule(nodes, [], pending(2, "s1") + pending(2, "s2"), {})
    assert placed(ds) == {"a": 2, "b": 2}
    by_service = Counter((d.task_id.split("-")[0], d.node_id) for d in ds)
    assert set(by_service.values()) == {1}


def test_thousand_tasks_on_hundred_nodes():
    nodes = [node(f"n{i:03d}", labels={"zone": f"z{i % 4}"}, cpus=64, memory=1 << 40)
             for i in range(100)]
    existing = [task(f"e{i}", "bg", node_id=f"n{i % 100:03d}", state=pb.RUNNING)
                for i in range(300)]
    p = (pending(600, "web", cpus=0.1, prefs=["node.labels.zone"])
         + pending(400, "api", constraints=["node.labels.zone!=z0"]))
    ds = schedule(nodes, existing, p, {})
    assert len(ds) == 1000 and all(d.node_id for d in ds)
    web = Counter(d.node_id for d in ds if d.task_id.startswith("web"))
    assert set(web.values()) == {6}
    api = Counter(d.node_id for d in ds if d.task_id.startswith("api"))
    assert len(api) == 75 and not any(nid for nid in api if int(nid[1:]) % 4 == 0)
