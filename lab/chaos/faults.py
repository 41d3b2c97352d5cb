"""The fault injector of the chaos soak.

Owns the faults, one at a time, each drawn from a seeded generator with its
weight, held for a few seconds, then repaired (lab.chaos.repair), after which
the injector pauses the operator and measures how long the cluster takes to
converge again (lab.chaos.invariants.divergence, bounded):

- kill-leader / kill-manager / kill-worker: `kill -9` of a daemon, restarted
  after the hold (the leader is chosen three times as often as a follower);
- partition-leader: the leader and one worker cut from the rest (the leader
  is in the minority); partition-follower: a follower manager and one worker
  cut from the rest; isolate: one node cut from every other (`Lab.partition`,
  the same as `swarm-lab partition`);
- restart: SIGTERM of a daemon (a clean stop) and a start;
- autolock-restart: autolock turned on, a manager killed and restarted, then
  unlocked with `swarm unlock` and the key, and autolock turned off again;
- drain: a worker drained with `swarm node update --availability drain`, then
  made active again;
- container-kill: a task's container killed with podman behind its agent;
- podman-restart: the node's `podman system service` killed under its agent.

Not injected: clock jumps. The lab's nodes share the host's CLOCK_REALTIME (a
time namespace offsets only the monotonic and boot clocks, and only before
its first process starts), so a jump on one node would move every node's
clock, and the host's.
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from lab.chaos.access import Access
from lab.chaos.invariants import divergence
from lab.chaos.repair import Repair
from lab.chaos.timeline import Timeline
from lab.chaos.workload import Operator
from lab.netlab import kill_and_wait, process_alive

STOP_WITHIN = 30.0      # seconds a daemon gets to stop on SIGTERM before SIGKILL


class Skip(Exception):
    """Nothing to inject this fault on now (e.g. no task container runs yet)."""


WEIGHTS = {"kill-leader": 3, "kill-manager": 1, "kill-worker": 2, "partition-leader": 1,
           "partition-follower": 1, "isolate": 1, "restart": 1, "autolock-restart": 1,
           "drain": 1, "container-kill": 2, "podman-restart": 1}
NOT_INJECTED = {"clock-jump": "the lab's nodes share the host's wall clock; a time namespace "
                              "offsets only the monotonic and boot clocks (a per-process fake "
                              "clock with libfaketime's LD_PRELOAD would not reach the "
                              "podman and conmon processes a node starts)"}


@dataclass
class Injector:
    """Injects faults until `stop()`; `converge_bound` caps each convergence wait."""
    access: Access
    timeline: Timeline
    operator: Operator
    repair: Repair
    seed: int
    hold: tuple[float, float] = (3.0, 10.0)
    gap: tuple[float, float] = (1.0, 5.0)
    converge_bound: float = 120.0
    injected: dict[str, int] = field(default_factory=dict)
    converge_times: list[tuple[str, float]] = field(default_factory=list)   # from the repair
    since_fault: list[tuple[str, float]] = field(default_factory=list)      # from the fault
    unconverged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # kinds, holds and gaps from one generator, targets from another: the targets
        # depend on the cluster (who leads, which containers run), the plan does not
        self.rng = random.Random(self.seed)
        self.pick = random.Random(self.seed + 7)
        self.skipped: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="chaos-injector", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 300.0) -> bool:
        """Stops after the current fault is repaired; False if it did not stop in time."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _loop(self) -> None:
        kinds = list(WEIGHTS)
        weights = [WEIGHTS[k] for k in kinds]
        while not self._stop.wait(self.rng.uniform(*self.gap)):
            kind = self.rng.choices(kinds, weights)[0]
            began = time.monotonic()
            try:
                target = getattr(self, "_" + kind.replace("-", "_"))()
            except Skip as why:
                self.skipped[kind] = self.skipped.get(kind, 0) + 1
                self.timeline.add("fault", kind, f"skipped: {why}")
                target = None
            except Exception as err:  # noqa: BLE001 - the run reports it and goes on
                self.errors.append(f"{kind}: {err!r}")
                self.timeline.add("fault", kind, f"could not inject: {err}", ok=False)
                target = None
            try:
                self.repair.restore()
            except Exception as err:  # noqa: BLE001 - reported; the final heal tries again
                self.errors.append(f"repair after {kind}: {err!r}")
                self.timeline.add("heal", f"after {kind}", f"repair failed: {err}", ok=False)
                continue
            if target is not None:
                self.injected[kind] = self.injected.get(kind, 0) + 1
                self._measure(f"{kind} {target}", began)

    def _hold(self, long: bool = False) -> None:
        """Waits the fault's hold; `long` (half of the partitions) holds 12-25 s, past the
        2 heartbeat periods after which a silent node is marked down."""
        seconds = self.rng.uniform(*self.hold)
        if long and self.rng.random() < 0.5:
            seconds = self.rng.uniform(12.0, 25.0)
        self._stop.wait(seconds)

    def _measure(self, fault: str, began: float) -> None:
        """Pauses the operator and waits for convergence; records the time from the
        repair, and from the fault's start (`since_fault`)."""
        self.operator.pause()
        try:
            started = time.monotonic()
            deadline = started + self.converge_bound
            problems: list[str] = ["not checked"]
            while time.monotonic() < deadline:
                problems = divergence(self.access)
                if not problems:
                    break
                time.sleep(0.5)
            took = time.monotonic() - started
            if problems:
                self.unconverged.append(f"{fault}: {problems[:5]}")
                self.timeline.add("heal", fault, f"NOT converged after {took:.1f}s: "
                                  f"{'; '.join(problems[:3])}", ok=False)
            else:
                self.converge_times.append((fault, took))
                self.since_fault.append((fault, time.monotonic() - began))
                self.timeline.add("heal", fault, f"converged in {took:.1f}s after the repair, "
                                  f"{time.monotonic() - began:.1f}s after the fault began")
        finally:
            self.operator.resume()

    # ---- choosing nodes

    def _leader(self) -> str:
        leader = self.access.leader()
        if leader is None:
            raise Skip("the managers do not agree on a leader")
        return leader

    def _pick(self, names: list[str]) -> str:
        running = [n for n in names if self.access.running(n)]
        if not running:
            raise Skip(f"none of {names} is running")
        return self.pick.choice(running)

    def _kill_and_restart(self, name: str, how: str) -> str:
        self.timeline.add("fault", f"{how} {name}")
        pid = self.access.lab.pid(name)
        if pid is None:
            raise RuntimeError(f"{name} is not running")
        if how == "restart":
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_WITHIN
            while process_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if process_alive(pid):
                self.errors.append(f"restart: {name} did not stop within {STOP_WITHIN:g}s "
                                   f"of SIGTERM")
                kill_and_wait([pid])
        else:
            kill_and_wait([pid])
        self.access.reset(name)
        self._hold()
        self.repair.start(name)
        return name

    # ---- the faults (each returns its target, repaired or left for `repair.restore`)

    def _kill_leader(self) -> str:
        return self._kill_and_restart(self._leader(), "kill-leader")

    def _kill_manager(self) -> str:
        leader = self._leader()
        return self._kill_and_restart(self._pick([m for m in self.access.managers
                                                  if m != leader]), "kill-manager")

    def _kill_worker(self) -> str:
        return self._kill_and_restart(self._pick(self.access.workers), "kill-worker")

    def _restart(self) -> str:
        return self._kill_and_restart(self._pick(self.access.lab.names()), "restart")

    def _partition(self, group: list[str], kind: str) -> str:
        others = [n for n in self.access.lab.names() if n not in group]
        self.timeline.add("fault", f"{kind} {'+'.join(group)} | {'+'.join(others)}")
        self.access.lab.partition(group, others)
        self._hold(long=True)
        self.access.lab.heal()
        return "+".join(group)

    def _minority(self) -> int:
        """How many managers a minority holds: 1 of 3, 2 of 5."""
        return (len(self.access.managers) - 1) // 2

    def _partition_leader(self) -> str:
        leader = self._leader()
        others = [m for m in self.access.managers if m != leader]
        group = [leader, *self.pick.sample(others, self._minority() - 1)]
        return self._partition([*group, self.pick.choice(self.access.workers)],
                               "partition-leader")

    def _partition_follower(self) -> str:
        leader = self._leader()
        followers = self.pick.sample([m for m in self.access.managers if m != leader],
                                     self._minority())
        return self._partition([*followers, self.pick.choice(self.access.workers)],
                               "partition-follower")

    def _isolate(self) -> str:
        return self._partition([self.pick.choice(self.access.lab.names())], "isolate")

    def _autolock_restart(self) -> str:
        victim = self._pick(self.access.managers)
        key = self.repair.autolock(True)
        try:
            self.timeline.add("fault", f"autolock-restart {victim}", "autolock on")
            pid = self.access.lab.pid(victim)
            if pid is None:
                raise RuntimeError(f"{victim} is not running")
            kill_and_wait([pid])
            self.access.reset(victim)
            self.repair.start(victim, unlock=False)
            if not self.access.lab.locked(victim):
                raise RuntimeError(f"{victim} restarted without waiting for its unlock key")
            self._hold()
            self.repair.unlock(victim, key)
        finally:
            if self.repair.key is not None and not any(
                    self.access.lab.locked(m) for m in self.access.managers):
                self.repair.autolock(False)
        return victim

    def _drain(self) -> str:
        worker = self.pick.choice(self.access.workers)
        self.timeline.add("fault", f"drain {worker}")
        self.repair.availability(worker, "drain")
        self._hold()
        self.repair.availability(worker, "active")
        return worker

    def _container_kill(self) -> str:
        lab = self.access.lab
        names = [n for n in lab.names() if self.access.running(n)]
        self.pick.shuffle(names)
        for name in names:
            found = lab.podman(name, "ps", "-q", "--filter", f"label=com.shoal.node.id="
                               f"{lab.node_id(name)}").stdout.split()
            if found:
                victim = self.pick.choice(sorted(found))
                self.timeline.add("fault", f"container-kill {name} {victim[:12]}")
                lab.podman(name, "kill", "-s", "KILL", victim)
                return f"{name}/{victim[:12]}"
        raise Skip("no task container runs anywhere")

    def _podman_restart(self) -> str:
        name = self._pick(self.access.lab.names())
        pid_file = self.access.lab.data_dir(name) / "podman" / "podman-service.pid"
        try:
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            raise Skip(f"{name} runs no podman service (pid file {pid_file})") from None
        socket_path = str(pid_file.parent / "podman.sock").encode()
        if b"service" not in cmdline or not any(socket_path in arg for arg in cmdline):
            raise Skip(f"pid {pid} of {pid_file} is not {name}'s podman service any more")
        self.timeline.add("fault", f"podman-restart {name} (podman service pid {pid})")
        kill_and_wait([pid])
        return name

