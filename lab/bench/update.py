"""Rolling update under load: a 10-replica published service updated through the routing mesh.

On a 1-manager + 2-worker lab: a service of 10 busybox httpd tasks on the
workers, published on a mesh port, with a healthcheck (interval 1 s) that
passes once httpd answers; a client in the manager's network namespace
requests http://worker1:PORT/ in a loop (2 at a time, a fresh connection
each, see `lab.meshload`) for the whole update.  `service update -d` with
parallelism 2 and no delay, first `--update-order start-first`, then
`stop-first` (on the same service, one update each), timed from the update
request to the update status COMPLETED.  Prints, per order, the time to
complete and failed/total requests, one figure per line.

Run as root: `python -m lab.bench.update` (under /tmp/shoal-e2e.lock on
shared machines).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence

import grpc

from lab.cluster import Lab
from lab.images import ensure_demo_image
from lab.localnode import wait_for
from lab.meshload import MeshLoad, answers
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb
from tests.labfixtures import lab_cluster

PORT = 8095
NAME = "upd"
HEALTH_CMD = "timeout 2 wget -q -O /dev/null http://127.0.0.1/"


def _api(lab: Lab) -> control_pb2_grpc.ControlStub:
    return control_pb2_grpc.ControlStub(
        grpc.insecure_channel(f"unix://{lab.data_dir('manager1')}/swarm.sock"))


def _service(lab: Lab) -> Optional[pb.Service]:
    found = _api(lab).ListServices(cpb.ListServicesRequest(), timeout=5).services
    return next((s for s in found if s.spec.annotations.name == NAME), None)


def _running(lab: Lab, service_id: str) -> int:
    req = cpb.ListTasksRequest(filters=cpb.ListFilters(service_ids=[service_id]))
    tasks = _api(lab).ListTasks(req, timeout=5).tasks
    return sum(1 for t in tasks if t.desired_state == pb.RUNNING
               and t.status.state == pb.RUNNING)


def _state(lab: Lab) -> str:
    """The update status and each task's slot, version and states (for a stalled update)."""
    svc = _service(lab)
    if svc is None:
        return "no service"
    req = cpb.ListTasksRequest(filters=cpb.ListFilters(service_ids=[svc.id]))
    tasks = sorted(_api(lab).ListTasks(req, timeout=5).tasks, key=lambda t: (t.slot, t.id))
    rows = [f"slot {t.slot} v{t.spec_version} desired {pb.TaskState.Name(t.desired_state)} "
            f"state {pb.TaskState.Name(t.status.state)} {t.status.err}" for t in tasks]
    return (f"update {pb.UpdateStatus.State.Name(svc.update_status.state)} "
            f"{svc.update_status.message!r} spec v{svc.spec_version}; tasks: " + "; ".join(rows))


def _create(lab: Lab, image: str, replicas: int) -> pb.Service:
    script = "mkdir -p /www && echo v > /www/index.html && exec httpd -f -p 80 -h /www"
    res = lab.swarm("manager1", "service", "create", "-d", "--name", NAME,
                    "--replicas", str(replicas), "-p", f"{PORT}:80",
                    "--constraint", "node.role==worker", "--stop-grace-period", "1s",
                    "--health-cmd", HEALTH_CMD, "--health-interval", "1s",
                    "--health-timeout", "3s", "--health-retries", "2",
                    "--update-parallelism", "2", "--update-delay", "0s",
                    "--update-monitor", "1s", "-e", "V=0", image, "sh", "-c", script,
                    check=False)
    if res.returncode != 0:
        raise RuntimeError(f"service create failed: {res.stderr}")
    svc = wait_for(lambda: _service(lab), 10, "the service")
    wait_for(lambda: _running(lab, svc.id) == replicas, 120, f"{replicas} tasks running")
    return svc


def update_once(lab: Lab, order: str, version: int, replicas: int) -> tuple[float, int, int]:
    """(seconds to COMPLETED, failed requests, total requests) of one update."""
    netns = lab.net.netns_path("manager1")
    target = lab.ip("worker1")
    wait_for(lambda: answers(netns, target, PORT), 30, "the mesh port answering")
    load = MeshLoad(netns, target, PORT, workers=2)
    try:
        start = time.monotonic()
        res = lab.swarm("manager1", "service", "update", "-d", "--update-order", order,
                        "--env-add", f"V={version}", NAME, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"service update failed: {res.stderr}")

        def completed() -> bool:
            svc = _service(lab)
            return bool(svc and svc.update_status.state == pb.UpdateStatus.COMPLETED
                        and any(f"V={version}" == e for e in svc.spec.task.container.env))
        try:
            wait_for(completed, 90, f"the {order} update completed", 0.1)
        except AssertionError as err:
            raise RuntimeError(f"{err}; {_state(lab)}") from None
        elapsed = time.monotonic() - start
    finally:
        result = load.stop()
    if result.errors:
        print(f"  first errors ({order}): {result.errors}", file=sys.stderr)
    svc = _service(lab)
    assert svc is not None
    wait_for(lambda: _running(lab, svc.id) == replicas, 60, f"{replicas} tasks running")
    return elapsed, result.failed, result.total


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=10)
    opts = parser.parse_args(argv)
    image = ensure_demo_image()
    with lab_cluster(1, 2) as lab:
        lab.wait_ready(timeout=30)
        _create(lab, image, opts.replicas)
        for version, order in enumerate(("start-first", "stop-first"), start=1):
            elapsed, failed, total = update_once(lab, order, version, opts.replicas)
            print(f"rolling update {order}, {opts.replicas} replicas, parallelism 2: "
                  f"{elapsed:.1f} s to completed", flush=True)
            print(f"rolling update {order}: failed requests {failed}/{total}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
