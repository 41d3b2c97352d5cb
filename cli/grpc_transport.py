"""The CLI's grpcio path: a channel to one node and calls through grpcio's stubs.

Owns opening the channel (insecure on a unix socket, TLS credentials on TCP
when given; with `keepalive`, HTTP/2 pings that end a call to a node gone
silent, see `KEEPALIVE_OPTIONS`), unary and server-streaming calls of the Control and LocalNode
services and the Watch stream, and turning grpc.RpcError into the CLI's `RpcFailure`. `cli.client`
loads this module only when a call needs grpcio (TCP or TLS targets, writes,
streams, the LocalNode service, or a fallback from `cli.fastcall`): importing
grpc costs more than a whole `swarm node ls` may take.
"""
from __future__ import annotations

import threading
from typing import Any, Iterator, Optional

import grpc

from cli.fastcall import RpcFailure
from proto import control_pb2_grpc, watch_pb2_grpc

MAX_MESSAGE = 64 * 1024 * 1024   # bytes, the largest response the CLI accepts
KEEPALIVE_TIME_MS = 5000     # a ping after this long without anything from the node
KEEPALIVE_TIMEOUT_MS = 5000  # no answer to it within this: the connection and its calls fail
# For channels that hold long, possibly silent streams (Watch): a node that vanished without
# closing the connection (power loss, a partition) ends them within ~10 s. Managers accept a
# ping every 2.5 s without data (node.daemon.SERVER_OPTIONS), so they never answer
# GOAWAY too_many_pings to these.
KEEPALIVE_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    # grpcio (1.85) fails an unanswered ping after this one, 60 s unless set
    ("grpc.http2.ping_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),   # keep pinging a stream that stays silent
)


def failure(err: grpc.RpcError) -> RpcFailure:
    """The CLI's error for a failed grpcio call (code name and details)."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = (err.details() if hasattr(err, "details") else str(err)) or ""
    return RpcFailure(getattr(code, "name", "UNKNOWN"), details)


class Stream:
    """A server-streaming call's responses; failures arrive as RpcFailure."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self._call
        except grpc.RpcError as exc:
            raise failure(exc) from exc

    def wait_open(self, timeout: Optional[float] = None) -> None:
        """Waits until the node has answered the call's headers (from then on the stream is
        registered on the node); raises RpcFailure when the call failed instead, or
        DEADLINE_EXCEEDED (and cancels the call) when `timeout` seconds pass first: a node
        that accepts the connection but is hung would otherwise be waited for forever."""
        expired = threading.Event()
        timer: Optional[threading.Timer] = None
        if timeout is not None:
            def expire() -> None:
                expired.set()
                self._call.cancel()
            timer = threading.Timer(timeout, expire)
            timer.daemon = True
            timer.start()
        try:
            self._call.initial_metadata()
        except grpc.RpcError as exc:
            raise failure(exc) from exc
        finally:
            if timer is not None:
                timer.cancel()
        if expired.is_set():
            self._call.cancel()
            raise RpcFailure("DEADLINE_EXCEEDED", f"no answer to the call within {timeout:g} s")
        if self._call.done() and self._call.code() != grpc.StatusCode.OK:
            raise failure(self._call)

    def cancel(self) -> None:
        self._call.cancel()


class Channel:
    """A grpcio channel to the node with its Control, LocalNode and Watch stubs;
    `keepalive` adds `KEEPALIVE_OPTIONS`."""

    def __init__(self, address: str, is_unix: bool,
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 keepalive: bool = False) -> None:
        options: list[tuple[str, int]] = [("grpc.max_receive_message_length", MAX_MESSAGE)]
        if keepalive:
            options.extend(KEEPALIVE_OPTIONS)
        self.options = tuple(options)
        if credentials is not None and not is_unix:
            self._channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self.control = control_pb2_grpc.ControlStub(self._channel)
        self.local = control_pb2_grpc.LocalNodeStub(self._channel)
        self.watch = watch_pb2_grpc.WatchStub(self._channel)

    def call(self, stub: Any, method: str, request: Any, timeout: Optional[float]) -> Any:
        try:
            return getattr(stub, method)(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise failure(exc) from exc

    def stream(self, method: str, request: Any, timeout: Optional[float]) -> Stream:
        return Stream(getattr(self.control, method)(request, timeout=timeout))

    def watch_stream(self, request: Any, timeout: Optional[float]) -> Stream:
        """Opens a Watch stream (proto/watch.proto)."""
        return Stream(self.watch.Watch(request, timeout=timeout))

    def close(self) -> None:
        self._channel.close()
