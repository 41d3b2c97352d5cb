"""One running node: store, manager components, gRPC server and agent, wired together.

This is the node-starting half of the CLI (DESIGN §1): the only code outside
`lab/` and `tests/` that imports both `manager` and `worker`, which otherwise
meet over gRPC only, even inside one process.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any, Optional

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cli.bootstrap import NodeState, socket_path
from proto import control_pb2, dispatcher_pb2, model, watch_pb2
from proto import objects_pb2 as pb
from raft import actions, errors
from raft.store import Store

DEFAULT_HISTORY = 5
DEFAULT_HEARTBEAT = 5.0


def parse_seconds(text: str) -> float:
    """Accepts Go-style durations ("5s", "500ms", "1m30s") or plain seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    text = str(text).strip()
    try:
        return float(text)
    except ValueError:
        pass
    total, num = 0.0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            num += ch
            i += 1
            continue
        unit = text[i:i + 2] if text[i:i + 2] in units else ch
        if unit not in units or not num:
            raise ValueError(f"invalid duration {text!r}: use e.g. 5s, 500ms or 1m30s")
        total += float(num) * units[unit]
        num = ""
        i += len(unit)
    if num:
        raise ValueError(f"invalid duration {text!r}: missing unit (e.g. 5s)")
    return total


class Node:
    """Runs everything one node runs until it is told to stop."""

    def __init__(self, state: NodeState, data_dir: Path) -> None:
        self.state = state
        self.data_dir = data_dir
        self.store: Optional[Store] = None
        self.server: Optional[grpc.aio.Server] = None
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": state.node_id})

    def _addr(self) -> str:
        return self.state.advertise_addr.rsplit(":", 1)[0]

    async def _bootstrap_cluster(self) -> None:
        """On the node that ran `swarm init`: creates the cluster and node objects once."""
        assert self.store is not None
        if self.store.list("cluster"):
            return
        init = self.state.init
        cluster = pb.Cluster(id=model.new_id())
        cluster.spec.annotations.name = "default"
        cluster.spec.orchestration.task_history_retention_limit = int(
            init.get("task_history_limit", DEFAULT_HISTORY))
        heartbeat = parse_seconds(init.get("dispatcher_heartbeat", DEFAULT_HEARTBEAT))
        cluster.spec.dispatcher.heartbeat_period.CopyFrom(model.duration(heartbeat))
        pool = init.get("default_addr_pool")
        if pool:
            cluster.spec.default_addr_pool.extend(pool if isinstance(pool, list) else [pool])
        me = pb.Node(id=self.state.node_id, role=pb.MANAGER)
        me.spec.availability = pb.NodeSpec.ACTIVE
        me.spec.desired_role = pb.MANAGER
        me.description.hostname = socket.gethostname()
        me.status.state = pb.NodeStatus.UNKNOWN
        me.manager_status.raft_addr = self.state.raft_addr
        me.manager_status.addr = self.state.advertise_addr
        me.manager_status.leader = True
        me.manager_status.reachability = pb.ManagerStatus.REACHABLE
        await self.store.acommit([actions.create(cluster), actions.create(me)])
        self.log.info("cluster %s created", cluster.id)

    async def _start_store(self) -> None:
        self.store = Store(self.state.node_id, str(self.data_dir), self.state.raft_addr, [])
        self.store.start()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.store.wait_ready, 30.0)
        if self.state.creates_cluster:
            for _ in range(100):
                try:
                    await self._bootstrap_cluster()
                    break
                except (errors.NotLeader, errors.Unavailable):
                    await asyncio.sleep(0.1)

    async def _start_server(self, manager: Any) -> None:
        sock = socket_path(self.data_dir)
        sock.unlink(missing_ok=True)
        self.server = grpc.aio.server()
        manager.register(self.server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, self.server)
        names = [control_pb2.DESCRIPTOR.services_by_name["Control"].full_name,
                 dispatcher_pb2.DESCRIPTOR.services_by_name["Dispatcher"].full_name,
                 watch_pb2.DESCRIPTOR.services_by_name["Watch"].full_name]
        reflection.enable_server_reflection([*names, reflection.SERVICE_NAME, health.SERVICE_NAME],
                                            self.server)
        old_umask = os.umask(0o177)
        try:
            self.server.add_insecure_port(f"unix://{sock}")
            await self.server.start()
        finally:
            os.umask(old_umask)
        os.chmod(sock, 0o600)
        for name in names:
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def run(self) -> None:
        from manager.manager import Manager
        from worker.agent import Agent
        from worker.podman import PodmanRuntime

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        (self.data_dir / "ready").unlink(missing_ok=True)
        await self._start_store()
        assert self.store is not None
        manager = Manager(self.store, self.state.node_id, str(self.data_dir),
                          lambda: self._addr())
        await self._start_server(manager)
        await manager.start()
        runtime = PodmanRuntime(str(self.data_dir / "podman"))
        agent = Agent(self.state.node_id, runtime, f"unix://{socket_path(self.data_dir)}",
                      hostname=socket.gethostname())
        agent_task = loop.create_task(agent.run())
        try:
            await asyncio.wait_for(agent.connected.wait(), 20.0)
        except asyncio.TimeoutError:
            self.log.warning("the agent has no session yet; serving anyway")
        (self.data_dir / "ready").write_text(str(os.getpid()))
        self.log.info("node ready: serving on %s", socket_path(self.data_dir))
        await stop.wait()
        self.log.info("stopping")
        (self.data_dir / "ready").unlink(missing_ok=True)
        await agent.stop()
        agent_task.cancel()
        await asyncio.gather(agent_task, return_exceptions=True)
        await manager.stop()
        await self.server.stop(1.0)
        await runtime.close()
        self.store.close()
