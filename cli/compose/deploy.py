"""Validation of a service's `deploy:` section into a `model.Deploy`.

Owns the modes (replicated, global, replicated-job, global-job), replicas,
service labels, endpoint mode, resources (CPU and memory limits and
reservations, generic resources reserved), restart policy, placement (constraints checked with the CLI's
own grammar, spread preferences, max replicas per node), and the update and
rollback configs, with Docker's values and messages.
"""
from __future__ import annotations

from typing import Any, Optional

from cli.compose import values as v
from cli.compose.errors import Collector, ComposeError, join_path
from cli.compose.model import Deploy, Placement, Resources, RestartPolicy, UpdateConfig
from cli.parsing import UsageError, parse_placement_pref, validate_constraint
from proto import genericres

MODES = ("replicated", "global", "replicated-job", "global-job")
DEPLOY_KEYS = ("mode", "replicas", "labels", "update_config", "rollback_config", "resources",
               "restart_policy", "placement", "endpoint_mode")


def read_deploy(value: Any, path: str, errors: Optional[Collector] = None) -> Deploy:
    """A service's `deploy:`. Each key is checked on its own: with `errors`, every problem
    is kept there (a key that fails stays unset); without, they are raised."""
    own = Collector() if errors is None else errors
    deploy = Deploy()
    with own:
        section = v.mapping(value, path, DEPLOY_KEYS, errors=own)
        for key, item in section.items():
            with own:
                _read_key(deploy, key, item, join_path(path, key))
        if deploy.replicas is not None and deploy.mode in ("global", "global-job"):
            own.add(ComposeError("replicas can only be used with replicated or "
                                 "replicated-job mode", path=join_path(path, "replicas")))
    if errors is None:
        own.check()
    return deploy


def _read_key(deploy: Deploy, key: str, value: Any, path: str) -> None:
    if key == "mode":
        deploy.mode = v.choice(value, path, MODES)
    elif key == "replicas":
        deploy.replicas = v.integer(value, path)
    elif key == "labels":
        deploy.labels = v.labels(value, path)
    elif key == "endpoint_mode":
        deploy.endpoint_mode = v.choice(value, path, ("vip", "dnsrr"))
    elif key in ("update_config", "rollback_config"):
        setattr(deploy, key, _update(value, path, rollback=key == "rollback_config"))
    elif key == "restart_policy":
        deploy.restart_policy = _restart(value, path)
    elif key == "placement":
        deploy.placement = _placement(value, path)
    elif key == "resources":
        resources = v.mapping(value, path, ("limits", "reservations"))
        deploy.limits = v.optional(resources, "limits", path,
                                   lambda x, q: _resources(x, q, "pids", None))
        deploy.reservations = v.optional(resources, "reservations", path,
                                         lambda x, q: _resources(x, q, None,
                                                                 "generic_resources"))


def _generic(value: Any, path: str) -> list[tuple[str, int]]:
    """generic_resources: a list of {discrete_resource_spec: {kind, value}} (Docker's
    schema: a service reserves counts; the nodes advertise the ids)."""
    if not isinstance(value, list):
        raise v.wrong(value, path, "a list")
    out: list[tuple[str, int]] = []
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        spec_path = join_path(where, "discrete_resource_spec")
        spec = v.mapping(v.mapping(item, where, ("discrete_resource_spec",)).get(
            "discrete_resource_spec"), spec_path, ("kind", "value"))
        kind = v.string(spec.get("kind"), join_path(spec_path, "kind"))
        if not genericres.valid_kind(kind):
            raise ComposeError(f"invalid kind {kind!r}", path=join_path(spec_path, "kind"))
        count = v.integer(spec.get("value"), join_path(spec_path, "value"), minimum=1)
        if any(kind == k for k, _ in out):
            raise ComposeError(f"{kind!r} is reserved twice", path=where)
        out.append((kind, count))
    return out


