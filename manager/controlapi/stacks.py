"""Control API rules for stacks: what a deploy changes, what a removal removes.

Pure functions over the objects the caller read from the store (`Current`).
`deploy_plan` checks a whole `StackDefinition` with the rules of the
per-resource modules (services.new_service / updated_service, networks.new_network,
secrets.new_object / relabelled) and returns every store action of the
deploy, to be committed as ONE transaction, with the `StackChange` list the
response (and a dry run) shows; any problem anywhere refuses the whole
deploy, every problem found named in the message. `rollback_plan` is the
deploy of the stack's previous definition (with prune), its secrets' data
taken from the secrets in the store, and the two definitions swapped.
`removal` says what `stack rm` removes first (services, secrets, configs,
the stack object) and which networks go once the stack's tasks are gone.

Ownership is the label `com.docker.stack.namespace=<stack>`, as Docker's:
an existing object of the same name without it belongs to someone else and
is never taken over.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence, TypeVar, Union

from manager import fileversions, lookup, pullauth, validation
from manager.allocator import ports
from manager.allocator.networks import OVERLAY
from manager.controlapi import networks, secrets, services
from manager.controlapi.common import Code, Refusal, invalid, precondition
from manager.controlapi.specdiff import changed_fields
from manager.objects import copy
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb
from proto import store_pb2
from raft import actions

NAMESPACE = "com.docker.stack.namespace"   # Docker's label: the stack an object belongs to

Change = cpb.StackChange
Labelled = Union[pb.Service, pb.Network, pb.Secret, pb.Config]
Stored = TypeVar("Stored", pb.Secret, pb.Config)
SecretLike = Union[pb.SecretSpec, pb.ConfigSpec]


@dataclass
class Current:
    """What the store holds that a stack deploy or removal reads."""
    services: list[pb.Service] = field(default_factory=list)
    networks: list[pb.Network] = field(default_factory=list)
    secrets: list[pb.Secret] = field(default_factory=list)
    configs: list[pb.Config] = field(default_factory=list)
    tasks: list[pb.Task] = field(default_factory=list)
    stacks: list[pb.Stack] = field(default_factory=list)
    cluster: Optional[pb.Cluster] = None

    def stack(self, name: str) -> Optional[pb.Stack]:
        return next((s for s in self.stacks if s.name == name), None)


@dataclass
class Plan:
    """The store actions of a deploy (one transaction) and the changes they make."""
    actions: list[store_pb2.StoreAction] = field(default_factory=list)
    changes: list[cpb.StackChange] = field(default_factory=list)

    def add(self, act: store_pb2.StoreAction, action: int, kind: str, name: str, obj_id: str,
            fields: Sequence[str] = ()) -> None:
        self.actions.append(act)
        self.changes.append(Change(action=action, kind=kind, name=name,  # type: ignore[arg-type]
                                   id=obj_id, fields=list(fields)))


def namespace_of(obj: Labelled) -> str:
    """The stack an object belongs to ("" for none)."""
    return obj.spec.annotations.labels.get(NAMESPACE, "")


def of_stack(objects: Iterable[Labelled], stack: str) -> list:
    """The objects labelled as belonging to `stack`, by name."""
    return sorted((o for o in objects if namespace_of(o) == stack),
                  key=lambda o: o.spec.annotations.name)


def _named(objects: Iterable[Labelled], name: str) -> Optional[Labelled]:
    return next((o for o in objects if o.spec.annotations.name == name), None)


def _external(objects: Sequence[Labelled], kind: str, ref: str) -> Optional[Labelled]:
    try:
        found: Labelled = lookup.resolve(objects, kind, ref)
    except (lookup.NotFound, lookup.Ambiguous):
        return None
    return found


def missing_external(kind: str, name: str) -> Refusal:
    """Docker's refusal of an external object that does not exist."""
    hint = {"network": "You need to create a swarm-scoped network before the stack is "
                       "deployed"}.get(kind, f"Create it with 'swarm {kind} create' first")
    return Refusal(Code.NOT_FOUND,
                   f'{kind} "{name}" is declared as external, but could not be found. {hint}')


