"""`swarm network ...`: create, ls, inspect, rm, prune.

Owns the network verbs on top of the Control API, with Docker's flags,
columns (`NETWORK ID  NAME  DRIVER  SCOPE`) and `network inspect` JSON
shape. Shoal has only swarm-scoped overlay networks, so Docker's local
`bridge`, `host` and `none` networks are not listed (`--network host` on a
service is still accepted, as a keyword). `inspect` shows, cluster-wide, the
tasks attached (under "Containers", keyed by task ID, with their node) and
the services with their VIPs (Docker shows these with `--verbose`). `prune`
removes the networks no service is attached to (never `ingress`), after asking
unless `-f`, keeping those its `--filter until=|label=|label!=` leave out. Pure
helpers build the request and the output; handlers do the calls.

`create` checks the address flags as Docker's CLI does (`--ip-range`,
`--gateway` and `--aux-address` each inside the one `--subnet`) before the
manager checks them again; `--scope` takes only `swarm`. A `--config-only`
network holds settings for `--config-from` networks: `ls` shows its driver
as `null` (as Docker does) and `inspect` its ConfigOnly/ConfigFrom.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import time
from typing import Iterable, Mapping, NamedTuple, Optional, Sequence


from cli import format as fmt
from cli.client import RpcFailure, code_name, describe_rpc_error
from cli.context import Context
from cli.parsing import UsageError, filter_values, label_matches, parse_filters
from cli.templates import render, tabulate
from cli.timevalues import parse_timestamp
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb

NETWORK_FIELDS = ("ID", "Name", "Driver", "Scope")
NETWORK_FILTERS = ("driver", "id", "label", "name", "scope", "type")
VXLAN_OPTION = "com.docker.network.driver.overlay.vxlanid_list"
ENCRYPTED = "encrypted"
SWARM_SCOPE = "swarm"
CONFIG_ONLY_DRIVER = "null"  # Docker's driver name for configuration-only networks
# The one path encrypted overlays take here (no ESP/xfrm in these kernels): worker/overlay_net.
ENCRYPTION_PATH = "userspace tunnel: AES-256-GCM over UDP 4790 (no IPsec ESP)"


# ----------------------------------------------------------------- create ----

def _key_values(items: Iterable[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not key:
            raise UsageError(f'invalid {flag} "{item}": expected key=value')
        out[key] = value if sep else ""
    return out


def _check_scope(ns: argparse.Namespace) -> None:
    scope = ns.scope
    if scope is None:
        return
    if scope != SWARM_SCOPE:
        raise UsageError(f'--scope "{scope}" is not supported: Shoal\'s networks are overlays, '
                         "which are swarm-scoped (give --scope swarm or leave it out)")
    if ns.config_only:
        raise UsageError("a configuration-only network cannot have a --scope: it only holds "
                         "settings (--subnet, --gateway, --ip-range, --aux-address, --opt)")


def _ipv4_net(text: str, flag: str, example: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise UsageError(f'invalid {flag} "{text}": expected a CIDR such as {example}') from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise UsageError(f'invalid {flag} "{text}": only IPv4 is supported')
    return net


def _aux_addresses(items: Sequence[str], subnet: ipaddress.IPv4Network) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not name or not sep:
            raise UsageError(f'invalid --aux-address "{item}": expected name=IP, such as '
                             "router=10.10.0.2")
        try:
            addr = ipaddress.IPv4Address(value.strip())
        except ValueError:
            raise UsageError(f'invalid --aux-address "{item}": expected an IPv4 address '
                             "after the =") from None
        if addr not in subnet:
            raise UsageError(f"no matching subnet for aux-address {addr}: it must be inside "
                             f"--subnet {subnet}")
        out[name] = str(addr)
    return out


def _ipam(ns: argparse.Namespace, spec: pb.NetworkSpec) -> None:
    """Adds the --subnet (with its --gateway, --ip-range, --aux-address) to `spec`."""
    subnets = list(ns.subnet or [])
    gateways = list(ns.gateway or [])
    ranges = list(ns.ip_range or [])
    aux = list(ns.aux_address or [])
    if len(subnets) > 1:
        raise UsageError("only one --subnet per network is supported")
    for flag, given in (("--gateway", gateways), ("--ip-range", ranges),
                        ("--aux-address", aux)):
        if given and not subnets:
            raise UsageError(f"{flag} needs --subnet: give the subnet it belongs to")
    if len(gateways) > 1:
        raise UsageError("only one --gateway per network is supported")
    if not subnets:
        return
    subnet = subnets[0]
    net = _ipv4_net(subnet, "--subnet", "10.10.0.0/24")
    conf = spec.ipam.add(subnet=subnet, gateway=gateways[0] if gateways else "")
    if len(ranges) > 1:
        raise UsageError(f"cannot configure multiple ranges ({ranges[0]}, {ranges[1]}) on "
                         f"the same subnet ({subnet})")
    if ranges:
        rng = _ipv4_net(ranges[0], "--ip-range", "10.10.0.128/25")
        if not rng.subnet_of(net):
            raise UsageError(f"no matching subnet for range {ranges[0]}: it must be inside "
                             f"--subnet {subnet}")
        conf.range = ranges[0]
    conf.aux_addresses.update(_aux_addresses(aux, net))


def create_spec(ns: argparse.Namespace) -> pb.NetworkSpec:
    """The NetworkSpec `network create` sends, or UsageError."""
    driver = ns.driver or "overlay"
    if driver != "overlay":
        raise UsageError(f'network driver "{driver}" is not supported: Shoal has only '
                         "swarm-scoped overlay networks (-d overlay)")
    _check_scope(ns)
    spec = pb.NetworkSpec(driver="overlay",
                          ingress=bool(ns.ingress), internal=bool(ns.internal),
                          config_only=bool(ns.config_only), config_from=ns.config_from or "")
    spec.annotations.name = ns.name
    spec.annotations.labels.update(_key_values(ns.label, "--label"))
    spec.driver_options.update(_key_values(ns.opt, "--opt"))
    _ipam(ns, spec)
    return spec


def create(ctx: Context, ns: argparse.Namespace) -> int:
    spec = create_spec(ns)
    network = ctx.call("CreateNetwork", cpb.CreateNetworkRequest(spec=spec)).network
    ctx.print(network.id)
    return 0


# --------------------------------------------------------------------- ls ----

def driver_of(network: pb.Network) -> str:
    """The driver `ls` and `inspect` show: `null` for a config-only network, as Docker."""
    if network.spec.config_only:
        return CONFIG_ONLY_DRIVER
    return network.spec.driver or "overlay"


def network_row(network: pb.Network, trunc: bool = True) -> dict[str, str]:
    return {"ID": fmt.truncate_id(network.id) if trunc else network.id,
            "Name": network.spec.annotations.name,
            "Driver": driver_of(network),
            "Scope": SWARM_SCOPE}


def network_table(rows: Sequence[Mapping[str, str]]) -> str:
    """`network ls`' default table, headed NETWORK ID as Docker's."""
    body = [["NETWORK ID", "NAME", "DRIVER", "SCOPE"]]
    body += [[r[f] for f in NETWORK_FIELDS] for r in rows]
    return tabulate(body)


def matches(network: pb.Network, filters) -> bool:
    labels = dict(network.spec.annotations.labels)
    for f in filters:
        if f.key == "name" and f.value not in network.spec.annotations.name:
            return False
        if f.key == "id" and not network.id.startswith(f.value):
            return False
        if f.key == "driver" and f.value != driver_of(network):
            return False
        if f.key == "scope" and f.value != "swarm":
            return False
        if f.key == "type" and f.value not in ("custom", "builtin"):
            raise UsageError(f'invalid filter "type={f.value}": expected custom or builtin')
        if f.key == "type" and f.value == "builtin":
            return False  # Shoal has no predefined networks (Docker's bridge, host, none)
        if f.key == "label" and not label_matches(labels, f.value):
            return False
    return True


def ls(ctx: Context, ns: argparse.Namespace) -> int:
    filters = parse_filters(ns.filter, NETWORK_FILTERS)
    request = cpb.ListFilters(id_prefixes=filter_values(filters, "id"))
    networks = ctx.call("ListNetworks", cpb.ListNetworksRequest(filters=request)).networks
    networks = sorted((n for n in networks if matches(n, filters)),
                      key=lambda n: n.spec.annotations.name)
    trunc = not ns.no_trunc
    if ns.quiet:
        for n in networks:
            ctx.print(fmt.truncate_id(n.id) if trunc else n.id)
        return 0
    rows = [network_row(n, trunc) for n in networks]
    text = render(ns.format, rows, NETWORK_FIELDS, NETWORK_FIELDS, table=network_table)
    if text:
        ctx.print(text)
    return 0


# ---------------------------------------------------------------- inspect ----

def _created(network: pb.Network) -> str:
    ts = network.meta.created_at
    return ts.ToJsonString() if ts.seconds or ts.nanos else ""


def ipam_config(conf: pb.IPAMConfig) -> dict:
    """One entry of IPAM.Config as Docker shows it (empty fields left out)."""
    out: dict = {}
    for key, value in (("Subnet", conf.subnet), ("IPRange", conf.range),
                       ("Gateway", conf.gateway),
                       ("AuxiliaryAddresses", dict(sorted(conf.aux_addresses.items())))):
        if value:
            out[key] = value
    return out


def inspect_dict(network: pb.Network, tasks: Sequence[pb.Task],
                 services: Sequence[pb.Service], nodes: Mapping[str, pb.Node]) -> dict:
    """Docker's `network inspect` object for one network, with its tasks and services."""
    containers: dict[str, dict] = {}
    peers: dict[str, dict] = {}
    by_service: dict[str, list[dict]] = {}
    for task in sorted(tasks, key=lambda t: t.annotations.name):
        if model.is_terminal(task.status.state):
            continue
        for att in task.networks:
            if att.network_id != network.id or not att.addresses:
                continue
            node = nodes.get(task.node_id)
            host = model.node_addr(node) if node is not None else ""
            addr = att.addresses[0]
            containers[task.id] = {
                "Name": f"{task.annotations.name}.{task.id}",
                "EndpointID": "",
                "MacAddress": model.mac_for(addr),
                "IPv4Address": addr,
                "IPv6Address": "",
                "Node": node.description.hostname if node is not None else task.node_id,
                "State": model.state_name(task.status.state),
            }
            by_service.setdefault(task.service_id, []).append({
                "Name": f"{task.annotations.name}.{task.id}",
                "EndpointIP": addr.split("/", 1)[0],
                "Info": {"Host IP": host}})
            if node is not None:
                peers[node.id] = {"Name": node.description.hostname or node.id, "IP": host}
    for node in nodes.values():  # routing-mesh sandboxes: every node with an ingress address
        for att in node.attachments:
            if att.network_id == network.id and att.addresses:
                peers.setdefault(node.id, {"Name": node.description.hostname or node.id,
                                           "IP": model.node_addr(node)})
    service_info: dict[str, dict] = {}
    for svc in sorted(services, key=lambda s: s.spec.annotations.name):
        vip = next((v.addr for v in svc.endpoint.virtual_ips if v.network_id == network.id), "")
        attached = any(a.target == network.id for a in svc.spec.task.networks)
        if not (vip or attached or svc.id in by_service):
            continue
        service_info[svc.spec.annotations.name] = {
            "VIP": vip.split("/", 1)[0],
            "Ports": [fmt.ports_column([p]) for p in svc.endpoint.ports
                      if network.spec.ingress],
            "Tasks": by_service.get(svc.id, []),
        }
    options = dict(network.spec.driver_options)
    if not network.spec.config_only:
        options[VXLAN_OPTION] = str(network.vni)
    # a config-only network has nothing allocated: it shows the settings it holds
    configs = network.spec.ipam if network.spec.config_only else network.ipam
    return {
        "Name": network.spec.annotations.name,
        "Id": network.id,
        "Created": _created(network),
        "Scope": SWARM_SCOPE,
        "Driver": driver_of(network),
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None,
                 "Config": [ipam_config(c) for c in configs]},
        "Internal": network.spec.internal,
        "Attachable": network.spec.attachable,
        "Ingress": network.spec.ingress,
        "ConfigFrom": {"Network": network.spec.config_from},
        "ConfigOnly": network.spec.config_only,
        "Containers": containers,
        "Options": options,
        "Labels": dict(network.spec.annotations.labels),
        "Peers": [peers[k] for k in sorted(peers)],
        "Services": service_info,
        **({"Encryption": ENCRYPTION_PATH} if ENCRYPTED in network.spec.driver_options else {}),
    }


