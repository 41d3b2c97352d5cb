"""The data plane's input: what one node must have, as plain dataclasses.

Owns the vocabulary between the control plane and `overlay_net`: the control
plane (dispatcher assignments) is mapped by a thin adapter onto
`DesiredState`, and everything else in this package reads only these types.
All of it is pure data with validation; no I/O.

* `NetworkView`  — one overlay network this node takes part in: VNI, subnet,
  gateway, every endpoint on it (local and remote, each with the underlay
  address of the node that hosts it) and the services attached to it.
* `LocalTask`    — one task running on this node: its network namespace and
  one `Attachment` (network id, address/prefix, MAC) per network, in the order
  the task's interfaces get (eth0, eth1, ...). The first one carries the
  default route.
* `DesiredState` — both lists together; `DataPlane.apply()` and
  `DnsServer.update()` take it.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Optional

DEFAULT_VXLAN_PORT = 4789  # IANA's VXLAN port, Docker's default data path port

MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
SERVICE_MODES = ("vip", "dnsrr")
MAX_VNI = (1 << 24) - 1


class OverlayInputError(ValueError):
    """The desired state is inconsistent; the message says which object and why."""


def _check_ip(value: str, what: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise OverlayInputError(f"{what}: {value!r} is not an IPv4 address") from None


def _check_mac(value: str, what: str) -> None:
    if not MAC_RE.match(value):
        raise OverlayInputError(f"{what}: {value!r} is not a lowercase MAC address "
                                "(aa:bb:cc:dd:ee:ff)")


def mac_for_ip(ip: str) -> str:
    """The MAC Docker derives from an IPv4 address (02:42:a.b.c.d); the allocator may use it."""
    octets = ipaddress.IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in octets)


@dataclass(frozen=True)
class Endpoint:
    """One task's address on a network, wherever it runs."""
    ip: str                 # address without prefix, e.g. "10.0.1.5"
    mac: str                # "02:42:0a:00:01:05"
    node_addr: str          # underlay IP of the node that hosts it
    task_id: str
    service: str = ""       # service name, for the DNS (may be empty)


@dataclass(frozen=True)
class Peer:
    """A node on a network; `ip`/`mac` is its own address there (ingress only, else empty)."""
    node_addr: str
    ip: str = ""
    mac: str = ""


@dataclass(frozen=True)
class NetworkKey:
    """An overlay encryption key (AES-256-GCM); `id` travels in every packet."""
    id: int
    key: bytes
    primary: bool = False


@dataclass(frozen=True)
class PortView:
    """A published port of a service (ingress routing mesh)."""
    published: int
    target: int
    protocol: str = "tcp"   # tcp | udp | sctp
    mode: str = "ingress"   # ingress (routing mesh) | host


@dataclass(frozen=True)
class ServiceView:
    """A service attached to a network, as seen by that network's DNS and load balancer."""
    name: str
    mode: str = "vip"                    # vip | dnsrr
    vip: str = ""                        # the service address on this network (mode vip)
    aliases: tuple[str, ...] = ()        # extra DNS names on this network
    backends: tuple[str, ...] = ()       # IPs of the service's running tasks on this network
    ports: tuple[PortView, ...] = ()


@dataclass(frozen=True)
class NetworkView:
    """One overlay network with everything on it that this node needs to know."""
    id: str
    vni: int
    subnet: str                          # "10.0.1.0/24"
    gateway: str                         # "10.0.1.1"
    name: str = ""
    encrypted: bool = False
    ingress: bool = False                # the routing-mesh network
    local_addr: str = ""                 # ingress: this node's address there, "10.0.0.3/24"
    peers: tuple[Peer, ...] = ()         # ingress: every node's address there
    keys: tuple[NetworkKey, ...] = ()    # encrypted: the cluster's overlay keys
    endpoints: tuple[Endpoint, ...] = ()
    services: tuple[ServiceView, ...] = ()
    vxlan_port: int = DEFAULT_VXLAN_PORT  # the cluster's data path port (UDP)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)


@dataclass(frozen=True)
class Attachment:
    """A local task's interface on one network."""
    network_id: str
    address: str                         # "10.0.1.5/24"
    mac: str

    @property
    def ip(self) -> str:
        return self.address.split("/", 1)[0]

    @property
    def prefixlen(self) -> int:
        return int(self.address.split("/", 1)[1])


