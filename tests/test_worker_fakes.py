"""Shared helpers of the worker tests (no tests here): an in-memory Runtime whose
containers are records and whose exits the test triggers, a clock the test moves
by hand, waiting for a condition, and a task factory.
"""
from __future__ import annotations

import asyncio
import itertools
import time
from typing import AsyncIterator, Callable, Optional, Sequence

from proto import objects_pb2 as pb
from worker.runtime import (
    ContainerConfig, ContainerNotFound, ContainerState, ExecResult, ImageHealth, ImagePullError,
    LogLine, Runtime, RuntimeError_, VolumeConfig,
)


async def until(predicate: Callable[[], object], timeout: float = 3.0,
                what: str = "the condition") -> None:
    """Waits until predicate() is true, looking every few milliseconds; AssertionError
    naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


class FakeClock:
    """A worker.clock.Clock whose time moves only when the test calls `advance`."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self.requested: list[float] = []  # every sleep and wait timeout asked for, in order

    def now(self) -> float:
        return self._now

    def pending(self) -> list[float]:
        """How long each current sleeper still has to sleep (empty: nobody waits)."""
        return [round(at - self._now, 9) for at, fut in self._sleepers if not fut.done()]

    def advance(self, seconds: float) -> None:
        """Moves time on and wakes every sleeper whose time has come."""
        self._now += seconds
        for at, fut in self._sleepers:
            if at <= self._now + 1e-9 and not fut.done():
                fut.set_result(None)

    async def sleep(self, seconds: float) -> None:
        self.requested.append(seconds)
        entry = (self._now + seconds, asyncio.get_running_loop().create_future())
        self._sleepers.append(entry)
        try:
            await entry[1]
        finally:
            self._sleepers.remove(entry)

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        waiter = asyncio.ensure_future(event.wait())
        timer = asyncio.ensure_future(self.sleep(timeout))
        try:
            await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            timer.cancel()
        return event.is_set()


