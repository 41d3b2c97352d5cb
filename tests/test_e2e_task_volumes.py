"""End to end on one node (issue 12, worker side): `swarm leave` keeps the node's named
volumes and takes its tasks' anonymous ones. The service is created through the gRPC
API with a pb spec. (Volumes outliving tasks, services and a daemon kill, and binds
of a missing path, are tests/test_e2e_mounts.py's, through the CLI.)

The named volume the test makes is removed when it ends, whatever happened.
"""
from __future__ import annotations

import json
import uuid
from typing import Iterator

import pytest

from lab import images
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb
from tests.cluster import SingleNode, podman
from tests.helpers import wait

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def node(tmp_path) -> Iterator[SingleNode]:
    images.ensure_demo_image()
    n = SingleNode(tmp_path)
    try:
        n.init()
        yield n
    finally:
        n.destroy()


@pytest.fixture
def volume(node: SingleNode) -> Iterator[str]:
    """A volume name; removed after the node is destroyed (a forced volume rm would
    remove a container still using it, without that container's anonymous volumes)."""
    name = f"shoaltest-e2e-{uuid.uuid4().hex[:10]}"
    yield name
    podman("volume", "rm", "-f", name, check=False)


def service_spec(name: str, script: str) -> pb.ServiceSpec:
    spec = pb.ServiceSpec()
    spec.annotations.name = name
    spec.replicated.replicas = 1
    container = spec.task.container
    container.image = images.ensure_demo_image()
    container.command.extend(["sh", "-c", script])
    container.stop_grace_period.CopyFrom(model.duration(1))
    return spec


def create(node: SingleNode, spec: pb.ServiceSpec) -> str:
    return node.api().CreateService(cpb.CreateServiceRequest(spec=spec), timeout=30).service.id


def one_running(node: SingleNode, service: str, not_id: str = "") -> pb.Task:
    def found() -> pb.Task | None:
        running = [t for t in node.running(service) if t.id != not_id]
        return running[0] if len(running) == 1 and running[0].status.container_status.container_id \
            else None
    return wait(found, 60, f"one running task of {service}")


def test_leave_keeps_named_volumes_and_takes_anonymous_ones(node: SingleNode,
                                                           volume: str) -> None:
    spec = service_spec("leaver", "echo x > /data/f; exec sleep 3600")
    spec.task.container.mounts.add(type=pb.Mount.VOLUME, source=volume, target="/data")
    spec.task.container.mounts.add(type=pb.Mount.VOLUME, target="/scratch")
    create(node, spec)
    cid = one_running(node, "leaver").status.container_status.container_id
    mounts = json.loads(podman("inspect", cid).stdout)[0]["Mounts"]
    (anonymous,) = [m["Name"] for m in mounts if m["Destination"] == "/scratch"]
    node.swarm("leave", "--force", "--data-dir", str(node.data_dir))
    assert podman("ps", "-aq", "--filter", f"id={cid}").stdout.strip() == ""
    assert podman("volume", "exists", volume, check=False).returncode == 0
    assert podman("volume", "exists", anonymous, check=False).returncode != 0
