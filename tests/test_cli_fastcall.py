"""cli.hpack and cli.fastcall without a server: HPACK decoding, frames, the call's outcome.

HPACK vectors are RFC 7541's (Appendix C.1 integers, C.3 requests without
Huffman coding, C.5 responses with a 256-byte table: eviction). The frame
reader is driven over a socketpair by a scripted peer.
"""
from __future__ import annotations

import socket
import struct
import time

import pytest

from cli import fastcall as fc
from cli.hpack import (STATIC_TABLE, Decoder, HpackError, Huffman, decode_int, encode_headers,
                       encode_int, encode_string)


def test_integer_coding_rfc_vectors() -> None:
    assert encode_int(10, 5) == b"\x0a"
    assert encode_int(1337, 5) == b"\x1f\x9a\x0a"
    assert encode_int(42, 8) == b"\x2a"
    assert decode_int(b"\x1f\x9a\x0a", 0, 5) == (1337, 3)
    assert decode_int(b"\xea", 0, 5) == (10, 1)          # bits above the prefix ignored
    for value in (0, 14, 15, 16, 127, 128, 4096, 2**21 + 5):
        for prefix in (4, 5, 6, 7):
            assert decode_int(encode_int(value, prefix), 0, prefix) == (value, len(
                encode_int(value, prefix)))
    with pytest.raises(HpackError, match="truncated"):
        decode_int(b"\x1f\x9a", 0, 5)
    with pytest.raises(HpackError, match="too long"):
        decode_int(b"\x1f" + b"\xff" * 8 + b"\x01", 0, 5)


def test_static_table_is_rfc_7541() -> None:
    assert len(STATIC_TABLE) == 61
    assert STATIC_TABLE[0] == (b":authority", b"")
    assert STATIC_TABLE[7] == (b":status", b"200")
    assert STATIC_TABLE[30] == (b"content-type", b"")
    assert STATIC_TABLE[60] == (b"www-authenticate", b"")


