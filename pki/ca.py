"""The cluster's root certificate authority.

This module owns the root CA: creating it (ECDSA P-256, self-signed, CN
"swarm-ca"), loading and saving it as PEM, issuing node certificates from
certificate signing requests, and cross-signing a new root during a root
rotation.

Node certificates carry the node's identity in their subject, as Docker Swarm
does: O = cluster ID, OU = ``swarm-manager`` or ``swarm-worker``, CN = node ID.
Their DNS SANs are the node ID and the role name (``swarm-manager`` /
``swarm-worker``); a manager's certificate also lists the IP addresses it was
issued for. Peers verify servers against the fixed name ``swarm-manager``
(see ``pki.tls``), because nodes reach each other by IP address.

Root rotation (issue 4): ``old.cross_sign(new)`` returns a CA certificate with
the new root's subject and public key, signed by the old root. A node that
still trusts only the old root accepts a chain ``leaf (from new) ->
cross-signed intermediate -> old root``; a ``RootCA`` built with that
intermediate appends it to every certificate it issues.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Role = Literal["manager", "worker"]
# A root's signing key: generated roots are ECDSA P-256; a root the operator
# brings (`swarm ca --rotate --ca-cert --ca-key`) may also be RSA.
SigningKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey]

ROOT_COMMON_NAME = "swarm-ca"
ROOT_VALIDITY = _dt.timedelta(days=20 * 365)
DEFAULT_NODE_EXPIRY = _dt.timedelta(days=90)
# The shortest lifetime the CA signs at all; the cluster setting has a higher
# floor (``parse_min_cert_expiry``) that tests may lower.
MIN_NODE_EXPIRY = _dt.timedelta(seconds=10)
POLICY_MIN_EXPIRY = _dt.timedelta(hours=1)  # as Docker: `--cert-expiry` of at least 1h
# Certificates start a little in the past so that peers whose clocks lag a bit
# accept them at once.
BACKDATE = _dt.timedelta(minutes=5)

MANAGER_OU = "swarm-manager"
WORKER_OU = "swarm-worker"
_OU_OF_ROLE: dict[str, str] = {"manager": MANAGER_OU, "worker": WORKER_OU}
_ROLE_OF_OU: dict[str, str] = {v: k for k, v in _OU_OF_ROLE.items()}

CA_CERT_FILE = "swarm-root-ca.crt"
CA_KEY_FILE = "swarm-root-ca.key"


class CAError(ValueError):
    """A request the CA refuses (bad CSR, unknown role, missing signing key)."""


def ou_for_role(role: str) -> str:
    """The subject OU for a role name ("manager" or "worker")."""
    try:
        return _OU_OF_ROLE[role]
    except KeyError:
        raise CAError(f"unknown node role {role!r}: expected 'manager' or 'worker'") from None


def role_for_ou(ou: str) -> str | None:
    """The role name for a subject OU, or None for an OU that is not a node role."""
    return _ROLE_OF_OU.get(ou)


def parse_min_cert_expiry(raw: str) -> _dt.timedelta:
    """The shortest ``--cert-expiry`` accepted, from an operator's setting.

    One hour, as in Docker, when `raw` is empty or unreadable. A value (seconds,
    or a number followed by s, m or h) lowers it so that tests can watch
    certificates being renewed within seconds; it never goes below the CA's own
    floor of 10 seconds. The CLI reads the setting ($SHOAL_MIN_CERT_EXPIRY) and
    the daemon gets the result in its config."""
    raw = raw.strip()
    if not raw:
        return POLICY_MIN_EXPIRY
    unit = {"s": 1, "m": 60, "h": 3600}.get(raw[-1], 0)
    try:
        seconds = float(raw[:-1]) * unit if unit else float(raw)
    except ValueError:
        return POLICY_MIN_EXPIRY
    return max(_dt.timedelta(seconds=seconds), MIN_NODE_EXPIRY)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, in order; ValueError when there is none."""
    certs = x509.load_pem_x509_certificates(pem)
    if not certs:
        raise ValueError("no certificate in PEM data")
    return certs


def cert_pem(cert: x509.Certificate) -> bytes:
    """A certificate as PEM bytes."""
    return cert.public_bytes(serialization.Encoding.PEM)


def _check_public_key(key: object) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, (ec.SECP256R1, ec.SECP384R1)):
            raise CAError(f"unsupported elliptic curve {key.curve.name}: use P-256 or P-384")
        return
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise CAError(f"RSA key of {key.key_size} bits is too small: use 2048 bits or more")
        return
    raise CAError(f"unsupported key type {type(key).__name__}: use ECDSA P-256")


