"""Network objects at creation: validation, subnet and VNI allocation, the ingress network.

`new_network(spec, existing, cluster)` is what the control API calls for
`network create`; `ingress_network(cluster, existing)` is what `swarm init`
stores. Both are pure: they read the networks already stored and return a
`pb.Network` (without ID) or raise `AllocationError` with a message for the
user. Subnets come from the cluster's default address pool (Docker's
10.0.0.0/8 in /24s unless `swarm init --default-addr-pool` said otherwise) in
order, skipping every subnet already in use; a subnet given with `--subnet`
must not overlap one in use either. An `--ip-range` must lie inside the
subnet and `--aux-address`es must be host addresses of it other than the
gateway; both are stored with the allocated subnet, where the allocator pass
reads them (`ip_range`, `aux_addresses`).

A configuration-only network (`--config-only`) is checked the same way but
gets no subnet, gateway or VNI: it only holds settings. `from_config` makes
the spec of a `--config-from` network: the config-only network's IPAM
settings and driver options, which the command line must then not repeat.
"""
from __future__ import annotations

import ipaddress
from typing import Iterable, Optional

from manager.allocator import ipam
from manager.allocator.ipam import AllocationError
from proto import objects_pb2 as pb

OVERLAY = "overlay"
ENCRYPTED = "encrypted"


ATTACHABLE_REFUSAL = ("attachable networks are not supported by Shoal: it runs no standalone "
                      "containers, so nothing can attach to a network by hand; services join "
                      "networks with --network")


def subnet_of(network: pb.Network) -> Optional[ipam.Net]:
    """The allocated subnet of a stored network, or None (not allocated)."""
    for conf in network.ipam:
        if conf.subnet:
            try:
                return ipaddress.IPv4Network(conf.subnet)
            except ValueError:
                return None
    return None


def gateway(network: pb.Network) -> str:
    for conf in network.ipam:
        if conf.gateway:
            return conf.gateway
    return ""


def ip_range(network: pb.Network) -> Optional[ipam.Net]:
    """The --ip-range task addresses and VIPs come from, or None (the whole subnet)."""
    for conf in network.ipam:
        if conf.range:
            try:
                return ipaddress.IPv4Network(conf.range)
            except ValueError:
                return None
    return None


def aux_addresses(network: pb.Network) -> frozenset[str]:
    """The --aux-address values of a stored network: never handed out."""
    return frozenset(ip for conf in network.ipam for ip in conf.aux_addresses.values())


def is_encrypted(spec: pb.NetworkSpec) -> bool:
    return ENCRYPTED in spec.driver_options


def _pools(cluster: Optional[pb.Cluster]) -> tuple[list[ipam.Net], int]:
    spec = cluster.spec if cluster is not None else pb.ClusterSpec()
    size = spec.subnet_size or ipam.DEFAULT_SUBNET_SIZE
    return ipam.parse_pools(list(spec.default_addr_pool), size), size


def _check_gateway(text: str, net: ipam.Net) -> str:
    try:
        gw = ipaddress.IPv4Address(text.strip())
    except ValueError:
        raise AllocationError(f"invalid gateway {text!r}: expected an IPv4 address") from None
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise AllocationError(f"gateway {gw} is not a host address of subnet {net}")
    return str(gw)


def new_network(spec: pb.NetworkSpec, existing: Iterable[pb.Network],
                cluster: Optional[pb.Cluster]) -> pb.Network:
    """A network for `spec` with its subnet, gateway and VNI allocated (no ID yet);
    a config-only network is checked and gets nothing allocated."""
    existing = list(existing)
    driver = spec.driver or OVERLAY
    if driver != OVERLAY:
        raise AllocationError(f"network driver {driver!r} is not supported: Shoal has only "
                              "swarm-scoped overlay networks (use -d overlay)")
    if spec.attachable:
        raise AllocationError(ATTACHABLE_REFUSAL)
    if spec.config_only:
        return _config_only(spec)
    if spec.ingress and any(n.spec.ingress for n in existing):
        name = next(n.spec.annotations.name for n in existing if n.spec.ingress)
        raise AllocationError(f"an ingress network already exists ({name}): remove it first, "
                              "there can be only one")
    if len(spec.ipam) > 1:
        raise AllocationError("only one subnet per network is supported")
    used = [s for s in (subnet_of(n) for n in existing) if s is not None]
    conf = spec.ipam[0] if spec.ipam else pb.IPAMConfig()
    if (conf.range or conf.aux_addresses) and not conf.subnet:
        flag = "--ip-range" if conf.range else "--aux-address"
        raise AllocationError(f"{flag} needs --subnet: give the subnet it belongs to")
    if conf.subnet:
        net = ipam.parse_subnet(conf.subnet)
        clash = ipam.overlapping(net, used)
        if clash is not None:
            owner = next(n.spec.annotations.name for n in existing if subnet_of(n) == clash)
            raise AllocationError(f"invalid pool request: subnet {net} overlaps with subnet "
                                  f"{clash} of network {owner}")
    else:
        if conf.gateway:
            raise AllocationError("--gateway needs --subnet: give the subnet the gateway "
                                  "belongs to")
        pools, size = _pools(cluster)
        net = ipam.next_subnet(pools, size, used)
    gw = _check_gateway(conf.gateway, net) if conf.gateway else ipam.gateway_of(net)
    rng = ipam.parse_range(conf.range, net) if conf.range else None
    aux = _check_aux(dict(conf.aux_addresses), net, gw)
    first, last = ipam.host_bounds(net, rng)
    free = last - first + 1 - sum(1 for ip in {gw, *aux.values()}
                                  if first <= int(ipaddress.IPv4Address(ip)) <= last)
    if free < 1:
        where = f"ip-range {rng}" if rng is not None else f"subnet {net}"
        raise AllocationError(f"{where} leaves no address to hand out once the gateway and "
                              "aux-addresses are set aside: give a larger range")
    out = pb.Network(spec=spec, vni=ipam.next_vni(n.vni for n in existing))
    out.spec.driver = OVERLAY
    allocated = out.ipam.add(subnet=str(net), gateway=gw, range=str(rng) if rng else "")
    allocated.aux_addresses.update(aux)
    return out


