"""What happened during a chaos run, in order: faults, operations, checks.

Owns the `Timeline` (thread-safe, timestamps relative to the run's start) and
its rendering as text lines and JSON.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional


@dataclass(frozen=True)
class Entry:
    """One line of the timeline."""
    at: float          # seconds since the run started
    source: str        # "fault", "op", "heal", "check", "run"
    what: str          # e.g. "kill-leader manager2", "scale web-3 to 2"
    outcome: str = ""  # e.g. "ok", "UNAVAILABLE", "converged in 4.2s"
    ok: bool = True

    def line(self) -> str:
        mark = " " if self.ok else "!"
        tail = f" -> {self.outcome}" if self.outcome else ""
        return f"{self.at:8.2f}s {mark} {self.source:<6} {self.what}{tail}"


@dataclass
class Timeline:
    """Entries appended by every thread of the run."""
    started: float = field(default_factory=time.monotonic)
    entries: list[Entry] = field(default_factory=list)
    echo: Optional[Callable[[Entry], None]] = None     # called with each new entry (progress)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def now(self) -> float:
        return time.monotonic() - self.started

    def add(self, source: str, what: str, outcome: str = "", ok: bool = True) -> Entry:
        entry = Entry(round(self.now(), 3), source, what, outcome, ok)
        with self._lock:
            self.entries.append(entry)
        if self.echo is not None:
            self.echo(entry)
        return entry

    def of(self, source: str) -> list[Entry]:
        with self._lock:
            return [e for e in self.entries if e.source == source]

    def counts(self, source: str) -> Counter[str]:
        """How many entries of `source` there are per kind (the first word of `what`)."""
        return Counter(e.what.split(" ", 1)[0] for e in self.of(source))

    def lines(self) -> list[str]:
        with self._lock:
            return [e.line() for e in self.entries]

    def as_json(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(e) for e in self.entries]
