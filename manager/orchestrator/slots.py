"""Slots: the unit both orchestrators reason about, and the task factory.

A replicated service's slot is its number (1..N); a global service has one
slot per node, keyed by node ID.  A slot's tasks are its live task (desired
state RUNNING or less; two during a start-first update) plus history.  This
module owns those definitions, the "newest task" order, what makes a task out
of date ("dirty") for its service, and how new tasks are made.
"""
from __future__ import annotations

from typing import Iterable, Sequence, Union

from proto import model
from proto import objects_pb2 as pb
from manager import pullauth
from manager.orchestrator.plan import Work

SlotKey = Union[int, str]

# A stack's services carry this label; their tasks carry it too, so that the agent
# puts it on their containers as Docker does.
STACK_NAMESPACE_LABEL = "com.docker.stack.namespace"


def is_live(task: pb.Task) -> bool:
    """The orchestrator still wants this task to run."""
    return task.desired_state <= pb.RUNNING


def is_global(service: pb.Service) -> bool:
    return service.spec.WhichOneof("mode") == "global"


def per_node(service: pb.Service) -> bool:
    """Slots are nodes: a global service or a global job."""
    return service.spec.WhichOneof("mode") in ("global", "global_job")


def slot_key(service: pb.Service, task: pb.Task) -> SlotKey:
    return task.node_id if per_node(service) else task.slot


def group(service: pb.Service, tasks: Iterable[pb.Task], work: Work) -> dict[SlotKey, list[pb.Task]]:
    """Tasks by slot, each list oldest first (so `[-1]` is the newest)."""
    slots: dict[SlotKey, list[pb.Task]] = {}
    if per_node(service):
        for t in tasks:
            slots.setdefault(t.node_id, []).append(t)
    else:
        for t in tasks:
            slots.setdefault(t.slot, []).append(t)
    for ts in slots.values():
        if len(ts) > 1:
            ts.sort(key=lambda t: age_key(work, t))
    return slots


def service_slots(work: Work, service: pb.Service) -> dict[SlotKey, list[pb.Task]]:
    """`group` of all the service's tasks in the pass, computed again only once the
    pass's tasks changed (`Work.generation`); several rules read it in one pass.
    Shared: do not modify the dict or its lists."""
    cached = work.slot_cache.get(service.id)
    if cached is not None and cached[0] == work.generation:
        return cached[1]
    slots = group(service, work.service_tasks(service.id), work)
    work.slot_cache[service.id] = (work.generation, slots)
    return slots


def age_key(work: Work, task: pb.Task) -> tuple:
    """Sort key, oldest first: tasks created in this pass are the newest."""
    return (work.is_new(task.id), model.ts_seconds(task.meta.created_at), task.id)


def newest(work: Work, tasks: Sequence[pb.Task]) -> pb.Task:
    return max(tasks, key=lambda t: age_key(work, t))


def is_dirty(task: pb.Task, service: pb.Service) -> bool:
    """The task was made from a task spec (or endpoint spec: published ports and
    endpoint mode decide its networks) the service no longer has."""
    return task.spec_version != service.spec_version and (
        not pullauth.same_task(task.spec, service.spec.task)
        or task.endpoint.spec != service.spec.endpoint)


def make_task(work: Work, service: pb.Service, key: SlotKey,
              restarts: Iterable[float] = ()) -> pb.Task:
    """A new task for a slot (state NEW, desired RUNNING), added to the pass."""
    name = service.spec.annotations.name
    task = pb.Task(
        id=work.new_id(),
        service_id=service.id,
        service_name=name,
        desired_state=pb.RUNNING,
        spec_version=service.spec_version,
    )
    task.spec.CopyFrom(service.spec.task)
    if isinstance(key, str):
        task.node_id = key
        task.annotations.name = f"{name}.{key}"
    else:
        task.slot = key
        task.annotations.name = f"{name}.{key}"
    namespace = service.spec.annotations.labels.get(STACK_NAMESPACE_LABEL)
    if namespace:
        task.annotations.labels[STACK_NAMESPACE_LABEL] = namespace
    if service.HasField("endpoint"):
        task.endpoint.CopyFrom(service.endpoint)
    task.restarts.extend(restarts)
    task.status.state = pb.NEW
    task.status.timestamp.CopyFrom(model.timestamp(work.now))
    task.status.message = "created"
    work.add_task(task)
    return task


def dedupe(work: Work, service: pb.Service, running: Sequence[pb.Task]) -> None:
    """Leaves at most one up-to-date task and one out-of-date task alive in a slot.

    `running`: the slot's live tasks that have not ended.  Once an up-to-date
    task is RUNNING, every other one is shut down (this is how a start-first
    update retires the old task).
    """
    if len(running) <= 1:
        return
    clean = [t for t in running if not is_dirty(t, service)]
    started = [t for t in clean if t.status.state == pb.RUNNING]
    if started:
        keep = {newest(work, started).id}
    else:
        keep = {newest(work, clean).id} if clean else set()
        dirty = [t for t in running if is_dirty(t, service)]
        if dirty:
            keep.add(newest(work, dirty).id)
    for t in running:
        if t.id not in keep:
            work.set_desired(t, pb.SHUTDOWN)
