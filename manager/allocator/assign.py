"""The allocator pass: addresses, VIPs and published ports, before scheduling.

`allocate(work)` runs inside the leader's reconcile pass, after the
orchestrators made their tasks and before the scheduler places them, on the
same copy-on-write working state (`manager.orchestrator.plan.Work`), so a
task is created, given its addresses and placed in one store transaction. It
decides, from the snapshot alone (no allocator memory to rebuild):

- each service's endpoint: its ports as allocated (ingress ports without a
  published number get one from 30000-32767) and, in VIP mode, one virtual IP
  per network it is attached to, plus one on `ingress` when it publishes an
  ingress port; VIPs of networks it left are dropped;
- each unplaced task's attachments: one address per network of its spec, plus
  `ingress` when its service publishes ingress ports;
- each node's address on `ingress`, once any service publishes an ingress port
  (the node's routing-mesh sandbox);
- the cluster's overlay encryption keys (`keys`), once an encrypted network exists.

An address is in use while something holds it: a service's VIP, a node's
attachment, or a task that may still run (released once its observed state is
terminal, or when it never reached a node and is no longer wanted; removed
tasks, services and nodes release everything they held). The lowest free
address is taken, within the network's --ip-range when it has one; the
gateway and its --aux-addresses are never handed out.

Returns the tasks that must not be placed yet, with the reason shown in
`service ps` (a port conflict, an exhausted subnet, a missing network).
"""
from __future__ import annotations

import ipaddress
from typing import Callable, Optional, Protocol

from manager.allocator import ipam, keys, ports
from manager.allocator.ipam import AllocationError
from manager.allocator.networks import aux_addresses, gateway, ip_range, is_encrypted, \
    subnet_of
from proto import model
from proto import objects_pb2 as pb
from raft.view import StoreView


class Work(Protocol):
    """What the allocator uses of the orchestrator's working state
    (manager.orchestrator.plan.Work, which calls the allocator: a Protocol here
    keeps the import one way)."""

    view: StoreView
    now: float
    nodes: dict[str, pb.Node]
    tasks: dict[str, pb.Task]
    services: dict[str, pb.Service]
    cluster: Optional[pb.Cluster]

    def edit_task(self, task_id: str) -> pb.Task: ...

    def unplaced(self) -> list[pb.Task]: ...

    def edit_service(self, service_id: str) -> pb.Service: ...

    def edit_node(self, node_id: str) -> pb.Node: ...

    def edit_cluster(self) -> pb.Cluster: ...

    def wake(self, at: float) -> None: ...


HOST_NETWORK = "host"


def releases(task: pb.Task) -> bool:
    """The task's addresses are free again: it can no longer be running."""
    if model.is_terminal(task.status.state):
        return True
    return task.status.state < pb.ASSIGNED and task.desired_state > pb.RUNNING


def needs_ingress(spec: pb.EndpointSpec) -> bool:
    return bool(ports.ingress(spec.ports))


def task_network_ids(task: pb.Task, ingress_id: str) -> list[str]:
    """The networks a task is attached to, in order (ingress first when it publishes)."""
    wanted = []
    endpoint = task.endpoint.spec
    if ingress_id and needs_ingress(endpoint):
        wanted.append(ingress_id)
    for att in task.spec.networks:
        if att.target != HOST_NETWORK and att.target not in wanted:
            wanted.append(att.target)
    return wanted


def service_network_ids(service: pb.Service, ingress_id: str) -> list[str]:
    wanted = []
    if ingress_id and needs_ingress(service.spec.endpoint):
        wanted.append(ingress_id)
    for att in service.spec.task.networks:
        if att.target != HOST_NETWORK and att.target not in wanted:
            wanted.append(att.target)
    return wanted