def inspect(ctx: Context, ns: argparse.Namespace) -> int:
    found: list[pb.Network] = []
    status = 0
    for ref in ns.networks:
        try:
            found.append(ctx.call("GetNetwork", cpb.GetNetworkRequest(network_id=ref)).network)
        except RpcFailure as exc:
            ctx.warn(describe_rpc_error(exc, ctx.host, ctx.debug))
            status = 1
    if found:
        tasks = list(ctx.call("ListTasks", cpb.ListTasksRequest()).tasks)
        services = list(ctx.call("ListServices", cpb.ListServicesRequest()).services)
        nodes = {n.id: n for n in ctx.nodes()}
        data = [inspect_dict(n, tasks, services, nodes) for n in found]
        if ns.format:
            text = render(ns.format, data, (), tuple(data[0]))
            if text:
                ctx.print(text)
        else:
            ctx.print(json.dumps(data, indent=4, ensure_ascii=False))
    elif status == 0:
        ctx.print("[]")
    return status


# --------------------------------------------------------------------- rm ----

def remove(ctx: Context, ns: argparse.Namespace) -> int:
    status = 0
    for ref in ns.networks:
        def remove_one(ref: str = ref) -> None:
            ctx.call("RemoveNetwork", cpb.RemoveNetworkRequest(network_id=ref))
        if ctx.attempt(remove_one):
            ctx.print(ref)
        else:
            status = 1
    return status


