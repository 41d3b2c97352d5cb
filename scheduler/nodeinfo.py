"""What the scheduler knows about each node while it places tasks.

`NodeInfo` accumulates the load on one node: reserved CPU and memory, the
generic resources tasks hold (scheduler/generic.py), active task counts
(overall and per service) and host-mode ports in use.  It is built from the
tasks already in the store and updated as the scheduler places more tasks in
the same call, so one call never overfills a node.

Counting rules (as Swarm's scheduler): a task occupies resources and ports
while its observed state has not reached a terminal state; it counts towards
spreading and max-replicas only while its desired state is RUNNING or less.

`Load` is the same sum without the ports, kept up to date task by task (`change`)
by the leader's task index (manager/orchestrator/taskindex.py) across passes, so a
pass need not add up every task again; `from_loads` turns it into NodeInfos.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional

from proto import objects_pb2 as pb
from proto.model import is_terminal
from scheduler import generic

Port = tuple[int, int]  # (protocol, published port)


def host_ports(task: pb.Task, services: Mapping[str, pb.Service]) -> frozenset[Port]:
    """Host-mode published ports a task needs on its node.

    Taken from the task's own endpoint when it has one (what it was made
    with), else from its service's spec.  Port 0 (dynamic) never conflicts.
    """
    ports: Iterable[pb.PortConfig] = task.endpoint.ports or task.endpoint.spec.ports
    if not ports:
        svc = services.get(task.service_id)
        ports = svc.spec.endpoint.ports if svc is not None else ()
    return _host(ports)


def own_host_ports(task: pb.Task) -> bool:
    """The task's own endpoint names host-mode ports (host_ports then needs no service)."""
    return bool(_host(task.endpoint.ports or task.endpoint.spec.ports))


def publishes_host_ports(service: pb.Service) -> bool:
    """The service's spec publishes host-mode ports (its tasks without an endpoint of
    their own take them)."""
    return bool(_host(service.spec.endpoint.ports))


def _host(ports: Iterable[pb.PortConfig]) -> frozenset[Port]:
    return frozenset(
        (p.protocol, p.published_port)
        for p in ports
        if p.publish_mode == pb.PortConfig.HOST and p.published_port
    )


NO_PORTS: frozenset[Port] = frozenset()


@dataclass
class NodeInfo:
    """Mutable load summary of one node during one scheduling call."""

    node: pb.Node
    cpu_reserved: int = 0
    mem_reserved: int = 0
    active: int = 0
    by_service: dict[str, int] = field(default_factory=dict)
    ports: set[Port] = field(default_factory=set)
    # generic resources live tasks hold here (scheduler.generic's Held)
    held: dict[generic.Key, int] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.node.id

    def cpu_free(self) -> int:
        return self.node.description.resources.nano_cpus - self.cpu_reserved

    def mem_free(self) -> int:
        return self.node.description.resources.memory_bytes - self.mem_reserved

    def add(self, task: pb.Task, ports: frozenset[Port]) -> None:
        """Accounts for `task` running on this node."""
        if is_terminal(task.status.state):
            return
        spec = task.spec
        if spec.HasField("resources"):
            res = spec.resources.reservations
            self.cpu_reserved += res.nano_cpus
            self.mem_reserved += res.memory_bytes
        if task.assigned_generic_resources:
            generic.change(self.held, task.assigned_generic_resources, 1)
        if ports:
            self.ports.update(ports)
        if task.desired_state <= pb.RUNNING:
            self.active += 1
            self.by_service[task.service_id] = self.by_service.get(task.service_id, 0) + 1

    def change(self, task: pb.Task, sign: int) -> None:
        """Load.change on this node's figures (ports aside: the caller keeps them)."""
        _change(self, task, sign)

    def service_count(self, service_id: str) -> int:
        return self.by_service.get(service_id, 0)


@dataclass
class Load:
    """What the tasks assigned to one node take of it, ports aside (NodeInfo's rules)."""

    cpu_reserved: int = 0
    mem_reserved: int = 0
    active: int = 0
    by_service: dict[str, int] = field(default_factory=dict)
    held: dict[generic.Key, int] = field(default_factory=dict)  # generic resources held

    def change(self, task: pb.Task, sign: int) -> None:
        """Adds (sign 1) or takes away (sign -1) what `task` takes; a task without a
        node or in a terminal state takes nothing."""
        _change(self, task, sign)


def _change(load: "Load | NodeInfo", task: pb.Task, sign: int) -> None:
    if not task.node_id or is_terminal(task.status.state):
        return
    spec = task.spec
    if spec.HasField("resources"):
        res = spec.resources.reservations
        load.cpu_reserved += sign * res.nano_cpus
        load.mem_reserved += sign * res.memory_bytes
    if task.assigned_generic_resources:
        generic.change(load.held, task.assigned_generic_resources, sign)
    if task.desired_state <= pb.RUNNING:
        load.active += sign
        count = load.by_service.get(task.service_id, 0) + sign
        if count:
            load.by_service[task.service_id] = count
        else:
            load.by_service.pop(task.service_id, None)


def from_loads(nodes: Iterable[pb.Node], loads: Mapping[str, Load]) -> dict[str, NodeInfo]:
    """NodeInfo for every node from kept loads (copied: the scheduler adds to them);
    ports are not in a Load: the caller adds them."""
    infos = {}
    for n in nodes:
        load = loads.get(n.id)
        if load is None:
            infos[n.id] = NodeInfo(node=n)
        else:
            infos[n.id] = NodeInfo(node=n, cpu_reserved=load.cpu_reserved,
                                   mem_reserved=load.mem_reserved, active=load.active,
                                   by_service=dict(load.by_service),
                                   held=dict(load.held))
    return infos


def build(
    nodes: Iterable[pb.Node],
    tasks: Iterable[pb.Task],
    services: Mapping[str, pb.Service],
    skip: Optional[set[str]] = None,
) -> dict[str, NodeInfo]:
    """NodeInfo for every node, loaded with the tasks assigned to it.

    `skip` names task IDs to leave out (the ones being scheduled now).
    """
    infos = {n.id: NodeInfo(node=n) for n in nodes}
    # services whose spec publishes no port: their tasks without an endpoint of their
    # own need no look at ports (most tasks of a big cluster; this loop sees every task)
    portless = {sid for sid, svc in services.items() if not svc.spec.endpoint.ports}
    for t in tasks:
        if not t.node_id or (skip and t.id in skip) or is_terminal(t.status.state):
            continue
        info = infos.get(t.node_id)
        if info is None:
            continue
        if t.service_id in portless and not t.HasField("endpoint"):
            info.add(t, NO_PORTS)
        else:
            info.add(t, host_ports(t, services))
    return infos
