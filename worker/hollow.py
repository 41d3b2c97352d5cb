"""The hollow container runtime: the `Runtime` interface with no containers behind it.

Scale tests run hundreds of nodes in one process; each node's agent drives a
`HollowRuntime` exactly as it drives podman, and task states and exit codes flow
through the same controller code. Nothing is executed and nothing touches the disk:
a container is a record in a `HollowEngine` (the "engine" a node's runtime talks to,
which outlives any one `HollowRuntime`, so an agent that restarts in the same process
adopts its containers as it would podman's). Pure asyncio.

Behaviour:
- `start` returns after the engine's start delay (default 50 ms); the container then
  runs until it is stopped, failed (`HollowEngine.fail`) or removed, or until its own
  rule ends it.
- Rules, per image (`HollowEngine.rules`) or per container through labels (the labels
  win): `exit_code` and `run_for` (the container exits by itself with that code after
  that many seconds of running), `start_error` (start fails with that message, exit 127,
  as a missing binary does in podman), `pull_error` (image rule only: the pull fails).
- `stop(signal, grace)`: with a grace period the simulated process honours the signal
  and exits 128 + its number (143 for SIGTERM); with no grace it is killed (137).
- Named volumes are kept in memory; `exec` answers exit 0 with no output;
  `logs` yields what `HollowEngine.write` put there.
"""
from __future__ import annotations

import asyncio
import builtins
import itertools
import logging
import signal as signals
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Sequence

from worker.podman_wire import signal_number
from worker.runtime import (ContainerConfig, ContainerNotFound, ContainerState, ExecResult,
                            ImagePullError, LogLine, Runtime, RuntimeError_, VolumeConfig,
                            VolumeInfo, VolumeInUse, VolumeNotFound)

DEFAULT_START_DELAY = 0.05   # seconds from `start` until the container is running

# Container labels that set a container's rule (they override its image's rule).
LABEL_EXIT_CODE = "com.shoal.hollow.exit-code"      # exit with this code ...
LABEL_RUN_FOR = "com.shoal.hollow.run-for"          # ... after this many seconds running
LABEL_START_ERROR = "com.shoal.hollow.start-error"  # start fails with this message

KILLED = 128 + signals.SIGKILL   # 137, the exit code of a container killed by SIGKILL
START_FAILED = 127               # exit code of a container whose start failed


@dataclass
class HollowRule:
    """How the containers of an image (or one container, through labels) behave."""
    exit_code: int = 0
    run_for: float | None = None   # None: runs until stopped
    start_error: str = ""          # "" = starts
    pull_error: str = ""           # "" = the image pulls (image rules only)


@dataclass
class _Container:
    config: ContainerConfig
    state: ContainerState
    rule: HollowRule
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    output: list[LogLine] = field(default_factory=list)
    output_changed: asyncio.Event = field(default_factory=asyncio.Event)
    timer: asyncio.TimerHandle | None = None


def _rule_from_labels(base: HollowRule, labels: dict[str, str]) -> HollowRule:
    """The image's rule with the container's hollow labels applied; bad values refused."""
    rule = HollowRule(base.exit_code, base.run_for, base.start_error)
    try:
        if LABEL_EXIT_CODE in labels:
            rule.exit_code = int(labels[LABEL_EXIT_CODE])
        if LABEL_RUN_FOR in labels:
            rule.run_for = float(labels[LABEL_RUN_FOR])
    except ValueError as err:
        raise RuntimeError_(f"hollow label: {err} (use {LABEL_EXIT_CODE}=<integer>, "
                            f"{LABEL_RUN_FOR}=<seconds>)") from None
    if LABEL_EXIT_CODE in labels and LABEL_RUN_FOR not in labels and rule.run_for is None:
        rule.run_for = 0.0         # an exit code alone: the container exits right away
    rule.start_error = labels.get(LABEL_START_ERROR, rule.start_error)
    return rule


