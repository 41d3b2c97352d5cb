"""In-process scale profile of the manager's decision code and store (no lab, no daemons).

Run with `python -m lab.bench.scalecore` (options: `--nodes`, `--tasks`, `--only NAME`,
`--skip NAME`, `--profile NAME` to print a cProfile of one step's main thread, `--sort`).
It builds a synthetic cluster in
memory (N ready nodes, one replicated service of T replicas, the `ingress` network and
the cluster object, as `swarm init` leaves them) and times, one figure per line:

- the leader's reconcile pass that creates and schedules all T tasks (`create_pass`),
  the scheduler call alone (`schedule`), and the pass over the converged cluster that
  runs after every store change (`steady_pass`);
- the store's state machine: applying the T creates, T status updates (one transaction
  each batch of 1,000), and the copy a write pays after a snapshot;
- a real single-node raft store (pysyncobj, journal in a temp dir, fsync on): committing
  the T-task creation transaction and T status updates in transactions of 1,000;
- the dispatcher's work: folding T status reports into transactions (`status_actions`),
  the first assignment set of every node's session (`session_opens`), recording N
  sessions opened at once (`register_sessions`, with the number of transactions), and
  the network index (`netindex`, rebuilt after changes that touch networks);
- the Control API's list calls as the CLI makes them (`node ls`, `service ls`,
  `service ps`: filter, build and encode the response, then decode and render it);
- `ramp`: `service create --replicas T` to all T RUNNING through the real leader loop
  and dispatcher on a raft store, every node heartbeating and reading its assignment
  stream, agents replaced by 5 batched progress reports per node (one line of detail:
  when all were placed and RUNNING, reconcile passes, transactions that asked for none).

Each figure is one run on this host: wall-clock seconds and the CPU seconds of this
process (all threads; steadier than wall time on a shared machine); steps are independent.
"""
from __future__ import annotations

import argparse
import asyncio
import builtins
import cProfile
import io
import logging
import pstats
import shutil
import tempfile
import time
from typing import Any, Callable, Optional

from lab.localnode import free_port
from manager import orchestrator
from manager.allocator.networks import ingress_network
from manager.controlapi.server import ControlServicer
from manager.dispatcher import Dispatcher, _Session
from manager.leader import LeaderLoop
from manager.logbroker import LogBroker
from manager.netview import NetIndex
from cli import format as fmt
from proto import control_pb2 as cpb
from proto import dispatcher_pb2 as dpb
from proto import model
from proto import objects_pb2 as pb
from proto import store_pb2
from raft import actions
from raft.replica import RaftTuning
from raft.state import StoreState
from raft.store import Store
from raft.view import StoreView
from scheduler import schedule

NOW = 1_800_000_000.0


def _node(i: int) -> pb.Node:
    node = pb.Node(id=model.new_id(), role=pb.WORKER)
    node.spec.availability = pb.NodeSpec.ACTIVE
    node.spec.desired_role = pb.WORKER
    node.description.hostname = f"hollow-{i:05d}"
    node.description.platform.os = "linux"
    node.description.platform.architecture = "x86_64"
    node.description.resources.nano_cpus = 2_000_000_000
    node.description.resources.memory_bytes = 4 << 30
    node.spec.annotations.labels["shoal.lab.hollow"] = "true"
    node.status.state = pb.NodeStatus.READY
    node.status.addr = f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"
    node.meta.version = 1
    return node


def _service(replicas: int) -> pb.Service:
    svc = pb.Service(id=model.new_id(), spec_version=1)
    svc.spec.annotations.name = "big"
    svc.spec.task.container.image = "registry.local/busybox:latest"
    svc.spec.task.container.command.extend(["sleep", "infinity"])
    svc.spec.replicated.replicas = replicas
    svc.meta.version = 1
    svc.meta.created_at.CopyFrom(model.timestamp(NOW - 10))
    return svc


