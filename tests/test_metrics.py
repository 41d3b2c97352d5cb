"""Unit tests of the metrics: collectors, instruments, the address rule, the endpoint.

No daemon: collectors read fake sources or a store state machine, the
instruments are driven through a one-node in-process store and the
orchestrator, and the endpoint is served on a loopback port of this process
(plain, then mutual TLS with certificates of a throw-away CA, then renewed).
Every exposition is also checked by Debian's `promtool check metrics`.
"""
from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from metrics.collectors import (CHUNK, AgentCollector, ClusterCollector, NodeCollector,
                                RaftCollector, RaftStatus, count_tasks, desired_tasks)
from metrics.instruments import NodeMetrics
from node.metricsserver import MetricsServer, MetricsServerError, node_registry
from node.state import MetricsEndpoint, NodeState, apply_metrics_flags, metrics_endpoint
from pki import node as pkinode
from pki.ca import RootCA
from pki.holder import CredentialsHolder
from proto import model
from proto import objects_pb2 as pb
from raft import actions
from raft.store import Store
from tests.test_orchestrator import Sim, mk_node, mk_service
from tests.test_store import FAST, free_port

CLUSTER = "c" * 25
PROMTOOL = shutil.which("promtool")


def promtool_check(text: bytes) -> None:
    """`promtool check metrics` accepts the exposition (lint problems included)."""
    assert PROMTOOL is not None, "promtool is missing: apt-get install prometheus"
    res = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                         timeout=30)
    assert res.returncode == 0, (res.stdout + res.stderr).decode()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


# ----------------------------------------------------------------- collectors --

def _task(tid: str, service: str, state: int, desired: int = pb.RUNNING) -> pb.Task:
    t = pb.Task(id=tid, service_id=service, desired_state=desired)
    t.status.state = state
    return t


def _cluster() -> dict[str, list]:
    manager = mk_node("m1")
    manager.role = pb.MANAGER
    down = mk_node("w2", state=pb.NodeStatus.DOWN, availability=pb.NodeSpec.DRAIN)
    web = mk_service("web", 3)
    web.update_status.state = pb.UpdateStatus.UPDATING
    glob = mk_service("agent", None)
    tasks = [_task("t1", "web", pb.RUNNING), _task("t2", "web", pb.RUNNING),
             _task("t3", "web", pb.PENDING), _task("t4", "web", pb.SHUTDOWN, pb.SHUTDOWN),
             _task("t5", "agent", pb.RUNNING), _task("t6", "agent", pb.RUNNING, pb.SHUTDOWN)]
    return {"node": [manager, mk_node("w1"), down], "service": [web, glob], "task": tasks}


def test_cluster_collector_counts_nodes_tasks_and_services() -> None:
    objects = _cluster()
    registry = CollectorRegistry()
    registry.register(ClusterCollector(lambda kind: objects[kind]))
    assert value(registry, "shoal_nodes", role="manager", state="ready",
                 availability="active") == 1
    assert value(registry, "shoal_nodes", role="worker", state="ready", availability="active") == 1
    assert value(registry, "shoal_nodes", role="worker", state="down", availability="drain") == 1
    assert value(registry, "shoal_nodes", role="worker", state="down", availability="active") == 0
    assert value(registry, "shoal_tasks", state="running") == 4
    assert value(registry, "shoal_tasks", state="pending") == 1
    assert value(registry, "shoal_tasks", state="failed") == 0
    web = {"service": "web", "service_id": "web"}
    assert value(registry, "shoal_service_tasks_desired", **web) == 3
    assert value(registry, "shoal_service_tasks_running", **web) == 2
    assert value(registry, "shoal_service_tasks", state="shutdown", **web) == 1
    assert value(registry, "shoal_service_update_state", state="updating", **web) == 1
    assert value(registry, "shoal_service_update_state", state="completed", **web) == 0
    agent = {"service": "agent", "service_id": "agent"}
    # a global service wants what the orchestrator wants running; the one being shut
    # down counts neither as desired nor as running
    assert value(registry, "shoal_service_tasks_desired", **agent) == 1
    assert value(registry, "shoal_service_tasks_running", **agent) == 1
    assert value(registry, "shoal_service_update_state", state="none", **agent) == 1
    promtool_check(generate_latest(registry))


def test_desired_tasks_of_a_job_are_its_unfinished_tasks() -> None:
    job = pb.Service(id="j")
    job.spec.replicated_job.total_completions = 4
    counts = {(pb.RUNNING, pb.COMPLETE): 2, (pb.COMPLETE, pb.COMPLETE): 1}
    assert desired_tasks(job, counts) == 2


