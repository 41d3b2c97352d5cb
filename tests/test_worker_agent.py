"""The agent against a scripted in-process dispatcher (gRPC over a unix socket)
and the in-memory runtime: session, heartbeats, assignments, status batches,
reconnects, adoption of a previous run's containers, and log subscriptions."""
from __future__ import annotations

import asyncio
import itertools
import random
from pathlib import Path
from typing import AsyncIterator

import grpc
import pytest

from proto import dispatcher_pb2 as dpb
from proto import dispatcher_pb2_grpc as dgrpc
from proto import model
from proto import objects_pb2 as pb
from tests.test_worker_fakes import FakeClock, FakeRuntime, make_task, until
from worker import taskspec
from worker.agent import (RECONNECT_SPREAD, Agent, heartbeat_delay, next_backoff, parse_targets,
                          pick_container)
from worker.clock import REAL_CLOCK, Clock
from worker.runtime import ContainerState, LogLine

NODE = "node1"


class FakeDispatcher(dgrpc.DispatcherServicer):
    """Hands out scripted assignments and records what the agent sends."""

    def __init__(self) -> None:
        self.sessions: list[dpb.SessionRequest] = []
        self.session_ids = (f"s{i}" for i in itertools.count(1))
        self.live = ""
        self.heartbeats = 0
        self.tasks: dict[str, pb.Task] = {}
        self.changes: asyncio.Queue[list[dpb.AssignmentChange]] = asyncio.Queue()
        self.session_msgs: asyncio.Queue[dpb.SessionMessage | None] = asyncio.Queue()
        self.statuses: dict[str, list[pb.TaskStatus]] = {}
        self.batches: list[int] = []
        self.logs: list[dpb.PublishLogsRequest] = []
        self.fail_status_once = False

    async def Session(self, request, context):  # noqa: N802
        self.sessions.append(request)
        self.live = next(self.session_ids)
        yield dpb.SessionMessage(session_id=self.live)
        while True:
            msg = await self.session_msgs.get()
            if msg is None:
                return
            yield msg

    async def _check(self, session_id: str, context) -> None:
        if session_id != self.live:
            await context.abort(grpc.StatusCode.NOT_FOUND, "session invalid")

    async def Heartbeat(self, request, context):  # noqa: N802
        await self._check(request.session_id, context)
        self.heartbeats += 1
        return dpb.HeartbeatResponse(period=model.duration(0.1))

    async def Assignments(self, request, context):  # noqa: N802
        await self._check(request.session_id, context)
        changes = [dpb.AssignmentChange(assignment=dpb.Assignment(task=t)) for t in self.tasks.values()]
        yield dpb.AssignmentsMessage(type=dpb.AssignmentsMessage.COMPLETE, changes=changes)
        while True:
            batch = await self.changes.get()
            yield dpb.AssignmentsMessage(type=dpb.AssignmentsMessage.INCREMENTAL, changes=batch)

    async def UpdateTaskStatus(self, request, context):  # noqa: N802
        await self._check(request.session_id, context)
        if self.fail_status_once:
            self.fail_status_once = False
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "session invalid")
        self.batches.append(len(request.updates))
        for upd in request.updates:
            self.statuses.setdefault(upd.task_id, []).append(upd.status)
        return dpb.UpdateTaskStatusResponse()

    async def PublishLogs(self, request_iterator, context):  # noqa: N802
        async for request in request_iterator:
            self.logs.append(request)
        return dpb.PublishLogsResponse()

    def state(self, task_id: str) -> int:
        return self.statuses[task_id][-1].state if task_id in self.statuses else -1


class Setup:
    def __init__(self, tmp_path: Path, runtime: FakeRuntime | None = None,
                 clock: Clock = REAL_CLOCK) -> None:
        self.dispatcher = FakeDispatcher()
        self.runtime = runtime or FakeRuntime()
        self.socket = f"unix://{tmp_path}/d.sock"
        self.server = grpc.aio.server()
        dgrpc.add_DispatcherServicer_to_server(self.dispatcher, self.server)
        self.agent = Agent(NODE, self.runtime, self.socket, hostname="host-a",
                           engine_labels={"disk": "ssd"}, cluster_id="cl1", clock=clock)
        self.job: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "Setup":
        self.server.add_insecure_port(self.socket)  # the socket exists from here on
        await self.server.start()
        return self

    def run(self) -> None:
        self.job = asyncio.create_task(self.agent.run())

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.wait_for(self.agent.stop(), 5)
        await self.server.stop(0)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with Setup(tmp_path) as s:
        yield s


