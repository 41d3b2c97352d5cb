"""End to end: malformed and oversized requests to every RPC of a running single node.

A node made by `swarm init` (tests/cluster.py SingleNode) is called over TCP with
its own manager certificate, the strongest caller there is, on every method of
every service its manager port serves (tests/authz_matrix.methods(): Control,
Watch, Dispatcher, NodeCA, RaftMembership, LocalNode, health, reflection: 58
methods), each with 14 requests that cannot parse or cannot be received:

- 4 hand-made corruptions (a tag of wire type 7, invalid UTF-8 in field 1, a length
  running past the end, an end-group tag with no group),
- 8 random byte strings (seeded) that the method's request type refuses to parse,
- one of 3.5 MiB that does not parse, and one of 5 MiB (over gRPC's 4 MiB limit).

Only garbage is sent, so no call may be accepted: each must be refused with
INVALID_ARGUMENT (the parse error), RESOURCE_EXHAUSTED (too big) or, for the
node-local LocalNode methods, PERMISSION_DENIED; never UNKNOWN or INTERNAL, never
an answer. Large requests that do parse go to the calls that take an object's name
or ID first (a 3.5 MiB reference: NOT_FOUND). Afterwards the daemon still serves
(Info, ListNodes), every object of the store is as it was (every List call gives
the same objects at the same versions) and the daemon's log gained no traceback.
812 garbage calls and 22 large references, about 21 s (27 s with the node's start).
Run it under the e2e lock: flock /tmp/shoal-e2e.lock pytest tests/test_e2e_grpc_fuzz.py
"""
from __future__ import annotations

import random
from typing import Any, Iterator

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.message import DecodeError, Message

from node import credentials
from node.state import log_path
from pki import tls
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from tests.authz_matrix import methods
from tests.cluster import SingleNode

pytestmark = pytest.mark.e2e

LIMIT = 4 << 20                 # gRPC's default largest message a server receives
HAND_MADE = [b"\xff\xff", b"\x0a\x02\xff\xfe", b"\x0a\x7fabc", b"\x0c"]
RANDOM_PER_METHOD = 8
REFUSED_GARBAGE = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
LOCAL_ONLY = "/shoal.v1.LocalNode/"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SingleNode]:
    n = SingleNode(tmp_path_factory.mktemp("grpcfuzz"))
    try:
        n.init()
        yield n
    finally:
        n.destroy()


@pytest.fixture(scope="module")
def channel(node: SingleNode) -> Iterator[grpc.Channel]:
    creds = credentials.load_node_credentials(node.data_dir)
    options = tls.channel_options([("grpc.max_send_message_length", -1)])
    with grpc.secure_channel(f"127.0.0.1:{node.port}", tls.client_credentials(creds),
                             options=options) as ch:
        yield ch


