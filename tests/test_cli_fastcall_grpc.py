"""cli.fastcall against a real grpcio server (grpc-core's HTTP/2 and HPACK) on a unix socket.

The server is an in-process grpc.server with a small Control servicer (no
node daemon). Each call goes through `cli.client.Client` and must be answered
by the fast path (`fast_calls`, no `fallbacks`), with what grpcio itself
returns for the same call.
"""
from __future__ import annotations

import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest

from cli import fastcall as fc
from cli.client import Client, RpcFailure, describe_rpc_error
from cli.hpack import Decoder, Text
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb

ODD_MESSAGE = "No such node: a b 100% ünïcode\ttab %41 ✓"
BIG_NODES = 5000   # nodes of ~1 KiB each: a response of about 5 MiB


class Servicer:
    """ListNodes (as many nodes as the first name filter says), GetNode (always NOT_FOUND),
    Info (answers once `release` is set)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def list_nodes(self, request: cpb.ListNodesRequest, context: Any) -> cpb.ListNodesResponse:
        count = int(request.filters.names[0]) if request.filters.names else 3
        return cpb.ListNodesResponse(nodes=[pb.Node(id=f"node{i:04d}" + "x" * 1000)
                                            for i in range(count)])

    def get_node(self, request: cpb.GetNodeRequest, context: Any) -> cpb.GetNodeResponse:
        context.abort(grpc.StatusCode.NOT_FOUND, ODD_MESSAGE)
        raise AssertionError("abort returned")

    def info(self, request: cpb.InfoRequest, context: Any) -> cpb.InfoResponse:
        self.release.wait(10)
        return cpb.InfoResponse(node_id="self")


def handler(fn: Any, request: Any, response: Any) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(fn, request.FromString, response.SerializeToString)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Servicer]]:
    servicer = Servicer()
    methods = {
        "ListNodes": handler(servicer.list_nodes, cpb.ListNodesRequest, cpb.ListNodesResponse),
        "GetNode": handler(servicer.get_node, cpb.GetNodeRequest, cpb.GetNodeResponse),
        "Info": handler(servicer.info, cpb.InfoRequest, cpb.InfoResponse),
    }
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("shoal.v1.Control",
                                                                      methods),))
    sock = tmp_path / "swarm.sock"
    srv.add_insecure_port(f"unix://{sock}")
    srv.start()
    try:
        yield f"unix://{sock}", servicer
    finally:
        servicer.release.set()
        srv.stop(None)


def list_request(count: int) -> cpb.ListNodesRequest:
    request = cpb.ListNodesRequest()
    request.filters.names.append(str(count))
    return request


def test_a_read_goes_through_the_fast_path(server: tuple[str, Servicer]) -> None:
    host, _ = server
    with Client(host) as client:
        response = client.call("ListNodes", list_request(3))
        assert [n.id[:8] for n in response.nodes] == ["node0000", "node0001", "node0002"]
        assert (client.fast_calls, client.fallbacks) == (1, [])
        assert client._grpc is None                     # grpcio was not needed
        assert response == client.channel.call(client.channel.control, "ListNodes",
                                               list_request(3), 5)


def test_grpc_core_sends_the_headers_the_client_needs_unhuffman_coded(
        server: tuple[str, Servicer]) -> None:
    """Every header name and every value the call reads arrives as a plain string."""
    host, _ = server
    path = host[len("unix://"):]
    seen: list[tuple[Text, Text]] = []

    class Recording(Decoder):
        def decode(self, block: bytes) -> list[tuple[Text, Text]]:
            fields = super().decode(block)
            seen.extend(fields)
            return fields

    for method, request in (("ListNodes", list_request(2)),
                            ("GetNode", cpb.GetNodeRequest(node_id="x"))):
        deadline = time.monotonic() + 5
        sock = fc.connect(path, deadline)
        conn = fc.Connection(sock, deadline)
        conn.decoder = Recording()
        conn.send(fc.request_bytes(f"/shoal.v1.Control/{method}",
                                   request.SerializeToString(), 5))
        conn.exchange(1 << 20)
        sock.close()
    names = {bytes(name) for name, _ in seen}
    assert {b":status", b"content-type", b"grpc-status", b"grpc-message"} <= names
    assert [name for name, _ in seen if isinstance(name, fc.Huffman)] == []
    needed = [(n, v) for n, v in seen if n in (b":status", b"content-type", b"grpc-status",
                                               b"grpc-message")]
    assert [n for n, v in needed if isinstance(v, fc.Huffman)] == []


def test_an_error_keeps_its_code_and_message(server: tuple[str, Servicer]) -> None:
    host, _ = server
    with Client(host) as client:
        with pytest.raises(RpcFailure) as fast:
            client.call("GetNode", cpb.GetNodeRequest(node_id="a b"))
        assert (fast.value.code(), fast.value.details()) == ("NOT_FOUND", ODD_MESSAGE)
        assert (client.fast_calls, client.fallbacks) == (0, [])
        with pytest.raises(RpcFailure) as slow:          # grpcio says the same
            client.channel.call(client.channel.control, "GetNode",
                                cpb.GetNodeRequest(node_id="a b"), 5)
        assert (slow.value.code(), slow.value.details()) == ("NOT_FOUND", ODD_MESSAGE)
    assert describe_rpc_error(fast.value, host) == f"Error: {ODD_MESSAGE}"


def test_a_response_of_several_mebibytes(server: tuple[str, Servicer]) -> None:
    host, _ = server
    with Client(host) as client:
        response = client.call("ListNodes", list_request(BIG_NODES))
        assert response.ByteSize() > 5_000_000
        assert len(response.nodes) == BIG_NODES
        assert response.nodes[-1].id.startswith(f"node{BIG_NODES - 1:04d}")
        assert (client.fast_calls, client.fallbacks) == (1, [])


def test_a_response_over_the_limit_is_refused(server: tuple[str, Servicer]) -> None:
    host, _ = server
    path = host[len("unix://"):]
    request = list_request(2000).SerializeToString()
    with pytest.raises(RpcFailure, match="larger than max") as exc:
        fc.unary_call(path, "/shoal.v1.Control/ListNodes", request, 5, max_message=1_000_000)
    assert exc.value.code() == "RESOURCE_EXHAUSTED"


def test_a_deadline(server: tuple[str, Servicer]) -> None:
    host, servicer = server
    with Client(host) as client:
        started = time.monotonic()
        with pytest.raises(RpcFailure) as exc:
            client.call("Info", cpb.InfoRequest(), timeout=0.3)
        assert time.monotonic() - started < 3
        assert exc.value.code() == "DEADLINE_EXCEEDED"
        assert client.fallbacks == []
        servicer.release.set()
        assert client.call("Info", cpb.InfoRequest()).node_id == "self"
    assert describe_rpc_error(exc.value, host) == (
        f"Error: the swarm node at {host} did not answer in time")


def test_a_missing_socket(tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/none.sock"
    with Client(host) as client:
        with pytest.raises(RpcFailure) as exc:
            client.call("ListNodes", cpb.ListNodesRequest())
        assert client._grpc is None and client.fallbacks == []
    assert exc.value.code() == "UNAVAILABLE"
    assert describe_rpc_error(exc.value, host) == (
        f"Cannot connect to the swarm node at {host}. "
        "Is the node running (swarm init / swarm daemon)?")


def test_writes_and_fallbacks_go_through_grpcio(server: tuple[str, Servicer],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    host, _ = server
    with Client(host) as client:
        with pytest.raises(RpcFailure) as exc:            # not served here: grpcio's answer
            client.call("RemoveNode", cpb.RemoveNodeRequest(node_id="x"))
        assert exc.value.code() == "UNIMPLEMENTED" and client.fast_calls == 0

        def unsupported(*args: Any, **kwargs: Any) -> bytes:
            raise fc.Unsupported("scripted")
        monkeypatch.setattr(fc, "unary_call", unsupported)
        assert len(client.call("ListNodes", list_request(4)).nodes) == 4
        assert client.fast_calls == 0 and client.fallbacks == ["ListNodes: scripted"]
