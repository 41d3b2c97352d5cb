"""Pure decisions: from a `DesiredState` to what the kernel of one node must hold.

Owns the names of everything the data plane creates (sandbox namespaces,
devices) and the per-sandbox and per-task specifications that the reconciler
compares with what it finds. No I/O here, so it is unit-tested directly.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Optional

from overlay_net.model import DEFAULT_VXLAN_PORT, DesiredState, NetworkView, mac_for_ip

ZERO_MAC = "00:00:00:00:00:00"
BRIDGE = "br0"
VXLAN = "vxlan0"
VXLAN_PORT = DEFAULT_VXLAN_PORT  # unless the cluster's data path port says otherwise
VXLAN_OVERHEAD = 50


@dataclass(frozen=True)
class Naming:
    """Names for one node's objects; `prefix` + `node_key` keep nodes sharing a host apart."""
    prefix: str = "shoal-"
    node_key: str = "node"

    def __post_init__(self) -> None:
        for part, value in (("prefix", self.prefix), ("node_key", self.node_key)):
            if not value or any(not (c.isalnum() or c in "-_.") for c in value):
                raise ValueError(f"{part} {value!r} must be non-empty letters, digits, -_.")

    @property
    def sandbox_prefix(self) -> str:
        return f"{self.prefix}ov-{self.node_key}-"

    def sandbox(self, vni: int) -> str:
        return f"{self.sandbox_prefix}{vni}"

    def vni_of(self, sandbox: str) -> Optional[int]:
        rest = sandbox[len(self.sandbox_prefix):] if sandbox.startswith(self.sandbox_prefix) else ""
        return int(rest) if rest.isdigit() else None

    @staticmethod
    def vxlan_temp(vni: int) -> str:
        """The VXLAN device's name in the node namespace, before it moves to the sandbox."""
        return f"vx{vni}"

    @staticmethod
    def veth(task_id: str) -> str:
        """The sandbox end of a task's veth (15 characters at most)."""
        return "ve" + task_id[:13]

    @staticmethod
    def veth_peer_temp(task_id: str) -> str:
        return "vp" + task_id[:13]


@dataclass(frozen=True)
class VethSpec:
    """One task interface: sandbox end `name`, task end `ifname` in `netns_path`."""
    name: str
    task_id: str
    netns_path: str
    ifname: str
    address: str
    mac: str
    gateway: Optional[str]          # set on the task's first interface: default route

    @property
    def tag(self) -> str:
        """Stored as the sandbox end's ifalias, so a changed attachment is recognised."""
        return f"{self.task_id} {self.ifname} {self.address} {self.mac} {self.netns_path}"


@dataclass(frozen=True)
class IngressSpec:
    """The routing mesh on this node: its address on the ingress network and the ports.

    ports: (protocol, published port) -> (target port, backend IPs on ingress).
    """
    local_ip: str
    prefixlen: int
    mac: str
    subnet: str
    ports: dict[tuple[str, int], tuple[int, tuple[str, ...]]] = field(default_factory=dict)


@dataclass(frozen=True)
class SandboxSpec:
    """What one network's sandbox on this node holds."""
    name: str
    network_id: str
    vni: int
    gateway: str
    prefixlen: int
    veths: dict[str, VethSpec] = field(default_factory=dict)
    fdb: frozenset[tuple[str, str]] = frozenset()      # (mac, remote node address)
    neigh: frozenset[tuple[str, str]] = frozenset()    # (ip, mac) of remote endpoints
    ingress: Optional[IngressSpec] = None
    encrypted: bool = False
    keys: tuple[tuple[int, bytes, bool], ...] = ()      # (id, key, primary)
    vxlan_port: int = VXLAN_PORT                         # UDP port of the VXLAN device


