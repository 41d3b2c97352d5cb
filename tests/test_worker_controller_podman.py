"""One task controller against the real podman runtime: a busybox container
reaches RUNNING, its output reaches a log subscription, and killing it is
reported as FAILED with the exit code."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import AsyncIterator

import pytest

from proto import dispatcher_pb2 as dpb
from proto import model
from proto import objects_pb2 as pb
from tests.test_worker_fakes import make_task
from worker.controller import TaskController
from worker.logs import LocalTask, LogPublisher

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def wait_state(reports: list[pb.TaskStatus], state: int, timeout: float) -> pb.TaskStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for status in reports:
            if status.state == state:
                return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"never {model.state_name(state)}: {[(s.state, s.err) for s in reports]}")


async def test_controller_runs_and_reports_a_killed_container(tmp_path: Path, demo_image: str) -> None:
    from worker.podman import PodmanRuntime

    node_id = model.new_id()
    runtime = PodmanRuntime(str(tmp_path / "podman"), node_id)
    task = make_task(model.new_id(), node_id=node_id, image=demo_image)
    task.spec.container.args.extend(["sh", "-c", "echo hello from the task; exec sleep 300"])
    reports: list[pb.TaskStatus] = []
    ctrl = TaskController(task, runtime, lambda tid, st: reports.append(st), node_id=node_id)
    job = ctrl.start()
    try:
        await wait_state(reports, pb.RUNNING, 90)
        deadline = time.monotonic() + 30      # the PID follows in a second RUNNING report
        while not any(s.state == pb.RUNNING and s.container_status.pid > 0 for s in reports):
            assert time.monotonic() < deadline, reports
            await asyncio.sleep(0.05)
        assert [s.state for s in reports] == [pb.ACCEPTED, pb.PREPARING, pb.READY,
                                              pb.STARTING, pb.RUNNING, pb.RUNNING]
        running = reports[-1]
        cid = running.container_status.container_id
        assert cid and running.container_status.pid > 0
        assert Path(f"/proc/{running.container_status.pid}").exists()
        state = await runtime.inspect(cid)
        assert state.name == f"web.1.{task.id}"
        assert state.labels["com.shoal.node.id"] == node_id

        sent: list[dpb.PublishLogsRequest] = []

        async def publish(requests: AsyncIterator[dpb.PublishLogsRequest]) -> None:
            async for request in requests:
                sent.append(request)

        logs = LogPublisher(runtime, node_id, lambda tid: LocalTask(ctrl.task, ctrl.container_id))
        deadline = time.monotonic() + 10
        while not any(m.data == b"hello from the task" for r in sent for m in r.messages):
            assert time.monotonic() < deadline, sent
            sent.clear()
            logs.update([dpb.LogSubscription(id=model.new_id(), task_ids=[task.id], tail=-1)],
                        "s1", publish)
            await asyncio.sleep(0.5)
        assert sent[-1].close

        subprocess.run(["podman", "kill", "--signal", "KILL", cid], check=True,
                       capture_output=True, timeout=30)
        failed = await wait_state(reports, pb.FAILED, 30)
        assert failed.container_status.exit_code == 137
        assert failed.err == "task: non-zero exit (137)"
        ctrl.remove()
        await asyncio.wait_for(job, 30)
        assert await runtime.list({"com.shoal.node.id": node_id}) == []
    finally:
        await ctrl.cancel()
        for leftover in await runtime.list({"com.shoal.node.id": node_id}):
            await runtime.remove(leftover.id)
        pid = runtime.service_pid
        await runtime.close()
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
