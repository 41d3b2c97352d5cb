"""Jobs: services whose tasks run to completion (Docker 20.10's job modes).

A job's iteration is its service's `spec_version`: the control API bumps it
on every `service update` of a job (even with an unchanged spec), which
re-runs the job.  Tasks of an earlier iteration are history: live ones are
shut down, none counts towards the current run.

- replicated job: slots 1..`total_completions`.  A slot is done when one of
  its current tasks is COMPLETE (exited 0); a COMPLETE task is never
  restarted (its desired state becomes COMPLETE, so the restart supervisor no
  longer looks at it).  A failed task follows the restart policy in its slot
  (`restart.supervise`, which also moves tasks off down or drained nodes).  At
  most `max_concurrent` (0 = total) slots are active (have a live task, which
  includes one waiting for its restart delay); new slots start lowest first.
  A slot whose task the restart policy gave up on stays failed.
- global job: one slot per node, as a global service: every eligible node
  runs the job once, including nodes that become eligible (or join) later.

There are no rolling updates for jobs: a new iteration replaces everything.
"""
from __future__ import annotations

from typing import Sequence

from proto import objects_pb2 as pb
from manager.orchestrator.global_ import eligible, tend_node_slots
from manager.orchestrator.plan import Work
from manager.orchestrator.replicated import node_unusable
from manager.orchestrator.restart import supervise
from manager.orchestrator.slots import group, is_live, make_task, newest

_GAVE_UP = (pb.FAILED, pb.REJECTED, pb.ORPHANED)


def is_job(service: pb.Service) -> bool:
    return service.spec.WhichOneof("mode") in ("replicated_job", "global_job")


def current_tasks(work: Work, service: pb.Service) -> list[pb.Task]:
    """The tasks of the job's current iteration; earlier iterations' live
    tasks are shut down on the way."""
    out = []
    for t in work.service_tasks(service.id):
        if t.spec_version == service.spec_version:
            out.append(t)
        elif t.status.state == pb.COMPLETE:
            work.set_desired(t, pb.COMPLETE)
        elif is_live(t):
            work.set_desired(t, pb.SHUTDOWN)
    return out


def _settle_completed(work: Work, tasks: Sequence[pb.Task]) -> bool:
    """Marks a slot's COMPLETE tasks as done (desired COMPLETE) and stops any
    other live task of the slot; True if the slot is done."""
    done = [t for t in tasks if t.status.state == pb.COMPLETE]
    if not done:
        return False
    for t in tasks:
        if t.status.state == pb.COMPLETE:
            work.set_desired(t, pb.COMPLETE)
        elif is_live(t):
            work.set_desired(t, pb.SHUTDOWN)
    return True


def reconcile_replicated_job(work: Work, service: pb.Service) -> None:
    """Runs a replicated job's slots to completion, `max_concurrent` at a time."""
    job = service.spec.replicated_job
    total = job.total_completions
    limit = job.max_concurrent or total
    slots = group(service, current_tasks(work, service), work)

    for slot in sorted(slots, reverse=True):
        if not 1 <= int(slot) <= total:  # a replicated job's slot is its number
            for t in slots[slot]:
                work.set_desired(t, pb.REMOVE)

    def must_move(t: pb.Task) -> bool:
        return bool(t.node_id) and node_unusable(work, t.node_id)

    for slot in range(1, total + 1):
        tasks = slots.get(slot)
        if tasks and not _settle_completed(work, tasks):
            supervise(work, service, slot, tasks, must_move)

    slots = group(service, current_tasks(work, service), work)
    active = sum(1 for slot in range(1, total + 1)
                 if any(is_live(t) for t in slots.get(slot, [])))
    for slot in range(1, total + 1):
        if active >= limit:
            break
        if slot not in slots:
            make_task(work, service, slot)
            active += 1


def reconcile_global_job(work: Work, service: pb.Service) -> None:
    """Runs a global job once on every eligible node (also nodes that join later)."""
    tend_node_slots(work, service, group(service, current_tasks(work, service), work),
                    settled=lambda tasks: _settle_completed(work, tasks))

    slots = group(service, current_tasks(work, service), work)
    for node_id in sorted(work.nodes):
        if not eligible(service, work.nodes[node_id]):
            continue
        tasks = slots.get(node_id, [])
        if any(is_live(t) or t.status.state == pb.COMPLETE for t in tasks):
            continue
        if tasks and newest(work, tasks).status.state in _GAVE_UP:
            continue  # the restart policy gave up on this node
        make_task(work, service, node_id)


def completions(service: pb.Service, tasks: Sequence[pb.Task]) -> int:
    """How many of the job's current iteration's tasks completed."""
    return sum(1 for t in tasks
               if t.service_id == service.id and t.spec_version == service.spec_version
               and t.status.state == pb.COMPLETE)
