"""Shared pytest fixtures. Each section belongs to the module named in its heading;
add new fixtures in a section of your own."""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import pytest


# ---------------------------------------------------------------------------
# Demo image in the lab registry (owner: lab/images.py, worker/podman.py)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def demo_image() -> str:
    """Reference of the busybox demo image, pushed to the lab registry on 127.0.0.1:5000.

    Starts the registry and builds the image the first time; cheap afterwards.
    """
    from lab.images import ensure_demo_image
    return ensure_demo_image()


# ---------------------------------------------------------------------------
# A single-node raft store in the test's directory (owner: raft/store.py; used by
# the in-process flow tests of volumes and stacks)
# ---------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    """A started one-member `raft.store.Store` with fast timings, closed after the test."""
    from raft.store import Store
    from tests.test_store import FAST, free_port
    s = Store("m1", str(tmp_path / "raft"), f"127.0.0.1:{free_port()}", tuning=FAST)
    s.start()
    s.wait_ready(10)
    yield s
    s.close()


# ---------------------------------------------------------------------------
# Daemon logs of a failed lab test (owner: tests/labfixtures.py, lab/cluster.py)
# ---------------------------------------------------------------------------
# CI shows only the end of the output, so a failed test that used a lab gets
# its nodes' daemon logs copied under /tmp/shoal-test-logs and a few telling
# lines per node (raft, leadership, warnings) printed in the final summary.

LOG_KEEP = Path("/tmp/shoal-test-logs")
_TELLING = re.compile(r"raft|leader|lead:|WARNING|ERROR|CRITICAL")
_failed_labs: list[tuple[str, Path, dict[str, list[str]], str]] = []


def _labs_of(item: Any) -> list[Any]:
    from lab.cluster import Lab
    return [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, Lab)]


def _keep_lab_logs(nodeid: str, lab: Any, message: str) -> None:
    dest = LOG_KEEP / f"{int(time.time())}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', nodeid)[-120:]}"
    lines: dict[str, list[str]] = {}
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for name in lab.names():
            path = lab.log_path(name)
            if not path.exists():
                continue
            shutil.copy(path, dest / f"{name}.log")
            text = path.read_text(errors="replace").splitlines()
            lines[name] = [line[:200] for line in text if _TELLING.search(line)][-6:]
    except Exception as exc:  # diagnostics must never hide the real failure
        lines["(logs)"] = [f"could not keep the logs: {exc}"]
    _failed_labs.append((nodeid, dest, lines, message))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("call", "teardown"):
        crash = getattr(report.longrepr, "reprcrash", None)
        message = (getattr(crash, "message", "") or "")[:1200]
        for lab in _labs_of(item):
            _keep_lab_logs(item.nodeid, lab, message)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _failed_labs:
        return
    terminalreporter.section("daemon logs of failed lab tests")
    for nodeid, dest, lines, message in _failed_labs[-3:]:
        terminalreporter.write_line(f"{nodeid}: full logs in {dest}")
        if message:
            terminalreporter.write_line(f"  failure: {message}")
        for name, tail in lines.items():
            for line in tail:
                terminalreporter.write_line(f"  {name}: {line}")
