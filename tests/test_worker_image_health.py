"""The image's own HEALTHCHECK on the agent: reading it from podman's image
inspect document, Docker's merge with the service's healthcheck (the spec's
settings win, each unset one comes from the image, ["NONE"] disables both), and
the task controller running the image's check (FakeRuntime, FakeClock)."""
from __future__ import annotations

import asyncio

from proto import objects_pb2 as pb
from tests.test_worker_fakes import FakeClock, FakeRuntime, make_task, until
from tests.test_worker_health import Harness, spec_with
from worker.controller import TaskController
from worker.health import HealthCheck, HealthState, ProbeResult, health_check
from worker.podman_wire import image_health
from worker.runtime import ExecResult, ImageHealth

S = 10**9
IMAGE = ImageHealth(test=("CMD-SHELL", "test -f /tmp/healthy"), interval=2, timeout=4,
                    start_period=1, retries=5)


def test_podman_image_inspect_healthcheck_is_read() -> None:
    doc = {"Healthcheck": {"Test": ["CMD-SHELL", "exit 1"], "Interval": 1 * S,
                           "Timeout": 2 * S, "Retries": 2, "StartPeriod": 3 * S,
                           "StartInterval": S // 2}}
    assert image_health(doc) == ImageHealth(test=("CMD-SHELL", "exit 1"), interval=1, timeout=2,
                                            start_period=3, start_interval=0.5, retries=2)
    nested = {"Config": {"Healthcheck": {"Test": ["CMD", "true"]}}}
    assert image_health(nested) == ImageHealth(test=("CMD", "true"))
    assert image_health({}) is None
    assert image_health({"Healthcheck": {"Test": []}, "Config": {}}) is None


def test_the_image_check_runs_when_the_spec_has_none() -> None:
    check = health_check(pb.ContainerSpec(image="x"), IMAGE)
    assert check == HealthCheck(argv=("/bin/sh", "-c", "test -f /tmp/healthy"), interval=2,
                                timeout=4, retries=5, start_period=1)
    assert health_check(pb.ContainerSpec(image="x"), ImageHealth(test=("CMD", "true"))) == \
        HealthCheck(argv=("true",))   # Docker's defaults for what the image leaves unset


def test_the_spec_wins_setting_by_setting() -> None:
    own = health_check(spec_with(["CMD", "true"], interval=1), IMAGE)
    assert own == HealthCheck(argv=("true",), interval=1, timeout=4, retries=5, start_period=1)
    # settings without a command (e.g. only --health-retries) keep the image's command
    tuned = health_check(spec_with([], retries=1), IMAGE)
    assert tuned is not None and tuned.argv == ("/bin/sh", "-c", "test -f /tmp/healthy")
    assert (tuned.retries, tuned.interval) == (1, 2)


def test_no_healthcheck_disables_the_image_check_too() -> None:
    assert health_check(spec_with(["NONE"]), IMAGE) is None
    assert health_check(pb.ContainerSpec(image="x"), ImageHealth(test=("NONE",))) is None


async def test_a_task_runs_its_image_check_and_fails_when_it_fails() -> None:
    task = make_task()
    task.spec.container.image = "checked:1"
    runtime = FakeRuntime()
    runtime.image_healths["checked:1"] = ImageHealth(test=("CMD", "probe"), interval=1,
                                                     retries=2)
    h = Harness(task, runtime=runtime)
    await until(lambda: h.runtime.count("start") == 1)
    h.runtime.exec_result = lambda c, argv: ExecResult(1, b"image says no")
    assert h.states[-1] == pb.STARTING
    await h.probe(1)
    await h.probe(1)
    failed = await h.until(pb.FAILED)
    assert failed.err == "unhealthy container" and pb.RUNNING not in h.states
    assert h.runtime.execs[0][1] == ["probe"]
    assert failed.health.log[-1].output == "image says no"
    await h.close()


async def test_with_no_healthcheck_the_image_check_does_not_run() -> None:
    task = make_task()
    task.spec.container.image = "checked:1"
    task.spec.container.healthcheck.test.append("NONE")
    runtime = FakeRuntime()
    runtime.image_healths["checked:1"] = ImageHealth(test=("CMD", "probe"), interval=1)
    h = Harness(task, runtime=runtime)
    running = await h.until(pb.RUNNING)
    assert h.runtime.execs == [] and h.ctrl.health is None
    assert not running.HasField("health")
    await h.close()


async def test_an_adopted_task_runs_its_image_check_too() -> None:
    task = make_task()
    task.spec.container.image = "checked:1"
    task.status.state = pb.STARTING
    runtime = FakeRuntime()
    runtime.image_healths["checked:1"] = ImageHealth(test=("CMD", "probe"), interval=1)
    container = runtime.add({"com.shoal.task.id": task.id}, running=True)
    clock, reports = FakeClock(), []
    ctrl = TaskController(task, runtime, lambda tid, st: reports.append(st), node_id="node1",
                          container=container, clock=clock)
    job = ctrl.start()
    await until(lambda: 1 in clock.pending(), what="the image's check scheduled")
    assert reports == []          # still STARTING: not RUNNING before the check passes
    clock.advance(1)
    await until(lambda: reports, what="a report")
    assert [s.state for s in reports] == [pb.RUNNING] and runtime.execs[0][1] == ["probe"]
    assert reports[0].health.status == "healthy"
    ctrl.remove()
    await asyncio.wait_for(job, 3)


# ------------------------------------------- --health-start-interval --

def test_the_start_interval_is_used_only_while_starting_in_the_start_period() -> None:
    check = health_check(spec_with(["CMD", "true"], interval=10, start_period=5,
                                   start_interval=0.5))
    assert check is not None and check.start_interval == 0.5
    state = HealthState(retries=3, start_period=5, started_at=100)
    assert check.next_interval(state, 101) == 0.5      # starting, in the start period
    assert check.next_interval(state, 105) == 10       # the start period is over
    state.record(ProbeResult(101, 101.1, 0))
    assert check.next_interval(state, 102) == 10       # healthy: the interval
    plain = health_check(spec_with(["CMD", "true"], interval=10, start_period=5))
    assert plain is not None and plain.next_interval(HealthState(3, 5, 100), 101) == 10
    from_image = health_check(pb.ContainerSpec(image="x"),
                              ImageHealth(test=("CMD", "true"), start_interval=2))
    assert from_image is not None and from_image.start_interval == 2


async def test_the_monitor_checks_at_the_start_interval_until_healthy() -> None:
    task = make_task()
    task.spec.container.CopyFrom(spec_with(["CMD", "probe"], interval=10, start_period=30,
                                           start_interval=1))
    h = Harness(task)
    await until(lambda: h.runtime.count("start") == 1)
    passing = False
    h.runtime.exec_result = lambda c, argv: ExecResult(0 if passing else 1, b"")
    await h.probe(1)                 # starting: every second
    await h.probe(1)
    passing = True
    await h.probe(1)
    await h.until(pb.RUNNING)
    await h.probe(10)                # healthy: the interval
    assert len(h.runtime.execs) == 4
    await h.close()
