"""Building service specs from `swarm service create|update` arguments.

Owns the translation of an argparse namespace (declared in `cli.flags`) into
a `ServiceSpec`: `create_spec(ns)` starts from Docker's defaults,
`update_spec(current, ns)` edits a copy of the spec read from the manager.
Pure functions: every malformed value raises `UsageError` before any call
(`service update` runs `check_values` before it reads the service).
As in Docker, the COMMAND after IMAGE becomes ContainerSpec.args and
--entrypoint becomes ContainerSpec.command.
"""
from __future__ import annotations

import argparse
import functools
import itertools
import shlex
from typing import Any, Callable, Iterable, Mapping, Optional, TypeVar

from cli import containeropts as copts
from cli.envfile import merge_env, read_env_files
from cli.flags import is_on
from cli.mounts import create_mounts, parse_mount, update_mounts
from cli.parsing import (INT32_MAX, INT64_MAX, UINT64_MAX, UsageError, expand_env,
                         parse_config_ref, parse_cpus, parse_duration, parse_int, parse_kv,
                         parse_network, parse_placement_pref, parse_publish, parse_ratio,
                         parse_replicas, parse_secret_ref, parse_size, parse_uint,
                         validate_constraint)
from proto import genericres
from proto import objects_pb2 as pb

T = TypeVar("T")

_RESTART_CONDITIONS = {"any": pb.RestartPolicy.ANY, "none": pb.RestartPolicy.NONE,
                       "on-failure": pb.RestartPolicy.ON_FAILURE}
_FAILURE_ACTIONS = {"pause": pb.UpdateConfig.PAUSE, "continue": pb.UpdateConfig.CONTINUE,
                    "rollback": pb.UpdateConfig.ROLLBACK}
_ORDERS = {"stop-first": pb.UpdateConfig.STOP_FIRST, "start-first": pb.UpdateConfig.START_FIRST}
_ENDPOINT_MODES = {"vip": pb.EndpointSpec.VIP, "dnsrr": pb.EndpointSpec.DNSRR}
DEFAULT_MONITOR_NS = 5 * 10**9


def _duration(flag: str) -> Callable[[str], int]:
    return functools.partial(parse_duration, flag=flag)


def _count(flag: str, what: str, maximum: int = UINT64_MAX) -> Callable[[str], int]:
    return functools.partial(parse_uint, flag=flag, what=what, maximum=maximum)


# The number, size and duration flags of `service create` and `update`: namespace
# attribute -> the parser of its text, which refuses a value outside the range of the
# spec field it goes to (cli.parsing). The one place each is parsed: `_apply_*` build
# the spec with them, `check_values` runs them before `service update` reads the service.
SCALARS: dict[str, Callable[[str], Any]] = {
    "replicas": parse_replicas,
    "max_concurrent": _count("--max-concurrent", "max-concurrent value"),
    "stop_grace_period": _duration("--stop-grace-period"),
    "limit_cpu": functools.partial(parse_cpus, flag="--limit-cpu"),
    "reserve_cpu": functools.partial(parse_cpus, flag="--reserve-cpu"),
    "limit_memory": functools.partial(parse_size, flag="--limit-memory"),
    "reserve_memory": functools.partial(parse_size, flag="--reserve-memory"),
    "restart_delay": _duration("--restart-delay"),
    "restart_max_attempts": _count("--restart-max-attempts", "max attempts"),
    "restart_window": _duration("--restart-window"),
    "replicas_max_per_node": _count("--replicas-max-per-node", "value"),
    "health_interval": _duration("--health-interval"),
    "health_timeout": _duration("--health-timeout"),
    "health_start_period": _duration("--health-start-period"),
    "health_start_interval": _duration("--health-start-interval"),
    "health_retries": _count("--health-retries", "retries", INT32_MAX),   # an int32 field
    "limit_pids": functools.partial(parse_int, flag="--limit-pids", minimum=0, maximum=INT64_MAX,
                                    note="0 = unlimited"),
    "oom_score_adj": functools.partial(parse_int, flag="--oom-score-adj", minimum=-1000,
                                       maximum=1000),
}
for _prefix in ("update", "rollback"):
    SCALARS[f"{_prefix}_parallelism"] = _count(f"--{_prefix}-parallelism", "parallelism")
    SCALARS[f"{_prefix}_delay"] = _duration(f"--{_prefix}-delay")
    SCALARS[f"{_prefix}_monitor"] = _duration(f"--{_prefix}-monitor")
    SCALARS[f"{_prefix}_max_failure_ratio"] = functools.partial(
        parse_ratio, flag=f"--{_prefix}-max-failure-ratio")
