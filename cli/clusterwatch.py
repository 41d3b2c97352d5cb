"""The cluster page's feed: a manager's nodes, services and tasks, kept current.

Owns `ClusterFeed`: it opens a Watch stream on the node's socket (grpcio),
waits for the stream's headers (from then on no change is missed), lists
nodes, services and tasks (`cli.client.Client`), and then applies every
watch event to a `cli.clusterview.Mirror`, calling `on_change` after each
change. When the stream fails (the node restarted, the socket went away) it
says so in the state it serves and starts over once a second until it is
stopped. The first connection is made by `connect` in the caller's thread, so
that a wrong host or a worker's socket fails the command with the CLI's usual
message before anything is served.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Optional

import grpc

from cli.client import MAX_MESSAGE, Client, RpcFailure, describe_rpc_error
from cli.clusterview import KINDS, Mirror, page_state
from proto import control_pb2 as cpb
from proto import watch_pb2 as wpb
from proto import watch_pb2_grpc

log = logging.getLogger("swarm.ui")

RETRY_SECONDS = 1.0   # between two attempts to reach the node again
LIST_TIMEOUT = 30.0   # seconds, for each List call


def _failure(exc: grpc.RpcError) -> RpcFailure:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    return RpcFailure(getattr(code, "name", "UNKNOWN"), exc.details() or "")


class ClusterFeed:
    """The mirror of one manager's store, fed by its Watch API on a background thread."""

    def __init__(self, host: str, on_change: Callable[[], None] = lambda: None) -> None:
        self.host = host
        self.client = Client(host)
        self.on_change = on_change
        self.mirror = Mirror()
        self.connected = False
        self.error = ""
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._channel = grpc.insecure_channel(self.client.target.address, options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            # a restarted node is found again within a second (grpc backs off up to 120 s)
            ("grpc.initial_reconnect_backoff_ms", int(RETRY_SECONDS * 1000)),
            ("grpc.max_reconnect_backoff_ms", int(RETRY_SECONDS * 1000))])
        self._watch = watch_pb2_grpc.WatchStub(self._channel)
        self._call: Optional[Any] = None
        self._thread: Optional[threading.Thread] = None

    # ------------------------------------------------------------ reading --

    def state(self) -> dict[str, Any]:
        """The page's state now (see cli.clusterview.page_state)."""
        with self._lock:
            return page_state(self.mirror, self.connected, self.error, time.time())

    # ---------------------------------------------------------- streaming --

    def connect(self) -> None:
        """Opens the watch and loads the lists; raises RpcFailure when the node refuses."""
        call = self._watch.Watch(wpb.WatchRequest(
            selectors=[wpb.WatchSelector(kind=kind) for kind in KINDS]))
        self._call = call
        try:
            call.initial_metadata()    # the stream is registered: no later change is missed
            if call.done() and call.code() != grpc.StatusCode.OK:
                raise _failure(call)
            nodes = self.client.call("ListNodes", cpb.ListNodesRequest(), LIST_TIMEOUT).nodes
            services = self.client.call("ListServices", cpb.ListServicesRequest(),
                                        LIST_TIMEOUT).services
            tasks = self.client.call("ListTasks", cpb.ListTasksRequest(), LIST_TIMEOUT).tasks
        except BaseException:
            call.cancel()
            raise
        with self._lock:
            self.mirror.replace(nodes, services, tasks)
            self.connected, self.error = True, ""
        log.info("cluster page: %d nodes, %d services, %d tasks from %s",
                 len(nodes), len(services), len(tasks), self.host)
        self.on_change()

    def start(self) -> None:
        """Follows the stream `connect` opened, on a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="swarm-ui-watch", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        call = self._call
        assert call is not None
        try:
            for message in call:
                with self._lock:
                    changed = [self.mirror.apply(event) for event in message.events]
                if any(changed):
                    self.on_change()
        except grpc.RpcError as exc:
            raise _failure(exc) from None
        raise RpcFailure("UNAVAILABLE", "the watch stream ended")

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                if self._call is None:
                    self.connect()
                self._follow()
            except RpcFailure as exc:
                if self._stopped.is_set():
                    break
                self._lost(describe_rpc_error(exc, self.host))
            self._call = None
            self._stopped.wait(RETRY_SECONDS)

    def _lost(self, why: str) -> None:
        with self._lock:
            changed = self.connected or self.error != why
            self.connected, self.error = False, why
        if changed:
            log.warning("cluster page: lost the node: %s", why)
            self.on_change()

    def stop(self) -> None:
        """Ends the stream and the thread; closes the channels."""
        self._stopped.set()
        call = self._call
        if call is not None:
            call.cancel()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._channel.close()
        self.client.close()
