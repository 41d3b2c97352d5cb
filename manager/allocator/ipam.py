"""Address arithmetic for overlay networks: pools, subnets, addresses, VNIs, MACs.

Pure functions over plain values (no store, no I/O), shared by the control API
(network creation) and the leader's allocator pass. Docker's defaults: the
pool 10.0.0.0/8 carved into /24 subnets, VNIs from 4096, the gateway is the
subnet's first address, and a task's MAC is 02:42 followed by its IPv4 bytes.
A network may narrow where task addresses come from to an `--ip-range` inside
its subnet and set `--aux-address`es aside; neither moves the gateway.
"""
from __future__ import annotations

import ipaddress
from typing import Iterable, Optional, Sequence

from proto import model

DEFAULT_POOL = "10.0.0.0/8"
DEFAULT_SUBNET_SIZE = 24
FIRST_VNI = 4096
MAX_VNI = (1 << 24) - 1
INGRESS_NAME = "ingress"

Net = ipaddress.IPv4Network


class AllocationError(ValueError):
    """An allocation request that cannot be met; the text says why and what to do."""


def _ipv4_network(text: str, what: str, example: str, strict: bool) -> Net:
    """`text` as an IPv4 network, or AllocationError naming `what` and an example."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=strict)
    except ValueError:
        raise AllocationError(f"invalid {what} {text!r}: expected an IPv4 CIDR such as "
                              f"{example}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise AllocationError(f"invalid {what} {text!r}: only IPv4 is supported")
    return net


def parse_subnet(text: str, what: str = "subnet") -> Net:
    """An IPv4 CIDR with its host bits clear, or AllocationError."""
    net = _ipv4_network(text, what, "10.10.0.0/24", strict=False)
    if str(net) != text.strip():
        raise AllocationError(f"invalid {what} {text!r}: it should be {net}")
    if net.prefixlen > 29:
        raise AllocationError(f"invalid {what} {text!r}: the prefix must be /29 or shorter "
                              "(room for a gateway, a VIP and tasks)")
    return net


def parse_range(text: str, subnet: Net) -> Net:
    """An --ip-range: an IPv4 CIDR (host bits clear) inside `subnet`, or AllocationError."""
    rng = _ipv4_network(text, "ip-range", "10.10.0.128/25", strict=False)
    if str(rng) != text.strip():
        raise AllocationError(f"invalid ip-range {text!r}: it should be {rng}")
    if not rng.subnet_of(subnet):
        raise AllocationError(f"ip-range {rng} is not inside subnet {subnet}: give a range "
                              "within the subnet (e.g. --subnet 10.10.0.0/16 --ip-range "
                              "10.10.1.0/24)")
    return rng


def parse_aux_address(name: str, text: str, subnet: Net) -> str:
    """An --aux-address NAME=IP: a host address of `subnet`, or AllocationError."""
    if not name:
        raise AllocationError(f"invalid aux-address {'=' + text!r}: expected name=IP")
    try:
        addr = ipaddress.IPv4Address(text.strip())
    except ValueError:
        raise AllocationError(f"invalid aux-address {name}={text}: expected an IPv4 "
                              "address such as 10.10.0.5") from None
    if addr not in subnet:
        raise AllocationError(f"no matching subnet for aux-address {addr}: it must be "
                              f"inside subnet {subnet}")
    if addr in (subnet.network_address, subnet.broadcast_address):
        raise AllocationError(f"aux-address {name}={addr} is not a host address of "
                              f"subnet {subnet}")
    return str(addr)


def parse_pools(pools: Sequence[str], subnet_size: int) -> list[Net]:
    """The cluster's address pools (default 10.0.0.0/8), checked against the subnet size."""
    size = subnet_size or DEFAULT_SUBNET_SIZE
    if not 8 <= size <= 29:
        raise AllocationError(f"invalid subnet size /{size}: expected 8 to 29")
    result = []
    for text in pools or [DEFAULT_POOL]:
        net = _ipv4_network(text, "default address pool", "10.0.0.0/8", strict=True)
        if net.prefixlen > size:
            raise AllocationError(f"default address pool {text} is smaller than the subnet "
                                  f"size /{size}")
        result.append(net)
    return result


