"""Container healthchecks run by the agent: what a task's check is, how results add
up to a health status, and the loop that runs the check inside the container.

`health_check` turns the task's `HealthConfig`, merged with the image's own
HEALTHCHECK as Docker merges them (each setting the spec leaves unset comes from
the image; `--no-healthcheck`'s ["NONE"] disables both), into a `HealthCheck`
(Docker's defaults for what neither sets; None when there is nothing to run). `HealthState` is
the pure decision part: fed probe results with their times, it says whether the
container is starting, healthy or unhealthy, honouring the start period and the
retries. `HealthMonitor` runs one probe at a time through `Runtime.exec`, on an
injectable clock, and tells its owner (the task controller) about each change
of status and of each failed probe. `health_proto` is what the task's status
carries for `inspect` (Docker's State.Health). The image's HEALTHCHECK is read
by the runtime (`Runtime.image_health`); this module only merges it.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Deque

from proto import model
from proto import objects_pb2 as pb
from worker.clock import REAL_CLOCK, Clock
from worker.runtime import ExecResult, ImageHealth, Runtime, RuntimeError_

DEFAULT_INTERVAL = 30.0      # seconds, as Docker's engine
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_START_PERIOD = 0.0
KEEP_RESULTS = 5             # results kept per task
MAX_OUTPUT = 4096            # bytes of output kept per result
EXEC_GRACE = 5.0             # beyond the timeout, before the monitor gives up on the runtime

STARTING = "starting"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class HealthCheck:
    """One task's check, with every duration in seconds."""
    argv: tuple[str, ...]
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    start_period: float = DEFAULT_START_PERIOD
    start_interval: float = 0.0   # between checks in the start period; 0: the interval

    def next_interval(self, state: "HealthState", now: float) -> float:
        """How long to wait before the next check: the start interval while the
        container is still starting within its start period, else the interval."""
        if (self.start_interval > 0 and state.status == STARTING
                and now - state.started_at < self.start_period):
            return self.start_interval
        return self.interval


def _seconds(d: pb.Duration, default: float) -> float:
    return d.nanos / 1e9 if d.nanos > 0 else default


def health_check(container: pb.ContainerSpec,
                 image: ImageHealth | None = None) -> HealthCheck | None:
    """The check to run for a container spec and its image's HEALTHCHECK; None for no
    check (none given, NONE, or a test form other than CMD and CMD-SHELL)."""
    h = container.healthcheck if container.HasField("healthcheck") else pb.HealthConfig()
    image = image or ImageHealth()
    test = list(h.test) or list(image.test)
    if not test:
        return None
    kind = test[0].upper()
    if kind == "CMD" and len(test) > 1:
        argv: tuple[str, ...] = tuple(test[1:])
    elif kind == "CMD-SHELL" and len(test) > 1:
        argv = ("/bin/sh", "-c", " ".join(test[1:]))
    else:
        return None
    return HealthCheck(argv=argv,
                       interval=_seconds(h.interval, image.interval or DEFAULT_INTERVAL),
                       timeout=_seconds(h.timeout, image.timeout or DEFAULT_TIMEOUT),
                       retries=h.retries if h.retries > 0 else image.retries or DEFAULT_RETRIES,
                       start_period=_seconds(h.start_period,
                                             image.start_period or DEFAULT_START_PERIOD),
                       start_interval=_seconds(h.start_interval, image.start_interval))


@dataclass(frozen=True)
class ProbeResult:
    """One run of the check: when it started and ended (clock seconds, and unix time
    for display), its exit code (0 healthy, anything else a failure) and its output
    (capped)."""
    start: float
    end: float
    exit_code: int
    output: str = ""
    started_unix: float = 0.0
    ended_unix: float = 0.0


@dataclass
class HealthState:
    """The health of one container, decided from its probe results.

    A success makes it healthy and clears the failing streak. A failure adds to
    the streak unless the container has never been healthy and the probe started
    within the start period (counted from `started_at`); once the streak reaches
    `retries`, it is unhealthy. Unhealthy is final here: the task fails.
    """
    retries: int
    start_period: float
    started_at: float
    status: str = STARTING
    failing_streak: int = 0
    log: Deque[ProbeResult] = field(default_factory=lambda: collections.deque(maxlen=KEEP_RESULTS))

    def record(self, result: ProbeResult) -> str:
        """Takes one result and returns the status after it."""
        self.log.append(result)
        if self.status == UNHEALTHY:
            return self.status
        if result.exit_code == 0:
            self.failing_streak = 0
            self.status = HEALTHY
            return self.status
        in_start_period = result.start - self.started_at < self.start_period
        if self.status == STARTING and in_start_period:
            return self.status
        self.failing_streak += 1
        if self.failing_streak >= max(self.retries, 1):
            self.status = UNHEALTHY
        return self.status


