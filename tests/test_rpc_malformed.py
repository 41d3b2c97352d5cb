"""Requests that do not parse are refused with INVALID_ARGUMENT, not UNKNOWN and a traceback.

grpc parses a request before any handler runs; a parse error used to surface as
UNKNOWN ("Unexpected <class 'DecodeError'>") with a traceback in the daemon's log
(found by tests/test_e2e_grpc_fuzz.py). The daemon's interceptor
(manager.authz, manager.rpcwrap) now answers INVALID_ARGUMENT with the parse
error, for unary requests and for messages of a client stream alike. Served
here in process on a unix socket, with the daemon's interceptor.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import AsyncIterator

import grpc
import pytest

from manager.authz import AuthzInterceptor
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb
from tests.controlfuzz import Control, seeded
from tests.memstore import MemoryStore

CORRUPT = b"\xff\xff"              # a tag of wire type 7: no message parses it
BAD_UTF8 = b"\x0a\x02\xff\xfe"     # field 1 (a string) holding invalid UTF-8


async def count(requests: AsyncIterator[pb.Node], context: object) -> pb.Node:
    """A client-streaming method: the number of nodes sent, as the ID of a node."""
    n = 0
    async for _ in requests:
        n += 1
    return pb.Node(id=str(n))


@pytest.fixture
async def channel(tmp_path: Path) -> AsyncIterator[grpc.aio.Channel]:
    dump, data_dir = await asyncio.to_thread(seeded)  # seeded() runs its own event loops
    control = Control(MemoryStore.loaded(dump), data_dir)
    server = grpc.aio.server(interceptors=[AuthzInterceptor(lambda: "c1")])
    control_pb2_grpc.add_ControlServicer_to_server(control.servicer, server)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.T", {
        "Count": grpc.stream_unary_rpc_method_handler(
            count, pb.Node.FromString, pb.Node.SerializeToString)}),))
    address = f"unix://{tmp_path}/s.sock"
    server.add_insecure_port(address)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(address) as ch:
            yield ch
    finally:
        await server.stop(0)


def _raw(data: bytes) -> bytes:
    return data


RAW = {"request_serializer": _raw, "response_deserializer": _raw}


async def failed(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value


@pytest.mark.parametrize("method,payload,error", [
    ("GetNode", CORRUPT, "Wire format was corrupt"),
    ("GetNode", BAD_UTF8, "String field had bad UTF-8"),
    ("CreateService", CORRUPT, "Wire format was corrupt"),
    ("CreateService", BAD_UTF8, "Wire format was corrupt"),  # field 1 is a message there
])
async def test_a_unary_request_that_does_not_parse_is_invalid(
        channel: grpc.aio.Channel, method: str, payload: bytes, error: str,
        caplog: pytest.LogCaptureFixture) -> None:
    err = await failed(channel.unary_unary(f"/shoal.v1.Control/{method}", **RAW)(payload, timeout=5))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == (
        f"malformed request to /shoal.v1.Control/{method}: Error parsing message with type "
        f"'shoal.v1.{method}Request': {error}; send the request message of the Shoal API "
        "(proto/*.proto), serialized as protobuf")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # a request that parses is served as before
    ok = await channel.unary_unary("/shoal.v1.Control/GetNode", cpb.GetNodeRequest.SerializeToString,
                                   cpb.GetNodeResponse.FromString)(
        cpb.GetNodeRequest(node_id="w1"), timeout=5)
    assert ok.node.id == "w1"


async def test_a_streamed_request_that_does_not_parse_ends_the_call(
        channel: grpc.aio.Channel) -> None:
    call = channel.stream_unary("/t.T/Count", **RAW)
    good = pb.Node(id="a").SerializeToString()
    assert pb.Node.FromString(await call(iter([good, good]), timeout=5)).id == "2"
    err = await failed(call(iter([good, CORRUPT, good]), timeout=5))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.details() or "").startswith("malformed request to /t.T/Count: Error parsing message "
                                    "with type 'shoal.v1.Node': Wire format was corrupt")


async def test_a_server_stream_request_that_does_not_parse_is_invalid(
        channel: grpc.aio.Channel) -> None:
    call = channel.unary_stream("/shoal.v1.Control/ServiceLogs", **RAW)(CORRUPT, timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in call:
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
