"""The node's Prometheus endpoint: `/metrics` over HTTP on loopback, or over mutual TLS.

`MetricsServer` serves a registry in Prometheus' text format (prometheus_client's
WSGI app) on the `node.state.MetricsEndpoint` that `--metrics-addr` and
`--metrics-tls` asked for, from threads of its own (a scrape never waits for
the node's event loop). With TLS it presents the node's certificate and
requires a client certificate issued by the cluster's CA (any of the node's
trusted roots); each new connection uses the credentials in force, so a
renewed certificate or a rotated root is served without a restart (see
`refresh`, which the node calls from its credentials holder). Keys reach
OpenSSL through memory files (memfd), never through the disk.

`node_registry` puts the node's collectors (metrics/collectors.py) beside its
instruments: cluster and raft gauges on managers, the agent's tasks, the
certificate's expiry and the dispatcher's sessions.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import socketserver
import ssl
import threading
from typing import Any, Callable, Iterator, Optional
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import make_wsgi_app
from prometheus_client.registry import CollectorRegistry

from metrics.collectors import (AgentCollector, ClusterCollector, NodeCollector, RaftCollector,
                                RaftStatus)
from metrics.instruments import NodeMetrics
from node.state import MetricsEndpoint
from pki import node as pkinode
from pki.holder import CredentialsHolder

HANDSHAKE_TIMEOUT = 5.0   # seconds a client has to finish the TLS handshake
REQUEST_TIMEOUT = 30.0    # seconds a connection may stay idle


class MetricsServerError(Exception):
    """The endpoint cannot be served (the message says where and why)."""


@contextlib.contextmanager
def _memory_file(name: str, data: bytes) -> Iterator[str]:
    """A path to `data` that lives in memory only (closed on exit)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def server_context(creds: pkinode.NodeCredentials) -> ssl.SSLContext:
    """TLS server context: the node's key and chain, client certificates required and
    verified against the node's trusted roots (the cluster's CA)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=creds.ca_pem.decode("ascii"))
    with _memory_file("shoal-metrics-cert", creds.cert_pem) as cert, \
            _memory_file("shoal-metrics-key", creds.key_pem) as key:
        context.load_cert_chain(cert, key)
    return context


class _QuietHandler(WSGIRequestHandler):
    """Logs nothing per request (Prometheus scrapes every few seconds)."""
    timeout = REQUEST_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per connection; TLS (when a context is given) is set up per
    connection, in its own thread, with the context in force when it arrived."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], family: int,
                 context: Callable[[], Optional[ssl.SSLContext]]) -> None:
        self.address_family = family
        self._context = context
        super().__init__(address, _QuietHandler)

    def server_bind(self) -> None:
        """Binds without WSGIServer's socket.getfqdn(host): a reverse DNS lookup that
        can block for long on a host without DNS, and this runs on the node's event
        loop (Node.run). The name only fills SERVER_NAME, which /metrics ignores."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()

    def finish_request(self, request: Any, client_address: Any) -> None:
        context = self._context()
        if context is not None:
            request.settimeout(HANDSHAKE_TIMEOUT)
            try:
                wrapped = context.wrap_socket(request, server_side=True)
            except (OSError, ValueError):  # no or a foreign client certificate, a port scan
                return
            try:
                super().finish_request(wrapped, client_address)
            finally:
                wrapped.close()  # the plain socket was handed over to it
            return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-answer is no news


class MetricsServer:
    """Serves one registry on one endpoint until `close()`."""

    def __init__(self, endpoint: MetricsEndpoint, registry: CollectorRegistry,
                 credentials: Optional[pkinode.NodeCredentials] = None,
                 log: Optional[logging.LoggerAdapter] = None) -> None:
        if endpoint.tls and credentials is None:
            raise ValueError("a TLS metrics endpoint needs the node's credentials")
        self.endpoint = endpoint
        self.registry = registry
        self.log = log or logging.LoggerAdapter(logging.getLogger(__name__), {"node": "-"})
        self._lock = threading.Lock()
        self._context: Optional[ssl.SSLContext] = None
        if endpoint.tls and credentials is not None:
            self._context = server_context(credentials)
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    def _current_context(self) -> Optional[ssl.SSLContext]:
        with self._lock:
            return self._context

    def refresh(self, credentials: pkinode.NodeCredentials) -> None:
        """Serves new credentials (a renewal, a root rotation) to new connections."""
        if not self.endpoint.tls:
            return
        try:
            context = server_context(credentials)
        except (OSError, ValueError, ssl.SSLError) as exc:
            self.log.error("metrics endpoint keeps its previous certificate: %s", exc)
            return
        with self._lock:
            self._context = context
        self.log.info("metrics endpoint serves the renewed certificate")

    def start(self) -> None:
        """Binds and serves in a thread; MetricsServerError when it cannot bind."""
        family = socket.AF_INET6 if ":" in self.endpoint.host else socket.AF_INET
        try:
            server = _Server((self.endpoint.host, self.endpoint.port), family,
                             self._current_context)
        except OSError as exc:
            raise MetricsServerError(f"cannot serve metrics on {self.endpoint}: "
                                     f"{exc.strerror or exc}") from None
        server.set_app(make_wsgi_app(self.registry))
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="metrics-http", daemon=True)
        self._thread.start()
        self.log.info("serving metrics on %s://%s/metrics%s",
                      "https" if self.endpoint.tls else "http", self.endpoint,
                      f" (port {self.port})" if self.endpoint.port == 0 else "")

    @property
    def port(self) -> int:
        """The bound port (the endpoint's, or the one the kernel chose for port 0)."""
        assert self._server is not None, "start() first"
        return int(self._server.server_address[1])

    def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)


def node_registry(metrics: NodeMetrics, node_id: str, role: str, holder: CredentialsHolder,
                  agent_tasks: Callable[[], dict[str, int]],
                  list_objects: Optional[Callable[[str], list]] = None,
                  store_version: Optional[Callable[[], int]] = None,
                  raft_status: Optional[Callable[[], Optional[RaftStatus]]] = None,
                  dispatcher_sessions: Optional[Callable[[], int]] = None) -> CollectorRegistry:
    """The node's registry: its instruments plus the scrape-time collectors (the
    cluster, raft and dispatcher ones only where given: on managers)."""
    registry = metrics.registry

    def cert_not_after() -> float:
        return holder.current().info.not_after.timestamp()

    registry.register(NodeCollector(node_id, role, cert_not_after, dispatcher_sessions))
    registry.register(AgentCollector(agent_tasks))
    if list_objects is not None:
        registry.register(ClusterCollector(list_objects, store_version))
    if raft_status is not None:
        registry.register(RaftCollector(raft_status))
    return registry
