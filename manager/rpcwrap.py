"""Wrapping a gRPC method handler: a check before it runs, and requests that do not parse.

`wrap(handler, method, check)` returns the handler in the same shape (unary or
streaming, yielding or writing its responses) with `check(context)` awaited
before it runs (manager.authz's authorization). It also parses requests
tolerantly: bytes that are not a valid message of the method's request type
(corrupt wire format, bad UTF-8 in a string) become a `Malformed` marker instead
of an exception inside grpc, which would answer UNKNOWN and log a traceback; the
caller gets INVALID_ARGUMENT with the parse error instead, after the check (an
unauthorised caller learns nothing more than before). A malformed message in a
client stream ends the call the same way when the handler reaches it.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Optional

import grpc
from google.protobuf.message import DecodeError

Check = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class Malformed:
    """A request whose bytes did not parse; `error` is the parser's message."""
    error: str


def _tolerant(deserializer: Optional[Callable[[bytes], Any]]) -> Optional[Callable[[bytes], Any]]:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as exc:
            return Malformed(str(exc))
    return parse


async def _refuse(context: Any, method: str, bad: Malformed) -> None:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"malformed request to {method}: {bad.error}; send the request "
                        "message of the Shoal API (proto/*.proto), serialized as protobuf")


async def _parsed(requests: AsyncIterator[Any], context: Any,
                  method: str) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, Malformed):
            await _refuse(context, method, request)
        yield request


def wrap(handler: Any, method: str, check: Check) -> grpc.RpcMethodHandler:
    """`handler` with `check(context)` awaited first and malformed requests refused. The
    handler is typed Any: grpc's type stubs leave out the attributes of
    RpcMethodHandler (unary_unary, ...)."""
    parse = _tolerant(handler.request_deserializer)
    serialize = handler.response_serializer

    async def first(request: Any, context: Any) -> None:
        await check(context)
        if isinstance(request, Malformed):
            await _refuse(context, method, request)

    if handler.unary_unary:
        async def uu(request, context):
            await first(request, context)
            return await handler.unary_unary(request, context)
        return grpc.unary_unary_rpc_method_handler(uu, parse, serialize)
    # A streaming handler either yields its responses (an async generator) or writes
    # them with context.write() (a coroutine, as grpc_health's Watch); keep its shape.
    if handler.unary_stream and not inspect.isasyncgenfunction(handler.unary_stream):
        async def us_writes(request, context):
            await first(request, context)
            return await handler.unary_stream(request, context)
        return grpc.unary_stream_rpc_method_handler(us_writes, parse, serialize)
    if handler.unary_stream:
        async def us(request, context):
            await first(request, context)
            async for item in handler.unary_stream(request, context):
                yield item
        return grpc.unary_stream_rpc_method_handler(us, parse, serialize)
    if handler.stream_unary:
        async def su(request_iterator, context):
            await check(context)
            return await handler.stream_unary(_parsed(request_iterator, context, method),
                                              context)
        return grpc.stream_unary_rpc_method_handler(su, parse, serialize)

    if not inspect.isasyncgenfunction(handler.stream_stream):
        async def ss_writes(request_iterator, context):
            await check(context)
            return await handler.stream_stream(_parsed(request_iterator, context, method),
                                               context)
        return grpc.stream_stream_rpc_method_handler(ss_writes, parse, serialize)

    async def ss(request_iterator, context):
        await check(context)
        async for item in handler.stream_stream(_parsed(request_iterator, context, method),
                                                context):
            yield item
    return grpc.stream_stream_rpc_method_handler(ss, parse, serialize)
