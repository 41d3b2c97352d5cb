"""Pure parts of the worker's overlay wiring: which tasks get a namespace, names,
host-mode ports, the generated resolv.conf, and the encryption path in `network inspect`."""
from __future__ import annotations

from cli.commands_network import inspect_dict
from proto import objects_pb2 as pb
from worker import overlay


def task(**kw) -> pb.Task:
    t = pb.Task(id="t" * 25, **kw)
    return t


def test_needs_netns_overlay_host_ports_and_host_network():
    assert not overlay.needs_netns(task())
    on_net = task(networks=[pb.NetworkAttachment(network_id="n1", addresses=["10.0.1.3/24"])])
    assert overlay.needs_netns(on_net)
    host = task(endpoint=pb.Endpoint(ports=[pb.PortConfig(
        target_port=80, published_port=8081, publish_mode=pb.PortConfig.HOST)]))
    assert overlay.needs_netns(host)
    assert [p.published_port for p in overlay.host_ports(host)] == [8081]
    ingress_only = task(endpoint=pb.Endpoint(ports=[pb.PortConfig(
        target_port=80, published_port=8080)]))
    assert overlay.host_ports(ingress_only) == []
    host_net = task(networks=[pb.NetworkAttachment(network_id="n1", addresses=["10.0.1.3/24"])])
    host_net.spec.networks.add(target="host")
    assert not overlay.needs_netns(host_net)


def test_names_are_node_unique():
    a = overlay.task_netns_name("nodeaaaaaaaaaaaaaaaaaaaaa", "task1234567890abcdef")
    b = overlay.task_netns_name("nodebbbbbbbbbbbbbbbbbbbbb", "task1234567890abcdef")
    assert a != b and a.startswith(overlay.task_netns_prefix("nodeaaaaaaaaaaaaaaaaaaaaa"))
    assert overlay.naming("nodeaaaaaaaaaaaaaaaaaaaaa").sandbox(4097) == \
        "shoal-ov-nodeaaaaaaaa-4097"


def test_resolv_conf_embedded_dns_then_service_options():
    host = "nameserver 8.8.8.8\nsearch corp.example\noptions edns0\n"
    plain = overlay.task_resolv_conf(task(), host).splitlines()
    assert plain[1] == "nameserver 127.0.0.11"
    assert "nameserver 8.8.8.8" not in plain
    assert "search corp.example" in plain and "options edns0 ndots:0" in plain
    t = task()
    t.spec.container.dns_nameservers.append("1.1.1.1")
    t.spec.container.dns_search.append("svc.example")
    t.spec.container.dns_options.append("timeout:2")
    lines = overlay.task_resolv_conf(t, host).splitlines()
    assert lines[1:3] == ["nameserver 127.0.0.11", "nameserver 1.1.1.1"]
    assert "search svc.example" in lines and "search corp.example" not in lines
    assert "options edns0 ndots:0 timeout:2" in lines


def test_network_inspect_names_the_encryption_path():
    net = pb.Network(id="n" * 25)
    net.spec.annotations.name = "plain"
    assert "Encryption" not in inspect_dict(net, [], [], {})
    net.spec.driver_options["encrypted"] = ""
    assert "AES-256-GCM" in inspect_dict(net, [], [], {})["Encryption"]
