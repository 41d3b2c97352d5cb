"""gRPC transport security built from node credentials.

This module owns how node credentials become gRPC credentials, how a joining
node pins the cluster's CA from its token, and how a server reads the caller's
identity from a verified client certificate.

Choices:

- **Fixed server name.** Nodes dial each other by IP address, and a manager's
  addresses change (advertise address, lab namespaces, NAT). Every manager
  certificate carries the DNS SAN ``swarm-manager`` (worker certificates
  carry ``swarm-worker`` instead), and every client verifies the server
  against that name with ``grpc.ssl_target_name_override``. So a certificate
  from the cluster CA with the manager role is what makes a server a manager;
  a worker's certificate can never serve as one. Use ``channel_options()``
  (or ``secure_channel``) for every channel to a manager.
- **Client certificates and ports.** grpcio's server credentials either
  require and verify a client certificate or never ask for one; there is no
  "verify if presented" mode. ``server_credentials(..., require_client_auth=
  False)`` therefore yields a port where ``peer_identity`` is always None:
  serve there only what a joining node needs (the CA's join/issue RPC) and
  refuse everything else, and serve the mutual-TLS API on a port created with
  ``require_client_auth=True``. One ``grpc.aio.server`` can listen on both
  (``add_secure_port`` twice) with the same servicers.
- **CA pinning without trust on first use.** Every server sends its root
  CA certificate(s) after its own chain. A joining node opens a TLS connection
  that verifies nothing, reads that chain, keeps the root whose SHA-256
  digest matches its token, and checks that the server's certificate was
  issued by it (``fetch_and_pin_ca``). Only then does it open a gRPC channel
  that trusts exactly that root and send the token.
"""
from __future__ import annotations

import asyncio
import hmac
import socket
import ssl
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import grpc
from cryptography import x509

from pki import tokens
from pki.ca import MANAGER_OU, cert_pem, load_certificates
from pki.holder import CredentialsHolder
from pki.node import Identity, NodeCredentials, chains_to, identity_of

TARGET_NAME = MANAGER_OU  # "swarm-manager": the name every manager certificate holds


class CAPinError(Exception):
    """The server's CA does not match the join token, or could not be read."""


@dataclass(frozen=True)
class _Peer:
    """Raw auth-context facts about a caller, before interpretation."""

    pem: bytes | None
    common_name: str | None


# ----------------------------------------------------------- credentials --

def _server_chain(creds: NodeCredentials) -> bytes:
    """The node's chain followed by the trusted roots (see "CA pinning")."""
    chain = creds.cert_pem if creds.cert_pem.endswith(b"\n") else creds.cert_pem + b"\n"
    return chain + creds.ca_pem


def server_credentials(creds: NodeCredentials, require_client_auth: bool) -> grpc.ServerCredentials:
    """TLS server credentials from a node's key and certificate.

    With ``require_client_auth`` every caller must present a certificate
    issued by one of the node's trusted roots (mutual TLS); without it no
    client certificate is requested at all (a join port)."""
    return grpc.ssl_server_credentials(
        [(creds.key_pem, _server_chain(creds))],
        root_certificates=creds.ca_pem,
        require_client_auth=require_client_auth,
    )


def _certificate_configuration(creds: NodeCredentials) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(creds.key_pem, _server_chain(creds))], root_certificates=creds.ca_pem)


def dynamic_server_credentials(holder: CredentialsHolder,
                               require_client_auth: bool) -> grpc.ServerCredentials:
    """Like ``server_credentials``, but every new connection uses the holder's
    current credentials: a renewed certificate or a new set of trusted roots
    takes effect without restarting the server (connections already open keep
    the certificate they started with)."""
    served = [holder.version]

    def fetch() -> Optional[grpc.ServerCertificateConfiguration]:
        version, creds = holder.versioned()
        if version == served[0]:
            return None  # unchanged: gRPC keeps the current configuration
        served[0] = version
        return _certificate_configuration(creds)

    # gRPC documents None from `fetch` as "keep the current configuration"; the
    # type stubs (types-grpcio) leave None out of the callback's return type.
    return grpc.dynamic_ssl_server_credentials(
        _certificate_configuration(holder.current()), fetch,  # type: ignore[arg-type]
        require_client_authentication=require_client_auth)


def client_credentials(creds: NodeCredentials) -> grpc.ChannelCredentials:
    """Mutual-TLS channel credentials: trusts the node's roots, presents its
    certificate. Pair with ``channel_options()``."""
    return grpc.ssl_channel_credentials(
        root_certificates=creds.ca_pem,
        private_key=creds.key_pem,
        certificate_chain=creds.cert_pem,
    )


def join_credentials(ca_pem: bytes) -> grpc.ChannelCredentials:
    """Channel credentials for a node that has no certificate yet: trusts
    only the pinned CA and presents nothing."""
    return grpc.ssl_channel_credentials(root_certificates=ca_pem)


def channel_options(extra: Iterable[tuple[str, object]] = ()) -> list[tuple[str, object]]:
    """Channel options that verify the server as ``swarm-manager``."""
    return [("grpc.ssl_target_name_override", TARGET_NAME), *extra]


def secure_channel(target: str, credentials: grpc.ChannelCredentials,
                   extra_options: Iterable[tuple[str, object]] = ()) -> grpc.aio.Channel:
    """A grpc.aio channel to a manager at ``target`` ("ip:port")."""
    return grpc.aio.secure_channel(target, credentials, options=channel_options(extra_options))