def sandboxes(desired: DesiredState, naming: Naming, node_addr: str) -> dict[str, SandboxSpec]:
    """One sandbox per network with at least one local task attached, keyed by name."""
    veths: dict[str, dict[str, VethSpec]] = {}
    for task in desired.tasks:
        for index, att in enumerate(task.attachments):
            net = desired.network(att.network_id)
            if net is None:
                continue
            spec = VethSpec(name=naming.veth(task.task_id), task_id=task.task_id,
                            netns_path=task.netns_path, ifname=f"eth{index}",
                            address=att.address, mac=att.mac,
                            gateway=net.gateway if index == 0 else None)
            veths.setdefault(net.id, {})[spec.name] = spec
    result: dict[str, SandboxSpec] = {}
    for net in desired.networks:
        ingress = ingress_spec(net)
        if net.id not in veths and ingress is None:
            continue
        fdb, neigh = remote_entries(net, node_addr)
        name = naming.sandbox(net.vni)
        result[name] = SandboxSpec(name=name, network_id=net.id, vni=net.vni,
                                   gateway=net.gateway, prefixlen=net.network.prefixlen,
                                   veths=veths.get(net.id, {}), fdb=fdb, neigh=neigh,
                                   ingress=ingress, encrypted=net.encrypted,
                                   keys=tuple((k.id, k.key, k.primary) for k in net.keys),
                                   vxlan_port=net.vxlan_port)
    return result


def ingress_spec(net: NetworkView) -> Optional[IngressSpec]:
    """The routing mesh of the ingress network (None for other networks or without address)."""
    if not net.ingress or not net.local_addr:
        return None
    local = ipaddress.IPv4Interface(net.local_addr)
    ports: dict[tuple[str, int], tuple[int, tuple[str, ...]]] = {}
    for svc in net.services:
        backends = tuple(sorted(set(svc.backends), key=_ip_key))
        for port in svc.ports:
            if port.mode == "ingress" and port.published and port.protocol in ("tcp", "udp"):
                ports[(port.protocol, port.published)] = (port.target, backends)
    return IngressSpec(local_ip=str(local.ip), prefixlen=local.network.prefixlen,
                       mac=mac_for_ip(str(local.ip)), subnet=net.subnet, ports=ports)


def remote_entries(net: NetworkView, node_addr: str
                   ) -> tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]]:
    """FDB (mac, node) and neighbour (ip, mac) entries for the endpoints on other nodes.

    Each remote node also gets an all-zeros FDB entry, so broadcast and
    unknown-unicast frames (BUM) reach it by head-end replication.
    """
    fdb: set[tuple[str, str]] = set()
    neigh: set[tuple[str, str]] = set()
    for ep in net.endpoints:
        if ep.node_addr == node_addr:
            continue
        fdb.add((ep.mac, ep.node_addr))
        fdb.add((ZERO_MAC, ep.node_addr))
        neigh.add((ep.ip, ep.mac))
    for peer in net.peers:               # ingress: the other nodes' mesh addresses
        if peer.node_addr == node_addr or not peer.ip:
            continue
        fdb.add((peer.mac, peer.node_addr))
        fdb.add((ZERO_MAC, peer.node_addr))
        neigh.add((peer.ip, peer.mac))
    return frozenset(fdb), frozenset(neigh)


def task_vips(desired: DesiredState) -> dict[str, dict[str, tuple[str, ...]]]:
    """netns path -> {VIP: backend IPs} for each local task, over all its networks."""
    result: dict[str, dict[str, tuple[str, ...]]] = {}
    for task in desired.tasks:
        vips: dict[str, tuple[str, ...]] = {}
        for att in task.attachments:
            net = desired.network(att.network_id)
            if net is None:
                continue
            for svc in net.services:
                if svc.mode == "vip" and svc.vip:
                    vips[svc.vip] = tuple(sorted(set(svc.backends), key=_ip_key))
        result[task.netns_path] = vips
    return result


def _ip_key(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip))


def vxlan_mtu(underlay_mtu: int) -> int:
    return underlay_mtu - VXLAN_OVERHEAD
