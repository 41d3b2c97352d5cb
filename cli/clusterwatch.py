"""The cluster page's feed: a manager's nodes, services and tasks, kept current.

Owns `ClusterFeed`: it opens a Watch stream on the node's socket through the
CLI's one client path (`cli.client.Client.watch`), waits for the stream's
headers (from then on no change is missed), lists nodes, services and tasks
(`Client.call`), and then applies every watch event to a
`cli.clusterview.Mirror`, calling `on_change` after each change. When the
stream fails (the node restarted, the socket went away), or anything else
goes wrong while following it, it logs why (naming the host), says so in the
state it serves and starts over on a fresh channel once a second until it is
stopped. The first connection is made by `connect` in the caller's thread, so
that a wrong host or a worker's socket fails the command with the CLI's usual
message before anything is served.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Optional

from cli.client import Client, RpcFailure, describe_rpc_error
from cli.clusterview import KINDS, Mirror, page_state
from proto import control_pb2 as cpb
from proto import watch_pb2 as wpb

log = logging.getLogger("swarm.ui")

RETRY_SECONDS = 1.0   # between two attempts to reach the node again
LIST_TIMEOUT = 30.0   # seconds, for each List call
OPEN_TIMEOUT = 10.0   # seconds the node has to open the Watch stream (it answers at once
                      # when it serves: a node that does not is hung)


class ClusterFeed:
    """The mirror of one manager's store, fed by its Watch API on a background thread.

    `client` is the node's Control API client (made from `host` when not given).
    """

    def __init__(self, host: str, on_change: Callable[[], None] = lambda: None,
                 client: Optional[Client] = None) -> None:
        self.host = host
        self.client = client if client is not None else Client(host, keepalive=True)
        self.on_change = on_change
        self.mirror = Mirror()
        self.connected = False
        self.error = ""
        self.retry_seconds = RETRY_SECONDS
        self.open_timeout = OPEN_TIMEOUT
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._stream: Optional[Any] = None     # the open Watch stream (cli.grpc_transport)
        self._thread: Optional[threading.Thread] = None

    # ------------------------------------------------------------ reading --

    def state(self) -> dict[str, Any]:
        """The page's state now (see cli.clusterview.page_state)."""
        with self._lock:
            return page_state(self.mirror, self.connected, self.error, time.time())

    # ---------------------------------------------------------- streaming --

    def connect(self) -> None:
        """Opens the watch and loads the lists; raises RpcFailure when the node refuses."""
        stream = self.client.watch(wpb.WatchRequest(
            selectors=[wpb.WatchSelector(kind=kind) for kind in KINDS]))
        self._stream = stream
        try:
            stream.wait_open(self.open_timeout)   # registered: no later change is missed
            nodes = self.client.call("ListNodes", cpb.ListNodesRequest(), LIST_TIMEOUT).nodes
            services = self.client.call("ListServices", cpb.ListServicesRequest(),
                                        LIST_TIMEOUT).services
            tasks = self.client.call("ListTasks", cpb.ListTasksRequest(), LIST_TIMEOUT).tasks
        except BaseException:
            stream.cancel()
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
        stream = self._stream
        assert stream is not None
        for message in stream:       # a broken stream raises RpcFailure
            with self._lock:
                changed = [self.mirror.apply(event) for event in message.events]
            if any(changed):
                self.on_change()
        raise RpcFailure("UNAVAILABLE", "the watch stream ended")

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                if self._stream is None:
                    self.connect()
                self._follow()
            except RpcFailure as exc:
                if self._stopped.is_set():
                    break
                self._lost(describe_rpc_error(exc, self.host))
            except Exception as exc:   # noqa: BLE001 (anything else must not end the thread)
                if self._stopped.is_set():
                    break
                log.debug("cluster page of %s: following the node failed", self.host,
                          exc_info=True)
                self._lost(f"Error: following the swarm node at {self.host} failed "
                           f"({type(exc).__name__}: {exc}); reconnecting")
            self._drop_stream()
            self._stopped.wait(self.retry_seconds)

    def _drop_stream(self) -> None:
        """Ends the current stream and closes the channel, so that the next attempt dials
        the node afresh (grpc would otherwise wait out its reconnect back-off)."""
        stream, self._stream = self._stream, None
        try:
            if stream is not None:
                stream.cancel()
            self.client.close()
        except Exception as exc:   # noqa: BLE001 (closing a broken channel may fail too)
            log.warning("cluster page of %s: closing the old channel: %s", self.host, exc)

    def _lost(self, why: str) -> None:
        with self._lock:
            changed = self.connected or self.error != why
            self.connected, self.error = False, why
        if changed:
            log.warning("cluster page of %s: lost the node: %s", self.host, why)
            try:
                self.on_change()
            except Exception as exc:   # noqa: BLE001 (the thread must go on reconnecting)
                log.error("cluster page of %s: passing on the lost connection failed: %s",
                          self.host, exc)

    def stop(self) -> None:
        """Ends the stream and the thread; closes the channel."""
        self._stopped.set()
        stream = self._stream
        if stream is not None:
            stream.cancel()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.client.close()
