"""Healthchecks on the agent: the check a spec asks for, the pure decision of
starting/healthy/unhealthy from results and times, the monitor's loop on a fake
clock, and the task controller's STARTING -> RUNNING and -> FAILED transitions
against the in-memory runtime (time moves only by hand: no sleeps)."""
from __future__ import annotations

import asyncio

from proto import model
from proto import objects_pb2 as pb
from tests.test_worker_fakes import FakeClock, FakeRuntime, make_task, until
from worker import health
from worker.controller import TaskController
from worker.health import (HEALTHY, STARTING, UNHEALTHY, HealthCheck, HealthMonitor,
                           HealthState, ProbeResult, health_check)
from worker.runtime import ExecResult, RuntimeError_

S = 10**9


def spec_with(test: list[str], **durations: float) -> pb.ContainerSpec:
    c = pb.ContainerSpec(image="busybox")
    c.healthcheck.test.extend(test)
    for name, seconds in durations.items():
        if name == "retries":
            c.healthcheck.retries = int(seconds)
        else:
            getattr(c.healthcheck, name).nanos = int(seconds * S)
    return c


# ------------------------------------------------------------ the check --

def test_no_healthcheck_none_and_unknown_forms_run_nothing() -> None:
    assert health_check(pb.ContainerSpec(image="busybox")) is None
    assert health_check(spec_with(["NONE"])) is None
    assert health_check(spec_with([])) is None
    assert health_check(spec_with(["CMD"])) is None
    assert health_check(spec_with(["BOGUS", "x"])) is None


def test_cmd_runs_argv_and_cmd_shell_runs_a_shell_with_docker_defaults() -> None:
    cmd = health_check(spec_with(["CMD", "test", "-f", "/tmp/ok"]))
    assert cmd == HealthCheck(argv=("test", "-f", "/tmp/ok"), interval=30.0, timeout=30.0,
                              retries=3, start_period=0.0)
    shell = health_check(spec_with(["CMD-SHELL", "wget -q localhost || exit 1"]))
    assert shell is not None and shell.argv == ("/bin/sh", "-c", "wget -q localhost || exit 1")


def test_given_durations_and_retries_are_used() -> None:
    check = health_check(spec_with(["CMD", "true"], interval=1, timeout=0.5, start_period=3,
                                   retries=2))
    assert check is not None
    assert (check.interval, check.timeout, check.start_period, check.retries) == (1, 0.5, 3, 2)


# ------------------------------------------------------- the decision --

def probe(at: float, code: int) -> ProbeResult:
    return ProbeResult(start=at, end=at + 0.1, exit_code=code, output=f"exit {code}")


def test_first_success_is_healthy_and_clears_the_streak() -> None:
    state = HealthState(retries=3, start_period=0, started_at=0)
    assert state.status == STARTING
    assert state.record(probe(1, 1)) == STARTING and state.failing_streak == 1
    assert state.record(probe(2, 0)) == HEALTHY and state.failing_streak == 0


def test_retries_consecutive_failures_make_it_unhealthy() -> None:
    state = HealthState(retries=3, start_period=0, started_at=0)
    assert state.record(probe(1, 0)) == HEALTHY
    assert state.record(probe(2, 1)) == HEALTHY
    assert state.record(probe(3, 1)) == HEALTHY
    assert state.record(probe(4, 0)) == HEALTHY  # the streak is broken
    assert [state.record(probe(t, 1)) for t in (5, 6, 7)] == [HEALTHY, HEALTHY, UNHEALTHY]
    assert state.failing_streak == 3
    assert state.record(probe(8, 0)) == UNHEALTHY  # final: the task fails


def test_never_healthy_fails_too_once_past_the_start_period() -> None:
    state = HealthState(retries=2, start_period=0, started_at=0)
    assert [state.record(probe(t, 1)) for t in (1, 2)] == [STARTING, UNHEALTHY]


def test_failures_in_the_start_period_do_not_count() -> None:
    state = HealthState(retries=1, start_period=3, started_at=100)
    assert [state.record(probe(t, 1)) for t in (100.5, 101, 102.9)] == [STARTING] * 3
    assert state.failing_streak == 0
    assert state.record(probe(103, 1)) == UNHEALTHY  # the start period is over


