"""Raft traffic over mutual TLS: pysyncobj's TCP transport with TLS connections.

This module owns how raft messages travel between managers when a store is
given transport security (`TransportSecurity`): every raft connection, in
both directions, is a TLS connection on which both ends present a
certificate, and each end checks the other's before a single raft message
is read or sent.  Without security the store keeps pysyncobj's own
transport (tests, benchmarks).

How it fits pysyncobj (0.3.x): raft runs in one tick thread around a
poller of non-blocking sockets (pysyncobj/tcp_connection.py,
transport.py).  `TlsConnection` offers the interface of pysyncobj's
`TcpConnection` (connect, send, disconnect, state, the three callbacks) but
drives an `ssl.SSLObject` over two `ssl.MemoryBIO`s from the poller's
events, so the tick thread never blocks on TLS:

- bytes the TLS engine produces (handshake, records, alerts) are moved to
  the socket at once after every TLS call; what the socket does not take
  now is sent when it becomes writable (no wait for the next heartbeat);
- a handshake, like an established connection, is dropped after
  `connection_timeout` seconds without incoming bytes; the transport sweeps
  its handshaking connections every tick, so a peer that stays silent
  cannot hold a half-open handshake;
- a failed handshake or refused peer certificate only drops that
  connection; pysyncobj reconnects after its retry delay as for any lost
  connection.  Refusals are logged (once a minute per peer and reason).

The security object is asked for an `ssl.SSLContext` for each new
connection, so renewed certificates or new trusted roots apply to the next
connection without a restart.  pysyncobj's own password encryption is not
used with TLS.  Message framing inside TLS is pysyncobj's: a length prefix,
then the zlib-compressed pickle of the message.
"""
from __future__ import annotations

import errno
import functools
import logging
import socket
import ssl
import struct
import time
import zlib
from typing import Any, Callable, Optional, Protocol

import pysyncobj.pickle as syncobj_pickle
from pysyncobj.dns_resolver import globalDnsResolver
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.tcp_connection import CONNECTION_STATE, TcpConnection, _getAddrType
from pysyncobj.transport import TCPTransport

_FRAME = struct.Struct("<I")  # length of one message, in front of it
_RECV_CHUNK = 1 << 16
_REPORT_EVERY = 60.0  # seconds between two log lines for the same refusal

Reporter = Callable[[str, str], None]


class TransportSecurity(Protocol):
    """TLS material for raft connections, consulted for every new connection.

    `check_peer` gets the peer's verified leaf certificate (DER) after the
    handshake and returns a short name for logs (the node ID), or raises
    ValueError with the reason the peer may not take part in raft."""

    def server_context(self) -> ssl.SSLContext: ...

    def client_context(self) -> ssl.SSLContext: ...

    def check_peer(self, cert_der: bytes) -> str: ...


