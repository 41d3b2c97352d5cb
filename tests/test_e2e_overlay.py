"""Overlay networking of tasks on a real lab (1 manager + 2 workers): issue 5's acceptance.

Tasks run busybox in their own namespaces, wired by the agent through
`overlay_net`: traffic between tasks on different workers (ping, TCP with
busybox `nc`), isolation between overlays, the embedded DNS (`<service>`,
`tasks.<service>`, no names of other networks), VIP balancing, the routing
mesh and host-mode ports, an encrypted overlay (a raw capture on the lab's
underlay bridge sees the nodes talk, never the payload), and cleanup once
the last task is gone. Every wait polls with a deadline.
"""
from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import threading
from typing import Any, Optional

import pytest

from lab.cluster import Lab
from tests.labfixtures import image, module_lab  # noqa: F401 (fixtures)
from worker import overlay

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

GRACE = ("--stop-grace-period", "1s")
WORKERS = ("worker1", "worker2")
ECHO = ("nc", "-ll", "-p", "80", "-e", "hostname")   # answers each connection with its hostname

lab = module_lab(1, 2)


def sw(lab: Lab, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return lab.swarm("manager1", *args, check=check)


def wait(cond: Any, timeout: float, what: str) -> Any:
    return Lab.wait_for(cond, timeout, what, interval=0.3)


def running_tasks(lab: Lab, service: str, count: int) -> Optional[list[dict[str, Any]]]:
    rows = [json.loads(line) for line in
            sw(lab, "service", "ps", service, "--format", "json").stdout.splitlines() if line]
    live = [r for r in rows if r["DesiredState"] == "Running"
            and r["CurrentState"].startswith("Running")]
    return live if len(live) == count else None


def containers(lab: Lab, service: str) -> list[tuple[str, str]]:
    """(lab node, container id) of the service's running containers."""
    return [(c["LabNode"], c["Id"]) for c in
            lab.containers(f"label=com.shoal.service.name={service}")]


def start(lab: Lab, name: str, *args: str, replicas: int = 1) -> list[tuple[str, str]]:
    sw(lab, "service", "create", "-d", "--name", name, "--replicas", str(replicas), *GRACE,
       *args)
    wait(lambda: running_tasks(lab, name, replicas), 90, f"{replicas} task(s) of {name} running")
    return wait(lambda: (lambda got: got if len(got) == replicas else None)(
        containers(lab, name)), 30, f"the containers of {name}")


def cexec(lab: Lab, where: tuple[str, str], *cmd: str, timeout: float = 60
          ) -> subprocess.CompletedProcess:
    return lab.podman(where[0], "exec", where[1], *cmd, timeout=timeout)


def ping(lab: Lab, where: tuple[str, str], ip: str, count: int = 2
         ) -> subprocess.CompletedProcess:
    """busybox ping needs CAP_NET_RAW, which podman no longer grants by default."""
    return lab.podman(where[0], "exec", "--privileged", where[1], "ping", "-c", str(count),
                      "-W", "2", ip, timeout=60)


def eth0_ip(lab: Lab, where: tuple[str, str]) -> str:
    out = cexec(lab, where, "ip", "-o", "-4", "addr", "show", "eth0").stdout
    match = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    assert match, f"no eth0 address in {where}: {out!r}"
    return match.group(1)


def lookup(lab: Lab, where: tuple[str, str], name: str) -> list[str]:
    """Addresses busybox nslookup prints for name (via the task's resolv.conf)."""
    res = cexec(lab, where, "nslookup", name)
    text = res.stdout.split("Name:", 1)[1] if "Name:" in res.stdout else ""
    return sorted(set(re.findall(r"Address:\s*(\d+\.\d+\.\d+\.\d+)", text)))


def remove_all(lab: Lab, services: tuple[str, ...], networks: tuple[str, ...]) -> None:
    for name in services:
        sw(lab, "service", "rm", name, check=False)
    for net in networks:
        wait(lambda: sw(lab, "network", "rm", net, check=False).returncode == 0 or
             "No such network" in sw(lab, "network", "rm", net, check=False).stderr,
             60, f"network {net} removed")


def test_tasks_talk_over_the_overlay_dns_and_vip(lab: Lab, image: str):
    services = ("echo", "loner")
    networks = ("front", "other")
    sw(lab, "network", "create", "-d", "overlay", "--subnet", "10.80.0.0/24", "front")
    sw(lab, "network", "create", "-d", "overlay", "--subnet", "10.81.0.0/24", "other")
    try:
        echo = start(lab, "echo", "--constraint", "node.role==worker", "--network", "front",
                     image, *ECHO, replicas=2)
        assert sorted(node for node, _ in echo) == list(WORKERS)
        loner = start(lab, "loner", "--network", "other", image, "sleep", "3600")
        ips = {where: eth0_ip(lab, where) for where in echo}
        assert all(ip.startswith("10.80.0.") for ip in ips.values())
        a, b = echo
        # between workers: ICMP and TCP over the overlay
        pong = ping(lab, a, ips[b])
        assert pong.returncode == 0, pong.stdout + pong.stderr
        hostname_b = cexec(lab, b, "hostname").stdout.strip()
        tcp = cexec(lab, a, "nc", "-w", "3", ips[b], "80")
        assert tcp.stdout.strip() == hostname_b, tcp
        # another overlay cannot reach them
        assert eth0_ip(lab, loner[0]).startswith("10.81.0.")
        cut = ping(lab, loner[0], ips[b], count=1)
        assert cut.returncode != 0 and "permission denied" not in cut.stderr
        cut_tcp = cexec(lab, loner[0], "nc", "-w", "2", ips[b], "80")
        assert cut_tcp.stdout.strip() == ""
        # embedded DNS
        vip = json.loads(sw(lab, "network", "inspect", "front").stdout)[0][
            "Services"]["echo"]["VIP"]
        assert cexec(lab, a, "cat", "/etc/resolv.conf").stdout.splitlines()[1] == \
            "nameserver 127.0.0.11"
        assert wait(lambda: lookup(lab, a, "echo") == [vip], 30, "echo -> its VIP")
        assert lookup(lab, a, "tasks.echo") == sorted(ips.values())
        assert lookup(lab, a, "loner") == []
        assert lookup(lab, loner[0], "echo") == []
        # 20 connections to the VIP reach more than one task
        script = f"for i in $(seq 20); do nc -w 3 {vip} 80 </dev/null; done"
        answers = cexec(lab, a, "sh", "-c", script).stdout.split()
        assert len(answers) == 20, answers
        hostnames = {cexec(lab, w, "hostname").stdout.strip() for w in echo}
        assert set(answers) == hostnames
    finally:
        remove_all(lab, services, networks)
