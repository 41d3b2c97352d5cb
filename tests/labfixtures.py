"""Lab clusters for tests and benchmarks: `lab_cluster()` and the `lab` fixture.

Owns bringing a `lab.cluster.Lab` up in a directory and on an underlay of its
own (so a test lab never meets a lab someone brought up by hand, nor another
test session's), through `Lab` or through the `swarm-lab` command, and tearing
it down whatever happens in the test.

Use in a test module: `from tests.labfixtures import lab  # noqa: F401`, and
`@pytest.mark.parametrize("lab", [{"managers": 3, "workers": 2}], indirect=True)`
for another size (default: one manager, no workers).
"""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import pytest
from pyroute2 import IPRoute

from lab.cluster import Lab, LabError
from lab.images import ensure_demo_image
from lab.state import lab_dir

SWARM_LAB = str(Path(sys.executable).parent / "swarm-lab")   # the installed console script
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


def _first_free_underlay(up: Callable[[int], Lab]) -> Lab:
    """Brings a lab up with `up(index)` on the first free test underlay."""
    for index in range(FIRST_INDEX, LAST_INDEX + 1):
        if bridge_exists(f"shoallab{index}"):
            continue
        try:
            return up(index)
        except LabError as err:
            if "already exists" in str(err):
                continue        # another session took this underlay meanwhile
            raise
    raise LabError(f"no free lab underlay between {FIRST_INDEX} and {LAST_INDEX}")


@contextlib.contextmanager
def _removed_after(root: Path) -> Iterator[list[Lab]]:
    """Yields a list to put the lab made in `root` in; downs it and removes `root` after."""
    made: list[Lab] = []
    try:
        yield made
    finally:
        for lab in made:
            lab.down(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def lab_cluster(managers: int = 1, workers: int = 0,
                metrics_port: Optional[int] = None, init_flags: Sequence[str] = (),
                node_flags: Optional[Mapping[str, Sequence[str]]] = None) -> Iterator[Lab]:
    """A lab that is up inside the block and fully removed after it (its nodes serve
    metrics on <IP>:`metrics_port` over mutual TLS when it is given; manager1 runs
    `swarm init` with `init_flags` too; `node_flags` adds `swarm init|join` flags per
    node name)."""
    root = new_lab_root()
    with _removed_after(root) as made:
        def up(index: int) -> Lab:
            candidate = Lab(root, underlay_index=index, metrics_port=metrics_port,
                            init_flags=init_flags, node_flags=node_flags)
            candidate.up(managers, workers)
            made.append(candidate)
            return candidate
        yield _first_free_underlay(up)


@contextlib.contextmanager
def swarm_lab_cluster(*up_args: str,
                      timeout: float = 600) -> Iterator[tuple[Lab, subprocess.CompletedProcess]]:
    """A lab brought up by the `swarm-lab up UP_ARGS` command itself (its directory and
    underlay chosen through $SHOAL_LAB_DIR and $SHOAL_LAB_INDEX, as by hand); yields the
    lab and the command's result, and removes the lab after the block as `lab_cluster`."""
    root = new_lab_root()
    result: list[subprocess.CompletedProcess] = []
    with _removed_after(root) as made:
        def up(index: int) -> Lab:
            lab = Lab(root, underlay_index=index)
            made.append(lab)        # a command killed half-way still leaves its state
            res = subprocess.run([SWARM_LAB, "up", *up_args], capture_output=True, text=True,
                                 timeout=timeout,
                                 env=dict(swarm_lab_env(lab), SHOAL_LAB_INDEX=str(index)))
            if res.returncode != 0:
                raise LabError(f"swarm-lab up {' '.join(up_args)} failed ({res.returncode}): "
                               f"{res.stderr.strip()}")
            result.append(res)
            return lab
        lab = _first_free_underlay(up)
        yield lab, result[-1]


def swarm_lab_env(lab: Lab) -> dict[str, str]:
    """The environment in which the `swarm-lab` command addresses `lab` (once it is up,
    the underlay recorded in its state file is used whatever $SHOAL_LAB_INDEX says)."""
    return dict(lab.env, SHOAL_LAB_DIR=str(lab.root))


def swarm_lab(lab: Lab, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs the `swarm-lab` console script against `lab`; captures its output."""
    return subprocess.run([SWARM_LAB, *args], capture_output=True, text=True,
                          env=swarm_lab_env(lab), timeout=timeout)


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


def module_lab(managers: int, workers: int, ready_timeout: float = 30.0,
               init_flags: Sequence[str] = (),
               node_flags: Optional[Mapping[str, Sequence[str]]] = None) -> Any:
    """A module-scoped `lab` fixture of this size, every node Ready before the first test.

    Use as `lab = module_lab(3, 2)` at module level of a test file.
    """
    @pytest.fixture(scope="module", name="lab")
    def _lab() -> Iterator[Lab]:
        ensure_demo_image()
        with lab_cluster(managers, workers, init_flags=init_flags,
                         node_flags=node_flags) as running:
            running.wait_ready(timeout=ready_timeout)
            yield running
    return _lab
