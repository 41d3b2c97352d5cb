"""What the scale benchmark follows while a lab cluster runs: tasks, sessions, processes.

- `TaskTracker`: one Watch stream (proto/watch.proto, kind "task") on a
  manager, read in a thread, keeping every task of one service by name: its
  state, node, and the commit times (the store's clock, `committed_at`) at which
  it was created, first assigned to a node and first RUNNING. It counts the
  tasks that run where wanted (desired and observed RUNNING, not on excluded
  nodes) and records the commit time of the change that brought that count
  to the expected number: no polling, no polling resolution, and no big
  ListTasks loading the leader while it schedules. Watching a follower keeps
  the stream's cost off the leader (every manager applies the same log and
  stamps the same commit times).
- `SessionMonitor`: scrapes the managers' /metrics in a thread (after a
  leader kill) until the one that leads reports the expected number of
  dispatcher sessions; keeps the samples.
- `ProcWindow`: CPU (% of one core) and peak RSS of processes over a window,
  from /proc/<pid>/stat and status.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import grpc

from lab.bench.scalefigures import cpu_ticks, rss_bytes
from proto import objects_pb2 as pb
from proto import watch_pb2 as wpb
from proto import watch_pb2_grpc

log = logging.getLogger(__name__)


def _seconds(stamp: Any) -> float:
    return float(stamp.ToNanoseconds()) / 1e9


@dataclass
class TaskRecord:
    """One task as the watch last showed it; times are store commit times (unix s)."""
    created: float
    state: int = pb.NEW
    desired: int = pb.RUNNING
    node_id: str = ""
    assigned: Optional[float] = None
    running: Optional[float] = None


class TaskTracker:
    """The tasks of service `service_name`, from a Watch stream on `manager` (a name for
    messages); `start` opens it, `expect` sets what counts as done, `wait` waits for it."""

    def __init__(self, channel: grpc.Channel, manager: str, service_name: str) -> None:
        self.manager = manager
        self.service_name = service_name
        self._stub = watch_pb2_grpc.WatchStub(channel)
        self._cond = threading.Condition()
        self._records: dict[str, TaskRecord] = {}
        self._excluded: frozenset[str] = frozenset()
        self._target = 0
        self.good = 0                          # tasks running where wanted
        self.reached_at: Optional[float] = None  # commit time `good` reached the target
        self.live = False
        self.error: Optional[str] = None
        self.events = 0
        self._stopping = False
        self._call: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"watch-{manager}-{service_name}")

    # ---------------------------------------------------------- stream --

    def start(self, timeout: float = 30.0) -> None:
        """Opens the stream; returns once the manager has sent its headers, which it does
        once subscribed (manager/watchapi.py), so that no change made afterwards is missed.

        No `progress` mark is asked for: with it the manager ends the stream when it
        installs a raft snapshot (a follower that fell behind under load), without it
        the stream goes on with the snapshot's differences, which is all this needs."""
        self._call = self._stub.Watch(wpb.WatchRequest(selectors=[wpb.WatchSelector(kind="task")]))
        self._thread.start()
        with self._cond:
            if not self._cond.wait_for(lambda: self.live or self.error is not None, timeout):
                self.stop()
                raise TimeoutError(f"the Watch stream on {self.manager} was not open "
                                   f"within {timeout:g}s")
            if self.error is not None:
                raise RuntimeError(f"the Watch stream on {self.manager} failed: {self.error}")

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
        if self._call is not None:
            self._call.cancel()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        try:
            self._call.initial_metadata()   # blocks until the headers are in
            with self._cond:
                self.live = True
                self._cond.notify_all()
            for message in self._call:
                self.absorb(message)
            failure = "the stream ended"
        except grpc.RpcError as exc:
            failure = f"{exc.code().name}: {exc.details()}"
        with self._cond:
            if not self._stopping:
                self.error = failure
                log.warning("watch on %s for %s: %s", self.manager, self.service_name, failure)
            self._cond.notify_all()

    def absorb(self, message: wpb.WatchMessage) -> None:
        """Takes one message of the stream in."""
        with self._cond:
            for event in message.events:
                self._apply(event)
            self._cond.notify_all()

    def _counts(self, rec: TaskRecord) -> bool:
        return rec.desired == pb.RUNNING and rec.state == pb.RUNNING and \
            rec.node_id not in self._excluded

    def _apply(self, event: wpb.WatchEvent) -> None:
        if event.object.WhichOneof("object") != "task":
            return
        task = event.object.task
        if task.service_name != self.service_name:
            return
        self.events += 1
        old = self._records.get(task.id)
        if old is not None and self._counts(old):
            self.good -= 1
        at = _seconds(event.committed_at) if event.HasField("committed_at") \
            else _seconds(task.meta.updated_at)
        if event.action == wpb.WatchEvent.REMOVE:
            self._records.pop(task.id, None)
        else:
            rec = old or TaskRecord(created=_seconds(task.meta.created_at))
            rec.state, rec.desired, rec.node_id = task.status.state, task.desired_state, \
                task.node_id
            if rec.assigned is None and task.node_id and task.status.state >= pb.ASSIGNED:
                rec.assigned = at
            if rec.running is None and task.status.state == pb.RUNNING:
                rec.running = at
            self._records[task.id] = rec
            if self._counts(rec):
                self.good += 1
        self._check(at)

    def _check(self, at: float) -> None:
        if self._target and self.good >= self._target:
            if self.reached_at is None:
                self.reached_at = at
        else:
            self.reached_at = None

    # --------------------------------------------------------- queries --

    def expect(self, target: int, excluded: Iterable[str] = ()) -> None:
        """From now on, done means `target` tasks running on nodes not in `excluded`."""
        with self._cond:
            self._excluded = frozenset(excluded)
            self._target = target
            self.good = sum(1 for r in self._records.values() if self._counts(r))
            self.reached_at = None
            self._check(time.time())

    def wait(self, timeout: float) -> float:
        """The commit time (unix s) at which the expected tasks were all running."""
        with self._cond:
            self._cond.wait_for(lambda: self.reached_at is not None or self.error is not None,
                                timeout)
            if self.reached_at is not None:
                return self.reached_at
            if self.error is not None:
                raise RuntimeError(f"the Watch stream on {self.manager} failed: {self.error}")
            raise TimeoutError(f"{self.good} of {self._target} tasks of {self.service_name} "
                               f"running where wanted after {timeout:g}s "
                               f"({self.summary()})")

    def summary(self) -> str:
        """Tasks by observed state, e.g. "RUNNING 2990, PENDING 10"."""
        with self._cond:
            counts: dict[str, int] = {}
            for rec in self._records.values():
                name = pb.TaskState.Name(rec.state)
                counts[name] = counts.get(name, 0) + 1
        return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))

    def delays(self, since: float) -> tuple[list[float], list[float]]:
        """Per task, seconds from `since` (unix s: when the service was asked for) to its
        assignment, and to RUNNING (commit times)."""
        with self._cond:
            recs = list(self._records.values())
        return ([r.assigned - since for r in recs if r.assigned is not None],
                [r.running - since for r in recs if r.running is not None])

    def running_on(self, node_ids: Iterable[str]) -> int:
        nodes = set(node_ids)
        with self._cond:
            return sum(1 for r in self._records.values()
                       if r.state == pb.RUNNING and r.desired == pb.RUNNING
                       and r.node_id in nodes)

    def active(self) -> int:
        """Tasks not ended yet (observed state RUNNING or before)."""
        with self._cond:
            return sum(1 for r in self._records.values() if r.state <= pb.RUNNING)


