"""Unit tests of the overlay data plane's pure parts: input validation, plan, nft
scripts, DNS wire format and records, resolv.conf generation."""
from __future__ import annotations

from dataclasses import replace

import pytest

from overlay_net import plan, secure
from overlay_net.dnswire import (RCODE_NXDOMAIN, RCODE_OK, TYPE_A, build_query,
                                 build_response, parse_answer_addresses, parse_query,
                                 resolv_conf, task_records, upstreams_from, DnsFormatError)
from overlay_net.model import (Attachment, DesiredState, Endpoint, LocalTask, NetworkView,
                               OverlayInputError, ServiceView, mac_for_ip)
from overlay_net.vip import chain_name, diff_script, full_script

NODE_A, NODE_B = "192.168.0.10", "192.168.0.11"


def net(net_id: str = "n1", vni: int = 4100, octet: int = 1, **kw: object) -> NetworkView:
    return NetworkView(id=net_id, vni=vni, subnet=f"10.0.{octet}.0/24",
                       gateway=f"10.0.{octet}.1", **kw)  # type: ignore[arg-type]


def ep(ip: str, node: str, task: str) -> Endpoint:
    return Endpoint(ip, mac_for_ip(ip), node, task)


def att(net_id: str, ip: str) -> Attachment:
    return Attachment(net_id, f"{ip}/24", mac_for_ip(ip))


def test_mac_for_ip_is_dockers() -> None:
    assert mac_for_ip("10.0.1.5") == "02:42:0a:00:01:05"


@pytest.mark.parametrize("desired, message", [
    (DesiredState(networks=(net(vni=0),)), "VNI 0 out of range"),
    (DesiredState(networks=(net("a"), net("b", octet=2))), "VNI 4100 already used"),
    (DesiredState(networks=(NetworkView("a", 5, "10.0.1.0/24", "10.0.2.1"),)), "outside"),
    (DesiredState(networks=(NetworkView("a", 5, "10.0.1.0/33", "10.0.1.1"),)),
     "not an IPv4 network"),
    (DesiredState(tasks=(LocalTask("t", "/run/netns/t", (att("nope", "10.0.1.2"),)),)),
     "unknown network nope"),
    (DesiredState(networks=(net(),), tasks=(LocalTask("t", "/x", (att("n1", "10.0.9.2"),)),)),
     "not in network"),
    (DesiredState(networks=(net(services=(ServiceView("s", mode="rr"),)),)), "mode 'rr'"),
    (DesiredState(networks=(net(endpoints=(Endpoint("10.0.1.2", "AA:BB", NODE_A, "t"),)),)),
     "not a lowercase MAC"),
])
def test_validate_names_the_problem(desired: DesiredState, message: str) -> None:
    with pytest.raises(OverlayInputError, match=message):
        desired.validate()


def test_plan_sandboxes_only_for_networks_with_local_tasks() -> None:
    naming = plan.Naming(prefix="x-", node_key="a")
    front = net("front", 4100, 1, endpoints=(ep("10.0.1.2", NODE_A, "t1"),
                                             ep("10.0.1.3", NODE_B, "t2"),
                                             ep("10.0.1.4", NODE_B, "t3")))
    back = net("back", 4101, 2, endpoints=(ep("10.0.2.3", NODE_B, "t9"),))
    desired = DesiredState(networks=(front, back), tasks=(
        LocalTask("t1", "/run/netns/t1", (att("front", "10.0.1.2"),)),))
    desired.validate()
    specs = plan.sandboxes(desired, naming, NODE_A)
    assert list(specs) == ["x-ov-a-4100"]
    spec = specs["x-ov-a-4100"]
    assert spec.fdb == {(mac_for_ip("10.0.1.3"), NODE_B), (mac_for_ip("10.0.1.4"), NODE_B),
                        (plan.ZERO_MAC, NODE_B)}
    assert spec.neigh == {("10.0.1.3", mac_for_ip("10.0.1.3")),
                          ("10.0.1.4", mac_for_ip("10.0.1.4"))}
    veth = spec.veths[plan.Naming.veth("t1")]
    assert (veth.ifname, veth.gateway, veth.address) == ("eth0", "10.0.1.1", "10.0.1.2/24")
    assert naming.vni_of("x-ov-a-4100") == 4100 and naming.vni_of("x-ov-b-4100") is None


