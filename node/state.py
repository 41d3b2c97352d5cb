"""What a node keeps in its data directory, and where its files and addresses are.

Owns `NodeState` (`<data-dir>/node.json`, no secrets), the paths of a node's
socket, logs and marker files, whether its daemon runs (the flock on
`daemon.pid`), serves (`ready`) or waits locked (`locked`), and the address
rules: "ip[:port]" parsing, Docker's choice of listen and advertise
addresses, the raft endpoint (the manager port + 1) and the metrics endpoint
(loopback unless served with TLS).
"""
from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from pyroute2 import IPRoute

from proto import genericres

DEFAULT_DATA_DIR = "/var/lib/shoal"
DEFAULT_PORT = 2377
RAFT_PORT_OFFSET = 1   # raft listens on the manager port + 1
JOIN_PORT_OFFSET = 2   # certificate issuing (TLS without client certificates) on + 2
STATE_FILE = "node.json"
PID_FILE = "daemon.pid"
READY_FILE = "ready"
LOCKED_FILE = "locked"   # kept while a manager waits for `swarm unlock` (node.lockedmode)
METRICS_HOST = "127.0.0.1"  # where --metrics-addr PORT binds


@dataclass
class NodeState:
    """What a node keeps in `<data-dir>/node.json` (no secrets)."""
    node_id: str
    role: str                      # manager | worker
    advertise_addr: str            # ip:port of the manager endpoint
    listen_addr: str               # ip:port to bind
    raft_addr: str                 # ip:port of the raft endpoint
    created_at: float = field(default_factory=time.time)
    init: dict[str, Any] = field(default_factory=dict)  # cluster settings of `swarm init`
    creates_cluster: bool = False              # this node ran `swarm init`
    cluster_id: str = ""
    managers: list[str] = field(default_factory=list)    # manager endpoints the agent uses
    raft_peers: list[str] = field(default_factory=list)  # other managers' raft endpoints
    metrics_addr: str = ""         # --metrics-addr as normalised ("": no metrics endpoint)
    metrics_tls: bool = False      # --metrics-tls: HTTPS, client certificates required
    data_path_addr: str = ""       # --data-path-addr as resolved (IPv4); "": the node's address
    # --node-generic-resource KIND=VALUE terms: what the node offers (proto/genericres.py)
    generic_resources: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, data_dir: Path) -> "NodeState":
        return cls(**json.loads((data_dir / STATE_FILE).read_text()))

    @staticmethod
    def exists(data_dir: Path) -> bool:
        return (data_dir / STATE_FILE).exists()

    def save(self, data_dir: Path) -> None:
        tmp = data_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, data_dir / STATE_FILE)


# ------------------------------------------------------------------ paths --

def socket_path(data_dir: Path) -> Path:
    return data_dir / "swarm.sock"


def log_path(data_dir: Path) -> Path:
    """The detached daemon's log, `<data-dir>.log` next to the data directory.

    Logs name services, tasks and containers; nothing in the data directory
    may (DESIGN §2), so they live beside it, like Docker's journal.
    """
    return data_dir.parent / f"{data_dir.name}.log"


def podman_log_path(data_dir: Path) -> Path:
    """The log of the node's `podman system service`, beside the data directory."""
    return data_dir.parent / f"{data_dir.name}.podman.log"


def daemon_running(data_dir: Path) -> bool:
    """Whether a daemon holds the lock on `<data-dir>/daemon.pid`."""
    try:
        with open(data_dir / PID_FILE, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(f, fcntl.LOCK_UN)
            return False
    except BlockingIOError:
        return True


def serving(data_dir: Path) -> bool:
    """Whether the node's daemon is up and serving its socket."""
    return (data_dir / READY_FILE).exists() and socket_path(data_dir).exists()


def locked(data_dir: Path) -> bool:
    """Whether the node's daemon runs locked, waiting for `swarm unlock`."""
    return (data_dir / LOCKED_FILE).exists() and socket_path(data_dir).exists()


# -------------------------------------------------------------- addresses --

def split_addr(addr: str, default_port: int) -> tuple[str, int]:
    """Parses "ip", "ip:port" or ":port"; raises ValueError with a readable reason."""
    host, sep, port = addr.rpartition(":")
    if not sep:
        host, port = addr, str(default_port)
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"invalid address {addr!r}: expected IP[:PORT] with a port 1-65535")
    return host.strip("[]"), int(port)


def default_ip() -> str:
    """The IPv4 address of the interface of the default route (no packet is sent)."""
    try:
        with IPRoute() as ipr:
            for route in ipr.route("get", dst="192.0.2.1"):
                src = route.get_attr("RTA_PREFSRC")
                if src:
                    return str(src)
    except Exception:  # noqa: BLE001 - no route, no netlink: fall back to loopback
        pass
    return "127.0.0.1"


def node_addresses(listen_addr: str | None, advertise_addr: str | None,
                   default_listen: str = f"0.0.0.0:{DEFAULT_PORT}",
                   default_advertise: str | None = None) -> tuple[str, str]:
    """("listen ip:port", "advertise ip:port") from the flags, as Docker picks them.

    Without --advertise-addr: the listen IP unless it is a wildcard, then
    `default_advertise` (when the listen address was not given either), then the
    IP of the default route. Raises ValueError with a readable reason.
    """
    listen_host, listen_port = split_addr(listen_addr or default_listen, DEFAULT_PORT)
    if advertise_addr:
        adv_host, adv_port = split_addr(advertise_addr, listen_port)
    elif default_advertise and not listen_addr:
        adv_host, adv_port = split_addr(default_advertise, DEFAULT_PORT)
    else:
        adv_host = listen_host if listen_host not in ("0.0.0.0", "") else default_ip()
        adv_port = listen_port
    try:
        socket.inet_aton(adv_host)
    except OSError:
        raise ValueError(f"invalid advertise address {adv_host!r}: expected an IPv4 address")
    return f"{listen_host}:{listen_port}", f"{adv_host}:{adv_port}"