def _config_only(spec: pb.NetworkSpec) -> pb.Network:
    """A config-only network: its settings checked as a network's would be (except for
    overlaps: it holds no addresses), nothing allocated."""
    if spec.ingress or spec.internal:
        raise AllocationError("a configuration-only network can only hold network settings "
                              "(--subnet, --gateway, --ip-range, --aux-address, --opt): "
                              "--ingress and --internal belong on the networks created from it")
    if spec.config_from:
        raise AllocationError("a configuration-only network cannot depend on another "
                              "configuration-only network (drop --config-from)")
    if len(spec.ipam) > 1:
        raise AllocationError("only one subnet per network is supported")
    conf = spec.ipam[0] if spec.ipam else pb.IPAMConfig()
    if conf.subnet:
        net = ipam.parse_subnet(conf.subnet)
        gw = _check_gateway(conf.gateway, net) if conf.gateway else ipam.gateway_of(net)
        if conf.range:
            ipam.parse_range(conf.range, net)
        _check_aux(dict(conf.aux_addresses), net, gw)
    elif conf.range or conf.aux_addresses or conf.gateway:
        flag = "--ip-range" if conf.range else "--gateway" if conf.gateway else "--aux-address"
        raise AllocationError(f"{flag} needs --subnet: give the subnet it belongs to")
    out = pb.Network(spec=spec)
    out.spec.driver = OVERLAY
    return out


def from_config(spec: pb.NetworkSpec, config: pb.Network) -> pb.NetworkSpec:
    """The spec of a --config-from network: `spec` with the IPAM settings and driver
    options of the config-only network `config`, which `spec` must not give itself."""
    name = config.spec.annotations.name
    if not config.spec.config_only:
        raise AllocationError(f"network {name} is not a configuration-only network: "
                              "--config-from takes one created with --config-only")
    if spec.config_only:
        raise AllocationError("a configuration-only network cannot depend on another "
                              "configuration-only network (drop --config-from)")
    given = [flag for flag, present in (
        ("--subnet/--gateway/--ip-range/--aux-address", bool(spec.ipam)),
        ("--opt", bool(spec.driver_options)),
        ("--label", bool(spec.annotations.labels))) if present]
    if given:
        raise AllocationError(f"{', '.join(given)} cannot be given with --config-from: the "
                              f"network takes its configuration from {name}")
    out = pb.NetworkSpec()
    out.CopyFrom(spec)
    out.config_from = name
    out.ipam.extend(config.spec.ipam)
    out.driver_options.update(config.spec.driver_options)
    return out


def uses_config(network: pb.Network, config: pb.Network) -> bool:
    """`network` was created --config-from the config-only network `config`."""
    return bool(config.spec.config_only) and \
        network.spec.config_from == config.spec.annotations.name


def _check_aux(aux: dict[str, str], net: ipam.Net, gw: str) -> dict[str, str]:
    """The --aux-address values as stored (normalised), or AllocationError."""
    out: dict[str, str] = {}
    for name in sorted(aux):
        addr = ipam.parse_aux_address(name, aux[name], net)
        if addr == gw:
            raise AllocationError(f"aux-address {name}={addr} is the gateway of subnet "
                                  f"{net}: give another address")
        owner = next((k for k, v in out.items() if v == addr), None)
        if owner is not None:
            raise AllocationError(f"aux-addresses {owner} and {name} are both {addr}: "
                                  "give each its own address")
        out[name] = addr
    return out


def ingress_network(cluster: Optional[pb.Cluster],
                    existing: Iterable[pb.Network] = ()) -> pb.Network:
    """The `ingress` network `swarm init` creates (Docker: 10.0.0.0/24, VNI 4096)."""
    spec = pb.NetworkSpec(driver=OVERLAY, ingress=True)
    spec.annotations.name = ipam.INGRESS_NAME
    return new_network(spec, existing, cluster)
