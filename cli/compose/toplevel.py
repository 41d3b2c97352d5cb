"""Validation of the top-level networks, volumes, secrets and configs.

Owns their keys and forms: networks (overlay only; driver_opts such as
`encrypted`, internal, ipam subnets (`attachable: true` refused: no standalone containers), labels, external, name),
volumes (driver, driver_opts, labels, external, name), and secrets and
configs (`file:` relative to the first compose file's folder, external, name,
labels). `external: {name: N}` is Docker's old spelling of `external: true`
with `name: N`; an external object without a name is named by its key (as Docker
fills it in). A key Shoal cannot represent is refused with the reason.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Callable, Optional, TypeVar

from cli.compose import rules
from cli.compose import values as v
from cli.compose.errors import Collector, ComposeError, Warnings, join_path
from cli.compose.model import FileObject, Network, Volume
from cli.compose.paths import absolute

ENCRYPTED = "encrypted"     # the one driver option of Shoal's overlay networks
MAX_PREFIX = 29             # a subnet holds a gateway, a VIP and tasks

T = TypeVar("T")


def read_section(raw: Any, path: str, read: Callable[[Any, str], T],
                 errors: Optional[Collector] = None,
                 placeholder: Optional[Callable[[], T]] = None) -> dict[str, T]:
    """A top-level section: a mapping of names to definitions (null: all defaults).
    With `errors`, each definition is checked on its own, its problems kept there and a
    refused one stands as `placeholder()` (so that the services naming it are not also
    refused for it); without, the first problem is raised."""
    out = {}
    for name, item in v.mapping(raw, path, any_key=True).items():
        if errors is None or placeholder is None:
            out[name] = read({} if item is None else item, join_path(path, name))
            continue
        out[name] = placeholder()
        with errors:
            out[name] = read({} if item is None else item, join_path(path, name))
    return out


def _name(path: str) -> str:
    """The object's key in its section (`networks.my.net` -> `my.net`)."""
    return path.split(".", 1)[-1]


def _external(section: dict[str, Any], path: str, warnings: Warnings,
              kind: str) -> tuple[bool, Optional[str]]:
    """(external, name) of an object, folding Docker's deprecated `external.name`."""
    name = v.optional(section, "name", path, v.string)
    if "external" not in section:
        return False, _own_name(name, path, kind)
    value = section["external"]
    ext_path = join_path(path, "external")
    if isinstance(value, dict):
        old = v.mapping(value, ext_path, ("name",), extensions=False)
        if "name" in old:
            if name is not None:
                raise ComposeError(f"{kind}.external.name and {kind}.name conflict; only use "
                                   f"{kind}.name", path=path)
            name = v.string(old["name"], join_path(ext_path, "name"))
            warnings.add(f"{kind} {_name(path)}: {kind}.external.name is "
                         f"deprecated in favor of {kind}.name")
        return True, name or _name(path)
    external = v.boolean(value, ext_path)
    return external, (name or _name(path)) if external else _own_name(name, path, kind)


def _own_name(name: Optional[str], path: str, kind: str) -> Optional[str]:
    """The `name:` a stack's own object is created with (an external's may be an ID)."""
    return None if name is None else rules.object_name(name, kind, join_path(path, "name"))


def _conflicts_with_external(section: dict[str, Any], path: str, keys: tuple[str, ...],
                             kind: str) -> None:
    for key in keys:
        if key in section:
            raise ComposeError(f'conflicting parameters "external" and "{key}" specified for '
                               f"{kind} {_name(path)}", path=join_path(path, key))


def read_network(raw: Any, path: str, warnings: Warnings) -> Network:
    section = v.mapping(raw, path, ("name", "driver", "driver_opts", "ipam", "external",
                                    "internal", "attachable", "labels", "enable_ipv6"))
    if "enable_ipv6" in section:
        raise v.not_supported("enable_ipv6", join_path(path, "enable_ipv6"),
                              "Shoal's overlay networks are IPv4")
    net = Network()
    net.external, net.name = _external(section, path, warnings, "network")
    if net.external:
        _conflicts_with_external(section, path, ("driver", "driver_opts", "ipam", "internal",
                                                 "attachable", "labels"), "network")
    if "driver" in section:
        net.driver = v.choice(section["driver"], join_path(path, "driver"), ("overlay",))
    if "driver_opts" in section:
        net.driver_opts = v.options(section["driver_opts"], join_path(path, "driver_opts"))
        for key in net.driver_opts:
            if key != ENCRYPTED:
                raise v.not_supported(f"network option {key}", join_path(
                    join_path(path, "driver_opts"), key), "Shoal's overlay driver takes only "
                    f"the option {ENCRYPTED}")
    if "internal" in section:
        net.internal = v.boolean(section["internal"], join_path(path, "internal"))
    if "attachable" in section and v.boolean(section["attachable"],
                                             join_path(path, "attachable")):
        raise v.not_supported("attachable", join_path(path, "attachable"),
                              "Shoal runs no standalone containers, so nothing attaches to a "
                              "network by hand (attachable: false is accepted)")
    if "labels" in section:
        net.labels = v.labels(section["labels"], join_path(path, "labels"))
    if "ipam" in section:
        net.subnets = _ipam(section["ipam"], join_path(path, "ipam"))
    return net


