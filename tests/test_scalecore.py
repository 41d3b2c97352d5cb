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


def test_ramp_measures_one_more_task_as_often_as_asked_with_the_pause_between(capsys) -> None:
    scalecore.main(["--nodes", "3", "--tasks", "6", "--only", "ramp", "--one-more", "2",
                    "--one-more-pause", "0.6"])
    out = capsys.readouterr().out
    assert re.search(r"^ramp: one more task x2, request -> assignment committed: p50 \d+ ms",
                     out, re.MULTILINE)
    took = float(re.search(r"^ramp nodes=3 tasks=6: ([0-9.]+) s", out, re.MULTILINE).group(1))
    assert took >= 1.2          # two pauses of 0.6 s (a lower bound: sleeps only add)
    scalecore.main(["--nodes", "3", "--tasks", "6", "--only", "ramp", "--one-more", "0"])
    assert "one more task" not in capsys.readouterr().out