@dataclass
class RootCA:
    """A root CA certificate, its signing key when this node holds it, and any
    cross-signed intermediates to append to issued chains during a rotation."""

    cert: x509.Certificate
    key: SigningKey | None = None
    intermediates: list[x509.Certificate] = field(default_factory=list)

    # ------------------------------------------------------------ creation --

    @classmethod
    def create(cls, validity: _dt.timedelta = ROOT_VALIDITY,
               common_name: str = ROOT_COMMON_NAME) -> "RootCA":
        """A fresh self-signed root: new P-256 key, CN ``swarm-ca``, 20 years."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert=cert, key=key)

    @classmethod
    def from_pem(cls, cert_pem_data: bytes, key_pem: bytes | None = None,
                 intermediates_pem: bytes | None = None) -> "RootCA":
        """Loads a root from PEM. The first certificate of ``cert_pem_data`` is the
        root; the key, when given, must match it."""
        cert = load_certificates(cert_pem_data)[0]
        key = None
        if key_pem is not None:
            loaded = serialization.load_pem_private_key(key_pem, password=None)
            if not isinstance(loaded, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
                raise CAError("the root CA key must be an ECDSA or RSA key")
            if loaded.public_key() != cert.public_key():
                raise CAError("the root CA key does not match the root CA certificate")
            key = loaded
        inter = load_certificates(intermediates_pem) if intermediates_pem else []
        return cls(cert=cert, key=key, intermediates=inter)

    @classmethod
    def load(cls, directory: str | os.PathLike[str], kek: bytes | None = None) -> "RootCA":
        """Loads ``swarm-root-ca.crt`` (and ``swarm-root-ca.key`` when present)
        from a directory written by ``save``. An encrypted key needs ``kek``,
        the passphrase it was saved with (CAError otherwise)."""
        d = Path(directory)
        key_path = d / CA_KEY_FILE
        key_pem = key_path.read_bytes() if key_path.exists() else None
        if key_pem is not None and b"ENCRYPTED" in key_pem:
            if kek is None:
                raise CAError(f"{key_path} is encrypted: the manager's data key is needed "
                              "to read it")
            try:
                key = serialization.load_pem_private_key(key_pem, password=kek)
            except (ValueError, TypeError):
                raise CAError(f"{key_path} does not decrypt with this manager's data key") \
                    from None
            key_pem = key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
        return cls.from_pem((d / CA_CERT_FILE).read_bytes(), key_pem)

    def save(self, directory: str | os.PathLike[str], kek: bytes | None = None) -> None:
        """Writes the certificate and, when held, the key (mode 0600) to a
        directory; with ``kek`` the key is encrypted with that passphrase."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_file(d / CA_CERT_FILE, self.cert_pem, 0o644)
        if self.key is not None:
            key_pem = self.key_pem if kek is None else self.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(kek))
            write_file(d / CA_KEY_FILE, key_pem, 0o600)

    # ---------------------------------------------------------- properties --

    @property
    def cert_pem(self) -> bytes:
        """The root certificate as PEM."""
        return cert_pem(self.cert)

    @property
    def key_pem(self) -> bytes:
        """The signing key as unencrypted PKCS#8 PEM (store it with mode 0600)."""
        if self.key is None:
            raise CAError("this node does not hold the root CA key")
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def can_sign(self) -> bool:
        """Whether this node holds the signing key."""
        return self.key is not None

    # ------------------------------------------------------------- issuing --

    def issue(self, csr_pem: bytes, node_id: str, role: str, cluster_id: str,
              expiry: _dt.timedelta = DEFAULT_NODE_EXPIRY,
              ip_addresses: Iterable[str] = ()) -> bytes:
        """Signs a node certificate for the public key in ``csr_pem``.

        The CSR's own subject and extensions are ignored: the CA decides the
        identity. Its signature must verify (the requester holds the key).
        ``ip_addresses`` become IP SANs on manager certificates only. The
        certificate never outlives the root. Returns the certificate PEM,
        followed by the cross-signed intermediates when this CA has any.
        """
        if self.key is None:
            raise CAError("this node does not hold the root CA key and cannot issue certificates")
        ou = ou_for_role(role)
        if not node_id or not cluster_id:
            raise CAError("node ID and cluster ID must not be empty")
        if expiry < MIN_NODE_EXPIRY:
            raise CAError(f"certificate expiry {expiry} is too short: minimum {MIN_NODE_EXPIRY}")
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as e:
            raise CAError(f"malformed certificate signing request: {e}") from None
        if not csr.is_signature_valid:
            raise CAError("certificate signing request has an invalid signature")
        public_key = csr.public_key()
        _check_public_key(public_key)

        sans: list[x509.GeneralName] = [x509.DNSName(node_id), x509.DNSName(ou)]
        if role == "manager":
            for ip in ip_addresses:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
                except ValueError:
                    raise CAError(f"invalid IP address {ip!r} for a certificate") from None

        now = _now()
        not_after = min(now + expiry, self.cert.not_valid_after_utc)
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_id),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
            x509.NameAttribute(NameOID.COMMON_NAME, node_id),
        ])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                           critical=False)
            .add_extension(self._authority_key_id(), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert_pem(cert) + b"".join(cert_pem(c) for c in self.intermediates)

    def cross_sign(self, new_root: "RootCA") -> bytes:
        """A CA certificate for ``new_root``'s subject and public key, signed by
        this (old) root: the bridge that lets nodes trusting only this root
        accept certificates issued by the new one. Returns PEM."""
        if self.key is None:
            raise CAError("cross-signing needs the current root CA key")
        new = new_root.cert
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(new.subject)
            .issuer_name(self.cert.subject)
            .public_key(new.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(min(new.not_valid_after_utc, self.cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(new.public_key()),
                           critical=False)
            .add_extension(self._authority_key_id(), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert_pem(cert)

    def _authority_key_id(self) -> x509.AuthorityKeyIdentifier:
        ski = x509.SubjectKeyIdentifier.from_public_key(self.cert.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True,
        crl_sign=True, encipher_only=False, decipher_only=False)


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Writes a file atomically (temporary file, fsync, rename) with ``mode``
    set before any byte is written."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