class HollowEngine:
    """The in-memory engine of one hollow node: its containers, images and volumes."""

    def __init__(self, node_id: str = "", start_delay: float = DEFAULT_START_DELAY) -> None:
        if start_delay < 0:
            raise ValueError(f"start delay must be >= 0 seconds, not {start_delay}")
        self.node_id = node_id
        self.start_delay = start_delay
        self.rules: dict[str, HollowRule] = {}          # image reference -> rule
        self.images: set[str] = set()
        self.volumes: dict[str, VolumeInfo] = {}
        self.containers: dict[str, _Container] = {}
        self._ids = itertools.count(1)
        self._pids = itertools.count(10_000)
        self.log = logging.getLogger(f"shoal.hollow.{node_id or 'engine'}")

    # ---- test and lab controls ----

    def fail(self, container_id: str, exit_code: int, error: str = "") -> None:
        """Ends a running container with this exit code, as if its process died."""
        container = self.get(container_id)
        if not container.state.running:
            raise RuntimeError_(f"container {container.state.name} is not running")
        self._finish(container, exit_code, error)

    def write(self, container_id: str, data: bytes, stream: str = "stdout") -> None:
        """Appends one output line to the container's log."""
        container = self.get(container_id)
        container.output.append(LogLine(stream, data, time.time()))
        container.output_changed.set()
        container.output_changed = asyncio.Event()

    # ---- internals shared with HollowRuntime ----

    def get(self, container_id: str) -> _Container:
        container = self.containers.get(container_id)
        if container is None:
            for candidate in self.containers.values():   # podman accepts names too
                if candidate.state.name == container_id:
                    return candidate
            raise ContainerNotFound(f"no such container: {container_id}")
        return container

    def new_id(self) -> str:
        return f"{next(self._ids):064x}"

    def new_pid(self) -> int:
        return next(self._pids)

    def _finish(self, container: _Container, exit_code: int, error: str = "") -> None:
        if container.timer is not None:
            container.timer.cancel()
            container.timer = None
        state = container.state
        state.running, state.status, state.pid = False, "exited", 0
        state.exit_code, state.error, state.finished_at = exit_code, error, time.time()
        container.finished.set()
        container.output_changed.set()
        self.log.debug("%s exited (%d)", state.name, exit_code)


def _copy(state: ContainerState) -> ContainerState:
    return ContainerState(id=state.id, name=state.name, labels=dict(state.labels),
                          status=state.status, running=state.running,
                          exit_code=state.exit_code, pid=state.pid, error=state.error,
                          started_at=state.started_at, finished_at=state.finished_at)


