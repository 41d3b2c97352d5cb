"""Writers that record every acknowledged write (invariant 1's history).

Each `Writer` creates configs `chaos-w<i>-<n>` one after the other on a random
live manager. A write is acknowledged when CreateConfig answers; its store
version is recorded in acknowledgement order. A write that fails with
UNAVAILABLE, a deadline or CANCELLED (a manager stopping cleanly cancels what
outlasts its grace period) may or may not have committed: the writer retries
the same name (so it can never exist twice) on another manager; ALREADY_EXISTS
on a retry means an earlier attempt committed, and the writer reads the
version back (counted as `recovered`).
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Optional

import grpc

from lab.chaos.access import CALL_TIMEOUT, Access, NoManager
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb

LABEL = "com.shoal.chaos.writer"
PAUSE = 0.1           # seconds between two writes of one writer (keeps the store small)


@dataclass
class Writer:
    """One writer thread's history."""
    index: int
    seed: int
    acked: list[tuple[str, int]] = field(default_factory=list)   # (name, version) in order
    attempted: set[str] = field(default_factory=set)
    failures: int = 0       # attempts that got no answer (retried)
    recovered: int = 0      # acknowledged through ALREADY_EXISTS on a retry
    refused: list[str] = field(default_factory=list)   # other errors: a violation
    thread: Optional[threading.Thread] = None

    def name(self, n: int) -> str:
        return f"chaos-w{self.index}-{n:05d}"

    def run(self, access: Access, stop: threading.Event) -> None:
        try:
            self._write(access, stop)
        except Exception as err:  # noqa: BLE001 - a writer that dies is a violation, reported
            self.refused.append(f"writer {self.index} stopped on {err!r}")

    def _write(self, access: Access, stop: threading.Event) -> None:
        rng = random.Random(self.seed)
        n, retry = 1, False
        while not stop.is_set():
            name = self.name(n)
            self.attempted.add(name)
            spec = pb.ConfigSpec(data=f"write {n} of writer {self.index}".encode())
            spec.annotations.name = name
            spec.annotations.labels[LABEL] = str(self.index)
            try:
                made = access.call(rng, lambda api: api.CreateConfig(
                    cpb.CreateConfigRequest(spec=spec), timeout=CALL_TIMEOUT), tries=1)
                self.acked.append((name, made.config.meta.version))
                n, retry = n + 1, False
            except NoManager:
                self.failures += 1
                retry = True
                stop.wait(0.2)
                continue
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.ALREADY_EXISTS and retry:
                    version = self._read_back(access, rng, name)
                    if version is not None:
                        self.acked.append((name, version))
                        self.recovered += 1
                        n, retry = n + 1, False
                    continue
                if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                  grpc.StatusCode.CANCELLED):
                    # no leader, no quorum, no answer, or a manager stopping cleanly that
                    # cancelled the call past its grace period: unknown whether it
                    # committed; retry the same name
                    self.failures += 1
                    retry = True
                    stop.wait(0.2)
                    continue
                self.refused.append(f"{name}: {err.code().name}: {err.details()}")
                n, retry = n + 1, False
            stop.wait(PAUSE)

    def _read_back(self, access: Access, rng: random.Random, name: str) -> Optional[int]:
        try:
            res = access.call(rng, lambda api: api.ListConfigs(cpb.ListConfigsRequest(
                filters=cpb.ListFilters(names=[name])), timeout=CALL_TIMEOUT))
        except (NoManager, grpc.RpcError):
            return None
        found = [c for c in res.configs if c.spec.annotations.name == name]
        return found[0].meta.version if len(found) == 1 else None


class Writers:
    """`count` writers running until `stop()`."""

    def __init__(self, access: Access, count: int, seed: int) -> None:
        self.access = access
        self.writers = [Writer(i, seed * 1000 + i) for i in range(1, count + 1)]
        self._stop = threading.Event()

    def start(self) -> None:
        for w in self.writers:
            w.thread = threading.Thread(target=w.run, args=(self.access, self._stop),
                                        name=f"chaos-writer{w.index}", daemon=True)
            w.thread.start()

    def stop(self, timeout: float = 30.0) -> list[str]:
        """Stops the writers; returns the names of those that did not stop in time."""
        self._stop.set()
        stuck = []
        for w in self.writers:
            if w.thread is not None:
                w.thread.join(timeout=timeout)
                if w.thread.is_alive():
                    stuck.append(f"writer {w.index}")
        return stuck

    def acknowledged(self) -> int:
        return sum(len(w.acked) for w in self.writers)
