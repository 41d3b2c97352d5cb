"""Convergence benchmark: `service create --replicas N` to N running tasks.

Starts a one-node cluster, creates a service of N busybox httpd replicas
through the control API (like `swarm service create -d`) and times until the
store shows N tasks RUNNING (reported by the agent after podman started each
container). In the same run it measures the floor: podman alone creating and
starting N containers in parallel through its REST API. Prints one figure per
line, and the ratio (target ≤ 1.3).

Run: `python -m lab.bench.converge --replicas 20 --runs 3`.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from lab.bench.podman_floor import floor_rest_once
from lab.images import ensure_demo_image
from lab.localnode import SingleNode, wait_for
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb


def _spec(name: str, image: str, replicas: int) -> pb.ServiceSpec:
    spec = pb.ServiceSpec()
    spec.annotations.name = name
    spec.replicated.replicas = replicas
    spec.task.container.image = image
    spec.task.container.args.extend(["httpd", "-f", "-p", "8080"])
    spec.task.container.stop_grace_period.nanos = 0
    return spec


def converge_once(node: SingleNode, image: str, replicas: int, run: int) -> float:
    """Seconds from CreateService to `replicas` tasks RUNNING; removes the service after."""
    api = node.api()
    name = f"bench{run}"
    started = time.monotonic()
    svc = api.CreateService(cpb.CreateServiceRequest(spec=_spec(name, image, replicas))).service
    req = cpb.ListTasksRequest(filters=cpb.ListFilters(service_ids=[svc.id]))
    while True:
        tasks = api.ListTasks(req).tasks
        if sum(1 for t in tasks if t.status.state == pb.RUNNING) >= replicas:
            elapsed = time.monotonic() - started
            break
        failed = [t for t in tasks if t.status.state > pb.RUNNING]
        if failed:
            raise RuntimeError(f"task failed: {failed[0].status.err}")
        if time.monotonic() - started > 120:
            raise RuntimeError("did not converge within 120 s")
        time.sleep(0.005)
    api.RemoveService(cpb.RemoveServiceRequest(service_id=svc.id))
    wait_for(lambda: not node.containers(name, all_states=True), 60, "bench containers removed")
    return elapsed




def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.converge",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    opts = parser.parse_args(argv)
    image = ensure_demo_image()
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        node = SingleNode(Path(tmp))
        try:
            node.init()
            converge_once(node, image, 1, 0)   # warm-up: agent session, image present
            samples = [converge_once(node, image, opts.replicas, run + 1)
                       for run in range(opts.runs)]
        finally:
            node.destroy()
        floors = [asyncio.run(floor_rest_once(image, opts.replicas, str(Path(tmp) / "floor")))
                  for _ in range(opts.runs)]
    best, floor = min(samples), min(floors)
    print(f"converge {opts.replicas} replicas (best of {opts.runs}): {best:.2f} s  "
          f"(median {statistics.median(samples):.2f} s)")
    print(f"podman floor, {opts.replicas} containers via REST (best of {opts.runs}): "
          f"{floor:.2f} s  (median {statistics.median(floors):.2f} s)")
    print(f"ratio converge/floor: {best / floor:.2f} (target <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
