"""Issue 4: the authorization table enforced call by call on a real lab.

Every RPC a manager serves is called over TCP three ways: with a manager's
certificate, with a worker's certificate (both taken from real nodes of the
lab, so the node-membership check passes and only the role decides), and
with no certificate (on the join port, the only one that accepts a caller
without one). The outcome must match `tests.authz_matrix.EXPECTED`.
"""
from __future__ import annotations

import grpc
import pytest

from node import credentials
from node.credentials import JOIN_PORT_OFFSET
from lab.cluster import Lab
from pki import node as pkinode
from pki import tls
from proto import ca_pb2 as capb
from proto import ca_pb2_grpc
from tests.authz_matrix import (EXPECTED, MANAGER, NOCERT, WORKER, call, methods,
                                refused_by_authz)
from tests.labfixtures import module_lab

pytestmark = pytest.mark.e2e
PORT = 2377

lab = module_lab(1, 1)


def _channels(lab: Lab) -> dict[str, grpc.Channel]:
    ip = lab.ip("manager1")
    manager = credentials.load_node_credentials(lab.data_dir("manager1"))
    worker = pkinode.load(lab.data_dir("worker1"))
    return {
        MANAGER: grpc.secure_channel(f"{ip}:{PORT}", tls.client_credentials(manager),
                                     options=tls.channel_options()),
        WORKER: grpc.secure_channel(f"{ip}:{PORT}", tls.client_credentials(worker),
                                    options=tls.channel_options()),
        NOCERT: grpc.secure_channel(f"{ip}:{PORT + JOIN_PORT_OFFSET}",
                                    tls.join_credentials(manager.ca_pem),
                                    options=tls.channel_options()),
    }


def test_every_rpc_with_each_kind_of_caller(lab: Lab) -> None:
    channels = _channels(lab)
    try:
        wrong = []
        for path, method in methods():
            for caller, channel in channels.items():
                err = call(channel, path, method)
                if err is not None and err.code() == grpc.StatusCode.UNKNOWN:
                    wrong.append(f"{path} as {caller}: the server failed: {err.details()}")
                    continue
                refused = refused_by_authz(err)
                if refused == (caller in EXPECTED[path]):
                    wrong.append(f"{path} as {caller}: "
                                 + (f"{err.code().name} {err.details()}" if err else "answered"))
                elif refused:
                    # no certificate: unauthenticated; a method open to no remote caller
                    # (LocalNode) is denied to everyone, whoever they are
                    want = grpc.StatusCode.UNAUTHENTICATED \
                        if caller == NOCERT and EXPECTED[path] else grpc.StatusCode.PERMISSION_DENIED
                    if err.code() != want:
                        wrong.append(f"{path} as {caller}: {err.code().name}, want {want.name}")
        assert not wrong, "\n".join(wrong)
    finally:
        for channel in channels.values():
            channel.close()
    # the worker whose session the test borrowed is still a Ready member
    seen: list[str] = []

    def worker1_ready() -> bool:
        res = lab.swarm("manager1", "node", "ls")
        seen[:] = [f"exit {res.returncode}", res.stdout, res.stderr]
        return any("worker1" in line and "Ready" in line for line in res.stdout.splitlines())
    try:
        lab.wait_for(worker1_ready, 30, "worker1 Ready again")
    except AssertionError as err:
        raise AssertionError(f"{err}; last node ls: {seen}") from None


def test_the_mutual_tls_port_refuses_a_caller_without_certificate(lab: Lab) -> None:
    ca_pem = credentials.load_node_credentials(lab.data_dir("manager1")).ca_pem
    with grpc.secure_channel(f"{lab.ip('manager1')}:{PORT}", tls.join_credentials(ca_pem),
                             options=tls.channel_options()) as channel:
        with pytest.raises(grpc.RpcError) as err:
            ca_pb2_grpc.NodeCAStub(channel).GetRootCACertificate(
                capb.GetRootCACertificateRequest(), timeout=10)
    # the TLS handshake itself fails: no call reaches the server
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_raft_membership_refuses_requests_without_an_address(lab: Lab) -> None:
    manager = credentials.load_node_credentials(lab.data_dir("manager1"))
    before = lab.swarm("manager1", "node", "ls").stdout
    with grpc.secure_channel(f"{lab.ip('manager1')}:{PORT}", tls.client_credentials(manager),
                             options=tls.channel_options()) as channel:
        stub = ca_pb2_grpc.RaftMembershipStub(channel)
        for rpc, request in ((stub.JoinRaft, capb.JoinRaftRequest()),
                             (stub.LeaveRaft, capb.LeaveRaftRequest()),
                             (stub.JoinRaft, capb.JoinRaftRequest(raft_addr="not an address"))):
            with pytest.raises(grpc.RpcError) as err:
                rpc(request, timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value
            assert "raft address" in err.value.details()
    assert lab.swarm("manager1", "node", "ls").stdout.count("Ready") == before.count("Ready")


def test_the_raft_port_serves_only_managers(lab: Lab) -> None:
    """Raft between managers is mutual TLS: a manager certificate of the cluster gets
    a connection (held open for raft), a worker's certificate or a plain-TCP raft
    client is cut off with nothing sent; admin commands are not served to anyone."""
    import socket

    from node.state import NodeState
    from tests.test_raft_tls import frame, raw_tls_client, read_until_closed, unframe

    raft_addr = NodeState.load(lab.data_dir("manager1")).raft_addr
    manager = credentials.load_node_credentials(lab.data_dir("manager1"))
    worker = pkinode.load(lab.data_dir("worker1"))
    with raw_tls_client(raft_addr, manager, manager.ca_pem) as conn:
        conn.settimeout(1.0)
        with pytest.raises(socket.timeout):  # accepted: waits for a raft address
            conn.recv(65536)
        conn.settimeout(10)
        conn.sendall(frame(["status"]))
        got, _ = read_until_closed(conn)
        assert got == b""
    with raw_tls_client(raft_addr, worker, worker.ca_pem) as conn:
        got, _ = read_until_closed(conn)  # closed right after the handshake
    assert got == b""
    host, port = raft_addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(frame(["status"]) + frame("readonly"))
        got, _ = read_until_closed(conn)
    assert unframe(got) == [] and (got == b"" or got[0] == 0x15)