class _Problems:
    """Every refusal found while checking a definition; one refusal naming them all."""

    def __init__(self) -> None:
        self.found: list[Refusal] = []

    def check(self, rule: Callable[..., None], *args: Any) -> None:
        try:
            rule(*args)
        except Refusal as refusal:
            self.found.append(refusal)

    def raise_any(self, stack: str, verb: str = "deployed") -> None:
        if not self.found:
            return
        if len(self.found) == 1:
            only = self.found[0]
            if verb == "deployed":
                raise only
            raise Refusal(only.code, f"stack {stack} can't be {verb} (nothing was changed): "
                                     f"{only.message}")
        codes = {r.code for r in self.found}
        code = codes.pop() if len(codes) == 1 else Code.INVALID_ARGUMENT
        lines = "\n".join(f"- {r.message}" for r in self.found)
        raise Refusal(code, f"stack {stack} can't be {verb} ({len(self.found)} problems, "
                            f"nothing was changed):\n{lines}")


def _check_ownership(kind: str, spec_name: str, labels: Iterable[tuple[str, str]],
                     existing: Optional[Labelled], stack: str) -> None:
    if dict(labels).get(NAMESPACE) != stack:
        raise invalid(f"{kind} {spec_name} of stack {stack} must carry the label "
                      f"{NAMESPACE}={stack}")
    if existing is not None and namespace_of(existing) != stack:
        owner = namespace_of(existing)
        where = f"belongs to stack {owner}" if owner else "is not part of any stack"
        raise Refusal(Code.ALREADY_EXISTS,
                      f"name conflicts with an existing object: {kind} {spec_name} already "
                      f"exists and {where}; remove it or give stack {stack}'s {kind} "
                      "another name")


def _duplicates(kind: str, names: list[str]) -> None:
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise invalid(f"the stack defines {kind} {', '.join(twice)} more than once")


def _no_labels(spec: Union[pb.NetworkSpec, SecretLike]) -> Union[pb.NetworkSpec, SecretLike]:
    out = copy(spec)
    out.annotations.labels.clear()
    return out


# ------------------------------------------------------------------ deploy --

def deploy_plan(definition: pb.StackDefinition, prune: bool, current: Current,
                rollback: bool = False) -> Plan:
    """Every store action of deploying `definition`, or a refusal naming every problem.

    With `rollback` (see `rollback_plan`) a service whose spec returns to its
    previous spec is rolled back as `service rollback` does (its rollback_config),
    and the stack record is always written (its two definitions swap)."""
    stack = definition.name
    try:
        validation.check_name("stack", stack)
    except validation.InvalidSpec as exc:
        raise invalid(str(exc)) from None
    plan = Plan()
    problems = _Problems()
    for kind, names in (("network", [n.annotations.name for n in definition.networks]),
                        ("secret", [s.annotations.name for s in definition.secrets]),
                        ("config", [c.annotations.name for c in definition.configs]),
                        ("service", [s.annotations.name for s in definition.services])):
        problems.check(_duplicates, kind, names)
    nets = _plan_networks(definition, current, plan, problems)
    chosen: tuple[dict[str, str], dict[str, str]] = ({}, {})
    secs = _plan_secrets("secret", pb.Secret, definition.secrets, definition.external_secrets,
                         current.secrets, stack, plan, problems, chosen[0])
    cfgs = _plan_secrets("config", pb.Config, definition.configs, definition.external_configs,
                         current.configs, stack, plan, problems, chosen[1])
    routed = copy(definition)   # the services use the versions in use of their files
    for svc in routed.services:
        fileversions.renamed_refs(svc.task.container, *chosen)
    _plan_services(routed, prune, current, services.Refs(nets, secs, cfgs), plan, problems,
                   rollback)
    problems.raise_any(stack, "rolled back" if rollback else "deployed")
    if rollback:
        _drop_unused(definition, current, plan)
    if plan.changes or rollback or current.stack(stack) is None:
        plan.actions.append(_stack_record(definition, current.stack(stack), chosen))
    return plan


