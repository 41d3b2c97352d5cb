"""The `swarm` command's Control API client: reaching a node and explaining failures.

Owns turning a host string (`unix:///var/lib/shoal/swarm.sock`, `host:port`,
`tcp://host:port`) into a target, making calls on it, and turning a failed
call into the one-line message a Docker user expects. Commands call through
`Client` only and catch one error type, `RpcFailure` (code name and details).

Two paths make the calls. Idempotent reads on a unix socket (`FAST_METHODS`)
go through `cli.fastcall`, a small HTTP/2 client of the standard library;
everything else (TCP and TLS targets, writes, streams, the LocalNode
service, and any read the small client hands back as `Unsupported`) goes
through grpcio (`cli.grpc_transport`), whose module is loaded on first need:
`import grpc` alone costs 0.06-0.09 s, more than half of what a `swarm node
ls` may take.
"""
from __future__ import annotations

import importlib
import os
import time
from typing import Any, Mapping, NamedTuple, Optional

from cli import fastcall
from cli.fastcall import RpcFailure as RpcFailure
from proto import control_pb2 as cpb

DEFAULT_HOST = "unix:///var/lib/shoal/swarm.sock"
HOST_ENV = "SWARM_HOST"
CALL_TIMEOUT = 30.0  # seconds, for unary calls
MAX_MESSAGE = 64 * 1024 * 1024  # bytes, the largest response the CLI accepts
CONTROL = cpb.DESCRIPTOR.services_by_name["Control"]
# Control methods that only read: the ones `cli.fastcall` may make (and, after
# anything unexpected, make again with grpcio).
FAST_METHODS = frozenset({
    "Info", "GetNode", "ListNodes", "GetService", "ListServices", "GetTask", "ListTasks",
    "GetNetwork", "ListNetworks", "GetSecret", "ListSecrets", "GetConfig", "ListConfigs",
    "GetCluster", "ListClusters", "ListVolumes", "ListStacks",
})
GRPC_TRANSPORT = "cli.grpc_transport"
API_VERSION = "shoal.v1"
DISTRIBUTION = "shoal"


class CLIError(Exception):
    """A failure to report as one line on stderr with exit code `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Target(NamedTuple):
    """Where the node's control API listens."""

    host: str        # as the user gave it (for messages)
    address: str     # what grpc dials
    is_unix: bool

    @property
    def socket_path(self) -> str:
        """The unix socket's path (unix targets only)."""
        for scheme in ("unix://", "unix:"):
            if self.address.startswith(scheme):
                return self.address[len(scheme):]
        return self.address


def client_version() -> str:
    """This CLI's version: the installed distribution's, "unknown" when it is not installed.

    importlib.metadata is loaded by name on first need: it pulls in email, zipfile and
    csv, which no other command path needs (`swarm node ls` would pay for them)."""
    metadata = importlib.import_module("importlib.metadata")
    try:
        return str(metadata.version(DISTRIBUTION))
    except metadata.PackageNotFoundError:
        return "unknown"


def version_line() -> str:
    """What `swarm --version` prints, as `docker --version` does: "Shoal version 0.1.0, API
    shoal.v1"."""
    return f"Shoal version {client_version()}, API {API_VERSION}"


def resolve_host(flag_value: Optional[str], env: Optional[Mapping[str, str]] = None) -> str:
    """-H/--host wins, then $SWARM_HOST, then the default control socket."""
    environ = os.environ if env is None else env
    return flag_value or environ.get(HOST_ENV) or DEFAULT_HOST


