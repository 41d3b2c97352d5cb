"""A dry run of the scale benchmark (lab/bench/scale.py `ScaleRun`) against a simulated
cluster in this process: no daemon, no namespace, no lab.

The simulation serves the Control and Watch gRPC APIs on each "manager"'s unix socket
from one in-memory cluster that places tasks on the hollow nodes in batches, loses its
leader (a new one is elected, the nodes re-register) and reschedules the tasks of a
killed hollow process. It checks the benchmark's orchestration: every phase runs, every
catalogued figure is recorded with a plausible value, nothing is reported failed, and
the document plots. The timings themselves mean nothing here.
"""
from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any, Iterator, Optional

import grpc
import pytest

from lab.bench import scale
from lab.bench.scalefigures import FIGURES, Results, plan, points
from lab.bench.scaleplot import plot_document
from lab.localnode import wait_for
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb
from proto import watch_pb2 as wpb
from proto import watch_pb2_grpc

MANAGERS = scale.MANAGERS
StoredObject = Any   # pb.Node | pb.Service | pb.Task


class FakeCluster:
    """The store and the leader's decisions, much simplified; every commit is one
    transaction, streamed to the watchers as one message."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.version = 0
        self.nodes: dict[str, pb.Node] = {}
        self.services: dict[str, pb.Service] = {}
        self.tasks: dict[str, pb.Task] = {}
        self.alive = set(MANAGERS)
        self.leader: Optional[str] = MANAGERS[0]
        self.session: dict[str, str] = {}   # node ID -> the manager its session is with
        self.watchers: list[queue.Queue] = []
        self.ids = itertools.count(1)
        for name in MANAGERS:
            self.add_node(f"id-{name}", name, manager=True)

    # ---- store

    def commit(self, objects: list[StoredObject],
               action: wpb.WatchEvent.Action = wpb.WatchEvent.UPDATE) -> None:
        with self.lock:
            self.version += 1
            now = time.time()
            message = wpb.WatchMessage()
            for obj in objects:
                obj.meta.version = self.version
                obj.meta.updated_at.FromNanoseconds(int(now * 1e9))
                if action == wpb.WatchEvent.CREATE:
                    obj.meta.created_at.FromNanoseconds(int(now * 1e9))
                tables: dict[type, dict[str, Any]] = {
                    pb.Node: self.nodes, pb.Service: self.services, pb.Task: self.tasks}
                table = tables[type(obj)]
                if action == wpb.WatchEvent.REMOVE:
                    table.pop(obj.id, None)
                else:
                    table[obj.id] = obj
                event = message.events.add(action=action, version=self.version)
                event.committed_at.FromNanoseconds(int(now * 1e9))
                getattr(event.object, {pb.Node: "node", pb.Service: "service",
                                       pb.Task: "task"}[type(obj)]).CopyFrom(obj)
            for watcher in self.watchers:
                watcher.put(message)

    def add_node(self, node_id: str, hostname: str, manager: bool = False) -> None:
        node = pb.Node(id=node_id, role=pb.MANAGER if manager else pb.WORKER)
        node.description.hostname = hostname
        node.status.state = pb.NodeStatus.READY
        node.manager_status.leader = manager and hostname == self.leader
        self.session[node_id] = self.leader or ""
        self.commit([node], wpb.WatchEvent.CREATE)

    def later(self, delay: float, fn: Any, *args: Any) -> None:
        timer = threading.Timer(delay, fn, args)
        timer.daemon = True
        timer.start()

    # ---- the leader's work

    def workers(self, excluded: frozenset[str] | set[str] = frozenset()) -> list[str]:
        return sorted(n.id for n in self.nodes.values()
                      if n.status.state == pb.NodeStatus.READY and n.id not in excluded
                      and n.spec.availability == pb.NodeSpec.ACTIVE)

    def start_tasks(self, service: pb.Service, slots: list[int], excluded: set[str]) -> None:
        """NEW, then ASSIGNED round-robin over the active nodes, then RUNNING: 3 commits."""
        tasks = [pb.Task(id=f"task{next(self.ids)}", service_id=service.id, slot=slot,
                         service_name=service.spec.annotations.name,
                         desired_state=pb.RUNNING) for slot in slots]
        self.commit(tasks, wpb.WatchEvent.CREATE)
        nodes = self.workers(excluded)
        for task, node_id in zip(tasks, itertools.cycle(nodes)):
            task.node_id = node_id
            task.status.state = pb.ASSIGNED
        self.commit(tasks)
        for task in tasks:
            task.status.state = pb.RUNNING
        self.commit(tasks)

    def create_service(self, spec: pb.ServiceSpec) -> pb.Service:
        with self.lock:
            if spec.annotations.name in {s.spec.annotations.name
                                         for s in self.services.values()}:
                raise KeyError(spec.annotations.name)
            service = pb.Service(id=f"svc{next(self.ids)}", spec=spec)
            self.commit([service], wpb.WatchEvent.CREATE)
        if spec.replicated.replicas:
            self.later(0.01, self.start_tasks, service,
                       list(range(1, spec.replicated.replicas + 1)), set())
        return service

    def remove_service(self, service_id: str) -> None:
        with self.lock:
            service = self.services[service_id]
            tasks = [t for t in self.tasks.values() if t.service_id == service_id]
            self.commit([service], wpb.WatchEvent.REMOVE)
        for task in tasks:
            task.desired_state = task.status.state = pb.SHUTDOWN
        if tasks:
            self.commit(tasks)

    def kill_manager(self, name: str) -> None:
        with self.lock:
            self.alive.discard(name)
            if self.leader == name:
                self.leader = None
                self.later(0.1, self.elect)

    def elect(self) -> None:
        with self.lock:
            self.leader = sorted(self.alive)[0]
            managers = [n for n in self.nodes.values() if n.role == pb.MANAGER]
            for node in managers:
                node.manager_status.leader = node.description.hostname == self.leader
                self.session[node.id] = self.leader
            self.commit(managers)
        self.later(0.05, self.reregister)

    def reregister(self) -> None:
        with self.lock:
            hollow = [n for n in self.nodes.values() if n.role == pb.WORKER
                      and n.status.state == pb.NodeStatus.READY]
            for node in hollow:
                self.session[node.id] = self.leader or ""
            self.commit(hollow)

    def kill_hollow(self, node_ids: set[str]) -> None:
        with self.lock:
            down = [self.nodes[i] for i in node_ids]
            for node in down:
                node.status.state = pb.NodeStatus.DOWN
            self.commit(down)
            lost = [t for t in self.tasks.values() if t.node_id in node_ids
                    and t.desired_state == pb.RUNNING]
            for task in lost:
                task.desired_state, task.status.state = pb.SHUTDOWN, pb.ORPHANED
            self.commit(lost)
        by_service: dict[str, list[int]] = {}
        for task in lost:
            by_service.setdefault(task.service_id, []).append(int(task.slot))
        for service_id, slots in by_service.items():
            self.start_tasks(self.services[service_id], slots, node_ids)

    def metrics(self, name: str) -> dict[str, float]:
        with self.lock:
            if name not in self.alive:
                raise OSError(f"{name} refuses connections")
            up = {n.id for n in self.nodes.values() if n.status.state == pb.NodeStatus.READY
                  and (n.role == pb.WORKER or n.description.hostname in self.alive)}
            return {"shoal_raft_leader": float(self.leader == name),
                    "shoal_dispatcher_sessions":
                        float(sum(1 for i in up if self.session.get(i) == name)),
                    "shoal_dispatcher_heartbeats_total": time.monotonic() * 100}


class FakeControl(control_pb2_grpc.ControlServicer):
    """One manager's Control API over the shared cluster."""

    def __init__(self, cluster: FakeCluster, name: str) -> None:
        self.cluster, self.name = cluster, name

    def _up(self, context: Any, write: bool = False) -> None:
        if self.name not in self.cluster.alive or (write and self.cluster.leader is None):
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.name} cannot answer")

    def ListNodes(self, request, context):  # noqa: N802 (gRPC method names)
        self._up(context)
        with self.cluster.lock:
            return cpb.ListNodesResponse(nodes=list(self.cluster.nodes.values()))

    def GetNode(self, request, context):  # noqa: N802
        self._up(context)
        return cpb.GetNodeResponse(node=self.cluster.nodes[request.node_id])

    def UpdateNode(self, request, context):  # noqa: N802
        self._up(context, write=True)
        node = pb.Node()
        node.CopyFrom(self.cluster.nodes[request.node_id])
        node.spec.CopyFrom(request.spec)
        self.cluster.commit([node])
        return cpb.UpdateNodeResponse(node=node)

    def CreateService(self, request, context):  # noqa: N802
        self._up(context, write=True)
        return cpb.CreateServiceResponse(service=self.cluster.create_service(request.spec))

    def RemoveService(self, request, context):  # noqa: N802
        self._up(context, write=True)
        self.cluster.remove_service(request.service_id)
        return cpb.RemoveServiceResponse()

    def ListServices(self, request, context):  # noqa: N802
        self._up(context)
        with self.cluster.lock:
            return cpb.ListServicesResponse(services=list(self.cluster.services.values()))

    def ListTasks(self, request, context):  # noqa: N802
        self._up(context)
        wanted = set(request.filters.service_ids)
        with self.cluster.lock:
            return cpb.ListTasksResponse(tasks=[t for t in self.cluster.tasks.values()
                                                if not wanted or t.service_id in wanted])

    def ListNetworks(self, request, context):  # noqa: N802
        self._up(context)
        return cpb.ListNetworksResponse()

    def ListClusters(self, request, context):  # noqa: N802
        self._up(context)
        return cpb.ListClustersResponse(clusters=[pb.Cluster(id="cluster1")])


