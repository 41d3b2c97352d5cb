"""Waiting for a service to converge, with Docker's progress display.

Owns what `service create|update|scale` print after the change is accepted
(unless `-d`): "overall progress: N out of M tasks", one line per slot (or
per node for a global service) with a 50-character bar on a terminal, plain
lines when stdout is not one, and "verify: Service <id> converged" at the end.

`compute_progress` is pure (service + tasks -> what to show); `Waiter` polls
GetService/ListTasks about every 100 ms until converged or the deadline.
A task counts for the current spec when its spec_version is the service's
or its TaskSpec equals the service's (a scale changes the spec version but
keeps the running tasks).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Optional, Protocol

from cli.format import truncate_id
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb

POLL_INTERVAL = 0.1
BAR_WIDTH = 50
_STATE_STEPS = {pb.NEW: 1, pb.PENDING: 3, pb.ASSIGNED: 4, pb.ACCEPTED: 5, pb.PREPARING: 6,
                pb.READY: 7, pb.STARTING: 8, pb.RUNNING: 9}
_MAX_STEP = 9
_STATE_WIDTH = len("preparing")
_FAILED = (pb.FAILED, pb.REJECTED)
EMPTY_GLOBAL_SETTLE = 3.0  # seconds a global service may have no tasks before that counts as done
DEFAULT_MONITOR = 5.0      # seconds, Docker's update monitor period


class Stream(Protocol):
    """Where progress is written: a text stream (stdout), or one that drops it (--quiet)."""

    def write(self, text: str) -> int: ...

    def flush(self) -> None: ...


class SlotLine:
    """One line under "overall progress": a slot (1/3) or a node of a global service.

    This and `Progress` are plain classes: `swarm service ls` loads this module
    and does without the dataclasses module (6 ms of start-up).
    """

    def __init__(self, label: str, state: Optional[pb.TaskState] = None,
                 error: str = "") -> None:
        self.label = label
        self.state = state
        self.error = error

    def text(self, bar: bool) -> str:
        if self.error and self.state in _FAILED:
            return f"{self.label}: {self.error}"
        if self.state is None:
            return f"{self.label}: "
        name = pb.TaskState.Name(self.state).lower()
        if not bar:
            return f"{self.label}: {name}"
        step = _STATE_STEPS.get(self.state, _MAX_STEP)
        filled = min(BAR_WIDTH, int(step / _MAX_STEP * 100) // 2)
        return (f"{self.label}: {name:<{_STATE_WIDTH}} "
                f"[{'=' * filled}>{' ' * (BAR_WIDTH - filled)}]")


class Progress:
    """What the display shows at one moment."""

    def __init__(self, done: int, total: int, lines: list[SlotLine], converged: bool,
                 failures: Optional[dict[str, tuple[int, str]]] = None, job: bool = False,
                 cannot_finish: str = "") -> None:
        self.done = done
        self.total = total
        self.lines = lines
        self.converged = converged
        self.failures = {} if failures is None else failures   # label -> (count, error)
        self.job = job
        self.cannot_finish = cannot_finish  # a job slot the restart policy gave up on, and why

    def header(self) -> str:
        if self.job:
            return f"job progress: {self.done} out of {self.total} complete"
        return f"overall progress: {self.done} out of {self.total} tasks"


def is_current(task: pb.Task, service: pb.Service) -> bool:
    """True when the task was made from the service's current spec."""
    return task.spec_version == service.spec_version or task.spec == service.spec.task


def _newest(tasks: Iterable[pb.Task]) -> Optional[pb.Task]:
    tasks = list(tasks)
    if not tasks:
        return None
    return max(tasks, key=lambda t: (model.ts_seconds(t.meta.created_at), t.meta.version))


def is_job(service: pb.Service) -> bool:
    return service.spec.WhichOneof("mode") in ("replicated_job", "global_job")


