"""A manager's data key at rest: the DEK wrapped by a KEK, and the KEK itself
when autolock is off.

Every manager of a cluster holds the same data key (DEK, 32 bytes): the store
encrypts raft payloads and snapshots with it (`tokens.DataCipher`), and it is
handed to a new manager by the JoinRaft call over mutual TLS. On disk it only
exists wrapped (AES-256-GCM) by a key-encryption key (KEK), in
``<data-dir>/certificates/``:

- ``raft-dek.json``  ``{"version": 1, "autolock": bool, "wrapped": base64}``
  (mode 0600): the wrapped DEK and which kind of KEK wraps it;
- ``raft-kek``       the KEK, 32 random bytes (mode 0600), only while autolock
  is off. With autolock on, the KEK is the unlock key (``SWMKEY-1-…``), which
  is never written to disk: a restarted manager needs it to read its data.

Changing the KEK (autolock toggled, unlock key rotated) rewrites
``raft-dek.json`` in one atomic rename; the DEK itself never changes, so the
journal, snapshots and the private keys (PEM-encrypted with a passphrase
derived from the DEK, see `private_key_passphrase`) need no rewriting.

A data directory from before this module held the DEK in plaintext as
``raft.key`` (hex); `open` moves it under a new local KEK once.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Optional

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pki.ca import write_file
from pki.node import cert_dir
from pki.tokens import (KEY_BYTES, WrongKeyError, new_key, parse_unlock_key, unwrap_dek,
                        wrap_dek)

DEK_FILE = "raft-dek.json"
KEK_FILE = "raft-kek"
LEGACY_KEY_FILE = "raft.key"
_VERSION = 1


class KeyStoreError(Exception):
    """The key files are missing or damaged; the message says which."""


class LockedError(KeyStoreError):
    """Autolock is on: the unlock key is needed to read the data key."""


class InvalidUnlockKey(KeyStoreError):
    """The unlock key given does not open the data key (wrong key, or not a key)."""


def private_key_passphrase(dek: bytes) -> bytes:
    """The passphrase that encrypts a manager's private keys (PEM), derived from
    the DEK so that it is as locked as the data it sits next to."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"shoal manager private keys").derive(dek)


def dek_from_raft_key(raft_key: bytes) -> bytes:
    """The DEK from the form JoinRaft carries it in (hex text)."""
    try:
        dek = bytes.fromhex(raft_key.decode().strip())
    except (UnicodeDecodeError, ValueError):
        raise KeyStoreError("the raft key is not hex text") from None
    if len(dek) != KEY_BYTES:
        raise KeyStoreError(f"the raft key holds {len(dek)} bytes instead of {KEY_BYTES}")
    return dek


def raft_key_of(dek: bytes) -> bytes:
    """The DEK in the form JoinRaft carries it in (hex text)."""
    return dek.hex().encode()


def _unlock_kek(unlock_key: str) -> bytes:
    try:
        return parse_unlock_key(unlock_key)
    except ValueError as exc:
        raise InvalidUnlockKey(str(exc)) from None