def _plan_networks(definition: pb.StackDefinition, current: Current, plan: Plan,
                   problems: _Problems) -> list[pb.Network]:
    """Creates and relabels the stack's networks; the networks services may then use."""
    known = list(current.networks)
    for spec in definition.networks:
        problems.check(_one_network, spec, definition.name, current, known, plan)
    for ref in definition.external_networks:
        if _external(current.networks, "network", ref) is None:
            problems.found.append(missing_external("network", ref))
    return known


def _one_network(spec: pb.NetworkSpec, stack: str, current: Current, known: list[pb.Network],
                 plan: Plan) -> None:
    name = spec.annotations.name
    existing = _named(current.networks, name)
    _check_ownership("network", name, spec.annotations.labels.items(), existing, stack)
    if isinstance(existing, pb.Network):
        _network_update(existing, spec, stack, plan)
        return
    net = networks.new_network(cpb.CreateNetworkRequest(spec=spec), known, current.cluster)
    known.append(net)
    plan.add(actions.create(net), Change.CREATE, "network", name, net.id)


def _network_update(net: pb.Network, spec: pb.NetworkSpec, stack: str, plan: Plan) -> None:
    """Relabels a network of the stack; any other change is refused (networks are fixed)."""
    wanted = copy(spec)
    wanted.driver = wanted.driver or OVERLAY
    differ = changed_fields(_no_labels(net.spec), _no_labels(wanted))
    name = spec.annotations.name
    if differ:
        raise precondition(
            f"network {name} of stack {stack} can't be changed ({', '.join(differ)} differ): "
            "a network can only get new labels; remove the stack first (swarm stack rm "
            f"{stack}) or give the network another name")
    if dict(net.spec.annotations.labels) != dict(spec.annotations.labels):
        new = copy(net)
        new.spec.annotations.labels.clear()
        new.spec.annotations.labels.update(spec.annotations.labels)
        plan.add(actions.update(new), Change.UPDATE, "network", name, net.id,
                 ["annotations.labels"])


def _plan_secrets(kind: str, cls: type[Stored], specs: Sequence[SecretLike],
                  externals: Sequence[str], existing: list[Stored], stack: str, plan: Plan,
                  problems: _Problems, chosen: dict[str, str]) -> list[Stored]:
    """Creates, relabels and versions the stack's secrets (or configs); those services
    may use. `chosen` gets, for each definition name, the version the services use."""
    known = list(existing)
    for spec in specs:
        problems.check(_one_secret, kind, cls, spec, stack, existing, known, plan, chosen)
    for ref in externals:
        if _external(existing, kind, ref) is None:
            problems.found.append(missing_external(kind, ref))
    return known


def _one_secret(kind: str, cls: type[Stored], spec: SecretLike, stack: str,
                existing: list[Stored], known: list[Stored], plan: Plan,
                chosen: dict[str, str]) -> None:
    """One secret (or config) of the definition: kept, relabelled, a superseded version
    taken back (its content is the file's again), or a new version (new content; the
    one in use is labelled superseded, see manager.fileversions)."""
    name = spec.annotations.name
    _check_ownership(kind, name, spec.annotations.labels.items(), _named(existing, name),
                     stack)
    versions = fileversions.family(of_stack(existing, stack), name)
    in_use = fileversions.live(versions)
    same = fileversions.same_content(versions, spec.data, in_use)
    if same is None:
        new_name = name if in_use is None and not versions else fileversions.next_name(
            name, versions, lambda n: _named(known, n) is not None)
        wanted = copy(spec)
        wanted.annotations.name = new_name
        if new_name != name:
            wanted.annotations.labels[fileversions.VERSION_OF] = name
        obj = secrets.new_object(kind, cls(spec=wanted), known)  # type: ignore[arg-type]
        known.append(obj)
        plan.add(actions.create(obj), Change.CREATE, kind, new_name, obj.id)
        same = obj
    elif same is not in_use or (fileversions.own_labels(same)  # type: ignore[arg-type]
                                != dict(spec.annotations.labels)):
        _relabel(kind, same, spec, plan, superseded_by="")
    if in_use is not None and same is not in_use:
        _relabel(kind, in_use, spec, plan, superseded_by=same.id)
    chosen[name] = fileversions.name_of(same)