def compute_job_progress(service: pb.Service, tasks: Iterable[pb.Task],
                         waited: float = 0.0) -> Progress:
    """A job's progress towards completing its current iteration (pure).

    One line per slot (replicated job) or node (global job); done when every
    one has a COMPLETE task.  A slot whose newest task ended without success
    and that the orchestrator no longer wants running (the restart policy
    gave up) means the job cannot complete.
    """
    current = [t for t in tasks
               if t.service_id == service.id and t.spec_version == service.spec_version]
    groups: dict[Any, list[pb.Task]]
    if service.spec.WhichOneof("mode") == "replicated_job":
        total = service.spec.replicated_job.total_completions
        groups = {s: [t for t in current if t.slot == s] for s in range(1, total + 1)}
        labels = {s: f"{s}/{total}" for s in groups}
    else:
        node_ids = sorted({t.node_id for t in current})
        groups = {n: [t for t in current if t.node_id == n] for n in node_ids}
        total = len(node_ids)
        labels = {n: truncate_id(n) for n in node_ids}
    lines: list[SlotLine] = []
    failures: dict[str, tuple[int, str]] = {}
    done = 0
    cannot = ""
    for key, group in groups.items():
        line = SlotLine(labels[key])
        newest = _newest(group)
        failed = [t for t in group if t.status.state in _FAILED]
        if failed:
            last = _newest(failed)
            assert last is not None  # failed is not empty
            failures[line.label] = (len(failed), last.status.err or last.status.message)
        if any(t.status.state == pb.COMPLETE for t in group):
            line.state = pb.COMPLETE
            done += 1
        elif newest is not None:
            line.state = newest.status.state
            if newest.status.state in _FAILED:
                line.error = newest.status.err or newest.status.message
            if (model.is_terminal(newest.status.state)
                    and newest.desired_state > pb.RUNNING and not cannot):
                cannot = (f"job cannot complete: task {line.label} "
                          f"{pb.TaskState.Name(newest.status.state).lower()}: "
                          f"{newest.status.err or newest.status.message or 'no error reported'}")
        lines.append(line)
    converged = done == total and (total > 0 or waited >= EMPTY_GLOBAL_SETTLE)
    return Progress(done, total, lines, converged, failures, job=True, cannot_finish=cannot)


def compute_progress(service: pb.Service, tasks: Iterable[pb.Task],
                     waited: float = 0.0) -> Progress:
    """The progress of `service` towards its spec, from its tasks (pure)."""
    if is_job(service):
        return compute_job_progress(service, tasks, waited)
    tasks = [t for t in tasks if t.service_id == service.id]
    current = [t for t in tasks if is_current(t, service)]
    live = [t for t in tasks if t.desired_state == pb.RUNNING and not model.is_terminal(t.status.state)]
    failures: dict[str, tuple[int, str]] = {}
    lines: list[SlotLine] = []
    done = 0
    is_global = service.spec.WhichOneof("mode") == "global"
    groups: dict[Any, list[pb.Task]]  # by node ID (global) or slot (replicated)
    labels: dict[Any, str]
    if is_global:
        node_ids = sorted({t.node_id for t in current if t.desired_state == pb.RUNNING})
        groups = {n: [t for t in current if t.node_id == n] for n in node_ids}
        total = len(node_ids)
        labels = {n: truncate_id(n) for n in node_ids}
    else:
        total = service.spec.replicated.replicas
        groups = {s: [t for t in current if t.slot == s] for s in range(1, total + 1)}
        labels = {s: f"{s}/{total}" for s in groups}
    for key, group in groups.items():
        line = SlotLine(labels[key])
        wanted = _newest(t for t in group if t.desired_state == pb.RUNNING) or _newest(group)
        failed = [t for t in group if t.status.state in _FAILED]
        if failed:
            last = _newest(failed)
            assert last is not None  # failed is not empty
            failures[line.label] = (len(failed), last.status.err or last.status.message)
        if wanted is not None:
            line.state = wanted.status.state
            if wanted.status.state in _FAILED:
                line.error = wanted.status.err or wanted.status.message
            if wanted.status.state == pb.RUNNING and wanted.desired_state == pb.RUNNING:
                done += 1
        lines.append(line)
    stale = [t for t in live if not is_current(t, service)
             or (not is_global and not 1 <= t.slot <= total)]
    converged = done == total and not stale and len(live) == total
    if is_global and total == 0:
        converged = converged and waited >= EMPTY_GLOBAL_SETTLE
    return Progress(done, total, lines, converged, failures)


