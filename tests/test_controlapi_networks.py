"""The Control API's rules for `network create --ip-range/--aux-address/--config-only/
--config-from`, through the servicer over an in-memory store (no gRPC, no raft).

Each test starts from the seeded store of tests/controlfuzz.py (networks front,
back and spare, services on them) and checks the answer a client gets: the code,
the message, and that a refused request stored nothing.
"""
from __future__ import annotations

from typing import Optional

import grpc
import pytest

from proto import control_pb2 as cpb
from proto import objects_pb2 as pb
from raft.state import StoreState
from tests.controlfuzz import Control, seeded
from tests.memstore import MemoryStore

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def seed() -> tuple[bytes, str]:
    return seeded()


@pytest.fixture
def control(seed: tuple[bytes, str]) -> Control:
    dump, data_dir = seed
    return Control(MemoryStore(StoreState.load(dump)), data_dir)


def net_spec(name: str, subnet: str = "", ip_range: str = "", gateway: str = "",
             aux: Optional[dict[str, str]] = None, **fields) -> pb.NetworkSpec:
    spec = pb.NetworkSpec(annotations=pb.Annotations(name=name), driver="overlay", **fields)
    if subnet or ip_range or gateway or aux:
        conf = spec.ipam.add(subnet=subnet, range=ip_range, gateway=gateway)
        conf.aux_addresses.update(aux or {})
    return spec


def create(control: Control, spec: pb.NetworkSpec):
    return control.call("CreateNetwork", cpb.CreateNetworkRequest(spec=spec))


def refused(control: Control, spec: pb.NetworkSpec, code: grpc.StatusCode, message: str) -> None:
    before = sorted(n.spec.annotations.name for n in control.store.list("network"))
    answer = create(control, spec)
    assert (answer.code, answer.message) == (code, message)
    assert sorted(n.spec.annotations.name for n in control.store.list("network")) == before


def service_on(name: str, network: str) -> pb.ServiceSpec:
    s = pb.ServiceSpec(annotations=pb.Annotations(name=name))
    s.task.container.image = "busybox:latest"
    s.replicated.replicas = 1
    s.task.networks.add(target=network)
    return s


# ------------------------------------------------------ ip-range, aux ----

def test_a_network_keeps_its_range_and_aux_addresses(control: Control):
    net = control.ok("CreateNetwork", cpb.CreateNetworkRequest(spec=net_spec(
        "ranged", "10.80.0.0/16", "10.80.9.0/24", aux={"router": "10.80.0.2"}))).network
    (conf,) = net.ipam
    assert (conf.subnet, conf.gateway, conf.range) == ("10.80.0.0/16", "10.80.0.1",
                                                        "10.80.9.0/24")
    assert dict(conf.aux_addresses) == {"router": "10.80.0.2"}
    assert control.store.by_name("network", "ranged") == net


def test_a_range_outside_its_subnet_is_refused(control: Control):
    refused(control, net_spec("bad", "10.80.0.0/24", "10.81.0.0/24"), INVALID,
            "ip-range 10.81.0.0/24 is not inside subnet 10.80.0.0/24: give a range within "
            "the subnet (e.g. --subnet 10.10.0.0/16 --ip-range 10.10.1.0/24)")
    refused(control, net_spec("bad", ip_range="10.80.0.0/25"), INVALID,
            "--ip-range needs --subnet: give the subnet it belongs to")


def test_an_aux_address_outside_its_subnet_or_on_the_gateway_is_refused(control: Control):
    refused(control, net_spec("bad", "10.80.0.0/24", aux={"r": "10.80.1.2"}), INVALID,
            "no matching subnet for aux-address 10.80.1.2: it must be inside subnet "
            "10.80.0.0/24")
    refused(control, net_spec("bad", "10.80.0.0/24", gateway="10.80.0.9",
                              aux={"r": "10.80.0.9"}), INVALID,
            "aux-address r=10.80.0.9 is the gateway of subnet 10.80.0.0/24: give another "
            "address")


# ------------------------------------------------- config-only / from ----

def test_a_config_only_network_holds_settings_and_allocates_nothing(control: Control):
    cfg = control.ok("CreateNetwork", cpb.CreateNetworkRequest(spec=net_spec(
        "cfg", "10.90.0.0/24", "10.90.0.128/25", aux={"r": "10.90.0.2"},
        config_only=True))).network
    assert cfg.spec.config_only and cfg.vni == 0 and not cfg.ipam
    assert cfg.spec.ipam[0].range == "10.90.0.128/25"
    # it holds no addresses: the pool's next subnet and VNI are unaffected
    nxt = control.ok("CreateNetwork", cpb.CreateNetworkRequest(spec=net_spec("nxt"))).network
    assert nxt.vni == max(n.vni for n in control.store.list("network")
                          if n.id != nxt.id) + 1


