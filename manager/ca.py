"""The NodeCA and RaftMembership gRPC services of a manager, and root rotation.

NodeCA issues node certificates: to a joining node that presents a valid join
token (the token's secret decides the role), and to a node renewing its own
certificate over mutual TLS (the node object's desired role decides).
RaftMembership lets a node holding a manager certificate enter or leave the
managers' raft group.

Root CA rotation (``swarm ca --rotate``) lives in the cluster object:
``start_rotation`` puts a new root (generated, or the operator's from
``swarm ca --rotate --ca-cert --ca-key``), its key and the old root's
cross-signature in ``cluster.root_rotation``; from then on every manager signs with the new
key (``signing_root``) and answers with both roots (``trusted_roots``); the
dispatcher tells nodes the roots so they renew; ``RotationReconciler`` (on the
leader) finishes the rotation once every node reports a certificate from the
new root: the new root becomes ``root_ca_cert`` (its key ``root_ca_key``), the
join tokens get its digest, and nodes drop the old root. API answers never
carry the keys (``redacted``). A root rotated to without its key (``swarm ca
--rotate --ca-cert --external-ca``) signs through its external CA instead
(``manager.externalca``): the rotation holds no key and NodeCA posts each CSR there.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Callable, Optional

import grpc

from manager import externalca, objects
from manager.background import LeaderTask
from manager.objects import copy
from pki import givenroot, rotation, tls, tokens
from pki.ca import RootCA, cert_pem
from proto import ca_pb2 as capb
from proto import ca_pb2_grpc
from proto import model
from proto import objects_pb2 as pb
from raft import actions, errors
from raft.api import ObjectStore

DEFAULT_EXPIRY_S = 90 * 24 * 3600
BAD_TOKEN = ("invalid join token: the token does not grant access to this swarm; "
             "get a current one with 'swarm join-token worker|manager' on a manager")


def cluster_cert_expiry(cluster: Optional[pb.Cluster]) -> float:
    """Seconds of life for the node certificates this cluster issues."""
    if cluster is not None and cluster.spec.ca_config.node_cert_expiry.nanos > 0:
        return model.seconds(cluster.spec.ca_config.node_cert_expiry)
    return DEFAULT_EXPIRY_S


def cert_expiry(store: ObjectStore) -> float:
    return cluster_cert_expiry(cluster_of(store))


def cluster_of(store: ObjectStore) -> pb.Cluster | None:
    return next(iter(store.list("cluster")), None)


def current_root(cluster: pb.Cluster | None, disk_root: RootCA) -> RootCA:
    """The cluster's root CA with its key: the one a rotation replaced it with
    (kept in the store), else the one on this manager's disk. A root rotated to
    without its key (an external CA holds it) comes without a key."""
    if cluster is not None and cluster.root_ca_key:
        return RootCA.from_pem(cluster.root_ca_cert, cluster.root_ca_key)
    if cluster is not None and cluster.root_ca_cert and \
            not givenroot.same_certificate(cluster.root_ca_cert, disk_root.cert_pem):
        return RootCA.from_pem(cluster.root_ca_cert)
    return disk_root


def signing_root(cluster: pb.Cluster | None, disk_root: RootCA) -> RootCA:
    """The CA that signs node certificates now (the new key during a rotation)."""
    if cluster is not None and cluster.HasField("root_rotation"):
        rot = cluster.root_rotation
        return rotation.issuing_ca(rot.ca_cert, rot.ca_key, rot.cross_signed_ca_cert)
    return current_root(cluster, disk_root)


def trusted_roots(cluster: pb.Cluster | None, disk_root: RootCA) -> bytes:
    """Every root nodes trust: the cluster's, plus the new one during a rotation."""
    if cluster is None:
        return disk_root.cert_pem
    new = cluster.root_rotation.ca_cert if cluster.HasField("root_rotation") else b""
    return rotation.trust_bundle(cluster.root_ca_cert or disk_root.cert_pem, new)


def issuing_cert(cluster: pb.Cluster) -> bytes:
    """The root certificate whose key signs now."""
    if cluster.HasField("root_rotation"):
        return cluster.root_rotation.ca_cert
    return cluster.root_ca_cert


def start_rotation(cluster: pb.Cluster, disk_root: RootCA,
                   new_root: Optional[RootCA] = None) -> pb.RootRotation:
    """A rotation to ``new_root`` (the operator's, `swarm ca --rotate --ca-cert`) or
    to a generated root, cross-signed by the cluster's current root (a rotation
    already in progress is replaced: its root was never the cluster's)."""
    rot = rotation.begin(current_root(cluster, disk_root), new_root)
    return pb.RootRotation(ca_cert=rot.new_root.cert_pem,
                           ca_key=rot.new_root.key_pem if rot.new_root.can_sign else b"",
                           cross_signed_ca_cert=rot.cross_signed_pem)


