"""Control API rules for networks: creation (name, addresses, VNI) and removal while unused.

Pure functions over the networks, services, tasks and cluster the caller read.
A `--config-from` network's settings are resolved here, at create, from the
config-only network it names (by name or ID); a config-only network stays while
a network made from it exists.
"""
from __future__ import annotations

from typing import Iterable, Optional

from manager import validation
from manager.allocator import assign, ipam, networks, ports
from manager.controlapi.common import Code, Refusal, find, invalid, precondition
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
        spec = request.spec
        if spec.config_from:
            spec = networks.from_config(spec, _config_network(spec.config_from, existing))
        net = networks.new_network(spec, existing, cluster)
    except (validation.InvalidSpec, ipam.AllocationError) as exc:
        raise invalid(str(exc)) from None
    if any(n.spec.annotations.name == name for n in existing):
        raise Refusal(Code.ALREADY_EXISTS, f"network {name} already exists")
    net.id = model.new_id()
    return net


def _config_network(ref: str, existing: list[pb.Network]) -> pb.Network:
    try:
        return find(existing, "network", ref)
    except Refusal as exc:
        if exc.code != Code.NOT_FOUND:
            raise
        raise Refusal(Code.NOT_FOUND, f"configuration network {ref!r} does not exist: create "
                      "it with `swarm network create --config-only ...` first") from None


def _plural(users: list[str]) -> str:
    return "s" if len(users) > 1 else ""


def check_removable(net: pb.Network, services: Iterable[pb.Service],
                    tasks: Iterable[pb.Task], others: Iterable[pb.Network] = ()) -> None:
    """Refuses to remove a network that services are attached to or tasks still hold, or
    a config-only network that other networks (`others`) were created from."""
    services = list(services)
    name = net.spec.annotations.name
    dependants = sorted(n.spec.annotations.name for n in others
                        if n.id != net.id and networks.uses_config(n, net))
    if dependants:
        raise precondition(f"configuration network '{name}' is in use by network"
                           f"{_plural(dependants)} {', '.join(dependants)} (created with "
                           "--config-from); remove "
                           f"{'them' if len(dependants) > 1 else 'it'} first")
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
