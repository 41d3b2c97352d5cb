"""The intended authorization policy, RPC by RPC, and a generic caller for it.

`EXPECTED` is written out by hand, method by method, on purpose: it is the
policy as the tests understand it, so a change to `manager/authz.py` that
opens or closes an RPC has to be mirrored here. `services()` lists every RPC
a manager serves; `call()` invokes any of them with an empty request and
classifies the outcome as allowed or refused by authorization.
"""
from __future__ import annotations

from typing import Any, Iterator

import grpc
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from proto import ca_pb2, control_pb2, dispatcher_pb2, watch_pb2

MANAGER, WORKER, NOCERT = "manager", "worker", "no certificate"
ALL = frozenset({MANAGER, WORKER, NOCERT})
NODES = frozenset({MANAGER, WORKER})
MANAGERS = frozenset({MANAGER})

_CONTROL = control_pb2.DESCRIPTOR.services_by_name["Control"]
EXPECTED: dict[str, frozenset[str]] = {
    **{f"/{_CONTROL.full_name}/{m.name}": MANAGERS for m in _CONTROL.methods},
    "/shoal.v1.Watch/Watch": MANAGERS,
    "/shoal.v1.RaftMembership/JoinRaft": MANAGERS,
    "/shoal.v1.RaftMembership/LeaveRaft": MANAGERS,
    "/shoal.v1.Dispatcher/Session": NODES,
    "/shoal.v1.Dispatcher/Heartbeat": NODES,
    "/shoal.v1.Dispatcher/Assignments": NODES,
    "/shoal.v1.Dispatcher/UpdateTaskStatus": NODES,
    "/shoal.v1.Dispatcher/PublishLogs": NODES,
    "/shoal.v1.Dispatcher/UpdateVolumes": NODES,
    "/shoal.v1.Dispatcher/VolumeResult": NODES,
    "/shoal.v1.NodeCA/GetRootCACertificate": ALL,
    "/shoal.v1.NodeCA/IssueNodeCertificate": ALL,
    "/shoal.v1.NodeCA/RenewNodeCertificate": NODES,
    "/grpc.health.v1.Health/Check": ALL,
    "/grpc.health.v1.Health/Watch": ALL,
    "/grpc.health.v1.Health/List": ALL,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": MANAGERS,
    # the node's own unix socket only: nobody over TCP
    "/shoal.v1.LocalNode/GetLockState": frozenset(),
    "/shoal.v1.LocalNode/Unlock": frozenset(),
    "/shoal.v1.LocalNode/GetNetworkViews": frozenset(),
}

# Texts of the refusals that come from authorization (manager/authz.py and
# pki/tls.require_role), as opposed to a handler refusing an empty request.
AUTHZ_REFUSALS = ("this call needs role", "needs a node certificate",
                  "not open to remote callers", "belongs to another cluster")


def services() -> Iterator[Any]:
    """Descriptors of every service on a manager's TCP endpoint."""
    for module, name in ((control_pb2, "Control"), (control_pb2, "LocalNode"),
                         (watch_pb2, "Watch"),
                         (dispatcher_pb2, "Dispatcher"), (ca_pb2, "NodeCA"),
                         (ca_pb2, "RaftMembership"), (health_pb2, "Health"),
                         (reflection_pb2, "ServerReflection")):
        yield module.DESCRIPTOR.services_by_name[name]


def methods() -> list[tuple[str, Any]]:
    """(full method path, method descriptor) for every RPC served."""
    return [(f"/{svc.full_name}/{m.name}", m) for svc in services() for m in svc.methods]


def call(channel: grpc.Channel, path: str, method: Any, timeout: float = 5.0) -> grpc.RpcError | None:
    """Calls `path` with an empty request; the error, or None when it answered.

    Streams are cancelled after their first message. A call that passes
    authorization and then waits (a session, a watch) ends with
    DEADLINE_EXCEEDED, which is not an authorization refusal.
    """
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls = message_factory.GetMessageClass(method.output_type)
    kwargs = dict(request_serializer=lambda m: m.SerializeToString(),
                  response_deserializer=response_cls.FromString)
    try:
        if method.client_streaming and method.server_streaming:
            stream = channel.stream_stream(path, **kwargs)(iter([request_cls()]), timeout=timeout)
            next(stream, None)
            stream.cancel()
        elif method.server_streaming:
            stream = channel.unary_stream(path, **kwargs)(request_cls(), timeout=timeout)
            next(stream, None)
            stream.cancel()
        elif method.client_streaming:
            channel.stream_unary(path, **kwargs)(iter([]), timeout=timeout)
        else:
            channel.unary_unary(path, **kwargs)(request_cls(), timeout=timeout)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.CANCELLED:
            return None
        return err
    return None


def refused_by_authz(err: grpc.RpcError | None) -> bool:
    """Whether `err` is an authorization refusal (not any other failure)."""
    if err is None:
        return False
    if err.code() not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
        return False
    return any(text in (err.details() or "") for text in AUTHZ_REFUSALS)
