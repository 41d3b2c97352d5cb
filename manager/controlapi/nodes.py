"""Control API rules for nodes: updates (labels, availability, role) and removal.

Pure functions from the objects the store holds and the request to the objects
to write, or a `Refusal`. A demotion is only *recorded* here (the node's
`spec.desired_role` becomes worker while its `role` stays manager); the role
manager on the leader (manager.rolemanager) then takes the node out of raft
and records it a worker, in that order (design/internals.md, "Demotion").
"""
from __future__ import annotations

from typing import Iterable

from manager import roles, validation
from manager.controlapi.common import check_version, invalid, precondition
from manager.objects import copy
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb
from proto import store_pb2
from raft import actions


def check_spec(spec: pb.NodeSpec) -> None:
    """Refuses empty label keys and roles or availabilities the API does not define."""
    for key in spec.annotations.labels:
        if not key:
            raise invalid("node label keys must not be empty")
    try:
        validation.check_enums("node", spec)
    except validation.InvalidSpec as exc:
        raise invalid(str(exc)) from None


def check_demotion(node: pb.Node, managers: Iterable[pb.Node], self_id: str) -> None:
    """Refuses to demote a manager when the swarm would lose its quorum, or the leader."""
    problem = roles.quorum_problem(managers, node.id)
    if problem:
        raise precondition(f"can't demote node {node.id}: {problem}")
    if node.id == self_id or node.manager_status.leader:
        raise precondition(
            f"can't demote node {node.id}: it is the leader; demote it from another manager "
            "once another leader is elected (e.g. after 'swarm leave --force' or a restart)")


def check_promotion(node: pb.Node) -> None:
    """Refuses to promote a manager whose demotion is still being carried out."""
    if roles.demotion_pending(node):
        raise precondition(
            f"can't promote node {node.id}: its demotion is still in progress; "
            "promote it again once it is a worker")


def updated_node(node: pb.Node, request: cpb.UpdateNodeRequest, managers: Iterable[pb.Node],
                 self_id: str) -> pb.Node:
    """The node with the requested spec; a demotion is recorded as the desired role only."""
    check_version("node", node, request.node_version)
    check_spec(request.spec)
    wanted = request.spec.desired_role
    if node.role == pb.MANAGER and wanted == pb.WORKER and node.spec.desired_role != pb.WORKER:
        check_demotion(node, managers, self_id)
    if wanted == pb.MANAGER:
        check_promotion(node)
    new = copy(node)
    new.spec.CopyFrom(request.spec)
    return new


def removal(node: pb.Node, tasks: Iterable[pb.Task], force: bool,
            self_id: str) -> list[store_pb2.StoreAction]:
    """Removes a node that is down (or any worker with force); its live tasks become orphans."""
    if node.id == self_id:
        raise precondition("a node cannot remove itself: use 'swarm leave' on it instead")
    if node.role == pb.MANAGER:
        raise precondition(
            f"node {node.id} is a cluster manager and is a member of the raft cluster. "
            "It must be demoted to worker before removal")
    if node.status.state != pb.NodeStatus.DOWN and not force:
        raise precondition(
            f"node {node.id} is not down and can't be removed: stop it first or use --force")
    acts = [actions.remove(node)]
    for task in tasks:
        if task.node_id == node.id and not model.is_terminal(task.status.state):
            t = copy(task)
            t.status.state = pb.ORPHANED
            t.status.message = "node removed"
            t.status.timestamp.CopyFrom(model.timestamp())
            acts.append(actions.update(t))
    return acts