def test_second_network_gets_eth1_without_default_route() -> None:
    desired = DesiredState(networks=(net("a", 1, 1), net("b", 2, 2)), tasks=(
        LocalTask("t1", "/p", (att("a", "10.0.1.2"), att("b", "10.0.2.2"))),))
    specs = plan.sandboxes(desired, plan.Naming(), NODE_A)
    second = specs[plan.Naming().sandbox(2)].veths[plan.Naming.veth("t1")]
    assert (second.ifname, second.gateway) == ("eth1", None)


def test_naming_rejects_odd_characters() -> None:
    with pytest.raises(ValueError):
        plan.Naming(prefix="a b")


def test_task_vips_cover_the_tasks_networks_only() -> None:
    front = net("front", 1, 1, services=(
        ServiceView("web", vip="10.0.1.100", backends=("10.0.1.3", "10.0.1.2")),
        ServiceView("rr", mode="dnsrr", backends=("10.0.1.9",))))
    back = net("back", 2, 2, services=(ServiceView("db", vip="10.0.2.100"),))
    desired = DesiredState(networks=(front, back), tasks=(
        LocalTask("t1", "/p1", (att("front", "10.0.1.2"),)),
        LocalTask("t2", "/p2", (att("back", "10.0.2.2"),))))
    assert plan.task_vips(desired) == {"/p1": {"10.0.1.100": ("10.0.1.2", "10.0.1.3")},
                                       "/p2": {"10.0.2.100": ()}}


def test_vip_scripts() -> None:
    full = full_script({"10.0.1.100": ("10.0.1.2", "10.0.1.3"), "10.0.1.101": ()})
    assert "delete table ip shoal_lb" in full
    assert "dnat to numgen random mod 2 map { 0 : 10.0.1.2, 1 : 10.0.1.3 }" in full
    assert f"chain {chain_name('10.0.1.101')} {{ reject; }}" in full
    assert diff_script({"10.0.1.100": ("10.0.1.2",)}, {"10.0.1.100": ("10.0.1.2",)}) == ""
    diff = diff_script({"10.0.1.100": ("10.0.1.2", "10.0.1.3"), "10.0.1.101": ()},
                       {"10.0.1.100": ("10.0.1.2",), "10.0.1.102": ("10.0.1.7",)})
    assert "delete table" not in diff
    assert "flush chain ip shoal_lb vip_10_0_1_100" in diff
    assert "add rule ip shoal_lb vip_10_0_1_100 dnat to 10.0.1.2" in diff
    assert "delete element ip shoal_lb vips { 10.0.1.101 }" in diff
    assert "add element ip shoal_lb vips { 10.0.1.102 : jump vip_10_0_1_102 }" in diff


def test_dns_wire_roundtrip() -> None:
    query = build_query("Tasks.Web.", TYPE_A, qid=77)
    q = parse_query(query)
    assert (q.id, q.name, q.qtype) == (77, "tasks.web", TYPE_A)
    reply = build_response(query, q, RCODE_OK, ("10.0.1.2", "10.0.1.3"))
    assert parse_answer_addresses(reply) == (RCODE_OK, ["10.0.1.2", "10.0.1.3"])
    assert parse_answer_addresses(build_response(query, q, RCODE_NXDOMAIN))[0] == RCODE_NXDOMAIN
    with pytest.raises(DnsFormatError):
        parse_query(b"\x00\x01")
    with pytest.raises(DnsFormatError):
        parse_query(reply)                       # a response is not a query