def health_proto(state: HealthState) -> pb.TaskHealth:
    """The health part of a task's status: status, failing streak, last results."""
    out = pb.TaskHealth(status=state.status, failing_streak=state.failing_streak)
    for r in state.log:
        out.log.append(pb.HealthResult(start=model.timestamp(r.started_unix or None),
                                       end=model.timestamp(r.ended_unix or None),
                                       exit_code=r.exit_code, output=r.output))
    return out


def _text(result: ExecResult) -> str:
    return result.output[:MAX_OUTPUT].decode(errors="replace")


class HealthMonitor:
    """Runs a task's check in its container every `interval` until it is unhealthy.

    Exactly one probe is in flight at a time. A probe that outlives its timeout
    counts as a failure. `on_change(status, state)` is called on every change of
    status (healthy after starting, unhealthy ...); `on_result(state)`, when given,
    after any other result worth showing (a failure, or a success that clears a
    streak; a success after a success is not news). `run` returns once the
    container is unhealthy (the owner then stops it) and is otherwise cancelled
    by its owner.
    """

    def __init__(self, check: HealthCheck, runtime: Runtime, container_id: str,
                 on_change: Callable[[str, HealthState], None], *,
                 on_result: Callable[[HealthState], None] | None = None,
                 clock: Clock = REAL_CLOCK, started_at: float | None = None,
                 log: logging.LoggerAdapter | None = None, task_id: str = "") -> None:
        self.check = check
        self.runtime = runtime
        self.container_id = container_id
        self.on_change = on_change
        self.on_result = on_result
        self.clock = clock
        self.task_id = task_id
        self.state = HealthState(retries=check.retries, start_period=check.start_period,
                                 started_at=clock.now() if started_at is None else started_at)
        self.log = log or logging.LoggerAdapter(logging.getLogger(__name__), {"node": "?"})
        self.in_flight = 0   # probes running now (0 or 1)
        self.probes = 0      # probes started in all

    async def run(self) -> HealthState:
        """Probes until the container is unhealthy; returns the final state."""
        while True:
            await self.clock.sleep(self.check.next_interval(self.state, self.clock.now()))
            before, streak = self.state.status, self.state.failing_streak
            result = await self.probe()
            if result is None:
                continue   # the container is no longer running: its exit is the news
            after = self.state.record(result)
            if after == UNHEALTHY or result.exit_code != 0:
                self.log.info("task %s: health check failed (exit %d, streak %d): %s",
                              self.task_id, result.exit_code, self.state.failing_streak,
                              result.output.strip()[:200])
            if after != before:
                self.log.info("task %s: container %s", self.task_id, after)
                self.on_change(after, self.state)
            elif self.on_result is not None and (result.exit_code != 0
                                                 or self.state.failing_streak != streak):
                self.on_result(self.state)
            if after == UNHEALTHY:
                return self.state

    async def probe(self) -> ProbeResult | None:
        """Runs the check once, bounded by its timeout (on this monitor's clock); None
        when it could not run because the container no longer runs."""
        start, started_unix = self.clock.now(), time.time()
        self.in_flight += 1
        self.probes += 1
        job = asyncio.ensure_future(self.runtime.exec(self.container_id, list(self.check.argv),
                                                      self.check.timeout, MAX_OUTPUT))
        finished = asyncio.Event()
        job.add_done_callback(lambda _job: finished.set())
        try:
            if not await self.clock.wait(finished, self.check.timeout + EXEC_GRACE):
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await job
                return self._result(start, started_unix, -1, self._timed_out())
            try:
                outcome = job.result()
            except RuntimeError_ as exc:
                if not await self._container_running():
                    return None
                return self._result(start, started_unix, -1, f"health check: {exc}")
        finally:
            self.in_flight -= 1
            if not job.done():
                job.cancel()
        if outcome.timed_out:
            return self._result(start, started_unix, -1, self._timed_out())
        return self._result(start, started_unix, outcome.exit_code, _text(outcome))

    def _timed_out(self) -> str:
        return f"Health check exceeded timeout ({self.check.timeout:g}s)"

    def _result(self, start: float, started_unix: float, exit_code: int,
                output: str) -> ProbeResult:
        """A result ending now."""
        return ProbeResult(start, self.clock.now(), exit_code, output, started_unix, time.time())

    async def _container_running(self) -> bool:
        try:
            return (await self.runtime.inspect(self.container_id)).running
        except RuntimeError_:
            return False