# --------------------------------------------------------------- pinning --

def _unverified_chain(sock: ssl.SSLSocket) -> list[x509.Certificate]:
    """The certificates the server sent, in order, without verifying them.

    Python 3.13 has ``SSLSocket.get_unverified_chain``; 3.10-3.12 offer the
    same call on the underlying ``_ssl`` object only."""
    getter = getattr(sock, "get_unverified_chain", None)
    if getter is None:
        getter = sock._sslobj.get_unverified_chain  # type: ignore[attr-defined]
    out: list[x509.Certificate] = []
    for item in getter() or []:
        der = item if isinstance(item, bytes) else item.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
        out.append(x509.load_der_x509_certificate(der))
    return out


def fetch_server_chain(host: str, port: int, timeout: float = 10.0) -> list[x509.Certificate]:
    """Opens a TLS connection that trusts nothing and returns the chain the
    server presented. Blocking; async code uses ``fetch_and_pin_ca_async``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=TARGET_NAME) as tls:
                return _unverified_chain(tls)
    except (OSError, ssl.SSLError) as e:
        raise CAPinError(f"could not read the TLS certificate of {host}:{port}: {e}") from e


def pin_ca(chain: Sequence[x509.Certificate], token: str, where: str = "the manager") -> bytes:
    """The root CA PEM, taken from a server's presented ``chain``, whose digest
    is the token's; CAPinError when none matches or the server's own
    certificate was not issued by it. ValueError for a malformed token."""
    digest = tokens.parse(token).digest
    if not chain:
        raise CAPinError(f"{where} presented no certificate")
    root = None
    for cert in chain:
        candidate = tokens.ca_digest(cert_pem(cert))
        if hmac.compare_digest(candidate, digest):
            root = cert
    if root is None:
        raise CAPinError(
            f"the CA certificate of {where} does not match the join token's CA digest: "
            "the token belongs to another cluster, or someone is impersonating the manager")
    if not chains_to(list(chain), [root]):
        raise CAPinError(f"the certificate of {where} was not issued by the CA the join token names")
    return cert_pem(root)


def fetch_and_pin_ca(host: str, port: int, token: str, timeout: float = 10.0) -> bytes:
    """Reads the manager's CA over TLS without trusting it, checks it against
    the token's digest and returns it as PEM. Nothing secret is sent: the
    token's secret never leaves this process here. Blocking."""
    tokens.parse(token)  # a malformed token fails before any connection
    chain = fetch_server_chain(host, port, timeout)
    return pin_ca(chain, token, f"{host}:{port}")


async def fetch_and_pin_ca_async(host: str, port: int, token: str, timeout: float = 10.0) -> bytes:
    """``fetch_and_pin_ca`` in a worker thread, for code on an event loop."""
    return await asyncio.to_thread(fetch_and_pin_ca, host, port, token, timeout)


# -------------------------------------------------------------- identity --

def _peer(context: grpc.aio.ServicerContext) -> _Peer:
    auth = context.auth_context() or {}
    pems = list(auth.get("x509_pem_cert") or [])
    names = list(auth.get("x509_common_name") or [])
    return _Peer(pems[0] if pems else None, names[0].decode() if names else None)


def peer_identity(context: grpc.aio.ServicerContext) -> Identity | None:
    """The caller's identity from its client certificate, which gRPC has
    already verified against the trusted roots; None when the caller
    presented none (or on a port that does not ask for one) or when the
    certificate is not a node certificate."""
    peer = _peer(context)
    if peer.pem is None:
        return None
    try:
        info = identity_of(x509.load_pem_x509_certificate(peer.pem))
    except ValueError:
        return None
    if peer.common_name is not None and peer.common_name != info.node_id:
        return None
    return info.identity


async def require_role(context: grpc.aio.ServicerContext, *roles: str,
                       cluster_id: str | None = None) -> Identity:
    """The caller's identity when it holds one of ``roles`` (and belongs to
    ``cluster_id`` when given); otherwise aborts the RPC with
    PERMISSION_DENIED (UNAUTHENTICATED without a certificate)."""
    ident = peer_identity(context)
    if ident is None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                            "this call needs a node certificate issued by the cluster CA")
        raise AssertionError("unreachable: abort raises")
    if cluster_id is not None and ident.cluster_id != cluster_id:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                            f"certificate of node {ident.node_id} belongs to another cluster")
    if ident.role not in roles:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                            f"node {ident.node_id} has role {ident.role}; this call needs role "
                            + " or ".join(roles))
    return ident


def describe_certificate(pem: bytes) -> str:
    """A one-line summary of the leaf certificate in ``pem`` for logs and errors."""
    cert = load_certificates(pem)[0]
    return (f"subject={cert.subject.rfc4514_string()} issuer={cert.issuer.rfc4514_string()} "
            f"not_after={cert.not_valid_after_utc.isoformat()}")


__all__ = [
    "CAPinError", "TARGET_NAME", "server_credentials", "dynamic_server_credentials",
    "client_credentials",
    "join_credentials", "channel_options", "secure_channel", "fetch_server_chain",
    "pin_ca", "fetch_and_pin_ca", "fetch_and_pin_ca_async", "peer_identity",
    "require_role", "describe_certificate",
]
