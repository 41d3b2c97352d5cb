"""Per-node network views: what each node must know to program its overlays (pure).

`NetIndex(view)` reads one store snapshot and builds, once for the whole
cluster, the `NetworkView` of every overlay network (see dispatcher.proto):
its VNI, subnet and options, its endpoints (live tasks with an address, the
underlay address of their node, a MAC derived from the address), its peers,
its services with VIP, aliases, endpoint mode, published ports and the
addresses of the tasks that are RUNNING and still wanted (the backends), and,
for encrypted networks, the cluster's overlay keys.
`index.for_node(node_id)` then gives the views that node must hold: every
network it has a live task on, and the ingress network on every node as soon
as any service publishes an ingress port (the routing mesh answers on every
node). The dispatcher sends a node its views and re-sends those that change.
"""
from __future__ import annotations

import functools

from manager.allocator import ipam
from manager.allocator.assign import releases
from manager.allocator.networks import gateway, is_encrypted, subnet_of
from manager.allocator.ports import ingress as ingress_ports
from proto import dispatcher_pb2 as dpb
from proto import model
from proto import objects_pb2 as pb
from raft.view import StoreView


@functools.lru_cache(maxsize=65536)
def _mac(addr: str) -> str:
    """The MAC of an allocated address (cached: views are rebuilt often, addresses rarely
    change)."""
    return model.mac_for(addr)


