"""Root CA rotation: the pure decisions, no I/O.

This module owns what a root rotation means for certificates, independent of
where the state lives:

- ``begin(old, new)`` makes a new root (or takes the operator's, ``new``) and
  the old root's cross-signature on it.
- ``issuing_ca(...)`` is the CA that signs during the transition: the new key,
  with the cross-signed certificate appended to every chain it issues, so a
  peer that trusts only the old root still accepts the new certificates.
- ``trust_bundle(...)`` is what every node trusts: both roots during the
  transition, the new root alone after it.
- ``tls_info(creds)`` is what a node reports about itself (roots trusted,
  issuer of its certificate); ``node_rotated`` / ``progress`` compare those
  reports with the new root; the leader finishes the rotation when every
  node has rotated.
- ``node_action(creds, bundle, issuing)`` is what a node does when the
  cluster tells it the current roots: nothing, renew its certificate, or only
  re-trust (the rotation finished: drop the old root and the intermediate).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki.ca import RootCA, cert_pem, load_certificates
from pki.node import NodeCredentials, _issued_by, chains_to


@dataclass(frozen=True)
class Rotation:
    """A started rotation: the new root (with its key) and the old root's signature on it."""

    new_root: RootCA
    cross_signed_pem: bytes


@dataclass(frozen=True)
class TLSInfo:
    """What a node reports: its trusted roots (PEM) and its certificate's issuer (DER)."""

    trust_root: bytes
    issuer_subject: bytes
    issuer_public_key: bytes


class NodeAction(enum.Enum):
    NONE = "none"          # the node's credentials match the cluster
    RENEW = "renew"        # its certificate has another issuer: get a new one now
    RETRUST = "retrust"    # only the trusted roots changed: rewrite them


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


def _dedupe(certs: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for c in certs:
        if c not in out:
            out.append(c)
    return out


def begin(old: RootCA, new: RootCA | None = None) -> Rotation:
    """A rotation to ``new`` (a freshly generated root when None), cross-signed
    by ``old`` (which must hold its key)."""
    new = new if new is not None else RootCA.create()
    return Rotation(new_root=new, cross_signed_pem=old.cross_sign(new))


def issuing_ca(new_cert_pem: bytes, new_key_pem: bytes, cross_signed_pem: bytes) -> RootCA:
    """The CA that signs during a transition: new key, chains end with the cross-signed
    cert (no key when an external CA holds the new root's)."""
    return RootCA.from_pem(new_cert_pem, new_key_pem or None, intermediates_pem=cross_signed_pem)


def trust_bundle(root_pem: bytes, new_root_pem: bytes = b"") -> bytes:
    """The roots nodes trust: the cluster root, plus the new root during a rotation."""
    certs = load_certificates(root_pem)
    if new_root_pem:
        certs += load_certificates(new_root_pem)
    return b"".join(cert_pem(c) for c in _dedupe(certs))


def issuer_of(creds: NodeCredentials) -> x509.Certificate | None:
    """The certificate (an intermediate of the chain or a trusted root) that
    signed the node's leaf certificate, or None."""
    chain = load_certificates(creds.cert_pem)
    for candidate in [*chain[1:], *load_certificates(creds.ca_pem)]:
        if _issued_by(chain[0], candidate):
            return candidate
    return None


def tls_info(creds: NodeCredentials) -> TLSInfo:
    """What a node reports about its credentials."""
    issuer = issuer_of(creds)
    if issuer is None:
        return TLSInfo(creds.ca_pem, b"", b"")
    return TLSInfo(creds.ca_pem, issuer.subject.public_bytes(), _spki(issuer))


def issued_by(cert_chain_pem: bytes, root_pem: bytes) -> bool:
    """Whether the leaf of ``cert_chain_pem`` was signed by ``root_pem``'s key
    (directly, or through the cross-signed certificate of that key)."""
    leaf = load_certificates(cert_chain_pem)[0]
    root = load_certificates(root_pem)[0]
    return _issued_by(leaf, root)


def node_rotated(info: TLSInfo, new_root_pem: bytes) -> bool:
    """Whether a node's report shows a certificate from ``new_root_pem``'s key
    and a trust bundle that holds the new root."""
    if not info.issuer_public_key or not info.trust_root:
        return False
    new = load_certificates(new_root_pem)[0]
    try:
        trusted = load_certificates(info.trust_root)
    except ValueError:
        return False
    return info.issuer_public_key == _spki(new) and new in trusted


def progress(infos: Iterable[TLSInfo], new_root_pem: bytes) -> tuple[int, int]:
    """(nodes rotated, nodes in all) for the reports of every node of the cluster."""
    infos = list(infos)
    return sum(1 for i in infos if node_rotated(i, new_root_pem)), len(infos)


def node_action(creds: NodeCredentials, bundle_pem: bytes, issuing_pem: bytes) -> NodeAction:
    """What a node does when told the cluster's roots (``bundle_pem``) and the
    root that signs certificates now (``issuing_pem``)."""
    if not bundle_pem or not issuing_pem:
        return NodeAction.NONE
    if not issued_by(creds.cert_pem, issuing_pem):
        return NodeAction.RENEW
    if load_certificates(creds.ca_pem) != load_certificates(bundle_pem):
        return NodeAction.RETRUST
    if len(_needed_chain(load_certificates(creds.cert_pem), load_certificates(bundle_pem))) \
            != len(load_certificates(creds.cert_pem)):
        return NodeAction.RETRUST
    return NodeAction.NONE


def _needed_chain(chain: list[x509.Certificate],
                  roots: list[x509.Certificate]) -> list[x509.Certificate]:
    """The leaf and the intermediates still signed by a trusted root (a
    cross-signed certificate outlives its use once its signer is dropped)."""
    return [chain[0], *(c for c in chain[1:] if any(_issued_by(c, r) for r in roots))]


def retrusted(creds: NodeCredentials, bundle_pem: bytes) -> NodeCredentials:
    """The node's credentials trusting exactly ``bundle_pem``, without the
    intermediates no trusted root signed any more (after a rotation the node
    presents a chain to the new root only). ValueError when the certificate
    would not chain to the new roots."""
    roots = load_certificates(bundle_pem)
    chain = _needed_chain(load_certificates(creds.cert_pem), roots)
    if not chains_to(chain, roots):
        raise ValueError("the node certificate does not chain to the cluster's trusted roots")
    return NodeCredentials(creds.key_pem, b"".join(cert_pem(c) for c in chain), bundle_pem)
