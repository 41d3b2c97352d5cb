"""Control API rules for networks: creation (name, addresses, VNI) and removal while unused.

Pure functions over the networks, services, tasks and cluster the caller read.
"""
from __future__ import annotations

from typing import Iterable, Optional

from manager import validation
from manager.allocator import assign, ipam, networks, ports
from manager.controlapi.common import Code, Refusal, invalid, precondition
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb


HONOURED_OPTIONS = frozenset({networks.ENCRYPTED})  # what the overlay data plane acts on


def new_network(request: cpb.CreateNetworkRequest, existing: list[pb.Network],
                cluster: Optional[pb.Cluster]) -> pb.Network:
    """The network to create, its subnet and VNI allocated; refused on a bad or taken name."""
    name = request.spec.annotations.name
    unknown = sorted(set(request.spec.driver_options) - HONOURED_OPTIONS)
    if unknown:
        raise invalid(f"network option(s) {', '.join(unknown)} not supported: Shoal's overlay "
                      f"driver takes only --opt {networks.ENCRYPTED} (remove the others)")
    try:
        validation.check_name("network", name)
        net = networks.new_network(request.spec, existing, cluster)
    except (validation.InvalidSpec, ipam.AllocationError) as exc:
        raise invalid(str(exc)) from None
    if any(n.spec.annotations.name == name for n in existing):
        raise Refusal(Code.ALREADY_EXISTS, f"network {name} already exists")
    net.id = model.new_id()
    return net


def _plural(users: list[str]) -> str:
    return "s" if len(users) > 1 else ""


def check_removable(net: pb.Network, services: Iterable[pb.Service],
                    tasks: Iterable[pb.Task]) -> None:
    """Refuses to remove a network that services are attached to or tasks still hold."""
    services = list(services)
    name = net.spec.annotations.name
    if net.spec.ingress:
        publishers = sorted(s.spec.annotations.name for s in services
                            if ports.ingress(s.spec.endpoint.ports))
        if publishers:
            raise precondition(
                f"ingress network '{name}' cannot be removed because service(s) "
                f"{', '.join(publishers)} publish ports on it; remove them or their "
                "published ports first")
    users = sorted(s.spec.annotations.name for s in services
                   if any(a.target == net.id for a in s.spec.task.networks))
    if users:
        raise precondition(f"network '{name}' is in use by the following "
                           f"service{_plural(users)}: {', '.join(users)}")
    holders = sorted(t.annotations.name or t.id for t in tasks
                     if not assign.releases(t) and any(a.network_id == net.id for a in t.networks))
    if holders:
        raise precondition(f"network '{name}' is still in use by task(s) "
                           f"{', '.join(holders[:5])} that are stopping; retry in a moment")
