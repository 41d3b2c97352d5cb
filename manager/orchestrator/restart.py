"""The restart policy: what happens to a slot whose task ended on its own.

A task ended on its own when its desired state is still RUNNING but its
observed state is terminal (COMPLETE, FAILED, REJECTED, ORPHANED, or SHUTDOWN
that nobody asked for).  The policy (`TaskSpec.restart`) decides:

- condition `none`: never restart; `on-failure`: restart unless it exited 0
  (COMPLETE); `any` (default): always;
- `max_attempts` (0 = unlimited) counts the restarts recorded in
  `Task.restarts` that fall inside `window` (0 = forever) before the failure;
- the replacement is made `delay` (default 5 s) after the failure time (the
  task's status timestamp); until then the slot waits and the pass asks to be
  woken at that time.

The decision depends only on the task and `now`, so repeated passes agree.
The ended task is kept as history with desired state SHUTDOWN.

`supervise` applies this to one slot, together with moving running tasks off
nodes they must leave (immediate, not counted as a restart attempt).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from proto import model
from proto import objects_pb2 as pb
from manager.orchestrator.plan import Work
from manager.orchestrator.slots import SlotKey, age_key, dedupe, is_live, make_task, newest

DEFAULT_DELAY = 5.0

WAIT, RESTART, STOP = "wait", "restart", "stop"


@dataclass(frozen=True)
class Verdict:
    """`kind` is WAIT (until `due`), RESTART (with `restarts` history) or STOP."""

    kind: str
    due: float = 0.0
    restarts: tuple[float, ...] = ()


def ended(task: pb.Task) -> bool:
    """Desired RUNNING (or less) but observed in a terminal state."""
    return task.desired_state <= pb.RUNNING and model.is_terminal(task.status.state)


def delay_of(policy: pb.RestartPolicy) -> float:
    if policy.has_delay or policy.delay.nanos:
        return model.seconds(policy.delay)
    return DEFAULT_DELAY


def recent_restarts(task: pb.Task, at: float) -> list[float]:
    """The task's recorded restarts that count at time `at` (inside the window)."""
    window = model.seconds(task.spec.restart.window)
    if window <= 0:
        return list(task.restarts)
    return [r for r in task.restarts if r > at - window]


def would_restart(task: pb.Task) -> bool:
    """Whether the policy allows replacing this ended task at all (ignores delay)."""
    policy = task.spec.restart
    if policy.condition == pb.RestartPolicy.NONE:
        return False
    if policy.condition == pb.RestartPolicy.ON_FAILURE and task.status.state == pb.COMPLETE:
        return False
    failed_at = model.ts_seconds(task.status.timestamp)
    if policy.max_attempts and len(recent_restarts(task, failed_at)) >= policy.max_attempts:
        return False
    return True


def decide(task: pb.Task, now: float) -> Verdict:
    """The restart policy's verdict on an ended task at time `now`."""
    if not would_restart(task):
        return Verdict(STOP)
    failed_at = model.ts_seconds(task.status.timestamp)
    due = failed_at + delay_of(task.spec.restart)
    if now < due:
        return Verdict(WAIT, due=due)
    return Verdict(RESTART, restarts=tuple(recent_restarts(task, failed_at)) + (now,))



def supervise(work: Work, service: pb.Service, key: SlotKey, tasks: Sequence[pb.Task],
              must_move: Callable[[pb.Task], bool]) -> None:
    """Applies moves and the restart policy to one slot's live tasks.

    `must_move(task)` says a running task sits on a node it has to leave (down,
    drained or gone): it is shut down and replaced at once, carrying its
    restart history, with no delay and no restart attempt counted.  Ended
    tasks go through `decide`.  A slot that still has a running task never
    gets a second one from here: its ended tasks are just shut down.
    """
    live = [t for t in tasks if is_live(t)]
    running = [t for t in live if not model.is_terminal(t.status.state)]
    moving = [t for t in running if must_move(t)]
    staying = [t for t in running if not must_move(t)]
    for t in moving:
        work.set_desired(t, pb.SHUTDOWN)
    replace_with: tuple[float, ...] | None = None
    if moving and not staying:
        replace_with = tuple(newest(work, moving).restarts)
    occupied = bool(staying) or replace_with is not None
    for t in sorted((t for t in live if ended(t)), key=lambda t: age_key(work, t), reverse=True):
        if occupied:
            work.set_desired(t, pb.SHUTDOWN)
            continue
        verdict = decide(t, work.now)
        if verdict.kind == WAIT:
            work.wake(verdict.due)
            occupied = True
        elif verdict.kind == RESTART:
            work.set_desired(t, pb.SHUTDOWN)
            replace_with = verdict.restarts
            occupied = True
        else:
            work.set_desired(t, pb.SHUTDOWN)
    if replace_with is not None:
        make_task(work, service, key, replace_with)
    dedupe(work, service, staying)