def test_task_records_scope_and_modes() -> None:
    front = net("front", 1, 1, services=(
        ServiceView("web", vip="10.0.1.100", aliases=("WWW",), backends=("10.0.1.3", "10.0.1.2")),
        ServiceView("cache", mode="dnsrr", backends=("10.0.1.9",))))
    back = net("back", 2, 2, services=(ServiceView("db", vip="10.0.2.100",
                                                   backends=("10.0.2.5",)),))
    desired = DesiredState(networks=(front, back), tasks=(
        LocalTask("t1", "/p1", (att("front", "10.0.1.2"),)),
        LocalTask("t2", "/p2", (att("front", "10.0.1.4"), att("back", "10.0.2.2")))))
    records = task_records(desired)
    assert records["t1"]["web"] == ("10.0.1.100",)
    assert records["t1"]["www"] == ("10.0.1.100",)
    assert records["t1"]["tasks.web"] == ("10.0.1.2", "10.0.1.3")
    assert records["t1"]["cache"] == ("10.0.1.9",)
    assert "db" not in records["t1"]
    assert records["t2"]["db"] == ("10.0.2.100",) and "web" in records["t2"]


def test_resolv_conf_generator() -> None:
    host = "# host\nnameserver 10.1.1.1\nnameserver 127.0.0.11\nsearch corp.example\n" \
           "options edns0\n"
    text = resolv_conf(host)
    assert "nameserver 127.0.0.11\n" in text and "10.1.1.1" not in text
    assert "search corp.example\n" in text
    assert "options edns0 ndots:0\n" in text
    assert resolv_conf("options ndots:2\n").count("ndots") == 1
    assert upstreams_from(host) == ["10.1.1.1"]


def test_adapter_maps_the_dispatcher_views() -> None:
    from overlay_net.adapter import desired_state
    from proto import dispatcher_pb2 as dpb, objects_pb2 as opb
    view = dpb.NetworkView(network_id="netA", name="front", vni=4097, subnet="10.0.1.0/24",
                           gateway="10.0.1.1", encrypted=False)
    view.endpoints.add(task_id="t1", service_name="web", node_addr=NODE_A, addr="10.0.1.3/24",
                       mac="02:42:0a:00:01:03")
    view.endpoints.add(task_id="t2", service_name="web", node_addr=NODE_B, addr="10.0.1.4/24")
    svc = view.services.add(name="web", aliases=["www"], vip="10.0.1.2/24",
                            backend_addrs=["10.0.1.3", "10.0.1.4"])
    svc.ports.add(protocol=opb.PortConfig.UDP, target_port=53, published_port=30053)
    view.services.add(name="rr", endpoint_mode=opb.EndpointSpec.DNSRR, backend_addrs=["10.0.1.3"])
    att = opb.NetworkAttachment(network_id="netA", addresses=["10.0.1.3/24"])
    unknown = opb.NetworkAttachment(network_id="later", addresses=["10.0.9.3/24"])
    desired = desired_state([view], [("t1", "/run/netns/t1", [att, unknown])])
    desired.validate()
    net = desired.networks[0]
    assert (net.id, net.vni, net.gateway) == ("netA", 4097, "10.0.1.1")
    assert net.endpoints[1].mac == mac_for_ip("10.0.1.4")
    web, rr = net.services
    assert (web.mode, web.vip, web.aliases, web.backends) == (
        "vip", "10.0.1.2", ("www",), ("10.0.1.3", "10.0.1.4"))
    assert web.ports[0].protocol == "udp" and web.ports[0].published == 30053
    assert (rr.mode, rr.vip) == ("dnsrr", "")
    task = desired.tasks[0]
    assert [a.network_id for a in task.attachments] == ["netA"]
    assert task.attachments[0].mac == "02:42:0a:00:01:03"