def finished_rotation(cluster: pb.Cluster) -> pb.Cluster:
    """The cluster object once its rotation is over: the new root alone, and
    join tokens that keep their secrets but name the new root's digest."""
    new = copy(cluster)
    rot = cluster.root_rotation
    new.root_ca_cert = rot.ca_cert
    new.root_ca_key = rot.ca_key
    new.ClearField("root_rotation")
    for role in ("worker", "manager"):
        old = getattr(cluster.join_tokens, role)
        if old:
            parsed = tokens.parse(old)
            setattr(new.join_tokens, role, str(tokens.JoinToken(
                tokens.ca_digest(rot.ca_cert), parsed.secret)))
    return new


def tls_info_of(node: pb.Node) -> rotation.TLSInfo:
    info = node.description.tls_info
    return rotation.TLSInfo(info.trust_root, info.cert_issuer_subject, info.cert_issuer_public_key)


def rotation_progress(cluster: pb.Cluster, nodes: list[pb.Node]) -> tuple[int, int]:
    """(nodes holding a certificate from the new root, nodes) of a rotation."""
    return rotation.progress([tls_info_of(n) for n in nodes], cluster.root_rotation.ca_cert)


def redacted(cluster: pb.Cluster) -> pb.Cluster:
    """A copy without the root keys, for API answers."""
    out = copy(cluster)
    out.ClearField("root_ca_key")
    if out.HasField("root_rotation"):
        out.root_rotation.ClearField("ca_key")
    return out


class RotationReconciler(LeaderTask):
    """On the leader: finishes a root rotation once every node has rotated."""

    def __init__(self, store: ObjectStore, node_id: str) -> None:
        self.store = store
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})
        self._last: tuple[int, int] | None = None

    async def _run(self) -> None:
        # Subscribe before the first check, so a node that rotates in between is not missed.
        stream = self.store.watch_async(asyncio.get_running_loop())
        await self.check()
        async for events in stream:
            if any(ev.object.WhichOneof("object") in ("node", "cluster") for ev in events):
                await self.check()

    async def check(self) -> bool:
        """Finishes the rotation when it is complete; True when it did."""
        for _ in range(20):
            cluster = cluster_of(self.store)
            if cluster is None or not cluster.HasField("root_rotation"):
                return False
            done, total = rotation_progress(cluster, self.store.list("node"))
            if (done, total) != self._last:
                self._last = (done, total)
                self.log.info("root rotation: %d of %d nodes hold a certificate from the new root",
                              done, total)
            if total == 0 or done < total:
                return False
            try:
                await self.store.acommit([actions.update(finished_rotation(cluster))])
            except errors.Conflict:
                continue
            except (errors.NotLeader, errors.Unavailable) as exc:
                self.log.warning("cannot finish the root rotation yet: %s", exc)
                return False
            self.log.info("root rotation finished: the new root is the cluster's only root")
            return True
        return False


def manager_addrs(store: ObjectStore) -> list[str]:
    return sorted(n.manager_status.addr for n in store.list("node")
                  if n.role == pb.MANAGER and n.manager_status.addr)


def _ip_of(addr: str) -> list[str]:
    host = addr.rsplit(":", 1)[0]
    return [host] if host else []


