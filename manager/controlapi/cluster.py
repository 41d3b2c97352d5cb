"""Control API rules for the cluster object: spec updates, token and unlock-key rotation.

`updated_cluster` is pure but for the root CA rotation, whose start the caller
passes in (it reads this manager's root CA key from disk). A rotation starts
when `ca_config.force_rotate` changes (a generated root) or when the spec names
a root of the operator's (`ca_config.signing_ca_cert` + `signing_ca_key`,
`swarm ca --rotate --ca-cert --ca-key`, checked by `pki.givenroot`); the key is
moved into the rotation and never kept in the spec. Without the key the root's
signing is left to the spec's external CAs (`ca_config.external_cas`, cfssl), and
the update is refused unless one of them signs for it.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Callable, Iterable, Optional
from urllib.parse import urlsplit

from manager import ca, externalca
from manager.allocator import ipam
from manager.controlapi.common import check_version, invalid, precondition
from manager.objects import copy
from pki import givenroot, tokens
from pki.ca import POLICY_MIN_EXPIRY, CAError, RootCA
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb

MIN_HEARTBEAT_NS = 100_000_000
NO_EXTERNAL_CA = ("there must be at least one external CA (--external-ca protocol=cfssl,"
                  "url=URL) for the root CA certificate that signs: the cluster does not hold "
                  "its key")


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
        raise invalid("ca_config.external_ca_urls is not used: give external CAs as "
                      "ca_config.external_cas (--external-ca protocol=cfssl,url=URL); leave "
                      "external_ca_urls as GetCluster returns it")
    check_external_cas(spec.ca_config.external_cas)
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


StartRotation = Callable[[pb.Cluster, Optional[RootCA]], pb.RootRotation]


def desired_root(cluster: pb.Cluster, spec: pb.ClusterSpec) -> Optional[RootCA]:
    """The operator's root `spec` asks the cluster to rotate to, checked; None when
    it names none, or the one the stored spec already names (sent back unchanged)."""
    cfg = spec.ca_config
    if cfg.signing_ca_key and not cfg.signing_ca_cert:
        raise invalid("if a signing CA key is provided, the signing CA certificate must be "
                      "provided too (--ca-cert)")
    if not cfg.signing_ca_cert:
        return None
    if not cfg.signing_ca_key and givenroot.same_certificate(
            cfg.signing_ca_cert, cluster.spec.ca_config.signing_ca_cert):
        return None
    try:
        root = givenroot.check_root(cfg.signing_ca_cert, cfg.signing_ca_key or None)
    except CAError as exc:
        raise invalid(f"invalid root CA: {exc}") from None
    if not root.can_sign and not externalca.matching(cfg.external_cas, cluster.root_ca_cert,
                                                     root.cert_pem):
        raise invalid(NO_EXTERNAL_CA)
    return root


def _rotate_to(cluster: pb.Cluster, new: pb.Cluster, root: RootCA,
               start_rotation: StartRotation) -> None:
    """Points `new` (the updated copy of `cluster`) at the operator's root `root`."""
    if givenroot.same_certificate(root.cert_pem, cluster.root_ca_cert):
        new.ClearField("root_rotation")   # back to the current root: nothing to rotate
        if root.can_sign:                 # (given its key, the managers sign again)
            new.root_ca_key = root.key_pem
    elif cluster.HasField("root_rotation") and givenroot.same_certificate(
            root.cert_pem, cluster.root_rotation.ca_cert):
        if root.can_sign:                 # already rotating to it
            new.root_rotation.ca_key = root.key_pem
    elif cluster.root_ca_cert and givenroot.same_key(root.cert_pem, cluster.root_ca_cert):
        raise invalid("invalid root CA: the new root CA certificate has the current root's "
                      "key; a rotation needs a new key")
    else:
        new.root_rotation.CopyFrom(_started(cluster, start_rotation, root))


def check_external_cas(cas: Iterable[pb.ExternalCA]) -> None:
    """Refuses external CAs the managers could not use: a protocol other than cfssl,
    a URL that is not https, a root certificate that is not one."""
    for ca in cas:
        if ca.protocol.lower() != "cfssl":
            raise invalid(f"unsupported external CA protocol {ca.protocol!r}: only cfssl")
        parts = urlsplit(ca.url)
        if parts.scheme != "https" or not parts.hostname:
            raise invalid(f"invalid external CA URL {ca.url!r}: an https URL is required")
        if ca.ca_cert:
            try:
                givenroot.check_certificate(ca.ca_cert)
            except CAError as exc:
                raise invalid(f"invalid CA certificate of external CA {ca.url}: {exc}") from None


def _check_signer(new: pb.Cluster) -> None:
    """A root whose key the cluster does not hold needs an external CA that signs for it."""
    keyless = externalca.keyless_signer(new)
    if keyless and not externalca.for_root(new, keyless):
        raise invalid(NO_EXTERNAL_CA)


def _started(cluster: pb.Cluster, start_rotation: StartRotation,
             root: Optional[RootCA]) -> pb.RootRotation:
    try:
        return start_rotation(cluster, root)
    except CAError:
        raise invalid("rotating away from a root CA whose key the cluster does not hold is "
                      "not supported by Shoal: give that root's key first (swarm ca --rotate "
                      "--ca-cert ROOT --ca-key KEY), then rotate") from None


def updated_cluster(cluster: pb.Cluster, request: cpb.UpdateClusterRequest,
                    start_rotation: StartRotation,
                    min_expiry: _dt.timedelta = POLICY_MIN_EXPIRY) -> pb.Cluster:
    """The cluster with the requested spec (name kept), tokens and keys rotated as asked."""
    check_version("cluster", cluster, request.cluster_version)
    spec = request.spec
    check_spec(cluster, spec, min_expiry)
    root = desired_root(cluster, spec)
    new = copy(cluster)
    new.spec.CopyFrom(spec)
    new.spec.ca_config.signing_ca_key = b""   # only ever in the request
    new.spec.annotations.name = cluster.spec.annotations.name
    if request.rotate_worker_token:
        new.join_tokens.worker = tokens.generate(cluster.root_ca_cert)
    if request.rotate_manager_token:
        new.join_tokens.manager = tokens.generate(cluster.root_ca_cert)
    if root is not None:
        new.spec.ca_config.signing_ca_cert = root.cert_pem
        _rotate_to(cluster, new, root, start_rotation)
    elif spec.ca_config.force_rotate != cluster.spec.ca_config.force_rotate:
        new.root_rotation.CopyFrom(_started(cluster, start_rotation, None))
    _check_signer(new)
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
