"""Prometheus metrics end to end: Debian's real `prometheus` scraping a lab cluster.

One lab (3 managers, 1 worker) whose nodes serve `/metrics` on their underlay
IP over mutual TLS (`--metrics-addr IP:9323 --metrics-tls`); a Prometheus
server on the host scrapes every node every second with a client certificate
issued by the cluster's CA, and the tests ask it through its HTTP API:
every target up, the tasks of a scaled service, a leader change after the
leader's `kill -9`, and the killed node scraped again after `swarm daemon`
(which serves the metrics address node.json kept). Every node's exposition
passes `promtool check metrics`.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, Optional

import pytest

from lab.cluster import Lab
from lab.images import ensure_demo_image
from lab.metricslab import ClientFiles, Prometheus, issue_client_certificate, scrape
from tests.labfixtures import lab_cluster

pytestmark = pytest.mark.e2e

METRICS_PORT = 9323
MANAGERS = ("manager1", "manager2", "manager3")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    ensure_demo_image()
    with lab_cluster(3, 1, metrics_port=METRICS_PORT) as running:
        running.wait_ready(timeout=30)
        yield running


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="shoal-prom-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def client(lab: Lab, workdir: Path) -> ClientFiles:
    return issue_client_certificate(lab, workdir / "client")


@pytest.fixture(scope="module")
def prometheus(lab: Lab, client: ClientFiles, workdir: Path) -> Iterator[Prometheus]:
    server = Prometheus(lab, client, workdir)
    try:
        server.wait_ready()
        yield server
    finally:
        server.close()


def instance(lab: Lab, name: str) -> str:
    return f"{lab.ip(name)}:{METRICS_PORT}"


def wait_value(lab: Lab, prometheus: Prometheus, expr: str, want: float,
               timeout: float = 30.0) -> None:
    last: list[Optional[float]] = [None]

    def reached() -> bool:
        last[0] = prometheus.scalar(expr)
        return last[0] == want
    try:
        lab.wait_for(reached, timeout, f"{expr} == {want}", interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc} (last value: {last[0]})") from None


def test_every_node_is_scraped_and_its_output_passes_promtool(
        lab: Lab, prometheus: Prometheus, client: ClientFiles) -> None:
    wait_value(lab, prometheus, "count(up == 1)", len(lab.names()))
    jobs = {t["labels"]["instance"]: t["labels"]["job"] for t in prometheus.targets()}
    assert jobs == {instance(lab, n): f"shoal-{lab.role(n)}s" for n in lab.names()}
    # what the cluster looks like from every manager's store
    wait_value(lab, prometheus, 'min(sum by (instance) (shoal_nodes{state="ready"}))', 4)
    wait_value(lab, prometheus, 'max(sum by (instance) (shoal_nodes{role="manager"}))', 3)
    wait_value(lab, prometheus, "sum(shoal_raft_leader)", 1)
    wait_value(lab, prometheus, "sum(shoal_dispatcher_sessions)", 4)
    assert prometheus.scalar("min(shoal_node_certificate_expiry_timestamp_seconds) - time()") \
        > 24 * 3600
    for name in lab.names():
        body = scrape(lab, name, client)
        assert b"shoal_node_info{" in body
        assert (b"shoal_raft_term " in body) == (lab.role(name) == "manager")
        res = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                             timeout=30)
        assert res.returncode == 0, f"{name}: {(res.stdout + res.stderr).decode()}"


def test_tasks_running_follow_a_scale(lab: Lab, prometheus: Prometheus) -> None:
    lab.swarm("manager1", "service", "create", "-d", "--name", "web", "--replicas", "2",
              "--stop-grace-period", "1s", ensure_demo_image(), "sleep", "3600")
    wait_value(lab, prometheus, 'max(shoal_service_tasks_running{service="web"})', 2)
    lab.swarm("manager1", "service", "scale", "-d", "web=5")
    wait_value(lab, prometheus, 'max(shoal_service_tasks_desired{service="web"})', 5)
    wait_value(lab, prometheus, 'max(shoal_service_tasks_running{service="web"})', 5)
    # every manager's store agrees, and the agents run what the store says
    wait_value(lab, prometheus, 'min(shoal_service_tasks_running{service="web"})', 5)
    wait_value(lab, prometheus, 'sum(shoal_agent_tasks{state="running"})', 5)
    assert prometheus.scalar("max(shoal_scheduler_tasks_placed_total)") >= 5
    assert prometheus.scalar("sum(shoal_agent_container_start_duration_seconds_count)") >= 5
    assert prometheus.scalar("max(shoal_dispatcher_assignment_batches_total)") >= 4
    assert prometheus.scalar("max(shoal_store_write_duration_seconds_count)") > 0
    wait_value(lab, prometheus,
               'max(shoal_service_update_state{service="web",state="none"})', 1)


def test_a_leader_kill_is_counted_and_the_node_comes_back_scraped(
        lab: Lab, prometheus: Prometheus) -> None:
    leaders = prometheus.query("shoal_raft_leader == 1")
    assert len(leaders) == 1
    by_instance = {instance(lab, n): n for n in MANAGERS}
    old = by_instance[leaders[0]["metric"]["instance"]]
    survivors = [n for n in MANAGERS if n != old]
    before = {n: prometheus.scalar(f'shoal_raft_leader_changes_total{{instance='
                                   f'"{instance(lab, n)}"}}') for n in survivors}
    term = prometheus.scalar("max(shoal_raft_term)")
    assert term is not None and all(v is not None and v >= 1 for v in before.values())
    lab.kill(old)
    wait_value(lab, prometheus, f'up{{instance="{instance(lab, old)}"}}', 0)
    for name in survivors:
        wait_value(lab, prometheus, f'shoal_raft_leader_changes_total{{instance='
                                    f'"{instance(lab, name)}"}} > bool {before[name]}', 1)
    wait_value(lab, prometheus, f'sum(shoal_raft_leader{{instance!="{instance(lab, old)}"}})', 1)
    assert prometheus.scalar("max(shoal_raft_term)") > term
    lab.start(old)       # `swarm daemon --data-dir DIR`: the metrics flags come from node.json
    wait_value(lab, prometheus, f'up{{instance="{instance(lab, old)}"}}', 1)
    wait_value(lab, prometheus, f'shoal_raft_leader{{instance="{instance(lab, old)}"}}', 0)
