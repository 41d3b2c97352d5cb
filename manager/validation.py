"""Validation of user-supplied specs before they reach the store.

Pure functions: each raises `InvalidSpec` with a message that says what was
wrong and what form is expected. The control API maps it to INVALID_ARGUMENT.
"""
from __future__ import annotations

import re
import secrets
from typing import Iterable

from proto import objects_pb2 as pb
from scheduler import constraints as constraint_parser

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
MAX_NAME = 63
ENV_KEY_RE = re.compile(r"^[^=\s]+$")

_ADJECTIVES = ("brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen",
               "lucid", "merry", "nifty", "proud", "quiet", "sharp", "tender", "witty")
_NOUNS = ("anchovy", "barracuda", "cod", "dory", "eel", "flounder", "grouper", "herring",
          "marlin", "perch", "salmon", "sardine", "snapper", "trout", "tuna", "wrasse")


class InvalidSpec(ValueError):
    """A spec a person sent is not acceptable; the message says why."""


def random_name() -> str:
    """A readable name for a service created without --name, as Docker makes."""
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}"


def check_name(kind: str, name: str) -> None:
    if not name:
        raise InvalidSpec(f"{kind} name must not be empty")
    if len(name) > MAX_NAME:
        raise InvalidSpec(f"invalid {kind} name {name!r}: longer than {MAX_NAME} characters")
    if not NAME_RE.match(name):
        raise InvalidSpec(
            f"invalid {kind} name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")


def _check_duration(what: str, d: pb.Duration) -> None:
    if d.nanos < 0:
        raise InvalidSpec(f"{what} must not be negative")


def check_container(c: pb.ContainerSpec) -> None:
    if not c.image.strip():
        raise InvalidSpec("no image given: a service needs an image reference, e.g. busybox:latest")
    if any(ch.isspace() for ch in c.image):
        raise InvalidSpec(f"invalid image reference {c.image!r}: it contains white space")
    for entry in c.env:
        key = entry.split("=", 1)[0]
        if not key or not ENV_KEY_RE.match(key):
            raise InvalidSpec(f"invalid environment entry {entry!r}: expected KEY=VALUE")
    _check_duration("stop grace period", c.stop_grace_period)
    if c.HasField("healthcheck"):
        h = c.healthcheck
        for what, d in (("health interval", h.interval), ("health timeout", h.timeout),
                        ("health start period", h.start_period)):
            _check_duration(what, d)
        if h.retries < 0:
            raise InvalidSpec("health retries must not be negative")


def check_resources(r: pb.ResourceRequirements) -> None:
    for which, res in (("limit", r.limits), ("reservation", r.reservations)):
        if res.nano_cpus < 0:
            raise InvalidSpec(f"CPU {which} must not be negative")
        if res.memory_bytes < 0:
            raise InvalidSpec(f"memory {which} must not be negative")
    if r.limits.memory_bytes and r.reservations.memory_bytes > r.limits.memory_bytes:
        raise InvalidSpec("memory reservation is larger than the memory limit")
    if r.limits.nano_cpus and r.reservations.nano_cpus > r.limits.nano_cpus:
        raise InvalidSpec("CPU reservation is larger than the CPU limit")


def check_placement(p: pb.Placement) -> None:
    for expr in p.constraints:
        try:
            constraint_parser.parse(expr)
        except ValueError as exc:
            raise InvalidSpec(str(exc)) from None
    for pref in p.preferences:
        key = pref.spread
        if not (key.startswith("node.labels.") or key.startswith("engine.labels.")) \
                or key.endswith("."):
            raise InvalidSpec(
                f"invalid placement preference spread={key!r}: expected "
                "spread=node.labels.<label> or spread=engine.labels.<label>")


def check_ports(ports: Iterable[pb.PortConfig]) -> None:
    seen: set[tuple[int, int]] = set()
    for port in ports:
        if not 1 <= port.target_port <= 65535:
            raise InvalidSpec(f"invalid target port {port.target_port}: must be 1-65535")
        if port.published_port > 65535:
            raise InvalidSpec(f"invalid published port {port.published_port}: must be 0-65535")
        if port.published_port:
            key = (port.published_port, port.protocol)
            if key in seen:
                proto_name = pb.PortConfig.Protocol.Name(port.protocol).lower()
                raise InvalidSpec(
                    f"published port {port.published_port}/{proto_name} is listed twice")
            seen.add(key)


def check_update_config(what: str, u: pb.UpdateConfig) -> None:
    _check_duration(f"{what} delay", u.delay)
    _check_duration(f"{what} monitor", u.monitor)
    if not 0.0 <= u.max_failure_ratio <= 1.0:
        raise InvalidSpec(f"{what} max failure ratio must be between 0 and 1")


def check_service_spec(spec: pb.ServiceSpec) -> None:
    """Raises InvalidSpec if the service spec cannot be accepted."""
    check_name("service", spec.annotations.name)
    task = spec.task
    check_container(task.container)
    check_resources(task.resources)
    r = task.restart
    _check_duration("restart delay", r.delay)
    _check_duration("restart window", r.window)
    check_placement(task.placement)
    if spec.WhichOneof("mode") in ("global", "global_job") and task.placement.max_replicas:
        raise InvalidSpec("max replicas per node applies to replicated services only")
    check_ports(spec.endpoint.ports)
    if spec.endpoint.mode == pb.EndpointSpec.DNSRR:
        for port in spec.endpoint.ports:
            if port.publish_mode == pb.PortConfig.INGRESS:
                raise InvalidSpec("port published with ingress mode can't be used with "
                                  "dnsrr endpoint mode: use mode=host")
    check_update_config("update", spec.update)
    check_update_config("rollback", spec.rollback)


def normalise_service_spec(spec: pb.ServiceSpec) -> None:
    """Fills defaults a Docker user relies on: a name, replicated mode with 1 replica."""
    if not spec.annotations.name:
        spec.annotations.name = random_name()
    if spec.WhichOneof("mode") is None:
        spec.replicated.replicas = 1
    if not spec.task.container.HasField("stop_grace_period"):
        spec.task.container.stop_grace_period.nanos = 10 * 10**9