del _prefix

# The repeatable values of `service update` whose parsing needs no current spec.
_UPDATE_ITEMS: dict[str, Callable[[str], Any]] = {
    "secret_add": parse_secret_ref, "config_add": parse_config_ref,
    "mount_add": parse_mount, "publish_add": parse_publish, "publish_rm": parse_publish,
    "ulimit_add": functools.partial(copts.parse_ulimit, flag="--ulimit-add"),
    "host_add": functools.partial(copts.parse_host, flag="--host-add"),
    "sysctl_add": functools.partial(copts.parse_sysctl, flag="--sysctl-add"),
    "constraint_add": validate_constraint, "placement_pref_add": parse_placement_pref,
    "network_add": parse_network,
    "generic_resource_add": lambda item: _generic([item], "--generic-resource-add"),
}


def _parse(ns: argparse.Namespace, attr: str) -> Any:
    """The value of a SCALARS flag, parsed; None when it was not given."""
    text = _get(ns, attr)
    return None if text is None else SCALARS[attr](text)


def check_values(ns: argparse.Namespace) -> None:
    """Parses every number, size and duration `service update` was given, and the
    values it adds, so that a bad one is refused (UsageError) before any call; what
    depends on the service (its mode, its mounts, ...) `update_spec` checks."""
    for attr in SCALARS:
        _parse(ns, attr)
    for attr, parse in _UPDATE_ITEMS.items():
        for item in _get(ns, attr) or ():
            parse(item)
    copts.log_options(_get(ns, "log_driver"), _get(ns, "log_opt") or [])


def _get(ns: argparse.Namespace, name: str):
    return getattr(ns, name, None)


def _choice(value: str, choices: Mapping[str, T], flag: str) -> T:
    key = value.strip().lower()
    if key not in choices:
        raise UsageError(f'invalid value "{value}" for {flag}: expected one of '
                         + ", ".join(f'"{c}"' for c in choices))
    return choices[key]


def default_update_config() -> pb.UpdateConfig:
    """Docker's defaults: one task at a time, pause on failure, 5s monitor, stop-first."""
    return pb.UpdateConfig(parallelism=1, failure_action=pb.UpdateConfig.PAUSE,
                           monitor=pb.Duration(nanos=DEFAULT_MONITOR_NS),
                           order=pb.UpdateConfig.STOP_FIRST)


_UPDATE_KEYS = ("parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order")


def _apply_update_config(cfg: pb.UpdateConfig, ns: argparse.Namespace, prefix: str,
                         mode: str | None = None) -> None:
    flag = f"--{prefix}"
    if mode in ("replicated_job", "global_job"):
        for key in _UPDATE_KEYS:
            if _get(ns, f"{prefix}_{key}") is not None:
                raise UsageError(f"{flag}-{key.replace('_', '-')} cannot be used with job modes: "
                                 "a job is run again by an update, never rolled out")
    value = _parse(ns, f"{prefix}_parallelism")
    if value is not None:
        cfg.parallelism = value
    value = _parse(ns, f"{prefix}_delay")
    if value is not None:
        cfg.delay.nanos = value
    value = _get(ns, f"{prefix}_failure_action")
    if value is not None:
        actions = dict(_FAILURE_ACTIONS)
        if prefix == "rollback":
            actions.pop("rollback")
        cfg.failure_action = _choice(value, actions, f"{flag}-failure-action")
    value = _parse(ns, f"{prefix}_monitor")
    if value is not None:
        cfg.monitor.nanos = value
    value = _parse(ns, f"{prefix}_max_failure_ratio")
    if value is not None:
        cfg.max_failure_ratio = value
    value = _get(ns, f"{prefix}_order")
    if value is not None:
        cfg.order = _choice(value, _ORDERS, f"{flag}-order")


