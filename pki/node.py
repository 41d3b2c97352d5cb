"""A node's own TLS credentials.

This module owns what a node holds to prove who it is: its private key, the
certificate signing request it sends when it joins or renews, the certificate
the CA returns, and the root CA certificate(s) it trusts. It stores them under
``<data-dir>/certificates/``:

- ``swarm-node.key``     the node's ECDSA P-256 private key (mode 0600)
- ``swarm-node.crt``     its certificate, followed by any intermediates
- ``swarm-root-ca.crt``  the trusted root(s); two during a root rotation

It also reads a node certificate back into an identity (node ID, role,
cluster ID, validity) and picks when to renew it: a random point between 50%
and 80% of its life, so that nodes do not all renew at once.
"""
from __future__ import annotations

import datetime as _dt
import os
import random
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki.ca import BACKDATE, load_certificates, role_for_ou, write_file

CERT_DIR = "certificates"
KEY_FILE = "swarm-node.key"
CERT_FILE = "swarm-node.crt"
ROOT_CA_FILE = "swarm-root-ca.crt"
_PENDING = ".new"

RENEW_FROM = 0.5
RENEW_UNTIL = 0.8


@dataclass(frozen=True)
class Identity:
    """Who a node certificate says its holder is. ``role`` is "manager" or "worker"."""

    node_id: str
    role: str
    cluster_id: str


@dataclass(frozen=True)
class CertInfo:
    """The identity and validity window of a node certificate (UTC datetimes)."""

    node_id: str
    role: str
    cluster_id: str
    not_before: _dt.datetime
    not_after: _dt.datetime

    @property
    def identity(self) -> Identity:
        """The identity part, without the validity window."""
        return Identity(self.node_id, self.role, self.cluster_id)


def _single(name: x509.Name, oid: x509.ObjectIdentifier, what: str) -> str:
    attrs = name.get_attributes_for_oid(oid)
    if len(attrs) != 1:
        raise ValueError(f"node certificate subject must have exactly one {what}, found {len(attrs)}")
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode()


def identity_of(cert: x509.Certificate) -> CertInfo:
    """Reads a node certificate's subject (CN = node ID, OU = role, O = cluster
    ID); ValueError when it is not a node certificate."""
    subject = cert.subject
    node_id = _single(subject, NameOID.COMMON_NAME, "common name (node ID)")
    ou = _single(subject, NameOID.ORGANIZATIONAL_UNIT_NAME, "organizational unit (role)")
    cluster_id = _single(subject, NameOID.ORGANIZATION_NAME, "organization (cluster ID)")
    role = role_for_ou(ou)
    if role is None:
        raise ValueError(f"certificate OU {ou!r} is not swarm-manager or swarm-worker")
    return CertInfo(node_id, role, cluster_id, cert.not_valid_before_utc, cert.not_valid_after_utc)


def parse_certificate(cert_pem: bytes) -> CertInfo:
    """The identity and validity of the first (leaf) certificate in a PEM chain."""
    return identity_of(load_certificates(cert_pem)[0])


def generate_key() -> bytes:
    """A new ECDSA P-256 private key as unencrypted PKCS#8 PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_csr(key_pem: bytes, node_id: str = "") -> bytes:
    """A certificate signing request for ``key_pem`` as PEM. The CA ignores its
    subject; the node ID, when given, only helps a person reading it."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("node keys must be ECDSA keys")
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, node_id)] if node_id else []
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(
        key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def new_key_and_csr(node_id: str = "") -> tuple[bytes, bytes]:
    """A fresh private key and a CSR for it, both PEM."""
    key_pem = generate_key()
    return key_pem, make_csr(key_pem, node_id)


@dataclass(frozen=True)
class NodeCredentials:
    """A node's key, certificate chain and trusted root(s), all PEM."""

    key_pem: bytes
    cert_pem: bytes
    ca_pem: bytes

    @property
    def info(self) -> CertInfo:
        """Identity and validity of this node's certificate."""
        return parse_certificate(self.cert_pem)

    @property
    def identity(self) -> Identity:
        """Who this node's certificate says it is."""
        return self.info.identity

    def check(self) -> None:
        """ValueError unless the key matches the certificate and the certificate
        (through any intermediates it carries) was issued by a trusted root."""
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        chain = load_certificates(self.cert_pem)
        if key.public_key() != chain[0].public_key():
            raise ValueError("the node key does not match the node certificate")
        if not chains_to(chain, load_certificates(self.ca_pem)):
            raise ValueError("the node certificate was not issued by a trusted root CA")


def chains_to(chain: list[x509.Certificate], roots: list[x509.Certificate],
              max_depth: int = 4) -> bool:
    """Whether ``chain[0]`` is signed by one of ``roots``, directly or through
    the other certificates of ``chain`` (signatures and names only; no
    validity-period or policy checks)."""
    current = chain[0]
    for _ in range(max_depth):
        for root in roots:
            if _issued_by(current, root):
                return True
        parent = next((c for c in chain[1:] if c is not current and _issued_by(current, c)), None)
        if parent is None:
            return False
        current = parent
    return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def cert_dir(data_dir: str | os.PathLike[str]) -> Path:
    """``<data-dir>/certificates``."""
    return Path(data_dir) / CERT_DIR


def encrypt_key_pem(key_pem: bytes, kek: bytes | None) -> bytes:
    """``key_pem`` as PKCS#8 PEM encrypted with the passphrase ``kek`` (as is
    when ``kek`` is None)."""
    if kek is None:
        return key_pem
    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(kek))


