"""Unit tests for manager/allocator/ and manager/netview.py (pure logic, no raft).

Networks are made by `networks.new_network` as the control API does; tasks
get their addresses in the orchestrator's reconcile passes, driven by the
in-memory store and scripted agent of tests/test_orchestrator.py.
"""
from __future__ import annotations

import ipaddress
from typing import Optional

import pytest

from manager.allocator import ipam, networks, ports
from manager.allocator.ipam import AllocationError
from manager.netview import NetIndex
from proto import dispatcher_pb2 as dpb
from proto import objects_pb2 as pb
from tests.test_orchestrator import Sim, mk_node, mk_service


class NetSim(Sim):
    """The orchestrator test store, with a helper that makes networks as the control API does."""

    def network(self, name: str, subnet: str = "", gateway: str = "",
                ingress: bool = False, encrypted: bool = False) -> pb.Network:
        spec = pb.NetworkSpec(driver="overlay", ingress=ingress)
        spec.annotations.name = name
        if subnet:
            spec.ipam.add(subnet=subnet, gateway=gateway)
        if encrypted:
            spec.driver_options["encrypted"] = ""
        cluster = next(iter(self.tables["cluster"].values()), None)
        net = networks.new_network(spec, self.tables["network"].values(), cluster)
        net.id = f"net-{name}"
        return self.put(net)


def svc_on(sid: str, replicas: int, *nets: str, publish: tuple = (),
           dnsrr: bool = False) -> pb.Service:
    s = mk_service(sid, replicas, delay=0)
    for n in nets:
        s.spec.task.networks.add(target=n, aliases=[f"{sid}-alias"])
    for published, target in publish:
        s.spec.endpoint.ports.add(published_port=published, target_port=target)
    if dnsrr:
        s.spec.endpoint.mode = pb.EndpointSpec.DNSRR
    s.endpoint.spec.CopyFrom(s.spec.endpoint)
    return s


@pytest.fixture
def sim() -> NetSim:
    s = NetSim()
    for i in range(3):
        n = mk_node(f"n{i}")
        n.status.addr = f"ipv4:192.168.50.{10 + i}:40000"
        s.put(n)
    ingress = networks.ingress_network(None)
    ingress.id = "net-ingress"
    s.put(ingress)
    return s


def addrs(sim: NetSim, network_id: str, live_only: bool = True) -> list[str]:
    out = []
    for t in sim.tasks():
        if live_only and t.status.state >= pb.COMPLETE:
            continue
        for att in t.networks:
            if att.network_id == network_id:
                out.extend(att.addresses)
    return out


# ------------------------------------------------------------- networks ----

def test_ingress_is_dockers_first_subnet_and_vni(sim: NetSim):
    ingress = sim.tables["network"]["net-ingress"]
    assert ingress.spec.ingress and ingress.vni == 4096
    assert ingress.ipam[0].subnet == "10.0.0.0/24"
    assert ingress.ipam[0].gateway == "10.0.0.1"


def test_pool_subnets_do_not_overlap_and_vnis_are_unique(sim: NetSim):
    made = [sim.network(f"n{i}") for i in range(5)]
    subnets = [ipaddress.ip_network(n.ipam[0].subnet) for n in made]
    assert [str(s) for s in subnets] == [f"10.0.{i}.0/24" for i in range(1, 6)]
    assert [n.vni for n in made] == [4097, 4098, 4099, 4100, 4101]
    assert [n.ipam[0].gateway for n in made] == [f"10.0.{i}.1" for i in range(1, 6)]


def test_user_subnet_respected_and_pool_skips_it(sim: NetSim):
    mine = sim.network("mine", subnet="10.0.1.0/24", gateway="10.0.1.254")
    assert mine.ipam[0].subnet == "10.0.1.0/24" and mine.ipam[0].gateway == "10.0.1.254"
    big = sim.network("big", subnet="10.0.2.0/23")
    assert big.ipam[0].gateway == "10.0.2.1"
    nxt = sim.network("next")
    assert nxt.ipam[0].subnet == "10.0.4.0/24"