class ManagerKeys:
    """The key files of one manager's data directory."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.dir = cert_dir(data_dir)

    @property
    def dek_path(self) -> Path:
        return self.dir / DEK_FILE

    @property
    def kek_path(self) -> Path:
        return self.dir / KEK_FILE

    def exists(self) -> bool:
        """Whether this directory holds a data key (wrapped, or a legacy one)."""
        return self.dek_path.is_file() or (self.dir / LEGACY_KEY_FILE).is_file()

    def _read(self) -> tuple[bool, bytes]:
        """(autolock, wrapped DEK) from the DEK file."""
        try:
            doc = json.loads(self.dek_path.read_text())
            wrapped = base64.b64decode(doc["wrapped"], validate=True)
            autolock = bool(doc["autolock"])
        except FileNotFoundError:
            raise KeyStoreError(f"{self.dek_path} is missing: this node holds no data key "
                                "(is it a manager?)") from None
        except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise KeyStoreError(f"{self.dek_path} is damaged: {exc}") from None
        return autolock, wrapped

    def autolocked(self) -> bool:
        """Whether the data key is wrapped by the unlock key (autolock on)."""
        if not self.dek_path.is_file() and (self.dir / LEGACY_KEY_FILE).is_file():
            return False
        return self._read()[0]

    def _write(self, dek: bytes, kek: bytes, autolock: bool) -> None:
        doc = {"version": _VERSION, "autolock": autolock,
               "wrapped": base64.b64encode(wrap_dek(dek, kek)).decode()}
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_file(self.dek_path, json.dumps(doc).encode(), 0o600)

    def store(self, dek: bytes, unlock_key: Optional[str] = None) -> None:
        """Writes ``dek`` wrapped by ``unlock_key`` (autolock on) or by a new
        local KEK (autolock off, ``unlock_key`` None). Replaces what was there;
        a crash at any point leaves either the old or the new wrapping usable."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if unlock_key:
            kek = _unlock_kek(unlock_key)
            self._write(dek, kek, autolock=True)
            self.kek_path.unlink(missing_ok=True)
        else:
            local_kek = self._kek_in_use()
            if local_kek is None:
                # A new KEK goes down first: until the DEK file is replaced,
                # the old wrapping (by the unlock key) still opens it.
                local_kek = new_key()
                write_file(self.kek_path, local_kek, 0o600)
            self._write(dek, local_kek, autolock=False)
        (self.dir / LEGACY_KEY_FILE).unlink(missing_ok=True)

    def _kek_in_use(self) -> Optional[bytes]:
        """The local KEK when the current DEK file is wrapped by it."""
        try:
            autolock, _ = self._read()
            kek = self.kek_path.read_bytes()
        except (KeyStoreError, OSError):
            return None
        return kek if not autolock and len(kek) == KEY_BYTES else None

    def open(self, unlock_key: Optional[str] = None) -> bytes:
        """The DEK. LockedError when autolock is on and no ``unlock_key`` was
        given; InvalidUnlockKey when the given key does not open it."""
        legacy = self.dir / LEGACY_KEY_FILE
        if not self.dek_path.is_file() and legacy.is_file():
            dek = dek_from_raft_key(legacy.read_bytes())
            self.store(dek)
            return dek
        autolock, wrapped = self._read()
        if autolock:
            if not unlock_key:
                raise LockedError("the data key is locked: the unlock key is needed")
            try:
                dek = unwrap_dek(wrapped, _unlock_kek(unlock_key))
            except WrongKeyError:
                raise InvalidUnlockKey("the unlock key does not open the data key") from None
            self.kek_path.unlink(missing_ok=True)  # left over from an interrupted change
            return dek
        try:
            kek = self.kek_path.read_bytes()
        except FileNotFoundError:
            raise KeyStoreError(f"{self.kek_path} is missing: the data key cannot be "
                                "opened") from None
        try:
            return unwrap_dek(wrapped, kek)
        except (WrongKeyError, ValueError) as exc:
            raise KeyStoreError(f"the data key in {self.dek_path} does not open with "
                                f"{self.kek_path}: {exc}") from None

    def wrapped_by(self, unlock_key: Optional[str]) -> bool:
        """Whether the DEK is wrapped as ``unlock_key`` asks: by that unlock key,
        or by the local KEK when it is None."""
        if not self.dek_path.is_file():
            return False
        autolock, wrapped = self._read()
        if not unlock_key:
            return not autolock and self.kek_path.is_file()
        if not autolock:
            return False
        try:
            unwrap_dek(wrapped, _unlock_kek(unlock_key))
        except (WrongKeyError, InvalidUnlockKey, ValueError):
            return False
        return True

    def remove(self) -> None:
        """Forgets the data key (the node stops being a manager)."""
        for name in (DEK_FILE, KEK_FILE, LEGACY_KEY_FILE):
            (self.dir / name).unlink(missing_ok=True)
