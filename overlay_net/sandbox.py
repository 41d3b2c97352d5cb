"""Kernel side of one overlay network on one node: the sandbox and its devices.

Owns, through pyroute2 (netlink), for one `SandboxSpec`:
* the sandbox namespace with bridge `br0` (holding the gateway address) and
  `vxlan0` (created in the node's namespace with `local <node ip>`, the
  cluster's data path port (`SandboxSpec.vxlan_port`, 4789 unless `swarm init
  --data-path-port` chose another), learning off, ARP proxy on, then moved into the sandbox, so its UDP socket
  stays on the node's underlay);
* one veth per local task, the task end renamed eth<n> inside the task's
  namespace with its address, MAC and (first network) default route; the
  sandbox end carries the attachment as its ifalias so a change is noticed;
* static FDB entries (MAC -> remote node) and permanent neighbour entries
  (IP -> MAC) on `vxlan0` for the endpoints on other nodes.

Each function reads what exists and changes only the difference.
"""
from __future__ import annotations

import errno
import logging
import socket
from typing import Any, Optional

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import ndmsg

from overlay_net import netns
from overlay_net.plan import BRIDGE, VXLAN, Naming, SandboxSpec, VethSpec

log = logging.getLogger(__name__)

NUD_PERMANENT = ndmsg.states["permanent"]
NUD_NOARP = ndmsg.states["noarp"]
NTF_SELF = ndmsg.flags["self"]


MESH_LINK = "ing0"    # = ingress.SBOX_LINK


class SandboxError(Exception):
    """A sandbox could not be brought to its specification; the message says why."""


def _attr(msg: Any, name: str) -> Any:
    return msg.get_attr(name)


def _lookup(ipr: IPRoute, ifname: str) -> Optional[int]:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def _created(ipr: IPRoute, ifname: str) -> int:
    """The index of a link just added here; SandboxError if the kernel does not list it."""
    index = _lookup(ipr, ifname)
    if index is None:
        raise SandboxError(f"link {ifname} is missing right after it was created")
    return index


def _del_link(ipr: IPRoute, index: int) -> None:
    try:
        ipr.link("del", index=index)
    except NetlinkError as err:
        if err.code != errno.ENODEV:
            raise


def underlay_mtu(node_netns: Optional[str], node_addr: str) -> int:
    """The MTU of the node's device that holds node_addr (1500 if none does)."""
    def body() -> int:
        with IPRoute() as ipr:
            for addr in ipr.get_addr(family=2):
                if _attr(addr, "IFA_ADDRESS") == node_addr:
                    link = ipr.get_links(addr["index"])[0]
                    return int(_attr(link, "IFLA_MTU"))
        return 1500
    return netns.run_in_netns(node_netns, body)


def ensure(spec: SandboxSpec, naming: Naming, node_addr: str, node_netns: Optional[str],
           mtu: int, gso_max_size: Optional[int] = None) -> list[str]:
    """Brings the sandbox to spec; returns one line per change (for logs and results).

    gso_max_size caps the TCP segment trains the tasks' interfaces build (the
    encrypted tunnel carries one train per datagram); None leaves the default.
    """
    changes: list[str] = []
    path = netns.netns_path(spec.name)
    if not netns.exists(spec.name):
        netns.create(spec.name)
        changes.append(f"sandbox {spec.name}")
    need_vxlan = netns.run_in_netns(path, lambda: _ensure_bridge(spec, mtu, changes))
    if need_vxlan and not spec.encrypted:       # encrypted: secure.SecureTunnel's TAP instead
        _create_vxlan(spec, naming, node_addr, node_netns, mtu, path)
        changes.append(f"vxlan vni {spec.vni} in {spec.name}")
    problems: list[str] = []
    netns.run_in_netns(path, lambda: _ensure_veths(spec, mtu, changes, problems, gso_max_size))
    if not spec.encrypted:
        netns.run_in_netns(path, lambda: _ensure_remote(spec, changes))
    if problems:      # the other tasks and the remote entries are in place already
        raise SandboxError("; ".join(problems))
    return changes


