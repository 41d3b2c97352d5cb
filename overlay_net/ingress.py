"""The ingress routing mesh of one node, with nftables (no IPVS).

Owns, when the node takes part in the ingress network (its `local_addr`):
* in the ingress sandbox: the node's mesh address (and its MAC) on `br0`, a
  veth `ing0` to the node namespace (169.254.250.2/30, default route back to
  the node), forwarding on, and table `ip shoal_ingress` that SNATs traffic
  coming from outside the ingress subnet to the mesh address, so replies from
  backends on any node come back through this node;
* in the node namespace: the other end `shoal-ing0` (169.254.250.1/30), a
  route to the ingress subnet through it, forwarding on, and table
  `ip shoal_ingress` that DNATs every published port (on any local address of
  the node, from outside and from the node itself) to one backend chosen at
  random per connection (`numgen random mod N`), at the target port;
* iptables FORWARD accept rules for `shoal-ing0` when the FORWARD policy is
  DROP (hosts with Docker), since an nft accept cannot override that drop.

A published port without backends is rejected at once.
"""
from __future__ import annotations

import errno
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Optional

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from overlay_net import netns
from overlay_net.plan import BRIDGE, IngressSpec, SandboxSpec
from overlay_net.sandbox import _del_link, _lookup
from overlay_net.vip import NftError, list_table, run_nft

log = logging.getLogger(__name__)

NODE_LINK = "shoal-ing0"
PEER_TEMP = "shoal-ingp"
SBOX_LINK = "ing0"
NODE_LINK_IP = "169.254.250.1"
SBOX_LINK_IP = "169.254.250.2"
LINK_PREFIX = 30
TABLE = "shoal_ingress"


def _forwarding_on() -> None:
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")


def node_script(ports: dict[tuple[str, int], tuple[int, tuple[str, ...]]]) -> str:
    """The node namespace's DNAT table, replaced as a whole (atomic)."""
    lines = [f"table ip {TABLE} {{}}", f"delete table ip {TABLE}", f"table ip {TABLE} {{",
             "  map ports { type inet_proto . inet_service : verdict ; }",
             "  chain prerouting { type nat hook prerouting priority -100; policy accept; "
             "fib daddr type local meta l4proto . th dport vmap @ports; }",
             "  chain output { type nat hook output priority -100; policy accept; "
             "fib daddr type local meta l4proto . th dport vmap @ports; }"]
    for (proto, published), (target, backends) in sorted(ports.items()):
        chain = f"p_{proto}_{published}"
        if not backends:
            rule = "reject"
        elif len(backends) == 1:
            rule = f"meta l4proto {proto} dnat to {backends[0]}:{target}"
        else:
            pairs = ", ".join(f"{i} : {ip}" for i, ip in enumerate(backends))
            rule = (f"meta l4proto {proto} dnat to numgen random mod {len(backends)} "
                    f"map {{ {pairs} }}:{target}")
        lines.append(f"  chain {chain} {{ {rule}; }}")
    lines.append("}")
    if ports:
        elems = ", ".join(f"{proto} . {published} : jump p_{proto}_{published}"
                          for proto, published in sorted(ports))
        lines.append(f"add element ip {TABLE} ports {{ {elems} }}")
    return "\n".join(lines) + "\n"


def sandbox_script(ing: IngressSpec) -> str:
    return (f"table ip {TABLE} {{}}\ndelete table ip {TABLE}\n"
            f"table ip {TABLE} {{\n"
            "  chain postrouting { type nat hook postrouting priority 100; policy accept; "
            f'oifname "{BRIDGE}" ip saddr != {ing.subnet} snat to {ing.local_ip}; }}\n'
            "}\n")


