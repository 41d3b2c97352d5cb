"""End to end on one node (issue 12, worker side): a named volume outlives its task's
container, a replacement task, the service, and a `kill -9` of the daemon (the
adopted container keeps it); a bind of a missing path makes the task REJECTED with
Docker's reason. Services are created through the gRPC API with pb specs.

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


def read_log(container_id: str) -> list[str]:
    return podman("exec", container_id, "cat", "/data/log").stdout.split()


def test_named_volume_outlives_containers_services_and_a_daemon_kill(
        node: SingleNode, volume: str) -> None:
    script = "echo start >> /data/log; exec sleep 3600"
    spec = service_spec("keeper", script)
    spec.task.container.mounts.add(type=pb.Mount.VOLUME, source=volume, target="/data")
    create(node, spec)
    first = one_running(node, "keeper")
    assert read_log(first.status.container_status.container_id) == ["start"]

    # kill the container: the replacement task on this node sees the file
    podman("kill", "--signal", "KILL", first.status.container_status.container_id)
    second = one_running(node, "keeper", not_id=first.id)
    cid = second.status.container_status.container_id
    assert read_log(cid) == ["start", "start"]

    # kill -9 of the daemon, restart: the container is adopted, the data is there
    node.kill9()
    node.restart()
    adopted = one_running(node, "keeper")
    assert (adopted.id, adopted.status.container_status.container_id) == (second.id, cid)
    assert read_log(cid) == ["start", "start"]

    # service rm: the container goes, the volume stays; a new service sees the data
    node.api().RemoveService(cpb.RemoveServiceRequest(service_id="keeper"), timeout=30)
    wait(lambda: not node.containers("keeper", all_states=True), 60, "keeper's containers gone")
    assert podman("volume", "exists", volume, check=False).returncode == 0
    again = service_spec("keeper2", script)
    again.task.container.mounts.add(type=pb.Mount.VOLUME, source=volume, target="/data")
    create(node, again)
    third = one_running(node, "keeper2")
    assert read_log(third.status.container_status.container_id) == ["start"] * 3


def test_bind_of_a_missing_path_is_rejected_with_dockers_reason(
        node: SingleNode, tmp_path) -> None:
    missing = str(tmp_path / "no-such-dir")
    spec = service_spec("binder", "sleep 3600")
    spec.task.container.mounts.add(type=pb.Mount.BIND, source=missing, target="/x")
    create(node, spec)

    def rejected() -> pb.Task | None:
        return next((t for t in node.tasks("binder") if t.status.state == pb.REJECTED), None)
    task = wait(rejected, 60, "a REJECTED task of binder")
    assert task.status.err == ('invalid mount config for type "bind": bind source path does '
                               f"not exist: {missing}")
    assert node.containers("binder", all_states=True) == []


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
