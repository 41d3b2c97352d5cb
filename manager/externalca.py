"""Node certificates signed by an external CA (cfssl), as Docker's `--external-ca`.

When the root that signs now has no key in the cluster (the operator rotated to
it with `swarm ca --rotate --ca-cert FILE --external-ca protocol=cfssl,url=URL`
and kept the key), a manager cannot sign node certificates itself: it sends
each node's CSR to the external CAs of that root instead. This module owns:

- ``for_root``: which of the spec's external CAs sign for a given root (their
  ``ca_cert``, or the cluster's root when they name none), cfssl ones only;
- ``sign_request`` / ``parse_response``: cfssl's sign API (a JSON body with the
  CSR, the subject the cluster decides: O = cluster ID, OU = role, CN = node ID,
  and the hosts, i.e. SANs; an answer ``{"success", "result": {"certificate"},
  "errors": [{"message"}]}``);
- ``check_issued``: what comes back must be the node's certificate from that
  root: its leaf signed by the root, the CSR's public key, the identity asked
  for and both TLS usages; otherwise it is refused;
- ``sign``: posting to each CA in turn over HTTPS (the endpoint's certificate
  verified against the root it signs for) until one answers with a good
  certificate. It blocks: managers run it in an executor;
- ``unreachable``: as Docker before it accepts such a root, whether at least one
  of its CAs answers a TLS handshake with a certificate from that root.
"""
from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.request
from typing import Iterable, Optional, Sequence
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki import givenroot
from pki.ca import load_certificates, ou_for_role
from proto import objects_pb2 as pb

TIMEOUT_S = 10.0


class ExternalCAError(Exception):
    """No external CA gave a usable certificate; the message says why."""


def for_root(cluster: pb.Cluster, root_pem: bytes) -> list[pb.ExternalCA]:
    """The cfssl CAs of the cluster spec that sign for ``root_pem``."""
    return matching(cluster.spec.ca_config.external_cas, cluster.root_ca_cert, root_pem)


def matching(cas: Iterable[pb.ExternalCA], cluster_root_pem: bytes,
             root_pem: bytes) -> list[pb.ExternalCA]:
    """The cfssl CAs of ``cas`` that sign for ``root_pem`` (one naming no root signs
    for the cluster's, ``cluster_root_pem``)."""
    return [ca for ca in cas if ca.protocol.lower() == "cfssl"
            and givenroot.same_certificate(ca.ca_cert or cluster_root_pem, root_pem)]


def root_is_external(cluster: pb.Cluster) -> bool:
    """Whether the cluster's root was rotated to without its key (an external CA
    holds it): the spec names it and the store has no key for it."""
    return not cluster.root_ca_key and givenroot.same_certificate(
        cluster.spec.ca_config.signing_ca_cert, cluster.root_ca_cert)


def keyless_signer(cluster: pb.Cluster) -> bytes:
    """The root that signs now when the cluster holds no key for it (b"" otherwise)."""
    if cluster.HasField("root_rotation"):
        return b"" if cluster.root_rotation.ca_key else cluster.root_rotation.ca_cert
    return cluster.root_ca_cert if root_is_external(cluster) else b""


def sign_request(csr_pem: bytes, node_id: str, role: str, cluster_id: str,
                 ip_addresses: Sequence[str] = ()) -> bytes:
    """cfssl's sign request for a node certificate (JSON)."""
    ou = ou_for_role(role)
    return json.dumps({
        "certificate_request": csr_pem.decode(),
        "hosts": [node_id, ou, *ip_addresses],
        "subject": {"CN": node_id, "names": [{"O": cluster_id, "OU": ou}]},
    }).encode()


def parse_response(body: bytes) -> bytes:
    """The certificate (PEM) of a cfssl answer; ExternalCAError with cfssl's reason."""
    try:
        answer = json.loads(body)
    except ValueError:
        raise ExternalCAError(f"the answer is not JSON: {body[:200]!r}") from None
    if not isinstance(answer, dict):
        raise ExternalCAError("the answer is not a cfssl response")
    if not answer.get("success"):
        reasons = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e)
                            for e in answer.get("errors") or []) or "no reason given"
        raise ExternalCAError(f"the CA refused to sign: {reasons}")
    cert = (answer.get("result") or {}).get("certificate") if isinstance(
        answer.get("result"), dict) else None
    if not cert:
        raise ExternalCAError("the answer holds no certificate")
    return str(cert).encode()