def _ensure_bridge(spec: SandboxSpec, mtu: int, changes: list[str]) -> bool:
    """Creates br0 if missing; returns True when vxlan0 must still be created."""
    with IPRoute() as ipr:
        br = _lookup(ipr, BRIDGE)
        if br is None:
            ipr.link("add", ifname=BRIDGE, kind="bridge")
            br = _lookup(ipr, BRIDGE)
            ipr.link("set", index=br, mtu=mtu)
            ipr.addr("add", index=br, address=spec.gateway, prefixlen=spec.prefixlen)
            ipr.link("set", index=br, state="up")
            changes.append(f"bridge in {spec.name}")
        set_bridge_netfilter(False)
        vx = _lookup(ipr, VXLAN)
        if vx is None:
            return True
        link = ipr.get_links(vx)[0]
        if _attr(link, "IFLA_MASTER") != br:
            ipr.link("set", index=vx, master=br, state="up")
        return False


BRIDGE_NETFILTER = ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables",
                    "bridge-nf-call-arptables")


def set_bridge_netfilter(on: bool = False) -> None:
    """Sets this namespace's bridge-nf-call-* switches; the data plane turns them off.

    With br_netfilter loaded (Docker loads it), every namespace starts with
    these switches on, and each frame crossing br0 runs the IP-layer hooks; the
    sandbox has no rules of its own, and the tasks' and node's rules still
    apply where the packets enter and leave them. Measured: 5-14% of the
    overlay's TCP throughput (design/overlay-dataplane.md). The switches exist
    per namespace only when br_netfilter is loaded; otherwise there is nothing
    to set.
    """
    for name in BRIDGE_NETFILTER:
        try:
            with open(f"/proc/sys/net/bridge/{name}", "w", encoding="ascii") as switch:
                switch.write("1" if on else "0")
        except FileNotFoundError:
            return


def _create_vxlan(spec: SandboxSpec, naming: Naming, node_addr: str,
                  node_netns: Optional[str], mtu: int, sandbox_path: str) -> None:
    temp = naming.vxlan_temp(spec.vni)

    def in_node() -> None:
        with IPRoute() as ipr:
            stale = _lookup(ipr, temp)
            if stale is not None:
                _del_link(ipr, stale)
            try:
                ipr.link("add", ifname=temp, kind="vxlan", vxlan_id=spec.vni,
                         vxlan_local=node_addr, vxlan_port=spec.vxlan_port, vxlan_learning=0,
                         vxlan_proxy=1, mtu=mtu)
            except NetlinkError as err:
                raise SandboxError(f"cannot create VXLAN device for VNI {spec.vni} on "
                                   f"{node_addr}: {err}") from err
            idx = _lookup(ipr, temp)
            ipr.link("set", index=idx, net_ns_fd=sandbox_path)

    netns.run_in_netns(node_netns, in_node)

    def in_sandbox() -> None:
        with IPRoute() as ipr:
            idx = _lookup(ipr, temp)
            if idx is None:
                raise SandboxError(f"VXLAN device {temp} did not arrive in {spec.name}")
            ipr.link("set", index=idx, ifname=VXLAN)
            ipr.link("set", index=idx, master=_lookup(ipr, BRIDGE), state="up")

    netns.run_in_netns(sandbox_path, in_sandbox)


def _ensure_veths(spec: SandboxSpec, mtu: int, changes: list[str],
                  problems: list[str], gso_max_size: Optional[int]) -> None:
    with IPRoute() as ipr:
        present: dict[str, tuple[int, str]] = {}
        for link in ipr.get_links():
            name = _attr(link, "IFLA_IFNAME")
            info = _attr(link, "IFLA_LINKINFO")
            if info is not None and info.get_attr("IFLA_INFO_KIND") == "veth":
                present[name] = (link["index"], _attr(link, "IFLA_IFALIAS") or "")
        for name, (index, alias) in present.items():
            if name == MESH_LINK:
                continue                  # the routing mesh's link (ingress.py), not a task's
            want = spec.veths.get(name)
            if want is None or want.tag != alias:
                _del_link(ipr, index)
                changes.append(f"removed veth {name} from {spec.name}")
        br = _lookup(ipr, BRIDGE)
        for name, want in spec.veths.items():
            if name in present and present[name][1] == want.tag:
                continue
            if not netns.exists(want.netns_path):
                problems.append(f"task {want.task_id}: network namespace "
                                f"{want.netns_path} does not exist")
                continue
            try:
                _add_veth(ipr, want, mtu, br, gso_max_size)
            except Exception as err:  # noqa: BLE001 - reported, the other tasks go on
                problems.append(f"task {want.task_id}: {err}")
                continue
            changes.append(f"veth {want.ifname} of task {want.task_id} in {spec.name}")


