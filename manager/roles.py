"""Role changes of nodes: the quorum rule and the order of a demotion.

Pure: given the manager nodes as the store has them, says whether taking one
away keeps a majority of the remaining managers reachable, and which step of a
pending demotion comes next (`demotion_steps`; manager.rolemanager acts on it).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable, Optional

from manager.objects import copy
from proto import objects_pb2 as pb


def quorum_problem(managers: Iterable[pb.Node], leaving_id: str) -> Optional[str]:
    """Why removing `leaving_id` from the managers would cost the swarm its quorum, or None."""
    managers = list(managers)
    remaining = [m for m in managers if m.id != leaving_id]
    if not remaining:
        return "it is the last manager of the swarm"
    reachable = sum(1 for m in remaining
                    if m.manager_status.reachability == pb.ManagerStatus.REACHABLE
                    or m.manager_status.leader)
    needed = len(remaining) // 2 + 1
    if reachable < needed:
        return (f"only {reachable} of the {len(remaining)} remaining managers are reachable and "
                f"{needed} are needed for a quorum")
    return None


def demotion_pending(node: pb.Node) -> bool:
    """A demotion was asked for (desired role worker) and the node is still a manager."""
    return node.role == pb.MANAGER and node.spec.desired_role == pb.WORKER


class Step(enum.Enum):
    """What the role manager does next for a node whose demotion is pending."""
    REMOVE_MEMBER = "take its raft endpoint out of the raft group"
    RECORD_WORKER = "record it as a worker in the store"
    WAIT = "wait"


@dataclass(frozen=True)
class Demotion:
    """The next step of one pending demotion (`reason` says why it waits)."""
    node: pb.Node
    step: Step
    reason: str = ""


def demotion_steps(nodes: Iterable[pb.Node], members: Iterable[str],
                   leader_id: str) -> list[Demotion]:
    """The next step of every pending demotion, decided on the leader.

    Step 1 takes the node's raft endpoint out of the raft group (it waits while
    that would cost the swarm its quorum, and never removes the leader itself);
    step 2, once the endpoint is out, records the node a worker. A leader that
    takes over in between sees the endpoint already out and does step 2, so
    the store never says worker while raft still counts the node, and raft
    never stays without a node the store calls a manager.
    """
    nodes = list(nodes)
    members = set(members)
    managers = [n for n in nodes if n.role == pb.MANAGER]
    out = []
    for node in nodes:
        if not demotion_pending(node):
            continue
        if node.manager_status.raft_addr not in members:
            out.append(Demotion(node, Step.RECORD_WORKER))
        elif node.id == leader_id:
            out.append(Demotion(node, Step.WAIT, "it is the leader"))
        else:
            problem = quorum_problem(managers, node.id)
            if problem:
                out.append(Demotion(node, Step.WAIT, problem))
            else:
                out.append(Demotion(node, Step.REMOVE_MEMBER))
    return out


def as_worker(node: pb.Node) -> pb.Node:
    """The node object once it is out of raft: role worker, no manager status."""
    new = copy(node)
    new.role = pb.WORKER
    new.ClearField("manager_status")
    return new