class Cluster:
    """A synthetic store state: the cluster object, ingress, N nodes, one big service."""

    def __init__(self, nodes: int, tasks: int) -> None:
        self.state = StoreState()
        cluster = pb.Cluster(id=model.new_id())
        cluster.spec.annotations.name = "default"
        ingress = ingress_network(cluster)
        ingress.id = model.new_id()
        self.nodes = [_node(i) for i in range(nodes)]
        self.service = _service(tasks)
        self.commit([actions.create(cluster), actions.create(ingress)]
                    + [actions.create(n) for n in self.nodes] + [actions.create(self.service)])

    def commit(self, acts: list) -> int:
        txn = store_pb2.StoreTransaction(proposer="bench", proposed_at=time.time())
        txn.actions.extend(acts)
        return self.state.apply(txn).version

    def view(self) -> StoreView:
        return self.state.snapshot()


def converged(nodes: int, tasks: int) -> Cluster:
    """A cluster whose big service has all its tasks placed and RUNNING."""
    cl = Cluster(nodes, tasks)
    plan = orchestrator.reconcile(cl.view(), NOW)
    cl.commit(plan.actions)
    cl.commit(running_updates(cl.view().tasks.values()))
    return cl


def running_updates(tasks) -> list:
    out = []
    for t in tasks:
        new = pb.Task()
        new.CopyFrom(t)
        new.status.state = pb.RUNNING
        new.status.message = "started"
        new.status.timestamp.CopyFrom(model.timestamp(NOW))
        out.append(actions.update(new))
    return out


class _LocalStore:
    """The reads of raft.api.ObjectStore over a StoreState (for the dispatcher's helpers)."""

    def __init__(self, state: StoreState) -> None:
        self.state = state

    @property
    def version(self) -> int:
        return self.state.version

    def get(self, kind: str, obj_id: str):
        return self.state.get(kind, obj_id)

    def list(self, kind: str) -> list:
        return self.state.list(kind)

    def by_name(self, kind: str, name: str):
        return self.state.by_name(kind, name)

    def snapshot(self) -> StoreView:
        return self.state.snapshot()

    def tasks_of(self, node_id: str = "", service_id: str = "") -> builtins.list:
        return self.state.tasks_of(node_id, service_id)


_SCRATCH: list[str] = []  # directories the steps made (raft journals): removed by main


def _scratch() -> str:
    path = tempfile.mkdtemp(prefix="scalecore-")
    _SCRATCH.append(path)
    return path


# ------------------------------------------------------------------ steps --

Step = Callable[[argparse.Namespace], Callable[[], object]]
STEPS: dict[str, Step] = {}


def step(name: str) -> Callable[[Step], Step]:
    def register(fn: Step) -> Step:
        STEPS[name] = fn
        return fn
    return register


@step("create_pass")
def _create_pass(a: argparse.Namespace) -> Callable[[], object]:
    view = Cluster(a.nodes, a.tasks).view()
    return lambda: orchestrator.reconcile(view, NOW)


@step("schedule")
def _schedule(a: argparse.Namespace) -> Callable[[], object]:
    cl = Cluster(a.nodes, a.tasks)
    view = cl.view()
    pending = []
    for slot in range(1, a.tasks + 1):
        t = pb.Task(id=model.new_id(), service_id=cl.service.id, slot=slot,
                    desired_state=pb.RUNNING, spec_version=1)
        t.spec.CopyFrom(cl.service.spec.task)
        pending.append(t)
    return lambda: schedule(view.nodes, pending, pending, view.services)


@step("steady_pass")
def _steady_pass(a: argparse.Namespace) -> Callable[[], object]:
    view = converged(a.nodes, a.tasks).view()

    def run() -> object:
        plan = orchestrator.reconcile(view, NOW + 60)
        assert not plan.actions, f"{len(plan.actions)} actions in a converged pass"
        return plan
    return run


