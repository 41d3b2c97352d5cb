"""Overlay encryption keys: made, rotated and promoted by the leader (pure).

`next_keys(keys, now, needed, new_key)` returns the key list the cluster should
hold (`Cluster.network_keys`, oldest first) and when to look again. The first
key is made as soon as an encrypted network exists and is primary at once; a
new key joins every `ROTATION` seconds, becomes primary `PROMOTE_AFTER`
seconds later (every node has had time to receive it, so nobody gets traffic
under a key it lacks), and the list keeps the newest `KEPT` keys. Key bytes
come from `new_key` (random in production, injectable in tests).
"""
from __future__ import annotations

import secrets
from typing import Callable, Optional, Sequence

from manager.objects import copy
from proto import objects_pb2 as pb

ROTATION = 12 * 3600.0
PROMOTE_AFTER = 30.0
KEPT = 3
KEY_BYTES = 32


def random_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def next_keys(keys: Sequence[pb.NetworkKey], now: float, needed: bool,
              new_key: Callable[[], bytes] = random_key
              ) -> tuple[list[pb.NetworkKey], Optional[float]]:
    """(the keys to hold, oldest first; the next time they change, or None)."""
    out = [copy(k) for k in sorted(keys, key=lambda k: k.id)]
    if not out:
        if not needed:
            return [], None
        out.append(pb.NetworkKey(id=1, key=new_key(), created_at=now, primary=True))
        return out, now + ROTATION
    newest = out[-1]
    if now >= newest.created_at + ROTATION:
        newest = pb.NetworkKey(id=newest.id + 1, key=new_key(), created_at=now)
        out.append(newest)
        out = out[-KEPT:]
    promote_at = newest.created_at + PROMOTE_AFTER
    if now >= promote_at or len(out) == 1:
        primary = newest.id
        wake = newest.created_at + ROTATION
    else:
        older = [k for k in out if k.created_at + PROMOTE_AFTER <= now] or out[:1]
        primary = older[-1].id
        wake = promote_at
    for k in out:
        k.primary = k.id == primary
    return out, wake

