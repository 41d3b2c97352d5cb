"""A start-first rolling update under load drops no request: issue 11's acceptance on a lab.

One manager and two workers.  A published service (busybox httpd serving a
file, a healthcheck that passes once httpd answers, 1 s interval) runs 4
replicas on the workers; a client in the manager's network namespace requests
http://worker1:PORT/ through the routing mesh in a loop for the whole update
(`--update-order start-first`, parallelism 1), counting failed requests.  Every
task is replaced and no request fails.  Every wait polls with a deadline.

On the same lab: a task whose healthcheck starts failing leaves `tasks.<svc>`
and the routing mesh as soon as it is found unhealthy, while its container is
still running (a stop grace period it spends ignoring SIGTERM).
"""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, Optional

import pytest

from lab.cluster import Lab
from lab.meshload import MeshLoad, answers
from tests.helpers import sw, wait
from tests.test_e2e_overlay import lookup
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


BODIES = r"""
import sys, urllib.request
ip, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
for _ in range(count):
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=3) as answer:
            print(answer.read().decode().strip())
    except OSError as err:
        print(f"error {err}")
"""


def mesh_bodies(lab: Lab, port: int, count: int) -> list[str]:
    """The pages `count` requests from manager1 to worker1:port got (fresh connections)."""
    res = subprocess.run(["nsenter", f"--net={lab.net.netns_path('manager1')}", "--",
                          sys.executable, "-c", BODIES, lab.ip("worker1"), str(port),
                          str(count)], capture_output=True, text=True, timeout=120)
    return res.stdout.splitlines()


def test_an_unhealthy_task_leaves_dns_and_the_mesh_while_its_container_stops(
        lab: Lab, image: str) -> None:
    port = PORT + 1
    sw(lab, "network", "create", "-d", "overlay", "--subnet", "10.82.0.0/24", "sicknet")
    # each page names its container; the shell ignores SIGTERM, so a stopped task's
    # container runs on for its 40 s grace period: the unhealthy period the test watches
    script = ("trap '' TERM; touch /tmp/ok; mkdir -p /www && hostname > /www/index.html; "
              "httpd -f -p 80 -h /www & while true; do sleep 1; done")
    sw(lab, "service", "create", "-d", "--name", "sick", "--mode", "global",
       "--constraint", "node.role==worker", "--network", "sicknet", "-p", f"{port}:80",
       "--stop-grace-period", "40s", "--restart-delay", "30s",
       "--health-cmd", "test -f /tmp/ok", "--health-interval", "1s",
       "--health-retries", "1", image, "sh", "-c", script)
    sw(lab, "service", "create", "-d", "--name", "probe", "--constraint", "node.role==manager",
       "--network", "sicknet", image, "sleep", "3600")
    try:
        wait(lambda: len(running(lab, "sick")) == 2 and len(running(lab, "probe")) == 1,
             90, "two sick tasks and the probe running")
        probe = ("manager1", lab.podman("manager1", "ps", "-q", "--filter",
                                        "label=com.shoal.service.name=probe").stdout.split()[0])
        victim_cid = lab.podman("worker1", "ps", "-q", "--no-trunc", "--filter",
                                "label=com.shoal.service.name=sick").stdout.split()[0]
        victim_host = lab.podman("worker1", "exec", victim_cid, "hostname").stdout.strip()
        addrs = lab.podman("worker1", "exec", victim_cid, "ip", "-o", "-4", "addr").stdout
        victim_ip = next(word.split("/")[0] for word in addrs.split()
                         if word.startswith("10.82.0."))
        wait(lambda: len(lookup(lab, probe, "tasks.sick")) == 2, 30, "tasks.sick: 2 addresses")
        assert victim_ip in lookup(lab, probe, "tasks.sick")
        wait(lambda: victim_host in mesh_bodies(lab, port, 6), 30,
             "the victim answering through the mesh")

        lab.podman("worker1", "exec", victim_cid, "rm", "/tmp/ok", check=True)

        def victim_failed() -> Optional[dict[str, Any]]:
            row = next((r for r in rows(lab, "sick") if r["Node"] == "worker1"
                        and "unhealthy container" in r["Error"]), None)
            return row
        wait(victim_failed, 20, "the victim task failed as unhealthy")

        def still_running() -> bool:
            out = lab.podman("worker1", "inspect", "--format", "{{.State.Running}}",
                             victim_cid).stdout.strip()
            return out == "true"
        assert still_running(), "the unhealthy container stopped at once: nothing to observe"
        wait(lambda: victim_ip not in lookup(lab, probe, "tasks.sick"), 5,
             "the unhealthy task gone from tasks.sick")
        bodies = mesh_bodies(lab, port, 30)
        healthy = [b for b in bodies if not b.startswith("error")]
        assert len(healthy) == 30, bodies
        assert victim_host not in healthy, bodies
        assert still_running(), "the container ended before the traffic was checked"
    finally:
        sw(lab, "service", "rm", "sick", "probe", check=False)
        wait(lambda: sw(lab, "network", "rm", "sicknet", check=False).returncode == 0,
             90, "sicknet removed")
