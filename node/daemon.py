"""One running node: store, manager components, gRPC servers and agent, wired together.

The composition root (DESIGN §1): with the rest of `node/`, the only code
outside `lab/` and `tests/` that imports both `manager` and `worker`, which
otherwise meet over gRPC only, even inside one process. The node is given a
`NodeConfig` and a runtime factory (node/runtimes.py); the agent knows
containers only through that `worker.runtime.Runtime`.

Every node serves its unix socket `<data-dir>/swarm.sock` (local root). A
manager also serves its endpoint P (mutual TLS, authorization by certificate
role) and the join port P+2 (TLS, certificate issuing only); raft uses P+1.
A worker's socket answers control calls with Swarm's "not a manager" message.
Raft between managers is mutual TLS with the node certificates (pki/raft_tls.py),
taken from the credentials holder for each new raft connection.

A manager opens its data key (pki.keystore) before anything else: the store
encrypts every raft payload and snapshot with it, and its private keys are
encrypted with a passphrase derived from it. With autolock on, the key needs
the unlock key: the node serves only its unix socket in locked mode
(node/lockedmode.py) until `swarm unlock`. Once running, it re-wraps the data
key whenever the cluster object's autolock setting or unlock key changes.
"""
from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import socket
import sys
from typing import Any, Optional

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from manager.allocator.networks import ingress_network
from manager.authz import AuthzInterceptor
from manager import objects
from manager.ca import NodeCAServicer, RaftMembershipServicer, cluster_of
from manager.manager import Manager
from metrics.instruments import NodeMetrics
from node import credentials, lockedmode, renewal
from node.sdnotify import Notifier, socket_answers, stop_lines
from node.config import NodeConfig, first_availability, first_cluster_spec
from node.metricsserver import MetricsServer, MetricsServerError, node_registry
from node.renewal import CertRenewer
from node.runtimes import RuntimeFactory
from node.state import (DEFAULT_PORT, JOIN_PORT_OFFSET, LOCKED_FILE, PID_FILE, READY_FILE,
                        NodeState, metrics_endpoint, raft_bind_addr, socket_path, split_addr)
from pki import keystore
from pki import node as pkinode
from pki import raft_tls, tls, tokens
from pki.holder import CredentialsHolder
from proto import (ca_pb2, ca_pb2_grpc, control_pb2, control_pb2_grpc, dispatcher_pb2, model,
                   watch_pb2)
from proto import genericres
from proto import objects_pb2 as pb
from raft import actions, errors
from raft.replica import RaftTuning
from raft.store import Store
from worker.agent import Agent

NOT_A_MANAGER = ("This node is not a swarm manager. Worker nodes can't be used to view or "
                 "modify cluster state. Please run this command on a manager node or promote "
                 "the current node to a manager.")


# What the node's gRPC server lets clients do: ping as often as every 2.5 s while nothing is
# sent, and with no call open, so that the CLI's keepalive pings on a silent Watch stream
# (cli.grpc_transport.KEEPALIVE_OPTIONS: every 5 s) are never answered GOAWAY too_many_pings.
CLIENT_PING_INTERVAL_MS = 2500
SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.http2.min_ping_interval_without_data_ms", CLIENT_PING_INTERVAL_MS),
    ("grpc.keepalive_permit_without_calls", 1),
)


def _refuse_all(service_descriptor: Any) -> grpc.GenericRpcHandler:
    """A handler that answers every method of a service with NOT_A_MANAGER."""
    return lockedmode.refuse_all(service_descriptor, NOT_A_MANAGER)


def _raft_tuning(config: NodeConfig) -> RaftTuning:
    """Raft settings; `raft_snapshot_entries` lowers the journal length that triggers
    a snapshot (tests use it to get snapshots written quickly), in place of the cluster
    spec's snapshot interval."""
    if config.raft_snapshot_entries > 0:
        return RaftTuning(compaction_entries=config.raft_snapshot_entries,
                          compaction_pinned=True)
    return RaftTuning()