def _ipam(raw: Any, path: str) -> list[str]:
    section = v.mapping(raw, path, ("driver", "config"))
    if "driver" in section:
        v.choice(section["driver"], join_path(path, "driver"), ("default",))
    config_path = join_path(path, "config")
    items = section.get("config") or []
    if not isinstance(items, list):
        raise v.wrong(items, config_path, "a list of {subnet: ...} mappings")
    subnets = []
    for index, item in enumerate(items):
        item_path = join_path(config_path, index)
        pool = v.mapping(item, item_path, ("subnet",))
        if "subnet" not in pool:
            raise ComposeError('"subnet" is required', path=join_path(item_path, "subnet"))
        subnet = v.string(pool["subnet"], join_path(item_path, "subnet"))
        try:
            network = ipaddress.ip_network(subnet, strict=False)
        except ValueError:
            raise ComposeError(f'invalid subnet "{subnet}": expected a CIDR such as '
                               "10.0.9.0/24", path=join_path(item_path, "subnet")) from None
        if network.version != 4:
            raise v.not_supported("IPv6 subnets", join_path(item_path, "subnet"))
        if str(network) != subnet.strip():
            raise ComposeError(f'invalid subnet "{subnet}": its host bits must be 0, as in '
                               f"{network}", path=join_path(item_path, "subnet"))
        if network.prefixlen > MAX_PREFIX:
            raise ComposeError(f'invalid subnet "{subnet}": the prefix must be /{MAX_PREFIX} or '
                               "shorter (room for a gateway, a VIP and tasks)",
                               path=join_path(item_path, "subnet"))
        subnets.append(subnet)
    if len(subnets) > 1:
        raise v.not_supported("more than one subnet", config_path,
                              "a Shoal network has one subnet")
    return subnets


def read_volume(raw: Any, path: str, warnings: Warnings) -> Volume:
    section = v.mapping(raw, path, ("name", "driver", "driver_opts", "external", "labels",
                                    "x-cluster-spec"), extensions=False)
    for key in list(section):
        if key.startswith("x-") and key != "x-cluster-spec":
            del section[key]
    if "x-cluster-spec" in section:
        raise v.not_supported("x-cluster-spec", join_path(path, "x-cluster-spec"),
                              "Shoal's volumes are local to each node (no cluster volumes)")
    volume = Volume()
    volume.external, volume.name = _external(section, path, warnings, "volume")
    if volume.external:
        _conflicts_with_external(section, path, ("driver", "driver_opts", "labels"), "volume")
    volume.driver = v.optional(section, "driver", path, v.string)
    if "driver_opts" in section:
        volume.driver_opts = v.options(section["driver_opts"], join_path(path, "driver_opts"))
    if "labels" in section:
        volume.labels = v.labels(section["labels"], join_path(path, "labels"))
    return volume


def read_file_object(raw: Any, path: str, warnings: Warnings, kind: str,
                     workdir: str) -> FileObject:
    section = v.mapping(raw, path, ("name", "file", "external", "labels", "driver",
                                    "driver_opts", "template_driver"))
    for key in ("driver", "driver_opts", "template_driver"):
        if key in section:
            raise v.not_supported(key, join_path(path, key),
                                  f"a {kind}'s content comes from its file")
    obj = FileObject()
    obj.external, obj.name = _external(section, path, warnings, kind)
    if "labels" in section:
        obj.labels = v.labels(section["labels"], join_path(path, "labels"))
    if obj.external:
        if "file" in section:
            raise ComposeError(f'conflicting parameters "external" and "file" specified for '
                               f"{kind} {_name(path)}", path=join_path(path, "file"))
        return obj
    if "file" not in section:
        raise ComposeError(f'a {kind} needs "file" (a file of this client) or '
                           '"external: true"', path=path)
    obj.file = absolute(workdir, v.string(section["file"], join_path(path, "file")))
    return obj
