"""End to end: the gRPC surface (health, reflection, watch) and node-level commands."""
from __future__ import annotations

import json
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from lab import images
from proto import objects_pb2 as pb
from proto import watch_pb2 as wpb
from proto import watch_pb2_grpc
from tests.cluster import SingleNode
from tests.helpers import wait

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    images.ensure_demo_image()
    n = SingleNode(tmp_path_factory.mktemp("api"))
    try:
        n.init()
        yield n
    finally:
        n.destroy()


def _channel(node: SingleNode) -> grpc.Channel:
    return grpc.insecure_channel(f"unix://{node.data_dir}/swarm.sock")


def test_health_and_reflection(node: SingleNode) -> None:
    with _channel(node) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for name in ("shoal.v1.Control", "shoal.v1.Dispatcher", "shoal.v1.Watch"):
            resp = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        answers = refl.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        names = {s.name for a in answers for s in a.list_services_response.service}
        assert {"shoal.v1.Control", "shoal.v1.Dispatcher", "shoal.v1.Watch"} <= names


def test_watch_streams_service_events(node: SingleNode) -> None:
    events: list[wpb.WatchEvent] = []
    with _channel(node) as ch:
        stub = watch_pb2_grpc.WatchStub(ch)
        call = stub.Watch(wpb.WatchRequest(selectors=[wpb.WatchSelector(kind="service")]))

        def consume() -> None:
            try:
                for msg in call:
                    events.extend(msg.events)
            except grpc.RpcError:
                pass
        reader = threading.Thread(target=consume, daemon=True)
        reader.start()
        # the stream is open once the server has sent its headers
        wait(lambda: call.initial_metadata() is not None, 5, "watch stream open")
        node.swarm("service", "create", "-d", "--name", "watched", "--replicas", "0",
                   images.ensure_demo_image())
        node.swarm("service", "rm", "watched")
        wait(lambda: [e.action for e in events] == [wpb.WatchEvent.CREATE,
                                                    wpb.WatchEvent.REMOVE],
             10, "a create and a remove event for the service, nothing else")
        assert all(e.object.service.spec.annotations.name == "watched" for e in events)
        call.cancel()
        reader.join(5)


def test_version_info_and_node_commands(node: SingleNode) -> None:
    assert "0.1.0" in node.swarm("version").stdout
    info = node.swarm("info").stdout
    assert node.node_id in info and "Is Manager: true" in info
    ls = node.swarm("node", "ls").stdout
    row = next(l for l in ls.splitlines() if node.node_id in l)
    assert "*" in row and "Ready" in row and "Active" in row and "Leader" in row
    node.swarm("node", "update", "--label-add", "zone=a", "--label-add", "disk=ssd", "self")
    node.swarm("node", "update", "--label-rm", "disk", node.node_id)
    inspected = json.loads(node.swarm("node", "inspect", node.node_id).stdout)
    assert inspected[0]["spec"]["annotations"]["labels"] == {"zone": "a"}
    res = node.swarm("node", "update", "--availability", "sideways", "self", check=False)
    assert res.returncode != 0 and "sideways" in res.stderr


def test_constraints_pending_reason_and_drain(node: SingleNode) -> None:
    image = images.ensure_demo_image()
    node.swarm("node", "update", "--label-add", "zone=a", "self")
    node.swarm("service", "create", "-d", "--name", "picky", "--stop-grace-period", "1s",
               "--constraint", "node.labels.zone==b", image, "sleep", "3600")
    task = wait(lambda: [t for t in node.tasks("picky") if t.scheduling_message], 10,
                "a pending reason")[0]
    assert task.status.state == pb.PENDING
    assert "constraint" in task.scheduling_message and "1 node" in task.scheduling_message
    assert "no suitable node" in node.swarm("service", "ps", "--no-trunc", "picky").stdout
    node.swarm("node", "update", "--label-add", "zone=b", "self")
    wait(lambda: node.running("picky"), 20, "the task placed once the label matches")

    node.swarm("node", "update", "--availability", "drain", "self")
    try:
        wait(lambda: not node.containers("picky"), 15, "the drained node's task stopped")
        pending = wait(lambda: [t for t in node.tasks("picky")
                                if t.desired_state == pb.RUNNING
                                and t.status.state == pb.PENDING], 10, "a pending task")
        assert "drain" in pending[0].scheduling_message or \
            "not available" in pending[0].scheduling_message
    finally:
        node.swarm("node", "update", "--availability", "active", "self")
    wait(lambda: node.running("picky"), 20, "running again once active")
    node.swarm("service", "rm", "picky")