def _relabel(kind: str, obj: Stored, spec: SecretLike, plan: Plan, superseded_by: str) -> None:
    """The version with the definition's labels (and the module's own: which object it
    is a version of, and, when replaced, by what)."""
    new = copy(obj)
    labels = new.spec.annotations.labels
    keep = {k: v for k, v in labels.items() if k == fileversions.VERSION_OF}
    labels.clear()
    labels.update(spec.annotations.labels)
    labels.update(keep)
    if superseded_by:
        labels[fileversions.SUPERSEDED] = superseded_by
    if dict(labels) != dict(obj.spec.annotations.labels):
        plan.add(actions.update(new), Change.UPDATE, kind, obj.spec.annotations.name, obj.id,
                 ["annotations.labels"])


def _plan_services(definition: pb.StackDefinition, prune: bool, current: Current,
                   refs: services.Refs, plan: Plan, problems: _Problems,
                   rollback: bool = False) -> None:
    """Creates the missing services, updates the changed ones, prunes the others if asked."""
    stack = definition.name
    defined = {s.annotations.name for s in definition.services}
    # ports are checked against the services outside this deploy here, and among the
    # stack's services (with their new specs) in _check_ports
    refs.services = [s for s in current.services if s.spec.annotations.name not in defined]
    planned: list[pb.Service] = []
    for spec in definition.services:
        problems.check(_one_service, spec, stack, current, refs, planned, plan, rollback)
    if prune:
        for svc in of_stack(current.services, stack):
            if svc.spec.annotations.name not in defined:
                plan.add(actions.remove(svc), Change.REMOVE, "service",
                         svc.spec.annotations.name, svc.id)


def _one_service(spec: pb.ServiceSpec, stack: str, current: Current, refs: services.Refs,
                 planned: list[pb.Service], plan: Plan, rollback: bool) -> None:
    name = spec.annotations.name
    existing = _named(current.services, name)
    _check_ownership("service", name, spec.annotations.labels.items(), existing, stack)
    try:
        _service_change(spec, existing, refs, planned, plan, rollback)
    except Refusal as refusal:   # the service rules' messages do not name the service
        raise Refusal(refusal.code, f"service {name}: {refusal.message}") from None


def _service_change(spec: pb.ServiceSpec, existing: Optional[Labelled], refs: services.Refs,
                    planned: list[pb.Service], plan: Plan, rollback: bool = False) -> None:
    name = spec.annotations.name
    if not isinstance(existing, pb.Service):
        svc = services.new_service(cpb.CreateServiceRequest(spec=spec), refs)
        _check_ports(svc, planned)
        plan.add(actions.create(svc), Change.CREATE, "service", name, svc.id)
        return
    checked = services.checked_spec(spec, refs, own_id=existing.id)
    pullauth.kept(checked, spec, existing.spec)   # deployed without credentials: kept
    _check_ports(pb.Service(id=existing.id, spec=checked), planned)
    if checked == existing.spec:
        return   # unchanged: not touched (a job is not re-run either)
    # the path of UpdateService: previous_spec, spec version, update status; back to the
    # previous spec in a stack rollback, the path of `service rollback` (rollback_config)
    # (its credentials aside: the stack record keeps none, the deploy carries the current
    # ones, the previous spec those of its time; `service rollback` restores those)
    back = (rollback and existing.HasField("previous_spec")
            and pullauth.same_spec(checked, existing.previous_spec))
    new = services.updated_service(
        existing, cpb.UpdateServiceRequest(service_id=existing.id, spec=spec, rollback=back),
        refs)
    if new is not None:
        plan.add(actions.update(new), Change.UPDATE, "service", name, existing.id,
                 changed_fields(existing.spec, new.spec))
        plan.changes[-1].rollback = back


