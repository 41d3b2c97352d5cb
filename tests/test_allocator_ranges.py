"""Unit tests for `network create --ip-range` and `--aux-address` in manager/allocator/.

Networks are made by `networks.new_network` as the control API does; task
addresses and VIPs come from the orchestrator's reconcile passes over the
in-memory store of tests/test_orchestrator.py (the fixture of test_allocator).
"""
from __future__ import annotations

import ipaddress

import pytest

from manager.allocator import ipam, networks
from manager.allocator.ipam import AllocationError
from proto import objects_pb2 as pb
from tests.test_allocator import NetSim, addrs, sim, svc_on  # noqa: F401 - `sim` is a fixture


def ranged(sim: NetSim, name: str, subnet: str, ip_range: str = "", gateway: str = "",
           aux: dict[str, str] | None = None) -> pb.Network:
    spec = pb.NetworkSpec(driver="overlay")
    spec.annotations.name = name
    conf = spec.ipam.add(subnet=subnet, gateway=gateway, range=ip_range)
    conf.aux_addresses.update(aux or {})
    net = networks.new_network(spec, sim.tables["network"].values(), None)
    net.id = f"net-{name}"
    return sim.put(net)


def handed_out(sim: NetSim, network_id: str) -> list[str]:
    vips = [v.addr for s in sim.tables["service"].values() for v in s.endpoint.virtual_ips
            if v.network_id == network_id]
    return addrs(sim, network_id) + vips


def test_range_and_aux_stored_with_the_allocated_subnet(sim: NetSim):
    net = ranged(sim, "r", "10.60.0.0/16", "10.60.5.0/24", aux={"router": "10.60.5.1"})
    (conf,) = net.ipam
    assert (conf.subnet, conf.gateway, conf.range) == ("10.60.0.0/16", "10.60.0.1",
                                                        "10.60.5.0/24")
    assert dict(conf.aux_addresses) == {"router": "10.60.5.1"}
    assert networks.ip_range(net) == ipaddress.IPv4Network("10.60.5.0/24")
    assert networks.aux_addresses(net) == {"10.60.5.1"}


def test_range_honoured_across_many_allocations(sim: NetSim):
    ranged(sim, "r", "10.60.0.0/16", "10.60.7.64/26")
    sim.put(svc_on("web", 40, "net-r"))
    sim.put(svc_on("api", 10, "net-r"))
    sim.settle()
    got = handed_out(sim, "net-r")
    assert len(got) == 52 and len(set(got)) == 52   # 50 tasks and two VIPs, no repeats
    rng = ipaddress.IPv4Network("10.60.7.64/26")
    assert all(ipaddress.IPv4Interface(a).ip in rng for a in got)
    assert all(a.endswith("/16") for a in got)      # the subnet's prefix, not the range's
    # all 64 addresses of the range are host addresses of the /16: 50 tasks and 2 VIPs
    # hold 52 of them; twelve more tasks fill it and the last two wait, naming the range
    sim.update_service("web", replicas=54)
    sim.settle()
    held = [t for t in sim.tasks("web") if not t.node_id]
    assert len(handed_out(sim, "net-r")) == 64 and len(held) == 2
    assert all("no address left in ip-range 10.60.7.64/26 of subnet 10.60.0.0/16"
               in t.scheduling_message for t in held)


def test_range_at_the_start_of_the_subnet_skips_the_gateway(sim: NetSim):
    ranged(sim, "r", "10.61.0.0/24", "10.61.0.0/28")
    sim.put(svc_on("web", 5, "net-r"))
    sim.settle()
    got = sorted(handed_out(sim, "net-r"), key=lambda a: ipaddress.IPv4Interface(a))
    assert got == [f"10.61.0.{i}/24" for i in range(2, 8)]


