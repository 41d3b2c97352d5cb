"""Routing-mesh benchmark: new TCP connections per second through a published port.

Part of `python -m lab.bench.overlay` (`--what mesh`). Three lab nodes on one
ingress network, a service with a published port and two backend tasks (on n1
and n2), each running `nginx` (one worker) in its task namespace, answering
every request with a short body. The client is ApacheBench (`ab`, C, one
connection per request, `--clients` at a time) in n1's node namespace:

* mesh: to n3's underlay address and the published port. n3 has no task, so
  every connection crosses the mesh (DNAT on n3, SNAT in n3's ingress sandbox,
  VXLAN to a backend on n1 or n2);
* direct: to the backend task on n1 at its own address (no mesh, no VXLAN);

alternating, `--rounds` times. The client's own ceiling is measured apart: `ab`
against the same nginx over loopback inside the backend's namespace (no
network path at all), so a ratio near 1 cannot come from a saturated client.
The client namespace reuses TIME_WAIT ports (a benchmark client opens tens of
thousands of connections a second).
"""
from __future__ import annotations

import contextlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from lab.overlaylab import overlay_lab
from overlay_net.model import (Attachment, DesiredState, Endpoint, LocalTask, NetworkView,
                               Peer, PortView, ServiceView, mac_for_ip)

MESH_PORT = 30080      # published
TARGET_PORT = 80       # nginx in the backend tasks
CLIENTS = 32

