"""The leader's index of the tasks, kept from one reconcile pass to the next (pure).

A pass needs a few answers about the tasks as a whole: each service's tasks, the
tasks still to be placed, the tasks marked for removal, the services whose tasks
changed (orchestrator.quiet), what each node's tasks take of it (the scheduler's
load), the tasks holding host-mode ports. Adding them up from every task cost most
of a pass that places one task among 30,000.

`TaskIndex` holds those answers for one store view. `advance` brings it to a newer
view from the IDs of the tasks changed in between (`StoreView.tasks_changed_since`,
the store's change log) and the older view's objects, so a pass pays for what
changed, not for what exists. `build` adds up a whole view: the first pass, after
the store's log lost track (a snapshot install, a long gap), and for the pure
callers that give `Work` no index of their own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from manager.orchestrator.triggers import UPDATE_UNDER_WAY, is_progress
from proto import objects_pb2 as pb
from raft.view import StoreView
from scheduler.nodeinfo import Load, own_host_ports


def is_unplaced(task: pb.Task) -> bool:
    """Wanted running and not given a node yet (the allocator's and scheduler's work)."""
    return task.desired_state <= pb.RUNNING and task.status.state <= pb.PENDING


def is_removable(task: pb.Task) -> bool:
    """Marked for deletion (the reaper deletes it once nothing can be running)."""
    return task.desired_state >= pb.REMOVE


@dataclass
class TaskIndex:
    """Answers about the tasks of the view at `version` (see the module docstring)."""

    version: int = -1
    tasks: Mapping[str, pb.Task] = field(default_factory=dict)  # the view's own table
    by_service: dict[str, dict[str, None]] = field(default_factory=dict)
    unplaced: dict[str, None] = field(default_factory=dict)
    removable: dict[str, None] = field(default_factory=dict)
    loads: dict[str, Load] = field(default_factory=dict)   # node ID -> its tasks' load
    own_ports: dict[str, None] = field(default_factory=dict)  # endpoint names host ports
    # per service: the highest task version seen, raised to the store version of a
    # removal (so any change to a service's tasks moves it or their count), except a
    # progress report no rule acts on (orchestrator.triggers.is_progress)
    tops: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, view: StoreView) -> "TaskIndex":
        """The index of a whole view (O(tasks))."""
        index = cls(version=view.version, tasks=view.tasks)
        tops = index.tops
        for task in view.tasks.values():
            index._add(task, True)
            if task.meta.version > tops.get(task.service_id, 0):
                tops[task.service_id] = task.meta.version
        return index

    def advance(self, view: StoreView) -> bool:
        """Brings the index to `view`; False (the index unchanged) when the changes in
        between are not known: build a new one then."""
        if view.version < self.version:
            return False
        changed = view.tasks_changed_since(self.version)
        if changed is None:
            return False
        old_tasks, new_tasks = self.tasks, view.tasks

        def under_way(service_id: str) -> bool:
            svc = view.services.get(service_id)
            return svc is None or svc.update_status.state in UPDATE_UNDER_WAY
        for task_id in changed:
            old, new = old_tasks.get(task_id), new_tasks.get(task_id)
            if old is new:
                continue
            if old is not None and new is not None and is_progress(new, old, under_way):
                # most changes while a service starts: the same node, desired state,
                # spec and endpoint, a state between ASSIGNED and RUNNING: nothing
                # indexed changes, and no rule acts on it (the service stays quiet)
                continue
            moved = old is not None and new is not None and old.service_id != new.service_id
            if old is not None:
                self._remove(old, new is None or moved)
            if new is not None:
                self._add(new, old is None or moved)
            sid = new.service_id if new is not None else old.service_id  # type: ignore[union-attr]
            top = new.meta.version if new is not None else view.version
            if top > self.tops.get(sid, 0):
                self.tops[sid] = top
        self.tasks, self.version = new_tasks, view.version
        return True

    def copy(self) -> "TaskIndex":
        """An index of the same view that later `advance`s of this one leave alone."""
        return TaskIndex(
            version=self.version, tasks=self.tasks,
            by_service={sid: dict(ids) for sid, ids in self.by_service.items()},
            unplaced=dict(self.unplaced), removable=dict(self.removable),
            loads={n: Load(l.cpu_reserved, l.mem_reserved, l.active, dict(l.by_service),
                              dict(l.held))
                   for n, l in self.loads.items()},
            own_ports=dict(self.own_ports), tops=dict(self.tops))

    def service_task_count(self, service_id: str) -> int:
        return len(self.by_service.get(service_id, ()))

    def _add(self, task: pb.Task, created: bool) -> None:
        tid, sid = task.id, task.service_id
        if created:
            self.by_service.setdefault(sid, {})[tid] = None
        if is_unplaced(task):
            self.unplaced[tid] = None
        if is_removable(task):
            self.removable[tid] = None
        if task.node_id:
            load = self.loads.get(task.node_id)
            if load is None:
                load = self.loads[task.node_id] = Load()
            load.change(task, 1)
        if task.HasField("endpoint") and own_host_ports(task):
            self.own_ports[tid] = None

    def _remove(self, task: pb.Task, deleted: bool) -> None:
        tid, sid = task.id, task.service_id
        if deleted:
            held = self.by_service.get(sid)
            if held is not None:
                held.pop(tid, None)
                if not held:
                    del self.by_service[sid]
        self.unplaced.pop(tid, None)
        self.removable.pop(tid, None)
        self.own_ports.pop(tid, None)
        if task.node_id:
            load = self.loads.get(task.node_id)
            if load is not None:
                load.change(task, -1)


def advanced(index: Optional[TaskIndex], view: StoreView) -> tuple[TaskIndex, bool]:
    """`index` brought to `view`, or a new one built from it; and whether it was built."""
    if index is not None and index.advance(view):
        return index, False
    return TaskIndex.build(view), True