def test_aux_addresses_never_handed_out(sim: NetSim):
    aux = {f"dev{i}": f"10.62.0.{i}" for i in range(2, 40, 3)}
    ranged(sim, "a", "10.62.0.0/24", aux=aux)
    sim.put(svc_on("web", 60, "net-a"))
    sim.settle()
    got = {ipam.bare(a) for a in handed_out(sim, "net-a")}
    assert len(got) == 61
    assert not got & set(aux.values())
    assert "10.62.0.1" not in got                   # the gateway


def test_aux_inside_a_range_and_a_full_range(sim: NetSim):
    # a /29 range inside a /24: all eight addresses usable (the subnet's network and
    # broadcast addresses are elsewhere), one set aside, so a VIP and six tasks
    ranged(sim, "a", "10.63.0.0/24", "10.63.0.8/29", aux={"printer": "10.63.0.10"})
    sim.put(svc_on("web", 7, "net-a"))
    sim.settle()
    got = sorted(handed_out(sim, "net-a"), key=ipaddress.IPv4Interface)
    assert got == [f"10.63.0.{i}/24" for i in (8, 9, 11, 12, 13, 14, 15)]
    held = [t for t in sim.tasks("web") if not t.node_id]
    assert len(held) == 1 and "no address left in ip-range 10.63.0.8/29" in \
        held[0].scheduling_message


@pytest.mark.parametrize("subnet,ip_range,gateway,aux,message", [
    ("10.64.0.0/24", "10.65.0.0/25", "", {}, "ip-range 10.65.0.0/25 is not inside subnet "
     "10.64.0.0/24"),
    ("10.64.0.0/24", "10.64.0.0/23", "", {}, "is not inside subnet"),
    ("10.64.0.0/24", "10.64.0.5/25", "", {}, "it should be 10.64.0.0/25"),
    ("10.64.0.0/24", "nonsense", "", {}, "invalid ip-range 'nonsense'"),
    ("10.64.0.0/24", "fd00::/64", "", {}, "only IPv4"),
    ("", "10.64.0.0/25", "", {}, "--ip-range needs --subnet"),
    ("", "", "", {"a": "10.64.0.9"}, "--aux-address needs --subnet"),
    ("10.64.0.0/24", "", "", {"a": "10.99.0.9"}, "no matching subnet for aux-address "
     "10.99.0.9"),
    ("10.64.0.0/24", "", "", {"a": "nope"}, "invalid aux-address a=nope"),
    ("10.64.0.0/24", "", "", {"a": "10.64.0.255"}, "not a host address"),
    ("10.64.0.0/24", "", "10.64.0.9", {"a": "10.64.0.9"}, "is the gateway"),
    ("10.64.0.0/24", "", "", {"a": "10.64.0.9", "b": "10.64.0.9"}, "both 10.64.0.9"),
    ("10.64.0.0/24", "10.64.0.1/32", "", {}, "ip-range 10.64.0.1/32 leaves no address"),
    ("10.64.0.0/24", "10.64.0.8/31", "", {"a": "10.64.0.8", "b": "10.64.0.9"},
     "leaves no address"),
])
def test_bad_ranges_and_aux_addresses_refused(sim: NetSim, subnet: str, ip_range: str,
                                             gateway: str, aux: dict[str, str], message: str):
    with pytest.raises(AllocationError, match=message):
        ranged(sim, "bad", subnet, ip_range, gateway, aux)


def test_allocate_address_bounds():
    net = ipaddress.IPv4Network("10.70.0.0/24")
    pool = ipaddress.IPv4Network("10.70.0.252/30")
    assert ipam.allocate_address(net, "10.70.0.1", set(), pool=pool) == "10.70.0.252/24"
    assert ipam.allocate_address(net, "10.70.0.1", {"10.70.0.252"}, pool=pool,
                                 reserved={"10.70.0.253"}) == "10.70.0.254/24"
    with pytest.raises(AllocationError, match="no address left in ip-range"):
        ipam.allocate_address(net, "10.70.0.1", {"10.70.0.252", "10.70.0.254"}, pool=pool,
                              reserved={"10.70.0.253"})
    assert ipam.host_bounds(net, pool) == (int(pool.network_address),
                                           int(net.broadcast_address) - 1)