def _apply_health(c: pb.ContainerSpec, ns: argparse.Namespace) -> None:
    given = {k: _get(ns, f"health_{k}") for k in ("cmd", "interval", "retries", "timeout",
                                                   "start_period", "start_interval")}
    if is_on(_get(ns, "no_healthcheck"), "--no-healthcheck"):
        if any(v is not None for v in given.values()):
            raise UsageError("--no-healthcheck conflicts with --health-* options")
        c.healthcheck.Clear()
        c.healthcheck.test.append("NONE")
        return
    if all(v is None for v in given.values()):
        return
    h = c.healthcheck
    if given["cmd"] is not None:
        del h.test[:]
        if given["cmd"]:
            h.test.extend(["CMD-SHELL", given["cmd"]])
    elif list(h.test) == ["NONE"]:
        del h.test[:]
    for key in ("interval", "timeout", "start_period", "start_interval", "retries"):
        value = _parse(ns, f"health_{key}")
        if key == "retries" and value is not None:
            h.retries = value
        elif value is not None:
            getattr(h, key).nanos = value


def _apply_common(spec: pb.ServiceSpec, ns: argparse.Namespace) -> None:
    """Applies the single-valued options `create` and `update` share."""
    task = spec.task
    c = task.container
    mode = spec.WhichOneof("mode")
    count = _parse(ns, "replicas")
    if count is not None:
        if mode == "replicated_job":
            spec.replicated_job.total_completions = count
        elif mode == "global":
            raise UsageError("replicas can only be used with replicated mode")
        elif mode == "global_job":
            raise UsageError("replicas can only be used with replicated or replicated-job mode")
        else:
            spec.replicated.replicas = count
    value = _parse(ns, "max_concurrent")
    if value is not None:
        if mode != "replicated_job":
            raise UsageError("max-concurrent can only be used with replicated-job mode")
        spec.replicated_job.max_concurrent = value
    for attr, field in (("user", "user"), ("workdir", "dir"), ("hostname", "hostname"),
                        ("stop_signal", "stop_signal")):
        value = _get(ns, attr)
        if value is not None:
            setattr(c, field, value)
    if _get(ns, "entrypoint") is not None:
        del c.command[:]
        c.command.extend(_split(ns.entrypoint, "--entrypoint"))
    if _get(ns, "stop_grace_period") is not None:
        c.stop_grace_period.nanos = _parse(ns, "stop_grace_period")
    for attr, flag in (("init", "--init"), ("tty", "--tty"), ("read_only", "--read-only")):
        if _get(ns, attr) is not None:
            setattr(c, attr, is_on(_get(ns, attr), flag))
    _apply_health(c, ns)

    res = task.resources
    for attr, target in (("limit_cpu", res.limits), ("reserve_cpu", res.reservations)):
        if _get(ns, attr) is not None:
            target.nano_cpus = _parse(ns, attr)
    for attr, target in (("limit_memory", res.limits), ("reserve_memory", res.reservations)):
        if _get(ns, attr) is not None:
            target.memory_bytes = _parse(ns, attr)
    if _get(ns, "limit_pids") is not None:
        res.limits.pids = _parse(ns, "limit_pids")
    if _get(ns, "oom_score_adj") is not None:
        c.oom_score_adj = _parse(ns, "oom_score_adj")

    r = task.restart
    if _get(ns, "restart_condition") is not None:
        r.condition = _choice(ns.restart_condition, _RESTART_CONDITIONS, "--restart-condition")
    if _get(ns, "restart_delay") is not None:
        r.delay.nanos = _parse(ns, "restart_delay")
        r.has_delay = True
    if _get(ns, "restart_max_attempts") is not None:
        r.max_attempts = _parse(ns, "restart_max_attempts")
    if _get(ns, "restart_window") is not None:
        r.window.nanos = _parse(ns, "restart_window")

    if _get(ns, "replicas_max_per_node") is not None:
        task.placement.max_replicas = _parse(ns, "replicas_max_per_node")
    _apply_update_config(spec.update, ns, "update", mode)
    _apply_update_config(spec.rollback, ns, "rollback", mode)
    if _get(ns, "endpoint_mode") is not None:
        spec.endpoint.mode = _choice(ns.endpoint_mode, _ENDPOINT_MODES, "--endpoint-mode")
    logs = copts.log_options(_get(ns, "log_driver"), _get(ns, "log_opt") or [],
                             task.log_driver)
    if logs is not None:
        task.log_driver = logs[0]
        task.log_driver_options.clear()
        task.log_driver_options.update(logs[1])