def test_requests_without_huffman_rfc_c3() -> None:
    decoder = Decoder()
    first = bytes.fromhex("828684410f7777772e6578616d706c652e636f6d")
    assert decoder.decode(first) == [(b":method", b"GET"), (b":scheme", b"http"),
                                     (b":path", b"/"), (b":authority", b"www.example.com")]
    assert decoder.table == [(b":authority", b"www.example.com")] and decoder.size == 57
    second = bytes.fromhex("828684be58086e6f2d6361636865")
    assert decoder.decode(second)[3:] == [(b":authority", b"www.example.com"),
                                          (b"cache-control", b"no-cache")]
    assert decoder.size == 110
    third = bytes.fromhex("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565")
    assert decoder.decode(third) == [
        (b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/index.html"),
        (b":authority", b"www.example.com"), (b"custom-key", b"custom-value")]
    assert [name for name, _ in decoder.table] == [b"custom-key", b"cache-control",
                                                   b":authority"]
    assert decoder.size == 164


def test_responses_evict_the_oldest_entries_rfc_c5() -> None:
    decoder = Decoder(max_size=256)
    first = bytes.fromhex(
        "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a32"
        "3120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d")
    assert decoder.decode(first) == [
        (b":status", b"302"), (b"cache-control", b"private"),
        (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT"), (b"location", b"https://www.example.com")]
    assert decoder.size == 222
    second = bytes.fromhex("4803333037c1c0bf")
    assert decoder.decode(second) == [
        (b":status", b"307"), (b"cache-control", b"private"),
        (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT"), (b"location", b"https://www.example.com")]
    assert decoder.table[0] == (b":status", b"307")
    assert (b":status", b"302") not in decoder.table       # evicted to make room
    assert decoder.size == 222


def test_an_entry_larger_than_the_table_empties_it() -> None:
    decoder = Decoder(max_size=100)
    decoder.decode(b"\x40" + encode_string(b"a") + encode_string(b"b"))
    assert decoder.size == 34
    decoder.decode(b"\x40" + encode_string(b"n") + encode_string(b"v" * 80))
    assert decoder.table == [] and decoder.size == 0


def test_table_size_updates() -> None:
    decoder = Decoder()
    decoder.decode(b"\x40" + encode_string(b"k1") + encode_string(b"v1")
                   + b"\x40" + encode_string(b"k2") + encode_string(b"v2"))
    assert decoder.size == 2 * 36
    # an update to 40 bytes keeps the newest entry only; it must lead the block
    assert decoder.decode(encode_int(40, 5, 0x20) + b"\xbe") == [(b"k2", b"v2")]
    assert decoder.table == [(b"k2", b"v2")] and decoder.limit == 40
    assert decoder.decode(b"\x20") == [] and decoder.table == [] and decoder.size == 0
    assert decoder.decode(encode_int(4096, 5, 0x20)) == [] and decoder.limit == 4096
    with pytest.raises(HpackError, match="above"):
        decoder.decode(encode_int(4097, 5, 0x20))
    with pytest.raises(HpackError, match="after a header field"):
        decoder.decode(b"\x82\x20")


def test_literal_forms_and_indices() -> None:
    decoder = Decoder()
    block = (b"\x0f\x10" + encode_string(b"application/grpc")     # without indexing, name 31
             + b"\x10" + encode_string(b"grpc-status") + encode_string(b"0")  # never indexed
             + b"\x00" + encode_string(b"grpc-message") + encode_string(b"ok")
             + b"\x88")                                             # indexed :status 200
    assert decoder.decode(block) == [
        (b"content-type", b"application/grpc"), (b"grpc-status", b"0"),
        (b"grpc-message", b"ok"), (b":status", b"200")]
    assert decoder.table == []                         # none of these forms index
    with pytest.raises(HpackError, match="beyond"):
        decoder.decode(b"\xbe")                        # 62: the empty dynamic table
    with pytest.raises(HpackError, match="index 0"):
        decoder.decode(b"\x80")
    with pytest.raises(HpackError, match="truncated"):
        decoder.decode(b"\x00\x05abc")
    assert decoder.decode(encode_headers([(b"x-a", b"1"), (b"te", b"trailers")])) == [
        (b"x-a", b"1"), (b"te", b"trailers")]


def test_huffman_strings_stay_opaque() -> None:
    decoder = Decoder()
    coded = b"\x8c" + bytes.fromhex("f1e3c2e5f23a6ba0ab90f4ff")  # "www.example.com", H set
    fields = decoder.decode(b"\x41" + coded + b"\x00\x01x\x81y")
    (name, value), (other, tail) = fields
    assert name == b":authority" and isinstance(value, Huffman)
    assert isinstance(tail, Huffman) and tail == b"y"
    # in the dynamic table too, and found by its index later
    assert isinstance(decoder.decode(b"\xbe")[0][1], Huffman)
    # what the call needs must be plain; other values may be Huffman-coded
    assert fc.header_dict([(b"x-other", Huffman(b"\x01"))], (b"grpc-status",)) == {
        b"x-other": b"\x01"}
    with pytest.raises(fc.Unsupported, match="grpc-status"):
        fc.header_dict([(b"grpc-status", Huffman(b"\x01"))], (b"grpc-status",))
    with pytest.raises(fc.Unsupported, match="name"):
        fc.header_dict([(Huffman(b"\x01"), b"0")], (b"grpc-status",))


def test_percent_decoding_and_timeouts() -> None:
    assert fc.percent_decode(b"No such node: a%20b 100%25 %C3%BCn") == "No such node: a b 100% ün"
    assert fc.percent_decode(b"50% off %zz %4") == "50% off %zz %4"
    assert fc.timeout_header(30) == b"30000m"
    assert fc.timeout_header(0.0001) == b"1m"
    assert fc.timeout_header(10**6) == b"1000000S"


# ------------------------------------------------------------------ frames ----

def server_frames(*frames: bytes) -> tuple[fc.Connection, socket.socket]:
    """A Connection reading what a scripted peer already wrote (and the peer's end)."""
    ours, peer = socket.socketpair()
    peer.sendall(b"".join(frames))
    return fc.Connection(ours, time.monotonic() + 5), peer


def headers_block(*fields: tuple[bytes, bytes]) -> bytes:
    return encode_headers(list(fields))


OK_HEADERS = headers_block((b":status", b"200"), (b"content-type", b"application/grpc"))
OK_TRAILERS = headers_block((b"grpc-status", b"0"), (b"grpc-message", b""))


def test_the_request_is_one_well_formed_exchange() -> None:
    data = fc.request_bytes("/shoal.v1.Control/ListNodes", b"\x0a\x00", 2.5)
    assert data.startswith(fc.PREFACE)
    conn, peer = server_frames(data[len(fc.PREFACE):])
    kinds = []
    for _ in range(4):
        kind, flags, stream, payload = conn.read_frame()
        kinds.append(kind)
        if kind == fc.HEADERS:
            assert flags == fc.END_HEADERS and stream == 1
            assert dict(Decoder().decode(payload)) == {
                b":method": b"POST", b":scheme": b"http",
                b":path": b"/shoal.v1.Control/ListNodes", b":authority": b"localhost",
                b"content-type": b"application/grpc", b"te": b"trailers",
                b"grpc-timeout": b"2500m", b"user-agent": b"shoal-cli-fastcall"}
        if kind == fc.DATA:
            assert flags == fc.END_STREAM and payload == b"\x00\x00\x00\x00\x02\x0a\x00"
        if kind == fc.SETTINGS:
            assert fc.parse_settings(payload)[fc.SETTINGS_INITIAL_WINDOW_SIZE] == fc.MAX_WINDOW
        if kind == fc.WINDOW_UPDATE:
            assert struct.unpack(">I", payload)[0] == fc.MAX_WINDOW - fc.DEFAULT_WINDOW
    assert kinds == [fc.SETTINGS, fc.WINDOW_UPDATE, fc.HEADERS, fc.DATA]
    peer.close()


def test_a_response_in_pieces_with_padding_continuation_settings_and_ping() -> None:
    message = b"\x00\x00\x00\x00\x06" + b"abcdef"
    padded_headers = bytes([3]) + bytes(5) + OK_HEADERS[:3]     # pad length, priority, part
    conn, peer = server_frames(
        fc.frame(fc.SETTINGS, 0, 0, fc.settings_payload({fc.SETTINGS_MAX_FRAME_SIZE: 16384})),
        fc.frame(fc.PING, 0, 0, b"12345678"),
        fc.frame(fc.WINDOW_UPDATE, 0, 0, struct.pack(">I", 1000)),
        fc.frame(fc.HEADERS, fc.PADDED | fc.PRIORITY_FLAG, 1, padded_headers + b"\0\0\0"),
        fc.frame(fc.CONTINUATION, fc.END_HEADERS, 1, OK_HEADERS[3:]),
        fc.frame(0x42, 0, 0, b"unknown frame types are ignored"),
        fc.frame(fc.DATA, fc.PADDED, 1, bytes([2]) + message[:4] + b"\0\0"),
        fc.frame(fc.DATA, 0, 1, message[4:]),
        fc.frame(fc.HEADERS, fc.END_HEADERS | fc.END_STREAM, 1, OK_TRAILERS))
    response = conn.exchange(1024)
    assert fc.status_of(response) == ("OK", "")
    assert fc.message_of(response, 1024) == b"abcdef"
    answered = fc.Connection(peer, time.monotonic() + 5)    # what the client sent back
    assert answered.read_frame() == (fc.SETTINGS, fc.ACK, 0, b"")
    assert answered.read_frame() == (fc.PING, fc.ACK, 0, b"12345678")
    peer.close()


def test_a_graceful_goaway_lets_the_call_finish() -> None:
    conn, peer = server_frames(
        fc.frame(fc.GOAWAY, 0, 0, struct.pack(">II", 1, 0)),    # stream 1 still served
        fc.frame(fc.HEADERS, fc.END_HEADERS, 1, OK_HEADERS),
        fc.frame(fc.DATA, 0, 1, b"\0\0\0\0\x01z"),
        fc.frame(fc.HEADERS, fc.END_HEADERS | fc.END_STREAM, 1, OK_TRAILERS))
    assert fc.message_of(conn.exchange(1024), 1024) == b"z"
    peer.close()


def test_trailers_only_carries_the_status() -> None:
    block = headers_block((b":status", b"200"), (b"content-type", b"application/grpc"),
                          (b"grpc-status", b"5"), (b"grpc-message", b"No such node: x%20y"))
    conn, peer = server_frames(fc.frame(fc.HEADERS, fc.END_HEADERS | fc.END_STREAM, 1, block))
    assert fc.status_of(conn.exchange(1024)) == ("NOT_FOUND", "No such node: x y")
    peer.close()


@pytest.mark.parametrize("frames, reason", [
    ([fc.frame(fc.RST_STREAM, 0, 1, b"\0\0\0\x02")], "reset"),
    ([fc.frame(fc.GOAWAY, 0, 0, b"\0\0\0\0\0\0\0\x02")], "GOAWAY"),
    ([fc.frame(fc.GOAWAY, 0, 0, b"\0\0\0\x01")], "GOAWAY frame of 4 bytes"),
    ([fc.frame(fc.HEADERS, fc.END_HEADERS, 1, OK_HEADERS)], "closed the connection"),
    ([fc.frame(fc.HEADERS, fc.END_HEADERS, 3, OK_HEADERS)], "on stream 3"),
    ([fc.frame(fc.HEADERS, 0, 1, OK_HEADERS), fc.frame(fc.DATA, 0, 1, b"x")], "interrupted"),
    ([fc.frame(fc.DATA, 0, 1, b"\0\0\0\0\0")], "outside the response body"),
    ([fc.frame(fc.HEADERS, fc.END_HEADERS, 1, b"\xff")], "header block"),
    ([fc.frame(fc.SETTINGS, 0, 0, b"12345")], "SETTINGS"),
])
def test_what_the_client_does_not_follow_is_unsupported(frames: list[bytes],
                                                        reason: str) -> None:
    conn, peer = server_frames(*frames)
    peer.shutdown(socket.SHUT_WR)
    with pytest.raises(fc.Unsupported, match=reason):
        conn.exchange(1024)
    peer.close()


def test_message_checks() -> None:
    def response(body: bytes) -> fc.Response:
        return fc.Response(headers={}, trailers={}, data=[body])
    assert fc.message_of(response(b"\0\0\0\0\0"), 10) == b""
    with pytest.raises(fc.Unsupported, match="compressed"):
        fc.message_of(response(b"\x01\0\0\0\x01x"), 10)
    with pytest.raises(fc.Unsupported, match="exactly one message"):
        fc.message_of(response(b"\0\0\0\0\x01xy"), 10)
    with pytest.raises(fc.RpcFailure, match="larger than max") as exc:
        fc.message_of(response(b"\0\0\0\0\x0b" + b"x" * 11), 10)
    assert exc.value.code() == "RESOURCE_EXHAUSTED"
    wrong = fc.Response(headers={b":status": b"503"}, trailers={})
    with pytest.raises(fc.Unsupported, match="HTTP status"):
        fc.status_of(wrong)


def test_a_silent_peer_runs_into_the_deadline() -> None:
    ours, peer = socket.socketpair()
    conn = fc.Connection(ours, time.monotonic() + 0.2)
    with pytest.raises(fc.RpcFailure) as exc:
        conn.exchange(1024)
    assert (exc.value.code(), exc.value.details()) == ("DEADLINE_EXCEEDED", "Deadline Exceeded")
    peer.close()
    ours.close()
