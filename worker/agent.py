"""The worker agent: a node's session with the dispatcher.

The agent owns the conversation with the managers. It opens a session
(describing the node), heartbeats, receives task assignments and keeps one
`TaskController` per assigned task, sends their status changes in batches and
serves log subscriptions. When the session breaks it opens a new one, backing
off from 0.1 s to 2 s; the first attempt after an open session broke waits a
random time up to RECONNECT_SPREAD, so that the nodes of a cluster do not all
reconnect at once. On its first assignment set it adopts the containers a
previous agent process left on this node, so a restart never duplicates tasks.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import os
import platform
import random
import re
from typing import Any, Callable, Coroutine, Sequence

import grpc

from pki import tls

from proto import dispatcher_pb2 as dpb
from proto import dispatcher_pb2_grpc as dgrpc
from proto import model
from proto import objects_pb2 as pb
from metrics.instruments import NodeMetrics
from worker import taskspec
from worker.clock import REAL_CLOCK, Clock
from worker.controller import TaskController
from worker.logs import LocalTask, LogPublisher
from worker.netviews import NetworkViews
from worker.overlay import Networking
from worker.runtime import ContainerState, Runtime, RuntimeError_
from worker.status import StatusReporter
from worker.taskfiles import TaskFiles, default_root
from worker.volumes import VolumeKeeper

BACKOFF_MIN = 0.1
BACKOFF_MAX = 2.0
# After an open session breaks, the first new attempt waits a random time up to this:
# when a leader dies, every node of the cluster loses its session at once, and a
# thousand nodes must not all knock on the new leader in the same instant.
RECONNECT_SPREAD = 1.0
DEFAULT_HEARTBEAT_PERIOD = 5.0
STATUS_RPC_TIMEOUT = 10.0


class SessionEnded(Exception):
    """The dispatcher closed one of the session's streams."""


def heartbeat_delay(period: float) -> float:
    """How long to wait before the next heartbeat: the period minus a safety margin."""
    period = period if period > 0 else DEFAULT_HEARTBEAT_PERIOD
    return max(0.01, period - min(0.5, period * 0.2))


def next_backoff(current: float) -> float:
    return min(BACKOFF_MAX, current * 2)


LEADER_HINT = re.compile(r"the leader is at (\S+:\d+)")


def parse_targets(target: str | Sequence[str]) -> list[str]:
    """One gRPC target, a comma-separated list of them, or a sequence of them."""
    items = target.split(",") if isinstance(target, str) else list(target)
    targets = [t.strip() for t in items if t.strip()]
    if not targets:
        raise ValueError("the agent needs at least one dispatcher address")
    return targets