def test_a_failure_in_the_start_period_counts_once_healthy() -> None:
    state = HealthState(retries=1, start_period=10, started_at=0)
    assert state.record(probe(1, 0)) == HEALTHY
    assert state.record(probe(2, 1)) == UNHEALTHY


def test_only_the_last_five_results_are_kept() -> None:
    state = HealthState(retries=100, start_period=0, started_at=0)
    for t in range(8):
        state.record(probe(t, 1))
    assert [r.start for r in state.log] == [3, 4, 5, 6, 7]


# ---------------------------------------------------------- the monitor --

async def next_probe(clock: FakeClock, rt: FakeRuntime, interval: float) -> None:
    """Moves the clock past the monitor's next interval and waits for that probe."""
    before = len(rt.execs)
    await until(lambda: interval in clock.pending(), what="the monitor to sleep its interval")
    clock.advance(interval)
    await until(lambda: len(rt.execs) > before, what="the next probe")


async def started_container(rt: FakeRuntime) -> str:
    return rt.add({"com.shoal.task.id": "t1"}, running=True).id


async def test_monitor_probes_one_at_a_time_and_times_out_a_hung_check() -> None:
    clock, rt = FakeClock(), FakeRuntime()
    cid = await started_container(rt)
    changes: list[str] = []
    check = HealthCheck(argv=("true",), interval=1, timeout=2, retries=2)
    monitor = HealthMonitor(check, rt, cid, lambda status, _s: changes.append(status),
                            clock=clock)
    job = asyncio.create_task(monitor.run())
    rt.exec_result = lambda c, argv: None        # every check hangs
    await next_probe(clock, rt, 1)
    assert rt.execs == [(cid, ["true"])]
    # while the first probe hangs, no second one starts
    await until(lambda: 2 + health.EXEC_GRACE in [round(p, 6) for p in clock.pending()])
    clock.advance(2 + health.EXEC_GRACE)
    await next_probe(clock, rt, 1)
    assert rt.exec_max_in_flight == 1
    await until(lambda: clock.pending() != [])
    clock.advance(2 + health.EXEC_GRACE)
    state = await asyncio.wait_for(job, 2)
    assert changes == [UNHEALTHY] and state.failing_streak == 2
    assert "exceeded timeout" in state.log[-1].output
    assert rt.exec_in_flight == 0  # the abandoned probes were cancelled


async def test_monitor_reports_each_change_and_caps_output() -> None:
    clock, rt = FakeClock(), FakeRuntime()
    cid = await started_container(rt)
    codes = iter([0, 1, 1])
    rt.exec_result = lambda c, argv: ExecResult(next(codes), b"x" * 10000)
    changes: list[str] = []
    monitor = HealthMonitor(HealthCheck(argv=("check",), interval=5, retries=2), rt, cid,
                            lambda status, _s: changes.append(status), clock=clock)
    job = asyncio.create_task(monitor.run())
    for _ in range(3):
        await next_probe(clock, rt, 5)
    state = await asyncio.wait_for(job, 2)
    assert changes == [HEALTHY, UNHEALTHY]
    assert all(len(r.output) == health.MAX_OUTPUT for r in state.log)


# ------------------------------------------------------- the controller --

class Harness:
    """A controller on a FakeRuntime and a FakeClock, recording every status."""

    def __init__(self, task: pb.Task, runtime: FakeRuntime | None = None) -> None:
        self.clock = FakeClock()
        self.runtime = runtime or FakeRuntime()
        self.reports: list[pb.TaskStatus] = []
        self.ctrl = TaskController(task, self.runtime, lambda tid, st: self.reports.append(st),
                                   node_id="node1", clock=self.clock)
        self.job = self.ctrl.start()

    @property
    def states(self) -> list[int]:
        return [s.state for s in self.reports]

    def first(self, state: int) -> pb.TaskStatus | None:
        return next((s for s in self.reports if s.state == state), None)

    async def until(self, state: int) -> pb.TaskStatus:
        await until(lambda: self.first(state), 2.0,
                    f"{model.state_name(state)} (reported: {self.states})")
        return self.first(state)  # type: ignore[return-value]

    async def probe(self, interval: float) -> None:
        await next_probe(self.clock, self.runtime, interval)

    async def close(self) -> None:
        self.ctrl.remove()
        await asyncio.wait_for(self.job, 3)


