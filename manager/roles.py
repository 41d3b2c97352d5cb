"""Role changes of nodes: the quorum rule for demoting or removing managers.

Pure: given the manager nodes as the store has them, says whether taking one
away keeps a majority of the remaining managers reachable.
"""
from __future__ import annotations

from typing import Iterable, Optional

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
