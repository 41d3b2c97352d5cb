"""The Dispatcher gRPC service: one session per node, on the leader.

It keeps each node's session (heartbeats, node status; the nodes that open a session
within a few milliseconds are recorded ready in one transaction, manager/registration.py),
streams the node its task assignments (a complete set, then incremental changes driven
by store watches) together with exactly the secrets and configs those tasks need, and
folds the agents' status reports into batched store transactions. Nodes whose
heartbeats stop are marked down. It records the volumes each agent reports (only when
they changed) and carries the volume broker's requests to the agents and their answers
back.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import grpc

from manager import ca, secretrefs
from manager.logbroker import LogBroker
from manager.netview import NetIndex
from manager.registration import Registrar
from manager.volumebroker import VolumeBroker
from manager import objects
from manager.objects import copy
from metrics.instruments import NodeMetrics
from pki import tls
from proto import dispatcher_pb2 as dpb
from proto import dispatcher_pb2_grpc
from proto import model
from proto import objects_pb2 as pb
from proto import store_pb2
from proto import watch_pb2 as wpb
from raft import actions, errors
from raft.api import ObjectStore

DEFAULT_HEARTBEAT = 5.0
FLUSH_WINDOW = 0.005   # seconds status reports wait to share one transaction
CLOSED_GRACE = 3.0     # seconds a node whose stream closed has to come back
STALL_FORGIVEN = 0.1   # an expiry check this late means the loop was stalled: forgive it


def peer_ip(peer: str) -> str:
    """The IP of a gRPC peer name ("ipv4:10.1.0.3:40112" -> "10.1.0.3"; "ipv6:[::1]:5" ->
    "::1"); other names (a unix socket) as they are. A node's Status.Addr is its IP,
    as in Docker."""
    for scheme in ("ipv4:", "ipv6:"):
        if peer.startswith(scheme):
            return peer[len(scheme):].rsplit(":", 1)[0].strip("[]")
    return peer


@dataclass
class _Session:
    id: str
    node_id: str
    last_heartbeat: float
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    assignments: Optional[asyncio.Queue] = None
    stream_closed_at: Optional[float] = None
    ended: bool = False
    node: Optional[pb.Node] = None  # a changed node object to send on the next message


def _references_files(task: pb.Task) -> bool:
    """The task's spec names secrets or configs (the node may have to hold some)."""
    container = task.spec.container
    return bool(container.secrets) or bool(container.configs)