def test_collectors_read_their_sources_at_every_scrape() -> None:
    states = {"t1": pb.RUNNING}
    status = [RaftStatus(term=3, last_index=40, commit_index=39, applied_index=38,
                         is_leader=True, members=3)]
    expiry = [1_900_000_000.0]
    registry = CollectorRegistry()
    registry.register(AgentCollector(lambda: dict(states)))
    registry.register(RaftCollector(lambda: status[0]))
    registry.register(NodeCollector("n1", "manager", lambda: expiry[0], lambda: 5))
    assert value(registry, "shoal_agent_tasks", state="running") == 1
    assert value(registry, "shoal_raft_term") == 3
    assert value(registry, "shoal_raft_commit_index") == 39
    assert value(registry, "shoal_raft_leader") == 1
    assert value(registry, "shoal_node_info", node_id="n1", role="manager") == 1
    assert value(registry, "shoal_dispatcher_sessions") == 5
    promtool_check(generate_latest(registry))
    states["t2"] = pb.FAILED
    status[0] = RaftStatus(term=4, last_index=41, commit_index=41, applied_index=41,
                           is_leader=False, members=3)
    expiry[0] = 1_950_000_000.0
    assert value(registry, "shoal_agent_tasks", state="failed") == 1
    assert value(registry, "shoal_raft_term") == 4
    assert value(registry, "shoal_raft_leader") == 0
    assert value(registry, "shoal_node_certificate_expiry_timestamp_seconds") == 1_950_000_000.0


def test_tasks_are_counted_across_chunks() -> None:
    tasks = [_task(f"t{i}", f"s{i % 3}", pb.RUNNING if i % 2 else pb.FAILED)
             for i in range(2 * CHUNK + 7)]
    counts = count_tasks(tasks)
    assert sum(counts.values()) == len(tasks)
    assert counts[("s0", pb.RUNNING, pb.RUNNING)] == sum(
        1 for i in range(len(tasks)) if i % 3 == 0 and i % 2)


def test_cluster_collector_reuses_its_answer_while_the_store_version_stays() -> None:
    objects = _cluster()
    version = [7]
    reads: list[str] = []

    def list_objects(kind: str) -> list:
        reads.append(kind)
        return objects[kind]

    registry = CollectorRegistry()
    registry.register(ClusterCollector(list_objects, lambda: version[0]))
    assert value(registry, "shoal_tasks", state="pending") == 1
    objects["task"].append(_task("t7", "web", pb.PENDING))
    assert value(registry, "shoal_tasks", state="pending") == 1   # same version: cached
    assert reads == ["task", "node", "service"]
    version[0] = 8
    assert value(registry, "shoal_tasks", state="pending") == 2


def test_raft_collector_says_nothing_without_a_store() -> None:
    registry = CollectorRegistry()
    registry.register(RaftCollector(lambda: None))
    assert value(registry, "shoal_raft_term") is None


# ----------------------------------------------------------------- instruments --

def test_store_counts_writes_applies_appends_and_leaders(tmp_path: Path) -> None:
    metrics = NodeMetrics()
    store = Store("node1", str(tmp_path), f"127.0.0.1:{free_port()}", tuning=FAST,
                  metrics=metrics)
    store.start()
    try:
        store.wait_ready(10)
        before = value(metrics.registry, "shoal_store_write_duration_seconds_count") or 0
        for i in range(3):
            svc = pb.Service(id=model.new_id())
            svc.spec.annotations.name = f"s{i}"
            store.commit([actions.create(svc)])
        r = metrics.registry
        assert value(r, "shoal_store_write_duration_seconds_count") == before + 3
        assert (value(r, "shoal_raft_apply_duration_seconds_count") or 0) >= 3
        assert (value(r, "shoal_raft_append_duration_seconds_count") or 0) >= 3
        assert value(r, "shoal_raft_leader_changes_total") == 1
        status = store.raft_status()
        assert status is not None and status.is_leader and status.members == 1
        assert status.commit_index >= status.applied_index >= 3
        assert status.last_index >= status.commit_index
    finally:
        store.close()
    assert store.raft_status() is None


def test_a_reconcile_plan_counts_the_tasks_it_placed() -> None:
    sim = Sim()
    for i in range(3):
        sim.put(mk_node(f"n{i}"))
    sim.put(mk_service("web", 3))
    assert sim.step().placed == 3
    assert sim.step().placed == 0


