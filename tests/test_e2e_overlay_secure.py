"""End-to-end tests of the encrypted overlay's bulk path on real namespaces (root).

A TCP stream of several seconds (iperf3, repeating payload) between two tasks
on an encrypted overlay, across two lab nodes, while the underlay is captured:
* the stream's payload never appears on the underlay, nor does any VXLAN packet;
* the large segment trains travel as fragmented tunnel datagrams;
* the overlay key is rotated in the middle of the stream (new key added, made
  primary, old key removed, node by node) and the connection carries on:
  iperf3 finishes without an error and no interval stalls;
* a captured datagram under the removed key, replayed to the node, is refused,
  and so is a tampered datagram under the current key.

Run under the lock: `flock /tmp/shoal-e2e.lock .venv/bin/pytest tests/test_e2e_overlay_secure.py`
"""
from __future__ import annotations

import json
import socket
import subprocess
from dataclasses import replace
from typing import Iterator

import pytest

from lab.overlaylab import OverlayLab, overlay_lab, ping, wait_for
from overlay_net import netns
from overlay_net.model import NetworkKey
from overlay_net.secure import SECURE_PORT
from tests.overlayscenario import Capture, Scenario

pytestmark = pytest.mark.e2e

PAYLOAD = b"0123456789" * 4          # iperf3 --repeating-payload fills its buffers with this
STREAM_SECONDS = 12
PORT = 5301


@pytest.fixture
def olab() -> Iterator[OverlayLab]:
    with overlay_lab(("n1", "n2")) as lab:
        yield lab


def _keys(sc: Scenario, node: str, *keys: NetworkKey) -> None:
    sc.networks["secure"] = replace(sc.networks["secure"], keys=keys)
    result = sc.lab.planes[node].apply(sc.desired(node))
    assert not result.errors, result.errors


def _iperf_server(path: str) -> subprocess.Popen:
    server = subprocess.Popen(["nsenter", f"--net={path}", "iperf3", "-s", "-1",
                               "--forceflush", "-p", str(PORT)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    assert server.stdout is not None
    for line in server.stdout:
        if "listening" in line:
            return server
    raise AssertionError("iperf3 server did not start")


def _replay(olab: OverlayLab, datagram: bytes) -> None:
    """Sends one tunnel datagram from n1's node namespace to n2's tunnel port."""
    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(datagram, (olab.node_ip("n2"), SECURE_PORT))
    netns.run_in_netns(olab.net.netns_path("n1"), send)


def test_rotation_mid_stream_keeps_the_connection_and_refuses_stale_keys(
        olab: OverlayLab) -> None:
    sc = Scenario(olab)
    sc.network("secure", 7702, 1)
    key1 = NetworkKey(1, bytes(range(32)), primary=True)
    key2 = NetworkKey(2, bytes(range(100, 132)), primary=True)
    sc.networks["secure"] = replace(sc.networks["secure"], encrypted=True, keys=(key1,))
    a1 = sc.task("a1", "n1", ("secure", 2))
    a2 = sc.task("a2", "n2", ("secure", 3))
    sc.apply_all()
    assert ping(a1, sc.ip("secure", 3)), "a1 cannot reach a2 over the encrypted overlay"
    capture = Capture(olab.net.nodes()["n1"]["veth"], markers=(PAYLOAD,), keep_frames=False)
    server = _iperf_server(a2)
    client = subprocess.Popen(["nsenter", f"--net={a1}", "iperf3", "-c", sc.ip("secure", 3),
                               "-p", str(PORT), "-t", str(STREAM_SECONDS), "-J",
                               "--repeating-payload"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: capture.key_ids[1] > 200, 10, "the stream under key 1")
        # rotation as the cluster does it: everyone learns the new key, then it
        # becomes primary, then the old one goes; one node after the other
        old = replace(key1, primary=False)
        for node in ("n2", "n1"):
            _keys(sc, node, replace(key1, primary=True), replace(key2, primary=False))
        for node in ("n2", "n1"):
            _keys(sc, node, old, key2)
        wait_for(lambda: capture.key_ids[2] > 200, 10, "the stream under key 2")
        for node in ("n2", "n1"):
            _keys(sc, node, key2)
        assert client.poll() is None, "the stream ended before the rotation was over"
        out, err = client.communicate(timeout=STREAM_SECONDS + 60)
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate()
        server.kill()
        server.communicate()
        capture.close()
    assert client.returncode == 0, f"iperf3 failed: {out[-800:]} {err[-400:]}"
    report = json.loads(out)
    assert "error" not in report, report.get("error")
    intervals = [i["sum"]["bits_per_second"] for i in report["intervals"]]
    assert len(intervals) >= STREAM_SECONDS - 1 and min(intervals) > 0, \
        f"the stream stalled during the rotation: {intervals}"
    assert report["end"]["sum_received"]["bytes"] > 0
    # what the underlay carried
    assert capture.plaintext is None, "the stream's payload appeared on the underlay"
    assert capture.ports[4789] == 0, "VXLAN (plaintext) packets on the underlay"
    assert capture.key_ids[1] and capture.key_ids[2]
    assert capture.fragments > 0, "large segment trains should travel as fragmented datagrams"
    # the removed key: a datagram sealed with it is refused, as is a tampered one
    tunnel = olab.planes["n2"].tunnel
    stale = next(d for d in capture.datagrams[1] if len(d) > 100)
    before = tunnel.dropped
    _replay(olab, stale)
    wait_for(lambda: tunnel.dropped > before, 5, "the stale-key datagram to be refused")
    current = bytearray(next(d for d in capture.datagrams[2] if len(d) > 100))
    current[-1] ^= 0x01
    before = tunnel.dropped
    _replay(olab, bytes(current))
    wait_for(lambda: tunnel.dropped > before, 5, "the tampered datagram to be refused")
    assert ping(a1, sc.ip("secure", 3)), "no traffic under key 2 after the replays"
