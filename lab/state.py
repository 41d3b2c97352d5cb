"""The lab's state file: what `swarm-lab` made on this host, kept across crashes.

Owns one JSON document (default `/var/lib/shoal-lab/lab.json`) and the lock
that serialises changes to it. Every part of the lab writes down what it is
about to create *before* creating it, so `down` can remove all of it even
when the command that made it died half-way.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterator

LAB_DIR = Path(os.environ.get("SHOAL_LAB_DIR", "/var/lib/shoal-lab"))


def lab_dir() -> Path:
    """The lab's directory: $SHOAL_LAB_DIR, read at call time, or /var/lib/shoal-lab."""
    return Path(os.environ.get("SHOAL_LAB_DIR", str(LAB_DIR)))


class StateFile:
    """A JSON document on disk with an exclusive lock for read-modify-write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._depth = 0
        self._doc: dict[str, Any] = {}
        self._lock_handle: Any = None

    def read(self) -> dict[str, Any]:
        """The document as last saved ({} when there is none)."""
        if self._depth:
            return self._doc
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def exists(self) -> bool:
        return self.path.exists()

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        """Locks the file, yields the document, saves it on exit (also on error).

        Re-entrant: nested edits share the outer one's document and lock.
        An empty document removes the file.
        """
        if self._depth:
            self._depth += 1
            try:
                yield self._doc
            finally:
                self._depth -= 1
                self._save()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_handle = open(self._lock_path, "a")
        fcntl.flock(self._lock_handle, fcntl.LOCK_EX)
        self._doc = self.read()
        self._depth = 1
        try:
            yield self._doc
        finally:
            self._depth = 0
            try:
                self._save()
            finally:
                fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
                self._lock_handle.close()
                self._lock_handle = None

    def _save(self) -> None:
        """Writes the document atomically (an intermediate save inside an edit too)."""
        if not self._doc:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self._doc, indent=2, sort_keys=True))
        os.replace(tmp, self.path)

    def checkpoint(self) -> None:
        """Saves the document now, inside an edit (before doing what it records)."""
        if self._depth:
            self._save()
