"""Overlay data plane benchmark: plain and encrypted throughput, routing-mesh connection rate.

Run as root with `python -m lab.bench.overlay` (under /tmp/shoal-e2e.lock on
shared machines). Every figure is measured with C tools from Debian
(`iperf3`, `ab`, `nginx`; scripts/setup.sh installs them), so the data plane is
what is measured, not a Python client.

Throughput (`--what throughput`): two lab nodes on a fresh underlay, one task
namespace on each, attached to a plain overlay and to an encrypted one (the real
`DataPlane`). One TCP stream (`iperf3`), alternating, `--rounds` times:
between the two node namespaces over the underlay (the floor to beat), then
between the two tasks over the plain overlay (VXLAN). Prints both medians and
their ratio (target >= 0.9). Then the encrypted overlay (userspace AES-GCM
tunnel) `--rounds` times: throughput (target >= 1 Gbit/s) and the CPU the
tunnel's threads used, as cores and as cores per Gbit/s. Both nodes' tunnels
run in this one process (they share one interpreter lock, where two real nodes
would not), so the figure is a lower bound.

Mesh (`--what mesh`): see lab.bench.overlaymesh.

Finding (`--what bridge-netfilter`): the plain overlay with the sandboxes'
bridge netfilter switches off (as the data plane sets them) and on (as a new
namespace has them when br_netfilter is loaded), alternating.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from lab.bench import overlaymesh
from lab.overlaylab import OverlayLab, overlay_lab
from overlay_net import netns
from overlay_net.sandbox import set_bridge_netfilter
from overlay_net.model import (Attachment, DesiredState, Endpoint, LocalTask, NetworkKey,
                               NetworkView, mac_for_ip)

PORT = 5201
PLAIN_TARGET = 0.9
ENCRYPTED_TARGET_MBIT = 1000.0


@dataclass(frozen=True)
class Transfer:
    """One iperf3 run."""
    mbit: float
    sender_cpu: float        # percent of one core, iperf3's own figure
    receiver_cpu: float
    seconds: float
    tunnel_cores: float      # CPU of this process (the tunnel threads) / wall time


def _start_server(namespace: str, port: int) -> subprocess.Popen:
    server = subprocess.Popen(["nsenter", f"--net={namespace}", "iperf3", "-s", "-1",
                               "--forceflush", "-p", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    assert server.stdout is not None
    for line in server.stdout:        # "Server listening on <port>" once it is bound
        if "listening" in line:
            return server
    server.kill()
    server.wait()
    raise RuntimeError(f"iperf3 server in {namespace} did not start")


def transfer(server_ns: str, client_ns: str, ip: str, seconds: float) -> Transfer:
    """One TCP stream from client_ns to ip (iperf3 in server_ns) for `seconds`."""
    server = _start_server(server_ns, PORT)
    try:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        start = time.monotonic()
        client = subprocess.run(["nsenter", f"--net={client_ns}", "iperf3", "-c", ip,
                                 "-p", str(PORT), "-t", str(seconds), "-J"],
                                capture_output=True, text=True, timeout=seconds + 60)
        elapsed = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        if client.returncode != 0:
            raise RuntimeError(f"iperf3 to {ip} failed: {client.stdout[-500:]}"
                               f"{client.stderr[-500:]}")
        end = json.loads(client.stdout)["end"]
        cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
        return Transfer(mbit=end["sum_received"]["bits_per_second"] / 1e6,
                        sender_cpu=end["cpu_utilization_percent"]["host_total"],
                        receiver_cpu=end["cpu_utilization_percent"]["remote_total"],
                        seconds=elapsed, tunnel_cores=cpu / elapsed)
    finally:
        try:                          # -1: the server exits after its one test
            server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


@dataclass
class ThroughputLab:
    """Namespaces and addresses of the throughput scenario."""
    underlay: tuple[str, str, str]   # server ns, client ns, server ip
    plain: tuple[str, str, str]
    encrypted: tuple[str, str, str]


def build(lab: OverlayLab) -> Optional[ThroughputLab]:
    """Two tasks per node: one on a plain overlay, one on an encrypted one."""
    n1, n2 = lab.node_ip("n1"), lab.node_ip("n2")
    ta, tb, tc, td = (lab.task_netns(name) for name in ("a", "b", "c", "d"))
    ip_a, ip_b = f"10.{lab.index}.9.2", f"10.{lab.index}.9.3"
    ip_c, ip_d = f"10.{lab.index}.10.2", f"10.{lab.index}.10.3"
    plain = NetworkView(id="bench", vni=9999, subnet=f"10.{lab.index}.9.0/24",
                        gateway=f"10.{lab.index}.9.1",
                        endpoints=(Endpoint(ip_a, mac_for_ip(ip_a), n1, "a"),
                                   Endpoint(ip_b, mac_for_ip(ip_b), n2, "b")))
    secure = NetworkView(id="secure", vni=9998, subnet=f"10.{lab.index}.10.0/24",
                         gateway=f"10.{lab.index}.10.1", encrypted=True,
                         keys=(NetworkKey(1, bytes(range(32)), primary=True),),
                         endpoints=(Endpoint(ip_c, mac_for_ip(ip_c), n1, "c"),
                                    Endpoint(ip_d, mac_for_ip(ip_d), n2, "d")))
    for node, tasks in (("n1", (("a", ta, ip_a, "bench"), ("c", tc, ip_c, "secure"))),
                        ("n2", (("b", tb, ip_b, "bench"), ("d", td, ip_d, "secure")))):
        result = lab.planes[node].apply(DesiredState((plain, secure), tuple(
            LocalTask(task, path, (Attachment(net_id, f"{ip}/24", mac_for_ip(ip)),))
            for task, path, ip, net_id in tasks)))
        if result.errors:
            print("overlay setup failed:", result.errors, file=sys.stderr)
            return None
    return ThroughputLab(underlay=(lab.net.netns_path("n2"), lab.net.netns_path("n1"), n2),
                         plain=(tb, ta, ip_b), encrypted=(td, tc, ip_d))


def _runs(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def throughput_bench(seconds: float, rounds: int) -> int:
    """Plain overlay vs. underlay (alternating), then the encrypted overlay."""
    with overlay_lab(("n1", "n2")) as lab:
        scenario = build(lab)
        if scenario is None:
            return 1
        transfer(*scenario.plain, 1.0)            # warm-up: ARP, first flows
        transfer(*scenario.encrypted, 1.0)
        underlay: list[float] = []
        plain: list[float] = []
        for _ in range(rounds):
            underlay.append(transfer(*scenario.underlay, seconds).mbit)
            plain.append(transfer(*scenario.plain, seconds).mbit)
        secure = [transfer(*scenario.encrypted, seconds) for _ in range(rounds)]
    med_u, med_p = statistics.median(underlay), statistics.median(plain)
    print(f"underlay node-to-node TCP (floor): median {med_u:.0f} Mbit/s "
          f"(runs: {_runs(underlay)})")
    print(f"plain overlay task-to-task TCP: median {med_p:.0f} Mbit/s (runs: {_runs(plain)})")
    print(f"plain overlay/underlay ratio (medians of {rounds}): {med_p / med_u:.2f} "
          f"(target >= {PLAIN_TARGET})")
    rates = [t.mbit for t in secure]
    med_e = statistics.median(rates)
    cores = statistics.median(t.tunnel_cores for t in secure)
    print(f"encrypted overlay task-to-task TCP: median {med_e:.0f} Mbit/s "
          f"(runs: {_runs(rates)}; target >= {ENCRYPTED_TARGET_MBIT:.0f})")
    print(f"encrypted overlay tunnel CPU (both nodes' threads): {cores:.2f} cores, "
          f"{cores / (med_e / 1000):.2f} cores per Gbit/s; iperf3 sender "
          f"{statistics.median(t.sender_cpu for t in secure):.0f}%, receiver "
          f"{statistics.median(t.receiver_cpu for t in secure):.0f}% of a core")
    print(f"encrypted/plain overlay ratio (medians): {med_e / med_p:.3f}")
    return 0


def _bridge_netfilter(lab: OverlayLab, on: bool) -> None:
    """Sets the sandboxes' bridge-nf-call-* switches (off: what the data plane sets)."""
    for sandbox in lab.sandboxes():
        netns.run_in_netns(netns.netns_path(sandbox), lambda: set_bridge_netfilter(on))