class _Pools:
    """Addresses in use per network during one pass."""

    def __init__(self, networks: dict[str, pb.Network]) -> None:
        self.networks = networks
        self.used: dict[str, set[str]] = {nid: set() for nid in networks}
        self._cursor: dict[str, int] = {}
        self._full: dict[str, str] = {}

    def hold(self, network_id: str, addr: str) -> None:
        if network_id in self.used:
            self.used[network_id].add(ipam.bare(addr))

    def holds(self, network_id: str, addr: str) -> bool:
        return ipam.bare(addr) in self.used.get(network_id, ())

    def take(self, network_id: str) -> str:
        net = self.networks.get(network_id)
        subnet = subnet_of(net) if net is not None else None
        if net is None or subnet is None:
            raise AllocationError(f"network {network_id} does not exist or has no subnet")
        if network_id in self._full:
            raise AllocationError(self._full[network_id])
        # addresses below the last one taken in this pass are all in use
        try:
            addr = ipam.allocate_address(subnet, gateway(net), self.used[network_id],
                                         start=self._cursor.get(network_id, 0),
                                         pool=ip_range(net), reserved=aux_addresses(net))
        except AllocationError as exc:
            self._full[network_id] = str(exc)  # nothing is freed during a pass
            raise
        self.used[network_id].add(ipam.bare(addr))
        self._cursor[network_id] = int(ipaddress.IPv4Address(ipam.bare(addr))) + 1
        return addr

    def valid(self, network_id: str, addr: str) -> bool:
        """`addr` (held already) is one this network may hand out."""
        net = self.networks.get(network_id)
        subnet = subnet_of(net) if net is not None else None
        if net is None or subnet is None or not ipam.in_subnet(addr, subnet):
            return False
        pool = ip_range(net)
        return (pool is None or ipam.in_subnet(addr, pool)) and \
            ipam.bare(addr) not in aux_addresses(net)


def _ingress_id(networks: dict[str, pb.Network]) -> str:
    return next((nid for nid in sorted(networks) if networks[nid].spec.ingress), "")


def _holdings(work: Work, pools: _Pools) -> None:
    for task in work.tasks.values():
        if task.networks and not releases(task):
            for att in task.networks:
                for addr in att.addresses:
                    pools.hold(att.network_id, addr)
    for svc in work.services.values():
        for vip in svc.endpoint.virtual_ips:
            pools.hold(vip.network_id, vip.addr)
    for node in work.nodes.values():
        for att in node.attachments:
            for addr in att.addresses:
                pools.hold(att.network_id, addr)


def _services(work: Work, pools: _Pools, ingress_id: str) -> dict[str, str]:
    """Allocates endpoints; returns the blocked services (ID -> reason)."""
    order = sorted(work.services.values(),
                   key=lambda s: (model.ts_seconds(s.meta.created_at), s.id))
    names = {s.id: s.spec.annotations.name for s in order}
    book = ports.PortBook()
    blocked: dict[str, str] = {}
    for svc in order:
        why = ports.reserve(svc, book, names)
        if why:
            blocked[svc.id] = why
    for svc in order:
        if svc.id not in blocked:
            ports.keep(svc, book)
    for svc in order:
        if svc.id in blocked:
            continue
        allocated, why = ports.allocate_ports(svc, book)
        if why:
            blocked[svc.id] = why
            continue
        if needs_ingress(svc.spec.endpoint) and not ingress_id:
            blocked[svc.id] = ("the ingress network does not exist: create one with "
                               "'swarm network create --ingress -d overlay ingress'")
            continue
        try:
            vips = _vips(svc, pools, ingress_id)
        except AllocationError as exc:
            blocked[svc.id] = str(exc)
            continue
        if list(svc.endpoint.ports) != allocated or list(svc.endpoint.virtual_ips) != vips:
            endpoint = pb.Endpoint(spec=svc.spec.endpoint, ports=allocated, virtual_ips=vips)
            work.edit_service(svc.id).endpoint.CopyFrom(endpoint)
    return blocked