def _check_ports(svc: pb.Service, planned: list[pb.Service]) -> None:
    """Refuses a service whose ingress ports another service of the deploy asks for."""
    conflict = ports.first_conflict(svc.spec.endpoint, planned, svc.id)
    if conflict:
        raise invalid(conflict)
    planned.append(pb.Service(id=svc.id, spec=svc.spec))


def stored_definition(definition: pb.StackDefinition,
                      chosen: tuple[dict[str, str], dict[str, str]] = ({}, {})
                      ) -> pb.StackDefinition:
    """The definition as the Stack object keeps it: without secret data (the secrets
    hold it; the store's objects are readable through Watch, secrets' data never is),
    each secret and config labelled with the version it deployed when that is not the
    one named as the definition (for a rollback: `rollback_plan`)."""
    out = copy(definition)
    for sec in out.secrets:
        sec.data = b""
    for svc in out.services:   # nor registry credentials: the services hold them
        svc.task.container.ClearField("pull_options")
    for specs, versions in ((out.secrets, chosen[0]), (out.configs, chosen[1])):
        for spec in specs:
            version = versions.get(spec.annotations.name, spec.annotations.name)
            if version != spec.annotations.name:
                spec.annotations.labels[fileversions.IN_USE] = version
    return out


def _stack_record(definition: pb.StackDefinition, old: Optional[pb.Stack],
                  chosen: tuple[dict[str, str], dict[str, str]]) -> store_pb2.StoreAction:
    """The action that records the deployed definition (and keeps the one before)."""
    if old is None:
        return actions.create(pb.Stack(id=model.new_id(), name=definition.name,
                                       definition=stored_definition(definition, chosen)))
    new = copy(old)
    new.previous_definition.CopyFrom(old.definition)
    new.definition.CopyFrom(stored_definition(definition, chosen))
    return actions.update(new)


# ---------------------------------------------------------------- rollback --

def rollback_plan(stack: str, current: Current) -> Plan:
    """The store actions returning `stack` to its previous definition, in one transaction:
    a deploy of that definition with prune (services the last deploy added go, configs
    only it added go once unused: `_drop_unused`) whose stack record swaps the two
    definitions, so that a second rollback goes forward again. Refused when there is no
    previous definition, or when a secret it needs is gone (the record keeps no secret
    data: the data comes from the secret of that name still in the store)."""
    record = current.stack(stack)
    if record is None:
        raise Refusal(Code.NOT_FOUND, f"Nothing found in stack: {stack}")
    if not record.HasField("previous_definition"):
        raise precondition(f"stack {stack} does not have a previous definition")
    previous = copy(record.previous_definition)
    for cfg in previous.configs:
        fileversions.take_in_use(cfg)
    gone = []
    for sec in previous.secrets:
        version = fileversions.take_in_use(sec)
        found = _named(current.secrets, version)
        if isinstance(found, pb.Secret) and namespace_of(found) == stack:
            sec.data = found.spec.data
        else:
            gone.append(version)
    if gone:
        raise precondition(
            f"stack {stack} can't be rolled back (nothing was changed): its previous "
            f"definition needs secret(s) {', '.join(gone)}, no longer in the store (a stack "
            f"keeps no secret data); deploy the stack's files instead")
    return deploy_plan(previous, True, current, rollback=True)


def _services_after(plan: Plan, current: Current) -> list[pb.Service]:
    """The services as they will be once `plan` is committed."""
    removed = {a.object.service.id for a in plan.actions
               if a.object.WhichOneof("object") == "service"
               and a.kind == store_pb2.StoreAction.REMOVE}
    written = {a.object.service.id: a.object.service for a in plan.actions
               if a.object.WhichOneof("object") == "service"
               and a.kind != store_pb2.StoreAction.REMOVE}
    kept = [s for s in current.services if s.id not in removed and s.id not in written]
    return kept + list(written.values())