class HollowRuntime(Runtime):
    """A node's `Runtime` over a `HollowEngine` (a fresh one unless given)."""

    def __init__(self, engine: HollowEngine | None = None, *, node_id: str = "",
                 start_delay: float = DEFAULT_START_DELAY) -> None:
        self.engine = engine or HollowEngine(node_id, start_delay)

    async def version(self) -> str:
        return "hollow 1.0"

    async def ensure_image(self, image: str, registry_auth: str = "") -> None:
        if not image:
            raise ImagePullError("no image given")
        rule = self.engine.rules.get(image)
        if rule is not None and rule.pull_error:
            raise ImagePullError(f"pulling {image}: {rule.pull_error}")
        self.engine.images.add(image)

    async def create(self, config: ContainerConfig) -> str:
        engine = self.engine
        if config.image not in engine.images:
            raise RuntimeError_(f"{config.image}: image not known (pull it first)")
        if any(c.state.name == config.name for c in engine.containers.values()):
            raise RuntimeError_(f"the container name {config.name!r} is already in use")
        rule = _rule_from_labels(engine.rules.get(config.image, HollowRule()), config.labels)
        cid = engine.new_id()
        state = ContainerState(id=cid, name=config.name, labels=dict(config.labels),
                               status="created", running=False)
        engine.containers[cid] = _Container(config, state, rule)
        return cid

    async def start(self, container_id: str) -> None:
        engine = self.engine
        container = engine.get(container_id)
        state = container.state
        if state.running:
            return
        if container.rule.start_error:
            state.started_at = time.time()
            engine._finish(container, START_FAILED, container.rule.start_error)
            raise RuntimeError_(f"starting {state.name}: {container.rule.start_error}")
        if engine.start_delay:
            await asyncio.sleep(engine.start_delay)   # the simulated engine's start time
        if engine.containers.get(state.id) is not container:
            raise ContainerNotFound(f"no such container: {container_id}")
        if container.finished.is_set():          # a restart of an exited container
            container.finished = asyncio.Event()
        state.running, state.status, state.pid = True, "running", engine.new_pid()
        state.exit_code, state.error, state.started_at, state.finished_at = 0, "", time.time(), 0.0
        if container.rule.run_for is not None:
            container.timer = asyncio.get_running_loop().call_later(
                container.rule.run_for, engine._finish, container, container.rule.exit_code, "")

    async def wait(self, container_id: str,
                   on_running: Callable[[ContainerState], None] | None = None) -> ContainerState:
        container = self.engine.get(container_id)
        if container.state.running and on_running is not None:
            on_running(_copy(container.state))
        while container.state.running or container.state.status == "created":
            await container.finished.wait()
        return await self.inspect(container_id)

    async def stop(self, container_id: str, signal: str, grace_period: float) -> None:
        container = self.engine.get(container_id)
        if not container.state.running:
            return
        number = signal_number(signal or container.config.stop_signal or "SIGTERM")
        code = 128 + number if grace_period > 0 else KILLED
        self.engine._finish(container, code)

    async def remove(self, container_id: str) -> None:
        try:
            container = self.engine.get(container_id)
        except ContainerNotFound:
            return
        if container.state.running:
            self.engine._finish(container, KILLED)
        del self.engine.containers[container.state.id]

    async def inspect(self, container_id: str) -> ContainerState:
        return _copy(self.engine.get(container_id).state)

    async def list(self, labels: dict[str, str]) -> builtins.list[ContainerState]:
        return [_copy(c.state) for c in self.engine.containers.values()
                if all(c.state.labels.get(k) == v for k, v in labels.items())]

    async def logs(self, container_id: str, tail: int = -1,
                   follow: bool = False) -> AsyncIterator[LogLine]:
        container = self.engine.get(container_id)
        lines = container.output if tail < 0 else container.output[len(container.output) - tail:] \
            if tail else []
        sent = len(container.output)
        for line in lines:
            yield line
        while follow and container.state.running:
            await container.output_changed.wait()
            for line in container.output[sent:]:
                yield line
            sent = len(container.output)

    async def exec(self, container_id: str, argv: Sequence[str], timeout: float,
                   max_output: int = 4096) -> ExecResult:
        container = self.engine.get(container_id)
        if not container.state.running:
            raise RuntimeError_(f"container {container.state.name} is not running")
        return ExecResult(0)

    async def ensure_volume(self, volume: VolumeConfig) -> None:
        if volume.driver not in ("", "local") and volume.name not in self.engine.volumes:
            raise RuntimeError_(f"volume {volume.name}: no volume driver {volume.driver!r} "
                                "on this node (hollow nodes have only local)")
        self.engine.volumes.setdefault(volume.name, VolumeInfo(
            volume.name, volume.driver or "local", dict(volume.labels), dict(volume.options),
            created_at=time.time()))

    async def list_volumes(self) -> builtins.list[VolumeInfo]:
        return list(self.engine.volumes.values())

    async def remove_volume(self, name: str) -> None:
        if name not in self.engine.volumes:
            raise VolumeNotFound(f"no such volume: {name}")
        users = [c.state.name for c in self.engine.containers.values()
                 if any(m.type == "volume" and m.source == name for m in c.config.mounts)]
        if users:
            raise VolumeInUse(f"volume {name} is in use by {', '.join(sorted(users))}")
        del self.engine.volumes[name]

    async def close(self) -> None:
        """Nothing to release: the engine (and its containers) outlives the runtime."""