def healthchecked_task(**durations: float) -> pb.Task:
    task = make_task()
    task.spec.container.CopyFrom(spec_with(["CMD-SHELL", "test -f /tmp/ok"], **durations))
    return task


async def test_task_with_a_healthcheck_is_running_only_once_healthy() -> None:
    h = Harness(healthchecked_task(interval=1, start_period=3, retries=1))
    await h.until(pb.STARTING)
    await until(lambda: h.runtime.count("start") == 1)
    passing = False
    h.runtime.exec_result = lambda c, argv: ExecResult(0 if passing else 1, b"")
    for _ in range(2):                          # failures within the start period
        await h.probe(1)
    await until(lambda: h.ctrl.health is not None and h.ctrl.health.in_flight == 0)
    assert h.states[-1] == pb.STARTING and h.first(pb.STARTING).message == "starting"
    passing = True
    await h.probe(1)
    running = await h.until(pb.RUNNING)
    assert running.message == "started" and running.container_status.pid > 0
    assert h.runtime.execs[0][1] == ["/bin/sh", "-c", "test -f /tmp/ok"]
    assert pb.FAILED not in h.states
    await h.close()


async def test_unhealthy_task_fails_and_its_container_is_stopped() -> None:
    h = Harness(healthchecked_task(interval=1, retries=2))
    await until(lambda: h.runtime.count("start") == 1)
    codes = iter([0, 1, 1])
    h.runtime.exec_result = lambda c, argv: ExecResult(next(codes), b"no /tmp/ok")
    await h.probe(1)
    await h.until(pb.RUNNING)
    await h.probe(1)
    await h.probe(1)
    failed = await h.until(pb.FAILED)
    assert failed.err == "unhealthy container"
    cid = h.ctrl.container_id
    await until(lambda: not h.runtime.containers[cid].running, what="the container stopped")
    assert h.runtime.count("stop") == 1
    await until(lambda: h.ctrl.idle.is_set(), what="the controller idle")
    # the container's exit after the stop does not overwrite the failure
    assert [s.err for s in h.reports if s.state == pb.FAILED] == ["unhealthy container"]
    assert h.states[-1] == pb.FAILED
    await h.close()


async def test_never_healthy_task_fails_from_starting() -> None:
    h = Harness(healthchecked_task(interval=1, retries=1))
    await until(lambda: h.runtime.count("start") == 1)
    h.runtime.exec_result = lambda c, argv: ExecResult(1, b"")
    await h.probe(1)
    failed = await h.until(pb.FAILED)
    assert failed.err == "unhealthy container" and pb.RUNNING not in h.states
    await h.close()


async def test_the_check_ends_with_its_container() -> None:
    h = Harness(healthchecked_task(interval=1))
    await h.probe(1)
    await h.until(pb.RUNNING)
    h.runtime.exit(h.ctrl.container_id, 0)
    await h.until(pb.COMPLETE)
    await until(lambda: h.clock.pending() == [], what="the monitor to end")
    await h.close()


async def test_a_check_that_cannot_run_because_the_container_ended_is_no_failure() -> None:
    h = Harness(healthchecked_task(interval=1, retries=1))
    await h.probe(1)
    await h.until(pb.RUNNING)

    def ended_meanwhile(cid: str, argv: list[str]) -> ExecResult:
        h.runtime.exit(cid, 0)
        raise RuntimeError_("container state improper")
    h.runtime.exec_result = ended_meanwhile
    await h.probe(1)
    done = await h.until(pb.COMPLETE)
    assert done.err == "" and pb.FAILED not in h.states
    await h.close()


async def test_adopted_starting_task_becomes_running_only_once_healthy() -> None:
    task = healthchecked_task(interval=1)
    task.status.state = pb.STARTING
    runtime = FakeRuntime()
    container = runtime.add({"com.shoal.task.id": "t1"}, running=True)
    clock, reports = FakeClock(), []
    ctrl = TaskController(task, runtime, lambda tid, st: reports.append(st), node_id="node1",
                          container=container, clock=clock)
    job = ctrl.start()
    await until(lambda: 1 in clock.pending(), what="the check scheduled")
    assert reports == []
    clock.advance(1)
    await until(lambda: reports, what="a report")
    assert [s.state for s in reports] == [pb.RUNNING]
    assert reports[0].container_status.pid == container.pid
    ctrl.remove()
    await asyncio.wait_for(job, 3)


