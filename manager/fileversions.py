"""Versions of a stack's secrets and configs, and when an old version may go.

Docker refuses a stack redeploy whose secret or config file changed ("only
updates to Labels are allowed"). Shoal rolls instead, and this module owns the
naming and the life of the versions (pure: no I/O, no store access):

- The definition names the object (`<stack>_<key>`, or the file's `name:`).
  Its first content is stored under that name; each later content is a new
  object `<name>.v2`, `<name>.v3`, ... labelled `VERSION_OF=<name>`.
- A deploy with new content creates the next version (`next_name`) and labels
  the version the services used `SUPERSEDED=<new ID>`; the services'
  references move to the new version under the same target, so their specs
  change and they roll with their update_config.
- `sweepable` says which superseded versions nothing can use any more: no
  service refers to them and no task that may still be running does. The
  orchestrator removes those.
"""
from __future__ import annotations

import re
from typing import Callable, Iterable, Mapping, Optional, Sequence, TypeVar, Union

from proto import objects_pb2 as pb

VERSION_OF = "com.shoal.stack.version-of"     # on `<name>.vN`: the definition's name
SUPERSEDED = "com.shoal.stack.superseded-by"  # on a version replaced: the new one's ID
IN_USE = "com.shoal.stack.version"            # in a stored definition: the version used
INTERNAL = (VERSION_OF, SUPERSEDED, IN_USE)

Versioned = TypeVar("Versioned", pb.Secret, pb.Config)
_SUFFIX = re.compile(r"\.v([0-9]+)$")


def name_of(obj: Union[pb.Secret, pb.Config]) -> str:
    return obj.spec.annotations.name


def family(objects: Iterable[Versioned], name: str) -> list[Versioned]:
    """Every version of the definition's object `name` among `objects` (one stack's)."""
    return [o for o in objects
            if name_of(o) == name or o.spec.annotations.labels.get(VERSION_OF) == name]


def number(obj: Union[pb.Secret, pb.Config]) -> int:
    """The version's number: 1 for the object named as the definition, N for `.vN`."""
    if VERSION_OF not in obj.spec.annotations.labels:
        return 1
    found = _SUFFIX.search(name_of(obj))
    return int(found.group(1)) if found else 1


def live(versions: Sequence[Versioned]) -> Optional[Versioned]:
    """The version in use: the newest one not superseded (None for a first deploy)."""
    current = [v for v in versions if SUPERSEDED not in v.spec.annotations.labels]
    return max(current, key=number) if current else None


def same_content(versions: Sequence[Versioned], data: bytes,
                 prefer: Optional[Versioned]) -> Optional[Versioned]:
    """A version holding `data` (`prefer` if it does), or None."""
    if prefer is not None and prefer.spec.data == data:
        return prefer
    return next((v for v in sorted(versions, key=number, reverse=True)
                 if v.spec.data == data), None)


def next_name(name: str, versions: Sequence[Versioned], taken: Callable[[str], bool]) -> str:
    """`<name>.vN` for the next N (after the highest version there, at least 2) that no
    object of the kind has."""
    n = max([number(v) for v in versions] + [1]) + 1
    while taken(f"{name}.v{n}"):
        n += 1
    return f"{name}.v{n}"


def take_in_use(spec: Union[pb.SecretSpec, pb.ConfigSpec]) -> str:
    """The version a stored definition's secret or config deployed (its name when the
    definition's own), the label that says so taken off the spec."""
    labels = spec.annotations.labels
    if IN_USE not in labels:     # (reading a missing key of a protobuf map adds it)
        return spec.annotations.name
    version = labels[IN_USE]
    del labels[IN_USE]
    return version


def own_labels(obj: Union[pb.Secret, pb.Config]) -> dict[str, str]:
    """The object's labels without the ones this module adds."""
    return {k: v for k, v in obj.spec.annotations.labels.items() if k not in INTERNAL}


_UNSETTLED = (pb.UpdateStatus.UPDATING, pb.UpdateStatus.PAUSED,
              pb.UpdateStatus.ROLLBACK_STARTED, pb.UpdateStatus.ROLLBACK_PAUSED)
Ids = Callable[[pb.ContainerSpec], list[str]]


def service_refs(svc: pb.Service, ids: Ids) -> list[str]:
    """The files a service refers to: its spec's, and while an update is under way or
    paused also its previous spec's (a rollback goes back to them)."""
    out = ids(svc.spec.task.container)
    if svc.HasField("previous_spec") and svc.update_status.state in _UNSETTLED:
        out += ids(svc.previous_spec.task.container)
    return out


def sweepable(objects: Iterable[Versioned], ids: Ids, services: Iterable[pb.Service],
              running: Iterable[pb.Task]) -> list[Versioned]:
    """The superseded versions that no service refers to (`service_refs`) and no task of
    `running` (those that may still be running) does."""
    used: set[str] = set()
    for svc in services:
        used.update(service_refs(svc, ids))
    for task in running:
        used.update(ids(task.spec.container))
    return [o for o in objects
            if SUPERSEDED in o.spec.annotations.labels and o.id not in used]


def secret_ids(container: pb.ContainerSpec) -> list[str]:
    return [r.secret_id for r in container.secrets]


def config_ids(container: pb.ContainerSpec) -> list[str]:
    return [r.config_id for r in container.configs]


def renamed_refs(container: pb.ContainerSpec, secrets: Mapping[str, str],
                 configs: Mapping[str, str]) -> None:
    """Points the container's references at the versions in use (definition name ->
    version name), in place; the targets stay those of the definition's name."""
    for sref in container.secrets:
        version = secrets.get(sref.secret_name, sref.secret_name)
        if version != sref.secret_name:
            sref.target = sref.target or sref.secret_name
            sref.secret_name = version
    for cref in container.configs:
        version = configs.get(cref.config_name, cref.config_name)
        if version != cref.config_name:
            cref.target = cref.target or "/" + cref.config_name
            cref.config_name = version