# ------------------------------------------------------------------ prune ----

PRUNE_FILTERS = ("until", "label", "label!")
PRUNE_WARNING = ("WARNING! This will remove all custom networks not used by at least one "
                 "service.\nAre you sure you want to continue? [y/N] ")


class PruneFilter(NamedTuple):
    """`network prune --filter`: what a network must be to be pruned."""

    until: Optional[int]          # created at or before (unix nanoseconds), None: any time
    labels: tuple[str, ...]       # label=KEY[=VALUE]: every one matches
    not_labels: tuple[str, ...]   # label!=KEY[=VALUE]: not every one matches (Docker's rule)


def prune_filter(items: Iterable[str], now_nano: int) -> PruneFilter:
    """The --filter values of `network prune`, or UsageError."""
    filters = parse_filters(items, PRUNE_FILTERS)
    untils = filter_values(filters, "until")
    if len(untils) > 1:
        raise UsageError("more than one until filter specified: give one --filter until=")
    until = parse_timestamp(untils[0], now_nano, "--filter until") if untils else None
    return PruneFilter(until, tuple(filter_values(filters, "label")),
                       tuple(filter_values(filters, "label!")))


def prune_candidates(networks: Iterable[pb.Network], services: Iterable[pb.Service],
                     wanted: PruneFilter) -> list[pb.Network]:
    """The networks `network prune` removes, by name: not ingress, attached to no
    service, and chosen by the filter."""
    used = {a.target for s in services for a in s.spec.task.networks}
    out = []
    for net in networks:
        labels = dict(net.spec.annotations.labels)
        created = net.meta.created_at.seconds * 1_000_000_000 + net.meta.created_at.nanos
        if (net.spec.ingress or net.id in used or net.spec.annotations.name in used
                or (wanted.until is not None and created > wanted.until)
                or not all(label_matches(labels, v) for v in wanted.labels)
                or (wanted.not_labels
                    and all(label_matches(labels, v) for v in wanted.not_labels))):
            continue
        out.append(net)
    return sorted(out, key=lambda n: n.spec.annotations.name)


