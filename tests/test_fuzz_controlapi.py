"""Random protobuf requests through every Control API call, in process.

The servicer (manager/controlapi) runs over an in-memory store of the real
state machine (tests/memstore.py), seeded by tests/controlfuzz.py with a
small cluster. Each example starts from a fresh copy of that store, makes one
call and checks what a client would see:

- a refusal carries a status the servicer maps refusals to (INVALID_ARGUMENT,
  NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, UNAVAILABLE) and a message,
  and leaves the store byte for byte as it was (same version, same dump);
- anything else, an exception that gRPC would answer with INTERNAL, fails the
  test with its traceback;
- an accepted call writes only valid objects (`valid_object`): every enum
  holds a value the API defines, a service spec passes the service checks
  again, and the cluster, network, secret and config pass theirs (the cluster's
  address pools can still give networks a subnet; no raft or external CA
  settings, which nothing acts on); no call renames an object.

Requests come from tests/protofuzz.py: mutations of a valid request (one to
three fields anywhere in it set to random values, appended to or cleared):
1,000 examples for each of CreateService, UpdateService and DeployStack (the
deepest validation) and 200 for each of the 12 other write calls; wholly random
requests, 60 for each of the 15 write calls; and wholly random requests, 40 for
each of 22 other calls (reads, RemoveStack, RemoveConfig and the volume calls):
7,180 calls in about 25 s. Examples are derandomized, so a run is repeatable;
SHOAL_FUZZ_SCALE=N multiplies every count and draws new examples (runs by hand).
Outcomes by status: pytest --hypothesis-show-statistics.
"""
from __future__ import annotations

import os
from typing import Callable

import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from manager import secretrefs, validation
from manager.allocator import ipam
from manager.controlapi import cluster as clusterrules
from manager.objects import copy
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb
from tests.controlfuzz import REFUSALS, Answer, Control, rich_spec, seeded, stack_definition
from tests.memstore import MemoryStore
from tests.protofuzz import is_map, messages, mutated

SEED, DATA_DIR = seeded()