class Ingress:
    """Keeps one node's routing mesh equal to the ingress sandbox's spec."""

    def __init__(self, node: str = "") -> None:
        self.node = node
        self._node_rules: Optional[str] = None
        self._sandbox_rules: Optional[str] = None
        self._iptables: list[list[str]] = []

    def ensure(self, spec: SandboxSpec, node_netns: Optional[str], changes: list[str]) -> None:
        ing = spec.ingress
        assert ing is not None
        sbox = netns.netns_path(spec.name)
        linked = netns.run_in_netns(sbox, lambda: self._sandbox_side(ing, changes))
        if not linked:
            self._sandbox_rules = None
            netns.run_in_netns(node_netns, lambda: self._make_link(sbox))
            netns.run_in_netns(sbox, _sandbox_link_up)
            changes.append(f"ingress link between the node and {spec.name}")
        netns.run_in_netns(node_netns, lambda: _node_route(ing.subnet))
        self._allow_forward(node_netns)
        wanted = sandbox_script(ing)
        if wanted != self._sandbox_rules:
            run_nft(wanted, sbox)
            self._sandbox_rules = wanted
        wanted = node_script(ing.ports)
        if wanted != self._node_rules:
            run_nft(wanted, node_netns)
            self._node_rules = wanted
            log.info("[%s] ingress: %s", self.node, ", ".join(
                f"{p}/{n}->{len(b)}" for (p, n), (_, b) in sorted(ing.ports.items())) or "no ports")
            changes.append(f"ingress ports: {len(ing.ports)}")

    @staticmethod
    def _sandbox_side(ing: IngressSpec, changes: list[str]) -> bool:
        """Mesh address and MAC on br0, forwarding; True when ing0 is already there."""
        with IPRoute() as ipr:
            br = _lookup(ipr, BRIDGE)
            link = ipr.get_links(br)[0]
            if link.get_attr("IFLA_ADDRESS") != ing.mac:
                ipr.link("set", index=br, address=ing.mac)
            have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=br, family=2)}
            if ing.local_ip not in have:
                try:
                    ipr.addr("add", index=br, address=ing.local_ip, prefixlen=ing.prefixlen)
                    changes.append(f"ingress address {ing.local_ip}")
                except NetlinkError as err:
                    if err.code != errno.EEXIST:   # listed undecoded: it is there already
                        raise
            _forwarding_on()
            return _lookup(ipr, SBOX_LINK) is not None

    @staticmethod
    def _make_link(sbox: str) -> None:
        with IPRoute() as ipr:
            for stale in (NODE_LINK, PEER_TEMP):
                idx = _lookup(ipr, stale)
                if idx is not None:
                    _del_link(ipr, idx)
            ipr.link("add", ifname=NODE_LINK, kind="veth", peer=PEER_TEMP)
            idx = _lookup(ipr, NODE_LINK)
            ipr.addr("add", index=idx, address=NODE_LINK_IP, prefixlen=LINK_PREFIX)
            ipr.link("set", index=idx, state="up")
            ipr.link("set", index=_lookup(ipr, PEER_TEMP), net_ns_fd=sbox)
            _forwarding_on()

    def _allow_forward(self, node_netns: Optional[str]) -> None:
        if self._iptables or not shutil.which("iptables"):
            return

        def body() -> None:
            policy = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True,
                                    text=True).stdout
            if "-P FORWARD DROP" not in policy:
                return
            for rule in (["FORWARD", "-i", NODE_LINK, "-j", "ACCEPT"],
                         ["FORWARD", "-o", NODE_LINK, "-j", "ACCEPT"]):
                if subprocess.run(["iptables", "-C", *rule], capture_output=True).returncode:
                    subprocess.run(["iptables", "-I", rule[0], "1", *rule[1:]], check=True,
                                   capture_output=True)
                self._iptables.append(rule)
        netns.run_in_netns(node_netns, body)

    def remove(self, node_netns: Optional[str], changes: list[str]) -> None:
        """Takes the node side down (the sandbox side goes with the sandbox)."""
        def body() -> bool:
            found = False
            if list_table(None, table=TABLE) is not None:
                run_nft(f"delete table ip {TABLE}\n")
                found = True
            with IPRoute() as ipr:
                idx = _lookup(ipr, NODE_LINK)
                if idx is not None:
                    _del_link(ipr, idx)
                    found = True
            for rule in self._iptables:
                subprocess.run(["iptables", "-D", *rule], capture_output=True)
            self._iptables.clear()
            return found
        try:
            if netns.run_in_netns(node_netns, body):
                changes.append("ingress routing mesh on the node")
        except NftError as err:
            raise NftError(f"removing the ingress rules: {err}") from err
        self._node_rules = None
        self._sandbox_rules = None


def _sandbox_link_up() -> None:
    with IPRoute() as ipr:
        idx = _lookup(ipr, PEER_TEMP)
        ipr.link("set", index=idx, ifname=SBOX_LINK)
        ipr.addr("add", index=idx, address=SBOX_LINK_IP, prefixlen=LINK_PREFIX)
        ipr.link("set", index=idx, state="up")
        ipr.route("replace", dst="0.0.0.0/0", gateway=NODE_LINK_IP, oif=idx)


def _node_route(subnet: str) -> None:
    with IPRoute() as ipr:
        idx = _lookup(ipr, NODE_LINK)
        ipr.route("replace", dst=subnet, gateway=SBOX_LINK_IP, oif=idx)