class NetIndex:
    """The network views of a whole cluster at one store version."""

    def __init__(self, view: StoreView) -> None:
        self.version = view.version
        self.views: dict[str, dpb.NetworkView] = {}
        self.members: dict[str, set[str]] = {}  # node ID -> network IDs with its live tasks
        self.mesh_id = ""  # the ingress network, when some service publishes on it
        self._node_addrs: dict[str, dict[str, str]] = {}  # node -> network -> own address
        self._encoded: dict[str, bytes] = {}
        self._build(view)

    # ------------------------------------------------------------ build --
    def _build(self, view: StoreView) -> None:
        for nid, net in view.networks.items():
            subnet = subnet_of(net)
            self.views[nid] = dpb.NetworkView(
                network_id=nid, name=net.spec.annotations.name, vni=net.vni,
                subnet=str(subnet) if subnet else "", gateway=gateway(net),
                encrypted=is_encrypted(net.spec), ingress=net.spec.ingress,
                internal=net.spec.internal, attachable=net.spec.attachable,
                driver_options=dict(net.spec.driver_options),
                vxlan_port=model.data_path_port(view.cluster))
            if self.views[nid].encrypted and view.cluster is not None:
                self.views[nid].keys.extend(view.cluster.network_keys)
        ingress_id = next((n for n in sorted(self.views) if self.views[n].ingress), "")
        if ingress_id and any(ingress_ports(s.spec.endpoint.ports)
                              for s in view.services.values()):
            self.mesh_id = ingress_id
        peers: dict[str, dict[str, dpb.NetworkPeer]] = {nid: {} for nid in self.views}
        backends: dict[tuple[str, str], list[str]] = {}
        for task in sorted(view.tasks.values(), key=lambda t: t.id):
            if releases(task) or not task.node_id:
                continue
            node = view.nodes.get(task.node_id)
            node_addr = model.node_addr(node) if node is not None else ""
            running = task.status.state == pb.RUNNING and task.desired_state <= pb.RUNNING
            for att in task.networks:
                netview = self.views.get(att.network_id)
                if netview is None or not att.addresses:
                    continue
                addr = att.addresses[0]
                netview.endpoints.add(
                    task_id=task.id, task_name=task.annotations.name,
                    service_id=task.service_id, service_name=task.service_name,
                    node_id=task.node_id, node_addr=node_addr, addr=addr,
                    mac=_mac(addr), aliases=list(att.aliases), running=running)
                self.members.setdefault(task.node_id, set()).add(att.network_id)
                peers[att.network_id].setdefault(
                    task.node_id, dpb.NetworkPeer(node_id=task.node_id, node_addr=node_addr))
                if running:
                    backends.setdefault((att.network_id, task.service_id), []).append(
                        ipam.bare(addr))
        for node in view.nodes.values():
            for att in node.attachments:
                if att.network_id in self.views and att.addresses:
                    self._node_addrs.setdefault(node.id, {})[att.network_id] = att.addresses[0]
        if self.mesh_id:
            for node in view.nodes.values():
                peers[self.mesh_id].setdefault(
                    node.id, dpb.NetworkPeer(node_id=node.id, node_addr=model.node_addr(node)))
        for nid, by_node in peers.items():
            for node_id in sorted(by_node):
                peer = by_node[node_id]
                own = self._node_addrs.get(node_id, {}).get(nid, "")
                if own:
                    peer.addr, peer.mac = own, _mac(own)
                self.views[nid].peers.append(peer)
        for svc in sorted(view.services.values(), key=lambda s: s.spec.annotations.name):
            self._add_service(svc, backends)

    def _add_service(self, svc: pb.Service, backends: dict[tuple[str, str], list[str]]) -> None:
        vips = {v.network_id: v.addr for v in svc.endpoint.virtual_ips}
        attached = {a.target: list(a.aliases) for a in svc.spec.task.networks}
        if self.mesh_id and ingress_ports(svc.spec.endpoint.ports):
            attached.setdefault(self.mesh_id, [])
        for nid in sorted(set(attached) | set(vips)):
            netview = self.views.get(nid)
            if netview is None:
                continue
            netview.services.add(
                service_id=svc.id, name=svc.spec.annotations.name,
                aliases=attached.get(nid, []), endpoint_mode=svc.spec.endpoint.mode,
                vip=vips.get(nid, ""), backend_addrs=backends.get((nid, svc.id), []),
                ports=list(svc.endpoint.ports or svc.spec.endpoint.ports))

    # ------------------------------------------------------------- read --
    def network_ids(self, node_id: str) -> list[str]:
        """The networks `node_id` must know, sorted."""
        ids = set(self.members.get(node_id, ()))
        if self.mesh_id:
            ids.add(self.mesh_id)
        return sorted(ids)

    def view_for(self, node_id: str, network_id: str) -> dpb.NetworkView:
        """The node's view of one network (shared when the node has no own address on it:
        do not modify it)."""
        own = self._node_addrs.get(node_id, {}).get(network_id, "")
        if not own:
            return self.views[network_id]
        view = dpb.NetworkView()
        view.CopyFrom(self.views[network_id])
        view.local_addr = own
        return view

    def for_node(self, node_id: str) -> dict[str, dpb.NetworkView]:
        """The node's views by network ID."""
        return {nid: self.view_for(node_id, nid) for nid in self.network_ids(node_id)}

    def fingerprint(self, node_id: str, network_id: str) -> tuple[bytes, str]:
        """A cheap identity of what `view_for(node_id, network_id)` holds."""
        encoded = self._encoded.get(network_id)
        if encoded is None:
            encoded = self.views[network_id].SerializeToString(deterministic=True)
            self._encoded[network_id] = encoded
        return encoded, self._node_addrs.get(node_id, {}).get(network_id, "")

    def changes(self, node_id: str, sent: dict[str, tuple[bytes, str]]
                ) -> tuple[list[dpb.AssignmentChange], list[dpb.AssignmentChange]]:
        """(updates, removals) that bring a node from `sent` (network ID -> fingerprint,
        updated in place) to its current views."""
        updates, removals = [], []
        wanted = self.network_ids(node_id)
        for nid in wanted:
            mark = self.fingerprint(node_id, nid)
            if sent.get(nid) != mark:
                sent[nid] = mark
                change = dpb.AssignmentChange(action=dpb.AssignmentChange.UPDATE)
                change.assignment.network.CopyFrom(self.view_for(node_id, nid))
                updates.append(change)
        for nid in sorted(set(sent) - set(wanted)):
            del sent[nid]
            change = dpb.AssignmentChange(action=dpb.AssignmentChange.REMOVE)
            change.assignment.network.network_id = nid
            removals.append(change)
        return updates, removals
