"""Authorization of every RPC by the caller's certificate role.

`AUTHZ` is the table: full method name (or service prefix) -> roles allowed.
Callers on the node's own unix socket are local root and pass. Over TCP the
verified client certificate decides; a certificate of a node no longer in the
store (removed) or of another cluster is refused at once.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

import grpc

from pki import tls

ANYONE = frozenset({"anyone"})
NODES = frozenset({"worker", "manager"})
MANAGERS = frozenset({"manager"})

AUTHZ: dict[str, frozenset[str]] = {
    "/shoal.v1.Control/": MANAGERS,
    "/shoal.v1.Watch/": MANAGERS,
    "/shoal.v1.RaftMembership/": MANAGERS,
    "/shoal.v1.Dispatcher/": NODES,
    "/shoal.v1.NodeCA/RenewNodeCertificate": NODES,
    "/shoal.v1.NodeCA/GetRootCACertificate": ANYONE,
    "/shoal.v1.NodeCA/IssueNodeCertificate": ANYONE,
    "/grpc.health.v1.Health/": ANYONE,
    "/grpc.reflection.v1alpha.ServerReflection/": MANAGERS,
    "/grpc.reflection.v1.ServerReflection/": MANAGERS,
}


def allowed_roles(method: str) -> frozenset[str]:
    """Roles that may call `method`; nothing when the table does not name it."""
    if method in AUTHZ:
        return AUTHZ[method]
    for prefix, roles in AUTHZ.items():
        if prefix.endswith("/") and method.startswith(prefix):
            return roles
    return frozenset()


def _wrap(handler: Any, check: Callable[[Any], Any]) -> grpc.RpcMethodHandler:
    """`handler` with `check(context)` awaited first. The handler is typed Any: grpc's
    type stubs leave out the attributes of RpcMethodHandler (unary_unary, ...)."""
    if handler.unary_unary:
        async def uu(request, context):
            await check(context)
            return await handler.unary_unary(request, context)
        return grpc.unary_unary_rpc_method_handler(
            uu, handler.request_deserializer, handler.response_serializer)
    # A streaming handler either yields its responses (an async generator) or writes
    # them with context.write() (a coroutine, as grpc_health's Watch); keep its shape.
    if handler.unary_stream and not inspect.isasyncgenfunction(handler.unary_stream):
        async def us_writes(request, context):
            await check(context)
            return await handler.unary_stream(request, context)
        return grpc.unary_stream_rpc_method_handler(
            us_writes, handler.request_deserializer, handler.response_serializer)
    if handler.unary_stream:
        async def us(request, context):
            await check(context)
            async for item in handler.unary_stream(request, context):
                yield item
        return grpc.unary_stream_rpc_method_handler(
            us, handler.request_deserializer, handler.response_serializer)
    if handler.stream_unary:
        async def su(request_iterator, context):
            await check(context)
            return await handler.stream_unary(request_iterator, context)
        return grpc.stream_unary_rpc_method_handler(
            su, handler.request_deserializer, handler.response_serializer)

    if not inspect.isasyncgenfunction(handler.stream_stream):
        async def ss_writes(request_iterator, context):
            await check(context)
            return await handler.stream_stream(request_iterator, context)
        return grpc.stream_stream_rpc_method_handler(
            ss_writes, handler.request_deserializer, handler.response_serializer)

    async def ss(request_iterator, context):
        await check(context)
        async for item in handler.stream_stream(request_iterator, context):
            yield item
    return grpc.stream_stream_rpc_method_handler(
        ss, handler.request_deserializer, handler.response_serializer)


class AuthzInterceptor(grpc.aio.ServerInterceptor):
    """Enforces AUTHZ on every call that does not come over the unix socket."""

    def __init__(self, cluster_id: Callable[[], str],
                 node_known: Optional[Callable[[str], bool]] = None) -> None:
        self.cluster_id = cluster_id
        self.node_known = node_known

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        roles = allowed_roles(handler_call_details.method)

        async def check(context) -> None:
            if (context.peer() or "").startswith("unix:") or roles == ANYONE:
                return
            if not roles:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                    f"{handler_call_details.method} is not open to remote callers")
            ident = await tls.require_role(context, *sorted(roles),
                                           cluster_id=self.cluster_id() or None)
            if self.node_known is not None and not self.node_known(ident.node_id):
                await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                    f"node {ident.node_id} is not a member of this swarm "
                                    "(it was removed)")
        return _wrap(handler, check)
