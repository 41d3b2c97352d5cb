"""Scale benchmark: 3 real managers and hundreds to thousands of hollow nodes (issue 15).

For each point of the matrix (default: 100 nodes / 3,000 tasks, 300 / 10,000,
then 1,000 nodes with 3,000, 10,000 and 30,000 tasks; `--nodes`, `--tasks`;
see lab.bench.scalefigures.plan) it measures, on a fresh lab per node count
(managers drained, so every task goes to a hollow node):

- join: the hollow processes are started one after the other (groups of at
  most --per-process nodes, the last one holding ~10% of the nodes) → every
  hollow node Ready in ListNodes (polled every 0.5 s);
- CreateService of T replicas → all T RUNNING, and per task created → assigned
  (the scheduling delay) and created → RUNNING, p50/p99: commit times of the
  tasks' changes as a Watch stream on a follower delivers them
  (lab.bench.scaletrack.TaskTracker);
- ListNodes, ListServices, ListTasks of the service over gRPC, and `swarm node
  ls`, `swarm service ls`, `swarm service ps SERVICE` as whole processes:
  p50/p99 over --calls calls on the leader;
- with the node count's main service running (its last, largest one): the steady
  state over --steady seconds (CPU % of a core and peak RSS of the leader, the busiest
  follower and the hollow processes, from /proc; heartbeats/s from the leader's
  shoal_dispatcher_heartbeats; the leader's raft directory on disk; the time
  to dump, encrypt and fsync a snapshot of the leader's objects, in this process);
- leader kill -9 → a write accepted by a survivor; → the new leader's
  shoal_dispatcher_sessions back at the number of nodes Ready before the kill
  (the survivors' /metrics scraped every second over mutual TLS); the peak of
  node re-registrations per second (the hollow nodes' commit times);
- kill -9 of the hollow process holding ~10% of the nodes → all T RUNNING again,
  none on its nodes.

Prints one figure per line, writes every figure to --json (saved after each one)
and a PNG per figure under --plots (lab.bench.scaleplot). A phase that fails is
reported (stderr and the JSON's notes) and the run goes on; the exit status is 1.

The benchmark process itself shares the 2 cores: it reads the task Watch stream
(several events per task) and runs the CLI. Run as root, under the e2e lock:
`python -m lab.bench.scale` (estimated at 40 minutes, not timed yet); a small
run: `python -m lab.bench.scale --nodes 50 --tasks 500 --steady 20`. Re-plot a
saved document with `python -m lab.bench.scaleplot design/scale/scale.json --table`.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import grpc

from lab.bench.cli import run_once, swarm_command
from lab.bench.scalefigures import (Point, Results, Step, hollow_layout, metric_samples,
                                    peak_rate, percentile, plan, points, rate_bins)
from lab.bench.scaleplot import plot_document
from lab.bench.scaletrack import ProcWindow, SessionMonitor, TaskTracker, tree_bytes
from lab.cluster import REPO, Lab, LabError
from lab.images import DEMO_IMAGE
from lab.leadership import agreed_leader
from lab.metricslab import client_context, issue_client_certificate, scrape
from pki.tokens import DataCipher
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb
from raft.state import dump_view
from raft.view import StoreView
from tests.labfixtures import lab_cluster

MANAGERS = ("manager1", "manager2", "manager3")
METRICS_PORT = 9323
POLL = 0.5                               # seconds between ListNodes polls
SESSION_POLL = 1.0   # seconds between scrapes after a leader kill (each counts every task)
OPTIONS = [("grpc.max_receive_message_length", -1)]   # ListTasks of 30,000 tasks is big


def _ms(samples: Sequence[float]) -> tuple[float, float]:
    return percentile(samples, 50) * 1000, percentile(samples, 99) * 1000


def _seconds(stamp: Any) -> float:
    return float(stamp.ToNanoseconds()) / 1e9


class ScaleRun:
    """One lab (3 managers, then `step.nodes` hollow nodes) and its figures."""

    def __init__(self, lab: Lab, opts: argparse.Namespace, results: Results) -> None:
        self.lab, self.opts, self.results = lab, opts, results
        self.work = Path(tempfile.mkdtemp(prefix="scale-", dir=lab.root))
        self.files = issue_client_certificate(lab, self.work / "client")
        self.context = client_context(self.files)
        self._channels: dict[str, grpc.Channel] = {}
        self._seq = 0
        self.failed = 0
        self.victim = ""

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()

    # ------------------------------------------------------------ access --

    def channel(self, name: str) -> grpc.Channel:
        if name not in self._channels:
            self._channels[name] = grpc.insecure_channel(
                f"unix://{self.lab.data_dir(name)}/swarm.sock", options=OPTIONS)
        return self._channels[name]

    def api(self, name: str) -> control_pb2_grpc.ControlStub:
        return control_pb2_grpc.ControlStub(self.channel(name))

    def spec(self, name: str, replicas: int) -> pb.ServiceSpec:
        spec = pb.ServiceSpec()
        spec.annotations.name = name
        spec.replicated.SetInParent()
        spec.replicated.replicas = replicas
        spec.task.container.image = DEMO_IMAGE   # hollow runtimes pull nothing
        spec.task.container.stop_grace_period.nanos = 0
        return spec

    def try_write(self, name: str, timeout: float) -> Optional[float]:
        """When (monotonic) a write through `name` was accepted, or None if it was not
        (the write: a service of no replicas, removed again afterwards)."""
        self._seq += 1
        try:
            svc = self.api(name).CreateService(cpb.CreateServiceRequest(
                spec=self.spec(f"scale-probe{self._seq}", 0)), timeout=timeout).service
        except grpc.RpcError:
            return None
        accepted = time.monotonic()
        try:
            self.api(name).RemoveService(cpb.RemoveServiceRequest(service_id=svc.id), timeout=10)
        except grpc.RpcError:
            pass   # a probe of no replicas left behind costs nothing
        return accepted

    def leader(self, timeout: float = 60) -> str:
        return str(self.lab.wait_for(
            lambda: agreed_leader(self.lab, MANAGERS, self.api,
                                  lambda n: self.try_write(n, 3) is not None),
            timeout, "one agreed leader", interval=0.2))

    def scrape(self, name: str) -> dict[str, float]:
        return metric_samples(scrape(self.lab, name, self.files, self.context,
                                     timeout=2).decode())

    def nodes(self, name: str) -> list[pb.Node]:
        return list(self.api(name).ListNodes(cpb.ListNodesRequest(), timeout=60).nodes)

    def emit(self, name: str, point: Point, value: float, **extra: Any) -> None:
        print(self.results.add(name, point.nodes, point.tasks, value, extra or None), flush=True)

    def attempt(self, what: str, point: Point, fn: Callable[[], Any]) -> tuple[bool, Any]:
        """Runs one phase: (True, its result), or (False, None) once its failure is
        reported and noted."""
        try:
            return True, fn()
        except Exception as exc:   # a phase's failure must not end the run
            self.failed += 1
            text = f"{what} at N={point.nodes} T={point.tasks} failed: {exc}"
            print(f"FAILED {text}", file=sys.stderr, flush=True)
            traceback.print_exc(file=sys.stderr)
            self.results.note(text)
            return False, None

    # ------------------------------------------------------------- steps --

    def run(self, step: Step) -> None:
        first = step.points()[-1]
        if not self.attempt("drain managers", first, self.drain_managers)[0] or \
                not self.attempt("join", first, lambda: self.join(step))[0]:
            return
        for point in step.points():
            ok, created = self.attempt("create", point, lambda: self.create(point))
            if not ok:
                return
            service_id, tracker = created
            self.attempt("lists", point, lambda: self.lists(point, service_id))
            self.attempt("one more task", point, lambda: self.one_more(point))
            if not point.main:
                self.attempt("remove", point, lambda: self.remove(service_id, tracker))
                continue
            try:
                if self.opts.steady > 0:
                    self.attempt("steady", point, lambda: self.steady(point))
                self.attempt("failover", point, lambda: self.failover(point))
                self.attempt("hollow kill", point, lambda: self.hollow_kill(point, tracker))
            finally:
                tracker.stop()   # the lab goes down with the service in it

    def drain_managers(self) -> None:
        """Managers take no tasks (they would run real containers), as in big Swarm clusters."""
        api = self.api(self.leader())
        for name in MANAGERS:
            node = api.GetNode(cpb.GetNodeRequest(node_id=self.lab.node_id(name)),
                               timeout=10).node
            if node.spec.availability == pb.NodeSpec.DRAIN:
                continue
            spec = pb.NodeSpec()
            spec.CopyFrom(node.spec)
            spec.availability = pb.NodeSpec.DRAIN
            api.UpdateNode(cpb.UpdateNodeRequest(node_id=node.id, node_version=node.meta.version,
                                                 spec=spec), timeout=30)

    def join(self, step: Step) -> None:
        layout = hollow_layout(step.nodes, self.opts.per_process, self.opts.victim_fraction)
        leader = self.leader()
        started = time.monotonic()
        # every process starts at once, as hosts booting together would
        names = self.lab.add_hollow_groups(layout, wait=False)
        returned = [round(time.monotonic() - started, 2)]
        self.victim = names[-1]
        groups = self.lab.hollow_groups()
        hosts = {h for g in names for h in groups[g]["hostnames"]}
        if len(hosts) != step.nodes:
            raise LabError(f"the hollow processes hold {len(hosts)} nodes, not {step.nodes}")

        def ready() -> int:
            try:
                listed = self.nodes(leader)
            except grpc.RpcError:
                return 0
            count = sum(1 for n in listed if n.description.hostname in hosts
                        and n.status.state == pb.NodeStatus.READY)
            return count if count == len(hosts) else 0

        self.lab.wait_for(ready, 120 + step.nodes * 0.3, f"{step.nodes} hollow nodes Ready",
                          interval=POLL)
        self.emit("join_s", step.points()[-1], time.monotonic() - started,
                  groups=layout, add_hollow_returned_s=returned)

    def create(self, point: Point) -> tuple[str, TaskTracker]:
        leader = self.leader()
        follower = next(m for m in MANAGERS if m != leader and self.lab.pid(m) is not None)
        name = f"scale-n{point.nodes}-t{point.tasks}"
        tracker = TaskTracker(self.channel(follower), follower, name)
        tracker.start()
        tracker.expect(point.tasks)
        wall = time.time()
        try:
            svc = self.api(leader).CreateService(
                cpb.CreateServiceRequest(spec=self.spec(name, point.tasks)), timeout=60).service
            done = tracker.wait(120 + point.tasks / 100)
        except BaseException:
            tracker.stop()
            raise
        assigned, running = tracker.delays(wall)
        self.emit("create_running_s", point, done - wall, watch_events=tracker.events)
        self.emit("assign_p50_s", point, percentile(assigned, 50), tasks_seen=len(assigned))
        self.emit("assign_p99_s", point, percentile(assigned, 99), tasks_seen=len(assigned))
        self.emit("task_running_p50_s", point, percentile(running, 50))
        self.emit("task_running_p99_s", point, percentile(running, 99))
        return svc.id, tracker

    def one_more(self, point: Point) -> None:
        """Scheduling delay as classic Swarm measured it: with the T tasks running, one
        more task is asked for at a time (a 1-replica service), `--calls` times; each
        delay is the request's start to its task's assignment commit."""
        leader = self.leader()
        follower = next(m for m in MANAGERS if m != leader and self.lab.pid(m) is not None)
        delays: list[float] = []
        for i in range(self.opts.calls):
            name = f"one-n{point.nodes}-t{point.tasks}-{i}"
            tracker = TaskTracker(self.channel(follower), follower, name)
            tracker.start()
            try:
                tracker.expect(1)
                wall = time.time()
                svc = self.api(leader).CreateService(
                    cpb.CreateServiceRequest(spec=self.spec(name, 1)), timeout=60).service
                tracker.wait(60)
                assigned, _ = tracker.delays(wall)
                delays += assigned
                self.api(leader).RemoveService(cpb.RemoveServiceRequest(service_id=svc.id),
                                               timeout=60)
            finally:
                tracker.stop()
        p50, p99 = _ms(delays)
        self.emit("sched_delay_p50_ms", point, p50, requests=len(delays))
        self.emit("sched_delay_p99_ms", point, p99, requests=len(delays))

    def lists(self, point: Point, service_id: str) -> None:
        leader = self.leader()
        api = self.api(leader)
        listed = len(api.ListTasks(cpb.ListTasksRequest(
            filters=cpb.ListFilters(service_ids=[service_id])), timeout=120).tasks)
        if listed < point.tasks:
            raise RuntimeError(f"ListTasks of the service gave {listed} tasks, not {point.tasks}")
        calls: dict[str, Callable[[], Any]] = {
            "node_ls": lambda: api.ListNodes(cpb.ListNodesRequest(), timeout=120),
            "service_ls": lambda: api.ListServices(cpb.ListServicesRequest(), timeout=120),
            "service_ps": lambda: api.ListTasks(cpb.ListTasksRequest(
                filters=cpb.ListFilters(service_ids=[service_id])), timeout=120),
        }
        swarm = swarm_command()
        name = f"scale-n{point.nodes}-t{point.tasks}"
        commands = {"node_ls": [*swarm, "node", "ls"], "service_ls": [*swarm, "service", "ls"],
                    "service_ps": [*swarm, "service", "ps", name]}
        env = dict(self.lab.env, SWARM_HOST=self.lab.host(leader),
                   PYTHONPYCACHEPREFIX=str(self.work / "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)   # an installed `swarm` has its .pyc files
        for key, argv in commands.items():        # warm-up: page cache, bytecode, a check
            _, out = run_once(argv, env)
            least = {"node_ls": point.nodes, "service_ls": 1, "service_ps": point.tasks}[key]
            if len(out.splitlines()) < least:
                raise RuntimeError(f"`{' '.join(argv[-3:])}` printed {len(out.splitlines())} "
                                   f"lines, fewer than {least}")
        api_samples: dict[str, list[float]] = {k: [] for k in calls}
        cli_samples: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(self.opts.calls):
            for key, call in calls.items():
                started = time.perf_counter()
                call()
                api_samples[key].append(time.perf_counter() - started)
            for key, argv in commands.items():
                cli_samples[key].append(run_once(argv, env)[0])
        for prefix, samples in (("api", api_samples), ("cli", cli_samples)):
            for key, values in samples.items():
                p50, p99 = _ms(values)
                self.emit(f"{prefix}_{key}_p50_ms", point, p50, calls=len(values))
                self.emit(f"{prefix}_{key}_p99_ms", point, p99, calls=len(values))

    def remove(self, service_id: str, tracker: TaskTracker) -> None:
        """Removes the service and waits until none of its tasks runs any more."""
        try:
            self.api(self.leader()).RemoveService(
                cpb.RemoveServiceRequest(service_id=service_id), timeout=60)
            self.lab.wait_for(lambda: tracker.error is not None or tracker.active() == 0,
                              120 + tracker.good / 100, "the service's tasks ended",
                              interval=POLL)
            if tracker.error is not None:
                raise RuntimeError(f"the Watch stream failed: {tracker.error}")
        finally:
            tracker.stop()

    # ----------------------------------------------- with the service up --

    def steady(self, point: Point) -> None:
        leader = self.leader()
        followers = [m for m in MANAGERS if m != leader]
        pids = {m: self.lab.pid(m) for m in MANAGERS}
        hollow = {g: info["pid"] for g, info in self.lab.hollow_groups().items()
                  if info.get("pid")}
        missing = [m for m, p in pids.items() if p is None]
        if missing:
            raise LabError(f"managers without a daemon: {', '.join(missing)}")
        window = ProcWindow({**{m: int(p) for m, p in pids.items() if p is not None},
                             **{g: int(p) for g, p in hollow.items()}})
        before, t0 = self.scrape(leader), time.monotonic()
        window.start()
        end = t0 + self.opts.steady
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(5.0, left))   # the measurement window itself, sampled every 5 s
            window.sample()
        stats = window.finish()
        after, t1 = self.scrape(leader), time.monotonic()
        if self.leader() != leader:
            raise RuntimeError(f"the leader changed during the steady state (was {leader})")
        beats = after["shoal_dispatcher_heartbeats_total"] - \
            before["shoal_dispatcher_heartbeats_total"]
        busiest = max(followers, key=lambda m: stats[m][0])
        biggest = max(followers, key=lambda m: stats[m][1])
        mib = 1024 * 1024
        self.emit("steady_leader_cpu_pct", point, stats[leader][0], seconds=self.opts.steady)
        self.emit("steady_follower_cpu_pct", point, stats[busiest][0],
                  followers={m: round(stats[m][0], 1) for m in followers})
        self.emit("steady_hollow_cpu_pct", point, sum(stats[g][0] for g in hollow),
                  processes=len(hollow))
        self.emit("steady_leader_rss_mib", point, stats[leader][1] / mib)
        self.emit("steady_follower_rss_mib", point, stats[biggest][1] / mib)
        self.emit("steady_heartbeats_per_s", point, beats / (t1 - t0),
                  sessions=after.get("shoal_dispatcher_sessions"))
        self.emit("store_disk_mib", point,
                  tree_bytes(self.lab.data_dir(leader) / "raft") / mib)
        self.snapshot(point, leader)

    def snapshot(self, point: Point, leader: str) -> None:
        """What a raft snapshot of the leader's store costs: its objects (as the control API
        lists them) dumped, encrypted, pickled and written with fsync, as raft/replica.py
        writes one, timed in this process (the store does not time its own)."""
        api = self.api(leader)
        view = StoreView(
            nodes={n.id: n for n in api.ListNodes(cpb.ListNodesRequest(), timeout=120).nodes},
            services={s.id: s for s in api.ListServices(cpb.ListServicesRequest(),
                                                        timeout=120).services},
            tasks={t.id: t for t in api.ListTasks(cpb.ListTasksRequest(), timeout=300).tasks},
            networks={n.id: n for n in api.ListNetworks(cpb.ListNetworksRequest(),
                                                        timeout=120).networks},
            clusters={c.id: c for c in api.ListClusters(cpb.ListClustersRequest(),
                                                        timeout=120).clusters})
        cipher = DataCipher(os.urandom(32))
        path = self.work / "snapshot"
        started = time.perf_counter()
        blob = pickle.dumps(((None, None, None), cipher.encrypt(dump_view(view))), protocol=4)
        with open(path, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        elapsed = time.perf_counter() - started
        path.unlink()
        self.emit("snapshot_mib", point, len(blob) / 1024 / 1024, tasks=len(view.tasks))
        self.emit("snapshot_s", point, elapsed)

    def failover(self, point: Point) -> None:
        old = self.leader()
        survivors = [m for m in MANAGERS if m != old]
        ready = [n for n in self.nodes(old) if n.status.state == pb.NodeStatus.READY]
        hosts = {h for g in self.lab.hollow_groups().values() for h in g["hostnames"]}
        hollow_ids = {n.id for n in ready if n.description.hostname in hosts}
        expected = len(ready) - 1          # every node Ready before, but the killed one
        try:
            before: Optional[float] = self.scrape(old).get("shoal_dispatcher_sessions")
        except (OSError, RuntimeError, ValueError):
            before = None    # only a cross-check of `expected`
        monitor = SessionMonitor(self.scrape, survivors, expected, interval=SESSION_POLL)
        self.lab.kill(old)
        wall, t0 = time.time(), time.monotonic()
        monitor.start()
        accepted: list[float] = []

        def written() -> bool:
            for name in survivors:
                at = self.try_write(name, 0.5)
                if at is not None:
                    accepted.append(at)
                    return True
            return False

        try:
            self.lab.wait_for(written, 60, "a write accepted after the leader kill",
                              interval=0.02)
            done = monitor.wait(180)
        finally:
            monitor.wait(0)
        write_s = accepted[0] - t0
        last = monitor.last()
        if done is None:
            raise TimeoutError(f"the new leader's sessions did not reach {expected} within "
                               f"180 s (last sample: {last})")
        self.emit("failover_write_s", point, write_s)
        self.emit("failover_sessions_s", point, done - t0, expected=expected,
                  sessions_before_kill=before,
                  scrape_failures=monitor.failures,
                  sessions=[(round(s.at, 2), s.manager, s.sessions) for s in monitor.samples
                            if s.leader])
        new = self.leader()
        times = [_seconds(n.meta.updated_at) - wall for n in self.nodes(new)
                 if n.id in hollow_ids and _seconds(n.meta.updated_at) > wall]
        self.emit("failover_reconnect_peak_per_s", point, peak_rate(times),
                  reregistered=len(times), hollow_nodes=len(hollow_ids), new_leader=new)
        self.results.series("failover_reconnects", {
            "nodes": point.nodes, "tasks": point.tasks,
            "bins": [[t, c] for t, c in rate_bins(times, origin=0.0)]})
        self.lab.start(old)
        self.lab.wait_running(old, timeout=120)

    def hollow_kill(self, point: Point, tracker: TaskTracker) -> None:
        group = self.lab.hollow_groups()[self.victim]
        hosts = set(group["hostnames"])
        victims = {n.id for n in self.nodes(self.leader()) if n.description.hostname in hosts}
        moving = tracker.running_on(victims)
        if not moving:
            raise RuntimeError(f"no task runs on {self.victim}'s {len(victims)} nodes")
        tracker.expect(point.tasks, excluded=victims)
        self.lab.kill(self.victim)
        wall = time.time()
        done = tracker.wait(180 + point.tasks / 100)
        self.emit("hollow_kill_reschedule_s", point, done - wall, killed_nodes=len(victims),
                  tasks_moved=moving, process=self.victim)


# ------------------------------------------------------------------ main --

def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.scale",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--nodes", type=_positive, nargs="+", default=[100, 300, 1000],
                        help="hollow node counts, one lab each (default: 100 300 1000)")
    parser.add_argument("--tasks", type=_positive, nargs="+", default=[3000, 10000, 30000],
                        help="replica counts: the i-th with the i-th node count, all of them "
                             "at the largest (default: 3000 10000 30000)")
    parser.add_argument("--steady", type=float, default=120.0,
                        help="seconds of steady state per node count (0: not measured)")
    parser.add_argument("--calls", type=_positive, default=20,
                        help="calls per list latency figure (default 20)")
    parser.add_argument("--per-process", type=_positive, default=250,
                        help="hollow nodes per hollow process at most (default 250)")
    parser.add_argument("--victim-fraction", type=float, default=0.1,
                        help="share of the nodes in the hollow process killed (default 0.1)")
    parser.add_argument("--metrics-port", type=_positive, default=METRICS_PORT,
                        help=f"port of the managers' /metrics (default {METRICS_PORT})")
    parser.add_argument("--json", type=Path, default=REPO / "design" / "scale" / "scale.json",
                        help="the JSON document of every figure (default design/scale/scale.json)")
    parser.add_argument("--plots", type=Path, default=REPO / "design" / "scale",
                        help="directory of the PNG plots (default design/scale)")
    opts = parser.parse_args(argv)
    if opts.steady < 0:
        parser.error("--steady: seconds of steady state cannot be negative (0 skips it)")
    if not 0 < opts.victim_fraction <= 0.5:
        parser.error("--victim-fraction: the killed process holds more than none and at most "
                     "half of the nodes (e.g. 0.1)")
    try:
        for n in opts.nodes:
            hollow_layout(n, opts.per_process, opts.victim_fraction)
    except ValueError as err:
        parser.error(f"--nodes: {err}")
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    steps = plan(opts.nodes, opts.tasks)
    results = Results(opts.json, {k: str(v) if isinstance(v, Path) else v
                                  for k, v in vars(opts).items()}, points(steps))
    print("plan: " + "; ".join(f"N={s.nodes}: T={', '.join(map(str, s.tasks))}"
                               for s in steps), flush=True)
    failed = 0
    try:
        for step in steps:
            with lab_cluster(len(MANAGERS), 0, metrics_port=opts.metrics_port) as lab:
                lab.wait_ready(timeout=60)
                run = ScaleRun(lab, opts, results)
                try:
                    run.run(step)
                finally:
                    run.close()
                failed += run.failed
    finally:   # what was measured is plotted, also when a lab could not be brought up
        for path in plot_document(results.doc, opts.plots):
            print(f"plot: {path}", flush=True)
        print(f"json: {opts.json}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
