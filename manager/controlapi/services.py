"""Control API rules for services: the checks of a spec and the create/update decisions.

Pure functions: a spec is normalised (defaults a Docker user relies on),
validated, and its references (networks, secrets, configs by name or ID) are
resolved against the objects the caller read from the store. An update keeps
the name and the mode, and bumps the spec version when tasks must change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from manager import pullauth, secretrefs, validation
from manager.allocator import ports
from manager.controlapi.common import Code, Refusal, check_version, find, invalid, precondition
from manager.objects import copy
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb

HOST_NETWORK = "host"  # Docker's predefined network: tasks share their node's network stack


@dataclass
class Refs:
    """The objects a service spec may refer to or clash with, as the store holds them."""
    networks: list[pb.Network] = field(default_factory=list)
    secrets: list[pb.Secret] = field(default_factory=list)
    configs: list[pb.Config] = field(default_factory=list)
    services: list[pb.Service] = field(default_factory=list)


def resolve_networks(spec: pb.ServiceSpec, networks: list[pb.Network]) -> None:
    """Turns network names into IDs in place; the host network stands alone."""
    for att in spec.task.networks:
        if att.target == HOST_NETWORK:
            if len(spec.task.networks) > 1:
                raise invalid("a service on the host network can't be attached to other networks")
            if spec.endpoint.ports and any(p.publish_mode == pb.PortConfig.INGRESS
                                           for p in spec.endpoint.ports):
                raise invalid("ingress-published ports need an overlay network; with "
                              "--network host publish mode=host")
            continue
        net = find(networks, "network", att.target)
        if net.spec.config_only:
            name = net.spec.annotations.name
            raise invalid(f"network {name} is a configuration-only network (--config-only): "
                          "services cannot use it; create a network from it with `swarm "
                          f"network create --config-from {name} NAME` and use that one")
        if net.spec.ingress:
            raise invalid("service cannot be explicitly attached to the ingress network "
                          f"\"{net.spec.annotations.name}\": publish a port (-p) to use the "
                          "routing mesh")
        att.target = net.id


def checked_spec(spec: pb.ServiceSpec, refs: Refs, own_id: str = "") -> pb.ServiceSpec:
    """A normalised, validated copy of `spec` with its references resolved to IDs."""
    spec = copy(spec)
    validation.normalise_service_spec(spec)
    try:
        validation.check_service_spec(spec)
        pullauth.checked(spec)
    except (validation.InvalidSpec, pullauth.InvalidAuth) as exc:
        raise invalid(str(exc)) from None
    resolve_networks(spec, refs.networks)
    try:
        secretrefs.resolve(spec.task.container, refs.secrets, refs.configs)
    except secretrefs.RefError as exc:
        raise invalid(str(exc)) from None
    conflict = ports.first_conflict(spec.endpoint, refs.services, own_id)
    if conflict:
        raise invalid(conflict)
    return spec


def new_service(request: cpb.CreateServiceRequest, refs: Refs) -> pb.Service:
    """The service to create; refused when the spec is bad or the name is taken."""
    spec = checked_spec(request.spec, refs)
    name = spec.annotations.name
    if any(s.spec.annotations.name == name for s in refs.services):
        raise Refusal(Code.ALREADY_EXISTS,
                      f"name conflicts with an existing object: service {name} already exists")
    svc = pb.Service(id=model.new_id(), spec=spec, spec_version=1)
    svc.endpoint.spec.CopyFrom(spec.endpoint)
    svc.endpoint.ports.extend(spec.endpoint.ports)
    return svc


_JOB_MODES = ("replicated_job", "global_job")


def updated_service(svc: pb.Service, request: cpb.UpdateServiceRequest,
                    refs: Refs) -> Optional[pb.Service]:
    """The service with the new spec (or its previous one on rollback); None if unchanged."""
    check_version("service", svc, request.service_version)
    if request.rollback:
        if not svc.HasField("previous_spec"):
            raise precondition(f"service {svc.spec.annotations.name} does not have a "
                               "previous spec")
        wanted = svc.previous_spec
    else:
        wanted = request.spec
    spec = checked_spec(wanted, refs, own_id=svc.id)
    if not request.rollback:   # no credentials sent: the stored ones stay (as Docker)
        pullauth.kept(spec, wanted, svc.spec)
    if spec.annotations.name != svc.spec.annotations.name:
        raise invalid("renaming a service is not supported")
    if spec.WhichOneof("mode") != svc.spec.WhichOneof("mode"):
        raise invalid("service mode change is not allowed")
    if spec.WhichOneof("mode") in _JOB_MODES:
        # every update of a job re-runs it (Docker bumps its job iteration): the
        # spec version is the job's iteration, see manager/orchestrator/jobs.py
        new = copy(svc)
        if spec != svc.spec:
            new.previous_spec.CopyFrom(svc.spec)
            new.spec.CopyFrom(spec)
        new.spec_version = svc.spec_version + 1
        new.endpoint.spec.CopyFrom(spec.endpoint)
        return new
    if spec == svc.spec:
        return None
    new = copy(svc)
    new.previous_spec.CopyFrom(svc.spec)
    new.spec.CopyFrom(spec)
    # new credentials alone replace no task (swarmkit's dirty check ignores them)
    if not pullauth.same_task(spec.task, svc.spec.task) or spec.endpoint != svc.spec.endpoint:
        new.spec_version = svc.spec_version + 1
        new.update_status.Clear()
        new.update_status.state = (pb.UpdateStatus.ROLLBACK_STARTED if request.rollback
                                   else pb.UpdateStatus.UPDATING)
        new.update_status.started_at.CopyFrom(model.timestamp())
        new.update_status.message = ("manually requested rollback" if request.rollback
                                     else "update in progress")
    # ports as allocated and VIPs are the allocator's (it keeps assigned ports)
    new.endpoint.spec.CopyFrom(spec.endpoint)
    return new


def log_tasks(svc: pb.Service, tasks: list[pb.Task], task_ids: list[str]) -> list[pb.Task]:
    """The service's tasks whose logs a ServiceLogs call reads (placed ones, optionally some)."""
    return [t for t in tasks if t.service_id == svc.id and t.node_id
            and (not task_ids or t.id in task_ids)]
