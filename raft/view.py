"""StoreView: a consistent, read-only snapshot of every table in the store.

Pure decision code (orchestrators, scheduler) takes a StoreView and returns
actions, so it can be tested without raft. Objects in a view are shared with
the store: never mutate them; copy (`o2 = type(o)(); o2.CopyFrom(o)`) first.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from proto import objects_pb2 as pb


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

    def table(self, kind: str) -> Mapping:
        """The table of a kind name ("node", "service", ...)."""
        return getattr(self, kind + "s")

    @property
    def cluster(self) -> Optional[pb.Cluster]:
        """The cluster object (there is one per cluster), or None before init."""
        for c in self.clusters.values():
            return c
        return None