def test_helpers() -> None:
    assert parse_targets("unix:///a.sock") == ["unix:///a.sock"]
    assert parse_targets("10.0.0.1:2377, 10.0.0.2:2377") == ["10.0.0.1:2377", "10.0.0.2:2377"]
    assert [round(b, 1) for b in itertools.accumulate(range(6), lambda b, _: next_backoff(b),
                                                      initial=0.1)][:7] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert heartbeat_delay(5.0) == 4.5 and 0 < heartbeat_delay(0.1) < 0.1
    run = ContainerState(id="r", name="r", labels={}, status="running", running=True, started_at=1)
    old = ContainerState(id="o", name="o", labels={}, status="exited", running=False, started_at=5)
    assert pick_container([old, run]) == (run, [old])


async def test_session_runs_assigned_tasks_and_removes_them(setup: Setup) -> None:
    d, rt = setup.dispatcher, setup.runtime
    d.tasks = {t.id: t for t in (make_task("a"), make_task("b", slot=2))}
    setup.run()
    await until(lambda: d.state("a") == pb.RUNNING and d.state("b") == pb.RUNNING)
    desc = d.sessions[0].description
    assert d.sessions[0].node_id == NODE and desc.hostname == "host-a"
    assert desc.engine_version == "fake 1.0" and dict(desc.engine_labels) == {"disk": "ssd"}
    assert desc.resources.nano_cpus >= 1_000_000_000 and desc.resources.memory_bytes > 0
    assert desc.platform.os == "linux" and desc.platform.architecture
    states = [s.state for s in d.statuses["a"]]
    assert states == sorted(states) and states[-1] == pb.RUNNING
    await until(lambda: d.heartbeats >= 3)
    labels = rt.by_task("a")[0].labels
    assert labels[taskspec.LABEL_CLUSTER_ID] == "cl1" and labels[taskspec.LABEL_NODE_ID] == NODE
    # Desired shutdown through an update, removal through a REMOVE change.
    b = make_task("b", slot=2, desired=pb.SHUTDOWN)
    await d.changes.put([dpb.AssignmentChange(assignment=dpb.Assignment(task=b))])
    await until(lambda: d.state("b") == pb.SHUTDOWN)
    a_container = rt.by_task("a")[0].id
    await d.changes.put([dpb.AssignmentChange(assignment=dpb.Assignment(task=make_task("a")),
                                              action=dpb.AssignmentChange.REMOVE)])
    await until(lambda: a_container not in rt.containers and "a" not in setup.agent.task_states())
    assert len(rt.by_task("b")) == 1  # shut down, not removed


async def test_reconnects_and_resends_unacknowledged_status(setup: Setup) -> None:
    d = setup.dispatcher
    d.tasks = {"a": make_task("a")}
    d.fail_status_once = True
    setup.run()
    await until(lambda: d.state("a") == pb.RUNNING)
    assert len(d.sessions) >= 2 and setup.agent.session_id == d.live
    assert d.sessions[1].session_id == "s1"  # the agent names its previous session
    # The dispatcher closes the session stream: the agent opens a new one.
    before = len(d.sessions)
    await d.session_msgs.put(None)
    await until(lambda: len(d.sessions) > before and setup.agent.connected.is_set())
    assert setup.runtime.count("create") == 1  # the task was not restarted


async def test_agent_retries_until_the_dispatcher_comes_up(tmp_path: Path) -> None:
    clock = FakeClock()
    s = Setup(tmp_path, clock=clock)
    s.dispatcher.tasks = {"a": make_task("a")}
    s.run()
    for _ in range(3):  # a few failed attempts, each followed by a longer pause
        await until(clock.pending, what="the agent to pause after a failed attempt")
        clock.advance(clock.pending()[0])
    assert clock.requested[:3] == pytest.approx([0.1, 0.2, 0.4])
    assert not s.agent.connected.is_set()
    async with s:
        await until(clock.pending, what="the agent to pause before its next attempt")
        clock.advance(clock.pending()[0])
        await until(lambda: s.dispatcher.state("a") == pb.RUNNING, timeout=5)


async def test_heartbeats_at_the_period_the_dispatcher_gives(tmp_path: Path) -> None:
    clock = FakeClock()
    async with Setup(tmp_path, clock=clock) as s:
        d = s.dispatcher
        s.run()
        await until(lambda: d.heartbeats == 1 and clock.pending(), what="the first heartbeat")
        for n in (2, 3):
            assert clock.pending() == pytest.approx([heartbeat_delay(0.1)])  # the period: 0.1 s
            clock.advance(heartbeat_delay(0.1))
            await until(lambda: d.heartbeats == n and clock.pending(), what=f"heartbeat {n}")
        assert clock.requested == pytest.approx([heartbeat_delay(0.1)] * 3)


