"""The behaviour every container runtime owes the agent (`worker.runtime.Runtime`).

`RuntimeContract` holds the tests; a runtime's test module subclasses it (as
`Test<Name>Contract`) and provides a `harness` fixture: a `RuntimeHarness` that
knows how to make, on that runtime, a container that runs until stopped, one that
exits by itself with a given code and one whose start fails, how to kill a
container from outside (SIGKILL, as the kernel's OOM killer or an operator
would), and how to open a second runtime on the same engine (an agent that
restarted and adopts its containers). The last test drives the runtime through the
agent's own `TaskController`, so states and exit codes take the agent's code path. Podman (tests/test_podman_runtime.py) and
the hollow runtime (tests/test_hollow_runtime.py) run the same contract.
"""
from __future__ import annotations

import abc
import asyncio
import time

import pytest

from proto import model
from proto import objects_pb2 as pb
from tests.test_worker_fakes import make_task
from worker.controller import TaskController
from worker.runtime import (ContainerConfig, ContainerNotFound, ContainerState, ImagePullError,
                            Runtime, RuntimeError_)

KILLED = 137      # 128 + SIGKILL
WAIT = 30.0       # seconds any single runtime call may take here


class RuntimeHarness(abc.ABC):
    """One runtime under test and the runtime-specific ways to drive it."""

    runtime: Runtime
    image: str            # an image the runtime can pull
    missing_image: str    # an image whose pull fails; its name is in the error
    labels: dict[str, str]   # carried by every container of the test (and only by them)

    @abc.abstractmethod
    def running(self, **kwargs: object) -> ContainerConfig:
        """A container that runs until it is stopped."""

    @abc.abstractmethod
    def exiting(self, code: int, **kwargs: object) -> ContainerConfig:
        """A container that exits by itself, soon, with `code`."""

    @abc.abstractmethod
    def start_fails(self) -> ContainerConfig:
        """A container whose start fails; `failure_text` is in the error."""

    failure_text: str

    @abc.abstractmethod
    def running_task(self, task: pb.Task) -> None:
        """Makes the task's container one that runs until it is stopped."""

    @abc.abstractmethod
    async def kill(self, container_id: str) -> None:
        """Kills the running container from outside the runtime (SIGKILL)."""

    @abc.abstractmethod
    async def reopen(self) -> Runtime:
        """A second runtime on the same engine (closed by the harness)."""


async def wait_report(reports: list[pb.TaskStatus], state: int,
                      timeout: float = 90) -> pb.TaskStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for status in reports:
            if status.state == state:
                return status
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {model.state_name(state)}: {[(s.state, s.err) for s in reports]}")


async def started(harness: RuntimeHarness, config: ContainerConfig) -> str:
    await harness.runtime.ensure_image(config.image)
    cid = await harness.runtime.create(config)
    await asyncio.wait_for(harness.runtime.start(cid), WAIT)
    return cid