@step("apply_creates")
def _apply_creates(a: argparse.Namespace) -> Callable[[], object]:
    cl = Cluster(a.nodes, a.tasks)
    plan = orchestrator.reconcile(cl.view(), NOW)
    txn = store_pb2.StoreTransaction(proposer="bench", proposed_at=NOW)
    txn.actions.extend(plan.actions)
    blob = txn.SerializeToString()
    return lambda: cl.state.apply(store_pb2.StoreTransaction.FromString(blob))


@step("apply_status_1000s")
def _apply_status(a: argparse.Namespace) -> Callable[[], object]:
    cl = Cluster(a.nodes, a.tasks)
    cl.commit(orchestrator.reconcile(cl.view(), NOW).actions)
    ups = running_updates(cl.view().tasks.values())
    blobs = []
    for i in range(0, len(ups), 1000):
        txn = store_pb2.StoreTransaction(proposer="bench", proposed_at=NOW)
        txn.actions.extend(ups[i:i + 1000])
        blobs.append(txn.SerializeToString())

    def run() -> None:
        for blob in blobs:
            cl.state.snapshot()  # a reader between two transactions (the leader loop does)
            cl.state.apply(store_pb2.StoreTransaction.FromString(blob))
    return run


@step("status_actions")
def _status_actions(a: argparse.Namespace) -> Callable[[], object]:
    cl = Cluster(a.nodes, a.tasks)
    cl.commit(orchestrator.reconcile(cl.view(), NOW).actions)
    disp = Dispatcher(_LocalStore(cl.state), "bench", LogBroker("bench"))  # type: ignore[arg-type]
    pending = {}
    for t in cl.view().tasks.values():
        status = pb.TaskStatus(state=pb.RUNNING, message="started")
        status.timestamp.CopyFrom(model.timestamp(NOW))
        pending[t.id] = (t.node_id, status)
    return lambda: disp._status_actions(pending)


@step("session_opens")
def _session_opens(a: argparse.Namespace) -> Callable[[], object]:
    """The first assignment set of every node's session (all nodes reconnect)."""
    cl = converged(a.nodes, a.tasks)
    store = _LocalStore(cl.state)
    disp = Dispatcher(store, "bench", LogBroker("bench"))  # type: ignore[arg-type]

    class Ctx:
        async def abort(self, *args):  # noqa: D401 - never called
            raise RuntimeError(args)

    async def opens() -> None:
        for node in cl.nodes:
            sess_id = model.new_id()
            disp._by_id[sess_id] = sess = _session(sess_id, node.id)
            disp.sessions[node.id] = sess
            gen = disp.Assignments(cpb_assign(sess_id), Ctx())
            await gen.__anext__()
            await gen.aclose()
    return lambda: asyncio.run(opens())


def _session(sess_id: str, node_id: str) -> _Session:
    return _Session(id=sess_id, node_id=node_id, last_heartbeat=time.monotonic())


def cpb_assign(sess_id: str) -> dpb.AssignmentsRequest:
    return dpb.AssignmentsRequest(session_id=sess_id)


@step("netindex")
def _netindex(a: argparse.Namespace) -> Callable[[], object]:
    view = converged(a.nodes, a.tasks).view()
    return lambda: NetIndex(view)


def _control(cl: Cluster) -> ControlServicer:
    return ControlServicer(_LocalStore(cl.state), "bench", _scratch(),  # type: ignore[arg-type]
                           LogBroker("bench"), lambda: "")


def _call(method: Callable, request: object) -> Any:
    """One Control API call as the CLI sees it: served, encoded, decoded."""
    coro = method(request, None)
    try:  # list calls never wait: run the coroutine by hand (asyncio.run would repr it)
        coro.send(None)
    except StopIteration as done:
        response = done.value
    else:
        raise RuntimeError(f"{method.__name__} waited for something")
    return type(response).FromString(response.SerializeToString())