async def test_restart_adopts_containers_of_a_previous_run(tmp_path: Path) -> None:
    rt = FakeRuntime()
    kept_task = make_task("a", state=pb.RUNNING)
    kept = rt.add(taskspec.container_labels(kept_task, NODE), running=True)
    exited_task = make_task("x", state=pb.RUNNING)
    exited = rt.add(taskspec.container_labels(exited_task, NODE), running=False, exit_code=2)
    gone = rt.add(taskspec.container_labels(make_task("g", state=pb.RUNNING), NODE), running=True)
    dup_task = make_task("d", state=pb.RUNNING)
    dup_old = rt.add(taskspec.container_labels(dup_task, NODE), running=False, started_at=9)
    dup_live = rt.add(taskspec.container_labels(dup_task, NODE), running=True, started_at=1)
    other_node = rt.add(taskspec.container_labels(make_task("o"), "node2"), running=True)
    async with Setup(tmp_path, rt) as s:
        s.dispatcher.tasks = {t.id: t for t in (kept_task, exited_task, dup_task)}
        s.run()
        d = s.dispatcher
        await until(lambda: d.state("a") == pb.RUNNING and d.state("x") == pb.FAILED
                    and d.state("d") == pb.RUNNING)
        await until(lambda: gone.id not in rt.containers and dup_old.id not in rt.containers)
        assert d.statuses["a"][-1].container_status.container_id == kept.id
        assert d.statuses["x"][-1].container_status.exit_code == 2
        assert d.statuses["d"][-1].container_status.container_id == dup_live.id
        assert rt.count("create") == 0 and rt.count("start") == 0
        assert exited.id in rt.containers and other_node.id in rt.containers
        assert ("stop", gone.id) in rt.calls


async def test_log_subscriptions(setup: Setup) -> None:
    d, rt = setup.dispatcher, setup.runtime
    d.tasks = {"a": make_task("a")}
    setup.run()
    await until(lambda: d.state("a") == pb.RUNNING)
    cid = setup.agent.container_of("a")
    rt.output[cid] = [LogLine("stdout", b"one", 1.0), LogLine("stderr", b"two", 2.0),
                      LogLine("stdout", b"three", 3.0)]
    sub = dpb.LogSubscription(id="L1", task_ids=["a", "elsewhere"], tail=2)
    await d.session_msgs.put(dpb.SessionMessage(session_id=d.live, log_subscriptions=[sub]))
    await until(lambda: any(r.close for r in d.logs))
    lines = [m for r in d.logs for m in r.messages]
    assert [m.data for m in lines] == [b"two", b"three"]
    assert lines[0].stream == lines[0].STDERR and lines[0].task_name == "web.1"
    assert lines[0].node_id == NODE and lines[0].service_id == "svc1" and lines[0].timestamp == 2.0
    assert all(r.subscription_id == "L1" for r in d.logs)
    # A follow subscription streams until it is closed.
    d.logs.clear()
    follow = dpb.LogSubscription(id="L2", task_ids=["a"], follow=True, tail=-1)
    await d.session_msgs.put(dpb.SessionMessage(session_id=d.live, log_subscriptions=[sub, follow]))
    await until(lambda: len([m for r in d.logs for m in r.messages]) == 3)
    assert setup.agent._logs.active == {"L2"}  # L1 finished and is not repeated
    closed = dpb.LogSubscription(id="L2", close=True)
    await d.session_msgs.put(dpb.SessionMessage(session_id=d.live, log_subscriptions=[closed]))
    await until(lambda: not setup.agent._logs.active)


async def test_many_status_updates_are_batched(setup: Setup) -> None:
    d = setup.dispatcher
    d.tasks = {f"t{i}": make_task(f"t{i}", slot=i + 1) for i in range(150)}
    setup.run()
    await until(lambda: all(d.state(f"t{i}") == pb.RUNNING for i in range(150)), timeout=10)
    total_updates = sum(d.batches)
    assert max(d.batches) <= 100
    assert len(d.batches) < total_updates / 5  # far fewer calls than updates



async def test_reconnecting_after_an_open_session_waits_a_random_spread(tmp_path: Path) -> None:
    """A session that was open and broke is retried after a random pause below
    RECONNECT_SPREAD (the nodes of a cluster losing their leader together spread out)."""
    clock = FakeClock()
    s = Setup(tmp_path, clock=clock)
    s.agent.rng = random.Random(7)
    expected = random.Random(7).uniform(0.0, RECONNECT_SPREAD)
    assert 0.0 < expected < RECONNECT_SPREAD
    async with s:
        s.run()
        await until(s.agent.connected.is_set, what="a session")
        before = len(clock.requested)
        await s.dispatcher.session_msgs.put(None)   # the dispatcher ends the session
        await until(lambda: round(expected, 9) in clock.pending(),
                    what="the agent to pause after its session broke")
        assert round(expected, 9) in [round(r, 9) for r in clock.requested[before:]]
        assert len(s.dispatcher.sessions) == 1          # not reconnected before the pause
        clock.advance(expected)
        await until(lambda: len(s.dispatcher.sessions) == 2, what="the new session")
