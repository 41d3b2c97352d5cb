"""A node's cluster credentials on disk, and the join handshake.

`create_cluster_pki` makes the root CA, the cluster's data key (DEK) and the
first manager's certificate at `swarm init`. On a manager the DEK is kept
wrapped (pki.keystore) and the private keys (node key, root CA key) are
PEM-encrypted with a passphrase derived from it: `open_manager_keys` and
`load_node_credentials` read them back. `join` pins the CA with the token's digest, asks
a manager to sign a CSR with the token, and, for managers, enters the raft
group. Ports: the manager endpoint P (2377, mutual TLS), raft P+1, join P+2
(TLS without client certificates: only the certificate-issuing calls).
"""
from __future__ import annotations

import datetime
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, TypeVar, cast

import grpc

from node.state import JOIN_PORT_OFFSET
from pki import keystore
from pki import node as pkinode
from pki import tls, tokens
from pki.ca import RootCA, cert_pem, load_certificates
from proto import ca_pb2 as capb
from proto import ca_pb2_grpc
from proto import objects_pb2 as pb

T = TypeVar("T")


class JoinError(Exception):
    """The join failed; the message says why and what to do."""


@dataclass
class Joined:
    node_id: str
    role: str
    cluster_id: str
    managers: list[str] = field(default_factory=list)
    raft_peers: list[str] = field(default_factory=list)


def cert_dir(data_dir: Path) -> Path:
    return pkinode.cert_dir(data_dir)


def open_manager_keys(data_dir: Path, unlock_key: str | None = None) -> bytes:
    """A manager's DEK (keystore.LockedError when autolock is on and no key
    was given, keystore.InvalidUnlockKey when the key is wrong)."""
    return keystore.ManagerKeys(data_dir).open(unlock_key)


def root_ca(data_dir: Path, dek: bytes | None = None) -> RootCA:
    """The root CA with its key (managers only; the key needs the DEK)."""
    kek = keystore.private_key_passphrase(dek) if dek is not None else None
    return RootCA.load(cert_dir(data_dir), kek=kek)


def load_node_credentials(data_dir: Path, dek: bytes | None = None) -> pkinode.NodeCredentials:
    """The node's credentials. On a manager without `dek`, the DEK is opened
    with the local KEK (keystore.LockedError when autolock is on)."""
    if dek is None and pkinode.key_encrypted(data_dir):
        dek = open_manager_keys(data_dir)
    kek = keystore.private_key_passphrase(dek) if dek is not None else None
    return pkinode.load(data_dir, kek=kek)


def protect_manager_keys(data_dir: Path, dek: bytes, creds: pkinode.NodeCredentials) -> None:
    """Rewrites plaintext private keys of a manager encrypted (after a promotion,
    or a data directory from an older version)."""
    kek = keystore.private_key_passphrase(dek)
    if not pkinode.key_encrypted(data_dir):
        pkinode.save(data_dir, creds, kek=kek)
    key_path = cert_dir(data_dir) / "swarm-root-ca.key"
    if key_path.exists() and b"ENCRYPTED" not in key_path.read_bytes():
        RootCA.load(cert_dir(data_dir)).save(cert_dir(data_dir), kek=kek)


def create_cluster_pki(data_dir: Path, node_id: str, cluster_id: str, addr: str,
                       expiry: Optional[datetime.timedelta] = None) -> None:
    """Root CA, data key and this manager's certificate for a new cluster (valid for
    `expiry`, `swarm init --cert-expiry`, else the default node certificate life)."""
    dek = tokens.new_key()
    keystore.ManagerKeys(data_dir).store(dek)
    kek = keystore.private_key_passphrase(dek)
    root = RootCA.create()
    root.save(cert_dir(data_dir), kek=kek)
    key, csr = pkinode.new_key_and_csr(node_id)
    cert = root.issue(csr, node_id, "manager", cluster_id, ip_addresses=[addr.rsplit(":", 1)[0]],
                      **({"expiry": expiry} if expiry is not None else {}))
    pkinode.save(data_dir, pkinode.NodeCredentials(key, cert, root.cert_pem), kek=kek)


def _details(exc: grpc.RpcError) -> str:
    """The status details of a failed call (a sync channel's errors are grpc.Call too)."""
    return cast(grpc.Call, exc).details() or ""


def _rpc_error(exc: grpc.RpcError, where: str) -> JoinError:
    code = cast(grpc.Call, exc).code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return JoinError(f"cannot reach the manager at {where}: {_details(exc)}")
    return JoinError(_details(exc) or str(code))


