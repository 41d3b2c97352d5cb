"""The life of one assigned task on this node: its state machine.

A `TaskController` owns one task and its container. It runs as its own asyncio
task, drives the runtime (pull, create, start, wait, stop, remove) and reports
every observed state through a callback, never moving backwards. The agent
feeds it the task's newest version (`update`) and tells it when the task left
the assignment set (`remove`); the controller ends only after that.

A task whose spec (or image: its own HEALTHCHECK, read once the image is
present) has a healthcheck stays STARTING after its container
started, until its first healthy result (`worker.health`); only then is it
RUNNING. When the check finds the container unhealthy, the task FAILS with
"unhealthy container" and its container is stopped. Every status reported
while a check runs carries the container's health (status, failing streak, last
results); a failed check is reported too, with the task's state unchanged.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Awaitable, Callable, TypeVar

from proto import model
from proto import objects_pb2 as pb
from proto.logrules import LogOptionError
from worker import health, mounts, taskspec
from worker.caps import CapabilityError
from worker.clock import REAL_CLOCK, Clock
from worker.taskfiles import FileError, TaskFiles
from worker.overlay import Networking, TaskNetworkError, needs_netns
from worker.runtime import (ContainerNotFound, ContainerState, ImageHealth, Mount, Runtime,
                            RuntimeError_)
from worker.status import make_status, moves_forward

ReportFn = Callable[[str, pb.TaskStatus], None]
T = TypeVar("T")


class _Interrupted(Exception):
    """A stop was requested while the controller waited on the runtime."""


def exit_status(state: ContainerState) -> tuple[pb.TaskState, str, str]:
    """(task state, message, err) for a container that is no longer running."""
    if state.exit_code == 0 and not state.error:
        return pb.COMPLETE, "finished", ""
    if state.error:
        return pb.FAILED, "failed", state.error
    return pb.FAILED, "failed", f"task: non-zero exit ({state.exit_code})"


class TaskController:
    """Runs one task's container and reports what it observes."""

    def __init__(
        self,
        task: pb.Task,
        runtime: Runtime,
        report: ReportFn,
        *,
        node_id: str,
        cluster_id: str = "",
        node_hostname: str = "",
        container: ContainerState | None = None,
        log: logging.LoggerAdapter | None = None,
        files: TaskFiles | None = None,
        network: Networking | None = None,
        clock: Clock = REAL_CLOCK,
        start_observer: Callable[[float], None] | None = None,
    ) -> None:
        self.task = pb.Task()
        self._start_observer = start_observer  # told how long each container start took
        self.task.CopyFrom(task)
        self.runtime = runtime
        self.node_id = node_id
        self.node_hostname = node_hostname
        self.cluster_id = cluster_id
        self._report_fn = report
        self._last = task.status.state
        self._adopted = container
        self._container_id = container.id if container else ""
        self._removed = False
        self._files = files
        self._network = network
        self.clock = clock  # times the healthcheck
        self._pid = 0
        self._unhealthy = False
        self._image_health: ImageHealth | None = None   # the image's own HEALTHCHECK
        self.health: health.HealthMonitor | None = None  # the running check, if any
        self._changed = asyncio.Event()
        # Set while the controller has nothing to do until the task changes (a prepared task
        # held at READY, or after the container ended): tests and diagnostics wait on it.
        self.idle = asyncio.Event()
        self._job: asyncio.Task[None] | None = None
        self.log = log or logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

    # ---------------------------------------------------------------- API --

    @property
    def task_id(self) -> str:
        return self.task.id

    @property
    def container_id(self) -> str:
        """The container's ID, "" while none exists (or after removal)."""
        return self._container_id

    @property
    def last_state(self) -> int:
        """The newest state reported for this task (by us or known from the store)."""
        return self._last

    @property
    def removing(self) -> bool:
        return self._removed

    def start(self) -> asyncio.Task[None]:
        """Starts the controller's asyncio task and returns it."""
        self._job = asyncio.create_task(self._run(), name=f"task-{self.task.id}")
        return self._job

    def update(self, task: pb.Task) -> None:
        """Takes the task's newest version from the dispatcher (desired state, spec)."""
        self.task.CopyFrom(task)
        self._last = max(self._last, task.status.state)
        self._changed.set()

    def remove(self) -> None:
        """The task is no longer assigned: stop and remove its container, then end."""
        self._removed = True
        self._changed.set()

    async def cancel(self) -> None:
        """Abandons the controller without touching its container (agent shutdown)."""
        if self._job is not None and not self._job.done():
            self._job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._job

    # ----------------------------------------------------------- helpers --

    def _stop_wanted(self) -> bool:
        return self._removed or self.task.desired_state >= pb.COMPLETE

    def _remove_wanted(self) -> bool:
        return self._removed or self.task.desired_state == pb.REMOVE

    def _report(self, state: pb.TaskState, message: str, *, allow_same: bool = False,
                **fields: Any) -> None:
        if not moves_forward(self._last, state, allow_same=allow_same):
            self.log.debug("task %s: not reporting %s after %s", self.task.id,
                           model.state_name(state), model.state_name(self._last))
            return
        self._last = state
        fields.setdefault("container_id", self._container_id)
        fields.setdefault("health", self._health_status(state))
        self._report_fn(self.task.id, make_status(state, message, **fields))
        self.log.debug("task %s: %s (%s)", self.task.id, model.state_name(state), message)

    async def _interruptible(self, coro: Awaitable[T]) -> T:
        """Awaits `coro` unless a stop is requested first (then raises _Interrupted)."""
        job = asyncio.ensure_future(coro)
        try:
            while not job.done():
                self._changed.clear()
                if self._stop_wanted():
                    raise _Interrupted()
                waiter = asyncio.ensure_future(self._changed.wait())
                try:
                    await asyncio.wait({job, waiter}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
            return job.result()
        finally:
            if not job.done():
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await job

    # ------------------------------------------------------ state machine --

    async def _run(self) -> None:
        adopted = self._adopted
        if adopted is not None and adopted.running and model.is_terminal(self._last):
            # The managers consider this task over: a live container would be a duplicate.
            self.log.info("task %s: ended per the managers, stopping its leftover container", self.task.id)
            await self._stop_container()
            await self._release_files()
        driven = False
        while True:
            self._changed.clear()
            if self._stop_wanted():
                await self._shut_down()
                if self._remove_wanted():
                    await self._remove_container()
                    await self._release_network()
                if self._removed:
                    return
            elif not driven and not model.is_terminal(self._last):
                driven = True
                try:
                    await self._drive()
                except _Interrupted:
                    continue  # the stop path above stops the container and releases the files
                except Exception as exc:  # a bug or an unexpected runtime answer
                    self.log.exception("task %s: controller error", self.task.id)
                    self._report(pb.FAILED, "failed", err=f"task: {exc}")
                await self._release_files()  # the container no longer runs
                continue
            await self._await_change()

    async def _drive(self) -> None:
        """Takes the task from its current state to RUNNING and watches it until it exits."""
        adopted, self._adopted = self._adopted, None
        if adopted is not None:
            await self._load_image_health()
            if adopted.running:
                # with a healthcheck, a task not yet RUNNING stays STARTING until healthy
                if self._last >= pb.RUNNING or self._health_check() is None:
                    self._report(pb.RUNNING, "started", allow_same=True, pid=adopted.pid)
                self._pid = adopted.pid
                self.log.info("task %s: adopted running container %s", self.task.id, adopted.id[:12])
                await self._watch()
                return
            if adopted.started_at or adopted.finished_at or adopted.status not in ("created", "configured"):
                self._report_exit(adopted)
                return
            # Created but never started: carry on from READY.
        elif self._last >= pb.STARTING:
            self._report(pb.FAILED, "failed", err="task: container not found on the node")
            return
        else:
            if not await self._prepare():
                return
        await self._wait_desired_running()
        await self._start()

    async def _prepare(self) -> bool:
        """ACCEPTED → PREPARING → READY: pulls the image, checks the mounts and makes the
        named volumes they need, creates the container."""
        self._report(pb.ACCEPTED, "accepted")
        self._report(pb.PREPARING, "preparing")
        try:
            config = taskspec.container_config(self.task, self.node_id, self.cluster_id,
                                               self.node_hostname)
        except (CapabilityError, LogOptionError) as exc:
            self._report(pb.REJECTED, "preparing", err=str(exc))
            return False
        try:
            config.registry_auth = self.task.spec.container.pull_options.registry_auth
            await self._interruptible(self.runtime.ensure_image(config.image,
                                                                config.registry_auth))
        except RuntimeError_ as exc:
            self._report(pb.REJECTED, "preparing", err=str(exc) or "image pull failed")
            return False
        if self._stop_wanted():
            return False
        try:
            self._image_health = await self.runtime.image_health(config.image)
        except RuntimeError_ as exc:
            self._report(pb.REJECTED, "preparing", err=f"image inspect: {exc}")
            return False
        if not await self._prepare_mounts():
            return False
        if self._files is not None:
            try:
                config.mounts.extend(await self._files.prepare(self.task))
            except FileError as exc:
                self._report(pb.REJECTED, "preparing", err=str(exc))
                return False
        if self._network is not None and needs_netns(self.task):
            try:
                path, resolv = await self._interruptible(self._network.attach(self.task))
            except TaskNetworkError as exc:
                self._report(pb.REJECTED, "preparing", err=str(exc))
                return False
            config.network_ns = path
            # the embedded DNS answers in the task's namespace; --dns* are in this file
            config.mounts.append(Mount(source=resolv, target="/etc/resolv.conf", read_only=True))
            config.dns_servers, config.dns_search, config.dns_options = [], [], []
        try:
            self._container_id = await self.runtime.create(config)
        except RuntimeError_ as exc:
            self._report(pb.REJECTED, "preparing", err=str(exc) or "container create failed")
            await self._release_network()
            return False
        self._report(pb.READY, "prepared")
        return True

    async def _prepare_mounts(self) -> bool:
        """Checks the spec's mounts against this node and creates the named volumes they
        need (existing ones are reused); reports REJECTED with the reason otherwise."""
        spec = self.task.spec.container
        try:
            await asyncio.to_thread(mounts.check_node, spec)
            for volume in mounts.volumes_needed(spec):
                await self._interruptible(self.runtime.ensure_volume(volume))
        except (mounts.MountError, RuntimeError_) as exc:
            self._report(pb.REJECTED, "preparing", err=str(exc))
            return False
        return True

    async def _wait_desired_running(self) -> None:
        """Holds a prepared task while its desired state is READY."""
        while True:
            self._changed.clear()
            if self._stop_wanted():
                raise _Interrupted()
            if self.task.desired_state >= pb.RUNNING:
                return
            await self._await_change()

    async def _await_change(self) -> None:
        """Waits for update() or remove(), with `idle` set meanwhile."""
        self.idle.set()
        try:
            await self._changed.wait()
        finally:
            self.idle.clear()

    async def _start(self) -> None:
        """STARTING → RUNNING, then watches the container."""
        self._report(pb.STARTING, "starting")
        started = time.monotonic()
        try:
            await self.runtime.start(self._container_id)
        except RuntimeError_ as exc:
            self._report(pb.FAILED, "starting", err=str(exc) or "container start failed")
            return
        if self._start_observer is not None:
            self._start_observer(time.monotonic() - started)
        # RUNNING goes out at once (or, with a healthcheck, on its first healthy result);
        # the PID follows when the wait first inspects the container (an inspect here
        # would delay every start by a podman round trip).
        if self._health_check() is None:
            self._report(pb.RUNNING, "started")
        await self._watch(report_pid=True)

    def _health_check(self) -> health.HealthCheck | None:
        return health.health_check(self.task.spec.container, self._image_health)

    async def _load_image_health(self) -> None:
        """Reads the image's HEALTHCHECK for an adopted container (its image is present);
        a failure leaves only the spec's check, with a warning."""
        try:
            self._image_health = await self.runtime.image_health(self.task.spec.container.image)
        except RuntimeError_ as exc:
            self.log.warning("task %s: cannot read the image's healthcheck: %s", self.task.id, exc)

    def _health_status(self, state: pb.TaskState) -> pb.TaskHealth | None:
        """The health to report with `state`: the monitor's, "starting" before the first
        result, None for a task without a check."""
        if self.health is not None:
            return health.health_proto(self.health.state)
        if state == pb.STARTING and self._health_check() is not None:
            return pb.TaskHealth(status=health.STARTING)
        return None

    def _health_changed(self, status: str, state: health.HealthState) -> None:
        if status == health.HEALTHY:
            # RUNNING, or again RUNNING with the new health (an adopted task, a streak ended)
            self._report(pb.RUNNING, "started", allow_same=True, pid=self._pid)
        elif status == health.UNHEALTHY:
            self._unhealthy = True
            last = state.log[-1].output.strip() if state.log else ""
            self.log.warning("task %s: unhealthy container (last check: %s)", self.task.id,
                             last[:200])
            self._report(pb.FAILED, "unhealthy", err="unhealthy container")

    def _health_result(self, state: health.HealthState) -> None:
        """A failed check (or a streak cleared) without a change of health status: the
        task's state stays, its status shows the new health."""
        if self._last == pb.RUNNING:
            self._report(pb.RUNNING, "started", allow_same=True, pid=self._pid)
        elif self._last == pb.STARTING:
            self._report(pb.STARTING, "starting", allow_same=True)

    async def _monitor_health(self, check: health.HealthCheck) -> None:
        """Runs the healthcheck; stops the container once it is unhealthy."""
        self.health = health.HealthMonitor(check, self.runtime, self._container_id,
                                           self._health_changed, on_result=self._health_result,
                                           clock=self.clock,
                                           log=self.log, task_id=self.task.id)
        await self.health.run()
        await self._stop_container()

    async def _watch(self, report_pid: bool = False) -> None:
        """Waits for the container to exit and reports how it ended."""
        def running(state: ContainerState) -> None:
            self._pid = state.pid
            if state.pid and self._last == pb.RUNNING:
                self._report(pb.RUNNING, "started", allow_same=True, pid=state.pid)

        check = self._health_check()
        monitor = asyncio.create_task(self._monitor_health(check)) if check else None
        try:
            final = await self._interruptible(
                self.runtime.wait(self._container_id, on_running=running if report_pid else None))
        except ContainerNotFound:
            self._report(pb.FAILED, "failed", err="task: container removed behind the agent's back")
            return
        except RuntimeError_ as exc:
            self._report(pb.FAILED, "failed", err=str(exc) or "container wait failed")
            return
        finally:
            if monitor is not None:
                await self._end_monitor(monitor)
        self._report_exit(final)

    async def _end_monitor(self, monitor: asyncio.Task[None]) -> None:
        """Cancels the healthcheck (the container ended or is being stopped); a stop it
        started for an unhealthy container is let finish."""
        if not monitor.done() and not self._unhealthy:
            monitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await monitor
            except Exception:  # a bug in the monitor must not hide how the task ended
                self.log.exception("task %s: healthcheck error", self.task.id)

    def _report_exit(self, final: ContainerState) -> None:
        state, message, err = exit_status(final)
        self._report(state, message, err=err, exit_code=final.exit_code,
                     container_id=final.id or self._container_id)

    async def _stop_container(self) -> None:
        """Stops the container if it runs; failures are logged, never raised."""
        if not self._container_id:
            return
        spec = self.task.spec.container
        try:
            state = await self.runtime.inspect(self._container_id)
            if state.running:
                await self.runtime.stop(self._container_id, spec.stop_signal,
                                        taskspec.stop_grace_period(self.task))
        except ContainerNotFound:
            pass
        except RuntimeError_ as exc:
            self.log.warning("task %s: stopping container failed: %s", self.task.id, exc)

    async def _release_files(self) -> None:
        """Removes the task's secret/config tmpfs, its overlay interfaces and its network
        namespace once its container no longer runs: a task's container never starts
        again, and Docker too tears a container's sandbox down when it stops (the chaos
        soak found namespaces kept until the task left the store's history)."""
        if self._files is not None:
            await self._files.finish(self.task.id)
        if self._network is not None:
            await self._network.release(self.task.id)

    async def _release_network(self) -> None:
        """Removes the task's namespace (after its container was removed)."""
        if self._network is not None and not self._container_id:
            await self._network.release(self.task.id)

    async def _shut_down(self) -> None:
        """Stops the container and reports SHUTDOWN unless the task already ended."""
        await self._stop_container()
        await self._release_files()
        if not model.is_terminal(self._last):
            self._report(pb.SHUTDOWN, "shutdown")

    async def _remove_container(self) -> None:
        if not self._container_id:
            return
        try:
            await self.runtime.remove(self._container_id)
            self.log.debug("task %s: removed container %s", self.task.id, self._container_id[:12])
            self._container_id = ""
        except RuntimeError_ as exc:
            self.log.warning("task %s: removing container failed: %s", self.task.id, exc)
