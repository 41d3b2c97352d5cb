"""A manager that waits for its unlock key, and the LocalNode service.

With autolock on, a restarted manager cannot read its data key, its raft
journal nor its private keys until someone gives it the unlock key. Until
then it serves only its unix socket (`serve_locked`): every Control, Watch,
Dispatcher and CA call answers Swarm's "Swarm is encrypted and needs to be
unlocked" message, and `LocalNode.Unlock` takes the key. It binds no TCP
port, so its raft peers see it unreachable. A right key ends locked mode and
the node starts as usual; a wrong one is refused and it stays locked.

While locked the daemon keeps the file `<data-dir>/locked`, so that whoever
started it (`swarm daemon`, the lab) can tell "up but locked" from "starting".
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import grpc

from node.state import LOCKED_FILE
from proto import ca_pb2, control_pb2, control_pb2_grpc, dispatcher_pb2, watch_pb2

LOCKED = ('Swarm is encrypted and needs to be unlocked before it can be used. '
          'Please use "swarm unlock" to unlock it.')
INVALID_KEY = "swarm could not be unlocked: invalid key provided"
NOT_LOCKED = "swarm is not locked"

# try_unlock(key text) -> None when it opened the node; raises ValueError with
# the reason when it did not (InvalidKey for a wrong key).
Unlocker = Callable[[str], None]


class InvalidKey(ValueError):
    """The unlock key is well formed but does not open this node."""


def refuse_all(service_descriptor: Any, message: str,
               code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION
               ) -> grpc.GenericRpcHandler:
    """A handler that answers every method of a service with `message`."""
    async def refuse(request, context):
        await context.abort(code, message)

    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service_descriptor.methods:
        if method.server_streaming:
            async def stream(request, context):
                await context.abort(code, message)
                yield  # pragma: no cover - abort raises
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(stream)
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(refuse)
    return grpc.method_handlers_generic_handler(service_descriptor.full_name, handlers)


class LocalNodeServicer(control_pb2_grpc.LocalNodeServicer):
    """`swarm unlock`'s service. `unlocker` is None on a node that is not locked."""

    def __init__(self, unlocker: Optional[Unlocker] = None,
                 network_views: Optional[Callable[[], str]] = None) -> None:
        self.unlocker = unlocker
        self.network_views = network_views

    async def GetNetworkViews(self, request, context):
        text = self.network_views() if self.network_views is not None else ""
        return control_pb2.GetNetworkViewsResponse(views_json=text)

    async def GetLockState(self, request, context):
        return control_pb2.GetLockStateResponse(locked=self.unlocker is not None)

    async def Unlock(self, request, context):
        unlocker = self.unlocker
        if unlocker is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, NOT_LOCKED)
            return control_pb2.UnlockResponse()  # not reached: abort raises
        try:
            unlocker(request.unlock_key)
        except InvalidKey:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, INVALID_KEY)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return control_pb2.UnlockResponse()


def locked_services() -> list:
    """The services a locked node refuses (all but LocalNode and health)."""
    return [control_pb2.DESCRIPTOR.services_by_name["Control"],
            watch_pb2.DESCRIPTOR.services_by_name["Watch"],
            dispatcher_pb2.DESCRIPTOR.services_by_name["Dispatcher"],
            ca_pb2.DESCRIPTOR.services_by_name["NodeCA"],
            ca_pb2.DESCRIPTOR.services_by_name["RaftMembership"]]


async def serve_locked(sock: Path, data_dir: Path, open_with: Callable[[str], Any],
                       stop: asyncio.Event, log: logging.LoggerAdapter,
                       on_serving: Optional[Callable[[], Awaitable[None]]] = None
                       ) -> Optional[Any]:
    """Serves the locked node on `sock` until a key opens it or `stop` is set.

    `open_with(key)` returns what the key opened (the data key) or raises
    InvalidKey / ValueError. Returns that value, or None when stopped first.
    `on_serving` is awaited once the socket serves.
    """
    opened: list = []
    done = asyncio.Event()

    def unlocker(key: str) -> None:
        if done.is_set():
            return
        opened.append(open_with(key))
        done.set()

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(tuple(refuse_all(s, LOCKED) for s in locked_services()))
    control_pb2_grpc.add_LocalNodeServicer_to_server(LocalNodeServicer(unlocker), server)
    sock.unlink(missing_ok=True)
    old_umask = os.umask(0o177)
    try:
        server.add_insecure_port(f"unix://{sock}")
    finally:
        os.umask(old_umask)
    await server.start()
    os.chmod(sock, 0o600)
    marker = data_dir / LOCKED_FILE
    marker.write_text(str(os.getpid()))
    log.warning("swarm is locked: waiting for 'swarm unlock' on %s", sock)
    if on_serving is not None:
        await on_serving()
    waiters = [asyncio.ensure_future(done.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await server.stop(2.0)  # lets the Unlock call that opened the node answer
        marker.unlink(missing_ok=True)
    if opened:
        log.info("unlocked")
        return opened[0]
    return None