def join(data_dir: Path, host: str, port: int, token: str, *, advertise_addr: str,
         raft_addr: str, availability: str = "active", hostname: str = "") -> Joined:
    """Joins the swarm of the manager at host:port; writes the credentials. The node
    describes itself with `hostname` (default: this machine's)."""
    try:
        tokens.parse(token)
    except ValueError as exc:
        raise JoinError(str(exc)) from None
    join_port = port + JOIN_PORT_OFFSET
    where = f"{host}:{port}"
    try:
        ca_pem = tls.fetch_and_pin_ca(host, join_port, token)
    except tls.CAPinError as exc:
        raise JoinError(str(exc)) from None
    key, csr = pkinode.new_key_and_csr()
    req = capb.IssueNodeCertificateRequest(
        csr=csr, token=token, advertise_addr=advertise_addr, raft_addr=raft_addr,
        availability=pb.NodeSpec.Availability.Name(
            pb.NodeSpec.Availability.Value(availability.upper())))
    req.description.hostname = hostname or socket.gethostname()
    with grpc.secure_channel(f"{host}:{join_port}", tls.join_credentials(ca_pem),
                             options=tls.channel_options()) as ch:
        try:
            resp = ca_pb2_grpc.NodeCAStub(ch).IssueNodeCertificate(req, timeout=15)
        except grpc.RpcError as exc:
            raise _rpc_error(exc, where) from None
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    creds = pkinode.NodeCredentials(key, resp.certificate, resp.root_ca)
    pkinode.save(data_dir, creds)
    role = "manager" if resp.role == pb.MANAGER else "worker"
    managers = list(resp.manager_addrs) or [where]
    joined = Joined(resp.node_id, role, resp.cluster_id, managers)
    if role == "manager":
        members = enter_raft(data_dir, creds, managers, raft_addr)
        joined.raft_peers = [m for m in members if m != raft_addr]
        joined.managers = sorted(set(managers) | {advertise_addr})
    return joined


def _leader_call(creds: pkinode.NodeCredentials, managers: list[str],
                 call: Callable[[ca_pb2_grpc.RaftMembershipStub], T]) -> T:
    """Tries `call(stub)` on each manager until the leader answers."""
    errors = []
    for _ in range(3):
        for addr in managers:
            with tls_channel(addr, creds) as ch:
                try:
                    return call(ca_pb2_grpc.RaftMembershipStub(ch))
                except grpc.RpcError as exc:
                    errors.append(f"{addr}: {_details(exc)}")
    raise JoinError("no manager could change the raft group: " + "; ".join(errors[-3:]))


def tls_channel(addr: str, creds: pkinode.NodeCredentials) -> grpc.Channel:
    return grpc.secure_channel(addr, tls.client_credentials(creds), options=tls.channel_options())


def enter_raft(data_dir: Path, creds: pkinode.NodeCredentials, managers: list[str],
               raft_addr: str) -> list[str]:
    resp = _leader_call(creds, managers, lambda stub: stub.JoinRaft(
        capb.JoinRaftRequest(raft_addr=raft_addr), timeout=15))
    d = cert_dir(data_dir)
    dek = keystore.dek_from_raft_key(resp.raft_key)
    keystore.ManagerKeys(data_dir).store(dek)  # a local KEK; the daemon applies autolock
    kek = keystore.private_key_passphrase(dek)
    root = _root_for_key(creds.ca_pem, resp.root_ca_key)
    root.save(d, kek=kek)
    pkinode.save(data_dir, creds, kek=kek)
    return list(resp.members)


def _root_for_key(ca_pem: bytes, key_pem: bytes) -> RootCA:
    """The trusted root the CA key belongs to (two are trusted during a rotation);
    without a key (an external CA holds the cluster's), the first trusted root."""
    if not key_pem:
        return RootCA.from_pem(cert_pem(load_certificates(ca_pem)[0]))
    for cert in load_certificates(ca_pem):
        try:
            return RootCA.from_pem(cert_pem(cert), key_pem)
        except ValueError:
            continue
    raise JoinError("the root CA key from the leader matches none of the trusted roots")


def renew(data_dir: Path, creds: pkinode.NodeCredentials,
          managers: list[str], kek: bytes | None = None) -> pkinode.NodeCredentials:
    """A new key and certificate for this node's current desired role, saved
    (the key encrypted with `kek` when given: a manager's key passphrase)."""
    key, csr = pkinode.new_key_and_csr()
    errors = []
    for addr in managers:
        with tls_channel(addr, creds) as ch:
            try:
                resp = ca_pb2_grpc.NodeCAStub(ch).RenewNodeCertificate(
                    capb.RenewNodeCertificateRequest(csr=csr), timeout=15)
            except grpc.RpcError as exc:
                errors.append(f"{addr}: {_details(exc)}")
                continue
        new = pkinode.NodeCredentials(key, resp.certificate, resp.root_ca)
        pkinode.save(data_dir, new, kek=kek)
        return new
    raise JoinError("no manager renewed the certificate: " + "; ".join(errors))


def forget_raft(data_dir: Path) -> None:
    """Removes the raft state and the manager-only keys (demotion)."""
    shutil.rmtree(data_dir / "raft", ignore_errors=True)
    keystore.ManagerKeys(data_dir).remove()
    (cert_dir(data_dir) / "swarm-root-ca.key").unlink(missing_ok=True)


def leave_raft(data_dir: Path, managers: list[str], raft_addr: str) -> None:
    try:
        creds = load_node_credentials(data_dir)
    except keystore.KeyStoreError:
        return  # locked (autolock): a forced leave; the others see it unreachable
    try:
        _leader_call(creds, managers, lambda stub: stub.LeaveRaft(
            capb.LeaveRaftRequest(raft_addr=raft_addr), timeout=15))
    except JoinError:
        pass  # forced leave: the others will see this manager unreachable


def forget(data_dir: Path) -> None:
    """Removes the node's certificates and raft state (leave)."""
    shutil.rmtree(cert_dir(data_dir), ignore_errors=True)
    shutil.rmtree(data_dir / "raft", ignore_errors=True)


def renewal_due(creds: pkinode.NodeCredentials) -> datetime.datetime:
    return pkinode.renewal_time(creds.cert_pem)