class Dispatcher(dispatcher_pb2_grpc.DispatcherServicer):
    """Serves the Dispatcher API while this manager leads."""

    def __init__(self, store: ObjectStore, node_id: str, logs: LogBroker,
                 volumes: Optional[VolumeBroker] = None,
                 metrics: Optional[NodeMetrics] = None) -> None:
        self.store = store
        self.metrics = metrics if metrics is not None else NodeMetrics()
        self.node_id = node_id
        self.logs = logs
        self.volumes = volumes or VolumeBroker(node_id)
        self.sessions: dict[str, _Session] = {}   # by node ID
        # nodes whose Session is recording them ready: the expiry must not take them for
        # ready nodes without a session (it would mark them down between that commit and
        # the session's registration, and nothing would set them ready again)
        self._registering: set[str] = set()
        self._by_id: dict[str, _Session] = {}
        self._pending: dict[str, tuple[str, pb.TaskStatus]] = {}
        self._waiters: list[asyncio.Future] = []
        self._flush_wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._started_at = time.monotonic()
        self._netindex: Optional[NetIndex] = None
        # the newest store version whose change may have touched a network view (None
        # until the store watch runs: the index is then rebuilt at every version)
        self._net_changed_at: Optional[int] = None
        self._managers_cache: tuple[int, list[dpb.WeightedPeer]] = (-1, [])
        self._period: Optional[float] = None  # the heartbeat period, kept while the watch runs
        self._roots_cache: Optional[dict[str, bytes]] = None  # likewise the CA roots
        self._last_roots: dict[str, bytes] = {}
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})
        # records the nodes of sessions opened together ready in one transaction
        self.registrar = Registrar(store, self.log, FLUSH_WINDOW)
        logs.attach(self._nudge, lambda n: n in self.sessions)
        self.volumes.attach(self._nudge, lambda n: n in self.sessions)

    # ---------------------------------------------------------- lifecycle --

    def start(self) -> None:
        """Starts the background loops (call on the event loop when leading)."""
        loop = asyncio.get_running_loop()
        self._started_at = time.monotonic()
        self._tasks = [loop.create_task(self._watch_store()),
                       loop.create_task(self._flusher()),
                       loop.create_task(self._expiry())]
        self.registrar.start()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.registrar.stop()
        for sess in list(self.sessions.values()):
            self._end(sess)

    def heartbeat_period(self) -> float:
        """The cluster's heartbeat period. While the store watch runs it is kept in
        memory (read again after a cluster change): a heartbeat must not wait for the
        store's lock, which the raft thread holds while it applies a big transaction."""
        period = self._period
        if period is None:
            cluster = ca.cluster_of(self.store)
            if cluster is not None and cluster.spec.dispatcher.heartbeat_period.nanos > 0:
                period = model.seconds(cluster.spec.dispatcher.heartbeat_period)
            else:
                period = DEFAULT_HEARTBEAT
            if self._net_changed_at is not None:  # the watch runs: it clears a stale one
                self._period = period
        return period

    # ----------------------------------------------------------- sessions --

    def _nudge(self, node_id: str) -> None:
        sess = self.sessions.get(node_id)
        if sess is not None:
            sess.wake.set()

    def _end(self, sess: _Session) -> None:
        sess.ended = True
        sess.wake.set()
        if sess.assignments is not None:
            sess.assignments.put_nowait(None)
        if self.sessions.get(sess.node_id) is sess:
            del self.sessions[sess.node_id]
            self.logs.node_gone(sess.node_id)
        self._by_id.pop(sess.id, None)

    async def _session_or_abort(self, context, session_id: str) -> _Session:
        sess = self._by_id.get(session_id)
        if sess is not None and not sess.ended:
            return sess
        await context.abort(grpc.StatusCode.NOT_FOUND, "session invalid: open a new session")
        raise AssertionError("unreachable: abort raises")

    def session_node(self, session_id: str) -> Optional[str]:
        """The node ID of a live session, or None."""
        sess = self._by_id.get(session_id)
        return None if sess is None or sess.ended else sess.node_id

    def _managers(self) -> list[dpb.WeightedPeer]:
        """The managers every session message carries (read once per store version:
        a thousand sessions woken by one change share one scan of the nodes)."""
        version = self.store.version
        if self._managers_cache[0] != version:
            self._managers_cache = (version, [
                dpb.WeightedPeer(node_id=n.id, addr=n.manager_status.addr, weight=1)
                for n in self.store.list("node") if n.role == pb.MANAGER])
        return self._managers_cache[1]

    def _roots(self) -> dict[str, bytes]:
        """The roots nodes must trust and the one that signs now (see manager.ca); kept
        in memory while the store watch runs, like the heartbeat period (every session
        message carries them)."""
        roots = self._roots_cache
        if roots is None:
            cluster = ca.cluster_of(self.store)
            if cluster is None or not cluster.root_ca_cert:
                roots = {}
            else:
                roots = {"root_ca": ca.trusted_roots(cluster, None),  # type: ignore[arg-type]
                         "issuing_ca": ca.issuing_cert(cluster)}
            if self._net_changed_at is not None:  # the watch runs: it clears a stale one
                self._roots_cache = roots
        return roots

    async def _register_node(self, node_id: str, request: dpb.SessionRequest,
                             peer: str) -> Optional[pb.Node]:
        """Records the node ready (creating it on its first session); the node object
        as stored, or None if it was removed meanwhile. Sessions opened together share
        one transaction (manager/registration.py)."""
        return await self.registrar.register(node_id, request, peer)

    async def Session(self, request, context):
        ident = tls.peer_identity(context)
        node_id = ident.node_id if ident is not None else request.node_id
        if not node_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "node ID missing")
        old = self.sessions.get(node_id)
        if old is not None:
            self._end(old)
        peer = peer_ip(context.peer() or "")
        self._registering.add(node_id)
        try:
            node = await self._register_node(node_id, request, peer)
            sess = _Session(id=model.new_id(), node_id=node_id,
                            last_heartbeat=time.monotonic())
            self.sessions[node_id] = sess
        except (errors.NotLeader, errors.Unavailable) as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        finally:
            self._registering.discard(node_id)
        self._by_id[sess.id] = sess
        self.metrics.dispatcher_sessions_opened.inc()
        self.log.info("node %s (%s) opened session %s", node_id,
                      request.description.hostname, sess.id)
        try:
            yield dpb.SessionMessage(session_id=sess.id, node=node, managers=self._managers(),
                                     log_subscriptions=self.logs.subscriptions_for(node_id),
                                     volume_requests=self.volumes.requests_for(node_id),
                                     **self._roots())
            while not sess.ended:
                await sess.wake.wait()
                sess.wake.clear()
                if sess.ended:
                    break
                node_update, sess.node = sess.node, None
                yield dpb.SessionMessage(session_id=sess.id, node=node_update,
                                         managers=self._managers(),
                                         log_subscriptions=self.logs.subscriptions_for(node_id),
                                         volume_requests=self.volumes.requests_for(node_id),
                                         **self._roots())
        finally:
            if not sess.ended:
                sess.stream_closed_at = time.monotonic()
                self.log.info("node %s: session stream closed", node_id)

    async def Heartbeat(self, request, context):
        sess = await self._session_or_abort(context, request.session_id)
        sess.last_heartbeat = time.monotonic()
        self.metrics.dispatcher_heartbeats.inc()
        return dpb.HeartbeatResponse(period=model.duration(self.heartbeat_period()))

    # -------------------------------------------------------- assignments --

    @staticmethod
    def _assignment(task: pb.Task, action: dpb.AssignmentChange.Action) -> dpb.AssignmentChange:
        change = dpb.AssignmentChange(action=action)
        change.assignment.task.CopyFrom(task)
        return change

    def _file_changes(self, held: dict[str, pb.Task], given: dict[str, set[str]]
                      ) -> tuple[list[dpb.AssignmentChange], list[dpb.AssignmentChange]]:
        """(additions, withdrawals) that bring the node's secrets and configs in line with
        the tasks it holds; `given` (kind -> IDs the node has) is brought up to date."""
        secret_ids, config_ids = secretrefs.wanted(held.values())
        adds: list[dpb.AssignmentChange] = []
        drops: list[dpb.AssignmentChange] = []
        for kind, want in (("secret", secret_ids), ("config", config_ids)):
            have = given[kind]
            for obj_id in sorted(want - have):
                obj = self.store.get(kind, obj_id)
                if obj is None:
                    continue  # removed meanwhile: the agent rejects the task that needs it
                change = dpb.AssignmentChange(action=dpb.AssignmentChange.UPDATE)
                getattr(change.assignment, kind).CopyFrom(obj)
                adds.append(change)
                have.add(obj_id)
            for obj_id in sorted(have - want):
                change = dpb.AssignmentChange(action=dpb.AssignmentChange.REMOVE)
                getattr(change.assignment, kind).id = obj_id
                drops.append(change)
                have.discard(obj_id)
        return adds, drops

    async def Assignments(self, request, context):
        sess = await self._session_or_abort(context, request.session_id)
        queue: asyncio.Queue = asyncio.Queue()
        if sess.assignments is not None:
            sess.assignments.put_nowait(None)
        sess.assignments = queue
        sent: dict[str, tuple[int, int, int, int]] = {}  # id -> (version, desired, spec, force)
        given: dict[str, set[str]] = {"secret": set(), "config": set()}
        # the node's tasks that reference secrets or configs (a task's spec never changes):
        # the files the node needs are theirs, the other tasks need not be looked at
        with_files: dict[str, pb.Task] = {}
        tasks = self.store.tasks_of(node_id=sess.node_id)
        for t in tasks:
            sent[t.id] = (t.meta.version, t.desired_state, t.spec_version, t.spec.force_update)
            if _references_files(t):
                with_files[t.id] = t
        adds, _ = self._file_changes(with_files, given)
        nets: dict[str, tuple[bytes, str]] = {}  # network views sent (network ID -> mark)
        net_adds, _ = self._net_index().changes(sess.node_id, nets)
        # Secrets, configs and network views come before the tasks that use them, and
        # leave after them.
        complete = net_adds + adds + [self._assignment(t, dpb.AssignmentChange.UPDATE)
                                      for t in tasks]
        self._count_batch(complete)
        yield dpb.AssignmentsMessage(type=dpb.AssignmentsMessage.COMPLETE, changes=complete)
        while True:
            batch = await queue.get()
            if batch is None:
                return
            changes = []
            for action, task in batch:
                known = sent.get(task.id)
                if action == wpb.WatchEvent.REMOVE:
                    with_files.pop(task.id, None)
                    if known is not None:
                        del sent[task.id]
                        changes.append(self._assignment(task, dpb.AssignmentChange.REMOVE))
                    continue
                if task.id in with_files or _references_files(task):
                    with_files[task.id] = task
                key = (task.desired_state, task.spec_version, task.spec.force_update)
                if known is not None and (task.meta.version <= known[0] or known[1:] == key):
                    continue
                sent[task.id] = (task.meta.version, *key)
                changes.append(self._assignment(task, dpb.AssignmentChange.UPDATE))
            adds, drops = self._file_changes(with_files, given) \
                if with_files or given["secret"] or given["config"] else ([], [])
            net_adds, net_drops = self._net_index().changes(sess.node_id, nets)
            changes = net_adds + adds + changes + drops + net_drops
            if changes:
                self._count_batch(changes)
                yield dpb.AssignmentsMessage(type=dpb.AssignmentsMessage.INCREMENTAL,
                                             changes=changes)

    def _count_batch(self, changes: list) -> None:
        self.metrics.dispatcher_assignment_batches.inc()
        self.metrics.dispatcher_assignment_changes.inc(len(changes))

    def _net_index(self) -> NetIndex:
        """The cluster's network views, shared by every session: rebuilt only when a
        store change since the last build may have changed some view (`_touches_networks`
        of the events the store watch saw), never for a plain task status report of a
        task without networks. Before the watch runs, it is rebuilt at every version."""
        index = self._netindex
        if index is None or (self._net_changed_at > index.version
                             if self._net_changed_at is not None
                             else index.version != self.store.version):
            index = self._netindex = NetIndex(self.store.snapshot())
        return index

    def _touches_networks(self, ev: Any) -> bool:
        """Whether a store event may change some node's network views: what the object
        is now or, for an update, was before (a change that takes a VIP, an attachment
        or the network keys away changes the views as much as one that adds them)."""
        return self._bears_on_networks(ev.object) or (
            ev.old_object.WhichOneof("object") is not None
            and self._bears_on_networks(ev.old_object))

    def _bears_on_networks(self, wrapped: Any) -> bool:
        """Whether a stored object (wrapped) is part of some node's network views."""
        kind = wrapped.WhichOneof("object")
        if kind == "network":
            return True
        if kind == "cluster":
            return bool(wrapped.cluster.network_keys)
        if kind == "task":
            return bool(wrapped.task.networks)
        if kind == "service":
            svc = wrapped.service
            return bool(svc.spec.task.networks or svc.endpoint.virtual_ips
                        or svc.spec.endpoint.ports or svc.endpoint.ports)
        if kind == "node":
            index = self._netindex
            return bool(wrapped.node.attachments) or (
                index is not None and (bool(index.mesh_id) or wrapped.node.id in index.members))
        return False

    async def _watch_store(self) -> None:
        stream = self.store.watch_async(asyncio.get_running_loop())
        # an index built before the watch's view may miss changes no event will report
        self._net_changed_at = stream.view.version
        async for events in stream:
            per_node: dict[str, list] = {}
            # every session hears of a change that may touch network views (decided
            # before the loop below ends sessions of removed nodes)
            touched = any(self._touches_networks(ev) for ev in events
                          if ev.object.WhichOneof("object") != "task")
            for ev in events:
                kind = ev.object.WhichOneof("object")
                if kind == "task":
                    task = ev.object.task
                    touched = touched or bool(task.networks) or bool(ev.old_object.task.networks)
                    if task.node_id:
                        per_node.setdefault(task.node_id, []).append((ev.action, task))
                elif kind == "cluster":
                    self._period = None  # read the heartbeat period again
                    self._roots_cache = None  # and the roots
                    roots = self._roots()
                    if roots != self._last_roots:
                        self._last_roots = roots
                        for sess in self.sessions.values():
                            sess.wake.set()  # tell every node the new roots
                elif kind == "node":
                    changed = self.sessions.get(ev.object.node.id)
                    if changed is None:
                        continue
                    if ev.action == wpb.WatchEvent.REMOVE:
                        self._end(changed)
                    else:
                        changed.node = ev.object.node
                        changed.wake.set()
            if touched:
                self._net_changed_at = max(self._net_changed_at, events[0].version)
                for node_id in self.sessions:
                    per_node.setdefault(node_id, [])
            for node_id, batch in per_node.items():
                target = self.sessions.get(node_id)
                if target is not None and target.assignments is not None:
                    target.assignments.put_nowait(batch)

    # ------------------------------------------------------- task status --

    async def UpdateTaskStatus(self, request, context):
        sess = await self._session_or_abort(context, request.session_id)
        for upd in request.updates:
            self._pending[upd.task_id] = (sess.node_id, upd.status)
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._flush_wakeup.set()
        try:
            await fut
        except (errors.NotLeader, errors.Unavailable) as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return dpb.UpdateTaskStatusResponse()

    def _status_actions(self, pending: dict[str, tuple[str, pb.TaskStatus]]) -> list:
        tasks = self.store.snapshot().tasks  # one look under the store's lock, not one per report
        acts = []
        for task_id, (node_id, status) in pending.items():
            task = tasks.get(task_id)
            if task is None or task.node_id != node_id:
                continue
            merged = model.merged_status(task.status, status)
            if status.state < task.status.state or merged == task.status:
                continue
            # actions.update(copy of task with the merged status), with one copy, not two
            act = store_pb2.StoreAction(kind=store_pb2.StoreAction.UPDATE,
                                        expected_version=task.meta.version)
            act.object.task.CopyFrom(task)
            act.object.task.status.CopyFrom(merged)
            acts.append(act)
        return acts

    async def _flusher(self) -> None:
        while True:
            await self._flush_wakeup.wait()
            await asyncio.sleep(FLUSH_WINDOW)  # let concurrent reports join this batch
            self._flush_wakeup.clear()
            pending, self._pending = self._pending, {}
            waiters, self._waiters = self._waiters, []
            error: Optional[Exception] = None
            for _ in range(50):
                acts = self._status_actions(pending)
                if not acts:
                    break
                try:
                    await self.store.acommit(acts)
                    break
                except errors.Conflict:
                    continue
                except (errors.NotLeader, errors.Unavailable) as exc:
                    error = exc
                    break
            for fut in waiters:
                if not fut.done():
                    fut.set_exception(error) if error else fut.set_result(None)

    # ------------------------------------------------------------ volumes --

    async def UpdateVolumes(self, request, context):
        """A node's volume list: written into its status when it differs from the store's."""
        sess = await self._session_or_abort(context, request.session_id)
        try:
            await self._store_volumes(sess.node_id, list(request.volumes))
        except (errors.NotLeader, errors.Unavailable) as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return dpb.UpdateVolumesResponse()

    async def _store_volumes(self, node_id: str, volumes: list[pb.NodeVolume]) -> None:
        for _ in range(20):
            node = objects.get(self.store, pb.Node, node_id)
            if node is None or list(node.status.volumes) == volumes:
                return
            new = copy(node)
            del new.status.volumes[:]
            new.status.volumes.extend(volumes)
            try:
                await self.store.acommit([actions.update(new)])
                self.log.info("node %s reports %d volumes", node_id, len(volumes))
                return
            except errors.Conflict:
                continue
        raise errors.Unavailable(f"could not record the volumes of node {node_id}: "
                                 "too many conflicts")

    async def VolumeResult(self, request, context):
        """A node's answer to a volume request of its session stream."""
        sess = await self._session_or_abort(context, request.session_id)
        self.volumes.answer(sess.node_id, request)
        return dpb.VolumeResultResponse()

    # ------------------------------------------------------------- expiry --

    async def _expiry(self) -> None:
        while True:
            period = self.heartbeat_period()
            nap = min(0.25, period / 4)
            before = time.monotonic()
            await asyncio.sleep(nap)
            now = time.monotonic()
            stall = now - before - nap
            if stall > STALL_FORGIVEN:
                # This manager's event loop was busy (the nodes' heartbeats may be
                # waiting in it): nobody's heartbeat is counted late for that time.
                for sess in self.sessions.values():
                    sess.last_heartbeat += stall
            down: list[tuple[str, str]] = []
            for sess in list(self.sessions.values()):
                late = now - sess.last_heartbeat > 2 * period
                gone = sess.stream_closed_at is not None and \
                    now - sess.stream_closed_at > min(period, CLOSED_GRACE)
                if late or gone:
                    self._end(sess)
                    down.append((sess.node_id, "heartbeat failure" if late else
                                 "node disconnected"))
            if now - self._started_at > 3 * period:
                for node in self.store.list("node"):
                    if node.status.state == pb.NodeStatus.READY and node.id not in self.sessions \
                            and node.id not in self._registering \
                            and all(n != node.id for n, _ in down):
                        down.append((node.id, "heartbeat failure"))
            if down:
                await self._mark_down(down)

    async def _mark_down(self, down: list[tuple[str, str]]) -> None:
        for _ in range(20):
            acts = []
            for node_id, why in down:
                node = objects.get(self.store, pb.Node, node_id)
                if node is None or node.id in self.sessions or node.id in self._registering \
                        or node.status.state == pb.NodeStatus.DOWN:
                    continue
                new = copy(node)
                new.status.state = pb.NodeStatus.DOWN
                new.status.message = why
                acts.append(actions.update(new))
            if not acts:
                return
            try:
                await self.store.acommit(acts)
                for node_id, why in down:
                    self.log.warning("node %s is down: %s", node_id, why)
                return
            except errors.Conflict:
                continue
            except (errors.NotLeader, errors.Unavailable):
                return
