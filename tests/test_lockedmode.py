"""Locked mode of a manager (node/lockedmode.py): a real gRPC server on a unix socket."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import pytest

from node import lockedmode
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import dispatcher_pb2, dispatcher_pb2_grpc

LOG = logging.LoggerAdapter(logging.getLogger(__name__), {"node": "test"})
GOOD = "SWMKEY-1-good"


def open_with(key: str) -> bytes:
    if key == GOOD:
        return b"dek"
    if not key.startswith("SWMKEY-1-"):
        raise ValueError("invalid unlock key: it does not start with SWMKEY-1-")
    raise lockedmode.InvalidKey("wrong key")


async def _codes(sock: Path) -> list:
    seen = []
    async with grpc.aio.insecure_channel(f"unix://{sock}") as channel:
        control = control_pb2_grpc.ControlStub(channel)
        local = control_pb2_grpc.LocalNodeStub(channel)
        for call in (control.ListNodes(cpb.ListNodesRequest(), timeout=5),
                     dispatcher_pb2_grpc.DispatcherStub(channel).Heartbeat(
                         dispatcher_pb2.HeartbeatRequest(), timeout=5)):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            seen.append((err.value.code(), err.value.details()))
        assert (await local.GetLockState(cpb.GetLockStateRequest(), timeout=5)).locked
        for key in ("SWMKEY-1-wrong", "nonsense"):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await local.Unlock(cpb.UnlockRequest(unlock_key=key), timeout=5)
            seen.append((err.value.code(), err.value.details()))
        await local.Unlock(cpb.UnlockRequest(unlock_key=GOOD), timeout=5)
    return seen


def test_locked_node_refuses_everything_until_the_right_key(tmp_path: Path) -> None:
    sock = tmp_path / "swarm.sock"

    async def scenario():
        stop = asyncio.Event()
        server = asyncio.create_task(lockedmode.serve_locked(sock, tmp_path, open_with, stop, LOG))
        for _ in range(200):
            if (tmp_path / lockedmode.LOCKED_FILE).exists():
                break
            await asyncio.sleep(0.01)
        assert (tmp_path / lockedmode.LOCKED_FILE).exists()
        seen = await _codes(sock)
        return seen, await asyncio.wait_for(server, 10)

    seen, opened = asyncio.run(scenario())
    assert opened == b"dek"
    assert not (tmp_path / lockedmode.LOCKED_FILE).exists()
    assert seen[0] == (grpc.StatusCode.FAILED_PRECONDITION, lockedmode.LOCKED)
    assert seen[1] == (grpc.StatusCode.FAILED_PRECONDITION, lockedmode.LOCKED)
    assert seen[2] == (grpc.StatusCode.PERMISSION_DENIED, lockedmode.INVALID_KEY)
    assert seen[3][0] == grpc.StatusCode.INVALID_ARGUMENT and "invalid unlock key" in seen[3][1]


def test_stop_while_locked_returns_nothing(tmp_path: Path) -> None:
    async def scenario():
        stop = asyncio.Event()
        server = asyncio.create_task(
            lockedmode.serve_locked(tmp_path / "s.sock", tmp_path, open_with, stop, LOG))
        await asyncio.sleep(0.2)
        stop.set()
        return await asyncio.wait_for(server, 10)

    assert asyncio.run(scenario()) is None
    assert not (tmp_path / lockedmode.LOCKED_FILE).exists()


def test_unlocked_node_says_not_locked(tmp_path: Path) -> None:
    async def scenario():
        server = grpc.aio.server()
        control_pb2_grpc.add_LocalNodeServicer_to_server(lockedmode.LocalNodeServicer(), server)
        server.add_insecure_port(f"unix://{tmp_path / 'n.sock'}")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"unix://{tmp_path / 'n.sock'}") as channel:
                local = control_pb2_grpc.LocalNodeStub(channel)
                assert not (await local.GetLockState(cpb.GetLockStateRequest(), timeout=5)).locked
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await local.Unlock(cpb.UnlockRequest(unlock_key=GOOD), timeout=5)
                return err.value.code(), err.value.details()
        finally:
            await server.stop(0)

    assert asyncio.run(scenario()) == (grpc.StatusCode.FAILED_PRECONDITION, lockedmode.NOT_LOCKED)
