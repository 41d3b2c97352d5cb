"""`swarm init` / `join` / `update` cluster and node flags (issue 18): --availability,
--cert-expiry, --snapshot-interval, --max-snapshots, --data-path-addr, --data-path-port.
Parsing and refusals, the first cluster spec they make, and where the data path
address and port go (the managers' network views, the node's VXLAN devices)."""
from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from cli import commands_swarm, node_commands, pretty
from cli.main import build_parser, main
from cli.parsing import UsageError
from manager.allocator.networks import ingress_network
from manager.netview import NetIndex
from node import bootstrap, credentials
from node.bootstrap import NodeError
from node.config import ClusterSettings, NodeConfig, first_availability, first_cluster_spec
from node.state import NodeState, data_path_addr
from overlay_net import plan
from overlay_net.adapter import desired_state
from pki import node as pkinode
from proto import control_pb2 as cpb
from proto import dispatcher_pb2 as dpb
from proto import model
from proto import objects_pb2 as pb
from raft.view import StoreView


def _ns(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


# ---------------------------------------------------------------- init ----

def test_init_flags_make_the_first_cluster_spec_and_node() -> None:
    settings = node_commands.cluster_settings(_ns(
        "init", "--availability", "Drain", "--cert-expiry", "720h", "--snapshot-interval",
        "500", "--max-snapshots", "3", "--data-path-port", "7789"))
    assert settings == ClusterSettings(availability="drain",
                                       cert_expiry_ns=720 * 3600 * 10**9,
                                       snapshot_interval=500, keep_old_snapshots=3,
                                       data_path_port=7789)
    init = settings.as_init()
    spec = first_cluster_spec(init)
    assert spec.ca_config.node_cert_expiry.nanos == 720 * 3600 * 10**9
    assert (spec.raft.snapshot_interval, spec.raft.keep_old_snapshots) == (500, 3)
    assert spec.data_path_port == 7789
    assert first_availability(init) == pb.NodeSpec.DRAIN
    assert first_availability(node_commands.cluster_settings(
        _ns("init", "--availability", "pause")).as_init()) == pb.NodeSpec.PAUSE


def test_without_the_flags_the_spec_has_dockers_defaults() -> None:
    settings = node_commands.cluster_settings(_ns("init"))
    assert settings.as_init() == {}
    spec = first_cluster_spec({})
    assert (spec.raft.snapshot_interval, spec.raft.keep_old_snapshots) == (10000, 0)
    assert spec.ca_config.node_cert_expiry.nanos == 0   # the managers' default, 90 days
    assert model.data_path_port(pb.Cluster(spec=spec)) == 4789
    assert first_availability({}) == pb.NodeSpec.ACTIVE
    zero = node_commands.cluster_settings(_ns("init", "--data-path-port", "0"))
    assert model.data_path_port(pb.Cluster(spec=first_cluster_spec(zero.as_init()))) \
        == 4789


@pytest.mark.parametrize("argv, message", [
    (["--availability", "sideways"],
     'invalid availability "sideways", only active, pause and drain are supported'),
    (["--cert-expiry", "10s"], 'invalid value "10s" for --cert-expiry: node certificates '
                               "must be valid for at least 1h0m0s"),
    (["--cert-expiry", "soon"], "--cert-expiry"),
    (["--snapshot-interval", "0"], 'invalid number of log entries "0" for '
                                   "--snapshot-interval: must be at least 1 (default 10000)"),
    (["--snapshot-interval=-5"], "invalid number of log entries -5 for --snapshot-interval: "
                                 "must be a non-negative integer"),
    (["--snapshot-interval", "1x"], "--snapshot-interval"),
    (["--snapshot-interval", "18446744073709551616"], "too large; at most "
                                                      "18446744073709551615"),
    (["--max-snapshots=-1"], "invalid number of snapshots -1 for --max-snapshots: "
                             "must be a non-negative integer"),
    (["--data-path-port", "80"], 'invalid value "80" for --data-path-port: the port must be '
                                 "from 1024 to 49151 (0 or none: 4789)"),
    (["--data-path-port", "49152"], "from 1024 to 49151"),
    (["--data-path-port", "udp"], 'invalid value "udp" for --data-path-port'),
])
def test_bad_init_values_are_refused_with_the_range(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as err:
        node_commands.cluster_settings(_ns("init", *argv))
    assert message in str(err.value)


def test_a_refused_init_flag_makes_no_node(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["init", "--data-dir", str(tmp_path / "n"), "--data-path-port", "99999"])
    assert code == 1
    assert "from 1024 to 49151" in capsys.readouterr().err
    assert not (tmp_path / "n").exists()


def test_the_first_certificate_lives_as_long_as_cert_expiry_says(tmp_path: Path) -> None:
    credentials.create_cluster_pki(tmp_path, "n" * 25, "c" * 25, "10.0.0.1:2377",
                                   dt.timedelta(hours=30))
    pem = (pkinode.cert_dir(tmp_path) / pkinode.CERT_FILE).read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(hours=29) < life <= dt.timedelta(hours=30, minutes=10), life


def test_init_and_join_keep_the_data_path_address(tmp_path: Path) -> None:
    config = NodeConfig(data_dir=tmp_path / "a", advertise_addr="10.0.0.1",
                        data_path_addr="127.0.0.1")
    state = bootstrap.init_cluster(config, ClusterSettings())
    assert state.data_path_addr == "127.0.0.1"
    assert NodeState.load(tmp_path / "a").data_path_addr == "127.0.0.1"
    bad = NodeConfig(data_dir=tmp_path / "b", advertise_addr="10.0.0.1",
                     data_path_addr="no-such-if0")
    with pytest.raises(NodeError, match="neither an IPv4 address nor a network interface"):
        bootstrap.init_cluster(bad, ClusterSettings())
    with pytest.raises(NodeError, match="neither an IPv4 address nor a network interface"):
        bootstrap.join_cluster(bad, "10.0.0.9:2377", "SWMTKN-1-x-y")  # refused before contact
    assert not NodeState.exists(tmp_path / "b")


# ----------------------------------------------------------------- join ----

def test_join_refuses_an_unknown_availability_before_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["join", "--token", "SWMTKN-1-x-y", "--data-dir", str(tmp_path / "n"),
                 "--availability", "sideways", "10.0.0.9:2377"])
    assert code == 1
    assert 'invalid availability "sideways", only active, pause and drain are supported' \
        in capsys.readouterr().err
    assert not (tmp_path / "n").exists()


def test_data_path_addr_is_an_ipv4_address_or_an_interface_with_one() -> None:
    interfaces = {"eth1": ["192.168.5.2"], "bond0": ["10.1.0.2", "10.2.0.2"], "dummy0": []}
    look = interfaces.get
    assert data_path_addr("10.9.8.7", look) == "10.9.8.7"
    assert data_path_addr("eth1", look) == "192.168.5.2"
    with pytest.raises(ValueError, match=r"interface bond0 has 2 IPv4 addresses "
                                         r"\(10.1.0.2, 10.2.0.2\): give --data-path-addr one"):
        data_path_addr("bond0", look)
    with pytest.raises(ValueError, match=r"interface dummy0 has 0 IPv4 addresses \(none\)"):
        data_path_addr("dummy0", look)
    with pytest.raises(ValueError, match="without a port"):
        data_path_addr("10.9.8.7:4789", look)
    with pytest.raises(ValueError, match="neither an IPv4 address nor a network interface"):
        data_path_addr("wlan9", look)
    assert data_path_addr("lo") == "127.0.0.1"   # asked of the kernel


# --------------------------------------------------------------- update ----

def test_update_changes_the_snapshot_settings_only_when_given() -> None:
    changes = commands_swarm.parse_changes(_ns("update", "--snapshot-interval", "2000",
                                               "--max-snapshots", "2"))
    spec = pb.ClusterSpec()
    spec.raft.snapshot_interval = 10000
    spec.dispatcher.heartbeat_period.nanos = 5 * 10**9
    new = commands_swarm.apply_changes(spec, changes)
    assert (new.raft.snapshot_interval, new.raft.keep_old_snapshots) == (2000, 2)
    assert new.dispatcher.heartbeat_period.nanos == 5 * 10**9
    assert spec.raft.snapshot_interval == 10000   # the original is left alone
    only_keep = commands_swarm.apply_changes(
        spec, commands_swarm.parse_changes(_ns("update", "--max-snapshots", "0")))
    assert (only_keep.raft.snapshot_interval, only_keep.raft.keep_old_snapshots) == (10000, 0)
    with pytest.raises(UsageError, match="must be at least 1"):
        commands_swarm.parse_changes(_ns("update", "--snapshot-interval", "0"))
    with pytest.raises(UsageError, match="--snapshot-interval, --max-snapshots must be given"):
        commands_swarm.parse_changes(_ns("update"))


def test_info_shows_the_data_path_port_and_raft_snapshots() -> None:
    info = cpb.InfoResponse(node_id="n", is_manager=True, cluster_id="c", managers=1, nodes=1)
    cluster = pb.Cluster(id="c")
    cluster.spec.raft.keep_old_snapshots = 2
    cluster.spec.data_path_port = 7789
    text = pretty.info_text(info, "unix:///x", "0.1.0", cluster)
    assert "  Data Path Port: 7789\n  Raft:\n   Snapshot Interval: 10000\n" \
           "   Number of Old Snapshots to Retain: 2\n" in text
    assert "Raft:" not in pretty.info_text(info, "unix:///x", "0.1.0")


# ------------------------------------------------- where the values go ----

def _node(node_id: str, manager_addr: str = "", data_path: str = "",
          session: str = "") -> pb.Node:
    node = pb.Node(id=node_id)
    node.manager_status.addr = manager_addr
    node.description.data_path_addr = data_path
    node.status.addr = session
    return node


def test_peers_get_a_nodes_data_path_address_and_the_clusters_port() -> None:
    assert model.node_addr(_node("a", "10.0.0.1:2377", "192.168.9.1")) == "192.168.9.1"
    assert model.node_addr(_node("b", "10.0.0.2:2377")) == "10.0.0.2"
    assert model.node_addr(_node("c", session="ipv4:10.0.0.3:41000")) == "10.0.0.3"
    cluster = pb.Cluster(id="c")
    cluster.spec.data_path_port = 7789
    net = ingress_network(cluster)
    net.id = "net1"
    net.spec.ingress = False
    net.vni = 4097
    tasks = {}
    for i, node_id in enumerate(("a", "b")):
        task = pb.Task(id=f"t{i}", service_id="s", node_id=node_id)
        task.networks.add(network_id="net1", addresses=[f"10.0.0.{i + 5}/24"])
        tasks[task.id] = task
    view = StoreView(version=3, clusters={"c": cluster}, networks={"net1": net}, tasks=tasks,
                     nodes={"a": _node("a", "10.0.0.1:2377", "192.168.9.1"),
                            "b": _node("b", "10.0.0.2:2377")})
    netview = NetIndex(view).views["net1"]
    assert netview.vxlan_port == 7789
    assert {p.node_id: p.node_addr for p in netview.peers} == {"a": "192.168.9.1",
                                                                "b": "10.0.0.2"}
    assert {e.node_id: e.node_addr for e in netview.endpoints} == {"a": "192.168.9.1",
                                                                    "b": "10.0.0.2"}
    default = StoreView(version=3, networks={"net1": net}, tasks=tasks, nodes=view.nodes)
    assert NetIndex(default).views["net1"].vxlan_port == 4789


def test_the_node_creates_its_vxlan_devices_on_the_views_port() -> None:
    view = dpb.NetworkView(network_id="n1", vni=4097, subnet="10.0.1.0/24",
                           gateway="10.0.1.1", vxlan_port=7789)
    view.endpoints.add(task_id="t2", node_addr="192.168.9.2", addr="10.0.1.4/24")
    att = pb.NetworkAttachment(network_id="n1", addresses=["10.0.1.3/24"])
    desired = desired_state([view], [("t1", "/run/netns/t1", [att])])
    desired.validate()
    spec = plan.sandboxes(desired, plan.Naming(), "192.168.9.1")[plan.Naming().sandbox(4097)]
    assert spec.vxlan_port == 7789
    assert ("02:42:0a:00:01:04", "192.168.9.2") in spec.fdb
    view.vxlan_port = 0   # a view from a manager before data path ports existed
    desired = desired_state([view], [("t1", "/run/netns/t1", [att])])
    assert plan.sandboxes(desired, plan.Naming(), "192.168.9.1")[
        plan.Naming().sandbox(4097)].vxlan_port == 4789