def _split(text: str, flag: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UsageError(f'invalid {flag} "{text}": {exc}') from None


def _ports(items: Iterable[str]) -> list[pb.PortConfig]:
    return [port for item in items for port in parse_publish(item)]


def create_spec(ns: argparse.Namespace) -> pb.ServiceSpec:
    """The spec `service create` sends, from its parsed arguments."""
    spec = pb.ServiceSpec()
    if ns.name:
        spec.annotations.name = ns.name
    mode = (ns.mode or "replicated").strip().lower()
    if mode == "global":
        getattr(spec, "global").SetInParent()
    elif mode == "replicated":
        spec.replicated.replicas = 1
    elif mode == "replicated-job":
        spec.replicated_job.total_completions = 1
    elif mode == "global-job":
        spec.global_job.SetInParent()
    else:
        raise UsageError(f'invalid mode "{ns.mode}": expected "replicated", "global", '
                         '"replicated-job" or "global-job"')
    if mode.endswith("-job"):  # Docker's default for jobs; --restart-condition overrides it
        spec.task.restart.condition = pb.RestartPolicy.ON_FAILURE
    if not ns.image or not ns.image.strip():
        raise UsageError('"swarm service create" requires at least 1 argument: IMAGE')
    spec.annotations.labels.update(dict(parse_kv(i, "--label") for i in ns.label))
    c = spec.task.container
    c.image = ns.image
    c.args.extend(ns.command)
    c.env.extend(merge_env(read_env_files(ns.env_file), [expand_env(e) for e in ns.env]))
    c.labels.update(dict(parse_kv(i, "--container-label") for i in ns.container_label))
    c.dns_nameservers.extend(ns.dns)
    c.dns_search.extend(ns.dns_search)
    c.dns_options.extend(ns.dns_option)
    c.secrets.extend(parse_secret_ref(s) for s in ns.secret)
    c.configs.extend(parse_config_ref(s) for s in ns.config)
    c.mounts.extend(create_mounts(ns.mount))
    c.groups.extend(copts.check_group(g, "--group") for g in ns.group)
    c.hosts.extend(dict.fromkeys(copts.parse_host(h, "--host") for h in ns.hosts))
    c.sysctls.update(dict(copts.parse_sysctl(x, "--sysctl") for x in ns.sysctl))
    copts.set_ulimits(c.ulimits, ns.ulimit, (), "--ulimit")
    copts.create_capabilities(c, ns.cap_add, ns.cap_drop)
    spec.task.placement.constraints.extend(validate_constraint(x) for x in ns.constraint)
    spec.task.placement.preferences.extend(parse_placement_pref(x) for x in ns.placement_pref)
    spec.task.networks.extend(parse_network(n) for n in ns.network)
    spec.endpoint.ports.extend(_ports(ns.publish))
    if ns.generic_resource:
        spec.task.resources.reservations.generic_resources.extend(
            _generic(ns.generic_resource, "--generic-resource"))
    spec.update.CopyFrom(default_update_config())
    spec.rollback.CopyFrom(default_update_config())
    _apply_common(spec, ns)
    if mode in ("global", "global-job") and spec.task.placement.max_replicas:
        raise UsageError("--replicas-max-per-node can only be used with replicated mode")
    return spec


def _remove_where(container, pred: Callable) -> None:
    keep = [item for item in container if not pred(item)]
    del container[:]
    container.extend(keep)


def _update_list(values, add: Iterable[str], rm: Iterable[str],
                 parse: Optional[Callable[[str], str]] = None) -> None:
    """Strings: remove the --*-rm ones, then append the --*-add ones not yet present."""
    removed = set(rm)
    _remove_where(values, lambda v: v in removed)
    for item in add:
        item = parse(item) if parse else item
        if item not in values:
            values.append(item)


def _env_key(entry: str) -> str:
    return entry.split("=", 1)[0]


def _add_file_ref(refs: Any, ref: Any, kind: str, names_of: Callable[[Any], tuple[str, str]]
                  ) -> None:
    """`--secret-add`/`--config-add`: the same secret (by name or ID) at the same target
    replaces its reference (new uid, gid or mode); another one already there is refused,
    as the daemon would refuse two files at one path."""
    name = names_of(ref)[0]
    for old in refs:
        if old.target == ref.target and name not in names_of(old):
            raise UsageError(f"{kind} {name!r} would be mounted where {kind} "
                             f"{names_of(old)[0]!r} is ({old.target}): remove that one with "
                             f"--{kind}-rm in the same update, or choose another target")
    _remove_where(refs, lambda old: old.target == ref.target)
    refs.append(ref)


def update_spec(current: pb.ServiceSpec, ns: argparse.Namespace) -> pb.ServiceSpec:
    """A copy of `current` with the changes `service update` asks for."""
    spec = pb.ServiceSpec()
    spec.CopyFrom(current)
    task = spec.task
    c = task.container
    if ns.image is not None:
        if not ns.image.strip():
            raise UsageError("--image must not be empty")
        c.image = ns.image
    if ns.args is not None:
        del c.args[:]
        c.args.extend(_split(ns.args, "--args"))

    env_add = [expand_env(e) for e in ns.env_add]
    drop = set(ns.env_rm) | {_env_key(e) for e in env_add}
    _remove_where(c.env, lambda e: _env_key(e) in drop)
    c.env.extend(env_add)

    for labels, add, rm, flag in ((spec.annotations.labels, ns.label_add, ns.label_rm, "--label-add"),
                                  (c.labels, ns.container_label_add, ns.container_label_rm,
                                   "--container-label-add")):
        for key in rm:
            labels.pop(key, None)
        labels.update(dict(parse_kv(item, flag) for item in add))

    _update_list(task.placement.constraints, ns.constraint_add, ns.constraint_rm,
                 validate_constraint)
    pref_rm = {parse_placement_pref(p).spread for p in ns.placement_pref_rm}
    _remove_where(task.placement.preferences, lambda p: p.spread in pref_rm)
    task.placement.preferences.extend(parse_placement_pref(p) for p in ns.placement_pref_add)
    _update_list(c.dns_nameservers, ns.dns_add, ns.dns_rm)
    _update_list(c.dns_search, ns.dns_search_add, ns.dns_search_rm)
    _update_list(c.dns_options, ns.dns_option_add, ns.dns_option_rm)
    _update_list(c.groups, ns.group_add, ns.group_rm,
                 lambda g: copts.check_group(g, "--group-add"))
    copts.update_hosts(c.hosts, ns.host_add, ns.host_rm)
    copts.update_sysctls(c.sysctls, ns.sysctl_add, ns.sysctl_rm)
    copts.set_ulimits(c.ulimits, ns.ulimit_add, ns.ulimit_rm, "--ulimit-add")
    if ns.cap_add or ns.cap_drop:
        copts.update_capabilities(c, ns.cap_add, ns.cap_drop)
    update_mounts(c.mounts, ns.mount_add, ns.mount_rm)

    secret_rm = set(ns.secret_rm)
    _remove_where(c.secrets, lambda s: s.secret_name in secret_rm or s.secret_id in secret_rm)
    for ref in map(parse_secret_ref, ns.secret_add):
        _add_file_ref(c.secrets, ref, "secret", lambda s: (s.secret_name, s.secret_id))
    config_rm = set(ns.config_rm)
    _remove_where(c.configs, lambda s: s.config_name in config_rm or s.config_id in config_rm)
    for cfg_ref in map(parse_config_ref, ns.config_add):
        _add_file_ref(c.configs, cfg_ref, "config", lambda s: (s.config_name, s.config_id))

    net_rm = set(ns.network_rm)
    _remove_where(task.networks, lambda n: n.target in net_rm)
    for net in map(parse_network, ns.network_add):
        _remove_where(task.networks, lambda n, t=net.target: n.target == t)
        task.networks.append(net)

    _update_ports(spec.endpoint, ns.publish_add, ns.publish_rm)
    _update_generic(task.resources.reservations.generic_resources,
                    _get(ns, "generic_resource_add") or (), _get(ns, "generic_resource_rm") or ())
    _apply_common(spec, ns)
    if spec.WhichOneof("mode") in ("global", "global_job") and task.placement.max_replicas:
        raise UsageError("--replicas-max-per-node can only be used with replicated mode")
    if is_on(ns.force, "--force"):
        task.force_update += 1
    return spec


def _generic(terms: Iterable[str], flag: str) -> list[pb.GenericResource]:
    """Generic resource reservations (KIND=COUNT) as the spec holds them."""
    try:
        return genericres.parse_request(terms, flag)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _update_generic(current: Any, add: Iterable[str], rm: Iterable[str]) -> None:
    """--generic-resource-rm KIND (refused when the service reserves no KIND), then
    --generic-resource-add KIND=COUNT (replaces the count of a kind already reserved)."""
    add, rm = list(add), list(rm)
    if not add and not rm:
        return
    by_kind = {genericres.kind_of(r): r for r in current}
    for kind in rm:
        if kind.strip() not in by_kind:
            raise UsageError(f"could not find generic-resource `{kind}` to remove it")
        del by_kind[kind.strip()]
    for res in _generic(add, "--generic-resource-add"):
        by_kind[genericres.kind_of(res)] = res
    del current[:]
    current.extend(by_kind.values())


def _parse_port_rm(item: str) -> list[tuple[int, int]]:
    """--publish-rm takes TARGET[/PROTOCOL] or any --publish form; returns (target, proto)."""
    return [(p.target_port, p.protocol) for p in parse_publish(item)]


def _update_ports(endpoint: pb.EndpointSpec, add: Iterable[str], rm: Iterable[str]) -> None:
    """--publish-rm, then --publish-add: an added port replaces the ports it would clash
    with (the same published port and protocol, or the same target, protocol and
    published port). Linear, through indexes: a range of 65535 ports is one flag."""
    remove = {key for item in rm for key in _parse_port_rm(item)}
    kept: dict[int, pb.PortConfig] = {}   # by position, in order; replaced ones deleted
    by_published: dict[tuple[int, int], set[int]] = {}
    by_target: dict[tuple[int, int, int], set[int]] = {}
    positions = itertools.count()

    def keep(port: pb.PortConfig) -> None:
        position = next(positions)
        kept[position] = port
        if port.published_port:
            by_published.setdefault((port.published_port, port.protocol), set()).add(position)
        by_target.setdefault((port.target_port, port.protocol, port.published_port),
                             set()).add(position)

    for port in endpoint.ports:
        if (port.target_port, port.protocol) not in remove:
            keep(port)
    for port in _ports(add):
        clashing = by_target.pop((port.target_port, port.protocol, port.published_port), set())
        if port.published_port:
            clashing |= by_published.pop((port.published_port, port.protocol), set())
        for position in clashing:
            kept.pop(position, None)
        keep(port)
    del endpoint.ports[:]
    endpoint.ports.extend(kept.values())
