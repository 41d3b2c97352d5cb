"""Join tokens, unlock keys and data-key wrapping.

This module owns the secrets a person handles and the keys that protect the
store at rest:

- Join tokens ``SWMTKN-1-<digest>-<secret>``. ``digest`` is the SHA-256 of the
  root CA certificate (DER) in lowercase base36, 50 characters wide: it pins
  the CA for a joining node. ``secret`` is 128 random bits in base36, 25
  characters: it decides the role the node joins with. Secrets are compared
  in constant time.
- Unlock keys ``SWMKEY-1-<base64>`` (32 random bytes, unpadded standard
  base64), which wrap the store's data key when autolock is on.
- The data key (DEK) that encrypts raft payloads, wrapped by a
  key-encryption key (KEK) with AES-256-GCM, and a small cipher for the
  store's payloads built from the DEK.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pki.ca import load_certificates
from proto import objects_pb2

TOKEN_PREFIX = "SWMTKN"
TOKEN_VERSION = "1"
DIGEST_LEN = 50  # 36**50 > 2**256
SECRET_LEN = 25  # 36**25 > 2**128
SECRET_BITS = 128
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_BASE36 = re.compile(r"[0-9a-z]*")
TOKEN_FORM = (f"{TOKEN_PREFIX}-{TOKEN_VERSION}-<CA digest: {DIGEST_LEN} base36 characters>"
              f"-<secret: {SECRET_LEN} base36 characters>")

UNLOCK_PREFIX = "SWMKEY-1-"
KEY_BYTES = 32
UNLOCK_FORM = f"{UNLOCK_PREFIX}<base64 of {KEY_BYTES} bytes>"


# ----------------------------------------------------------------- base36 --

def to_base36(value: int, width: int) -> str:
    """``value`` in lowercase base36, left-padded with zeros to ``width``."""
    if value < 0 or value >= 36 ** width:
        raise ValueError(f"{value} does not fit in {width} base36 characters")
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 36)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


# ------------------------------------------------------------- join tokens --

class JoinToken(NamedTuple):
    """A parsed join token: the CA digest and the role secret, both base36."""

    digest: str
    secret: str

    def __str__(self) -> str:
        return f"{TOKEN_PREFIX}-{TOKEN_VERSION}-{self.digest}-{self.secret}"


def ca_digest(ca_pem: bytes) -> str:
    """The token digest of the first certificate in ``ca_pem``."""
    return _digest_of_der(load_certificates(ca_pem)[0].public_bytes(serialization.Encoding.DER))


def _digest_of_der(der: bytes) -> str:
    return to_base36(int.from_bytes(hashlib.sha256(der).digest(), "big"), DIGEST_LEN)


def generate(root_ca_pem: bytes) -> str:
    """A new join token for the cluster whose root CA is ``root_ca_pem``."""
    secret = to_base36(secrets.randbits(SECRET_BITS), SECRET_LEN)
    return str(JoinToken(ca_digest(root_ca_pem), secret))


def new_join_tokens(root_ca_pem: bytes) -> objects_pb2.JoinTokens:
    """A fresh worker and manager token pair for the cluster object."""
    return objects_pb2.JoinTokens(worker=generate(root_ca_pem), manager=generate(root_ca_pem))


def _bad(what: str) -> ValueError:
    return ValueError(f"invalid join token: {what}; expected {TOKEN_FORM}")


def parse(token: str) -> JoinToken:
    """Splits a token into (digest, secret); ValueError naming what is wrong."""
    if not isinstance(token, str) or not token.strip():
        raise _bad("the token is empty")
    token = token.strip()
    parts = token.split("-")
    if parts[0] != TOKEN_PREFIX:
        raise _bad(f"it does not start with {TOKEN_PREFIX}-")
    if len(parts) < 2 or parts[1] != TOKEN_VERSION:
        version = parts[1] if len(parts) > 1 else ""
        raise _bad(f"unsupported token version {version!r} (this version reads "
                   f"{TOKEN_PREFIX}-{TOKEN_VERSION} tokens)")
    if len(parts) != 4:
        raise _bad(f"it has {len(parts)} dash-separated parts instead of 4")
    digest, secret = parts[2], parts[3]
    for name, value, width in (("CA digest", digest, DIGEST_LEN), ("secret", secret, SECRET_LEN)):
        if len(value) != width:
            raise _bad(f"the {name} has {len(value)} characters instead of {width}")
        if not _BASE36.fullmatch(value):
            raise _bad(f"the {name} has characters other than 0-9 and a-z")
    if int(digest, 36) >= 2 ** 256:
        raise _bad("the CA digest is larger than a SHA-256 value")
    return JoinToken(digest, secret)


def ca_matches(token: str, ca_pem: bytes) -> bool:
    """Whether the token's digest is that of a certificate in ``ca_pem`` (any
    of them: during a root rotation a bundle holds two roots)."""
    digest = parse(token).digest
    found = False
    for cert in load_certificates(ca_pem):
        candidate = _digest_of_der(cert.public_bytes(serialization.Encoding.DER))
        found |= hmac.compare_digest(candidate, digest)
    return found


def same_secret(presented: str, expected: str) -> bool:
    """Whether two tokens carry the same secret and digest, compared in
    constant time. A malformed ``presented`` token is simply not equal."""
    try:
        a = parse(presented)
    except ValueError:
        return False
    b = parse(expected)
    return hmac.compare_digest(f"{a.digest}-{a.secret}", f"{b.digest}-{b.secret}")


def role_for_token(presented: str, worker_token: str, manager_token: str) -> str | None:
    """The role ("worker"/"manager") a presented token grants, or None. Both
    comparisons always run, so timing does not reveal which one matched."""
    is_worker = bool(worker_token) and same_secret(presented, worker_token)
    is_manager = bool(manager_token) and same_secret(presented, manager_token)
    if is_manager:
        return "manager"
    if is_worker:
        return "worker"
    return None


# ------------------------------------------------------------- unlock keys --

def generate_unlock_key() -> str:
    """A new unlock key ``SWMKEY-1-<base64>`` holding 32 random bytes."""
    raw = os.urandom(KEY_BYTES)
    return UNLOCK_PREFIX + base64.b64encode(raw).decode().rstrip("=")


def parse_unlock_key(text: str) -> bytes:
    """The 32 key bytes of an unlock key; ValueError naming what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"invalid unlock key: the key is empty; expected {UNLOCK_FORM}")
    text = text.strip()
    if not text.startswith(UNLOCK_PREFIX):
        raise ValueError(f"invalid unlock key: it does not start with {UNLOCK_PREFIX}; "
                         f"expected {UNLOCK_FORM}")
    body = text[len(UNLOCK_PREFIX):]
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"invalid unlock key: the part after {UNLOCK_PREFIX} is not base64; "
                         f"expected {UNLOCK_FORM}") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"invalid unlock key: it holds {len(raw)} bytes instead of {KEY_BYTES}; "
                         f"expected {UNLOCK_FORM}")
    return raw


