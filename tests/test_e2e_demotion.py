"""End to end: a demotion survives the death of the leader between its two steps.

A demotion is recorded in the store first (desired role worker); the leader's
role manager then (1) takes the node's raft endpoint out of the raft group and
(2) records the node a worker (manager/rolemanager.py). Here the leader dies
right after step 1, through the role manager's documented test hook (a file in
the manager's data directory that makes it exit at that point). The cluster
must converge: the demoted node ends up a worker in the store *and* out of raft,
never one without the other, and it restarts as a worker.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import grpc
import pytest

from lab import images
from lab.cluster import Lab
from manager.rolemanager import FAULT_AFTER_RAFT_REMOVAL
from pki import keystore, tls
from pki import node as pkinode
from proto import ca_pb2 as capb
from proto import ca_pb2_grpc
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb
from tests.labfixtures import module_lab

pytestmark = pytest.mark.e2e
PORT = 2377

lab = module_lab(3, 0)


def nodes_seen_by(lab: Lab, name: str) -> dict[str, pb.Node]:
    """The node objects in `name`'s local store (reads are local on any manager), by ID."""
    with grpc.insecure_channel(lab.host(name)) as channel:
        resp = control_pb2_grpc.ControlStub(channel).ListNodes(cpb.ListNodesRequest(), timeout=10)
    return {n.id: n for n in resp.nodes}


def raft_members(lab: Lab, asker: str, candidates: list[str]) -> Optional[list[str]]:
    """The raft group as the leader has it, or None when no candidate leads.

    Asked with `asker`'s manager certificate: JoinRaft for an endpoint that is
    already a member changes nothing and answers the member list.
    """
    data_dir = lab.data_dir(asker)
    dek = keystore.ManagerKeys(data_dir).open()
    creds = pkinode.load(data_dir, kek=keystore.private_key_passphrase(dek))
    own_addr = nodes_seen_by(lab, asker)[lab.node_id(asker)].manager_status.raft_addr
    for name in candidates:
        with grpc.secure_channel(f"{lab.ip(name)}:{PORT}", tls.client_credentials(creds),
                                 options=tls.channel_options()) as channel:
            try:
                resp = ca_pb2_grpc.RaftMembershipStub(channel).JoinRaft(
                    capb.JoinRaftRequest(raft_addr=own_addr), timeout=5)
            except grpc.RpcError:
                continue
        return sorted(resp.members)
    return None


def hook(lab: Lab, name: str) -> Path:
    return lab.data_dir(name) / FAULT_AFTER_RAFT_REMOVAL


def test_leader_dies_between_raft_removal_and_store_update(lab: Lab) -> None:
    managers = lab.names()
    assert len(managers) == 3
    seen = nodes_seen_by(lab, managers[0])
    by_id = {lab.node_id(name): name for name in managers}
    leader = lab.wait_for(lambda: next((by_id[i] for i, n in nodes_seen_by(lab, managers[0])
                                        .items() if n.manager_status.leader), None),
                          30, "a leader recorded in the store")
    demoted = next(name for name in managers if name != leader)
    other = next(name for name in managers if name not in (leader, demoted))
    demoted_id = lab.node_id(demoted)
    demoted_raft = seen[demoted_id].manager_status.raft_addr
    assert demoted_raft in (raft_members(lab, other, [leader]) or [])

    # whichever of the two others leads when step 1 is done dies right after it
    for name in (leader, other):
        hook(lab, name).write_text("test hook\n")
    try:
        out = lab.swarm(other, "node", "demote", demoted).stdout
        assert f"Manager {demoted} demoted in the swarm." in out
        dead = lab.wait_for(lambda: next((n for n in (leader, other) if lab.pid(n) is None),
                                         None), 60, "the leader exiting after step 1")
        survivor = other if dead == leader else leader
        assert not hook(lab, dead).exists()     # the hook fired once and is spent
        hook(lab, survivor).unlink()
        assert "exiting between the two steps of a demotion" in \
            lab.log_path(dead).read_text(errors="replace")

        # Between the steps: the store still says manager (to be demoted); only the
        # next leader's role manager can record it a worker, once it is out of raft.
        between = nodes_seen_by(lab, survivor)[demoted_id]
        assert between.role == pb.MANAGER and between.spec.desired_role == pb.WORKER

        # Two of the three raft members were the dead leader and the survivor: the
        # dead one must come back for a quorum (the demoted node is out of raft).
        lab.start(dead)
        lab.wait_running(dead, 60)

        def converged() -> bool:
            node = nodes_seen_by(lab, survivor).get(demoted_id)
            if node is None or node.role != pb.WORKER or node.HasField("manager_status"):
                return False
            members = raft_members(lab, survivor, [survivor, dead])
            return members is not None and demoted_raft not in members and len(members) == 2

        lab.wait_for(converged, 90, "the demoted node a worker in the store and out of raft",
                     interval=0.5)
        lab.wait_for(lambda: "not a swarm manager" in
                     lab.swarm(demoted, "node", "ls", check=False).stderr, 60,
                     "the demoted node restarted as a worker")
        lab.wait_for(lambda: nodes_seen_by(lab, survivor)[demoted_id].status.state
                     == pb.NodeStatus.READY, 60, "the demoted node ready as a worker")
        # the store and raft agree for good: the two managers left keep a working quorum
        for node in nodes_seen_by(lab, dead).values():
            assert (node.role == pb.MANAGER) == (node.id != demoted_id)
        lab.swarm(survivor, "service", "create", "-d", "--name", "afterkill", "--replicas", "0",
                  images.ensure_demo_image())
        lab.swarm(dead, "service", "rm", "afterkill")
    finally:
        for name in managers:
            hook(lab, name).unlink(missing_ok=True)
