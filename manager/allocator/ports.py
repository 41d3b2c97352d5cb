"""Published ports: conflicts and automatic assignment (pure).

Ingress-published ports are cluster-wide: one (port, protocol) belongs to one
service. A port given without a published number gets one from Docker's
dynamic range 30000-32767, and keeps it across later passes and spec updates
as long as the service still asks for that target. Host-mode ports are per
node and left to the scheduler and the runtime.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

from proto import objects_pb2 as pb

DYNAMIC_FIRST = 30000
DYNAMIC_LAST = 32767

Key = tuple[int, int]  # (published port, protocol)


def protocol_name(protocol: int) -> str:
    return pb.PortConfig.Protocol.Name(protocol).lower()


def conflict_message(port: int, protocol: int, owner_name: str, owner_id: str) -> str:
    return (f"port '{port}/{protocol_name(protocol)}' is already in use by service "
            f"'{owner_name}' ({owner_id}) as an ingress port")


def ingress(ports: Iterable[pb.PortConfig]) -> list[pb.PortConfig]:
    return [p for p in ports if p.publish_mode == pb.PortConfig.INGRESS]


def used_by(services: Iterable[pb.Service], exclude: str = "") -> dict[Key, pb.Service]:
    """Ingress ports held by services (as allocated, and as asked), by (port, protocol)."""
    held: dict[Key, pb.Service] = {}
    for svc in services:
        if svc.id == exclude:
            continue
        for p in ingress(list(svc.endpoint.ports) + list(svc.spec.endpoint.ports)):
            if p.published_port:
                held.setdefault((p.published_port, p.protocol), svc)
    return held


def first_conflict(spec: pb.EndpointSpec, services: Iterable[pb.Service],
                   own_id: str = "") -> Optional[str]:
    """Why `spec`'s explicit ingress ports cannot be had, or None."""
    held = used_by(services, exclude=own_id)
    for p in ingress(spec.ports):
        owner = held.get((p.published_port, p.protocol)) if p.published_port else None
        if owner is not None:
            return conflict_message(p.published_port, p.protocol,
                                    owner.spec.annotations.name, owner.id)
    return None


@dataclass
class PortBook:
    """Ingress ports taken so far in one allocation pass."""

    taken: dict[Key, str] = field(default_factory=dict)  # -> service ID

    def free(self, key: Key, service_id: str) -> bool:
        return self.taken.get(key, service_id) == service_id

    def take(self, key: Key, service_id: str) -> None:
        self.taken[key] = service_id

    def dynamic(self, protocol: int, service_id: str) -> Optional[int]:
        for port in range(DYNAMIC_FIRST, DYNAMIC_LAST + 1):
            if (port, protocol) not in self.taken:
                self.take((port, protocol), service_id)
                return port
        return None


def _previous(service: pb.Service) -> dict[tuple[int, int], int]:
    """Dynamic ports the service already holds, by (target, protocol)."""
    return {(p.target_port, p.protocol): p.published_port
            for p in ingress(service.endpoint.ports)
            if DYNAMIC_FIRST <= p.published_port <= DYNAMIC_LAST}


def reserve(service: pb.Service, book: PortBook, names: dict[str, str]) -> str:
    """Books the service's explicit ingress ports; "" or the conflict's message.

    Run for every service (oldest first) before `keep` and `allocate_ports`."""
    for p in ingress(service.spec.endpoint.ports):
        if not p.published_port:
            continue
        key = (p.published_port, p.protocol)
        if not book.free(key, service.id):
            owner = book.taken[key]
            return conflict_message(p.published_port, p.protocol, names.get(owner, owner), owner)
    for p in ingress(service.spec.endpoint.ports):
        if p.published_port:
            book.take((p.published_port, p.protocol), service.id)
    return ""


def keep(service: pb.Service, book: PortBook) -> None:
    """Books the dynamic ports the service holds and still asks for (when still free)."""
    previous = _previous(service)
    for p in ingress(service.spec.endpoint.ports):
        held = previous.get((p.target_port, p.protocol))
        if not p.published_port and held and book.free((held, p.protocol), service.id):
            book.take((held, p.protocol), service.id)


def allocate_ports(service: pb.Service, book: PortBook) -> tuple[list[pb.PortConfig], str]:
    """The service's ports as allocated, and "" or why they cannot be.

    Run after `reserve` and `keep` for every service."""
    previous = _previous(service)
    out: list[pb.PortConfig] = []
    for p in service.spec.endpoint.ports:
        port = pb.PortConfig()
        port.CopyFrom(p)
        if p.publish_mode == pb.PortConfig.INGRESS and not p.published_port:
            held = previous.get((p.target_port, p.protocol))
            if held and book.taken.get((held, p.protocol)) == service.id:
                port.published_port = held
            else:
                got = book.dynamic(p.protocol, service.id)
                if got is None:
                    return [], (f"no free port left in {DYNAMIC_FIRST}-{DYNAMIC_LAST} for "
                                f"target {p.target_port}/{protocol_name(p.protocol)}")
                port.published_port = got
        out.append(port)
    return out, ""
