"""UpdateCluster refuses settings Shoal does not act on (raft timings, external_ca_urls) and
default address pools no network could take a subnet from (found by the Control API
fuzz tests, tests/test_fuzz_controlapi.py: they were stored and then ignored, or made
every later `network create` fail)."""
from __future__ import annotations

from manager.controlapi import cluster as clusterrules
from manager.controlapi.common import Code
from tests.test_controlapi_rules import a_cluster, cluster_update, no_rotation, refused


def test_settings_nothing_acts_on_are_refused() -> None:
    req = cluster_update()
    req.spec.raft.election_tick = 10
    refused(Code.INVALID_ARGUMENT, "raft election and heartbeat ticks can't be changed: "
            "Shoal's raft timings are fixed; leave spec.raft.election_tick and heartbeat_tick "
            "as GetCluster returns them",
            lambda: clusterrules.updated_cluster(a_cluster(), req, no_rotation))
    req = cluster_update()
    req.spec.ca_config.external_ca_urls.append("https://ca.example")
    refused(Code.INVALID_ARGUMENT, "ca_config.external_ca_urls is not used: give external "
            "CAs as ca_config.external_cas (--external-ca protocol=cfssl,url=URL); leave "
            "external_ca_urls as GetCluster returns it",
            lambda: clusterrules.updated_cluster(a_cluster(), req, no_rotation))


def test_snapshot_settings_change_and_the_data_path_port_does_not() -> None:
    req = cluster_update()
    req.spec.raft.snapshot_interval = 500
    req.spec.raft.keep_old_snapshots = 3
    raft = clusterrules.updated_cluster(a_cluster(), req, no_rotation).spec.raft
    assert (raft.snapshot_interval, raft.keep_old_snapshots) == (500, 3)
    current = a_cluster()
    current.spec.raft.snapshot_interval = 500
    req = cluster_update()
    refused(Code.INVALID_ARGUMENT, "raft snapshot interval must be at least 1 log entry "
            "(--snapshot-interval)",
            lambda: clusterrules.updated_cluster(current, req, no_rotation))
    req = cluster_update()
    req.spec.data_path_port = 5000
    refused(Code.INVALID_ARGUMENT, "the data path port can't be changed: it is set by "
            "`swarm init --data-path-port` when the cluster is created; leave "
            "spec.data_path_port as GetCluster returns it",
            lambda: clusterrules.updated_cluster(a_cluster(), req, no_rotation))


def test_a_default_address_pool_no_network_can_use_is_refused() -> None:
    req = cluster_update()
    req.spec.default_addr_pool.append("bogus")
    refused(Code.INVALID_ARGUMENT, "invalid default address pool 'bogus': expected an IPv4 CIDR "
            "such as 10.0.0.0/8 (the cluster's default address pools and subnet size)",
            lambda: clusterrules.updated_cluster(a_cluster(), req, no_rotation))
    req = cluster_update()
    req.spec.subnet_size = 31
    refused(Code.INVALID_ARGUMENT, "invalid subnet size /31: expected 8 to 29 (the cluster's "
            "default address pools and subnet size)",
            lambda: clusterrules.updated_cluster(a_cluster(), req, no_rotation))
    req.spec.default_addr_pool.append("10.8.0.0/16")
    req.spec.subnet_size = 20
    assert list(clusterrules.updated_cluster(a_cluster(), req, no_rotation)
                .spec.default_addr_pool) == ["10.8.0.0/16"]
