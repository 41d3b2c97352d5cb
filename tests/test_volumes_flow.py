"""Volumes from agent to store and back, in one process: a real single-node store, the
real dispatcher and control servicer on a unix socket, and an agent whose runtime
holds volumes in memory. The agent's reports land in the node's status (written
only when they change); `volume rm` and `prune` reach the agent and come back."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

import grpc
import pytest

from manager.controlapi.server import ControlServicer
from manager.dispatcher import Dispatcher
from manager.logbroker import LogBroker
from manager.volumebroker import VolumeBroker
from proto import control_pb2 as cpb
from proto import control_pb2_grpc, dispatcher_pb2_grpc
from proto import objects_pb2 as pb
from raft import actions
from raft.store import Store
from tests.test_volumes_units import VolumeRuntime, mounting
from tests.test_worker_fakes import until
from worker.agent import Agent

NODE = "node1"


class Flow:
    """Store, dispatcher and control API of one manager, and one agent."""

    def __init__(self, store: Store, tmp_path: Path) -> None:
        self.store = store
        self.socket = f"unix://{tmp_path}/m.sock"
        self.runtime = VolumeRuntime()
        self.broker = VolumeBroker("m1")
        logs = LogBroker("m1")
        self.dispatcher = Dispatcher(store, "m1", logs, self.broker)
        self.control = ControlServicer(store, "m1", str(tmp_path), logs, lambda: "")
        self.control.volumes.broker = self.broker
        self.control.volumes.timeout = 5.0
        self.server = grpc.aio.server()
        dispatcher_pb2_grpc.add_DispatcherServicer_to_server(self.dispatcher, self.server)
        control_pb2_grpc.add_ControlServicer_to_server(self.control, self.server)
        self.agent = Agent(NODE, self.runtime, self.socket, hostname="host-a")
        self.channel = grpc.aio.insecure_channel(self.socket)
        self.stub = control_pb2_grpc.ControlStub(self.channel)
        self.job: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.server.add_insecure_port(self.socket)
        await self.server.start()
        self.dispatcher.start()
        self.job = asyncio.create_task(self.agent.run())

    async def stop(self) -> None:
        await asyncio.wait_for(self.agent.stop(), 5)
        await self.dispatcher.stop()
        await self.channel.close()
        await self.server.stop(0)

    def stored(self) -> list[str]:
        node = self.store.get("node", NODE)
        return [v.name for v in node.status.volumes] if node is not None else []

    async def refused(self, method: str, request: object) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await getattr(self.stub, method)(request, timeout=10)
        return info.value


@pytest.fixture
async def flow(store: Store, tmp_path: Path) -> AsyncIterator[Flow]:
    f = Flow(store, tmp_path)
    for name in ("cache", "data", "logs"):
        f.runtime.add_volume(name, env="test")
    other = pb.Node(id="node2")
    other.description.hostname = "host-b"
    other.status.state = pb.NodeStatus.DOWN
    await store.acommit([actions.create(other),
                         actions.create(mounting("t1", NODE, "data", state=pb.ASSIGNED))])
    await f.start()
    try:
        yield f
    finally:
        await f.stop()


async def test_reports_reach_the_store_only_when_they_change(flow: Flow) -> None:
    await until(lambda: flow.stored() == ["cache", "data", "logs"], timeout=10,
                what="the agent's first volume report in the store")
    node = flow.store.get("node", NODE)
    assert dict(node.status.volumes[1].labels) == {"env": "test"}
    assert node.status.volumes[1].created_at.seconds == 1700000000
    version = flow.store.get("node", NODE).meta.version
    looks = flow.runtime.lists
    flow.agent.volumes.poke()
    await until(lambda: flow.runtime.lists > looks, what="another look at the volumes")
    await until(lambda: flow.store.get("task", "t1").status.state == pb.RUNNING,
                what="the task to run")
    assert flow.store.get("node", NODE).meta.version == version   # same list: no write
    flow.runtime.add_volume("made-by-hand")
    flow.agent.volumes.poke()
    await until(lambda: "made-by-hand" in flow.stored(), what="the new volume in the store")


async def test_list_remove_and_prune_through_the_agent(flow: Flow, tmp_path: Path) -> None:
    await until(lambda: flow.stored() == ["cache", "data", "logs"], timeout=10,
                what="the agent's first volume report in the store")
    listed = (await flow.stub.ListVolumes(cpb.ListVolumesRequest(), timeout=10)).volumes
    assert [(e.node_hostname, e.volume.name, list(e.services)) for e in listed] == [
        ("host-a", "cache", []), ("host-a", "data", ["web"]), ("host-a", "logs", [])]
    only = await flow.stub.ListVolumes(cpb.ListVolumesRequest(
        filters=cpb.VolumeFilters(nodes=["host-b"])), timeout=10)
    assert list(only.volumes) == []

    err = await flow.refused("RemoveVolume", cpb.RemoveVolumeRequest(node=NODE, name="data"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "remove data: volume is in use - [web.1 (task t1)] on node host-a" in err.details()
    assert "data" in flow.runtime.volumes

    await flow.stub.RemoveVolume(cpb.RemoveVolumeRequest(node="host-a", name="logs"), timeout=10)
    assert "logs" not in flow.runtime.volumes
    await until(lambda: flow.stored() == ["cache", "data"], what="the store to follow")

    err = await flow.refused("RemoveVolume", cpb.RemoveVolumeRequest(node=NODE, name="logs"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == "No such volume: logs (on node host-a)"
    await flow.stub.RemoveVolume(cpb.RemoveVolumeRequest(node=NODE, name="logs", force=True),
                                 timeout=10)

    flow.runtime.in_use["cache"] = ["c0ffee"]
    err = await flow.refused("RemoveVolume", cpb.RemoveVolumeRequest(node=NODE, name="cache"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.details() == "remove cache: volume is in use - [c0ffee] (on node host-a)"

    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "f").write_bytes(b"x" * 5000)
    flow.runtime.add_volume("old", mountpoint=str(tmp_path / "old"))
    flow.runtime.add_volume("older")
    pruned = await flow.stub.PruneVolumes(cpb.PruneVolumesRequest(node=NODE), timeout=10)
    assert (list(pruned.removed), pruned.reclaimed_bytes) == (["old", "older"], 5000)
    assert sorted(flow.runtime.volumes) == ["cache", "data"]   # in use by a container; a task's

    err = await flow.refused("RemoveVolume", cpb.RemoveVolumeRequest(node="nobody", name="x"))
    assert err.code() == grpc.StatusCode.NOT_FOUND and err.details() == "No such node: nobody"
    err = await flow.refused("PruneVolumes", cpb.PruneVolumesRequest(node="host-b"))
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "node host-b is not connected (status down)" in err.details()
