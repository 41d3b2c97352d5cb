"""The lab's underlay network: one bridge, one network namespace per node.

Owns, on this host:
* the underlay bridge (default `shoallab0`, 10.99.0.0/24, the host holds .1);
* one named namespace per node (`shoal-<name>`, pinned under /run/netns) with
  `eth0` (a veth whose peer sits in the bridge), an address from .10 up,
  loopback up and a default route via the host;
* the nftables tables `inet <table>` (accepts traffic bridged between lab
  nodes) and `bridge <table>` (partition drops, per source/destination IP,
  both directions, on frames bridged between nodes; the host always reaches
  every node);
* an iptables FORWARD accept rule for the bridge, added only when iptables
  exists and its FORWARD policy is DROP (a host with Docker), because with
  br_netfilter bridged IPv4 traverses that chain and an accept in our own
  table does not override a drop in another one.

All of it is written to the `net` section of the lab's state file before it
is made, so `destroy()` removes what exists of it, even after a crash.
Processes still inside a namespace are killed before the namespace goes.
A numbered underlay (the tests') first sweeps what a killed owner left
behind (`sweep_orphans`).
"""
from __future__ import annotations

import errno
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from lab.state import StateFile

NETNS_DIR = Path("/run/netns")
FIRST_HOST = 10          # node addresses start at .10


class NetLabError(Exception):
    """A lab network operation failed; the message says what to do."""


@dataclass(frozen=True)
class Underlay:
    """Names and addresses of one underlay; `index` keeps several labs apart."""
    bridge: str
    subnet: str
    ns_prefix: str
    table: str

    @classmethod
    def indexed(cls, index: int = 0) -> "Underlay":
        """Underlay number `index`: shoallab<k>, 10.99.<k>.0/24 (k=0: the default lab)."""
        if not 0 <= index <= 255:
            raise NetLabError(f"underlay index {index} out of range 0-255")
        return cls(bridge=f"shoallab{index}", subnet=f"10.99.{index}.0/24",
                   ns_prefix="shoal-" if index == 0 else f"shoal{index}-",
                   table="shoal_lab" if index == 0 else f"shoal_lab{index}")

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def host_ip(self) -> str:
        return str(self.network.network_address + 1)

    def node_ip(self, slot: int) -> str:
        addr = self.network.network_address + FIRST_HOST + slot
        if addr >= self.network.broadcast_address:
            raise NetLabError(f"underlay {self.subnet} has no address left for slot {slot}")
        return str(addr)


def run(*argv: str, check: bool = True, input: Optional[str] = None) -> subprocess.CompletedProcess:
    """Runs a host tool; raises NetLabError with its stderr when it fails and check is set."""
    res = subprocess.run(list(argv), capture_output=True, text=True, input=input, timeout=60)
    if check and res.returncode != 0:
        raise NetLabError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def _netns_inode(name: str) -> Optional[int]:
    try:
        return os.stat(NETNS_DIR / name).st_ino
    except OSError:
        return None