# Longer runs by hand: SHOAL_FUZZ_SCALE=20 multiplies every count and draws new examples.
SCALE = int(os.environ.get("SHOAL_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> Callable:
    return settings(max_examples=examples * SCALE, deadline=None, derandomize=SCALE == 1,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def _stored(kind: str, name: str) -> Message:
    found = MemoryStore.loaded(SEED).by_name(kind, name)
    assert found is not None
    return found


def _web_spec() -> pb.ServiceSpec:
    spec = _stored("service", "web").spec  # type: ignore[attr-defined]
    assert isinstance(spec, pb.ServiceSpec)
    return spec


def _node_spec() -> pb.NodeSpec:
    spec = pb.NodeSpec(availability=pb.NodeSpec.DRAIN, desired_role=pb.WORKER)
    spec.annotations.labels["zone"] = "a"
    return spec


def _cluster_spec() -> pb.ClusterSpec:
    spec = copy(_stored("cluster", "default").spec)  # type: ignore[attr-defined]
    spec.dispatcher.heartbeat_period.nanos = 2 * 10**9
    return spec


def _network_spec() -> pb.NetworkSpec:
    spec = pb.NetworkSpec(driver="overlay", internal=True, annotations={"name": "new"})
    spec.driver_options["encrypted"] = ""
    spec.ipam.add(subnet="10.20.0.0/24", gateway="10.20.0.1")
    return spec


# A valid request of every write call: what the mutations start from.
WRITES: dict[str, Callable[[], Message]] = {
    "CreateService": lambda: cpb.CreateServiceRequest(spec=rich_spec("new", 8080)),
    "UpdateService": lambda: cpb.UpdateServiceRequest(service_id="web", spec=_web_spec()),
    "RemoveService": lambda: cpb.RemoveServiceRequest(service_id="db"),
    "UpdateNode": lambda: cpb.UpdateNodeRequest(node_id="w1", spec=_node_spec()),
    "RemoveNode": lambda: cpb.RemoveNodeRequest(node_id="w2"),
    "CreateNetwork": lambda: cpb.CreateNetworkRequest(spec=_network_spec()),
    "RemoveNetwork": lambda: cpb.RemoveNetworkRequest(network_id="spare"),
    "CreateSecret": lambda: cpb.CreateSecretRequest(spec=pb.SecretSpec(
        annotations=pb.Annotations(name="new", labels={"a": "b"}), data=b"x")),
    "UpdateSecret": lambda: cpb.UpdateSecretRequest(secret_id="pw", spec=pb.SecretSpec(
        annotations=pb.Annotations(name="pw", labels={"a": "b"}))),
    "RemoveSecret": lambda: cpb.RemoveSecretRequest(secret_id="app_pw"),
    "CreateConfig": lambda: cpb.CreateConfigRequest(spec=pb.ConfigSpec(
        annotations=pb.Annotations(name="new"), data=b"x")),
    "UpdateConfig": lambda: cpb.UpdateConfigRequest(config_id="conf", spec=pb.ConfigSpec(
        annotations=pb.Annotations(name="conf", labels={"a": "b"}))),
    "UpdateCluster": lambda: cpb.UpdateClusterRequest(spec=_cluster_spec()),
    "DeployStack": lambda: cpb.DeployStackRequest(stack=stack_definition()),
    "RollbackStack": lambda: cpb.RollbackStackRequest(name="app"),
}
# RemoveStack, RemoveConfig, RemoveVolume and PruneVolumes take a name or two: the
# random requests of READS_AND_SMALL cover them.
READS_AND_SMALL: dict[str, type[Message]] = {
    "Info": cpb.InfoRequest, "GetNode": cpb.GetNodeRequest, "ListNodes": cpb.ListNodesRequest,
    "GetService": cpb.GetServiceRequest, "ListServices": cpb.ListServicesRequest,
    "GetTask": cpb.GetTaskRequest, "ListTasks": cpb.ListTasksRequest,
    "GetNetwork": cpb.GetNetworkRequest, "ListNetworks": cpb.ListNetworksRequest,
    "GetSecret": cpb.GetSecretRequest, "ListSecrets": cpb.ListSecretsRequest,
    "GetConfig": cpb.GetConfigRequest, "ListConfigs": cpb.ListConfigsRequest,
    "GetCluster": cpb.GetClusterRequest, "ListClusters": cpb.ListClustersRequest,
    "GetUnlockKey": cpb.GetUnlockKeyRequest, "ListStacks": cpb.ListStacksRequest,
    "ListVolumes": cpb.ListVolumesRequest, "RemoveStack": cpb.RemoveStackRequest,
    "RemoveConfig": cpb.RemoveConfigRequest, "RemoveVolume": cpb.RemoveVolumeRequest,
    "PruneVolumes": cpb.PruneVolumesRequest,
}


# ------------------------------------------------------------ the checks --

def unknown_enums(msg: Message, where: str = "") -> list[str]:
    """Paths of the enum fields of `msg` (recursively) that hold an undefined number."""
    found = []
    for field, value in msg.ListFields():
        path = f"{where}.{field.name}" if where else field.name
        items = value if field.is_repeated else [value]
        if is_map(field):
            entry = field.message_type
            assert entry is not None
            message_values = entry.fields_by_name["value"].message_type
            items = list(value.values()) if message_values is not None else []
        for item in items:
            if field.enum_type is not None and item not in field.enum_type.values_by_number:
                found.append(f"{path}={item}")
            elif isinstance(item, Message):
                found.extend(unknown_enums(item, path))
    return found


def valid_object(kind: str, obj: Message) -> None:
    """The checks an object written by an accepted call must pass."""
    assert not unknown_enums(obj), f"{kind} stored with undefined enum values: " \
        f"{unknown_enums(obj)}"
    if kind == "service":
        assert isinstance(obj, pb.Service)
        validation.check_service_spec(copy(obj.spec))
    elif kind == "cluster":
        assert isinstance(obj, pb.Cluster)
        clusterrules.check_spec(obj, obj.spec)
        ipam.parse_pools(list(obj.spec.default_addr_pool), obj.spec.subnet_size)
        assert (obj.spec.raft.election_tick, obj.spec.raft.heartbeat_tick) == (0, 0)
        assert not obj.spec.ca_config.external_ca_urls and obj.spec.data_path_port == 0
    elif kind in ("network", "secret", "config"):
        validation.check_name(kind, obj.spec.annotations.name)  # type: ignore[attr-defined]
        if kind != "network":
            secretrefs.check_data(kind, obj.spec.data)  # type: ignore[attr-defined]
    elif kind == "node":
        assert isinstance(obj, pb.Node)
        assert all(obj.spec.annotations.labels), "a node label with an empty key"


def checked_call(method: str, request: Message) -> Answer:
    """Calls `method` on a fresh copy of the seeded store and checks the outcome."""
    store = MemoryStore.loaded(SEED)
    control = Control(store, DATA_DIR)
    answer = control.call(method, request)
    if currently_in_test_context():  # outcomes by kind: --hypothesis-show-statistics
        event(answer.code.name if answer.code else "accepted")
    if answer.refused:
        assert answer.code in REFUSALS, f"{method} answered {answer.code}: {answer.message}"
        assert answer.message.strip(), f"{method} refused with {answer.code} but no message"
        assert store.version == MemoryStore.loaded(SEED).version, \
            f"{method} was refused ({answer.message}) but the store's version moved"
        assert store.dump() == SEED, f"{method} was refused ({answer.message}) but the " \
            "store changed"
        return answer
    seeded_store = MemoryStore.loaded(SEED)
    for kind in model.KINDS:
        for obj in store.list(kind):
            if obj.meta.version > seeded_store.version:
                valid_object(kind, obj)
                old = seeded_store.get(kind, obj.id)
                assert old is None or model.object_name(old) == model.object_name(obj), \
                    f"{method} renamed {kind} {model.object_name(old)}"
    return answer


# ------------------------------------------------------------ properties --

def test_every_valid_request_is_accepted() -> None:
    """The bases of the mutations are accepted: mutations start from valid requests."""
    for method, base in WRITES.items():
        answer = checked_call(method, base())
        assert not answer.refused, f"{method}: {answer.code}: {answer.message}"


RICH = ("CreateService", "UpdateService", "DeployStack")  # the deepest validation


@pytest.mark.parametrize("method", RICH)
@fuzz(1000)
@given(data=st.data())
def test_mutated_service_and_stack_writes(method: str, data: st.DataObject) -> None:
    request = data.draw(mutated(WRITES[method]()), label="request")
    checked_call(method, request)


@pytest.mark.parametrize("method", sorted(set(WRITES) - set(RICH)))
@fuzz(200)
@given(data=st.data())
def test_mutated_writes(method: str, data: st.DataObject) -> None:
    request = data.draw(mutated(WRITES[method]()), label="request")
    checked_call(method, request)


@pytest.mark.parametrize("method", sorted(WRITES))
@fuzz(60)
@given(data=st.data())
def test_random_writes(method: str, data: st.DataObject) -> None:
    request = data.draw(messages(type(WRITES[method]())), label="request")
    checked_call(method, request)


@pytest.mark.parametrize("method", sorted(READS_AND_SMALL))
@fuzz(40)
@given(data=st.data())
def test_random_reads_and_small_calls(method: str, data: st.DataObject) -> None:
    request = data.draw(messages(READS_AND_SMALL[method]), label="request")
    checked_call(method, request)
