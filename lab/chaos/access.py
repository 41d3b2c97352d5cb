"""Reaching a chaos lab's nodes: control API stubs, live managers, the leader.

Owns one gRPC channel per node (its local unix socket: root on the node, no
TLS, the way `swarm` on the node talks to its daemon) and the questions every
other part of the soak asks: which managers run and are unlocked, which one
leads, and a call on whichever live manager answers first.
"""
from __future__ import annotations

import random
import threading
from typing import Callable, Optional, TypeVar

import grpc

from lab.cluster import Lab
from lab.leadership import named_leaders
from proto import control_pb2 as cpb
from proto import control_pb2_grpc

T = TypeVar("T")
CALL_TIMEOUT = 5.0
OPTIONS = [("grpc.max_receive_message_length", -1)]   # a long soak lists ~30,000 configs


class NoManager(Exception):
    """No live manager answered the call; the message has what each one said."""


class Access:
    """The lab's nodes as the soak sees them."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self._channels: dict[str, grpc.Channel] = {}
        self._retired: list[grpc.Channel] = []
        self._lock = threading.Lock()
        self.managers = sorted(n for n in lab.names() if lab.role(n) == "manager")
        self.workers = sorted(n for n in lab.names() if lab.role(n) != "manager")

    def api(self, name: str) -> control_pb2_grpc.ControlStub:
        path = str(self.lab.data_dir(name) / "swarm.sock")
        with self._lock:
            if name not in self._channels:
                self._channels[name] = grpc.insecure_channel(f"unix://{path}", options=OPTIONS)
            return control_pb2_grpc.ControlStub(self._channels[name])

    def reset(self, name: str) -> None:
        """Gives the node a fresh channel (after its daemon restarted). The old one is
        closed only by `close()`: another thread may have a call on it, and closing
        would cancel that call on our side (CANCELLED), which is not the cluster's answer."""
        with self._lock:
            channel = self._channels.pop(name, None)
            if channel is not None:
                self._retired.append(channel)

    def close(self) -> None:
        with self._lock:
            channels = [*self._channels.values(), *self._retired]
            self._channels.clear()
            self._retired.clear()
        for channel in channels:
            channel.close()

    def running(self, name: str) -> bool:
        return self.lab.pid(name) is not None and not self.lab.locked(name)

    def live_managers(self) -> list[str]:
        return [m for m in self.managers if self.running(m)]

    def leader(self) -> Optional[str]:
        """The manager that every live manager's node list names as the one leader, or
        None (a manager that does not answer, or names none or two, means no agreement)."""
        seen = set()
        live = self.live_managers()
        for name in live:
            try:
                found = named_leaders(self.api(name))
            except grpc.RpcError:
                return None
            if len(found) != 1:
                return None
            seen.add(found[0])
        return seen.pop() if len(seen) == 1 and live else None

    def call(self, rng: random.Random, fn: Callable[[control_pb2_grpc.ControlStub], T],
             tries: int = 0) -> T:
        """fn(stub) on the live managers in a random order until one answers without
        UNAVAILABLE or DEADLINE_EXCEEDED (at most `tries` managers; 0 = all); other
        errors are raised as they are."""
        names = self.live_managers()
        rng.shuffle(names)
        said: dict[str, str] = {}
        for name in names[:tries or None]:
            try:
                return fn(self.api(name))
            except grpc.RpcError as err:
                if err.code() not in (grpc.StatusCode.UNAVAILABLE,
                                      grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                said[name] = err.code().name
        raise NoManager(f"no live manager answered: {said or 'none running'}")

    def info(self, name: str) -> cpb.InfoResponse:
        """The manager's own view: leader, store version and digest, applied index."""
        return self.api(name).Info(cpb.InfoRequest(store_digest=True), timeout=CALL_TIMEOUT)