# ------------------------------------------------------------ key wrapping --

_WRAP_MAGIC = b"SHOALDEK1"
_WRAP_AAD = b"shoal data key"
_NONCE = 12


class WrongKeyError(ValueError):
    """The key-encryption key does not open the wrapped data key."""


def new_key() -> bytes:
    """32 random bytes: a new DEK or locally stored KEK."""
    return os.urandom(KEY_BYTES)


def _aes(key: bytes, what: str) -> AESGCM:
    if len(key) != KEY_BYTES:
        raise ValueError(f"{what} must be {KEY_BYTES} bytes, got {len(key)}")
    return AESGCM(key)


def wrap_dek(dek: bytes, kek: bytes) -> bytes:
    """Encrypts ``dek`` under ``kek`` (AES-256-GCM, random nonce)."""
    nonce = os.urandom(_NONCE)
    return _WRAP_MAGIC + nonce + _aes(kek, "the key-encryption key").encrypt(nonce, dek, _WRAP_AAD)


def unwrap_dek(blob: bytes, kek: bytes) -> bytes:
    """The DEK inside ``blob``; WrongKeyError when ``kek`` is not the key that
    wrapped it, ValueError when ``blob`` is not a wrapped key at all."""
    aes = _aes(kek, "the key-encryption key")
    if not blob.startswith(_WRAP_MAGIC) or len(blob) < len(_WRAP_MAGIC) + _NONCE + 16:
        raise ValueError("not a wrapped data key (bad header or too short)")
    body = blob[len(_WRAP_MAGIC):]
    try:
        return aes.decrypt(body[:_NONCE], body[_NONCE:], _WRAP_AAD)
    except InvalidTag:
        raise WrongKeyError("the key does not unlock the data key: wrong unlock key, "
                            "or the wrapped key is damaged") from None


class DataCipher:
    """Encrypts and decrypts store payloads with the DEK (AES-256-GCM, random
    96-bit nonce prepended). ``encrypt``/``decrypt`` fit the store's cipher hooks."""

    def __init__(self, dek: bytes) -> None:
        self._aes = _aes(dek, "the data key")

    def encrypt(self, plaintext: bytes) -> bytes:
        """Nonce followed by ciphertext and tag."""
        nonce = os.urandom(_NONCE)
        return nonce + self._aes.encrypt(nonce, plaintext, None)

    def decrypt(self, blob: bytes) -> bytes:
        """The plaintext; WrongKeyError when the data key does not fit or the
        payload was altered."""
        try:
            return self._aes.decrypt(blob[:_NONCE], blob[_NONCE:], None)
        except InvalidTag:
            raise WrongKeyError("payload does not decrypt with this data key") from None
