"""The merged stack as `docker stack config` prints it.

Owns the shape of that YAML: `version` first, then services, networks,
volumes, secrets and configs (empty sections left out); each object's keys in
the order of Docker's compose types (not sorted), mappings of names sorted,
unset values left out, durations as Go prints them (`1m30s`), memory sizes as
byte counts in strings, a port always in its long form, 2-space indentation
with list items indented under their key (as Docker's YAML encoder does).
"""
from __future__ import annotations

from typing import Any, Optional

import yaml

from cli.compose.interpolate import Interpolated
from cli.compose.model import (Deploy, FileObject, FileRef, Healthcheck, Network, Placement,
                               Resources, RestartPolicy, Service, ServiceMount, Stack,
                               UpdateConfig, Volume)
from cli.parsing import format_duration

Doc = dict[str, Any]


def _put(doc: Doc, key: str, value: Any) -> None:
    """Sets doc[key] unless the value is unset or empty (Go's omitempty)."""
    if value is None or value == [] or value == {} or value is False or value == "":
        return
    doc[key] = value


def _dur(nanos: Optional[int]) -> Optional[str]:
    return None if nanos is None else format_duration(nanos)


def _sorted(mapping: dict[str, Any]) -> Doc:
    return {key: mapping[key] for key in sorted(mapping)}


def _update(cfg: Optional[UpdateConfig]) -> Optional[Doc]:
    if cfg is None:
        return None
    doc: Doc = {}
    _put(doc, "parallelism", cfg.parallelism)
    _put(doc, "delay", _dur(cfg.delay))
    _put(doc, "failure_action", cfg.failure_action)
    _put(doc, "monitor", _dur(cfg.monitor))
    _put(doc, "max_failure_ratio", cfg.max_failure_ratio)
    _put(doc, "order", cfg.order)
    return doc


def _resources(res: Optional[Resources]) -> Optional[Doc]:
    if res is None:
        return None
    doc: Doc = {}
    _put(doc, "cpus", res.cpus)
    _put(doc, "memory", None if res.memory is None else str(res.memory))
    _put(doc, "pids", res.pids or None)           # Go omits 0
    return doc


def _restart(policy: Optional[RestartPolicy]) -> Optional[Doc]:
    if policy is None:
        return None
    doc: Doc = {}
    _put(doc, "condition", policy.condition)
    _put(doc, "delay", _dur(policy.delay))
    _put(doc, "max_attempts", policy.max_attempts)
    _put(doc, "window", _dur(policy.window))
    return doc


def _placement(placement: Optional[Placement]) -> Optional[Doc]:
    if placement is None:
        return None
    doc: Doc = {}
    _put(doc, "constraints", placement.constraints)
    _put(doc, "preferences", [{"spread": s} for s in placement.preferences or ()])
    _put(doc, "max_replicas_per_node", placement.max_replicas_per_node)
    return doc


def _deploy(deploy: Deploy) -> Doc:
    doc: Doc = {}
    _put(doc, "mode", deploy.mode)
    _put(doc, "replicas", deploy.replicas)
    _put(doc, "labels", _sorted(deploy.labels))
    _put(doc, "update_config", _update(deploy.update_config))
    _put(doc, "rollback_config", _update(deploy.rollback_config))
    resources: Doc = {}
    _put(resources, "limits", _resources(deploy.limits))
    _put(resources, "reservations", _resources(deploy.reservations))
    _put(doc, "resources", resources)
    _put(doc, "restart_policy", _restart(deploy.restart_policy))
    _put(doc, "placement", _placement(deploy.placement))
    _put(doc, "endpoint_mode", deploy.endpoint_mode)
    return doc


def _healthcheck(check: Optional[Healthcheck]) -> Optional[Doc]:
    if check is None:
        return None
    doc: Doc = {}
    _put(doc, "test", check.test)
    _put(doc, "timeout", _dur(check.timeout))
    _put(doc, "interval", _dur(check.interval))
    _put(doc, "retries", check.retries)
    _put(doc, "start_period", _dur(check.start_period))
    _put(doc, "start_interval", _dur(check.start_interval))
    _put(doc, "disable", check.disable)
    return doc


def _ref(ref: FileRef) -> Doc:
    doc: Doc = {"source": ref.source}
    _put(doc, "target", ref.target)
    _put(doc, "uid", ref.uid)
    _put(doc, "gid", ref.gid)
    if ref.mode is not None:
        doc["mode"] = ref.mode
    return doc


def _mount(mount: ServiceMount) -> Doc:
    doc: Doc = {"type": mount.type}
    _put(doc, "source", mount.source)
    doc["target"] = mount.target
    _put(doc, "read_only", mount.read_only)
    if mount.propagation:
        doc["bind"] = {"propagation": mount.propagation}
    if mount.nocopy is not None:
        doc["volume"] = {"nocopy": mount.nocopy}
    tmpfs: Doc = {}
    _put(tmpfs, "size", mount.tmpfs_size)
    _put(tmpfs, "mode", mount.tmpfs_mode)
    _put(doc, "tmpfs", tmpfs)
    return doc


