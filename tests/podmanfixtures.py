"""Helpers and fixtures for the tests that drive real podman through `PodmanRuntime`.

`podman_fixtures(node_id, name)` makes a module's three fixtures: `service_dir`
(one state dir, so one podman service, per module; the service is ended after
the module), `runtime` (a PodmanRuntime per test) and `run_id` (a label value for
the test's containers, which are removed with their anonymous volumes after it).
A module binds them by name: `service_dir, runtime, run_id = podman_fixtures(...)`.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest
import pytest_asyncio

from worker.podman import PodmanRuntime

RUN_LABEL = "com.shoal.test.run"


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True,
                          check=check, timeout=60)


def kill_service(state_dir: Path) -> None:
    """Ends the podman service a runtime started in state_dir (by its recorded PID)."""
    pid_file = state_dir / "podman-service.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False



def podman_fixtures(node_id: str, name: str) -> tuple[Any, Any, Any]:
    """The (service_dir, runtime, run_id) fixtures of one test module."""

    @pytest.fixture(scope="module", name="service_dir")
    def service_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
        path = tmp_path_factory.mktemp(name)
        yield path
        kill_service(path)

    @pytest_asyncio.fixture(name="runtime")
    async def runtime(service_dir: Path) -> AsyncIterator[PodmanRuntime]:
        rt = PodmanRuntime(str(service_dir), node_id=node_id)
        yield rt
        await rt.close()

    @pytest.fixture(name="run_id")
    def run_id() -> Iterator[str]:
        value = uuid.uuid4().hex[:12]
        yield value
        ids = podman("ps", "-aq", "--filter", f"label={RUN_LABEL}={value}",
                     check=False).stdout.split()
        if ids:
            podman("rm", "-f", "-v", "-t", "0", *ids, check=False)

    return service_dir, runtime, run_id
