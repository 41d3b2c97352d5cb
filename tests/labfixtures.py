"""Lab clusters for tests and benchmarks: `lab_cluster()` and the `lab` fixture.

Owns bringing a `lab.cluster.Lab` up in a directory and on an underlay of its
own (so a test lab never meets a lab someone brought up by hand, nor another
test session's), and tearing it down whatever happens in the test.

Use in a test module: `from tests.labfixtures import lab  # noqa: F401`, and
`@pytest.mark.parametrize("lab", [{"managers": 3, "workers": 2}], indirect=True)`
for another size (default: one manager, no workers).
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
from pyroute2 import IPRoute

from lab.cluster import Lab, LabError
from lab.images import ensure_demo_image
from lab.state import lab_dir

FIRST_INDEX = 100      # underlays 100..199 are for test labs; 0 is the hand-made lab
LAST_INDEX = 199


def bridge_exists(name: str) -> bool:
    with IPRoute() as ipr:
        return bool(ipr.link_lookup(ifname=name))


def new_lab_root() -> Path:
    """A fresh, short directory for one lab (unix socket paths must stay < 108 bytes)."""
    base = lab_dir()
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="t", dir=base))


@contextlib.contextmanager
def lab_cluster(managers: int = 1, workers: int = 0,
                metrics_port: Optional[int] = None) -> Iterator[Lab]:
    """A lab that is up inside the block and fully removed after it (its nodes serve
    metrics on <IP>:`metrics_port` over mutual TLS when it is given)."""
    root = new_lab_root()
    lab = None
    try:
        for index in range(FIRST_INDEX, LAST_INDEX + 1):
            if bridge_exists(f"shoallab{index}"):
                continue
            candidate = Lab(root, underlay_index=index, metrics_port=metrics_port)
            try:
                candidate.up(managers, workers)
            except LabError as err:
                if "already exists" in str(err):
                    continue        # another session took this underlay meanwhile
                raise
            lab = candidate
            break
        if lab is None:
            raise LabError(f"no free lab underlay between {FIRST_INDEX} and {LAST_INDEX}")
        yield lab
    finally:
        if lab is not None:
            lab.down(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def lab(request: Any) -> Iterator[Lab]:
    """A running lab cluster (default one manager); torn down after the test."""
    size = getattr(request, "param", None) or {}
    with lab_cluster(**size) as running:
        yield running


@pytest.fixture(scope="module")
def image() -> str:
    """The demo image reference (built and pushed to the lab registry once)."""
    return ensure_demo_image()


def module_lab(managers: int, workers: int, ready_timeout: float = 30.0) -> Any:
    """A module-scoped `lab` fixture of this size, every node Ready before the first test.

    Use as `lab = module_lab(3, 2)` at module level of a test file.
    """
    @pytest.fixture(scope="module", name="lab")
    def _lab() -> Iterator[Lab]:
        ensure_demo_image()
        with lab_cluster(managers, workers) as running:
            running.wait_ready(timeout=ready_timeout)
            yield running
    return _lab
