"""Which manager of a lab leads, as every running manager sees it.

Shared by the failure tests and the cluster benchmarks: a leader counts only
when every running manager names the same single leader in `node ls` and
that leader accepts a write.
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional

import grpc

from lab.cluster import Lab
from proto import control_pb2 as cpb
from proto import control_pb2_grpc


def named_leaders(api: control_pb2_grpc.ControlStub) -> list[str]:
    """Hostnames of the managers that one manager's node list marks as leader."""
    nodes = api.ListNodes(cpb.ListNodesRequest(), timeout=5).nodes
    return sorted(n.description.hostname for n in nodes if n.manager_status.leader)


def agreed_leader(lab: Lab, managers: Iterable[str],
                  api: Callable[[str], control_pb2_grpc.ControlStub],
                  writes: Callable[[str], bool],
                  views: Optional[dict[str, object]] = None) -> Optional[str]:
    """The leader every running manager names, if it accepts a write (`writes(name)`); else None.

    `views`, when given, receives what each manager answered (a list of
    leaders or a gRPC status name), for a failure message.
    """
    seen = set()
    for name in managers:
        if lab.pid(name) is None:
            continue
        try:
            found = named_leaders(api(name))
        except grpc.RpcError as exc:
            if views is not None:
                views[name] = exc.code().name
            return None
        if views is not None:
            views[name] = found
        if len(found) != 1:
            return None
        seen.add(found[0])
    if len(seen) != 1:
        return None
    leader = seen.pop()
    return leader if writes(leader) else None
