"""One reconcile pass: from a store snapshot and the time to a plan.

The order of the rules matters and is fixed here:

1. tasks of services that no longer exist get desired state REMOVE;
2. each service (by ID): a job (replicated or global, manager/orchestrator/jobs)
   runs its current iteration to completion; any other service: update failure check (may pause or roll back), then
   its mode's slots (replicated or global: scaling, moves off bad nodes,
   restart policy), then the rolling update's next batch and status;
3. the allocator gives services their VIPs and published ports and pending
   tasks their network addresses (manager/allocator);
4. every pending task the allocator did not hold back is scheduled in one
   scheduler call;
5. the reaper deletes what is no longer needed.

Pure and deterministic apart from new task IDs (`new_id`, injectable).
"""
from __future__ import annotations

from typing import Callable, Optional

from proto import model
from proto import objects_pb2 as pb
from raft.view import StoreView
from manager.allocator import allocate
from manager.orchestrator import update
from manager.orchestrator.global_ import eligible, reconcile_global
from manager.orchestrator.jobs import reconcile_global_job, reconcile_replicated_job
from manager.orchestrator.placement import place
from manager.orchestrator.plan import Plan, Work
from manager.orchestrator.reaper import reap, sweep_versions
from manager.orchestrator.replicated import reconcile_replicated
from manager.orchestrator.slots import is_global
from manager.orchestrator.taskindex import TaskIndex


def reconcile(view: StoreView, now: float, *,
              new_id: Callable[[], str] = model.new_id,
              skip: frozenset[str] = frozenset(),
              index: Optional[TaskIndex] = None) -> Plan:
    """Everything the cluster should change now to converge, as one plan. The services
    in `skip` are known to need nothing from their own rules (see orchestrator.quiet):
    neither their slots nor their task history are looked at; the allocator, the
    scheduler and the removal of tasks marked for it still see every task (through
    `index`, the view's TaskIndex; None: built here)."""
    work = Work(view, now, new_id, index)
    for task in sorted(work.orphans(), key=lambda t: t.id):
        work.set_desired(task, pb.REMOVE)
    for sid in sorted(view.services):
        if sid in skip:
            continue
        mode = work.services[sid].spec.WhichOneof("mode")
        if mode == "replicated_job":
            reconcile_replicated_job(work, work.services[sid])
            continue
        if mode == "global_job":
            reconcile_global_job(work, work.services[sid])
            continue
        service = update.check_failures(work, work.services[sid])
        update.promote_ready(work, service)
        if is_global(service):
            reconcile_global(work, service)
            update.advance(work, service, _global_updatable(work, service))
        else:
            reconcile_replicated(work, service)
            update.advance(work, service)
    blocked = allocate(work)
    place(work, blocked)
    reap(work, skip)
    sweep_versions(work)
    return work.plan()


def _global_updatable(work: Work, service: pb.Service) -> Callable[[object], bool]:
    def updatable(node_id: object) -> bool:
        node = work.nodes.get(str(node_id))
        return node is not None and eligible(service, node)
    return updatable