def _vips(svc: pb.Service, pools: _Pools, ingress_id: str) -> list[pb.VirtualIP]:
    if svc.spec.endpoint.mode == pb.EndpointSpec.DNSRR:
        return []
    have = {v.network_id: v.addr for v in svc.endpoint.virtual_ips}
    out = []
    for nid in service_network_ids(svc, ingress_id):
        addr = have.get(nid, "")
        if not addr or not pools.valid(nid, addr):
            addr = pools.take(nid)
        out.append(pb.VirtualIP(network_id=nid, addr=addr))
    return out


def _tasks(work: Work, pools: _Pools, ingress_id: str,
           blocked_services: dict[str, str]) -> dict[str, str]:
    blocked: dict[str, str] = {}
    for task in work.unplaced():
        if task.service_id not in work.services:
            continue
        if task.service_id in blocked_services:
            blocked[task.id] = blocked_services[task.service_id]
            continue
        service = work.services[task.service_id]
        if task.spec_version == service.spec_version and service.HasField("endpoint") and \
                task.endpoint != service.endpoint:
            work.edit_task(task.id).endpoint.CopyFrom(service.endpoint)
            task = work.tasks[task.id]
        wanted = task_network_ids(task, ingress_id)
        have = [a.network_id for a in task.networks]
        if have == wanted:
            continue
        aliases = {a.target: list(a.aliases) for a in task.spec.networks}
        try:
            attachments = []
            for nid in wanted:
                if nid not in pools.networks:
                    raise AllocationError(f"network {nid} not found: it was removed; "
                                          "update the service's --network")
                addr = pools.take(nid)
                attachments.append(pb.NetworkAttachment(network_id=nid, addresses=[addr],
                                                        aliases=aliases.get(nid, [])))
        except AllocationError as exc:
            blocked[task.id] = f"network allocation failed: {exc}"
            continue
        edit = work.edit_task(task.id)
        del edit.networks[:]
        edit.networks.extend(attachments)
    return blocked


def _nodes(work: Work, pools: _Pools, ingress_id: str) -> None:
    mesh = bool(ingress_id) and any(needs_ingress(s.spec.endpoint)
                                    for s in work.services.values())
    for node_id in sorted(work.nodes):
        node = work.nodes[node_id]
        stale = [a for a in node.attachments if a.network_id not in pools.networks]
        has = any(a.network_id == ingress_id for a in node.attachments)
        if not stale and (has or not mesh):
            continue
        edit = work.edit_node(node_id)
        keep = [a for a in edit.attachments if a.network_id in pools.networks]
        del edit.attachments[:]
        edit.attachments.extend(keep)
        if mesh and not has:
            try:
                addr = pools.take(ingress_id)
            except AllocationError:
                continue
            edit.attachments.add(network_id=ingress_id, addresses=[addr])


def _keys(work: Work, networks: dict[str, pb.Network], new_key: Callable[[], bytes]) -> None:
    cluster = work.cluster
    if cluster is None:
        return
    needed = any(is_encrypted(n.spec) for n in networks.values())
    held, wake = keys.next_keys(cluster.network_keys, work.now, needed, new_key)
    if wake is not None:
        work.wake(wake)
    if held != list(cluster.network_keys):
        edit = work.edit_cluster()
        del edit.network_keys[:]
        edit.network_keys.extend(held)


def allocate(work: Work, new_key: Callable[[], bytes] = keys.random_key) -> dict[str, str]:
    """Allocates what the pass needs; returns the task IDs that must wait, with why."""
    networks = dict(work.view.networks)
    _keys(work, networks, new_key)
    pools = _Pools(networks)
    ingress_id = _ingress_id(networks)
    _holdings(work, pools)
    blocked_services = _services(work, pools, ingress_id)
    blocked = _tasks(work, pools, ingress_id, blocked_services)
    _nodes(work, pools, ingress_id)
    return blocked


def attachment_addr(attachments, network_id: str) -> Optional[str]:
    """The first address of an attachment to `network_id`, or None."""
    for att in attachments:
        if att.network_id == network_id and att.addresses:
            return att.addresses[0]
    return None