class RuntimeContract:
    """The tests; subclass it and provide the `harness` fixture."""

    async def test_version_names_the_engine(self, harness: RuntimeHarness) -> None:
        assert (await harness.runtime.version()).strip()

    async def test_pull_failure_reports_the_image(self, harness: RuntimeHarness) -> None:
        await harness.runtime.ensure_image(harness.image)
        await harness.runtime.ensure_image(harness.image)      # present: no error
        with pytest.raises(ImagePullError) as caught:
            await harness.runtime.ensure_image(harness.missing_image)
        assert harness.missing_image.split("/")[-1].split(":")[0] in str(caught.value)

    async def test_exit_codes_and_states(self, harness: RuntimeHarness) -> None:
        rt = harness.runtime
        for code in (0, 7):
            config = harness.exiting(code)
            await rt.ensure_image(config.image)
            cid = await rt.create(config)
            created = await rt.inspect(cid)
            assert created.status in ("created", "configured") and not created.running
            assert created.id == cid
            assert created.name == config.name and created.labels == config.labels
            await asyncio.wait_for(rt.start(cid), WAIT)
            final = await asyncio.wait_for(rt.wait(cid), WAIT)
            assert final.status in ("stopped", "exited")
            assert (final.running, final.exit_code, final.pid) == (False, code, 0)
            # both set; not ordered: podman can record a fast exit's FinishedAt before
            # its StartedAt (seen here on `sh -c "exit 0"`)
            assert final.started_at > 0 and final.finished_at > 0
            assert abs(final.finished_at - time.time()) < 60
            assert (await rt.inspect(cid)).exit_code == code

    async def test_start_failure_is_a_readable_error(self, harness: RuntimeHarness) -> None:
        config = harness.start_fails()
        await harness.runtime.ensure_image(config.image)
        cid = await harness.runtime.create(config)
        with pytest.raises(RuntimeError_) as caught:
            await asyncio.wait_for(harness.runtime.start(cid), WAIT)
        assert harness.failure_text in str(caught.value)
        assert not (await harness.runtime.inspect(cid)).running

    async def test_wait_reports_running_then_a_kill(self, harness: RuntimeHarness) -> None:
        """on_running is called once, with the PID; a SIGKILL from outside ends the wait
        with 137; a container still running is not reported finished."""
        rt = harness.runtime
        victim, bystander = await started(harness, harness.running()), \
            await started(harness, harness.running())
        running = await rt.inspect(victim)
        assert running.running and running.status == "running" and running.pid > 0
        seen: list[ContainerState] = []
        waits = [asyncio.ensure_future(rt.wait(cid, on_running=seen.append))
                 for cid in (victim, bystander)]
        try:
            deadline = time.monotonic() + WAIT
            while len(seen) < 2:
                assert time.monotonic() < deadline, seen
                await asyncio.sleep(0.01)
            assert {s.id for s in seen} == {victim, bystander}
            assert all(s.running and s.pid > 0 for s in seen)
            await harness.kill(victim)
            final = await asyncio.wait_for(waits[0], WAIT)
            assert (final.running, final.exit_code) == (False, KILLED)
            assert not waits[1].done()
            assert len(seen) == 2                      # once per wait
        finally:
            for job in waits:
                job.cancel()

    async def test_stop_without_grace_kills(self, harness: RuntimeHarness) -> None:
        rt = harness.runtime
        cid = await started(harness, harness.running())
        waiting = asyncio.ensure_future(rt.wait(cid))
        await asyncio.wait_for(rt.stop(cid, "", 0.0), WAIT)
        state = await rt.inspect(cid)
        assert not state.running and state.exit_code == KILLED
        assert (await asyncio.wait_for(waiting, WAIT)).exit_code == KILLED
        await asyncio.wait_for(rt.stop(cid, "", 1.0), WAIT)    # stopped already: no-op
        assert (await rt.inspect(cid)).exit_code == KILLED

    async def test_list_by_labels(self, harness: RuntimeHarness) -> None:
        rt = harness.runtime
        configs = [harness.exiting(0, labels={"tier": tier}) for tier in ("web", "web", "db")]
        await rt.ensure_image(configs[0].image)
        ids = [await rt.create(config) for config in configs]
        await asyncio.wait_for(rt.start(ids[0]), WAIT)
        web = await rt.list({**harness.labels, "tier": "web"})
        assert sorted(s.id for s in web) == sorted(ids[:2])
        assert {s.name for s in web} == {configs[0].name, configs[1].name}
        everything = await rt.list(harness.labels)
        assert sorted(s.id for s in everything) == sorted(ids)
        assert all(s.labels[k] == v for s in everything for k, v in harness.labels.items())
        assert await rt.list({**harness.labels, "tier": "cache"}) == []

    async def test_missing_containers(self, harness: RuntimeHarness) -> None:
        rt = harness.runtime
        with pytest.raises(ContainerNotFound):
            await rt.inspect("shoaltest-does-not-exist")
        with pytest.raises(ContainerNotFound):
            await rt.start("shoaltest-does-not-exist")
        with pytest.raises(ContainerNotFound):
            [line async for line in rt.logs("shoaltest-does-not-exist")]
        with pytest.raises(ContainerNotFound):
            await rt.exec("shoaltest-does-not-exist", ["true"], timeout=5)
        await rt.remove("shoaltest-does-not-exist")       # not an error

    async def test_remove_running_container(self, harness: RuntimeHarness) -> None:
        rt = harness.runtime
        cid = await started(harness, harness.running())
        assert (await rt.inspect(cid)).running
        await asyncio.wait_for(rt.remove(cid), WAIT)
        with pytest.raises(ContainerNotFound):
            await rt.inspect(cid)
        assert [s.id for s in await rt.list(harness.labels)] == []

    async def test_containers_outlive_the_runtime_and_are_adopted(
            self, harness: RuntimeHarness) -> None:
        """An agent that restarts opens a new runtime: it finds its containers by label,
        running or exited, with their exit codes, and can wait for and stop them."""
        first = harness.runtime
        alive = await started(harness, harness.running())
        done = await started(harness, harness.exiting(3))
        assert (await asyncio.wait_for(first.wait(done), WAIT)).exit_code == 3
        await first.close()
        second = await harness.reopen()
        found = {s.id: s for s in await second.list(harness.labels)}
        assert set(found) == {alive, done}
        assert found[alive].running and found[alive].pid > 0
        assert (found[done].running, found[done].exit_code) == (False, 3)
        waiting = asyncio.ensure_future(second.wait(alive))
        await asyncio.wait_for(second.stop(alive, "", 0.0), WAIT)
        assert (await asyncio.wait_for(waiting, WAIT)).exit_code == KILLED

    async def test_exec_needs_a_running_container(self, harness: RuntimeHarness) -> None:
        rt = harness.runtime
        cid = await started(harness, harness.running())
        result = await asyncio.wait_for(rt.exec(cid, ["true"], timeout=10), WAIT)
        assert (result.exit_code, result.timed_out) == (0, False)
        await rt.remove(cid)
        with pytest.raises(ContainerNotFound):
            await rt.exec(cid, ["true"], timeout=5)


    async def test_controller_runs_and_reports_a_killed_container(
            self, harness: RuntimeHarness) -> None:
        """The agent's task controller over this runtime: ACCEPTED .. RUNNING, a second
        RUNNING with the PID, a SIGKILL reported FAILED with 137, removal leaves nothing."""
        rt = harness.runtime
        node_id = model.new_id()
        task = make_task(model.new_id(), node_id=node_id, image=harness.image)
        harness.running_task(task)
        reports: list[pb.TaskStatus] = []
        ctrl = TaskController(task, rt, lambda tid, st: reports.append(st), node_id=node_id)
        job = ctrl.start()
        try:
            await wait_report(reports, pb.RUNNING)
            deadline = time.monotonic() + WAIT
            while not any(s.state == pb.RUNNING and s.container_status.pid > 0 for s in reports):
                assert time.monotonic() < deadline, reports
                await asyncio.sleep(0.01)
            assert [s.state for s in reports] == [pb.ACCEPTED, pb.PREPARING, pb.READY,
                                                  pb.STARTING, pb.RUNNING, pb.RUNNING]
            cid = reports[-1].container_status.container_id
            state = await rt.inspect(cid)
            assert state.running and state.name == f"web.1.{task.id}"
            assert state.labels["com.shoal.node.id"] == node_id
            await harness.kill(cid)
            failed = await wait_report(reports, pb.FAILED, WAIT)
            assert failed.container_status.exit_code == KILLED
            assert failed.err == f"task: non-zero exit ({KILLED})"
            ctrl.remove()
            await asyncio.wait_for(job, WAIT)
            assert await rt.list({"com.shoal.node.id": node_id}) == []
        finally:
            await ctrl.cancel()
            for leftover in await rt.list({"com.shoal.node.id": node_id}):
                await rt.remove(leftover.id)