def test_a_network_from_a_config_takes_its_settings(control: Control):
    spec = net_spec("cfg", "10.90.0.0/24", "10.90.0.128/25", aux={"r": "10.90.0.130"},
                    config_only=True)
    spec.driver_options["encrypted"] = ""
    cfg = control.ok("CreateNetwork", cpb.CreateNetworkRequest(spec=spec)).network
    made = control.ok("CreateNetwork", cpb.CreateNetworkRequest(spec=net_spec(
        "app", config_from=cfg.id[:8], internal=True))).network
    assert made.spec.config_from == "cfg"          # named as Docker shows it, though
    assert made.spec.internal and not made.spec.config_only   # given by ID prefix
    assert dict(made.spec.driver_options) == {"encrypted": ""}
    (conf,) = made.ipam
    assert (conf.subnet, conf.gateway, conf.range) == ("10.90.0.0/24", "10.90.0.1",
                                                        "10.90.0.128/25")
    assert dict(conf.aux_addresses) == {"r": "10.90.0.130"} and made.vni > 0


def test_config_from_rules(control: Control):
    control.ok("CreateNetwork", cpb.CreateNetworkRequest(
        spec=net_spec("cfg", "10.90.0.0/24", config_only=True)))
    refused(control, net_spec("app", config_from="nowhere"), grpc.StatusCode.NOT_FOUND,
            "configuration network 'nowhere' does not exist: create it with `swarm network "
            "create --config-only ...` first")
    refused(control, net_spec("app", config_from="front"), INVALID,
            "network front is not a configuration-only network: --config-from takes one "
            "created with --config-only")
    refused(control, net_spec("app", "10.91.0.0/24", config_from="cfg"), INVALID,
            "--subnet/--gateway/--ip-range/--aux-address cannot be given with --config-from: "
            "the network takes its configuration from cfg")
    with_opt = net_spec("app", config_from="cfg")
    with_opt.driver_options["encrypted"] = ""
    with_opt.annotations.labels["team"] = "a"
    refused(control, with_opt, INVALID, "--opt, --label cannot be given with --config-from: "
            "the network takes its configuration from cfg")
    refused(control, net_spec("cfg2", config_only=True, config_from="cfg"), INVALID,
            "a configuration-only network cannot depend on another configuration-only "
            "network (drop --config-from)")
    refused(control, net_spec("cfg2", config_only=True, ingress=True), INVALID,
            "a configuration-only network can only hold network settings (--subnet, "
            "--gateway, --ip-range, --aux-address, --opt): --ingress and --internal belong "
            "on the networks created from it")
    refused(control, net_spec("att", attachable=True), INVALID,
            "attachable networks are not supported by Shoal: it runs no standalone "
            "containers, so nothing can attach to a network by hand; services join networks "
            "with --network")
    refused(control, net_spec("cfg2", "10.92.0.0/24", "10.93.0.0/24", config_only=True),
            INVALID, "ip-range 10.93.0.0/24 is not inside subnet 10.92.0.0/24: give a range "
            "within the subnet (e.g. --subnet 10.10.0.0/16 --ip-range 10.10.1.0/24)")
    # a second network from a config with a subnet would overlap the first
    control.ok("CreateNetwork", cpb.CreateNetworkRequest(spec=net_spec("app",
                                                                       config_from="cfg")))
    refused(control, net_spec("app2", config_from="cfg"), INVALID,
            "invalid pool request: subnet 10.90.0.0/24 overlaps with subnet 10.90.0.0/24 of "
            "network app")


def test_a_service_cannot_use_a_config_only_network(control: Control):
    control.ok("CreateNetwork", cpb.CreateNetworkRequest(
        spec=net_spec("cfg", "10.90.0.0/24", config_only=True)))
    answer = control.call("CreateService", cpb.CreateServiceRequest(
        spec=service_on("api", "cfg")))
    assert (answer.code, answer.message) == (
        INVALID, "network cfg is a configuration-only network (--config-only): services "
        "cannot use it; create a network from it with `swarm network create --config-from "
        "cfg NAME` and use that one")
    assert control.store.by_name("service", "api") is None
    answer = control.call("UpdateService", cpb.UpdateServiceRequest(
        service_id="db", spec=service_on("db", "cfg")))
    assert answer.code == INVALID and "configuration-only network" in answer.message


def test_a_config_only_network_stays_while_a_network_uses_it(control: Control):
    cfg = control.ok("CreateNetwork", cpb.CreateNetworkRequest(
        spec=net_spec("cfg", "10.90.0.0/24", config_only=True))).network
    app = control.ok("CreateNetwork", cpb.CreateNetworkRequest(
        spec=net_spec("app", config_from="cfg"))).network
    answer = control.call("RemoveNetwork", cpb.RemoveNetworkRequest(network_id="cfg"))
    assert (answer.code, answer.message) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "configuration network 'cfg' is in use by network app (created with --config-from); "
        "remove it first")
    assert control.store.get("network", cfg.id) is not None
    control.ok("RemoveNetwork", cpb.RemoveNetworkRequest(network_id=app.id))
    control.ok("RemoveNetwork", cpb.RemoveNetworkRequest(network_id="cfg"))
    assert control.store.get("network", cfg.id) is None