def memory_total() -> int:
    """Bytes of RAM from /proc/meminfo (0 when unreadable)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def pick_container(containers: list[ContainerState]) -> tuple[ContainerState, list[ContainerState]]:
    """Of several containers of one task: (the one to keep, the ones to remove).

    A running container wins; among equals, the most recently started or finished.
    """
    ranked = sorted(containers, key=lambda c: (c.running, c.started_at, c.finished_at), reverse=True)
    return ranked[0], ranked[1:]


class Agent:
    """Keeps this node's session with the dispatcher and runs its tasks."""

    def __init__(
        self,
        node_id: str,
        runtime: Runtime,
        target: str | Sequence[str],
        *,
        hostname: str,
        credentials: grpc.ChannelCredentials | None = None,
        engine_labels: dict[str, str] | None = None,
        generic_resources: Sequence[pb.GenericResource] = (),
        cluster_id: str = "",
        on_session_message: Callable[[dpb.SessionMessage], None] | None = None,
        files_root: str | None = None,
        tls_info: Callable[[], pb.NodeTLSInfo] | None = None,
        node_addr: str = "",
        data_path_addr: str = "",
        clock: Clock = REAL_CLOCK,
        metrics: NodeMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.node_id = node_id
        self.rng = rng or random.Random()  # spreads reconnections (RECONNECT_SPREAD)
        self.metrics = metrics if metrics is not None else NodeMetrics()
        self.clock = clock  # times the reconnect back-off and the heartbeats
        self.on_session_message = on_session_message
        self.tls_info = tls_info
        self.runtime = runtime
        self.targets = parse_targets(target)
        self.hostname = hostname
        self.credentials = credentials
        self.engine_labels = dict(engine_labels or {})
        # what this node offers (`swarm daemon --node-generic-resource`), reported as is
        self.generic_resources = list(generic_resources)
        self.cluster_id = cluster_id
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})
        self.reporter = StatusReporter()
        # Secrets and configs live in memory only; tasks get them on a tmpfs of their own.
        self.files = TaskFiles(files_root or default_root(node_id), self.log)
        self.secrets = self.files.secrets
        self.configs = self.files.configs
        # The overlay networks this node takes part in (see worker/netviews.py).
        self.networks = NetworkViews(node_id, self.log)
        # Tasks on overlays get namespaces and interfaces (needs the node's underlay address:
        # the data path address when one was given, reported to the managers, who give
        # it to the other nodes as this node's VXLAN end).
        self.data_path_addr = data_path_addr
        overlay_addr = data_path_addr or node_addr
        self.networking = Networking(node_id, overlay_addr, self.networks, self.log) \
            if overlay_addr else None
        # The node's named volumes: reported to the managers, removed on their request.
        self.volumes = VolumeKeeper(runtime, self.log)
        self._controllers: dict[str, TaskController] = {}
        self._logs = LogPublisher(runtime, node_id, self._local_task, self.log)
        self._unclaimed: dict[str, list[ContainerState]] | None = None  # None: not scanned yet
        self._adopting = True  # until the first COMPLETE set has been applied
        self._background: set[asyncio.Task[None]] = set()
        self._session_id = ""
        self._stopped = asyncio.Event()
        self._done = asyncio.Event()
        self._running = False
        self.connected = asyncio.Event()  # set while a session is open
        self._redirect = ""  # the leader's address, when a follower named it
        self._reconnect = asyncio.Event()  # new credentials: open a new session with them

    # ---------------------------------------------------------------- API --

    @property
    def session_id(self) -> str:
        return self._session_id

    def task_states(self) -> dict[str, int]:
        """Last reported state of every task the agent currently controls (safe to
        call from another thread, e.g. a metrics scrape: the dict is copied first)."""
        controllers = list(self._controllers.items())
        return {tid: ctrl.last_state for tid, ctrl in controllers}

    def container_of(self, task_id: str) -> str:
        ctrl = self._controllers.get(task_id)
        return ctrl.container_id if ctrl else ""

    def set_credentials(self, credentials: grpc.ChannelCredentials) -> None:
        """Uses new channel credentials (a renewed certificate) from now on: the
        session is reopened with them; tasks keep running."""
        self.credentials = credentials
        self._reconnect.set()

    async def stop(self) -> None:
        """Ends the session and abandons the controllers; containers keep running."""
        self._stopped.set()
        if self._running:
            await self._done.wait()

    async def run(self) -> None:
        """Keeps a session open (reconnecting as needed) until `stop()`."""
        self._running = True
        backoff = BACKOFF_MIN
        attempt = 0
        try:
            while not self._stopped.is_set():
                target = self._redirect or self.targets[attempt % len(self.targets)]
                self._redirect = ""
                established = await self._attempt(target)
                if self._stopped.is_set():
                    break
                if established:
                    backoff = BACKOFF_MIN
                else:
                    attempt += 1
                if self._redirect:
                    continue  # a follower named the leader: go there at once
                pause = self.rng.uniform(0.0, RECONNECT_SPREAD) if established else backoff
                await self.clock.wait(self._stopped, pause)
                if not established:
                    backoff = next_backoff(backoff)
        finally:
            await self._shutdown()
            self._running = False
            self._done.set()

    # ----------------------------------------------------------- session --

    def _channel(self, target: str) -> grpc.aio.Channel:
        if self.credentials is not None:
            return grpc.aio.secure_channel(target, self.credentials,
                                           options=tls.channel_options())
        return grpc.aio.insecure_channel(target)

    async def _attempt(self, target: str) -> bool:
        """One session with `target`, until it breaks or stop(); True if it was established."""
        established = asyncio.Event()
        self._reconnect.clear()
        channel = self._channel(target)
        job = asyncio.create_task(self._session(dgrpc.DispatcherStub(channel), established))
        stopper = asyncio.create_task(self._stopped.wait())
        renewed = asyncio.create_task(self._reconnect.wait())
        try:
            await asyncio.wait({job, stopper, renewed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            renewed.cancel()
            job.cancel()
            await asyncio.gather(job, return_exceptions=True)
            self.connected.clear()
            await self._logs.reset()
            await channel.close()
        if job.cancelled():
            if self._reconnect.is_set() and not self._stopped.is_set():
                self.log.info("new credentials: reopening the session")
                self._redirect = target  # reconnect at once, to the same manager
            return established.is_set()
        exc = job.exception()
        if isinstance(exc, grpc.aio.AioRpcError):
            reason = f"{exc.code().name}: {exc.details()}"
            leader = LEADER_HINT.search(exc.details() or "")
            if not established.is_set() and leader and leader.group(1) != target:
                self._redirect = leader.group(1)
        else:
            reason = str(exc) or type(exc).__name__
        if established.is_set():
            self.log.warning("session %s with %s ended (%s); reconnecting", self._session_id, target, reason)
        else:
            self.log.warning("cannot open a session with %s (%s); retrying", target, reason)
        return established.is_set()

    async def _session(self, stub: dgrpc.DispatcherStub, established: asyncio.Event) -> None:
        """Opens a session and runs its loops; returns (raising) when any of them ends."""
        description = await self._describe()
        call = stub.Session(dpb.SessionRequest(
            node_id=self.node_id, description=description, session_id=self._session_id))
        try:
            first = await call.read()
            if first is grpc.aio.EOF:
                raise SessionEnded("the session stream closed before opening")
            session_id = first.session_id
            self._session_id = session_id
            established.set()
            self.connected.set()
            self.log.info("session %s open", session_id)
            self._apply_session_message(first, stub)
            loops = [
                asyncio.create_task(self._read_session(call, stub), name="session"),
                asyncio.create_task(self._heartbeat(stub, session_id), name="heartbeat"),
                asyncio.create_task(self._assignments(stub, session_id), name="assignments"),
                asyncio.create_task(self._send_statuses(stub, session_id), name="status"),
                asyncio.create_task(self.volumes.run(
                    functools.partial(self._send_volumes, stub, session_id)), name="volumes"),
            ]
            try:
                done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for loop in loops:
                    loop.cancel()
                await asyncio.gather(*loops, return_exceptions=True)
            for loop in done:
                if not loop.cancelled() and loop.exception() is not None:
                    raise loop.exception()  # type: ignore[misc]
            raise SessionEnded(f"{done.pop().get_name()} loop ended")
        finally:
            call.cancel()

    async def _describe(self) -> pb.NodeDescription:
        version = await self.runtime.version()
        memory = await asyncio.to_thread(memory_total)
        return pb.NodeDescription(
            hostname=self.hostname,
            platform=pb.Platform(architecture=platform.machine(), os=platform.system().lower()),
            resources=pb.Resources(nano_cpus=(os.cpu_count() or 1) * 1_000_000_000,
                                   memory_bytes=memory,
                                   generic_resources=self.generic_resources),
            engine_version=version,
            engine_labels=self.engine_labels,
            tls_info=self.tls_info() if self.tls_info is not None else None,
            data_path_addr=self.data_path_addr,
        )

    async def _read_session(self, call: grpc.aio.UnaryStreamCall, stub: dgrpc.DispatcherStub) -> None:
        while True:
            message = await call.read()
            if message is grpc.aio.EOF:
                raise SessionEnded("the dispatcher closed the session")
            assert isinstance(message, dpb.SessionMessage)
            self._apply_session_message(message, stub)

    def _apply_session_message(self, message: dpb.SessionMessage, stub: dgrpc.DispatcherStub) -> None:
        self._logs.update(list(message.log_subscriptions), self._session_id, stub.PublishLogs)
        self.volumes.requests(list(message.volume_requests),
                              functools.partial(self._answer_volume, stub, self._session_id))
        managers = [m.addr for m in message.managers if m.addr]
        if managers and sorted(managers) != sorted(self.targets):
            self.log.info("managers are now %s", ", ".join(managers))
            self.targets = managers
        if self.on_session_message is not None:
            self.on_session_message(message)

    async def _heartbeat(self, stub: dgrpc.DispatcherStub, session_id: str) -> None:
        period = DEFAULT_HEARTBEAT_PERIOD
        while True:
            response = await stub.Heartbeat(dpb.HeartbeatRequest(session_id=session_id),
                                            timeout=max(1.0, period))
            period = model.seconds(response.period) or DEFAULT_HEARTBEAT_PERIOD
            await self.clock.sleep(heartbeat_delay(period))

    async def _send_statuses(self, stub: dgrpc.DispatcherStub, session_id: str) -> None:
        async def send(batch: list[dpb.TaskStatusUpdate]) -> None:
            await stub.UpdateTaskStatus(
                dpb.UpdateTaskStatusRequest(session_id=session_id, updates=batch),
                timeout=STATUS_RPC_TIMEOUT)
        await self.reporter.run(send)

    async def _assignments(self, stub: dgrpc.DispatcherStub, session_id: str) -> None:
        call = stub.Assignments(dpb.AssignmentsRequest(session_id=session_id))
        try:
            async for message in call:
                await self._apply_assignments(message)
        finally:
            call.cancel()
        raise SessionEnded("the dispatcher closed the assignment stream")

    # ------------------------------------------------------- assignments --

    async def _apply_assignments(self, message: dpb.AssignmentsMessage) -> None:
        if self._unclaimed is None:
            self._unclaimed = await self._scan_containers()
        if message.type == dpb.AssignmentsMessage.COMPLETE:
            self._apply_complete(message.changes)
        else:
            self._apply_incremental(message.changes)

    def _apply_complete(self, changes: Sequence[dpb.AssignmentChange]) -> None:
        tasks: dict[str, pb.Task] = {}
        secrets: dict[str, pb.Secret] = {}
        configs: dict[str, pb.Config] = {}
        networks: list[dpb.NetworkView] = []
        for change in changes:
            if change.action != dpb.AssignmentChange.UPDATE:
                continue
            item = change.assignment
            kind = item.WhichOneof("item")
            if kind == "task":
                tasks[item.task.id] = item.task
            elif kind == "secret":
                secrets[item.secret.id] = item.secret
            elif kind == "config":
                configs[item.config.id] = item.config
            elif kind == "network":
                networks.append(item.network)
        for view in networks:  # before the tasks that use them
            self.networks.update(view)
        self.secrets.clear()
        self.secrets.update(secrets)
        self.configs.clear()
        self.configs.update(configs)
        for task_id, ctrl in list(self._controllers.items()):
            if task_id not in tasks and not ctrl.removing:
                self.log.info("task %s no longer assigned", task_id)
                ctrl.remove()
        for task in tasks.values():
            self._upsert(task)
        self.networks.retain(v.network_id for v in networks)
        if self._adopting:
            self._adopting = False
            live = {t.id for t in tasks.values() if not model.is_terminal(t.status.state)}
            for task_id in self.files.cleanup(keep=live):
                self.log.info("removed the secret/config tmpfs of unassigned task %s", task_id)
            if self.networking is not None:
                self._spawn(self._clean_namespaces(live))
            leftovers = self._unclaimed or {}
            self._unclaimed = {}
            for task_id, containers in leftovers.items():
                for container in containers:
                    self.log.info("removing container %s of unassigned task %s", container.name, task_id)
                    self._spawn(self._discard(container))
        self.log.debug("assignment set: %d tasks, %d secrets, %d configs",
                       len(tasks), len(secrets), len(configs))

    def _apply_incremental(self, changes: Sequence[dpb.AssignmentChange]) -> None:
        for change in changes:
            item = change.assignment
            kind = item.WhichOneof("item")
            update = change.action == dpb.AssignmentChange.UPDATE
            if kind == "task":
                if update:
                    self._upsert(item.task)
                else:
                    ctrl = self._controllers.get(item.task.id)
                    if ctrl is not None and not ctrl.removing:
                        self.log.info("task %s removed from assignments", item.task.id)
                        ctrl.remove()
            elif kind == "secret":
                if update:
                    self.secrets[item.secret.id] = item.secret
                else:
                    self.secrets.pop(item.secret.id, None)
            elif kind == "config":
                if update:
                    self.configs[item.config.id] = item.config
                else:
                    self.configs.pop(item.config.id, None)
            elif kind == "network":
                if update:
                    self.networks.update(item.network)
                else:
                    self.networks.remove(item.network.network_id)

    def _upsert(self, task: pb.Task) -> None:
        ctrl = self._controllers.get(task.id)
        if ctrl is not None:
            if ctrl.removing:
                self.log.warning("task %s assigned again while its container is being removed", task.id)
            else:
                ctrl.update(task)
            return
        container = self._claim(task.id)
        if container is not None and self.networking is not None:
            self.networking.register(task)  # its namespace and interfaces are still there
        ctrl = TaskController(task, self.runtime, self._report, node_id=self.node_id,
                              cluster_id=self.cluster_id, node_hostname=self.hostname,
                              container=container, log=self.log, files=self.files,
                              network=self.networking, clock=self.clock,
                              start_observer=self.metrics.agent_container_start_seconds.observe)
        self._controllers[task.id] = ctrl
        ctrl.start().add_done_callback(functools.partial(self._controller_done, ctrl))

    def _controller_done(self, ctrl: TaskController, job: asyncio.Task[None]) -> None:
        if self._controllers.get(ctrl.task_id) is ctrl:
            del self._controllers[ctrl.task_id]
        self.volumes.poke()  # its container (and anonymous volumes) may be gone
        if not job.cancelled() and job.exception() is not None:
            self.log.error("controller of task %s crashed: %r", ctrl.task_id, job.exception())

    # ---------------------------------------------------------- adoption --

    async def _scan_containers(self) -> dict[str, list[ContainerState]]:
        """Containers of this node left by a previous agent, grouped by task ID."""
        found = await self.runtime.list({taskspec.LABEL_NODE_ID: self.node_id})
        by_task: dict[str, list[ContainerState]] = {}
        for container in found:
            task_id = container.labels.get(taskspec.LABEL_TASK_ID, "")
            by_task.setdefault(task_id, []).append(container)
        if found:
            self.log.info("found %d containers of %d tasks from a previous run",
                          len(found), len(by_task))
        return by_task

    def _claim(self, task_id: str) -> ContainerState | None:
        """Hands an existing container of `task_id` to its new controller (adoption)."""
        if not self._adopting or not self._unclaimed or task_id not in self._unclaimed:
            return None
        keep, extra = pick_container(self._unclaimed.pop(task_id))
        for container in extra:
            self.log.info("removing duplicate container %s of task %s", container.name, task_id)
            self._spawn(self.runtime.remove(container.id))
        return keep

    async def _discard(self, container: ContainerState) -> None:
        """Stops and removes a container no task owns any more."""
        if container.running:
            await self.runtime.stop(container.id, "", taskspec.DEFAULT_STOP_GRACE)
        await self.runtime.remove(container.id)

    async def _clean_namespaces(self, live: set[str]) -> None:
        assert self.networking is not None
        for name in await self.networking.cleanup(keep=live):
            self.log.info("removed namespace %s of an unassigned task", name)
        self.networking.schedule()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        job = asyncio.create_task(coro)
        self._background.add(job)

        def finished(j: asyncio.Task[None]) -> None:
            self._background.discard(j)
            if not j.cancelled() and isinstance(j.exception(), RuntimeError_):
                self.log.warning("container cleanup failed: %s", j.exception())
            elif not j.cancelled() and j.exception() is not None:
                self.log.error("container cleanup crashed: %r", j.exception())
        job.add_done_callback(finished)

    # ---------------------------------------------------------- volumes ---

    def _report(self, task_id: str, status: pb.TaskStatus) -> None:
        """Queues a task's status; a container that started or ended may have
        created or released volumes, so the volume list is looked at again."""
        self.reporter.report(task_id, status)
        if status.state == pb.RUNNING or model.is_terminal(status.state):
            self.volumes.poke()

    async def _send_volumes(self, stub: dgrpc.DispatcherStub, session_id: str,
                            volumes: list[pb.NodeVolume]) -> None:
        await stub.UpdateVolumes(dpb.UpdateVolumesRequest(session_id=session_id,
                                                          volumes=volumes),
                                 timeout=STATUS_RPC_TIMEOUT)

    async def _answer_volume(self, stub: dgrpc.DispatcherStub, session_id: str,
                             result: dpb.VolumeResultRequest) -> None:
        sent = dpb.VolumeResultRequest()
        sent.CopyFrom(result)
        sent.session_id = session_id
        await stub.VolumeResult(sent, timeout=STATUS_RPC_TIMEOUT)

    # ------------------------------------------------------------- logs ---

    def _local_task(self, task_id: str) -> LocalTask | None:
        ctrl = self._controllers.get(task_id)
        if ctrl is None or not ctrl.container_id:
            return None
        return LocalTask(task=ctrl.task, container_id=ctrl.container_id)

    async def _shutdown(self) -> None:
        await self._logs.reset()
        await self.volumes.close()
        controllers = list(self._controllers.values())
        await asyncio.gather(*(ctrl.cancel() for ctrl in controllers), return_exceptions=True)
        for job in list(self._background):
            job.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.networking is not None:
            await self.networking.close()
        self.log.info("agent stopped")
