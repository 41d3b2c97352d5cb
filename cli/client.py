"""The `swarm` command's gRPC plumbing: reaching a node and explaining failures.

Owns turning a host string (`unix:///var/lib/shoal/swarm.sock`, `host:port`,
`tcp://host:port`) into a channel and a Control stub, and turning a failed
call into the one-line message a Docker user expects. Commands never touch
grpc directly except through `Client` and `describe_rpc_error`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import grpc

from proto import control_pb2_grpc

DEFAULT_HOST = "unix:///var/lib/shoal/swarm.sock"
HOST_ENV = "SWARM_HOST"
CALL_TIMEOUT = 30.0  # seconds, for unary calls


class CLIError(Exception):
    """A failure to report as one line on stderr with exit code `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Target:
    """Where the node's control API listens."""

    host: str        # as the user gave it (for messages)
    address: str     # what grpc dials
    is_unix: bool


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
    if not sep or not hostpart or not port.isdigit():
        raise CLIError(f'invalid host "{host}": expected unix:///path/swarm.sock or host:port')
    return Target(host, text, False)


def open_channel(target: Target,
                 credentials: Optional[grpc.ChannelCredentials] = None) -> grpc.Channel:
    """Opens a channel to the node; TCP uses `credentials` (TLS) when given."""
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    if credentials is not None and not target.is_unix:
        return grpc.secure_channel(target.address, credentials, options=options)
    return grpc.insecure_channel(target.address, options=options)


class Client:
    """The Control API of one node, with the CLI's default deadline on each call."""

    def __init__(self, host: str, credentials: Optional[grpc.ChannelCredentials] = None,
                 timeout: float = CALL_TIMEOUT) -> None:
        self.target = parse_target(host)
        self.timeout = timeout
        self._channel = open_channel(self.target, credentials)
        self.stub = control_pb2_grpc.ControlStub(self._channel)

    def call(self, method: str, request: Any, timeout: Optional[float] = None) -> Any:
        """Calls a unary Control method by name, e.g. call("GetService", req)."""
        return getattr(self.stub, method)(request, timeout=timeout or self.timeout)

    def stream(self, method: str, request: Any, timeout: Optional[float] = None) -> Any:
        """Calls a server-streaming Control method; returns the response iterator."""
        return getattr(self.stub, method)(request, timeout=timeout)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_CONNECT_HINTS = ("failed to connect", "connection refused", "no such file",
                  "dns resolution failed", "connect failed", "socket closed",
                  "name resolution", "unreachable", "timeout occurred")


def describe_rpc_error(err: grpc.RpcError, host: str, debug: bool = False) -> str:
    """Turns a failed call into the line printed on stderr."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = (err.details() if hasattr(err, "details") else str(err)) or ""
    low = details.lower()
    suffix = f" ({code.name}: {details})" if debug else ""
    if code == grpc.StatusCode.UNAVAILABLE and "permission denied" in low:
        return (f"Got permission denied while trying to connect to the swarm node at {host}: "
                f"run the command as root or with access to the socket{suffix}")
    if code == grpc.StatusCode.UNAVAILABLE and (not details or any(h in low for h in _CONNECT_HINTS)):
        return (f"Cannot connect to the swarm node at {host}. "
                f"Is the node running (swarm init / swarm daemon)?{suffix}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"Error: the swarm node at {host} did not answer in time{suffix}"
    if code == grpc.StatusCode.NOT_FOUND:
        return f"Error: {details}"
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return f"Error: the swarm node at {host} does not support this command ({details})"
    return f"Error response from daemon: {details}" + (f" [{code.name}]" if debug else "")


def is_not_found(err: grpc.RpcError) -> bool:
    return hasattr(err, "code") and err.code() == grpc.StatusCode.NOT_FOUND
