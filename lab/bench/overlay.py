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

`--what mesh` (also part of the default `all`) measures new TCP connections per
second through the ingress routing mesh: three nodes on one ingress network, a
service with a published port and two backend tasks (on n1 and n2), each a
small Python asyncio server in its task namespace that writes a short reply and
closes (busybox nc accepts one connection at a time, too slow for this). A
client with 16 asyncio workers in n1's node namespace connects to n3's underlay
IP and the published port (n3 has no task, so every connection crosses the
mesh: DNAT on n3, VXLAN to a backend), reads the reply and closes, for a few
seconds; then the same directly to a backend task's IP from its own node (no
mesh), alternating, several rounds. The client is Python too, so the direct
figure is mostly the client's own limit on this machine.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from dataclasses import replace

from lab.overlaylab import overlay_lab
from overlay_net.model import (Attachment, DesiredState, Endpoint, LocalTask, NetworkKey,
                               NetworkView, Peer, PortView, ServiceView, mac_for_ip)

PORT = 5201
MESH_PORT = 30080      # published
TARGET_PORT = 80       # in the backend tasks

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


REPLY_SERVER = """
import asyncio
async def reply(reader, writer):
    writer.write(b"ok\\n")
    await writer.drain()
    writer.close()
async def main():
    server = await asyncio.start_server(reply, "0.0.0.0", %d, backlog=1024, reuse_address=True)
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
""" % TARGET_PORT

CONNECTOR = """
import asyncio, sys, time
ip, port, seconds, workers = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
done = 0; failed = 0
async def worker(end):
    global done, failed
    while time.monotonic() < end:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 5)
            data = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            await writer.wait_closed()
            if data == b"ok\\n":
                done += 1
            else:
                failed += 1
        except (OSError, asyncio.TimeoutError):
            failed += 1
async def main():
    start = time.monotonic()
    await asyncio.gather(*(worker(start + seconds) for _ in range(workers)))
    print(done, failed, time.monotonic() - start, flush=True)
asyncio.run(main())
"""


def connection_rate(client_ns: str, ip: str, port: int, seconds: float,
                    workers: int) -> tuple[float, int]:
    """(completed connections per second, failed connections) from client_ns to ip:port."""
    client = _in_ns(client_ns, CONNECTOR, ip, str(port), str(seconds), str(workers))
    try:
        out, _ = client.communicate(timeout=seconds + 60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    if client.returncode != 0:
        raise RuntimeError(f"connection client failed (exit {client.returncode})")
    done, failed, elapsed = out.split()
    return int(done) / float(elapsed), int(failed)


def _wait_answering(client_ns: str, ip: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rate, failed = connection_rate(client_ns, ip, port, 0.3, 1)
        if rate > 0 and not failed:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{ip}:{port} did not answer within {timeout:.0f}s")


def mesh_bench(seconds: float, rounds: int, workers: int) -> int:
    """New connections/s to a published port through the routing mesh vs. directly."""
    with overlay_lab(("n1", "n2", "n3")) as lab:
        base = f"10.{lab.index}.11"
        mesh_hosts = {"n1": 2, "n2": 3, "n3": 4}
        backends = {"s1": ("n1", f"{base}.11"), "s2": ("n2", f"{base}.12")}
        paths = {name: lab.task_netns(name) for name in backends}
        service = ServiceView("web", vip=f"{base}.100",
                              backends=tuple(ip for _, ip in backends.values()),
                              ports=(PortView(published=MESH_PORT, target=TARGET_PORT),))
        net = NetworkView(
            id="ingress", name="ingress", vni=9997, subnet=f"{base}.0/24", gateway=f"{base}.1",
            ingress=True, services=(service,),
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
                print("mesh setup failed:", result.errors, file=sys.stderr)
                return 1
        servers = [_in_ns(paths[name], REPLY_SERVER) for name in backends]
        try:
            for server in servers:
                assert server.stdout is not None
                if server.stdout.readline().strip() != "ready":
                    raise RuntimeError("a backend server did not start")
            client_ns = lab.net.netns_path("n1")
            n3, direct_ip = lab.node_ip("n3"), backends["s1"][1]
            _wait_answering(client_ns, n3, MESH_PORT)
            _wait_answering(client_ns, direct_ip, TARGET_PORT)
            mesh: list[float] = []
            direct: list[float] = []
            failures = 0
            for _ in range(rounds):
                rate, failed = connection_rate(client_ns, n3, MESH_PORT, seconds, workers)
                mesh.append(rate)
                failures += failed
                rate, failed = connection_rate(client_ns, direct_ip, TARGET_PORT, seconds,
                                               workers)
                direct.append(rate)
                failures += failed
        finally:
            for server in servers:
                server.kill()
                server.wait()
        print(f"mesh_connections_per_s {statistics.median(mesh):.0f} "
              f"(n1 -> n3:{MESH_PORT}, n3 has no task; runs: "
              f"{', '.join(f'{v:.0f}' for v in mesh)})")
        print(f"direct_connections_per_s {statistics.median(direct):.0f} "
              f"(n1 -> task on n1, no mesh; runs: {', '.join(f'{v:.0f}' for v in direct)})")
        print(f"mesh/direct ratio (medians): "
              f"{statistics.median(mesh) / statistics.median(direct):.2f}")
        print(f"failed connections: {failures} ({workers} concurrent clients, "
              f"{seconds:.0f} s per run)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each kind")
    parser.add_argument("--what", choices=("all", "throughput", "mesh"), default="all",
                        help="throughput (overlay and encrypted), mesh (connections/s) or both")
    parser.add_argument("--workers", type=int, default=16,
                        help="concurrent connecting clients in the mesh benchmark")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1 or args.workers < 1:
        parser.error("--seconds must be > 0, --rounds and --workers >= 1")
    if args.what in ("all", "throughput"):
        status = throughput_bench(args.seconds, args.rounds)
        if status:
            return status
    if args.what in ("all", "mesh"):
        return mesh_bench(args.seconds, args.rounds, args.workers)
    return 0


def throughput_bench(seconds: float, rounds: int) -> int:
    """Overlay vs. underlay TCP throughput, and the encrypted overlay's."""
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
        encrypted = measure(td, tc, ip_d, seconds)
        underlay: list[float] = []
        overlay: list[float] = []
        for _ in range(rounds):
            underlay.append(measure(lab.net.netns_path("n2"), lab.net.netns_path("n1"),
                                    n2, seconds))
            overlay.append(measure(tb, ta, ip_b, seconds))
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
