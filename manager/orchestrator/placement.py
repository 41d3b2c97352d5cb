"""Placement: hands pending tasks to the scheduler and records its decisions.

A task is pending when the orchestrator wants it running and it has not been
assigned yet (observed NEW or PENDING).  A placed task gets its node, observed
state ASSIGNED and the generic resources the scheduler gave it; an unplaceable
one becomes PENDING with the scheduler's reason in `scheduling_message`, written
only when it changes so a stuck task does not churn the store.
"""
from __future__ import annotations

from typing import Mapping

from proto import model
from proto import objects_pb2 as pb
from manager.orchestrator.plan import Work
from scheduler import schedule

ASSIGNED_MESSAGE = "scheduler assigned task to node"
PENDING_MESSAGE = "pending task scheduling"


def place(work: Work, blocked: Mapping[str, str] | None = None) -> None:
    """Schedules every pending task of the pass in one scheduler call.

    `blocked` tasks (the allocator could not give them their networks or
    ports) stay PENDING with the allocator's reason."""
    blocked = blocked or {}
    stamp = model.timestamp(work.now)
    pending = []
    for t in work.unplaced():
        if t.service_id not in work.services:
            continue
        if t.id in blocked:
            _hold(work, t, blocked[t.id], stamp)
        else:
            pending.append(t)
    if not pending:
        return
    infos = work.node_infos({t.id for t in pending})
    for decision in schedule(work.nodes, (), pending, work.services, infos):
        task = work.tasks[decision.task_id]
        if decision.node_id is not None:
            t = work.edit_task(task.id)
            t.node_id = decision.node_id
            t.status.state = pb.ASSIGNED
            t.status.message = ASSIGNED_MESSAGE
            t.status.timestamp.CopyFrom(stamp)
            t.scheduling_message = ""
            del t.assigned_generic_resources[:]
            t.assigned_generic_resources.extend(decision.generic)
            work.placed += 1
            continue
        _hold(work, task, decision.message, stamp)


def _hold(work: Work, task: pb.Task, message: str, stamp) -> None:
    """Leaves the task PENDING with `message` (written only when it changes)."""
    if task.status.state == pb.PENDING and task.scheduling_message == message:
        return
    t = work.edit_task(task.id)
    if t.status.state != pb.PENDING:
        t.status.state = pb.PENDING
        t.status.message = PENDING_MESSAGE
        t.status.timestamp.CopyFrom(stamp)
    t.scheduling_message = message