class Node:
    """Runs everything one node runs until it is told to stop."""

    def __init__(self, state: NodeState, config: NodeConfig,
                 make_runtime: RuntimeFactory, notifier: Optional[Notifier] = None) -> None:
        self.state = state
        self.config = config
        self.data_dir = config.data_dir
        self.make_runtime = make_runtime
        self.store: Optional[Store] = None
        self.server: Optional[grpc.aio.Server] = None
        # The current credentials: renewals replace them while the node runs
        # (servers and channels read them from here; see node.renewal). Read in
        # run(): a manager's private key needs its data key first.
        self.credentials_holder: Optional[CredentialsHolder] = None
        self.renewer: Optional[CertRenewer] = None
        self._agent: Optional[Agent] = None  # once run() made it
        self._manager: Optional[Manager] = None  # on a manager, once its server is up
        # this node's instruments (metrics/); served when node.json has a metrics address
        self.metrics = NodeMetrics()
        self.keys = keystore.ManagerKeys(self.data_dir)
        self.dek: Optional[bytes] = None  # the cluster data key (managers)
        self.restart_requested = False
        self._role_change: Optional[asyncio.Task] = None
        self._desired_role = state.role  # from the node object; a renewal would give this role
        self._stop = asyncio.Event()
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": state.node_id})
        # systemd's readiness protocol (Type=notify units); does nothing without one
        self.notifier = notifier or Notifier(None)
        self.notifier.log = self.log

    async def _announce_ready(self, status: str) -> None:
        """READY=1 to the service manager, once the node's socket answers a call."""
        if not self.notifier.enabled:
            return
        sock = socket_path(self.data_dir)
        if not await socket_answers(sock):
            self.log.warning("%s does not answer: readiness not sent", sock)
            return
        self.notifier.notify("READY=1", f"STATUS={status}")

    def _network_views(self) -> str:
        """The agent's network views as JSON (LocalNode.GetNetworkViews); "" before it runs."""
        return self._agent.networks.as_json() if self._agent is not None else ""

    @property
    def holder(self) -> CredentialsHolder:
        assert self.credentials_holder is not None, "credentials are read in run()"
        return self.credentials_holder

    @property
    def creds(self) -> pkinode.NodeCredentials:
        return self.holder.current()

    @property
    def is_manager(self) -> bool:
        return self.state.role == "manager"

    def _addr(self) -> str:
        return self.state.advertise_addr.rsplit(":", 1)[0]

    # ------------------------------------------------------------ manager --

    async def _bootstrap_cluster(self) -> None:
        """On the node that ran `swarm init`: creates the cluster and node objects once."""
        assert self.store is not None
        if self.store.list("cluster"):
            return
        init = self.state.init
        cluster = pb.Cluster(id=self.state.cluster_id or model.new_id(),
                             spec=first_cluster_spec(init))
        cluster.root_ca_cert = self.creds.ca_pem
        cluster.join_tokens.CopyFrom(tokens.new_join_tokens(self.creds.ca_pem))
        if cluster.spec.encryption.auto_lock_managers:
            cluster.unlock_key = tokens.generate_unlock_key()
        me = pb.Node(id=self.state.node_id, role=pb.MANAGER)
        me.spec.availability = first_availability(init)
        me.spec.desired_role = pb.MANAGER
        me.description.hostname = socket.gethostname()
        me.description.data_path_addr = self.state.data_path_addr
        me.status.state = pb.NodeStatus.UNKNOWN
        me.manager_status.raft_addr = self.state.raft_addr
        me.manager_status.addr = self.state.advertise_addr
        me.manager_status.leader = True
        me.manager_status.reachability = pb.ManagerStatus.REACHABLE
        ingress = ingress_network(cluster)  # Docker's `ingress`
        ingress.id = model.new_id()
        await self.store.acommit([actions.create(cluster), actions.create(me),
                                  actions.create(ingress)])
        self.log.info("cluster %s created", cluster.id)

    @property
    def key_passphrase(self) -> Optional[bytes]:
        """What a manager's private keys are encrypted with (None on a worker):
        pass it as `kek` to pkinode.save / RootCA.save."""
        return keystore.private_key_passphrase(self.dek) if self.dek is not None else None

    async def _open_keys(self) -> bool:
        """Opens the data key, in locked mode until `swarm unlock` when autolock
        is on; False when the node was stopped while locked."""
        try:
            self.dek = self.keys.open()
            return True
        except keystore.LockedError:
            pass

        def open_with(key: str) -> bytes:
            tokens.parse_unlock_key(key)  # ValueError: not an unlock key at all
            try:
                return self.keys.open(key)
            except keystore.InvalidUnlockKey as exc:
                self.log.warning("unlock refused: %s", exc)
                raise lockedmode.InvalidKey(str(exc)) from None

        # locked is a steady state (it waits for an operator): ready, so that systemd
        # neither times the start out nor restarts the node in a loop meanwhile
        self.dek = await lockedmode.serve_locked(
            socket_path(self.data_dir), self.data_dir, open_with, self._stop, self.log,
            on_serving=lambda: self._announce_ready("locked: waiting for 'swarm unlock'"))
        return self.dek is not None

    def _sync_keys(self) -> None:
        """Blocking: wraps the data key as the cluster object asks (autolock
        on: by its unlock key; off: by a local key)."""
        assert self.store is not None and self.dek is not None
        cluster = cluster_of(self.store)
        if cluster is None:
            return
        want = cluster.unlock_key if cluster.spec.encryption.auto_lock_managers else ""
        if self.keys.wrapped_by(want or None):
            return
        self.keys.store(self.dek, want or None)
        self.log.info("data key re-wrapped: autolock %s", "on" if want else "off")

    async def _follow_keys(self) -> None:
        """Re-wraps the data key at start and after every change of the cluster object."""
        assert self.store is not None
        changed = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_events(events: list, version: int) -> None:
            if any(e.object.WhichOneof("object") == "cluster" for e in events):
                loop.call_soon_threadsafe(changed.set)

        unsubscribe = self.store.subscribe(on_events)
        changed.set()
        try:
            while True:
                await changed.wait()
                changed.clear()
                try:
                    await loop.run_in_executor(None, self._sync_keys)
                except Exception:
                    self.log.exception("cannot re-wrap the data key; will retry on the next "
                                       "cluster change")
        finally:
            unsubscribe()

    async def _start_store(self) -> None:
        assert self.dek is not None
        cipher = tokens.DataCipher(self.dek)
        self.store = Store(self.state.node_id, str(self.data_dir),
                           raft_bind_addr(self.state.listen_addr, self.state.raft_addr),
                           self.state.raft_peers, advertise_addr=self.state.raft_addr,
                           encrypt=cipher.encrypt, decrypt=cipher.decrypt,
                           tuning=_raft_tuning(self.config),
                           tls=raft_tls.RaftTLS(self.holder.current), metrics=self.metrics)
        try:
            self.store.start()
        except (errors.StoreError, OSError) as exc:  # a damaged journal, a busy raft port
            self.store = None
            raise StoreStartError(f"the raft store of this manager cannot start: {exc}") from None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.store.wait_ready, 60.0)
        for _ in range(100):
            try:
                if self.state.creates_cluster:
                    await self._bootstrap_cluster()
                await self._record_manager()
                break
            except (errors.NotLeader, errors.Unavailable, errors.Conflict):
                await asyncio.sleep(0.1)

    async def _record_manager(self) -> None:
        """Makes this node's object say manager, with its endpoints (after a promotion)."""
        assert self.store is not None
        node = objects.get(self.store, pb.Node, self.state.node_id)
        if node is None or (node.role == pb.MANAGER
                            and node.manager_status.addr == self.state.advertise_addr
                            and node.manager_status.raft_addr == self.state.raft_addr):
            return
        new = objects.copy(node)
        new.role = pb.MANAGER
        new.manager_status.addr = self.state.advertise_addr
        new.manager_status.raft_addr = self.state.raft_addr
        await self.store.acommit([actions.update(new)])
        self.log.info("recorded this node as a manager")

    def _register_manager(self, server: grpc.aio.Server) -> Manager:
        assert self.store is not None and self.dek is not None
        manager = Manager(self.store, self.state.node_id, str(self.data_dir), self._addr,
                          metrics=self.metrics)
        self._manager = manager
        manager.control.key_passphrase = self.key_passphrase  # reads the root CA key on disk
        manager.control.min_cert_expiry = self.config.min_cert_expiry
        # volume and log calls a follower hands to the leader go with this node's certificate
        def leader_channel(addr: str) -> grpc.aio.Channel:
            return tls.secure_channel(addr, tls.client_credentials(self.creds))

        manager.control.volumes.leader_channel = leader_channel
        manager.control.logcalls.leader_channel = leader_channel  # ServiceLogs on a follower
        manager.register(server)
        root = credentials.root_ca(self.data_dir, self.dek)
        ca_pb2_grpc.add_NodeCAServicer_to_server(
            NodeCAServicer(self.store, self.state.node_id, root), server)
        ca_pb2_grpc.add_RaftMembershipServicer_to_server(
            RaftMembershipServicer(self.store, self.state.node_id,
                                   keystore.raft_key_of(self.dek), root,
                                   self.store.is_leader), server)
        return manager

    def _cluster_id(self) -> str:
        return self.state.cluster_id

    def _node_known(self, node_id: str) -> bool:
        return self.store is not None and self.store.get("node", node_id) is not None

    # ------------------------------------------------------------ servers --

    async def _start_server(self) -> Optional[Manager]:
        sock = socket_path(self.data_dir)
        sock.unlink(missing_ok=True)
        self.server = grpc.aio.server(interceptors=[
            AuthzInterceptor(self._cluster_id, self._node_known if self.is_manager else None)],
            options=SERVER_OPTIONS)
        names = [control_pb2.DESCRIPTOR.services_by_name["Control"].full_name,
                 dispatcher_pb2.DESCRIPTOR.services_by_name["Dispatcher"].full_name,
                 watch_pb2.DESCRIPTOR.services_by_name["Watch"].full_name,
                 ca_pb2.DESCRIPTOR.services_by_name["NodeCA"].full_name]
        manager: Optional[Manager] = None
        if self.is_manager:
            manager = self._register_manager(self.server)
        else:
            self.server.add_generic_rpc_handlers((
                _refuse_all(control_pb2.DESCRIPTOR.services_by_name["Control"]),
                _refuse_all(watch_pb2.DESCRIPTOR.services_by_name["Watch"])))
        control_pb2_grpc.add_LocalNodeServicer_to_server(
            lockedmode.LocalNodeServicer(network_views=self._network_views), self.server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, self.server)
        reflection.enable_server_reflection([*names, reflection.SERVICE_NAME, health.SERVICE_NAME],
                                            self.server)
        old_umask = os.umask(0o177)
        try:
            self.server.add_insecure_port(f"unix://{sock}")
        finally:
            os.umask(old_umask)
        if self.is_manager:
            host, port = split_addr(self.state.listen_addr, DEFAULT_PORT)
            self.server.add_secure_port(
                f"{host}:{port}", tls.dynamic_server_credentials(self.holder, True))
            self.server.add_secure_port(
                f"{host}:{port + JOIN_PORT_OFFSET}",
                tls.dynamic_server_credentials(self.holder, False))
        await self.server.start()
        os.chmod(sock, 0o600)
        for name in names:
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        return manager

    # ------------------------------------------------------------ metrics --

    def _start_metrics(self) -> Optional[MetricsServer]:
        """Serves /metrics where node.json says (None: no endpoint); raises
        MetricsServerError when it cannot."""
        try:
            endpoint = metrics_endpoint(self.state.metrics_addr, self.state.metrics_tls)
        except ValueError as exc:  # node.json edited by hand
            raise MetricsServerError(str(exc)) from None
        if endpoint is None:
            return None
        store = self.store

        def agent_tasks() -> dict[str, int]:
            return self._agent.task_states() if self._agent is not None else {}

        def sessions() -> int:
            return self._manager.dispatcher_sessions() if self._manager is not None else 0

        registry = node_registry(
            self.metrics, self.state.node_id, self.state.role, self.holder, agent_tasks,
            list_objects=store.list if store is not None else None,
            store_version=(lambda: store.version) if store is not None else None,
            raft_status=store.raft_status if store is not None else None,
            dispatcher_sessions=sessions if self.is_manager else None)
        server = MetricsServer(endpoint, registry, self.creds if endpoint.tls else None,
                               self.log)
        server.start()
        self.holder.subscribe(server.refresh)
        return server

    # -------------------------------------------------------- role change --

    def _session_message(self, message: Any) -> None:
        """Agent hook: keeps the manager list, follows the cluster's root CA and
        role changes of this node."""
        if self.renewer is not None:
            self.renewer.roots_changed(message.root_ca, message.issuing_ca)
        managers = sorted(m.addr for m in message.managers if m.addr)
        if managers and managers != sorted(self.state.managers):
            self.state.managers = managers
            self.state.save(self.data_dir)
        if not message.HasField("node") or self._role_change is not None:
            return
        node = message.node
        want = "manager" if node.spec.desired_role == pb.MANAGER else "worker"
        self._desired_role = want
        if want == self.state.role:
            return
        if want == "worker" and node.role != pb.WORKER:
            return  # the leader has not taken it out of raft yet
        self._role_change = asyncio.get_running_loop().create_task(self._change_role(want))

    async def _change_role(self, role: str) -> None:
        self.log.info("changing role to %s: renewing the certificate", role)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._renew_for_role, role)
        except Exception:
            self.log.exception("role change to %s failed; will retry on the next update", role)
            self._role_change = None
            return
        self.restart_requested = True
        self._stop.set()

    @property
    def replaces_itself(self) -> bool:
        """Whether the process execs itself again after run() (a role change)."""
        return self.restart_requested and bool(self.config.daemon_command)

    def _renew_for_role(self, role: str) -> None:
        """Blocking: new certificate, raft entry or exit, node.json; then a restart."""
        creds = credentials.renew(self.data_dir, self.creds, self.state.managers)
        if role == "manager":
            members = credentials.enter_raft(self.data_dir, creds, self.state.managers,
                                             self.state.raft_addr)
            self.state.raft_peers = [m for m in members if m != self.state.raft_addr]
        else:
            self.state.raft_peers = []
            credentials.forget_raft(self.data_dir)
        self.state.role = role
        self.state.save(self.data_dir)

    def _agent_targets(self) -> list[str]:
        managers = list(self.state.managers)
        if self.is_manager and self.state.advertise_addr in managers:
            managers.remove(self.state.advertise_addr)
            managers.insert(0, self.state.advertise_addr)
        return managers or [self.state.advertise_addr]

    # ---------------------------------------------------------------- run --

    async def run(self) -> None:
        stop = self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        (self.data_dir / READY_FILE).unlink(missing_ok=True)
        (self.data_dir / LOCKED_FILE).unlink(missing_ok=True)
        keys_task = None
        if self.is_manager:
            if not await self._open_keys():
                self.notifier.notify("STOPPING=1")
                self.log.info("stopped while locked")
                return
            assert self.dek is not None  # _open_keys() opened it
            creds = credentials.load_node_credentials(self.data_dir, self.dek)
            credentials.protect_manager_keys(self.data_dir, self.dek, creds)
            self.credentials_holder = CredentialsHolder(creds)
            await self._start_store()
            keys_task = loop.create_task(self._follow_keys())
        else:
            self.credentials_holder = CredentialsHolder(pkinode.load(self.data_dir))
        try:
            metrics_server = self._start_metrics()
        except MetricsServerError:
            if keys_task is not None:
                keys_task.cancel()
                await asyncio.gather(keys_task, return_exceptions=True)
            if self.store is not None:
                self.store.close()
            raise
        manager = await self._start_server()
        if manager is not None:
            await manager.start()
        runtime = self.make_runtime(self.state.node_id)
        agent = Agent(self.state.node_id, runtime, self._agent_targets(),
                      hostname=socket.gethostname(),
                      credentials=tls.client_credentials(self.creds),
                      cluster_id=self.state.cluster_id,
                      on_session_message=self._session_message,
                      tls_info=lambda: renewal.tls_info(self.creds),
                      node_addr=self._addr(), data_path_addr=self.state.data_path_addr,
                      metrics=self.metrics,
                      generic_resources=genericres.parse_node(self.state.generic_resources))

        def follow_credentials(new: pkinode.NodeCredentials) -> None:
            loop.call_soon_threadsafe(agent.set_credentials, tls.client_credentials(new))

        self.holder.subscribe(follow_credentials)
        self.renewer = CertRenewer(self.data_dir, self.credentials_holder,
                                   self._agent_targets, self.state.node_id, self.store,
                                   paused=lambda: self._desired_role != self.state.role,
                                   kek=self.key_passphrase)
        renew_task = loop.create_task(self.renewer.run())
        self._agent = agent
        agent_task = loop.create_task(agent.run())
        try:
            await asyncio.wait_for(agent.connected.wait(), 10.0)
        except asyncio.TimeoutError:
            self.log.warning("the agent has no session yet; serving anyway")
        (self.data_dir / READY_FILE).write_text(str(os.getpid()))
        self.log.info("node ready (%s): serving on %s", self.state.role, socket_path(self.data_dir))
        await self._announce_ready(f"serving as a {self.state.role} on "
                                   f"{socket_path(self.data_dir)}")
        await stop.wait()
        self.log.info("stopping")
        # a role change replaces this process (same PID): RELOADING=1, not STOPPING=1
        self.notifier.notify(*stop_lines(self.replaces_itself))
        (self.data_dir / READY_FILE).unlink(missing_ok=True)
        renew_task.cancel()
        await asyncio.gather(renew_task, return_exceptions=True)
        await agent.stop()
        agent_task.cancel()
        await asyncio.gather(agent_task, return_exceptions=True)
        if keys_task is not None:
            keys_task.cancel()
            await asyncio.gather(keys_task, return_exceptions=True)
        if manager is not None:
            await manager.stop()
        assert self.server is not None
        await self.server.stop(1.0)
        await runtime.close()
        if metrics_server is not None:  # joins its thread: off the event loop
            await loop.run_in_executor(None, metrics_server.close)
        if self.store is not None:
            self.store.close()


