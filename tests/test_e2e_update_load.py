"""A start-first rolling update under load drops no request: issue 11's acceptance on a lab.

One manager and two workers.  A published service (busybox httpd serving a
file, a healthcheck that passes once httpd answers, 1 s interval) runs 4
replicas on the workers; a client in the manager's network namespace requests
http://worker1:PORT/ through the routing mesh in a loop for the whole update
(`--update-order start-first`, parallelism 1), counting failed requests.  Every
task is replaced and no request fails.  Every wait polls with a deadline.
"""
from __future__ import annotations

import json
from typing import Any, Optional

import pytest

from lab.cluster import Lab
from lab.meshload import MeshLoad, answers
from tests.helpers import sw, wait
from tests.labfixtures import image, module_lab  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PORT = 8090
REPLICAS = 4
HEALTH = ("--health-cmd", "timeout 2 wget -q -O /dev/null http://127.0.0.1/",
          "--health-interval", "1s", "--health-timeout", "3s", "--health-retries", "2")


def web_args(version: str) -> tuple[str, ...]:
    """busybox httpd serving `version` as its index page."""
    script = (f"mkdir -p /www && echo {version} > /www/index.html "
              f"&& exec httpd -f -p 80 -h /www")
    return ("sh", "-c", script)


lab = module_lab(1, 2)


def rows(lab: Lab, service: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in
            sw(lab, "service", "ps", service, "--format", "json").stdout.splitlines() if line]


def running(lab: Lab, service: str) -> list[dict[str, Any]]:
    return [r for r in rows(lab, service) if r["DesiredState"] == "Running"
            and r["CurrentState"].startswith("Running")]


def update_state(lab: Lab, service: str) -> Optional[str]:
    svc = json.loads(sw(lab, "service", "inspect", service).stdout)[0]
    return (svc.get("update_status") or {}).get("state")


def test_start_first_update_under_mesh_load_fails_no_request(lab: Lab, image: str) -> None:
    sw(lab, "service", "create", "-d", "--name", "web", "--replicas", str(REPLICAS),
       "-p", f"{PORT}:80", "--constraint", "node.role==worker", "--stop-grace-period", "1s",
       *HEALTH, "--update-parallelism", "1", "--update-order", "start-first",
       "--update-monitor", "1s", "-e", "V=1", image, *web_args("v1"))
    try:
        wait(lambda: len(running(lab, "web")) == REPLICAS, 90, "4 web tasks running")
        netns = lab.net.netns_path("manager1")
        target = lab.ip("worker1")
        wait(lambda: answers(netns, target, PORT), 30, "the mesh port answering")
        load = MeshLoad(netns, target, PORT, workers=2)
        try:
            sw(lab, "service", "update", "-d", "--env-add", "V=2", "web")
            wait(lambda: update_state(lab, "web") == "COMPLETED", 120,
                 "the update completed")
        finally:
            result = load.stop()
        live = running(lab, "web")
        assert len(live) == REPLICAS
        print(f"start-first update under load: {result.ok} ok, {result.failed} failed")
        assert result.total > 50, result
        assert result.failed == 0, (result, sw(lab, "service", "ps", "web").stdout)
    finally:
        sw(lab, "service", "rm", "web", check=False)
