"""A small gRPC client for unary calls on a node's unix socket, without grpcio.

`import grpc` alone costs 0.06-0.09 s of a `swarm node ls` on the project's
machines, more than half of its budget. The read commands people run in
loops make one to three unary calls on the local control socket, so the CLI
makes those itself: HTTP/2 with prior knowledge (h2c) on a fresh unix-socket
connection, one stream, the gRPC framing of one request and one response.

Owns `unary_call` and what it needs of HTTP/2 (frames, SETTINGS, PING,
flow control; HPACK is `cli.hpack`). It uses the interpreter's `_socket`
directly: the `socket` module around it adds nothing this client uses and
costs 3 ms of start-up. Two kinds of failure leave it:

- `RpcFailure`: the call has a gRPC outcome (a status other than OK from
  the server, no socket to connect to, the deadline passed), as grpcio would
  report it: the status code's name and its details. `cli.client` raises
  the same type for calls made with grpcio.
- `Unsupported`: the exchange went somewhere this client does not follow (a
  Huffman-coded header it needs, a reset stream, a compressed message, the
  connection closing early ...). The caller then makes the same call with
  grpcio; only idempotent reads come here, so repeating one is harmless.
"""
from __future__ import annotations

import _socket
import errno
import struct
import time
from typing import Optional

from cli.hpack import Decoder, HpackError, Huffman, Text, encode_headers

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Frame types (RFC 9113 §6) and flags.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# SETTINGS identifiers.
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
MAX_WINDOW = (1 << 31) - 1
DEFAULT_WINDOW = 65535
DEFAULT_FRAME_SIZE = 16384
STREAM = 1       # the one stream of the connection
_HEADER = struct.Struct(">IBI")     # length << 8 | type, flags, stream id
_PREFIX = struct.Struct(">BI")      # gRPC message prefix: compressed flag, length

# grpc status codes by number (grpc's StatusCode names).
STATUS_NAMES = ("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
                "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")


class RpcFailure(Exception):
    """A call's gRPC outcome other than OK: the status code's name and its details.

    The one error type of a failed Control API call in the CLI, whichever
    path made the call (this client or grpcio, see `cli.client`); `code()`
    and `details()` read as on a grpc.RpcError, with the code as its name
    ("NOT_FOUND").
    """

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self._code = code
        self._details = details

    def code(self) -> str:
        return self._code

    def details(self) -> str:
        return self._details


class Unsupported(Exception):
    """Something this client does not handle happened: make the call with grpcio instead."""


def timeout_header(seconds: float) -> bytes:
    """grpc-timeout: at most 8 digits and a unit (milliseconds, else seconds)."""
    millis = max(1, int(seconds * 1000))
    if millis < 10**8:
        return b"%dm" % millis
    return b"%dS" % min(int(seconds), 10**8 - 1)


