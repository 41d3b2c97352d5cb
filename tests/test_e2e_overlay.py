"""Overlay networking of tasks on a real lab (1 manager + 2 workers): issue 5's acceptance.

Tasks run busybox in their own namespaces, wired by the agent through
`overlay_net`: traffic between tasks on different workers (ping, TCP with
busybox `nc`), isolation between overlays, the embedded DNS (`<service>`,
`tasks.<service>`, no names of other networks), VIP balancing, the routing
mesh and host-mode ports, VXLAN on the port `swarm init --data-path-port` chose (the
module's lab uses 7789), an encrypted overlay (a raw capture on the lab's
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
from tests.helpers import sw, wait
from tests.labfixtures import image, module_lab  # noqa: F401 (fixtures)
from worker import overlay

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

GRACE = ("--stop-grace-period", "1s")
WORKERS = ("worker1", "worker2")
ECHO = ("nc", "-ll", "-p", "80", "-e", "hostname")   # answers each connection with its hostname

DATA_PATH_PORT = 7789   # `swarm init --data-path-port`: every overlay's VXLAN port here
lab = module_lab(1, 2, init_flags=("--data-path-port", str(DATA_PATH_PORT)))


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
    try:
        wait(lambda: running_tasks(lab, name, replicas), 90,
             f"{replicas} task(s) of {name} running")
    except AssertionError as err:
        ps = sw(lab, "service", "ps", "--no-trunc", name, check=False).stdout
        logs = "\n".join(lab.log_tail(node, 40) for node in lab.names())
        raise AssertionError(f"{err}\n{ps}\n{logs}") from None
    return wait(lambda: (lambda got: got if len(got) == replicas else None)(
        containers(lab, name)), 30, f"the containers of {name}")


def cexec(lab: Lab, where: tuple[str, str], *cmd: str, timeout: float = 60
          ) -> subprocess.CompletedProcess:
    return lab.podman(where[0], "exec", where[1], *cmd, timeout=timeout)


def ping(lab: Lab, where: tuple[str, str], ip: str, count: int = 2
         ) -> subprocess.CompletedProcess:
    """busybox ping from a task, with the task's own capabilities: Docker's default set
    has NET_RAW (podman's has not), so a user's ping works as it does under Docker."""
    return lab.podman(where[0], "exec", where[1], "ping", "-c", str(count),
                      "-W", "2", ip, timeout=60)


DOCKER_CAPEFF = "00000000a80425fb"   # Docker's default capabilities as /proc shows them


def cap_eff(lab: Lab, where: tuple[str, str]) -> str:
    """The CapEff of the task's main process (PID 1 in its container)."""
    status = cexec(lab, where, "cat", "/proc/1/status").stdout
    return next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:"))


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
        # tasks have Docker's capabilities; between workers: ICMP and TCP over the overlay
        assert cap_eff(lab, a) == cap_eff(lab, b) == DOCKER_CAPEFF
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


def fetch(ip: str, port: int, payload: bytes = b"") -> Optional[str]:
    """What a TCP server at ip:port answers (None when the connection is refused)."""
    try:
        with socket.create_connection((ip, port), timeout=5) as conn:
            if payload:
                conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
            data = b""
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    return data.decode(errors="replace").strip()
                data += chunk
    except OSError:
        return None


def node_netns(lab: Lab, node: str, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net={lab.net.netns_path(node)}", "--", *cmd],
                          capture_output=True, text=True, timeout=30)


def test_published_ports_mesh_and_host_mode(lab: Lab, image: str):
    services = ("meshed", "hosted", "clash")
    try:
        (meshed,) = start(lab, "meshed", "-p", "8080:80", "--constraint",
                          "node.hostname==worker1", image, *ECHO)
        (hosted,) = start(lab, "hosted", "--publish", "published=8081,target=80,mode=host",
                          "--constraint", "node.hostname==worker2", image, *ECHO)
        assert meshed[0] == "worker1" and hosted[0] == "worker2"
        meshed_name = cexec(lab, meshed, "hostname").stdout.strip()
        hosted_name = cexec(lab, hosted, "hostname").stdout.strip()
        # the routing mesh: the underlay address of every node answers
        for node in lab.names():
            got = wait(lambda: fetch(lab.ip(node), 8080), 60, f"port 8080 on {node}")
            assert got == meshed_name, node
        # host mode: only where the task runs
        assert wait(lambda: fetch(lab.ip("worker2"), 8081), 60, "8081 on worker2") == hosted_name
        for node in ("manager1", "worker1"):
            assert fetch(lab.ip(node), 8081) is None, node
        clash = sw(lab, "service", "create", "-d", "--name", "clash", "-p", "8080:80", image,
                   "sleep", "3600", check=False)
        assert clash.returncode != 0 and "already in use by service 'meshed'" in clash.stderr
        assert sw(lab, "service", "inspect", "clash", check=False).returncode != 0
    finally:
        for name in services:
            sw(lab, "service", "rm", name, check=False)
    # no service publishes any more: the mesh leaves every node
    for node in lab.names():
        wait(lambda: "shoal_ingress" not in node_netns(lab, node, "nft", "list", "tables").stdout
             and fetch(lab.ip(node), 8080) is None, 60, f"the routing mesh gone from {node}")
    # the host-mode port closes once worker2 has stopped and removed the task
    wait(lambda: fetch(lab.ip("worker2"), 8081) is None, 60, "host port 8081 closed on worker2")


class Capture:
    """Frames seen on the lab's underlay bridge (raw AF_PACKET socket) while running."""

    def __init__(self, bridge: str) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self.bridge = bridge    # bound to no device: the bridge's ports (veths) are seen too
        self.frames: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.2)
            if ready:
                self.frames.append(self.sock.recv(65535))

    def stop(self) -> list[bytes]:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.frames