def _describe_ssl_error(exc: Exception) -> str:
    """A TLS failure in words a log reader can act on."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {exc.verify_message or exc.reason}"
    reason = getattr(exc, "reason", None) or str(exc)
    text = str(reason).replace("_", " ").lower()
    if "alert" in text:
        return f"the peer rejected the TLS handshake ({text})"
    if "wrong version number" in text or "unknown protocol" in text or "http request" in text:
        return f"not a TLS raft connection ({text})"
    if "peer did not return a certificate" in text:
        return "no client certificate"
    return f"TLS error ({text})"


class TlsConnection:
    """One raft connection over TLS, with pysyncobj's TcpConnection interface.

    Outgoing connections are created unconnected and `connect`ed by the
    transport; incoming ones are built around an accepted socket and
    started with `start_server_side`.  The state is CONNECTING until the
    TCP connect, the TLS handshake and the peer check are all done, and only
    then CONNECTED (for an outgoing connection the "connected" callback runs
    at that point)."""

    def __init__(self, poller: Any, security: TransportSecurity, report: Reporter, *,
                 timeout: float, send_buffer: int, recv_buffer: int,
                 sock: Optional[socket.socket] = None, peer: str = "") -> None:
        # Attributes pysyncobj's transport reads or writes on a connection.
        self.encryptor = None
        self.sendRandKey: Optional[bytes] = None
        self.recvRandKey: Optional[bytes] = None
        self.recvLastTimestamp = 0
        self._poller = poller
        self._security = security
        self._report = report
        self._timeout = timeout
        self._send_buffer = send_buffer
        self._recv_buffer = recv_buffer
        self._on_message: Optional[Callable[[Any], None]] = None
        self._on_connected: Optional[Callable[[], None]] = None
        self._on_disconnected: Optional[Callable[[], None]] = None
        self._state = CONNECTION_STATE.DISCONNECTED
        self._sock: Optional[socket.socket] = None
        self._fileno: Optional[int] = None
        self._subscribed = 0
        self._tls: Optional[ssl.SSLObject] = None
        self._incoming: Optional[ssl.MemoryBIO] = None
        self._outgoing: Optional[ssl.MemoryBIO] = None
        self._server_side = sock is not None
        self._tcp_pending = False  # outgoing TCP connect not finished yet
        self._handshaking = False
        self._eof = False
        self._raw_out = bytearray()
        self._plain_in = bytearray()
        self._last_read = time.monotonic()
        self.peer = peer  # "ip:port" of the other end, for logs
        self.peer_name: Optional[str] = None  # what check_peer said (node ID)
        self.peer_cert: Optional[bytes] = None  # the peer's leaf certificate (DER)
        self.established_at: Optional[float] = None  # monotonic time of the last handshake
        self._pending_sock = sock

    # ----------------------------------------------- pysyncobj interface ----

    @property
    def state(self) -> int:
        return self._state

    def setOnConnectedCallback(self, callback: Callable[[], None]) -> None:  # noqa: N802
        self._on_connected = callback

    def setOnMessageReceivedCallback(self, callback: Callable[[Any], None]) -> None:  # noqa: N802
        self._on_message = callback

    def setOnDisconnectedCallback(self, callback: Callable[[], None]) -> None:  # noqa: N802
        self._on_disconnected = callback

    def fileno(self) -> Optional[int]:
        return self._fileno

    def getSendBufferSize(self) -> int:  # noqa: N802
        return len(self._raw_out)

    def connect(self, host: Optional[str], port: int) -> bool:
        """Starts an outgoing connection; False when it cannot even start."""
        if host is None:
            return False
        if self._sock is not None:
            self.disconnect()
        self.peer = f"{host}:{port}"
        try:
            context = self._security.client_context()
        except Exception as exc:  # no usable credentials: no connection
            self._report(self.peer, f"no TLS credentials to connect with: {exc}")
            return False
        try:
            sock = socket.socket(_getAddrType(host), socket.SOCK_STREAM)
        except Exception:
            return False
        self._tune(sock)
        try:
            sock.connect((host, port))
        except OSError as exc:
            if exc.errno not in (errno.EINPROGRESS, errno.EWOULDBLOCK):
                sock.close()
                return False
        self._start(sock, context, server_side=False)
        self._tcp_pending = True
        self._update_subscription()
        return True

    def start_server_side(self) -> None:
        """Begins the handshake on an accepted connection."""
        sock, self._pending_sock = self._pending_sock, None
        if sock is None:
            return
        try:
            context = self._security.server_context()
        except Exception as exc:
            sock.close()
            self._report(self.peer, f"no TLS credentials to serve with: {exc}")
            if self._on_disconnected is not None:  # lets the transport forget it
                self._on_disconnected()
            return
        self._tune(sock)
        self._start(sock, context, server_side=True)
        self._update_subscription()

    def send(self, message: Any) -> None:
        if self._state != CONNECTION_STATE.CONNECTED or self._expired():
            return
        data = zlib.compress(syncobj_pickle.dumps(message), 3)
        frame = memoryview(_FRAME.pack(len(data)) + data)
        try:
            while frame:
                written = self._tls.write(frame)  # type: ignore[union-attr]
                frame = frame[written:]
        except ssl.SSLError as exc:
            self._drop(f"TLS write failed: {_describe_ssl_error(exc)}", quiet=True)
            return
        self._flush()

    def disconnect(self) -> None:
        notify = self._on_disconnected is not None and self._state != CONNECTION_STATE.DISCONNECTED
        self.sendRandKey = None
        self.recvRandKey = None
        self.recvLastTimestamp = 0
        if self._fileno is not None:
            self._poller.unsubscribe(self._fileno)
            self._fileno = None
        for sock in (self._sock, self._pending_sock):
            if sock is not None:
                sock.close()
        self._sock = self._pending_sock = None
        self._tls = self._incoming = self._outgoing = None
        self._subscribed = 0
        self._tcp_pending = self._handshaking = self._eof = False
        self._raw_out = bytearray()
        self._plain_in = bytearray()
        self._state = CONNECTION_STATE.DISCONNECTED
        if notify:
            self._on_disconnected()  # type: ignore[misc]

    # ------------------------------------------------------------ checks ----

    def check_timeout(self) -> None:
        """Transport tick: drops a connection still connecting or handshaking
        when the peer has been silent too long.  An established connection is
        checked as pysyncobj checks it, on its own events and sends (two
        followers may rightly exchange nothing for a long time)."""
        if self._tcp_pending or self._handshaking:
            self._expired()

    def _expired(self) -> bool:
        if time.monotonic() - self._last_read <= self._timeout:
            return False
        if self._tcp_pending:
            self._drop(f"no TCP connection within {self._timeout:g}s", quiet=True)
        elif self._handshaking:
            self._drop(f"no TLS handshake within {self._timeout:g}s "
                       "(not a TLS raft endpoint, or unreachable)")
        else:
            self._drop(f"silent for {self._timeout:g}s", quiet=True)
        return True

    # ------------------------------------------------------------ events ----

    def _tune(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._recv_buffer)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)

    def _start(self, sock: socket.socket, context: ssl.SSLContext, server_side: bool) -> None:
        self._sock = sock
        self._fileno = sock.fileno()
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side)
        self._server_side = server_side
        self._handshaking = True
        self._eof = False
        self._last_read = time.monotonic()
        self._state = CONNECTION_STATE.CONNECTING
        if server_side:
            self._step_handshake()

    def _update_subscription(self) -> None:
        if self._fileno is None:
            return
        want = POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR
        if self._raw_out or self._tcp_pending:
            want |= POLL_EVENT_TYPE.WRITE
        if want != self._subscribed:
            self._poller.subscribe(self._fileno, self._on_event, want)
            self._subscribed = want

    def _on_event(self, fd: int, events: int) -> None:
        if fd != self._fileno:
            self._poller.unsubscribe(fd)
            return
        if self._tcp_pending:
            err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # type: ignore[union-attr]
            if err or events & POLL_EVENT_TYPE.ERROR:
                self._drop(f"cannot connect: {errno.errorcode.get(err, err)}", quiet=True)
                return
            self._tcp_pending = False
            self._step_handshake()
        elif events & POLL_EVENT_TYPE.READ or events & POLL_EVENT_TYPE.ERROR:
            # Read before handling an error or hang-up: the last bytes may be
            # the TLS alert that says why the peer closed.
            if not self._read_socket():
                return
            if self._handshaking:
                self._step_handshake()
            else:
                self._read_tls()
        if self._state == CONNECTION_STATE.DISCONNECTED:
            return
        if events & POLL_EVENT_TYPE.WRITE:
            self._flush()
        if self._state != CONNECTION_STATE.DISCONNECTED and (self._eof or events & POLL_EVENT_TYPE.ERROR):
            self._drop("connection closed during the TLS handshake" if self._handshaking
                       else "connection closed", quiet=not self._handshaking)
            return
        if self._state != CONNECTION_STATE.DISCONNECTED and not self._expired():
            self._update_subscription()

    def _read_socket(self) -> bool:
        """Moves what the socket holds into the TLS engine; False when dropped."""
        while not self._eof:
            try:
                chunk = self._sock.recv(_RECV_CHUNK)  # type: ignore[union-attr]
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._drop(f"receive failed: {exc.strerror or exc}", quiet=True)
                return False
            if not chunk:
                self._eof = True
                break
            self._incoming.write(chunk)  # type: ignore[union-attr]
            self._last_read = time.monotonic()
        return True

    def _step_handshake(self) -> None:
        try:
            self._tls.do_handshake()  # type: ignore[union-attr]
        except ssl.SSLWantReadError:
            self._flush()
            return
        except (ssl.SSLError, ssl.CertificateError) as exc:
            self._flush()  # the alert tells the peer why
            self._drop(_describe_ssl_error(exc))
            return
        der = self._tls.getpeercert(binary_form=True)  # type: ignore[union-attr]
        try:
            if not der:
                raise ValueError("no certificate")
            self.peer_name = self._security.check_peer(der)
            self.peer_cert = der
        except ValueError as exc:
            self._drop(str(exc))
            return
        self._handshaking = False
        self._state = CONNECTION_STATE.CONNECTED
        self.established_at = time.monotonic()
        self._flush()
        if self._state == CONNECTION_STATE.CONNECTED and not self._server_side and self._on_connected:
            self._on_connected()
        if self._state == CONNECTION_STATE.CONNECTED:
            self._read_tls()  # records that arrived with the end of the handshake

    def _read_tls(self) -> None:
        """Decrypts what the engine holds and hands complete messages to raft."""
        while True:
            try:
                chunk = self._tls.read(_RECV_CHUNK)  # type: ignore[union-attr]
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self._eof = True
                break
            except ssl.SSLError as exc:  # e.g. the peer's alert refusing our certificate
                self._drop(_describe_ssl_error(exc))
                return
            if not chunk:
                break
            self._plain_in += chunk
        self._flush()  # reading may have produced TLS records to send
        while self._state == CONNECTION_STATE.CONNECTED:
            message = self._next_message()
            if message is None:
                break
            if self._on_message is not None:
                self._on_message(message)

    def _next_message(self) -> Any:
        buf = self._plain_in
        if len(buf) < _FRAME.size:
            return None
        (length,) = _FRAME.unpack_from(buf)
        end = _FRAME.size + length
        if len(buf) < end:
            return None
        data = bytes(buf[_FRAME.size:end])
        del buf[:end]
        try:
            return syncobj_pickle.loads(zlib.decompress(data))
        except Exception as exc:
            self._drop(f"undecodable raft message: {exc}")
            return None

    def _flush(self) -> None:
        """Sends what the TLS engine produced, as far as the socket takes it now."""
        if self._sock is None:
            return
        if self._outgoing is not None and self._outgoing.pending:
            self._raw_out += self._outgoing.read()
        while self._raw_out:
            try:
                sent = self._sock.send(self._raw_out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._drop(f"send failed: {exc.strerror or exc}", quiet=True)
                return
            if sent <= 0:
                break
            del self._raw_out[:sent]
        self._update_subscription()

    def _drop(self, reason: str, quiet: bool = False) -> None:
        if not quiet:
            self._report(self.peer, reason)
        self.disconnect()


class TlsServer:
    """The raft listening socket; every accepted connection becomes a TlsConnection."""

    def __init__(self, poller: Any, host: str, port: int,
                 on_new_connection: Callable[[TlsConnection], None],
                 make_connection: Callable[[socket.socket, str], TlsConnection],
                 log: logging.LoggerAdapter) -> None:
        self._poller = poller
        self._host = host
        self._port = int(port)
        self._on_new_connection = on_new_connection
        self._make_connection = make_connection
        self._log = log
        self._sock: Optional[socket.socket] = None

    def bind(self) -> None:
        sock = socket.socket(_getAddrType(self._host), socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setblocking(False)
            sock.bind((self._host, self._port))
            sock.listen(16)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._poller.subscribe(sock.fileno(), self._on_accept,
                               POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR)

    def unbind(self) -> None:
        if self._sock is not None:
            self._poller.unsubscribe(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _on_accept(self, fd: int, events: int) -> None:
        if self._sock is None or fd != self._sock.fileno():
            self._poller.unsubscribe(fd)
            return
        try:
            sock, addr = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._log.warning("raft: accepting a connection failed: %s", exc)
            return
        conn = self._make_connection(sock, f"{addr[0]}:{addr[1]}")
        self._on_new_connection(conn)
        conn.start_server_side()


class TlsTransport(TCPTransport):
    """pysyncobj's TCPTransport whose connections are `TlsConnection`s.

    With `syncObj._raft_security` None it is pysyncobj's plain transport."""

    def __init__(self, syncObj: Any, selfNode: Any, otherNodes: Any) -> None:  # noqa: N803
        self._security: Optional[TransportSecurity] = getattr(syncObj, "_raft_security", None)
        self._tls_log: logging.LoggerAdapter = getattr(
            syncObj, "_log", logging.LoggerAdapter(logging.getLogger(__name__), {}))
        self._reported: dict[tuple[str, str], float] = {}
        super().__init__(syncObj, selfNode, otherNodes)

    def _report_refusal(self, peer: str, reason: str) -> None:
        now = time.monotonic()
        key = (peer.rsplit(":", 1)[0] if self._is_ephemeral(peer) else peer, reason)
        last = self._reported.get(key)
        if last is not None and now - last < _REPORT_EVERY:
            self._tls_log.debug("raft peer %s refused: %s", peer, reason)
            return
        if len(self._reported) > 1000:
            self._reported.clear()
        self._reported[key] = now
        self._tls_log.warning("raft peer %s refused: %s", peer, reason)

    def _is_ephemeral(self, peer: str) -> bool:
        """An incoming peer is named by its source port, which changes per connection."""
        return peer not in self._nodeAddrToNode

    def _new_connection(self, sock: Optional[socket.socket] = None, peer: str = "") -> TlsConnection:
        conf = self._syncObj.conf
        return TlsConnection(self._syncObj._poller, self._security, self._report_refusal,  # type: ignore[arg-type]
                             timeout=conf.connectionTimeout, send_buffer=conf.sendBufferSize,
                             recv_buffer=conf.recvBufferSize, sock=sock, peer=peer)

    def _createServer(self) -> None:  # noqa: N802 (pysyncobj's name)
        if self._security is None:
            super()._createServer()
            return
        bind = self._syncObj.conf.bindAddress or self._selfNode.address
        host, port = bind.rsplit(":", 1)
        host = host.strip("[]")
        if host not in ("0.0.0.0", "::"):
            host = globalDnsResolver().resolve(host)
        self._server = TlsServer(self._syncObj._poller, host, int(port),
                                 self._onNewIncomingConnection, self._new_connection, self._tls_log)

    def addNode(self, node: Any) -> None:  # noqa: N802
        super().addNode(node)
        if self._security is None or not isinstance(self._connections.get(node), TcpConnection):
            return
        # pysyncobj made an unconnected TcpConnection for a node this side
        # dials; put a TLS connection, wired the same way, in its place.
        conn = self._new_connection()
        conn.setOnConnectedCallback(functools.partial(self._onOutgoingConnected, conn))
        conn.setOnMessageReceivedCallback(functools.partial(self._onMessageReceived, node))
        conn.setOnDisconnectedCallback(functools.partial(self._onDisconnected, conn))
        self._connections[node] = conn

    def _connected_tls(self) -> dict[str, TlsConnection]:
        return {node.address: conn for node, conn in list(self._connections.items())
                if isinstance(conn, TlsConnection) and conn.state == CONNECTION_STATE.CONNECTED
                and hasattr(node, "address")}

    def tls_peers(self) -> dict[str, str]:
        """Raft address -> node ID (from its certificate) of every connected peer.
        Read from another thread it is a diagnostic snapshot."""
        return {addr: conn.peer_name or "" for addr, conn in self._connected_tls().items()}

    def tls_peer_certificates(self) -> dict[str, bytes]:
        """Raft address -> leaf certificate (DER) every connected peer presented."""
        return {addr: conn.peer_cert or b"" for addr, conn in self._connected_tls().items()}

    def _onIncomingMessageReceived(self, conn: Any, message: Any) -> None:  # noqa: N802
        """The first message of an incoming connection names the peer's raft address.

        With TLS, pysyncobj's admin commands ("status", "add", "remove", ...)
        and read-only replicas are refused: Shoal uses neither, and both would
        let any holder of a manager certificate (a removed manager's, until it
        expires) change the membership or read the log without being a member."""
        if self._security is not None and isinstance(conn, TlsConnection):
            reason = None
            if isinstance(message, list):
                reason = "pysyncobj admin commands are not served"
            elif message == "readonly":
                reason = "read-only raft replicas are not served"
            elif not isinstance(message, str) or message not in self._nodeAddrToNode:
                reason = f"{conn.peer_name or 'the peer'} is not a raft member here (it says {message!r:.80})"
            if reason is not None:
                self._unknownConnections.discard(conn)
                conn._drop(reason)
                return
        super()._onIncomingMessageReceived(conn, message)

    def _onTick(self) -> None:  # noqa: N802
        super()._onTick()
        if self._security is None:
            return
        for conn in list(self._connections.values()) + list(self._unknownConnections):
            if isinstance(conn, TlsConnection):
                conn.check_timeout()
