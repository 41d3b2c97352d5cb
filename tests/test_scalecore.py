"""lab/bench/scalecore.py, the in-process scale profile, runs every step at a tiny scale
and prints one figure per step (the figures themselves are not checked)."""
from __future__ import annotations

import re

from lab.bench import scalecore


def test_every_step_prints_its_figure(capsys) -> None:
    assert scalecore.main(["--nodes", "4", "--tasks", "12"]) == 0
    out = capsys.readouterr().out
    for name in scalecore.STEPS:
        assert re.search(rf"^{name} nodes=4 tasks=12: [0-9.]+ s \([0-9.]+ s CPU\)$", out,
                         re.MULTILINE), name
    assert re.search(r"^ramp: .*; 12 running; .*12 assignment changes streamed$", out,
                     re.MULTILINE)
    assert "register_sessions: 1 transactions for 4 sessions" in out


def test_a_profile_is_printed_for_the_step_asked(capsys) -> None:
    scalecore.main(["--nodes", "3", "--tasks", "6", "--only", "schedule", "--profile",
                    "schedule", "--top", "5"])
    out = capsys.readouterr().out
    assert "function calls" in out and "scheduler/schedule.py" in out