class FakeRuntime(Runtime):
    """Records every call; `exit(cid, code)` ends a running container. With `pull_gate`,
    every image pull waits until the test sets the event."""

    def __init__(self, *, pull_gate: Optional[asyncio.Event] = None) -> None:
        self.pull_gate = pull_gate
        self.pull_errors: dict[str, str] = {}
        self.create_error = ""
        self.start_error = ""
        self.containers: dict[str, ContainerState] = {}
        self.configs: dict[str, ContainerConfig] = {}
        self.output: dict[str, list[LogLine]] = {}
        self.calls: list[tuple[str, str]] = []
        self.stops: list[tuple[str, str, float]] = []
        # exec: what each command run in a container returns; None makes it hang until
        # cancelled (a check that never ends). Default: success, no output.
        self.exec_result: Callable[[str, list[str]], Optional[ExecResult]] = \
            lambda cid, argv: ExecResult(0)
        self.execs: list[tuple[str, list[str]]] = []
        self.exec_in_flight = 0
        self.exec_max_in_flight = 0
        self.image_healths: dict[str, ImageHealth] = {}   # images' own HEALTHCHECKs
        self.volumes: dict[str, VolumeConfig] = {}        # named volumes, by name
        self.volume_errors: dict[str, str] = {}           # volume name -> create error
        self.pull_auths: list[str] = []                   # registry auth of each pull
        self._exited: dict[str, asyncio.Event] = {}
        self._ids = itertools.count(1)
        self._pids = itertools.count(1000)

    # helpers for tests
    def add(self, labels: dict[str, str], *, running: bool, exit_code: int = 0,
            started_at: float = 1.0, name: str = "") -> ContainerState:
        cid = f"c{next(self._ids):063d}"
        state = ContainerState(id=cid, name=name or cid, labels=dict(labels),
                               status="running" if running else "exited", running=running,
                               exit_code=exit_code, pid=next(self._pids) if running else 0,
                               started_at=started_at, finished_at=0.0 if running else started_at + 1)
        self.containers[cid] = state
        self._exited[cid] = asyncio.Event()
        if not running:
            self._exited[cid].set()
        return state

    def exit(self, cid: str, code: int, error: str = "") -> None:
        state = self.containers[cid]
        state.running, state.status, state.exit_code, state.error = False, "exited", code, error
        state.pid, state.finished_at = 0, time.time()
        self._exited[cid].set()

    def by_task(self, task_id: str) -> list[ContainerState]:
        return [c for c in self.containers.values() if c.labels.get("com.shoal.task.id") == task_id]

    def count(self, op: str) -> int:
        return sum(1 for name, _ in self.calls if name == op)

    # Runtime
    async def version(self) -> str:
        return "fake 1.0"

    async def ensure_image(self, image: str, registry_auth: str = "") -> None:
        self.calls.append(("pull", image))
        self.pull_auths.append(registry_auth)
        if self.pull_gate is not None:
            await self.pull_gate.wait()
        if image in self.pull_errors:
            raise ImagePullError(self.pull_errors[image])

    async def image_health(self, image: str) -> ImageHealth | None:
        return self.image_healths.get(image)

    async def ensure_volume(self, volume: VolumeConfig) -> None:
        """Keeps the first config of each name (an existing volume is reused as it is)."""
        self.calls.append(("volume", volume.name))
        if volume.name in self.volume_errors:
            raise RuntimeError_(self.volume_errors[volume.name])
        self.volumes.setdefault(volume.name, volume)

    async def create(self, config: ContainerConfig) -> str:
        self.calls.append(("create", config.name))
        if self.create_error:
            raise RuntimeError_(self.create_error)
        cid = f"c{next(self._ids):063d}"
        self.containers[cid] = ContainerState(id=cid, name=config.name, labels=dict(config.labels),
                                              status="created", running=False)
        self.configs[cid] = config
        self._exited[cid] = asyncio.Event()
        return cid

    async def start(self, container_id: str) -> None:
        self.calls.append(("start", container_id))
        if self.start_error:
            raise RuntimeError_(self.start_error)
        state = self._get(container_id)
        state.running, state.status, state.pid = True, "running", next(self._pids)
        state.started_at = time.time()

    async def wait(self, container_id: str,
                   on_running: Callable[[ContainerState], None] | None = None) -> ContainerState:
        state = self._get(container_id)
        if on_running is not None and state.running:
            on_running(state)
        await self._exited[container_id].wait()
        return self._get(container_id)

    async def stop(self, container_id: str, signal: str, grace_period: float) -> None:
        self.calls.append(("stop", container_id))
        self.stops.append((container_id, signal, grace_period))
        if self._get(container_id).running:
            self.exit(container_id, 143)

    async def remove(self, container_id: str) -> None:
        self.calls.append(("remove", container_id))
        state = self.containers.pop(container_id, None)
        if state is not None and state.running:
            state.running = False
            self._exited[container_id].set()

    async def inspect(self, container_id: str) -> ContainerState:
        return self._get(container_id)

    async def list(self, labels: dict[str, str]) -> list[ContainerState]:
        return [c for c in self.containers.values()
                if all(c.labels.get(k) == v for k, v in labels.items())]

    async def logs(self, container_id: str, tail: int = -1,  # type: ignore[override]
                   follow: bool = False) -> AsyncIterator[LogLine]:
        lines = self.output.get(container_id, [])
        for line in lines[-tail:] if tail >= 0 else lines:
            yield line
        if follow:
            await self._exited[container_id].wait()

    async def exec(self, container_id: str, argv: Sequence[str], timeout: float,
                   max_output: int = 4096) -> ExecResult:
        self.calls.append(("exec", container_id))
        self.execs.append((container_id, list(argv)))
        if not self._get(container_id).running:
            raise RuntimeError_(f"container {container_id} is not running")
        self.exec_in_flight += 1
        self.exec_max_in_flight = max(self.exec_max_in_flight, self.exec_in_flight)
        try:
            result = self.exec_result(container_id, list(argv))
            if result is None:
                await asyncio.Event().wait()   # hangs until cancelled
                raise AssertionError("unreachable")
            return ExecResult(result.exit_code, result.output[:max_output], result.timed_out)
        finally:
            self.exec_in_flight -= 1

    def _get(self, cid: str) -> ContainerState:
        if cid not in self.containers:
            raise ContainerNotFound(f"no such container: {cid}")
        return self.containers[cid]


def make_task(task_id: str = "t1", *, slot: int = 1, desired: int = pb.RUNNING,
              state: int = pb.ASSIGNED, node_id: str = "node1", image: str = "busybox") -> pb.Task:
    """A task of service "web" assigned to `node_id`."""
    task = pb.Task(id=task_id, service_id="svc1", service_name="web", slot=slot, node_id=node_id,
                   desired_state=desired)
    task.annotations.name = f"web.{slot}"
    task.status.state = state
    task.spec.container.image = image
    return task