def _add_veth(ipr: IPRoute, want: VethSpec, mtu: int, br: Optional[int],
              gso_max_size: Optional[int]) -> None:
    """Creates the task's veth, moves its end into the task and puts this end on br0."""
    peer = Naming.veth_peer_temp(want.task_id)
    stale = _lookup(ipr, peer)
    if stale is not None:
        _del_link(ipr, stale)
    ipr.link("add", ifname=want.name, kind="veth", peer=peer)
    idx = _created(ipr, want.name)
    gso = {"gso_max_size": gso_max_size} if gso_max_size else {}
    ipr.link("set", index=idx, mtu=mtu, ifalias=want.tag, **gso)
    peer_idx = _created(ipr, peer)
    ipr.link("set", index=peer_idx, mtu=mtu, **gso)
    try:
        ipr.link("set", index=peer_idx, net_ns_fd=netns.netns_path(want.netns_path))
        netns.run_in_netns(want.netns_path, lambda: _task_end(want, peer))
    except Exception:
        _del_link(ipr, idx)
        raise
    ipr.link("set", index=idx, master=br, state="up")


def _task_end(want: VethSpec, temp: str) -> None:
    with IPRoute() as ipr:
        lo = _lookup(ipr, "lo")
        if lo is not None:
            ipr.link("set", index=lo, state="up")
        old = _lookup(ipr, want.ifname)
        if old is not None:
            _del_link(ipr, old)
        idx = _lookup(ipr, temp)
        if idx is None:
            raise SandboxError(f"veth {temp} did not arrive in {want.netns_path}")
        ipr.link("set", index=idx, ifname=want.ifname, address=want.mac)
        ip, prefix = want.address.split("/")
        ipr.addr("add", index=idx, address=ip, prefixlen=int(prefix))
        ipr.link("set", index=idx, state="up")
        if want.gateway:
            ipr.route("replace", dst="0.0.0.0/0", gateway=want.gateway, oif=idx)


def _ip_text(value: Any) -> str:
    """An IPv4 address as text; pyroute2 leaves some NDA_DST values undecoded (bytes)."""
    if isinstance(value, (bytes, bytearray)):
        return socket.inet_ntoa(bytes(value)) if len(value) == 4 else ""
    return value or ""


def _ensure_remote(spec: SandboxSpec, changes: list[str]) -> None:
    with IPRoute() as ipr:
        vx = _lookup(ipr, VXLAN)
        if vx is None:
            raise SandboxError(f"{spec.name} has no {VXLAN}")
        fdb_now: set[tuple[str, str]] = set()
        for entry in ipr.fdb("dump", ifindex=vx):
            dst = _ip_text(_attr(entry, "NDA_DST"))
            if entry["ifindex"] == vx and dst:
                fdb_now.add((_attr(entry, "NDA_LLADDR"), dst))
        for mac, dst in fdb_now - spec.fdb:
            ipr.fdb("del", ifindex=vx, lladdr=mac, dst=dst)
        for mac, dst in sorted(spec.fdb - fdb_now):
            ipr.fdb("append", ifindex=vx, lladdr=mac, dst=dst)
        neigh_now: set[tuple[str, str]] = set()
        for entry in ipr.get_neighbours(family=2, ifindex=vx):
            ip = _ip_text(_attr(entry, "NDA_DST"))
            if entry["ifindex"] == vx and _attr(entry, "NDA_LLADDR") and ip:
                neigh_now.add((ip, _attr(entry, "NDA_LLADDR")))
        for ip, mac in neigh_now - spec.neigh:
            ipr.neigh("del", ifindex=vx, dst=ip, lladdr=mac)
        for ip, mac in sorted(spec.neigh - neigh_now):
            ipr.neigh("replace", ifindex=vx, dst=ip, lladdr=mac, state=NUD_PERMANENT)
        if fdb_now != spec.fdb or neigh_now != spec.neigh:
            changes.append(f"remote entries of {spec.name}: {len(spec.fdb)} fdb, "
                           f"{len(spec.neigh)} neighbours")


def destroy(name: str) -> None:
    """Deletes the sandbox's devices, then the namespace itself."""
    path = netns.netns_path(name)
    if not netns.exists(name):
        return

    def body() -> None:
        with IPRoute() as ipr:
            for link in ipr.get_links():
                if _attr(link, "IFLA_IFNAME") != "lo":
                    _del_link(ipr, link["index"])

    try:
        netns.run_in_netns(path, body)
    finally:
        netns.remove(name)