@pytest.mark.parametrize("subnet,gateway,message", [
    ("10.0.0.128/25", "", "overlaps with subnet 10.0.0.0/24 of network ingress"),
    ("10.0.0.0/16", "", "overlaps"),
    ("10.9.0.5/24", "", "it should be 10.9.0.0/24"),
    ("nonsense", "", "expected an IPv4 CIDR"),
    ("fd00::/64", "", "only IPv4"),
    ("10.9.0.0/24", "10.8.0.1", "not a host address of subnet 10.9.0.0/24"),
    ("", "10.9.0.1", "--gateway needs --subnet"),
])
def test_bad_subnets_refused(sim: NetSim, subnet: str, gateway: str, message: str):
    spec = pb.NetworkSpec(driver="overlay")
    spec.annotations.name = "bad"
    spec.ipam.add(subnet=subnet, gateway=gateway)
    with pytest.raises(AllocationError, match=message):
        networks.new_network(spec, sim.tables["network"].values(), None)


def test_second_ingress_and_other_drivers_refused(sim: NetSim):
    spec = pb.NetworkSpec(driver="overlay", ingress=True)
    spec.annotations.name = "ingress2"
    with pytest.raises(AllocationError, match="ingress network already exists"):
        networks.new_network(spec, sim.tables["network"].values(), None)
    with pytest.raises(AllocationError, match="not supported"):
        networks.new_network(pb.NetworkSpec(driver="bridge"), [], None)


def test_cluster_pool_and_subnet_size():
    cluster = pb.Cluster()
    cluster.spec.default_addr_pool.extend(["172.30.0.0/16"])
    cluster.spec.subnet_size = 26
    first = networks.ingress_network(cluster)
    assert first.ipam[0].subnet == "172.30.0.0/26"
    spec = pb.NetworkSpec()
    spec.annotations.name = "x"
    second = networks.new_network(spec, [first], cluster)
    assert second.ipam[0].subnet == "172.30.0.64/26"


def test_pool_exhaustion_is_an_error():
    cluster = pb.Cluster()
    cluster.spec.default_addr_pool.extend(["192.168.0.0/23"])
    made: list[pb.Network] = []
    for i in range(2):
        spec = pb.NetworkSpec()
        spec.annotations.name = f"n{i}"
        made.append(networks.new_network(spec, made, cluster))
    with pytest.raises(AllocationError, match="exhausted"):
        networks.new_network(pb.NetworkSpec(), made, cluster)


def test_bad_pools_refused():
    with pytest.raises(AllocationError, match="smaller than the subnet size"):
        ipam.parse_pools(["10.0.0.0/28"], 24)
    with pytest.raises(AllocationError, match="expected an IPv4 CIDR"):
        ipam.parse_pools(["10.0.0.1/8"], 24)
    with pytest.raises(AllocationError, match="subnet size"):
        ipam.parse_pools([], 31)
    # the size is checked first: a negative one is not "larger than the pool"
    with pytest.raises(AllocationError, match=r"^invalid subnet size /-1: expected 8 to 29$"):
        ipam.parse_pools(["10.0.0.0/8"], -1)


def test_mac_is_dockers():
    assert ipam.mac_of("10.0.1.3/24") == "02:42:0a:00:01:03"


# ---------------------------------------------------------------- tasks ----

def test_tasks_get_distinct_addresses_and_vip_before_placement(sim: NetSim):
    sim.network("back")
    sim.put(svc_on("web", 3, "net-back"))
    plan = sim.step()
    assert len(plan.actions) == 4  # three tasks created, the service's VIP: one transaction
    svc = sim.service("web")
    assert [(v.network_id, v.addr) for v in svc.endpoint.virtual_ips] == [("net-back",
                                                                          "10.0.1.2/24")]
    tasks = sim.tasks("web")
    assert all(t.node_id and t.status.state == pb.ASSIGNED for t in tasks)
    got = addrs(sim, "net-back")
    assert sorted(got) == ["10.0.1.3/24", "10.0.1.4/24", "10.0.1.5/24"]
    assert all(list(t.networks[0].aliases) == ["web-alias"] for t in tasks)
    assert all(t.endpoint.virtual_ips == svc.endpoint.virtual_ips for t in tasks)


