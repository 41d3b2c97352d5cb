"""The plan a reconcile pass returns, and the working state it is built in.

`Work` is a copy-on-write overlay on a `StoreView`: the rules edit, create and
delete tasks (and edit services) through it, later rules see earlier rules'
changes, and `Work.plan()` turns the net difference into store actions.  That
is where the plan's invariants live: one action per object, updates carry the
version read from the view, an edit that ends up equal to the stored object
produces nothing, and a task created then deleted in the same pass vanishes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Collection, Iterable, Optional

from proto import model
from proto import objects_pb2 as pb
from proto import store_pb2
from raft import actions as store_actions
from raft.view import StoreView
from manager.orchestrator.taskindex import TaskIndex, is_removable, is_unplaced
from scheduler.nodeinfo import NodeInfo, from_loads, host_ports, publishes_host_ports


@dataclass
class Plan:
    """What one reconcile pass wants: store actions (committed in order, in chunks) and when
    to run again even if nothing changes (a restart delay or update delay)."""

    actions: list[store_pb2.StoreAction] = field(default_factory=list)
    wake_at: Optional[float] = None
    placed: int = 0  # tasks the scheduler assigned to a node in this pass


class Work:
    """Copy-on-write working state of one reconcile pass over a view."""

    def __init__(self, view: StoreView, now: float, new_id: Callable[[], str] = model.new_id,
                 index: Optional[TaskIndex] = None):
        """`index`: the TaskIndex of `view` (the leader keeps one across passes); when
        None, one is built from the view."""
        self.view = view
        self.now = now
        self.new_id = new_id
        self.index = index if index is not None else TaskIndex.build(view)
        if self.index.version != view.version:
            raise ValueError(f"the task index is of version {self.index.version}, "
                             f"the view of version {view.version}")
        self.nodes: dict[str, pb.Node] = dict(view.nodes)
        self.cluster = view.cluster
        self._cluster_edited = False
        self.tasks: dict[str, pb.Task] = dict(view.tasks)
        self.services: dict[str, pb.Service] = dict(view.services)
        # the tasks this pass created, by service (the view's are in the index)
        self._created_by_service: dict[str, dict[str, None]] = {}
        self._edited_tasks: set[str] = set()
        self._created: dict[str, None] = {}
        self._deleted: set[str] = set()
        self._edited_services: set[str] = set()
        self._edited_nodes: set[str] = set()
        self.wake_at: Optional[float] = None
        self._removed_files: dict[str, store_pb2.StoreAction] = {}
        self.placed = 0  # tasks assigned to a node by placement (orchestrator/placement.py)
        # bumped whenever a task is created, deleted or first copied for editing, so
        # that what is derived from the tasks (orchestrator/slots.py) can be reused
        self.generation = 0
        self.slot_cache: dict[str, tuple[int, dict]] = {}

    # ------------------------------------------------------------- tasks --
    def service_tasks(self, service_id: str) -> list[pb.Task]:
        """Current tasks of a service (including ones created in this pass): the view's
        in the store's order, then the new ones in the order they were made."""
        tasks = self.tasks
        out = [tasks[i] for i in self.index.by_service.get(service_id, ()) if i in tasks]
        out += [tasks[i] for i in self._created_by_service.get(service_id, ())]
        return out

    def orphans(self) -> list[pb.Task]:
        """Current tasks of the view whose service does not exist."""
        gone = [sid for sid in self.index.by_service if sid not in self.services]
        return [self.tasks[i] for sid in gone for i in self.index.by_service[sid]
                if i in self.tasks]

    def touched(self) -> set[str]:
        """IDs of the tasks this pass created, edited or deleted."""
        return set(self._created) | self._edited_tasks | self._deleted

    def _now_matching(self, kept: Collection[str], test: Callable[[pb.Task], bool]
                      ) -> list[pb.Task]:
        tasks = self.tasks
        ids = set(kept) | set(self._created) | self._edited_tasks
        return sorted((tasks[i] for i in ids if i in tasks and test(tasks[i])),
                      key=lambda t: t.id)

    def unplaced(self) -> list[pb.Task]:
        """Current tasks wanted running and not on a node yet (taskindex.is_unplaced),
        by ID."""
        return self._now_matching(self.index.unplaced, is_unplaced)

    def removable(self) -> list[pb.Task]:
        """Current tasks marked for removal (taskindex.is_removable), by ID."""
        return self._now_matching(self.index.removable, is_removable)

    def node_infos(self, pending: Collection[str]) -> dict[str, NodeInfo]:
        """What the scheduler needs of every node: the load of the current tasks on it,
        leaving out the tasks in `pending` (scheduler.nodeinfo.build over every task,
        from the index's loads and this pass's own changes)."""
        infos = from_loads(self.nodes.values(), self.index.loads)
        tasks, before = self.tasks, self.view.tasks
        touched = self.touched()
        for tid in touched:
            old, new = before.get(tid), tasks.get(tid)
            if old is not None and old.node_id in infos:
                infos[old.node_id].change(old, -1)
            if new is not None and new.node_id in infos:
                infos[new.node_id].change(new, 1)
        for tid in pending:
            task = tasks.get(tid)
            if task is not None and task.node_id in infos:
                infos[task.node_id].change(task, -1)
        with_ports = set(self.index.own_ports) | touched
        for sid, svc in self.services.items():
            if publishes_host_ports(svc):
                with_ports.update(t.id for t in self.service_tasks(sid))
        for tid in with_ports:
            task = tasks.get(tid)
            if task is None or tid in pending or model.is_terminal(task.status.state):
                continue
            info = infos.get(task.node_id) if task.node_id else None
            if info is not None:
                info.ports.update(host_ports(task, self.services))
        return infos

    def is_new(self, task_id: str) -> bool:
        return task_id in self._created

    def edit_task(self, task_id: str) -> pb.Task:
        """A private, mutable copy of the task (made once per pass)."""
        if task_id in self._created or task_id in self._edited_tasks:
            return self.tasks[task_id]
        copy = pb.Task()
        copy.CopyFrom(self.tasks[task_id])
        self.tasks[task_id] = copy
        self._edited_tasks.add(task_id)
        self.generation += 1
        return copy

    def set_desired(self, task: pb.Task, state: pb.TaskState) -> None:
        """Raises the task's desired state to `state` (desired states never go back)."""
        if task.desired_state < state:
            self.edit_task(task.id).desired_state = state

    def add_task(self, task: pb.Task) -> None:
        self.generation += 1
        self.tasks[task.id] = task
        self._created[task.id] = None
        self._created_by_service.setdefault(task.service_id, {})[task.id] = None

    def delete_task(self, task_id: str) -> None:
        self.generation += 1
        task = self.tasks.pop(task_id)
        if task_id in self._created:
            self._created_by_service.get(task.service_id, {}).pop(task_id, None)
            del self._created[task_id]
        else:
            self._edited_tasks.discard(task_id)
            self._deleted.add(task_id)

    # ---------------------------------------------------------- services --
    def edit_service(self, service_id: str) -> pb.Service:
        if service_id in self._edited_services:
            return self.services[service_id]
        copy = pb.Service()
        copy.CopyFrom(self.services[service_id])
        self.services[service_id] = copy
        self._edited_services.add(service_id)
        return copy

    # ------------------------------------------------------------- nodes --
    def edit_node(self, node_id: str) -> pb.Node:
        """A private, mutable copy of the node (the allocator's node attachments)."""
        if node_id in self._edited_nodes:
            return self.nodes[node_id]
        copy = pb.Node()
        copy.CopyFrom(self.nodes[node_id])
        self.nodes[node_id] = copy
        self._edited_nodes.add(node_id)
        return copy

    def edit_cluster(self) -> pb.Cluster:
        """A private, mutable copy of the cluster object (the allocator's network keys)."""
        assert self.cluster is not None
        if not self._cluster_edited:
            copy = pb.Cluster()
            copy.CopyFrom(self.cluster)
            self.cluster = copy
            self._cluster_edited = True
        return self.cluster

    # --------------------------------------------------- secrets, configs --
    def remove_file(self, obj: pb.Secret | pb.Config) -> None:
        """Removes a secret or config (a stack's superseded version nothing uses)."""
        self._removed_files[obj.id] = store_actions.remove(obj)

    # -------------------------------------------------------------- misc --
    def wake(self, at: float) -> None:
        """Asks to be run again at `at` (ignored unless in the future)."""
        if at > self.now and (self.wake_at is None or at < self.wake_at):
            self.wake_at = at

    def plan(self) -> Plan:
        """The net changes as store actions: creates, then updates, then removes."""
        actions: list[store_pb2.StoreAction] = [store_actions.create(self.tasks[i])
                                                for i in self._created]
        actions += _updates(self._edited_services, self.services, self.view.services)
        actions += _updates(self._edited_nodes, self.nodes, self.view.nodes)
        if self._cluster_edited and self.cluster is not None:
            actions += _updates([self.cluster.id], {self.cluster.id: self.cluster},
                                self.view.clusters)
        actions += _updates(self._edited_tasks, self.tasks, self.view.tasks)
        actions += [store_actions.remove(self.view.tasks[i]) for i in sorted(self._deleted)]
        actions += [self._removed_files[i] for i in sorted(self._removed_files)]
        return Plan(actions=actions, wake_at=self.wake_at, placed=self.placed)


def _updates(ids: Iterable[str], current: dict, original) -> list[store_pb2.StoreAction]:
    out = []
    for i in sorted(ids):
        obj = current[i]
        if obj != original[i]:
            out.append(store_actions.update(obj))
    return out
