"""A Watch stream from `Client(..., keepalive=True)` to a node that stops answering fails
within seconds instead of hanging (cli/grpc_transport.py KEEPALIVE_OPTIONS), against a gRPC
server built with the node's options (node/daemon.py SERVER_OPTIONS).

The server is a small grpcio process of its own (no Shoal daemon), frozen with SIGSTOP as a
machine that lost power or a partition would leave the connection: open, and silent.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from cli.client import Client, RpcFailure
from proto import watch_pb2 as wpb

SERVER = '''
import sys, threading
from concurrent import futures
import grpc
from node.daemon import SERVER_OPTIONS
from proto import watch_pb2 as wpb, watch_pb2_grpc

class Silent(watch_pb2_grpc.WatchServicer):
    def Watch(self, request, context):
        yield wpb.WatchMessage(version=1)      # one progress mark, then nothing
        done = threading.Event()
        context.add_callback(done.set)
        done.wait()

server = grpc.server(futures.ThreadPoolExecutor(4), options=SERVER_OPTIONS)
watch_pb2_grpc.add_WatchServicer_to_server(Silent(), server)
server.add_insecure_port("unix://" + sys.argv[1])
server.start()
print("ready", flush=True)
server.wait_for_termination()
'''
DETECTED_WITHIN = 20.0   # seconds: a ping every 5 s, 5 s for its answer, and slack


@pytest.fixture
def silent_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    sock = tmp_path / "watch.sock"
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(sock)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "GRPC_VERBOSITY": "NONE"})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield f"unix://{sock}", proc
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()


def test_a_stream_to_a_frozen_node_fails_within_seconds(
        silent_server: tuple[str, subprocess.Popen]) -> None:
    host, proc = silent_server
    first = threading.Event()
    ended = threading.Event()
    outcome: list[str] = []

    def read() -> None:
        try:
            for _ in client.watch(wpb.WatchRequest(progress=True)):
                first.set()
            outcome.append("ended")
        except RpcFailure as exc:
            outcome.append(exc.code())
        ended.set()

    client = Client(host, keepalive=True)
    try:
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert first.wait(10), "the server never sent its first message"
        os.kill(proc.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        assert ended.wait(DETECTED_WITHIN), "the stream to a frozen node never failed"
        assert outcome == ["UNAVAILABLE"]
        assert time.monotonic() - frozen < DETECTED_WITHIN
    finally:
        client.close()
