"""The worker's runtime directory when it is full (real files on a small tmpfs).

Where the agent writes on the node: each task's secrets and configs go on a
fresh tmpfs mounted under `<root>/<task id>` (worker/taskfiles.py), and a
task in its own network namespace gets `<run>/resolv/<task id>.conf`
(worker/overlay.py). When the file system holding them is full, the task is
REJECTED with a message naming that file system, nothing half-written is
left, the agent's controller goes on, and once there is room the next task
gets its files.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from proto import objects_pb2 as pb
from tests.diskfull import fill, fill_inodes, is_mounted, small_tmpfs
from tests.test_secrets_units import full_task, held_files
from tests.test_worker_fakes import FakeRuntime
from worker import overlay
from worker.controller import TaskController
from worker.overlay import TaskNetworkError
from worker.taskfiles import FileError


async def _until(cond, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def test_task_files_on_a_full_runtime_dir_are_refused_clearly(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with small_tmpfs(run, 256 * 1024, inodes=64):
        files = held_files(run)          # root: run/tasks
        (run / "tasks").mkdir()
        made = fill_inodes(run)
        try:
            with pytest.raises(FileError) as info:
                await files.prepare(full_task("t1"))
            message = str(info.value)
            assert message.startswith("cannot provide secrets and configs: no space left on the "
                                      f"file system holding {run / 'tasks'}")
            assert files.leftovers() == []
            for path in made[:4]:        # room again
                path.unlink()
            mounts = await files.prepare(full_task("t2"))
            assert len(mounts) == 2 and is_mounted(Path(files.task_dir("t2")))
        finally:
            files.cleanup(keep=())
    assert not is_mounted(run)


async def test_a_task_whose_files_cannot_be_written_is_rejected_and_the_agent_goes_on(
        tmp_path: Path) -> None:
    run = tmp_path / "run"
    with small_tmpfs(run, 256 * 1024, inodes=64):
        files = held_files(run)
        (run / "tasks").mkdir()
        made = fill_inodes(run)
        runtime = FakeRuntime()
        reports: list[pb.TaskStatus] = []
        ctrl = TaskController(full_task("t1"), runtime, lambda tid, st: reports.append(st),
                              node_id="node1", files=files)
        job = ctrl.start()
        try:
            await _until(lambda: any(s.state == pb.REJECTED for s in reports), "REJECTED")
            rejected = next(s for s in reports if s.state == pb.REJECTED)
            assert "no space left on the file system holding" in rejected.err
            assert str(run / "tasks") in rejected.err
            assert not any(s.state == pb.FAILED for s in reports)   # refused, not a crash
            assert not job.done() or job.exception() is None
            assert runtime.configs == {}                            # no container made
            # the next task, once there is room, runs with its files
            for path in made[:4]:
                path.unlink()
            reports2: list[pb.TaskStatus] = []
            ctrl2 = TaskController(full_task("t2"), runtime, lambda tid, st: reports2.append(st),
                                   node_id="node1", files=files)
            ctrl2.start()
            try:
                await _until(lambda: any(s.state == pb.RUNNING for s in reports2), "RUNNING")
            finally:
                await ctrl2.cancel()
        finally:
            await ctrl.cancel()
            files.cleanup(keep=())


def test_a_resolv_conf_on_a_full_runtime_dir_is_refused_clearly(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with small_tmpfs(run, 64 * 1024):
        resolv = run / "resolv" / ("t" * 25 + ".conf")
        overlay.write_resolv_conf(resolv, "nameserver 127.0.0.11\n")
        filler = fill(run)
        other = run / "resolv" / ("u" * 25 + ".conf")
        with pytest.raises(TaskNetworkError) as info:
            overlay.write_resolv_conf(other, "nameserver 127.0.0.11\n" + "# pad\n" * 2000)
        assert str(info.value) == (
            "network: cannot write the task's resolv.conf: no space left on the file system "
            f"holding {run / 'resolv'} (writing {other}); free space there")
        assert sorted(p.name for p in (run / "resolv").iterdir()) == [resolv.name]
        assert resolv.read_text() == "nameserver 127.0.0.11\n"
        filler.unlink()
        overlay.write_resolv_conf(other, "nameserver 127.0.0.11\n")
        assert other.read_text() == "nameserver 127.0.0.11\n"
