"""Control API rules for the cluster object: spec updates, token and unlock-key rotation.

`updated_cluster` is pure but for the root CA rotation, whose start the caller
passes in (it reads this manager's root CA key from disk).
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Callable, Optional

from manager import ca
from manager.allocator import ipam
from manager.controlapi.common import check_version, invalid, precondition
from manager.objects import copy
from pki import tokens
from pki.ca import POLICY_MIN_EXPIRY
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb

MIN_HEARTBEAT_NS = 100_000_000


def check_spec(cluster: pb.Cluster, spec: pb.ClusterSpec,
               min_expiry: _dt.timedelta = POLICY_MIN_EXPIRY) -> None:
    """Refuses heartbeat periods, certificate lifetimes, address pools and snapshot
    intervals the cluster can't live with, settings Shoal does not act on (raft
    timings, external CAs) and those fixed at init (the data path port).

    `min_expiry` is the shortest `--cert-expiry` accepted (one hour, as Docker,
    unless the node's config lowers it for tests).
    """
    period = spec.dispatcher.heartbeat_period.nanos
    if period < 0:
        raise invalid("dispatcher heartbeat period must not be negative")
    if period and period < MIN_HEARTBEAT_NS:
        raise invalid("dispatcher heartbeat period must be at least 100ms")
    if (spec.raft.election_tick, spec.raft.heartbeat_tick) != (
            cluster.spec.raft.election_tick, cluster.spec.raft.heartbeat_tick):
        raise invalid("raft election and heartbeat ticks can't be changed: Shoal's raft "
                      "timings are fixed; leave spec.raft.election_tick and heartbeat_tick "
                      "as GetCluster returns them")
    if spec.raft.snapshot_interval != cluster.spec.raft.snapshot_interval and \
            spec.raft.snapshot_interval == 0:
        raise invalid("raft snapshot interval must be at least 1 log entry "
                      "(--snapshot-interval)")
    if spec.data_path_port != cluster.spec.data_path_port:
        raise invalid("the data path port can't be changed: it is set by `swarm init "
                      "--data-path-port` when the cluster is created; leave "
                      "spec.data_path_port as GetCluster returns it")
    if spec.ca_config.external_ca_urls != cluster.spec.ca_config.external_ca_urls:
        raise invalid("external CAs are not supported: the managers sign certificates with "
                      "the cluster's root CA; leave ca_config.external_ca_urls as GetCluster "
                      "returns it")
    if (spec.default_addr_pool, spec.subnet_size) != (cluster.spec.default_addr_pool,
                                                      cluster.spec.subnet_size):
        try:  # new networks take their subnets from here: refuse what none could come from
            ipam.parse_pools(list(spec.default_addr_pool), spec.subnet_size)
        except ipam.AllocationError as exc:
            raise invalid(f"{exc} (the cluster's default address pools and subnet size)"
                          ) from None
    expiry = spec.ca_config.node_cert_expiry.nanos
    if expiry != cluster.spec.ca_config.node_cert_expiry.nanos and expiry and \
            expiry < min_expiry.total_seconds() * 1e9:
        raise invalid(f"node certificate expiry must be at least {min_expiry} "
                      "(--cert-expiry)")


def updated_cluster(cluster: pb.Cluster, request: cpb.UpdateClusterRequest,
                    start_rotation: Callable[[pb.Cluster], pb.RootRotation],
                    min_expiry: _dt.timedelta = POLICY_MIN_EXPIRY) -> pb.Cluster:
    """The cluster with the requested spec (name kept), tokens and keys rotated as asked."""
    check_version("cluster", cluster, request.cluster_version)
    spec = request.spec
    check_spec(cluster, spec, min_expiry)
    new = copy(cluster)
    new.spec.CopyFrom(spec)
    new.spec.annotations.name = cluster.spec.annotations.name
    if request.rotate_worker_token:
        new.join_tokens.worker = tokens.generate(cluster.root_ca_cert)
    if request.rotate_manager_token:
        new.join_tokens.manager = tokens.generate(cluster.root_ca_cert)
    if spec.ca_config.force_rotate != cluster.spec.ca_config.force_rotate:
        new.root_rotation.CopyFrom(start_rotation(cluster))
    if new.spec.encryption.auto_lock_managers:
        if request.rotate_manager_unlock_key or not new.unlock_key:
            new.unlock_key = tokens.generate_unlock_key()
    elif request.rotate_manager_unlock_key:
        raise precondition("cannot rotate because autolock is not turned on")
    else:
        new.unlock_key = ""
    return new


def unlock_key(cluster: pb.Cluster) -> str:
    """The unlock key GetUnlockKey answers: empty unless autolock is on."""
    return cluster.unlock_key if cluster.spec.encryption.auto_lock_managers else ""


def security_info(cluster: Optional[pb.Cluster]) -> dict[str, Any]:
    """The InfoResponse fields that describe the cluster's security settings."""
    expiry = ca.cluster_cert_expiry(cluster)
    return {"autolock_managers": bool(cluster and cluster.spec.encryption.auto_lock_managers),
            "cert_expiry": pb.Duration(nanos=int(expiry * 1e9)),
            "root_rotation_in_progress": bool(cluster and cluster.HasField("root_rotation"))}
