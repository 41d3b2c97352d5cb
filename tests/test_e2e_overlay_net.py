"""End-to-end tests of the overlay data plane on real namespaces (root).

Three "nodes" (namespaces on a test underlay bridge), each with its own
`DataPlane`; tasks are plain namespaces running /bin/busybox through nsenter.
Covers: cross-node and same-node traffic (ping, TCP), VXLAN on the cluster's data
path port, isolation between overlays, idempotent apply, removal of what leaves, the embedded DNS (scoped to
shared networks, UDP and TCP), nftables VIP load balancing and backend
removal, and that nothing is left once the last task goes.

Run under the lock: `flock /tmp/shoal-e2e.lock .venv/bin/pytest tests/test_e2e_overlay_net.py`
"""
from __future__ import annotations

import asyncio
import collections
import socket
import struct
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest
from pyroute2 import IPRoute

from overlay_net import netns
from overlay_net.dns import DnsServer
from overlay_net.dnswire import build_query, parse_answer_addresses, RCODE_OK
from overlay_net.ingress import NODE_LINK, TABLE as INGRESS_TABLE
from overlay_net.model import PortView, ServiceView
from overlay_net.sandbox import BRIDGE_NETFILTER
from overlay_net.vip import TABLE, list_table
from tests.overlayscenario import Capture, Scenario, udp_dports
from lab.overlaylab import (BUSYBOX, OverlayLab, bb, bb_background, overlay_lab, ping,
                            wait_for)

pytestmark = pytest.mark.e2e


@pytest.fixture
def olab() -> Iterator[OverlayLab]:
    with overlay_lab(("n1", "n2", "n3")) as lab:
        yield lab


def test_overlay_traffic_isolation_and_idempotence(olab: OverlayLab) -> None:
    sc = Scenario(olab)
    sc.network("front", 7001, 1)
    sc.network("back", 7002, 2)
    a1 = sc.task("a1", "n1", ("front", 2))
    a2 = sc.task("a2", "n2", ("front", 3))
    a3 = sc.task("a3", "n2", ("front", 4))
    b1 = sc.task("b1", "n1", ("back", 2))
    b2 = sc.task("b2", "n3", ("back", 3))
    first = sc.apply_all()
    assert any("vxlan" in line for line in first["n1"].created)
    assert sorted(olab.sandboxes()) == sorted([
        f"{olab.prefix}ov-n1-7001", f"{olab.prefix}ov-n1-7002",
        f"{olab.prefix}ov-n2-7001", f"{olab.prefix}ov-n3-7002"])
    if Path("/proc/sys/net/bridge").exists():     # br_netfilter loaded (Docker loads it)
        for sandbox in olab.sandboxes():          # frames switched by br0 skip the IP hooks
            switches = netns.run_in_netns(netns.netns_path(sandbox), lambda: {
                name: Path(f"/proc/sys/net/bridge/{name}").read_text().strip()
                for name in BRIDGE_NETFILTER})
            assert set(switches.values()) == {"0"}, (sandbox, switches)

    # cross-node both ways, same node, and the other overlay on its own
    assert ping(a1, sc.ip("front", 3)), "a1 (n1) cannot ping a2 (n2) over the overlay"
    assert ping(a2, sc.ip("front", 2)), "a2 (n2) cannot ping a1 (n1)"
    assert ping(a2, sc.ip("front", 4)), "a2 cannot ping a3 on the same node"
    assert ping(b2, sc.ip("back", 2)), "b2 (n3) cannot ping b1 (n1)"

    # TCP across nodes with busybox nc
    server = bb_background(a2, "nc", "-ll", "-p", "8080", "-e", BUSYBOX, "echo", "pong-from-a2")
    try:
        wait_for(lambda: "pong-from-a2" in bb(a1, "nc", "-w", "2", sc.ip("front", 3),
                                               "8080", input="").stdout,
                 what="a TCP answer from a2 over the overlay")
    finally:
        server.kill()
        server.wait()

    # another overlay cannot reach front's tasks, wherever they run
    assert not ping(b1, sc.ip("front", 2)), "b1 reached a1 across overlays"
    assert not ping(b2, sc.ip("front", 3)), "b2 reached a2 across overlays"
    assert not ping(a1, sc.ip("back", 3)), "a1 reached b2 across overlays"

    # a second apply changes nothing
    again = sc.apply_all()
    assert all(not r.created and not r.removed for r in again.values()), again

    # a task leaving: its interface goes, the others keep working
    del sc.placed["a3"]
    result = olab.planes["n2"].apply(sc.desired("n2"))
    assert result.removed or any("removed veth" in c for c in result.created), result
    assert "eth0" not in bb(a3, "ip", "link").stdout
    for node in ("n1",):
        olab.planes[node].apply(sc.desired(node))
    assert ping(a1, sc.ip("front", 3))

    # the last task of 'back' on n1 leaves: n1's back sandbox goes, front's stays
    del sc.placed["b1"]
    olab.planes["n1"].apply(sc.desired("n1"))
    assert f"{olab.prefix}ov-n1-7002" not in olab.sandboxes()
    assert f"{olab.prefix}ov-n1-7001" in olab.sandboxes()
    assert ping(a1, sc.ip("front", 3))