def _drop_unused(definition: pb.StackDefinition, current: Current, plan: Plan) -> None:
    """Removes the stack's configs the definition does not name and no service uses after
    the plan (those the undone deploy added; the record keeps their data, so a rollback
    forward creates them again). Secrets the undone deploy added stay: the record keeps
    no secret data, and a rollback forward needs them. Networks stay too: tasks being
    replaced still use them. `stack rm` removes both."""
    after = _services_after(plan, current)
    named = {c.annotations.name for c in definition.configs}
    for cfg in of_stack(current.configs, definition.name):
        if ({cfg.spec.annotations.name, cfg.spec.annotations.labels.get(
                fileversions.VERSION_OF, "")} & named):
            continue    # a version of a config of the definition (superseded ones are swept)
        try:
            secrets.check_unused("config", cfg, after)
        except Refusal:
            continue   # a service outside the stack uses it: it stays
        plan.add(actions.remove(cfg), Change.REMOVE, "config", cfg.spec.annotations.name,
                 cfg.id)


# ------------------------------------------------------------------ remove --

@dataclass
class Removal:
    """`stack rm` in two steps: everything but networks, then the networks."""
    actions: list[store_pb2.StoreAction] = field(default_factory=list)
    changes: list[cpb.StackChange] = field(default_factory=list)
    service_ids: set[str] = field(default_factory=set)
    networks: list[pb.Network] = field(default_factory=list)


def removal(stack: str, current: Current) -> Removal:
    """What removing `stack` removes; refused when nothing belongs to it, or when an
    object outside the stack still uses one of its secrets, configs or networks.
    An empty name is refused: every object outside all stacks has the empty namespace."""
    if not stack:
        raise invalid("stack name must not be empty: name the stack to remove, as "
                      "'swarm stack ls' lists it")
    record = current.stack(stack)
    external = set(record.definition.external_networks) if record is not None else set()
    out = Removal(networks=[n for n in of_stack(current.networks, stack)
                            if n.spec.annotations.name not in external])
    doomed = of_stack(current.services, stack)
    out.service_ids = {s.id for s in doomed}
    others = [s for s in current.services if s.id not in out.service_ids]
    for svc in doomed:
        out.actions.append(actions.remove(svc))
        out.changes.append(Change(action=Change.REMOVE, kind="service",
                                  name=svc.spec.annotations.name, id=svc.id))
    for kind, objects in (("secret", current.secrets), ("config", current.configs)):
        for obj in of_stack(objects, stack):
            secrets.check_unused(kind, obj, others)
            out.actions.append(actions.remove(obj))
            out.changes.append(Change(action=Change.REMOVE, kind=kind,
                                      name=obj.spec.annotations.name, id=obj.id))
    for net in out.networks:
        networks.check_removable(net, others, [])
    if record is not None:
        out.actions.append(actions.remove(record))
    if not out.actions and not out.networks:
        raise Refusal(Code.NOT_FOUND, f"Nothing found in stack: {stack}")
    return out


def stack_tasks(service_ids: set[str], tasks: Iterable[pb.Task]) -> list[pb.Task]:
    """The tasks of the removed services still in the store (the reaper deletes them)."""
    return [t for t in tasks if t.service_id in service_ids]


def network_removal(nets: Iterable[pb.Network], current: Current) -> Plan:
    """The second step of `stack rm`: the networks still there, checked to be unused."""
    out = Plan()
    for net in nets:
        now = next((n for n in current.networks if n.id == net.id), None)
        if now is None:
            continue
        networks.check_removable(now, current.services, current.tasks)
        out.add(actions.remove(now), Change.REMOVE, "network", now.spec.annotations.name, now.id)
    return out


def summaries(current: Current) -> list[cpb.StackSummary]:
    """`stack ls`: every stack (recorded, or named by a service's label) and its services."""
    names = {s.name for s in current.stacks} | {
        namespace_of(s) for s in current.services if namespace_of(s)}
    return [cpb.StackSummary(name=n, services=len(of_stack(current.services, n)))
            for n in sorted(names)]
