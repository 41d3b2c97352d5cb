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
               "--attachable=false", "--opt", "encrypted", "--label", "team=a", "back")
    spec = cn.create_spec(ns)
    assert spec.annotations.name == "back" and spec.driver == "overlay"
    assert not spec.attachable and not spec.ingress
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
    (("create", "--attachable", "x"), "--attachable on `swarm network create` is not "
     "supported by Shoal: Shoal runs no standalone containers"),
    (("create", "--ingress", "--attachable=true", "x"), "--attachable .* not supported"),
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


# ------------------------------------------- ip-range, aux, scope, config ----

def test_create_ip_range_and_aux_addresses_to_spec():
    ns = parse("create", "--subnet", "10.9.0.0/16", "--ip-range", "10.9.4.0/24",
               "--gateway", "10.9.0.254", "--aux-address", "router=10.9.0.2",
               "--aux-address", "printer=10.9.4.9", "--scope", "swarm", "back")
    (conf,) = cn.create_spec(ns).ipam
    assert (conf.subnet, conf.gateway, conf.range) == ("10.9.0.0/16", "10.9.0.254",
                                                        "10.9.4.0/24")
    assert dict(conf.aux_addresses) == {"router": "10.9.0.2", "printer": "10.9.4.9"}


@pytest.mark.parametrize("argv,message", [
    (("--ip-range", "10.9.0.0/25"), "--ip-range needs --subnet"),
    (("--aux-address", "a=10.9.0.2"), "--aux-address needs --subnet"),
    (("--subnet", "10.9.0.0/24", "--ip-range", "10.9.1.0/25"),
     "no matching subnet for range 10.9.1.0/25: it must be inside --subnet 10.9.0.0/24"),
    (("--subnet", "10.9.0.0/24", "--ip-range", "10.9.0.0/23"), "no matching subnet for range"),
    (("--subnet", "10.9.0.0/24", "--ip-range", "10.9.0.0/25", "--ip-range", "10.9.0.128/25"),
     r"cannot configure multiple ranges \(10.9.0.0/25, 10.9.0.128/25\) on the same subnet "
     r"\(10.9.0.0/24\)"),
    (("--subnet", "10.9.0.0/24", "--ip-range", "pear"), 'invalid --ip-range "pear"'),
    (("--subnet", "10.9.0.0/24", "--ip-range", "fd00::/120"), "only IPv4"),
    (("--subnet", "10.9.0.0/24", "--aux-address", "10.9.0.2"),
     'invalid --aux-address "10.9.0.2": expected name=IP'),
    (("--subnet", "10.9.0.0/24", "--aux-address", "=10.9.0.2"), "expected name=IP"),
    (("--subnet", "10.9.0.0/24", "--aux-address", "a=pear"), "expected an IPv4 address"),
    (("--subnet", "10.9.0.0/24", "--aux-address", "a=10.8.0.2"),
     "no matching subnet for aux-address 10.8.0.2"),
    (("--scope", "local"), '--scope "local" is not supported: Shoal\'s networks are overlays, '
     "which are swarm-scoped"),
    (("--scope", "global"), '--scope "global" is not supported'),
    (("--config-only", "--scope", "swarm"), "configuration-only network cannot have a --scope"),
])
def test_create_refuses_bad_address_and_scope_flags(argv, message):
    with pytest.raises(UsageError, match=message):
        cn.create_spec(parse("create", *argv, "x"))


def test_create_config_only_and_config_from_to_spec():
    spec = cn.create_spec(parse("create", "--config-only", "--subnet", "10.9.0.0/24",
                                "--ip-range", "10.9.0.128/25", "--opt", "encrypted", "cfg"))
    assert spec.config_only and not spec.config_from
    assert [(c.subnet, c.range) for c in spec.ipam] == [("10.9.0.0/24", "10.9.0.128/25")]
    spec = cn.create_spec(parse("create", "--config-from", "cfg", "--internal", "app"))
    assert spec.config_from == "cfg" and not spec.config_only and spec.internal
    assert not spec.ipam


def test_ipam_opt_and_ipv6_are_refused_with_the_reason():
    with pytest.raises(UsageError, match="--ipam-opt on `swarm network create` is not "
                       "supported by Shoal: the managers' built-in allocator takes no IPAM"):
        parse("create", "--ipam-opt", "foo=bar", "x")
    with pytest.raises(UsageError, match="--ipv6 on `swarm network create` is not supported "
                       "by Shoal: overlays are IPv4 only"):
        parse("create", "--ipv6", "x")
    assert not cn.create_spec(parse("create", "--ipv6=false", "x")).ipam


def test_inspect_shows_range_aux_and_config_as_docker():
    net = _network()
    net.ipam[0].range = "10.0.1.128/25"
    net.ipam[0].aux_addresses.update({"router": "10.0.1.2"})
    net.spec.config_from = "cfg"
    data = cn.inspect_dict(net, [], [], {})
    assert data["IPAM"]["Config"] == [{"Subnet": "10.0.1.0/24", "IPRange": "10.0.1.128/25",
                                       "Gateway": "10.0.1.1",
                                       "AuxiliaryAddresses": {"router": "10.0.1.2"}}]
    assert data["ConfigFrom"] == {"Network": "cfg"} and data["ConfigOnly"] is False
    assert data["Scope"] == "swarm"


def test_config_only_network_in_ls_and_inspect():
    cfg = pb.Network(id="cfgcfgcfgcfgcfgcfg")
    cfg.spec.annotations.name = "cfg"
    cfg.spec.driver = "overlay"
    cfg.spec.config_only = True
    cfg.spec.ipam.add(subnet="10.9.0.0/24", range="10.9.0.128/25")
    cfg.spec.driver_options["encrypted"] = ""
    row = cn.network_row(cfg)
    assert (row["Driver"], row["Scope"]) == ("null", "swarm")
    assert cn.matches(cfg, parse_filters(["driver=null"], cn.NETWORK_FILTERS))
    assert not cn.matches(cfg, parse_filters(["driver=overlay"], cn.NETWORK_FILTERS))
    data = cn.inspect_dict(cfg, [], [], {})
    assert data["ConfigOnly"] is True and data["ConfigFrom"] == {"Network": ""}
    assert data["Driver"] == "null"
    assert data["IPAM"]["Config"] == [{"Subnet": "10.9.0.0/24", "IPRange": "10.9.0.128/25"}]
    assert data["Options"] == {"encrypted": ""}   # no VXLAN ID: nothing is allocated
