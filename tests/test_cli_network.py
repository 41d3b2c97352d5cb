"""Unit tests for `swarm network ...` argument handling and output (cli/commands_network.py)."""
from __future__ import annotations

import pytest

from cli import commands_network as cn
from cli.main import build_parser
from cli.parsing import UsageError, parse_filters
from cli.templates import render
from proto import objects_pb2 as pb


def parse(*argv: str):
    return build_parser().parse_args(["network", *argv])


def test_create_flags_to_spec():
    ns = parse("create", "-d", "overlay", "--subnet", "10.9.0.0/24", "--gateway", "10.9.0.254",
               "--attachable", "--opt", "encrypted", "--label", "team=a", "back")
    spec = cn.create_spec(ns)
    assert spec.annotations.name == "back" and spec.driver == "overlay"
    assert spec.attachable and not spec.ingress
    assert [(c.subnet, c.gateway) for c in spec.ipam] == [("10.9.0.0/24", "10.9.0.254")]
    assert dict(spec.driver_options) == {"encrypted": ""}
    assert dict(spec.annotations.labels) == {"team": "a"}


def test_create_defaults_to_overlay_without_ipam():
    spec = cn.create_spec(parse("create", "plain"))
    assert spec.driver == "overlay" and not spec.ipam


@pytest.mark.parametrize("argv,message", [
    (("create", "-d", "bridge", "x"), 'driver "bridge" is not supported'),
    (("create", "--gateway", "10.0.0.1", "x"), "--gateway needs --subnet"),
    (("create", "--subnet", "10.1.0.0/24", "--subnet", "10.2.0.0/24", "x"), "one --subnet"),
    (("create", "--subnet", "banana", "x"), 'invalid --subnet "banana"'),
    (("create", "--subnet", "fd00::/64", "x"), "only IPv4"),
    (("create", "--ingress", "--attachable", "x"), "cannot be attachable"),
    (("create", "--label", "=v", "x"), 'invalid --label "=v"'),
])
def test_create_refuses_bad_flags(argv, message):
    with pytest.raises(UsageError, match=message):
        cn.create_spec(parse(*argv))


def _network(name: str = "back", nid: str = "abcdefghijklmnopqrstuvwxy") -> pb.Network:
    net = pb.Network(id=nid, vni=4097)
    net.spec.annotations.name = name
    net.spec.driver = "overlay"
    net.spec.annotations.labels["team"] = "a"
    net.ipam.add(subnet="10.0.1.0/24", gateway="10.0.1.1")
    return net


def test_ls_table_and_filters():
    net = _network()
    rows = [cn.network_row(net)]
    text = render(None, rows, cn.NETWORK_FIELDS, cn.NETWORK_FIELDS, table=cn.network_table)
    header, line = text.splitlines()
    assert header.split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert line.split() == ["abcdefghijkl", "back", "overlay", "swarm"]
    assert cn.matches(net, parse_filters(["name=ac", "label=team=a", "driver=overlay"],
                                         cn.NETWORK_FILTERS))
    assert not cn.matches(net, parse_filters(["label=team=b"], cn.NETWORK_FILTERS))
    assert not cn.matches(net, parse_filters(["type=builtin"], cn.NETWORK_FILTERS))
    with pytest.raises(UsageError, match="invalid filter"):
        parse_filters(["color=red"], cn.NETWORK_FILTERS)


def test_inspect_shows_subnet_vni_tasks_and_vips():
    net = _network()
    node = pb.Node(id="n1")
    node.description.hostname = "host1"
    node.status.addr = "ipv4:192.168.50.11:40000"
    svc = pb.Service(id="s1")
    svc.spec.annotations.name = "web"
    svc.spec.task.networks.add(target=net.id)
    svc.endpoint.virtual_ips.add(network_id=net.id, addr="10.0.1.2/24")
    running = pb.Task(id="t1", service_id="s1", node_id="n1")
    running.annotations.name = "web.1"
    running.status.state = pb.RUNNING
    running.networks.add(network_id=net.id, addresses=["10.0.1.3/24"])
    ended = pb.Task(id="t0", service_id="s1", node_id="n1")
    ended.status.state = pb.FAILED
    ended.networks.add(network_id=net.id, addresses=["10.0.1.4/24"])
    data = cn.inspect_dict(net, [running, ended], [svc], {"n1": node})
    assert data["Name"] == "back" and data["Scope"] == "swarm" and data["Driver"] == "overlay"
    assert data["IPAM"]["Config"] == [{"Subnet": "10.0.1.0/24", "Gateway": "10.0.1.1"}]
    assert data["Options"][cn.VXLAN_OPTION] == "4097"
    assert list(data["Containers"]) == ["t1"]
    assert data["Containers"]["t1"]["IPv4Address"] == "10.0.1.3/24"
    assert data["Containers"]["t1"]["MacAddress"] == "02:42:0a:00:01:03"
    assert data["Peers"] == [{"Name": "host1", "IP": "192.168.50.11"}]
    assert data["Services"]["web"]["VIP"] == "10.0.1.2"
    assert data["Services"]["web"]["Tasks"][0]["EndpointIP"] == "10.0.1.3"
    other = pb.Node(id="n2")
    other.description.hostname = "host2"
    other.manager_status.addr = "192.168.50.12:2377"
    other.attachments.add(network_id=net.id, addresses=["10.0.1.9/24"])
    data = cn.inspect_dict(net, [running], [svc], {"n1": node, "n2": other})
    assert data["Peers"] == [{"Name": "host1", "IP": "192.168.50.11"},
                             {"Name": "host2", "IP": "192.168.50.12"}]


def test_init_takes_pool_and_mask_length():
    ns = build_parser().parse_args(["init", "--default-addr-pool", "172.30.0.0/16",
                                    "--default-addr-pool-mask-length", "26"])
    assert ns.default_addr_pool == ["172.30.0.0/16"] and ns.default_addr_pool_mask_length == 26