def test_addresses_released_when_tasks_end_or_are_removed(sim: NetSim):
    sim.network("back")
    sim.put(svc_on("web", 2, "net-back"))
    sim.settle()
    before = sorted(addrs(sim, "net-back"))
    victim = sim.tasks("web")[0]
    sim.set_state(victim.id, pb.FAILED, exit_code=1)
    sim.settle()
    after = addrs(sim, "net-back")
    assert len(after) == len(set(after)) == 2
    assert victim.networks[0].addresses[0] in after  # the failed task's address was reused
    assert sorted(after) == before
    # scale to zero: every address free; the next tasks start from the bottom again
    s = sim.update_service("web", replicas=0)
    sim.settle()
    assert addrs(sim, "net-back") == []
    s = pb.Service()
    s.CopyFrom(sim.service("web"))
    s.spec.replicated.replicas = 1
    sim.put(s)
    sim.settle()
    assert addrs(sim, "net-back") == ["10.0.1.3/24"]


def test_no_double_allocation_across_services_and_networks(sim: NetSim):
    sim.network("a")
    sim.network("b")
    sim.put(svc_on("s1", 3, "net-a", "net-b"))
    sim.put(svc_on("s2", 4, "net-a"))
    sim.settle()
    for nid in ("net-a", "net-b"):
        used = addrs(sim, nid) + [v.addr for s in sim.tables["service"].values()
                                  for v in s.endpoint.virtual_ips if v.network_id == nid]
        assert len(used) == len(set(used))
        assert "10.0.1.1/24" not in used and "10.0.2.1/24" not in used  # gateways
    assert len(addrs(sim, "net-a")) == 7 and len(addrs(sim, "net-b")) == 3


def test_vip_released_on_service_rm_and_on_network_detach(sim: NetSim):
    sim.network("a")
    sim.network("b")
    sim.put(svc_on("s1", 1, "net-a", "net-b"))
    sim.settle()
    vips = {v.network_id: v.addr for v in sim.service("s1").endpoint.virtual_ips}
    assert set(vips) == {"net-a", "net-b"}
    s = pb.Service()
    s.CopyFrom(sim.service("s1"))
    del s.spec.task.networks[1]
    s.spec_version += 1
    sim.put(s)
    sim.settle()
    assert [v.network_id for v in sim.service("s1").endpoint.virtual_ips] == ["net-a"]
    assert addrs(sim, "net-b") == []
    sim.delete("service", "s1")
    sim.settle()
    sim.put(svc_on("s2", 0, "net-a"))
    sim.settle()
    assert sim.service("s2").endpoint.virtual_ips[0].addr == vips["net-a"]


def test_dnsrr_has_no_vip(sim: NetSim):
    sim.network("a")
    sim.put(svc_on("dns", 2, "net-a", dnsrr=True))
    sim.settle()
    assert not sim.service("dns").endpoint.virtual_ips
    assert len(addrs(sim, "net-a")) == 2


def test_missing_network_holds_tasks_pending(sim: NetSim):
    sim.put(svc_on("web", 1, "net-gone"))
    sim.settle()
    (task,) = sim.tasks("web")
    assert task.status.state == pb.PENDING and not task.node_id
    assert "net-gone" in task.scheduling_message


