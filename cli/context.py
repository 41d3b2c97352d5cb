"""What every client command works with: the node it talks to and where it writes.

Owns `Context` (host, output streams, the lazily opened `Client`) and the
look-ups several commands share: the node this CLI is talking to, node IDs to
hostnames, a node named by ID, ID prefix, hostname or "self", a service named
by ID, ID prefix or name (resolved by the manager's GetService), and the
secret/config/network references of a spec (names resolved to IDs, as
Docker's CLI does).
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Optional, TextIO

from cli.client import CLIError, Client, RpcFailure, describe_rpc_error, is_not_found
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb


class Context:
    """The state of one `swarm` invocation.

    A plain class rather than a dataclass: every client command builds one, and
    the dataclasses module costs `swarm node ls` 6 ms of start-up.
    """

    def __init__(self, host: str, debug: bool = False, out: Optional[TextIO] = None,
                 err: Optional[TextIO] = None, _client: Optional[Client] = None,
                 _info: Optional[cpb.InfoResponse] = None) -> None:
        self.host = host
        self.debug = debug
        self.out: TextIO = sys.stdout if out is None else out
        self.err: TextIO = sys.stderr if err is None else err
        self._client = _client
        self._info = _info

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.host)
        return self._client

    def call(self, method: str, request: Any, timeout: Optional[float] = None) -> Any:
        return self.client.call(method, request, timeout)

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def warn(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()

    def attempt(self, action: Callable[[], Any]) -> bool:
        """Runs one item of a multi-item command; on failure prints why and returns False
        (the command goes on with the next item and exits non-zero at the end)."""
        try:
            action()
            return True
        except RpcFailure as exc:
            self.warn(describe_rpc_error(exc, self.host, self.debug))
        except CLIError as exc:
            self.warn(exc.message)
        return False

    def is_tty(self) -> bool:
        return bool(getattr(self.out, "isatty", lambda: False)())

    def close(self) -> None:
        if self._client is not None:
            if self.debug:
                for reason in getattr(self._client, "fallbacks", ()):
                    self.warn(f"debug: made through grpcio instead: {reason}")
            self._client.close()

    # ------------------------------------------------------------ lookups ----

    def info(self) -> cpb.InfoResponse:
        if self._info is None:
            self._info = self.call("Info", cpb.InfoRequest())
        return self._info

    def nodes(self) -> list[pb.Node]:
        return list(self.call("ListNodes", cpb.ListNodesRequest()).nodes)

    def node_names(self) -> dict[str, str]:
        return {n.id: n.description.hostname or n.id for n in self.nodes()}

    def resolve_node(self, ref: str) -> pb.Node:
        """A node by ID, hostname, unique ID prefix or "self"."""
        if ref == "self":
            ref = self.info().node_id
        try:
            return self.call("GetNode", cpb.GetNodeRequest(node_id=ref)).node
        except RpcFailure as exc:
            if not is_not_found(exc):
                raise
        nodes = self.nodes()
        for candidates in ([n for n in nodes if n.id == ref],
                           [n for n in nodes if n.description.hostname == ref],
                           [n for n in nodes if n.id.startswith(ref)]):
            if len(candidates) == 1:
                return candidates[0]
            if len(candidates) > 1:
                raise CLIError(f"Error: node {ref} is ambiguous ({len(candidates)} matches)")
        raise CLIError(f"Error: No such node: {ref}")

    def get_service(self, ref: str) -> pb.Service:
        """A service by ID, unique ID prefix or exact name (the manager resolves it)."""
        return self.call("GetService", cpb.GetServiceRequest(service_id=ref)).service