class NodeCAServicer(ca_pb2_grpc.NodeCAServicer):
    """Signs node certificates with the cluster's root CA."""

    def __init__(self, store: ObjectStore, node_id: str, root: RootCA) -> None:
        self.store = store
        self.root = root
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

    def _cluster(self) -> pb.Cluster:
        cluster = cluster_of(self.store)
        if cluster is None:
            raise errors.Unavailable("the cluster is not initialised yet")
        return cluster

    async def _sign(self, csr: bytes, node_id: str, role: str, cluster_id: str,
                    addr: str) -> bytes:
        """The node's certificate chain: signed here with the root's key, or by the
        root's external CA when the cluster does not hold that key (ExternalCAError)."""
        cluster = cluster_of(self.store)
        signer = signing_root(cluster, self.root)
        ips = _ip_of(addr) if role == "manager" else []
        if signer.can_sign or cluster is None:
            return signer.issue(csr, node_id, role, cluster_id,
                                expiry=datetime.timedelta(seconds=cert_expiry(self.store)),
                                ip_addresses=ips)
        cas = externalca.for_root(cluster, signer.cert_pem)
        leaf = await asyncio.get_running_loop().run_in_executor(
            None, externalca.sign, cas, csr, node_id, role, cluster_id, ips, signer.cert_pem)
        self.log.info("certificate for node %s signed by the external CA", node_id)
        return leaf + b"".join(cert_pem(c) for c in signer.intermediates)

    async def _signed(self, context, csr: bytes, node_id: str, role: str, cluster_id: str,
                      addr: str) -> bytes:
        """`_sign`, its refusals turned into gRPC errors (a bad CSR, an external CA down)."""
        try:
            return await self._sign(csr, node_id, role, cluster_id, addr)
        except externalca.ExternalCAError as exc:
            self.log.warning("external CA: %s", exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"external CA: {exc}")
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad certificate request: {exc}")
        raise AssertionError("unreachable: abort raises")

    def _roots(self) -> bytes:
        return trusted_roots(cluster_of(self.store), self.root)

    async def GetRootCACertificate(self, request, context):
        cluster = cluster_of(self.store)
        return capb.GetRootCACertificateResponse(
            certificate=cluster.root_ca_cert if cluster is not None and cluster.root_ca_cert
            else self.root.cert_pem)

    async def IssueNodeCertificate(self, request, context):
        cluster = self._cluster()
        try:
            tokens.parse(request.token)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        role = tokens.role_for_token(request.token, cluster.join_tokens.worker,
                                     cluster.join_tokens.manager)
        if role is None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, BAD_TOKEN)
            raise AssertionError("unreachable: abort raises")
        node_id = model.new_id()
        cert = await self._signed(context, request.csr, node_id, role, cluster.id,
                                  request.advertise_addr)
        node = pb.Node(id=node_id, role=pb.MANAGER if role == "manager" else pb.WORKER)
        node.spec.availability = request.availability
        node.spec.desired_role = node.role
        node.description.CopyFrom(request.description)
        node.status.state = pb.NodeStatus.UNKNOWN
        if role == "manager":
            node.manager_status.addr = request.advertise_addr
            node.manager_status.raft_addr = request.raft_addr
            node.manager_status.reachability = pb.ManagerStatus.UNKNOWN
        try:
            await self.store.acommit([actions.create(node)])
        except (errors.NotLeader, errors.Unavailable) as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        self.log.info("node %s (%s) joined as a %s", node_id, request.description.hostname, role)
        return capb.IssueNodeCertificateResponse(
            node_id=node_id, certificate=cert, root_ca=self._roots(),
            role=node.role, cluster_id=cluster.id, manager_addrs=manager_addrs(self.store))

    async def RenewNodeCertificate(self, request, context):
        ident = await tls.require_role(context, "worker", "manager")
        node = objects.get(self.store, pb.Node, ident.node_id)
        if node is None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"node {ident.node_id} was removed from the swarm")
            raise AssertionError("unreachable: abort raises")
        role = "manager" if node.spec.desired_role == pb.MANAGER else "worker"
        cert = await self._signed(context, request.csr, node.id, role, ident.cluster_id,
                                  node.manager_status.addr)
        return capb.IssueNodeCertificateResponse(
            node_id=node.id, certificate=cert, root_ca=self._roots(),
            role=pb.MANAGER if role == "manager" else pb.WORKER, cluster_id=ident.cluster_id,
            manager_addrs=manager_addrs(self.store))


def raft_addr_problem(addr: str) -> str | None:
    """Why `addr` is not a usable raft endpoint (HOST:PORT), or None when it is."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536 \
            or any(c.isspace() for c in host):
        return (f"invalid raft address {addr!r}: expected HOST:PORT, for example "
                "10.0.0.2:2378")
    return None


async def _check_raft_addr(addr: str, context: grpc.aio.ServicerContext) -> None:
    problem = raft_addr_problem(addr)
    if problem is not None:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)


class RaftMembershipServicer(ca_pb2_grpc.RaftMembershipServicer):
    """Adds and removes managers' raft endpoints (on the leader)."""

    def __init__(self, store: ObjectStore, node_id: str, raft_key: bytes, root: RootCA,
                 is_leader: Callable[[], bool]) -> None:
        self.store = store
        self.raft_key = raft_key
        self.root = root
        self.is_leader = is_leader
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

    async def JoinRaft(self, request, context):
        ident = await tls.require_role(context, "manager")
        await _check_raft_addr(request.raft_addr, context)
        if not self.is_leader():
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"not the leader; the leader's raft endpoint is {self.store.leader()}")
        members = set(self.store.members())
        if request.raft_addr not in members:
            # The change commits only once the new manager runs (a majority of the new
            # group must hold it), so it is proposed here and not waited for.
            try:
                await asyncio.get_running_loop().run_in_executor(
                    None, self.store.add_member, request.raft_addr, 0.5)
            except errors.Unavailable:
                pass
            except errors.StoreError as exc:
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot add raft member: {exc}")
            self.log.info("manager %s enters the raft group at %s", ident.node_id,
                          request.raft_addr)
        members.add(request.raft_addr)
        root = current_root(cluster_of(self.store), self.root)
        return capb.JoinRaftResponse(members=sorted(members), raft_key=self.raft_key,
                                     root_ca_key=root.key_pem if root.can_sign else b"")

    async def LeaveRaft(self, request, context):
        await tls.require_role(context, "manager")
        await _check_raft_addr(request.raft_addr, context)
        if not self.is_leader():
            await context.abort(grpc.StatusCode.UNAVAILABLE, "not the leader")
        if request.raft_addr in self.store.members():
            await asyncio.get_running_loop().run_in_executor(
                None, self.store.remove_member, request.raft_addr)
        return capb.LeaveRaftResponse()