def check_issued(cert_pem: bytes, csr_pem: bytes, root_pem: bytes, node_id: str,
                 role: str, cluster_id: str) -> bytes:
    """The leaf (PEM) of ``cert_pem`` when it is the node's certificate from
    ``root_pem``; ExternalCAError otherwise (the managers never hand it out)."""
    try:
        leaf = load_certificates(cert_pem)[0]
        root = load_certificates(root_pem)[0]
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise ExternalCAError(f"unreadable certificate from the CA: {exc}") from None
    try:
        leaf.verify_directly_issued_by(root)
    except Exception:  # noqa: BLE001 - any failure means "not signed by the root"
        raise ExternalCAError("the certificate it returned does not chain to the cluster's "
                              f"root CA ({root.subject.rfc4514_string()})") from None
    if leaf.public_key() != csr.public_key():
        raise ExternalCAError("the certificate it returned is not for the node's key")
    want = {NameOID.COMMON_NAME: node_id, NameOID.ORGANIZATIONAL_UNIT_NAME: ou_for_role(role),
            NameOID.ORGANIZATION_NAME: cluster_id}
    for oid, value in want.items():
        got = [a.value for a in leaf.subject.get_attributes_for_oid(oid)]
        if got != [value]:
            raise ExternalCAError(f"the certificate it returned names {oid._name}={got} "
                                  f"instead of {value!r}")
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is not None and not {ExtendedKeyUsageOID.SERVER_AUTH,
                                   ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usages):
        raise ExternalCAError("the certificate it returned is not for both TLS server and "
                              "client authentication (check the CA's signing profile usages)")
    return leaf.public_bytes(serialization.Encoding.PEM)


def post(url: str, body: bytes, trust_pem: bytes, timeout: float = TIMEOUT_S) -> bytes:
    """POSTs ``body`` to ``url`` over HTTPS, the server verified against ``trust_pem``;
    the answer's body (cfssl answers errors with a JSON body too)."""
    context = ssl.create_default_context(cadata=trust_pem.decode())
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            return bytes(answer.read())
    except urllib.error.HTTPError as exc:
        data = exc.read()
        if data:
            return bytes(data)
        raise ExternalCAError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ExternalCAError(f"cannot reach it: {reason}") from None


def unreachable(cas: Iterable[pb.ExternalCA], root_pem: bytes,
                timeout: float = 5.0) -> Optional[str]:
    """None when at least one of ``cas`` completes a TLS handshake, its certificate
    verified against ``root_pem``; else why none did (one clause per CA)."""
    context = ssl.create_default_context(cadata=root_pem.decode())
    failures = []
    for ca in cas:
        parts = urlsplit(ca.url)
        host, port = parts.hostname or "", parts.port or 443
        try:
            with socket.create_connection((host, port), timeout=timeout) as raw:
                with context.wrap_socket(raw, server_hostname=host):
                    return None
        except (OSError, ValueError) as exc:
            failures.append(f"{ca.url}: {exc}")
    return "; ".join(failures) or "none is configured"


def sign(cas: Iterable[pb.ExternalCA], csr_pem: bytes, node_id: str, role: str,
         cluster_id: str, ip_addresses: Sequence[str], root_pem: bytes,
         timeout: float = TIMEOUT_S) -> bytes:
    """The node's certificate (leaf PEM) from the first external CA that gives a
    good one; ExternalCAError naming each CA's failure when none does."""
    body = sign_request(csr_pem, node_id, role, cluster_id, ip_addresses)
    failures = []
    for ca in cas:
        try:
            cert = parse_response(post(ca.url, body, root_pem, timeout))
            return check_issued(cert, csr_pem, root_pem, node_id, role, cluster_id)
        except ExternalCAError as exc:
            failures.append(f"{ca.url}: {exc}")
    if not failures:
        raise ExternalCAError("the cluster's root CA key is not held by the managers and no "
                              "external CA (--external-ca) signs for it")
    raise ExternalCAError("no external CA signed the node certificate: " + "; ".join(failures))
