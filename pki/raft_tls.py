"""TLS for manager-to-manager raft traffic, built from the node's credentials.

This module owns who may hold a raft connection: both ends present their
node certificate, and a peer is accepted only when its certificate

- chains to one of the roots the node trusts (every root in ``ca_pem``,
  so both roots during a CA rotation; a cross-signed intermediate sent
  with the peer's certificate counts), and is within its validity period;
- has OU ``swarm-manager`` (a worker's certificate gets no raft
  connection), and O = the cluster ID of this node's own certificate.

`RaftTLS` is the security object raft/store.py takes (see
raft/tls_transport.TransportSecurity). It reads the credentials through a
callable for every new connection and rebuilds its ``ssl.SSLContext``s
when they changed, so a renewed certificate or a new trusted root applies
to the next connection without restarting raft (the daemon passes
``CredentialsHolder.current``, pki/holder.py).

The private key goes to OpenSSL through an anonymous in-memory file
(``memfd``), never through a file on disk.
"""
from __future__ import annotations

import logging
import os
import ssl
import threading
from typing import Callable, Optional

from cryptography import x509

from pki.node import NodeCredentials, identity_of, load

log = logging.getLogger(__name__)

CredentialSource = Callable[[], NodeCredentials]


def _load_chain(context: ssl.SSLContext, creds: NodeCredentials) -> None:
    """Gives OpenSSL the node's certificate chain and key without writing them to disk."""
    fd = os.memfd_create("shoal-raft-tls", os.MFD_CLOEXEC)
    try:
        cert = creds.cert_pem if creds.cert_pem.endswith(b"\n") else creds.cert_pem + b"\n"
        data = cert + creds.key_pem
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _context(creds: NodeCredentials, server_side: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED  # on a server: a client certificate is required
    if not server_side:
        # Peers are dialled by IP address; who they are is checked from the
        # certificate subject (RaftTLS.check_peer), as on the server side.
        context.check_hostname = False
    else:
        context.num_tickets = 0  # no session resumption: every connection proves itself
    context.load_verify_locations(cadata=creds.ca_pem.decode("ascii"))
    _load_chain(context, creds)
    return context


class RaftTLS:
    """Mutual-TLS contexts and the peer rule for raft, from the node's current credentials."""

    def __init__(self, credentials: CredentialSource) -> None:
        self._credentials = credentials
        self._lock = threading.Lock()
        self._built_for: Optional[NodeCredentials] = None
        self._server: Optional[ssl.SSLContext] = None
        self._client: Optional[ssl.SSLContext] = None
        self._cluster_id = ""

    def _refresh(self) -> tuple[ssl.SSLContext, ssl.SSLContext, str]:
        creds = self._credentials()
        with self._lock:
            if creds != self._built_for:
                cluster_id = creds.identity.cluster_id
                server, client = _context(creds, True), _context(creds, False)
                first = self._built_for is None
                self._server, self._client, self._cluster_id = server, client, cluster_id
                self._built_for = creds
                if not first:
                    log.info("raft TLS: new connections use the renewed credentials (%s)",
                             _describe(creds))
            return self._server, self._client, self._cluster_id  # type: ignore[return-value]

    def server_context(self) -> ssl.SSLContext:
        return self._refresh()[0]

    def client_context(self) -> ssl.SSLContext:
        return self._refresh()[1]

    @property
    def cluster_id(self) -> str:
        return self._refresh()[2]

    def check_peer(self, cert_der: bytes) -> str:
        """The peer's node ID when its (already chain-verified) certificate is a
        manager certificate of this cluster; ValueError saying why not otherwise."""
        try:
            cert = x509.load_der_x509_certificate(cert_der)
        except ValueError as exc:
            raise ValueError(f"unreadable certificate: {exc}") from None
        try:
            info = identity_of(cert)
        except ValueError as exc:
            raise ValueError(f"not a swarm node certificate ({exc})") from None
        if info.role != "manager":
            raise ValueError(f"certificate OU swarm-{info.role} (node {info.node_id}): "
                             "only managers take part in raft")
        cluster_id = self.cluster_id
        if info.cluster_id != cluster_id:
            raise ValueError(f"certificate of node {info.node_id} is for cluster "
                             f"{info.cluster_id}, not {cluster_id}")
        return info.node_id


def _describe(creds: NodeCredentials) -> str:
    info = creds.info
    return f"node {info.node_id}, certificate valid until {info.not_after.isoformat()}"


def from_data_dir(data_dir: str | os.PathLike[str], kek: bytes | None = None) -> RaftTLS:
    """Raft TLS with the credentials saved in a node's data directory, as they
    are now (for a short-lived process such as ``--force-new-cluster``; the
    daemon passes its credentials holder). ``kek`` opens a manager's encrypted
    key (pki.keystore). FileNotFoundError / ValueError when the node has no
    usable credentials."""
    creds = load(data_dir, kek=kek)
    return RaftTLS(lambda: creds)