class FakeWatch(watch_pb2_grpc.WatchServicer):
    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster

    def Watch(self, request, context):  # noqa: N802
        stream: queue.Queue = queue.Queue()
        context.add_callback(lambda: stream.put(None))
        with self.cluster.lock:
            self.cluster.watchers.append(stream)
        context.send_initial_metadata(())
        while (message := stream.get()) is not None:
            yield message


class FakeLab:
    """The Lab methods the benchmark calls, over the simulated cluster."""

    def __init__(self, root: Path, cluster: FakeCluster) -> None:
        self.root, self.cluster = root, cluster
        self.env = dict(os.environ)
        self.groups: dict[str, dict[str, Any]] = {}
        self.servers = []
        for name in MANAGERS:
            (root / name / "raft").mkdir(parents=True)
            (root / name / "raft" / "journal").write_bytes(b"j" * 4096)
            server = grpc.server(futures.ThreadPoolExecutor(16))
            control_pb2_grpc.add_ControlServicer_to_server(FakeControl(cluster, name), server)
            watch_pb2_grpc.add_WatchServicer_to_server(FakeWatch(cluster), server)
            server.add_insecure_port(self.host(name))
            server.start()
            self.servers.append(server)

    wait_for = staticmethod(wait_for)

    def data_dir(self, name: str) -> Path:
        return self.root / name

    def host(self, name: str) -> str:
        return f"unix://{self.data_dir(name)}/swarm.sock"

    def node_id(self, name: str) -> str:
        return f"id-{name}"

    def pid(self, name: str) -> Optional[int]:
        return os.getpid() if name in self.cluster.alive else None

    def add_hollow(self, count: int) -> str:
        name = f"hollow{len(self.groups) + 1}"
        hostnames = [f"{name}-{i}" for i in range(1, count + 1)]
        self.groups[name] = {"count": count, "pid": os.getpid(), "ip": "10.0.0.9",
                             "hostnames": hostnames}
        for host in hostnames:
            self.cluster.add_node(f"id-{host}", host)
        return name

    def add_hollow_groups(self, counts: list[int], wait: bool = True) -> list[str]:
        return [self.add_hollow(count) for count in counts]

    def hollow_groups(self) -> dict[str, dict[str, Any]]:
        return self.groups

    def kill(self, name: str) -> int:
        if name in MANAGERS:
            self.cluster.kill_manager(name)
        else:
            ids = {f"id-{h}" for h in self.groups[name]["hostnames"]}
            self.groups[name]["pid"] = None
            self.cluster.later(0.05, self.cluster.kill_hollow, ids)
        return os.getpid()

    def start(self, name: str) -> int:
        self.cluster.alive.add(name)
        return os.getpid()

    def wait_running(self, name: str, timeout: float = 30.0) -> int:
        return os.getpid()

    def close(self) -> None:
        for server in self.servers:
            server.stop(0)