def test_remote_entries_follow_endpoints(olab: OverlayLab) -> None:
    """FDB and neighbour entries appear for new remote endpoints and go with them."""
    sc = Scenario(olab)
    sc.network("front", 7101, 1)
    a1 = sc.task("a1", "n1", ("front", 2))
    sc.apply_all()
    sandbox = netns.netns_path(f"{olab.prefix}ov-n1-7101")

    def neighbours() -> set[str]:
        def body() -> set[str]:
            with IPRoute() as ipr:
                vx = ipr.link_lookup(ifname="vxlan0")[0]
                return {n.get_attr("NDA_DST") for n in ipr.get_neighbours(family=2, ifindex=vx)}
        return netns.run_in_netns(sandbox, body)

    assert neighbours() == set()
    sc.task("a2", "n2", ("front", 3))
    sc.apply_all()
    assert neighbours() == {sc.ip("front", 3)}
    assert ping(a1, sc.ip("front", 3))
    del sc.placed["a2"]
    sc.apply_all()
    assert neighbours() == set()


class LoopThread:
    """An asyncio loop on a thread, for the DNS server under a synchronous test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def nslookup(path: str, name: str) -> tuple[int, list[str]]:
    """(exit code, addresses) from busybox nslookup against the embedded DNS."""
    res = bb(path, "nslookup", name, "127.0.0.11", timeout=30)
    lines = res.stdout.splitlines()
    addrs = []
    seen_name = False
    for line in lines:
        if line.startswith("Name:"):
            seen_name = True
        elif seen_name and line.startswith("Address"):
            addrs.append(line.split(":", 1)[1].strip().split()[0])
    return res.returncode, sorted(addrs)


def tcp_query(path: str, name: str) -> tuple[int, list[str]]:
    def body() -> bytes:
        with socket.create_connection(("127.0.0.11", 53), timeout=5) as sock:
            query = build_query(name)
            sock.sendall(struct.pack("!H", len(query)) + query)
            head = sock.recv(2, socket.MSG_WAITALL)
            return sock.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)
    rcode, addrs = parse_answer_addresses(netns.run_in_netns(path, body))
    return rcode, sorted(addrs)


def test_dns_scoped_to_shared_networks(olab: OverlayLab) -> None:
    sc = Scenario(olab)
    sc.network("front", 7201, 1)
    sc.network("back", 7202, 2)
    a1 = sc.task("a1", "n1", ("front", 2))
    sc.task("a2", "n2", ("front", 3))
    b1 = sc.task("b1", "n1", ("back", 2))
    m1 = sc.task("m1", "n1", ("front", 5), ("back", 5))
    sc.service("front", ServiceView("web", vip=sc.ip("front", 100), aliases=("www",),
                                    backends=(sc.ip("front", 2), sc.ip("front", 3))))
    sc.service("front", ServiceView("cache", mode="dnsrr",
                                    backends=(sc.ip("front", 2), sc.ip("front", 3))))
    sc.service("back", ServiceView("db", vip=sc.ip("back", 100), backends=(sc.ip("back", 2),)))
    sc.apply_all()
    runner = LoopThread()
    dns = DnsServer(node="n1", upstreams=[])
    try:
        errors = runner.run(dns.update(sc.desired("n1")))
        assert not errors, errors
        assert set(dns.listening()) == {"a1", "b1", "m1"}
        web_tasks = sorted([sc.ip("front", 2), sc.ip("front", 3)])
        assert nslookup(a1, "web")[1] == [sc.ip("front", 100)]
        assert nslookup(a1, "www")[1] == [sc.ip("front", 100)]
        assert nslookup(a1, "tasks.web")[1] == web_tasks
        assert nslookup(a1, "cache")[1] == web_tasks             # dnsrr: the task addresses
        # 'db' lives on 'back', which a1 does not share; b1 and m1 do
        code, addrs = nslookup(a1, "db")
        assert addrs == [] and code != 0, (code, addrs)
        assert nslookup(b1, "db")[1] == [sc.ip("back", 100)]
        assert nslookup(b1, "web")[1] == []
        assert nslookup(m1, "db")[1] == [sc.ip("back", 100)]
        assert nslookup(m1, "web")[1] == [sc.ip("front", 100)]
        # TCP as well
        assert tcp_query(a1, "tasks.web") == (RCODE_OK, web_tasks)
        # a scaled service answers the new set at once
        sc.service("front", ServiceView("web", vip=sc.ip("front", 100), aliases=("www",),
                                        backends=(sc.ip("front", 2),)))
        runner.run(dns.update(sc.desired("n1")))
        assert nslookup(a1, "tasks.web")[1] == [sc.ip("front", 2)]
        # a task that leaves loses its listener
        del sc.placed["b1"]
        runner.run(dns.update(sc.desired("n1")))
        assert "b1" not in dns.listening()
        assert nslookup(b1, "db")[0] != 0
    finally:
        runner.run(dns.close())
        runner.stop()


def _serve_name(lab: OverlayLab, path: str, name: str, root: Path) -> Any:
    """busybox httpd in the task namespace answering its task name."""
    www = root / name
    www.mkdir()
    (www / "index.html").write_text(name + "\n")
    return bb_background(path, "httpd", "-f", "-p", "80", "-h", str(www))


def http_get(path: str | None, ip: str, port: int = 80) -> tuple[int, str]:
    """(exit code, body) of GET / with busybox nc (busybox wget is broken in the static build)."""
    res = bb(path, "nc", "-w", "3", ip, str(port), input="GET / HTTP/1.0\r\n\r\n", timeout=15)
    head, sep, body = res.stdout.replace("\r", "").partition("\n\n")
    body = body.strip() if sep and head.startswith("HTTP/1.") and " 200 " in head else ""
    return (res.returncode if body else (res.returncode or 1)), body


def test_vip_load_balancing_and_backend_removal(olab: OverlayLab) -> None:
    sc = Scenario(olab)
    sc.network("front", 7301, 1)
    backends = {"s1": ("n1", 11), "s2": ("n2", 12), "s3": ("n3", 13)}
    paths = {name: sc.task(name, node, ("front", host)) for name, (node, host) in backends.items()}
    client = sc.task("c1", "n1", ("front", 20))
    vip = sc.ip("front", 100)
    all_ips = tuple(sc.ip("front", host) for _, host in backends.values())
    sc.service("front", ServiceView("web", vip=vip, backends=all_ips))
    sc.apply_all()
    root = Path(tempfile.mkdtemp(prefix="shoal-ovl-www-"))
    servers = [_serve_name(olab, paths[name], name, root) for name in backends]
    try:
        for name, (_, host) in backends.items():
            wait_for(lambda h=host, n=name: http_get(client, sc.ip("front", h))[1] == n,
                     what=f"{name} serving over the overlay")

        def fetch_many(count: int) -> collections.Counter:
            seen: collections.Counter = collections.Counter()
            for _ in range(count):
                code, body = http_get(client, vip)
                assert code == 0 and body, f"GET http://{vip}/ failed ({code})"
                seen[body] += 1
            return seen

        seen = fetch_many(20)
        assert len(seen) > 1, f"20 connections to the VIP all reached {seen}"
        assert set(seen) <= set(backends)
        # take s2 out: new connections never reach it, from the first one on
        sc.service("front", ServiceView("web", vip=vip, backends=(all_ips[0], all_ips[2])))
        sc.apply_all()
        table = list_table(client)
        assert table is not None and all_ips[1] not in table
        seen = fetch_many(20)
        assert "s2" not in seen and len(seen) == 2, seen
        # no backend at all: refused at once, not hanging
        sc.service("front", ServiceView("web", vip=vip, backends=()))
        sc.apply_all()
        assert http_get(client, vip) [1] == ""
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()


def test_nothing_left_after_last_task(olab: OverlayLab) -> None:
    sc = Scenario(olab)
    sc.network("front", 7401, 1)
    a1 = sc.task("a1", "n1", ("front", 2))
    a2 = sc.task("a2", "n2", ("front", 3))
    sc.service("front", ServiceView("web", vip=sc.ip("front", 100),
                                    backends=(sc.ip("front", 2), sc.ip("front", 3))))
    sc.apply_all()
    assert list_table(a1) is not None
    sc.placed.clear()
    for node, plane in olab.planes.items():
        result = plane.apply(sc.desired(node))
        assert not result.errors
    assert olab.sandboxes() == []
    for path in (a1, a2):
        assert list_table(path) is None, f"{TABLE} still in {path}"
        assert "eth0" not in bb(path, "ip", "link").stdout
    for node in olab.planes:
        def links() -> list[str]:
            with IPRoute() as ipr:
                return [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
        names = netns.run_in_netns(olab.net.netns_path(node), links)
        assert not [n for n in names if n.startswith(("vx", "br", "ve", "vp"))], names


def test_encrypted_network_without_keys_is_refused(olab: OverlayLab) -> None:
    sc = Scenario(olab)
    sc.network("secure", 7501, 1)
    sc.networks["secure"] = replace(sc.networks["secure"], encrypted=True)
    a1 = sc.task("a1", "n1", ("secure", 2))
    result = olab.planes["n1"].apply(sc.desired("n1"))
    assert any("encrypted" in err and "no plaintext" in err for err in result.errors)
    assert olab.sandboxes() == []
    assert "eth0" not in bb(a1, "ip", "link").stdout


def test_vxlan_uses_the_clusters_data_path_port(olab: OverlayLab) -> None:
    """`swarm init --data-path-port 7789`: the views carry the port, every node's VXLAN
    device sends to and listens on it, and nothing goes to 4789."""
    sc = Scenario(olab)
    sc.network("front", 7101, 1)
    sc.networks["front"] = replace(sc.networks["front"], vxlan_port=7789)
    a1 = sc.task("a1", "n1", ("front", 2))
    a2 = sc.task("a2", "n2", ("front", 3))
    sc.apply_all()
    capture = Capture(olab.net.nodes()["n1"]["veth"])      # n1's port on the underlay
    try:
        assert ping(a1, sc.ip("front", 3)), "a1 (n1) cannot ping a2 (n2) on port 7789"
        assert ping(a2, sc.ip("front", 2)), "a2 (n2) cannot ping a1 (n1) on port 7789"
    finally:
        ports = udp_dports(capture.close())
    assert ports[7789] > 0, f"no VXLAN packets to the data path port: {ports}"
    assert ports[4789] == 0, f"VXLAN packets to the default port: {ports}"
    sc.placed.clear()
    sc.apply_all()
    assert olab.sandboxes() == []


def test_encrypted_overlay_carries_only_ciphertext(olab: OverlayLab) -> None:
    from overlay_net.model import NetworkKey
    sc = Scenario(olab)
    sc.network("secure", 7701, 1)
    key1 = NetworkKey(1, bytes(range(32)), primary=True)
    sc.networks["secure"] = replace(sc.networks["secure"], encrypted=True, keys=(key1,))
    a1 = sc.task("a1", "n1", ("secure", 2))
    a2 = sc.task("a2", "n2", ("secure", 3))
    sc.apply_all()
    capture = Capture(olab.net.nodes()["n1"]["veth"])      # n1's port on the underlay
    marker = "PLAINTEXT-MARKER-" * 20
    try:
        assert ping(a1, sc.ip("secure", 3)), "a1 cannot ping a2 over the encrypted overlay"
        assert ping(a2, sc.ip("secure", 2))
        # a persistent server (-ll): a first try that gives up before the answer came
        # through the (userspace, encrypted) tunnel must not use up the only connection
        server = bb_background(a2, "nc", "-ll", "-p", "8080", "-e", BUSYBOX, "echo", marker)
        try:
            wait_for(lambda: marker in bb(a1, "nc", "-w", "2", sc.ip("secure", 3), "8080",
                                          input="").stdout,
                     what="the marker over the encrypted overlay")
        finally:
            server.kill()
            server.wait()
    finally:
        frames = capture.close()
    ports = udp_dports(frames)
    assert ports[4790] > 0, f"no tunnel packets seen on the underlay: {ports}"
    assert ports[4789] == 0, "VXLAN (plaintext) packets on the underlay"
    assert not any(b"PLAINTEXT-MARKER" in f for f in frames), "plaintext on the underlay"
    # rotation: a new primary key; the old one still decrypts meanwhile
    key2 = NetworkKey(2, bytes(range(100, 132)), primary=True)
    sc.networks["secure"] = replace(sc.networks["secure"],
                                    keys=(replace(key1, primary=False), key2))
    sc.apply_all()
    assert ping(a1, sc.ip("secure", 3)), "no traffic after the key rotation"
    # a node with a different key cannot talk: nothing falls back to plaintext
    other = NetworkKey(3, bytes(32), primary=True)
    desired_n2 = sc.desired("n2")
    bad = replace(desired_n2, networks=tuple(replace(n, keys=(other,))
                                             for n in desired_n2.networks))
    assert not olab.planes["n2"].apply(bad).errors
    assert not ping(a1, sc.ip("secure", 3)), "traffic passed between nodes with different keys"
    # teardown of the last task removes the TAP with the sandbox
    sc.placed.clear()
    sc.apply_all()
    assert olab.sandboxes() == []
    assert olab.planes["n1"].tunnel.vnis() == []


def test_ingress_routing_mesh(olab: OverlayLab) -> None:
    """A published port answers on every node, also one without a task, spread over backends."""
    sc = Scenario(olab)
    sc.network("ingress", 7601, 0)
    sc.networks["ingress"] = replace(sc.networks["ingress"], ingress=True)
    sc.mesh = {"n1": 2, "n2": 3, "n3": 4}
    backends = {"s1": ("n1", 11), "s2": ("n2", 12)}
    paths = {name: sc.task(name, node, ("ingress", host)) for name, (node, host) in backends.items()}
    ips = tuple(sc.ip("ingress", host) for _, host in backends.values())
    sc.service("ingress", ServiceView("web", vip=sc.ip("ingress", 100), backends=ips,
                                      ports=(PortView(published=30080, target=80),)))
    sc.apply_all()
    assert f"{olab.prefix}ov-n3-7601" in olab.sandboxes(), "no mesh sandbox on the taskless node"
    root = Path(tempfile.mkdtemp(prefix="shoal-ovl-www-"))
    servers = [_serve_name(olab, paths[name], name, root) for name in backends]
    try:
        n1, n3 = olab.node_ip("n1"), olab.node_ip("n3")
        wait_for(lambda: http_get(None, n3, 30080)[1] in backends, timeout=15,
                 what="the published port answering on n3 (no task there)")
        seen = collections.Counter(http_get(None, n3, 30080)[1] for _ in range(20))
        assert set(seen) == set(backends), f"20 connections through n3 reached {seen}"
        # from another node over the underlay, and from the node itself
        assert http_get(olab.net.netns_path("n3"), n1, 30080)[1] in backends
        assert http_get(olab.net.netns_path("n3"), n3, 30080)[1] in backends
        # s1 leaves the service: the mesh sends nothing to it any more
        sc.service("ingress", ServiceView("web", vip=sc.ip("ingress", 100), backends=ips[1:],
                                          ports=(PortView(published=30080, target=80),)))
        sc.apply_all()
        seen = collections.Counter(http_get(None, n3, 30080)[1] for _ in range(10))
        assert set(seen) == {"s2"}, seen
        # unpublished: refused on every node
        sc.service("ingress", ServiceView("web", vip=sc.ip("ingress", 100), backends=ips[1:]))
        sc.apply_all()
        assert http_get(None, n3, 30080)[1] == ""
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()
    # nobody publishes and no task is left: the mesh is gone from every node
    sc.placed.clear()
    sc.mesh = {}
    sc.apply_all()
    assert olab.sandboxes() == []
    for node in olab.planes:
        path = olab.net.netns_path(node)
        assert list_table(path, table=INGRESS_TABLE) is None
        assert NODE_LINK not in bb(path, "ip", "link").stdout


def test_a_missing_task_namespace_does_not_block_the_others(olab: OverlayLab) -> None:
    sc = Scenario(olab)
    sc.network("front", 7801, 1)
    a1 = sc.task("a1", "n1", ("front", 2))
    sc.task("a2", "n2", ("front", 3))
    sc.task("gone", "n1", ("front", 4))
    netns.remove(f"{olab.prefix}task-gone")
    result = olab.planes["n1"].apply(sc.desired("n1"))
    assert any("gone" in err and "does not exist" in err for err in result.errors), result
    assert not olab.planes["n2"].apply(sc.desired("n2")).errors
    assert ping(a1, sc.ip("front", 3)), "the healthy task lost connectivity"
