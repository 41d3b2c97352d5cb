"""Encryption at rest: the wrapped data key (pki.keystore), encrypted private
keys (pki.node, pki.ca), and a store whose files hold ciphertext only."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from node import credentials
from lab.localnode import free_port
from pki import keystore, tokens
from pki import node as pkinode
from pki.ca import CAError, RootCA
from proto import model
from proto import objects_pb2 as pb
from raft import actions
from raft.replica import RaftTuning
from raft.store import Store

FAST = RaftTuning(heartbeat=0.05, election_min=0.2, election_max=0.4,
                  connection_timeout=1.0, reconnect=0.2, leader_fallback=1.0)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def all_bytes(root: Path) -> bytes:
    """Every byte of every file under root."""
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


# --------------------------------------------------------------- key store --

def test_local_kek_wraps_the_dek(tmp_path: Path) -> None:
    keys = keystore.ManagerKeys(tmp_path)
    dek = tokens.new_key()
    keys.store(dek)
    assert keys.open() == dek
    assert not keys.autolocked()
    assert keys.kek_path.is_file() and mode(keys.kek_path) == 0o600
    assert mode(keys.dek_path) == 0o600
    assert dek not in keys.dek_path.read_bytes() and dek.hex().encode() not in all_bytes(tmp_path)
    assert keys.wrapped_by(None)
    assert not keys.wrapped_by(tokens.generate_unlock_key())


def test_autolock_needs_the_unlock_key_and_refuses_a_wrong_one(tmp_path: Path) -> None:
    keys = keystore.ManagerKeys(tmp_path)
    dek, key = tokens.new_key(), tokens.generate_unlock_key()
    keys.store(dek)
    keys.store(dek, key)                                  # autolock turned on
    assert keys.autolocked() and not keys.kek_path.exists()
    assert key.encode() not in all_bytes(tmp_path)        # the unlock key is never stored
    with pytest.raises(keystore.LockedError):
        keys.open()
    with pytest.raises(keystore.InvalidUnlockKey):
        keys.open(tokens.generate_unlock_key())           # well formed, wrong
    with pytest.raises(keystore.InvalidUnlockKey):
        keys.open("SWMKEY-1-notbase64!")                  # not a key at all
    assert keys.open(key) == dek
    assert keys.wrapped_by(key) and not keys.wrapped_by(None)


def test_rotation_rewraps_old_key_refused_new_accepted(tmp_path: Path) -> None:
    keys = keystore.ManagerKeys(tmp_path)
    dek, old, new = tokens.new_key(), tokens.generate_unlock_key(), tokens.generate_unlock_key()
    keys.store(dek, old)
    before = keys.dek_path.read_bytes()
    keys.store(dek, new)
    assert keys.dek_path.read_bytes() != before
    with pytest.raises(keystore.InvalidUnlockKey):
        keys.open(old)
    assert keys.open(new) == dek
    assert keys.wrapped_by(new) and not keys.wrapped_by(old)


def test_autolock_off_again_opens_without_a_key(tmp_path: Path) -> None:
    keys = keystore.ManagerKeys(tmp_path)
    dek, key = tokens.new_key(), tokens.generate_unlock_key()
    keys.store(dek, key)
    keys.store(dek, None)
    assert not keys.autolocked() and keys.open() == dek
    kek = keys.kek_path.read_bytes()
    keys.store(dek, None)                 # re-wrapping under a local KEK keeps the one in use
    assert keys.kek_path.read_bytes() == kek and keys.open() == dek


def test_interrupted_switch_off_still_opens_with_the_unlock_key(tmp_path: Path) -> None:
    """A crash after the new local KEK was written but before the DEK file was
    replaced: the old wrapping still opens, and the stray KEK goes away."""
    keys = keystore.ManagerKeys(tmp_path)
    dek, key = tokens.new_key(), tokens.generate_unlock_key()
    keys.store(dek, key)
    keys.kek_path.write_bytes(tokens.new_key())
    assert keys.autolocked()
    assert keys.open(key) == dek
    assert not keys.kek_path.exists()


def test_damaged_or_missing_files_are_reported(tmp_path: Path) -> None:
    keys = keystore.ManagerKeys(tmp_path)
    with pytest.raises(keystore.KeyStoreError, match="missing"):
        keys.open()
    keys.store(tokens.new_key())
    keys.kek_path.write_bytes(tokens.new_key())          # another KEK
    with pytest.raises(keystore.KeyStoreError, match="does not open"):
        keys.open()
    keys.dek_path.write_text("{not json")
    with pytest.raises(keystore.KeyStoreError, match="damaged"):
        keys.open()


def test_legacy_plaintext_raft_key_is_moved_under_a_kek(tmp_path: Path) -> None:
    d = pkinode.cert_dir(tmp_path)
    d.mkdir(parents=True)
    dek = tokens.new_key()
    (d / keystore.LEGACY_KEY_FILE).write_bytes(keystore.raft_key_of(dek))
    keys = keystore.ManagerKeys(tmp_path)
    assert keys.exists() and not keys.autolocked()
    assert keys.open() == dek
    assert not (d / keystore.LEGACY_KEY_FILE).exists()
    assert keys.open() == dek


def test_raft_key_form_round_trips_and_rejects_garbage() -> None:
    dek = tokens.new_key()
    assert keystore.dek_from_raft_key(keystore.raft_key_of(dek)) == dek
    with pytest.raises(keystore.KeyStoreError):
        keystore.dek_from_raft_key(b"zz")
    with pytest.raises(keystore.KeyStoreError):
        keystore.dek_from_raft_key(b"abcd")


def test_private_key_passphrase_is_derived_not_the_dek() -> None:
    dek = tokens.new_key()
    assert keystore.private_key_passphrase(dek) == keystore.private_key_passphrase(dek)
    assert keystore.private_key_passphrase(dek) != dek
    assert keystore.private_key_passphrase(tokens.new_key()) != keystore.private_key_passphrase(dek)


# ------------------------------------------------------- private keys at rest --

def test_manager_pki_is_encrypted_and_reads_back(tmp_path: Path) -> None:
    node_id, cluster_id = model.new_id(), model.new_id()
    credentials.create_cluster_pki(tmp_path, node_id, cluster_id, "10.0.0.1:2377")
    d = pkinode.cert_dir(tmp_path)
    for name in ("swarm-node.key", "swarm-root-ca.key"):
        text = (d / name).read_bytes()
        assert b"ENCRYPTED PRIVATE KEY" in text and b"BEGIN PRIVATE KEY" not in text
    with pytest.raises(pkinode.KeyLockedError):
        pkinode.load(tmp_path)
    with pytest.raises(CAError):
        RootCA.load(d)
    with pytest.raises(pkinode.KeyLockedError):
        pkinode.load(tmp_path, kek=b"x" * 32)
    creds = credentials.load_node_credentials(tmp_path)   # opens the DEK with the local KEK
    assert creds.identity.node_id == node_id
    assert b"BEGIN PRIVATE KEY" in creds.key_pem          # plain in memory
    dek = credentials.open_manager_keys(tmp_path)
    assert credentials.root_ca(tmp_path, dek).can_sign


def test_autolocked_manager_keys_need_the_unlock_key(tmp_path: Path) -> None:
    credentials.create_cluster_pki(tmp_path, model.new_id(), model.new_id(), "10.0.0.1:2377")
    keys = keystore.ManagerKeys(tmp_path)
    dek, key = keys.open(), tokens.generate_unlock_key()
    keys.store(dek, key)
    with pytest.raises(keystore.LockedError):
        credentials.load_node_credentials(tmp_path)
    dek = credentials.open_manager_keys(tmp_path, key)
    assert credentials.load_node_credentials(tmp_path, dek).identity.role == "manager"


def test_plain_keys_are_protected_once_a_dek_is_known(tmp_path: Path) -> None:
    """A promoted worker (or an older data dir) has plaintext keys: rewritten encrypted."""
    root = RootCA.create()
    root.save(pkinode.cert_dir(tmp_path))
    key, csr = pkinode.new_key_and_csr()
    creds = pkinode.NodeCredentials(key, root.issue(csr, model.new_id(), "manager",
                                                    model.new_id()), root.cert_pem)
    pkinode.save(tmp_path, creds)
    assert not pkinode.key_encrypted(tmp_path)
    dek = tokens.new_key()
    credentials.protect_manager_keys(tmp_path, dek, creds)
    assert pkinode.key_encrypted(tmp_path)
    assert b"ENCRYPTED" in (pkinode.cert_dir(tmp_path) / "swarm-root-ca.key").read_bytes()
    kek = keystore.private_key_passphrase(dek)
    assert pkinode.load(tmp_path, kek=kek) == creds
    assert RootCA.load(pkinode.cert_dir(tmp_path), kek=kek).can_sign


def test_worker_keys_stay_plain_and_load_without_kek(tmp_path: Path) -> None:
    root = RootCA.create()
    key, csr = pkinode.new_key_and_csr()
    creds = pkinode.NodeCredentials(key, root.issue(csr, model.new_id(), "worker",
                                                    model.new_id()), root.cert_pem)
    pkinode.save(tmp_path, creds)
    assert pkinode.load(tmp_path) == creds
    assert pkinode.load(tmp_path, kek=b"ignored for plain keys") == creds


# ------------------------------------------------------ store files at rest --

def test_store_files_hold_no_plaintext(tmp_path: Path) -> None:
    cipher = tokens.DataCipher(tokens.new_key())
    name, label = "zebra-secret-svc", "quokka-label-value"
    addr = f"127.0.0.1:{free_port(span=1)}"
    store = Store("node1", str(tmp_path), addr, tuning=FAST,
                  encrypt=cipher.encrypt, decrypt=cipher.decrypt)
    store.start()
    try:
        store.wait_ready(10)
        svc = pb.Service(id=model.new_id())
        svc.spec.annotations.name = name
        svc.spec.annotations.labels["tier"] = label
        store.commit([actions.create(svc)])
        store.write_snapshot()                       # the name is now in a snapshot ...
        other = pb.Service(id=model.new_id())
        other.spec.annotations.name = name + "-2"
        store.commit([actions.create(other)])        # ... and in the journal
    finally:
        store.close()
    data = all_bytes(tmp_path)
    assert data, "the store wrote nothing"
    assert name.encode() not in data and label.encode() not in data
    # and it reads back with the same key
    again = Store("node1", str(tmp_path), addr, tuning=FAST,
                  encrypt=cipher.encrypt, decrypt=cipher.decrypt)
    again.start()
    try:
        again.wait_ready(10)
        from lab.localnode import wait_for
        wait_for(lambda: again.by_name("service", name + "-2"), 10, "the journal replayed")
        assert again.by_name("service", name).spec.annotations.labels["tier"] == label
    finally:
        again.close()
    assert os.path.isdir(tmp_path / "raft")
