"""A root CA the operator brings: the checks before the cluster rotates to it.

`swarm ca --rotate --ca-cert FILE [--ca-key FILE]` roots the cluster in the
operator's own CA instead of one Shoal generates. This module owns what such a
root must be, as Docker checks it (swarmkit's controlapi): exactly one
certificate, a CA, self-signed (it becomes the trust anchor every node pins and
that join tokens name), valid now and for at least another year, with a key
type the cluster signs with (ECDSA P-256/P-384 or RSA of 2048 bits or more);
the key, when given, must be that certificate's key. Every refusal is a
`CAError` with one line that says what is wrong.
"""
from __future__ import annotations

import datetime as _dt

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from pki.ca import CAError, RootCA, _check_public_key, load_certificates

MIN_ROOT_VALIDITY = _dt.timedelta(days=365)   # as Docker: "CA certificate expires too soon"


def _one_certificate(cert_pem: bytes) -> x509.Certificate:
    try:
        certs = load_certificates(cert_pem)
    except ValueError:
        raise CAError("the CA certificate is not a PEM-encoded certificate") from None
    if len(certs) != 1:
        raise CAError(f"the CA certificate file holds {len(certs)} certificates: "
                      "give exactly one root certificate")
    return certs[0]


def check_certificate(cert_pem: bytes, now: _dt.datetime | None = None) -> x509.Certificate:
    """The certificate of ``cert_pem`` when it can be the cluster's root; CAError otherwise."""
    cert = _one_certificate(cert_pem)
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CAError("the certificate is not a CA certificate (its basic constraints "
                      "do not say CA:TRUE)")
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        raise CAError("the CA certificate is not self-signed: give the root certificate, "
                      "not an intermediate") from None
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if cert.not_valid_before_utc > now:
        raise CAError(f"the CA certificate is not valid yet (from "
                      f"{cert.not_valid_before_utc.isoformat()})")
    if cert.not_valid_after_utc <= now:
        raise CAError(f"the CA certificate has expired (on "
                      f"{cert.not_valid_after_utc.isoformat()})")
    if cert.not_valid_after_utc < now + MIN_ROOT_VALIDITY:
        raise CAError(f"the CA certificate expires too soon ({cert.not_valid_after_utc.date()}): "
                      "a root must be valid for at least another year")
    try:
        _check_public_key(cert.public_key())
    except CAError as exc:
        raise CAError(f"the CA certificate's key: {exc}") from None
    return cert


def check_root(cert_pem: bytes, key_pem: bytes | None = None,
               now: _dt.datetime | None = None) -> RootCA:
    """The operator's root (with its key when given) after every check; CAError otherwise."""
    if key_pem is not None and not cert_pem:
        raise CAError("a CA key was given without its CA certificate")
    cert = check_certificate(cert_pem, now)
    single = cert.public_bytes(serialization.Encoding.PEM)
    if key_pem is None:
        return RootCA.from_pem(single)
    try:
        serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise CAError("the CA key is encrypted: give it without a passphrase") from None
    except ValueError:
        raise CAError("the CA key is not a PEM-encoded private key") from None
    except Exception as exc:  # noqa: BLE001 - cryptography raises assorted errors on junk
        raise CAError(f"the CA key cannot be read: {exc}") from None
    return RootCA.from_pem(single, key_pem)


def same_certificate(a_pem: bytes, b_pem: bytes) -> bool:
    """Whether two PEM texts hold the same first certificate (whatever the line breaks)."""
    if not a_pem or not b_pem:
        return False
    try:
        return load_certificates(a_pem)[0] == load_certificates(b_pem)[0]
    except ValueError:
        return False


def same_key(a_pem: bytes, b_pem: bytes) -> bool:
    """Whether the first certificates of two PEM texts carry the same public key."""
    try:
        a, b = load_certificates(a_pem)[0], load_certificates(b_pem)[0]
    except ValueError:
        return False
    return a.public_key() == b.public_key()