def percent_decode(value: bytes) -> str:
    """grpc-message is percent-encoded UTF-8 (%XX for bytes outside printable ASCII and '%')."""
    out = bytearray()
    i = 0
    while i < len(value):
        byte = value[i]
        if byte == 0x25 and i + 2 < len(value) and _is_hex(value[i + 1:i + 3]):
            out.append(int(value[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(byte)
            i += 1
    return out.decode("utf-8", "replace")


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(len(payload) << 8 | kind, flags, stream) + payload


def settings_payload(settings: dict[int, int]) -> bytes:
    return b"".join(struct.pack(">HI", key, value) for key, value in settings.items())


def parse_settings(payload: bytes) -> dict[int, int]:
    if len(payload) % 6:
        raise Unsupported(f"SETTINGS frame of {len(payload)} bytes")
    return {key: value for key, value in struct.iter_unpack(">HI", payload)}


def request_bytes(path: str, message: bytes, timeout: float) -> bytes:
    """Everything the client sends for one call, from the connection preface on."""
    settings = settings_payload({SETTINGS_ENABLE_PUSH: 0,
                                 SETTINGS_INITIAL_WINDOW_SIZE: MAX_WINDOW})
    headers = encode_headers([
        (b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()),
        (b":authority", b"localhost"), (b"content-type", b"application/grpc"),
        (b"te", b"trailers"), (b"grpc-timeout", timeout_header(timeout)),
        (b"user-agent", b"shoal-cli-fastcall"),
    ])
    if len(headers) > DEFAULT_FRAME_SIZE:
        raise Unsupported("request headers larger than one frame")
    body = _PREFIX.pack(0, len(message)) + message
    if len(body) > DEFAULT_WINDOW:
        raise Unsupported("request larger than the initial flow-control window")
    parts = [PREFACE, frame(SETTINGS, 0, 0, settings),
             frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", MAX_WINDOW - DEFAULT_WINDOW)),
             frame(HEADERS, END_HEADERS, STREAM, headers)]
    chunks = [body[i:i + DEFAULT_FRAME_SIZE] for i in range(0, len(body), DEFAULT_FRAME_SIZE)]
    for i, chunk in enumerate(chunks):
        parts.append(frame(DATA, END_STREAM if i == len(chunks) - 1 else 0, STREAM, chunk))
    return b"".join(parts)


def strip_padding(flags: int, payload: bytes, priority: bool = False) -> bytes:
    """A DATA or HEADERS payload without its padding (and priority fields)."""
    start, end = 0, len(payload)
    if flags & PADDED:
        if not payload:
            raise Unsupported("padded frame without its pad length")
        start, end = 1, len(payload) - payload[0]
    if priority and flags & PRIORITY_FLAG:
        start += 5
    if end < start:
        raise Unsupported("padding longer than the frame")
    return payload[start:end]


class Response:
    """What the server sent on the call's stream so far (a plain class: the CLI's
    start-up path does without the dataclasses module)."""

    def __init__(self, headers: Optional[dict[bytes, bytes]] = None,
                 trailers: Optional[dict[bytes, bytes]] = None,
                 data: Optional[list[bytes]] = None) -> None:
        self.headers = headers
        self.trailers = trailers
        self.data: list[bytes] = [] if data is None else data
        self.received = 0


def header_dict(fields: list[tuple[Text, Text]], needed: tuple[bytes, ...]) -> dict[bytes, bytes]:
    """The fields by name; Unsupported when a name, or a needed value, is Huffman-coded."""
    out: dict[bytes, bytes] = {}
    for name, value in fields:
        if isinstance(name, Huffman):
            raise Unsupported("Huffman-coded header name")
        if name in needed and isinstance(value, Huffman):
            raise Unsupported(f"Huffman-coded value of {name.decode(errors='replace')}")
        out[bytes(name)] = bytes(value)
    return out


_NEEDED = (b":status", b"content-type", b"grpc-status", b"grpc-message")


class Connection:
    """One HTTP/2 connection over a connected socket, read frame by frame."""

    def __init__(self, sock: _socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buf = bytearray()
        self.pos = 0
        self.decoder = Decoder()

    def _fill(self, count: int) -> None:
        while len(self.buf) - self.pos < count:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise RpcFailure("DEADLINE_EXCEEDED", "Deadline Exceeded")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(max(1 << 18, count))
            except TimeoutError:
                raise RpcFailure("DEADLINE_EXCEEDED", "Deadline Exceeded") from None
            except OSError as exc:
                raise Unsupported(f"reading the connection: {exc}") from exc
            if not chunk:
                raise Unsupported("the server closed the connection before the call ended")
            if self.pos:
                del self.buf[:self.pos]
                self.pos = 0
            self.buf += chunk

    def read_frame(self) -> tuple[int, int, int, bytes]:
        """The next frame: type, flags, stream id, payload."""
        self._fill(9)
        head = bytes(self.buf[self.pos:self.pos + 9])
        length = int.from_bytes(head[:3], "big")
        kind, flags = head[3], head[4]
        stream = int.from_bytes(head[5:9], "big") & MAX_WINDOW
        self._fill(9 + length)
        start = self.pos + 9
        payload = bytes(self.buf[start:start + length])
        self.pos = start + length
        return kind, flags, stream, payload

    def send(self, data: bytes) -> None:
        self.sock.settimeout(max(0.001, self.deadline - time.monotonic()))
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise RpcFailure("DEADLINE_EXCEEDED", "Deadline Exceeded") from None
        except OSError as exc:
            raise Unsupported(f"writing the connection: {exc}") from exc

    def header_block(self, flags: int, payload: bytes) -> tuple[list[tuple[Text, Text]], bool]:
        """A HEADERS frame's whole block (with its CONTINUATIONs) decoded; END_STREAM set?"""
        block = strip_padding(flags, payload, priority=True)
        end_stream = bool(flags & END_STREAM)
        while not flags & END_HEADERS:
            kind, flags, stream, payload = self.read_frame()
            if kind != CONTINUATION or stream != STREAM:
                raise Unsupported("a header block interrupted by another frame")
            block += payload
        try:
            return self.decoder.decode(block), end_stream
        except HpackError as exc:
            raise Unsupported(f"header block: {exc}") from exc

    def exchange(self, max_message: int) -> Response:
        """Reads the connection until the call's stream ends; the server's answer."""
        response = Response()
        while True:
            kind, flags, stream, payload = self.read_frame()
            if kind == DATA and stream == STREAM:
                if response.headers is None or response.trailers is not None:
                    raise Unsupported("DATA outside the response body")
                data = strip_padding(flags, payload)
                response.received += len(data)
                if response.received > max_message + _PREFIX.size:
                    raise RpcFailure("RESOURCE_EXHAUSTED", "Received message larger than max "
                                     f"({response.received - _PREFIX.size} vs. {max_message})")
                response.data.append(data)
                if flags & END_STREAM:
                    raise Unsupported("the response ended without trailers")
            elif kind == HEADERS and stream == STREAM:
                fields, end_stream = self.header_block(flags, payload)
                block = header_dict(fields, _NEEDED)
                if response.headers is None:
                    response.headers = block
                    if end_stream:            # trailers-only: the status is in these headers
                        response.trailers = block
                        return response
                elif not end_stream:
                    raise Unsupported("a second header block that does not end the stream")
                else:
                    response.trailers = block
                    return response
            elif kind == SETTINGS and stream == 0:
                if not flags & ACK:
                    parse_settings(payload)
                    self.send(frame(SETTINGS, ACK, 0))
            elif kind == PING and stream == 0:
                if not flags & ACK:
                    self.send(frame(PING, ACK, 0, payload))
            elif kind == GOAWAY and stream == 0:
                if len(payload) < 8:
                    raise Unsupported(f"GOAWAY frame of {len(payload)} bytes")
                last_stream, error = struct.unpack(">II", payload[:8])
                if error or (last_stream & MAX_WINDOW) < STREAM:
                    raise Unsupported(f"GOAWAY (error {error}) before the call ended")
            elif kind == RST_STREAM and stream == STREAM:
                raise Unsupported("the server reset the call's stream")
            elif kind in (HEADERS, CONTINUATION, PUSH_PROMISE, DATA):
                raise Unsupported(f"frame type {kind} on stream {stream}")
            # WINDOW_UPDATE, PRIORITY and unknown frame types need nothing from this client.


def connect(path: str, deadline: float) -> _socket.socket:
    """A connected unix socket; RpcFailure(UNAVAILABLE) as grpcio reports a failed connect."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(max(0.001, deadline - time.monotonic()))
    try:
        sock.connect(path)
    except TimeoutError:
        sock.close()
        raise RpcFailure("DEADLINE_EXCEEDED", "Deadline Exceeded") from None
    except OSError as exc:
        sock.close()
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        raise RpcFailure("UNAVAILABLE", "failed to connect to all addresses; last error: "
                                        f"UNAVAILABLE: unix:{path}: {reason}") from None
    return sock


def status_of(response: Response) -> tuple[str, str]:
    """The call's grpc status name and message from the response's headers and trailers."""
    headers = response.headers or {}
    trailers = response.trailers or {}
    if headers.get(b":status") != b"200":
        raise Unsupported(f"HTTP status {headers.get(b':status')!r}")
    if not headers.get(b"content-type", b"").startswith(b"application/grpc"):
        raise Unsupported(f"content-type {headers.get(b'content-type')!r}")
    raw = trailers.get(b"grpc-status")
    if raw is None or not (raw.isascii() and raw.isdigit()) or int(raw) >= len(STATUS_NAMES):
        raise Unsupported(f"grpc-status {raw!r}")
    return STATUS_NAMES[int(raw)], percent_decode(trailers.get(b"grpc-message", b""))


def message_of(response: Response, max_message: int) -> bytes:
    """The one message of a unary response, without its gRPC prefix."""
    body = b"".join(response.data)
    if len(body) < _PREFIX.size:
        raise Unsupported(f"response body of {len(body)} bytes")
    compressed, length = _PREFIX.unpack_from(body)
    if compressed:
        raise Unsupported("compressed response message")
    if length > max_message:
        raise RpcFailure("RESOURCE_EXHAUSTED",
                         f"Received message larger than max ({length} vs. {max_message})")
    if len(body) != _PREFIX.size + length:
        raise Unsupported("a response body that is not exactly one message")
    return body[_PREFIX.size:]


def unary_call(socket_path: str, method_path: str, request: bytes, timeout: float,
               max_message: int = 64 * 1024 * 1024) -> bytes:
    """Calls `method_path` ("/package.Service/Method") with a serialized request.

    Returns the serialized response; raises RpcFailure (a gRPC status) or
    Unsupported (use grpcio instead).
    """
    deadline = time.monotonic() + timeout
    sock = connect(socket_path, deadline)
    try:
        conn = Connection(sock, deadline)
        conn.send(request_bytes(method_path, request, timeout))
        response = conn.exchange(max_message)
    finally:
        sock.close()
    code, details = status_of(response)
    if code != "OK":
        raise RpcFailure(code, details)
    return message_of(response, max_message)