@pytest.fixture
def fake_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLab]:
    cluster = FakeCluster()
    lab = FakeLab(tmp_path, cluster)
    monkeypatch.setattr(scale, "issue_client_certificate", lambda lab, directory: None)
    monkeypatch.setattr(scale, "client_context", lambda files: None)
    monkeypatch.setattr(scale.ScaleRun, "scrape", lambda run, name: cluster.metrics(name))
    # the CLI would need a real daemon: its invocations print enough lines and take no time
    monkeypatch.setattr(scale, "run_once", lambda argv, env: (0.001, "row\n" * 1000))
    try:
        yield lab
    finally:
        lab.close()


def test_a_dry_run_records_every_figure(fake_lab: FakeLab, tmp_path: Path) -> None:
    opts = scale.parse_args(["--nodes", "20", "--tasks", "60", "--steady", "0.3",
                             "--calls", "2", "--per-process", "8",
                             "--json", str(tmp_path / "scale.json")])
    steps = plan(opts.nodes, opts.tasks)
    results = Results(opts.json, {}, points(steps))
    run = scale.ScaleRun(fake_lab, opts, results)   # type: ignore[arg-type]
    try:
        run.run(steps[0])
    finally:
        run.close()
    assert results.doc["notes"] == [] and run.failed == 0
    values = {r["name"]: r for r in results.doc["figures"]}
    assert set(values) == set(FIGURES)
    assert values["join_s"]["extra"]["groups"] == [6, 6, 6, 2]
    assert 0 <= values["sched_delay_p50_ms"]["value"] <= values["sched_delay_p99_ms"]["value"]
    assert values["failover_write_s"]["value"] > 0
    assert values["failover_sessions_s"]["extra"]["expected"] == 22   # 20 hollow + 2 managers
    assert values["failover_reconnect_peak_per_s"]["extra"]["reregistered"] == 20
    assert values["hollow_kill_reschedule_s"]["extra"]["killed_nodes"] == 2
    assert values["hollow_kill_reschedule_s"]["extra"]["tasks_moved"] == 6   # 60 over 20
    assert values["hollow_kill_reschedule_s"]["value"] > 0
    assert values["steady_leader_rss_mib"]["value"] > 1
    # the managers took no task (drained); the killed nodes run none any more
    cluster = fake_lab.cluster
    running = [t for t in cluster.tasks.values() if t.desired_state == pb.RUNNING]
    assert len(running) == 60
    assert not {t.node_id for t in running} & {f"id-{m}" for m in MANAGERS}
    assert not {t.node_id for t in running} & {f"id-hollow4-{i}" for i in (1, 2)}
    assert len(plot_document(results.doc, tmp_path / "plots")) == len(FIGURES) + 1


def test_a_dry_run_sweeps_tasks_and_removes_the_smaller_services(
        fake_lab: FakeLab, tmp_path: Path) -> None:
    opts = scale.parse_args(["--nodes", "10", "--tasks", "20", "40", "--steady", "0",
                             "--calls", "1"])
    steps = plan(opts.nodes, opts.tasks)
    results = Results(None, {}, points(steps))
    run = scale.ScaleRun(fake_lab, opts, results)   # type: ignore[arg-type]
    try:
        run.run(steps[0])
    finally:
        run.close()
    assert results.doc["notes"] == []
    measured = {(r["name"], r["tasks"]) for r in results.doc["figures"]}
    assert ("create_running_s", 20) in measured and ("create_running_s", 40) in measured
    assert ("failover_write_s", 40) in measured and ("failover_write_s", 20) not in measured
    assert not any(name.startswith("steady") for name, _ in measured)   # --steady 0
    names = {s.spec.annotations.name for s in fake_lab.cluster.services.values()}
    assert names == {"scale-n10-t40"}   # the 20-task service was removed