def confirmed(ctx: Context) -> bool:
    """Asks as Docker does; only "y" (or "Y") goes on, end of input says no."""
    ctx.out.write(PRUNE_WARNING)
    ctx.out.flush()
    return sys.stdin.readline().strip().lower() == "y"


def prune(ctx: Context, ns: argparse.Namespace) -> int:
    wanted = prune_filter(ns.filter, time.time_ns())   # a bad filter: refused before asking
    if not ns.force and not confirmed(ctx):
        return 0
    networks = ctx.call("ListNetworks", cpb.ListNetworksRequest()).networks
    services = ctx.call("ListServices", cpb.ListServicesRequest()).services
    deleted: list[str] = []
    status = 0
    for net in prune_candidates(networks, services, wanted):
        try:
            ctx.call("RemoveNetwork", cpb.RemoveNetworkRequest(network_id=net.id))
        except RpcFailure as exc:
            # attached since the listing, or held by stopping tasks: not unused, kept
            if code_name(exc) not in ("FAILED_PRECONDITION", "NOT_FOUND"):
                ctx.warn(f"could not remove network {net.spec.annotations.name}: "
                         + describe_rpc_error(exc, ctx.host, ctx.debug))
                status = 1
            continue
        deleted.append(net.spec.annotations.name)
    if deleted:
        ctx.print("Deleted Networks:\n" + "".join(f"{name}\n" for name in deleted))
    return status


