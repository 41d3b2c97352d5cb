"""The node's embedded DNS server (asyncio), one listener inside each task namespace.

Owns answering service-discovery queries from local tasks. For every local
task it opens a UDP and a TCP socket bound to 127.0.0.11:53 *inside the
task's network namespace* (sockets keep the namespace they were created in,
so one process serves all tasks of the node, whatever namespace the node
itself lives in). Because each listener belongs to one task, a query is
answered from that task's scope only: the services on the networks it is
attached to (`dnswire.task_records`). Names outside the scope are forwarded
over UDP to the node's resolvers (from /etc/resolv.conf, or as given); when
there are none or none answers, the task gets SERVFAIL.

The task's /etc/resolv.conf comes from `dnswire.resolv_conf()`.
"""
from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from overlay_net import netns
from overlay_net.dnswire import (RCODE_FORMERR, RCODE_NOTIMP, RCODE_OK, RCODE_SERVFAIL,
                                 TYPE_A, TYPE_ANY, CLASS_IN, DnsFormatError, Records,
                                 build_response, error_response, parse_query, task_records,
                                 upstreams_from)
from overlay_net.model import DesiredState

log = logging.getLogger(__name__)

LISTEN_IP = "127.0.0.11"
FORWARD_TIMEOUT = 2.0


def _open_sockets(port: int) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets on LISTEN_IP:port in the calling thread's namespace."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        udp.bind((LISTEN_IP, port))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((LISTEN_IP, port))
        tcp.listen(64)
        udp.setblocking(False)
        tcp.setblocking(False)
    except OSError:
        udp.close()
        tcp.close()
        raise
    return udp, tcp


@dataclass
class _Listener:
    netns_path: str
    udp: asyncio.DatagramTransport
    tcp: asyncio.AbstractServer
    task_id: str = ""
    records: Records = field(default_factory=dict)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: "DnsServer", listener_key: str) -> None:
        self.server = server
        self.key = listener_key
        self.transport: Optional[asyncio.DatagramTransport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        asyncio.get_running_loop().create_task(self._answer(data, addr))

    async def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self.server.answer(self.key, data)
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


class _ForwardProtocol(asyncio.DatagramProtocol):
    def __init__(self, future: asyncio.Future[bytes]) -> None:
        self.future = future

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.future.done():
            self.future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class DnsServer:
    """Embedded DNS of one node; `update(desired)` follows the local tasks."""

    def __init__(self, node: str = "", upstreams: Optional[list[str]] = None,
                 port: int = 53) -> None:
        self.node = node
        self.port = port
        if upstreams is None:
            try:
                upstreams = upstreams_from(Path("/etc/resolv.conf").read_text())
            except OSError:
                upstreams = []
        self.upstreams = upstreams
        self._listeners: dict[str, _Listener] = {}

    async def update(self, desired: DesiredState) -> list[str]:
        """Opens/closes listeners for the local tasks and swaps their records; returns errors."""
        errors: list[str] = []
        records = task_records(desired)
        wanted = {t.task_id: t.netns_path for t in desired.tasks}
        for task_id in list(self._listeners):
            listener = self._listeners[task_id]
            if wanted.get(task_id) != listener.netns_path:
                self._close(self._listeners.pop(task_id))
        for task_id, path in wanted.items():
            if task_id not in self._listeners:
                try:
                    self._listeners[task_id] = await self._listen(task_id, path)
                except OSError as err:
                    errors.append(f"DNS for task {task_id} in {path}: {err}")
                    log.error("[%s] DNS: cannot listen in %s for task %s: %s",
                              self.node, path, task_id, err)
                    continue
            self._listeners[task_id].records = records.get(task_id, {})
        return errors

    async def _listen(self, task_id: str, path: str) -> _Listener:
        udp_sock, tcp_sock = await asyncio.to_thread(netns.run_in_netns, path,
                                                     lambda: _open_sockets(self.port))
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self, task_id), sock=udp_sock)
            server = await asyncio.start_server(
                lambda r, w: self._tcp_client(task_id, r, w), sock=tcp_sock)
        except BaseException:
            udp_sock.close()
            tcp_sock.close()
            raise
        log.info("[%s] DNS: listening in %s for task %s", self.node, path, task_id)
        return _Listener(netns_path=path, udp=transport, tcp=server, task_id=task_id)

    @staticmethod
    def _close(listener: _Listener) -> None:
        listener.udp.close()
        listener.tcp.close()

    async def close(self) -> None:
        for listener in self._listeners.values():
            self._close(listener)
            await listener.tcp.wait_closed()
        self._listeners.clear()

    def listening(self) -> dict[str, str]:
        """task id -> namespace path of the open listeners."""
        return {k: v.netns_path for k, v in self._listeners.items()}

    async def _tcp_client(self, key: str, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(2)
                data = await reader.readexactly(struct.unpack("!H", head)[0])
                reply = await self.answer(key, data)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def answer(self, key: str, data: bytes) -> Optional[bytes]:
        """The reply to one query from the task `key` (None: drop it)."""
        try:
            question = parse_query(data)
        except DnsFormatError:
            return error_response(data, RCODE_FORMERR)
        listener = self._listeners.get(key)
        records = listener.records if listener else {}
        if question.qclass == CLASS_IN and question.name in records:
            if question.qtype not in (TYPE_A, TYPE_ANY):
                return build_response(data, question, RCODE_OK)      # name exists, no AAAA etc.
            ips = list(records[question.name])
            random.shuffle(ips)                 # round robin between answers
            return build_response(data, question, RCODE_OK, tuple(ips))
        if question.flags & 0x7800:
            return build_response(data, question, RCODE_NOTIMP)
        return await self._forward(data, question)

    async def _forward(self, data: bytes, question: object) -> bytes:
        loop = asyncio.get_running_loop()
        for upstream in self.upstreams:
            future: asyncio.Future[bytes] = loop.create_future()
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _ForwardProtocol(future), remote_addr=(upstream, 53))
            except OSError:
                continue
            try:
                transport.sendto(data)
                return await asyncio.wait_for(future, FORWARD_TIMEOUT)
            except (asyncio.TimeoutError, OSError):
                continue
            finally:
                transport.close()
        return build_response(data, question, RCODE_SERVFAIL)  # type: ignore[arg-type]
