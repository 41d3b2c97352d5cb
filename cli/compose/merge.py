"""Merging the stacks of several `-c` files, in order, as Docker merges them.

Owns the rules (docker/cli's compose loader): a service named in a later file
is merged into the earlier one; a scalar the later file gives overrides;
mappings (environment, labels, sysctls, ulimits, networks, deploy.labels,
logging options) merge key by key; lists append (dns, cap_add, extra_hosts,
tmpfs, env_file, placement constraints and preferences ...), except that
`command`, `entrypoint` and `healthcheck.test` are replaced and that ports,
secrets, configs and volumes merge by key: secrets and configs by source,
volumes by target, ports by published port and protocol (a port without a
published port by its target and protocol; Docker keys ports by the published
port alone, which folds unpublished ports and tcp/udp pairs together). A
network's aliases are replaced; logging options merge when the driver is the
same (or unset), otherwise the later logging replaces it. Top-level networks,
volumes, secrets and configs are replaced entry by entry.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable, Hashable, Optional, TypeVar

from cli.compose.model import (Deploy, FileRef, Logging, Placement, Port, Service,
                               ServiceMount, Stack)

T = TypeVar("T")
_APPENDED = ("dns", "dns_search", "dns_opt", "group_add", "extra_hosts", "cap_add",
             "cap_drop", "tmpfs", "env_file")
_MAPPINGS = ("environment", "labels", "sysctls", "ulimits")
_REPLACED = ("command", "entrypoint")


def merge_stacks(stacks: list[Stack]) -> Stack:
    base = copy.deepcopy(stacks[0])
    for over in stacks[1:]:
        for name, service in over.services.items():
            if name in base.services:
                merge_service(base.services[name], service)
            else:
                base.services[name] = copy.deepcopy(service)
        for section in ("networks", "volumes", "secrets", "configs"):
            getattr(base, section).update(copy.deepcopy(getattr(over, section)))
        base.files.extend(over.files)
    return base


def merge_fields(base: Any, over: Any) -> None:
    """Field by field: what `over` gives (not None, not empty/False) replaces `base`'s."""
    for f in dataclasses.fields(base):
        value = getattr(over, f.name)
        if value is None or value is False or value == {}:
            continue
        current = getattr(base, f.name)
        if isinstance(value, dict) and isinstance(current, dict):
            current.update(copy.deepcopy(value))
        elif dataclasses.is_dataclass(value) and current is not None:
            merge_fields(current, value)
        else:
            setattr(base, f.name, copy.deepcopy(value))


def _keyed(base: Optional[list[T]], over: Optional[list[T]],
           key: Callable[[T], Hashable]) -> Optional[list[T]]:
    if over is None:
        return base
    merged = {key(item): item for item in base or ()}
    for item in over:
        merged[key(item)] = copy.deepcopy(item)
    return list(merged.values())


def _port_key(port: Port) -> Hashable:
    if port.published:
        return ("published", port.published, port.protocol)
    return ("target", port.target, port.protocol)


def _ref_key(ref: FileRef) -> Hashable:
    return ref.source


def _mount_key(mount: ServiceMount) -> Hashable:
    return mount.target


def merge_service(base: Service, over: Service) -> None:
    for name in _APPENDED:
        extra = getattr(over, name)
        if extra is not None:
            setattr(base, name, (getattr(base, name) or []) + list(extra))
    for name in _MAPPINGS:
        getattr(base, name).update(copy.deepcopy(getattr(over, name)))
    for name in _REPLACED:
        if getattr(over, name) is not None:
            setattr(base, name, list(getattr(over, name)))
    for name in ("image", "hostname", "user", "working_dir", "init", "read_only", "tty",
                 "stop_signal", "stop_grace_period", "oom_score_adj"):
        if getattr(over, name) is not None:
            setattr(base, name, getattr(over, name))
    base.ports = _keyed(base.ports, over.ports, _port_key)
    base.secrets = _keyed(base.secrets, over.secrets, _ref_key)
    base.configs = _keyed(base.configs, over.configs, _ref_key)
    base.volumes = _keyed(base.volumes, over.volumes, _mount_key)
    if over.networks is not None:
        networks = dict(base.networks or {})
        for name, attachment in over.networks.items():
            if attachment is not None or name not in networks:
                networks[name] = copy.deepcopy(attachment)
        base.networks = networks
    if over.healthcheck is not None:
        if base.healthcheck is None:
            base.healthcheck = copy.deepcopy(over.healthcheck)
        else:
            merge_fields(base.healthcheck, over.healthcheck)
    base.logging = _merge_logging(base.logging, over.logging)
    _merge_deploy(base.deploy, over.deploy)


def _merge_logging(base: Optional[Logging], over: Optional[Logging]) -> Optional[Logging]:
    if over is None:
        return base
    if base is None or (base.driver and over.driver and base.driver != over.driver):
        return copy.deepcopy(over)
    merged = copy.deepcopy(base)
    merged.driver = over.driver or base.driver
    merged.options.update(over.options)
    return merged


def _merge_deploy(base: Deploy, over: Deploy) -> None:
    placement_over = over.placement
    rest = dataclasses.replace(over, placement=None)
    merge_fields(base, rest)
    if placement_over is None:
        return
    if base.placement is None:
        base.placement = copy.deepcopy(placement_over)
        return
    placement: Placement = base.placement
    for name in ("constraints", "preferences"):
        extra = getattr(placement_over, name)
        if extra is not None:
            setattr(placement, name, (getattr(placement, name) or []) + list(extra))
    if placement_over.max_replicas_per_node is not None:
        placement.max_replicas_per_node = placement_over.max_replicas_per_node
