"""Cluster benchmarks on a 3-manager + 2-worker lab: failover, reschedule, convergence.

- failover: `kill -9` of the leader's daemon → first write accepted by another
  manager (polled with 0.5 s attempts on every survivor);
- reschedule: `kill -9` of a worker → every replica of a 5-replica service
  RUNNING on the other nodes (default heartbeat settings);
- convergence: `CreateService` of N replicas (default 40) → N tasks RUNNING over
  the 5 nodes, next to the podman floor (`floor_rest`: podman alone starting N
  containers in parallel through its REST API) measured in the same run, and
  their ratio (target ≤ 1.2). Each node has podman storage of its own; the
  image is pulled on every node (through its namespace, from the lab
  registry) before anything is timed, as on a warm cluster.

Prints one figure per line. Run: `python -m lab.bench.cluster [--runs 3] [--replicas 40]`.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import grpc

from lab.bench.podman_floor import floor_rest_once, floor_rest_per_node
from lab.cluster import Lab
from lab.images import ensure_demo_image
from lab.leadership import agreed_leader
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb
from tests.labfixtures import lab_cluster

MANAGERS = ("manager1", "manager2", "manager3")


class Bench:
    def __init__(self, lab: Lab, image: str) -> None:
        self.lab, self.image = lab, image
        self._channels: dict[str, grpc.Channel] = {}
        self._seq = 0

    def api(self, node: str) -> control_pb2_grpc.ControlStub:
        if node not in self._channels:
            self._channels[node] = grpc.insecure_channel(
                f"unix://{self.lab.data_dir(node)}/swarm.sock")
        return control_pb2_grpc.ControlStub(self._channels[node])

    def spec(self, replicas: int, name: Optional[str] = None) -> pb.ServiceSpec:
        self._seq += 1
        spec = pb.ServiceSpec()
        spec.annotations.name = name or f"bench{self._seq}"
        spec.replicated.SetInParent()
        spec.replicated.replicas = replicas
        spec.task.container.image = self.image
        if replicas:
            spec.task.container.args.extend(["httpd", "-f", "-p", "8080"])
        spec.task.container.stop_grace_period.nanos = 0
        return spec

    def try_write(self, node: str, timeout: float) -> bool:
        try:
            self.api(node).CreateService(cpb.CreateServiceRequest(spec=self.spec(0)),
                                         timeout=timeout)
            return True
        except grpc.RpcError:
            return False

    def leader(self, timeout: float = 30) -> str:
        """The manager every running manager names as leader, once it accepts a write."""
        return self.lab.wait_for(
            lambda: agreed_leader(self.lab, MANAGERS, self.api, lambda n: self.try_write(n, 3)),
            timeout, "one agreed leader")

    def running(self, node: str, service_id: str) -> list[pb.Task]:
        req = cpb.ListTasksRequest(filters=cpb.ListFilters(service_ids=[service_id]))
        return [t for t in self.api(node).ListTasks(req, timeout=10).tasks
                if t.desired_state == pb.RUNNING and t.status.state == pb.RUNNING]

    def remove(self, node: str, service_id: str, name: str) -> None:
        self.api(node).RemoveService(cpb.RemoveServiceRequest(service_id=service_id), timeout=10)

        def gone() -> bool:
            return not any(self.lab.podman(n, "ps", "-aq", "--filter",
                                           f"label=com.shoal.service.name={name}").stdout.strip()
                           for n in self.lab.names())
        self.lab.wait_for(gone, 60, f"{name}'s containers removed", interval=0.2)

    def pull_everywhere(self) -> None:
        """Each node pulls the image into its own storage, through its namespace."""
        for name in self.lab.names():
            self.lab.podman(name, "pull", "--quiet", self.image, check=True, timeout=300)

    # ------------------------------------------------------------- figures --

    def failover(self) -> float:
        old = self.leader()
        others = [m for m in MANAGERS if m != old]
        self.lab.kill(old)
        killed = time.monotonic()
        self.lab.wait_for(lambda: any(self.try_write(n, 0.5) for n in others), 30,
                          "a write accepted after the leader kill", interval=0.02)
        elapsed = time.monotonic() - killed
        self.lab.start(old)
        self.lab.wait_running(old)
        self.lab.wait_ready(timeout=30)
        return elapsed

    def reschedule(self) -> float:
        leader = self.leader()
        spec = self.spec(5)
        name = spec.annotations.name
        svc = self.api(leader).CreateService(cpb.CreateServiceRequest(spec=spec), timeout=10).service
        self.lab.wait_for(lambda: len(self.running(leader, svc.id)) == 5, 60, "5 replicas running")
        victim = self.lab.node_id("worker1")
        if not any(t.node_id == victim for t in self.running(leader, svc.id)):
            raise RuntimeError("no replica landed on worker1")
        self.lab.kill("worker1")
        killed = time.monotonic()

        def moved() -> bool:
            tasks = self.running(leader, svc.id)
            return len(tasks) == 5 and all(t.node_id != victim for t in tasks)

        self.lab.wait_for(moved, 60, "worker1's replicas running elsewhere", interval=0.02)
        elapsed = time.monotonic() - killed
        self.lab.start("worker1")
        self.lab.wait_ready(timeout=30)
        self.remove(leader, svc.id, name)
        return elapsed

    def converge(self, replicas: int, timeline: bool = False) -> float:
        leader = self.leader()
        spec = self.spec(replicas)
        load = os.getloadavg()[0]
        wall, started = time.time(), time.monotonic()
        svc = self.api(leader).CreateService(cpb.CreateServiceRequest(spec=spec), timeout=10).service
        # polled every 20 ms: a finer poll costs the leader (serving ListTasks) and the
        # 2-core host more CPU than the resolution it buys
        self.lab.wait_for(lambda: len(self.running(leader, svc.id)) >= replicas, 120,
                          f"{replicas} replicas running", interval=0.02)
        elapsed = time.monotonic() - started
        if timeline:
            print(f"  {elapsed:.2f} s (load {load:.1f}): "
                  f"{self.timeline(leader, svc.id, wall)}", flush=True)
        self.remove(leader, svc.id, spec.annotations.name)
        return elapsed

    def timeline(self, leader: str, service_id: str, wall: float) -> str:
        """When the tasks were created and, per node, when its last one was reported RUNNING
        (seconds after CreateService was sent; one host, one clock)."""
        tasks = self.running(leader, service_id)
        hostnames = {self.lab.node_id(n): n for n in self.lab.names()}
        created = max(t.meta.created_at.ToNanoseconds() for t in tasks) / 1e9 - wall
        per_node: dict[str, list[float]] = {}
        for t in tasks:
            per_node.setdefault(hostnames.get(t.node_id, t.node_id[:8]), []).append(
                t.status.timestamp.ToNanoseconds() / 1e9 - wall)
        nodes = ", ".join(f"{n} {len(ts)} by +{max(ts):.2f}"
                          for n, ts in sorted(per_node.items()))
        return f"tasks created by +{created:.2f} s; running: {nodes}"




def _line(what: str, samples: Sequence[float]) -> str:
    return (f"{what}: best {min(samples):.2f} s, median {statistics.median(samples):.2f} s "
            f"(runs: {', '.join(f'{s:.2f}' for s in samples)})")


def _runs(n: int, fn: Callable[[], float]) -> list[float]:
    return [fn() for _ in range(n)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.cluster",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=40)
    opts = parser.parse_args(argv)
    image = ensure_demo_image()
    with lab_cluster(3, 2) as lab:
        lab.wait_ready(timeout=60)
        bench = Bench(lab, image)
        bench.pull_everywhere()
        # convergence first, on a cluster no fault has touched yet
        bench.converge(5)   # warm-up: image present on every node's podman, sessions open
        converge = _runs(opts.runs, lambda: bench.converge(opts.replicas, timeline=True))
        print(_line(f"converge {opts.replicas} replicas on 5 nodes", converge), flush=True)
        print(_line("failover (kill -9 leader -> write accepted)", _runs(opts.runs, bench.failover)),
              flush=True)
        print(_line("reschedule (kill -9 worker -> its replicas running elsewhere)",
                    _runs(opts.runs, bench.reschedule)), flush=True)
    print(f"load average before the floor: {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        floors = [asyncio.run(floor_rest_once(image, opts.replicas, str(Path(tmp) / "floor")))
                  for _ in range(opts.runs)]
        per_node = [asyncio.run(floor_rest_per_node(image, opts.replicas, 5,
                                                    str(Path(tmp) / "floor5")))
                    for _ in range(opts.runs)]
    print(_line(f"podman floor, {opts.replicas} containers via REST", floors), flush=True)
    print(_line(f"podman floor, {opts.replicas} containers via 5 services with 5 storages "
                "(one per lab node)", per_node), flush=True)
    print(f"ratio converge/floor (best/best): {min(converge) / min(floors):.2f} (target <= 1.2)")
    print(f"ratio converge/per-node floor (best/best): {min(converge) / min(per_node):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
