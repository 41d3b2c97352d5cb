"""What never leaves a manager through its APIs: the one place that strips it.

Secret data, root CA keys (also the next root's during a rotation), the overlay
encryption keys, the autolock unlock key and the registry credentials of
services (`--with-registry-auth`: ContainerSpec.pull_options, in a service's
spec and previous spec and in every task's spec) live in the store (encrypted
at rest) but are not answers: the control API and the Watch API both pass
objects through these functions. Secrets and registry credentials reach
workers through the dispatcher (a task only to its node), overlay keys through
network views, the unlock key through Control.GetUnlockKey only.
"""
from __future__ import annotations

from proto import objects_pb2 as pb
from proto import watch_pb2 as wpb


def cluster_has_keys(cluster: pb.Cluster) -> bool:
    """Whether `cluster` carries anything `cluster` below would strip."""
    return bool(cluster.root_ca_key or cluster.network_keys or cluster.unlock_key
                or cluster.spec.ca_config.signing_ca_key
                or (cluster.HasField("root_rotation") and cluster.root_rotation.ca_key))


def strip_cluster(cluster: pb.Cluster) -> None:
    """Removes the keys from `cluster` in place (callers pass a copy)."""
    cluster.ClearField("root_ca_key")
    cluster.spec.ca_config.signing_ca_key = b""   # never stored; stripped all the same
    if cluster.HasField("root_rotation"):
        cluster.root_rotation.ClearField("ca_key")
    del cluster.network_keys[:]
    cluster.unlock_key = ""


def cluster(obj: pb.Cluster) -> pb.Cluster:
    """The cluster as an API answer: a copy without keys (or `obj` when it has none)."""
    if not cluster_has_keys(obj):
        return obj
    out = pb.Cluster()
    out.CopyFrom(obj)
    strip_cluster(out)
    return out


def secret(obj: pb.Secret) -> pb.Secret:
    """The secret as an API answer: a copy without its data."""
    out = pb.Secret()
    out.CopyFrom(obj)
    out.spec.data = b""
    return out


def _spec_has_auth(spec: pb.ServiceSpec) -> bool:
    return spec.task.container.HasField("pull_options")


def service_has_auth(svc: pb.Service) -> bool:
    """Whether `svc` carries registry credentials (in its spec or previous spec)."""
    return _spec_has_auth(svc.spec) or _spec_has_auth(svc.previous_spec)


def strip_service(svc: pb.Service) -> None:
    """Removes the registry credentials from `svc` in place (callers pass a copy)."""
    svc.spec.task.container.ClearField("pull_options")
    if svc.HasField("previous_spec"):
        svc.previous_spec.task.container.ClearField("pull_options")


def service(obj: pb.Service) -> pb.Service:
    """The service as an API answer: a copy without registry credentials (or `obj`)."""
    if not service_has_auth(obj):
        return obj
    out = pb.Service()
    out.CopyFrom(obj)
    strip_service(out)
    return out


def task(obj: pb.Task) -> pb.Task:
    """The task as an API answer: a copy without registry credentials (or `obj`)."""
    if not obj.spec.container.HasField("pull_options"):
        return obj
    out = pb.Task()
    out.CopyFrom(obj)
    out.spec.container.ClearField("pull_options")
    return out


def _stack_has_auth(stack: pb.Stack) -> bool:
    return any(_spec_has_auth(s) for d in (stack.definition, stack.previous_definition)
               for s in d.services)


def _strip_stack(stack: pb.Stack) -> None:
    for definition in (stack.definition, stack.previous_definition):
        for spec in definition.services:
            spec.task.container.ClearField("pull_options")


def _strip_object(obj: pb.StoreObject) -> None:
    kind = obj.WhichOneof("object")
    if kind == "secret":
        obj.secret.spec.data = b""
    elif kind == "cluster":
        strip_cluster(obj.cluster)
    elif kind == "service":
        strip_service(obj.service)
    elif kind == "task":
        obj.task.spec.container.ClearField("pull_options")
    elif kind == "stack":
        _strip_stack(obj.stack)


def _needs_stripping(obj: pb.StoreObject) -> bool:
    kind = obj.WhichOneof("object")
    return (kind == "secret" or (kind == "cluster" and cluster_has_keys(obj.cluster))
            or (kind == "service" and service_has_auth(obj.service))
            or (kind == "task" and obj.task.spec.container.HasField("pull_options"))
            or (kind == "stack" and _stack_has_auth(obj.stack)))


def event(ev: wpb.WatchEvent, include_old: bool) -> wpb.WatchEvent:
    """The event as a watcher gets it: without the old object unless asked, and with
    the object(s) stripped as above (store events are shared, so changes go to a copy)."""
    keep_old = include_old and ev.HasField("old_object")
    dirty = _needs_stripping(ev.object) or (keep_old and _needs_stripping(ev.old_object))
    if not dirty and (keep_old or not ev.HasField("old_object")):
        return ev
    out = wpb.WatchEvent(action=ev.action, object=ev.object, version=ev.version,
                         committed_at=ev.committed_at)
    if keep_old:
        out.old_object.CopyFrom(ev.old_object)
    _strip_object(out.object)
    if keep_old:
        _strip_object(out.old_object)
    return out
