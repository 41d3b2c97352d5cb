"""Object IDs (proto/model.py `new_id`): 128 random bits as 25 lowercase base36 digits."""
from __future__ import annotations

import os

import pytest

from proto import model


def base36(n: int) -> str:
    """The plain definition: 25 base36 digits of n, most significant first."""
    digits = []
    for _ in range(25):
        n, r = divmod(n, 36)
        digits.append("0123456789abcdefghijklmnopqrstuvwxyz"[r])
    return "".join(reversed(digits))


@pytest.mark.parametrize("raw", [bytes(16), b"\xff" * 16, bytes(range(16)),
                                 *(os.urandom(16) for _ in range(200))])
def test_id_is_the_base36_spelling_of_the_random_bits(raw, monkeypatch) -> None:
    monkeypatch.setattr(model.os, "urandom", lambda n: raw[:n])
    assert model.new_id() == base36(int.from_bytes(raw, "big"))


def test_ids_look_like_swarm_ids() -> None:
    ids = {model.new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 25 and set(i) <= set("0123456789abcdefghijklmnopqrstuvwxyz") for i in ids)