def overlapping(net: Net, used: Iterable[Net]) -> Optional[Net]:
    """The first of `used` that overlaps `net`, or None."""
    for other in used:
        if net.overlaps(other):
            return other
    return None


def next_subnet(pools: Sequence[Net], subnet_size: int, used: Iterable[Net]) -> Net:
    """The first /subnet_size of the pools (in order) that overlaps nothing in use."""
    taken = sorted(used, key=lambda n: (int(n.network_address), n.prefixlen))
    size = subnet_size or DEFAULT_SUBNET_SIZE
    for pool in pools:
        step = 1 << (32 - size)
        candidate = int(pool.network_address)
        end = int(pool.broadcast_address)
        while candidate + step - 1 <= end:
            net = ipaddress.IPv4Network((candidate, size))
            clash = overlapping(net, taken)
            if clash is None:
                return net
            # skip past the clashing network (it may be larger than a subnet)
            clash_end = int(clash.broadcast_address) + 1
            candidate = max(candidate + step, (clash_end + step - 1) // step * step)
    raise AllocationError("the default address pools are exhausted: remove unused networks "
                          "or give --subnet explicitly")


def gateway_of(net: Net) -> str:
    """The subnet's first address (Docker's default gateway)."""
    return str(net.network_address + 1)


def next_vni(used: Iterable[int]) -> int:
    """The lowest VNI from 4096 that is not in use."""
    taken = set(used)
    vni = FIRST_VNI
    while vni in taken:
        vni += 1
    if vni > MAX_VNI:
        raise AllocationError("no VXLAN ID left: remove unused networks")
    return vni


def bare(addr: str) -> str:
    """"10.0.1.3/24" -> "10.0.1.3"."""
    return addr.split("/", 1)[0]


def with_prefix(ip: ipaddress.IPv4Address, net: Net) -> str:
    return f"{ip}/{net.prefixlen}"


def host_bounds(net: Net, pool: Optional[Net] = None) -> tuple[int, int]:
    """The first and last address (as integers) that may be handed out in `net`:
    its host addresses, within `pool` (the --ip-range) when there is one."""
    first = int(net.network_address) + 1
    last = int(net.broadcast_address) - 1
    if pool is not None:
        first = max(first, int(pool.network_address))
        last = min(last, int(pool.broadcast_address))
    return first, last


def allocate_address(net: Net, gateway: str, used: Iterable[str], start: int = 0,
                     pool: Optional[Net] = None, reserved: Iterable[str] = ()) -> str:
    """The lowest free host address of `net` (never the gateway), with its prefix.

    `used` holds addresses in use (bare or with prefix); `start` (an address as an
    integer) skips the addresses below it, for callers that know they are taken.
    `pool` (the network's --ip-range) bounds the search; `reserved` (its
    --aux-address values, bare) are never returned."""
    taken = used if isinstance(used, (set, frozenset)) else {bare(a) for a in used}
    skip = {gateway, *reserved}
    first, last = host_bounds(net, pool)
    for value in range(max(first, start), last + 1):
        text = str(ipaddress.IPv4Address(value))
        if text not in skip and text not in taken and f"{text}/{net.prefixlen}" not in taken:
            return f"{text}/{net.prefixlen}"
    where = f"ip-range {pool} of subnet {net}" if pool is not None else f"subnet {net}"
    raise AllocationError(f"no address left in {where}")


def mac_of(addr: str) -> str:
    """Docker's MAC for an IPv4 address: 02:42 and the four address bytes."""
    return model.mac_for(str(ipaddress.IPv4Address(bare(addr))))


def in_subnet(addr: str, net: Net) -> bool:
    try:
        return ipaddress.IPv4Address(bare(addr)) in net
    except ValueError:
        return False
