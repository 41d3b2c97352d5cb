"""Secret and config references of services, and which of them a node receives.

Owns two pure decisions (no I/O, no store access):

* `resolve(container, secrets, configs)`: turns the references of a service's
  container spec (a name, an ID or an ID prefix, as a person typed them) into
  full references (ID, name, target, owner, mode) and checks them: the object
  exists, targets are sane paths and no two files land on the same path, nor
  a mount of the container on a file or inside one.
* `wanted(tasks)`: the secret and config IDs a node must hold for the tasks
  assigned to it: those of tasks that are not over and still meant to run.
  The dispatcher sends exactly these to the node and withdraws the rest.
"""
from __future__ import annotations

import posixpath
from typing import Iterable, Sequence

from manager import lookup
from proto import model
from proto import objects_pb2 as pb

SECRETS_DIR = "/run/secrets"   # where a relative secret target lands in the container
DEFAULT_MODE = 0o444
MAX_MODE = 0o7777
MAX_SECRET_SIZE = 500 * 1024   # swarmkit's limits
MAX_CONFIG_SIZE = 1000 * 1024


class RefError(ValueError):
    """A reference names nothing, or its target/mode is not acceptable."""


def check_data(kind: str, data: bytes) -> None:
    """Refuses empty data and data over the size limit of its kind."""
    limit = MAX_SECRET_SIZE if kind == "secret" else MAX_CONFIG_SIZE
    if not data:
        raise RefError(f"{kind} data must not be empty")
    if len(data) > limit:
        raise RefError(f"{kind} data is {len(data)} bytes; the limit is {limit // 1024} KiB")


def _find(objects: Sequence, kind: str, ref: str) -> object:
    try:
        return lookup.resolve(objects, kind, ref)
    except lookup.NotFound:
        raise RefError(f"{kind} not found: {ref}") from None
    except lookup.Ambiguous as exc:
        raise RefError(str(exc)) from None


def _clean_path(kind: str, name: str, target: str) -> str:
    """Normalises a target; refuses empty ones and ones that climb out with '..'."""
    if not target or target.strip() != target or "\0" in target:
        raise RefError(f"invalid target {target!r} for {kind} {name}: expected a file name "
                       "or an absolute path")
    parts = [p for p in target.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise RefError(f"invalid target {target!r} for {kind} {name}: it must name a file "
                       "and must not contain '..'")
    return ("/" if target.startswith("/") else "") + "/".join(parts)


def secret_path(target: str) -> str:
    """Where a secret's file appears in the container: relative targets go under /run/secrets."""
    return target if target.startswith("/") else posixpath.join(SECRETS_DIR, target)


def config_path(target: str) -> str:
    """Where a config's file appears in the container (relative targets hang off /)."""
    return target if target.startswith("/") else "/" + target


def _check_mode(kind: str, name: str, mode: int) -> None:
    if mode > MAX_MODE:
        raise RefError(f"invalid mode {oct(mode)} for {kind} {name}: expected an octal file "
                       "mode such as 0444 or 0400")


def resolve(container: pb.ContainerSpec, secrets: Sequence[pb.Secret],
            configs: Sequence[pb.Config]) -> None:
    """Completes and checks the secret and config references of `container` in place.

    A mode of 0 (unset in the API) becomes 0444, as Docker's CLI defaults.
    Raises RefError naming the first problem ("secret not found: NAME", a bad
    target, two files on one path).
    """
    paths: dict[str, str] = {}

    def claim(path: str, what: str) -> None:
        if path in paths:
            raise RefError(f"{what} and {paths[path]} are both mounted at {path}: give one of "
                           "them another target")
        paths[path] = what

    for sref in container.secrets:
        sec = _find(secrets, "secret", sref.secret_id or sref.secret_name)
        sref.secret_id, sref.secret_name = sec.id, sec.spec.annotations.name  # type: ignore
        sref.target = _clean_path("secret", sref.secret_name, sref.target or sref.secret_name)
        sref.mode = sref.mode or DEFAULT_MODE
        _check_mode("secret", sref.secret_name, sref.mode)
        claim(secret_path(sref.target), f"secret {sref.secret_name}")
    for cref in container.configs:
        cfg = _find(configs, "config", cref.config_id or cref.config_name)
        cref.config_id, cref.config_name = cfg.id, cfg.spec.annotations.name  # type: ignore
        cref.target = config_path(_clean_path("config", cref.config_name,
                                              cref.target or "/" + cref.config_name))
        cref.mode = cref.mode or DEFAULT_MODE
        _check_mode("config", cref.config_name, cref.mode)
        claim(cref.target, f"config {cref.config_name}")
    _check_mount_targets(container.mounts, paths)


def _check_mount_targets(mounts: Iterable[pb.Mount], files: dict[str, str]) -> None:
    """A mount cannot share its target with a secret or config file, nor lie inside one."""
    for mount in mounts:
        target = posixpath.normpath(mount.target) if mount.target else mount.target
        for path, what in files.items():
            if target == path or target.startswith(path + "/"):
                raise RefError(f"mount target {mount.target} collides with {what} at {path}: "
                               "give the mount or the file another target")


def needs_files(task: pb.Task) -> bool:
    """Whether a node must hold this task's secrets and configs: the task is not over
    and is still meant to run."""
    return not model.is_terminal(task.status.state) and task.desired_state <= pb.RUNNING


def wanted(tasks: Iterable[pb.Task]) -> tuple[set[str], set[str]]:
    """(secret IDs, config IDs) a node needs for these tasks assigned to it."""
    secret_ids: set[str] = set()
    config_ids: set[str] = set()
    for task in tasks:
        if not needs_files(task):
            continue
        secret_ids.update(r.secret_id for r in task.spec.container.secrets if r.secret_id)
        config_ids.update(r.config_id for r in task.spec.container.configs if r.config_id)
    return secret_ids, config_ids