def service_doc(svc: Service) -> Doc:
    doc: Doc = {}
    _put(doc, "cap_add", svc.cap_add)
    _put(doc, "cap_drop", svc.cap_drop)
    _put(doc, "command", svc.command)
    _put(doc, "configs", [_ref(r) for r in svc.configs or ()])
    _put(doc, "deploy", _deploy(svc.deploy))
    _put(doc, "dns", svc.dns)
    _put(doc, "dns_opt", svc.dns_opt)
    _put(doc, "dns_search", svc.dns_search)
    _put(doc, "entrypoint", svc.entrypoint)
    _put(doc, "environment", _sorted(svc.environment))
    _put(doc, "env_file", svc.env_file)
    _put(doc, "extra_hosts", svc.extra_hosts)
    _put(doc, "group_add", svc.group_add)
    _put(doc, "hostname", svc.hostname)
    _put(doc, "healthcheck", _healthcheck(svc.healthcheck))
    _put(doc, "image", svc.image)
    if svc.init is not None:
        doc["init"] = svc.init
    _put(doc, "labels", _sorted(svc.labels))
    if svc.logging is not None:
        logging: Doc = {}
        _put(logging, "driver", svc.logging.driver)
        _put(logging, "options", _sorted(svc.logging.options))
        doc["logging"] = logging
    if svc.networks is not None:
        doc["networks"] = {name: (None if att is None or att.aliases is None
                                  else {"aliases": att.aliases})
                           for name, att in sorted(svc.networks.items())}
    _put(doc, "ports", [_port(p) for p in svc.ports or ()])
    _put(doc, "read_only", svc.read_only)
    _put(doc, "secrets", [_ref(r) for r in svc.secrets or ()])
    _put(doc, "oom_score_adj", svc.oom_score_adj or None)
    _put(doc, "stop_grace_period", _dur(svc.stop_grace_period))
    _put(doc, "stop_signal", svc.stop_signal)
    _put(doc, "sysctls", _sorted(svc.sysctls))
    _put(doc, "tmpfs", svc.tmpfs)
    _put(doc, "tty", svc.tty)
    _put(doc, "ulimits", {name: (u.soft if u.single else {"soft": u.soft, "hard": u.hard})
                          for name, u in sorted(svc.ulimits.items())})
    _put(doc, "user", svc.user)
    _put(doc, "volumes", [_mount(m) for m in svc.volumes or ()])
    _put(doc, "working_dir", svc.working_dir)
    return doc


def _port(port: Any) -> Doc:
    doc: Doc = {"mode": port.mode, "target": port.target}
    _put(doc, "published", port.published)
    doc["protocol"] = port.protocol
    return doc


def _network(net: Network) -> Doc:
    doc: Doc = {}
    _put(doc, "name", net.name)
    _put(doc, "driver", net.driver)
    _put(doc, "driver_opts", _sorted(net.driver_opts))
    if net.subnets:
        doc["ipam"] = {"config": [{"subnet": s} for s in net.subnets]}
    _put(doc, "external", net.external)
    _put(doc, "internal", net.internal)
    _put(doc, "labels", _sorted(net.labels))
    return doc


def _volume(volume: Volume) -> Doc:
    doc: Doc = {}
    _put(doc, "name", volume.name)
    _put(doc, "driver", volume.driver)
    _put(doc, "driver_opts", _sorted(volume.driver_opts))
    _put(doc, "external", volume.external)
    _put(doc, "labels", _sorted(volume.labels))
    return doc


def _file_object(obj: FileObject) -> Doc:
    doc: Doc = {}
    _put(doc, "name", obj.name)
    _put(doc, "file", obj.file)
    _put(doc, "external", obj.external)
    _put(doc, "labels", _sorted(obj.labels))
    return doc


def stack_doc(stack: Stack) -> Doc:
    doc: Doc = {"version": stack.version,
                "services": {name: service_doc(stack.services[name])
                             for name in sorted(stack.services)}}
    _put(doc, "networks", {k: _network(x) for k, x in sorted(stack.networks.items())})
    _put(doc, "volumes", {k: _volume(x) for k, x in sorted(stack.volumes.items())})
    _put(doc, "secrets", {k: _file_object(x) for k, x in sorted(stack.secrets.items())})
    _put(doc, "configs", {k: _file_object(x) for k, x in sorted(stack.configs.items())})
    return doc


class _Dumper(yaml.SafeDumper):
    """Indents list items under their key and double-quotes the strings it must quote."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def choose_scalar_style(self) -> Any:
        style = super().choose_scalar_style()
        return '"' if style == "'" else style


_Dumper.add_representer(Interpolated, yaml.SafeDumper.represent_str)


def render(stack: Stack) -> str:
    return yaml.dump(stack_doc(stack), Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False, allow_unicode=True, indent=2, width=1 << 16)