def test_exhausted_subnet_holds_tasks_pending(sim: NetSim):
    sim.network("tiny", subnet="10.50.0.0/29")  # 6 hosts: gateway, VIP and four tasks
    sim.put(svc_on("web", 6, "net-tiny"))
    sim.settle()
    tasks = sim.tasks("web")
    placed = [t for t in tasks if t.node_id]
    held = [t for t in tasks if not t.node_id]
    assert len(placed) == 4 and len(held) == 2
    assert all("no address left in subnet 10.50.0.0/29" in t.scheduling_message for t in held)


# ---------------------------------------------------------------- ports ----

def test_published_port_auto_assigned_and_kept(sim: NetSim):
    sim.put(svc_on("web", 2, publish=((0, 80), (8080, 81))))
    sim.settle()
    svc = sim.service("web")
    assert [(p.published_port, p.target_port) for p in svc.endpoint.ports] == [(30000, 80),
                                                                               (8080, 81)]
    # ingress VIP and ingress attachments for tasks, an ingress address for every node
    assert [v.network_id for v in svc.endpoint.virtual_ips] == ["net-ingress"]
    assert len(addrs(sim, "net-ingress")) == 2
    node_addrs = [a.addresses[0] for n in sim.tables["node"].values() for a in n.attachments]
    assert len(node_addrs) == 3
    every = node_addrs + addrs(sim, "net-ingress") + [svc.endpoint.virtual_ips[0].addr]
    assert len(set(every)) == 6
    sim.put(svc_on("api", 1, publish=((0, 80),)))
    sim.settle()
    assert sim.service("api").endpoint.ports[0].published_port == 30001
    # an update of the first service keeps its dynamic port
    s = pb.Service()
    s.CopyFrom(sim.service("web"))
    s.spec.task.container.image = "busybox:2"
    s.spec_version += 1
    sim.put(s)
    sim.settle()
    assert sim.service("web").endpoint.ports[0].published_port == 30000


def test_dynamic_ports_skip_explicit_ones():
    book = ports.PortBook()
    a = svc_on("a", 1, publish=((30000, 80),))
    b = svc_on("b", 1, publish=((0, 80),))
    for s in (a, b):
        assert ports.reserve(s, book, {}) == ""
    allocated, why = ports.allocate_ports(b, book)
    assert why == "" and allocated[0].published_port == 30001


def test_port_conflict_detected(sim: NetSim):
    a = svc_on("a", 1, publish=((8080, 80),))
    sim.put(a)
    sim.settle()
    b = svc_on("b", 1, publish=((8080, 81),))
    assert ports.first_conflict(b.spec.endpoint, sim.tables["service"].values()) == (
        "port '8080/tcp' is already in use by service 'a' (a) as an ingress port")
    assert ports.first_conflict(a.spec.endpoint, sim.tables["service"].values(),
                                own_id="a") is None
    udp = svc_on("u", 1)
    udp.spec.endpoint.ports.add(published_port=8080, target_port=80, protocol=pb.PortConfig.UDP)
    assert ports.first_conflict(udp.spec.endpoint, sim.tables["service"].values()) is None
    # an auto-assigned port is taken too
    sim.put(svc_on("auto", 1, publish=((0, 80),)))
    sim.settle()
    c = svc_on("c", 1, publish=((30000, 80),))
    assert "service 'auto'" in ports.first_conflict(c.spec.endpoint,
                                                    sim.tables["service"].values())
    # if a conflict reaches the store anyway (a race), the newer service waits
    sim.now += 1
    sim.put(b)
    sim.settle()
    (task,) = sim.tasks("b")
    assert not task.node_id and "already in use by service 'a'" in task.scheduling_message


# -------------------------------------------------------------- views ----