def pids_in_netns(name: str) -> list[int]:
    """PIDs of the processes whose network namespace is the named one."""
    inode = _netns_inode(name)
    if inode is None:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            link = os.readlink(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if link == f"net:[{inode}]":
            found.append(int(entry))
    return found


def kill_and_wait(pids: Iterable[int], timeout: float = 10.0) -> None:
    """SIGKILLs pids and waits until each is gone or a zombie."""
    pids = list(pids)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline and process_alive(pid):
            time.sleep(0.02)


def process_alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _delete_link(ipr: IPRoute, index: int) -> None:
    """Deletes a link; one that vanished meanwhile (a veth whose peer's netns went) is fine."""
    try:
        ipr.link("del", index=index)
    except NetlinkError as err:
        if err.code != errno.ENODEV:
            raise


def sweep_orphans(u: Underlay) -> list[str]:
    """Removes what a lab on underlay `u` left when its owner was killed before
    `destroy()`: namespaces named with its prefix (and what runs in them), host
    veth ends named after its bridge, and its nft tables. Called only while the
    bridge is absent, i.e. no lab owns the underlay; returns what was removed.
    Not used for underlay 0, whose `shoal-` prefix is too generic to sweep."""
    removed: list[str] = []
    names = sorted(os.listdir(NETNS_DIR)) if NETNS_DIR.is_dir() else []
    for name in names:
        if name.startswith(u.ns_prefix):
            kill_and_wait(pids_in_netns(name))
            netns.remove(name)
            removed.append(f"netns {name}")
    veth = re.compile(re.escape(u.bridge) + r"[vn]\d+$")
    with IPRoute() as ipr:
        for link in ipr.get_links():
            ifname = link.get_attr("IFLA_IFNAME") or ""
            if veth.match(ifname):
                _delete_link(ipr, link["index"])
                removed.append(f"link {ifname}")
    for family in ("inet", "bridge"):
        if run("nft", "list", "table", family, u.table, check=False).returncode == 0:
            run("nft", "delete", "table", family, u.table)
            removed.append(f"nft table {family} {u.table}")
    rule = ["FORWARD", "-i", u.bridge, "-o", u.bridge, "-j", "ACCEPT"]
    while shutil.which("iptables") and run("iptables", "-C", *rule, check=False).returncode == 0:
        run("iptables", "-D", *rule)
        removed.append("iptables " + " ".join(rule))
    return removed


class NetLab:
    """The underlay and node namespaces recorded in one state file."""

    def __init__(self, state: StateFile, underlay: Optional[Underlay] = None) -> None:
        self.state = state
        recorded = state.read().get("net", {}).get("underlay")
        self.underlay = Underlay(**recorded) if recorded else (underlay or Underlay.indexed(0))

    # ---- queries

    def _net(self) -> dict[str, Any]:
        return self.state.read().get("net", {})

    def created(self) -> bool:
        return bool(self._net())

    def nodes(self) -> dict[str, dict[str, Any]]:
        """name -> {netns, ip, veth, slot} for every namespace of the lab."""
        return dict(self._net().get("namespaces", {}))

    def netns_name(self, name: str) -> str:
        return self.underlay.ns_prefix + name

    def netns_path(self, name: str) -> str:
        return str(NETNS_DIR / self.netns_name(name))

    def ip(self, name: str) -> str:
        try:
            return self.nodes()[name]["ip"]
        except KeyError:
            raise NetLabError(f"no lab namespace for node {name!r}") from None

    def partitions(self) -> list[list[list[str]]]:
        return list(self._net().get("partitions", []))

    # ---- the underlay

    def create(self) -> None:
        """Creates the bridge and the firewall tables (fails if the bridge exists)."""
        u = self.underlay
        with IPRoute() as ipr:
            if ipr.link_lookup(ifname=u.bridge):
                raise NetLabError(f"bridge {u.bridge} already exists: another lab is up "
                                  "(run 'swarm-lab down' first)")
        if u.ns_prefix != Underlay.indexed(0).ns_prefix:
            sweep_orphans(u)
        with self.state.edit() as doc:
            doc["net"] = {"underlay": asdict(u), "namespaces": {}, "partitions": [],
                          "iptables": [], "tables": [f"inet {u.table}", f"bridge {u.table}"]}
            self.state.checkpoint()
            with IPRoute() as ipr:
                ipr.link("add", ifname=u.bridge, kind="bridge")
                idx = ipr.link_lookup(ifname=u.bridge)[0]
                ipr.addr("add", index=idx, address=u.host_ip, prefixlen=u.network.prefixlen)
                ipr.link("set", index=idx, state="up")
            self._firewall(doc["net"])

    def _firewall(self, net: dict[str, Any]) -> None:
        u = self.underlay
        run("nft", "-f", "-", input=(
            f"table inet {u.table} {{\n"
            "  chain forward {\n"
            "    type filter hook forward priority -10; policy accept;\n"
            f'    iifname "{u.bridge}" oifname "{u.bridge}" accept\n'
            "  }\n}\n"
            f"table bridge {u.table} {{\n"
            "  chain forward {\n"
            "    type filter hook forward priority -200; policy accept;\n"
            "  }\n}\n"))
        if shutil.which("iptables"):
            policy = run("iptables", "-S", "FORWARD", check=False).stdout
            if "-P FORWARD DROP" in policy:
                rule = ["FORWARD", "-i", u.bridge, "-o", u.bridge, "-j", "ACCEPT"]
                net["iptables"].append(rule)
                self.state.checkpoint()
                run("iptables", "-I", rule[0], "1", *rule[1:])

    # ---- namespaces

    def add_node(self, name: str) -> str:
        """Creates the node's namespace wired to the bridge; returns its IP."""
        u = self.underlay
        with self.state.edit() as doc:
            net = doc.get("net")
            if not net:
                raise NetLabError("the lab network is not up")
            spaces = net["namespaces"]
            if name in spaces:
                raise NetLabError(f"node {name!r} already exists")
            used = {entry["slot"] for entry in spaces.values()}
            slot = next(i for i in range(len(used) + 1) if i not in used)
            ip = u.node_ip(slot)
            ns = self.netns_name(name)
            veth, peer = f"{u.bridge}v{slot}", f"{u.bridge}n{slot}"
            if len(veth) > 15:
                raise NetLabError(f"interface name {veth} is too long")
            spaces[name] = {"netns": ns, "ip": ip, "veth": veth, "slot": slot}
            self.state.checkpoint()
            netns.create(ns)
            with IPRoute() as ipr:
                ipr.link("add", ifname=veth, kind="veth", peer=peer)
                host_end = ipr.link_lookup(ifname=veth)[0]
                bridge = ipr.link_lookup(ifname=u.bridge)[0]
                ipr.link("set", index=host_end, master=bridge, state="up")
                ipr.link("set", index=ipr.link_lookup(ifname=peer)[0], net_ns_fd=ns)
            with IPRoute(netns=ns) as nsr:
                lo = nsr.link_lookup(ifname="lo")[0]
                nsr.link("set", index=lo, state="up")
                inner = nsr.link_lookup(ifname=peer)[0]
                nsr.link("set", index=inner, ifname="eth0")
                nsr.addr("add", index=inner, address=ip, prefixlen=u.network.prefixlen)
                nsr.link("set", index=inner, state="up")
                nsr.route("add", dst="default", gateway=u.host_ip)
            return ip

    def remove_node(self, name: str) -> None:
        """Kills what runs in the node's namespace, removes it and its veth."""
        with self.state.edit() as doc:
            entry = doc.get("net", {}).get("namespaces", {}).get(name)
            if entry is None:
                raise NetLabError(f"no lab namespace for node {name!r}")
            self._remove_namespace(entry)
            del doc["net"]["namespaces"][name]
            doc["net"]["partitions"] = [
                p for p in doc["net"]["partitions"]
                if entry["ip"] not in p[0] and entry["ip"] not in p[1]]
            self._apply_partitions(doc["net"]["partitions"])

    @staticmethod
    def _remove_namespace(entry: dict[str, Any]) -> None:
        kill_and_wait(pids_in_netns(entry["netns"]))
        if (NETNS_DIR / entry["netns"]).exists():
            netns.remove(entry["netns"])
        with IPRoute() as ipr:
            for link in ipr.link_lookup(ifname=entry["veth"]):
                _delete_link(ipr, link)

    # ---- partitions

    def partition(self, group: Iterable[str], others: Iterable[str]) -> None:
        """Drops all traffic between the two groups of nodes, in both directions."""
        group, others = sorted(set(group)), sorted(set(others))
        if not group or not others:
            raise NetLabError("a partition needs nodes on both sides")
        if set(group) & set(others):
            raise NetLabError(f"nodes on both sides: {', '.join(sorted(set(group) & set(others)))}")
        with self.state.edit() as doc:
            net = doc.get("net")
            if not net:
                raise NetLabError("the lab network is not up")
            ips_a = [self.ip(n) for n in group]
            ips_b = [self.ip(n) for n in others]
            net["partitions"].append([ips_a, ips_b])
            self._apply_partitions(net["partitions"])

    def heal(self) -> None:
        """Removes every partition."""
        with self.state.edit() as doc:
            net = doc.get("net")
            if not net:
                raise NetLabError("the lab network is not up")
            net["partitions"] = []
            self._apply_partitions([])

    def _apply_partitions(self, partitions: list[list[list[str]]]) -> None:
        t = self.underlay.table
        lines = [f"flush chain bridge {t} forward"]
        for ips_a, ips_b in partitions:
            a, b = ", ".join(ips_a), ", ".join(ips_b)
            lines.append(f"add rule bridge {t} forward ip saddr {{ {a} }} ip daddr {{ {b} }} drop")
            lines.append(f"add rule bridge {t} forward ip saddr {{ {b} }} ip daddr {{ {a} }} drop")
        run("nft", "-f", "-", input="\n".join(lines) + "\n")

    # ---- teardown

    def destroy(self) -> list[str]:
        """Removes everything recorded (whatever of it exists); returns problems met."""
        problems: list[str] = []
        with self.state.edit() as doc:
            net = doc.get("net")
            if not net:
                return problems
            for name, entry in list(net.get("namespaces", {}).items()):
                try:
                    self._remove_namespace(entry)
                    del net["namespaces"][name]
                except (OSError, NetlinkError) as err:
                    problems.append(f"namespace {entry['netns']}: {err}")
            for table in net.get("tables", []):
                family, name = table.split()
                if run("nft", "list", "table", family, name, check=False).returncode == 0:
                    res = run("nft", "delete", "table", family, name, check=False)
                    if res.returncode != 0:
                        problems.append(f"nft table {table}: {res.stderr.strip()}")
            for rule in net.get("iptables", []):
                while run("iptables", "-C", *rule, check=False).returncode == 0:
                    if run("iptables", "-D", *rule, check=False).returncode != 0:
                        problems.append(f"iptables {' '.join(rule)} could not be deleted")
                        break
            with IPRoute() as ipr:
                for link in ipr.link_lookup(ifname=self.underlay.bridge):
                    _delete_link(ipr, link)
            if problems:
                return problems
            del doc["net"]
        return problems
