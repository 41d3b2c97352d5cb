"""The node's current credentials, for everything that uses them while they change.

A running node replaces its key and certificate when it renews them (every
50-80% of their life, and at once during a root CA rotation) and its trusted
roots when the cluster's change. ``CredentialsHolder`` is the one place that
knows the current set: servers and clients read ``current()`` whenever they
open a connection (``pki.tls.dynamic_server_credentials`` does so for gRPC
servers), and ``subscribe`` tells the ones that must rebuild something
(client channels) that the set changed.

Thread-safe: gRPC calls the server's certificate fetcher from its own threads.
"""
from __future__ import annotations

import threading
from typing import Callable

from pki.node import NodeCredentials

Listener = Callable[[NodeCredentials], None]


class CredentialsHolder:
    """The current ``NodeCredentials`` and a version that grows on each change."""

    def __init__(self, creds: NodeCredentials) -> None:
        self._lock = threading.Lock()
        self._creds = creds
        self._version = 1
        self._listeners: list[Listener] = []

    def current(self) -> NodeCredentials:
        """The credentials in force now."""
        with self._lock:
            return self._creds

    def versioned(self) -> tuple[int, NodeCredentials]:
        """The credentials and their version, read together."""
        with self._lock:
            return self._version, self._creds

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    def update(self, creds: NodeCredentials) -> None:
        """Puts new credentials in force (already saved by the caller) and
        tells the listeners, on the caller's thread."""
        with self._lock:
            if creds == self._creds:
                return
            self._creds = creds
            self._version += 1
            listeners = list(self._listeners)
        for listener in listeners:
            listener(creds)

    def subscribe(self, listener: Listener) -> None:
        """Calls ``listener(creds)`` after every change."""
        with self._lock:
            self._listeners.append(listener)