def test_views_reach_exactly_the_nodes_running_tasks(sim: NetSim):
    sim.network("back", encrypted=True)
    sim.put(svc_on("web", 2, "net-back"))
    sim.settle()
    index = NetIndex(sim.view())
    on = {t.node_id for t in sim.tasks("web")}
    assert len(on) == 2
    for node_id in sim.tables["node"]:
        assert index.network_ids(node_id) == (["net-back"] if node_id in on else [])
    view = index.view_for(next(iter(on)), "net-back")
    assert view.vni == 4097 and view.subnet == "10.0.1.0/24" and view.gateway == "10.0.1.1"
    assert view.encrypted and not view.ingress
    assert sorted(e.addr for e in view.endpoints) == ["10.0.1.3/24", "10.0.1.4/24"]
    for e in view.endpoints:
        assert e.mac == ipam.mac_of(e.addr) and e.running and e.service_name == "web"
        assert e.node_addr == f"192.168.50.{10 + int(e.node_id[1:])}"
    assert sorted(p.node_id for p in view.peers) == sorted(on)
    (svc,) = view.services
    assert svc.name == "web" and svc.vip == "10.0.1.2/24" and list(svc.aliases) == ["web-alias"]
    assert sorted(svc.backend_addrs) == ["10.0.1.3", "10.0.1.4"]


def test_stopped_task_leaves_backends_at_once_and_view_is_withdrawn(sim: NetSim):
    sim.network("back")
    sim.put(svc_on("web", 2, "net-back"))
    sim.settle()
    a, b = sim.tasks("web")
    sent: dict = {}
    updates, removals = NetIndex(sim.view()).changes(a.node_id, sent)
    assert [u.assignment.network.network_id for u in updates] == ["net-back"] and not removals
    assert NetIndex(sim.view()).changes(a.node_id, sent) == ([], [])  # nothing new
    t = pb.Task()
    t.CopyFrom(sim.tables["task"][b.id])
    t.desired_state = pb.SHUTDOWN  # told to stop: out of the backends before it stops
    sim.put(t)
    (svc,) = NetIndex(sim.view()).views["net-back"].services
    assert list(svc.backend_addrs) == [ipam.bare(a.networks[0].addresses[0])]
    s = sim.update_service("web", replicas=0)
    sim.settle()
    updates, removals = NetIndex(sim.view()).changes(a.node_id, sent)
    assert not updates
    assert [(r.action, r.assignment.network.network_id) for r in removals] == [
        (dpb.AssignmentChange.REMOVE, "net-back")]


def test_a_task_not_yet_healthy_or_unhealthy_is_no_backend(sim: NetSim):
    # A task with a healthcheck is STARTING until its first healthy result: its
    # address is an endpoint but not a backend of the VIP, tasks.<svc> or the mesh.
    sim.network("back")
    sim.put(svc_on("web", 2, "net-back", publish=((8080, 80),)))
    sim.settle()
    a, b = sim.tasks("web")
    for state in (pb.STARTING, pb.FAILED):
        t = pb.Task()
        t.CopyFrom(sim.tables["task"][b.id])
        t.status.state = state
        sim.put(t)
        index = NetIndex(sim.view())
        for net_id in ("net-back", "net-ingress"):
            (svc,) = index.views[net_id].services
            mine = next(att for att in a.networks if att.network_id == net_id)
            assert list(svc.backend_addrs) == [ipam.bare(mine.addresses[0])], (state, net_id)
        if state == pb.STARTING:
            starting = [e for e in index.views["net-back"].endpoints if e.task_id == b.id]
            assert len(starting) == 1 and not starting[0].running


def test_ingress_view_on_every_node_with_its_own_address(sim: NetSim):
    sim.put(svc_on("web", 1, publish=((8080, 80),)))
    sim.settle()
    index = NetIndex(sim.view())
    locals_ = set()
    for node_id, node in sim.tables["node"].items():
        assert index.network_ids(node_id) == ["net-ingress"]
        view = index.view_for(node_id, "net-ingress")
        assert view.ingress and view.local_addr == node.attachments[0].addresses[0]
        locals_.add(view.local_addr)
        (svc,) = view.services
        assert svc.ports[0].published_port == 8080 and svc.vip
        assert len(view.peers) == 3 and all(p.addr for p in view.peers)
    assert len(locals_) == 3