def bridge_netfilter_bench(seconds: float, rounds: int) -> int:
    """The plain overlay with the sandboxes' bridge netfilter off (as built) and on (before)."""
    if not Path("/proc/sys/net/bridge").exists():
        print("br_netfilter is not loaded here: nothing to compare", file=sys.stderr)
        return 1
    with overlay_lab(("n1", "n2")) as lab:
        scenario = build(lab)
        if scenario is None:
            return 1
        transfer(*scenario.plain, 1.0)
        off: list[float] = []
        on: list[float] = []
        for _ in range(rounds):
            _bridge_netfilter(lab, False)
            off.append(transfer(*scenario.plain, seconds).mbit)
            _bridge_netfilter(lab, True)
            on.append(transfer(*scenario.plain, seconds).mbit)
    print(f"plain overlay, sandbox bridge netfilter off (as built): median "
          f"{statistics.median(off):.0f} Mbit/s (runs: {_runs(off)})")
    print(f"plain overlay, sandbox bridge netfilter on (before): median "
          f"{statistics.median(on):.0f} Mbit/s (runs: {_runs(on)})")
    print(f"off/on ratio (medians of {rounds}): "
          f"{statistics.median(off) / statistics.median(on):.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one run")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each kind")
    parser.add_argument("--what", choices=("all", "throughput", "mesh", "bridge-netfilter"),
                        default="all",
                        help="throughput (plain and encrypted), mesh (connections/s), both "
                             "(all), or the plain overlay with and without the sandboxes' "
                             "bridge netfilter (bridge-netfilter, not part of all)")
    parser.add_argument("--clients", type=int, default=overlaymesh.CLIENTS,
                        help="concurrent connections of the mesh benchmark's client")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1 or args.clients < 1:
        parser.error("--seconds must be > 0, --rounds and --clients >= 1")
    if args.what == "bridge-netfilter":
        return bridge_netfilter_bench(args.seconds, args.rounds)
    if args.what in ("all", "throughput"):
        status = throughput_bench(args.seconds, args.rounds)
        if status:
            return status
    if args.what in ("all", "mesh"):
        return overlaymesh.mesh_bench(args.seconds, args.rounds, args.clients)
    return 0


if __name__ == "__main__":
    sys.exit(main())
