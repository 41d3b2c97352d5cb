"""Authorization of every RPC by the caller's certificate role.

`AUTHZ` is the table: full method name (or service prefix) -> roles allowed.
Callers on the node's own unix socket are local root and pass. Over TCP the
verified client certificate decides; a certificate of a node no longer in the
store (removed) or of another cluster is refused at once. The interceptor wraps
every handler with manager.rpcwrap, which also refuses requests that do not
parse (INVALID_ARGUMENT, after the authorization check).
"""
from __future__ import annotations

from typing import Callable, Optional

import grpc

from manager import rpcwrap
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
        return rpcwrap.wrap(handler, handler_call_details.method, check)
