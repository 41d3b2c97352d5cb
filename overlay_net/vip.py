"""VIP load balancing with nftables, inside each task's network namespace.

Owns the table `ip shoal_lb` in every local task's namespace:

    map vips { ipv4_addr : verdict }           VIP -> jump vip_<a_b_c_d>
    chain output (nat, hook output)            ip daddr vmap @vips
    chain vip_<a_b_c_d>                        dnat to numgen random mod N map {0: b0, 1: b1, ...}

A new connection to a VIP (any protocol and port, as with Docker's VIPs) is
DNATed to one backend chosen at random; conntrack keeps the rest of the
connection on it. A service without backends rejects at once. A change of
backends rewrites only that service's chain (one atomic nft transaction), so
it applies at once to new connections; adding or removing a VIP touches only
its map element and chain. The first time a namespace is seen (or after a
restart), its table is replaced as a whole, atomically.
"""
from __future__ import annotations

import ipaddress
import logging
import subprocess
from typing import Optional

from overlay_net import netns

log = logging.getLogger(__name__)

TABLE = "shoal_lb"

VipMap = dict[str, tuple[str, ...]]


class NftError(Exception):
    """nft refused a ruleset; the message has its error output."""


def chain_name(vip: str) -> str:
    return "vip_" + str(ipaddress.IPv4Address(vip)).replace(".", "_")


def _chain_rule(backends: tuple[str, ...]) -> str:
    if not backends:
        return "reject"
    if len(backends) == 1:
        return f"dnat to {backends[0]}"
    pairs = ", ".join(f"{i} : {ip}" for i, ip in enumerate(backends))
    return f"dnat to numgen random mod {len(backends)} map {{ {pairs} }}"


def full_script(vips: VipMap) -> str:
    """Replaces the whole table (atomic: one transaction)."""
    lines = [f"table ip {TABLE} {{}}", f"delete table ip {TABLE}", f"table ip {TABLE} {{",
             "  map vips { type ipv4_addr : verdict ; }",
             "  chain output { type nat hook output priority -100; policy accept; "
             "ip daddr vmap @vips; }"]
    for vip, backends in sorted(vips.items()):
        lines.append(f"  chain {chain_name(vip)} {{ {_chain_rule(backends)}; }}")
    lines.append("}")
    if vips:
        elems = ", ".join(f"{vip} : jump {chain_name(vip)}" for vip in sorted(vips))
        lines.append(f"add element ip {TABLE} vips {{ {elems} }}")
    return "\n".join(lines) + "\n"


def diff_script(old: VipMap, new: VipMap) -> str:
    """Only the chains and map elements that differ; empty when nothing does."""
    lines: list[str] = []
    for vip in sorted(set(old) - set(new)):
        lines.append(f"delete element ip {TABLE} vips {{ {vip} }}")
        lines.append(f"delete chain ip {TABLE} {chain_name(vip)}")
    for vip in sorted(set(new) - set(old)):
        lines.append(f"add chain ip {TABLE} {chain_name(vip)}")
        lines.append(f"add rule ip {TABLE} {chain_name(vip)} {_chain_rule(new[vip])}")
        lines.append(f"add element ip {TABLE} vips {{ {vip} : jump {chain_name(vip)} }}")
    for vip in sorted(set(new) & set(old)):
        if new[vip] != old[vip]:
            lines.append(f"flush chain ip {TABLE} {chain_name(vip)}")
            lines.append(f"add rule ip {TABLE} {chain_name(vip)} {_chain_rule(new[vip])}")
    return "\n".join(lines) + "\n" if lines else ""


def run_nft(script: str, netns_path: Optional[str] = None) -> None:
    """Feeds a script to `nft -f -` inside the namespace (None: this one)."""
    def body() -> None:
        res = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True,
                             text=True, timeout=30)
        if res.returncode != 0:
            raise NftError(f"nft failed in {netns_path or 'this namespace'}: "
                           f"{res.stderr.strip()}")
    netns.run_in_netns(netns_path, body)


def list_table(netns_path: Optional[str], family: str = "ip", table: str = TABLE) -> Optional[str]:
    """The table as `nft list` prints it, or None when it does not exist."""
    def body() -> Optional[str]:
        res = subprocess.run(["nft", "list", "table", family, table], capture_output=True,
                             text=True, timeout=30)
        return res.stdout if res.returncode == 0 else None
    return netns.run_in_netns(netns_path, body)


class VipBalancer:
    """Keeps each local task namespace's `shoal_lb` table equal to its VIP map."""

    def __init__(self, node: str = "") -> None:
        self.node = node
        self._applied: dict[str, VipMap] = {}

    def apply(self, wanted: dict[str, VipMap], changes: list[str], errors: list[str]) -> None:
        """wanted: netns path -> {VIP: backends}; namespaces not listed lose their table."""
        for path in sorted(set(self._applied) - set(wanted)):
            gone = self._applied.pop(path)
            if gone and netns.exists(path):
                try:
                    run_nft(f"table ip {TABLE} {{}}\ndelete table ip {TABLE}\n", path)
                    changes.append(f"removed VIP table in {path}")
                except NftError as err:
                    errors.append(str(err))
        for path, vips in sorted(wanted.items()):
            if not netns.exists(path):
                self._applied.pop(path, None)
                continue
            old = self._applied.get(path)
            if old == vips:
                continue
            if old is None and not vips:
                # nothing to balance; make sure no stale table survives a restart
                if list_table(path) is not None:
                    run_nft(f"delete table ip {TABLE}\n", path)
                self._applied[path] = vips
                continue
            script = full_script(vips) if old is None else diff_script(old, vips)
            try:
                run_nft(script, path)
            except NftError as err:
                errors.append(str(err))
                self._applied.pop(path, None)      # next apply replaces the whole table
                continue
            self._applied[path] = vips
            log.info("[%s] VIPs in %s: %s", self.node, path,
                     ", ".join(f"{v}->{len(b)}" for v, b in sorted(vips.items())) or "none")
            changes.append(f"VIP rules in {path}")
