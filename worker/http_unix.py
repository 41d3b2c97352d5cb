"""A small asyncio HTTP/1.1 client over a unix socket.

Owns the wire protocol between the podman runtime and `podman system service`:
request framing, responses with Content-Length, chunked transfer encoding or
read-to-close bodies, streamed bodies (logs, wait, pull progress), keep-alive
connection reuse and per-request timeouts. No TLS, no redirects, no proxies:
it only ever talks to a local service on a socket we started.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, AsyncIterator
from urllib.parse import urlencode

_MAX_HEADER_BYTES = 64 * 1024
_READ_CHUNK = 64 * 1024


class HTTPError(Exception):
    """The socket could not be reached or the response was malformed or too slow."""


class ConnectError(HTTPError):
    """Nothing accepted a connection on the socket (missing file or refused)."""


class ConnectionLost(HTTPError):
    """A fresh connection broke before any response arrived (the server went away)."""


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()


@dataclass
class Response:
    """A response whose body is read on demand (`read`, `json`, `iter_chunks`)."""
    status: int
    reason: str
    headers: dict[str, str]
    _conn: _Conn | None = field(repr=False, default=None)
    _client: "UnixHTTPClient | None" = field(repr=False, default=None)
    _remaining: int | None = field(repr=False, default=None)   # Content-Length left
    _chunked: bool = field(repr=False, default=False)
    _chunk_left: int = field(repr=False, default=0)
    _done: bool = field(repr=False, default=False)
    _keep_alive: bool = field(repr=False, default=True)

    async def _next_piece(self) -> bytes:
        """The next piece of body bytes, b"" once the body is complete."""
        if self._done or self._conn is None:
            return b""
        reader = self._conn.reader
        try:
            if self._chunked:
                if self._chunk_left == 0:
                    size_line = await reader.readuntil(b"\r\n")
                    size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while (await reader.readuntil(b"\r\n")) != b"\r\n":
                            pass                      # trailers
                        self._finish(reusable=True)
                        return b""
                    self._chunk_left = size
                data = await reader.read(min(self._chunk_left, _READ_CHUNK))
                if not data:
                    raise HTTPError("connection closed inside a chunk")
                self._chunk_left -= len(data)
                if self._chunk_left == 0:
                    await reader.readexactly(2)
                return data
            if self._remaining is not None:
                if self._remaining == 0:
                    self._finish(reusable=True)
                    return b""
                data = await reader.read(min(self._remaining, _READ_CHUNK))
                if not data:
                    raise HTTPError("connection closed before the end of the body")
                self._remaining -= len(data)
                if self._remaining == 0:
                    self._finish(reusable=True)
                return data
            data = await reader.read(_READ_CHUNK)   # body runs to connection close
            if not data:
                self._finish(reusable=False)
            return data
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                ConnectionError) as err:
            self._finish(reusable=False)
            raise HTTPError(f"bad response body: {err}") from err

    def _finish(self, reusable: bool) -> None:
        if self._done:
            return
        self._done = True
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if reusable and self._keep_alive and self._client is not None:
            self._client._release(conn)
        else:
            conn.close()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """Yields body bytes as they arrive (streaming endpoints)."""
        try:
            while True:
                piece = await self._next_piece()
                if not piece:
                    return
                yield piece
        finally:
            self.close()

    async def read(self) -> bytes:
        """The whole body."""
        parts = [piece async for piece in self.iter_chunks()]
        return b"".join(parts)

    async def json(self) -> Any:
        """The body decoded as JSON (None when empty)."""
        body = await self.read()
        return json.loads(body) if body.strip() else None

    def close(self) -> None:
        """Drops the response; an unfinished body costs the connection."""
        self._finish(reusable=False)


class UnixHTTPClient:
    """HTTP/1.1 to one unix socket, keeping up to `max_idle` connections alive.

    With max_idle=0 every request opens its own connection.
    """

    def __init__(self, socket_path: str, max_idle: int = 16,
                 connect_timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self.max_idle = max_idle
        self.connect_timeout = connect_timeout
        self._idle: list[_Conn] = []

    async def _connect(self) -> _Conn:
        while self._idle:
            conn = self._idle.pop()
            if conn.writer.is_closing() or conn.reader.at_eof():
                conn.close()
                continue
            conn.reused = True
            return conn
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self.socket_path, limit=_MAX_HEADER_BYTES),
                self.connect_timeout)
        except (FileNotFoundError, ConnectionRefusedError) as err:
            raise ConnectError(f"cannot connect to {self.socket_path}: {err}") from err
        except (OSError, asyncio.TimeoutError) as err:
            raise HTTPError(f"cannot connect to {self.socket_path}: {err!r}") from err
        return _Conn(reader, writer)

    def _release(self, conn: _Conn) -> None:
        if len(self._idle) < self.max_idle and not conn.writer.is_closing():
            self._idle.append(conn)
        else:
            conn.close()

    async def request(self, method: str, path: str, *,
                      params: dict[str, Any] | list[tuple[str, Any]] | None = None,
                      body: bytes | None = None, json_body: Any = None,
                      timeout: float | None = 30.0,
                      headers: dict[str, str] | None = None) -> Response:
        """Sends a request and returns once the status line and headers arrived.

        `timeout` bounds the wait for the headers; reading the body is up to the
        caller (wrap it in asyncio.wait_for when it must be bounded). `headers` are
        sent too (never logged here: X-Registry-Auth carries credentials).
        """
        target = path
        if params:
            items = params.items() if isinstance(params, dict) else params
            query = [(k, _param(v)) for k, v in items if v is not None]
            if query:
                target = f"{path}?{urlencode(query)}"
        extra = headers or {}
        headers = {"Host": "podman", "User-Agent": "shoal", **extra}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        headers["Content-Length"] = str(len(body or b""))
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        payload = head.encode("latin-1") + (body or b"")
        for attempt in (0, 1):
            conn = await self._connect()
            try:
                return await asyncio.wait_for(self._exchange(conn, payload), timeout)
            except _StaleConnection:
                conn.close()
                await self.close()            # the other idle ones are likely dead too
                if attempt == 1:
                    raise HTTPError(f"{method} {path}: connection closed by the service")
            except asyncio.TimeoutError:
                conn.close()
                raise HTTPError(f"{method} {path}: no response within {timeout:g}s") from None
            except BaseException:
                conn.close()
                raise
        raise AssertionError("unreachable")

    async def _exchange(self, conn: _Conn, payload: bytes) -> Response:
        try:
            conn.writer.write(payload)
            await conn.writer.drain()
            status_line = await conn.reader.readuntil(b"\r\n")
        except (ConnectionError, asyncio.IncompleteReadError) as err:
            if conn.reused:
                raise _StaleConnection() from err   # idle connection the server closed
            raise ConnectionLost(f"connection lost: {err!r}") from err
        try:
            version, status, *reason = status_line.decode("latin-1").split(" ", 2)
            code = int(status)
            headers: dict[str, str] = {}
            while True:
                line = await conn.reader.readuntil(b"\r\n")
                if line == b"\r\n":
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
        except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError) as err:
            raise HTTPError(f"malformed response header: {err!r}") from err
        response = Response(code, reason[0].strip() if reason else "", headers,
                             _conn=conn, _client=self)
        connection = headers.get("connection", "").lower()
        response._keep_alive = version == "HTTP/1.1" and connection != "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            response._chunked = True
        elif "content-length" in headers:
            response._remaining = int(headers["content-length"])
        elif code in (204, 304) or 100 <= code < 200:
            response._remaining = 0
        else:
            response._keep_alive = False
        if response._remaining == 0:
            response._finish(reusable=True)
        return response

    async def close(self) -> None:
        """Closes idle connections (responses still being read keep theirs)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _StaleConnection(Exception):
    """A kept-alive connection turned out closed before any response byte."""


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