# ------------------------------------------------------------ the address rule --

@pytest.mark.parametrize("addr,tls,expected", [
    ("9323", False, "127.0.0.1:9323"),
    (":9323", False, "127.0.0.1:9323"),
    ("localhost:9100", False, "127.0.0.1:9100"),
    ("127.0.0.2:9323", False, "127.0.0.2:9323"),
    ("[::1]:9323", False, "[::1]:9323"),
    ("10.1.2.3:9323", True, "10.1.2.3:9323"),
    ("0.0.0.0:9323", True, "0.0.0.0:9323"),
])
def test_metrics_addresses_accepted(addr: str, tls: bool, expected: str) -> None:
    endpoint = metrics_endpoint(addr, tls)
    assert endpoint is not None and str(endpoint) == expected and endpoint.tls == tls


@pytest.mark.parametrize("addr,tls,says", [
    ("10.1.2.3:9323", False, "refusing to serve metrics on 10.1.2.3:9323 without TLS"),
    ("0.0.0.0:9323", False, "add --metrics-tls"),
    ("myhost:9323", True, "is not an IP address"),
    ("127.0.0.1:99999", False, "expected IP:PORT or PORT"),
    ("127.0.0.1:x", False, "expected IP:PORT or PORT"),
])
def test_metrics_addresses_refused(addr: str, tls: bool, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        metrics_endpoint(addr, tls)


def _state() -> NodeState:
    return NodeState(node_id="n", role="worker", advertise_addr="10.0.0.1:2377",
                     listen_addr="10.0.0.1:2377", raft_addr="10.0.0.1:2378")


def test_metrics_flags_are_kept_until_changed() -> None:
    state = _state()
    assert not apply_metrics_flags(state, None, None)          # nothing given: nothing kept
    assert apply_metrics_flags(state, "10.0.0.1:9323", True)
    assert (state.metrics_addr, state.metrics_tls) == ("10.0.0.1:9323", True)
    assert not apply_metrics_flags(state, None, None)          # `swarm daemon`: kept
    with pytest.raises(ValueError, match="without TLS"):       # the address again, no TLS
        apply_metrics_flags(state, "10.0.0.1:9323", None)
    assert (state.metrics_addr, state.metrics_tls) == ("10.0.0.1:9323", True)
    assert apply_metrics_flags(state, "", None)                # "" turns them off
    assert (state.metrics_addr, state.metrics_tls) == ("", False)
    with pytest.raises(ValueError, match="--metrics-tls needs --metrics-addr"):
        apply_metrics_flags(state, None, True)


# ------------------------------------------------------------------ the endpoint --

def _credentials(root: RootCA, node_id: str, role: str = "manager") -> pkinode.NodeCredentials:
    key_pem, csr_pem = pkinode.new_key_and_csr(node_id)
    cert = root.issue(csr_pem, node_id, role, CLUSTER, ip_addresses=["127.0.0.1"])
    return pkinode.NodeCredentials(key_pem=key_pem, cert_pem=cert, ca_pem=root.cert_pem)


@pytest.fixture
def root() -> RootCA:
    return RootCA.create()


@pytest.fixture
def served(root: RootCA) -> Iterator[tuple[MetricsServer, CredentialsHolder, NodeMetrics]]:
    creds = _credentials(root, "node1")
    holder = CredentialsHolder(creds)
    metrics = NodeMetrics()
    registry = node_registry(metrics, "node1", "manager", holder, lambda: {"t": pb.RUNNING},
                             list_objects=lambda kind: [], dispatcher_sessions=lambda: 0)
    server = MetricsServer(MetricsEndpoint("127.0.0.1", 0, True), registry, creds)
    server.start()
    holder.subscribe(server.refresh)
    try:
        yield server, holder, metrics
    finally:
        server.close()


def _client_context(root_pem: bytes, client: pkinode.NodeCredentials | None,
                    tmp_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=root_pem.decode())
    if client is not None:
        cert, key = tmp_path / "client.crt", tmp_path / "client.key"
        cert.write_bytes(client.cert_pem)
        key.write_bytes(client.key_pem)
        context.load_cert_chain(str(cert), str(key))
    return context


def _get(url: str, context: ssl.SSLContext | None = None) -> bytes:
    with urllib.request.urlopen(url, timeout=10, context=context) as resp:
        return bytes(resp.read())


def test_plain_endpoint_serves_the_node_registry() -> None:
    metrics = NodeMetrics()
    holder = CredentialsHolder(_credentials(RootCA.create(), "node1", "worker"))
    registry = node_registry(metrics, "node1", "worker", holder, lambda: {})
    server = MetricsServer(MetricsEndpoint("127.0.0.1", 0, False), registry)
    server.start()
    try:
        metrics.agent_container_start_seconds.observe(0.3)
        body = _get(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        server.close()
    text = body.decode()
    assert 'shoal_node_info{node_id="node1",role="worker"} 1.0' in text
    assert "shoal_agent_container_start_duration_seconds_count 1.0" in text
    assert "shoal_raft_term" not in text and "shoal_nodes" not in text  # managers only
    promtool_check(body)


def test_port_in_use_is_a_clear_error() -> None:
    holder_port = MetricsServer(MetricsEndpoint("127.0.0.1", 0, False), CollectorRegistry())
    holder_port.start()
    try:
        second = MetricsServer(MetricsEndpoint("127.0.0.1", holder_port.port, False),
                               CollectorRegistry())
        with pytest.raises(MetricsServerError, match="cannot serve metrics on 127.0.0.1:"):
            second.start()
    finally:
        holder_port.close()


def test_tls_endpoint_requires_a_client_certificate_of_the_cluster(
        served: tuple[MetricsServer, CredentialsHolder, NodeMetrics], root: RootCA,
        tmp_path: Path) -> None:
    server, _, _ = served
    url = f"https://127.0.0.1:{server.port}/metrics"
    body = _get(url, _client_context(root.cert_pem, _credentials(root, "prom", "worker"),
                                     tmp_path))
    assert b"shoal_node_certificate_expiry_timestamp_seconds" in body
    promtool_check(body)
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        _get(url, _client_context(root.cert_pem, None, tmp_path))        # no certificate
    stranger = RootCA.create()
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        _get(url, _client_context(root.cert_pem, _credentials(stranger, "x", "worker"),
                                  tmp_path))                            # another CA's
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        _get(f"http://127.0.0.1:{server.port}/metrics")                  # plain HTTP


def test_tls_endpoint_serves_a_renewed_certificate(
        served: tuple[MetricsServer, CredentialsHolder, NodeMetrics], root: RootCA,
        tmp_path: Path) -> None:
    server, holder, _ = served

    def served_serial() -> int:
        context = _client_context(root.cert_pem, _credentials(root, "prom", "worker"), tmp_path)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                der = tls.getpeercert(binary_form=True)
        assert der is not None
        return int(x509.load_der_x509_certificate(der).serial_number)

    first = served_serial()
    assert first == _serial(holder.current().cert_pem)
    renewed = _credentials(root, "node1")
    holder.update(renewed)          # what CertRenewer does after a renewal
    assert served_serial() == _serial(renewed.cert_pem) != first


def _serial(cert_pem: bytes) -> int:
    return int(x509.load_pem_x509_certificate(cert_pem).serial_number)


class _CompactedWhileRead(list):
    """A raft journal that compaction clears right after the first len() call: the
    race a scrape hits when it reads the length, then the last entry."""

    def __len__(self) -> int:
        n = super().__len__()
        self.clear()
        return n


class _RacingReplica:
    raftCurrentTerm = 3
    raftCommitIndex = 7
    raftLastApplied = 7
    fatal = None

    def __init__(self) -> None:
        self.journal = _CompactedWhileRead([(b"entry", 7, 3)])

    def members(self) -> list[str]:
        return ["127.0.0.1:1"]

    def alive(self) -> bool:
        return True


def test_a_scrape_survives_compaction_clearing_the_journal(tmp_path: Path) -> None:
    store = Store("node1", str(tmp_path), f"127.0.0.1:{free_port()}", tuning=FAST)
    store._replica = _RacingReplica()  # type: ignore[assignment]
    status = store.raft_status()
    assert status is not None and status.last_index in (0, 7)
    store._replica = _RacingReplica()  # type: ignore[assignment]
    assert store.status()["last_index"] in (0, 7)


def test_starting_the_endpoint_does_no_reverse_dns_lookup(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # start() runs on the node's event loop: a getfqdn() there can block for long
    # on a host without DNS
    def no_lookup(name: str = "") -> str:
        raise AssertionError(f"socket.getfqdn({name!r}) called while binding")
    monkeypatch.setattr(socket, "getfqdn", no_lookup)
    registry = CollectorRegistry()
    server = MetricsServer(MetricsEndpoint("127.0.0.1", 0, False), registry)
    server.start()
    try:
        body = _get(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        server.close()
    promtool_check(body)
