"""End to end: a 2-minute chaos soak with a fixed seed (issue 16).

Runs `python -m lab.chaos` as a user would, on a lab of its own (3 managers,
3 workers), and reads its JSON report: faults of several kinds were injected
while operations and writes went on, and all five invariants hold. Longer
soaks are run by hand (README, "Reliability").
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.cluster import REPO

pytestmark = pytest.mark.e2e

SEED = 16
DURATION = 120


def test_two_minute_soak_with_a_fixed_seed_keeps_every_invariant(tmp_path: Path) -> None:
    report_path = tmp_path / "chaos.json"
    res = subprocess.run([sys.executable, "-m", "lab.chaos", "--seed", str(SEED),
                          "--duration", str(DURATION), "--json", str(report_path),
                          "--out", str(tmp_path / "logs"), "--quiet-timeline"],
                         cwd=REPO, capture_output=True, text=True, timeout=1200)
    print(res.stdout[-6000:])
    assert report_path.exists(), f"no report (exit {res.returncode}):\n{res.stderr[-4000:]}"
    report = json.loads(report_path.read_text())
    verdicts = {inv["number"]: inv for inv in report["invariants"]}
    assert sorted(verdicts) == [1, 2, 3, 4, 5]
    broken = [f"{n}. {v['name']}: {v['detail']} {v['problems'][:5]}"
              for n, v in verdicts.items() if not v["ok"]]
    assert not broken and not report["other_problems"], \
        f"seed {SEED}: {broken} {report['other_problems']}\n{res.stdout[-3000:]}"
    assert res.returncode == 0, res.stderr[-3000:]
    # the soak did what it says: faults of several kinds, operations and writes
    assert report["faults_total"] >= 4 and len(report["faults"]) >= 3, report["faults"]
    assert report["operations"] >= 20, report["operations_by_kind"]
    assert report["writes_acknowledged"] >= 100
    assert report["converge_s"], "no convergence after a fault was measured"
