"""Continuous HTTP load through a lab's routing mesh, counting failed requests.

Owns one client process run inside a lab node's network namespace (nsenter):
it sends `GET /` requests over fresh TCP connections to one address and port
in a loop, a few at a time, until it is told to stop, then reports how many
requests got an HTTP 200 answer and how many did not (refused, reset, timed
out, or another answer), with the first few errors.  Shared by the rolling
update e2e test and `lab.bench.update`.  Traffic goes only to the lab address
it is given.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field

CLIENT = r"""
import asyncio, json, sys, time
ip, port, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ok = 0; failed = 0; errors = []
stop = asyncio.Event()
async def one():
    global ok, failed
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 3)
        try:
            writer.write(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), 3)
        finally:
            writer.close()
        if data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0]:
            ok += 1
            return
        why = repr(data[:60])
    except (OSError, asyncio.TimeoutError) as err:
        why = f"{type(err).__name__}: {err}"
    failed += 1
    if len(errors) < 5:
        errors.append(f"{time.time():.3f} {why}")
async def worker():
    while not stop.is_set():
        await one()
        await asyncio.sleep(0.01)
async def main():
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), stop.set)
    print("started", flush=True)
    await asyncio.gather(*(worker() for _ in range(workers)))
    print(json.dumps({"ok": ok, "failed": failed, "errors": errors}), flush=True)
asyncio.run(main())
"""


ONE_REQUEST = r"""
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as conn:
    conn.sendall(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
print(data.split(b"\r\n", 1)[0].decode(errors="replace"))
"""


def answers(netns: str, ip: str, port: int) -> bool:
    """One request from `netns` to http://ip:port/ got an HTTP 200 answer."""
    try:
        res = subprocess.run(["nsenter", f"--net={netns}", "--", sys.executable, "-c",
                              ONE_REQUEST, ip, str(port)],
                             capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return res.returncode == 0 and " 200 " in res.stdout


@dataclass
class LoadResult:
    ok: int
    failed: int
    errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.ok + self.failed


class MeshLoad:
    """A running client in `netns` (a path) requesting http://ip:port/ until `stop()`."""

    def __init__(self, netns: str, ip: str, port: int, workers: int = 2) -> None:
        self._proc = subprocess.Popen(
            ["nsenter", f"--net={netns}", "--", sys.executable, "-c", CLIENT, ip, str(port),
             str(workers)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != "started":
            self._proc.kill()
            self._proc.wait()
            raise RuntimeError(f"the load client in {netns} did not start")

    def stop(self, timeout: float = 15.0) -> LoadResult:
        """Stops the client (requests in flight finish) and returns its counts."""
        try:
            out, _ = self._proc.communicate(input="stop\n", timeout=timeout)
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
        if self._proc.returncode != 0 or not out.strip():
            raise RuntimeError(f"the load client failed (exit {self._proc.returncode})")
        got = json.loads(out.strip().splitlines()[-1])
        return LoadResult(int(got["ok"]), int(got["failed"]), list(got["errors"]))
