"""Control API rules for secrets and configs: creation, label updates, removal while unused.

Secrets and configs are immutable but for their labels. Pure functions over
the objects and services the caller read from the store.
"""
from __future__ import annotations

from typing import Iterable, TypeVar, Union

from manager import secretrefs, validation
from manager.controlapi.common import Code, Refusal, check_version, invalid, precondition
from manager.objects import copy
from proto import model
from proto import objects_pb2 as pb

Stored = TypeVar("Stored", pb.Secret, pb.Config)
Spec = Union[pb.SecretSpec, pb.ConfigSpec]


def new_object(kind: str, obj: Stored, existing: Iterable[Stored]) -> Stored:
    """`obj` (a new secret or config) with an ID; refused on bad data or a bad or taken name."""
    try:
        secretrefs.check_data(kind, obj.spec.data)
    except secretrefs.RefError as exc:
        raise invalid(str(exc)) from None
    name = obj.spec.annotations.name
    try:
        validation.check_name(kind, name)
    except validation.InvalidSpec as exc:
        raise invalid(str(exc)) from None
    if any(o.spec.annotations.name == name for o in existing):
        raise Refusal(Code.ALREADY_EXISTS, f"{kind} {name} already exists")
    obj.id = model.new_id()
    return obj


def relabelled(kind: str, obj: Stored, spec: Spec, version: int) -> Stored:
    """The object with the labels of `spec`; any other change (its data, its name) is
    refused. The name and data may be left out."""
    check_version(kind, obj, version)
    renamed = spec.annotations.name not in ("", obj.spec.annotations.name)
    if renamed or (spec.data and spec.data != obj.spec.data):
        raise invalid(f"only the labels of a {kind} can be changed")
    new = copy(obj)
    new.spec.annotations.labels.clear()
    new.spec.annotations.labels.update(spec.annotations.labels)
    return new


def secret_users(svc: pb.Service) -> list[str]:
    return [r.secret_id for r in svc.spec.task.container.secrets]


def config_users(svc: pb.Service) -> list[str]:
    return [r.config_id for r in svc.spec.task.container.configs]


def check_unused(kind: str, obj: Union[pb.Secret, pb.Config],
                 services: Iterable[pb.Service]) -> None:
    """Refuses to remove a secret or config a service still refers to."""
    refs = secret_users if kind == "secret" else config_users
    users = sorted(s.spec.annotations.name for s in services if obj.id in refs(s))
    if users:
        raise precondition(
            f"{kind} '{obj.spec.annotations.name}' is in use by the following "
            f"service{'s' if len(users) > 1 else ''}: {', '.join(users)}")
