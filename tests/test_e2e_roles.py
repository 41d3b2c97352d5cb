"""End to end on a lab: promote, demote, leave and remove, with Docker's refusals."""
from __future__ import annotations

import datetime as dt

import grpc
import pytest

from lab import images
from lab.cluster import Lab
from pki import node as pkinode
from pki import tls
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from tests.authz_matrix import call, methods
from tests.labfixtures import lab_cluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lab():
    images.ensure_demo_image()
    with lab_cluster(1, 2) as lab:
        yield lab


def method_of(path: str):
    """The descriptor of the RPC at `path`."""
    return dict(methods())[path]


def _row(lab: Lab, name: str) -> str:
    out = lab.swarm("manager1", "node", "ls").stdout
    return next((l for l in out.splitlines() if f" {name} " in f" {l} "), "")


def test_promote_then_demote(lab: Lab) -> None:
    lab.swarm("manager1", "node", "promote", "worker1")
    lab.wait_for(lambda: "Reachable" in _row(lab, "worker1"), 30, "worker1 a reachable manager")
    # the promoted node now serves the control API itself, with the same data
    ls = lab.swarm("worker1", "node", "ls").stdout
    assert "manager1" in ls and "worker2" in ls
    refused = lab.swarm("manager1", "node", "demote", "manager1", check=False)
    assert refused.returncode != 0 and "leader" in refused.stderr
    lab.swarm("manager1", "node", "demote", "worker1")
    lab.wait_for(lambda: "not a swarm manager" in
                 lab.swarm("worker1", "node", "ls", check=False).stderr, 30,
                 "worker1 back to a worker")
    row = _row(lab, "worker1")
    assert "Ready" in row and "Reachable" not in row and "Leader" not in row
    # writes still work with the one manager left
    lab.swarm("manager1", "service", "create", "-d", "--name", "afterdemote", "--replicas", "0",
              images.ensure_demo_image())
    lab.swarm("manager1", "service", "rm", "afterdemote")


def test_last_manager_cannot_be_demoted_or_leave_without_force(lab: Lab) -> None:
    res = lab.swarm("manager1", "node", "demote", "manager1", check=False)
    assert res.returncode != 0
    assert "last manager" in res.stderr or "leader" in res.stderr
    res = lab.swarm("manager1", "leave", "--data-dir", str(lab.data_dir("manager1")),
                    check=False)
    assert res.returncode != 0 and "--force" in res.stderr
    assert "Leader" in _row(lab, "manager1")


def test_removed_worker_is_refused_for_good(lab: Lab) -> None:
    node_id = lab.node_id("worker2")
    res = lab.swarm("manager1", "node", "rm", "worker2", check=False)
    assert res.returncode != 0 and "--force" in res.stderr      # it is not down
    lab.swarm("manager1", "node", "rm", "--force", "worker2")
    lab.wait_for(lambda: node_id not in lab.swarm("manager1", "node", "ls").stdout, 10,
                 "worker2 gone from node ls")
    lab.kill("worker2")
    lab.start("worker2")
    # its certificate is still valid in date, but the swarm refuses it at once
    lab.wait_for(lambda: "not a member of this swarm" in
                 lab.log_path("worker2").read_text(errors="replace"),
                 30, "the restarted worker's requests refused")
    assert node_id not in lab.swarm("manager1", "node", "ls").stdout
    # the same certificate, used directly: every node RPC is refused, by name
    creds = pkinode.load(lab.data_dir("worker2"))
    assert creds.info.not_after > dt.datetime.now(dt.timezone.utc)
    with grpc.secure_channel(f"{lab.ip('manager1')}:2377", tls.client_credentials(creds),
                             options=tls.channel_options()) as channel:
        for path in ("/shoal.v1.Dispatcher/Session", "/shoal.v1.Dispatcher/Heartbeat",
                     "/shoal.v1.Dispatcher/UpdateTaskStatus",
                     "/shoal.v1.NodeCA/RenewNodeCertificate"):
            err = call(channel, path, method_of(path))
            assert err is not None and err.code() == grpc.StatusCode.PERMISSION_DENIED, \
                (path, err)
            assert f"node {node_id} is not a member of this swarm" in err.details(), \
                (path, err.details())
    # and while its daemon keeps trying, it never comes back: a later heartbeat
    # period's refusal is logged and the node is still not listed
    refusals = lab.log_path("worker2").read_text(errors="replace").count("not a member")
    lab.wait_for(lambda: lab.log_path("worker2").read_text(errors="replace")
                 .count("not a member") > refusals, 60, "the worker's next attempt refused")
    assert node_id not in lab.swarm("manager1", "node", "ls").stdout


def test_host_network_service_answers_on_every_node(lab: Lab) -> None:
    import urllib.request

    def fetch(ip: str) -> str:
        try:
            with urllib.request.urlopen(f"http://{ip}:18080/", timeout=2) as resp:
                return resp.read().decode().strip()
        except OSError:
            return ""

    cmd = ('mkdir -p /w && echo "node $N" > /w/index.html && exec httpd -f -p 18080 -h /w')
    lab.swarm("manager1", "service", "create", "--name", "hostweb", "--mode", "global",
              "--network", "host", "--env", "N={{.Node.Hostname}}", "--stop-grace-period",
              "1s", images.ensure_demo_image(), "sh", "-c", cmd)
    members = lab.swarm("manager1", "node", "ls", "-q").stdout.split()
    serving = [n for n in lab.names() if lab.node_id(n)[:12] in " ".join(members)]
    assert len(serving) >= 2
    for name in serving:
        answer = lab.wait_for(lambda: fetch(lab.ip(name)), 20, f"{name} answering")
        assert answer == f"node {name}"
    lab.swarm("manager1", "service", "rm", "hostweb")


def test_worker_leaves_and_is_seen_down(lab: Lab) -> None:
    node_id = lab.node_id("worker1")
    assert node_id
    out = lab.swarm("worker1", "leave", "--data-dir", str(lab.data_dir("worker1"))).stdout
    assert "Node left the swarm." in out
    assert not (lab.data_dir("worker1") / "node.json").exists()
    left = lab.podman("worker1", "ps", "-aq", "--filter", f"label=com.shoal.node.id={node_id}",
                      check=True).stdout.split()
    assert left == []   # its task containers went with it (from the node's own storage)
    lab.wait_for(lambda: "Down" in _row(lab, "worker1"), 15, "worker1 Down on the manager")
    res = lab.swarm("worker1", "leave", "--data-dir", str(lab.data_dir("worker1")),
                    check=False)
    assert res.returncode != 0 and "not part of a swarm" in res.stderr


def test_swarm_update_changes_the_cluster_spec(lab: Lab) -> None:
    out = lab.swarm("manager1", "update", "--dispatcher-heartbeat", "2s",
                    "--task-history-limit", "3").stdout
    assert "Swarm updated." in out
    info = lab.swarm("manager1", "info").stdout
    cluster_id = next(l.split(":", 1)[1].strip() for l in info.splitlines()
                      if "ClusterID" in l)
    assert cluster_id
    with grpc.insecure_channel(lab.host("manager1")) as ch:
        cluster = control_pb2_grpc.ControlStub(ch).GetCluster(
            cpb.GetClusterRequest(), timeout=10).cluster
    assert cluster.spec.dispatcher.heartbeat_period.nanos == 2_000_000_000
    assert cluster.spec.orchestration.task_history_retention_limit == 3
    bad = lab.swarm("manager1", "update", "--dispatcher-heartbeat", "soon", check=False)
    assert bad.returncode != 0 and "soon" in bad.stderr
