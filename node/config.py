"""The typed configuration of a node, built by the CLI and read by `node/`.

`NodeConfig` holds everything a node process is told from outside its data
directory: where the data directory is, the flags of `init`/`join`, and the
operator options that the CLI reads from its environment (podman storage, the
certificate expiry floor, the raft snapshot threshold, debug logging).
`ClusterSettings` are the cluster-wide settings `swarm init` starts a cluster
with (kept in node.json until the daemon makes the cluster object from them:
`first_cluster_spec`, `first_availability`). Nothing in `node/` reads environment variables; the CLI does, in one
place (cli/environment.py).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, cast

from pki.ca import POLICY_MIN_EXPIRY
from proto import model
from proto import objects_pb2 as pb
from worker.podman import PodmanOptions  # re-exported: cli/ names it through node/

DEFAULT_HISTORY = 5                    # tasks kept per slot
DEFAULT_HEARTBEAT_NS = 5_000_000_000   # the dispatcher's heartbeat period (5s)


@dataclass(frozen=True)
class ClusterSettings:
    """What `swarm init` was asked for the new cluster (None: the default)."""
    task_history_limit: Optional[int] = None
    dispatcher_heartbeat_ns: Optional[int] = None
    default_addr_pool: Optional[list[str]] = None
    default_addr_pool_mask_length: Optional[int] = None
    autolock: bool = False
    availability: Optional[str] = None         # the first node's: active, pause or drain
    cert_expiry_ns: Optional[int] = None       # node certificate lifetime
    snapshot_interval: Optional[int] = None    # raft log entries between snapshots
    keep_old_snapshots: Optional[int] = None   # former raft snapshots kept
    data_path_port: Optional[int] = None       # the VXLAN UDP port (0: 4789)
    # --external-ca: [{"protocol", "url", "options", "ca_cert" (PEM text)}]
    external_cas: Optional[list[dict[str, Any]]] = None

    def as_init(self) -> dict[str, Any]:
        """The settings given, as kept in node.json's `init` until the cluster exists."""
        return {key: value for key, value in asdict(self).items()
                if value is not None and value is not False}


def first_cluster_spec(init: dict[str, Any]) -> pb.ClusterSpec:
    """The cluster spec `swarm init` asked for (node.json's `init`, see ClusterSettings)."""
    spec = pb.ClusterSpec()
    spec.annotations.name = "default"
    spec.orchestration.task_history_retention_limit = int(
        init.get("task_history_limit", DEFAULT_HISTORY))
    spec.dispatcher.heartbeat_period.nanos = int(
        init.get("dispatcher_heartbeat_ns") or DEFAULT_HEARTBEAT_NS)
    pool = init.get("default_addr_pool")
    if pool:
        spec.default_addr_pool.extend(pool if isinstance(pool, list) else [pool])
    spec.subnet_size = int(init.get("default_addr_pool_mask_length") or 0)
    spec.encryption.auto_lock_managers = bool(init.get("autolock"))
    if init.get("cert_expiry_ns"):
        spec.ca_config.node_cert_expiry.nanos = int(init["cert_expiry_ns"])
    spec.raft.snapshot_interval = int(init.get("snapshot_interval") or model.DEFAULT_SNAPSHOT_INTERVAL)
    spec.raft.keep_old_snapshots = int(init.get("keep_old_snapshots") or 0)
    spec.data_path_port = int(init.get("data_path_port") or 0)
    for ca in init.get("external_cas") or []:
        spec.ca_config.external_cas.add(
            protocol=str(ca.get("protocol", "")), url=str(ca.get("url", "")),
            options={str(k): str(v) for k, v in (ca.get("options") or {}).items()},
            ca_cert=str(ca.get("ca_cert", "")).encode())
    return spec


def first_availability(init: dict[str, Any]) -> pb.NodeSpec.Availability:
    """The first node's availability (`swarm init --availability`, default active)."""
    return cast(pb.NodeSpec.Availability, pb.NodeSpec.Availability.Value(
        str(init.get("availability") or "active").upper()))


@dataclass(frozen=True)
class NodeConfig:
    """One node process's configuration (see the module docstring)."""
    data_dir: Path
    listen_addr: Optional[str] = None      # --listen-addr (None: default or kept)
    advertise_addr: Optional[str] = None   # --advertise-addr (None: derived or kept)
    data_path_addr: Optional[str] = None   # --data-path-addr, IP or interface (None: not given)
    foreground: bool = False               # run in this process instead of detaching
    # The argv that runs this node's daemon in the foreground: `swarm daemon
    # --foreground --data-dir DIR`. Used to detach and to restart on a role change.
    daemon_command: tuple[str, ...] = ()
    podman: PodmanOptions = field(default_factory=PodmanOptions)
    # The shortest node certificate lifetime `swarm update --cert-expiry` may set.
    min_cert_expiry: _dt.timedelta = POLICY_MIN_EXPIRY
    # Journal entries that trigger a raft snapshot (0: the store's default).
    raft_snapshot_entries: int = 0
    debug: bool = False                    # log at DEBUG level
    # systemd's $NOTIFY_SOCKET for a Type=notify unit (node/sdnotify.py); None: none
    notify_socket: Optional[str] = None
    # --metrics-addr ("" turns the endpoint off) and --metrics-tls; None: not given,
    # keep what node.json holds (node.state.apply_metrics_flags)
    metrics_addr: Optional[str] = None
    metrics_tls: Optional[bool] = None
    # --node-generic-resource KIND=VALUE terms (None: not given, keep what node.json
    # holds; node.state.apply_generic_flags)
    generic_resources: Optional[tuple[str, ...]] = None