@step("node_ls")
def _node_ls(a: argparse.Namespace) -> Callable[[], object]:
    control = _control(converged(a.nodes, a.tasks))

    def run() -> object:
        nodes = _call(control.ListNodes, cpb.ListNodesRequest(filters=cpb.ListFilters())).nodes
        return [fmt.node_row(n, "") for n in fmt.sort_nodes(nodes)]
    return run


@step("service_ls")
def _service_ls(a: argparse.Namespace) -> Callable[[], object]:
    control = _control(converged(a.nodes, a.tasks))

    def run() -> object:
        services = _call(control.ListServices,
                         cpb.ListServicesRequest(filters=cpb.ListFilters())).services
        # as cli/commands_service.py's print_services: the manager counts the tasks
        by_id = cpb.ListFilters(id_prefixes=[s.id for s in services])
        statuses = _call(control.ListServices,
                         cpb.ListServicesRequest(filters=by_id, status=True)).statuses
        return [fmt.service_row(s, [], status=(statuses[s.id].running_tasks,
                                               statuses[s.id].desired_tasks,
                                               statuses[s.id].completed_tasks,
                                               statuses[s.id].total_completions))
                for s in services]
    return run


@step("service_ps")
def _service_ps(a: argparse.Namespace) -> Callable[[], object]:
    cl = converged(a.nodes, a.tasks)
    control = _control(cl)

    def run() -> object:
        nodes = _call(control.ListNodes, cpb.ListNodesRequest()).nodes
        names = {n.id: n.description.hostname for n in nodes}
        filters = cpb.ListFilters(service_ids=[cl.service.id])
        tasks = _call(control.ListTasks, cpb.ListTasksRequest(filters=filters)).tasks
        return fmt.task_rows(list(tasks), names, NOW)
    return run


def _raft_store(tmp: str) -> Store:
    store = Store("bench", tmp, f"127.0.0.1:{free_port(span=1)}",
                  tuning=RaftTuning(compaction_entries=1_000_000))
    store.start()
    store.wait_ready(10)
    return store


def _seeded_store(a: argparse.Namespace) -> tuple[orchestrator.Plan, Store]:
    """A raft store holding the nodes and the service, and the plan that creates the tasks."""
    cl = Cluster(a.nodes, a.tasks)
    plan = orchestrator.reconcile(cl.view(), NOW)
    store = _raft_store(_scratch())
    store.commit([actions.create(n) for n in cl.nodes] + [actions.create(cl.service)], 60)
    return plan, store


@step("raft_commit_creates")
def _raft_commit_creates(a: argparse.Namespace) -> Callable[[], object]:
    plan, store = _seeded_store(a)

    def run() -> object:
        try:
            return store.commit(plan.actions, 120)
        finally:
            store.close()
    return run


@step("raft_commit_status_1000s")
def _raft_commit_status(a: argparse.Namespace) -> Callable[[], object]:
    plan, store = _seeded_store(a)
    store.commit(plan.actions, 120)
    ups = running_updates(store.list("task"))

    def run() -> object:
        try:
            for i in range(0, len(ups), 1000):
                store.snapshot()  # a reader between two transactions (the leader loop does)
                store.commit(ups[i:i + 1000], 60)
        finally:
            store.close()
        return None
    return run


_PROGRESS: tuple[pb.TaskState, ...] = (pb.ACCEPTED, pb.PREPARING, pb.READY, pb.STARTING, pb.RUNNING)


