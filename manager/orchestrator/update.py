"""Rolling updates: replacing out-of-date tasks batch by batch.

A task is out of date ("dirty") when it was made from a task spec the service
no longer has.  While the service's update status is UPDATING (or
ROLLBACK_STARTED, using `rollback_config`):

- a batch of `parallelism` dirty slots (0 = all) is replaced at a time, lowest
  slot (or node ID) first.  stop-first: the old task gets desired SHUTDOWN and
  the new one is created in the same pass with desired READY, raised to RUNNING
  once the old one has stopped; start-first: only the new one is
  created, and the slot retires the old one once the new one is RUNNING;
- the next batch starts only when no up-to-date task is still on its way to
  RUNNING and the newest start is at least `delay` old (the pass asks to be
  woken then);
- failures: up-to-date tasks that FAILED, were REJECTED or exited (COMPLETE),
  counted per slot, against the number of slots updated so far; above
  `max_failure_ratio` the failure action applies: pause (status PAUSED),
  continue, or rollback (spec and previous spec swap, spec version bumps,
  status ROLLBACK_STARTED, the rollback uses `rollback_config`).  Failures
  during a rollback pause it (ROLLBACK_PAUSED): a rollback is never rolled
  back.  The message names the first failed task and its error;
- a paused update stays paused until a new spec is submitted (the control
  API then restarts the status); a new spec during an update replaces it;
- when nothing is dirty and nothing is on its way, and the newest up-to-date
  task has been RUNNING for the `monitor` period (the pass asks to be woken
  then), the status becomes COMPLETED "update completed" (or
  ROLLBACK_COMPLETED "rollback completed").

Everything is derived from the store, so the update survives leader changes.
The monitor period: a new task's failure counts when it came before the task
was RUNNING or within `monitor` of its first RUNNING (`TaskStatus.running_since`,
which the dispatcher keeps); a task of an earlier batch that fails after its own
monitor period is the restart policy's business, not the update's.  The update
stays active until its last task has been RUNNING for `monitor`.
"""
from __future__ import annotations

from typing import Callable, Sequence

from proto import model
from proto import objects_pb2 as pb
from manager.orchestrator.plan import Work
from manager.orchestrator.reaper import stopped
from manager.orchestrator.triggers import UPDATE_UNDER_WAY
from manager.orchestrator.slots import (SlotKey, is_dirty, is_live, make_task, service_slots,
                                         slot_key)

US = pb.UpdateStatus
_ACTIVE = (US.UPDATING, US.ROLLBACK_STARTED)
_ONGOING = UPDATE_UNDER_WAY  # (manager/orchestrator/triggers.py relies on this set)
_FAILED = (pb.COMPLETE, pb.FAILED, pb.REJECTED)


def _config(service: pb.Service) -> pb.UpdateConfig:
    if service.update_status.state in (US.ROLLBACK_STARTED, US.ROLLBACK_PAUSED):
        return service.spec.rollback
    return service.spec.update


def _set_status(work: Work, service_id: str, state: pb.UpdateStatus.State, message: str,
                started: bool = False, completed: bool = False) -> pb.Service:
    svc = work.edit_service(service_id)
    svc.update_status.state = state
    svc.update_status.message = message
    if started:
        svc.update_status.started_at.CopyFrom(model.timestamp(work.now))
        svc.update_status.ClearField("completed_at")
    if completed:
        svc.update_status.completed_at.CopyFrom(model.timestamp(work.now))
    return svc


def check_failures(work: Work, service: pb.Service) -> pb.Service:
    """Applies the failure action if the running update has failed too often.

    Runs before the slots are reconciled, so a rollback's spec is what the
    rest of the pass builds.  Returns the service as it now is.
    """
    state = service.update_status.state
    cfg = _config(service)
    if state not in _ACTIVE or cfg.failure_action == pb.UpdateConfig.CONTINUE:
        return service
    tasks = work.service_tasks(service.id)
    current = [t for t in tasks if t.spec_version == service.spec_version]
    monitor = model.seconds(cfg.monitor)
    failed = sorted((t for t in current if t.status.state in _FAILED
                     and _within_monitor(t, monitor)),
                    key=lambda t: (model.ts_seconds(t.status.timestamp), t.id))
    if not failed:
        return service
    updated = {slot_key(service, t) for t in current}
    ratio = len({slot_key(service, t) for t in failed}) / max(1, len(updated))
    if ratio <= cfg.max_failure_ratio:
        return service
    culprit = _describe(failed[0])
    if (state == US.UPDATING and cfg.failure_action == pb.UpdateConfig.ROLLBACK
            and service.HasField("previous_spec")):
        svc = _set_status(work, service.id, US.ROLLBACK_STARTED,
                          f"update rolled back due to failure or early termination of task "
                          f"{culprit}", started=True)
        spec = pb.ServiceSpec()
        spec.CopyFrom(svc.spec)
        svc.spec.CopyFrom(svc.previous_spec)
        svc.previous_spec.CopyFrom(spec)
        svc.spec_version += 1
        return svc
    what, paused = ("update", US.PAUSED) if state == US.UPDATING else ("rollback",
                                                                       US.ROLLBACK_PAUSED)
    return _set_status(work, service.id, paused,
                       f"{what} paused due to failure or early termination of task {culprit}")


