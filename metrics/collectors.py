"""Gauges read at scrape time from state Shoal already keeps.

Each collector is given the functions that read its source (the store's
`list`, the raft status, the agent's task states, the node's certificate),
never the component itself, so this package imports nothing above `proto`.
A scrape reads the store's tables (a local read, no raft round trip) and
counts; nothing is kept between scrapes.

Cluster gauges (nodes, tasks, services) come from every manager's replica of
the store: managers agree once they have applied the same entries, so
aggregate over managers with `max`, not `sum` (or keep the leader's, where
`shoal_raft_leader == 1`). A follower still answers while the leader is gone.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Optional

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from proto import objects_pb2 as pb

ListObjects = Callable[[str], list]   # the store's `list(kind)`

NODE_STATES = [pb.NodeStatus.State.Name(v).lower() for v in pb.NodeStatus.State.values()]
AVAILABILITIES = [pb.NodeSpec.Availability.Name(v).lower()
                  for v in pb.NodeSpec.Availability.values()]
ROLES = [pb.NodeRole.Name(v).lower() for v in pb.NodeRole.values()]
TASK_STATES = [pb.TaskState.Name(v).lower() for v in pb.TaskState.values()]
UPDATE_STATES = ["none" if v == pb.UpdateStatus.UNKNOWN else
                 pb.UpdateStatus.State.Name(v).lower() for v in pb.UpdateStatus.State.values()]


_TASK_STATE_NAMES = {v: pb.TaskState.Name(v).lower() for v in pb.TaskState.values()}
_UPDATE_STATE_NAMES = dict(zip(pb.UpdateStatus.State.values(), UPDATE_STATES))

# (observed state, desired state) -> number of tasks, for one service
StateCounts = Mapping[tuple[int, int], int]


def _task_state(value: int) -> str:
    return _TASK_STATE_NAMES.get(value) or str(value)


def desired_tasks(service: pb.Service, counts: StateCounts) -> int:
    """How many tasks the service wants running: a replicated service its
    replicas; a global service the tasks the orchestrator wants running (one
    per eligible node); a job the tasks of its current run not finished yet."""
    mode = service.spec.WhichOneof("mode")
    if mode == "replicated":
        return int(service.spec.replicated.replicas)
    if mode == "global":
        return sum(n for (_, desired), n in counts.items() if desired == pb.RUNNING)
    return sum(n for (state, desired), n in counts.items()
               if desired == pb.COMPLETE and state <= pb.RUNNING)


def running_tasks(counts: StateCounts) -> int:
    """Tasks observed RUNNING that are meant to run (not being shut down)."""
    return sum(n for (state, desired), n in counts.items()
               if state == pb.RUNNING and desired in (pb.RUNNING, pb.COMPLETE))


TaskCounts = Counter  # (service ID, observed state, desired state) -> tasks
CHUNK = 500  # tasks counted between two hand-overs of the GIL


def count_tasks(tasks: list) -> TaskCounts:
    """Tasks by (service ID, observed state, desired state), in one pass.

    A scrape runs on a thread of the node's process: every CHUNK tasks it
    lets the raft thread and the event loop run (time.sleep(0) hands the GIL
    over), so a big store's count costs them a few waits of under a
    millisecond instead of one stall as long as the whole count.
    """
    counts: TaskCounts = Counter()
    for start in range(0, len(tasks), CHUNK):
        counts.update((t.service_id, t.status.state, t.desired_state)
                      for t in tasks[start:start + CHUNK])
        time.sleep(0)
    return counts


class ClusterCollector(Collector):
    """Nodes, tasks and services as this manager's store holds them.

    One pass over the tasks (three fields read per task); with `version` (the
    store's), a scrape at an unchanged version answers what the last one built.
    """

    def __init__(self, list_objects: ListObjects,
                 version: Optional[Callable[[], int]] = None) -> None:
        self.list_objects = list_objects
        self.version = version
        self._cache: tuple[int, list[Metric]] = (-1, [])

    def collect(self) -> Iterator[Metric]:
        version = self.version() if self.version is not None else -1
        cached_version, cached = self._cache
        if version >= 0 and version == cached_version:
            yield from cached
            return
        tasks = count_tasks(self.list_objects("task"))
        families: list[Metric] = [self._nodes(self.list_objects("node")), self._tasks(tasks),
                    *self._services(self.list_objects("service"), tasks)]
        if version >= 0:
            self._cache = (version, families)
        yield from families

    @staticmethod
    def _nodes(nodes: list) -> GaugeMetricFamily:
        counts = {(role, state, avail): 0 for role in ROLES for state in NODE_STATES
                  for avail in AVAILABILITIES}
        for n in nodes:
            key = (pb.NodeRole.Name(n.role).lower(),
                   pb.NodeStatus.State.Name(n.status.state).lower(),
                   pb.NodeSpec.Availability.Name(n.spec.availability).lower())
            counts[key] = counts.get(key, 0) + 1
        family = GaugeMetricFamily("shoal_nodes", "Nodes in the cluster by role, state and "
                                   "availability.", labels=["role", "state", "availability"])
        for (role, state, avail), count in sorted(counts.items()):
            family.add_metric([role, state, avail], count)
        return family

    @staticmethod
    def _tasks(tasks: TaskCounts) -> GaugeMetricFamily:
        counts = dict.fromkeys(TASK_STATES, 0)
        for (_, state, _), n in tasks.items():
            name = _task_state(state)
            counts[name] = counts.get(name, 0) + n
        family = GaugeMetricFamily("shoal_tasks", "Tasks in the store by observed state "
                                   "(kept history included).", labels=["state"])
        for name, count in counts.items():
            family.add_metric([name], count)
        return family

    @staticmethod
    def _services(services: list, tasks: TaskCounts) -> list[GaugeMetricFamily]:
        by_service: dict[str, dict[tuple[int, int], int]] = {}
        for (service_id, state, desired), n in tasks.items():
            by_service.setdefault(service_id, {})[(state, desired)] = n
        labels = ["service", "service_id"]
        desired = GaugeMetricFamily("shoal_service_tasks_desired", "Tasks a service wants "
                                    "running (replicas; for global services one per eligible "
                                    "node).", labels=labels)
        running = GaugeMetricFamily("shoal_service_tasks_running", "Tasks of a service "
                                    "observed running.", labels=labels)
        by_state = GaugeMetricFamily("shoal_service_tasks", "Tasks of a service by observed "
                                     "state.", labels=[*labels, "state"])
        update = GaugeMetricFamily("shoal_service_update_state", "1 for the state of the "
                                   "service's rolling update (none: never updated), 0 for the "
                                   "others.", labels=[*labels, "state"])
        for s in sorted(services, key=lambda s: s.spec.annotations.name):
            name, own = s.spec.annotations.name, by_service.get(s.id, {})
            desired.add_metric([name, s.id], desired_tasks(s, own))
            running.add_metric([name, s.id], running_tasks(own))
            states: dict[str, int] = {}
            for (state, _), n in own.items():
                key = _task_state(state)
                states[key] = states.get(key, 0) + n
            for state_name, count in sorted(states.items()):
                by_state.add_metric([name, s.id, state_name], count)
            current = _UPDATE_STATE_NAMES.get(s.update_status.state, "none") \
                if s.HasField("update_status") else "none"
            for state_name in UPDATE_STATES:
                update.add_metric([name, s.id, state_name], 1 if state_name == current else 0)
        return [desired, running, by_state, update]


@dataclass(frozen=True)
class RaftStatus:
    """What a manager's raft replica reports (raft/store.py `Store.status`)."""
    term: int
    last_index: int
    commit_index: int
    applied_index: int
    is_leader: bool
    members: int


class RaftCollector(Collector):
    """Raft's term, indexes, leadership and membership on this manager."""

    def __init__(self, status: Callable[[], Optional[RaftStatus]]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        status = self.status()
        if status is None:  # the store is not running (yet, or any more)
            return
        for name, text, value in (
                ("shoal_raft_term", "Current raft term.", status.term),
                ("shoal_raft_last_log_index", "Index of the last entry in this manager's raft "
                 "log.", status.last_index),
                ("shoal_raft_commit_index", "Raft commit index known to this manager.",
                 status.commit_index),
                ("shoal_raft_applied_index", "Index of the last raft entry applied to this "
                 "manager's store.", status.applied_index),
                ("shoal_raft_leader", "1 when this manager is the raft leader.",
                 int(status.is_leader)),
                ("shoal_raft_members", "Voting members of the raft group.", status.members)):
            yield GaugeMetricFamily(name, text, value=value)


class AgentCollector(Collector):
    """The tasks this node's agent controls, by the state it last reported."""

    def __init__(self, task_states: Callable[[], dict[str, int]]) -> None:
        self.task_states = task_states

    def collect(self) -> Iterator[Metric]:
        counts = dict.fromkeys(TASK_STATES, 0)
        for value in self.task_states().values():
            name = _task_state(value)
            counts[name] = counts.get(name, 0) + 1
        family = GaugeMetricFamily("shoal_agent_tasks", "Tasks this node's agent controls, by "
                                   "the state it last reported.", labels=["state"])
        for name, count in counts.items():
            family.add_metric([name], count)
        yield family


class NodeCollector(Collector):
    """Who this node is, its certificate's expiry and its dispatcher sessions."""

    def __init__(self, node_id: str, role: str, cert_not_after: Callable[[], float],
                 dispatcher_sessions: Optional[Callable[[], int]] = None) -> None:
        self.node_id = node_id
        self.role = role
        self.cert_not_after = cert_not_after
        self.dispatcher_sessions = dispatcher_sessions

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("shoal_node_info", "Always 1: this node's ID and role.",
                                 labels=["node_id", "role"])
        info.add_metric([self.node_id, self.role], 1)
        yield info
        yield GaugeMetricFamily("shoal_node_certificate_expiry_timestamp_seconds",
                                "When this node's current TLS certificate expires (Unix time).",
                                value=self.cert_not_after())
        if self.dispatcher_sessions is not None:
            yield GaugeMetricFamily("shoal_dispatcher_sessions", "Agent sessions open on this "
                                    "manager's dispatcher (0 on a follower).",
                                    value=self.dispatcher_sessions())