def _update(value: Any, path: str, rollback: bool) -> UpdateConfig:
    section = v.mapping(value, path, ("parallelism", "delay", "failure_action", "monitor",
                                      "max_failure_ratio", "order"))
    actions = ("continue", "pause") if rollback else ("continue", "pause", "rollback")
    config = UpdateConfig()
    config.parallelism = v.optional(section, "parallelism", path, v.integer)
    config.delay = v.optional(section, "delay", path, v.duration)
    config.monitor = v.optional(section, "monitor", path, v.duration)
    config.failure_action = v.optional(section, "failure_action", path,
                                       lambda x, q: v.choice(x, q, actions))
    config.order = v.optional(section, "order", path,
                              lambda x, q: v.choice(x, q, ("stop-first", "start-first")))
    ratio = v.optional(section, "max_failure_ratio", path, v.number)
    if ratio is not None and not 0 <= ratio <= 1:
        raise ComposeError(f"must be between 0 and 1, not {ratio}",
                           path=join_path(path, "max_failure_ratio"))
    config.max_failure_ratio = ratio
    return config


def _restart(value: Any, path: str) -> RestartPolicy:
    section = v.mapping(value, path, ("condition", "delay", "max_attempts", "window"))
    policy = RestartPolicy()
    policy.condition = v.optional(section, "condition", path,
                                  lambda x, q: v.choice(x, q, ("none", "on-failure", "any")))
    policy.delay = v.optional(section, "delay", path, v.duration)
    policy.window = v.optional(section, "window", path, v.duration)
    policy.max_attempts = v.optional(section, "max_attempts", path, v.integer)
    return policy


def _placement(value: Any, path: str) -> Placement:
    section = v.mapping(value, path, ("constraints", "preferences", "max_replicas_per_node"))
    placement = Placement()
    if "constraints" in section:
        items_path = join_path(path, "constraints")
        placement.constraints = v.string_list(section["constraints"], items_path)
        for index, expr in enumerate(placement.constraints):
            try:
                validate_constraint(expr)
            except UsageError as exc:
                raise ComposeError(str(exc), path=join_path(items_path, index)) from None
    if "preferences" in section:
        items_path = join_path(path, "preferences")
        items = section["preferences"]
        if not isinstance(items, list):
            raise v.wrong(items, items_path, "a list of {spread: ...} mappings")
        placement.preferences = []
        for index, item in enumerate(items):
            item_path = join_path(items_path, index)
            pref = v.mapping(item, item_path, ("spread",), extensions=False)
            if "spread" not in pref:
                raise ComposeError('"spread" is required', path=join_path(item_path, "spread"))
            spread = v.string(pref["spread"], join_path(item_path, "spread"))
            try:
                parse_placement_pref(f"spread={spread}")
            except UsageError:
                raise ComposeError(f'invalid spread "{spread}": expected node.labels.<label> '
                                   "or engine.labels.<label>",
                                   path=join_path(item_path, "spread")) from None
            placement.preferences.append(spread)
    placement.max_replicas_per_node = v.optional(section, "max_replicas_per_node", path,
                                                 v.integer)
    return placement


def _resources(value: Any, path: str, pids: Optional[str],
               generic: Optional[str]) -> Resources:
    """limits (`pids` names their process count) or reservations (`generic` names
    their generic resources)."""
    keys = ("cpus", "memory") + tuple(k for k in (pids, generic) if k)
    section = v.mapping(value, path, keys)
    resources = Resources()
    if generic and generic in section:
        resources.generic = _generic(section[generic], join_path(path, generic))
    if "cpus" in section:
        resources.cpus, resources.nano_cpus = v.cpus(section["cpus"], join_path(path, "cpus"))
    resources.memory = v.optional(section, "memory", path, v.size)
    if pids:
        resources.pids = v.optional(section, pids, path, v.integer)   # 0 = unlimited
    return resources
