"""Maps the control plane's messages onto the data plane's input dataclasses.

Owns the translation from `dispatcher.proto` NetworkView (what the dispatcher
sends each node) and the tasks' `NetworkAttachment`s (Task.networks) to
`model.DesiredState`, so the worker can call
`plane.apply(desired_state(views, tasks))` and `dns.update(...)` with it.
Pure: no I/O.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from overlay_net.model import (DEFAULT_VXLAN_PORT, Attachment, DesiredState, Endpoint,
                               LocalTask, NetworkKey, NetworkView, Peer, PortView, ServiceView,
                               mac_for_ip)
from proto import dispatcher_pb2, objects_pb2

_PROTOCOLS = {objects_pb2.PortConfig.TCP: "tcp", objects_pb2.PortConfig.UDP: "udp",
              objects_pb2.PortConfig.SCTP: "sctp"}


def _bare(addr: str) -> str:
    return addr.split("/", 1)[0]


def network_view(view: dispatcher_pb2.NetworkView) -> NetworkView:
    """One network as the data plane sees it."""
    endpoints = tuple(
        Endpoint(ip=_bare(ep.addr), mac=ep.mac or mac_for_ip(_bare(ep.addr)),
                 node_addr=ep.node_addr, task_id=ep.task_id, service=ep.service_name)
        for ep in view.endpoints if ep.addr and ep.node_addr)
    services = tuple(
        ServiceView(
            name=svc.name,
            mode="dnsrr" if svc.endpoint_mode == objects_pb2.EndpointSpec.DNSRR else "vip",
            vip=_bare(svc.vip),
            aliases=tuple(svc.aliases),
            backends=tuple(svc.backend_addrs),
            ports=tuple(PortView(published=p.published_port, target=p.target_port,
                                 protocol=_PROTOCOLS.get(p.protocol, "tcp"),
                                 mode="host" if p.publish_mode == objects_pb2.PortConfig.HOST
                                 else "ingress")
                        for p in svc.ports))
        for svc in view.services)
    peers = tuple(Peer(node_addr=p.node_addr, ip=_bare(p.addr),
                       mac=(p.mac or mac_for_ip(_bare(p.addr))) if p.addr else "")
                  for p in view.peers if p.node_addr)
    return NetworkView(id=view.network_id, name=view.name, vni=view.vni, subnet=view.subnet,
                       gateway=view.gateway, encrypted=view.encrypted, ingress=view.ingress,
                       local_addr=view.local_addr, peers=peers,
                       keys=tuple(NetworkKey(id=k.id, key=bytes(k.key), primary=k.primary)
                                  for k in view.keys),
                       endpoints=endpoints, services=services,
                       vxlan_port=view.vxlan_port or DEFAULT_VXLAN_PORT)


def local_task(task_id: str, netns_path: str,
               attachments: Sequence[objects_pb2.NetworkAttachment]) -> LocalTask:
    """A task of this node; attachments in Task.networks order (eth0 = the first)."""
    return LocalTask(task_id=task_id, netns_path=netns_path, attachments=tuple(
        Attachment(network_id=att.network_id, address=att.addresses[0],
                   mac=mac_for_ip(_bare(att.addresses[0])))
        for att in attachments if att.addresses))


def desired_state(views: Iterable[dispatcher_pb2.NetworkView],
                  tasks: Iterable[tuple[str, str, Sequence[objects_pb2.NetworkAttachment]]]
                  ) -> DesiredState:
    """views: the node's network views; tasks: (task id, netns path, Task.networks)."""
    nets = tuple(network_view(v) for v in views)
    known = {n.id for n in nets}
    local = []
    for task_id, path, attachments in tasks:
        # a view arrives before the tasks that need it; skip attachments still without one
        local.append(local_task(task_id, path, [a for a in attachments
                                                if a.network_id in known]))
    return DesiredState(networks=nets, tasks=tuple(local))