def _within_monitor(task: pb.Task, monitor: float) -> bool:
    """True when the (ended) task never ran, or ended within `monitor` seconds of
    first running: a failure of the update, as swarmkit counts it."""
    if not task.status.HasField("running_since"):
        return True
    ran = model.ts_seconds(task.status.timestamp) - model.ts_seconds(task.status.running_since)
    return ran <= monitor


def _describe(task: pb.Task) -> str:
    """The failed task and why: its error, else its message or exit code."""
    st = task.status
    why = st.err or (f"exit code {st.container_status.exit_code}"
                     if st.state == pb.COMPLETE or st.container_status.exit_code
                     else st.message)
    return f"{task.id}: {why}" if why else task.id


def advance(work: Work, service: pb.Service,
            updatable: Callable[[SlotKey], bool] = lambda key: True) -> None:
    """Starts the next batch when due and records start and completion.

    `updatable(key)` excludes slots that cannot take a new task now (a global
    service's paused node); they are neither replaced nor waited for.
    """
    slots = service_slots(work, service)
    dirty = _dirty_slots(service, slots, updatable)
    in_flight = _in_flight(service, slots)
    state = service.update_status.state
    if dirty and state not in _ONGOING:
        service = _set_status(work, service.id, US.UPDATING, "update in progress", started=True)
        state = US.UPDATING
    if state not in _ACTIVE:
        return
    cfg = _config(service)
    if dirty and not in_flight:
        due = _cooling_until(service, slots, model.seconds(cfg.delay))
        if due > work.now:
            work.wake(due)
        else:
            batch = dirty if cfg.parallelism == 0 else dirty[: cfg.parallelism]
            for key in batch:
                _replace(work, service, key, slots[key], cfg.order)
            return
    if not dirty and not in_flight and not _old_alive(service, slots, updatable):
        settled = _cooling_until(service, slots, model.seconds(cfg.monitor))
        if settled > work.now:
            work.wake(settled)
            return
        if state == US.UPDATING:
            _set_status(work, service.id, US.COMPLETED, "update completed", completed=True)
        else:
            _set_status(work, service.id, US.ROLLBACK_COMPLETED, "rollback completed",
                        completed=True)


def _dirty_slots(service: pb.Service, slots: dict[SlotKey, list[pb.Task]],
                 updatable: Callable[[SlotKey], bool]) -> list[SlotKey]:
    """Slots whose live tasks are all out of date (none replaced yet)."""
    out = []
    for key in sorted(slots):
        live = [t for t in slots[key] if is_live(t)]
        if live and updatable(key) and all(is_dirty(t, service) for t in live):
            out.append(key)
    return out


def _in_flight(service: pb.Service, slots: dict[SlotKey, list[pb.Task]]) -> bool:
    """Some up-to-date task has not reached RUNNING yet."""
    return any(is_live(t) and not is_dirty(t, service) and t.status.state < pb.RUNNING
               for tasks in slots.values() for t in tasks)


def _old_alive(service: pb.Service, slots: dict[SlotKey, list[pb.Task]],
               updatable: Callable[[SlotKey], bool]) -> bool:
    """An out-of-date task is still live in an updatable slot (start-first)."""
    return any(is_live(t) and is_dirty(t, service)
               for key, tasks in slots.items() if updatable(key) for t in tasks)


def _cooling_until(service: pb.Service, slots: dict[SlotKey, list[pb.Task]],
                   delay: float) -> float:
    """When `delay` after the most recent up-to-date task start has passed."""
    if delay <= 0:
        return 0.0
    starts = [model.ts_seconds(t.status.timestamp)
              for tasks in slots.values() for t in tasks
              if is_live(t) and not is_dirty(t, service) and t.status.state == pb.RUNNING
              and t.spec_version == service.spec_version]
    return max(starts, default=-delay) + delay


def _replace(work: Work, service: pb.Service, key: SlotKey, tasks: Sequence[pb.Task],
             order: int) -> None:
    live = [t for t in tasks if is_live(t)]
    start_first = order == pb.UpdateConfig.START_FIRST
    if start_first and any(not model.is_terminal(t.status.state) for t in live):
        make_task(work, service, key)
        return
    for t in live:
        work.set_desired(t, pb.SHUTDOWN)
    new = make_task(work, service, key)
    if any(not stopped(work, t) for t in live):
        # stop-first: the agent may prepare the new task, but starts it only
        # once the old one has stopped (see promote_ready)
        new.desired_state = pb.READY


def promote_ready(work: Work, service: pb.Service) -> None:
    """Lets a task held at desired READY run once nothing else in its slot can."""
    slots = service_slots(work, service)
    for tasks in slots.values():
        for t in tasks:
            if t.desired_state != pb.READY:
                continue
            if all(o.id == t.id or stopped(work, o) for o in tasks):
                work.edit_task(t.id).desired_state = pb.RUNNING
