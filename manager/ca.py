"""The NodeCA and RaftMembership gRPC services of a manager.

NodeCA issues node certificates: to a joining node that presents a valid join
token (the token's secret decides the role), and to a node renewing its own
certificate over mutual TLS (the node object's desired role decides).
RaftMembership lets a node holding a manager certificate enter or leave the
managers' raft group.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

import grpc

from pki import tls, tokens
from pki.ca import RootCA
from proto import ca_pb2 as capb
from proto import ca_pb2_grpc
from proto import model
from proto import objects_pb2 as pb
from raft import actions, errors

DEFAULT_EXPIRY_S = 90 * 24 * 3600
BAD_TOKEN = ("invalid join token: the token does not grant access to this swarm; "
             "get a current one with 'swarm join-token worker|manager' on a manager")


def _copy(obj: Any) -> Any:
    new = type(obj)()
    new.CopyFrom(obj)
    return new


def cert_expiry(store: Any) -> float:
    cluster = next(iter(store.list("cluster")), None)
    if cluster is not None and cluster.spec.ca_config.node_cert_expiry.nanos > 0:
        return model.seconds(cluster.spec.ca_config.node_cert_expiry)
    return DEFAULT_EXPIRY_S


def manager_addrs(store: Any) -> list[str]:
    return sorted(n.manager_status.addr for n in store.list("node")
                  if n.role == pb.MANAGER and n.manager_status.addr)


def _ip_of(addr: str) -> list[str]:
    host = addr.rsplit(":", 1)[0]
    return [host] if host else []


class NodeCAServicer(ca_pb2_grpc.NodeCAServicer):
    """Signs node certificates with the cluster's root CA."""

    def __init__(self, store: Any, node_id: str, root: RootCA) -> None:
        self.store = store
        self.root = root
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

    def _cluster(self) -> pb.Cluster:
        cluster = next(iter(self.store.list("cluster")), None)
        if cluster is None:
            raise errors.Unavailable("the cluster is not initialised yet")
        return cluster

    def _sign(self, csr: bytes, node_id: str, role: str, cluster_id: str, addr: str) -> bytes:
        import datetime
        return self.root.issue(csr, node_id, role, cluster_id,
                               expiry=datetime.timedelta(seconds=cert_expiry(self.store)),
                               ip_addresses=_ip_of(addr) if role == "manager" else ())

    async def GetRootCACertificate(self, request, context):
        return capb.GetRootCACertificateResponse(certificate=self.root.cert_pem)

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
        node_id = model.new_id()
        try:
            cert = self._sign(request.csr, node_id, role, cluster.id, request.advertise_addr)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad certificate request: {exc}")
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
            node_id=node_id, certificate=cert, root_ca=self.root.cert_pem,
            role=node.role, cluster_id=cluster.id, manager_addrs=manager_addrs(self.store))

    async def RenewNodeCertificate(self, request, context):
        ident = await tls.require_role(context, "worker", "manager")
        node = self.store.get("node", ident.node_id)
        if node is None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"node {ident.node_id} was removed from the swarm")
        role = "manager" if node.spec.desired_role == pb.MANAGER else "worker"
        try:
            cert = self._sign(request.csr, node.id, role, ident.cluster_id,
                              node.manager_status.addr)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad certificate request: {exc}")
        return capb.IssueNodeCertificateResponse(
            node_id=node.id, certificate=cert, root_ca=self.root.cert_pem,
            role=pb.MANAGER if role == "manager" else pb.WORKER, cluster_id=ident.cluster_id,
            manager_addrs=manager_addrs(self.store))


def raft_addr_problem(addr: str) -> str | None:
    """Why `addr` is not a usable raft endpoint (HOST:PORT), or None when it is."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 \
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

    def __init__(self, store: Any, node_id: str, raft_key: bytes, root: RootCA,
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
        return capb.JoinRaftResponse(members=sorted(members), raft_key=self.raft_key,
                                     root_ca_key=self.root.key_pem)

    async def LeaveRaft(self, request, context):
        await tls.require_role(context, "manager")
        await _check_raft_addr(request.raft_addr, context)
        if not self.is_leader():
            await context.abort(grpc.StatusCode.UNAVAILABLE, "not the leader")
        if request.raft_addr in self.store.members():
            await asyncio.get_running_loop().run_in_executor(
                None, self.store.remove_member, request.raft_addr)
        return capb.LeaveRaftResponse()
