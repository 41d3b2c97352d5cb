"""The mounts of a task's container, from its ContainerSpec (Docker's --mount).

Owns the translation of `pb.Mount` into the runtime's `Mount` (`container_mounts`),
the named volumes a task needs on its node (`volumes_needed`: created on
first use with their labels, driver and options, reused afterwards, never
removed with a task or a service), and the checks an agent makes on its own
node before it creates the container (`check_node`): a bind source that does
not exist rejects the task with Docker's words. A volume driver the node's
engine does not have is refused by the runtime when it creates the volume.
The translation is pure; `check_node` looks at the node's filesystem.
"""
from __future__ import annotations

import os
from typing import Callable

from proto import objects_pb2 as pb
from worker.runtime import BIND, TMPFS, VOLUME, Mount, VolumeConfig

LOCAL_DRIVER = "local"


class MountError(Exception):
    """A mount this node cannot provide; the message is fit for the task's error."""


def _type(mount: pb.Mount) -> str:
    return {pb.Mount.BIND: BIND, pb.Mount.TMPFS: TMPFS}.get(mount.type, VOLUME)


def container_mounts(spec: pb.ContainerSpec) -> list[Mount]:
    """The runtime mounts of the spec's `mounts`, in their order."""
    mounts: list[Mount] = []
    for m in spec.mounts:
        kind = _type(m)
        mounts.append(Mount(
            source="" if kind == TMPFS else m.source, target=m.target, read_only=m.read_only,
            type=kind,
            propagation=m.bind_options.propagation if kind == BIND else "",
            no_copy=m.volume_options.no_copy if kind == VOLUME else False,
            tmpfs_size=m.tmpfs_options.size_bytes if kind == TMPFS else 0,
            tmpfs_mode=m.tmpfs_options.mode if kind == TMPFS else 0))
    return mounts


def volumes_needed(spec: pb.ContainerSpec) -> list[VolumeConfig]:
    """The named volumes the spec mounts, once each (the first mount of a name gives its
    labels, driver and options). Anonymous volumes are the engine's business."""
    found: dict[str, VolumeConfig] = {}
    for m in spec.mounts:
        if _type(m) != VOLUME or not m.source or m.source in found:
            continue
        opts = m.volume_options
        found[m.source] = VolumeConfig(name=m.source, driver=opts.driver,
                                       labels=dict(opts.labels),
                                       options=dict(opts.driver_options))
    return list(found.values())


def check_node(spec: pb.ContainerSpec,
               exists: Callable[[str], bool] = os.path.exists) -> None:
    """Raises MountError for a mount the node cannot provide: a bind source that does
    not exist (Docker's message), an anonymous volume with volume options (only a named
    volume can be created with them)."""
    for m in spec.mounts:
        kind = _type(m)
        if kind == BIND and not exists(m.source):
            raise MountError(f'invalid mount config for type "bind": bind source path does '
                             f"not exist: {m.source}")
        opts = m.volume_options
        if kind == VOLUME and not m.source and (opts.driver_options or opts.labels
                                                or opts.driver not in ("", LOCAL_DRIVER)):
            raise MountError(f"invalid mount config for the anonymous volume at {m.target}: "
                             "volume-driver, volume-opt and volume-label need a named volume "
                             "(give the mount a source)")