def parse_target(host: str) -> Target:
    """Maps a host string onto a grpc target; raises CLIError when malformed."""
    text = host.strip()
    if text.startswith("unix://"):
        path = text[len("unix://"):]
        if not path.startswith("/"):
            raise CLIError(f'invalid host "{host}": expected unix:///absolute/path/swarm.sock')
        return Target(host, "unix://" + path, True)
    if text.startswith("unix:"):
        return Target(host, text, True)
    if text.startswith("/"):
        return Target(host, "unix://" + text, True)
    for scheme in ("tcp://", "grpc://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
    hostpart, sep, port = text.rpartition(":")
    if not sep or not hostpart or not (port.isascii() and port.isdigit()):
        raise CLIError(f'invalid host "{host}": expected unix:///path/swarm.sock or host:port')
    return Target(host, text, False)


class Client:
    """The Control API of one node, with the CLI's default deadline on each call.

    `credentials` (a grpc.ChannelCredentials) secure TCP targets. `fast_calls`
    counts the calls `cli.fastcall` answered, `fallbacks` says why others
    that could have gone that way went through grpcio. `keepalive=True` is for
    clients that hold long streams (Watch, `watch()`): the grpcio channel pings
    the node and fails its calls within ~10 s once it stops answering
    (`cli.grpc_transport.KEEPALIVE_OPTIONS`), instead of waiting in silence.
    """

    def __init__(self, host: str, credentials: Optional[Any] = None,
                 timeout: float = CALL_TIMEOUT, keepalive: bool = False) -> None:
        self.target = parse_target(host)
        self.timeout = timeout
        self.credentials = credentials
        self.keepalive = keepalive
        self.fast_calls = 0
        self.fallbacks: list[str] = []
        self._grpc: Optional[Any] = None    # a cli.grpc_transport.Channel, opened on need

    @property
    def channel(self) -> Any:
        """The grpcio channel (cli.grpc_transport.Channel), opened on first use."""
        if self._grpc is None:
            # By name, so that a command that never needs grpcio never loads it.
            transport = importlib.import_module(GRPC_TRANSPORT)
            self._grpc = transport.Channel(self.target.address, self.target.is_unix,
                                           self.credentials, keepalive=self.keepalive)
        return self._grpc

    def call(self, method: str, request: Any, timeout: Optional[float] = None) -> Any:
        """Calls a unary Control method by name, e.g. call("GetService", req)."""
        timeout = timeout or self.timeout
        if self.target.is_unix and method in FAST_METHODS:
            started = time.monotonic()
            try:
                return self._fast_call(method, request, timeout)
            except fastcall.Unsupported as exc:
                self.fallbacks.append(f"{method}: {exc}")
            timeout = max(0.001, timeout - (time.monotonic() - started))
        return self.channel.call(self.channel.control, method, request, timeout)

    def _fast_call(self, method: str, request: Any, timeout: float) -> Any:
        rpc = CONTROL.methods_by_name[method]
        data = fastcall.unary_call(self.target.socket_path, f"/{CONTROL.full_name}/{method}",
                                   request.SerializeToString(), timeout, MAX_MESSAGE)
        response = getattr(cpb, rpc.output_type.name).FromString(data)
        self.fast_calls += 1
        return response

    def local_call(self, method: str, request: Any, timeout: Optional[float] = None) -> Any:
        """Calls a unary LocalNode method (the node's own socket) by name."""
        return self.channel.call(self.channel.local, method, request, timeout or self.timeout)

    def stream(self, method: str, request: Any, timeout: Optional[float] = None) -> Any:
        """Calls a server-streaming Control method; iterate the result, or cancel() it."""
        return self.channel.stream(method, request, timeout)

    def watch(self, request: Any, timeout: Optional[float] = None) -> Any:
        """Opens a Watch stream (proto/watch.proto); iterate the result, or cancel() it."""
        return self.channel.watch_stream(request, timeout)

    def close(self) -> None:
        if self._grpc is not None:
            self._grpc.close()
            self._grpc = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_CONNECT_HINTS = ("failed to connect", "connection refused", "no such file",
                  "dns resolution failed", "connect failed", "socket closed",
                  "name resolution", "unreachable", "timeout occurred")


def code_name(err: Any) -> str:
    """The status code's name of a failed call ("NOT_FOUND"), from an RpcFailure or a
    grpc.RpcError alike."""
    code = err.code() if hasattr(err, "code") else "UNKNOWN"
    return str(getattr(code, "name", code))


def describe_rpc_error(err: Any, host: str, debug: bool = False) -> str:
    """Turns a failed call (an RpcFailure, or anything with code() and details()) into the
    line printed on stderr."""
    code = code_name(err)
    details = (err.details() if hasattr(err, "details") else str(err)) or ""
    low = details.lower()
    suffix = f" ({code}: {details})" if debug else ""
    if code == "UNAVAILABLE" and "permission denied" in low:
        return (f"Got permission denied while trying to connect to the swarm node at {host}: "
                f"run the command as root or with access to the socket{suffix}")
    if code == "UNAVAILABLE" and (not details or any(h in low for h in _CONNECT_HINTS)):
        return (f"Cannot connect to the swarm node at {host}. "
                f"Is the node running (swarm init / swarm daemon)?{suffix}")
    if code == "DEADLINE_EXCEEDED":
        return f"Error: the swarm node at {host} did not answer in time{suffix}"
    if code == "NOT_FOUND":
        return f"Error: {details}"
    if code == "UNIMPLEMENTED":
        return f"Error: the swarm node at {host} does not support this command ({details})"
    return f"Error response from daemon: {details}" + (f" [{code}]" if debug else "")


def is_not_found(err: Any) -> bool:
    return code_name(err) == "NOT_FOUND"