NGINX_CONF = """daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    server {{
        listen {port} backlog=8192;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


def _sysctl(namespace: str, key: str, value: str) -> None:
    subprocess.run(["nsenter", f"--net={namespace}", "sysctl", "-q", "-w", f"{key}={value}"],
                   check=True)


def ab_rate(namespace: str, url: str, seconds: float, clients: int) -> tuple[float, int]:
    """(completed requests per second, failed requests): `ab`, one connection each."""
    # -n after -t: -t alone caps the run at 50,000 requests
    run = subprocess.run(["nsenter", f"--net={namespace}", "ab", "-q", "-r", "-s", "5",
                          "-t", str(seconds), "-n", "100000000", "-c", str(clients), url],
                         capture_output=True, text=True, timeout=seconds + 60)
    rate = re.search(r"Requests per second:\s+([\d.]+)", run.stdout)
    failed = re.search(r"Failed requests:\s+(\d+)", run.stdout)
    if run.returncode != 0 or rate is None or failed is None:
        raise RuntimeError(f"ab {url} failed (exit {run.returncode}): "
                           f"{run.stdout[-400:]}{run.stderr[-400:]}")
    return float(rate.group(1)), int(failed.group(1))


def _wait_answering(namespace: str, url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        run = subprocess.run(["nsenter", f"--net={namespace}", "ab", "-q", "-s", "2", "-n", "1",
                              url], capture_output=True, text=True, timeout=30)
        if run.returncode == 0 and re.search(r"Complete requests:\s+1\b", run.stdout) \
                and re.search(r"Failed requests:\s+0\b", run.stdout):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f}s: {run.stderr}")
        time.sleep(0.1)


def _nginx(namespace: str, workdir: Path) -> subprocess.Popen:
    workdir.mkdir(parents=True)
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, port=TARGET_PORT))
    return subprocess.Popen(["nsenter", f"--net={namespace}", "nginx", "-e", "stderr",
                             "-p", str(workdir), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@dataclass(frozen=True)
class MeshScenario:
    """Where the client runs and what it connects to."""
    client_ns: str
    mesh_url: str             # n3's underlay address, published port
    direct_url: str           # the backend on n1, its own address
    backend_ns: str           # that backend's namespace (loopback ceiling)
    loop_url: str


@contextlib.contextmanager
def mesh_scenario() -> Iterator[MeshScenario]:
    """Three nodes, an ingress network, a published service with nginx on n1 and n2."""
    workdir = Path(tempfile.mkdtemp(prefix="shoal-meshbench-"))
    servers: list[subprocess.Popen] = []
    try:
        with overlay_lab(("n1", "n2", "n3")) as lab:
            base = f"10.{lab.index}.11"
            mesh_hosts = {"n1": 2, "n2": 3, "n3": 4}
            backends = {"s1": ("n1", f"{base}.11"), "s2": ("n2", f"{base}.12")}
            paths = {name: lab.task_netns(name) for name in backends}
            service = ServiceView("web", vip=f"{base}.100",
                                  backends=tuple(ip for _, ip in backends.values()),
                                  ports=(PortView(published=MESH_PORT, target=TARGET_PORT),))
            net = NetworkView(
                id="ingress", name="ingress", vni=9997, subnet=f"{base}.0/24",
                gateway=f"{base}.1", ingress=True, services=(service,),
                peers=tuple(Peer(lab.node_ip(n), f"{base}.{h}", mac_for_ip(f"{base}.{h}"))
                            for n, h in mesh_hosts.items()),
                endpoints=tuple(Endpoint(ip, mac_for_ip(ip), lab.node_ip(node), name, "web")
                                for name, (node, ip) in backends.items()))
            for node in lab.planes:
                tasks = tuple(LocalTask(name, paths[name], (Attachment(
                    "ingress", f"{ip}/24", mac_for_ip(ip)),))
                    for name, (where, ip) in backends.items() if where == node)
                local = replace(net, local_addr=f"{base}.{mesh_hosts[node]}/24")
                result = lab.planes[node].apply(DesiredState((local,), tasks))
                if result.errors:
                    raise RuntimeError(f"mesh setup failed: {result.errors}")
            for name in backends:
                servers.append(_nginx(paths[name], workdir / name))
            client_ns = lab.net.netns_path("n1")
            _sysctl(client_ns, "net.ipv4.tcp_tw_reuse", "1")
            _sysctl(client_ns, "net.ipv4.ip_local_port_range", "1024 65000")
            scenario = MeshScenario(
                client_ns=client_ns, mesh_url=f"http://{lab.node_ip('n3')}:{MESH_PORT}/",
                direct_url=f"http://{backends['s1'][1]}:{TARGET_PORT}/",
                backend_ns=paths["s1"], loop_url=f"http://127.0.0.1:{TARGET_PORT}/")
            for namespace, url in ((client_ns, scenario.mesh_url),
                                   (client_ns, scenario.direct_url),
                                   (scenario.backend_ns, scenario.loop_url)):
                _wait_answering(namespace, url)
            yield scenario
    finally:
        for server in servers:
            server.kill()
            server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def mesh_bench(seconds: float, rounds: int, clients: int) -> int:
    """New connections/s to a published port through the routing mesh vs. directly."""
    if shutil.which("ab") is None or shutil.which("nginx") is None:
        print("the mesh benchmark needs ab (apache2-utils) and nginx (nginx-light): "
              "run scripts/setup.sh", file=sys.stderr)
        return 1
    mesh: list[float] = []
    direct: list[float] = []
    with mesh_scenario() as scenario:
        ceiling, failures = ab_rate(scenario.backend_ns, scenario.loop_url, seconds, clients)
        for _ in range(rounds):
            for url, into in ((scenario.mesh_url, mesh), (scenario.direct_url, direct)):
                rate, failed = ab_rate(scenario.client_ns, url, seconds, clients)
                into.append(rate)
                failures += failed
    med_m, med_d = statistics.median(mesh), statistics.median(direct)
    print(f"client ceiling (ab -> nginx over loopback, no network): {ceiling:.0f} "
          "connections/s")
    print(f"mesh_connections_per_s {med_m:.0f} (n1 -> n3:{MESH_PORT}, n3 has no task; "
          f"runs: {', '.join(f'{v:.0f}' for v in mesh)})")
    print(f"direct_connections_per_s {med_d:.0f} (n1 -> task on n1, no mesh; "
          f"runs: {', '.join(f'{v:.0f}' for v in direct)})")
    print(f"mesh/direct ratio (medians of {rounds}): {med_m / med_d:.2f} (target >= 0.85)")
    print(f"direct/client ceiling: {med_d / ceiling:.2f}")
    print(f"failed connections: {failures} ({clients} concurrent, {seconds:.0f} s per run)")
    return 0
