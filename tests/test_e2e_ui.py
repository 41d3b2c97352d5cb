"""`swarm ui` in a real browser: headless Chromium on a 1-manager, 2-worker lab.

Covers issue 14's cluster page: `swarm ui` runs on the host against the
manager's socket; Chromium (Debian's, driven over the DevTools protocol by
tests/cdp.py) loads the address it prints. The DOM must show every node and
every task `service ps` lists; a scale makes the new boxes appear; a killed
worker's column turns down (red) within the dispatcher's heartbeat period;
when the manager's daemon dies the page says so, and it is live again once the
daemon is back; a worker's socket is refused; SIGINT and SIGTERM stop the
command cleanly. Every wait is a DOM condition (or
a process) with a deadline. With SHOAL_UPDATE_SCREENSHOT=1 the screenshot
goes to design/cluster-page.png (the README shows it); otherwise to the test's
temporary directory.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from lab.cluster import REPO, Lab
from node.config import DEFAULT_HEARTBEAT_NS
from tests.cdp import Page, die_with_parent, headless_chromium
from tests.helpers import sw
from tests.labfixtures import image, module_lab  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

NODES = ("manager1", "worker1", "worker2")
HEARTBEAT = DEFAULT_HEARTBEAT_NS / 1e9     # seconds: the lab runs the default period
SCREENSHOT = REPO / "design" / "cluster-page.png"

lab = module_lab(1, 2)


class UI:
    """A running `swarm ui` (the host's CLI against the manager's socket)."""

    def __init__(self, lab: Lab) -> None:
        argv = [sys.executable, "-m", "cli.main", "-H", lab.host("manager1"), "ui",
                "--port", "0"]
        self.proc = subprocess.Popen(argv, env=dict(os.environ, PYTHONPATH=str(REPO)),
                                     cwd=str(REPO), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     preexec_fn=die_with_parent)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._url(timeout=20)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def _url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if " on http://" in line:
                return line.rsplit(" on ", 1)[1].strip()
        self.proc.kill()
        raise AssertionError(f"swarm ui printed no address within {timeout}s: "
                             f"{self.proc.communicate()[1]}")

    def stop(self, signum: int) -> tuple[int, str]:
        """Sends signum; the exit code and stderr once it has exited (10 s at most)."""
        self.proc.send_signal(signum)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"swarm ui did not stop within 10 s of signal {signum}")
        return self.proc.returncode, err

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture(scope="module")
def ui(lab: Lab) -> Iterator[UI]:
    running = UI(lab)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def page(ui: UI) -> Iterator[Page]:
    with headless_chromium() as browser:
        browser.navigate(ui.url)
        browser.wait_for("document.body.dataset.connected === 'true'", 20,
                         "the page to receive the cluster state")
        yield browser


def dom_task_ids(page: Page, service: str) -> dict[str, str]:
    """Task ID -> hostname of its column, for the boxes of `service` on node columns."""
    return page.evaluate(f"""Object.fromEntries(
        [...document.querySelectorAll('.node[data-hostname] .task[data-service="{service}"]')]
        .map(b => [b.dataset.taskId, b.closest('.node').dataset.hostname]))""")


def live_tasks(lab: Lab, service: str) -> dict[str, str]:
    """Task ID -> node hostname of the tasks `service ps` shows as meant to run."""
    rows = [json.loads(line) for line in sw(lab, "service", "ps", "--no-trunc", service,
                                            "--format", "json").stdout.splitlines() if line]
    return {r["ID"]: r["Node"] for r in rows if r["DesiredState"] == "Running"}


def running_boxes(service: str, count: int) -> str:
    """JS: true once exactly `count` running boxes of `service` sit on node columns."""
    return (f"document.querySelectorAll('.node[data-hostname] "
            f".task[data-service=\"{service}\"][data-state=\"running\"]').length === {count}"
            f" && document.querySelectorAll('.task[data-service=\"{service}\"]').length"
            f" === {count}")


def test_page_shows_every_node_with_role_leader_and_state(lab: Lab, page: Page) -> None:
    page.wait_for(f"document.querySelectorAll('.node[data-hostname]').length === {len(NODES)}",
                  10, "a column per node")
    columns = page.evaluate("""[...document.querySelectorAll('.node[data-hostname]')].map(n =>
        [n.dataset.hostname, n.dataset.role, n.dataset.leader, n.dataset.state,
         n.dataset.availability, !!n.querySelector('.leader')])""")
    assert columns == [["manager1", "manager", "true", "ready", "active", True],
                       ["worker1", "worker", "false", "ready", "active", False],
                       ["worker2", "worker", "false", "ready", "active", False]]


def test_every_task_is_a_box_and_a_scale_adds_boxes(lab: Lab, page: Page, image: str) -> None:
    sw(lab, "node", "update", "--label-add", "zone=a", "worker2")
    page.wait_for("[...document.querySelectorAll('.node[data-hostname=\"worker2\"] .label')]"
                  ".some(l => l.textContent === 'zone=a')", 10, "worker2's new label")
    sw(lab, "service", "create", "-d", "--name", "web", "--replicas", "3",
       "--stop-grace-period", "1s", image, "httpd", "-f", "-p", "8080")
    page.wait_for(running_boxes("web", 3), 60, "3 running boxes of web")
    assert dom_task_ids(page, "web") == live_tasks(lab, "web")
    page.wait_for("(r => r && r.dataset.running === '3' && r.dataset.desired === '3')"
                  "(document.querySelector('tr.service[data-name=\"web\"]'))", 10,
                  "web listed as 3/3")

    sw(lab, "service", "scale", "-d", "web=6")
    page.wait_for(running_boxes("web", 6), 60, "6 running boxes of web after the scale")
    boxes = dom_task_ids(page, "web")
    assert boxes == live_tasks(lab, "web")
    assert set(boxes.values()) == set(NODES)       # spread over every node
    box = page.evaluate("""(b => [b.dataset.slot, b.dataset.image, b.textContent])(
        document.querySelector('.task[data-service="web"]'))""")
    assert int(box[0]) in range(1, 7) and box[1] == image
    assert image.split("/", 1)[1] in box[2]          # shown without the registry host

    # a global service: one box per node, in a colour of its own
    sw(lab, "service", "create", "-d", "--name", "agent", "--mode", "global",
       "--stop-grace-period", "1s", image, "httpd", "-f", "-p", "8081")
    page.wait_for(running_boxes("agent", len(NODES)), 60, "a running box of agent per node")
    agents = dom_task_ids(page, "agent")
    assert agents == live_tasks(lab, "agent") and sorted(agents.values()) == sorted(NODES)
    colours = page.evaluate("""['web', 'agent'].map(s => getComputedStyle(
        document.querySelector(`.task[data-service="${s}"]`)).backgroundColor)""")
    assert colours[0] != colours[1]


def test_a_killed_worker_turns_red_within_the_heartbeat_period(
        lab: Lab, page: Page, tmp_path: Path) -> None:
    lab.kill("worker1")
    killed = time.monotonic()
    page.wait_for("(n => n && n.dataset.state === 'down')"
                  "(document.querySelector('.node[data-hostname=\"worker1\"]'))",
                  HEARTBEAT + 5, "worker1's column to show it down")
    elapsed = time.monotonic() - killed
    print(f"worker1 shown down {elapsed:.2f} s after the kill")
    assert elapsed <= HEARTBEAT, f"worker1 shown down only after {elapsed:.2f} s"
    colour = page.evaluate("getComputedStyle(document.querySelector("
                           "'.node[data-hostname=\"worker1\"] .node-head')).backgroundColor")
    assert colour == "rgb(220, 38, 38)"            # the page's --bad red
    # its tasks move: six running boxes of web again and none on worker1; agent keeps one
    # box on each live node
    page.wait_for(running_boxes("web", 6) + " && " + running_boxes("agent", len(NODES) - 1)
                  + " && !document.querySelector('.node[data-hostname=\"worker1\"] .task')",
                  30, "web's 6 tasks running on the live nodes, agent's 2")
    path = SCREENSHOT if os.environ.get("SHOAL_UPDATE_SCREENSHOT") else \
        tmp_path / "cluster-page.png"
    png = page.screenshot(path)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_the_page_says_when_the_node_is_gone_and_recovers_when_it_returns(
        lab: Lab, page: Page) -> None:
    lab.kill("manager1")
    page.wait_for("document.body.dataset.connected === 'false' && document.getElementById("
                  "'banner').textContent.includes('Cannot connect to the swarm node')", 10,
                  "the page to say swarm ui lost the node")
    lab.start("manager1")
    page.wait_for("document.body.dataset.connected === 'true' && "
                  "document.querySelectorAll('.node[data-hostname]').length === 3", 30,
                  "the page to be live again after the manager's restart")


def test_a_worker_socket_is_refused(lab: Lab) -> None:
    res = subprocess.run([sys.executable, "-m", "cli.main", "-H", lab.host("worker2"), "ui",
                          "--port", "0"], env=dict(os.environ, PYTHONPATH=str(REPO)),
                         cwd=str(REPO), capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and "not a swarm manager" in res.stderr, res.stderr
    assert "Serving" not in res.stdout


def test_sigterm_and_sigint_stop_it_cleanly(lab: Lab, ui: UI, page: Page) -> None:
    second = UI(lab)
    try:
        code, err = second.stop(signal.SIGTERM)
        assert code == 0 and "Stopping the cluster page." in err, err
    finally:
        second.close()
    code, err = ui.stop(signal.SIGINT)
    assert code == 0 and "Traceback" not in err, err
    page.wait_for("document.body.dataset.connected === 'false'", 10,
                  "the page to say it lost swarm ui")
