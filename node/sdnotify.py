"""systemd's readiness protocol (sd_notify) for a daemon run by a `Type=notify` unit.

Owns sending state lines (READY=1, RELOADING=1, STOPPING=1, STATUS=...) to the service
manager's socket (`NodeConfig.notify_socket`, systemd's $NOTIFY_SOCKET as
cli/environment.py reads it: a unix datagram socket, a path or, with a leading
"@", an abstract name) and checking that the node's own socket answers a call
before READY=1 is sent. The CLI takes the variable out of the daemon's
environment, so that nothing the daemon starts (its podman service, containers)
talks to systemd in its name; a daemon that replaces itself (a role change)
passes it on (`environment_for_exec`). Without a socket every call does nothing.

A role change replaces the daemon under the same PID (execve). systemd moves a
unit that sent STOPPING=1 to "deactivating" and ignores a later READY=1 (it then
kills the process after TimeoutStopSec), so a role change announces RELOADING=1
(with MONOTONIC_USEC, which newer systemd wants) and the new process's READY=1
ends the reload; STOPPING=1 is only for a real shutdown (`stop_lines`).
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from pathlib import Path
from typing import Optional

import grpc

from proto import control_pb2, control_pb2_grpc

ENV = "NOTIFY_SOCKET"   # the variable systemd sets (cli/environment.py reads it)
PROBE_TIMEOUT = 2.0   # seconds one probe call may take


def stop_lines(restarting: bool) -> tuple[str, ...]:
    """What the daemon tells the service manager when its run ends: RELOADING=1
    when it replaces itself in a new role (same PID; the new process sends
    READY=1), STOPPING=1 when it really stops."""
    if restarting:
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return ("RELOADING=1", "STATUS=restarting in a new role",
                f"MONOTONIC_USEC={monotonic_usec}")
    return ("STOPPING=1", "STATUS=stopping")


class Notifier:
    """Sends state lines to the service manager's socket, if there is one."""

    def __init__(self, address: Optional[str], log: Optional[logging.LoggerAdapter] = None) -> None:
        self.address = address or None
        self.log = log or logging.LoggerAdapter(logging.getLogger(__name__), {"node": "-"})

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def environment_for_exec(self) -> dict[str, str]:
        """This process's environment plus $NOTIFY_SOCKET, for a process that replaces it."""
        env = dict(os.environ)
        if self.address is not None:
            env[ENV] = self.address
        return env

    def notify(self, *lines: str) -> bool:
        """Sends `lines` ("READY=1", "STATUS=...") as one datagram; False when there is
        no socket or sending failed (logged: systemd then sees no readiness)."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(target)
                s.sendall("\n".join(lines).encode())
        except OSError as exc:
            self.log.warning("cannot notify the service manager at %s: %s", self.address, exc)
            return False
        return True


async def socket_answers(sock: Path, timeout: float = 30.0) -> bool:
    """Whether a LocalNode call on the node's unix socket answers within `timeout`
    (retried until then): what READY=1 promises the service manager."""
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(f"unix://{sock}") as channel:
        stub = control_pb2_grpc.LocalNodeStub(channel)
        while True:
            try:
                await stub.GetLockState(control_pb2.GetLockStateRequest(), timeout=PROBE_TIMEOUT)
                return True
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    return False
            await asyncio.sleep(0.05)   # the server is starting: try again