def test_publishing_later_rolls_tasks_onto_ingress(sim: NetSim):
    sim.network("back")
    sim.put(svc_on("web", 2, "net-back"))
    sim.settle()
    old = {t.id for t in sim.live("web")}
    s = pb.Service()
    s.CopyFrom(sim.service("web"))
    s.previous_spec.CopyFrom(s.spec)
    s.spec.endpoint.ports.add(published_port=8080, target_port=80)
    s.spec_version += 1  # as the control API does for an endpoint change
    s.update_status.state = pb.UpdateStatus.UPDATING
    sim.put(s)
    sim.settle()
    live = sim.live("web")
    assert len(live) == 2 and not old & {t.id for t in live}
    for t in live:
        assert [a.network_id for a in t.networks] == ["net-ingress", "net-back"]
    assert [v.network_id for v in sim.service("web").endpoint.virtual_ips] == [
        "net-ingress", "net-back"]


# ----------------------------------------------------------------- keys ----

def test_keys_made_rotated_promoted_and_kept():
    from manager.allocator import keys as k
    counter = iter(range(100))

    def new_key() -> bytes:
        return bytes([next(counter)]) * 32

    held, wake = k.next_keys([], 1000.0, needed=False, new_key=new_key)
    assert held == [] and wake is None
    held, wake = k.next_keys([], 1000.0, needed=True, new_key=new_key)
    assert [(x.id, x.primary) for x in held] == [(1, True)] and wake == 1000 + k.ROTATION
    assert k.next_keys(held, 2000.0, True, new_key) == (held, 1000 + k.ROTATION)
    t = 1000 + k.ROTATION
    held, wake = k.next_keys(held, t, True, new_key)
    assert [(x.id, x.primary) for x in held] == [(1, True), (2, False)]
    assert wake == t + k.PROMOTE_AFTER and held[1].key != held[0].key
    held, wake = k.next_keys(held, t + k.PROMOTE_AFTER, True, new_key)
    assert [(x.id, x.primary) for x in held] == [(1, False), (2, True)]
    for i in range(3):
        t += k.ROTATION
        held, _ = k.next_keys(held, t, True, new_key)
        held, _ = k.next_keys(held, t + k.PROMOTE_AFTER, True, new_key)
    assert [x.id for x in held] == [3, 4, 5] and held[-1].primary


def test_encrypted_network_views_carry_keys_others_not(sim: NetSim):
    cluster = pb.Cluster(id="c1")
    cluster.spec.annotations.name = "default"
    sim.put(cluster)
    sim.network("secret", encrypted=True)
    sim.network("plain")
    sim.put(svc_on("web", 1, "net-secret", "net-plain"))
    plan = sim.step()
    assert any(a.object.WhichOneof("object") == "cluster" for a in plan.actions)
    sim.settle()
    stored = sim.tables["cluster"]["c1"]
    assert len(stored.network_keys) == 1 and stored.network_keys[0].primary
    assert len(stored.network_keys[0].key) == 32
    index = NetIndex(sim.view())
    assert list(index.views["net-secret"].keys) == list(stored.network_keys)
    assert not index.views["net-plain"].keys


def test_keys_never_leave_through_the_control_and_watch_apis():
    from manager.controlapi.server import ControlServicer
    from manager.watchapi import outgoing
    from proto import watch_pb2 as wpb
    cluster = pb.Cluster(id="c1")
    cluster.network_keys.add(id=1, key=b"k" * 32, primary=True)
    assert not ControlServicer._cluster_out(cluster).network_keys
    assert cluster.network_keys  # the stored object is not touched
    event = wpb.WatchEvent(action=wpb.WatchEvent.UPDATE)
    event.object.cluster.CopyFrom(cluster)
    event.old_object.cluster.CopyFrom(cluster)
    for include_old in (True, False):
        out = outgoing(event, include_old)
        assert not out.object.cluster.network_keys
        assert not out.old_object.cluster.network_keys
    assert event.object.cluster.network_keys