def decrypt_key_pem(key_pem: bytes, kek: bytes | None, where: str = "the private key") -> bytes:
    """An encrypted or plain PEM private key as unencrypted PKCS#8 PEM.
    KeyLockedError when it is encrypted and ``kek`` is None or does not open it."""
    if not is_encrypted_pem(key_pem):
        return key_pem
    if kek is None:
        raise KeyLockedError(f"{where} is encrypted: the node's data key is needed to read it")
    try:
        key = serialization.load_pem_private_key(key_pem, password=kek)
    except (ValueError, TypeError):
        raise KeyLockedError(f"{where} does not decrypt with this node's data key") from None
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def is_encrypted_pem(key_pem: bytes) -> bool:
    """Whether a PEM private key is passphrase-protected."""
    return b"ENCRYPTED" in key_pem.split(b"\n", 1)[0] or b"Proc-Type: 4,ENCRYPTED" in key_pem


class KeyLockedError(ValueError):
    """A private key on disk is encrypted and the passphrase is missing or wrong."""


def save(data_dir: str | os.PathLike[str], creds: NodeCredentials,
         kek: bytes | None = None) -> None:
    """Writes the credentials: key 0600, certificates 0644, directory 0700.

    With ``kek`` (a manager's key passphrase, see pki.keystore) the private key
    is written encrypted with it; without, in plain PEM (workers).
    Key and certificate must change together, so both are first written in
    full (fsynced) as ``*.new`` files and then renamed into place; ``load``
    finishes the renames when a crash interrupted them.
    """
    d = cert_dir(data_dir)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(d, 0o700)
    write_file(d / ROOT_CA_FILE, creds.ca_pem, 0o644)
    write_file(d / (KEY_FILE + _PENDING), encrypt_key_pem(creds.key_pem, kek), 0o600)
    write_file(d / (CERT_FILE + _PENDING), creds.cert_pem, 0o644)
    _finish_pending(d)


def _finish_pending(d: Path) -> None:
    """Rolls an interrupted ``save`` forward (or drops a half-finished one)."""
    key_new, cert_new = d / (KEY_FILE + _PENDING), d / (CERT_FILE + _PENDING)
    if cert_new.exists():
        if key_new.exists():
            os.replace(key_new, d / KEY_FILE)
        os.replace(cert_new, d / CERT_FILE)
    elif key_new.exists():
        key_new.unlink()  # the certificate never got written: the old pair stands
    else:
        return
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def exists(data_dir: str | os.PathLike[str]) -> bool:
    """Whether all three credential files are present."""
    d = cert_dir(data_dir)
    return all((d / f).is_file() for f in (KEY_FILE, CERT_FILE, ROOT_CA_FILE))


def key_encrypted(data_dir: str | os.PathLike[str]) -> bool:
    """Whether the node's private key on disk is passphrase-protected."""
    d = cert_dir(data_dir)
    _finish_pending(d)
    return is_encrypted_pem((d / KEY_FILE).read_bytes())


def load(data_dir: str | os.PathLike[str], kek: bytes | None = None) -> NodeCredentials:
    """Reads and checks the credentials (the key comes back unencrypted, whether
    or not it is encrypted on disk); FileNotFoundError when missing,
    KeyLockedError when the key is encrypted and ``kek`` does not open it,
    ValueError when they do not fit together."""
    d = cert_dir(data_dir)
    _finish_pending(d)
    creds = NodeCredentials(
        key_pem=decrypt_key_pem((d / KEY_FILE).read_bytes(), kek, str(d / KEY_FILE)),
        cert_pem=(d / CERT_FILE).read_bytes(),
        ca_pem=(d / ROOT_CA_FILE).read_bytes(),
    )
    creds.check()
    return creds


def renewal_time(cert_pem: bytes, rng: random.Random | None = None) -> _dt.datetime:
    """When to renew: a uniformly random instant between 50% and 80% of the
    certificate's life, in UTC. The life starts at issuance: not-before plus
    the CA's backdating (without that, a certificate shorter than the
    backdating would be due at once, again and again)."""
    info = parse_certificate(cert_pem)
    start = min(info.not_before + BACKDATE, info.not_after)
    life = info.not_after - start
    fraction = (rng or random.Random()).uniform(RENEW_FROM, RENEW_UNTIL)
    return start + life * fraction