# ------------------------------------------------------------- sessions --

@dataclass(frozen=True)
class SessionSample:
    at: float          # seconds after the monitor started
    manager: str
    leader: bool
    sessions: float
    opened: float      # shoal_dispatcher_sessions_opened_total, this manager's count


@dataclass
class SessionMonitor:
    """Scrapes `managers` every `interval` seconds until the leader among them reports
    `expected` dispatcher sessions or more (`scrape(name)` returns sample values)."""
    scrape: Callable[[str], Mapping[str, float]]
    managers: Sequence[str]
    expected: int
    interval: float = 0.5
    samples: list[SessionSample] = field(default_factory=list, init=False)
    failures: int = field(default=0, init=False)
    started: float = field(default=0.0, init=False)       # monotonic
    done_at: Optional[float] = field(default=None, init=False)    # monotonic
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: Optional[threading.Thread] = field(default=None, init=False)

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True, name="session-monitor")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            tick = time.monotonic()
            for name in self.managers:
                try:
                    values = self.scrape(name)
                except (OSError, RuntimeError, ValueError):
                    self.failures += 1
                    continue
                now = time.monotonic()
                sample = SessionSample(now - self.started, name,
                                       values.get("shoal_raft_leader") == 1,
                                       values.get("shoal_dispatcher_sessions", 0.0),
                                       values.get("shoal_dispatcher_sessions_opened_total", 0.0))
                self.samples.append(sample)
                if sample.leader and sample.sessions >= self.expected:
                    self.done_at = now
                    return
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - tick)))

    def wait(self, timeout: float) -> Optional[float]:
        """The monotonic time the sessions were back, or None after `timeout`."""
        if self._thread is not None:
            self._thread.join(timeout)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        return self.done_at

    def last(self) -> Optional[SessionSample]:
        leading = [s for s in self.samples if s.leader]
        return leading[-1] if leading else (self.samples[-1] if self.samples else None)


# ------------------------------------------------------------ processes --

TICKS = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str:
    return Path(path).read_text()


@dataclass
class ProcWindow:
    """CPU and peak RSS of named processes between `start` and `finish` (call `sample`
    now and then for the peak)."""
    pids: Mapping[str, int]
    _ticks: dict[str, int] = field(default_factory=dict, init=False)
    _peak: dict[str, int] = field(default_factory=dict, init=False)
    _started: float = field(default=0.0, init=False)

    def start(self) -> None:
        self._started = time.monotonic()
        self._ticks = {n: cpu_ticks(_read(f"/proc/{p}/stat")) for n, p in self.pids.items()}
        self.sample()

    def sample(self) -> None:
        for name, pid in self.pids.items():
            rss = rss_bytes(_read(f"/proc/{pid}/status"))
            self._peak[name] = max(self._peak.get(name, 0), rss)

    def finish(self) -> dict[str, tuple[float, int]]:
        """Per name: CPU in % of one core over the window, peak RSS in bytes."""
        self.sample()
        elapsed = time.monotonic() - self._started
        used = {n: cpu_ticks(_read(f"/proc/{p}/stat")) - self._ticks[n]
                for n, p in self.pids.items()}
        return {n: (100.0 * used[n] / TICKS / elapsed, self._peak[n]) for n in self.pids}


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files under `path` (what a directory holds on disk)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue   # a journal segment or snapshot replaced meanwhile
    return total
