"""Registry credentials of a service (`--with-registry-auth`) in the manager's rules.

Owns what the manager decides about `ContainerSpec.pull_options`, pure functions
over specs:

- `checked`: the credentials a request sends are Docker's X-Registry-Auth value
  (base64url of a JSON object, `proto.imageref.decode_auth`); anything else is
  refused, an empty value means none;
- `kept`: a service update that sends no credentials keeps the stored ones (as
  Docker's daemon does: the CLI cannot read them back to send them again) while
  they name the registry of the updated image; an image moved to another registry
  drops them (Docker would keep them); one that sends an empty value drops them;
- `same_task`: two task specs that differ in their credentials only are the same
  task: changing credentials alone neither bumps the spec version nor replaces
  running tasks (swarmkit ignores them when it decides a task is dirty); new
  tasks get the new ones;
- `same_spec`: the same for whole service specs.

Where they never go is manager/redact.py's concern.
"""
from __future__ import annotations

from proto import objects_pb2 as pb
from proto.imageref import InvalidAuth, auth_matches, decode_auth

__all__ = ["InvalidAuth", "MAX_AUTH", "checked", "kept", "same_task"]

MAX_AUTH = 64 * 1024   # bytes of a registry auth value


def checked(spec: pb.ServiceSpec) -> None:
    """Checks the spec's registry auth in place: an empty one is removed; InvalidAuth for
    one that does not decode (the message never quotes the value)."""
    container = spec.task.container
    if not container.HasField("pull_options"):
        return
    value = container.pull_options.registry_auth
    if not value:
        container.ClearField("pull_options")
        return
    if len(value) > MAX_AUTH:
        raise InvalidAuth(f"registry auth is longer than {MAX_AUTH} bytes")
    decode_auth(value)


def kept(new: pb.ServiceSpec, sent: pb.ServiceSpec, current: pb.ServiceSpec) -> None:
    """An update's checked spec `new` (from the request's `sent`) keeps the credentials of
    the `current` spec when the request sent none, and only while they are for the
    registry of `new`'s image: credentials of registry A are dropped when the image
    moves to registry B (`proto.imageref.auth_matches`)."""
    if sent.task.container.HasField("pull_options"):
        return
    stored = current.task.container
    if stored.HasField("pull_options") and auth_matches(stored.pull_options.registry_auth,
                                                        new.task.container.image):
        new.task.container.pull_options.CopyFrom(stored.pull_options)


def _has_auth(spec: pb.TaskSpec) -> bool:
    return spec.container.HasField("pull_options")


def same_task(a: pb.TaskSpec, b: pb.TaskSpec) -> bool:
    """Whether two task specs are equal but for their registry credentials."""
    if not (_has_auth(a) or _has_auth(b)):
        return a == b
    x, y = pb.TaskSpec(), pb.TaskSpec()
    x.CopyFrom(a)
    y.CopyFrom(b)
    x.container.ClearField("pull_options")
    y.container.ClearField("pull_options")
    return x == y


def same_spec(a: pb.ServiceSpec, b: pb.ServiceSpec) -> bool:
    """Whether two service specs are equal but for their registry credentials (a stack
    rollback recognises the previous spec though the login changed since)."""
    if not (_has_auth(a.task) or _has_auth(b.task)):
        return a == b
    x, y = pb.ServiceSpec(), pb.ServiceSpec()
    x.CopyFrom(a)
    y.CopyFrom(b)
    x.task.container.ClearField("pull_options")
    y.task.container.ClearField("pull_options")
    return x == y