def test_ingress_plan_and_rules() -> None:
    from overlay_net.ingress import node_script, sandbox_script
    from overlay_net.model import Peer, PortView
    ingress = NetworkView(
        id="ing", vni=4096, subnet="10.0.0.0/24", gateway="10.0.0.1", ingress=True,
        local_addr="10.0.0.2/24",
        peers=(Peer(NODE_A, "10.0.0.2", mac_for_ip("10.0.0.2")),
               Peer(NODE_B, "10.0.0.3", mac_for_ip("10.0.0.3"))),
        services=(ServiceView("web", vip="10.0.0.50", backends=("10.0.0.8", "10.0.0.7"),
                              ports=(PortView(30080, 80), PortView(30053, 53, "udp"),
                                     PortView(8080, 80, mode="host"))),))
    desired = DesiredState(networks=(ingress,))
    desired.validate()
    specs = plan.sandboxes(desired, plan.Naming(), NODE_A)     # no local task, still a sandbox
    spec = specs[plan.Naming().sandbox(4096)]
    assert spec.ingress is not None and spec.ingress.local_ip == "10.0.0.2"
    assert spec.ingress.ports == {("tcp", 30080): (80, ("10.0.0.7", "10.0.0.8")),
                                  ("udp", 30053): (53, ("10.0.0.7", "10.0.0.8"))}
    assert spec.neigh == {("10.0.0.3", mac_for_ip("10.0.0.3"))}      # the other node's mesh address
    rules = node_script(spec.ingress.ports)
    assert "tcp . 30080 : jump p_tcp_30080" in rules
    assert "dnat to numgen random mod 2 map { 0 : 10.0.0.7, 1 : 10.0.0.8 }:80" in rules
    assert "snat to 10.0.0.2" in sandbox_script(spec.ingress)
    assert "reject" in node_script({("tcp", 1): (1, ())})
    without_addr = DesiredState(networks=(replace(ingress, local_addr=""),))
    assert plan.sandboxes(without_addr, plan.Naming(), NODE_A) == {}


def test_keys_validated_and_mapped() -> None:
    from overlay_net.adapter import network_view
    from overlay_net.model import NetworkKey
    from proto import dispatcher_pb2 as dpb
    with pytest.raises(OverlayInputError, match="key 4 is 5 bytes"):
        DesiredState(networks=(net(encrypted=True, keys=(NetworkKey(4, b"short"),)),)).validate()
    view = dpb.NetworkView(network_id="s", vni=5000, subnet="10.0.5.0/24", gateway="10.0.5.1",
                           encrypted=True)
    view.keys.add(id=7, key=b"k" * 32, primary=True)
    mapped = network_view(view)
    assert mapped.encrypted and mapped.keys == (NetworkKey(7, b"k" * 32, True),)
    desired = DesiredState(networks=(mapped,), tasks=(
        LocalTask("t", "/p", (Attachment("s", "10.0.5.2/24", mac_for_ip("10.0.5.2")),)),))
    spec = plan.sandboxes(desired, plan.Naming(), NODE_A)[plan.Naming().sandbox(5000)]
    assert spec.encrypted and spec.keys == ((7, b"k" * 32, True),)


def test_secure_tunnel_packet_fits_one_datagram() -> None:
    """The largest segment train a task's interface may build, with the virtio-net
    header, Ethernet header, clear prefix and tag, still fits one UDP datagram."""
    largest_frame = secure.GSO_MAX_SIZE + 14
    datagram = secure.PREFIX + secure.VNET_HDR + largest_frame + secure.TAG
    assert datagram <= secure.MAX_DATAGRAM == 65507
    assert secure.GSO_MAX_SIZE >= 60000          # still large trains, not a few segments
    assert secure.READ_SIZE > secure.VNET_HDR + secure.MAX_FRAME   # oversize is noticed
    assert secure.OVERHEAD == 20 + 8 + 8 + 12 + 16 + 10 + 14