class Display:
    """Writes progress: redrawn in place on a terminal, changed lines otherwise."""

    def __init__(self, out: Stream, tty: bool) -> None:
        self.out = out
        self.tty = tty
        self._drawn = 0
        self._last_header = ""
        self._last_lines: dict[str, str] = {}
        self._reported: dict[str, int] = {}

    def show(self, progress: Progress) -> None:
        if self.tty:
            self._redraw(progress)
        else:
            self._append(progress)
        self._report_failures(progress)
        self.out.flush()

    def _redraw(self, progress: Progress) -> None:
        lines = [progress.header()] + [line.text(bar=True) for line in progress.lines]
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}A")
        for line in lines:
            self.out.write("\x1b[2K" + line + "\n")
        self._drawn = len(lines)

    def _append(self, progress: Progress) -> None:
        header = progress.header()
        if header != self._last_header:
            self.out.write(header + "\n")
            self._last_header = header
        for line in progress.lines:
            text = line.text(bar=False)
            if line.state is not None and self._last_lines.get(line.label) != text:
                self.out.write(text + "\n")
                self._last_lines[line.label] = text

    def _report_failures(self, progress: Progress) -> None:
        for label, (count, err) in progress.failures.items():
            if count >= 2 and count > self._reported.get(label, 0):
                self._reported[label] = count
                message = f"task {label} has failed {count} times: {err or 'no error reported'}"
                if self.tty:
                    self.out.write("\x1b[2K" + message + "\n")
                    self._drawn = 0  # keep the failure line; redraw below it
                else:
                    self.out.write(message + "\n")

    def finish(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def deadline_for(service: pb.Service, minimum: float = 120.0) -> float:
    """Seconds to wait: two minutes, or longer when a rolling update needs more;
    a job is waited for until it completes (or cannot), as Docker does."""
    spec = service.spec
    if is_job(service):
        return float("inf")
    replicas = spec.replicated.replicas if spec.WhichOneof("mode") == "replicated" else 1
    cfg = spec.update
    parallelism = cfg.parallelism or max(replicas, 1)
    batches = -(-max(replicas, 1) // parallelism)
    per_batch = model.seconds(cfg.delay) + model.seconds(cfg.monitor) + 30.0
    return max(minimum, batches * per_batch)


class Timeout(Exception):
    """The service did not converge: deadline passed, update paused or rolled back."""


_PAUSED = (pb.UpdateStatus.PAUSED, pb.UpdateStatus.ROLLBACK_PAUSED)
_ROLLED_BACK = (pb.UpdateStatus.ROLLBACK_STARTED, pb.UpdateStatus.ROLLBACK_COMPLETED)
# still replacing tasks or watching new ones for the monitor period
_UNDER_WAY = (pb.UpdateStatus.UPDATING, pb.UpdateStatus.ROLLBACK_STARTED)


def stability_window(service: pb.Service, status: pb.UpdateStatus,
                     initial: pb.UpdateStatus) -> float:
    """Seconds the converged tasks must stay RUNNING, unchanged, before the wait ends:
    the service's update monitor period (Docker's 5 s by default), as Docker's CLI
    verifies after a create or scale.  None when the updater itself has just watched
    the new tasks for that period (an update or rollback that completed during the
    wait), nor for a service with no tasks to watch."""
    if status != initial and status.state in (pb.UpdateStatus.COMPLETED,
                                              pb.UpdateStatus.ROLLBACK_COMPLETED):
        return 0.0
    monitor = service.spec.update.monitor
    return model.seconds(monitor) if monitor.nanos else DEFAULT_MONITOR


def _health_output(task: pb.Task) -> str:
    """The last output of a task's failing healthcheck, on one line, or ""."""
    for result in reversed(task.status.health.log):
        if result.exit_code != 0:
            text = " ".join(result.output.split())
            return text[:200] + ("…" if len(text) > 200 else "")
    return ""


def explain(message: str, tasks: Iterable[pb.Task]) -> str:
    """The updater's message about a failed task, with that task's last healthcheck
    output when it has one (the task is the one whose ID the message names)."""
    for task in tasks:
        if task.id and task.id in message and task.status.health.log:
            output = _health_output(task)
            if output:
                return f"{message} (last health check output: {output})"
    return message


class Waiter:
    """Polls the manager until a service converges; see the module docstring.

    Converged also means the update is no longer under way (its monitor
    period has passed) and that the running tasks stayed the same and
    RUNNING for the stability window (`stability_window`): "verify: Waiting
    N seconds to verify that tasks are stable..." is printed, and a task
    that fails meanwhile starts the wait over.  Changes of the service's update status while
    waiting are reported: a paused update ends the wait with an error naming
    the failed task and its error; an automatic rollback prints "rollback:
    ..." and the wait ends with an error once the rolled-back spec has
    converged (Docker exits 0 there, so a script cannot tell).
    """

    def __init__(self, call: Callable, out: Stream, tty: bool,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.call = call
        self.display = Display(out, tty)
        self.clock = clock
        self.sleep = sleep

    def _read(self, service_id: str) -> tuple[pb.Service, list[pb.Task]]:
        service = self.call("GetService", cpb.GetServiceRequest(service_id=service_id)).service
        filters = cpb.ListFilters(service_ids=[service.id])
        tasks = self.call("ListTasks", cpb.ListTasksRequest(filters=filters)).tasks
        return service, list(tasks)

    def _running_ids(self, service_id: str) -> frozenset[str]:
        filters = cpb.ListFilters(service_ids=[service_id])
        tasks = self.call("ListTasks", cpb.ListTasksRequest(filters=filters)).tasks
        return frozenset(t.id for t in tasks
                         if t.status.state == pb.RUNNING and t.desired_state == pb.RUNNING)

    def verify_stable(self, services: dict[str, str], timeout: float = 120.0) -> None:
        """Several converged services at once (a stack): waits until the RUNNING tasks
        of every one of them stayed the same for the longest of their monitor periods,
        printing Docker's "verify: Waiting N seconds..." line once; any change starts the
        wait over. `services` maps IDs to names; raises Timeout naming the services
        whose tasks kept changing."""
        if not services:
            return
        window = max(stability_window(self.call("GetService", cpb.GetServiceRequest(
            service_id=sid)).service, pb.UpdateStatus(), pb.UpdateStatus())
            for sid in services)
        if window <= 0:
            return
        self.display.finish(f"verify: Waiting {window:g} seconds to verify that tasks are "
                            "stable...")
        start = self.clock()
        since = start
        last: dict[str, frozenset[str]] = {}
        changed: set[str] = set()
        while True:
            ids = {sid: self._running_ids(sid) for sid in services}
            now = self.clock()
            if last and ids != last:
                changed |= {sid for sid in ids if ids[sid] != last.get(sid)}
                since = now
            last = ids
            if now - since >= window:
                return
            if now - start >= timeout:
                names = ", ".join(sorted(services[sid] for sid in changed)) or "?"
                raise Timeout(f"the tasks of {names} did not stay running for {window:g}s "
                              f"within {int(timeout)}s")
            self.sleep(POLL_INTERVAL)

    def wait(self, service_id: str, timeout: Optional[float] = None,
             initial: Optional[pb.UpdateStatus] = None, stability: bool = True) -> Progress:
        """Shows progress until converged; raises Timeout saying why it stopped.

        `initial` is the update status the change left (from UpdateService's
        answer), so that a rollback that happened before the first read is
        still seen as one; by default the first read's status. Without
        `stability` the wait ends at convergence: the caller verifies stability
        itself (`verify_stable`, for several services at once).
        """
        start = self.clock()
        service, tasks = self._read(service_id)
        if initial is None:
            initial = pb.UpdateStatus()
            initial.CopyFrom(service.update_status)
        rolled_back = ""
        limit = timeout if timeout is not None else deadline_for(service)
        stable_since: Optional[float] = None   # when the current set of tasks was first seen
        stable_ids: frozenset[str] = frozenset()
        while True:
            status = service.update_status
            if status != initial:
                if status.state in _PAUSED:
                    why = explain(status.message or "a task failed", tasks)
                    raise Timeout(why if "paused" in why else f"update paused: {why}")
                if (status.state in _ROLLED_BACK and not rolled_back
                        and initial.state == pb.UpdateStatus.UPDATING):
                    rolled_back = explain(status.message
                                          or "update rolled back due to a task failure", tasks)
                    self.display.finish(f"rollback: {rolled_back}")
            progress = compute_progress(service, tasks, self.clock() - start)
            self.display.show(progress)
            if progress.cannot_finish:
                raise Timeout(progress.cannot_finish)
            if progress.converged and progress.job:
                self.display.finish(f"verify: Job {service.id} complete")
                return progress
            if progress.converged and status.state not in _UNDER_WAY:
                window = stability_window(service, status, initial) \
                    if progress.total and stability else 0.0
                ids = frozenset(t.id for t in tasks if t.status.state == pb.RUNNING
                                and t.desired_state == pb.RUNNING)
                now = self.clock()
                if window > 0 and (stable_since is None or ids != stable_ids):
                    stable_since, stable_ids = now, ids
                    self.display.finish(f"verify: Waiting {window:g} seconds to verify "
                                        "that tasks are stable...")
                if window <= 0 or (stable_since is not None and now - stable_since >= window):
                    self.display.finish(f"verify: Service {service.id} converged")
                    if rolled_back:
                        raise Timeout(f"service rolled back: {rolled_back}")
                    return progress
            else:
                stable_since = None
            if self.clock() - start >= limit:
                errors = "; ".join(f"{label}: {err}" for label, (_, err)
                                   in sorted(progress.failures.items()) if err)
                raise Timeout(
                    f"service {service.spec.annotations.name} did not converge within "
                    f"{int(limit)}s ({progress.done} out of {progress.total} tasks running)"
                    + (f"; task errors: {errors}" if errors else ""))
            self.sleep(POLL_INTERVAL)
            service, tasks = self._read(service.id)
