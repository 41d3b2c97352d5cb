"""StoreView: a consistent, read-only snapshot of every table in the store.

Pure decision code (orchestrators, scheduler) takes a StoreView and returns
actions, so it can be tested without raft. Objects in a view are shared with
the store: never mutate them; copy (`o2 = type(o)(); o2.CopyFrom(o)`) first.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

from proto import objects_pb2 as pb


@dataclass(frozen=True)
class TaskLog:
    """Which tasks changed at which store version, as far back as the store keeps it.

    `entries` are (version, IDs of the tasks that transaction created, updated or
    removed), in version order; the list is shared with the store, which only ever
    appends to it (or starts a new list), so a view reads `entries[:end]`, what was
    there when it was taken. Every task change after version `start` is in it."""

    entries: Sequence[tuple[int, tuple[str, ...]]]
    start: int
    end: int

    def since(self, version: int) -> Optional[list[str]]:
        """IDs of the tasks changed after `version`, each once, in the order of their
        first change (None: the log does not reach back that far)."""
        if version < self.start:
            return None
        first = bisect.bisect_right(self.entries, version, 0, self.end, key=lambda e: e[0])
        changed: dict[str, None] = {}
        for n in range(first, self.end):
            changed.update(dict.fromkeys(self.entries[n][1]))
        return list(changed)


@dataclass(frozen=True)
class StoreView:
    version: int = 0
    nodes: Mapping[str, pb.Node] = field(default_factory=dict)
    services: Mapping[str, pb.Service] = field(default_factory=dict)
    tasks: Mapping[str, pb.Task] = field(default_factory=dict)
    networks: Mapping[str, pb.Network] = field(default_factory=dict)
    secrets: Mapping[str, pb.Secret] = field(default_factory=dict)
    configs: Mapping[str, pb.Config] = field(default_factory=dict)
    clusters: Mapping[str, pb.Cluster] = field(default_factory=dict)
    stacks: Mapping[str, pb.Stack] = field(default_factory=dict)
    # task changes up to this view's version (None: unknown, e.g. a view built by hand)
    task_log: Optional[TaskLog] = None

    def tasks_changed_since(self, version: int) -> Optional[list[str]]:
        """IDs of the tasks created, updated or removed after `version`, up to this view,
        in the order of their first change; None when that is not known (no log, or it
        does not reach back so far)."""
        if version == self.version:
            return []
        if self.task_log is None or version > self.version:
            return None
        return self.task_log.since(version)

    def table(self, kind: str) -> Mapping:
        """The table of a kind name ("node", "service", ...)."""
        return getattr(self, kind + "s")

    @property
    def cluster(self) -> Optional[pb.Cluster]:
        """The cluster object (there is one per cluster), or None before init."""
        for c in self.clusters.values():
            return c
        return None