async def test_without_a_healthcheck_running_is_reported_at_once_and_nothing_runs() -> None:
    task = make_task()
    task.spec.container.healthcheck.test.append("NONE")
    h = Harness(task)
    await h.until(pb.RUNNING)
    assert h.runtime.execs == [] and h.ctrl.health is None
    await h.close()


# ----------------------------------------------------- visible health --

def test_health_proto_has_status_streak_and_the_last_results() -> None:
    state = HealthState(retries=3, start_period=0, started_at=0)
    state.record(ProbeResult(1, 2, 0, "fine", 1000.5, 1001.25))
    state.record(ProbeResult(3, 4, 1, "broken", 1002.0, 1002.5))
    shown = health.health_proto(state)
    assert shown.status == HEALTHY and shown.failing_streak == 1
    assert [(r.exit_code, r.output) for r in shown.log] == [(0, "fine"), (1, "broken")]
    assert model.ts_seconds(shown.log[0].start) == 1000.5
    assert model.ts_seconds(shown.log[0].end) == 1001.25


async def test_every_status_carries_the_health_and_failures_are_reported() -> None:
    h = Harness(healthchecked_task(interval=1, retries=3))
    starting = await h.until(pb.STARTING)
    assert starting.health.status == STARTING and not starting.health.log
    await until(lambda: h.runtime.count("start") == 1)
    codes = iter([0, 0, 1, 1, 0, 1, 1, 1])
    h.runtime.exec_result = lambda c, argv: ExecResult(next(codes), b"output %d" % len(h.runtime.execs))
    await h.probe(1)
    running = await h.until(pb.RUNNING)
    assert running.health.status == HEALTHY and running.health.failing_streak == 0
    assert [r.output for r in running.health.log] == ["output 1"]
    count = len(h.reports)
    await h.probe(1)      # a success after a success is no news
    await until(lambda: h.ctrl.health.in_flight == 0 and len(h.ctrl.health.state.log) == 2)
    assert len(h.reports) == count
    await h.probe(1)      # a failure: still RUNNING (healthy), streak 1, reported
    await until(lambda: len(h.reports) > count, what="the failure reported")
    latest = h.reports[-1]
    assert latest.state == pb.RUNNING and latest.health.status == HEALTHY
    assert latest.health.failing_streak == 1 and latest.health.log[-1].exit_code == 1
    assert latest.health.log[-1].output == "output 3" and latest.container_status.pid > 0
    await h.probe(1)
    await until(lambda: h.reports[-1].health.failing_streak == 2, what="streak 2")
    await h.probe(1)      # a success clears the streak
    await until(lambda: h.reports[-1].health.failing_streak == 0, what="streak cleared")
    assert h.reports[-1].state == pb.RUNNING
    for _ in range(3):
        await h.probe(1)
    failed = await h.until(pb.FAILED)
    assert failed.health.status == UNHEALTHY and failed.health.failing_streak == 3
    assert len(failed.health.log) == health.KEEP_RESULTS
    assert [r.output for r in failed.health.log][-1] == "output 8"
    assert all(r.end.seconds >= r.start.seconds > 0 for r in failed.health.log)
    await h.close()


async def test_a_failure_while_starting_is_reported_as_starting() -> None:
    h = Harness(healthchecked_task(interval=1, retries=2))
    await until(lambda: h.runtime.count("start") == 1)
    h.runtime.exec_result = lambda c, argv: ExecResult(1, b"not yet")
    await h.probe(1)
    await until(lambda: h.reports[-1].health.failing_streak == 1, what="the failure reported")
    assert h.reports[-1].state == pb.STARTING and h.reports[-1].health.status == STARTING
    assert h.reports[-1].health.log[-1].output == "not yet"
    await h.close()


async def test_a_task_without_a_check_reports_no_health() -> None:
    h = Harness(make_task())
    running = await h.until(pb.RUNNING)
    assert not running.HasField("health")
    assert not any(s.HasField("health") for s in h.reports)
    await h.close()
