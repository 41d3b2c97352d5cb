"""Mends pysyncobj's labels on the pieces of a big raft entry (pure logic).

pysyncobj sends an entry whose command is at least `appendEntriesBatchSizeBytes`
long in pieces of that size, labelled "start", "process" ... "finish"; the
follower joins them and unpickles at "finish". The leader decides "finish" by
comparing the piece's end with the length of the entry's *command*, not of the
pickled entry (a few dozen bytes longer: index and term). When the pickled
entry's last piece starts past the command's end, the piece before it is
labelled "finish" too early: the follower unpickles a truncated entry, its raft
tick fails, and since the leader sends the same pieces again, that follower
never gets the entry (seen at 30,000 tasks, where one transaction is megabytes).

`TransmissionMender` follows the pieces a follower receives and relabels a
"finish" that cannot be the last piece as "process": every piece but the last
is exactly the batch size, so a full-size "finish" is the last only when the
joined bytes unpickle (checked only then, and only for the full-size case).
"""
from __future__ import annotations

import pickle


class TransmissionMender:
    """One follower's view of the big entry being received from its leader."""

    def __init__(self, batch_bytes: int) -> None:
        if batch_bytes <= 0:
            raise ValueError("the batch size must be positive")
        self.batch_bytes = batch_bytes
        self._received = bytearray()

    def mend(self, message: dict) -> dict:
        """The message to hand to pysyncobj instead of `message` (itself, or a copy
        relabelled "process")."""
        kind = message.get("transmission")
        data = message.get("data", b"")
        if kind == "start":
            self._received = bytearray(data)
            return message
        if kind == "process":
            self._received += data
            return message
        if kind != "finish":
            return message
        self._received += data
        if len(data) < self.batch_bytes or self._complete():
            self._received = bytearray()
            return message
        return dict(message, transmission="process")

    def _complete(self) -> bool:
        try:
            pickle.loads(bytes(self._received))
        except Exception:  # a truncated pickle fails in many ways
            return False
        return True
