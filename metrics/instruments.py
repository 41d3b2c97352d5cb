"""The metrics Shoal updates as things happen: counters and histograms, per node.

`NodeMetrics` owns one `CollectorRegistry` and every instrumented metric of
one node process (tests and the lab run several nodes in one process, so
nothing is registered in prometheus_client's global registry). Components
receive the `NodeMetrics` of their node and update it inline; each update
is a lock and an addition (a histogram also finds its bucket), cheap next to
the work it measures. A component built without one gets a private
`NodeMetrics` that nobody serves.

Names follow Prometheus' conventions: the `shoal_` prefix, base units in the
name (`_seconds`), `_total` on counters (prometheus_client adds it).
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Latencies from 0.5 ms (an fdatasync on a fast disk) to 10 s (a stuck write).
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                2.5, 5.0, 10.0)
# Container starts: podman takes 0.1-1 s per container, more under load.
START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class NodeMetrics:
    """Every instrumented metric of one node, registered in `self.registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # raft (raft/store.py, raft/journal.py)
        self.raft_leader_changes = Counter(
            "shoal_raft_leader_changes", "Times this manager saw a new raft leader "
            "(the first one it learnt of included).", registry=r)
        self.raft_append_seconds = Histogram(
            "shoal_raft_append_duration_seconds", "Time to append one entry to the raft "
            "journal on disk, fdatasync included.", buckets=FAST_BUCKETS, registry=r)
        self.raft_apply_seconds = Histogram(
            "shoal_raft_apply_duration_seconds", "Time to apply one committed raft entry "
            "(one store transaction) to this manager's store, watchers told.",
            buckets=FAST_BUCKETS, registry=r)
        # the store's writes (raft/store.py)
        self.store_write_seconds = Histogram(
            "shoal_store_write_duration_seconds", "Time from proposing a store transaction "
            "to its commit and local apply, as the writer waits for it (failed writes "
            "included).", buckets=FAST_BUCKETS, registry=r)
        # dispatcher (manager/dispatcher.py), on the leader
        self.dispatcher_sessions_opened = Counter(
            "shoal_dispatcher_sessions_opened", "Agent sessions opened with this manager's "
            "dispatcher.", registry=r)
        self.dispatcher_heartbeats = Counter(
            "shoal_dispatcher_heartbeats", "Agent heartbeats received by this manager's "
            "dispatcher.", registry=r)
        self.dispatcher_assignment_batches = Counter(
            "shoal_dispatcher_assignment_batches", "Assignment messages (complete sets and "
            "incremental batches) sent to agents.", registry=r)
        self.dispatcher_assignment_changes = Counter(
            "shoal_dispatcher_assignment_changes", "Assignment changes (tasks, secrets, "
            "configs, network views) sent to agents in those messages.", registry=r)
        # scheduler (manager/leader.py), on the leader
        self.scheduler_pass_seconds = Histogram(
            "shoal_scheduler_pass_duration_seconds", "Time of one reconcile pass on the leader "
            "(orchestrators, allocator, scheduler), from store snapshot to plan.",
            buckets=FAST_BUCKETS, registry=r)
        self.scheduler_tasks_placed = Counter(
            "shoal_scheduler_tasks_placed", "Tasks the scheduler assigned to a node.",
            registry=r)
        # agent (worker/controller.py)
        self.agent_container_start_seconds = Histogram(
            "shoal_agent_container_start_duration_seconds", "Time the runtime took to start "
            "one task's container (created before), on this node.",
            buckets=START_BUCKETS, registry=r)