@step("ramp")
def _ramp(a: argparse.Namespace) -> Callable[[], object]:
    """The leader's side of `service create --replicas T` on N ready nodes, on a real
    one-node raft store: the leader loop creates and places the tasks, the dispatcher
    streams every node its assignments and folds every node's progress reports (5 per
    task, one call per node and state, as agents batch them) into transactions, until
    every task is RUNNING. No agents, no gRPC: what remains is the manager's own work
    (and the few calls standing in for agents)."""
    cl = Cluster(a.nodes, a.tasks)
    store = _raft_store(_scratch())
    store.commit([actions.create(o) for o in cl.state.list("cluster")]
                 + [actions.create(o) for o in cl.state.list("network")]
                 + [actions.create(n) for n in cl.nodes], 60)

    async def report(disp: Dispatcher, session_id: str, tasks: list,
                     state: pb.TaskState) -> None:
        request = dpb.UpdateTaskStatusRequest(session_id=session_id)
        for t in tasks:
            upd = request.updates.add(task_id=t.id)
            upd.status.state = state
            upd.status.timestamp.CopyFrom(model.timestamp())
        await disp.UpdateTaskStatus(request, None)

    async def heartbeats(disp: Dispatcher, session_ids: list[str]) -> None:
        """Every session heartbeats once per period, spread evenly (200/s at 1,000 nodes)."""
        period = disp.heartbeat_period()
        sent, started = 0, time.monotonic()
        while True:
            due = int((time.monotonic() - started) / period * len(session_ids))
            for n in range(sent, due):  # those whose turn came since the last look
                session_id = session_ids[n % len(session_ids)]
                await disp.Heartbeat(dpb.HeartbeatRequest(session_id=session_id), None)
            sent = max(sent, due)
            await asyncio.sleep(0.05)

    counts: list[int] = []

    async def assignments(disp: Dispatcher, session_id: str) -> None:
        """A node's assignment stream, read as an agent would (changes counted)."""
        received = 0
        try:
            async for msg in disp.Assignments(dpb.AssignmentsRequest(session_id=session_id),
                                              None):
                received += len(msg.changes)
        finally:
            counts.append(received)

    async def ramp() -> None:
        disp = Dispatcher(store, "bench", LogBroker("bench"))
        leader = LeaderLoop(store, "bench")
        sessions = {}
        for node in cl.nodes:
            sess = _session(model.new_id(), node.id)
            disp._by_id[sess.id], disp.sessions[node.id] = sess, sess
            sessions[node.id] = sess.id
        stream = store.watch_async()
        disp.start()
        leader.start()
        beating = asyncio.get_running_loop().create_task(heartbeats(disp, list(sessions.values())))
        streams = [asyncio.get_running_loop().create_task(assignments(disp, s))
                   for s in sessions.values()]
        started = time.perf_counter()
        await store.acommit([actions.create(cl.service)], 60)
        assigned: dict[str, list] = {}
        count = 0
        async for events in stream:
            for ev in events:
                t = ev.object.task
                if ev.object.WhichOneof("object") == "task" and t.status.state == pb.ASSIGNED \
                        and ev.action != ev.REMOVE:
                    assigned.setdefault(t.node_id, []).append(t)
                    count += 1
            if count >= a.tasks:
                break
        stream.close()
        placed = time.perf_counter()
        for state in _PROGRESS:
            await asyncio.gather(*(report(disp, sessions[n], ts, state)
                                   for n, ts in assigned.items()))
        done = time.perf_counter()
        running = sum(1 for t in store.list("task") if t.status.state == pb.RUNNING)
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        changes = sum(counts)
        delays = await one_more(a.one_more)   # heartbeats still coming
        beating.cancel()
        await leader.stop()
        await disp.stop()
        print(f"ramp: all placed after {placed - started:.3f} s, all RUNNING after "
              f"{done - started:.3f} s; {running} running; {leader.passes} reconcile passes, "
              f"{getattr(leader, 'ignored', 0)} transactions ignored; store version "
              f"{store.version}; {changes} assignment changes streamed")
        if delays:
            delays.sort()
            p50 = delays[len(delays) // 2]
            p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
            print(f"ramp: one more task x{len(delays)}, request -> assignment committed: "
                  f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max "
                  f"{delays[-1] * 1000:.0f} ms")

    async def one_more(calls: int) -> list[float]:
        """With the T tasks RUNNING: a 1-replica service created, its task's assignment
        awaited (request -> commit), the service removed; `calls` times (the scale
        benchmark's scheduling delay, without gRPC and agents)."""
        out: list[float] = []
        for i in range(calls):
            svc = _service(1)
            svc.id = model.new_id()
            svc.spec.annotations.name = f"one-{i}"
            stream = store.watch_async()
            started = time.perf_counter()
            await store.acommit([actions.create(svc)], 60)
            async for events in stream:
                if any(ev.object.WhichOneof("object") == "task"
                       and ev.object.task.service_id == svc.id
                       and ev.object.task.status.state == pb.ASSIGNED for ev in events):
                    break
            out.append(time.perf_counter() - started)
            logging.getLogger("scalecore").debug("one more %d: %.3f s", i, out[-1])
            stream.close()
            stored = store.get("service", svc.id)
            assert stored is not None
            await store.acommit([actions.remove(stored)], 60)
            if a.one_more_pause:
                await asyncio.sleep(a.one_more_pause)
        return out

    def run() -> None:
        try:
            asyncio.run(ramp())
        finally:
            store.close()
    return run


@step("register_sessions")
def _register_sessions(a: argparse.Namespace) -> Callable[[], object]:
    """N sessions opened at once (a leader change): their nodes recorded ready."""
    cl = Cluster(a.nodes, a.tasks)
    store = _raft_store(_scratch())
    store.commit([actions.create(n) for n in cl.nodes], 60)

    async def opens() -> None:
        disp = Dispatcher(store, "bench", LogBroker("bench"))
        disp.start()
        before = store.version
        await asyncio.gather(*(disp._register_node(
            n.id, dpb.SessionRequest(description=n.description), "10.0.0.1")
            for n in cl.nodes))
        await disp.stop()
        print(f"register_sessions: {store.version - before} transactions for {a.nodes} sessions")

    def run() -> None:
        try:
            asyncio.run(opens())
        finally:
            store.close()
    return run


# -------------------------------------------------------------------- run --

def _time(run: Callable[[], object], profile: bool, top: int,
          sort: str = "cumulative") -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one run."""
    prof = cProfile.Profile() if profile else None
    started, cpu = time.perf_counter(), time.process_time()
    if prof is not None:
        prof.enable()
    run()
    if prof is not None:
        prof.disable()
    took = (time.perf_counter() - started, time.process_time() - cpu)
    if prof is not None:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(sort).print_stats(top)
        print(out.getvalue())
    return took


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.scalecore",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=30000)
    parser.add_argument("--only", action="append", default=[], choices=sorted(STEPS),
                        help="run only this step (repeatable)")
    parser.add_argument("--skip", action="append", default=[], choices=sorted(STEPS),
                        help="leave this step out (repeatable)")
    parser.add_argument("--profile", action="append", default=[], choices=sorted(STEPS),
                        help="print a cProfile of this step (repeatable)")
    parser.add_argument("--one-more", type=int, default=20, metavar="N",
                        help="ramp: then N one-task services, one at a time (0: none)")
    parser.add_argument("--one-more-pause", type=float, default=0.5, metavar="S",
                        help="ramp: seconds between two one-task services (as the scale "
                             "benchmark's requests are apart)")
    parser.add_argument("--top", type=int, default=25, help="profile lines to print")
    parser.add_argument("--sort", default="cumulative", choices=["cumulative", "tottime"],
                        help="profile order")
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the steps' managers log every session and node
    names = a.only or [n for n in STEPS if n not in a.skip]
    try:
        for name in names:
            run = STEPS[name](a)
            wall, cpu = _time(run, name in a.profile, a.top, a.sort)
            print(f"{name} nodes={a.nodes} tasks={a.tasks}: {wall:.3f} s ({cpu:.3f} s CPU)",
                  flush=True)
    finally:
        while _SCRATCH:
            shutil.rmtree(_SCRATCH.pop(), ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
