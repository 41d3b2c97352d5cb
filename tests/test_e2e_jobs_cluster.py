"""Jobs on a lab cluster: a global job runs once on every node, and once on a node
that joins afterwards; a replicated job spreads its completions over the nodes."""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from lab.cluster import Lab
from tests.helpers import sw, wait
from tests.labfixtures import image, module_lab  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

lab = module_lab(1, 1)


def rows(lab: Lab, service: str) -> list[dict[str, Any]]:
    out = sw(lab, "service", "ps", service, "--format", "json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def completed_per_node(lab: Lab, service: str) -> Counter:
    return Counter(r["Node"] for r in rows(lab, service)
                   if r["CurrentState"].startswith("Complete"))


def test_global_job_once_per_node_and_on_a_node_that_joins(lab: Lab, image: str) -> None:
    names = lab.names()
    out = sw(lab, "service", "create", "--name", "once", "--mode", "global-job",
             image, "true").stdout
    assert "verify: Job" in out, out
    assert completed_per_node(lab, "once") == Counter({n: 1 for n in names})
    lab.add("latecomer")
    wait(lambda: completed_per_node(lab, "once") == Counter({n: 1 for n in
                                                             [*names, "latecomer"]}),
         60, "the global job to complete once on latecomer too")
    assert len(rows(lab, "once")) == len(names) + 1  # nothing ran twice
    ls = sw(lab, "service", "ls").stdout
    line = next(l for l in ls.splitlines() if " once " in f" {l} ")
    assert f"0/0 ({len(names) + 1}/{len(names) + 1} completed)" in line, line
    sw(lab, "service", "rm", "once")