def udp_between(frame: bytes, a: str, b: str) -> Optional[int]:
    """The UDP destination port of an IPv4 frame between a and b (either way), else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    src, dst = socket.inet_ntoa(frame[26:30]), socket.inet_ntoa(frame[30:34])
    if {src, dst} != {a, b}:
        return None
    ihl = (frame[14] & 0x0F) * 4
    return int.from_bytes(frame[14 + ihl + 2:14 + ihl + 4], "big")


def test_vxlan_runs_on_the_clusters_data_path_port(lab: Lab, image: str):
    info = sw(lab, "info").stdout
    assert f"Data Path Port: {DATA_PATH_PORT}" in info, info
    sw(lab, "network", "create", "-d", "overlay", "--subnet", "10.84.0.0/24", "portnet")
    try:
        tasks = start(lab, "portnet", "--constraint", "node.role==worker", "--network",
                      "portnet", image, *ECHO, replicas=2)
        assert sorted(node for node, _ in tasks) == list(WORKERS)
        a, b = tasks
        capture = Capture(lab.net.underlay.bridge)
        try:
            pong = ping(lab, a, eth0_ip(lab, b), count=3)
        finally:
            frames = capture.stop()
        assert pong.returncode == 0, pong.stdout + pong.stderr
        between = [udp_between(f, lab.ip("worker1"), lab.ip("worker2")) for f in frames]
        ports = {port for port in between if port is not None}
        assert ports == {DATA_PATH_PORT}, ports      # VXLAN on the cluster's port, not 4789
    finally:
        remove_all(lab, ("portnet",), ("portnet",))


def test_encrypted_overlay_carries_no_plaintext(lab: Lab, image: str):
    sw(lab, "network", "create", "-d", "overlay", "--opt", "encrypted", "--subnet",
       "10.82.0.0/24", "sealed")
    try:
        info = json.loads(sw(lab, "network", "inspect", "sealed").stdout)[0]
        assert "AES-256-GCM over UDP 4790" in info["Encryption"]
        sealed = start(lab, "sealed", "--constraint", "node.role==worker", "--network",
                       "sealed", image, *ECHO, replicas=2)
        assert sorted(node for node, _ in sealed) == list(WORKERS)
        a, b = sealed
        ip_b = eth0_ip(lab, b)
        name_b = cexec(lab, b, "hostname").stdout.strip()
        marker = "SHOAL-PLAINTEXT-MARKER-0123456789"
        capture = Capture(lab.net.underlay.bridge)
        try:
            pong = ping(lab, a, ip_b, count=3)
            got = cexec(lab, a, "sh", "-c",
                        f"for i in $(seq 5); do yes {marker} | head -n 50 | nc -w 3 {ip_b} 80; "
                        "done")
        finally:
            frames = capture.stop()
        assert pong.returncode == 0, pong.stdout + pong.stderr
        assert got.stdout.split() == [name_b] * 5, got
        between = [udp_between(f, lab.ip("worker1"), lab.ip("worker2")) for f in frames]
        tunnel = [port for port in between if port is not None]
        assert tunnel and set(tunnel) == {4790}, set(tunnel)   # the encrypted tunnel, no VXLAN
        blob = b"".join(frames)
        assert marker.encode() not in blob and name_b.encode() not in blob
        assert len(frames) > 10
    finally:
        remove_all(lab, ("sealed",), ("sealed",))


def test_network_rm_refused_in_use_and_node_cleaned_after_last_task(lab: Lab, image: str):
    sw(lab, "network", "create", "-d", "overlay", "--subnet", "10.83.0.0/24", "brief")
    try:
        (task,) = start(lab, "brief", "--network", "brief", "--constraint",
                        "node.hostname==worker1", image, "sleep", "3600")
        vni = json.loads(sw(lab, "network", "inspect", "brief").stdout)[0][
            "Options"]["com.docker.network.driver.overlay.vxlanid_list"]
        node_id = lab.node_id("worker1")
        sandbox = overlay.naming(node_id).sandbox(int(vni))
        task_prefix = overlay.task_netns_prefix(node_id)
        assert os.path.exists(f"/run/netns/{sandbox}")
        links = subprocess.run(["ip", "-n", sandbox, "-o", "link"], capture_output=True,
                               text=True, timeout=30).stdout
        assert " br0:" in links and " vxlan0" in links
        (first,) = [n for n in os.listdir("/run/netns") if n.startswith(task_prefix)]
        # a task that ended but stays in the service's history keeps no namespace (its
        # stopped container stays, as Docker's does; found by the chaos soak)
        sw(lab, "service", "update", "-d", "--force", "brief")
        wait(lambda: [n for n in os.listdir("/run/netns") if n.startswith(task_prefix)
                      and n != first] and not os.path.exists(f"/run/netns/{first}"), 60,
             "the replaced task's namespace removed and the new task's made")
        kept = [c for c in lab.containers("label=com.shoal.service.name=brief", all_states=True)
                if c["Id"] != task[1]]
        assert any(c["Id"] == task[1] for c in lab.containers(
            "label=com.shoal.service.name=brief", all_states=True)), "the old container was removed"
        assert kept, "no new container"
        refused = sw(lab, "network", "rm", "brief", check=False)
        assert refused.returncode != 0 and "in use" in refused.stderr
        sw(lab, "service", "rm", "brief")
        wait(lambda: not os.path.exists(f"/run/netns/{sandbox}") and not [
            n for n in os.listdir("/run/netns") if n.startswith(task_prefix)], 60,
            "the sandbox and the task namespace removed")
        assert f"vx{vni}" not in node_netns(lab, "worker1", "ip", "-o", "link").stdout
        assert not overlay.resolv_dir(node_id).exists() or not list(
            overlay.resolv_dir(node_id).iterdir())
        assert lab.containers("label=com.shoal.service.name=brief", all_states=True) == []
    finally:
        remove_all(lab, ("brief",), ("brief",))


def test_restarted_daemon_keeps_its_tasks_networking(lab: Lab, image: str):
    sw(lab, "network", "create", "-d", "overlay", "--subnet", "10.85.0.0/24", "steady")
    try:
        pair = start(lab, "steady", "--constraint", "node.role==worker", "--network", "steady",
                     image, *ECHO, replicas=2)
        a = next(w for w in pair if w[0] == "worker1")
        b = next(w for w in pair if w[0] == "worker2")
        ip_b, name_b = eth0_ip(lab, b), cexec(lab, b, "hostname").stdout.strip()
        lab.kill("worker1")
        lab.start("worker1")
        lab.wait_ready(timeout=60)
        # the adopted task keeps its interface, and its DNS answers again
        assert cexec(lab, a, "nc", "-w", "3", ip_b, "80").stdout.strip() == name_b
        wait(lambda: lookup(lab, a, "tasks.steady") == sorted([eth0_ip(lab, a), ip_b]), 30,
             "the embedded DNS back after the restart")
        assert running_tasks(lab, "steady", 2)
    finally:
        remove_all(lab, ("steady",), ("steady",))

def test_swarm_leave_removes_the_nodes_overlay_state(lab: Lab, image: str):
    """Last in this module: worker2 leaves the swarm for good."""
    sw(lab, "network", "create", "-d", "overlay", "--subnet", "10.84.0.0/24", "parting")
    try:
        start(lab, "parting", "--network", "parting", "-p", "8090:80", "--constraint",
              "node.hostname==worker2", image, *ECHO)
        node_id = lab.node_id("worker2")
        mine = (overlay.naming(node_id).sandbox_prefix, overlay.task_netns_prefix(node_id))
        present = [n for n in os.listdir("/run/netns") if n.startswith(mine)]
        assert len(present) == 3, present          # parting + ingress sandboxes, the task's
        wait(lambda: "shoal_ingress" in node_netns(lab, "worker2", "nft", "list",
                                                   "tables").stdout, 30, "the mesh on worker2")
        left = lab.swarm("worker2", "leave", "--data-dir", str(lab.data_dir("worker2")),
                         check=False)
        assert left.returncode == 0, left.stderr
        assert [n for n in os.listdir("/run/netns") if n.startswith(mine)] == []
        assert "shoal_ingress" not in node_netns(lab, "worker2", "nft", "list", "tables").stdout
        assert "shoal-ing0" not in node_netns(lab, "worker2", "ip", "-o", "link").stdout
    finally:
        remove_all(lab, ("parting",), ("parting",))