# ---------------------------------------------------------------- parser ----

def declare_network(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm network create|ls|inspect|rm|prune` on `parser`."""
    nsub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    nsub.required = True

    p = nsub.add_parser("create", help="Create a network")
    p.add_argument("-d", "--driver", default="overlay",
                   help='Driver to manage the Network (default "overlay")')
    p.add_argument("--subnet", action="append", default=[],
                   help="Subnet in CIDR format that represents a network segment")
    p.add_argument("--gateway", action="append", default=[],
                   help="IPv4 Gateway for the master subnet")
    p.add_argument("--ip-range", action="append", default=[],
                   help="Allocate container ip from a sub-range")
    p.add_argument("--aux-address", action="append", default=[], metavar="name=IP",
                   help="Auxiliary IPv4 addresses the allocator must not hand out")
    p.add_argument("--scope", default=None,
                   help='Control the network\'s scope (only "swarm": overlays are '
                        "swarm-scoped)")
    p.add_argument("--config-only", action="store_true",
                   help="Create a configuration only network")
    p.add_argument("--config-from", default=None,
                   help="The network from which to copy the configuration")
    p.add_argument("--ingress", action="store_true",
                   help="Create swarm routing-mesh network")
    p.add_argument("--internal", action="store_true",
                   help="Restrict external access to the network")
    p.add_argument("-o", "--opt", action="append", default=[],
                   help="Set driver specific options (e.g. encrypted)")
    p.add_argument("--label", action="append", default=[],
                   help="Set metadata on a network")
    p.add_argument("name", metavar="NETWORK")
    p.set_defaults(handler=create)

    p = nsub.add_parser("ls", aliases=["list"], help="List networks")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display network IDs")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="Provide filter values (e.g. 'driver=overlay')")
    p.add_argument("--format", default=None,
                   help='Format output: "table" (default), "json", or a Go template')
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate the output")
    p.set_defaults(handler=ls)

    p = nsub.add_parser("inspect", help="Display detailed information on one or more networks")
    p.add_argument("-f", "--format", default=None, help="Format output using a template")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="Verbose output for diagnostics (services and tasks are always shown)")
    p.add_argument("networks", nargs="+", metavar="NETWORK")
    p.set_defaults(handler=inspect)

    p = nsub.add_parser("rm", aliases=["remove"], help="Remove one or more networks")
    p.add_argument("networks", nargs="+", metavar="NETWORK")
    p.set_defaults(handler=remove)

    p = nsub.add_parser("prune", help="Remove all unused networks")
    p.add_argument("--filter", action="append", default=[],
                   help="Provide filter values (e.g. 'until=<timestamp>', 'label=KEY=VALUE')")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.set_defaults(handler=prune)
