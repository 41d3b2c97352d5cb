"""End to end: a node started as systemd starts a `Type=notify` unit sends READY=1 only
once its socket answers, and STOPPING=1 when it stops.

The test plays systemd's part: it binds the datagram socket named by $NOTIFY_SOCKET and
starts `swarm init --foreground` (the daemon in the command's process, as the unit's
`swarm daemon --foreground` runs it).
"""
from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from lab.localnode import wait_for
from pki import keystore
from tests.cluster import SingleNode

pytestmark = pytest.mark.e2e


def _datagrams(sock: socket.socket, until: bytes, timeout: float) -> list[bytes]:
    """The datagrams received until one holds the line `until` (that one included)."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got.append(sock.recv(4096))
        except socket.timeout:
            raise AssertionError(f"no {until!r} within {timeout:.0f}s; got {got!r}") from None
        if until in got[-1].split(b"\n"):
            return got


def test_ready_only_once_the_socket_answers_then_stopping(tmp_path: Path) -> None:
    node = SingleNode(tmp_path)
    address = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(address))
    log = open(tmp_path / "init.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "init", "--foreground", "--data-dir",
         str(node.data_dir), "--listen-addr", f"127.0.0.1:{node.port}"],
        env=dict(node.env, NOTIFY_SOCKET=str(address)), stdout=log, stderr=log)
    try:
        got = _datagrams(sock, b"READY=1", 90)
        # at the moment READY=1 arrives the node answers on its socket, without waiting
        with grpc.insecure_channel(f"unix://{node.data_dir}/swarm.sock") as channel:
            control_pb2_grpc.LocalNodeStub(channel).GetLockState(
                cpb.GetLockStateRequest(), timeout=2)
            nodes = control_pb2_grpc.ControlStub(channel).ListNodes(
                cpb.ListNodesRequest(), timeout=2).nodes
        node.node_id = json.loads((node.data_dir / "node.json").read_text())["node_id"]
        assert [n.id for n in nodes] == [node.node_id]
        assert len(got) == 1, got     # nothing before it claimed readiness
        assert got[0].startswith(b"READY=1\nSTATUS=serving as a manager on ")
        proc.send_signal(signal.SIGTERM)
        assert _datagrams(sock, b"STOPPING=1", 30)[-1] == b"STOPPING=1\nSTATUS=stopping"
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
        log.close()
        if not node.node_id and (node.data_dir / "node.json").exists():
            node.node_id = json.loads((node.data_dir / "node.json").read_text())["node_id"]
        node.destroy()


def test_a_locked_manager_is_ready_with_a_locked_status(tmp_path: Path) -> None:
    """Waiting locked for `swarm unlock` is a steady state: READY=1 (else systemd would time
    the start out and restart the node in a loop), with a status that says why."""
    node = SingleNode(tmp_path)
    address = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(address))
    proc = None
    try:
        key = re.search(r"SWMKEY-1-\S+", node.init("--autolock").stdout).group(0)
        keys = keystore.ManagerKeys(node.data_dir)
        wait_for(lambda: keys.wrapped_by(key), 30, "the data key wrapped by the unlock key")
        node.kill9()
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "daemon", "--foreground", "--data-dir",
             str(node.data_dir)], env=dict(node.env, NOTIFY_SOCKET=str(address)),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        got = _datagrams(sock, b"READY=1", 60)
        assert got == [b"READY=1\nSTATUS=locked: waiting for 'swarm unlock'"]
        with grpc.insecure_channel(f"unix://{node.data_dir}/swarm.sock") as channel:
            assert control_pb2_grpc.LocalNodeStub(channel).GetLockState(
                cpb.GetLockStateRequest(), timeout=2).locked
        node.swarm("unlock", input=key + "\n")
        # unlocked, it serves as usual and says so
        assert _datagrams(sock, b"READY=1", 60)[-1].startswith(
            b"READY=1\nSTATUS=serving as a manager on ")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
        node.destroy()
