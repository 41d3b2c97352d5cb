"""Overlay throughput benchmark: task-to-task TCP over VXLAN vs. node-to-node directly.

Run as root with `python -m lab.bench.overlay` (under /tmp/shoal-e2e.lock on
shared machines). Builds two lab nodes on a fresh underlay, one task namespace
on each attached to one overlay network (the real `DataPlane`), then measures
single-stream TCP throughput with a sender and a receiver process (Python,
large buffers, each in its namespace through nsenter): first between the two
node namespaces over the underlay, then between the two tasks over the
overlay, alternating, several rounds; once over an encrypted overlay. Prints one figure per line: the best
underlay and overlay rates in Mbit/s, their ratio (target >= 0.8) and the
ratio of the medians (runs are noisy on a shared 2-core machine).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from lab.overlaylab import overlay_lab
from overlay_net.model import (Attachment, DesiredState, Endpoint, LocalTask, NetworkKey,
                               NetworkView, mac_for_ip)

PORT = 5201

RECEIVER = """
import socket, sys, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", %d)); srv.listen(1)
print("ready", flush=True)
conn, _ = srv.accept()
buf = bytearray(1 << 20); view = memoryview(buf); total = 0; start = None
while True:
    n = conn.recv_into(view)
    if not n:
        break
    if start is None:
        start = time.monotonic()
    total += n
print(total, time.monotonic() - start, flush=True)
""" % PORT

SENDER = """
import socket, sys, time
ip, seconds = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + 10
while True:
    try:
        s = socket.create_connection((ip, %d), timeout=5); break
    except OSError:
        if time.monotonic() > deadline: raise
        time.sleep(0.05)
data = b"x" * (1 << 20); end = time.monotonic() + seconds
while time.monotonic() < end:
    s.sendall(data)
s.close()
""" % PORT


def _in_ns(path: str, code: str, *args: str, **kw: object) -> subprocess.Popen:
    return subprocess.Popen(["nsenter", f"--net={path}", sys.executable, "-c", code, *args],
                            stdout=subprocess.PIPE, text=True, **kw)  # type: ignore[call-overload]


def measure(receiver_ns: str, sender_ns: str, ip: str, seconds: float) -> float:
    """Mbit/s of one TCP stream from sender_ns to ip (in receiver_ns)."""
    receiver = _in_ns(receiver_ns, RECEIVER)
    try:
        assert receiver.stdout is not None
        if receiver.stdout.readline().strip() != "ready":
            raise RuntimeError("receiver did not start")
        sender = _in_ns(sender_ns, SENDER, ip, str(seconds))
        sender.wait(timeout=seconds + 30)
        total, elapsed = receiver.stdout.readline().split()
        receiver.wait(timeout=10)
        return int(total) * 8 / float(elapsed) / 1e6
    finally:
        receiver.kill()
        receiver.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each kind")
    args = parser.parse_args(argv)
    with overlay_lab(("n1", "n2")) as lab:
        n1, n2 = lab.node_ip("n1"), lab.node_ip("n2")
        ta, tb = lab.task_netns("a"), lab.task_netns("b")
        ip_a, ip_b = f"10.{lab.index}.9.2", f"10.{lab.index}.9.3"
        net = NetworkView(id="bench", vni=9999, subnet=f"10.{lab.index}.9.0/24",
                          gateway=f"10.{lab.index}.9.1",
                          endpoints=(Endpoint(ip_a, mac_for_ip(ip_a), n1, "a"),
                                     Endpoint(ip_b, mac_for_ip(ip_b), n2, "b")))
        for node, task, path, ip in (("n1", "a", ta, ip_a), ("n2", "b", tb, ip_b)):
            result = lab.planes[node].apply(DesiredState((net,), (LocalTask(
                task, path, (Attachment("bench", f"{ip}/24", mac_for_ip(ip)),)),)))
            if result.errors:
                print("overlay setup failed:", result.errors, file=sys.stderr)
                return 1
        # the same pair over an encrypted overlay (userspace AES-GCM tunnel)
        tc, td = lab.task_netns("c"), lab.task_netns("d")
        ip_c, ip_d = f"10.{lab.index}.10.2", f"10.{lab.index}.10.3"
        secure = NetworkView(id="secure", vni=9998, subnet=f"10.{lab.index}.10.0/24",
                             gateway=f"10.{lab.index}.10.1", encrypted=True,
                             keys=(NetworkKey(1, bytes(range(32)), primary=True),),
                             endpoints=(Endpoint(ip_c, mac_for_ip(ip_c), n1, "c"),
                                        Endpoint(ip_d, mac_for_ip(ip_d), n2, "d")))
        for node, tasks in (("n1", (("a", ta, ip_a, "bench"), ("c", tc, ip_c, "secure"))),
                            ("n2", (("b", tb, ip_b, "bench"), ("d", td, ip_d, "secure")))):
            result = lab.planes[node].apply(DesiredState((net, secure), tuple(
                LocalTask(task, path, (Attachment(net_id, f"{ip}/24", mac_for_ip(ip)),))
                for task, path, ip, net_id in tasks)))
            if result.errors:
                print("encrypted overlay setup failed:", result.errors, file=sys.stderr)
                return 1
        encrypted = measure(td, tc, ip_d, args.seconds)
        underlay: list[float] = []
        overlay: list[float] = []
        for _ in range(args.rounds):
            underlay.append(measure(lab.net.netns_path("n2"), lab.net.netns_path("n1"),
                                    n2, args.seconds))
            overlay.append(measure(tb, ta, ip_b, args.seconds))
            time.sleep(0.2)
        best_u, best_o = max(underlay), max(overlay)
        print(f"underlay node-to-node TCP: {best_u:.0f} Mbit/s "
              f"(runs: {', '.join(f'{v:.0f}' for v in underlay)})")
        print(f"overlay task-to-task TCP: {best_o:.0f} Mbit/s "
              f"(runs: {', '.join(f'{v:.0f}' for v in overlay)})")
        print(f"overlay/underlay ratio (best runs): {best_o / best_u:.2f} (target >= 0.80)")
        med_u, med_o = statistics.median(underlay), statistics.median(overlay)
        print(f"overlay/underlay ratio (median runs): {med_o / med_u:.2f}")
        print(f"encrypted overlay (userspace AES-GCM) task-to-task TCP: {encrypted:.0f} Mbit/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
