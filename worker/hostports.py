"""Host-mode published ports: a userland TCP proxy per port, like docker-proxy.

Owns the listeners of `mode=host` ports. A task runs in a namespace of its own
made before its container (podman cannot map ports into a namespace it did not
make), so the node answers on `0.0.0.0:<published>` in its own namespace and,
for each connection, opens one inside the task's namespace (a socket made on a
thread that joined it) to the task's address at the target port, then copies
bytes both ways. The port exists only on the node that runs the task. TCP only;
the backend sees the proxy's address, not the client's (as docker-proxy).
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from dataclasses import dataclass
from typing import Optional

from overlay_net import netns

CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class PortTarget:
    task_id: str
    netns_path: str
    addr: str
    port: int


def _connect_in(path: str, addr: str, port: int) -> socket.socket:
    def body() -> socket.socket:
        sock = socket.create_connection((addr, port), timeout=CONNECT_TIMEOUT)
        sock.setblocking(False)
        return sock
    return netns.run_in_netns(path, body)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()


class HostPorts:
    """The node's host-mode port listeners, kept equal to `sync(wanted)`."""

    def __init__(self, log: Optional[logging.LoggerAdapter] = None) -> None:
        self.log = log or logging.LoggerAdapter(logging.getLogger(__name__), {"node": ""})
        self._servers: dict[tuple[str, int], tuple[PortTarget, asyncio.AbstractServer]] = {}
        self._clients: set[asyncio.Task[None]] = set()

    def listening(self) -> dict[tuple[str, int], PortTarget]:
        return {key: target for key, (target, _) in self._servers.items()}

    async def sync(self, wanted: dict[tuple[str, int], PortTarget]) -> list[str]:
        """Opens/closes listeners to match wanted ((protocol, port) -> target); returns errors."""
        errors: list[str] = []
        for key in list(self._servers):
            target, server = self._servers[key]
            if wanted.get(key) != target:
                del self._servers[key]
                server.close()
                self.log.info("host port %d/%s closed (task %s)", key[1], key[0], target.task_id)
        for key, target in wanted.items():
            if key in self._servers:
                continue
            if key[0] != "tcp":
                errors.append(f"task {target.task_id}: host-mode port {key[1]}/{key[0]}: "
                              "only TCP is published in host mode")
                continue
            try:
                server = await asyncio.start_server(
                    functools.partial(self._client, target), host="0.0.0.0", port=key[1],
                    reuse_address=True)
            except OSError as err:
                errors.append(f"task {target.task_id}: host-mode port {key[1]}/tcp: {err}")
                self.log.error("cannot publish host port %d for task %s: %s", key[1],
                               target.task_id, err)
                continue
            self._servers[key] = (target, server)
            self.log.info("host port %d/tcp -> task %s %s:%d", key[1], target.task_id,
                          target.addr, target.port)
        return errors

    async def _client(self, target: PortTarget, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        job = asyncio.current_task()
        if job is not None:
            self._clients.add(job)
        try:
            try:
                sock = await asyncio.to_thread(_connect_in, target.netns_path, target.addr,
                                               target.port)
            except OSError as err:
                self.log.warning("host port: cannot reach task %s at %s:%d: %s",
                                 target.task_id, target.addr, target.port, err)
                return
            up_reader, up_writer = await asyncio.open_connection(sock=sock)
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()
            if job is not None:
                self._clients.discard(job)

    async def close(self) -> None:
        for _, server in self._servers.values():
            server.close()
        self._servers.clear()
        for job in list(self._clients):
            job.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