@dataclass(frozen=True)
class LocalTask:
    """A task on this node: where its network namespace is and what it attaches to."""
    task_id: str
    netns_path: str                      # e.g. /run/netns/shoal-task-<id>
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class DesiredState:
    """Everything the data plane of one node must realise."""
    networks: tuple[NetworkView, ...] = ()
    tasks: tuple[LocalTask, ...] = ()

    def network(self, network_id: str) -> Optional[NetworkView]:
        return next((n for n in self.networks if n.id == network_id), None)

    def validate(self) -> None:
        """Raises OverlayInputError naming the first inconsistent object."""
        vnis: dict[int, str] = {}
        ids: set[str] = set()
        for net in self.networks:
            what = f"network {net.name or net.id}"
            if net.id in ids:
                raise OverlayInputError(f"{what}: listed twice")
            ids.add(net.id)
            if not 1 <= net.vni <= MAX_VNI:
                raise OverlayInputError(f"{what}: VNI {net.vni} out of range 1-{MAX_VNI}")
            if net.vni in vnis:
                raise OverlayInputError(f"{what}: VNI {net.vni} already used by {vnis[net.vni]}")
            vnis[net.vni] = net.id
            try:
                subnet = ipaddress.IPv4Network(net.subnet)
            except ValueError:
                raise OverlayInputError(f"{what}: subnet {net.subnet!r} is not an IPv4 "
                                        "network (a.b.c.d/n)") from None
            if _check_ip(net.gateway, f"{what} gateway") not in subnet:
                raise OverlayInputError(f"{what}: gateway {net.gateway} is outside {net.subnet}")
            for ep in net.endpoints:
                if _check_ip(ep.ip, f"{what} endpoint {ep.task_id}") not in subnet:
                    raise OverlayInputError(f"{what}: endpoint {ep.task_id} address {ep.ip} "
                                            f"is outside {net.subnet}")
                _check_mac(ep.mac, f"{what} endpoint {ep.task_id}")
                _check_ip(ep.node_addr, f"{what} endpoint {ep.task_id} node address")
            if net.local_addr:
                try:
                    local = ipaddress.IPv4Interface(net.local_addr)
                except ValueError:
                    raise OverlayInputError(f"{what}: local address {net.local_addr!r} is not "
                                            "a.b.c.d/n") from None
                if local.network != subnet:
                    raise OverlayInputError(f"{what}: local address {net.local_addr} is "
                                            f"outside {net.subnet}")
            for key in net.keys:
                if len(key.key) not in (16, 24, 32):
                    raise OverlayInputError(f"{what}: key {key.id} is {len(key.key)} bytes "
                                            "(AES-GCM needs 16, 24 or 32)")
            for peer in net.peers:
                _check_ip(peer.node_addr, f"{what} peer")
                if peer.ip:
                    _check_ip(peer.ip, f"{what} peer {peer.node_addr}")
                    _check_mac(peer.mac, f"{what} peer {peer.node_addr}")
            for svc in net.services:
                if svc.mode not in SERVICE_MODES:
                    raise OverlayInputError(f"{what} service {svc.name}: mode {svc.mode!r} "
                                            f"is not one of {', '.join(SERVICE_MODES)}")
                if svc.mode == "vip" and svc.vip:
                    _check_ip(svc.vip, f"{what} service {svc.name} VIP")
                for ip in svc.backends:
                    _check_ip(ip, f"{what} service {svc.name} backend")
        task_ids: set[str] = set()
        for task in self.tasks:
            if task.task_id in task_ids:
                raise OverlayInputError(f"task {task.task_id}: listed twice")
            task_ids.add(task.task_id)
            seen: set[str] = set()
            for att in task.attachments:
                attached = self.network(att.network_id)
                if attached is None:
                    raise OverlayInputError(f"task {task.task_id}: attached to unknown network "
                                            f"{att.network_id}")
                if att.network_id in seen:
                    raise OverlayInputError(f"task {task.task_id}: attached twice to "
                                            f"network {att.network_id}")
                seen.add(att.network_id)
                try:
                    iface = ipaddress.IPv4Interface(att.address)
                except ValueError:
                    raise OverlayInputError(f"task {task.task_id}: address {att.address!r} is "
                                            "not a.b.c.d/n") from None
                if iface.network != attached.network:
                    raise OverlayInputError(f"task {task.task_id}: address {att.address} is "
                                            f"not in network {attached.subnet}")
                _check_mac(att.mac, f"task {task.task_id}")


@dataclass
class ApplyResult:
    """What one `apply()` changed, and what it could not do (with the reason)."""
    created: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