# ------------------------------------------------------------ the process --

class _NodeFilter(logging.Filter):
    """Gives records without a node a "-" so that the format always works."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "node"):
            record.node = "-"
        return True


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_NodeFilter())
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s node=%(node)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pysyncobj").setLevel(logging.WARNING)


class AlreadyRunning(Exception):
    """Another daemon holds the data directory."""


class StoreStartError(Exception):
    """The manager's raft store cannot start (a damaged journal, a busy raft port);
    the message says what and where."""


def run_daemon(config: NodeConfig, make_runtime: RuntimeFactory) -> None:
    """Runs the node kept in `config.data_dir` in this process until SIGTERM/SIGINT.

    After a role change the process replaces itself with `config.daemon_command`
    to start again in its new role. Raises AlreadyRunning, StoreStartError (a
    manager whose raft store cannot start, e.g. a damaged journal) and
    MetricsServerError.
    """
    data_dir = config.data_dir
    setup_logging(logging.DEBUG if config.debug else logging.INFO)
    lock = open(data_dir / PID_FILE, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise AlreadyRunning(f"a daemon is already running on {data_dir}") from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    notifier = Notifier(config.notify_socket)
    node = Node(NodeState.load(data_dir), config, make_runtime, notifier)
    try:
        asyncio.run(node.run())
    except KeyboardInterrupt:
        pass
    if node.replaces_itself:  # a role change: start again
        lock.close()
        sys.stdout.flush()
        os.execve(config.daemon_command[0], list(config.daemon_command),
                  notifier.environment_for_exec())