def unparsable(cls: Any, rng: random.Random) -> list[bytes]:
    """Payloads the request type `cls` refuses to parse: the hand-made ones that it
    refuses (all of them do), random ones, and a large one."""
    out = []
    for payload in HAND_MADE + [rng.randbytes(rng.randint(1, 64)) for _ in range(200)]:
        try:
            cls.FromString(payload)
        except DecodeError:
            out.append(payload)
        if len(out) == len(HAND_MADE) + RANDOM_PER_METHOD:
            break
    assert len(out) == len(HAND_MADE) + RANDOM_PER_METHOD, cls
    return out + [b"\xff" * (LIMIT - LIMIT // 8), b"\xff" * (LIMIT + (1 << 20))]


def _raw(data: bytes) -> bytes:
    return data


RAW = {"request_serializer": _raw, "response_deserializer": _raw}


def send(channel: grpc.Channel, path: str, method: Any, payload: bytes) -> grpc.RpcError | None:
    """Calls `path` with raw bytes as its request (every message of a client stream)."""
    try:
        if method.client_streaming and method.server_streaming:
            for _ in channel.stream_stream(path, **RAW)(iter([payload]), timeout=10):
                pass
        elif method.server_streaming:
            for _ in channel.unary_stream(path, **RAW)(payload, timeout=10):
                pass
        elif method.client_streaming:
            channel.stream_unary(path, **RAW)(iter([payload]), timeout=10)
        else:
            channel.unary_unary(path, **RAW)(payload, timeout=10)
    except grpc.RpcError as err:
        return err
    return None


def store_objects(node: SingleNode) -> dict[str, list[bytes]]:
    """Every object the Control API lists, serialized, by kind (over the unix socket)."""
    api = node.api()
    lists = {
        "node": api.ListNodes(cpb.ListNodesRequest(), timeout=10).nodes,
        "service": api.ListServices(cpb.ListServicesRequest(), timeout=10).services,
        "task": api.ListTasks(cpb.ListTasksRequest(), timeout=10).tasks,
        "network": api.ListNetworks(cpb.ListNetworksRequest(), timeout=10).networks,
        "secret": api.ListSecrets(cpb.ListSecretsRequest(), timeout=10).secrets,
        "config": api.ListConfigs(cpb.ListConfigsRequest(), timeout=10).configs,
        "cluster": api.ListClusters(cpb.ListClustersRequest(), timeout=10).clusters,
        "stack": api.ListStacks(cpb.ListStacksRequest(), timeout=10).stacks,
    }
    return {kind: sorted(o.SerializeToString(deterministic=True) for o in objects)
            for kind, objects in lists.items()}


def big_reference(method: Any) -> Message | None:
    """A request of 3.5 MiB that parses, for a Control call whose first field names an
    object (nothing is that long, so the call is refused NOT_FOUND); None for others."""
    cls = message_factory.GetMessageClass(method.input_type)
    first = method.input_type.fields_by_number.get(1)
    if first is None or first.type != first.TYPE_STRING or \
            not (first.name.endswith("_id") or first.name in ("node", "name")):
        return None
    msg: Message = cls()
    setattr(msg, first.name, "x" * (LIMIT - LIMIT // 8))
    return msg


def test_garbage_to_every_rpc_is_refused_and_changes_nothing(
        node: SingleNode, channel: grpc.Channel) -> None:
    before = store_objects(node)
    log = log_path(node.data_dir)
    log_size = log.stat().st_size
    rng = random.Random(16)
    wrong, calls = [], 0
    for path, method in methods():
        for payload in unparsable(message_factory.GetMessageClass(method.input_type), rng):
            err = send(channel, path, method, payload)
            calls += 1
            allowed = REFUSED_GARBAGE | ({grpc.StatusCode.PERMISSION_DENIED}
                                         if path.startswith(LOCAL_ONLY) else set())
            if err is None or err.code() not in allowed:
                wrong.append(f"{path} with {len(payload)} bytes {payload[:8]!r}: "
                             + ("answered" if err is None else
                                f"{err.code().name} {err.details()}"))
        request = big_reference(method) if path.startswith("/shoal.v1.Control/") else None
        if request is not None:
            err = send(channel, path, method, request.SerializeToString())
            calls += 1
            if err is None or err.code() not in (grpc.StatusCode.NOT_FOUND,
                                                 grpc.StatusCode.INVALID_ARGUMENT):
                wrong.append(f"{path} with a 3.5 MiB reference: "
                             + ("answered" if err is None else
                                f"{err.code().name} {err.details()}"))
    assert not wrong, f"{len(wrong)} of {calls} calls were not refused as garbage:\n" + \
        "\n".join(wrong[:40])

    # the daemon still serves, over TCP and its socket, and nothing changed
    info = control_pb2_grpc.ControlStub(channel).Info(cpb.InfoRequest(), timeout=10)
    assert info.node_id == node.node_id and info.is_manager
    assert store_objects(node) == before
    with open(log, errors="replace") as f:
        f.seek(log_size)
        added = f.read()
    assert "Traceback" not in added, added[-4000:]
    print(f"{calls} garbage calls refused; store unchanged")