def data_path_addr(text: str, addresses: Optional[Callable[[str], Optional[list[str]]]] = None
                   ) -> str:
    """`--data-path-addr IP|INTERFACE` as the IPv4 address overlay traffic uses: an IPv4
    address as given, or the one IPv4 address of a network interface of this host.
    `addresses(name)` lists an interface's IPv4 addresses (None: no such interface;
    default: asked of the kernel). Raises ValueError with what to give instead."""
    value = text.strip()
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        pass
    if ":" in value:
        raise ValueError(f"invalid --data-path-addr {text!r}: expected an IPv4 address or an "
                         "interface name, without a port (the port is the cluster's "
                         "--data-path-port)")
    found = (addresses or interface_ipv4)(value) if value else None
    if found is None:
        raise ValueError(f"invalid --data-path-addr {text!r}: neither an IPv4 address nor a "
                         "network interface of this host")
    if len(found) != 1:
        listed = ", ".join(found) if found else "none"
        raise ValueError(f"interface {value} has {len(found)} IPv4 addresses ({listed}): give "
                         "--data-path-addr one IPv4 address instead")
    return found[0]


def interface_ipv4(name: str) -> Optional[list[str]]:
    """The IPv4 addresses of this host's interface `name` (None: no such interface)."""
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=name)
        if not index:
            return None
        return [str(a.get_attr("IFA_ADDRESS"))
                for a in ipr.get_addr(family=socket.AF_INET, index=index[0])]


def raft_addr_of(advertise: str) -> str:
    """The raft endpoint: the manager port + 1 on the advertised IP."""
    host, port = split_addr(advertise, DEFAULT_PORT)
    return f"{host}:{port + RAFT_PORT_OFFSET}"


def raft_bind_addr(listen: str, raft_addr: str) -> str:
    """Where the raft endpoint binds: the listen IP with the raft port."""
    return f"{split_addr(listen, DEFAULT_PORT)[0]}:{split_addr(raft_addr, DEFAULT_PORT)[1]}"


# ---------------------------------------------------------------- metrics --

@dataclass(frozen=True)
class MetricsEndpoint:
    """Where the node serves `/metrics`, and whether over TLS (see metrics_endpoint)."""
    host: str
    port: int
    tls: bool

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def metrics_endpoint(addr: str, tls: bool) -> Optional[MetricsEndpoint]:
    """The endpoint `--metrics-addr ADDR [--metrics-tls]` asks for (None: ""; off).

    ADDR is IP:PORT, or PORT / :PORT for 127.0.0.1:PORT. Metrics name the
    cluster's nodes and services, so a non-loopback IP (0.0.0.0 included) is
    refused unless `tls`: then the node serves HTTPS with its own certificate
    and answers only clients with a certificate from the cluster's CA.
    Raises ValueError with what to do.
    """
    if not addr:
        return None
    text = addr if ":" in addr else f":{addr}"
    try:
        host, port = split_addr(text, 0)
    except ValueError:
        raise ValueError(f"invalid --metrics-addr {addr!r}: expected IP:PORT or PORT "
                         "(e.g. 127.0.0.1:9323)") from None
    host = host or METRICS_HOST
    if host == "localhost":
        host = METRICS_HOST
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"invalid --metrics-addr {addr!r}: {host!r} is not an IP address "
                         "(e.g. 127.0.0.1:9323)") from None
    if not ip.is_loopback and not tls:
        raise ValueError(
            f"refusing to serve metrics on {addr} without TLS: they name the cluster's nodes "
            f"and services. Bind a loopback address (127.0.0.1:{port}), or add --metrics-tls "
            "to serve HTTPS with this node's certificate to clients holding a certificate "
            "from the cluster's CA")
    return MetricsEndpoint(str(ip), port, tls)


def apply_generic_flags(state: NodeState, given: Optional[Sequence[str]]) -> bool:
    """Puts `--node-generic-resource` terms into `state` (None: not given, keep what is
    kept; given, they replace it, and an empty term alone clears them); True when
    something changed. ValueError (state untouched) for a malformed term."""
    if given is None:
        return False
    terms = genericres.terms(genericres.parse_node(t for t in given if t != ""))
    changed = terms != state.generic_resources
    state.generic_resources = terms
    return changed


def apply_metrics_flags(state: NodeState, addr: Optional[str], tls: Optional[bool]) -> bool:
    """Puts `--metrics-addr`/`--metrics-tls` into `state` (None: not given, keep what is
    kept); True when something changed. ValueError (state untouched) when refused."""
    if addr is None and tls is None:
        return False
    new_addr = state.metrics_addr if addr is None else addr
    new_tls = bool(tls) if addr is not None else (bool(tls) or state.metrics_tls)
    if tls and not new_addr:
        raise ValueError("--metrics-tls needs --metrics-addr IP:PORT (where to serve metrics)")
    endpoint = metrics_endpoint(new_addr, new_tls)
    normalised = str(endpoint) if endpoint is not None else ""
    changed = (normalised, new_tls) != (state.metrics_addr, state.metrics_tls)
    state.metrics_addr, state.metrics_tls = normalised, new_tls
    return changed
